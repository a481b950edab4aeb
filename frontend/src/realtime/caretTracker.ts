/**
 * A viewer's view of the writer's caret (protocol.md, "The writer's caret"), as plain data
 * with no socket or store. It is told every `caret` push, every edit applied to the
 * viewer's copy, every snapshot and every lock change, and keeps:
 * - the caret shown, in code points of the copy's current version (clamped to its length);
 * - a caret for a version the copy has not reached yet, shown once it gets there;
 * - the changes of the last CARET_LOG_VERSIONS versions, so a caret that arrives after
 *   later edits is carried forward through them.
 * A `lock` naming no holder or a later fence removes the caret; a caret of a fence that is
 * already over is ignored.
 */
import type { CaretMsg, UserBrief } from '../api/types';
import { mapThrough } from '../lib/caretMapping';
import { codePointLength, type Change } from '../lib/text';

/** How many recent versions' changes are kept to carry a late caret forward. */
export const CARET_LOG_VERSIONS = 64;

export interface ShownCaret {
  holder: UserBrief;
  fence: number;
  anchor: number;
  head: number;
}

type Positioned = ShownCaret & { version: number };

export class CaretTracker {
  private shown: Positioned | null = null;
  private pending: Positioned | null = null;
  private log = new Map<number, readonly Change[]>();
  private version = 0;
  private length = 0;
  /** Fence of the live token as the last lock told (null: nobody holds it). */
  private lockFence: number | null = null;
  private maxFence = 0;

  /** The caret to draw, clamped to the copy's text; null when there is none to show. */
  get caret(): ShownCaret | null {
    const s = this.shown;
    if (!s) return null;
    const clamp = (p: number) => Math.min(Math.max(p, 0), this.length);
    return { holder: s.holder, fence: s.fence, anchor: clamp(s.anchor), head: clamp(s.head) };
  }

  /** A snapshot replaced the copy (its version may even be lower, after a failover). */
  reset(version: number, length: number): void {
    this.version = version;
    this.length = length;
    this.log.clear();
    this.shown = null;
    this.promote();
  }

  /**
   * The copy moved from the previous version to `version` by `changes` (sequential, code
   * points). The caller makes sure versions come one by one; a snapshot goes to `reset`.
   */
  edit(version: number, changes: readonly Change[]): void {
    let length = this.length;
    for (const c of changes) length += codePointLength(c.ins) - c.del;
    if (version !== this.version + 1) {
      this.reset(version, length); // not the next version: nothing older can be mapped
      return;
    }
    this.log.set(version, changes);
    this.log.delete(version - CARET_LOG_VERSIONS);
    this.version = version;
    this.length = length;
    if (this.shown) this.shown = this.carry(this.shown, changes, version);
    this.promote();
  }

  /** A `caret` push; false when it was ignored. */
  receive(msg: Pick<CaretMsg, 'holder' | 'fence' | 'version' | 'anchor' | 'head'>): boolean {
    if (msg.fence < this.maxFence) return false; // a token already replaced
    if (this.lockFence === null && msg.fence <= this.maxFence && this.maxFence > 0) return false; // released
    const caret: Positioned = {
      holder: msg.holder,
      fence: msg.fence,
      version: msg.version,
      anchor: msg.anchor,
      head: msg.head,
    };
    if (caret.version > this.version) {
      this.pending = caret;
      return true;
    }
    const current = this.forward(caret);
    if (!current) return false; // too old to carry forward: the next move brings a fresh one
    this.shown = current;
    this.pending = null;
    return true;
  }

  /** A lock push (or the lock of a snapshot): `fence` null when nobody holds the token. */
  lock(fence: number | null): void {
    this.lockFence = fence;
    if (fence !== null) this.maxFence = Math.max(this.maxFence, fence);
    const over = (c: Positioned | null) => c !== null && (fence === null || fence > c.fence);
    if (over(this.shown)) this.shown = null;
    if (over(this.pending)) this.pending = null;
  }

  /** Forget any caret (this tab got the token: it draws its own). */
  clear(): void {
    this.shown = null;
    this.pending = null;
  }

  /** Show the pending caret once the copy has reached its version. */
  private promote(): void {
    const p = this.pending;
    if (!p || p.version > this.version) return;
    this.pending = null;
    const current = this.forward(p);
    if (current) this.shown = current;
  }

  /** `caret` carried to the current version through the logged changes, or null. */
  private forward(caret: Positioned): Positioned | null {
    let c = caret;
    for (let v = caret.version + 1; v <= this.version; v++) {
      const changes = this.log.get(v);
      if (!changes) return null;
      c = this.carry(c, changes, v);
    }
    return c;
  }

  private carry(c: Positioned, changes: readonly Change[], version: number): Positioned {
    return { ...c, version, anchor: mapThrough(c.anchor, changes), head: mapThrough(c.head, changes) };
  }
}
