#!/usr/bin/env bash
# Redis's instructions per request for the limit scripts, counted by valgrind's callgrind on a
# private redis-server (not the one the gateway uses): `redis-benchmark` sends the scripts
# (crates/store/src/limits/*.lua, as the gateway loads them) with the arguments the gateway
# sends for the benchmark's five counters (bench/lib.sh: key requests, tokens and concurrency,
# a team window, a team budget), K requests per call. Instruction counts are stable on a noisy
# machine where Redis's CPU time is not (see docs/performance.md).
#
#   bench/redis-callgrind.sh            # acquire and settle, batches of 1 and 20
#   K="1 8 50" CALLS=500 bench/redis-callgrind.sh
#
# The settle call is the merged form the gateway sends for K requests of one key (one token
# correction, one budget settlement, one release of K leases of one lease bucket).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMITS="$ROOT/crates/store/src/limits"
K="${K:-1 20}"
CALLS="${CALLS:-300}"
PORT="${PORT:-6391}"
for tool in valgrind callgrind_control redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "[redis-callgrind] $tool is required" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# The gateway's lease (15 minutes) and its bucket now, so that releases find live leases.
LEASE_MS=900000
acquire_args() {
  local k=$1 sha=$2 i
  printf 'EVALSHA %s 5 b:q:k b:t:k b:l:k b:q:t b:b:t' "$sha"
  printf ' 1 1000000 1000 0 0 2 1000000000000 60000 0 0 3 100000 %d 0 0' "$LEASE_MS"
  printf ' 1 1000000000 60000 0 0 4 1000000000000 1 0 0 1 5 1 2 3 4 5 %d' "$k"
  for i in $(seq 1 "$k"); do printf ' 120 400 1'; done
}
settle_args() {
  local k=$1 sha=$2
  printf 'EVALSHA %s 3 b:t:k b:l:k b:b:t 60000 0 %d 0 0 0' "$sha" "$LEASE_MS"
  printf ' 1 1 29400000 -%d 2 2 %d %d 3 3 %d %d' $((10 * k)) "$(bucket)" "$k" \
    $((400 * k)) $((350 * k))
}
# The lease bucket now on the private server (see `lease_bucket` in crates/core).
bucket() {
  local t
  t=$(redis-cli -p "$PORT" TIME | head -1)
  echo $((t * 1000 / (LEASE_MS / 8)))
}

# measure NAME SCRIPT ARGS_FUNCTION K: instructions per request of CALLS calls of K requests.
measure() {
  local name=$1 script=$2 args=$3 k=$4 sha pid total
  rm -f "$WORK"/cg.*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.%p" \
    redis-server --port "$PORT" --save "" --appendonly no >"$WORK/valgrind.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
  sha=$(redis-cli -p "$PORT" SCRIPT LOAD "$(cat "$LIMITS/shared.lua" "$LIMITS/$script")")
  # Leases to release, as a busy gateway has: the settle call's releases leave a count.
  if [ "$script" = settle.lua ]; then
    redis-cli -p "$PORT" HSET b:l:k "$(bucket)" 1000000000 >/dev/null
  fi
  # shellcheck disable=SC2046 # the arguments are words on purpose
  redis-benchmark -p "$PORT" -q -c 1 -n 100 -r 1000000000000 $($args "$k" "$sha") >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  # shellcheck disable=SC2046
  redis-benchmark -p "$PORT" -q -c 1 -n "$CALLS" -r 1000000000000 $($args "$k" "$sha") >/dev/null
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  total=$(cat "$WORK"/cg.* | awk '/^totals:/ { s += $2 } END { print s + 0 }')
  printf '%-8s batch %3d: %7d instructions per request\n' "$name" "$k" $((total / (CALLS * k)))
}

for k in $K; do
  measure acquire acquire.lua acquire_args "$k"
  measure settle settle.lua settle_args "$k"
done
