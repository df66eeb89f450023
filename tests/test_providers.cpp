// The providers against loopback servers that speak each API (paths, headers, request and
// response shapes, error shapes), and their signing against outside conformance data
// (../shared/conformance: AWS SigV4 test suite, a Google service-account JWT vector).
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

namespace {

// The conformance folder beside the project. ctest and meson pass REQUESTS_ENGINE_SHARED_DIR;
// with it (or under CI) missing data fails the test, as the folder's README asks; a binary
// run by hand without it skips with a message.
std::filesystem::path conformance_dir() {
  const char* shared = std::getenv("REQUESTS_ENGINE_SHARED_DIR");
  std::filesystem::path p = shared ? std::filesystem::path(shared) / "conformance"
                                   : std::filesystem::current_path() / ".." / "shared" / "conformance";
  return std::filesystem::exists(p / "README.md") ? p : std::filesystem::path();
}

[[maybe_unused]] bool have_conformance() {
  if (!conformance_dir().empty()) return true;
  if (std::getenv("REQUESTS_ENGINE_SHARED_DIR") || std::getenv("CI"))
    FAIL("the conformance data is missing: expected ../shared/conformance beside the project root");
  MESSAGE("skipped: ../shared/conformance not found (set REQUESTS_ENGINE_SHARED_DIR to the shared folder)");
  return false;
}

[[maybe_unused]] std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// @section anthropic-tests
// @end anthropic-tests

// @section aws-tests
// @end aws-tests

// @section google-tests
// @end google-tests
