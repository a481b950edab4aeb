"""A protocol v1 test client over a real WebSocket, plus HTTP helpers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import websockets

Frame = dict[str, Any]


class WsClient:
    """Keeps every frame received; ``request`` waits for the reply to its rid,
    ``wait_for`` for a push matching a predicate."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self._seen: set[int] = set()
        self._rids = itertools.count(1)
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed: tuple[int, str] | None = None
        self.welcome: Frame = {}

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> WsClient:
        ws = await websockets.connect(url, max_size=None, open_timeout=10, **kwargs)
        return cls(ws)

    @classmethod
    async def signed_in(cls, url: str, token: str | None, resume: str | None = None) -> WsClient:
        """Connected and past ``hello``; fails the test unless welcomed."""
        ws = await cls.connect(url)
        welcome = await ws.hello(token or "", resume=resume)
        assert welcome["type"] == "welcome", welcome
        return ws

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(orjson.loads(raw))
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            self.closed = (code if code is not None else 1006, self.ws.close_reason or "")
            self._new.set()

    async def send(self, frame: Frame | str | bytes) -> None:
        await self.ws.send(
            frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode()
        )

    async def request(self, kind: str, timeout: float = 5.0, **fields: Any) -> Frame:
        rid = f"r{next(self._rids)}"
        await self.send({"type": kind, "rid": rid, **fields})
        return await self.wait_for(lambda f: f.get("rid") == rid, timeout)

    async def wait_for(self, pred: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """The first frame (old or new) matching ``pred``; consumed once."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, frame in enumerate(self.frames):
                if i not in self._seen and pred(frame):
                    self._seen.add(i)
                    return frame
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or (self.closed is not None and self._reader.done()):
                kinds = [f.get("type") for f in self.frames[-10:]]
                raise TimeoutError(f"no matching frame; closed={self.closed}; last={kinds}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    def pushes(self, kind: str, note: str | None = None) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.get("type") == kind and (note is None or f.get("note") == note)
        ]

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int, str]:
        await asyncio.wait_for(self._reader, timeout)
        assert self.closed is not None
        return self.closed

    async def hello(self, token: str, resume: str | None = None) -> Frame:
        fields: dict[str, Any] = {"token": token}
        if resume:
            fields["resume"] = resume
        self.welcome = await self.request("hello", **fields)
        return self.welcome

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def new_op() -> str:
    return str(uuid.uuid4())


class Api:
    """Synchronous-style async HTTP helper bound to one server and token."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.user: Frame = {}

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {**self._headers(), **kw.pop("headers", {})}
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as c:
            return await c.request(method, path, json=json, headers=headers, **kw)

    async def ok(self, method: str, path: str, json: Any = None, status: int = 200) -> Any:
        r = await self.call(method, path, json)
        assert r.status_code == status, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else None

    @classmethod
    async def register(
        cls, base: str, name: str | None = None, password: str = "pw-123456789"
    ) -> Api:
        name = name or "u" + uuid.uuid4().hex[:10]
        api = cls(base)
        data = await api.ok(
            "POST", "/api/auth/register", {"username": name, "password": password}, status=201
        )
        api.token = data["token"]
        api.user = data["user"]
        return api
