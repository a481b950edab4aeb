"""Side by side with Hocuspocus: the same driver, the same scenarios, against
collab (two replicas on PostgreSQL + Redis, ``stack.py``) and the peer (two
Hocuspocus 3.4.4 instances with the Redis extension and a Redis token
emulation, ``loadtests/peer``).

Passes alternate (collab, peer, collab, peer, ...); each pass runs, on each
side: keystroke fan-out to N viewers on the writer's instance and on the other
instance (viewers split over two driver processes), acquire/release round
trips, and hand-offs between the two instances; optionally a large fan-out
(1,000 viewers). Figures are the medians of the passes; ``ratio`` is
collab / peer (below 1: collab is faster or cheaper). Loss, reordering and
duplicates are summed over every pass and must be zero.

With ``--floor`` it also measures collab's edit commit throughput with many
concurrent holders and, beside it, the PostgreSQL floor for the same fenced
write (``pgfloor``). With ``--profile DIR`` it runs collab's fan-outs once
more under py-spy (not counted in the table).
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.harness import fanout, pgfloor, profile, stats, throughput
from loadtests.harness.bench import Bench
from loadtests.harness.writetoken import _handoffs, _round_trips
from loadtests.harness.wsclient import ws_url

SIDES = ("collab", "peer")
VIEWER_DRIVERS = 2  # viewers are always split over two driver processes


@dataclass(frozen=True)
class Options:
    passes: int = 2
    viewers: int = 100
    rate: float = 50.0
    duration: float = 10.0
    big_viewers: int = 0
    big_rate: float = 20.0
    rounds: int = 200
    handoffs: int = 100
    floor: bool = False
    floor_holders: int = 100
    floor_window: int = 1
    floor_duration: float = 10.0
    profile_dir: Path | None = None
    py_spy: str | None = None


# (key, label, unit) of the table rows, in order; ``ratio`` is collab / peer.
ROWS = [
    ("same_p50", "keystroke to {v} viewers, same instance, p50", "ms"),
    ("same_p99", "keystroke to {v} viewers, same instance, p99", "ms"),
    ("same_cpu_us", "server CPU per delivered frame, same instance", "us"),
    ("same_cores", "server CPU during that run", "cores"),
    ("same_ack_p50", "writer's ack p50", "ms"),
    ("same_ack_p99", "writer's ack p99", "ms"),
    ("cross_p50", "keystroke to {v} viewers, other instance, p50", "ms"),
    ("cross_p99", "keystroke to {v} viewers, other instance, p99", "ms"),
    ("cross_cpu_us", "server CPU per delivered frame, other instance", "us"),
    ("acquire_p50", "acquire p50", "ms"),
    ("acquire_p99", "acquire p99", "ms"),
    ("handoff_p50", "hand-off (release to the waiter's grant) p50", "ms"),
    ("handoff_p99", "hand-off (release to the waiter's grant) p99", "ms"),
    ("big_p50", "keystroke to {b} viewers, same instance, p50", "ms"),
    ("big_p99", "keystroke to {b} viewers, same instance, p99", "ms"),
    ("big_ack_p50", "writer's ack p50 at {b} viewers", "ms"),
    ("big_delivered_per_s", "delivered frames/s at {b} viewers", "/s"),
    ("big_cpu_us", "server CPU per delivered frame at {b} viewers", "us"),
]
COUNTS = ("lost", "reordered", "duplicates", "closed_by_server")


def _server_cpu_s(cpu: dict[str, Any]) -> float:
    return float(sum(v["cpu_s"] for k, v in cpu.items() if k.startswith("server")))


def _fanout_figures(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    delivered = int(row["fanout_ms"].get("count", 0))
    cpu_s = _server_cpu_s(row["cpu"])
    return {
        f"{prefix}_p50": row["fanout_ms"].get("p50"),
        f"{prefix}_p99": row["fanout_ms"].get("p99"),
        f"{prefix}_ack_p50": row["ack_ms"].get("p50"),
        f"{prefix}_ack_p99": row["ack_ms"].get("p99"),
        f"{prefix}_cpu_us": round(cpu_s / delivered * 1e6, 2) if delivered else None,
        f"{prefix}_cores": round(cpu_s / row["cpu"]["wall_s"], 3),
        f"{prefix}_delivered_per_s": row["delivered_per_s"],
    }


def _checks(row: dict[str, Any]) -> dict[str, int]:
    out = {k: int(row[k]) for k in COUNTS}
    out["edits_sent"] = int(row["edits_sent"])
    out["edits_acked"] = int(row["edits_acked"])
    out["viewers_missing"] = int(row["viewers"]) - int(row["viewers_open"])
    out["not_committed"] = int(row["acked_edits_committed"] is False)
    return out


def _tokens(bench: Bench, opts: Options) -> dict[str, Any]:
    stack = bench.stack
    a, b = bench.accounts[0], bench.accounts[1]
    urls = (ws_url(stack.url(0)), ws_url(stack.url(1)))
    rt_note = bench.new_note(a)
    hand_note = bench.new_note(a, [b])
    bound_s = (
        int(stack.env.get("COLLAB_LEASE_TTL_MS", "15000"))
        + int(stack.env.get("COLLAB_LOCK_DELAY_MS", "2000"))
        + 1000
    ) / 1000

    async def both() -> tuple[Any, ...]:
        acq, _ = await _round_trips(urls[0], a.token, rt_note, opts.rounds, stack.proto)
        hand, anomalies = await _handoffs(
            urls, (a.token, b.token), hand_note, opts.handoffs, bound_s, stack.proto
        )
        return acq, hand, anomalies

    acq, hand, anomalies = asyncio.run(both())
    a_sum, h_sum = stats.summarize(acq), stats.summarize(hand)
    print(
        f"{stack.kind}: acquire {stats.brief(a_sum)}; hand-off {stats.brief(h_sum)}; "
        f"anomalies {anomalies}",
        flush=True,
    )
    return {
        "figures": {
            "acquire_p50": a_sum.get("p50"),
            "acquire_p99": a_sum.get("p99"),
            "handoff_p50": h_sum.get("p50"),
            "handoff_p99": h_sum.get("p99"),
        },
        "checks": {
            "acquires": len(acq),
            "handoffs": len(hand),
            "handoffs_missed": anomalies["missed_handoffs"],
            "grants_duplicated": anomalies["duplicate"],
            "grants_wrong_rid": anomalies["wrong_rid"],
        },
        "acquire_ms": a_sum,
        "handoff_ms": h_sum,
    }


def one_pass(bench: Bench, opts: Options) -> dict[str, Any]:
    """Every measure once against one side. A fan-out whose driver fails (a
    server that stopped answering, say) is recorded as failed, with no
    figures, and the pass goes on."""
    runs = [("same", opts.viewers, "same", opts.rate), ("cross", opts.viewers, "cross", opts.rate)]
    if opts.big_viewers:
        runs.append(("big", opts.big_viewers, "same", opts.big_rate))
    rows: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    checks: dict[str, int] = {}
    errors: dict[str, str] = {}
    for name, viewers, placement, rate in runs:
        try:
            row = fanout.run_one(
                bench, viewers, placement, rate, opts.duration, procs=VIEWER_DRIVERS
            )
        except (RuntimeError, TimeoutError) as exc:
            print(f"{bench.stack.kind}: {name} fan-out failed: {str(exc)[:300]}", flush=True)
            errors[name] = str(exc)[:2000]
            checks[f"{name}_failed"] = 1
            continue
        rows[name] = row
        figures.update(_fanout_figures(name, row))
        for k, v in _checks(row).items():
            checks[f"{name}_{k}"] = v
    try:
        tokens = _tokens(bench, opts)
    except (RuntimeError, TimeoutError) as exc:
        print(f"{bench.stack.kind}: token runs failed: {str(exc)[:300]}", flush=True)
        errors["tokens"] = str(exc)[:2000]
        tokens = {"figures": {}, "checks": {"tokens_failed": 1}}
    figures.update(tokens["figures"])
    checks.update(tokens["checks"])
    return {
        "figures": figures,
        "checks": checks,
        "fanout": rows,
        "tokens": tokens,
        "errors": errors,
    }


def median_figures(passes: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per side, per figure: the median over that side's passes."""
    out: dict[str, dict[str, float | None]] = {}
    for side in SIDES:
        mine = [p["figures"] for p in passes if p["side"] == side]
        keys = {k for f in mine for k in f}
        out[side] = {}
        for k in sorted(keys):
            values = [f[k] for f in mine if f.get(k) is not None]
            out[side][k] = round(statistics.median(values), 3) if values else None
    return out


