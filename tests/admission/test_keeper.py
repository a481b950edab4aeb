"""This replica's side of admission (``collab/admission/keeper.py`` and
``address.py``) on the in-process twin with a fake clock: each slot is given
back exactly once, renewals keep slots alive past their TTL, a slot lost over
the limit closes its socket, and a cancelled hello still gives its slot back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from collab.admission import AddressSlots, UserSlots
from collab.admission.memory import MemorySocketAdmission
from tests.leases.helpers import FakeClock

TTL_MS = 1000


def keeper(limit: int = 2) -> tuple[UserSlots, MemorySocketAdmission, FakeClock]:
    clock = FakeClock()
    store = MemorySocketAdmission(clock=clock)
    return UserSlots(store, limit, TTL_MS, renew_every_s=3600), store, clock


def never() -> None:
    raise AssertionError("no slot was lost")


async def test_release_gives_a_slot_back_exactly_once() -> None:
    slots, store, _ = keeper(limit=2)
    assert await slots.reserve("u1", "a", never)
    assert await slots.reserve("u1", "b", never)
    assert not await slots.reserve("u1", "c", never)
    await slots.release("u1", "a")
    await slots.release("u1", "a")
    await slots.release("u1", "c")  # refused, so never held: nothing to give back
    assert await store.count("u1") == 1 and slots.held("u1") == 1
    assert await slots.reserve("u1", "c", never)
    assert not await slots.reserve("u1", "d", never)


async def test_renewals_keep_slots_alive_past_their_ttl() -> None:
    slots, store, clock = keeper(limit=1)
    assert await slots.reserve("u1", "a", never)
    for _ in range(5):
        clock.advance(TTL_MS * 0.6)
        await slots.renew_all()
    assert await store.count("u1") == 1
    assert not await slots.reserve("u1", "b", never), "the renewed slot still counts"
    clock.advance(TTL_MS + 1)  # no renewal: as if this replica had died
    assert await store.count("u1") == 0


async def test_a_slot_lost_over_the_limit_closes_its_socket() -> None:
    slots, store, clock = keeper(limit=1)
    lost: list[str] = []
    assert await slots.reserve("u1", "a", lambda: lost.append("a"))
    clock.advance(TTL_MS + 1)  # this replica stalled past the TTL ...
    assert await store.admit("u1", ["elsewhere"], 1, TTL_MS) == []  # ... and another took it
    await slots.renew_all()
    assert lost == ["a"] and slots.held("u1") == 0
    assert await store.count("u1") == 1


async def test_a_slot_lapsed_with_room_left_is_taken_back() -> None:
    slots, store, clock = keeper(limit=2)
    assert await slots.reserve("u1", "a", never)
    clock.advance(TTL_MS + 1)
    await slots.renew_all()
    assert await store.count("u1") == 1 and slots.held("u1") == 1


class Gated(MemorySocketAdmission):
    """Holds every ``admit`` until the gate opens."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gate = asyncio.Event()

    async def admit(
        self, user_id: str, sockets: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        refused = await super().admit(user_id, sockets, limit, ttl_ms)
        await self.gate.wait()  # the script ran; the reply is late
        return refused


async def test_a_cancelled_hello_still_gives_its_slot_back() -> None:
    store = Gated(FakeClock())
    slots = UserSlots(store, 1, TTL_MS, renew_every_s=3600)
    hello = asyncio.create_task(slots.reserve("u1", "a", never))
    await asyncio.sleep(0)
    hello.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hello
    assert await store.count("u1") == 1, "the reservation was made before the cancel"
    await slots.release("u1", "a")
    assert await store.count("u1") == 0


async def test_a_release_during_a_renewal_is_not_undone_by_it() -> None:
    store = Gated(FakeClock())
    store.gate.set()
    slots = UserSlots(store, 2, TTL_MS, renew_every_s=3600)
    assert await slots.reserve("u1", "a", never)
    store.gate.clear()
    renewal = asyncio.create_task(slots.renew_all())
    await asyncio.sleep(0)
    await slots.release("u1", "a")  # the renewal's write lands after this ...
    store.gate.set()
    await renewal
    assert await store.count("u1") == 0, "... and is removed again"


async def test_renewals_skip_a_slot_still_being_reserved() -> None:
    store = Gated(FakeClock())
    slots = UserSlots(store, 1, TTL_MS, renew_every_s=3600)
    hello = asyncio.create_task(slots.reserve("u1", "a", never))
    await asyncio.sleep(0)
    await asyncio.wait_for(slots.renew_all(), 1)  # does not wait on, or renew, "a"
    store.gate.set()
    assert await hello


def test_address_slots_count_each_socket_and_give_back_once() -> None:
    slots = AddressSlots(limit=2)
    a, b = slots.take("10.0.0.1"), slots.take("10.0.0.1")
    assert a is not None and b is not None
    assert slots.take("10.0.0.1") is None
    assert slots.take("10.0.0.2") is not None, "other addresses have their own count"
    a.release()
    a.release()
    assert slots.open("10.0.0.1") == 1
    c = slots.take("10.0.0.1")
    assert c is not None and slots.take("10.0.0.1") is None
    b.release()
    c.release()
    assert slots.open("10.0.0.1") == 0 and len(slots) == 1


async def test_the_renewal_loop_keeps_slots_and_stops_on_close() -> None:
    store = MemorySocketAdmission()  # the real monotonic clock
    slots = UserSlots(store, 1, ttl_ms=300, renew_every_s=0.1)
    await slots.start()
    try:
        assert await slots.reserve("u1", "a", never)
        await asyncio.sleep(0.8)  # well past the TTL
        assert await store.count("u1") == 1, "the loop renewed it"
    finally:
        await slots.close()
    await asyncio.sleep(0.4)
    assert await store.count("u1") == 0, "no renewals after close: it lapsed"
