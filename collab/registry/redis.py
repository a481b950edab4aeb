"""Session registry in Redis.

Keys: ``<prefix>:session:{<sid>}`` (hash: user json, replica, socket,
connected_at; PX ttl), ``<prefix>:session:{<sid>}:notes`` (set of note ids,
same ttl), ``<prefix>:sessions`` (set of sids; members whose hash expired are
pruned on read). Claim and touch are compare-socket Lua scripts so a stale
socket cannot steal back a session that moved (rule 9).

The scripts touch the two keys of one session, which share the hash tag
``{<sid>}`` (one Redis Cluster slot, rule 11; whatever the id holds, both keys
begin with the same ``{`` and so carry the same tag). The index is a hint kept
outside them: a session joins it before its claim and leaves it after its
record is gone, and a member without a record is pruned when read, so the
record alone decides who owns a session. Scripts cannot keep the index exact
across two slots, so it is made to err on the side of listing too much: a
claim adds the session before and again after writing its record (a pruning
read that ran in between cannot drop it for good), and forgetting a session
leaves its member to be pruned. What the index serves (the admin listing,
finding a user's sessions when their access changes) does not decide safety:
a holder who lost access is fenced at its next refused edit and on every
reconcile tick (docs/design.md, rule 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collab.errors import Unavailable
from collab.redis_client import (
    RedisClient,
    RedisClientOptions,
    decode_user,
    encode_user,
    open_redis,
    redis_errors,
    run_script_many,
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
return 1
"""


class RedisSessionRegistry(SessionRegistry):
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
            raise Unavailable("session registry not started")
        return self._redis

    def _k(self, session: str) -> tuple[str, str]:
        """The session's record and note set (one slot: the tag ``{sid}``)."""
        base = f"{self._prefix}:session:{{{session}}}"
        return base, base + ":notes"

    @property
    def _index(self) -> str:
        return f"{self._prefix}:sessions"

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
                                 record.connected_at, ttl_ms]  # fmt: skip
        with redis_errors(_WHAT):
            # Indexed first: a claim that then fails leaves a member without
            # a record, pruned on read; never a record nobody can list.
            await self._r.sadd(self._index, record.session)
            old = await self._claim(keys=list(keys), args=args)
            await self._r.sadd(self._index, record.session)
        pairs = dict(zip(old[::2], old[1::2], strict=True)) if old else {}
        return self._record(record.session, pairs)

    async def get(self, session: str) -> SessionRecord | None:
        with redis_errors(_WHAT):
            fields = await self._r.hgetall(self._k(session)[0])
        return self._record(session, fields)

    async def touch(self, session: str, socket: str, ttl_ms: int) -> bool:
        with redis_errors(_WHAT):
            return bool(await self._touch(keys=list(self._k(session)), args=[socket, ttl_ms]))

    async def touch_many(self, touches: Sequence[tuple[str, str, int]]) -> list[bool | Exception]:
        calls = [(self._k(session), [socket, ttl_ms]) for session, socket, ttl_ms in touches]
        with redis_errors(_WHAT):
            replies = await run_script_many(self._r, self._touch, calls)
        return [r if isinstance(r, Exception) else bool(r) for r in replies]

    async def forget(self, session: str, socket: str) -> None:
        with redis_errors(_WHAT):
            # The index member stays until a read prunes it: removing it here
            # could undo a claim made on another replica meanwhile.
            await self._forget(keys=list(self._k(session)), args=[socket])

    async def add_note(self, session: str, note_id: str) -> None:
        # One script, not PTTL + SADD + PEXPIRE: this runs on every grant.
        with redis_errors(_WHAT):
            await self._add_note(keys=list(self._k(session)), args=[note_id])

    async def remove_note(self, session: str, note_id: str) -> None:
        with redis_errors(_WHAT):
            await self._r.srem(self._k(session)[1], note_id)

    async def notes(self, session: str) -> set[str]:
        with redis_errors(_WHAT):
            return {str(n) for n in await self._r.smembers(self._k(session)[1])}

    async def sessions(self) -> list[SessionRecord]:
        index = self._index
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
