"""One simulated run: several replicas (hubs) over the shared backends, tabs
on them, and faults, all drawn from one seed on a virtual-time loop, then
checked by the invariants of ``history.py``.

The same seed gives the same run: every random choice comes from the seed's
generator (ids included), peers hash by creation order, and the loop runs on
virtual time; string hashing must be fixed too (``PYTHONHASHSEED``), which the
runner in ``__main__.py`` does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from collab.bus.memory import MemoryBus
from collab.hub import Hub
from collab.leases.memory import MemoryLeaseStore
from collab.metrics import Metrics
from collab.presence.memory import MemoryPresenceStore
from collab.registry.memory import MemorySessionRegistry
from collab.settings import Settings
from collab.types import User
from tests.sim.backends import Backends, Knobs, Latent, RecordingStore
from tests.sim.client import SimClient
from tests.sim.handoff import check_handoff, check_idle_handoff
from tests.sim.history import History

HEARTBEAT_MS, TTL_MS, LOCK_DELAY_MS = 100, 300, 100
IDLE_HANDOFF_S, IDLE_WARNING_S = 1.5, 0.5


@dataclass(frozen=True)
class Shape:
    replicas: int = 3
    tabs: int = 5
    notes: int = 2
    faulty_s: float = 6.0  # faults happen in this window
    settle_s: float = 3.0  # then quiet: everything must converge


class EpochView(Latent):
    """A replica's view of the shared lease twin: it notices a Redis restart
    (a new generation) the way ``RedisLeaseStore.check_epoch`` does."""

    def __init__(self, inner: MemoryLeaseStore, backends: Backends) -> None:
        super().__init__(inner, backends, lambda: backends.knobs.redis_fail,
                         lambda: backends.redis_down)  # fmt: skip
        self._seen = backends.redis_generation

    async def check_epoch(self) -> bool:
        await self._b.latency()
        lost = self._seen != self._b.redis_generation
        self._seen = self._b.redis_generation
        return lost


class World:
    def __init__(self, seed: int, shape: Shape = Shape()) -> None:
        self.seed = seed
        self.shape = shape
        self.rng = random.Random(seed)
        self.history = History(idle_warning_s=IDLE_WARNING_S)
        self.heartbeat_s = HEARTBEAT_MS / 1000.0
        self.running = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self.hubs: list[Hub | None] = []
        self.sockets = itertools.count(1)
        self.clients: list[SimClient] = []

    # -- plumbing ------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.history.fail(f"simulation task crashed: {type(exc).__name__}: {exc}")

    def later(self, seconds: float, coro: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            await asyncio.sleep(seconds)
            await coro

        self.spawn(run())

    async def net(self) -> None:
        """One network hop between a tab and its replica."""
        await asyncio.sleep(self.rng.expovariate(1.0 / 0.002))

    def live_hubs(self) -> list[Hub]:
        return [h for h in self.hubs if h is not None and not h.draining]

    def pick_hub(self, rng: random.Random) -> Hub:
        return rng.choice(self.live_hubs())

    # -- building --------------------------------------------------------------------
    def _hub(self, index: int) -> Hub:
        b = self.backends
        settings = Settings(
            heartbeat_ms=HEARTBEAT_MS, lease_ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS,
            reconcile_interval_s=0.2, replica_id=f"r{index}", jwt_secret="s" * 40,
            idle_handoff_s=IDLE_HANDOFF_S, idle_warning_s=IDLE_WARNING_S,
        )  # fmt: skip
        store: Any = Latent(self.recording, b, lambda: b.knobs.db_fail)
        redis: Any = lambda twin: Latent(twin, b, lambda: b.knobs.redis_fail,  # noqa: E731
                                         lambda: b.redis_down)  # fmt: skip
        return Hub(
            settings, store, EpochView(self.leases, b),  # type: ignore[arg-type]
            redis(self.presence), redis(self.registry), MemoryBus(b.broker), Metrics(),
        )  # fmt: skip

    async def build(self) -> None:
        self.knobs = Knobs(self.rng)
        self.backends = b = Backends(self.rng, self.knobs, self.history)
        self.recording = RecordingStore(b.store, self.history)
        self.leases = b.lease_store(TTL_MS, LOCK_DELAY_MS)
        self.presence = MemoryPresenceStore(clock=b.clock_ms)
        self.registry = MemorySessionRegistry(clock=b.clock_ms)
        for i in range(self.shape.replicas):
            hub = self._hub(i)
            await hub.start()
            self.hubs.append(hub)
        store = b.store
        owner = (await store.create_user("owner", "x", "user")).user()
        notes = [(await store.create_note(owner.id, f"n{i}", "", "private")).id
                 for i in range(self.shape.notes)]  # fmt: skip
        users: list[User] = [owner]
        for i in range(1, self.shape.tabs):
            role = "admin" if i == self.shape.tabs - 1 else "user"
            users.append((await store.create_user(f"u{i}", "x", role)).user())  # type: ignore[arg-type]
        for note in notes:
            for user in users:
                if user.role == "user" and user.id != owner.id:
                    await store.set_access(note, user.id, "write")
                self.history.writers[note].add(user.id)
        self.notes, self.users = notes, users
        b.copy_to_standby()  # the standby starts with the accounts and notes
        self.clients = [SimClient(self, i, u, notes) for i, u in enumerate(users)]

    # -- faults ----------------------------------------------------------------------------
    async def faults(self) -> None:
        """A fault every so often, chosen by the seed, until the window ends."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.shape.faulty_s
        b = self.backends
        b.knobs.armed = True
        while loop.time() < end:
            await asyncio.sleep(self.rng.uniform(0.05, 0.6))
            b.copy_to_standby() if self.rng.random() < 0.5 else None
            fault = self.rng.choice(FAULTS)
            self.history.log(f"fault {fault.__name__}")
            await fault(self)

    async def heal(self) -> None:
        b = self.backends
        b.redis_down = False
        b.knobs.armed = False
        for bus in b.broker.attached():
            bus.heal()
        for i, hub in enumerate(self.hubs):
            if hub is None:
                await self._restart(i)

    async def _restart(self, index: int) -> None:
        """The orchestrator restarts a dead replica until it comes up (its
        start fails while Redis or the database does not answer)."""
        while self.hubs[index] is None:
            hub = self._hub(index)
            try:
                await hub.start()
            except Exception:
                await hub.close()
                await asyncio.sleep(0.2)
                continue
            self.hubs[index] = hub

    # -- a run ---------------------------------------------------------------------------------
    async def run(self) -> History:
        await self.build()
        for client in self.clients:
            self.spawn(client.run())
        await self.faults()
        await self.heal()
        for client in self.clients:
            client.quiet = True
        await asyncio.sleep(self.shape.settle_s)
        await self.check_converged()
        await self.finish()
        return self.history

    async def check_converged(self) -> None:
        """Every live tab has every version of its notes (gaps are filled
        within the settle time), and nothing it was acked was lost."""
        store = self.backends.store
        for client in self.clients:
            peer = client.peer
            if client.dead or peer is None or peer.closed or peer.cut:
                continue
            for note in self.notes:
                current = (await store.get_note(note)).version  # type: ignore[union-attr]
                if peer.have.get(note) != current:
                    self.history.fail(f"tab {client.index} has v{peer.have.get(note)} of "
                                      f"{note[:6]}, the note is at v{current}")  # fmt: skip
        self.history.check_acked_edits_kept(store.tables.ops)
        for note in self.notes:
            view = await self.leases.view(note)
            holder = getattr(view, "session", None)
            user = self.history.sessions.get(holder or "")
            if holder and user not in self.history.writers[note]:
                self.history.fail(f"{holder[:6]} still holds {note[:6]} without write access")

    async def finish(self) -> None:
        """Everyone lets go and leaves; once the leases have run out nothing
        may be held, queued or remembered per note anywhere."""
        self.running = False
        for client in self.clients:
            client.dead = True
            hub, peer = client.hub, client.peer
            if hub is not None and peer is not None and not peer.cut:
                for note, fence in list(client.held.items()):
                    with contextlib.suppress(Exception):
                        await hub.tokens.release(peer, note, fence, 0)
            client.drop_socket(tell_server=True)
        # Half-open sockets are noticed within 3 s (drop_socket); leases run
        # out within TTL + lock-delay after that.
        await asyncio.sleep(3.0 + (TTL_MS + LOCK_DELAY_MS) * 3 / 1000.0)
        await check_handoff(self, TTL_MS / 1000.0, LOCK_DELAY_MS / 1000.0)
        await check_idle_handoff(self, IDLE_HANDOFF_S, IDLE_WARNING_S)
        await asyncio.sleep((TTL_MS + LOCK_DELAY_MS) * 3 / 1000.0)
        for hub in self.live_hubs():
            where = hub.replica_id
            if hub.tokens.held or hub.tokens.waiting:
                self.history.fail(f"{where} still tracks holds {hub.tokens.held} / waits")
            kept = {**hub.sockets.sizes(), "delivery locks": hub.edits.lock_count}
            if any(kept.values()):
                self.history.fail(f"{where} still keeps per-note or per-socket state: {kept}")
        for note in self.notes:
            view = await self.leases.view(note)
            if getattr(view, "session", None):
                self.history.fail(f"{note[:6]} is still held by {view.session[:6]} (a phantom)")
        for hub in self.hubs:
            if hub is not None:
                await hub.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- the faults -------------------------------------------------------------------------------
