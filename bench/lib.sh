# Shared by bench/run.sh, bench/perf.sh, bench/pairs.sh and bench/callgrind.sh (sourced, not
# run): the one definition of the benchmark's gateway config, limits config and virtual key,
# and the harness of the small measuring scripts (perf.sh, pairs.sh).

# bench_limits_yaml RUN REDIS_URL: the `redis:`, `rate_limits:` and `budgets:` of the `on`
# configs: limits high enough never to refuse, so that a run measures what checking and
# settling them costs. RUN prefixes the rule names, so each run counts on fresh Redis keys.
bench_limits_yaml() {
  local run=$1 redis=$2
  echo "redis: $redis
rate_limits:
  - { name: $run-key, scope: key, requests_per_second: 1000000, tokens_per_minute: 1000000000000, concurrent: 100000 }
  - { name: $run-team, scope: team, match: { org: bench, team: load }, requests_per_minute: 1000000000 }
budgets:
  - { name: $run-budget, scope: team, match: { org: bench, team: load }, period: month, usd: 1000000, action: block, alert_at: [0.5, 0.8, 1.0] }"
}

# bench_virtual_key GATEWAY_URL ADMIN_KEY: makes the org `bench`, its team `load`, the app `wrk`
# (allowed to call `bench`) and a key of that app through the admin API; prints the key's
# secret. Fails, with the admin API's answer on stderr, when no key came back.
bench_virtual_key() {
  local base="$1/admin/v1" admin_key=$2 out secret
  post() {
    curl -s --max-time 30 -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
      -d "$2" "$base$1"
  }
  post /orgs '{"name":"bench"}' >/dev/null
  post /orgs/bench/teams '{"name":"load"}' >/dev/null
  post /orgs/bench/teams/load/apps '{"name":"wrk","models":["bench"]}' >/dev/null
  out=$(post /orgs/bench/keys '{"team":"load","app":"wrk","name":"bench"}')
  secret=$(printf '%s' "$out" | sed -n 's/.*"secret":"\(sk-sb-[A-Za-z0-9_-]*\)".*/\1/p')
  [ -n "$secret" ] || { printf '%s\n' "$out" >&2; return 1; }
  printf '%s\n' "$secret"
}

# bench_gateway_yaml PORT DATABASE_URL MOCK_PORT [EXTRA]: the gateway's config: one
# OpenAI-compatible provider (the mock), one priced model `bench`, the admin key from
# SWITCHBOARD_ADMIN_KEY, then EXTRA (e.g. bench_limits_yaml's output).
bench_gateway_yaml() {
  local port=$1 db=$2 mock_port=$3 extra=${4:-}
  cat <<YAML
listen: 127.0.0.1:$port
database: $db
admin_key: \${SWITCHBOARD_ADMIN_KEY}
providers:
  mock: { type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: "sk-upstream-bench" }
models:
  bench:
    targets: [ { provider: mock, model: bench-upstream } ]
    price: { input_per_mtok: 2.50, output_per_mtok: 10.00 }
$extra
YAML
}

# bench_harness NAME: for a small measuring script: `log` and `die` prefixed with [NAME], a
# work dir WORK removed on exit, the servers started into PIDS stopped on exit (their logs
# shown when the script fails), `port` and `wait_ready URL`.
bench_harness() {
  BENCH_NAME=$1
  log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
  die() { printf '[%s] error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }
  port() { echo $(( 20000 + RANDOM % 12000 )); }
  wait_ready() {
    for _ in $(seq 1 300); do
      curl -s -o /dev/null --max-time 1 "$1" && return 0
      sleep 0.1
    done
    die "$1 did not answer"
  }
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$status" -eq 0 ] || { log "logs:"; tail -n 20 "$WORK"/*.log >&2 || true; }
  rm -rf "$WORK"
  exit "$status"
}

# bench_redis_server PORT CPU LOG: starts a private redis-server (nothing saved to disk) on
# 127.0.0.1:PORT pinned to CPU, its pid in REDIS_PID; fails if it does not answer. The
# benchmark's Redis gets a core chosen for it rather than floating onto the gateway's: in a
# deployment Redis is a server of its own, and on two cores a Redis that lands on the gateway's
# core measures the scheduler, not the gateway. Its CPU is reported apart.
bench_redis_server() {
  local port=$1 cpu=$2 log=$3
  taskset -c "$cpu" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    >"$log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# bench_start_redis: for the small measuring scripts: unless BENCH_REDIS is set, a private
# redis-server on CPU 1 (with the load generator and the mock, off the gateway's CPU 0) when
# redis-server is installed, else the local one at 127.0.0.1:6379. Sets BENCH_REDIS.
bench_start_redis() {
  [ -n "${BENCH_REDIS:-}" ] && return 0
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    local p
    p=$(port)
    bench_redis_server "$p" 1 "$WORK/redis.log" || die "the private redis-server did not start"
    PIDS+=("$REDIS_PID")
    BENCH_REDIS="redis://127.0.0.1:$p"
  else
    BENCH_REDIS=redis://127.0.0.1:6379
  fi
}

# bench_start_mock: the mock upstream on CPU 1 (MOCK_PORT), ready to answer.
bench_start_mock() {
  MOCK_PORT=$(port)
  taskset -c 1 "$SWITCHBOARD_BIN" mock-upstream --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$MOCK_PORT/healthz"
}
