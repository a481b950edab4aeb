"""Sign-in defences observed from inside the process (Starlette's TestClient
on embedded SQLite): argon2 never runs on the event loop's thread, and the
per-address budgets refuse before any hashing; the hash queue is bounded; a
refresh chain cannot outlive COLLAB_SESSION_MAX_AGE_S; a password change ends
the account's other sessions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from collab import auth
from collab.app import create_app
from collab.errors import RateLimited
from collab.settings import Settings

SECRET = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"
PASSWORD = "pw-123456789"


def _on_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every argon2 hash and verification, with whether it ran on a thread
    that is running an event loop."""
    calls: list[tuple[str, bool]] = []
    real_hash, real_verify = auth.hash_password, auth.verify_password

    def spy_hash(password: str) -> str:
        calls.append(("hash", _on_loop_thread()))
        return real_hash(password)

    def spy_verify(password_hash: str | None, password: str) -> bool:
        calls.append(("verify", _on_loop_thread()))
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "hash_password", spy_hash)
    monkeypatch.setattr(auth, "verify_password", spy_verify)
    return calls


def _client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(sqlite_path=str(tmp_path / "c.db"), jwt_secret=SECRET, **overrides)
    return TestClient(create_app(settings))


def test_budgets_refuse_before_hashing_and_hashing_is_off_the_loop(
    tmp_path: Path, hash_calls: list[tuple[str, bool]]
) -> None:
    tight = dict(
        register_burst_per_ip=3, register_per_ip_per_min=0.001,
        login_burst_per_ip=4, login_per_ip_per_min=0.001,
        guest_burst_per_ip=2, guest_per_ip_per_min=0.001,
    )  # fmt: skip
    with _client(tmp_path, **tight) as client:
        statuses = [
            client.post(
                "/api/auth/register", json={"username": f"u{i}", "password": PASSWORD}
            ).status_code
            for i in range(6)
        ]
        assert statuses == [201] * 3 + [429] * 3, statuses
        assert [kind for kind, _ in hash_calls] == ["hash"] * 3, "refusals hashed nothing"

        wrong = {"username": "u0", "password": "not-the-password"}
        statuses = [client.post("/api/auth/login", json=wrong).status_code for _ in range(6)]
        assert statuses == [401] * 4 + [429] * 2, statuses
        assert [kind for kind, _ in hash_calls].count("verify") == 4

        guests = [client.post("/api/auth/guest").status_code for _ in range(4)]
        assert guests == [200, 200, 429, 429]
    assert hash_calls and not any(on_loop for _, on_loop in hash_calls), hash_calls


async def test_the_hash_queue_is_bounded() -> None:
    pool = auth.HashPool(workers=1, queue_max=1)
    gate = threading.Event()
    try:
        first = asyncio.ensure_future(pool._run(gate.wait, 5))
        second = asyncio.ensure_future(pool._run(gate.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(RateLimited):
            await pool.hash(PASSWORD)
        assert pool.refused == 1
        gate.set()
        assert await first and await second
        assert pool.pending == 0
    finally:
        gate.set()
        pool.close()


@pytest.fixture
def signed_in(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with _client(tmp_path, session_max_age_s=3600, jwt_ttl_s=3600) as client:
        reply = client.post("/api/auth/register", json={"username": "ann", "password": PASSWORD})
        assert reply.status_code == 201
        yield client, reply.json()


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_refresh_chain_ends_with_the_session(
    signed_in: tuple[TestClient, dict[str, Any]],
) -> None:
    client, reply = signed_in
    user = reply["user"]
    now = int(time.time())
    claims = {
        "sub": user["id"], "name": user["name"], "role": "user", "iss": "collab",
        "aud": "collab", "iat": now, "nbf": now - 1, "exp": now + 600, "jti": "j1",
    }  # fmt: skip
    # Signed in 3590 s ago: a refresh still works and keeps the sign-in time.
    late = jwt.encode({**claims, "auth_time": now - 3590}, SECRET, algorithm="HS256")
    fresh = client.post("/api/auth/refresh", headers=_bearer(late))
    assert fresh.status_code == 200
    renewed = jwt.decode(fresh.json()["token"], options={"verify_signature": False})
    assert renewed["auth_time"] == now - 3590
    # Signed in longer ago than COLLAB_SESSION_MAX_AGE_S: refused everywhere.
    old = jwt.encode({**claims, "auth_time": now - 3700}, SECRET, algorithm="HS256")
    assert client.post("/api/auth/refresh", headers=_bearer(old)).status_code == 401
    assert client.get("/api/me", headers=_bearer(old)).status_code == 401


def test_logout_signs_the_token_out(signed_in: tuple[TestClient, dict[str, Any]]) -> None:
    client, reply = signed_in
    other = client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
    assert client.post("/api/auth/logout", headers=_bearer(reply["token"])).status_code == 204
    assert client.get("/api/me", headers=_bearer(reply["token"])).status_code == 401
    assert client.post("/api/auth/refresh", headers=_bearer(reply["token"])).status_code == 401
    assert client.get("/api/me", headers=_bearer(other.json()["token"])).status_code == 200


def test_the_password_route_is_served_and_documented(
    signed_in: tuple[TestClient, dict[str, Any]],
) -> None:
    client, reply = signed_in
    change = {"current_password": "not-it-at-all", "new_password": "a-new-password-42"}
    r = client.post("/api/auth/password", json=change, headers=_bearer(reply["token"]))
    assert r.status_code == 403  # served: a wrong current password, not a 404
    assert "/api/auth/password" in client.get("/api/openapi.json").json()["paths"]


def test_password_change_ends_the_other_sessions(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        reply = client.post("/api/auth/register", json={"username": "ann", "password": PASSWORD})
        mine = reply.json()["token"]
        elsewhere = client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
        other = elsewhere.json()["token"]
        assert client.get("/api/me", headers=_bearer(other)).status_code == 200

        change = {"current_password": PASSWORD, "new_password": "a-new-password-42"}
        wrong = {**change, "current_password": "not-it-at-all"}
        refused = client.post("/api/auth/password", json=wrong, headers=_bearer(mine))
        assert refused.status_code == 403
        done = client.post("/api/auth/password", json=change, headers=_bearer(mine))
        assert done.status_code == 200, done.text
        new_token = done.json()["token"]
        assert client.get("/api/me", headers=_bearer(other)).status_code == 401, "other ended"
        assert client.get("/api/me", headers=_bearer(mine)).status_code == 401, "so did this one"
        assert client.get("/api/me", headers=_bearer(new_token)).status_code == 200
        old_login = {"username": "ann", "password": PASSWORD}
        assert client.post("/api/auth/login", json=old_login).status_code == 401
        new_login = {"username": "ann", "password": "a-new-password-42"}
        assert client.post("/api/auth/login", json=new_login).status_code == 200
