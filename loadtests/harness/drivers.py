"""Driver processes: each runs one asyncio role (viewers, writer, editors,
idlers) on uvloop, so the load generator spreads over several cores and is
not itself the bottleneck.

Parent and worker talk over a pipe with small tuples: the worker sends
``("ready", info)`` after setup and ``("result", data)`` at the end; the
parent sends commands (``("go", ...)``, ``("finish", ...)`` ...). A worker that
fails sends ``("failed", text)`` so the parent can stop cleanly.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import traceback
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

Role = Callable[[dict[str, Any], "Control"], Coroutine[Any, Any, Any]]


class Control:
    """The worker's side of the pipe."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe

    def send(self, kind: str, data: Any = None) -> None:
        self.pipe.send((kind, data))

    async def recv(self) -> tuple[str, Any]:
        msg: tuple[str, Any] = await asyncio.to_thread(self.pipe.recv)
        return msg

    async def expect(self, kind: str) -> Any:
        got, data = await self.recv()
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from the parent, got {got!r}")
        return data


def _worker_main(role_name: str, spec: dict[str, Any], pipe: Connection) -> None:
    from loadtests.harness import roles
    from loadtests.harness.stack import raise_fd_limit

    raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio still works, just slower
        pass
    ctl = Control(pipe)
    role: Role = getattr(roles, role_name)
    try:
        result: Any = asyncio.run(role(spec, ctl))
        ctl.send("result", result)
    except BaseException as exc:  # report, then exit non-zero
        ctl.send("failed", f"{role_name}: {exc!r}\n{traceback.format_exc()[-2000:]}")
        raise SystemExit(1) from None


class Worker:
    """The parent's handle on one driver process."""

    def __init__(self, role: str, spec: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.role = role
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(role, spec, child), daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def send(self, kind: str, data: Any = None) -> None:
        self.pipe.send((kind, data))

    def recv(self, timeout: float = 300.0) -> tuple[str, Any]:
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"{self.role} worker {self.pid} silent for {timeout}s")
        kind, data = self.pipe.recv()
        if kind == "failed":
            raise RuntimeError(f"driver failed: {data}")
        return kind, data

    def expect(self, kind: str, timeout: float = 300.0) -> Any:
        got, data = self.recv(timeout)
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from {self.role}, got {got!r}")
        return data

    def stop(self) -> None:
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class Pool:
    """A group of workers addressed together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def pids(self, label: str) -> dict[str, int]:
        return {f"{label}{i + 1}": w.pid for i, w in enumerate(self.workers)}

    def broadcast(self, kind: str, data: Any = None) -> None:
        for w in self.workers:
            w.send(kind, data)

    def gather(self, kind: str, timeout: float = 300.0) -> list[Any]:
        return [w.expect(kind, timeout) for w in self.workers]

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal non-negative shares."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
