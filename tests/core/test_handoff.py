"""The idle hand-off, edit requests and the writer's caret across two
replicas, on every store (docs/protocol.md, The writer's caret and Idle
hand-off). The holder is on one replica, the waiter or viewer on the other."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from collab.errors import Fenced, RateLimited
from collab.hub import Hub
from collab.messages import Caret
from collab.store import Store
from collab.types import User
from tests.core.cluster import Cluster, FakePeer, settle, type_into, until

IDLE_S, WARNING_S = 1.2, 0.6


@pytest.fixture
async def idle_cluster(store: Store) -> AsyncIterator[Cluster]:
    started = await Cluster(
        store, idle_handoff_s=IDLE_S, idle_warning_s=WARNING_S, edit_request_interval_s=5.0
    ).start()
    try:
        yield started
    finally:
        await started.close()


@contextlib.asynccontextmanager
async def heartbeating(*peers: tuple[Hub, FakePeer]) -> AsyncIterator[None]:
    """Keep the sessions' leases and queue places alive, as their clients would."""

    async def beat() -> None:
        while True:
            for hub, peer in peers:
                await hub.heartbeat(peer)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def holder_and_waiter(cluster: Cluster) -> tuple[str, User, FakePeer, FakePeer, int]:
    h0, h1 = cluster.hubs
    alice, bob = await cluster.user(name=f"alice{uuid.uuid4().hex[:6]}"), await cluster.user()
    note = await cluster.note(alice)
    await cluster.store.set_access(note.id, bob.id, "write")
    a, b = await cluster.connect(h0, alice), await cluster.connect(h1, bob)
    fence = (await h0.tokens.acquire(a, note.id, False, 1))["fence"]
    assert (await h1.tokens.acquire(b, note.id, True, 2))["type"] == "queued"
    return note.id, alice, a, b, int(fence)


async def test_an_idle_holder_is_warned_then_the_waiter_elsewhere_is_granted(
    idle_cluster: Cluster,
) -> None:
    h0, h1 = idle_cluster.hubs
    note, _, a, b, fence = await holder_and_waiter(idle_cluster)
    async with heartbeating((h0, a), (h1, b)):
        await until(lambda: bool(a.of("idle_warning", note)), within_s=3)
        warning = a.of("idle_warning", note)[0]
        assert warning["fence"] == fence
        assert WARNING_S * 1000 - 150 <= warning["handoff_in_ms"] <= WARNING_S * 1000
        warned = asyncio.get_running_loop().time()
        assert not b.of("granted")
        await until(lambda: bool(b.of("granted", note)), within_s=3)
        # The full warning was given: never handed off before it ran out.
        assert asyncio.get_running_loop().time() - warned >= WARNING_S - 0.15
    lost = a.of("lease_lost", note)
    assert lost == [{"type": "lease_lost", "note": note, "fence": fence, "reason": "idle"}]
    new_fence = b.of("granted", note)[0]["fence"]
    assert new_fence > fence
    # The old fence is shut out in the database: the holder's late keystroke is refused.
    with pytest.raises(Fenced):
        await type_into(h0, a, note, fence, 0, "late")
    assert await type_into(h1, b, note, new_fence, 0, "bob") == 1
    # A clean release: no lock-delay held the waiter back, and it was counted.
    assert h0.metrics.idle_handoffs._value.get() == 1


async def test_a_keystroke_or_keep_restarts_the_clock(idle_cluster: Cluster) -> None:
    h0, h1 = idle_cluster.hubs
    note, _, a, b, fence = await holder_and_waiter(idle_cluster)
    async with heartbeating((h0, a), (h1, b)):
        await until(lambda: bool(a.of("idle_warning", note)), within_s=3)
        # "Keep editing" just before the deadline keeps the token.
        kept = h0.handoff.keep(a, note, 7)
        assert kept == {"type": "kept", "rid": 7, "note": note, "handoff_in_ms": IDLE_S * 1000}
        await until(lambda: len(a.of("idle_warning", note)) == 2, within_s=3)
        version = await type_into(h0, a, note, fence, 0, "x")  # a keystroke: restarts it again
        await settle(IDLE_S - WARNING_S - 0.2)
        assert len(a.of("idle_warning", note)) == 2
        assert not b.of("granted") and not a.of("lease_lost")
        await until(lambda: bool(b.of("granted", note)), within_s=4)
    assert version == 1
    assert a.of("lease_lost", note)[0]["reason"] == "idle"


async def test_nobody_waiting_means_no_hand_off_and_a_withdrawn_warning(
    idle_cluster: Cluster,
) -> None:
    h0, h1 = idle_cluster.hubs
    note, _, a, b, fence = await holder_and_waiter(idle_cluster)
    async with heartbeating((h0, a), (h1, b)):
        await until(lambda: bool(a.of("idle_warning", note)), within_s=3)
        await h1.tokens.release(b, note, None, 3)  # the waiter gives up
        await until(lambda: len(a.of("idle_warning", note)) == 2, within_s=3)
        assert a.of("idle_warning", note)[1]["handoff_in_ms"] is None
        await settle(IDLE_S)
        assert not a.of("lease_lost")
        assert await type_into(h0, a, note, fence, 0, "still mine") == 1


