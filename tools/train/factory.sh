#!/bin/bash
# tools/train/factory.sh — mccom's model factory, one command per step, resumable.
#
#   tools/train/factory.sh STEP [PRESET]
#     corpus     fetch the pinned Debian packages, build the filtered corpus (+ bench trees)
#     vocab      train the shared vocabulary (mccom tokenizer train, FIM tokens included)
#     tokenize   corpus train/val and the benchmark repositories -> token files
#     train      train PRESET (train.py; resumes from its checkpoint)
#     pretrain   the open-ended main run of PRESET (warmup-stable-decay, constant learning rate
#                after warmup) in runs/PRESET-main: runs until stopped (PRETRAIN_ARGS
#                --time-limit S, SIGTERM, Ctrl-C) with a checkpoint; run it again to continue
#     decay      a release branch of the main run: runs/PRESET starts from
#                runs/PRESET-main/ckpt.pt and decays the learning rate to 0 over DECAY_STEPS
#                steps on DECAY_TRAIN (default tok/examples.tok, else tok/train.tok) at
#                context DECAY_CTX; then export/convert/quantize/check as for `train`
#     release    forget PRESET's previous release (runs/PRESET, its stamps), then decay,
#                export, convert, quantize, check
#     export     PRESET's checkpoint -> Hugging Face directory
#     convert    Hugging Face directory -> F32 GGUF (mccom convert hf --vocab vocab.gguf)
#     quantize   F32 GGUF -> Q8_0 and Q4_0 (mccom quantize)
#     check      PyTorch's logits (dump_logits.py on the Hugging Face directory) against mccom's
#                on every GGUF of PRESET, on the first 600 bytes of tools/train/corpus.py;
#                fails if F32 is off by more than 1e-4 of the largest logit; the report is
#                gguf/PRESET-check.txt (needs build/tools/cmplogits: make tools)
#     all        every step above for PRESET
#     status     which steps are done
# A finished step leaves a stamp in $MODELS/stamps and is skipped next time; delete the stamp
# (or the step's output) to redo it. `train` itself resumes from runs/PRESET/ckpt.pt.
#
# Variables (environment):
#   MODELS=build/models        everything the factory makes
#   MCCOM=build/release/mccom  the mccom binary (C steps)
#   PY=/usr/bin/python3        Python with torch and numpy
#   SHARED=../shared           holds bench/exclude.sha256, bench/repos.tsv, bench/fetch-repos.sh
#   VOCAB_SIZE=16384
#   VOCAB_FROM=models/mccom-vocab.gguf   the vocab step keeps this shipped vocabulary (so every
#                              model stays verifiable against every other) and writes its
#                              tokenizer.json; VOCAB_FROM= trains a new one
#   CORPUS_ARGS=               extra corpus.py build args, e.g. "--extra-dir /usr/lib/python3.11"
#   PACKAGES=tools/train/packages.txt ('' for none: extra dirs only)
#   BYTE_VOCAB=0               1: a toy byte-level vocabulary and tokenizer in Python (tests,
#                              or before the C tokenizer exists)
#   TRAIN_ARGS=                extra train.py args (--steps, --batch, --accum, --time-budget, ...)
#   PRETRAIN_ARGS=             extra train.py args of `pretrain` (--lr, --batch, --time-limit, ...)
#   DECAY_STEPS=1000 DECAY_CTX=1024 DECAY_TRAIN= DECAY_ARGS=   the `decay` step
#   QUANTS="q8_0 q4_0"
#   NO_BENCH=0                 1: no benchmark-repository validation set
set -euo pipefail
cd "$(dirname "$0")/../.."

