"""Session registry: Redis when ``COLLAB_REDIS_URL`` is set, else in-process."""

from __future__ import annotations

from collab.registry.base import SessionRecord, SessionRegistry
from collab.settings import Settings

__all__ = ["SessionRecord", "SessionRegistry", "make_session_registry"]


def make_session_registry(settings: Settings) -> SessionRegistry:
    if settings.redis_url:
        from collab.redis_client import RedisClientOptions
        from collab.registry.redis import RedisSessionRegistry

        return RedisSessionRegistry(
            settings.redis_url, settings.redis_prefix, RedisClientOptions.from_settings(settings)
        )
    from collab.registry.memory import MemorySessionRegistry

    return MemorySessionRegistry()
