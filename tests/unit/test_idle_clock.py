"""The idle clock of a held token (``token_book.idle_step``), checked in every
state and over every short history: a holder is handed off only after a
warning that came at least the warning time before, while someone waited,
with no activity since. The caret pacing rule with it. No event loop."""

from __future__ import annotations

import itertools
import math

import pytest

from collab.token_book import Held, Idle, TokenBook, caret_delay, idle_step

IDLE, WARN = 4.0, 2.0


def held(active_at: float = 0.0, handoff_at: float | None = None) -> Held:
    return Held(fence=7, deadline=math.inf, active_at=active_at, handoff_at=handoff_at)


@pytest.mark.parametrize(
    ("now", "handoff_at", "waited_on", "expected", "handoff_after"),
    [
        # not warned: too early to warn, whoever waits
        (1.0, None, True, Idle.NOTHING, None),
        (1.0, None, False, Idle.NOTHING, None),
        # not warned, inside the warning window: warned only if someone waits
        (2.0, None, True, Idle.WARN, 4.0),
        (3.5, None, True, Idle.WARN, 5.5),  # a late tick still gives the full warning
        (2.0, None, False, Idle.NOTHING, None),
        # idle far longer than the limit when someone starts waiting
        (100.0, None, True, Idle.WARN, 102.0),
        (100.0, None, False, Idle.NOTHING, None),
        # warned, deadline not reached
        (3.0, 4.0, True, Idle.NOTHING, 4.0),
        (3.0, 4.0, False, Idle.WITHDRAW, None),
        # warned, deadline reached
        (4.0, 4.0, True, Idle.HAND_OFF, 4.0),
        (9.0, 4.0, True, Idle.HAND_OFF, 4.0),
        (4.0, 4.0, False, Idle.WITHDRAW, None),
    ],
)
def test_every_state(
    now: float, handoff_at: float | None, waited_on: bool, expected: Idle,
    handoff_after: float | None,
) -> None:  # fmt: skip
    h = held(handoff_at=handoff_at)
    assert idle_step(h, now, IDLE, WARN, waited_on) is expected
    assert h.handoff_at == handoff_after


@pytest.mark.parametrize("handoff_at", [None, 1.0])
@pytest.mark.parametrize("waited_on", [True, False])
def test_zero_turns_it_off(handoff_at: float | None, waited_on: bool) -> None:
    assert idle_step(held(handoff_at=handoff_at), 1e9, 0.0, WARN, waited_on) is Idle.NOTHING


# One step of a history: a tick with or without waiters, or activity then a tick.
STEPS = ("wait", "free", "active")


@pytest.mark.parametrize("first", STEPS)
def test_every_history_of_eight_seconds(first: str) -> None:
    """Every history of 8 one-second steps (3^8 per first step): the
    hand-off rule holds, and the book's candidate filter never hides a
    token that needs looking at."""
    for rest in itertools.product(STEPS, repeat=7):
        history = (first, *rest)
        book = TokenBook(ttl_s=math.inf, pause_s=0.0)
        book.hold("s", "n", 7, 0.0)
        warned_at: float | None = None
        for second, step in enumerate(history, start=1):
            now = float(second)
            if step == "active":
                book.active("s", "n", now)
                warned_at = None
            h = book.holding("s", "n")
            assert h is not None
            candidate = any(n == "n" for _, n, _ in book.idle_candidates(now, IDLE, WARN))
            outcome = idle_step(h, now, IDLE, WARN, step != "free")
            if not candidate:
                assert outcome is Idle.NOTHING, history
            if outcome is Idle.WARN:
                assert warned_at is None, history  # one warning per idle spell
                assert now - h.active_at >= IDLE - WARN
                warned_at = now
            elif outcome is Idle.WITHDRAW:
                assert warned_at is not None and step == "free"
                warned_at = None
            elif outcome is Idle.HAND_OFF:
                assert warned_at is not None, history
                assert now - warned_at >= WARN, history  # the full warning
                assert now - h.active_at >= IDLE, history  # the full idle time
                assert step == "wait"
                break  # the token is gone: the history ends here


def test_activity_voids_a_warning() -> None:
    book = TokenBook(ttl_s=10.0, pause_s=0.0)
    book.hold("s", "n", 7, 0.0)
    h = book.holding("s", "n")
    assert h is not None
    assert idle_step(h, 3.0, IDLE, WARN, True) is Idle.WARN
    assert book.active("s", "n", 3.5) is h
    assert h.handoff_at is None and h.active_at == 3.5
    assert idle_step(h, 4.0, IDLE, WARN, True) is Idle.NOTHING
    assert book.active("s", "other", 4.0) is None


def test_candidates_are_only_tokens_near_or_past_the_limit() -> None:
    book = TokenBook(ttl_s=10.0, pause_s=0.0)
    book.hold("fresh", "n1", 1, 10.0)
    book.hold("idle", "n2", 2, 0.0)
    assert [s for s, _, _ in book.idle_candidates(11.5, IDLE, WARN)] == ["idle"]
    assert book.idle_candidates(12.0, 0.0, WARN) == []
    assert book.holders_of("n2") == ["idle"] and book.holders_of("n3") == []


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [(-math.inf, 0.0, 0.0), (1.0, 1.05, 0.05), (1.0, 1.1, 0.0), (1.0, 5.0, 0.0)],
)
def test_caret_delay(last: float, now: float, expected: float) -> None:
    h = held()
    h.caret_at = last
    assert caret_delay(h, now, 0.1) == pytest.approx(expected)
