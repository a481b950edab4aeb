"""Protocol v1 end to end over real sockets, on the embedded backends (SQLite +
in-process leases) and on real PostgreSQL + Redis: one contract, two backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize(
    "backend_env", ["embedded", "distributed"], indirect=True, scope="module"
)


async def user_socket(server: ServerProcess, api: Api | None = None) -> tuple[Api, WsClient]:
    api = api or await Api.register(server.url)
    return api, await WsClient.signed_in(server.ws_url, api.token)


async def new_note(api: Api, content: str = "", visibility: str = "private") -> str:
    note = await api.ok(
        "POST",
        "/api/notes",
        {"title": "t", "content": content, "visibility": visibility},
        status=201,
    )
    return str(note["id"])


async def test_welcome_shape(module_server: ServerProcess) -> None:
    api, ws = await user_socket(module_server)
    w = ws.welcome
    assert w["protocol"] == 1 and w["resumed"] is False and w["leases"] == []
    assert w["user"] == {"id": api.user["id"], "name": api.user["name"], "role": "user"}
    assert w["heartbeat_ms"] == 300 and w["lease_ttl_ms"] == 1200 and w["server"]
    ack = await ws.request("heartbeat")
    assert ack["type"] == "heartbeat_ack" and ack["leases"] == []
    await ws.close()


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
async def test_bad_token_closes_4401(module_server: ServerProcess, token: str) -> None:
    ws = await WsClient.connect(module_server.ws_url)
    await ws.send({"type": "hello", "rid": 1, "token": token})
    err = await ws.wait_for(lambda f: f["type"] == "error")
    assert err["code"] in ("unauthorized", "bad_request")
    assert (await ws.wait_closed())[0] == 4401


async def test_edit_flow_reaches_viewer(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner, "hello", "public")
    _, w2 = await user_socket(module_server)
    snap1 = await w1.request("subscribe", note=note)
    snap2 = await w2.request("subscribe", note=note)
    assert snap1["type"] == "snapshot" and snap1["content"] == "hello" and snap1["version"] == 0
    assert snap1["access"] == "admin" and snap2["access"] == "read" and snap1["lock"] is None
    granted = await w1.request("acquire", note=note)
    assert granted["type"] == "granted" and granted["fence"] >= 1 and granted["ttl_ms"] == 1200
    fence = granted["fence"]
    lock = await w2.wait_for(lambda f: f["type"] == "lock" and f["lock"] is not None)
    assert lock["lock"]["holder"]["id"] == owner.user["id"] and lock["lock"]["fence"] == fence
    op = new_op()
    changes = [{"at": 5, "del": 0, "ins": " wörld 🌍"}]
    ack = await w1.request("edit", note=note, fence=fence, base=0, op=op, changes=changes)
    assert ack == {"type": "ack", "rid": ack["rid"], "note": note, "op": op, "version": 1}
    edited = await w2.wait_for(lambda f: f["type"] == "edited")
    assert edited["version"] == 1 and edited["base"] == 0 and edited["changes"] == changes
    assert edited["by"] == {"id": owner.user["id"], "name": owner.user["name"]}
    # Positions are code points: insert after the emoji.
    ack2 = await w1.request(
        "edit",
        note=note,
        fence=fence,
        base=1,
        op=new_op(),
        changes=[{"at": 13, "del": 0, "ins": "!"}],
    )
    assert ack2["version"] == 2
    body = await owner.ok("GET", f"/api/notes/{note}")
    assert body["content"] == "hello wörld 🌍!" and body["version"] == 2
    assert not w1.pushes("edited"), "the author gets an ack, not its own edit"
    for ws in (w1, w2):
        await ws.close()


async def test_edit_errors(module_server: ServerProcess) -> None:
    owner, ws = await user_socket(module_server)
    note = await new_note(owner, "abc")
    await ws.request("subscribe", note=note)
    fence = (await ws.request("acquire", note=note))["fence"]
    op = new_op()
    first = await ws.request("edit", note=note, fence=fence, base=0, op=op, content="xyz")
    assert first["type"] == "ack" and first["version"] == 1
    again = await ws.request("edit", note=note, fence=fence, base=0, op=op, content="xyz")
    assert again["type"] == "ack" and again["version"] == 1, "retried op acked, not reapplied"
    other = await ws.request("edit", note=note, fence=fence, base=0, op=op, content="zzz")
    assert other["type"] == "error" and other["code"] == "bad_request"
    stale = await ws.request("edit", note=note, fence=fence, base=0, op=new_op(), content="q")
    assert stale["code"] == "stale" and stale["version"] == 1
    fenced = await ws.request("edit", note=note, fence=fence + 5, base=1, op=new_op(), content="q")
    assert fenced["code"] == "fenced"
    out = await ws.request(
        "edit",
        note=note,
        fence=fence,
        base=1,
        op=new_op(),
        changes=[{"at": 2, "del": 5, "ins": ""}],
    )
    assert out["code"] == "bad_request"
    body = await owner.ok("GET", f"/api/notes/{note}")
    assert body["content"] == "xyz" and body["version"] == 1
    await ws.close()


async def test_queue_and_handoff(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner)
    other = await Api.register(module_server.url)
    await owner.ok("PUT", f"/api/notes/{note}/access/{other.user['id']}", {"access": "write"})
    _, w2 = await user_socket(module_server, other)
    for ws in (w1, w2):
        await ws.request("subscribe", note=note)
    fence = (await w1.request("acquire", note=note))["fence"]
    locked = await w2.request("acquire", note=note, wait=False)
    assert locked["code"] == "locked"
    queued = await w2.request("acquire", note=note, wait=True)
    assert queued["type"] == "queued" and queued["position"] == 1
    lock = await w1.wait_for(lambda f: f["type"] == "lock" and f["lock"] and f["lock"]["queue"])
    assert lock["lock"]["queue"] == [{"id": other.user["id"], "name": other.user["name"]}]
    again = await w1.request("acquire", note=note)
    assert again["type"] == "granted" and again["fence"] == fence, "acquire is idempotent"
    released = await w1.request("release", note=note, fence=fence)
    assert released["type"] == "released"
    started = time.monotonic()
    granted = await w2.wait_for(lambda f: f["type"] == "granted")
    assert granted["rid"] == queued["rid"] and granted["fence"] > fence
    assert time.monotonic() - started < 1.0, "a clean release hands over at once"
    stale = await w1.request("edit", note=note, fence=fence, base=0, op=new_op(), content="x")
    assert stale["code"] == "fenced"
    for ws in (w1, w2):
        await ws.close()


async def test_revoke_fences_holder(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner)
    writer = await Api.register(module_server.url)
    await owner.ok("PUT", f"/api/notes/{note}/access/{writer.user['id']}", {"access": "write"})
    _, w2 = await user_socket(module_server, writer)
    await w2.request("subscribe", note=note)
    fence = (await w2.request("acquire", note=note))["fence"]
    denied = await w2.request("revoke", note=note)
    assert denied["code"] == "forbidden", "a writer cannot revoke"
    revoked = await w1.request("revoke", note=note)
    assert revoked["type"] == "revoked" and revoked["fence"] > fence
    lost = await w2.wait_for(lambda f: f["type"] == "lease_lost")
    assert lost["reason"] == "revoked" and lost["fence"] == fence
    refused = await w2.request("edit", note=note, fence=fence, base=0, op=new_op(), content="x")
    assert refused["code"] == "fenced"
    for ws in (w1, w2):
        await ws.close()


async def test_expiry_hands_over_within_bound(module_server: ServerProcess) -> None:
    """A holder that stops heartbeating loses the token to a waiter within
    TTL + lock-delay + 1 s (docs/reliability.md)."""
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner)
    _, w2 = await user_socket(module_server, Api(module_server.url, owner.token))
    fence = (await w1.request("acquire", note=note))["fence"]
    queued = await w2.request("acquire", note=note)
    assert queued["type"] == "queued"
    started = time.monotonic()

    async def beat() -> None:  # the waiter stays alive; the holder goes silent
        while True:
            await w2.request("heartbeat")
            await asyncio.sleep(0.3)

    beating = asyncio.create_task(beat())
    granted = await w2.wait_for(lambda f: f["type"] == "granted", timeout=5)
    beating.cancel()
    took = time.monotonic() - started
    assert granted["fence"] > fence
    assert took <= 1.2 + 0.3 + 1.0, f"hand-off took {took:.2f}s"
    assert took >= 1.2 * 0.5, "not before the lease could have expired"
    lost = await w1.wait_for(lambda f: f["type"] == "lease_lost", timeout=3)
    assert lost["reason"] == "expired"
    for ws in (w1, w2):
        await ws.close()


async def test_sync_replays_edits(module_server: ServerProcess) -> None:
    owner, ws = await user_socket(module_server)
    note = await new_note(owner, "")
    fence = (await ws.request("acquire", note=note))["fence"]
    for v in range(3):
        ack = await ws.request(
            "edit",
            note=note,
            fence=fence,
            base=v,
            op=new_op(),
            changes=[{"at": v, "del": 0, "ins": str(v)}],
        )
        assert ack["version"] == v + 1
    changes = await ws.request("sync", note=note, since=1)
    assert changes["type"] == "changes" and changes["from"] == 1 and changes["to"] == 3
    assert [e["version"] for e in changes["edits"]] == [2, 3]
    await ws.close()


async def test_presence(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner, visibility="public")
    viewer, w2 = await user_socket(module_server)
    await w1.request("subscribe", note=note)
    await w2.request("subscribe", note=note)
    both = {owner.user["id"], viewer.user["id"]}
    seen = await w1.wait_for(
        lambda f: f["type"] == "presence" and {v["id"] for v in f["viewers"]} == both
    )
    assert all(v["role"] == "user" for v in seen["viewers"])
    await w2.request("unsubscribe", note=note)
    await w1.wait_for(
        lambda f: f["type"] == "presence" and [v["id"] for v in f["viewers"]] == [owner.user["id"]]
    )
    for ws in (w1, w2):
        await ws.close()


async def test_resume_keeps_token(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner)
    fence = (await w1.request("acquire", note=note))["fence"]
    session = w1.welcome["session"]
    w1.ws.transport.abort()  # a dropped connection, not a goodbye
    w2 = await WsClient.connect(module_server.ws_url)
    welcome = await w2.hello(owner.token or "", resume=session)
    assert welcome["resumed"] is True and welcome["session"] == session
    assert [(x["note"], x["fence"]) for x in welcome["leases"]] == [(note, fence)]
    ack = await w2.request("edit", note=note, fence=fence, base=0, op=new_op(), content="kept")
    assert ack["type"] == "ack"
    # Someone else cannot resume it.
    stranger = await Api.register(module_server.url)
    w3 = await WsClient.connect(module_server.ws_url)
    await w3.send({"type": "hello", "rid": 1, "token": stranger.token, "resume": session})
    err = await w3.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == "forbidden" and (await w3.wait_closed())[0] == 4403
    await w2.close()


async def test_resume_closes_older_socket_4409(module_server: ServerProcess) -> None:
    owner, w1 = await user_socket(module_server)
    w2 = await WsClient.connect(module_server.ws_url)
    welcome = await w2.hello(owner.token or "", resume=w1.welcome["session"])
    assert welcome["resumed"] is True
    assert (await w1.wait_closed())[0] == 4409
    await w2.close()


async def test_guest_reads_public_only(module_server: ServerProcess) -> None:
    owner = await Api.register(module_server.url)
    public = await new_note(owner, "pub", "public")
    private = await new_note(owner, "priv")
    guest = Api(module_server.url)
    guest.token = (await guest.ok("POST", "/api/auth/guest"))["token"]
    _, ws = await user_socket(module_server, guest)
    assert ws.welcome["user"]["role"] == "guest"
    snap = await ws.request("subscribe", note=public)
    assert snap["access"] == "read" and snap["content"] == "pub"
    assert (await ws.request("subscribe", note=private))["code"] == "forbidden"
    assert (await ws.request("acquire", note=public))["code"] == "forbidden"
    edit = await ws.request("edit", note=public, fence=1, base=0, op=new_op(), content="x")
    assert edit["code"] == "forbidden"
    assert (await ws.request("subscribe", note="nope"))["code"] == "not_found"
    await ws.close()


async def test_refresh_in_band(module_server: ServerProcess) -> None:
    api, ws = await user_socket(module_server)
    fresh = await api.ok("POST", "/api/auth/refresh")
    reply = await ws.request("refresh", token=fresh["token"])
    assert reply["type"] == "refreshed" and reply["expires_at"] == fresh["expires_at"]
    other = await Api.register(module_server.url)
    wrong = await ws.request("refresh", token=other.token)
    assert wrong["code"] == "forbidden"
    await ws.close()


async def test_admin_revoke_and_kick(module_server: ServerProcess) -> None:
    admin = Api(module_server.url)
    login = await admin.ok(
        "POST", "/api/auth/login", {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
    )
    admin.token = login["token"]
    owner, w1 = await user_socket(module_server)
    note = await new_note(owner)
    await w1.request("subscribe", note=note)
    fence = (await w1.request("acquire", note=note))["fence"]
    # The admin takes the owner's note away by revoking, then kicks the session.
    revoked = await admin.ok("POST", f"/api/admin/notes/{note}/revoke")
    assert revoked["fence"] > fence
    assert (await w1.wait_for(lambda f: f["type"] == "lease_lost"))["reason"] == "revoked"
    sessions = (await admin.ok("GET", "/api/admin/sessions"))["sessions"]
    assert w1.welcome["session"] in {s["session"] for s in sessions}
    await admin.ok("POST", f"/api/admin/sessions/{w1.welcome['session']}/kick")
    assert (await w1.wait_closed())[0] == 4403


async def test_removed_access_fences_and_closes(module_server: ServerProcess) -> None:
    owner = await Api.register(module_server.url)
    note = await new_note(owner)
    writer = await Api.register(module_server.url)
    await owner.ok("PUT", f"/api/notes/{note}/access/{writer.user['id']}", {"access": "write"})
    _, ws = await user_socket(module_server, writer)
    await ws.request("subscribe", note=note)
    fence = (await ws.request("acquire", note=note))["fence"]
    r = await owner.call("DELETE", f"/api/notes/{note}/access/{writer.user['id']}")
    assert r.status_code == 204
    assert (await ws.wait_closed())[0] == 4403
    # Whatever the socket does next, its token no longer counts.
    _, again = await user_socket(module_server, writer)
    refused = await again.request("edit", note=note, fence=fence, base=0, op=new_op(), content="x")
    assert refused["code"] in ("fenced", "forbidden")
    await again.close()
