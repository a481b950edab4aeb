/**
 * The holder's unsent and in-flight edits. Keeps the protocol's rule of ONE edit in flight:
 * its `base` is the last acknowledged version and its `op` is a fresh UUID that is reused on
 * every retry (also after a reconnect), so the server never applies it twice.
 */
import type { Change } from '../lib/text';
import { uuid4 } from '../lib/uuid';
import { appendChange, takeBatch } from './batching';

export interface InflightEdit {
  op: string;
  base: number;
  changes: Change[];
  /** Sent on the current connection and not yet answered. */
  sent: boolean;
}

export class Outbox {
  private pending: Change[] = [];
  private current: InflightEdit | null = null;

  /** The edit awaiting its `ack`, if any. */
  get inflight(): InflightEdit | null {
    return this.current;
  }

  /** Anything not yet acknowledged. */
  get busy(): boolean {
    return this.current !== null || this.pending.length > 0;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  add(change: Change): void {
    this.pending = appendChange(this.pending, change);
  }

  /**
   * The edit to send now: the in-flight one when it is not sent on this connection, else a
   * new batch on `base` when nothing is in flight. Null when there is nothing to send.
   */
  next(base: number): InflightEdit | null {
    if (!this.current) {
      if (this.pending.length === 0) return null;
      const { batch, rest } = takeBatch(this.pending);
      this.current = { op: uuid4(), base, changes: batch, sent: false };
      this.pending = rest;
    }
    return this.current.sent ? null : this.current;
  }

  /** The connection dropped: the in-flight edit must be sent again (same op). */
  markUnsent(): void {
    if (this.current) this.current.sent = false;
  }

  /** `edit` got its final answer; false when it is no longer the one in flight. */
  settle(edit: InflightEdit): boolean {
    if (this.current !== edit) return false;
    this.current = null;
    return true;
  }

  clear(): void {
    this.current = null;
    this.pending = [];
  }
}
