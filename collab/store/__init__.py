"""The storage layer: ``open_store`` picks the backend from the settings."""

from __future__ import annotations

from collab.settings import Settings
from collab.store.base import CommitResult, LockEvent, Store
from collab.store.postgres import PostgresStore
from collab.store.quotas import Quotas
from collab.store.sqlite import SqliteStore

__all__ = ["CommitResult", "LockEvent", "PostgresStore", "SqliteStore", "Store", "open_store"]


async def open_store(settings: Settings, timeline_floor: int = 0) -> Store:
    """A connected store: PostgreSQL when ``database_url`` is set (plus a read
    pool on ``database_read_url`` if set), else SQLite at ``sqlite_path``
    (its parent directory is created). It does not migrate: callers run
    ``await store.migrate()`` (``migrate_on_start``, ``collab migrate``).

    ``timeline_floor`` is the highest PostgreSQL timeline any replica has seen
    (rule 10): a server on a lower one is refused from the first connection.

    Raises ``Unavailable`` when the database cannot be reached.
    """
    if settings.database_url:
        store = PostgresStore(
            settings.database_url,
            read_url=settings.database_read_url,
            pool_min=settings.db_pool_min,
            pool_max=settings.db_pool_max,
            connect_timeout_s=settings.db_connect_timeout_s,
            command_timeout_s=settings.db_command_timeout_s,
            replica_retry_s=settings.db_replica_retry_s,
            quotas=Quotas.from_settings(settings),
            commit_batch_max=settings.db_commit_batch_max,
        )
        store.pools.timeline = timeline_floor
        return await store.open()
    return await SqliteStore(
        settings.sqlite_path, settings.sqlite_busy_timeout_ms, Quotas.from_settings(settings)
    ).open()
