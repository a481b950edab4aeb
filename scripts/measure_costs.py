"""Per-unit costs for the capacity model (``scripts/capacity_model.py``)
that the benchmarks in ``docs/benchmarks.md`` do not give: WAL per edit and
Redis CPU per edit and per heartbeat.

    .venv/bin/python scripts/measure_costs.py [wal] [redis] [--out FILE.json]

``wal``: one ``collab serve`` replica on PostgreSQL + Redis (the benchmark
harness's stack, ``loadtests/harness/stack.py``, on a fresh database);
``--notes`` notes of each starting size (``--sizes``, random words, which
compress about as badly as prose: PostgreSQL compresses a large ``content``),
one holder per note committing one-character edits, one in flight, for
``--duration`` s (``loadtests/harness/roles.py``, ``editors``). The WAL is read
with ``pg_walinspect`` between the LSNs before and after: only records that
touch this run's database, plus every record (commits included) of a
transaction that does, so other users of the same server do not count.
Full-page images (the first change to a page after a checkpoint) are counted
apart. Also the average stored size of an edit-log row and of a note row, and the
CPU of this database's PostgreSQL backends per edit.

``redis``: a Redis of its own (``tests/support/services.py``, so nothing else
counts) under two replicas; its CPU seconds (psutil) over (1) ``--idle``
authenticated idle sockets heartbeating for ``--idle-s`` s, per heartbeat, and
(2) a fan-out run (``loadtests/harness/fanout.py``: one writer on replica A,
``--viewers`` viewers on replica B, ``--rate`` edits/s), per edit; and the
server CPU per heartbeat.

``pubsub``: Redis CPU per PUBLISH of a 300-byte message with 0, 1, 4 and 8
subscribers (``redis-benchmark``, not pipelined, as the bus publishes), so the
cost of a publish and of each delivery at full load can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.harness import fanout  # noqa: E402
from loadtests.harness.bench import Bench  # noqa: E402
from loadtests.harness.drivers import split  # noqa: E402
from loadtests.harness.routing import pg_backends  # noqa: E402
from loadtests.harness.stack import raise_fd_limit, start_stack  # noqa: E402
from loadtests.harness.stats import CpuMeter  # noqa: E402
from loadtests.harness.wsclient import ws_url  # noqa: E402
from tests.support.services import RedisServer  # noqa: E402

ENV = {  # one owner creates every note; the edit rate limit is not what is measured
    "COLLAB_NOTE_CREATE_PER_USER_PER_MIN": "100000",
    "COLLAB_NOTE_CREATE_BURST_PER_USER": "100000",
    "COLLAB_EDIT_RATE_PER_S": "100000",
    "COLLAB_EDIT_BURST": "100000",
}

PUBSUB_PAYLOAD_BYTES = 300  # about an `edited` event of a one-character edit
HEARTBEAT_S = 5.0  # COLLAB_HEARTBEAT_MS default: every idle socket beats this often

# Records of this database's relations, and every record of the transactions
# that wrote one (their commit records carry no relation).
_OURS = """
WITH r AS (SELECT * FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)),
     xids AS (SELECT DISTINCT xid::text AS x FROM r WHERE block_ref LIKE $3 AND xid::text <> '0')
SELECT count(*) AS records,
       coalesce(sum(record_length), 0) AS bytes,
       coalesce(sum(fpi_length), 0) AS fpi_bytes,
       count(*) FILTER (WHERE resource_manager = 'Transaction') AS commits
