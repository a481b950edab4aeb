import { undo } from '@codemirror/commands';
import { EditorView } from '@codemirror/view';
import { act, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { applyChanges, type Change } from '../lib/text';
import { MarkdownEditor } from './MarkdownEditor';

function setup(initial: string, writable: boolean) {
  let text = initial;
  let seq = 0;
  let remote: { seq: number; changes: Change[] | null } = { seq, changes: null };
  const sent: Change[][] = [];
  const onChanges = (changes: Change[]) => {
    if (!writable) return false;
    sent.push(changes);
    text = applyChanges(text, changes);
    return true;
  };
  const ui = () => (
    <MarkdownEditor text={text} remote={remote} writable={writable} onChanges={onChanges} label="Note text" />
  );
  const utils = render(ui());
  const el = screen.getByRole('textbox', { name: 'Note text' });
  const view = EditorView.findFromDOM(el);
  if (!view) throw new Error('no editor view');
  return {
    view,
    el,
    sent,
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
});
