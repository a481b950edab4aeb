"""Prometheus metrics, one registry per app so tests can run several apps in
one process. Names are documented in docs/operations.md."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily(
            "collab_db_pool_connections", "Database write-pool connections", labels=["state"]
        )
        try:
            stats = self._stats()
        except Exception:  # a closed pool must not break the scrape
            stats = {}
        for state, value in stats.items():
            family.add_metric([state], value)
        yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "collab_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "collab_http_request_seconds", "HTTP request latency", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ws_connections = Gauge("collab_ws_connections", "Open WebSockets", registry=r)
        self.ws_subscriptions = Gauge(
            "collab_ws_subscriptions", "Note subscriptions on this replica", registry=r
        )
        self.ws_frames = Counter("collab_ws_frames", "Client frames", ["type"], registry=r)
        self.ws_closes = Counter("collab_ws_closes", "Closes by code", ["code"], registry=r)
        self.slow_consumers = Counter(
            "collab_ws_slow_consumers", "Sockets dropped for not reading", registry=r
        )
        self.rate_limited = Counter(
            "collab_rate_limited", "Actions refused by a rate limit", ["kind"], registry=r
        )
        self.grants = Counter("collab_lock_grants", "Write tokens granted", registry=r)
        self.renewals = Counter("collab_lock_renewals", "Lease renewals", registry=r)
        self.expiries = Counter("collab_lock_expiries", "Leases lost by expiry", registry=r)
        self.revokes = Counter("collab_lock_revokes", "Tokens revoked", registry=r)
        self.resets = Counter("collab_lock_resets", "Leases lost to a Redis reset", registry=r)
        self.idle_handoffs = Counter(
            "collab_lock_idle_handoffs", "Tokens handed to a waiter after the holder idled",
            registry=r,
        )  # fmt: skip
        self.fenced_writes = Counter(
            "collab_fenced_writes", "Edits refused under a stale fence", registry=r
        )
        self.edits = Counter("collab_edits", "Edits committed", registry=r)
        self.edit_commit = Histogram(
            "collab_edit_commit_seconds", "Edit commit latency (database transaction)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.fanout = Histogram(
            "collab_fanout_seconds", "Commit to push-enqueued latency on each replica",
            ["origin"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.bus_resyncs = Counter("collab_bus_resyncs", "Full resyncs after bus loss", registry=r)
        # What the bus costs each replica: with per-note routing a replica
        # receives only the events of the notes it serves.
        self.bus_published = Counter(
            "collab_bus_events_published", "Events this replica published", ["kind"], registry=r
        )
        self.bus_received = Counter(
            "collab_bus_events_received", "Events this replica received", ["kind"], registry=r
        )

    def watch_pool(self, stats: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_PoolCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
