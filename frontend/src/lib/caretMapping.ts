/**
 * Positions of the writer's caret (code points, protocol.md "The writer's caret") carried
 * across edits: forward through edits a viewer applies after the caret's version, and, on
 * the holder's side, back from its editor text (which may hold edits not yet acknowledged)
 * to the last acknowledged version, the only one a viewer can have.
 */
import { codePointLength, diffText, type Change } from './text';

/**
 * Where `pos` lands after sequential changes (each on the text the previous one made). An
 * insertion exactly at `pos` moves it forward, as the writer's caret moves when it types; a
 * position inside a replaced range ends after the replacement, except at its very start.
 */
export function mapThrough(pos: number, changes: readonly Change[]): number {
  let p = pos;
  for (const c of changes) {
    const ins = codePointLength(c.ins);
    if (p < c.at) continue;
    if (c.del === 0 || p >= c.at + c.del) p = p - c.del + ins;
    else if (p > c.at) p = c.at + ins;
    // p === c.at with a deletion after it: it stays where it is.
  }
  return p;
}

/**
 * Positions in `local` (the server's text plus this tab's unacknowledged edits) as positions
 * in `server`, clamped to it. Text typed but not yet acknowledged maps to where it was typed.
 */
export function mapBack(server: string, local: string, positions: readonly number[]): number[] {
  const d = diffText(server, local);
  const serverLength = codePointLength(server);
  const ins = d ? codePointLength(d.ins) : 0;
  return positions.map((pos) => {
    let p = pos;
    if (d && pos > d.at) p = pos >= d.at + ins ? pos - ins + d.del : d.at + Math.min(pos - d.at, d.del);
    return Math.min(Math.max(p, 0), serverLength);
  });
}

/** 1-based line and column (in code points) of a code point offset, clamped to the text. */
export function lineColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let column = 1;
  let seen = 0;
  for (const ch of text) {
    if (seen >= pos) break;
    if (ch === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
    seen++;
  }
  return { line, column };
}
