"""SQLite connections for ``SqliteStore``: one writer, one reader, WAL.

* One write transaction at a time: an ``asyncio.Lock`` serialises them in
  this process and ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, so
  another process (``collab migrate``) cannot interleave and a transaction
  never has to upgrade a read lock (the classic SQLITE_BUSY deadlock).
* Reads use a second connection; with WAL they do not wait for writers.
  Statements of one aiosqlite connection run on one thread in order, so each
  connection also has a lock: otherwise a coroutine's statement could land
  inside another coroutine's open transaction.

SQLite errors leave as ``collab.errors`` types without SQL in the message.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from collab.errors import CollabError, Internal, Unavailable

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 5000

Params = Iterable[Any] | dict[str, Any]


class SqliteDb:
    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    async def open(self) -> None:
        """Create the parent directory and both connections (WAL mode)."""
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await execute(self._writer, "PRAGMA journal_mode = WAL")
            self._reader = await self._connect()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise _translate(exc) from exc

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit BEGINs; transactions are explicit.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await execute(conn, "PRAGMA foreign_keys = ON")
        await execute(conn, f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def stats(self) -> dict[str, int]:
        """One writer connection: busy while a write transaction runs."""
        size = 1 if self._writer is not None else 0
        return {"size": size, "idle": size if not self._write_lock.locked() else 0, "max": 1}

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE`` ... ``COMMIT``;
        rolled back if the body raises (including cancellation)."""
        async with self._write_lock:
            conn = _require(self._writer)
            try:
                await execute(conn, "BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await execute(conn, "ROLLBACK")
                    raise
                await execute(conn, "COMMIT")
            except CollabError:
                raise
            except (OSError, sqlite3.Error) as exc:
                if conn.in_transaction:
                    await execute(conn, "ROLLBACK")
                raise _translate(exc) from exc

    @asynccontextmanager
    async def read(self, snapshot: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """The reader connection; with ``snapshot`` its statements share one
        read transaction (a consistent view across several queries)."""
        async with self._read_lock:
            conn = _require(self._reader)
            try:
                if snapshot:
                    await execute(conn, "BEGIN")
                try:
                    yield conn
                finally:
                    if snapshot:
                        await execute(conn, "COMMIT")
            except CollabError:
                raise
            except (OSError, sqlite3.Error) as exc:
                raise _translate(exc) from exc


async def fetch_one(
    conn: aiosqlite.Connection, sql: str, params: Params = ()
) -> sqlite3.Row | None:
    async with conn.execute(sql, params) as cursor:
        row: sqlite3.Row | None = await cursor.fetchone()
        return row


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> list[sqlite3.Row]:
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def execute(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> int:
    """Run a statement; returns the number of rows it changed.

    Always through a closed cursor: a statement left open (e.g. a PRAGMA that
    returned a row nobody fetched) keeps a read lock on the database, which
    blocks other connections' journal-mode change and checkpoints."""
    async with conn.execute(sql, params) as cursor:
        return int(cursor.rowcount)


def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
    if conn is None:
        raise Unavailable("the database is closed")
    return conn


def _translate(exc: BaseException) -> CollabError:
    # The exception text can quote SQL: it goes to the log only.
    if isinstance(exc, sqlite3.OperationalError | OSError):
        log.error("sqlite unavailable: %s", exc)
        return Unavailable("the database is busy or unavailable; retry later")
    log.error("unexpected sqlite error %s: %s", type(exc).__name__, exc)
    return Internal("database error")
