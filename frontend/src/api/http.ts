/**
 * The HTTP API (protocol.md, "HTTP API"), always on this page's origin. Errors come back as
 * `{"error":{"code","message"}}` and are raised as ApiError with that code; network
 * failures become ApiError code `network`.
 */
import type {
  AccessGrant,
  AdminSession,
  AdminUser,
  AuthResponse,
  NoteDetail,
  NoteSummary,
  Revision,
  RevisionSummary,
  Role,
  ServerConfig,
  User,
  UserBrief,
  Visibility,
} from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export class Api {
  constructor(
    private readonly getToken: () => string | null,
    private readonly base = '',
  ) {}

  async call<T>(method: Method, path: string, body?: unknown, token?: string | null): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const bearer = token === undefined ? this.getToken() : token;
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    const text = await res.text();
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, err?.code ?? 'http_error', err?.message ?? `Request failed (${res.status}).`);
    }
    return data as T;
  }

  // --- auth -----------------------------------------------------------------------------
  config = () => this.call<ServerConfig>('GET', '/api/config', undefined, null);
  login = (username: string, password: string) =>
    this.call<AuthResponse>('POST', '/api/auth/login', { username, password }, null);
  register = (username: string, password: string) =>
    this.call<AuthResponse>('POST', '/api/auth/register', { username, password }, null);
  guest = () => this.call<AuthResponse>('POST', '/api/auth/guest', undefined, null);
  refresh = (token: string) => this.call<AuthResponse>('POST', '/api/auth/refresh', undefined, token);
  me = (token?: string) => this.call<User>('GET', '/api/me', undefined, token);

  // --- notes ----------------------------------------------------------------------------
  listNotes = () => this.call<{ notes: NoteSummary[] }>('GET', '/api/notes').then((r) => r.notes);
  createNote = (title: string, visibility: Visibility, content = '') =>
    this.call<NoteDetail>('POST', '/api/notes', { title, content, visibility });
  getNote = (id: string) => this.call<NoteDetail>('GET', `/api/notes/${enc(id)}`);
  updateNote = (id: string, patch: { title?: string; visibility?: Visibility }) =>
    this.call<NoteDetail>('PATCH', `/api/notes/${enc(id)}`, patch);
  deleteNote = (id: string) => this.call<unknown>('DELETE', `/api/notes/${enc(id)}`);
  listGrants = (id: string) =>
    this.call<{ grants: AccessGrant[] }>('GET', `/api/notes/${enc(id)}/access`).then((r) => r.grants);
  grant = (id: string, userId: string, access: 'read' | 'write') =>
    this.call<unknown>('PUT', `/api/notes/${enc(id)}/access/${enc(userId)}`, { access });
  revokeGrant = (id: string, userId: string) =>
    this.call<unknown>('DELETE', `/api/notes/${enc(id)}/access/${enc(userId)}`);
  lookupUser = (name: string) => this.call<UserBrief>('GET', `/api/users/lookup?name=${enc(name)}`);
  listRevisions = (id: string) =>
    this.call<{ revisions: RevisionSummary[] }>('GET', `/api/notes/${enc(id)}/revisions`).then(
      (r) => r.revisions,
    );
  getRevision = (id: string, version: number) =>
    this.call<Revision>('GET', `/api/notes/${enc(id)}/revisions/${version}`);

  // --- admin ----------------------------------------------------------------------------
  adminUsers = () => this.call<{ users: AdminUser[] }>('GET', '/api/admin/users').then((r) => r.users);
  setRole = (id: string, role: Role) => this.call<unknown>('PATCH', `/api/admin/users/${enc(id)}`, { role });
  adminSessions = () =>
    this.call<{ sessions: AdminSession[] }>('GET', '/api/admin/sessions').then((r) => r.sessions);
  forceRelease = (noteId: string) =>
    this.call<{ note: string; fence: number }>('POST', `/api/admin/notes/${enc(noteId)}/revoke`);
  kick = (sessionId: string) => this.call<unknown>('POST', `/api/admin/sessions/${enc(sessionId)}/kick`);
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

/** A message fit to show a person, never a stack trace. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  return 'Something went wrong.';
}
