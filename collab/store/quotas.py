"""Per-user storage quotas: the pure decisions the stores take inside the
transaction that creates a note or commits an edit (the owner's counters are
read and written in that same transaction, so concurrent requests cannot
pass a quota together).

What counts: the notes a user owns and the UTF-8 bytes of their text
(``users.note_count`` and ``users.content_bytes``, kept in step by every
write of a note's text). An edit is charged to the note's owner, whoever
types it. Admins are exempt (their counters are still kept). A limit of 0
turns that quota off. Shrinking is always allowed, so an account over its
quota (a lowered limit, a demoted admin) can still delete and cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from collab.errors import QuotaExceeded


@dataclass(frozen=True)
class Quotas:
    max_notes: int = 0  # notes one user may own; 0: no limit
    max_bytes: int = 0  # UTF-8 bytes of all their notes' text; 0: no limit

    @classmethod
    def from_settings(cls, settings: object) -> Quotas:
        return cls(
            max_notes=int(getattr(settings, "max_notes_per_user", 0)),
            max_bytes=int(getattr(settings, "max_bytes_per_user", 0)),
        )


UNLIMITED = Quotas()


def text_bytes(text: str) -> int:
    """The size a note's text is charged at: its UTF-8 length, as PostgreSQL's
    ``octet_length`` and SQLite's ``length(CAST(x AS BLOB))`` count it."""
    return len(text.encode("utf-8", "surrogatepass"))


def exempt(role: str | None) -> bool:
    return role == "admin"


def check_new_note(
    quotas: Quotas, role: str | None, note_count: int, content_bytes: int, new_bytes: int
) -> None:
    """Raise ``QuotaExceeded`` if the owner may not create a note of
    ``new_bytes`` bytes now."""
    if exempt(role):
        return
    if quotas.max_notes and note_count + 1 > quotas.max_notes:
        raise QuotaExceeded(
            f"you may own at most {quotas.max_notes} notes; delete one first",
            quota="notes",
            limit=quotas.max_notes,
        )
    check_growth(quotas, role, content_bytes, new_bytes)


def check_growth(quotas: Quotas, role: str | None, content_bytes: int, delta: int) -> None:
    """Raise ``QuotaExceeded`` if the owner's text may not grow by ``delta``
    bytes (a shrink, ``delta <= 0``, always may)."""
    if delta <= 0 or exempt(role) or not quotas.max_bytes:
        return
    if content_bytes + delta > quotas.max_bytes:
        raise QuotaExceeded(
            f"the owner's notes may hold at most {quotas.max_bytes} bytes of text",
            quota="bytes",
            limit=quotas.max_bytes,
        )


def growth_allowed_sql_limit(quotas: Quotas) -> int:
    """The byte limit as the SQL guards take it: 0 means no limit."""
    return quotas.max_bytes
