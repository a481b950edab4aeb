"""Group commit of edits (collab/store/pg_batch.py, PostgresStore.commit_edit;
docs/design.md, "Group commit"): edits of different notes that pile up share
one transaction, and every edit keeps its own checks and its own outcome.

The batcher's scheduling rules are checked first with a scripted runner (no
database); the rest runs on the real PostgreSQL test server. Batches are made
to form deterministically: the store's only flusher (``pool_max=3``) is held
up by a row lock another connection takes, and the test waits (polling the
batcher's state, never a timed sleep) until the edits it wants batched are
queued behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from collab.errors import Fenced, QuotaExceeded, Stale, Unavailable
from collab.store import PostgresStore
from collab.store.base import CommitResult
from collab.store.pg_batch import EditBatcher
from collab.store.quotas import Quotas
from collab.types import User
from tests.store.helpers import insert, make_note, make_user

HOLDER = "s-holder"
MAX = 1000


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait (up to 10 s) for a state, not for a time."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# -- the batcher's rules, with a scripted runner ----------------------------------
class Script:
    """A batch runner that records each batch and waits for the test to
    release it; ``fail`` makes a request's outcome its own exception."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates: list[asyncio.Event] = []
        self.fail: set[str] = set()

    async def __call__(self, requests: list[str]) -> Sequence[str | BaseException]:
        gate = asyncio.Event()
        self.batches.append(list(requests))
        self.gates.append(gate)
        await gate.wait()
        return [ValueError(r) if r in self.fail else f"done {r}" for r in requests]

    def release(self, index: int) -> None:
        self.gates[index].set()


def _key(request: str) -> str:
    return request.split(".")[0]  # "a.2": the second request of key "a"


def _submit(batcher: EditBatcher[str, str], *requests: str) -> list[asyncio.Task[str]]:
    return [asyncio.create_task(batcher.submit(r, _key(r))) for r in requests]


async def test_a_lone_request_runs_at_once_in_a_batch_of_its_own() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=2)
    [task] = _submit(batcher, "a.1")
    await until(lambda: bool(script.batches), "the batch started")
    assert script.batches == [["a.1"]]
    script.release(0)
    assert await task == "done a.1"
    assert (batcher.batches, batcher.largest_batch) == (1, 1)


async def test_a_request_right_after_a_batch_finds_a_flusher() -> None:
    """The next request, submitted in the same loop turn as the previous
    result arrives, must not count on the flusher that just ran out of work."""

    async def run(requests: list[str]) -> list[str]:
        return [f"done {r}" for r in requests]

    batcher: EditBatcher[str, str] = EditBatcher(run, max_batch=8, flushers=1)
    async with asyncio.timeout(10):
        for i in range(20):
            assert await batcher.submit(f"a.{i}", "a") == f"done a.{i}"
    assert batcher.batches == 20


async def test_requests_that_pile_up_share_a_batch_one_per_key_in_order() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=1)
    first = _submit(batcher, "a.1")
    await until(lambda: len(script.batches) == 1, "the first batch started")
    later = _submit(batcher, "b.1", "b.2", "a.2", "c.1", "a.3")
    await until(lambda: batcher.queued == 5, "five queued")
    script.release(0)
    await until(lambda: len(script.batches) == 2, "the second batch started")
    # One request per key, the oldest of each; a's is held back while a.1 ran.
    assert script.batches[1] == ["b.1", "a.2", "c.1"]
    script.release(1)
    await until(lambda: len(script.batches) == 3, "the third batch started")
    assert script.batches[2] == ["b.2", "a.3"]
    script.release(2)
    assert await asyncio.gather(*first, *later) == [
        "done a.1", "done b.1", "done b.2", "done a.2", "done c.1", "done a.3"
    ]  # fmt: skip
    assert (batcher.batches, batcher.batched, batcher.largest_batch) == (3, 6, 3)


