-- Admission of a batch of requests, each over all of its counters, all or nothing, atomically
-- (one EVALSHA for every request that queued up while the previous batch was in Redis). Each
-- request is decided in order exactly as if it had come alone; the batch only shares the reads,
-- writes and descriptions of the counters its requests have in common.
-- The same rules as crates/core/src/limits/local/counter.rs; keep the two in step.
--
-- KEYS: the batch's distinct counters (a counter's kind is part of its key).
-- ARGV, in four parts:
--   1. per key, five numbers: kind, a, b, c, d with
--        kind 1 requests:   a = limit, b = window ms
--        kind 2 tokens:     a = limit, b = window ms
--        kind 3 concurrent: a = limit, b = lease ms
--        kind 4 budget:     a = limit, b = enforce (1/0), c = seed, d = ttl ms (0: none)
--   2. the number of counter lists, then each list: its length, then its counters' positions in
--      KEYS (a counter may appear twice in a list: it is then taken twice);
--   3. the number of requests, then per request: request id, demanded tokens, demanded cost
--      (micro-dollars), the position of its counter list.
-- Returns, as one string (see `reply`): per key, reset_ms and window (the window only for tokens;
-- 0 0 for a key no request reached); then per request, 1 and the used value of each counter of its list when admitted,
-- or 0, the position in its list (0-based) of the first full counter, and that counter's used
-- value.
--
-- Time is Redis's own (TIME), so that gateways with skewed clocks share windows and leases.

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME; later versions replicate
  -- effects and make this a no-op.
  redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Part 1: the counters. Their state (`s`) is per key: should one key come with two descriptions
-- (a config reload between two requests of the batch), both share what Redis holds.
local counters = {}
local states = {}
local arg = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local s = states[key]
  if s == nil then
    s = {}
    states[key] = s
  end
  counters[i] = { key = key, s = s, kind = tonumber(ARGV[arg]), a = tonumber(ARGV[arg + 1]),
    b = tonumber(ARGV[arg + 2]), c = tonumber(ARGV[arg + 3]), d = tonumber(ARGV[arg + 4]) }
  arg = arg + 5
end

-- Part 2: the counter lists.
local lists = {}
for l = 1, tonumber(ARGV[arg]) do
  local len = tonumber(ARGV[arg + 1])
  local list = {}
  for j = 1, len do
    list[j] = counters[tonumber(ARGV[arg + 1 + j])]
  end
  lists[l] = list
  arg = arg + 1 + len
end
arg = arg + 1

-- Reads what Redis holds into the counter's state, which then adds what admitted requests of
-- this batch take.
local function load(c)
  local s = c.s
  s.loaded = true
  if c.kind == 1 or c.kind == 2 then
    s.w = math.floor(now / c.b)
    local stored = redis.call('HMGET', c.key, 'w', 'n')
    s.n = 0
    if tonumber(stored[1]) == s.w then
      s.n = tonumber(stored[2]) or 0
    end
  elseif c.kind == 3 then
    -- Leases are live while their expiry is after now. `taken`: request ids of this batch that
    -- hold a lease (new or refreshed), to be written.
    redis.call('ZREMRANGEBYSCORE', c.key, '-inf', now)
    s.live = redis.call('ZCARD', c.key)
    s.taken = {}
  else
    local stored = redis.call('HMGET', c.key, 'spent', 'reserved')
    s.exists = stored[1] ~= false
    if s.exists then
      s.spent, s.reserved = tonumber(stored[1]), tonumber(stored[2]) or 0
    else
      -- Not created yet: spent starts at the seed (written only when the counter is created).
      s.spent, s.reserved = c.c, 0
    end
  end
end

local function used(c)
  local s = c.s
  if c.kind == 1 or c.kind == 2 then return s.n end
  if c.kind == 3 then return s.live end
  return s.spent + s.reserved
end

