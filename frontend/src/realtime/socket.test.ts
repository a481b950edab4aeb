import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeWebSocket, harness, welcome } from '../test/fakeSocket';
import { CollabSocket, DisconnectedError, ProtocolError, WELCOME_TIMEOUT_MS } from './socket';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('CollabSocket handshake', () => {
  it('sends hello first with the token and nothing before welcome', async () => {
    const h = harness();
    h.socket.start();
    const ws = h.current();
    expect(ws.url).toBe('ws://test/ws');
    ws.open();
    expect(ws.sent).toEqual([{ type: 'hello', token: 'jwt-token', client: 'collab-web/1.0' }]);
    await expect(h.socket.request({ type: 'subscribe', note: 'n1' })).rejects.toBeInstanceOf(DisconnectedError);
    expect(ws.sent).toHaveLength(1);
    ws.receive({ type: 'welcome', protocol: 1, session: 's-1', user: {}, server: 'r', heartbeat_ms: 1000, lease_ttl_ms: 3000, resumed: false, leases: [] });
    expect(h.socket.status).toEqual({ kind: 'connected', session: 's-1' });
  });

  it('matches replies by rid and rejects error replies with the code', async () => {
    const h = harness();
    h.socket.start();
    const ws = h.connect();
    const ok = h.socket.request({ type: 'subscribe', note: 'n1' });
    const bad = h.socket.request({ type: 'subscribe', note: 'n2' });
    const [first, second] = ws.ofType('subscribe');
    expect(first!.rid).not.toBe(second!.rid);
    ws.receive({ type: 'error', rid: second!.rid, code: 'forbidden', message: 'no access' });
    ws.receive({ type: 'snapshot', rid: first!.rid, note: 'n1', content: 'x' });
    await expect(ok).resolves.toMatchObject({ type: 'snapshot', note: 'n1' });
    await expect(bad).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bad).rejects.toBeInstanceOf(ProtocolError);
  });

  it('routes note pushes and a deferred granted (rid of an answered acquire) to listeners', async () => {
    const h = harness();
    const seen: string[] = [];
    h.socket.addListener({ onNoteMessage: (m) => seen.push(m.type) });
    h.socket.start();
    const ws = h.connect();
    const acquire = h.socket.request({ type: 'acquire', note: 'n1', wait: true });
    ws.reply('acquire', { type: 'queued', note: 'n1', position: 1 });
    await expect(acquire).resolves.toMatchObject({ type: 'queued' });
    ws.receive({ type: 'granted', rid: ws.last('acquire').rid, note: 'n1', fence: 4, ttl_ms: 3000 });
    ws.receive({ type: 'lock', note: 'n1', lock: null });
    expect(seen).toEqual(['granted', 'lock']);
  });

  it('sends a frame without a rid only while connected (the caret)', () => {
    const h = harness();
    h.socket.start();
    expect(h.socket.send({ type: 'caret', note: 'n1' })).toBe(false);
    const ws = h.connect();
    expect(h.socket.send({ type: 'caret', note: 'n1', fence: 2, version: 3, anchor: 0, head: 1 })).toBe(true);
    expect(ws.last('caret')).toEqual({ type: 'caret', note: 'n1', fence: 2, version: 3, anchor: 0, head: 1 });
    ws.serverClose(1001);
    expect(h.socket.send({ type: 'caret', note: 'n1' })).toBe(false);
  });
});

describe('CollabSocket heartbeats', () => {
  it('sends a heartbeat every heartbeat_ms and reports the ack with its send time', () => {
    const h = harness();
    const acks: Array<[number, unknown]> = [];
    h.socket.addListener({ onHeartbeatAck: (sentAt, leases) => acks.push([sentAt, leases]) });
    h.socket.start();
    const ws = h.connect({ heartbeat_ms: 1000 });
    vi.advanceTimersByTime(999);
    expect(ws.ofType('heartbeat')).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(ws.ofType('heartbeat')).toHaveLength(1);
    const sentAt = Date.now();
    vi.advanceTimersByTime(300);
    ws.reply('heartbeat', { type: 'heartbeat_ack', leases: [{ note: 'n1', fence: 2, ttl_ms: 3000 }] });
    return Promise.resolve().then(() => {
      expect(acks).toEqual([[sentAt, [{ note: 'n1', fence: 2, ttl_ms: 3000 }]]]);
    });
  });

  it('abandons a silent connection and reconnects', () => {
    const h = harness();
    h.socket.start();
    const ws = h.connect({ heartbeat_ms: 1000 });
    vi.advanceTimersByTime(3000);
    expect(ws.closedWith).toBe(4000);
    expect(h.socket.status.kind).toBe('reconnecting');
  });

  it('gives up on a connection that never says welcome', () => {
    const h = harness();
    h.socket.start();
    h.current().open();
    vi.advanceTimersByTime(WELCOME_TIMEOUT_MS);
    expect(h.current().closedWith).toBe(4000);
    expect(h.socket.status.kind).toBe('reconnecting');
  });
});

