"""What only the memory twin has: exact boundaries on a fake clock, and no
data loss to report."""

from __future__ import annotations

from collab.leases.base import AcquireResult
from collab.leases.memory import MemoryLeaseStore
from tests.leases.helpers import ALICE, BOB, FakeClock


async def test_lease_and_lock_delay_boundaries_are_exact() -> None:
    clock = FakeClock()
    store = MemoryLeaseStore(ttl_ms=1000, lock_delay_ms=500, clock=clock)
    await store.try_acquire("n", "sa", ALICE, wait=False)
    clock.advance(999)
    assert await store.grantable_in_ms("n", "sb") == 1 + 500
    clock.advance(1)  # the lease ends exactly at its deadline
    assert not await store.renew("n", "sa", 1)
    clock.advance(499)
    assert await store.grantable_in_ms("n", "sb") == 1
    assert await store.try_acquire("n", "sb", BOB, wait=False) == AcquireResult("locked")
    clock.advance(1)
    assert await store.try_acquire("n", "sb", BOB, wait=False) == AcquireResult("granted", fence=2)


async def test_waiter_liveness_ends_after_one_ttl() -> None:
    clock = FakeClock()
    store = MemoryLeaseStore(ttl_ms=1000, lock_delay_ms=0, clock=clock)
    await store.try_acquire("n", "sa", ALICE, wait=False)
    await store.try_acquire("n", "sb", BOB, wait=True)
    clock.advance(999)
    assert await store.renew_waiter("n", "sb") == 1
    clock.advance(1000)
    assert await store.renew_waiter("n", "sb") == 0


async def test_memory_never_reports_data_loss() -> None:
    store = MemoryLeaseStore(ttl_ms=1000, lock_delay_ms=0)
    await store.start()
    assert not await store.check_epoch()
