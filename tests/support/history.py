"""Recording what fault tests observe, for ``tests.support.history_check``.

A ``History`` is a flat list of ``Event``s stamped with ``time.monotonic()``
(CLOCK_MONOTONIC: one clock for every process on the machine, so child
processes can append their own events from a JSON-lines file):

* ``send`` / ``recv``: every protocol frame a recorded client sent or got.
  ``send`` is stamped *before* the bytes leave and ``recv`` *after* they
  arrived, so "A was received before B was sent" is never claimed wrongly.
* ``mark``: something the test did or saw happen to one client (``paused``,
  ``resumed``, ``dead``, ``closed``) or to the system (client ``*``,
  ``fault``).

After the run, ``collect_final`` reads each note's final row, its edit log
and its lock audit rows straight from PostgreSQL (not through the server
under test). The recorder does not judge; the checker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import websockets

from tests.support.client import WsClient

Frame = dict[str, Any]
SYSTEM = "*"


@dataclass(frozen=True)
class Event:
    t: float  # time.monotonic() of this machine
    client: str  # the recorded socket (or process) name; "*" for system marks
    kind: str  # "send" | "recv" | "mark"
    frame: Frame  # the protocol frame, or {"mark": name, ...detail}


@dataclass(frozen=True)
class AuditRow:
    """One ``lock_events`` row; ``t`` is its database time mapped onto the
    monotonic clock (approximate: only used for reporting)."""

    id: int
    kind: str
    session: str
    fence: int
    t: float


@dataclass
class FinalNote:
    note: str
    initial: str  # content at version 0
    content: str
    version: int
    fence: int
    log: list[tuple[int, str, Frame]]  # (version, op, payload) in version order
    audit: list[AuditRow] = field(default_factory=list)


class History:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.final: dict[str, FinalNote] = {}
        # wall clock = monotonic + offset, to place database timestamps.
        self.wall_offset = time.time() - time.monotonic()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def add(self, client: str, kind: str, frame: Frame, t: float | None = None) -> None:
        self.events.append(Event(self.now() if t is None else t, client, kind, frame))

    def mark(self, client: str, mark: str, **detail: Any) -> None:
        self.add(client, "mark", {"mark": mark, **detail})

    def fault(self, name: str, stall_s: float = 0.0, **detail: Any) -> None:
        """A system-wide fault. ``stall_s`` > 0 says grants may legitimately
        stall for that long from now (e.g. Redis down, then the rule-8 pause):
        hand-off deadlines whose window overlaps it are not judged."""
        self.mark(SYSTEM, "fault", name=name, stall_s=stall_s, **detail)

    def merge_jsonl(self, path: Path) -> None:
        """Append events a child process wrote (one ``Event`` as JSON per line)."""
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            if line.strip():
                raw = json.loads(line)
                self.events.append(Event(raw["t"], raw["client"], raw["kind"], raw["frame"]))

    def sorted_events(self) -> list[Event]:
        return sorted(self.events, key=lambda e: e.t)

    def dump(self, path: Path) -> None:
        """Write the whole history (for replaying a failure by hand)."""
        with open(path, "w") as fh:
            for event in self.sorted_events():
                fh.write(json.dumps(asdict(event)) + "\n")
            for note in self.final.values():
                fh.write(json.dumps({"final": asdict(note)}) + "\n")

    @classmethod
    def load(cls, path: Path) -> History:
        """Read back a history written by ``dump``, to re-run the checker."""
        history = cls()
        for line in path.read_text().splitlines():
            raw = json.loads(line)
            if "final" in raw:
                f = raw["final"]
                history.final[f["note"]] = FinalNote(
                    f["note"],
                    f["initial"],
                    f["content"],
                    f["version"],
                    f["fence"],
                    [tuple(x) for x in f["log"]],
                    [AuditRow(**a) for a in f["audit"]],
                )
            else:
                history.events.append(Event(**raw))
        return history

    async def collect_final(self, database_url: str, note_ids: list[str]) -> None:
        """Read the final state of ``note_ids`` from PostgreSQL (retrying while
        the database is failing over)."""
        import asyncpg

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = await asyncpg.connect(database_url, target_session_attrs="read-write")
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            for note_id in note_ids:
                self.final[note_id] = await self._read_note(conn, note_id)
        finally:
            await conn.close()

    async def _read_note(self, conn: Any, note_id: str) -> FinalNote:
        row = await conn.fetchrow(
            "SELECT content, version, fence FROM notes WHERE id = $1", note_id
        )
        initial = await conn.fetchval(
            "SELECT content FROM revisions WHERE note_id = $1 AND version = 0", note_id
        )
        log = [
            (int(r["version"]), str(r["op"]), orjson.loads(r["payload"]))
            for r in await conn.fetch(
                "SELECT version, op, payload::text AS payload FROM edits"
                " WHERE note_id = $1 ORDER BY version",
                note_id,
            )
        ]
        audit = [
            AuditRow(
                int(r["id"]),
                str(r["kind"]),
                str(r["session"]),
                int(r["fence"]),
                self._monotonic(r["at"]),
            )
            for r in await conn.fetch(
                "SELECT id, kind, session, fence, at FROM lock_events"
                " WHERE note_id = $1 ORDER BY id",
                note_id,
            )
        ]
        return FinalNote(
            note_id,
            str(initial or ""),
            str(row["content"]),
            int(row["version"]),
            int(row["fence"]),
            log,
            audit,
        )

    def _monotonic(self, at: datetime) -> float:
        return at.timestamp() - self.wall_offset


class RecordingClient(WsClient):
    """A ``WsClient`` whose every sent and received frame goes into a
    ``History`` under ``name``; it can also keep heartbeating on its own."""

    def __init__(self, ws: Any, history: History, name: str) -> None:
        self.history = history
        self.name = name
        self._beat: asyncio.Task[None] | None = None
        super().__init__(ws)

    @classmethod
    async def open(cls, url: str, history: History, name: str) -> RecordingClient:
        ws = await websockets.connect(url, max_size=None, open_timeout=10)
        return cls(ws, history, name)

    @property
    def session(self) -> str:
        return str(self.welcome.get("session", ""))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                self.history.add(self.name, "recv", frame)
                self.frames.append(frame)
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            self.closed = (code if code is not None else 1006, self.ws.close_reason or "")
            self.history.mark(self.name, "closed", code=self.closed[0])
            self._new.set()

    async def send(self, frame: Frame | str | bytes) -> None:
        if isinstance(frame, dict):
            self.history.add(self.name, "send", frame)
        await super().send(frame)

    def start_heartbeats(self, interval_s: float) -> None:
        """Send ``heartbeat`` every ``interval_s`` until ``stop_heartbeats``
        or the socket closes; replies are recorded like any other."""

        async def beat() -> None:
            while self.closed is None:
                with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
                    await self.request("heartbeat", timeout=interval_s * 3)
                await asyncio.sleep(interval_s)

        self.stop_heartbeats()
        self._beat = asyncio.create_task(beat())

    def stop_heartbeats(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    async def close(self) -> None:
        self.stop_heartbeats()
        await super().close()

    def abandon(self) -> None:
        """Stop doing anything without saying goodbye (a crashed client as
        seen by the server: the socket just goes quiet, then drops)."""
        self.stop_heartbeats()
        self.history.mark(self.name, "dead")
        self._reader.cancel()
        self.ws.transport.abort()
