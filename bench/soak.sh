#!/usr/bin/env bash
# The soak: bash bench/soak.sh [REQUESTS]        (default 200000; about half an hour on 2 cores)
#           bash bench/soak.sh --ci              (30000 requests, 5 kills 3-8 s apart: about a minute)
# Sends REQUESTS plain lines through `requests-engine run` against the mock with 10% faults of
# every kind (429 with retry-after, 500, 503, reset, truncated body, stall), SIGKILLs the CLI at
# random moments and starts it again, the same command, until it finishes. Then checks and
# reports: kills survived; requests the mock answered 200 against ids (the excess, answers paid
# for twice, must be at most the requests in flight at each kill: kills x concurrency); output
# lines (exactly one per id, none failed); `cache verify` clean; the RSS and the open file
# descriptors of each run, sampled every second (no growth after the first minute); the test key
# nowhere in what the runs wrote. Exits 1 when a check fails.
# Environment: REQUESTS_ENGINE_BIN (default: built into build/soak), SOAK_CONCURRENCY (64),
# SOAK_KILLS (most kills; default 12, --ci 5), SOAK_KILL_MIN/SOAK_KILL_MAX (seconds a run lives
# before its kill; default 8/40, --ci 3/8), SOAK_LATENCY_MS (the mock's, default 20), SOAK_SEED.
# Work files: build/soak/run/ (samples.tsv holds every RSS and fd sample).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=200000 kills_max=${SOAK_KILLS:-12} kill_min=${SOAK_KILL_MIN:-8} kill_max=${SOAK_KILL_MAX:-40}
if [ "${1:-}" = --ci ]; then
  n=30000 kills_max=${SOAK_KILLS:-5} kill_min=${SOAK_KILL_MIN:-3} kill_max=${SOAK_KILL_MAX:-8}
elif [ -n "${1:-}" ]; then
  n=$1
fi
case "$n" in '' | *[!0-9]*) echo "usage: bash bench/soak.sh [REQUESTS | --ci]" >&2; exit 2 ;; esac
concurrency=${SOAK_CONCURRENCY:-64}
latency=${SOAK_LATENCY_MS:-20}
seed=${SOAK_SEED:-$RANDOM}

bin=${REQUESTS_ENGINE_BIN:-}
if [ -z "$bin" ]; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
  cmake -S . -B build/soak -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREQUESTS_ENGINE_BUILD_TESTS=OFF \
    -DREQUESTS_ENGINE_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build/soak --target requests-engine >/dev/null
  bin=build/soak/requests-engine
fi
bin=$(realpath "$bin")

dir=build/soak/run
rm -rf "$dir"
mkdir -p "$dir"
awk -v n="$n" 'BEGIN { for (i = 1; i <= n; ++i) printf "{\"id\":\"s%07d\",\"prompt\":\"soak question %d\",\"max_tokens\":16}\n", i, i }' \
  >"$dir/in.jsonl"

# The key the runs send: it must show up nowhere in what they write.
export SOAK_KEY="sk-soak-$(date +%s%N | sha256sum | head -c 32)"
"$bin" mock --port 0 --port-file "$dir/port" --api-key-env SOAK_KEY --latency-ms "$latency" --seed "$seed" \
  --fail-429 0.02 --fail-429-retry-after-ms 100 --fail-500 0.02 --fail-overload 0.02 --fail-reset 0.015 \
  --fail-truncate 0.015 --fail-stall 0.01 --stream-stall-ms 4000 --log-requests "$dir/mock.log" \
  >"$dir/mock.out" 2>&1 &
