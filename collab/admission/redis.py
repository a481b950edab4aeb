"""Socket admission in Redis.

Key: ``<prefix>:sockets:{u:<user-id>}``, a sorted set of socket ids scored by
their expiry in milliseconds of the Redis server's clock (``TIME``), so the
replicas' clocks play no part. ``admit`` is one Lua script: drop the expired
members, then for each socket renew it if present, else add it only while the
set is under the limit; the key itself expires with its latest member, so the
sockets of a replica that crashed stop counting after their TTL and an idle
user leaves nothing behind. Every key of one user carries the hash tag
``{u:<id>}`` (one Redis Cluster slot; there is one key per user, so no script
crosses slots whatever the id holds; an id with braces is hex-encoded so the
tag stays whole)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collab.admission.base import SocketAdmission
from collab.errors import Unavailable
from collab.redis_client import (
    RedisClient,
    RedisClientOptions,
    open_redis,
    redis_errors,
    run_script_many,
)

_WHAT = "socket admission"

# KEYS[1]: the user's set. ARGV[1]: limit, ARGV[2]: ttl (ms), ARGV[3..]: sockets.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local refused = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) or redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  else
    refused[#refused + 1] = ARGV[i]
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return refused
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class RedisSocketAdmission(SocketAdmission):
    def __init__(
        self, url: str, prefix: str = "collab", options: RedisClientOptions | None = None
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._options = options or RedisClientOptions()
        self._redis: RedisClient | None = None

    @property
    def _r(self) -> RedisClient:
        if self._redis is None:
            raise Unavailable("socket admission not started")
        return self._redis

    def key(self, user_id: str) -> str:
        tag = user_id if "{" not in user_id and "}" not in user_id else "~" + user_id.encode().hex()
        return f"{self._prefix}:sockets:{{u:{tag}}}"

    async def start(self) -> None:
        self._redis = open_redis(self._url, self._options, client_name="collab-admission")
        self._admit = self._redis.register_script(_ADMIT)
        self._count = self._redis.register_script(_COUNT)
        # Loaded up front (on every master of a cluster): a burst of first
        # hellos would otherwise each meet NOSCRIPT and load it at once.
        with redis_errors(_WHAT):
            for script in (self._admit, self._count):
                await self._redis.script_load(script.script)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def admit(
        self, user_id: str, sockets: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        if not sockets:
            return []
        with redis_errors(_WHAT):
            refused = await self._admit(keys=[self.key(user_id)], args=[limit, ttl_ms, *sockets])
        return [_text(r) for r in refused or []]

    async def admit_many(
        self, batch: Sequence[tuple[str, Sequence[str]]], limit: int, ttl_ms: int
    ) -> list[list[str] | Exception]:
        """One pipeline for the whole batch, so a replica's renewal pass is a
        few round trips, not one per user."""
        calls = [([self.key(user)], [limit, ttl_ms, *sockets]) for user, sockets in batch]
        with redis_errors(_WHAT):
            replies = await run_script_many(self._r, self._admit, calls)
        return [r if isinstance(r, Exception) else [_text(x) for x in r or []] for r in replies]

    async def release(self, user_id: str, socket: str) -> None:
        # An emptied sorted set is deleted by Redis itself.
        with redis_errors(_WHAT):
            await self._r.zrem(self.key(user_id), socket)

    async def count(self, user_id: str) -> int:
        with redis_errors(_WHAT):
            return int(await self._count(keys=[self.key(user_id)]))


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
