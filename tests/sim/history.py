"""What happened in a simulated run, and the invariants checked over it.

Recorded: every fence advance and bump and every edit commit in the store's
own order; every ``granted`` and ``ack`` a client was told; every frame a
socket was pushed (delivery order is checked as it happens); failovers, with
the time after which an asynchronous one lost writes; the simulation's own
model of who may write which note (independent of the store's check).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


class Violation(AssertionError):
    """An invariant does not hold."""


@dataclass
class Commit:
    at: float
    note: str
    version: int
    fence: int
    holder: str
    op: str
    user: str
    duplicate: bool
    timeline: int


@dataclass
class History:
    problems: list[str] = field(default_factory=list)
    # note -> fence -> sessions whose advance raised it (rule 1: at most one)
    raised: dict[str, dict[int, list[str]]] = field(default_factory=lambda: defaultdict(dict))
    # note -> highest fence ever in force, on any timeline (lost ones included)
    highest: dict[str, int] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    told_granted: list[tuple[float, str, str, int]] = field(default_factory=list)
    acks: list[tuple[float, str, str, str, int]] = field(default_factory=list)
    lossy_after: list[float] = field(default_factory=list)  # async failovers
    writers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # note->users
    sessions: dict[str, str] = field(default_factory=dict)  # session -> user
    trace: list[str] = field(default_factory=list)
    events: int = 0
    idle_warning_s: float = 0.0  # the run's COLLAB_IDLE_WARNING_S
    # (session, note) -> idle warnings pushed: (time, fence, handoff_in_ms or None)
    warnings: dict[tuple[str, str], list[tuple[float, int, int | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (session, note) -> when an edit or a ``keep`` from it reached a replica
    activity: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    idle_handoffs: int = 0

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def log(self, text: str) -> None:
        self.events += 1
        self.trace.append(f"{self.now():.4f} {text}")

    def fail(self, text: str) -> None:
        self.problems.append(f"t={self.now():.3f}s: {text}")

    # -- the store ------------------------------------------------------------------
    def advance(self, note: str, fence: int, holder: str, raised: bool, timeline: int) -> None:
        self.log(f"advance {note[:6]} {fence} {holder[:6]} {raised} tl{timeline}")
        if not raised:
            return
        others = self.raised[note].setdefault(fence, [])
        if others:
            self.fail(f"fence {fence} of {note[:6]} raised twice: for {others} and {holder}")
        others.append(holder)
        self.highest[note] = max(self.highest.get(note, 0), fence)
        user = self.sessions.get(holder)
        if user not in self.writers[note]:
            self.fail(f"fence {fence} of {note[:6]} granted to {holder[:6]}, whose user "
                      f"{(user or '?')[:6]} may not write")  # fmt: skip

    def bump(self, note: str, fence: int) -> None:
        self.log(f"bump {note[:6]} {fence}")
        self.highest[note] = max(self.highest.get(note, 0), fence)

    def commit(self, note: str, version: int, fence: int, holder: str, op: str, user: str,
               duplicate: bool, timeline: int) -> None:  # fmt: skip
        self.log(f"commit {note[:6]} v{version} f{fence} {holder[:6]} dup={duplicate}")
        if duplicate:
            return
        if fence < self.highest.get(note, 0):
            self.fail(f"edit v{version} of {note[:6]} accepted under fence {fence}, but fence "
                      f"{self.highest[note]} was issued before it (a stale writer)")  # fmt: skip
        if user not in self.writers[note]:
            self.fail(f"edit v{version} of {note[:6]} accepted from {user[:6]}, who may not write")
        self.commits.append(Commit(self.now(), note, version, fence, holder, op, user, duplicate,
                                   timeline))  # fmt: skip

    def note_failover(self, lost_after: float | None) -> None:
        self.log(f"failover lost_after={lost_after}")
        if lost_after is not None:
            self.lossy_after.append(lost_after)

    # -- what clients were told --------------------------------------------------------
    def granted(self, session: str, note: str, fence: int, user: str) -> None:
        self.log(f"told granted {session[:6]} {note[:6]} {fence}")
        self.told_granted.append((self.now(), session, note, fence))
        holders = self.raised.get(note, {}).get(fence, [])
        if session not in holders:
            self.fail(f"{session[:6]} told granted fence {fence} of {note[:6]}, "
                      f"which the store raised for {holders}")  # fmt: skip

    def active(self, session: str, note: str) -> None:
        """An edit or ``keep`` from ``session`` reached its replica."""
        self.activity[(session, note)].append(self.now())

    def pushed(self, session: str, msg: dict[str, Any]) -> None:
        """A replica pushed ``msg`` to the session's socket (whether or not the
        network then delivered it): the idle hand-off is checked from these."""
        kind, note = msg.get("type"), str(msg.get("note"))
        if kind == "idle_warning":
            self.log(f"idle warning {session[:6]} {note[:6]} {msg['handoff_in_ms']}")
            self.warnings[(session, note)].append(
                (self.now(), int(msg["fence"]), msg["handoff_in_ms"])
            )
        elif kind == "lease_lost" and msg.get("reason") == "idle":
            self.log(f"idle hand-off {session[:6]} {note[:6]} f{msg['fence']}")
            self.idle_handoffs += 1
            self._check_idle_handoff(session, note, int(msg["fence"]))

    def _check_idle_handoff(self, session: str, note: str, fence: int) -> None:
        """A holder is handed off only after a warning for that token, at
        least the warning time before, with no keystroke or ``keep`` from it
        during that warning."""
        said = [(t, ms) for t, f, ms in self.warnings.get((session, note), []) if f == fence]
        if not said or said[-1][1] is None:
            self.fail(f"{session[:6]} handed off {note[:6]} f{fence} with no warning in force")
            return
        warned = said[-1][0]
        if self.now() - warned < self.idle_warning_s:
            self.fail(f"{session[:6]} handed off {note[:6]} {self.now() - warned:.3f}s after "
                      f"its warning, under the {self.idle_warning_s}s promised")  # fmt: skip
        window = (warned, warned + self.idle_warning_s)
        busy = [t for t in self.activity.get((session, note), []) if window[0] < t < window[1]]
        if busy:
            self.fail(f"{session[:6]} handed off {note[:6]} although active at t={busy[0]:.3f} "
                      f"during its warning")  # fmt: skip

    def acked(self, session: str, note: str, op: str, version: int) -> None:
        self.log(f"ack {session[:6]} {note[:6]} {op[:6]} v{version}")
        self.acks.append((self.now(), session, note, op, version))

    # -- end of run ------------------------------------------------------------------------
    def check_acked_edits_kept(self, ops: dict[tuple[str, str], tuple[int, Any]]) -> None:
        """Every acknowledged edit is stored exactly once, at its version,
        unless an asynchronous failover lost it (it committed after the
        standby's last copy)."""
        committed_at = {(c.note, c.op): c.at for c in self.commits}
        for _, session, note, op, version in self.acks:
            stored = ops.get((note, op))
            if stored is not None and stored[0] == version:
                continue
            at = committed_at.get((note, op), 0.0)
            if any(at > lost for lost in self.lossy_after):
                continue  # inside the declared loss window of asynchronous replication
            self.fail(f"acked edit {op[:6]} v{version} of {note[:6]} ({session[:6]}) is "
                      f"{'missing' if stored is None else f'at v{stored[0]}'}")  # fmt: skip
