#!/usr/bin/env bash
# ctest's install_consumer: install the project from BUILD_DIR into a prefix under it, build
# examples/quickstart.cpp as a separate project that only does find_package(requests_engine),
# and run it against the installed `requests-engine mock`.
# Usage: bash tests/consumer/run.sh BUILD_DIR SOURCE_DIR [CONFIG]
# Environment (set by ctest): CMAKE_COMMAND, and CMAKE_GENERATOR, CXX, CMAKE_CXX_COMPILER_LAUNCHER
# which cmake reads itself when it configures the consumer.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
config=${3:-}
cmake=${CMAKE_COMMAND:-cmake}

work=$build/install_consumer
prefix=$work/prefix
rm -rf "$prefix" "$work/run"
mkdir -p "$work/run"

echo "== install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" ${config:+--config "$config"}

echo "== configure and build the consumer project"
"$cmake" -S "$src/tests/consumer" -B "$work/build" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DQUICKSTART_SOURCE="$src/examples/quickstart.cpp" \
  ${config:+-DCMAKE_BUILD_TYPE="$config"}
"$cmake" --build "$work/build" ${config:+--config "$config"}

quickstart=$work/build/quickstart
[ -x "$quickstart" ] || quickstart=$work/build/${config:-.}/quickstart

echo "== run the consumer's quickstart against the installed mock server"
cd "$work/run"
timeout 300 bash "$src/tools/with-mock.sh" "$prefix/bin/requests-engine" -- "$quickstart"
echo "== install_consumer: OK"
