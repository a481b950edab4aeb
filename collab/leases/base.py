"""The write-token lease interface. ``redis.py`` keeps leases in Redis with Lua
scripts; ``memory.py`` is the in-process twin for the embedded mode and fast
tests. ``tests/leases`` runs one contract suite against both.

A lease here only says who *should* be writing. Whose writes count is decided by
PostgreSQL's ``notes.fence`` (docs/design.md, rules 1-2): a grant returned by
``try_acquire`` is not valid until the caller has advanced the PostgreSQL fence
to it; if PostgreSQL holds a higher fence the caller calls ``raise_fence`` and
``drop`` and tries again.

Keys of one note (Redis): every key carries the hash tag ``{note-id}`` so each
script touches one Redis Cluster slot (rule 11):
  ``<prefix>:{n}:lease``   value ``user:session:fence``, PX ttl (rule 1)
  ``<prefix>:{n}:fence``   the fencing counter (INCR only)
  ``<prefix>:{n}:holder``  hash: session, user json, fence, since, expires_ms
  ``<prefix>:{n}:last``    previous owner session + lease deadline, for lock-delay
  ``<prefix>:{n}:queue``   ZSET of waiting sessions scored by arrival sequence
  ``<prefix>:{n}:qseq``    the arrival sequence counter
  ``<prefix>:{n}:waiter:<session>``  a waiter's liveness key (PX ttl) holding its user json
Global: ``<prefix>:epoch`` (rule 8).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from collab.types import LockState, User

# The lock-delay owner recorded by ``hold_back``: no session id looks like it,
# so the pause applies to everyone.
RESET_SESSION = "~reset"


@dataclass(frozen=True)
class AcquireResult:
    """``granted``: the caller now holds ``fence`` (``already`` if it held it
    before this call); ``queued``: it waits at ``position`` (1 = next);
    ``locked``: held by another and the caller did not want to wait."""

    kind: Literal["granted", "queued", "locked"]
    fence: int = 0
    position: int = 0
    already: bool = False


@dataclass(frozen=True)
class LeaseView:
    """Current lease of a note with its live waiters, FIFO."""

    holder: User
    session: str
    fence: int
    since: str  # ISO 8601 UTC of the grant
    ttl_ms: int  # remaining lease time
    queue: tuple[tuple[str, User], ...] = field(default_factory=tuple)  # (session, user)

    def lock_state(self) -> LockState:
        return LockState(
            holder=self.holder,
            session=self.session,
            fence=self.fence,
            since=self.since,
            queue=tuple(u for _, u in self.queue),
        )


@dataclass(frozen=True)
class QueueView:
    """Waiters of a note with no live lease (free, or in lock-delay)."""

    queue: tuple[tuple[str, User], ...]


class LeaseStore(ABC):
    """Errors: Redis unreachable -> ``collab.errors.Unavailable``."""

    ttl_ms: int
    lock_delay_ms: int
    # True when leases this store lost may belong to holders that are still
    # running (other processes share it): a counter found behind the database
    # then pauses the note (rule 8). An in-process store loses its leases only
    # with its process, and every holder's socket with them.
    lost_holders_may_live: bool = True

    @abstractmethod
    async def start(self) -> None:
        """Connect, load scripts, record the epoch (rule 8)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``Unavailable`` if the backend cannot be reached."""

    @abstractmethod
    async def try_acquire(
        self, note_id: str, session: str, user: User, wait: bool
    ) -> AcquireResult:
        """One atomic step (one Lua script in Redis):

        * the caller's session holds the lease -> ``granted`` with the current
          fence, ``already=True`` (idempotent acquire);
        * else the note is grantable when there is no live lease, no lock-delay
          applies to the caller (rule 4: after an unclean loss -- expiry or
          revoke -- only the previous owner may take it before
          ``last deadline + lock_delay_ms``), and the caller is the first *live*
          waiter or the queue is empty (dead waiters, whose liveness key has
          gone, are removed first). Then: INCR the fence, SET the lease NX PX
          ttl, drop the caller from the queue -> ``granted``;
        * else with ``wait``: join the queue once (FIFO by arrival; a session
          already queued keeps its place), refresh its liveness key ->
          ``queued`` with its 1-based position among live waiters;
        * else -> ``locked``.
        """

    @abstractmethod
    async def raise_fence(self, note_id: str, at_least: int) -> int:
        """Set the fence counter to ``max(counter, at_least)``; return it. Used
        when PostgreSQL holds a higher fence than Redis (Redis lost its data)."""

    @abstractmethod
    async def fence_counter(self, note_id: str) -> int: ...

    @abstractmethod
    async def renew(self, note_id: str, session: str, fence: int) -> bool:
        """Compare-owner PEXPIRE to ttl (rule 3). False if the lease is not
        ``session``'s with ``fence`` any more."""

    @abstractmethod
    async def renew_waiter(self, note_id: str, session: str) -> int:
        """Refresh a waiter's liveness; return its position, 0 if not queued."""

    @abstractmethod
    async def release(self, note_id: str, session: str, fence: int) -> bool:
        """Compare-owner delete of the lease; a clean release, so no lock-delay
        follows (rule 4). Also leaves the queue. True if the lease was ours."""

    @abstractmethod
    async def drop(self, note_id: str, session: str, fence: int) -> bool:
        """Like ``release`` but for a grant PostgreSQL refused: no lock-delay."""

    @abstractmethod
    async def give_back(self, note_id: str, session: str, fence: int, user: User) -> None:
        """A grant the database refused or failed: delete the lease if it is
        still ``session``'s with ``fence`` (no lock-delay follows) and put the
        session back at the head of the queue, alive for one TTL, so a failed
        grant never costs a waiter its place (rule 6)."""

    @abstractmethod
    async def hold_back(self, note_id: str, pause_ms: int) -> None:
        """No grant of the note for anyone during ``pause_ms``, on every
        replica (the pause after a lost counter, rule 8). Waiters keep their
        places; ``grantable_in_ms`` reports the pause."""

    @abstractmethod
    async def forget_note(self, note_id: str) -> None:
        """The note was deleted: remove every key of it (counter, queue, ...)."""

    @abstractmethod
    async def record_timeline(self, seen: int) -> int:
        """Share the highest database timeline seen: store ``max(shared, seen)``
        and return it (rule 10). A replica reads it before its first write."""

    @abstractmethod
    async def leave_queue(self, note_id: str, session: str) -> bool:
        """Remove a waiter; True if it was queued."""

    @abstractmethod
    async def revoke(self, note_id: str) -> int:
        """INCR the fence, delete any lease, start the lock-delay for everyone
        but the revoked owner; return the new fence (the caller then advances
        PostgreSQL to it, which is what actually shuts the old holder out:
        rule 5)."""

    @abstractmethod
    async def view(self, note_id: str) -> LeaseView | QueueView:
        """The live lease with its live waiters, or the waiters alone."""

    @abstractmethod
    async def grantable_in_ms(self, note_id: str, session: str) -> int:
        """0 if nothing but queue order stops ``session`` from being granted;
        else the milliseconds until the lease or the lock-delay ends (for the
        waiters' poll timer)."""

    @abstractmethod
    async def check_epoch(self) -> bool:
        """True when the backend lost its data since ``start`` or the previous
        call (epoch key missing or changed, Redis ``run_id`` changed); the new
        epoch is recorded so each loss is reported once (rule 8)."""
