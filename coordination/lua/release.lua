-- Give a reservation back and record what was observed, in one step.
--
-- KEYS[1] replicas ZSET, KEYS[2] inflight HASH, KEYS[3] held HASH, KEYS[4] ewma HASH.
-- ARGV[1] replica id, ARGV[2] lease ttl (ms), ARGV[3] backend, ARGV[4] ttft seconds ('' if none),
-- ARGV[5] time per output token seconds ('' if none), ARGV[6] ewma alpha.
-- A reservation whose lease was reaped meanwhile is not subtracted twice: only what "replica|backend"
-- still holds is given back.
-- Returns {lease lapsed (0/1), backend in-flight after, ttft ewma ('' if none), tpot ewma ('' if none)}.
local replica, ttl, backend = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local alpha = tonumber(ARGV[6])
local now = now_ms()
reap(now)
local lapsed = renew(replica, now, ttl)

local field = replica .. '|' .. backend
local mine = tonumber(redis.call('HGET', KEYS[3], field)) or 0
if mine > 0 then
  if mine == 1 then redis.call('HDEL', KEYS[3], field) else redis.call('HINCRBY', KEYS[3], field, -1) end
  local left = redis.call('HINCRBY', KEYS[2], backend, -1)
  if left <= 0 then redis.call('HDEL', KEYS[2], backend) end
end

local function observe(name, value)
  local key = backend .. '|' .. name
  if value == '' then return redis.call('HGET', KEYS[4], key) or '' end
  local sample = tonumber(value)
  local old = tonumber(redis.call('HGET', KEYS[4], key))
  local new = sample
  if old ~= nil then new = alpha * sample + (1 - alpha) * old end
  local text = string.format('%.17g', new)
  redis.call('HSET', KEYS[4], key, text)
  return text
end

local ttft = observe('ttft', ARGV[4])
local tpot = observe('tpot', ARGV[5])
return {lapsed, tonumber(redis.call('HGET', KEYS[2], backend)) or 0, ttft, tpot}
