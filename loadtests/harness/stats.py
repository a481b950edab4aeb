"""Percentiles, CPU and memory accounting, and the machine description that
goes next to every figure (the machine is shared, so load averages matter)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psutil

CDF_POINTS = 201  # quantiles kept per series so plot.py can draw a CDF


def summarize(values_ms: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """count, mean, p50/p95/p99/max (milliseconds) and a downsampled CDF."""
    arr = np.asarray(values_ms, dtype=np.float64)
    if arr.size == 0:
        return {"count": 0}
    qs = np.linspace(0.0, 1.0, CDF_POINTS)
    return {
        "count": int(arr.size),
        "mean": round(float(arr.mean()), 3),
        "p50": round(float(np.quantile(arr, 0.50)), 3),
        "p95": round(float(np.quantile(arr, 0.95)), 3),
        "p99": round(float(np.quantile(arr, 0.99)), 3),
        "max": round(float(arr.max()), 3),
        "cdf_ms": [round(float(v), 3) for v in np.quantile(arr, qs)],
    }


def brief(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "no samples"
    return (
        f"n={summary['count']} p50={summary['p50']:.2f} p95={summary['p95']:.2f} "
        f"p99={summary['p99']:.2f} max={summary['max']:.2f} ms"
    )


class CpuMeter:
    """CPU seconds used by labelled processes over a window (psutil), so a
    reader can tell whether the server or the driver was the bottleneck."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {label: psutil.Process(pid) for label, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._wall = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            t = proc.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return 0.0

    def start(self) -> None:
        self._wall = time.monotonic()
        self._start = {label: self._cpu(p) for label, p in self.procs.items()}

    def stop(self) -> dict[str, Any]:
        wall = max(1e-9, time.monotonic() - self._wall)
        out: dict[str, Any] = {"wall_s": round(wall, 3)}
        for label, proc in self.procs.items():
            used = self._cpu(proc) - self._start.get(label, 0.0)
            out[label] = {"cpu_s": round(used, 3), "cores": round(used / wall, 3)}
        return out


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def merge_arrays(chunks: Iterable[bytes]) -> np.ndarray:
    """Latency samples shipped from workers as float32 bytes."""
    parts = [np.frombuffer(c, dtype=np.float32) for c in chunks if c]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
