"""The in-process twin of ``RedisPresenceStore``: viewers per note with
expiry times from an injectable clock (milliseconds)."""

from __future__ import annotations

from collab.clock import Clock, steady_wall_clock_ms
from collab.presence.base import PresenceStore
from collab.types import User


class MemoryPresenceStore(PresenceStore):
    def __init__(self, *, clock: Clock = steady_wall_clock_ms) -> None:
        self._clock = clock
        # note -> session -> (user, expires_ms)
        self._notes: dict[str, dict[str, tuple[User, float]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, note_id: str) -> dict[str, tuple[User, float]]:
        now = self._clock()
        viewers = self._notes.get(note_id, {})
        live = {s: entry for s, entry in viewers.items() if entry[1] > now}
        if live:
            self._notes[note_id] = live
        else:
            self._notes.pop(note_id, None)
        return live

    async def touch(self, note_id: str, session: str, user: User, ttl_ms: int) -> bool:
        live = self._live(note_id)
        added = session not in live
        live[session] = (user, self._clock() + ttl_ms)
        self._notes[note_id] = live
        return added

    async def remove(self, note_id: str, session: str) -> bool:
        live = self._live(note_id)
        removed = live.pop(session, None) is not None
        if not live:
            self._notes.pop(note_id, None)
        return removed

    async def viewers(self, note_id: str) -> list[tuple[str, User]]:
        return [(s, entry[0]) for s, entry in sorted(self._live(note_id).items())]
