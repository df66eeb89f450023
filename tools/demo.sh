#!/usr/bin/env bash
# The main job in one command: bash tools/demo.sh
# Builds the requests-engine command and examples/quickstart.cpp (build/demo, Release), then runs
#   requests-engine run examples/questions.jsonl      (plain format)
#   requests-engine run examples/openai_batch.jsonl   (OpenAI Batch format)
# and examples/quickstart.cpp: against the real API when OPENAI_API_KEY is set (OPENAI_BASE_URL
# optional, for any OpenAI-compatible server; REQUESTS_ENGINE_MODEL picks the model, default
# gpt-4o-mini), otherwise against the bundled local mock server, started for the occasion.
# Installs the dependencies first (skip with REQUESTS_ENGINE_SKIP_DEPS=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=$root/build/demo
model=${REQUESTS_ENGINE_MODEL:-gpt-4o-mini}

if [ "${REQUESTS_ENGINE_SKIP_DEPS:-0}" != 1 ]; then
  bash tools/install-deps.sh
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DREQUESTS_ENGINE_BUILD_TESTS=OFF -DREQUESTS_ENGINE_BUILD_EXAMPLES=ON -DREQUESTS_ENGINE_BUILD_TOOLS=ON
cmake --build "$build" -j "${REQUESTS_ENGINE_JOBS:-2}" --target quickstart requests-engine

# The same steps either way; only where the requests go differs. The cache lives in the run
# folder, so running the demo again costs nothing.
steps() {
  set -e
  local cli=$1 examples=$2 model=$3 quickstart=$4
  echo "== requests-engine run examples/questions.jsonl -o questions.out.jsonl --model $model --report questions.report.html"
  "$cli" run "$examples/questions.jsonl" -o questions.out.jsonl --model "$model" --ordered --report questions.report.html
  echo "-- first answers:"
  head -n 2 questions.out.jsonl | cut -c1-200
  echo "-- the run's report, one HTML page with plots: $PWD/questions.report.html"
  echo
  echo "== requests-engine run examples/openai_batch.jsonl -o openai_batch.out.jsonl"
  "$cli" run "$examples/openai_batch.jsonl" -o openai_batch.out.jsonl --ordered
  echo "-- first answer:"
  head -n 1 openai_batch.out.jsonl | cut -c1-300
  echo
  echo "== again: every answer now comes from the cache"
  "$cli" run "$examples/questions.jsonl" -o questions.out.jsonl --model "$model" --ordered 2>&1 | grep -E "from cache|succeeded"
  echo
  echo "== examples/quickstart.cpp"
  "$quickstart"
}
export -f steps

echo
if [ -n "${OPENAI_API_KEY:-}" ]; then
  mkdir -p "$build/run-api"
  echo "OPENAI_API_KEY is set: sending to ${OPENAI_BASE_URL:-https://api.openai.com/v1} with model $model (real requests; they may cost money)."
  cd "$build/run-api"
  steps "$build/requests-engine" "$root/examples" "$model" "$build/quickstart"
  echo
  echo "Outputs and cache: $build/run-api"
else
  echo "No OPENAI_API_KEY in the environment: running against the bundled local mock server (requests-engine mock), not a real model."
  rm -rf "$build/run-mock"
  mkdir -p "$build/run-mock"
  cd "$build/run-mock"
  bash "$root/tools/with-mock.sh" "$build/requests-engine" -- \
    bash -c 'steps "$@"' steps "$build/requests-engine" "$root/examples" "$model" "$build/quickstart"
  echo
  echo "Outputs and cache: $build/run-mock (answers from the mock server, not a model)"
fi