mock=$!
cli=
cleanup() {
  [ -n "$cli" ] && kill -9 "$cli" 2>/dev/null || true
  kill "$mock" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { echo "soak: the mock did not start" >&2; cat "$dir/mock.out" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")/v1"

echo "soak: $n requests, concurrency $concurrency, mock latency $latency ms, faults 10% (seed $seed)," \
  "up to $kills_max kills, each run killed after $kill_min-$kill_max s"
printf 'run\tsecond\trss_kb\tfds\n' >"$dir/samples.tsv"
kills=0 runs=0 status=
start=$SECONDS
while :; do
  runs=$((runs + 1))
  OPENAI_API_KEY=$SOAK_KEY "$bin" run "$dir/in.jsonl" -o "$dir/out.jsonl" --cache-dir "$dir/cache" \
    --base-url "$url" --model mock-model --concurrency "$concurrency" --max-retries -1 --timeout 2 \
    --no-progress --summary-json "$dir/summary.json" >"$dir/run-$runs.out" 2>"$dir/run-$runs.err" &
  cli=$!
  # A random moment to die, in tenths of a second, while kills remain.
  deadline=
  if [ "$kills" -lt "$kills_max" ]; then
    deadline=$(( (kill_min * 10) + RANDOM % ((kill_max - kill_min) * 10 + 1) ))
  fi
  tenth=0
  # Alive: not gone and not a zombie waiting for `wait`.
  while [ -r "/proc/$cli/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$cli/status" 2>/dev/null; do
    if [ $((tenth % 10)) -eq 0 ] && [ -r "/proc/$cli/status" ]; then
      rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$cli/status" 2>/dev/null || true)
      fds=$(find "/proc/$cli/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)
      [ -n "$rss" ] && printf '%s\t%s\t%s\t%s\n' "$runs" $((tenth / 10)) "$rss" "$fds" >>"$dir/samples.tsv"
    fi
    if [ -n "$deadline" ] && [ "$tenth" -ge "$deadline" ]; then
      kill -9 "$cli" 2>/dev/null && kills=$((kills + 1))
      break
    fi
    sleep 0.1
    tenth=$((tenth + 1))
  done
  status=0
  { wait "$cli"; } 2>/dev/null || status=$?  # (no "Killed" line from bash)
  cli=
  if [ "$status" -eq 137 ]; then continue; fi  # killed: the same command again
  break
done
elapsed=$((SECONDS - start))
kill -INT "$mock" 2>/dev/null || true
wait "$mock" 2>/dev/null || true

"$bin" cache verify --cache-dir "$dir/cache" >"$dir/verify.out" 2>&1 && verify=clean || verify="NOT clean"
"$bin" cache stats --cache-dir "$dir/cache" >"$dir/stats.out" 2>&1 || true
leaks=$(grep -rlF -- "$SOAK_KEY" "$dir" --exclude=in.jsonl 2>/dev/null || true)

python3 - "$dir" "$n" "$runs" "$kills" "$concurrency" "$elapsed" "$status" "$verify" "$leaks" <<'EOF'
import collections, json, sys
d, n, runs, kills, conc, elapsed, status, verify, leaks = sys.argv[1:]
n, runs, kills, conc = int(n), int(runs), int(kills), int(conc)
problems = []
ids = collections.Counter()
failed = 0
with open(f"{d}/out.jsonl") as f:
    lines = 0
    for line in f:
        lines += 1
        o = json.loads(line)
        ids[o["id"]] += 1
        failed += o.get("error") is not None
wanted = {f"s{i:07d}" for i in range(1, n + 1)}
missing = len(wanted - set(ids))
doubled = sum(1 for c in ids.values() if c > 1)
statuses = collections.Counter()
with open(f"{d}/mock.log") as f:
    for line in f:
        statuses[json.loads(line)["status"]] += 1
sent = sum(statuses.values())
ok = statuses.get(200, 0)
excess = ok - n
samples = collections.defaultdict(list)
with open(f"{d}/samples.tsv") as f:
    next(f)
    for line in f:
        r, s, rss, fds = (int(x) for x in line.split("\t"))
        samples[r].append((s, rss, fds))

print()
print(f"| figure | value |")
print(f"| --- | ---: |")
print(f"| requests (ids) | {n} |")
print(f"| runs / kills survived | {runs} / {kills} |")
print(f"| wall time | {elapsed} s |")
print(f"| requests the mock received | {sent} |")
print(f"| faults injected (429 / 500 / 503 / reset, truncated or stalled) | {statuses.get(429,0)} / {statuses.get(500,0)} / {statuses.get(503,0)} / {statuses.get(0,0)} |")
print(f"| answered 200 | {ok} |")
print(f"| answers paid twice (200s beyond the ids) | {excess} (at most {kills} kills x {conc} in flight = {kills * conc}) |")
print(f"| output lines / distinct ids / missing / twice / failed | {lines} / {len(ids)} / {missing} / {doubled} / {failed} |")
print(f"| cache verify | {verify} |")
print(f"| the key in any file written | {'none' if not leaks else leaks} |")
print()
print("| run | seconds | RSS first / at 60 s / max / last (MB) | fds first / max / last |")
print("| ---: | ---: | --- | --- |")
growth = []
for r in sorted(samples):
    s = samples[r]
    mb = lambda kb: f"{kb / 1024:.1f}"
    at60 = next((x[1] for x in s if x[0] >= 60), None)
    print(f"| {r} | {s[-1][0]} | {mb(s[0][1])} / {mb(at60) if at60 else '-'} / {mb(max(x[1] for x in s))} / {mb(s[-1][1])} "
          f"| {s[0][2]} / {max(x[2] for x in s)} / {s[-1][2]} |")
    if at60 is not None and s[-1][0] >= 90:
        after = [x[1] for x in s if x[0] >= 60]
        growth.append((r, (max(after) - at60) / 1024, (after[-1] - at60) / 1024))
    if max(x[2] for x in s) > conc + 64:
        problems.append(f"run {r}: {max(x[2] for x in s)} file descriptors open at once (concurrency {conc})")
for r, peak, last in growth:
    print(f"\nrun {r}: RSS after the first minute: peak +{peak:.1f} MB, last {last:+.1f} MB against the 60 s sample")
    if peak > 64:
        problems.append(f"run {r}: RSS grew {peak:.1f} MB after the first minute")

if status != "0": problems.append(f"the last run exited {status}")
if lines != n or len(ids) != n or missing or doubled: problems.append("not exactly one output line per id")
if failed: problems.append(f"{failed} lines failed")
if excess > kills * conc: problems.append(f"{excess} answers paid twice: more than {kills} kills x {conc} in flight")
if excess < 0: problems.append("fewer 200 answers than ids")
if verify != "clean": problems.append("cache verify found bad entries")
if leaks: problems.append("the key is in: " + leaks)
print()
if problems:
    print("soak: FAILED: " + "; ".join(problems))
    sys.exit(1)
print("soak: passed")
EOF
