#!/bin/sh
# Init container of each Redis pod: write /conf/redis.conf and /conf/sentinel.conf for this pod.
# The master is whoever the Sentinels already agree on; on a fresh start (no Sentinel answers yet) it is
# pod 0. Hostnames, not pod IPs, are announced, so a restarted pod keeps its identity.
set -eu

password="$(cat /etc/redis-auth/password)"
domain="redis-headless.${POD_NAMESPACE}.svc.cluster.local"
self="$(hostname).${domain}"

master=""
i=0
while [ "$i" -lt "${REPLICAS}" ]; do
  answer="$(timeout 3 redis-cli -h "redis-${i}.${domain}" -p 26379 --raw \
    sentinel get-master-addr-by-name "${SENTINEL_SERVICE}" 2>/dev/null | head -n 1 || true)"
  if [ -n "${answer}" ]; then
    master="${answer}"
    break
  fi
  i=$((i + 1))
done
[ -n "${master}" ] || master="redis-0.${domain}"
echo "configure: ${self}: master is ${master}"

umask 077
cat > /conf/redis.conf <<CONF
port 6379
dir /data
requirepass "${password}"
masterauth "${password}"
replica-announce-ip ${self}
# Soft state only: no snapshots, no append-only file.
save ""
appendonly no
# Refuse writes rather than be OOM-killed (the container limit is 512Mi); the gateway then serves from its
# own view until memory frees up (coordination.prefix_ttl_s expires prefix entries).
maxmemory 384mb
maxmemory-policy noeviction
CONF
if [ "${master}" != "${self}" ]; then
  echo "replicaof ${master} 6379" >> /conf/redis.conf
fi

cat > /conf/sentinel.conf <<CONF
port 26379
dir /data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${self}
sentinel monitor ${SENTINEL_SERVICE} ${master} 6379 2
sentinel auth-pass ${SENTINEL_SERVICE} ${password}
sentinel down-after-milliseconds ${SENTINEL_SERVICE} 5000
sentinel failover-timeout ${SENTINEL_SERVICE} 60000
sentinel parallel-syncs ${SENTINEL_SERVICE} 1
CONF
