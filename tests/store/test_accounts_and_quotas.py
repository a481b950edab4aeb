"""Store contract: accounts (password, disable, delete) and per-user storage
quotas checked inside the store's own transaction (docs/protocol.md,
"Storage quotas and edit-log retention"; collab/store/quotas.py)."""

from __future__ import annotations

import asyncio

import pytest

from collab.errors import Forbidden, NotFound, QuotaExceeded
from collab.store import Store
from collab.store.quotas import Quotas
from collab.types import EditPayload, User
from tests.store.helpers import insert, make_note, make_user

MAX = 10_000


async def _grant(store: Store, note_id: str, user: User, session: str) -> int:
    fence = await store.get_fence(note_id) + 1
    assert (await store.advance_fence(note_id, fence, session, user)).raised
    return fence


# -- accounts -----------------------------------------------------------------
async def test_set_password_replaces_the_hash(store: Store) -> None:
    user = await make_user(store, "pw")
    await store.set_password(user.id, "new-hash")
    record = await store.get_user(user.id)
    assert record is not None and record.password_hash == "new-hash"
    by_name = await store.get_user_by_name("PW")
    assert by_name is not None and by_name.password_hash == "new-hash"
    with pytest.raises(NotFound):
        await store.set_password("0" * 32, "x")


async def test_a_disabled_account_can_neither_be_granted_nor_commit(store: Store) -> None:
    owner = await make_user(store, "owner")
    note = await make_note(store, owner, "abc")
    fence = await _grant(store, note.id, owner, "s1")
    record = await store.set_disabled(owner.id, True)
    assert record.disabled and record.wire()["disabled"] is True
    got = await store.get_user(owner.id)
    assert got is not None and got.disabled
    # The fence was granted before: the stored state still refuses the commit.
    with pytest.raises(Forbidden):
        await store.commit_edit(note.id, fence, 0, "op", insert(0, "x"), owner, MAX, holder="s1")
    with pytest.raises(Forbidden):
        await store.advance_fence(note.id, fence + 1, "s2", owner)
    assert (await store.get_note(note.id)).version == 0  # type: ignore[union-attr]
    enabled = await store.set_disabled(owner.id, False)
    assert not enabled.disabled
    result = await store.commit_edit(
        note.id, fence, 0, "op", insert(0, "x"), owner, MAX, holder="s1"
    )
    assert result.version == 1
    with pytest.raises(NotFound):
        await store.set_disabled("0" * 32, True)


async def test_disabled_admins_do_not_count(store: Store) -> None:
    a = await make_user(store, "a1", "admin")
    await make_user(store, "a2", "admin")
    assert await store.count_admins() == 2
    await store.set_disabled(a.id, True)
    assert await store.count_admins() == 1
    assert [u.disabled for u in await store.list_users()] == [True, False]


async def test_delete_user_takes_their_notes_and_grants(store: Store) -> None:
    gone = await make_user(store, "gone")
    other = await make_user(store, "other")
    mine = [await make_note(store, gone, "one"), await make_note(store, gone, "two")]
    theirs = await make_note(store, other, "shared")
    await store.set_access(theirs.id, gone.id, "write")
    fence = await _grant(store, theirs.id, gone, "s-gone")
    await store.commit_edit(theirs.id, fence, 0, "op-g", insert(0, ">"), gone, MAX, holder="s-gone")
    await store.record_lock_event(mine[0].id, "granted", "s", gone.id, 1)

    deleted = await store.delete_user(gone.id)

    assert sorted(deleted) == sorted(n.id for n in mine)
    assert await store.get_user(gone.id) is None
    for note in mine:
        assert await store.get_note(note.id) is None
    assert await store.lock_events(mine[0].id) == []
    assert await store.list_access(theirs.id) == []
    # Their edit to another's note stays in that note's log and text.
    edits = await store.edits_since(theirs.id, 0, 10)
    assert edits is not None and [e.by.id for e in edits] == [gone.id]
    assert (await store.get_note(theirs.id)).content == ">shared"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await store.delete_user(gone.id)
    # The name is free again.
    await make_user(store, "GONE")


# -- quotas ---------------------------------------------------------------------
async def test_note_count_quota_is_per_owner_and_admins_are_exempt(store: Store) -> None:
    store.quotas = Quotas(max_notes=2)
    user = await make_user(store, "u")
    admin = await make_user(store, "boss", "admin")
    first = await make_note(store, user)
    await make_note(store, user)
    with pytest.raises(QuotaExceeded) as refused:
        await make_note(store, user)
    assert refused.value.extra == {"quota": "notes", "limit": 2}
    assert refused.value.status == 403 and refused.value.code == "quota_exceeded"
    assert len(await store.list_notes_for(user)) == 2  # nothing written
    for _ in range(3):
        await make_note(store, admin)
    await store.delete_note(first.id)
    await make_note(store, user)  # room again


