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
    wrk -t"$(( $1 < 2 ? 1 : 2 ))" -c"$1" -d"${duration}s" -H "Authorization: Bearer $token" "$2/api/me" \
        | awk '/Requests\/sec/ { print $2 }'
}
# Warm both (key set, caches), then measure each in turn, three times, alternating: the server shares the machine
# with wrk, and single runs on a VM move by 10-20%; the median ratio is the figure.
curl -sf -o /dev/null -H "Authorization: Bearer $token" "$stack/api/me" || { echo "stack did not answer 200" >&2; exit 1; }
curl -sf -o /dev/null "$bare/api/me" || { echo "bare did not answer 200" >&2; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-34s %14s %14s %8s\n' "wrk -d${duration}s GET /api/me" "bare req/s" "stack req/s" "kept"
for c in "$connections" 1; do
    ratios=()
    for round in 1 2 3; do
        bare_rps=$(run "$c" "$bare")
        stack_rps=$(run "$c" "$stack")
        ratio=$(awk -v s="$stack_rps" -v b="$bare_rps" 'BEGIN { printf "%.1f", 100 * s / b }')
        ratios+=("$ratio")
        printf '%-34s %14s %14s %7s%%\n' "$c connection(s), round $round" "$bare_rps" "$stack_rps" "$ratio"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p)
    echo "$c connection(s): the stack keeps $median% of the bare throughput (median of 3)"
done
