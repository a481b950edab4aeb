/**
 * The holder's outgoing edits: keystrokes become small `changes` (never the whole text per
 * keystroke), merged while they extend each other, and cut into batches that respect the
 * server's limits (COLLAB_MAX_CHANGES_PER_EDIT, COLLAB_MAX_FRAME_BYTES).
 */
import { codePointLength, splitInsert, utf8Length, type Change } from '../lib/text';

/** Kept below the server default of 256 changes per edit. */
export const MAX_CHANGES_PER_EDIT = 200;
/** Budget for the inserted text of one edit, well under the 64 KiB default frame limit. */
export const MAX_EDIT_INSERT_BYTES = 32 * 1024;

/**
 * Append `change` to `pending`, merging it into the last change when it continues typing
 * (an insert right after the previous insert) or backspacing (a delete right before the
 * previous delete). Returns a new array; the input is not modified.
 */
export function appendChange(pending: readonly Change[], change: Change): Change[] {
  const last = pending[pending.length - 1];
  if (last) {
    if (change.del === 0 && change.at === last.at + codePointLength(last.ins)) {
      return [...pending.slice(0, -1), { at: last.at, del: last.del, ins: last.ins + change.ins }];
    }
    if (change.ins === '' && last.ins === '' && change.at + change.del === last.at) {
      return [...pending.slice(0, -1), { at: change.at, del: last.del + change.del, ins: '' }];
    }
  }
  return [...pending, change];
}

function insertBytes(ins: string): number {
  return utf8Length(JSON.stringify(ins));
}

/**
 * Take the next batch from `pending`: at most `maxChanges` changes whose inserted text
 * fits `maxBytes`. A single insert larger than the budget is split; its tail stays first in
 * `rest` as an insert right after the head, so applying batch then rest gives the same text.
 */
export function takeBatch(
  pending: readonly Change[],
  maxChanges = MAX_CHANGES_PER_EDIT,
  maxBytes = MAX_EDIT_INSERT_BYTES,
): { batch: Change[]; rest: Change[] } {
  const batch: Change[] = [];
  let bytes = 0;
  let i = 0;
  for (; i < pending.length && batch.length < maxChanges; i++) {
    const change = pending[i] as Change;
    const size = insertBytes(change.ins);
    if (bytes + size <= maxBytes) {
      batch.push(change);
      bytes += size;
      continue;
    }
    if (batch.length > 0) break;
    // One oversized insert: send a head that fits, keep the tail for the next edit.
    let units = Math.max(1, Math.floor(maxBytes / 6));
    let part = splitInsert(change.ins, units);
    while (units > 1 && insertBytes(part.head) > maxBytes) {
      units = Math.floor(units / 2);
      part = splitInsert(change.ins, units);
    }
    const tail: Change = { at: change.at + part.headCps, del: 0, ins: part.rest };
    return { batch: [{ at: change.at, del: change.del, ins: part.head }], rest: [tail, ...pending.slice(i + 1)] };
  }
  return { batch, rest: pending.slice(i) };
}
