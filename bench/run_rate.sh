#!/usr/bin/env bash
# The rate-limit benchmark in one command: bash bench/run_rate.sh [N per minute] [requests per row]
# Builds bench/bench_rate.cpp (-O2) and prints a markdown table (about 90 s with the defaults).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=build/bench
mkdir -p "$out"
${CCACHE:-$(command -v ccache || true)} g++ -std=c++17 -O2 -DNDEBUG -I. -Itools bench/bench_rate.cpp \
  -o "$out/bench_rate" $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread
"$out/bench_rate" "$@" | tee "$out/rate-latest.md"
