"""A recording subscriber for the bus suites."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from collab.bus.base import Event
from collab.bus.timing import BusTiming

# Fast enough that loss detection and reconnects take a fraction of a second.
FAST = BusTiming(ping_interval_s=0.2, ping_timeout_s=0.3, reconnect_min_s=0.02, reconnect_max_s=0.2)


class Recorder:
    """Collects delivered events and counts resyncs. A handler failure can be
    injected for events carrying ``"boom": True``."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.resyncs = 0
        self._changed = asyncio.Condition()

    async def handle(self, event: Event) -> None:
        if event.get("boom"):
            raise RuntimeError("handler failure injected by the test")
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()

    async def resync(self) -> None:
        self.resyncs += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, check: Callable[[], bool], within_s: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(check), within_s)

    def seen(self, key: str = "i") -> list[object]:
        return [e.get(key) for e in self.events]


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll a condition that no callback announces (e.g. ``connected``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
