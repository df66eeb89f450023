#!/usr/bin/env bash
# The ways a user takes requests_engine into a project, each built as that user would and its
# program run against the bundled mock server (tools/with-mock.sh). ctest runs one KIND per test:
#   find_package     install into a prefix, then an outside project's find_package(requests_engine)
#   vcpkg_usage      the clone installed with the vcpkg portfile's options (its CONFIG_PATH and
#                    copyright file checked), then exactly the CMake lines of the port's `usage`
#   pkgconfig        install, then `c++ quickstart.cpp $(pkg-config --cflags --libs requests_engine)`
#   add_subdirectory the clone as a subfolder of a project, in the compiled mode (a static library)
#   fetchcontent     FetchContent from the clone's git repository, at its HEAD commit
#   meson_subproject a Meson project with a wrap-git naming the clone, at its HEAD commit
#   conan            conan 2 (../shared/tools/conan): stand-ins for the three dependencies, then
#                    `conan create tools/packaging/conan`, whose test_package talks to the mock
# For add_subdirectory and fetchcontent it also checks that the subproject's tests, examples and
# tools are off and that none of its warning or sanitizer flags reach the parent's target.
#
# Usage: bash tests/consumer/run.sh KIND BUILD_DIR SOURCE_DIR CLI_BINARY [CONFIG]
# Environment (set by ctest): CMAKE_COMMAND, and CMAKE_GENERATOR, CXX, CMAKE_CXX_COMPILER_LAUNCHER
# which cmake reads itself when it configures a consumer; REQUESTS_ENGINE_SHARED_DIR (conan).
# Exit 77 (ctest: skipped) where a kind cannot run here, with the reason; never under CI=true.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 KIND BUILD_DIR SOURCE_DIR CLI_BINARY [CONFIG]" >&2; exit 2; }
kind=$1
build=$(cd "$2" && pwd)
src=$(cd "$3" && pwd)
cli=$4
config=${5:-}
cmake=${CMAKE_COMMAND:-cmake}

work=$build/consumers/$kind
rm -rf "$work"
mkdir -p "$work/run"
prefix=$work/prefix
quickstart_src=$src/examples/quickstart.cpp
version=$(sed -n 's/^#define REQUESTS_ENGINE_VERSION "\(.*\)"$/\1/p' "$src/requests_engine.hpp")

skip() {
  if [ "${CI:-}" = true ]; then
    echo "consumer $kind: FAILED: cannot run here under CI=true: $*" >&2
    exit 1
  fi
  # The unit suite's form, which tools/test.sh's summary lists again at the end.
  echo "consumer $kind: SKIPPED: $*"
  echo "  SKIPPED \"consumer_$kind\": $*"
  exit 77
}

install_prefix() {
  echo "== install into $prefix"
  "$cmake" --install "$build" --prefix "$prefix" ${config:+--config "$config"} >/dev/null
}

# configure_and_build PROJECT_DIR [CMAKE_ARGS...]: the consumer project in $work/build.
configure_and_build() {
  local dir=$1; shift
  echo "== configure and build the consumer project ($dir)"
  "$cmake" -S "$dir" -B "$work/build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DQUICKSTART_SOURCE="$quickstart_src" ${config:+-DCMAKE_BUILD_TYPE="$config"} "$@"
  "$cmake" --build "$work/build" ${config:+--config "$config"}
}

# run_quickstart PROGRAM: the quick start against the mock; its three answers must be there.
run_quickstart() {
  echo "== run $1 against the mock server"
  local out
  out=$(cd "$work/run" && timeout 300 bash "$src/tools/with-mock.sh" "$cli" -- "$1")
  echo "$out"
  for q in "How big is the moon?" "How big is the sun?" "How far is Mars?"; do
    grep -qF "Mock answer to: $q" <<<"$out" || { echo "consumer $kind: no answer to '$q'" >&2; exit 1; }
  done
}

# built_program [NAME]: the consumer's executable (default quickstart), wherever the generator put it.
built_program() {
  local exe=$work/build/${1:-quickstart}
  [ -x "$exe" ] || exe=$work/build/${config:-.}/${1:-quickstart}
  echo "$exe"
}

# clone_head: the commit the clone is at (FetchContent and the Meson wrap fetch it by git), or a
# skip saying why there is none (on stderr: stdout is the commit; the skip's exit status ends the
# script through set -e at the caller's assignment).
clone_head() {
  command -v git >/dev/null || skip "git is not installed" >&2
  git -C "$src" rev-parse --verify -q HEAD 2>/dev/null || skip "$src is not a git clone" >&2
}

