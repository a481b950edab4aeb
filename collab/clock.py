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


# The one form every timestamp takes on the wire and in the stores: ISO 8601
# UTC with microseconds, e.g. ``2026-11-24T10:00:00.000000Z``.
WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(WIRE_FORMAT)


def iso_from_epoch_s(seconds: float) -> str:
    return iso_utc(datetime.fromtimestamp(seconds, UTC))


def iso_from_epoch_ms(milliseconds: float) -> str:
    return iso_from_epoch_s(milliseconds / 1000.0)


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))
