"""The socket admission contract, on Redis, on a Redis Cluster and on the
in-process twin: one atomic reservation per socket under a per-user limit,
renewed, released, and expiring with its TTL so a crashed replica never
locks a user out for good (docs/security.md, "Socket admission")."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.crc import key_slot

from collab.admission.redis import RedisSocketAdmission
from tests.admission.conftest import AdmissionEnv

TTL_MS = 1000  # real Redis waits this long; long enough for a loaded machine


async def test_admits_up_to_the_limit_and_a_held_socket_renews(admission: AdmissionEnv) -> None:
    store = admission.store
    assert await store.admit("u1", ["a", "b", "c"], 3, TTL_MS) == []
    assert await store.admit("u1", ["d"], 3, TTL_MS) == ["d"]
    # A socket already held is renewed, not counted twice, even at the limit.
    assert await store.admit("u1", ["b"], 3, TTL_MS) == []
    assert await store.count("u1") == 3
    # Other users have their own limit.
    assert await store.admit("u2", ["a"], 3, TTL_MS) == []
    assert await store.count("u2") == 1


async def test_one_call_refuses_in_order_past_the_limit(admission: AdmissionEnv) -> None:
    assert await admission.store.admit("u1", ["a", "b", "c", "d"], 2, TTL_MS) == ["c", "d"]
    assert await admission.store.count("u1") == 2


async def test_concurrent_admits_take_exactly_the_limit(admission: AdmissionEnv) -> None:
    """40 hellos at once against a limit of 20: a count made before any of
    them was added would admit all 40."""
    store = admission.store
    replies = await asyncio.gather(*(store.admit("u1", [f"s{i}"], 20, 5_000) for i in range(40)))
    assert sum(1 for refused in replies if not refused) == 20
    assert await store.count("u1") == 20


async def test_release_frees_a_slot_once(admission: AdmissionEnv) -> None:
    store = admission.store
    assert await store.admit("u1", ["a", "b"], 2, TTL_MS) == []
    await store.release("u1", "a")
    await store.release("u1", "a")  # nothing left to remove: no effect on others
    await store.release("u1", "never-held")
    assert await store.count("u1") == 1
    assert await store.admit("u1", ["c"], 2, TTL_MS) == []
    assert await store.admit("u1", ["d"], 2, TTL_MS) == ["d"]


async def test_reservations_expire_so_a_crashed_replica_locks_nobody_out(
    admission: AdmissionEnv,
) -> None:
    store = admission.store
    assert await store.admit("u1", ["dead1", "dead2"], 2, TTL_MS) == []
    assert await store.admit("u1", ["new"], 2, TTL_MS) == ["new"]
    await admission.advance(TTL_MS + 100)  # nobody renews: their replica died
    assert await store.count("u1") == 0
    assert await store.admit("u1", ["new"], 2, TTL_MS) == []


async def test_renewal_keeps_a_reservation_past_its_first_ttl(admission: AdmissionEnv) -> None:
    store = admission.store
    assert await store.admit("u1", ["kept", "lapsed"], 2, TTL_MS) == []
    for _ in range(3):
        await admission.advance(TTL_MS * 0.6)
        assert await store.admit("u1", ["kept"], 2, TTL_MS) == []
    assert await store.count("u1") == 1, "only the renewed socket is still counted"


async def test_a_lapsed_socket_is_not_renewed_over_the_limit(admission: AdmissionEnv) -> None:
    """A socket whose reservation lapsed gets it back only if there is room:
    renewing never takes the user over the limit."""
    store = admission.store
    assert await store.admit("u1", ["slow"], 1, TTL_MS) == []
    await admission.advance(TTL_MS + 100)
    assert await store.admit("u1", ["other"], 1, TTL_MS) == []
    assert await store.admit("u1", ["slow"], 1, TTL_MS) == ["slow"]


async def test_odd_user_ids_stay_apart(admission: AdmissionEnv) -> None:
    store = admission.store
    ids = ["u{1}", "{u1}", "u1}", "guest-0a1b2c3d4e5f", "~" + b"u{1}".hex()]
    for user in ids:
        assert await store.admit(user, ["s"], 1, TTL_MS) == []
    for user in ids:
        assert await store.count(user) == 1
        assert await store.admit(user, ["t"], 1, TTL_MS) == ["t"]


async def test_redis_keys_are_one_slot_per_user_and_expire(admission: AdmissionEnv) -> None:
    if admission.kind == "memory":
        return
    store = admission.store
    assert isinstance(store, RedisSocketAdmission)
    for user in ("u1", "u{1}", "{x}y"):
        key = store.key(user)
        tag = key[key.index("{") + 1 : key.index("}")]
        assert tag.startswith("u:"), key
        assert key_slot(key.encode()) == key_slot(f"{{{tag}}}".encode())
    if admission.kind == "cluster":
        return
    await store.admit("u1", ["a"], 2, TTL_MS)
    client = aioredis.Redis.from_url(admission.url)
    try:
        ttl = await client.pttl(store.key("u1"))
        assert 0 < ttl <= TTL_MS, "the key expires with its latest member"
        await asyncio.sleep((TTL_MS + 100) / 1000.0)
        assert await client.exists(store.key("u1")) == 0, "nothing is left behind"
    finally:
        await client.aclose()


async def test_a_batch_renews_and_refuses_per_user(admission: AdmissionEnv) -> None:
    """One round trip for a replica's renewal pass: each user's sockets are
    renewed or refused as ``admit`` would, whatever slots the users hash to."""
    store = admission.store
    users = [f"user-{i}" for i in range(30)]
    for user in users:
        assert await store.admit(user, ["a"], 2, TTL_MS) == []
    await admission.advance(TTL_MS * 0.6)
    replies = await store.admit_many([(u, ["a", "b", "c"]) for u in users], 2, TTL_MS)
    assert replies == [["c"]] * len(users)
    await admission.advance(TTL_MS * 0.6)  # past the first TTL: renewed, so still counted
    assert [await store.count(u) for u in users] == [2] * len(users)
    assert await store.admit_many([], 2, TTL_MS) == []


async def test_a_batch_survives_a_redis_that_forgot_its_scripts(admission: AdmissionEnv) -> None:
    if admission.kind != "redis":
        return
    client = aioredis.Redis.from_url(admission.url)
    try:
        await client.script_flush()  # as after a restart or a failover
    finally:
        await client.aclose()
    assert await admission.store.admit_many([("u1", ["a", "b"])], 1, TTL_MS) == [["b"]]
