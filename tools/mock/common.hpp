// requests_engine mock: what every part shares, the server's options and small helpers (ids,
// token estimates, UTF-8 cuts, digests and key fingerprints, the providers' time formats).
#pragma once

// The installed cpp-httplib is a compiled library: every translation unit must
// see the same CPPHTTPLIB_* macros it was built with (pkg-config --cflags
// cpp-httplib), and the mock needs the TLS classes.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#error "mock_server.hpp needs CPPHTTPLIB_OPENSSL_SUPPORT: compile with $(pkg-config --cflags cpp-httplib)"
#endif
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace requests_engine_mock {

struct server_options {
  std::string host = "127.0.0.1";
  int port = 0;                      // 0 = pick a free port
  std::string api_key;               // empty = do not check auth; else require "Authorization: Bearer <api_key>"
  std::string cert_path, key_path;   // both set = HTTPS
  int latency_ms = 0;                // fixed delay before each (successful) chat answer
  int latency_jitter_ms = 0;         // plus uniform random [0, jitter]
  std::size_t threads = 256;         // server worker threads (each keep-alive connection holds one)
  int keep_alive_timeout_sec = 30;   // idle keep-alive connections are closed after this
  int read_timeout_sec = 30;
  int write_timeout_sec = 30;

  // Provider emulation; everything below is off by default.

  // More keys accepted besides api_key (auth is on when either is set).
  std::vector<std::string> extra_api_keys;
  // Keys that always get 401 invalid_api_key, and keys that are valid but out of
  // credit (OpenAI: 429 insufficient_quota; Anthropic: 400 "credit balance is too low"),
  // whether or not auth is on: the bad members of an API-key pool.
  std::vector<std::string> invalid_api_keys;
  std::vector<std::string> quota_exhausted_api_keys;

  // Per-minute limits per API key and route (requests without a key share one), as token
  // buckets that start full and refill continuously, like the providers'. 0 = no limit.
  // Tokens are estimated from the request as the providers do: prompt bytes / 4 + max_tokens.
  double rpm = 0;
  double tpm = 0;         // input + output
  double input_tpm = 0;   // prompt estimate only
  double output_tpm = 0;  // max_tokens only

  // Fault injection: the fraction of requests that get each failure, drawn from `seed` and
  // the request's sequence number, so a run is reproducible. The sum must be <= 1.
  double fail_500 = 0;       // OpenAI 500 server_error / Anthropic 500 api_error
  double fail_429 = 0;       // rate-limit error with retry-after
  double fail_overload = 0;  // OpenAI 503 / Anthropic 529 overloaded_error
  double fail_reset = 0;     // the connection is closed without an answer
  double fail_truncate = 0;  // a 200 whose body stops after 14 of the 4096 bytes its Content-Length says
  double fail_stall = 0;     // silence for stream_stall_ms, then the connection is closed without an answer
  std::uint64_t seed = 0;
  int fail_429_retry_after_ms = 1000;  // sent as retry-after (whole seconds, rounded up) and retry-after-ms

  // Streamed answers ("stream": true, Gemini's streamGenerateContent, Bedrock's
  // invoke-with-response-stream; see mock/streaming.hpp).
  std::size_t stream_chunk_bytes = 8;  // text and tool arguments go out in pieces of about this many bytes
  int stream_event_delay_ms = 0;       // pause between two events
  // The fraction of streamed answers that fail after their 200 and about half their events,
  // drawn from `seed` and the stream's sequence number (a draw of their own). The sum must be <= 1.
  double fail_stream_cut = 0;    // the connection is closed, no terminator
  double fail_stream_error = 0;  // an error event in the format's shape, then the stream ends
  double fail_stream_stall = 0;  // silence for stream_stall_ms, then the connection is closed
  int stream_stall_ms = 5000;  // also how long a whole answer's fail_stall lasts

  // One JSON line per model request is appended here (never the key: a fingerprint).
  std::string log_requests_path;
  // Each log line also holds the request body as received ("body": the parsed JSON, or the
  // text when it is not JSON), so that a test can see what a client put on the wire.
  bool log_request_bodies = false;

  // Headers every model request must carry with exactly these values (a gateway's own key, an
  // organisation id): one missing or different gets 401 in OpenAI's shape, code "gateway_header".
  std::vector<std::pair<std::string, std::string>> required_headers;
};

namespace detail {

inline std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    const auto t = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto id = static_cast<std::uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id()));
    return (static_cast<std::uint64_t>(rd()) << 32) ^ static_cast<std::uint64_t>(rd()) ^ t ^ (id << 1);
  }());
  return gen;
}

