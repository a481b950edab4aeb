"""PostgreSQL connection pools for ``PostgresStore``: the write pool on the
primary, the optional read pool on a replica, and everything docs/design.md
rule 10 asks of them.

* Writes go to the primary only: the write pool connects with
  ``target_session_attrs=read-write``.
* On SQLSTATE 25006 (read-only transaction: the server was demoted under us)
  or a lost connection, every pooled connection is expired so the next call
  reconnects (and re-picks the primary), and the caller gets ``Unavailable``.
* Timeline fencing: each new write connection reports its timeline; the
  highest seen is kept and a server on a lower one (an old primary restarted
  after a failover) is refused with ``Unavailable``. ``timeline_changes``
  counts rises so the hub can invalidate leases.
* Replica reads: after each write commit the primary's WAL position is
  recorded; a replica is read only when it has replayed at least that far.

Every asyncpg / network error leaving this module is a ``collab.errors`` type
whose message carries no SQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from collab.errors import CollabError, Internal, Unavailable

log = logging.getLogger(__name__)

# The checkpoint's timeline (pg_control_checkpoint) lags a fresh
# promotion until the next checkpoint completes; the timeline of the WAL file
# being written does not, so the higher of the two is taken. The WAL part
# only exists on a primary, which is all the write pool ever connects to.
_TIMELINE_SQL = """
SELECT greatest(
    c.timeline_id,
    CASE WHEN pg_is_in_recovery() THEN 0
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
    END)
