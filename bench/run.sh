#!/usr/bin/env bash
# Switchboard load benchmark: the mock upstream alone, nginx as a plain reverse proxy in front
# of it, and the gateway in front of it, measured in one run on loopback with wrk and curl.
# Prints a markdown table, writes bench/results/latest.{json,md}, and checks the targets:
#   throughput (gateway / nginx, concurrency 64) >= 0.7
#   added p50 latency (gateway p50 - mock p50, concurrency 8) <= 200 us
# PASS/FAIL is a report: the script exits 0 either way; it exits non-zero only when it could
# not run (build failure, a server that does not come up, a missing tool it cannot install).
# See bench/README.md for the knobs (environment variables) and how to read the numbers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
RESULTS_DIR="${RESULTS_DIR:-$BENCH/results}"

DURATION="${DURATION:-10}"              # seconds per measured wrk phase
WARMUP="${WARMUP:-2}"                   # seconds of discarded load before each target
CONNS="${CONNS:-64}"                    # concurrency of the throughput phase
LAT_CONNS="${LAT_CONNS:-8}"             # concurrency of the latency phase
TTFB_REQUESTS="${TTFB_REQUESTS:-200}"   # sequential streamed requests per target
STREAM_CHUNKS="${STREAM_CHUNKS:-20}"    # content chunks per streamed answer
CHUNK_DELAY_MS="${CHUNK_DELAY_MS:-1}"   # pause between streamed chunks
ROUNDS="${ROUNDS:-1}"                   # repeat the wrk phases; the median is reported
# `vkey` is the same gateway process called with a virtual key of an app instead of the admin
# key: the key check (hash, cache, allow-list) is the only difference.
# `limits` is a second gateway process with a virtual key and every limit of issue 4 on: request,
# token and concurrency limits on the key, a monthly budget on the team (prices from the
# config), counters shared through Redis (BENCH_REDIS). The bench skips it if Redis is absent.
# `baseline` is the gateway built from another commit (BASELINE_BIN, e.g. the commit before a
# change), run with the same generated config: `gateway` vs `baseline` in one run says what the
# change costs. Left out when BASELINE_BIN is not set.
TARGETS="${TARGETS:-mock nginx gateway vkey limits}"
BASELINE_BIN="${BASELINE_BIN:-}"
BENCH_REDIS="${BENCH_REDIS:-redis://127.0.0.1:6379}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
MOCK_CMD="${MOCK_CMD:-$SWITCHBOARD_BIN mock-upstream}"
GATEWAY_RUST_LOG="${GATEWAY_RUST_LOG:-warn}"
READY_TIMEOUT="${READY_TIMEOUT:-20}"    # seconds to wait for a server's port

MIN_RPS_RATIO=0.7
MAX_ADDED_P50_US=200

ADMIN_KEY="sk-bench-$(date +%s)-$$"
CHAT_BODY='{"model":"bench","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":32}'
STREAM_BODY='{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":32}'

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "missing $*; install it with your package manager"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  command -v curl >/dev/null || apt_install curl ca-certificates
  # wrk: a Debian package (seconds to install); oha is not packaged in Debian and
  # `cargo install oha` compiles hundreds of crates, too slow for a one-command run.
  command -v wrk >/dev/null || apt_install wrk
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt_install nginx-light || apt_install nginx
  fi
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
  command -v awk >/dev/null || die "awk is required"
}

# ---------------------------------------------------------------- CPU pinning
# Two cores: every server on SERVER_CPU, the load generator on LOAD_CPU, so that wrk never
# steals cycles from the proxy under test. The mock shares the server core with the proxy in
# the nginx and gateway phases, the same way for both, so the ratio stays fair.
NCPU=$(nproc 2>/dev/null || echo 1)
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
  SERVER_CPU="${SERVER_CPU:-0}"
  LOAD_CPU="${LOAD_CPU:-1}"
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PINNING="servers on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU"
else
  PIN_SERVER=()
  PIN_LOAD=()
  PINNING="no pinning (taskset missing or fewer than 2 CPUs)"
