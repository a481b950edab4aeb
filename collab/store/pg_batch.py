"""Group commit for ``PostgresStore.commit_edit``: edits of different notes
that arrive while earlier commits are running share one transaction, so they
share one COMMIT and one WAL flush (docs/design.md, "Group commit").

``EditBatcher`` knows nothing about SQL. Callers ``submit`` a request under a
key (the note id) and await its outcome; flusher tasks hand the store's batch
runner whatever is queued and deliver each request's outcome once the runner
returned, i.e. after its transaction committed. The rules it keeps:

* No timer: a flusher starts at once when one is free, so a lone edit waits
  for nothing. Requests pile up only while all flushers are busy, and the
  next batch takes what piled up (at most ``max_batch``).
* At most one request per key in a batch, and never a key that is in a batch
  still running: a note's edits run one batch after another, in the order
  they were submitted.
* Up to ``flushers`` batches run at once; waiting work is shared among the
  flushers that are free, so a burst is not serialised into one big batch.
* The queue is bounded (``max_queued``); when it is full ``submit`` waits for
  room (backpressure), nothing is dropped.
* A caller cancelled while its request is queued takes it out of the next
  batch; one cancelled while its batch runs does not stop the batch.
* ``close`` fails every queued request with ``Unavailable``, lets running
  batches finish for up to ``grace_s``, then cancels them (their callers get
  ``Unavailable`` as well).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from collab.errors import Unavailable

Req = TypeVar("Req")
Res = TypeVar("Res")

CLOSED_MESSAGE = "the database connection is closed"


@dataclass(eq=False)
class _Queued(Generic[Req, Res]):
    request: Req
    key: str
    future: asyncio.Future[Res]


class EditBatcher(Generic[Req, Res]):
    """Batches concurrent requests of distinct keys for one runner.

    ``run(requests)`` gets the batch in submission order and returns one
    outcome per request, in the same order: a result or the exception that
    request alone raises. If ``run`` raises, every request of the batch gets
    that exception. Outcomes are delivered only after ``run`` returned.
    """

    def __init__(
        self,
        run: Callable[[list[Req]], Awaitable[Sequence[Res | BaseException]]],
        *,
        max_batch: int,
        flushers: int,
        max_queued: int | None = None,
    ) -> None:
        if max_batch < 1 or flushers < 1:
            raise ValueError("max_batch and flushers must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self.flushers = flushers
        self.max_queued = max_queued if max_queued is not None else max_batch * flushers
        self._queue: deque[_Queued[Req, Res]] = deque()
        self._room = asyncio.Semaphore(self.max_queued)
        self._busy_keys: set[str] = set()  # keys of the batches running now
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # batches being run now
        self._closed = False
        # Counters (for tests, metrics and benchmarks).
        self.batches = 0
        """Batches run."""
        self.batched = 0
        """Requests run, over all batches."""
        self.largest_batch = 0
        """The most requests one batch held."""

    # -- callers -----------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches being run now."""
        return self._running

    def busy(self, key: str) -> bool:
        """Whether a batch running now holds a request of ``key``."""
        return key in self._busy_keys

    async def submit(self, request: Req, key: str) -> Res:
        """Queue ``request`` and return its outcome (or raise it) once its
        batch committed. Waits for room when the queue is full."""
        if self._closed:
            raise Unavailable(CLOSED_MESSAGE)
        await self._room.acquire()
        if self._closed:
            self._room.release()
            raise Unavailable(CLOSED_MESSAGE)
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(request, key, future))
        self._spawn_if_needed()
        # Cancelling the caller cancels the future: a queued request is then
        # skipped, one in a running batch is still committed, and its outcome
        # is dropped.
        return await future

    async def close(self, grace_s: float) -> None:
        """Stop taking work: queued requests fail with ``Unavailable`` now,
        running batches get ``grace_s`` to finish before they are cancelled."""
        self._closed = True
        while self._queue:
            item = self._queue.popleft()
            self._room.release()
            if not item.future.done():
                item.future.set_exception(Unavailable(CLOSED_MESSAGE))
        # Callers waiting for room wake up, see the store closed and leave.
        for _ in range(self.max_queued):
            self._room.release()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- flushers ----------------------------------------------------------------
    def _spawn_if_needed(self) -> None:
        """One more flusher if work waits that no flusher will take soon: every
        flusher that is not running a batch is about to take one."""
        idle = len(self._tasks) - self._running
        if self._closed or len(self._tasks) >= self.flushers or idle >= self._takeable():
            return
        task = asyncio.get_running_loop().create_task(self._flush())
        self._tasks.add(task)

    def _takeable(self) -> int:
        """Requests a new batch could take now: the first live one of each key
        not in a running batch."""
        seen: set[str] = set()
        for item in self._queue:
            if item.future.done() or item.key in self._busy_keys:
                continue
            seen.add(item.key)
        return len(seen)

    def _take(self) -> list[_Queued[Req, Res]]:
        """The next batch, oldest first: this flusher's share of the takeable
        requests (split among the flushers that are not running a batch),
        at most ``max_batch``. Cancelled requests leave the queue here."""
        free = max(1, self.flushers - self._running)
        share = min(self.max_batch, math.ceil(self._takeable() / free))
        batch: list[_Queued[Req, Res]] = []
        keys: set[str] = set()
        kept: deque[_Queued[Req, Res]] = deque()
        for item in self._queue:
            if item.future.done():  # its caller gave up before it ran
                self._room.release()
                continue
            if len(batch) < share and item.key not in self._busy_keys and item.key not in keys:
                batch.append(item)
                keys.add(item.key)
                self._room.release()
            else:
                kept.append(item)
        self._queue = kept
        self._busy_keys |= keys
        return batch

    async def _flush(self) -> None:
        try:
            while not self._closed:
                batch = self._take()
                if not batch:
                    return
                self._running += 1
                self._spawn_if_needed()  # more waits than this flusher took
                await self._run_batch(batch)
        finally:
            # Now, not in a done callback (that runs a loop turn later): a
            # request submitted meanwhile must not count on this flusher.
            self._tasks.discard(asyncio.current_task())

    async def _run_batch(self, batch: list[_Queued[Req, Res]]) -> None:
        """Run one taken batch (``_running`` already counts it)."""
        self.batches += 1
        self.batched += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        outcomes: Sequence[Res | BaseException]
        try:
            try:
                outcomes = await self._run([item.request for item in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError("the batch runner returned the wrong number of outcomes")
            except Exception as exc:  # the transaction failed: all of it did
                outcomes = [exc] * len(batch)
            except BaseException:  # cancelled: close() gave up waiting for it
                _deliver(batch, [Unavailable(CLOSED_MESSAGE)] * len(batch))
                raise
            _deliver(batch, outcomes)
        finally:
            self._running -= 1
            self._busy_keys.difference_update(item.key for item in batch)


def _deliver(batch: Sequence[_Queued[Req, Res]], outcomes: Sequence[Res | BaseException]) -> None:
    for item, outcome in zip(batch, outcomes, strict=True):
        if item.future.done():  # cancelled caller: nobody to tell
            continue
        if isinstance(outcome, BaseException):
            item.future.set_exception(outcome)
        else:
            item.future.set_result(outcome)
