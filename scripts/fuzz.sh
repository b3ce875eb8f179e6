#!/bin/bash
# scripts/fuzz.sh — build every fuzz/fuzz_*.c as a libFuzzer binary (clang,
# ASan+UBSan) and run each for FUZZ_SECONDS (default 60) over its corpus.
# New inputs that raise coverage are added to fuzz/corpus/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p "$out"
lib_src=$(ls src/*/*.c | grep -v '^src/cli/')
# The library is compiled once (instrumented for libFuzzer) and linked into every target.
objs=()
for s in $lib_src; do
    extra=""
    case "$s" in
        *_avx2.c) extra="-mavx2 -mfma -mf16c" ;;
        *_avx512.c) extra="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16" ;;
    esac
    o="$out/obj/${s%.c}.o"; mkdir -p "$(dirname "$o")"
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find include src -newer "$o" -name '*.h' -print -quit)" ]; then
        clang -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -fsanitize=fuzzer-no-link,address,undefined $extra -c "$s" -o "$o"
    fi
    objs+=("$o")
done
for f in fuzz/fuzz_*.c; do
    name=$(basename "$f" .c); name=${name#fuzz_}
    echo "== fuzz $name (${secs}s) =="
    clang -std=c11 -D_GNU_SOURCE -DMC_LIBFUZZER -O1 -g -Iinclude -fsanitize=fuzzer,address,undefined \
        "$f" "${objs[@]}" -o "$out/fuzz_$name" -lm -ldl -pthread $(cat scripts/link-libs.txt 2>/dev/null)
    mkdir -p "fuzz/corpus/$name"
    "$out/fuzz_$name" -max_total_time="$secs" -max_len=65536 "fuzz/corpus/$name" 2>&1 | tail -n 3
done
