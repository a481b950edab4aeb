"""The roles table of protocol.md, enforced on every HTTP route: each actor
tries each action on a private note and gets exactly the expected status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.support.client import Api
from tests.support.server import ServerProcess


@dataclass
class World:
    server: ServerProcess
    admin: Api
    owner: Api
    reader: Api  # read grant
    writer: Api  # write grant
    stranger: Api  # no grant
    guest: Api
    note: str
    public: str


@pytest.fixture(scope="module")
def world_server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    server = ServerProcess(
        env=backend_env(COLLAB_MAX_BODY_BYTES="65536", COLLAB_LOGIN_LOCKOUT_S="2"), name="roles"
    ).start()
    yield server
    server.stop(5)


@pytest.fixture(scope="module")
def people(world_server: ServerProcess) -> dict[str, Api]:
    """Accounts are made once per module (argon2 hashing is deliberately slow)."""

    async def make() -> dict[str, Api]:
        base = world_server.url
        admin = Api(base)
        admin.token = (
            await admin.ok(
                "POST", "/api/auth/login", {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
            )
        )["token"]
        guest = Api(base)
        guest.token = (await guest.ok("POST", "/api/auth/guest"))["token"]
        out = {"admin": admin, "guest": guest}
        for name in ("owner", "reader", "writer", "stranger"):
            out[name] = await Api.register(base)
        return out

    return asyncio.run(make())


@pytest.fixture
async def world(world_server: ServerProcess, people: dict[str, Api]) -> World:
    """A fresh private note (shared read/write) and a public one for each test."""
    owner, reader, writer = people["owner"], people["reader"], people["writer"]
    admin, stranger, guest = people["admin"], people["stranger"], people["guest"]
    note = (await owner.ok("POST", "/api/notes", {"title": "secret", "content": "s"}, status=201))[
        "id"
    ]
    public = (
        await owner.ok("POST", "/api/notes", {"title": "pub", "visibility": "public"}, status=201)
    )["id"]
    await owner.ok("PUT", f"/api/notes/{note}/access/{reader.user['id']}", {"access": "read"})
    await owner.ok("PUT", f"/api/notes/{note}/access/{writer.user['id']}", {"access": "write"})
    return World(world_server, admin, owner, reader, writer, stranger, guest, note, public)


ACTORS = ["admin", "owner", "reader", "writer", "stranger", "guest"]

# action -> (method, path template, body, {actor: expected status})
MATRIX: dict[str, tuple[str, str, object, dict[str, int]]] = {
    "read": (
        "GET",
        "/api/notes/{note}",
        None,
        {"admin": 200, "owner": 200, "reader": 200, "writer": 200, "stranger": 403, "guest": 403},
    ),
    "revisions": (
        "GET",
        "/api/notes/{note}/revisions",
        None,
        {"admin": 200, "owner": 200, "reader": 200, "writer": 200, "stranger": 403, "guest": 403},
    ),
    "revision0": (
        "GET",
        "/api/notes/{note}/revisions/0",
        None,
        {"admin": 200, "owner": 200, "reader": 200, "writer": 200, "stranger": 403, "guest": 403},
    ),
    "rename": (
        "PATCH",
        "/api/notes/{note}",
        {"title": "renamed"},
        {"admin": 200, "owner": 200, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "list grants": (
        "GET",
        "/api/notes/{note}/access",
        None,
        {"admin": 200, "owner": 200, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "share": (
        "PUT",
        "/api/notes/{note}/access/{stranger}",
        {"access": "read"},
        {"admin": 200, "owner": 200, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "unshare": (
        "DELETE",
        "/api/notes/{note}/access/{reader}",
        None,
        {"admin": 204, "owner": 204, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "revoke": (
        "POST",
        "/api/admin/notes/{note}/revoke",
        None,
        {"admin": 200, "owner": 403, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "create": (
        "POST",
        "/api/notes",
        {"title": "mine"},
        {"admin": 201, "owner": 201, "reader": 201, "writer": 201, "stranger": 201, "guest": 403},
    ),
    "admin users": (
        "GET",
        "/api/admin/users",
        None,
        {"admin": 200, "owner": 403, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "set role": (
        "PATCH",
        "/api/admin/users/{stranger}",
        {"role": "user"},
        {"admin": 200, "owner": 403, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "sessions": (
        "GET",
        "/api/admin/sessions",
        None,
        {"admin": 200, "owner": 403, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "kick": (
        "POST",
        "/api/admin/sessions/nosuch/kick",
        None,
        {"admin": 404, "owner": 403, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
    "lookup": (
        "GET",
        "/api/users/lookup?name=" + ADMIN_NAME,
        None,
        {"admin": 200, "owner": 200, "reader": 200, "writer": 200, "stranger": 200, "guest": 403},
    ),
    "delete": (
        "DELETE",
        "/api/notes/{note}",
        None,
        {"admin": 204, "owner": 204, "reader": 403, "writer": 403, "stranger": 403, "guest": 403},
    ),
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", list(MATRIX))
async def test_roles_table(world: World, actor: str, action: str) -> None:
    method, template, payload, expected = MATRIX[action]
    path = template.format(
        note=world.note, stranger=world.stranger.user["id"], reader=world.reader.user["id"]
    )
    api: Api = getattr(world, actor)
    r = await api.call(method, path, payload)
    assert r.status_code == expected[actor], f"{actor} {action}: {r.status_code} {r.text}"
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] in ("forbidden", "not_found")


async def test_listing_respects_visibility(world: World) -> None:
    async def ids(api: Api) -> set[str]:
        return {n["id"] for n in (await api.ok("GET", "/api/notes"))["notes"]}

    both = {world.note, world.public}
    assert both <= await ids(world.admin)
    assert both <= await ids(world.owner)
    assert both <= await ids(world.reader)
    seen = await ids(world.stranger)
    assert world.public in seen and world.note not in seen
    seen = await ids(world.guest)
    assert world.public in seen and world.note not in seen
    notes = (await world.reader.ok("GET", "/api/notes"))["notes"]
    assert {n["id"]: n["access"] for n in notes}[world.note] == "read"


async def test_unauthenticated_is_401(world: World) -> None:
    anon = Api(world.server.url)
    for method, path in [
        ("GET", "/api/notes"),
        ("POST", "/api/notes"),
        ("GET", "/api/me"),
        ("GET", f"/api/notes/{world.public}"),
        ("GET", "/api/admin/users"),
    ]:
        r = await anon.call(method, path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_guest_and_signup_switches(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    server = spawn_server(
        backend_env(COLLAB_ALLOW_SIGNUP="false", COLLAB_ALLOW_GUEST="false"), name="closed"
    )
    anon = Api(server.url)
    r = await anon.call("POST", "/api/auth/register", {"username": "newbie", "password": "x" * 12})
    assert r.status_code == 403
    assert (await anon.call("POST", "/api/auth/guest")).status_code == 403
    cfg = await anon.ok("GET", "/api/config")
    assert cfg["allow_signup"] is False and cfg["allow_guest"] is False


BAD_BODIES = [
    ("POST", "/api/notes", b"{not json", 400),
    ("POST", "/api/notes", b"[1,2]", 400),
    ("POST", "/api/notes", b'{"title": 5}', 400),
    ("POST", "/api/notes", b'{"title": ""}', 400),
    ("POST", "/api/notes", b'{"title": "x", "visibility": "secret"}', 400),
    ("POST", "/api/notes", b'{"title": "' + b"x" * 201 + b'"}', 400),
    ("POST", "/api/notes", b'{"title": "' + b"x" * 70000 + b'"}', 413),
    ("POST", "/api/auth/login", b'{"username": "a"}', 400),
    ("POST", "/api/auth/register", b'{"username": "bad name!", "password": "longenough"}', 400),
    ("POST", "/api/auth/register", b'{"username": "shortpw", "password": "x"}', 400),
]


@pytest.mark.parametrize(("method", "path", "raw", "status"), BAD_BODIES)
async def test_bad_bodies(world: World, method: str, path: str, raw: bytes, status: int) -> None:
    r = await world.owner.call(
        method, path, content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] in ("bad_request", "too_large")
    for leak in ("Traceback", "SELECT", "INSERT", "sqlite", "asyncpg", 'File "'):
        assert leak not in err["message"]


async def test_unknown_route_and_method(world: World) -> None:
    r = await world.owner.call("GET", "/api/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await world.owner.call("PUT", "/api/notes")
    assert r.status_code == 405


async def test_login_throttled_then_recovers(world: World) -> None:
    anon = Api(world.server.url)
    victim = await Api.register(world.server.url)
    name = victim.user["name"]
    statuses = []
    for _ in range(7):
        r = await anon.call("POST", "/api/auth/login", {"username": name, "password": "wrong-pass"})
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    # The real user is locked out only for COLLAB_LOGIN_LOCKOUT_S, not forever.
    r = await anon.call("POST", "/api/auth/login", {"username": name, "password": "pw-123456789"})
    assert r.status_code == 429
    await asyncio.sleep(2.2)
    r = await anon.call("POST", "/api/auth/login", {"username": name, "password": "pw-123456789"})
    assert r.status_code == 200


async def test_duplicate_username_is_refused_like_a_reserved_one(world: World) -> None:
    """A taken name is refused, but with the answer a reserved name gets, so
    the refusal alone does not prove that an account exists."""
    anon = Api(world.server.url)
    r = await anon.call(
        "POST",
        "/api/auth/register",
        {"username": world.owner.user["name"], "password": "pw-123456789"},
    )
    reserved = await anon.call(
        "POST", "/api/auth/register", {"username": "root", "password": "pw-123456789"}
    )
    assert r.status_code == reserved.status_code == 409
    assert r.json() == reserved.json()


async def test_health_and_metrics(world: World) -> None:
    anon = Api(world.server.url)
    assert (await anon.ok("GET", "/livez"))["status"] == "ok"
    ready = await anon.ok("GET", "/readyz")
    assert ready["status"] == "ok" and set(ready["checks"]) == {"database", "leases", "bus"}
    text = (await anon.call("GET", "/metrics")).text
    for name in (
        "collab_http_requests_total",
        "collab_http_request_seconds_bucket",
        "collab_ws_connections",
        "collab_db_pool_connections",
    ):
        assert name in text, name
    r = await world.owner.call("GET", "/api/me")
    assert r.headers.get("x-request-id") and r.headers.get("x-content-type-options") == "nosniff"


async def test_a_guest_is_not_told_account_ids_over_http(world: World) -> None:
    guest, owner, note = world.guest, world.owner, world.public
    seen = [
        await guest.ok("GET", f"/api/notes/{note}"),
        await guest.ok("GET", "/api/notes"),
        await guest.ok("GET", f"/api/notes/{note}/revisions"),
    ]
    assert seen[0]["owner_id"] is None and seen[0]["title"] == "pub"
    assert any(n["id"] == note for n in seen[1]["notes"])
    assert owner.user["id"] not in str(seen)
    assert (await owner.ok("GET", f"/api/notes/{note}"))["owner_id"] == owner.user["id"]
