#!/usr/bin/env bash
# The engine benchmark in one command: bash bench/run.sh
#
# Starts nginx (Debian's, with the echo module) on a free loopback port, serving a fixed OpenAI
# chat completion at /fast/v1 (at once) and /slow/v1 (after 200 ms), then measures, in one go:
#   A. the engine vs a bare cpp-httplib loop (best of several thread counts) and wrk: /fast, 64
#   B. the engine vs aiohttp (the Python peer): /fast, 64
#   C. the engine on /slow at concurrency 512: req/s vs the ideal 512 / 0.2 s, and peak RSS
# prints a markdown table and writes it to bench/results-latest.md. See bench/README.md.
#
# Environment:
#   BENCH_QUICK=1          small run (2,000 fast / 1,000 slow requests, 3 s wrk, one round)
#   BENCH_ROUNDS           rounds of every measurement, best kept (default 3)
#   BENCH_N_FAST, BENCH_N_SLOW, BENCH_WRK_SECS, BENCH_BARE_THREADS ("4 8 16 32 64"),
#   BENCH_CONC_FAST (64), BENCH_CONC_SLOW (512), BENCH_SLOW_MS (200)
#   BENCH_NGINX_CONNECTIONS  nginx's worker_connections, per worker (default 4096; 2 workers)
#   BENCH_OUT              where the table goes (default bench/results-latest.md)
#   BENCH_SERVE_ONLY=1     only start nginx, print its URLs and wait (for profiling by hand)
#   BENCH_WAIT_IDLE=S      wait (S seconds at most in all) for the machine to be idle (< 10% busy)
#                          before starting and before every round: for shared machines
#   REQUESTS_ENGINE_SKIP_DEPS=1   do not touch apt
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  n_fast=${BENCH_N_FAST:-2000}; n_slow=${BENCH_N_SLOW:-1000}; wrk_secs=${BENCH_WRK_SECS:-3}
  rounds=${BENCH_ROUNDS:-1}
else
  n_fast=${BENCH_N_FAST:-20000}; n_slow=${BENCH_N_SLOW:-10000}; wrk_secs=${BENCH_WRK_SECS:-10}
  rounds=${BENCH_ROUNDS:-3}
fi
bare_threads=${BENCH_BARE_THREADS:-"4 8 16 32 64"}
conc_fast=${BENCH_CONC_FAST:-64}
conc_slow=${BENCH_CONC_SLOW:-512}
slow_ms=${BENCH_SLOW_MS:-200}
nginx_conns=${BENCH_NGINX_CONNECTIONS:-4096}
out=${BENCH_OUT:-$root/bench/results-latest.md}
build=$root/build/bench
py=/usr/bin/python3  # Debian's, where python3-aiohttp lives (not a pyenv/venv python)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- dependencies ------------------------------------------------------------------------------
echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
have_all() {
  command -v nginx >/dev/null 2>&1 && [ -f "$echo_module" ] && command -v wrk >/dev/null 2>&1 &&
    "$py" -c 'import aiohttp' >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 &&
    pkg-config --exists cpp-httplib 2>/dev/null && [ -f /usr/include/nlohmann/json.hpp ] &&
    [ -f /usr/include/openssl/ssl.h ]
}
if [ "${REQUESTS_ENGINE_SKIP_DEPS:-0}" != 1 ] && ! have_all; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "packages missing and neither root nor sudo"
    sudo=(sudo)
  fi
  log "installing packages (apt-get)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nginx libnginx-mod-http-echo wrk python3 python3-aiohttp g++ pkg-config \
    libcpp-httplib-dev libssl-dev nlohmann-json3-dev >/dev/null
fi
have_all || die "dependencies missing (nginx, $echo_module, wrk, python3-aiohttp, g++, cpp-httplib, nlohmann-json, openssl)"

# --- build -------------------------------------------------------------------------------------
mkdir -p "$build"
cxx=(g++)
command -v ccache >/dev/null 2>&1 && cxx=(ccache g++)
header_sha=$(sha256sum requests_engine.hpp | cut -c1-12)  # the header as built (others may edit it meanwhile)
log "building bench_engine (${cxx[*]}), requests_engine.hpp sha256 $header_sha"
# shellcheck disable=SC2046
"${cxx[@]}" -std=c++17 -O2 -DNDEBUG -Wall -Wextra -Wpedantic -Wshadow -I"$root" \
  bench/bench_engine.cpp -o "$build/bench_engine" \
  $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread

