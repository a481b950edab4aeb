"""Shared by the lease, presence and bus suites: unique Redis key prefixes
(so tests never see each other's keys on the shared server), their cleanup,
and a fake millisecond clock for the memory twins."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from collab.types import User

ALICE = User("u-alice", "Alice", "user")
BOB = User("u-bob", "Bob", "user")
CAROL = User("u-carol", "Carol", "admin")
DAVE = User("u-dave", "Dave", "user")


def unique_prefix() -> str:
    return "ct" + uuid.uuid4().hex[:12]


async def delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class FakeClock:
    """Milliseconds since the epoch that only move when told to."""

    def __init__(self, start_ms: float = 1_700_000_000_000.0) -> None:
        self.now_ms = start_ms

    def __call__(self) -> float:
        return self.now_ms

    def advance(self, ms: float) -> None:
        self.now_ms += ms
