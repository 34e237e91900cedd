-- wrk script for bench/run.sh's open-loop phases: the same request as wrk-post.lua, sent at a
-- fixed total rate (BENCH_RATE requests/s) instead of "as fast as the connections allow".
--
-- How: wrk calls delay() (milliseconds) before each request it writes on a connection. This
-- script keeps one schedule per wrk thread (run.sh uses one thread): slot k is at
-- start + k / BENCH_RATE. Each call claims the next slot and returns how long to wait for it,
-- read from the wall clock (clock_gettime through LuaJIT's FFI). So the requests leave at the
-- configured rate whatever the answers' latency, as long as a connection is free when a slot
-- comes (run.sh opens enough connections for several milliseconds of requests); when none is,
-- the late slots are sent as soon as a connection frees up and the achieved rate (RESULT rps)
-- falls below the target, which run.sh reports.
--
-- Accuracy: wrk's timers have 1 ms resolution (delay() is truncated to whole milliseconds and
-- its event loop wakes at most once per millisecond), so requests leave in small bursts, about
-- BENCH_RATE / 1000 per millisecond, not evenly spaced; over a run the rate is exact to well
-- under 1%. Latency is measured from when a request is written, so a request delayed because
-- every connection was busy does not count its wait (wrk2's coordinated-omission correction is
-- not done); run.sh checks the achieved rate to expose that case.
--
-- Prints the same RESULT line as wrk-post.lua.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = os.getenv("BENCH_BODY")
  or '{"model":"bench","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":32}'

local rate = tonumber(os.getenv("BENCH_RATE") or "1000")
local interval_ms = 1000 / rate
local next_slot = nil

function delay()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  local wait = slot - now
  if wait <= 0 then return 0 end
  -- wrk truncates to whole milliseconds: round so that the error is at most half a tick.
  return math.floor(wait + 0.5)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