# check_subproject_hygiene: the parent's build has none of our own targets, and the parent's
# quickstart.cpp is compiled with none of our warning, -Werror or sanitizer flags.
check_subproject_hygiene() {
  echo "== the subproject's tests, examples and tools are off; its flags stay inside it"
  local targets
  targets=$("$cmake" --build "$work/build" --target help)
  for t in requests_engine_tests requests_engine_cli_tests requests-engine custom_cache \
           custom_provider local_model quickstart_compiled; do
    if grep -qE "(^|[ :])$t(:|$| )" <<<"$targets"; then
      echo "consumer $kind: the parent's build has our target $t" >&2; exit 1
    fi
  done
  python3 - "$work/build/compile_commands.json" "$quickstart_src" <<'EOF'
import json, os, sys
entries = [e for e in json.load(open(sys.argv[1]))
           if os.path.realpath(e["file"]) == os.path.realpath(sys.argv[2])]
if len(entries) != 1:
    sys.exit(f"expected one compile command for {sys.argv[2]}, found {len(entries)}")
cmd = entries[0].get("command") or " ".join(entries[0]["arguments"])
ours = [f for f in cmd.split() if f.startswith(("-W", "-fsanitize", "-pedantic"))]
if ours:
    sys.exit(f"flags of the subproject reached the parent's quickstart.cpp: {' '.join(ours)}")
print("the parent's quickstart.cpp is compiled with:", cmd)
EOF
}

