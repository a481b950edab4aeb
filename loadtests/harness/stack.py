"""The servers a benchmark drives: started here (embedded, or N distributed
replicas on PostgreSQL + Redis) or already running elsewhere (``external``).

Started stacks use ``tests/support`` (the same ``collab serve`` processes and
database helpers as the test suite), a fresh PostgreSQL database and a unique
Redis prefix per run, and raise the per-user and per-address socket caps, the
connect-throttle and acquire-rate limits through ``COLLAB_*`` env so the driver, not a limit, is
what the run measures. Every other setting keeps its production default
unless the scenario overrides it (the take-over run shortens nothing unless
asked: ``--lease-ttl-ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.support.server import JWT_SECRET, ServerProcess
from tests.support.services import create_database, drop_database, redis_url

# Limits raised for benchmark runs only: one driver host opens thousands of
# sockets from one IP, with a few hundred accounts.
BENCH_ENV = {
    # Benchmarks sign up and sign in many users from one address.
    **{
        f"COLLAB_{kind}_{limit}": "100000"
        for kind in ("LOGIN", "REGISTER", "GUEST")
        for limit in ("PER_IP_PER_MIN", "BURST_PER_IP", "PER_MIN", "BURST")
    },
    "COLLAB_MAX_SOCKETS_PER_USER": "100000",
    # Every driver socket comes from 127.0.0.1 (default cap 256 per address).
    "COLLAB_MAX_SOCKETS_PER_IP": "100000",
    "COLLAB_CONNECT_RATE_PER_IP_PER_S": "100000",
    "COLLAB_CONNECT_BURST_PER_IP": "100000",
    "COLLAB_ACQUIRE_RATE_PER_S": "10000",
    "COLLAB_ACQUIRE_BURST": "10000",
    # `token` sends acquire/release back to back on one socket: at 3 ms a round
    # trip, 400 rounds overran the default 200 frames/s (burst 400), and the
    # rid-less rate_limited reply left the driver waiting for a reply.
    "COLLAB_FRAME_RATE_PER_S": "10000",
    "COLLAB_FRAME_BURST": "10000",
    "COLLAB_LOG_LEVEL": "warning",
}


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Process(Protocol):
    """What a stack needs of a server process it started (``ServerProcess``,
    or the Hocuspocus peer's ``peerstack.PeerProcess``)."""

    name: str
    log_path: Path | None

    def stop(self, timeout: float = ...) -> int | None: ...

    def log(self) -> str: ...


@dataclass
class Stack:
    """Base URLs of the replicas (index 0 = replica A) and, when we started
    them, their processes (for CPU/RSS accounting and shutdown). ``kind`` is
    ``distributed``, ``embedded``, ``external`` (all collab) or ``peer`` (the
    Hocuspocus peer, ``peerstack``)."""

    kind: str
    urls: list[str]
    servers: list[Process] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    database_url: str = ""
    tmp: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def url(self, replica: int) -> str:
        return self.urls[replica % len(self.urls)]

    @property
    def proto(self) -> str:
        """What the drivers speak to it: ``collab`` (protocol v1) or ``peer``."""
        return "peer" if self.kind == "peer" else "collab"

    def pid_labels(self) -> dict[str, int]:
        return {f"server{i + 1}": pid for i, pid in enumerate(self.server_pids)}

    def close(self, failed: bool = False) -> None:
        """Stop what we started; on failure print each server's log tail."""
        for server in self.servers:
            server.stop(10)
            if failed:
                print(f"--- {server.name} log ---\n{server.log()}", file=sys.stderr)
            if server.log_path is not None:
                with contextlib.suppress(OSError):
                    server.log_path.unlink()
        if self.database_url:
            with contextlib.suppress(Exception):
                asyncio.run(drop_database(self.database_url))
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_stack(kind: str, replicas: int, overrides: dict[str, str]) -> Stack:
    """Start ``replicas`` servers (``embedded`` forces one)."""
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="collab-bench-"))
    env = {"COLLAB_JWT_SECRET": JWT_SECRET, **BENCH_ENV, **overrides}
    stack = Stack(kind=kind, urls=[], tmp=tmp)
    try:
        if kind == "embedded":
            env["COLLAB_SQLITE_PATH"] = str(tmp / "collab.db")
            replicas = 1
        else:
            stack.database_url = asyncio.run(create_database())
            env.update(
                {
                    "COLLAB_DATABASE_URL": stack.database_url,
                    "COLLAB_REDIS_URL": redis_url(),
                    "COLLAB_REDIS_PREFIX": "bench" + uuid.uuid4().hex[:8],
                }
            )
        stack.env = env
        for i in range(replicas):
            server = ServerProcess(env=dict(env), name=f"bench{i + 1}").start(timeout=60)
            stack.servers.append(server)
            stack.urls.append(server.url)
            assert server.proc is not None
            stack.server_pids.append(server.proc.pid)
    except BaseException:
        stack.close()
        raise
    return stack


def external_stack(urls: list[str], pids: list[int]) -> Stack:
    """Servers someone else started (compose, a cluster, a gateway)."""
    return Stack(kind="external", urls=[u.rstrip("/") for u in urls], server_pids=pids)


def database_env_hint() -> str:
    return os.environ.get("COLLAB_TEST_DATABASE_URL", "(throwaway PostgreSQL)")
