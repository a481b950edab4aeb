"""A short headless locust run against a real embedded server: every user
class speaks protocol v1, the CSV records requests and pushes, and the
``quitting`` listener turns a broken threshold into a non-zero exit code."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, embedded_env

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(env=embedded_env(tmp_path_factory.mktemp("load")), name="load").start()
    yield proc
    proc.stop(5)
    if proc.log_path is not None:
        proc.log_path.unlink(missing_ok=True)


def run_locust(
    server: ServerProcess, csv_prefix: Path, seconds: int, users: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-H",
        server.url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--collab-account-prefix",
        csv_prefix.name,
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=csv_prefix.parent, capture_output=True, text=True, timeout=seconds + 60
    )


def stats_rows(csv_prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{csv_prefix}_stats.csv", newline="") as fh:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}


def test_smoke_run_reports_protocol_requests(server: ServerProcess, tmp_path: Path) -> None:
    prefix = tmp_path / "smoke"
    done = run_locust(
        server,
        prefix,
        10,
        12,
        "--collab-max-p99-ms",
        "3000",
        "ViewerUser",
        "EditorUser",
        "ContentionUser",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = stats_rows(prefix)
    total = rows[("", "Aggregated")]
    assert int(total["Request Count"]) > 50
    assert int(total["Failure Count"]) == 0, done.stderr[-3000:]
    for key in [
        ("WS", "hello"),
        ("WS", "subscribe"),
        ("WS", "acquire"),
        ("WS", "edit"),
        ("WS", "release"),
        ("PUSH", "edited"),
    ]:
        assert key in rows and int(rows[key]["Request Count"]) > 0, key
    waits = [k for k in rows if k[0] == "WAIT"]
    assert waits, "contention users should have queued for the token"
    assert ("PUSH", "edited gap") not in rows, "viewers saw a version gap"


def test_threshold_breach_fails_the_run(server: ServerProcess, tmp_path: Path) -> None:
    prefix = tmp_path / "strict"
    done = run_locust(server, prefix, 3, 2, "--collab-max-p99-ms", "0.0001", "ViewerUser")
    assert done.returncode == 1
    assert "collab threshold failed" in done.stderr
    assert int(stats_rows(prefix)[("", "Aggregated")]["Request Count"]) > 0