async def test_a_key_in_a_running_batch_waits_even_with_a_flusher_free() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=3)
    first = _submit(batcher, "a.1")
    await until(lambda: len(script.batches) == 1, "a.1 running")
    second = _submit(batcher, "a.2", "b.1")
    await until(lambda: len(script.batches) == 2, "b.1 running")
    # Two flushers are free, yet a.2 must not run beside a.1 (it could
    # overtake it in the database).
    assert script.batches[1] == ["b.1"] and batcher.queued == 1
    script.release(1)
    await asyncio.sleep(0)
    assert len(script.batches) == 2 and batcher.queued == 1
    script.release(0)
    await until(lambda: len(script.batches) == 3, "a.2 running")
    assert script.batches[2] == ["a.2"]
    script.release(2)
    assert await asyncio.gather(*first, *second) == ["done a.1", "done a.2", "done b.1"]


async def test_outcomes_are_per_request_and_a_failed_batch_fails_all() -> None:
    script = Script()
    script.fail = {"b.1"}
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=1)
    first = _submit(batcher, "x.1")
    await until(lambda: len(script.batches) == 1, "x.1 running")
    mates = _submit(batcher, "a.1", "b.1", "c.1")
    await until(lambda: batcher.queued == 3, "queued")
    script.release(0)
    await until(lambda: len(script.batches) == 2, "the batch started")
    assert not any(t.done() for t in mates)  # nothing before the batch returned
    script.release(1)
    results = await asyncio.gather(*first, *mates, return_exceptions=True)
    assert results[:2] == ["done x.1", "done a.1"] and results[3] == "done c.1"
    assert isinstance(results[2], ValueError)

    async def broken(requests: list[str]) -> list[str]:
        raise Unavailable("gone")

    failing: EditBatcher[str, str] = EditBatcher(broken, max_batch=8, flushers=1)
    outcomes = await asyncio.gather(*_submit(failing, "a.1", "b.1"), return_exceptions=True)
    assert [type(o) for o in outcomes] == [Unavailable, Unavailable]


async def test_the_queue_is_bounded_and_full_means_wait_not_drop() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=2, flushers=1, max_queued=2)
    running = _submit(batcher, "a.1")
    await until(lambda: len(script.batches) == 1, "a.1 running")
    queued = _submit(batcher, "b.1", "c.1", "d.1", "e.1")
    await until(lambda: batcher.queued == 2, "the queue full")
    await asyncio.sleep(0.05)
    assert batcher.queued == 2 and not any(t.done() for t in queued)  # two wait for room
    for i in range(3):
        script.release(i)
        await until(lambda i=i: len(script.batches) == i + 2 or i == 2, "next batch")
    assert await asyncio.gather(*running, *queued) == [
        "done a.1", "done b.1", "done c.1", "done d.1", "done e.1"
    ]  # fmt: skip
    assert batcher.largest_batch == 2


async def test_cancelled_callers_leak_nothing() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=1)
    running = _submit(batcher, "a.1", "b.1")
    await until(lambda: len(script.batches) == 1, "running")
    queued = _submit(batcher, "c.1", "d.1")
    await until(lambda: batcher.queued == 2, "queued")
    running[0].cancel()  # its batch still runs, b.1 still gets its result
    queued[0].cancel()  # taken out before its batch
    script.release(0)
    assert await running[1] == "done b.1"
    await until(lambda: len(script.batches) == 2, "the next batch")
    assert script.batches[1] == ["d.1"]
    script.release(1)
    assert await queued[1] == "done d.1"
    assert running[0].cancelled() and queued[0].cancelled()
    assert batcher.queued == 0 and batcher.running == 0 and not batcher.busy("a")


async def test_close_fails_queued_requests_and_lets_the_running_batch_finish() -> None:
    script = Script()
    batcher: EditBatcher[str, str] = EditBatcher(script, max_batch=8, flushers=1)
    running = _submit(batcher, "a.1")
    await until(lambda: len(script.batches) == 1, "running")
    queued = _submit(batcher, "b.1")
    await until(lambda: batcher.queued == 1, "queued")
    closing = asyncio.create_task(batcher.close(grace_s=10))
    with pytest.raises(Unavailable):
        await queued[0]
    assert not closing.done()  # waits for the running batch
    script.release(0)
    await closing
    assert await running[0] == "done a.1"
    with pytest.raises(Unavailable):
        await batcher.submit("c.1", "c")
    # A batch that outlives the grace is cancelled and its callers told.
    stuck = Script()
    slow: EditBatcher[str, str] = EditBatcher(stuck, max_batch=8, flushers=1)
    hung = _submit(slow, "a.1")
    await until(lambda: len(stuck.batches) == 1, "running")
    await slow.close(grace_s=0.01)
    with pytest.raises(Unavailable):
        await hung[0]


