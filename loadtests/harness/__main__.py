"""``python -m loadtests.harness [stack options] SCENARIO [scenario options]``

Scenarios: ``fanout``, ``token``, ``throughput``, ``capacity``, ``versus``
(collab and the Hocuspocus peer of ``loadtests/peer`` side by side, ``versus.py``)
and ``routing`` (events per replica, edits/s with 1..N replicas, ``routing.py``).
By default the harness starts the servers itself (``--stack distributed``:
``--replicas`` replicas on a fresh PostgreSQL database and a unique Redis
prefix; ``--stack embedded``: one SQLite process). ``--stack external --url
URL [--url URL2]`` drives servers started elsewhere (compose, a cluster);
pass ``--server-pid`` to meter their CPU/RSS when they run on this host.
Results go to ``--out`` as JSON; ``python -m loadtests.plot`` draws them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtests.harness import capacity, fanout, routing, throughput, versus, writetoken
from loadtests.harness.bench import Bench
from loadtests.harness.peerstack import start_peer_stack
from loadtests.harness.stack import Stack, external_stack, raise_fd_limit, start_stack


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("COLLAB_"):
            raise SystemExit(f"--env expects COLLAB_KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--stack", choices=["distributed", "embedded", "external"], default="distributed"
    )
    p.add_argument("--replicas", type=int, default=2, help="replicas to start (distributed)")
    p.add_argument("--url", action="append", default=[], help="external replica base URL")
    p.add_argument(
        "--server-pid",
        action="append",
        type=int,
        default=[],
        help="pid of an external server on this host (CPU/RSS)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="COLLAB_KEY=VALUE",
        help="extra server setting for started stacks",
    )
    p.add_argument("--users", type=int, default=40, help="accounts to register")
    p.add_argument("--drivers", type=int, default=2, help="max driver processes per role")
    p.add_argument("--out", type=Path, default=Path("loadtests/results"))
    sub = p.add_subparsers(dest="scenario", required=True)

    f = sub.add_parser("fanout", help="keystroke fan-out latency, loss and order")
    f.add_argument("--viewers", type=_ints, default=[10, 100, 1000])
    f.add_argument("--placement", default="same,cross")
    f.add_argument("--rate", type=float, default=50.0, help="edits per second")
    f.add_argument("--duration", type=float, default=10.0)

    t = sub.add_parser("token", help="acquire/release, hand-off, take-over")
    t.add_argument("--rounds", type=int, default=300)
    t.add_argument("--handoffs", type=int, default=100)
    t.add_argument("--takeovers", type=int, default=3)

    h = sub.add_parser("throughput", help="acked edits per second on one replica")
    h.add_argument("--editors", type=int, default=32)
    h.add_argument("--window", type=int, default=4, help="edits in flight per editor")
    h.add_argument("--duration", type=float, default=10.0)

    c = sub.add_parser("capacity", help="idle sockets and RSS per process")
    c.add_argument("--steps", type=_ints, default=[1000, 5000, 10000])
    c.add_argument("--settle", type=float, default=3.0)
    c.add_argument("--idle", type=float, default=5.0, help="seconds of CPU metering per step")
    c.add_argument("--drivers", dest="capacity_drivers", type=int, default=4)

    v = sub.add_parser("versus", help="collab and Hocuspocus side by side, ratios")
    v.add_argument("--passes", type=int, default=2, help="passes per side, alternating")
    v.add_argument("--viewers", type=int, default=100)
    v.add_argument("--rate", type=float, default=50.0, help="edits per second")
    v.add_argument("--duration", type=float, default=10.0, help="seconds of typing per run")
    v.add_argument("--big-viewers", type=int, default=0, help="also a fan-out to this many")
    v.add_argument("--big-rate", type=float, default=20.0)
    v.add_argument("--rounds", type=int, default=200, help="acquire/release round trips")
    v.add_argument("--handoffs", type=int, default=100)
    v.add_argument(
        "--floor", action="store_true", help="collab commit throughput vs the PostgreSQL floor"
    )
    v.add_argument("--floor-holders", type=int, default=100)
    v.add_argument("--floor-window", type=int, default=1, help="edits in flight per holder")
    v.add_argument("--floor-duration", type=float, default=10.0)
    v.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    v.add_argument("--py-spy", default=None, help="py-spy executable (default: on PATH)")
    routing.add_parser(sub)
    return p


def versus_main(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    """Both stacks up for the whole run, so passes can alternate."""
    if args.stack != "distributed":
        raise SystemExit(
            "versus compares two collab replicas on PostgreSQL + Redis: --stack distributed"
        )
    opts = versus.Options(
        passes=args.passes,
        viewers=args.viewers,
        rate=args.rate,
        duration=args.duration,
        big_viewers=args.big_viewers,
        big_rate=args.big_rate,
        rounds=args.rounds,
        handoffs=args.handoffs,
        floor=args.floor,
        floor_holders=args.floor_holders,
        floor_window=args.floor_window,
        floor_duration=args.floor_duration,
        profile_dir=args.profile,
        py_spy=args.py_spy,
    )
    if args.floor:  # measure the commit path, not the per-socket edit rate limit
        overrides = {"COLLAB_EDIT_RATE_PER_S": "100000", "COLLAB_EDIT_BURST": "100000", **overrides}
    stacks: list[Stack] = []
    try:
        collab = start_stack("distributed", 2, overrides)
        stacks.append(collab)
        ttl = int(collab.env.get("COLLAB_LEASE_TTL_MS", "15000"))
        peer = start_peer_stack(2, lease_ttl_ms=ttl)
        stacks.append(peer)
        benches = {}
        for side, stack in (("collab", collab), ("peer", peer)):
            bench = Bench(
                stack=stack, out_dir=args.out, drivers=args.drivers, env_overrides=overrides
            )
            bench.register(args.users)
            benches[side] = bench
            print(f"{side}: {stack.kind} {', '.join(stack.urls)}", flush=True)
        result = versus.run(benches, opts)
        print(f"wrote {benches['collab'].save('versus', result)}", flush=True)
    except BaseException:
        for stack in stacks:
            stack.close(failed=True)
        raise
    for stack in stacks:
        stack.close()
    return 1 if result["problems"] else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    raise_fd_limit()
    overrides = _env(args.env)
    if args.scenario == "versus":
        return versus_main(args, overrides)
    if args.scenario == "routing":
        return routing.main(args, overrides)
    if args.scenario == "throughput":
        # Measure the commit path, not the per-socket edit rate limit.
        overrides = {"COLLAB_EDIT_RATE_PER_S": "100000", "COLLAB_EDIT_BURST": "100000", **overrides}
    if args.stack == "external":
        if not args.url:
            raise SystemExit("--stack external needs --url")
        stack = external_stack(args.url, args.server_pid)
    else:
        replicas = args.replicas if args.scenario not in ("capacity", "throughput") else 1
        stack = start_stack(args.stack, replicas, overrides)
    try:
        drivers = args.capacity_drivers if args.scenario == "capacity" else args.drivers
        bench = Bench(stack=stack, out_dir=args.out, drivers=drivers, env_overrides=overrides)
        bench.register(args.users)
        print(
            f"stack {stack.kind}: {', '.join(stack.urls)}; {len(bench.accounts)} accounts",
            flush=True,
        )
        if args.scenario == "fanout":
            result: object = fanout.run(
                bench, args.viewers, args.placement.split(","), args.rate, args.duration
            )
        elif args.scenario == "token":
            result = writetoken.run(bench, args.rounds, args.handoffs, args.takeovers)
        elif args.scenario == "throughput":
            result = throughput.run(bench, args.editors, args.window, args.duration)
        else:
            result = capacity.run(bench, args.steps, args.settle, args.idle)
        print(f"wrote {bench.save(args.scenario, result)}", flush=True)
    except BaseException:
        stack.close(failed=True)
        raise
    stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