fi

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] && [ -d "$WORK" ]; then
    mkdir -p "$RESULTS_DIR/logs"
    cp "$WORK"/*.log "$RESULTS_DIR/logs/" 2>/dev/null || true
    log "server logs copied to $RESULTS_DIR/logs/"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: random, checked by trying to connect (bash's /dev/tcp).
USED_PORTS=" "
# redis_up: whether BENCH_REDIS answers PING (bash's /dev/tcp; no redis-cli needed).
redis_up() {
  local hostport=${BENCH_REDIS#redis://} host port
  hostport=${hostport%%/*}
  host=${hostport%%:*}
  port=${hostport##*:}
  [ "$port" = "$host" ] && port=6379
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'PING\\r\\n' >&3 && head -c 5 <&3 | grep -q PONG" 2>/dev/null
}

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 40000 ))
    case "$USED_PORTS" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      USED_PORTS="$USED_PORTS$port "
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found"
}

# wait_ready NAME PID URL: poll until the URL answers (any HTTP status), bounded.
wait_ready() {
  local name=$1 pid=$2 url=$3 deadline=$(( SECONDS + READY_TIMEOUT ))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || die "$name exited during startup (see $WORK/$name.log):
$(tail -n 20 "$WORK/$name.log" 2>/dev/null)"
    if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.1
  done
  die "$name did not answer on $url within ${READY_TIMEOUT}s:
$(tail -n 20 "$WORK/$name.log" 2>/dev/null)"
}

start_mock() {
  MOCK_PORT=$(free_port)
  # shellcheck disable=SC2086 # MOCK_CMD is a command line on purpose
  "${PIN_SERVER[@]}" $MOCK_CMD --listen "127.0.0.1:$MOCK_PORT" --chunks "$STREAM_CHUNKS" \
    --chunk-delay-ms "$CHUNK_DELAY_MS" --latency-ms 0 >"$WORK/mock.log" 2>&1 &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  wait_ready mock "$MOCK_PID" "http://127.0.0.1:$MOCK_PORT/healthz"
  URL[mock]="http://127.0.0.1:$MOCK_PORT"
  PID[mock]=$MOCK_PID
}

start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<EOF
# Generated by bench/run.sh: a plain reverse proxy, tuned the way an operator would.
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    tcp_nodelay on;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
  "$NGINX_BIN" -t -q -e "$WORK/nginx.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
    >>"$WORK/nginx-stdout.log" 2>&1 \
    || die "nginx rejected its config: $(tail -n 5 "$WORK/nginx-stdout.log" "$WORK/nginx.log")"
  "${PIN_SERVER[@]}" "$NGINX_BIN" -e "$WORK/nginx.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
    >>"$WORK/nginx-stdout.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_ready nginx "$pid" "http://127.0.0.1:$port/healthz"
  URL[nginx]="http://127.0.0.1:$port"
  PID[nginx]=$pid
}

# start_gateway NAME [EXTRA_YAML] [BINARY]: a gateway process with its own database file.
start_gateway() {
  local name=${1:-gateway} extra=${2:-} bin=${3:-$SWITCHBOARD_BIN} port
  port=$(free_port)
  cat >"$WORK/$name.yaml" <<EOF
# Generated by bench/run.sh: one OpenAI-compatible provider (the mock), one model.
listen: 127.0.0.1:$port
database: sqlite://$WORK/$name.db
admin_key: \${SWITCHBOARD_ADMIN_KEY}
providers:
  mock: { type: openai, base_url: "http://127.0.0.1:$MOCK_PORT/v1", api_key: "sk-upstream-bench" }
models:
  bench:
    targets: [ { provider: mock, model: bench-upstream } ]
    price: { input_per_mtok: 2.50, output_per_mtok: 10.00 }
$extra
EOF
  (cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$ADMIN_KEY" RUST_LOG="$GATEWAY_RUST_LOG" \
    exec "${PIN_SERVER[@]}" "$bin" serve --config "$WORK/$name.yaml" \
    >"$WORK/$name.log" 2>&1) &
  local pid=$!
  PIDS+=("$pid")
  wait_ready "$name" "$pid" "http://127.0.0.1:$port/healthz"
  URL[$name]="http://127.0.0.1:$port"
  PID[$name]=$pid
}

# The `limits` gateway: limits high enough never to refuse, so that the benchmark measures
# what checking and settling them costs. Each run uses its own rule names (fresh counters).
start_limits_gateway() {
  local run="b$(date +%s)"
  start_gateway limits "redis: $BENCH_REDIS
rate_limits:
  - { name: $run-key, scope: key, requests_per_second: 1000000, tokens_per_minute: 1000000000000, concurrent: 100000 }
  - { name: $run-team, scope: team, match: { org: bench, team: load }, requests_per_minute: 1000000000 }
budgets:
  - { name: $run-budget, scope: team, match: { org: bench, team: load }, period: month, usd: 1000000, action: block, alert_at: [0.5, 0.8, 1.0] }"
}

# make_virtual_key TARGET GATEWAY: a virtual key of an app allowed to call `bench`, made
# through GATEWAY's admin API; requests to TARGET go to GATEWAY with it.
make_virtual_key() {
  local target=$1 gateway=$2 base out
  base=${URL[$gateway]}/admin/v1
  admin_post() {
    curl -s --max-time 10 -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
      -d "$2" "$base$1"
  }
  admin_post /orgs '{"name":"bench"}' >/dev/null
  admin_post /orgs/bench/teams '{"name":"load"}' >/dev/null
  admin_post /orgs/bench/teams/load/apps '{"name":"wrk","models":["bench"]}' >/dev/null
  out=$(admin_post /orgs/bench/keys '{"team":"load","app":"wrk","name":"bench"}')
  VKEY=$(printf '%s' "$out" | sed -n 's/.*"secret":"\(sk-sb-[A-Za-z0-9_-]*\)".*/\1/p')
  [ -n "$VKEY" ] || die "could not create a virtual key: $out"
  URL[$target]=${URL[$gateway]}
  PID[$target]=${PID[$gateway]}
  TOKEN[$target]=$VKEY
}

