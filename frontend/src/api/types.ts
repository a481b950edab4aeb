/**
 * Wire shapes of protocol v1 and the HTTP API (docs/protocol.md). Field names are
 * normative; unknown fields sent by the server are ignored.
 */
import type { Change } from '../lib/text';

export type Role = 'admin' | 'user' | 'guest';
export type Access = 'read' | 'write' | 'admin';
export type Visibility = 'private' | 'public';
export type Rid = string | number;

export interface User {
  id: string;
  name: string;
  role: Role;
}

export interface UserBrief {
  id: string;
  name: string;
}

export interface AuthResponse {
  token: string;
  expires_at: string;
  user: User;
}

export interface ServerConfig {
  allow_signup: boolean;
  allow_guest: boolean;
}

export interface NoteSummary {
  id: string;
  owner_id: string;
  title: string;
  visibility: Visibility;
  version: number;
  created_at: string;
  updated_at: string;
  access: Access;
}

export interface NoteDetail extends NoteSummary {
  content: string;
}

export interface AccessGrant {
  user: UserBrief;
  access: 'read' | 'write';
}

export interface RevisionSummary {
  note: string;
  version: number;
  title: string;
  created_at: string;
  by: string | null;
}

export interface Revision extends RevisionSummary {
  content: string;
}

export interface AdminUser extends User {
  created_at: string;
}

export interface AdminSession {
  session: string;
  user: User;
  replica: string;
  connected_at: string;
  notes: string[];
}

// --- WebSocket -------------------------------------------------------------------------

export interface Lock {
  holder: UserBrief;
  session: string;
  fence: number;
  since: string;
  queue: UserBrief[];
}

export interface LeaseInfo {
  note: string;
  fence: number;
  ttl_ms: number;
}

export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'token_expired'
  | 'forbidden'
  | 'not_found'
  | 'locked'
  | 'fenced'
  | 'stale'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export interface WelcomeMsg {
  type: 'welcome';
  protocol: number;
  session: string;
  user: User;
  server: string;
  heartbeat_ms: number;
  lease_ttl_ms: number;
  resumed: boolean;
  leases: LeaseInfo[];
}

export interface HeartbeatAckMsg {
  type: 'heartbeat_ack';
  rid: Rid;
  leases: LeaseInfo[];
}

export interface RefreshedMsg {
  type: 'refreshed';
  rid: Rid;
  expires_at: string;
}

export interface SnapshotMsg {
  type: 'snapshot';
  rid?: Rid;
  note: string;
  title: string;
  content: string;
  version: number;
  access: Access;
  lock: Lock | null;
  viewers: User[];
}

export interface UnsubscribedMsg {
  type: 'unsubscribed';
  rid: Rid;
  note: string;
}

export interface EditedMsg {
  type: 'edited';
  note: string;
  version: number;
  base: number;
  op: string;
  changes?: Change[];
  content?: string;
  by: UserBrief;
}

export interface ChangesMsg {
  type: 'changes';
  rid: Rid;
  note: string;
  from: number;
  to: number;
  edits: EditedMsg[];
}

export interface GrantedMsg {
  type: 'granted';
  rid?: Rid;
  note: string;
  fence: number;
  ttl_ms: number;
}

export interface QueuedMsg {
  type: 'queued';
  rid: Rid;
  note: string;
  position: number;
}

export interface ReleasedMsg {
  type: 'released';
  rid: Rid;
  note: string;
}

export interface RevokedMsg {
  type: 'revoked';
  rid: Rid;
  note: string;
  fence: number;
}

export interface LeaseLostMsg {
  type: 'lease_lost';
  note: string;
  fence: number;
  reason: 'expired' | 'revoked' | 'reset' | 'idle';
}

/** The holder's caret, forwarded to the other subscribers (positions in code points at `version`). */
export interface CaretMsg {
  type: 'caret';
  note: string;
  holder: UserBrief;
  session: string;
  fence: number;
  version: number;
  anchor: number;
  head: number;
}

/** To the holder: an idle hand-off in `handoff_in_ms`, or (null) the warning withdrawn. */
export interface IdleWarningMsg {
  type: 'idle_warning';
  note: string;
  fence: number;
  handoff_in_ms: number | null;
}

/** To the holder: someone would like to edit. */
export interface EditRequestMsg {
  type: 'edit_request';
  note: string;
  from: UserBrief;
}

export interface KeptMsg {
  type: 'kept';
  rid: Rid;
  note: string;
  handoff_in_ms: number | null;
}

export interface RequestedMsg {
  type: 'requested';
  rid: Rid;
  note: string;
  holder: UserBrief | null;
}

export interface LockMsg {
  type: 'lock';
  note: string;
  lock: Lock | null;
}

export interface AckMsg {
  type: 'ack';
  rid: Rid;
  note: string;
  op: string;
  version: number;
}

export interface PresenceMsg {
  type: 'presence';
  note: string;
  viewers: User[];
}

export interface ErrorMsg {
  type: 'error';
  rid?: Rid;
  code: ErrorCode;
  message: string;
  version?: number;
  /** With `rate_limited` for a too early `request`. */
  retry_after_ms?: number;
}

export type ServerMsg =
  | WelcomeMsg
  | HeartbeatAckMsg
  | RefreshedMsg
  | SnapshotMsg
  | UnsubscribedMsg
  | EditedMsg
  | ChangesMsg
  | GrantedMsg
  | QueuedMsg
  | ReleasedMsg
  | RevokedMsg
  | LeaseLostMsg
  | LockMsg
  | AckMsg
  | PresenceMsg
  | CaretMsg
  | IdleWarningMsg
  | EditRequestMsg
  | KeptMsg
  | RequestedMsg
  | ErrorMsg;

/** Server pushes (and deferred replies) that concern one note. */
export type NoteMsg = Extract<ServerMsg, { note: string }>;
