#!/usr/bin/env bash
# Install everything the tests need, then run every suite and linter.
# Works on a fresh Debian machine (apt, pip, npm); uses COLLAB_TEST_DATABASE_URL /
# COLLAB_TEST_REDIS_URL when given and reachable, else the tests start throwaway
# PostgreSQL/Redis instances themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$ROOT/.venv/bin:$PATH"

log() { printf '\n=== %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- system packages -----------------------------------------------------------
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
command -v python3 >/dev/null || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${COLLAB_TEST_PG_BIN:-}" ]; then
  COLLAB_TEST_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export COLLAB_TEST_PG_BIN
fi

# --- python ----------------------------------------------------------------------
log "python environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Exact versions with hashes from the lock (docs/security.md, "Python lock files"),
# then the checkout itself without letting pip resolve anything else.
.venv/bin/python -m pip install -q --require-hashes -r requirements-test.lock
.venv/bin/python -m pip install -q --no-deps -e .
# The scanners, pinned in their own lock and environment (checkov's pins clash with
# pytest's); tests/scan runs them.
[ -x .venv/scan/bin/python ] || python3 -m venv .venv/scan
.venv/scan/bin/python -m pip install -q --upgrade pip
.venv/scan/bin/python -m pip install -q --require-hashes -r requirements-scan.lock

# --- services: reuse local ones only if they really answer -------------------------
if [ -z "${COLLAB_TEST_DATABASE_URL:-}" ]; then
  if .venv/bin/python -c "import asyncio,asyncpg;asyncio.run(asyncpg.connect('postgresql://postgres@127.0.0.1:5432/postgres',timeout=2))" 2>/dev/null; then
    export COLLAB_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
  fi
fi
if [ -z "${COLLAB_TEST_REDIS_URL:-}" ]; then
  if .venv/bin/python -c "import redis;redis.Redis(host='127.0.0.1',port=6379,socket_timeout=2).ping()" 2>/dev/null; then
    export COLLAB_TEST_REDIS_URL=redis://127.0.0.1:6379/0
  fi
fi
echo "database: ${COLLAB_TEST_DATABASE_URL:-throwaway}  redis: ${COLLAB_TEST_REDIS_URL:-throwaway}"

# --- frontend build first: the browser and gateway tests serve it ----------------
if [ -f frontend/package.json ]; then
  log "frontend: install, lint, typecheck, unit tests, build"
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run lint && npm run typecheck \
     && npm test && npm run build)
fi

# --- python linters ------------------------------------------------------------------
log "ruff + mypy"
ruff check .
ruff format --check .
mypy collab

# --- scanners: bandit, checkov, hadolint, gixy (tests/scan) ------------------------------
log "scanners"
pytest -q -p no:cacheprovider tests/scan

# --- python suites -------------------------------------------------------------------
log "pytest"
pytest -q -m "not soak" -p no:cacheprovider --ignore=tests/scan

if [ -f frontend/package.json ]; then
  log "frontend: browser tests (Playwright + system Chromium)"
  (cd frontend && npm run e2e)
fi

# The deterministic simulation of the whole cluster under seeded faults
# (tests/sim): every seed's run is checked by the invariant checker; a failure
# prints its seed and the command that replays it exactly.
log "simulation: ${COLLAB_SIM_SEEDS:=2000} seeds"
PYTHONHASHSEED=0 python -m tests.sim --seeds "$COLLAB_SIM_SEEDS" --jobs 2

if grep -rqs "pytest.mark.soak" tests; then
  log "soak (randomized fault soak, seed printed)"
  pytest -q -m soak -p no:cacheprovider
fi
log "all suites passed"
