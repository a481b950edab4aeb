/**
 * One open note as the editor sees it: the top of three layers —
 * NoteReplica (server text, version, lock, presence) → NoteWriter (batched edits, drafts) →
 * NoteSession (this tab's claim on the write token, reconnects, attach/detach).
 *
 * Token rules kept here (protocol.md, "Write token"):
 * - The editor is writable only while this tab holds a live token: granted, caught up after
 *   the grant (`sync`), connected, and before the lease deadline computed from the SEND time
 *   of the last acknowledged heartbeat (or of the `acquire`).
 * - `lease_lost`, `fenced`, or a newer fence in a `lock` push end the claim at once; unsaved
 *   text is kept as a visible draft (NoteWriter).
 * - The claim survives reconnects: a resumed session keeps its lease (rule 9); a session the
 *   server forgot (restart) re-acquires without waiting and re-sends its edits (same op).
 */
import type {
  GrantedMsg,
  LeaseInfo,
  Lock,
  NoteMsg,
  QueuedMsg,
  SnapshotMsg,
  WelcomeMsg,
} from '../api/types';
import { LOSS_REASONS, describeError, type Derived, type NoteState } from './noteState';
import { NoteWriter } from './noteWriter';
import { DisconnectedError, ProtocolError } from './socket';

export type { Draft, NoteState, TokenRole } from './noteState';
export { BATCH_MS, EDIT_RETRY_MS } from './noteWriter';

/** Subtracted from lease deadlines measured at receive time (reply latency unknown). */
export const LEASE_MARGIN_MS = 250;

export class NoteSession extends NoteWriter {
  private detachSocket: (() => void) | null = null;
  private grantReceivedAt = 0;
  /** The user wants the token: kept across reconnects so the claim is restored. */
  private want: 'none' | 'hold' | 'wait' = 'none';
  private deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  private closing = false;

  // --- lifecycle ------------------------------------------------------------------------

  attach(): void {
    this.closing = false;
    if (this.detachSocket) return;
    this.detachSocket = this.socket.addListener({
      onWelcome: (w) => this.onWelcome(w),
      onNoteMessage: (m) => {
        if (m.note === this.noteId) this.onNoteMessage(m);
      },
      onHeartbeatAck: (sentAt, leases) => this.onHeartbeatAck(sentAt, leases),
      onStatus: () => {
        this.refresh();
        this.finishClose();
      },
    });
    const welcome = this.socket.welcome;
    if (welcome) {
      this.patch({ mySession: welcome.session });
      void this.subscribeNote();
    }
  }

  /**
   * Leave the note: unsent edits are flushed and the token released first when connected;
   * then unsubscribe and stop listening.
   */
  async detach(): Promise<void> {
    this.closing = true;
    const role = this.state.role;
    if (role !== 'none') await this.release();
    this.finishClose();
  }

  /** Called after every step that may finish a pending close (see `detach`). */
  private finishClose(): void {
    if (!this.closing || !this.detachSocket) return;
    const busy = this.outbox.busy || this.state.role === 'releasing';
    if (this.socket.connected && busy) return; // called again when the edits are through
    if (this.socket.connected) {
      void this.socket.request({ type: 'unsubscribe', note: this.noteId }).catch(() => undefined);
    }
    this.dispose();
  }

  private dispose(): void {
    this.detachSocket?.();
    this.detachSocket = null;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.flushTimer = this.deadlineTimer = null;
  }

  // --- user actions ---------------------------------------------------------------------

  /** Ask for the write token, waiting in line when someone else holds it. */
  async requestToken(): Promise<void> {
    this.want = 'wait';
    this.patch({ notice: null });
    await this.acquire(true);
  }

  /** Give the token back after the pending edits are saved, or leave the line. */
  async release(): Promise<void> {
    const role = this.state.role;
    this.want = 'none';
    if (role === 'waiting' || role === 'acquiring') {
      this.patch({ role: 'none', queuePosition: null });
      await this.socket.request({ type: 'release', note: this.noteId }).catch(() => undefined);
      return;
    }
    if (role !== 'holder' && role !== 'catching-up') return;
    this.patch({ role: 'releasing' });
    this.flush();
    await this.releaseWhenFlushed();
  }

  /** Owner or admin: fence out the current holder (`revoke`). */
  async revoke(): Promise<void> {
    try {
      const reply = await this.socket.request<Extract<NoteMsg, { type: 'revoked' }>>({
        type: 'revoke',
        note: this.noteId,
      });
      this.maxFence = Math.max(this.maxFence, reply.fence);
      this.patch({ notice: 'The write token was revoked.' });
    } catch (err) {
      this.patch({ notice: `Could not revoke: ${describeError(err)}` });
    }
  }

