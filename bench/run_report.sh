#!/usr/bin/env bash
# The run report's benchmark: bash bench/run_report.sh [REQUESTS] [EVENTS]
#   1. REQUESTS (default 20000) plain lines through `requests-engine run --report` against the mock
#      with faults (0.2% 429 with retry-after 200 ms, 1% 500, 0.5% connection resets) and a rate limit the
#      mock enforces (--rpm 240000, sent in x-ratelimit-* headers) below the one the CLI is given
#      (--rpm 300000): the page shows the 429 bursts, the retries, the learned limit and the paced
#      rate. Prints the summary's headline and the page's, which must be equal.
#   2. EVENTS (default 100000) requests against the mock with no latency, then `requests-engine
#      report` on their events file, timed (best of 5) against a named reference in the same run:
#      Python's json.loads over every line of the same file (parsing only, no report), and the page's size.
# Environment: REQUESTS_ENGINE_BIN (default: built into build/bench-report).
# Work files (the events, the pages, report.png when chromium is installed): build/bench-report/run/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-20000}
n_events=${2:-100000}

bin=${REQUESTS_ENGINE_BIN:-}
if [ -z "$bin" ]; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
  cmake -S . -B build/bench-report -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREQUESTS_ENGINE_BUILD_TESTS=OFF \
    -DREQUESTS_ENGINE_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build/bench-report --target requests-engine >/dev/null
  bin=build/bench-report/requests-engine
fi
bin=$(realpath "$bin")
dir=build/bench-report/run
rm -rf "$dir"
mkdir -p "$dir"

mock=
cleanup() {
  [ -n "$mock" ] && kill "$mock" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
start_mock() {  # start_mock FLAGS...: a fresh mock; its URL in $base
  cleanup
  rm -f "$dir/port"
  "$bin" mock --port 0 --port-file "$dir/port" --threads 160 "$@" >"$dir/mock.out" 2>&1 &
  mock=$!
  for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
  base="http://127.0.0.1:$(cat "$dir/port")/v1"
}
lines() {  # lines N PREFIX: N plain lines
  awk -v n="$1" -v p="$2" 'BEGIN { for (i = 1; i <= n; ++i) printf "{\"id\":\"%s%07d\",\"prompt\":\"question %d\",\"max_tokens\":16}\n", p, i, i }'
}
prices='{"models": {"mock-model": {"input": 0.15, "output": 0.60}}}'
echo "$prices" >"$dir/prices.json"

echo "== 1. $n requests with faults and a rate limit"
lines "$n" r >"$dir/in.jsonl"
start_mock --latency-ms 15 --latency-jitter-ms 30 --rpm 240000 --fail-429 0.002 --fail-429-retry-after-ms 200 \
  --fail-500 0.01 --fail-reset 0.005 --seed 5
start=$(date +%s.%N)
OPENAI_BASE_URL=$base "$bin" run "$dir/in.jsonl" -o "$dir/out.jsonl" --model mock-model --concurrency 128 \
  --rpm 300000 --max-retries 3 --no-cache --no-progress --prices "$dir/prices.json" \
  --summary-json "$dir/summary.json" --report "$dir/report.html" 2>"$dir/run.err" || true
end=$(date +%s.%N)
tail -n 14 "$dir/run.err"
python3 - "$dir/summary.json" "$dir/report.html" <<'EOF'
import json, re, sys
s = json.load(open(sys.argv[1]))
page = open(sys.argv[2]).read()
def shown(i):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % i, page)
    return m.group(1) if m else None
rows = [("requests", s["requests"], "h-requests"), ("succeeded", s["succeeded"], "h-succeeded"),
        ("failed", s["failed"], "h-failed"), ("retries", s["retries"], "h-retries"),
        ("wall seconds", "%.2f s" % s["wall_seconds"], "h-wall"),
        ("requests/s", "%.1f/s" % s["requests_per_second"], "h-rate"),
        ("actual cost", "$%.4f" % s["cost"]["actual_usd"], "h-cost")]
bad = 0
print("   %-14s %-14s %-14s" % ("", "summary", "report"))
for name, want, i in rows:
    want = "{:,}".format(want) if isinstance(want, int) else want
    got = shown(i)
    bad += got != want
    print("   %-14s %-14s %-14s%s" % (name, want, got, "" if got == want else "  DIFFERENT"))
print("   page: %d bytes" % len(page))
sys.exit(1 if bad else 0)
EOF
if command -v chromium >/dev/null; then
  chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
    --user-data-dir="$dir/profile" --window-size=1000,4400 --screenshot="$dir/report.png" \
    "file://$(realpath "$dir/report.html")" >/dev/null 2>&1 && echo "   screenshot: $dir/report.png"
fi

echo
echo "== 2. the report of $n_events events"
lines "$n_events" e >"$dir/in100k.jsonl"
start_mock --fail-500 0.01 --seed 9
OPENAI_BASE_URL=$base "$bin" run "$dir/in100k.jsonl" -o "$dir/out100k.jsonl" --model mock-model --concurrency 64 \
  --no-cache --no-progress --prices "$dir/prices.json" 2>"$dir/run100k.err" || true
events="$dir/out100k.jsonl.events.jsonl"
echo "   events file: $(wc -l <"$events") lines, $(stat -c %s "$events") bytes"
best() {  # best CMD...: the best wall time of 5 runs, in seconds
  local b=999999 t s e
  for _ in 1 2 3 4 5; do
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    t=$(((e - s) / 1000000))
    [ "$t" -lt "$b" ] && b=$t
  done
  echo "$b"
}
report_ms=$(best "$bin" report "$events" -o "$dir/report100k.html")
python_ms=$(best python3 -c 'import json,sys
for line in open(sys.argv[1]): json.loads(line)' "$events")
size=$(stat -c %s "$dir/report100k.html")
printf '   %-58s %6d ms\n' "requests-engine report (read, aggregate, write the page)" "$report_ms"
printf '   %-58s %6d ms\n' "reference: python3 json.loads of every line (parse only)" "$python_ms"
awk -v a="$report_ms" -v b="$python_ms" 'BEGIN { printf "   ratio report / reference: %.2f\n", a / b }'
printf '   page: %d bytes (%.2f MB)\n' "$size" "$(awk -v s="$size" 'BEGIN { print s / 1e6 }')"

echo
echo "== 3. what writing the events costs a run: $n_events lines, --no-cache, concurrency 64, best of 5"
run_ms() {  # run_ms FLAGS...: the run's wall time
  OPENAI_BASE_URL=$base "$bin" run "$dir/in100k.jsonl" -o "$dir/out-cost.jsonl" --model mock-model --concurrency 64 \
    --no-cache --no-progress "$@"
}
with_ms=$(best run_ms)
without_ms=$(best run_ms --no-events)
printf '   %-58s %6d ms\n' "run (events written)" "$with_ms"
printf '   %-58s %6d ms\n' "reference: the same run with --no-events" "$without_ms"
awk -v a="$with_ms" -v b="$without_ms" 'BEGIN { printf "   ratio with / without: %.2f\n", a / b }'
