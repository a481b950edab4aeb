"""Fixtures of the WebSocket suites."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.server import ServerProcess

# Short idle hand-off timings, for the suites that wait for one.
IDLE = {"COLLAB_IDLE_HANDOFF_S": "2", "COLLAB_IDLE_WARNING_S": "1"}


@pytest.fixture
def two_servers(
    backend_env: Callable[..., dict[str, str]], spawn_server: Callable[..., ServerProcess]
) -> tuple[ServerProcess, ServerProcess]:
    """Two servers of one deployment: one process when embedded (it cannot
    share its state), two replicas over PostgreSQL and Redis otherwise."""
    env = backend_env(**IDLE)
    first = spawn_server(env, "r1")
    if "COLLAB_REDIS_URL" not in env:
        return first, first
    return first, spawn_server(env, "r2")
