-- Settlement of finished requests' counters, atomically (one EVALSHA for a whole batch of
-- requests: the settle worker sends what has queued up, which keeps Redis's per-script cost off
-- each request). The same rules as crates/core/src/limits/local.rs (`Shard::settle`); keep the
-- two in step.
--
-- KEYS[i]: counter i. ARGV: six per entry: request id, op, a, b, c, d with
--   op 0: nothing (the entry's kind does not fit its counter)
--   op 1 tokens:  a = window ms, b = window, c = delta (may be negative)
--   op 2 release: (unused)
--   op 3 budget:  a = seed, b = ttl ms (0: none), c = reserved, d = actual
-- Returns one triple per entry: {1, spent before, spent after} for budgets, {0, 0, 0} otherwise,
-- as one string (see `reply`).

if redis.replicate_commands then
  redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}

for i = 1, #KEYS do
  local key = KEYS[i]
  local base = (i - 1) * 6
  local rid = ARGV[base + 1]
  local op, a, b, c, d = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
      tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  local flag, before, after = 0, 0, 0
  if op == 1 then
    -- Only the current window still decides admissions; an ended one is left to expire.
    local w = math.floor(now / a)
    if b == w then
      local stored = redis.call('HMGET', key, 'w', 'n')
      local count = 0
      if tonumber(stored[1]) == w then
        count = tonumber(stored[2]) or 0
      end
      if c > 0 or count > 0 then
        redis.call('HSET', key, 'w', w, 'n', math.max(0, count + c))
        redis.call('PEXPIRE', key, 2 * a)
      end
    end
  elseif op == 2 then
    redis.call('ZREM', key, rid)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  elseif op == 3 then
    local stored = redis.call('HMGET', key, 'spent', 'reserved')
    local spent, reserved, exists = a, 0, false
    if stored[1] then
      spent, reserved, exists = tonumber(stored[1]), tonumber(stored[2]) or 0, true
    end
    -- A budget that expired is created from its seed, as on admission, so the spend is kept.
    flag, before, after = 1, spent, spent + d
    redis.call('HSET', key, 'spent', after, 'reserved', math.max(0, reserved - c))
    if not exists and b > 0 then
      redis.call('PEXPIRE', key, b)
    end
  end
  out[#out + 1] = flag
  out[#out + 1] = before
  out[#out + 1] = after
end
return reply(out)
