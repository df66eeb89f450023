#!/usr/bin/env bash
# The main job in one command: bash tools/demo.sh
# Builds examples/quickstart.cpp and the requests-engine command (build/demo, Release), then runs
# quickstart: against the real API when OPENAI_API_KEY is set (OPENAI_BASE_URL optional, for any
# OpenAI-compatible server), otherwise against the bundled local mock server.
# Installs the dependencies first (skip with REQUESTS_ENGINE_SKIP_DEPS=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=$root/build/demo

if [ "${REQUESTS_ENGINE_SKIP_DEPS:-0}" != 1 ]; then
  bash tools/install-deps.sh
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DREQUESTS_ENGINE_BUILD_TESTS=OFF -DREQUESTS_ENGINE_BUILD_EXAMPLES=ON -DREQUESTS_ENGINE_BUILD_TOOLS=ON
cmake --build "$build" -j "${REQUESTS_ENGINE_JOBS:-2}" --target quickstart requests-engine

echo
if [ -n "${OPENAI_API_KEY:-}" ]; then
  # Its answer cache lives in build/demo/run-api, so a rerun costs nothing.
  mkdir -p "$build/run-api"
  echo "OPENAI_API_KEY is set: running quickstart against ${OPENAI_BASE_URL:-https://api.openai.com/v1} (real requests; they may cost money)."
  cd "$build/run-api"
  "$build/quickstart"
else
  echo "No OPENAI_API_KEY in the environment: running against the bundled local mock server (requests-engine mock), not a real model."
  rm -rf "$build/run-mock"
  mkdir -p "$build/run-mock"
  cd "$build/run-mock"
  bash "$root/tools/with-mock.sh" "$build/requests-engine" -- "$build/quickstart"
fi
