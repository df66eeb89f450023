#!/usr/bin/env bash
# The streaming benchmark in one command: bash bench/run_stream.sh [answers]   (default 2000)
# Builds bench/bench_stream.cpp (-O2), starts the mock in a process of its own, runs the
# unstreamed and the streamed clients one after the other (each in its own process), then the
# named reference, Python's aiohttp streaming the same answers (bench/peer_stream_aiohttp.py;
# Debian's python3-aiohttp, skipped with a message where it is missing), and prints a markdown
# table: each client's wall time, CPU time per answer and per event, and peak RSS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-2000}
out=build/bench
mkdir -p "$out"
${CCACHE:-$(command -v ccache || true)} g++ -std=c++17 -O2 -DNDEBUG -I. -Itools bench/bench_stream.cpp \
  -o "$out/bench_stream" $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread
portfile=$(mktemp)
"$out/bench_stream" serve >"$portfile" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(head -n1 "$portfile")/v1"
whole=$("$out/bench_stream" whole "$url" "$n" | grep '^RESULT')
streamed=$("$out/bench_stream" streamed "$url" "$n" | grep '^RESULT')
py=/usr/bin/python3  # Debian's, where python3-aiohttp lives
python=
if "$py" -c 'import aiohttp' >/dev/null 2>&1; then
  python=$("$py" bench/peer_stream_aiohttp.py "$url" "$n" 64 | grep '^RESULT')
else
  echo "run_stream: python3-aiohttp is missing (apt-get install python3-aiohttp): the Python reference is skipped" >&2
fi
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<< "$1"; }
{
  echo "$n chat answers of ~800 bytes from the mock at concurrency 64, streamed in 4-byte events and whole, $(nproc) cores"
  echo
  echo "| client | wall time | client CPU | CPU per answer | events | CPU per event | peak RSS | failures |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for r in "$whole" "$streamed" ${python:+"$python"}; do
    echo "| $(field "$r" mode) | $(field "$r" seconds) s | $(field "$r" cpu_s) s | $(field "$r" cpu_us_per_answer) us | $(field "$r" events) | $(field "$r" cpu_us_per_event) us | $(field "$r" rss_mb) MB | $(field "$r" failed) |"
  done
  echo
  awk -v a="$(field "$streamed" cpu_us_per_answer)" -v b="$(field "$whole" cpu_us_per_answer)" \
    'BEGIN { printf "client CPU per answer, streamed / whole: %.2fx\n", a / b }'
  if [ -n "$python" ]; then
    awk -v a="$(field "$streamed" cpu_us_per_answer)" -v b="$(field "$python" cpu_us_per_answer)" \
      -v c="$(field "$streamed" seconds)" -v d="$(field "$python" seconds)" \
      'BEGIN { printf "streamed, requests_engine / Python aiohttp: client CPU per answer %.2fx, wall time %.2fx\n", a / b, c / d }'
  fi
} | tee "$out/stream-latest.md"
