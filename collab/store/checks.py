"""The decision part of ``Store.commit_edit``, shared by both backends so their
semantics cannot drift: given the locked note row and any earlier log entry
with the same op id, decide in the documented order what happens."""

from __future__ import annotations

from typing import Any, Protocol

from collab.access import can_write, note_access
from collab.errors import BadRequest, EditExpired, Fenced, Forbidden, Stale
from collab.store.base import FenceAdvance
from collab.store.retention import retry_expired
from collab.types import Access, Grant, User, Visibility

STORED_ROLES = ("admin", "user")


class Row(Protocol):
    """A database row read by column name (asyncpg's Record, sqlite3.Row)."""

    def __getitem__(self, key: str) -> Any: ...


def row_access(user_id: str, row: Row) -> Access | None:
    """``stored_writer_access`` from a note row read with the user's stored
    ``role`` and ``access`` grant joined in (both stores' edit and grant
    queries read exactly those columns)."""
    grant = row["access"] if row["access"] in ("read", "write") else None
    return stored_writer_access(user_id, row["role"], row["owner_id"], row["visibility"], grant)


def check_grant(user_id: str, row: Row, fence: int) -> FenceAdvance:
    """Decide a grant's fence commit from the locked note row: ``Forbidden``
    when the user may not write now (rule 2); else raise the fence only if it
    is higher than the stored one (rule 1). ``raised`` says whether to write."""
    if not can_write(row_access(user_id, row)):
        raise Forbidden("you cannot write to this note")
    current = int(row["fence"])
    if current >= fence:
        return FenceAdvance(raised=False, fence=current)
    return FenceAdvance(raised=True, fence=fence)


def stored_writer_access(
    user_id: str,
    stored_role: str | None,
    owner_id: str,
    visibility: Visibility,
    grant: Grant | None,
) -> Access | None:
    """The access ``user_id`` has to a note *now*, from the rows read in the
    commit's own transaction: a user with no stored account is a guest. The
    role carried by the socket is never trusted here (rule 2)."""
    role = stored_role if stored_role in STORED_ROLES else "guest"
    user = User(user_id, "", role)  # type: ignore[arg-type]
    return note_access(user, owner_id, visibility, grant)


def check_edit(
    *,
    fence: int,
    holder: str,
    base: int,
    current_fence: int,
    current_holder: str,
    current_version: int,
    logged: tuple[int, str] | None,
    payload_hash: str,
    access: Access | None,
    oldest_kept: int | None = None,
) -> int | None:
    """Run checks 2-5 of ``commit_edit`` (check 1, note missing, is the caller's).

    ``logged`` is ``(version, payload_hash)`` of an edit already logged under
    this op id (in the edit log or, compacted, in ``edit_ops``). Returns that
    original version for an idempotent retry (same payload), ``None`` when the
    edit should be applied; raises otherwise. ``oldest_kept`` is the lowest
    version the note's log still holds an op id for (stores pass it when the
    base is not current): an unknown op based before it is ``EditExpired``
    rather than ``Stale``, since it may be a retry whose op id is gone.
    """
    if logged is not None:
        original_version, original_hash = logged
        if original_hash == payload_hash:
            return original_version
        raise BadRequest("this op id was already used for a different edit")
    if not can_write(access):
        raise Forbidden("you cannot write to this note")
    # Rule 2: equality, not fence <= current. A lower fence is a stale token; a
    # higher one was never made durable by advance_fence, so it is not valid yet.
    # The fence must also have been granted to this very session: a fence
    # number is easy to guess, a session id is not.
    if current_fence != fence or not holder or current_holder != holder:
        raise Fenced()
    if current_version != base:
        if retry_expired(logged is not None, base, oldest_kept):
            raise EditExpired(version=current_version)
        raise Stale(
            f"base version {base} is not the current version {current_version}",
            version=current_version,
        )
    return None


def check_stored_role(role: str) -> None:
    """Accounts are admins or users; guests are never stored (types.UserRecord)."""
    if role not in STORED_ROLES:
        raise BadRequest("a stored account's role must be admin or user")
