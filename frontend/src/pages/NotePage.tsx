/**
 * The editor page: live text in CodeMirror with a rendered preview, the lock banner,
 * presence, save state, kept drafts, and the owner's actions (rename, visibility, share).
 * Viewers see the writer's caret; the holder is warned before an idle hand-off and told
 * when someone would like to edit; a waiter can ask the holder for the token.
 */
import { useCallback, useDeferredValue, useEffect, useMemo, useRef, useState, useSyncExternalStore, type FormEvent } from 'react';
import { errorText } from '../api/http';
import type { NoteDetail, User, Visibility } from '../api/types';
import { DraftPanel } from '../components/DraftPanel';
import { EditRequestNotice } from '../components/EditRequestNotice';
import { IdleWarning } from '../components/IdleWarning';
import { LockBanner } from '../components/LockBanner';
import { MarkdownEditor } from '../components/MarkdownEditor';
import { PresenceAvatars } from '../components/PresenceAvatars';
import { ShareDialog } from '../components/ShareDialog';
import { lineColumn } from '../lib/caretMapping';
import { renderMarkdown } from '../lib/markdown';
import { askNotificationPermission, HandoffAlert } from '../realtime/handoffAlert';
import type { LockAction } from '../realtime/lockView';
import { holdsToken } from '../realtime/tokenMachine';
import { NoteSession, type NoteState } from '../realtime/noteSession';
import { addLeaveGuard, href, notePath } from '../router';
import { useServices, useSocket } from '../services';

const LEAVE_WARNING = 'You have edits that are not saved yet. Leave anyway?';
const PREVIEW_KEY = 'collab.preview';

const SAVE_TEXT = {
  saved: 'All changes saved',
  saving: 'Saving…',
  unsaved: 'Changes not saved yet',
} as const;

function initialPreview(): boolean {
  try {
    return window.localStorage.getItem(PREVIEW_KEY) !== 'off';
  } catch {
    return true;
  }
}

