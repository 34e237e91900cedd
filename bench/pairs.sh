#!/usr/bin/env bash
# Two gateway configs against each other in alternating pairs: both gateways run side by side
# (pinned to CPU 0, only one loaded at a time); wrk (CPU 1) loads one then the other, the order
# swapped every round, and each pair's throughput and CPU per request are compared. Many short
# pairs average out a shared machine's drift better than run.sh's few long rounds. At the end,
# where a CPU difference lies: user and system CPU, and bytes written towards storage
# (/proc/PID/io), per request.
#
#   PAIR=logging (default, issue 5): `off` (`logging.metadata: false`: rows keep the usage
#     record only) against `gateway` (the default call log), both called with the admin key.
#   PAIR=limits (issue 4): `vkey` (`gateway` called with a virtual key) against `limits` (the
#     same plus run.sh's limits and budget in Redis, BENCH_REDIS); also prints Redis's CPU per
#     request of the `limits` phases.
#   PAIR=thp: `limits` against itself with mimalloc's transparent huge pages off
#     (`MIMALLOC_ALLOW_THP=0`): what the lower RSS costs in CPU.
#   PAIR=binary: `off`'s config (run.sh's `off`: admin key, `logging.metadata: false`) in
#     BASELINE_BIN (`base`, e.g. the commit before a change) against SWITCHBOARD_BIN (`new`):
#     what a change does to throughput and CPU per request.
#
# At the end, each gateway's peak and current RSS and its anonymous memory in huge pages.
#
#   bench/pairs.sh                  # 10 pairs of 8 s at concurrency 64
#   ROUNDS=20 SECONDS_ON=5 PAIR=limits bench/pairs.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
ROUNDS="${ROUNDS:-10}"
SECONDS_ON="${SECONDS_ON:-8}"
CONNS="${CONNS:-64}"
PAIR="${PAIR:-logging}"

bench_harness pairs
for tool in wrk curl taskset; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN (cargo build --release -p switchboard)"
bench_start_mock
bench_start_redis

KEY="sk-pairs-$$"
declare -A PORT GW TOKEN
# start NAME EXTRA [VAR=VALUE] [BIN]: one gateway with the benchmark's config plus EXTRA, the
# environment variable VAR set, run from BIN (default SWITCHBOARD_BIN).
start() {
  PORT[$1]=$(port)
  bench_gateway_yaml "${PORT[$1]}" "sqlite://$WORK/$1.db" "$MOCK_PORT" "$2" >"$WORK/$1.yaml"
  (cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$KEY" RUST_LOG=warn exec env ${3:+"$3"} taskset -c 0 \
    "${4:-$SWITCHBOARD_BIN}" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1) &
  GW[$1]=$!
  PIDS+=("${GW[$1]}")
  wait_ready "http://127.0.0.1:${PORT[$1]}/healthz"
  TOKEN[$1]=$KEY
}
# The pair: A against B, the ratios B / A.
case "$PAIR" in
  logging)
    A=off B=gateway
    start off "logging: { metadata: false }"
    start gateway ""
    ;;
  limits)
    A=vkey B=limits
    start vkey ""
    start limits "$(bench_limits_yaml "pairs$(date +%s)" "$BENCH_REDIS")"
    ;;
  thp)
    A=limits B=nothp
    start limits "$(bench_limits_yaml "pairs$(date +%s)" "$BENCH_REDIS")"
    start nothp "$(bench_limits_yaml "pairsnothp$(date +%s)" "$BENCH_REDIS")" MIMALLOC_ALLOW_THP=0
    ;;
  binary)
    [ -x "${BASELINE_BIN:-}" ] || die "PAIR=binary needs BASELINE_BIN (a switchboard binary)"
    A=base B=new
    start base "logging: { metadata: false }" "" "$BASELINE_BIN"
    start new "logging: { metadata: false }"
    ;;
  *) die "PAIR is logging, limits, thp or binary, not $PAIR" ;;
esac
if [ "$PAIR" = limits ] || [ "$PAIR" = thp ]; then
  for name in "$A" "$B"; do
    TOKEN[$name]=$(bench_virtual_key "http://127.0.0.1:${PORT[$name]}" "$KEY") \
      || die "could not create a virtual key"
  done
fi
# Redis's own CPU seconds (user + system), when B uses it and redis-cli exists.
redis_cpu() {
  { [ "$PAIR" = limits ] || [ "$PAIR" = thp ]; } && command -v redis-cli >/dev/null || { echo 0; return; }
  redis-cli -u "$BENCH_REDIS" info cpu 2>/dev/null | tr -d '\r' \
    | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "%.6f", s }'
}

