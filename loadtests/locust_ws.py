"""Protocol v1 over a WebSocket for locust users (gevent, websocket-client).

Every request (``hello``, ``subscribe``, ``acquire``, ``edit`` ...) and every
push the users care about is reported through locust's ``request`` event, so
the CSV and the thresholds see them like HTTP requests:

- request type ``WS``: a request and its reply, timed from send to reply;
- ``PUSH``: ``edited`` pushes, timed from the writer's send (read from the
  UUIDv7 ``op``, see ``loadtests.optime``) to arrival; a version gap is a
  failure named ``edited gap``;
- ``WAIT``: time spent queued for the write token (by design as long as the
  holders hold it; excluded from the p99 threshold);
- ``HTTP``: account and note set-up calls.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import gevent
import orjson
import requests
import websocket
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from locust.env import Environment

from loadtests.optime import op_time_ns

Frame = dict[str, Any]


class ProtocolError(Exception):
    """An ``error`` reply, a refused hello or a closed socket."""


def ws_url_of(host: str) -> str:
    base = host.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    return "ws://" + base.removeprefix("http://") + "/ws"


class Reporter:
    """Thin wrapper over ``environment.events.request.fire``."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment

    def fire(
        self, kind: str, name: str, ms: float, length: int = 0, exc: Exception | None = None
    ) -> None:
        self.env.events.request.fire(  # type: ignore[no-untyped-call]
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=length,
            exception=exc,
            context={},
        )


class Http:
    """Set-up calls (register, login, notes, sharing), reported as ``HTTP``."""

    def __init__(self, host: str, reporter: Reporter) -> None:
        self.host = host.rstrip("/")
        self.reporter = reporter
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        name: str,
        token: str | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> requests.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        resp = self.session.request(
            method, self.host + path, json=json, headers=headers, timeout=30
        )
        ms = (time.perf_counter() - started) * 1000
        exc = None if resp.status_code in ok else ProtocolError(f"{name}: HTTP {resp.status_code}")
        self.reporter.fire("HTTP", name, ms, len(resp.content), exc)
        return resp

    def account(self, username: str, password: str) -> Frame:
        """Register the account, or log in when it exists already. Register
        first: failed logins would trip the server's login throttle."""
        body = {"username": username, "password": password}
        resp = self.call("POST", "/api/auth/register", "register", json=body, ok=(201, 409))
        if resp.status_code == 409:
            resp = self.call("POST", "/api/auth/login", "login", json=body)
        if resp.status_code not in (200, 201):
            raise ProtocolError(f"cannot log in {username}: HTTP {resp.status_code}")
        data: Frame = resp.json()
        return data


class WsSession:
    """One socket. ``request`` blocks the calling greenlet until the reply;
    pushes go to ``on_push``; a heartbeat greenlet keeps leases alive."""

    def __init__(
        self, url: str, reporter: Reporter, on_push: Callable[[Frame, int], None] | None = None
    ) -> None:
        self.url = url
        self.reporter = reporter
        self.on_push = on_push
        self.ws: websocket.WebSocket | None = None
        self.pending: dict[str, AsyncResult] = {}
        self.welcome: Frame = {}
        self._rids = itertools.count(1)
        self._send_lock = Semaphore()
        self._greenlets: list[gevent.Greenlet] = []
        self.closed = False

    def connect(self, token: str, timeout: float = 30.0) -> Frame:
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.url, timeout=timeout)
        except Exception as exc:
            self.reporter.fire("WS", "connect", (time.perf_counter() - started) * 1000, 0, exc)
            raise
        self.ws.settimeout(None)
        self._greenlets.append(gevent.spawn(self._read))
        self.welcome = self.request("hello", timeout=timeout, token=token, client="locust/1")
        self._greenlets.append(gevent.spawn(self._heartbeat, self.welcome["heartbeat_ms"] / 1000))
        return self.welcome

    def _read(self) -> None:
        assert self.ws is not None
        try:
            while True:
                raw = self.ws.recv()
                now = time.time_ns()
                if not raw:
                    break
                frame = orjson.loads(raw)
                rid = frame.get("rid")
                waiter = self.pending.pop(str(rid), None) if rid is not None else None
                if waiter is not None:
                    waiter.set(frame)
                elif self.on_push is not None:
                    self.on_push(frame, now)
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.closed = True
            for waiter in self.pending.values():
                waiter.set_exception(ProtocolError("socket closed"))
            self.pending.clear()

    def _heartbeat(self, period_s: float) -> None:
        while not self.closed:
            gevent.sleep(period_s)
            try:
                self.request("heartbeat")
            except ProtocolError:
                return

    def send(self, frame: Frame) -> None:
        if self.ws is None or self.closed:
            raise ProtocolError("socket closed")
        with self._send_lock:
            self.ws.send(orjson.dumps(frame).decode())

    def request(
        self,
        kind: str,
        timeout: float = 30.0,
        name: str | None = None,
        expected: tuple[str, ...] = (),
        **fields: Any,
    ) -> Frame:
        """Send and wait for the reply; report it (an ``error`` reply whose code
        is not in ``expected`` is a failure)."""
        rid = f"r{next(self._rids)}"
        waiter = AsyncResult()
        self.pending[rid] = waiter
        started = time.perf_counter()
        exc: Exception | None = None
        reply: Frame = {}
        try:
            self.send({"type": kind, "rid": rid, **fields})
            reply = waiter.get(timeout=timeout)
            if reply.get("type") == "error" and reply.get("code") not in expected:
                exc = ProtocolError(f"{kind}: {reply.get('code')}")
        except gevent.Timeout:
            exc = ProtocolError(f"{kind}: no reply in {timeout}s")
        except ProtocolError as err:
            exc = err
        finally:
            self.pending.pop(rid, None)
        ms = (time.perf_counter() - started) * 1000
        self.reporter.fire("WS", name or kind, ms, len(str(reply)) if reply else 0, exc)
        if exc is not None:
            raise exc
        return reply

    def close(self) -> None:
        """Stop the heartbeat first, so shutting down reports no failure."""
        gevent.killall(self._greenlets[1:])
        self.closed = True
        if self.ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self.ws.close()
        gevent.killall(self._greenlets[:1], block=False)


def report_edited(reporter: Reporter, frame: Frame, now_ns: int) -> None:
    """Fan-out latency of one ``edited`` push (when the op carries a time)."""
    sent = op_time_ns(str(frame.get("op", "")))
    if sent is not None:
        reporter.fire("PUSH", "edited", max(0.0, (now_ns - sent) / 1e6), 0)
