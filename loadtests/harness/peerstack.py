"""The Hocuspocus peer's processes: ``npm ci`` of ``loadtests/peer`` (the
pinned versions in its ``package-lock.json``, installed once into
``loadtests/peer/node_modules``), then N ``node server.mjs`` instances sharing
one Redis under a unique prefix, as a ``Stack`` of kind ``peer``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.harness.stack import Stack, raise_fd_limit
from tests.support.services import free_port, port_open, redis_url

PEER_DIR = Path(__file__).resolve().parents[1] / "peer"
INSTALLED_MARK = PEER_DIR / "node_modules" / ".package-lock.json"


def node_tools() -> str | None:
    """Why the peer cannot run here, or None when node and npm are on PATH."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH" if missing else None


def install(timeout: float = 300.0) -> None:
    """``npm ci`` unless node_modules already matches the lock file."""
    lock = PEER_DIR / "package-lock.json"
    if INSTALLED_MARK.exists() and INSTALLED_MARK.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEER_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci in {PEER_DIR} failed:\n{done.stderr[-3000:]}")


@dataclass
class PeerProcess:
    """One ``node server.mjs`` on a free loopback port (same surface as
    ``tests.support.server.ServerProcess`` for ``Stack``)."""

    name: str
    redis: str
    prefix: str
    lease_ttl_ms: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PeerProcess:
        fd, path = tempfile.mkstemp(prefix=f"peer-{self.name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                "node",
                str(PEER_DIR / "server.mjs"),
                "--port",
                str(self.port),
                "--redis",
                self.redis,
                "--prefix",
                self.prefix,
                "--name",
                self.name,
                "--lease-ttl-ms",
                str(self.lease_ttl_ms),
            ],
            cwd=PEER_DIR,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"peer exited early:\n{self.log()}")
            if port_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"peer did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return None


def start_peer_stack(instances: int, lease_ttl_ms: int = 15000) -> Stack:
    """``instances`` Hocuspocus processes on one Redis (its extension relays
    document updates between them; the token emulation shares the keys)."""
    raise_fd_limit()
    install()
    prefix = "peer" + uuid.uuid4().hex[:8]
    stack = Stack(
        kind="peer",
        urls=[],
        env={"COLLAB_LEASE_TTL_MS": str(lease_ttl_ms), "COLLAB_LOCK_DELAY_MS": "0"},
    )
    try:
        for i in range(instances):
            server = PeerProcess(
                name=f"peer{i + 1}", redis=redis_url(), prefix=prefix, lease_ttl_ms=lease_ttl_ms
            ).start()
            stack.servers.append(server)
            stack.urls.append(server.url)
            assert server.proc is not None
            stack.server_pids.append(server.proc.pid)
    except BaseException:
        stack.close(failed=True)
        raise
    return stack
