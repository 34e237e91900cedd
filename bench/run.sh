#!/usr/bin/env bash
# Switchboard load benchmark (issue 7): the mock upstream alone, nginx as a plain reverse proxy
# in front of it, and the gateway in front of it with everything off (`off`) and everything on
# (`on`: virtual key, request/token/concurrency limits, a budget, Redis, the call log in SQLite,
# metrics; `on-pg`: the same with Postgres), measured side by side in one run on loopback with
# wrk and curl. Phases: throughput at concurrency 64 with the server's CPU time per request,
# closed-loop latency at concurrency 8 and 1, open-loop latency at half each proxy's maximum
# rate (mock and nginx measured at the same rate, pair by pair), streaming TTFB and whole-stream
# time, peak and steady RSS, and a soak (SOAK_SECS, default 600) at half the maximum rate with
# RSS sampled every SOAK_SAMPLE_SECS. Prints a markdown table, writes
# bench/results/latest.{json,md}, and checks issue 7's targets (PASS/FAIL with the distance).
# PASS/FAIL is a report: the script exits 0 either way; it exits non-zero only when it could
# not run (build failure, a server that does not come up, a missing tool it cannot install).
# See bench/README.md for the knobs (environment variables) and how to read the numbers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
RESULTS_DIR="${RESULTS_DIR:-$BENCH/results}"

# QUICK=1 shortens every phase (development only: the numbers are not worth reporting).
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  : "${DURATION:=3}" "${WARMUP:=1}" "${TTFB_REQUESTS:=50}" "${SOAK_SECS:=20}" "${SOAK_SAMPLE_SECS:=2}"
fi
DURATION="${DURATION:-10}"              # seconds per measured wrk phase
WARMUP="${WARMUP:-2}"                   # seconds of discarded load before each target
CONNS="${CONNS:-64}"                    # concurrency of the throughput phase
LAT_CONNS="${LAT_CONNS:-8}"             # concurrency of the latency phase
TTFB_REQUESTS="${TTFB_REQUESTS:-200}"   # sequential streamed requests per target
STREAM_CHUNKS="${STREAM_CHUNKS:-20}"    # content chunks per streamed answer
CHUNK_DELAY_MS="${CHUNK_DELAY_MS:-1}"   # pause between streamed chunks
ROUNDS="${ROUNDS:-1}"                   # repeat the wrk phases; the median is reported
OPEN_FRACTION="${OPEN_FRACTION:-0.5}"   # open-loop rate as a fraction of the measured maximum
OPEN_WINDOW_MS="${OPEN_WINDOW_MS:-10}"  # open-loop connections = rate x this window (min 8)
OPEN_GEN="${OPEN_GEN:-auto}"            # open-loop generator: auto (c if it builds), c, wrk
SOAK_SECS="${SOAK_SECS:-600}"           # soak length (0: no soak)
SOAK_SAMPLE_SECS="${SOAK_SAMPLE_SECS:-10}" # RSS sampling period during the soak
SOAK_TARGETS="${SOAK_TARGETS:-on}"      # which targets get a soak (each at half its own maximum)
# Targets (see bench/README.md):
# `off` is the gateway with everything that can be switched off switched off: the admin key, no
# limits, no Redis, no bodies logged, the call log's own columns off (`logging.metadata: false`).
# Each request's usage record (a row of usage_records: billing data, always written) still goes
# to a SQLite file in the run's temp dir.
# `on` is a gateway with everything on: a virtual key, per-key request, token and concurrency
# limits, a team request limit, a monthly team budget with alerts, counters in Redis (a private
# redis-server the run starts on the load generator's core, as a separate server would be in a
# deployment, or BENCH_REDIS as given), the default call log (metadata, no bodies) in SQLite,
# metrics.
# `on-pg` is `on` with `database:` a fresh Postgres database created in BENCH_POSTGRES's server
# and dropped at the end.
# `gateway` (`off` with the default call log: metadata on), `vkey` (the `gateway` process called
# with a virtual key) and `limits` (same config as `on`) are the targets of issues 2-4, kept for
# comparisons; `gateway` against `off` is issue 5's logging on against logging off.
# `floor` is crates/server/examples/hyper_floor.rs: a pass-through reverse proxy on the gateway's
# own crates and server setup (tokio's current-thread runtime, hyper-util's connection builder
# with the header-read timer, hyper's HTTP/1.1 client, mimalloc) that does nothing else: no JSON, no routing, no usage record. What it costs a request is what any
# gateway on this stack pays before its own work; `off` minus `floor` is the gateway's own work.
# `floor-ledger` is `floor` writing each request's usage row (the `off` target's row, through the
# gateway's usage queue and writer) to a SQLite file in the run's temp dir: what the billing row
# costs the serving core, without any of the gateway's other work.
# `baseline` is the gateway built from another commit (BASELINE_BIN, e.g. the commit before a
# change), run with `gateway`'s config: `gateway` vs `baseline` in one run says what the
# change costs.
TARGETS="${TARGETS:-mock nginx off on on-pg}"
BASELINE_BIN="${BASELINE_BIN:-}"
BENCH_REDIS="${BENCH_REDIS:-}"         # empty: a private redis-server on the load core (see below)
BENCH_POSTGRES="${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
FLOOR_BIN="${FLOOR_BIN:-$ROOT/target/release/examples/hyper_floor}"
MOCK_CMD="${MOCK_CMD:-$SWITCHBOARD_BIN mock-upstream}"
GATEWAY_RUST_LOG="${GATEWAY_RUST_LOG:-warn}"
READY_TIMEOUT="${READY_TIMEOUT:-20}"    # seconds to wait for a server's port
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# `off`'s logging: rows keep the usage record only.
LOGGING_OFF_YAML="logging: { metadata: false }"
# Issue 5's bounds: logging on (`gateway`) against logging off (`off`), pair by pair.
MIN_LOG_RPS_RATIO=0.95
MAX_LOG_P50_RATIO=1.05
# Issue 2's targets, checked for the `gateway` target when it runs.
MIN_RPS_RATIO=0.7
MAX_ADDED_P50_US=200
# Issue 7's targets, checked for `on` and `on-pg`.
T7_MIN_RPS_RATIO=0.8          # req/s at concurrency 64 / nginx's
T7_MAX_OPEN_P50_US=100        # added p50 at half the maximum rate (vs the mock at that rate)
T7_MAX_OPEN_P99_US=1000       # added p99 at half the maximum rate
T7_MAX_TTFB_US=500            # added stream TTFB p50 (vs the mock)
T7_MAX_CPU_US=25              # gateway CPU (user + system) per request in the throughput phase
T7_MAX_RSS_MB=100             # peak RSS in MB (10^6 bytes)
T7_MAX_SOAK_DRIFT=0.10        # |RSS after soak / RSS after warm-up - 1|

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
  if [ -n "${PG_DB:-}" ]; then
    psql "$BENCH_POSTGRES" -XAtqc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
      || log "warning: could not drop database $PG_DB"
  fi
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
    # Below Linux's ephemeral range (32768-60999): a port there may be the local end of an
    # outgoing connection (the load generator's, the gateway's upstream pool) and fail to bind.
    port=$(( 20000 + RANDOM % 12000 ))
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
        # More idle upstream connections than the open-loop phase opens client connections
        # (rate x 10 ms): with 128, nginx closed and reopened upstream connections at 34k req/s
        # and every request waited ~100 ms (the gateway's pool has no such cap).
        keepalive 1024;
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