async def test_zero_turns_the_hand_off_off(store: Store) -> None:
    cluster = await Cluster(store, idle_handoff_s=0.0).start()
    try:
        h0, h1 = cluster.hubs
        note, _, a, b, _ = await holder_and_waiter(cluster)
        async with heartbeating((h0, a), (h1, b)):
            await settle(1.0)
        assert not a.of("idle_warning") and not a.of("lease_lost") and not b.of("granted")
        with pytest.raises(Fenced):
            h0.handoff.keep(b, note, 1)
        assert h0.handoff.keep(a, note, 1)["handoff_in_ms"] is None
    finally:
        await cluster.close()


async def test_a_request_reaches_the_holder_on_another_replica_at_once(
    idle_cluster: Cluster,
) -> None:
    h1 = idle_cluster.hubs[1]
    note, alice, a, b, _ = await holder_and_waiter(idle_cluster)
    reply = await h1.handoff.request(b, note, 9)
    assert reply == {"type": "requested", "rid": 9, "note": note, "holder": alice.brief()}
    await until(lambda: bool(a.of("edit_request", note)), within_s=1)
    assert a.of("edit_request", note) == [
        {"type": "edit_request", "note": note, "from": b.user.brief()}
    ]
    assert not b.of("edit_request")
    with pytest.raises(RateLimited) as refused:
        await h1.handoff.request(b, note, 10)
    assert 0 < refused.value.extra["retry_after_ms"] <= 5000
    # Asking does not move the token.
    assert not b.of("granted") and not a.of("lease_lost")


async def test_a_request_needs_write_access(idle_cluster: Cluster) -> None:
    h1 = idle_cluster.hubs[1]
    note, _, _, _, _ = await holder_and_waiter(idle_cluster)
    reader = await idle_cluster.connect(h1, await idle_cluster.user())
    with pytest.raises(Exception) as refused:
        await h1.handoff.request(reader, note, 1)
    assert getattr(refused.value, "code", "") in ("forbidden", "not_found")


async def test_the_holders_caret_reaches_viewers_elsewhere_paced(idle_cluster: Cluster) -> None:
    h0, h1 = idle_cluster.hubs
    note, alice, a, _, fence = await holder_and_waiter(idle_cluster)
    viewer_user = await idle_cluster.user()
    await idle_cluster.store.set_access(note, viewer_user.id, "read")
    viewer = await idle_cluster.connect(h1, viewer_user)
    await h1.subscribe(viewer, note, 1)
    await h0.subscribe(a, note, 1)
    for head in range(1, 11):  # ten moves at once: the first now, the last one paced
        await h0.handoff.caret(a, Caret(note, fence, 0, 0, head))
    await until(lambda: len(viewer.of("caret", note)) == 2, within_s=1)
    first, last = viewer.of("caret", note)
    assert first == {
        "type": "caret", "note": note, "holder": alice.brief(), "session": a.session,
        "fence": fence, "version": 0, "anchor": 0, "head": 1,
    }  # fmt: skip
    assert last["head"] == 10  # the latest position always arrives
    await settle(0.3)
    assert len(viewer.of("caret", note)) == 2
    assert not a.of("caret")  # not echoed to the holder
    with pytest.raises(Fenced):  # only the holder, with its current fence
        await h0.handoff.caret(a, Caret(note, fence + 1, 0, 0, 0))


async def test_a_held_back_caret_dies_with_the_token(idle_cluster: Cluster) -> None:
    h0, h1 = idle_cluster.hubs
    note, _, a, b, fence = await holder_and_waiter(idle_cluster)
    await h1.subscribe(b, note, 1)
    await h0.handoff.caret(a, Caret(note, fence, 0, 0, 1))
    await h0.handoff.caret(a, Caret(note, fence, 0, 0, 2))  # held back
    await h0.tokens.release(a, note, fence, 3)
    await settle(0.3)
    assert [c["head"] for c in b.of("caret", note)] == [1]


async def test_a_guest_sees_the_holders_caret_without_its_account(idle_cluster: Cluster) -> None:
    h0, h1 = idle_cluster.hubs
    note, alice, a, _, fence = await holder_and_waiter(idle_cluster)
    await idle_cluster.store.update_note(note, None, "public")
    guest = await idle_cluster.connect(h1, User("g-" + uuid.uuid4().hex[:8], "visitor", "guest"))
    await h1.subscribe(guest, note, 1)
    await h0.handoff.caret(a, Caret(note, fence, 0, 2, 3))
    await until(lambda: bool(guest.of("caret", note)), within_s=1)
    seen = guest.of("caret", note)[0]
    assert seen["holder"]["name"] == alice.name
    assert alice.id not in str(seen) and a.session not in str(seen)
    assert (seen["anchor"], seen["head"], seen["fence"]) == (2, 3, fence)
