#!/usr/bin/env bash
# The command-line tool's benchmark: bash bench/run_cli.sh
#
# `requests-engine run` side by side with named references, in one run, against Debian's nginx
# on loopback (started through `BENCH_SERVE_ONLY=1 bash bench/run.sh`, stopped on exit):
#   A. 20,000 plain-format lines on /fast (instant answers) at --concurrency 64, --no-cache:
#      run's req/s against `bench_engine bare-nojson` (64 threads: the transport's floor),
#      `bench_engine bare` (64 threads, with JSON work) and the aiohttp peer at 64; and the
#      library (`bench_engine engine` at 64) against the bare loop with JSON at 64.
#   B. /slow answering after 2 s: 12,288 lines at --concurrency 4096 and 24,576 at 8192 (three
#      waves: ideal 6.0 s): run's wall time against the ideal, and its peak RSS; the aiohttp
#      peer at the same concurrency and N.
#   C. Memory with the input's size: run with a cache (a fresh --cache-dir) on 100,000 and
#      1,000,000 lines on /fast at --concurrency 64: wall time and peak RSS, cold (empty
#      cache) then warm (the same cache again), without and with --ordered.
# Prints a markdown table and writes it to bench/results-cli-latest.md. See bench/README.md.
#
# Environment:
#   REQUESTS_ENGINE_BIN    the requests-engine binary to measure (default: built with CMake,
#                          Release, into build/bench-cli)
#   BENCH_QUICK=1          small sizes, one round: a smoke run (figures not meaningful)
#   BENCH_ROUNDS           rounds of every measurement, best kept, all shown (default 3)
#   BENCH_ROUNDS_BIG       rounds of the BENCH_CLI_BIG measurements of C (default BENCH_ROUNDS)
#   BENCH_CLI_N_FAST       lines in A (default 20000)
#   BENCH_CLI_CONCS        concurrencies of B (default "4096 8192"); N = BENCH_CLI_WAVES x each
#   BENCH_CLI_WAVES        waves in B (default 3)
#   BENCH_SLOW_MS          /slow's delay in B (default 2000)
#   BENCH_CLI_SMALL, BENCH_CLI_BIG   lines in C (default 100000 and 1000000)
#   BENCH_CLI_OUT          where the table goes (default bench/results-cli-latest.md)
#   REQUESTS_ENGINE_SKIP_DEPS=1   passed to run.sh: do not touch apt
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  rounds=${BENCH_ROUNDS:-1}
  n_fast=${BENCH_CLI_N_FAST:-2000}
  concs=${BENCH_CLI_CONCS:-"256 512"}
  small=${BENCH_CLI_SMALL:-2000}
  big=${BENCH_CLI_BIG:-20000}
else
  rounds=${BENCH_ROUNDS:-3}
  n_fast=${BENCH_CLI_N_FAST:-20000}
  concs=${BENCH_CLI_CONCS:-"4096 8192"}
  small=${BENCH_CLI_SMALL:-100000}
  big=${BENCH_CLI_BIG:-1000000}
fi
rounds_big=${BENCH_ROUNDS_BIG:-$rounds}
waves=${BENCH_CLI_WAVES:-3}
conc_fast=64
slow_ms=${BENCH_SLOW_MS:-2000}
out=${BENCH_CLI_OUT:-$root/bench/results-cli-latest.md}
py=/usr/bin/python3  # Debian's, where python3-aiohttp lives
bench_engine=$root/build/bench/bench_engine  # built by run.sh

log() { printf '[bench-cli] %s\n' "$*" >&2; }
die() { printf '[bench-cli] error: %s\n' "$*" >&2; exit 1; }

command -v /usr/bin/time >/dev/null 2>&1 || [ -x /usr/bin/time ] ||
  die "/usr/bin/time is missing (Debian package \"time\"): it gives the CLI's peak RSS"

# --- the binary --------------------------------------------------------------------------------
if [ -n "${REQUESTS_ENGINE_BIN:-}" ]; then
  bin=$REQUESTS_ENGINE_BIN
  [ -x "$bin" ] || die "REQUESTS_ENGINE_BIN=$bin is not an executable"