# start_floor NAME [LEDGER_URL]: the pass-through proxy of the `floor` target (with a ledger
# database: `floor-ledger`), pinned like the other proxies. In the run's temp dir, as the
# gateways are: the usage writer imports (and deletes) spill files of its working directory.
start_floor() {
  local name=$1 port
  port=$(free_port)
  (cd "$WORK" && RUST_LOG="$GATEWAY_RUST_LOG" exec "${PIN_SERVER[@]}" "$FLOOR_BIN" \
    "127.0.0.1:$port" "127.0.0.1:$MOCK_PORT" ${2:+"$2"} >"$WORK/$name.log" 2>&1) &
  local pid=$!
  PIDS+=("$pid")
  wait_ready "$name" "$pid" "http://127.0.0.1:$port/healthz"
  URL[$name]="http://127.0.0.1:$port"
  PID[$name]=$pid
}

# start_gateway NAME [EXTRA_YAML] [BINARY] [DATABASE_URL]: a gateway process with its own
# database (a SQLite file in the work dir unless DATABASE_URL is given).
start_gateway() {
  local name=${1:-gateway} extra=${2:-} bin=${3:-$SWITCHBOARD_BIN} db=${4:-} port
  [ -n "$bin" ] || bin=$SWITCHBOARD_BIN
  [ -n "$db" ] || db="sqlite://$WORK/$name.db"
  port=$(free_port)
  {
    echo "# Generated by bench/run.sh: one OpenAI-compatible provider (the mock), one model."
    bench_gateway_yaml "$port" "$db" "$MOCK_PORT" "$extra"
  } >"$WORK/$name.yaml"
  (cd "$WORK" && SWITCHBOARD_ADMIN_KEY="$ADMIN_KEY" RUST_LOG="$GATEWAY_RUST_LOG" \
    exec "${PIN_SERVER[@]}" "$bin" serve --config "$WORK/$name.yaml" \
    >"$WORK/$name.log" 2>&1) &
  local pid=$!
  PIDS+=("$pid")
  wait_ready "$name" "$pid" "http://127.0.0.1:$port/healthz"
  URL[$name]="http://127.0.0.1:$port"
  PID[$name]=$pid
}

# limits_yaml NAME: the config of the `limits`, `on` and `on-pg` gateways: limits high enough
# never to refuse, so that the benchmark measures what checking and settling them costs. Each
# run and target uses its own rule names (fresh counters in the shared Redis).
limits_yaml() {
  bench_limits_yaml "b$(date +%s)-${1//[^a-z0-9]/}" "$BENCH_REDIS"
}

# postgres_up: whether psql can reach BENCH_POSTGRES.
postgres_up() {
  command -v psql >/dev/null || { log "warning: psql is not installed"; return 1; }
  timeout 5 psql "$BENCH_POSTGRES" -XAtqc 'select 1' >/dev/null 2>&1
}

# create_pg_db: a fresh database on BENCH_POSTGRES's server, dropped on exit; sets PG_DB and PG_URL.
PG_DB=""
create_pg_db() {
  PG_DB="sb_bench_$(date +%s)_$$"
  psql "$BENCH_POSTGRES" -XAtqc "CREATE DATABASE $PG_DB" >/dev/null \
    || die "could not create database $PG_DB in $BENCH_POSTGRES"
  local base=${BENCH_POSTGRES%%\?*} query=""
  [ "$base" = "$BENCH_POSTGRES" ] || query="?${BENCH_POSTGRES#*\?}"
  PG_URL="${base%/*}/$PG_DB$query"
}

# make_virtual_key TARGET GATEWAY: a virtual key of an app allowed to call `bench`, made
# through GATEWAY's admin API; requests to TARGET go to GATEWAY with it.
make_virtual_key() {
  local target=$1 gateway=$2 VKEY
  VKEY=$(bench_virtual_key "${URL[$gateway]}" "$ADMIN_KEY") || die "could not create a virtual key"
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

# wrk_run URL TOKEN CONNS SECONDS SCRIPT [RATE]: one wrk run on the load CPU; prints its
# RESULT line (empty when wrk failed).
wrk_run() {
  local url=$1 tok=$2 conns=$3 secs=$4 script=$5 rate=${6:-}
  BENCH_TOKEN="$tok" BENCH_BODY="$CHAT_BODY" BENCH_RATE="$rate" "${PIN_LOAD[@]}" wrk -t1 -c"$conns" \
    -d"${secs}s" --timeout 5s -s "$script" "$url/v1/chat/completions" | grep '^RESULT ' || true
}

# store KEY LINE: the fields of a RESULT line into R[KEY.*].
store() {
  local key=$1 line=$2 kv
  for kv in ${line#RESULT }; do R[$key.${kv%%=*}]=${kv#*=}; done
}

# wrk_phase NAME PHASE CONNS SECONDS: closed loop (as fast as CONNS connections go); the RESULT
# fields go to R[NAME.PHASE.*].
wrk_phase() {
  local name=$1 phase=$2 conns=$3 secs=$4 line
  line=$(wrk_run "${URL[$name]}" "$(token "$name")" "$conns" "$secs" "$BENCH/wrk-post.lua")
  [ -n "$line" ] || die "$name: wrk produced no result"
  store "$name.$phase" "$line"
}

# open_conns RATE: connections for an open-loop phase: OPEN_WINDOW_MS of requests (min 8).
open_conns() { awk -v r="$1" -v w="$OPEN_WINDOW_MS" 'BEGIN { c = int(r * w / 1000 + 0.999); if (c < 8) c = 8; if (c > 2000) c = 2000; print c }'; }

# open_run URL TOKEN CONNS SECONDS RATE: one open-loop run on the load CPU with the selected
# generator (OPEN_GEN: bench/openloop.c or wrk with bench/wrk-rate.lua); prints its RESULT line.
open_run() {
  local url=$1 tok=$2 conns=$3 secs=$4 rate=$5 hostport
  if [ "$OPEN_GEN" = c ]; then
    hostport=${url#http://}
    BENCH_TOKEN="$tok" BENCH_BODY="$CHAT_BODY" "${PIN_LOAD[@]}" "$WORK/openloop" "${hostport%:*}" "${hostport##*:}" \
      /v1/chat/completions "$rate" "$secs" "$conns" | grep '^RESULT ' || true
  else
    wrk_run "$url" "$tok" "$conns" "$secs" "$BENCH/wrk-rate.lua" "$rate"
  fi
}

# setup_open_gen: OPEN_GEN=auto picks bench/openloop.c when a C compiler builds it (even pacing,
# latency from the due time), else wrk + bench/wrk-rate.lua (1 ms bursts, latency from the send).
setup_open_gen() {
  local cc
  cc=$(command -v cc || command -v gcc || true)
  case "$OPEN_GEN" in
    auto|c)
      if [ -n "$cc" ] && "$cc" -O2 -o "$WORK/openloop" "$BENCH/openloop.c" 2>"$WORK/openloop-cc.log"; then
        OPEN_GEN=c
      elif [ "$OPEN_GEN" = c ]; then
        die "OPEN_GEN=c but bench/openloop.c does not build: $(head -n 5 "$WORK/openloop-cc.log" 2>/dev/null || echo "no C compiler")"
      else
        log "warning: no C compiler for bench/openloop.c; open-loop phases use wrk + bench/wrk-rate.lua (1 ms bursts)"
        OPEN_GEN=wrk
      fi ;;
    wrk) ;;
    *) die "OPEN_GEN must be auto, c or wrk" ;;
  esac
  if [ "$OPEN_GEN" = c ]; then
    OPEN_GEN_DESC="bench/openloop.c (evenly paced, latency from each request's due time)"
  else
    OPEN_GEN_DESC="wrk + bench/wrk-rate.lua (1 ms bursts, latency from the send)"
  fi
}

