"""The token book, exhaustively: every decision table in full, and the state
it keeps checked to stay bounded by what is live. No event loop."""

from __future__ import annotations

import itertools

import pytest

from collab.token_book import (
    AfterAdvance,
    AfterRenew,
    Lose,
    Release,
    TokenBook,
    after_advance,
    after_renew,
    loss_on_lock_event,
)
from collab.types import User

TTL, PAUSE = 3.0, 5.0
ALICE = User("u1", "alice", "user")


def book() -> TokenBook:
    return TokenBook(TTL, PAUSE)


@pytest.mark.parametrize(
    ("raised", "may_live", "wait", "expected"),
    [
        (True, True, True, AfterAdvance.GRANT),
        (True, True, False, AfterAdvance.GRANT),
        (True, False, True, AfterAdvance.GRANT),
        (True, False, False, AfterAdvance.GRANT),
        (False, False, True, AfterAdvance.RETRY),
        (False, False, False, AfterAdvance.RETRY),
        (False, True, True, AfterAdvance.PAUSE_AND_QUEUE),
        (False, True, False, AfterAdvance.PAUSE_AND_REFUSE),
    ],
)
def test_after_advance_every_case(
    raised: bool, may_live: bool, wait: bool, expected: AfterAdvance
) -> None:
    assert after_advance(raised, may_live, wait) is expected


@pytest.mark.parametrize(
    ("renewed", "lost", "expected"),
    [
        (True, False, AfterRenew.RENEWED),
        (True, True, AfterRenew.RENEWED),  # renewed: whatever the epoch says later
        (False, True, AfterRenew.RESET),
        (False, False, AfterRenew.EXPIRED),
    ],
)
def test_after_renew_every_case(renewed: bool, lost: bool, expected: AfterRenew) -> None:
    assert after_renew(renewed, lost) is expected


def test_loss_reason_on_a_lock_event() -> None:
    assert loss_on_lock_event("revoked") == "revoked"
    for reason in ("granted", "released", "expired", "reset", "queue", ""):
        assert loss_on_lock_event(reason) == "expired"


@pytest.mark.parametrize(
    ("held", "fence", "expected"),
    [
        (None, None, Release.QUEUE_ONLY),
        (None, 5, Release.UNTRACKED),
        (5, None, Release.HELD),
        (5, 5, Release.HELD),
        (5, 4, Release.REFUSE),
        (5, 6, Release.REFUSE),
    ],
)
def test_release_every_case(held: int | None, fence: int | None, expected: Release) -> None:
    b = book()
    if held is not None:
        b.hold("s", "n", held, now=0.0)
    assert b.release("s", "n", fence) is expected


def test_counts_already_only_for_the_fence_it_saw_granted() -> None:
    b = book()
    assert not b.counts_already("s", "n", 1)
    b.hold("s", "n", 2, now=0.0)
    assert b.counts_already("s", "n", 2)
    assert not b.counts_already("s", "n", 3)  # a lease left by a failed grant
    assert not b.counts_already("other", "n", 2)


def test_deadlines_and_leases_listed() -> None:
    b = book()
    b.hold("s", "b", 7, now=10.0)
    b.hold("s", "a", 3, now=11.0)
    assert b.leases_of("s", now=12.0) == [
        {"note": "a", "fence": 3, "ttl_ms": 2000},
        {"note": "b", "fence": 7, "ttl_ms": 1000},
    ]
    assert b.leases_of("s", now=20.0)[0]["ttl_ms"] == 0  # never negative
    assert b.overdue(now=12.9) == []
    assert b.overdue(now=13.0) == [Lose("s", "b", "expired")]
    b.renewed("s", "b", now=13.0)
    assert b.overdue(now=14.0) == [Lose("s", "a", "expired")]
    b.renewed("s", "missing", now=13.0)  # not held: nothing happens
    assert b.leases_of("nobody", now=0.0) == []


