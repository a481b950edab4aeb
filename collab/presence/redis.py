"""Presence in Redis: per note a ZSET ``<prefix>:{n}:presence`` of sessions
scored by their expiry (ms, Redis ``TIME``) and a hash ``<prefix>:{n}:pusers``
of session -> user json. Both keys carry the note's hash tag (rule 11); every
operation is one Lua script that first prunes expired viewers."""

from __future__ import annotations

from collections.abc import Sequence

from collab.presence.base import PresenceStore
from collab.redis_client import (
    RedisClientOptions,
    check_session,
    decode_user,
    encode_user,
    note_key_base,
    open_redis,
    redis_errors,
    run_script_many,
)
from collab.types import User

_WHAT = "presence store"

_PRUNE = """
local function int(n) return string.format('%d', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], s)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# KEYS: presence pusers   ARGV: session user_json ttl_ms   -> 1 if newly live
_TOUCH = (
    _PRUNE
    + """
local ttl = tonumber(ARGV[3])
local was = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], int(now + ttl), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
-- Both keys outlive their latest viewer, so a note nobody reads again does
-- not keep its presence keys forever.
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
if was then return 0 end
return 1
"""
)

# KEYS: presence pusers   ARGV: session   -> 1 if it was a live viewer
_REMOVE = (
    _PRUNE
    + """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""
)

# KEYS: presence pusers   -> session, user json, session, user json, ...
_VIEWERS = (
    _PRUNE
    + """
local out = {}
for _, s in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = s
  out[#out + 1] = redis.call('HGET', KEYS[2], s) or ''
end
return out
"""
)


class RedisPresenceStore(PresenceStore):
    def __init__(self, url: str, *, prefix: str, options: RedisClientOptions | None = None) -> None:
        self.prefix = prefix
        self._redis = open_redis(url, options or RedisClientOptions())
        self._touch = self._redis.register_script(_TOUCH)
        self._remove = self._redis.register_script(_REMOVE)
        self._viewers = self._redis.register_script(_VIEWERS)

    def _keys(self, note_id: str) -> list[str]:
        base = note_key_base(self.prefix, note_id)
        return [base + "presence", base + "pusers"]

    async def start(self) -> None:
        with redis_errors(_WHAT):
            for script in (self._touch, self._remove, self._viewers):
                await self._redis.script_load(script.script)

    async def close(self) -> None:
        await self._redis.aclose()

    async def touch(self, note_id: str, session: str, user: User, ttl_ms: int) -> bool:
        check_session(session)
        with redis_errors(_WHAT):
            added = await self._touch(
                keys=self._keys(note_id), args=[session, encode_user(user), int(ttl_ms)]
            )
        return bool(added)

    async def touch_many(
        self, touches: Sequence[tuple[str, str, User, int]]
    ) -> list[bool | Exception]:
        calls = []
        for note_id, session, user, ttl_ms in touches:
            check_session(session)
            calls.append((self._keys(note_id), [session, encode_user(user), int(ttl_ms)]))
        with redis_errors(_WHAT):
            replies = await run_script_many(self._redis, self._touch, calls)
        return [r if isinstance(r, Exception) else bool(r) for r in replies]

    async def remove(self, note_id: str, session: str) -> bool:
        with redis_errors(_WHAT):
            removed = await self._remove(keys=self._keys(note_id), args=[session])
        return bool(removed)

    async def viewers(self, note_id: str) -> list[tuple[str, User]]:
        with redis_errors(_WHAT):
            flat = await self._viewers(keys=self._keys(note_id))
        # ZRANGE orders by expiry; the contract wants session order.
        pairs = [(flat[i], decode_user(flat[i + 1])) for i in range(0, len(flat), 2) if flat[i + 1]]
        return sorted(pairs, key=lambda pair: pair[0])
