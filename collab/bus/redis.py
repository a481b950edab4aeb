"""The event bus over Redis pub/sub, one channel per topic
(``<prefix>:ev:{<topic>}``, ``events.topic``): each replica subscribes to the
topics it serves (``follow``/``unfollow``) and to the channel every replica
hears, so it receives only the events of its notes, sessions and users. On a
Redis Cluster the channels are sharded (``SPUBLISH``/``SSUBSCRIBE``): each
lives on the master serving its hash tag's slot, so the event traffic spreads
over the shards, and the replica keeps one subscriber connection per master
that serves one of its channels; Redis ends a subscription whose slot moved
(``sunsubscribe``), which counts as trouble like any other.

Publishing uses a pooled client. Each subscriber connection (a link) has a
reader task and treats *any* sign of trouble as lost events: a read or write
error, no PONG within the ping timeout (a half-open link), or an unexpected
(re)subscribe confirmation -- redis-py reconnects and re-subscribes on its
own inside a failed read, which would otherwise hide that events were
missed. After a loss every link is closed and opened again, from a fresh slot
map on a cluster, with capped exponential backoff plus jitter; then the bus
awaits ``on_resync`` so the hub resyncs every note it serves (rule 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Collection
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from collab.bus.base import Bus, Handler, ResyncHandler
from collab.bus.timing import BusTiming
from collab.errors import Unavailable
from collab.events import EVERYONE, Event, topic
from collab.redis_client import (
    RedisClient,
    RedisClientOptions,
    is_cluster,
    open_node,
    open_redis,
    redis_errors,
    refresh_slots,
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
        self._prefix = prefix
        self.channel = self._channel(EVERYONE)  # the one every replica hears
        self._topics: set[str] = set()
        # Subscriptions asked for and not confirmed yet: their confirmations
        # are expected; any other means redis-py re-subscribed underneath us
        # (events may have been missed).
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
        self._links: dict[str, _Link] = {}  # by server (cluster: master) name
        self._leaving: set[str] = set()  # unsubscribed, confirmation still due
        self._trouble = asyncio.Event()  # a link lost events: reopen them all
        self._why = ""
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
        await self._subscribe()
        self._task = asyncio.create_task(self._run(), name="collab-bus-subscriber")

    def _channel(self, topic: str) -> str:
        return f"{self._prefix}:ev:{{{topic}}}"

    async def publish(self, event: Event) -> None:
        payload = orjson.dumps(event)
        with redis_errors(_WHAT):
            channel = self._channel(topic(event))
            if self._sharded:
                await self._publisher.spublish(channel, payload)
            else:
                await self._publisher.publish(channel, payload)
        self._count_published(event)

    async def follow(self, topics: Collection[str]) -> None:
        new = [t for t in topics if t not in self._topics]
        self._topics.update(new)
        if not new or not self._connected:
            return  # a reconnect subscribes to every topic followed
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        try:
            with redis_errors(_WHAT):
                for name, channels in self._by_link([self._channel(t) for t in new]).items():
                    link = self._links.get(name)
                    if link is None:  # the first channel on this master
                        await self._open_link(name, channels)
                        continue
                    self._leaving.difference_update(channels)
                    waits += [
                        self._confirming.setdefault(c, loop.create_future()) for c in channels
                    ]
                    link.channels.update(channels)
                    await self._send(link.pubsub, "subscribe", channels)
            await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, waits)),
                                   self.timing.ping_timeout_s * 2)  # fmt: skip
        except TimeoutError:
            raise Unavailable(f"the {_WHAT} did not confirm a subscription") from None

    async def unfollow(self, topics: Collection[str]) -> None:
        gone = [t for t in topics if t in self._topics]
        self._topics.difference_update(gone)
        if not gone or not self._connected:
            return
        for name, channels in self._by_link([self._channel(t) for t in gone]).items():
            link = self._links.get(name)
            if link is None:
                continue
            link.channels.difference_update(channels)
            if not link.channels:  # nothing left on this master: the link goes
                await self._close_link(name)
                continue
            self._leaving.update(channels)
            with redis_errors(_WHAT):
                await self._send(link.pubsub, "unsubscribe", channels)

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

    # -- the subscriptions ----------------------------------------------------
    # One link (a pub/sub connection with its reader task) per server that
    # serves followed channels: the one server, or on a cluster every master
    # that serves the slot of a followed channel. Any trouble on any link is
    # treated as lost events: every link is closed and the whole set opened
    # again from a fresh slot map, then the hub resyncs.
    def _by_link(self, channels: list[str]) -> dict[str, list[str]]:
        """``channels`` grouped by the link they belong on (the master now
        serving each one's slot, as the cluster client last read the map)."""
        if not self._sharded:
            return {"": channels}
        assert isinstance(self._publisher, RedisCluster)
        groups: dict[str, list[str]] = {}
        for channel in channels:
            node = self._publisher.get_node_from_key(channel)
            if node is None:
                raise _SubscriptionLost("no master serves a channel's slot")
            groups.setdefault(node.name, []).append(channel)
        return groups

    async def _subscribe(self) -> None:
        """Fresh links for everything followed, subscribed and confirmed."""
        try:
            with redis_errors(_WHAT):
                if self._sharded:
                    assert isinstance(self._publisher, RedisCluster)
                    await refresh_slots(self._publisher)
                channels = [self._channel(EVERYONE), *map(self._channel, self._topics)]
                for name, group in self._by_link(channels).items():
                    await self._open_link(name, group)
        except BaseException:
            await self._discard_subscription()
            raise
        self._connected = True

    async def _open_link(self, name: str, channels: list[str]) -> None:
        """A connection of its own to ``name`` (the server, or a master), with
        no library retries, subscribed to ``channels`` and confirmed, and its
        reader started."""
        client_name = self._name + "-sub"
        if self._sharded:
            assert isinstance(self._publisher, RedisCluster)
            client: RedisClient = open_node(
                self._publisher, name, self._url, self._subscriber_options,
                client_name=client_name,
            )  # fmt: skip
        else:
            client = open_redis(
                self._url, self._subscriber_options, retries=0, client_name=client_name
            )
        assert isinstance(client, aioredis.Redis)
        pubsub = client.pubsub()
        link = _Link(client, pubsub, set(channels))
        self._links[name] = link
        await self._send(pubsub, "subscribe", channels)
        await self._confirmed(pubsub, len(channels))
        link.task = asyncio.create_task(self._read(link), name="collab-bus-link")

    async def _send(self, pubsub: PubSub, verb: str, channels: list[str]) -> None:
        """(Un)subscribe ``channels``. Sharded, one command per slot: Redis
        refuses an ``SSUBSCRIBE`` naming channels of several slots."""
        if not self._sharded:
            await getattr(pubsub, verb)(*channels)
            return
        by_slot: dict[int, list[str]] = {}
        for channel in channels:
            by_slot.setdefault(key_slot(channel.encode()), []).append(channel)
        for group in by_slot.values():
            await getattr(pubsub, "s" + verb)(*group)

    async def _close_link(self, name: str) -> None:
        link = self._links.pop(name, None)
        if link is not None:
            await link.close()

    async def _confirmed(self, pubsub: PubSub, count: int) -> None:
        """Read the ``count`` subscribe confirmations of a fresh connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.ping_timeout_s * 2
        for _ in range(count):
            left = deadline - loop.time()
            confirmed = await pubsub.get_message(timeout=max(left, 0.001))
            if not confirmed or confirmed["type"] != self._kinds_in[1]:
                raise Unavailable(f"the {_WHAT} did not confirm the subscription")

    async def _read(self, link: _Link) -> None:
        """One link's reader: any failure but being closed counts as lost."""
        try:
            await self._pump(link.pubsub)
        except asyncio.CancelledError:
            raise
        except (_SubscriptionLost, Unavailable) as exc:
            self._lose(str(exc))
        except Exception as exc:
            # Connection errors surface as assorted redis/OS exceptions.
            self._lose(type(exc).__name__)

    def _lose(self, why: str) -> None:
        if not self._trouble.is_set():
            self._why = why
            self._trouble.set()

    async def _run(self) -> None:
        while not self._closing:
            await self._trouble.wait()
            log.warning("event bus subscription lost: %s", self._why)
            self._connected = False
            await self._discard_subscription()
            await self._reconnect()
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
            channel = _text(message.get("channel") or "")
            if kind == self._kinds_in[0]:
                await self._deliver(message["data"])
            elif kind == "pong":
                ping_sent = None
            elif kind == self._kinds_in[1] and channel in self._confirming:
                waiting = self._confirming.pop(channel)
                if not waiting.done():
                    waiting.set_result(None)
            elif kind == self._kinds_in[2] and channel in self._leaving:
                self._leaving.discard(channel)
            else:
                # A (re)subscribe we did not ask for (redis-py reconnected
                # underneath us), or a cluster ending a subscription whose
                # slot moved: events may have been missed.
                raise _SubscriptionLost(f"unexpected {kind} of a channel")

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

    async def _reconnect(self) -> None:
        """Until every link is open again. Whatever a try meets (a server
        down, a slot map in flux mid-migration or failover), the next try
        starts from a fresh map; the subscriber task must never end here,
        or this replica would stop hearing events for good."""
        attempt = 0
        while True:
            await asyncio.sleep(self.timing.backoff_s(attempt, random.random()))
            try:
                await self._subscribe()
            except Exception as exc:
                if attempt == 0 or attempt % 20 == 0:
                    log.warning("event bus: resubscribing failed (%s); retrying",
                                _reason(exc))  # fmt: skip
                attempt += 1
            else:
                if attempt:
                    log.warning("event bus: resubscribed after %d failed tries", attempt)
                return

    async def _resync(self) -> None:
        assert self._on_resync is not None
        try:
            await self._on_resync()
        except Exception:
            log.exception("event bus resync handler failed")

    async def _discard_subscription(self) -> None:
        links, self._links = list(self._links.values()), {}
        # Waiters for confirmations on these links: the next links subscribe
        # to everything followed, then the hub resyncs.
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_result(None)
        self._confirming.clear()
        self._leaving.clear()
        self._trouble.clear()
        for link in links:
            await link.close()


@dataclass(eq=False)
class _Link:
    client: aioredis.Redis
    pubsub: PubSub
    channels: set[str]
    task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop the reader and close the connection; a broken one must not
        make closing raise."""
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose()


def _reason(exc: BaseException) -> str:
    """Why a try failed, for the log: our own message, else only the error's
    type (a server's error text may carry addresses)."""
    if isinstance(exc, Unavailable | _SubscriptionLost):
        return str(exc)
    return type(exc).__name__


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
