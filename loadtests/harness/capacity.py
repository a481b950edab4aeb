"""Capacity: idle authenticated sockets (hello done, heartbeating) held by
ONE server process, with its RSS measured at each step."""

from __future__ import annotations

import time
from typing import Any

from loadtests.harness import stats
from loadtests.harness.bench import Bench, cores_summary
from loadtests.harness.drivers import split
from loadtests.harness.wsclient import ws_url


def run(bench: Bench, steps: list[int], settle_s: float, idle_s: float) -> list[dict[str, Any]]:
    stack = bench.stack
    if not stack.server_pids:
        raise SystemExit("capacity needs the server pid (--server-pid) to read its RSS")
    pid = stack.server_pids[0]
    procs = max(1, min(bench.drivers, max(steps) // 1000))
    pool = bench.pool(
        "idlers", [{"url": ws_url(stack.url(0)), "tokens": bench.tokens(0)} for _ in range(procs)]
    )
    rows = []
    try:
        pool.gather("ready")
        baseline = stats.rss_bytes(pid)
        print(f"capacity baseline RSS {baseline / 2**20:.1f} MiB", flush=True)
        for step in steps:
            started = time.monotonic()
            for worker, share in zip(pool.workers, split(step, procs), strict=True):
                worker.send("grow", share)
            grown = pool.gather("grown", timeout=600)
            open_s = time.monotonic() - started
            time.sleep(settle_s)
            load_before = stats.loadavg()
            meter = bench.meter(("driver", pool))
            meter.start()
            time.sleep(idle_s)  # heartbeats only: what holding the sockets costs
            cpu = meter.stop()
            rss = stats.rss_bytes(pid)
            opened = sum(g["open"] for g in grown)
            row = {
                "target": step,
                "open": opened,
                "failed": [g["failed"] for g in grown if g["failed"]],
                "open_s": round(open_s, 2),
                "rss_mib": round(rss / 2**20, 1),
                "baseline_rss_mib": round(baseline / 2**20, 1),
                "rss_per_socket_kib": round((rss - baseline) / max(1, opened) / 1024, 2),
                "idle_cpu": cpu,
                "loadavg": load_before,
            }
            rows.append(row)
            print(
                f"capacity {opened}/{step} sockets open in {open_s:.1f}s: RSS {row['rss_mib']} MiB "
                f"({row['rss_per_socket_kib']} KiB/socket); idle cores {cores_summary(cpu)}",
                flush=True,
            )
        pool.broadcast("finish")
        pool.gather("result", timeout=120)
    finally:
        pool.stop()
    return rows
