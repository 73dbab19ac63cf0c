#!/usr/bin/env bash
# Runs every check and test Emofy has, on a fresh machine or a warm one.
# It installs and starts whatever the tests need: the Rust toolchain, Redis
# (127.0.0.1:6379; tests use a random key prefix each, and start their own
# redis-server on a free port for outage tests) and a MongoDB-wire-compatible
# test server (SecantusDB from PyPI, in a venv, on 127.0.0.1:27017; tests use
# a database each), schemathesis (PyPI, in a venv) for the API contract, and
# Debian's chromium for the browser tests. The embedded store is SQLite, bundled. Test settings are
# TEST_* variables: EMOFY_* ones would be read as server configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

log "redis"
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -p 6379 ping
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

log "mongodb-compatible test server"
# SecantusDB (GPL) runs as a separate process only; the code uses the standard
# MongoDB driver API and runs unchanged against MongoDB 6+.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
VENV="${TEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/emofy}/secantus-venv"
if [ ! -x "$VENV/bin/secantusd-py" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "SecantusDB==0.7.0b3"
fi
# Outage tests start their own instance on a free port.
export TEST_SECANTUSD="$VENV/bin/secantusd-py"
if ! port_open 27017; then
  "$VENV/bin/secantusd-py" --host 127.0.0.1 --port 27017 --storage-path :memory: \
    --log-level WARNING >/tmp/emofy-secantus.log 2>&1 &
  SECANTUS_PID=$!
  trap 'kill $SECANTUS_PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do port_open 27017 && break; sleep 0.1; done
fi
port_open 27017 && echo "listening on 127.0.0.1:27017"
export TEST_MONGODB_URI="${TEST_MONGODB_URI:-mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false}"

log "format"
cargo fmt --all -- --check

log "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/emofy-test-$$.log
status=${PIPESTATUS[0]}
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' /tmp/emofy-test-$$.log | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
rm -f /tmp/emofy-test-$$.log
read -r p f <<<"$passed"

export TEST_EMOFY_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/emofy"
cargo build --locked -p emofy-server --bin emofy

log "API contract (schemathesis against the live server's OpenAPI document)"
ST_VENV="${TEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/emofy}/schemathesis-venv"
if [ ! -x "$ST_VENV/bin/st" ]; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q "schemathesis==4.32.5"
fi
set +e
scripts/schemathesis.sh "$TEST_EMOFY_BIN" "$ST_VENV/bin/st"
st_status=$?
set -e
if [ "$st_status" -eq 0 ]; then p=$((p + 1)); else f=$((f + 1)); status=$st_status; fi

log "browser tests (Debian chromium, playwright-core)"
# playwright-core never downloads a browser: the tests drive /usr/bin/chromium.
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd web-client && npm ci --no-audit --no-fund --loglevel=error)
export TEST_OUT="${TEST_OUT:-$PWD/web-client/test-output}"
(cd web-client && node --test tests/) 2>&1 | tee /tmp/emofy-node-$$.log
node_status=${PIPESTATUS[0]}
np=$(awk '/^# pass /{print $3}' /tmp/emofy-node-$$.log)
nf=$(awk '/^# fail /{print $3}' /tmp/emofy-node-$$.log)
rm -f /tmp/emofy-node-$$.log
echo "screenshots: $TEST_OUT"
p=$((p + ${np:-0}))
f=$((f + ${nf:-0}))
[ "$node_status" -ne 0 ] && status=$node_status

echo
echo "all: $p passed, $f failed"
exit "$status"
