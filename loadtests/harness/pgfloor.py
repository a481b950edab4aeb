"""The PostgreSQL floor for a fenced edit: what the database alone sustains
when ``connections`` clients each commit, back to back, exactly the
transaction collab's ``commit_edit`` runs for an edit that applies (its row
lock, then its fenced write; the statements are imported from
``collab/store/postgres.py``, so the floor follows any change to them).

Each client owns one note (created through collab's API, so the rows are real)
with a fence and holder set for it, and appends one character per commit.
Nothing else runs: no WebSocket, no Redis, no JSON, no pool. Collab's commit
throughput is to be read against this figure.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from collab.store import postgres as pg
from collab.store.rows import payload_hash, payload_json
from collab.types import Change, EditPayload
from loadtests.harness import stats


async def _prepare(db_url: str, notes: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Fence every ``(note_id, user_id)`` for a holder of its own."""
    conn = await asyncpg.connect(db_url)
    try:
        out = []
        for note_id, user_id in notes:
            holder = "floor-" + uuid.uuid4().hex[:8]
            row = await conn.fetchrow(
                "UPDATE notes SET fence = fence + 1, fence_holder = $2 WHERE id = $1"
                " RETURNING fence, version, length(content) AS chars",
                note_id, holder,
            )  # fmt: skip
            user = await conn.fetchrow("SELECT name, role FROM users WHERE id = $1", user_id)
            if row is None or user is None:
                raise RuntimeError(f"note {note_id} or user {user_id} not found")
            out.append(
                {
                    "note": note_id,
                    "user": user_id,
                    "name": user["name"],
                    "role": user["role"],
                    "holder": holder,
                    "fence": int(row["fence"]),
                    "version": int(row["version"]),
                    "content": "x" * int(row["chars"]),
                }
            )
        return out
    finally:
        await conn.close()


async def _client(
    conn: asyncpg.Connection,
    state: dict[str, Any],
    end: float,
    lat: list[float],
    errors: list[str],
) -> int:
    done = 0
    try:
        while time.monotonic() < end:
            base, content = state["version"], state["content"]
            payload = EditPayload(changes=(Change(len(content), 0, "y"),))
            op = str(uuid.uuid4())
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.fetchrow(pg._LOCK_NOTE_FOR_EDIT, state["note"], state["user"])
                row = await conn.fetchrow(
                    pg._LOOKUP_WRITE_EDIT,
                    state["note"], state["fence"], base, content + "y", op,
                    payload_json(payload), payload_hash(payload),
                    state["user"], state["name"], state["role"], state["holder"],
                )  # fmt: skip
            lat.append((time.perf_counter() - t0) * 1000)
            if row is None or row["written"] is None:
                errors.append(f"not written at version {base}")
                break
            state["version"], state["content"] = int(row["written"]), content + "y"
            done += 1
    finally:
        await conn.close()
    return done


async def free_connections(db_url: str, spare: int = 10) -> int:
    """Client connections the server still accepts, less ``spare`` for others
    (the database is shared with the servers under test and other work)."""
    conn = await asyncpg.connect(db_url)
    try:
        limit = int(await conn.fetchval("SHOW max_connections"))
        used = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
        )
    finally:
        await conn.close()
    return max(1, limit - used - spare)


def run(db_url: str, notes: list[tuple[str, str]], duration: float) -> dict[str, Any]:
    """One client per ``(note_id, user_id)`` for ``duration`` seconds, or as
    many as the server has connections to spare (``connections`` says)."""

    async def main() -> dict[str, Any]:
        room = await free_connections(db_url)
        states = await _prepare(db_url, notes[:room])
        conns = await asyncio.gather(*(asyncpg.connect(db_url) for _ in states))
        lat: list[float] = []
        errors: list[str] = []
        t0 = time.monotonic()
        end = t0 + duration
        counts = await asyncio.gather(
            *(_client(c, s, end, lat, errors) for c, s in zip(conns, states, strict=True))
        )
        wall = time.monotonic() - t0
        for c in conns:
            await c.close()
        return {
            "connections": len(states),
            "connections_asked": len(notes),
            "duration_s": round(wall, 2),
            "commits": sum(counts),
            "commits_per_s": round(sum(counts) / wall, 1),
            "commit_ms": stats.summarize(lat),
            "errors": errors[:5],
        }

    return asyncio.run(main())
