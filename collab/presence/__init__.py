"""Presence: ``make_presence_store`` picks Redis when ``COLLAB_REDIS_URL`` is
set, else the in-process twin (embedded mode)."""

from __future__ import annotations

from collab.presence.base import PresenceStore
from collab.redis_client import RedisClientOptions
from collab.settings import Settings

__all__ = ["PresenceStore", "make_presence_store"]


def make_presence_store(settings: Settings) -> PresenceStore:
    if settings.redis_url:
        from collab.presence.redis import RedisPresenceStore

        return RedisPresenceStore(
            settings.redis_url,
            prefix=settings.redis_prefix,
            options=RedisClientOptions.from_settings(settings),
        )
    from collab.presence.memory import MemoryPresenceStore

    return MemoryPresenceStore()