inline std::string random_hex(std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s(n, '0');
  auto& g = rng();
  for (auto& c : s) c = digits[g() & 0xfU];
  return s;
}

inline std::size_t estimate_tokens(std::size_t bytes) { return std::max<std::size_t>(1, (bytes + 3) / 4); }

// Text of a message "content": a string, or an array of {"type":"text" or "input_text","text":...}
// parts joined with "\n". Anything else: "".
inline std::string content_text(const nlohmann::json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    bool first = true;
    for (const auto& part : content) {
      if (!part.is_object()) continue;
      const auto type = part.find("type");
      const auto text = part.find("text");
      if (type == part.end() || !type->is_string() ||
          (type->get<std::string>() != "text" && type->get<std::string>() != "input_text"))
        continue;
      if (text == part.end() || !text->is_string()) continue;
      if (!first) out += '\n';
      out += text->get<std::string>();
      first = false;
    }
  }
  return out;
}

// Longest prefix of at most max_bytes bytes that does not split a UTF-8 sequence.
inline std::string utf8_prefix(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) --cut;
  return s.substr(0, cut);
}

// Text of the last user message of a "messages" array (either API's shape), for the log.
inline std::string last_user_text(const nlohmann::json& body) {
  if (!body.is_object()) return std::string();
  auto messages = body.find("messages");
  if (messages == body.end()) messages = body.find("input");  // the Responses API
  if (messages != body.end() && messages->is_string()) return messages->get<std::string>();
  if (messages == body.end() || !messages->is_array()) return std::string();
  for (auto it = messages->rbegin(); it != messages->rend(); ++it) {
    if (!it->is_object()) continue;
    const auto role = it->find("role");
    if (role == it->end() || !role->is_string() || role->get<std::string>() != "user") continue;
    const auto content = it->find("content");
    return content == it->end() ? std::string() : content_text(*content);
  }
  return std::string();
}

inline void set_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

inline bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

// Reads an optional positive integer field. Absent or null -> nullopt.
// Returns false (with `error` set) when present but invalid.
// The mock answers "Mock answer to: <prompt>", sample k > 0 marked " (sample k)", cut to
// max_tokens (finish_reason "length") when it is longer.
struct sampled_answer {
  std::string text;
  std::string finish_reason;
};
inline sampled_answer sample_answer(const std::string& base, std::int64_t k, std::optional<std::int64_t> max_tokens) {
  sampled_answer a{k == 0 ? base : base + " (sample " + std::to_string(k) + ")", "stop"};
  if (max_tokens && static_cast<std::size_t>(*max_tokens) < estimate_tokens(a.text.size())) {
    a.text = utf8_prefix(a.text, static_cast<std::size_t>(*max_tokens) * 4U);
    a.finish_reason = "length";
  }
  return a;
}

// A body's "stream": true, and its stream_options.include_usage (OpenAI's usage chunk).
struct stream_request {
  bool stream = false;
  bool include_usage = false;
};
inline stream_request stream_flags(const nlohmann::json& body) {
  stream_request out;
  if (!body.is_object()) return out;
  const auto stream = body.find("stream");
  out.stream = stream != body.end() && stream->is_boolean() && stream->get<bool>();
  const auto options = body.find("stream_options");
  if (out.stream && options != body.end() && options->is_object()) {
    const auto usage = options->find("include_usage");
    out.include_usage = usage != options->end() && usage->is_boolean() && usage->get<bool>();
  }
  return out;
}

