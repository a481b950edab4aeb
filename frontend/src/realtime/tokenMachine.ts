/**
 * This tab's claim on a note's write token as a pure state machine: `step(state, event)`
 * returns the next state and the commands the session must carry out (send a frame, flush
 * the outbox, keep a draft...). Nothing here touches a socket, a timer or the clock; every
 * fact a decision needs arrives inside the event, so every transition is a table entry that
 * a unit test can call directly (protocol.md, "Write token").
 *
 * Roles:
 * - `none`: no claim (or a claim to restore once connected, see `want`).
 * - `acquiring`: an `acquire` is in flight.
 * - `waiting`: queued behind another holder.
 * - `catching-up`: granted; fetching edits committed before the grant so our first edit's
 *   base is current (otherwise it would be refused as `stale`).
 * - `holder`: granted and caught up: typing is sent.
 * - `releasing`: the user let go; the last edits are being saved before `release`.
 *
 * The idle hand-off (protocol.md, "Idle hand-off") reaches the machine too: a warning for the
 * token held is shown only while holding, "keep editing" is sent only while holding, and a
 * `lease_lost` with reason `idle` ends the claim like any loss (with its own notice).
 */
import type { TokenRole } from './noteState';

/** What the user asked for, kept across reconnects so the claim can be restored. */
export type Want = 'none' | 'hold' | 'wait';

export interface TokenState {
  role: TokenRole;
  want: Want;
  fence: number | null;
  queuePosition: number | null;
  /** Clock time the current grant arrived (a heartbeat sent before it proves nothing). */
  grantedAt: number;
  /** Acquires retried in a row (bounded by MAX_ACQUIRE_RETRIES). */
  retries: number;
}

/** Retries of one claim before it is given up (with the unsaved text kept as a draft). */
export const MAX_ACQUIRE_RETRIES = 30;

export const initialTokenState: TokenState = {
  role: 'none',
  want: 'none',
  fence: null,
  queuePosition: null,
  grantedAt: 0,
  retries: 0,
};

export type TokenEvent =
  /** The user asks to edit (waiting in line if someone else holds the token). */
  | { type: 'request' }
  /** The user lets go of the token, or leaves the line. */
  | { type: 'release' }
  /** `acquire` answered `queued`. */
  | { type: 'queued'; position: number }
  /**
   * `acquire` failed. `disconnected` ones are retried on the next welcome; `retryable` ones
   * after a pause: `unavailable`, `rate_limited`, or `locked` while nobody holds the note
   * (a lock-delay, or grants paused after a lock-service reset).
   */
  | { type: 'acquire-failed'; disconnected: boolean; retryable: boolean; locked: boolean; message: string }
  /** A grant (reply or deferred push). `stale` when its fence is below one already seen. */
  | { type: 'granted'; fence: number; deadline: number; now: number; stale: boolean }
  /** A snapshot shows this session already holds the token (a reload that resumed it). */
  | { type: 'adopt'; fence: number; deadline: number; now: number; stale: boolean }
  /** The catch-up `sync` after the grant of `fence` finished. */
  | { type: 'caught-up'; fence: number }
  /** Nothing is left in the outbox and the socket is connected. */
  | { type: 'outbox-idle' }
  /** `release` answered (or refused: either way the token is no longer ours). */
  | { type: 'released' }
  /** `lease_lost` push. */
  | { type: 'lease-lost'; fence: number; reason: string }
  /** An edit was refused as `fenced`. */
  | { type: 'fenced' }
  /** A `lock` push (or the lock in a snapshot); `queueIndex` is our place, -1 if absent. */
  | { type: 'lock'; fence: number | null; queueIndex: number }
  /** A heartbeat ack: our lease on this note (if any) and when that heartbeat was sent. */
  | { type: 'heartbeat-ack'; leaseFence: number | null; deadline: number; sentAt: number }
  /** A new `welcome`: the leases the (possibly resumed) session still has. */
  | { type: 'welcome'; leaseFence: number | null; deadline: number }
  /** The note was subscribed again after a welcome. */
  | { type: 'resubscribed'; resumed: boolean; inQueue: boolean }
  /** `idle_warning` push: the hand-off of `fence` at clock time `deadline`, or (null) withdrawn. */
  | { type: 'idle-warning'; fence: number; deadline: number | null }
  /** The user chose "keep editing". */
  | { type: 'keep' }
  /** `keep` answered: the idle clock restarted. */
  | { type: 'kept' };

