"""The history checker fed hand-written histories: a correct one passes, and
each kind of bad history is caught by the check that owns it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.history import AuditRow, FinalNote, History
from tests.support.history_check import check_history

TTL, DELAY = 1.2, 0.3
NOTE = "n1"


class Script:
    """Builds a history at explicit monotonic times."""

    def __init__(self) -> None:
        self.h = History()
        self.rid = 0

    def hello(self, client: str, session: str, t: float, leases: Any = ()) -> None:
        self.h.add(client, "send", {"type": "hello", "rid": client + "h", "token": "x"}, t)
        self.h.add(
            client,
            "recv",
            {"type": "welcome", "rid": client + "h", "session": session, "leases": list(leases)},
            t + 0.01,
        )

    def req(
        self,
        client: str,
        t: float,
        reply_t: float | None,
        frame: dict[str, Any],
        *replies: dict[str, Any],
    ) -> str:
        self.rid += 1
        rid = f"q{self.rid}"
        self.h.add(client, "send", {**frame, "rid": rid}, t)
        for i, reply in enumerate(replies):
            assert reply_t is not None
            self.h.add(client, "recv", {**reply, "rid": rid}, reply_t + i * 0.001)
        return rid

    def push(self, client: str, t: float, frame: dict[str, Any]) -> None:
        self.h.add(client, "recv", frame, t)

    def granted(self, client: str, t: float, fence: int) -> None:
        self.req(
            client,
            t,
            t + 0.01,
            {"type": "acquire", "note": NOTE},
            {"type": "granted", "note": NOTE, "fence": fence},
        )

    def edit(
        self, client: str, t: float, fence: int, base: int, op: str, ins: str, version: int | None
    ) -> None:
        reply = (
            {"type": "ack", "note": NOTE, "op": op, "version": version}
            if version
            else {"type": "error", "code": "fenced"}
        )
        self.req(
            client,
            t,
            t + 0.01,
            {
                "type": "edit",
                "note": NOTE,
                "fence": fence,
                "base": base,
                "op": op,
                "changes": [{"at": 0, "del": 0, "ins": ins}],
            },
            reply,
        )

    def beat(self, client: str, t: float, leases: list[tuple[str, int]]) -> None:
        self.req(
            client,
            t,
            t + 0.01,
            {"type": "heartbeat"},
            {
                "type": "heartbeat_ack",
                "leases": [{"note": n, "fence": f, "ttl_ms": 1200} for n, f in leases],
            },
        )

    def final(
        self,
        log: list[tuple[int, str, str]],
        audit: list[tuple[str, str, int]],
        content: str | None = None,
        fence: int = 0,
    ) -> None:
        text = ""
        for _, _, ins in log:
            text = ins + text
        self.h.final[NOTE] = FinalNote(
            NOTE,
            "",
            text if content is None else content,
            len(log),
            fence,
            [(v, op, {"changes": [{"at": 0, "del": 0, "ins": ins}]}) for v, op, ins in log],
            [AuditRow(i, k, s, f, 0.0) for i, (k, s, f) in enumerate(audit)],
        )

    def checks(self) -> set[str]:
        return {v.check for v in check_history(self.h, TTL, DELAY)}


def good_history() -> Script:
    """A writes, releases; B, queued meanwhile, gets the token and writes."""
    s = Script()
    s.hello("a", "SA", 0.0)
    s.hello("b", "SB", 0.0)
    s.granted("a", 1.0, 1)
    s.req("b", 1.1, 1.12, {"type": "acquire", "note": NOTE}, {"type": "queued", "position": 1})
    s.edit("a", 1.2, 1, 0, "op1", "[one]", 1)
    s.beat("a", 1.3, [(NOTE, 1)])
    s.beat("b", 1.3, [])
    s.req(
        "a",
        1.5,
        1.52,
        {"type": "release", "note": NOTE, "fence": 1},
        {"type": "released", "note": NOTE},
    )
    s.push("b", 1.6, {"type": "granted", "rid": "q2", "note": NOTE, "fence": 2})
    s.edit("b", 1.7, 2, 1, "op2", "[two]", 2)
    s.edit("a", 1.8, 1, 2, "op3", "[late]", None)
    s.final(
        [(1, "op1", "[one]"), (2, "op2", "[two]")],
        [("granted", "SA", 1), ("released", "SA", 1), ("granted", "SB", 2)],
        fence=2,
    )
    return s


def test_a_correct_history_passes() -> None:
    s = good_history()
    assert check_history(s.h, TTL, DELAY) == []


def test_lost_acked_edit_is_caught() -> None:
    s = good_history()
    s.final([(1, "op1", "[one]")], [("granted", "SA", 1), ("granted", "SB", 2)])
    assert "acked_edits_durable" in s.checks()


def test_edit_applied_twice_is_caught() -> None:
    s = good_history()
    s.final(
        [(1, "op1", "[one]"), (2, "op2", "[two]"), (3, "op1", "[one]")],
        [("granted", "SA", 1), ("granted", "SB", 2)],
    )
    assert {"acked_edits_durable", "log_replays_to_final"} <= s.checks()


def test_retry_acked_with_another_version_is_caught() -> None:
    s = good_history()
    s.edit("a", 1.25, 1, 0, "op1", "[one]", 3)
    assert "acked_edits_durable" in s.checks()


def test_final_text_that_does_not_match_the_log_is_caught() -> None:
    s = good_history()
    s.final([(1, "op1", "[one]"), (2, "op2", "[two]")], [], content="[two][one][one]")
    assert "log_replays_to_final" in s.checks()


def test_write_sent_after_a_newer_grant_and_acked_is_caught() -> None:
    s = good_history()
    s.edit("a", 1.9, 1, 2, "op4", "[stale]", 3)
    s.final([(1, "op1", "[one]"), (2, "op2", "[two]"), (3, "op4", "[stale]")], [])
    assert "no_stale_write" in s.checks()


def test_write_with_a_fence_never_granted_is_caught() -> None:
    s = good_history()
    s.edit("b", 1.9, 7, 2, "op4", "[forged]", 3)
    s.final([(1, "op1", "[one]"), (2, "op2", "[two]"), (3, "op4", "[forged]")], [])
    assert "no_stale_write" in s.checks()


def test_acked_versions_going_back_to_a_lower_fence_are_caught() -> None:
    s = Script()
    s.hello("a", "SA", 0.0)
    s.hello("b", "SB", 0.0)
    s.granted("a", 1.0, 1)
    s.granted("b", 1.0, 2)  # received at the same moment: no "seen before" evidence
    s.edit("b", 1.05, 2, 0, "op1", "[b]", 1)
    s.edit("a", 1.05, 1, 1, "op2", "[a]", 2)
    s.final([(1, "op1", "[b]"), (2, "op2", "[a]")], [])
    assert "no_stale_write" in s.checks()


def test_overlapping_tenures_are_caught() -> None:
    s = Script()
    s.hello("a", "SA", 0.0)
    s.hello("b", "SB", 0.0)
    s.granted("a", 1.0, 1)
    s.beat("a", 1.5, [(NOTE, 1)])  # A may believe until 1.5 + TTL = 2.7
    s.granted("b", 2.0, 2)
    s.final([], [("granted", "SA", 1), ("granted", "SB", 2)])
    assert s.checks() == {"one_valid_token"}


def test_overlap_after_a_revoke_is_allowed_by_design() -> None:
    s = Script()
    s.hello("a", "SA", 0.0)
    s.hello("b", "SB", 0.0)
    s.hello("admin", "SX", 0.0)
    s.granted("a", 1.0, 1)
    s.beat("a", 1.5, [(NOTE, 1)])
    s.req(
        "admin",
        1.6,
        1.61,
        {"type": "revoke", "note": NOTE},
        {"type": "revoked", "note": NOTE, "fence": 2},
    )
    s.granted("b", 2.0, 3)
    s.final([], [("granted", "SA", 1), ("revoked", "", 2), ("granted", "SB", 3)])
    assert s.checks() == set()


def test_a_fence_granted_twice_in_the_audit_log_is_caught() -> None:
    s = good_history()
    s.final(
        [(1, "op1", "[one]"), (2, "op2", "[two]")],
        [("granted", "SA", 1), ("granted", "SB", 2), ("granted", "SC", 2)],
    )
    assert s.checks() == {"one_valid_token"}


def fifo_script(w1_dies: bool) -> Script:
    s = Script()
    for c in ("h", "w1", "w2"):
        s.hello(c, "S" + c, 0.0)
    s.granted("h", 0.5, 1)
    s.req("w1", 1.0, 1.01, {"type": "acquire", "note": NOTE}, {"type": "queued", "position": 1})
    s.req("w2", 1.1, 1.11, {"type": "acquire", "note": NOTE}, {"type": "queued", "position": 2})
    t = 1.2
    while t < 3.0:
        if not w1_dies:
            s.beat("w1", t, [])
        s.beat("w2", t, [])
        t += 0.3
    if w1_dies:
        s.h.add("w1", "mark", {"mark": "dead"}, 1.05)
    s.push("w2", 2.9, {"type": "granted", "rid": "q3", "note": NOTE, "fence": 2})
    s.final([], [("granted", "Sh", 1), ("granted", "Sw2", 2)])
    return s


def test_waiter_overtaken_by_a_later_one_is_caught() -> None:
    assert "fifo_handoff" in fifo_script(w1_dies=False).checks()


def test_dead_waiter_may_be_overtaken() -> None:
    assert "fifo_handoff" not in fifo_script(w1_dies=True).checks()


@pytest.mark.parametrize("stall", [0.0, 5.0])
def test_slow_handoff_is_caught_unless_a_fault_stalled_grants(stall: float) -> None:
    s = Script()
    s.hello("h", "SH", 0.0)
    s.hello("w", "SW", 0.0)
    s.granted("h", 0.5, 1)
    s.req("w", 0.6, 0.61, {"type": "acquire", "note": NOTE}, {"type": "queued", "position": 1})
    s.h.add("h", "mark", {"mark": "dead"}, 0.7)  # holder crashes; last life = 0.51
    if stall:
        s.h.add("*", "mark", {"mark": "fault", "name": "redis_down", "stall_s": stall}, 0.8)
    t = 0.9
    while t < 4.0:
        s.beat("w", t, [])
        t += 0.3
    s.push("w", 4.0, {"type": "granted", "rid": "q2", "note": NOTE, "fence": 2})
    s.final([], [("granted", "SH", 1), ("granted", "SW", 2)])
    found = s.checks()
    assert ("handoff_in_time" in found) == (stall == 0.0), found


def test_clean_close_ends_a_tenure_but_a_crash_does_not() -> None:
    for code, overlap in ((1000, False), (1006, True)):
        s = Script()
        s.hello("a", "SA", 0.0)
        s.hello("b", "SB", 0.0)
        s.granted("a", 1.0, 1)
        s.h.add("a", "mark", {"mark": "closed", "code": code}, 1.1)
        s.granted("b", 1.3, 2)
        s.final([], [("granted", "SA", 1), ("granted", "SB", 2)])
        assert ("one_valid_token" in s.checks()) == overlap, code


def test_a_dumped_history_loads_back_unchanged(tmp_path: Path) -> None:
    s = good_history()
    s.h.dump(tmp_path / "h.jsonl")
    again = History.load(tmp_path / "h.jsonl")
    assert again.sorted_events() == s.h.sorted_events() and again.final == s.h.final
    s.final([(1, "op1", "[one]")], [])
    s.h.dump(tmp_path / "bad.jsonl")
    assert check_history(History.load(tmp_path / "bad.jsonl"), TTL, DELAY)
