"""Write-token leases in Redis: one Lua script per operation (``scripts.py``),
Redis ``TIME`` for every deadline, and epoch keys plus the identity of every
server holding the data to notice Redis losing it (rule 8).

Every script touches the keys of one note only, all under the note's hash tag
(rule 11), so the same scripts run on one server, behind Sentinel and on a
Redis Cluster. Data loss is judged per server: on a cluster each master has
its own epoch key (in a slot it serves) and its own identity, so a failover or
restart of any shard voids every lease, as one server's does (see
``collab/redis_client.py``, ``server_marks`` and ``epoch_keys``)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from collab.clock import iso_from_epoch_ms
from collab.leases import scripts
from collab.leases.base import AcquireResult, LeaseStore, LeaseView, QueueView
from collab.leases.keys import LeaseKeys
from collab.redis_client import (
    EPOCH_MARK,
    RedisClientOptions,
    check_session,
    decode_user,
    encode_user,
    epoch_keys,
    lost_data,
    open_redis,
    redis_errors,
    server_marks,
)
from collab.types import User

_WHAT = "lease store"
_KINDS = {scripts.GRANTED: "granted", scripts.QUEUED: "queued", scripts.LOCKED: "locked"}


class RedisLeaseStore(LeaseStore):
    """Leases of all notes under ``prefix`` in the Redis at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_ms: int,
        lock_delay_ms: int,
        options: RedisClientOptions | None = None,
    ) -> None:
        if ttl_ms <= 0 or lock_delay_ms < 0:
            raise ValueError("ttl_ms must be positive and lock_delay_ms not negative")
        self.ttl_ms = ttl_ms
        self.lock_delay_ms = lock_delay_ms
        self.prefix = prefix
        self.timeline_key = f"{prefix}:db-timeline"
        self._redis = open_redis(url, options or RedisClientOptions())
        self._scripts = {
            name: self._redis.register_script(getattr(scripts, name))
            for name in (
                "ACQUIRE",
                "RENEW",
                "RELEASE",
                "LEAVE_QUEUE",
                "RENEW_WAITER",
                "REVOKE",
                "RAISE_FENCE",
                "VIEW",
                "GRANTABLE_IN",
                "GIVE_BACK",
                "HOLD_BACK",
                "FORGET_NOTE",
                "RECORD_TIMELINE",
            )
        }
        self._marks: dict[str, str] = {}
        self._epoch_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        with redis_errors(_WHAT):
            for script in self._scripts.values():
                await self._redis.script_load(script.script)
            self._marks = await self._read_marks()

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        with redis_errors(_WHAT):
            await self._redis.ping()

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        # redis-py's Script re-sends the source on NOSCRIPT, so a restarted
        # Redis that lost its script cache is handled transparently.
        with redis_errors(_WHAT):
            return await self._scripts[name](keys=keys, args=args)

    # -- the token ---------------------------------------------------------
    async def try_acquire(
        self, note_id: str, session: str, user: User, wait: bool
    ) -> AcquireResult:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        kind, fence, position, already = await self._run(
            "ACQUIRE",
            [k.lease, k.fence, k.holder, k.last, k.queue, k.qseq],
            [
                session,
                user.id,
                encode_user(user),
                self.ttl_ms,
                self.lock_delay_ms,
                1 if wait else 0,
                k.waiter_prefix,
            ],
        )
        return AcquireResult(
            kind=_KINDS[int(kind)],  # type: ignore[arg-type]
            fence=int(fence),
            position=int(position),
            already=bool(already),
        )

    async def raise_fence(self, note_id: str, at_least: int) -> int:
        k = LeaseKeys.of(self.prefix, note_id)
        return int(await self._run("RAISE_FENCE", [k.fence], [int(at_least)]))

    async def fence_counter(self, note_id: str) -> int:
        k = LeaseKeys.of(self.prefix, note_id)
        with redis_errors(_WHAT):
            value = await self._redis.get(k.fence)
        return int(value or 0)

    async def renew(self, note_id: str, session: str, fence: int) -> bool:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        ok = await self._run(
            "RENEW", [k.lease, k.holder, k.last], [session, fence, self.ttl_ms, self.lock_delay_ms]
        )
        return bool(ok)

    async def renew_waiter(self, note_id: str, session: str) -> int:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        position = await self._run(
            "RENEW_WAITER", [k.queue, k.waiter(session)], [session, self.ttl_ms, k.waiter_prefix]
        )
        return int(position)

    async def release(self, note_id: str, session: str, fence: int) -> bool:
        return await self._clean_end(note_id, session, fence)

    async def drop(self, note_id: str, session: str, fence: int) -> bool:
        return await self._clean_end(note_id, session, fence)

    async def _clean_end(self, note_id: str, session: str, fence: int) -> bool:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        ok = await self._run(
            "RELEASE", [k.lease, k.holder, k.last, k.queue, k.waiter(session)], [session, fence]
        )
        return bool(ok)

    async def give_back(self, note_id: str, session: str, fence: int, user: User) -> None:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        await self._run(
            "GIVE_BACK",
            [k.lease, k.holder, k.last, k.queue, k.waiter(session)],
            [session, fence, encode_user(user), self.ttl_ms],
        )

    async def hold_back(self, note_id: str, pause_ms: int) -> None:
        k = LeaseKeys.of(self.prefix, note_id)
        await self._run("HOLD_BACK", [k.last], [int(pause_ms), self.lock_delay_ms])

    async def forget_note(self, note_id: str) -> None:
        k = LeaseKeys.of(self.prefix, note_id)
        keys = [k.lease, k.fence, k.holder, k.last, k.queue, k.qseq]
        await self._run("FORGET_NOTE", keys, [k.waiter_prefix])

    async def record_timeline(self, seen: int) -> int:
        return int(await self._run("RECORD_TIMELINE", [self.timeline_key], [int(seen)]))

    async def leave_queue(self, note_id: str, session: str) -> bool:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        return bool(await self._run("LEAVE_QUEUE", [k.queue, k.waiter(session)], [session]))

    async def revoke(self, note_id: str) -> int:
        k = LeaseKeys.of(self.prefix, note_id)
        keys = [k.lease, k.fence, k.holder, k.last]
        return int(await self._run("REVOKE", keys, [self.lock_delay_ms]))

    async def view(self, note_id: str) -> LeaseView | QueueView:
        k = LeaseKeys.of(self.prefix, note_id)
        reply = await self._run("VIEW", [k.lease, k.holder, k.queue], [k.waiter_prefix])
        value, pttl, h_session, h_user, h_since = reply[:5]
        pairs = reply[5:]
        queue = tuple(
            (pairs[i], decode_user(pairs[i + 1])) for i in range(0, len(pairs), 2) if pairs[i + 1]
        )
        if not value:
            return QueueView(queue=queue)
        # Session ids hold no ':' (check_session), so parse from the right.
        owner_part, _, fence_text = value.rpartition(":")
        user_id, _, session = owner_part.rpartition(":")
        since = ""
        if h_session == session and h_user:
            # The holder hash is written with the lease (same script, same TTL).
            holder = decode_user(h_user)
            since = iso_from_epoch_ms(float(h_since)) if h_since else ""
        else:
            holder = User(id=user_id, name="", role="user")
        return LeaseView(
            holder=holder,
            session=session,
            fence=int(fence_text),
            since=since,
            ttl_ms=max(int(pttl), 0),
            queue=queue,
        )

    async def grantable_in_ms(self, note_id: str, session: str) -> int:
        k = LeaseKeys.of(self.prefix, note_id)
        check_session(session)
        return int(
            await self._run("GRANTABLE_IN", [k.lease, k.last], [session, self.lock_delay_ms])
        )

    # -- data loss (rule 8) --------------------------------------------------
    async def check_epoch(self) -> bool:
        async with self._epoch_lock:
            with redis_errors(_WHAT):
                marks = await self._read_marks()
            lost = lost_data(self._marks, marks)
            self._marks = marks
            return lost

    async def _read_marks(self) -> dict[str, str]:
        """The identity of every server holding the data and the value of
        every epoch key, creating a missing one. NX: every replica adopts the
        first value written, so one replica's start or recovery does not look
        like data loss to the others."""
        marks = await server_marks(self._redis)
        for key in epoch_keys(self._redis, self.prefix):
            await self._redis.set(key, secrets.token_hex(16), nx=True)
            marks[EPOCH_MARK + key] = str(await self._redis.get(key))
        return marks
