"""Keystroke fan-out: one holder types ``rate`` edits/s, N viewers watch,
on the holder's replica (``same``) or on another one (``cross``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from loadtests.harness import stats
from loadtests.harness.bench import Bench, cores_summary
from loadtests.harness.drivers import split
from loadtests.harness.wsclient import get_note, ws_url

VIEWERS_PER_DRIVER_MIN = 50  # below this one driver process is plenty


def run_one(
    bench: Bench,
    viewers: int,
    placement: str,
    rate: float,
    duration: float,
    procs: int | None = None,
    on_start: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """One run; ``procs`` viewer driver processes (default: one per 50 viewers
    up to ``--drivers``); ``on_start`` is called as the writer starts typing
    and its result's ``stop()`` as it ends (a profiler, say)."""
    stack = bench.stack
    proto = stack.proto
    note = bench.new_note()
    viewer_url = stack.url(1 if placement == "cross" else 0)
    if procs is None:
        procs = max(1, min(bench.drivers, viewers // VIEWERS_PER_DRIVER_MIN))
    tokens = bench.tokens()
    viewer_pool = bench.pool(
        "viewers",
        [
            {
                "url": ws_url(viewer_url),
                "tokens": tokens,
                "note": note,
                "count": share,
                "proto": proto,
            }
            for share in split(viewers, procs)
            if share
        ],
    )
    writer_pool = bench.pool(
        "writer",
        [{"url": ws_url(stack.url(0)), "token": bench.owner.token, "note": note, "proto": proto}],
    )
    started: Any = None
    try:
        opened = viewer_pool.gather("ready")
        (writer_ready,) = writer_pool.gather("ready")
        load_before = stats.loadavg()
        meter = bench.meter(("viewer_driver", viewer_pool), ("writer_driver", writer_pool))
        meter.start()
        started = on_start() if on_start is not None else None
        writer_pool.broadcast("go", (rate, duration))
        (wres,) = writer_pool.gather("result", timeout=duration + 120)
        cpu = meter.stop()
        if started is not None:
            started.stop()
            started = None
        viewer_pool.broadcast("finish", wres["final_version"])
        vres = viewer_pool.gather("result", timeout=120)
    finally:
        if started is not None:
            started.stop()
        viewer_pool.stop()
        writer_pool.stop()
    latency = stats.merge_arrays(r["latency_ms"] for r in vres)
    last_rx = max((r["last_rx_ns"] for r in vres), default=0)
    span_s = max(duration, (last_rx - wres["start_ns"]) / 1e9)
    committed: bool | None = None  # the peer keeps documents in memory only
    if proto == "collab":
        stored = asyncio.run(get_note(stack.url(0), bench.owner.token, note))
        committed = (
            stored["version"] == wres["final_version"]
            and stored["version"] - writer_ready["version"] == wres["acked"]
        )
    row = {
        "viewers": viewers,
        "placement": placement,
        "rate": rate,
        "duration_s": duration,
        "viewers_open": sum(o["open"] for o in opened),
        "connect_failures": [o["failed"] for o in opened if o["failed"]],
        "driver_processes": procs,
        "edits_sent": wres["sent"],
        "edits_acked": wres["acked"],
        "edit_errors": wres["errors"],
        "late_sends": wres["late_sends"],
        "max_send_lag_ms": wres["max_send_lag_ms"],
        "acked_edits_committed": committed,
        "fanout_ms": stats.summarize(latency),
        "ack_ms": stats.summarize(stats.merge_arrays([wres["ack_ms"]])),
        # Over the time from the first keystroke to the last push received:
        # a saturated server keeps delivering after the writer stopped.
        "delivered_per_s": round(latency.size / span_s, 1),
        "delivery_span_s": round(span_s, 2),
        "lost": sum(r["lost"] for r in vres),
        "reordered": sum(r["reordered"] for r in vres),
        "duplicates": sum(r["duplicates"] for r in vres),
        "closed_by_server": sum(r["closed_by_server"] for r in vres),
        "cpu": cpu,
        "loadavg_before": load_before,
        "loadavg_after": stats.loadavg(),
    }
    print(
        f"{stack.kind}: fanout {placement:5} N={viewers:<5} "
        f"fan-out {stats.brief(row['fanout_ms'])}; "
        f"lost={row['lost']} reordered={row['reordered']} closed={row['closed_by_server']} "
        f"committed={committed}; ack p99={row['ack_ms'].get('p99')} ms; "
        f"cores {cores_summary(cpu)}; load {load_before}",
        flush=True,
    )
    return row


def run(
    bench: Bench, viewers: list[int], placements: list[str], rate: float, duration: float
) -> list[dict[str, Any]]:
    rows = []
    for placement in placements:
        if placement == "cross" and len(bench.stack.urls) < 2:
            print("fanout: skipping 'cross' (needs two replicas)", flush=True)
            continue
        for n in viewers:
            rows.append(run_one(bench, n, placement, rate, duration))
    return rows
