"""Defences of a real ``collab serve`` process facing clients directly: the
security headers and CSP on every response, /metrics only on its own port,
/readyz details only for loopback, the WebSocket Origin allow-list, the
request-header deadline (slowloris), login brakes per (account, address)
before per account, no user-name enumeration through register or lookup,
auth events with the client address in the logs, and a registration flood
that leaves a bystander's requests fast."""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from tests.support.client import Api, WsClient
from tests.support.server import ServerProcess
from tests.support.services import free_port

pytestmark = pytest.mark.parametrize(
    "backend_env", ["embedded", "distributed"], indirect=True, scope="module"
)
HEADER_TIMEOUT_S = 2.0
ALLOWED = "https://app.example.test"
PAIR_MAX, ACCOUNT_MAX = 3, 7
LOOKUP_BURST = 5
STATIC = Path(__file__).resolve().parents[2] / "frontend" / "dist"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(
    backend_env: Callable[..., dict[str, str]], metrics_port: int
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        env=backend_env(
            COLLAB_METRICS_PORT=str(metrics_port),
            COLLAB_HTTP_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
            COLLAB_ALLOWED_ORIGINS=ALLOWED,
            COLLAB_LOGIN_MAX_FAILURES=str(PAIR_MAX),
            COLLAB_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(ACCOUNT_MAX),
            COLLAB_LOGIN_MAX_FAILURES_PER_IP="100",
            COLLAB_LOGIN_LOCKOUT_S="30",
            COLLAB_LOGIN_MAX_LOCKOUT_S="120",
            COLLAB_LOOKUP_BURST_PER_USER=str(LOOKUP_BURST),
            COLLAB_LOOKUP_PER_USER_PER_MIN="0.001",
            COLLAB_STATIC_DIR=str(STATIC) if (STATIC / "index.html").is_file() else "",
        ),
        name="hardening",
    ).start()
    yield proc
    proc.stop(5)