  dismissNotice(): void {
    this.patch({ notice: null });
  }

  // --- socket events --------------------------------------------------------------------

  private onWelcome(welcome: WelcomeMsg): void {
    this.buffered.clear();
    this.outbox.markUnsent();
    const lease = welcome.leases.find((l) => l.note === this.noteId);
    const held = this.state.role === 'holder' || this.state.role === 'catching-up' || this.state.role === 'releasing';
    let recover = false;
    if (held && lease && lease.fence === this.state.fence) {
      // Rule 9: the lease belongs to the session; `resume` kept it for this socket.
      this.setDeadline(Date.now() + lease.ttl_ms - LEASE_MARGIN_MS);
    } else if (held) {
      recover = true; // the token was lost while disconnected (e.g. the server restarted)
      this.patch({ role: 'none', fence: null, leaseDeadline: null });
    }
    const waiting = this.state.role === 'waiting';
    this.patch({ mySession: welcome.session });
    if (this.closing) return;
    void this.subscribeNote().then((ok) => {
      if (!ok) return;
      if (recover) {
        // The user was editing: claim the token again so their unsaved text can be saved.
        this.want = 'hold';
        void this.acquire(false);
      } else if (
        (waiting && (!welcome.resumed || !this.inQueue())) ||
        (this.want === 'wait' && this.state.role === 'none')
      ) {
        // A new session is not in the line; a resumed one is, unless the line forgot it.
        void this.acquire(true);
      } else if (this.state.role === 'holder' || this.state.role === 'releasing') {
        this.flush();
        if (this.state.role === 'releasing') void this.releaseWhenFlushed();
      }
    });
  }

  protected onTokenMessage(msg: NoteMsg): void {
    if (msg.type === 'granted') {
      void this.onGranted(msg, Date.now() + msg.ttl_ms - LEASE_MARGIN_MS);
    } else if (msg.type === 'lease_lost') {
      if (msg.fence >= (this.state.fence ?? Infinity)) this.loseToken(msg.reason);
      this.maxFence = Math.max(this.maxFence, msg.fence);
    }
  }

  private onHeartbeatAck(sentAt: number, leases: LeaseInfo[]): void {
    if (this.state.role !== 'holder' && this.state.role !== 'catching-up' && this.state.role !== 'releasing') return;
    const lease = leases.find((l) => l.note === this.noteId);
    if (lease && lease.fence === this.state.fence) {
      // The lease was renewed no earlier than this heartbeat left us: a safe deadline.
      this.setDeadline(sentAt + lease.ttl_ms);
      if (this.outbox.busy) this.flush(); // edits held back while the lease was unsure
    } else if (sentAt > this.grantReceivedAt) {
      this.loseToken('expired');
    }
  }

  /**
   * After a reload that resumed the session, the token this session holds is adopted
   * (rule 9: the lease belongs to the session), instead of showing "editing in another tab".
   */
  protected afterSubscribe(snap: SnapshotMsg): void {
    const welcome = this.socket.welcome;
    const lease = welcome?.leases.find((l) => l.note === this.noteId);
    if (this.state.role !== 'none' || !snap.lock || !welcome || snap.lock.session !== welcome.session) return;
    if (!lease || lease.fence !== snap.lock.fence) return;
    this.want = 'hold';
    void this.onGranted(
      { type: 'granted', note: this.noteId, fence: lease.fence, ttl_ms: lease.ttl_ms },
      Date.now() + lease.ttl_ms - LEASE_MARGIN_MS,
    );
  }

  // --- the write token ------------------------------------------------------------------

  protected afterLock(lock: Lock | null): void {
    const update: Partial<NoteState> = {};
    if (this.state.role === 'waiting' && lock) {
      const idx = lock.queue.findIndex((u) => u.id === this.me.id);
      if (idx >= 0) update.queuePosition = idx + 1;
    }
    this.patch(update);
    const fence = this.state.fence;
    const mine = this.state.role === 'holder' || this.state.role === 'catching-up';
    if (mine && lock && fence !== null && lock.fence > fence) this.loseToken('taken');
  }

  private inQueue(): boolean {
    return this.state.lock?.queue.some((u) => u.id === this.me.id) ?? false;
  }

