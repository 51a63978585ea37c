-- A replica leaving cleanly: give back everything it holds and drop its lease.
--
-- KEYS[1] replicas ZSET, KEYS[2] inflight HASH, KEYS[3] held HASH. ARGV[1] replica id.
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return reap(now_ms())
