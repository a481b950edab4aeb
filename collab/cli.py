"""``collab``: serve, migrate, user add, check-config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from collab.app import drain_runtimes
from collab.settings import Settings, SettingsError
from collab.ws_transport import CollabWebSocketProtocol


# uvicorn bounds the idle time between requests (timeout_keep_alive) but not
# the time a client takes to send a request's headers: a slowloris client that
# trickles a header byte at a time held a connection (its memory and
# descriptor) for over a minute, and a few hundred of them exhaust a replica
# that faces clients directly. With HeaderDeadlineH11Protocol a request's
# headers must be complete within COLLAB_HTTP_HEADER_TIMEOUT_S of the
# connection opening, or of the first byte of a later request on a kept-alive
# connection; otherwise the connection is closed. WebSocket upgrades leave the
# protocol once their headers are in.
class CollabConfig(uvicorn.Config):
    """uvicorn's config plus the header deadline and the garbage collector's
    young-generation threshold (picklable for workers > 1)."""

    def __init__(
        self, *args: Any, header_timeout_s: float = 10.0, gc_young_threshold: int = 0,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.gc_young_threshold = gc_young_threshold

    def load(self) -> None:
        # Runs in every serving process (each worker loads its own config).
        tune_gc(self.gc_young_threshold)
        super().load()


def tune_gc(young_threshold: int) -> None:
    """Collect the young generation only every ``young_threshold``
    allocations (0: Python's default of 700). At the default, objects that
    live a few milliseconds (frames being fanned out, per-edit state) survive
    two young collections under load, reach the oldest generation, and make
    full collections run every few seconds: 150-330 ms each with 1,000
    viewers, the whole event loop stopped (docs/benchmarks.md, "Garbage
    collection pauses"). Most of them die by reference count before a larger
    young generation fills."""
    if young_threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, older, oldest)


class HeaderDeadlineH11Protocol(H11Protocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout_s: float = getattr(config, "header_timeout_s", 10.0)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # A new request is arriving (or still arriving): its headers are due.
            if self._header_timer is None and data:
                self._arm_header_timer()
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info(
                "closing a connection whose request headers were too slow",
                extra={"event": "slow_headers", "peer": self.client[0] if self.client else None},
            )
            self.transport.close()


def _settings() -> Settings:
    try:
        return Settings.from_env().with_defaults_for_embedded()
    except SettingsError as exc:
        print(f"collab: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from collab.logs import setup_logging

    # CLI flags override the environment; the app re-reads settings from it.
    for flag, key in (("host", "HOST"), ("port", "PORT"), ("workers", "WORKERS"),
                      ("graceful_shutdown_s", "GRACEFUL_SHUTDOWN_S")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            os.environ["COLLAB_" + key] = str(value)
    settings = _settings()
    setup_logging(settings.log_level)
    config = CollabConfig(
        "collab.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # h11 (not httptools) so the header-size bound and the header deadline
        # below apply when clients reach uvicorn directly (embedded mode).
        http=HeaderDeadlineH11Protocol,
        header_timeout_s=settings.http_header_timeout_s,
        gc_young_threshold=settings.gc_young_threshold,
        h11_max_incomplete_event_size=settings.http_max_header_bytes,
        timeout_keep_alive=max(1, round(settings.http_keepalive_s)),
        # Connections and in-flight requests (WebSockets included); past it
        # uvicorn answers 503 instead of exhausting descriptors and memory.
        limit_concurrency=settings.http_max_concurrency,
        ws=CollabWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    server = DrainingServer(config)
    server.drain_delay_s = settings.drain_delay_s
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        # Each worker runs a plain uvicorn Server: its lifespan shutdown still
        # drains (presence, 1012), only without the readiness flip first.
        Multiprocess(config, sockets=[sock]).run()
    else:
        if settings.embedded:
            _print_first_run_hint(settings)
        if settings.metrics_port:
            asyncio.run(_serve_with_metrics(server, settings))
        else:
            server.run()
    return 0


class _QuietServer(uvicorn.Server):
    """A second listener in the process: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_with_metrics(server: uvicorn.Server, settings: Settings) -> None:
    """The HTTP server and the ``COLLAB_METRICS_PORT`` listener in one event
    loop; the metrics listener stops when the HTTP server has finished."""
    from collab.app import create_metrics_app

    metrics = _QuietServer(
        uvicorn.Config(
            create_metrics_app(), host=settings.host, port=settings.metrics_port,
            lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_keep_alive=max(1, round(settings.http_keepalive_s)),
            limit_concurrency=64,
        )
    )  # fmt: skip
    metrics_task = asyncio.create_task(metrics.serve())
    try:
        await server.serve()
    finally:
        metrics.should_exit = True
        await metrics_task


def _print_first_run_hint(settings: Settings) -> None:
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0") else settings.host
    print(
        f"collab: embedded mode (SQLite at {settings.sqlite_path}, in-process leases)\n"
        f"collab: open http://{host}:{settings.port}/ and register an account, or create an\n"
        "collab: admin first with:  collab user add NAME --role admin   (password from stdin)",
        file=sys.stderr,
    )


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT, flip readiness to 503 and drain every
    runtime (presence removed, sockets closed with 1012, leases kept for resume
    elsewhere), keep answering HTTP for ``COLLAB_DRAIN_DELAY_S`` so load
    balancers see the 503, then let uvicorn shut down. A second signal stops
    at once."""

    drain_delay_s = 0.0
    _draining = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._draining or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        drain_runtimes()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().handle_exit(sig, frame)
            return
        loop.call_later(self.drain_delay_s, super().handle_exit, sig, frame)


def cmd_migrate(args: argparse.Namespace) -> int:
    from collab.store import open_store

    async def run() -> list[str]:
        store = await open_store(_settings())
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = asyncio.run(run())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise SystemExit("collab: passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(args: argparse.Namespace) -> int:
    from collab.auth import hash_password
    from collab.errors import Conflict
    from collab.store import open_store

    settings = _settings()
    password = _read_password(args)
    if len(password) < settings.min_password_chars:
        print(f"collab: password must be at least {settings.min_password_chars} characters",
              file=sys.stderr)  # fmt: skip
        return 2

    async def run() -> int:
        store = await open_store(settings)
        try:
            await store.migrate()
            try:
                record = await store.create_user(args.name, hash_password(password), args.role)
            except Conflict:
                print(f"collab: user {args.name!r} already exists", file=sys.stderr)
                return 1
            print(f"created {record.role} {record.name} ({record.id})")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings()
    print(json.dumps(settings.redacted(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab", description="collab notes server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--graceful-shutdown-s", dest="graceful_shutdown_s", type=float)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)
    user = sub.add_parser("user", help="manage accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account; password from a prompt or stdin")
    add.add_argument("name")
    add.add_argument("--role", choices=["admin", "user"], default="user")
    add.set_defaults(func=cmd_user_add)
    check = sub.add_parser("check-config", help="validate and print the settings")
    check.set_defaults(func=cmd_check_config)
    return parser


# Owner-only permissions for everything the server creates: the embedded
# SQLite file (with its -wal and -shm), its directory and the generated JWT
# key hold every account's password hash and the signing key, and were
# created world-readable under the usual 022 umask.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
