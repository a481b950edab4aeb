"""Pure decisions of a WebSocket session: rate limiting and abuse counting.
No I/O; the clock is passed in so tests drive it exhaustively."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked. ``take`` answers
    whether an action at time ``now`` (seconds) is allowed."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.stamp is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass
class KeyedBuckets:
    """One ``TokenBucket`` per key (e.g. client IP), bounded to ``max_keys``:
    when full, idle buckets (refilled to their burst) are forgotten first."""

    rate: float
    burst: int
    max_keys: int = 100_000
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._evict(now)
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket.take(now)

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        stale = [
            k for k, b in self.buckets.items() if b.stamp is None or now - b.stamp > full_after
        ]
        for key in stale:
            del self.buckets[key]
        if len(self.buckets) >= self.max_keys:
            # Everyone is active: drop the oldest half rather than grow without bound.
            oldest = sorted(self.buckets, key=lambda k: self.buckets[k].stamp or 0.0)
            for key in oldest[: len(oldest) // 2]:
                del self.buckets[key]


@dataclass
class AbuseCounter:
    """Counts frames that are not JSON objects (protocol.md: close 1008 when
    the limit is exceeded)."""

    limit: int
    count: int = 0

    def strike(self) -> bool:
        """Record one bad frame; True when the connection must be closed."""
        self.count += 1
        return self.count > self.limit


def client_address(
    peer: str,
    real_ip: str | None,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The address rate limits count: the direct peer, or the gateway's
    ``X-Real-IP`` when the direct peer is a trusted proxy. Anyone else could
    pick their own address with that header and dodge per-IP limits."""
    if not real_ip:
        return peer
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if any(address in network for network in trusted):
        return real_ip.strip()[:64]
    return peer
