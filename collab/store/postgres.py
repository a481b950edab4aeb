"""``Store`` on PostgreSQL (asyncpg). Connection handling, failover fencing and
replica freshness live in ``pg_pools.py``; this module is the SQL.

Timestamps come from the database clock (``now()``, the transaction start),
so all replicas stamp rows from one clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import asyncpg

from collab.access import can_write
from collab.errors import CollabError, Conflict, Fenced, NotFound, QuotaExceeded
from collab.store import rows
from collab.store.base import FAILOVER_FENCE_STEP, CommitResult, FenceAdvance, LockEvent, Store
from collab.store.checks import check_edit, check_grant, check_stored_role, row_access
from collab.store.migrator import migration_files
from collab.store.pg_batch import EditBatcher
from collab.store.pg_pools import PgPools, statement_error
from collab.store.quotas import UNLIMITED, Quotas, check_growth, check_new_note, text_bytes
from collab.store.retention import (
    CompactionReport,
    Retention,
    compactable_through,
    needs_compaction,
)
from collab.textops import apply_payload
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

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_COMMAND_TIMEOUT_S = 30.0
DEFAULT_REPLICA_RETRY_S = 5.0
# Edits one group-commit transaction may hold (settings.db_commit_batch_max).
# PostgreSQL caches 64 subtransaction ids per backend; each edit's savepoint
# that writes takes one, and past 64 every snapshot in the database slows down.
DEFAULT_COMMIT_BATCH_MAX = 64
MAX_COMMIT_BATCH = 64
# Pool connections group commit leaves to everything else (grants, reads).
COMMIT_POOL_SPARE = 2
# pg_advisory_lock key serialising migrate() across replicas ("collab" in hex).
MIGRATION_LOCK_KEY = 0x636F6C6C6162
# pg_try_advisory_lock key: one replica compacts the edit log at a time.
COMPACTION_LOCK_KEY = MIGRATION_LOCK_KEY + 1

_USER = "id, name, role, password_hash, created_at, disabled_at IS NOT NULL AS disabled"
_NOTE = "id, owner_id, title, content, visibility, version, fence, created_at, updated_at"
_NOTE_N = ", ".join(f"n.{c.strip()}" for c in _NOTE.split(","))
_EDIT = "note_id, version, op, payload::text AS payload, by_id, by_name, by_role, at"
# commit_edit's write: the op's log entry if it has one (then nothing is
# written), else the fenced UPDATE and the log INSERT; ``written`` is the new
# version, NULL when the UPDATE matched no row.
_LOOKUP_WRITE_EDIT = """
WITH logged AS (
    SELECT version, payload_hash FROM edits WHERE note_id = $1 AND op = $5
    UNION ALL SELECT version, payload_hash FROM edit_ops WHERE note_id = $1 AND op = $5
), updated AS (
    UPDATE notes SET content = $4, version = version + 1, updated_at = now()
    WHERE id = $1 AND fence = $2 AND fence_holder = $11 AND version = $3
      AND NOT EXISTS (SELECT FROM logged)
    RETURNING version
), inserted AS (
    INSERT INTO edits (note_id, version, op, payload, payload_hash, by_id, by_name, by_role)
    SELECT $1, version, $5, $6::jsonb, $7, $8, $9, $10 FROM updated
    RETURNING version
)
SELECT (SELECT version FROM inserted) AS written,
       (SELECT version FROM logged) AS version,
       (SELECT payload_hash FROM logged) AS payload_hash
"""
_REVISION = "note_id, version, title, content, by_id, created_at"
# commit_edit's row lock, with what decides the writer's access right now.
_LOCK_NOTE_FOR_EDIT = """
SELECT n.version, n.fence, n.fence_holder, n.content, n.owner_id, n.visibility, u.role, a.access
FROM notes n
LEFT JOIN users u ON u.id = $2 AND u.disabled_at IS NULL
LEFT JOIN note_access a ON a.note_id = n.id AND a.user_id = $2
WHERE n.id = $1
FOR UPDATE OF n
"""
# A group commit's locks, taken before any of its edits runs: the notes (with
# what _LOCK_NOTE_FOR_EDIT reads for each edit's writer), then their owners
# (whose byte totals the edits charge), each in id order. Every batch, and
# every single edit (note, then owner), takes them in that one order, so
# batches of different replicas cannot deadlock.
_LOCK_BATCH_NOTES = """
SELECT r.note_id, n.version, n.fence, n.fence_holder, n.content, n.owner_id, n.visibility,
       u.role, a.access
