"""The Starlette application: routes, middleware, error mapping and the
lifespan that builds the runtime (store, leases, presence, registry, bus, hub)
from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from collab import api, openapi
from collab.auth import hash_password
from collab.bus import make_bus
from collab.errors import CollabError, Forbidden, Internal, Unavailable
from collab.hub import Hub
from collab.leases import make_lease_store
from collab.logs import request_id
from collab.metrics import Metrics
from collab.presence import make_presence_store
from collab.registry import make_session_registry
from collab.runtime import Runtime
from collab.session import Connection
from collab.settings import Settings
from collab.store import open_store
from collab.store.base import Store
from collab.store.compaction import start_compactor

log = logging.getLogger("collab.app")

# Live runtimes of this process, so a SIGTERM handler can drain them.
RUNTIMES: set[Runtime] = set()
_DRAINS: set[asyncio.Task[None]] = set()


async def bootstrap_admin(settings: Settings, store: Store) -> None:
    """``COLLAB_BOOTSTRAP_ADMIN_*`` creates the first admin once, only while
    there is none; there are no default credentials."""
    if not settings.bootstrap_admin_username or await store.count_admins() > 0:
        return
    if await store.get_user_by_name(settings.bootstrap_admin_username) is None:
        password_hash = await asyncio.to_thread(hash_password, settings.bootstrap_admin_password)
        await store.create_user(settings.bootstrap_admin_username, password_hash, "admin")
        log.info("bootstrap admin created", extra={"user": settings.bootstrap_admin_username})


def static_dir(settings: Settings) -> Path | None:
    if settings.static_dir:
        path = Path(settings.static_dir)
        return path if path.is_dir() else None
    for candidate in (
        Path(__file__).resolve().parent / "static",
        Path(__file__).resolve().parent.parent / "frontend" / "dist",
    ):
        if (candidate / "index.html").is_file():
            return candidate
    return None


_NO_CLIENT = """<!doctype html><title>collab</title>
<h1>collab server is running</h1>
<p>The web client is not built. Run <code>cd frontend && npm ci && npm run build</code>
or set <code>COLLAB_STATIC_DIR</code>.</p>"""


# The messages that start a response: an HTTP one, or the refusal of a
# WebSocket upgrade (sent before any socket exists).
_RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


class RequestContext:
    """Request id, timing, metrics and a JSON access log for HTTP requests;
    the request id also on a refused WebSocket upgrade."""

    def __init__(self, app: ASGIApp, runtime_of: Any) -> None:
        self.app = app
        self.runtime_of = runtime_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, receive, _with_headers(send, ((b"x-request-id", _rid(scope)),)))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _rid(scope).decode("latin-1")
        token = request_id.set(rid)
        status = {"code": 500}
        started = time.perf_counter()

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "other") if route else "other"
            rt_now: Runtime | None = self.runtime_of()
            metrics: Metrics | None = rt_now.metrics if rt_now is not None else None
            if metrics is not None:
                metrics.http_requests.labels(scope["method"], path, str(status["code"])).inc()
                metrics.http_latency.labels(path).observe(elapsed)
            if path not in ("/livez", "/readyz", "/metrics"):
                runtime: Runtime | None = self.runtime_of()
                conn = HTTPConnection(scope)
                if runtime is not None:
                    client = runtime.client_address(conn)
                else:
                    client = conn.client.host if conn.client else "unknown"
                log.info(
                    "request",
                    extra={"method": scope["method"], "path": scope["path"],
                           "status": status["code"], "ms": round(elapsed * 1000, 2),
                           "client": client},
                )  # fmt: skip
            request_id.reset(token)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = (settings or Settings.from_env()).with_defaults_for_embedded()
    holder: dict[str, Runtime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics = Metrics()
        leases = make_lease_store(settings)
        await leases.start()
        # Rule 10: learn the highest database timeline any replica has seen
        # before the first write (the migrations are writes).
        store = await open_store(settings, timeline_floor=await leases.record_timeline(0))
        if settings.migrate_on_start:
            await store.migrate()
        await bootstrap_admin(settings, store)
        metrics.watch_pool(store.pool_stats)
        hub = Hub(
            settings, store, leases, make_presence_store(settings),
            make_session_registry(settings), make_bus(settings, metrics), metrics,
        )  # fmt: skip
        await hub.start()
        compactor = start_compactor(store, settings)  # edit-log retention
        runtime = Runtime(settings, store, hub, metrics)
        await runtime.user_slots.start()
        holder["rt"] = runtime
        app.state.runtime = runtime
        RUNTIMES.add(runtime)
        # `server` is what clients see in `welcome` (no pod name): logged
        # here so an operator can tell which replica a client was on.
        log.info(
            "collab started",
            extra={"replica": hub.replica_id, "server": runtime.server_token,
                   "embedded": settings.embedded},
        )  # fmt: skip
        try:
            yield
        finally:
            RUNTIMES.discard(runtime)
            if not hub.draining:
                await hub.drain()
            await hub.close()
            await runtime.user_slots.close()
            if compactor is not None:
                compactor.cancel()
                await asyncio.gather(compactor, return_exceptions=True)
            await runtime.signouts.close()
            await store.close()
            runtime.hashing.close()

    async def ws_endpoint(websocket: WebSocket) -> None:
        rt: Runtime = websocket.app.state.runtime
        if rt.draining:
            # Refuse the upgrade with 503 so the gateway retries another replica.
            refusal = Unavailable("this replica is restarting; connect again")
            await websocket.send_denial_response(api.json(refusal.http_body(), 503))
            return
        origin = websocket.headers.get("origin")
        if not rt.origin_allowed(origin, websocket.headers.get("host")):
            # Cross-site WebSocket hijacking: another site's page opening a
            # socket in the victim's browser. Refused before the upgrade.
            log.warning(
                "websocket origin refused",
                extra={"event": "ws_origin_refused", "origin": origin[:200] if origin else None,
                       "client": rt.client_address(websocket)},
            )  # fmt: skip
            denial = Forbidden("this origin may not open a socket here")
            await websocket.send_denial_response(api.json(denial.http_body(), 403))
            return
        await Connection(websocket, rt, rt.client_address(websocket)).run()

    async def livez(request: Request) -> Response:
        return api.json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        if rt.draining:
            return api.json({"status": "draining"}, 503)
        checks: dict[str, str] = {}
        for name, probe in (("database", rt.store.ping), ("leases", rt.hub.leases.ping)):
            try:
                await probe()
                checks[name] = "ok"
            except Exception:
                checks[name] = "down"
        checks["bus"] = "ok" if rt.hub.bus.connected else "down"
        ok = all(v == "ok" for v in checks.values())
        reply: dict[str, Any] = {"status": "ok" if ok else "unavailable"}
        # Which backend is down is for operators (loopback, or the flag), not
        # for anonymous callers mapping the deployment.
        if settings.readyz_details or rt.is_loopback(request):
            reply["checks"] = checks
        return api.json(reply, 200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        return Response(rt.metrics.render(), media_type=METRICS_MEDIA_TYPE)

    routes: list[Any] = [
        *api.routes_for(settings),
        openapi.ROUTE,
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        WebSocketRoute("/ws", ws_endpoint),
    ]
    if not settings.metrics_port:
        # With COLLAB_METRICS_PORT set, /metrics exists only on that listener
        # (create_metrics_app), so no route can leak it through the front end.
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    client = static_dir(settings)
    if client is not None:
        # A GET-only route, not a Mount: a Mount would claim every method on every
        # path and answer a wrong method on /api/... with the static files' 405.
        files = StaticFiles(directory=client, html=True)

        async def client_files(request: Request) -> Response:
            return await files.get_response(request.path_params["path"], request.scope)

        routes.append(Route("/{path:path}", client_files, methods=["GET"]))
    else:
        routes.append(Route("/", lambda r: HTMLResponse(_NO_CLIENT), methods=["GET"]))

    async def on_collab_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CollabError)
        return api.json(exc.http_body(), exc.status)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        response = api.json({"error": {"code": code, "message": message}}, exc.status_code)
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return response

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            CollabError: on_collab_error,
            HTTPException: on_http_error,
        },
    )
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(RequestContext, runtime_of=lambda: holder.get("rt"))
    app.add_middleware(SecurityHeaders)
    return app


METRICS_MEDIA_TYPE = "text/plain; version=0.0.4"


def create_metrics_app() -> ASGIApp:
    """The ``COLLAB_METRICS_PORT`` listener: ``GET /metrics`` of this
    process's runtime, 404 for anything else. Started by ``collab serve``
    next to the HTTP server, in the same process and event loop."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan off: http only
            return
        runtime = next(iter(RUNTIMES), None)
        if scope["path"] != "/metrics" or scope["method"] not in ("GET", "HEAD"):
            response = api.json({"error": {"code": "not_found", "message": "not found"}}, 404)
        elif runtime is None:
            response = api.json(Unavailable("starting").http_body(), 503)
        else:
            response = Response(runtime.metrics.render(), media_type=METRICS_MEDIA_TYPE)
        await response(scope, receive, send)

    # The same request id and hardening headers as every other response.
    return SecurityHeaders(RequestContext(app, runtime_of=lambda: next(iter(RUNTIMES), None)))


