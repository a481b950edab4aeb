#!/bin/sh
# Runs once, when the primary's data directory is first created (the postgres image
# runs or sources every script in /docker-entrypoint-initdb.d). It creates:
#   - the app's role `collab`: LOGIN and nothing else (not a superuser, cannot create
#     roles or databases, no replication), owner of database `collab`, which no other
#     role may connect to; the superuser `postgres` is for operators only;
#   - the `replicator` role for the standby (standby-entrypoint.sh);
#   - the physical slot `standby_1`, so the primary keeps WAL the standby still needs
#     (bounded by max_slot_wal_keep_size in compose.yaml);
#   - a pg_hba rule for replication connections over the network.
# Passwords come from the mounted secret files and reach psql as variables, never as
# SQL text or environment variables.
# No `set -u` here: when sourced, it would leak into the image's entrypoint.
app_password="$(cat "${DATABASE_PASSWORD_FILE:-/run/secrets/database_password}")" || exit 1
repl_password="$(cat "${REPLICATION_PASSWORD_FILE:-/run/secrets/replication_password}")" || exit 1
if [ -z "$app_password" ] || [ -z "$repl_password" ]; then
    echo "primary-init-roles: a password file is empty" >&2
    exit 1
fi

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=app_password="$app_password" --set=repl_password="$repl_password" <<'SQL' || exit 1
CREATE ROLE collab WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'app_password';
CREATE DATABASE collab OWNER collab;
REVOKE ALL ON DATABASE collab FROM PUBLIC;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl_password';
SELECT pg_create_physical_replication_slot('standby_1');
SQL
unset app_password repl_password

echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