FROM unnest($1::text[], $2::text[]) AS r(note_id, user_id)
JOIN notes n ON n.id = r.note_id
LEFT JOIN users u ON u.id = r.user_id AND u.disabled_at IS NULL
LEFT JOIN note_access a ON a.note_id = n.id AND a.user_id = r.user_id
ORDER BY n.id
FOR UPDATE OF n
"""
_LOCK_BATCH_OWNERS = """
SELECT id FROM users WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE
"""
# Each edit of a batch runs in a savepoint. One round trip keeps the previous
# edit's work and opens the next savepoint; a refused edit rolls back to it
# (which keeps it open for the next edit). COMMIT keeps what was not undone.
_SAVEPOINT = "SAVEPOINT edit"
_KEEP_AND_SAVEPOINT = "RELEASE SAVEPOINT edit; SAVEPOINT edit"
_UNDO_EDIT = "ROLLBACK TO SAVEPOINT edit"
_LOCK_OWNER = """
SELECT role, note_count, content_bytes FROM users WHERE id = $1 FOR NO KEY UPDATE
"""
_LOGGED_OP = """
SELECT version, payload_hash FROM edits WHERE note_id = $1 AND op = $2
UNION ALL SELECT version, payload_hash FROM edit_ops WHERE note_id = $1 AND op = $2
"""
# The lowest version a note's log still holds an op id for (payload or not).
_OLDEST_KEPT = """
SELECT least((SELECT min(version) FROM edits WHERE note_id = $1),
             (SELECT min(version) FROM edit_ops WHERE note_id = $1))
"""
# The owner's byte total moves with the edit, in its transaction; no row when
# the quota forbids it (the owner's row lock serialises the owner's edits).
_CHARGE_EDIT = """
UPDATE users SET content_bytes = content_bytes + $2
WHERE id = $1 AND ($2 <= 0 OR role = 'admin' OR $3 = 0 OR content_bytes + $2 <= $3)
RETURNING content_bytes
"""
_COMPACTION_PAGE = """
SELECT n.id, n.version,
       (SELECT max(version) FROM revisions WHERE note_id = n.id) AS revision,
       (SELECT min(version) FROM edits WHERE note_id = n.id) AS oldest
FROM notes n WHERE n.id > $1 ORDER BY n.id LIMIT $2
"""
# One batch: payloads of one note up to a version, older than the cutoff,
# moved to edit_ops in one statement (only those rows are locked).
_COMPACT_BATCH = """
WITH picked AS (
    SELECT version FROM edits
    WHERE note_id = $1 AND version <= $2 AND at <= now() - make_interval(secs => $3)
    ORDER BY version LIMIT $4
), moved AS (
    DELETE FROM edits e USING picked p WHERE e.note_id = $1 AND e.version = p.version
    RETURNING e.note_id, e.op, e.version, e.payload_hash, e.at
)
INSERT INTO edit_ops (note_id, op, version, payload_hash, at)
SELECT note_id, op, version, payload_hash, at FROM moved
"""
_DROP_OLD_OPS = """
DELETE FROM edit_ops WHERE ctid IN (
    SELECT ctid FROM edit_ops WHERE at <= now() - make_interval(secs => $1) LIMIT $2)
