"""py-spy attached to a server for the length of a run, and the summary of
its samples that ``docs/benchmarks.md`` quotes (the frames where the busy
time went: their own samples, and the samples they were on the stack for).

py-spy is not a test dependency: install it where you profile
(``pip install py-spy``) or pass its path. Idle samples (the event loop
waiting in ``epoll``) are left out by py-spy, so the shares are of busy time.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 200  # per second; py-spy's default is 100

_LINE_NO = re.compile(r":\d+\)$")


class PySpy:
    """``py-spy record --format raw`` of ``pid`` until ``stop()``."""

    def __init__(self, pid: int, out: Path, exe: str | None = None) -> None:
        exe = exe or shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("py-spy not found: pip install py-spy, or pass --py-spy PATH")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(SAMPLE_RATE),
                "--format",
                "raw",
                "--nonblocking",  # never pause the server being measured
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        """Ctrl-C: py-spy writes what it sampled and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(5)


def _frame(raw: str) -> str:
    """``func (path/to/module.py:123)`` without the line number and with the
    path cut to its last two parts, so one function is one row."""
    name, _, where = raw.partition(" (")
    where = _LINE_NO.sub(")", "(" + where) if where else ""
    parts = where.strip("()").split("/")
    short = "/".join(parts[-2:]) if parts and parts[0] else ""
    return f"{name} ({short})" if short else name


LOOP_ROOT = "Runner.run (asyncio/runners.py)"  # asyncio.run's frame: the event loop


def top_frames(collapsed: str, limit: int = 15) -> dict[str, object]:
    """From py-spy's raw (collapsed) output: total samples, and the ``limit``
    frames with the most samples of their own (``self``) and on the stack at
    all (``total``), as percentages of all samples. ``total`` leaves out the
    frames from the process's entry down to the event loop (``LOOP_ROOT``),
    which every loop sample has. Under uvloop the loop's own C code (socket
    reads and writes, callback dispatch) shows as ``LOOP_ROOT``'s self time."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        below = frames[frames.index(LOOP_ROOT) + 1 :] if LOOP_ROOT in frames else frames
        for f in set(below):
            anywhere[f] += n

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(limit)]

    if total == 0:
        return {"samples": 0, "self": [], "total": []}
    return {"samples": total, "self": pct(own), "total": pct(anywhere)}


def report(summary: dict[str, object], title: str) -> str:
    lines = [f"{title}: {summary['samples']} busy samples at {SAMPLE_RATE}/s"]
    for key in ("self", "total"):
        lines.append(f"  top by {key}:")
        for frame, share in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"    {share:5.1f}%  {frame}")
    return "\n".join(lines)
