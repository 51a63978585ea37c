-- After a lapse or an outage: make this replica's reservations in Redis equal to what it really holds.
--
-- KEYS[1] replicas ZSET, KEYS[2] inflight HASH, KEYS[3] held HASH.
-- ARGV[1] replica id, ARGV[2] lease ttl (ms), then pairs: backend, open requests (every backend the
-- replica knows, zeros included, so stale counts are cleared).
-- Returns the number of backends adjusted.
local replica = ARGV[1]
local now = now_ms()
reap(now)
renew(replica, now, tonumber(ARGV[2]))
local adjusted = 0
for i = 3, #ARGV, 2 do
  local backend, want = ARGV[i], tonumber(ARGV[i + 1])
  local field = replica .. '|' .. backend
  local have = tonumber(redis.call('HGET', KEYS[3], field)) or 0
  if have ~= want then
    adjusted = adjusted + 1
    local left = redis.call('HINCRBY', KEYS[2], backend, want - have)
    if left <= 0 then redis.call('HDEL', KEYS[2], backend) end
    if want == 0 then redis.call('HDEL', KEYS[3], field) else redis.call('HSET', KEYS[3], field, want) end
  end
end
return adjusted
