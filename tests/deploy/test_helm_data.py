"""The chart's three data modes (bundled, cloudnativepg, external), and the
scripts and configs it ships for its own PostgreSQL and Redis, run against the
real PostgreSQL 15 and Redis binaries of this machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import helm_support as hs
from tests.support.services import free_port, wait_port

PROFILES = hs.ci_profiles()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[hs.Doc]]:
    return {name: hs.render(values) for name, values in PROFILES.items()}


# --- data modes --------------------------------------------------------------


def test_bundled_postgres_primary_and_streaming_standby(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["bundled"]
    sts = hs.only(docs, "StatefulSet", "-postgres")
    assert sts["spec"]["replicas"] == 2
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "managed-csi-premium"
    args = hs.pod_spec(sts)["containers"][0]["args"]
    assert "synchronous_standby_names=ANY 1 (*)" in args
    assert "synchronous_commit=remote_apply" in args
    assert "shared_buffers=256MB" in args
    scripts = hs.only(docs, "ConfigMap", "-postgres-scripts")["data"]
    assert "pg_basebackup" in scripts["postgres-prepare-data.sh"]
    assert " -R " in scripts["postgres-prepare-data.sh"]
    url = hs.env_of(hs.app_container(docs))["COLLAB_DATABASE_URL"]["value"]
    assert url.count(".svc:5432") == 2, "both pods are listed so a promoted standby is found"
    assert not hs.of_kind(docs, "Cluster")


def test_bundled_synchronous_replication_can_be_off() -> None:
    docs = hs.render({"postgres": {"synchronousReplication": {"enabled": False}}})
    args = hs.pod_spec(hs.only(docs, "StatefulSet", "-postgres"))["containers"][0]["args"]
    assert not any(a.startswith("synchronous_") for a in args)


@pytest.mark.parametrize(
    ("mode", "has_claim", "appendonly"), [("none", False, "no"), ("aof", True, "yes")]
)
def test_redis_persistence_modes(mode: str, has_claim: bool, appendonly: str) -> None:
    docs = hs.render({"redis": {"persistence": {"mode": mode}}})
    sts = hs.only(docs, "StatefulSet", "-redis")
    assert bool(sts["spec"].get("volumeClaimTemplates")) == has_claim
    conf = hs.only(docs, "ConfigMap", "-redis")["data"]["redis.conf"]
    assert f"appendonly {appendonly}" in conf
    assert "maxmemory-policy noeviction" in conf


def test_cloudnativepg_cluster_and_app_services(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["cloudnativepg"]
    cluster = hs.only(docs, "Cluster")
    name = cluster["metadata"]["name"]
    assert cluster["spec"]["instances"] == 2
    assert cluster["spec"]["postgresql"]["synchronous"] == {
        "method": "any",
        "number": 1,
        "dataDurability": "required",
    }
    assert cluster["spec"]["storage"]["storageClass"] == "managed-csi-premium"
    env = hs.env_of(hs.app_container(docs))
    assert f"@{name}-rw." in env["COLLAB_DATABASE_URL"]["value"]
    assert f"@{name}-ro." in env["COLLAB_DATABASE_READ_URL"]["value"]
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{name}-app",
        "key": "password",
    }
    assert not hs.of_kind(docs, "StatefulSet", "-postgres")
    assert hs.of_kind(docs, "StatefulSet", "-redis")


def test_external_mode_runs_no_databases(rendered: dict[str, list[hs.Doc]]) -> None:
    for profile in ("external", "external-inline"):
        docs = rendered[profile]
        assert not hs.of_kind(docs, "StatefulSet")
        assert not hs.of_kind(docs, "Cluster")
        env = hs.env_of(hs.app_container(docs))
        assert env["COLLAB_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"


# --- the scripts the chart ships -------------------------------------------------


@pytest.mark.parametrize(
    "script", sorted((hs.CHART_DIR / "files").glob("*.sh")), ids=lambda p: p.name
)
def test_shell_scripts_parse_as_posix_sh(script: Any) -> None:
    subprocess.run(["sh", "-n", str(script)], check=True)


# --- the bundled PostgreSQL and Redis, on real binaries -------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(
    cmd: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


class _Postgres:
    """One server started from a data dir with the chart's `-c` settings."""

    def __init__(
        self, data: Path, params: list[str], env: dict[str, str], hosts: Path | None = None
    ) -> None:
        self.port = free_port()
        self.data = data
        self.env = env | {"PGPORT": str(self.port), "PGHOST": "127.0.0.1"}
        self.superuser_password = Path(env["POSTGRES_PASSWORD_FILE"]).read_text()
        overrides = ["listen_addresses=127.0.0.1", f"port={self.port}", "fsync=off",
                     f"unix_socket_directories={data.parent}"]  # fmt: skip
        cmd = [str(PG_BIN / "postgres"), "-D", str(data)]
        for param in params + overrides:
            cmd += ["-c", param]
        # A standby resolves its primary by pod name.
        cmd = _with_hosts(hosts, cmd) if hosts else _as_postgres(cmd)
        # Own session: runuser does not pass signals on, so stop() signals the group.
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port("127.0.0.1", self.port, 30)
        except TimeoutError:
            self.stop()
            raise

    def sql(
        self, query: str, user: str = "postgres", password: str = "", db: str = "postgres"
    ) -> str:
        """Runs ``query`` over TCP (the superuser by default)."""
        env = self.env | {"PGPASSWORD": password or self.superuser_password}
        done = _run([str(PG_BIN / "psql"), "-U", user, "-d", db, "-tAc", query], env, 20)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def stop(self) -> None:
        """Fast shutdown; SIGKILL if it hangs."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def pg_root() -> Iterator[Path]:
    """A temp dir owned by the postgres user (pytest's tmp_path is root-only)."""
    if not (PG_BIN / "postgres").exists() or shutil.which("unshare") is None:
        pytest.skip("needs PostgreSQL 15 binaries and unshare")
    if os.geteuid() != 0:
        pytest.skip("the clone step needs a private /etc/hosts (root, mount namespace)")
    root = Path(tempfile.mkdtemp(prefix="collab-helm-pg-"))
    try:
        for sub in ("", "pg0", "pg1"):
            (root / sub).mkdir(exist_ok=True)
            shutil.chown(root / sub, "postgres", "postgres")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_scripts_build_a_synchronous_standby(pg_root: Path) -> None:
    """initdb as the image does, the chart's role script, then a standby cloned by
    the chart's prepare-data script; then the failover guard refuses the old primary."""
    docs = hs.render({})
    sts = hs.only(docs, "StatefulSet", "-postgres")
    params = [a for a in hs.pod_spec(sts)["containers"][0]["args"][1:] if a != "-c"]
    scripts = hs.only(docs, "ConfigMap", "-postgres-scripts")["data"]
    for name, text in scripts.items():
        (pg_root / name).write_text(text)
    (pg_root / "hosts").write_text("127.0.0.1 pg-0.hl pg-1.hl localhost\n")
    # The scripts read passwords from the mounted Secret's files only.
    secret_files = {}
    for name, value in (("POSTGRES", "superpw"), ("REPLICATION", "replpw"), ("APP", "apppw")):
        path = pg_root / f"{name.lower()}-password"
        path.write_text(value)
        shutil.chown(path, "postgres", "postgres")
        secret_files[f"{name}_PASSWORD_FILE"] = str(path)
    env = dict(os.environ) | secret_files | {"POSTGRES_USER": "postgres", "APP_USER": "collab",
                                             "APP_DB": "collab"}  # fmt: skip
    assert not any(k in env for k in ("REPLICATION_PASSWORD", "APP_PASSWORD"))
    primary_dir = pg_root / "pg0" / "pgdata"
    (pg_root / "pw").write_text("superpw\n")
    initdb = [str(PG_BIN / "initdb"), "-D", str(primary_dir), "-U", "postgres",
              f"--pwfile={pg_root / 'pw'}", "--no-sync"]  # fmt: skip
    assert _run(_as_postgres(initdb), env).returncode == 0
    # The official image's pg_hba: trust on the socket, passwords over TCP, nothing
    # for replication; the role script must add that line itself.
    (primary_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all all scram-sha-256\n"
    )
    primary = _Postgres(primary_dir, params, env)
    standby: _Postgres | None = None
    try:
        # Synchronous replication is on and no standby exists yet: the script must not hang.
        role_script = _run(
            _as_postgres(["sh", str(pg_root / "postgres-init-roles.sh")]),
            primary.env | {"PGDATA": str(primary_dir), "PGHOST": str(primary_dir.parent)},
            timeout=30,
        )
        assert role_script.returncode == 0, role_script.stderr
        primary.sql("SELECT pg_reload_conf()")

        clone_env = primary.env | {
            "PGDATA": str(pg_root / "pg1" / "pgdata"),
            "POD_NAME": "pg-1",
            "STS_NAME": "pg",
            "HEADLESS": "hl",
            "REPLICAS": "2",
        }
        clone = _in_private_hosts(pg_root, "postgres-prepare-data.sh", clone_env)
        assert clone.returncode == 0, clone.stdout + clone.stderr
        standby_dir = pg_root / "pg1" / "pgdata"
        assert (standby_dir / "standby.signal").exists()
        standby = _Postgres(standby_dir, params, env, hosts=pg_root / "hosts")
        # A commit returns only once the standby confirmed it (ANY 1 (*)).
        _wait_for(lambda: primary.sql("SELECT sync_state FROM pg_stat_replication") == "quorum")
        # The app's role owns its database (PostgreSQL 15 revoked CREATE on public).
        primary.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", "collab", "apppw", "collab")
        # ...and is nothing more: not a superuser, cannot create roles or databases.
        privileges = "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication"
        assert primary.sql(f"{privileges} FROM pg_roles WHERE rolname = 'collab'") == "f"
        assert standby.sql("SELECT pg_is_in_recovery()") == "t"
        assert standby.sql("SELECT count(*) FROM t", "collab", "apppw", "collab") == "1"

        # Failover drill in miniature: promote the standby, then the old primary's
        # volume must refuse to start while a primary is elsewhere.
        primary.stop()
        assert (
            _run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(standby_dir), "promote", "-w"]), env
            ).returncode
            == 0
        )
        guard_env = clone_env | {
            "PGPORT": str(standby.port),
            "PGDATA": str(primary_dir),
            "POD_NAME": "pg-0",
        }
        guard = _in_private_hosts(pg_root, "postgres-prepare-data.sh", guard_env)
        assert guard.returncode == 1 and "refusing to start" in guard.stderr
    finally:
        for server in (standby, primary):
            if server:
                server.stop()


