/**
 * One open note as the editor sees it, composed of three parts that do not know each other:
 * - NoteReplica: the server's text, version, early pushes and lock fences;
 * - Outbox: the holder's unsent and in-flight edits (one in flight, same op on retry);
 * - the token machine (`tokenMachine.ts`): this tab's claim on the write token, a pure
 *   `(state, event) -> {state, commands}` function.
 * This class wires them to the socket and to the store the page renders.
 *
 * Rules kept here (protocol.md, "Write token"):
 * - The editor is writable only while this tab holds a live token: granted, caught up after
 *   the grant (`sync`), connected, and before the lease deadline computed from the SEND time
 *   of the last acknowledged heartbeat (or of the `acquire`).
 * - `lease_lost`, `fenced`, or a newer fence in a `lock` push end the claim at once; unsaved
 *   text is kept as a visible draft, never dropped silently.
 * - The claim survives reconnects: a resumed session keeps its lease (rule 9); a session the
 *   server forgot (restart) re-acquires without waiting and re-sends its edits (same op).
 *
 * The writer's caret (protocol.md, "The writer's caret") is a fourth part, CaretLink, told
 * what happens here. The idle hand-off ("Idle hand-off") goes through the token machine;
 * edit requests are shown to the holder only.
 */
import type {
  AckMsg,
  ChangesMsg,
  EditedMsg,
  EditRequestMsg,
  GrantedMsg,
  LeaseInfo,
  Lock,
  NoteMsg,
  QueuedMsg,
  RequestedMsg,
  SnapshotMsg,
  User,
  WelcomeMsg,
} from '../api/types';
import { applyChanges, diffText, type Change } from '../lib/text';
import { CaretLink } from './caretLink';
import { NoteReplica } from './noteReplica';
import { LOSS_REASONS, NoteStore, describeError, type NoteState, type TokenRole } from './noteState';
import { Outbox, type InflightEdit } from './outbox';
import { CollabSocket, DisconnectedError, ProtocolError } from './socket';
import {
  holdsToken,
  initialTokenState,
  step,
  type TokenCommand,
  type TokenEvent,
  type TokenState,
} from './tokenMachine';
import { askErrorText, askResultText, idleLossText } from './writerNotices';

export type { Draft, NoteState, TokenRole, WriterCaret } from './noteState';

/** Keystrokes are collected this long before they go out as one `edit`. */
export const BATCH_MS = 50;
/** Wait before re-sending an edit refused with `rate_limited`/`unavailable`/`internal`. */
export const EDIT_RETRY_MS = 1000;
/** Wait before asking again for a token the server could not grant yet (`unavailable`). */
export const ACQUIRE_RETRY_MS = 1000;
/** Subtracted from lease deadlines measured at receive time (reply latency unknown). */
export const LEASE_MARGIN_MS = 250;
export { CARET_INTERVAL_MS } from './caretLink';

export class NoteSession {
  private readonly store: NoteStore;
  private readonly replica = new NoteReplica();
  private readonly outbox = new Outbox();
  private token: TokenState = initialTokenState;
  private detachSocket: (() => void) | null = null;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  private acquireTimer: ReturnType<typeof setTimeout> | null = null;
  private syncRun: Promise<void> | null = null;
  private syncAgain = false;
  private remoteSeq = 0;
  private closing = false;
  private readonly carets: CaretLink;
  /** Clock time of the last thing the server counts as activity (grant, edit, keep). */
  private lastActiveAt = 0;
  /** Who the token went to and after how long, for the idle hand-off notice. */
  private idleLoss: { next: string | null; seconds: number | null } | null = null;

