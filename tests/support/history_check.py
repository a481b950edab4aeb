"""The history checker: judges a ``History`` against the guarantees of the
write token (docs/design.md and docs/reliability.md).

It does not import the server: it replays text itself and reasons only from
frames, marks, the final database rows and two timing settings. Every "A
happened before B" it relies on is between two events of this machine's
monotonic clock where A's stamp is taken after A and B's before B (see
``history.py``), so a violation it reports really happened.

Checks (each returns ``Violation``s; ``check_history`` runs them all):

* ``acked_edits_durable``: every acknowledged op is in the final log exactly
  once, at the version it was acknowledged with; retries of one op were
  acknowledged with one version (never applied twice).
* ``log_replays_to_final``: versions 1..N are contiguous, op ids unique, and
  replaying the log over the initial text gives the final text; with
  ``unique_inserts`` every acknowledged inserted string occurs exactly once.
* ``no_stale_write``: an acknowledged edit used a fence its session had been
  granted, was not sent after anyone had seen a higher fence of the note, and
  acknowledged versions never go back to a lower fence.
* ``one_valid_token``: the audit log grants each fence to one session; and
  the lease a holder may believe in (granted .. release / lease_lost / last
  renewal sent + TTL) never overlaps the next holder's unless a revoke or a
  reset lies between them (those hand over by the fence, rule 5 and 8).
* ``fifo_handoff``: a waiter never overtakes one that queued strictly before
  it and stayed live (heartbeats answered within TTL) and waiting.
* ``handoff_in_time``: a live waiter that got the token got it within
  TTL + lock-delay + 1 s of the last sign of life of everyone ahead of it,
  unless a declared fault stall overlaps the wait.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from tests.support.history import FinalNote, History
from tests.support.history_parse import Parsed, Tenure, acked_edits, grants, tenures, waits

Frame = dict[str, Any]
HANDOFF_SLACK_S = 1.0  # the "+ 1 s" of the hand-off bound (docs/reliability.md)


@dataclass(frozen=True)
class Violation:
    check: str
    note: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] note {self.note}: {self.detail}"


def _fence_evidence(frame: Frame) -> int:
    """The fence a received frame proves the database had reached (0: none):
    ``granted`` and ``revoked`` are only sent after the fence advance committed."""
    kind = frame.get("type")
    if kind in ("granted", "revoked"):
        return int(frame.get("fence", 0))
    # Not ``lock`` pushes: they show Redis's view, whose fence may never have
    # reached the database (a replica killed between grant and fence advance).
    return 0


def _replay(text: str, payload: Frame) -> str:
    if "content" in payload and payload["content"] is not None:
        return str(payload["content"])
    for c in payload.get("changes") or []:
        at, dele = int(c["at"]), int(c["del"])
        if at < 0 or dele < 0 or at + dele > len(text):
            raise ValueError(f"change {c} outside a text of {len(text)}")
        text = text[:at] + str(c["ins"]) + text[at + dele :]
    return text


# -- durability -------------------------------------------------------------------------
def acked_edits_durable(p: Parsed, final: dict[str, FinalNote]) -> list[Violation]:
    out: list[Violation] = []
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    for req, _, ack in acked_edits(p):
        versions[(req.note, str(req.frame["op"]))].add(int(ack["version"]))
    for (note, op), seen in versions.items():
        if len(seen) > 1:
            out.append(Violation("acked_edits_durable", note, f"op {op} acked as {sorted(seen)}"))
        fin = final.get(note)
        if fin is None:
            continue
        logged = [v for v, o, _ in fin.log if o == op]
        if len(logged) != 1 or logged[0] not in seen:
            out.append(
                Violation(
                    "acked_edits_durable",
                    note,
                    f"op {op} acked at {sorted(seen)}, in log at {logged}",
                )
            )
    return out


def log_replays_to_final(
    p: Parsed, final: dict[str, FinalNote], unique_inserts: bool
) -> list[Violation]:
    out: list[Violation] = []
    for note, fin in final.items():
        versions = [v for v, _, _ in fin.log]
        if versions != list(range(1, fin.version + 1)):
            out.append(
                Violation(
                    "log_replays_to_final",
                    note,
                    f"log versions {versions[:5]}.. for version {fin.version}",
                )
            )
        dupes = [o for o, n in Counter(o for _, o, _ in fin.log).items() if n > 1]
        if dupes:
            out.append(Violation("log_replays_to_final", note, f"ops logged twice: {dupes}"))
        text = fin.initial
        try:
            for _, _, payload in fin.log:
                text = _replay(text, payload)
        except ValueError as exc:
            out.append(Violation("log_replays_to_final", note, f"log does not replay: {exc}"))
            continue
        if text != fin.content:
            out.append(Violation("log_replays_to_final", note, "replayed log != final text"))
    if unique_inserts:
        for req, _, _ in acked_edits(p):
            inserted = final.get(req.note)
            for c in req.frame.get("changes") or []:
                ins = str(c.get("ins", ""))
                if inserted is not None and ins and inserted.content.count(ins) != 1:
                    out.append(
                        Violation(
                            "log_replays_to_final",
                            req.note,
                            f"{ins!r} occurs {inserted.content.count(ins)} times",
                        )
                    )
    return out


# -- fencing ----------------------------------------------------------------------------
def no_stale_write(p: Parsed) -> list[Violation]:
    out: list[Violation] = []
    granted = grants(p)
    highest: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for t, _, f in p.received():
        fence = _fence_evidence(f)
        if fence:
            highest[str(f.get("note"))].append((t, fence))
    by_version: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for req, _, ack in acked_edits(p):
        note, fence, op = req.note, int(req.frame["fence"]), str(req.frame["op"])
        by_version[note].append((int(ack["version"]), fence, op))
        if not any(
            s == req.session and n == note and g == fence and t <= req.sent
            for t, s, n, g in granted
        ):
            out.append(
                Violation(
                    "no_stale_write",
                    note,
                    f"op {op} acked with fence {fence} never granted to its session",
                )
            )
        seen = [g for t, g in highest[note] if t < req.sent and g > fence]
        if seen:
            out.append(
                Violation(
                    "no_stale_write",
                    note,
                    f"op {op} acked with fence {fence} "
                    f"though fence {max(seen)} was seen before it was sent",
                )
            )
    for note, rows in by_version.items():
        rows.sort()
        for (v1, f1, _), (v2, f2, op2) in pairwise(rows):
            if f2 < f1:
                out.append(
                    Violation(
                        "no_stale_write",
                        note,
                        f"version {v2} (op {op2}) under fence {f2} after "
                        f"version {v1} under fence {f1}",
                    )
                )
    return out


# -- one valid token ----------------------------------------------------------------------
def one_valid_token(p: Parsed, final: dict[str, FinalNote], ttl_s: float) -> list[Violation]:
    out: list[Violation] = []
    for note, fin in final.items():
        # Audit rows are written after the grant by each replica, so their
        # order may differ from fence order under load. One fence recorded
        # twice for one session is a repeated grant, not a second token.
        owners: dict[int, set[str]] = defaultdict(set)
        for a in fin.audit:
            if a.kind == "granted":
                owners[a.fence].add(a.session)
        shared = sorted(f for f, sessions in owners.items() if len(sessions) > 1)
        if shared:
            out.append(
                Violation("one_valid_token", note, f"fences granted to two sessions: {shared}")
            )
    handover: dict[str, set[int]] = defaultdict(set)  # fences that fenced by revoke/reset
    for _, _, f in p.received():
        if f.get("type") == "revoked":
            handover[str(f["note"])].add(int(f["fence"]))
        if f.get("type") == "lease_lost" and f.get("reason") in ("revoked", "reset"):
            handover[str(f["note"])].add(int(f["fence"]) + 1)
    for fin in final.values():
        for a in fin.audit:
            if a.kind == "revoked":
                handover[fin.note].add(a.fence)
            elif a.kind == "reset":
                handover[fin.note].add(a.fence + 1)
    by_note: dict[str, list[Tenure]] = defaultdict(list)
    for ten in tenures(p, ttl_s):
        by_note[ten.note].append(ten)
    for note, items in by_note.items():
        items.sort(key=lambda x: x.fence)
        for i, a_ten in enumerate(items):
            for b_ten in items[i + 1 :]:
                if a_ten.session == b_ten.session or b_ten.start >= a_ten.end:
                    continue
                if any(a_ten.fence < h <= b_ten.fence for h in handover[note]):
                    continue
                out.append(
                    Violation(
                        "one_valid_token",
                        note,
                        f"fence {a_ten.fence} believable until {a_ten.end:.3f} but fence "
                        f"{b_ten.fence} granted at {b_ten.start:.3f}",
                    )
                )
    return out


# -- waiters ----------------------------------------------------------------------------
def fifo_handoff(p: Parsed, ttl_s: float) -> list[Violation]:
    out: list[Violation] = []
    all_waits = waits(p, ttl_s)
    for w2 in all_waits:
        if w2.granted is None:
            continue
        for w1 in all_waits:
            if w1.note != w2.note or w1.session == w2.session or w1.queued >= w2.asked:
                continue
            still_waiting = w1.left > w2.granted and (w1.granted is None or w1.granted > w2.granted)
            if still_waiting and w1.live_until > w2.granted:
                out.append(
                    Violation(
                        "fifo_handoff",
                        w2.note,
                        f"{w2.session[:8]} granted at {w2.granted:.3f} ahead of "
                        f"{w1.session[:8]} queued earlier at {w1.queued:.3f}",
                    )
                )
    return out


def handoff_in_time(p: Parsed, ttl_s: float, lock_delay_s: float) -> list[Violation]:
    out: list[Violation] = []
    bound = ttl_s + lock_delay_s + HANDOFF_SLACK_S
    holders = tenures(p, ttl_s)
    faults = [(t, t + float(f.get("stall_s", 0.0))) for t, f in p.faults()]
    all_waits = waits(p, ttl_s)
    for w in all_waits:
        if w.granted is None or w.live_until < w.granted:
            continue
        # Everyone ahead: earlier tenures of the note and waiters queued first.
        ahead = [h.last_life for h in holders if h.note == w.note and h.start < w.granted]
        ahead += [
            o.last_life
            for o in all_waits
            if o.note == w.note and o.session != w.session and o.queued < w.asked
        ]
        ready = max([w.queued, *[a for a in ahead if a < w.granted]])
        if any(s < w.granted and e > ready for s, e in faults):
            continue
        if w.granted - ready > bound:
            out.append(
                Violation(
                    "handoff_in_time",
                    w.note,
                    f"{w.session[:8]} waited {w.granted - ready:.2f}s > {bound:.2f}s",
                )
            )
    return out


def check_history(
    history: History, ttl_s: float, lock_delay_s: float, unique_inserts: bool = True
) -> list[Violation]:
    p = Parsed(history)
    final = history.final
    return [
        *acked_edits_durable(p, final),
        *log_replays_to_final(p, final, unique_inserts),
        *no_stale_write(p),
        *one_valid_token(p, final, ttl_s),
        *fifo_handoff(p, ttl_s),
        *handoff_in_time(p, ttl_s, lock_delay_s),
    ]


def assert_history_ok(
    history: History, ttl_s: float, lock_delay_s: float, unique_inserts: bool = True
) -> None:
    found = check_history(history, ttl_s, lock_delay_s, unique_inserts)
    assert not found, "history check failed:\n" + "\n".join(str(v) for v in found[:20])
