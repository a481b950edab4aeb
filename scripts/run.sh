#!/usr/bin/env bash
# Install collab and run it on the embedded default (SQLite + in-process leases)
# with the web client at http://localhost:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v node >/dev/null || ! command -v python3 >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-venv nodejs npm
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Exact versions with hashes from the lock, then the checkout without its resolver.
.venv/bin/python -m pip install -q --require-hashes -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build)
exec .venv/bin/collab serve --host "${COLLAB_HOST:-127.0.0.1}" --port "${COLLAB_PORT:-8000}"
