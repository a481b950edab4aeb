"""A lean asyncio protocol v1 client for the benchmark drivers.

Replies are matched to requests by ``rid``; everything else (pushes, a
deferred ``granted``, heartbeat acks) goes to ``on_push`` with its arrival
time, so a driver process can hold thousands of these without a task per
frame. HTTP helpers register accounts and create notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import websockets

Frame = dict[str, Any]
PushHandler = Callable[[Frame, int], None]

PASSWORD = "bench-password-0123"


def ws_url(http_url: str) -> str:
    """``http://h:p`` -> ``ws://h:p/ws`` (``https`` -> ``wss``)."""
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    return "ws://" + base.removeprefix("http://") + "/ws"


class ProtocolError(RuntimeError):
    """The server answered with ``error`` or closed the socket."""


class Conn:
    """One authenticated socket. Use ``await Conn.open(url, token)``."""

    def __init__(self, ws: Any, on_push: PushHandler | None) -> None:
        self.ws = ws
        self.on_push = on_push
        self.pending: dict[str, asyncio.Future[Frame]] = {}
        self.welcome: Frame = {}
        self.closed: int | None = None
        self._rids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())
        self._beat: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, token: str, on_push: PushHandler | None = None, heartbeat: bool = True
    ) -> Conn:
        ws = await websockets.connect(
            url, max_size=None, open_timeout=30, ping_interval=None, compression=None
        )
        conn = cls(ws, on_push)
        welcome = await conn.request("hello", within_s=30, token=token, client="bench/1")
        if welcome.get("type") != "welcome":
            await conn.close()
            raise ProtocolError(f"hello refused: {welcome}")
        conn.welcome = welcome
        if heartbeat:
            conn._beat = asyncio.create_task(conn._heartbeat(welcome["heartbeat_ms"] / 1000))
        return conn

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.time_ns()
                frame = orjson.loads(raw)
                rid = frame.get("rid")
                fut = self.pending.pop(rid, None) if rid is not None else None
                if fut is not None:
                    frame["_rx"] = now  # arrival time, for round-trip figures
                    if not fut.done():
                        fut.set_result(frame)
                elif self.on_push is not None:
                    self.on_push(frame, now)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = self.ws.close_code or 1006
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ProtocolError(f"socket closed ({self.closed})"))
            self.pending.clear()

    async def _heartbeat(self, period_s: float) -> None:
        # Only the application heartbeat renews leases and presence (protocol.md).
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(period_s)
                await self.ws.send('{"type":"heartbeat","rid":"hb"}')

    async def start(self, kind: str, **fields: Any) -> asyncio.Future[Frame]:
        """Send a request now; the returned future resolves with its reply.
        Awaiting the send (not spawning it) keeps pipelined frames in order."""
        rid = f"r{next(self._rids)}"
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(orjson.dumps({"type": kind, "rid": rid, **fields}).decode())
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


async def register(client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """Register ``name`` (or log in if it exists); returns (token, user id)."""
    body = {"username": name, "password": PASSWORD}
    r = await client.post("/api/auth/register", json=body)
    if r.status_code == 409:
        r = await client.post("/api/auth/login", json=body)
    if r.status_code not in (200, 201):
        raise ProtocolError(f"cannot register {name}: {r.status_code} {r.text[:200]}")
    data = r.json()
    return str(data["token"]), str(data["user"]["id"])


async def register_many(base_url: str, count: int, prefix: str) -> list[tuple[str, str]]:
    """``count`` accounts named ``{prefix}-{i}``, a few registrations at a time
    (each costs the server one argon2 hash)."""
    gate = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(i: int) -> tuple[str, str]:
            async with gate:
                return await register(client, f"{prefix}-{i}")

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def create_note(base_url: str, token: str, visibility: str = "public") -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post(
            "/api/notes",
            json={
                "title": "bench " + uuid.uuid4().hex[:6],
                "content": "",
                "visibility": visibility,
            },
            headers={"authorization": f"Bearer {token}"},
        )
        if r.status_code != 201:
            raise ProtocolError(f"cannot create note: {r.status_code} {r.text[:200]}")
        return str(r.json()["id"])


async def grant_write(base_url: str, owner_token: str, note_id: str, user_id: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.put(
            f"/api/notes/{note_id}/access/{user_id}",
            json={"access": "write"},
            headers={"authorization": f"Bearer {owner_token}"},
        )
        if r.status_code >= 300:
            raise ProtocolError(f"cannot share note: {r.status_code} {r.text[:200]}")


async def get_note(base_url: str, token: str, note_id: str) -> Frame:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.get(f"/api/notes/{note_id}", headers={"authorization": f"Bearer {token}"})
        r.raise_for_status()
        data: Frame = r.json()
        return data
