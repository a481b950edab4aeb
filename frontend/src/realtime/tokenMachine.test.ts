import { describe, expect, it } from 'vitest';
import type { TokenRole } from './noteState';
import {
  initialTokenState,
  MAX_ACQUIRE_RETRIES,
  step,
  transitions,
  type TokenEvent,
  type TokenEventType,
  type TokenState,
} from './tokenMachine';

const ROLES: TokenRole[] = ['none', 'acquiring', 'waiting', 'catching-up', 'holder', 'releasing'];

/** A typical state for each role (what the session would be in). */
const STATES: Record<TokenRole, TokenState> = {
  none: initialTokenState,
  acquiring: { ...initialTokenState, role: 'acquiring', want: 'wait' },
  waiting: { ...initialTokenState, role: 'waiting', want: 'wait', queuePosition: 2 },
  'catching-up': { role: 'catching-up', want: 'hold', fence: 5, queuePosition: null, grantedAt: 100, retries: 0 },
  holder: { role: 'holder', want: 'hold', fence: 5, queuePosition: null, grantedAt: 100, retries: 0 },
  releasing: { role: 'releasing', want: 'none', fence: 5, queuePosition: null, grantedAt: 100, retries: 0 },
};

/** One representative event of each type. */
const EVENTS: { [K in TokenEventType]: Extract<TokenEvent, { type: K }> } = {
  request: { type: 'request' },
  release: { type: 'release' },
  queued: { type: 'queued', position: 3 },
  'acquire-failed': { type: 'acquire-failed', disconnected: false, retryable: false, locked: true, message: 'held' },
  granted: { type: 'granted', fence: 6, deadline: 3000, now: 200, stale: false },
  adopt: { type: 'adopt', fence: 6, deadline: 3000, now: 200, stale: false },
  'caught-up': { type: 'caught-up', fence: 5 },
  'outbox-idle': { type: 'outbox-idle' },
  released: { type: 'released' },
  'lease-lost': { type: 'lease-lost', fence: 5, reason: 'revoked' },
  fenced: { type: 'fenced' },
  lock: { type: 'lock', fence: 6, queueIndex: 0 },
  'heartbeat-ack': { type: 'heartbeat-ack', leaseFence: 5, deadline: 4000, sentAt: 150 },
  welcome: { type: 'welcome', leaseFence: null, deadline: 0 },
  resubscribed: { type: 'resubscribed', resumed: true, inQueue: false },
  'idle-warning': { type: 'idle-warning', fence: 5, deadline: 9000 },
  keep: { type: 'keep' },
  kept: { type: 'kept' },
};

type Outcome = [TokenRole, string[]];
const GRANT = ['note-fence', 'notice', 'set-deadline', 'sync-after-grant'];
const LOSE = ['keep-draft', 'clear-deadline', 'warn-idle', 'notice'];
const same = (role: TokenRole): Outcome => [role, []];

/** Expected next role and command types for every role x every event. */
const EXPECTED: Record<TokenEventType, Record<TokenRole, Outcome>> = {
  request: {
    none: ['acquiring', ['notice', 'send-acquire']],
    acquiring: ['acquiring', ['notice', 'send-acquire']],
    waiting: ['acquiring', ['notice', 'send-acquire']],
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: same('releasing'),
  },
  release: {
    none: same('none'),
    acquiring: ['none', ['send-release']],
    waiting: ['none', ['send-release']],
    'catching-up': ['releasing', ['warn-idle', 'flush', 'release-when-flushed']],
    holder: ['releasing', ['warn-idle', 'flush', 'release-when-flushed']],
    releasing: same('releasing'),
  },
  queued: {
    none: same('none'),
    acquiring: same('waiting'),
    waiting: same('waiting'),
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: same('releasing'),
  },
  'acquire-failed': {
    none: ['none', ['keep-draft', 'notice']],
    acquiring: ['none', ['keep-draft', 'notice']],
    waiting: ['waiting', ['keep-draft', 'notice']],
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: same('releasing'),
  },
  granted: {
    none: ['none', ['send-release']],
    acquiring: ['catching-up', GRANT],
    waiting: ['catching-up', GRANT],
    'catching-up': ['catching-up', GRANT],
    holder: ['catching-up', GRANT],
    releasing: ['releasing', ['send-release']],
  },
  adopt: {
    none: ['catching-up', GRANT],
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: same('releasing'),
  },
  'caught-up': {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['holder', ['flush']],
    holder: same('holder'),
    releasing: same('releasing'),
  },
  'outbox-idle': {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: ['releasing', ['send-release']],
  },
  released: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': same('catching-up'),
    holder: same('holder'),
    releasing: ['none', ['clear-deadline']],
  },
  'lease-lost': {
    none: ['none', ['note-fence']],
    acquiring: ['acquiring', ['note-fence']],
    waiting: ['waiting', ['note-fence']],
    'catching-up': ['none', ['note-fence', ...LOSE]],
    holder: ['none', ['note-fence', ...LOSE]],
    releasing: ['none', ['note-fence', ...LOSE]],
  },
  fenced: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['none', LOSE],
    holder: ['none', LOSE],
    releasing: ['none', LOSE],
  },
  lock: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['none', LOSE],
    holder: ['none', LOSE],
    releasing: same('releasing'),
  },
  'heartbeat-ack': {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['catching-up', ['set-deadline', 'flush']],
    holder: ['holder', ['set-deadline', 'flush']],
    releasing: ['releasing', ['set-deadline', 'flush']],
  },
  welcome: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['none', ['clear-deadline']],
    holder: ['none', ['clear-deadline']],
    releasing: ['none', ['clear-deadline']],
  },
  resubscribed: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: ['acquiring', ['send-acquire']],
    'catching-up': same('catching-up'),
    holder: ['holder', ['flush']],
    releasing: ['releasing', ['flush', 'release-when-flushed']],
  },
  'idle-warning': {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['catching-up', ['warn-idle']],
    holder: ['holder', ['warn-idle']],
    releasing: ['releasing', ['warn-idle']],
  },
  keep: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['catching-up', ['warn-idle', 'send-keep']],
    holder: ['holder', ['warn-idle', 'send-keep']],
    releasing: ['releasing', ['warn-idle']],
  },
  kept: {
    none: same('none'),
    acquiring: same('acquiring'),
    waiting: same('waiting'),
    'catching-up': ['catching-up', ['warn-idle']],
    holder: ['holder', ['warn-idle']],
    releasing: ['releasing', ['warn-idle']],
  },
};