async def test_security_headers_on_every_response(server: ServerProcess, metrics_port: int) -> None:
    upgrade = {
        "connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "origin": "https://evil.example",
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused_upgrade = await http.get("/ws", headers=upgrade)
        assert refused_upgrade.status_code == 403
        scraped = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        responses = [
            refused_upgrade,
            scraped,
            await http.get(f"http://127.0.0.1:{metrics_port}/other"),  # 404
            await http.get("/livez"),
            await http.get("/api/config"),
            await http.get("/api/me"),  # 401
            await http.get("/api/nope"),  # 404
            await http.put("/api/notes"),  # 405
            await http.post("/api/auth/login", content=b"{nope"),  # 400
            await http.get("/api/openapi.json"),
            await http.get("/"),
        ]
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
        csp = r.headers.get("content-security-policy", "")
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
        assert directives.get("script-src") == "'self'", where
        assert directives.get("frame-ancestors") == "'none'", where
        assert directives.get("object-src") == "'none'", where
        assert "unsafe-eval" not in csp, where
        assert r.headers.get("cross-origin-opener-policy") == "same-origin", where
        assert r.headers.get("x-content-type-options") == "nosniff", where
        assert r.headers.get("referrer-policy") == "no-referrer", where
        assert r.headers.get("x-frame-options") == "DENY", where
        assert r.headers.get("x-request-id"), where
        if r.request.url.path.startswith("/api/"):
            assert r.headers.get("cache-control") == "no-store", where
    page = responses[-1].text
    # The policy fits the page: no inline script, scripts and styles from this origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "no inline <script>"
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/") or url.startswith("data:"), url


async def test_metrics_are_served_only_on_their_own_port(
    server: ServerProcess, metrics_port: int
) -> None:
    async with httpx.AsyncClient() as http:
        main = await http.get(server.url + "/metrics")
        assert main.status_code == 404
        scraped = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200 and "collab_http_requests_total" in scraped.text
        other = await http.get(f"http://127.0.0.1:{metrics_port}/api/config")
        assert other.status_code == 404
        doc = (await http.get(server.url + "/api/openapi.json")).json()
        assert "/metrics" not in doc["paths"]


async def test_readyz_details_only_for_loopback(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        local = (await http.get("/readyz")).json()
        assert set(local["checks"]) == {"database", "leases", "bus"}
        # Through a trusted front end, the caller is the forwarded address.
        remote = await http.get("/readyz", headers={"x-real-ip": "203.0.113.40"})
        assert remote.status_code == 200 and remote.json() == {"status": "ok"}


async def test_websocket_origin_allow_list(server: ServerProcess) -> None:
    api = await Api.register(server.url)
    same = f"http://127.0.0.1:{server.port}"
    for origin in (None, same, ALLOWED):
        extra = {} if origin is None else {"origin": origin}
        ws = await WsClient.connect(server.ws_url, **extra)
        welcome = await ws.hello(api.token or "")
        assert welcome["type"] == "welcome", origin
        await ws.close()
    for origin in ("https://evil.example", f"http://127.0.0.1:{server.port + 1}", "null"):
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(server.ws_url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
        assert info.value.response.status_code == 403, origin


def _held_for(port: int, limit_s: float, after_a_request: bool = False) -> float:
    """Open a connection (and, if asked, complete one request on it first),
    send a request line, then trickle header bytes; seconds from the request
    line until the server closes it (capped at ``limit_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        if after_a_request:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b'{"status":"ok"}'):
                reply += sock.recv(4096)
        started = time.monotonic()
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.25)
        while time.monotonic() - started < limit_s:
            try:
                sock.sendall(b"X")
                if sock.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
    return time.monotonic() - started


async def test_slow_request_headers_are_cut(server: ServerProcess) -> None:
    held = await asyncio.to_thread(_held_for, server.port, HEADER_TIMEOUT_S + 10)
    # The same deadline applies to a later request on a kept-alive connection.
    kept = await asyncio.to_thread(_held_for, server.port, HEADER_TIMEOUT_S + 10, True)
    print(
        f"slowloris held {held:.2f} s on a new connection, {kept:.2f} s on a kept-alive one "
        f"(COLLAB_HTTP_HEADER_TIMEOUT_S={HEADER_TIMEOUT_S})"
    )
    assert held < HEADER_TIMEOUT_S + 3 and kept < HEADER_TIMEOUT_S + 3, (held, kept)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/livez")).status_code == 200


async def _login(server: ServerProcess, name: str, password: str, address: str) -> httpx.Response:
    return await Api(server.url).call(
        "POST", "/api/auth/login", {"username": name, "password": password},
        headers={"x-real-ip": address},
    )  # fmt: skip


async def test_a_stranger_cannot_lock_the_owner_out(server: ServerProcess) -> None:
    owner = await Api.register(server.url)
    name = owner.user["name"]
    password = "pw-123456789"  # Api.register's password
    stranger = "203.0.113.10"
    statuses = [(await _login(server, name, "guess-1234", stranger)).status_code
                for _ in range(PAIR_MAX + 1)]  # fmt: skip
    assert statuses == [401] * PAIR_MAX + [429], statuses
    assert (await _login(server, name, password, "198.51.100.20")).status_code == 200
    # Guessing from many addresses trips the per-account brake, far higher.
    for i in range(ACCOUNT_MAX - PAIR_MAX):
        assert (await _login(server, name, "guess-1234", f"203.0.113.{50 + i}")).status_code == 401
    braked = await _login(server, name, password, "198.51.100.20")
    assert braked.status_code == 429
    assert 0 < braked.json()["error"]["retry_after_s"] <= 30


async def test_register_and_lookup_do_not_list_names(server: ServerProcess) -> None:
    anon = Api(server.url)
    name = "taken-" + uuid.uuid4().hex[:8]
    body = {"username": name, "password": "pw-123456789"}
    assert (await anon.call("POST", "/api/auth/register", body)).status_code == 201
    taken = await anon.call("POST", "/api/auth/register", body)
    reserved = await anon.call("POST", "/api/auth/register", {**body, "username": "admin"})
    assert taken.status_code == reserved.status_code == 409
    assert taken.json() == reserved.json(), "a taken name answers like a reserved one"

    user = await Api.register(server.url)
    found = await user.call("GET", f"/api/users/lookup?name={name}")
    assert found.status_code == 200 and found.json()["name"] == name
    for probe in (name.upper(), name[:-1], name[:3]):
        assert (await user.call("GET", f"/api/users/lookup?name={probe}")).status_code == 404
    statuses = [
        (await user.call("GET", f"/api/users/lookup?name={name}")).status_code
        for _ in range(LOOKUP_BURST)
    ]
    assert statuses[-1] == 429, statuses


async def test_logs_carry_the_client_address_and_auth_failures(server: ServerProcess) -> None:
    marker = "logcheck-" + uuid.uuid4().hex[:8]
    await _login(server, marker, "wrong-password", "192.0.2.77")
    await Api(server.url, "not-a-token").call("GET", "/api/me", headers={"x-real-ip": "192.0.2.78"})
    await asyncio.sleep(0.3)
    assert server.log_path is not None
    events = [orjson.loads(line) for line in server.log_path.read_text().splitlines()
              if line.startswith("{")]  # fmt: skip
    failed = [e for e in events if e.get("event") == "login_failed" and e.get("username") == marker]
    assert failed and failed[0]["client"] == "192.0.2.77"
    refused = [e for e in events if e.get("event") == "token_refused"]
    assert any(e["client"] == "192.0.2.78" for e in refused)
    requests = [e for e in events if e.get("msg") == "request" and e.get("path") == "/api/me"]
    assert any(e.get("client") == "192.0.2.78" for e in requests)
    assert all("wrong-password" not in line for line in server.log_path.read_text().splitlines())


async def test_a_registration_flood_leaves_bystanders_fast(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    """48 sign-ups at once, each from its own address (so only the hashing
    pool limits them), while a bystander polls /livez and sends heartbeats on
    its socket. Before argon2 left the event loop each sign-up blocked every
    request and socket for ~0.1 s in turn (48 of them: seconds, longer than a
    lease)."""
    server = spawn_server(backend_env(COLLAB_HASH_WORKERS="2"), name="flood")
    bystander = await WsClient.signed_in(server.ws_url, (await Api.register(server.url)).token)
    beats: list[float] = []

    async def heartbeats(until: asyncio.Future[list[int]]) -> None:
        while not until.done():
            started = time.perf_counter()
            reply = await bystander.request("heartbeat", timeout=30)
            assert reply["type"] == "heartbeat_ack", reply
            beats.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        quiet = []
        for _ in range(20):
            started = time.perf_counter()
            await http.get("/livez")
            quiet.append(time.perf_counter() - started)

        async def sign_up(i: int) -> int:
            r = await http.post(
                "/api/auth/register",
                json={"username": f"flood{i}-{uuid.uuid4().hex[:6]}", "password": "pw-123456789"},
                headers={"x-real-ip": f"198.18.{i // 200}.{i % 200 + 1}"},
            )
            return r.status_code

        flood = asyncio.gather(*(sign_up(i) for i in range(48)))
        beating = asyncio.create_task(heartbeats(flood))
        during = []
        await asyncio.sleep(0.05)
        while not flood.done():
            started = time.perf_counter()
            await http.get("/livez")
            during.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
        statuses = await flood
        await beating
    await bystander.close()
    print(
        f"bystander /livez: quiet p50 {statistics.median(quiet) * 1000:.1f} ms; during the flood "
        f"p50 {statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms over "
        f"{len(during)} requests; heartbeat p50 {statistics.median(beats) * 1000:.1f} ms, "
        f"max {max(beats) * 1000:.1f} ms over {len(beats)}; sign-ups {statuses.count(201)} "
        f"created, {statuses.count(429)} refused"
    )
    assert set(statuses) <= {201, 429} and statuses.count(201) >= 1
    # Generous bounds: the loop was never blocked for seconds.
    assert max(during) < 2.0 and max(beats) < 2.0


async def test_connections_beyond_the_limit_get_503(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> None:
    """Idle connections count toward COLLAB_HTTP_MAX_CONCURRENCY; past it a
    request is answered 503 at once instead of the replica taking on more."""
    server = spawn_server(backend_env(COLLAB_HTTP_MAX_CONCURRENCY="4"), name="concurrency")
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/livez")).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/livez")).status_code == 200