# ---------------------------------------------------------------- measurements
declare -A URL PID R TOKEN

# token NAME: the credential requests to NAME carry.
token() { echo "${TOKEN[$1]:-$ADMIN_KEY}"; }

# check_target NAME: one request of each kind must succeed before load is worth measuring.
check_target() {
  local name=$1 out
  out=$(curl -s --max-time 10 -H "Authorization: Bearer $(token "$name")" \
    -H 'Content-Type: application/json' -d "$CHAT_BODY" "${URL[$name]}/v1/chat/completions" \
    -w '\n%{http_code}') || die "$name: request failed"
  if [ "${out##*$'\n'}" != 200 ] || [[ "$out" != *'"chat.completion"'* ]]; then
    die "$name: /v1/chat/completions did not answer 200 with a chat.completion:
$out"
  fi
  out=$(curl -s --max-time 10 -H "Authorization: Bearer $(token "$name")" \
    -H 'Content-Type: application/json' -d "$STREAM_BODY" "${URL[$name]}/v1/chat/completions")
  [[ "$out" == *'data: [DONE]'* ]] || die "$name: the stream did not end with [DONE]:
$out"
}

# wrk_phase NAME PHASE CONNS SECONDS: run wrk and store its RESULT fields in R[NAME.PHASE.*].
wrk_phase() {
  local name=$1 phase=$2 conns=$3 secs=$4 line kv
  line=$(BENCH_TOKEN="$(token "$name")" BENCH_BODY="$CHAT_BODY" "${PIN_LOAD[@]}" wrk -t1 -c"$conns" \
    -d"${secs}s" --timeout 5s -s "$BENCH/wrk-post.lua" "${URL[$name]}/v1/chat/completions" \
    | grep '^RESULT ') || die "$name: wrk produced no result"
  for kv in ${line#RESULT }; do R[$name.$phase.${kv%%=*}]=${kv#*=}; done
}

# ttfb_phase NAME: sequential streamed requests over one keep-alive connection; curl's
# time_starttransfer is the time to the first response byte.
ttfb_phase() {
  local name=$1 args=() i
  for i in $(seq 1 "$TTFB_REQUESTS"); do args+=(-o /dev/null "${URL[$name]}/v1/chat/completions"); done
  "${PIN_LOAD[@]}" curl -s -H "Authorization: Bearer $(token "$name")" -H 'Content-Type: application/json' \
    -d "$STREAM_BODY" -w '%{http_code} %{time_starttransfer} %{time_total}\n' "${args[@]}" \
    >"$WORK/ttfb-$name.txt" || die "$name: curl failed during the TTFB phase"
  R[$name.ttfb.errors]=$(awk '$1 != 200' "$WORK/ttfb-$name.txt" | wc -l)
  R[$name.ttfb.p50_us]=$(awk '{print $2 * 1e6}' "$WORK/ttfb-$name.txt" | sort -n | pct 50)
  R[$name.ttfb.p99_us]=$(awk '{print $2 * 1e6}' "$WORK/ttfb-$name.txt" | sort -n | pct 99)
  R[$name.ttfb.total_p50_us]=$(awk '{print $3 * 1e6}' "$WORK/ttfb-$name.txt" | sort -n | pct 50)
}

# pct P: the P-th percentile (nearest rank) of sorted numbers on stdin, as an integer.
pct() { awk -v p="$1" '{v[NR]=$1} END {i=int((p/100)*NR+0.999999); if(i<1)i=1; if(i>NR)i=NR; printf "%d", v[i]}'; }

# median NAME PHASE METRIC: the median over the rounds of R[NAME.PHASE#ROUND.METRIC].
median() {
  local i
  for i in $(seq 1 "$ROUNDS"); do echo "${R[$1.$2#$i.$3]}"; done | sort -g \
    | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}

# sum NAME PHASE METRIC: the sum over the rounds.
sum() {
  local i total=0
  for i in $(seq 1 "$ROUNDS"); do total=$(( total + ${R[$1.$2#$i.$3]} )); done
  echo "$total"
}

# Phases run interleaved (all targets' throughput, then all targets' latency, each ROUNDS
# times) so that a change in background load hits every target alike, not one of them.
measure_all() {
  local name round phase metric
  for name in $TARGETS; do
    log "$name: checking answers, warm-up ${WARMUP}s at concurrency $CONNS"
    check_target "$name"
    wrk_phase "$name" warmup "$CONNS" "$WARMUP"
  done
  for round in $(seq 1 "$ROUNDS"); do
    for name in $TARGETS; do
      log "$name: throughput ${DURATION}s at concurrency $CONNS (round $round/$ROUNDS)"
      wrk_phase "$name" "rps#$round" "$CONNS" "$DURATION"
    done
  done
  for round in $(seq 1 "$ROUNDS"); do
    for name in $TARGETS; do
      log "$name: latency ${DURATION}s at concurrency $LAT_CONNS (round $round/$ROUNDS)"
      wrk_phase "$name" "lat#$round" "$LAT_CONNS" "$DURATION"
      # One request at a time: no queueing on the shared server core, so this is the latency
      # a proxy adds by itself (at concurrency 8 the servers are saturated and p50 is mostly
      # 8 x the CPU each request costs).
      log "$name: unloaded latency ${DURATION}s at concurrency 1 (round $round/$ROUNDS)"
      wrk_phase "$name" "one#$round" 1 "$DURATION"
    done
  done
  for name in $TARGETS; do
    log "$name: time to first byte over $TTFB_REQUESTS sequential streamed requests"
    ttfb_phase "$name"
  done
  for name in $TARGETS; do
    for phase in rps lat one; do
      for metric in rps p50_us p90_us p99_us; do
        R[$name.$phase.$metric]=$(median "$name" "$phase" "$metric")
      done
      R[$name.$phase.errors]=0
      for metric in non2xx connect_err read_err write_err timeout_err; do
        R[$name.$phase.errors]=$(( ${R[$name.$phase.errors]} + $(sum "$name" "$phase" "$metric") ))
      done
    done
    R[$name.errors]=$(( ${R[$name.rps.errors]} + ${R[$name.lat.errors]} + ${R[$name.one.errors]} + ${R[$name.ttfb.errors]} ))
  done
}

# calc EXPR: floating-point arithmetic via awk.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

# ---------------------------------------------------------------- run
main() {
  ensure_tools
  case " $TARGETS " in *" gateway "*|*" vkey "*|*" limits "*) NEED_GATEWAY=1 ;; *) NEED_GATEWAY=0 ;; esac
  if [ "$NEED_GATEWAY" -eq 1 ] || [ "$MOCK_CMD" = "$SWITCHBOARD_BIN mock-upstream" ]; then
    if [ "$SKIP_BUILD" != 1 ]; then
      log "cargo build --release -p switchboard"
      (cd "$ROOT" && cargo build --release -p switchboard) || die "the release build failed"
    fi
    [ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN"
  fi
  log "pinning: $PINNING; work dir $WORK"
  LOADAVG_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  if awk "BEGIN { exit !($LOADAVG_START > 0.5) }"; then
    log "warning: load average is $LOADAVG_START; other work on this machine will add noise"
  fi

  start_mock
  case " $TARGETS " in *" nginx "*) start_nginx ;; esac
  [ "$NEED_GATEWAY" -eq 1 ] && start_gateway gateway
  case " $TARGETS " in *" baseline "*)
    [ -x "$BASELINE_BIN" ] || die "target baseline needs BASELINE_BIN (a switchboard binary)"
    start_gateway baseline "" "$BASELINE_BIN" ;;
  esac
  case " $TARGETS " in *" vkey "*) make_virtual_key vkey gateway ;; esac
  case " $TARGETS " in *" limits "*)
    if redis_up; then
      start_limits_gateway
      make_virtual_key limits limits
    else
      log "warning: no Redis at $BENCH_REDIS; leaving out the limits target"
      TARGETS=$(printf '%s\n' $TARGETS | grep -vx limits | tr '\n' ' ')
    fi ;;
  esac
  measure_all
  if [ "$NEED_GATEWAY" -eq 1 ]; then
    R[gateway.rss_kib]=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[gateway]}/status")
  fi
  LOADAVG_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  report
}

