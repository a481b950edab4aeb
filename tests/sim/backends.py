"""The shared backends of a simulated cluster, with the faults the seed
decides: latency on every call, statements that fail before or after they
ran, Redis unreachable or restarted empty, a fence counter evicted, pub/sub
events dropped, delayed (and so reordered) or duplicated, a subscription
silently lost, PostgreSQL failing over with or without the newest writes."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from typing import Any

from collab.bus.memory import MemoryBroker, MemoryBus
from collab.errors import Unavailable
from collab.leases.memory import MemoryLeaseStore
from collab.store.memory import MemoryStore, Tables
from tests.sim.history import History


class Knobs:
    """Fault probabilities for one run, drawn from its seed; no call fails
    until the fault window opens (``armed``) or after it closes."""

    def __init__(self, rng: random.Random) -> None:
        self.armed = False
        self.latency_ms = rng.choice((0.2, 1.0, 5.0))
        self._db_fail = rng.choice((0.0, 0.0, 0.01, 0.03))
        self._redis_fail = rng.choice((0.0, 0.0, 0.01))
        self._bus_drop = rng.choice((0.0, 0.02, 0.1))
        self._bus_dup = rng.choice((0.0, 0.02, 0.05))
        self.bus_delay_ms = rng.choice((1.0, 10.0, 60.0))

    @property
    def db_fail(self) -> float:
        return self._db_fail if self.armed else 0.0

    @property
    def redis_fail(self) -> float:
        return self._redis_fail if self.armed else 0.0

    @property
    def bus_drop(self) -> float:
        return self._bus_drop if self.armed else 0.0

    @property
    def bus_dup(self) -> float:
        return self._bus_dup if self.armed else 0.0


class Backends:
    """One PostgreSQL, one Redis (lease, presence and registry twins) and a
    pub/sub broker, shared by every replica of the run."""

    def __init__(self, rng: random.Random, knobs: Knobs, history: History) -> None:
        self.rng = rng
        self.knobs = knobs
        self.history = history
        loop = asyncio.get_running_loop()

        def clock_ms() -> float:
            return loop.time() * 1000.0

        self.clock_ms = clock_ms
        self.store = MemoryStore()
        self.standby: Tables = copy.deepcopy(self.store.tables)
        self.standby_writers = copy.deepcopy(history.writers)
        self.standby_at = 0.0
        self.redis_down = False
        self.redis_generation = 0
        self.broker = FaultyBroker(self)

    def lease_store(self, ttl_ms: int, lock_delay_ms: int) -> MemoryLeaseStore:
        return MemoryLeaseStore(
            ttl_ms=ttl_ms, lock_delay_ms=lock_delay_ms, clock=self.clock_ms, shared=True
        )

    # -- faults --------------------------------------------------------------------
    def copy_to_standby(self) -> None:
        """Asynchronous replication: the standby has the primary's state as of
        now; what is committed after this is lost if the primary dies first."""
        self.standby = copy.deepcopy(self.store.tables)
        self.standby_writers = copy.deepcopy(self.history.writers)
        self.standby_at = asyncio.get_running_loop().time()

    def fail_over(self, synchronous: bool) -> None:
        if synchronous:
            self.store.fail_over(self.store.tables)
            self.history.note_failover(lost_after=None)
        else:
            self.store.fail_over(copy.deepcopy(self.standby))
            # Grants changed after the copy are lost with it.
            self.history.writers = copy.deepcopy(self.standby_writers)
            self.history.note_failover(lost_after=self.standby_at)

    async def latency(self) -> None:
        await asyncio.sleep(self.rng.expovariate(1.0 / self.knobs.latency_ms) / 1000.0)


class Latent:
    """Wraps one backend for one replica: every coroutine method waits a seeded
    latency before and after, and may fail (before it ran, or after: the
    caller cannot tell whether it took effect)."""

    def __init__(
        self,
        inner: Any,
        backends: Backends,
        fail_p: Callable[[], float],
        down: Callable[[], bool] = lambda: False,
    ) -> None:
        self._inner = inner
        self._b = backends
        self._fail_p = fail_p
        self._down = down

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(target) or name in ("start", "close"):
            return target
        b = self._b

        async def call(*args: Any, **kwargs: Any) -> Any:
            await b.latency()
            if self._down() or b.rng.random() < self._fail_p():
                raise Unavailable("injected: the service did not answer")
            result = await target(*args, **kwargs)
            if b.rng.random() < self._fail_p():
                raise Unavailable("injected: the answer was lost")
            await b.latency()
            return result

        return call


class RecordingStore:
    """The store as the history sees it: each write is recorded right after
    it took effect, with no await in between, so the history's order is the
    store's order."""

    def __init__(self, store: MemoryStore, history: History) -> None:
        self._store = store
        self._history = history

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def advance_fence(self, note_id: str, fence: int, holder: str, writer: Any) -> Any:
        result = await self._store.advance_fence(note_id, fence, holder, writer)
        self._history.advance(note_id, fence, holder, result.raised, self._store.timeline)
        return result

    async def bump_fence(self, note_id: str, at_least: int) -> int:
        fence = await self._store.bump_fence(note_id, at_least)
        self._history.bump(note_id, fence)
        return fence

    async def commit_edit(self, note_id: str, fence: int, base: int, op: str, *args: Any,
                          holder: str) -> Any:  # fmt: skip
        result = await self._store.commit_edit(note_id, fence, base, op, *args, holder=holder)
        self._history.commit(note_id, result.version, fence, holder, op, args[1].id,
                             result.duplicate, self._store.timeline)  # fmt: skip
        return result


class FaultyBroker(MemoryBroker):
    """Pub/sub that drops, duplicates and delays (so reorders) events per
    receiver, as at-most-once Redis pub/sub may."""

    def __init__(self, backends: Backends) -> None:
        super().__init__()
        self._b = backends

    def publish(self, topic: str, payload: bytes) -> None:
        b, k = self._b, self._b.knobs
        if b.redis_down:
            raise Unavailable("injected: Redis is unreachable")
        loop = asyncio.get_running_loop()
        for bus in self.followers(topic):
            if b.rng.random() < k.bus_drop:
                continue
            copies = 2 if b.rng.random() < k.bus_dup else 1
            for _ in range(copies):
                delay = b.rng.expovariate(1.0 / k.bus_delay_ms) / 1000.0
                loop.call_later(delay, bus.offer, payload)

    def attached(self) -> list[MemoryBus]:
        return list(self._buses)
