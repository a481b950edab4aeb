"""The clock of the in-process twins, injectable so tests drive time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

# Wall-clock milliseconds at start-up, advanced by the monotonic clock: lease
# deadlines never jump with a system clock change, and ``since`` still reads as
# a wall-clock time.
_ANCHOR_MS = time.time() * 1000.0 - time.monotonic() * 1000.0


def steady_wall_clock_ms() -> float:
    return _ANCHOR_MS + time.monotonic() * 1000.0


def utc_now() -> str:
    """ISO 8601 UTC with microseconds, the form every timestamp takes on the wire."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
