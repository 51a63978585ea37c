-- Pick the lowest-scoring backend and reserve it (fleet in-flight + 1) in one atomic step, learning the
-- request's prefix blocks on the winner. The score is coordination/scoring.py's, line for line:
--   load_i  = queue_i + in_flight_i
--   score_i = base_i + per_in_flight_i * in_flight_i - (guarded_i and 0 or per_cached_block_i * cached_i)
--   guarded_i = guard_eps set and load_i > (1 + guard_eps) * mean(load) + guard_slack
-- Ties go to the earliest line. With an admission limit, nothing is reserved when
-- sum_i(in_flight_i + outside_i) >= limit (see coordination/scoring.py).
--
-- KEYS[1] replicas ZSET, KEYS[2] inflight HASH, KEYS[3] held HASH, KEYS[4] ewma HASH,
-- KEYS[5 .. 4+n] the prefix ZSET of each line's backend (member block hash, score last use in ms);
--   present only when blocks are given.
-- ARGV[1] replica id, ARGV[2] lease ttl (ms), ARGV[3] n lines, ARGV[4] guard eps ('' for none),
-- ARGV[5] n blocks, ARGV[6] prefix entry ttl (ms), ARGV[7] guard slack, ARGV[8] admission limit ('' none),
-- then 7 values per line: backend, base, per_in_flight, per_cached_block, queue, prefix cap (entries the
-- backend may hold in the index), outside load; then the block hashes.
-- Returns {index (1-based), score (string), in_flight before, cached blocks, guarded (0/1), lease lapsed (0/1),
--          in-flight of every line's backend (after), ttft ewma of every line's backend ('' if none)};
-- index 0 (and the fleet load as the score) when the admission limit refused the request.
local replica, ttl = ARGV[1], tonumber(ARGV[2])
local n, guard = tonumber(ARGV[3]), ARGV[4]
local nblocks, prefix_ttl, slack = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local admit_limit = ARGV[8]
local now = now_ms()
reap(now)
local lapsed = renew(replica, now, ttl)

local backends, base, slope, gain, queue, caps, outside = {}, {}, {}, {}, {}, {}, {}
for i = 1, n do
  local o = 8 + (i - 1) * 7
  backends[i] = ARGV[o + 1]
  base[i] = tonumber(ARGV[o + 2])
  slope[i] = tonumber(ARGV[o + 3])
  gain[i] = tonumber(ARGV[o + 4])
  queue[i] = tonumber(ARGV[o + 5])
  caps[i] = tonumber(ARGV[o + 6])
  outside[i] = tonumber(ARGV[o + 7])
end
local blocks = {}
for k = 1, nblocks do blocks[k] = ARGV[8 + n * 7 + k] end

local counts = redis.call('HMGET', KEYS[2], unpack(backends))
local inflight, total, fleet_load = {}, 0, 0
for i = 1, n do
  inflight[i] = tonumber(counts[i]) or 0
  total = total + queue[i] + inflight[i]
  fleet_load = fleet_load + inflight[i] + outside[i]
end

local function views(out)
  for i = 1, n do out[#out + 1] = inflight[i] end
  local ttft_fields = {}
  for i = 1, n do ttft_fields[i] = backends[i] .. '|ttft' end
  local ttfts = redis.call('HMGET', KEYS[4], unpack(ttft_fields))
  for i = 1, n do out[#out + 1] = ttfts[i] or '' end
  return out
end

if admit_limit ~= '' and fleet_load >= tonumber(admit_limit) then
  return views({0, tostring(fleet_load), 0, 0, 0, lapsed})
end

local cached = {}
for i = 1, n do
  cached[i] = 0
  if nblocks > 0 then
    local scores = redis.call('ZMSCORE', KEYS[4 + i], unpack(blocks))
    local oldest = now - prefix_ttl
    for k = 1, nblocks do
      local s = scores[k]
      if s == false or tonumber(s) < oldest then break end
      cached[i] = k
    end
  end
end

local limit = nil
if guard ~= '' then limit = (1 + tonumber(guard)) * (total / n) + slack end
local best, best_score, best_guarded = 0, 0, 0
for i = 1, n do
  local guarded = 0
  local affinity = gain[i] * cached[i]
  if limit ~= nil and queue[i] + inflight[i] > limit then
    guarded = 1
    affinity = 0
  end
  local score = base[i] + slope[i] * inflight[i] - affinity
  if best == 0 or score < best_score then
    best, best_score, best_guarded = i, score, guarded
  end
end

local chosen = backends[best]
local before = inflight[best]
redis.call('HINCRBY', KEYS[2], chosen, 1)
redis.call('HINCRBY', KEYS[3], replica .. '|' .. chosen, 1)
inflight[best] = before + 1

if nblocks > 0 then
  local key = KEYS[4 + best]
  -- Leading blocks get the most recent score (a fraction of a ms apart), so trimming to the cap takes
  -- a chain's tail before its head, as vLLM's own eviction does.
  local args = {}
  for k = 1, nblocks do
    args[#args + 1] = string.format('%.6f', now + (nblocks - k + 1) / (nblocks + 1))
    args[#args + 1] = blocks[k]
  end
  redis.call('ZADD', key, unpack(args))
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - prefix_ttl))
  local size = redis.call('ZCARD', key)
  if size > caps[best] then redis.call('ZREMRANGEBYRANK', key, 0, size - caps[best] - 1) end
  redis.call('PEXPIRE', key, prefix_ttl)
end

return views({best, tostring(best_score), before, cached[best], best_guarded, lapsed})
