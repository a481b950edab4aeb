/**
 * Text positions on the wire are Unicode code points (protocol.md, "Transport"), while
 * JavaScript strings and CodeMirror positions count UTF-16 units. Every conversion between
 * the two goes through this module, and nothing here ever splits a surrogate pair.
 */

/** One replacement: delete `del` code points at code point `at`, then insert `ins`. */
export interface Change {
  at: number;
  del: number;
  ins: string;
}

/** Thrown when a change does not fit the text it is applied to (the copies diverged). */
export class ChangeRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChangeRangeError';
  }
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** Number of code points in `text` (a lone surrogate counts as one, as in Python). */
export function codePointLength(text: string): number {
  return codePointsBetween(text, 0, text.length);
}

/** Code points in `text` between UTF-16 indices `from` and `to` (both on pair boundaries). */
function codePointsBetween(text: string, from: number, to: number): number {
  let count = 0;
  for (let i = from; i < to; i++) {
    if (!(isLowSurrogate(text.charCodeAt(i)) && i > from && isHighSurrogate(text.charCodeAt(i - 1)))) {
      count++;
    }
  }
  return count;
}

/**
 * UTF-16 index of code point `cp`, scanning from UTF-16 index `fromUnit` which is code point
 * `fromCp`. Returns -1 when the text has fewer code points.
 */
function unitIndexOf(text: string, cp: number, fromUnit = 0, fromCp = 0): number {
  let unit = fromUnit;
  let seen = fromCp;
  while (seen < cp) {
    if (unit >= text.length) return -1;
    const high = isHighSurrogate(text.charCodeAt(unit));
    unit += high && unit + 1 < text.length && isLowSurrogate(text.charCodeAt(unit + 1)) ? 2 : 1;
    seen++;
  }
  return unit;
}

/** Convert a code point offset to a UTF-16 index, clamped to the end of the text. */
export function codePointToUnit(text: string, cp: number): number {
  const unit = unitIndexOf(text, cp);
  return unit < 0 ? text.length : unit;
}

/** Convert a UTF-16 index (e.g. an editor position) to a code point offset. */
export function unitToCodePoint(text: string, unit: number): number {
  return codePointsBetween(text, 0, Math.min(unit, text.length));
}

/** Apply one change; throws ChangeRangeError when it reaches past the end of the text. */
export function applyChange(text: string, change: Change): string {
  const start = unitIndexOf(text, change.at);
  if (start < 0) throw new ChangeRangeError(`change at ${change.at} is past the end`);
  const end = unitIndexOf(text, change.at + change.del, start, change.at);
  if (end < 0) throw new ChangeRangeError(`change deletes past the end`);
  return text.slice(0, start) + change.ins + text.slice(end);
}

/** Apply changes in order, each against the text the previous one produced. */
export function applyChanges(text: string, changes: readonly Change[]): string {
  return changes.reduce(applyChange, text);
}

/**
 * The single change that turns `before` into `after`, from their common prefix and suffix,
 * or null when they are equal. Boundaries are moved off the middle of surrogate pairs so
 * the result is exact in code points (an emoji is never half-deleted).
 */
export function diffText(before: string, after: string): Change | null {
  if (before === after) return null;
  const limit = Math.min(before.length, after.length);
  let prefix = 0;
  while (prefix < limit && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  // Do not end the prefix between a high and a low surrogate.
  if (prefix > 0 && isHighSurrogate(before.charCodeAt(prefix - 1))) prefix--;
  let suffix = 0;
  const maxSuffix = limit - prefix;
  while (
    suffix < maxSuffix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  ) {
    suffix++;
  }
  // Do not start the suffix on a low surrogate whose high half is outside it.
  if (suffix > 0 && isLowSurrogate(before.charCodeAt(before.length - suffix))) suffix--;
  const at = codePointsBetween(before, 0, prefix);
  const del = codePointsBetween(before, prefix, before.length - suffix);
  const ins = after.slice(prefix, after.length - suffix);
  return { at, del, ins };
}

/** UTF-8 size of a string, used to keep outgoing frames under the server's frame limit. */
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * Split `ins` into a head of at most `maxUnits` UTF-16 units (never splitting a pair, and
 * never empty unless `ins` is) and the rest, returning the head's code point count too.
 */
export function splitInsert(ins: string, maxUnits: number): { head: string; rest: string; headCps: number } {
  let cut = Math.min(maxUnits, ins.length);
  if (cut > 0 && cut < ins.length && isHighSurrogate(ins.charCodeAt(cut - 1))) cut--;
  // Always make progress: at least one whole code point.
  if (cut === 0 && ins.length > 0) cut = Math.min(ins.length, isHighSurrogate(ins.charCodeAt(0)) ? 2 : 1);
  const head = ins.slice(0, cut);
  return { head, rest: ins.slice(cut), headCps: codePointLength(head) };
}
