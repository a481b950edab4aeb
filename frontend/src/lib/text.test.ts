import { describe, expect, it } from 'vitest';
import {
  applyChange,
  applyChanges,
  ChangeRangeError,
  codePointLength,
  codePointToUnit,
  diffText,
  splitInsert,
  unitToCodePoint,
} from './text';

describe('code points', () => {
  it('counts an emoji as one code point, not two UTF-16 units', () => {
    expect('a😀b'.length).toBe(4);
    expect(codePointLength('a😀b')).toBe(3);
    expect(codePointToUnit('a😀b', 2)).toBe(3);
    expect(unitToCodePoint('a😀b', 3)).toBe(2);
    expect(codePointToUnit('ab', 9)).toBe(2);
  });

  it('applies changes by code point', () => {
    expect(applyChange('a😀b', { at: 2, del: 1, ins: 'c' })).toBe('a😀c');
    expect(applyChange('😀😀', { at: 1, del: 1, ins: '' })).toBe('😀');
    expect(applyChanges('', [{ at: 0, del: 0, ins: 'hé' }, { at: 2, del: 0, ins: '👍🏽' }])).toBe('hé👍🏽');
  });

  it('rejects a change past the end of the text', () => {
    expect(() => applyChange('ab', { at: 3, del: 0, ins: 'x' })).toThrow(ChangeRangeError);
    expect(() => applyChange('ab', { at: 1, del: 2, ins: '' })).toThrow(ChangeRangeError);
  });
});

describe('diffText', () => {
  it('returns null for equal texts', () => {
    expect(diffText('same', 'same')).toBeNull();
  });

  it('finds a typed character as a one-character insert', () => {
    expect(diffText('hello world', 'hello, world')).toEqual({ at: 5, del: 0, ins: ',' });
  });

  it('never splits a surrogate pair (emoji sharing a high surrogate)', () => {
    // 😀 is D83D DE00, 😁 is D83D DE01: they share the high surrogate.
    expect(diffText('x😀', 'x😁')).toEqual({ at: 1, del: 1, ins: '😁' });
    expect(diffText('😀y', '😁y')).toEqual({ at: 0, del: 1, ins: '😁' });
    expect(diffText('a😀😀b', 'a😀b')).toEqual({ at: 2, del: 1, ins: '' });
  });

  it('round-trips random edits on emoji-rich text', () => {
    const alphabet = ['a', 'b', 'é', '😀', '😁', '👍🏽', '\n', ' '];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const word = (n: number) => Array.from({ length: n }, () => alphabet[rand(alphabet.length)]).join('');
    for (let i = 0; i < 500; i++) {
      const before = word(rand(12));
      const cps = Array.from(before);
      const at = rand(cps.length + 1);
      const del = rand(cps.length - at + 1);
      const after = cps.slice(0, at).join('') + word(rand(4)) + cps.slice(at + del).join('');
      const change = diffText(before, after);
      if (before === after) {
        expect(change).toBeNull();
        continue;
      }
      expect(change).not.toBeNull();
      expect(applyChange(before, change!)).toBe(after);
      expect(change!.ins.length === 0 || !/^[\uDC00-\uDFFF]/.test(change!.ins)).toBe(true);
    }
  });
});

describe('splitInsert', () => {
  it('splits an insert without breaking a pair and always makes progress', () => {
    expect(splitInsert('ab😀cd', 3)).toEqual({ head: 'ab', rest: '😀cd', headCps: 2 });
    expect(splitInsert('😀😀', 1)).toEqual({ head: '😀', rest: '😀', headCps: 1 });
  });
});
