"""Write-token leases: ``make_lease_store`` picks Redis when
``COLLAB_REDIS_URL`` is set, else the in-process twin (embedded mode)."""

from __future__ import annotations

from collab.leases.base import AcquireResult, LeaseStore, LeaseView, QueueView
from collab.redis_client import RedisClientOptions
from collab.settings import Settings

__all__ = ["AcquireResult", "LeaseStore", "LeaseView", "QueueView", "make_lease_store"]


def make_lease_store(settings: Settings) -> LeaseStore:
    if settings.redis_url:
        from collab.leases.redis import RedisLeaseStore

        return RedisLeaseStore(
            settings.redis_url,
            prefix=settings.redis_prefix,
            ttl_ms=settings.lease_ttl_ms,
            lock_delay_ms=settings.lock_delay_ms,
            options=RedisClientOptions.from_settings(settings),
        )
    from collab.leases.memory import MemoryLeaseStore

    return MemoryLeaseStore(ttl_ms=settings.lease_ttl_ms, lock_delay_ms=settings.lock_delay_ms)