# -- the PostgreSQL store ------------------------------------------------------------
@asynccontextmanager
async def pg_store(url: str, pool_max: int) -> AsyncIterator[PostgresStore]:
    """``pool_max=3``: one flusher; ``pool_max=4``: two."""
    store = await PostgresStore(url, pool_min=1, pool_max=pool_max).open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def row_locked(url: str, note_id: str) -> AsyncIterator[None]:
    """Another session holds the note's row lock until the block ends."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", note_id)
            yield
    finally:
        await conn.close()


async def fenced_notes(store: PostgresStore, owner: User, count: int) -> list[str]:
    """``count`` notes reading "hello", fence 1 granted to HOLDER, by id."""
    ids = []
    for _ in range(count):
        note = await make_note(store, owner, "hello")
        await store.advance_fence(note.id, 1, HOLDER, owner)
        ids.append(note.id)
    return sorted(ids)


def commit(
    store: PostgresStore, note_id: str, by: User, base: int = 0, text: str = "!", fence: int = 1
) -> asyncio.Task[CommitResult]:
    op = f"op-{note_id[:8]}-{base}-{fence}"
    edit = insert(5 + base, text)
    return asyncio.create_task(
        store.commit_edit(note_id, fence, base, op, edit, by, MAX, holder=HOLDER)
    )


async def rows_of(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def lock_waits(url: str, count: int) -> None:
    """Wait until ``count`` sessions of the test database wait for a lock."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(1000):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError(f"never saw {count} lock waits")


async def pile_up(
    store: PostgresStore, url: str, blocker: str, by: User, make: Callable[[], list[Awaitable[Any]]]
) -> tuple[Any, list[Any]]:
    """Hold the only flusher on an edit of ``blocker`` (row-locked by another
    session), queue the edits ``make`` submits behind it, then let all go.
    Returns the blocker's result and the queued edits' outcomes."""
    batcher = store.edit_batcher
    assert batcher.flushers == 1
    async with row_locked(url, blocker):
        first = commit(store, blocker, by)
        await lock_waits(url, 1)
        tasks = make()
        await until(lambda: batcher.queued == len(tasks), "the edits queued")
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return await first, outcomes


async def test_many_concurrent_edits_on_many_notes_all_commit_in_order(pg_url: str) -> None:
    """30 notes x 4 edits, all submitted at once, each note's edits pipelined
    (bases 0-3): per-note order is arrival order, so none is stale or lost."""
    async with pg_store(pg_url, pool_max=6) as store:
        owner = await make_user(store, "w")
        notes = await fenced_notes(store, owner, 30)
        tasks = [commit(store, n, owner, base, str(base)) for base in range(4) for n in notes]
        results = await asyncio.gather(*tasks)
        assert not any(r.duplicate for r in results)
        for note_id in notes:
            note = await store.get_note(note_id)
            assert note is not None and (note.version, note.content) == (4, "hello0123")
            log = await store.edits_since(note_id, 0, 10)
            assert log is not None and [e.version for e in log] == [1, 2, 3, 4]
        assert [r.version for r in results] == [b + 1 for b in range(4) for _ in notes]
        assert store.edit_batcher.batched == 120
        (total,) = await rows_of(pg_url, "SELECT content_bytes FROM users WHERE id = $1", owner.id)
        assert total["content_bytes"] == 30 * len("hello0123")


