#!/bin/bash
# scripts/setup.sh — install what mccom needs on Debian 12, idempotently.
#   1. Debian packages listed in scripts/debian-packages.txt (apt-get, as root)
#   2. npm packages listed in scripts/npm-packages.txt into third_party/npm
#      (the llama.cpp oracle used by tests and benchmarks)
# A second run with everything present does nothing and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# A line may name a command after the package ("npm npm"): the package counts as present
# when that command is on PATH (NodeSource's nodejs ships npm and conflicts with Debian's).
while read -r pkg cmd; do
    case "$pkg" in ''|'#'*) continue ;; esac
    if [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null 2>&1; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done < scripts/debian-packages.txt

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: not root; run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ -x scripts/setup-npm.sh ]; then
    scripts/setup-npm.sh
fi
