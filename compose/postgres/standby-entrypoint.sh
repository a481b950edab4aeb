#!/bin/sh
# Entrypoint of the streaming standby. On first start (empty data directory) it clones
# the primary with `pg_basebackup -R`, which writes standby.signal and primary_conninfo;
# afterwards it just starts PostgreSQL as a hot standby streaming from slot standby_1.
# Runs as the `postgres` user (compose.yaml), because PostgreSQL refuses to run as root.
# REPLICATION_PASSWORD is a shell variable only: PostgreSQL does not inherit it.
set -eu
: "${PGDATA:?PGDATA must be set}"
PRIMARY_HOST="${PRIMARY_HOST:-postgres-primary}"
# The password comes from the mounted secret file, not the environment.
REPLICATION_PASSWORD="$(cat "${REPLICATION_PASSWORD_FILE:-/run/secrets/replication_password}")"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "standby: cloning $PRIMARY_HOST with pg_basebackup -R"
    PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
        --host="$PRIMARY_HOST" --port=5432 --username=replicator \
        --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream \
        --slot=standby_1 --checkpoint=fast
fi
# PostgreSQL refuses a data directory that others can read.
chmod 0700 "$PGDATA"

# Extra arguments (compose `command:`) are passed on to postgres.
exec postgres -c hot_standby=on -c hot_standby_feedback=on "$@"
