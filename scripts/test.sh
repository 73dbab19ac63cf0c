#!/usr/bin/env bash
# Runs every check and test Emofy has, on a fresh machine or a warm one.
# It installs and starts whatever the tests need: the Rust toolchain and Redis
# (127.0.0.1:6379; tests use a random key prefix each, and start their own
# redis-server on a free port for outage tests). The embedded store is SQLite,
# bundled.
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
export EMOFY_TEST_REDIS_URL="${EMOFY_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

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
echo
echo "all: $p passed, $f failed"
exit "$status"
