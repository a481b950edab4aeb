"""Run real ``collab serve`` processes for tests and talk to them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import free_port, port_open

JWT_SECRET = "test-secret-not-for-production-0123456789abcdef"

FAST_LEASES = {
    "COLLAB_HEARTBEAT_MS": "300",
    "COLLAB_LEASE_TTL_MS": "1200",
    "COLLAB_LOCK_DELAY_MS": "300",
    "COLLAB_RECONCILE_INTERVAL_S": "0.4",
}

# The suites sign up, sign in and mint guests by the hundred from loopback;
# the per-address and global budgets that stop sign-up floods would refuse
# them. Tests of those budgets pass their own values.
TEST_BUDGETS = (
    {
        f"COLLAB_{kind}_{limit}": "100000"
        for kind in ("LOGIN", "REGISTER", "GUEST")
        for limit in ("PER_IP_PER_MIN", "BURST_PER_IP", "PER_MIN", "BURST")
    }
    | {"COLLAB_LOOKUP_PER_USER_PER_MIN": "100000", "COLLAB_LOOKUP_BURST_PER_USER": "100000"}
    | {
        "COLLAB_NOTE_CREATE_PER_USER_PER_MIN": "100000",
        "COLLAB_NOTE_CREATE_BURST_PER_USER": "100000",
    }
)


@dataclass
class ServerProcess:
    """One ``collab serve`` child process on a free loopback port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    name: str = "r1"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
        env.update(self.env)
        env.setdefault("COLLAB_REPLICA_ID", self.name)
        env.setdefault("COLLAB_LOG_LEVEL", "info")
        fd, path = tempfile.mkstemp(prefix=f"collab-{self.name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "collab.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            if port_open("127.0.0.1", self.port):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + "/livez", timeout=1).status_code == 200:
                        return self
            time.sleep(0.05)
        raise TimeoutError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def embedded_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "COLLAB_SQLITE_PATH": str(tmp / "collab.db"),
        "COLLAB_JWT_SECRET": JWT_SECRET,
        **FAST_LEASES,
        **TEST_BUDGETS,
        **extra,
    }


def distributed_env(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "COLLAB_DATABASE_URL": database_url,
        "COLLAB_REDIS_URL": redis_url,
        "COLLAB_REDIS_PREFIX": prefix,
        "COLLAB_JWT_SECRET": JWT_SECRET,
        **FAST_LEASES,
        **TEST_BUDGETS,
        **extra,
    }
