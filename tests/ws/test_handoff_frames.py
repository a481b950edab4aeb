"""The writer's caret, ``keep``, ``request`` and the idle hand-off over real
sockets (docs/protocol.md), on the embedded backends and on real PostgreSQL
+ Redis with the holder and the waiter on two replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.client import Api, WsClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize("backend_env", ["embedded", "distributed"], indirect=True)


@contextlib.asynccontextmanager
async def beating(*sockets: WsClient) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            for ws in sockets:
                await ws.send({"type": "heartbeat"})
            await asyncio.sleep(0.3)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def holder_and_waiter(
    servers: tuple[ServerProcess, ServerProcess],
) -> tuple[str, Api, WsClient, Api, WsClient]:
    first, second = servers
    owner = await Api.register(first.url)
    note = (await owner.ok("POST", "/api/notes", {"title": "t", "content": "hello"}, status=201))[
        "id"
    ]
    other = await Api.register(second.url)
    await owner.ok("PUT", f"/api/notes/{note}/access/{other.user['id']}", {"access": "write"})
    holder = await WsClient.signed_in(first.ws_url, owner.token)
    waiter = await WsClient.signed_in(second.ws_url, other.token)
    for ws in (holder, waiter):
        await ws.request("subscribe", note=note)
    return str(note), owner, holder, other, waiter


async def test_caret_request_and_idle_hand_off(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    note, owner, holder, other, waiter = await holder_and_waiter(two_servers)
    fence = (await holder.request("acquire", note=note))["fence"]
    async with beating(holder, waiter):
        # The caret: no answer to the holder, a push to the viewer elsewhere.
        await holder.send(
            {"type": "caret", "note": note, "fence": fence, "version": 0, "anchor": 1, "head": 4}
        )
        caret = await waiter.wait_for(lambda f: f["type"] == "caret")
        assert caret["holder"] == {"id": owner.user["id"], "name": owner.user["name"]}
        assert (caret["fence"], caret["version"], caret["anchor"], caret["head"]) == (
            fence,
            0,
            1,
            4,
        )
        # Only the holder: the viewer's own caret is refused, in words.
        refused = await waiter.request("caret", note=note, fence=fence, version=0, anchor=0, head=0)
        assert refused["type"] == "error" and refused["code"] == "fenced"
        kept = await holder.request("keep", note=note)
        assert kept["type"] == "kept" and kept["handoff_in_ms"] == 2000
        # A request reaches the holder at once, on whichever replica it is.
        queued = await waiter.request("acquire", note=note, wait=True)
        assert queued["type"] == "queued"
        asked = await waiter.request("request", note=note)
        assert asked["holder"] == {"id": owner.user["id"], "name": owner.user["name"]}
        told = await holder.wait_for(lambda f: f["type"] == "edit_request", timeout=2)
        assert told["from"] == {"id": other.user["id"], "name": other.user["name"]}
        again = await waiter.request("request", note=note)
        assert again["code"] == "rate_limited" and again["retry_after_ms"] > 0
        # The holder idles: warned, then the token goes to the waiter.
        warning = await holder.wait_for(lambda f: f["type"] == "idle_warning", timeout=4)
        assert warning["handoff_in_ms"] == 1000 and warning["fence"] == fence
        granted = await waiter.wait_for(lambda f: f["type"] == "granted", timeout=4)
        assert granted["fence"] > fence and granted["rid"] == queued["rid"]
        lost = await holder.wait_for(lambda f: f["type"] == "lease_lost", timeout=2)
        assert lost == {"type": "lease_lost", "note": note, "fence": fence, "reason": "idle"}
        late = await holder.request(
            "edit", note=note, fence=fence, base=0, op="0b6e4c1a-6d0e-4a59-9a64-5f1f2a7e9c11",
            content="mine",
        )  # fmt: skip
        assert late["code"] == "fenced"
        ack = await waiter.request(
            "edit", note=note, fence=granted["fence"], base=0,
            op="1c7e4c1a-6d0e-4a59-9a64-5f1f2a7e9c12", content="theirs",
        )  # fmt: skip
        assert ack["type"] == "ack"
    for ws in (holder, waiter):
        await ws.close()
