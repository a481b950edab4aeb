"""Lease contract, part 3: the steps the token driver uses when a grant does
not count (give back, hold back), when a note is deleted, and the shared
database timeline. Runs on Redis and on the memory twin."""

from __future__ import annotations

from collab.leases.base import AcquireResult, LeaseView, QueueView
from tests.leases.conftest import LeaseEnv
from tests.leases.helpers import ALICE, BOB, CAROL

NOTE = "note-r"


async def test_give_back_frees_the_lease_and_keeps_the_head_place(leases: LeaseEnv) -> None:
    s = leases.store
    held = await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert (await s.try_acquire(NOTE, "sb", BOB, wait=True)).kind == "queued"
    assert (await s.try_acquire(NOTE, "sc", CAROL, wait=True)).kind == "queued"
    await s.release(NOTE, "sa", held.fence)
    granted = await s.try_acquire(NOTE, "sb", BOB, wait=True)
    assert granted.kind == "granted"
    await s.give_back(NOTE, "sb", granted.fence, BOB)
    view = await s.view(NOTE)
    assert isinstance(view, QueueView)
    assert [sess for sess, _ in view.queue] == ["sb", "sc"]  # back at the head
    assert (await s.try_acquire(NOTE, "sc", CAROL, wait=True)).kind == "queued"
    again = await s.try_acquire(NOTE, "sb", BOB, wait=True)
    assert again == AcquireResult("granted", fence=granted.fence + 1)


async def test_give_back_of_a_lease_no_longer_ours_leaves_it(leases: LeaseEnv) -> None:
    s = leases.store
    held = await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.give_back(NOTE, "sa", held.fence + 1, ALICE)
    view = await s.view(NOTE)
    assert isinstance(view, LeaseView) and view.session == "sa"


async def test_hold_back_pauses_every_session(leases: LeaseEnv) -> None:
    s = leases.store
    held = await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.release(NOTE, "sa", held.fence)
    await s.hold_back(NOTE, 400)
    for session, user in (("sa", ALICE), ("sb", BOB)):
        assert (await s.try_acquire(NOTE, session, user, wait=False)).kind == "locked"
        assert 0 < await s.grantable_in_ms(NOTE, session) <= 400
    await leases.advance(450)
    assert (await s.try_acquire(NOTE, "sb", BOB, wait=False)).kind == "granted"


async def test_forget_note_removes_counter_and_queue(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)
    await s.forget_note(NOTE)
    assert await s.fence_counter(NOTE) == 0
    view = await s.view(NOTE)
    assert isinstance(view, QueueView) and view.queue == ()


async def test_the_timeline_floor_only_rises(leases: LeaseEnv) -> None:
    s = leases.store
    base = await s.record_timeline(0)
    assert await s.record_timeline(base + 2) == base + 2
    assert await s.record_timeline(base + 1) == base + 2
    assert await s.record_timeline(0) == base + 2
