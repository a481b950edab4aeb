"""Who is viewing which note, shared by all replicas. ``redis.py`` keeps a
ZSET of sessions scored by expiry plus a hash of their users per note (keys
under the note's hash tag); ``memory.py`` is the in-process twin."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from collab.types import User


class PresenceStore(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def touch(self, note_id: str, session: str, user: User, ttl_ms: int) -> bool:
        """Add or refresh ``session`` as a viewer until now + ttl. True if it
        was not a live viewer before (the viewer set changed)."""

    async def touch_many(
        self, touches: Sequence[tuple[str, str, User, int]]
    ) -> list[bool | Exception]:
        """``touch`` for each (note, session, user, ttl_ms), in as few round
        trips as the backend allows; each result is that touch's answer or
        the error it met."""
        answers: list[bool | Exception] = []
        for note_id, session, user, ttl_ms in touches:
            try:
                answers.append(await self.touch(note_id, session, user, ttl_ms))
            except Exception as exc:
                answers.append(exc)
        return answers

    @abstractmethod
    async def remove(self, note_id: str, session: str) -> bool:
        """True if it was present."""

    @abstractmethod
    async def viewers(self, note_id: str) -> list[tuple[str, User]]:
        """Live viewers (session, user), expired ones pruned, ordered by session."""
