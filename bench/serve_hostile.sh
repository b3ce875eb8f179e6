#!/bin/bash
# bench/serve_hostile.sh — `mccom serve` with its default limits (include/mccom/server.h,
# "Hostile clients") under load and under a flood of huge prompts, as issue 14 asks:
#   1. wrk drives POST /v1/completions (bench/serve_load.lua: rotating prompts, greedy,
#      HOSTILE_MAX_TOKENS tokens) with 8 and then 64 connections, HOSTILE_DURATION
#      seconds each: requests/s, latency p50/p99 as wrk measures it, non-2xx answers,
#      socket errors, and the server's RSS after each row against its RSS after warm-up
#      (it must stay flat);
#   2. HOSTILE_FLOOD (128) clients (threads of one python3 process, from 127.0.0.1-4,
#      all starting together) each POST a prompt of HOSTILE_PROMPT_BYTES (1,000,000) bytes: every
#      answer must be a 4xx (400: longer than the context, or 429:
#      over the in-flight memory budget) and the server's peak RSS during the flood
#      (VmHWM, reset before it) must stay under HOSTILE_RSS_BOUND_MIB (256).
# Prints a markdown table per part and exits non-zero when a bound is broken.
# Knobs (environment): HOSTILE_DURATION (60), HOSTILE_CONNECTIONS ("8 64"), HOSTILE_MAX_TOKENS
# (16), HOSTILE_FLOOD (128), HOSTILE_PROMPT_BYTES (1000000), HOSTILE_RSS_BOUND_MIB (256),
# HOSTILE_REQUEST_TIMEOUT (120),
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
# The flood's clients are 128 threads of one process on a 2-core machine: starved of CPU,
# one can pause mid-upload longer than the default request timeout (10 s + 1 s per 16 KiB)
# and be closed for it, which is that defence working, not what this bench measures.
REQ_TIMEOUT=${HOSTILE_REQUEST_TIMEOUT:-120}
LUA=bench/serve_load.lua

command -v wrk > /dev/null || { echo "serve_hostile: wrk is not installed (Debian package wrk)" >&2; exit 1; }
command -v curl > /dev/null || { echo "serve_hostile: curl is not installed" >&2; exit 1; }
command -v python3 > /dev/null || { echo "serve_hostile: python3 is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "serve_hostile: $BIN is missing (make builds it)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "serve_hostile: model $MODEL is missing" >&2; exit 1; }

work=$(mktemp -d)
"$BIN" serve -m "$MODEL" --port 0 -t "$THREADS" --request-timeout "$REQ_TIMEOUT" 2> "$work/log" &
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
echo "address, 64 MiB in-flight budget, 1 MiB bodies, queue 64) but a request timeout of $REQ_TIMEOUT s"
echo "(default 10 s; see the script's head)"
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
# One client process with a thread per connection (128 curl processes would measure
# process start-up on a 2-core machine, not the server): once every thread is ready, all
# connect and send their request at once; the HTTP status of each answer goes to codes
# (0: none).
cat > "$work/flood.py" << 'PYEOF'
import socket, sys, threading
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
head, tail = b'{"prompt": "', b'", "max_tokens": 16}'
body = head + b"a" * (size - len(head) - len(tail)) + tail
req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
go, codes = threading.Barrier(n), [0] * n
def one(i):
    try:
        go.wait()  # every thread ready: then all connect and send at once
        # from four loopback addresses: 128 clients, not one client with 128 connections
        # (one address may hold 64: more would close its own waiting connections)
        s = socket.create_connection(("127.0.0.1", port), timeout=120,
                                     source_address=("127.0.0.%d" % (1 + i % 4), 0))
        s.sendall(req)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        codes[i] = int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.") else 0
        s.close()
    except Exception:
        codes[i] = 0
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(str(c) for c in codes))
PYEOF
rss_before=$(rss_mib)
echo 5 > "/proc/$pid/clear_refs" 2> /dev/null || true # reset VmHWM to the current RSS
t0=$(date +%s.%N)
if [ "$FLOOD" -gt 0 ]; then
    python3 "$work/flood.py" "$port" "$FLOOD" "$PROMPT_BYTES" > "$work/codes"
else
    : > "$work/codes"
fi
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
echo "After the flood: /health answers, RSS $(rss_mib) MiB, in-flight budget in use $(metric mccom_inflight_bytes) bytes;"
echo "connections closed by the server: $(metric mccom_connections_timed_out_total) timed out, $(metric mccom_connections_evicted_total) evicted, $(metric mccom_connections_refused_total) refused."
[ "$status" = 0 ] && echo "All bounds held." || echo "A bound was broken (see above)."

kill -TERM "$pid"
wait "$pid" || { echo "serve_hostile: the server exited with status $?" >&2; exit 1; }
trap - EXIT
rm -rf "$work"
exit "$status"