report() {
  mkdir -p "$RESULTS_DIR"
  local md="$RESULTS_DIR/latest.md" json="$RESULTS_DIR/latest.json" name
  local when commit
  when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
  {
    echo "# Switchboard load benchmark"
    echo
    echo "$when, commit $commit, $NCPU CPUs ($(uname -m)), $PINNING."
    echo "wrk 1 thread, ${DURATION}s per phase, median of $ROUNDS round(s); streams: $STREAM_CHUNKS chunks, ${CHUNK_DELAY_MS} ms apart."
    echo "Load average before/after: $LOADAVG_START / $LOADAVG_END (the benchmark itself adds about 2)."
    echo
    echo "| target | req/s @$CONNS | p50 @$LAT_CONNS | p99 @$LAT_CONNS | p50 @1 | stream TTFB p50 | stream TTFB p99 | stream total p50 | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for name in $TARGETS; do
      printf '| %s | %.0f | %.0f µs | %.0f µs | %.0f µs | %d µs | %d µs | %d µs | %d |\n' "$name" \
        "${R[$name.rps.rps]}" "${R[$name.lat.p50_us]}" "${R[$name.lat.p99_us]}" "${R[$name.one.p50_us]}" \
        "${R[$name.ttfb.p50_us]}" "${R[$name.ttfb.p99_us]}" "${R[$name.ttfb.total_p50_us]}" \
        "${R[$name.errors]}"
    done
    echo
    for name in nginx gateway; do
      # Added latency is measured against the mock alone: only when both ran.
      [ -n "${R[$name.lat.p50_us]:-}" ] && [ -n "${R[mock.lat.p50_us]:-}" ] || continue
      R[$name.added_p50_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.lat.p50_us]} - ${R[mock.lat.p50_us]} }")
      R[$name.added_p99_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.lat.p99_us]} - ${R[mock.lat.p99_us]} }")
      R[$name.added_ttfb_p50_us]=$(( ${R[$name.ttfb.p50_us]} - ${R[mock.ttfb.p50_us]} ))
      R[$name.added_one_p50_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.one.p50_us]} - ${R[mock.one.p50_us]} }")
      echo "- $name adds p50 ${R[$name.added_p50_us]} µs, p99 ${R[$name.added_p99_us]} µs" \
        "at concurrency $LAT_CONNS; p50 ${R[$name.added_one_p50_us]} µs unloaded (concurrency 1);" \
        "stream TTFB p50 +${R[$name.added_ttfb_p50_us]} µs."
    done
    if [ -n "${R[baseline.rps.rps]:-}" ] && [ -n "${R[gateway.rps.rps]:-}" ]; then
      R[baseline_rps_ratio]=$(calc "${R[gateway.rps.rps]} / ${R[baseline.rps.rps]}")
      R[baseline_p50_ratio]=$(calc "${R[gateway.lat.p50_us]} / ${R[baseline.lat.p50_us]}")
      R[baseline_one_ratio]=$(calc "${R[gateway.one.p50_us]} / ${R[baseline.one.p50_us]}")
      echo "- gateway vs baseline ($BASELINE_BIN): throughput ${R[baseline_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[baseline_p50_ratio]}x, p50 @1 ${R[baseline_one_ratio]}x."
    fi
    if [ -n "${R[vkey.rps.rps]:-}" ] && [ -n "${R[gateway.rps.rps]:-}" ]; then
      R[vkey_rps_ratio]=$(calc "${R[vkey.rps.rps]} / ${R[gateway.rps.rps]}")
      R[vkey_p50_ratio]=$(calc "${R[vkey.lat.p50_us]} / ${R[gateway.lat.p50_us]}")
      echo "- virtual key vs admin key (same gateway): throughput ${R[vkey_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[vkey_p50_ratio]}x (issue 3 allows at most 5% worse: >= 0.95x and <= 1.05x)."
    fi
    if [ -n "${R[limits.rps.rps]:-}" ] && [ -n "${R[vkey.rps.rps]:-}" ]; then
      R[limits_rps_ratio]=$(calc "${R[limits.rps.rps]} / ${R[vkey.rps.rps]}")
      R[limits_p50_ratio]=$(calc "${R[limits.lat.p50_us]} / ${R[vkey.lat.p50_us]}")
      echo "- limits, budget and Redis on vs virtual key alone: throughput ${R[limits_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[limits_p50_ratio]}x (issue 4 allows at most 10% less throughput: >= 0.90x)."
    fi
    if [ -n "${R[gateway.rss_kib]:-}" ]; then
      echo "- gateway peak RSS (VmHWM): $(( ${R[gateway.rss_kib]} / 1024 )) MiB."
    fi
    if [ -n "${R[gateway.rps.rps]:-}" ] && [ -n "${R[nginx.rps.rps]:-}" ]; then
      R[ratio]=$(calc "${R[gateway.rps.rps]} / ${R[nginx.rps.rps]}")
      echo "- throughput gateway / nginx: ${R[ratio]}."
      echo
      echo "| target | measured | required | verdict |"
      echo "| --- | ---: | ---: | --- |"
      R[verdict.rps]=$(awk "BEGIN { print (${R[ratio]} >= $MIN_RPS_RATIO) ? \"PASS\" : \"FAIL\" }")
      if [ -n "${R[gateway.added_p50_us]:-}" ]; then
        R[verdict.p50]=$(awk "BEGIN { print (${R[gateway.added_p50_us]} <= $MAX_ADDED_P50_US) ? \"PASS\" : \"FAIL\" }")
      else
        R[gateway.added_p50_us]="n/a"
        R[verdict.p50]="not measured (needs the mock target)"
      fi
      echo "| throughput gateway / nginx @$CONNS | ${R[ratio]}x | >= ${MIN_RPS_RATIO}x | ${R[verdict.rps]} |"
      echo "| added p50 latency @$LAT_CONNS | ${R[gateway.added_p50_us]} µs | <= ${MAX_ADDED_P50_US} µs | ${R[verdict.p50]} |"
      if [ "${R[gateway.errors]}" -ne 0 ]; then
        echo
        echo "WARNING: the gateway answered ${R[gateway.errors]} requests with errors; the numbers are not valid."
      fi
    fi
  } >"$md"
  cat "$md"
  {
    printf '{\n  "time": "%s",\n  "commit": "%s",\n  "cpus": %d,\n  "pinning": "%s",\n  "loadavg_start": %s,\n  "loadavg_end": %s,\n' \
      "$when" "$commit" "$NCPU" "$PINNING" "$LOADAVG_START" "$LOADAVG_END"
    printf '  "config": {"duration_s": %s, "concurrency": %s, "latency_concurrency": %s, "ttfb_requests": %s, "stream_chunks": %s, "chunk_delay_ms": %s, "rounds": %s},\n' \
      "$DURATION" "$CONNS" "$LAT_CONNS" "$TTFB_REQUESTS" "$STREAM_CHUNKS" "$CHUNK_DELAY_MS" "$ROUNDS"
    printf '  "targets": {\n'
    local first=1
    for name in $TARGETS; do
      [ "$first" -eq 1 ] || printf ',\n'
      first=0
      printf '    "%s": {"rps": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "ttfb_p50_us": %s, "ttfb_p99_us": %s, "stream_total_p50_us": %s, "unloaded_p50_us": %s, "errors": %s' \
        "$name" "${R[$name.rps.rps]}" "${R[$name.lat.p50_us]}" "${R[$name.lat.p90_us]}" \
        "${R[$name.lat.p99_us]}" "${R[$name.ttfb.p50_us]}" "${R[$name.ttfb.p99_us]}" \
        "${R[$name.ttfb.total_p50_us]}" "${R[$name.one.p50_us]}" "${R[$name.errors]}"
      [ -z "${R[$name.added_p50_us]:-}" ] || printf ', "added_p50_us": %s, "added_p99_us": %s, "added_unloaded_p50_us": %s, "added_ttfb_p50_us": %s' \
        "${R[$name.added_p50_us]}" "${R[$name.added_p99_us]}" "${R[$name.added_one_p50_us]}" "${R[$name.added_ttfb_p50_us]}"
      [ "$name" != gateway ] || [ -z "${R[gateway.rss_kib]:-}" ] || printf ', "peak_rss_kib": %s' "${R[gateway.rss_kib]}"
      printf '}'
    done
    printf '\n  }'
    if [ -n "${R[ratio]:-}" ]; then
      printf ',\n  "targets_check": {"rps_ratio": %s, "rps_ratio_min": %s, "rps_verdict": "%s", "added_p50_us": %s, "added_p50_max_us": %s, "p50_verdict": "%s", "valid": %s}' \
        "${R[ratio]}" "$MIN_RPS_RATIO" "${R[verdict.rps]}" "${R[gateway.added_p50_us]}" \
        "$MAX_ADDED_P50_US" "${R[verdict.p50]}" "$([ "${R[gateway.errors]}" -eq 0 ] && echo true || echo false)"
    fi
    printf '\n}\n'
  } >"$json"
  log "wrote $md and $json"
}

main "$@"
