"""Run simulated clusters, one per seed, and check each run's invariants.

    PYTHONHASHSEED=0 python -m tests.sim --seeds 2000 --jobs 2   # seeds 0..1999
    PYTHONHASHSEED=0 python -m tests.sim --seed 17 --trace       # replay one
    PYTHONHASHSEED=0 python -m tests.sim --soak 20000 --jobs 2   # as many as asked

String hashing decides set order, so it must be fixed for a run to replay:
the runner refuses to start without PYTHONHASHSEED set."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import sys
import time

from tests.sim.run import digest, run_seed

_MAX_REPORTED = 5


def _run(seeds: range) -> tuple[int, int, int, list[str]]:
    """Worker: (seeds run, events recorded, idle hand-offs, failure reports)."""
    logging.disable(logging.CRITICAL)  # replicas log every injected fault
    events, handoffs, reports = 0, 0, []
    for seed in seeds:
        history = run_seed(seed)
        events += history.events
        handoffs += history.idle_handoffs
        if history.problems:
            lines = [f"seed {seed} FAILED:", *(f"  {p}" for p in history.problems[:10])]
            lines.append(f"  replay: PYTHONHASHSEED={os.environ['PYTHONHASHSEED']} "
                         f"python -m tests.sim --seed {seed} --trace")  # fmt: skip
            reports.append("\n".join(lines))
            if len(reports) >= _MAX_REPORTED:
                break
    return len(seeds), events, handoffs, reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim")
    parser.add_argument("--seeds", type=int, default=200, help="run seeds start..start+N-1")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--soak", type=int, help="run this many seeds from a random start")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--trace", action="store_true", help="print the run's event trace")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") is None:
        print("set PYTHONHASHSEED (e.g. 0): set order depends on it", file=sys.stderr)
        return 2
    if args.seed is not None:
        logging.disable(logging.CRITICAL)
        history = run_seed(args.seed)
        if args.trace:
            print("\n".join(history.trace))
        print(f"seed {args.seed}: {len(history.problems)} problems, digest {digest(history)}")
        for problem in history.problems:
            print(f"  {problem}")
        return 1 if history.problems else 0
    start = random.SystemRandom().randrange(1 << 30) if args.soak else args.start
    count = args.soak or args.seeds
    jobs = max(1, args.jobs)
    parts = [range(start + i, start + count, jobs) for i in range(jobs)]
    began = time.perf_counter()
    if jobs == 1:
        results = [_run(parts[0])]
    else:  # forked workers share this process's string hashing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_run, parts)
    elapsed = time.perf_counter() - began
    ran = sum(r[0] for r in results)
    reports = [text for r in results for text in r[3]]
    for text in reports:
        print(text)
    print(f"{ran} seeds from {start} ({jobs} jobs): {len(reports)} failed, {elapsed:.1f} s, "
          f"{ran / elapsed:.1f} seeds/s, {sum(r[1] for r in results)} recorded events, "
          f"{sum(r[2] for r in results)} idle hand-offs")  # fmt: skip
    return 1 if reports else 0


if __name__ == "__main__":
    sys.exit(main())
