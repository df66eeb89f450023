#!/usr/bin/env bash
# The batching benchmark in one command: bash bench/run_batching.sh [chains] [steps] [ms] [max batch] [wait ms]
# Builds bench/bench_batching.cpp (-O2) and prints a markdown table (about 9 s with the defaults).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=build/bench
mkdir -p "$out"
${CCACHE:-$(command -v ccache || true)} g++ -std=c++17 -O2 -DNDEBUG -I. bench/bench_batching.cpp \
  -o "$out/bench_batching" $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread
"$out/bench_batching" "$@" | tee "$out/batching-latest.md"
