#!/bin/bash
# scripts/fetch-bench-repos.sh BENCH_DIR DEST — the benchmark's repositories for
# `make eval` and the evaluation's tests: runs BENCH_DIR/fetch-repos.sh DEST (the
# pinned Debian packages' .py trees, checked against their digests; a no-op when
# DEST already holds them). apt-get download needs the package lists: when the
# first attempt fails and we are root, they are updated once and it is retried.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BENCH_DIR DEST" >&2; exit 2; }
bench=$1 dest=$2
[ -f "$bench/fetch-repos.sh" ] || { echo "fetch-bench-repos: $bench/fetch-repos.sh is missing (BENCH_DIR=...)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if bash "$bench/fetch-repos.sh" "$dest" >"$log" 2>&1; then
    exit 0
fi
cat "$log" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "fetch-bench-repos: run 'apt-get update' as root, then make again" >&2
    exit 1
fi
echo "fetch-bench-repos: updating the package lists and retrying" >&2
apt-get update -qq
bash "$bench/fetch-repos.sh" "$dest"