# --- nginx -------------------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((conc_slow * 2 + 256)) ] ||
  die "open-file limit $(ulimit -n) is too low for concurrency $conc_slow"

tmp=$(mktemp -d /tmp/requests_engine_bench.XXXXXX)
nginx_conf=$tmp/nginx.conf
sleeper=
stop_nginx() {
  [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
  if [ -f "$tmp/nginx.pid" ]; then
    nginx -p "$tmp" -c "$nginx_conf" -e "$tmp/error.log" -s stop 2>/dev/null ||
      kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$tmp/nginx.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$tmp"
}
trap stop_nginx EXIT
trap 'exit 130' INT TERM

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
slow_s=$(awk -v ms="$slow_ms" 'BEGIN { printf "%.3f", ms / 1000 }')

# A realistic non-streaming chat completion (gpt-4o-mini, 2025 shape). No ' or $ inside: nginx
# strings interpolate $variables.
completion='{"id":"chatcmpl-BZ7iRkYt2cJ5uQ0vKq3LmD8xNwE4a","object":"chat.completion","created":1747908123,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"The Moon has a mean radius of about 1,737 km, roughly 27% of the radius of Earth, and a mass of about 7.35e22 kg.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":38,"total_tokens":62,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_34a54ae93c"}'

cat >"$nginx_conf" <<EOF
load_module $echo_module;
worker_processes 2;
worker_rlimit_nofile 65536;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events {
  worker_connections $nginx_conns;
  multi_accept on;
}
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_buffer_size 16k;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096;
    default_type application/json;
    # At once. "return" discards the request body, so the connection stays usable.
    location = /fast/v1/chat/completions {
      return 200 '$completion';
    }
    # After ${slow_ms} ms: read the body first (keep-alive needs it consumed), then sleep (a
    # timer, no thread held), then answer.
    location = /slow/v1/chat/completions {
      echo_read_request_body;
      echo_sleep $slow_s;
      echo -n '$completion';
    }
    location = /nginx_status {
      stub_status;
    }
  }
}
EOF
nginx -p "$tmp" -c "$nginx_conf" -e "$tmp/error.log" -t -q || die "nginx config rejected (see above)"
nginx -p "$tmp" -c "$nginx_conf" -e "$tmp/error.log" || die "nginx did not start: $(cat "$tmp/error.log" 2>/dev/null)"
base=http://127.0.0.1:$port
fast=$base/fast/v1
slow=$base/slow/v1

# Up, answering both locations with the JSON, and keeping the connection alive for both.
"$py" - "$port" <<'EOF' || die "nginx check failed"
import http.client, json, sys, time
port = int(sys.argv[1])
for _ in range(100):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5); conn.connect(); break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("nginx is not listening")
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
first = None
for path in ["/fast/v1/chat/completions", "/slow/v1/chat/completions"] * 2:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    assert r.status == 200, (path, r.status)
    assert r.getheader("Content-Type") == "application/json", r.getheader("Content-Type")
    assert json.loads(data)["choices"][0]["message"]["content"], data
    assert not r.will_close, path + ": the server closes the connection"
    first = first or conn.sock
    assert conn.sock is first, path + ": the connection was not kept alive"
print("[bench] nginx on 127.0.0.1:%d: /fast and /slow answer 200 JSON over one keep-alive connection" % port,
      file=sys.stderr)
EOF

if [ "${BENCH_SERVE_ONLY:-0}" = 1 ]; then
  log "serving until interrupted: $fast  $slow  (bench_engine: $build/bench_engine)"
  sleep infinity &
  sleeper=$!
  wait "$sleeper" || true
  exit 0
fi

# POST with the engine's body and headers, for wrk.
cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"messages":[{"content":"question 1","role":"user"}],"model":"gpt-4o-mini"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
EOF

# --- measurements ------------------------------------------------------------------------------
# Every measurement appends one line to $results: "RESULT key=K round=R conns=C served=S
# others=O <the program's fields>": the TCP connections nginx accepted meanwhile (keep-alive
# check), the requests it served (every request must reach it: no cache, no deduplication), and
# the share of the CPUs other processes used meanwhile.
results=$tmp/results.txt
: >"$results"
failures=0

# nginx's counters (stub_status): "connections-accepted requests-served"; each call is itself
# one connection and one request.
counters() {
  "$py" -c 'import sys, urllib.request; f = urllib.request.urlopen(sys.argv[1]).read().decode().split("\n")[2].split(); print(f[0], f[2])' \
    "$base/nginx_status"
}

