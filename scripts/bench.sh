#!/bin/bash
# scripts/bench.sh — the `make bench` entry point: markdown tables on stdout.
#
#  1. Engine speed, mccom against llama.cpp (build/oracle/mccom-oracle, the prebuilt
#     libllama v0.5.0) on the same files and threads: prompt processing (pp 128 tokens in
#     one batch) and decode (tg 64 tokens one at a time), medians of BENCH_REPS runs, for
#     random models of about 30M, 150M and 500M parameters (the last with Qwen2.5-0.5B's
#     shape) in F16, Q8_0 and Q4_0. The models are generated once by build/tools/mkmodel
#     and cached in build/bench-models/.
#  2. Decode speed as a share of the memory-bandwidth limit: a decode step reads every
#     weight once, so tokens/s <= copy bandwidth (bench_stream) / model bytes.
#  3. Long prompts: prompt processing at 512, 1024 and 2048 tokens (Q8_0), mccom against
#     llama.cpp, on the code model's shape (4 layers, 192 wide, 3 heads sharing 1 KV head)
#     and the 30M and 150M shapes: where attention over the cached positions dominates.
#  4. The cost of a one-line completion on a 1,500-token file: 16 typed tokens appended
#     and 12 generated, with the file's prefix cached (warm) and not (cold).
#  5. `mccom serve` under load (bench/serve_load.sh): wrk against /v1/completions on
#     models/stories260K.gguf with 1, 8 and 32 connections, SERVE_DURATION seconds each.
#  6. `mccom serve` under hostile clients (bench/serve_hostile.sh): its default limits, wrk
#     at 8 and 64 connections for HOSTILE_DURATION seconds each (req/s, p99, errors, RSS
#     before/after), then 128 concurrent 1 MB prompts (all 4xx, peak RSS under 256 MiB).
#  7. Every other build/release/bench_* program, in turn (new ones join automatically):
#     bench_copy, for one, prints the copy tier's proposal latency p50/p95, build time, size
#     and one-file update time on /usr/lib/python3.11, and its accuracy on the line split.
# Knobs (environment): BENCH_REPS (3), BENCH_THREADS ("1 2"), BENCH_SIZES ("30m 150m 500m"),
# BENCH_TYPES ("f16 q8_0 q4_0"), BENCH_COMPLETION_SIZES ("30m 150m"), BENCH_LONG_SIZES
# ("code 30m 150m"), BENCH_LONG_PP ("512 1024 2048"; empty skips), BENCH_TIMEOUT (600 s
# per measurement), SERVE_DURATION (60 s per load level; 0 skips the load test) and the
# other SERVE_* knobs of bench/serve_load.sh, HOSTILE_DURATION (60 s per row; 0 skips
# bench/serve_hostile.sh) and its other HOSTILE_* knobs. On the 2-core reference machine the full run takes about 15 minutes;
# it needs a quiet machine (both engines' threads spin while they wait for each other).
set -euo pipefail
cd "$(dirname "$0")/.."

REL=build/release
ORACLE=build/oracle/mccom-oracle
MKMODEL=build/tools/mkmodel
MODELS=build/bench-models
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-"1 2"}
SIZES=${BENCH_SIZES:-"30m 150m 500m"}
TYPES=${BENCH_TYPES:-"f16 q8_0 q4_0"}
COMPLETION_SIZES=${BENCH_COMPLETION_SIZES:-"30m 150m"}
LONG_SIZES=${BENCH_LONG_SIZES:-"code 30m 150m"}
LONG_PP=${BENCH_LONG_PP-"512 1024 2048"}
# No single measurement may hang the benchmark (e.g. spinning threads on a busy machine).
TIMEOUT=${BENCH_TIMEOUT:-600}

for f in "$REL/bench_engine" "$REL/bench_stream" "$MKMODEL" "$ORACLE"; do
    [ -x "$f" ] || { echo "bench: $f is missing (make bench builds it)" >&2; exit 1; }
done

# Shapes: mkmodel arguments per size.
shape() {
    case "$1" in
    code) echo "--arch llama --vocab 16384 --embd 192 --layers 4 --heads 3 --kv-heads 1 --ff 512 --tied" ;;
    30m)  echo "--arch llama --vocab 32000 --embd 512 --layers 4 --heads 8 --ff 1408 --tied" ;;
    150m) echo "--arch llama --vocab 32000 --embd 768 --layers 14 --heads 12 --ff 2048" ;;
    500m) echo "--arch qwen2 --vocab 151936 --embd 896 --layers 24 --heads 14 --kv-heads 2 --ff 4864 --bias --tied" ;;
    *) echo "bench: unknown size $1" >&2; exit 1 ;;
    esac
}
shape_desc() {
    case "$1" in
    code) echo "llama 4L 192d, 3 heads / 1 KV head (code model shape)" ;;
    30m)  echo "llama 4L 512d" ;;
    150m) echo "llama 14L 768d" ;;
    500m) echo "qwen2 24L 896d (Qwen2.5-0.5B shape)" ;;
    esac
}

