// requests_engine.hpp: batch inference over LLM HTTP APIs, in one C++17 header.
// https://github.com/requests-engine/requests_engine   (MIT licence, see the end of this file)
//
// Quick start (needs cpp-httplib with OpenSSL, OpenSSL, nlohmann/json):
//
//   #include "requests_engine.hpp"
//   namespace re = requests_engine;
//
//   re::openai_compatible provider(std::getenv("OPENAI_API_KEY"),
//                                  "https://api.openai.com/v1", "gpt-4o-mini");
//   re::engine<re::openai_compatible> engine(provider, re::options().concurrency(64));
//
//   std::vector<re::conversation> batch;
//   for (const char* q : {"How big is the moon?", "How big is the sun?"})
//     batch.push_back(re::conversation().system("Answer shortly").user(q));
//
//   auto results = engine.run(batch, re::params().temperature(0.3));
//   for (auto& r : results)
//     if (r) std::cout << r->text << '\n'; else std::cerr << r.error().message << '\n';
//
// What happens: a fixed pool of worker threads (options::concurrency) sends the requests,
// each worker keeping one keep-alive connection per origin; failures worth retrying (408,
// 409, 429, 5xx, connection errors) are retried with backoff without holding a worker;
// every input gets exactly one result, in input order: a completion or an error value.
// Nothing throws across a worker thread. Exceptions are thrown only for misuse at
// construction (a malformed URL, a bad option).
//
// Build: link cpp-httplib (compiled with CPPHTTPLIB_OPENSSL_SUPPORT), OpenSSL (ssl, crypto),
// nlohmann/json and threads. With CMake: target_link_libraries(app requests_engine::requests_engine).
// Configuration macros are listed below (REQUESTS_ENGINE_*), each with its default.

#pragma once

#define REQUESTS_ENGINE_VERSION_MAJOR 0
#define REQUESTS_ENGINE_VERSION_MINOR 1
#define REQUESTS_ENGINE_VERSION_PATCH 0
#define REQUESTS_ENGINE_VERSION "0.1.0"

// ---------------------------------------------------------------------------------------------
// Configuration macros
// ---------------------------------------------------------------------------------------------

// Compiled mode: define REQUESTS_ENGINE_COMPILED everywhere and REQUESTS_ENGINE_IMPLEMENTATION
// in exactly one .cpp file; the heavy non-template code is then compiled once.
#if defined(REQUESTS_ENGINE_COMPILED)
#ifndef REQUESTS_ENGINE_INLINE
#define REQUESTS_ENGINE_INLINE
#endif
#else
#ifndef REQUESTS_ENGINE_INLINE
#define REQUESTS_ENGINE_INLINE inline  // marks every out-of-class definition (header-only mode)
#endif
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_CONCURRENCY
#define REQUESTS_ENGINE_DEFAULT_CONCURRENCY 32  // worker threads = requests in flight at once
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_MAX_RETRIES
#define REQUESTS_ENGINE_DEFAULT_MAX_RETRIES 2  // retries after the first attempt (OpenAI SDK default)
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_CONNECT_TIMEOUT_MS
#define REQUESTS_ENGINE_DEFAULT_CONNECT_TIMEOUT_MS 10000  // TCP + TLS connect
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_READ_TIMEOUT_MS
#define REQUESTS_ENGINE_DEFAULT_READ_TIMEOUT_MS 600000  // silence allowed while reading (SDKs: 600 s)
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_WRITE_TIMEOUT_MS
#define REQUESTS_ENGINE_DEFAULT_WRITE_TIMEOUT_MS 60000  // silence allowed while writing
#endif

#ifndef REQUESTS_ENGINE_DEFAULT_MAX_RESPONSE_BYTES
#define REQUESTS_ENGINE_DEFAULT_MAX_RESPONSE_BYTES (64u * 1024u * 1024u)  // cap on one response body
#endif

// ---------------------------------------------------------------------------------------------
// Dependency checks
// ---------------------------------------------------------------------------------------------

