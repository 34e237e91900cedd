-- Settlement of finished requests' counters, atomically (one EVALSHA for a whole batch of
-- requests: the settle worker sends what has queued up, which keeps Redis's per-script cost off
-- each request). The same rules as crates/core/src/limits/local.rs (`Shard::settle`); keep the
-- two in step.
--
-- KEYS: the batch's distinct counters. ARGV: first two numbers per key, a and b:
--   tokens counters: a = window ms; budgets: a = seed, b = ttl ms (0: none); others unused
-- then the entries, in order, each an op, the position of its key in KEYS, and the op's values:
--   op 1 tokens:  window, delta (may be negative)
--   op 2 release: request id
--   op 3 budget:  reserved, actual
-- Returns {spent before, spent after} per budget entry, in order, as one string (see `reply`).
--
-- Entries are applied in order, as if one by one, to each counter's state in memory; every
-- counter is then read and written once, however many of the batch's requests it had.

if redis.replicate_commands then
  redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local states = {} -- key -> state in memory
local order = {}  -- the states, in the order first met, to write

local function state_of(i, op)
  local key = KEYS[i]
  local s = states[key]
  if s then return s end
  local a, b = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  s = { key = key, op = op }
  if op == 1 then
    s.w = math.floor(now / a)
    s.ms = a
    local stored = redis.call('HMGET', key, 'w', 'n')
    s.n = 0
    if tonumber(stored[1]) == s.w then
      s.n = tonumber(stored[2]) or 0
    end
  elseif op == 2 then
    s.released = {}
  else
    local stored = redis.call('HMGET', key, 'spent', 'reserved')
    s.exists = stored[1] ~= false
    if s.exists then
      s.spent, s.reserved = tonumber(stored[1]), tonumber(stored[2]) or 0
    else
      -- A budget that expired is created from its seed, as on admission, so the spend is kept.
      s.spent, s.reserved, s.ttl = a, 0, b
    end
  end
  states[key] = s
  order[#order + 1] = s
  return s
end

local arg = 2 * #KEYS + 1
while arg <= #ARGV do
  local op = tonumber(ARGV[arg])
  local s = state_of(tonumber(ARGV[arg + 1]), op)
  if op == 1 then
    local window, delta = tonumber(ARGV[arg + 2]), tonumber(ARGV[arg + 3])
    arg = arg + 4
    -- Only the current window still decides admissions; an ended one is left to expire.
    if window == s.w and (delta > 0 or s.n > 0) then
      s.n = math.max(0, s.n + delta)
      s.dirty = true
    end
  elseif op == 2 then
    s.released[#s.released + 1] = ARGV[arg + 2]
    arg = arg + 3
    s.dirty = true
  else
    local reserved, actual = tonumber(ARGV[arg + 2]), tonumber(ARGV[arg + 3])
    arg = arg + 4
    out[#out + 1] = s.spent
    s.spent, s.reserved = s.spent + actual, math.max(0, s.reserved - reserved)
    out[#out + 1] = s.spent
    s.dirty = true
  end
end

for _, s in ipairs(order) do
  if s.dirty then
    if s.op == 1 then
      redis.call('HSET', s.key, 'w', s.w, 'n', s.n)
      redis.call('PEXPIRE', s.key, 2 * s.ms)
    elseif s.op == 2 then
      redis.call('ZREM', s.key, unpack(s.released))
      redis.call('ZREMRANGEBYSCORE', s.key, '-inf', now)
    else
      redis.call('HSET', s.key, 'spent', s.spent, 'reserved', s.reserved)
      if not s.exists and s.ttl > 0 then
        redis.call('PEXPIRE', s.key, s.ttl)
      end
    end
  end
end
return reply(out)
