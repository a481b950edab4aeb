"""The Python lock files agree with pyproject.toml, and every install path uses them.

requirements.lock (runtime), requirements-test.lock (runtime + the test extra) and
requirements-scan.lock (the scanners' dependency group) pin every package with its
hashes. When a dependency is added, removed or re-ranged in pyproject.toml without
regenerating the locks, these tests fail and print the command that fixes it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# Regenerates all three; the test lock first, so the runtime lock picks the same versions.
LOCK_COMMAND = (
    ".venv/bin/uv pip compile -q --universal --generate-hashes pyproject.toml --extra test"
    " -o requirements-test.lock"
    " && .venv/bin/uv pip compile -q --universal --generate-hashes pyproject.toml"
    " -c requirements-test.lock -o requirements.lock"
    " && .venv/bin/uv pip compile -q --universal --generate-hashes"
    " --group pyproject.toml:scan -o requirements-scan.lock"
)


@dataclass
class Pin:
    name: str
    version: Version
    marker: str
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def parse_lock(path: Path) -> dict[str, list[Pin]]:
    """Pins by canonical name (a universal lock may pin a name twice, under markers)."""
    pins: dict[str, list[Pin]] = {}
    current: Pin | None = None
    in_via = False
    for line in path.read_text().splitlines():
        entry = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if entry:
            name = canonicalize_name(entry.group(1))
            current = Pin(name, Version(entry.group(2)), (entry.group(3) or "").strip())
            pins.setdefault(name, []).append(current)
            in_via = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash=sha256:"):
            current.hashes += 1
        elif stripped.startswith("# via "):
            current.via.append(stripped.removeprefix("# via ").strip())
            in_via = False
        elif stripped == "# via":
            in_via = True
        elif in_via and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#   ").strip())
        elif stripped.startswith("-") or re.match(r"^[a-z]", stripped):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return pins


def direct_requirements(lock: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    if lock == "requirements-scan.lock":
        return [Requirement(r) for r in PYPROJECT["dependency-groups"]["scan"]]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if lock == "requirements-test.lock":
        reqs += [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return reqs


def direct_source(lock: str) -> str:
    return "collab (pyproject.toml:scan)" if "scan" in lock else "collab (pyproject.toml)"


LOCKS = ("requirements.lock", "requirements-test.lock", "requirements-scan.lock")


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_pins_every_pyproject_requirement_within_its_range(lock: str) -> None:
    pins = parse_lock(REPO / lock)
    problems = []
    for req in direct_requirements(lock):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} is not in {lock}")
            continue
        for pin in pins[name]:
            if not req.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{lock} pins {name}=={pin.version}, pyproject wants {req}")
    assert not problems, "\n".join(problems) + f"\nregenerate the locks:\n  {LOCK_COMMAND}"


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_holds_no_direct_requirement_pyproject_dropped(lock: str) -> None:
    pins = parse_lock(REPO / lock)
    source = direct_source(lock)
    locked_direct = {name for name, found in pins.items() for p in found if source in p.via}
    wanted = {canonicalize_name(r.name) for r in direct_requirements(lock)}
    assert locked_direct == wanted, (
        f"{lock}: direct requirements differ from pyproject.toml "
        f"(only in the lock: {sorted(locked_direct - wanted)}, "
        f"only in pyproject: {sorted(wanted - locked_direct)})\n"
        f"regenerate the locks:\n  {LOCK_COMMAND}"
    )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_hashed(lock: str) -> None:
    pins = parse_lock(REPO / lock)
    assert len(pins) >= 5
    unhashed = [p.name for found in pins.values() for p in found if p.hashes == 0]
    assert not unhashed, f"{lock}: pins without hashes: {unhashed}"


def test_runtime_lock_installs_what_the_tests_ran_with() -> None:
    """The image and run.sh get exactly the versions the test suite was run against."""
    runtime = parse_lock(REPO / "requirements.lock")
    test = parse_lock(REPO / "requirements-test.lock")
    differ = {
        name: ([str(p.version) for p in pins], [str(p.version) for p in test.get(name, [])])
        for name, pins in runtime.items()
        if {p.version for p in pins} != {p.version for p in test.get(name, [])}
    }
    assert not differ, f"runtime and test locks disagree: {differ}\n  {LOCK_COMMAND}"


def test_every_install_path_uses_a_lock() -> None:
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    run_sh = (REPO / "scripts" / "run.sh").read_text()
    dockerfile = (REPO / "compose" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements-test.lock" in test_sh
    assert "--require-hashes -r requirements-scan.lock" in test_sh
    assert "--require-hashes -r requirements.lock" in run_sh
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    for script in (test_sh, run_sh, dockerfile):
        # The project itself is installed without resolving: nothing unlocked sneaks in.
        for line in re.findall(r"pip (?:install|wheel)[^\n]*", script.replace("\\\n", " ")):
            assert any(
                flag in line for flag in ("--require-hashes", "--no-deps", "--upgrade pip")
            ), line
