#!/bin/bash
# tools/train/gpu-run.sh — the one-shot training of the release pair on a lent GPU
# (one H100/H200, one command of at most ~9 minutes; docs/training.md "The one-shot GPU run").
#
# Runs on the device machine, in the repository root, with what tools/train/gpu-pack.sh put
# in build/gpu-carry (carried as an ignored path): a compressed sample of the corpus' train
# split and its validation split, the benchmark sample's tokens, the exclusion list, and
# mkexamples/mktok linked statically. In order, each result written under $OUT as soon as
# it exists (a command cut short still returns what was done):
#   1. check and unpack the carry; the shipped vocabulary's tokenizer.json
#   2. in the background (CPU): the machine's own Python files (site-packages, standard
#      library) through the same corpus filters (exclusion hashes, held-out packages,
#      duplicates) -> tokens; retrieval-formatted examples of the carried packages
#   3. the small model (v2-small): warmup-stable for T_SMALL s on the carried tokens, then a
#      decay of T_SMALL_DECAY s on the examples at context 1024 -> $OUT/small.part-*; its
#      Hugging Face export checked with transformers (dump_logits.py)
#   4. the large model (gpu-slm, 38M): the same on carried + machine tokens for what is left
#      of the DEADLINE -> $OUT/large.part-*
#   5. $OUT/logs.tar.gz: this run's log, every train log, corpus statistics, the transformers
#      check, the parts' manifests (small.json, large.json; each is also printed to stdout
#      when its model is written, so a command cut short still tells them)
# At most 8 files come back: small (2 parts), large (5 parts), logs.tar.gz.
# Back here: tools/train/gpu-unpack.sh.
#
# Environment: OUT (required), CARRY=build/gpu-carry, WORK=/tmp/mcgpu, PY=python3,
#   DEADLINE=510 (seconds from start by which training must end), T_SMALL=75,
#   T_SMALL_DECAY=20, T_LARGE_DECAY=45, LARGE=gpu-slm, EXTRA_DIRS (default: the
#   interpreter's purelib and stdlib), TOY=1 (tiny sizes, CPU: the test of this script).
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?OUT must name the results folder}"
C=${CARRY:-build/gpu-carry}
W=${WORK:-/tmp/mcgpu}
PY=${PY:-python3}
DEADLINE=${DEADLINE:-510}
T_SMALL=${T_SMALL:-75}
T_SMALL_DECAY=${T_SMALL_DECAY:-20}
T_LARGE_DECAY=${T_LARGE_DECAY:-45}
LARGE=${LARGE:-gpu-slm}
TOY=${TOY:-0}
T=tools/train
mkdir -p "$OUT" "$W"
T0=$(date +%s)
LOG=$W/run.log
log() { echo "gpu-run: +$(( $(date +%s) - T0 ))s $*" | tee -a "$LOG" >&2; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }

# Sizes: the real run, or the toy that tests this script on a CPU in about a minute.
if [ "$TOY" = 1 ]; then
    SMALL=tiny-test; LARGE=tiny-test
    SMALL_ARGS="--batch 2 --n-ctx 128 --lr 3e-3 --warmup 2 --compile off"
    LARGE_ARGS="--batch 2 --n-ctx 128 --lr 3e-3 --warmup 2 --compile off"
    DECAY_CTX=128; EX_FRACTION=1; EVAL_TOKENS=2048
else
    SMALL=v2-small
    # 64 x 1024 = 65,536 tokens per step; no torch.compile for a model this small (its
    # compile would take a third of the budget; eager launches are not the bottleneck here)
    SMALL_ARGS="--batch 64 --n-ctx 1024 --lr 2e-3 --warmup 200 --compile off"
    LARGE_ARGS="--batch 64 --n-ctx 1024 --lr 1.2e-3 --warmup 300 --compile on"
    DECAY_CTX=1024; EX_FRACTION=0.35; EVAL_TOKENS=262144
fi

log "start; $( (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo no GPU) | head -1)"
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1 | tee -a "$LOG"

# ---- 1. the carry --------------------------------------------------------------------
if ! (cd "$C" && sha256sum -c --quiet SHA256SUMS) >> "$LOG" 2>&1; then
    log "the carry does not match its SHA256SUMS: stop"; exit 1
fi
cat "$C"/corpus.tar.zst.part-* | zstd -dq | tar -C "$W" -xf - || { log "unpacking failed"; exit 1; }
cp models/mccom-vocab.gguf "$W/vocab.gguf"
"$PY" $T/tokfile.py gguf-vocab "$W/vocab.gguf" "$W/tokenizer.json" > /dev/null
MKT="$C/gpu-tools/mktok"; MKX="$C/gpu-tools/mkexamples"
NPROC=$(nproc)
"$MKT" --vocab "$W/vocab.gguf" --threads "$NPROC" -o "$W/train.tok" "$W/text/train" 2>> "$LOG"
"$MKT" --vocab "$W/vocab.gguf" --threads "$NPROC" -o "$W/val.tok" "$W/text/val" 2>> "$LOG"
VALS=(--val "val=$W/val.tok" --val "bench=$C/bench.tok")
log "carry unpacked and tokenized"

# ---- 2. background CPU work -----------------------------------------------------------
if [ -z "${EXTRA_DIRS:-}" ]; then
    EXTRA_DIRS="$("$PY" -c 'import sysconfig as s; print(s.get_paths()["purelib"])') $("$PY" -c 'import sysconfig as s; print(s.get_paths()["stdlib"])')"
