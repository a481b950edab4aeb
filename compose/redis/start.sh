#!/bin/sh
# Starts the stack's Redis with the password from the mounted secret file. The
# password reaches redis-server on stdin, never its command line or environment;
# a here-document (not a pipe) lets `exec` make redis-server the container's main
# process, so it receives SIGTERM. An empty or missing file stops the start: never a
# Redis without a password.
# noeviction: memory pressure must not silently drop lease, fence or waiter keys (a
# lost token or queue place). No persistence: a restart is handled as Redis data loss
# (architecture.md rule 8); PostgreSQL's fence stays the authority for safety.
# Extra arguments are passed on to redis-server.
set -eu
password_file="${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
password="$(cat "$password_file")"
[ -n "$password" ] || { echo "redis: $password_file is empty" >&2; exit 1; }
exec redis-server - --save '' --appendonly no --maxmemory-policy noeviction "$@" <<CONF
requirepass "$password"
CONF
