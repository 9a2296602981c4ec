#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from the llama.cpp vendored in a llama-cpp-python sdist (the
# llama.cpp the embedded engine runs) and puts it, with its build log and what it was built from,
# into DEST (`make install-llama-server`; the Makefile keys DEST by version and flags):
#
#   scripts/build_llama_server.sh PIP 'llama-cpp-python==0.3.36' DEST JOBS [CMAKE_ARG...]
#
# DEST/llama-server appears only once the build succeeded, so a half-built one is never used.
# pip downloads the sdist (its HTTP cache keeps it); the build needs no other network access
# (the web UI is neither built with npm nor fetched: LLAMA_BUILD_UI and LLAMA_USE_PREBUILT_UI off).
set -euo pipefail

pip=$1 requirement=$2 dest=$3 jobs=$4
shift 4

work=$(mktemp -d "${TMPDIR:-/tmp}/llama-server.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$work/build.log"
start=$(date +%s)

echo "llama-server: downloading the $requirement sdist"
"$pip" download --quiet --no-deps --no-binary :all: "$requirement" -d "$work/sdist"
tar -xzf "$work"/sdist/*.tar.gz -C "$work"
src=$(echo "$work"/*/vendor/llama.cpp)
[ -f "$src/CMakeLists.txt" ] || { echo "no vendored llama.cpp in the sdist" >&2; exit 1; }

echo "llama-server: building with $jobs jobs (log: $dest/build.log once done)"
if ! { cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release "$@" &&
    cmake --build "$work/build" --target llama-server -j "$jobs"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "llama-server: the build failed (the last 40 lines of its log are above)" >&2
    exit 1
fi
seconds=$(($(date +%s) - start))

mkdir -p "$dest"
cp "$log" "$dest/build.log"
printf '%s\n' "$requirement" "$*" "built in ${seconds} s on $(nproc) CPUs with $jobs jobs" >"$dest/built-from.txt"
# Copied under a temporary name and renamed: the binary's presence means a finished build.
cp "$work/build/bin/llama-server" "$dest/llama-server.tmp"
mv "$dest/llama-server.tmp" "$dest/llama-server"
echo "llama-server: built in ${seconds} s: $dest/llama-server"
