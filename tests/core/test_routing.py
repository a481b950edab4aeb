"""Per-topic routing across two replicas (docs/design.md, Routing): a replica
hears the events of the notes it serves a subscriber, holder or waiter of, and
of the sessions and users it has sockets of, and nothing else; it stops
hearing a note once nothing of it is left there."""

from __future__ import annotations

from collab.events import note_topic, session_topic, user_topic
from tests.core.cluster import Cluster, settle, type_into, until


async def test_each_replica_hears_only_what_it_serves(cluster: Cluster) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    mine, theirs = await cluster.note(owner), await cluster.note(owner)
    writer = await cluster.connect(h0, owner)
    reader = await cluster.connect(h1, owner)
    await h0.subscribe(writer, mine.id, 1)
    await h1.subscribe(reader, theirs.id, 2)
    fence = (await h0.tokens.acquire(writer, mine.id, False, 3))["fence"]
    before = cluster.buses[1].topics.copy()
    for base in range(5):
        await type_into(h0, writer, mine.id, fence, base, "x")
    await settle(0.1)
    assert note_topic(mine.id) not in before
    assert {note_topic(theirs.id), session_topic(reader.session), user_topic(owner.id)} <= before
    # Replica 1 serves no one on ``mine``: none of its edits, locks or presence reach it.
    assert not [e for e in cluster.received(1) if e.get("note") == mine.id]
    assert len([e for e in cluster.received(0) if e.get("t") == "edited"]) == 5


async def test_a_waiter_elsewhere_hears_the_release_and_unsubscribing_stops_the_stream(
    cluster: Cluster,
) -> None:
    h0, h1 = cluster.hubs
    owner = await cluster.user()
    note = await cluster.note(owner)
    holder = await cluster.connect(h0, owner)
    waiter = await cluster.connect(h1, owner)  # not subscribed to the note on replica 1
    fence = (await h0.tokens.acquire(holder, note.id, False, 1))["fence"]
    assert (await h1.tokens.acquire(waiter, note.id, True, 2))["type"] == "queued"
    assert note_topic(note.id) in cluster.buses[1].topics
    await h0.tokens.release(holder, note.id, fence, 3)
    # Handed over through the lock event, well before the waiters' poll (TTL/3).
    await until(lambda: bool(waiter.of("granted", note.id)), within_s=0.08)
    await h1.tokens.release(waiter, note.id, None, 4)
    await until(lambda: note_topic(note.id) not in cluster.buses[1].topics, within_s=2)
