"""Edit delivery per viewer: consecutive versions, whatever the bus loses and
whoever subscribes in between (rule 7)."""

from __future__ import annotations

from collab.types import User
from tests.core.cluster import Cluster, FakePeer, settle, type_into, until


async def test_a_new_subscriber_does_not_make_other_viewers_skip_edits(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, "public")
    writer = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(writer, note.id, False, 1))["fence"]
    early = await cluster.connect(h1, await cluster.user())
    await h1.subscribe(early, note.id, 1)
    cluster.buses[1].partition()  # h1 misses the next events
    await type_into(h0, writer, note.id, fence, 0, "a")
    await type_into(h0, writer, note.id, fence, 1, "b")
    late = await cluster.connect(h1, await cluster.user())
    await h1.subscribe(late, note.id, 1)  # its snapshot is at version 2
    cluster.buses[1].heal()
    await settle()
    await type_into(h0, writer, note.id, fence, 2, "c")
    await until(lambda: 3 in early.versions(note.id))
    assert early.versions(note.id) == [1, 2, 3]
    await until(lambda: 3 in late.versions(note.id))
    assert late.versions(note.id) == [3]


async def test_sync_and_live_pushes_never_repeat_or_reorder(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, "public")
    writer = await cluster.connect(h0, owner)
    fence = (await h0.tokens.acquire(writer, note.id, False, 1))["fence"]
    viewer = await cluster.connect(h1, await cluster.user())
    await h1.subscribe(viewer, note.id, 1)
    for base in range(10):
        await type_into(h0, writer, note.id, fence, base, "x")
        if base % 3 == 0:
            await h1.edits.sync(viewer, note.id, h1.sockets.delivered(viewer, note.id) or 0, base)
    await until(lambda: 10 in viewer.versions(note.id))
    assert viewer.versions(note.id) == list(range(1, 11))


async def test_making_a_note_private_closes_only_its_readers_who_lost_access(
    cluster: Cluster,
) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, "public")
    other_note = await cluster.note(owner, "public")
    reader = await cluster.connect(h1, await cluster.user())
    await h1.subscribe(reader, note.id, 1)
    writer_user = await cluster.user()
    await cluster.store.set_access(note.id, writer_user.id, "write")
    writer = await cluster.connect(h1, writer_user)
    await h1.subscribe(writer, note.id, 1)
    guest = await cluster.connect(h0, User("g" * 32, "visitor", "guest"))
    await h0.subscribe(guest, other_note.id, 1)
    by_owner = await cluster.connect(h0, owner)
    await h0.subscribe(by_owner, note.id, 1)
    await cluster.store.update_note(note.id, None, "private")
    await h0.revocations.note_visibility_changed(note.id)
    await until(lambda: reader.closed is not None)
    assert reader.closed == (4403, "access revoked")
    await settle(0.1)
    assert writer.closed is None and guest.closed is None and by_owner.closed is None


async def test_a_guest_never_gets_the_authors_account_id(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, visibility="public")
    writer = await cluster.connect(h0, owner)
    guest = await cluster.connect(h1, User("g-visitor", "visitor", "guest"))
    await h1.subscribe(guest, note.id, 1)
    fence = (await h0.tokens.acquire(writer, note.id, False, 2))["fence"]
    await type_into(h0, writer, note.id, fence, 0, "hello")
    await until(lambda: bool(guest.of("edited", note.id)))
    reader = await cluster.connect(h1, User("g-reader", "reader", "guest"))  # not subscribed
    await h1.edits.sync(reader, note.id, 0, 3)
    changes = reader.of("changes", note.id)
    assert changes and changes[0]["edits"]
    for frame in [*guest.of("edited", note.id), *changes[0]["edits"]]:
        assert frame["by"]["name"] == owner.name and frame["by"]["id"].startswith("anon-")
    assert owner.id not in str(guest.frames) + str(reader.frames)


async def test_the_writers_ack_goes_out_before_its_edits_fan_out(cluster: Cluster) -> None:
    """With many viewers on the writer's replica the writer must not wait for
    all their pushes: its ack is the first frame out after the commit."""
    h0, _ = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner, "public")
    order: list[tuple[str, str]] = []  # (socket, frame type), as pushed

    def recording(peer: FakePeer) -> FakePeer:
        push = peer.push

        def record(frame: str) -> None:
            push(frame)
            order.append((peer.socket_id, peer.frames[-1]["type"]))

        peer.push = record  # type: ignore[method-assign]
        return peer

    writer = recording(await cluster.connect(h0, owner))
    await h0.subscribe(writer, note.id, 1)
    viewers = [recording(await cluster.connect(h0, await cluster.user())) for _ in range(5)]
    for viewer in viewers:
        await h0.subscribe(viewer, note.id, 1)
    fence = (await h0.tokens.acquire(writer, note.id, False, 1))["fence"]
    order.clear()
    assert await type_into(h0, writer, note.id, fence, 0, "a") == 1
    kinds = [(who == writer.socket_id, kind) for who, kind in order if kind in ("ack", "edited")]
    assert kinds[0] == (True, "ack")
    assert sorted(kinds[1:]) == [(False, "edited")] * len(viewers)
    assert writer.versions(note.id) == [], "the writer is not sent its own edit"
