"""The last acts of every simulated run, on the cluster the faults left
behind (healed, quiet). A holder dies while two others wait in line on other
replicas: the first in line must get the token within TTL + lock-delay + 1 s
of the holder's last heartbeat, before the second (FIFO among live waiters);
a clean release then hands it to the second at once. Then a holder idles
while someone waits: warned, then handed off within the idle time + 1 s."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from collab.hub import Hub
from collab.types import User
from tests.sim.client import SimPeer

if TYPE_CHECKING:
    from tests.sim.world import World

# Rule 6's bound on a dead holder's token moving, beyond TTL + lock-delay.
SLACK_S = 1.0


async def check_handoff(world: World, ttl_s: float, lock_delay_s: float) -> None:
    history, loop = world.history, asyncio.get_running_loop()
    note = world.notes[0]
    owner, admin = world.users[0], world.users[-1]
    seats = await _seats(world, (owner, admin, owner))
    (h_hold, holder), (h_first, first), (h_second, second) = seats

    def granted(peer: SimPeer) -> int | None:
        return _granted(peer, note)

    beats: list[asyncio.Task[None]] = []
    try:
        fence = await _claim(world, h_hold, holder, note, ttl_s + lock_delay_s + SLACK_S)
        if fence is None:
            return
        beats = [loop.create_task(_beat(world, h, p)) for h, p in seats]
        await h_first.tokens.acquire(first, note, True, 2)
        await asyncio.sleep(0.02)
        await h_second.tokens.acquire(second, note, True, 3)
        await asyncio.sleep(world.heartbeat_s * 2)
        beats[0].cancel()  # the holder dies: no heartbeat, no goodbye
        fence = await _granted_within(first, note, ttl_s + lock_delay_s + SLACK_S)
        if fence is None:
            bound = ttl_s + lock_delay_s + SLACK_S
            history.fail(f"a dead holder's token did not move within {bound:.1f}s")
            return
        history.granted(first.session, note, fence, admin.id)
        if granted(second) is not None:
            history.fail("the second in line was granted before the first (FIFO)")
        await h_first.tokens.release(first, note, fence, 4)
        fence = await _granted_within(second, note, SLACK_S)
        if fence is None:
            history.fail("a clean release did not hand the token to the next in line at once")
            return
        history.granted(second.session, note, fence, owner.id)
        await h_second.tokens.release(second, note, fence, 5)
    finally:
        await _leave(beats, seats)


async def check_idle_handoff(world: World, idle_s: float, warning_s: float) -> None:
    """A holder stops typing while someone waits on another replica: it is
    warned, and its token goes to the waiter as a clean release (no
    lock-delay) within the idle time plus one second, never before it."""
    history, loop = world.history, asyncio.get_running_loop()
    note = world.notes[-1]
    owner, admin = world.users[0], world.users[-1]
    seats = await _seats(world, (owner, admin))
    (h_hold, holder), (h_wait, waiter) = seats
    beats: list[asyncio.Task[None]] = []
    try:
        fence = await _claim(world, h_hold, holder, note, idle_s)
        if fence is None:
            return
        since = loop.time()
        beats = [loop.create_task(_beat(world, h, p)) for h, p in seats]
        await h_wait.tokens.acquire(waiter, note, True, 2)
        moved = await _granted_within(waiter, note, idle_s + SLACK_S)
        took = loop.time() - since
        if moved is None:
            history.fail(f"an idle holder's token did not move within {idle_s + SLACK_S:.1f}s")
            return
        history.granted(waiter.session, note, moved, admin.id)
        if took < idle_s:
            history.fail(f"an idle holder was handed off after {took:.2f}s, before {idle_s}s")
        warned = [m for m in holder.inbox if m.get("type") == "idle_warning"]
        lost = [m for m in holder.inbox if m.get("type") == "lease_lost"]
        if not warned or [m.get("reason") for m in lost] != ["idle"]:
            history.fail(f"the idle holder was told {warned} then {lost}")
        await h_wait.tokens.release(waiter, note, moved, 3)
    finally:
        await _leave(beats, seats)


async def _seats(world: World, users: tuple[User, ...]) -> list[tuple[Hub, SimPeer]]:
    """A fresh socket for each user, on the live replicas in turn."""
    hubs = world.live_hubs()
    seats: list[tuple[Hub, SimPeer]] = []
    for i, user in enumerate(users):
        hub = hubs[i % len(hubs)]
        peer = SimPeer(next(world.sockets), user, world.history)
        await hub.attach(peer, None)
        world.history.sessions[peer.session] = user.id
        seats.append((hub, peer))
    return seats


async def _claim(world: World, hub: Hub, peer: SimPeer, note: str, within_s: float) -> int | None:
    """Take the free note. A fault may have left its counter behind the
    database: then the claim waits out the pause."""
    reply = await hub.tokens.acquire(peer, note, True, 1)
    if reply.get("type") == "granted":
        peer.inbox.append(reply)
    fence = await _granted_within(peer, note, within_s)
    if fence is None:
        world.history.fail(f"after the faults healed, a free note was not granted: {reply}")
        return None
    world.history.granted(peer.session, note, fence, peer.user.id)
    return fence


async def _beat(world: World, hub: Hub, peer: SimPeer) -> None:
    while True:
        await hub.heartbeat(peer)
        await asyncio.sleep(world.heartbeat_s)


async def _leave(beats: list[asyncio.Task[None]], seats: list[tuple[Hub, SimPeer]]) -> None:
    for task in beats:
        task.cancel()
    for hub, peer in seats:
        peer.cut = True
        with contextlib.suppress(Exception):
            await hub.detach(peer)


def _granted(peer: SimPeer, note: str) -> int | None:
    for msg in peer.inbox:
        if msg.get("type") == "granted" and msg.get("note") == note:
            return int(msg["fence"])
    return None


async def _granted_within(peer: SimPeer, note: str, seconds: float) -> int | None:
    """The fence ``peer`` was told it was granted, waiting at most ``seconds``
    (polled: the simulated socket has no event to wait on)."""
    for _ in range(round(seconds / 0.01)):
        if _granted(peer, note) is not None:
            break
        await asyncio.sleep(0.01)
    return _granted(peer, note)