async def redis_restart(w: World) -> None:
    """Redis restarts with no persistence: every key is gone."""
    w.leases._notes.clear()
    w.registry._records.clear()
    w.registry._notes.clear()
    w.presence._notes.clear()
    w.backends.redis_generation += 1


async def evict_fence_counter(w: World) -> None:
    note = w.rng.choice(w.notes)
    if note in w.leases._notes:
        w.leases._notes[note].fence = 0


async def redis_unreachable(w: World) -> None:
    w.backends.redis_down = True
    await asyncio.sleep(w.rng.uniform(0.05, 0.5))
    w.backends.redis_down = False


async def subscription_lost(w: World) -> None:
    buses = w.backends.broker.attached()
    if buses:
        bus = w.rng.choice(buses)
        bus.partition()
        await asyncio.sleep(w.rng.uniform(0.05, 1.0))
        bus.heal()


async def failover_sync(w: World) -> None:
    w.backends.fail_over(synchronous=True)


async def failover_async(w: World) -> None:
    w.backends.fail_over(synchronous=False)


async def replica_crash(w: World) -> None:
    """A replica dies without a word: its sockets just stop; it restarts later."""
    live = [i for i, h in enumerate(w.hubs) if h is not None]
    if len(live) < 2:
        return
    index = w.rng.choice(live)
    hub = w.hubs[index]
    assert hub is not None
    w.hubs[index] = None
    for client in w.clients:
        if client.hub is hub and client.peer is not None:
            client.peer.cut = True
    await hub.close()
    w.later(w.rng.uniform(0.2, 1.5), w._restart(index))


