"""Store contract: notes, access grants and who may list what."""

from __future__ import annotations

import asyncio

import pytest

from collab.errors import NotFound
from collab.store import Store
from collab.types import Grant, Note, User
from tests.store.helpers import insert, make_note, make_user

# The session every test fence is granted to (commits must come from it).
HOLDER = "s-holder"


async def test_create_get_update_delete_note(store: Store) -> None:
    owner = await make_user(store, "owner")
    note = await store.create_note(owner.id, "First", "body", "private")
    assert (note.owner_id, note.title, note.content, note.visibility) == (
        owner.id, "First", "body", "private",
    )  # fmt: skip
    assert (note.version, note.fence) == (0, 0)
    assert note.created_at == note.updated_at and note.created_at.endswith("Z")
    assert await store.get_note(note.id) == note
    assert await store.get_note_replica(note.id) == note
    assert await store.get_note("0" * 32) is None

    await asyncio.sleep(0.002)  # updated_at must move; timestamps have microseconds
    renamed = await store.update_note(note.id, "Renamed", None)
    assert (renamed.title, renamed.visibility, renamed.version) == ("Renamed", "private", 0)
    assert renamed.updated_at > note.updated_at
    public = await store.update_note(note.id, None, "public")
    assert (public.title, public.visibility) == ("Renamed", "public")
    with pytest.raises(NotFound):
        await store.update_note("0" * 32, "x", None)

    await store.delete_note(note.id)
    assert await store.get_note(note.id) is None
    with pytest.raises(NotFound):
        await store.delete_note(note.id)


async def test_create_note_writes_revision_zero(store: Store) -> None:
    owner = await make_user(store, "owner")
    note = await make_note(store, owner, "v0 text")
    [rev] = await store.list_revisions(note.id)
    assert (rev.version, rev.content, rev.title, rev.by_id) == (0, "v0 text", "title", owner.id)


async def test_create_note_for_unknown_owner(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.create_note("0" * 32, "t", "", "private")


async def test_delete_note_removes_everything_hanging_off_it(store: Store) -> None:
    owner = await make_user(store, "owner")
    reader = await make_user(store, "reader")
    note = await make_note(store, owner, "abc")
    other = await make_note(store, owner, "keep")
    await store.set_access(note.id, reader.id, "read")
    await store.advance_fence(note.id, 1, HOLDER, owner)
    await store.commit_edit(note.id, 1, 0, "op1", insert(3, "d"), owner, 100, holder=HOLDER)
    await store.save_revision(note.id, owner.id)
    await store.record_lock_event(note.id, "granted", "s1", owner.id, 1)
    await store.record_lock_event(other.id, "granted", "s1", owner.id, 1)
    await store.delete_note(note.id)
    assert await store.list_access(note.id) == []
    assert await store.list_revisions(note.id) == []
    assert await store.lock_events(note.id) == []
    assert [e.note_id for e in await store.lock_events()] == [other.id]
    assert await store.get_revision(note.id, 1) is None
    assert await store.get_note(other.id) is not None


async def test_access_grants(store: Store) -> None:
    owner = await make_user(store, "owner")
    bob = await make_user(store, "bob")
    amy = await make_user(store, "amy")
    note = await make_note(store, owner)
    assert await store.get_access(note.id, bob.id) is None
    await store.set_access(note.id, bob.id, "read")
    assert await store.get_access(note.id, bob.id) == "read"
    await store.set_access(note.id, bob.id, "write")  # upsert
    assert await store.get_access(note.id, bob.id) == "write"
    await store.set_access(note.id, amy.id, "read")
    listed = await store.list_access(note.id)
    assert [(u.name, g) for u, g in listed] == [("amy", "read"), ("bob", "write")]
    assert await store.delete_access(note.id, bob.id) is True
    assert await store.delete_access(note.id, bob.id) is False
    assert await store.get_access(note.id, bob.id) is None


async def test_access_to_missing_note_or_user(store: Store) -> None:
    owner = await make_user(store, "owner")
    note = await make_note(store, owner)
    with pytest.raises(NotFound, match="user"):
        await store.set_access(note.id, "0" * 32, "read")
    with pytest.raises(NotFound, match="note"):
        await store.set_access("0" * 32, owner.id, "read")


async def test_list_notes_for_each_role(store: Store) -> None:
    alice = await make_user(store, "alice")
    bob = await make_user(store, "bob")
    admin = await make_user(store, "root", "admin")
    guest = User("guest-" + "1" * 26, "guest", "guest")
    private_a = await make_note(store, alice, "a-private")
    public_a = await make_note(store, alice, "a-public", "public")
    shared_a = await make_note(store, alice, "a-shared")
    private_b = await make_note(store, bob, "b-private")
    await store.set_access(shared_a.id, bob.id, "write")

    def ids(listed: list[tuple[Note, Grant | None]]) -> set[str]:
        return {n.id for n, _ in listed}

    everything = {private_a.id, public_a.id, shared_a.id, private_b.id}
    assert ids(await store.list_notes_for(admin)) == everything
    assert ids(await store.list_notes_for(alice)) == {private_a.id, public_a.id, shared_a.id}
    for_bob = await store.list_notes_for(bob)
    assert ids(for_bob) == {public_a.id, shared_a.id, private_b.id}
    grants = {n.id: g for n, g in for_bob}
    assert grants == {public_a.id: None, shared_a.id: "write", private_b.id: None}
    assert ids(await store.list_notes_for(guest)) == {public_a.id}
    # Content is included.
    assert {n.content for n, _ in await store.list_notes_for(guest)} == {"a-public"}


async def test_list_notes_newest_update_first(store: Store) -> None:
    alice = await make_user(store, "alice")
    first = await make_note(store, alice, "1")
    await asyncio.sleep(0.002)
    second = await make_note(store, alice, "2")
    await asyncio.sleep(0.002)
    listed = await store.list_notes_for(alice)
    assert [n.id for n, _ in listed] == [second.id, first.id]
    await store.update_note(first.id, "touched", None)
    listed = await store.list_notes_for(alice)
    assert [n.id for n, _ in listed] == [first.id, second.id]