else
  bin=$root/build/bench-cli/requests-engine
  log "building requests-engine (CMake, Release) into build/bench-cli"
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S "$root" -B "$root/build/bench-cli" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DREQUESTS_ENGINE_BUILD_TESTS=OFF -DREQUESTS_ENGINE_BUILD_EXAMPLES=OFF \
    -DREQUESTS_ENGINE_BUILD_TOOLS=ON -DREQUESTS_ENGINE_INSTALL=OFF >/dev/null
  cmake --build "$root/build/bench-cli" --target requests-engine
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# --- limits ------------------------------------------------------------------------------------
max_conc=$conc_fast
for c in $concs; do if [ "$c" -gt "$max_conc" ]; then max_conc=$c; fi; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((max_conc + 512)) ] ||
  die "open-file limit $(ulimit -n) is too low for concurrency $max_conc"
# nginx's worker_connections, per worker: the connections are not shared evenly between its two
# workers, so each must be able to take all of them (4096, run.sh's default, drops connections at
# 8192: "worker_connections are not enough").
nginx_conns=$((max_conc + 1024))

# --- nginx (through run.sh) -----------------------------------------------------------------------
tmp=$(mktemp -d /tmp/requests_engine_bench_cli.XXXXXX)
server_pid=
port=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  # run.sh stops nginx on its way out; if nginx is still listening (run.sh killed hard), stop it.
  if [ -n "$port" ] && command -v ss >/dev/null 2>&1; then
    local pids
    pids=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
    if [ -n "$pids" ]; then
      log "nginx still listening on $port: stopping it"
      # shellcheck disable=SC2086
      kill $pids 2>/dev/null || true
    fi
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting nginx through run.sh (BENCH_SERVE_ONLY=1, /slow after $slow_ms ms, worker_connections $nginx_conns); it builds bench_engine first"
BENCH_SERVE_ONLY=1 BENCH_SLOW_MS=$slow_ms BENCH_NGINX_CONNECTIONS=$nginx_conns \
  bash "$root/bench/run.sh" >"$tmp/serve.out" 2>"$tmp/serve.log" &
server_pid=$!
fast= slow=
for _ in $(seq 1200); do  # building bench_engine can take a few minutes on a busy machine
  if line=$(grep -m1 'serving until interrupted:' "$tmp/serve.log"); then
    fast=$(grep -o 'http://[^ ]*/fast/v1' <<<"$line" || true)
    slow=$(grep -o 'http://[^ ]*/slow/v1' <<<"$line" || true)
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; server_pid=; die "run.sh stopped before serving"; }
  sleep 0.5
done
[ -n "$fast" ] && [ -n "$slow" ] || { cat "$tmp/serve.log" >&2; die "run.sh printed no URLs"; }
base=${fast%/fast/v1}
port=${base##*:}
sed 's/^\[bench\]/[bench-cli] run.sh:/' "$tmp/serve.log" >&2
[ -x "$bench_engine" ] || die "$bench_engine missing"
{ "$bench_engine" 2>&1 || true; } | grep -q bare-nojson || die "$bench_engine has no bare-nojson mode"

# --- measurements ------------------------------------------------------------------------------
results=$tmp/results.txt
: >"$results"
failures=0
now_s() { date +%s.%N; }
# nginx's stub_status: "connections-accepted requests-served"; the call itself is one of each.
counters() {
  "$py" -c 'import sys, urllib.request; f = urllib.request.urlopen(sys.argv[1]).read().decode().split("\n")[2].split(); print(f[0], f[2])' \
    "$base/nginx_status"
}

# gen_input FILE N: N plain-format lines, {"id": "qI", "prompt": "question I"}.
gen_input() {
  awk -v n="$2" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"id\": \"q%d\", \"prompt\": \"question %d\"}\n", i, i }' >"$1"
}

