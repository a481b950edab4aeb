/** The editor: live text, lock banner, presence, save state and kept drafts of one note. */
import { useEffect, useLayoutEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import type { User } from '../api/types';
import { DraftPanel } from '../components/DraftPanel';
import { LockBanner } from '../components/LockBanner';
import { PresenceAvatars } from '../components/PresenceAvatars';
import { codePointToUnit, transformPosition, unitToCodePoint } from '../lib/text';
import type { LockAction } from '../realtime/lockView';
import { NoteSession } from '../realtime/noteSession';
import { addLeaveGuard, href, notePath } from '../router';
import { useSocket } from '../services';

const LEAVE_WARNING = 'You have edits that are not saved yet. Leave anyway?';

const SAVE_TEXT = {
  saved: 'All changes saved',
  saving: 'Saving…',
  unsaved: 'Changes not saved yet',
} as const;

export function NotePage({ noteId, me }: { noteId: string; me: User }) {
  const socket = useSocket();
  const session = useMemo(() => new NoteSession(socket, noteId, me), [socket, noteId, me]);
  const state = useSyncExternalStore(session.subscribe, session.getState);
  const textareaRef = useRef<HTMLTextAreaElement>(null);
  const selection = useRef<{ text: string; start: number; end: number } | null>(null);

  useEffect(() => {
    session.attach();
    return () => void session.detach();
  }, [session]);

  // Warn before the page (or the route) is left with unsaved edits.
  useEffect(() => {
    const beforeUnload = (ev: BeforeUnloadEvent) => {
      if (!session.hasUnsavedText) return;
      ev.preventDefault();
      ev.returnValue = LEAVE_WARNING;
    };
    window.addEventListener('beforeunload', beforeUnload);
    const removeGuard = addLeaveGuard(() => session.hasUnsavedText && !window.confirm(LEAVE_WARNING));
    return () => {
      window.removeEventListener('beforeunload', beforeUnload);
      removeGuard();
    };
  }, [session]);

  // Keep a viewer's caret on the same characters while remote edits arrive.
  useLayoutEffect(() => {
    const el = textareaRef.current;
    const sel = selection.current;
    if (!el || !sel || document.activeElement !== el || !state.remote.changes) return;
    let start = unitToCodePoint(sel.text, sel.start);
    let end = unitToCodePoint(sel.text, sel.end);
    for (const change of state.remote.changes) {
      start = transformPosition(start, change);
      end = transformPosition(end, change);
    }
    el.setSelectionRange(codePointToUnit(el.value, start), codePointToUnit(el.value, end));
    selection.current = { text: el.value, start: el.selectionStart, end: el.selectionEnd };
  }, [state.remote]);

  const rememberSelection = () => {
    const el = textareaRef.current;
    if (el) selection.current = { text: el.value, start: el.selectionStart, end: el.selectionEnd };
  };

  const onAction = (action: LockAction) => {
    if (action === 'acquire' || action === 'wait') void session.requestToken();
    else if (action === 'release' || action === 'leave-line') void session.release();
    else if (action === 'revoke' && window.confirm('Take the write token away from its holder?')) void session.revoke();
  };

  useEffect(() => {
    if (state.writable) textareaRef.current?.focus();
  }, [state.writable]);

  if (state.error) {
    return (
      <main className="page">
        <p role="alert">
          {state.error.code === 'not_found' ? 'This note does not exist (any more).' : 'You may not read this note.'}
        </p>
        <a href={href('/')}>Back to the notes</a>
      </main>
    );
  }

  return (
    <main className="page note-page" aria-busy={!state.loaded}>
      <div className="note-head">
        <a href={href('/')} className="back">
          ← Notes
        </a>
        <h1>{state.loaded ? state.title || 'Untitled' : 'Loading…'}</h1>
        <PresenceAvatars viewers={state.viewers} me={me} />
      </div>
      <LockBanner state={state} me={me} onAction={onAction} />
      {state.notice && (
        <div className="notice" role="alert">
          <span>{state.notice}</span>
          <button type="button" className="link" onClick={() => session.dismissNotice()}>
            Dismiss
          </button>
        </div>
      )}
      <div className="editor-meta">
        <span data-testid="save-state" data-save={state.save}>
          {state.role === 'none' && state.save === 'saved' ? `Version ${state.version}` : SAVE_TEXT[state.save]}
        </span>
        <a href={href(`${notePath(noteId)}/history`)}>History</a>
      </div>
      <label htmlFor="note-text" className="visually-hidden">
        Note text
      </label>
      <textarea
        id="note-text"
        ref={textareaRef}
        className="editor"
        data-testid="editor"
        value={state.text}
        readOnly={!state.writable}
        aria-readonly={!state.writable}
        aria-describedby="editor-help"
        spellCheck
        onChange={(e) => session.setText(e.target.value)}
        onSelect={rememberSelection}
        onKeyUp={rememberSelection}
        onMouseUp={rememberSelection}
      />
      <p id="editor-help" className="hint">
        {state.writable
          ? 'You hold the write token: others see your typing live.'
          : 'Read-only: the text updates live. Use the button above to edit.'}
      </p>
      {state.draft && (
        <DraftPanel
          draft={state.draft}
          canRestore={state.writable}
          onRestore={() => session.restoreDraft()}
          onDismiss={() => session.dismissDraft()}
        />
      )}
    </main>
  );
}
