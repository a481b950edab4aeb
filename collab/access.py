"""The roles table of protocol.md as pure functions. Every route and frame
asks these; nothing else decides who may do what."""

from __future__ import annotations

from collab.types import Access, Grant, User, Visibility


def note_access(
    user: User, owner_id: str, visibility: Visibility, grant: Grant | None
) -> Access | None:
    """What ``user`` may do with a note, or None for no access at all.

    admin: every note ("admin"); the owner: "admin"; a ``write`` grant: "write";
    a ``read`` grant or a public note: "read". Guests only ever read public
    notes, whatever grants name them."""
    if user.role == "admin":
        return "admin"
    if user.role == "guest":
        return "read" if visibility == "public" else None
    if owner_id == user.id:
        return "admin"
    if grant == "write":
        return "write"
    if grant == "read" or visibility == "public":
        return "read"
    return None


def can_read(access: Access | None) -> bool:
    """May subscribe to the note and read its text."""
    return access is not None


def can_write(access: Access | None) -> bool:
    """May acquire the write token and edit."""
    return access in ("write", "admin")


def can_manage(access: Access | None) -> bool:
    """May rename, delete, share, change visibility and revoke the token."""
    return access == "admin"


def can_create_notes(user: User) -> bool:
    return user.role in ("admin", "user")


def is_admin(user: User) -> bool:
    return user.role == "admin"
