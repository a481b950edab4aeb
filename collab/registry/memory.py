"""In-process twin of the session registry (embedded mode, fast tests)."""

from __future__ import annotations

import time
from collections.abc import Callable

from collab.registry.base import SessionRecord, SessionRegistry


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class MemorySessionRegistry(SessionRegistry):
    def __init__(self, clock: Callable[[], float] = _now_ms) -> None:
        self._clock = clock
        self._records: dict[str, tuple[SessionRecord, float]] = {}
        self._notes: dict[str, set[str]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, session: str) -> SessionRecord | None:
        entry = self._records.get(session)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._records[session]
            self._notes.pop(session, None)
            return None
        return entry[0]

    async def claim(self, record: SessionRecord, ttl_ms: int) -> SessionRecord | None:
        previous = self._live(record.session)
        self._records[record.session] = (record, self._clock() + ttl_ms)
        return previous

    async def get(self, session: str) -> SessionRecord | None:
        return self._live(session)

    async def touch(self, session: str, socket: str, ttl_ms: int) -> bool:
        record = self._live(session)
        if record is None or record.socket != socket:
            return False
        self._records[session] = (record, self._clock() + ttl_ms)
        return True

    async def forget(self, session: str, socket: str) -> None:
        record = self._live(session)
        if record is not None and record.socket == socket:
            del self._records[session]
            self._notes.pop(session, None)

    async def add_note(self, session: str, note_id: str) -> None:
        self._notes.setdefault(session, set()).add(note_id)

    async def remove_note(self, session: str, note_id: str) -> None:
        self._notes.get(session, set()).discard(note_id)

    async def notes(self, session: str) -> set[str]:
        return set(self._notes.get(session, set()))

    async def sessions(self) -> list[SessionRecord]:
        return [r for s in list(self._records) if (r := self._live(s)) is not None]

    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        return [r for r in await self.sessions() if r.user.id == user_id]
