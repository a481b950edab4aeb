/**
 * The read side of one open note: the server's text and version, the lock and presence, kept
 * current from `snapshot`, `edited`, `changes`, `lock` and `presence` (protocol.md, "Notes").
 *
 * Invariants kept here:
 * - `serverText`/`version` only move by `snapshot`, in-order `edited`, `changes` (sync) or
 *   (in the subclass) the `ack` of our own edit. `edited` pushes apply in version order; a
 *   gap buffers them and triggers `sync`.
 * - Lock fences are monotone: a `lock` push with a lower fence than seen is ignored.
 */
import type { ChangesMsg, EditedMsg, Lock, NoteMsg, SnapshotMsg, User } from '../api/types';
import { applyChanges, type Change } from '../lib/text';
import { NoteStore, type NoteState } from './noteState';
import { CollabSocket, ProtocolError } from './socket';

export type SnapshotFields = Pick<NoteState, 'loaded' | 'error' | 'title' | 'access' | 'viewers'>;

export abstract class NoteReplica extends NoteStore {
  /** The text at `state.version`, as the server has it (without local edits). */
  protected serverText = '';
  protected buffered = new Map<number, EditedMsg>();
  protected maxFence = 0;
  private syncRun: Promise<void> | null = null;
  private syncAgain = false;
  private remoteSeq = 0;

  constructor(
    protected readonly socket: CollabSocket,
    readonly noteId: string,
    protected readonly me: User,
  ) {
    super(noteId);
  }

  /** True while this tab has edits the server has not acknowledged. */
  protected abstract hasLocalEdits(): boolean;
  /** A snapshot arrived while local edits exist: reconcile them with it. */
  protected abstract rebaseOnSnapshot(snap: SnapshotMsg, fields: SnapshotFields): void;
  /** True when `msg` is our own in-flight edit (then handled as its ack). */
  protected abstract isOwnEdit(msg: EditedMsg): boolean;
  /** Someone else's edit arrived while local edits exist. */
  protected abstract onForeignEdit(): void;
  protected abstract afterSubscribe(snap: SnapshotMsg): void;
  protected abstract afterLock(lock: Lock | null): void;
  /** Token pushes: `granted`, `lease_lost`. */
  protected abstract onTokenMessage(msg: NoteMsg): void;

  protected onNoteMessage(msg: NoteMsg): void {
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
      default:
        this.onTokenMessage(msg);
        break;
    }
  }

  // --- subscribe / snapshot / sync ----------------------------------------------------

  protected async subscribeNote(): Promise<boolean> {
    try {
      const snap = await this.socket.request<SnapshotMsg>({ type: 'subscribe', note: this.noteId });
      this.onSnapshot(snap);
      this.afterSubscribe(snap);
      return true;
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.patch({ error: { code: err.code, message: err.message }, loaded: true });
      }
      return false;
    }
  }

  protected onSnapshot(snap: SnapshotMsg): void {
    const base = {
      loaded: true,
      error: null,
      title: snap.title,
      access: snap.access,
      viewers: snap.viewers,
    };
    this.onLock(snap.lock);
    if (!this.hasLocalEdits()) {
      this.serverText = snap.content;
      this.patch({ ...base, version: snap.version, text: snap.content });
    } else {
      this.rebaseOnSnapshot(snap, base);
    }
    for (const v of [...this.buffered.keys()]) if (v <= this.state.version) this.buffered.delete(v);
    this.drainBuffered();
    this.refresh();
  }

  protected onEdited(msg: EditedMsg): void {
    const version = this.state.version;
    if (msg.version <= version) return; // already applied
    if (this.isOwnEdit(msg)) return;
    if (msg.base !== version || msg.version !== version + 1) {
      this.buffered.set(msg.version, msg);
      void this.sync();
      return;
    }
    if (this.hasLocalEdits()) this.onForeignEdit();
    let next: string;
    try {
      next = msg.content !== undefined ? msg.content : applyChanges(this.serverText, msg.changes ?? []);
    } catch {
      void this.subscribeNote(); // our copy diverged: reload it
      return;
    }
    this.serverText = next;
    this.patch({
      text: next,
      version: msg.version,
      remote: this.nextRemote(msg.content !== undefined ? null : (msg.changes ?? [])),
    });
  }

  protected drainBuffered(): void {
    for (;;) {
      const next = this.buffered.get(this.state.version + 1);
      if (!next) break;
      this.buffered.delete(next.version);
      this.onEdited(next);
    }
    if (this.buffered.size > 0) void this.sync();
  }

  /**
   * Fetch the edits after our version (after a gap, and after each grant). Resolves once a
   * sync that STARTED after this call has finished, so a caller is caught up to the moment
   * it asked (a grant must not rely on a sync that was already under way).
   */
  protected sync(): Promise<void> {
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
        since: this.state.version,
      });
      if (reply.type === 'snapshot') {
        this.onSnapshot(reply);
        return;
      }
      for (const edit of [...reply.edits].sort((a, b) => a.version - b.version)) {
        if (edit.version > this.state.version) this.onEdited({ ...edit, note: this.noteId });
      }
      this.drainBuffered();
    } catch {
      // Disconnected or refused: the next welcome subscribes afresh.
    }
  }

  protected onLock(lock: Lock | null): void {
    if (lock && lock.fence < this.maxFence) return; // stale push: fences only grow
    if (lock) this.maxFence = lock.fence;
    this.patch({ lock });
    this.afterLock(lock);
  }

  protected nextRemote(changes: Change[] | null): NoteState['remote'] {
    return { seq: ++this.remoteSeq, changes };
  }
}
