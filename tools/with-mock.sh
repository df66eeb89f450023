#!/usr/bin/env bash
# Runs a command against the bundled local mock server.
# Usage: bash tools/with-mock.sh REQUESTS_ENGINE_BINARY [MOCK_FLAGS...] -- COMMAND [ARGS...]
# Starts `REQUESTS_ENGINE_BINARY mock --port 0 --port-file F [MOCK_FLAGS...]` on loopback, waits
# until it accepts connections, runs COMMAND with OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 and
# without OPENAI_API_KEY, stops the mock whatever happens, and exits with COMMAND's status.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 REQUESTS_ENGINE_BINARY [MOCK_FLAGS...] -- COMMAND [ARGS...]" >&2; exit 2; }
binary=$1; shift
mock_flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do mock_flags+=("$1"); shift; done
[ $# -ge 2 ] || { echo "$0: missing '-- COMMAND'" >&2; exit 2; }
shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/requests-engine-mock.XXXXXX")
port_file=$tmp/port
log=$tmp/mock.log
mock_pid=
cmd_pid=

stop() { # PID: TERM, then KILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [ -z "$cmd_pid" ] || stop "$cmd_pid"
  [ -z "$mock_pid" ] || stop "$mock_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$binary" mock --port 0 --port-file "$port_file" "${mock_flags[@]}" >"$log" 2>&1 &
mock_pid=$!

fail() {
  echo "$0: $1" >&2
  echo "--- mock server log ($binary mock) ---" >&2
  cat "$log" >&2 || true
  exit 1
}

# The port file may appear before it is completely written: wait until it holds a number that
# stays the same, then until the port accepts a connection.
port=
for _ in $(seq 300); do
  kill -0 "$mock_pid" 2>/dev/null || fail "the mock server exited before it was ready"
  if [ -s "$port_file" ]; then
    first=$(tr -dc '0-9' <"$port_file"); sleep 0.05; port=$(tr -dc '0-9' <"$port_file")
    if [ -n "$port" ] && [ "$port" = "$first" ] && [ "$port" -gt 0 ] &&
       (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break
    fi
    port=
  fi
  sleep 0.1
done
[ -n "$port" ] || fail "the mock server did not answer within 30 s (port file $port_file)"

# In the background, so that a signal to this script runs the traps at once (bash runs them only
# after a foreground command ends), with this script's stdin passed on.
exec 3<&0
# OLLAMA_HOST: the mock also serves Ollama's native /api/chat (examples/custom_provider.cpp).
env -u OPENAI_API_KEY OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OLLAMA_HOST="http://127.0.0.1:$port" "$@" <&3 3<&- &
cmd_pid=$!
status=0
wait "$cmd_pid" || status=$?
cmd_pid=
exit "$status"
