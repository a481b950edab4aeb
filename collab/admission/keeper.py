"""This replica's side of socket admission: reserves a slot for each socket at
its hello, renews every slot it holds every interval (one script per user,
so a client that never sends a heartbeat cannot let its slot lapse while its
socket stays open), and removes each exactly once when its socket ends.

A slot that could not be renewed in time and was taken by another socket
meanwhile (the replica stalled for a whole TTL, or Redis lost its data and
the user's other sockets re-filled the set first) is not kept over the
limit: its socket is told through ``on_lost`` and closed by the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from collab.admission.base import SocketAdmission

log = logging.getLogger("collab.admission")

# Renewals in flight at once during a pass (one per user): well under the
# Redis pool's bound, so hellos still find connections during a pass.
_RENEW_CONCURRENCY = 8


class UserSlots:
    def __init__(
        self, store: SocketAdmission, limit: int, ttl_ms: int, renew_every_s: float
    ) -> None:
        self.store = store
        self.limit = limit
        self.ttl_ms = ttl_ms
        self.renew_every_s = renew_every_s
        # user -> socket -> what to call if the slot is lost
        self._held: dict[str, dict[str, Callable[[], None]]] = {}
        self._pending: set[str] = set()  # sockets whose reservation is being asked
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.start()
        self._task = asyncio.create_task(self._renew_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.store.close()

    def held(self, user_id: str) -> int:
        """Slots this replica holds for the user."""
        return len(self._held.get(user_id, ()))

    async def reserve(self, user_id: str, socket: str, on_lost: Callable[[], None]) -> bool:
        """One slot for ``socket``; False when the user is at the limit.
        Raises ``Unavailable`` when the store cannot be reached. The slot is
        recorded before the store is asked, so a caller cancelled meanwhile
        still removes it with ``release``; renewals leave it alone until the
        answer is in."""
        self._held.setdefault(user_id, {})[socket] = on_lost
        self._pending.add(socket)
        try:
            refused = await self.store.admit(user_id, [socket], self.limit, self.ttl_ms)
        except Exception:
            self._forget(user_id, socket)
            raise
        finally:
            self._pending.discard(socket)
        if refused:
            self._forget(user_id, socket)
            return False
        return True

    def _forget(self, user_id: str, socket: str) -> Callable[[], None] | None:
        mine = self._held.get(user_id)
        if mine is None:
            return None
        on_lost = mine.pop(socket, None)
        if not mine:
            del self._held[user_id]
        return on_lost

    async def release(self, user_id: str, socket: str) -> None:
        """Give the slot back (once: only a held slot is removed). A store that
        cannot be reached leaves it to expire with its TTL."""
        if self._forget(user_id, socket) is None:
            return
        try:
            await self.store.release(user_id, socket)
        except Exception:
            log.warning("socket slot release failed; it expires with its TTL", exc_info=True)

    async def renew_all(self) -> None:
        """One renewal pass over every slot held here."""
        batch = [
            (user, mine)
            for user, sockets in self._held.items()
            if (mine := [s for s in sockets if s not in self._pending])
        ]
        gate = asyncio.Semaphore(_RENEW_CONCURRENCY)

        async def renew(user: str, sockets: list[str]) -> None:
            async with gate:
                refused = await self.store.admit(user, sockets, self.limit, self.ttl_ms)
            for socket in refused:
                on_lost = self._forget(user, socket)
                if on_lost is not None:
                    on_lost()
            mine = self._held.get(user, {})
            for socket in sockets:
                if socket not in mine and socket not in refused:
                    # Released while the renewal ran: the renewal may have
                    # written it back after the release removed it.
                    await self.store.release(user, socket)

        results = await asyncio.gather(*(renew(u, s) for u, s in batch), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("socket slot renewal failed for %d users", len(failed), exc_info=failed[0])

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.renew_all()
            except Exception:  # never let one bad pass end the renewals
                log.warning("socket slot renewal pass failed", exc_info=True)