model() { echo "$MODELS/$1-$2.gguf"; }

# A value from the flat JSON our tools print: jget KEY < json
jget() { sed -n "s/^ *\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" | head -1; }
# awk arithmetic with a fallback for missing numbers
calc() { awk "BEGIN { a = $1; printf(\"$2\", a) }" 2>/dev/null || echo "-"; }

mkdir -p "$MODELS"
for s in $SIZES $COMPLETION_SIZES $LONG_SIZES; do
    types="$TYPES q8_0"
    case " $SIZES " in *" $s "*) ;; *) types=q8_0 ;; esac
    for t in $types; do
        f=$(model "$s" "$t")
        if [ ! -f "$f" ]; then
            echo "bench: generating $f" >&2
            # shellcheck disable=SC2046
            "$MKMODEL" -q $(shape "$s") --ctx 4096 --type "$t" --seed 1 "$f"
        fi
    done
done

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo "# mccom benchmarks"
echo
echo "- machine: ${cpu:-unknown CPU}, $(nproc) online CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
echo "- build: $(make -s --no-print-directory print-cflags)"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- llama.cpp: prebuilt libllama v0.5.0 (commit de3ff815, node-llama-cpp 3.22.1), CPU backend $("$ORACLE" info | sed -n 's/^cpu_backend: //p'), flash attention off, KV cache F16 (both engines)"
echo "- models: random weights from build/tools/mkmodel (speed does not depend on the values)"
echo

# ---- bandwidth ---------------------------------------------------------------------
declare -A BW
echo "## Memory bandwidth (STREAM copy, best of 10)"
echo
echo "| threads | copy GB/s |"
echo "|---:|---:|"
for th in $THREADS; do
    BW[$th]=$("$REL/bench_stream" --threads "$th" --json | sed -n 's/.*"copy_gb_s": \([0-9.]*\).*/\1/p')
    echo "| $th | ${BW[$th]} |"
done
echo

# ---- engine speed ---------------------------------------------------------------------
echo "## Engine speed: mccom vs llama.cpp (tokens/s, median of $REPS)"
echo
echo "pp = $((128)) prompt tokens in one batch; tg = 64 tokens decoded one at a time (as llama-bench)."
echo "\"% of bw\" = decode tokens/s as a share of copy bandwidth / model bytes."
echo
echo "| model | params | type | MiB | threads | pp mccom | pp llama.cpp | pp ratio | tg mccom | tg llama.cpp | tg ratio | tg mccom % of bw | tg llama.cpp % of bw |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in $SIZES; do
    for t in $TYPES; do
        f=$(model "$s" "$t")
        for th in $THREADS; do
            ours=$(timeout "$TIMEOUT" "$REL/bench_engine" speed "$f" --pp 128 --tg 64 --threads "$th" --reps "$REPS" 2>&1) ||
                { echo "bench: bench_engine failed on $f: $ours" >&2; ours=""; }
            theirs=$(timeout "$TIMEOUT" "$ORACLE" bench "$f" --pp 128 --tg 64 --threads "$th" --reps "$REPS" 2>&1) ||
                { echo "bench: oracle failed on $f: $theirs" >&2; theirs=""; }
            bytes=$(echo "$theirs" | jget model_bytes)
            [ -n "$bytes" ] || bytes=$(echo "$ours" | jget model_bytes)
            params=$(echo "$theirs" | jget n_params)
            pp_o=$(echo "$ours" | jget pp_tok_s); pp_l=$(echo "$theirs" | jget pp_tok_s)
            tg_o=$(echo "$ours" | jget tg_tok_s); tg_l=$(echo "$theirs" | jget tg_tok_s)
            bw=${BW[$th]:-0}
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                "$(shape_desc "$s")" "$(calc "${params:-0}/1e6" '%.0fM')" "$t" \
                "$(calc "${bytes:-0}/1048576" '%.0f')" "$th" \
                "$(calc "${pp_o:-0}" '%.1f')" "$(calc "${pp_l:-0}" '%.1f')" \
                "$(calc "${pp_o:-0}/${pp_l:-0}" '%.2f')" \
                "$(calc "${tg_o:-0}" '%.1f')" "$(calc "${tg_l:-0}" '%.1f')" \
                "$(calc "${tg_o:-0}/${tg_l:-0}" '%.2f')" \
                "$(calc "100*${tg_o:-0}*${bytes:-0}/(${bw}*1e9)" '%.0f%%')" \
                "$(calc "100*${tg_l:-0}*${bytes:-0}/(${bw}*1e9)" '%.0f%%')"
        done
    done
