"""The Redis client shared by the lease, presence, registry and bus backends:
one place that decides the topology (a single server, a master found through
Sentinel, or a Redis Cluster), timeouts, pool bounds and retries, turns Redis
failures into ``collab.errors.Unavailable``, names keys (hash tags, rule 11),
reads what identifies the data a server holds (rule 8) and encodes users inside
Redis values.

The defaults below apply when ``Settings`` has no ``redis_socket_timeout_s`` /
``redis_pool_max`` field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from collab.errors import Unavailable
from collab.types import ROLES, Role, User

# Commands fail fast: a waiter polls again and a holder's heartbeat is retried
# by its client, so a long hang only delays the 503 the caller must see anyway.
DEFAULT_SOCKET_TIMEOUT_S = 2.0
# Bounded pool: callers queue for a connection instead of opening thousands
# (in cluster mode: for one of this many commands in flight).
DEFAULT_POOL_MAX = 32
# One quick retry on a broken pooled connection (after a Redis restart the
# first command on each stale connection fails); more would only hide an
# outage. Timeouts are not retried: the script may have run, and acquire and
# revoke must not run twice behind the caller's back.
COMMAND_RETRIES = 1
RETRY_BACKOFF_BASE_S = 0.02
RETRY_BACKOFF_CAP_S = 0.1
# Scripts in flight at once when a cluster client runs a batch of them (its
# pipeline refuses scripts): well under its connections per node, so other
# commands still find connections meanwhile.
CLUSTER_SCRIPT_CONCURRENCY = 8

STANDALONE, SENTINEL, CLUSTER = "standalone", "sentinel", "cluster"
MODES = (STANDALONE, SENTINEL, CLUSTER)

# What every backend holds: a client of one server (standalone, or the
# current master behind Sentinel) or of a whole Redis Cluster. Both run the
# same commands and scripts; a cluster client routes each by its keys' slot.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster


@dataclass(frozen=True)
class RedisClientOptions:
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S
    pool_max: int = DEFAULT_POOL_MAX
    mode: str = STANDALONE
    sentinel_master: str = ""
    sentinel_password: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"redis mode must be one of {MODES}")
        if self.mode == SENTINEL and not self.sentinel_master:
            raise ValueError("sentinel mode needs the master's name")

    @classmethod
    def from_settings(cls, settings: Any) -> RedisClientOptions:
        """From ``settings.redis_socket_timeout_s`` / ``redis_pool_max`` /
        ``redis_mode`` / ``redis_sentinel_*`` when the settings define them,
        else the defaults above."""
        return cls(
            socket_timeout_s=float(
                getattr(settings, "redis_socket_timeout_s", DEFAULT_SOCKET_TIMEOUT_S)
            ),
            pool_max=int(getattr(settings, "redis_pool_max", DEFAULT_POOL_MAX)),
            mode=str(getattr(settings, "redis_mode", STANDALONE)),
            sentinel_master=str(getattr(settings, "redis_sentinel_master", "")),
            sentinel_password=str(getattr(settings, "redis_sentinel_password", "")),
        )


def split_urls(url: str) -> list[str]:
    """The comma-separated addresses of ``COLLAB_REDIS_URL``."""
    return [part.strip() for part in url.split(",") if part.strip()]


def _retry(retries: int) -> Retry:
    return Retry(
        ExponentialBackoff(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_BASE_S),
        retries,
        supported_errors=(RedisConnectionError,),
    )


def open_redis(
    url: str,
    options: RedisClientOptions,
    *,
    retries: int = COMMAND_RETRIES,
    client_name: str | None = None,
) -> RedisClient:
    """A client with ``decode_responses=True`` and short socket timeouts, for
    the topology ``options.mode`` names. Connecting is lazy. ``retries``
    counts reconnect-and-retry attempts on a broken connection;
    ``client_name`` is shown by ``CLIENT LIST`` for operators.

    * standalone: a blocking pool of at most ``options.pool_max`` connections;
    * sentinel: the same pool, whose every new connection asks the sentinels
      (``url`` lists them) where the master named ``options.sentinel_master``
      is now, and checks it is a master; a demoted master's connections fail
      (``READONLY``) and are replaced;
    * cluster: ``url`` lists seed nodes; the client learns the slot map,
      follows MOVED/ASK and re-reads the map after a failover.
    """
    common: dict[str, Any] = {
        "client_name": client_name,
        "decode_responses": True,
        # RESP2, not redis-py 8's default RESP3: under RESP3 with decoded
        # responses redis-py mis-parses a PING reply on a pub/sub connection
        # (the bus's liveness probe), and Lua replies keep their RESP2 shapes.
        "protocol": 2,
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_timeout_s,
        "retry": _retry(retries),
    }
    if options.mode == CLUSTER:
        return _open_cluster(url, options, common)
    if options.mode == SENTINEL:
        return _open_sentinel(url, options, common)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=options.pool_max, timeout=options.socket_timeout_s, **common
    )
    return aioredis.Redis.from_pool(pool)


def _node_kwargs(url: str) -> dict[str, Any]:
    """Credentials and TLS of one ``redis://`` address; no database number
    (a cluster has only 0; Sentinel's master takes it from the first URL)."""
    parsed = dict(parse_url(url))
    kwargs: dict[str, Any] = {
        key: parsed[key] for key in ("username", "password") if parsed.get(key)
    }
    if url.startswith("rediss://"):
        kwargs["ssl"] = True
    return kwargs


def _host_port(url: str) -> tuple[str, int]:
    parsed = parse_url(url)
    return str(parsed.get("host") or "127.0.0.1"), int(parsed.get("port") or 6379)


class _Cluster(RedisCluster):
    """redis-py's cluster client with the standalone pool's two promises: a
    timeout is not retried (the script may have run; a broken connection, a
    CLUSTERDOWN while a replica takes over and an unserved slot are), and a
    caller waits up to the socket timeout for one of ``pool_max`` commands in
    flight instead of failing when a node's connections are all busy."""

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]

    def __init__(self, *, in_flight: int, wait_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._in_flight = asyncio.Semaphore(in_flight)
        self._wait_s = wait_s

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._wait_s):
                await self._in_flight.acquire()
        except TimeoutError:
            raise MaxConnectionsError("every Redis connection is busy") from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._in_flight.release()


