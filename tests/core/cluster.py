"""Several hubs in one process over the shared twins: one store, one lease
store, one presence store and one session registry (as every replica shares
PostgreSQL and Redis), and one bus each on a shared in-memory broker. Sockets
are ``FakePeer`` objects that record what the server pushed to them.

This reaches interleavings that process-level suites cannot time: a test can
stop a hub between two awaits, drop an event, or fail one store call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from collab.bus.base import Handler, ResyncHandler
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.hub import Hub
from collab.leases.memory import MemoryLeaseStore
from collab.messages import Edit
from collab.metrics import Metrics
from collab.presence.memory import MemoryPresenceStore
from collab.registry.memory import MemorySessionRegistry
from collab.settings import Settings
from collab.store.base import Store
from collab.types import Access, Change, EditPayload, Note, Role, User


class FakePeer:
    """Implements ``collab.peer.Peer`` and keeps every pushed frame."""

    def __init__(self, user: User, session: str | None = None) -> None:
        self.socket_id = uuid.uuid4().hex
        self.session = session or uuid.uuid4().hex
        self.user = user
        self.access: dict[str, Access] = {}
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.rechecks = 0  # times the replica asked it to check its token again

    def push(self, frame: str) -> None:
        self.frames.append(orjson.loads(frame))

    def close_soon(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)

    async def recheck_sign_in(self) -> None:
        self.rechecks += 1

    def of(self, kind: str, note: str | None = None) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if f.get("type") == kind and (note is None or f.get("note") == note)
        ]

    def versions(self, note: str) -> list[int]:
        """Edit versions pushed live (``edited`` frames) and by ``changes`` replies."""
        out: list[int] = []
        for f in self.frames:
            if f.get("note") != note:
                continue
            if f.get("type") == "edited":
                out.append(int(f["version"]))
            elif f.get("type") == "changes":
                out.extend(int(e["version"]) for e in f["edits"])
        return out


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "heartbeat_ms": 100,
        "lease_ttl_ms": 300,
        "lock_delay_ms": 100,
        "reconcile_interval_s": 0.2,
        "jwt_secret": "x" * 40,
    }
    base.update(overrides)
    return Settings(**base)


class RecordingBus(MemoryBus):
    """A replica's bus that keeps every event it handed to the replica."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.received: list[dict[str, Any]] = []

    async def start(self, handler: Handler, on_resync: ResyncHandler) -> None:
        async def record(event: dict[str, Any]) -> None:
            self.received.append(event)
            await handler(event)

        await super().start(record, on_resync)


class Cluster:
    """Replicas ``hubs[0..n-1]`` over one store and shared twins."""

    def __init__(self, store: Store, replicas: int = 2, **overrides: Any) -> None:
        self.settings = settings(**overrides)
        self.store = store
        self.leases = MemoryLeaseStore(
            ttl_ms=self.settings.lease_ttl_ms,
            lock_delay_ms=self.settings.lock_delay_ms,
            shared=True,
        )
        self.presence = MemoryPresenceStore()
        self.registry = MemorySessionRegistry()
        self.broker = MemoryBroker()
        self.stores = [GatedStore(store) for _ in range(replicas)]
        self.buses = [RecordingBus(self.broker) for _ in range(replicas)]
        self.hubs = [self._hub(i) for i in range(replicas)]

    def _hub(self, index: int) -> Hub:
        s = Settings(**{**self.settings.__dict__, "replica_id": f"r{index}"})
        store: Any = self.stores[index]
        return Hub(
            s, store, self.leases, self.presence, self.registry, self.buses[index], Metrics()
        )

    async def start(self) -> Cluster:
        for hub in self.hubs:
            await hub.start()
        return self

    async def close(self) -> None:
        for hub in self.hubs:
            await hub.close()

    def received(self, index: int) -> list[dict[str, Any]]:
        """Every event replica ``index`` heard on the bus."""
        return self.buses[index].received

    async def user(self, role: Role = "user", name: str | None = None) -> User:
        record = await self.store.create_user(name or f"u{uuid.uuid4().hex[:8]}", "x", role)
        return record.user()

    async def note(self, owner: User, visibility: str = "private") -> Note:
        return await self.store.create_note(owner.id, "t", "", visibility)  # type: ignore[arg-type]

    async def connect(self, hub: Hub, user: User, resume: str | None = None) -> FakePeer:
        peer = FakePeer(user)
        await hub.attach(peer, resume)
        return peer


async def settle(seconds: float = 0.05) -> None:
    """Let background tasks and bus deliveries run."""
    await asyncio.sleep(seconds)


async def until(check: Callable[[], bool], within_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class GatedStore:
    """A store proxy for one replica: calls named in ``gates`` wait until the
    test opens the gate (a slow commit), calls named in ``failures`` raise
    once (a statement timeout, a failover)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.failures: dict[str, list[BaseException]] = {}

    def gate(self, name: str) -> asyncio.Event:
        self.entered[name] = asyncio.Event()
        gate = self.gates[name] = asyncio.Event()
        return gate

    def fail_once(self, name: str, exc: BaseException) -> None:
        self.failures.setdefault(name, []).append(exc)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.failures.get(name):
                raise self.failures[name].pop(0)
            gate = self.gates.get(name)
            if gate is not None:
                self.entered[name].set()
                await gate.wait()
                del self.gates[name]
            return await target(*args, **kwargs)

        return call


async def type_into(hub: Hub, peer: FakePeer, note: str, fence: int, base: int, text: str) -> int:
    """Commit one insertion at the start through ``hub``; returns the version."""
    msg = Edit(note, fence, base, uuid.uuid4().hex, EditPayload(changes=(Change(0, 0, text),)))
    ack = await hub.edits.edit(peer, msg)  # a retry's ack is returned, a new edit's pushed
    if ack is None:
        ack = next(f for f in reversed(peer.frames) if f.get("type") == "ack" and f["op"] == msg.op)
    return int(ack["version"])
