-- Prepended to every limits script (see `RedisLimits::connect`): the clock, the window and
-- lease counters' storage rules, and how a script answers. One place for what acquire.lua, settle.lua
-- and peek.lua must agree on.

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME; later versions replicate
  -- effects and make this a no-op.
  redis.replicate_commands()
end

local tonumber, floor, call = tonumber, math.floor, redis.call

-- Time is Redis's own (TIME), so that gateways with skewed clocks share windows and leases.
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)

-- A window counter is a hash {w, n}: the window now (`now / window_ms`) and its count. Returns
-- the window, the count in it (0 when the key holds an earlier window or nothing), and whether
-- the key's window is new (`fresh`: the next write must set the TTL).
local function read_window(key, window_ms)
  local w = floor(now / window_ms)
  local stored = call('HMGET', key, 'w', 'n')
  if tonumber(stored[1]) == w then
    return w, tonumber(stored[2]) or 0, false
  end
  return w, 0, true
end

-- Writes a window's count. The TTL (twice the window) is set as the window begins, so the key
-- outlives its window; later writes in the same window keep it.
local function write_window(key, w, n, fresh, window_ms)
  call('HSET', key, 'w', w, 'n', n)
  if fresh then call('PEXPIRE', key, 2 * window_ms) end
end

-- A concurrency counter is a hash of lease counts by bucket: field = bucket (now / bucket ms,
-- the lease over 8, at least 1 ms), value = leases taken in it and not released yet. A bucket's
-- leases expire `lease_ms` after its last millisecond, so each lives at least `lease_ms`; the
-- same arithmetic as `lease_expiry` in crates/core/src/limits/backend.rs.
local function bucket_ms(lease_ms)
  local size = floor(lease_ms / 8)
  if size < 1 then return 1 end
  return size
end

local function lease_expiry(bucket, lease_ms)
  return (bucket + 1) * bucket_ms(lease_ms) + lease_ms - 1
end

-- Returns the bucket now (as the field's text), the live leases, whether the bucket is new
-- (`fresh`: the next write must set the TTL), and the fields of expired buckets (nil if none).
local function read_leases(key, lease_ms)
  local bucket = string.format('%d', floor(now / bucket_ms(lease_ms)))
  local fields = call('HGETALL', key)
  local live, fresh, dead = 0, true, nil
  for i = 1, #fields, 2 do
    local field = fields[i]
    if lease_expiry(tonumber(field), lease_ms) > now then
      live = live + tonumber(fields[i + 1])
      if field == bucket then fresh = false end
    else
      dead = dead or {}
      dead[#dead + 1] = field
    end
  end
  return bucket, live, fresh, dead
end

-- Adds `n` leases to `bucket`. The key lives as long as its newest bucket's leases: the TTL is
-- set when that bucket begins.
local function add_leases(key, bucket, n, fresh, lease_ms)
  call('HINCRBY', key, bucket, n)
  if fresh then call('PEXPIRE', key, lease_expiry(tonumber(bucket), lease_ms) - now) end
end

-- The reply is one string of the integers separated by spaces, not an array: the gateway decodes
-- one string far faster than many integer replies. %d prints each exactly (they are integral);
-- a script may put the string '1' instead of the number, which needs no formatting (Redis pays
-- for every number it formats).
local function reply(out)
  local format = string.format
  for i = 1, #out do
    local v = out[i]
    if v ~= '1' then out[i] = format('%d', v) end
  end
  return table.concat(out, ' ')
end
