"""The capacity model of docs/scaling.md: what a deployment of a given size
needs (pods, Redis shards, PostgreSQL commits, CPU and WAL), from per-unit
costs measured on the benchmark machine.

    .venv/bin/python scripts/capacity_model.py                  # the reference deployment
    .venv/bin/python scripts/capacity_model.py --connected 200000 --edits-per-s 2

Every per-unit cost is a named constant below, with the measurement it comes
from; rerun the measurements (docs/benchmarks.md, ``scripts/measure_costs.py``)
and update the constants as the code changes. The deployment is the CLI
options. Pure arithmetic: nothing here opens a socket.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import asdict, dataclass, fields

# -- per-unit costs, measured here (2 vCPU AMD EPYC, PostgreSQL 15, Redis 7) ----------------
# Server (collab process) CPU per edit committed on the writer's replica: parse,
# commit (4 round trips), publish, ack. docs/benchmarks.md section 3: 8.58 CPU-s
# for 10,432 acknowledged edits.
SERVER_S_PER_EDIT = 8.58 / 10_432
# Server CPU per push to a viewer (an `edited` or `caret` frame on one socket) and
# per bus event received (decode it, find the note's sockets). docs/benchmarks.md
# section 1 (loadtests/results/fanout-distributed.json): the viewers' replica in
# the 10- and 100-viewer `cross` rows, 500 edits each, used 0.31 and 1.57 CPU-s;
# less its idle cost (0.16 and 0.17 CPU-s, its CPU in the `same` rows) and the
# viewers' heartbeats (20 and 200 x 0.45 ms, section 4), that is 0.141 and
# 1.310 CPU-s for 500 events and 5,000 or 50,000 pushes: 26 us per push (the
# slope) and 22 us per event received (the rest).
SERVER_S_PER_PUSH = 26e-6
SERVER_S_PER_EVENT_RECEIVED = 22e-6
# A caret frame from the holder (checked, published, never stored) is not
# measured on its own: counted at the cost of an event received, which also
# decodes one small frame and looks up one note.
SERVER_S_PER_CARET = SERVER_S_PER_EVENT_RECEIVED
# Server CPU per heartbeat of an idle socket (registry touch, socket slot
# renewal): scripts/measure_costs.py redis (docs/scaling.md, "Measured here"),
# 2,000 idle sockets for 20 s, 6.51 CPU-s for 8,000 heartbeats. (The older
# docs/benchmarks.md section 4 run gave 0.362 cores for 4,000 sockets, 0.45 ms
# a heartbeat, before the socket admission slots and their renewals existed.)
SERVER_S_PER_HEARTBEAT = 813.8e-6
# Resident memory: docs/benchmarks.md section 4, 57.6 MiB idle plus 40 KiB per socket.
RSS_BASE_MIB = 57.6
RSS_PER_SOCKET_KIB = 40.0
# Most sockets one distributed process opened on this machine
# (docs/benchmarks.md section 4: 7,590 of 8,000).
SOCKETS_PER_PROCESS_MEASURED = 7_590
# Measured by scripts/measure_costs.py (docs/scaling.md, "Measured here"; load
# average 1.3-2.4 on the 2 cores, other jobs running lightly).
# PostgreSQL: CPU of the run's backends and WAL per edit committed, by the
# notes' mean length over the run (characters): every edit writes the whole row
# again, its content included. Between the points the model interpolates.
PG_US_PER_EDIT_BY_NOTE_CHARS = ((250, 287.0), (2_251, 1_423.0), (20_205, 2_036.0))
WAL_BYTES_PER_EDIT_BY_NOTE_CHARS = ((250, 1_673.0), (2_251, 4_159.0), (20_205, 23_964.0))
# Stored edit-log row (pg_column_size), same run.
EDIT_ROW_BYTES = 320.0
# Redis CPU per PUBLISH of a 300-byte event (one command per round trip, as the
# bus sends them) and per subscriber it reaches: `pubsub`, 0 and 8 subscribers,
# 13.75 and 36.65 us per publish.
REDIS_S_PER_PUBLISH = 13.75e-6
REDIS_S_PER_DELIVERY = (36.65 - 13.75) / 8 * 1e-6
# Redis CPU per heartbeat of an idle socket through collab (registry touch,
# socket slot renewal, and the two replicas' background work over the same
# 20 s), on a Redis of its own: `redis`, 2,000 sockets, 0.8 CPU-s.
REDIS_S_PER_HEARTBEAT = 100.0e-6
HEARTBEAT_S = 5.0  # COLLAB_HEARTBEAT_MS default (docs/operations.md)
REDIS_CORES_PER_SHARD = 1.0  # Redis runs commands on one thread


@dataclass(frozen=True)
class Deployment:
    """The deployment to size; the defaults are the reference of docs/scaling.md."""

    registered_users: int = 1_000_000
    connected: int = 100_000  # open sockets
    writing_notes: int = 10_000  # notes with a holder typing
    edits_per_s: float = 5.0  # per note being written
    # Viewers per note being written; None: every connected socket that is not
    # a writer watches one (the most pushes the connected sockets can cause).
    viewers_per_note: float | None = None
    carets_per_edit: float = 1.0  # the holder's caret moves with each keystroke
    sockets_per_pod: int = 5_000  # planning figure, under SOCKETS_PER_PROCESS_MEASURED
    pod_cpu_budget: float = 0.7  # cores one pod (one process) may use at peak
    note_chars: int = 2_000  # average length of a note being written
    redis_shard_cpu_budget: float = 0.5  # of Redis's one main thread, per shard
    pg_cores_per_primary: int = 64  # the biggest primary you are willing to run
    edit_log_days: float = 7.0  # COLLAB_EDIT_LOG_KEEP_S (default 7 days), for the storage line


@dataclass(frozen=True)
class Sizing:
    edits_per_s: float
    viewers_per_note: float
    pushes_per_s: float
    heartbeats_per_s: float
    pods_for_sockets: int
    pods_for_cpu: int
    pods: int
    sockets_per_pod: int
    pod_rss_mib: float
    pods_per_note: float  # replicas following one note being written
    server_cores: float
    server_cores_commit: float
    server_cores_push: float
    server_cores_bus: float
    server_cores_heartbeat: float
    bus_events_per_s: float  # published: edits and carets
    bus_deliveries_per_s: float  # one per following replica
    redis_bus_cores: float  # publishes and deliveries
    redis_cores: float  # and heartbeats
    redis_shards: int
    pg_commits_per_s: float
    pg_cores: float
    pg_primaries: int
    wal_mb_per_s: float
    wal_tb_per_day: float
    edit_log_tb: float
    # What cannot scale out today, busiest first: (what, share of its capacity).
    limits: tuple[tuple[str, float], ...]


def interpolate(points: tuple[tuple[int, float], ...], x: float) -> float:
    """Piecewise linear through measured ``(x, y)`` points, extended past the
    last segment along its slope (and before the first, clamped)."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1 or (x1, y1) == points[-1]:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise AssertionError("unreachable")


