"""Abuse limits under load: while quiet clients keep working, five abusers hit
the server at once (a frame flood, an acquire flood, subscribes to many notes,
a connection flood from one address, a client that never reads). Each is cut
off by its named limit; the quiet clients' round-trip latency is measured
before and during the abuse and printed (asserted only with generous bounds:
two shared cores also run this test's clients), and so is the server's RSS
(VmRSS from /proc/<pid>/status)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

LIMITS = {
    "COLLAB_FRAME_RATE_PER_S": "100",
    "COLLAB_FRAME_BURST": "200",
    "COLLAB_MAX_BAD_FRAMES": "10",
    "COLLAB_ACQUIRE_RATE_PER_S": "2",
    "COLLAB_ACQUIRE_BURST": "5",
    "COLLAB_MAX_SUBSCRIPTIONS_PER_SOCKET": "10",
    "COLLAB_CONNECT_RATE_PER_IP_PER_S": "5",
    "COLLAB_CONNECT_BURST_PER_IP": "20",
    "COLLAB_OUTBOUND_QUEUE_MAX": "16",
    "COLLAB_HELLO_TIMEOUT_S": "2",
    "COLLAB_LOG_LEVEL": "warning",
}
FLOOD_IP = {"X-Real-IP": "203.0.113.50"}  # trusted from loopback, like the gateway's


def vm_rss_kb(pid: int) -> int:
    """VmRSS of the process and its children (uvicorn runs in-process with one worker)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def connected(server: ServerProcess, api: Api) -> WsClient:
    ws = await WsClient.connect(server.ws_url)
    await ws.hello(api.token or "")
    return ws


class Quiet:
    """Well-behaved clients: heartbeats and small edits, each timed."""

    def __init__(self, heartbeaters: list[WsClient], writer: WsClient, note: str, fence: int):
        self.heartbeaters, self.writer, self.note, self.fence = heartbeaters, writer, note, fence
        self.version = 0
        self.bad: list[dict[str, Any]] = []

    async def sample(self, seconds: float) -> list[float]:
        samples: list[float] = []
        deadline = time.monotonic() + seconds

        async def beat(ws: WsClient) -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                reply = await ws.request("heartbeat", timeout=10)
                samples.append(time.perf_counter() - started)
                if reply["type"] != "heartbeat_ack":
                    self.bad.append(reply)
                await asyncio.sleep(0.05)

        async def write() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                reply = await self.writer.request(
                    "edit", timeout=10, note=self.note, fence=self.fence, base=self.version,
                    op=new_op(), changes=[{"at": 0, "del": 0, "ins": "q"}],
                )  # fmt: skip
                samples.append(time.perf_counter() - started)
                if reply["type"] != "ack":
                    self.bad.append(reply)
                    return
                self.version = reply["version"]
                await asyncio.sleep(0.05)

        await asyncio.gather(*(beat(ws) for ws in self.heartbeaters), write())
        return samples


async def frame_flood(server: ServerProcess, api: Api) -> str:
    ws = await connected(server, api)
    with contextlib.suppress(websockets.ConnectionClosed):
        for _ in range(3000):
            await ws.ws.send('{"type":"heartbeat"}')
    code = (await ws.wait_closed(10))[0]
    assert code == 1008, f"frame flood closed with {code}"
    return "frame flood: closed 1008 (COLLAB_FRAME_RATE_PER_S, COLLAB_MAX_BAD_FRAMES)"


async def acquire_flood(server: ServerProcess, api: Api, note: str) -> str:
    ws = await connected(server, api)
    replies = await asyncio.gather(
        *(ws.request("acquire", timeout=10, note=note, wait=False) for _ in range(60))
    )
    limited = sum(1 for r in replies if r.get("code") == "rate_limited")
    granted = sum(1 for r in replies if r["type"] == "granted")
    assert granted <= 5 + 2 * 3 and limited >= 60 - granted, (granted, limited)
    await ws.close()
    return f"acquire flood: {granted} granted, {limited} rate_limited (COLLAB_ACQUIRE_*)"


async def subscribe_flood(server: ServerProcess, api: Api, notes: list[str]) -> str:
    ws = await connected(server, api)
    replies = [await ws.request("subscribe", note=n) for n in notes]
    kinds = [r["type"] if r["type"] != "error" else r["code"] for r in replies]
    assert kinds == ["snapshot"] * 10 + ["rate_limited"] * (len(notes) - 10), kinds
    await ws.close()
    return f"subscribe flood: 10 snapshots, {len(notes) - 10} rate_limited (MAX_SUBSCRIPTIONS)"