async def test_byte_quota_at_create_and_edit_charges_the_owner(store: Store) -> None:
    store.quotas = Quotas(max_bytes=10)
    owner = await make_user(store, "owner")
    editor = await make_user(store, "editor")
    with pytest.raises(QuotaExceeded) as refused:
        await make_note(store, owner, "x" * 11)
    assert refused.value.extra == {"quota": "bytes", "limit": 10}
    note = await make_note(store, owner, "é" * 4)  # 8 UTF-8 bytes
    await store.set_access(note.id, editor.id, "write")
    fence = await _grant(store, note.id, editor, "s-ed")
    # The grantee types, the owner pays: 8 + 2 bytes is the limit exactly.
    ok = await store.commit_edit(note.id, fence, 0, "op1", insert(0, "ab"), editor, MAX,
                                 holder="s-ed")  # fmt: skip
    assert ok.version == 1
    with pytest.raises(QuotaExceeded):
        await store.commit_edit(note.id, fence, 1, "op2", insert(0, "c"), editor, MAX,
                                holder="s-ed")  # fmt: skip
    # Refused before commit: version, text and log unchanged.
    after = await store.get_note(note.id)
    assert after is not None and (after.version, after.content) == (1, "abéééé")
    assert [e.version for e in await store.edits_since(note.id, 0, 10) or []] == [1]
    # Shrinking is always allowed, and frees room.
    await store.commit_edit(note.id, fence, 1, "op3", insert(0, "", 2), editor, MAX,
                            holder="s-ed")  # fmt: skip
    await store.commit_edit(note.id, fence, 2, "op4", insert(0, "zz"), editor, MAX,
                            holder="s-ed")  # fmt: skip
    # The editor's own quota is untouched: they own nothing.
    await make_note(store, editor, "y" * 10)


async def test_whole_text_edits_count_their_new_size(store: Store) -> None:
    store.quotas = Quotas(max_bytes=6)
    owner = await make_user(store, "o")
    note = await make_note(store, owner, "abc")
    fence = await _grant(store, note.id, owner, "s")
    with pytest.raises(QuotaExceeded):
        await store.commit_edit(note.id, fence, 0, "a", EditPayload(content="1234567"), owner,
                                MAX, holder="s")  # fmt: skip
    await store.commit_edit(note.id, fence, 0, "b", EditPayload(content="123456"), owner, MAX,
                            holder="s")  # fmt: skip
    # Deleting the note gives its bytes back.
    await store.delete_note(note.id)
    await make_note(store, owner, "654321")


async def test_an_owner_over_a_lowered_quota_can_still_shrink(store: Store) -> None:
    owner = await make_user(store, "o")
    note = await make_note(store, owner, "0123456789")
    store.quotas = Quotas(max_bytes=5, max_notes=1)
    fence = await _grant(store, note.id, owner, "s")
    with pytest.raises(QuotaExceeded):
        await store.commit_edit(note.id, fence, 0, "grow", insert(0, "x"), owner, MAX, holder="s")
    result = await store.commit_edit(
        note.id, fence, 0, "cut", insert(0, "", 1), owner, MAX, holder="s"
    )
    assert result.content == "123456789"
    with pytest.raises(QuotaExceeded):
        await make_note(store, owner, "")


async def test_concurrent_creates_cannot_pass_the_note_quota(store: Store) -> None:
    store.quotas = Quotas(max_notes=3)
    user = await make_user(store, "racer")
    results = await asyncio.gather(
        *(make_note(store, user, f"n{i}") for i in range(12)), return_exceptions=True
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert (len(made), len(refused)) == (3, 9), results
    assert len(await store.list_notes_for(user)) == 3


async def test_concurrent_edits_of_one_owners_notes_cannot_pass_the_byte_quota(
    store: Store,
) -> None:
    store.quotas = Quotas(max_bytes=100)
    owner = await make_user(store, "owner")
    writers = [await make_user(store, f"w{i}") for i in range(6)]
    grants = []
    for i, writer in enumerate(writers):
        note = await make_note(store, owner, "")
        await store.set_access(note.id, writer.id, "write")
        grants.append((note.id, writer, await _grant(store, note.id, writer, f"s{i}"), f"s{i}"))

    async def grow(note_id: str, writer: User, fence: int, session: str) -> int:
        result = await store.commit_edit(
            note_id, fence, 0, "op", insert(0, "x" * 30), writer, MAX, holder=session
        )
        return result.version

    results = await asyncio.gather(*(grow(*g) for g in grants), return_exceptions=True)
    committed = [r for r in results if r == 1]
    assert len(committed) == 3, results  # 3 x 30 bytes fit in 100, a fourth does not
    assert all(isinstance(r, QuotaExceeded) for r in results if r != 1)
    texts = [(await store.get_note(n)).content for n, *_ in grants]  # type: ignore[union-attr]
    assert sum(len(t) for t in texts) == 90
