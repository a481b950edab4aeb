"""An asyncio TCP fault proxy for tests (Toxiproxy is not available here).

``FaultProxy(target_port)`` listens on a free loopback port and forwards each
accepted connection to the target. Faults are rules, per direction (``up`` =
client to target, ``down`` = target to client, or ``both``), optionally only
for connections whose first upstream bytes contain ``match`` (e.g. the
``CLIENT SETNAME`` of a replica's Redis pub/sub connection):

* ``delay(s)``: every chunk is delivered ``s`` seconds after it was read,
  in order.
* ``blackhole()``: nothing is delivered; chunks are held (like the kernel
  buffers of a paused peer or a silent partition) and delivered, late and in
  order, on ``heal()``.
* ``drop()``: chunks are read and discarded. A byte stream with a hole is
  corrupt for framed protocols (WebSocket, RESP), so tests follow a drop with
  ``cut()`` -- together they model a lost reply and a broken connection.
* ``cut(refuse=...)``: abort matching connections now; with ``refuse`` new
  connections are aborted at once until ``heal()``.

The proxy runs on its own event loop in a daemon thread (``start``), so test
code may block (process start-up, ``time.sleep``) without freezing traffic.
Control methods are synchronous and thread-safe. Held chunks are not bounded:
keep blackholes short (seconds), as a test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HEAD_BYTES = 1024  # upstream bytes remembered per connection for ``match``
CHUNK = 65536
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class Rule:
    kind: str  # "delay" | "blackhole" | "drop"
    direction: str  # "up" | "down" | "both"
    match: bytes | None = None
    delay_s: float = 0.0

    def applies(self, conn: _Conn, direction: str) -> bool:
        return self.direction in (direction, "both") and (
            self.match is None or self.match in conn.head
        )


class _Conn:
    def __init__(self, client: tuple[Any, Any], upstream: tuple[Any, Any]) -> None:
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream
        self.head = b""
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client_writer, self.up_writer):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.rules: list[Rule] = []
        self.refusing = False
        self.conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(
            target=run, name=f"faultproxy-{self.target[1]}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    async def _listen(self) -> None:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self.conns):
                conn.abort()

        self._call(shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    @property
    def url_host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- control (thread-safe) ---------------------------------------------------
    def delay(self, seconds: float, direction: str = "both", match: bytes | None = None) -> None:
        self._add(Rule("delay", direction, match, seconds))

    def blackhole(self, direction: str = "both", match: bytes | None = None) -> None:
        self._add(Rule("blackhole", direction, match))

    def drop(self, direction: str = "both", match: bytes | None = None) -> None:
        self._add(Rule("drop", direction, match))

    def cut(self, match: bytes | None = None, refuse: bool = False) -> int:
        """Abort matching connections; returns how many were cut."""

        async def do() -> int:
            self.refusing = self.refusing or refuse
            hit = [c for c in self.conns if match is None or match in c.head]
            for conn in hit:
                conn.abort()
                self.conns.discard(conn)
            return len(hit)

        return int(self._call(do))

    def heal(self) -> None:
        """Remove every rule and stop refusing; held chunks flow now."""

        async def do() -> None:
            self.rules = []
            self.refusing = False
            self._notify()

        self._call(do)

    def connections(self, match: bytes | None = None) -> int:
        async def do() -> int:
            return sum(1 for c in self.conns if match is None or match in c.head)

        return int(self._call(do))

    def _add(self, rule: Rule) -> None:
        async def do() -> None:
            self.rules.append(rule)
            self._notify()

        self._call(do)

    def _call(self, make: Callable[[], Any]) -> Any:
        assert self._loop is not None, "start() the proxy first"
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)

    def _notify(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _rule(self, conn: _Conn, direction: str, kinds: tuple[str, ...]) -> Rule | None:
        for rule in reversed(self.rules):
            if rule.kind in kinds and rule.applies(conn, direction):
                return rule
        return None

    # -- data path ----------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        conn = _Conn((reader, writer), upstream)
        self.conns.add(conn)
        for direction in DIRECTIONS:
            queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
            conn.tasks.append(asyncio.create_task(self._pump(conn, direction, queue)))
            conn.tasks.append(asyncio.create_task(self._send(conn, direction, queue)))

    async def _pump(
        self, conn: _Conn, direction: str, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        reader = conn.client_reader if direction == "up" else conn.up_reader
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(CHUNK):
                if direction == "up" and len(conn.head) < HEAD_BYTES:
                    conn.head += data[: HEAD_BYTES - len(conn.head)]
                rule = self._rule(conn, direction, ("drop", "delay"))
                if rule is not None and rule.kind == "drop":
                    continue
                delay = rule.delay_s if rule is not None else 0.0
                queue.put_nowait((loop.time() + delay, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        queue.put_nowait(None)

    async def _send(
        self, conn: _Conn, direction: str, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        writer = conn.up_writer if direction == "up" else conn.client_writer
        loop = asyncio.get_running_loop()
        try:
            while (item := await queue.get()) is not None:
                at, data = item
                if at > loop.time():
                    await asyncio.sleep(at - loop.time())
                while self._rule(conn, direction, ("blackhole",)) is not None:
                    assert self._changed is not None
                    await self._changed.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        conn.abort()
        self.conns.discard(conn)
