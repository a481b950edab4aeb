"""Auth attacks not covered by tests/ws/test_hostile.py and tests/api/test_roles.py:
HS/RS algorithm confusion, a guest on every write path (HTTP and WebSocket),
a user reaching another user's private note by id, sync, revisions and
``resume``, and brute-force login throttled per IP without a lasting lockout."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

LOCKOUT_S = 4.0  # also the window failures are counted in: all PER_IP fit in it
PER_IP = 4


@pytest.fixture(scope="module")
def server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        env=backend_env(
            COLLAB_LOGIN_MAX_FAILURES_PER_IP=str(PER_IP),
            COLLAB_LOGIN_LOCKOUT_S=str(LOCKOUT_S),
        ),
        name="authattack",
    ).start()
    yield proc
    proc.stop(5)


def _claims(user_id: str, role: str = "user") -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "name": "x", "role": role, "iss": "collab", "aud": "collab",
            "iat": now, "nbf": now, "exp": now + 600}  # fmt: skip


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_with_key(claims: dict[str, Any], key: bytes) -> str:
    """Sign by hand: pyjwt itself refuses a PEM public key as an HMAC secret,
    which is exactly the key an HS/RS confusion attacker would use."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


async def _refused_everywhere(server: ServerProcess, token: str, label: str) -> None:
    r = await Api(server.url, token).call("GET", "/api/me")
    assert r.status_code == 401, f"{label}: HTTP {r.status_code}"
    ws = await WsClient.connect(server.ws_url)
    await ws.send({"type": "hello", "rid": 1, "token": token})
    err = await ws.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == "unauthorized", label
    assert (await ws.wait_closed())[0] == 4401, label


async def test_hs_rs_algorithm_confusion(server: ServerProcess) -> None:
    victim = await Api.register(server.url)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = _claims(victim.user["id"], role="admin")
    rs256 = jwt.encode(claims, key, algorithm="RS256")
    await _refused_everywhere(server, rs256, "RS256 with an attacker key")
    await _refused_everywhere(server, _hs256_with_key(claims, public_pem), "HS256 keyed by PEM")
    # The RS256 token carrying its own key in the header (jwk injection).
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    injected = jwt.encode(claims, key, algorithm="RS256", headers={"jwk": jwk})
    await _refused_everywhere(server, injected, "RS256 with an embedded jwk")


async def _guest(server: ServerProcess) -> Api:
    guest = Api(server.url)
    guest.token = (await guest.ok("POST", "/api/auth/guest"))["token"]
    return guest


async def test_guest_is_refused_on_every_http_write(server: ServerProcess) -> None:
    owner = await Api.register(server.url)
    public = (await owner.ok("POST", "/api/notes", {"title": "pub", "visibility": "public"},
                             status=201))["id"]  # fmt: skip
    guest = await _guest(server)
    assert (await guest.ok("GET", f"/api/notes/{public}"))["access"] == "read"
    uid = owner.user["id"]
    writes = [
        ("POST", "/api/notes", {"title": "mine"}),
        ("PATCH", f"/api/notes/{public}", {"title": "defaced"}),
        ("PATCH", f"/api/notes/{public}", {"visibility": "private"}),
        ("DELETE", f"/api/notes/{public}", None),
        ("PUT", f"/api/notes/{public}/access/{uid}", {"access": "write"}),
        ("DELETE", f"/api/notes/{public}/access/{uid}", None),
        ("PATCH", f"/api/admin/users/{uid}", {"role": "admin"}),
        ("POST", f"/api/admin/notes/{public}/revoke", None),
        ("POST", "/api/admin/sessions/whatever/kick", None),
    ]
    for method, path, payload in writes:
        r = await guest.call(method, path, payload)
        assert r.status_code == 403, f"guest {method} {path}: {r.status_code} {r.text}"
    note = await owner.ok("GET", f"/api/notes/{public}")
    assert (note["title"], note["visibility"]) == ("pub", "public")


