"""The protocol of one WebSocket connection as a pure state machine: events in,
actions out, no I/O (the sans-I/O style of python-websockets' ``protocol.py``).
``session.py`` is the shell: it reports what happened on the socket and the
clock, performs the returned actions in order, and talks to the hub.

States, in order: ``HELLO`` (waiting for the first frame, bounded by the hello
timeout), ``AUTHENTICATING`` (the shell checks the token and attaches the
session; no frame is read), ``OPEN``, ``CLOSED``. The first close decision is
final: from then on every event returns no action.

Two clocks come in as floats. ``now`` is monotonic seconds: rate limits, the
hello deadline and every deadline this module returns are on it. ``wall`` is
Unix seconds and serves only the token's expiry, which is a wall-clock fact;
while a token is in force the expiry is checked against the wall clock at
least every ``EXPIRY_RECHECK_S``, so a stepped wall clock is noticed."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from collab import messages as m
from collab.close_codes import CloseCode
from collab.errors import BadRequest, CollabError, RateLimited, TokenExpired, Unauthorized
from collab.protocol import AbuseCounter, TokenBucket

PROTOCOL_VERSION = 1
# Longest wait between two looks at the wall clock while a token is in force
# (an internal wake-up period, not a limit on clients).
EXPIRY_RECHECK_S = 60.0

# A client message the open connection hands to the hub: anything but hello.
Request = (
    m.Heartbeat | m.Refresh | m.Subscribe | m.Unsubscribe | m.Sync | m.Acquire | m.Release
    | m.Revoke | m.Edit | m.Caret | m.Keep | m.EditRequest
)  # fmt: skip

# A refused hello closes with the code its error maps to; any other error is 4401.
_HELLO_REFUSALS = {
    "forbidden": CloseCode.FORBIDDEN,
    "rate_limited": CloseCode.POLICY,
    "unavailable": CloseCode.INTERNAL,
}


class State(enum.Enum):
    HELLO = "hello"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Send:
    """Send this frame to the client, after every frame sent before it."""

    frame: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close the socket with this code and reason. Returned at most once per
    connection, always as the last action of its list."""

    code: int
    reason: str

    @property
    def flush(self) -> bool:
        """Whether frames already queued go out before the close frame: not
        after a policy close (a client that does not read would hold the close
        up) nor after a transport failure (nothing more can be sent)."""
        return self.code not in (CloseCode.POLICY, CloseCode.INTERNAL)


@dataclass(frozen=True)
class Authenticate:
    """Verify ``hello.token`` and attach the session, then report exactly one
    of ``hello_accepted`` or ``hello_refused``."""

    hello: m.Hello


@dataclass(frozen=True)
class Dispatch:
    """Hand this request to the hub and send its reply."""

    request: Request


@dataclass(frozen=True)
class Received:
    """A well-formed frame of this type (``edit``, ``hello`` ...) arrived on the
    open connection; the shell counts it."""

    kind: str


@dataclass(frozen=True)
class Limited:
    """A rate limit refused one ``connect``, ``frames``, ``edits`` or
    ``acquires``; the shell counts it."""

    kind: str


Action = Send | Close | Authenticate | Dispatch | Received | Limited


@dataclass(frozen=True)
class Config:
    """The per-connection limits (docs/protocol.md, Limits); the defaults are
    the settings' defaults."""

    hello_timeout_s: float = 10.0
    token_expiry_grace_s: float = 30.0
    frame_rate_per_s: float = 200.0
    frame_burst: int = 400
    edit_rate_per_s: float = 100.0
    edit_burst: int = 200
    acquire_rate_per_s: float = 5.0
    acquire_burst: int = 20
    max_bad_frames: int = 20
    parse: m.Limits = field(default_factory=m.Limits)


