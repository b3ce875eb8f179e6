#!/bin/bash
# scripts/setup-npm.sh — install the llama.cpp oracle (tests and benchmarks only).
#
#   1. npm packages in scripts/npm-packages.txt (pinned) into third_party/npm, without
#      optional dependencies (node-llama-cpp's CUDA/Vulkan/arm builds are hundreds of MB)
#      and without running any package scripts;
#   2. llama.cpp's public headers (include/, ggml/include/) at the pinned commit,
#      extracted from the git bundle node-llama-cpp ships, into third_party/llama.cpp.
# A stamp file records what was installed; a second run with the same package list
# does nothing. The product (src/, libmccom) never depends on any of this.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6 # llama.cpp release v0.5.0
NPM_DIR=third_party/npm
LL_DIR=third_party/llama.cpp
BINS=$NPM_DIR/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
BUNDLE=$NPM_DIR/node_modules/node-llama-cpp/llama/gitRelease.bundle
STAMP=third_party/.npm-stamp

pkgs=()
while read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    pkgs+=("$line")
done < scripts/npm-packages.txt
want="$(printf '%s\n' "${pkgs[@]}" "$LLAMA_COMMIT")"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
   [ -f "$BINS/libllama.v0.5.0.so" ] && [ -f "$LL_DIR/include/llama.h" ]; then
    exit 0
fi

die() { echo "setup-npm: $*" >&2; exit 1; }
command -v npm >/dev/null || die "npm not found (Debian package 'npm'; run scripts/setup.sh as root)"
command -v git >/dev/null || die "git not found (Debian package 'git')"

echo "setup-npm: installing ${pkgs[*]} into $NPM_DIR"
rm -f "$STAMP"
mkdir -p "$NPM_DIR"
# A package.json of our own so npm never walks up to the repository root.
[ -f "$NPM_DIR/package.json" ] || echo '{ "private": true }' > "$NPM_DIR/package.json"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm install --prefix "$NPM_DIR" --omit=optional --ignore-scripts --no-audit --no-fund \
        --save-exact --loglevel=error --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 "${pkgs[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    die "npm install failed (is the npm registry reachable? proxy settings: npm config get registry)"
fi
[ -f "$BINS/libllama.v0.5.0.so" ] || die "npm install finished but $BINS/libllama.v0.5.0.so is missing"
[ -f "$BUNDLE" ] || die "npm install finished but $BUNDLE is missing"

echo "setup-npm: extracting llama.cpp headers at ${LLAMA_COMMIT:0:8} into $LL_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$log"' EXIT
git init -q --bare "$tmp/repo"
git -C "$tmp/repo" fetch -q "$PWD/$BUNDLE" HEAD ||
    die "cannot read the git bundle $BUNDLE"
git -C "$tmp/repo" cat-file -e "$LLAMA_COMMIT^{commit}" 2>/dev/null ||
    die "the bundle does not contain llama.cpp commit $LLAMA_COMMIT"
rm -rf "$LL_DIR"
mkdir -p "$LL_DIR"
git -C "$tmp/repo" archive "$LLAMA_COMMIT" include ggml/include LICENSE | tar -x -C "$LL_DIR"
echo "$LLAMA_COMMIT" > "$LL_DIR/COMMIT"

echo "$want" > "$STAMP"
echo "setup-npm: done ($(du -sh "$NPM_DIR" | cut -f1) in $NPM_DIR)"
