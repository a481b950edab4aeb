"""Store contract: edit-log retention (collab/store/retention.py). Payloads
past the rule go, op ids stay longer, revisions and the newest edits stay,
``sync`` falls back to a snapshot, and retries are never applied twice."""

from __future__ import annotations

import pytest

from collab.errors import EditExpired, Stale
from collab.store import Store
from collab.store.retention import Retention, compactable_through, retry_expired
from collab.types import User
from tests.store.helpers import insert, make_note, make_user

MAX = 10_000
NOW = Retention(keep_per_note=2, keep_s=0.0, ops_keep_s=3600.0, batch=2)


async def _note_with_edits(store: Store, edits: int, revision_at: int) -> tuple[User, str, int]:
    """A note with ``edits`` one-letter edits (op ids ``op-1``...), a revision
    saved at version ``revision_at``; returns the owner, note id and fence."""
    owner = await make_user(store, "owner")
    note = await make_note(store, owner, "")
    assert (await store.advance_fence(note.id, 1, "s", owner)).raised
    for v in range(1, edits + 1):
        await store.commit_edit(
            note.id, 1, v - 1, f"op-{v}", insert(v - 1, chr(96 + v)), owner, MAX, holder="s"
        )
        if v == revision_at:
            await store.save_revision(note.id, owner.id)
    return owner, note.id, 1


def test_the_rule_keeps_the_newest_and_everything_after_the_latest_revision() -> None:
    assert compactable_through(10, 6, 2) == 6
    assert compactable_through(10, 9, 2) == 8
    assert compactable_through(10, 0, 2) == 0  # only revision 0: nothing goes
    assert compactable_through(1, 1, 5) == 0
    assert compactable_through(10, None, 0) == 0
    assert retry_expired(False, 3, 10) and not retry_expired(True, 3, 10)
    assert not retry_expired(False, 9, 10) and not retry_expired(False, 3, None)


async def test_compaction_drops_old_payloads_only(store: Store) -> None:
    _, note_id, _ = await _note_with_edits(store, 10, revision_at=6)
    revisions = [r.version for r in await store.list_revisions(note_id)]

    report = await store.compact_edit_log(NOW)

    assert (report.payloads, report.notes, report.ops) == (6, 1, 0)
    # sync from before the kept log: a snapshot; from within it: the edits.
    assert await store.edits_since(note_id, 0, 1000) is None
    assert await store.edits_since(note_id, 5, 1000) is None
    kept = await store.edits_since(note_id, 6, 1000)
    assert kept is not None and [e.version for e in kept] == [7, 8, 9, 10]
    # Revisions stay; versions after the latest one still rebuild.
    assert [r.version for r in await store.list_revisions(note_id)] == revisions
    rebuilt = await store.get_revision(note_id, 8)
    assert rebuilt is not None and rebuilt.content == "abcdefgh"
    assert (await store.get_revision(note_id, 6)).content == "abcdef"  # type: ignore[union-attr]
    assert await store.get_revision(note_id, 3) is None  # no longer knowable
    # A second pass finds nothing more.
    assert (await store.compact_edit_log(NOW)).payloads == 0


async def test_young_edits_and_notes_without_a_later_revision_are_kept(store: Store) -> None:
    _, young, _ = await _note_with_edits(store, 6, revision_at=5)
    assert (await store.compact_edit_log(Retention(2, keep_s=3600.0, batch=2))).payloads == 0
    other = await make_user(store, "other")
    plain = await make_note(store, other, "")
    assert (await store.advance_fence(plain.id, 1, "t", other)).raised
    for v in range(1, 5):
        await store.commit_edit(plain.id, 1, v - 1, f"p{v}", insert(0, "x"), other, MAX,
                                holder="t")  # fmt: skip
    report = await store.compact_edit_log(NOW)
    assert report.payloads == 4  # the first note's 1..4; the second has only revision 0
    assert len(await store.edits_since(plain.id, 0, 1000) or []) == 4
    assert await store.edits_since(young, 0, 1000) is None


async def test_a_retry_of_a_compacted_edit_is_acknowledged_not_applied(store: Store) -> None:
    owner, note_id, fence = await _note_with_edits(store, 10, revision_at=6)
    await store.compact_edit_log(NOW)
    again = await store.commit_edit(
        note_id, fence, 2, "op-3", insert(2, "c"), owner, MAX, holder="s"
    )
    assert (again.version, again.duplicate) == (3, True)
    note = await store.get_note(note_id)
    assert note is not None and (note.version, note.content) == (10, "abcdefghij")
    # Same op id, other payload: still refused as a reused op id.
    with pytest.raises(Exception) as reused:
        await store.commit_edit(note_id, fence, 2, "op-3", insert(0, "Z"), owner, MAX,
                                holder="s")  # fmt: skip
    assert getattr(reused.value, "code", "") == "bad_request"


async def test_retries_older_than_the_kept_op_ids_are_refused_clearly(store: Store) -> None:
    owner, note_id, fence = await _note_with_edits(store, 10, revision_at=6)
    report = await store.compact_edit_log(Retention(2, keep_s=0.0, ops_keep_s=0.0, batch=4))
    assert (report.payloads, report.ops) == (6, 6)
    # op-3 (base 2) is gone with its op id: it might be a retry, so it is
    # neither applied nor acknowledged.
    with pytest.raises(EditExpired) as expired:
        await store.commit_edit(note_id, fence, 2, "op-3", insert(2, "c"), owner, MAX,
                                holder="s")  # fmt: skip
    assert expired.value.extra == {"version": 10}
    # A base whose next version is still kept: an ordinary stale edit.
    with pytest.raises(Stale):
        await store.commit_edit(note_id, fence, 6, "new", insert(0, "n"), owner, MAX,
                                holder="s")  # fmt: skip
    note = await store.get_note(note_id)
    assert note is not None and note.version == 10
    ok = await store.commit_edit(note_id, fence, 10, "new", insert(0, "n"), owner, MAX,
                                 holder="s")  # fmt: skip
    assert ok.version == 11


async def test_compaction_runs_in_small_batches_over_many_notes(store: Store) -> None:
    owner = await make_user(store, "many")
    notes = []
    for i in range(5):
        note = await make_note(store, owner, "")
        assert (await store.advance_fence(note.id, 1, f"s{i}", owner)).raised
        for v in range(1, 8):
            await store.commit_edit(note.id, 1, v - 1, f"o{v}", insert(0, "x"), owner, MAX,
                                    holder=f"s{i}")  # fmt: skip
        await store.save_revision(note.id, owner.id)
        notes.append(note.id)
    report = await store.compact_edit_log(Retention(3, keep_s=0.0, ops_keep_s=3600.0, batch=2))
    assert (report.payloads, report.notes) == (5 * 4, 5)
    for note_id in notes:
        kept = await store.edits_since(note_id, 4, 1000)
        assert kept is not None and [e.version for e in kept] == [5, 6, 7]