def test_outranked_only_lower_fences_of_that_note() -> None:
    b = book()
    b.hold("s1", "n", 4, now=0.0)
    b.hold("s2", "m", 1, now=0.0)
    assert b.outranked("n", 4, "revoked") == []
    assert b.outranked("n", 5, "revoked") == [Lose("s1", "n", "revoked")]
    assert b.outranked("n", 5, "granted") == [Lose("s1", "n", "expired")]
    assert b.outranked("m", 9, "expired") == [Lose("s2", "m", "expired")]


def test_maps_shrink_back_to_nothing() -> None:
    b = book()
    for session, note in itertools.product(("s1", "s2"), ("a", "b")):
        b.hold(session, note, 1, now=0.0)
        b.wait(session, note + "w", None, ALICE)
    for session, note in itertools.product(("s1", "s2"), ("a", "b")):
        assert b.unhold(session, note) is not None
        assert b.unwait(session, note + "w") is not None
    assert b.held == {} and b.waiting == {}
    assert b.unhold("s1", "a") is None and b.unwait("s1", "aw") is None


def test_waits_keep_the_latest_rid() -> None:
    b = book()
    assert b.wait("s", "n", 1, ALICE) is True
    assert b.wait("s", "n", 2, ALICE) is False
    entry = b.waiting_on("s", "n")
    assert entry is not None and entry.rid == 2
    b.adopt_wait("s", "n", ALICE)  # already waiting: the rid stays
    assert entry.rid == 2
    b.adopt_wait("t", "n", ALICE)
    resumed = b.waiting_on("t", "n")
    assert resumed is not None and resumed.rid is None
    assert sorted(b.waiters_of("n")) == ["s", "t"]
    assert sorted(b.all_waits()) == [("s", "n"), ("t", "n")]
    assert b.forget_waits("s") == ["n"] and b.waits_of("s") == []


def test_forget_session_drops_holds_and_waits() -> None:
    b = book()
    b.hold("s", "a", 1, now=0.0)
    b.wait("s", "b", 1, ALICE)
    assert b.forget_session("s") == ["b"]
    assert b.held == {} and b.waiting == {}


@pytest.mark.parametrize(
    ("grantable", "paused_left", "expected"),
    [
        (None, 0.0, 1.0),  # the TTL/3 poll
        (0.25, 0.0, 0.25),  # when the lease or lock-delay ends
        (7.0, 0.0, 1.0),  # never later than TTL/3
        (0.0, 0.0, 0.0),
        (None, 0.4, 1.0),
        (0.1, 0.4, 0.4),  # the pause is longer than the lock-delay
        (0.1, 9.0, 1.0),  # still at least every TTL/3
    ],
)
def test_retry_in(grantable: float | None, paused_left: float, expected: float) -> None:
    b = book()
    b.paused_until = 100.0 + paused_left
    assert b.retry_in(100.0, grantable) == pytest.approx(expected)


def test_one_attempt_at_a_time() -> None:
    b = book()
    assert b.begin_attempt("s", "n")
    assert not b.begin_attempt("s", "n")
    assert b.attempting("s", "n")
    assert b.begin_attempt("s", "m") and b.begin_attempt("t", "n")
    b.end_attempt("s", "n")
    assert not b.attempting("s", "n") and b.begin_attempt("s", "n")


def test_reset_voids_every_hold_and_pauses() -> None:
    b = book()
    b.hold("s1", "a", 1, now=0.0)
    b.hold("s2", "b", 2, now=0.0)
    assert b.paused_for(50.0) == 0.0
    losses = b.reset(now=50.0)
    assert sorted(losses, key=lambda x: x.session) == [
        Lose("s1", "a", "reset"),
        Lose("s2", "b", "reset"),
    ]
    assert b.paused_for(50.0) == PAUSE and b.paused_for(54.0) == pytest.approx(1.0)
    assert b.paused_for(55.0) == 0.0
