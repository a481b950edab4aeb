"""Parse, validate and serialise protocol v1 frames. No I/O.

``parse_frame`` turns one text frame into a typed message or raises
``FrameError`` carrying the ``rid`` (when one could be read) and the one
``CollabError`` the frame maps to (protocol.md: unknown type, missing field or
wrong JSON type -> ``bad_request``; frames that are not JSON objects also count
toward the abuse limit, flagged by ``abusive``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from collab.errors import BadRequest, CollabError
from collab.types import Change, EditPayload

Rid = str | int | None


@dataclass(frozen=True)
class Limits:
    """The parser's bounds, taken from settings."""

    max_changes: int = 256
    rid_max_chars: int = 64
    max_note_id_chars: int = 64
    max_token_chars: int = 8192
    max_note_chars: int = 1_000_000  # bounds a caret's offsets


class FrameError(Exception):
    def __init__(self, error: CollabError, rid: Rid = None, abusive: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.rid = rid
        self.abusive = abusive


@dataclass(frozen=True)
class Hello:
    token: str
    resume: str | None
    client: str | None
    rid: Rid = None


@dataclass(frozen=True)
class Heartbeat:
    rid: Rid = None


@dataclass(frozen=True)
class Refresh:
    token: str
    rid: Rid = None


@dataclass(frozen=True)
class Subscribe:
    note: str
    rid: Rid = None


@dataclass(frozen=True)
class Unsubscribe:
    note: str
    rid: Rid = None


@dataclass(frozen=True)
class Sync:
    note: str
    since: int
    rid: Rid = None


@dataclass(frozen=True)
class Acquire:
    note: str
    wait: bool
    rid: Rid = None


@dataclass(frozen=True)
class Release:
    note: str
    fence: int | None
    rid: Rid = None


@dataclass(frozen=True)
class Revoke:
    note: str
    rid: Rid = None


@dataclass(frozen=True)
class Edit:
    note: str
    fence: int
    base: int
    op: str
    payload: EditPayload
    rid: Rid = None


@dataclass(frozen=True)
class Caret:
    """The holder's selection, in code points of the text at ``version``."""

    note: str
    fence: int
    version: int
    anchor: int
    head: int
    rid: Rid = None


@dataclass(frozen=True)
class Keep:
    """The holder is still there: restart its idle clock."""

    note: str
    rid: Rid = None


@dataclass(frozen=True)
class EditRequest:
    """Ask the note's holder for the token."""

    note: str
    rid: Rid = None


ClientMessage = (
    Hello | Heartbeat | Refresh | Subscribe | Unsubscribe | Sync | Acquire | Release | Revoke | Edit
    | Caret | Keep | EditRequest
)  # fmt: skip


def parse_frame(text: str | bytes, limits: Limits) -> ClientMessage:
    """Parse one frame. Raises ``FrameError``; never anything else."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(BadRequest("frame is not valid JSON"), abusive=True) from None
    if not isinstance(obj, dict):
        raise FrameError(BadRequest("frame must be a JSON object"), abusive=True)
    rid = _rid(obj, limits)
    try:
        return _parse_object(obj, rid, limits)
    except CollabError as exc:
        raise FrameError(exc, rid) from None


def _rid(obj: dict[str, Any], limits: Limits) -> Rid:
    rid = obj.get("rid")
    if rid is None:
        return None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise FrameError(BadRequest("rid must be a string or an integer"))
    if len(str(rid)) > limits.rid_max_chars:
        raise FrameError(BadRequest(f"rid is longer than {limits.rid_max_chars} characters"))
    return rid


def _parse_object(obj: dict[str, Any], rid: Rid, limits: Limits) -> ClientMessage:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise BadRequest("missing string field 'type'")
    if kind == "hello":
        return Hello(
            token=_str(obj, "token", limits.max_token_chars),
            resume=_opt_id(obj, "resume"),
            client=_opt_str(obj, "client", 128),
            rid=rid,
        )
    if kind == "heartbeat":
        return Heartbeat(rid=rid)
    if kind == "refresh":
        return Refresh(token=_str(obj, "token", limits.max_token_chars), rid=rid)
    if kind == "subscribe":
        return Subscribe(note=_note(obj, limits), rid=rid)
    if kind == "unsubscribe":
        return Unsubscribe(note=_note(obj, limits), rid=rid)
    if kind == "sync":
        return Sync(note=_note(obj, limits), since=_nonneg_int(obj, "since"), rid=rid)
    if kind == "acquire":
        wait = obj.get("wait", True)
        if not isinstance(wait, bool):
            raise BadRequest("field 'wait' must be a boolean")
        return Acquire(note=_note(obj, limits), wait=wait, rid=rid)
    if kind == "release":
        fence = obj.get("fence")
        if fence is not None:
            fence = _nonneg_int(obj, "fence")
        return Release(note=_note(obj, limits), fence=fence, rid=rid)
    if kind == "revoke":
        return Revoke(note=_note(obj, limits), rid=rid)
    if kind == "edit":
        return _parse_edit(obj, rid, limits)
    if kind == "caret":
        return _parse_caret(obj, rid, limits)
    if kind == "keep":
        return Keep(note=_note(obj, limits), rid=rid)
    if kind == "request":
        return EditRequest(note=_note(obj, limits), rid=rid)
    raise BadRequest(f"unknown message type {kind[:40]!r}")


def _parse_edit(obj: dict[str, Any], rid: Rid, limits: Limits) -> Edit:
    note = _note(obj, limits)
    fence = _nonneg_int(obj, "fence")
    base = _nonneg_int(obj, "base")
    op = _str(obj, "op", 64)
    try:
        uuid.UUID(op)
    except ValueError:
        raise BadRequest("field 'op' must be a UUID") from None
    has_changes, has_content = "changes" in obj, "content" in obj
    if has_changes == has_content:
        raise BadRequest("an edit carries exactly one of 'changes' or 'content'")
    if has_content:
        content = obj["content"]
        if not isinstance(content, str):
            raise BadRequest("field 'content' must be a string")
        _no_nul(content, "content")
        payload = EditPayload(content=content)
    else:
        payload = EditPayload(changes=_changes(obj["changes"], limits))
    return Edit(note=note, fence=fence, base=base, op=op, payload=payload, rid=rid)


def _parse_caret(obj: dict[str, Any], rid: Rid, limits: Limits) -> Caret:
    offsets = [_nonneg_int(obj, key) for key in ("anchor", "head")]
    if max(offsets) > limits.max_note_chars:
        raise BadRequest(f"caret offsets are at most {limits.max_note_chars}")
    return Caret(
        note=_note(obj, limits),
        fence=_nonneg_int(obj, "fence"),
        version=_nonneg_int(obj, "version"),
        anchor=offsets[0],
        head=offsets[1],
        rid=rid,
    )


def _changes(raw: Any, limits: Limits) -> tuple[Change, ...]:
    if not isinstance(raw, list):
        raise BadRequest("field 'changes' must be a list")
    if not raw:
        raise BadRequest("field 'changes' must not be empty")
    if len(raw) > limits.max_changes:
        raise BadRequest(f"too many changes in one edit (limit {limits.max_changes})")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"changes[{i}] must be an object")
        at = _nonneg_int(item, "at", f"changes[{i}].at")
        delete = item.get("del", 0)
        if isinstance(delete, bool) or not isinstance(delete, int) or delete < 0:
            raise BadRequest(f"changes[{i}].del must be a non-negative integer")
        ins = item.get("ins", "")
        if not isinstance(ins, str):
            raise BadRequest(f"changes[{i}].ins must be a string")
        _no_nul(ins, f"changes[{i}].ins")
        out.append(Change(at=at, delete=delete, insert=ins))
    return tuple(out)


def _no_nul(text: str, name: str) -> None:
    """Note text may not hold U+0000: PostgreSQL text cannot store it, and both
    backends must accept exactly the same edits."""
    if "\x00" in text:
        raise BadRequest(f"field {name!r} must not contain U+0000")


def _str(obj: dict[str, Any], key: str, max_len: int) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"missing or empty string field {key!r}")
    if len(value) > max_len:
        raise BadRequest(f"field {key!r} is longer than {max_len} characters")
    return value


def _opt_str(obj: dict[str, Any], key: str, max_len: int) -> str | None:
    if obj.get(key) is None:
        return None
    return _str(obj, key, max_len)


NOTE_ID = re.compile(r"[A-Za-z0-9_-]+")  # note and session ids: safe in Redis keys


def _opt_id(obj: dict[str, Any], key: str) -> str | None:
    value = _opt_str(obj, key, 64)
    if value is not None and not NOTE_ID.fullmatch(value):
        raise BadRequest(f"field {key!r} must be an id (letters, digits, '-', '_')")
    return value


def _note(obj: dict[str, Any], limits: Limits) -> str:
    note = _str(obj, "note", limits.max_note_id_chars)
    if not NOTE_ID.fullmatch(note):
        raise BadRequest("field 'note' must be a note id (letters, digits, '-', '_')")
    return note


def _nonneg_int(obj: dict[str, Any], key: str, label: str | None = None) -> int:
    value = obj.get(key)
    name = label or key
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"field {name!r} must be an integer")
    if value < 0 or value > 2**53:
        raise BadRequest(f"field {name!r} is out of range")
    return value
