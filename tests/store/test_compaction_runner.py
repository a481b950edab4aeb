"""The periodic compactor (collab/store/compaction.py), the migration that
adds quota counters to an existing database, and PostgreSQL-only properties
of compaction: one replica compacts at a time, and edits of the note being
compacted are not held up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from collab.errors import QuotaExceeded
from collab.settings import Settings
from collab.store import PostgresStore, SqliteStore, Store
from collab.store.compaction import run_compactor, start_compactor
from collab.store.migrator import migration_files, split_statements
from collab.store.quotas import Quotas
from collab.store.retention import Retention
from collab.store.sqlite_db import execute
from tests.store.helpers import insert, make_note, make_user

MAX = 10_000


async def _edits(store: Store, count: int, every_revision: int = 0) -> str:
    owner = await make_user(store, "o" + str(time.monotonic_ns()))
    note = await make_note(store, owner, "")
    assert (await store.advance_fence(note.id, 1, "s", owner)).raised
    for v in range(1, count + 1):
        await store.commit_edit(note.id, 1, v - 1, f"op{v}", insert(0, "x"), owner, MAX,
                                holder="s")  # fmt: skip
        if every_revision and v % every_revision == 0:
            await store.save_revision(note.id, owner.id)
    return note.id


async def test_the_runner_compacts_every_period_and_survives_failures(store: Store) -> None:
    note_id = await _edits(store, 6, every_revision=5)
    real = store.compact_edit_log
    calls = 0

    async def flaky(retention: Retention):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real(retention)

    store.compact_edit_log = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(run_compactor(store, Retention(1, keep_s=0.0, batch=10), 0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if calls >= 2:
                break
    finally:
        task.cancel()
    assert calls >= 2
    assert await store.edits_since(note_id, 0, 100) is None  # compacted after the failure
    assert [e.version for e in await store.edits_since(note_id, 5, 100) or []] == [6]


async def test_the_runner_is_off_at_interval_zero(store: Store) -> None:
    assert start_compactor(store, Settings(edit_log_compact_interval_s=0)) is None
    task = start_compactor(store, Settings(edit_log_compact_interval_s=1))
    assert task is not None
    task.cancel()


async def test_migration_counts_what_existing_accounts_own(tmp_path: Path) -> None:
    sqlite = await SqliteStore(str(tmp_path / "old.db")).open()
    try:
        async with sqlite.db.write() as conn:
            await execute(
                conn, "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            for name, sql in migration_files("sqlite")[:3]:
                for statement in split_statements(sql):
                    await execute(conn, statement)
                await execute(conn, "INSERT INTO schema_migrations VALUES (?, 'x')", [name])
            await execute(
                conn,
                "INSERT INTO users (id, name, name_key, role, password_hash, created_at)"
                " VALUES ('u1', 'a', 'a', 'user', 'h', 't')",
            )
            for i, text in enumerate(["é", "abc", ""]):
                await execute(
                    conn,
                    "INSERT INTO notes (id, owner_id, title, content, visibility, created_at,"
                    " updated_at) VALUES (?, 'u1', 't', ?, 'private', 't', 't')",
                    [f"n{i}", text],
                )
        assert await sqlite.migrate() == ["004_accounts_quotas_retention.sql"]
        sqlite.quotas = Quotas(max_notes=4, max_bytes=6)
        owner = await sqlite.get_user("u1")
        assert owner is not None and not owner.disabled
        # 3 notes and 5 bytes counted: one more note of 1 byte fits, then none.
        await sqlite.create_note("u1", "t", "z", "private")
        with pytest.raises(QuotaExceeded) as refused:
            await sqlite.create_note("u1", "t", "", "private")
        assert refused.value.extra == {"quota": "notes", "limit": 4}
    finally:
        await sqlite.close()


async def test_postgres_migration_counts_what_existing_accounts_own(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name, sql in migration_files("postgres")[:3]:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        await conn.execute(
            "INSERT INTO users (id, name, name_key, role, password_hash)"
            " VALUES ('u1', 'a', 'a', 'user', 'h'), ('u2', 'b', 'b', 'user', 'h')"
        )
        await conn.execute(
            "INSERT INTO notes (id, owner_id, title, content, visibility) VALUES"
            " ('n1', 'u1', 't', 'é', 'private'), ('n2', 'u1', 't', 'abc', 'private')"
        )
    finally:
        await conn.close()
    store = await PostgresStore(pg_url, pool_min=1, pool_max=2).open()
    try:
        assert await store.migrate() == ["004_accounts_quotas_retention.sql"]
        async with store.pools.primary() as check:
            counted = await check.fetch(
                "SELECT id, note_count, content_bytes FROM users ORDER BY id"
            )
        assert [tuple(r) for r in counted] == [("u1", 2, 5), ("u2", 0, 0)]
    finally:
        await store.close()


async def test_one_postgres_replica_compacts_at_a_time(pg_url: str) -> None:
    a = await PostgresStore(pg_url, pool_min=1, pool_max=4).open()
    b = await PostgresStore(pg_url, pool_min=1, pool_max=4).open()
    try:
        await a.migrate()
        note_id = await _edits(a, 30, every_revision=25)
        async with b.pools.primary() as conn:
            # Another replica's pass is under way: this one skips its round.
            await conn.execute("SELECT pg_advisory_lock($1)", 0x636F6C6C6162 + 1)
            skipped = await a.compact_edit_log(Retention(1, keep_s=0.0, batch=5))
            await conn.execute("SELECT pg_advisory_unlock($1)", 0x636F6C6C6162 + 1)
        assert skipped.payloads == 0
        done = await a.compact_edit_log(Retention(1, keep_s=0.0, batch=5))
        assert done.payloads == 25
        assert [e.version for e in await a.edits_since(note_id, 25, 100) or []] == list(
            range(26, 31)
        )
    finally:
        await a.close()
        await b.close()


async def test_postgres_edits_go_on_while_their_note_is_compacted(pg_url: str) -> None:
    store = await PostgresStore(pg_url, pool_min=2, pool_max=6).open()
    try:
        await store.migrate()
        owner = await make_user(store, "busy")
        note = await make_note(store, owner, "")
        assert (await store.advance_fence(note.id, 1, "s", owner)).raised
        async with store.pools.transaction() as conn:  # a long log, quickly
            await conn.execute(
                "INSERT INTO edits (note_id, version, op, payload, payload_hash, by_id, by_name,"
                " by_role, at) SELECT $1, v, 'old' || v, '{\"changes\": []}', 'h', $2, 'busy',"
                " 'user', now() - interval '1 day' FROM generate_series(1, 20000) v",
                note.id, owner.id,
            )  # fmt: skip
            await conn.execute("UPDATE notes SET version = 20000 WHERE id = $1", note.id)
            await conn.execute(
                "INSERT INTO revisions (note_id, version, title, content)"
                " VALUES ($1, 20000, 't', '')",
                note.id,
            )
        latencies: list[float] = []

        async def edit_meanwhile() -> None:
            base = 20000
            while not compaction.done():
                started = time.perf_counter()
                await store.commit_edit(note.id, 1, base, f"new{base}", insert(0, "y"), owner,
                                        MAX, holder="s")  # fmt: skip
                latencies.append(time.perf_counter() - started)
                base += 1
                await asyncio.sleep(0)

        started = time.perf_counter()
        compaction = asyncio.create_task(
            store.compact_edit_log(Retention(1, keep_s=3600.0, batch=500))
        )
        await asyncio.gather(compaction, edit_meanwhile())
        took = time.perf_counter() - started
        report = compaction.result()
        assert report.payloads == 19999  # the newest logged version stays (keep 1)
        assert latencies and max(latencies) < 1.0, max(latencies)
        print(
            f"\ncompacted 19999 edits in {took:.2f} s ({19999 / took:.0f}/s) in batches of"
            f" 500; {len(latencies)} edits meanwhile, slowest {max(latencies) * 1000:.0f} ms"
        )
        async with store.pools.primary() as conn:
            kept = await conn.fetchval("SELECT count(*) FROM edit_ops WHERE note_id = $1", note.id)
        assert kept == 19999
    finally:
        await store.close()
