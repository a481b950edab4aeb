"""What the services (tokens, edits, fanout, revocation) need of the replica
that wires them, and nothing more: the hub implements it. The services get
their stores and each other passed in explicitly, and this for the rest, so
none of them imports the hub."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from collab.events import Event
from collab.types import Access, Note, User


class Host(Protocol):
    replica_id: str

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, owned (and awaited on close) by the replica."""

    async def publish(self, event: Event) -> None:
        """Tell every replica (at most once; rule 7)."""

    async def follow(self, *topics: str) -> None:
        """Hear these bus topics from now on (``events.topic``)."""

    async def lock_changed(self, note_id: str, reason: str, fence: int = 0) -> None: ...

    async def audit(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None:
        """Best-effort lock audit row."""

    async def current_access(self, user: User, note_id: str) -> Access | None:
        """From the store, with the stored role (rule 2)."""

    async def access_of(self, user: User, note: Note) -> Access | None: ...

    async def save_revision(self, note_id: str, by_id: str | None) -> None: ...
