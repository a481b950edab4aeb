"""The ``collab`` command line: settings errors name the key, passwords come
from stdin (never argv), migrations are idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A key with the entropy the settings demand (a repeated character is refused).
TEST_KEY = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"


def run(
    args: list[str], tmp: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    base.update({"COLLAB_SQLITE_PATH": str(tmp / "db" / "c.db"), **env})
    return subprocess.run(
        [sys.executable, "-m", "collab.cli", *args],
        input=stdin, capture_output=True, text=True, env=base, timeout=60,
    )  # fmt: skip


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = run(["check-config"], tmp_path, COLLAB_LEASE_TTL_MS="10")
    assert bad.returncode == 2 and "COLLAB_LEASE_TTL_MS" in bad.stderr
    ok = run(["check-config"], tmp_path, COLLAB_JWT_SECRET=TEST_KEY)
    assert ok.returncode == 0 and '"jwt_secret": "***"' in ok.stdout


def test_user_add_reads_password_from_stdin(tmp_path: Path) -> None:
    made = run(["user", "add", "alice", "--role", "admin"], tmp_path, stdin="a-long-password\n")
    assert made.returncode == 0, made.stderr
    assert "created admin alice" in made.stdout and "a-long-password" not in made.stdout
    again = run(["user", "add", "alice"], tmp_path, stdin="a-long-password\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = run(["user", "add", "bob"], tmp_path, stdin="short\n")
    assert short.returncode == 2


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    first = run(["migrate"], tmp_path)
    assert first.returncode == 0 and "001" in first.stdout
    second = run(["migrate"], tmp_path)
    assert second.returncode == 0 and "up to date" in second.stdout


def test_serving_processes_collect_the_young_generation_less_often() -> None:
    """Each serving process (workers too: they load their own config) sets
    the threshold; 0 leaves Python's default alone."""
    import gc

    from collab.cli import CollabConfig, tune_gc
    from collab.settings import Settings

    before = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        config = CollabConfig(
            "collab.app:create_app", factory=True,
            gc_young_threshold=Settings(jwt_secret="x" * 40).gc_young_threshold,
        )  # fmt: skip
        config.load()
        assert gc.get_threshold() == (50_000, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_the_gc_threshold_is_bounded() -> None:
    import pytest

    from collab.settings import Settings, SettingsError

    secret = "9f6c1a0b7e2d4c58a3f1e6b9d0c7a2e45b8f3d1c6e9a0b7f"
    Settings(jwt_secret=secret, gc_young_threshold=0).validate()
    with pytest.raises(SettingsError, match="GC_YOUNG_THRESHOLD"):
        Settings(jwt_secret=secret, gc_young_threshold=10).validate()