# Per cluster node, above the commands in flight: the admin listing's
# pipeline takes a connection per node beside them.
CLUSTER_NODE_HEADROOM = 4


def _open_cluster(url: str, options: RedisClientOptions, common: dict[str, Any]) -> RedisCluster:
    urls = split_urls(url)
    nodes = [ClusterNode(*_host_port(u)) for u in urls]
    return _Cluster(
        in_flight=options.pool_max,
        wait_s=options.socket_timeout_s,
        startup_nodes=nodes,
        max_connections=options.pool_max + CLUSTER_NODE_HEADROOM,
        **_node_kwargs(urls[0]),
        **common,
    )


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The master's connections through Sentinel, bounded like the standalone
    pool: callers wait for a free connection instead of failing."""


class _SentinelMasterClient(aioredis.Redis):
    """The master's client; closing it also closes its sentinel clients."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        if manager is not None:
            await manager.aclose()


def _open_sentinel(url: str, options: RedisClientOptions, common: dict[str, Any]) -> aioredis.Redis:
    urls = split_urls(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_timeout_s,
        "protocol": 2,
        "decode_responses": True,
    }
    if options.sentinel_password:
        sentinel_kwargs["password"] = options.sentinel_password
    if urls[0].startswith("rediss://"):
        sentinel_kwargs["ssl"] = True
    manager = Sentinel(  # type: ignore[no-untyped-call]
        [_host_port(u) for u in urls], sentinel_kwargs=sentinel_kwargs, min_other_sentinels=0
    )
    master_kwargs = {**_node_kwargs(urls[0]), **common}
    db = parse_url(urls[0]).get("db")
    if db:
        master_kwargs["db"] = db
    client: aioredis.Redis = manager.master_for(
        options.sentinel_master,
        redis_class=_SentinelMasterClient,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=options.pool_max,
        timeout=options.socket_timeout_s,
        # A fresh connection proves the address answers before it is used.
        check_connection=True,
        **master_kwargs,
    )
    return client


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


