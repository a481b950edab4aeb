"""The nginx gateway config (gateway/), checked with real nginx on loopback.

`write_loopback_gateway` produces a runnable copy: only the upstream servers and the
listen line change (the layout contract in gateway/README.md). The checks:
- `nginx -t` accepts the copy;
- the source keeps the required directives (least_conn, passive failover, WebSocket
  timeouts) where a live run cannot observe them;
- a live gateway over stub upstreams serves static files with the right cache and
  security headers, hides /metrics, fails over from a dead upstream, forwards client
  addresses it cannot be tricked about, proxies WebSockets, balances open sockets by
  count, and answers in the API's error shape when no upstream is left.

Needs the `nginx` binary (Debian: `apt-get install -y nginx`); it runs unprivileged.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.support.gateway import (
    ASSET,
    GATEWAY,
    INDEX_HTML,
    SECURITY_HEADERS,
    free_port,
    nginx_command,
    running_gateway,
    write_loopback_gateway,
)


@pytest.fixture
def prefix() -> Iterator[Path]:
    # Not pytest's tmp_path: when the tests run as root, nginx workers run as `nobody`
    # and must be able to traverse the prefix (pytest's base dir is 0700).
    path = Path(tempfile.mkdtemp(prefix="collab-gateway-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def stub_replica(name: str) -> AsyncIterator[int]:
    """A stand-in replica: any HTTP request gets 200 with JSON {server, path, headers};
    a WebSocket on /ws first sends the same JSON, then echoes each message."""

    def describe(request: Request) -> bytes:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        return json.dumps({"server": name, "path": request.path, "headers": headers}).encode()

    def answer_http(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        response = connection.respond(HTTPStatus.OK, "")
        response.body = describe(request)
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Length"] = str(len(response.body))
        return response

    async def echo(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(describe(ws.request).decode())
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, process_request=answer_http) as server:
        yield int(next(iter(server.sockets)).getsockname()[1])


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{base}", trust_env=False, timeout=10)


def assert_security_headers(response: httpx.Response) -> None:
    missing = [h for h in SECURITY_HEADERS if h not in response.headers]
    assert not missing, f"{response.request.url.path}: missing {missing}"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# --- static checks ---------------------------------------------------------------------


def test_nginx_accepts_the_loopback_copy(prefix: Path) -> None:
    conf = write_loopback_gateway(prefix, [free_port(), free_port()], free_port())
    proc = subprocess.run(nginx_command(conf, "-t"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "[emerg]" not in proc.stderr


def test_only_the_upstream_file_names_the_replicas() -> None:
    for conf in GATEWAY.glob("*.conf"):
        mentions = re.findall(r"collab-\d:8000", conf.read_text())
        if conf.name == "collab-upstream.conf":
            assert mentions == ["collab-1:8000", "collab-2:8000"]
        else:
            assert not mentions, conf.name


def test_upstream_balances_by_connections_with_passive_failover() -> None:
    text = (GATEWAY / "collab-upstream.conf").read_text()
    assert re.search(r"^\s*least_conn;", text, re.M)
    assert re.search(r"^\s*zone collab_app \w+;", text, re.M), "workers must share state"
    servers = re.findall(r"^\s*server (\S+) ([^;]*);", text, re.M)
    assert len(servers) >= 2
    for _host, params in servers:
        assert "max_fails=" in params and "fail_timeout=" in params
    proxy = re.sub(r"#[^\n]*", "", (GATEWAY / "collab-proxy.conf").read_text())
    assert re.search(r"proxy_next_upstream error timeout http_502 http_503 http_504;", proxy)
    assert "non_idempotent" not in proxy, "a retried POST could apply a write twice"


def _location(name: str) -> str:
    text = (GATEWAY / "collab-server.conf").read_text()
    match = re.search(r"location " + re.escape(name) + r" \{(.*?)\n    \}", text, re.S)
    assert match, name
    return match.group(1)


def test_websocket_location_upgrades_and_keeps_sockets_for_an_hour() -> None:
    ws = _location("= /ws")
    assert "include collab-proxy.conf;" in ws
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $connection_upgrade;" in ws
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        assert re.search(rf"{directive} (1h|[3-9]\d{{3,}}s?);", ws), directive
    assert "proxy_http_version 1.1;" in (GATEWAY / "collab-proxy.conf").read_text()


# --- live gateway ------------------------------------------------------------------------


async def test_static_client_gets_cache_and_security_headers(prefix: Path) -> None:
    async with running_gateway(prefix, [free_port(), free_port()]) as base, client(base) as http:
        for path in ("/", "/index.html", "/notes/42"):
            page = await http.get(path)
            assert page.status_code == 200 and page.text == INDEX_HTML, path
            assert page.headers["cache-control"] == "no-cache", path
            assert_security_headers(page)
        asset = await http.get(f"/{ASSET}")
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-type"].startswith("application/javascript")
        assert_security_headers(asset)
        missing = await http.get("/assets/app-00000000.js")
        assert missing.status_code == 404, "a missing asset must not become index.html"
        assert "immutable" not in missing.headers.get("cache-control", "")
        assert_security_headers(missing)
        big = await http.post("/", content=b"x" * 32 * 1024)
        assert big.status_code == 413
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.text == "ok\n"


async def test_proxied_paths_fail_over_and_forward_trustworthy_headers(prefix: Path) -> None:
    async with (
        stub_replica("alive") as alive,
        running_gateway(prefix, [free_port(), alive]) as base,
        client(base) as http,
    ):
        for _ in range(6):  # the dead upstream is first: every request must still land
            echo = await http.get("/api/notes", headers={"X-Forwarded-For": "6.6.6.6"})
            assert echo.status_code == 200
            seen = echo.json()
            assert seen["server"] == "alive" and seen["path"] == "/api/notes"
            assert seen["headers"]["x-forwarded-for"] == "127.0.0.1", "forged XFF passed on"
            assert seen["headers"]["x-real-ip"] == "127.0.0.1"
            assert seen["headers"]["host"] == base
            assert re.fullmatch(r"[0-9a-f]{32}", seen["headers"]["x-request-id"])
            assert_security_headers(echo)
        for path in ("/livez", "/readyz"):
            assert (await http.get(path)).json()["path"] == path
        for path in ("/metrics", "/metrics/extra"):
            hidden = await http.get(path)
            assert hidden.status_code == 404 and "server" not in hidden.text, path
        too_big = await http.post("/api/notes", content=b"x" * (8 * 1024 * 1024 + 1))
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "too_large"


async def open_socket(base: str, stack: contextlib.AsyncExitStack) -> tuple[ClientConnection, str]:
    """A WebSocket through the gateway, checked end to end; returns it and the replica."""
    ws = await stack.enter_async_context(websockets.connect(f"ws://{base}/ws"))
    hello = json.loads(await ws.recv())
    assert hello["headers"]["upgrade"].lower() == "websocket"
    assert hello["headers"]["connection"].lower() == "upgrade"
    await ws.send('{"type":"heartbeat","rid":1}')
    assert await ws.recv() == '{"type":"heartbeat","rid":1}'
    return ws, str(hello["server"])


async def test_websockets_are_proxied_and_balanced_by_open_connections(prefix: Path) -> None:
    async with (
        stub_replica("one") as one,
        stub_replica("two") as two,
        running_gateway(prefix, [one, two]) as base,
        contextlib.AsyncExitStack() as stack,
    ):
        _, first = await open_socket(base, stack)
        second_ws, second = await open_socket(base, stack)
        assert {first, second} == {"one", "two"}
        # Free the replica picked second. Round-robin would now pick the first replica
        # again; least_conn must pick the one with fewer open sockets.
        # close() returns once nginx has closed the client side, which it does after
        # releasing the upstream peer, so the count is already down; no sleep needed.
        await second_ws.close()
        _, third = await open_socket(base, stack)
        assert third == second


async def test_no_upstream_left_answers_in_the_api_error_shape(prefix: Path) -> None:
    async with running_gateway(prefix, [free_port(), free_port()]) as base, client(base) as http:
        for path in ("/api/notes", "/ws", "/livez", "/readyz"):
            down = await http.get(path)
            assert down.status_code == 503, path
            assert down.headers["content-type"] == "application/json"
            assert down.headers["retry-after"] == "2"
            assert down.json() == {
                "error": {"code": "unavailable", "message": "no server is available; retry later"}
            }
            assert_security_headers(down)
