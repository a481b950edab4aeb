"""``Store`` in process memory: the twin for fast tests and the deterministic
simulation, where a store that runs threads (aiosqlite) or sockets would make
the order of events depend on the operating system.

Same checks in the same order as ``sqlite.py`` and ``postgres.py`` (shared
through ``checks.py``), and the contract suite in ``tests/store`` runs on it
too. Every method finishes without awaiting, so each is atomic on the event
loop as a transaction is in a database. ``tables`` is the whole state in one
object, so a caller can copy it (a standby) and put a copy back (a failover
that lost the newest writes); ``timeline`` then models PostgreSQL's, with the
same fence jump on the first write of a new timeline (rule 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from collab.access import can_write
from collab.clock import iso_utc, utc_now
from collab.errors import Conflict, Forbidden, NotFound
from collab.store import rows
from collab.store.base import FAILOVER_FENCE_STEP, CommitResult, FenceAdvance, LockEvent, Store
from collab.store.checks import check_edit, check_stored_role, stored_writer_access
from collab.store.quotas import UNLIMITED, Quotas, check_growth, check_new_note, text_bytes
from collab.store.retention import (
    CompactionReport,
    Retention,
    compactable_through,
    needs_compaction,
)
from collab.textops import apply_payload
from collab.types import (
    Access,
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


@dataclass
class NoteRow:
    note: Note
    holder: str = ""  # the session the current fence was granted to


@dataclass
class Tables:
    users: dict[str, UserRecord] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # name key -> user id
    notes: dict[str, NoteRow] = field(default_factory=dict)
    access: dict[tuple[str, str], Grant] = field(default_factory=dict)
    edits: dict[str, list[EditRecord]] = field(default_factory=dict)
    ops: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    # op ids of compacted edits: (note, op) -> (version, payload hash, at)
    edit_ops: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)
    # user id -> (notes owned, UTF-8 bytes of their text)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    revisions: dict[str, dict[int, Revision]] = field(default_factory=dict)
    lock_events: list[LockEvent] = field(default_factory=list)
    fenced_timelines: set[int] = field(default_factory=lambda: {1})


def _ago(seconds: float) -> str:
    return iso_utc(datetime.now(UTC) - timedelta(seconds=seconds))


class MemoryStore(Store):
    def __init__(self, quotas: Quotas = UNLIMITED) -> None:
        self.quotas = quotas
        self.tables = Tables()
        self.timeline_number = 1
        self._timeline_changes = 0

    # -- lifecycle ----------------------------------------------------------------
    async def migrate(self) -> list[str]:
        return []

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pool_stats(self) -> dict[str, int]:
        return {"size": 1, "idle": 1, "max": 1}  # one in-process handle, always free

    @property
    def timeline(self) -> int:
        return self.timeline_number

    @property
    def timeline_changes(self) -> int:
        return self._timeline_changes

    def fail_over(self, tables: Tables) -> None:
        """A standby with ``tables`` was promoted: a new timeline begins."""
        self.tables = tables
        self.timeline_number += 1
        self._timeline_changes += 1

    def _fence_new_timeline(self) -> None:
        """Rule 10, as ``postgres.py`` does it: once per timeline, before the
        first write on it, every fence jumps past any lost with the old WAL."""
        t = self.tables
        if self.timeline_number in t.fenced_timelines:
            return
        # One step per timeline since the last fenced here: the jumps of
        # timelines lost with the newest writes must be made again too.
        steps = self.timeline_number - max(t.fenced_timelines, default=self.timeline_number - 1)
        t.fenced_timelines.add(self.timeline_number)
        jump = FAILOVER_FENCE_STEP * steps
        for row in t.notes.values():  # fence 0 too: a lost first grant had fence 1
            row.note = replace(row.note, fence=row.note.fence + jump)

    # -- users --------------------------------------------------------------------
    async def create_user(self, name: str, password_hash: str, role: Role) -> UserRecord:
        check_stored_role(role)
        key = rows.name_key(name)
        if key in self.tables.names:
            raise Conflict("that user name is taken")
        record = UserRecord(rows.new_id(), name, role, password_hash, utc_now())
        self.tables.users[record.id] = record
        self.tables.names[key] = record.id
        return record

    async def get_user(self, user_id: str) -> UserRecord | None:
        return self.tables.users.get(user_id)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        user_id = self.tables.names.get(rows.name_key(name))
        return self.tables.users.get(user_id) if user_id else None

    async def list_users(self) -> list[UserRecord]:
        return sorted(self.tables.users.values(), key=lambda u: rows.name_key(u.name))

    async def set_role(self, user_id: str, role: Role) -> UserRecord:
        check_stored_role(role)
        record = self.tables.users.get(user_id)
        if record is None:
            raise NotFound("user not found")
        record = self.tables.users[user_id] = replace(record, role=role)
        return record

    async def count_admins(self) -> int:
        return sum(1 for u in self.tables.users.values() if u.role == "admin" and not u.disabled)

    async def set_password(self, user_id: str, password_hash: str) -> None:
        record = self._user(user_id)
        self.tables.users[user_id] = replace(record, password_hash=password_hash)

    async def set_disabled(self, user_id: str, disabled: bool) -> UserRecord:
        record = self.tables.users[user_id] = replace(self._user(user_id), disabled=disabled)
        return record

    async def delete_user(self, user_id: str) -> list[str]:
        record = self._user(user_id)
        t = self.tables
        owned = sorted(nid for nid, row in t.notes.items() if row.note.owner_id == user_id)
        for note_id in owned:
            await self.delete_note(note_id)
        del t.users[user_id]
        t.names.pop(rows.name_key(record.name), None)
        t.usage.pop(user_id, None)
        t.access = {k: v for k, v in t.access.items() if k[1] != user_id}
        return owned

    def _user(self, user_id: str) -> UserRecord:
        record = self.tables.users.get(user_id)
        if record is None:
            raise NotFound("user not found")
        return record

    def _charge(self, owner_id: str, notes: int, delta: int) -> None:
        count, size = self.tables.usage.get(owner_id, (0, 0))
        self.tables.usage[owner_id] = (count + notes, size + delta)

    # -- notes --------------------------------------------------------------------
    async def create_note(
        self, owner_id: str, title: str, content: str, visibility: Visibility
    ) -> Note:
        owner = self.tables.users.get(owner_id)
        if owner is None:
            raise NotFound("owner not found")
        count, size = self.tables.usage.get(owner_id, (0, 0))
        check_new_note(self.quotas, owner.role, count, size, text_bytes(content))
        self._charge(owner_id, 1, text_bytes(content))
        now = utc_now()
        note = Note(rows.new_id(), owner_id, title, content, visibility, 0, 0, now, now)
        self.tables.notes[note.id] = NoteRow(note)
        self.tables.edits[note.id] = []
        self.tables.revisions[note.id] = {0: Revision(note.id, 0, title, content, now, owner_id)}
        return note

    async def get_note(self, note_id: str) -> Note | None:
        row = self.tables.notes.get(note_id)
        return row.note if row else None

    async def get_note_replica(self, note_id: str) -> Note | None:
        return await self.get_note(note_id)

    async def list_notes_for(self, user: User) -> list[tuple[Note, Grant | None]]:
        found = []
        for row in self.tables.notes.values():
            n = row.note
            grant = self.tables.access.get((n.id, user.id))
            visible = (
                user.role == "admin"
                or n.visibility == "public"
                or (user.role == "user" and (n.owner_id == user.id or grant is not None))
            )
            if visible:
                found.append((n, grant))
        found.sort(key=lambda pair: pair[0].id)
        found.sort(key=lambda pair: pair[0].updated_at, reverse=True)
        return found

    async def update_note(
        self, note_id: str, title: str | None, visibility: Visibility | None
    ) -> Note:
        row = self._row(note_id)
        row.note = replace(
            row.note,
            title=row.note.title if title is None else title,
            visibility=row.note.visibility if visibility is None else visibility,
            updated_at=utc_now(),
        )
        return row.note

    async def delete_note(self, note_id: str) -> None:
        t = self.tables
        row = t.notes.pop(note_id, None)
        if row is None:
            raise NotFound("note not found")
        self._charge(row.note.owner_id, -1, -text_bytes(row.note.content))
        t.edits.pop(note_id, None)
        t.edit_ops = {k: v for k, v in t.edit_ops.items() if k[0] != note_id}
        t.revisions.pop(note_id, None)
        t.access = {k: v for k, v in t.access.items() if k[0] != note_id}
        t.ops = {k: v for k, v in t.ops.items() if k[0] != note_id}
        t.lock_events = [e for e in t.lock_events if e.note_id != note_id]

    def _row(self, note_id: str) -> NoteRow:
        row = self.tables.notes.get(note_id)
        if row is None:
            raise NotFound("note not found")
        return row

    # -- access grants --------------------------------------------------------------
    async def set_access(self, note_id: str, user_id: str, access: Grant) -> None:
        self._row(note_id)
        if user_id not in self.tables.users:
            raise NotFound("user not found")
        self.tables.access[(note_id, user_id)] = access

    async def delete_access(self, note_id: str, user_id: str) -> bool:
        return self.tables.access.pop((note_id, user_id), None) is not None

    async def get_access(self, note_id: str, user_id: str) -> Grant | None:
        return self.tables.access.get((note_id, user_id))

    async def list_access(self, note_id: str) -> list[tuple[UserRecord, Grant]]:
        found = [
            (self.tables.users[u], g)
            for (n, u), g in self.tables.access.items()
            if n == note_id and u in self.tables.users
        ]
        return sorted(found, key=lambda pair: rows.name_key(pair[0].name))

    # -- write token and edits ------------------------------------------------------
    async def advance_fence(
        self, note_id: str, fence: int, holder: str, writer: User
    ) -> FenceAdvance:
        self._fence_new_timeline()
        row = self._row(note_id)
        if not can_write(self._access_now(row.note, writer.id)):
            raise Forbidden("you cannot write to this note")
        if row.note.fence < fence:  # rule 1: only ever raise it
            row.note = replace(row.note, fence=fence)
            row.holder = holder
            return FenceAdvance(raised=True, fence=fence)
        return FenceAdvance(raised=False, fence=row.note.fence)

    async def bump_fence(self, note_id: str, at_least: int) -> int:
        self._fence_new_timeline()
        row = self._row(note_id)
        row.note = replace(row.note, fence=max(row.note.fence + 1, at_least))
        row.holder = ""
        return row.note.fence

    def _access_now(self, note: Note, user_id: str) -> Access | None:
        stored = self.tables.users.get(user_id)
        grant = self.tables.access.get((note.id, user_id))
        role = stored.role if stored and not stored.disabled else None
        return stored_writer_access(user_id, role, note.owner_id, note.visibility, grant)

    async def get_fence(self, note_id: str) -> int:
        return self._row(note_id).note.fence

    async def get_token(self, note_id: str) -> tuple[int, str]:
        row = self._row(note_id)
        return row.note.fence, row.holder

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
        self._fence_new_timeline()
        t = self.tables
        row = self._row(note_id)
        note = row.note
        digest = rows.payload_hash(payload)
        logged = t.ops.get((note_id, op))
        compacted = t.edit_ops.get((note_id, op))
        if logged is None and compacted is not None:
            logged = compacted[:2]
        original = check_edit(
            fence=fence,
            holder=holder,
            base=base,
            current_fence=note.fence,
            current_holder=row.holder,
            current_version=note.version,
            logged=logged,
            payload_hash=digest,
            access=self._access_now(note, by.id),
            oldest_kept=self._oldest_kept(note_id)
            if logged is None and note.version != base
            else None,
        )
        if original is not None:
            return CommitResult(
                original, duplicate=True, content=note.content, timeline=self.timeline
            )
        text = apply_payload(note.content, payload, max_chars)
        delta = text_bytes(text) - text_bytes(note.content)
        owner = t.users.get(note.owner_id)
        check_growth(
            self.quotas, owner.role if owner else None, t.usage.get(note.owner_id, (0, 0))[1], delta
        )
        self._charge(note.owner_id, 0, delta)
        now = utc_now()
        row.note = replace(note, content=text, version=note.version + 1, updated_at=now)
        version = row.note.version
        t.edits[note_id].append(EditRecord(note_id, version, op, payload, by, now))
        t.ops[(note_id, op)] = (version, digest)
        return CommitResult(version, duplicate=False, content=text, timeline=self.timeline)

    def _oldest_kept(self, note_id: str) -> int | None:
        t = self.tables
        versions = [e.version for e in t.edits.get(note_id, [])[:1]]
        versions += [v for (n, _), (v, _, _) in t.edit_ops.items() if n == note_id]
        return min(versions, default=None)

    async def compact_edit_log(self, retention: Retention) -> CompactionReport:
        t = self.tables
        report = CompactionReport()
        older = _ago(retention.keep_s)
        for note_id, row in list(t.notes.items()):
            saved = t.revisions.get(note_id, {})
            through = compactable_through(
                row.note.version, max(saved, default=None), retention.keep_per_note
            )
            log = t.edits.get(note_id, [])
            if not needs_compaction(log[0].version if log else None, through):
                continue
            dropped = [e for e in log if e.version <= through and e.at <= older]
            for edit in dropped:
                version, digest = t.ops.pop((note_id, edit.op))
                t.edit_ops[(note_id, edit.op)] = (version, digest, edit.at)
            gone = {e.version for e in dropped}
            t.edits[note_id] = [e for e in log if e.version not in gone]
            if dropped:
                report += CompactionReport(payloads=len(dropped), notes=1)
        expired = _ago(retention.ops_keep_s)
        old_ops = [k for k, (_, _, at) in t.edit_ops.items() if at <= expired]
        for key in old_ops:
            del t.edit_ops[key]
        return report + CompactionReport(ops=len(old_ops))

    async def edits_since(self, note_id: str, since: int, limit: int) -> list[EditRecord] | None:
        current = self._row(note_id).note.version
        if since < 0 or since > current or current - since > limit:
            return None
        edits = [e for e in self.tables.edits[note_id] if e.version > since]
        return edits if rows.contiguous_edits(edits, since, current) else None

    # -- revisions --------------------------------------------------------------------
    async def save_revision(self, note_id: str, by_id: str | None) -> Revision:
        note = self._row(note_id).note
        saved = self.tables.revisions[note_id]
        if note.version not in saved:
            saved[note.version] = Revision(
                note_id, note.version, note.title, note.content,
                utc_now(), by_id,
            )  # fmt: skip
        return saved[note.version]

    async def list_revisions(self, note_id: str) -> list[Revision]:
        saved = self.tables.revisions.get(note_id, {})
        return [saved[v] for v in sorted(saved, reverse=True)]

    async def get_revision(self, note_id: str, version: int) -> Revision | None:
        saved = self.tables.revisions.get(note_id, {})
        earlier = [v for v in saved if v <= version]
        if not earlier:
            return None
        base = saved[max(earlier)]
        edits = [
            e for e in self.tables.edits.get(note_id, []) if base.version < e.version <= version
        ]
        return rows.rebuild_revision(base, edits, version)

    # -- lock audit ---------------------------------------------------------------------
    async def record_lock_event(
        self, note_id: str, kind: str, session: str, user_id: str, fence: int, detail: str = ""
    ) -> None:
        events = self.tables.lock_events
        event_id = events[-1].id + 1 if events else 1
        now = utc_now()
        events.append(LockEvent(event_id, note_id, kind, session, user_id, fence, now, detail))

    async def lock_events(self, note_id: str | None = None) -> list[LockEvent]:
        return [e for e in self.tables.lock_events if note_id is None or e.note_id == note_id]
