#!/usr/bin/env bash
# Runs the official OpenAI and Anthropic Python SDKs against the gateway's offline demo
# (sdk_check.py). Installs the SDKs into a throwaway virtualenv; needs python3 and the PyPI
# registry. Usage: tests/sdk/run.sh [path/to/switchboard]   (default target/debug/switchboard)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-$ROOT/target/debug/switchboard}
WORK=$(mktemp -d)
PID=""
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

[ -x "$BIN" ] || { echo "sdk: no binary at $BIN (build it first)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")   # the demo runs from a temp folder
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check openai anthropic

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# No config file in an empty folder: `serve` starts the offline demo and prints a key once the
# socket accepts connections.
(cd "$WORK" && exec "$BIN" serve --demo-listen "127.0.0.1:$PORT" >"$WORK/out.txt" 2>"$WORK/err.txt") &
PID=$!
KEY=""
for _ in $(seq 1 100); do
  KEY=$(sed -n 's/^Admin key (shown once): //p' "$WORK/out.txt")
  [ -n "$KEY" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/err.txt" >&2; exit 1; }
  sleep 0.1
done
[ -n "$KEY" ] || { echo "sdk: the demo printed no key" >&2; cat "$WORK/err.txt" >&2; exit 1; }

SWITCHBOARD_URL="http://127.0.0.1:$PORT" SWITCHBOARD_KEY="$KEY" \
  "$WORK/venv/bin/python" "$ROOT/tests/sdk/sdk_check.py"
