"""Lease contract, part 1: grants, fences, compare-owner renew/release and
the FIFO queue of live waiters. Runs on Redis and on the memory twin."""

from __future__ import annotations

import re

from collab.leases.base import AcquireResult, LeaseView, QueueView
from tests.leases.conftest import TTL_MS, LeaseEnv
from tests.leases.helpers import ALICE, BOB, CAROL, DAVE

NOTE = "note-1"


async def test_grant_increments_the_fence(leases: LeaseEnv) -> None:
    s = leases.store
    first = await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert first == AcquireResult("granted", fence=1)
    assert await s.release(NOTE, "sa", 1)
    second = await s.try_acquire(NOTE, "sb", BOB, wait=False)
    assert second == AcquireResult("granted", fence=2)
    assert await s.fence_counter(NOTE) == 2
    # Fences are per note.
    assert (await s.try_acquire("note-2", "sa", ALICE, wait=False)).fence == 1


async def test_acquire_is_idempotent_for_the_holder(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=True)
    again = await s.try_acquire(NOTE, "sa", ALICE, wait=True)
    assert again == AcquireResult("granted", fence=1, already=True)
    assert await s.fence_counter(NOTE) == 1


async def test_locked_when_held_and_not_waiting(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert await s.try_acquire(NOTE, "sb", BOB, wait=False) == AcquireResult("locked")
    view = await s.view(NOTE)
    assert isinstance(view, LeaseView) and view.queue == ()


async def test_waiters_queue_fifo_and_keep_their_place(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=True)
    assert await s.try_acquire(NOTE, "sb", BOB, wait=True) == AcquireResult("queued", position=1)
    assert (await s.try_acquire(NOTE, "sc", CAROL, wait=True)).position == 2
    assert (await s.try_acquire(NOTE, "sd", DAVE, wait=True)).position == 3
    # Asking again keeps the place; so does a heartbeat.
    assert (await s.try_acquire(NOTE, "sc", CAROL, wait=True)).position == 2
    assert await s.renew_waiter(NOTE, "sd") == 3
    # Leaving moves the others up.
    assert await s.leave_queue(NOTE, "sb")
    assert not await s.leave_queue(NOTE, "sb")
    assert await s.renew_waiter(NOTE, "sc") == 1
    assert await s.renew_waiter(NOTE, "sd") == 2
    assert await s.renew_waiter(NOTE, "sb") == 0


async def test_only_the_head_is_granted_when_free(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)
    await s.try_acquire(NOTE, "sc", CAROL, wait=True)
    assert await s.release(NOTE, "sa", 1)
    # Free, but Carol is second in line: she stays queued; a newcomer too.
    assert await s.try_acquire(NOTE, "sc", CAROL, wait=True) == AcquireResult("queued", position=2)
    assert await s.try_acquire(NOTE, "sd", DAVE, wait=False) == AcquireResult("locked")
    assert await s.grantable_in_ms(NOTE, "sc") == 0  # only queue order stops her
    view = await s.view(NOTE)
    assert isinstance(view, QueueView)
    assert [sess for sess, _ in view.queue] == ["sb", "sc"]
    granted = await s.try_acquire(NOTE, "sb", BOB, wait=True)
    assert granted == AcquireResult("granted", fence=2)
    assert await s.renew_waiter(NOTE, "sb") == 0  # left the queue on grant
    assert await s.renew_waiter(NOTE, "sc") == 1


async def test_dead_waiter_is_skipped(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)  # never heartbeats again
    await s.try_acquire(NOTE, "sc", CAROL, wait=True)
    for _ in range(3):  # past one TTL: Bob's liveness key expires
        await leases.advance(TTL_MS * 0.45)
        assert await s.renew(NOTE, "sa", 1)
        assert await s.renew_waiter(NOTE, "sc") >= 1
    assert await s.renew_waiter(NOTE, "sc") == 1
    assert await s.release(NOTE, "sa", 1)
    assert await s.try_acquire(NOTE, "sc", CAROL, wait=True) == AcquireResult("granted", fence=2)
    # A dead waiter is not revived by a late heartbeat; it must queue again.
    assert await s.renew_waiter(NOTE, "sb") == 0
    assert await s.try_acquire(NOTE, "sb", BOB, wait=True) == AcquireResult("queued", position=1)


async def test_renew_is_compare_owner(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert not await s.renew(NOTE, "sb", 1)  # wrong session
    assert not await s.renew(NOTE, "sa", 2)  # wrong fence
    assert not await s.renew("note-other", "sa", 1)
    # Renewing keeps the lease alive past its first TTL.
    for _ in range(3):
        await leases.advance(TTL_MS * 0.45)
        assert await s.renew(NOTE, "sa", 1)
    view = await s.view(NOTE)
    assert isinstance(view, LeaseView) and view.session == "sa"
    assert 0 < view.ttl_ms <= TTL_MS


async def test_release_is_compare_owner(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert not await s.release(NOTE, "sb", 1)
    assert not await s.release(NOTE, "sa", 7)
    assert not await s.drop(NOTE, "sa", 7)
    assert isinstance(await s.view(NOTE), LeaseView)
    assert await s.release(NOTE, "sa", 1)
    assert not await s.release(NOTE, "sa", 1)
    assert isinstance(await s.view(NOTE), QueueView)


async def test_release_also_leaves_the_queue(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)
    assert not await s.release(NOTE, "sb", 0)  # not the holder, but leaves the queue
    assert await s.renew_waiter(NOTE, "sb") == 0


async def test_lease_expires_without_renewal(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await leases.advance(TTL_MS + 100)
    assert not await s.renew(NOTE, "sa", 1)
    assert isinstance(await s.view(NOTE), QueueView)


async def test_raise_fence(leases: LeaseEnv) -> None:
    s = leases.store
    assert await s.fence_counter(NOTE) == 0
    assert await s.raise_fence(NOTE, 10) == 10
    assert await s.raise_fence(NOTE, 5) == 10
    assert await s.fence_counter(NOTE) == 10
    assert (await s.try_acquire(NOTE, "sa", ALICE, wait=False)).fence == 11


async def test_view_shows_holder_and_live_waiters(leases: LeaseEnv) -> None:
    s = leases.store
    assert await s.view(NOTE) == QueueView(queue=())
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sc", CAROL, wait=True)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)
    view = await s.view(NOTE)
    assert isinstance(view, LeaseView)
    assert (view.holder, view.session, view.fence) == (ALICE, "sa", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", view.since)  # the wire form
    assert 0 < view.ttl_ms <= TTL_MS
    assert view.queue == (("sc", CAROL), ("sb", BOB))
    state = view.lock_state()
    assert state.queue == (CAROL, BOB) and state.fence == 1


async def test_grantable_in_ms(leases: LeaseEnv) -> None:
    s = leases.store
    assert await s.grantable_in_ms(NOTE, "sb") == 0  # free
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert await s.grantable_in_ms(NOTE, "sa") == 0  # the holder itself
    # Another session waits out the lease and, since it would end by expiry,
    # the lock-delay after it.
    wait_ms = await s.grantable_in_ms(NOTE, "sb")
    assert TTL_MS <= wait_ms <= TTL_MS + s.lock_delay_ms
    assert wait_ms > s.lock_delay_ms