export type TokenEventType = TokenEvent['type'];

export type TokenCommand =
  | { type: 'send-acquire'; wait: boolean }
  /** Send `acquire` again after a pause, if still acquiring then. */
  | { type: 'retry-acquire'; wait: boolean }
  /**
   * `fence` null: leave the line. `settle`: the answer ends our claim (`released` follows);
   * otherwise (leaving the line, handing back an unwanted grant) the answer changes nothing.
   */
  | { type: 'send-release'; fence: number | null; settle: boolean }
  | { type: 'sync-after-grant'; fence: number }
  | { type: 'note-fence'; fence: number }
  | { type: 'flush' }
  | { type: 'release-when-flushed' }
  | { type: 'set-deadline'; at: number }
  | { type: 'clear-deadline' }
  /** Unsent edits become a visible draft (with this reason); the editor shows the server text. */
  | { type: 'keep-draft'; reason: string }
  /** `reason` is a key of LOSS_REASONS, or `text` is shown as is; both null clear it. */
  | { type: 'notice'; reason: string | null; text?: string }
  /** Show the idle hand-off warning with its deadline (clock time), or (null) take it away. */
  | { type: 'warn-idle'; deadline: number | null }
  | { type: 'send-keep' };

export interface Step {
  state: TokenState;
  commands: TokenCommand[];
}

type Handler<K extends TokenEventType> = (state: TokenState, event: Extract<TokenEvent, { type: K }>) => Step;
type Row = { [K in TokenEventType]: Handler<K> };

const stay = (state: TokenState): Step => ({ state, commands: [] });

// --- shared transitions -------------------------------------------------------------------

function acquire(state: TokenState, want: Want, wait: boolean, clearNotice: boolean): Step {
  const commands: TokenCommand[] = clearNotice ? [{ type: 'notice', reason: null }] : [];
  commands.push({ type: 'send-acquire', wait });
  return { state: { ...state, role: 'acquiring', want, retries: 0 }, commands };
}

function accept(state: TokenState, e: { fence: number; deadline: number; now: number }): Step {
  return {
    state: {
      ...state,
      role: 'catching-up',
      want: 'hold',
      fence: e.fence,
      queuePosition: null,
      grantedAt: e.now,
      retries: 0,
    },
    commands: [
      { type: 'note-fence', fence: e.fence },
      { type: 'notice', reason: null },
      { type: 'set-deadline', at: e.deadline },
      { type: 'sync-after-grant', fence: e.fence },
    ],
  };
}

/** A grant: taken when the user still wants the token, else handed straight back. */
function granted(state: TokenState, e: Extract<TokenEvent, { type: 'granted' }>): Step {
  if (e.stale) return stay(state);
  if (state.want === 'none' && state.role !== 'acquiring') {
    return { state, commands: [{ type: 'send-release', fence: e.fence, settle: false }] };
  }
  return accept(state, e);
}

/** The token is gone (expired, revoked, fenced, taken): keep unsaved text as a draft. */
function lose(state: TokenState, reason: string): Step {
  const releasing = state.role === 'releasing';
  return {
    state: { ...state, role: 'none', want: 'none', fence: null },
    commands: [
      { type: 'keep-draft', reason },
      { type: 'clear-deadline' },
      { type: 'warn-idle', deadline: null },
      { type: 'notice', reason: releasing ? null : reason },
    ],
  };
}

