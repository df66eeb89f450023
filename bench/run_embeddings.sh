#!/usr/bin/env bash
# The embeddings benchmark in one command: bash bench/run_embeddings.sh [inputs]   (default 100000)
# Builds bench/bench_embeddings.cpp (-O2), starts the mock in a process of its own, runs the
# packed and the single-input clients one after the other (each in its own process, so the peak
# RSS is that mode's), and prints a markdown table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100000}
out=build/bench
mkdir -p "$out"
${CCACHE:-$(command -v ccache || true)} g++ -std=c++17 -O2 -DNDEBUG -I. -Itools bench/bench_embeddings.cpp \
  -o "$out/bench_embeddings" $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread
portfile=$(mktemp)
"$out/bench_embeddings" serve >"$portfile" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(head -n1 "$portfile")/v1"
packed=$("$out/bench_embeddings" packed "$url" "$n" | grep '^RESULT')
single=$("$out/bench_embeddings" single "$url" "$n" | grep '^RESULT')
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<< "$1"; }
{
  echo "$n embedding inputs through engine::embed() against the mock (POST /v1/embeddings, 16 dimensions, base64), $(nproc) cores"
  echo
  echo "| client | HTTP requests | wall time | inputs/s | peak RSS | failures |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for r in "$packed" "$single"; do
    name=$([ "$(field "$r" mode)" = packed ] && echo "packed (collector, 2,048 per request)" || echo "single (one input per request, 32 in flight)")
    echo "| $name | $(field "$r" http_requests) | $(field "$r" seconds) s | $(field "$r" inputs_per_s) | $(field "$r" rss_mb) MB | $(( $(field "$r" failed) + $(field "$r" wrong) )) |"
  done
  echo
  awk -v a="$(field "$packed" inputs_per_s)" -v b="$(field "$single" inputs_per_s)" \
    'BEGIN { printf "inputs/s ratio packed / single: %.1fx\n", a / b }'
} | tee "$out/embeddings-latest.md"