  private async acquire(wait: boolean): Promise<void> {
    if (this.state.role === 'holder' || this.state.role === 'catching-up') return;
    this.patch({ role: 'acquiring' });
    const sentAt = Date.now();
    try {
      const reply = await this.socket.request<GrantedMsg | QueuedMsg>({
        type: 'acquire',
        note: this.noteId,
        wait,
      });
      if (reply.type === 'granted') {
        await this.onGranted(reply, sentAt + reply.ttl_ms);
      } else if (this.state.role === 'acquiring') {
        this.patch({ role: 'waiting', queuePosition: reply.position });
      }
    } catch (err) {
      if (this.state.role === 'acquiring') this.patch({ role: 'none' });
      if (err instanceof DisconnectedError) return; // restored on the next welcome
      this.want = 'none';
      const unsaved = this.outbox.busy;
      if (unsaved) this.keepDraft(err instanceof ProtocolError && err.code === 'locked' ? 'taken' : 'refused');
      this.patch({ notice: `Could not get the write token: ${describeError(err)}`, text: this.serverText });
    }
  }

  private async onGranted(msg: GrantedMsg, deadline: number): Promise<void> {
    if (msg.fence < this.maxFence) return;
    if (this.want === 'none' && this.state.role !== 'acquiring') {
      // A late grant for a claim the user withdrew: hand it straight back.
      await this.socket.request({ type: 'release', note: this.noteId, fence: msg.fence }).catch(() => undefined);
      return;
    }
    this.maxFence = msg.fence;
    this.grantReceivedAt = Date.now();
    this.want = 'hold';
    this.patch({ role: 'catching-up', fence: msg.fence, queuePosition: null, notice: null });
    this.setDeadline(deadline);
    // Edits committed before our grant may still be on their way: catch up first so our
    // first edit's base is current (otherwise it would be refused as `stale`).
    await this.sync();
    if (this.state.role !== 'catching-up' || this.state.fence !== msg.fence) return;
    this.patch({ role: 'holder' });
    this.refresh();
    this.flush();
  }

  private loseToken(reason: string): void {
    const role = this.state.role;
    if (role !== 'holder' && role !== 'catching-up' && role !== 'releasing') return;
    this.want = 'none';
    if (this.outbox.busy) {
      this.keepDraft(reason);
      this.patch({ text: this.serverText, remote: this.nextRemote(null) });
    }
    this.patch({
      role: 'none',
      fence: null,
      leaseDeadline: null,
      notice: role === 'releasing' ? null : (LOSS_REASONS[reason] ?? LOSS_REASONS.taken!),
    });
    this.refresh();
  }

  private async releaseWhenFlushed(): Promise<void> {
    if (this.state.role !== 'releasing' || this.outbox.busy || !this.socket.connected) return;
    const fence = this.state.fence;
    try {
      await this.socket.request({ type: 'release', note: this.noteId, fence });
      this.patch({ role: 'none', fence: null, leaseDeadline: null });
    } catch (err) {
      if (err instanceof ProtocolError) this.patch({ role: 'none', fence: null, leaseDeadline: null });
    }
    this.finishClose();
  }

  // --- lease deadline -------------------------------------------------------------------

  private setDeadline(deadline: number): void {
    this.patch({ leaseDeadline: deadline });
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    // Re-evaluate `writable` the moment the lease may have run out.
    this.deadlineTimer = setTimeout(() => this.refresh(), Math.max(0, deadline - Date.now()) + 1);
    this.refresh();
  }

  private leaseLive(): boolean {
    const deadline = this.state.leaseDeadline;
    return deadline !== null && Date.now() < deadline;
  }

  protected canWrite(): boolean {
    return this.computeWritable(this.state);
  }

  protected canSend(): boolean {
    const role = this.state.role;
    return (role === 'holder' || role === 'releasing') && this.leaseLive() && this.socket.connected;
  }

  protected onFenced(): void {
    this.loseToken('fenced');
  }

  protected afterEditSettled(): void {
    if (this.state.role === 'releasing') void this.releaseWhenFlushed();
    this.finishClose();
  }

  private computeWritable(state: NoteState): boolean {
    return (
      state.role === 'holder' &&
      this.socket.connected &&
      state.leaseDeadline !== null &&
      Date.now() < state.leaseDeadline &&
      (state.access === 'write' || state.access === 'admin')
    );
  }

  protected derive(state: NoteState): Derived {
    const inflight = this.outbox.inflight;
    return {
      writable: this.computeWritable(state),
      save: inflight?.sent ? 'saving' : this.outbox.busy ? 'unsaved' : 'saved',
    };
  }
}