MODELS=${MODELS:-build/models}
MCCOM=${MCCOM:-build/release/mccom}
PY=${PY:-/usr/bin/python3}
SHARED=${SHARED:-../shared}
[ -d "$SHARED/bench" ] || SHARED=/work/shared
VOCAB_SIZE=${VOCAB_SIZE:-16384}
VOCAB_FROM=${VOCAB_FROM-models/mccom-vocab.gguf}
PRETRAIN_ARGS=${PRETRAIN_ARGS:-}
DECAY_STEPS=${DECAY_STEPS:-1000}
DECAY_CTX=${DECAY_CTX:-1024}
DECAY_TRAIN=${DECAY_TRAIN:-}
DECAY_ARGS=${DECAY_ARGS:-}
CORPUS_ARGS=${CORPUS_ARGS:-}
PACKAGES=${PACKAGES-tools/train/packages.txt}
BYTE_VOCAB=${BYTE_VOCAB:-0}
TRAIN_ARGS=${TRAIN_ARGS:-}
QUANTS=${QUANTS:-q8_0 q4_0}
NO_BENCH=${NO_BENCH:-0}
T=tools/train

step=${1:-}
preset=${2:-cpu-small}
mkdir -p "$MODELS/stamps"
stamp() { echo "$MODELS/stamps/$1.done"; }
done_() { [ -f "$(stamp "$1")" ]; }
mark() { date -u +%FT%TZ > "$(stamp "$1")"; }
say() { echo "factory: $*" >&2; }
need_mccom() {
    [ -x "$MCCOM" ] || { say "$MCCOM not built (make)"; exit 1; }
}

do_corpus() {
    done_ corpus && { say "corpus: done"; return; }
    if [ -n "$PACKAGES" ]; then
        "$PY" $T/corpus.py fetch --packages "$PACKAGES" --cache "$MODELS/cache"
    fi
    # shellcheck disable=SC2086
    "$PY" $T/corpus.py build --packages "$PACKAGES" --cache "$MODELS/cache" --out "$MODELS/corpus" \
        --exclude "$SHARED/bench/exclude.sha256" --repos "$SHARED/bench/repos.tsv" $CORPUS_ARGS
    "$PY" $T/corpus.py check --out "$MODELS/corpus" --exclude "$SHARED/bench/exclude.sha256"
    if [ "$NO_BENCH" != 1 ]; then
        bash "$SHARED/bench/fetch-repos.sh" "$MODELS/bench-repos"
        "$PY" $T/corpus.py benchlist --root "$MODELS/bench-repos" --out "$MODELS/corpus/bench.list"
    fi
    mark corpus
}

do_vocab() {
    done_ vocab && { say "vocab: done"; return; }
    mkdir -p "$MODELS/vocab"
    if [ "$BYTE_VOCAB" = 1 ]; then
        "$PY" $T/tokfile.py byte-vocab "$MODELS/vocab"
    elif [ -n "$VOCAB_FROM" ]; then
        # The shipped vocabulary: every model shares it, so drafts stay verifiable.
        [ -f "$VOCAB_FROM" ] || { say "vocab: $VOCAB_FROM is missing (VOCAB_FROM= trains a new one)"; exit 1; }
        cp "$VOCAB_FROM" "$MODELS/vocab/vocab.gguf.tmp" && mv "$MODELS/vocab/vocab.gguf.tmp" "$MODELS/vocab/vocab.gguf"
        "$PY" $T/tokfile.py gguf-vocab "$MODELS/vocab/vocab.gguf" "$MODELS/vocab/tokenizer.json"
    else
        need_mccom
        # The vocabulary is trained on the train split only; writes a vocabulary-only GGUF
        # and the same vocabulary as tokenizer.json.
        "$MCCOM" tokenizer train --vocab "$VOCAB_SIZE" --out "$MODELS/vocab/vocab.gguf" \
            --hf "$MODELS/vocab/tokenizer.json" "$MODELS/corpus/text/train"
    fi
    mark vocab
}