class ConnectionProtocol:
    """One connection's protocol decisions. Every event method returns the
    actions to perform, in order; an event the current state cannot receive
    (a frame while authenticating, a second ``hello_accepted``) is a bug in
    the shell and raises ``RuntimeError``."""

    def __init__(self, config: Config, now: float) -> None:
        """A connection opened at ``now``: the hello timeout starts."""
        self.config = config
        self.state = State.HELLO
        self._hello_deadline = now + config.hello_timeout_s
        self._hello: m.Hello | None = None
        self._frames = TokenBucket(config.frame_rate_per_s, config.frame_burst)
        self._edits = TokenBucket(config.edit_rate_per_s, config.edit_burst)
        self._acquires = TokenBucket(config.acquire_rate_per_s, config.acquire_burst)
        self._abuse = AbuseCounter(config.max_bad_frames)
        self._expires_at = math.inf  # wall: when the token in force expires
        self._expired_at: float | None = None  # wall: when its expiry was announced
        self._clock = (now, 0.0)  # (now, wall) at the latest event that carried both

    # -- the hello ------------------------------------------------------------------
    def refuse_connect(self) -> list[Action]:
        """The client's address is over its connect rate; nothing is read."""
        self._expect(State.HELLO)
        error = RateLimited("too many connections from your address")
        close = self._close(CloseCode.POLICY, "connect rate limit")
        return [Limited("connect"), Send(error.wire()), close]

    def refuse_crowded(self, limit: int) -> list[Action]:
        """The client's address already has ``limit`` open sockets here;
        nothing is read. Refused like a connect over the rate."""
        self._expect(State.HELLO)
        error = RateLimited(f"at most {limit} open sockets from your address")
        close = self._close(CloseCode.POLICY, "too many sockets from your address")
        return [Limited("sockets_per_ip"), Send(error.wire()), close]

    def hello_accepted(self, expires_at: float, now: float, wall: float) -> None:
        """The token was good and the session is attached; ``expires_at`` is
        the token's expiry (Unix seconds). The shell sends the welcome."""
        if self.state is State.CLOSED:
            return  # closed while authenticating: the close stands
        self._expect(State.AUTHENTICATING)
        self.state = State.OPEN
        self._expires_at, self._expired_at, self._clock = expires_at, None, (now, wall)

    def hello_refused(self, error: CollabError) -> list[Action]:
        """Authentication or attaching failed with ``error``."""
        if self.state is State.CLOSED:
            return []
        self._expect(State.AUTHENTICATING)
        assert self._hello is not None
        code = _HELLO_REFUSALS.get(error.code, CloseCode.UNAUTHORIZED)
        return [Send(error.wire(self._hello.rid)), self._close(code, error.code)]

    # -- frames ---------------------------------------------------------------------
    def receive_text(self, text: str, now: float) -> list[Action]:
        """One text frame from the client."""
        if self.state is State.HELLO:
            return self._first_frame(text, now)
        if self.state is State.CLOSED:
            return []
        self._expect(State.OPEN)
        refused = self._over_frame_rate(now)
        if refused:
            return refused
        try:
            msg = m.parse_frame(text, self.config.parse)
        except m.FrameError as exc:
            return self._bad_frame(exc)
        return self._request(msg, now)

    def receive_binary(self, now: float) -> list[Action]:
        """One binary frame from the client; the protocol has none."""
        if self.state is State.HELLO:
            if now >= self._hello_deadline:
                return [self._close(CloseCode.HELLO_TIMEOUT, "hello timeout")]
            return [self._close(CloseCode.POLICY, "expected a hello frame")]
        if self.state is State.CLOSED:
            return []
        self._expect(State.OPEN)
        refused = self._over_frame_rate(now)
        if refused:
            return refused
        binary = BadRequest("binary frames are not allowed")
        return self._bad_frame(m.FrameError(binary, abusive=True))

    def _first_frame(self, text: str, now: float) -> list[Action]:
        # The deadline is checked here too, not only by the timer: a hello
        # that arrives late is late however busy the event loop was.
        if now >= self._hello_deadline:
            return [self._close(CloseCode.HELLO_TIMEOUT, "hello timeout")]
        try:
            msg = m.parse_frame(text, self.config.parse)
        except m.FrameError as exc:
            reply = exc.error.wire(exc.rid)
        else:
            if isinstance(msg, m.Hello):
                self.state, self._hello = State.AUTHENTICATING, msg
                return [Authenticate(msg)]
            reply = Unauthorized("the first frame must be hello").wire(msg.rid)
        return [Send(reply), self._close(CloseCode.UNAUTHORIZED, "expected a hello frame")]

    def _over_frame_rate(self, now: float) -> list[Action]:
        """Nothing when the frame is within the frame rate; otherwise the
        refusal, which is a bad frame (a frame over the rate is not read)."""
        if self._frames.take(now):
            return []
        if self._abuse.strike():
            return [Limited("frames"), self._close(CloseCode.POLICY, "frame rate limit")]
        return [Limited("frames"), Send(RateLimited("too many frames; slow down").wire())]

    def _bad_frame(self, exc: m.FrameError) -> list[Action]:
        actions: list[Action] = [Send(exc.error.wire(exc.rid))]
        if exc.abusive and self._abuse.strike():
            actions.append(self._close(CloseCode.POLICY, "too many malformed frames"))
        return actions

    def _request(self, msg: m.ClientMessage, now: float) -> list[Action]:
        received = Received(type(msg).__name__.lower())
        if isinstance(msg, m.Hello):
            return [received, Send(BadRequest("hello was already received").wire(msg.rid))]
        if isinstance(msg, m.Edit) and not self._edits.take(now):
            error = RateLimited("too many edits; slow down")
            return [received, Limited("edits"), Send(error.wire(msg.rid))]
        if isinstance(msg, m.Acquire) and not self._acquires.take(now):
            error = RateLimited("too many acquire requests; slow down")
            return [received, Limited("acquires"), Send(error.wire(msg.rid))]
        return [received, Dispatch(msg)]

    # -- the token in force -----------------------------------------------------------
    def token_refreshed(self, expires_at: float, now: float, wall: float) -> None:
        """A ``refresh`` succeeded: the new token (expiring at ``expires_at``,
        Unix seconds) is in force and a pending expiry is forgotten."""
        if self.state is State.CLOSED:
            return
        self._expect(State.OPEN)
        self._expires_at, self._expired_at, self._clock = expires_at, None, (now, wall)

    # -- time -------------------------------------------------------------------------
    def tick(self, now: float, wall: float) -> list[Action]:
        """Time passed. The hello times out (4408); the token in force expires
        (``error token_expired``, no rid), then after the grace period without
        a refresh the socket closes (4401)."""
        if self.state is State.HELLO and now >= self._hello_deadline:
            return [self._close(CloseCode.HELLO_TIMEOUT, "hello timeout")]
        if self.state is not State.OPEN:
            return []
        self._clock = (now, wall)
        actions: list[Action] = []
        if self._expired_at is None:
            if wall < self._expires_at:
                return []
            self._expired_at = wall
            actions.append(Send(TokenExpired("token expired; send refresh").wire()))
        if wall - self._expired_at >= self.config.token_expiry_grace_s:
            actions.append(self._close(CloseCode.UNAUTHORIZED, "token expired"))
        return actions

    def next_deadline(self) -> float | None:
        """When ``tick`` may next have something to do (on the ``now`` clock),
        or None when no time-based decision is pending. Ticking earlier is
        harmless."""
        if self.state is State.HELLO:
            return self._hello_deadline
        if self.state is not State.OPEN:
            return None
        now, wall = self._clock
        if self._expired_at is None:
            due = self._expires_at
        else:
            due = self._expired_at + self.config.token_expiry_grace_s
        return now + min(due - wall, EXPIRY_RECHECK_S)

    # -- closing from outside -----------------------------------------------------------
    def close(self, code: int, reason: str) -> list[Action]:
        """The server closes the connection for a reason decided elsewhere (a
        resume elsewhere, a kick, lost access, a drain)."""
        if self.state is State.CLOSED:
            return []
        return [self._close(code, reason)]

    def queue_full(self) -> list[Action]:
        """The outbound queue is full: a client too slow to read is dropped,
        never allowed to grow the server's memory."""
        return self.close(CloseCode.POLICY, "outbound queue full: client too slow")

    def send_failed(self) -> list[Action]:
        """The transport failed while sending. 1006 is reserved for a
        connection closed without a close frame and is never sent."""
        return self.close(CloseCode.INTERNAL, "send failed")

    def connection_lost(self) -> None:
        """The client went away; there is nobody left to send a close to."""
        self.state = State.CLOSED

    # -- helpers ------------------------------------------------------------------------
    def _close(self, code: int, reason: str) -> Close:
        self.state = State.CLOSED
        return Close(code, reason)

    def _expect(self, state: State) -> None:
        if self.state is not state:
            raise RuntimeError(f"event not allowed in state {self.state.name}")
