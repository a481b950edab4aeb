"""Frame parsing: every input is a typed message or exactly one FrameError."""

from __future__ import annotations

import contextlib
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab import messages as m
from collab.types import Change

LIMITS = m.Limits(max_changes=4, rid_max_chars=8)


def parse(obj: object) -> m.ClientMessage:
    return m.parse_frame(orjson.dumps(obj), LIMITS)


def test_edit_with_changes() -> None:
    op = str(uuid.uuid4())
    msg = parse(
        {
            "type": "edit",
            "rid": "a",
            "note": "n",
            "fence": 3,
            "base": 7,
            "op": op,
            "changes": [{"at": 1, "del": 2, "ins": "x"}, {"at": 0}],
        }
    )
    assert isinstance(msg, m.Edit)
    assert msg.payload.changes == (Change(1, 2, "x"), Change(0, 0, ""))
    assert (msg.fence, msg.base, msg.op, msg.rid) == (3, 7, op, "a")


def test_defaults_and_unknown_fields_ignored() -> None:
    msg = parse({"type": "acquire", "note": "n", "extra": {"deep": [1]}})
    assert msg == m.Acquire(note="n", wait=True, rid=None)
    assert parse({"type": "release", "note": "n", "rid": 5}) == m.Release("n", None, 5)


@pytest.mark.parametrize(
    "obj",
    [
        {
            "type": "edit",
            "note": "n",
            "fence": 1,
            "base": 0,
            "op": str(uuid.uuid4()),
            "changes": [{"at": 0}] * 5,
        },
        {
            "type": "edit",
            "note": "n",
            "fence": 1,
            "base": 0,
            "op": str(uuid.uuid4()),
            "changes": [],
        },
        {
            "type": "edit",
            "note": "n",
            "fence": 1,
            "base": 0,
            "op": str(uuid.uuid4()),
            "content": "a",
            "changes": [{"at": 0}],
        },
        {
            "type": "edit",
            "note": "n",
            "fence": 2**60,
            "base": 0,
            "op": str(uuid.uuid4()),
            "content": "a",
        },
        {"type": "subscribe", "note": "x" * 65},
        {"type": "heartbeat", "rid": "123456789"},
        {"type": "heartbeat", "rid": True},
        {"type": "sync", "note": "n", "since": 1.5},
        {"type": "hello", "token": ""},
    ],
)
def test_refused(obj: dict) -> None:
    with pytest.raises(m.FrameError) as info:
        parse(obj)
    assert info.value.error.code == "bad_request" and not info.value.abusive


@pytest.mark.parametrize("raw", [b"[]", b"1", b"null", b"\xff\xfe", b"{", b'"s"'])
def test_non_objects_are_abusive(raw: bytes) -> None:
    with pytest.raises(m.FrameError) as info:
        m.parse_frame(raw, LIMITS)
    assert info.value.abusive


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "hello",
                "edit",
                "acquire",
                "release",
                "sync",
                "subscribe",
                "heartbeat",
                "refresh",
                "revoke",
                "unsubscribe",
                "zzz",
            ]
        )
    },
    optional={
        "rid": json_values,
        "note": json_values,
        "fence": json_values,
        "base": json_values,
        "op": json_values,
        "changes": json_values,
        "content": json_values,
        "since": json_values,
        "wait": json_values,
        "token": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, frame_like))
def test_any_json_value_parses_or_is_refused_cleanly(value: object) -> None:
    try:
        raw = orjson.dumps(value)
    except TypeError:
        return
    try:
        msg = m.parse_frame(raw, LIMITS)
    except m.FrameError as exc:
        assert exc.error.code == "bad_request"
        return
    assert type(msg).__name__.lower() in {
        "hello",
        "edit",
        "acquire",
        "release",
        "sync",
        "subscribe",
        "heartbeat",
        "refresh",
        "revoke",
        "unsubscribe",
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_refuse(raw: bytes) -> None:
    with contextlib.suppress(m.FrameError):
        m.parse_frame(raw, LIMITS)


def test_caret_keep_and_request() -> None:
    caret = {"type": "caret", "note": "n", "fence": 3, "version": 9, "anchor": 4, "head": 2}
    assert parse(caret) == m.Caret("n", 3, 9, 4, 2)
    assert parse({"type": "keep", "note": "n", "rid": 1}) == m.Keep("n", 1)
    assert parse({"type": "request", "note": "n"}) == m.EditRequest("n")


@pytest.mark.parametrize(
    "change",
    [{"anchor": -1}, {"head": 1_000_001}, {"head": 1.5}, {"version": None}, {"fence": "1"}],
)
def test_caret_refused(change: dict) -> None:
    caret = {"type": "caret", "note": "n", "fence": 3, "version": 9, "anchor": 4, "head": 2}
    with pytest.raises(m.FrameError) as info:
        parse({**caret, **change})
    assert info.value.error.code == "bad_request"
