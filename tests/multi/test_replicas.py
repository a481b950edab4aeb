"""Two and three ``collab serve`` processes sharing one PostgreSQL and one Redis:
lock grants, edits, presence and revocations cross replicas; hand-off after a
client dies; drain with resume on another replica."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import create_database, drop_database, redis_url

TTL_S, DELAY_S = 1.2, 0.3


@pytest.fixture
def cluster() -> Iterator[Callable[[int], list[ServerProcess]]]:
    db = asyncio.run(create_database())
    prefix = "m" + uuid.uuid4().hex[:8]
    started: list[ServerProcess] = []

    def start(n: int) -> list[ServerProcess]:
        env = distributed_env(db, redis_url(), prefix)
        for i in range(n):
            started.append(ServerProcess(env=env, name=f"r{i + 1}").start())
        return started

    yield start
    for server in started:
        server.stop(5)
    asyncio.run(drop_database(db))


async def connect(server: ServerProcess, api: Api, resume: str | None = None) -> WsClient:
    return await WsClient.signed_in(server.ws_url, api.token, resume)


async def shared_note(a: ServerProcess, *writers: Api) -> tuple[Api, str]:
    owner = await Api.register(a.url)
    note = (await owner.ok("POST", "/api/notes", {"title": "x"}, status=201))["id"]
    for w in writers:
        await owner.ok("PUT", f"/api/notes/{note}/access/{w.user['id']}", {"access": "write"})
    return owner, note


async def test_grant_and_edits_cross_replicas(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b, c = cluster(3)
    owner, note = await shared_note(a)
    holder = await connect(a, owner)
    viewers = [await connect(s, owner) for s in (b, c)]
    for ws in (holder, *viewers):
        assert (await ws.request("subscribe", note=note))["type"] == "snapshot"
    assert holder.welcome["server"] != viewers[0].welcome["server"]
    fence = (await holder.request("acquire", note=note))["fence"]
    for ws in viewers:
        lock = await ws.wait_for(lambda f: f["type"] == "lock" and f["lock"] is not None)
        assert (
            lock["lock"]["fence"] == fence and lock["lock"]["session"] == holder.welcome["session"]
        )
    text = ""
    for v in range(60):
        piece = chr(ord("a") + v % 26)
        ack = await holder.request(
            "edit",
            note=note,
            fence=fence,
            base=v,
            op=new_op(),
            changes=[{"at": len(text), "del": 0, "ins": piece}],
        )
        assert ack["version"] == v + 1
        text += piece
    for ws in viewers:
        await ws.wait_for(lambda f: f["type"] == "edited" and f["version"] == 60, timeout=10)
        versions = [f["version"] for f in ws.pushes("edited", note)]
        assert versions == list(range(1, 61)), "in order, none lost, none twice"
        rebuilt = ""
        for f in ws.pushes("edited", note):
            for ch in f["changes"]:
                rebuilt = rebuilt[: ch["at"]] + ch["ins"] + rebuilt[ch["at"] + ch["del"] :]
        assert rebuilt == text


async def test_dead_client_hands_over_to_waiter_on_other_replica(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b = cluster(2)
    writer = await Api.register(a.url)
    owner, note = await shared_note(a, writer)
    holder = await connect(a, owner)
    waiter = await connect(b, writer)
    await waiter.request("subscribe", note=note)
    fence = (await holder.request("acquire", note=note))["fence"]
    queued = await waiter.request("acquire", note=note)
    assert queued["type"] == "queued"

    async def beat() -> None:
        while True:
            await waiter.request("heartbeat")
            await asyncio.sleep(0.3)

    beating = asyncio.create_task(beat())
    holder.ws.transport.abort()  # killed: no goodbye, no more heartbeats
    died = time.monotonic()
    granted = await waiter.wait_for(lambda f: f["type"] == "granted", timeout=6)
    took = time.monotonic() - died
    beating.cancel()
    assert granted["rid"] == queued["rid"] and granted["fence"] > fence
    assert took <= TTL_S + DELAY_S + 1.0, f"take-over took {took:.2f}s"
    # The dead holder's fence is refused, through any replica.
    ghost = await connect(a, owner)
    refused = await ghost.request("edit", note=note, fence=fence, base=0, op=new_op(), content="x")
    assert refused.get("code") == "fenced", refused
    ok = await waiter.request(
        "edit", note=note, fence=granted["fence"], base=0, op=new_op(), content="mine"
    )
    assert ok["type"] == "ack"


async def test_presence_and_revocation_cross_replicas(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b = cluster(2)
    writer = await Api.register(a.url)
    owner, note = await shared_note(a, writer)
    w_owner = await connect(a, owner)
    w_writer = await connect(b, writer)
    await w_owner.request("subscribe", note=note)
    await w_writer.request("subscribe", note=note)
    both = {owner.user["id"], writer.user["id"]}
    await w_owner.wait_for(
        lambda f: f["type"] == "presence" and {v["id"] for v in f["viewers"]} == both
    )
    fence = (await w_writer.request("acquire", note=note))["fence"]
    # The owner removes the writer's access through replica A; the writer is on B.
    owner_on_a = Api(a.url, owner.token)
    r = await owner_on_a.call("DELETE", f"/api/notes/{note}/access/{writer.user['id']}")
    assert r.status_code == 204
    assert (await w_writer.wait_closed(5))[0] == 4403
    refused = await w_owner.request(
        "edit", note=note, fence=fence, base=0, op=new_op(), content="x"
    )
    assert refused["code"] == "fenced", "the removed writer's token was fenced"
    await w_owner.wait_for(
        lambda f: f["type"] == "presence" and [v["id"] for v in f["viewers"]] == [owner.user["id"]],
        timeout=5,
    )


async def test_drain_sends_1012_and_resume_elsewhere_keeps_token(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b = cluster(2)
    owner, note = await shared_note(a)
    ws = await connect(a, owner)
    fence = (await ws.request("acquire", note=note))["fence"]
    session = ws.welcome["session"]
    a.signal(signal.SIGTERM)
    code, _ = await ws.wait_closed(10)
    assert code == 1012
    moved = await connect(b, owner, resume=session)
    assert moved.welcome["resumed"] is True
    assert [(x["note"], x["fence"]) for x in moved.welcome["leases"]] == [(note, fence)]
    ack = await moved.request("edit", note=note, fence=fence, base=0, op=new_op(), content="y")
    assert ack["type"] == "ack"
    # uvicorn re-raises the handled SIGTERM once shut down: -15 after a clean drain.
    assert a.proc is not None and a.proc.wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in a.log(), "drained and exited cleanly"


def test_readiness_turns_503_while_draining(spawn_server: Callable[..., ServerProcess]) -> None:
    """With a drain delay the load balancer can watch /readyz flip before the
    replica stops listening; new WebSocket upgrades are refused with 503."""
    db = asyncio.run(create_database())
    try:
        env = distributed_env(db, redis_url(), "d" + uuid.uuid4().hex[:8], COLLAB_DRAIN_DELAY_S="3")
        server = spawn_server(env, name="drainer")
        assert httpx.get(server.url + "/readyz").status_code == 200
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        statuses = set()
        while time.monotonic() < deadline:
            statuses.add(httpx.get(server.url + "/readyz").status_code)
            if 503 in statuses:
                break
            time.sleep(0.05)
        assert 503 in statuses
        upgrade = httpx.get(
            server.url + "/ws",
            headers={"connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
                     "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="},
        )  # fmt: skip
        assert upgrade.status_code == 503
        assert server.proc is not None and server.proc.wait(15) in (0, -signal.SIGTERM)
    finally:
        asyncio.run(drop_database(db))
