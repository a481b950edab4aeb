"""Real PostgreSQL and Redis for tests.

``database_url()`` / ``redis_url()`` return ``COLLAB_TEST_DATABASE_URL`` /
``COLLAB_TEST_REDIS_URL`` when set and reachable; otherwise a throwaway
instance is started once per test run on a free loopback port in a temp dir.
Tests that need their own server to kill, pause or promote start a
``PgCluster`` or ``RedisServer`` directly.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PG_BIN = Path(os.environ.get("COLLAB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or default_port)


def _unprivileged() -> tuple[str, int, int] | None:
    """PostgreSQL refuses to run as root: run it as ``postgres`` then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and no unprivileged user for PostgreSQL")


class PgServer:
    """One PostgreSQL server in its own data dir (primary or standby)."""

    def __init__(self, root: Path, name: str, port: int | None = None) -> None:
        self.root = root
        self.data = root / name
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / f"{name}.log"

    # Commands run as the unprivileged owner when we are root.
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = list(args)
        who = _unprivileged()
        if who:
            cmd = ["runuser", "-u", who[0], "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def init_primary(self, synchronous_standby: str | None = None) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.root}'",
            "wal_level = replica",
            "max_wal_senders = 10",
            "hot_standby = on",
            "fsync = off",
            "full_page_writes = off",
            "synchronous_commit = on",
        ]
        if synchronous_standby:
            conf.append(f"synchronous_standby_names = '{synchronous_standby}'")
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write("\n".join(conf) + "\n")
        with open(self.data / "pg_hba.conf", "a") as fh:
            fh.write("host replication all 127.0.0.1/32 trust\n")

    def init_standby(self, primary: PgServer, app_name: str = "standby1") -> None:
        self._run(
            str(PG_BIN / "pg_basebackup"), "-D", str(self.data), "-h", "127.0.0.1",
            "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"port = {self.port}\nwal_retrieve_retry_interval = 100ms\n")
        # pg_basebackup -R wrote primary_conninfo to postgresql.auto.conf, which
        # wins over postgresql.conf: override it there, so the standby carries
        # the application_name that synchronous_standby_names refers to.
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            fh.write(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                f"application_name={app_name}'\n"
            )

    def start(self) -> None:
        who = _unprivileged()
        cmd = [str(PG_BIN / "postgres"), "-D", str(self.data)]
        if who:
            cmd = ["runuser", "-u", who[0], "--", *cmd]
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, start_new_session=True)
        wait_port("127.0.0.1", self.port, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = self._run(str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                          check=False)  # fmt: skip
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres on {self.port} not ready; see {self.log}")

    def promote(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "promote", "-w")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _server_pids(self) -> list[int]:
        """The postmaster and its children. Under runuser they are not all in
        our process group, so a group signal would miss some."""
        master = self.postmaster_pid()
        if master is None:
            return []
        pids = [master]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry.name))
        return pids

    def signal(self, sig: int) -> None:
        """Signal the postmaster (SIGSTOP/SIGCONT reach the children too)."""
        targets = self._server_pids() if sig in (signal.SIGSTOP, signal.SIGCONT) else []
        master = self.postmaster_pid()
        for pid in targets or ([master] if master else []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """A crash: SIGKILL the postmaster and every child at once."""
        pids = self._server_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(10)
        self.proc = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)
        while port_open("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGINT)  # fast shutdown of the postmaster
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None


class PgCluster:
    """A throwaway primary, optionally with one streaming standby."""

    def __init__(self, standby: bool = False, synchronous: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="collab-pg-"))
        who = _unprivileged()
        if who:
            os.chown(self.root, who[1], who[2])
        self.primary = PgServer(self.root, "primary")
        self.standby: PgServer | None = PgServer(self.root, "standby") if standby else None
        self.synchronous = synchronous

    def start(self) -> PgCluster:
        self.primary.init_primary("standby1" if self.synchronous and self.standby else None)
        self.primary.start()
        if self.standby is not None:
            self.standby.init_standby(self.primary)
            self.standby.start()
        return self

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A throwaway redis-server with no persistence, killable and restartable."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="collab-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        logf = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=logf, stderr=logf, start_new_session=True,
        )  # fmt: skip
        wait_port("127.0.0.1", self.port, 15)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: dict[str, object] = {}


def _shared_stop() -> None:
    for obj in _shared.values():
        with contextlib.suppress(Exception):
            obj.stop()  # type: ignore[attr-defined]


atexit.register(_shared_stop)


def base_database_url() -> str:
    """A reachable PostgreSQL server URL (its admin database)."""
    url = os.environ.get("COLLAB_TEST_DATABASE_URL", "")
    if url and port_open(*_host_port(url, 5432)):
        return url
    if "pg" not in _shared:
        _shared["pg"] = PgCluster().start()
    cluster = _shared["pg"]
    assert isinstance(cluster, PgCluster)
    return cluster.primary.url()


def redis_url() -> str:
    url = os.environ.get("COLLAB_TEST_REDIS_URL", "")
    if url and port_open(*_host_port(url, 6379)):
        return url
    if "redis" not in _shared:
        _shared["redis"] = RedisServer().start()
    server = _shared["redis"]
    assert isinstance(server, RedisServer)
    return server.url


def with_database(url: str, db: str) -> str:
    head, _, tail = url.rpartition("/")
    query = ""
    if "?" in tail:
        query = "?" + tail.split("?", 1)[1]
    return f"{head}/{db}{query}"


async def create_database() -> str:
    """A fresh, empty database on the test server; returns its URL."""
    import asyncpg

    admin = base_database_url()
    name = "collab_t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin, name)


async def drop_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(base_database_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
