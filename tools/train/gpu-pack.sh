#!/bin/bash
# tools/train/gpu-pack.sh — prepare build/gpu-carry for the one-shot GPU run (gpu-run.sh).
#
# Everything that travels to the device machine must fit 64 MiB together with the working
# tree. This writes, under build/gpu-carry:
#   corpus.tar.zst.part-*  the validation split and a seeded sample of the train split of
#                          build/models/corpus (files in sha256 order of their paths, so a
#                          sample is the same for the same corpus), zstd -19 --long, as large
#                          as the budget allows
#   bench.tok              the benchmark sample's tokens (validation only)
#   exclude.sha256, repos.tsv   the benchmark's exclusion list (the machine's own files pass
#                          the same corpus filters)
#   gpu-tools/             mkexamples and mktok, linked statically (make gpu-tools)
#   SHA256SUMS
# and prints the device command. Needs: factory corpus + tokenize steps, make gpu-tools.
# Environment: MODELS=build/models, SHARED=../shared, CARRY_MB=64, MARGIN_MB=3.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS:-build/models}
SHARED=${SHARED:-../shared}
[ -d "$SHARED/bench" ] || SHARED=/work/shared
C=build/gpu-carry
CARRY_MB=${CARRY_MB:-64}
MARGIN_MB=${MARGIN_MB:-3}
say() { echo "gpu-pack: $*" >&2; }

for f in "$MODELS/corpus/train.list" "$MODELS/corpus/val.list" "$MODELS/tok/bench.tok" \
         build/gpu-tools/mktok build/gpu-tools/mkexamples; do
    [ -e "$f" ] || { say "$f is missing (factory.sh corpus/tokenize, make gpu-tools)"; exit 1; }
done
rm -rf "$C"
mkdir -p "$C/gpu-tools"
cp build/gpu-tools/mktok build/gpu-tools/mkexamples "$C/gpu-tools/"
cp "$MODELS/tok/bench.tok" "$SHARED/bench/exclude.sha256" "$SHARED/bench/repos.tsv" "$C/"

# What the working tree takes: tracked files and untracked ones git does not ignore.
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
fixed=$(du -cb "$C" | tail -1 | cut -f1)
budget=$(( CARRY_MB * 1048576 - tree - fixed - MARGIN_MB * 1048576 ))
say "working tree $(( tree / 1048576 )) MiB, fixed carry $(( fixed / 1048576 )) MiB: $(( budget / 1048576 )) MiB for the corpus"
[ "$budget" -gt 1000000 ] || { say "no room for the corpus"; exit 1; }

# Train files in a stable pseudo-random order (sha256 of the path), as many as `want` bytes
# of text; val files all.
sel=$(mktemp)
trap 'rm -f "$sel"' EXIT
ratio=6   # Python source under zstd -19 --long: 6.5x measured on this corpus
want=$(( budget * ratio ))
for attempt in 1 2 3 4 5 6; do
    /usr/bin/python3 - "$MODELS/corpus/manifest.jsonl" "$want" > "$sel" <<'PY'
import hashlib, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want, n = int(sys.argv[2]), 0
train = sorted((r for r in rows if r["split"] == "train"),
               key=lambda r: hashlib.sha256(r["path"].encode()).hexdigest())
for r in train:
    if n + r["bytes"] > want:
        break
    n += r["bytes"]
    print(r["path"])
for r in rows:
    if r["split"] == "val":
        print(r["path"])
PY
    tar -C "$MODELS/corpus" -cf - -T "$sel" | zstd -q -19 --long=27 -T0 > "$C/corpus.tar.zst"
    got=$(stat -c %s "$C/corpus.tar.zst")
    say "attempt $attempt: $(wc -l < "$sel") files, $(( want / 1048576 )) MiB of text -> $(( got / 1048576 )) MiB"
    [ "$got" -le "$budget" ] && break
    want=$(( want * budget / got * 97 / 100 ))
done
[ "$got" -le "$budget" ] || { say "could not fit the corpus"; exit 1; }
split -b 16M -d -a 2 "$C/corpus.tar.zst" "$C/corpus.tar.zst.part-"
rm "$C/corpus.tar.zst"
(cd "$C" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
total=$(( tree + $(du -cb "$C" | tail -1 | cut -f1) ))
say "carry ready: $(du -sh "$C" | cut -f1) in $C, $(( total / 1048576 )) MiB with the working tree"
cat >&2 <<EOF
gpu-pack: on the device machine (one command, carry build/gpu-carry; ~9 minutes):
    bash tools/train/gpu-run.sh
then here, with the folder the files came back to:
    tools/train/gpu-unpack.sh FILES_AT
EOF
