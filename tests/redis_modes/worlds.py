"""Real ``collab serve`` replicas on a Redis topology (Sentinel or Cluster),
built on the fault scenarios' ``World`` (tests/faults/harness.py) with the
topology's settings instead of a proxied single Redis, plus the steps the
topology scenarios share."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.faults.harness import LOCK_DELAY_S, TTL_S, World, known_version, write
from tests.redis_modes.topology import SENTINEL_MASTER
from tests.support.client import new_op
from tests.support.history import RecordingClient
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import base_database_url, with_database

SENTINEL_ENV = {"COLLAB_REDIS_MODE": "sentinel", "COLLAB_REDIS_SENTINEL_MASTER": SENTINEL_MASTER}
CLUSTER_ENV = {"COLLAB_REDIS_MODE": "cluster"}


class _NoRedis:
    """The world's Redis is the topology, stopped by its own fixture."""

    port = 0

    def stop(self) -> None:
        pass


class TopologyWorld(World):
    def __init__(self, database_url: str, redis_url: str, env: dict[str, str]) -> None:
        super().__init__(database_url, redis=_NoRedis())  # type: ignore[arg-type]
        self.redis_url = redis_url
        self.env = env

    async def start(  # type: ignore[override]
        self, replicas: int = 3, **extra: str
    ) -> TopologyWorld:
        env = distributed_env(
            self.database_url, self.redis_url, self.prefix, **self.env,
            COLLAB_REDIS_SOCKET_TIMEOUT_S="1",
            COLLAB_BOOTSTRAP_ADMIN_USERNAME=ADMIN_NAME,
            COLLAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            COLLAB_LOG_LEVEL="warning", **extra,
        )  # fmt: skip
        # The first replica migrates alone.
        self.replicas.append(await asyncio.to_thread(ServerProcess(env, name="r0").start))
        for i in range(1, replicas):
            self.replicas.append(await asyncio.to_thread(ServerProcess(env, name=f"r{i}").start))
        return self


async def fresh_database(kind: str) -> str:
    name = f"{kind}_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(base_database_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(base_database_url(), name)


async def fenced(client: RecordingClient, note: str, fence: int) -> bool:
    reply = await client.request(
        "edit", note=note, fence=fence, base=known_version(client, note), op=new_op(),
        changes=[{"at": 0, "del": 0, "ins": "[stale]"}],
    )  # fmt: skip
    return reply.get("code") == "fenced"


async def regrant(holder: RecordingClient, note: str) -> int:
    """Acquire until granted (grants pause for TTL + lock-delay after a loss)."""
    deadline = time.monotonic() + 4 * (TTL_S + LOCK_DELAY_S) + 10
    while time.monotonic() < deadline:
        reply = await holder.request("acquire", note=note, wait=False)
        if reply["type"] == "granted":
            return int(reply["fence"])
        assert reply.get("code") in ("unavailable", "locked"), reply
        await asyncio.sleep(0.2)
    raise AssertionError("the token was not granted again after the failover")


async def keep_writing(
    client: RecordingClient, note: str, fence: int, tag: str, stop: asyncio.Event
) -> None:
    """Edits under ``fence`` until told to stop or refused: the checker then
    holds every acknowledged one to be in the final text."""
    i = 0
    while not stop.is_set():
        try:
            reply = await write(client, note, fence, f"[{tag}-{i}]", reply_s=3)
        except (AssertionError, TimeoutError):
            return
        if reply["type"] != "ack":
            return
        i += 1
        await asyncio.sleep(0.05)
