/**
 * One WebSocket per tab, multiplexing every open note (protocol.md, "Transport").
 *
 * Contract:
 * - `hello` is the first frame; nothing else is sent before `welcome` (requests made while
 *   not connected fail at once with DisconnectedError, and note sessions redo their work
 *   on the next `welcome`).
 * - A `heartbeat` goes out every `heartbeat_ms`; each ack is reported with the time the
 *   heartbeat was SENT, so lease deadlines derived from it are never later than the
 *   server's.
 * - A dropped connection is retried with exponential backoff and jitter, resuming the
 *   previous session; never after close 4401 (unauthorized) or 4403 (forbidden, kicked),
 *   and not after 4409 (this session was resumed by another socket).
 * - A connection that stays silent for LIVENESS_HEARTBEATS heartbeat intervals is treated
 *   as dead, since a half-open TCP connection may never report a close.
 */
import type { ErrorMsg, LeaseInfo, NoteMsg, ServerMsg, WelcomeMsg } from '../api/types';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from './backoff';

export const CLIENT_NAME = 'collab-web/1.0';
/** How long a new connection may take to reach `welcome` before it is abandoned. */
export const WELCOME_TIMEOUT_MS = 10_000;
/** Silence (no frame at all) for this many heartbeat intervals means the link is dead. */
export const LIVENESS_HEARTBEATS = 2.5;
/** Close code this client uses when it abandons a connection it considers dead. */
export const CLIENT_ABANDON_CODE = 4000;

const NO_RECONNECT: Record<number, OfflineReason> = {
  4401: 'unauthorized',
  4403: 'forbidden',
  4409: 'replaced',
};

export type OfflineReason = 'unauthorized' | 'forbidden' | 'replaced' | 'stopped';

export type ConnectionStatus =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'connected'; session: string }
  | { kind: 'reconnecting'; retryAt: number; delayMs: number; attempt: number; closeCode: number }
  | { kind: 'offline'; reason: OfflineReason };

/** The subset of the browser WebSocket this class uses (a fake in unit tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
}

export type SocketFactory = (url: string) => SocketLike;

const OPEN = 1;

/** The server answered a request with `error`. */
export class ProtocolError extends Error {
  readonly code: ErrorMsg['code'];
  readonly reply: ErrorMsg;
  constructor(reply: ErrorMsg) {
    super(reply.message);
    this.name = 'ProtocolError';
    this.code = reply.code;
    this.reply = reply;
  }
}

/** The request could not be sent or its connection closed before the reply. */
export class DisconnectedError extends Error {
  constructor() {
    super('not connected');
    this.name = 'DisconnectedError';
  }
}

export interface SocketListener {
  onStatus?(status: ConnectionStatus): void;
  onWelcome?(welcome: WelcomeMsg): void;
  /** Pushes about one note, and deferred replies (a `granted` after `queued`). */
  onNoteMessage?(msg: NoteMsg): void;
  /** `sentAt` is when the acknowledged heartbeat left this client (Date.now()). */
  onHeartbeatAck?(sentAt: number, leases: LeaseInfo[]): void;
  /** The server says the token in force expired; refresh it now. */
  onTokenExpired?(): void;
}

export interface CollabSocketOptions {
  url: string;
  getToken: () => string;
  createSocket?: SocketFactory;
  backoff?: BackoffPolicy;
  random?: () => number;
  /** Where the session id is kept so a reload of this tab resumes it (sessionStorage). */
  sessionStore?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null;
}

export const SESSION_STORAGE_KEY = 'collab.session';

interface Pending {
  resolve: (msg: ServerMsg) => void;
  reject: (err: Error) => void;
}

type Outgoing = { type: string } & Record<string, unknown>;

export class CollabSocket {
  private readonly opts: Required<CollabSocketOptions>;
  private ws: SocketLike | null = null;
  private listeners = new Set<SocketListener>();
  private pending = new Map<string, Pending>();
  private nextRid = 1;
  private attempt = 0;
  private running = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private welcomeTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private _status: ConnectionStatus = { kind: 'offline', reason: 'stopped' };
  private _welcome: WelcomeMsg | null = null;
  /** Session to resume on the next connection (protocol.md rule: leases follow the session). */
  private resumeSession: string | null = null;

  constructor(options: CollabSocketOptions) {
    this.opts = {
      createSocket: (url) => new WebSocket(url) as SocketLike,
      backoff: DEFAULT_BACKOFF,
      random: Math.random,
      sessionStore: null,
      ...options,
    };
    this.resumeSession = this.opts.sessionStore?.getItem(SESSION_STORAGE_KEY) ?? null;
  }

  get status(): ConnectionStatus {
    return this._status;
  }

  /** The `welcome` of the live connection, or null while not connected. */
  get welcome(): WelcomeMsg | null {
    return this._status.kind === 'connected' ? this._welcome : null;
  }

  get connected(): boolean {
    return this._status.kind === 'connected';
  }

  addListener(listener: SocketListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.open();
  }

  /** Close for good (sign-out, page teardown). */
  stop(): void {
    this.running = false;
    this.clearTimers();
    this.dropSocket(1000, 'client closing');
    this.forgetSession();
    this.setStatus({ kind: 'offline', reason: 'stopped' });
  }

