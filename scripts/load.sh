#!/usr/bin/env bash
# Load run: requests per second of the axum_mcp example's `GET /api/me` behind the whole Portcullis stack (warm
# JWT, site claim, policy, scopes, context) and bare, side by side, on loopback, with wrk (Debian package).
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

run() {
    wrk -t2 -c"$connections" -d"${duration}s" -H "Authorization: Bearer $token" "$1/api/me" \
        | awk '/Requests\/sec/ { print $2 }'
}
# Warm both (key set, caches), then measure each in turn.
curl -sf -o /dev/null -H "Authorization: Bearer $token" "$stack/api/me" || { echo "stack did not answer 200" >&2; exit 1; }
curl -sf -o /dev/null "$bare/api/me" || { echo "bare did not answer 200" >&2; exit 1; }
bare_rps=$(run "$bare")
stack_rps=$(run "$stack")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t2 -c$connections -d${duration}s GET /api/me"
printf '%-28s %12s\n' "variant" "requests/s"
printf '%-28s %12s\n' "bare (same handlers)" "$bare_rps"
printf '%-28s %12s\n' "behind the Portcullis stack" "$stack_rps"
awk -v s="$stack_rps" -v b="$bare_rps" 'BEGIN { printf "stack keeps %.1f%% of the bare throughput\n", 100 * s / b }'
