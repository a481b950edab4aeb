"""Turning a ``History`` into what the checker reasons about: requests
paired with their replies, pushes, marks, the grants each session learned
of, the tenure each holder could believe in, and each wait in a queue.

Pure functions over recorded events; no server imports (see
``history_check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.history import SYSTEM, Event, History

Frame = dict[str, Any]


@dataclass
class Request:
    client: str
    session: str
    frame: Frame
    sent: float
    replies: list[tuple[float, Frame]] = field(default_factory=list)

    @property
    def note(self) -> str:
        return str(self.frame.get("note", ""))

    def first(self, *kinds: str) -> tuple[float, Frame] | None:
        return next(((t, f) for t, f in self.replies if f.get("type") in kinds), None)


@dataclass
class Tenure:
    """One fence held by one session, as its client could believe it."""

    note: str
    fence: int
    session: str
    start: float  # the granted frame (or resumed welcome) was received
    end: float  # the holder can no longer believe it holds the token
    last_life: float  # the lease was last renewed no later than this (a reply received)


@dataclass
class Wait:
    note: str
    session: str
    asked: float  # acquire sent
    queued: float  # queued reply received
    granted: float | None  # granted received
    left: float  # stopped waiting (granted, release, close, pause); inf if never
    live_until: float  # heartbeats kept its queue entry provably alive until here
    last_life: float


class Parsed:
    """Requests paired with replies, pushes and marks, by client and session."""

    def __init__(self, history: History) -> None:
        self.events = history.sorted_events()
        self.session_of: dict[str, str] = {}
        self.requests: list[Request] = []
        self.pushes: list[tuple[float, str, Frame]] = []  # (t, session, frame)
        self.marks: list[tuple[float, str, Frame]] = []  # (t, client, detail)
        open_rids: dict[tuple[str, Any], Request] = {}
        for e in self.events:
            self._take(e, open_rids)

    def _take(self, e: Event, open_rids: dict[tuple[str, Any], Request]) -> None:
        f = e.frame
        if e.kind == "mark":
            self.marks.append((e.t, e.client, f))
        elif e.kind == "send":
            req = Request(e.client, self.session_of.get(e.client, ""), f, e.t)
            self.requests.append(req)
            if "rid" in f:
                open_rids[(e.client, f["rid"])] = req
        else:
            if f.get("type") == "welcome":
                self.session_of[e.client] = str(f.get("session"))
                pending = open_rids.get((e.client, f.get("rid")))
                if pending is not None:
                    pending.session = str(f.get("session"))
            answered = open_rids.get((e.client, f.get("rid"))) if "rid" in f else None
            if answered is not None:
                answered.replies.append((e.t, f))
            else:
                self.pushes.append((e.t, self.session_of.get(e.client, ""), f))

    def of_type(self, kind: str) -> list[Request]:
        return [r for r in self.requests if r.frame.get("type") == kind]

    def received(self) -> list[tuple[float, str, Frame]]:
        """Every received frame (replies and pushes) as (t, session, frame)."""
        out = list(self.pushes)
        for r in self.requests:
            out.extend((t, r.session, f) for t, f in r.replies)
        return sorted(out, key=lambda x: x[0])

    def client_marks(self, session: str, *names: str) -> list[float]:
        clients = {c for c, s in self.session_of.items() if s == session}
        return [t for t, c, f in self.marks if c in clients and f.get("mark") in names]

    def faults(self) -> list[tuple[float, Frame]]:
        return [(t, f) for t, c, f in self.marks if c == SYSTEM and f.get("mark") == "fault"]


def acked_edits(p: Parsed) -> list[tuple[Request, float, Frame]]:
    out = []
    for r in p.of_type("edit"):
        got = r.first("ack")
        if got is not None:
            out.append((r, got[0], got[1]))
    return out


def grants(p: Parsed) -> list[tuple[float, str, str, int]]:
    """(received, session, note, fence) of every grant a client learned of."""
    out = []
    for t, session, f in p.received():
        if f.get("type") == "granted":
            out.append((t, session, str(f["note"]), int(f["fence"])))
        elif f.get("type") == "welcome":
            for lease in f.get("leases") or []:
                out.append((t, session, str(lease["note"]), int(lease["fence"])))
    return out


def tenures(p: Parsed, ttl_s: float) -> list[Tenure]:
    """What each holder could believe, per (note, fence): from the grant
    until it released (request sent or clean close), was told ``lease_lost``,
    got a heartbeat reply without the lease, or its last renewal sent + TTL."""
    first: dict[tuple[str, int], tuple[float, str]] = {}
    for t, session, note, fence in grants(p):
        first.setdefault((note, fence), (t, session))
    out = []
    for (note, fence), (start, session) in first.items():
        end = float("inf")
        # The grant starts the TTL. Counting from its receipt is late by the
        # PostgreSQL step; the lock-delay that follows an expiry covers that.
        renewed = last_life = start
        for r in p.requests:
            if r.session != session:
                continue
            kind = r.frame.get("type")
            if kind == "release" and r.note == note and r.sent >= start:
                end = min(end, r.sent)
            elif kind == "heartbeat" and r.sent >= start:
                got = r.first("heartbeat_ack")
                if got is None:
                    continue
                if any(
                    lease.get("note") == note and int(lease.get("fence", -1)) == fence
                    for lease in got[1].get("leases") or []
                ):
                    renewed, last_life = max(renewed, r.sent), max(last_life, got[0])
                else:
                    end = min(end, got[0])
            elif kind == "hello" and r.sent >= start:
                got = r.first("welcome")
                if got and any(
                    lease.get("note") == note and int(lease.get("fence", -1)) == fence
                    for lease in got[1].get("leases") or []
                ):
                    renewed, last_life = max(renewed, r.sent), max(last_life, got[0])
        for t, s, f in p.received():
            lost = f.get("type") == "lease_lost" and f.get("note") == note
            if s == session and lost and int(f.get("fence", -1)) == fence and t >= start:
                end = min(end, t)
        # A clean goodbye (close 1000/1001) releases every token at once.
        clients = {c for c, s in p.session_of.items() if s == session}
        for t, c, f in p.marks:
            clean = f.get("mark") == "closed" and f.get("code") in (1000, 1001)
            if c in clients and clean and t >= start:
                end = min(end, t)
        end = min(end, renewed + ttl_s)
        out.append(Tenure(note, fence, session, start, end, last_life))
    return out


def waits(p: Parsed, ttl_s: float) -> list[Wait]:
    out = []
    for r in p.of_type("acquire"):
        q = r.first("queued")
        if q is None:
            continue
        g = next((t for t, f in r.replies if f.get("type") == "granted"), None)
        left = g if g is not None else float("inf")
        for other in p.requests:
            if (
                other.session == r.session
                and other.sent > q[0]
                and (other.frame.get("type") == "release" and other.note == r.note)
            ):
                left = min(left, other.sent)
        for t in p.client_marks(r.session, "closed", "dead", "paused"):
            if t > r.sent:
                left = min(left, t)
        # Continuously live: each heartbeat answered before the previous one
        # (or the acquire) was sent + TTL (the renewal ran in between).
        live_until, last_life, prev_sent = r.sent + ttl_s, q[0], r.sent
        for hb in p.of_type("heartbeat"):
            if hb.session != r.session or hb.sent <= r.sent or hb.sent >= left:
                continue
            got = hb.first("heartbeat_ack")
            if got is None or got[0] >= prev_sent + ttl_s:
                break
            live_until, last_life, prev_sent = hb.sent + ttl_s, got[0], hb.sent
        out.append(Wait(r.note, r.session, r.sent, q[0], g, left, live_until, last_life))
    return out
