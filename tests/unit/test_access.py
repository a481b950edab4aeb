"""The roles table of protocol.md, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from collab.access import can_create_notes, can_manage, can_write, note_access
from collab.types import User

ADMIN, OWNER, OTHER, GUEST = (
    User("a", "a", "admin"),
    User("o", "o", "user"),
    User("x", "x", "user"),
    User("g", "g", "guest"),
)


@pytest.mark.parametrize(
    ("user", "visibility", "grant", "expected"),
    [
        (ADMIN, "private", None, "admin"),
        (OWNER, "private", None, "admin"),
        (OTHER, "private", None, None),
        (OTHER, "public", None, "read"),
        (OTHER, "private", "read", "read"),
        (OTHER, "private", "write", "write"),
        (OTHER, "public", "write", "write"),
        (GUEST, "public", None, "read"),
        (GUEST, "private", None, None),
        (GUEST, "private", "write", None),
        (GUEST, "public", "write", "read"),
    ],
)
def test_note_access(user: User, visibility: str, grant: str | None, expected: str | None) -> None:
    assert note_access(user, "o", visibility, grant) == expected  # type: ignore[arg-type]


def test_guest_never_writes() -> None:
    for vis, grant in itertools.product(["private", "public"], [None, "read", "write"]):
        assert not can_write(note_access(GUEST, "o", vis, grant))  # type: ignore[arg-type]
        assert not can_manage(note_access(GUEST, "g", vis, grant))  # type: ignore[arg-type]
    assert not can_create_notes(GUEST) and can_create_notes(OTHER)


def test_only_owner_and_admin_manage() -> None:
    assert can_manage(note_access(OWNER, "o", "private", None))
    assert can_manage(note_access(ADMIN, "o", "private", None))
    assert not can_manage(note_access(OTHER, "o", "public", "write"))