async def test_guest_is_refused_on_every_ws_write(server: ServerProcess) -> None:
    owner = await Api.register(server.url)
    body = {"title": "pub", "visibility": "public", "content": "keep"}
    public = (await owner.ok("POST", "/api/notes", body, status=201))["id"]
    holder = await WsClient.connect(server.ws_url)
    await holder.hello(owner.token or "")
    fence = (await holder.request("acquire", note=public))["fence"]

    guest_ws = await WsClient.connect(server.ws_url)
    await guest_ws.hello((await _guest(server)).token or "")
    assert guest_ws.welcome["user"]["role"] == "guest"
    assert (await guest_ws.request("subscribe", note=public))["access"] == "read"
    for kind, fields in [
        ("acquire", {"wait": False}),
        ("acquire", {"wait": True}),
        ("edit", {"fence": fence, "base": 0, "op": new_op(), "content": "pwned"}),
        ("edit", {"fence": fence, "base": 0, "op": new_op(),
                  "changes": [{"at": 0, "del": 4, "ins": "x"}]}),
        ("revoke", {}),
    ]:  # fmt: skip
        reply = await guest_ws.request(kind, note=public, **fields)
        assert (reply["type"], reply.get("code")) == ("error", "forbidden"), (kind, reply)
    # A release naming the holder's fence is a compare-owner delete: no effect.
    await guest_ws.request("release", note=public, fence=fence)
    ack = await holder.request("edit", note=public, fence=fence, base=0, op=new_op(), content="ok")
    assert ack["type"] == "ack", "the holder kept the token"
    assert (await owner.ok("GET", f"/api/notes/{public}"))["content"] == "ok"
    await guest_ws.close()
    await holder.close()


async def test_private_note_is_unreachable_for_another_user(server: ServerProcess) -> None:
    secret = "the-private-text-" + new_op()
    owner, other = await Api.register(server.url), await Api.register(server.url)
    note = (await owner.ok("POST", "/api/notes", {"title": "diary", "content": secret},
                           status=201))["id"]  # fmt: skip
    ows = await WsClient.connect(server.ws_url)
    await ows.hello(owner.token or "")
    await ows.request("subscribe", note=note)
    fence = (await ows.request("acquire", note=note))["fence"]
    for v in range(3):
        ack = await ows.request("edit", note=note, fence=fence, base=v, op=new_op(),
                                content=f"{secret}-{v}")  # fmt: skip
        assert ack["type"] == "ack"
    # By id and through revisions over HTTP.
    for path in [f"/api/notes/{note}", f"/api/notes/{note}/revisions",
                 f"/api/notes/{note}/revisions/0", f"/api/notes/{note}/revisions/2",
                 f"/api/notes/{note}/access"]:  # fmt: skip
        r = await other.call("GET", path)
        assert r.status_code == 403 and secret not in r.text, (path, r.status_code)
    assert note not in {n["id"] for n in (await other.ok("GET", "/api/notes"))["notes"]}
    # Through subscribe and sync over WebSocket.
    xws = await WsClient.connect(server.ws_url)
    await xws.hello(other.token or "")
    for kind, fields in [("subscribe", {}), ("sync", {"since": 0}), ("sync", {"since": 2})]:
        reply = await xws.request(kind, note=note, **fields)
        assert reply.get("code") == "forbidden", (kind, reply)
    # Through resume of the owner's session: refused, and the owner keeps it.
    thief = await WsClient.connect(server.ws_url)
    await thief.send({"type": "hello", "rid": 1, "token": other.token,
                      "resume": ows.welcome["session"]})  # fmt: skip
    err = await thief.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == "forbidden"
    assert (await thief.wait_closed())[0] == 4403
    beat = await ows.request("heartbeat")
    assert [lease["note"] for lease in beat["leases"]] == [note], "owner still holds the token"
    for client in (xws, thief):
        assert all(secret not in json.dumps(f) for f in client.frames), "no frame leaked text"
    await xws.close()
    await ows.close()


async def test_login_spraying_is_throttled_per_ip_and_recovers(server: ServerProcess) -> None:
    """An attacker at one address guesses passwords for many accounts (so the
    per-account brake never trips): COLLAB_LOGIN_MAX_FAILURES_PER_IP stops it;
    the real user logs in from elsewhere meanwhile, and from the attacker's
    address once COLLAB_LOGIN_LOCKOUT_S has passed."""
    victim = await Api.register(server.url)
    name = victim.user["name"]
    attacker, elsewhere = {"x-real-ip": "203.0.113.7"}, {"x-real-ip": "198.51.100.9"}
    anon = Api(server.url)

    async def login(user: str, password: str, headers: dict[str, str]) -> int:
        r = await anon.call("POST", "/api/auth/login", {"username": user, "password": password},
                            headers=headers)  # fmt: skip
        return r.status_code

    statuses = [await login(f"spray{i}", "guess-123456", attacker) for i in range(PER_IP + 2)]
    assert statuses[:PER_IP] == [401] * PER_IP and statuses[-1] == 429, statuses
    started = time.monotonic()
    assert await login(name, "pw-123456789", attacker) == 429, "the address is braked"
    assert await login(name, "pw-123456789", elsewhere) == 200, "the user is not locked out"
    await asyncio.sleep(max(0.0, LOCKOUT_S + 0.3 - (time.monotonic() - started)))
    assert await login(name, "pw-123456789", attacker) == 200, "the brake is temporary"