async def connection_flood(server: ServerProcess) -> str:
    async def one() -> int:
        try:
            async with websockets.connect(server.ws_url, additional_headers=FLOOD_IP) as ws:
                await asyncio.wait_for(ws.wait_closed(), 5)  # no hello: 1008 now or 4408 later
                return ws.close_code or 1006
        except (OSError, websockets.InvalidHandshake, TimeoutError):
            return -1

    codes = await asyncio.gather(*(one() for _ in range(60)))
    refused = codes.count(1008)
    assert refused >= 60 - 20 - 5 * 3, codes
    assert set(codes) <= {1008, 4408}, codes
    return f"connection flood: {refused}/60 closed 1008 (COLLAB_CONNECT_*_PER_IP)"


async def never_reader(server: ServerProcess, owner: Api, other: Api) -> str:
    note = (await owner.ok("POST", "/api/notes", {"title": "busy", "visibility": "public"},
                           status=201))["id"]  # fmt: skip
    writer, lazy = await connected(server, owner), await connected(server, other)
    await lazy.request("subscribe", note=note)
    lazy.ws.transport.pause_reading()  # never read again
    fence = (await writer.request("acquire", note=note))["fence"]
    for v in range(400):
        body = chr(ord("a") + v % 26) * 60_000
        ack = await writer.request("edit", timeout=10, note=note, fence=fence, base=v,
                                   op=new_op(), content=body)  # fmt: skip
        assert ack["type"] == "ack", ack
        if v % 10 == 9 and await slow_consumers(owner) >= 1:
            break
        await asyncio.sleep(0.012)  # stay under the writer's own frame rate
    assert await slow_consumers(owner) >= 1, "the never-reading socket was not dropped"
    await writer.close()
    lazy.ws.transport.abort()
    return f"never-reader: dropped after {v + 1} pushes of 60 KB (COLLAB_OUTBOUND_QUEUE_MAX)"


async def slow_consumers(api: Api) -> float:
    text = (await api.call("GET", "/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("collab_ws_slow_consumers_total"))  # fmt: skip


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def test_abusers_are_cut_off_while_others_keep_working(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    server = spawn_server(backend_env(**LIMITS), name="abuse")
    assert server.proc is not None
    owner, quiet_user, abuser = [await Api.register(server.url) for _ in range(3)]
    quiet_note = (await quiet_user.ok("POST", "/api/notes", {"title": "q"}, status=201))["id"]
    notes = [(await abuser.ok("POST", "/api/notes", {"title": f"n{i}"}, status=201))["id"]
             for i in range(14)]  # fmt: skip
    writer = await connected(server, quiet_user)
    fence = (await writer.request("acquire", note=quiet_note))["fence"]
    quiet = Quiet([await connected(server, quiet_user) for _ in range(3)], writer, quiet_note,
                  fence)  # fmt: skip

    rss_before = vm_rss_kb(server.proc.pid)
    q50, q95 = summary(await quiet.sample(2.0))
    abuse = asyncio.gather(
        frame_flood(server, abuser), acquire_flood(server, abuser, notes[0]),
        subscribe_flood(server, abuser, notes), connection_flood(server),
        never_reader(server, owner, abuser),
    )  # fmt: skip
    during: list[float] = []
    while not abuse.done():
        during += await quiet.sample(0.5)
    outcomes = abuse.result()
    a50, a95 = summary(during)
    await asyncio.sleep(0.5)
    rss_after = vm_rss_kb(server.proc.pid)

    print("\n".join(["", *outcomes]))
    print(f"quiet clients: p50 {q50 * 1000:.1f} ms p95 {q95 * 1000:.1f} ms ({len(during)} "
          f"samples under abuse: p50 {a50 * 1000:.1f} ms p95 {a95 * 1000:.1f} ms; "
          f"p50 ratio {a50 / q50:.2f}x, within 2x: {a50 <= 2 * q50})")  # fmt: skip
    print(f"server VmRSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    assert not quiet.bad, f"a quiet client was refused: {quiet.bad[:3]}"
    assert (await quiet.heartbeaters[0].request("heartbeat"))["type"] == "heartbeat_ack"
    # Generous: the load generator shares the server's two cores.
    assert a50 <= max(10 * q50, q50 + 0.25), (q50, a50)
    assert rss_after - rss_before < 200 * 1024, "server memory grew by more than 200 MiB"
