"""A very short run of ``python -m loadtests.harness routing``: three collab
replicas on PostgreSQL + Redis, each note with its viewers and writer on one
replica. Checks counts only, never timing: each replica received the edits
of its own notes and none of the others' (well under all the events
published), and no edit was lost, reordered, duplicated or left
unacknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTES, VIEWERS, RATE, DURATION = 6, 2, 5, 2  # 60 edits in the routing pass


def test_each_replica_hears_only_its_notes_and_nothing_is_lost(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "loadtests.harness", "--users", "4", "--out", str(tmp_path),
        "routing", "--notes", str(NOTES), "--viewers", str(VIEWERS), "--rate", str(RATE),
        "--duration", str(DURATION), "--counts", "1,3", "--load-duration", "1", "--procs", "2",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| replica | notes served | events received |" in done.stdout

    res = json.loads((tmp_path / "routing-distributed.json").read_text())["results"]
    assert res["problems"] == []
    routing = res["routing"]
    assert routing["replicas"] == 3
    assert routing["sent"] == routing["acked"] == NOTES * RATE * DURATION
    bus = routing["bus"]
    published = sum(b["published"] for b in bus)
    for i, b in enumerate(bus):
        # Two of the six notes are this replica's: it publishes and receives
        # their edits, and hears no edit of the other four.
        mine = routing["acked_by_replica"][i]
        assert mine == RATE * DURATION * NOTES // 3
        assert b["published_by_kind"]["edited"] == mine
        assert b["received_by_kind"]["edited"] == mine
        assert b["received"] < published / 2, (i, b, published)

    for row in (routing, *res["throughput"]):
        assert row["acked"] > 0 and row["sent"] == row["acked"], row["errors"]
        for count in ("lost", "reordered", "duplicates", "closed_by_server", "stored_mismatched"):
            assert row[count] == 0, (row["replicas"], count)
        assert row["delivered"] == row["acked"] * VIEWERS
        assert row["errors"] == {}

    one, three = res["throughput"]
    assert [one["replicas"], three["replicas"]] == [1, 3]
    # With one replica serving every note, the two idle ones hear nothing.
    assert [b["received"] for b in one["bus"][1:]] == [0, 0]
    assert one["bus"][0]["received_by_kind"]["edited"] == one["acked"]
    assert all(b["received_by_kind"].get("edited", 0) > 0 for b in three["bus"])
