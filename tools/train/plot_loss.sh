#!/bin/bash
# tools/train/plot_loss.sh — training-loss curves of factory runs as a PNG (gnuplot).
#
#   tools/train/plot_loss.sh OUT.png RUN_DIR [RUN_DIR...]
#
# RUN_DIR is build/models/runs/PRESET (its log.jsonl: one {"step", "loss", ...} per step;
# a resumed run's repeated steps keep the last value). The x axis is tokens seen, from
# final.json's tokens / steps (4,096 if there is no final.json); each run is drawn raw
# (light) and as a 20-step running mean. models/loss-cpu-pair.png was made by
#   tools/train/plot_loss.sh models/loss-cpu-pair.png build/models/runs/cpu-small build/models/runs/cpu-large
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 2; }
out=$1; shift
command -v gnuplot >/dev/null || { echo "plot_loss: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
PY=${PY:-python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
plot=()
i=0
colors=("#2050c0" "#c03020" "#208040" "#a060c0")
light=("#c0d0f0" "#f0c8c0" "#c0e0c8" "#e0d0f0")
for run in "$@"; do
    [ -f "$run/log.jsonl" ] || { echo "plot_loss: $run/log.jsonl is missing" >&2; exit 1; }
    "$PY" - "$run" > "$tmp/$i.tsv" <<'PYEOF'
import json, os, sys
run = sys.argv[1]
per = 4096
try:
    with open(os.path.join(run, "final.json")) as f:
        fin = json.load(f)
    per = fin["tokens"] / max(1, fin["steps"])
except (OSError, KeyError, ValueError):
    pass
loss = {}
with open(os.path.join(run, "log.jsonl")) as f:
    for line in f:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "step" in r and "loss" in r:
            loss[r["step"]] = r["loss"]
steps = sorted(loss)
for k, s in enumerate(steps):
    win = [loss[t] for t in steps[max(0, k - 19):k + 1]]
    print(s * per / 1e6, loss[s], sum(win) / len(win))
PYEOF
    [ -s "$tmp/$i.tsv" ] || { echo "plot_loss: no loss values in $run/log.jsonl" >&2; exit 1; }
    name=$(basename "$run")
    c=$((i % 4))
    plot+=("'$tmp/$i.tsv' using 1:2 with lines lc rgb '${light[$c]}' notitle")
    plot+=("'$tmp/$i.tsv' using 1:3 with lines lw 2 lc rgb '${colors[$c]}' title '$name'")
    i=$((i + 1))
done
joined=$(IFS=,; echo "${plot[*]}")
gnuplot <<GP
set terminal pngcairo size 800,450 font ",10"
set output "$out"
set title "training loss (20-step running mean)"
set xlabel "tokens seen (millions)"
set ylabel "loss (nats/token)"
set grid
plot $joined
GP
echo "plot_loss: wrote $out"
