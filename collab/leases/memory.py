"""The in-process twin of ``RedisLeaseStore`` for the embedded mode and fast
tests: the same decisions in plain Python, with time from an injectable clock
(milliseconds). Every method runs without awaiting, so each is atomic on the
event loop just as a Lua script is atomic in Redis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from collab.clock import Clock, iso_from_epoch_ms, steady_wall_clock_ms
from collab.leases.base import RESET_SESSION, AcquireResult, LeaseStore, LeaseView, QueueView
from collab.types import User


@dataclass
class _Lease:
    session: str
    user: User
    fence: int
    since_ms: float
    expires_ms: float


@dataclass
class _Waiter:
    user: User
    expires_ms: float


@dataclass
class _Note:
    fence: int = 0
    lease: _Lease | None = None
    # (session, deadline) of the latest owner; its lock-delay lasts until
    # deadline + lock_delay (rule 4). None after a clean release.
    last: tuple[str, float] | None = None
    # Insertion order is arrival order (rule 6).
    queue: dict[str, _Waiter] = field(default_factory=dict)


class MemoryLeaseStore(LeaseStore):
    def __init__(
        self,
        *,
        ttl_ms: int,
        lock_delay_ms: int,
        clock: Clock = steady_wall_clock_ms,
        shared: bool = False,
    ) -> None:
        """``shared``: several hubs use this one instance as they would use
        one Redis (tests and the simulation), so a lost lease may belong to a
        holder that is still running."""
        if ttl_ms <= 0 or lock_delay_ms < 0:
            raise ValueError("ttl_ms must be positive and lock_delay_ms not negative")
        self.ttl_ms = ttl_ms
        self.lock_delay_ms = lock_delay_ms
        self._clock = clock
        self._notes: dict[str, _Note] = {}
        self._timeline = 0
        self.lost_holders_may_live = shared

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- helpers -------------------------------------------------------------
    def _note(self, note_id: str, now: float) -> _Note:
        """The note's state with an expired lease cleared and dead waiters
        pruned -- what Redis key expiry does on its own."""
        note = self._notes.setdefault(note_id, _Note())
        if note.lease is not None and note.lease.expires_ms <= now:
            note.lease = None
        for session in [s for s, w in note.queue.items() if w.expires_ms <= now]:
            del note.queue[session]
        return note

    def _lock_delay_left(self, note: _Note, session: str, now: float) -> float:
        if note.last is None or note.last[0] == session:
            return 0.0
        return max(0.0, note.last[1] + self.lock_delay_ms - now)

    @staticmethod
    def _position(note: _Note, session: str) -> int:
        for index, queued in enumerate(note.queue, start=1):
            if queued == session:
                return index
        return 0

    @staticmethod
    def _owns(note: _Note, session: str, fence: int) -> bool:
        return note.lease is not None and (note.lease.session, note.lease.fence) == (session, fence)

    # -- the token ---------------------------------------------------------
    async def try_acquire(
        self, note_id: str, session: str, user: User, wait: bool
    ) -> AcquireResult:
        now = self._clock()
        note = self._note(note_id, now)
        if note.lease is not None and note.lease.session == session:
            return AcquireResult("granted", fence=note.lease.fence, already=True)
        head_ok = not note.queue or next(iter(note.queue)) == session
        if note.lease is None and head_ok and self._lock_delay_left(note, session, now) == 0:
            note.fence += 1
            deadline = now + self.ttl_ms
            note.lease = _Lease(session, user, note.fence, now, deadline)
            note.last = (session, deadline)
            note.queue.pop(session, None)
            return AcquireResult("granted", fence=note.fence)
        if wait:
            waiter = note.queue.get(session)
            if waiter is None:
                note.queue[session] = _Waiter(user, now + self.ttl_ms)
            else:
                waiter.expires_ms = now + self.ttl_ms
            return AcquireResult("queued", position=self._position(note, session))
        return AcquireResult("locked")

    async def raise_fence(self, note_id: str, at_least: int) -> int:
        note = self._notes.setdefault(note_id, _Note())
        note.fence = max(note.fence, at_least)
        return note.fence

    async def fence_counter(self, note_id: str) -> int:
        note = self._notes.get(note_id)
        return note.fence if note else 0

    async def renew(self, note_id: str, session: str, fence: int) -> bool:
        now = self._clock()
        note = self._note(note_id, now)
        if not self._owns(note, session, fence):
            return False
        assert note.lease is not None
        note.lease.expires_ms = now + self.ttl_ms
        note.last = (session, note.lease.expires_ms)
        return True

    async def renew_waiter(self, note_id: str, session: str) -> int:
        now = self._clock()
        note = self._note(note_id, now)
        waiter = note.queue.get(session)
        if waiter is None:
            return 0
        waiter.expires_ms = now + self.ttl_ms
        return self._position(note, session)

    async def release(self, note_id: str, session: str, fence: int) -> bool:
        return self._clean_end(note_id, session, fence)

    async def drop(self, note_id: str, session: str, fence: int) -> bool:
        return self._clean_end(note_id, session, fence)

    def _clean_end(self, note_id: str, session: str, fence: int) -> bool:
        note = self._note(note_id, self._clock())
        note.queue.pop(session, None)
        if not self._owns(note, session, fence):
            return False
        # A clean end: no lock-delay follows (rule 4).
        note.lease = None
        note.last = None
        return True

    async def give_back(self, note_id: str, session: str, fence: int, user: User) -> None:
        now = self._clock()
        note = self._note(note_id, now)
        if self._owns(note, session, fence):
            note.lease = None
            note.last = None
        note.queue.pop(session, None)
        note.queue = {session: _Waiter(user, now + self.ttl_ms), **note.queue}

    async def hold_back(self, note_id: str, pause_ms: int) -> None:
        note = self._note(note_id, self._clock())
        note.last = (RESET_SESSION, self._clock() + pause_ms - self.lock_delay_ms)

    async def forget_note(self, note_id: str) -> None:
        self._notes.pop(note_id, None)

    async def record_timeline(self, seen: int) -> int:
        self._timeline = max(self._timeline, seen)
        return self._timeline

    async def leave_queue(self, note_id: str, session: str) -> bool:
        note = self._note(note_id, self._clock())
        return note.queue.pop(session, None) is not None

    async def revoke(self, note_id: str) -> int:
        now = self._clock()
        note = self._note(note_id, now)
        note.fence += 1
        if note.lease is not None:
            # As in Redis: the lock-delay of a revoke starts now (rule 5 makes
            # the new fence, not the old deadline, shut the holder out).
            note.last = (note.lease.session, now) if self.lock_delay_ms > 0 else None
            note.lease = None
        return note.fence

    async def view(self, note_id: str) -> LeaseView | QueueView:
        now = self._clock()
        note = self._note(note_id, now)
        queue = tuple((s, w.user) for s, w in note.queue.items())
        lease = note.lease
        if lease is None:
            return QueueView(queue=queue)
        return LeaseView(
            holder=lease.user,
            session=lease.session,
            fence=lease.fence,
            since=iso_from_epoch_ms(lease.since_ms),
            ttl_ms=int(lease.expires_ms - now),
            queue=queue,
        )

    async def grantable_in_ms(self, note_id: str, session: str) -> int:
        now = self._clock()
        note = self._note(note_id, now)
        if note.lease is not None and note.lease.session == session:
            return 0
        wait = self._lock_delay_left(note, session, now)
        if note.lease is not None:
            wait = max(wait, note.lease.expires_ms - now)
        # Round up: a poll timer that fires early would only be told to wait again.
        return math.ceil(wait)

    async def check_epoch(self) -> bool:
        """One process owns this memory: it cannot lose it behind our back."""
        return False
