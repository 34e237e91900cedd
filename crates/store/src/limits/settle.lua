-- Settlement of finished requests' counters, atomically (one EVALSHA for a whole batch of
-- requests: the settle worker sends what has queued up, which keeps Redis's per-script cost off
-- each request). The same rules as crates/core/src/limits/local.rs (`Shard::settle`); keep the
-- two in step.
--
-- KEYS: the batch's distinct counters. ARGV: first two numbers per key, a and b:
--   tokens counters: a = window ms; leases: a = lease ms; budgets: a = seed, b = expiry (ms
--   since the epoch, 0: none); others unused
-- then the entries, in order, each an op, the position of its key in KEYS, and the op's values:
--   op 1 tokens:  window, delta (may be negative)
--   op 2 release: bucket, count (the leases of that many requests, taken in that bucket)
--   op 3 budget:  reserved, actual
-- Returns {spent before, spent after} per budget entry, in order, as one string (see `reply` in
-- shared.lua).
--
-- Entries are applied in order, as if one by one, to each counter's state in memory; every
-- counter is then read and written once, however many of the batch's requests it had. Like
-- acquire.lua, the per-entry loop is kept lean: Redis pays for every Lua operation in it.

local out, o = {}, 0
local at = {}     -- position in KEYS -> state (positions of one key share it)
local states = {} -- key -> state in memory
local order = {}  -- the states, in the order first met, to write

local function state_of(i, op)
  local key = KEYS[i]
  local s = states[key]
  if s then
    at[i] = s
    return s
  end
  local a, b = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  s = { key = key, op = op }
  if op == 1 then
    s.ms = a
    s.w, s.n, s.fresh = read_window(key, a)
  elseif op == 2 then
    s.ms = a
  else
    local stored = call('HMGET', key, 'spent', 'reserved')
    s.exists = stored[1] ~= false
    if s.exists then
      s.spent, s.reserved = tonumber(stored[1]), tonumber(stored[2]) or 0
    else
      -- A budget that expired is created from its seed, as on admission, so the spend is kept.
      s.spent, s.reserved, s.expiry = a, 0, ARGV[2 * i]
    end
  end
  states[key] = s
  at[i] = s
  order[#order + 1] = s
  return s
end

local arg, last = 2 * #KEYS + 1, #ARGV
while arg <= last do
  local op, i = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local s = at[i] or state_of(i, op)
  if op == 1 then
    arg = arg + 4
    -- Only the current window still decides admissions; an ended one is left to expire.
    if tonumber(ARGV[arg - 2]) == s.w then
      local n = s.n + tonumber(ARGV[arg - 1])
      if n < 0 then n = 0 end
      if n ~= s.n then
        s.n = n
        s.dirty = true
      end
    end
  elseif op == 2 then
    -- Expired leases are not counted any more: nothing to release. A count that would fall to
    -- zero or below (a retried settlement releasing twice) is removed: it stops at zero.
    local bucket = ARGV[arg + 2]
    if lease_expiry(tonumber(bucket), s.ms) > now then
      if call('HINCRBY', s.key, bucket, -tonumber(ARGV[arg + 3])) <= 0 then
        call('HDEL', s.key, bucket)
      end
    end
    arg = arg + 4
  else
    local spent, reserved = s.spent, s.reserved - tonumber(ARGV[arg + 2])
    out[o + 1] = spent
    spent = spent + tonumber(ARGV[arg + 3])
    out[o + 2] = spent
    o = o + 2
    if reserved < 0 then reserved = 0 end
    s.spent, s.reserved = spent, reserved
    arg = arg + 4
    s.dirty = true
  end
end

for _, s in ipairs(order) do
  if s.dirty then
    if s.op == 1 then
      write_window(s.key, s.w, s.n, s.fresh, s.ms)
    else
      call('HSET', s.key, 'spent', s.spent, 'reserved', s.reserved)
      if not s.exists and s.expiry ~= '0' then
        call('PEXPIREAT', s.key, s.expiry)
      end
    end
  end
end
return reply(out)