#if defined(CPPHTTPLIB_VERSION) && !defined(CPPHTTPLIB_OPENSSL_SUPPORT)
#error "requests_engine: httplib.h was included without CPPHTTPLIB_OPENSSL_SUPPORT. Define it (or use the flags of `pkg-config --cflags cpp-httplib`) before every #include <httplib.h>: HTTPS needs it."
#endif
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif

#if __cplusplus < 201703L && (!defined(_MSVC_LANG) || _MSVC_LANG < 201703L)
#error "requests_engine needs C++17 or later"
#endif

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#if defined(_WIN32)
#include <io.h>
#else
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <ostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>


// Every part of the header opens and closes the namespace with these (an inline ABI namespace,
// as nlohmann/json does), so the parts read on their own and concatenate into one header.
#define REQUESTS_ENGINE_NAMESPACE_BEGIN \
  namespace requests_engine {           \
  inline namespace v0 {
#define REQUESTS_ENGINE_NAMESPACE_END \
  }  /* inline namespace v0 */        \
  }  // namespace requests_engine

REQUESTS_ENGINE_NAMESPACE_BEGIN

using json = nlohmann::json;
namespace detail {
using clock = std::chrono::steady_clock;

// JSON from outside (answers, input lines, cache entries, result files) nested deeper than this
// is refused before it is parsed. nlohmann's parser takes any depth, but copying, comparing and
// printing a value recurse once per level, so 100,000 levels overflow a thread's stack.
inline constexpr std::size_t max_json_depth = 512;

// True when `text` nests arrays and objects more than max_json_depth deep (brackets inside
// strings do not count). Text too short to hold that many brackets is not scanned.
inline bool json_too_deep(std::string_view text) noexcept {
  if (text.size() <= max_json_depth) return false;
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_json_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// A count (tokens, an index) read from outside JSON: a whole number from 0 to 2^40, else 0.
// A string, a fraction, a negative number or one past 64 bits never wraps, overflows a sum of
// counts, or makes a float-to-integer conversion undefined.
inline constexpr std::int64_t max_json_count = std::int64_t{1} << 40;
inline std::int64_t json_count(std::uint64_t u) {
  return u <= static_cast<std::uint64_t>(max_json_count) ? static_cast<std::int64_t>(u) : 0;
}
inline std::int64_t json_count(std::int64_t i) { return i >= 0 && i <= max_json_count ? i : 0; }
inline std::int64_t json_count(const json& v) {
  if (v.is_number_unsigned()) return json_count(v.get<std::uint64_t>());
  if (v.is_number_integer()) return json_count(v.get<std::int64_t>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return d >= 0 && d <= static_cast<double>(max_json_count) && d == std::floor(d) ? static_cast<std::int64_t>(d) : 0;
  }
  return 0;
}
inline std::int64_t json_count(const json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  const auto it = obj.find(key);
  return it == obj.end() ? 0 : json_count(*it);
}

// A string member of outside JSON: "" when `obj` is no object, or the member is missing or no string.
inline std::string json_string_field(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Parses outside JSON without throwing: a discarded value when `text` is not JSON or nests
// deeper than max_json_depth. With `why`, a failure is explained there (the parser's message:
// where the text went wrong), never with the text itself beyond the parser's short excerpt.
template <class Json = json>
Json parse_json(std::string_view text, std::string* why = nullptr) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  if (json_too_deep(text)) {
    if (why) *why = "JSON nested deeper than " + std::to_string(max_json_depth) + " levels";
    return Json(Json::value_t::discarded);
  }
  Json j = Json::parse(begin, end, nullptr, false);
  if (j.is_discarded() && why) {
    try {
      const Json again = Json::parse(begin, end);  // throws, with the parser's message
      (void)again;
      *why = "not JSON";
    } catch (const std::exception& e) {
      std::string message = e.what();
      const std::size_t close = message.find("] ");
      if (message.rfind("[json.exception", 0) == 0 && close != std::string::npos) message.erase(0, close + 2);
      *why = "not JSON: " + message;
    }
  }
  return j;
}
}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
