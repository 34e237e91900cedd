#!/usr/bin/env bash
# Logging on against logging off (issue 5), in alternating pairs: two gateways run side by
# side (both pinned to CPU 0, only one loaded at a time), `off` with `logging.metadata: false`
# (rows keep the usage record only) and `gateway` with the default call log; wrk (CPU 1) loads
# one then the other, the order swapped every round, and each pair's throughput and CPU per
# request are compared. Many short pairs average out a shared machine's drift better than
# run.sh's few long rounds.
#
#   bench/pairs.sh                  # 10 pairs of 8 s at concurrency 64
#   ROUNDS=20 SECONDS_ON=5 bench/pairs.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
ROUNDS="${ROUNDS:-10}"
SECONDS_ON="${SECONDS_ON:-8}"
CONNS="${CONNS:-64}"

bench_harness pairs
for tool in wrk curl taskset; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN (cargo build --release -p switchboard)"
bench_start_mock

KEY="sk-pairs-$$"
declare -A PORT GW
# start NAME EXTRA: one gateway with the benchmark's config plus EXTRA.
start() {
  PORT[$1]=$(port)
  bench_gateway_yaml "${PORT[$1]}" "sqlite://$WORK/$1.db" "$MOCK_PORT" "$2" >"$WORK/$1.yaml"
  (cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$KEY" RUST_LOG=warn exec taskset -c 0 \
    "$SWITCHBOARD_BIN" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1) &
  GW[$1]=$!
  PIDS+=("${GW[$1]}")
  wait_ready "http://127.0.0.1:${PORT[$1]}/healthz"
}
start off "logging: { metadata: false }"
start gateway ""

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# phase NAME SECONDS: prints "rps cpu_us_per_request" of one wrk phase against NAME.
phase() {
  local before after result requests rps
  before=$(ticks "${GW[$1]}")
  result=$(BENCH_TOKEN="$KEY" taskset -c 1 wrk -t1 -c"$CONNS" -d"${2}s" --timeout 10s \
    -s "$BENCH/wrk-post.lua" "http://127.0.0.1:${PORT[$1]}/v1/chat/completions" | grep '^RESULT ')
  after=$(ticks "${GW[$1]}")
  requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$result")
  [ "${requests:-0}" -gt 0 ] || die "no requests completed: $result"
  grep -q ' non2xx=0 ' <<<"$result" || die "$1 answered with errors: $result"
  awk -v r="$rps" -v t=$(( after - before )) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %.2f\n", r, t * 1e6 / hz / n }'
}

log "warm-up"
phase off 3 >/dev/null
phase gateway 3 >/dev/null
echo "round off_rps gateway_rps rps_ratio off_cpu_us gateway_cpu_us cpu_ratio"
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    read -r off_rps off_cpu < <(phase off "$SECONDS_ON")
    read -r gw_rps gw_cpu < <(phase gateway "$SECONDS_ON")
  else
    read -r gw_rps gw_cpu < <(phase gateway "$SECONDS_ON")
    read -r off_rps off_cpu < <(phase off "$SECONDS_ON")
  fi
  awk -v r="$round" -v a="$off_rps" -v b="$gw_rps" -v c="$off_cpu" -v d="$gw_cpu" \
    'BEGIN { printf "%d %.0f %.0f %.3f %.2f %.2f %.3f\n", r, a, b, b / a, c, d, d / c }'
done | tee "$WORK/pairs.txt"
# Medians and means of the per-pair ratios: issue 5 asks throughput >= 0.95x of logging off.
awk 'NR > 1 { r[NR-1] = $4; c[NR-1] = $7; sr += $4; sc += $7; n++ }
  function median(v, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END { printf "throughput gateway/off: median %.3f, mean %.3f (issue 5: >= 0.95)\n", median(r, n), sr / n
        printf "CPU per request gateway/off: median %.3f, mean %.3f\n", median(c, n), sc / n }' \
  <(echo header; cat "$WORK/pairs.txt")
