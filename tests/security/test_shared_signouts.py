"""Sign-outs hold on every replica (collab/signouts.py): with Redis configured,
a token signed out, or a user's sessions ended by a kick, on one app instance
is refused by another at once; the entries expire with the tokens they
refuse. Embedded, the same rules hold in one process."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from collab.auth import Claims
from collab.redis_client import RedisClientOptions
from collab.signouts import ENDED, SIGNED_OUT, MemorySignOuts, RedisSignOuts, SignOuts
from collab.types import User
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.support.client import Api, WsClient
from tests.support.server import ServerProcess
from tests.support.services import redis_url


def _claims(user: str, token_id: str, issued_at: float) -> Claims:
    return Claims(User(user, "n", "user"), issued_at + 3600, token_id, issued_at, "", issued_at)


@pytest.fixture(params=["memory", "redis"])
async def signouts(request: pytest.FixtureRequest) -> AsyncIterator[SignOuts]:
    if request.param == "memory":
        made: SignOuts = MemorySignOuts(ttl_s=3600)
    else:
        made = RedisSignOuts(redis_url(), "t" + uuid.uuid4().hex[:8], 3600, RedisClientOptions())
    try:
        yield made
    finally:
        await made.close()


async def test_token_and_user_sign_outs(signouts: SignOuts) -> None:
    now = time.time()
    early = _claims("u1", "j1", now - 10)
    await signouts.sign_out(early)
    assert await signouts.refusal(early) == SIGNED_OUT
    assert await signouts.refusal(_claims("u1", "j2", now - 10)) is None
    await signouts.end_user_sessions("u1", at=now - 5)
    assert await signouts.refusal(_claims("u1", "j2", now - 10)) == ENDED
    assert await signouts.refusal(_claims("u1", "j3", now - 5)) == ENDED  # same moment
    assert await signouts.refusal(_claims("u1", "j4", now - 4)) is None  # issued after
    assert await signouts.refusal(_claims("u2", "j5", now - 10)) is None
    # An earlier cutoff never lowers a later one.
    await signouts.end_user_sessions("u1", at=now - 100)
    assert await signouts.refusal(_claims("u1", "j2", now - 10)) == ENDED


async def test_redis_entries_expire_with_what_they_refuse() -> None:
    prefix = "t" + uuid.uuid4().hex[:8]
    signouts = RedisSignOuts(redis_url(), prefix, 600, RedisClientOptions())
    try:
        now = time.time()
        await signouts.sign_out(_claims("u1", "j1", now + 100 - 3600))  # expires in 100 s
        await signouts.end_user_sessions("u1")
        token_ttl = await signouts.redis.ttl(f"{prefix}:signout:{{u1}}:t:j1")
        user_ttl = await signouts.redis.ttl(f"{prefix}:signout:{{u1}}:u")
        assert 100 < token_ttl <= 161, token_ttl  # the token's life plus the margin
        assert 600 < user_ttl <= 660, user_ttl  # COLLAB_JWT_TTL_S plus the margin
        await signouts.sign_out(_claims("u1", "j2", now - 5000))  # long expired: nothing kept
        assert await signouts.redis.exists(f"{prefix}:signout:{{u1}}:t:j2") == 0
    finally:
        await signouts.close()


@pytest.mark.parametrize("backend_env", ["distributed"], indirect=True)
async def test_sign_outs_hold_across_replicas(
    backend_env: Callable[..., dict[str, str]],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    a = spawn_server(backend_env(), name="ra")
    b = spawn_server(backend_env(), name="rb")
    user = await Api.register(a.url)
    login = {"username": user.user["name"], "password": "pw-123456789"}
    other = Api(b.url, (await user.ok("POST", "/api/auth/login", login))["token"])
    on_b = Api(b.url, user.token)
    assert (await on_b.call("GET", "/api/me")).status_code == 200
    # Signed out on A: refused by B at once; the user's other token still works.
    assert (await user.call("POST", "/api/auth/logout")).status_code == 204
    gone = await on_b.call("GET", "/api/me")
    assert gone.status_code == 401 and gone.json()["error"]["message"] == SIGNED_OUT
    assert (await other.call("GET", "/api/me")).status_code == 200

    # Kicked through A while connected to B: the socket on B closes, and the
    # same token is refused by B at hello and over HTTP.
    admin = Api(a.url)
    admin_login = {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
    admin.token = (await admin.ok("POST", "/api/auth/login", admin_login))["token"]
    ws = await WsClient.signed_in(b.ws_url, other.token)
    try:
        await admin.ok("POST", f"/api/admin/sessions/{ws.welcome['session']}/kick")
        assert (await ws.wait_closed())[0] == 4403
    finally:
        await ws.close()
    again = await WsClient.connect(b.ws_url)
    try:
        reply = await again.hello(other.token or "")
        assert reply["code"] == "unauthorized" and reply["message"] == ENDED, reply
    finally:
        await again.close()
    assert (await other.call("GET", "/api/me")).status_code == 401


async def test_sign_outs_work_on_a_redis_cluster() -> None:
    """Both keys of a user share a hash slot: one MGET reads them on a
    cluster (users chosen to land on different masters)."""
    from tests.redis_modes.topology import CLUSTER_OPTIONS, ClusterSetup

    setup = ClusterSetup().start()
    signouts = RedisSignOuts(setup.url, "cl", 600, CLUSTER_OPTIONS)
    try:
        now = time.time()
        for user in ("ann", "bob", "cy", "dee"):
            out = _claims(user, "j-" + user, now - 10)
            await signouts.sign_out(out)
            assert await signouts.refusal(out) == SIGNED_OUT
            await signouts.end_user_sessions(user, at=now - 5)
            assert await signouts.refusal(_claims(user, "k", now - 6)) == ENDED
            assert await signouts.refusal(_claims(user, "k", now)) is None
    finally:
        await signouts.close()
        setup.stop()