export function NotePage({ noteId, me }: { noteId: string; me: User }) {
  const socket = useSocket();
  const session = useMemo(() => new NoteSession(socket, noteId, me), [socket, noteId, me]);
  const state = useSyncExternalStore(session.subscribe, session.getState);
  const handoff = useMemo(() => new HandoffAlert(), []);
  const alerting = useSyncExternalStore(handoff.subscribe, handoff.isAlerting);
  const [preview, setPreview] = useState(initialPreview);
  // Bumped to put the focus back in the editor after a notice's button removed itself.
  const [focusKey, setFocusKey] = useState(0);
  const refocus = () => setFocusKey((k) => k + 1);

  useEffect(() => {
    session.attach();
    return () => void session.detach();
  }, [session]);

  useEffect(() => handoff.attach(), [handoff]);
  useEffect(() => {
    handoff.update(state.role, state.title);
  }, [handoff, state.role, state.title]);

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

  const onAction = (action: LockAction) => {
    if (action === 'wait') askNotificationPermission();
    if (action === 'acquire' || action === 'wait') void session.requestToken();
    else if (action === 'ask') void session.askHolder();
    else if (action === 'release' || action === 'leave-line') void session.release();
    else if (action === 'revoke' && window.confirm('Take the write token away from its holder?')) void session.revoke();
  };

  const togglePreview = () => {
    setPreview((on) => {
      try {
        window.localStorage.setItem(PREVIEW_KEY, on ? 'off' : 'on');
      } catch {
        // Private mode without storage: the choice lasts for this page only.
      }
      return !on;
    });
  };

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
      {state.access === 'admin' && <NoteActions noteId={noteId} title={state.title} onRenamed={(t) => session.setTitle(t)} />}
      {alerting && (
        <p className="handoff" role="status" data-testid="handoff">
          ✎ It is your turn: the write token was handed to you.
        </p>
      )}
      <LockBanner state={state} me={me} onAction={onAction} />
      {state.idleWarning && (
        <IdleWarning
          deadline={state.idleWarning.deadline}
          next={state.lock?.queue[0]?.name ?? null}
          onKeep={() => {
            void session.keep();
            refocus();
          }}
        />
      )}
      {holdsToken(state.role) && (
        <EditRequestNotice
          from={state.editRequests}
          onHandOver={() => {
            void session.release();
            refocus();
          }}
          onDismiss={() => {
            session.dismissEditRequests();
            refocus();
          }}
        />
      )}
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
        <span className="meta-links">
          <button
            type="button"
            className="link"
            aria-pressed={preview}
            aria-controls="note-preview"
            onClick={togglePreview}
          >
            <span aria-hidden="true">{preview ? '◉' : '○'} </span>Preview
          </button>
          <a href={href(`${notePath(noteId)}/history`)}>History</a>
        </span>
      </div>
      <div className={preview ? 'editor-grid with-preview' : 'editor-grid'}>
        <MarkdownEditor
          text={state.text}
          remote={state.remote}
          writable={state.writable}
          onChanges={(changes) => session.edit(changes)}
          label="Note text"
          describedBy="editor-help"
          writerCaret={state.caret}
          onSelection={(anchor, head, byUser) => session.select(anchor, head, byUser)}
          focusKey={focusKey}
        />
        {preview && <Preview text={state.text} />}
      </div>
      <p id="editor-help" className="hint">
        {state.writable
          ? 'You hold the write token: others see your typing and your cursor live. Markdown is supported.'
          : 'Read-only: the text updates live. Use the button above to edit.'}
        <WriterWhere state={state} />
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

/** Where the writer's cursor is, in words (the drawn caret is hidden from screen readers). */
function WriterWhere({ state }: { state: NoteState }) {
  const caret = state.caret;
  if (!caret) return null;
  const { line, column } = lineColumn(state.text, caret.head);
  const selected = caret.anchor !== caret.head ? `, ${Math.abs(caret.head - caret.anchor)} characters selected` : '';
  return (
    <span className="visually-hidden" data-testid="writer-where">
      {` ${caret.name}'s cursor is on line ${line}, column ${column}${selected}.`}
    </span>
  );
}

function Preview({ text }: { text: string }) {
  // Rendering waits for a pause in a burst of keystrokes rather than slowing each one.
  const deferred = useDeferredValue(text);
  const html = useMemo(() => renderMarkdown(deferred), [deferred]);
  return (
    <section
      id="note-preview"
      className="preview"
      aria-label="Preview"
      data-testid="preview"
      tabIndex={0}
      // Sanitised by renderMarkdown (raw HTML off, DOMPurify on the output).
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
}

/** Rename, visibility and sharing, for the note's owner and admins. */
function NoteActions({ noteId, title, onRenamed }: { noteId: string; title: string; onRenamed: (title: string) => void }) {
  const { api } = useServices();
  const [detail, setDetail] = useState<NoteDetail | null>(null);
  const [renaming, setRenaming] = useState(false);
  const [draftTitle, setDraftTitle] = useState('');
  const [sharing, setSharing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState('');
  const shareButton = useRef<HTMLButtonElement>(null);
  const renameButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    let live = true;
    api.getNote(noteId).then(
      (d) => live && setDetail(d),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api, noteId]);

  const run = async (action: () => Promise<NoteDetail>, done: string) => {
    try {
      const updated = await action();
      setDetail(updated);
      setError(null);
      setStatus(done);
      return updated;
    } catch (err) {
      setError(errorText(err));
      return null;
    }
  };

  const rename = async (ev: FormEvent) => {
    ev.preventDefault();
    const next = draftTitle.trim() || 'Untitled';
    const updated = await run(() => api.updateNote(noteId, { title: next }), `Renamed to “${next}”.`);
    if (updated) onRenamed(updated.title);
    setRenaming(false);
    requestAnimationFrame(() => renameButton.current?.focus());
  };

  const visibility: Visibility | null = detail?.visibility ?? null;
  const other: Visibility = visibility === 'public' ? 'private' : 'public';
  const closeShare = useCallback(() => {
    setSharing(false);
    requestAnimationFrame(() => shareButton.current?.focus());
  }, []);

  return (
    <div className="note-actions" aria-label="Note actions" role="group">
      {renaming ? (
        <form onSubmit={rename} className="rename">
          <label htmlFor="note-rename">New title</label>
          <input
            id="note-rename"
            value={draftTitle}
            onChange={(e) => setDraftTitle(e.target.value)}
            onKeyDown={(e) => e.key === 'Escape' && setRenaming(false)}
            autoFocus
            maxLength={200}
          />
          <button type="submit" className="primary">
            Save
          </button>
          <button type="button" onClick={() => setRenaming(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <button
          type="button"
          ref={renameButton}
          onClick={() => {
            setDraftTitle(title);
            setRenaming(true);
          }}
        >
          Rename
        </button>
      )}
      <button
        type="button"
        disabled={!visibility}
        onClick={() => run(() => api.updateNote(noteId, { visibility: other }), `The note is ${other} now.`)}
      >
        {visibility ? `Make ${other}` : 'Visibility…'}
      </button>
      <span className="visibility" data-testid="visibility">
        {visibility === 'public' ? 'Public' : visibility === 'private' ? 'Private' : ''}
      </span>
      <button type="button" ref={shareButton} onClick={() => setSharing(true)}>
        Share
      </button>
      <span className="visually-hidden" role="status">
        {status}
      </span>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {sharing && <ShareDialog note={{ id: noteId, title }} onClose={closeShare} />}
    </div>
  );
}
