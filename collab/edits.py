"""Edits: commit under the fence, acknowledge, and deliver to every local
subscriber in version order without gaps (rule 7: pub/sub may lose events, so
a replica that sees a version jump replays the missing edits from the store
before pushing)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from collab.access import can_write
from collab.clock import utc_now
from collab.errors import Forbidden, NotFound
from collab.messages import Edit, Rid, encode, snapshot_frame
from collab.types import EditRecord

if TYPE_CHECKING:
    from collab.hub import Hub
    from collab.peer import Peer


class EditFeed:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._locks: dict[str, asyncio.Lock] = {}

    async def sync(self, peer: Peer, note_id: str, since: int, rid: Rid) -> None:
        access = await self.hub.access_for(peer, note_id)
        if access is None:
            raise Forbidden("you cannot read this note")
        edits = await self.hub.store.edits_since(note_id, since, self.hub.settings.sync_max_edits)
        if edits is None:
            note = await self.hub.store.get_note(note_id)
            if note is None:
                raise NotFound("no such note")
            lock = await self.hub.tokens.lock_state(note_id)
            viewers = await self.hub.fanout.viewers(note_id)
            peer.push(encode(snapshot_frame(note, access, lock, viewers, rid)))
            if note_id in peer.subs:
                peer.subs[note_id] = note.version
            return
        to = edits[-1].version if edits else since
        peer.push(encode({
            "type": "changes", "rid": rid, "note": note_id, "from": since, "to": to,
            "edits": [e.wire() for e in edits],
        }))  # fmt: skip
        if note_id in peer.subs:
            peer.subs[note_id] = max(peer.subs[note_id], to)

    async def edit(self, peer: Peer, msg: Edit) -> dict[str, Any]:
        access = await self.hub.access_for(peer, msg.note)
        if not can_write(access) or peer.user.role == "guest":
            raise Forbidden("you cannot write to this note")
        started = time.perf_counter()
        try:
            result = await self.hub.store.commit_edit(
                msg.note, msg.fence, msg.base, msg.op, msg.payload, peer.user,
                self.hub.settings.max_note_chars,
            )  # fmt: skip
        except Exception as exc:
            if getattr(exc, "code", "") == "fenced":
                self.hub.metrics.fenced_writes.inc()
                self.hub.spawn(self.hub.audit(msg.note, "fenced_write", peer.session, peer.user.id,
                                      msg.fence))  # fmt: skip
            raise
        self.hub.metrics.edit_commit.observe(time.perf_counter() - started)
        ack = {"type": "ack", "rid": msg.rid, "note": msg.note, "op": msg.op,
               "version": result.version}  # fmt: skip
        if result.duplicate:
            return ack
        self.hub.metrics.edits.inc()
        if msg.note in peer.subs:
            peer.subs[msg.note] = max(peer.subs[msg.note], result.version)
        record = EditRecord(msg.note, result.version, msg.op, msg.payload, peer.user, utc_now())
        frame = record.wire()
        await self.deliver(msg.note, result.version, encode(frame), time.time(), "local")
        await self.hub.publish({"t": "edited", "note": msg.note, "version": result.version,
                             "frame": frame, "ts": time.time()})  # fmt: skip
        if result.version % self.hub.settings.revision_every_versions == 0:
            self.hub.spawn(self.save_revision(msg.note, peer.user.id))
        return ack

    async def save_revision(self, note_id: str, by_id: str | None) -> None:
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to keep
            await self.hub.store.save_revision(note_id, by_id)

    def note_lock(self, note_id: str) -> asyncio.Lock:
        lock = self._locks.get(note_id)
        if lock is None:
            lock = self._locks[note_id] = asyncio.Lock()
        return lock

    async def deliver(self, note_id: str, version: int, frame: str, ts: float, origin: str) -> None:
        """Push edit ``version`` to local subscribers in order, replaying any
        versions this replica missed from the store first."""
        if note_id not in self.hub.note_peers:
            return
        async with self.note_lock(note_id):
            known = self.hub.note_version.get(note_id)
            if known is None or version <= known:
                return
            if version > known + 1:
                await self.fill_gap(note_id, known)
                if self.hub.note_version.get(note_id, -1) >= version:
                    return
            self._push_edit(note_id, version, frame)
            self.hub.metrics.fanout.labels(origin).observe(max(0.0, time.time() - ts))

    def _push_edit(self, note_id: str, version: int, frame: str) -> None:
        for peer in self.hub.note_peers.get(note_id, ()):
            if peer.subs.get(note_id, 0) < version:
                peer.push(frame)
                peer.subs[note_id] = version
        self.hub.note_version[note_id] = max(self.hub.note_version.get(note_id, -1), version)

    async def fill_gap(self, note_id: str, known: int) -> None:
        edits = await self.hub.store.edits_since(note_id, known, self.hub.settings.sync_max_edits)
        if edits is None:
            note = await self.hub.store.get_note(note_id)
            if note is None:
                return
            for peer in self.hub.note_peers.get(note_id, ()):
                if peer.subs.get(note_id, 0) < note.version:
                    await self.sync(peer, note_id, peer.subs.get(note_id, 0), None)
            self.hub.note_version[note_id] = note.version
            return
        for record in edits:
            self._push_edit(note_id, record.version, encode(record.wire()))