async def test_edits_that_pile_up_share_one_transaction(pg_url: str) -> None:
    async with pg_store(pg_url, pool_max=3) as store:
        owner = await make_user(store, "w")
        blocker, *others = await fenced_notes(store, owner, 5)
        first, outcomes = await pile_up(
            store, pg_url, blocker, owner, lambda: [commit(store, n, owner) for n in others]
        )
        assert first.version == 1
        assert [o.version for o in outcomes] == [1, 1, 1, 1]
        batcher = store.edit_batcher
        assert (batcher.batches, batcher.largest_batch) == (2, 4)
        # One transaction: now() (the transaction's start) is the same for all four.
        stamps = await rows_of(
            pg_url, "SELECT note_id, at FROM edits WHERE note_id = ANY($1::text[])", others
        )
        assert len(stamps) == 4 and len({r["at"] for r in stamps}) == 1
        for note_id in others:
            note = await store.get_note(note_id)
            assert note is not None and (note.version, note.content) == (1, "hello!")


async def test_a_fenced_edit_in_a_batch_is_refused_and_its_batch_mates_commit(
    pg_url: str,
) -> None:
    async with pg_store(pg_url, pool_max=3) as store:
        owner = await make_user(store, "w")
        blocker, a, stale, b = await fenced_notes(store, owner, 4)
        # Someone else was granted ``stale``'s token since: fence 1 is stale there.
        assert (await store.advance_fence(stale, 2, "s-other", owner)).raised
        _, outcomes = await pile_up(
            store, pg_url, blocker, owner,
            lambda: [commit(store, a, owner), commit(store, stale, owner), commit(store, b, owner)],
        )  # fmt: skip
        assert store.edit_batcher.largest_batch == 3  # they were batch-mates
        assert isinstance(outcomes[1], Fenced)
        assert [outcomes[0].version, outcomes[2].version] == [1, 1]
        refused = await store.get_note(stale)
        assert refused is not None and (refused.version, refused.content) == (0, "hello")
        assert await store.edits_since(stale, 0, 10) == []
        for note_id in (a, b):
            note = await store.get_note(note_id)
            assert note is not None and (note.version, note.content) == (1, "hello!")


async def test_a_quota_refusal_in_a_batch_undoes_only_that_edit(pg_url: str) -> None:
    async with pg_store(pg_url, pool_max=3) as store:
        small = await make_user(store, "small")
        large = await make_user(store, "large")
        blocker, *mine = await fenced_notes(store, small, 3)
        [theirs] = await fenced_notes(store, large, 1)
        store.quotas = Quotas(max_bytes=40)  # "large" will ask for 5 + 40 bytes
        totals = "SELECT id, content_bytes FROM users"
        before = {r["id"]: r["content_bytes"] for r in await rows_of(pg_url, totals)}
        _, outcomes = await pile_up(
            store, pg_url, blocker, small,
            lambda: [commit(store, mine[0], small), commit(store, theirs, large, text="x" * 40),
                     commit(store, mine[1], small)],
        )  # fmt: skip
        assert store.edit_batcher.largest_batch == 3
        assert isinstance(outcomes[1], QuotaExceeded)
        assert [outcomes[0].version, outcomes[2].version] == [1, 1]
        # The refused edit's write (made before the quota check) is rolled back
        # with its savepoint: row, log and the owner's byte total.
        refused = await store.get_note(theirs)
        assert refused is not None and (refused.version, refused.content) == (0, "hello")
        assert await store.edits_since(theirs, 0, 10) == []
        after = {r["id"]: r["content_bytes"] for r in await rows_of(pg_url, totals)}
        assert after[large.id] == before[large.id]
        assert after[small.id] == before[small.id] + 3  # the blocker's edit and two more