ScriptCall: TypeAlias = tuple[Sequence[str], Sequence[Any]]  # (keys, args)


async def run_script_many(
    client: RedisClient, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Run ``script`` once per (keys, args) of ``calls`` in as few round trips
    as the client allows: one pipeline on a single server (loading the script
    again if the server lost it, after a restart or a failover), a few calls
    at a time on a cluster. Each result is the script's reply or the error
    that call met; a broken connection raises as usual."""
    if not calls:
        return []
    if isinstance(client, RedisCluster):
        gate = asyncio.Semaphore(CLUSTER_SCRIPT_CONCURRENCY)

        async def one(keys: Sequence[str], args: Sequence[Any]) -> Any:
            async with gate:
                return await script(keys=list(keys), args=list(args), client=client)

        return list(await asyncio.gather(*(one(k, a) for k, a in calls), return_exceptions=True))

    async def pipelined() -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    replies = await pipelined()
    if any(isinstance(r, NoScriptError) for r in replies):
        await client.script_load(script.script)
        replies = await pipelined()
    return replies


async def refresh_slots(client: RedisCluster) -> None:
    """Read the cluster's slot map now. redis-py re-reads it only after a
    command fails or is redirected, so a map cached before a failover can
    still name a dead master for slots nobody used since."""
    await client.initialize()
    await client.nodes_manager.initialize()


def open_node(
    client: RedisCluster,
    name: str,
    url: str,
    options: RedisClientOptions,
    *,
    client_name: str | None = None,
) -> aioredis.Redis:
    """A one-connection client, without library retries, to the cluster node
    ``name`` (``host:port``, as in the slot map): for the sharded pub/sub
    subscriptions of the slots it serves. Credentials and TLS as in ``url``'s
    first address."""
    host, _, port = name.rpartition(":")
    return aioredis.Redis(
        host=host,
        port=int(port),
        max_connections=1,
        client_name=client_name,
        decode_responses=True,
        protocol=2,
        socket_timeout=options.socket_timeout_s,
        socket_connect_timeout=options.socket_timeout_s,
        retry=_retry(0),
        **_node_kwargs(split_urls(url)[0]),
    )


async def open_shard_of(
    client: RedisClient,
    key: str,
    url: str,
    options: RedisClientOptions,
    *,
    client_name: str | None = None,
) -> aioredis.Redis:
    """A one-connection client, without library retries, to the master now
    serving ``key``'s slot: for a sharded pub/sub subscription, which lives on
    that master only. Credentials and TLS as in ``url``'s first address."""
    if not isinstance(client, RedisCluster):
        raise TypeError("open_shard_of needs a cluster client")
    await refresh_slots(client)
    node = client.get_node_from_key(key)
    if node is None:
        raise RedisClusterException("no master serves the slot")
    return aioredis.Redis(
        host=node.host,
        port=int(node.port),
        max_connections=1,
        client_name=client_name,
        decode_responses=True,
        protocol=2,
        socket_timeout=options.socket_timeout_s,
        socket_connect_timeout=options.socket_timeout_s,
        retry=_retry(0),
        **_node_kwargs(split_urls(url)[0]),
    )


# -- what identifies the data a server holds (rule 8) --------------------------
SERVER_MARK = "server:"
EPOCH_MARK = "epoch:"


async def server_marks(client: RedisClient) -> dict[str, str]:
    """``server:<name>`` -> ``run_id/master_replid/role`` of each server that
    holds the data: the one server (standalone, or the master Sentinel names
    now), or every master of a cluster. ``run_id`` changes on a restart,
    ``master_replid`` whenever a server starts a new replication history: a
    promoted replica, or a master demoted and promoted back, which resynced
    from a replica that may have lacked the newest writes."""
    if isinstance(client, RedisCluster):
        await refresh_slots(client)
        marks = {}
        for node in client.get_primaries():
            info = await client.execute_command("INFO", "server", "replication", target_nodes=node)
            # By address: the cluster client knows its nodes by address.
            marks[SERVER_MARK + str(node.name)] = _mark(info)
        return marks
    # Behind Sentinel, ask the sentinels now, not only when a connection is
    # opened: after a failover the old master answers as a master until the
    # sentinels demote it, and the pool's idle connections to it would still
    # be used. Asking drops those, so INFO below reaches the new master.
    master = await sentinel_master_address(client)
    where = f"{master[0]}:{master[1]}/" if master else ""
    info = await client.execute_command("INFO", "server", "replication")  # type: ignore[no-untyped-call]
    return {SERVER_MARK: where + _mark(info)}


async def sentinel_master_address(client: RedisClient) -> tuple[str, int] | None:
    """Where the sentinels say the master is now (None if ``client`` is not
    behind Sentinel). The client's pool then drops its idle connections to
    any other address."""
    pool = getattr(client, "connection_pool", None)
    if not isinstance(pool, SentinelConnectionPool):
        return None
    host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
    return str(host), int(port)


def _mark(info: Any) -> str:
    if isinstance(info, dict) and len(info) == 1 and isinstance(next(iter(info.values())), dict):
        info = next(iter(info.values()))  # a cluster reply keyed by node
    return f"{info.get('run_id', '')}/{info.get('master_replid', '')}/{info.get('role', '')}"


def epoch_keys(client: RedisClient, prefix: str) -> list[str]:
    """The epoch keys to keep: one, ``<prefix>:epoch``, on a single server;
    on a cluster one per master, ``<prefix>:{epoch-<i>}:epoch`` with the
    smallest ``i`` whose slot that master serves, so flushed or evicted data on
    any shard is noticed and not only on the shard of one global key."""
    if not isinstance(client, RedisCluster):
        return [f"{prefix}:epoch"]
    served: dict[str, set[int]] = {}  # master address -> the slots it serves
    for slot, nodes in client.nodes_manager.slots_cache.items():
        if nodes:
            served.setdefault(str(nodes[0].name), set()).add(slot)
    keys = []
    for name in sorted(served):
        i = 0
        while key_slot(f"epoch-{i}".encode()) not in served[name]:
            i += 1
        keys.append(f"{prefix}:{{epoch-{i}}}:epoch")
    return keys


def lost_data(before: dict[str, str], after: dict[str, str]) -> bool:
    """Whether the marks ``after`` show data lost since ``before``: a
    server's identity changed, a server that held data does not any more (a
    cluster master replaced by its replica), or an epoch key was recreated. An
    epoch key only one side knows is not a loss: a reshard changed which key
    stands for a master, and the marks of the servers still say whether data
    went."""
    for name, mark in before.items():
        if name in after:
            if after[name] != mark:
                return True
        elif name.startswith(SERVER_MARK):
            return True
    return False


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Re-raise any Redis or socket failure as ``Unavailable`` naming ``what``
    (e.g. "lease store"). The message never carries the URL or the server's
    error text; the original stays chained for the server log."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        raise Unavailable(f"the {what} is unavailable; retry later") from exc


def note_key_base(prefix: str, note_id: str) -> str:
    """``<prefix>:{note-id}:``. Note ids must not contain braces, which would
    move the hash tag."""
    if "{" in note_id or "}" in note_id:
        raise ValueError("note id must not contain '{' or '}'")
    return f"{prefix}:{{{note_id}}}:"


def check_session(session: str) -> str:
    """Session ids must not contain ':' -- the lease value is
    ``user:session:fence`` and scripts find the owner by its ``:session:fence``
    tail."""
    if not session or ":" in session:
        raise ValueError("session id must be non-empty and must not contain ':'")
    return session


def encode_user(user: User) -> str:
    return orjson.dumps({"id": user.id, "name": user.name, "role": user.role}).decode()


def decode_user(text: str) -> User:
    """Inverse of ``encode_user``. An unknown role (written by a newer
    version) degrades to ``user`` rather than failing the whole read."""
    data = orjson.loads(text)
    role: Role = data.get("role") if data.get("role") in ROLES else "user"
    return User(id=str(data["id"]), name=str(data.get("name", "")), role=role)
