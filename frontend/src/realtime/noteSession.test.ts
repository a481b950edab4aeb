import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Lock, SnapshotMsg, UserBrief } from '../api/types';
import { BOB, harness, ME, type FakeWebSocket, type Frame } from '../test/fakeSocket';
import { lockView } from './lockView';
import { ACQUIRE_RETRY_MS, BATCH_MS, NoteSession } from './noteSession';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const flush = () => vi.advanceTimersByTimeAsync(0);

function snapshot(extra: Partial<SnapshotMsg> = {}): Frame {
  return {
    type: 'snapshot',
    note: 'n1',
    title: 'Plan',
    content: 'hello',
    version: 3,
    access: 'write',
    lock: null,
    viewers: [ME],
    ...extra,
  };
}

function bobLock(fence: number, queue: UserBrief[] = [ME]): Lock {
  return { holder: { id: BOB.id, name: BOB.name }, session: 's-bob', fence, since: '2025-01-01T00:00:00Z', queue };
}

async function openNote(snap: Partial<SnapshotMsg> = {}) {
  const h = harness();
  h.socket.start();
  const ws = h.connect();
  const note = new NoteSession(h.socket, 'n1', ME);
  note.attach();
  ws.reply('subscribe', snapshot(snap));
  await flush();
  return { h, ws, note };
}

async function grant(ws: FakeWebSocket, note: NoteSession, fence = 5) {
  void note.requestToken();
  ws.reply('acquire', { type: 'granted', note: 'n1', fence, ttl_ms: 3000 });
  await flush();
  const v = note.getState().version;
  ws.reply('sync', { type: 'changes', note: 'n1', from: v, to: v, edits: [] });
  await flush();
}

function edited(version: number, changes: Frame[], op = `op-${version}`): Frame {
  return { type: 'edited', note: 'n1', version, base: version - 1, op, changes, by: { id: BOB.id, name: BOB.name } };
}

describe('viewer', () => {
  it('shows the snapshot read-only and applies edited pushes live', async () => {
    const { ws, note } = await openNote();
    expect(note.getState()).toMatchObject({ loaded: true, text: 'hello', version: 3, writable: false });
    ws.receive(edited(4, [{ at: 5, del: 0, ins: ' world' }]));
    ws.receive(edited(4, [{ at: 5, del: 0, ins: ' world' }])); // duplicate: ignored
    expect(note.getState()).toMatchObject({ text: 'hello world', version: 4 });
  });

  it('buffers an edit after a gap, syncs, then applies everything in order', async () => {
    const { ws, note } = await openNote();
    ws.receive(edited(5, [{ at: 0, del: 0, ins: '2' }]));
    expect(note.getState().version).toBe(3);
    expect(ws.last('sync')).toMatchObject({ note: 'n1', since: 3 });
    ws.reply('sync', { type: 'changes', note: 'n1', from: 3, to: 5, edits: [edited(4, [{ at: 0, del: 0, ins: '1' }])] });
    await flush();
    expect(note.getState()).toMatchObject({ text: '21hello', version: 5 });
  });

  it('keeps lock fences monotone and shows the place in line', async () => {
    const { ws, note } = await openNote();
    void note.requestToken();
    ws.reply('acquire', { type: 'queued', note: 'n1', position: 2 });
    await flush();
    ws.receive({ type: 'lock', note: 'n1', lock: bobLock(7, [{ id: 'u-carol', name: 'Carol' }, ME]) });
    ws.receive({ type: 'lock', note: 'n1', lock: { ...bobLock(6), holder: { id: 'u-old', name: 'Old' } } });
    const state = note.getState();
    expect(state.lock?.fence).toBe(7);
    expect(lockView(state, ME).text).toBe('Bob is editing - you are 2nd in line');
  });
});