# tokenize DIR|LIST ROOT OUT: a directory is passed whole (mccom recurses into it; the train and
# val splits are directories so that no argument list gets too long); a list file (the
# benchmark sample) is passed as paths under ROOT.
tokenize_to() {
    local src=$1 root=$2 out=$3
    if [ "$BYTE_VOCAB" = 1 ]; then
        if [ -d "$src" ]; then
            (cd "$src" && find . -type f -name '*.py' | LC_ALL=C sort) > "$out.files"
            "$PY" $T/tokfile.py byte-tokenize --list "$out.files" --root "$src" --out "$out"
        else
            "$PY" $T/tokfile.py byte-tokenize --list "$src" --root "$root" --out "$out"
        fi
    else
        need_mccom
        if [ -d "$src" ]; then
            "$MCCOM" tokenize --vocab "$MODELS/vocab/vocab.gguf" "$src" -o "$out"
        else
            sed "s|^|$root/|" "$src" | tr '\n' '\0' | \
                xargs -0 "$MCCOM" tokenize --vocab "$MODELS/vocab/vocab.gguf" -o "$out"
        fi
    fi
    "$PY" $T/tokfile.py info "$out"
}

do_tokenize() {
    done_ tokenize && { say "tokenize: done"; return; }
    mkdir -p "$MODELS/tok"
    tokenize_to "$MODELS/corpus/text/train" "" "$MODELS/tok/train.tok"
    tokenize_to "$MODELS/corpus/text/val" "" "$MODELS/tok/val.tok"
    if [ -f "$MODELS/corpus/bench.list" ]; then
        tokenize_to "$MODELS/corpus/bench.list" "$MODELS/bench-repos" "$MODELS/tok/bench.tok"
    fi
    mark tokenize
}

do_train() {
    done_ "train-$preset" && { say "train $preset: done"; return; }
    local vals=(--val "val=$MODELS/tok/val.tok")
    [ -f "$MODELS/tok/bench.tok" ] && vals+=(--val "bench=$MODELS/tok/bench.tok")
    # shellcheck disable=SC2086
    "$PY" $T/train.py --preset "$preset" --train "$MODELS/tok/train.tok" "${vals[@]}" \
        --vocab "$MODELS/vocab/tokenizer.json" --out "$MODELS/runs/$preset" --resume $TRAIN_ARGS \
        2>&1 | tee -a "$MODELS/runs-$preset.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
    [ -f "$MODELS/runs/$preset/final.json" ] || { say "train $preset: stopped before the end"; exit 1; }
    mark "train-$preset"
}

val_args() {
    VALS=(--val "val=$MODELS/tok/val.tok")
    [ -f "$MODELS/tok/bench.tok" ] && VALS+=(--val "bench=$MODELS/tok/bench.tok")
    return 0
}

# The open-ended main run: not stamped (it never "finishes"); exit 0 when it stopped cleanly.
do_pretrain() {
    val_args
    # shellcheck disable=SC2086
    "$PY" $T/train.py --preset "$preset" --train "$MODELS/tok/train.tok" "${VALS[@]}" \
        --vocab "$MODELS/vocab/tokenizer.json" --out "$MODELS/runs/$preset-main" --resume \
        --schedule wsd --steps 0 $PRETRAIN_ARGS 2>&1 | tee -a "$MODELS/runs-$preset-main.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
}

do_decay() {
    done_ "train-$preset" && { say "decay $preset: done"; return; }
    local main="$MODELS/runs/$preset-main/ckpt.pt" data=$DECAY_TRAIN
    [ -f "$main" ] || { say "decay: $main is missing (run pretrain first)"; exit 1; }
    if [ -z "$data" ]; then
        data="$MODELS/tok/train.tok"
        [ -f "$MODELS/tok/examples.tok" ] && data="$MODELS/tok/examples.tok"
    fi
    val_args
    # shellcheck disable=SC2086
    "$PY" $T/train.py --preset "$preset" --init-from "$main" --train "$data" "${VALS[@]}" \
        --vocab "$MODELS/vocab/tokenizer.json" --out "$MODELS/runs/$preset" --resume \
        --schedule wsd --steps "$DECAY_STEPS" --decay-steps "$DECAY_STEPS" --n-ctx "$DECAY_CTX" \
        --fim-rate 0 $DECAY_ARGS 2>&1 | tee -a "$MODELS/runs-$preset.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
    [ -f "$MODELS/runs/$preset/final.json" ] || { say "decay $preset: stopped before the end (run it again)"; exit 1; }
    mark "train-$preset"
}