# ref KEY ROUND command...: a program printing bench_engine's RESULT line (bench_engine, the
# Python peer); appended to $results with nginx's connection and request counts.
ref() {
  local key=$1 round=$2 a0 r0 a1 r1 line status=0
  shift 2
  read -r a0 r0 < <(counters)
  "$@" >"$tmp/ref.out" 2>"$tmp/ref.err" || status=$?
  read -r a1 r1 < <(counters)
  line=$(grep '^RESULT ' "$tmp/ref.out" | tail -1 || true)
  if [ -z "$line" ]; then
    log "$key: no result (exit $status): $(head -c 600 "$tmp/ref.err")"
    failures=$((failures + 1))
    line="RESULT mode=none n=0 conc=0 ok=0 fail=1 secs=0 rps=0 rss_mb=0 cpu_us=0"
  elif ! grep -q ' fail=0 ' <<<"$line "; then
    failures=$((failures + 1))
    log "$key: FAILED requests: $line; $(head -c 600 "$tmp/ref.err")"
  fi
  echo "RESULT key=$key round=$round conns=$((a1 - a0 - 1)) served=$((r1 - r0 - 1)) ${line#RESULT }" >>"$results"
  log "$(printf '%-28s round %s  %s' "$key" "$round" "$(sed 's/^RESULT //; s/ mode=[^ ]*//' <<<"$line")")"
}

