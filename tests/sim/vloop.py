"""An asyncio event loop on virtual time.

The loop's clock starts at 0 and jumps straight to the next timer whenever
nothing is ready, so a run of many virtual seconds takes as long as its
callbacks take to run, and the order of callbacks depends only on the
program (ready callbacks run FIFO; timers by deadline, ties by scheduling
order). Nothing in a simulation may do real I/O: the loop never polls for it."""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _VirtualSelector(selectors.SelectSelector):
    """Never waits and never asks the kernel: nothing in a simulation does
    real I/O, so "wait for I/O until the next timer" means "jump to it"."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("the simulation has nothing left to run and no timer")
        if timeout > 0:
            self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
