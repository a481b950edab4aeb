"""One WebSocket connection: the I/O shell around ``connection``'s
``ConnectionProtocol``, which takes every protocol decision (the hello and its
timeout, rate limits, bad frames, token expiry, every close code). The shell
owns the socket, the bounded outbound queue, the writer task and one timer
task, and hands dispatched requests to the ``Hub``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, assert_never

from starlette.websockets import WebSocket, WebSocketDisconnect

from collab import frames
from collab import messages as m
from collab.clock import iso_from_epoch_s
from collab.close_codes import CloseCode
from collab.connection import (
    PROTOCOL_VERSION,
    Action,
    Authenticate,
    Close,
    Config,
    ConnectionProtocol,
    Dispatch,
    Limited,
    Received,
    Request,
    Send,
)
from collab.errors import CollabError, Forbidden, Internal, RateLimited, Unavailable
from collab.outbox import Outbox
from collab.types import Access, User
from collab.ws_transport import ABORT, SEND_NOW, framed_text

if TYPE_CHECKING:
    from collab.runtime import Runtime
    from collab.settings import Settings

log = logging.getLogger("collab.session")

# How long one outbound frame (a last error, the close frame) may take to go
# out while the socket closes, before the connection is dropped instead.
CLOSE_SEND_S = 1.0


def protocol_config(s: Settings) -> Config:
    """The protocol's limits, from the settings."""
    return Config(
        hello_timeout_s=s.hello_timeout_s,
        token_expiry_grace_s=s.token_expiry_grace_s,
        frame_rate_per_s=s.frame_rate_per_s,
        frame_burst=s.frame_burst,
        edit_rate_per_s=s.edit_rate_per_s,
        edit_burst=s.edit_burst,
        acquire_rate_per_s=s.acquire_rate_per_s,
        acquire_burst=s.acquire_burst,
        max_bad_frames=s.max_bad_frames,
        parse=m.Limits(
            max_changes=s.max_changes_per_edit,
            rid_max_chars=s.rid_max_chars,
            max_note_chars=s.max_note_chars,
        ),
    )


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
        self.access: dict[str, Access] = {}
        self.protocol = ConnectionProtocol(protocol_config(self.settings), time.monotonic())
        self._out = Outbox(self.settings.outbound_queue_max, self.settings.outbound_buffer_bytes)
        self._slow = False  # dropped for not reading: no close handshake is waited for
        write_now = ws.scope.get(SEND_NOW)
        self._write_now: Callable[[bytes], bool] | None = write_now if callable(write_now) else None
        self._sending = False  # the writer took a frame and has not written it yet
        self._close: Close | None = None
        self._closed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._attached = False
        self._token: str | None = None  # the token in force: hello's, then each refresh's
        self._user_slot = False  # one of the user's socket slots is held

    # -- Peer -------------------------------------------------------------------
    def push(self, frame: str) -> None:
        if self._close is not None:
            return
        # Nothing queued or being written: straight to the transport.
        write_now = None if self._sending or self._out else self._write_now
        if write_now is not None and write_now(framed_text(frame)):
            return
        if not self._out.put(frame):
            self._slow = True
            self._out.clear()  # freed now, not when the peer gets round to reading
            self.rt.metrics.slow_consumers.inc()
            self._perform(self.protocol.queue_full())

    def close_soon(self, code: int, reason: str) -> None:
        self._perform(self.protocol.close(code, reason))

    # -- lifecycle ----------------------------------------------------------------
    async def run(self) -> None:
        # The address's slot is taken before the first await, so concurrent
        # upgrades from one address are counted one by one; it and the user's
        # slot are given back however the socket ends.
        slot = self.rt.address_slots.take(self.client_ip)
        try:
            await self._run(slot is not None)
        finally:
            if slot is not None:
                slot.release()
            if self._user_slot:
                self._user_slot = False
                await self.rt.user_slots.release(self.user.id, self.socket_id)

    async def _run(self, address_slot: bool) -> None:
        await self.ws.accept()
        if not address_slot:
            await self._act(self.protocol.refuse_crowded(self.rt.address_slots.limit))
        elif self.rt.connect_throttle.take(self.client_ip, time.monotonic()):
            self._arm_timer()
        else:
            await self._act(self.protocol.refuse_connect())
        try:
            await self._read()
        finally:
            for task in (self._writer, self._timer):
                if task is not None:
                    task.cancel()
            if self._attached:
                self.rt.connections.discard(self)
                await self.hub.detach(self)
                close = self._close or Close(CloseCode.NORMAL, "")
                self.rt.metrics.ws_closes.labels(str(int(close.code))).inc()
                await self._close_ws(close)
            elif self._close is not None:
                # Refused before the welcome. A client that left first, or a
                # hello whose handling raised, gets no close frame from here.
                await self._close_ws(self._close)

    async def _read(self) -> None:
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
                    self.protocol.connection_lost()
                    return
                await self._frame(raw)
        except WebSocketDisconnect:
            self.protocol.connection_lost()
        finally:
            closing.cancel()

    async def _frame(self, raw: Mapping[str, Any]) -> None:
        now = time.monotonic()
        text = raw.get("text")
        if text is None:
            await self._act(self.protocol.receive_binary(now))
        else:
            await self._act(self.protocol.receive_text(text, now))

    # -- actions ------------------------------------------------------------------
    async def _act(self, actions: Iterable[Action]) -> None:
        """Perform the actions of a frame, in order, awaiting the hub."""
        for action in actions:
            if isinstance(action, Dispatch):
                await self._dispatch(action.request)
            elif isinstance(action, Authenticate):
                await self._authenticate(action.hello)
            elif isinstance(action, Send) and self._writer is None:
                # No writer before the welcome: the hello's replies go
                # straight to the socket, ahead of the close that follows.
                await self._send_now(action.frame)
            else:
                self._perform([action])

    def _perform(self, actions: Iterable[Action]) -> None:
        """Perform actions that need no waiting (everything but a frame's
        dispatch and authentication, which only ``_act`` meets)."""
        for action in actions:
            if isinstance(action, Send):
                self.push(frames.encode(action.frame))
            elif isinstance(action, Close):
                if self._close is None:
                    self._close = action
                    self._closed.set()
            elif isinstance(action, Limited):
                self.rt.metrics.rate_limited.labels(action.kind).inc()
            elif isinstance(action, Received):
                self.rt.metrics.ws_frames.labels(action.kind).inc()
            else:
                raise RuntimeError(f"{action!r} must be performed by the reader")

    async def _authenticate(self, hello: m.Hello) -> None:
        """Check the hello's token and attach the session, then welcome."""
        try:
            claims = await self.rt.authenticate(hello.token)
            self.user = claims.user
            self._token = hello.token  # checked again when the user signs a token out
            await self._reserve_user_slot(hello.resume)
            resumed, leases = await self.hub.attach(self, hello.resume)
        except CollabError as exc:
            await self._act(self.protocol.hello_refused(exc))
            return
        self._attached = True
        self.rt.connections.add(self)
        self.protocol.hello_accepted(claims.expires_at, time.monotonic(), time.time())
        await self._send_now(frames.welcome(
            hello.rid, PROTOCOL_VERSION, self.session, self.user, self.rt.server_token,
            self.settings.heartbeat_ms, self.settings.lease_ttl_ms, resumed, leases,
        ))  # fmt: skip
        self._writer = asyncio.create_task(self._write())
        self._arm_timer()

    async def _reserve_user_slot(self, resume: str | None) -> None:
        """One of the user's socket slots, reserved atomically across every
        replica (``collab.admission``); ``rate_limited`` at the limit. Marked
        held before the await, so a cancelled hello still gives it back."""
        slots = self.rt.user_slots
        self._user_slot = True
        admitted = await slots.reserve(self.user.id, self.socket_id, self._user_slot_lost)
        if not admitted and resume:
            # Resuming one's own session takes the slot of the socket it
            # replaces (often a dead connection nobody noticed yet, which the
            # resume closes anyway): a user at the limit can come back at once.
            old = await self.rt.registry.get(resume)
            if old is not None and old.user.id == self.user.id:
                await slots.evict(self.user.id, old.socket)
                admitted = await slots.reserve(self.user.id, self.socket_id, self._user_slot_lost)
        if not admitted:
            self._user_slot = False
            self.rt.metrics.rate_limited.labels("sockets_per_user").inc()
            raise RateLimited(f"at most {slots.limit} open sockets per user")

    def _user_slot_lost(self) -> None:
        """The slot lapsed (not renewed within its TTL) and the user's other
        sockets filled the limit meanwhile: this socket is over it."""
        self._user_slot = False
        self.close_soon(CloseCode.POLICY, "too many sockets for this user")

    async def _dispatch(self, request: Request) -> None:
        try:
            reply = await self._handle(request)
        except CollabError as exc:
            reply = exc.wire(request.rid)
        except Exception:
            log.exception("frame handler failed", extra={"frame": type(request).__name__})
            reply = Internal().wire(request.rid)
        if reply is not None:
            self.push(frames.encode(reply))

    async def _handle(self, msg: Request) -> dict[str, Any] | None:
        hub = self.hub
        if isinstance(msg, m.Heartbeat):
            return frames.heartbeat_ack(msg.rid, await hub.heartbeat(self))
        if isinstance(msg, m.Edit):
            return await hub.edits.edit(self, msg)
        if isinstance(msg, m.Subscribe):
            return await hub.subscribe(self, msg.note, msg.rid)
        if isinstance(msg, m.Unsubscribe):
            await hub.unsubscribe(self, msg.note)
            return frames.unsubscribed(msg.rid, msg.note)
        if isinstance(msg, m.Sync):
            await hub.edits.sync(self, msg.note, msg.since, msg.rid)
            return None
        if isinstance(msg, m.Acquire):
            return await hub.tokens.acquire(self, msg.note, msg.wait, msg.rid)
        if isinstance(msg, m.Release):
            return await hub.tokens.release(self, msg.note, msg.fence, msg.rid)
        if isinstance(msg, m.Revoke):
            fence = await hub.revocations.revoke(self.user, msg.note)
            return frames.revoked(msg.rid, msg.note, fence)
        if isinstance(msg, m.Refresh):
            return await self._refresh(msg)
        if isinstance(msg, m.Caret):
            await hub.handoff.caret(self, msg)
            return None
        if isinstance(msg, m.Keep):
            return hub.handoff.keep(self, msg.note, msg.rid)
        if isinstance(msg, m.EditRequest):
            return await hub.handoff.request(self, msg.note, msg.rid)
        assert_never(msg)

    async def recheck_sign_in(self) -> None:
        if self._token is None:
            return  # not signed in yet: the hello's own check is still to come
        try:
            await self.rt.authenticate(self._token)
        except Unavailable:
            return  # cannot tell now; the token's own expiry still ends it
        except CollabError as exc:
            self.close_soon(CloseCode.UNAUTHORIZED, exc.message[:100])

    async def _refresh(self, msg: m.Refresh) -> dict[str, Any]:
        claims = await self.rt.authenticate(msg.token)
        self._token = msg.token
        if claims.user.id != self.user.id:
            raise Forbidden("a refreshed token must be for the same user")
        # The role comes fresh from the database with each refresh: a demoted
        # admin's socket stops acting as an admin.
        self.user = claims.user
        self.protocol.token_refreshed(claims.expires_at, time.monotonic(), time.time())
        self._arm_timer()
        return frames.refreshed(msg.rid, iso_from_epoch_s(claims.expires_at))

    # -- tasks ---------------------------------------------------------------------
    def _arm_timer(self) -> None:
        """Start the timer afresh after an event that moved the protocol's
        next deadline (the welcome, a refresh)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.create_task(self._timer_loop())

    async def _timer_loop(self) -> None:
        """Sleep until the protocol's next deadline, then let it decide.

        Sleeps instead of polling: a once-a-second wake-up per socket was about
        a sixth of an idle 10,000-socket server's CPU (docs/benchmarks.md).
        Waking before anything is due costs one tick that changes nothing."""
        while (deadline := self.protocol.next_deadline()) is not None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            self._perform(self.protocol.tick(time.monotonic(), time.time()))

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._out.get()
                self._sending = True
                await self.ws.send_text(frame)
                self._sending = False
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._perform(self.protocol.send_failed())

    async def _send_now(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(frames.encode(frame))

    async def _close_ws(self, close: Close) -> None:
        if self._slow:
            # A client that does not read would never take the close frame
            # either: sending it would wait on the transport forever.
            self._abort()
            return
        # Drain what is already queued (best effort) so the last error frame
        # reaches the client before the close, unless the close says not to.
        with contextlib.suppress(Exception):
            while close.flush and (frame := self._out.get_nowait()) is not None:
                await asyncio.wait_for(self.ws.send_text(frame), CLOSE_SEND_S)
        self._out.clear()
        try:
            await asyncio.wait_for(
                self.ws.close(code=int(close.code), reason=close.reason[:120]), CLOSE_SEND_S
            )
        except TimeoutError:
            self._abort()
        except Exception:
            log.debug("close frame not sent", exc_info=True)

    def _abort(self) -> None:
        """Drop the TCP connection without a close handshake, through the hook
        ``collab serve`` puts in the scope (``collab/ws_transport.py``).
        Under another ASGI server, the server's own ping timeout ends it."""
        abort = self.ws.scope.get(ABORT)
        if callable(abort):
            abort()
