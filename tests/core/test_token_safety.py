"""The write token under the interleavings that break it: a slow fence
commit while Redis lost its counter, a revoke with the counter behind, access
removed without the event arriving, a failed grant at the head of the queue,
a resume in the middle of a queue, a release naming the wrong fence. Each
test drives replicas in one process (``tests/core/cluster.py``) so the
interleaving is exact rather than hoped for."""

from __future__ import annotations

import asyncio

import pytest

from collab.errors import BadRequest, Fenced, Forbidden, Locked, Unavailable
from collab.store.base import Store
from tests.core.cluster import Cluster, settle, type_into, until


async def test_a_grant_counts_only_if_it_raised_the_fence(cluster: Cluster) -> None:
    """Redis loses the counter while one replica's fence commit is slow: the
    same fence comes out of Redis twice, and only one grant may count."""
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, "public")
    other = await cluster.user("admin")
    a = await cluster.connect(h0, owner)
    b = await cluster.connect(h1, other)
    slow = cluster.stores[0].gate("advance_fence")
    first = asyncio.create_task(h0.tokens.acquire(a, note.id, False, 1))
    await cluster.stores[0].entered["advance_fence"].wait()
    cluster.leases._notes.clear()  # Redis restarted empty: counter and lease gone
    granted_b = await h1.tokens.acquire(b, note.id, False, 2)
    assert granted_b["type"] == "granted" and granted_b["fence"] == 1
    slow.set()
    outcome = await asyncio.gather(first, return_exceptions=True)
    reply = outcome[0]
    if isinstance(reply, dict) and reply["type"] == "granted":
        assert reply["fence"] != granted_b["fence"], "the same fence was granted twice"
    assert not any(h["fence"] == 1 for h in h0.tokens.leases_of(a.session))
    await type_into(h1, b, note.id, 1, 0, "b")
    # Even a client that writes with fence 1 anyway is refused: the fence
    # belongs to B's session.
    with pytest.raises(Fenced):
        await type_into(h0, a, note.id, 1, 1, "a")


async def test_revoke_moves_the_database_fence_when_the_counter_is_behind(
    cluster: Cluster,
) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    admin = await cluster.user("admin")
    a = await cluster.connect(h0, owner)
    granted = await h0.tokens.acquire(a, note.id, False, 1)
    assert granted["fence"] == 1
    cluster.leases._notes[note.id].fence = 0  # the counter key was evicted
    fence = await h1.tokens.revoke(admin, note.id)
    assert fence > 1
    assert await cluster.store.get_fence(note.id) == fence
    with pytest.raises(Fenced):
        await type_into(h0, a, note.id, 1, 0, "still writing")


async def test_a_writer_whose_grant_was_removed_cannot_edit_even_if_the_event_is_lost(
    cluster: Cluster,
) -> None:
    h0, _ = cluster.hubs
    owner = await cluster.user()
    writer = await cluster.user()
    note = await cluster.note(owner)
    await cluster.store.set_access(note.id, writer.id, "write")
    w = await cluster.connect(h0, writer)
    await h0.subscribe(w, note.id, 1)
    fence = (await h0.tokens.acquire(w, note.id, False, 2))["fence"]
    await type_into(h0, w, note.id, fence, 0, "ok ")
    await cluster.store.delete_access(note.id, writer.id)  # no event published
    with pytest.raises(Forbidden):
        await type_into(h0, w, note.id, fence, 1, "not any more")
    with pytest.raises(Forbidden):
        await h0.edits.sync(w, note.id, 0, 3)


async def test_a_demoted_admin_can_no_longer_acquire_or_edit(cluster: Cluster) -> None:
    h0, _ = cluster.hubs
    owner = await cluster.user()
    admin = await cluster.user("admin")
    note = await cluster.note(owner)
    a = await cluster.connect(h0, admin)
    fence = (await h0.tokens.acquire(a, note.id, False, 1))["fence"]
    await cluster.store.set_role(admin.id, "user")  # no event published
    with pytest.raises(Forbidden):
        await type_into(h0, a, note.id, fence, 0, "x")
    await h0.tokens.release(a, note.id, fence, 2)
    with pytest.raises(Forbidden):
        await h0.tokens.acquire(a, note.id, False, 3)