def summed_checks(passes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for side in SIDES:
        total: dict[str, int] = {}
        for p in passes:
            if p["side"] == side:
                for k, v in p["checks"].items():
                    total[k] = total.get(k, 0) + v
        out[side] = total
    return out


def problems(checks: dict[str, dict[str, int]]) -> list[str]:
    """Every loss, reordering, duplicate, missed reply or hand-off."""
    bad = []
    for side, c in checks.items():
        for k, v in sorted(c.items()):
            broken = k.endswith(
                (
                    "_lost",
                    "_reordered",
                    "_duplicates",
                    "_closed_by_server",
                    "_viewers_missing",
                    "_not_committed",
                    "_failed",
                    "handoffs_missed",
                    "grants_duplicated",
                    "grants_wrong_rid",
                )
            )
            if broken and v:
                bad.append(f"{side}: {k}={v}")
        for name in ("same", "cross", "big"):
            sent, acked = c.get(f"{name}_edits_sent"), c.get(f"{name}_edits_acked")
            if sent is not None and sent != acked:
                bad.append(f"{side}: {name} edits acked {acked} of {sent}")
    return bad


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(
    medians: dict[str, dict[str, float | None]], opts: Options, passes: int
) -> tuple[str, list[dict[str, Any]]]:
    """The markdown table and its rows (label, unit, collab, peer, ratio)."""
    rows = []
    lines = [
        f"| measure (median of {passes} passes each) | unit | collab | Hocuspocus | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for key, label, unit in ROWS:
        c, p = medians["collab"].get(key), medians["peer"].get(key)
        if c is None and p is None:
            continue
        ratio = round(c / p, 2) if c is not None and p else None
        text = label.format(v=opts.viewers, b=opts.big_viewers)
        rows.append(
            {"key": key, "measure": text, "unit": unit, "collab": c, "peer": p, "ratio": ratio}
        )
        lines.append(f"| {text} | {unit} | {_fmt(c)} | {_fmt(p)} | {_fmt(ratio)} |")
    return "\n".join(lines), rows


def checks_table(checks: dict[str, dict[str, int]]) -> str:
    keys = sorted(set(checks["collab"]) | set(checks["peer"]))
    lines = ["| check (summed over passes) | collab | Hocuspocus |", "|---|---:|---:|"]
    for k in keys:
        lines.append(f"| {k} | {checks['collab'].get(k, '-')} | {checks['peer'].get(k, '-')} |")
    return "\n".join(lines)


def _profiled(bench: Bench, opts: Options) -> dict[str, Any]:
    """collab's fan-outs once more with py-spy on the writer's replica."""
    assert opts.profile_dir is not None
    pid = bench.stack.server_pids[0]
    out: dict[str, Any] = {}
    runs = [("fanout-same", opts.viewers, opts.rate)]
    if opts.big_viewers:
        runs.append(("fanout-big", opts.big_viewers, opts.big_rate))
    for name, viewers, rate in runs:
        raw = opts.profile_dir / f"collab-{name}-{viewers}.txt"

        def start(raw: Path = raw) -> profile.PySpy:
            return profile.PySpy(pid, raw, opts.py_spy)

        fanout.run_one(bench, viewers, "same", rate, opts.duration, VIEWER_DRIVERS, start)
        summary = profile.top_frames(raw.read_text() if raw.exists() else "")
        text = profile.report(summary, f"py-spy of collab, {viewers} viewers at {rate:g}/s")
        (opts.profile_dir / f"collab-{name}-{viewers}.top.txt").write_text(text + "\n")
        print(text, flush=True)
        out[name] = {"viewers": viewers, "rate": rate, "raw": str(raw), **summary}
    return out


def _floor(bench: Bench, opts: Options) -> dict[str, Any]:
    """collab's commit throughput with ``floor_holders`` holders, then the
    raw PostgreSQL floor for the same write on as many connections."""
    collab = throughput.run(bench, opts.floor_holders, opts.floor_window, opts.floor_duration)
    owners = [bench.accounts[i % len(bench.accounts)] for i in range(opts.floor_holders)]
    notes = [(bench.new_note(acc), acc.user_id) for acc in owners]
    floor = pgfloor.run(bench.stack.database_url, notes, opts.floor_duration)
    share = (
        round(collab["acked_per_s"] / floor["commits_per_s"], 3) if floor["commits_per_s"] else None
    )
    print(
        f"commit throughput, {opts.floor_holders} holders x window {opts.floor_window}: "
        f"collab {collab['acked_per_s']}/s (ack {stats.brief(collab['ack_ms'])}); "
        f"PostgreSQL floor on {floor['connections']} connections {floor['commits_per_s']}/s "
        f"(commit {stats.brief(floor['commit_ms'])}); collab/floor = {share}",
        flush=True,
    )
    return {"collab": collab, "postgres_floor": floor, "collab_share_of_floor": share}


def run(benches: dict[str, Bench], opts: Options) -> dict[str, Any]:
    passes: list[dict[str, Any]] = []
    for i in range(opts.passes):
        for side in SIDES:
            print(f"--- pass {i + 1}/{opts.passes}: {side}", flush=True)
            before = stats.loadavg()
            result = one_pass(benches[side], opts)
            passes.append(
                {
                    "side": side,
                    "pass": i + 1,
                    "loadavg_before": before,
                    "loadavg_after": stats.loadavg(),
                    **result,
                }
            )
    medians = median_figures(passes)
    checks = summed_checks(passes)
    text, rows = table(medians, opts, opts.passes)
    bad = problems(checks)
    print("\n" + text + "\n\n" + checks_table(checks), flush=True)
    print(
        "integrity: " + ("zero lost, reordered or duplicated" if not bad else "; ".join(bad)),
        flush=True,
    )
    out: dict[str, Any] = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "table": rows,
        "medians": medians,
        "checks": checks,
        "problems": bad,
        "passes": passes,
        "loadavg_at_end": stats.loadavg(),
    }
    if opts.floor:
        out["floor"] = _floor(benches["collab"], opts)
    if opts.profile_dir is not None:
        out["profiles"] = _profiled(benches["collab"], opts)
    return out
