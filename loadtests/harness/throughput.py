"""Edit commit throughput of one replica: many notes edited at once, each by
its own holder with a few edits in flight; counts edits acknowledged (so
committed to the database first) per second, then checks the stored versions
add up to the acknowledged count."""

from __future__ import annotations

import asyncio
from typing import Any

from loadtests.harness import stats
from loadtests.harness.bench import Bench, cores_summary
from loadtests.harness.drivers import split
from loadtests.harness.wsclient import get_note, ws_url


def run(bench: Bench, editors: int, window: int, duration: float) -> dict[str, Any]:
    stack = bench.stack
    owners = [bench.accounts[i % len(bench.accounts)] for i in range(editors)]
    notes = [bench.new_note(acc) for acc in owners]
    pairs = list(zip([a.token for a in owners], notes, strict=True))
    procs = max(1, min(bench.drivers, editors))
    specs, start = [], 0
    for share in split(editors, procs):
        specs.append(
            {"url": ws_url(stack.url(0)), "pairs": pairs[start : start + share], "window": window}
        )
        start += share
    pool = bench.pool("editors", [s for s in specs if s["pairs"]])
    try:
        pool.gather("ready")
        load_before = stats.loadavg()
        meter = bench.meter(("driver", pool))
        meter.start()
        pool.broadcast("go", duration)
        res = pool.gather("result", timeout=duration + 120)
        cpu = meter.stop()
    finally:
        pool.stop()

    async def stored_versions() -> int:
        got = await asyncio.gather(
            *(get_note(stack.url(0), a.token, n) for a, n in zip(owners, notes, strict=True))
        )
        return sum(int(g["version"]) for g in got)

    acked = sum(r["acked"] for r in res)
    in_window = sum(r["acked_in_window"] for r in res)
    versions = asyncio.run(stored_versions())
    errors: dict[str, int] = {}
    for r in res:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    result = {
        "editors": editors,
        "window": window,
        "duration_s": duration,
        "acked": acked,
        "acked_per_s": round(in_window / duration, 1),
        "stored_versions": versions,
        "acked_equals_stored": versions == acked,
        "errors": errors,
        "ack_ms": stats.summarize(stats.merge_arrays(r["ack_ms"] for r in res)),
        "cpu": cpu,
        "loadavg_before": load_before,
        "loadavg_after": stats.loadavg(),
    }
    print(
        f"throughput {editors} notes x window {window}: {result['acked_per_s']} acked edits/s; "
        f"ack {stats.brief(result['ack_ms'])}; stored={versions} acked={acked} "
        f"errors={errors}; cores {cores_summary(cpu)}; load {load_before}",
        flush=True,
    )
    return result
