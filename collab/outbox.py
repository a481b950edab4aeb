"""One socket's outbound frames, bounded in frames and in bytes.

A client that does not read must not pin a replica's memory: every frame
waiting here is counted by its real size in memory (``sys.getsizeof``, not
its length in characters, which undercounts non-ASCII text up to four
times), and a frame that would take the box over either bound is refused, so
the caller closes the socket as a slow consumer. One frame is always taken
into an empty box whatever its size, so a snapshot of the largest note a
client may open still gets through to a client that reads: a socket's
buffer holds at most ``max_bytes`` plus one such frame (docs/protocol.md,
Limits)."""

from __future__ import annotations

import asyncio
import sys
from collections import deque


class Outbox:
    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str) -> bool:
        """Queue ``frame``; False (and nothing queued) when it does not fit."""
        size = sys.getsizeof(frame)
        if self._frames and (
            len(self._frames) >= self.max_frames or self.nbytes + size > self.max_bytes
        ):
            return False
        self._frames.append(frame)
        self.nbytes += size
        self._ready.set()
        return True

    def get_nowait(self) -> str | None:
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self.nbytes -= sys.getsizeof(frame)
        if not self._frames:
            self._ready.clear()
        return frame

    async def get(self) -> str:
        while True:
            frame = self.get_nowait()
            if frame is not None:
                return frame
            await self._ready.wait()

    def clear(self) -> None:
        """Drop everything queued: the socket is going away unread."""
        self._frames.clear()
        self.nbytes = 0
        self._ready.clear()