async def test_two_edits_of_one_note_submitted_together_land_in_order(pg_url: str) -> None:
    """x's second edit (based on its first) is queued while x's first waits in
    a batch; a flusher that comes free must leave it queued (run beside the
    first, it could take the row lock first and be refused as stale)."""
    async with pg_store(pg_url, pool_max=4) as store:  # two flushers
        owner = await make_user(store, "w")
        slow, w, x = await fenced_notes(store, owner, 3)
        batcher = store.edit_batcher
        async with row_locked(pg_url, w):
            async with row_locked(pg_url, slow):
                blocked = commit(store, slow, owner)  # flusher 1
                await until(lambda: batcher.running == 1, "flusher 1 busy")
                x1, w1 = commit(store, x, owner), commit(store, w, owner)  # flusher 2
                await until(lambda: batcher.running == 2 and batcher.busy(x), "flusher 2 busy")
                x2 = commit(store, x, owner, base=1, text="?")
                await until(lambda: batcher.queued == 1, "x2 queued")
            # Flusher 1 finishes ``slow`` and looks at the queue: only x2, whose
            # note is in flusher 2's batch, still waiting for w's lock.
            assert (await blocked).version == 1
            await until(lambda: batcher.running == 1, "flusher 1 done")
            assert batcher.queued == 1 and not x2.done()
        assert (await w1).version == 1 and (await x1).version == 1
        assert (await x2).version == 2


@pytest.mark.parametrize("after_edits", [2, 3])
async def test_a_connection_lost_mid_batch_fails_every_edit_and_applies_none(
    pg_url: str, after_edits: int
) -> None:
    """The batch's backend is terminated after 2 of its 3 edits ran (or after
    all 3, so COMMIT is what fails): all three get Unavailable, none is
    stored, and a retry with the same op ids applies each once."""
    async with pg_store(pg_url, pool_max=3) as store:
        owner = await make_user(store, "w")
        blocker, *mates = await fenced_notes(store, owner, 4)
        before = await rows_of(pg_url, "SELECT content_bytes FROM users WHERE id = $1", owner.id)
        original = store._commit_edit_on
        ran: list[str] = []

        async def then_kill(conn: asyncpg.Connection, request: Any, *locked: Any) -> CommitResult:
            result = await original(conn, request, *locked)
            ran.append(request.note_id)
            if request.note_id in mates and len([n for n in ran if n in mates]) == after_edits:
                pid = conn.get_server_pid()
                await rows_of(pg_url, "SELECT pg_terminate_backend($1, 5000)", pid)
            return result

        store._commit_edit_on = then_kill  # type: ignore[method-assign]
        _, outcomes = await pile_up(
            store, pg_url, blocker, owner, lambda: [commit(store, n, owner) for n in mates]
        )
        assert store.edit_batcher.largest_batch == 3
        assert [type(o) for o in outcomes] == [Unavailable] * 3
        for note_id in mates:
            note = await store.get_note(note_id)
            assert note is not None and (note.version, note.content) == (0, "hello")
            assert await store.edits_since(note_id, 0, 10) == []
        after = await rows_of(pg_url, "SELECT content_bytes FROM users WHERE id = $1", owner.id)
        assert after[0]["content_bytes"] == before[0]["content_bytes"] + 1  # the blocker only
        store._commit_edit_on = original  # type: ignore[method-assign]
        retried = await asyncio.gather(*(commit(store, n, owner) for n in mates))
        assert [(r.version, r.duplicate) for r in retried] == [(1, False)] * 3


async def test_a_new_timeline_fences_the_whole_batch_before_its_first_edit(
    pg_url: str,
) -> None:
    """Rule 10 in a group commit: the failover fence jump runs in the batch's
    transaction before any of its edits, so none of them commits."""
    async with pg_store(pg_url, pool_max=3) as store:
        owner = await make_user(store, "w")
        blocker, *mates = await fenced_notes(store, owner, 3)

        def queue_then_fail_over() -> list[Awaitable[Any]]:
            tasks = [commit(store, n, owner) for n in mates]
            store.pools.timeline += 1  # as if a new primary had been seen
            return tasks

        first, outcomes = await pile_up(store, pg_url, blocker, owner, queue_then_fail_over)
        store.pools.timeline -= 1  # new connections: the test server's real timeline
        assert first.version == 1  # its transaction had fenced the old timeline
        assert [type(o) for o in outcomes] == [Fenced, Fenced]
        assert store.edit_batcher.largest_batch == 2
        for note_id in mates:
            note = await store.get_note(note_id)
            assert note is not None and note.version == 0 and note.fence > 1


