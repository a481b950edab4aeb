"""Draw the harness results (JSON) as PNGs for docs/benchmarks.md.

    python -m loadtests.plot [--results loadtests/results] [--out docs/img]

Reads whichever of ``fanout-*.json``, ``token-*.json``, ``capacity-*.json``,
``versus-*.json`` exist and writes ``fanout-cdf.png`` (fan-out latency CDFs
per viewer count and placement), ``fanout-throughput.png`` (delivered
pushes/s and p99 versus viewers), ``token-cdf.png`` (acquire, release,
hand-off CDFs), ``capacity.png`` (RSS versus open sockets) and
``versus.png`` (collab and Hocuspocus side by side: the medians of the
table, and every pass's fan-out CDF). From ``renewals/`` (before/after runs
of one change, ``ack-{before,after}-N.json`` and
``capacity-{before,after}.json``) it draws ``before-after.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np


def _load(results: Path, scenario: str) -> dict[str, Any] | None:
    """The distributed run when there is one (it is what the targets are about)."""
    files = sorted(results.glob(f"{scenario}-*.json"), key=lambda f: "distributed" not in f.name)
    if not files:
        return None
    doc: dict[str, Any] = json.loads(files[0].read_text())
    return doc


def _cdf(ax: Any, summary: dict[str, Any], label: str, style: str = "-") -> None:
    values = summary.get("cdf_ms") or []
    if values:
        ax.plot(values, np.linspace(0, 1, len(values)), style, label=label)


def _caption(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return f"{m['cpus']} CPUs, load avg {m['loadavg'][0]} at end; {doc['stack']} stack"


def plot_fanout(doc: dict[str, Any], out: Path) -> list[Path]:
    rows = doc["results"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        style = "-" if row["placement"] == "same" else "--"
        _cdf(ax, row["fanout_ms"], f"{row['viewers']} viewers, {row['placement']} replica", style)
    ax.set_xscale("log")
    ax.set_xlabel("keystroke to viewer (ms, log scale)")
    ax.set_ylabel("fraction of pushes")
    ax.set_title(f"Fan-out latency at {rows[0]['rate']:.0f} edits/s\n{_caption(doc)}", fontsize=9)
    ax.axvline(20, color="grey", lw=0.8, ls=":")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    cdf_path = out / "fanout-cdf.png"
    fig.tight_layout()
    fig.savefig(cdf_path, dpi=110)
    plt.close(fig)

    fig, ax1 = plt.subplots(figsize=(7, 4.2))
    ax2 = ax1.twinx()
    for placement, marker, color in (("same", "o", "tab:red"), ("cross", "s", "tab:purple")):
        pts = sorted((r["viewers"], r) for r in rows if r["placement"] == placement)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax1.plot(
            xs,
            [p[1]["delivered_per_s"] for p in pts],
            marker + "-",
            label=f"delivered/s ({placement})",
        )
        ax2.plot(
            xs,
            [p[1]["fanout_ms"].get("p99", np.nan) for p in pts],
            marker + ":",
            color=color,
            label=f"p99 ms ({placement})",
        )
    ax1.set_xscale("log")
    ax2.set_yscale("log")
    ax1.set_xlabel("viewers of the note")
    ax1.set_ylabel("edited pushes delivered per second")
    ax2.set_ylabel("fan-out p99 (ms, log)")
    ax1.set_title(f"Fan-out throughput versus viewers\n{_caption(doc)}", fontsize=9)
    ax1.grid(alpha=0.3)
    lines = ax1.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    tp_path = out / "fanout-throughput.png"
    fig.tight_layout()
    fig.savefig(tp_path, dpi=110)
    plt.close(fig)
    return [cdf_path, tp_path]


def plot_token(doc: dict[str, Any], out: Path) -> list[Path]:
    res = doc["results"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _cdf(ax, res["acquire_ms"], "acquire (granted)")
    _cdf(ax, res["release_ms"], "release")
    _cdf(ax, res["handoff_ms"], "hand-off to waiter on other replica", "--")
    ax.set_xscale("log")
    ax.set_xlabel("ms (log scale)")
    ax.set_ylabel("fraction")
    ax.set_title(f"Write token round trips\n{_caption(doc)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out / "token-cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_capacity(docs: list[dict[str, Any]], out: Path) -> list[Path]:
    """One RSS series per stack (embedded and distributed runs side by side)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for doc in docs:
        rows = doc["results"]
        xs = [0] + [r["open"] for r in rows]
        ys = [rows[0]["baseline_rss_mib"]] + [r["rss_mib"] for r in rows]
        ax.plot(xs, ys, "o-", label=f"server RSS ({doc['stack']})")
        for r in rows:
            ax.annotate(
                f"{r['rss_per_socket_kib']:.0f} KiB/socket",
                (r["open"], r["rss_mib"]),
                textcoords="offset points",
                xytext=(4, -12),
                fontsize=7,
            )
    ax.axhline(1024, color="grey", lw=0.8, ls=":", label="1 GiB")
    ax.set_xlabel("idle authenticated sockets open on one process")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"Memory per socket\n{_caption(docs[0])}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out / "capacity.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_versus(doc: dict[str, Any], out: Path) -> list[Path]:
    """Left: each millisecond row of the table, collab and Hocuspocus (median
    of the passes). Right: every pass's fan-out CDFs, same and other instance."""
    res = doc["results"]
    rows = [r for r in res["table"] if r["unit"] == "ms"]
    fig, (bars, cdf) = plt.subplots(1, 2, figsize=(12, 5.2), width_ratios=[1.25, 1])
    ys = np.arange(len(rows))
    for offset, side, label, color in (
        (-0.2, "collab", "collab", "tab:blue"),
        (0.2, "peer", "Hocuspocus 3.4.4", "tab:orange"),
    ):
        values = [r[side] if r[side] is not None else np.nan for r in rows]
        bars.barh(ys + offset, values, height=0.38, label=label, color=color)
    for y, r in zip(ys, rows, strict=True):
        if r["ratio"] is not None:
            bars.annotate(
                f"x{r['ratio']:.2f}",
                (max(r["collab"] or 0, r["peer"] or 0), y),
                textcoords="offset points",
                xytext=(4, -3),
                fontsize=7,
            )
    bars.set_yticks(ys, [r["measure"] for r in rows], fontsize=7)
    bars.invert_yaxis()
    bars.set_xscale("log")
    bars.set_xlabel("ms, median of the passes (log scale); x = collab / Hocuspocus")
    bars.grid(axis="x", alpha=0.3)
    bars.legend(fontsize=8, loc="lower right")
    for p in res["passes"]:
        color = "tab:blue" if p["side"] == "collab" else "tab:orange"
        name = "collab" if p["side"] == "collab" else "Hocuspocus"
        for run, style in (("same", "-"), ("cross", "--")):
            row = p["fanout"].get(run)
            if row is not None:
                values = row["fanout_ms"].get("cdf_ms") or []
                cdf.plot(
                    values,
                    np.linspace(0, 1, len(values)),
                    style,
                    color=color,
                    alpha=0.8,
                    label=f"{name}, {'same' if run == 'same' else 'other'} instance"
                    if p["pass"] == 1
                    else None,
                )
    opts = res["options"]
    cdf.set_xscale("log")
    cdf.set_xlabel(f"keystroke to viewer (ms, log), {opts['viewers']} viewers, every pass")
    cdf.set_ylabel("fraction of frames")
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=7)
    fig.suptitle(
        f"collab vs Hocuspocus, {opts['passes']} alternating passes each, "
        f"{opts['rate']:g} edits/s\n{_caption(doc)}",
        fontsize=9,
    )
    path = out / "versus.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_before_after(folder: Path, out: Path) -> list[Path]:
    """Left: the writer's ack and the 1,000-viewer fan-out, p50 and p99, per
    round, before and after. Right: idle sockets held and idle server cores."""
    runs = {f.stem: json.loads(f.read_text())["results"][0] for f in sorted(folder.glob("ack-*"))}
    caps = {f.stem: json.loads(f.read_text())["results"][0] for f in folder.glob("capacity-*")}
    if not runs or not caps:
        return []
    fig, (lat, cap) = plt.subplots(1, 2, figsize=(12, 4.6), width_ratios=[1.4, 1])
    labels = sorted(runs)
    xs = np.arange(len(labels))
    for offset, (key, stat, color) in zip(
        (-0.3, -0.1, 0.1, 0.3),
        (("ack_ms", "p50", "tab:green"), ("ack_ms", "p99", "tab:olive"),
         ("fanout_ms", "p50", "tab:blue"), ("fanout_ms", "p99", "tab:cyan")),
        strict=True,
    ):  # fmt: skip
        name = "writer's ack" if key == "ack_ms" else "keystroke to 1,000 viewers"
        values = [runs[label][key][stat] for label in labels]
        lat.bar(xs + offset, values, 0.2, color=color, label=f"{name} {stat}")
    lat.set_xticks(xs, labels, fontsize=8)
    lat.set_yscale("log")
    lat.set_ylabel("ms (log)")
    lat.set_title("Ack before fan-out: 1,000 viewers, 20 edits/s", fontsize=9)
    lat.legend(fontsize=7)
    lat.grid(alpha=0.3, axis="y")
    sides = [side for side in ("capacity-before", "capacity-after") if side in caps]
    opened = [caps[side]["open"] for side in sides]
    cores = [caps[side]["idle_cpu"]["server1"]["cores"] for side in sides]
    cap.bar(np.arange(len(sides)) - 0.2, opened, 0.4, color="tab:blue", label="sockets open")
    twin = cap.twinx()
    twin.bar(np.arange(len(sides)) + 0.2, cores, 0.4, color="tab:red", label="idle server cores")
    cap.set_xticks(np.arange(len(sides)), [s.split("-")[1] for s in sides])
    cap.set_ylabel("sockets open of 10,000")
    twin.set_ylabel("idle server cores")
    cap.set_title("Batched heartbeat renewals: 10,000 idle sockets", fontsize=9)
    cap.legend(loc="upper left", fontsize=7)
    twin.legend(loc="upper right", fontsize=7)
    path = out / "before-after.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.plot", description=__doc__)
    p.add_argument("--results", type=Path, default=Path("loadtests/results"))
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for scenario, draw in (
        ("fanout", plot_fanout),
        ("token", plot_token),
        ("versus", plot_versus),
    ):
        doc = _load(args.results, scenario)
        if doc is not None:
            written += draw(doc, args.out)
    capacity = [json.loads(f.read_text()) for f in sorted(args.results.glob("capacity-*.json"))]
    if capacity:
        written += plot_capacity(capacity, args.out)
    written += plot_before_after(args.results / "renewals", args.out)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"no results in {args.results}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
