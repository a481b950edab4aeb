"""Finding and splitting the plain SQL migration files.

Files live in ``collab/store/migrations/<kind>/NNN_name.sql`` and are applied
in name order; each store records applied names in ``schema_migrations``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migration_files(kind: str) -> list[tuple[str, str]]:
    """``(name, sql)`` for every ``*.sql`` under ``migrations/<kind>``, by name."""
    folder = MIGRATIONS_DIR / kind
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.sql"))]


def split_statements(script: str) -> list[str]:
    """Split a SQLite script into complete statements.

    ``executescript`` would COMMIT any open transaction first, which would break
    "each migration in its own transaction"; executing statement by statement
    inside our own ``BEGIN IMMEDIATE`` keeps it atomic. ``complete_statement``
    knows about quotes, comments and trigger bodies, so a ``;`` inside them does
    not end a statement.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer.rstrip(";")):
        raise ValueError("migration script ends with an incomplete statement")
    return statements


def _has_code(text: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(line and line != ";" for line in lines)
