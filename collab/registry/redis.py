"""Session registry in Redis.

Keys: ``<prefix>:session:<sid>`` (hash: user json, replica, socket,
connected_at; PX ttl), ``<prefix>:session:<sid>:notes`` (set of note ids, same
ttl), ``<prefix>:sessions`` (set of sids; members whose hash expired are pruned
on read). Claim and touch are compare-socket Lua scripts so a stale socket
cannot steal back a session that moved (rule 9)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from collab.errors import Unavailable
from collab.redis_client import (
    RedisClientOptions,
    decode_user,
    encode_user,
    open_redis,
    redis_errors,
)
from collab.registry.base import SessionRecord, SessionRegistry

_WHAT = "session registry"

_CLAIM = """
local old = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'replica', ARGV[2], 'socket', ARGV[3],
           'connected_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
redis.call('SADD', KEYS[3], ARGV[6])
return old
"""

_TOUCH = """
if redis.call('HGET', KEYS[1], 'socket') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
"""

# Add a note to the session's set; the set lives as long as the session hash.
_ADD_NOTE = """
redis.call('SADD', KEYS[2], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""

_FORGET = """
if redis.call('HGET', KEYS[1], 'socket') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""


class RedisSessionRegistry(SessionRegistry):
    def __init__(
        self, url: str, prefix: str = "collab", options: RedisClientOptions | None = None
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._options = options or RedisClientOptions()
        self._redis: aioredis.Redis | None = None

    @property
    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise Unavailable("session registry not started")
        return self._redis

    def _k(self, session: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:session:{session}"
        return base, base + ":notes", f"{self._prefix}:sessions"

    async def start(self) -> None:
        self._redis = open_redis(self._url, self._options, client_name="collab-registry")
        self._claim = self._redis.register_script(_CLAIM)
        self._touch = self._redis.register_script(_TOUCH)
        self._forget = self._redis.register_script(_FORGET)
        self._add_note = self._redis.register_script(_ADD_NOTE)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @staticmethod
    def _record(session: str, fields: dict[Any, Any]) -> SessionRecord | None:
        if not fields or "user" not in fields:
            return None
        return SessionRecord(
            session=session,
            user=decode_user(fields["user"]),
            replica=fields.get("replica", ""),
            socket=fields.get("socket", ""),
            connected_at=fields.get("connected_at", ""),
        )

    async def claim(self, record: SessionRecord, ttl_ms: int) -> SessionRecord | None:
        keys = self._k(record.session)
        args: list[str | int] = [encode_user(record.user), record.replica, record.socket,
                                 record.connected_at, ttl_ms, record.session]  # fmt: skip
        with redis_errors(_WHAT):
            old = await self._claim(keys=list(keys), args=args)
        pairs = dict(zip(old[::2], old[1::2], strict=True)) if old else {}
        return self._record(record.session, pairs)

    async def get(self, session: str) -> SessionRecord | None:
        with redis_errors(_WHAT):
            fields = await self._r.hgetall(self._k(session)[0])
        return self._record(session, fields)

    async def touch(self, session: str, socket: str, ttl_ms: int) -> bool:
        with redis_errors(_WHAT):
            return bool(await self._touch(keys=list(self._k(session)[:2]), args=[socket, ttl_ms]))

    async def forget(self, session: str, socket: str) -> None:
        with redis_errors(_WHAT):
            await self._forget(keys=list(self._k(session)), args=[socket, session])

    async def add_note(self, session: str, note_id: str) -> None:
        # One script, not PTTL + SADD + PEXPIRE: this runs on every grant.
        with redis_errors(_WHAT):
            await self._add_note(keys=list(self._k(session)[:2]), args=[note_id])

    async def remove_note(self, session: str, note_id: str) -> None:
        with redis_errors(_WHAT):
            await self._r.srem(self._k(session)[1], note_id)

    async def notes(self, session: str) -> set[str]:
        with redis_errors(_WHAT):
            return {str(n) for n in await self._r.smembers(self._k(session)[1])}

    async def sessions(self) -> list[SessionRecord]:
        index = f"{self._prefix}:sessions"
        with redis_errors(_WHAT):
            sids = sorted(str(x) for x in await self._r.smembers(index))
            # One round trip for every session's hash, not one per session.
            async with self._r.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.hgetall(self._k(sid)[0])
                found = await pipe.execute()
            records = [self._record(sid, fields) for sid, fields in zip(sids, found, strict=True)]
            expired = [sid for sid, record in zip(sids, records, strict=True) if record is None]
            if expired:
                await self._r.srem(index, *expired)
            return [record for record in records if record is not None]

    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        return [r for r in await self.sessions() if r.user.id == user_id]
