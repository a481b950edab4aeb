"""The event bus over Redis pub/sub, one channel per topic
(``<prefix>:ev:{<topic>}``, ``events.topic``): each replica subscribes to the
topics it serves (``follow``/``unfollow``) plus a channel of its own, which
keeps the connection subscribed, so it receives only the events of its notes,
sessions and users. On a Redis Cluster the bus still uses one sharded channel
(``SPUBLISH``/``SSUBSCRIBE`` on ``<prefix>:{events}``, which lives on the shard
serving its slot; the subscriber connects to that shard's master and finds it
again after a failover or a slot move, when Redis ends the subscription with
``sunsubscribe``) and every replica hears every event: per-topic channels
over the shards are not built yet (docs/scaling.md).

Publishing uses a pooled client. Receiving runs in one task that owns a
dedicated pub/sub connection and treats *any* sign of trouble as a lost
subscription: a read or write error, no PONG within the ping timeout (a
half-open link), or an unexpected (re)subscribe confirmation -- redis-py
reconnects and re-subscribes on its own inside a failed read, which would
otherwise hide that events were missed. After a loss it reconnects with capped
exponential backoff plus jitter on a fresh connection, re-subscribes, and then
awaits ``on_resync`` so the hub resyncs every note it serves (rule 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import uuid
from collections.abc import Collection

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from collab.bus.base import Bus, Handler, ResyncHandler
from collab.bus.timing import BusTiming
from collab.errors import Unavailable
from collab.events import EVERYONE, Event, topic
from collab.redis_client import (
    RedisClient,
    RedisClientOptions,
    is_cluster,
    open_redis,
    open_shard_of,
    redis_errors,
    sentinel_master_address,
)

log = logging.getLogger("collab.bus")

_WHAT = "event bus"


class _SubscriptionLost(Exception):
    """The pub/sub connection can no longer be trusted to have every event."""


class RedisBus(Bus):
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        replica_id: str = "",
        options: RedisClientOptions | None = None,
        timing: BusTiming | None = None,
    ) -> None:
        self.timing = timing or BusTiming()
        options = options or RedisClientOptions()
        self._url = url
        self._name = "collab-bus-" + (re.sub(r"[^A-Za-z0-9._-]", "", replica_id) or "replica")
        self._publisher = open_redis(url, options, client_name=self._name)
        self._sharded = is_cluster(self._publisher)
        self.channel = f"{prefix}:{{events}}"  # the one channel on a cluster
        self._prefix = prefix
        home = re.sub(r"[^A-Za-z0-9._-]", "", replica_id) or uuid.uuid4().hex
        self._home = self._channel("replica:" + home)
        self._topics: set[str] = set()
        # Subscriptions asked for and not confirmed yet: their confirmations
        # are expected; any other means redis-py re-subscribed underneath us
        # (events may have been missed). Unsubscribe confirmations only ever
        # answer ours.
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._kinds_in = (
            ("smessage", "ssubscribe", "sunsubscribe")
            if self._sharded
            else ("message", "subscribe", "unsubscribe")
        )
        # The subscriber gets a client of its own per connection, with no
        # library retries: every failure must reach our loop, which reconnects
        # on a fresh client (nothing can leak from a broken one) and then
        # fires on_resync.
        self._subscriber_options = RedisClientOptions(
            socket_timeout_s=options.socket_timeout_s,
            pool_max=1,
            mode=options.mode,
            sentinel_master=options.sentinel_master,
            sentinel_password=options.sentinel_password,
        )
        self._subscriber: RedisClient | None = None
        self._pubsub: PubSub | None = None  # the live subscription, if any
        self._connected = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_resync: ResyncHandler | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self, handler: Handler, on_resync: ResyncHandler) -> None:
        """Subscribe now (raising ``Unavailable`` if Redis cannot be reached),
        then keep the subscription alive in a background task."""
        self._handler, self._on_resync = handler, on_resync
        pubsub = await self._subscribe()
        self._task = asyncio.create_task(self._run(pubsub), name="collab-bus-subscriber")

    def _channel(self, topic: str) -> str:
        return f"{self._prefix}:ev:{{{topic}}}"

    async def publish(self, event: Event) -> None:
        payload = orjson.dumps(event)
        with redis_errors(_WHAT):
            if self._sharded:
                await self._publisher.spublish(self.channel, payload)
            else:
                await self._publisher.publish(self._channel(topic(event)), payload)
        self._count_published(event)

    async def follow(self, topics: Collection[str]) -> None:
        new = [t for t in topics if t not in self._topics]
        self._topics.update(new)
        pubsub = self._pubsub
        if self._sharded or not new or pubsub is None or not self._connected:
            return  # a reconnect subscribes to every topic followed
        loop = asyncio.get_running_loop()
        channels = [self._channel(t) for t in new]
        waits = [self._confirming.setdefault(c, loop.create_future()) for c in channels]
        try:
            with redis_errors(_WHAT):
                await pubsub.subscribe(*channels)
            await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, waits)),
                                   self.timing.ping_timeout_s * 2)  # fmt: skip
        except TimeoutError:
            raise Unavailable(f"the {_WHAT} did not confirm a subscription") from None

    async def unfollow(self, topics: Collection[str]) -> None:
        gone = [t for t in topics if t in self._topics]
        self._topics.difference_update(gone)
        pubsub = self._pubsub
        if self._sharded or not gone or pubsub is None or not self._connected:
            return
        with redis_errors(_WHAT):
            await pubsub.unsubscribe(*(self._channel(t) for t in gone))

    async def close(self) -> None:
        self._closing = True
        self._connected = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._discard_subscription()
        await self._publisher.aclose()

    # -- the subscription loop ----------------------------------------------
    async def _subscribe(self) -> PubSub:
        """A fresh connection, subscribed and confirmed. On a cluster it goes
        to the master now serving the channel's slot, found from a freshly
        read slot map."""
        name = self._name + "-sub"
        try:
            with redis_errors(_WHAT):
                if self._sharded:
                    self._subscriber = await open_shard_of(
                        self._publisher, self.channel, self._url, self._subscriber_options,
                        client_name=name,
                    )  # fmt: skip
                else:
                    self._subscriber = open_redis(
                        self._url, self._subscriber_options, retries=0, client_name=name
                    )
                assert isinstance(self._subscriber, aioredis.Redis)
                self._pubsub = pubsub = self._subscriber.pubsub()
                if self._sharded:
                    channels = [self.channel]
                    await pubsub.ssubscribe(self.channel)
                else:
                    channels = [self._home, self._channel(EVERYONE)]
                    channels += map(self._channel, self._topics)
                    await pubsub.subscribe(*channels)
                await self._confirmed(pubsub, len(channels))
        except BaseException:
            await self._discard_subscription()
            raise
        self._connected = True
        return pubsub

    async def _confirmed(self, pubsub: PubSub, count: int) -> None:
        """Read the ``count`` subscribe confirmations of a fresh connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.ping_timeout_s * 2
        for _ in range(count):
            left = deadline - loop.time()
            confirmed = await pubsub.get_message(timeout=max(left, 0.001))
            if not confirmed or confirmed["type"] != self._kinds_in[1]:
                raise Unavailable(f"the {_WHAT} did not confirm the subscription")

    async def _run(self, pubsub: PubSub) -> None:
        while not self._closing:
            try:
                await self._pump(pubsub)
            except (_SubscriptionLost, Unavailable) as exc:
                log.warning("event bus subscription lost: %s", exc)
            except Exception as exc:
                # Connection errors surface as assorted redis/OS exceptions.
                log.warning("event bus subscription lost: %s", type(exc).__name__)
            self._connected = False
            await self._discard_subscription()
            pubsub = await self._reconnect()
            await self._resync()

    async def _pump(self, pubsub: PubSub) -> None:
        """Deliver events until the connection is lost (then raise)."""
        loop = asyncio.get_running_loop()
        timing = self.timing
        last_heard = loop.time()
        ping_sent: float | None = None
        while True:
            if ping_sent is None:
                wait = last_heard + timing.ping_interval_s - loop.time()
            else:
                wait = ping_sent + timing.ping_timeout_s - loop.time()
            message = await pubsub.get_message(timeout=max(wait, 0.001))
            now = loop.time()
            if message is None:
                # Only judge silence after actually waiting for input, so a
                # slow handler never looks like a dead link.
                if ping_sent is not None and now - ping_sent >= timing.ping_timeout_s:
                    raise _SubscriptionLost("no reply to PING")
                if ping_sent is None and now - last_heard >= timing.ping_interval_s:
                    await self._check_master(pubsub)
                    await pubsub.ping()
                    ping_sent = now
                continue
            last_heard = now
            kind = message["type"]
            if kind == self._kinds_in[0]:
                await self._deliver(message["data"])
            elif kind == "pong":
                ping_sent = None
            elif kind == "subscribe" and (waiting := self._confirming.pop(
                _text(message["channel"]), None
            )) is not None:  # fmt: skip
                if not waiting.done():
                    waiting.set_result(None)
            elif kind == "unsubscribe" and not self._sharded:
                pass
            else:
                # A (re)subscribe or unsubscribe we did not ask for: redis-py
                # reconnected underneath us, so events may have been missed.
                raise _SubscriptionLost(f"unexpected {kind} confirmation")

    async def _check_master(self, pubsub: PubSub) -> None:
        """Behind Sentinel: if the sentinels name another master than the one
        subscribed to, the subscription is lost. The old master keeps serving
        it until the sentinels demote it, while replicas that connected since
        publish on the new one. Asking also drops the publisher's idle
        connections to the old master."""
        where = await sentinel_master_address(self._publisher)
        conn = pubsub.connection
        if where is not None and conn is not None and (conn.host, conn.port) != where:
            raise _SubscriptionLost("the sentinels name another master")

    async def _deliver(self, data: str) -> None:
        assert self._handler is not None
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("event bus: dropped a message that is not JSON")
            return
        if not isinstance(event, dict):
            log.warning("event bus: dropped a message that is not an object")
            return
        self._count_received(event)
        try:
            await self._handler(event)
        except Exception:
            # One bad event must not stop delivery of the rest.
            log.exception("event bus handler failed")

    async def _reconnect(self) -> PubSub:
        attempt = 0
        while True:
            await asyncio.sleep(self.timing.backoff_s(attempt, random.random()))
            try:
                return await self._subscribe()
            except Unavailable:
                attempt += 1

    async def _resync(self) -> None:
        assert self._on_resync is not None
        try:
            await self._on_resync()
        except Exception:
            log.exception("event bus resync handler failed")

    async def _discard_subscription(self) -> None:
        pubsub, client = self._pubsub, self._subscriber
        self._pubsub = self._subscriber = None
        # Waiters for confirmations on this connection: the next connection
        # subscribes to everything followed, then the hub resyncs.
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_result(None)
        self._confirming.clear()
        # The connection may already be broken; closing it must not raise.
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
