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
--        kind 4 budget:     a = limit, b = enforce (1/0), c = seed, d = expiry (ms since the
--                           epoch, 0: none; kept as the string given, for PEXPIREAT)
--   2. the number of counter lists, then each list: its length, then its counters' positions in
--      KEYS (a counter may appear twice in a list: it is then taken twice);
--   3. the number of requests, then per request: demanded tokens, demanded cost
--      (micro-dollars), the position of its counter list.
-- Returns, as one string (see `reply` in shared.lua): per key, reset_ms, window (the token
-- window, or the lease bucket) and the used value before the batch (0 0 0 for a key no request
-- reached); then per request one of
--   1                 admitted; the gateway replays the takes (each counter of its list gains
--                     1 request, its tokens, 1 lease or its cost, in order) to know the used values
--   2 and the used value of each counter of its list, when admitted but the replay would not
--                     know them (a key came with two descriptions)
--   0, the position in its list (0-based) of the first full counter, and that counter's used
--                     value, when refused.
-- The replay keeps the reply (whose numbers Redis must format one by one) at one short string
-- per request.
--
-- Time is Redis's own (TIME, in shared.lua), so that gateways with skewed clocks share windows
-- and leases. Leases are counted per bucket (see `read_leases` in shared.lua), not kept one by
-- one: a request's lease costs this script nothing but its share of one HINCRBY.
--
-- Redis runs this for every request of every instance, so the per-request loop is kept lean
-- (Lua is interpreted: each table, call or global lookup there costs Redis CPU that the
-- gateways' hosts pay for): no table or function call per request and counter, and the Redis
-- commands are per counter, not per request.

-- Numbers from ARGV, each distinct string converted once (strtod is dear, and a batch repeats
-- the same few numbers).
local numbers = {}
local function num(text)
  local n = numbers[text]
  if n == nil then
    n = tonumber(text)
    numbers[text] = n
  end
  return n
end

-- Part 1: the counters. A counter's state lives in the counter itself; should one key come with
-- two descriptions (a config reload between two requests of the batch), both share one state
-- (and are `shared`, which the gateway's replay does not know).
local counters = {}
local by_key = {}
local arg = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local c = { key = key, kind = num(ARGV[arg]), a = num(ARGV[arg + 1]),
    b = num(ARGV[arg + 2]), c = num(ARGV[arg + 3]), d = ARGV[arg + 4] }
  local s = by_key[key]
  if s then
    s.shared, c.shared = true, true
  else
    s = c
    by_key[key] = c
  end
  c.s = s
  counters[i] = c
  arg = arg + 5
end

-- Part 2: the counter lists.
local lists = {}
for l = 1, num(ARGV[arg]) do
  local len = num(ARGV[arg + 1])
  local list = {}
  for j = 1, len do
    list[j] = counters[num(ARGV[arg + 1 + j])]
  end
  lists[l] = list
  arg = arg + 1 + len
end
arg = arg + 1
local requests, first = num(ARGV[arg]), arg + 1

-- Reads what Redis holds into the counter's state (`n`: requests or tokens in the window,
-- leases live, or spent + reserved), which then adds what admitted requests of this batch take.
local function load(c)
  local s = c.s
  s.loaded = true
  local kind = c.kind
  if kind == 1 or kind == 2 then
    s.w, s.n, s.fresh = read_window(c.key, c.b)
  elseif kind == 3 then
    local dead
    s.w, s.n, s.fresh, dead = read_leases(c.key, c.b)
    if dead then call('HDEL', c.key, unpack(dead)) end
  else
    local stored = call('HMGET', c.key, 'spent', 'reserved')
    s.exists = stored[1] ~= false
    if s.exists then
      s.spent = tonumber(stored[1])
      s.n = s.spent + (tonumber(stored[2]) or 0)
    else
      -- Not created yet: spent starts at the seed (written only when the counter is created).
      s.spent, s.n = c.c, c.c
    end
  end
  -- The value before the batch, for the gateway's replay.
  s.base = s.n
end

-- Part 3: the requests, in order. Each request's used values go into `out` after its place
-- for 1, 2 or 0, and stay there only when the reply must carry them.
local out = {}
local o = 3 * #counters
for i = 1, o do out[i] = 0 end
local tokens, cost, list
local tokens_text, cost_text, list_text

-- Reads request r's demand into `tokens` and `cost`. Equal strings are one interned string in
-- Lua: a request demanding what the previous one did costs no conversion.
local function demand(r)
  local at = first + 3 * (r - 1)
  if ARGV[at] ~= tokens_text then
    tokens_text = ARGV[at]
    tokens = tonumber(tokens_text)
  end
  if ARGV[at + 1] ~= cost_text then
    cost_text = ARGV[at + 1]
    cost = tonumber(cost_text)
  end
end

-- Decides request r (its demand read, `list` its counter list) against the counters as they
-- stand, alone.
local function decide()
  local refused = nil
  local replayable = true
  for j = 1, #list do
    local c = list[j]
    local s, kind = c.s, c.kind
    -- What this counter holds after the request's take, and whether that fits: one request,
    -- its tokens, one lease (every admission its own, whatever its request id) or its cost
    -- (always fits an unenforced budget).
    local n, fits
    if kind == 1 or kind == 3 then
      n = s.n + 1
      fits = n <= c.a
    elseif kind == 2 then
      n = s.n + tokens
      fits = n <= c.a
    else
      n = s.n + cost
      fits = c.b ~= 1 or n <= c.a
    end
    if not fits then
      refused = j
      break
    end
    s.n = n
    if c.shared then replayable = false end
    out[o + 1 + j] = n
  end
  if refused then
    out[o + 1] = 0
    out[o + 2] = refused - 1
    out[o + 3] = list[refused].s.n
    o = o + 3
    -- Give back what this request took from the counters before the full one, last first (a
    -- counter listed twice is given back twice).
    for j = refused - 1, 1, -1 do
      local c = list[j]
      local s, kind = c.s, c.kind
      if kind == 1 or kind == 3 then
        s.n = s.n - 1
      elseif kind == 2 then
        s.n = s.n - tokens
      else
        s.n = s.n - cost
      end
    end
  else
    for j = 1, #list do
      list[j].s.dirty = true
    end
    if replayable then
      out[o + 1] = '1'
      o = o + 1
    else
      out[o + 1] = 2
      o = o + 1 + #list
    end
  end
end

-- Takes a whole run of m requests with the same list at once when all of them fit (m requests
-- or leases, `sum_t` tokens, `sum_c` cost in all): every take is non-negative, so if
-- the run's total fits each counter then so does every request's in turn, and each is admitted
-- exactly as it would be alone. Returns false, taking nothing, when the run does not fit (or a
-- key came with two descriptions, whose requests need their used values in the reply).
local function take_run(m, sum_t, sum_c)
  local fits = true
  for j = 1, #list do
    local c = list[j]
    local s, kind = c.s, c.kind
    if c.shared then
      fits = false
      break
    end
    -- A counter listed twice is taken twice: its trial value carries the first take.
    local n = s.trial or s.n
    if kind == 1 or kind == 3 then
      n = n + m
    elseif kind == 2 then
      n = n + sum_t
    else
      n = n + sum_c
    end
    s.trial = n
    if n > c.a and (kind ~= 4 or c.b == 1) then
      fits = false
      break
    end
  end
  for j = 1, #list do
    local s = list[j].s
    if s.trial then
      if fits then
        s.n = s.trial
        s.dirty = true
      end
      s.trial = nil
    end
  end
  return fits
end

-- The requests go by runs of consecutive requests with the same counter list (a busy caller's
-- batch is one run): a run that fits as a whole is admitted with one check per counter; one that
-- does not is decided request by request.
local r = 1
while r <= requests do
  local text = ARGV[first + 3 * (r - 1) + 2]
  if text ~= list_text then
    list_text = text
    list = lists[tonumber(text)]
  end
  for j = 1, #list do
    local c = list[j]
    if not c.s.loaded then load(c) end
  end
  -- The run: requests r to e, their demand summed.
  local e, sum_t, sum_c, growing = r, 0, 0, true
  while true do
    demand(e)
    sum_t, sum_c = sum_t + tokens, sum_c + cost
    if tokens < 0 or cost < 0 then growing = false end
    if e == requests or ARGV[first + 3 * e + 2] ~= list_text then break end
    e = e + 1
  end
  if e > r and growing and take_run(e - r + 1, sum_t, sum_c) then
    for _ = r, e do
      out[o + 1] = '1'
      o = o + 1
    end
  else
    for q = r, e do
      demand(q)
      decide()
    end
  end
  r = e + 1
end
-- Used values left beyond the last request's end.
for i = #out, o + 1, -1 do out[i] = nil end

-- Writes what the batch took. Windows keep their TTL (set when the window began), lease counts
-- the one set when their newest bucket began; budgets keep the one set at creation.
local function store(c)
  local kind, key, s = c.kind, c.key, c.s
  if kind == 1 or kind == 2 then
    write_window(key, s.w, s.n, s.fresh, c.b)
  elseif kind == 3 then
    add_leases(key, s.w, s.n - s.base, s.fresh, c.b)
  else
    call('HSET', key, 'spent', s.spent, 'reserved', s.n - s.spent)
    -- The expiry is set at creation and never changed: the counter ends with its period.
    if not s.exists and c.d ~= '0' then
      call('PEXPIREAT', key, c.d)
    end
  end
end

-- One (reset_ms, window, used before the batch) per key, at the front of `out`.
for i = 1, #counters do
  local c = counters[i]
  local s = c.s
  if s.dirty then
    store(c)
    s.dirty = false
  end
  if s.loaded then
    if c.kind == 1 or c.kind == 2 then
      out[3 * i - 2] = (s.w + 1) * c.b - now
      -- The window matters only for settling tokens.
      if c.kind == 2 then out[3 * i - 1] = s.w end
    elseif c.kind == 3 then
      -- The bucket, for releasing (a string: it is a field name).
      out[3 * i - 1] = tonumber(s.w)
    end
    out[3 * i] = s.base
  end
end
return reply(out)
