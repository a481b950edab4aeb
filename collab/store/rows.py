"""Row <-> dataclass conversions and value encodings shared by both stores.

Both backends hand rows over as mappings (``asyncpg.Record``, ``sqlite3.Row``)
with the same column names, so one set of converters keeps the two stores'
outputs identical: timestamps are ISO 8601 UTC with a ``Z`` suffix and
microseconds (fixed width, so SQLite orders them correctly as text), payloads
round-trip through their wire JSON.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast

import orjson

from collab.clock import iso_utc
from collab.errors import BadRequest
from collab.store.base import LockEvent
from collab.textops import apply_payload
from collab.types import (
    Change,
    EditPayload,
    EditRecord,
    Grant,
    Note,
    Revision,
    Role,
    User,
    UserRecord,
    Visibility,
)


class Row(Protocol):
    """What both drivers' rows offer: ``asyncpg.Record``, ``sqlite3.Row``."""

    def __getitem__(self, key: str, /) -> Any: ...


def new_id() -> str:
    """A fresh text id (uuid4 hex), made in Python so both backends agree."""
    return uuid.uuid4().hex


def name_key(name: str) -> str:
    """The case-insensitive form of a user name, stored in ``users.name_key``
    (UNIQUE). Computed here, not with SQL ``lower()``, because SQLite's lower()
    folds ASCII only: both backends must refuse exactly the same names."""
    return name.casefold()


def format_ts(value: datetime | str) -> str:
    """PostgreSQL returns ``datetime`` (timestamptz); SQLite stores the text
    this function produced, which passes through unchanged."""
    if isinstance(value, str):
        return value
    return iso_utc(value)


def payload_json(payload: EditPayload) -> str:
    """Canonical JSON (sorted keys) of a payload's wire form, as stored in the log."""
    return orjson.dumps(payload.wire(), option=orjson.OPT_SORT_KEYS).decode()


def payload_hash(payload: EditPayload) -> str:
    """sha256 of the canonical JSON: two submissions of one op id are "the same
    edit" exactly when these match (idempotent retry vs. a reused op id)."""
    return hashlib.sha256(payload_json(payload).encode()).hexdigest()


def payload_from_json(raw: str | bytes) -> EditPayload:
    """Inverse of ``payload_json`` (changes are ``{"at","del","ins"}``)."""
    data = orjson.loads(raw)
    if "content" in data:
        return EditPayload(content=str(data["content"]))
    changes = tuple(
        Change(at=int(c["at"]), delete=int(c["del"]), insert=str(c["ins"])) for c in data["changes"]
    )
    return EditPayload(changes=changes)


def user_record(row: Row) -> UserRecord:
    return UserRecord(
        id=row["id"],
        name=row["name"],
        role=cast(Role, row["role"]),
        password_hash=row["password_hash"],
        created_at=format_ts(row["created_at"]),
        disabled=bool(row["disabled"]),
    )


def note(row: Row) -> Note:
    return Note(
        id=row["id"],
        owner_id=row["owner_id"],
        title=row["title"],
        content=row["content"],
        visibility=cast(Visibility, row["visibility"]),
        version=int(row["version"]),
        fence=int(row["fence"]),
        created_at=format_ts(row["created_at"]),
        updated_at=format_ts(row["updated_at"]),
    )


def grant(value: str | None) -> Grant | None:
    return cast(Grant | None, value)


def edit_record(row: Row) -> EditRecord:
    return EditRecord(
        note_id=row["note_id"],
        version=int(row["version"]),
        op=row["op"],
        payload=payload_from_json(row["payload"]),
        by=User(row["by_id"], row["by_name"], cast(Role, row["by_role"])),
        at=format_ts(row["at"]),
    )


def revision(row: Row) -> Revision:
    return Revision(
        note_id=row["note_id"],
        version=int(row["version"]),
        title=row["title"],
        content=row["content"],
        created_at=format_ts(row["created_at"]),
        by_id=row["by_id"],
    )


def lock_event(row: Row) -> LockEvent:
    return LockEvent(
        id=int(row["id"]),
        note_id=row["note_id"],
        kind=row["kind"],
        session=row["session"],
        user_id=row["user_id"],
        fence=int(row["fence"]),
        at=format_ts(row["at"]),
        detail=row["detail"],
    )


def contiguous_edits(edits: Sequence[EditRecord], since: int, until: int) -> bool:
    """True when ``edits`` are exactly versions ``since+1 .. until`` in order."""
    return len(edits) == until - since and all(
        e.version == since + 1 + i for i, e in enumerate(edits)
    )


def rebuild_revision(base: Revision, edits: Sequence[EditRecord], version: int) -> Revision | None:
    """The text at ``version`` from the revision ``base`` plus the logged edits
    after it. ``None`` when the log has a gap or does not replay cleanly.

    The title is the base revision's (titles are not in the edit log);
    ``created_at``/``by_id`` are those of the edit that produced ``version``.
    """
    if version == base.version:
        return base
    if not contiguous_edits(edits, base.version, version):
        return None
    text = base.content
    try:
        for edit in edits:
            # Logged edits were size-checked when committed; replay unbounded.
            text = apply_payload(text, edit.payload, sys.maxsize)
    except BadRequest:
        return None
    last = edits[-1]
    return Revision(base.note_id, version, base.title, text, last.at, last.by.id)
