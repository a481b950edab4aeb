"""PostgreSQL primary killed mid-edit, standby promoted, old primary back
(docs/reliability.md, failure model). Each test destroys its own cluster."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import asyncpg
import pytest

from tests.faults.conftest import fresh_database, start_cluster
from tests.faults.harness import LOCK_DELAY_S, TTL_S, World, acquire, eventually, write
from tests.support.client import new_op
from tests.support.history import RecordingClient
from tests.support.history_check import check_history
from tests.support.services import PgCluster

EDITS_BEFORE, RETRY_S = 5, 30.0


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[tuple[PgCluster, bool]]:
    """(cluster, synchronous) -- the parameter says whether the standby is synchronous."""
    c = start_cluster(synchronous=request.param)
    yield c, bool(request.param)
    c.stop()


def multi_host(c: PgCluster, db: str) -> str:
    assert c.standby is not None
    return (
        f"postgresql://postgres@127.0.0.1:{c.primary.port},127.0.0.1:{c.standby.port}"
        f"/{db}?target_session_attrs=read-write"
    )


async def keep_writing(
    client: RecordingClient, note: str, fence: list[int], stop: asyncio.Event, acked: list[str]
) -> None:
    """Edit until ``stop``; an unacknowledged op is retried with the same id
    (re-acquiring the token when it was lost), as a client must."""
    i = 0
    while not stop.is_set():
        op, marker = new_op(), f"[w-{i}]"
        while not stop.is_set():
            try:
                reply = await write(client, note, fence[0], marker, op=op, reply_s=3)
            except TimeoutError:
                continue
            if reply["type"] == "ack":
                acked.append(marker)
                break
            if reply.get("code") == "fenced":
                with contextlib.suppress(AssertionError, TimeoutError):
                    fence[0] = await acquire(client, note)
            await asyncio.sleep(0.1)
        i += 1


@pytest.mark.parametrize("cluster", [True, False], ids=["sync", "async"], indirect=True)
async def test_primary_killed_and_standby_promoted(cluster: tuple[PgCluster, bool]) -> None:
    """Kill the primary mid-edit, promote the standby. The replicas reconnect
    by themselves (multi-host DSN); the lease held across the failover is
    void (``reset`` on the timeline change, or ``expired`` first). With
    synchronous replication every acknowledged edit is there; without it
    only a suffix of the last acknowledged edits may be lost (the documented
    RPO) and the log still replays to the text."""
    pg, synchronous = cluster
    assert pg.standby is not None
    db = (await fresh_database(pg)).rsplit("/", 1)[1]
    world = World(multi_host(pg, db))
    try:
        await world.start()
        note, (u1,) = await world.writers(1)
        client = await world.client("writer", u1, 0, note)
        fence = [await acquire(client, note)]
        stop, acked = asyncio.Event(), list[str]()
        writer = asyncio.create_task(keep_writing(client, note, fence, stop, acked))
        await eventually(lambda: len(acked) >= EDITS_BEFORE, RETRY_S, "first edits")
        pg.primary.kill()
        killed_at = len(acked)
        world.history.fault("primary_killed", stall_s=RETRY_S)
        await asyncio.to_thread(pg.standby.promote)
        await eventually(lambda: len(acked) >= killed_at + 3, RETRY_S, "writes on the new primary")
        stop.set()
        await writer
        # The timeline change voids the lease within one reconcile tick (it may
        # land after the first writes on the new primary were acknowledged).
        await eventually(
            lambda: any(f.get("type") == "lease_lost" for f in client.frames), RETRY_S, "lease void"
        )
        lost = [f for f in client.frames if f.get("type") == "lease_lost"]
        # Voided by the timeline change (``reset``) or, when a heartbeat was
        # stuck behind an edit waiting for the dead primary, by expiry first.
        assert lost and {f["reason"] for f in lost} <= {"reset", "expired"}, lost
        await world.history.collect_final(world.database_url, [note])
        text = world.history.final[note].content
        missing = [m for m in acked if m not in text]
        found = check_history(world.history, TTL_S, LOCK_DELAY_S)
        if synchronous:
            assert not missing and not found, (missing, [str(v) for v in found])
        else:
            # RPO: only the newest edits acknowledged before the kill may be gone.
            assert missing == acked[killed_at - len(missing) : killed_at], missing
            real = [
                v
                for v in found
                if v.check != "acked_edits_durable" and not any(m in v.detail for m in missing)
            ]
            assert not real, [str(v) for v in real]
    finally:
        await world.close()


@pytest.mark.parametrize("cluster", [True], ids=["sync"], indirect=True)
async def test_old_primary_restarted_unfenced_is_refused(cluster: tuple[PgCluster, bool]) -> None:
    """After a failover the old primary comes back, unfenced, as a primary on
    the old timeline and first in the DSN. When the replicas' connections
    drop, the next connection reaches it first: the app refuses it (lower
    timeline), goes on to the new primary, and no write lands on the old one."""
    pg, _ = cluster
    assert pg.standby is not None
    db = (await fresh_database(pg)).rsplit("/", 1)[1]
    world = World(multi_host(pg, db))
    try:
        await world.start()
        note, (u1,) = await world.writers(1)
        client = await world.client("writer", u1, 0, note)
        fence = await acquire(client, note)
        assert (await write(client, note, fence, "[before]"))["type"] == "ack"
        pg.primary.kill()
        await asyncio.to_thread(pg.standby.promote)
        world.history.fault("failover", stall_s=RETRY_S)
        deadline = time.monotonic() + RETRY_S
        while True:  # the app finds the new primary and voids the lease (rule 10)
            got = await client.request("acquire", note=note, wait=False, timeout=5)
            if got["type"] == "granted" and got["fence"] > fence:
                fence = int(got["fence"])
                break
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.2)
        assert (await write(client, note, fence, "[after]"))["type"] == "ack"
        await asyncio.to_thread(pg.primary.start)  # the old primary, old timeline
        new = await asyncpg.connect(pg.standby.url(db))
        try:  # a network blip: every app connection to the new primary drops
            await new.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                db,
            )
        finally:
            await new.close()
        # The app skips the old primary (lower timeline) and reaches the new one,
        # which is second in the DSN; a retry may see "unavailable" meanwhile.
        outcomes = []
        for i in range(20):
            reply = await client.request(
                "edit",
                note=note,
                fence=fence,
                base=2,
                op=new_op(),
                changes=[{"at": 0, "del": 0, "ins": f"[x{i}]"}],
            )
            outcomes.append(reply.get("code", reply["type"]))
            if outcomes[-1] == "ack":
                break
            await asyncio.sleep(0.2)
        assert outcomes[-1] == "ack" and set(outcomes) <= {"ack", "unavailable"}, outcomes
        old = await asyncpg.connect(pg.primary.url(db))
        try:
            rows = await old.fetch("SELECT payload::text AS p FROM edits")
        finally:
            await old.close()
        assert not [r for r in rows if "[x" in r["p"] or "[after]" in r["p"]]
    finally:
        await world.close()
