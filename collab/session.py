"""One WebSocket connection: a thin shell around ``messages`` (parsing) and the
``Hub`` (decisions and state). It owns the socket's bounded outbound queue, its
rate limits and its timers (hello timeout, token expiry)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from collab import messages as m
from collab.auth import Claims, iso_from_unix
from collab.errors import (
    BadRequest,
    CollabError,
    Forbidden,
    Internal,
    RateLimited,
    TokenExpired,
    Unauthorized,
)
from collab.protocol import AbuseCounter, TokenBucket
from collab.types import Access, User

if TYPE_CHECKING:
    from collab.runtime import Runtime

log = logging.getLogger("collab.session")

PROTOCOL_VERSION = 1
# Longest sleep of a connection's expiry timer; bounds how late a wall-clock
# step is noticed (an internal wake-up period, not a limit on clients).
_EXPIRY_RECHECK_MAX_S = 60.0


class _Closed(Exception):
    """Raised inside the connection when the server decided to close it."""


class Connection:
    """Implements ``collab.peer.Peer`` over a Starlette WebSocket."""

    def __init__(self, ws: WebSocket, rt: Runtime, client_ip: str) -> None:
        self.ws = ws
        self.rt = rt
        self.settings = rt.settings
        self.hub = rt.hub
        self.client_ip = client_ip
        self.socket_id = uuid.uuid4().hex
        self.session = uuid.uuid4().hex
        self.user = User("", "", "guest")
        self.subs: dict[str, int] = {}
        self.access: dict[str, Access] = {}
        s = self.settings
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=s.outbound_queue_max)
        self._frames = TokenBucket(s.frame_rate_per_s, s.frame_burst)
        self._edits = TokenBucket(s.edit_rate_per_s, s.edit_burst)
        self._acquires = TokenBucket(s.acquire_rate_per_s, s.acquire_burst)
        self._abuse = AbuseCounter(s.max_bad_frames)
        self._limits = m.Limits(max_changes=s.max_changes_per_edit, rid_max_chars=s.rid_max_chars)
        self._close: tuple[int, str] | None = None
        self._closed = asyncio.Event()
        self._claims: Claims | None = None
        self._expired_at: float | None = None
        self._attached = False

    # -- Peer -------------------------------------------------------------------
    def push(self, frame: str) -> None:
        if self._close is not None:
            return
        try:
            self._out.put_nowait(frame)
        except asyncio.QueueFull:
            # A client too slow to read is dropped, never allowed to grow memory.
            self.rt.metrics.slow_consumers.inc()
            self.close_soon(1008, "outbound queue full: client too slow")

    def close_soon(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._closed.set()

    # -- lifecycle ----------------------------------------------------------------
    async def run(self) -> None:
        now = time.monotonic()
        await self.ws.accept()
        if not self.rt.connect_throttle.take(self.client_ip, now):
            self.rt.metrics.rate_limited.labels("connect").inc()
            await self._send_now(RateLimited("too many connections from your address").wire())
            await self._close_ws(1008, "connect rate limit")
            return
        try:
            hello = await self._hello()
        except _Closed:
            return
        writer = asyncio.create_task(self._writer())
        timers = asyncio.create_task(self._timers())
        try:
            await self._serve(hello)
        finally:
            writer.cancel()
            timers.cancel()
            if self._attached:
                await self.hub.detach(self)
            code, reason = self._close or (1000, "")
            self.rt.metrics.ws_closes.labels(str(code)).inc()
            await self._close_ws(code, reason)

    async def _hello(self) -> m.Hello:
        """First frame, within the hello timeout, must be a valid hello."""
        try:
            raw = await asyncio.wait_for(self.ws.receive(), self.settings.hello_timeout_s)
        except TimeoutError:
            await self._close_ws(4408, "hello timeout")
            raise _Closed() from None
        text = raw.get("text")
        if raw.get("type") == "websocket.disconnect" or text is None:
            await self._close_ws(1008 if text is None else 1000, "expected a hello frame")
            raise _Closed()
        try:
            msg = m.parse_frame(text, self._limits)
        except m.FrameError as exc:
            await self._send_now(exc.error.wire(exc.rid))
            await self._close_ws(4401, "expected a hello frame")
            raise _Closed() from None
        if not isinstance(msg, m.Hello):
            await self._send_now(Unauthorized("the first frame must be hello").wire(msg.rid))
            await self._close_ws(4401, "expected a hello frame")
            raise _Closed()
        try:
            self._claims = await self.rt.authenticate(msg.token)
            self.user = self._claims.user
            if len(self.rt.user_sockets(self.user.id)) >= self.settings.max_sockets_per_user:
                raise RateLimited(f"at most {self.settings.max_sockets_per_user} sockets per user")
            resumed, leases = await self.hub.attach(self, msg.resume)
        except CollabError as exc:
            await self._send_now(exc.wire(msg.rid))
            code = {"forbidden": 4403, "rate_limited": 1008, "unavailable": 1011}.get(
                exc.code, 4401
            )
            await self._close_ws(code, exc.code)
            raise _Closed() from None
        self._attached = True
        self.rt.connections.add(self)
        await self._send_now({
            "type": "welcome", "rid": msg.rid, "protocol": PROTOCOL_VERSION,
            "session": self.session, "user": self.user.wire(), "server": self.hub.replica_id,
            "heartbeat_ms": self.settings.heartbeat_ms, "lease_ttl_ms": self.settings.lease_ttl_ms,
            "resumed": resumed, "leases": leases,
        })  # fmt: skip
        return msg

    async def _serve(self, hello: m.Hello) -> None:
        """Read frames until the socket ends, however it ends: the close code
        does not release tokens (a browser reload sends 1001), only an
        explicit ``release`` does."""
        # One close watcher for the whole connection, not one per frame: a
        # task created and cancelled per frame was a measurable share of the
        # per-frame cost (docs/benchmarks.md).
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            while self._close is None:
                receive = asyncio.ensure_future(self.ws.receive())
                done, _ = await asyncio.wait(
                    {receive, closing}, return_when=asyncio.FIRST_COMPLETED
                )
                if receive not in done:
                    receive.cancel()
                    return
                raw = receive.result()
                if raw["type"] == "websocket.disconnect":
                    return
                await self._frame(raw)
        except WebSocketDisconnect:
            return
        finally:
            closing.cancel()
            self.rt.connections.discard(self)

    async def _frame(self, raw: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if not self._frames.take(now):
            self.rt.metrics.rate_limited.labels("frames").inc()
            if self._abuse.strike():
                self.close_soon(1008, "frame rate limit")
            else:
                self.push(m.encode(RateLimited("too many frames; slow down").wire()))
            return
        text = raw.get("text")
        if text is None:
            self._bad(m.FrameError(BadRequest("binary frames are not allowed"), abusive=True))
            return
        try:
            msg = m.parse_frame(text, self._limits)
        except m.FrameError as exc:
            self._bad(exc)
            return
        self.rt.metrics.ws_frames.labels(type(msg).__name__.lower()).inc()
        try:
            reply = await self._dispatch(msg, now)
        except CollabError as exc:
            reply = exc.wire(msg.rid)
        except Exception:
            log.exception("frame handler failed", extra={"frame": type(msg).__name__})
            reply = Internal().wire(msg.rid)
        if reply is not None:
            self.push(m.encode(reply))

    def _bad(self, exc: m.FrameError) -> None:
        self.push(m.encode(exc.error.wire(exc.rid)))
        if exc.abusive and self._abuse.strike():
            self.close_soon(1008, "too many malformed frames")

    async def _dispatch(self, msg: m.ClientMessage, now: float) -> dict[str, Any] | None:
        hub = self.hub
        if isinstance(msg, m.Heartbeat):
            return {"type": "heartbeat_ack", "rid": msg.rid, "leases": await hub.heartbeat(self)}
        if isinstance(msg, m.Edit):
            if not self._edits.take(now):
                self.rt.metrics.rate_limited.labels("edits").inc()
                raise RateLimited("too many edits; slow down")
            return await hub.edits.edit(self, msg)
        if isinstance(msg, m.Subscribe):
            await hub.subscribe(self, msg.note, msg.rid)
            return None
        if isinstance(msg, m.Unsubscribe):
            await hub.unsubscribe(self, msg.note)
            return {"type": "unsubscribed", "rid": msg.rid, "note": msg.note}
        if isinstance(msg, m.Sync):
            await hub.edits.sync(self, msg.note, msg.since, msg.rid)
            return None
        if isinstance(msg, m.Acquire):
            if not self._acquires.take(now):
                self.rt.metrics.rate_limited.labels("acquires").inc()
                raise RateLimited("too many acquire requests; slow down")
            return await hub.tokens.acquire(self, msg.note, msg.wait, msg.rid)
        if isinstance(msg, m.Release):
            return await hub.tokens.release(self, msg.note, msg.fence, msg.rid)
        if isinstance(msg, m.Revoke):
            fence = await hub.revocations.revoke(self.user, msg.note)
            return {"type": "revoked", "rid": msg.rid, "note": msg.note, "fence": fence}
        if isinstance(msg, m.Refresh):
            return await self._refresh(msg)
        raise BadRequest("hello was already received")

    async def _refresh(self, msg: m.Refresh) -> dict[str, Any]:
        claims = await self.rt.authenticate(msg.token)
        if claims.user.id != self.user.id:
            raise Forbidden("a refreshed token must be for the same user")
        self._claims = claims
        # The role comes fresh from the database with each refresh: a demoted
        # admin's socket stops acting as an admin.
        self.user = claims.user
        self._expired_at = None
        return {"type": "refreshed", "rid": msg.rid, "expires_at": iso_from_unix(claims.expires_at)}

    # -- tasks ---------------------------------------------------------------------
    async def _writer(self) -> None:
        try:
            while True:
                frame = await self._out.get()
                await self.ws.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # 1006 is reserved for "closed without a close frame" and is never
            # sent; the transport failed, so the server ends the connection.
            self.close_soon(1011, "send failed")
        except asyncio.CancelledError:
            raise

    async def _timers(self) -> None:
        """Token expiry: warn when the token expires, then close 4401 after the
        grace period unless a refresh came in between.

        Sleeps until the next deadline instead of polling: a once-a-second
        wake-up per socket was about a sixth of an idle 10,000-socket server's
        CPU (docs/benchmarks.md). A refresh only moves deadlines later, so
        waking at a stale deadline just re-reads the claims and sleeps again;
        the sleep is capped so a stepped wall clock is noticed."""
        grace = self.settings.token_expiry_grace_s
        while self._close is None:
            claims = self._claims
            now = time.time()
            if claims is None:
                deadline = now + _EXPIRY_RECHECK_MAX_S
            elif self._expired_at is None:
                if now >= claims.expires_at:
                    self._expired_at = now
                    self.push(m.encode(TokenExpired("token expired; send refresh").wire()))
                    continue
                deadline = claims.expires_at
            elif now - self._expired_at >= grace:
                self.close_soon(4401, "token expired")
                return
            else:
                deadline = self._expired_at + grace
            await asyncio.sleep(min(deadline - now, _EXPIRY_RECHECK_MAX_S))

    async def _send_now(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(m.encode(frame))

    async def _close_ws(self, code: int, reason: str) -> None:
        # Drain what is already queued (best effort) so the last error frame
        # reaches the client before the close.
        with contextlib.suppress(Exception):
            while not self._out.empty() and code not in (1008, 1011):
                await asyncio.wait_for(self.ws.send_text(self._out.get_nowait()), 1.0)
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason[:120])
