#!/usr/bin/env bash
# Load run: requests per second of the axum_mcp example behind the whole Portcullis stack (warm JWT, site binding,
# session binding, policy, scopes, context) and bare, side by side, on loopback, with wrk (Debian package). Two
# workloads: an MCP `tools/call` through rmcp (the site named in the body, in an MCP session), and `GET /api/me`
# (a plain axum handler that only serialises the context: the stack's cost with next to nothing behind it).
#
#   bash scripts/load.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release -q -p portcullis-examples --example load_target
out=$(mktemp)
target/release/examples/load_target >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do grep -q '^TOKEN=' "$out" && break; sleep 0.1; done
stack=$(sed -n 's/^STACK_URL=//p' "$out")
bare=$(sed -n 's/^BARE_URL=//p' "$out")
token=$(sed -n 's/^TOKEN=//p' "$out")

# run CONNECTIONS URL [wrk options...]: requests per second; any answer other than 2xx fails the run (a stack
# that refused requests would look fast).
run() {
    local c=$1 url=$2 report
    shift 2
    report=$(wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${duration}s" -H "Authorization: Bearer $token" "$@" "$url")
    if grep -q 'Non-2xx' <<<"$report"; then
        echo "$url answered other than 2xx:" >&2
        echo "$report" >&2
        exit 1
    fi
    awk '/Requests\/sec/ { print $2 }' <<<"$report"
}
# An MCP session on a server (initialize, then the initialized notification); prints its id.
session() {
    local headers
    headers=$(curl -sf -D - -o /dev/null -X POST "$1/mcp" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load.sh","version":"1"}}}')
    local id
    id=$(awk 'tolower($1) == "mcp-session-id:" { print $2 }' <<<"$headers" | tr -d '\r')
    [ -n "$id" ] || { echo "$1: no MCP session" >&2; exit 1; }
    curl -sf -o /dev/null -X POST "$1/mcp" -H "Authorization: Bearer $token" -H "Mcp-Session-Id: $id" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo "$id"
}
# compare LABEL CONNECTIONS PATH [wrk options...]: three alternating rounds, bare then stack, and the median ratio.
compare() {
    local label=$1 c=$2 path=$3 ratios=() round bare_rps stack_rps ratio median
    shift 3
    for round in 1 2 3; do
        bare_rps=$(SID=$bare_session run "$c" "$bare$path" "$@")
        stack_rps=$(SID=$stack_session run "$c" "$stack$path" "$@")
        ratio=$(awk -v s="$stack_rps" -v b="$bare_rps" 'BEGIN { printf "%.1f", 100 * s / b }')
        ratios+=("$ratio")
        printf '%-40s %12s %12s %7s%%\n' "$label, $c conn., round $round" "$bare_rps" "$stack_rps" "$ratio"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p)
    echo "$label, $c connection(s): the stack keeps $median% of the bare throughput (median of 3)"
}
# Warm both (key set, caches), then measure each in turn, three times, alternating: the server shares the machine
# with wrk, and single runs on a VM move by 10-20%; the median ratio is the figure.
curl -sf -o /dev/null -H "Authorization: Bearer $token" "$stack/api/me" || { echo "stack did not answer 200" >&2; exit 1; }
curl -sf -o /dev/null "$bare/api/me" || { echo "bare did not answer 200" >&2; exit 1; }
bare_session=$(session "$bare")
stack_session=$(session "$stack")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-40s %12s %12s %8s\n' "wrk -d${duration}s" "bare req/s" "stack req/s" "kept"
for c in "$connections" 1; do
    compare "MCP tools/call" "$c" /mcp -s scripts/mcp_call.lua
done
for c in "$connections" 1; do
    compare "GET /api/me" "$c" /api/me
done
