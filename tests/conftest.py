"""Fixtures shared by the end-to-end suites: real server processes on the
embedded backends and on real PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, distributed_env, embedded_env
from tests.support.services import create_database, drop_database, redis_url

ADMIN_NAME = "root-admin"
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module."""
    url = asyncio.run(create_database())
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="module")
def redis_server_url() -> str:
    return redis_url()


@pytest.fixture(scope="module")
def backend_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., dict[str, str]]:
    """Env builder for the module's backend (``embedded`` or ``distributed``);
    modules parametrise it with ``pytestmark``/indirect params, default embedded."""
    kind = getattr(request, "param", "embedded")
    admin = {
        "COLLAB_BOOTSTRAP_ADMIN_USERNAME": ADMIN_NAME,
        "COLLAB_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    if kind == "embedded":
        tmp = tmp_path_factory.mktemp("embedded")
        return lambda **extra: embedded_env(tmp, **admin, **extra)
    database = request.getfixturevalue("pg_database")
    prefix = "t" + uuid.uuid4().hex[:8]
    url = request.getfixturevalue("redis_server_url")
    return lambda **extra: distributed_env(database, url, prefix, **admin, **extra)


@pytest.fixture
def spawn_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start ``collab serve`` processes; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str], name: str = "r1") -> ServerProcess:
        server = ServerProcess(env=env, name=name).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(5)


@pytest.fixture(scope="module")
def module_server(backend_env: Callable[..., dict[str, str]]) -> Iterator[ServerProcess]:
    server = ServerProcess(env=backend_env(), name="m1").start()
    yield server
    server.stop(5)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "multi" in path.parts:
            item.add_marker(pytest.mark.slow)
