#!/bin/bash
# Adds up the "N passed, N failed, N skipped" lines of several test logs into one.
set -u
p=0; f=0; s=0
for log in "$@"; do
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then f=$((f + 1)); echo "no result line in $log"; continue; fi
    read -r a _ b _ c _ <<<"$(echo "$line" | tr -d ',')"
    p=$((p + a)); f=$((f + b)); s=$((s + ${c:-0}))
done
echo "== both builds =="
echo "$p passed, $f failed, $s skipped"
