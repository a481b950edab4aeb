"""Named limits of the event bus. ``from_settings`` reads the ``bus_*`` fields
when ``Settings`` defines them, else these defaults apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A subscriber that has heard nothing for this long sends a PING through its
# pub/sub connection, and declares the link dead if no reply comes within the
# timeout: a half-open TCP connection raises no error on its own (rule 7).
DEFAULT_PING_INTERVAL_S = 1.0
DEFAULT_PING_TIMEOUT_S = 1.0
# Reconnect backoff: first delay, then doubling up to the cap, each with jitter
# so replicas cut off together do not reconnect in lockstep.
DEFAULT_RECONNECT_MIN_S = 0.05
DEFAULT_RECONNECT_MAX_S = 5.0
# Events waiting for one in-process subscriber; beyond it events are dropped
# and the subscriber resyncs, like a Redis subscriber past its output buffer.
DEFAULT_MEMORY_QUEUE_MAX = 10_000


@dataclass(frozen=True)
class BusTiming:
    ping_interval_s: float = DEFAULT_PING_INTERVAL_S
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    reconnect_min_s: float = DEFAULT_RECONNECT_MIN_S
    reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S

    def __post_init__(self) -> None:
        if min(self.ping_interval_s, self.ping_timeout_s, self.reconnect_min_s) <= 0:
            raise ValueError("bus ping and reconnect times must be positive")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("bus reconnect_max_s must be >= reconnect_min_s")

    @classmethod
    def from_settings(cls, settings: Any) -> BusTiming:
        return cls(
            ping_interval_s=float(
                getattr(settings, "bus_ping_interval_s", DEFAULT_PING_INTERVAL_S)
            ),
            ping_timeout_s=float(getattr(settings, "bus_ping_timeout_s", DEFAULT_PING_TIMEOUT_S)),
            reconnect_min_s=float(
                getattr(settings, "bus_reconnect_min_s", DEFAULT_RECONNECT_MIN_S)
            ),
            reconnect_max_s=float(
                getattr(settings, "bus_reconnect_max_s", DEFAULT_RECONNECT_MAX_S)
            ),
        )

    def backoff_s(self, attempt: int, jitter: float) -> float:
        """Delay before reconnect ``attempt`` (0-based); ``jitter`` in [0, 1)
        takes up to half of it away."""
        base = min(self.reconnect_max_s, self.reconnect_min_s * 2.0 ** min(attempt, 30))
        return base * (1.0 - 0.5 * jitter)