describe('CollabSocket reconnects', () => {
  it('retries with growing jittered delays and resumes the session', async () => {
    const h = harness();
    h.socket.start();
    h.connect({ session: 's-first' });
    const pending = h.socket.request({ type: 'subscribe', note: 'n1' });
    h.current().serverClose(1006);
    await expect(pending).rejects.toBeInstanceOf(DisconnectedError);
    // random() = 0.5 -> 75% of the nominal delay: 375 ms, then 750 ms, then 1500 ms.
    expect(h.socket.status).toMatchObject({ kind: 'reconnecting', delayMs: 375 });
    vi.advanceTimersByTime(374);
    expect(h.sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(h.sockets).toHaveLength(2);
    h.current().serverClose(1006);
    expect(h.socket.status).toMatchObject({ kind: 'reconnecting', delayMs: 750 });
    vi.advanceTimersByTime(750);
    const ws = h.current();
    ws.open();
    expect(ws.sent[0]).toMatchObject({ type: 'hello', resume: 's-first' });
    ws.receive({ type: 'welcome', protocol: 1, session: 's-first', user: {}, server: 'r', heartbeat_ms: 1000, lease_ttl_ms: 3000, resumed: true, leases: [] });
    // A successful welcome resets the backoff.
    ws.serverClose(1012);
    expect(h.socket.status).toMatchObject({ kind: 'reconnecting', delayMs: 375 });
  });

  it.each([
    [4401, 'unauthorized'],
    [4403, 'forbidden'],
    [4409, 'replaced'],
  ])('does not reconnect after close %i', (code, reason) => {
    const h = harness();
    h.socket.start();
    h.connect();
    h.current().serverClose(code);
    expect(h.socket.status).toEqual({ kind: 'offline', reason });
    vi.advanceTimersByTime(60_000);
    expect(h.sockets).toHaveLength(1);
  });

  it('retryNow skips the remaining delay; stop ends everything', () => {
    const h = harness();
    h.socket.start();
    h.connect();
    h.current().serverClose(1006);
    h.socket.retryNow();
    expect(h.sockets).toHaveLength(2);
    h.socket.stop();
    expect(h.current().closedWith).toBe(1000);
    vi.advanceTimersByTime(60_000);
    expect(h.sockets).toHaveLength(2);
  });

  it('asks for a token refresh on token_expired and sends refresh in-band', async () => {
    const h = harness();
    const expired = vi.fn();
    h.socket.addListener({ onTokenExpired: expired });
    h.socket.start();
    const ws = h.connect();
    ws.receive({ type: 'error', code: 'token_expired', message: 'expired' });
    expect(expired).toHaveBeenCalledOnce();
    const done = h.socket.refreshToken('new-token');
    expect(ws.last('refresh')).toMatchObject({ token: 'new-token' });
    ws.reply('refresh', { type: 'refreshed', expires_at: '2030-01-01T00:00:00Z' });
    await expect(done).resolves.toBeUndefined();
  });
});

describe('CollabSocket session storage', () => {
  it('resumes the stored session after a reload and forgets it after 4409', () => {
    const store = new Map<string, string>([['collab.session', 's-before-reload']]);
    const sessionStore = {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    };
    const sockets: FakeWebSocket[] = [];
    const socket = new CollabSocket({
      url: 'ws://test/ws',
      getToken: () => 't',
      createSocket: (url) => {
        const ws = new FakeWebSocket(url);
        sockets.push(ws);
        return ws;
      },
      sessionStore,
    });
    socket.start();
    sockets[0]!.open();
    expect(sockets[0]!.sent[0]).toMatchObject({ type: 'hello', resume: 's-before-reload' });
    sockets[0]!.receive(welcome({ session: 's-new' }));
    expect(store.get('collab.session')).toBe('s-new');
    sockets[0]!.serverClose(4409);
    expect(store.has('collab.session')).toBe(false);
  });
});
