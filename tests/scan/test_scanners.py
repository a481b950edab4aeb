"""The security scanners, run on the repository as the test command's scanner stage:

- bandit on collab/ (config: [tool.bandit] and [[tool.collab-scan.bandit-accepted]]
  in pyproject.toml);
- checkov on the chart rendered under its default values and under every
  helm/collab/ci/*-values.yaml profile, each profile one multi-document file, all in
  one checkov run (config: .checkov.yaml, [[tool.collab-scan.checkov-accepted]]);
- checkov (--framework dockerfile) and hadolint (.hadolint.yaml) on compose/*Dockerfile;
- gixy-ng on gateway/ (.gixy.conf).

Each test fails on any finding that is not skipped or accepted with a reason. The
scanners live in .venv/scan (requirements-scan.lock), which scripts/test.sh installs.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import helm_support as hs

REPO = Path(__file__).resolve().parents[2]
SCAN_BIN = REPO / ".venv" / "scan" / "bin"
SCAN_CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["collab-scan"]
DOCKERFILES = sorted((REPO / "compose").glob("*Dockerfile"))
INSTALL_HINT = (
    "python3 -m venv .venv/scan && "
    ".venv/scan/bin/pip install --require-hashes -r requirements-scan.lock"
)


def tool(name: str) -> str:
    path = SCAN_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing; scripts/test.sh installs it, or: {INSTALL_HINT}")
    return str(path)


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _reasoned(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        assert len(entry.get("reason", "")) >= 30, f"accepted finding without a reason: {entry}"


# --- bandit ----------------------------------------------------------------------------


def _module_constants(tree: ast.Module) -> set[str]:
    """Names assigned at module level and spelled as constants (_NOTE, COLUMNS)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.lstrip("_").isupper()}
    return names


def sql_interpolates_only_constants(path: Path, first: int, last: int) -> bool:
    """True when every value formatted into a string on lines first..last is a
    module-level UPPER_CASE constant of the file, and nothing else builds the text
    (no `+` with a variable, no .format or % on it)."""
    tree = ast.parse(path.read_text())
    constants = _module_constants(tree)
    found = False
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if not first <= line <= last and not first <= getattr(node, "end_lineno", 0) <= last:
            continue
        if isinstance(node, ast.JoinedStr):
            found = True
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and not (
                    isinstance(part.value, ast.Name) and part.value.id in constants
                ):
                    return False
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add | ast.Mod)
            and any(_is_text(side) for side in (node.left, node.right))
        ):
            for side in (node.left, node.right):
                if not isinstance(side, ast.Constant | ast.JoinedStr) and not (
                    isinstance(side, ast.Name) and side.id in constants
                ):
                    return False
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
        ):
            return False
    return found


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _bandit_accepted(result: dict[str, Any]) -> bool:
    for entry in SCAN_CONFIG["bandit-accepted"]:
        if entry["test"] != result["test_id"]:
            continue
        if not fnmatch.fnmatch(result["filename"], entry["file"]):
            continue
        if entry.get("only-module-constants"):
            lines = result["line_range"] or [result["line_number"]]
            return sql_interpolates_only_constants(
                REPO / result["filename"], min(lines), max(lines)
            )
        return True
    return False


def test_bandit_finds_nothing_unjustified_in_the_server() -> None:
    _reasoned(SCAN_CONFIG["bandit-accepted"])
    proc = run([tool("bandit"), "-c", "pyproject.toml", "-r", "collab", "-q", "-f", "json"])
    report = json.loads(proc.stdout)
    assert not report["errors"], report["errors"]
    new = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in report["results"]
        if not _bandit_accepted(r)
    ]
    assert not new, "bandit findings (fix them, or accept with a reason in pyproject.toml):\n" + (
        "\n".join(new)
    )


def test_constant_sql_proof_rejects_interpolated_values(tmp_path: Path) -> None:
    module = tmp_path / "store.py"
    module.write_text(
        '_COLS = "id, name"\n'
        "def ok(conn):\n"
        '    return conn.fetch(f"SELECT {_COLS} FROM t WHERE id = $1", 1)\n'
        "def bad(conn, name):\n"
        "    return conn.fetch(f\"SELECT {_COLS} FROM t WHERE name = '{name}'\")\n"
        "def worse(conn, name):\n"
        '    return conn.fetch("SELECT * FROM t WHERE name = " + name)\n'
        "def formatted(conn, name):\n"
        '    return conn.fetch("SELECT * FROM t WHERE name = {}".format(name))\n'
    )
    assert sql_interpolates_only_constants(module, 3, 3)
    assert not sql_interpolates_only_constants(module, 5, 5)
    assert not sql_interpolates_only_constants(module, 7, 7)
    assert not sql_interpolates_only_constants(module, 9, 9)


