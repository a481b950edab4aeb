"""The in-process twin of ``RedisBus``. A ``MemoryBroker`` stands in for the
Redis server: several ``MemoryBus`` instances attached to one broker behave
like replicas following topics, so tests can run two "replicas" in one
process; a bus hears the topics it follows, as over Redis.

Events are serialised with orjson on publish and decoded per subscriber, as
over Redis, so each receiver gets its own copy and a non-JSON event fails at
``publish`` in both backends. ``partition``/``heal`` simulate a lost and
re-established subscription: events published meanwhile are missed and
``on_resync`` fires after healing, as after a Redis reconnect (rule 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

import orjson

from collab.bus.base import Bus, Handler, ResyncHandler
from collab.bus.timing import DEFAULT_MEMORY_QUEUE_MAX
from collab.events import EVERYONE, Event, topic

log = logging.getLogger("collab.bus")


class MemoryBroker:
    """Fans each published payload out to every attached bus."""

    def __init__(self) -> None:
        self._buses: list[MemoryBus] = []

    def attach(self, bus: MemoryBus) -> None:
        if bus not in self._buses:
            self._buses.append(bus)

    def detach(self, bus: MemoryBus) -> None:
        if bus in self._buses:
            self._buses.remove(bus)

    def publish(self, topic: str, payload: bytes) -> None:
        for bus in self.followers(topic):
            bus.offer(payload)

    def followers(self, topic: str) -> list[MemoryBus]:
        return [bus for bus in self._buses if topic in bus.topics]


_process_broker = MemoryBroker()


def process_broker() -> MemoryBroker:
    """The broker shared by every ``MemoryBus`` that ``make_bus`` creates."""
    return _process_broker


class MemoryBus(Bus):
    def __init__(self, broker: MemoryBroker, *, queue_max: int = DEFAULT_MEMORY_QUEUE_MAX) -> None:
        self._broker = broker
        # ``None`` in the queue wakes the consumer to run a pending resync.
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_max)
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_resync: ResyncHandler | None = None
        self._connected = False
        self._lost = False  # events were missed since the last resync
        self.topics: set[str] = {EVERYONE}

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self, handler: Handler, on_resync: ResyncHandler) -> None:
        self._handler, self._on_resync = handler, on_resync
        self._broker.attach(self)
        self._connected = True
        self._task = asyncio.create_task(self._consume(), name="collab-memory-bus")

    async def publish(self, event: Event) -> None:
        self._broker.publish(topic(event), orjson.dumps(event))
        self._count_published(event)

    async def follow(self, topics: Collection[str]) -> None:
        self.topics.update(topics)

    async def unfollow(self, topics: Collection[str]) -> None:
        self.topics.difference_update(topics)

    async def close(self) -> None:
        self._broker.detach(self)
        self._connected = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def partition(self) -> None:
        """Simulate a lost subscription: events are missed until ``heal``."""
        self._connected = False
        self._lost = True

    def heal(self) -> None:
        """Re-establish the subscription; ``on_resync`` runs next."""
        self._connected = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def offer(self, payload: bytes) -> None:
        """Called by the broker for each published payload."""
        if not self._connected:
            return
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            # Bounded like a Redis subscriber's output buffer: drop, and make
            # the receiver resync once it has caught up.
            self._lost = True

    async def _consume(self) -> None:
        assert self._handler is not None and self._on_resync is not None
        while True:
            payload = await self._queue.get()
            if payload is not None:
                event = orjson.loads(payload)
                self._count_received(event)
                try:
                    await self._handler(event)
                except Exception:
                    log.exception("event bus handler failed")
            if self._lost and self._connected and self._queue.empty():
                self._lost = False
                try:
                    await self._on_resync()
                except Exception:
                    log.exception("event bus resync handler failed")
