#!/usr/bin/env bash
# The API contract: starts the server (embedded store, a fresh data dir, an
# admin account) and runs schemathesis against its own OpenAPI document.
# Fails on any 5xx, any status, content type, header or body that breaks the
# document, an endpoint that ignores missing credentials, and methods the
# document does not list that are not refused with 405.
# Usage: scripts/schemathesis.sh <emofy binary> <st binary>
set -euo pipefail
bin="$1"
st="$2"
data=$(mktemp -d)
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data" "$log"' EXIT

password="schemathesis-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
echo "$password" | "$bin" admin create-moderator --username contract --admin --data-dir "$data" >/dev/null
EMOFY_NET__EXEMPT_LOOPBACK=true "$bin" serve --port 0 --data-dir "$data" --demo-images 14 \
  --log-filter warn >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 600); do
  port=$(sed -n 's|.*http://[^:]*:\([0-9]*\)/.*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "the server did not start" >&2; exit 1; }
base="http://127.0.0.1:$port"
token=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"username\":\"contract\",\"password\":\"$password\"}" "$base/api/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# The WebSocket handshakes are covered by the protocol tests.
"$st" run "$base/api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,ignored_auth,use_after_free,ensure_resource_availability,unsupported_method,allow_header_conformance,missing_required_header \
  -H "Authorization: Bearer $token" \
  --exclude-path-regex '^/ws/' \
  --max-examples 30 \
  --seed 2026 \
  --no-color
if grep -q ' ERROR ' "$log"; then
  echo "the server logged errors during the run:" >&2
  grep ' ERROR ' "$log" >&2
  exit 1
fi
