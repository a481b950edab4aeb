"""Malformed and hostile frames get the specified error or close code, and the
server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator

import jwt
import pytest

from collab.frames import replica_token
from tests.support.client import Api, Frame, WsClient, new_op
from tests.support.server import JWT_SECRET, ServerProcess


@pytest.fixture(scope="module")
def server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    env = backend_env  # embedded backends: parsing does not depend on them
    proc = ServerProcess(
        env=env(
            COLLAB_HELLO_TIMEOUT_S="1",
            COLLAB_MAX_BAD_FRAMES="5",
            COLLAB_MAX_FRAME_BYTES="4096",
            COLLAB_OUTBOUND_QUEUE_MAX="16",
            COLLAB_MAX_SUBSCRIPTIONS_PER_SOCKET="3",
            COLLAB_ACQUIRE_BURST="3",
            COLLAB_ACQUIRE_RATE_PER_S="0.5",
        ),
        name="hostile",
    ).start()
    yield proc
    proc.stop(5)


async def ready(server: ServerProcess) -> tuple[Api, WsClient]:
    api = await Api.register(server.url)
    ws = await WsClient.connect(server.ws_url)
    await ws.hello(api.token or "")
    return api, ws


async def still_serving(server: ServerProcess) -> None:
    _, ws = await ready(server)
    assert (await ws.request("heartbeat"))["type"] == "heartbeat_ack"
    await ws.close()


BAD_FRAMES = [
    ({"type": "nope", "rid": 1}, "bad_request"),
    ({"rid": 2}, "bad_request"),
    ({"type": 5, "rid": 3}, "bad_request"),
    ({"type": "subscribe", "rid": 4}, "bad_request"),
    ({"type": "subscribe", "rid": 5, "note": 12}, "bad_request"),
    ({"type": "acquire", "rid": 6, "note": "x", "wait": "yes"}, "bad_request"),
    (
        {"type": "edit", "rid": 7, "note": "x", "fence": "1", "base": 0, "op": "o", "content": ""},
        "bad_request",
    ),
    (
        {
            "type": "edit",
            "rid": 8,
            "note": "x",
            "fence": 1,
            "base": -1,
            "op": new_op(),
            "content": "",
        },
        "bad_request",
    ),
    (
        {
            "type": "edit",
            "rid": 9,
            "note": "x",
            "fence": 1,
            "base": 0,
            "op": "not-a-uuid",
            "content": "",
        },
        "bad_request",
    ),
    (
        {"type": "edit", "rid": 10, "note": "x", "fence": 1, "base": 0, "op": new_op()},
        "bad_request",
    ),
    (
        {
            "type": "edit",
            "rid": 11,
            "note": "x",
            "fence": 1,
            "base": 0,
            "op": new_op(),
            "changes": [{"at": -1, "del": 0, "ins": "a"}],
        },
        "bad_request",
    ),
    (
        {
            "type": "edit",
            "rid": 12,
            "note": "x",
            "fence": 1,
            "base": 0,
            "op": new_op(),
            "changes": "abc",
        },
        "bad_request",
    ),
    ({"type": "sync", "rid": 13, "note": "x", "since": True}, "bad_request"),
    ({"type": "hello", "rid": 14, "token": "again"}, "bad_request"),
    ({"type": "heartbeat", "rid": "r" * 65}, "bad_request"),
    ({"type": "heartbeat", "rid": [1]}, "bad_request"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frame_is_bad_request(server: ServerProcess, frame: dict, code: str) -> None:
    _, ws = await ready(server)
    await ws.send(frame)
    err = await ws.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == code and "Traceback" not in err["message"]
    if isinstance(frame.get("rid"), str | int) and len(str(frame["rid"])) <= 64:
        assert err["rid"] == frame["rid"]
    assert (await ws.request("heartbeat"))["type"] == "heartbeat_ack", "connection stays open"
    await ws.close()


async def test_non_objects_count_toward_abuse_limit(server: ServerProcess) -> None:
    _, ws = await ready(server)
    for junk in ["[1,2]", "not json", '"str"', "42", b"\x00\x01binary", "{"]:
        await ws.send(junk)
    assert (await ws.wait_closed())[0] == 1008
    await still_serving(server)


async def test_huge_frame_closes_1009(server: ServerProcess) -> None:
    _, ws = await ready(server)
    await ws.send(json.dumps({"type": "heartbeat", "pad": "x" * 8192}))
    assert (await ws.wait_closed())[0] == 1009
    await still_serving(server)


async def test_hello_timeout_4408(server: ServerProcess) -> None:
    ws = await WsClient.connect(server.ws_url)
    started = time.monotonic()
    assert (await ws.wait_closed(5))[0] == 4408
    assert 0.8 <= time.monotonic() - started < 4


async def test_first_frame_must_be_hello(server: ServerProcess) -> None:
    ws = await WsClient.connect(server.ws_url)
    await ws.send({"type": "subscribe", "rid": 1, "note": "x"})
    err = await ws.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == "unauthorized"
    assert (await ws.wait_closed())[0] == 4401


def _forge(claims: dict, key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _none_token(claims: dict) -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


async def test_forged_tokens_are_refused(server: ServerProcess) -> None:
    api = await Api.register(server.url)
    now = int(time.time())
    base = {
        "sub": api.user["id"],
        "name": "x",
        "role": "admin",
        "iss": "collab",
        "aud": "collab",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    tokens = {
        "none": _none_token(base),
        "wrong key": _forge(base, key="another-secret-that-is-long-enough-0123456789"),
        "expired": _forge({**base, "exp": now - 100, "iat": now - 200, "nbf": now - 200}),
        "not yet": _forge({**base, "nbf": now + 300}),
        "audience": _forge({**base, "aud": "someone-else"}),
        "issuer": _forge({**base, "iss": "evil"}),
        "HS512": _forge(base, alg="HS512"),
    }
    for label, token in tokens.items():
        ws = await WsClient.connect(server.ws_url)
        await ws.send({"type": "hello", "rid": 1, "token": token})
        err = await ws.wait_for(lambda f: f["type"] == "error")
        assert err["code"] in ("unauthorized", "token_expired"), label
        assert (await ws.wait_closed())[0] == 4401, label
        r = await Api(server.url, token).call("GET", "/api/me")
        assert r.status_code == 401, label


async def test_role_claim_is_not_trusted(server: ServerProcess) -> None:
    """A validly signed token claiming admin for a plain user gets the
    database role, not the claim."""
    api = await Api.register(server.url)
    now = int(time.time())
    token = _forge(
        {
            "sub": api.user["id"],
            "name": "x",
            "role": "admin",
            "iss": "collab",
            "aud": "collab",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
    )
    me = await Api(server.url, token).ok("GET", "/api/me")
    assert me["role"] == "user"
    assert (await Api(server.url, token).call("GET", "/api/admin/users")).status_code == 403


async def test_subscription_cap(server: ServerProcess) -> None:
    api, ws = await ready(server)
    notes = []
    for _ in range(4):
        note = await api.ok("POST", "/api/notes", {"title": "n"}, status=201)
        notes.append(note["id"])
    for note in notes[:3]:
        assert (await ws.request("subscribe", note=note))["type"] == "snapshot"
    assert (await ws.request("subscribe", note=notes[3]))["code"] == "rate_limited"
    await ws.close()


async def test_acquire_rate_limit(server: ServerProcess) -> None:
    api, ws = await ready(server)
    note = (await api.ok("POST", "/api/notes", {"title": "n"}, status=201))["id"]
    replies = [await ws.request("acquire", note=note) for _ in range(5)]
    assert [r["type"] for r in replies[:3]] == ["granted"] * 3
    assert replies[4]["code"] == "rate_limited"
    await ws.close()


async def test_slow_reader_is_dropped(
    backend_env: Callable[..., dict[str, str]],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """A client that never reads is cut off by the outbound queue limit, and
    the writer keeps being served."""
    server = spawn_server(backend_env(COLLAB_OUTBOUND_QUEUE_MAX="8"), name="slow")
    owner, w1 = await ready(server)
    note = (
        await owner.ok("POST", "/api/notes", {"title": "n", "visibility": "public"}, status=201)
    )["id"]
    _, lazy = await ready(server)
    await lazy.request("subscribe", note=note)
    lazy.ws.transport.pause_reading()  # stop reading: kernel buffers, then the queue, fill
    fence = (await w1.request("acquire", note=note))["fence"]
    dropped = 0.0
    for v in range(600):
        text = chr(ord("a") + v % 26) * 60_000  # ~60 KB per push
        ack = await w1.request("edit", note=note, fence=fence, base=v, op=new_op(), content=text)
        assert ack["type"] == "ack", ack
        if v % 25 == 24:
            metrics = (await owner.call("GET", "/metrics")).text.splitlines()
            dropped = sum(
                float(line.split()[-1])
                for line in metrics
                if line.startswith("collab_ws_slow_consumers_total")
            )
            if dropped >= 1:
                break
    assert dropped >= 1, "the non-reading socket was not dropped"
    await still_serving(server)
    await w1.close()


async def first_word(ws: WsClient, wait_s: float = 1.0) -> Frame | None:
    """The first frame a socket gets unasked (a refusal), or None."""
    try:
        return await ws.wait_for(lambda f: True, wait_s)
    except TimeoutError:
        return None


async def test_open_sockets_per_address_are_capped(
    backend_env: Callable[..., dict[str, str]],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """A burst of concurrent upgrades from one address is counted before any
    of them awaits: exactly the cap is let in, the rest are refused like a
    connect over the rate (``rate_limited``, 1008), and every slot comes back
    once, however its socket ended."""
    server = spawn_server(
        backend_env(COLLAB_MAX_SOCKETS_PER_IP="5", COLLAB_MAX_SOCKETS_PER_USER="100"),
        name="crowded",
    )
    api = await Api.register(server.url)
    burst = await asyncio.gather(*(WsClient.connect(server.ws_url) for _ in range(12)))
    words = await asyncio.gather(*(first_word(ws) for ws in burst))
    refused = [ws for ws, word in zip(burst, words, strict=True) if word is not None]
    admitted = [ws for ws, word in zip(burst, words, strict=True) if word is None]
    assert len(admitted) == 5, [w for w in words if w]
    for ws in refused:
        assert ws.frames[0]["type"] == "error" and ws.frames[0]["code"] == "rate_limited"
        assert (await ws.wait_closed())[0] == 1008
    for ws in admitted:
        assert (await ws.hello(api.token or ""))["type"] == "welcome"
    # Sockets that end (a clean close, a dropped connection) give their slot back.
    await admitted[0].close()
    admitted[1].ws.transport.abort()
    await asyncio.sleep(0.3)
    again = [await WsClient.connect(server.ws_url) for _ in range(3)]
    words = [await first_word(ws, 0.5) for ws in again]
    assert words[:2] == [None, None] and words[2] is not None, words
    for ws in [*admitted[2:], *again[:2]]:
        await ws.close()
    await asyncio.sleep(0.3)
    # Nothing leaked: a fresh five get in.
    fresh = await asyncio.gather(*(WsClient.connect(server.ws_url) for _ in range(5)))
    assert await asyncio.gather(*(first_word(ws, 0.5) for ws in fresh)) == [None] * 5
    for ws in fresh:
        await ws.close()


async def test_concurrent_hellos_of_one_user_admit_exactly_the_cap(
    backend_env: Callable[..., dict[str, str]],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server(backend_env(COLLAB_MAX_SOCKETS_PER_USER="5"), name="oneuser")
    api = await Api.register(server.url)
    sockets = [await WsClient.connect(server.ws_url) for _ in range(15)]
    replies = await asyncio.gather(*(ws.hello(api.token or "") for ws in sockets))
    assert sum(r["type"] == "welcome" for r in replies) == 5, replies
    for ws, reply in zip(sockets, replies, strict=True):
        if reply["type"] != "welcome":
            assert reply["code"] == "rate_limited"
            assert (await ws.wait_closed())[0] == 1008
    for ws in sockets:
        await ws.close()
    await asyncio.sleep(0.3)
    assert (await WsClient.signed_in(server.ws_url, api.token)).welcome["type"] == "welcome"


async def test_guests_see_names_not_account_ids_or_roles(
    backend_env: Callable[..., dict[str, str]],
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """Presence, snapshot viewers and lock frames name people to a guest by
    per-note aliases and names only; signed-in users still get ids and
    roles. ``welcome.server`` does not carry the replica's name."""
    server = spawn_server(backend_env(COLLAB_REPLICA_ID="pod-collab-7f9c4"), name="exposure")
    owner, own_ws = await ready(server)
    writer = await Api.register(server.url)
    note = (
        await owner.ok("POST", "/api/notes", {"title": "n", "visibility": "public"}, status=201)
    )["id"]
    await owner.ok("PUT", f"/api/notes/{note}/access/{writer.user['id']}", {"access": "write"})
    writer_ws = await WsClient.signed_in(server.ws_url, writer.token)
    guest = Api(server.url)
    guest.token = (await guest.ok("POST", "/api/auth/guest"))["token"]
    guest_ws = await WsClient.signed_in(server.ws_url, guest.token)
    for ws in (own_ws, guest_ws):
        assert "pod-collab" not in json.dumps(ws.welcome)
        assert ws.welcome["server"] == replica_token(JWT_SECRET, "pod-collab-7f9c4")

    await own_ws.request("subscribe", note=note)
    fence = (await own_ws.request("acquire", note=note))["fence"]
    await writer_ws.request("subscribe", note=note)
    assert (await writer_ws.request("acquire", note=note))["type"] == "queued"
    snap = await guest_ws.request("subscribe", note=note)
    secrets = {owner.user["id"], writer.user["id"], own_ws.welcome["session"],
               writer_ws.welcome["session"], "user", "admin"}  # fmt: skip
    viewers = snap["viewers"]
    assert {v["name"] for v in viewers} >= {owner.user["name"], writer.user["name"]}
    assert all(set(v) == {"id", "name"} and v["id"].startswith("anon-") for v in viewers)
    lock = snap["lock"]
    assert lock["holder"]["name"] == owner.user["name"] and lock["fence"] == fence
    assert [q["name"] for q in lock["queue"]] == [writer.user["name"]]
    alias = {v["name"]: v["id"] for v in viewers}
    assert lock["holder"]["id"] == alias[owner.user["name"]], "one alias per person and note"
    assert lock["queue"][0]["id"] == alias[writer.user["name"]]

    # Pushes: a newcomer's presence, the lock moving on.
    third = await Api.register(server.url)
    third_ws = await WsClient.signed_in(server.ws_url, third.token)
    await third_ws.request("subscribe", note=note)
    names = {owner.user["name"], writer.user["name"], third.user["name"]}
    pushed = await guest_ws.wait_for(
        lambda f: f["type"] == "presence" and {v["name"] for v in f["viewers"]} >= names
    )
    assert all(set(v) == {"id", "name"} for v in pushed["viewers"])
    await own_ws.request("release", note=note, fence=fence)
    moved = await guest_ws.wait_for(
        lambda f: (
            f["type"] == "lock"
            and f["lock"] is not None
            and f["lock"]["holder"]["name"] == writer.user["name"]
        )
    )
    assert moved["lock"]["holder"]["id"] == alias[writer.user["name"]]
    told = json.dumps([f for f in guest_ws.frames if f["type"] in ("snapshot", "presence", "lock")])
    assert not [s for s in secrets if s in told], "a guest learnt an account id, session or role"

    # Signed-in viewers still see who is who.
    full = await own_ws.wait_for(
        lambda f: f["type"] == "presence" and {v["name"] for v in f["viewers"]} >= names
    )
    assert {(v["id"], v["role"]) for v in full["viewers"]} >= {
        (owner.user["id"], "user"), (writer.user["id"], "user"), (third.user["id"], "user"),
    }  # fmt: skip
    for ws in (own_ws, writer_ws, guest_ws, third_ws):
        await ws.close()