function acquireFailed(state: TokenState, e: Extract<TokenEvent, { type: 'acquire-failed' }>): Step {
  const role = state.role === 'acquiring' ? 'none' : state.role;
  if (e.disconnected) return { state: { ...state, role }, commands: [] };
  if (e.retryable && state.want !== 'none' && state.retries < MAX_ACQUIRE_RETRIES) {
    // The note is free again soon: keep the claim (and the unsaved text) and ask again.
    return {
      state: { ...state, role: 'acquiring', retries: state.retries + 1 },
      commands: [{ type: 'retry-acquire', wait: state.want === 'wait' }],
    };
  }
  return {
    state: { ...state, role, want: 'none' },
    commands: [
      { type: 'keep-draft', reason: e.locked ? 'taken' : 'refused' },
      { type: 'notice', reason: null, text: `Could not get the write token: ${e.message}` },
    ],
  };
}

function heartbeat(state: TokenState, e: Extract<TokenEvent, { type: 'heartbeat-ack' }>): Step {
  if (e.leaseFence !== null && e.leaseFence === state.fence) {
    // The lease was renewed no earlier than this heartbeat left us: a safe deadline.
    return { state, commands: [{ type: 'set-deadline', at: e.deadline }, { type: 'flush' }] };
  }
  return e.sentAt > state.grantedAt ? lose(state, 'expired') : stay(state);
}

function leaseLost(state: TokenState, e: Extract<TokenEvent, { type: 'lease-lost' }>): Step {
  const step = state.fence !== null && e.fence >= state.fence ? lose(state, e.reason) : stay(state);
  return { state: step.state, commands: [{ type: 'note-fence', fence: e.fence }, ...step.commands] };
}

/** Welcome while holding: a resumed session kept its lease (rule 9); otherwise it is gone. */
function welcomeHeld(state: TokenState, e: Extract<TokenEvent, { type: 'welcome' }>): Step {
  if (e.leaseFence !== null && e.leaseFence === state.fence) {
    return { state, commands: [{ type: 'set-deadline', at: e.deadline }] };
  }
  // Lost while disconnected (e.g. the server restarted): claim it again once subscribed so
  // the unsaved text can still be saved.
  return { state: { ...state, role: 'none', want: 'hold', fence: null }, commands: [{ type: 'clear-deadline' }] };
}

function takenByNewerFence(state: TokenState, e: Extract<TokenEvent, { type: 'lock' }>): Step {
  return e.fence !== null && state.fence !== null && e.fence > state.fence ? lose(state, 'taken') : stay(state);
}

function leaveLine(state: TokenState): Step {
  return {
    state: { ...state, role: 'none', want: 'none', queuePosition: null },
    commands: [{ type: 'send-release', fence: null, settle: false }],
  };
}

/** A warning about the token held now (not an older one) is shown; null withdraws it. */
function idleWarning(state: TokenState, e: Extract<TokenEvent, { type: 'idle-warning' }>): Step {
  if (e.fence !== state.fence) return stay(state);
  return { state, commands: [{ type: 'warn-idle', deadline: e.deadline }] };
}

function keep(state: TokenState): Step {
  return { state, commands: [{ type: 'warn-idle', deadline: null }, { type: 'send-keep' }] };
}

const unwarn = (state: TokenState): Step => ({ state, commands: [{ type: 'warn-idle', deadline: null }] });

function startReleasing(state: TokenState): Step {
  return {
    state: { ...state, role: 'releasing', want: 'none' },
    commands: [{ type: 'warn-idle', deadline: null }, { type: 'flush' }, { type: 'release-when-flushed' }],
  };
}

// --- the table ----------------------------------------------------------------------------

const held = {
  'acquire-failed': (s: TokenState) => stay(s),
  granted,
  adopt: (s: TokenState) => stay(s),
  'lease-lost': leaseLost,
  fenced: (s: TokenState) => lose(s, 'fenced'),
  'heartbeat-ack': heartbeat,
  welcome: welcomeHeld,
  queued: (s: TokenState) => stay(s),
  released: (s: TokenState) => stay(s),
  'outbox-idle': (s: TokenState) => stay(s),
  request: (s: TokenState) => stay(s),
  kept: unwarn,
} satisfies Partial<Row>;

