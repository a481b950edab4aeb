"""PostgreSQL-only behaviour: concurrent migrations, replica reads only when
caught up, and rule 10 (failover handling) against real servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg
import pytest

from collab.errors import Unavailable
from collab.settings import Settings
from collab.store import PostgresStore, open_store
from collab.store.migrator import migration_files
from tests.store.helpers import insert, make_note, make_user
from tests.support.services import PgCluster, free_port

# The session every test fence is granted to (commits must come from it).
HOLDER = "s-holder"

T = TypeVar("T")
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE)\b", re.IGNORECASE)


async def eventually(call: Callable[[], Awaitable[T]], within_s: float = 15.0) -> T:
    """Retry ``call`` while it raises ``Unavailable`` (a pool reconnecting)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            return await call()
        except Unavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_concurrent_migrate_from_several_replicas(pg_url: str) -> None:
    stores = [await PostgresStore(pg_url).open() for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        expected = [name for name, _ in migration_files("postgres")]
        assert sorted(results, key=len) == [[], [], [], expected]
        conn = await asyncpg.connect(pg_url)
        try:
            recorded = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
        finally:
            await conn.close()
        assert recorded == expected
    finally:
        for store in stores:
            await store.close()


async def test_read_pool_on_the_primary_is_used(pg_url: str) -> None:
    """Pointing the read URL at the primary itself exercises the replica path:
    it reports a WAL position at or past our last write, so it is used."""
    store = await PostgresStore(pg_url, read_url=pg_url).open()
    try:
        await store.migrate()
        owner = await make_user(store, "o")
        note = await make_note(store, owner, "text")
        assert await store.get_note_replica(note.id) == note
        assert (store.pools.replica_reads, store.pools.replica_fallbacks) == (1, 0)
    finally:
        await store.close()


async def test_without_read_pool_replica_reads_use_the_primary(pg_url: str) -> None:
    store = await PostgresStore(pg_url).open()
    try:
        await store.migrate()
        note = await make_note(store, await make_user(store, "o"))
        assert await store.get_note_replica(note.id) == note
        assert (store.pools.replica_reads, store.pools.replica_fallbacks) == (0, 1)
    finally:
        await store.close()


async def test_a_failing_replica_is_skipped_for_a_while(pg_url: str) -> None:
    """Replica trouble never fails a read, and the replica is not retried on
    every call (a black-holed one would cost a connect timeout each time)."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    store = await PostgresStore(pg_url, read_url=dead, replica_retry_s=60).open()
    try:
        await store.migrate()
        note = await make_note(store, await make_user(store, "o"))
        assert await store.get_note_replica(note.id) == note
        assert await store.get_note_replica(note.id) == note
        pools = store.pools
        assert (pools.replica_reads, pools.replica_fallbacks, pools.replica_errors) == (0, 2, 1)
    finally:
        await store.close()


async def test_unreachable_database_is_unavailable_without_sql() -> None:
    cluster = PgCluster().start()
    try:
        store = await PostgresStore(cluster.primary.url(), connect_timeout_s=2).open()
        try:
            await store.migrate()
            user = await make_user(store, "o")
            cluster.primary.stop()
            for attempt in (store.ping(), store.get_user(user.id), make_user(store, "p")):
                with pytest.raises(Unavailable) as exc:
                    await attempt
                assert not SQL_WORDS.search(exc.value.message), exc.value.message
            # Back up: the pool reconnects on the next call.
            cluster.primary.start()
            assert await eventually(lambda: store.get_user(user.id)) is not None
        finally:
            await store.close()
        cluster.primary.stop()
        settings = Settings(database_url=cluster.primary.url(), jwt_secret="x" * 32)
        with pytest.raises(Unavailable) as exc:
            await open_store(settings)
        assert not SQL_WORDS.search(exc.value.message)
    finally:
        cluster.stop()


async def test_read_only_primary_is_unavailable_and_recovers() -> None:
    """SQLSTATE 25006 on a pooled connection: the pool is expired, and a
    read-only server is not accepted as the write target (rule 10)."""
    cluster = PgCluster().start()
    url = cluster.primary.url()
    try:
        store = await PostgresStore(url, pool_min=2, pool_max=2).open()
        admin = await asyncpg.connect(url)
        try:
            await store.migrate()
            await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            await admin.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)  # backends apply SIGHUP before their next command
            with pytest.raises(Unavailable, match="read-only"):
                await store.create_user("late", "h", "user")
            # New connections see a read-only server: refused as write target.
            with pytest.raises(Unavailable):
                await store.create_user("late", "h", "user")
            await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await admin.execute("SELECT pg_reload_conf()")
            created = await eventually(lambda: store.create_user("late", "h", "user"))
            assert created.name == "late"
        finally:
            await admin.close()
            await store.close()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def replicated() -> Iterator[PgCluster]:
    """A throwaway primary with one streaming standby, shared by the tests
    below in file order (the last one promotes the standby)."""
    cluster = PgCluster(standby=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_replica_is_read_only_when_caught_up(replicated: PgCluster) -> None:
    assert replicated.standby is not None
    store = await PostgresStore(replicated.primary.url(), read_url=replicated.standby.url()).open()
    standby = await asyncpg.connect(replicated.standby.url())
    try:
        await store.migrate()
        owner = await make_user(store, "o")
        note = await make_note(store, owner, "v0")
        await store.advance_fence(note.id, 1, HOLDER, owner)

        async def wait_for_replica(expect: str) -> None:
            for _ in range(200):
                before = store.pools.replica_reads
                seen = await store.get_note_replica(note.id)
                if store.pools.replica_reads > before:
                    assert seen is not None and seen.content == expect
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the standby never caught up")

        await wait_for_replica("v0")
        await standby.execute("SELECT pg_wal_replay_pause()")
        await store.commit_edit(note.id, 1, 0, "op-1", insert(2, "+"), owner, 100, holder=HOLDER)
        # The standby has not replayed the edit: the primary must answer.
        for _ in range(3):
            fallbacks = store.pools.replica_fallbacks
            seen = await store.get_note_replica(note.id)
            assert seen is not None and (seen.version, seen.content) == (1, "v0+")
            assert store.pools.replica_fallbacks == fallbacks + 1
        stale = await standby.fetchval("SELECT content FROM notes WHERE id = $1", note.id)
        assert stale == "v0"  # proof that the replica really was behind
        await standby.execute("SELECT pg_wal_replay_resume()")
        await wait_for_replica("v0+")
    finally:
        await standby.close()
        await store.close()


async def test_failover_timeline_rises_and_old_primary_is_refused(
    replicated: PgCluster,
) -> None:
    """Multi-host DSN, standby listed first: after promotion the new primary
    (timeline 2) is used and counted; the old primary restarted unfenced
    (timeline 1) is refused even though it accepts writes."""
    standby = replicated.standby
    assert standby is not None
    primary = replicated.primary
    url = f"postgresql://postgres@127.0.0.1:{standby.port},127.0.0.1:{primary.port}/postgres"
    store = await PostgresStore(url, connect_timeout_s=2).open()
    try:
        await store.migrate()
        assert (store.timeline, store.timeline_changes) == (1, 0)
        owner = await make_user(store, "before-failover")

        # A fast shutdown, not kill(): as root, PgServer.kill() leaves the old
        # postmaster.pid behind and the later restart fails.
        primary.stop()
        standby.promote()
        assert await eventually(lambda: store.get_user(owner.id)) is not None
        assert (store.timeline, store.timeline_changes) == (2, 1)

        primary.start()  # the old primary is back, read-write, on timeline 1
        standby.stop()
        with pytest.raises(Unavailable):
            await eventually(store.ping, within_s=3)
        assert (store.timeline, store.timeline_changes) == (2, 1)
    finally:
        await store.close()