done
echo

# ---- long prompts ----------------------------------------------------------------------
if [ -n "$LONG_PP" ]; then
    echo "## Long prompts: prompt processing, mccom vs llama.cpp (tokens/s, median of $REPS)"
    echo
    echo "pp tokens into an empty cache (mccom in batches of 512, its default; llama.cpp in one batch); Q8_0 weights, F16 KV cache."
    echo
    echo "| model | threads | pp | mccom | llama.cpp | ratio |"
    echo "|---|---:|---:|---:|---:|---:|"
    for s in $LONG_SIZES; do
        f=$(model "$s" q8_0)
        for th in $THREADS; do
            for pp in $LONG_PP; do
                ours=$(timeout "$TIMEOUT" "$REL/bench_engine" speed "$f" --pp "$pp" --tg 0 --threads "$th" --reps "$REPS" 2>&1) ||
                    { echo "bench: bench_engine failed on $f: $ours" >&2; ours=""; }
                theirs=$(timeout "$TIMEOUT" "$ORACLE" bench "$f" --pp "$pp" --tg 0 --threads "$th" --reps "$REPS" 2>&1) ||
                    { echo "bench: oracle failed on $f: $theirs" >&2; theirs=""; }
                pp_o=$(echo "$ours" | jget pp_tok_s); pp_l=$(echo "$theirs" | jget pp_tok_s)
                printf '| %s | %s | %s | %s | %s | %s |\n' "$(shape_desc "$s")" "$th" "$pp" \
                    "$(calc "${pp_o:-0}" '%.1f')" "$(calc "${pp_l:-0}" '%.1f')" \
                    "$(calc "${pp_o:-0}/${pp_l:-0}" '%.2f')"
            done
        done
    done
    echo
fi

# ---- completion latency ------------------------------------------------------------
th_max=$(echo "$THREADS" | tr ' ' '\n' | sort -n | tail -1)
echo "## One-line completion on a 1,500-token file (mccom, $th_max threads, median of $REPS)"
echo
echo "The request is the file (1,500 tokens) plus 16 typed tokens, then 12 generated."
echo "Warm: the file's prefix is in the KV cache (mc_ctx_set_prompt reuses it); cold: empty cache."
echo
echo "| model | type | warm ms | cold ms | cold / warm |"
echo "|---|---|---:|---:|---:|"
for s in $COMPLETION_SIZES; do
    f=$(model "$s" q8_0)
    out=$(timeout "$TIMEOUT" "$REL/bench_engine" completion "$f" --ctx 1500 --append 16 --gen 12 \
          --threads "$th_max" --reps "$REPS" 2>&1) ||
        { echo "bench: bench_engine completion failed on $f: $out" >&2; out=""; }
    w=$(echo "$out" | jget warm_ms); c=$(echo "$out" | jget cold_ms)
    printf '| %s | q8_0 | %s | %s | %s |\n' "$(shape_desc "$s")" "${w:--}" "${c:--}" \
        "$(calc "${c:-0}/${w:-0}" '%.1fx')"
done
echo

# ---- the server under load ---------------------------------------------------------------
if [ "${SERVE_DURATION:-60}" != 0 ]; then
    echo "## mccom serve under load (wrk, POST /v1/completions)"
    echo
    # one row of SERVE_DURATION seconds per connection count, plus start-up and warm-up
    rows=$(echo ${SERVE_CONNECTIONS:-1 8 32} | wc -w)
    timeout $(( ${SERVE_DURATION:-60} * (rows + 1) + 60 )) bench/serve_load.sh || echo "(serve_load failed: exit $?)"
    echo
fi

# ---- the server under hostile clients -------------------------------------------------------
if [ "${HOSTILE_DURATION:-60}" != 0 ]; then
    echo "## mccom serve under hostile clients (bench/serve_hostile.sh)"
    echo
    rows=$(echo ${HOSTILE_CONNECTIONS:-8 64} | wc -w)
    timeout $(( ${HOSTILE_DURATION:-60} * (rows + 1) + 300 )) bench/serve_hostile.sh ||
        echo "(serve_hostile: a bound was broken or it failed: exit $?)"
    echo
fi

# ---- every other bench program ---------------------------------------------------------
for b in "$REL"/bench_*; do
    name=$(basename "$b")
    case "$name" in bench_engine|bench_stream) continue ;; esac
    [ -x "$b" ] || continue
    echo "## $name"
    echo
    timeout "$TIMEOUT" "$b" || echo "($name failed: exit $?)"
    echo
done
