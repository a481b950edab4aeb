import { describe, expect, it } from 'vitest';
import { CARET_LOG_VERSIONS, CaretTracker } from './caretTracker';

const alice = { id: 'u1', name: 'alice' };

function caret(version: number, anchor: number, head = anchor, fence = 7) {
  return { holder: alice, fence, version, anchor, head };
}

function tracker(version = 3, length = 10, fence: number | null = 7) {
  const t = new CaretTracker();
  t.reset(version, length);
  t.lock(fence);
  return t;
}

describe('CaretTracker', () => {
  it('shows a caret at the copy version, with its selection and the holder', () => {
    const t = tracker();
    expect(t.receive(caret(3, 2, 5))).toBe(true);
    expect(t.caret).toEqual({ holder: alice, fence: 7, anchor: 2, head: 5 });
  });

  it('waits until the copy reaches the caret version, then shows it', () => {
    const t = tracker();
    t.receive(caret(3, 1));
    t.receive(caret(4, 6));
    expect(t.caret?.head).toBe(1); // the older position stays until version 4 is here
    t.edit(4, [{ at: 0, del: 0, ins: 'xy' }]);
    expect(t.caret?.head).toBe(6);
  });

  it('hides nothing it cannot show yet: a first caret ahead of the copy is not drawn', () => {
    const t = tracker();
    t.receive(caret(5, 4));
    expect(t.caret).toBeNull();
    t.edit(4, [{ at: 0, del: 0, ins: 'a' }]);
    expect(t.caret).toBeNull();
    t.edit(5, [{ at: 0, del: 0, ins: 'b' }]);
    expect(t.caret?.head).toBe(4);
  });

  it('moves the caret through later remote edits', () => {
    const t = tracker();
    t.receive(caret(3, 4, 8));
    t.edit(4, [{ at: 0, del: 0, ins: '😀😀' }]);
    expect(t.caret).toMatchObject({ anchor: 6, head: 10 });
    t.edit(5, [{ at: 10, del: 0, ins: '!' }]); // typed at the head: it moves along
    expect(t.caret).toMatchObject({ anchor: 6, head: 11 });
  });

  it('carries a late caret forward through the edits the copy already has', () => {
    const t = tracker();
    t.edit(4, [{ at: 0, del: 0, ins: 'ab' }]);
    t.edit(5, [{ at: 0, del: 1, ins: '' }]);
    expect(t.receive(caret(3, 5))).toBe(true);
    expect(t.caret?.head).toBe(6);
  });

  it('ignores a caret older than the changes it keeps', () => {
    const t = tracker(0, 0);
    for (let v = 1; v <= CARET_LOG_VERSIONS + 5; v++) t.edit(v, [{ at: 0, del: 0, ins: 'a' }]);
    expect(t.receive(caret(2, 0))).toBe(false);
    expect(t.caret).toBeNull();
    expect(t.receive(caret(CARET_LOG_VERSIONS + 5 - CARET_LOG_VERSIONS + 1, 0))).toBe(true);
  });

  it('clamps positions to the text, as it grows and shrinks', () => {
    const t = tracker(3, 4);
    t.receive(caret(3, 2, 40));
    expect(t.caret).toMatchObject({ anchor: 2, head: 4 });
    t.edit(4, [{ at: 0, del: 0, ins: '😀😀' }]);
    expect(t.caret).toMatchObject({ anchor: 4, head: 6 });
    t.edit(5, [{ at: 0, del: 5, ins: '' }]);
    expect(t.caret).toMatchObject({ anchor: 0, head: 1 });
  });

  it('drops the caret when a lock names a later fence or no holder', () => {
    const t = tracker();
    t.receive(caret(3, 2));
    t.lock(7); // the queue changed, same token: kept
    expect(t.caret).not.toBeNull();
    t.lock(8);
    expect(t.caret).toBeNull();
    t.receive(caret(3, 2, 2, 8));
    t.lock(null);
    expect(t.caret).toBeNull();
  });

  it('ignores a caret of a token already replaced or released', () => {
    const t = tracker(3, 10, 9);
    expect(t.receive(caret(3, 2, 2, 8))).toBe(false);
    t.lock(null);
    expect(t.receive(caret(3, 2, 2, 9))).toBe(false);
    expect(t.caret).toBeNull();
  });

  it('accepts a caret of a newer token before the lock push that names it', () => {
    const t = tracker(3, 10, null);
    t.lock(7);
    t.lock(null);
    expect(t.receive(caret(3, 1, 1, 8))).toBe(true);
    t.lock(8);
    expect(t.caret).toMatchObject({ fence: 8, head: 1 });
  });

  it('keeps a caret newer than a lock push that arrives late', () => {
    const t = tracker();
    t.receive(caret(3, 1, 1, 8));
    t.lock(7);
    expect(t.caret?.fence).toBe(8);
  });

  it('forgets everything on a snapshot, except a caret for exactly the snapshot version', () => {
    const t = tracker();
    t.receive(caret(3, 2));
    t.reset(6, 10);
    expect(t.caret).toBeNull();
    t.receive(caret(9, 2));
    t.reset(9, 10);
    expect(t.caret?.head).toBe(2);
  });

  it('drops the caret when asked (this tab got the token)', () => {
    const t = tracker();
    t.receive(caret(3, 2));
    t.receive(caret(4, 3));
    t.clear();
    t.edit(4, []);
    expect(t.caret).toBeNull();
  });

  it('starts over when an edit is not the next version', () => {
    const t = tracker();
    t.receive(caret(3, 2));
    t.edit(6, [{ at: 0, del: 0, ins: 'x' }]);
    expect(t.caret).toBeNull();
  });
});