def _in_private_hosts(
    root: Path, script: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Runs a chart script as postgres, seeing the test's /etc/hosts."""
    return _run(_with_hosts(root / "hosts", ["sh", str(root / script)]), env, timeout=60)


def _with_hosts(hosts: Path, cmd: list[str]) -> list[str]:
    """``cmd`` as postgres with pod DNS names mapped to 127.0.0.1 by ``hosts``,
    bound over /etc/hosts in a private mount namespace (the real one is untouched)."""
    inner = f'mount --bind {hosts} /etc/hosts && exec runuser -u postgres -- "$@"'
    return ["unshare", "-m", "sh", "-c", inner, "sh", *cmd]


def _wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_redis_config_and_start_command_run_on_real_redis(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    docs = hs.render({"redis": {"persistence": {"mode": "aof"}}})
    port = free_port()
    conf = hs.only(docs, "ConfigMap", "-redis")["data"]["redis.conf"]
    conf = conf.replace("dir /data", f"dir {tmp_path}").replace("port 6379", f"port {port}")
    conf = conf.replace("bind * -::*", "bind 127.0.0.1")  # loopback only on a test machine
    (tmp_path / "redis.conf").write_text(conf)
    container = hs.pod_spec(hs.only(docs, "StatefulSet", "-redis"))["containers"][0]
    command = [
        c.replace("/etc/redis/redis.conf", str(tmp_path / "redis.conf"))
        for c in container["command"]
    ]
    password_file = tmp_path / "redis-password"
    password_file.write_text("pw123")
    env = dict(os.environ) | {"REDIS_PASSWORD_FILE": str(password_file)}
    env.pop("REDISCLI_AUTH", None)
    # A missing password file stops the start instead of running without a password.
    refused = _run(command, env | {"REDIS_PASSWORD_FILE": str(tmp_path / "missing")}, 10)
    assert refused.returncode != 0
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 10)
        cli = ["redis-cli", "-p", str(port)]
        assert "NOAUTH" in _run([*cli, "ping"], env).stdout
        authed = env | {"REDISCLI_AUTH": "pw123"}
        assert _run([*cli, "ping"], authed).stdout.strip() == "PONG"
        got = _run([*cli, "config", "get", "maxmemory-policy"], authed).stdout.split()
        assert got == ["maxmemory-policy", "noeviction"]
        assert _run([*cli, "config", "get", "appendonly"], authed).stdout.split() == [
            "appendonly",
            "yes",
        ]
        # The shell exec'd redis-server: it is the process we started, so a
        # SIGTERM reaches redis itself (as on Kubernetes) and nothing is left.
        proc.terminate()
        assert proc.wait(10) == 0, "redis-server did not shut down on SIGTERM"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
