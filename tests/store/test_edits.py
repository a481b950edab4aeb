"""Store contract: the fence and ``commit_edit`` (docs/design.md, rules 1-2)."""

from __future__ import annotations

import asyncio

import pytest

from collab.errors import BadRequest, Fenced, Forbidden, NotFound, Stale, TooLarge
from collab.store import Store
from collab.store.base import FenceAdvance
from collab.store.memory import MemoryStore
from collab.types import Change, EditPayload, User
from tests.store.helpers import insert, make_note, make_user

# The session every test fence is granted to (commits must come from it).
HOLDER = "s-holder"

MAX = 1000


async def _ready(store: Store, content: str = "hello") -> tuple[User, str]:
    """An owner and a note whose fence is 1."""
    owner = await make_user(store, "writer")
    note = await make_note(store, owner, content)
    assert (await store.advance_fence(note.id, 1, HOLDER, owner)).fence == 1
    return owner, note.id


async def test_advance_fence_only_increases(store: Store) -> None:
    owner = await make_user(store, "o")
    note = await make_note(store, owner)
    assert await store.get_fence(note.id) == 0

    async def advance(fence: int) -> FenceAdvance:
        return await store.advance_fence(note.id, fence, HOLDER, owner)

    assert await advance(5) == FenceAdvance(raised=True, fence=5)
    # lower: unchanged, current returned
    assert await advance(3) == FenceAdvance(raised=False, fence=5)
    # equal: unchanged, and not raised by this call (rule 1: it must not count)
    assert await advance(5) == FenceAdvance(raised=False, fence=5)
    assert await store.get_fence(note.id) == 5
    assert await advance(6) == FenceAdvance(raised=True, fence=6)
    assert (await store.get_note(note.id)).fence == 6  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await store.advance_fence("0" * 32, 1, HOLDER, owner)
    with pytest.raises(NotFound):
        await store.get_fence("0" * 32)


async def test_a_commit_names_the_timeline_it_was_made_on(store: Store) -> None:
    """Its bus event carries it: replicas drop edits of a timeline a failover
    abandoned (rule 10), so it is the commit's, not whatever the store has
    seen by the time the caller reads it."""
    owner, note_id = await _ready(store)
    done = await store.commit_edit(note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER)
    assert done.timeline == store.timeline
    again = await store.commit_edit(
        note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER
    )
    assert again.duplicate and again.timeline == store.timeline
    if isinstance(store, MemoryStore):  # the twin can fail over on the spot
        store.fail_over(store.tables)
        jumped = await store.advance_fence(note_id, 1, HOLDER, owner)  # the failover jump
        fence = (await store.advance_fence(note_id, jumped.fence + 1, HOLDER, owner)).fence
        later = await store.commit_edit(
            note_id, fence, 1, "op-2", insert(0, "b"), owner, MAX, holder=HOLDER
        )
        assert later.timeline == done.timeline + 1 == store.timeline


async def test_commit_applies_and_versions_are_consecutive(store: Store) -> None:
    owner, note_id = await _ready(store, "hello")
    r1 = await store.commit_edit(
        note_id, 1, 0, "op-1", insert(5, " world"), owner, MAX, holder=HOLDER
    )
    assert (r1.version, r1.duplicate, r1.content) == (1, False, "hello world")
    r2 = await store.commit_edit(
        note_id, 1, 1, "op-2", insert(0, "H", 1), owner, MAX, holder=HOLDER
    )
    assert (r2.version, r2.content) == (2, "Hello world")
    multi = EditPayload(changes=(Change(0, 0, ">"), Change(12, 0, "!")))
    r3 = await store.commit_edit(note_id, 1, 2, "op-3", multi, owner, MAX, holder=HOLDER)
    assert r3.content == ">Hello world!"
    r4 = await store.commit_edit(
        note_id, 1, 3, "op-4", EditPayload(content="new"), owner, MAX, holder=HOLDER
    )
    assert (r4.version, r4.content) == (4, "new")
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content, note.fence) == (4, "new", 1)
    assert note.updated_at > note.created_at


async def test_commit_missing_note(store: Store) -> None:
    owner = await make_user(store, "o")
    with pytest.raises(NotFound):
        await store.commit_edit("0" * 32, 1, 0, "op", insert(0, "x"), owner, MAX, holder=HOLDER)


