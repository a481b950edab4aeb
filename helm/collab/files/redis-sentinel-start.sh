#!/bin/sh
# Starts the sentinel next to each bundled Redis (redis.mode=sentinel). Its
# config is written to a writable volume (sentinels rewrite it as they learn the
# topology); it monitors the master the other sentinels name, or pod 0 on a
# fresh install. Sentinels and the master share the Redis password; hostnames,
# not pod IPs, are announced so a rescheduled pod keeps its identity.
#
# Environment: REDIS_PASSWORD_FILE, REDIS_NAME, REDIS_DOMAIN, SENTINEL_MASTER,
# SENTINEL_QUORUM, SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS,
# SENTINEL_DIR (writable); optional: POD_NAME (default: the host name),
# REDIS_REPLICAS (default 3), SENTINEL_BIND (default: every address).
set -eu
password="$(cat "$REDIS_PASSWORD_FILE")"
[ -n "$password" ] || { echo "sentinel: empty password file" >&2; exit 1; }
me="${POD_NAME:-$(hostname)}.$REDIS_DOMAIN"

master=""
i=0
while [ "$i" -lt "${REDIS_REPLICAS:-3}" ]; do
  host="$REDIS_NAME-$i.$REDIS_DOMAIN"
  if [ "$host" != "$me" ]; then
    found="$(REDISCLI_AUTH="$password" timeout 3 redis-cli -h "$host" -p 26379 --raw \
      sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)"
    case "$found" in
      ''|*ERR*|*NOAUTH*|*IDONTKNOW*) ;;
      *) master="$found"; break ;;
    esac
  fi
  i=$((i + 1))
done
[ -n "$master" ] || master="$REDIS_NAME-0.$REDIS_DOMAIN"

umask 077
conf="$SENTINEL_DIR/sentinel.conf"
cat > "$conf" <<CONF
port 26379
bind ${SENTINEL_BIND:-* -::*}
dir $SENTINEL_DIR
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
requirepass "$password"
sentinel sentinel-pass "$password"
sentinel monitor $SENTINEL_MASTER $master 6379 $SENTINEL_QUORUM
sentinel auth-pass $SENTINEL_MASTER "$password"
sentinel down-after-milliseconds $SENTINEL_MASTER $SENTINEL_DOWN_AFTER_MS
sentinel failover-timeout $SENTINEL_MASTER $SENTINEL_FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
exec redis-server "$conf" --sentinel