fi
(
    args=()
    for d in $EXTRA_DIRS; do args+=(--extra-dir "$d"); done
    "$PY" $T/corpus.py build --packages '' "${args[@]}" --out "$W/corpus-image" \
        --exclude "$C/exclude.sha256" --repos "$C/repos.tsv" > "$W/corpus-image.log" 2>&1 &&
    "$MKT" --vocab "$W/vocab.gguf" --threads 8 -o "$W/image.tok" "$W/corpus-image/text/train" \
        >> "$W/corpus-image.log" 2>&1 &&
    "$PY" $T/gpu_io.py concat "$W/all.tok" "$W/train.tok" "$W/image.tok" >> "$W/corpus-image.log" 2>&1
) &
IMAGE_PID=$!
"$MKX" --vocab "$W/vocab.gguf" --out "$W/examples.tok" --ctx "$DECAY_CTX" --each "$W/text/train" \
    --repo-fraction "$EX_FRACTION" > "$W/examples.log" 2>&1 &
EX_PID=$!

# ---- 3. the small model ---------------------------------------------------------------
train() { # name, preset-or-init args..., then train.py args
    local name=$1; shift
    "$PY" $T/train.py --train "$W/train.tok" --vocab "$W/tokenizer.json" --out "$W/runs/$name" \
        --log-every 50 --ckpt-every 1000000 --eval-tokens "$EVAL_TOKENS" "$@" \
        > "$W/runs-$name.log" 2>&1
    local rc=$?
    tail -n 3 "$W/runs-$name.log" | tee -a "$LOG" >&2
    return $rc
}
decay() { # name, base run, context, seconds, extra args
    local name=$1 base=$2 secs=$3; shift 3
    wait "$EX_PID" 2>/dev/null
    local data="$W/examples.tok"
    [ -s "$data" ] || { log "no examples (see examples.log): decaying on plain tokens"; data="$W/train.tok"; }
    train "$name" --preset "$SMALL" --init-from "$W/runs/$base/ckpt.pt" --train "$data" "${VALS[@]}" \
        --schedule wsd --steps 1000000 --decay-frac 1 --time-budget "$secs" --n-ctx "$DECAY_CTX" \
        --fim-rate 0 --probe-copy 8 "$@"
}
ship() { # name: slim checkpoint parts under $OUT, the manifest in $W and on stdout
    if "$PY" $T/gpu_io.py slim "$W/runs/$1/ckpt.pt" "$OUT/$1" --final "$W/runs/$1/final.json" >> "$LOG" 2>&1; then
        mv "$OUT/$1.json" "$W/$1.json"
        echo "MANIFEST $1 $(tr -d '\n ' < "$W/$1.json")"
        log "$1 written to \$OUT"
    else
        log "$1: no checkpoint to ship"
    fi
}
log "small: $SMALL for ${T_SMALL}s + ${T_SMALL_DECAY}s decay"
# shellcheck disable=SC2086
train small-main --preset "$SMALL" --schedule wsd --steps 0 --time-limit "$T_SMALL" --probe-copy 0 $SMALL_ARGS
# shellcheck disable=SC2086
decay small small-main "$T_SMALL_DECAY" --batch "$(echo $SMALL_ARGS | sed 's/.*--batch \([0-9]*\).*/\1/')"
ship small
# the Hugging Face export, loaded by transformers (the check this machine can do)
if "$PY" $T/export.py --ckpt "$W/runs/small/ckpt.pt" --vocab "$W/tokenizer.json" --out "$W/hf-small" > /dev/null 2>&1; then
    ids=$(seq -s, 10 137)
    "$PY" $T/dump_logits.py "$W/hf-small" --tokens "$ids" --out "$W/a.bin" > /dev/null 2>&1
    "$PY" $T/dump_logits.py "$W/hf-small" --tokens "$ids" --out "$W/b.bin" --transformers > "$W/transformers.log" 2>&1
    if [ -s "$W/b.bin" ]; then
        "$PY" -c "import numpy as n; a=n.fromfile('$W/a.bin','<f4'); b=n.fromfile('$W/b.bin','<f4'); print('transformers vs model.py on the export: max|diff| %.3g of max|logit| %.3g' % (abs(a-b).max(), abs(a).max()) if a.size == b.size and a.size else 'transformers: sizes differ')" 2>&1 | tee -a "$LOG"
    else
        log "transformers could not load the export: $(tail -n 1 "$W/transformers.log")"
    fi
fi

# ---- 4. the large model ---------------------------------------------------------------
wait "$IMAGE_PID"
DATA="$W/all.tok"
[ -s "$DATA" ] || { log "the machine's corpus failed (see corpus-image.log): carried tokens only"; DATA="$W/train.tok"; }
T_LARGE=$(( $(left) - T_LARGE_DECAY - 25 ))
if [ "$T_LARGE" -lt 30 ]; then
    log "no time left for the large model ($(left)s)"
else
    log "large: $LARGE for ${T_LARGE}s + ${T_LARGE_DECAY}s decay on $DATA"
    # shellcheck disable=SC2086
    train large-main --preset "$LARGE" --train "$DATA" --schedule wsd --steps 0 --time-limit "$T_LARGE" \
        --probe-copy 0 $LARGE_ARGS
    SMALL=$LARGE decay large large-main "$T_LARGE_DECAY" --batch "$(echo $LARGE_ARGS | sed 's/.*--batch \([0-9]*\).*/\1/')" --compile off
    ship large
fi

# ---- 5. logs ---------------------------------------------------------------------------
log "done; files: $(cd "$OUT" && ls | tr '\n' ' ')logs.tar.gz"
(cd "$W" && tar -czf "$OUT/logs.tar.gz" --ignore-failed-read ./*.log ./*.json runs/*/log.jsonl \
    runs/*/final.json corpus-image/stats.json 2>/dev/null)
(cd "$OUT" && sha256sum ./* | tee -a /dev/stderr > /dev/null)
