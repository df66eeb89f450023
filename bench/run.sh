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
#   BENCH_QUICK=1          small run (2,000 fast / 1,000 slow requests, 3 s wrk)
#   BENCH_N_FAST, BENCH_N_SLOW, BENCH_WRK_SECS, BENCH_BARE_THREADS ("4 8 16 32 64"),
#   BENCH_CONC_FAST (64), BENCH_CONC_SLOW (512), BENCH_SLOW_MS (200)
#   BENCH_OUT              where the table goes (default bench/results-latest.md)
#   BENCH_SERVE_ONLY=1     only start nginx, print its URLs and wait (for profiling by hand)
#   REQUESTS_ENGINE_SKIP_DEPS=1   do not touch apt
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  n_fast=${BENCH_N_FAST:-2000}; n_slow=${BENCH_N_SLOW:-1000}; wrk_secs=${BENCH_WRK_SECS:-3}
else
  n_fast=${BENCH_N_FAST:-20000}; n_slow=${BENCH_N_SLOW:-10000}; wrk_secs=${BENCH_WRK_SECS:-10}
fi
bare_threads=${BENCH_BARE_THREADS:-"4 8 16 32 64"}
conc_fast=${BENCH_CONC_FAST:-64}
conc_slow=${BENCH_CONC_SLOW:-512}
slow_ms=${BENCH_SLOW_MS:-200}
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
log "building bench_engine (${cxx[*]})"
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
stop_nginx() {
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
  worker_connections 4096;
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
  sleep infinity & wait $! || true
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
accepts() { curl_status | awk 'NR == 3 { print $1 }'; }
curl_status() { "$py" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "$base/nginx_status"; }

rows=()      # markdown table rows
failures=0   # measurements with failed requests
declare -A rps rss secs

# measure KEY SCENARIO CLIENT N CONC URL-LABEL -- command...
measure() {
  local key=$1 scenario=$2 client=$3 n=$4 conc=$5 label=$6
  shift 7
  local a0 a1 outf line status=0
  a0=$(accepts)
  outf=$tmp/$key.out
  "$@" >"$outf" 2>"$tmp/$key.err" || status=$?
  a1=$(accepts)
  line=$(grep '^RESULT ' "$outf" | tail -1 || true)
  if [ -z "$line" ]; then
    log "$key: no result (exit $status): $(head -c 400 "$tmp/$key.err")"
    rows+=("| $scenario | $client | $label | $n | $conc | failed | | | | see log |")
    failures=$((failures + 1))
    return 0
  fi
  local f r s m ok
  f=$(sed -n 's/.* fail=\([0-9]*\).*/\1/p' <<<"$line")
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
  r=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")
  s=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$line")
  m=$(sed -n 's/.* rss_mb=\([0-9.]*\).*/\1/p' <<<"$line")
  rps[$key]=$r; rss[$key]=$m; secs[$key]=$s
  local conns=$((a1 - a0 - 1))  # minus the stub_status request of the first probe
  if [ "$f" != 0 ]; then
    failures=$((failures + 1))
    log "$key: $f of $n requests FAILED: $(head -c 400 "$tmp/$key.err")"
  fi
  log "$(printf '%-22s %9.1f req/s  %7.3f s  rss %6.1f MB  %d connections  ok %s fail %s' \
    "$key" "$r" "$s" "$m" "$conns" "$ok" "$f")"
  rows+=("$(printf '| %s | %s | %s | %s | %s | %.0f | %.2f | %.1f | %s | %s |' \
    "$scenario" "$client" "$label" "$n" "$conc" "$r" "$s" "$m" "$conns" "$f")")
}

# wrk prints "Requests/sec: X"; reshape it into a RESULT line.
run_wrk() {
  local url=$1 conc=$2 secs_=$3 o
  o=$(wrk -t2 -c"$conc" -d"${secs_}s" -s "$tmp/post.lua" "$url/chat/completions")
  printf '%s\n' "$o" >&2
  local r n bad
  r=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$o")
  n=$(awk '/requests in/ { print $1 }' <<<"$o")
  bad=$(awk '/Non-2xx or 3xx responses:/ { s += $NF } /Socket errors:/ { s += $4 + $6 + $8 + $10 } END { print s + 0 }' \
    <<<"$(sed 's/,//g' <<<"$o")")
  echo "RESULT mode=wrk n=$n conc=$conc ok=$((n - bad)) fail=$bad secs=$secs_ rps=$r rss_mb=0"
}

log "warming nginx up (wrk, 2 s)"
wrk -t2 -c"$conc_fast" -d2s -s "$tmp/post.lua" "$fast/chat/completions" >/dev/null

log "A/B: $n_fast requests on /fast, concurrency $conc_fast"
best_bare=0; best_bare_threads=0
for t in $bare_threads; do
  measure "bare_$t" A "bare cpp-httplib loop, $t threads" "$n_fast" "$t" /fast -- \
    "$build/bench_engine" bare "$fast" "$n_fast" "$t"
  if [ -n "${rps[bare_$t]:-}" ] && awk -v a="${rps[bare_$t]}" -v b="$best_bare" 'BEGIN { exit !(a > b) }'; then
    best_bare=${rps[bare_$t]}; best_bare_threads=$t
  fi
done
measure engine_fast "A, B" "**requests_engine**" "$n_fast" "$conc_fast" /fast -- \
  "$build/bench_engine" engine "$fast" "$n_fast" "$conc_fast"
measure python_fast B "Python: aiohttp + asyncio.Semaphore" "$n_fast" "$conc_fast" /fast -- \
  "$py" bench/peer_aiohttp.py "$fast" "$n_fast" "$conc_fast"
measure wrk_fast A "wrk -t2 (C, Lua POST; ceiling)" "${wrk_secs} s" "$conc_fast" /fast -- \
  run_wrk "$fast" "$conc_fast" "$wrk_secs"

log "C: $n_slow requests on /slow (${slow_ms} ms), concurrency $conc_slow"
measure engine_slow C "**requests_engine**" "$n_slow" "$conc_slow" "/slow" -- \
  "$build/bench_engine" engine "$slow" "$n_slow" "$conc_slow"
measure bare_slow C "bare cpp-httplib loop, $conc_slow threads" "$n_slow" "$conc_slow" "/slow" -- \
  "$build/bench_engine" bare "$slow" "$n_slow" "$conc_slow"

# --- table -------------------------------------------------------------------------------------
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() {  # value op target
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "n/a") { print "**not measured**"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
    print ok ? "met" : "**MISSED**" }'
}
ideal_slow=$(awk -v c="$conc_slow" -v ms="$slow_ms" 'BEGIN { printf "%.0f", c * 1000 / ms }')
# With N requests in waves of C, the last wave is partial: the best possible wall time is
# ceil(N / C) * latency, which bounds the ratio below 1 when N is not a multiple of C.
bound_slow=$(awk -v n="$n_slow" -v c="$conc_slow" -v ms="$slow_ms" -v i="$ideal_slow" \
  'BEGIN { w = int((n + c - 1) / c); printf "%.3f", (n / (w * ms / 1000)) / i }')
