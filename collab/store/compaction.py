"""The thin periodic runner of edit-log retention: every
``COLLAB_EDIT_LOG_COMPACT_INTERVAL_S`` it asks the store for one
``compact_edit_log`` pass (the rule is ``retention.py``; the batching and the
one-replica-at-a-time lock are the store's). A failed pass is logged and
tried again next period; it never stops the server."""

from __future__ import annotations

import asyncio
import logging

from collab.settings import Settings
from collab.store.base import Store
from collab.store.retention import CompactionReport, Retention

log = logging.getLogger("collab.compaction")


async def compact_once(store: Store, retention: Retention) -> CompactionReport:
    report = await store.compact_edit_log(retention)
    if report.payloads or report.ops:
        log.info(
            "edit log compacted",
            extra={"payloads": report.payloads, "ops": report.ops, "notes": report.notes},
        )
    return report


async def run_compactor(store: Store, retention: Retention, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await compact_once(store, retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("edit log compaction failed; retrying next period", exc_info=True)


def start_compactor(store: Store, settings: Settings) -> asyncio.Task[None] | None:
    """The background task, or ``None`` when the interval is 0 (off)."""
    if not settings.edit_log_compact_interval_s:
        return None
    return asyncio.create_task(
        run_compactor(
            store, Retention.from_settings(settings), settings.edit_log_compact_interval_s
        )
    )
