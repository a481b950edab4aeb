"""The per-user socket cap holds across replicas: two ``collab serve``
processes on one PostgreSQL and one Redis, 40 concurrent hellos of one user
split over both, exactly the cap admitted (each replica checking only its own
sockets let all 40 in against 20). Slots come back when sockets close, and
the slots of a replica killed with SIGKILL expire with their TTL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.client import Api, WsClient
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import create_database, drop_database, redis_url

CAP = 20
TTL_S = 1.2  # COLLAB_LEASE_TTL_MS of tests.support.server.FAST_LEASES


@pytest.fixture
def cluster() -> Iterator[Callable[[int], list[ServerProcess]]]:
    db = asyncio.run(create_database())
    prefix = "adm" + uuid.uuid4().hex[:8]
    started: list[ServerProcess] = []

    def start(n: int) -> list[ServerProcess]:
        env = distributed_env(db, redis_url(), prefix, COLLAB_MAX_SOCKETS_PER_USER=str(CAP))
        for i in range(n):
            started.append(ServerProcess(env=env, name=f"adm{i + 1}").start())
        return started

    yield start
    for server in started:
        server.stop(5)
    asyncio.run(drop_database(db))


async def hello_all(sockets: list[WsClient], token: str) -> list[bool]:
    replies = await asyncio.gather(*(ws.hello(token) for ws in sockets))
    for reply in replies:
        assert reply["type"] == "welcome" or reply["code"] == "rate_limited", reply
    return [reply["type"] == "welcome" for reply in replies]


async def test_concurrent_hellos_over_two_replicas_admit_exactly_the_cap(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b = cluster(2)
    api = await Api.register(a.url)
    token = api.token or ""
    sockets = [await WsClient.connect(s.ws_url) for s in (a, b) for _ in range(CAP)]
    welcomed = await hello_all(sockets, token)
    assert sum(welcomed) == CAP, f"{sum(welcomed)} of {len(sockets)} admitted against {CAP}"
    for ws, ok in zip(sockets, welcomed, strict=True):
        if not ok:
            assert (await ws.wait_closed())[0] == 1008
    live = [ws for ws, ok in zip(sockets, welcomed, strict=True) if ok]

    # Closing sockets on either replica frees exactly their slots.
    for ws in live[:3] + live[-2:]:
        await ws.close()
    live = live[3:-2]
    await asyncio.sleep(0.3)
    more = [await WsClient.connect(s.ws_url) for s in (b, a) for _ in range(4)]
    welcomed = await hello_all(more, token)
    assert sum(welcomed) == 5
    live += [ws for ws, ok in zip(more, welcomed, strict=True) if ok]

    # Still held after several TTLs: the replicas renew their slots.
    await asyncio.sleep(3 * TTL_S)
    late = await WsClient.connect(a.ws_url)
    assert (await late.hello(token))["code"] == "rate_limited"
    for ws in live:
        assert (await ws.request("heartbeat"))["type"] == "heartbeat_ack"
        await ws.close()


async def test_a_killed_replicas_slots_expire(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    a, b = cluster(2)
    api = await Api.register(a.url)
    token = api.token or ""
    on_b = [await WsClient.signed_in(b.ws_url, token) for _ in range(CAP)]
    assert (await (await WsClient.connect(a.ws_url)).hello(token))["code"] == "rate_limited"
    b.kill()  # no close, no release: only the TTL frees its slots
    for ws in on_b:
        await ws.wait_closed()
    await asyncio.sleep(TTL_S + 0.5)
    back = [await WsClient.connect(a.ws_url) for _ in range(CAP)]
    assert all(await hello_all(back, token)), "the dead replica's slots still counted"
    for ws in back:
        await ws.close()


async def test_a_resume_at_the_cap_takes_the_replaced_sockets_slot(
    cluster: Callable[[int], list[ServerProcess]],
) -> None:
    """A user at the cap whose connection dropped unnoticed comes back at once
    by resuming: the new socket takes the slot of the one it replaces."""
    a, b = cluster(2)
    api = await Api.register(a.url)
    token = api.token or ""
    live = [await WsClient.signed_in(s.ws_url, token) for s in (a, b) for _ in range(CAP // 2)]
    stale = live[0]  # on a; its client moved on without closing it
    back = await WsClient.connect(b.ws_url)
    welcome = await back.hello(token, resume=stale.welcome["session"])
    assert welcome["type"] == "welcome" and welcome["resumed"] is True, welcome
    assert (await stale.wait_closed())[0] == 4409
    fresh = await WsClient.connect(a.ws_url)
    assert (await fresh.hello(token))["code"] == "rate_limited", "still exactly the cap"
    await asyncio.sleep(3 * TTL_S)  # renewals on both replicas settle on the same count
    again = await WsClient.connect(b.ws_url)
    assert (await again.hello(token))["code"] == "rate_limited"
    for ws in [back, *live[1:]]:
        assert (await ws.request("heartbeat"))["type"] == "heartbeat_ack"
        await ws.close()