"""


@dataclass(frozen=True, slots=True)
class _EditRequest:
    """One ``commit_edit`` call, as queued for group commit."""

    note_id: str
    fence: int
    base: int
    op: str
    payload: EditPayload
    by: User
    max_chars: int
    holder: str


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        read_url: str = "",
        pool_min: int = 1,
        pool_max: int = 10,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        replica_retry_s: float = DEFAULT_REPLICA_RETRY_S,
        quotas: Quotas = UNLIMITED,
        commit_batch_max: int = DEFAULT_COMMIT_BATCH_MAX,
    ) -> None:
        """Not connected until ``open()``. The timeouts bound connecting and
        each statement; ``replica_retry_s`` is how long replica reads are
        skipped after the replica failed once. ``commit_batch_max`` caps the
        edits one group-commit transaction holds (``commit_edit``)."""
        if not 1 <= commit_batch_max <= MAX_COMMIT_BATCH:
            raise ValueError(f"commit_batch_max must be between 1 and {MAX_COMMIT_BATCH}")
        self.quotas = quotas
        self._command_timeout_s = command_timeout_s
        self.pools = PgPools(
            url,
            read_url,
            pool_min,
            pool_max,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            replica_retry_s=replica_retry_s,
        )
        # Highest timeline whose failover fence jump this process has seen done.
        self._fenced_timeline = 0
        # Group commit: concurrent edits of different notes share a
        # transaction; a few pool connections stay free for everything else.
        self.edit_batcher: EditBatcher[_EditRequest, CommitResult] = EditBatcher(
            self._commit_batch,
            max_batch=commit_batch_max,
            flushers=max(1, pool_max - COMMIT_POOL_SPARE),
        )

    async def open(self) -> PostgresStore:
        await self.pools.open()
        return self

    @property
    def timeline(self) -> int:
        """Highest PostgreSQL timeline seen by a write connection (rule 10)."""
        return self.pools.timeline

    async def raise_timeline_floor(self, floor: int) -> None:
        await self.pools.raise_timeline_floor(floor)

    @property
    def timeline_changes(self) -> int:
        """Incremented each time a higher timeline than before is seen; the hub
        invalidates leases when it moves."""
        return self.pools.timeline_changes

    # -- lifecycle ------------------------------------------------------------
    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.pools.primary() as conn:
            # Session-level lock: replicas starting together queue here, and the
            # later ones find the migrations already recorded.
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
                for name, sql in migration_files("postgres"):
                    if name in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                    applied.append(name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied

    async def ping(self) -> None:
        async with self.pools.primary() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        # Queued edits fail with Unavailable; running batches may finish.
        await self.edit_batcher.close(grace_s=self._command_timeout_s)
        await self.pools.close()

    def pool_stats(self) -> dict[str, int]:
        return self.pools.stats()

    # -- users ----------------------------------------------------------------
    async def create_user(self, name: str, password_hash: str, role: Role) -> UserRecord:
        check_stored_role(role)
        async with self.pools.transaction() as conn:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO users (id, name, name_key, role, password_hash)"
                    f" VALUES ($1, $2, $3, $4, $5) RETURNING {_USER}",
                    rows.new_id(), name, rows.name_key(name), role, password_hash,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise Conflict("that user name is taken") from None
        return rows.user_record(row)

    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self.pools.primary() as conn:
            row = await conn.fetchrow(f"SELECT {_USER} FROM users WHERE id = $1", user_id)
        return rows.user_record(row) if row else None

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        async with self.pools.primary() as conn:
            row = await conn.fetchrow(
                f"SELECT {_USER} FROM users WHERE name_key = $1", rows.name_key(name)
            )
        return rows.user_record(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        async with self.pools.primary() as conn:
            found = await conn.fetch(f"SELECT {_USER} FROM users ORDER BY name_key")
        return [rows.user_record(r) for r in found]

    async def set_role(self, user_id: str, role: Role) -> UserRecord:
        check_stored_role(role)
        async with self.pools.transaction() as conn:
            row = await conn.fetchrow(
                f"UPDATE users SET role = $2 WHERE id = $1 RETURNING {_USER}", user_id, role
            )
        if row is None:
            raise NotFound("user not found")
        return rows.user_record(row)

    async def count_admins(self) -> int:
        async with self.pools.primary() as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL"
                )
            )

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self.pools.transaction() as conn:
            status = await conn.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
            )
        if status == "UPDATE 0":
            raise NotFound("user not found")

    async def set_disabled(self, user_id: str, disabled: bool) -> UserRecord:
        async with self.pools.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END"
                f" WHERE id = $1 RETURNING {_USER}",
                user_id, disabled,
            )  # fmt: skip
        if row is None:
            raise NotFound("user not found")
        return rows.user_record(row)

    async def delete_user(self, user_id: str) -> list[str]:
        async with self.pools.transaction() as conn:
            # Note rows first, then the user's: the order commit_edit locks
            # them in (note, then its owner), so the two cannot deadlock.
            owned = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM notes WHERE owner_id = $1 ORDER BY id FOR UPDATE", user_id
                )
            ]
            status = await conn.execute("DELETE FROM users WHERE id = $1", user_id)
            if status == "DELETE 0":
                raise NotFound("user not found")
            # Notes, grants, edits and revisions go by cascade; lock events
            # have no foreign key (see 001_initial.sql).
            await conn.execute("DELETE FROM lock_events WHERE note_id = ANY($1::text[])", owned)
        return owned

    # -- notes ----------------------------------------------------------------
    async def create_note(
        self, owner_id: str, title: str, content: str, visibility: Visibility
    ) -> Note:
        size = text_bytes(content)
        async with self.pools.transaction() as conn:
            # The owner's row lock serialises the owner's note creations and
            # edits (NO KEY: foreign-key checks of other inserts need not wait):
            # the quota read is the quota written.
            owner = await conn.fetchrow(_LOCK_OWNER, owner_id)
            if owner is None:
                raise NotFound("owner not found")
            check_new_note(
                self.quotas, owner["role"], int(owner["note_count"]),
                int(owner["content_bytes"]), size,
            )  # fmt: skip
            await conn.execute(
                "UPDATE users SET note_count = note_count + 1, content_bytes = content_bytes + $2"
                " WHERE id = $1",
                owner_id, size,
            )  # fmt: skip
            try:
                row = await conn.fetchrow(
                    "INSERT INTO notes (id, owner_id, title, content, visibility)"
                    f" VALUES ($1, $2, $3, $4, $5) RETURNING {_NOTE}",
                    rows.new_id(), owner_id, title, content, visibility,
                )  # fmt: skip
            except asyncpg.ForeignKeyViolationError:
                raise NotFound("owner not found") from None
            await conn.execute(
                "INSERT INTO revisions (note_id, version, title, content, by_id, created_at)"
                " VALUES ($1, 0, $2, $3, $4, $5)",
                row["id"], title, content, owner_id, row["created_at"],
            )  # fmt: skip
        return rows.note(row)

    async def get_note(self, note_id: str) -> Note | None:
        async with self.pools.primary() as conn:
            row = await conn.fetchrow(f"SELECT {_NOTE} FROM notes WHERE id = $1", note_id)
        return rows.note(row) if row else None

    async def get_note_replica(self, note_id: str) -> Note | None:
        row = await self.pools.fetchrow_fresh(f"SELECT {_NOTE} FROM notes WHERE id = $1", note_id)
        return rows.note(row) if row else None

    async def list_notes_for(self, user: User) -> list[tuple[Note, Grant | None]]:
        async with self.pools.primary() as conn:
            found = await conn.fetch(
                f"SELECT {_NOTE_N}, a.access FROM notes n"
                " LEFT JOIN note_access a ON a.note_id = n.id AND a.user_id = $1"
                " WHERE $2 = 'admin' OR n.visibility = 'public'"
                "    OR ($2 = 'user' AND (n.owner_id = $1 OR a.access IS NOT NULL))"
                " ORDER BY n.updated_at DESC, n.id",
                user.id, user.role,
            )  # fmt: skip
        return [(rows.note(r), rows.grant(r["access"])) for r in found]

    async def update_note(
        self, note_id: str, title: str | None, visibility: Visibility | None
    ) -> Note:
        async with self.pools.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE notes SET title = coalesce($2, title),"
                " visibility = coalesce($3, visibility), updated_at = now()"
                f" WHERE id = $1 RETURNING {_NOTE}",
                note_id, title, visibility,
            )  # fmt: skip
        if row is None:
            raise NotFound("note not found")
        return rows.note(row)

    async def delete_note(self, note_id: str) -> None:
        async with self.pools.transaction() as conn:
            gone = await conn.fetchrow(
                "DELETE FROM notes WHERE id = $1"
                " RETURNING owner_id, octet_length(content) AS bytes",
                note_id,
            )
            if gone is None:
                raise NotFound("note not found")
            await conn.execute(
                "UPDATE users SET note_count = note_count - 1, content_bytes = content_bytes - $2"
                " WHERE id = $1",
                gone["owner_id"], gone["bytes"],
            )  # fmt: skip
            await conn.execute("DELETE FROM lock_events WHERE note_id = $1", note_id)

    # -- access grants --------------------------------------------------------
    async def set_access(self, note_id: str, user_id: str, access: Grant) -> None:
        async with self.pools.transaction() as conn:
            try:
                await conn.execute(
                    "INSERT INTO note_access (note_id, user_id, access) VALUES ($1, $2, $3)"
                    " ON CONFLICT (note_id, user_id) DO UPDATE SET access = EXCLUDED.access",
                    note_id, user_id, access,
                )  # fmt: skip
            except asyncpg.ForeignKeyViolationError as exc:
                missing = "user" if "user_id" in (exc.constraint_name or "") else "note"
                raise NotFound(f"{missing} not found") from None

    async def delete_access(self, note_id: str, user_id: str) -> bool:
        async with self.pools.transaction() as conn:
            status = await conn.execute(
                "DELETE FROM note_access WHERE note_id = $1 AND user_id = $2", note_id, user_id
            )
        return str(status) != "DELETE 0"

    async def get_access(self, note_id: str, user_id: str) -> Grant | None:
        async with self.pools.primary() as conn:
            value = await conn.fetchval(
                "SELECT access FROM note_access WHERE note_id = $1 AND user_id = $2",
                note_id, user_id,
            )  # fmt: skip
        return rows.grant(value)

    async def list_access(self, note_id: str) -> list[tuple[UserRecord, Grant]]:
        async with self.pools.primary() as conn:
            found = await conn.fetch(
                "SELECT u.id, u.name, u.role, u.password_hash, u.created_at,"
                " u.disabled_at IS NOT NULL AS disabled, a.access"
                " FROM note_access a JOIN users u ON u.id = a.user_id"
                " WHERE a.note_id = $1 ORDER BY u.name_key",
                note_id,
            )
        return [(rows.user_record(r), r["access"]) for r in found]

    # -- write token and edits --------------------------------------------------
    async def advance_fence(
        self, note_id: str, fence: int, holder: str, writer: User
    ) -> FenceAdvance:
        async with self.pools.transaction() as conn:
            await self._fence_new_timeline(conn)
            note = await conn.fetchrow(_LOCK_NOTE_FOR_EDIT, note_id, writer.id)
            if note is None:
                raise NotFound("note not found")
            # The row is locked, so the fence read is the fence compared.
            decision = check_grant(writer.id, note, fence)
            if decision.raised:
                await conn.execute(
                    "UPDATE notes SET fence = $2, fence_holder = $3 WHERE id = $1",
                    note_id, fence, holder,
                )  # fmt: skip
        return decision

    async def bump_fence(self, note_id: str, at_least: int) -> int:
        async with self.pools.transaction() as conn:
            await self._fence_new_timeline(conn)
            stored = await conn.fetchval(
                "UPDATE notes SET fence = greatest(fence + 1, $2), fence_holder = ''"
                " WHERE id = $1 RETURNING fence",
                note_id, at_least,
            )  # fmt: skip
        if stored is None:
            raise NotFound("note not found")
        return int(stored)

    async def _fence_new_timeline(self, conn: asyncpg.Connection) -> None:
        """Rule 10: the first write on a timeline this database has not fenced
        yet moves every fence up by ``FAILOVER_FENCE_STEP`` for each timeline
        since the last one this database fenced. After an asynchronous
        failover the newest WAL, fence advances (and an earlier failover's
        jump) included, may be gone, so a fence that was stale on the old
        primary could be current again here; after the jump none that was ever
        issued is. Once per timeline for the whole deployment (the row),
        checked in the write's own transaction so no edit can slip in first."""
        timeline = self.pools.timeline
        if timeline <= self._fenced_timeline:
            return
        inserted = await conn.fetchval(
            "INSERT INTO failover_fences (timeline) VALUES ($1)"
            " ON CONFLICT DO NOTHING RETURNING timeline",
            timeline,
        )
        if inserted is not None:
            previous = await conn.fetchval(
                "SELECT coalesce(max(timeline), 0) FROM failover_fences WHERE timeline < $1",
                timeline,
            )
            steps = timeline - int(previous) if previous else 1
            moved = await conn.execute(
                # Every note, fence 0 included: a lost first grant had fence 1.
                "UPDATE notes SET fence = fence + $1",
                FAILOVER_FENCE_STEP * steps,
            )
            log.warning("new database timeline %d: fences moved (%s)", timeline, moved)
        self._fenced_timeline = timeline

    async def get_fence(self, note_id: str) -> int:
        async with self.pools.primary() as conn:
            value = await conn.fetchval("SELECT fence FROM notes WHERE id = $1", note_id)
        if value is None:
            raise NotFound("note not found")
        return int(value)

    async def get_token(self, note_id: str) -> tuple[int, str]:
        async with self.pools.primary() as conn:
            row = await conn.fetchrow(
                "SELECT fence, fence_holder FROM notes WHERE id = $1", note_id
            )
        if row is None:
            raise NotFound("note not found")
        return int(row["fence"]), str(row["fence_holder"])

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
        request = _EditRequest(note_id, fence, base, op, payload, by, max_chars, holder)
        return await self.edit_batcher.submit(request, note_id)

    async def _commit_batch(
        self, requests: list[_EditRequest]
    ) -> list[CommitResult | BaseException]:
        """Group commit (the batcher's runner): the edits, each of a different
        note, in one transaction and one COMMIT. Returns only after COMMIT,
        so no edit is acknowledged before it is durable; if the transaction
        fails, every edit of it fails with the same error (raised)."""
        if len(requests) == 1:  # a lone edit: exactly the one-edit transaction
            async with self.pools.transaction() as conn:
                await self._fence_new_timeline(conn)
                lone = await self._commit_edit_on(conn, requests[0])
            return [replace(lone, timeline=self.pools.timeline)]  # no await since COMMIT
        outcomes: dict[str, CommitResult | BaseException] = {}
        async with self.pools.transaction() as conn:
            await self._fence_new_timeline(conn)
            # Every row the batch may lock, first and in one order (notes,
            # then owners, each by id): two batches cannot deadlock.
            locked = {
                row["note_id"]: row
                for row in await conn.fetch(
                    _LOCK_BATCH_NOTES, [r.note_id for r in requests], [r.by.id for r in requests]
                )
            }
            owners = sorted({str(row["owner_id"]) for row in locked.values()})
            await conn.execute(_LOCK_BATCH_OWNERS, owners)
            savepoint = _SAVEPOINT
            for request in sorted(requests, key=lambda r: r.note_id):
                # Each edit in its own savepoint: a refused one rolls back
                # alone, with the same checks and errors as on its own.
                if savepoint:
                    await conn.execute(savepoint)
                try:
                    outcomes[request.note_id] = await self._commit_edit_on(
                        conn, request, locked.get(request.note_id)
                    )
                    savepoint = _KEEP_AND_SAVEPOINT
                    continue
                except CollabError as exc:
                    outcomes[request.note_id] = exc
                except asyncpg.PostgresError as exc:
                    refused = statement_error(exc)
                    if refused is None:  # a lost connection ends the whole batch
                        raise
                    outcomes[request.note_id] = refused
                await conn.execute(_UNDO_EDIT)
                savepoint = ""  # rolled back to it: still open for the next edit
        timeline = self.pools.timeline  # what the batch committed on: no await since COMMIT
        return [
            replace(o, timeline=timeline) if isinstance(o, CommitResult) else o
            for o in (outcomes[r.note_id] for r in requests)
        ]

    async def _commit_edit_on(
        self, conn: asyncpg.Connection, req: _EditRequest, locked: asyncpg.Record | None = None
    ) -> CommitResult:
        """One edit's checks and write (rule 2) in the caller's transaction,
        after ``_fence_new_timeline``. ``locked``: the note's row as
        ``_LOCK_NOTE_FOR_EDIT`` reads it, already locked by the caller in this
        transaction (a group commit); else it is locked here. Raises the
        edit's refusal; the caller rolls back what it wrote."""
        note_id, fence, base, op, payload = req.note_id, req.fence, req.base, req.op, req.payload
        by, holder = req.by, req.holder
        digest = rows.payload_hash(payload)
        # Row lock (a group commit already holds it): concurrent edits of one
        # note queue here, so each one's checks see the previous one's
        # committed result. The writer's
        # stored role and grant come with it: write access is decided here,
        # in the commit's transaction, not from the socket's cache (rule 2).
        note = locked
        if note is None:
            note = await conn.fetchrow(_LOCK_NOTE_FOR_EDIT, note_id, by.id)
        if note is None:
            raise NotFound("note not found")
        current_fence, current_version = int(note["fence"]), int(note["version"])
        current_holder = str(note["fence_holder"])
        access = row_access(by.id, note)
        text: str | None = None
        refused: CollabError | None = None
        current = (current_fence, current_holder, current_version) == (fence, holder, base)
        if current and holder and can_write(access):
            try:
                text = apply_payload(note["content"], payload, req.max_chars)
            except CollabError as exc:
                refused = exc  # unless the op id was already logged (a retry)
        if text is None:
            logged = await conn.fetchrow(_LOGGED_OP, note_id, op)
        else:
            # The common case in one round trip: op lookup, write and log row.
            # It runs after the row lock is taken, so its snapshot holds every
            # edit committed before ours (a lookup joined to the locking
            # SELECT would not). Rule 2: the UPDATE itself still requires
            # fence equality and the base version.
            logged = await conn.fetchrow(
                _LOOKUP_WRITE_EDIT, note_id, fence, base, text, op,
                rows.payload_json(payload), digest, by.id, by.name, by.role, holder,
            )  # fmt: skip
            if logged is not None and logged["payload_hash"] is None:  # a new op
                if logged["written"] is None:
                    raise Fenced()
                # Quota last: a refusal rolls this edit back (its transaction,
                # or its savepoint in a group commit).
                await self._charge_edit(conn, note["owner_id"], note["content"], text)
                return CommitResult(int(logged["written"]), duplicate=False, content=text)
        oldest = None
        if logged is None and current_version != base:
            oldest = await conn.fetchval(_OLDEST_KEPT, note_id)
        original = check_edit(
            fence=fence,
            holder=holder,
            base=base,
            current_fence=current_fence,
            current_holder=current_holder,
            current_version=current_version,
            logged=(int(logged["version"]), logged["payload_hash"]) if logged else None,
            payload_hash=digest,
            access=access,
            oldest_kept=oldest,
        )
        if original is not None:
            return CommitResult(original, duplicate=True, content=note["content"])
        # check_edit passed and the op is new, so the edit itself was refused
        # (bad range, too large). Anything else would be a bug: refuse the write.
        raise refused if refused is not None else Fenced()

    async def _charge_edit(
        self, conn: asyncpg.Connection, owner_id: str, before: str, after: str
    ) -> None:
        """Move the owner's byte total by the edit's growth, refusing it past
        the quota (``QuotaExceeded``; the caller's transaction rolls back)."""
        delta = text_bytes(after) - text_bytes(before)
        if not delta:
            return
        limit = self.quotas.max_bytes
        if await conn.fetchval(_CHARGE_EDIT, owner_id, delta, limit) is None:
            owner = await conn.fetchrow(
                "SELECT role, content_bytes FROM users WHERE id = $1", owner_id
            )
            if owner is not None:
                check_growth(self.quotas, owner["role"], int(owner["content_bytes"]), delta)
            raise QuotaExceeded(quota="bytes", limit=limit)

    async def compact_edit_log(self, retention: Retention) -> CompactionReport:
        report = CompactionReport()
        async with self.pools.primary() as conn:
            # One replica at a time; the others skip this round.
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", COMPACTION_LOCK_KEY):
                return report
            try:
                after = ""
                while True:
                    page = await conn.fetch(_COMPACTION_PAGE, after, retention.batch)
                    for note in page:
                        through = compactable_through(
                            int(note["version"]), note["revision"], retention.keep_per_note
                        )
                        if needs_compaction(note["oldest"], through):
                            report += await self._compact_note(conn, note["id"], through, retention)
                    if len(page) < retention.batch:
                        break
                    after = page[-1]["id"]
                while True:  # op ids past their own retention, batch by batch
                    status = await conn.execute(
                        _DROP_OLD_OPS, float(retention.ops_keep_s), retention.batch
                    )
                    gone = int(status.split()[-1])
                    report += CompactionReport(ops=gone)
                    if gone < retention.batch:
                        break
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", COMPACTION_LOCK_KEY)
        return report

    async def _compact_note(
        self, conn: asyncpg.Connection, note_id: str, through: int, retention: Retention
    ) -> CompactionReport:
        """Each batch is its own short transaction (autocommit statement)
        that locks only the rows it moves: live edits of the note, which
        insert newer versions, never wait on it for long."""
        moved = 0
        while True:
            status = await conn.execute(
                _COMPACT_BATCH, note_id, through, float(retention.keep_s), retention.batch
            )
            count = int(status.split()[-1])
            moved += count
            if count < retention.batch:
                break
        return CompactionReport(payloads=moved, notes=1 if moved else 0)

    async def edits_since(self, note_id: str, since: int, limit: int) -> list[EditRecord] | None:
        async with (
            self.pools.primary() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            current = await conn.fetchval("SELECT version FROM notes WHERE id = $1", note_id)
            if current is None:
                raise NotFound("note not found")
            if since < 0 or since > current or current - since > limit:
                return None
            found = await conn.fetch(
                f"SELECT {_EDIT} FROM edits WHERE note_id = $1 AND version > $2"
                " ORDER BY version",
                note_id, since,
            )  # fmt: skip
        edits = [rows.edit_record(r) for r in found]
        return edits if rows.contiguous_edits(edits, since, current) else None

    # -- revisions --------------------------------------------------------------
    async def save_revision(self, note_id: str, by_id: str | None) -> Revision:
        async with self.pools.transaction() as conn:
            note = await conn.fetchrow(
                "SELECT version, title, content FROM notes WHERE id = $1 FOR SHARE", note_id
            )
            if note is None:
                raise NotFound("note not found")
            await conn.execute(
                "INSERT INTO revisions (note_id, version, title, content, by_id)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (note_id, version) DO NOTHING",
                note_id, note["version"], note["title"], note["content"], by_id,
            )  # fmt: skip
            row = await conn.fetchrow(
                f"SELECT {_REVISION} FROM revisions WHERE note_id = $1 AND version = $2",
                note_id, note["version"],
            )  # fmt: skip
        return rows.revision(row)

    async def list_revisions(self, note_id: str) -> list[Revision]:
        async with self.pools.primary() as conn:
            found = await conn.fetch(
                f"SELECT {_REVISION} FROM revisions WHERE note_id = $1 ORDER BY version DESC",
                note_id,
            )
        return [rows.revision(r) for r in found]

    async def get_revision(self, note_id: str, version: int) -> Revision | None:
        async with (
            self.pools.primary() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                f"SELECT {_REVISION} FROM revisions WHERE note_id = $1 AND version <= $2"
                " ORDER BY version DESC LIMIT 1",
                note_id, version,
            )  # fmt: skip
            if row is None:
                return None
            base = rows.revision(row)
            found = await conn.fetch(
                f"SELECT {_EDIT} FROM edits WHERE note_id = $1 AND version > $2"
                " AND version <= $3 ORDER BY version",
                note_id, base.version, version,
            )  # fmt: skip
        return rows.rebuild_revision(base, [rows.edit_record(r) for r in found], version)

    # -- lock audit -------------------------------------------------------------
    async def record_lock_event(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None:
        async with self.pools.transaction() as conn:
            await conn.execute(
                "INSERT INTO lock_events (note_id, kind, session, user_id, fence, detail)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                note_id, kind, session, user_id, fence, detail,
            )  # fmt: skip

    async def lock_events(self, note_id: str | None = None) -> list[LockEvent]:
        async with self.pools.primary() as conn:
            found = await conn.fetch(
                "SELECT id, note_id, kind, session, user_id, fence, at, detail FROM lock_events"
                " WHERE $1::text IS NULL OR note_id = $1 ORDER BY id",
                note_id,
            )
        return [rows.lock_event(r) for r in found]