# CPU accounting, in seconds, to tell how much of the machine other processes took meanwhile:
# the whole machine's busy time (/proc/stat), nginx's workers', and this shell's children's
# (the client measured, from the `times` builtin).
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
machine_busy_s() { awk -v hz="$hz" 'NR == 1 { b = $2 + $3 + $4 + $7 + $8 + $9; print b / hz }' /proc/stat; }
nginx_s() {
  local p total=0
  for p in $(pgrep -P "$(cat "$tmp/nginx.pid")"); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v hz="$hz" 'BEGIN { print t / hz }'
}
# `times` must run in this shell, not in a $(...) subshell: it reports the calling shell's children.
children_s() {
  times >"$tmp/times"
  awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }' "$tmp/times"
}
now_s() { date +%s.%N; }

# measure KEY ROUND command...
measure() {
  local key=$1 round=$2
  shift 2
  local a0 a1 r0 r1 line status=0 m0 m1 n0 n1 c0 c1 t0 t1 others
  read -r a0 r0 < <(counters)
  children_s >"$tmp/c0"
  m0=$(machine_busy_s); n0=$(nginx_s); t0=$(now_s)
  "$@" >"$tmp/$key.$round.out" 2>"$tmp/$key.$round.err" || status=$?
  t1=$(now_s); m1=$(machine_busy_s); n1=$(nginx_s)
  children_s >"$tmp/c1"
  c0=$(cat "$tmp/c0"); c1=$(cat "$tmp/c1")
  read -r a1 r1 < <(counters)
  # Percent of the machine's CPUs busy with neither the client nor nginx (never below 0).
  others=$(awk -v b="$m0" -v e="$m1" -v n0="$n0" -v n1="$n1" -v c0="$c0" -v c1="$c1" \
    -v t0="$t0" -v t1="$t1" -v k="$ncpu" \
    'BEGIN { o = (e - b) - (n1 - n0) - (c1 - c0); w = (t1 - t0) * k; p = (w > 0) ? 100 * o / w : 0; printf "%.0f", (p < 0) ? 0 : p }')
  line=$(grep '^RESULT ' "$tmp/$key.$round.out" | tail -1 || true)
  if [ -z "$line" ]; then
    log "$key: no result (exit $status): $(head -c 600 "$tmp/$key.$round.err")"
    failures=$((failures + 1))
    echo "RESULT key=$key round=$round conns=0 served=0 others=$others mode=none n=0 conc=0 ok=0 fail=1 secs=0 rps=0 rss_mb=0 cpu_us=0" >>"$results"
    return 0
  fi
  # The second reading counts its own connection and request: one to take off each.
  echo "RESULT key=$key round=$round conns=$((a1 - a0 - 1)) served=$((r1 - r0 - 1)) others=$others ${line#RESULT }" >>"$results"
  if ! grep -q ' fail=0 ' <<<"$line "; then
    failures=$((failures + 1))
    log "$key: FAILED requests: $line; $(head -c 600 "$tmp/$key.$round.err")"
  fi
  log "$(printf '%-14s round %s  %s others=%s%%' "$key" "$round" "$(sed 's/^RESULT //; s/ mode=[^ ]*//' <<<"$line")" "$others")"
}

# wrk prints "Requests/sec: X"; reshape it into a RESULT line.
run_wrk() {
  local url=$1 conc=$2 secs_=$3 o
  o=$(wrk -t2 -c"$conc" -d"${secs_}s" -s "$tmp/post.lua" "$url/chat/completions")
  printf '%s\n' "$o" >&2
  local r n bad
  r=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$o")
  n=$(awk '/requests in/ { print $1 }' <<<"$o")
  bad=$(sed 's/,//g' <<<"$o" |
    awk '/Non-2xx or 3xx responses:/ { s += $NF } /Socket errors:/ { s += $4 + $6 + $8 + $10 } END { print s + 0 }')
  echo "RESULT mode=wrk n=$n conc=$conc ok=$((n - bad)) fail=$bad secs=$secs_ rps=$r rss_mb=0 cpu_us=0"
}

