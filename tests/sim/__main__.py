"""Run simulated clusters, one per seed, and check each run's invariants.

    PYTHONHASHSEED=0 python -m tests.sim --seeds 2000          # seeds 0..1999
    PYTHONHASHSEED=0 python -m tests.sim --seed 17 --trace     # replay one
    PYTHONHASHSEED=0 python -m tests.sim --soak 20000          # as many as asked

String hashing decides set order, so it must be fixed for a run to replay:
the runner refuses to start without PYTHONHASHSEED set."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import random
import sys
import time

from tests.sim.history import History
from tests.sim.vloop import VirtualTimeLoop
from tests.sim.world import World, deterministic_ids


def run_seed(seed: int) -> History:
    deterministic_ids(random.Random(seed ^ 0x5EED))
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(World(seed).run())
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()

        async def wait_for_leftovers() -> None:
            await asyncio.gather(*leftovers, return_exceptions=True)

        loop.run_until_complete(wait_for_leftovers())
        loop.close()


def digest(history: History) -> str:
    return hashlib.sha256("\n".join(history.trace).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim")
    parser.add_argument("--seeds", type=int, default=200, help="run seeds start..start+N-1")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--soak", type=int, help="run this many seeds from a random start")
    parser.add_argument("--trace", action="store_true", help="print the run's event trace")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") is None:
        print("set PYTHONHASHSEED (e.g. 0): set order depends on it", file=sys.stderr)
        return 2
    logging.disable(logging.CRITICAL)  # replicas log every injected fault
    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    elif args.soak is not None:
        start = random.SystemRandom().randrange(1 << 30)
        seeds = range(start, start + args.soak)
    else:
        seeds = range(args.start, args.start + args.seeds)
    started, failed, events = time.perf_counter(), 0, 0
    for seed in seeds:
        history = run_seed(seed)
        events += history.events
        if args.trace:
            print("\n".join(history.trace))
            print(f"trace digest {digest(history)}")
        if history.problems:
            failed += 1
            print(f"seed {seed} FAILED:")
            for problem in history.problems[:10]:
                print(f"  {problem}")
            print(f"  replay: PYTHONHASHSEED={os.environ['PYTHONHASHSEED']} "
                  f"python -m tests.sim --seed {seed} --trace")  # fmt: skip
            if failed >= 5:
                break
    elapsed = time.perf_counter() - started
    count = len(seeds)
    print(f"{count} seeds from {seeds.start}, {failed} failed, {elapsed:.1f} s, "
          f"{count / elapsed:.1f} seeds/s, {events} recorded events")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
