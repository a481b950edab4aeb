"""Cross-replica events: ``make_bus`` picks Redis pub/sub when
``COLLAB_REDIS_URL`` is set, else an in-process bus on the process-wide
broker (embedded mode)."""

from __future__ import annotations

from collab.bus.base import Bus, Handler, ResyncHandler
from collab.bus.timing import BusTiming
from collab.events import Event
from collab.metrics import Metrics
from collab.redis_client import RedisClientOptions
from collab.settings import Settings

__all__ = ["Bus", "Event", "Handler", "ResyncHandler", "make_bus"]


def make_bus(settings: Settings, metrics: Metrics | None = None) -> Bus:
    """``metrics``: where to count the events published and received."""
    bus = _make_bus(settings)
    if metrics is not None:
        bus.count_with(metrics)
    return bus


def _make_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        from collab.bus.redis import RedisBus

        return RedisBus(
            settings.redis_url,
            prefix=settings.redis_prefix,
            replica_id=settings.replica_id,
            options=RedisClientOptions.from_settings(settings),
            timing=BusTiming.from_settings(settings),
        )
    from collab.bus.memory import MemoryBus, process_broker

    return MemoryBus(process_broker())