# cli KEY ROUND INPUT N CONC URL [run options...]: requests-engine run, timed from outside
# (the whole process: start, reading, sending, writing, exit), peak RSS and CPU time from
# /usr/bin/time (the kernel's wait4 rusage); then the output checked: N lines, each with
# "error":null.
cli() {
  local key=$1 round=$2 input=$3 n=$4 conc=$5 url=$6
  shift 6
  local output=$tmp/out.jsonl a0 r0 a1 r1 t0 t1 status=0 lines ok cached own e u s m secs
  rm -f "$output" "$tmp/time"
  read -r a0 r0 < <(counters)
  t0=$(now_s)
  OPENAI_API_KEY=bench-key /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" \
    "$bin" run "$input" -o "$output" --provider openai --base-url "$url" --model gpt-4o-mini \
    --concurrency "$conc" --no-progress --no-events "$@" >"$tmp/cli.out" 2>"$tmp/cli.err" || status=$?
  t1=$(now_s)
  read -r a1 r1 < <(counters)
  e=0 u=0 s=0 m=0
  [ ! -s "$tmp/time" ] || read -r e u s m < <(tail -1 "$tmp/time") || true
  lines=0 ok=0 cached=0
  if [ -f "$output" ]; then
    lines=$(wc -l <"$output")
    ok=$(grep -c -F '"error":null' "$output" || true)
    cached=$(grep -c -F '"from_cache":true' "$output" || true)
  fi
  # run's own summary ("wall time    1.95 s"): the time it counts, without start and exit.
  own=$(cat "$tmp/cli.out" "$tmp/cli.err" | awk '$1 == "wall" && $2 == "time" { print $3; exit }')
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  local fail=$((n - ok))
  if [ "$status" -ne 0 ] || [ "$lines" -ne "$n" ] || [ "$fail" -ne 0 ]; then
    failures=$((failures + 1))
    [ "$fail" -gt 0 ] || fail=1
    log "$key: FAILED: exit $status, $lines lines of $n, $ok without error; $(tail -c 600 "$tmp/cli.err")"
  fi
  local line
  line=$(awk -v n="$n" -v c="$conc" -v ok="$ok" -v f="$fail" -v s="$secs" -v u="$u" -v sy="$s" -v m="$m" \
    -v own="${own:-0}" -v ca="$cached" \
    'BEGIN { printf "mode=cli n=%d conc=%d ok=%d fail=%d secs=%s rps=%.1f rss_mb=%.1f cpu_us=%.1f own_secs=%s cached=%d",
             n, c, ok, f, s, (s > 0) ? ok / s : 0, m / 1024, (ok > 0) ? (u + sy) * 1e6 / ok : 0, own, ca }')
  echo "RESULT key=$key round=$round conns=$((a1 - a0 - 1)) served=$((r1 - r0 - 1)) $line" >>"$results"
  log "$(printf '%-28s round %s  %s' "$key" "$round" "${line#mode=cli }")"
  rm -f "$output"
}

cpu_busy() {  # percent of the machine busy over the next $1 seconds
  local a b
  read -ra a </proc/stat; sleep "$1"; read -ra b </proc/stat
  local total=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  awk -v i="$idle" -v t="$total" 'BEGIN { printf "%.0f", (t > 0) ? 100 * (t - i) / t : 0 }'
}
busy=$(cpu_busy 1)
[ "$busy" -le 10 ] || log "WARNING: the machine is already ${busy}% busy before the benchmark starts; the figures will be low and noisy"

log "inputs: $n_fast, $(for c in $concs; do printf '%s ' $((c * waves)); done)$small and $big lines (awk)"
gen_input "$tmp/fast.jsonl" "$n_fast"
for c in $concs; do gen_input "$tmp/slow_$c.jsonl" $((c * waves)); done
gen_input "$tmp/small.jsonl" "$small"
gen_input "$tmp/big.jsonl" "$big"

# A -----------------------------------------------------------------------------------------------
for round in $(seq "$rounds"); do
  log "round $round/$rounds, A: $n_fast lines on /fast, concurrency $conc_fast, no cache"
  cli cli_fast "$round" "$tmp/fast.jsonl" "$n_fast" "$conc_fast" "$fast" --no-cache
  ref bare_nojson_fast "$round" "$bench_engine" bare-nojson "$fast" "$n_fast" "$conc_fast"
  ref bare_fast "$round" "$bench_engine" bare "$fast" "$n_fast" "$conc_fast"
  ref engine_fast "$round" "$bench_engine" engine "$fast" "$n_fast" "$conc_fast"
  ref python_fast "$round" "$py" "$root/bench/peer_aiohttp.py" "$fast" "$n_fast" "$conc_fast"
done

# B -----------------------------------------------------------------------------------------------
for round in $(seq "$rounds"); do
  for c in $concs; do
    n=$((c * waves))
    log "round $round/$rounds, B: $n lines on /slow (${slow_ms} ms), concurrency $c, no cache"
    cli "cli_slow_$c" "$round" "$tmp/slow_$c.jsonl" "$n" "$c" "$slow" --no-cache
    ref "python_slow_$c" "$round" "$py" "$root/bench/peer_aiohttp.py" "$slow" "$n" "$c"
  done
done

# C -----------------------------------------------------------------------------------------------
for size in small big; do
  n=$small r=$rounds
  [ "$size" = small ] || { n=$big; r=$rounds_big; }
  for round in $(seq "$r"); do
    for order in plain ordered; do
      flags=()
      [ "$order" = plain ] || flags=(--ordered)
      cache=$tmp/cache
      rm -rf "$cache"
      log "round $round/$r, C: $n lines on /fast, concurrency $conc_fast, cache, ${flags[*]:-unordered}"
      cli "cache_${n}_${order}_cold" "$round" "$tmp/$size.jsonl" "$n" "$conc_fast" "$fast" --cache-dir "$cache" "${flags[@]}"
      cli "cache_${n}_${order}_warm" "$round" "$tmp/$size.jsonl" "$n" "$conc_fast" "$fast" --cache-dir "$cache" "${flags[@]}"
      rm -rf "$cache"
    done
  done
done

# --- report ------------------------------------------------------------------------------------
export BENCH_CLI_N_FAST=$n_fast BENCH_CLI_CONCS=$concs BENCH_CLI_WAVES=$waves BENCH_SLOW_MS=$slow_ms
export BENCH_CLI_SMALL=$small BENCH_CLI_BIG=$big BENCH_ROUNDS=$rounds BENCH_ROUNDS_BIG=$rounds_big
export BENCH_QUICK=$quick BENCH_BUSY=$busy BENCH_CLI_BIN=$bin BENCH_CONC_FAST=$conc_fast
BENCH_GIT=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
git diff --quiet HEAD -- requests_engine.hpp tools 2>/dev/null || BENCH_GIT="$BENCH_GIT, with uncommitted changes to the header or tools/"
export BENCH_GIT
export BENCH_MACHINE="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
export BENCH_SERVER="nginx $(nginx -v 2>&1 | sed 's|.*/||') + echo module, 2 workers, loopback"
export BENCH_CLIENTS="Python $("$py" -c 'import platform; print(platform.python_version())') + aiohttp $("$py" -c 'import aiohttp; print(aiohttp.__version__)'); bench_engine: g++ $(g++ -dumpfullversion) -O2"
"$py" "$root/bench/report_cli.py" "$results" >"$tmp/table.md"
echo
cat "$tmp/table.md"
cp "$tmp/table.md" "$out"
log "written to ${out#"$root"/}"
[ "$failures" -eq 0 ] || { log "$failures measurement(s) had failed requests"; exit 1; }
