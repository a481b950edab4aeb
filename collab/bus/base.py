"""Cross-replica events, routed by topic (``events.topic``: a note, a
session or a user): each replica follows only the topics it serves.
``redis.py`` uses a Redis pub/sub channel per topic; ``memory.py`` is the
in-process twin. Delivery is at-most-once (rule 7): every
event carries the note's version or fence so receivers detect gaps, and the
``on_resync`` callback fires when a lost subscription is re-established, so the
hub can resync every note it serves."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from collab.events import Event
from collab.metrics import Metrics

Handler = Callable[[Event], Awaitable[None]]
ResyncHandler = Callable[[], Awaitable[None]]


# Kinds become metric labels: anything that does not look like one of ours
# (anyone who can publish to the channel can send it) is counted as "other",
# and so is every kind past the first ``MAX_KINDS``.
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_KINDS = 64
OTHER_KIND = "other"


class Bus(ABC):
    _metrics: Metrics | None = None
    _kinds: set[str]

    def count_with(self, metrics: Metrics) -> None:
        """Count events published and received, by kind, in ``metrics``."""
        self._metrics = metrics
        self._kinds = set()

    def _kind(self, event: Any) -> str:
        kind = event.get("t") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            return OTHER_KIND
        if kind not in self._kinds:
            if len(self._kinds) >= MAX_KINDS:
                return OTHER_KIND
            self._kinds.add(kind)
        return kind

    def _count_published(self, event: Event) -> None:
        if self._metrics is not None:
            self._metrics.bus_published.labels(self._kind(event)).inc()

    def _count_received(self, event: Any) -> None:
        """Called for each event handed to the handler (this replica's own
        included, as every replica receives them)."""
        if self._metrics is not None:
            self._metrics.bus_received.labels(self._kind(event)).inc()

    @abstractmethod
    async def start(self, handler: Handler, on_resync: ResyncHandler) -> None:
        """Subscribe and deliver every event (including this replica's own) to
        ``handler`` in publish order per publisher. Reconnects by itself with
        backoff after a lost connection, then awaits ``on_resync``."""

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Send to every replica that follows the event's topic
        (``events.topic``). Raises ``Unavailable`` if it cannot."""

    @abstractmethod
    async def follow(self, topics: Collection[str]) -> None:
        """Hear ``topics`` from now on: when this returns, every event
        published on them afterwards is delivered (a note's snapshot is read
        after it, rule 7). Idempotent. Raises ``Unavailable`` if the bus is
        down; a reconnect follows every topic again before ``on_resync``."""

    @abstractmethod
    async def unfollow(self, topics: Collection[str]) -> None:
        """Stop hearing ``topics`` (best effort: a few more may arrive)."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the subscription is currently live."""
