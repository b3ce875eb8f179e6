#!/bin/bash
# bench/serve_hostile.sh — `mccom serve` with its default limits (include/mccom/server.h,
# "Hostile clients") under load and under a flood of huge prompts, as issue 14 asks:
#   1. wrk drives POST /v1/completions (bench/serve_load.lua: rotating prompts, greedy,
#      HOSTILE_MAX_TOKENS tokens) with 8 and then 64 connections, HOSTILE_DURATION
#      seconds each: requests/s, latency p50/p99 as wrk measures it, non-2xx answers,
#      socket errors, and the server's RSS after each row against its RSS after warm-up
#      (it must stay flat);
#   2. HOSTILE_FLOOD (128) clients at once each POST a prompt of HOSTILE_PROMPT_BYTES
#      (1,000,000) bytes: every answer must be a 4xx (400: longer than the context, or 429:
#      over the in-flight memory budget) and the server's peak RSS during the flood
#      (VmHWM, reset before it) must stay under HOSTILE_RSS_BOUND_MIB (256).
# Prints a markdown table per part and exits non-zero when a bound is broken.
# Knobs (environment): HOSTILE_DURATION (60), HOSTILE_CONNECTIONS ("8 64"), HOSTILE_MAX_TOKENS
# (16), HOSTILE_FLOOD (128), HOSTILE_PROMPT_BYTES (1000000), HOSTILE_RSS_BOUND_MIB (256),
# SERVE_MODEL (models/stories260K.gguf), SERVE_THREADS (1), MC_BIN (build/release/mccom).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MC_BIN:-build/release/mccom}
MODEL=${SERVE_MODEL:-models/stories260K.gguf}
DURATION=${HOSTILE_DURATION:-60}
CONNS=${HOSTILE_CONNECTIONS:-"8 64"}
export SERVE_MAX_TOKENS=${HOSTILE_MAX_TOKENS:-16}
FLOOD=${HOSTILE_FLOOD:-128}
PROMPT_BYTES=${HOSTILE_PROMPT_BYTES:-1000000}
BOUND=${HOSTILE_RSS_BOUND_MIB:-256}
THREADS=${SERVE_THREADS:-1}
LUA=bench/serve_load.lua

command -v wrk > /dev/null || { echo "serve_hostile: wrk is not installed (Debian package wrk)" >&2; exit 1; }
command -v curl > /dev/null || { echo "serve_hostile: curl is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "serve_hostile: $BIN is missing (make builds it)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "serve_hostile: model $MODEL is missing" >&2; exit 1; }

work=$(mktemp -d)
"$BIN" serve -m "$MODEL" --port 0 -t "$THREADS" 2> "$work/log" &
pid=$!
cleanup() { kill -TERM "$pid" 2> /dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2> /dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.05
done
[ -n "$port" ] || { echo "serve_hostile: the server did not start" >&2; cat "$work/log" >&2; exit 1; }
url="http://127.0.0.1:$port"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
val() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
metric() { curl -s "$url/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
status=0

echo "model: $MODEL, engine threads $THREADS, the server's default limits (256 connections, 64 per"
echo "address, 10 s to send a request, 64 MiB in-flight budget, 1 MiB bodies, queue 64)"
echo

# ---- 1. load --------------------------------------------------------------------------
wrk -t 1 -c 2 -d 2s --timeout 30s -s "$LUA" "$url/v1/completions" > /dev/null # warm-up
rss0=$(rss_mib)
echo "### wrk, POST /v1/completions, $SERVE_MAX_TOKENS tokens per request (greedy), ${DURATION} s per row"
echo
echo "| connections | requests | req/s | p50 ms | p99 ms | non-2xx | socket errors | RSS MiB before | RSS MiB after |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CONNS; do
    th=$(( c < 4 ? c : 4 ))
    before=$(rss_mib)
    out=$(wrk -t "$th" -c "$c" -d "${DURATION}s" --timeout 60s -s "$LUA" "$url/v1/completions")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$(val "$out" requests)" \
        "$(val "$out" rps)" "$(val "$out" p50_ms)" "$(val "$out" p99_ms)" "$(val "$out" non2xx)" \
        "$(val "$out" errors)" "$before" "$(rss_mib)"
    [ "$(val "$out" non2xx)" = 0 ] && [ "$(val "$out" errors)" = 0 ] || status=1
done
echo
echo "RSS after warm-up: $rss0 MiB; after the last row: $(rss_mib) MiB."
echo

# ---- 2. a flood of huge prompts ----------------------------------------------------------
awk -v n="$PROMPT_BYTES" 'BEGIN {
    head = "{\"prompt\": \""; tail = "\", \"max_tokens\": 16}";
    printf "%s", head;
    k = n - length(head) - length(tail); s = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    while (k >= 64) { printf "%s", s; k -= 64 } while (k-- > 0) printf "a";
    printf "%s", tail }' > "$work/big.json"
rss_before=$(rss_mib)
echo 5 > "/proc/$pid/clear_refs" 2> /dev/null || true # reset VmHWM to the current RSS
t0=$(date +%s.%N)
seq "$FLOOD" | xargs -P "$FLOOD" -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 \
    -H 'Content-Type: application/json' --data-binary @"$work/big.json" "$url/v1/completions" \
    > "$work/codes" || true
t1=$(date +%s.%N)
n_all=$(wc -l < "$work/codes")
n400=$(grep -c '^400$' "$work/codes" || true)
n429=$(grep -c '^429$' "$work/codes" || true)
n4xx=$(grep -c '^4[0-9][0-9]$' "$work/codes" || true)
peak=$(hwm_mib)
echo "### $FLOOD concurrent prompts of $PROMPT_BYTES bytes each"
echo
echo "| clients | answers | 400 (too long) | 429 (over budget) | other | seconds | RSS MiB before | peak RSS MiB | bound MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '| %s | %s | %s | %s | %s | %.2f | %s | %s | %s |\n' "$FLOOD" "$n_all" "$n400" "$n429" \
    "$((n_all - n4xx))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$rss_before" "$peak" "$BOUND"
echo
[ "$n4xx" = "$FLOOD" ] || status=1
awk -v p="$peak" -v b="$BOUND" 'BEGIN { exit !(p < b) }' || status=1
curl -sf "$url/health" > /dev/null || status=1
echo "After the flood: /health answers, RSS $(rss_mib) MiB, in-flight budget in use $(metric mccom_inflight_bytes) bytes."
[ "$status" = 0 ] && echo "All bounds held." || echo "A bound was broken (see above)."

kill -TERM "$pid"
wait "$pid" || { echo "serve_hostile: the server exited with status $?" >&2; exit 1; }
trap - EXIT
rm -rf "$work"
exit "$status"
