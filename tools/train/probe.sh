#!/bin/bash
# tools/train/probe.sh SLM.gguf LLM.gguf OUT_DIR — the release probes of docs/training.md that
# need the engine: exact match on the benchmark's line split, calibration repositories only
# (biopython, breezy, dask, mne: the held-out four are never looked at while training), the
# first PER_REPO tasks of each, in MODES (default slm,llm+rag,copy,slm+copy). The report is
# OUT_DIR/report.md; its summary table is printed. (Bits/byte and the copy probe are in the
# release run's final.json.)
# Environment: MCCOM=build/release/mccom, BENCH=../shared/bench, REPOS=build/bench-repos,
#   PER_REPO=40, MODES, THREADS=2.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 3 ] || { echo "usage: $0 SLM.gguf LLM.gguf OUT_DIR" >&2; exit 2; }
slm=$1 llm=$2 out=$3
MCCOM=${MCCOM:-build/release/mccom}
BENCH=${BENCH:-../shared/bench}
[ -d "$BENCH" ] || BENCH=/work/shared/bench
REPOS=${REPOS:-build/bench-repos}
PER_REPO=${PER_REPO:-40}
MODES=${MODES:-slm,llm+rag,copy,slm+copy}
mkdir -p "$out/bench"
/usr/bin/python3 - "$BENCH/line.jsonl" "$out/bench/line.jsonl" <<'PY'
import json, sys
cal = {"biopython", "breezy", "dask", "mne"}
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as g:
    for l in f:
        if json.loads(l)["metadata"]["task_id"].split("/")[0] in cal:
            g.write(l)
PY
"$MCCOM" eval --bench "$out/bench/line.jsonl" --repos "$REPOS" --slm "$slm" --llm "$llm" \
    --per-repo "$PER_REPO" --modes "$MODES" --cal-repos biopython,breezy,dask,mne \
    --out "$out/eval" --report "$out/report.md" -t "${THREADS:-2}" -q
sed -n '/^| mode/,/^$/p' "$out/report.md" | head -20
