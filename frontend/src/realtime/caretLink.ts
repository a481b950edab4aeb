/**
 * The writer's caret for one open note, both ways (protocol.md, "The writer's caret"):
 * - as holder, the editor's selection goes out as `caret` at most every CARET_INTERVAL_MS
 *   (the last one always), in code points of the last acknowledged version, the only one
 *   viewers can have: text typed but not acknowledged yet maps to where it was typed;
 * - as viewer, the holder's caret is kept by a CaretTracker and shown through `show`.
 * The note session composes it and tells it what happened; it owns no socket and no store.
 */
import type { CaretMsg } from '../api/types';
import { mapBack } from '../lib/caretMapping';
import { codePointLength, unitToCodePoint, type Change } from '../lib/text';
import { TrailingThrottle } from './caretThrottle';
import { CaretTracker } from './caretTracker';
import type { WriterCaret } from './noteState';

/** The holder's caret goes out at most this often (the server forwards it no faster). */
export const CARET_INTERVAL_MS = 100;

export interface CaretHost {
  readonly noteId: string;
  /** The fence to send with, while this tab is the (caught up, connected) holder; else null. */
  holderFence(): number | null;
  /** This tab holds or is finishing with the token: it shows nobody's caret. */
  holds(): boolean;
  mySession(): string | null;
  /** The editor's text, and the last acknowledged text with its version. */
  texts(): { local: string; server: string; version: number };
  /** Send a frame that gets no answer; false when it could not be sent. */
  send(frame: { type: string } & Record<string, unknown>): boolean;
  show(caret: WriterCaret | null): void;
}

export class CaretLink {
  private readonly tracker = new CaretTracker();
  private readonly throttle: TrailingThrottle;
  /** The editor's selection, in UTF-16 units of the local text. */
  private selection: { anchor: number; head: number } | null = null;
  private lastSent = '';
  private shown: WriterCaret | null = null;

  constructor(private readonly host: CaretHost) {
    this.throttle = new TrailingThrottle(CARET_INTERVAL_MS, () => this.send());
  }

  // --- holder -----------------------------------------------------------------------------

  /** The editor's selection moved (UTF-16 units of the text shown). */
  select(anchor: number, head: number): void {
    this.selection = { anchor, head };
    this.nudge();
  }

  /** Something moved the caret's position on the wire (a new version, a grant): send it. */
  nudge(): void {
    if (this.host.holderFence() !== null) this.throttle.trigger();
  }

  /** A new connection or a new grant: the next caret goes out even if it has not moved. */
  forgetSent(): void {
    this.lastSent = '';
  }

  stop(): void {
    this.throttle.cancel();
  }

  private send(): boolean {
    const sel = this.selection;
    const fence = this.host.holderFence();
    if (fence === null || !sel) return false;
    const { local, server, version } = this.host.texts();
    const [anchor, head] = mapBack(server, local, [unitToCodePoint(local, sel.anchor), unitToCodePoint(local, sel.head)]);
    const frame = { type: 'caret', note: this.host.noteId, fence, version, anchor, head };
    const key = JSON.stringify(frame);
    if (key === this.lastSent || !this.host.send(frame)) return false;
    this.lastSent = key;
    return true;
  }

  // --- viewer -----------------------------------------------------------------------------

  receive(msg: CaretMsg): void {
    if (this.host.holds() || msg.session === this.host.mySession()) return;
    if (this.tracker.receive(msg)) this.publish();
  }

  /** The copy was replaced (a snapshot). */
  loaded(version: number, content: string): void {
    this.tracker.reset(version, codePointLength(content));
    this.publish();
  }

  /** The copy moved to `version` by `changes` (code points, sequential). */
  edited(version: number, changes: readonly Change[]): void {
    this.tracker.edit(version, changes);
    this.publish();
  }

  lock(fence: number | null): void {
    this.tracker.lock(fence);
    this.publish();
  }

  /** This tab's role changed: a tab that holds the token draws nobody's caret. */
  roleChanged(): void {
    if (this.host.holds()) this.tracker.clear();
    this.publish();
  }

  private publish(): void {
    const c = this.host.holds() ? null : this.tracker.caret;
    const next = c ? { name: c.holder.name, anchor: c.anchor, head: c.head } : null;
    const same =
      next === this.shown ||
      (next !== null &&
        this.shown !== null &&
        next.name === this.shown.name &&
        next.anchor === this.shown.anchor &&
        next.head === this.shown.head);
    if (same) return;
    this.shown = next;
    this.host.show(next);
  }
}
