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

local function state_of(key, op, a, b)
  local s = states[key]
  if s then return s end
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
  elseif op == 3 then
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

for i = 1, #KEYS do
  local base = (i - 1) * 6
  local rid = ARGV[base + 1]
  local op, a, b, c, d = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
      tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  local flag, before, after = 0, 0, 0
  if op == 1 then
    local s = state_of(KEYS[i], op, a, b)
    -- Only the current window still decides admissions; an ended one is left to expire.
    if b == s.w and (c > 0 or s.n > 0) then
      s.n = math.max(0, s.n + c)
      s.dirty = true
    end
  elseif op == 2 then
    local s = state_of(KEYS[i], op, a, b)
    s.released[#s.released + 1] = rid
    s.dirty = true
  elseif op == 3 then
    local s = state_of(KEYS[i], op, a, b)
    flag, before, after = 1, s.spent, s.spent + d
    s.spent, s.reserved = after, math.max(0, s.reserved - c)
    s.dirty = true
  end
  out[#out + 1] = flag
  out[#out + 1] = before
  out[#out + 1] = after
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