# The client is a same-origin single-page app: its scripts, styles, the /api
# calls and the /ws socket all come from this origin ('self' covers same-origin
# ws:/wss: in CSP level 3 browsers). style-src needs 'unsafe-inline': the
# editor (CodeMirror's style-mod) injects an inline <style> element for its
# themes; with style-src 'self' alone Chromium blocks it (checked on the built
# client). Styles cannot run script, and script-src stays 'self' with no inline
# code or eval. Dropping 'unsafe-inline' needs a per-response nonce handed to
# the editor (EditorView.cspNonce) and written into index.html. img-src allows
# data: for the page's empty "data:," icon and the client's inline SVG icons.
# frame-ancestors 'none' forbids framing (clickjacking); X-Frame-Options says
# the same to older browsers.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _rid(scope: Scope) -> bytes:
    """The caller's ``X-Request-Id`` (bounded), or a new one."""
    given = dict(scope.get("headers") or []).get(b"x-request-id", b"")[:64]
    return given or uuid.uuid4().hex.encode()


def _with_headers(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` adding ``extra`` headers to the response start (an HTTP
    response, or a refused WebSocket upgrade); everything else passes."""

    async def wrapped(message: Any) -> None:
        if message["type"] in _RESPONSE_STARTS:
            message.setdefault("headers", []).extend(extra)
        await send(message)

    return wrapped


class UnexpectedErrors:
    """A handler's unexpected exception becomes the JSON 500 of every other
    error, answered inside the middlewares that add the request id and the
    security headers: Starlette's own handler for ``Exception`` runs outside
    every middleware, so its 500 carried neither."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            if started:
                raise  # too late for another answer: the connection is dropped
            await api.json(Internal().http_body(), 500)(scope, receive, send)


class SecurityHeaders:
    """Hardening headers on every HTTP response, from the app itself, so every
    deployment path (the chart has no gateway in front) carries them."""

    HEADERS = (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # a refused upgrade is an HTTP response
            await self.app(scope, receive, _with_headers(send, self.HEADERS))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        api_call = scope["path"].startswith("/api/")

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend(self.HEADERS)
                if api_call:
                    # Tokens and private notes must not linger in shared or browser caches.
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        await self.app(scope, receive, send_wrapper)


def drain_runtimes() -> None:
    """Start draining every runtime of this process (called on SIGTERM)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for runtime in list(RUNTIMES):
        task = loop.create_task(runtime.drain())
        _DRAINS.add(task)  # keep a reference until done
        task.add_done_callback(_DRAINS.discard)