# CPU used by other processes just before the run (a shared machine skews every figure).
cpu_busy() {  # percent of the machine busy over the next $1 seconds
  local a b
  read -ra a </proc/stat; sleep "$1"; read -ra b </proc/stat
  local total=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  awk -v i="$idle" -v t="$total" 'BEGIN { printf "%.0f", (t > 0) ? 100 * (t - i) / t : 0 }'
}
# With BENCH_WAIT_IDLE=S, wait (at most S seconds over the whole run) for 5 idle seconds in a
# row: at the start and again before every round.
wait_budget=${BENCH_WAIT_IDLE:-0}
wait_idle() {
  local b
  b=$(cpu_busy 1)
  [ "$b" -gt 10 ] && [ "$wait_budget" -gt 0 ] || return 0
  log "the machine is ${b}% busy: waiting (up to ${wait_budget} s more) for 5 idle seconds in a row"
  local waited=0
  while [ "$wait_budget" -gt 0 ]; do
    b=$(cpu_busy 5)
    waited=$((waited + 5)); wait_budget=$((wait_budget - 5))
    [ "$b" -le 10 ] && break
  done
  log "waited ${waited} s; the machine is ${b}% busy"
}
wait_idle
busy=$(cpu_busy 1)
if [ "$busy" -gt 10 ]; then
  log "WARNING: the machine is already ${busy}% busy before the benchmark starts; the figures will be low and noisy:"
  ps -eo pcpu=,comm= --sort=-pcpu | head -3 | sed 's/^/[bench]   /' >&2
fi

log "warming nginx up (wrk, 2 s)"
wrk -t2 -c"$conc_fast" -d2s -s "$tmp/post.lua" "$fast/chat/completions" >/dev/null

for round in $(seq "$rounds"); do
  [ "$round" = 1 ] || wait_idle
  log "round $round/$rounds, A/B: $n_fast requests on /fast, concurrency $conc_fast"
  for t in $bare_threads; do
    measure "bare_fast_$t" "$round" "$build/bench_engine" bare "$fast" "$n_fast" "$t"
  done
  measure engine_fast "$round" "$build/bench_engine" engine "$fast" "$n_fast" "$conc_fast"
  measure python_fast "$round" "$py" bench/peer_aiohttp.py "$fast" "$n_fast" "$conc_fast"
  measure wrk_fast "$round" run_wrk "$fast" "$conc_fast" "$wrk_secs"
done
for round in $(seq "$rounds"); do
  wait_idle
  log "round $round/$rounds, C: $n_slow requests on /slow (${slow_ms} ms), concurrency $conc_slow"
  measure engine_slow "$round" "$build/bench_engine" engine "$slow" "$n_slow" "$conc_slow"
  measure bare_slow "$round" "$build/bench_engine" bare "$slow" "$n_slow" "$conc_slow"
done
wait_idle
log "diagnostics: the engine's timeline (first request out, last answer in)"
measure timeline_fast 1 "$build/bench_engine" timeline "$fast" "$n_fast" "$conc_fast"
measure timeline_slow 1 "$build/bench_engine" timeline "$slow" "$n_slow" "$conc_slow"

# --- report ------------------------------------------------------------------------------------
export BENCH_N_FAST=$n_fast BENCH_N_SLOW=$n_slow BENCH_CONC_FAST=$conc_fast BENCH_CONC_SLOW=$conc_slow
export BENCH_SLOW_MS=$slow_ms BENCH_ROUNDS=$rounds BENCH_WRK_SECS=$wrk_secs BENCH_BUSY=$busy
export BENCH_QUICK=$quick BENCH_BARE_THREADS=$bare_threads
export BENCH_HEADER_SHA=$header_sha
BENCH_GIT=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
git diff --quiet HEAD -- requests_engine.hpp 2>/dev/null || BENCH_GIT="$BENCH_GIT, header differs from it"
export BENCH_GIT
export BENCH_MACHINE="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
export BENCH_SERVER="nginx $(nginx -v 2>&1 | sed 's|.*/||') + echo module, 2 workers, loopback, a fixed $(printf %s "$completion" | wc -c)-byte chat completion"
export BENCH_CLIENTS="cpp-httplib $(dpkg-query -W -f='${Version}' libcpp-httplib-dev 2>/dev/null || echo '?'), g++ $(g++ -dumpfullversion) -O2; Python $("$py" -c 'import platform; print(platform.python_version())') + aiohttp $("$py" -c 'import aiohttp; print(aiohttp.__version__)'); wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
"$py" bench/report.py "$results" >"$tmp/table.md"
echo
cat "$tmp/table.md"
cp "$tmp/table.md" "$out"
log "written to ${out#"$root"/}"
[ "$failures" -eq 0 ] || { log "$failures measurement(s) had failed requests"; exit 1; }
