"""Socket admission: how many sockets one user has open across the whole
deployment, as one atomic reservation per socket.

A reservation is a socket id in the user's set, with an expiry. ``admit``
drops the expired ones, counts what is left and adds the socket only if the
count is under the limit, in one step, so concurrent hellos on several
replicas cannot all pass a count made before any of them was added. A
replica renews its sockets' reservations every heartbeat interval and
removes each when its socket ends; the reservations of a replica that
crashed expire after their TTL, so nobody is locked out for good."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class SocketAdmission(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def admit(
        self, user_id: str, sockets: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        """Reserve (or renew) each of ``sockets`` for ``ttl_ms``, in order: a
        socket already reserved is renewed; another one is added only while
        the user's live reservations number fewer than ``limit``. Returns the
        sockets refused, in order (empty when every one is held)."""

    async def admit_many(
        self, batch: Sequence[tuple[str, Sequence[str]]], limit: int, ttl_ms: int
    ) -> list[list[str] | Exception]:
        """``admit`` for each (user, sockets) of ``batch``, in one round trip
        where the backend can (the Redis one pipelines; here: one by one);
        each result is the refused sockets, or the error that user's call met."""
        answers: list[list[str] | Exception] = []
        for user_id, sockets in batch:
            try:
                answers.append(await self.admit(user_id, sockets, limit, ttl_ms))
            except Exception as exc:
                answers.append(exc)
        return answers

    @abstractmethod
    async def release(self, user_id: str, socket: str) -> None:
        """Remove the socket's reservation (nothing when there is none)."""

    @abstractmethod
    async def count(self, user_id: str) -> int:
        """The user's live (unexpired) reservations."""
