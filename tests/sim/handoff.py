"""The last act of every simulated run, on the cluster the faults left behind
(healed, quiet): a holder dies while two others wait in line on other
replicas. The first in line must get the token within TTL + lock-delay + 1 s
of the holder's last heartbeat, before the second (FIFO among live waiters);
a clean release then hands it to the second at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from collab.hub import Hub
from tests.sim.client import SimPeer

if TYPE_CHECKING:
    from tests.sim.world import World

# Rule 6's bound on a dead holder's token moving, beyond TTL + lock-delay.
SLACK_S = 1.0


async def check_handoff(world: World, ttl_s: float, lock_delay_s: float) -> None:
    history, loop = world.history, asyncio.get_running_loop()
    hubs = world.live_hubs()
    note = world.notes[0]
    owner, admin = world.users[0], world.users[-1]
    seats: list[tuple[Hub, SimPeer]] = []
    for i, user in enumerate((owner, admin, owner)):
        hub = hubs[i % len(hubs)]
        peer = SimPeer(next(world.sockets), user, history)
        await hub.attach(peer, None)
        history.sessions[peer.session] = user.id
        seats.append((hub, peer))
    (h_hold, holder), (h_first, first), (h_second, second) = seats

    async def beat(hub: Hub, peer: SimPeer) -> None:
        while True:
            await hub.heartbeat(peer)
            await asyncio.sleep(world.heartbeat_s)

    def granted(peer: SimPeer) -> int | None:
        return _granted(peer, note)

    beats: list[asyncio.Task[None]] = []
    try:
        # The note is free now, though a fault may have left its counter
        # behind the database: then the first claim waits out the pause.
        reply = await h_hold.tokens.acquire(holder, note, True, 1)
        if reply.get("type") == "granted":
            holder.inbox.append(reply)
        fence = await _granted_within(holder, note, ttl_s + lock_delay_s + SLACK_S)
        if fence is None:
            history.fail(f"after the faults healed, a free note was not granted: {reply}")
            return
        history.granted(holder.session, note, fence, owner.id)
        beats = [loop.create_task(beat(h, p)) for h, p in seats]
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
