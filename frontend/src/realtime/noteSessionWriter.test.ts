/**
 * The note session's side of the writer's caret, the idle hand-off and edit requests
 * (protocol.md, "The writer's caret", "Idle hand-off"), frame by frame.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Lock, SnapshotMsg, UserBrief } from '../api/types';
import { BOB, harness, ME, type FakeWebSocket, type Frame } from '../test/fakeSocket';
import { BATCH_MS, CARET_INTERVAL_MS, NoteSession } from './noteSession';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const flush = () => vi.advanceTimersByTimeAsync(0);
const BOB_BRIEF: UserBrief = { id: BOB.id, name: BOB.name };
const ME_BRIEF: UserBrief = { id: ME.id, name: ME.name };

function lock(holder: UserBrief, fence: number, queue: UserBrief[] = []): Lock {
  return { holder, session: holder.id === ME.id ? 's-1' : 's-bob', fence, since: '2026-01-01T00:00:00.000000Z', queue };
}

async function openNote(snap: Partial<SnapshotMsg> = {}) {
  const h = harness();
  h.socket.start();
  const ws = h.connect();
  const note = new NoteSession(h.socket, 'n1', ME);
  note.attach();
  ws.reply('subscribe', {
    type: 'snapshot',
    note: 'n1',
    title: 'Plan',
    content: 'hello',
    version: 3,
    access: 'write',
    lock: null,
    viewers: [ME],
    ...snap,
  });
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
  ws.receive({ type: 'lock', note: 'n1', lock: lock(ME_BRIEF, fence) });
}

function caretPush(version: number, anchor: number, head = anchor, fence = 7): Frame {
  return { type: 'caret', note: 'n1', holder: BOB_BRIEF, session: 's-bob', fence, version, anchor, head };
}

function edited(version: number, changes: Frame[]): Frame {
  return { type: 'edited', note: 'n1', version, base: version - 1, op: `op-${version}`, changes, by: BOB_BRIEF };
}

describe("the holder's caret", () => {
  it('goes out in code points of the acknowledged version, at most once per interval', async () => {
    const { ws, note } = await openNote({ content: '😀 hello' });
    await grant(ws, note, 5);
    note.select(3, 3, true); // UTF-16 index 3 = after "😀 "
    expect(ws.last('caret')).toEqual({ type: 'caret', note: 'n1', fence: 5, version: 3, anchor: 2, head: 2 });
    expect(ws.last('caret').rid).toBeUndefined();
    note.select(3, 8, true);
    note.select(4, 8, true);
    expect(ws.ofType('caret')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    expect(ws.ofType('caret')).toHaveLength(2);
    expect(ws.last('caret')).toMatchObject({ anchor: 3, head: 7 }); // the last selection wins
  });

  it('maps a caret after unacknowledged typing to where it was typed, then sends the new version', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    note.setText('hello!!');
    note.select(7, 7, true);
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    expect(ws.last('caret')).toMatchObject({ version: 3, anchor: 5, head: 5 });
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    const edit = ws.last('edit');
    ws.reply('edit', { type: 'ack', note: 'n1', op: edit.op, version: 4 });
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    expect(ws.last('caret')).toMatchObject({ version: 4, anchor: 7, head: 7 });
  });

  it('sends nothing while not holding, and nothing twice for an unmoved caret', async () => {
    const { ws, note } = await openNote();
    note.select(2, 2, true);
    expect(ws.ofType('caret')).toHaveLength(0);
    await grant(ws, note, 5);
    expect(ws.ofType('caret')).toHaveLength(1); // where it was when the token came
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    note.select(2, 2, true);
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    expect(ws.ofType('caret')).toHaveLength(1);
  });
});

describe("a viewer's view of the writer's caret", () => {
  it('shows the caret with the holder name once the copy reaches its version, and moves it through edits', async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    ws.receive(caretPush(4, 6, 6));
    expect(note.getState().caret).toBeNull(); // the copy is still at version 3
    ws.receive(edited(4, [{ at: 5, del: 0, ins: '!' }]));
    expect(note.getState().caret).toEqual({ name: 'Bob', anchor: 6, head: 6 });
    ws.receive(edited(5, [{ at: 0, del: 0, ins: '😀' }]));
    expect(note.getState().caret).toEqual({ name: 'Bob', anchor: 7, head: 7 });
  });

  it("ignores a caret of this tab's own session", async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    ws.receive({ ...caretPush(3, 2), session: 's-1' });
    expect(note.getState().caret).toBeNull();
    ws.receive(caretPush(3, 2));
    expect(note.getState().caret).toEqual({ name: 'Bob', anchor: 2, head: 2 });
  });

  it('clamps to the text and shows a selection', async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    ws.receive(caretPush(3, 1, 99));
    expect(note.getState().caret).toEqual({ name: 'Bob', anchor: 1, head: 5 });
  });

  it('removes the caret when the lock names another fence or nobody', async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    ws.receive(caretPush(3, 2));
    ws.receive({ type: 'lock', note: 'n1', lock: lock(BOB_BRIEF, 7, [ME_BRIEF]) });
    expect(note.getState().caret).not.toBeNull();
    ws.receive({ type: 'lock', note: 'n1', lock: null });
    expect(note.getState().caret).toBeNull();
    ws.receive(caretPush(3, 2, 2, 8));
    ws.receive({ type: 'lock', note: 'n1', lock: lock({ id: 'u-carol', name: 'Carol' }, 9) });
    expect(note.getState().caret).toBeNull();
  });

  it('drops the caret when this tab gets the token, and ignores carets while holding', async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    ws.receive(caretPush(3, 2));
    expect(note.getState().caret).not.toBeNull();
    ws.receive({ type: 'lock', note: 'n1', lock: null });
    await grant(ws, note, 8);
    ws.receive(caretPush(3, 1, 1, 8));
    expect(note.getState().caret).toBeNull();
  });
});

describe('idle hand-off', () => {
  it('shows the warning for the token held, clears it on a keystroke, and withdraws it on null', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    const now = Date.now();
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 4, handoff_in_ms: 15000 });
    await flush();
    expect(note.getState().idleWarning).toBeNull(); // an older token's warning
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: 15000 });
    await flush();
    expect(note.getState().idleWarning).toEqual({ deadline: now + 15000 });
    note.setText('hello.');
    expect(note.getState().idleWarning).toBeNull();
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: 15000 });
    await flush();
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: null });
    await flush();
    expect(note.getState().idleWarning).toBeNull();
  });

  it('keep editing sends keep and takes the warning away; a key press with the warning shown does too', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: 4000 });
    await flush();
    void note.keep();
    await flush();
    expect(note.getState().idleWarning).toBeNull();
    expect(ws.last('keep')).toMatchObject({ note: 'n1' });
    ws.reply('keep', { type: 'kept', note: 'n1', handoff_in_ms: 120000 });
    await flush();
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: 4000 });
    await flush();
    note.select(1, 1, false); // not the user: no keep
    expect(ws.ofType('keep')).toHaveLength(1);
    note.select(2, 2, true);
    await flush();
    expect(ws.ofType('keep')).toHaveLength(2);
    expect(note.getState().idleWarning).toBeNull();
  });

  it('after an idle hand-off the editor is read-only and says who got the token after how long', async () => {
    const { ws, note } = await openNote();
    await grant(ws, note, 5);
    ws.receive({ type: 'lock', note: 'n1', lock: lock(ME_BRIEF, 5, [BOB_BRIEF]) });
    ws.receive({ type: 'idle_warning', note: 'n1', fence: 5, handoff_in_ms: 4000 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(note.getState().writable).toBe(true);
    ws.receive({ type: 'lease_lost', note: 'n1', fence: 5, reason: 'idle' });
    await flush();
    const state = note.getState();
    expect(state).toMatchObject({ role: 'none', writable: false, idleWarning: null, draft: null });
    expect(state.notice).toBe('The token was handed to Bob after 2 s idle.');
    expect(note.setText('too late')).toBe(false);
  });
});

describe('edit requests', () => {
  it('the holder hears who would like to edit, once per person, until dismissed or the token goes', async () => {
    const { ws, note } = await openNote();
    ws.receive({ type: 'edit_request', note: 'n1', from: BOB_BRIEF });
    expect(note.getState().editRequests).toEqual([]); // not holding: nothing to hand over
    await grant(ws, note, 5);
    ws.receive({ type: 'edit_request', note: 'n1', from: BOB_BRIEF });
    ws.receive({ type: 'edit_request', note: 'n1', from: { id: 'u-carol', name: 'Carol' } });
    ws.receive({ type: 'edit_request', note: 'n1', from: BOB_BRIEF });
    expect(note.getState().editRequests.map((u) => u.name)).toEqual(['Carol', 'Bob']);
    note.dismissEditRequests();
    expect(note.getState().editRequests).toEqual([]);
    ws.receive({ type: 'edit_request', note: 'n1', from: BOB_BRIEF });
    void note.release();
    await flush();
    expect(note.getState().editRequests).toEqual([]);
  });

  it('a waiter asks the holder and sees the answer, or why not', async () => {
    const { ws, note } = await openNote({ lock: lock(BOB_BRIEF, 7) });
    void note.requestToken();
    ws.reply('acquire', { type: 'queued', note: 'n1', position: 1 });
    await flush();
    void note.askHolder();
    expect(ws.last('request')).toMatchObject({ note: 'n1' });
    ws.reply('request', { type: 'requested', note: 'n1', holder: BOB_BRIEF });
    await flush();
    expect(note.getState().askStatus).toBe('Bob was asked to hand over the token.');
    void note.askHolder();
    ws.reply('request', { type: 'error', code: 'rate_limited', message: 'too soon', retry_after_ms: 8000 });
    await flush();
    expect(note.getState().askStatus).toBe('You asked a moment ago: you can ask again in 8 s.');
    ws.receive({ type: 'granted', rid: ws.last('acquire').rid, note: 'n1', fence: 8, ttl_ms: 3000 });
    await flush();
    expect(note.getState().askStatus).toBeNull();
  });
});

describe('the caret across a reconnect', () => {
  it('is sent again on the new connection when the resumed session still holds the token', async () => {
    const { h, ws, note } = await openNote();
    await grant(ws, note, 5);
    note.select(2, 2, true);
    expect(ws.last('caret')).toMatchObject({ anchor: 2 });
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(400);
    const ws2 = h.connect({ resumed: true, leases: [{ note: 'n1', fence: 5, ttl_ms: 3000 }] });
    ws2.reply('subscribe', {
      type: 'snapshot',
      note: 'n1',
      title: 'Plan',
      content: 'hello',
      version: 3,
      access: 'write',
      lock: lock(ME_BRIEF, 5),
      viewers: [ME],
    });
    await vi.advanceTimersByTimeAsync(CARET_INTERVAL_MS);
    expect(ws2.last('caret')).toEqual({ type: 'caret', note: 'n1', fence: 5, version: 3, anchor: 2, head: 2 });
  });
});
