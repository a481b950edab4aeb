"""``Store`` on SQLite (aiosqlite), the embedded twin of ``postgres.py``.

Same tables, same checks, same SQL guards (rule 2's ``WHERE fence = ? AND
version = ?`` included), so the contract suite in ``tests/store`` passes on
both. Connection and transaction handling live in ``sqlite_db.py``.
Timestamps are made in Python (``clock.utc_now``): one process, one clock.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import orjson

from collab.clock import iso_utc, utc_now
from collab.errors import Conflict, Fenced, NotFound, QuotaExceeded
from collab.store import rows
from collab.store.base import CommitResult, FenceAdvance, LockEvent, Store
from collab.store.checks import check_edit, check_grant, check_stored_role, row_access
from collab.store.migrator import migration_files, split_statements
from collab.store.quotas import UNLIMITED, Quotas, check_growth, check_new_note, text_bytes
from collab.store.retention import (
    CompactionReport,
    Retention,
    compactable_through,
    needs_compaction,
)
from collab.store.sqlite_db import DEFAULT_BUSY_TIMEOUT_MS, SqliteDb, execute, fetch_all, fetch_one
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

_USER = "id, name, role, password_hash, created_at, disabled_at IS NOT NULL AS disabled"
_NOTE = "id, owner_id, title, content, visibility, version, fence, created_at, updated_at"
_NOTE_N = ", ".join(f"n.{c.strip()}" for c in _NOTE.split(","))
_EDIT = "note_id, version, op, payload, by_id, by_name, by_role, at"
_REVISION = "note_id, version, title, content, by_id, created_at"
# commit_edit's note row, with what decides the writer's access right now.
_NOTE_FOR_EDIT = """
SELECT n.version, n.fence, n.fence_holder, n.content, n.owner_id, n.visibility,
       (SELECT role FROM users WHERE id = ? AND disabled_at IS NULL) AS role,
       (SELECT access FROM note_access WHERE note_id = n.id AND user_id = ?) AS access
FROM notes n WHERE n.id = ?
"""
# The lowest version a note's log still holds an op id for (payload or not).
_OLDEST_KEPT = """
SELECT min(v) AS oldest FROM (
    SELECT min(version) AS v FROM edits WHERE note_id = :n
    UNION ALL SELECT min(version) FROM edit_ops WHERE note_id = :n)
"""
# A page of notes with what the retention rule needs of each.
_COMPACTION_PAGE = """
SELECT n.id, n.version,
       (SELECT max(version) FROM revisions WHERE note_id = n.id) AS revision,
       (SELECT min(version) FROM edits WHERE note_id = n.id) AS oldest