async def test_commit_fenced_lower_and_higher(store: Store) -> None:
    owner, note_id = await _ready(store)
    await store.advance_fence(note_id, 2, HOLDER, owner)
    with pytest.raises(Fenced):  # a stale token
        await store.commit_edit(note_id, 1, 0, "op-a", insert(0, "x"), owner, MAX, holder=HOLDER)
    with pytest.raises(Fenced):  # a token never made durable: equality, not <=
        await store.commit_edit(note_id, 3, 0, "op-b", insert(0, "x"), owner, MAX, holder=HOLDER)
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content) == (0, "hello")
    assert await store.edits_since(note_id, 0, 10) == []


async def test_commit_stale_reports_current_version(store: Store) -> None:
    owner, note_id = await _ready(store)
    await store.commit_edit(note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER)
    with pytest.raises(Stale) as exc:
        await store.commit_edit(note_id, 1, 0, "op-2", insert(0, "b"), owner, MAX, holder=HOLDER)
    assert exc.value.extra == {"version": 1}
    assert exc.value.wire()["version"] == 1


async def test_fence_is_checked_before_version(store: Store) -> None:
    owner, note_id = await _ready(store)
    await store.commit_edit(note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER)
    await store.advance_fence(note_id, 2, HOLDER, owner)
    with pytest.raises(Fenced):
        await store.commit_edit(note_id, 1, 0, "op-2", insert(0, "b"), owner, MAX, holder=HOLDER)


async def test_duplicate_op_same_payload_returns_original_version(store: Store) -> None:
    owner, note_id = await _ready(store, "")
    first = await store.commit_edit(
        note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER
    )
    await store.commit_edit(note_id, 1, 1, "op-2", insert(1, "b"), owner, MAX, holder=HOLDER)
    # A retry after a lost ack: even with a stale base and a newer fence it is
    # recognised (check 2 comes before the fence and version checks).
    await store.advance_fence(note_id, 7, HOLDER, owner)
    again = await store.commit_edit(
        note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER
    )
    assert (again.version, again.duplicate) == (first.version, True)
    assert again.content == "ab"
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content) == (2, "ab")


async def test_duplicate_op_is_recognised_whatever_the_current_state(store: Store) -> None:
    # commit_edit looks the op up in two places: in its one-statement write when
    # fence and base match and the edit applies, else in a separate read. A
    # logged op must win in both, and nothing may be written twice.
    owner, note_id = await _ready(store, "")
    await store.commit_edit(note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER)
    # Fence and base match the note and the edit applies: the write is skipped.
    again = await store.commit_edit(
        note_id, 1, 1, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER
    )
    assert (again.version, again.duplicate, again.content) == (1, True, "a")
    # Fence and base match but the edit no longer fits: still the original ack.
    tight = await store.commit_edit(note_id, 1, 1, "op-1", insert(0, "a"), owner, 1, holder=HOLDER)
    assert (tight.version, tight.duplicate) == (1, True)
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content) == (1, "a")


async def test_duplicate_op_other_payload_is_bad_request(store: Store) -> None:
    owner, note_id = await _ready(store, "")
    await store.commit_edit(note_id, 1, 0, "op-1", insert(0, "a"), owner, MAX, holder=HOLDER)
    with pytest.raises(BadRequest):
        await store.commit_edit(note_id, 1, 1, "op-1", insert(0, "z"), owner, MAX, holder=HOLDER)
    # The same op id on another note is a different edit.
    other = await make_note(store, owner, "")
    await store.advance_fence(other.id, 1, HOLDER, owner)
    result = await store.commit_edit(
        other.id, 1, 0, "op-1", insert(0, "z"), owner, MAX, holder=HOLDER
    )
    assert (result.version, result.duplicate) == (1, False)