inline bool optional_int_field(const nlohmann::json& body, const char* key, std::int64_t min, std::int64_t max,
                               std::optional<std::int64_t>& out, std::string& error) {
  out.reset();
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  bool ok = false;
  std::int64_t v = 0;
  if (it->is_number_unsigned()) {
    const auto u = it->get<std::uint64_t>();
    ok = u <= static_cast<std::uint64_t>(max);
    v = ok ? static_cast<std::int64_t>(u) : 0;
  } else if (it->is_number_integer()) {
    v = it->get<std::int64_t>();
    ok = true;
  }
  if (!ok || v < min || v > max) {
    error = std::string("Invalid '") + key + "': expected an integer between " + std::to_string(min) + " and " +
            std::to_string(max) + ", but got " + it->dump() + " instead.";
    return false;
  }
  out = v;
  return true;
}

inline std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return std::string();
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2U * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += digits[md[i] >> 4U];
    out += digits[md[i] & 0xfU];
  }
  return out;
}

// Short enough to read, long enough not to collide between the keys of one test; a key
// cannot be recovered from it.
inline std::string key_fingerprint(const std::string& key) {
  if (key.empty()) return std::string();
  return sha256_hex("requests_engine_mock key:" + key).substr(0, 16);
}

// As OpenAI writes x-ratelimit-reset-*: Go's time.Duration format ("12ms", "1s", "6m0s", "1m30.5s").
inline std::string go_duration(std::chrono::milliseconds d) {
  long long ms = d.count();
  if (ms <= 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  const long long h = ms / 3600000;
  ms %= 3600000;
  const long long m = ms / 60000;
  ms %= 60000;
  std::string out;
  if (h > 0) out += std::to_string(h) + "h";
  if (h > 0 || m > 0) out += std::to_string(m) + "m";
  out += std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    std::string frac = std::to_string(1000 + ms % 1000).substr(1);
    while (frac.back() == '0') frac.pop_back();
    out += "." + frac;
  }
  return out + "s";
}

// RFC 3339 in UTC; with_ms adds milliseconds (the request log), Anthropic's headers have none.
inline std::string rfc3339_utc(std::chrono::system_clock::time_point t, bool with_ms) {
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (with_ms) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
    out += "." + std::to_string(1000 + ms).substr(1);
  }
  return out + "Z";
}

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31U);
}

// Uniform in [0, 1), a pure function of (seed, n): the n-th request's fate.
inline double seeded_uniform(std::uint64_t seed, std::uint64_t n) {
  return static_cast<double>(splitmix64(seed ^ splitmix64(n)) >> 11U) * 0x1.0p-53;
}

inline long long ceil_seconds(std::chrono::milliseconds d) { return std::max<long long>(1, (d.count() + 999) / 1000); }

// What every OpenAI route checks first, in OpenAI's words: the body is a JSON object with a
// string `model`, copied to `model`. On failure fills `error` and `param` and returns false.
inline bool openai_body_with_model(const nlohmann::json& body, std::string& model, std::string& error,
                                   nlohmann::json& param) {
  param = nullptr;
  if (body.is_discarded()) {
    error =
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
        "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";
    return false;
  }
  if (!body.is_object()) {
    error = std::string("Invalid request body: expected a JSON object, but got ") + body.type_name() + " instead.";
    return false;
  }
  const auto m = body.find("model");
  if (m == body.end() || !m->is_string()) {
    error = m == body.end() ? std::string("'model' is a required property")
                            : std::string("Invalid type for 'model': expected a string, but got ") + m->type_name() +
                                  " instead.";
    param = "model";
    return false;
  }
  model = m->get<std::string>();
  return true;
}

}  // namespace detail
}  // namespace requests_engine_mock