FROM pg_control_checkpoint() AS c
"""
_PRIMARY_LSN_SQL = "SELECT pg_current_wal_lsn()::text"
# A replica reports how far it has replayed; pointing the read URL at a
# primary (tests, single-node installs) reports its own write position.
_REPLAY_LSN_SQL = """
SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text
"""

# Errors after which the pool's connections cannot be trusted (rule 10).
_LOST_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    # A connection whose server ended it mid-protocol (pg_terminate_backend,
    # failover) can surface as "cannot switch to state ...": also lost.
    asyncpg.InternalClientError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    OSError,
)
# Errors that mean "busy or slow, try again" without distrusting connections.
_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.QueryCanceledError,
    asyncpg.InsufficientResourcesError,
    TimeoutError,
)

_CLOSE_FAILED: tuple[type[BaseException], ...] = (*_LOST_CONNECTION, TimeoutError)
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    *_LOST_CONNECTION,
    *_TRANSIENT,
    asyncpg.PostgresError,
)


def split_hosts(dsn: str) -> list[str]:
    """``postgresql://u:p@h1:1,h2:2/db?x=y`` -> one single-host DSN per host,
    in order (credentials, database and parameters kept)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return [dsn]
    authority, slash, tail = rest.partition("/")
    creds, at, hosts = authority.rpartition("@")
    prefix = f"{scheme}://{creds}{at}"
    return [f"{prefix}{host}{slash}{tail}" for host in hosts.split(",")] or [dsn]


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` -> integer WAL position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class PgPools:
    """The write pool, the optional read pool and their bookkeeping."""

    def __init__(
        self,
        write_url: str,
        read_url: str,
        min_size: int,
        max_size: int,
        connect_timeout_s: float,
        command_timeout_s: float,
        replica_retry_s: float,
    ) -> None:
        self._write_url = write_url
        self._read_url = read_url
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._replica_retry_s = replica_retry_s
        self._replica_down_until = 0.0
        self._write: asyncpg.Pool | None = None
        self._read: asyncpg.Pool | None = None
        self.timeline = 0
        """Highest timeline any write connection has reported."""
        self.timeline_changes = 0
        """How many times a higher timeline than before was seen (failovers)."""
        self.last_write_lsn = 0
        """Primary WAL position after this process's latest write commit."""
        self.replica_reads = 0
        """``fetchrow_fresh`` calls answered by the replica."""
        self.replica_fallbacks = 0
        """``fetchrow_fresh`` calls answered by the primary (no read pool, replica
        behind, or replica failing)."""
        self.replica_errors = 0
        """Failed replica attempts; each pauses replica reads for ``replica_retry_s``."""

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Connect the write pool (``min_size`` connections now) and, if
        configured, the read pool (lazily: a replica that is down must not stop
        the server starting, reads fall back to the primary)."""
        common: dict[str, Any] = {
            "max_size": self._max_size,
            "timeout": self._connect_timeout_s,
            "command_timeout": self._command_timeout_s,
        }
        try:
            self._write = await asyncpg.create_pool(
                self._write_url,
                min_size=self._min_size,
                connect=self._connect_primary,
                target_session_attrs="read-write",
                **common,
            )
            if self._read_url:
                self._read = await asyncpg.create_pool(self._read_url, min_size=0, **common)
                # Reads made before this process writes must still be at least
                # as new as the primary was at start-up.
                async with self._write.acquire() as conn:
                    self.last_write_lsn = parse_lsn(await conn.fetchval(_PRIMARY_LSN_SQL))
        except CollabError:
            await self.close()
            raise
        except _DATABASE_ERRORS as exc:
            await self.close()
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        for pool in (self._read, self._write):
            if pool is None:
                continue
            try:
                await asyncio.wait_for(pool.close(), self._command_timeout_s)
            except _CLOSE_FAILED:
                pool.terminate()
        self._read = self._write = None

    def stats(self) -> dict[str, int]:
        if self._write is None:
            return {"size": 0, "idle": 0, "max": self._max_size}
        return {
            "size": self._write.get_size(),
            "idle": self._write.get_idle_size(),
            "max": self._write.get_max_size(),
        }

    # -- connections -----------------------------------------------------------
    @asynccontextmanager
    async def primary(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to the primary; database errors become ``collab.errors``."""
        pool = self._write
        if pool is None:
            raise Unavailable("the database connection is closed")
        try:
            async with pool.acquire() as conn:
                yield conn
        except CollabError:
            raise
        except _LOST_CONNECTION as exc:
            # Rule 10: a demoted or vanished primary; drop every pooled
            # connection so the next call reconnects to whoever is primary now.
            await pool.expire_connections()
            raise _unavailable(exc) from exc
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        except asyncpg.PostgresError as exc:
            raise _internal(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A primary connection inside a transaction. After it commits, the
        primary's WAL position is recorded for replica reads (if that read
        fails the caller sees ``Unavailable`` for a committed write, like any
        lost acknowledgement: retrying an edit with its op id is idempotent)."""
        async with self.primary() as conn:
            async with conn.transaction():
                yield conn
            if self._read is not None:
                self.last_write_lsn = max(
                    self.last_write_lsn, parse_lsn(await conn.fetchval(_PRIMARY_LSN_SQL))
                )

    async def fetchrow_fresh(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Run a one-row read on the replica if it has replayed this process's
        last write, else on the primary. Replica trouble never fails the read."""
        loop = asyncio.get_running_loop()
        if self._read is not None and loop.time() >= self._replica_down_until:
            try:
                async with self._read.acquire() as conn:
                    # Check first, read second: the read's snapshot is then at
                    # least as new as the position that was checked.
                    replayed = await conn.fetchval(_REPLAY_LSN_SQL)
                    if replayed is not None and parse_lsn(replayed) >= self.last_write_lsn:
                        row = await conn.fetchrow(query, *args)
                        self.replica_reads += 1
                        return row
            except _DATABASE_ERRORS as exc:
                # A replica that is down or black-holed would otherwise cost a
                # connect timeout on every read: skip it for a while.
                self.replica_errors += 1
                self._replica_down_until = loop.time() + self._replica_retry_s
                log.warning("replica read failed, using the primary: %s", type(exc).__name__)
        self.replica_fallbacks += 1
        async with self.primary() as conn:
            return await conn.fetchrow(query, *args)

    # -- timeline fencing --------------------------------------------------------
    async def _connect_primary(self, dsn: str, **kwargs: Any) -> asyncpg.Connection:
        """The write pool's connect: the first host of the DSN that is
        read-write *and* not on a lower timeline than seen before. asyncpg on
        its own picks the first read-write host every time, so an unfenced old
        primary listed first would keep the app from the new one (rule 10)."""
        refused: BaseException | None = None
        for host_dsn in split_hosts(dsn):
            try:
                conn = await asyncpg.connect(host_dsn, **kwargs)
            except _DATABASE_ERRORS as exc:  # down, a standby, or slow: next host
                refused = exc
                continue
            try:
                await self.observe_timeline(int(await conn.fetchval(_TIMELINE_SQL)))
            except Unavailable as exc:  # an old primary: never write there
                await conn.close()
                refused = exc
                continue
            except BaseException:
                await conn.close()
                raise
            return conn
        if isinstance(refused, CollabError):
            raise refused
        raise _unavailable(refused or OSError("no database host"))

    async def raise_timeline_floor(self, floor: int) -> None:
        """Another replica saw timeline ``floor``: refuse lower ones from now
        on, and drop pooled connections that may point at the old primary."""
        if floor <= self.timeline:
            return
        had = self.timeline
        self.timeline = floor
        if had:
            self.timeline_changes += 1
            log.warning("database timeline %d -> %d (seen by another replica)", had, floor)
        if self._write is not None:
            await self._write.expire_connections()

    async def observe_timeline(self, timeline: int) -> None:
        """Refuse a server on a lower timeline than seen before (rule 10: an
        old primary restarted after a failover must not take writes)."""
        if timeline < self.timeline:
            log.error("refusing database server on timeline %d < %d", timeline, self.timeline)
            raise Unavailable("the database server is out of date (failover); retry later")
        if timeline > self.timeline:
            if self.timeline:
                self.timeline_changes += 1
                log.warning("database timeline changed %d -> %d", self.timeline, timeline)
                if self._write is not None:
                    # Pooled connections may still point at the old primary.
                    await self._write.expire_connections()
            self.timeline = timeline


def statement_error(exc: BaseException) -> CollabError | None:
    """What ``primary()`` would raise for a database error that ended only
    one statement (the server refused it; the connection is fine, so the
    transaction can roll back to a savepoint and go on). ``None`` for a lost
    connection, a demoted server or a client-side error: those must end the
    transaction and go through ``primary()``."""
    if isinstance(exc, _LOST_CONNECTION) or not isinstance(exc, asyncpg.PostgresError):
        return None
    if isinstance(exc, _TRANSIENT):
        return _unavailable(exc)
    return _internal(exc)


def _unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return Unavailable("the database is read-only right now (failover); retry later")
    if isinstance(exc, _TRANSIENT):
        return Unavailable("the database is busy; retry later")
    return Unavailable("the database is unavailable; retry later")


def _internal(exc: asyncpg.PostgresError) -> Internal:
    # The SQLSTATE goes to the log for operators; the client gets no SQL.
    log.error("unexpected database error %s (%s)", type(exc).__name__, exc.sqlstate)
    return Internal("database error")