async def replica_drain(w: World) -> None:
    """SIGTERM: the replica drains (1012 to every socket), stops, comes back."""
    live = [i for i, h in enumerate(w.hubs) if h is not None and not h.draining]
    if len(live) < 2:
        return
    index = w.rng.choice(live)
    hub = w.hubs[index]
    assert hub is not None
    await hub.drain()
    await asyncio.sleep(w.rng.uniform(0.05, 0.3))
    if w.hubs[index] is hub:
        w.hubs[index] = None
        await hub.close()
        w.later(w.rng.uniform(0.1, 1.0), w._restart(index))


async def socket_cut(w: World) -> None:
    client = w.rng.choice(w.clients)
    if client.peer is not None:
        client.peer.cut = True


async def tab_stall(w: World) -> None:
    client = w.rng.choice(w.clients)
    if not client.dead:
        w.spawn(client.stall(w.rng.uniform(0.4, 1.2)))


async def holder_idles(w: World) -> None:
    """Someone holding a token stops typing for a while, at the keyboard
    (answers the idle warning) or walked away (does not)."""
    holders = [c for c in w.clients if c.held and not c.dead]
    if holders:
        w.rng.choice(holders).idle(w.rng.uniform(0.5, 3.0), walked_away=w.rng.random() < 0.5)


async def access_removed(w: World) -> None:
    """The owner takes a user's write grant away; the event may be lost."""
    note = w.rng.choice(w.notes)
    users = [u for u in w.users if u.role == "user" and u.id in w.history.writers[note]
             and u is not w.users[0]]  # fmt: skip
    if not users:
        return
    user = w.rng.choice(users)
    w.history.writers[note].discard(user.id)
    await w.backends.store.set_access(note, user.id, "read")
    hubs = w.live_hubs()
    if hubs and w.rng.random() < 0.7:
        with contextlib.suppress(Exception):
            await w.rng.choice(hubs).revocations.user_access_changed(user.id, note)


async def holder_access_removed_silently(w: World) -> None:
    """The current holder of a note loses its grant and no event about it
    reaches any replica: only the store knows."""
    note = w.rng.choice(w.notes)
    view = await w.leases.view(note)
    user_id = w.history.sessions.get(getattr(view, "session", None) or "")
    user = next((u for u in w.users if u.id == user_id), None)
    if user is None or user.role != "user" or user is w.users[0]:
        return
    w.history.writers[note].discard(user.id)
    await w.backends.store.set_access(note, user.id, "read")


async def access_given(w: World) -> None:
    note = w.rng.choice(w.notes)
    for user in w.users:
        if user.role == "user" and user.id not in w.history.writers[note]:
            await w.backends.store.set_access(note, user.id, "write")
            w.history.writers[note].add(user.id)
            return


async def admin_revoke(w: World) -> None:
    hubs = w.live_hubs()
    if hubs:
        admin = w.users[-1]
        with contextlib.suppress(Exception):
            await w.rng.choice(hubs).revocations.revoke(admin, w.rng.choice(w.notes))


FAULTS = (
    redis_restart, evict_fence_counter, redis_unreachable, subscription_lost,
    failover_sync, failover_async, replica_crash, replica_drain, socket_cut, tab_stall,
    tab_stall, access_removed, holder_access_removed_silently, access_given, admin_revoke,
    holder_idles, holder_idles,
)  # fmt: skip


@contextlib.contextmanager
def deterministic_ids(rng: random.Random) -> Iterator[None]:
    """uuid4 from the seed while a run lasts: ids decide hash order and so
    iteration order."""
    real = uuid.uuid4
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # type: ignore[assignment]
    try:
        yield
    finally:
        uuid.uuid4 = real  # type: ignore[assignment]