case "$kind" in
  find_package)
    install_prefix
    configure_and_build "$src/tests/consumer/find_package" -DCMAKE_PREFIX_PATH="$prefix"
    run_quickstart "$(built_program)"
    ;;

  vcpkg_usage)
    # The port itself needs the vcpkg tool (a downloaded binary: not here). What can be checked
    # is that the names its `usage` file promises are the ones the installed package exports.
    port=$src/tools/packaging/vcpkg/requests-engine
    usage=$port/usage
    # What the portfile does, done with plain CMake: configure the clone with the portfile's
    # OPTIONS, install, and find the config where its vcpkg_cmake_config_fixup looks for it.
    mapfile -t port_options < <(sed -n 's/^ *\(-DREQUESTS_ENGINE_[A-Z_]*=[A-Z]*\)$/\1/p' "$port/portfile.cmake")
    [ ${#port_options[@]} -gt 0 ] || { echo "consumer $kind: no -D options found in the portfile" >&2; exit 1; }
    echo "== configure the clone with the portfile's options: ${port_options[*]}"
    "$cmake" -S "$src" -B "$work/port_build" -DCMAKE_BUILD_TYPE=Release --warn-uninitialized \
      -Werror=dev "${port_options[@]}" >"$work/port_configure.log" 2>&1 ||
      { cat "$work/port_configure.log"; echo "consumer $kind: the portfile's configure fails" >&2; exit 1; }
    if grep -q "Manually-specified variables were not used" "$work/port_configure.log"; then
      cat "$work/port_configure.log"; echo "consumer $kind: the portfile passes an option the project does not have" >&2; exit 1
    fi
    "$cmake" --install "$work/port_build" --prefix "$prefix" >/dev/null
    config_path=$(sed -n 's/.*vcpkg_cmake_config_fixup(.*CONFIG_PATH \([^ )]*\).*/\1/p' "$port/portfile.cmake")
    [ -f "$prefix/$config_path/requests_engineConfig.cmake" ] ||
      { echo "consumer $kind: the portfile's CONFIG_PATH $config_path has no requests_engineConfig.cmake" >&2; exit 1; }
    license=$(sed -n 's|.*vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/\([^"]*\)").*|\1|p' "$port/portfile.cmake")
    [ -n "$license" ] && [ -f "$src/$license" ] ||
      { echo "consumer $kind: the portfile's copyright file '$license' is not in the clone" >&2; exit 1; }
    [ ! -d "$prefix/lib" ] || [ -z "$(find "$prefix/lib" -type f)" ] ||
      { echo "consumer $kind: the header-only install has files in lib/" >&2; exit 1; }
    mkdir -p "$work/project"
    lines=$(grep -E '^ +(find_package|target_link_libraries)\(' "$usage" | sed 's/^ *//')
    grep -q '^find_package(' <<<"$lines" && grep -q '^target_link_libraries(main ' <<<"$lines" ||
      { echo "consumer $kind: $usage has no find_package / target_link_libraries(main ...) lines" >&2; exit 1; }
    {
      echo 'cmake_minimum_required(VERSION 3.16)'
      echo 'project(vcpkg_usage CXX)'
      echo 'add_executable(main "${QUICKSTART_SOURCE}")'
      echo "$lines"
    } >"$work/project/CMakeLists.txt"
    cat "$work/project/CMakeLists.txt"
    configure_and_build "$work/project" -DCMAKE_PREFIX_PATH="$prefix"
    run_quickstart "$(built_program main)"
    ;;

  pkgconfig)
    install_prefix
    export PKG_CONFIG_PATH="$prefix/share/pkgconfig:$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    pc_version=$(pkg-config --modversion requests_engine)
    [ "$pc_version" = "$version" ] ||
      { echo "consumer $kind: requests_engine.pc says $pc_version, the header $version" >&2; exit 1; }
    read -r -a flags <<<"$(pkg-config --cflags --libs requests_engine)"
    launcher=()
    [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] || launcher=("$CMAKE_CXX_COMPILER_LAUNCHER")
    echo "== ${CXX:-c++} quickstart.cpp ${flags[*]}"
    mkdir -p "$work/build"
    (cd "$work/build" && "${launcher[@]}" "${CXX:-c++}" "$quickstart_src" -o quickstart "${flags[@]}")
    run_quickstart "$work/build/quickstart"
    ;;

  add_subdirectory)
    configure_and_build "$src/tests/consumer/add_subdirectory" \
      -DREQUESTS_ENGINE_SOURCE_DIR="$src" -DREQUESTS_ENGINE_COMPILED=ON
    lib=$(find "$work/build/requests_engine" -name 'librequests_engine.a' -o -name 'requests_engine.lib' | head -n 1)
    [ -n "$lib" ] || { echo "consumer $kind: the compiled mode built no static library" >&2; exit 1; }
    echo "the compiled mode's library: $lib"
    check_subproject_hygiene
    run_quickstart "$(built_program)"
    ;;

  fetchcontent)
    head=$(clone_head)
    if [ -n "$(git -C "$src" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
      echo "note: FetchContent takes the commit $head; the clone's uncommitted changes are not in it"
    fi
    configure_and_build "$src/tests/consumer/fetchcontent" \
      -DREQUESTS_ENGINE_GIT_URL="$src" -DREQUESTS_ENGINE_GIT_TAG="$head"
    check_subproject_hygiene
    run_quickstart "$(built_program)"
    ;;

  meson_subproject)
    command -v meson >/dev/null || skip "meson is not installed"
    head=$(clone_head)
    mkdir -p "$work/project/subprojects"
    cp "$src/tests/consumer/meson_subproject/meson.build" "$quickstart_src" "$work/project/"
    printf '[wrap-git]\nurl = %s\nrevision = %s\ndepth = 1\n' "$src" "$head" >"$work/project/subprojects/requests_engine.wrap"
    cat "$work/project/subprojects/requests_engine.wrap"
    echo "== meson setup and compile the consumer project"
    meson setup "$work/build" "$work/project" --wrap-mode=default
    meson compile -C "$work/build"
    run_quickstart "$work/build/quickstart"
    ;;

  conan)
    conan=${REQUESTS_ENGINE_SHARED_DIR:-$src/../shared}/tools/conan
    [ -x "$conan" ] || [ -f "$conan" ] || skip "no conan here ($conan: ../shared beside the clone has it)"
    export CONAN_HOME=$work/conan_home
    echo "== conan profile detect (CONAN_HOME=$CONAN_HOME)"
    bash "$conan" profile detect >/dev/null
    bash "$conan" remote remove conancenter >/dev/null # no remote is reachable: only local recipes
    for dep in openssl:openssl cpp-httplib:cpp-httplib nlohmann_json:nlohmann_json; do
      IFS=: read -r name module <<<"$dep"
      v=$(pkg-config --modversion "$module") || skip "pkg-config finds no $module"
      echo "== stand-in $name/$v (the Debian package)"
      bash "$conan" create "$src/tests/consumer/conan/$name" --version "$v" -o 'cpp-httplib/*:with_openssl=True' >"$work/$name.log" 2>&1 ||
        { cat "$work/$name.log"; echo "consumer $kind: the stand-in $name failed" >&2; exit 1; }
    done
    echo "== conan create tools/packaging/conan (its test_package against the mock server)"
    # The test_package is built where conan finds it; a copy keeps its build out of the clone.
    cp -r "$src/tools/packaging/conan/test_package" "$work/test_package"
    out=$(cd "$work/run" && timeout 600 bash "$src/tools/with-mock.sh" "$cli" -- \
            bash "$conan" create "$src/tools/packaging/conan" --build=missing -tf "$work/test_package" 2>&1) ||
      { echo "$out"; echo "consumer $kind: conan create failed" >&2; exit 1; }
    echo "$out" | tail -n 30
    # Nothing written into the clone.
    if [ -e "$src/tools/packaging/conan/test_package/build" ] || [ -e "$src/tools/packaging/conan/test_package/CMakeUserPresets.json" ]; then
      echo "consumer $kind: conan wrote into tools/packaging/conan/test_package/" >&2; exit 1
    fi
    grep -qF "requests_engine $version" <<<"$out" ||
      { echo "consumer $kind: the test_package did not print the version $version" >&2; exit 1; }
    grep -qF "Mock answer to: Say hello from the conan package." <<<"$out" ||
      { echo "consumer $kind: the test_package did not get the mock's answer" >&2; exit 1; }
    ;;

  *)
    echo "$0: unknown KIND $kind" >&2; exit 2 ;;
esac
echo "== consumer $kind: OK"
