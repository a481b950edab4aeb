"""Run one seed on a fresh virtual-time loop, and fingerprint the run."""

from __future__ import annotations

import asyncio
import hashlib
import random

from tests.sim.history import History
from tests.sim.vloop import VirtualTimeLoop
from tests.sim.world import World, deterministic_ids


def run_seed(seed: int) -> History:
    with deterministic_ids(random.Random(seed ^ 0x5EED)):
        return run_world(World(seed))


def run_world(world: World) -> History:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(world.run())
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()

        async def wait_for_leftovers() -> None:
            await asyncio.gather(*leftovers, return_exceptions=True)

        loop.run_until_complete(wait_for_leftovers())
        loop.close()


def digest(history: History) -> str:
    """The same seed gives the same trace, so the same digest."""
    return hashlib.sha256("\n".join(history.trace).encode()).hexdigest()[:16]
