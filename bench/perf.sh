#!/usr/bin/env bash
# Where the gateway's CPU goes under load, kernel included: `perf record` (software clock, so it
# works where hardware counters are not exposed) of the gateway pinned to CPU 0 while wrk, on
# CPU 1, sends the benchmark's request. Also prints CPU µs per request from /proc, like run.sh.
#
#   bench/perf.sh                 # `off`'s config (admin key, no limits)
#   CONFIG=on bench/perf.sh       # `on`'s config: virtual key, limits and a budget in Redis
#                                 # (also prints Redis's CPU per request, from INFO cpu)
#
# Keeps perf.data in $OUT (default bench/results/perf.data) for `perf report -i`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
CONFIG="${CONFIG:-off}"
CONNS="${CONNS:-64}"
SECONDS_ON="${SECONDS_ON:-10}"
OUT="${OUT:-$BENCH/results/perf.data}"
TOP="${TOP:-60}"

bench_harness perf
for tool in perf wrk curl taskset; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN (cargo build --release -p switchboard)"
bench_start_mock
bench_start_redis

GW_PORT=$(port)
KEY="sk-perf-$$"
EXTRA=""
if [ "$CONFIG" = on ]; then
  EXTRA=$(bench_limits_yaml "perf$(date +%s)" "$BENCH_REDIS")
fi
bench_gateway_yaml "$GW_PORT" "sqlite://$WORK/switchboard.db" "$MOCK_PORT" "$EXTRA" >"$WORK/switchboard.yaml"
(cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$KEY" RUST_LOG=warn exec taskset -c 0 \
  "$SWITCHBOARD_BIN" serve --config "$WORK/switchboard.yaml" >"$WORK/gateway.log" 2>&1) &
GW_PID=$!
PIDS+=("$GW_PID")
wait_ready "http://127.0.0.1:$GW_PORT/healthz"

TOKEN=$KEY
if [ "$CONFIG" = on ]; then
  TOKEN=$(bench_virtual_key "http://127.0.0.1:$GW_PORT" "$KEY") || die "could not create a virtual key"
fi

run_wrk() {
  BENCH_TOKEN="$TOKEN" taskset -c 1 wrk -t1 -c"$CONNS" -d"${1}s" --timeout 10s \
    -s "$BENCH/wrk-post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" | grep '^RESULT '
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
# Redis's own CPU seconds (user + system) from INFO, when `on` uses it and redis-cli exists.
redis_cpu() {
  [ "$CONFIG" = on ] && command -v redis-cli >/dev/null || return 0
  redis-cli -u "$BENCH_REDIS" info cpu 2>/dev/null | tr -d '\r' \
    | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { if (NR) printf "%.6f", s }'
}

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GW_PID/status"; }
RSS_IDLE=$(rss_mib)
log "warm-up 3s"
run_wrk 3 >/dev/null
RSS_WARM=$(rss_mib)
mkdir -p "$(dirname "$OUT")"
before=$(cpu_ticks)
redis_before=$(redis_cpu)
if [ "${STRACE:-0}" = 1 ]; then
  # System calls per request instead of a profile (strace slows the gateway down a lot).
  timeout -s INT "$SECONDS_ON" strace -c -f -p "$GW_PID" -o "$WORK/strace.txt" &
else
  perf record -F 4999 -e cpu-clock -g -p "$GW_PID" -o "$OUT" -- sleep "$SECONDS_ON" >/dev/null 2>&1 &
fi
PERF_PID=$!
RESULT=$(run_wrk "$SECONDS_ON")
wait "$PERF_PID" || true
after=$(cpu_ticks)
redis_after=$(redis_cpu)
REQUESTS=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$RESULT")
HZ=$(getconf CLK_TCK)
echo "$RESULT"
# Records still waiting for the ledger writer when the load stops: work the phase deferred.
QUEUE=$(curl -s --max-time 5 -H "Authorization: Bearer $KEY" "http://127.0.0.1:$GW_PORT/metrics" \
  | awk '/^switchboard_usage_queue_depth / {print $2}')
echo "usage_queue_depth_at_end: ${QUEUE:-unknown}"
echo "rss_mib: idle $RSS_IDLE, after warm-up $RSS_WARM, at end $(rss_mib)"
echo "cpu_us_per_request: $(( (after - before) * 1000000 / HZ / REQUESTS )) (perf on: sampling adds a little)"
if [ -n "$redis_before" ] && [ -n "$redis_after" ]; then
  # The limits' cost on Redis's side, which runs on CPU 1 next to wrk and the mock here.
  echo "redis_cpu_us_per_request: $(awk -v a="$redis_before" -v b="$redis_after" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
fi
if [ "${STRACE:-0}" = 1 ]; then
  echo "## system calls per request"
  awk -v n="$REQUESTS" '$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "%8.2f  %s\n", $4 / n, $NF }' "$WORK/strace.txt" | sort -rn | head -n 20
  exit 0
fi
echo
echo "## self, by symbol (kernel included)"
{ perf report -i "$OUT" --no-children --sort sym -g none --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -n "$TOP"; } || true
echo
echo "## by binary"
{ perf report -i "$OUT" --no-children --sort dso -g none --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -n 10; } || true
