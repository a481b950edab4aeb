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

# Users renewed per round trip during a pass.
_RENEW_BATCH = 500


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

    async def evict(self, user_id: str, socket: str) -> None:
        """Remove the slot of a socket that is being replaced, wherever it is
        held. Its replica's next renewal may take it back only if there is
        room, and otherwise closes that socket (``on_lost``)."""
        await self.store.release(user_id, socket)

    async def renew_all(self) -> None:
        """One renewal pass over every slot held here, in batches of users
        (one round trip each)."""
        batch = [
            (user, mine)
            for user, sockets in self._held.items()
            if (mine := [s for s in sockets if s not in self._pending])
        ]
        failed = 0
        for start in range(0, len(batch), _RENEW_BATCH):
            chunk = batch[start : start + _RENEW_BATCH]
            try:
                replies = await self.store.admit_many(chunk, self.limit, self.ttl_ms)
            except Exception:
                log.warning("socket slot renewal failed", exc_info=True)
                failed += len(chunk)
                continue
            for (user, sockets), refused in zip(chunk, replies, strict=True):
                if isinstance(refused, Exception):
                    failed += 1
                    continue
                await self._settle(user, sockets, refused)
        if failed:
            log.warning("socket slots of %d users not renewed; they lapse after their TTL", failed)

    async def _settle(self, user: str, sockets: list[str], refused: list[str]) -> None:
        """Act on one user's renewal: close what was refused, and remove
        again what was released while the renewal ran (it may have written
        the slot back after the release removed it)."""
        for socket in refused:
            on_lost = self._forget(user, socket)
            if on_lost is not None:
                on_lost()
        mine = self._held.get(user, {})
        for socket in sockets:
            if socket not in mine and socket not in refused:
                try:
                    await self.store.release(user, socket)
                except Exception:
                    log.warning("socket slot release failed; it expires with its TTL")

    async def _renew_loop(self) -> None:
        """A pass every ``renew_every_s`` from start to start, so a long pass
        (many users) does not stretch the time between two renewals."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.renew_every_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            started = loop.time()
            due = started + self.renew_every_s
            try:
                await self.renew_all()
            except Exception:  # never let one bad pass end the renewals
                log.warning("socket slot renewal pass failed", exc_info=True)
            took = loop.time() - started
            if took > self.renew_every_s:
                log.warning("socket slot renewal pass took %.1f s", took)
