-- Keep a replica's lease alive, reap dead replicas, and report the fleet's view.
--
-- KEYS[1] replicas ZSET, KEYS[2] inflight HASH, KEYS[3] held HASH, KEYS[4] ewma HASH.
-- ARGV[1] replica id, ARGV[2] lease ttl (ms).
-- Returns {lease lapsed (0/1), live replica ids (array), inflight HGETALL (array), ewma HGETALL (array)}.
local now = now_ms()
reap(now)
local lapsed = renew(ARGV[1], now, tonumber(ARGV[2]))
return {
  lapsed,
  redis.call('ZRANGE', KEYS[1], 0, -1),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[4]),
}
