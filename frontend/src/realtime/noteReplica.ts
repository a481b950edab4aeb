/**
 * The server's copy of one note as this tab knows it: its text and version, the `edited`
 * pushes that arrived early, and the highest lock fence seen. Plain data with no socket or
 * store, so the session composes it with the outbox and the token machine.
 *
 * Invariants kept here:
 * - `text`/`version` only move by a snapshot, an in-order `edited` (push or sync) or the
 *   `ack` of our own edit. Pushes after a gap are buffered until the gap is filled.
 * - Lock fences are monotone: a fence lower than one seen is stale.
 */
import type { EditedMsg, Lock } from '../api/types';
import { applyChanges, type Change } from '../lib/text';

export type EditedOrder = 'old' | 'next' | 'gap';

export class NoteReplica {
  /** The text at `version`, as the server has it (without this tab's unsent edits). */
  text = '';
  version = 0;
  private buffered = new Map<number, EditedMsg>();
  private fence = 0;

  get maxFence(): number {
    return this.fence;
  }

  get hasBuffered(): boolean {
    return this.buffered.size > 0;
  }

  load(content: string, version: number): void {
    this.text = content;
    this.version = version;
    for (const v of [...this.buffered.keys()]) if (v <= version) this.buffered.delete(v);
  }

  /** Where `msg` stands against our version; a `gap` one is kept for later. */
  order(msg: EditedMsg): EditedOrder {
    if (msg.version <= this.version) return 'old';
    if (msg.base === this.version && msg.version === this.version + 1) return 'next';
    this.buffered.set(msg.version, msg);
    return 'gap';
  }

  /** Apply the next in-order edit. Throws ChangeRangeError when our copy diverged. */
  apply(msg: EditedMsg): void {
    this.text = msg.content !== undefined ? msg.content : applyChanges(this.text, msg.changes ?? []);
    this.version = msg.version;
  }

  /** Our own edit on `version - 1` was acknowledged as `version`. */
  applyOwn(changes: readonly Change[], version: number): void {
    this.text = applyChanges(this.text, changes);
    this.version = version;
  }

  /** The buffered push that comes next, removed from the buffer. */
  takeNext(): EditedMsg | null {
    // Pushes a sync already covered would otherwise keep the buffer (and the syncs) going.
    for (const v of [...this.buffered.keys()]) if (v <= this.version) this.buffered.delete(v);
    const next = this.buffered.get(this.version + 1) ?? null;
    if (next) this.buffered.delete(next.version);
    return next;
  }

  clearBuffered(): void {
    this.buffered.clear();
  }

  noteFence(fence: number): void {
    this.fence = Math.max(this.fence, fence);
  }

  /** False for a lock push older than one already applied (fences only grow). */
  acceptLock(lock: Lock | null): boolean {
    if (!lock) return true;
    if (lock.fence < this.fence) return false;
    this.fence = lock.fence;
    return true;
  }
}