async def test_a_waiter_that_lost_write_access_is_skipped_not_granted(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    lost = await cluster.user()
    keeps = await cluster.user()
    note = await cluster.note(owner)
    for u in (lost, keeps):
        await cluster.store.set_access(note.id, u.id, "write")
    holder = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(holder, note.id, False, 1))["fence"]
    p_lost = await cluster.connect(h1, lost)
    p_keeps = await cluster.connect(h1, keeps)
    assert (await h1.tokens.acquire(p_lost, note.id, True, 2))["type"] == "queued"
    assert (await h1.tokens.acquire(p_keeps, note.id, True, 3))["type"] == "queued"
    await cluster.store.delete_access(note.id, lost.id)  # no event published
    await h0.tokens.release(holder, note.id, fence, 4)
    await until(lambda: bool(p_keeps.of("granted")))
    assert not p_lost.of("granted")
    assert p_lost.of("error") and p_lost.of("error")[0]["code"] == "forbidden"


async def test_a_failed_grant_keeps_the_waiter_at_the_head_of_the_queue(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    first_user, second_user = await cluster.user(), await cluster.user()
    note = await cluster.note(owner)
    for u in (first_user, second_user):
        await cluster.store.set_access(note.id, u.id, "write")
    holder = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(holder, note.id, False, 1))["fence"]
    first = await cluster.connect(h1, first_user)
    second = await cluster.connect(h0, second_user)
    await h1.tokens.acquire(first, note.id, True, 2)
    await h0.tokens.acquire(second, note.id, True, 3)
    # The head waiter's grant hits a statement timeout once.
    cluster.stores[1].fail_once("advance_fence", Unavailable("the database is busy"))
    await h0.tokens.release(holder, note.id, fence, 4)
    await until(lambda: bool(first.of("granted") or second.of("granted")), 5.0)
    await settle(0.2)
    assert first.of("granted"), "the head waiter lost its place"
    assert not second.of("granted")


async def test_a_queued_session_that_resumes_elsewhere_keeps_its_place(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    waiter = await cluster.user()
    note = await cluster.note(owner)
    await cluster.store.set_access(note.id, waiter.id, "write")
    holder = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(holder, note.id, False, 1))["fence"]
    before = await cluster.connect(h0, waiter)
    assert (await h0.tokens.acquire(before, note.id, True, 2))["type"] == "queued"
    await h0.detach(before)  # socket cut (a drain, a reload)
    after = await cluster.connect(h1, waiter, resume=before.session)
    assert after.session == before.session
    await h0.tokens.release(holder, note.id, fence, 3)
    await until(lambda: bool(after.of("granted")), 5.0)


async def test_closing_the_socket_keeps_the_token_for_a_resume(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    before = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(before, note.id, False, 1))["fence"]
    await h0.detach(before)  # a browser reload closes with 1001
    after = await cluster.connect(h1, owner, resume=before.session)
    assert h1.tokens.leases_of(after.session)[0]["fence"] == fence
    await type_into(h1, after, note.id, fence, 0, "still mine")


async def test_release_with_a_fence_that_is_not_ours_changes_nothing(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    other = await cluster.user("admin")
    note = await cluster.note(owner)
    a = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(a, note.id, False, 1))["fence"]
    with pytest.raises(BadRequest):
        await h0.tokens.release(a, note.id, fence + 7, 2)
    assert h0.tokens.leases_of(a.session)[0]["fence"] == fence
    b = await cluster.connect(h1, other)
    with pytest.raises(Locked):
        await h1.tokens.acquire(b, note.id, False, 3)


