"""The Redis client shared by the lease, presence, registry and bus backends:
one place that decides timeouts, pool bounds and retries, turns Redis failures
into ``collab.errors.Unavailable``, names note keys (hash tags, rule 11) and
encodes users inside Redis values.

The defaults below apply when ``Settings`` has no ``redis_socket_timeout_s`` /
``redis_pool_max`` field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from collab.errors import Unavailable
from collab.types import ROLES, Role, User

# Commands fail fast: a waiter polls again and a holder's heartbeat is retried
# by its client, so a long hang only delays the 503 the caller must see anyway.
DEFAULT_SOCKET_TIMEOUT_S = 2.0
# Bounded pool: callers queue for a connection instead of opening thousands.
DEFAULT_POOL_MAX = 32
# One quick retry on a broken pooled connection (after a Redis restart the
# first command on each stale connection fails); more would only hide an
# outage. Timeouts are not retried: the script may have run, and acquire and
# revoke must not run twice behind the caller's back.
COMMAND_RETRIES = 1
RETRY_BACKOFF_BASE_S = 0.02
RETRY_BACKOFF_CAP_S = 0.1


@dataclass(frozen=True)
class RedisClientOptions:
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S
    pool_max: int = DEFAULT_POOL_MAX

    @classmethod
    def from_settings(cls, settings: Any) -> RedisClientOptions:
        """From ``settings.redis_socket_timeout_s`` / ``redis_pool_max`` when
        the settings define them, else the defaults above."""
        return cls(
            socket_timeout_s=float(
                getattr(settings, "redis_socket_timeout_s", DEFAULT_SOCKET_TIMEOUT_S)
            ),
            pool_max=int(getattr(settings, "redis_pool_max", DEFAULT_POOL_MAX)),
        )


def open_redis(
    url: str,
    options: RedisClientOptions,
    *,
    retries: int = COMMAND_RETRIES,
    client_name: str | None = None,
) -> aioredis.Redis:
    """A client with ``decode_responses=True``, short socket timeouts and a
    blocking pool of at most ``options.pool_max`` connections. Connecting is
    lazy. ``retries`` counts reconnect-and-retry attempts on a broken
    connection; ``client_name`` is shown by ``CLIENT LIST`` for operators."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        client_name=client_name,
        max_connections=options.pool_max,
        timeout=options.socket_timeout_s,
        decode_responses=True,
        # RESP2, not redis-py 8's default RESP3: under RESP3 with decoded
        # responses redis-py mis-parses a PING reply on a pub/sub connection
        # (the bus's liveness probe), and Lua replies keep their RESP2 shapes.
        protocol=2,
        socket_timeout=options.socket_timeout_s,
        socket_connect_timeout=options.socket_timeout_s,
        retry=Retry(
            ExponentialBackoff(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_BASE_S),
            retries,
            supported_errors=(RedisConnectionError,),
        ),
    )
    return aioredis.Redis.from_pool(pool)


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Re-raise any Redis or socket failure as ``Unavailable`` naming ``what``
    (e.g. "lease store"). The message never carries the URL or the server's
    error text; the original stays chained for the server log."""
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
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