async def test_out_of_range_change_is_bad_request(store: Store) -> None:
    owner, note_id = await _ready(store, "abc")
    with pytest.raises(BadRequest):
        await store.commit_edit(note_id, 1, 0, "op-1", insert(4, "x"), owner, MAX, holder=HOLDER)
    with pytest.raises(BadRequest):
        await store.commit_edit(note_id, 1, 0, "op-2", insert(2, "", 2), owner, MAX, holder=HOLDER)
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content) == (0, "abc")
    # A refused op id is not burnt: it can commit once corrected.
    ok = await store.commit_edit(note_id, 1, 0, "op-1", insert(3, "x"), owner, MAX, holder=HOLDER)
    assert (ok.version, ok.content) == (1, "abcx")


async def test_too_large_result(store: Store) -> None:
    owner, note_id = await _ready(store, "12345")
    with pytest.raises(TooLarge):
        await store.commit_edit(note_id, 1, 0, "op-1", insert(5, "6"), owner, 5, holder=HOLDER)
    exact = await store.commit_edit(
        note_id, 1, 0, "op-2", insert(0, "0", 1), owner, 5, holder=HOLDER
    )
    assert exact.content == "02345"


async def test_code_points_not_bytes(store: Store) -> None:
    owner, note_id = await _ready(store, "héllo 👋")
    result = await store.commit_edit(
        note_id, 1, 0, "op-1", insert(7, "!"), owner, MAX, holder=HOLDER
    )
    assert result.content == "héllo 👋!"
    assert (await store.get_note(note_id)).content == "héllo 👋!"  # type: ignore[union-attr]


async def test_edits_since(store: Store) -> None:
    owner, note_id = await _ready(store, "")
    for i in range(5):
        await store.commit_edit(
            note_id, 1, i, f"op-{i}", insert(i, str(i)), owner, MAX, holder=HOLDER
        )
    await store.commit_edit(
        note_id, 1, 5, "op-5", EditPayload(content="whole"), owner, MAX, holder=HOLDER
    )
    edits = await store.edits_since(note_id, 2, 10)
    assert edits is not None
    assert [e.version for e in edits] == [3, 4, 5, 6]
    assert [e.op for e in edits] == ["op-2", "op-3", "op-4", "op-5"]
    assert edits[0].payload == insert(2, "2")  # round-trips to EditPayload
    assert edits[-1].payload == EditPayload(content="whole")
    assert edits[0].by == owner and edits[0].note_id == note_id and edits[0].at.endswith("Z")
    assert edits[0].wire()["changes"] == [{"at": 2, "del": 0, "ins": "2"}]
    assert await store.edits_since(note_id, 6, 10) == []
    assert await store.edits_since(note_id, 2, 4) is not None  # exactly the limit
    assert await store.edits_since(note_id, 2, 3) is None  # more than the limit
    assert await store.edits_since(note_id, 7, 10) is None  # ahead of the note: snapshot
    with pytest.raises(NotFound):
        await store.edits_since("0" * 32, 0, 10)


async def test_an_author_without_an_account_never_writes(store: Store) -> None:
    """Guests are never stored, so the commit finds no role for them: refused,
    and nothing is logged."""
    _, note_id = await _ready(store, "")
    ghost = User("g" * 32, "visitor", "guest")
    with pytest.raises(Forbidden):
        await store.commit_edit(note_id, 1, 0, "op-g", insert(0, "x"), ghost, MAX, holder=HOLDER)
    assert await store.edits_since(note_id, 0, 10) == []