describe('token machine: every role x every event', () => {
  it('has a table entry for every role and event type', () => {
    for (const role of ROLES) {
      expect(Object.keys(transitions[role]).sort()).toEqual(Object.keys(EVENTS).sort());
    }
  });

  for (const type of Object.keys(EVENTS) as TokenEventType[]) {
    for (const role of ROLES) {
      const [nextRole, commands] = EXPECTED[type][role];
      it(`${role} + ${type} -> ${nextRole} [${commands.join(', ')}]`, () => {
        const before = structuredClone(STATES[role]);
        const out = step(STATES[role], EVENTS[type]);
        expect(out.state.role).toBe(nextRole);
        expect(out.commands.map((c) => c.type)).toEqual(commands);
        expect(STATES[role]).toEqual(before); // pure: the input is never modified
      });
    }
  }
});

describe('token machine: details', () => {
  it('acquires without waiting to recover a claim lost while disconnected', () => {
    const lost = step(STATES.holder, { type: 'welcome', leaseFence: null, deadline: 0 });
    expect(lost.state).toMatchObject({ role: 'none', want: 'hold', fence: null });
    const again = step(lost.state, { type: 'resubscribed', resumed: false, inQueue: false });
    expect(again.state.role).toBe('acquiring');
    expect(again.commands).toEqual([{ type: 'send-acquire', wait: false }]);
  });

  it('keeps the token when the resumed session still holds the same lease', () => {
    const out = step(STATES.holder, { type: 'welcome', leaseFence: 5, deadline: 1234 });
    expect(out.state).toBe(STATES.holder);
    expect(out.commands).toEqual([{ type: 'set-deadline', at: 1234 }]);
  });

  it('queues again after a reconnect when the user was waiting or wanted to', () => {
    const stillQueued = step(STATES.waiting, { type: 'resubscribed', resumed: true, inQueue: true });
    expect(stillQueued.commands).toEqual([]);
    const wanted = step({ ...initialTokenState, want: 'wait' }, { type: 'resubscribed', resumed: true, inQueue: false });
    expect(wanted.commands).toEqual([{ type: 'send-acquire', wait: true }]);
  });

  it('ignores a stale grant and hands back one nobody wants', () => {
    expect(step(STATES.acquiring, { ...EVENTS.granted, stale: true }).commands).toEqual([]);
    expect(step(STATES.none, EVENTS.granted).commands).toEqual([{ type: 'send-release', fence: 6, settle: false }]);
    expect(step(STATES.none, { ...EVENTS.adopt, stale: true }).state.role).toBe('none');
  });

  it('records the grant: fence, deadline, receive time, no place in line', () => {
    const out = step(STATES.waiting, EVENTS.granted);
    expect(out.state).toEqual({
      role: 'catching-up',
      want: 'hold',
      fence: 6,
      queuePosition: null,
      grantedAt: 200,
      retries: 0,
    });
    expect(out.commands).toContainEqual({ type: 'set-deadline', at: 3000 });
    expect(out.commands).toContainEqual({ type: 'sync-after-grant', fence: 6 });
  });

  it('becomes holder only after the catch-up for the current grant', () => {
    expect(step(STATES['catching-up'], { type: 'caught-up', fence: 4 }).state.role).toBe('catching-up');
  });

  it('loses the token on an unanswered lease only for heartbeats sent after the grant', () => {
    const before = step(STATES.holder, { type: 'heartbeat-ack', leaseFence: null, deadline: 0, sentAt: 50 });
    expect(before.state.role).toBe('holder');
    const after = step(STATES.holder, { type: 'heartbeat-ack', leaseFence: null, deadline: 0, sentAt: 150 });
    expect(after.state.role).toBe('none');
    expect(after.commands).toContainEqual({ type: 'notice', reason: 'expired' });
  });

  it('ignores lease_lost for an older fence, and tells nobody when it ends a release', () => {
    expect(step(STATES.holder, { type: 'lease-lost', fence: 4, reason: 'expired' }).state.role).toBe('holder');
    const out = step(STATES.releasing, EVENTS.fenced);
    expect(out.commands).toContainEqual({ type: 'notice', reason: null });
  });

  it('updates the place in line from lock pushes and keeps it when we are not listed', () => {
    expect(step(STATES.waiting, { type: 'lock', fence: 6, queueIndex: 3 }).state.queuePosition).toBe(4);
    expect(step(STATES.waiting, { type: 'lock', fence: 6, queueIndex: -1 }).state.queuePosition).toBe(2);
    expect(step(STATES.holder, { type: 'lock', fence: 5, queueIndex: -1 }).state.role).toBe('holder');
    expect(step(STATES.holder, { type: 'lock', fence: null, queueIndex: -1 }).state.role).toBe('holder');
  });

  it('keeps the wish to wait when acquire failed only because the connection dropped', () => {
    const out = step(STATES.acquiring, { ...EVENTS['acquire-failed'], disconnected: true });
    expect(out.state).toMatchObject({ role: 'none', want: 'wait' });
    expect(out.commands).toEqual([]);
    const refused = step(STATES.acquiring, { ...EVENTS['acquire-failed'], locked: false });
    expect(refused.state.want).toBe('none');
    expect(refused.commands[0]).toEqual({ type: 'keep-draft', reason: 'refused' });
  });

  it('retries an acquire the server asks to retry, unless the user gave up meanwhile', () => {
    const retryable = { ...EVENTS['acquire-failed'], retryable: true, locked: false };
    const recovering = step({ ...STATES.acquiring, want: 'hold' }, retryable);
    expect(recovering.state).toMatchObject({ role: 'acquiring', want: 'hold' });
    expect(recovering.commands).toEqual([{ type: 'retry-acquire', wait: false }]);
    expect(step(STATES.waiting, retryable).commands).toEqual([{ type: 'retry-acquire', wait: true }]);
    const exhausted = step({ ...STATES.acquiring, retries: MAX_ACQUIRE_RETRIES }, retryable);
    expect(exhausted.state).toMatchObject({ role: 'none', want: 'none' });
    const gaveUp = step(STATES.none, retryable);
    expect(gaveUp.state.role).toBe('none');
    expect(gaveUp.commands.map((c) => c.type)).toEqual(['keep-draft', 'notice']);
  });

  it('sends the release that settles the claim once the outbox is empty', () => {
    expect(step(STATES.releasing, EVENTS['outbox-idle']).commands).toEqual([
      { type: 'send-release', fence: 5, settle: true },
    ]);
    expect(step(STATES.waiting, EVENTS.release).commands).toEqual([{ type: 'send-release', fence: null, settle: false }]);
  });
});

