"""The cluster client keeps the standalone pool's promises (no Redis needed:
the command underneath is replaced by a slow stand-in): at most ``pool_max``
commands in flight, callers past that wait up to the socket timeout and then
get a clear error, and a timeout is never retried (a script may have run)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collab.errors import Unavailable
from collab.redis_client import RedisClientOptions, open_redis, redis_errors


def _client(pool_max: int, wait_s: float) -> Any:
    options = RedisClientOptions(mode="cluster", pool_max=pool_max, socket_timeout_s=wait_s)
    return open_redis("redis://127.0.0.1:1,redis://127.0.0.1:2", options)


async def test_commands_in_flight_are_bounded_and_callers_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy = 0
    peak = 0

    async def slow(self: Any, *args: Any, **kwargs: Any) -> str:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await asyncio.sleep(0.05)
        busy -= 1
        return "ok"

    monkeypatch.setattr(RedisCluster, "execute_command", slow)
    client = _client(pool_max=3, wait_s=2.0)
    results = await asyncio.gather(*(client.execute_command("GET", f"k{i}") for i in range(12)))
    assert results == ["ok"] * 12
    assert peak == 3


async def test_a_caller_that_waits_too_long_gets_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stuck(self: Any, *args: Any, **kwargs: Any) -> str:
        await asyncio.sleep(1.0)
        return "ok"

    monkeypatch.setattr(RedisCluster, "execute_command", stuck)
    client = _client(pool_max=1, wait_s=0.1)
    first = asyncio.create_task(client.execute_command("GET", "a"))
    await asyncio.sleep(0.01)
    with pytest.raises(MaxConnectionsError):
        await client.execute_command("GET", "b")
    with (
        pytest.raises(Unavailable, match="the lease store is unavailable"),
        redis_errors("lease store"),
    ):
        await client.execute_command("GET", "c")
    assert await first == "ok"


def test_timeouts_are_not_retried() -> None:
    client = _client(pool_max=2, wait_s=1.0)
    assert RedisTimeoutError not in client.ERRORS_ALLOW_RETRY
    assert RedisTimeoutError in RedisCluster.ERRORS_ALLOW_RETRY  # what redis-py would do
