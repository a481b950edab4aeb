"""Socket admission: Redis when ``COLLAB_REDIS_URL`` is set, else in-process."""

from __future__ import annotations

from collab.admission.address import AddressSlot, AddressSlots
from collab.admission.base import SocketAdmission
from collab.admission.keeper import UserSlots
from collab.settings import Settings

__all__ = ["AddressSlot", "AddressSlots", "SocketAdmission", "UserSlots", "make_socket_admission"]


def make_socket_admission(settings: Settings) -> SocketAdmission:
    if settings.redis_url:
        from collab.admission.redis import RedisSocketAdmission
        from collab.redis_client import RedisClientOptions

        return RedisSocketAdmission(
            settings.redis_url, settings.redis_prefix, RedisClientOptions.from_settings(settings)
        )
    from collab.admission.memory import MemorySocketAdmission

    return MemorySocketAdmission()
