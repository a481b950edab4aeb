/**
 * The observable state of one open note (what the editor renders) and the small store that
 * publishes it to React (`useSyncExternalStore`): every change makes a new object, and
 * listeners hear only about real changes.
 */
import type { Access, Lock, User, UserBrief } from '../api/types';
import type { Change } from '../lib/text';
import { DisconnectedError, ProtocolError } from './socket';

export type TokenRole = 'none' | 'acquiring' | 'waiting' | 'catching-up' | 'holder' | 'releasing';

export interface Draft {
  text: string;
  reason: string;
}

/** The writer's caret as a viewer draws it: code points in `text`, clamped to it. */
export interface WriterCaret {
  name: string;
  anchor: number;
  head: number;
}

export interface NoteState {
  noteId: string;
  loaded: boolean;
  error: { code: string; message: string } | null;
  title: string;
  access: Access | null;
  /** What the editor shows: the server text plus this tab's unacknowledged edits. */
  text: string;
  version: number;
  lock: Lock | null;
  viewers: User[];
  mySession: string | null;
  role: TokenRole;
  queuePosition: number | null;
  fence: number | null;
  leaseDeadline: number | null;
  writable: boolean;
  /** `saved`: everything acknowledged; `saving`: an edit is in flight; `unsaved`: waiting. */
  save: 'saved' | 'saving' | 'unsaved';
  draft: Draft | null;
  notice: string | null;
  /** The last remote changes applied (the editor applies them as one transaction; null: replace all). */
  remote: { seq: number; changes: Change[] | null };
  /** Viewers only: where the token holder's caret is, once this copy has caught up with it. */
  caret: WriterCaret | null;
  /** Holder only: an idle hand-off is coming at `deadline` (clock time) unless the user keeps editing. */
  idleWarning: { deadline: number } | null;
  /** Holder only: who asked for the token (`edit_request`), oldest first. */
  editRequests: UserBrief[];
  /** Waiter only: what came of asking the holder for the token. */
  askStatus: string | null;
}

export const LOSS_REASONS: Record<string, string> = {
  expired: 'Your write token expired (the connection was too slow or lost).',
  revoked: 'Your write token was revoked by the owner or an admin.',
  reset: 'Your write token was reset after a server store failure.',
  fenced: 'The server refused your edit: another session holds the write token now.',
  diverged: 'The note changed on the server while your edits were not yet saved.',
  taken: 'Someone else holds the write token now.',
  refused: 'The server refused your last edit.',
  idle: 'The write token was handed to the next person in line after you were idle.',
};

export function initialNoteState(noteId: string): NoteState {
  return {
    noteId,
    loaded: false,
    error: null,
    title: '',
    access: null,
    text: '',
    version: 0,
    lock: null,
    viewers: [],
    mySession: null,
    role: 'none',
    queuePosition: null,
    fence: null,
    leaseDeadline: null,
    writable: false,
    save: 'saved',
    draft: null,
    notice: null,
    remote: { seq: 0, changes: null },
    caret: null,
    idleWarning: null,
    editRequests: [],
    askStatus: null,
  };
}

/** Fields derived from the rest of the state and from facts outside it (clock, socket). */
export type Derived = Pick<NoteState, 'writable' | 'save'>;

/**
 * Holds a note's state and publishes it. `derive` recomputes the fields that depend on
 * facts outside the state (clock, socket) on every change.
 */
export class NoteStore {
  private state: NoteState;
  private listeners = new Set<() => void>();

  constructor(
    noteId: string,
    private readonly derive: (state: NoteState) => Derived,
  ) {
    this.state = initialNoteState(noteId);
  }

  get current(): NoteState {
    return this.state;
  }

  getState = (): NoteState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Recompute derived fields (`writable`, `save`) and notify if anything changed. */
  refresh(): void {
    this.patch({});
  }

  patch(update: Partial<NoteState>): void {
    const prev = this.state;
    const merged: NoteState = { ...prev, ...update };
    Object.assign(merged, this.derive(merged));
    const changed = (Object.keys(merged) as (keyof NoteState)[]).some((k) => merged[k] !== prev[k]);
    if (!changed) return;
    this.state = merged;
    for (const l of [...this.listeners]) l();
  }
}

/** A short reason fit to show a person. */
export function describeError(err: unknown): string {
  if (err instanceof ProtocolError) return err.message || err.code;
  if (err instanceof DisconnectedError) return 'not connected';
  return 'unexpected error';
}
