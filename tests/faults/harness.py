"""One fault scenario's world: 2+ real ``collab serve`` replicas, each reaching
its own killable Redis through its own ``FaultProxy``, a database on a
PostgreSQL primary with a streaming standby, recorded clients and the
history they produce."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.support.client import Api, new_op
from tests.support.faultproxy import FaultProxy
from tests.support.history import History, RecordingClient
from tests.support.history_check import assert_history_ok
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import RedisServer

# FAST_LEASES (tests/support/server.py): heartbeat 300 ms, TTL 1200 ms, delay 300 ms.
HEARTBEAT_S, TTL_S, LOCK_DELAY_S = 0.3, 1.2, 0.3
HANDOFF_S = TTL_S + LOCK_DELAY_S + 1.0  # the hand-off bound (docs/reliability.md)


def redis_key(prefix: str, note: str, name: str) -> str:
    """A note's lease key (``collab.leases.keys``: hash-tagged, rule 11)."""
    return f"{prefix}:{{{note}}}:{name}"


class World:
    def __init__(self, database_url: str, redis: RedisServer | None = None) -> None:
        self.database_url = database_url
        self.redis = redis or RedisServer().start()
        self.prefix = "f" + uuid.uuid4().hex[:8]
        self.history = History()
        self.replicas: list[ServerProcess] = []
        self.redis_proxies: list[FaultProxy] = []
        self.client_proxies: dict[str, FaultProxy] = {}
        self.clients: list[RecordingClient] = []
        self.admin: Api | None = None

    # -- processes -------------------------------------------------------------
    async def start(
        self, replicas: int = 2, only: dict[int, dict[str, str]] | None = None, **extra: str
    ) -> World:
        """Start ``replicas`` servers with ``extra`` env; ``only[i]`` adds env
        for replica ``i`` alone (e.g. a fault hook)."""
        envs = []
        for i in range(replicas):
            proxy = FaultProxy(self.redis.port).start()
            self.redis_proxies.append(proxy)
            env = distributed_env(
                self.database_url,
                f"redis://{proxy.url_host_port}/0",
                self.prefix,
                COLLAB_BOOTSTRAP_ADMIN_USERNAME=ADMIN_NAME,
                COLLAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
                COLLAB_LOG_LEVEL="warning",
                **extra,
            )
            envs.append({**env, **(only or {}).get(i, {})})
        # The first replica migrates alone; the rest start together.
        self.replicas.append(await asyncio.to_thread(ServerProcess(envs[0], name="r0").start))
        started = await asyncio.gather(
            *[
                asyncio.to_thread(ServerProcess(env, name=f"r{i}").start)
                for i, env in enumerate(envs[1:], start=1)
            ]
        )
        self.replicas.extend(started)
        return self

    async def restart_replica(self, i: int) -> None:
        old = self.replicas[i]
        await asyncio.to_thread(old.stop, 5)
        self.replicas[i] = await asyncio.to_thread(
            ServerProcess(old.env, port=old.port, name=old.name).start
        )

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2)
        await asyncio.gather(*[asyncio.to_thread(r.stop, 5) for r in self.replicas])
        for proxy in [*self.redis_proxies, *self.client_proxies.values()]:
            proxy.stop()
        await asyncio.to_thread(self.redis.stop)

    # -- users, notes, clients -------------------------------------------------------
    async def admin_api(self) -> Api:
        if self.admin is None:
            api = Api(self.replicas[0].url)
            data = await api.ok(
                "POST", "/api/auth/login", {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
            )
            api.token, api.user = data["token"], data["user"]
            self.admin = api
        return self.admin

    async def writers(self, n: int) -> tuple[str, list[Api]]:
        """A fresh note owned by the admin and ``n`` users who may write to it."""
        admin = await self.admin_api()
        note = await admin.ok(
            "POST",
            "/api/notes",
            {"title": "fault", "content": "", "visibility": "private"},
            status=201,
        )
        users = []
        for _ in range(n):
            user = await Api.register(self.replicas[0].url)
            await admin.ok(
                "PUT", f"/api/notes/{note['id']}/access/{user.user['id']}", {"access": "write"}
            )
            users.append(user)
        return str(note["id"]), users

    async def client(
        self,
        name: str,
        api: Api,
        replica: int,
        note: str | None = None,
        via_proxy: bool = False,
        heartbeats: bool = True,
        resume: str | None = None,
    ) -> RecordingClient:
        """A recorded, heartbeating client on ``replica`` (through its own
        ``FaultProxy`` when ``via_proxy``), subscribed to ``note``."""
        server = self.replicas[replica]
        url = server.ws_url
        if via_proxy:
            proxy = self.client_proxies.get(name)
            if proxy is None:
                proxy = self.client_proxies[name] = FaultProxy(server.port).start()
            url = f"ws://{proxy.url_host_port}/ws"
        client = await RecordingClient.open(url, self.history, name)
        self.clients.append(client)
        welcome = await client.hello(api.token or "", resume=resume)
        assert welcome["type"] == "welcome", welcome
        if note is not None:
            snap = await client.request("subscribe", note=note)
            assert snap["type"] == "snapshot", snap
        if heartbeats:
            client.start_heartbeats(HEARTBEAT_S)
        return client

    # -- checking ----------------------------------------------------------------------
    async def check(
        self, notes: list[str], unique_inserts: bool = True, database_url: str | None = None
    ) -> None:
        await self.history.collect_final(database_url or self.database_url, notes)
        try:
            assert_history_ok(self.history, TTL_S, LOCK_DELAY_S, unique_inserts)
        except AssertionError as exc:
            path = _dump_for_replay(self.history)
            raise AssertionError(f"{exc}\n(history written to {path})") from None


def _dump_for_replay(history: History) -> str:
    fd, path = tempfile.mkstemp(prefix="collab-history-", suffix=".jsonl")
    os.close(fd)
    history.dump(Path(path))
    return path


async def eventually(pred: Callable[[], bool], limit_s: float, what: str) -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def known_version(client: RecordingClient, note: str) -> int:
    """The newest version of ``note`` this client has been told about."""
    best = 0
    for f in client.frames:
        if f.get("note") != note:
            continue
        kind = f.get("type")
        if kind in ("snapshot", "ack", "edited"):
            best = max(best, int(f["version"]))
        elif kind == "changes":
            best = max(best, int(f["to"]))
    return best


async def write(
    client: RecordingClient,
    note: str,
    fence: int,
    marker: str,
    op: str | None = None,
    reply_s: float = 5.0,
) -> dict[str, Any]:
    """Insert ``marker`` at the start of ``note``; a ``stale`` base is retried
    at the version the server reported (same op: it was not applied)."""
    op = op or new_op()
    base = known_version(client, note)
    for _ in range(20):
        reply = await client.request(
            "edit",
            timeout=reply_s,
            note=note,
            fence=fence,
            base=base,
            op=op,
            changes=[{"at": 0, "del": 0, "ins": marker}],
        )
        if reply.get("code") != "stale":
            return reply
        base = max(base, int(reply["version"]))  # error frames carry no "note"
    raise AssertionError("edit stayed stale")


async def acquire(client: RecordingClient, note: str, grant_s: float = HANDOFF_S + 2) -> int:
    """Acquire (waiting) and return the fence once granted."""
    first = await client.request("acquire", note=note)
    if first["type"] == "queued":
        rid = first["rid"]
        first = await client.wait_for(
            lambda f: f.get("type") == "granted" and f.get("rid") == rid, grant_s
        )
    assert first["type"] == "granted", first
    return int(first["fence"])
