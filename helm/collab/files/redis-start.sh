#!/bin/sh
# Starts redis-server in the bundled Redis's Sentinel mode (redis.mode=sentinel).
# The master is whichever node the sentinels name; when none answers (a fresh
# install, or every sentinel down) pod 0 starts as master and the others as its
# replicas. A pod that restarts after a failover therefore rejoins as a replica
# of the new master instead of starting a second, empty master. The password is
# read from the mounted Secret file and reaches redis-server on stdin, never
# its command line or environment.
#
# Environment: REDIS_PASSWORD_FILE, REDIS_NAME (the StatefulSet), REDIS_DOMAIN
# (the headless Service's domain), SENTINEL_MASTER (the master's name),
# REDIS_CONF (the static config file); optional: POD_NAME (default: the host
# name), REDIS_REPLICAS (default 3).
set -eu
password="$(cat "$REDIS_PASSWORD_FILE")"
[ -n "$password" ] || { echo "redis: empty password file" >&2; exit 1; }
me="${POD_NAME:-$(hostname)}.$REDIS_DOMAIN"

# Who the sentinels say the master is (empty if none answers).
sentinel_master() {
  i=0
  while [ "$i" -lt "${REDIS_REPLICAS:-3}" ]; do
    host="$REDIS_NAME-$i.$REDIS_DOMAIN"
    found="$(REDISCLI_AUTH="$password" timeout 3 redis-cli -h "$host" -p 26379 --raw \
      sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)"
    case "$found" in
      ''|*ERR*|*NOAUTH*|*IDONTKNOW*) ;;
      *) echo "$found"; return 0 ;;
    esac
    i=$((i + 1))
  done
}

master="$(sentinel_master)"
if [ -z "$master" ]; then
  master="$REDIS_NAME-0.$REDIS_DOMAIN"
fi
replicaof=""
if [ "$master" != "$me" ]; then
  replicaof="replicaof $master 6379"
fi
exec redis-server "$REDIS_CONF" - <<CONF
requirepass "$password"
masterauth "$password"
replica-announce-ip $me
$replicaof
CONF
