#!/usr/bin/env bash
# Compiles every part of include/requests_engine/ on its own (a translation unit that includes
# only that file), so that each part names the parts it uses. About 3 s of CPU per part.
#   bash tools/check-parts.sh [part ...]      e.g. bash tools/check-parts.sh cache.hpp dispatcher.ipp
# REQUESTS_ENGINE_JOBS compiles that many at once (default 2).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CXX=${CXX:-g++}
export HTTPLIB_FLAGS="$(pkg-config --cflags cpp-httplib 2>/dev/null)"
if [ $# -gt 0 ]; then files=("${@/#/include/requests_engine/}"); else files=(include/requests_engine/*.hpp include/requests_engine/*.ipp); fi

# In the compiled mode (REQUESTS_ENGINE_COMPILED), where a declaration is not `inline`: a part
# alone then needs the declarations of what it uses, and the definitions only of what it calls
# inline. Prints "ok PART" or "FAILED PART" and the first lines of the compiler's complaint.
check() {
  local mode=(-DREQUESTS_ENGINE_COMPILED) httplib out
  [[ $1 == *.ipp ]] && mode+=(-DREQUESTS_ENGINE_IMPLEMENTATION)
  read -r -a httplib <<< "$HTTPLIB_FLAGS"
  out=$(echo "#include \"${1#include/}\"" | "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow \
        -Wconversion -Werror -Iinclude "${mode[@]}" "${httplib[@]}" -x c++ - -o /dev/null 2>&1 | head -n 8)
  if [ -n "$out" ]; then printf 'FAILED %s\n%s\n' "$1" "$out"; else echo "ok     $1"; fi
}
export -f check

report=$(printf '%s\n' "${files[@]}" | xargs -P "${REQUESTS_ENGINE_JOBS:-2}" -I{} bash -c 'check "$1"' _ {})
echo "$report"
failed=$(grep -c '^FAILED' <<< "$report")
if [ "$failed" = 0 ]; then
  echo "check-parts: every part compiles on its own (${#files[@]} parts)"
else
  echo "check-parts: $failed of ${#files[@]} parts do not compile on their own"
  exit 1
fi
