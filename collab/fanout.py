"""Lock and presence pushes: re-read the shared state of a note and push it
to this replica's subscribers when it changed. Refreshes are coalesced (at
most one running and one pending per note and kind), so a burst of events
costs one read; re-reading instead of trusting event payloads makes every
replica converge on the latest state even when events arrive out of order or
not at all (rule 7).

Guests get their own copy of each push, naming people by per-note aliases
and without roles (``frames.GuestView``): guest tokens are free, and a
guest has no business learning account ids or who the admins are."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from collab import frames
from collab.host import Host
from collab.peer import Peer
from collab.presence.base import PresenceStore
from collab.sockets import SocketIndex
from collab.tokens import Tokens

log = logging.getLogger("collab.fanout")


class Fanout:
    def __init__(
        self, sockets: SocketIndex, presence: PresenceStore, tokens: Tokens, host: Host,
        guest_key: bytes | None = None,
    ) -> None:  # fmt: skip
        self.sockets = sockets
        self.presence = presence
        self.tokens = tokens
        self.host = host
        # The replica's own key: aliases need no agreement between replicas,
        # since a guest's snapshot and pushes all come from its own replica.
        self.guest_view = frames.GuestView(guest_key or secrets.token_bytes(32))
        self.last_lock: dict[str, str] = {}  # note -> last lock frame pushed here
        self.last_viewers: dict[str, str] = {}
        self._pending: dict[tuple[str, str], bool] = {}

    def forget(self, note_id: str) -> None:
        self.last_lock.pop(note_id, None)
        self.last_viewers.pop(note_id, None)

    def clear(self) -> None:
        """Push everything again on the next refresh, even if unchanged."""
        self.last_lock.clear()
        self.last_viewers.clear()

    def audience(self, peer: Peer) -> frames.GuestView | None:
        """How frames naming people are built for ``peer``: ``GuestView`` for
        a guest, None (everything) for anyone signed in."""
        return self.guest_view if peer.user.role == "guest" else None

    def _push_each(self, note_id: str, full: str, for_guests: Callable[[], frames.Frame]) -> None:
        """Push ``full`` to every watcher of the note, and to guests the
        frame ``for_guests()`` builds (once, and only if a guest watches)."""
        guest_frame: str | None = None
        for peer in self.sockets.viewers(note_id):
            if peer.user.role != "guest":
                peer.push(full)
                continue
            if guest_frame is None:
                guest_frame = frames.encode(for_guests())
            peer.push(guest_frame)

    async def viewers(self, note_id: str) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for _, user in await self.presence.viewers(note_id):
            seen.setdefault(user.id, user.wire())
        return list(seen.values())

    def refresh(self, note_id: str, kind: str) -> None:
        """Coalesce refreshes: at most one running and one pending per note+kind."""
        key = (note_id, kind)
        if key in self._pending:
            self._pending[key] = True
            return
        self._pending[key] = False
        self.host.spawn(self._run_refresh(note_id, kind))

    async def _run_refresh(self, note_id: str, kind: str) -> None:
        key = (note_id, kind)
        try:
            while True:
                self._pending[key] = False
                if self.sockets.watched(note_id):
                    await (
                        self._push_lock(note_id) if kind == "lock" else self._push_viewers(note_id)
                    )
                if not self._pending.get(key):
                    break
        except Exception:
            log.warning("refresh failed", extra={"note": note_id, "kind": kind}, exc_info=True)
        finally:
            self._pending.pop(key, None)

    async def _push_lock(self, note_id: str) -> None:
        lock = await self.tokens.lock_state(note_id)
        frame = frames.encode(frames.lock(note_id, lock))
        if self.last_lock.get(note_id) != frame:
            self.last_lock[note_id] = frame
            self._push_each(note_id, frame, lambda: frames.lock(note_id, lock, self.guest_view))

    async def _push_viewers(self, note_id: str) -> None:
        viewers = await self.viewers(note_id)
        frame = frames.encode(frames.presence(note_id, viewers))
        if self.last_viewers.get(note_id) != frame:
            self.last_viewers[note_id] = frame
            self._push_each(
                note_id, frame, lambda: frames.presence(note_id, viewers, self.guest_view)
            )
