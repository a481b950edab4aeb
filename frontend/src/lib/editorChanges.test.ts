import { ChangeSet, EditorState, Text } from '@codemirror/state';
import { describe, expect, it } from 'vitest';
import { ChangeMismatchError, changesToReach, editorToWire, wireToEditor } from './editorChanges';
import { applyChanges, codePointToUnit, unitToCodePoint, type Change } from './text';

function applySet(doc: string, set: ChangeSet): string {
  return set.apply(Text.of(doc.split('\n'))).toString();
}

describe('wire (code points) -> editor (UTF-16)', () => {
  it('places changes after emoji by code point, not by UTF-16 unit', () => {
    const doc = 'a😀b🌍c';
    // Code points: a=0 😀=1 b=2 🌍=3 c=4. Replace 🌍 with "x", then insert "!" at the end.
    const changes: Change[] = [
      { at: 3, del: 1, ins: 'x' },
      { at: 5, del: 0, ins: '!' },
    ];
    const set = wireToEditor(doc, changes);
    expect(applySet(doc, set)).toBe('a😀bxc!');
    expect(applySet(doc, set)).toBe(applyChanges(doc, changes));
  });

  it('composes sequential changes: later positions see earlier inserts', () => {
    const doc = 'hello';
    const changes: Change[] = [
      { at: 0, del: 0, ins: '🎉' },
      { at: 1, del: 0, ins: ' ' },
      { at: 7, del: 0, ins: '👋🏽' },
    ];
    expect(applySet(doc, wireToEditor(doc, changes))).toBe('🎉 hello👋🏽');
  });

  it('deletes whole astral characters', () => {
    expect(applySet('x😀y', wireToEditor('x😀y', [{ at: 1, del: 1, ins: '' }]))).toBe('xy');
  });

  it('maps a selection after an emoji inserted before it', () => {
    const state = EditorState.create({ doc: 'ab', selection: { anchor: 2 } });
    const tr = state.update({ changes: wireToEditor('ab', [{ at: 1, del: 0, ins: '😀' }]) });
    expect(tr.state.selection.main.head).toBe(4); // 'a😀b' and the caret still after 'b'
  });

  it('moves a caret (in code points) through changes before, around and after it', () => {
    const doc = 'abcdefgh';
    const caretAfter = (caret: number, change: Change) => {
      const state = EditorState.create({ doc, selection: { anchor: codePointToUnit(doc, caret) } });
      const next = state.update({ changes: wireToEditor(doc, [change]) }).state;
      return unitToCodePoint(next.doc.toString(), next.selection.main.head);
    };
    expect(caretAfter(5, { at: 0, del: 0, ins: '😀😀' })).toBe(7);
    expect(caretAfter(5, { at: 2, del: 2, ins: '' })).toBe(3);
    expect([2, 3]).toContain(caretAfter(3, { at: 2, del: 4, ins: 'x' })); // inside the replaced range
    expect(caretAfter(1, { at: 2, del: 1, ins: 'xyz' })).toBe(1);
  });

  it('refuses changes past the end of the document', () => {
    expect(() => wireToEditor('a😀', [{ at: 3, del: 0, ins: 'x' }])).toThrow(ChangeMismatchError);
    expect(() => wireToEditor('a😀', [{ at: 1, del: 2, ins: '' }])).toThrow(ChangeMismatchError);
  });
});

describe('editor (UTF-16) -> wire (code points)', () => {
  it('counts positions after emoji in code points', () => {
    const doc = '😀😀ab';
    const set = ChangeSet.of({ from: 4, to: 5, insert: 'X' }, doc.length);
    expect(editorToWire(doc, set)).toEqual([{ at: 2, del: 1, ins: 'X' }]);
  });

  it('turns a multi-range set into sequential changes that give the same text', () => {
    const doc = '🌍 one 🌍 two 🌍';
    const set = ChangeSet.of(
      [
        { from: 0, to: 2, insert: 'A' },
        { from: 7, to: 9, insert: '🎉🎉' },
        { from: doc.length - 2, to: doc.length, insert: '' },
      ],
      doc.length,
    );
    const wire = editorToWire(doc, set);
    expect(wire).toEqual([
      { at: 0, del: 1, ins: 'A' },
      { at: 6, del: 1, ins: '🎉🎉' },
      { at: 13, del: 1, ins: '' },
    ]);
    expect(applyChanges(doc, wire)).toBe(applySet(doc, set));
  });

  it('round-trips: wire -> editor -> wire keeps the resulting text', () => {
    const doc = 'x👩‍👩‍👧y';
    const wire: Change[] = [
      { at: 1, del: 5, ins: '😀' },
      { at: 0, del: 0, ins: '🌍' },
    ];
    const set = wireToEditor(doc, wire);
    const back = editorToWire(doc, set);
    expect(applyChanges(doc, back)).toBe(applyChanges(doc, wire));
  });
});

describe('changesToReach', () => {
  it('uses the remote changes when they lead to the new text', () => {
    const set = changesToReach('a😀', 'a😀b', [{ at: 2, del: 0, ins: 'b' }]);
    expect(applySet('a😀', set)).toBe('a😀b');
  });

  it('falls back to one replacement when the remote changes were made on another text', () => {
    const set = changesToReach('a😀', 'x😀', [{ at: 7, del: 0, ins: 'b' }]);
    expect(applySet('a😀', set)).toBe('x😀');
    expect(changesToReach('same', 'same', null).empty).toBe(true);
  });
});
