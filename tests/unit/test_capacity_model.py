"""The capacity model's arithmetic (``scripts/capacity_model.py``) on the
reference deployment of docs/scaling.md and on edge cases; no timing."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "capacity_model.py"


@pytest.fixture(scope="module")
def cm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity_model"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_measured_costs_are_filled_in(cm: ModuleType) -> None:
    for name in ("SERVER_S_PER_EDIT", "SERVER_S_PER_PUSH", "SERVER_S_PER_EVENT_RECEIVED",
                 "SERVER_S_PER_HEARTBEAT", "EDIT_ROW_BYTES", "REDIS_S_PER_PUBLISH",
                 "REDIS_S_PER_DELIVERY", "REDIS_S_PER_HEARTBEAT"):  # fmt: skip
        assert getattr(cm, name) > 0, name
    for table in (cm.PG_US_PER_EDIT_BY_NOTE_CHARS, cm.WAL_BYTES_PER_EDIT_BY_NOTE_CHARS):
        assert [x for x, _ in table] == sorted({x for x, _ in table})  # rising, no repeats
        assert all(y > 0 for _, y in table)


def test_interpolation_between_measured_points(cm: ModuleType) -> None:
    points = ((0, 100.0), (10, 200.0), (30, 300.0))
    assert cm.interpolate(points, 0) == 100.0
    assert cm.interpolate(points, -5) == 100.0  # clamped before the first point
    assert cm.interpolate(points, 5) == 150.0
    assert cm.interpolate(points, 10) == 200.0
    assert cm.interpolate(points, 20) == 250.0
    assert cm.interpolate(points, 50) == 400.0  # the last slope, extended


def test_reference_deployment(cm: ModuleType) -> None:
    d = cm.Deployment()
    s = cm.size(d)
    assert (d.connected, d.writing_notes, d.edits_per_s) == (100_000, 10_000, 5.0)
    assert s.edits_per_s == 50_000
    assert s.viewers_per_note == 9.0  # the 90,000 sockets that do not write
    assert s.pushes_per_s == 50_000 * 2 * 9  # edits and carets, to every viewer
    assert s.heartbeats_per_s == 100_000 / cm.HEARTBEAT_S
    assert s.pods_for_sockets == math.ceil(100_000 / d.sockets_per_pod) == 20
    # Enough pods for the CPU, and no more than it takes.
    assert s.pods == max(s.pods_for_sockets, s.pods_for_cpu)
    assert s.server_cores <= s.pods * d.pod_cpu_budget
    assert s.pods == s.pods_for_sockets or s.server_cores > (s.pods - 1) * d.pod_cpu_budget
    assert s.sockets_per_pod == math.ceil(100_000 / s.pods)
    parts = (s.server_cores_commit + s.server_cores_push + s.server_cores_bus
             + s.server_cores_heartbeat)  # fmt: skip
    assert parts == pytest.approx(s.server_cores)
    assert s.server_cores_commit == pytest.approx(
        50_000 * cm.SERVER_S_PER_EDIT + 50_000 * cm.SERVER_S_PER_CARET
    )
    # Per-note routing: each event goes to the pods that follow its note.
    assert s.pods_per_note == pytest.approx(cm.pods_following(s.pods, 10))
    assert s.bus_events_per_s == 100_000
    assert s.bus_deliveries_per_s == pytest.approx(100_000 * s.pods_per_note)
    assert s.redis_shards == max(1, math.ceil(s.redis_cores / d.redis_shard_cpu_budget))
    assert s.pg_commits_per_s == s.edits_per_s
    pg_us = cm.interpolate(cm.PG_US_PER_EDIT_BY_NOTE_CHARS, d.note_chars)
    assert s.pg_cores == pytest.approx(50_000 * pg_us / 1e6)
    assert s.pg_primaries == max(1, math.ceil(s.pg_cores / d.pg_cores_per_primary))
    per_edit = cm.interpolate(cm.WAL_BYTES_PER_EDIT_BY_NOTE_CHARS, d.note_chars)
    assert s.wal_mb_per_s == pytest.approx(50_000 * per_edit / 1e6)
    bus = 100_000 * (cm.REDIS_S_PER_PUBLISH + s.pods_per_note * cm.REDIS_S_PER_DELIVERY)
    assert s.redis_bus_cores == pytest.approx(bus)
    assert s.redis_cores == pytest.approx(bus + 20_000 * cm.REDIS_S_PER_HEARTBEAT)
    # The first limit is the busiest thing that cannot scale out.
    shares = dict(s.limits)
    assert s.limits[0][1] == max(shares.values())
    assert shares["one PostgreSQL primary's CPU"] == pytest.approx(
        s.pg_cores / d.pg_cores_per_primary
    )
    assert s.wal_tb_per_day == pytest.approx(s.wal_mb_per_s * 86_400 / 1e6)
    assert s.pod_rss_mib == pytest.approx(
        cm.RSS_BASE_MIB + s.sockets_per_pod * cm.RSS_PER_SOCKET_KIB / 1024
    )


def test_idle_sockets_only_need_pods_for_the_sockets(cm: ModuleType) -> None:
    d = cm.Deployment(connected=12_000, writing_notes=1, edits_per_s=0.0, viewers_per_note=0.0)
    s = cm.size(d)
    assert s.pods == s.pods_for_sockets == math.ceil(12_000 / d.sockets_per_pod) == 3
    assert s.edits_per_s == s.pushes_per_s == s.pg_commits_per_s == s.wal_mb_per_s == 0


def test_a_busier_deployment_needs_more_of_everything(cm: ModuleType) -> None:
    base = cm.size(cm.Deployment())
    busy = cm.size(cm.Deployment(edits_per_s=10.0))
    assert busy.pods >= base.pods
    assert busy.pg_commits_per_s == 2 * base.pg_commits_per_s
    assert busy.redis_cores > base.redis_cores
    assert busy.wal_mb_per_s == pytest.approx(2 * base.wal_mb_per_s)


def test_pods_following_a_note(cm: ModuleType) -> None:
    assert cm.pods_following(1, 10) == 1.0
    assert cm.pods_following(2, 2) == pytest.approx(1.5)  # both on one pod half the time
    assert cm.pods_following(10_000, 10) == pytest.approx(10, rel=1e-3)
    assert cm.pods_following(0, 10) == 0.0


def test_cli_prints_the_table(cm: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert cm.main(["--connected", "50000", "--viewers-per-note", "4"]) == 0
    out = capsys.readouterr().out
    assert "'connected': 50000" in out and "'viewers_per_note': 4.0" in out
    assert "| **pods** |" in out and "| **Redis shards** |" in out
    assert "| **PostgreSQL commits** | **50,000 /s** |" in out
    assert "| **first limit** |" in out


def test_the_scaling_doc_shows_the_current_output(
    cm: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/scaling.md shows the reference table: rerun the script and paste
    its output there when a constant changes."""
    assert cm.main([]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    doc = (SCRIPT.parents[1] / "docs" / "scaling.md").read_text()
    assert len(table) > 20
    assert "\n".join(table) in doc
