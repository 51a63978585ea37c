-- Shared by the other scripts (prepended when loaded): drop replicas whose lease ran out, and take
-- their reservations out of the fleet totals. Time is the Redis server's clock, never a replica's.
--
-- Uses KEYS[1] replicas ZSET (member replica id, score lease expiry in ms), KEYS[2] inflight HASH
-- (backend -> fleet-wide open requests), KEYS[3] held HASH ("replica|backend" -> open requests).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function reap(now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  if #dead == 0 then return 0 end
  local gone = {}
  for _, replica in ipairs(dead) do gone[replica] = true end
  local held = redis.call('HGETALL', KEYS[3])
  for i = 1, #held, 2 do
    local field = held[i]
    local sep = string.find(field, '|', 1, true)
    if sep and gone[string.sub(field, 1, sep - 1)] then
      local backend = string.sub(field, sep + 1)
      local left = redis.call('HINCRBY', KEYS[2], backend, -tonumber(held[i + 1]))
      if left <= 0 then redis.call('HDEL', KEYS[2], backend) end
      redis.call('HDEL', KEYS[3], field)
    end
  end
  redis.call('ZREM', KEYS[1], unpack(dead))
  return #dead
end

-- Extend this replica's lease; 1 if it had lapsed (its reservations were reaped: it must restore them).
local function renew(replica, now, ttl_ms)
  local expiry = redis.call('ZSCORE', KEYS[1], replica)
  redis.call('ZADD', KEYS[1], now + ttl_ms, replica)
  if expiry == false then return 1 end
  return 0
end
