"""Inputs the fuzzer found that made the server fail with 500 (U+0000 reaching
PostgreSQL text, "²" passing ``str.isdigit``): each is now a 4xx on both
backends, over HTTP and over the WebSocket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.client import Api, WsClient, new_op
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize(
    "backend_env", ["embedded", "distributed"], indirect=True, scope="module"
)


async def test_nul_and_odd_digits_are_client_errors(module_server: ServerProcess) -> None:
    api = await Api.register(module_server.url)
    note = (await api.ok("POST", "/api/notes", {"title": "t"}, status=201))["id"]
    anon = Api(module_server.url)
    cases = [
        (anon, "POST", "/api/auth/login", {"username": "a\x00b", "password": "x"}, 400),
        (api, "POST", "/api/notes", {"title": "a\x00b"}, 400),
        (api, "POST", "/api/notes", {"title": "ok", "content": "a\x00b"}, 400),
        (api, "PATCH", f"/api/notes/{note}", {"title": "a\x00b"}, 400),
        (api, "GET", "/api/users/lookup?name=a%00b", None, 404),
        (api, "PUT", f"/api/notes/{note}/access/a%00b", {"access": "read"}, 404),
        (api, "DELETE", f"/api/notes/{note}/access/a%00b", None, 404),
        (api, "GET", f"/api/notes/{note}/revisions/%C2%B2", None, 400),
    ]
    for who, method, path, payload, status in cases:
        r = await who.call(method, path, payload)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
    ws = await WsClient.connect(module_server.ws_url)
    await ws.hello(api.token or "")
    fence = (await ws.request("acquire", note=note))["fence"]
    payloads: list[dict[str, Any]] = [
        {"content": "a\x00b"},
        {"changes": [{"at": 0, "del": 0, "ins": "\x00"}]},
    ]
    for fields in payloads:
        reply = await ws.request("edit", note=note, fence=fence, base=0, op=new_op(), **fields)
        assert reply.get("code") == "bad_request", reply
    assert (await api.ok("GET", f"/api/notes/{note}"))["version"] == 0
    await ws.close()


def test_405_names_the_allowed_methods(module_server: ServerProcess) -> None:
    r = httpx.request("TRACE", module_server.url + "/api/me", timeout=5)
    assert r.status_code == 405
    assert "GET" in r.headers.get("allow", "")
    r = httpx.request("PUT", module_server.url + "/api/notes", timeout=5)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}
