/**
 * The boundary between the wire and the editor: the wire counts Unicode code points and
 * applies the changes of one edit one after another; CodeMirror counts UTF-16 units and a
 * ChangeSet addresses the document as it was before the whole set. Every conversion between
 * the two goes through here.
 */
import { ChangeSet, Text } from '@codemirror/state';
import { codePointLength, codePointToUnit, diffText, unitToCodePoint, type Change } from './text';

/** Thrown when wire changes do not fit the document they are meant for. */
export class ChangeMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChangeMismatchError';
  }
}

/**
 * Sequential wire changes (code points) as one ChangeSet on `doc` (UTF-16), so they can be
 * applied in a single transaction that maps selections and history through them.
 */
export function wireToEditor(doc: string, changes: readonly Change[]): ChangeSet {
  let text = doc;
  let set = ChangeSet.empty(doc.length);
  for (const change of changes) {
    const from = codePointToUnit(text, change.at);
    const to = codePointToUnit(text, change.at + change.del);
    if (unitToCodePoint(text, from) !== change.at || unitToCodePoint(text, to) !== change.at + change.del) {
      throw new ChangeMismatchError(`change at ${change.at} (+${change.del}) is past the end`);
    }
    const step = ChangeSet.of({ from, to, insert: change.ins }, text.length);
    set = set.compose(step);
    text = text.slice(0, from) + change.ins + text.slice(to);
  }
  return set;
}

/**
 * A ChangeSet made on `before` as sequential wire changes in code points: each change's
 * position is in the text the previous ones produced, as the protocol applies them.
 */
export function editorToWire(before: Text | string, changes: ChangeSet): Change[] {
  const doc = typeof before === 'string' ? before : before.toString();
  const out: Change[] = [];
  // `iterChanges` reports ranges in the original document, in order; `shift` is how far
  // (in code points) the earlier changes moved the text after them.
  let shift = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    const at = unitToCodePoint(doc, fromA);
    const del = unitToCodePoint(doc, toA) - at;
    const ins = inserted.toString();
    out.push({ at: at + shift, del, ins });
    shift += codePointLength(ins) - del;
  });
  return out;
}

/**
 * The changes that turn the editor's document into `text`: the remote changes themselves
 * when they lead there (so selections map through exactly what changed), else the smallest
 * single replacement.
 */
export function changesToReach(doc: string, text: string, remote: Change[] | null): ChangeSet {
  if (remote) {
    try {
      const set = wireToEditor(doc, remote);
      if (applyToString(doc, set) === text) return set;
    } catch {
      // The changes were made on another text than ours: fall back to the difference.
    }
  }
  const change = diffText(doc, text);
  return wireToEditor(doc, change ? [change] : []);
}

function applyToString(doc: string, set: ChangeSet): string {
  let out = '';
  let pos = 0;
  set.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    out += doc.slice(pos, fromA) + inserted.toString();
    pos = toA;
  });
  return out + doc.slice(pos);
}