  constructor(
    private readonly socket: CollabSocket,
    readonly noteId: string,
    private readonly me: User,
  ) {
    this.store = new NoteStore(noteId, (s) => ({
      writable: this.computeWritable(s),
      save: this.outbox.inflight?.sent ? 'saving' : this.outbox.busy ? 'unsaved' : 'saved',
    }));
    this.carets = new CaretLink({
      noteId,
      holderFence: () => (this.token.role === 'holder' && this.socket.connected ? this.token.fence : null),
      holds: () => holdsToken(this.token.role),
      mySession: () => this.state.mySession,
      texts: () => ({ local: this.state.text, server: this.replica.text, version: this.replica.version }),
      send: (frame) => this.socket.send(frame),
      show: (caret) => this.patch({ caret }),
    });
  }

  getState = (): NoteState => this.store.getState();
  subscribe = (listener: () => void): (() => void) => this.store.subscribe(listener);

  private get state(): NoteState {
    return this.store.current;
  }

  private patch(update: Partial<NoteState>): void {
    this.store.patch(update);
  }

  /** True when text typed here is not yet acknowledged by the server (or kept as a draft). */
  get hasUnsavedText(): boolean {
    return this.outbox.busy || this.state.draft !== null;
  }

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
        this.store.refresh();
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
    if (this.token.role !== 'none') await this.release();
    this.finishClose();
  }

  /** Called after every step that may finish a pending close (see `detach`). */
  private finishClose(): void {
    if (!this.closing || !this.detachSocket) return;
    const busy = this.outbox.busy || this.token.role === 'releasing';
    if (this.socket.connected && busy) return; // called again when the edits are through
    if (this.socket.connected) {
      void this.socket.request({ type: 'unsubscribe', note: this.noteId }).catch(() => undefined);
    }
    this.detachSocket?.();
    this.detachSocket = null;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.acquireTimer) clearTimeout(this.acquireTimer);
    this.flushTimer = this.deadlineTimer = this.acquireTimer = null;
    this.carets.stop();
  }

  // --- user actions ---------------------------------------------------------------------

  /** Ask for the write token, waiting in line when someone else holds it. */
  async requestToken(): Promise<void> {
    await this.dispatch({ type: 'request' });
  }

  /** Give the token back after the pending edits are saved, or leave the line. */
  async release(): Promise<void> {
    await this.dispatch({ type: 'release' });
  }

  /** Owner or admin: fence out the current holder (`revoke`). */
  async revoke(): Promise<void> {
    try {
      const reply = await this.socket.request<Extract<NoteMsg, { type: 'revoked' }>>({
        type: 'revoke',
        note: this.noteId,
      });
      this.replica.noteFence(reply.fence);
      this.patch({ notice: 'The write token was revoked.' });
    } catch (err) {
      this.patch({ notice: `Could not revoke: ${describeError(err)}` });
    }
  }

  dismissNotice(): void {
    this.patch({ notice: null });
  }

  /** "Keep editing": restart the idle clock before the token is handed on. */
  async keep(): Promise<void> {
    await this.dispatch({ type: 'keep' });
  }

  /** Waiter: ask the holder to hand the token over (`request`); the answer is shown. */
  async askHolder(): Promise<void> {
    try {
      const reply = await this.socket.request<RequestedMsg>({ type: 'request', note: this.noteId });
      this.patch({ askStatus: askResultText(reply.holder) });
    } catch (err) {
      this.patch({ askStatus: askErrorText(err) });
    }
  }

  dismissEditRequests(): void {
    this.patch({ editRequests: [] });
  }

  /**
   * The editor's selection moved (UTF-16 units of the text shown). The holder's caret goes
   * out, throttled; a move by the user while the idle warning shows counts as activity.
   */
  select(anchor: number, head: number, byUser: boolean): void {
    this.carets.select(anchor, head);
    if (byUser && this.token.role === 'holder' && this.state.idleWarning) void this.keep();
  }

  /** The note was renamed on this page: show the new title at once. */
  setTitle(title: string): void {
    this.patch({ title });
  }

  /** The editor's new value. Ignored (returns false) unless the token is live. */
  setText(next: string): boolean {
    const change = diffText(this.state.text, next);
    return this.edit(change ? [change] : []);
  }

  /**
   * Local changes in code points, each against the text the previous one produced.
   * Ignored (returns false) unless the token is live.
   */
  edit(changes: readonly Change[]): boolean {
    if (!this.computeWritable(this.state)) return false;
    if (changes.length === 0) return true;
    for (const change of changes) this.outbox.add(change);
    // A keystroke resets the server's idle clock once its edit arrives: the warning goes now.
    this.patch({ text: applyChanges(this.state.text, changes), idleWarning: null });
    if (!this.outbox.inflight && !this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, BATCH_MS);
    }
    return true;
  }

  /** Put the kept draft back into the editor (only while holding a live token). */
  restoreDraft(): boolean {
    const draft = this.state.draft;
    if (!draft || !this.computeWritable(this.state)) return false;
    this.patch({ draft: null });
    return this.setText(draft.text);
  }

  dismissDraft(): void {
    this.patch({ draft: null });
  }

  // --- the token machine ----------------------------------------------------------------

  /** Feed one event to the token machine and carry out its commands in order. */
  private async dispatch(event: TokenEvent): Promise<void> {
    const before = this.token.role;
    const { state, commands } = step(this.token, event);
    this.token = state;
    this.patch({ role: state.role, fence: state.fence, queuePosition: state.queuePosition });
    if (state.role !== before) this.roleChanged(before, state.role);
    const pending: Promise<void>[] = [];
    for (const command of commands) {
      const done = this.run(command);
      if (done) pending.push(done);
    }
    this.store.refresh();
    await Promise.all(pending);
  }

  private run(command: TokenCommand): Promise<void> | void {
    switch (command.type) {
      case 'send-acquire':
        return this.sendAcquire(command.wait);
      case 'retry-acquire':
        if (this.acquireTimer) clearTimeout(this.acquireTimer);
        this.acquireTimer = setTimeout(() => {
          this.acquireTimer = null;
          if (this.token.role === 'acquiring' && this.detachSocket) void this.sendAcquire(command.wait);
        }, ACQUIRE_RETRY_MS);
        return;
      case 'send-release':
        return this.sendRelease(command.fence, command.settle);
      case 'sync-after-grant':
        this.lastActiveAt = Date.now(); // a grant starts the idle clock
        return this.syncAfterGrant(command.fence);
      case 'note-fence':
        this.replica.noteFence(command.fence);
        return;
      case 'flush':
        this.flush();
        return;
      case 'release-when-flushed':
        return this.releaseWhenFlushed();
      case 'set-deadline':
        this.setDeadline(command.at);
        return;
      case 'clear-deadline':
        if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
        this.deadlineTimer = null;
        this.patch({ leaseDeadline: null });
        return;
      case 'keep-draft':
        if (this.outbox.busy) {
          this.keepDraft(command.reason);
          this.patch({ text: this.replica.text, remote: this.nextRemote(null) });
        }
        return;
      case 'notice':
        this.patch({ notice: command.text ?? this.noticeText(command.reason) });
        return;
      case 'warn-idle':
        this.patch({ idleWarning: command.deadline === null ? null : { deadline: command.deadline } });
        return;
      case 'send-keep':
        return this.sendKeep();
    }
  }

  private noticeText(reason: string | null): string | null {
    if (!reason) return null;
    if (reason === 'idle') {
      const loss = this.idleLoss;
      return idleLossText(loss?.next ?? null, loss?.seconds ?? null);
    }
    return LOSS_REASONS[reason] ?? LOSS_REASONS.taken!;
  }

  private async sendKeep(): Promise<void> {
    this.lastActiveAt = Date.now();
    try {
      await this.socket.request({ type: 'keep', note: this.noteId });
      await this.dispatch({ type: 'kept' });
    } catch {
      // No token any more (its lease_lost says why) or not connected: nothing to keep.
    }
  }

  /** What depends on the role alone: holder-only and viewer-only parts of the page. */
  private roleChanged(before: TokenRole, role: TokenRole): void {
    if (role !== 'waiting') this.patch({ askStatus: null });
    if (!holdsToken(role)) this.patch({ idleWarning: null });
    if (!holdsToken(role) || role === 'releasing') this.patch({ editRequests: [] });
    this.carets.roleChanged();
    if (role === 'holder') {
      this.carets.forgetSent();
      this.carets.nudge(); // viewers see where the new holder is at once
    } else if (before === 'holder') {
      this.carets.stop();
    }
  }

  private async sendAcquire(wait: boolean): Promise<void> {
    const sentAt = Date.now();
    try {
      const reply = await this.socket.request<GrantedMsg | QueuedMsg>({ type: 'acquire', note: this.noteId, wait });
      if (reply.type === 'granted') await this.granted(reply, sentAt + reply.ttl_ms);
      else await this.dispatch({ type: 'queued', position: reply.position });
    } catch (err) {
      await this.dispatch({
        type: 'acquire-failed',
        disconnected: err instanceof DisconnectedError,
        retryable:
          err instanceof ProtocolError &&
          (err.code === 'unavailable' ||
            err.code === 'rate_limited' ||
            (err.code === 'locked' && this.state.lock === null)),
        locked: err instanceof ProtocolError && err.code === 'locked',
        message: describeError(err),
      });
    }
  }

  private granted(msg: GrantedMsg, deadline: number): Promise<void> {
    return this.dispatch({
      type: 'granted',
      fence: msg.fence,
      deadline,
      now: Date.now(),
      stale: msg.fence < this.replica.maxFence,
    });
  }

  private async sendRelease(fence: number | null, settle: boolean): Promise<void> {
    const frame = fence === null ? { type: 'release', note: this.noteId } : { type: 'release', note: this.noteId, fence };
    if (!settle) {
      await this.socket.request(frame).catch(() => undefined);
      return;
    }
    try {
      await this.socket.request(frame);
      await this.dispatch({ type: 'released' });
    } catch (err) {
      if (err instanceof ProtocolError) await this.dispatch({ type: 'released' });
    }
    this.finishClose();
  }

  /** Edits committed before our grant may still be on their way: catch up, then write. */
  private async syncAfterGrant(fence: number): Promise<void> {
    await this.sync();
    await this.dispatch({ type: 'caught-up', fence });
  }

  private async releaseWhenFlushed(): Promise<void> {
    if (this.token.role !== 'releasing' || this.outbox.busy || !this.socket.connected) return;
    await this.dispatch({ type: 'outbox-idle' });
  }

  // --- socket events --------------------------------------------------------------------

  private onNoteMessage(msg: NoteMsg): void {
    switch (msg.type) {
      case 'edited':
        this.onEdited(msg);
        break;
      case 'lock':
        this.onLock(msg.lock);
        break;
      case 'presence':
        this.patch({ viewers: msg.viewers });
        break;
      case 'snapshot':
        this.onSnapshot(msg);
        break;
      case 'granted':
        void this.granted(msg, Date.now() + msg.ttl_ms - LEASE_MARGIN_MS);
        break;
      case 'lease_lost':
        if (msg.reason === 'idle') this.idleLoss = this.describeIdleLoss(msg.fence);
        void this.dispatch({ type: 'lease-lost', fence: msg.fence, reason: msg.reason });
        break;
      case 'caret':
        this.carets.receive(msg);
        break;
      case 'idle_warning':
        void this.dispatch({
          type: 'idle-warning',
          fence: msg.fence,
          deadline: typeof msg.handoff_in_ms === 'number' ? Date.now() + msg.handoff_in_ms : null,
        });
        break;
      case 'edit_request':
        this.onEditRequest(msg);
        break;
      default:
        break;
    }
  }

  private onWelcome(welcome: WelcomeMsg): void {
    this.replica.clearBuffered();
    this.carets.forgetSent(); // a new connection: the next caret goes out even if it did not move
    this.outbox.markUnsent();
    const lease = welcome.leases.find((l) => l.note === this.noteId);
    if (holdsToken(this.token.role)) {
      void this.dispatch({
        type: 'welcome',
        leaseFence: lease?.fence ?? null,
        deadline: Date.now() + (lease?.ttl_ms ?? 0) - LEASE_MARGIN_MS,
      });
    }
    this.patch({ mySession: welcome.session });
    if (this.closing) return;
    void this.subscribeNote().then((ok) => {
      if (!ok) return;
      const inQueue = this.state.lock?.queue.some((u) => u.id === this.me.id) ?? false;
      void this.dispatch({ type: 'resubscribed', resumed: welcome.resumed, inQueue }).then(() => {
        // Still holding on the new connection: the viewers learn where the caret is again.
        this.carets.nudge();
      });
    });
  }

  private onHeartbeatAck(sentAt: number, leases: LeaseInfo[]): void {
    if (!holdsToken(this.token.role)) return;
    const lease = leases.find((l) => l.note === this.noteId);
    void this.dispatch({
      type: 'heartbeat-ack',
      leaseFence: lease?.fence ?? null,
      deadline: sentAt + (lease?.ttl_ms ?? 0),
      sentAt,
    });
  }

  // --- read side: subscribe, snapshot, edited, sync -------------------------------------

  private async subscribeNote(): Promise<boolean> {
    try {
      const snap = await this.socket.request<SnapshotMsg>({ type: 'subscribe', note: this.noteId });
      this.onSnapshot(snap);
      this.adoptHeldLease(snap);
      return true;
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.patch({ error: { code: err.code, message: err.message }, loaded: true });
      }
      return false;
    }
  }

  /**
   * After a reload that resumed the session, the token this session holds is adopted
   * (rule 9: the lease belongs to the session), instead of showing "editing in another tab".
   */
  private adoptHeldLease(snap: SnapshotMsg): void {
    const welcome = this.socket.welcome;
    const lease = welcome?.leases.find((l) => l.note === this.noteId);
    if (this.token.role !== 'none' || !snap.lock || !welcome || snap.lock.session !== welcome.session) return;
    if (!lease || lease.fence !== snap.lock.fence) return;
    void this.dispatch({
      type: 'adopt',
      fence: lease.fence,
      deadline: Date.now() + lease.ttl_ms - LEASE_MARGIN_MS,
      now: Date.now(),
      stale: lease.fence < this.replica.maxFence,
    });
  }

  private onSnapshot(snap: SnapshotMsg): void {
    const fields = { loaded: true, error: null, title: snap.title, access: snap.access, viewers: snap.viewers };
    this.onLock(snap.lock);
    if (!this.outbox.busy) {
      this.loadReplica(snap.content, snap.version);
      this.patch({ ...fields, version: snap.version, text: snap.content, remote: this.nextRemote(null) });
    } else {
      this.rebaseOnSnapshot(snap, fields);
    }
    this.drainBuffered();
    this.store.refresh();
  }

  /** A snapshot arrived while local edits exist: keep them when they still apply. */
  private rebaseOnSnapshot(snap: SnapshotMsg, fields: Partial<NoteState>): void {
    const inflight = this.outbox.inflight;
    if (snap.version === this.replica.version) {
      this.patch(fields); // the server has not moved: local edits still apply
    } else if (
      inflight &&
      snap.version === inflight.base + 1 &&
      snap.content === applyChanges(this.replica.text, inflight.changes)
    ) {
      // Our in-flight edit committed before the connection dropped; pending edits stay on top.
      this.loadReplica(snap.content, snap.version);
      this.outbox.settle(inflight);
      this.patch({ ...fields, version: snap.version });
    } else {
      this.keepDraft('diverged');
      this.loadReplica(snap.content, snap.version);
      this.patch({ ...fields, version: snap.version, text: snap.content, remote: this.nextRemote(null) });
    }
  }

  private loadReplica(content: string, version: number): void {
    this.replica.load(content, version);
    this.carets.loaded(version, content);
  }

  private onEdited(msg: EditedMsg): void {
    const own = this.outbox.inflight;
    if (own && msg.op === own.op && msg.version > this.replica.version) {
      // Our own edit came back as a push before its ack: it is the ack.
      this.onAck(own, { type: 'ack', rid: '', note: msg.note, op: msg.op, version: msg.version });
      return;
    }
    const order = this.replica.order(msg);
    if (order === 'old') return;
    if (order === 'gap') {
      void this.sync();
      return;
    }
    if (this.outbox.busy) {
      // Someone else wrote while this tab thought it held the token: it did not.
      this.keepDraft('taken');
      this.patch({ text: this.replica.text });
    }
    const before = this.replica.text;
    try {
      this.replica.apply(msg);
    } catch {
      void this.subscribeNote(); // our copy diverged: reload it
      return;
    }
    const whole = msg.content !== undefined ? diffText(before, msg.content) : null;
    this.carets.edited(msg.version, msg.content !== undefined ? (whole ? [whole] : []) : (msg.changes ?? []));
    this.patch({
      text: this.replica.text,
      version: this.replica.version,
      remote: this.nextRemote(msg.content !== undefined ? null : (msg.changes ?? [])),
    });
  }

  private drainBuffered(): void {
    for (let next = this.replica.takeNext(); next; next = this.replica.takeNext()) this.onEdited(next);
    if (this.replica.hasBuffered) void this.sync();
  }

  /**
   * Fetch the edits after our version (after a gap, and after each grant). Resolves once a
   * sync that STARTED after this call has finished, so a caller is caught up to the moment
   * it asked (a grant must not rely on a sync that was already under way).
   */
  private sync(): Promise<void> {
    if (this.syncRun) {
      this.syncAgain = true;
      return this.syncRun;
    }
    this.syncRun = (async () => {
      do {
        this.syncAgain = false;
        await this.syncOnce();
      } while (this.syncAgain && this.socket.connected);
    })().finally(() => {
      this.syncRun = null;
    });
    return this.syncRun;
  }

  private async syncOnce(): Promise<void> {
    if (!this.socket.connected) return;
    try {
      const reply = await this.socket.request<ChangesMsg | SnapshotMsg>({
        type: 'sync',
        note: this.noteId,
        since: this.replica.version,
      });
      if (reply.type === 'snapshot') {
        this.onSnapshot(reply);
        return;
      }
      for (const edit of [...reply.edits].sort((a, b) => a.version - b.version)) {
        if (edit.version > this.replica.version) this.onEdited({ ...edit, note: this.noteId });
      }
      this.drainBuffered();
    } catch {
      // Disconnected or refused: the next welcome subscribes afresh.
    }
  }

  private onLock(lock: Lock | null): void {
    if (!this.replica.acceptLock(lock)) return; // stale push: fences only grow
    this.patch({ lock });
    this.carets.lock(lock?.fence ?? null);
    void this.dispatch({
      type: 'lock',
      fence: lock?.fence ?? null,
      queueIndex: lock ? lock.queue.findIndex((u) => u.id === this.me.id) : -1,
    });
  }

  // --- edit requests, idle hand-off ----------------------------------------------------

  private onEditRequest(msg: EditRequestMsg): void {
    if (!holdsToken(this.token.role) || this.token.role === 'releasing') return;
    const others = this.state.editRequests.filter((u) => u.id !== msg.from.id);
    this.patch({ editRequests: [...others, { id: msg.from.id, name: msg.from.name }] });
  }

  /** Who got the token (the new holder if known, else the first in line) and the idle time. */
  private describeIdleLoss(fence: number): { next: string | null; seconds: number | null } {
    const lock = this.state.lock;
    const next = lock ? (lock.fence > fence ? lock.holder.name : (lock.queue[0]?.name ?? null)) : null;
    const seconds = this.lastActiveAt > 0 ? Math.round((Date.now() - this.lastActiveAt) / 1000) : null;
    return { next, seconds };
  }

  private nextRemote(changes: Change[] | null): NoteState['remote'] {
    return { seq: ++this.remoteSeq, changes };
  }

  // --- write side: batches, acks, refusals ----------------------------------------------

  /** Send the next edit if none is in flight and the token is live. */
  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const edit = this.canSend() ? this.outbox.next(this.replica.version) : null;
    if (!edit) {
      this.store.refresh();
      return;
    }
    edit.sent = true;
    this.lastActiveAt = Date.now();
    this.store.refresh();
    this.socket
      .request<AckMsg>({
        type: 'edit',
        note: this.noteId,
        fence: this.token.fence,
        base: edit.base,
        op: edit.op,
        changes: edit.changes,
      })
      .then(
        (ack) => this.onAck(edit, ack),
        (err) => this.onEditError(edit, err),
      );
  }

  private onAck(edit: InflightEdit, ack: AckMsg): void {
    if (!this.outbox.settle(edit)) return;
    if (ack.version !== this.replica.version + 1 || edit.base !== this.replica.version) {
      void this.subscribeNote(); // unexpected version: reload rather than guess
      return;
    }
    this.replica.applyOwn(edit.changes, ack.version);
    this.carets.edited(ack.version, edit.changes);
    this.carets.nudge(); // the caret is in a newer version now
    const draft = this.state.draft;
    this.patch({
      version: ack.version,
      draft: draft && draft.text === this.replica.text ? null : draft,
      text: this.token.role === 'none' ? this.replica.text : this.state.text,
    });
    this.drainBuffered();
    this.flush();
    this.afterEditSettled();
  }

  private onEditError(edit: InflightEdit, err: unknown): void {
    if (this.outbox.inflight !== edit) return;
    edit.sent = false;
    if (err instanceof DisconnectedError) {
      this.store.refresh(); // re-sent with the same op after the next welcome
      return;
    }
    const code = err instanceof ProtocolError ? err.code : 'internal';
    if (code === 'rate_limited' || code === 'unavailable' || code === 'internal') {
      setTimeout(() => this.flush(), EDIT_RETRY_MS);
      return;
    }
    // fenced, stale, too_large, bad_request, forbidden, not_found: this edit will never
    // commit as it is. Keep the text visibly and reload the server's copy.
    this.keepDraft(code === 'fenced' ? 'fenced' : 'refused');
    this.patch({ text: this.replica.text, remote: this.nextRemote(null) });
    if (code === 'fenced') {
      void this.dispatch({ type: 'fenced' });
      void this.sync();
    } else {
      this.patch({ notice: `${LOSS_REASONS.refused} (${describeError(err)})` });
      void this.subscribeNote();
    }
    this.afterEditSettled();
  }

  /** An edit got its final answer: a pending release or close may now proceed. */
  private afterEditSettled(): void {
    if (this.token.role === 'releasing') void this.releaseWhenFlushed();
    this.finishClose();
  }

  /** Drop every unsent edit, keeping the text they made as a visible draft. */
  private keepDraft(reason: string): void {
    const text = this.state.text;
    this.outbox.clear();
    if (text === this.replica.text) return; // nothing the server lacks
    this.patch({ draft: { text, reason: LOSS_REASONS[reason] ?? LOSS_REASONS.refused! } });
  }

  // --- lease deadline -------------------------------------------------------------------

  private setDeadline(deadline: number): void {
    this.patch({ leaseDeadline: deadline });
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    // Re-evaluate `writable` the moment the lease may have run out.
    this.deadlineTimer = setTimeout(() => this.store.refresh(), Math.max(0, deadline - Date.now()) + 1);
    this.store.refresh();
  }

  private canSend(): boolean {
    const role = this.token.role;
    const deadline = this.state.leaseDeadline;
    const live = deadline !== null && Date.now() < deadline;
    return (role === 'holder' || role === 'releasing') && live && this.socket.connected;
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
}