FROM notes n WHERE n.id > ? ORDER BY n.id LIMIT ?
"""

# One compaction batch of a note: edits up to a version, at least so old.
_MOVE_TO_EDIT_OPS = """
INSERT INTO edit_ops (note_id, op, version, payload_hash, at)
SELECT note_id, op, version, payload_hash, at FROM edits
WHERE note_id = ? AND version <= ? AND at <= ?
"""
_DROP_MOVED_EDITS = "DELETE FROM edits WHERE note_id = ? AND version <= ? AND at <= ?"


def _ago(seconds: float) -> str:
    return iso_utc(datetime.now(UTC) - timedelta(seconds=seconds))


class SqliteStore(Store):
    def __init__(
        self,
        path: str,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        quotas: Quotas = UNLIMITED,
    ) -> None:
        self.db = SqliteDb(path, busy_timeout_ms)
        self.quotas = quotas

    async def open(self) -> SqliteStore:
        await self.db.open()
        return self

    # -- lifecycle ------------------------------------------------------------
    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.db.write() as conn:
            await execute(
                conn,
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
        for name, sql in migration_files("sqlite"):
            # BEGIN IMMEDIATE holds SQLite's write lock, so the "already
            # applied?" check and the migration are atomic across processes.
            async with self.db.write() as conn:
                if await fetch_one(conn, "SELECT 1 FROM schema_migrations WHERE name = ?", [name]):
                    continue
                for statement in split_statements(sql):
                    await execute(conn, statement)
                await execute(
                    conn,
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    [name, utc_now()],
                )
            applied.append(name)
        return applied

    async def ping(self) -> None:
        async with self.db.read() as conn:
            await fetch_one(conn, "SELECT 1")

    async def close(self) -> None:
        await self.db.close()

    def pool_stats(self) -> dict[str, int]:
        return self.db.stats()

    # -- users ----------------------------------------------------------------
    async def create_user(self, name: str, password_hash: str, role: Role) -> UserRecord:
        check_stored_role(role)
        async with self.db.write() as conn:
            try:
                row = await fetch_one(
                    conn,
                    "INSERT INTO users (id, name, name_key, role, password_hash, created_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {_USER}",
                    [rows.new_id(), name, rows.name_key(name), role, password_hash, utc_now()],
                )
            except sqlite3.IntegrityError:
                raise Conflict("that user name is taken") from None
        assert row is not None  # INSERT ... RETURNING always yields the row
        return rows.user_record(row)

    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = await fetch_one(conn, f"SELECT {_USER} FROM users WHERE id = ?", [user_id])
        return rows.user_record(row) if row else None

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = await fetch_one(
                conn, f"SELECT {_USER} FROM users WHERE name_key = ?", [rows.name_key(name)]
            )
        return rows.user_record(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        async with self.db.read() as conn:
            found = await fetch_all(conn, f"SELECT {_USER} FROM users ORDER BY name_key")
        return [rows.user_record(r) for r in found]

    async def set_role(self, user_id: str, role: Role) -> UserRecord:
        check_stored_role(role)
        async with self.db.write() as conn:
            row = await fetch_one(
                conn, f"UPDATE users SET role = ? WHERE id = ? RETURNING {_USER}", [role, user_id]
            )
        if row is None:
            raise NotFound("user not found")
        return rows.user_record(row)

    async def count_admins(self) -> int:
        async with self.db.read() as conn:
            row = await fetch_one(
                conn, "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL"
            )
        return int(row[0]) if row else 0

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self.db.write() as conn:
            changed = await execute(
                conn, "UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id]
            )
        if not changed:
            raise NotFound("user not found")

    async def set_disabled(self, user_id: str, disabled: bool) -> UserRecord:
        async with self.db.write() as conn:
            row = await fetch_one(
                conn,
                "UPDATE users SET disabled_at = CASE WHEN ? THEN coalesce(disabled_at, ?) END"
                f" WHERE id = ? RETURNING {_USER}",
                [disabled, utc_now(), user_id],
            )
        if row is None:
            raise NotFound("user not found")
        return rows.user_record(row)

    async def delete_user(self, user_id: str) -> list[str]:
        async with self.db.write() as conn:
            owned = [
                r["id"]
                for r in await fetch_all(
                    conn, "SELECT id FROM notes WHERE owner_id = ? ORDER BY id", [user_id]
                )
            ]
            if not await execute(conn, "DELETE FROM users WHERE id = ?", [user_id]):
                raise NotFound("user not found")
            # Notes, grants, edits and revisions go by cascade; lock events
            # have no foreign key (see 001_initial.sql).
            await execute(
                conn,
                "DELETE FROM lock_events WHERE note_id IN (SELECT value FROM json_each(?))",
                [orjson.dumps(owned).decode()],
            )
        return owned

    # -- notes ----------------------------------------------------------------
    async def create_note(
        self, owner_id: str, title: str, content: str, visibility: Visibility
    ) -> Note:
        now = utc_now()
        note_id = rows.new_id()
        size = text_bytes(content)
        async with self.db.write() as conn:
            # BEGIN IMMEDIATE: no other write between the quota check and the insert.
            owner = await fetch_one(
                conn, "SELECT role, note_count, content_bytes FROM users WHERE id = ?", [owner_id]
            )
            if owner is None:
                raise NotFound("owner not found")
            check_new_note(
                self.quotas, owner["role"], int(owner["note_count"]),
                int(owner["content_bytes"]), size,
            )  # fmt: skip
            await execute(
                conn,
                "UPDATE users SET note_count = note_count + 1, content_bytes = content_bytes + ?"
                " WHERE id = ?",
                [size, owner_id],
            )
            try:
                row = await fetch_one(
                    conn,
                    "INSERT INTO notes (id, owner_id, title, content, visibility, created_at,"
                    f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_NOTE}",
                    [note_id, owner_id, title, content, visibility, now, now],
                )
            except sqlite3.IntegrityError:
                raise NotFound("owner not found") from None
            await execute(
                conn,
                "INSERT INTO revisions (note_id, version, title, content, by_id, created_at)"
                " VALUES (?, 0, ?, ?, ?, ?)",
                [note_id, title, content, owner_id, now],
            )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return rows.note(row)

    async def get_note(self, note_id: str) -> Note | None:
        async with self.db.read() as conn:
            row = await fetch_one(conn, f"SELECT {_NOTE} FROM notes WHERE id = ?", [note_id])
        return rows.note(row) if row else None

    async def get_note_replica(self, note_id: str) -> Note | None:
        """SQLite has no replicas: the one database is always caught up."""
        return await self.get_note(note_id)

    async def list_notes_for(self, user: User) -> list[tuple[Note, Grant | None]]:
        async with self.db.read() as conn:
            found = await fetch_all(
                conn,
                f"SELECT {_NOTE_N}, a.access FROM notes n"
                " LEFT JOIN note_access a ON a.note_id = n.id AND a.user_id = :uid"
                " WHERE :role = 'admin' OR n.visibility = 'public'"
                "    OR (:role = 'user' AND (n.owner_id = :uid OR a.access IS NOT NULL))"
                " ORDER BY n.updated_at DESC, n.id",
                {"uid": user.id, "role": user.role},
            )
        return [(rows.note(r), rows.grant(r["access"])) for r in found]

    async def update_note(
        self, note_id: str, title: str | None, visibility: Visibility | None
    ) -> Note:
        async with self.db.write() as conn:
            row = await fetch_one(
                conn,
                "UPDATE notes SET title = coalesce(?, title), visibility = coalesce(?, visibility),"
                f" updated_at = ? WHERE id = ? RETURNING {_NOTE}",
                [title, visibility, utc_now(), note_id],
            )
        if row is None:
            raise NotFound("note not found")
        return rows.note(row)

    async def delete_note(self, note_id: str) -> None:
        async with self.db.write() as conn:
            gone = await fetch_one(
                conn,
                "DELETE FROM notes WHERE id = ?"
                " RETURNING owner_id, length(CAST(content AS BLOB)) AS bytes",
                [note_id],
            )
            if gone is None:
                raise NotFound("note not found")
            await execute(
                conn,
                "UPDATE users SET note_count = note_count - 1, content_bytes = content_bytes - ?"
                " WHERE id = ?",
                [gone["bytes"], gone["owner_id"]],
            )
            await execute(conn, "DELETE FROM lock_events WHERE note_id = ?", [note_id])

    # -- access grants --------------------------------------------------------
    async def set_access(self, note_id: str, user_id: str, access: Grant) -> None:
        async with self.db.write() as conn:
            # SQLite's foreign-key error does not say which key failed: look.
            if not await fetch_one(conn, "SELECT 1 FROM notes WHERE id = ?", [note_id]):
                raise NotFound("note not found")
            if not await fetch_one(conn, "SELECT 1 FROM users WHERE id = ?", [user_id]):
                raise NotFound("user not found")
            await execute(
                conn,
                "INSERT INTO note_access (note_id, user_id, access) VALUES (?, ?, ?)"
                " ON CONFLICT (note_id, user_id) DO UPDATE SET access = excluded.access",
                [note_id, user_id, access],
            )

    async def delete_access(self, note_id: str, user_id: str) -> bool:
        async with self.db.write() as conn:
            removed = await execute(
                conn,
                "DELETE FROM note_access WHERE note_id = ? AND user_id = ?",
                [note_id, user_id],
            )
        return removed > 0

    async def get_access(self, note_id: str, user_id: str) -> Grant | None:
        async with self.db.read() as conn:
            row = await fetch_one(
                conn,
                "SELECT access FROM note_access WHERE note_id = ? AND user_id = ?",
                [note_id, user_id],
            )
        return rows.grant(row["access"]) if row else None

    async def list_access(self, note_id: str) -> list[tuple[UserRecord, Grant]]:
        async with self.db.read() as conn:
            found = await fetch_all(
                conn,
                "SELECT u.id, u.name, u.role, u.password_hash, u.created_at,"
                " u.disabled_at IS NOT NULL AS disabled, a.access"
                " FROM note_access a JOIN users u ON u.id = a.user_id"
                " WHERE a.note_id = ? ORDER BY u.name_key",
                [note_id],
            )
        return [(rows.user_record(r), r["access"]) for r in found]

    # -- write token and edits --------------------------------------------------
    async def advance_fence(
        self, note_id: str, fence: int, holder: str, writer: User
    ) -> FenceAdvance:
        async with self.db.write() as conn:
            note = await fetch_one(conn, _NOTE_FOR_EDIT, [writer.id, writer.id, note_id])
            if note is None:
                raise NotFound("note not found")
            # BEGIN IMMEDIATE holds the row: the fence read is the fence compared.
            decision = check_grant(writer.id, note, fence)
            if decision.raised:
                await execute(
                    conn,
                    "UPDATE notes SET fence = ?, fence_holder = ? WHERE id = ?",
                    [fence, holder, note_id],
                )
        return decision

    async def bump_fence(self, note_id: str, at_least: int) -> int:
        async with self.db.write() as conn:
            row = await fetch_one(
                conn,
                "UPDATE notes SET fence = max(fence + 1, ?), fence_holder = ''"
                " WHERE id = ? RETURNING fence",
                [at_least, note_id],
            )
        if row is None:
            raise NotFound("note not found")
        return int(row["fence"])

    async def get_fence(self, note_id: str) -> int:
        async with self.db.read() as conn:
            row = await fetch_one(conn, "SELECT fence FROM notes WHERE id = ?", [note_id])
        if row is None:
            raise NotFound("note not found")
        return int(row["fence"])

    async def get_token(self, note_id: str) -> tuple[int, str]:
        async with self.db.read() as conn:
            row = await fetch_one(
                conn, "SELECT fence, fence_holder FROM notes WHERE id = ?", [note_id]
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
        digest = rows.payload_hash(payload)
        # BEGIN IMMEDIATE (in db.write) is SQLite's "lock the note row": no
        # other write can run between these checks and the update.
        async with self.db.write() as conn:
            note = await fetch_one(conn, _NOTE_FOR_EDIT, [by.id, by.id, note_id])
            if note is None:
                raise NotFound("note not found")
            logged = await fetch_one(
                conn,
                "SELECT version, payload_hash FROM edits WHERE note_id = :n AND op = :op"
                " UNION ALL SELECT version, payload_hash FROM edit_ops"
                " WHERE note_id = :n AND op = :op",
                {"n": note_id, "op": op},
            )
            oldest = None
            if logged is None and int(note["version"]) != base:
                found = await fetch_one(conn, _OLDEST_KEPT, {"n": note_id})
                oldest = found["oldest"] if found else None
            original = check_edit(
                fence=fence,
                holder=holder,
                base=base,
                current_fence=int(note["fence"]),
                current_holder=note["fence_holder"],
                current_version=int(note["version"]),
                logged=(int(logged["version"]), logged["payload_hash"]) if logged else None,
                payload_hash=digest,
                # Rule 2: write access from the stored rows, in this transaction.
                access=row_access(by.id, note),
                oldest_kept=oldest,
            )
            if original is not None:
                return CommitResult(original, duplicate=True, content=note["content"])
            text = apply_payload(note["content"], payload, max_chars)
            delta = text_bytes(text) - text_bytes(note["content"])
            if delta:
                # The owner's quota, in this transaction (BEGIN IMMEDIATE).
                owner = await fetch_one(
                    conn,
                    "SELECT role, content_bytes FROM users WHERE id = ?",
                    [note["owner_id"]],
                )
                if owner is None:  # the owner's row goes only with the note
                    raise QuotaExceeded(quota="bytes", limit=self.quotas.max_bytes)
                check_growth(self.quotas, owner["role"], int(owner["content_bytes"]), delta)
                await execute(
                    conn,
                    "UPDATE users SET content_bytes = content_bytes + ? WHERE id = ?",
                    [delta, note["owner_id"]],
                )
            now = utc_now()
            # Rule 2: the write itself requires fence equality and the base version.
            updated = await fetch_one(
                conn,
                "UPDATE notes SET content = ?, version = version + 1, updated_at = ?"
                " WHERE id = ? AND fence = ? AND fence_holder = ? AND version = ?"
                " RETURNING version",
                [text, now, note_id, fence, holder, base],
            )
            if updated is None:
                raise Fenced()
            version = int(updated["version"])
            await execute(
                conn,
                "INSERT INTO edits (note_id, version, op, payload, payload_hash,"
                " by_id, by_name, by_role, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    note_id,
                    version,
                    op,
                    rows.payload_json(payload),
                    digest,
                    by.id,
                    by.name,
                    by.role,
                    now,
                ],
            )
        return CommitResult(version, duplicate=False, content=text)

    async def edits_since(self, note_id: str, since: int, limit: int) -> list[EditRecord] | None:
        async with self.db.read(snapshot=True) as conn:
            note = await fetch_one(conn, "SELECT version FROM notes WHERE id = ?", [note_id])
            if note is None:
                raise NotFound("note not found")
            current = int(note["version"])
            if since < 0 or since > current or current - since > limit:
                return None
            found = await fetch_all(
                conn,
                f"SELECT {_EDIT} FROM edits WHERE note_id = ? AND version > ? ORDER BY version",
                [note_id, since],
            )
        edits = [rows.edit_record(r) for r in found]
        return edits if rows.contiguous_edits(edits, since, current) else None

    async def compact_edit_log(self, retention: Retention) -> CompactionReport:
        report = CompactionReport()
        after = ""
        while True:
            async with self.db.read() as conn:
                page = await fetch_all(conn, _COMPACTION_PAGE, [after, retention.batch])
            for note in page:
                through = compactable_through(
                    int(note["version"]), note["revision"], retention.keep_per_note
                )
                if needs_compaction(note["oldest"], through):
                    report += await self._compact_note(note["id"], through, retention)
            if len(page) < retention.batch:
                break
            after = page[-1]["id"]
        return report + await self._drop_old_ops(retention)

    async def _compact_note(
        self, note_id: str, through: int, retention: Retention
    ) -> CompactionReport:
        """Move payloads of ``note_id`` up to ``through`` to ``edit_ops``, at
        most ``retention.batch`` rows per transaction."""
        moved = 0
        older = _ago(retention.keep_s)
        while True:
            async with self.db.write() as conn:
                found = await fetch_all(
                    conn,
                    "SELECT version FROM edits WHERE note_id = ? AND version <= ? AND at <= ?"
                    " ORDER BY version LIMIT ?",
                    [note_id, through, older, retention.batch],
                )
                if not found:
                    break
                top = int(found[-1]["version"])
                await execute(conn, _MOVE_TO_EDIT_OPS, [note_id, top, older])
                moved += await execute(conn, _DROP_MOVED_EDITS, [note_id, top, older])
            if len(found) < retention.batch:
                break
        return CompactionReport(payloads=moved, notes=1 if moved else 0)

    async def _drop_old_ops(self, retention: Retention) -> CompactionReport:
        dropped = 0
        expired = _ago(retention.ops_keep_s)
        while True:
            async with self.db.write() as conn:
                gone = await execute(
                    conn,
                    "DELETE FROM edit_ops WHERE rowid IN"
                    " (SELECT rowid FROM edit_ops WHERE at <= ? LIMIT ?)",
                    [expired, retention.batch],
                )
            dropped += gone
            if gone < retention.batch:
                return CompactionReport(ops=dropped)

    # -- revisions --------------------------------------------------------------
    async def save_revision(self, note_id: str, by_id: str | None) -> Revision:
        async with self.db.write() as conn:
            note = await fetch_one(
                conn, "SELECT version, title, content FROM notes WHERE id = ?", [note_id]
            )
            if note is None:
                raise NotFound("note not found")
            await execute(
                conn,
                "INSERT INTO revisions (note_id, version, title, content, by_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (note_id, version) DO NOTHING",
                [note_id, note["version"], note["title"], note["content"], by_id, utc_now()],
            )
            row = await fetch_one(
                conn,
                f"SELECT {_REVISION} FROM revisions WHERE note_id = ? AND version = ?",
                [note_id, note["version"]],
            )
        assert row is not None  # inserted or already present in this transaction
        return rows.revision(row)

    async def list_revisions(self, note_id: str) -> list[Revision]:
        async with self.db.read() as conn:
            found = await fetch_all(
                conn,
                f"SELECT {_REVISION} FROM revisions WHERE note_id = ? ORDER BY version DESC",
                [note_id],
            )
        return [rows.revision(r) for r in found]

    async def get_revision(self, note_id: str, version: int) -> Revision | None:
        async with self.db.read(snapshot=True) as conn:
            row = await fetch_one(
                conn,
                f"SELECT {_REVISION} FROM revisions WHERE note_id = ? AND version <= ?"
                " ORDER BY version DESC LIMIT 1",
                [note_id, version],
            )
            if row is None:
                return None
            base = rows.revision(row)
            found = await fetch_all(
                conn,
                f"SELECT {_EDIT} FROM edits WHERE note_id = ? AND version > ?"
                " AND version <= ? ORDER BY version",
                [note_id, base.version, version],
            )
        return rows.rebuild_revision(base, [rows.edit_record(r) for r in found], version)

    # -- lock audit -------------------------------------------------------------
    async def record_lock_event(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None:
        async with self.db.write() as conn:
            await execute(
                conn,
                "INSERT INTO lock_events (note_id, kind, session, user_id, fence, at, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [note_id, kind, session, user_id, fence, utc_now(), detail],
            )

    async def lock_events(self, note_id: str | None = None) -> list[LockEvent]:
        async with self.db.read() as conn:
            found = await fetch_all(
                conn,
                "SELECT id, note_id, kind, session, user_id, fence, at, detail FROM lock_events"
                " WHERE :note IS NULL OR note_id = :note ORDER BY id",
                {"note": note_id},
            )
        return [rows.lock_event(r) for r in found]
