-- Admission over every counter of one request, all or nothing, atomically (one EVALSHA).
-- The same rules as crates/core/src/limits/local/counter.rs; keep the two in step.
--
-- KEYS[i]: counter i (its kind is part of the key).
-- ARGV[1] request id, ARGV[2] demanded tokens, ARGV[3] demanded cost (micro-dollars), then five
-- per counter: kind, a, b, c, d with
--   kind 1 requests:   a = limit, b = window ms
--   kind 2 tokens:     a = limit, b = window ms
--   kind 3 concurrent: a = limit, b = lease ms
--   kind 4 budget:     a = limit, b = enforce (1/0), c = seed, d = ttl ms (0: none)
-- Returns {1, 0, 0, used, reset_ms, window, ...one triple per counter} when admitted, or
-- {0, index (0-based), retry_after_ms, used, reset_ms, window} for the first full counter, as one
-- string (see `reply`).
--
-- Time is Redis's own (TIME), so that gateways with skewed clocks share windows and leases.

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME; later versions replicate
  -- effects and make this a no-op.
  redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid = ARGV[1]
local tokens = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local function load(key, kind, b, c)
  if kind == 1 or kind == 2 then
    local w = math.floor(now / b)
    local stored = redis.call('HMGET', key, 'w', 'n')
    local count = 0
    if tonumber(stored[1]) == w then
      count = tonumber(stored[2]) or 0
    end
    return { w = w, n = count }
  elseif kind == 3 then
    -- Leases are live while their expiry is after now.
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    return { live = redis.call('ZCARD', key), holds = redis.call('ZSCORE', key, rid) ~= false }
  else
    local stored = redis.call('HMGET', key, 'spent', 'reserved')
    if stored[1] then
      return { spent = tonumber(stored[1]), reserved = tonumber(stored[2]) or 0, exists = true }
    end
    -- Not created yet: spent starts at the seed (written only when the counter is created).
    return { spent = c, reserved = 0, exists = false }
  end
end

-- What taking the demand leaves, or nil when the counter is full.
local function take(kind, a, b, v)
  if kind == 1 then
    if v.n + 1 > a then return nil end
    return { w = v.w, n = v.n + 1 }
  elseif kind == 2 then
    if v.n + tokens > a then return nil end
    return { w = v.w, n = v.n + tokens }
  elseif kind == 3 then
    -- A request that already holds a lease keeps it (a repeated acquire needs no second slot).
    if v.holds then return v end
    if v.live >= a then return nil end
    return { live = v.live + 1, holds = true }
  else
    if b == 1 and v.spent + v.reserved + cost > a then return nil end
    return { spent = v.spent, reserved = v.reserved + cost, exists = v.exists }
  end
end

local function state(kind, b, v)
  if kind == 1 or kind == 2 then
    local window = 0
    if kind == 2 then window = v.w end
    return v.n, (v.w + 1) * b - now, window
  elseif kind == 3 then
    return v.live, 0, 0
  else
    return v.spent + v.reserved, 0, 0
  end
end

local function store(key, kind, b, d, v)
  if kind == 1 or kind == 2 then
    redis.call('HSET', key, 'w', v.w, 'n', v.n)
    redis.call('PEXPIRE', key, 2 * b)
  elseif kind == 3 then
    -- ZADD refreshes the lease of a repeated acquire. The set lives as long as its last lease.
    redis.call('ZADD', key, now + b, rid)
    if redis.call('PTTL', key) < b then
      redis.call('PEXPIRE', key, b)
    end
  else
    redis.call('HSET', key, 'spent', v.spent, 'reserved', v.reserved)
    -- The TTL runs from creation and is never extended: the counter ends with its period.
    if not v.exists and d > 0 then
      redis.call('PEXPIRE', key, d)
    end
  end
end

-- A counter listed twice (same key) is one counter taken twice: the second entry sees what the
-- first took.
local views = {}
local first = {}
local out = { 1, 0, 0 }
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 3 + (i - 1) * 5
  local kind, a, b, c = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]),
      tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local v = views[key]
  if v == nil then
    v = load(key, kind, b, c)
    first[#first + 1] = i
  end
  local after = take(kind, a, b, v)
  if after == nil then
    local used, reset, window = state(kind, b, v)
    local retry = 0
    if kind == 1 or kind == 2 then retry = reset end
    return reply({ 0, i - 1, retry, used, reset, window })
  end
  views[key] = after
  local used, reset, window = state(kind, b, after)
  out[#out + 1] = used
  out[#out + 1] = reset
  out[#out + 1] = window
end

for _, i in ipairs(first) do
  local key = KEYS[i]
  local base = 3 + (i - 1) * 5
  store(key, tonumber(ARGV[base + 1]), tonumber(ARGV[base + 3]), tonumber(ARGV[base + 5]),
    views[key])
end
return reply(out)
