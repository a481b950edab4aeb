"""Bus contract on Redis pub/sub and the memory twin."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from collab.bus import make_bus
from collab.bus.memory import MemoryBus
from collab.bus.redis import RedisBus
from collab.events import note_topic, session_topic, user_topic
from collab.settings import Settings
from tests.bus.conftest import BusPair
from tests.bus.helpers import Recorder
from tests.support.services import redis_url


def has_events(rec: Recorder, count: int) -> Callable[[], bool]:
    return lambda: len(rec.events) == count


async def test_delivers_in_publish_order_to_every_subscriber(bus_pair: BusPair) -> None:
    for i in range(100):
        await bus_pair.a.publish({"t": "edited", "note": "n", "i": i, "from": "a"})
    for rec in (bus_pair.rec_a, bus_pair.rec_b):  # the publisher hears itself too
        await rec.wait_for(has_events(rec, 100))
        assert rec.seen() == list(range(100))
        assert rec.events[0] == {"t": "edited", "note": "n", "i": 0, "from": "a"}
    assert bus_pair.rec_a.resyncs == bus_pair.rec_b.resyncs == 0


async def test_order_is_kept_per_publisher(bus_pair: BusPair) -> None:
    for i in range(30):
        await bus_pair.a.publish({"i": i, "from": "a"})
        await bus_pair.b.publish({"i": i, "from": "b"})
    rec = bus_pair.rec_b
    await rec.wait_for(lambda: len(rec.events) == 60)
    for origin in ("a", "b"):
        assert [e["i"] for e in rec.events if e["from"] == origin] == list(range(30))


async def test_a_failing_handler_does_not_stop_delivery(bus_pair: BusPair) -> None:
    await bus_pair.a.publish({"i": 1})
    await bus_pair.a.publish({"i": 2, "boom": True})
    await bus_pair.a.publish({"i": 3})
    rec = bus_pair.rec_b
    await rec.wait_for(lambda: len(rec.events) == 2)
    assert rec.seen() == [1, 3]
    assert bus_pair.b.connected


async def test_connected_until_closed(bus_pair: BusPair) -> None:
    assert bus_pair.a.connected and bus_pair.b.connected
    await bus_pair.a.close()
    assert not bus_pair.a.connected


async def test_events_must_be_json(bus_pair: BusPair) -> None:
    with pytest.raises(TypeError):
        await bus_pair.a.publish({"bad": object()})


async def test_make_bus_picks_the_backend() -> None:
    assert isinstance(make_bus(Settings()), MemoryBus)
    remote = make_bus(Settings(redis_url=redis_url(), redis_prefix="bx", replica_id="r1"))
    assert isinstance(remote, RedisBus) and remote.channel == "bx:ev:{all}"
    await remote.close()


async def test_a_bus_hears_only_the_topics_it_follows(bus_pair: BusPair) -> None:
    a, b, rec = bus_pair.a, bus_pair.b, bus_pair.rec_b
    await a.publish({"t": "edited", "note": "other", "i": 1})
    await a.publish({"t": "kick", "session": "s1", "i": 2})
    await a.publish({"t": "access", "user": "u1", "note": None, "i": 3})
    await a.publish({"t": "edited", "note": "n", "i": 4})  # followed: a marker
    await rec.wait_for(has_events(rec, 1))
    assert rec.seen() == [4]
    # Followed from the moment follow returns: an event published right after arrives.
    await b.follow([note_topic("other"), session_topic("s1"), user_topic("u1")])
    await a.publish({"t": "edited", "note": "other", "i": 5})
    await a.publish({"t": "kick", "session": "s1", "i": 6})
    await a.publish({"t": "access", "user": "u1", "note": None, "i": 7})
    await rec.wait_for(has_events(rec, 4))
    await b.unfollow([note_topic("other")])
    await a.publish({"t": "edited", "note": "other", "i": 8})
    await a.publish({"t": "edited", "note": "n", "i": 9})
    await rec.wait_for(has_events(rec, 5))
    assert rec.seen() == [4, 5, 6, 7, 9]
    assert bus_pair.rec_a.resyncs == rec.resyncs == 0
