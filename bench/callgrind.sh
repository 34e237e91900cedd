#!/usr/bin/env bash
# Instructions per request of the gateway, counted by valgrind's callgrind: the benchmark's
# request (an OpenAI chat completion through one `openai` provider to the mock upstream) sent
# REQUESTS-ish times over CONNS keep-alive connections, with collection switched on only after a
# warm-up, so that start-up and the first connections are not counted.
#
# Why instruction counts: on a shared 2-core machine wall-clock req/s moves by 10% or more with
# background load, while instructions per request move by well under 1%; they measure the
# user-space CPU of the gateway (not the kernel's loopback TCP, not the mock), which is the part
# that differs from nginx (see bench/README.md).
#
# Prints "instructions/request" and the top functions (inclusive and self), and keeps the raw
# profile in $OUT (default bench/results/callgrind.out) for callgrind_annotate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
SKIP_BUILD="${SKIP_BUILD:-0}"
CONNS="${CONNS:-8}"                 # wrk connections while collecting
SECONDS_ON="${SECONDS_ON:-20}"      # seconds of collection (the gateway runs ~50x slower)
WARMUP_S="${WARMUP_S:-5}"           # seconds of load before collection starts
OUT="${OUT:-$BENCH/results/callgrind.out}"
TOP="${TOP:-40}"                    # functions listed in the summary

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() { printf '[callgrind] error: %s\n' "$*" >&2; exit 1; }

for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install valgrind wrk curl)"
done
if [ "$SKIP_BUILD" != 1 ]; then
  (cd "$ROOT" && cargo build --release -p switchboard) || die "the release build failed"
fi
[ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-callgrind.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ "$status" -eq 0 ] || { log "logs:"; tail -n 20 "$WORK"/*.log >&2 || true; }
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { echo $(( 20000 + RANDOM % 40000 )); }
wait_ready() {
  local url=$1
  for _ in $(seq 1 600); do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  die "$url did not answer"
}

# Pinning the gateway to one CPU makes it pick the current-thread runtime, as in bench/run.sh.
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c 0)

MOCK_PORT=$(port)
"$SWITCHBOARD_BIN" mock-upstream --listen "127.0.0.1:$MOCK_PORT" --chunks 20 --chunk-delay-ms 1 \
  --latency-ms 0 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$MOCK_PORT/healthz"

GW_PORT=$(port)
KEY="sk-callgrind-$$"
# LIMITS=1: the `on` config of bench/perf.sh (CONFIG=on, bench/lib.sh): a per-key
# rps/tpm/concurrency rule, a team rpm rule and a monthly team budget with alerts, shared through
# Redis at $BENCH_REDIS. Only a virtual key is subject to them, so LIMITS=1 implies VKEY=1.
EXTRA=""
if [ "${LIMITS:-0}" = 1 ]; then
  VKEY=1
  EXTRA=$(bench_limits_yaml "callgrind$(date +%s)" "${BENCH_REDIS:-redis://127.0.0.1:6379}")
fi
# METADATA=0: the call log's own columns off (`logging.metadata: false`, run.sh's `off`): the
# rows keep the usage record only. Against the default, what the call log's metadata costs.
if [ "${METADATA:-1}" = 0 ]; then
  EXTRA="$EXTRA
logging: { metadata: false }"
fi
bench_gateway_yaml "$GW_PORT" "sqlite://$WORK/switchboard.db" "$MOCK_PORT" "$EXTRA" >"$WORK/switchboard.yaml"
# FLOOR=1: count run.sh's `floor` target instead (the pass-through proxy of
# crates/server/examples/hyper_floor.rs at FLOOR_BIN): what the HTTP stack alone costs.
SERVE=("$SWITCHBOARD_BIN" serve --config "$WORK/switchboard.yaml")
if [ "${FLOOR:-0}" = 1 ]; then
  # The floor passes every request to the mock: there is no admin API to make a key through.
  [ "${VKEY:-0}" != 1 ] || die "FLOOR=1 cannot be combined with VKEY=1 or LIMITS=1"
  FLOOR_BIN="${FLOOR_BIN:-$ROOT/target/release/examples/hyper_floor}"
  if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p switchboard --example hyper_floor) || die "build failed"
  fi
  SERVE=("$FLOOR_BIN" "127.0.0.1:$GW_PORT" "127.0.0.1:$MOCK_PORT")
  # LEDGER=1: run.sh's `floor-ledger`, the floor writing each request's usage row to SQLite.
  if [ "${LEDGER:-0}" = 1 ]; then SERVE+=("sqlite://$WORK/switchboard.db"); fi
fi
(cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$KEY" RUST_LOG=warn exec "${PIN[@]}" valgrind \
  --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  "${SERVE[@]}" >"$WORK/gateway.log" 2>&1) &
GW_PID=$!
PIDS+=("$GW_PID")
wait_ready "http://127.0.0.1:$GW_PORT/healthz"

# VKEY=1: call with a virtual key of an app (made through the admin API before instrumentation
# starts) instead of the admin key, to measure the key check's cost.
TOKEN=$KEY
if [ "${VKEY:-0}" = 1 ]; then
  TOKEN=$(bench_virtual_key "http://127.0.0.1:$GW_PORT" "$KEY") || die "could not create a virtual key"
  log "using a virtual key"
fi

run_wrk() {
  BENCH_TOKEN="$TOKEN" wrk -t1 -c"$CONNS" -d"${1}s" --timeout 10s -s "$BENCH/wrk-post.lua" \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" | grep '^RESULT '
}

log "warm-up ${WARMUP_S}s"
run_wrk "$WARMUP_S" >/dev/null
callgrind_control -i on "$GW_PID" >/dev/null
log "collecting ${SECONDS_ON}s at concurrency $CONNS"
RESULT=$(run_wrk "$SECONDS_ON")
callgrind_control -i off "$GW_PID" >/dev/null
callgrind_control -d "$GW_PID" >/dev/null
sleep 1

REQUESTS=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$RESULT")
ERRORS=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^(non2xx|read_err|write_err|timeout_err)=/) { split($i, kv, "="); s += kv[2] }} END {print s + 0}' <<<"$RESULT")
[ "${REQUESTS:-0}" -gt 0 ] || die "no requests completed: $RESULT"
[ "$ERRORS" -eq 0 ] || die "the gateway answered with errors: $RESULT"

# The dump is written next to the output file name with a suffix per dump.
DUMP=$(ls -t "$WORK"/callgrind.out* | head -n 1)
mkdir -p "$(dirname "$OUT")"
cp "$DUMP" "$OUT"
TOTAL=$(awk '/^totals:/ {print $2; exit}' "$OUT")
log "requests $REQUESTS, instructions $TOTAL"
echo "instructions/request: $(( TOTAL / REQUESTS )) ($REQUESTS requests, CONNS=$CONNS)"
echo
echo "## inclusive"
# `head` closes the pipe early: under pipefail that is not a failure of the run.
{ callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$OUT" 2>/dev/null | sed -n '/^Ir/,$p' | head -n "$TOP"; } || true
echo
echo "## self"
{ callgrind_annotate --auto=no --threshold=100 "$OUT" 2>/dev/null | sed -n '/^Ir/,$p' | head -n "$TOP"; } || true
