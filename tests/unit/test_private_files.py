"""Files the server creates in embedded mode (the SQLite database with its
WAL, its directory, the generated JWT key) are readable by their owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_files_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "collab-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env["COLLAB_SQLITE_PATH"] = str(data / "collab.db")
    # A permissive umask, as a shell usually has: the server must not inherit it.
    done = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.umask(0o022); from collab.cli import main; "
         "sys.exit(main(['user', 'add', 'alice']))"],
        input="a-long-password\n", capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _mode(data) == 0o700, oct(_mode(data))
    created = [p for p in data.iterdir() if p.is_file()]
    assert {"collab.db", "jwt-secret"} <= {p.name for p in created}
    for path in created:
        assert _mode(path) & 0o077 == 0, f"{path.name} is {oct(_mode(path))}"
