#!/bin/sh
# Prepares PGDATA before PostgreSQL starts (init container of every postgres pod).
#
# A role is chosen only for an empty volume:
#   - another pod answers as primary  -> clone it with `pg_basebackup -R` (a streaming standby);
#   - no other pod exists (first pod of a fresh install) -> leave PGDATA empty, the image's
#     entrypoint runs initdb and this pod becomes the primary;
#   - other pods exist but none is primary -> wait: initdb here would start a second,
#     empty primary. An operator promotes a standby (docs/deploy-aks.md, failover drill).
# A volume with data keeps its role, except that a former primary refuses to start while
# another primary runs (the old primary after a failover): it must be rebuilt as a
# standby by deleting its volume, never start as a second writer.
#
# Environment: PGDATA, POD_NAME, STS_NAME, HEADLESS (service domain), REPLICAS,
# POSTGRES_PASSWORD_FILE, REPLICATION_PASSWORD_FILE (the mounted Secret's files).
set -eu
POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
REPLICATION_PASSWORD="$(cat "$REPLICATION_PASSWORD_FILE")"

ordinal="${POD_NAME##*-}"

# Prints the host of a peer that is a primary; fails when there is none.
find_primary() {
  i=0
  while [ "$i" -lt "$REPLICAS" ]; do
    if [ "$i" != "$ordinal" ]; then
      host="$STS_NAME-$i.$HEADLESS"
      role="$(PGPASSWORD="$POSTGRES_PASSWORD" PGCONNECT_TIMEOUT=3 psql -h "$host" -U postgres \
        -d postgres -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null || true)"
      if [ "$role" = "f" ]; then
        echo "$host"
        return 0
      fi
    fi
    i=$((i + 1))
  done
  return 1
}

# True when some other pod of the StatefulSet exists (has a DNS record; the
# headless service publishes not-ready pods too).
peer_exists() {
  i=0
  while [ "$i" -lt "$REPLICAS" ]; do
    if [ "$i" != "$ordinal" ] && getent hosts "$STS_NAME-$i.$HEADLESS" >/dev/null 2>&1; then
      return 0
    fi
    i=$((i + 1))
  done
  return 1
}

if [ -s "$PGDATA/PG_VERSION" ]; then
  if [ ! -f "$PGDATA/standby.signal" ] && primary="$(find_primary)"; then
    echo "refusing to start: this volume was a primary and $primary is primary now;" >&2
    echo "rebuild this pod as a standby (delete its PVC and pod)" >&2
    exit 1
  fi
  echo "existing data directory; starting with its current role"
  exit 0
fi

while :; do
  if primary="$(find_primary)"; then
    echo "cloning primary $primary"
    rm -rf "$PGDATA.clone"
    PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$primary" -U replicator \
      -D "$PGDATA.clone" -R -X stream -c fast
    # Swap in only a complete copy, so a crash mid-clone leaves an empty PGDATA.
    rm -rf "$PGDATA"
    mv "$PGDATA.clone" "$PGDATA"
    chmod 0700 "$PGDATA"
    exit 0
  fi
  if [ "$ordinal" = "0" ] && ! peer_exists; then
    echo "no other postgres pod exists: initializing a new primary"
    exit 0
  fi
  echo "waiting for a primary among the other postgres pods"
  sleep 5
done
