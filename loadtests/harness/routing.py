"""Routing: does each replica hear only the notes it serves, and does edit
capacity grow with replicas?

``python -m loadtests.harness routing`` starts ``max(--counts)`` replicas on
PostgreSQL + Redis and creates ``--notes`` public notes. Each note has
``--viewers`` subscribed sockets and one writer holding its token, all on ONE
replica (note ``i`` on replica ``i mod k``), so every note's events need to
reach that replica only.

1. **routing pass** on every replica: each writer types ``--rate`` edits/s
   for ``--duration`` s. Every replica's ``collab_bus_events_received_total``
   and ``..._published_total`` (``/metrics``) are read before and after; each
   replica should receive about ``1/k`` of the events published in all (a
   replica that heard every event would receive all of them).
2. **throughput passes** with 1, 2, ... replicas (``--counts``): the same
   notes spread over the first ``k`` replicas, every writer keeping
   ``--window`` edits in flight for ``--load-duration`` s (``--load-rate`` 0:
   as fast as acks return). Reports edits acknowledged and edit pushes
   delivered to viewers per second, events received per replica, and the CPU
   of every server, the drivers, this database's PostgreSQL backends and
   Redis. The replicas a pass does not use stay up, idle.

Every pass checks that nothing was lost: each viewer saw every version of its
note exactly once and in order, and each note's stored version is the last one
acknowledged. ``python -m loadtests.harness.routing plot [RESULTS] [PNG]``
draws a result file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from loadtests.harness import stats
from loadtests.harness.bench import Bench, cores_summary
from loadtests.harness.drivers import Control, Pool, Worker, _worker_main, split
from loadtests.harness.roles import ViewerTrack
from loadtests.harness.stack import Stack, start_stack
from loadtests.harness.wsclient import Conn, Frame, ProtocolError, get_note, ws_url
from loadtests.optime import op_time_ns, timed_op

SETUP_CONCURRENCY = 8  # notes whose sockets a driver process sets up at once
SETUP_RETRIES = 4
COUNTERS = ("collab_bus_events_received", "collab_bus_events_published")
# Benchmark-only limits: one owner creates many notes, and a throughput pass
# measures the commit path rather than the per-socket edit rate limit.
ROUTING_ENV = {
    "COLLAB_NOTE_CREATE_PER_USER_PER_MIN": "100000",
    "COLLAB_NOTE_CREATE_BURST_PER_USER": "100000",
    "COLLAB_EDIT_RATE_PER_S": "100000",
    "COLLAB_EDIT_BURST": "100000",
}


@dataclass
class Options:
    notes: int = 300
    viewers: int = 2  # per note
    rate: float = 0.5  # edits/s per note in the routing pass
    duration: float = 15.0
    counts: list[int] = field(default_factory=lambda: [1, 2, 3])
    load_rate: float = 0.0  # edits/s per note in the throughput passes; 0: closed loop
    window: int = 1
    load_duration: float = 10.0
    procs: int = 3  # driver processes per pass
    grace_s: float = 10.0  # how long viewers may trail the last ack


def add_parser(sub: Any) -> None:
    r = sub.add_parser("routing", help="events per replica, edits/s with 1..N replicas")
    r.add_argument("--notes", type=int, default=Options.notes)
    r.add_argument("--viewers", type=int, default=Options.viewers, help="per note")
    r.add_argument("--rate", type=float, default=Options.rate, help="edits/s per note")
    r.add_argument("--duration", type=float, default=Options.duration)
    r.add_argument("--counts", default="1,2,3", help="replica counts of the throughput passes")
    r.add_argument("--load-rate", type=float, default=Options.load_rate,
                   help="edits/s per note in the throughput passes (0: closed loop)")  # fmt: skip
    r.add_argument("--window", type=int, default=Options.window, help="edits in flight per writer")
    r.add_argument("--load-duration", type=float, default=Options.load_duration)
    r.add_argument("--procs", type=int, default=Options.procs, help="driver processes per pass")
    r.add_argument("--plot", type=Path, default=None, help="also draw the result as this PNG")


def main(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    """Entry from ``loadtests.harness``: its own stack of ``max(counts)`` replicas."""
    if args.stack != "distributed":
        raise SystemExit("routing needs replicas on PostgreSQL + Redis: --stack distributed")
    opts = Options(
        notes=args.notes, viewers=args.viewers, rate=args.rate, duration=args.duration,
        counts=[int(c) for c in args.counts.split(",") if c], load_rate=args.load_rate,
        window=args.window, load_duration=args.load_duration, procs=args.procs,
    )  # fmt: skip
    env = {**ROUTING_ENV, **overrides}
    stack = start_stack("distributed", max([*opts.counts, 1]), env)
    try:
        bench = Bench(stack=stack, out_dir=args.out, drivers=opts.procs, env_overrides=env)
        bench.register(args.users)
        print(f"routing: {len(stack.urls)} replicas, {len(bench.accounts)} accounts", flush=True)
        result = run(bench, opts)
        saved = bench.save("routing", result)
        print(f"wrote {saved}", flush=True)
        if args.plot is not None:
            print(f"wrote {plot(json.loads(saved.read_text()), args.plot)}", flush=True)
    except BaseException:
        stack.close(failed=True)
        raise
    stack.close()
    return 1 if result["problems"] else 0


# -- the parent: passes and what they report ----------------------------------------------
def run(bench: Bench, opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    notes = _create_notes(bench, opts.notes)
    problems: list[str] = []
    replicas = len(bench.stack.urls)
    print(f"routing pass: {opts.notes} notes on {replicas} replicas, {opts.rate} edits/s each",
          flush=True)  # fmt: skip
    routing = _pass(bench, notes, replicas, opts, opts.rate, 1 << 20, opts.duration, problems)
    loads = []
    for k in opts.counts:
        print(f"throughput pass: {k} replica(s)", flush=True)
        loads.append(
            _pass(bench, notes, k, opts, opts.load_rate, opts.window, opts.load_duration, problems)
        )
    result = {
        "options": opts.__dict__,
        "routing": routing,
        "throughput": loads,
        "problems": problems,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(report(result), flush=True)
    return result


def _create_notes(bench: Bench, count: int) -> list[tuple[str, str]]:
    """``count`` public notes as (note id, owner token), owners in turn."""
    owners = [bench.accounts[i % len(bench.accounts)] for i in range(count)]

    async def make() -> list[str]:
        from loadtests.harness.wsclient import create_note

        gate = asyncio.Semaphore(16)

        async def one(token: str) -> str:
            async with gate:
                return await create_note(bench.stack.url(0), token)

        return list(await asyncio.gather(*(one(a.token) for a in owners)))

    ids = asyncio.run(make())
    return [(n, a.token) for n, a in zip(ids, owners, strict=True)]


def _pass(
    bench: Bench,
    notes: list[tuple[str, str]],
    replicas: int,
    opts: Options,
    rate: float,
    window: int,
    duration: float,
    problems: list[str],
) -> dict[str, Any]:
    """One pass: note ``i`` and its sockets on replica ``i mod replicas``."""
    stack = bench.stack
    tokens = bench.tokens(0)
    items = [
        {
            "note": note,
            "replica": i % replicas,
            "url": ws_url(stack.url(i % replicas)),
            "writer": owner,
            "viewers": [tokens[(i * opts.viewers + j) % len(tokens)] for j in range(opts.viewers)],
        }
        for i, (note, owner) in enumerate(notes)
    ]
    procs = max(1, min(opts.procs, len(items)))
    specs, start = [], 0
    for share in split(len(items), procs):
        specs.append({"notes": items[start : start + share], "grace_s": opts.grace_s})
        start += share
    pool = Pool([RoutingWorker("note_groups", s) for s in specs if s["notes"]])
    try:
        setup_started = time.monotonic()
        pool.gather("ready", timeout=600)
        print(f"  {len(items) * (opts.viewers + 1)} sockets set up in "
              f"{time.monotonic() - setup_started:.1f} s", flush=True)  # fmt: skip
        before = bus_counters(stack.urls)
        load_before = stats.loadavg()
        meter = _meter(bench, pool)
        machine = MachineCpu()
        meter.start()
        pool.broadcast("go", (rate, window, duration))
        res = pool.gather("result", timeout=duration + opts.grace_s + 180)
        cpu = meter.stop()
        busy = machine.stop()
        after = settled_counters(stack.urls)
    finally:
        pool.stop()
    finals = {n: v for r in res for n, v in r["finals"].items()}
    stored = asyncio.run(_stored_versions(stack, notes))
    mismatched = sum(1 for n, _ in notes if stored[n] != finals.get(n))
    totals = Counter[str]()
    for r in res:
        totals.update({k: v for k, v in r.items() if isinstance(v, int)})
    errors = Counter[str]()
    for r in res:
        errors.update(r["errors"])
    by_replica = Counter[int]()
    for r in res:
        by_replica.update({int(k): v for k, v in r["acked_by_replica"].items()})
    retried = Counter[str]()
    for r in res:
        retried.update(r["setup_retries"])
    per_replica = replica_shares(before, after)
    latency = stats.merge_arrays(r["latency_ms"] for r in res)
    row: dict[str, Any] = {
        "replicas": replicas,
        "notes": len(notes),
        "viewers_per_note": opts.viewers,
        "rate_per_note": rate,
        "window": window,
        "duration_s": duration,
        "sent": totals["sent"],
        "acked": totals["acked"],
        "acked_per_s": round(totals["acked_in_window"] / duration, 1),
        "delivered": totals["delivered"],
        "delivered_per_s": round(totals["delivered_in_window"] / duration, 1),
        "acked_by_replica": [by_replica.get(i, 0) for i in range(len(stack.urls))],
        "lost": totals["lost"],
        "reordered": totals["reordered"],
        "duplicates": totals["duplicates"],
        "closed_by_server": totals["closed"],
        "stored_mismatched": mismatched,
        "errors": dict(errors),
        "setup_retries": dict(retried),
        "bus": per_replica,
        "fanout_ms": stats.summarize(latency),
        "ack_ms": stats.summarize(stats.merge_arrays(r["ack_ms"] for r in res)),
        "cpu": cpu,
        "machine_busy_cores": busy,
        "loadavg_before": load_before,
        "loadavg_after": stats.loadavg(),
    }
    label = f"{replicas} replica(s)"
    for key in ("lost", "reordered", "duplicates", "closed_by_server", "stored_mismatched"):
        if row[key]:
            problems.append(f"{label}: {key} = {row[key]}")
    if row["sent"] != row["acked"]:
        problems.append(f"{label}: {row['sent'] - row['acked']} edits unacknowledged {errors}")
    print(
        f"  acked {row['acked']} ({row['acked_per_s']}/s), delivered {row['delivered']} "
        f"({row['delivered_per_s']}/s), lost {row['lost']}, fan-out "
        f"{stats.brief(row['fanout_ms'])}; received per replica "
        f"{[b['received'] for b in per_replica]} of {sum(b['published'] for b in per_replica)} "
        f"published; cores {cores_summary(cpu)} machine {busy}; load {load_before}",
        flush=True,
    )
    return row


async def _stored_versions(stack: Stack, notes: list[tuple[str, str]]) -> dict[str, int]:
    gate = asyncio.Semaphore(16)

    async def one(note: str, token: str) -> tuple[str, int]:
        async with gate:
            return note, int((await get_note(stack.url(0), token, note))["version"])

    return dict(await asyncio.gather(*(one(n, t) for n, t in notes)))


# -- counters and CPU ------------------------------------------------------------------
def parse_counters(text: str) -> dict[str, dict[str, float]]:
    """``{counter: {kind: value}}`` of the bus counters in a ``/metrics`` page."""
    out: dict[str, dict[str, float]] = {name: {} for name in COUNTERS}
    for family in text_string_to_metric_families(text):
        if family.name in out:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[family.name][sample.labels.get("kind", "")] = sample.value
    return out


def bus_counters(urls: Sequence[str]) -> list[dict[str, dict[str, float]]]:
    pages = []
    for url in urls:
        r = httpx.get(url + "/metrics", timeout=10)
        r.raise_for_status()
        pages.append(parse_counters(r.text))
    return pages


def settled_counters(urls: Sequence[str], tries: int = 10) -> list[dict[str, dict[str, float]]]:
    """The counters once two readings 0.2 s apart agree: an edit is published
    just after its ack and its local pushes, so the last few may still be on
    their way through Redis when the drivers report."""
    last = bus_counters(urls)
    for _ in range(tries):
        time.sleep(0.2)
        now = bus_counters(urls)
        if now == last:
            break
        last = now
    return last


def replica_shares(
    before: list[dict[str, dict[str, float]]], after: list[dict[str, dict[str, float]]]
) -> list[dict[str, Any]]:
    """Per replica: events received and published between the two readings
    (by kind too), and the share of all events published that it received."""
    rows = []
    for b, a in zip(before, after, strict=True):
        delta = {
            name: {k: int(v - b[name].get(k, 0.0)) for k, v in a[name].items()} for name in COUNTERS
        }
        delta = {name: {k: v for k, v in kinds.items() if v} for name, kinds in delta.items()}
        row: dict[str, Any] = {
            "received": sum(delta["collab_bus_events_received"].values()),
            "published": sum(delta["collab_bus_events_published"].values()),
            "received_by_kind": delta["collab_bus_events_received"],
            "published_by_kind": delta["collab_bus_events_published"],
        }
        rows.append(row)
    total = sum(r["published"] for r in rows)
    for r in rows:
        r["share_of_published"] = round(r["received"] / total, 3) if total else 0.0
    return rows


def _meter(bench: Bench, pool: Pool) -> stats.CpuMeter:
    """Servers and drivers, plus this run's PostgreSQL backends and Redis
    when they run on this host (Redis is shared with anything else using it)."""
    meter = bench.meter(("driver", pool))
    extra: dict[str, int] = {}
    for i, pid in enumerate(asyncio.run(pg_backends(bench.stack.database_url))):
        extra[f"postgres{i + 1}"] = pid
    redis_pid = _redis_pid(bench.stack.env.get("COLLAB_REDIS_URL", ""))
    if redis_pid is not None:
        extra["redis"] = redis_pid
    for label, pid in extra.items():
        if psutil.pid_exists(pid):
            meter.procs[label] = psutil.Process(pid)
    return meter


async def pg_backends(database_url: str) -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _redis_pid(url: str) -> int | None:
    if not url or ("127.0.0.1" not in url and "localhost" not in url):
        return None
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()


class MachineCpu:
    """Busy cores of the whole host over a window (every process, ours or not)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = psutil.cpu_times()

    def stop(self) -> float:
        c1 = psutil.cpu_times()
        idle = (c1.idle - self._c0.idle) + (c1.iowait - self._c0.iowait)
        total = sum(c1) - sum(self._c0)
        wall = max(1e-9, time.monotonic() - self._t0)
        return round(float(total - idle) / wall, 2)


