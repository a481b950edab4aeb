"""Live sessions across replicas: who owns a session id, on which replica and
socket, and which notes it holds tokens for. A session outlives its socket for
one lease TTL so a client can ``resume`` it on any replica (rule 9)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from collab.types import User


@dataclass(frozen=True)
class SessionRecord:
    session: str
    user: User
    replica: str
    socket: str  # id of the socket currently serving the session
    connected_at: str


class SessionRegistry(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def claim(self, record: SessionRecord, ttl_ms: int) -> SessionRecord | None:
        """Make ``record`` the owner of its session id for ``ttl_ms``; return
        the record it replaced (None if the session was unknown or expired)."""

    @abstractmethod
    async def get(self, session: str) -> SessionRecord | None: ...

    @abstractmethod
    async def touch(self, session: str, socket: str, ttl_ms: int) -> bool:
        """Extend the session if ``socket`` still serves it; False otherwise."""

    async def touch_many(self, touches: Sequence[tuple[str, str, int]]) -> list[bool | Exception]:
        """``touch`` for each (session, socket, ttl_ms), in as few round trips
        as the backend allows; each result is that touch's answer or the
        error it met."""
        answers: list[bool | Exception] = []
        for session, socket, ttl_ms in touches:
            try:
                answers.append(await self.touch(session, socket, ttl_ms))
            except Exception as exc:
                answers.append(exc)
        return answers

    @abstractmethod
    async def forget(self, session: str, socket: str) -> None:
        """Remove the session if ``socket`` still serves it."""

    @abstractmethod
    async def add_note(self, session: str, note_id: str) -> None:
        """Record that ``session`` holds the token of ``note_id``."""

    @abstractmethod
    async def remove_note(self, session: str, note_id: str) -> None: ...

    @abstractmethod
    async def notes(self, session: str) -> set[str]: ...

    @abstractmethod
    async def sessions(self) -> list[SessionRecord]:
        """Every live session (expired ones pruned)."""

    @abstractmethod
    async def sessions_of(self, user_id: str) -> list[SessionRecord]: ...