describe('token machine: idle hand-off', () => {
  it('shows a warning only for the token held now, and withdraws it on null', () => {
    expect(step(STATES.holder, EVENTS['idle-warning']).commands).toEqual([{ type: 'warn-idle', deadline: 9000 }]);
    expect(step(STATES.holder, { ...EVENTS['idle-warning'], fence: 4 }).commands).toEqual([]);
    expect(step(STATES.holder, { ...EVENTS['idle-warning'], deadline: null }).commands).toEqual([
      { type: 'warn-idle', deadline: null },
    ]);
  });

  it('never warns while releasing: the token is being handed back anyway', () => {
    expect(step(STATES.releasing, EVENTS['idle-warning']).commands).toEqual([{ type: 'warn-idle', deadline: null }]);
  });

  it('sends keep only while holding, and takes the warning away at once', () => {
    const out = step(STATES.holder, EVENTS.keep);
    expect(out.state).toBe(STATES.holder);
    expect(out.commands).toEqual([{ type: 'warn-idle', deadline: null }, { type: 'send-keep' }]);
    expect(step(STATES.waiting, EVENTS.keep).commands).toEqual([]);
  });

  it('ends the claim on lease_lost idle: read-only, warning gone, the idle notice shown', () => {
    const out = step(STATES.holder, { type: 'lease-lost', fence: 5, reason: 'idle' });
    expect(out.state).toMatchObject({ role: 'none', want: 'none', fence: null });
    expect(out.commands).toEqual([
      { type: 'note-fence', fence: 5 },
      { type: 'keep-draft', reason: 'idle' },
      { type: 'clear-deadline' },
      { type: 'warn-idle', deadline: null },
      { type: 'notice', reason: 'idle' },
    ]);
  });

  it('ignores lease_lost idle for an older token', () => {
    const out = step(STATES.holder, { type: 'lease-lost', fence: 4, reason: 'idle' });
    expect(out.state).toBe(STATES.holder);
    expect(out.commands).toEqual([{ type: 'note-fence', fence: 4 }]);
  });
});