FROM r WHERE block_ref LIKE $3 OR xid::text IN (SELECT x FROM xids)
"""


def prose(size: int) -> str:
    """``size`` random letters in words: compresses about as badly as text does
    (PostgreSQL compresses a large ``content`` before storing it)."""
    words = ("".join(random.choices(string.ascii_lowercase, k=random.randint(2, 9)))
             for _ in range(size))  # fmt: skip
    return " ".join(words)[:size]


async def create_note(base: str, token: str, content: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post(
            "/api/notes",
            json={"title": "wal", "content": content, "visibility": "private"},
            headers={"authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        return str(r.json()["id"])


async def lsn(db: str) -> str:
    conn = await asyncpg.connect(db)
    try:
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()


async def wal_between(db: str, start: str, end: str) -> dict[str, Any]:
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        oid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        row = await conn.fetchrow(_OURS, start, end, f"%rel %/{oid}/%")
        total = await conn.fetchval(
            "SELECT pg_wal_lsn_diff($2::text::pg_lsn, $1::text::pg_lsn)", start, end
        )
    finally:
        await conn.close()
    return {**dict(row), "server_wal_bytes": int(total)}


async def row_sizes(db: str, notes: list[str]) -> dict[str, float]:
    conn = await asyncpg.connect(db)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT avg(pg_column_size(e.*)) FROM edits e WHERE note_id = ANY($1)) AS edit,"
            " (SELECT avg(pg_column_size(n.*)) FROM notes n WHERE id = ANY($1)) AS note,"
            " (SELECT avg(octet_length(content)) FROM notes WHERE id = ANY($1)) AS content",
            notes,
        )
    finally:
        await conn.close()
    return {k: round(float(v or 0), 1) for k, v in dict(row).items()}


def measure(bench: Bench, size: int, count: int, duration: float) -> dict[str, Any]:
    url = bench.stack.url(0)
    owner = bench.owner
    notes = [asyncio.run(create_note(url, owner.token, prose(size))) for _ in range(count)]
    pairs = [(owner.token, n) for n in notes]
    specs, start = [], 0
    for share in split(len(pairs), 2):
        specs.append({"url": ws_url(url), "pairs": pairs[start : start + share], "window": 1})
        start += share
    pool = bench.pool("editors", [s for s in specs if s["pairs"]])
    db = bench.stack.database_url
    try:
        pool.gather("ready")
        pids = asyncio.run(pg_backends(db))
        meter = CpuMeter({f"postgres{i}": pid for i, pid in enumerate(pids)})
        meter.start()
        before = asyncio.run(lsn(db))
        pool.broadcast("go", duration)
        res = pool.gather("result", timeout=duration + 120)
        after = asyncio.run(lsn(db))
        cpu = meter.stop()
    finally:
        pool.stop()
    acked = sum(r["acked"] for r in res)
    wal = asyncio.run(wal_between(db, before, after))
    sizes = asyncio.run(row_sizes(db, notes))
    per = max(1, acked)
    row = {
        "note_chars": size,
        # Each edit adds one character: the notes' mean length over the run.
        "note_chars_mean": round(size + acked / max(1, count) / 2),
        "notes": count,
        "edits": acked,
        "errors": [r["errors"] for r in res if r["errors"]],
        "wal_bytes_per_edit": round(wal["bytes"] / per),
        "wal_bytes_per_edit_without_fpi": round((wal["bytes"] - wal["fpi_bytes"]) / per),
        "records_per_edit": round(wal["records"] / per, 2),
        "commits": wal["commits"],
        "server_wal_bytes_per_edit": round(wal["server_wal_bytes"] / per),
        "row_bytes": sizes,
        "postgres_us_per_edit": round(
            sum(v["cpu_s"] for v in cpu.values() if isinstance(v, dict)) / per * 1e6
        ),
    }
    print(
        f"{size:>6} chars x {count} notes: {acked} edits, WAL {row['wal_bytes_per_edit']} B/edit "
        f"({row['wal_bytes_per_edit_without_fpi']} without full-page images, "
        f"{row['records_per_edit']} records); whole server {row['server_wal_bytes_per_edit']} "
        f"B/edit; rows: edit {sizes['edit']} B, note {sizes['note']} B; PostgreSQL "
        f"{row['postgres_us_per_edit']} us CPU/edit",
        flush=True,
    )
    return row


def wal_costs(args: argparse.Namespace) -> list[dict[str, Any]]:
    stack = start_stack("distributed", 1, ENV)
    try:
        bench = Bench(stack=stack, out_dir=Path("."), drivers=2, env_overrides=ENV)
        bench.register(1)
        rows = [
            measure(bench, int(s), args.notes, args.duration) for s in args.sizes.split(",") if s
        ]
    except BaseException:
        stack.close(failed=True)
        raise
    stack.close()
    return rows


def redis_costs(args: argparse.Namespace) -> dict[str, Any]:
    redis_server = RedisServer().start()
    saved = os.environ.get("COLLAB_TEST_REDIS_URL")
    os.environ["COLLAB_TEST_REDIS_URL"] = redis_server.url  # start_stack's Redis
    try:
        stack = start_stack("distributed", 2, ENV)
    finally:
        if saved is None:
            os.environ.pop("COLLAB_TEST_REDIS_URL", None)
        else:
            os.environ["COLLAB_TEST_REDIS_URL"] = saved
    assert redis_server.proc is not None
    redis_pid = redis_server.proc.pid
    try:
        bench = Bench(stack=stack, out_dir=Path("."), drivers=2, env_overrides=ENV)
        bench.register(20)
        out: dict[str, Any] = {"idle": idle_heartbeats(bench, redis_pid, args)}
        fan = CpuMeter({"redis": redis_pid, **stack.pid_labels()})

        class Metered:
            """Meters Redis and both servers while the writer types."""

            def __init__(self) -> None:
                fan.start()

            def stop(self) -> None:
                out["fanout_cpu"] = fan.stop()

        row = fanout.run_one(
            bench, args.viewers, "cross", args.rate, args.fanout_s, on_start=Metered
        )
        edits = row["edits_acked"]
        cpu = out.pop("fanout_cpu")
        out["fanout"] = {
            "viewers": args.viewers,
            "edits": edits,
            "pushes": row["fanout_ms"].get("count", 0),
            "lost": row["lost"],
            "redis_us_per_edit": round(cpu["redis"]["cpu_s"] / max(1, edits) * 1e6, 1),
            "writer_server_us_per_edit": round(cpu["server1"]["cpu_s"] / max(1, edits) * 1e6),
            "viewer_server_us_per_push": round(
                cpu["server2"]["cpu_s"] / max(1, row["fanout_ms"].get("count", 1)) * 1e6, 1
            ),
            "cpu": cpu,
        }
        print(f"fan-out: {out['fanout']}", flush=True)
    except BaseException:
        stack.close(failed=True)
        redis_server.stop()
        raise
    stack.close()
    redis_server.stop()
    return out


def pubsub_costs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Redis CPU per PUBLISH of a bus-sized message to 0, 1, 4 and 8
    subscribers (``redis-benchmark``, 16 clients, one command per round trip as
    the bus sends them, on a Redis of its own): the
    cost of a publish and of each delivery, at full load."""
    bench_exe = shutil.which("redis-benchmark")
    cli = shutil.which("redis-cli")
    if bench_exe is None or cli is None:
        print("pubsub: redis-benchmark or redis-cli missing, skipped", flush=True)
        return []
    payload = "x" * PUBSUB_PAYLOAD_BYTES
    rows = []
    for subscribers in (0, 1, 4, 8):
        server = RedisServer().start()
        assert server.proc is not None
        subs = [
            subprocess.Popen([cli, "-p", str(server.port), "subscribe", "ch"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(subscribers)
        ]  # fmt: skip
        try:
            time.sleep(0.5)
            proc = psutil.Process(server.proc.pid)
            before = sum(proc.cpu_times()[:2])
            subprocess.run(
                [bench_exe, "-p", str(server.port), "-n", str(args.publishes), "-c", "16",
                 "-P", "1", "-q", "publish", "ch", payload],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            used = sum(proc.cpu_times()[:2]) - before
        finally:
            for sub in subs:
                sub.kill()
                sub.wait(5)
            server.stop()
        row = {
            "subscribers": subscribers,
            "publishes": args.publishes,
            "redis_us_per_publish": round(used / args.publishes * 1e6, 2),
        }
        print(f"pubsub: {row}", flush=True)
        rows.append(row)
    return rows


def idle_heartbeats(bench: Bench, redis_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    stack = bench.stack
    pool = bench.pool("idlers", [{"url": ws_url(stack.url(0)), "tokens": bench.tokens(0)}])
    try:
        pool.gather("ready")
        pool.broadcast("grow", args.idle)
        (grown,) = pool.gather("grown", timeout=600)
        time.sleep(6)  # one heartbeat period for every socket before metering
        meter = CpuMeter({"redis": redis_pid, **stack.pid_labels()})
        meter.start()
        time.sleep(args.idle_s)
        cpu = meter.stop()
        pool.broadcast("finish")
        pool.gather("result", timeout=120)
    finally:
        pool.stop()
    beats = grown["open"] * args.idle_s / HEARTBEAT_S
    row = {
        "sockets": grown["open"],
        "heartbeats": round(beats),
        "redis_us_per_heartbeat": round(cpu["redis"]["cpu_s"] / max(1, beats) * 1e6, 1),
        "server_us_per_heartbeat": round(cpu["server1"]["cpu_s"] / max(1, beats) * 1e6, 1),
        "cpu": cpu,
    }
    print(f"idle: {row}", flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", nargs="*", help="wal, redis, pubsub (default: all three)")
    p.add_argument("--sizes", default="0,2000,20000", help="wal: starting note sizes (characters)")
    p.add_argument("--notes", type=int, default=8, help="wal: notes per size, one holder each")
    p.add_argument("--duration", type=float, default=10.0, help="wal: seconds of edits per size")
    p.add_argument("--idle", type=int, default=2000, help="redis: idle sockets")
    p.add_argument("--idle-s", type=float, default=20.0, help="redis: seconds metered idle")
    p.add_argument("--viewers", type=int, default=10, help="redis: fan-out viewers")
    p.add_argument("--rate", type=float, default=100.0, help="redis: fan-out edits/s")
    p.add_argument("--fanout-s", type=float, default=10.0, help="redis: fan-out seconds")
    p.add_argument("--publishes", type=int, default=200_000, help="pubsub: per subscriber count")
    p.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = p.parse_args()
    args.what = args.what or ["wal", "redis", "pubsub"]
    if not set(args.what) <= {"wal", "redis", "pubsub"}:
        p.error(f"unknown measurement in {args.what}: wal, redis, pubsub")
    raise_fd_limit()
    result: dict[str, Any] = {}
    if "wal" in args.what:
        result["wal"] = wal_costs(args)
    if "redis" in args.what:
        result["redis"] = redis_costs(args)
    if "pubsub" in args.what:
        result["pubsub"] = pubsub_costs(args)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(not r["errors"] for r in result.get("wal", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