# -- the driver process ------------------------------------------------------------------
def _child(role: str, spec: dict[str, Any], pipe: Connection) -> None:
    """Driver entry point: ``drivers._worker_main`` runs roles it finds in
    ``roles``, so this module's role is made visible there first."""
    from loadtests.harness import roles

    setattr(roles, role, globals()[role])
    _worker_main(role, spec, pipe)


class RoutingWorker(Worker):
    """A ``drivers.Worker`` whose role is defined in this module."""

    def __init__(self, role: str, spec: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.role = role
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(role, spec, child), daemon=True)
        self.proc.start()
        child.close()


class _Group:
    """One note in a driver process: its viewers and its writer."""

    def __init__(self, item: dict[str, Any], window_end: list[int]) -> None:
        self.note: str = item["note"]
        self.replica: int = item["replica"]
        self.url: str = item["url"]
        self.item = item
        self.viewers: list[tuple[Conn, ViewerTrack]] = []
        self.writer: Conn | None = None
        self.fence = self.v0 = self.length = 0
        self.final = 0
        self.delivered = self.delivered_in_window = 0
        self.window_end = window_end  # shared: [ns], 0 until the pass starts

    def on_push(self, track: ViewerTrack) -> Any:
        def handle(frame: Frame, now_ns: int) -> None:
            if frame.get("type") != "edited" or frame.get("note") != self.note:
                return
            version = frame["version"]
            sent = op_time_ns(frame["op"])
            if sent is not None:
                track.lat.append((now_ns - sent) / 1e6)
            if version in track.seen:
                track.dup += 1
                return
            if version < track.last:
                track.reordered += 1
            track.seen.add(version)
            track.last = max(track.last, version)
            self.delivered += 1
            if now_ns <= self.window_end[0]:
                self.delivered_in_window += 1

        return handle

    async def open(self, gate: asyncio.Semaphore, retries: Counter[str]) -> None:
        async with gate:
            for token in self.item["viewers"]:
                track = ViewerTrack()
                conn = await Conn.open(self.url, token, self.on_push(track))
                snap = await _asking(conn, "subscribe", "snapshot", retries, note=self.note)
                track.base = track.last = snap["version"]
                self.viewers.append((conn, track))
            self.writer = await Conn.open(self.url, self.item["writer"])
            snap = await _asking(self.writer, "subscribe", "snapshot", retries, note=self.note)
            granted = await _asking(
                self.writer, "acquire", "granted", retries, note=self.note, wait=False
            )
            self.fence, self.v0 = granted["fence"], snap["version"]
            self.length = len(snap["content"])
            self.final = self.v0


