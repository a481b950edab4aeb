"""The Redis bus under faults, on a private ``RedisServer``: killed and
restarted, pub/sub connections killed (redis-py would silently re-subscribe),
a paused server (half-open link), and publishing or starting while down."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis

from collab.bus.redis import RedisBus
from collab.errors import Unavailable
from tests.bus.helpers import FAST, Recorder, eventually
from tests.support.services import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def pair(server: RedisServer) -> AsyncIterator[tuple[RedisBus, RedisBus, Recorder]]:
    """A publisher bus and a subscriber bus whose recorder the tests watch."""
    publisher = RedisBus(server.url, prefix="f", replica_id="pub", timing=FAST)
    subscriber = RedisBus(server.url, prefix="f", replica_id="sub", timing=FAST)
    rec = Recorder()
    await publisher.start(Recorder().handle, Recorder().resync)
    await subscriber.start(rec.handle, rec.resync)
    try:
        yield publisher, subscriber, rec
    finally:
        await publisher.close()
        await subscriber.close()


def resynced(rec: Recorder, times: int) -> Callable[[], bool]:
    return lambda: rec.resyncs == times


async def publish_until_heard(publisher: RedisBus, rec: Recorder, i: int) -> None:
    """Publish ``i`` until the subscriber hears it: right after a reconnect the
    publisher's pool may need its one retry, and pub/sub is at-most-once."""
    for _ in range(50):
        try:
            await publisher.publish({"i": i})
            await rec.wait_for(lambda: i in rec.seen(), within_s=0.2)
            return
        except (Unavailable, TimeoutError):
            await asyncio.sleep(0.05)
    raise AssertionError(f"event {i} never arrived")


async def test_survives_a_killed_and_restarted_redis(
    server: RedisServer, pair: tuple[RedisBus, RedisBus, Recorder]
) -> None:
    publisher, subscriber, rec = pair
    await publish_until_heard(publisher, rec, 1)
    server.kill()
    await eventually(lambda: not subscriber.connected)
    with pytest.raises(Unavailable):
        await publisher.publish({"i": 2})
    server.start()
    await rec.wait_for(lambda: rec.resyncs == 1)
    assert subscriber.connected
    await publish_until_heard(publisher, rec, 3)
    assert rec.resyncs == 1


async def test_notices_client_kill_of_pubsub_connections(
    server: RedisServer, pair: tuple[RedisBus, RedisBus, Recorder]
) -> None:
    publisher, subscriber, rec = pair
    await publish_until_heard(publisher, rec, 1)
    admin = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        for round_ in (1, 2):
            assert await admin.client_kill_filter(_type="pubsub") >= 1
            await rec.wait_for(resynced(rec, round_))
            assert subscriber.connected
    finally:
        await admin.aclose()
    await publish_until_heard(publisher, rec, 2)


async def test_detects_a_silent_half_open_link_by_ping(
    server: RedisServer, pair: tuple[RedisBus, RedisBus, Recorder]
) -> None:
    """A paused server raises no socket error; only the PING timeout shows
    the link is dead."""
    publisher, subscriber, rec = pair
    server.signal(signal.SIGSTOP)
    try:
        timeout = FAST.ping_interval_s + FAST.ping_timeout_s + 1.0
        await eventually(lambda: not subscriber.connected, within_s=timeout)
    finally:
        server.signal(signal.SIGCONT)
    await rec.wait_for(lambda: rec.resyncs == 1)
    assert subscriber.connected
    await publish_until_heard(publisher, rec, 1)


async def test_start_and_publish_fail_cleanly_while_redis_is_down(server: RedisServer) -> None:
    server.kill()
    bus = RedisBus(server.url, prefix="f", timing=FAST)
    rec = Recorder()
    try:
        with pytest.raises(Unavailable) as caught:
            await bus.start(rec.handle, rec.resync)
        assert str(server.port) not in caught.value.message
        assert not bus.connected
        with pytest.raises(Unavailable):
            await bus.publish({"i": 1})
    finally:
        await bus.close()


async def test_idle_pings_keep_the_subscription(
    pair: tuple[RedisBus, RedisBus, Recorder],
) -> None:
    """Several ping intervals of silence are answered by PONGs: no false loss."""
    publisher, subscriber, rec = pair
    await asyncio.sleep(FAST.ping_interval_s * 5)
    assert subscriber.connected and rec.resyncs == 0
    await publish_until_heard(publisher, rec, 1)
    assert rec.resyncs == 0


async def test_notices_a_silent_resubscribe_by_the_library(
    pair: tuple[RedisBus, RedisBus, Recorder],
) -> None:
    """redis-py reconnects and re-subscribes by itself when its pub/sub
    connection is found closed before a read, without raising: events
    published meanwhile are lost, so the bus must still resync. The handler
    closes the connection between two reads to make that happen."""
    publisher, subscriber, rec = pair
    handle = rec.handle

    async def drop_connection_then_handle(event: dict[str, object]) -> None:
        if event.get("drop"):
            links = list(subscriber._links.values())  # white-box: the live subscription
            assert len(links) == 1
            pubsub = links[0].pubsub
            assert pubsub is not None and pubsub.connection is not None
            await pubsub.connection.disconnect()
        await handle(event)

    subscriber._handler = drop_connection_then_handle
    await publisher.publish({"i": 1, "drop": True})
    await rec.wait_for(lambda: rec.resyncs == 1)
    assert subscriber.connected
    await publish_until_heard(publisher, rec, 2)
    assert rec.resyncs == 1


async def test_keeps_resubscribing_whatever_a_try_meets(
    server: RedisServer,
    pair: tuple[RedisBus, RedisBus, Recorder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A try that fails with an error nobody foresaw (a slot map in flux, a
    library bug) must not end the subscriber: it tries again, then resyncs."""
    publisher, subscriber, rec = pair
    await publish_until_heard(publisher, rec, 1)
    real, failures = RedisBus._subscribe, [KeyError("slot"), RuntimeError("odd")]

    async def flaky(self: RedisBus) -> None:
        if failures:
            raise failures.pop(0)
        await real(self)

    monkeypatch.setattr(RedisBus, "_subscribe", flaky)
    admin = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert await admin.client_kill_filter(_type="pubsub") >= 1
    finally:
        await admin.aclose()
    await rec.wait_for(resynced(rec, 1))
    assert failures == [] and subscriber.connected
    await publish_until_heard(publisher, rec, 2)
