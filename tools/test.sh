#!/usr/bin/env bash
# The project's test command: bash tools/test.sh   (CI runs it through .ci/run)
# Installs the dependencies (skip with REQUESTS_ENGINE_SKIP_DEPS=1), then builds and tests with
# CMake (warnings as errors) and with Meson. Build trees: build/ci, build/meson.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=${REQUESTS_ENGINE_JOBS:-2}
# ccache (used by both builds when installed) keys on paths relative to the clone, so a fresh
# clone on a machine that built the project before reuses those objects.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
timings=()
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
run_start=$(now_ms)
mkdir -p build
run_marker=$(mktemp build/.test-run.XXXXXX)

summary() {
  local status=$?
  echo
  echo "== timings"
  local t
  for t in "${timings[@]}"; do echo "   $t"; done
  local total=$(($(now_ms) - run_start))
  printf '   %-28s %4d.%01d s\n' total $((total / 1000)) $((total % 1000 / 100))
  # Tests that could not run here (no ../shared/conformance beside the clone, no reference
  # implementation) name themselves in the unit suite's output: shown again, from this run's logs.
  local skips
  skips=$(find build -newer "$run_marker" \( -path '*/Testing/Temporary/LastTest.log' -o -name testlog.txt \) \
            -exec cat {} + 2>/dev/null | grep -a '^  SKIPPED "' | sort -u || true)
  if [ -n "$skips" ]; then
    echo "== skipped here (required under CI=true):"
    echo "$skips"
  fi
  rm -f "$run_marker"
  if [ "$status" -eq 0 ]; then echo "== tools/test.sh: all passed"; else echo "== tools/test.sh: FAILED ($status)"; fi
}
trap summary EXIT

# phase NAME COMMAND...: runs COMMAND and records how long it took.
phase() {
  local name=$1; shift
  echo
  echo "== $name: $*"
  local start status=0; start=$(now_ms)
  "$@" || status=$?
  local ms=$(($(now_ms) - start))
  timings+=("$(printf '%-28s %4d.%01d s%s' "$name" $((ms / 1000)) $((ms % 1000 / 100)) \
               "$([ "$status" -eq 0 ] || echo "  FAILED ($status)")")")
  return "$status"
}

if [ "${REQUESTS_ENGINE_SKIP_DEPS:-0}" != 1 ]; then
  phase "install dependencies" bash tools/install-deps.sh --tests
fi

# The committed single header is what its parts make (cheap: checked before any build).
phase "header up to date" bash tools/generate-header.sh --check
# Each part of it includes the parts it uses, so that it reads (and compiles) on its own.
phase "parts compile alone" env REQUESTS_ENGINE_JOBS="$jobs" bash tools/check-parts.sh

# CMake: what CI checks, warnings as errors.
phase "cmake configure" cmake -S . -B build/ci -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREQUESTS_ENGINE_WERROR=ON
phase "cmake build" cmake --build build/ci -j "$jobs"
phase "ctest" ctest --test-dir build/ci --output-on-failure -j "$jobs"
# The soak's short version: the CLI SIGKILLed and restarted under 10% faults until it finishes
# (bench/soak.sh; the long one is run by hand).
phase "soak (short)" env REQUESTS_ENGINE_BIN=build/ci/requests-engine bash bench/soak.sh --ci

# Sanitizers: the test suite again under AddressSanitizer + UndefinedBehaviorSanitizer, and
# under ThreadSanitizer (tests/tsan.supp: only Debian's uninstrumented httplib and libcrypto).
# Skip with REQUESTS_ENGINE_SKIP_SANITIZERS=1 for a quick local run; CI never skips.
if [ "${REQUESTS_ENGINE_SKIP_SANITIZERS:-0}" != 1 ] || [ "${CI:-}" = true ]; then
  # Under ASan+UBSan also the command-line tool (and its mock) with the CLI's hardening cases:
  # hostile lines, a private CA, a full disk, the cache folder deleted (the cli_hardening test).
  # The ASan+UBSan build is also the compiled mode's: the library is a static library compiled
  # once (REQUESTS_ENGINE_COMPILED=ON) and the whole suite is built and run against it.
  for san in asan:address,undefined:ON:ON tsan:thread:OFF:OFF; do
    IFS=: read -r name flags cli compiled <<<"$san"
    dir=build/$name
    targets=(requests_engine_tests)
    tests='^unit$'
    if [ "$cli" = ON ]; then targets+=(requests_engine_cli_tests); tests='^(unit|cli_hardening)$'; fi
    phase "$dir configure" cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DREQUESTS_ENGINE_WERROR=ON -DREQUESTS_ENGINE_SANITIZE="$flags" \
      -DREQUESTS_ENGINE_BUILD_EXAMPLES=OFF -DREQUESTS_ENGINE_BUILD_TOOLS="$cli" \
      -DREQUESTS_ENGINE_COMPILED="$compiled"
    phase "$dir build" cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
    phase "$dir ctest" ctest --test-dir "$dir" --output-on-failure -R "$tests"
  done
fi

# Fuzzing: every libFuzzer target for a few seconds under ASan+UBSan, after the inputs of past
# findings (tests/fuzz/regressions). A fixed seed keeps the run repeatable; long runs are by hand.
phase "fuzz" env FUZZ_FLAGS="-seed=1 ${FUZZ_FLAGS:-}" bash tools/fuzz.sh "${REQUESTS_ENGINE_FUZZ_SECONDS:-8}"

# Meson: the same tests through the other supported build system.
if [ -f build/meson/meson-private/coredata.dat ]; then
  phase "meson setup" meson setup --reconfigure build/meson -Dwerror=true
else
  phase "meson setup" meson setup build/meson -Dwerror=true
fi
phase "meson compile" meson compile -C build/meson -j "$jobs"
phase "meson test" meson test -C build/meson --print-errorlogs