r_a=$(ratio "${rps[engine_fast]:-}" "$best_bare")
r_aw=$(ratio "${rps[engine_fast]:-}" "${rps[wrk_fast]:-}")
r_bw=$(ratio "$best_bare" "${rps[wrk_fast]:-}")
r_b=$(ratio "${rps[engine_fast]:-}" "${rps[python_fast]:-}")
r_c=$(ratio "${rps[engine_slow]:-}" "$ideal_slow")
rss_c=${rss[engine_slow]:-n/a}

header_hash=$(sha256sum requests_engine.hpp | cut -c1-12)
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
{
  echo "# requests_engine benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); \`bash bench/run.sh\`$([ "$quick" = 1 ] && echo ' (BENCH_QUICK=1)'); requests_engine.hpp sha256 $header_hash (git $git_rev)."
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)."
  echo "Server: nginx $(nginx -v 2>&1 | sed 's|.*/||') + echo module, 2 workers, on loopback, fixed $(printf %s "$completion" | wc -c)-byte chat completion; client and server share the CPUs."
  echo "Clients: cpp-httplib $(dpkg-query -W -f='${Version}' libcpp-httplib-dev 2>/dev/null || echo '?'), g++ $(g++ -dumpfullversion) -O2; Python $("$py" -c 'import platform; print(platform.python_version())') + aiohttp $("$py" -c 'import aiohttp; print(aiohttp.__version__)'); wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')."
  echo
  echo "| scenario | client | endpoint | requests | concurrency | req/s | wall s | peak RSS MB | TCP connections | failed |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| ratio | value | target | |"
  echo "| --- | ---: | ---: | --- |"
  echo "| A. engine ÷ best bare loop ($best_bare_threads threads, $(printf '%.0f' "$best_bare") req/s) | $r_a | ≥ 0.8 | $(verdict "$r_a" ">=" 0.8) |"
  echo "| A. engine ÷ wrk | $r_aw | | |"
  echo "| A. best bare loop ÷ wrk | $r_bw | | |"
  echo "| B. engine ÷ Python (aiohttp) | $r_b | ≥ 3 | $(verdict "$r_b" ">=" 3) |"
  echo "| C. engine ÷ $conc_slow / ${slow_s} s = $ideal_slow req/s (best possible for $n_slow requests: $bound_slow) | $r_c | ≥ 0.95 | $(verdict "$r_c" ">=" 0.95) |"
  echo "| C. engine peak RSS, MB | $rss_c | ≤ 150 | $(verdict "$rss_c" "<=" 150) |"
  if [ "$failures" -ne 0 ]; then
    echo
    echo "**$failures measurement(s) had failed requests: the figures above are not valid.**"
  fi
} >"$tmp/table.md"

echo
cat "$tmp/table.md"
cp "$tmp/table.md" "$out"
log "written to ${out#"$root"/}"
[ "$failures" -eq 0 ]
