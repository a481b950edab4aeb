"""``collab_bus_events_published_total`` and ``collab_bus_events_received_total``
by event kind, on every backend: what a replica sends and what it has to
decode (its own events included). Kinds that are not ours, from anyone who can
publish on the channel, are counted as ``other``, so they cannot grow the
label set."""

from __future__ import annotations

from collab.bus import make_bus
from collab.bus.base import MAX_KINDS
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.events import note_topic
from collab.metrics import Metrics
from collab.settings import Settings
from tests.bus.conftest import BusPair
from tests.bus.helpers import Recorder


def count(metrics: Metrics, which: str, kind: str) -> float:
    value = metrics.registry.get_sample_value(f"collab_bus_events_{which}_total", {"kind": kind})
    return value or 0.0


async def test_published_and_received_are_counted_by_kind(bus_pair: BusPair) -> None:
    ma, mb = Metrics(), Metrics()
    bus_pair.a.count_with(ma)
    bus_pair.b.count_with(mb)
    for i in range(3):
        await bus_pair.a.publish({"t": "edited", "note": "n", "i": i})
    for i in range(2):
        await bus_pair.b.publish({"t": "lock", "note": "n", "i": 10 + i})
    await bus_pair.a.publish({"t": "Not A Kind!", "i": 20})
    await bus_pair.a.publish({"i": 21})  # no kind at all
    for rec in (bus_pair.rec_a, bus_pair.rec_b):
        await rec.wait_for(lambda rec=rec: len(rec.events) == 7)

    assert count(ma, "published", "edited") == 3
    assert count(ma, "published", "lock") == 0
    assert count(mb, "published", "lock") == 2
    assert count(ma, "published", "other") == 2
    for metrics in (ma, mb):
        assert count(metrics, "received", "edited") == 3
        assert count(metrics, "received", "lock") == 2
        assert count(metrics, "received", "other") == 2
    text = ma.render().decode()
    assert 'collab_bus_events_received_total{kind="edited"} 3.0' in text


async def test_make_bus_counts_into_the_apps_metrics() -> None:
    metrics = Metrics()
    bus = make_bus(Settings(), metrics)
    rec = Recorder()
    await bus.start(rec.handle, rec.resync)
    await bus.follow([note_topic("n")])
    try:
        await bus.publish({"t": "presence", "note": "n"})
        await rec.wait_for(lambda: len(rec.events) == 1)
    finally:
        await bus.close()
    assert count(metrics, "published", "presence") == 1
    assert count(metrics, "received", "presence") == 1


async def test_the_label_set_is_bounded() -> None:
    metrics = Metrics()
    bus = MemoryBus(MemoryBroker())
    bus.count_with(metrics)
    rec = Recorder()
    await bus.start(rec.handle, rec.resync)
    try:
        for i in range(MAX_KINDS + 10):
            await bus.publish({"t": f"kind_{i:03d}"})
        await rec.wait_for(lambda: len(rec.events) == MAX_KINDS + 10)
    finally:
        await bus.close()
    assert count(metrics, "received", "other") == 10
    assert count(metrics, "published", "other") == 10