async def test_concurrent_commits_on_one_base_exactly_one_wins(store: Store) -> None:
    owner, note_id = await _ready(store, "")
    attempts = 12
    results = await asyncio.gather(
        *(
            store.commit_edit(
                note_id, 1, 0, f"op-{i}", insert(0, str(i % 10)), owner, MAX, holder=HOLDER
            )
            for i in range(attempts)
        ),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    stale = [r for r in results if isinstance(r, Stale)]
    assert len(wins) == 1 and len(stale) == attempts - 1, results
    assert all(s.extra == {"version": 1} for s in stale)
    note = await store.get_note(note_id)
    assert note is not None and note.version == 1 and note.content == wins[0].content


async def test_concurrent_chained_commits_keep_versions_consecutive(store: Store) -> None:
    """Writers that retry on Stale end with one edit per op, versions 1..n."""
    owner, note_id = await _ready(store, "")

    async def writer(name: str, count: int) -> None:
        for i in range(count):
            while True:
                note = await store.get_note(note_id)
                assert note is not None
                try:
                    await store.commit_edit(
                        note_id,
                        1,
                        note.version,
                        f"{name}-{i}",
                        insert(0, name),
                        owner,
                        MAX,
                        holder=HOLDER,
                    )
                    break
                except Stale:
                    continue

    await asyncio.gather(*(writer(n, 5) for n in "abcd"))
    edits = await store.edits_since(note_id, 0, 100)
    assert edits is not None and [e.version for e in edits] == list(range(1, 21))
    assert len({e.op for e in edits}) == 20
    note = await store.get_note(note_id)
    assert note is not None and sorted(note.content) == sorted("abcd" * 5)


async def test_bump_fence_always_moves_the_fence(store: Store) -> None:
    owner = await make_user(store, "bumper")
    note = await make_note(store, owner)
    await store.advance_fence(note.id, 4, HOLDER, owner)
    assert await store.bump_fence(note.id, 2) == 5  # a counter behind still moves it
    assert await store.bump_fence(note.id, 9) == 9
    with pytest.raises(NotFound):
        await store.bump_fence("0" * 32, 1)


async def test_only_current_writers_commit(store: Store) -> None:
    owner = await make_user(store, "owner-w")
    writer = await make_user(store, "writer-w")
    note = await make_note(store, owner, "")
    await store.set_access(note.id, writer.id, "write")
    await store.advance_fence(note.id, 1, HOLDER, writer)
    await store.commit_edit(note.id, 1, 0, "op1", insert(0, "a"), writer, 100, holder=HOLDER)
    await store.set_access(note.id, writer.id, "read")
    with pytest.raises(Forbidden):
        await store.commit_edit(note.id, 1, 1, "op2", insert(0, "b"), writer, 100, holder=HOLDER)
    # A retry of the op that committed while it could write is still acked.
    again = await store.commit_edit(
        note.id, 1, 0, "op1", insert(0, "a"), writer, 100, holder=HOLDER
    )
    assert again.duplicate and again.version == 1
    # A guest has no stored account, so never write access.
    guest = User("g" + writer.id[1:], "guest", "guest")
    with pytest.raises(Forbidden):
        await store.commit_edit(note.id, 1, 1, "op3", insert(0, "c"), guest, 100, holder=HOLDER)


async def test_only_the_session_the_fence_was_granted_to_commits(store: Store) -> None:
    """A fence number is easy to guess: a writer with access but without the
    token is refused even with the current fence, and so is anyone on a note
    whose token was never granted, or was revoked."""
    owner = await make_user(store, "owner-h")
    note = await make_note(store, owner, "")
    with pytest.raises(Fenced):  # never granted: fence 0 belongs to nobody
        await store.commit_edit(note.id, 0, 0, "op0", insert(0, "x"), owner, 100, holder=HOLDER)
    await store.advance_fence(note.id, 1, HOLDER, owner)
    with pytest.raises(Fenced):
        await store.commit_edit(note.id, 1, 0, "op1", insert(0, "x"), owner, 100, holder="s-other")
    with pytest.raises(Fenced):
        await store.commit_edit(note.id, 1, 0, "op2", insert(0, "x"), owner, 100, holder="")
    await store.commit_edit(note.id, 1, 0, "op3", insert(0, "x"), owner, 100, holder=HOLDER)
    fence = await store.bump_fence(note.id, 0)
    with pytest.raises(Fenced):  # revoked: the new fence has no holder
        await store.commit_edit(note.id, fence, 1, "op4", insert(0, "y"), owner, 100, holder="")


async def test_a_fence_is_granted_only_to_someone_who_may_write_now(store: Store) -> None:
    owner = await make_user(store, "owner-g")
    reader = await make_user(store, "reader-g")
    note = await make_note(store, owner, "")
    await store.set_access(note.id, reader.id, "read")
    with pytest.raises(Forbidden):
        await store.advance_fence(note.id, 1, "s-reader", reader)
    assert await store.get_token(note.id) == (0, "")
    await store.set_access(note.id, reader.id, "write")
    assert (await store.advance_fence(note.id, 1, "s-reader", reader)).raised
    assert await store.get_token(note.id) == (1, "s-reader")
