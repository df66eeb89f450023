#!/usr/bin/env bash
# The cache replay benchmark in one command: bash bench/run_cache.sh [N]
# Builds bench/bench_cache.cpp (-O2), populates N (default 100000) entries in a fresh folder,
# and prints the engine's replay time against a plain read loop over the same files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100000}
out=build/bench
mkdir -p "$out"
${CCACHE:-$(command -v ccache || true)} g++ -std=c++17 -O2 -DNDEBUG -I. bench/bench_cache.cpp -o "$out/bench_cache" \
  $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread
dir=$(mktemp -d "${TMPDIR:-/tmp}/re-bench-cache.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$out/bench_cache" "$dir" "$n"
