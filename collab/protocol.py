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
class AuthBudgets:
    """A per-address token bucket and one global bucket for one kind of
    anonymous request (login, register, guest). Both must have a token; the
    per-address one is asked first, so one noisy address cannot drain the
    global budget for everyone by itself."""

    per_address: KeyedBuckets
    overall: TokenBucket

    @classmethod
    def per_minute(
        cls, per_ip_per_min: float, burst_per_ip: int, per_min: float, burst: int
    ) -> AuthBudgets:
        return cls(
            KeyedBuckets(per_ip_per_min / 60.0, burst_per_ip), TokenBucket(per_min / 60.0, burst)
        )

    def take(self, address: str, now: float) -> bool:
        return self.per_address.take(address, now) and self.overall.take(now)


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


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a WebSocket upgrade carrying ``Origin: origin`` to ``Host: host``
    may proceed: same origin (host and port equal), or listed in ``allowed``
    (normalised origins). A missing Origin is allowed: browsers always send
    one on a WebSocket upgrade, so its absence means a non-browser client,
    which has no victim's ambient credentials to hijack."""
    if origin is None:
        return True
    wanted = normalise_origin(origin)
    if wanted is None:
        return False
    if wanted in allowed:
        return True
    if not host:
        return False
    scheme, _, authority = wanted.partition("://")
    default = 443 if scheme == "https" else 80
    origin_host, origin_port = split_host_port(authority, default)
    host_name, host_port = split_host_port(host.strip().lower(), default)
    # The scheme is not compared: TLS usually ends at the front end, so the
    # app sees http while the page is https; host and port must match.
    return host_name is not None and (origin_host, origin_port) == (host_name, host_port)


DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None
    when ``value`` is not an http(s) origin (``null``, paths, other schemes)."""
    scheme, sep, rest = value.strip().lower().partition("://")
    if not sep or scheme not in DEFAULT_PORTS or not rest or any(c in rest for c in "/?#@"):
        return None
    host, port = split_host_port(rest, DEFAULT_PORTS[scheme])
    if host is None:
        return None
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")


def split_host_port(authority: str, default_port: int) -> tuple[str | None, int]:
    """``host[:port]`` (IPv6 in brackets) into its parts; host None if malformed."""
    host, port_text = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None, 0
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            return None, 0
        port_text = rest[1:]
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
    if not host:
        return None, 0
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None, 0
    return host, int(port_text)
