"""Plain data shared by every layer. No I/O, no behaviour beyond conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["admin", "user", "guest"]
Access = Literal["read", "write", "admin"]
Grant = Literal["read", "write"]
Visibility = Literal["private", "public"]
LossReason = Literal["expired", "revoked", "reset", "idle"]

ROLES: tuple[Role, ...] = ("admin", "user", "guest")
GRANTS: tuple[Grant, ...] = ("read", "write")
VISIBILITIES: tuple[Visibility, ...] = ("private", "public")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: Role

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role}

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class UserRecord:
    """A stored account (guests are never stored)."""

    id: str
    name: str
    role: Role
    password_hash: str
    created_at: str
    disabled: bool = False  # by an admin: no sign-in, no token accepted

    def user(self) -> User:
        return User(self.id, self.name, self.role)

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role,
                "created_at": self.created_at, "disabled": self.disabled}  # fmt: skip


@dataclass(frozen=True)
class Note:
    id: str
    owner_id: str
    title: str
    content: str
    visibility: Visibility
    version: int
    fence: int
    created_at: str
    updated_at: str

    def wire(self, access: Access | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "owner_id": self.owner_id,
            "title": self.title,
            "content": self.content,
            "visibility": self.visibility,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if access is not None:
            out["access"] = access
        return out


@dataclass(frozen=True)
class Change:
    """Replace ``delete`` code points at ``at`` with ``insert``."""

    at: int
    delete: int
    insert: str

    def wire(self) -> dict[str, Any]:
        return {"at": self.at, "del": self.delete, "ins": self.insert}


@dataclass(frozen=True)
class EditPayload:
    """Either an ordered list of changes or a whole-text replacement."""

    changes: tuple[Change, ...] | None = None
    content: str | None = None

    def wire(self) -> dict[str, Any]:
        if self.content is not None:
            return {"content": self.content}
        return {"changes": [c.wire() for c in self.changes or ()]}


@dataclass(frozen=True)
class EditRecord:
    """One committed edit, as kept in the edit log."""

    note_id: str
    version: int
    op: str
    payload: EditPayload
    by: User
    at: str

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "edited",
            "note": self.note_id,
            "version": self.version,
            "base": self.version - 1,
            "op": self.op,
            "by": self.by.brief(),
        }
        out.update(self.payload.wire())
        return out


@dataclass(frozen=True)
class Revision:
    note_id: str
    version: int
    title: str
    content: str
    created_at: str
    by_id: str | None

    def wire(self, with_content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "note": self.note_id,
            "version": self.version,
            "title": self.title,
            "created_at": self.created_at,
            "by": self.by_id,
        }
        if with_content:
            out["content"] = self.content
        return out


@dataclass(frozen=True)
class LeaseGrant:
    """A granted write token as seen by its owner."""

    note_id: str
    fence: int
    ttl_ms: int

    def wire(self) -> dict[str, Any]:
        return {"note": self.note_id, "fence": self.fence, "ttl_ms": self.ttl_ms}


@dataclass(frozen=True)
class LockState:
    """Who holds a note's token and who waits, as pushed in ``lock`` frames."""

    holder: User
    session: str
    fence: int
    since: str
    queue: tuple[User, ...] = field(default_factory=tuple)

    def wire(self) -> dict[str, Any]:
        return {
            "holder": self.holder.brief(),
            "session": self.session,
            "fence": self.fence,
            "since": self.since,
            "queue": [u.brief() for u in self.queue],
        }
