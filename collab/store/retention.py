"""Edit-log retention: which logged edits may lose their payload, and when
their op ids may go too. Pure; ``compaction.py`` runs it periodically and the
stores do the batched writes.

Rule, per note (docs/protocol.md, "Storage quotas and edit-log retention"):
an edit's payload is dropped only when all of these hold:
  * it is not among the note's newest ``keep_per_note`` versions;
  * it is older than ``keep_s``;
  * its version is at most the note's latest saved revision, so the latest
    revision plus the kept log still rebuild every newer version.
The dropped edit's op id, version and payload hash move to ``edit_ops`` and
stay ``ops_keep_s`` (at least ``keep_s``) after the edit was made: a retry of
that op is still acknowledged as a duplicate, never applied twice. After that
an edit based on a version older than everything kept is refused with
``edit_expired`` (``checks.check_edit``). Revisions are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retention:
    keep_per_note: int = 1000
    keep_s: float = 7 * 24 * 3600.0
    ops_keep_s: float = 30 * 24 * 3600.0
    batch: int = 500  # rows per transaction

    @classmethod
    def from_settings(cls, settings: object) -> Retention:
        return cls(
            keep_per_note=int(getattr(settings, "edit_log_keep_per_note", cls.keep_per_note)),
            keep_s=float(getattr(settings, "edit_log_keep_s", cls.keep_s)),
            ops_keep_s=float(getattr(settings, "edit_ops_keep_s", cls.ops_keep_s)),
            batch=int(getattr(settings, "edit_log_compact_batch", cls.batch)),
        )


@dataclass(frozen=True)
class CompactionReport:
    payloads: int = 0  # edits whose payload was dropped (op ids kept)
    ops: int = 0  # op ids dropped after ops_keep_s
    notes: int = 0  # notes that had something dropped

    def __add__(self, other: CompactionReport) -> CompactionReport:
        return CompactionReport(
            self.payloads + other.payloads, self.ops + other.ops, self.notes + other.notes
        )


def compactable_through(note_version: int, latest_revision: int | None, keep_per_note: int) -> int:
    """The highest version of a note whose payload may be dropped (0: none):
    never one of the newest ``keep_per_note``, never one after the latest saved
    revision."""
    if latest_revision is None:
        return 0
    return max(0, min(note_version - keep_per_note, latest_revision))


def needs_compaction(oldest_logged: int | None, through: int) -> bool:
    """Whether a note whose oldest logged edit is ``oldest_logged`` has any
    payload at or below ``through`` (the time rule is applied by the query)."""
    return oldest_logged is not None and 0 < oldest_logged <= through


def retry_expired(logged: bool, base: int, oldest_kept: int | None) -> bool:
    """An edit whose op id is not kept, based on a version before the oldest
    kept log entry (payload or op id), may be a retry of an edit whose op id
    is gone: it cannot be told from a new one, so it is refused."""
    return not logged and oldest_kept is not None and base + 1 < oldest_kept
