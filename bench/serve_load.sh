#!/bin/bash
# bench/serve_load.sh — `mccom serve` under load: wrk drives POST /v1/completions
# (bench/serve_load.lua: rotating prompts, greedy, SERVE_MAX_TOKENS tokens) with N
# connections for SERVE_DURATION seconds per row, against one server started here on
# a small model. Prints a markdown table: requests/s and its ratio to the first row
# (one connection by default, measured in the same run), latency p50/p99 as wrk
# measures it, non-2xx answers, socket errors, the share of wall time the engine
# thread was busy (mccom_engine_seconds_total from /metrics), and the server's RSS
# after each row, with the RSS after warm-up as the reference (memory must stay
# flat).
#
# Knobs (environment): SERVE_DURATION (60 s per row), SERVE_CONNECTIONS ("1 8 32"),
# SERVE_MAX_TOKENS (16), SERVE_MODEL (models/stories260K.gguf), SERVE_THREADS
# (engine threads, 1), SERVE_SLOTS (2), MC_BIN (build/release/mccom).
# The server runs one engine thread: requests/s beyond one connection measures
# queueing and HTTP overhead, not parallel decoding.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MC_BIN:-build/release/mccom}
MODEL=${SERVE_MODEL:-models/stories260K.gguf}
DURATION=${SERVE_DURATION:-60}
CONNS=${SERVE_CONNECTIONS:-"1 8 32"}
export SERVE_MAX_TOKENS=${SERVE_MAX_TOKENS:-16}
THREADS=${SERVE_THREADS:-1}
SLOTS=${SERVE_SLOTS:-2}
LUA=bench/serve_load.lua

command -v wrk > /dev/null || { echo "serve_load: wrk is not installed (Debian package wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "serve_load: $BIN is missing (make builds it)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "serve_load: model $MODEL is missing" >&2; exit 1; }

log=$(mktemp)
"$BIN" serve -m "$MODEL" --port 0 -t "$THREADS" --slots "$SLOTS" --max-queue 1024 2> "$log" &
pid=$!
cleanup() { kill -TERM "$pid" 2> /dev/null || true; rm -f "$log"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2> /dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
done
[ -n "$port" ] || { echo "serve_load: the server did not start" >&2; cat "$log" >&2; exit 1; }
url="http://127.0.0.1:$port"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
engine_s() { curl -s "$url/metrics" | awk '/^mccom_engine_seconds_total / { print $2 }'; }
val() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

# warm-up: caches, allocator, every prompt once
wrk -t 1 -c 2 -d 2s --timeout 30s -s "$LUA" "$url/v1/completions" > /dev/null
rss0=$(rss_mib)

echo "model: $MODEL, $SERVE_MAX_TOKENS tokens per request (greedy), engine threads $THREADS, $SLOTS slots, ${DURATION} s per row"
echo
echo "| connections | requests | req/s | vs first row | p50 ms | p99 ms | non-2xx | socket errors | engine busy | RSS MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
base=""
for c in $CONNS; do
    th=$(( c < 4 ? c : 4 ))
    e0=$(engine_s)
    out=$(wrk -t "$th" -c "$c" -d "${DURATION}s" --timeout 60s -s "$LUA" "$url/v1/completions")
    e1=$(engine_s)
    rps=$(val "$out" rps)
    [ -n "$base" ] || base=$rps
    busy=$(awk -v a="$e0" -v b="$e1" -v d="$DURATION" 'BEGIN { printf "%.0f%%", 100 * (b - a) / d }')
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$(val "$out" requests)" "$rps" \
        "$ratio" "$(val "$out" p50_ms)" "$(val "$out" p99_ms)" "$(val "$out" non2xx)" "$(val "$out" errors)" \
        "$busy" "$(rss_mib)"
done
echo
echo "RSS after warm-up: $rss0 MiB; after the last row: $(rss_mib) MiB."
kill -TERM "$pid"
wait "$pid" || { echo "serve_load: the server exited with status $?" >&2; exit 1; }
trap - EXIT
rm -f "$log"
