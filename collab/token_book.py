"""The token book: what this replica knows and decides about the write tokens
of the sessions it serves, with no I/O and no event loop (the clock is passed
in as ``now``, in seconds). ``tokens.py`` is the driver: it asks the book what
to do, does it against the leases, the store, the registry and the bus, and
tells the book what came back.

Kept here: the tokens held (fence and local deadline), the queue places
waited on (with the rid owed a ``granted``), the attempts under way (one per
session and note, so a waiter is told ``granted`` once), and the pause after
the lock service lost its data. Decided here: what a grant's database step
means (rule 1), what a failed renewal means (rule 8), how long a waiter waits
before asking again (rule 6), which holders a lock event or the clock takes the
token from, and whether a release may go ahead (rule 3)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from collab.messages import Rid
from collab.types import LossReason, User


@dataclass
class Held:
    fence: int
    deadline: float  # the lease ends here (loop clock) unless renewed
    active_at: float = 0.0  # granted, last edit or ``keep`` (idle hand-off)
    handoff_at: float | None = None  # warned: handed off here unless active first
    caret_at: float = -math.inf  # the last caret forwarded
    caret: Any = None  # a caret held back until ``caret_at + interval``


class Idle(enum.Enum):
    """What the idle clock of one held token calls for (docs/protocol.md, Idle hand-off)."""

    NOTHING = "nothing"
    WARN = "warn"  # tell the holder: handed off at ``handoff_at`` unless active
    WITHDRAW = "withdraw"  # warned, but nobody waits any more
    HAND_OFF = "hand-off"  # warned, still idle, someone waits: release it to them


def idle_step(held: Held, now: float, idle_s: float, warn_s: float, waited_on: bool) -> Idle:
    """One look at a held token's idle clock; updates ``held.handoff_at``.

    The warning always comes at least ``warn_s`` before the hand-off, also for
    a holder idle far longer than ``idle_s`` when someone starts waiting, and
    only while someone waits: an idle holder nobody waits for keeps writing."""
    if idle_s <= 0:
        return Idle.NOTHING
    if held.handoff_at is None:
        if waited_on and now >= held.active_at + idle_s - warn_s:
            held.handoff_at = max(held.active_at + idle_s, now + warn_s)
            return Idle.WARN
        return Idle.NOTHING
    if not waited_on:
        held.handoff_at = None
        return Idle.WITHDRAW
    return Idle.HAND_OFF if now >= held.handoff_at else Idle.NOTHING


def caret_delay(held: Held, now: float, interval_s: float) -> float:
    """Seconds until the holder's next caret may be forwarded (0: now)."""
    return max(0.0, held.caret_at + interval_s - now)


@dataclass
class Waiting:
    rid: Rid  # the latest acquire's, owed the deferred ``granted``
    user: User


@dataclass(frozen=True)
class Lose:
    """Take the token of ``note`` from ``session`` and tell it why."""

    session: str
    note: str
    reason: LossReason


class AfterAdvance(enum.Enum):
    """What a grant's database step (``advance_fence``) means."""

    GRANT = "grant"  # this statement raised the fence: the grant counts
    RETRY = "retry"  # counter behind the database: raise it, give back, grant again
    PAUSE_AND_QUEUE = "pause-and-queue"  # ... and hold the note back; the waiter waits
    PAUSE_AND_REFUSE = "pause-and-refuse"  # ... and hold it back; a non-waiter retries later


class AfterRenew(enum.Enum):
    RENEWED = "renewed"
    RESET = "reset"  # the lock service lost its data: every lease is void (rule 8)
    EXPIRED = "expired"  # the lease ran out: ours no more


class Release(enum.Enum):
    HELD = "held"  # our tracked token: compare-owner release with its fence
    UNTRACKED = (
        "untracked"  # not tracked here (just resumed): compare-owner with the client's fence
    )
    QUEUE_ONLY = "queue-only"  # nothing to release; leave the queue if queued
    REFUSE = "refuse"  # a fence that is not ours: answering "released" would leave a phantom