def pods_following(pods: int, sockets_on_note: float) -> float:
    """Expected distinct pods among ``sockets_on_note`` sockets placed at
    random over ``pods`` (a load balancer does not route by note)."""
    if pods <= 0:
        return 0.0
    return float(pods * (1.0 - (1.0 - 1.0 / pods) ** sockets_on_note))


def size(d: Deployment) -> Sizing:
    edits = d.writing_notes * d.edits_per_s
    viewers = (
        d.viewers_per_note
        if d.viewers_per_note is not None
        else max(0.0, (d.connected - d.writing_notes) / d.writing_notes)
    )
    events = edits * (1.0 + d.carets_per_edit)  # published on the note's channel
    pushes = events * viewers
    heartbeats = d.connected / HEARTBEAT_S
    for_sockets = math.ceil(d.connected / d.sockets_per_pod)
    carets = edits * d.carets_per_edit
    fixed = edits * SERVER_S_PER_EDIT + carets * SERVER_S_PER_CARET + pushes * SERVER_S_PER_PUSH
    fixed += heartbeats * SERVER_S_PER_HEARTBEAT
    # More pods spread a note's sockets over more pods, each of which receives
    # its events: grow until the CPU fits (the cost only rises with pods).
    pods = for_sockets
    while True:
        following = pods_following(pods, viewers + 1.0)
        cores = fixed + events * following * SERVER_S_PER_EVENT_RECEIVED
        if cores <= pods * d.pod_cpu_budget:
            break
        pods = max(pods + 1, math.ceil(cores / d.pod_cpu_budget))
    following = pods_following(pods, viewers + 1.0)
    deliveries = events * following
    redis = events * (REDIS_S_PER_PUBLISH + following * REDIS_S_PER_DELIVERY)
    redis_heartbeats = heartbeats * REDIS_S_PER_HEARTBEAT
    pg = edits * interpolate(PG_US_PER_EDIT_BY_NOTE_CHARS, d.note_chars) / 1e6
    wal = edits * interpolate(WAL_BYTES_PER_EDIT_BY_NOTE_CHARS, d.note_chars)
    limits = sorted(
        [
            ("one Redis main thread (standalone or Sentinel: every event and heartbeat)",
             (redis + redis_heartbeats) / REDIS_CORES_PER_SHARD),
            ("one PostgreSQL primary's CPU", pg / d.pg_cores_per_primary),
        ],
        key=lambda item: -item[1],
    )  # fmt: skip
    return Sizing(
        edits_per_s=edits,
        viewers_per_note=viewers,
        pushes_per_s=pushes,
        heartbeats_per_s=heartbeats,
        pods_for_sockets=for_sockets,
        pods_for_cpu=math.ceil(cores / d.pod_cpu_budget),
        pods=pods,
        sockets_per_pod=math.ceil(d.connected / pods),
        pod_rss_mib=RSS_BASE_MIB + math.ceil(d.connected / pods) * RSS_PER_SOCKET_KIB / 1024,
        pods_per_note=following,
        server_cores=cores,
        server_cores_commit=edits * SERVER_S_PER_EDIT + carets * SERVER_S_PER_CARET,
        server_cores_push=pushes * SERVER_S_PER_PUSH,
        server_cores_bus=events * following * SERVER_S_PER_EVENT_RECEIVED,
        server_cores_heartbeat=heartbeats * SERVER_S_PER_HEARTBEAT,
        bus_events_per_s=events,
        bus_deliveries_per_s=deliveries,
        redis_bus_cores=redis,
        redis_cores=redis + redis_heartbeats,
        redis_shards=max(1, math.ceil((redis + redis_heartbeats) / d.redis_shard_cpu_budget)),
        pg_commits_per_s=edits,
        pg_cores=pg,
        pg_primaries=max(1, math.ceil(pg / d.pg_cores_per_primary)),
        wal_mb_per_s=wal / 1e6,
        wal_tb_per_day=wal * 86_400 / 1e12,
        edit_log_tb=edits * EDIT_ROW_BYTES * 86_400 * d.edit_log_days / 1e12,
        limits=tuple(limits),
    )