-- Takes one request's demand from `c` in place, or returns false when it is full. Also returns,
-- for a lease, what `undo` needs (`taken[rid]` before, or 'new').
local function take(c, rid, tokens, cost)
  local kind, s = c.kind, c.s
  if kind == 1 then
    if s.n + 1 > c.a then return false end
    s.n = s.n + 1
  elseif kind == 2 then
    if s.n + tokens > c.a then return false end
    s.n = s.n + tokens
  elseif kind == 3 then
    local before = s.taken[rid]
    -- A request that already holds a lease keeps it (a repeated acquire needs no second slot)
    -- and has it refreshed.
    if not (before or redis.call('ZSCORE', c.key, rid)) then
      if s.live >= c.a then return false end
      s.live = s.live + 1
      before = 'new'
    end
    s.taken[rid] = true
    return true, before
  else
    if c.b == 1 and s.spent + s.reserved + cost > c.a then return false end
    s.reserved = s.reserved + cost
  end
  return true
end

local function undo(c, rid, tokens, cost, before)
  local kind, s = c.kind, c.s
  if kind == 1 then
    s.n = s.n - 1
  elseif kind == 2 then
    s.n = s.n - tokens
  elseif kind == 3 then
    if before == 'new' then
      s.live = s.live - 1
      s.taken[rid] = nil
    elseif not before then
      s.taken[rid] = nil
    end
  else
    s.reserved = s.reserved - cost
  end
end

local function store(c)
  local kind, key, s = c.kind, c.key, c.s
  if kind == 1 or kind == 2 then
    redis.call('HSET', key, 'w', s.w, 'n', s.n)
    redis.call('PEXPIRE', key, 2 * c.b)
  elseif kind == 3 then
    -- ZADD refreshes the lease of a repeated acquire. The set lives as long as its last lease.
    local args = {}
    for rid in pairs(s.taken) do
      args[#args + 1] = now + c.b
      args[#args + 1] = rid
    end
    redis.call('ZADD', key, unpack(args))
    if redis.call('PTTL', key) < c.b then
      redis.call('PEXPIRE', key, c.b)
    end
  else
    redis.call('HSET', key, 'spent', s.spent, 'reserved', s.reserved)
    -- The TTL runs from creation and is never extended: the counter ends with its period.
    if not s.exists and c.d > 0 then
      redis.call('PEXPIRE', key, c.d)
    end
  end
end

-- Part 3: the requests, in order.
local decided = {}
for _ = 1, tonumber(ARGV[arg]) do
  local rid, tokens, cost = ARGV[arg + 1], tonumber(ARGV[arg + 2]), tonumber(ARGV[arg + 3])
  local list = lists[tonumber(ARGV[arg + 4])]
  arg = arg + 4
  -- What each counter holds after this request's take (a counter listed twice shows both).
  local useds, befores = {}, {}
  local refused = nil
  for j = 1, #list do
    local c = list[j]
    if not c.s.loaded then load(c) end
    local ok, before = take(c, rid, tokens, cost)
    if not ok then
      refused = j
      break
    end
    useds[j], befores[j] = used(c), before
  end
  if refused then
    decided[#decided + 1] = 0
    decided[#decided + 1] = refused - 1
    decided[#decided + 1] = used(list[refused])
    -- Give back what this request took from the counters before the full one, last first (a
    -- counter listed twice is given back twice).
    for j = refused - 1, 1, -1 do
      undo(list[j], rid, tokens, cost, befores[j])
    end
  else
    decided[#decided + 1] = 1
    for j = 1, #list do
      list[j].s.dirty = true
      decided[#decided + 1] = useds[j]
    end
  end
end

-- One (reset_ms, window) per key; then the decisions.
local out = {}
for i = 1, #counters do
  local c = counters[i]
  if c.s.dirty then
    store(c)
    c.s.dirty = false
  end
  if c.s.loaded and (c.kind == 1 or c.kind == 2) then
    out[#out + 1] = (c.s.w + 1) * c.b - now
    -- The window matters only for settling tokens.
    if c.kind == 2 then out[#out + 1] = c.s.w else out[#out + 1] = 0 end
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
for _, n in ipairs(decided) do out[#out + 1] = n end
return reply(out)
