"""In-process twin of socket admission (embedded mode, fast tests): the same
contract as the Redis backend, on one process's clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from collab.admission.base import SocketAdmission


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class MemorySocketAdmission(SocketAdmission):
    def __init__(self, clock: Callable[[], float] = _now_ms) -> None:
        self._clock = clock
        self._users: dict[str, dict[str, float]] = {}  # user -> socket -> expiry (ms)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, user_id: str) -> dict[str, float]:
        now = self._clock()
        held = {s: t for s, t in self._users.get(user_id, {}).items() if t > now}
        if held:
            self._users[user_id] = held
        else:
            self._users.pop(user_id, None)
        return held

    async def admit(
        self, user_id: str, sockets: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        # No await in here: one step, like the Redis script.
        held = self._live(user_id)
        expiry = self._clock() + ttl_ms
        refused: list[str] = []
        for socket in sockets:
            if socket in held or len(held) < limit:
                held[socket] = expiry
            else:
                refused.append(socket)
        if held:
            self._users[user_id] = held
        return refused

    async def release(self, user_id: str, socket: str) -> None:
        held = self._users.get(user_id)
        if held is not None:
            held.pop(socket, None)
            if not held:
                del self._users[user_id]

    async def count(self, user_id: str) -> int:
        return len(self._live(user_id))
