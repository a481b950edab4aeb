"""The storage interface. PostgreSQL (``postgres.py``) and SQLite (``sqlite.py``)
implement it with the same semantics; ``tests/store`` runs one contract suite
against both.

Safety rules kept here (docs/design.md):
  * rule 1: ``advance_fence`` only ever raises ``notes.fence`` (``fence < $t``)
    and says whether *this* statement raised it.
  * rule 2: ``commit_edit`` is one transaction requiring ``fence = N`` (equality),
    ``version = base`` and write access read from the stored role, owner and
    grant, plus an edit-log insert keyed by the client's op id.
  * rule 5: ``bump_fence`` always moves the fence (revoke).
  * rule 10: after a failover to a new timeline every fence jumps by
    ``FAILOVER_FENCE_STEP`` before the first write on that timeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from collab.store.quotas import UNLIMITED, Quotas
from collab.store.retention import CompactionReport, Retention
from collab.types import (
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


@dataclass(frozen=True)
class CommitResult:
    """Outcome of ``commit_edit``.

    ``duplicate`` is True when the op id had already committed with the same
    payload: ``version`` is then the original version and nothing was applied.
    ``content`` is the note text after the edit (after the original edit for a
    duplicate: the current text is returned; callers use only ``version``).
    ``timeline`` is the database timeline the commit was made on (rule 10),
    read when it committed: the edit's bus event carries it, so replicas can
    drop an edit of a timeline a failover abandoned.
    """

    version: int
    duplicate: bool
    content: str
    timeline: int = 0


# Rule 10: how far every fence jumps on a new database timeline. It must exceed
# the number of grants of one note that an asynchronous failover can lose (the
# WAL written after the standby's last replay); grants take a database commit
# each, so a loss window of seconds holds thousands at most.
FAILOVER_FENCE_STEP = 1 << 20


@dataclass(frozen=True)
class FenceAdvance:
    """Outcome of ``advance_fence``: ``raised`` only when this statement set
    ``notes.fence`` to the requested value; ``fence`` is the value after it."""

    raised: bool
    fence: int


@dataclass(frozen=True)
class LockEvent:
    """A row of the lock audit log."""

    id: int
    note_id: str
    kind: str  # granted | released | expired | revoked | reset | queued | fenced_write
    session: str
    user_id: str
    fence: int
    at: str
    detail: str


class Store(ABC):
    """Narrow async interface over the database. Every method is atomic.

    Errors: methods raise ``collab.errors`` types only. ``NotFound`` for a
    missing note/user where documented, ``Conflict`` for a taken username,
    ``Unavailable`` when the database cannot be reached (the pool reconnects on
    the next call). Nothing raised carries SQL text.

    ``quotas`` (``store/quotas.py``) bound what each account owns; they are
    checked inside ``create_note`` and ``commit_edit``'s own transaction.
    """

    quotas: Quotas = UNLIMITED

    # -- lifecycle ------------------------------------------------------------
    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations (plain SQL files under ``migrations/<kind>/``,
        in name order, each in its own transaction, recorded in
        ``schema_migrations``). Safe when several replicas call it at once
        (PostgreSQL: ``pg_advisory_lock``). Returns the names applied now."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``Unavailable`` unless a trivial query succeeds on the primary."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    def timeline(self) -> int:
        """Highest database timeline this process has written on (rule 10);
        0 for stores without failover."""
        return 0

    async def raise_timeline_floor(self, floor: int) -> None:
        """Refuse, from now on, any database server on a timeline below
        ``floor`` (another replica saw a failover). No-op without failover."""
        return None

    @property
    def timeline_changes(self) -> int:
        """How often the database moved to a higher timeline (a failover)
        since this store opened; the hub voids every lease when it grows
        (rule 10). Stores without failover stay at 0."""
        return 0

    @abstractmethod
    def pool_stats(self) -> dict[str, int]:
        """``{"size": n, "idle": n, "max": n}`` of the write pool, for /metrics."""

    # -- users ----------------------------------------------------------------
    @abstractmethod
    async def create_user(self, name: str, password_hash: str, role: Role) -> UserRecord:
        """Raise ``Conflict`` if the (case-insensitive) name is taken."""

    @abstractmethod
    async def get_user(self, user_id: str) -> UserRecord | None: ...

    @abstractmethod
    async def get_user_by_name(self, name: str) -> UserRecord | None:
        """Case-insensitive lookup."""

    @abstractmethod
    async def list_users(self) -> list[UserRecord]: ...

    @abstractmethod
    async def set_role(self, user_id: str, role: Role) -> UserRecord:
        """Raise ``NotFound`` for an unknown user."""

    @abstractmethod
    async def count_admins(self) -> int:
        """Enabled admins only: a disabled admin cannot act."""

    @abstractmethod
    async def set_password(self, user_id: str, password_hash: str) -> None:
        """Store a new password hash. ``NotFound`` for an unknown user."""

    @abstractmethod
    async def set_disabled(self, user_id: str, disabled: bool) -> UserRecord:
        """Disable or enable an account (``UserRecord.disabled``): a disabled
        account's stored role counts as no account in every access decision
        the store takes (``commit_edit``, ``advance_fence``). ``NotFound``."""

    @abstractmethod
    async def delete_user(self, user_id: str) -> list[str]:
        """Delete the account, the notes it owns (with everything hanging off
        them) and its grants; edits it made to others' notes stay in their
        logs. Returns the ids of the deleted notes. ``NotFound``."""

    # -- notes ----------------------------------------------------------------
    @abstractmethod
    async def create_note(
        self, owner_id: str, title: str, content: str, visibility: Visibility
    ) -> Note:
        """New note at version 0, fence 0; also writes revision 0. The owner's
        note count and byte total grow in the same transaction:
        ``QuotaExceeded`` (nothing written) past ``quotas``; ``NotFound`` for
        an unknown owner."""

    @abstractmethod
    async def get_note(self, note_id: str) -> Note | None: ...

    @abstractmethod
    async def get_note_replica(self, note_id: str) -> Note | None:
        """Read from the read pool if one is configured and proven caught up,
        else from the primary."""

    @abstractmethod
    async def list_notes_for(self, user: User) -> list[tuple[Note, Grant | None]]:
        """Notes ``user`` may read (admin: all; user: own, granted, public;
        guest: public), each with the user's explicit grant if any, newest
        update first. Content is included."""

    @abstractmethod
    async def update_note(
        self, note_id: str, title: str | None, visibility: Visibility | None
    ) -> Note:
        """Raise ``NotFound``. Does not change ``version`` (title/visibility are
        metadata, not text)."""

    @abstractmethod
    async def delete_note(self, note_id: str) -> None:
        """Delete the note and everything hanging off it. ``NotFound`` if absent."""

    # -- access grants --------------------------------------------------------
    @abstractmethod
    async def set_access(self, note_id: str, user_id: str, access: Grant) -> None:
        """Upsert. ``NotFound`` if the note or user does not exist."""

    @abstractmethod
    async def delete_access(self, note_id: str, user_id: str) -> bool:
        """True if a grant was removed."""

    @abstractmethod
    async def get_access(self, note_id: str, user_id: str) -> Grant | None: ...

    @abstractmethod
    async def list_access(self, note_id: str) -> list[tuple[UserRecord, Grant]]: ...

    # -- write token and edits --------------------------------------------------
    @abstractmethod
    async def advance_fence(
        self, note_id: str, fence: int, holder: str, writer: User
    ) -> FenceAdvance:
        """``UPDATE notes SET fence=$fence, fence_holder=$holder WHERE id=$note
        AND fence<$fence``: the fence now belongs to session ``holder`` of user
        ``writer``. ``Forbidden`` (and nothing changes) when ``writer`` may
        not write the note now, judged from the stored role, owner and grant
        in the same transaction: nobody who may not write is granted, even
        if the access changed after the caller last looked (rule 2).

        ``raised`` is True only if this statement moved the fence: a grant
        counts only then (rule 1). Another statement that raised it to the
        same value first makes this one ``raised=False``. ``NotFound`` if the
        note does not exist."""

    @abstractmethod
    async def bump_fence(self, note_id: str, at_least: int) -> int:
        """Set ``notes.fence`` to ``max(fence + 1, at_least)`` with no holder and
        return it: the fence always moves, so whoever held the old value is shut
        out (rule 5), even when the lease service's counter is behind the
        database."""

    @abstractmethod
    async def get_fence(self, note_id: str) -> int:
        """``NotFound`` if the note does not exist."""

    @abstractmethod
    async def get_token(self, note_id: str) -> tuple[int, str]:
        """The current fence and the session it was granted to ('' if none):
        a lease counts only when the database agrees (rule 1). ``NotFound``
        if the note does not exist."""

    @abstractmethod
    async def commit_edit(
        self,
        note_id: str,
        fence: int,
        base: int,
        op: str,
        payload: EditPayload,
        by: User,
        max_chars: int,
        *,
        holder: str,
    ) -> CommitResult:
        """Apply one edit in one transaction, written by session ``holder``.

        Order of checks (each maps to one error):
          1. note missing -> ``NotFound``;
          2. ``op`` already in the edit log for this note: same payload ->
             ``CommitResult(original_version, duplicate=True)``; different
             payload -> ``BadRequest``;
          3. ``by`` may not write the note *now*, judged from the stored role,
             owner and grant in the same transaction, never from a cache ->
             ``Forbidden``;
          4. ``notes.fence != fence`` or the fence was granted to another
             session than ``holder`` -> ``Fenced``;
          5. ``notes.version != base`` -> ``Stale(version=current)``, or
             ``EditExpired`` when ``base`` is older than every op id kept
             for the note (``store/retention.py``);
          6. apply with ``collab.textops.apply_payload``; a range outside the
             text -> ``BadRequest``; result over ``max_chars`` -> ``TooLarge``;
          6b. the note owner's byte total would pass ``quotas.max_bytes``
             -> ``QuotaExceeded`` (the owner's counter is moved in this same
             transaction, so concurrent edits cannot pass it together);
          7. ``UPDATE notes SET content, version=version+1, updated_at WHERE
             id=$n AND fence=$fence AND fence_holder=$holder AND version=$base``
             and insert the edit-log
             row (note, version, op, payload, by, at) in the same transaction.
        """

    @abstractmethod
    async def edits_since(self, note_id: str, since: int, limit: int) -> list[EditRecord] | None:
        """Edits with version > ``since`` in version order, or ``None`` when
        more than ``limit`` exist or some are no longer kept (caller then sends
        a snapshot)."""

    @abstractmethod
    async def compact_edit_log(self, retention: Retention) -> CompactionReport:
        """One pass of edit-log retention (``store/retention.py``) over every
        note, in transactions of at most ``retention.batch`` rows: payloads
        past the rule move to ``edit_ops`` (op id, version, hash), and op ids
        older than ``retention.ops_keep_s`` are dropped. Revisions and the
        newest edits are never touched; ``edits_since`` then answers ``None``
        (a snapshot) for a ``since`` before what is kept."""

    # -- revisions --------------------------------------------------------------
    @abstractmethod
    async def save_revision(self, note_id: str, by_id: str | None) -> Revision:
        """Snapshot the note's current title/content/version (idempotent per
        version)."""

    @abstractmethod
    async def list_revisions(self, note_id: str) -> list[Revision]:
        """Newest first."""

    @abstractmethod
    async def get_revision(self, note_id: str, version: int) -> Revision | None:
        """The text at exactly ``version``: a saved revision, or rebuilt from the
        nearest earlier revision plus the edit log. ``None`` if unknowable."""

    # -- lock audit -------------------------------------------------------------
    @abstractmethod
    async def record_lock_event(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None: ...

    @abstractmethod
    async def lock_events(self, note_id: str | None = None) -> list[LockEvent]:
        """Oldest first; all notes when ``note_id`` is None."""