# open_phase KEY TARGET RATE SECONDS: open loop at RATE req/s against TARGET; the RESULT fields
# go to R[KEY.*], with R[KEY.rate] and R[KEY.conns].
open_phase() {
  local key=$1 target=$2 rate=$3 secs=$4 conns line
  conns=$(open_conns "$rate")
  line=$(open_run "${URL[$target]}" "$(token "$target")" "$conns" "$secs" "$rate")
  [ -n "$line" ] || die "$target: wrk (open loop, $rate req/s) produced no result"
  store "$key" "$line"
  R[$key.rate]=$rate
  R[$key.conns]=$conns
}

# proc_pids PID: PID and its children (nginx's worker), the processes a server's numbers sum.
proc_pids() { echo "$1"; pgrep -P "$1" 2>/dev/null || true; }

# cpu_ticks PID: user + system clock ticks of PID and its children so far (fields 14 and 15 of
# /proc/PID/stat; all threads of a process are included).
cpu_ticks() {
  local p total=0 t
  for p in $(proc_pids "$1"); do
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
    total=$(( total + ${t:-0} ))
  done
  echo "$total"
}

# status_kib PID FIELD: a /proc/PID/status memory field (VmRSS, VmHWM) summed over PID and
# its children, in KiB.
status_kib() {
  local p total=0 v
  for p in $(proc_pids "$1"); do
    v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

# is_proxy NAME: every target but the mock is measured in front of it.
is_proxy() { [ "$1" != mock ]; }

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

# ratio_median X Y PHASE METRIC: the median over the rounds of X's METRIC / Y's METRIC, each
# round's pair measured back to back ("pair by pair").
ratio_median() {
  local i
  for i in $(seq 1 "$ROUNDS"); do
    awk -v a="${R[$1.$3#$i.$4]}" -v b="${R[$2.$3#$i.$4]}" 'BEGIN { if (b > 0) printf "%.4f\n", a / b }'
  done | sort -g | awk 'NR { v[NR]=$1 } END { if (NR) printf "%.3f", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}

# diff_median KEY_A KEY_B METRIC: the median over the rounds of R[KEY_A#i.METRIC] - R[KEY_B#i.METRIC].
diff_median() {
  local i
  for i in $(seq 1 "$ROUNDS"); do
    awk -v a="${R[$1#$i.$3]}" -v b="${R[$2#$i.$3]}" 'BEGIN { printf "%.1f\n", a - b }'
  done | sort -g | awk '{ v[NR]=$1 } END { printf "%.0f", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}

# errors_of KEY: non-2xx answers and socket errors of one wrk result.
errors_of() {
  local m total=0
  for m in non2xx connect_err read_err write_err timeout_err; do total=$(( total + ${R[$1.$m]:-0} )); done
  echo "$total"
}

# soak_phase NAME: SOAK_SECS of open-loop load at half NAME's maximum rate, RSS sampled every
# SOAK_SAMPLE_SECS ("seconds:KiB" pairs in R[NAME.soak.samples]).
soak_phase() {
  local name=$1 rate=${R[$1.open_rate]} conns pid=${PID[$1]} start samples t out
  conns=$(open_conns "$rate")
  out="$WORK/soak-$name.txt"
  log "$name: soak ${SOAK_SECS}s at $rate req/s ($conns connections), RSS every ${SOAK_SAMPLE_SECS}s"
  open_run "${URL[$name]}" "$(token "$name")" "$conns" "$SOAK_SECS" "$rate" >"$out" 2>&1 &
  local wpid=$!
  PIDS+=("$wpid")
  start=$SECONDS
  samples="0:$(status_kib "$pid" VmRSS)"
  while kill -0 "$wpid" 2>/dev/null; do
    sleep "$SOAK_SAMPLE_SECS"
    kill -0 "$wpid" 2>/dev/null || break
    t=$(( SECONDS - start ))
    samples="$samples $t:$(status_kib "$pid" VmRSS)"
  done
  wait "$wpid" || die "$name: the load generator failed during the soak: $(tail -n 5 "$out")"
  sleep 1 # let the last batches settle before the final sample
  R[$name.rss_soak_end_kib]=$(status_kib "$pid" VmRSS)
  samples="$samples $(( SECONDS - start )):${R[$name.rss_soak_end_kib]}"
  R[$name.soak.samples]=$samples
  R[$name.soak.rate]=$rate
  R[$name.soak.conns]=$conns
  local line
  line=$(grep '^RESULT ' "$out") || die "$name: the load generator produced no result during the soak"
  store "$name.soak" "$line"
  R[$name.soak.errors]=$(errors_of "$name.soak")
}

# Phases run interleaved (all targets' throughput, then all targets' latency, each ROUNDS
# times) so that a change in background load hits every target alike, not one of them.
measure_all() {
  local name round phase metric t0 t1 rate
  for name in $TARGETS; do
    log "$name: checking answers, warm-up ${WARMUP}s at concurrency $CONNS"
    check_target "$name"
    wrk_phase "$name" warmup "$CONNS" "$WARMUP"
    R[$name.rss_warm_kib]=$(status_kib "${PID[$name]}" VmRSS)
  done
  for round in $(seq 1 "$ROUNDS"); do
    for name in $TARGETS; do
      log "$name: throughput ${DURATION}s at concurrency $CONNS (round $round/$ROUNDS)"
      t0=$(cpu_ticks "${PID[$name]}")
      wrk_phase "$name" "rps#$round" "$CONNS" "$DURATION"
      t1=$(cpu_ticks "${PID[$name]}")
      R[$name.rps#$round.cpu_us]=$(awk -v d=$(( t1 - t0 )) -v hz="$CLK_TCK" -v n="${R[$name.rps#$round.requests]}" \
        'BEGIN { printf "%.2f", (n > 0) ? d * 1e6 / hz / n : 0 }')
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
    for phase in rps lat one; do
      for metric in rps p50_us p90_us p99_us; do
        R[$name.$phase.$metric]=$(median "$name" "$phase" "$metric")
      done
      R[$name.$phase.errors]=0
      for metric in non2xx connect_err read_err write_err timeout_err; do
        R[$name.$phase.errors]=$(( ${R[$name.$phase.errors]} + $(sum "$name" "$phase" "$metric") ))
      done
    done
    R[$name.rps.cpu_us]=$(median "$name" rps cpu_us)
    # Open loop at OPEN_FRACTION of this target's own maximum (its median throughput).
    R[$name.open_rate]=$(awk -v r="${R[$name.rps.rps]}" -v f="$OPEN_FRACTION" 'BEGIN { printf "%d", r * f }')
  done
  # Open loop: for each proxy X, the mock alone, nginx and X at X's half rate, back to back,
  # so that "added latency at half the maximum rate" compares the same offered load.
  for round in $(seq 1 "$ROUNDS"); do
    for name in $TARGETS; do
      is_proxy "$name" || continue
      rate=${R[$name.open_rate]}
      log "$name: open loop ${DURATION}s at $rate req/s ($(open_conns "$rate") connections): mock$([ "$name" = nginx ] || ! has nginx || echo ", nginx"), $name (round $round/$ROUNDS)"
      open_phase "$name.openmock#$round" mock "$rate" "$DURATION"
      if [ "$name" != nginx ] && [ -n "${URL[nginx]:-}" ]; then
        open_phase "$name.openngx#$round" nginx "$rate" "$DURATION"
      fi
      open_phase "$name.open#$round" "$name" "$rate" "$DURATION"
    done
  done
  for name in $TARGETS; do
    is_proxy "$name" || continue
    for phase in open openmock openngx; do
      [ -n "${R[$name.$phase#1.rps]:-}" ] || continue
      for metric in rps p50_us p90_us p99_us; do
        R[$name.$phase.$metric]=$(median "$name" "$phase" "$metric")
      done
      R[$name.$phase.errors]=0
      for metric in non2xx connect_err read_err write_err timeout_err; do
        R[$name.$phase.errors]=$(( ${R[$name.$phase.errors]} + $(sum "$name" "$phase" "$metric") ))
      done
    done
    R[$name.open.conns]=${R[$name.open#1.conns]}
    R[$name.open_added_p50_us]=$(diff_median "$name.open" "$name.openmock" p50_us)
    R[$name.open_added_p99_us]=$(diff_median "$name.open" "$name.openmock" p99_us)
    if [ -n "${R[$name.openngx#1.rps]:-}" ]; then
      R[$name.open_nginx_added_p50_us]=$(diff_median "$name.openngx" "$name.openmock" p50_us)
      R[$name.open_nginx_added_p99_us]=$(diff_median "$name.openngx" "$name.openmock" p99_us)
    fi
  done
  for name in $TARGETS; do
    log "$name: time to first byte over $TTFB_REQUESTS sequential streamed requests"
    ttfb_phase "$name"
  done
  for name in $TARGETS; do
    R[$name.rss_end_kib]=$(status_kib "${PID[$name]}" VmRSS)
    # The split says how much is heap (anonymous) and how much mapped files (the binary's code).
    R[$name.rss_end_anon_kib]=$(status_kib "${PID[$name]}" RssAnon)
    R[$name.rss_end_file_kib]=$(status_kib "${PID[$name]}" RssFile)
  done
  if [ "$SOAK_SECS" -gt 0 ]; then
    for name in $SOAK_TARGETS; do
      case " $TARGETS " in *" $name "*) soak_phase "$name" ;; *) log "soak: $name is not measured in this run" ;; esac
    done
  fi
  for name in $TARGETS; do
    R[$name.peak_rss_kib]=$(status_kib "${PID[$name]}" VmHWM)
    R[$name.errors]=$(( ${R[$name.rps.errors]} + ${R[$name.lat.errors]} + ${R[$name.one.errors]} + ${R[$name.ttfb.errors]} + ${R[$name.open.errors]:-0} + ${R[$name.soak.errors]:-0} ))
    if [ -n "${TOKEN[$name]:-}" ] || [[ "$name" == off || "$name" == gateway || "$name" == floor-ledger ]]; then
      # Metrics are on in every gateway: one scrape shows they counted the run (the floor has
      # none: its rows alone show that it wrote them).
      [ "$name" = floor-ledger ] || R[$name.metrics_lines]=$(curl -s --max-time 5 \
        -H "Authorization: Bearer $ADMIN_KEY" "${URL[$name]}/metrics" | grep -c '^switchboard_' || true)
      R[$name.log_rows]=$(log_rows "$name")
      local k sent=$(( TTFB_REQUESTS + 2 ))
      for k in "${!R[@]}"; do
        if [[ "$k" =~ ^$name\.(warmup|rps#[0-9]+|lat#[0-9]+|one#[0-9]+|open#[0-9]+|soak)\.requests$ ]]; then
          sent=$(( sent + ${R[$k]} ))
        fi
      done
      R[$name.requests_sent]=$sent
    fi
  done
}

# log_rows NAME: rows of the call log (usage_records) in NAME's database, after the writer's
# batches settle: evidence that the call log was on (empty when it cannot be read).
log_rows() {
  local yaml="$WORK/$1.yaml" db
  [ -f "$yaml" ] || { [ "$1" = vkey ] && yaml="$WORK/gateway.yaml"; }
  db=$(sed -n 's/^database: //p' "$yaml" 2>/dev/null)
  # `floor-ledger` has no config file: its database is the one start_floor gave it.
  [ "$1" = floor-ledger ] && db="sqlite://$WORK/floor-ledger.db"
  sleep 1
  case "$db" in
    sqlite://*) command -v sqlite3 >/dev/null && sqlite3 "${db#sqlite://}" 'select count(*) from usage_records' 2>/dev/null || true ;;
    postgres://*) psql "$db" -XAtqc 'select count(*) from usage_records' 2>/dev/null || true ;;
  esac
}

# calc EXPR: floating-point arithmetic via awk.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

# has NAME: whether NAME is one of TARGETS.
has() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# drop_target NAME WHY: leave NAME out of this run, loudly.
drop_target() {
  has "$1" || return 0
  log "WARNING: leaving out the $1 target: $2"
  DROPPED="$DROPPED $1 ($2);"
  TARGETS=$(printf '%s\n' $TARGETS | grep -vx -- "$1" | tr '\n' ' ')
}

# ---------------------------------------------------------------- run
main() {
  DROPPED=""
  ensure_tools
  NEED_GATEWAY=0
  for name in gateway vkey limits off on on-pg; do has "$name" && NEED_GATEWAY=1; done
  if [ "$NEED_GATEWAY" -eq 1 ] || [ "$MOCK_CMD" = "$SWITCHBOARD_BIN mock-upstream" ]; then
    if [ "$SKIP_BUILD" != 1 ]; then
      log "cargo build --release -p switchboard"
      (cd "$ROOT" && cargo build --release -p switchboard) || die "the release build failed"
    fi
    [ -x "$SWITCHBOARD_BIN" ] || die "no binary at $SWITCHBOARD_BIN"
  fi
  if has floor || has floor-ledger; then
    if [ "$SKIP_BUILD" != 1 ]; then
      log "cargo build --release -p switchboard --example hyper_floor"
      (cd "$ROOT" && cargo build --release -p switchboard --example hyper_floor) \
        || die "the release build of hyper_floor failed"
    fi
    [ -x "$FLOOR_BIN" ] || die "no binary at $FLOOR_BIN"
  fi
  setup_open_gen
  log "pinning: $PINNING; work dir $WORK; open loop: $OPEN_GEN_DESC"
  LOADAVG_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  if awk "BEGIN { exit !($LOADAVG_START > 0.5) }"; then
    log "warning: load average is $LOADAVG_START; other work on this machine will add noise"
  fi
  if (has limits || has on || has on-pg) && [ -z "$BENCH_REDIS" ]; then
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
      && [ "${#PIN_LOAD[@]}" -gt 0 ]; then
      REDIS_PORT=$(free_port)
      bench_redis_server "$REDIS_PORT" "$LOAD_CPU" "$WORK/redis.log" \
        || die "the private redis-server did not start (see $WORK/redis.log)"
      PIDS+=("$REDIS_PID")
      BENCH_REDIS="redis://127.0.0.1:$REDIS_PORT"
      PINNING="$PINNING, Redis on CPU $LOAD_CPU"
    else
      BENCH_REDIS=redis://127.0.0.1:6379
    fi
  fi
  if has limits || has on || has on-pg; then
    redis_up || { drop_target limits "no Redis at $BENCH_REDIS"; drop_target on "no Redis at $BENCH_REDIS"; drop_target on-pg "no Redis at $BENCH_REDIS"; }
  fi
  if has on-pg && ! postgres_up; then
    drop_target on-pg "Postgres not reachable at $(printf '%s' "$BENCH_POSTGRES" | sed 's#//[^@]*@#//***@#') (set BENCH_POSTGRES)"
  fi

  start_mock
  has nginx && start_nginx
  has floor && start_floor floor
  has floor-ledger && start_floor floor-ledger "sqlite://$WORK/floor-ledger.db"
  if has gateway || has vkey; then start_gateway gateway; fi
  has off && start_gateway off "$LOGGING_OFF_YAML"
  if has baseline; then
    [ -x "$BASELINE_BIN" ] || die "target baseline needs BASELINE_BIN (a switchboard binary)"
    start_gateway baseline "" "$BASELINE_BIN"
  fi
  has vkey && make_virtual_key vkey gateway
  if has limits; then start_gateway limits "$(limits_yaml limits)"; make_virtual_key limits limits; fi
  if has on; then start_gateway on "$(limits_yaml on)"; make_virtual_key on on; fi
  if has on-pg; then
    create_pg_db
    log "on-pg: database $PG_DB"
    start_gateway on-pg "$(limits_yaml on-pg)" "" "$PG_URL"
    make_virtual_key on-pg on-pg
  fi
  measure_all
  LOADAVG_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  report
}

# fmt_mib KIB: KiB as MiB with one decimal ("" stays "-").
fmt_mib() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "-"; }
# or_dash VALUE: VALUE, or "-" when empty.
or_dash() { [ -n "${1:-}" ] && echo "$1" || echo "-"; }
# jnum VALUE: VALUE as a JSON number, or null when empty / not a number.
jnum() { [[ "${1:-}" =~ ^-?[0-9]+(\.[0-9]+)?$ ]] && echo "$1" || echo null; }

# check7 NAME LABEL MEASURED OP LIMIT UNIT: one of issue 7's target checks for NAME: appends a
# markdown row to CHECK_ROWS and a JSON object to CHECK_JSON. OP is <= or >=. Distance is
# measured - limit (negative is better for <=, positive for >=), and that as % of the limit.
check7() {
  local name=$1 label=$2 measured=$3 op=$4 limit=$5 unit=$6 verdict dist pct
  if [ "$measured" = "not run" ]; then
    # A phase this run skipped on purpose (e.g. no soak for this target): reported, not judged.
    verdict="NOT RUN"; dist=""; pct=""; measured=""
  elif [[ ! "$measured" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
    verdict="NOT MEASURED"; dist=""; pct=""
  else
    verdict=$(awk -v m="$measured" -v l="$limit" -v op="$op" 'BEGIN { ok = (op == "<=") ? (m <= l) : (m >= l); print ok ? "PASS" : "FAIL" }')
    dist=$(awk -v m="$measured" -v l="$limit" 'BEGIN { printf ((l < 10 && l > -10) ? "%+.3f" : "%+.0f"), m - l }')
    pct=$(awk -v m="$measured" -v l="$limit" 'BEGIN { if (l != 0) printf "%+.0f%%", (m - l) * 100 / l }')
  fi
  CHECK_ROWS+="| $name | $label | $(or_dash "$measured")${unit:+ $unit} | $op $limit${unit:+ $unit} | $verdict | $(or_dash "$dist")${unit:+ $unit} ($(or_dash "$pct")) |"$'\n'
  [ -z "$CHECK_JSON" ] || CHECK_JSON+=", "
  CHECK_JSON+="{\"target\": \"$name\", \"check\": \"$label\", \"measured\": $(jnum "$measured"), \"op\": \"$op\", \"limit\": $limit, \"unit\": \"$unit\", \"verdict\": \"$verdict\", \"distance\": $(jnum "${dist#+}")}"
  [ "$verdict" = PASS ] || [ "$verdict" = "NOT RUN" ] || CHECK_ALL_PASS=0
}

report() {
  mkdir -p "$RESULTS_DIR"
  local md="$RESULTS_DIR/latest.md" json="$RESULTS_DIR/latest.json" name
  local when commit
  when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
  # Derived numbers, pair by pair: each ratio is the median over the rounds of the ratio of two
  # runs made back to back in the same round.
  for name in $TARGETS; do
    if is_proxy "$name" && [ -n "${R[mock.lat.p50_us]:-}" ]; then
      R[$name.added_p50_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.lat.p50_us]} - ${R[mock.lat.p50_us]} }")
      R[$name.added_p99_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.lat.p99_us]} - ${R[mock.lat.p99_us]} }")
      R[$name.added_ttfb_p50_us]=$(( ${R[$name.ttfb.p50_us]} - ${R[mock.ttfb.p50_us]} ))
      R[$name.added_stream_total_p50_us]=$(( ${R[$name.ttfb.total_p50_us]} - ${R[mock.ttfb.total_p50_us]} ))
      R[$name.added_one_p50_us]=$(awk "BEGIN { printf \"%.0f\", ${R[$name.one.p50_us]} - ${R[mock.one.p50_us]} }")
    fi
    if [ -n "${R[mock.rps.rps]:-}" ]; then
      R[$name.rps_vs_mock]=$(ratio_median "$name" mock rps rps)
      R[$name.p50_vs_mock]=$(ratio_median "$name" mock lat p50_us)
    fi
    if [ -n "${R[nginx.rps.rps]:-}" ]; then
      R[$name.rps_vs_nginx]=$(ratio_median "$name" nginx rps rps)
      R[$name.p50_vs_nginx]=$(ratio_median "$name" nginx lat p50_us)
      R[$name.cpu_vs_nginx]=$(ratio_median "$name" nginx rps cpu_us)
    fi
  done
  {
    echo "# Switchboard load benchmark"
    echo
    echo "$when, commit $commit, $NCPU CPUs ($(uname -m)), $PINNING."
    echo "wrk 1 thread, ${DURATION}s per phase, median of $ROUNDS round(s); streams: $STREAM_CHUNKS chunks, ${CHUNK_DELAY_MS} ms apart; soak ${SOAK_SECS}s$([ "$QUICK" = 1 ] && echo "; QUICK=1: short phases, numbers for development only")."
    echo "Load average before/after: $LOADAVG_START / $LOADAVG_END (the benchmark itself adds about 2)."
    [ -z "$DROPPED" ] || echo "**Left out:**$DROPPED"
    echo
    echo "| target | req/s @$CONNS | x nginx | x mock | CPU µs/req | p50 @$LAT_CONNS | p99 @$LAT_CONNS | p50 @1 | stream TTFB p50 | stream TTFB p99 | stream total p50 | RSS warm / end / peak MiB | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for name in $TARGETS; do
      printf '| %s | %.0f | %s | %s | %s | %.0f µs | %.0f µs | %.0f µs | %d µs | %d µs | %d µs | %s / %s / %s | %d |\n' "$name" \
        "${R[$name.rps.rps]}" "$(or_dash "${R[$name.rps_vs_nginx]:-}")" "$(or_dash "${R[$name.rps_vs_mock]:-}")" \
        "${R[$name.rps.cpu_us]}" "${R[$name.lat.p50_us]}" "${R[$name.lat.p99_us]}" "${R[$name.one.p50_us]}" \
        "${R[$name.ttfb.p50_us]}" "${R[$name.ttfb.p99_us]}" "${R[$name.ttfb.total_p50_us]}" \
        "$(fmt_mib "${R[$name.rss_warm_kib]:-}")" "$(fmt_mib "${R[$name.rss_end_kib]:-}")" "$(fmt_mib "${R[$name.peak_rss_kib]:-}")" \
        "${R[$name.errors]}"
    done
    echo
    echo "Open loop ($OPEN_GEN_DESC): each proxy at ${OPEN_FRACTION} x its own req/s @$CONNS, the mock alone and nginx at the same rate just before it; added = minus the mock's at that rate."
    echo
    echo "| target | rate req/s | achieved | conns | late | p50 | p99 | mock p50 / p99 | added p50 | added p99 | nginx added p50 / p99 (same rate) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for name in $TARGETS; do
      [ -n "${R[$name.open.rps]:-}" ] || continue
      printf '| %s | %s | %.0f | %s | %s | %.0f µs | %.0f µs | %.0f / %.0f µs | %s µs | %s µs | %s / %s µs |\n' "$name" \
        "${R[$name.open_rate]}" "${R[$name.open.rps]}" "${R[$name.open.conns]}" "$(or_dash "${R[$name.open#1.late]:-}")" "${R[$name.open.p50_us]}" "${R[$name.open.p99_us]}" \
        "${R[$name.openmock.p50_us]}" "${R[$name.openmock.p99_us]}" "${R[$name.open_added_p50_us]}" "${R[$name.open_added_p99_us]}" \
        "$(or_dash "${R[$name.open_nginx_added_p50_us]:-}")" "$(or_dash "${R[$name.open_nginx_added_p99_us]:-}")"
      awk -v a="${R[$name.open.rps]}" -v r="${R[$name.open_rate]}" 'BEGIN { exit !(a < 0.95 * r) }' \
        && R[$name.open_short]=1 || true
    done
    for name in $TARGETS; do
      [ -z "${R[$name.open_short]:-}" ] || echo "- WARNING: $name achieved less than 95% of its open-loop rate: the generator fell behind (latencies understate)."
      if awk -v l="${R[$name.open#1.late]:-0}" -v n="${R[$name.open#1.requests]:-1}" 'BEGIN { exit !(l > 0.01 * n) }'; then
        echo "- $name: ${R[$name.open#1.late]} of ${R[$name.open#1.requests]} open-loop requests (round 1) left more than 1 ms after their slot: every connection was busy (the server stalled) or the generator was preempted; their wait is in the latency."
      fi
    done
    echo
    for name in $TARGETS; do
      [ -n "${R[$name.added_p50_us]:-}" ] || continue
      echo "- $name adds p50 ${R[$name.added_p50_us]} µs, p99 ${R[$name.added_p99_us]} µs" \
        "at concurrency $LAT_CONNS; p50 ${R[$name.added_one_p50_us]} µs unloaded (concurrency 1);" \
        "stream TTFB p50 ${R[$name.added_ttfb_p50_us]} µs, whole stream p50 ${R[$name.added_stream_total_p50_us]} µs" \
        "(vs the mock alone)$([ "$name" = nginx ] || echo "; p50 @$LAT_CONNS $(or_dash "${R[$name.p50_vs_nginx]:-}")x nginx's, CPU/request $(or_dash "${R[$name.cpu_vs_nginx]:-}")x nginx's")."
    done
    if [ -n "${R[baseline.rps.rps]:-}" ] && [ -n "${R[gateway.rps.rps]:-}" ]; then
      R[baseline_rps_ratio]=$(ratio_median gateway baseline rps rps)
      R[baseline_p50_ratio]=$(ratio_median gateway baseline lat p50_us)
      R[baseline_one_ratio]=$(ratio_median gateway baseline one p50_us)
      echo "- gateway vs baseline ($BASELINE_BIN): throughput ${R[baseline_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[baseline_p50_ratio]}x, p50 @1 ${R[baseline_one_ratio]}x."
    fi
    if [ -n "${R[vkey.rps.rps]:-}" ] && [ -n "${R[gateway.rps.rps]:-}" ]; then
      R[vkey_rps_ratio]=$(ratio_median vkey gateway rps rps)
      R[vkey_p50_ratio]=$(ratio_median vkey gateway lat p50_us)
      echo "- virtual key vs admin key (same gateway): throughput ${R[vkey_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[vkey_p50_ratio]}x (issue 3 allows at most 5% worse: >= 0.95x and <= 1.05x)."
    fi
    if [ -n "${R[limits.rps.rps]:-}" ] && [ -n "${R[vkey.rps.rps]:-}" ]; then
      R[limits_rps_ratio]=$(ratio_median limits vkey rps rps)
      R[limits_p50_ratio]=$(ratio_median limits vkey lat p50_us)
      echo "- limits, budget and Redis on vs virtual key alone: throughput ${R[limits_rps_ratio]}x," \
        "p50 @$LAT_CONNS ${R[limits_p50_ratio]}x (issue 4 allows at most 10% less throughput: >= 0.90x)."
    fi
    if [ -n "${R[on.rps.rps]:-}" ] && [ -n "${R[off.rps.rps]:-}" ]; then
      echo "- everything on vs everything off: throughput $(ratio_median on off rps rps)x, CPU/request $(ratio_median on off rps cpu_us)x."
    fi
    if [ -n "${R[floor-ledger.rps.rps]:-}" ] && [ -n "${R[off.rps.rps]:-}" ]; then
      echo "- off vs floor-ledger (the gateway's own work beyond the HTTP stack and the billing row): throughput $(ratio_median off floor-ledger rps rps)x, CPU/request $(ratio_median off floor-ledger rps cpu_us)x."
    fi
    if [ -n "${R[floor-ledger.rps.rps]:-}" ] && [ -n "${R[floor.rps.rps]:-}" ]; then
      echo "- floor-ledger vs floor (what the billing row costs): throughput $(ratio_median floor-ledger floor rps rps)x, CPU/request $(ratio_median floor-ledger floor rps cpu_us)x."
    fi
    if [ -n "${R[on-pg.rps.rps]:-}" ] && [ -n "${R[on.rps.rps]:-}" ]; then
      echo "- Postgres vs SQLite (everything on): throughput $(ratio_median on-pg on rps rps)x, CPU/request of the gateway process $(ratio_median on-pg on rps cpu_us)x (Postgres's own processes are not counted)."
    fi
    for name in $TARGETS; do
      [ -z "${R[$name.metrics_lines]:-}" ] || echo "- $name: /metrics answered ${R[$name.metrics_lines]} switchboard_ series lines after the run; call log rows in its database: $(or_dash "${R[$name.log_rows]:-}") (all phases, soak included; requests sent: ${R[$name.requests_sent]:-?})."
      [ "$name" != floor-ledger ] || echo "- floor-ledger: usage rows in its database: $(or_dash "${R[$name.log_rows]:-}") (all phases, readiness probes included; requests sent: ${R[$name.requests_sent]:-?})."
    done
    for name in $TARGETS; do
      [ -n "${R[$name.soak.samples]:-}" ] || continue
      R[$name.soak_drift]=$(awk -v a="${R[$name.rss_soak_end_kib]}" -v w="${R[$name.rss_warm_kib]}" 'BEGIN { printf "%.3f", (w > 0) ? a / w - 1 : 0 }')
      echo
      echo "Soak of $name: ${SOAK_SECS}s at ${R[$name.soak.rate]} req/s (achieved ${R[$name.soak.rps]}, ${R[$name.soak.conns]} connections), p50 ${R[$name.soak.p50_us]} µs, p99 ${R[$name.soak.p99_us]} µs, ${R[$name.soak.errors]} errors;" \
        "RSS after warm-up $(fmt_mib "${R[$name.rss_warm_kib]}") MiB, after the soak $(fmt_mib "${R[$name.rss_soak_end_kib]}") MiB (drift ${R[$name.soak_drift]});" \
        "samples (s:KiB): ${R[$name.soak.samples]}"
    done
    # Issue 2's checks, on the `gateway` target.
    if [ -n "${R[gateway.rps.rps]:-}" ] && [ -n "${R[nginx.rps.rps]:-}" ]; then
      R[ratio]=${R[gateway.rps_vs_nginx]}
      echo
      echo "Issue 2 (gateway target):"
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
    # Issue 5's checks: the call log's metadata and metrics on (`gateway`) against logging off
    # (`off`); both write each request's usage record and export metrics.
    if [ -n "${R[gateway.rps.rps]:-}" ] && [ -n "${R[off.rps.rps]:-}" ]; then
      R[log.rps_ratio]=$(ratio_median gateway off rps rps)
      R[log.p50_ratio]=$(ratio_median gateway off lat p50_us)
      R[log.cpu_ratio]=$(ratio_median gateway off rps cpu_us)
      R[log.verdict.rps]=$(awk "BEGIN { print (${R[log.rps_ratio]} >= $MIN_LOG_RPS_RATIO) ? \"PASS\" : \"FAIL\" }")
      R[log.verdict.p50]=$(awk "BEGIN { print (${R[log.p50_ratio]} <= $MAX_LOG_P50_RATIO) ? \"PASS\" : \"FAIL\" }")
      echo
      echo "Issue 5 (logging on = \`gateway\` / logging off = \`off\`, median of the per-round ratios):"
      echo
      echo "| measure | ratio | required | verdict |"
      echo "| --- | ---: | ---: | --- |"
      echo "| throughput @$CONNS | ${R[log.rps_ratio]}x | >= ${MIN_LOG_RPS_RATIO}x | ${R[log.verdict.rps]} |"
      echo "| p50 latency @$LAT_CONNS | ${R[log.p50_ratio]}x | <= ${MAX_LOG_P50_RATIO}x | ${R[log.verdict.p50]} |"
      echo "| CPU per request @$CONNS | ${R[log.cpu_ratio]}x | (not bounded) | - |"
    fi
    # Issue 7's checks, on everything on (SQLite and Postgres).
    CHECK_ROWS=""; CHECK_JSON=""; CHECK_ALL_PASS=1
    for name in on on-pg; do
      if ! has "$name"; then
        # Asked for but left out (no Redis / Postgres): say so among the checks, as failed.
        [[ " $DROPPED" != *" $name ("* ]] || check7 "$name" "target left out of this run" "" "<=" 0 ""
        continue
      fi
      check7 "$name" "throughput / nginx @$CONNS" "${R[$name.rps_vs_nginx]:-}" ">=" "$T7_MIN_RPS_RATIO" x
      check7 "$name" "added p50 at half max rate" "${R[$name.open_added_p50_us]:-}" "<=" "$T7_MAX_OPEN_P50_US" µs
      check7 "$name" "added p99 at half max rate" "${R[$name.open_added_p99_us]:-}" "<=" "$T7_MAX_OPEN_P99_US" µs
      check7 "$name" "stream TTFB overhead p50" "${R[$name.added_ttfb_p50_us]:-}" "<=" "$T7_MAX_TTFB_US" µs
      check7 "$name" "gateway CPU per request" "${R[$name.rps.cpu_us]:-}" "<=" "$T7_MAX_CPU_US" µs
      check7 "$name" "peak RSS (VmHWM)" "$(awk -v k="${R[$name.peak_rss_kib]:-}" 'BEGIN { if (k != "") printf "%.1f", k * 1024 / 1e6 }')" "<=" "$T7_MAX_RSS_MB" MB
      local drift="not run"
      [ -z "${R[$name.soak_drift]:-}" ] || drift=$(awk -v d="${R[$name.soak_drift]}" 'BEGIN { printf "%.3f", (d < 0) ? -d : d }')
      check7 "$name" "RSS after soak vs after warm-up, abs(ratio-1)" "$drift" "<=" "$T7_MAX_SOAK_DRIFT" ""
      check7 "$name" "failed requests (all phases)" "${R[$name.errors]}" "<=" 0 ""
    done
    if [ -n "$CHECK_ROWS" ]; then
      echo
      echo "Issue 7 targets (distance = measured - limit, and as % of the limit; NOT MEASURED fails, NOT RUN (a soak left out by SOAK_TARGETS or SOAK_SECS=0) is not judged):"
      echo
      echo "| target | check | measured | required | verdict | distance |"
      echo "| --- | --- | ---: | ---: | --- | ---: |"
      printf '%s' "$CHECK_ROWS"
      echo
      echo "Issue 7 overall: $([ "$CHECK_ALL_PASS" = 1 ] && echo PASS || echo FAIL)"
    fi
  } >"$md"
  cat "$md"
  {
    printf '{\n  "time": "%s",\n  "commit": "%s",\n  "cpus": %d,\n  "pinning": "%s",\n  "loadavg_start": %s,\n  "loadavg_end": %s,\n  "quick": %s,\n  "left_out": "%s",\n' \
      "$when" "$commit" "$NCPU" "$PINNING" "$LOADAVG_START" "$LOADAVG_END" "$([ "$QUICK" = 1 ] && echo true || echo false)" "${DROPPED# }"
    printf '  "config": {"duration_s": %s, "concurrency": %s, "latency_concurrency": %s, "ttfb_requests": %s, "stream_chunks": %s, "chunk_delay_ms": %s, "rounds": %s, "open_fraction": %s, "open_window_ms": %s, "soak_s": %s, "soak_sample_s": %s, "clk_tck": %s, "open_generator": "%s"},\n' \
      "$DURATION" "$CONNS" "$LAT_CONNS" "$TTFB_REQUESTS" "$STREAM_CHUNKS" "$CHUNK_DELAY_MS" "$ROUNDS" "$OPEN_FRACTION" "$OPEN_WINDOW_MS" "$SOAK_SECS" "$SOAK_SAMPLE_SECS" "$CLK_TCK" "$OPEN_GEN"
    printf '  "targets": {\n'
    local first=1 f
    for name in $TARGETS; do
      [ "$first" -eq 1 ] || printf ',\n'
      first=0
      printf '    "%s": {"rps": %s, "cpu_us_per_request": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "ttfb_p50_us": %s, "ttfb_p99_us": %s, "stream_total_p50_us": %s, "unloaded_p50_us": %s, "errors": %s' \
        "$name" "${R[$name.rps.rps]}" "$(jnum "${R[$name.rps.cpu_us]}")" "${R[$name.lat.p50_us]}" "${R[$name.lat.p90_us]}" \
        "${R[$name.lat.p99_us]}" "${R[$name.ttfb.p50_us]}" "${R[$name.ttfb.p99_us]}" \
        "${R[$name.ttfb.total_p50_us]}" "${R[$name.one.p50_us]}" "${R[$name.errors]}"
      printf ', "rss_after_warmup_kib": %s, "rss_end_kib": %s, "rss_end_anon_kib": %s, "rss_end_file_kib": %s, "peak_rss_kib": %s' \
        "$(jnum "${R[$name.rss_warm_kib]:-}")" "$(jnum "${R[$name.rss_end_kib]:-}")" "$(jnum "${R[$name.rss_end_anon_kib]:-}")" \
        "$(jnum "${R[$name.rss_end_file_kib]:-}")" "$(jnum "${R[$name.peak_rss_kib]:-}")"
      for f in rps_vs_nginx rps_vs_mock p50_vs_nginx p50_vs_mock cpu_vs_nginx added_p50_us added_p99_us added_one_p50_us \
        added_ttfb_p50_us added_stream_total_p50_us metrics_lines log_rows requests_sent; do
        [ -z "${R[$name.$f]:-}" ] || printf ', "%s": %s' "${f/added_one_p50_us/added_unloaded_p50_us}" "$(jnum "${R[$name.$f]}")"
      done
      if [ -n "${R[$name.open.rps]:-}" ]; then
        printf ', "open_loop": {"generator": "%s", "late_round1": %s, "sent_p50_us_round1": %s, "sent_p99_us_round1": %s, "lag_p50_us_round1": %s, "lag_p99_us_round1": %s, "rate": %s, "connections": %s, "achieved_rps": %s, "p50_us": %s, "p90_us": %s, "p99_us": %s, "errors": %s, "mock_p50_us": %s, "mock_p99_us": %s, "added_p50_us": %s, "added_p99_us": %s, "nginx_p50_us": %s, "nginx_p99_us": %s, "nginx_added_p50_us": %s, "nginx_added_p99_us": %s}' \
          "$OPEN_GEN" "$(jnum "${R[$name.open#1.late]:-}")" "$(jnum "${R[$name.open#1.sent_p50_us]:-}")" "$(jnum "${R[$name.open#1.sent_p99_us]:-}")" \
          "$(jnum "${R[$name.open#1.lag_p50_us]:-}")" "$(jnum "${R[$name.open#1.lag_p99_us]:-}")" \
          "${R[$name.open_rate]}" "${R[$name.open.conns]}" "${R[$name.open.rps]}" "${R[$name.open.p50_us]}" "${R[$name.open.p90_us]}" \
          "${R[$name.open.p99_us]}" "${R[$name.open.errors]}" "${R[$name.openmock.p50_us]}" "${R[$name.openmock.p99_us]}" \
          "${R[$name.open_added_p50_us]}" "${R[$name.open_added_p99_us]}" "$(jnum "${R[$name.openngx.p50_us]:-}")" \
          "$(jnum "${R[$name.openngx.p99_us]:-}")" "$(jnum "${R[$name.open_nginx_added_p50_us]:-}")" "$(jnum "${R[$name.open_nginx_added_p99_us]:-}")"
      fi
      if [ -n "${R[$name.soak.samples]:-}" ]; then
        printf ', "soak": {"generator": "%s", "late": %s, "seconds": %s, "rate": %s, "connections": %s, "achieved_rps": %s, "p50_us": %s, "p99_us": %s, "errors": %s, "rss_after_soak_kib": %s, "drift": %s, "rss_samples": [%s]}' \
          "$OPEN_GEN" "$(jnum "${R[$name.soak.late]:-}")" "$SOAK_SECS" "${R[$name.soak.rate]}" "${R[$name.soak.conns]}" "${R[$name.soak.rps]}" "${R[$name.soak.p50_us]}" \
          "${R[$name.soak.p99_us]}" "${R[$name.soak.errors]}" "${R[$name.rss_soak_end_kib]}" "${R[$name.soak_drift]}" \
          "$(printf '%s\n' ${R[$name.soak.samples]} | awk -F: '{ printf "%s{\"t_s\": %s, \"rss_kib\": %s}", (NR > 1 ? ", " : ""), $1, $2 }')"
      fi
      printf '}'
    done
    printf '\n  }'
    if [ -n "${R[ratio]:-}" ]; then
      printf ',\n  "targets_check": {"rps_ratio": %s, "rps_ratio_min": %s, "rps_verdict": "%s", "added_p50_us": %s, "added_p50_max_us": %s, "p50_verdict": "%s", "valid": %s}' \
        "${R[ratio]}" "$MIN_RPS_RATIO" "${R[verdict.rps]}" "$(jnum "${R[gateway.added_p50_us]}")" \
        "$MAX_ADDED_P50_US" "${R[verdict.p50]}" "$([ "${R[gateway.errors]}" -eq 0 ] && echo true || echo false)"
    fi
    if [ -n "${R[log.rps_ratio]:-}" ]; then
      printf ',\n  "logging_check": {"rps_ratio": %s, "rps_ratio_min": %s, "rps_verdict": "%s", "p50_ratio": %s, "p50_ratio_max": %s, "p50_verdict": "%s", "cpu_ratio": %s}' \
        "${R[log.rps_ratio]}" "$MIN_LOG_RPS_RATIO" "${R[log.verdict.rps]}" "${R[log.p50_ratio]}" \
        "$MAX_LOG_P50_RATIO" "${R[log.verdict.p50]}" "$(jnum "${R[log.cpu_ratio]}")"
    fi
    if [ -n "$CHECK_JSON" ]; then
      printf ',\n  "issue7_checks": {"pass": %s, "checks": [%s]}' "$([ "$CHECK_ALL_PASS" = 1 ] && echo true || echo false)" "$CHECK_JSON"
    fi
    printf '\n}\n'
  } >"$json"
  log "wrote $md and $json"
}

main "$@"
