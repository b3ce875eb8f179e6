#!/bin/bash
# scripts/build-llama-server.sh — build llama.cpp's own `llama-server` (tests only).
#
# The remote module's end-to-end test talks to a real OpenAI-compatible server:
# llama.cpp's llama-server, built here from the source that node-llama-cpp ships
# (the git bundle installed by scripts/setup-npm.sh), at the same pinned commit as
# the oracle's headers. CPU only, static, no downloads: no web UI (it would be
# fetched from Hugging Face), no HTTPS, no tests/examples/other tools.
#
#   1. extract the source at $LLAMA_COMMIT into build/llama.cpp-src;
#   2. cmake + build only the llama-server target into build/llama.cpp-build;
#   3. copy the binary to build/llama-server/llama-server and write a stamp.
# The stamp records the commit and the configure options: a second run with the same
# ones is a no-op (well under a second). The product never depends on any of this.
#
# Usage: scripts/build-llama-server.sh [--force]
# Environment: JOBS (default: nproc), LLAMA_SERVER_DIR (output dir, default build/llama-server).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6 # llama.cpp release v0.5.0 (as setup-npm.sh)
BUNDLE=third_party/npm/node_modules/node-llama-cpp/llama/gitRelease.bundle
SRC=build/llama.cpp-src
BLD=build/llama.cpp-build
OUT=${LLAMA_SERVER_DIR:-build/llama-server}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

CMAKE_OPTS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_BUILD_NUMBER=0
    -DLLAMA_BUILD_COMMIT=${LLAMA_COMMIT:0:8}
    -DGGML_CUDA=OFF
    -DGGML_VULKAN=OFF
    -DGGML_METAL=OFF
    -DGGML_BACKEND_DL=OFF
)
want="$(printf '%s\n' "$LLAMA_COMMIT" "${CMAKE_OPTS[@]}")"

if [ "${1:-}" != "--force" ] && [ -x "$OUT/llama-server" ] && [ -f "$OUT/STAMP" ] &&
   [ "$(cat "$OUT/STAMP")" = "$want" ]; then
    exit 0
fi

die() { echo "build-llama-server: $*" >&2; exit 1; }
command -v cmake >/dev/null || die "cmake not found (Debian package 'cmake'; run scripts/setup.sh as root)"
command -v g++ >/dev/null || die "g++ not found (Debian package 'g++'; run scripts/setup.sh as root)"
command -v git >/dev/null || die "git not found (Debian package 'git')"
[ -f "$BUNDLE" ] || die "$BUNDLE is missing: run scripts/setup-npm.sh first"

t0=$(date +%s)
rm -f "$OUT/STAMP"
# 1. the source, unless this commit is already extracted
if [ "$(cat "$SRC/COMMIT" 2>/dev/null || true)" != "$LLAMA_COMMIT" ]; then
    echo "build-llama-server: extracting llama.cpp ${LLAMA_COMMIT:0:8} into $SRC"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    git init -q --bare "$tmp/repo"
    git -C "$tmp/repo" fetch -q "$PWD/$BUNDLE" HEAD || die "cannot read the git bundle $BUNDLE"
    git -C "$tmp/repo" cat-file -e "$LLAMA_COMMIT^{commit}" 2>/dev/null ||
        die "the bundle does not contain llama.cpp commit $LLAMA_COMMIT"
    rm -rf "$SRC" "$BLD"
    mkdir -p "$SRC"
    # what a llama-server build reads; models/, docs/, the python tooling stay out
    git -C "$tmp/repo" archive "$LLAMA_COMMIT" CMakeLists.txt cmake common ggml include src \
        tools vendor scripts licenses LICENSE | tar -x -C "$SRC"
    echo "$LLAMA_COMMIT" > "$SRC/COMMIT"
fi

# 2. configure and build the one target (the source tree is not a git checkout:
#    keep cmake's build-info from finding mccom's own repository above it)
echo "build-llama-server: building llama-server with $JOBS jobs into $BLD"
export GIT_CEILING_DIRECTORIES="$PWD/build"
cmake -S "$SRC" -B "$BLD" "${CMAKE_OPTS[@]}" >"$BLD.configure.log" 2>&1 ||
    { tail -n 40 "$BLD.configure.log" >&2; die "cmake configure failed (log: $BLD.configure.log)"; }
cmake --build "$BLD" --target llama-server -j "$JOBS" >"$BLD.build.log" 2>&1 ||
    { tail -n 40 "$BLD.build.log" >&2; die "build failed (log: $BLD.build.log)"; }
bin=$(find "$BLD" -name llama-server -type f -perm -u+x | head -n 1)
[ -n "$bin" ] || die "the build finished but no llama-server binary was found in $BLD"

# 3. install and stamp
mkdir -p "$OUT"
cp "$bin" "$OUT/llama-server.tmp"
mv "$OUT/llama-server.tmp" "$OUT/llama-server"
"$OUT/llama-server" --version >/dev/null 2>&1 || die "$OUT/llama-server does not run"
echo "$want" > "$OUT/STAMP"
echo "build-llama-server: done in $(( $(date +%s) - t0 )) s: $OUT/llama-server"
