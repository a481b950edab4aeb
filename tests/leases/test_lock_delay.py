"""Lease contract, part 2: the lock-delay after an unclean loss (rule 4) and
revoke. Runs on Redis (real sleeps, TTL 400 ms, lock-delay 600 ms) and on the
memory twin (fake clock)."""

from __future__ import annotations

from collab.leases.base import AcquireResult, QueueView
from tests.leases.conftest import LOCK_DELAY_MS, TTL_MS, LeaseEnv
from tests.leases.helpers import ALICE, BOB, CAROL

NOTE = "note-ld"
# Slack for scheduling on a loaded machine; only the Redis runs need it.
SLACK_MS = 60


async def wait_until_grantable(leases: LeaseEnv, session: str) -> None:
    """Advance time as a waiter's poll timer would."""
    for _ in range(20):
        wait_ms = await leases.store.grantable_in_ms(NOTE, session)
        if wait_ms == 0:
            return
        await leases.advance(wait_ms + 5)
    raise AssertionError("never became grantable")


async def test_after_expiry_others_wait_for_the_lock_delay(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await leases.advance(TTL_MS + SLACK_MS)  # the lease expired: an unclean loss
    assert isinstance(await s.view(NOTE), QueueView)
    assert await s.try_acquire(NOTE, "sb", BOB, wait=False) == AcquireResult("locked")
    assert await s.try_acquire(NOTE, "sb", BOB, wait=True) == AcquireResult("queued", position=1)
    left = await s.grantable_in_ms(NOTE, "sb")
    assert 0 < left <= LOCK_DELAY_MS
    # Still held back just before the old deadline + lock-delay ...
    await leases.advance(max(left - 2 * SLACK_MS, 0))
    assert (await s.try_acquire(NOTE, "sb", BOB, wait=True)).kind == "queued"
    # ... and granted right after it.
    await wait_until_grantable(leases, "sb")
    assert await s.try_acquire(NOTE, "sb", BOB, wait=True) == AcquireResult("granted", fence=2)


async def test_after_expiry_the_previous_owner_may_retake(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await leases.advance(TTL_MS + SLACK_MS)
    assert await s.grantable_in_ms(NOTE, "sa") == 0
    assert await s.try_acquire(NOTE, "sa", ALICE, wait=False) == AcquireResult("granted", fence=2)


async def test_clean_release_hands_over_at_once(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await s.try_acquire(NOTE, "sb", BOB, wait=True)
    assert await s.release(NOTE, "sa", 1)
    assert await s.grantable_in_ms(NOTE, "sb") == 0
    assert await s.try_acquire(NOTE, "sb", BOB, wait=True) == AcquireResult("granted", fence=2)


async def test_drop_hands_over_at_once(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert await s.drop(NOTE, "sa", 1)
    assert await s.try_acquire(NOTE, "sc", CAROL, wait=False) == AcquireResult("granted", fence=2)


async def test_revoke_fences_and_starts_the_lock_delay(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    fence = await s.revoke(NOTE)
    assert fence == 2 and await s.fence_counter(NOTE) == 2
    assert isinstance(await s.view(NOTE), QueueView)
    assert not await s.renew(NOTE, "sa", 1)
    assert await s.try_acquire(NOTE, "sb", BOB, wait=False) == AcquireResult("locked")
    left = await s.grantable_in_ms(NOTE, "sb")
    assert 0 < left <= LOCK_DELAY_MS
    await wait_until_grantable(leases, "sb")
    assert await s.try_acquire(NOTE, "sb", BOB, wait=False) == AcquireResult("granted", fence=3)


async def test_revoked_owner_may_retake_during_the_lock_delay(leases: LeaseEnv) -> None:
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert await s.revoke(NOTE) == 2
    granted = await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    assert granted == AcquireResult("granted", fence=3)


async def test_revoke_of_a_free_note_still_raises_the_fence(leases: LeaseEnv) -> None:
    s = leases.store
    assert await s.revoke(NOTE) == 1
    assert await s.revoke(NOTE) == 2
    # Nobody held it, so nobody is held back.
    assert await s.try_acquire(NOTE, "sb", BOB, wait=False) == AcquireResult("granted", fence=3)


async def test_renewal_pushes_the_lock_delay_out(leases: LeaseEnv) -> None:
    """The lock-delay counts from the *latest* deadline the holder was given."""
    s = leases.store
    await s.try_acquire(NOTE, "sa", ALICE, wait=False)
    await leases.advance(TTL_MS / 2)
    assert await s.renew(NOTE, "sa", 1)
    await leases.advance(TTL_MS + SLACK_MS)  # expired after the renewal
    view = await s.view(NOTE)
    assert isinstance(view, QueueView)
    left = await s.grantable_in_ms(NOTE, "sb")
    assert LOCK_DELAY_MS - SLACK_MS * 3 <= left <= LOCK_DELAY_MS
