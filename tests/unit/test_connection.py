"""The connection protocol state machine, driven synchronously with a fake
clock: every state against every event, every close code and reason."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collab import messages as m
from collab.close_codes import CloseCode
from collab.connection import (
    EXPIRY_RECHECK_S,
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
    State,
)
from collab.errors import (
    BadRequest,
    CollabError,
    Forbidden,
    Internal,
    RateLimited,
    TokenExpired,
    Unauthorized,
    Unavailable,
)

T0 = 1_000.0  # monotonic seconds at accept
W0 = 1_800_000_000.0  # wall-clock seconds at accept
TTL = 3_600.0  # token lifetime from the hello
CONFIG = Config(
    hello_timeout_s=10.0,
    token_expiry_grace_s=30.0,
    frame_rate_per_s=1.0,
    frame_burst=6,
    edit_rate_per_s=1.0,
    edit_burst=2,
    acquire_rate_per_s=1.0,
    acquire_burst=2,
    max_bad_frames=3,
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def frame(kind: str, rid: m.Rid = 1, **fields: Any) -> str:
    return json.dumps({"type": kind, "rid": rid, **fields})


def hello(rid: m.Rid = 1, token: str = "jwt") -> str:
    return frame("hello", rid, token=token)


def edit(rid: m.Rid = 5) -> str:
    return frame("edit", rid, note="n", fence=1, base=0, op=str(uuid.uuid4()), content="x")


def waiting(config: Config = CONFIG) -> ConnectionProtocol:
    """A connection accepted at T0, waiting for its hello."""
    return ConnectionProtocol(config, T0)


def authenticating(config: Config = CONFIG) -> ConnectionProtocol:
    proto = waiting(config)
    proto.receive_text(hello(), T0 + 1)
    assert proto.state is State.AUTHENTICATING
    return proto


def opened(config: Config = CONFIG, ttl: float = TTL) -> ConnectionProtocol:
    """Welcomed at T0 + 1 (wall W0 + 1) with a token valid for ``ttl``."""
    proto = authenticating(config)
    proto.hello_accepted(W0 + ttl, T0 + 1, W0 + 1)
    assert proto.state is State.OPEN
    return proto


def closed() -> ConnectionProtocol:
    proto = opened()
    proto.close(CloseCode.SUPERSEDED, "session resumed elsewhere")
    return proto


def error(code: str, message: str, rid: m.Rid = None) -> Send:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if rid is not None:
        out["rid"] = rid
    return Send(out)


def closes(actions: list[Action]) -> Close | None:
    found = [a for a in actions if isinstance(a, Close)]
    assert len(found) <= 1 and (not found or actions[-1] is found[0]), "a close comes last"
    return found[0] if found else None


# -- close codes ------------------------------------------------------------------


def test_close_codes_are_the_documented_ones() -> None:
    """Every code in protocol.md's close-code table has a name, and every name
    is documented."""
    section = DOCS.read_text().split("## Close codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d{4}) \|", section, re.M)}
    assert documented == {int(code) for code in CloseCode}
    assert 1006 not in documented


def test_close_flushes_the_queue_unless_the_client_or_transport_is_the_problem() -> None:
    for code in CloseCode:
        flush = code not in (CloseCode.POLICY, CloseCode.INTERNAL)
        assert Close(code, "r").flush is flush, code.name


def test_config_defaults_are_the_settings_defaults() -> None:
    from collab.session import protocol_config
    from collab.settings import Settings

    assert protocol_config(Settings()) == Config()


# -- waiting for hello -------------------------------------------------------------


def test_accepted_connection_waits_for_hello_until_the_timeout() -> None:
    proto = waiting()
    assert proto.state is State.HELLO
    assert proto.next_deadline() == T0 + 10.0


def test_hello_asks_the_shell_to_authenticate() -> None:
    proto = waiting()
    actions = proto.receive_text(frame("hello", 7, token="jwt", resume="s1", client="c"), T0 + 1)
    assert actions == [Authenticate(m.Hello(token="jwt", resume="s1", client="c", rid=7))]
    assert proto.state is State.AUTHENTICATING
    assert proto.next_deadline() is None, "authenticating is not bounded by the hello timeout"


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("not json", error("bad_request", "frame is not valid JSON")),
        ("[1]", error("bad_request", "frame must be a JSON object")),
        (frame("hello", 3), error("bad_request", "missing or empty string field 'token'", 3)),
        (frame("nope", 4), error("bad_request", "unknown message type 'nope'", 4)),
    ],
)
def test_malformed_first_frame_closes_4401(text: str, reply: Send) -> None:
    proto = waiting()
    actions = proto.receive_text(text, T0 + 1)
    assert actions == [reply, Close(CloseCode.UNAUTHORIZED, "expected a hello frame")]
    assert proto.state is State.CLOSED


@pytest.mark.parametrize(
    "text",
    [
        frame("heartbeat", 2),
        frame("subscribe", 2, note="n"),
        frame("refresh", 2, token="t"),
        edit(2),
    ],
)
def test_first_frame_not_hello_closes_4401(text: str) -> None:
    proto = waiting()
    actions = proto.receive_text(text, T0 + 1)
    assert actions == [
        error("unauthorized", "the first frame must be hello", 2),
        Close(CloseCode.UNAUTHORIZED, "expected a hello frame"),
    ]


def test_binary_first_frame_closes_1008_without_a_reply() -> None:
    proto = waiting()
    assert proto.receive_binary(T0 + 1) == [Close(CloseCode.POLICY, "expected a hello frame")]
    assert proto.state is State.CLOSED


def test_hello_timeout_closes_4408() -> None:
    proto = waiting()
    assert proto.tick(T0 + 9.999, W0) == []
    assert proto.next_deadline() == T0 + 10.0, "still waiting"
    assert proto.tick(T0 + 10.0, W0) == [Close(CloseCode.HELLO_TIMEOUT, "hello timeout")]
    assert proto.state is State.CLOSED
    assert proto.next_deadline() is None
    assert proto.tick(T0 + 20.0, W0) == [], "closed once"


@pytest.mark.parametrize("late", [10.0, 11.0])
def test_hello_after_the_deadline_is_a_timeout_even_before_the_timer(late: float) -> None:
    proto = waiting()
    assert proto.receive_text(hello(), T0 + late) == [
        Close(CloseCode.HELLO_TIMEOUT, "hello timeout")
    ]
    proto = waiting()
    assert proto.receive_binary(T0 + late) == [Close(CloseCode.HELLO_TIMEOUT, "hello timeout")]


def test_connect_rate_refusal() -> None:
    proto = waiting()
    assert proto.refuse_connect() == [
        Limited("connect"),
        error("rate_limited", "too many connections from your address"),
        Close(CloseCode.POLICY, "connect rate limit"),
    ]
    assert proto.state is State.CLOSED
    assert proto.receive_text(hello(), T0) == []


def test_connect_refusal_only_before_the_hello() -> None:
    with pytest.raises(RuntimeError):
        opened().refuse_connect()


@pytest.mark.parametrize("make", [waiting, opened])
def test_hello_accepted_or_refused_only_while_authenticating(
    make: Callable[[], ConnectionProtocol],
) -> None:
    with pytest.raises(RuntimeError):
        make().hello_accepted(W0 + TTL, T0 + 1, W0 + 1)
    with pytest.raises(RuntimeError):
        make().hello_refused(Unauthorized())


# -- authenticating ----------------------------------------------------------------


def test_no_frame_is_read_while_authenticating() -> None:
    proto = authenticating()
    with pytest.raises(RuntimeError):
        proto.receive_text(frame("heartbeat"), T0 + 2)
    with pytest.raises(RuntimeError):
        proto.receive_binary(T0 + 2)
    with pytest.raises(RuntimeError):
        proto.token_refreshed(W0 + TTL, T0 + 2, W0 + 2)


def test_slow_authentication_does_not_time_the_hello_out() -> None:
    proto = authenticating()
    assert proto.tick(T0 + 60.0, W0 + 60.0) == []
    assert proto.state is State.AUTHENTICATING


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (Unauthorized("bad token"), CloseCode.UNAUTHORIZED),
        (TokenExpired("token expired"), CloseCode.UNAUTHORIZED),
        (BadRequest("odd"), CloseCode.UNAUTHORIZED),
        (Internal(), CloseCode.UNAUTHORIZED),
        (Forbidden("not your session"), CloseCode.FORBIDDEN),
        (RateLimited("at most 2 sockets per user"), CloseCode.POLICY),
        (Unavailable(), CloseCode.INTERNAL),
    ],
)
def test_refused_hello_gets_its_error_and_close(exc: CollabError, code: CloseCode) -> None:
    proto = waiting()
    proto.receive_text(hello(rid="h"), T0 + 1)
    assert proto.hello_refused(exc) == [Send(exc.wire("h")), Close(code, exc.code)]
    assert proto.state is State.CLOSED


def test_accepted_hello_opens_and_schedules_the_expiry_check() -> None:
    proto = authenticating()
    proto.hello_accepted(W0 + 30.0, T0 + 1, W0 + 1)
    assert proto.state is State.OPEN
    assert proto.next_deadline() == T0 + 1 + 29.0


def test_expiry_check_is_at_most_a_minute_away() -> None:
    assert opened(ttl=TTL).next_deadline() == T0 + 1 + EXPIRY_RECHECK_S


def test_closed_while_authenticating_stays_closed() -> None:
    proto = authenticating()
    assert proto.close(CloseCode.SERVER_RESTART, "server restarting") == [
        Close(CloseCode.SERVER_RESTART, "server restarting")
    ]
    proto.hello_accepted(W0 + TTL, T0 + 1, W0 + 1)
    assert proto.state is State.CLOSED
    assert proto.hello_refused(Unavailable()) == []
    assert proto.next_deadline() is None


# -- open: requests ----------------------------------------------------------------

REQUESTS = [
    (frame("heartbeat", 1), m.Heartbeat(rid=1)),
    (frame("refresh", 2, token="t2"), m.Refresh(token="t2", rid=2)),
    (frame("subscribe", 3, note="n"), m.Subscribe(note="n", rid=3)),
    (frame("unsubscribe", 4, note="n"), m.Unsubscribe(note="n", rid=4)),
    (frame("sync", 5, note="n", since=8), m.Sync(note="n", since=8, rid=5)),
    (frame("acquire", 6, note="n", wait=False), m.Acquire(note="n", wait=False, rid=6)),
    (frame("release", 7, note="n", fence=3), m.Release(note="n", fence=3, rid=7)),
    (frame("revoke", None, note="n"), m.Revoke(note="n", rid=None)),
]


@pytest.mark.parametrize(("text", "request_"), REQUESTS)
def test_requests_are_counted_and_dispatched(text: str, request_: Request) -> None:
    proto = opened()
    kind = json.loads(text)["type"]
    assert proto.receive_text(text, T0 + 2) == [Received(kind), Dispatch(request_)]
    assert proto.state is State.OPEN


def test_edit_is_dispatched() -> None:
    actions = opened().receive_text(edit(9), T0 + 2)
    assert actions[0] == Received("edit")
    assert isinstance(actions[1], Dispatch) and isinstance(actions[1].request, m.Edit)
    assert actions[1].request.rid == 9 and len(actions) == 2


def test_second_hello_is_bad_request_and_keeps_the_socket() -> None:
    proto = opened()
    assert proto.receive_text(hello(rid=14, token="again"), T0 + 2) == [
        Received("hello"),
        error("bad_request", "hello was already received", 14),
    ]
    assert proto.state is State.OPEN


def test_invalid_requests_are_bad_request_but_never_close() -> None:
    proto = opened()
    for i in range(CONFIG.max_bad_frames + 3):
        actions = proto.receive_text(frame("subscribe", i), T0 + 2 + i)
        assert actions == [error("bad_request", "missing or empty string field 'note'", i)]
    assert proto.state is State.OPEN


# -- open: bad frames and the frame rate -------------------------------------------


@pytest.mark.parametrize(
    ("feed", "reply"),
    [
        (lambda p, t: p.receive_text("not json", t), "frame is not valid JSON"),
        (lambda p, t: p.receive_text('"str"', t), "frame must be a JSON object"),
        (lambda p, t: p.receive_binary(t), "binary frames are not allowed"),
    ],
)
def test_non_objects_close_1008_after_the_limit(
    feed: Callable[[ConnectionProtocol, float], list[Action]], reply: str
) -> None:
    proto = opened()
    for i in range(CONFIG.max_bad_frames):
        assert feed(proto, T0 + 2 + i) == [error("bad_request", reply)]
    assert feed(proto, T0 + 10) == [
        error("bad_request", reply),
        Close(CloseCode.POLICY, "too many malformed frames"),
    ]
    assert proto.state is State.CLOSED
    assert feed(proto, T0 + 11) == []


def test_frames_over_the_rate_are_refused_unread_then_close_1008() -> None:
    proto = opened()
    now = T0 + 2
    for _ in range(CONFIG.frame_burst):
        assert Dispatch(m.Heartbeat(rid=1)) in proto.receive_text(frame("heartbeat"), now)
    over = [Limited("frames"), error("rate_limited", "too many frames; slow down")]
    for _ in range(CONFIG.max_bad_frames):
        assert proto.receive_text(frame("heartbeat"), now) == over
    assert proto.receive_binary(now) == [
        Limited("frames"),
        Close(CloseCode.POLICY, "frame rate limit"),
    ]
    assert proto.state is State.CLOSED


def test_frame_rate_refills_with_time() -> None:
    proto = opened()
    now = T0 + 2
    for _ in range(CONFIG.frame_burst):
        proto.receive_text(frame("heartbeat"), now)
    assert Limited("frames") in proto.receive_text(frame("heartbeat"), now)
    assert Dispatch(m.Heartbeat(rid=1)) in proto.receive_text(frame("heartbeat"), now + 1.0)


def test_rate_strikes_and_malformed_frames_share_one_limit() -> None:
    proto = opened()
    now = T0 + 2
    proto.receive_text("junk", now)
    proto.receive_binary(now)
    for _ in range(CONFIG.frame_burst - 2):
        proto.receive_text(frame("heartbeat"), now)
    assert closes(proto.receive_text(frame("heartbeat"), now)) is None  # third strike
    last = closes(proto.receive_text(frame("heartbeat"), now))
    assert last == Close(CloseCode.POLICY, "frame rate limit")


# -- open: edit and acquire rates --------------------------------------------------


def test_edit_rate_refuses_with_rate_limited_and_keeps_the_socket() -> None:
    proto = opened(Config(edit_rate_per_s=1.0, edit_burst=2, max_bad_frames=1))
    now = T0 + 2
    for _ in range(2):
        assert isinstance(proto.receive_text(edit(), now)[-1], Dispatch)
    for _ in range(5):
        assert proto.receive_text(edit(5), now) == [
            Received("edit"),
            Limited("edits"),
            error("rate_limited", "too many edits; slow down", 5),
        ]
    assert proto.state is State.OPEN, "a refused edit is not a bad frame"
    assert isinstance(proto.receive_text(edit(), now + 1.0)[-1], Dispatch)


def test_acquire_rate_refuses_with_rate_limited_and_keeps_the_socket() -> None:
    proto = opened(Config(acquire_rate_per_s=0.5, acquire_burst=3, max_bad_frames=1))
    now = T0 + 2
    text = frame("acquire", 6, note="n")
    for _ in range(3):
        assert isinstance(proto.receive_text(text, now)[-1], Dispatch)
    for _ in range(3):
        assert proto.receive_text(text, now) == [
            Received("acquire"),
            Limited("acquires"),
            error("rate_limited", "too many acquire requests; slow down", 6),
        ]
    assert proto.state is State.OPEN
    assert Limited("acquires") in proto.receive_text(text, now + 1.0), "half a token back"
    assert isinstance(proto.receive_text(text, now + 2.0)[-1], Dispatch)


def test_edit_and_acquire_rates_are_independent_of_each_other() -> None:
    proto = opened()
    now = T0 + 2
    for _ in range(CONFIG.edit_burst + 1):
        proto.receive_text(edit(), now)
    assert isinstance(proto.receive_text(frame("acquire", note="n"), now)[-1], Dispatch)
    assert isinstance(proto.receive_text(frame("heartbeat"), now)[-1], Dispatch)


# -- open: token expiry ------------------------------------------------------------


def test_token_expiry_warns_then_closes_4401_after_the_grace() -> None:
    proto = opened(ttl=100.0)  # expires at wall W0 + 100, monotonic T0 + 100
    assert proto.next_deadline() == T0 + 1.0 + EXPIRY_RECHECK_S, "looks again within a minute"
    assert proto.tick(T0 + 61.0, W0 + 61.0) == []
    assert proto.next_deadline() == T0 + 100.0
    assert proto.tick(T0 + 99.0, W0 + 99.0) == []
    assert proto.tick(T0 + 100.0, W0 + 100.0) == [
        error("token_expired", "token expired; send refresh")
    ]
    assert proto.next_deadline() == T0 + 130.0
    assert proto.tick(T0 + 129.0, W0 + 129.0) == [], "warned once"
    assert proto.receive_text(frame("heartbeat"), T0 + 129.5)[-1] == Dispatch(m.Heartbeat(rid=1))
    assert proto.tick(T0 + 130.0, W0 + 130.0) == [Close(CloseCode.UNAUTHORIZED, "token expired")]
    assert proto.state is State.CLOSED
    assert proto.next_deadline() is None


def test_refresh_during_the_grace_keeps_the_socket() -> None:
    proto = opened(ttl=100.0)
    proto.tick(T0 + 100.0, W0 + 100.0)
    proto.token_refreshed(W0 + 500.0, T0 + 110.0, W0 + 110.0)
    assert proto.next_deadline() == T0 + 110.0 + EXPIRY_RECHECK_S
    assert proto.tick(T0 + 130.0, W0 + 130.0) == [], "the old grace no longer applies"
    assert proto.state is State.OPEN
    assert proto.tick(T0 + 500.0, W0 + 500.0) == [
        error("token_expired", "token expired; send refresh")
    ], "the new token expires in turn"


def test_refresh_before_expiry_moves_the_expiry() -> None:
    proto = opened(ttl=100.0)
    proto.token_refreshed(W0 + 200.0, T0 + 50.0, W0 + 50.0)
    assert proto.tick(T0 + 100.0, W0 + 100.0) == []
    assert proto.next_deadline() == T0 + 160.0
    assert proto.tick(T0 + 200.0, W0 + 200.0)[0] == error(
        "token_expired", "token expired; send refresh"
    )


def test_no_grace_warns_and_closes_at_once() -> None:
    proto = opened(Config(token_expiry_grace_s=0.0), ttl=10.0)
    assert proto.tick(T0 + 10.0, W0 + 10.0) == [
        error("token_expired", "token expired; send refresh"),
        Close(CloseCode.UNAUTHORIZED, "token expired"),
    ]


def test_expiry_follows_the_wall_clock_when_it_steps() -> None:
    proto = opened(ttl=TTL)
    # The wall clock jumps two hours ahead while a minute passes.
    assert proto.tick(T0 + 61.0, W0 + 7_200.0) == [
        error("token_expired", "token expired; send refresh")
    ]
    # The grace is measured on the wall clock too, and looked at within a minute.
    assert proto.next_deadline() == T0 + 61.0 + 30.0
    assert proto.tick(T0 + 91.0, W0 + 7_230.0)[-1] == Close(CloseCode.UNAUTHORIZED, "token expired")


def test_a_wall_clock_stepped_back_delays_nothing_past_a_minute() -> None:
    proto = opened(ttl=100.0)
    assert proto.tick(T0 + 50.0, W0 - 10_000.0) == []
    assert proto.next_deadline() == T0 + 50.0 + EXPIRY_RECHECK_S


def test_refresh_only_while_open() -> None:
    with pytest.raises(RuntimeError):
        waiting().token_refreshed(W0 + TTL, T0, W0)
    proto = closed()
    proto.token_refreshed(W0 + TTL, T0, W0)
    assert proto.state is State.CLOSED


# -- closing ------------------------------------------------------------------------


def _from_hub(code: int, reason: str) -> tuple[Callable[[ConnectionProtocol], list[Action]], Close]:
    return (lambda p: p.close(code, reason)), Close(code, reason)


@pytest.mark.parametrize("make", [waiting, authenticating, opened])
@pytest.mark.parametrize(
    ("event", "close"),
    [
        _from_hub(CloseCode.SUPERSEDED, "session resumed elsewhere"),
        _from_hub(CloseCode.SERVER_RESTART, "server restarting"),
        _from_hub(CloseCode.FORBIDDEN, "kicked by an administrator"),
        (lambda p: p.queue_full(), Close(CloseCode.POLICY, "outbound queue full: client too slow")),
        (lambda p: p.send_failed(), Close(CloseCode.INTERNAL, "send failed")),
    ],
)
def test_closes_decided_elsewhere(
    make: Callable[[], ConnectionProtocol],
    event: Callable[[ConnectionProtocol], list[Action]],
    close: Close,
) -> None:
    proto = make()
    assert event(proto) == [close]
    assert proto.state is State.CLOSED
    assert event(proto) == [], "the first close decision is final"
    assert proto.queue_full() == proto.send_failed() == proto.close(1000, "") == []


CLOSED_EVENTS: list[Callable[[ConnectionProtocol], object]] = [
    lambda p: p.receive_text(hello(), T0 + 2),
    lambda p: p.receive_text(frame("heartbeat"), T0 + 2),
    lambda p: p.receive_text("junk", T0 + 2),
    lambda p: p.receive_binary(T0 + 2),
    lambda p: p.tick(T0 + 1e6, W0 + 1e6),
    lambda p: p.close(1000, ""),
    lambda p: p.queue_full(),
    lambda p: p.send_failed(),
    lambda p: p.hello_refused(Unauthorized()),
]


@pytest.mark.parametrize("how", ["server", "client", "hello timeout", "abuse"])
@pytest.mark.parametrize("event", CLOSED_EVENTS)
def test_closed_connection_does_nothing_more(
    how: str, event: Callable[[ConnectionProtocol], object]
) -> None:
    proto = opened()
    if how == "server":
        proto.close(CloseCode.FORBIDDEN, "access revoked")
    elif how == "client":
        proto.connection_lost()
    elif how == "hello timeout":
        proto = waiting()
        proto.tick(T0 + 10.0, W0)
    else:
        for _ in range(CONFIG.max_bad_frames + 1):
            proto.receive_binary(T0 + 2)
    assert proto.state is State.CLOSED
    assert event(proto) in ([], None)
    assert proto.next_deadline() is None


@pytest.mark.parametrize("make", [waiting, authenticating, opened])
def test_client_leaving_closes_without_a_close_frame(
    make: Callable[[], ConnectionProtocol],
) -> None:
    proto = make()
    proto.connection_lost()
    assert proto.state is State.CLOSED
    assert proto.next_deadline() is None


def test_one_close_per_connection_whatever_races() -> None:
    proto = opened(ttl=1.0)
    proto.tick(T0 + 1.0, W0 + 1.0)  # expired, in grace
    decisions = [
        *proto.receive_binary(T0 + 2),
        *proto.queue_full(),
        *proto.tick(T0 + 100.0, W0 + 100.0),
        *proto.send_failed(),
    ]
    assert [a for a in decisions if isinstance(a, Close)] == [
        Close(CloseCode.POLICY, "outbound queue full: client too slow")
    ]
