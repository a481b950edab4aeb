"""Store contract: revisions (saved and rebuilt from the edit log) and the
lock audit log."""

from __future__ import annotations

from collab.store import Store
from collab.types import EditPayload
from tests.store.helpers import insert, make_note, make_user

# The session every test fence is granted to (commits must come from it).
HOLDER = "s-holder"

MAX = 1000


async def test_save_revision_is_idempotent_per_version(store: Store) -> None:
    owner = await make_user(store, "o")
    editor = await make_user(store, "e")
    note = await make_note(store, owner, "a")
    await store.set_access(note.id, editor.id, "write")
    await store.advance_fence(note.id, 1, HOLDER, editor)
    await store.commit_edit(note.id, 1, 0, "op-1", insert(1, "b"), editor, MAX, holder=HOLDER)
    saved = await store.save_revision(note.id, editor.id)
    assert (saved.version, saved.content, saved.title, saved.by_id) == (1, "ab", "title", editor.id)
    again = await store.save_revision(note.id, owner.id)
    assert again == saved  # the first save of a version wins
    revisions = await store.list_revisions(note.id)
    assert [r.version for r in revisions] == [1, 0]  # newest first
    assert await store.get_revision(note.id, 1) == saved


async def test_get_revision_rebuilds_from_the_log(store: Store) -> None:
    owner = await make_user(store, "o")
    note = await make_note(store, owner, "")
    await store.advance_fence(note.id, 1, HOLDER, owner)
    texts = [""]
    for i in range(6):
        payload = EditPayload(content="reset") if i == 3 else insert(len(texts[-1]), str(i))
        result = await store.commit_edit(
            note.id, 1, i, f"op-{i}", payload, owner, MAX, holder=HOLDER
        )
        texts.append(result.content)
        if i == 1:
            await store.save_revision(note.id, owner.id)  # revision at version 2
    for version, text in enumerate(texts):
        rev = await store.get_revision(note.id, version)
        assert rev is not None and (rev.version, rev.content) == (version, text), version
        assert rev.note_id == note.id
    rebuilt = await store.get_revision(note.id, 4)
    assert rebuilt is not None and rebuilt.by_id == owner.id and rebuilt.created_at.endswith("Z")
    assert await store.get_revision(note.id, 7) is None  # beyond the current version
    assert await store.get_revision(note.id, -1) is None
    assert await store.get_revision("0" * 32, 0) is None
    # Only explicitly saved revisions are listed.
    assert [r.version for r in await store.list_revisions(note.id)] == [2, 0]


async def test_lock_events_oldest_first_filtered_by_note(store: Store) -> None:
    owner = await make_user(store, "o")
    n1 = await make_note(store, owner)
    n2 = await make_note(store, owner)
    await store.record_lock_event(n1.id, "granted", "s1", owner.id, 1)
    await store.record_lock_event(n2.id, "queued", "s2", owner.id, 0, "behind s1")
    await store.record_lock_event(n1.id, "released", "s1", owner.id, 1)
    every = await store.lock_events()
    assert [(e.note_id, e.kind) for e in every] == [
        (n1.id, "granted"), (n2.id, "queued"), (n1.id, "released"),
    ]  # fmt: skip
    assert every[0].id < every[1].id < every[2].id
    assert every[1].detail == "behind s1" and every[0].detail == ""
    assert every[0].at.endswith("Z") and every[0].session == "s1" and every[0].fence == 1
    assert [e.kind for e in await store.lock_events(n1.id)] == ["granted", "released"]
    assert await store.lock_events("0" * 32) == []