def after_advance(raised: bool, lost_holders_may_live: bool, wait: bool) -> AfterAdvance:
    """Rule 1: a grant counts only if its own statement raised the fence. Not
    raised means the lease counter is behind the database: it can only fall
    behind by the lock service losing it (rule 8), and a holder's lease may
    have vanished with it; when such a holder may still be running, the note
    is held back for TTL + lock-delay so it is not overtaken before it notices
    (the fence keeps it safe either way)."""
    if raised:
        return AfterAdvance.GRANT
    if not lost_holders_may_live:
        return AfterAdvance.RETRY
    return AfterAdvance.PAUSE_AND_QUEUE if wait else AfterAdvance.PAUSE_AND_REFUSE


def after_renew(renewed: bool, store_lost_data: bool) -> AfterRenew:
    if renewed:
        return AfterRenew.RENEWED
    return AfterRenew.RESET if store_lost_data else AfterRenew.EXPIRED


def loss_on_lock_event(reason: str) -> LossReason:
    """A higher fence reached us through the bus: how the holder lost it."""
    return "revoked" if reason == "revoked" else "expired"


class TokenBook:
    def __init__(self, ttl_s: float, pause_s: float) -> None:
        """``ttl_s``: the lease TTL; ``pause_s``: the pause after the lock
        service lost its data (TTL + lock-delay)."""
        self.ttl_s = ttl_s
        self.pause_s = pause_s
        self.held: dict[str, dict[str, Held]] = {}  # session -> note -> token
        self.waiting: dict[str, dict[str, Waiting]] = {}  # session -> note -> place
        self._attempts: set[tuple[str, str]] = set()
        self.paused_until = 0.0

    # -- tokens held --------------------------------------------------------------
    def hold(self, session: str, note: str, fence: int, now: float) -> None:
        self.held.setdefault(session, {})[note] = Held(fence, now + self.ttl_s, active_at=now)

    def active(self, session: str, note: str, now: float) -> Held | None:
        """The holder typed or said ``keep``: its idle clock starts again and a
        warning is void. Returns the token, or None when not held here."""
        held = self.holding(session, note)
        if held is not None:
            held.active_at, held.handoff_at = now, None
        return held

    def idle_candidates(
        self, now: float, idle_s: float, warn_s: float
    ) -> list[tuple[str, str, Held]]:
        """Holds whose idle clock may call for something now: those warned,
        and those idle long enough to be warned if someone waits."""
        if idle_s <= 0:
            return []
        return [
            (s, n, h) for s, n, h in self.all_holds()
            if h.handoff_at is not None or now >= h.active_at + idle_s - warn_s
        ]  # fmt: skip

    def holders_of(self, note: str) -> list[str]:
        return [s for s, notes in self.held.items() if note in notes]

    def holding(self, session: str, note: str) -> Held | None:
        return self.held.get(session, {}).get(note)

    def counts_already(self, session: str, note: str, fence: int) -> bool:
        """The lease store says ``session`` already holds ``fence``: it counts
        without a new commit only if this book saw that fence granted."""
        held = self.holding(session, note)
        return held is not None and held.fence == fence

    def renewed(self, session: str, note: str, now: float) -> None:
        held = self.holding(session, note)
        if held is not None:
            held.deadline = now + self.ttl_s

    def unhold(self, session: str, note: str) -> Held | None:
        notes = self.held.get(session)
        if notes is None:
            return None
        held = notes.pop(note, None)
        if not notes:
            del self.held[session]  # bounded by live holders, not by history
        return held

    def holds_of(self, session: str) -> list[tuple[str, Held]]:
        return sorted(self.held.get(session, {}).items())

    def all_holds(self) -> list[tuple[str, str, Held]]:
        return [(s, n, h) for s, notes in self.held.items() for n, h in notes.items()]

    def leases_of(self, session: str, now: float) -> list[dict[str, Any]]:
        """The session's tokens as ``welcome`` and ``heartbeat_ack`` list them."""
        return [
            {"note": n, "fence": h.fence, "ttl_ms": max(0, int((h.deadline - now) * 1000))}
            for n, h in self.holds_of(session)
        ]

    def overdue(self, now: float) -> list[Lose]:
        """Holders whose heartbeats stopped: their lease is gone by now."""
        return [Lose(s, n, "expired") for s, n, h in self.all_holds() if h.deadline <= now]

    def outranked(self, note: str, fence: int, reason: str) -> list[Lose]:
        """A higher fence of ``note`` exists: whoever holds a lower one here lost it."""
        loss = loss_on_lock_event(reason)
        return [Lose(s, n, loss) for s, n, h in self.all_holds() if n == note and h.fence < fence]

    def release(self, session: str, note: str, fence: int | None) -> Release:
        held = self.holding(session, note)
        if held is not None:
            return Release.HELD if fence in (None, held.fence) else Release.REFUSE
        return Release.UNTRACKED if fence is not None else Release.QUEUE_ONLY

    # -- queue places ---------------------------------------------------------------
    def wait(self, session: str, note: str, rid: Rid, user: User) -> bool:
        """Record (or refresh the rid of) a queue place; True when it is new."""
        entry = self.waiting.setdefault(session, {}).get(note)
        if entry is None:
            self.waiting[session][note] = Waiting(rid, user)
            return True
        entry.rid = rid
        return False

    def adopt_wait(self, session: str, note: str, user: User) -> None:
        """A resumed session's place: no acquire on this socket yet, so no rid."""
        if self.waiting_on(session, note) is None:
            self.waiting.setdefault(session, {})[note] = Waiting(None, user)

    def waiting_on(self, session: str, note: str) -> Waiting | None:
        return self.waiting.get(session, {}).get(note)

    def unwait(self, session: str, note: str) -> Waiting | None:
        notes = self.waiting.get(session)
        if notes is None:
            return None
        entry = notes.pop(note, None)
        if not notes:
            del self.waiting[session]
        return entry

    def waits_of(self, session: str) -> list[str]:
        return list(self.waiting.get(session, {}))

    def all_waits(self) -> list[tuple[str, str]]:
        return [(s, n) for s, notes in self.waiting.items() for n in notes]

    def waiters_of(self, note: str) -> list[str]:
        return [s for s, notes in self.waiting.items() if note in notes]

    def retry_in(self, now: float, grantable_in_s: float | None = None) -> float:
        """Seconds until a waiter asks again (rule 6): when the lease or the
        lock-delay ends (or the pause, if longer), and at least every TTL/3,
        because key-expiry events are unreliable."""
        due = self.ttl_s / 3 if grantable_in_s is None else grantable_in_s
        due = max(due, self.paused_until - now)
        return max(0.0, min(due, self.ttl_s / 3))

    # -- attempts -------------------------------------------------------------------
    def begin_attempt(self, session: str, note: str) -> bool:
        """One grant attempt per session and note at a time: events, timers and
        polls may all ask at once, and a waiter must get one ``granted``."""
        key = (session, note)
        if key in self._attempts:
            return False
        self._attempts.add(key)
        return True

    def end_attempt(self, session: str, note: str) -> None:
        self._attempts.discard((session, note))

    def attempting(self, session: str, note: str) -> bool:
        return (session, note) in self._attempts

    # -- the pause after a reset ------------------------------------------------------
    def paused_for(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def reset(self, now: float) -> list[Lose]:
        """Rule 8: the lock service lost its data. Every lease is void; grants
        pause for TTL + lock-delay so no new holder overlaps one that has not
        noticed."""
        self.paused_until = now + self.pause_s
        return [Lose(s, n, "reset") for s, n, _ in self.all_holds()]

    # -- sessions ----------------------------------------------------------------------
    def forget_session(self, session: str) -> list[str]:
        """The session moved to another replica; returns the notes it waited on."""
        self.held.pop(session, None)
        return list(self.waiting.pop(session, {}))

    def forget_waits(self, session: str) -> list[str]:
        return list(self.waiting.pop(session, {}))
