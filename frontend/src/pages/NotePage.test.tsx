import { EditorView } from '@codemirror/view';
import { act, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SocketContext } from '../services';
import { harness, ME } from '../test/fakeSocket';
import { NotePage } from './NotePage';

beforeEach(() => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Type at the end of the editor the way CodeMirror reports user typing. */
function typeInto(el: HTMLElement, text: string) {
  const view = EditorView.findFromDOM(el);
  if (!view) throw new Error('no editor');
  act(() => {
    for (const ch of text) {
      const end = view.state.doc.length;
      if (view.state.readOnly) return;
      view.dispatch({ changes: { from: end, insert: ch }, selection: { anchor: end + ch.length }, userEvent: 'input.type' });
    }
  });
}

async function settle(ms = 0) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms);
  });
}

describe('NotePage', () => {
  it('is read-only for a viewer, then sends typed text as an edit once the token is granted', async () => {
    const h = harness();
    h.socket.start();
    const ws = h.connect();
    render(
      <SocketContext.Provider value={h.socket}>
        <NotePage noteId="n1" me={ME} />
      </SocketContext.Provider>,
    );
    ws.reply('subscribe', {
      type: 'snapshot', note: 'n1', title: 'Plan', content: 'hi', version: 1, access: 'write', lock: null, viewers: [ME],
    });
    await settle();
    const editor = screen.getByRole('textbox', { name: 'Note text' });
    expect(editor).toHaveTextContent('hi');
    expect(editor).toHaveAttribute('aria-readonly', 'true');
    expect(screen.getByRole('heading', { name: 'Plan' })).toBeInTheDocument();

    await userEvent.click(screen.getByRole('button', { name: 'Start editing' }));
    ws.reply('acquire', { type: 'granted', note: 'n1', fence: 2, ttl_ms: 3000 });
    await settle();
    ws.reply('sync', { type: 'changes', note: 'n1', from: 1, to: 1, edits: [] });
    await settle();
    expect(editor).not.toHaveAttribute('aria-readonly');
    expect(screen.getByTestId('lock-text')).toHaveTextContent('You are editing');

    typeInto(editor, '!');
    await settle(60);
    expect(ws.last('edit')).toMatchObject({ fence: 2, base: 1, changes: [{ at: 2, del: 0, ins: '!' }] });
    expect(screen.getByTestId('save-state')).toHaveTextContent('Saving…');
    ws.reply('edit', { type: 'ack', note: 'n1', op: ws.last('edit').op, version: 2 });
    await settle();
    expect(screen.getByTestId('save-state')).toHaveTextContent('All changes saved');
  });

  it('shows the kept draft when the token is lost with unsaved text', async () => {
    const h = harness();
    h.socket.start();
    const ws = h.connect();
    render(
      <SocketContext.Provider value={h.socket}>
        <NotePage noteId="n1" me={ME} />
      </SocketContext.Provider>,
    );
    ws.reply('subscribe', {
      type: 'snapshot', note: 'n1', title: 'Plan', content: 'hi', version: 1, access: 'write', lock: null, viewers: [ME],
    });
    await settle();
    await userEvent.click(screen.getByRole('button', { name: 'Start editing' }));
    ws.reply('acquire', { type: 'granted', note: 'n1', fence: 2, ttl_ms: 3000 });
    await settle();
    ws.reply('sync', { type: 'changes', note: 'n1', from: 1, to: 1, edits: [] });
    await settle();
    typeInto(screen.getByRole('textbox', { name: 'Note text' }), ' there');
    act(() => ws.receive({ type: 'lease_lost', note: 'n1', fence: 2, reason: 'expired' }));
    expect(screen.getByRole('textbox', { name: 'Unsaved text' })).toHaveValue('hi there');
    expect(screen.getByRole('textbox', { name: 'Note text' })).toHaveTextContent(/^hi$/);
    expect(screen.getAllByRole('alert').map((a) => a.textContent).join(' ')).toMatch(/expired/);
  });
});
