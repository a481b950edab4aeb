"""JWT issue/verify and password hashing."""

from __future__ import annotations

import time

import jwt
import pytest

from collab.auth import LoginThrottle, TokenCodec, hash_password, verify_password
from collab.errors import RateLimited, TokenExpired, Unauthorized
from collab.settings import Settings
from collab.types import User

SECRET = "unit-test-secret-0123456789-0123456789"
CODEC = TokenCodec(Settings.from_env({"COLLAB_JWT_SECRET": SECRET}))
ALICE = User("u1", "alice", "user")


def test_roundtrip() -> None:
    token, exp = CODEC.issue(ALICE)
    claims = CODEC.verify(token)
    assert claims.user == ALICE and exp > time.time()


def test_expired() -> None:
    token, _ = CODEC.issue(ALICE, now=time.time() - 7200)
    with pytest.raises(TokenExpired):
        CODEC.verify(token)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: jwt.encode(c, "x" * 40, algorithm="HS256"),
        lambda c: jwt.encode({**c, "aud": "other"}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode({**c, "iss": "other"}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode({**c, "role": "root"}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "exp"}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode(c, None, algorithm="none"),
    ],
)
def test_forgeries(mutate) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {
        "sub": "u1",
        "name": "a",
        "role": "user",
        "iss": "collab",
        "aud": "collab",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }
    with pytest.raises(Unauthorized):
        CODEC.verify(mutate(claims))


def test_password_hash() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse") and not verify_password(h, "wrong")
    assert not verify_password(None, "anything")


def test_login_throttle_is_temporary() -> None:
    throttle = LoginThrottle(max_failures=2, lockout_s=10)
    throttle.failed(["k"], 0.0)
    throttle.failed(["k"], 1.0)
    with pytest.raises(RateLimited):
        throttle.check(["k"], 2.0)
    throttle.check(["k"], 11.5)  # lockout over
