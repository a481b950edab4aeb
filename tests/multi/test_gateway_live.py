"""Real nginx (the gateway/ config) in front of two real collab processes
sharing PostgreSQL and Redis: sockets spread over both replicas,
edits and grants cross them, a drained or killed replica's clients resume
through the gateway on the other with their token, and new connections avoid
the dead one."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collab.frames import replica_token
from tests.support.client import Api, WsClient, new_op
from tests.support.gateway import gateway_with_client
from tests.support.server import JWT_SECRET, ServerProcess, distributed_env
from tests.support.services import create_database, drop_database, redis_url

CLIENT = Path(__file__).resolve().parents[2] / "frontend" / "dist"
# What `welcome` says each replica is (an opaque token, not its name).
GW1, GW2 = replica_token(JWT_SECRET, "gw1"), replica_token(JWT_SECRET, "gw2")


@pytest.fixture
def replicas() -> Iterator[list[ServerProcess]]:
    db = asyncio.run(create_database())
    env = distributed_env(db, redis_url(), "g" + uuid.uuid4().hex[:8])
    servers = [ServerProcess(env=env, name=f"gw{i}").start() for i in (1, 2)]
    yield servers
    for server in servers:
        server.stop(5)
    asyncio.run(drop_database(db))


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[Path]:
    # nginx workers may run as `nobody` when we are root: the prefix must be traversable.
    path = Path(tempfile.mkdtemp(prefix="collab-gw-live-"))
    path.chmod(0o755)
    client = path / "client"
    if (CLIENT / "index.html").is_file():
        shutil.copytree(CLIENT, client)
    else:  # the client is built by the test command before pytest; stand in if not
        client.mkdir()
        (client / "index.html").write_text("<!doctype html><title>collab</title>")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def connect(base: str, api: Api, resume: str | None = None) -> WsClient:
    return await WsClient.signed_in(f"ws://{base}/ws", api.token, resume)


async def test_gateway_over_two_replicas(replicas: list[ServerProcess], prefix: Path) -> None:
    r1, r2 = replicas
    async with gateway_with_client(prefix / "nginx", [r1.port, r2.port], prefix / "client") as gw:
        base = f"http://{gw}"
        async with httpx.AsyncClient(base_url=base) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "<title>collab</title>" in page.text
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get("/metrics")).status_code == 404, "metrics stay private"
        owner = await Api.register(base)
        note = (await owner.ok("POST", "/api/notes", {"title": "gw"}, status=201))["id"]

        # least_conn spreads long-lived sockets over both replicas.
        sockets = [await connect(gw, owner) for _ in range(6)]
        by_server: dict[str, list[WsClient]] = {}
        for ws in sockets:
            by_server.setdefault(ws.welcome["server"], []).append(ws)
        assert set(by_server) == {GW1, GW2}, {k: len(v) for k, v in by_server.items()}
        holder, viewer = by_server[GW1][0], by_server[GW2][0]

        # A grant and edits made through one replica reach a viewer on the other.
        await viewer.request("subscribe", note=note)
        fence = (await holder.request("acquire", note=note))["fence"]
        lock = await viewer.wait_for(lambda f: f["type"] == "lock" and f["lock"] is not None)
        assert lock["lock"]["fence"] == fence
        ack = await holder.request(
            "edit", note=note, fence=fence, base=0, op=new_op(), content="via gw1"
        )
        assert ack["version"] == 1
        edited = await viewer.wait_for(lambda f: f["type"] == "edited")
        assert edited["content"] == "via gw1" and edited["version"] == 1

        # Drain gw1: its clients get 1012 and resume through nginx on gw2, token intact.
        session = holder.welcome["session"]
        r1.signal(signal.SIGTERM)
        assert (await holder.wait_closed(10))[0] == 1012
        moved = await connect(gw, owner, resume=session)
        assert moved.welcome["server"] == GW2 and moved.welcome["resumed"] is True
        assert [(x["note"], x["fence"]) for x in moved.welcome["leases"]] == [(note, fence)]
        ack = await moved.request(
            "edit", note=note, fence=fence, base=1, op=new_op(), content="via gw2"
        )
        assert ack["version"] == 2

        # Once gw1 is gone, new connections never reach it.
        r1.proc and r1.proc.wait(15)
        fresh = [await connect(gw, owner) for _ in range(8)]
        assert {ws.welcome["server"] for ws in fresh} == {GW2}
        for ws in (*sockets, moved, *fresh):
            await ws.close()


async def test_killed_replica_clients_resume_through_gateway(
    replicas: list[ServerProcess], prefix: Path
) -> None:
    r1, r2 = replicas
    async with gateway_with_client(prefix / "nginx", [r1.port, r2.port], prefix / "client") as gw:
        owner = await Api.register(f"http://{gw}")
        note = (await owner.ok("POST", "/api/notes", {"title": "k"}, status=201))["id"]
        sockets = [await connect(gw, owner) for _ in range(4)]
        on_r1 = next(ws for ws in sockets if ws.welcome["server"] == GW1)
        fence = (await on_r1.request("acquire", note=note))["fence"]
        r1.kill()  # a crash: no 1012, the gateway just loses the upstream
        code, _ = await on_r1.wait_closed(10)
        assert code in (1006, 1011, 1012), code
        moved = await connect(gw, owner, resume=on_r1.welcome["session"])
        assert moved.welcome["server"] == GW2
        assert [(x["note"], x["fence"]) for x in moved.welcome["leases"]] == [(note, fence)]
        ack = await moved.request("edit", note=note, fence=fence, base=0, op=new_op(), content="k")
        assert ack["type"] == "ack"
        fresh = [await connect(gw, owner) for _ in range(6)]
        assert {ws.welcome["server"] for ws in fresh} == {GW2}
        for ws in (*sockets, moved, *fresh):
            await ws.close()