async def _asking(conn: Conn, kind: str, want: str, retries: Counter[str], **fields: Any) -> Frame:
    """``kind`` until the reply is ``want``; an ``unavailable`` refusal (a
    store busy on a loaded machine) is retried a few times, as a client would."""
    for attempt in range(SETUP_RETRIES + 1):
        reply = await conn.request(kind, within_s=60, **fields)
        if reply.get("type") == want:
            return reply
        if reply.get("code") != "unavailable" or attempt == SETUP_RETRIES:
            break
        retries[kind] += 1
        await asyncio.sleep(0.5 * 2**attempt)
    raise ProtocolError(f"{kind} refused: {reply}")


async def note_groups(spec: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """For each note of ``spec``: its viewers subscribed and its writer holding
    the token; on ``go`` each writer types; then every viewer is checked to
    have seen every version once and in order."""
    window_end = [0]
    groups = [_Group(item, window_end) for item in spec["notes"]]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    retries: Counter[str] = Counter()
    await asyncio.gather(*(g.open(gate, retries) for g in groups))
    ctl.send("ready", {"notes": len(groups)})
    rate, window, duration = await ctl.expect("go")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + duration
    window_end[0] = time.time_ns() + int(duration * 1e9)
    acks = array("f")
    errors: Counter[str] = Counter()
    counts = Counter[str]()
    acked_by_replica = Counter[int]()

    async def write(g: _Group) -> None:
        assert g.writer is not None
        conn = g.writer
        gate = asyncio.Semaphore(window)
        pending: set[asyncio.Future[Frame]] = set()
        offset = random.random() / rate if rate > 0 else 0.0  # spread the writers out
        i = 0
        while True:
            if rate > 0:
                at = t0 + offset + i / rate
                if at >= end:
                    break
                await asyncio.sleep(max(0.0, at - loop.time()))
            await gate.acquire()
            # Paced, the schedule alone sets the count (an edit due just before
            # the end and sent late is still sent); unpaced, the clock does.
            if rate <= 0 and loop.time() >= end:
                break
            op = timed_op()
            sent = op_time_ns(op) or 0
            fut = await conn.start(
                "edit", note=g.note, fence=g.fence, base=g.v0 + i, op=op,
                changes=[{"at": g.length + i, "del": 0, "ins": "x"}],
            )  # fmt: skip
            i += 1
            counts["sent"] += 1
            pending.add(fut)

            def done(f: asyncio.Future[Frame], sent: int = sent) -> None:
                gate.release()
                pending.discard(f)
                if f.cancelled() or f.exception() is not None:
                    errors["no_reply"] += 1
                    return
                reply = f.result()
                if reply.get("type") != "ack":
                    errors[str(reply.get("code"))] += 1
                    return
                acks.append((reply["_rx"] - sent) / 1e6)
                g.final = max(g.final, int(reply["version"]))
                counts["acked"] += 1
                acked_by_replica[g.replica] += 1
                if reply["_rx"] <= window_end[0]:
                    counts["acked_in_window"] += 1

            fut.add_done_callback(done)
        if pending:
            await asyncio.wait(pending, timeout=30)

    await asyncio.gather(*(write(g) for g in groups))
    deadline = time.monotonic() + spec.get("grace_s", 10.0)
    while time.monotonic() < deadline and any(  # noqa: ASYNC110 - pushes land on many sockets
        t.last < g.final for g in groups for _, t in g.viewers
    ):
        await asyncio.sleep(0.05)
    lost = reordered = dup = closed = 0
    lat = array("f")
    for g in groups:
        for conn, t in g.viewers:
            lost += (g.final - t.base) - sum(1 for v in t.seen if t.base < v <= g.final)
            reordered += t.reordered
            dup += t.dup
            closed += conn.closed is not None
            lat.extend(t.lat)
    # Hand the tokens back so the next pass can take them on any replica.
    await asyncio.gather(
        *(g.writer.request("release", within_s=30, note=g.note, fence=g.fence)
          for g in groups if g.writer is not None)
    )  # fmt: skip
    for g in groups:
        for conn, _ in g.viewers:
            conn.abort()  # as the fan-out viewers do: no close handshake to wait for
        if g.writer is not None:
            g.writer.abort()
    return {
        "sent": counts["sent"],
        "acked": counts["acked"],
        "acked_in_window": counts["acked_in_window"],
        "delivered": sum(g.delivered for g in groups),
        "delivered_in_window": sum(g.delivered_in_window for g in groups),
        "lost": lost,
        "reordered": reordered,
        "duplicates": dup,
        "closed": closed,
        "errors": dict(errors),
        "setup_retries": dict(retries),
        "acked_by_replica": {str(k): v for k, v in acked_by_replica.items()},
        "finals": {g.note: g.final for g in groups},
        "ack_ms": acks.tobytes(),
        "latency_ms": lat.tobytes(),
    }


# -- report and plot ------------------------------------------------------------------
def report(result: dict[str, Any]) -> str:
    routing = result["routing"]
    total = sum(b["published"] for b in routing["bus"])
    lines = [
        "",
        f"events per replica ({routing['notes']} notes, {routing['rate_per_note']} edits/s each, "
        f"{routing['duration_s']:.0f} s):",
        "| replica | notes served | events received | events published | share of all published |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, b in enumerate(routing["bus"]):
        served = sum(1 for n in range(routing["notes"]) if n % routing["replicas"] == i)
        lines.append(f"| {i + 1} | {served} | {b['received']:,} | {b['published']:,} | "
                     f"{b['share_of_published']:.1%} |")  # fmt: skip
    lines.append(f"| all | {routing['notes']} | {sum(b['received'] for b in routing['bus']):,} "
                 f"| {total:,} | |")  # fmt: skip
    lines += [
        "",
        "| replicas | acked edits/s | delivered edits/s | fan-out p50 / p99 ms | events received "
        "per replica | server cores | postgres cores | redis cores | machine busy cores |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in result["throughput"]:
        groups = _core_groups(row["cpu"])
        fan = row["fanout_ms"]
        lines.append(
            f"| {row['replicas']} | {row['acked_per_s']:,.0f} | {row['delivered_per_s']:,.0f} | "
            f"{fan.get('p50', 0):.1f} / {fan.get('p99', 0):.1f} | "
            f"{' / '.join(format(b['received'], ',') for b in row['bus'])} | "
            f"{groups.get('server', 0):.2f} | {groups.get('postgres', 0):.2f} | "
            f"{groups.get('redis', 0):.2f} | {row['machine_busy_cores']:.2f} |"
        )
    lines.append("problems: " + ("; ".join(result["problems"]) or "none"))
    return "\n".join(lines)


def _core_groups(cpu: dict[str, Any]) -> dict[str, float]:
    groups: dict[str, float] = {}
    for label, value in cpu.items():
        if isinstance(value, dict):
            group = label.rstrip("0123456789")
            groups[group] = groups.get(group, 0.0) + value["cores"]
    return groups


def plot(doc: dict[str, Any], out: Path) -> Path:
    """Left: the share of all events each replica received in the routing
    pass. Right: edits/s per replica count, with events received per replica."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = doc["results"]
    routing = res["routing"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    shares = [b["share_of_published"] for b in routing["bus"]]
    names = [f"replica {i + 1}" for i in range(len(shares))]
    left.bar(names, shares, color="tab:blue", label="with per-note routing")
    left.axhline(1.0, color="tab:red", ls="--", lw=1, label="one shared channel (every event)")
    left.axhline(1 / len(shares), color="grey", ls=":", lw=1, label=f"1/{len(shares)}")
    left.set_ylim(0, 1.1)
    left.set_ylabel("events received / events published in all")
    left.set_title(f"{routing['notes']} notes, {routing['rate_per_note']:g} edits/s each",
                   fontsize=9)  # fmt: skip
    left.legend(fontsize=7, loc="center right")
    rows = res["throughput"]
    ks = [r["replicas"] for r in rows]
    right.plot(ks, [r["acked_per_s"] for r in rows], "o-", label="acked edits/s")
    right.plot(ks, [r["delivered_per_s"] for r in rows], "s-", label="delivered edits/s (pushes)")
    right.set_xticks(ks)
    right.set_xlabel("replicas serving the notes")
    right.set_ylabel("per second")
    right.grid(alpha=0.3)
    twin = right.twinx()
    width = 0.8 / max(1, len(rows[0]["bus"])) if rows else 0.2
    for j in range(len(rows[0]["bus"]) if rows else 0):
        twin.bar([k - 0.4 + width * (j + 0.5) for k in ks],
                 [r["bus"][j]["received"] / r["duration_s"] for r in rows],
                 width, alpha=0.25, label=f"events/s received, replica {j + 1}")  # fmt: skip
    twin.set_ylabel("events received per second (bars)")
    right.set_ylim(bottom=0)
    twin.set_ylim(bottom=0, top=twin.get_ylim()[1] * 1.6)  # room for the legend
    right.set_ylim(top=right.get_ylim()[1] * 1.6)
    lines, labels = right.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    right.legend(lines + more, labels + more_labels, fontsize=6, loc="upper center", ncol=2)
    m = doc["machine"]
    right.set_title(f"closed loop, window {rows[0]['window'] if rows else '-'}; "
                    f"{m['cpus']} cores shared by everything", fontsize=9)  # fmt: skip
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    if sys.argv[1:2] != ["plot"]:
        raise SystemExit("usage: python -m loadtests.harness.routing plot [RESULTS.json] [OUT.png]")
    src = Path(sys.argv[2] if len(sys.argv) > 2 else "loadtests/results/routing-distributed.json")
    dst = Path(sys.argv[3] if len(sys.argv) > 3 else "docs/img/routing.png")
    print(plot(json.loads(src.read_text()), dst))
