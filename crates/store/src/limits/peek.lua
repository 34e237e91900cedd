-- The counters as they stand, changing nothing. Same rules as `Shard::view` in
-- crates/core/src/limits/local.rs.
--
-- KEYS[i]: counter i. ARGV: two per counter: kind (as in acquire.lua), p = window ms for
-- windows, lease ms for leases, seed for budgets.
-- Returns one triple per counter: used, reset_ms, window, as one string (see `reply` in
-- shared.lua).

local out = {}

for i = 1, #KEYS do
  local key = KEYS[i]
  local kind, p = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local used, reset, window = 0, 0, 0
  if kind == 1 or kind == 2 then
    local w
    w, used = read_window(key, p)
    reset = (w + 1) * p - now
    if kind == 2 then window = w end
  elseif kind == 3 then
    window, used = read_leases(key, p)
    window = tonumber(window)
  else
    local stored = call('HMGET', key, 'spent', 'reserved')
    if stored[1] then
      used = tonumber(stored[1]) + (tonumber(stored[2]) or 0)
    else
      used = p
    end
  end
  out[#out + 1] = used
  out[#out + 1] = reset
  out[#out + 1] = window
end
return reply(out)
