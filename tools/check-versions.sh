#!/usr/bin/env bash
# The project's version is written in several places; they must be one version:
#   requests_engine.hpp (REQUESTS_ENGINE_VERSION and its MAJOR/MINOR/PATCH macros), CMakeLists.txt
#   (project VERSION, which requests_engine.pc and the CMake package version file take), meson.build,
#   the vcpkg port's vcpkg.json and the conan recipe. The .pc template must take CMake's.
# Usage: bash tools/check-versions.sh [ROOT]     exit 1 naming each file that disagrees
#        bash tools/check-versions.sh --self-test  each file changed in turn in a copy must fail it
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

files=(requests_engine.hpp CMakeLists.txt meson.build cmake/requests_engine.pc.in
       tools/packaging/vcpkg/requests-engine/vcpkg.json tools/packaging/conan/conanfile.py)

if [ "${1:-}" = --self-test ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  copy() { local g; rm -rf "$tmp/root"; for g in "${files[@]}"; do mkdir -p "$tmp/root/$(dirname "$g")"; cp "$here/$g" "$tmp/root/$g"; done; }
  copy
  bash "$0" "$tmp/root" >/dev/null || { echo "check-versions self-test: the unchanged copy fails" >&2; exit 1; }
  # One edit per place a version is written: each must make the check fail, naming the file.
  edits=(
    'requests_engine.hpp|s/^#define REQUESTS_ENGINE_VERSION "\([0-9]*\)\./#define REQUESTS_ENGINE_VERSION "9\1./'
    'requests_engine.hpp|s/^#define REQUESTS_ENGINE_VERSION_PATCH [0-9]*/#define REQUESTS_ENGINE_VERSION_PATCH 97/'
    'CMakeLists.txt|s/^\(project(requests_engine VERSION \)\([0-9]\)/\19\2/'
    "meson.build|s/^\(  version: '\)\([0-9]\)/\19\2/"
    'cmake/requests_engine.pc.in|s/^Version: .*/Version: 0.0.1/'
    'tools/packaging/vcpkg/requests-engine/vcpkg.json|s/^\(  "version": "\)\([0-9]\)/\19\2/'
    'tools/packaging/conan/conanfile.py|s/^\(    version = "\)\([0-9]\)/\19\2/'
  )
  for e in "${edits[@]}"; do
    f=${e%%|*}
    copy
    sed -i "${e#*|}" "$tmp/root/$f"
    if cmp -s "$here/$f" "$tmp/root/$f"; then echo "check-versions self-test: the edit of $f changed nothing" >&2; exit 1; fi
    if out=$(bash "$0" "$tmp/root" 2>&1); then
      echo "check-versions self-test: a changed version in $f was not caught" >&2; exit 1
    fi
    grep -qF "$f" <<<"$out" || { echo "check-versions self-test: the failure does not name $f: $out" >&2; exit 1; }
  done
  echo "check-versions self-test: each of the ${#edits[@]} edits was caught"
  exit 0
fi

root=${1:-$here}
cd "$root"
header=$(sed -n 's/^#define REQUESTS_ENGINE_VERSION "\(.*\)"$/\1/p' requests_engine.hpp)
parts=$(for p in MAJOR MINOR PATCH; do sed -n "s/^#define REQUESTS_ENGINE_VERSION_$p \([0-9]*\).*/\1/p" requests_engine.hpp; done | paste -sd.)
found=(
  "requests_engine.hpp (REQUESTS_ENGINE_VERSION)|$header"
  "requests_engine.hpp (REQUESTS_ENGINE_VERSION_MAJOR/MINOR/PATCH)|$parts"
  "CMakeLists.txt|$(sed -n 's/^project(requests_engine VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
  "meson.build|$(sed -n "s/^  version: '\([0-9.]*\)'.*/\1/p" meson.build)"
  "tools/packaging/vcpkg/requests-engine/vcpkg.json|$(sed -n 's/^  "version": "\([0-9.]*\)".*/\1/p' tools/packaging/vcpkg/requests-engine/vcpkg.json)"
  "tools/packaging/conan/conanfile.py|$(sed -n 's/^    version = "\([0-9.]*\)".*/\1/p' tools/packaging/conan/conanfile.py)"
)
status=0
[ -n "$header" ] || { echo "check-versions: requests_engine.hpp defines no REQUESTS_ENGINE_VERSION" >&2; exit 1; }
for entry in "${found[@]}"; do
  where=${entry%|*} v=${entry##*|}
  if [ "$v" != "$header" ]; then
    echo "check-versions: $where says '${v:-nothing}', requests_engine.hpp says $header" >&2
    status=1
  fi
done
grep -q '^Version: @PROJECT_VERSION@$' cmake/requests_engine.pc.in ||
  { echo "check-versions: cmake/requests_engine.pc.in must say Version: @PROJECT_VERSION@" >&2; status=1; }
[ "$status" -ne 0 ] || echo "check-versions: every file says $header"
exit "$status"
