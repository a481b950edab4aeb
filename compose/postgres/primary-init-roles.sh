#!/bin/sh
# Runs once, when the primary's data directory is first created (the postgres image
# runs or sources every script in /docker-entrypoint-initdb.d). It prepares streaming
# replication for the standby (standby-entrypoint.sh):
#   - the `replicator` role, password from REPLICATION_PASSWORD (compose/.env);
#   - the physical slot `standby_1`, so the primary keeps WAL the standby still needs
#     (bounded by max_slot_wal_keep_size in compose.yaml);
#   - a pg_hba rule for replication connections over the network.
# No `set -u` here: when sourced, it would leak into the image's entrypoint.
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD in compose/.env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=repl_password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl_password';
SELECT pg_create_physical_replication_slot('standby_1');
SQL

echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
