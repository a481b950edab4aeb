"""Login brakes with growing lockouts, the budgets checked before hashing,
signed-out tokens, the absolute session lifetime, the password fingerprint
and the WebSocket origin rule, driven by a fake clock where time matters."""

from __future__ import annotations

import time

import pytest

from collab.auth import LoginThrottle, TokenCodec, TokenDenylist
from collab.errors import RateLimited
from collab.protocol import AuthBudgets, origin_allowed
from collab.settings import Settings
from collab.types import User

SECRET = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"
ALICE = User("u1", "alice", "user")


def _locked_for(throttle: LoginThrottle, key: str, now: float) -> float:
    with pytest.raises(RateLimited) as info:
        throttle.check([key], now)
    return float(info.value.extra["retry_after_s"])


def test_account_lockouts_double_up_to_the_cap_and_reset_after_quiet() -> None:
    brake = LoginThrottle(max_failures=3, lockout_s=10, growth=2.0, max_lockout_s=35)
    now = 0.0
    lengths = []
    for _ in range(4):
        for _ in range(3):
            brake.check(["acct"], now)
            brake.failed(["acct"], now)
        lengths.append(_locked_for(brake, "acct", now))
        now += lengths[-1] + 0.1
    assert lengths == [10.0, 20.0, 35.0, 35.0], "doubling, capped"
    now += 35 + 10 + 1  # a quiet spell as long as the cap plus a window
    for _ in range(3):
        brake.failed(["acct"], now)
    assert _locked_for(brake, "acct", now) == 10.0, "starts over"


def test_plain_throttle_keeps_a_fixed_lockout() -> None:
    brake = LoginThrottle(max_failures=2, lockout_s=10)
    for round_start in (0.0, 20.0, 40.0):
        brake.failed(["k"], round_start)
        brake.failed(["k"], round_start + 1)
        assert _locked_for(brake, "k", round_start + 1) == 10.0
    brake.succeeded(["k"])
    brake.check(["k"], 41.0)


def test_auth_budgets_per_address_then_global() -> None:
    budgets = AuthBudgets.per_minute(per_ip_per_min=60, burst_per_ip=2, per_min=60, burst=3)
    assert budgets.take("a", 0.0) and budgets.take("a", 0.0)
    assert not budgets.take("a", 0.0), "the address's burst is spent"
    assert budgets.take("b", 0.0)
    assert not budgets.take("c", 0.0), "the global burst is spent"
    assert budgets.take("c", 1.0), "one a second comes back"


def test_denylist_keeps_entries_until_they_expire() -> None:
    deny = TokenDenylist(max_entries=4)
    deny.add("t1", expires_at=100.0, now=0.0)
    deny.add("gone", expires_at=5.0, now=10.0)  # already expired: nothing to keep
    assert "t1" in deny and "gone" not in deny
    for i in range(10):
        deny.add(f"x{i}", expires_at=200.0 + i, now=50.0)
    assert len(deny.entries) <= 4 and "x9" in deny


def _codec(**env: str) -> TokenCodec:
    return TokenCodec(Settings.from_env({"COLLAB_JWT_SECRET": SECRET, **env}))


def test_session_age_is_carried_through_refresh_and_bounded() -> None:
    codec = _codec(COLLAB_SESSION_MAX_AGE_S="7200", COLLAB_JWT_TTL_S="3600")
    now = time.time()
    token, _ = codec.issue(ALICE, now=now - 3000, auth_time=now - 5000)
    claims = codec.verify(token)
    assert claims.auth_time == int(now - 5000) and not codec.session_expired(claims)
    # A refresh late in the session keeps the sign-in time.
    token, _ = codec.issue(ALICE, now=now, auth_time=claims.auth_time)
    assert codec.verify(token).auth_time == claims.auth_time
    old = codec.verify(codec.issue(ALICE, now=now - 60, auth_time=now - 7150)[0])
    assert not codec.session_expired(old, now=now)
    assert codec.session_expired(old, now=now + 100)


def test_password_fingerprint_changes_with_the_hash_and_hides_it() -> None:
    codec = _codec()
    one, two = codec.password_version("$argon2id$one"), codec.password_version("$argon2id$two")
    assert one and one != two and "argon2" not in one and len(one) == 16
    token, _ = codec.issue(ALICE, password_version=one)
    assert codec.verify(token).password_version == one
    assert codec.password_version(None) == ""


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "notes.example.com", frozenset(), True),  # not a browser
        ("https://notes.example.com", "notes.example.com", frozenset(), True),
        ("http://localhost:8080", "localhost:8080", frozenset(), True),
        ("http://localhost:8080", "localhost:8000", frozenset(), False),
        ("https://evil.example", "notes.example.com", frozenset(), False),
        ("null", "notes.example.com", frozenset(), False),
        ("https://notes.example.com.evil.example", "notes.example.com", frozenset(), False),
        ("http://localhost:5173", "localhost:8000", frozenset({"http://localhost:5173"}), True),
        ("HTTPS://App.Example:443", "api.example", frozenset({"https://app.example"}), True),
        ("http://[::1]:8000", "[::1]:8000", frozenset(), True),
        ("https://notes.example.com", None, frozenset(), False),
    ],
)
def test_websocket_origin_rule(
    origin: str | None, host: str | None, allowed: frozenset[str], ok: bool
) -> None:
    assert origin_allowed(origin, host, allowed) is ok