def table(d: Deployment, s: Sizing) -> str:
    rows = [
        ("registered users", f"{d.registered_users:,}",
         "a users row each; the load comes from the connected ones"),
        ("edits committed", f"{s.edits_per_s:,.0f} /s",
         f"{d.writing_notes:,} notes x {d.edits_per_s:g} edits/s"),
        ("viewers per note being written", f"{s.viewers_per_note:,.1f}",
         "every other connected socket" if d.viewers_per_note is None else "given"),
        ("pushes to viewers (edits + carets)", f"{s.pushes_per_s:,.0f} /s",
         f"x {1 + d.carets_per_edit:g} events per edit x viewers"),
        ("heartbeats", f"{s.heartbeats_per_s:,.0f} /s",
         f"{d.connected:,} sockets / {HEARTBEAT_S:g} s"),
        ("pods for the sockets", f"{s.pods_for_sockets:,}",
         f"ceil({d.connected:,} / {d.sockets_per_pod:,} sockets per pod)"),
        ("pods for the CPU", f"{s.pods_for_cpu:,}",
         f"ceil({s.server_cores:,.1f} cores / {d.pod_cpu_budget:g} per pod)"),
        ("**pods**", f"**{s.pods:,}**", f"{s.sockets_per_pod:,} sockets and "
         f"{s.pod_rss_mib:,.0f} MiB each"),
        ("  server cores: edits and carets in", f"{s.server_cores_commit:,.1f}",
         "edits x SERVER_S_PER_EDIT + carets x SERVER_S_PER_CARET"),
        ("  server cores: pushes", f"{s.server_cores_push:,.1f}", "pushes x SERVER_S_PER_PUSH"),
        ("  server cores: bus events received", f"{s.server_cores_bus:,.1f}",
         f"events x {s.pods_per_note:.1f} pods per note x SERVER_S_PER_EVENT_RECEIVED"),
        ("  server cores: heartbeats", f"{s.server_cores_heartbeat:,.1f}",
         "heartbeats x SERVER_S_PER_HEARTBEAT"),
        ("bus events published", f"{s.bus_events_per_s:,.0f} /s", "one per edit and per caret"),
        ("bus deliveries (per-note routing)", f"{s.bus_deliveries_per_s:,.0f} /s",
         f"{s.pods_per_note:.1f} following pods per note, not {s.pods:,}"),
        ("  (one channel every pod hears)", f"{s.bus_events_per_s * s.pods:,.0f} /s",
         f"{s.bus_events_per_s * s.pods * SERVER_S_PER_EVENT_RECEIVED:,.0f} server cores "
         "to decode them"),
        ("Redis CPU", f"{s.redis_cores:,.2f} cores",
         f"{s.redis_bus_cores:,.2f} for the bus, the rest heartbeats"),
        ("**Redis shards**", f"**{s.redis_shards:,}**",
         f"ceil(cores / {d.redis_shard_cpu_budget:g} per shard)"),
        ("**PostgreSQL commits**", f"**{s.pg_commits_per_s:,.0f} /s**", "one per edit"),
        ("PostgreSQL CPU", f"{s.pg_cores:,.1f} cores",
         "commits x PG_US_PER_EDIT_BY_NOTE_CHARS"),
        ("primaries at that CPU", f"{s.pg_primaries:,}",
         f"ceil(cores / {d.pg_cores_per_primary} per primary)"),
        ("**WAL**", f"**{s.wal_mb_per_s:,.1f} MB/s, {s.wal_tb_per_day:,.2f} TB/day**",
         f"notes of {d.note_chars:,} characters"),
        ("edit log kept", f"{s.edit_log_tb:,.2f} TB", f"{d.edit_log_days:g} days of edit rows"),
    ]  # fmt: skip
    for i, (what, share) in enumerate(s.limits):
        label = "**first limit**" if i == 0 else "next limit"
        rows.append((label, f"{share:.0%} of {what}",
                     f"saturates at {1 / share:.2g} x this load" if share else "idle"))  # fmt: skip
    out = ["| quantity | value | from |", "|---|---:|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    for f in fields(Deployment):
        default = getattr(Deployment, f.name)
        kind = float if isinstance(default, float) or default is None else int
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    d = Deployment(**vars(args))
    print(f"deployment: {asdict(d)}\n")
    print(table(d, size(d)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
