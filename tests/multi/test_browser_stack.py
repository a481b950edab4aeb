"""The React client in system Chromium through the real gateway over two
replicas: Playwright's `e2e/stack.spec.ts` against this stack."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import gateway_with_client
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import create_database, drop_database, redis_url

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


@pytest.fixture
def stack() -> Iterator[tuple[list[ServerProcess], Path]]:
    db = asyncio.run(create_database())
    env = distributed_env(db, redis_url(), "b" + uuid.uuid4().hex[:8])
    servers = [ServerProcess(env=env, name=f"bs{i}").start() for i in (1, 2)]
    prefix = Path(tempfile.mkdtemp(prefix="collab-gw-browser-"))
    prefix.chmod(0o755)  # nginx workers may run as `nobody`
    yield servers, prefix
    for server in servers:
        server.stop(5)
    shutil.rmtree(prefix, ignore_errors=True)
    asyncio.run(drop_database(db))


@pytest.mark.skipif(
    not (FRONTEND / "dist" / "index.html").is_file() or not (FRONTEND / "node_modules").is_dir(),
    reason="the client is built by the test command (npm ci && npm run build) before pytest",
)
async def test_browser_through_gateway(stack: tuple[list[ServerProcess], Path]) -> None:
    servers, prefix = stack
    ports = [s.port for s in servers]
    async with gateway_with_client(prefix / "nginx", ports, FRONTEND / "dist") as gw:
        run = await asyncio.to_thread(
            subprocess.run,
            ["npx", "playwright", "test", "e2e/stack.spec.ts"],
            cwd=FRONTEND,
            env={**os.environ, "COLLAB_E2E_STACK_URL": f"http://{gw}"},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout, run.stdout[-2000:]
