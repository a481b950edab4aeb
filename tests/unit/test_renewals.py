"""Batched renewal of session records and presence (collab/renewals.py): a
heartbeat costs no backend call of its own, one pass renews every socket
marked since the last in one call per backend, and every expiry is what the
heartbeat alone would have set."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from collab.close_codes import CloseCode
from collab.events import Event
from collab.presence.memory import MemoryPresenceStore
from collab.registry.base import SessionRecord
from collab.registry.memory import MemorySessionRegistry
from collab.renewals import Renewals
from collab.sockets import SocketIndex
from collab.types import User
from tests.core.cluster import FakePeer, settings
from tests.leases.helpers import FakeClock

ALICE = User("u-alice", "alice", "user")
BOB = User("u-bob", "bob", "user")
TTL_MS = 15_000


class CountingRegistry(MemorySessionRegistry):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.touches = 0
        self.batches: list[int] = []
        self.fail_next = False

    async def touch(self, session: str, socket: str, ttl_ms: int) -> bool:
        self.touches += 1
        return await super().touch(session, socket, ttl_ms)

    async def touch_many(self, touches: Sequence[tuple[str, str, int]]) -> list[bool | Exception]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("redis went away")
        self.batches.append(len(touches))
        return await super().touch_many(touches)


class CountingPresence(MemoryPresenceStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.batches: list[int] = []

    async def touch_many(
        self, touches: Sequence[tuple[str, str, User, int]]
    ) -> list[bool | Exception]:
        self.batches.append(len(touches))
        return await super().touch_many(touches)


class FakeHost:
    replica_id = "r1"

    def __init__(self) -> None:
        self.published: list[Event] = []

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        coro.close()

    async def publish(self, event: Event) -> None:
        self.published.append(event)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.registry = CountingRegistry(self.clock)
        self.presence = CountingPresence(self.clock)
        self.sockets = SocketIndex()
        self.host = FakeHost()
        self.renewals = Renewals(
            settings(heartbeat_ms=5000, lease_ttl_ms=TTL_MS), self.registry, self.presence,
            self.sockets, self.host, clock=lambda: self.clock() / 1000.0,  # type: ignore[arg-type]
        )  # fmt: skip

    async def connect(self, user: User, *notes: str) -> FakePeer:
        peer = FakePeer(user)
        self.sockets.add(peer)
        await self.registry.claim(
            SessionRecord(peer.session, user, "r1", peer.socket_id, ""), TTL_MS
        )
        for note in notes:
            self.sockets.subscribe(peer, note, 0)
            await self.presence.touch(note, peer.session, user, TTL_MS)
        return peer

    def advance(self, ms: float) -> None:
        self.clock.advance(ms)


@pytest.fixture
def world() -> World:
    return World()


async def test_a_pass_renews_every_marked_socket_in_one_call_per_backend(world: World) -> None:
    peers = [await world.connect(ALICE, "n1", "n2") for _ in range(3)]
    world.advance(5_000)
    for peer in peers:
        world.renewals.beat(peer)
    assert world.registry.touches == 0 and world.presence.batches == [], "a beat calls nothing"
    world.advance(1_000)
    await world.renewals.renew_marked()
    assert world.registry.batches == [3]
    assert world.presence.batches == [6]  # three sockets on two notes each
    world.advance(TTL_MS - 1_001)  # past the claim's TTL, within the heartbeat's
    for peer in peers:
        assert await world.registry.get(peer.session) is not None
    assert [s for s, _ in await world.presence.viewers("n1")] == sorted(p.session for p in peers)
    await world.renewals.renew_marked()
    assert world.registry.batches == [3], "no heartbeat since, nothing renewed"


async def test_the_ttl_counts_from_the_heartbeat_not_from_the_pass(world: World) -> None:
    peer = await world.connect(ALICE, "n1")
    world.advance(5_000)
    world.renewals.beat(peer)  # the record would now live until 5 s + TTL
    world.advance(900)
    await world.renewals.renew_marked()
    world.advance(TTL_MS - 900 - 1)
    assert await world.registry.get(peer.session) is not None
    assert await world.presence.viewers("n1") != []
    world.advance(2)
    assert await world.registry.get(peer.session) is None, "no later than the heartbeat's TTL"
    assert await world.presence.viewers("n1") == []


async def test_a_socket_that_stops_heartbeating_lapses(world: World) -> None:
    quiet, busy = await world.connect(ALICE, "n1"), await world.connect(BOB, "n1")
    for _ in range(4):
        world.advance(5_000)
        world.renewals.beat(busy)
        await world.renewals.renew_marked()
    assert await world.registry.get(quiet.session) is None
    assert await world.registry.get(busy.session) is not None
    assert [s for s, _ in await world.presence.viewers("n1")] == [busy.session]


async def test_a_closed_or_replaced_socket_is_not_renewed(world: World) -> None:
    gone, replaced = await world.connect(ALICE, "n1"), await world.connect(BOB, "n1")
    world.renewals.beat(gone)
    world.renewals.beat(replaced)
    world.renewals.forget(gone)  # detached
    successor = FakePeer(BOB, replaced.session)
    world.sockets.add(successor)  # the session resumed on a new socket here
    await world.renewals.renew_marked()
    assert world.registry.batches == []


async def test_an_expired_record_is_claimed_back_and_its_presence_announced(world: World) -> None:
    peer = await world.connect(ALICE, "n1")
    world.advance(TTL_MS + 1)  # e.g. the replica stalled: record and presence lapsed
    world.renewals.beat(peer)
    await world.renewals.renew_marked()
    record = await world.registry.get(peer.session)
    assert record is not None and record.socket == peer.socket_id and record.replica == "r1"
    assert [s for s, _ in await world.presence.viewers("n1")] == [peer.session]
    assert [e["note"] for e in world.host.published] == ["n1"], "the viewer list changed"
    assert peer.closed is None


async def test_a_session_that_moved_elsewhere_closes_its_old_socket(world: World) -> None:
    peer = await world.connect(ALICE, "n1")
    await world.registry.claim(SessionRecord(peer.session, ALICE, "r2", "elsewhere", ""), TTL_MS)
    await world.presence.remove("n1", peer.session)
    world.renewals.beat(peer)
    await world.renewals.renew_marked()
    assert peer.closed is not None and peer.closed[0] == CloseCode.SUPERSEDED
    record = await world.registry.get(peer.session)
    assert record is not None and record.socket == "elsewhere", "not stolen back"
    assert await world.presence.viewers("n1") == [], "nor shown as viewing here"


async def test_a_failed_pass_keeps_the_marks_with_their_arrival_time(world: World) -> None:
    peer = await world.connect(ALICE, "n1")
    world.renewals.beat(peer)
    world.registry.fail_next = True
    await world.renewals.renew_marked()
    assert world.renewals.pending() == 1
    world.advance(TTL_MS - 100)
    await world.renewals.renew_marked()  # renewed from the beat, not from now
    world.advance(101)
    assert await world.registry.get(peer.session) is None
    world.renewals.beat(peer)
    world.advance(TTL_MS)
    await world.renewals.renew_marked()
    assert world.renewals.pending() == 0, "a mark whose TTL ran out is dropped"
