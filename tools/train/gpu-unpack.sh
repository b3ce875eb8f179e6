#!/bin/bash
# tools/train/gpu-unpack.sh FILES_AT — bring the one-shot GPU run's models home.
#
# FILES_AT holds what gpu-run.sh left under $OUT: small.part-*, large.part-*, logs.tar.gz.
# For each model whose manifest is there (in logs.tar.gz; else MANIFEST lines saved from the
# run's output into FILES_AT/NAME.json): every part is checked against its sha256, the
# checkpoint is reassembled into build/models/runs/gpu-NAME/ckpt.pt, and the factory's
# export, convert, quantize and check steps make build/models/gguf/gpu-NAME-{f32,q8_0,q4_0}.gguf
# with PyTorch's logits compared to mccom's. Logs go to build/models/gpu-logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 FILES_AT" >&2; exit 2; }
F=$1
MODELS=${MODELS:-build/models}
L="$MODELS/gpu-logs"
mkdir -p "$L"
[ -f "$F/logs.tar.gz" ] && tar -C "$L" -xzf "$F/logs.tar.gz"
for m in small large; do
    man="$L/$m.json"
    [ -f "$man" ] || man="$F/$m.json"
    if [ ! -f "$man" ]; then
        echo "gpu-unpack: no manifest for $m (not trained, or save its MANIFEST line as $F/$m.json)" >&2
        continue
    fi
    /usr/bin/python3 tools/train/gpu_io.py join "$man" "$MODELS/runs/gpu-$m" --parts "$F"
    for s in export convert quantize; do rm -f "$MODELS/stamps/$s-gpu-$m.done"; done
    for s in export convert quantize check; do tools/train/factory.sh "$s" "gpu-$m"; done
done