do_release() {
    rm -rf "$MODELS/runs/$preset"
    for s in train export convert quantize; do rm -f "$(stamp "$s-$preset")"; done
    do_decay; do_export; do_convert; do_quantize; do_check
}

do_export() {
    done_ "export-$preset" && { say "export $preset: done"; return; }
    "$PY" $T/export.py --ckpt "$MODELS/runs/$preset/ckpt.pt" --vocab "$MODELS/vocab/tokenizer.json" \
        --out "$MODELS/hf/$preset"
    mark "export-$preset"
}

do_convert() {
    done_ "convert-$preset" && { say "convert $preset: done"; return; }
    need_mccom
    mkdir -p "$MODELS/gguf"
    # With the trained vocabulary's GGUF, its tokenizer.* keys are copied as they are, so the
    # model tokenizes exactly like vocab.gguf (the toy BYTE_VOCAB has none: tokenizer.json).
    local vocab=()
    [ -f "$MODELS/vocab/vocab.gguf" ] && vocab=(--vocab "$MODELS/vocab/vocab.gguf")
    "$MCCOM" convert hf "$MODELS/hf/$preset" "$MODELS/gguf/$preset-f32.gguf" --type f32 ${vocab[@]+"${vocab[@]}"}
    mark "convert-$preset"
}

do_quantize() {
    done_ "quantize-$preset" && { say "quantize $preset: done"; return; }
    need_mccom
    for q in $QUANTS; do
        "$MCCOM" quantize "$MODELS/gguf/$preset-f32.gguf" "$MODELS/gguf/$preset-$q.gguf" "$q"
    done
    (cd "$MODELS/gguf" && sha256sum "$preset"-*.gguf > "$preset.sha256")
    mark "quantize-$preset"
}

do_check() {
    need_mccom
    local cmp=${CMPLOGITS:-build/tools/cmplogits}
    [ -x "$cmp" ] || { say "check: $cmp is missing (make tools builds it)"; exit 1; }
    local ids report="$MODELS/gguf/$preset-check.txt" ref="$MODELS/gguf/$preset-check-ref.bin"
    ids=$(head -c 600 $T/corpus.py | "$MCCOM" tokenize --vocab "$MODELS/gguf/$preset-f32.gguf" --print \
          | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
    [ -n "$ids" ] || { say "check: tokenizing the check text failed"; exit 1; }
    "$PY" $T/dump_logits.py "$MODELS/hf/$preset" --tokens "$ids" --out "$ref" >&2
    {
        echo "# $preset: PyTorch (dump_logits.py $MODELS/hf/$preset) vs mccom, first 600 bytes of $T/corpus.py"
        "$cmp" "$MODELS/gguf/$preset-f32.gguf" "$ids" "$ref" 1e-4
        for q in $QUANTS; do "$cmp" "$MODELS/gguf/$preset-$q.gguf" "$ids" "$ref"; done
    } > "$report.tmp" || { cat "$report.tmp" >&2; say "check $preset: F32 logits differ from PyTorch's"; exit 1; }
    mv "$report.tmp" "$report"
    rm -f "$ref"
    cat "$report"
}

case "$step" in
    corpus) do_corpus ;;
    vocab) do_vocab ;;
    tokenize) do_tokenize ;;
    train) do_train ;;
    pretrain) do_pretrain ;;
    decay) do_decay ;;
    release) do_release ;;
    export) do_export ;;
    convert) do_convert ;;
    quantize) do_quantize ;;
    check) do_check ;;
    all) do_corpus; do_vocab; do_tokenize; do_train; do_export; do_convert; do_quantize; do_check ;;
    status) ls -1 "$MODELS/stamps" 2>/dev/null | sed 's/\.done$//' ;;
    *) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 2 ;;
esac
