import { describe, expect, it } from 'vitest';
import { applyChanges } from '../lib/text';
import { appendChange, takeBatch } from './batching';

describe('appendChange', () => {
  it('merges typing into one insert and backspacing into one delete', () => {
    let pending = appendChange([], { at: 3, del: 0, ins: 'a' });
    pending = appendChange(pending, { at: 4, del: 0, ins: '😀' });
    pending = appendChange(pending, { at: 5, del: 0, ins: 'b' });
    expect(pending).toEqual([{ at: 3, del: 0, ins: 'a😀b' }]);

    let dels = appendChange([], { at: 9, del: 1, ins: '' });
    dels = appendChange(dels, { at: 8, del: 1, ins: '' });
    expect(dels).toEqual([{ at: 8, del: 2, ins: '' }]);
  });

  it('keeps unrelated changes separate and in order', () => {
    const pending = appendChange([{ at: 0, del: 0, ins: 'x' }], { at: 10, del: 0, ins: 'y' });
    expect(pending).toHaveLength(2);
  });
});

describe('takeBatch', () => {
  it('limits the number of changes per edit', () => {
    const pending = Array.from({ length: 5 }, (_, i) => ({ at: i * 2, del: 0, ins: 'x' }));
    const { batch, rest } = takeBatch(pending, 3, 1000);
    expect(batch).toHaveLength(3);
    expect(rest).toHaveLength(2);
  });

  it('splits an oversized insert so batch then rest give the same text', () => {
    const big = '😀'.repeat(100) + 'tail';
    const pending = [{ at: 1, del: 1, ins: big }];
    let text = 'a-b';
    const expected = applyChanges(text, pending);
    let rest = pending;
    let edits = 0;
    while (rest.length > 0) {
      const out = takeBatch(rest, 10, 64);
      expect(JSON.stringify(out.batch.map((c) => c.ins)).length).toBeLessThan(200);
      text = applyChanges(text, out.batch);
      rest = out.rest;
      edits++;
    }
    expect(text).toBe(expected);
    expect(edits).toBeGreaterThan(1);
  });
});
