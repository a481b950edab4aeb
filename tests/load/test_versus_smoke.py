"""A very short side-by-side run (``python -m loadtests.harness versus``):
two collab replicas on PostgreSQL + Redis and two Hocuspocus instances from
``loadtests/peer`` (``npm ci`` here, cached in its node_modules), one pass
each, driven by the same roles. Checks that the table is printed with a
figure on both sides of every row, and that nothing was lost, reordered,
duplicated or left unacknowledged. Nothing is asserted on timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.harness import peerstack

ROOT = Path(__file__).resolve().parents[2]
VIEWERS, RATE, DURATION = 6, 20, 1  # 20 edits per fan-out run
ROUNDS, HANDOFFS = 10, 5


@pytest.fixture(scope="module")
def peer_installed() -> None:
    missing = peerstack.node_tools()
    if missing is not None:
        pytest.skip(f"the Hocuspocus peer needs Node.js: {missing}")
    peerstack.install()


def test_one_pass_each_side_prints_ratios_and_loses_nothing(
    peer_installed: None, tmp_path: Path
) -> None:
    cmd = [
        sys.executable, "-m", "loadtests.harness", "--users", "4", "--out", str(tmp_path),
        "versus", "--passes", "1", "--viewers", str(VIEWERS), "--rate", str(RATE),
        "--duration", str(DURATION), "--rounds", str(ROUNDS), "--handoffs", str(HANDOFFS),
        "--floor", "--floor-holders", "3", "--floor-duration", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "| measure (median of 1 passes each) | unit | collab | Hocuspocus | ratio |" in out
    assert "integrity: zero lost, reordered or duplicated" in out
    assert "PostgreSQL floor on" in out

    doc = json.loads((tmp_path / "versus-distributed.json").read_text())
    res = doc["results"]
    assert res["problems"] == []
    assert [p["side"] for p in res["passes"]] == ["collab", "peer"]
    rows = {r["key"]: r for r in res["table"]}
    for key in ("same_p50", "same_p99", "same_cpu_us", "same_ack_p50", "cross_p99",
                "acquire_p50", "acquire_p99", "handoff_p50", "handoff_p99"):  # fmt: skip
        assert rows[key]["collab"] is not None and rows[key]["peer"] is not None, key
        assert rows[key]["ratio"] is not None, key
        assert f"| {rows[key]['measure']} |" in out, key
    edits = RATE * DURATION
    for side in ("collab", "peer"):
        checks = res["checks"][side]
        for run in ("same", "cross"):
            assert checks[f"{run}_edits_sent"] == checks[f"{run}_edits_acked"] == edits
            for count in ("lost", "reordered", "duplicates", "closed_by_server"):
                assert checks[f"{run}_{count}"] == 0, (side, run, count)
            assert checks[f"{run}_viewers_missing"] == 0
        assert checks["acquires"] == ROUNDS
        assert checks["handoffs"] == HANDOFFS
        assert checks["handoffs_missed"] == checks["grants_duplicated"] == 0
        # Every viewer got every edit: the sample count is viewers x edits.
        for p in res["passes"]:
            if p["side"] == side:
                for run in ("same", "cross"):
                    assert p["fanout"][run]["fanout_ms"]["count"] == VIEWERS * edits
    collab_committed = [p["fanout"][r]["acked_edits_committed"] for p in res["passes"]
                        if p["side"] == "collab" for r in ("same", "cross")]  # fmt: skip
    assert collab_committed == [True, True]

    floor = res["floor"]
    assert floor["collab"]["acked_equals_stored"] is True
    assert floor["collab"]["acked"] > 0 and floor["collab"]["errors"] == {}
    assert floor["postgres_floor"]["commits"] > 0
    assert floor["postgres_floor"]["errors"] == []
