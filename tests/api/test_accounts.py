"""Accounts over the real server (embedded and distributed): an admin
disables, enables and deletes accounts, and kicks sessions; the stored state
and the shared sign-out list are read wherever a token is presented (HTTP,
``hello``, ``refresh``); live sockets close and write tokens are fenced.
Storage quotas and the note-creation budget answer with clear errors.
docs/protocol.md, HTTP API; docs/security.md."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize(
    "backend_env", ["embedded", "distributed"], indirect=True, scope="module"
)
PASSWORD = "pw-123456789"


@pytest.fixture(scope="module")
def server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    # A long lease: a waiter granted within seconds got it by a revoke, not expiry.
    proc = ServerProcess(
        env=backend_env(
            COLLAB_LEASE_TTL_MS="20000", COLLAB_HEARTBEAT_MS="1000",
            COLLAB_MAX_NOTES_PER_USER="3", COLLAB_MAX_BYTES_PER_USER="40",
            COLLAB_NOTE_CREATE_BURST_PER_USER="5", COLLAB_NOTE_CREATE_PER_USER_PER_MIN="0.01",
        ),
        name="accounts",
    ).start()  # fmt: skip
    yield proc
    proc.stop(5)


async def _admin(base: str) -> Api:
    admin = Api(base)
    reply = await admin.ok(
        "POST", "/api/auth/login", {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
    )
    admin.token = reply["token"]
    admin.user = reply["user"]
    return admin


async def _login(base: str, name: str) -> Any:
    return await Api(base).call("POST", "/api/auth/login", {"username": name, "password": PASSWORD})


async def _hello_refused(ws_url: str, token: str) -> None:
    ws = await WsClient.connect(ws_url)
    try:
        reply = await ws.hello(token)
        assert reply["type"] == "error" and reply["code"] == "unauthorized", reply
        assert (await ws.wait_closed())[0] == 4401
    finally:
        await ws.close()


async def test_a_disabled_account_is_shut_out_everywhere(server: ServerProcess) -> None:
    admin = await _admin(server.url)
    user = await Api.register(server.url)
    waiter = await Api.register(server.url)
    note = (await user.ok("POST", "/api/notes", {"title": "t", "content": "x"}, status=201))["id"]
    await user.ok("PUT", f"/api/notes/{note}/access/{waiter.user['id']}", {"access": "write"})
    ws = await WsClient.signed_in(server.ws_url, user.token)
    other = await WsClient.signed_in(server.ws_url, waiter.token)
    try:
        assert (await ws.request("acquire", note=note))["type"] == "granted"
        assert (await other.request("acquire", note=note, wait=True))["type"] == "queued"

        done = await admin.ok("PATCH", f"/api/admin/users/{user.user['id']}", {"disabled": True})
        assert done["disabled"] is True

        # The live socket closes at once; the waiter gets the token now (the
        # holder was fenced), long before the 20 s lease could have run out.
        assert await ws.wait_closed() == (4403, "account disabled")
        granted = await other.wait_for(lambda f: f.get("type") == "granted", timeout=5)
        assert granted["note"] == note
    finally:
        await ws.close()
        await other.close()
    assert (await user.call("GET", "/api/me")).status_code == 401
    assert (await user.call("POST", "/api/auth/refresh")).status_code == 401
    await _hello_refused(server.ws_url, user.token or "")
    refused = await _login(server.url, user.user["name"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    listed = await admin.ok("GET", "/api/admin/users")
    assert {u["id"]: u["disabled"] for u in listed["users"]}[user.user["id"]] is True

    await admin.ok("PATCH", f"/api/admin/users/{user.user['id']}", {"disabled": False})
    await asyncio.sleep(1.1)  # tokens issued in the second of the sign-out are refused too
    assert (await _login(server.url, user.user["name"])).status_code == 200
    # Enabling revives none of the tokens issued before the disable.
    assert (await user.call("GET", "/api/me")).status_code == 401


async def test_deleting_an_account_takes_its_notes_and_sessions(server: ServerProcess) -> None:
    admin = await _admin(server.url)
    gone = await Api.register(server.url)
    viewer = await Api.register(server.url)
    public = await gone.ok("POST", "/api/notes", {"title": "p", "visibility": "public"}, status=201)
    ws = await WsClient.signed_in(server.ws_url, gone.token)
    watching = await WsClient.signed_in(server.ws_url, viewer.token)
    try:
        await watching.request("subscribe", note=public["id"])
        r = await admin.call("DELETE", f"/api/admin/users/{gone.user['id']}")
        assert r.status_code == 204, r.text
        assert (await ws.wait_closed())[0] == 4403
        deleted = await watching.wait_for(lambda f: f.get("type") == "deleted")
        assert deleted["note"] == public["id"]
    finally:
        await ws.close()
        await watching.close()
    assert (await viewer.call("GET", f"/api/notes/{public['id']}")).status_code == 404
    assert (await gone.call("GET", "/api/me")).status_code == 401
    assert (await _login(server.url, gone.user["name"])).status_code == 401
    assert (await admin.call("DELETE", f"/api/admin/users/{gone.user['id']}")).status_code == 404


async def test_admins_cannot_disable_or_delete_themselves(server: ServerProcess) -> None:
    admin = await _admin(server.url)
    me = admin.user["id"]
    assert (
        await admin.call("PATCH", f"/api/admin/users/{me}", {"disabled": True})
    ).status_code == 400
    assert (await admin.call("DELETE", f"/api/admin/users/{me}")).status_code == 400
    assert (await admin.call("PATCH", f"/api/admin/users/{me}", {})).status_code == 400
    user = await Api.register(server.url)
    for verb, body in (("PATCH", {"disabled": True}), ("DELETE", None)):
        r = await user.call(verb, f"/api/admin/users/{me}", body)
        assert r.status_code == 403


async def test_a_kick_is_not_undone_by_reconnecting(server: ServerProcess) -> None:
    admin = await _admin(server.url)
    user = await Api.register(server.url)
    ws = await WsClient.signed_in(server.ws_url, user.token)
    second = await WsClient.signed_in(server.ws_url, user.token)
    try:
        session = ws.welcome["session"]
        kicked = await admin.ok("POST", f"/api/admin/sessions/{session}/kick")
        assert kicked == {"session": session, "kicked": True}
        assert await ws.wait_closed() == (4403, "kicked by an administrator")
        assert (await second.wait_closed())[0] == 4403  # the user's other session too
    finally:
        await ws.close()
        await second.close()
    await _hello_refused(server.ws_url, user.token or "")
    assert (await user.call("POST", "/api/auth/refresh")).status_code == 401
    await asyncio.sleep(1.1)
    assert (await _login(server.url, user.user["name"])).status_code == 200


async def test_storage_quotas_and_the_creation_budget(server: ServerProcess) -> None:
    user = await Api.register(server.url)
    big = await user.call("POST", "/api/notes", {"title": "big", "content": "x" * 41})
    assert big.status_code == 403
    assert big.json()["error"] == {
        "code": "quota_exceeded",
        "message": "the owner's notes may hold at most 40 bytes of text",
        "quota": "bytes",
        "limit": 40,
    }
    made = [
        (
            await user.ok(
                "POST", "/api/notes", {"title": f"n{i}", "content": "0123456789"}, status=201
            )
        )["id"]
        for i in range(3)
    ]
    fourth = await user.call("POST", "/api/notes", {"title": "n3"})
    assert fourth.status_code == 403 and fourth.json()["error"]["quota"] == "notes"
    # The edit path: 30 bytes owned, 11 more would pass 40; refused before commit.
    ws = await WsClient.signed_in(server.ws_url, user.token)
    try:
        fence = (await ws.request("acquire", note=made[0]))["fence"]
        change = {"at": 0, "del": 0, "ins": "y" * 11}
        refused = await ws.request(
            "edit", note=made[0], fence=fence, base=0, op=new_op(), changes=[change]
        )
        assert refused["type"] == "error" and refused["code"] == "quota_exceeded", refused
        assert (refused["quota"], refused["limit"]) == ("bytes", 40)
        change["ins"] = "y" * 10
        ok = await ws.request(
            "edit", note=made[0], fence=fence, base=0, op=new_op(), changes=[change]
        )
        assert ok["type"] == "ack" and ok["version"] == 1, ok
    finally:
        await ws.close()
    note = await user.ok("GET", f"/api/notes/{made[0]}")
    assert (note["version"], note["content"]) == (1, "y" * 10 + "0123456789")
    # Five creations were budgeted (burst 5, refilling once in 100 minutes):
    # two refusals above and three notes spent it.
    await user.ok("DELETE", f"/api/notes/{made[1]}", status=204)
    limited = await user.call("POST", "/api/notes", {"title": "n4"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
