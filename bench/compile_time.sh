#!/usr/bin/env bash
# Compile time of a program of three translation units, header-only against the compiled mode
# (REQUESTS_ENGINE_COMPILED everywhere, REQUESTS_ENGINE_IMPLEMENTATION in a fourth file), side by
# side in one run, without ccache. Two TUs run the engine, each with another provider, and
# main.cpp calls them, as a tool with several source files would. Measured: the full build (every
# TU, then the link, one at a time as -j1 would) and the rebuild after a TU that runs the engine
# changes (that TU and the link: the edit-compile cycle).
#   bash bench/compile_time.sh [ROUNDS]      (default 3; the best of the rounds is kept)
# CXX (default g++) and CXXFLAGS (default -O2 -g0) choose the compiler and the optimisation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
cxx=${CXX:-g++}
read -r -a opt <<<"${CXXFLAGS:--O2 -g0}"
read -r -a httplib <<<"$(pkg-config --cflags cpp-httplib 2>/dev/null || echo -DCPPHTTPLIB_OPENSSL_SUPPORT)"
read -r -a libs <<<"$(pkg-config --libs cpp-httplib 2>/dev/null || echo -lcpp-httplib)"
flags=(-std=c++17 "${opt[@]}" -I"$PWD" "${httplib[@]}")
export CCACHE_DISABLE=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tu() { # NAME PROVIDER BODY: a translation unit that runs one batch through PROVIDER
  cat >"$work/$1.cpp" <<EOF
#include "requests_engine.hpp"
namespace re = requests_engine;
int $1(const char* base) {
  $2
  re::engine<decltype(provider)> engine(provider, re::options().concurrency(4));
  auto results = engine.run({re::conversation().system("Be short.").user("Hello from $1")});
  return results[0] ? 0 : 1;
}
EOF
}
tu openai_part 're::openai_compatible provider(nullptr, base, "gpt-4o-mini");'
tu anthropic_part 're::anthropic provider("key", "claude-3-5-haiku-latest", base);'
cat >"$work/main.cpp" <<'EOF'
#include "requests_engine.hpp"
#include <iostream>
int openai_part(const char* base);
int anthropic_part(const char* base);
int main(int argc, char** argv) {
  const char* base = argc > 1 ? argv[1] : "http://127.0.0.1:9";
  const auto& costs = requests_engine::price_table::builtin();
  std::cout << REQUESTS_ENGINE_VERSION << ' ' << costs.size() << '\n';
  return openai_part(base) + anthropic_part(base);
}
EOF
printf '#define REQUESTS_ENGINE_IMPLEMENTATION\n#include "requests_engine.hpp"\n' >"$work/implementation.cpp"

ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
compile() { # MODE FILE
  local extra=()
  [ "$1" = compiled ] && extra=(-DREQUESTS_ENGINE_COMPILED)
  "$cxx" "${flags[@]}" "${extra[@]}" -c "$work/$2.cpp" -o "$work/$1.$2.o"
}
link() { # MODE OBJECTS...
  local mode=$1; shift
  local objs=()
  for o in "$@"; do objs+=("$work/$mode.$o.o"); done
  "$cxx" "${objs[@]}" -o "$work/$mode.exe" "${libs[@]}" -lssl -lcrypto -pthread
}
units() { # MODE: the program's files, and the library's in the compiled mode
  echo main openai_part anthropic_part
  [ "$1" != compiled ] || echo implementation
}
full() { # MODE: every TU, then the link
  local u
  for u in $(units "$1"); do compile "$1" "$u"; done
  link "$1" $(units "$1")
}
incremental() { # MODE: openai_part.cpp (a file that runs the engine) changed
  compile "$1" openai_part
  link "$1" $(units "$1")
}

declare -A best # "full header_only" etc.: the fastest round, in ms
keep_min() { [ -n "${best[$1]:-}" ] && [ "${best[$1]}" -le "$2" ] || best[$1]=$2; }
echo "compile_time.sh: $cxx ${opt[*]}, $rounds rounds, 3 translation units (+1 in the compiled mode)"
for r in $(seq "$rounds"); do
  for mode in header_only compiled; do
    t0=$(ms); full "$mode"; t1=$(ms); incremental "$mode"; t2=$(ms)
    printf '  round %d %-12s full build %6d ms   one TU changed %6d ms\n' "$r" "$mode" $((t1 - t0)) $((t2 - t1))
    keep_min "full $mode" $((t1 - t0))
    keep_min "incremental $mode" $((t2 - t1))
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "| build (best of $rounds) | header-only | compiled mode | compiled / header-only |"
echo "| --- | --- | --- | --- |"
row() { # WHAT LABEL
  local h=${best[$1 header_only]} c=${best[$1 compiled]}
  printf '| %s | %.1f s | %.1f s | %s |\n' "$2" "$(ratio "$h" 1000)" "$(ratio "$c" 1000)" "$(ratio "$c" "$h")"
}
row full "full build, 3 TUs + link"
row incremental "one engine TU changed + link"