export const transitions: Record<TokenRole, Row> = {
  none: {
    request: (s) => acquire(s, 'wait', true, true),
    release: (s) => stay({ ...s, want: 'none' }),
    queued: stay,
    'acquire-failed': acquireFailed,
    granted,
    adopt: (s, e) => (e.stale ? stay(s) : accept(s, e)),
    'caught-up': stay,
    'outbox-idle': stay,
    released: stay,
    'lease-lost': (s, e) => ({ state: s, commands: [{ type: 'note-fence', fence: e.fence }] }),
    fenced: stay,
    lock: stay,
    'heartbeat-ack': stay,
    welcome: stay,
    resubscribed: (s) => {
      if (s.want === 'hold') return acquire(s, 'hold', false, false);
      if (s.want === 'wait') return acquire(s, 'wait', true, false);
      return stay(s);
    },
    'idle-warning': stay,
    keep: stay,
    kept: stay,
  },
  acquiring: {
    request: (s) => acquire(s, 'wait', true, true),
    release: leaveLine,
    queued: (s, e) => ({ state: { ...s, role: 'waiting', queuePosition: e.position, retries: 0 }, commands: [] }),
    'acquire-failed': acquireFailed,
    granted,
    adopt: stay,
    'caught-up': stay,
    'outbox-idle': stay,
    released: stay,
    'lease-lost': (s, e) => ({ state: s, commands: [{ type: 'note-fence', fence: e.fence }] }),
    fenced: stay,
    lock: stay,
    'heartbeat-ack': stay,
    welcome: stay,
    resubscribed: stay,
    'idle-warning': stay,
    keep: stay,
    kept: stay,
  },
  waiting: {
    request: (s) => acquire(s, 'wait', true, true),
    release: leaveLine,
    queued: stay,
    'acquire-failed': acquireFailed,
    granted,
    adopt: stay,
    'caught-up': stay,
    'outbox-idle': stay,
    released: stay,
    'lease-lost': (s, e) => ({ state: s, commands: [{ type: 'note-fence', fence: e.fence }] }),
    fenced: stay,
    lock: (s, e) => (e.queueIndex >= 0 ? stay({ ...s, queuePosition: e.queueIndex + 1 }) : stay(s)),
    'heartbeat-ack': stay,
    welcome: stay,
    // A new session is not in the line; a resumed one is, unless the line forgot it.
    resubscribed: (s, e) => (!e.resumed || !e.inQueue ? acquire(s, 'wait', true, false) : stay(s)),
    'idle-warning': stay,
    keep: stay,
    kept: stay,
  },
  'catching-up': {
    ...held,
    release: startReleasing,
    'caught-up': (s, e) =>
      e.fence === s.fence ? { state: { ...s, role: 'holder' }, commands: [{ type: 'flush' }] } : stay(s),
    lock: takenByNewerFence,
    resubscribed: stay,
    'idle-warning': idleWarning,
    keep,
  },
  holder: {
    ...held,
    release: startReleasing,
    'caught-up': stay,
    lock: takenByNewerFence,
    resubscribed: (s) => ({ state: s, commands: [{ type: 'flush' }] }),
    'idle-warning': idleWarning,
    keep,
  },
  releasing: {
    ...held,
    release: stay,
    'caught-up': stay,
    'outbox-idle': (s) => ({ state: s, commands: [{ type: 'send-release', fence: s.fence, settle: true }] }),
    released: (s) => ({
      state: { ...s, role: 'none', want: 'none', fence: null },
      commands: [{ type: 'clear-deadline' }],
    }),
    lock: stay,
    resubscribed: (s) => ({ state: s, commands: [{ type: 'flush' }, { type: 'release-when-flushed' }] }),
    // The token is being handed back anyway: no warning, nothing to keep.
    'idle-warning': unwarn,
    keep: unwarn,
  },
};

export function step(state: TokenState, event: TokenEvent): Step {
  const handler = transitions[state.role][event.type] as (s: TokenState, e: TokenEvent) => Step;
  return handler(state, event);
}

/** Roles in which this tab holds (or is finishing with) the token. */
export function holdsToken(role: TokenRole): boolean {
  return role === 'holder' || role === 'catching-up' || role === 'releasing';
}
