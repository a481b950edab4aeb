"""Fixtures of the fault scenarios: one PostgreSQL primary with a synchronous
streaming standby per module (scenarios that destroy it make their own), a
fresh database and a fresh ``World`` per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.faults.harness import World
from tests.support.services import PgCluster, with_database


def start_cluster(synchronous: bool) -> PgCluster:
    """A primary with one streaming standby, the standby synchronous or not.

    ``PgCluster(synchronous=True)`` names the standby ``standby1`` in
    postgresql.conf, but ``pg_basebackup -R`` writes ``primary_conninfo`` to
    postgresql.auto.conf, which wins, so the standby connects as
    ``walreceiver`` and every commit would wait forever. Here the primary
    accepts any standby (``'*'``) and we wait until it reports ``sync``."""
    cluster = PgCluster(standby=True).start()
    if synchronous:
        asyncio.run(_make_synchronous(cluster.primary.url()))
    return cluster


async def _make_synchronous(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        await conn.execute("SELECT pg_reload_conf()")
        for _ in range(100):
            state = await conn.fetchval("SELECT sync_state FROM pg_stat_replication LIMIT 1")
            if state == "sync":
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the standby never became synchronous")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster(synchronous=True)
    yield cluster
    cluster.stop()


async def fresh_database(cluster: PgCluster) -> str:
    name = "fault_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(cluster.primary.url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(cluster.primary.url(), name)


@pytest.fixture
async def world(pg_cluster: PgCluster) -> AsyncIterator[World]:
    """A world on a fresh database; replicas are started by the test."""
    w = World(await fresh_database(pg_cluster))
    yield w
    await w.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The soak runs only when asked for (``pytest -m soak``), never in the
    default run, whatever the default options are."""
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="soak: run with -m soak")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
