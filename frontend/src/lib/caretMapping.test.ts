import { describe, expect, it } from 'vitest';
import { lineColumn, mapBack, mapThrough } from './caretMapping';
import { applyChanges, type Change } from './text';

describe('mapThrough', () => {
  it('keeps positions before a change and shifts those after it', () => {
    expect(mapThrough(2, [{ at: 5, del: 1, ins: 'xy' }])).toBe(2);
    expect(mapThrough(8, [{ at: 5, del: 1, ins: 'xy' }])).toBe(9);
    expect(mapThrough(6, [{ at: 5, del: 1, ins: '' }])).toBe(5);
  });

  it('moves a caret past text typed exactly at it, as the writer typing there', () => {
    expect(mapThrough(3, [{ at: 3, del: 0, ins: 'ab' }])).toBe(5);
  });

  it('counts inserted text in code points, not UTF-16 units', () => {
    expect(mapThrough(3, [{ at: 0, del: 0, ins: '😀🌍' }])).toBe(5);
  });

  it('puts a position inside a replaced range after the replacement, and keeps one at its start', () => {
    expect(mapThrough(6, [{ at: 4, del: 4, ins: 'Z' }])).toBe(5);
    expect(mapThrough(4, [{ at: 4, del: 4, ins: 'Z' }])).toBe(4);
    expect(mapThrough(8, [{ at: 4, del: 4, ins: 'Z' }])).toBe(5);
  });

  it('applies changes one after another, each on the text the previous one made', () => {
    const changes: Change[] = [
      { at: 0, del: 0, ins: 'ab' },
      { at: 1, del: 2, ins: '' },
    ];
    // "hello" -> "abhello" -> "aello": the first "l" (at 3) is at 3 again in the end.
    const before = 'hello';
    const after = applyChanges(before, changes);
    expect(after).toBe('aello');
    expect(mapThrough(3, changes)).toBe(3);
    expect([...after][3]).toBe('l');
  });
});

describe('mapBack', () => {
  it('is the identity when nothing is unacknowledged, clamped to the text', () => {
    expect(mapBack('hello', 'hello', [3])).toEqual([3]);
    expect(mapBack('hello', 'hello', [9])).toEqual([5]);
  });

  it('maps a caret after freshly typed text to where the typing started', () => {
    expect(mapBack('ab', 'abc', [3])).toEqual([2]);
    expect(mapBack('ab', 'abc😀', [4])).toEqual([2]);
    expect(mapBack('ab cd', 'ab XY cd', [8])).toEqual([5]);
  });

  it('keeps positions before the unacknowledged edit and shifts those after it', () => {
    expect(mapBack('hello world', 'hello big world', [2])).toEqual([2]);
    expect(mapBack('hello world', 'hello big world', [15])).toEqual([11]);
    expect(mapBack('hello world', 'hello world', [11])).toEqual([11]);
  });

  it('handles deletions not yet acknowledged', () => {
    expect(mapBack('abc', 'ab', [2])).toEqual([2]);
    expect(mapBack('hello world', 'hello', [5])).toEqual([5]);
  });

  it('maps a whole selection at once', () => {
    expect(mapBack('ab cd', 'ab XY cd', [1, 8])).toEqual([1, 5]);
  });

  it('counts code points: an emoji before the caret is one position', () => {
    expect(mapBack('😀a', '😀ab', [3])).toEqual([2]);
  });
});

describe('lineColumn', () => {
  it('counts lines and code point columns from 1', () => {
    expect(lineColumn('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(lineColumn('ab\ncd', 2)).toEqual({ line: 1, column: 3 });
    expect(lineColumn('ab\ncd', 3)).toEqual({ line: 2, column: 1 });
    expect(lineColumn('😀b\nc', 1)).toEqual({ line: 1, column: 2 });
    expect(lineColumn('ab', 99)).toEqual({ line: 1, column: 3 });
  });
});
