import { undo } from '@codemirror/commands';
import { EditorView } from '@codemirror/view';
import { act, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { applyChanges, type Change } from '../lib/text';
import { MarkdownEditor } from './MarkdownEditor';

type Caret = { name: string; anchor: number; head: number } | null;

function setup(initial: string, writable: boolean) {
  let text = initial;
  let seq = 0;
  let remote: { seq: number; changes: Change[] | null } = { seq, changes: null };
  let caret: Caret = null;
  const sent: Change[][] = [];
  const selections: [number, number, boolean][] = [];
  const onChanges = (changes: Change[]) => {
    if (!writable) return false;
    sent.push(changes);
    text = applyChanges(text, changes);
    return true;
  };
  const ui = () => (
    <MarkdownEditor
      text={text}
      remote={remote}
      writable={writable}
      onChanges={onChanges}
      label="Note text"
      writerCaret={caret}
      onSelection={(a, h, byUser) => selections.push([a, h, byUser])}
    />
  );
  const utils = render(ui());
  const el = screen.getByRole('textbox', { name: 'Note text' });
  const view = EditorView.findFromDOM(el);
  if (!view) throw new Error('no editor view');
  return {
    view,
    el,
    sent,
    selections,
    /** The session publishes the writer's caret (code points). */
    showCaret(next: Caret) {
      caret = next;
      utils.rerender(ui());
    },
    /** A change from another user, as the session would publish it. */
    remoteEdit(changes: Change[]) {
      text = applyChanges(text, changes);
      remote = { seq: ++seq, changes };
      utils.rerender(ui());
    },
  };
}

describe('MarkdownEditor', () => {
  it('keeps a viewer selection on the same characters while remote edits arrive', () => {
    const { view, el, remoteEdit } = setup('hello world', false);
    expect(el).toHaveAttribute('aria-readonly', 'true');
    act(() => view.dispatch({ selection: { anchor: 6, head: 11 } })); // "world"
    remoteEdit([{ at: 0, del: 0, ins: '😀 ' }]);
    const sel = view.state.selection.main;
    expect(view.state.doc.toString()).toBe('😀 hello world');
    expect(view.state.sliceDoc(sel.from, sel.to)).toBe('world');
    remoteEdit([{ at: 2, del: 5, ins: 'bye' }]); // code points: after the emoji and the space
    expect(view.state.doc.toString()).toBe('😀 bye world');
    expect(view.state.sliceDoc(view.state.selection.main.from, view.state.selection.main.to)).toBe('world');
  });

  it('sends local typing as code point changes', () => {
    const { view, sent } = setup('🌍a', true);
    act(() => view.dispatch({ changes: { from: 3, insert: 'b' }, userEvent: 'input.type' }));
    expect(sent).toEqual([[{ at: 2, del: 0, ins: 'b' }]]);
  });

  it('undoes only local typing, never a remote edit', () => {
    const { view, remoteEdit } = setup('note', true);
    act(() => view.dispatch({ changes: { from: 4, insert: '!' }, userEvent: 'input.type' }));
    remoteEdit([{ at: 0, del: 0, ins: 'Their ' }]);
    expect(view.state.doc.toString()).toBe('Their note!');
    act(() => {
      undo(view);
    });
    expect(view.state.doc.toString()).toBe('Their note');
    act(() => {
      undo(view);
    });
    expect(view.state.doc.toString()).toBe('Their note'); // nothing local left to undo
  });

  it('applies an insert at the very end of the document', () => {
    const { view, remoteEdit } = setup('ab😀', false);
    remoteEdit([{ at: 3, del: 0, ins: 'd' }]);
    expect(view.state.doc.toString()).toBe('ab😀d');
  });

  it("draws the writer's caret with its name and selection, hidden from screen readers, in code points", () => {
    const { el, showCaret } = setup('😀 hello world', false);
    showCaret({ name: 'alice', anchor: 2, head: 7 }); // "hello"
    const caret = el.querySelector('.cm-writer-caret');
    expect(caret).toHaveAttribute('data-name', 'alice');
    expect(caret).toHaveAttribute('aria-hidden', 'true');
    expect(el.querySelector('.cm-writer-selection')).toHaveTextContent(/^hello$/);
    expect(el).not.toHaveTextContent('alice'); // the name is drawn by CSS, never part of the text
    showCaret(null);
    expect(el.querySelector('.cm-writer-caret')).toBeNull();
    expect(el.querySelector('.cm-writer-selection')).toBeNull();
  });

  it("keeps the writer's caret on its characters through remote edits, and clamps it to the text", () => {
    const { el, view, showCaret, remoteEdit } = setup('abc', false);
    showCaret({ name: 'alice', anchor: 1, head: 2 });
    remoteEdit([{ at: 0, del: 0, ins: 'XY' }]);
    expect(el.querySelector('.cm-writer-selection')).toHaveTextContent(/^b$/);
    expect(view.posAtDOM(el.querySelector('.cm-writer-caret')!)).toBe(4);
    showCaret({ name: 'alice', anchor: 50, head: 50 });
    expect(view.state.doc.toString()).toBe('XYabc');
    expect(el.querySelector('.cm-writer-selection')).toBeNull();
    // Clamped to the end of the text.
    expect(view.posAtDOM(el.querySelector('.cm-writer-caret')!)).toBe(5);
    expect(el.querySelector('.cm-line')).toHaveTextContent(/^XYabc$/);
  });

  it('reports its selection, and whether a person moved it', () => {
    const { view, selections } = setup('hello', true);
    act(() => view.dispatch({ selection: { anchor: 2 } }));
    act(() => view.dispatch({ selection: { anchor: 1, head: 4 }, userEvent: 'select.pointer' }));
    act(() => view.dispatch({ changes: { from: 5, insert: '!' }, userEvent: 'input.type' }));
    expect(selections.slice(-3)).toEqual([
      [2, 2, false],
      [1, 4, true],
      [1, 4, true],
    ]);
  });
});
