#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz/fuzz.cpp: one binary, the target chosen by FUZZ_TARGET)
# with clang's libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer, and runs each
# target for SECONDS on a scratch copy of its seed corpus (tests/fuzz/corpus/<target>/ and the
# inputs of past findings, tests/fuzz/regressions/<target>/: both only read). Prints, per target, the executions per second, the runs, the corpus it grew to and the
# file of any finding; exits 1 when anything was found.
#   bash tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
# FUZZ_CXX picks the compiler (default clang++); FUZZ_FLAGS adds libFuzzer flags (e.g.
# "-max_len=65536"). Build and scratch corpora: build/fuzz/. Replay a finding:
#   FUZZ_TARGET=<target> build/fuzz/fuzz build/fuzz/<target>/crash-...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "usage: bash tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac

cxx=${FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (bash tools/install-deps.sh --tests installs clang)" >&2; exit 2; }
out=build/fuzz
mkdir -p "$out"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
launcher=()
command -v ccache >/dev/null && launcher=(ccache)
read -r -a httplib <<<"$(pkg-config --cflags cpp-httplib 2>/dev/null || echo -DCPPHTTPLIB_OPENSSL_SUPPORT)"
read -r -a httplib_libs <<<"$(pkg-config --libs cpp-httplib 2>/dev/null || echo -lcpp-httplib)"
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror -I. -Itools "${httplib[@]}")

# One compiler process (the header is heavy: about a minute), through ccache when there is one.
start=$SECONDS
"${launcher[@]}" "$cxx" "${flags[@]}" -c tests/fuzz/fuzz.cpp -o "$out/fuzz.o"
"$cxx" "${flags[@]}" "$out/fuzz.o" -o "$out/fuzz.new" "${httplib_libs[@]}" -lssl -lcrypto -pthread
mv "$out/fuzz.new" "$out/fuzz"
echo "fuzz.sh: built $out/fuzz in $((SECONDS - start)) s"

mapfile -t all < <(env -u FUZZ_TARGET "$out/fuzz" 2>&1 | sed -n 's/^  \([a-z_0-9]*\) .*/\1/p')
[ ${#all[@]} -gt 0 ] || { echo "fuzz.sh: the binary lists no targets" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rows=()
found=0
for t in "${targets[@]}"; do
  dir=$out/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/tmp"
  # The seeds, and the inputs of past findings (tests/fuzz/regressions/<target>/): libFuzzer runs
  # every one of them first, so that a finding that comes back fails even the shortest run.
  for seeds in "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"; do
    if [ -d "$seeds" ]; then cp -r "$seeds/." "$dir/corpus/"; fi
  done
  echo
  echo "== $t: ${seconds} s"
  status=0
  # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
  FUZZ_TARGET=$t TMPDIR=$PWD/$dir/tmp "$out/fuzz" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/" ${FUZZ_FLAGS:-} "$dir/corpus" \
    >"$dir/log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  files=$(find "$dir/corpus" -type f | wc -l)
  bytes=$(du -sb "$dir/corpus" | cut -f1)
  finding=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
            head -n 1)
  if [ "$status" -ne 0 ] || [ -n "$finding" ]; then
    found=1
    grep -E 'ERROR|runtime error|FUZZ PROPERTY|^SUMMARY|^    #[0-5] ' "$dir/log" | head -n 20 || true
    [ -n "$finding" ] || finding="(exit $status, see $dir/log)"
  fi
  row=$(printf '%-26s %8s exec/s %10s runs %5s files %8s bytes  %s' "$t" "${rate:-?}" "${runs:-?}" "$files" "$bytes" \
        "${finding:-ok}")
  echo "$row"
  rows+=("$row")
done

echo
echo "== fuzz.sh: ${seconds} s per target"
printf '%s\n' "${rows[@]}"
if [ "$found" -ne 0 ]; then
  echo "fuzz.sh: FINDINGS (replay: FUZZ_TARGET=<target> $out/fuzz <file>)"
  exit 1
fi
echo "fuzz.sh: no findings"