# --- checkov: the chart, every profile --------------------------------------------------


def checkov_chart_report(workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """Failed checks per profile, from one checkov run over all rendered profiles."""
    files = {}
    for profile, values in hs.ci_profiles().items():
        rendered = hs.chart().render(values, name=hs.RELEASE, namespace=hs.NAMESPACE)
        docs = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
        target = workdir / f"{profile}.yaml"
        target.write_text("\n---\n".join(docs))
        files[target.name] = profile
    cmd = [tool("checkov"), "--config-file", ".checkov.yaml", "--framework", "kubernetes"]
    for name in files:
        cmd += ["-f", str(workdir / name)]
    proc = run([*cmd, "-o", "json"])
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed: dict[str, list[dict[str, Any]]] = {profile: [] for profile in files.values()}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        assert report["summary"]["resource_count"] > 0
        for check in report["results"]["failed_checks"]:
            failed[files[Path(check["file_path"]).name]].append(check)
    return failed


@pytest.fixture(scope="module")
def chart_findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    return checkov_chart_report(tmp_path_factory.mktemp("chart"))


@pytest.mark.parametrize("profile", sorted(hs.ci_profiles()))
def test_checkov_passes_the_chart_under_every_profile(
    chart_findings: dict[str, list[dict[str, Any]]], profile: str
) -> None:
    accepted = SCAN_CONFIG["checkov-accepted"]
    _reasoned(accepted)
    new = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}"
        for c in chart_findings[profile]
        if not any(a["check"] == c["check_id"] and profile in a["profiles"] for a in accepted)
    ]
    assert not new, f"checkov findings in profile {profile}:\n" + "\n".join(new)


def test_chart_skip_annotations_carry_reasons() -> None:
    """checkov.io/skip annotations in the chart are justified next to the resource."""
    for profile, values in hs.ci_profiles().items():
        for doc in hs.render(values):
            for key, value in (doc["metadata"].get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check.startswith("CKV") and len(reason) >= 30, (profile, value)


# --- Dockerfiles: checkov and hadolint --------------------------------------------------


def test_checkov_passes_the_dockerfiles() -> None:
    cmd = [tool("checkov"), "--config-file", ".checkov.yaml", "--framework", "dockerfile"]
    for dockerfile in DOCKERFILES:
        cmd += ["-f", str(dockerfile)]
    report = json.loads(run([*cmd, "-o", "json"]).stdout)
    reports = report if isinstance(report, list) else [report]
    assert sum(r["summary"]["resource_count"] for r in reports) == len(DOCKERFILES)
    failed = [
        f"{c['file_path']} {c['check_id']} {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)


def test_hadolint_passes_the_dockerfiles() -> None:
    assert len(DOCKERFILES) == 3
    proc = run([tool("hadolint"), "--config", ".hadolint.yaml", *map(str, DOCKERFILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- gixy on the gateway -------------------------------------------------------------------


def test_gixy_passes_the_gateway(tmp_path: Path) -> None:
    for conf in (REPO / "gateway").glob("*.conf"):
        shutil.copy(conf, tmp_path / conf.name)
    # nginx.conf includes mime.types from the image; any copy will do for the analysis.
    system_types = Path("/etc/nginx/mime.types")
    if system_types.exists():
        shutil.copy(system_types, tmp_path / "mime.types")
    else:
        (tmp_path / "mime.types").write_text("types { text/html html; }\n")
    proc = run(
        [tool("gixy"), "-c", str(REPO / ".gixy.conf"), "-f", "json", str(tmp_path / "nginx.conf")]
    )
    findings = json.loads(proc.stdout or "[]")
    assert not findings, yaml.safe_dump(findings)
    assert proc.returncode == 0, proc.stderr


def test_scanner_configs_justify_every_skip() -> None:
    checkov = (REPO / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(checkov) if line.strip().startswith("- CKV")]
    assert skips == [i for i in skips if checkov[i - 1].strip().startswith("#")]
    assert yaml.safe_load("\n".join(checkov))["skip-download"] is True
    hadolint = yaml.safe_load((REPO / ".hadolint.yaml").read_text())
    assert not hadolint.get("ignored"), "hadolint ignores nothing"
    gixy = (REPO / ".gixy.conf").read_text()
    for check in gixy.split("skips =", 1)[1].split(","):
        assert f"; {check.strip()}:" in gixy, f"gixy skip {check.strip()} has no reason"
