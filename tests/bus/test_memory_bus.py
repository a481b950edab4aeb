"""What only the memory twin has: simulated loss (partition/heal), its
bounded queue, and the process-wide broker behind ``make_bus``."""

from __future__ import annotations

import asyncio

from collab.bus import make_bus
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.settings import Settings
from tests.bus.helpers import Recorder


async def test_partition_misses_events_then_heal_resyncs() -> None:
    broker = MemoryBroker()
    a, b = MemoryBus(broker), MemoryBus(broker)
    rec = Recorder()
    await a.start(Recorder().handle, Recorder().resync)
    await b.start(rec.handle, rec.resync)
    try:
        b.partition()
        assert not b.connected
        await a.publish({"i": 1})
        await asyncio.sleep(0.01)
        assert rec.events == [] and rec.resyncs == 0
        b.heal()
        await rec.wait_for(lambda: rec.resyncs == 1)
        assert b.connected
        await a.publish({"i": 2})
        await rec.wait_for(lambda: rec.seen() == [2])
        assert rec.resyncs == 1
    finally:
        await a.close()
        await b.close()


async def test_overflow_drops_events_and_resyncs() -> None:
    broker = MemoryBroker()
    slow = MemoryBus(broker, queue_max=8)
    rec = Recorder()
    release = asyncio.Event()

    async def blocked_handler(event: dict[str, object]) -> None:
        await release.wait()
        await rec.handle(event)

    await slow.start(blocked_handler, rec.resync)
    try:
        for i in range(20):
            await slow.publish({"i": i})
        await asyncio.sleep(0.01)
        release.set()
        await rec.wait_for(lambda: rec.resyncs == 1)
        # publish never yields, so exactly the first 8 fitted; the rest were
        # dropped and the subscriber resynced after delivering those.
        assert rec.seen() == list(range(8))
    finally:
        await slow.close()


async def test_make_bus_shares_one_broker_per_process() -> None:
    a, b = make_bus(Settings()), make_bus(Settings())
    rec = Recorder()
    await a.start(Recorder().handle, Recorder().resync)
    await b.start(rec.handle, rec.resync)
    try:
        await a.publish({"i": 7})
        await rec.wait_for(lambda: rec.seen() == [7])
    finally:
        await a.close()
        await b.close()
