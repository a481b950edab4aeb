"""The driver's client for the Hocuspocus peer (``loadtests/peer/server.mjs``),
shaped like ``wsclient.Conn`` so the same roles drive both servers.

It translates the few protocol v1 requests the roles send: ``subscribe`` is
Hocuspocus's auth + SyncStep1 (answered by the server's SyncStep2 as the
``snapshot``), ``edit`` is a Yjs update appending the edit's ``op`` (answered
by the server's ``SyncStatus`` as the ``ack``; Hocuspocus answers updates in
order, one status each), and ``acquire``/``release``/``heartbeat`` are JSON in
Hocuspocus's stateless messages, answered by the peer's token emulation.
Broadcast updates become one ``edited`` push per edit they carry. Every frame
is timestamped on receipt, before it is parsed, as ``Conn`` does.

The writer's Yjs clock is derived from the edit's ``base`` version, so a
document takes edits from one writing connection, starting from empty: the
harness makes a fresh document for every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import websockets

from loadtests.harness import ywire
from loadtests.harness.wsclient import Conn, Frame, ProtocolError, PushHandler

HEARTBEAT_MS = 5000  # as collab's default COLLAB_HEARTBEAT_MS


class PeerConn:
    """One socket to the peer. Use ``await PeerConn.open(url, token)``."""

    def __init__(self, ws: Any, token: str, on_push: PushHandler | None) -> None:
        self.ws = ws
        self.token = token
        self.on_push = on_push
        self.pending: dict[str, asyncio.Future[Frame]] = {}
        self.acks: dict[str, deque[tuple[asyncio.Future[Frame], int]]] = {}
        self.subscribing: dict[str, asyncio.Future[Frame]] = {}
        self.docs: list[str] = []
        self.welcome: Frame = {"type": "welcome", "heartbeat_ms": HEARTBEAT_MS}
        self.closed: int | None = None
        self.client_id = random.getrandbits(30) + 1  # this socket's Yjs client id
        self._rids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())
        self._beat: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, token: str, on_push: PushHandler | None = None, heartbeat: bool = True
    ) -> PeerConn:
        ws = await websockets.connect(
            url, max_size=None, open_timeout=30, ping_interval=None, compression=None
        )
        conn = cls(ws, token, on_push)
        if heartbeat:
            conn._beat = asyncio.create_task(conn._heartbeat(HEARTBEAT_MS / 1000))
        return conn

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.time_ns()
                self._dispatch(raw, now)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = self.ws.close_code or 1006
            waiting = [*self.pending.values(), *self.subscribing.values()]
            waiting += [fut for q in self.acks.values() for fut, _ in q]
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(ProtocolError(f"socket closed ({self.closed})"))
            self.pending.clear()

    def _dispatch(self, raw: bytes | str, now: int) -> None:
        try:
            msg = ywire.parse(raw if isinstance(raw, bytes) else raw.encode())
        except (ywire.WireError, UnicodeDecodeError) as exc:
            self._push({"type": "bad_frame", "detail": str(exc)}, now)
            return
        if msg.kind == "update":
            if self.on_push is None:
                return
            try:
                edits = ywire.edits_in_update(msg.update)
            except ywire.WireError as exc:
                self._push({"type": "bad_frame", "detail": str(exc)}, now)
                return
            for version, op in edits:
                self.on_push({"type": "edited", "note": msg.doc, "version": version, "op": op}, now)
        elif msg.kind == "status":
            queue = self.acks.get(msg.doc)
            if queue:
                acked, version = queue.popleft()
                reply: Frame = {"type": "ack", "version": version} if msg.ok else {"type": "error"}
                reply["_rx"] = now
                if not acked.done():
                    acked.set_result(reply)
        elif msg.kind == "stateless":
            frame: Frame = orjson.loads(msg.text)
            fut = self.pending.pop(str(frame.get("rid")), None)
            if fut is not None:
                frame["_rx"] = now
                if not fut.done():
                    fut.set_result(frame)
            else:
                self._push(frame, now)
        elif msg.kind == "step2":
            sub = self.subscribing.pop(msg.doc, None)
            if sub is not None and not sub.done():
                chars = ywire.text_length(msg.update)
                sub.set_result(
                    {
                        "type": "snapshot",
                        "note": msg.doc,
                        "version": chars // ywire.OP_LEN,
                        "content": "x" * chars,
                        "_rx": now,
                    }
                )
        elif msg.kind == "auth_denied":
            sub = self.subscribing.pop(msg.doc, None)
            if sub is not None and not sub.done():
                sub.set_result({"type": "error", "code": "forbidden", "message": msg.text})

    def _push(self, frame: Frame, now: int) -> None:
        if self.on_push is not None:
            self.on_push(frame, now)

    async def _heartbeat(self, period_s: float) -> None:
        # Renews the leases of tokens held through this socket (server.mjs).
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(period_s)
                if self.docs:
                    payload = '{"type":"heartbeat","rid":"hb"}'
                    await self.ws.send(ywire.stateless(self.docs[0], payload))

    async def start(self, kind: str, **fields: Any) -> asyncio.Future[Frame]:
        """Send a request now; the returned future resolves with its reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Frame] = loop.create_future()
        note = str(fields.get("note") or (self.docs[0] if self.docs else ""))
        if kind == "subscribe":
            self.subscribing[note] = fut
            self.acks.setdefault(note, deque())
            if note not in self.docs:
                self.docs.append(note)
            await self.ws.send(ywire.auth(note, self.token))
            await self.ws.send(ywire.sync_step1(note))
        elif kind == "edit":
            base = int(fields["base"])
            self.acks.setdefault(note, deque()).append((fut, base + 1))
            clock = base * ywire.OP_LEN
            await self.ws.send(ywire.edit(note, self.client_id, clock, str(fields["op"])))
        elif kind in ("acquire", "release", "heartbeat"):
            rid = f"r{next(self._rids)}"
            self.pending[rid] = fut
            body = {"type": kind, "rid": rid, "wait": bool(fields.get("wait", False))}
            await self.ws.send(ywire.stateless(note, orjson.dumps(body).decode()))
        else:
            raise ProtocolError(f"the peer client does not speak {kind!r}")
        return fut

    async def request(self, kind: str, within_s: float = 10.0, **fields: Any) -> Frame:
        return await asyncio.wait_for(await self.start(kind, **fields), within_s)

    def abort(self) -> None:
        """Kill the TCP connection without a close frame (a crashed client)."""
        if self._beat is not None:
            self._beat.cancel()
        self.ws.transport.abort()

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()


Opener = Callable[..., Awaitable[Any]]


def opener(proto: str) -> Opener:
    """``Conn.open`` for collab, ``PeerConn.open`` for the peer."""
    if proto == "collab":
        return Conn.open
    if proto == "peer":
        return PeerConn.open
    raise ValueError(f"unknown protocol {proto!r}")