# "user_ticks system_ticks bytes_dirtied" of a process: CPU from /proc/PID/stat, and the bytes
# it sent towards storage (/proc/PID/io write_bytes: the call log's WAL and checkpoints).
usage_now() {
  local io
  io=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io" 2>/dev/null || true)
  awk -v io="${io:-0}" '{ print $14, $15, io }' "/proc/$1/stat"
}
# phase NAME SECONDS: prints "rps cpu_us_per_request redis_cpu_us_per_request user_us sys_us
# bytes_dirtied p50_us" (user, system and bytes per request) of one wrk phase against NAME.
phase() {
  local before after result requests rps p50 redis_before redis_after
  before=$(usage_now "${GW[$1]}")
  redis_before=$(redis_cpu)
  result=$(BENCH_TOKEN="${TOKEN[$1]}" taskset -c 1 wrk -t1 -c"$CONNS" -d"${2}s" --timeout 10s \
    -s "$BENCH/wrk-post.lua" "http://127.0.0.1:${PORT[$1]}/v1/chat/completions" | grep '^RESULT ')
  after=$(usage_now "${GW[$1]}")
  redis_after=$(redis_cpu)
  requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$result")
  p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$result")
  [ "${requests:-0}" -gt 0 ] || die "no requests completed: $result"
  grep -q ' non2xx=0 ' <<<"$result" || die "$1 answered with errors: $result"
  awk -v r="$rps" -v before="$before" -v after="$after" -v n="$requests" \
    -v hz="$(getconf CLK_TCK)" -v ra="$redis_after" -v rb="$redis_before" -v p50="$p50" \
    'BEGIN { split(before, x, " "); split(after, y, " ")
      u = (y[1] - x[1]) * 1e6 / hz / n; s = (y[2] - x[2]) * 1e6 / hz / n
      printf "%s %.2f %.2f %.2f %.2f %.0f %s\n", r, u + s, (ra - rb) * 1e6 / n, u, s, (y[3] - x[3]) / n, p50 }'
}

log "warm-up"
phase "$A" 3 >/dev/null
phase "$B" 3 >/dev/null
echo "round ${A}_rps ${B}_rps rps_ratio ${A}_cpu_us ${B}_cpu_us cpu_ratio ${B}_redis_cpu_us"
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    read -r a_rps a_cpu _ a_usr a_sys a_io a_p50 < <(phase "$A" "$SECONDS_ON")
    read -r b_rps b_cpu b_redis b_usr b_sys b_io b_p50 < <(phase "$B" "$SECONDS_ON")
  else
    read -r b_rps b_cpu b_redis b_usr b_sys b_io b_p50 < <(phase "$B" "$SECONDS_ON")
    read -r a_rps a_cpu _ a_usr a_sys a_io a_p50 < <(phase "$A" "$SECONDS_ON")
  fi
  echo "$a_usr $a_sys $a_io $b_usr $b_sys $b_io $a_p50 $b_p50" >>"$WORK/split.txt"
  awk -v r="$round" -v a="$a_rps" -v b="$b_rps" -v c="$a_cpu" -v d="$b_cpu" -v e="$b_redis" \
    'BEGIN { printf "%d %.0f %.0f %.3f %.2f %.2f %.3f %.2f\n", r, a, b, b / a, c, d, d / c, e }'
done | tee "$WORK/pairs.txt"
# Medians and means of the per-pair ratios: issue 5 asks logging on >= 0.95x of logging off
# (PAIR=logging), issue 4 limits >= 0.9x of the virtual key alone (PAIR=limits).
awk -v a="$A" -v b="$B" -v pair="$PAIR" 'NR > 1 { r[NR-1] = $4; c[NR-1] = $7; sr += $4; sc += $7; sx += $8; n++ }
  function median(v, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END { bound = pair == "limits" ? "issue 4: >= 0.9" : pair == "logging" ? "issue 5: >= 0.95" : "no bound"
        printf "throughput %s/%s: median %.3f, mean %.3f (%s)\n", b, a, median(r, n), sr / n, bound
        printf "CPU per request %s/%s: median %.3f, mean %.3f\n", b, a, median(c, n), sc / n
        if (pair == "limits") printf "Redis CPU per %s request: mean %.2f us\n", b, sx / n }' \
  <(echo header; cat "$WORK/pairs.txt")
# Where the CPU difference lies: user and system time, and bytes sent towards storage.
# And the latency: the pairs' p50 ratio (issue 5 also bounds p50 at concurrency 8: CONNS=8).
awk -v a="$A" -v b="$B" -v conns="$CONNS" '{ for (i = 1; i <= 6; i++) s[i] += $i; p[++n] = $8 / $7 }
  function median(v, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END { printf "per request, mean over pairs: %s user %.2f us, system %.2f us, %.0f bytes dirtied; %s user %.2f us, system %.2f us, %.0f bytes dirtied\n",
          a, s[1] / n, s[2] / n, s[3] / n, b, s[4] / n, s[5] / n, s[6] / n
        printf "p50 latency %s/%s at concurrency %s: median %.3f over pairs\n", b, a, conns, median(p, n) }' "$WORK/split.txt"
# Memory: peak and current RSS, and how much of the anonymous memory is in huge pages.
for name in "$A" "$B"; do
  awk -v n="$name" '$1 == "VmHWM:" { h = $2 } $1 == "VmRSS:" { r = $2 }
    END { printf "%s: peak RSS %.1f MiB, RSS %.1f MiB", n, h / 1024, r / 1024 }' "/proc/${GW[$name]}/status"
  awk '$1 == "AnonHugePages:" { printf ", in huge pages %.1f MiB\n", $2 / 1024 }' "/proc/${GW[$name]}/smaps_rollup"
done