async def test_close_fails_queued_edits_and_lets_the_running_batch_commit(pg_url: str) -> None:
    store = await PostgresStore(pg_url, pool_min=1, pool_max=3).open()
    await store.migrate()
    owner = await make_user(store, "w")
    blocker, queued_note = await fenced_notes(store, owner, 2)
    batcher = store.edit_batcher
    async with row_locked(pg_url, blocker):
        running = commit(store, blocker, owner)
        await until(lambda: batcher.running == 1, "running")
        queued = commit(store, queued_note, owner)
        await until(lambda: batcher.queued == 1, "queued")
        closing = asyncio.create_task(store.close())
        with pytest.raises(Unavailable):
            await queued
        assert not closing.done()
    await closing
    assert (await running).version == 1
    with pytest.raises(Unavailable):
        await commit(store, queued_note, owner)
    rows = await rows_of(pg_url, "SELECT id, version FROM notes ORDER BY id")
    assert {r["id"]: r["version"] for r in rows} == {blocker: 1, queued_note: 0}


async def test_stale_edits_still_refused_in_a_batch(pg_url: str) -> None:
    async with pg_store(pg_url, pool_max=3) as store:
        owner = await make_user(store, "w")
        blocker, a, b = await fenced_notes(store, owner, 3)
        _, outcomes = await pile_up(
            store, pg_url, blocker, owner,
            lambda: [commit(store, a, owner, base=3), commit(store, b, owner)],
        )  # fmt: skip
        assert isinstance(outcomes[0], Stale) and outcomes[1].version == 1


async def test_batches_of_two_replicas_charging_the_same_owners_do_not_deadlock(
    pg_url: str,
) -> None:
    """Each batch's edits charge two owners in opposite orders (batch one:
    notes n1 < n2 owned by u1, u2; batch two: n3 < n4 owned by u2, u1). Each
    batch pauses after its first edit until the other got as far or is
    waiting for a lock. Locked edit by edit, each would hold one owner and
    wait for the other (a deadlock, one edit aborted); locking the owners up
    front, in id order, makes the second batch wait for the first instead."""
    async with pg_store(pg_url, pool_max=3) as one, pg_store(pg_url, pool_max=3) as two:
        u1, u2 = await make_user(one, "u1"), await make_user(one, "u2")
        owned: dict[str, User] = {}
        crossing = None
        while crossing is None:  # note ids are random: make the orders cross
            for owner in (u1, u2):
                owned.update(dict.fromkeys(await fenced_notes(one, owner, 1), owner))
            crossing = next(
                (
                    (a1, a2, b1, b2)
                    for a1 in owned for a2 in owned for b1 in owned for b2 in owned
                    if len({a1, a2, b1, b2}) == 4 and a1 < a2 and b1 < b2
                    and owned[a1] == owned[b2] == u1 and owned[a2] == owned[b1] == u2
                ),
                None,
            )  # fmt: skip
        by_id = owned
        n1, n2, n3, n4 = crossing
        firsts = {n1: asyncio.Event(), n3: asyncio.Event()}
        other = {n1: n3, n3: n1}

        def paused(store: PostgresStore) -> Any:
            original = store._commit_edit_on

            async def run(conn: asyncpg.Connection, request: Any, *locked: Any) -> CommitResult:
                result = await original(conn, request, *locked)
                if request.note_id in firsts:
                    firsts[request.note_id].set()
                    waiter = asyncio.create_task(firsts[other[request.note_id]].wait())
                    locked = asyncio.create_task(lock_waits(pg_url, 1))
                    await asyncio.wait({waiter, locked}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    locked.cancel()
                return result

            return run

        one._commit_edit_on = paused(one)  # type: ignore[method-assign]
        two._commit_edit_on = paused(two)  # type: ignore[method-assign]
        edits = [commit(one, n1, by_id[n1]), commit(one, n2, by_id[n2])]
        edits += [commit(two, n3, by_id[n3]), commit(two, n4, by_id[n4])]
        results = await asyncio.gather(*edits, return_exceptions=True)
        assert [getattr(r, "version", r) for r in results] == [1, 1, 1, 1]
        assert one.edit_batcher.largest_batch == 2 and two.edit_batcher.largest_batch == 2
