/**
 * The write side of one open note: the holder's keystrokes become small `changes` batches
 * (every BATCH_MS, or right after the previous `ack`), ONE edit in flight at a time, each
 * acknowledged before it counts as saved. Text the server did not accept is never dropped
 * silently: on `fenced`, a refused edit or divergence it is kept as a visible `draft`.
 * Whether writing is allowed at all (the token) is the subclass's business.
 */
import type { AckMsg, EditedMsg, SnapshotMsg } from '../api/types';
import { applyChanges, diffText } from '../lib/text';
import { NoteReplica, type SnapshotFields } from './noteReplica';
import { LOSS_REASONS, describeError } from './noteState';
import { Outbox, type InflightEdit } from './outbox';
import { DisconnectedError, ProtocolError } from './socket';

/** Keystrokes are collected this long before they go out as one `edit`. */
export const BATCH_MS = 50;
/** Wait before re-sending an edit refused with `rate_limited`/`unavailable`/`internal`. */
export const EDIT_RETRY_MS = 1000;

export abstract class NoteWriter extends NoteReplica {
  protected outbox = new Outbox();
  protected flushTimer: ReturnType<typeof setTimeout> | null = null;

  /** The user may type now (a live token). */
  protected abstract canWrite(): boolean;
  /** Edits may go out now (a live token, also while releasing). */
  protected abstract canSend(): boolean;
  /** The server said our fence is not current. */
  protected abstract onFenced(): void;
  /** An edit got its final answer (a pending release or close may now proceed). */
  protected abstract afterEditSettled(): void;

  /** True when text typed here is not yet acknowledged by the server (or kept as a draft). */
  get hasUnsavedText(): boolean {
    return this.outbox.busy || this.state.draft !== null;
  }

  /** The editor's new value. Ignored (returns false) unless the token is live. */
  setText(next: string): boolean {
    if (!this.canWrite()) return false;
    const change = diffText(this.state.text, next);
    if (!change) return true;
    this.outbox.add(change);
    this.patch({ text: next });
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
    if (!draft || !this.canWrite()) return false;
    this.patch({ draft: null });
    return this.setText(draft.text);
  }

  dismissDraft(): void {
    this.patch({ draft: null });
  }

  protected hasLocalEdits(): boolean {
    return this.outbox.busy;
  }

  protected rebaseOnSnapshot(snap: SnapshotMsg, fields: SnapshotFields): void {
    const inflight = this.outbox.inflight;
    if (snap.version === this.state.version) {
      this.patch({ ...fields }); // the server has not moved: local edits still apply
    } else if (
      inflight &&
      snap.version === inflight.base + 1 &&
      snap.content === applyChanges(this.serverText, inflight.changes)
    ) {
      // Our in-flight edit committed before the connection dropped; pending edits stay on top.
      this.serverText = snap.content;
      this.outbox.settle(inflight);
      this.patch({ ...fields, version: snap.version });
    } else {
      this.keepDraft('diverged');
      this.serverText = snap.content;
      this.patch({ ...fields, version: snap.version, text: snap.content, remote: this.nextRemote(null) });
    }
  }

  protected isOwnEdit(msg: EditedMsg): boolean {
    const own = this.outbox.inflight;
    if (!own || msg.op !== own.op) return false;
    this.onAck(own, { type: 'ack', rid: '', note: msg.note, op: msg.op, version: msg.version });
    return true;
  }

  protected onForeignEdit(): void {
    // Someone else wrote while this tab thought it held the token: it did not.
    this.keepDraft('taken');
    this.patch({ text: this.serverText });
  }

  /** Send the next edit if none is in flight and the token is live. */
  protected flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (!this.canSend()) {
      this.refresh();
      return;
    }
    const edit = this.outbox.next(this.state.version);
    if (!edit) {
      this.refresh();
      return;
    }
    edit.sent = true;
    this.refresh();
    this.socket
      .request<AckMsg>({
        type: 'edit',
        note: this.noteId,
        fence: this.state.fence,
        base: edit.base,
        op: edit.op,
        changes: edit.changes,
      })
      .then(
        (ack) => this.onAck(edit, ack),
        (err) => this.onEditError(edit, err),
      );
  }

  protected onAck(edit: InflightEdit, ack: AckMsg): void {
    if (!this.outbox.settle(edit)) return;
    if (ack.version !== this.state.version + 1 || edit.base !== this.state.version) {
      void this.subscribeNote(); // unexpected version: reload rather than guess
      return;
    }
    this.serverText = applyChanges(this.serverText, edit.changes);
    const draft = this.state.draft;
    this.patch({
      version: ack.version,
      draft: draft && draft.text === this.serverText ? null : draft,
      text: this.state.role === 'none' ? this.serverText : this.state.text,
    });
    this.drainBuffered();
    this.flush();
    this.afterEditSettled();
  }

  protected onEditError(edit: InflightEdit, err: unknown): void {
    if (this.outbox.inflight !== edit) return;
    edit.sent = false;
    if (err instanceof DisconnectedError) {
      this.refresh(); // re-sent with the same op after the next welcome
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
    this.patch({ text: this.serverText, remote: this.nextRemote(null) });
    if (code === 'fenced') {
      this.onFenced();
      void this.sync();
    } else {
      this.patch({ notice: `${LOSS_REASONS.refused} (${describeError(err)})` });
      void this.subscribeNote();
    }
    this.afterEditSettled();
  }

  /** Drop every unsent edit, keeping the text they made as a visible draft. */
  protected keepDraft(reason: string): void {
    const text = this.state.text;
    this.outbox.clear();
    if (text === this.serverText) return; // nothing the server lacks
    this.patch({ draft: { text, reason: LOSS_REASONS[reason] ?? LOSS_REASONS.refused! } });
  }
}
