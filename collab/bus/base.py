"""Cross-replica events. ``redis.py`` uses Redis pub/sub on one channel;
``memory.py`` is the in-process twin. Delivery is at-most-once (rule 7): every
event carries the note's version or fence so receivers detect gaps, and the
``on_resync`` callback fires when a lost subscription is re-established, so the
hub can resync every note it serves."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from collab.events import Event

Handler = Callable[[Event], Awaitable[None]]
ResyncHandler = Callable[[], Awaitable[None]]


class Bus(ABC):
    @abstractmethod
    async def start(self, handler: Handler, on_resync: ResyncHandler) -> None:
        """Subscribe and deliver every event (including this replica's own) to
        ``handler`` in publish order per publisher. Reconnects by itself with
        backoff after a lost connection, then awaits ``on_resync``."""

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Send to every replica. Raises ``Unavailable`` if it cannot."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the subscription is currently live."""