async def test_a_registry_failure_fails_the_grant_and_frees_the_lease(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    other = await cluster.user("admin")
    note = await cluster.note(owner)
    a = await cluster.connect(h0, owner)
    real_add = cluster.registry.add_note

    async def broken(session: str, note_id: str) -> None:
        raise Unavailable("registry down")

    cluster.registry.add_note = broken  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await h0.tokens.acquire(a, note.id, False, 1)
    cluster.registry.add_note = real_add  # type: ignore[method-assign]
    assert not h0.tokens.leases_of(a.session)
    b = await cluster.connect(h1, other)
    assert (await h1.tokens.acquire(b, note.id, False, 2))["type"] == "granted"


async def test_deleting_a_note_removes_its_lease_state(cluster: Cluster) -> None:
    h0, _ = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    a = await cluster.connect(h0, owner)
    await h0.tokens.acquire(a, note.id, False, 1)
    await cluster.store.delete_note(note.id)
    await h0.revocations.note_deleted(note.id)
    assert note.id not in cluster.leases._notes


async def test_per_note_state_is_dropped_when_nobody_is_subscribed(cluster: Cluster) -> None:
    h0, _ = cluster.hubs
    owner = await cluster.user()
    p = await cluster.connect(h0, owner)
    for _ in range(20):
        note = await cluster.note(owner)
        await h0.subscribe(p, note.id, 1)
        fence = (await h0.tokens.acquire(p, note.id, False, 2))["fence"]
        await type_into(h0, p, note.id, fence, 0, "x")
        await h0.tokens.release(p, note.id, fence, 3)
        await h0.unsubscribe(p, note.id)
    assert h0.edits.lock_count == 0
    assert not h0.sockets.notes() and not h0.sockets.known_notes()
    assert not h0.tokens.held and not h0.tokens.waiting


async def test_the_pause_after_a_lost_counter_holds_on_every_replica(cluster: Cluster) -> None:
    """Redis restarts empty while A holds the token through h0. h1 never
    learns of the loss from its own epoch check; its first grant attempt finds
    the counter behind the database and the pause then binds every replica."""
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    admin1, admin2 = await cluster.user("admin"), await cluster.user("admin")
    a = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(a, note.id, False, 1))["fence"]
    cluster.leases._notes.clear()  # Redis restarted empty
    lost_at = asyncio.get_running_loop().time()
    b = await cluster.connect(h1, admin1)
    with pytest.raises(Unavailable):
        await h1.tokens.acquire(b, note.id, False, 2)
    c = await cluster.connect(h0, admin2)
    assert (await h0.tokens.acquire(c, note.id, True, 3))["type"] == "queued"
    await until(lambda: bool(c.of("granted")), 5.0)
    waited = asyncio.get_running_loop().time() - lost_at
    pause_s = (cluster.settings.lease_ttl_ms + cluster.settings.lock_delay_ms) / 1000
    assert waited >= pause_s * 0.9
    assert c.of("granted")[0]["fence"] > fence
    with pytest.raises(Fenced):
        await type_into(h0, a, note.id, fence, 0, "stale")


async def test_an_in_process_lease_store_restart_does_not_pause(store: Store) -> None:
    """Embedded mode: the in-process leases die only with their process, and
    every holder's socket with them, so the first claim after a restart is
    granted at once (with a fence above every earlier one)."""
    cluster = await Cluster(store, replicas=1).start()
    try:
        cluster.leases.lost_holders_may_live = False
        (hub,) = cluster.hubs
        owner = await cluster.user()
        note = await cluster.note(owner)
        before = await cluster.connect(hub, owner)
        fence = (await hub.tokens.acquire(before, note.id, False, 1))["fence"]
        cluster.leases._notes.clear()  # the process restarted
        after = await cluster.connect(hub, owner)
        granted = await hub.tokens.acquire(after, note.id, False, 2)
        assert granted["type"] == "granted" and granted["fence"] > fence
    finally:
        await cluster.close()


async def test_a_stale_socket_does_not_take_the_token_out_of_the_shared_registry(
    cluster: Cluster,
) -> None:
    """The session resumed on h1 while h0 missed the news: h0's stale socket
    expires its old hold there, but must not remove the note from the
    session's shared record, or the next resume would not find its token."""
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    before = await cluster.connect(h0, owner)
    await h0.tokens.acquire(before, note.id, False, 1)
    cluster.buses[0].partition()  # h0 misses the "moved" event
    after = await cluster.connect(h1, owner, resume=before.session)
    for _ in range(8):  # past h0's local deadline, with h1 heartbeating
        await h1.heartbeat(after)
        await asyncio.sleep(cluster.settings.heartbeat_ms / 2000)
    await h0.tokens.expire_overdue()  # h0 gives up its stale hold
    assert not h0.tokens.leases_of(before.session)
    assert note.id in await cluster.registry.notes(after.session)
    cluster.buses[0].heal()