describe('holder', () => {
  it('sends typing as small batched changes, one edit in flight at a time', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    expect(note.getState()).toMatchObject({ role: 'holder', writable: true });
    expect(note.setText('hello!')).toBe(true);
    expect(note.setText('hello!!')).toBe(true);
    expect(ws.ofType('edit')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    const first = ws.last('edit');
    expect(first).toMatchObject({ note: 'n1', fence: 5, base: 3, changes: [{ at: 5, del: 0, ins: '!!' }] });
    expect(first.op).toMatch(/^[0-9a-f-]{36}$/);
    expect(note.getState().save).toBe('saving');

    note.setText('😀hello!!');
    await vi.advanceTimersByTimeAsync(1000);
    ws.reply('heartbeat', { type: 'heartbeat_ack', leases: [{ note: 'n1', fence: 5, ttl_ms: 3000 }] });
    await flush();
    expect(ws.ofType('edit')).toHaveLength(1); // still waiting for the first ack

    ws.reply('edit', { type: 'ack', note: 'n1', op: first.op, version: 4 });
    await flush();
    const second = ws.last('edit');
    expect(second).toMatchObject({ base: 4, changes: [{ at: 0, del: 0, ins: '😀' }] });
    expect(second.op).not.toBe(first.op);
    ws.reply('edit', { type: 'ack', note: 'n1', op: second.op, version: 5 });
    await flush();
    expect(note.getState()).toMatchObject({ version: 5, text: '😀hello!!', save: 'saved' });
  });

  it('turns read-only when the lease deadline passes without a heartbeat ack', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    await vi.advanceTimersByTimeAsync(1000);
    const hb = ws.last('heartbeat');
    ws.receive({ type: 'heartbeat_ack', rid: hb.rid, leases: [{ note: 'n1', fence: 5, ttl_ms: 3000 }] });
    await flush();
    // Deadline = send time of that heartbeat + 3000 ms. Later heartbeats go unanswered.
    await vi.advanceTimersByTimeAsync(2000);
    expect(note.getState().writable).toBe(true);
    expect(note.setText('hello?')).toBe(true);
    await vi.advanceTimersByTimeAsync(1001);
    expect(note.getState().writable).toBe(false);
    expect(note.setText('hello?!')).toBe(false);
    expect(note.getState().text).toBe('hello?');
  });

  it('re-sends an unacknowledged edit with the same op after a resumed reconnect', async () => {
    const { h, ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello there');
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    const lost = ws.last('edit');
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(400);
    const ws2 = h.connect({ resumed: true, leases: [{ note: 'n1', fence: 5, ttl_ms: 2800 }] });
    ws2.reply('subscribe', snapshot({ version: 3, lock: { ...bobLock(5, []), holder: { id: ME.id, name: ME.name }, session: 's-1' } }));
    await flush();
    const again = ws2.last('edit');
    expect(again).toMatchObject({ op: lost.op, base: 3, fence: 5, changes: lost.changes });
    expect(note.getState().text).toBe('hello there');
  });

  it('recovers typed text after a server restart (new session, token re-acquired)', async () => {
    const { h, ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello, typed before the crash');
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    const lost = ws.last('edit');
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(400);
    expect(note.getState()).toMatchObject({ writable: false, text: 'hello, typed before the crash' });
    const ws2 = h.connect({ session: 's-2', resumed: false, leases: [] });
    ws2.reply('subscribe', snapshot({ version: 3 }));
    await flush();
    expect(ws2.last('acquire')).toMatchObject({ wait: false });
    ws2.reply('acquire', { type: 'granted', note: 'n1', fence: 6, ttl_ms: 3000 });
    await flush();
    ws2.reply('sync', { type: 'changes', note: 'n1', from: 3, to: 3, edits: [] });
    await flush();
    expect(ws2.last('edit')).toMatchObject({ op: lost.op, fence: 6, base: 3 });
    ws2.reply('edit', { type: 'ack', note: 'n1', op: lost.op, version: 4 });
    await flush();
    expect(note.getState()).toMatchObject({ text: 'hello, typed before the crash', version: 4, save: 'saved', draft: null });
  });

  it('asks again when grants are paused after a server restart, then re-sends the typed text', async () => {
    const { h, ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello, kept');
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(400);
    const ws2 = h.connect({ session: 's-2', resumed: false, leases: [] });
    ws2.reply('subscribe', snapshot({ version: 3 }));
    await flush();
    ws2.reply('acquire', { type: 'error', code: 'unavailable', message: 'token grants for this note are paused' });
    await flush();
    expect(note.getState()).toMatchObject({ role: 'acquiring', draft: null, notice: null, text: 'hello, kept' });
    expect(ws2.ofType('acquire')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(ACQUIRE_RETRY_MS);
    expect(ws2.ofType('acquire')).toHaveLength(2);
    expect(ws2.last('acquire')).toMatchObject({ wait: false });
    ws2.reply('acquire', { type: 'granted', note: 'n1', fence: 7, ttl_ms: 3000 });
    await flush();
    ws2.reply('sync', { type: 'changes', note: 'n1', from: 3, to: 3, edits: [] });
    await flush();
    expect(ws2.last('edit')).toMatchObject({ fence: 7, base: 3, changes: [{ at: 5, del: 0, ins: ', kept' }] });
  });

  it('treats an in-flight edit found committed in the new snapshot as acknowledged', async () => {
    const { h, ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello!');
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(400);
    const ws2 = h.connect({ resumed: true, leases: [{ note: 'n1', fence: 5, ttl_ms: 3000 }] });
    ws2.reply('subscribe', snapshot({ version: 4, content: 'hello!' }));
    await flush();
    expect(ws2.ofType('edit')).toHaveLength(0);
    expect(note.getState()).toMatchObject({ version: 4, save: 'saved', draft: null });
  });

  it('keeps the unsent text visibly when the edit is fenced', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello, mine');
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    ws.reply('edit', { type: 'error', code: 'fenced', message: 'token is not current' });
    await flush();
    const state = note.getState();
    expect(state).toMatchObject({ role: 'none', writable: false, text: 'hello' });
    expect(state.draft?.text).toBe('hello, mine');
    expect(state.notice).toMatch(/another session holds the write token/);
  });

  it('keeps the unsent text visibly on lease_lost', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello, unsent');
    ws.receive({ type: 'lease_lost', note: 'n1', fence: 5, reason: 'revoked' });
    const state = note.getState();
    expect(state.draft?.text).toBe('hello, unsent');
    expect(state.notice).toMatch(/revoked/);
    expect(state.text).toBe('hello');
    await vi.advanceTimersByTimeAsync(BATCH_MS * 2);
    expect(ws.ofType('edit')).toHaveLength(0);
  });

  it('saves pending edits before releasing the token', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    note.setText('hello, bye');
    const released = note.release();
    expect(note.getState().writable).toBe(false);
    const edit = ws.last('edit');
    expect(ws.ofType('release')).toHaveLength(0);
    ws.reply('edit', { type: 'ack', note: 'n1', op: edit.op, version: 4 });
    await flush();
    expect(ws.last('release')).toMatchObject({ note: 'n1', fence: 5 });
    ws.reply('release', { type: 'released', note: 'n1' });
    await released;
    await flush();
    expect(note.getState()).toMatchObject({ role: 'none', text: 'hello, bye', version: 4 });
  });
});

describe('reload', () => {
  it('adopts the token this session still holds after a reload resumed it', async () => {
    const h = harness();
    h.socket.start();
    const ws = h.connect({ session: 's-1', resumed: true, leases: [{ note: 'n1', fence: 9, ttl_ms: 3000 }] });
    const note = new NoteSession(h.socket, 'n1', ME);
    note.attach();
    const mine = { ...bobLock(9, []), holder: { id: ME.id, name: ME.name }, session: 's-1' };
    ws.reply('subscribe', snapshot({ lock: mine }));
    await flush();
    ws.reply('sync', { type: 'changes', note: 'n1', from: 3, to: 3, edits: [] });
    await flush();
    expect(note.getState()).toMatchObject({ role: 'holder', fence: 9, writable: true });
  });
});
