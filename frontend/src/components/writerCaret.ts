/**
 * The token holder's caret and selection drawn in a viewer's CodeMirror: a thin bar with the
 * holder's name above it, and a tint over the selected text. The decorations move with every
 * later change to the document and are replaced whenever the session publishes a new position.
 * The name is drawn from a data attribute by CSS, so it is never part of the text; the page
 * says where the writer is in words for screen readers (NotePage).
 */
import { StateEffect, StateField, type EditorState, type Extension } from '@codemirror/state';
import { Decoration, EditorView, WidgetType, type DecorationSet } from '@codemirror/view';
import { codePointToUnit } from '../lib/text';

/** Positions in UTF-16 units of the current document. */
export interface CaretInUnits {
  name: string;
  anchor: number;
  head: number;
}

export const setWriterCaret = StateEffect.define<CaretInUnits | null>();

class CaretWidget extends WidgetType {
  constructor(readonly name: string) {
    super();
  }

  eq(other: CaretWidget): boolean {
    return other.name === this.name;
  }

  toDOM(): HTMLElement {
    const el = document.createElement('span');
    el.className = 'cm-writer-caret';
    el.dataset.name = this.name;
    el.dataset.testid = 'writer-caret';
    el.setAttribute('aria-hidden', 'true');
    return el;
  }

  ignoreEvent(): boolean {
    return true;
  }
}

function decorations(state: EditorState, caret: CaretInUnits | null): DecorationSet {
  if (!caret) return Decoration.none;
  const length = state.doc.length;
  const head = Math.min(Math.max(caret.head, 0), length);
  const anchor = Math.min(Math.max(caret.anchor, 0), length);
  const ranges = [Decoration.widget({ widget: new CaretWidget(caret.name), side: 1 }).range(head)];
  if (anchor !== head) {
    ranges.push(Decoration.mark({ class: 'cm-writer-selection' }).range(Math.min(anchor, head), Math.max(anchor, head)));
  }
  return Decoration.set(ranges, true);
}

const field = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    let next = deco.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setWriterCaret)) next = decorations(tr.state, effect.value);
    }
    return next;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.baseTheme({
  '.cm-writer-caret': {
    position: 'relative',
    borderLeft: '2px solid var(--writer, #8a2be2)',
    marginLeft: '-1px',
    marginRight: '-1px',
    pointerEvents: 'none',
  },
  '.cm-writer-caret::after': {
    content: 'attr(data-name)',
    position: 'absolute',
    left: '-2px',
    bottom: '100%',
    padding: '0 4px',
    borderRadius: '3px 3px 3px 0',
    background: 'var(--writer, #8a2be2)',
    color: 'var(--writer-fg, #ffffff)',
    fontFamily: 'system-ui, sans-serif',
    fontSize: '0.72rem',
    lineHeight: '1.3',
    whiteSpace: 'nowrap',
    zIndex: '5',
  },
  '.cm-writer-selection': { backgroundColor: 'var(--writer-selection, rgba(138, 43, 226, 0.18))' },
});

/** The extension: add once; positions come in through `setWriterCaret`. */
export function writerCaret(): Extension {
  return [field, theme];
}

/** A caret in code points (the wire's unit) as UTF-16 units of `doc`, clamped to it. */
export function caretToUnits(doc: string, caret: { name: string; anchor: number; head: number }): CaretInUnits {
  return { name: caret.name, anchor: codePointToUnit(doc, caret.anchor), head: codePointToUnit(doc, caret.head) };
}
