#!/bin/bash
# scripts/run-demo.sh — what `make run` shows: mccom completing lines of a real Python file
# (this repository's own tools/train/corpus.py, which no model was trained on) with the
# shipped model pair: the small model alone, then a rejection that escalates to the large
# model (two-stage speculative decoding, iterative retrieval), each with its account.
set -euo pipefail
cd "$(dirname "$0")/.."
MCCOM=${MCCOM:-build/release/mccom}
SLM=${SLM:-models/mccom-cpu-small-q8_0.gguf}
LLM=${LLM:-models/mccom-cpu-large-q8_0.gguf}
FILE=${FILE:-tools/train/corpus.py}
for f in "$MCCOM" "$SLM" "$LLM" "$FILE"; do
    [ -e "$f" ] || { echo "run-demo: $f is missing" >&2; exit 1; }
done
idx=$(mktemp -u /tmp/mccom-demo-XXXXXX.idx)
trap 'rm -f "$idx"' EXIT
for line in 108 114 118; do
    echo "== $FILE, line $((line + 1)) (the file above it is the context; the repository is indexed)"
    echo "-- the line as written:"
    sed -n "$((line + 1))p" "$FILE"
    echo "-- the small model's suggestion:"
    "$MCCOM" complete --repo . --file "$FILE" --line "$line" --col 0 -m "$SLM" --index "$idx" \
        --no-routing
    echo "-- rejected: the large model's line (verifying the small model's as a draft):"
    "$MCCOM" complete --repo . --file "$FILE" --line "$line" --col 0 -m "$SLM" --llm "$LLM" \
        --index "$idx" --no-routing --reject
    echo
done