  /** Skip the remaining backoff delay (the browser came back online, or the user asked). */
  retryNow(): void {
    if (!this.running || this._status.kind !== 'reconnecting') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  /**
   * Send a request with a fresh `rid` and resolve with the reply carrying that rid.
   * Rejects with ProtocolError for an `error` reply and DisconnectedError when not
   * connected or when the connection drops first.
   */
  request<T extends ServerMsg>(msg: Outgoing): Promise<T> {
    if (!this.connected || !this.ws || this.ws.readyState !== OPEN) {
      return Promise.reject(new DisconnectedError());
    }
    const rid = `r${this.nextRid++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(rid, { resolve: resolve as (m: ServerMsg) => void, reject });
      try {
        this.ws?.send(JSON.stringify({ ...msg, rid }));
      } catch {
        this.pending.delete(rid);
        reject(new DisconnectedError());
      }
    });
  }

  /** Send a frame that gets no reply when accepted (`caret`); false when not connected. */
  send(msg: Outgoing): boolean {
    if (!this.connected || !this.ws || this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Swap in a fresh token in-band (`refresh`); it is also used by every later `hello`. */
  async refreshToken(token: string): Promise<void> {
    if (!this.connected) return; // the next hello reads the new token via getToken()
    await this.request({ type: 'refresh', token });
  }

  // --- connection lifecycle --------------------------------------------------------------

  private open(): void {
    this.clearTimers();
    this.setStatus({ kind: 'connecting', attempt: this.attempt });
    let ws: SocketLike;
    try {
      ws = this.opts.createSocket(this.opts.url);
    } catch {
      this.scheduleReconnect(1006);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      const hello: Outgoing = { type: 'hello', token: this.opts.getToken(), client: CLIENT_NAME };
      if (this.resumeSession) hello.resume = this.resumeSession;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.handleFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.handleClose(ev.code);
    };
    ws.onerror = () => {
      // A close event always follows; the decision is made there.
    };
    this.welcomeTimer = setTimeout(() => {
      if (this.ws === ws && this._status.kind !== 'connected') this.abandon();
    }, WELCOME_TIMEOUT_MS);
  }

  private handleFrame(data: unknown): void {
    this.lastFrameAt = Date.now();
    if (typeof data !== 'string') return;
    let msg: ServerMsg;
    try {
      msg = JSON.parse(data) as ServerMsg;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
    if (msg.type === 'welcome') {
      this.handleWelcome(msg);
      return;
    }
    const rid = 'rid' in msg && msg.rid !== undefined ? String(msg.rid) : null;
    const waiter = rid !== null ? this.pending.get(rid) : undefined;
    if (rid !== null && waiter) {
      this.pending.delete(rid);
      if (msg.type === 'error') waiter.reject(new ProtocolError(msg));
      else waiter.resolve(msg);
      return;
    }
    if (msg.type === 'error') {
      if (msg.code === 'token_expired') this.emit((l) => l.onTokenExpired?.());
      return;
    }
    if ('note' in msg && typeof msg.note === 'string') {
      const noteMsg = msg as NoteMsg;
      this.emit((l) => l.onNoteMessage?.(noteMsg));
    }
  }

  private handleWelcome(welcome: WelcomeMsg): void {
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.welcomeTimer = null;
    this._welcome = welcome;
    this.resumeSession = welcome.session;
    this.opts.sessionStore?.setItem(SESSION_STORAGE_KEY, welcome.session);
    this.attempt = 0;
    this.startHeartbeat(welcome.heartbeat_ms);
    this.setStatus({ kind: 'connected', session: welcome.session });
    this.emit((l) => l.onWelcome?.(welcome));
  }

  private startHeartbeat(intervalMs: number): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > intervalMs * LIVENESS_HEARTBEATS) {
        this.abandon();
        return;
      }
      const sentAt = Date.now();
      this.request<Extract<ServerMsg, { type: 'heartbeat_ack' }>>({ type: 'heartbeat' }).then(
        (ack) => this.emit((l) => l.onHeartbeatAck?.(sentAt, ack.leases ?? [])),
        () => undefined, // a lost heartbeat shows up as a lease deadline passing
      );
    }, intervalMs);
  }

  /** Give up on a connection that went silent; reconnect as after any drop. */
  private abandon(): void {
    this.dropSocket(CLIENT_ABANDON_CODE, 'no response');
    this.handleClose(1006);
  }

  private handleClose(code: number): void {
    this.ws = null;
    this.clearTimers();
    this.failPending();
    const reason = NO_RECONNECT[code];
    if (reason) {
      this.running = false;
      // Never fight over a session: a manual retry after 4409 starts a new one.
      if (reason === 'replaced') this.forgetSession();
      this.setStatus({ kind: 'offline', reason });
      return;
    }
    if (this.running) this.scheduleReconnect(code);
  }

  private scheduleReconnect(closeCode: number): void {
    const delay = backoffDelay(this.attempt, this.opts.backoff, this.opts.random);
    this.attempt++;
    this.setStatus({ kind: 'reconnecting', retryAt: Date.now() + delay, delayMs: delay, attempt: this.attempt, closeCode });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    this.failPending();
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      // already closed
    }
  }

  private forgetSession(): void {
    this.resumeSession = null;
    this.opts.sessionStore?.removeItem(SESSION_STORAGE_KEY);
  }

  private failPending(): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiters) w.reject(new DisconnectedError());
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.retryTimer = this.welcomeTimer = this.heartbeatTimer = null;
  }

  private setStatus(status: ConnectionStatus): void {
    this._status = status;
    this.emit((l) => l.onStatus?.(status));
  }

  private emit(fn: (l: SocketListener) => void): void {
    for (const l of [...this.listeners]) fn(l);
  }
}

/** `ws(s)://<this origin>/ws`: the client always talks to the origin that served it. */
export function defaultSocketUrl(loc: Location = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}
