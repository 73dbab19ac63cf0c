#!/usr/bin/env bash
# Runs every check and test Emofy has, on a fresh machine or a warm one.
# It installs and starts whatever the tests need; today that is only the Rust
# toolchain (the embedded store is SQLite, bundled). Later services (Redis, the
# MongoDB-wire test server, Chromium) are started here too.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

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
