/**
 * The note's text in CodeMirror 6: Markdown highlighting, undo history, read-only unless the
 * session may write. The session's text is the source of truth: remote edits come in as
 * editor transactions (mapped through the selection, kept out of the undo history), local
 * edits go out as code point changes. Viewers see the token holder's caret (writerCaret.ts);
 * the editor reports its own selection so the holder's can be sent.
 */
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { markdown } from '@codemirror/lang-markdown';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { Annotation, Compartment, EditorState, Transaction } from '@codemirror/state';
import { EditorView, keymap } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { useEffect, useLayoutEffect, useRef } from 'react';
import { changesToReach, editorToWire } from '../lib/editorChanges';
import type { Change } from '../lib/text';
import { caretToUnits, setWriterCaret, writerCaret } from './writerCaret';

/** Marks transactions that bring the session's text in (never sent back, never undone). */
const fromSession = Annotation.define<boolean>();

// Colours come from the page's CSS variables so both colour schemes keep their contrast.
const highlight = HighlightStyle.define([
  { tag: tags.heading, fontWeight: '700' },
  { tag: tags.heading1, fontSize: '1.25em' },
  { tag: tags.heading2, fontSize: '1.12em' },
  { tag: tags.emphasis, fontStyle: 'italic' },
  { tag: tags.strong, fontWeight: '700' },
  { tag: tags.strikethrough, textDecoration: 'line-through' },
  { tag: [tags.link, tags.url], color: 'var(--accent)', textDecoration: 'underline' },
  { tag: tags.monospace, fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace', color: 'var(--code)' },
  { tag: [tags.processingInstruction, tags.meta, tags.contentSeparator], color: 'var(--muted)' },
  { tag: tags.quote, color: 'var(--muted)', fontStyle: 'italic' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--card)', color: 'var(--fg)', border: '1px solid var(--border)', borderRadius: '6px' },
  '&.cm-focused': { outline: '3px solid var(--focus)', outlineOffset: '2px' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace', lineHeight: '1.5', minHeight: '18rem' },
  // Room above the first line for the writer's name label (writerCaret.ts).
  '.cm-content': { padding: '1.1rem 0.4rem 0.6rem', caretColor: 'var(--fg)' },
  '.cm-cursor': { borderLeftColor: 'var(--fg)' },
  '&.cm-editor[data-readonly="true"]': { backgroundColor: 'var(--readonly-bg)' },
});

export interface MarkdownEditorProps {
  text: string;
  /** The last remote changes (code points); null changes mean "replaced as a whole". */
  remote: { seq: number; changes: Change[] | null };
  writable: boolean;
  /** Local edits, in code points; false when the session refused them (no live token). */
  onChanges: (changes: Change[]) => boolean;
  label: string;
  describedBy?: string;
  /** The token holder's caret (code points of `text`), drawn for viewers; null for none. */
  writerCaret?: { name: string; anchor: number; head: number } | null;
  /** This editor's selection moved (UTF-16 units); `byUser` for keys, clicks and typing. */
  onSelection?: (anchor: number, head: number, byUser: boolean) => void;
  /** Focus the editor whenever this number changes (after an action that removed the focus). */
  focusKey?: number;
}

/** User events (CodeMirror's names) that mean a person moved or typed. */
const USER_EVENTS = ['input', 'delete', 'select', 'move', 'undo', 'redo'];

export function MarkdownEditor({
  text,
  remote,
  writable,
  onChanges,
  label,
  describedBy,
  writerCaret: caret = null,
  onSelection,
  focusKey = 0,
}: MarkdownEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const viewRef = useRef<EditorView | null>(null);
  const readOnly = useRef(new Compartment());
  // The listener is created once; these refs let it see the latest props.
  const latest = useRef({ text, onChanges, onSelection });
  useLayoutEffect(() => {
    latest.current = { text, onChanges, onSelection };
  });

  useEffect(() => {
    const parent = host.current;
    if (!parent) return;
    const view: EditorView = new EditorView({
      parent,
      state: EditorState.create({
        doc: latest.current.text,
        extensions: [
          history(),
          // No Tab binding: Tab keeps moving focus, so the editor is never a keyboard trap.
          keymap.of([...defaultKeymap, ...historyKeymap]),
          markdown(),
          syntaxHighlighting(highlight),
          EditorView.lineWrapping,
          theme,
          readOnly.current.of(readOnlyExtension(true)),
          writerCaret(),
          EditorView.contentAttributes.of({
            'aria-label': label,
            ...(describedBy ? { 'aria-describedby': describedBy } : {}),
            'data-testid': 'editor',
            spellcheck: 'true',
            autocapitalize: 'sentences',
          }),
          EditorView.updateListener.of((update) => {
            let refused = false;
            for (const tr of update.transactions) {
              if (!tr.docChanged || tr.annotation(fromSession)) continue;
              if (!latest.current.onChanges(editorToWire(tr.startState.doc, tr.changes))) refused = true;
            }
            // The session did not take the edit (the token just ran out): show its text again.
            if (refused) queueMicrotask(() => reset(view, latest.current.text, null));
            if (update.selectionSet || update.docChanged) {
              const byUser = update.transactions.some((tr) => USER_EVENTS.some((e) => tr.isUserEvent(e)));
              const sel = update.state.selection.main;
              latest.current.onSelection?.(sel.anchor, sel.head, byUser);
            }
          }),
        ],
      }),
    });
    viewRef.current = view;
    return () => {
      view.destroy();
      viewRef.current = null;
    };
    // The view lives as long as the component; later prop changes are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useLayoutEffect(() => {
    const view = viewRef.current;
    if (view) reset(view, text, remote.changes);
  }, [text, remote]);

  // After the text above, so a caret published with new text lands in that text. Between
  // two positions from the session, the drawn caret moves with the document by itself.
  const drawn = useRef(false);
  useLayoutEffect(() => {
    const view = viewRef.current;
    if (!view || (!caret && !drawn.current)) return;
    drawn.current = caret !== null;
    view.dispatch({ effects: setWriterCaret.of(caret ? caretToUnits(view.state.doc.toString(), caret) : null) });
  }, [caret]);

  useEffect(() => {
    const view = viewRef.current;
    if (!view) return;
    view.dispatch({ effects: readOnly.current.reconfigure(readOnlyExtension(!writable)) });
    if (writable) view.focus();
    // Where the caret is now counts too: a new holder's viewers see it at once.
    const sel = view.state.selection.main;
    latest.current.onSelection?.(sel.anchor, sel.head, false);
  }, [writable]);

  useEffect(() => {
    if (focusKey > 0) viewRef.current?.focus();
  }, [focusKey]);

  return <div ref={host} className="note-editor" />;
}

function readOnlyExtension(readOnly: boolean) {
  return [EditorState.readOnly.of(readOnly), EditorView.editorAttributes.of({ 'data-readonly': String(readOnly) })];
}

function reset(view: EditorView, text: string, remote: Change[] | null): void {
  const doc = view.state.doc.toString();
  if (doc === text) return;
  view.dispatch({
    changes: changesToReach(doc, text, remote),
    annotations: [fromSession.of(true), Transaction.addToHistory.of(false)],
  });
}
