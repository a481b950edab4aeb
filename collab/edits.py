"""Edits: commit under the fence, acknowledge, and deliver to every local
subscriber in version order without gaps (rule 7).

Delivery is decided per viewer: each socket's ``subs[note]`` is the highest
version it has (from its snapshot, a ``changes`` reply or a push), and an
edit frame goes only to the sockets exactly one version behind it. A socket
further behind (a lost bus event, a snapshot older than what others have, a
new subscriber whose snapshot was newer than the replica had seen) is caught
up from the store's edit log before anything newer reaches it. Every push,
snapshot and ``sync`` reply of a note is serialised by the note's delivery
lock, so nothing reaches a client twice or out of order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from collab import events, frames
from collab.access import can_read
from collab.clock import utc_now
from collab.errors import Forbidden, NotFound
from collab.fanout import Fanout
from collab.host import Host
from collab.messages import Edit, Rid
from collab.metrics import Metrics
from collab.settings import Settings
from collab.sockets import SocketIndex
from collab.store.base import Store
from collab.tokens import Tokens
from collab.types import EditRecord

if TYPE_CHECKING:
    from collab.peer import Peer


class EditFeed:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        sockets: SocketIndex,
        metrics: Metrics,
        tokens: Tokens,
        fanout: Fanout,
        host: Host,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sockets = sockets
        self.metrics = metrics
        self.tokens = tokens
        self.fanout = fanout
        self.host = host
        # One lock per note with a subscriber here or a delivery under way;
        # dropped when neither is left, so the map is bounded by live notes.
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def serialised(self, note_id: str) -> AsyncIterator[None]:
        """Hold the note's delivery lock (rule 7: one order per note)."""
        lock = self._locks.get(note_id)
        if lock is None:
            lock = self._locks[note_id] = asyncio.Lock()
        try:
            async with lock:
                yield
        finally:
            idle = not lock.locked() and not self.sockets.watched(note_id)
            if idle and self._locks.get(note_id) is lock:
                del self._locks[note_id]

    def forget(self, note_id: str) -> None:
        lock = self._locks.get(note_id)
        if lock is not None and not lock.locked():
            del self._locks[note_id]

    @property
    def lock_count(self) -> int:
        return len(self._locks)

    # -- client requests ------------------------------------------------------
    async def sync(self, peer: Peer, note_id: str, since: int, rid: Rid) -> None:
        access = await self.host.current_access(peer.user, note_id)
        if not can_read(access):
            raise Forbidden("you cannot read this note")
        async with self.serialised(note_id):
            await self._sync_locked(peer, note_id, since, rid)

    async def _sync_locked(self, peer: Peer, note_id: str, since: int, rid: Rid) -> None:
        # A subscribed socket already got every version up to ``subs`` on this
        # same stream, in order, so the reply starts there: nothing twice.
        since = max(since, self.sockets.delivered(peer, note_id) or since)
        edits = await self.store.edits_since(note_id, since, self.settings.sync_max_edits)
        if edits is None:
            await self._snapshot_locked(peer, note_id, rid)
            return
        to = edits[-1].version if edits else since
        guest = self.fanout.audience(peer)
        wires = [e.wire() if guest is None else guest.edited(e.wire()) for e in edits]
        peer.push(frames.encode(frames.changes(rid, note_id, since, to, wires)))
        if self.sockets.delivered(peer, note_id) is not None:
            self.sockets.deliver(peer, note_id, to)
            self.sockets.raise_known(note_id, to)

    async def _snapshot_locked(self, peer: Peer, note_id: str, rid: Rid) -> None:
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFound("no such note")
        access = await self.host.current_access(peer.user, note_id)
        if access is None:
            raise Forbidden("you cannot read this note")
        lock = await self.tokens.lock_state(note_id)
        viewers = await self.fanout.viewers(note_id)
        guest = self.fanout.audience(peer)
        peer.push(frames.encode(frames.snapshot(note, access, lock, viewers, rid, guest)))
        if self.sockets.delivered(peer, note_id) is not None:
            self.sockets.deliver(peer, note_id, note.version, at_least=False)
            self.sockets.raise_known(note_id, note.version)

    async def edit(self, peer: Peer, msg: Edit) -> dict[str, Any] | None:
        """Commit the edit; the ack is the reply for a retried op, and is
        pushed by ``deliver`` (None returned) for a new one."""
        # Write access is decided by the store inside the commit (rule 2).
        started = time.perf_counter()
        self.tokens.typed(peer.session, msg.note)
        try:
            result = await self.store.commit_edit(
                msg.note, msg.fence, msg.base, msg.op, msg.payload, peer.user,
                self.settings.max_note_chars, holder=peer.session,
            )  # fmt: skip
        except Exception as exc:
            if getattr(exc, "code", "") == "forbidden":
                # A holder that may no longer write gives the token up now.
                self.host.spawn(self.tokens.fence_if_unauthorised(peer, msg.note))
            if getattr(exc, "code", "") == "fenced":
                self.metrics.fenced_writes.inc()
                audit = self.host.audit(
                    msg.note, "fenced_write", peer.session, peer.user.id, msg.fence
                )
                self.host.spawn(audit)
            raise
        timeline = result.timeline
        self.metrics.edit_commit.observe(time.perf_counter() - started)
        ack = frames.ack(msg.rid, msg.note, msg.op, result.version)
        if result.duplicate:
            if result.version == msg.base + 1:
                # A retry after a lost answer: the writer had ``base`` and now
                # knows its own edit, so that version is delivered to it.
                await self.mark_delivered(peer, msg.note, result.version)
            return ack
        self.metrics.edits.inc()
        record = EditRecord(msg.note, result.version, msg.op, msg.payload, peer.user, utc_now())
        frame = record.wire()
        await self.deliver(msg.note, result.version, frames.encode(frame), time.time(), "local",
                           writer=(peer, frames.encode(ack)))  # fmt: skip
        await self.host.publish(
            events.edited(msg.note, result.version, frame, time.time(), timeline)
        )
        if result.version % self.settings.revision_every_versions == 0:
            self.host.spawn(self.save_revision(msg.note, peer.user.id))
        return None

    async def mark_delivered(self, peer: Peer, note_id: str, version: int) -> None:
        async with self.serialised(note_id):
            self.sockets.deliver(peer, note_id, version)

    async def resnapshot(self, note_id: str) -> None:
        """Send every local subscriber of the note a fresh snapshot: after a
        failover that may have lost the newest writes, the versions they hold
        may not exist any more, so their positions in the log mean nothing."""
        async with self.serialised(note_id):
            self.sockets.forget_known(note_id)
            for peer in self.sockets.viewers(note_id):
                with contextlib.suppress(NotFound, Forbidden):
                    await self._snapshot_locked(peer, note_id, None)

    async def save_revision(self, note_id: str, by_id: str | None) -> None:
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to keep
            await self.store.save_revision(note_id, by_id)

    # -- delivery -------------------------------------------------------------
    async def deliver(
        self,
        note_id: str,
        version: int,
        frame: str,
        ts: float,
        origin: str,
        writer: tuple[Peer, str] | None = None,
    ) -> None:
        """Push edit ``version`` to the local subscribers one version behind
        it; catch up from the store any that are further behind.

        ``writer`` is the socket that wrote it here, with its ack: the ack
        goes out first, so the writer does not wait for a thousand viewers'
        pushes, but under the delivery lock, with the version marked as the
        writer's (it had ``base``, so it has everything up to this one), so no
        catch-up running meanwhile can send the writer its own edit."""
        if writer is None and not self.sockets.watched(note_id):
            return
        async with self.serialised(note_id):
            if writer is not None:
                self.sockets.deliver(writer[0], note_id, version)
                writer[0].push(writer[1])
            self.sockets.raise_known(note_id, version)
            if self._push(note_id, version, frame):
                await self.catch_up_locked(note_id)
            self.metrics.fanout.labels(origin).observe(max(0.0, time.time() - ts))

    def _push(self, note_id: str, version: int, frame: str) -> bool:
        """Send to sockets exactly one behind; True if some are further behind.
        Guests get the frame with its author as ``GuestView`` shows people,
        built once, and only if a guest is due one."""
        lagging = False
        for_guests = ""
        for peer in self.sockets.viewers(note_id):
            have = self.sockets.delivered(peer, note_id)
            if have is None:
                continue
            if have == version - 1:
                if peer.user.role == "guest":
                    if not for_guests:
                        shown = self.fanout.guest_view.edited(orjson.loads(frame))
                        for_guests = frames.encode(shown)
                    peer.push(for_guests)
                else:
                    peer.push(frame)
                self.sockets.deliver(peer, note_id, version)
            elif have < version - 1:
                lagging = True
        return lagging

    async def catch_up_locked(self, note_id: str) -> None:
        """Bring every local subscriber up to the highest version known here,
        from the edit log (or a snapshot when the log cannot cover the gap).
        The caller holds the note's delivery lock."""
        target = self.sockets.known(note_id)
        behind = [
            p
            for p in self.sockets.viewers(note_id)
            if _behind(self.sockets.delivered(p, note_id), target)
        ]
        if not behind:
            return
        since = min(self.sockets.delivered(p, note_id) or 0 for p in behind)
        edits = await self.store.edits_since(note_id, since, self.settings.sync_max_edits)
        if edits is None:
            for peer in behind:
                with contextlib.suppress(NotFound, Forbidden):
                    await self._snapshot_locked(peer, note_id, None)
            return
        for record in edits:
            self.sockets.raise_known(note_id, record.version)
            self._push(note_id, record.version, frames.encode(record.wire()))

    async def catch_up(self, note_id: str) -> None:
        async with self.serialised(note_id):
            await self.catch_up_locked(note_id)


def _behind(delivered: int | None, target: int) -> bool:
    return delivered is not None and delivered < target
