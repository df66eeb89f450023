// requests_engine mock server: a loopback HTTP/HTTPS server that behaves like
// an OpenAI-compatible chat completions endpoint and Anthropic's Messages API,
// with their rate limits, headers and errors. Used in-process by the test
// suite and by the `requests-engine mock` CLI subcommand.
//
// Header-only; needs cpp-httplib (built with CPPHTTPLIB_OPENSSL_SUPPORT),
// nlohmann/json and OpenSSL 3 (-lssl -lcrypto).
//
// Routes:
//   POST /v1/chat/completions   OpenAI chat completions (non-streaming)
//   POST /v1/messages           Anthropic Messages (non-streaming)
//   GET  /health                200 "ok"
//   the batch APIs: /v1/files, /v1/batches, /v1/messages/batches (see add_batch_routes)
// Anything else gets an OpenAI-shaped JSON 404.
//
// Mock behaviour of POST /v1/chat/completions (in this order):
//   1. counts the request, records its parsed body (null if not JSON) and
//      headers (at most the last 1000);
//   2. `on_chat` hook, if set, may produce the whole response itself;
//   3. auth: if api_key (or extra_api_keys) is set, "Authorization: Bearer <key>"
//      is required, else 401 {"error":{..., "code":"invalid_api_key"}}; keys in
//      invalid_api_keys always get that 401, keys in quota_exhausted_api_keys
//      429 insufficient_quota;
//   4. validation: 400 invalid_request_error for a body that is not a JSON
//      object, missing/non-string 'model', missing/empty/non-array 'messages',
//      a message that is not an object with a string 'role', an 'n' that is not
//      an integer in [1,128], a 'max_tokens' / 'max_completion_tokens' that is
//      not a positive integer, and "stream": true (not supported);
//   5. a forced pause (pause_requests / pause_for): 429 rate_limit_exceeded
//      with retry-after;
//   6. injected faults (fail_reset, fail_500, fail_429, fail_overload), drawn
//      from `seed` and the request's sequence number: the connection closed
//      without an answer, 500, 429 with retry-after, 503;
//   7. rate limits (rpm, tpm, input_tpm, output_tpm) per key: token buckets;
//      past them 429 rate_limit_exceeded with retry-after and retry-after-ms.
//      Answers carry x-ratelimit-{limit,remaining,reset}-{requests,tokens}
//      for each configured limit (reset as OpenAI writes it: "12ms", "6m0s");
//   8. latency_ms + uniform[0, latency_jitter_ms] delay (interrupted by stop());
//   9. 200 with choices whose content is "Mock answer to: " + text of the last
//      user message (string content, or "text" parts joined with "\n"), plus
//      " (sample i)" for choice i > 0. Token counts are bytes/4 rounded up, at
//      least 1: prompt = all message texts, completion = sum over choices.
//      If max_tokens (or max_completion_tokens) is smaller than a choice's
//      estimate, its text is cut to max_tokens*4 bytes (on a UTF-8 boundary)
//      and finish_reason is "length".
// Every chat response carries an `x-request-id` header.
//
// POST /v1/messages follows the same steps with Anthropic's rules and shapes:
// "x-api-key" (401 authentication_error), "anthropic-version" required,
// 'model', 'max_tokens' and 'messages' validated (400 invalid_request_error),
// errors as {"type":"error","error":{"type":...,"message":...}}, the quota key
// 400 "credit balance is too low", 500 api_error, overload 529
// overloaded_error, 429 rate_limit_error with retry-after (seconds); answers
// carry anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
// {limit,remaining,reset} (reset in RFC 3339) and `request-id`. The answer is
// a Messages response with the same text rule (stop_reason "end_turn", or
// "max_tokens" when cut).
//
// Every model request is counted by path, key fingerprint and status, kept in
// request_log() (the last 20000), and with log_requests_path appended as one
// JSON line: time, path, key fingerprint (never the key), status (0 = dropped),
// ms, last user text (its first 1000 bytes), body SHA-256, and with
// log_request_bodies the body itself.
#pragma once

// The installed cpp-httplib is a compiled library: every translation unit must
// see the same CPPHTTPLIB_* macros it was built with (pkg-config --cflags
// cpp-httplib), and the mock needs the TLS classes.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#error "mock_server.hpp needs CPPHTTPLIB_OPENSSL_SUPPORT: compile with $(pkg-config --cflags cpp-httplib)"
#endif
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <dirent.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace requests_engine_mock {

// ---------------------------------------------------------------------------
// Test PKI
// ---------------------------------------------------------------------------

struct tls_files {
  std::string dir, ca_cert, server_cert, server_key;  // absolute file paths
};

namespace detail {

struct pkey_free {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct x509_ext_free {
  void operator()(X509_EXTENSION* p) const noexcept { X509_EXTENSION_free(p); }
};
struct bio_free {
  void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};
struct bn_free {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using x509_ext_ptr = std::unique_ptr<X509_EXTENSION, x509_ext_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

inline std::string openssl_errors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

[[noreturn]] inline void pki_fail(const std::string& what) {
  const std::string err = openssl_errors();
  throw std::runtime_error("requests_engine_mock::make_test_pki: " + what +
                           (err.empty() ? std::string() : " (" + err + ")"));
}

inline pkey_ptr make_ec_p256_key() {
  char curve[] = "P-256";  // read back as char* through the varargs
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  if (!key) pki_fail("cannot generate an EC P-256 key");
  return key;
}

inline void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  x509_ext_ptr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext) pki_fail(std::string("cannot build certificate extension ") + OBJ_nid2sn(nid) + "=" + value);
  if (X509_add_ext(cert, ext.get(), -1) != 1) pki_fail(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid));
}

// issuer == nullptr: self-signed CA certificate.
inline x509_ptr make_cert(EVP_PKEY* subject_key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key) {
  const bool is_ca = issuer == nullptr;
  x509_ptr cert(X509_new());
  if (!cert) pki_fail("X509_new failed");
  if (X509_set_version(cert.get(), 2) != 1) pki_fail("X509_set_version failed");

  bn_ptr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    pki_fail("cannot set a random serial number");

  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600L) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600L))
    pki_fail("cannot set the validity period");
  if (X509_set_pubkey(cert.get(), subject_key) != 1) pki_fail("X509_set_pubkey failed");

  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("requests_engine mock"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1,
                                 -1, 0) != 1)
    pki_fail("cannot set the subject name");
  if (X509_set_issuer_name(cert.get(), is_ca ? name : X509_get_subject_name(issuer)) != 1)
    pki_fail("cannot set the issuer name");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, is_ca ? cert.get() : issuer, cert.get(), nullptr, nullptr, 0);
  if (is_ca) {
    add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  } else {
    add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
    add_ext(cert.get(), &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  }
  if (X509_sign(cert.get(), is_ca ? subject_key : issuer_key, EVP_sha256()) <= 0)
    pki_fail(std::string("cannot sign the certificate for ") + common_name);
  return cert;
}

template <class WritePem>
std::string pem_string(WritePem&& write) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || !write(bio.get())) pki_fail("cannot encode PEM");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) pki_fail("cannot encode PEM");
  return std::string(data, static_cast<std::size_t>(len));
}

inline void write_file(const std::filesystem::path& path, const std::string& data, bool secret) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (secret) std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                             std::filesystem::perm_options::replace, ec);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) pki_fail("cannot write " + path.string());
  }
}

}  // namespace detail

// Generates (at run time, OpenSSL 3) a self-signed CA and a server certificate
// signed by it (EC P-256 keys, SHA-256), the latter with subjectAltName
// DNS:localhost, IP:127.0.0.1, IP:::1; both valid from now-1h to now+24h.
// Writes ca.pem, server.pem and server.key (mode 0600) into `dir` (created if
// missing) and returns their absolute paths. Throws std::runtime_error.
inline tls_files make_test_pki(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::runtime_error("requests_engine_mock::make_test_pki: cannot create directory '" + dir +
                             "': " + (ec ? ec.message() : std::string("not a directory")));
  const fs::path base = fs::absolute(fs::path(dir), ec);
  if (ec) throw std::runtime_error("requests_engine_mock::make_test_pki: bad directory '" + dir + "': " + ec.message());
  ERR_clear_error();

  detail::pkey_ptr ca_key = detail::make_ec_p256_key();
  detail::x509_ptr ca = detail::make_cert(ca_key.get(), "requests_engine mock test CA", nullptr, nullptr);
  detail::pkey_ptr srv_key = detail::make_ec_p256_key();
  detail::x509_ptr srv = detail::make_cert(srv_key.get(), "localhost", ca.get(), ca_key.get());

  const std::string ca_pem = detail::pem_string([&](BIO* b) { return PEM_write_bio_X509(b, ca.get()) == 1; });
  const std::string srv_pem = detail::pem_string([&](BIO* b) { return PEM_write_bio_X509(b, srv.get()) == 1; });
  const std::string key_pem = detail::pem_string(
      [&](BIO* b) { return PEM_write_bio_PrivateKey(b, srv_key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1; });

  tls_files files;
  files.dir = base.string();
  files.ca_cert = (base / "ca.pem").string();
  files.server_cert = (base / "server.pem").string();
  files.server_key = (base / "server.key").string();
  detail::write_file(files.ca_cert, ca_pem, false);
  detail::write_file(files.server_cert, srv_pem, false);
  detail::write_file(files.server_key, key_pem, true);
  return files;
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

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
  std::uint64_t seed = 0;
  int fail_429_retry_after_ms = 1000;  // sent as retry-after (whole seconds, rounded up) and retry-after-ms

  // One JSON line per model request is appended here (never the key: a fingerprint).
  std::string log_requests_path;
  // Each log line also holds the request body as received ("body": the parsed JSON, or the
  // text when it is not JSON), so that a test can see what a client put on the wire.
  bool log_request_bodies = false;
};

namespace detail {

// Exposes the listening socket of httplib::Server / httplib::SSLServer
// (svr_sock_ is protected).
template <class Base>
class listener final : public Base {
 public:
  using Base::Base;
  int listen_socket() const { return static_cast<int>(this->svr_sock_.load()); }
};

// Wraps httplib's ThreadPool; every enqueue is one accepted TCP connection.
class counting_task_queue final : public httplib::TaskQueue {
 public:
  counting_task_queue(std::size_t threads, std::atomic<std::size_t>& counter)
      : pool_(threads == 0 ? 1 : threads), counter_(counter) {}
  void enqueue(std::function<void()> fn) override {
    counter_.fetch_add(1, std::memory_order_relaxed);
    pool_.enqueue(std::move(fn));
  }
  void shutdown() override { pool_.shutdown(); }
  void on_idle() override { pool_.on_idle(); }

 private:
  httplib::ThreadPool pool_;
  std::atomic<std::size_t>& counter_;
};

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

// Text of a message "content": a string, or an array of {"type":"text","text":...}
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
      if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") continue;
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

inline std::string openai_error_body(const std::string& message, const std::string& type, const nlohmann::json& param,
                                     const nlohmann::json& code) {
  nlohmann::ordered_json err;
  err["message"] = message;
  err["type"] = type;
  err["param"] = param;
  err["code"] = code;
  nlohmann::ordered_json body;
  body["error"] = std::move(err);
  return body.dump();
}

inline void set_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

inline void set_openai_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                             const nlohmann::json& param, const nlohmann::json& code) {
  set_json(res, status, openai_error_body(message, type, param, code));
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

struct chat_request {
  std::string model;
  std::string last_user_text;
  std::size_t prompt_bytes = 0;
  std::int64_t n = 1;
  std::optional<std::int64_t> max_tokens;
};

// Validates an OpenAI chat completions body. On failure fills `error` and
// `param` (the offending property, or null) and returns false.
inline bool parse_chat_request(const nlohmann::json& body, chat_request& out, std::string& error,
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
  const auto model = body.find("model");
  if (model == body.end()) {
    error = "'model' is a required property";
    param = "model";
    return false;
  }
  if (!model->is_string()) {
    error = std::string("Invalid type for 'model': expected a string, but got ") + model->type_name() + " instead.";
    param = "model";
    return false;
  }
  const auto messages = body.find("messages");
  if (messages == body.end()) {
    error = "'messages' is a required property";
    param = "messages";
    return false;
  }
  if (!messages->is_array()) {
    error = std::string("Invalid type for 'messages': expected an array, but got ") + messages->type_name() +
            " instead.";
    param = "messages";
    return false;
  }
  if (messages->empty()) {
    error =
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array "
        "instead.";
    param = "messages";
    return false;
  }
  out = chat_request{};
  out.model = model->get<std::string>();
  std::size_t i = 0;
  for (const auto& m : *messages) {
    const auto role = m.is_object() ? m.find("role") : m.end();
    if (!m.is_object() || role == m.end() || !role->is_string()) {
      error = "Invalid type for 'messages[" + std::to_string(i) + "]': expected an object with a string 'role'.";
      param = "messages[" + std::to_string(i) + "]";
      return false;
    }
    const auto content = m.find("content");
    const std::string text = content == m.end() ? std::string() : content_text(*content);
    out.prompt_bytes += text.size();
    if (role->get<std::string>() == "user") out.last_user_text = text;
    ++i;
  }
  std::optional<std::int64_t> n;
  if (!optional_int_field(body, "n", 1, 128, n, error)) {
    param = "n";
    return false;
  }
  out.n = n.value_or(1);
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  if (!optional_int_field(body, "max_tokens", 1, INT32_MAX, max_tokens, error)) {
    param = "max_tokens";
    return false;
  }
  if (!optional_int_field(body, "max_completion_tokens", 1, INT32_MAX, max_completion_tokens, error)) {
    param = "max_completion_tokens";
    return false;
  }
  out.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  const auto stream = body.find("stream");
  if (stream != body.end() && stream->is_boolean() && stream->get<bool>()) {
    error = "Invalid 'stream': streaming responses are not supported by the requests_engine mock server.";
    param = "stream";
    return false;
  }
  return true;
}

inline std::string chat_completion_body(const chat_request& req) {
  using ojson = nlohmann::ordered_json;
  const std::string base = "Mock answer to: " + req.last_user_text;
  ojson choices = ojson::array();
  std::size_t completion_tokens = 0;
  for (std::int64_t i = 0; i < req.n; ++i) {
    std::string text = i == 0 ? base : base + " (sample " + std::to_string(i) + ")";
    std::string finish_reason = "stop";
    if (req.max_tokens && static_cast<std::size_t>(*req.max_tokens) < estimate_tokens(text.size())) {
      text = utf8_prefix(text, static_cast<std::size_t>(*req.max_tokens) * 4U);
      finish_reason = "length";
    }
    completion_tokens += estimate_tokens(text.size());
    ojson message;
    message["role"] = "assistant";
    message["content"] = std::move(text);
    ojson choice;
    choice["index"] = i;
    choice["message"] = std::move(message);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish_reason;
    choices.push_back(std::move(choice));
  }
  const std::size_t prompt_tokens = estimate_tokens(req.prompt_bytes);
  ojson usage;
  usage["prompt_tokens"] = prompt_tokens;
  usage["completion_tokens"] = completion_tokens;
  usage["total_tokens"] = prompt_tokens + completion_tokens;
  usage["prompt_tokens_details"] = ojson{{"cached_tokens", 0}};
  ojson body;
  body["id"] = "chatcmpl-" + random_hex(24);
  body["object"] = "chat.completion";
  body["created"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  body["model"] = req.model;
  body["choices"] = std::move(choices);
  body["usage"] = std::move(usage);
  body["system_fingerprint"] = "fp_mock";
  return body.dump();
}

// cpp-httplib 0.11.4 worker threads wait for the next request on an idle
// keep-alive connection for the full keep-alive timeout without looking at
// stop(); so stop() would block that long while any client keeps a connection
// open. This shuts down (not closes: the worker still owns the fd) every
// accepted socket whose local address is the listening address, which wakes
// the workers up at once. Linux only (/proc/self/fd); elsewhere a no-op.
inline std::uint16_t sockaddr_port(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

inline bool sockaddr_is_wildcard(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr == htonl(INADDR_ANY);
  if (a.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
    return std::memcmp(&in6, &in6addr_any, sizeof in6) == 0;
  }
  return false;
}

inline bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  if (a.ss_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, sizeof(in6_addr)) == 0;
  return false;
}

inline void shutdown_accepted_connections(const sockaddr_storage& listen_addr) {
#ifdef __linux__
  const std::uint16_t port = sockaddr_port(listen_addr);
  if (port == 0) return;
  const bool wildcard = sockaddr_is_wildcard(listen_addr);
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return;
  const int self_fd = dirfd(d);
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || v < 0 || v > INT32_MAX) continue;
    const int fd = static_cast<int>(v);
    if (fd == self_fd) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;  // not a socket
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    if (sockaddr_port(local) != port) continue;
    if (!wildcard && !same_address(local, listen_addr)) continue;
    sockaddr_storage peer{};
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;  // listener / unconnected
    ::shutdown(fd, SHUT_RDWR);
  }
  closedir(d);
#else
  (void)listen_addr;
#endif
}

// ---- provider emulation: Anthropic Messages, rate limits, faults, request log ----

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

inline std::string anthropic_error_body(const std::string& type, const std::string& message) {
  nlohmann::ordered_json err;
  err["type"] = type;
  err["message"] = message;
  nlohmann::ordered_json body;
  body["type"] = "error";
  body["error"] = std::move(err);
  return body.dump();
}

inline void set_anthropic_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  set_json(res, status, anthropic_error_body(type, message));
}

// Text of the last user message of a "messages" array (either API's shape), for the log.
inline std::string last_user_text(const nlohmann::json& body) {
  if (!body.is_object()) return std::string();
  const auto messages = body.find("messages");
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

struct messages_request {
  std::string model;
  std::string last_user_text;
  std::size_t prompt_bytes = 0;
  std::int64_t max_tokens = 0;
};

// Validates an Anthropic Messages body the way the API words its errors.
inline bool parse_messages_request(const nlohmann::json& body, messages_request& out, std::string& error) {
  if (body.is_discarded()) {
    error = "There was an issue with your request body: it is not valid JSON.";
    return false;
  }
  if (!body.is_object()) {
    error = std::string("Input should be a valid dictionary (got ") + body.type_name() + ")";
    return false;
  }
  out = messages_request{};
  const auto model = body.find("model");
  if (model == body.end()) {
    error = "model: Field required";
    return false;
  }
  if (!model->is_string()) {
    error = "model: Input should be a valid string";
    return false;
  }
  out.model = model->get<std::string>();
  std::optional<std::int64_t> max_tokens;
  if (body.find("max_tokens") == body.end()) {
    error = "max_tokens: Field required";
    return false;
  }
  if (!optional_int_field(body, "max_tokens", 1, INT32_MAX, max_tokens, error) || !max_tokens) {
    error = "max_tokens: Input should be an integer greater than or equal to 1";
    return false;
  }
  out.max_tokens = *max_tokens;
  const auto messages = body.find("messages");
  if (messages == body.end()) {
    error = "messages: Field required";
    return false;
  }
  if (!messages->is_array()) {
    error = "messages: Input should be a valid list";
    return false;
  }
  if (messages->empty()) {
    error = "messages: at least one message is required";
    return false;
  }
  std::size_t i = 0;
  for (const auto& m : *messages) {
    const std::string at = "messages." + std::to_string(i);
    if (!m.is_object()) {
      error = at + ": Input should be a valid dictionary";
      return false;
    }
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string() ||
        (role->get<std::string>() != "user" && role->get<std::string>() != "assistant")) {
      error = at + ".role: Input should be 'user' or 'assistant'";
      return false;
    }
    const auto content = m.find("content");
    if (content == m.end() || !(content->is_string() || content->is_array())) {
      error = at + ".content: Input should be a valid string or a list of content blocks";
      return false;
    }
    const std::string text = content_text(*content);
    out.prompt_bytes += text.size();
    if (role->get<std::string>() == "user") out.last_user_text = text;
    ++i;
  }
  const auto system = body.find("system");
  if (system != body.end() && !system->is_null()) {
    if (!system->is_string() && !system->is_array()) {
      error = "system: Input should be a valid string or a list of text blocks";
      return false;
    }
    out.prompt_bytes += content_text(*system).size();
  }
  const auto stream = body.find("stream");
  if (stream != body.end() && stream->is_boolean() && stream->get<bool>()) {
    error = "stream: streaming responses are not supported by the requests_engine mock server";
    return false;
  }
  return true;
}

// The same answer rule as chat completions: "Mock answer to: <last user text>", cut to
// max_tokens*4 bytes (stop_reason "max_tokens") when the estimate does not fit.
inline std::string messages_body(const messages_request& req) {
  using ojson = nlohmann::ordered_json;
  std::string text = "Mock answer to: " + req.last_user_text;
  std::string stop_reason = "end_turn";
  if (static_cast<std::size_t>(req.max_tokens) < estimate_tokens(text.size())) {
    text = utf8_prefix(text, static_cast<std::size_t>(req.max_tokens) * 4U);
    stop_reason = "max_tokens";
  }
  ojson block;
  block["type"] = "text";
  block["text"] = text;
  ojson usage;
  usage["input_tokens"] = estimate_tokens(req.prompt_bytes);
  usage["cache_creation_input_tokens"] = 0;
  usage["cache_read_input_tokens"] = 0;
  usage["output_tokens"] = estimate_tokens(text.size());
  ojson body;
  body["id"] = "msg_" + random_hex(24);
  body["type"] = "message";
  body["role"] = "assistant";
  body["model"] = req.model;
  body["content"] = ojson::array({std::move(block)});
  body["stop_reason"] = stop_reason;
  body["stop_sequence"] = nullptr;
  body["usage"] = std::move(usage);
  return body.dump();
}

enum limit_kind : std::size_t { limit_requests, limit_tokens, limit_input_tokens, limit_output_tokens, limit_kinds };
using limit_amounts = std::array<double, limit_kinds>;

struct limit_view {
  double limit = 0;  // 0: this limit is not configured
  std::int64_t remaining = 0;
  std::chrono::milliseconds reset{0};  // until the bucket is full again
};

struct limit_decision {
  bool allowed = true;
  bool too_large = false;                  // the request alone is over a limit: it can never pass
  limit_kind refused_by = limit_requests;  // when !allowed
  std::chrono::milliseconds retry_after{0};
  std::array<limit_view, limit_kinds> views{};
};

// Token buckets per API key. A request is let through only when every bucket has room for
// it, and then takes its cost from all of them: a refusal costs nothing, as at the providers.
class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  void set_limits(const limit_amounts& per_minute) {
    std::lock_guard<std::mutex> lk(m_);
    limits_ = per_minute;
    keys_.clear();
    enabled_.store(std::any_of(limits_.begin(), limits_.end(), [](double v) { return v > 0; }));
  }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // consume = false only looks (for the headers of an answer that is not served).
  limit_decision check(const std::string& key, const limit_amounts& cost, bool consume, clock::time_point now) {
    limit_decision d;
    std::lock_guard<std::mutex> lk(m_);
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      std::array<bucket, limit_kinds> fresh{};
      for (std::size_t k = 0; k < limit_kinds; ++k) fresh[k] = bucket{limits_[k], now};
      it = keys_.emplace(key, fresh).first;
    }
    auto& buckets = it->second;
    for (std::size_t k = 0; k < limit_kinds; ++k) {
      const double limit = limits_[k];
      if (limit <= 0) continue;
      bucket& b = buckets[k];
      const double per_second = limit / 60.0;
      const double elapsed = std::chrono::duration<double>(now - b.last).count();
      if (elapsed > 0) {
        b.level = std::min(limit, b.level + elapsed * per_second);
        b.last = now;
      }
      if (cost[k] > limit) {
        d.allowed = false;
        d.too_large = true;
        d.refused_by = static_cast<limit_kind>(k);
        d.retry_after = std::max(d.retry_after, std::chrono::milliseconds(60000));
      } else if (b.level < cost[k]) {
        const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(
            std::ceil((cost[k] - b.level) / per_second * 1000.0)));
        if (d.allowed || wait > d.retry_after) d.refused_by = static_cast<limit_kind>(k);
        d.allowed = false;
        d.retry_after = std::max(d.retry_after, wait);
      }
    }
    for (std::size_t k = 0; k < limit_kinds; ++k) {
      const double limit = limits_[k];
      if (limit <= 0) continue;
      bucket& b = buckets[k];
      if (d.allowed && consume) b.level -= cost[k];
      limit_view& v = d.views[k];
      v.limit = limit;
      v.remaining = static_cast<std::int64_t>(std::floor(std::max(0.0, b.level)));
      v.reset = std::chrono::milliseconds(
          static_cast<std::int64_t>(std::ceil((limit - b.level) / (limit / 60.0) * 1000.0)));
    }
    return d;
  }

 private:
  struct bucket {
    double level = 0;
    clock::time_point last{};
  };
  std::mutex m_;
  limit_amounts limits_{};
  std::unordered_map<std::string, std::array<bucket, limit_kinds>> keys_;  // by the key itself: never leaves memory
  std::atomic<bool> enabled_{false};
};

// The accepted socket that carries `req`. A TLS connection names it; for plain HTTP it is the
// socket whose local and peer ports are the request's (unique while the handler runs, since
// this thread owns that connection). Linux only (/proc/self/fd) for plain HTTP.
inline int request_socket(const httplib::Request& req) {
  if (req.ssl != nullptr) return SSL_get_fd(req.ssl);
#ifdef __linux__
  if (req.local_port <= 0 || req.remote_port <= 0) return -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  const int self_fd = dirfd(d);
  int found = -1;
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || v < 0 || v > INT32_MAX) continue;
    const int fd = static_cast<int>(v);
    if (fd == self_fd) continue;
    sockaddr_storage local{}, peer{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    if (sockaddr_port(local) != req.local_port) continue;
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    if (sockaddr_port(peer) != req.remote_port) continue;
    char host[INET6_ADDRSTRLEN] = {};
    const void* addr = peer.ss_family == AF_INET
                           ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in&>(peer).sin_addr)
                           : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr);
    if (inet_ntop(peer.ss_family, addr, host, sizeof host) == nullptr || req.remote_addr != host) continue;
    found = fd;
    break;
  }
  closedir(d);
  return found;
#else
  return -1;
#endif
}

// Ends the connection before a byte of the answer is written: the client sees the peer close
// (and, with SO_LINGER 0, a reset once httplib closes the socket). httplib's own write of the
// response then fails, which it treats as a broken connection. Shut down, not closed: httplib
// still owns the descriptor.
inline bool drop_connection(const httplib::Request& req) {
  const int fd = request_socket(req);
  if (fd < 0) return false;
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, static_cast<socklen_t>(sizeof lg));
  return ::shutdown(fd, SHUT_RDWR) == 0;
}


}  // namespace detail

class server {
 public:
  using chat_hook = std::function<bool(const httplib::Request&, httplib::Response&)>;

  // Throws std::invalid_argument for a fault rate outside [0, 1], rates that add up to more
  // than 1, or a negative rate limit.
  explicit server(server_options opts) : opts_(std::move(opts)) {
    latency_ms_ = std::max(0, opts_.latency_ms);
    latency_jitter_ms_ = std::max(0, opts_.latency_jitter_ms);
    set_rate_limits(opts_.rpm, opts_.tpm, opts_.input_tpm, opts_.output_tpm);
    set_fault_rates(opts_.fail_500, opts_.fail_429, opts_.fail_reset, opts_.fail_overload);
  }
  ~server() {
    try {
      stop();
    } catch (...) {
    }
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds, starts listening on a background thread and returns once the
  // server accepts connections. Throws std::runtime_error if it cannot bind
  // or cannot load the TLS certificate/key. No-op if already running.
  void start() {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    if (svr_) return;
    const bool use_tls = !opts_.cert_path.empty() && !opts_.key_path.empty();
    if (use_tls != (!opts_.cert_path.empty() || !opts_.key_path.empty()))
      throw std::runtime_error("requests_engine_mock::server: cert_path and key_path must be set together");

    if (!opts_.log_requests_path.empty()) {
      std::lock_guard<std::mutex> lk(log_mutex_);
      log_file_.open(opts_.log_requests_path, std::ios::out | std::ios::app);
      if (!log_file_)
        throw std::runtime_error("requests_engine_mock::server: cannot open the request log '" +
                                 opts_.log_requests_path + "'");
      log_file_is_open_.store(true);
    }

    std::unique_ptr<httplib::Server> svr;
    std::function<int()> listen_socket;
    if (use_tls) {
      auto s = std::make_unique<detail::listener<httplib::SSLServer>>(opts_.cert_path.c_str(), opts_.key_path.c_str());
      if (!s->is_valid())
        throw std::runtime_error("requests_engine_mock::server: cannot load TLS certificate '" + opts_.cert_path +
                                 "' / key '" + opts_.key_path + "'");
      auto* raw = s.get();
      listen_socket = [raw] { return raw->listen_socket(); };
      svr = std::move(s);
    } else {
      auto s = std::make_unique<detail::listener<httplib::Server>>();
      auto* raw = s.get();
      listen_socket = [raw] { return raw->listen_socket(); };
      svr = std::move(s);
    }
    configure(*svr);

    int bound = -1;
    if (opts_.port == 0) {
      bound = svr->bind_to_any_port(opts_.host);
    } else if (svr->bind_to_port(opts_.host, opts_.port)) {
      bound = opts_.port;
    }
    if (bound <= 0)
      throw std::runtime_error("requests_engine_mock::server: cannot bind " + opts_.host + ":" +
                               std::to_string(opts_.port) + " (address in use or invalid host?)");

    // httplib 0.11.4 listens with a backlog of 5 (compiled into the library):
    // a burst of concurrent connects could overflow it and stall on SYN
    // retransmits. listen() again on a listening socket raises the backlog.
    const int fd = listen_socket();
    if (fd >= 0) {
      ::listen(fd, SOMAXCONN);
      socklen_t len = sizeof listen_addr_;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&listen_addr_), &len) != 0) listen_addr_ = sockaddr_storage{};
    }

    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      stopping_ = false;
    }
    port_.store(bound);
    listen_done_.store(false);
    httplib::Server* raw = svr.get();
    svr_ = std::move(svr);
    thread_ = std::thread([this, raw] {
      // The worker pool is created on this thread and inherits its mask. httplib writes
      // without MSG_NOSIGNAL: a client gone away (or a connection dropped on purpose) must
      // fail the write with EPIPE, not kill the process with SIGPIPE.
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
      raw->listen_after_bind();
      listen_done_.store(true);
    });
    // listen_after_bind() sets is_running() first thing (the socket is
    // already listening, so connects queue up from here on); Server::stop()
    // does nothing before that, hence the wait.
    while (!raw->is_running()) {
      if (listen_done_.load()) {  // listen_after_bind() returned at once
        thread_.join();
        svr_.reset();
        port_.store(0);
        throw std::runtime_error("requests_engine_mock::server: listening on " + opts_.host + ":" +
                                 std::to_string(bound) + " failed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Stops accepting, closes open connections (so idle keep-alive clients do
  // not delay shutdown), interrupts latency sleeps and joins all threads.
  void stop() {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    if (!svr_) return;
    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      stopping_ = true;
    }
    sleep_cv_.notify_all();
    svr_->stop();
    while (!listen_done_.load()) {
      detail::shutdown_accepted_connections(listen_addr_);
      for (int i = 0; i < 50 && !listen_done_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    thread_.join();
    svr_.reset();
    std::lock_guard<std::mutex> lk(log_mutex_);
    log_file_is_open_.store(false);
    if (log_file_.is_open()) log_file_.close();
  }

  bool running() const {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    return svr_ != nullptr && svr_->is_running();
  }
  int port() const { return port_.load(); }
  bool tls() const { return !opts_.cert_path.empty() && !opts_.key_path.empty(); }
  const server_options& options() const { return opts_; }

  // "http://127.0.0.1:PORT" or "https://...". A wildcard host (0.0.0.0, ::, "")
  // is reported as the loopback address; IPv6 literals get brackets.
  std::string origin() const {
    std::string host = opts_.host;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    return std::string(tls() ? "https://" : "http://") + host + ":" + std::to_string(port());
  }
  std::string base_url() const { return origin() + "/v1"; }

  // Statistics (thread-safe). requests() counts model requests: chat completions and messages.
  std::size_t requests() const { return requests_.load(); }
  std::size_t connections() const { return connections_.load(); }
  std::size_t max_in_flight() const { return max_in_flight_.load(); }
  std::size_t in_flight() const { return in_flight_.load(); }
  void reset_stats() {
    requests_.store(0);
    connections_.store(0);
    max_in_flight_.store(in_flight_.load());
    {
      std::lock_guard<std::mutex> lk(records_mutex_);
      bodies_.clear();
      headers_.clear();
    }
    std::lock_guard<std::mutex> lk(stats_mutex_);
    by_path_.clear();
    by_key_.clear();
    by_status_.clear();
    log_.clear();
  }

  // Test hook: if set and it returns true, it has produced the response
  // itself and the default handling is skipped. Called after request counting
  // and recording, before auth, for both model routes (req.path tells them
  // apart). Assign before start(), or use set_on_chat() while the server is running.
  chat_hook on_chat;
  void set_on_chat(chat_hook hook) {
    std::lock_guard<std::mutex> lk(hook_mutex_);
    on_chat = std::move(hook);
  }

  // Changes the simulated latency at run time.
  void set_latency(int latency_ms, int latency_jitter_ms = 0) {
    latency_ms_.store(std::max(0, latency_ms));
    latency_jitter_ms_.store(std::max(0, latency_jitter_ms));
  }

  // The last (at most 1000) chat request bodies (parsed JSON; null if the
  // body was not JSON) and headers, oldest first. The two vectors line up.
  std::vector<nlohmann::json> received_bodies() const {
    std::lock_guard<std::mutex> lk(records_mutex_);
    return std::vector<nlohmann::json>(bodies_.begin(), bodies_.end());
  }
  std::vector<httplib::Headers> received_headers() const {
    std::lock_guard<std::mutex> lk(records_mutex_);
    return std::vector<httplib::Headers>(headers_.begin(), headers_.end());
  }

  static constexpr std::size_t max_records = 1000;

  // ---- provider emulation ----

  /// One model request as the server saw it (the last max_log_records, in the order they finished).
  struct request_record {
    std::chrono::steady_clock::time_point arrival;
    std::chrono::system_clock::time_point arrival_wall;
    std::chrono::steady_clock::time_point finished;
    std::string path;
    std::string key_fingerprint;  // "" when the request carried no key
    int status = 0;               // 0: the connection was dropped without an answer
    std::string user_text;        // the last user message (its first max_logged_text bytes)
    std::string body_sha256;
    std::string body;             // only with server_options::log_request_bodies
  };
  // Bounded so that a long benchmark keeps its memory: at most about 20 MB of records.
  static constexpr std::size_t max_log_records = 20000;
  static constexpr std::size_t max_logged_text = 1000;

  std::vector<request_record> request_log() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return std::vector<request_record>(log_.begin(), log_.end());
  }
  /// Arrival times of the logged requests, in order of arrival.
  std::vector<std::chrono::steady_clock::time_point> arrival_times() const {
    std::vector<std::chrono::steady_clock::time_point> out;
    {
      std::lock_guard<std::mutex> lk(stats_mutex_);
      for (const auto& r : log_) out.push_back(r.arrival);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::size_t requests_for_path(const std::string& path) const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_path_.find(path);
    return it == by_path_.end() ? 0 : it->second;
  }
  /// Requests that carried this key ("" = no key).
  std::size_t requests_for_key(const std::string& api_key) const {
    const std::string fp = detail::key_fingerprint(api_key);
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_key_.find(fp);
    return it == by_key_.end() ? 0 : it->second;
  }
  /// Request counts by key fingerprint (see key_fingerprint()).
  std::map<std::string, std::size_t> requests_by_key() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return by_key_;
  }
  /// Answers with this status; 0 counts connections dropped without an answer.
  std::size_t responses_with_status(int status) const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_status_.find(status);
    return it == by_status_.end() ? 0 : it->second;
  }
  /// What the log and the statistics show instead of a key.
  static std::string key_fingerprint(const std::string& api_key) { return detail::key_fingerprint(api_key); }

  /// Per-minute limits per key (0 = none); resets every bucket to full.
  void set_rate_limits(double rpm, double tpm, double input_tpm = 0, double output_tpm = 0) {
    for (double v : {rpm, tpm, input_tpm, output_tpm})
      if (!(v >= 0) || !std::isfinite(v))
        throw std::invalid_argument("requests_engine_mock::server: a rate limit must be a finite number >= 0");
    limiter_.set_limits(detail::limit_amounts{rpm, tpm, input_tpm, output_tpm});
  }

  /// Fractions of requests failed on purpose (see server_options); the sequence restarts.
  void set_fault_rates(double fail_500, double fail_429, double fail_reset, double fail_overload = 0) {
    double sum = 0;
    for (double v : {fail_500, fail_429, fail_reset, fail_overload}) {
      if (!(v >= 0 && v <= 1))
        throw std::invalid_argument("requests_engine_mock::server: a failure rate must be in [0, 1]");
      sum += v;
    }
    if (sum > 1 + 1e-9)
      throw std::invalid_argument("requests_engine_mock::server: the failure rates add up to more than 1");
    std::lock_guard<std::mutex> lk(fault_mutex_);
    fault_rates_ = {fail_500, fail_429, fail_reset, fail_overload};
    fault_seq_ = 0;
    faults_on_.store(sum > 0);
  }

  /// The next `count` model requests get 429 with `retry-after: <retry_after>`.
  void pause_requests(std::size_t count, std::chrono::seconds retry_after) {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_count_ = count;
    pause_count_retry_after_ = retry_after;
    pause_on_.store(pause_count_ > 0 || pause_until_ > std::chrono::steady_clock::now());
  }
  /// Every model request in the next `window` gets 429; retry-after says the time left in the
  /// window (rounded up to whole seconds; retry-after-ms on the OpenAI route is exact).
  void pause_for(std::chrono::milliseconds window) {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_until_ = std::chrono::steady_clock::now() + window;
    pause_on_.store(true);
  }
  void end_pause() {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_count_ = 0;
    pause_until_ = {};
    pause_on_.store(false);
  }

 private:
  void configure(httplib::Server& svr) {
    svr.set_keep_alive_max_count(100000);
    svr.set_keep_alive_timeout(std::max(1, opts_.keep_alive_timeout_sec));
    svr.set_read_timeout(std::max(1, opts_.read_timeout_sec), 0);
    svr.set_write_timeout(std::max(1, opts_.write_timeout_sec), 0);
    svr.set_tcp_nodelay(true);
    // httplib 0.11.4's default socket options set SO_REUSEPORT, which lets a
    // second server bind a port that is already in use (the kernel then
    // load-balances between them) instead of failing. SO_REUSEADDR only.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, static_cast<socklen_t>(sizeof yes));
    });
    const std::size_t threads = opts_.threads == 0 ? 1 : opts_.threads;
    std::atomic<std::size_t>* counter = &connections_;
    svr.new_task_queue = [threads, counter]() -> httplib::TaskQueue* {
      return new detail::counting_task_queue(threads, *counter);
    };

    // Ollama's native chat API (no key, no limits, no faults): what examples/custom_provider.cpp talks to.
    svr.Post("/api/chat", [](const httplib::Request& req, httplib::Response& res) {
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_object() || !body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
        res.status = 400;
        res.set_content(R"({"error":"messages is required"})", "application/json");
        return;
      }
      const std::string last = body["messages"].back().value("content", std::string());
      const nlohmann::json answer = {{"model", body.value("model", std::string())},
                                     {"created_at", "2026-01-01T00:00:00Z"},
                                     {"message", {{"role", "assistant"}, {"content", "Mock answer to: " + last}}},
                                     {"done", true},
                                     {"done_reason", "stop"},
                                     {"prompt_eval_count", static_cast<std::int64_t>(req.body.size() / 4)},
                                     {"eval_count", 8}};
      res.set_content(answer.dump(), "application/json");
    });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle_model_request(api::openai, req, res);
    });
    svr.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
      handle_model_request(api::anthropic, req, res);
    });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    add_google_aws_routes(svr);
    add_batch_routes(svr);

    // Called by httplib for EVERY response with status >= 400, including the
    // ones our handlers produced: only fill in empty bodies (unknown routes).
    // (Explicit type: a lambda is ambiguous between the two 0.11.4 overloads.)
    svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                  httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const std::string msg = res.status == 404 ? "Invalid URL (" + req.method + " " + req.path + ")"
                                                : "HTTP error " + std::to_string(res.status);
      detail::set_openai_error(res, res.status, msg, "invalid_request_error", nullptr, nullptr);
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      detail::set_openai_error(res, 500, "The mock server had an error while processing your request: " + what,
                               "server_error", nullptr, nullptr);
    });
  }

  struct in_flight_guard {
    explicit in_flight_guard(server& s) : s_(s) {
      const std::size_t now = s_.in_flight_.fetch_add(1) + 1;
      std::size_t prev = s_.max_in_flight_.load();
      while (prev < now && !s_.max_in_flight_.compare_exchange_weak(prev, now)) {
      }
    }
    ~in_flight_guard() { s_.in_flight_.fetch_sub(1); }
    in_flight_guard(const in_flight_guard&) = delete;
    in_flight_guard& operator=(const in_flight_guard&) = delete;
    server& s_;
  };

  void record(const nlohmann::json& body, const httplib::Headers& headers) {
    std::lock_guard<std::mutex> lk(records_mutex_);
    bodies_.push_back(body.is_discarded() ? nlohmann::json(nullptr) : body);
    headers_.push_back(headers);
    while (bodies_.size() > max_records) bodies_.pop_front();
    while (headers_.size() > max_records) headers_.pop_front();
  }

  chat_hook current_hook() const {
    std::lock_guard<std::mutex> lk(hook_mutex_);
    return on_chat;
  }

  enum class api { openai, anthropic };
  enum class key_verdict { ok, missing, wrong, invalid, out_of_credit };
  enum class fault { none, reset, status_500, status_429, overload };

  static bool key_in(const std::vector<std::string>& keys, const std::string& key) {
    bool found = false;
    for (const auto& k : keys) found = detail::constant_time_equal(key, k) || found;
    return found;
  }

  // OpenAI: "Authorization: Bearer <key>"; Anthropic: "x-api-key". nullopt: no key sent.
  static std::optional<std::string> presented_key(api which, const httplib::Request& req) {
    if (which == api::anthropic) {
      if (!req.has_header("x-api-key")) return std::nullopt;
      return req.get_header_value("x-api-key");
    }
    if (!req.has_header("Authorization")) return std::nullopt;
    const std::string value = req.get_header_value("Authorization");
    static const std::string scheme = "bearer ";
    if (value.size() < scheme.size()) return std::string();
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i]) return std::string();
    std::size_t start = scheme.size();
    while (start < value.size() && value[start] == ' ') ++start;
    return value.substr(start);
  }

  key_verdict check_key(const std::optional<std::string>& key) const {
    if (key && key_in(opts_.invalid_api_keys, *key)) return key_verdict::invalid;
    if (key && key_in(opts_.quota_exhausted_api_keys, *key)) return key_verdict::out_of_credit;
    if (opts_.api_key.empty() && opts_.extra_api_keys.empty()) return key_verdict::ok;
    if (!key) return key_verdict::missing;
    if (detail::constant_time_equal(*key, opts_.api_key) && !opts_.api_key.empty()) return key_verdict::ok;
    if (key_in(opts_.extra_api_keys, *key)) return key_verdict::ok;
    return key_verdict::wrong;
  }

  void simulate_latency() {
    const int base = latency_ms_.load();
    const int jitter = latency_jitter_ms_.load();
    int ms = base;
    if (jitter > 0) ms += std::uniform_int_distribution<int>(0, jitter)(detail::rng());
    if (ms <= 0) return;
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    sleep_cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

  // The retry-after of a forced pause, or nullopt when there is none.
  std::optional<std::chrono::milliseconds> take_pause(std::chrono::steady_clock::time_point now) {
    if (!pause_on_.load()) return std::nullopt;
    std::lock_guard<std::mutex> lk(pause_mutex_);
    if (pause_count_ > 0) {
      --pause_count_;
      return std::chrono::duration_cast<std::chrono::milliseconds>(pause_count_retry_after_);
    }
    if (now < pause_until_)
      return std::max(std::chrono::milliseconds(1),
                      std::chrono::ceil<std::chrono::milliseconds>(pause_until_ - now));
    pause_on_.store(false);
    return std::nullopt;
  }

  fault draw_fault() {
    if (!faults_on_.load()) return fault::none;
    std::lock_guard<std::mutex> lk(fault_mutex_);
    const double u = detail::seeded_uniform(opts_.seed, fault_seq_++);
    double edge = fault_rates_[2];
    if (u < edge) return fault::reset;
    if (u < (edge += fault_rates_[0])) return fault::status_500;
    if (u < (edge += fault_rates_[1])) return fault::status_429;
    if (u < (edge += fault_rates_[3])) return fault::overload;
    return fault::none;
  }

  static void set_retry_after(api which, httplib::Response& res, std::chrono::milliseconds wait) {
    res.set_header("retry-after", std::to_string(detail::ceil_seconds(wait)));
    if (which == api::openai) res.set_header("retry-after-ms", std::to_string(std::max<std::int64_t>(1, wait.count())));
  }

  // x-ratelimit-* (OpenAI) or anthropic-ratelimit-* (Anthropic), for each configured limit.
  static void set_limit_headers(api which, httplib::Response& res, const detail::limit_decision& d) {
    static const char* const openai_names[] = {"requests", "tokens", nullptr, nullptr};
    static const char* const anthropic_names[] = {"requests", "tokens", "input-tokens", "output-tokens"};
    const auto wall = std::chrono::system_clock::now();
    for (std::size_t k = 0; k < detail::limit_kinds; ++k) {
      const detail::limit_view& v = d.views[k];
      if (v.limit <= 0) continue;
      const auto limit = std::to_string(static_cast<std::int64_t>(v.limit));
      if (which == api::openai) {
        if (openai_names[k] == nullptr) continue;
        const std::string n = openai_names[k];
        res.set_header("x-ratelimit-limit-" + n, limit);
        res.set_header("x-ratelimit-remaining-" + n, std::to_string(v.remaining));
        res.set_header("x-ratelimit-reset-" + n, detail::go_duration(v.reset));
      } else {
        const std::string n = std::string("anthropic-ratelimit-") + anthropic_names[k];
        res.set_header(n + "-limit", limit);
        res.set_header(n + "-remaining", std::to_string(v.remaining));
        // Rounded up: the bucket is surely full again at that second.
        res.set_header(n + "-reset", detail::rfc3339_utc(wall + std::chrono::ceil<std::chrono::seconds>(v.reset), false));
      }
    }
  }

  // The model route's answers in the provider's own error shapes.
  static void rate_limit_error(api which, httplib::Response& res, const std::string& message) {
    if (which == api::openai)
      detail::set_openai_error(res, 429, message, "requests", nullptr, "rate_limit_exceeded");
    else
      detail::set_anthropic_error(res, 429, "rate_limit_error", message);
  }

  // Counts, logs and records one model request when its handler is done, whatever the path out.
  struct request_scope {
    request_scope(server& s, const httplib::Request& req, const httplib::Response& res, std::string key_fp,
                  const nlohmann::json& body)
        : s_(s), res_(res) {
      rec_.arrival = std::chrono::steady_clock::now();
      rec_.arrival_wall = std::chrono::system_clock::now();
      rec_.path = req.path;
      rec_.key_fingerprint = std::move(key_fp);
      rec_.user_text = detail::utf8_prefix(detail::last_user_text(body), max_logged_text);
      rec_.body_sha256 = detail::sha256_hex(req.body);
      if (s.opts_.log_request_bodies && s.log_file_is_open_.load()) rec_.body = req.body;
      std::lock_guard<std::mutex> lk(s_.stats_mutex_);
      ++s_.by_path_[rec_.path];
      ++s_.by_key_[rec_.key_fingerprint];
    }
    ~request_scope() {
      try {
        rec_.status = dropped ? 0 : res_.status;
        rec_.finished = std::chrono::steady_clock::now();
        s_.finish(std::move(rec_));
      } catch (...) {
      }
    }
    request_scope(const request_scope&) = delete;
    request_scope& operator=(const request_scope&) = delete;
    bool dropped = false;

   private:
    server& s_;
    const httplib::Response& res_;
    request_record rec_;
  };

  void finish(request_record rec) {
    if (log_file_is_open_.load()) {
      nlohmann::ordered_json line;
      line["time"] = detail::rfc3339_utc(rec.arrival_wall, true);
      line["path"] = rec.path;
      line["key"] = rec.key_fingerprint.empty() ? nlohmann::ordered_json(nullptr)
                                                : nlohmann::ordered_json(rec.key_fingerprint);
      line["status"] = rec.status;
      line["ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(rec.finished - rec.arrival).count();
      line["user"] = rec.user_text;
      line["body_sha256"] = rec.body_sha256;
      if (opts_.log_request_bodies) {
        nlohmann::ordered_json body = nlohmann::ordered_json::parse(rec.body, nullptr, false);
        line["body"] = body.is_discarded() ? nlohmann::ordered_json(rec.body) : std::move(body);
        std::string().swap(rec.body);  // for the file only: request_log() stays small
      }
      // Replaced, not thrown: a log line must never turn into a 500.
      const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      std::lock_guard<std::mutex> lk(log_mutex_);
      if (log_file_.is_open()) {
        log_file_ << text;
        log_file_.flush();  // a reader (or a kill) sees every finished request
      }
    }
    std::lock_guard<std::mutex> lk(stats_mutex_);
    ++by_status_[rec.status];
    log_.push_back(std::move(rec));
    while (log_.size() > max_log_records) log_.pop_front();
  }

  void handle_model_request(api which, const httplib::Request& req, httplib::Response& res) {
    requests_.fetch_add(1);
    in_flight_guard guard(*this);
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    record(body, req.headers);
    const std::optional<std::string> key = presented_key(which, req);
    request_scope scope(*this, req, res, detail::key_fingerprint(key.value_or(std::string())), body);

    const char* id_header = which == api::openai ? "x-request-id" : "request-id";
    const std::string request_id = "req_" + detail::random_hex(24);
    if (const chat_hook hook = current_hook()) {
      if (hook(req, res)) {
        if (!res.has_header(id_header)) res.set_header(id_header, request_id);
        return;
      }
    }
    res.set_header(id_header, request_id);

    // Auth, then validation, then the rate-limit and fault machinery, then the answer.
    detail::limit_amounts cost{};
    const key_verdict verdict = check_key(key);
    if (which == api::openai) {
      switch (verdict) {
        case key_verdict::ok:
          break;
        case key_verdict::out_of_credit:
          detail::set_openai_error(res, 429,
                                   "You exceeded your current quota, please check your plan and billing details.",
                                   "insufficient_quota", nullptr, "insufficient_quota");
          return;
        default:
          detail::set_openai_error(res, 401, "Incorrect API key provided.", "invalid_request_error", nullptr,
                                   "invalid_api_key");
          return;
      }
      detail::chat_request chat;
      std::string error;
      nlohmann::json param;
      if (!detail::parse_chat_request(body, chat, error, param)) {
        detail::set_openai_error(res, 400, error, "invalid_request_error", param, nullptr);
        return;
      }
      const double in = static_cast<double>(detail::estimate_tokens(chat.prompt_bytes));
      const double out = static_cast<double>(chat.max_tokens.value_or(0));
      cost = {1, in + out, in, out};
      if (!serve_or_refuse(which, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope)) return;
      simulate_latency();
      detail::set_json(res, 200, detail::chat_completion_body(chat));
      return;
    }

    switch (verdict) {
      case key_verdict::ok:
        break;
      case key_verdict::missing:
        detail::set_anthropic_error(res, 401, "authentication_error", "x-api-key header is required");
        return;
      case key_verdict::out_of_credit:
        detail::set_anthropic_error(res, 400, "invalid_request_error",
                                    "Your credit balance is too low to access the Anthropic API. Please go to Plans "
                                    "& Billing to upgrade or purchase credits.");
        return;
      default:
        detail::set_anthropic_error(res, 401, "authentication_error", "invalid x-api-key");
        return;
    }
    if (!req.has_header("anthropic-version")) {
      detail::set_anthropic_error(res, 400, "invalid_request_error", "anthropic-version: header is required");
      return;
    }
    detail::messages_request msg;
    std::string error;
    if (!detail::parse_messages_request(body, msg, error)) {
      detail::set_anthropic_error(res, 400, "invalid_request_error", error);
      return;
    }
    const double in = static_cast<double>(detail::estimate_tokens(msg.prompt_bytes));
    const double out = static_cast<double>(msg.max_tokens);
    cost = {1, in + out, in, out};
    if (!serve_or_refuse(which, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope)) return;
    simulate_latency();
    detail::set_json(res, 200, detail::messages_body(msg));
  }

  // A forced pause, an injected fault or the rate limit may answer instead of the model:
  // `limit_key` names the buckets (each route has its own, as two providers would).
  // then this has written that answer and returns false. Otherwise the request has taken its
  // cost from the limits, the limit headers are set, and the caller answers.
  bool serve_or_refuse(api which, const httplib::Request& req, httplib::Response& res, const std::string& limit_key,
                       const detail::limit_amounts& cost, request_scope& scope) {
    const auto now = std::chrono::steady_clock::now();
    const bool limited = limiter_.enabled();
    if (const auto pause = take_pause(now)) {
      if (limited) set_limit_headers(which, res, limiter_.check(limit_key, cost, false, now));
      rate_limit_error(which, res, "Rate limit reached: the server is pausing all requests. Please try again in " +
                                       detail::go_duration(*pause) + ".");
      set_retry_after(which, res, *pause);
      return false;
    }
    switch (draw_fault()) {
      case fault::none:
        break;
      case fault::reset:
        if (detail::drop_connection(req)) {
          scope.dropped = true;
          res.status = 200;
          res.set_content("dropped", "text/plain");  // never reaches the client: its socket is shut down
          return false;
        }
        // No descriptor to shut down: headers and half a body, then the connection ends.
        scope.dropped = true;
        res.status = 200;
        res.set_content_provider(4096, "application/json", [](std::size_t, std::size_t, httplib::DataSink& sink) {
          static const char part[] = "{\"id\":\"cut-off";
          sink.write(part, sizeof part - 1);
          return false;
        });
        return false;
      case fault::status_500:
        if (which == api::openai)
          detail::set_openai_error(res, 500, "The server had an error while processing your request. Sorry about that!",
                                   "server_error", nullptr, nullptr);
        else
          detail::set_anthropic_error(res, 500, "api_error", "Internal server error");
        return false;
      case fault::status_429: {
        const std::chrono::milliseconds wait(std::max(1, opts_.fail_429_retry_after_ms));
        if (limited) set_limit_headers(which, res, limiter_.check(limit_key, cost, false, now));
        rate_limit_error(which, res, "Rate limit reached (injected by the mock server). Please try again in " +
                                         detail::go_duration(wait) + ".");
        set_retry_after(which, res, wait);
        return false;
      }
      case fault::overload:
        if (which == api::openai)
          detail::set_openai_error(res, 503, "The engine is currently overloaded, please try again later",
                                   "server_error", nullptr, nullptr);
        else
          detail::set_anthropic_error(res, 529, "overloaded_error", "Overloaded");
        return false;
    }
    if (!limited) return true;
    const detail::limit_decision d = limiter_.check(limit_key, cost, true, now);
    set_limit_headers(which, res, d);
    if (d.allowed) return true;
    static const char* const what[] = {"requests", "tokens", "input tokens", "output tokens"};
    const detail::limit_view& v = d.views[d.refused_by];
    const std::string limit = std::to_string(static_cast<std::int64_t>(v.limit));
    const std::string message =
        d.too_large ? std::string("Request too large: it needs ") +
                          std::to_string(static_cast<std::int64_t>(cost[d.refused_by])) + " " + what[d.refused_by] +
                          " but the limit is " + limit + " per minute."
                    : std::string("Rate limit reached for ") + what[d.refused_by] + " per min: Limit " + limit +
                          ", Remaining " + std::to_string(v.remaining) + ". Please try again in " +
                          detail::go_duration(d.retry_after) + ".";
    if (which == api::openai)
      detail::set_openai_error(res, 429, message, d.refused_by == detail::limit_requests ? "requests" : "tokens",
                               nullptr, "rate_limit_exceeded");
    else
      detail::set_anthropic_error(res, 429, "rate_limit_error", message);
    set_retry_after(which, res, d.retry_after);
    return false;
  }

  // ---- Gemini API, Vertex AI (with its token endpoint) and Bedrock ----
  //
  //   POST /v1beta/models/{model}:generateContent     Gemini API: x-goog-api-key (or ?key=) required
  //        (403 PERMISSION_DENIED without one; with --api-key-env it must match, else 400
  //        API_KEY_INVALID); the answer in Gemini's shape with usageMetadata, modelVersion = model.
  //   POST /token                                     OAuth JWT-bearer grant (form body): the
  //        assertion's claims are checked (iss, aud ending in /token, scope), not its signature;
  //        answers {access_token, expires_in, token_type}; 400 invalid_grant otherwise.
  //   POST /v1beta1/projects/{p}/locations/{l}/endpoints/openapi/chat/completions      Vertex AI,
  //   POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent  each with
  //   POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict    a token
  //        from /token as "Authorization: Bearer" (else 401 UNAUTHENTICATED in Google's shape).
  //   POST /model/{modelId}/invoke                    Bedrock InvokeModel: "Authorization:
  //        AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/bedrock/aws4_request, SignedHeaders=...,
  //        Signature=<64 hex>" and X-Amz-Date required (the signature itself is not checked), else
  //        403 {"message"} with x-amzn-ErrorType; the body must carry anthropic_version and no
  //        model (400 ValidationException); the answer is a Messages response, model = modelId.
  // They count as model requests (requests(), requests_for_path()) and honour on_chat and the
  // latency, but not the rate limits or injected faults.

  void add_google_aws_routes(httplib::Server& svr) {
    svr.Post(R"(/v1beta/models/([^/:]+):generateContent)", [this](const httplib::Request& req, httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body) {
        std::optional<std::string> key;
        if (req.has_header("x-goog-api-key")) key = req.get_header_value("x-goog-api-key");
        else if (req.has_param("key")) key = req.get_param_value("key");
        if (!key || key->empty()) {
          set_google_error(res, 403, "PERMISSION_DENIED",
                           "Method doesn't allow unregistered callers (callers without established identity). "
                           "Please use API Key or other form of API consumer identity to call this API.");
          return;
        }
        if (!opts_.api_key.empty() && !detail::constant_time_equal(*key, opts_.api_key)) {
          nlohmann::json err = {{"error",
                                 {{"code", 400},
                                  {"message", "API key not valid. Please pass a valid API key."},
                                  {"status", "INVALID_ARGUMENT"},
                                  {"details", {{{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
                                                {"reason", "API_KEY_INVALID"},
                                                {"domain", "googleapis.com"}}}}}}};
          detail::set_json(res, 400, err.dump());
          return;
        }
        answer_generate_content(body, req.matches[1].str(), res);
      });
    });
    svr.Post("/token", [this](const httplib::Request& req, httplib::Response& res) { issue_token(req, res); });
    svr.Post(R"(/v1beta1/projects/([^/]+)/locations/([^/]+)/endpoints/openapi/chat/completions)",
             [this](const httplib::Request& req, httplib::Response& res) {
               serve_google_aws(req, res, [&](const nlohmann::json& body) {
                 if (!vertex_token_ok(req, res)) return;
                 detail::chat_request chat;
                 std::string error;
                 nlohmann::json param;
                 if (!detail::parse_chat_request(body, chat, error, param)) {
                   set_google_error(res, 400, "INVALID_ARGUMENT", error);
                   return;
                 }
                 simulate_latency();
                 detail::set_json(res, 200, detail::chat_completion_body(chat));
               });
             });
    svr.Post(R"(/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):generateContent)",
             [this](const httplib::Request& req, httplib::Response& res) {
               serve_google_aws(req, res, [&](const nlohmann::json& body) {
                 if (!vertex_token_ok(req, res)) return;
                 answer_generate_content(body, req.matches[3].str(), res);
               });
             });
    svr.Post(R"(/v1/projects/([^/]+)/locations/([^/]+)/publishers/anthropic/models/([^/:]+):rawPredict)",
             [this](const httplib::Request& req, httplib::Response& res) {
               serve_google_aws(req, res, [&](const nlohmann::json& body) {
                 if (!vertex_token_ok(req, res)) return;
                 answer_messages_in_url(body, req.matches[3].str(), "vertex-2023-10-16", res,
                                        [&](const std::string& message) {
                                          detail::set_anthropic_error(res, 400, "invalid_request_error", message);
                                        });
               });
             });
    svr.Post(R"(/model/(.+)/invoke)", [this](const httplib::Request& req, httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body) {
        if (!sigv4_shape_ok(req, res)) return;
        if (body.is_object() && body.contains("model")) {
          set_bedrock_error(res, 400, "ValidationException",
                            "Malformed input request: #: extraneous key [model] is not permitted, please reformat "
                            "your input and try again.");
          return;
        }
        answer_messages_in_url(body, req.matches[1].str(), "bedrock-2023-05-31", res, [&](const std::string& message) {
          set_bedrock_error(res, 400, "ValidationException", message);
        });
      });
    });
  }

  // Counting, recording and the on_chat hook, as for the other model routes; then `handle`.
  template <class Handle>
  void serve_google_aws(const httplib::Request& req, httplib::Response& res, Handle&& handle) {
    requests_.fetch_add(1);
    in_flight_guard guard(*this);
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    record(body, req.headers);
    request_scope scope(*this, req, res, std::string(), body);
    if (const chat_hook hook = current_hook())
      if (hook(req, res)) return;
    if (body.is_discarded() || !body.is_object()) {
      if (req.path.rfind("/model/", 0) == 0)
        set_bedrock_error(res, 400, "ValidationException", "Malformed input request: the body is not a JSON object");
      else
        set_google_error(res, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
      return;
    }
    handle(body);
  }

  static void set_google_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
    const nlohmann::json err = {{"error", {{"code", status}, {"message", message}, {"status", code}}}};
    detail::set_json(res, status, err.dump());
  }

  static void set_bedrock_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
    res.set_header("x-amzn-ErrorType", type + ":http://internal.amazon.com/coral/com.amazon.coral.service/");
    res.set_header("x-amzn-RequestId", detail::random_hex(16));
    detail::set_json(res, status, nlohmann::json{{"message", message}}.dump());
  }

  // "Credential=KEY/YYYYMMDD/REGION/bedrock/aws4_request, SignedHeaders=a;b, Signature=<64 hex>".
  static bool sigv4_shape_ok(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Authorization")) {
      set_bedrock_error(res, 403, "MissingAuthenticationTokenException", "Missing Authentication Token");
      return false;
    }
    const std::string auth = req.get_header_value("Authorization");
    if (!req.has_header("X-Amz-Date") || !sigv4_authorization_shape(auth)) {
      set_bedrock_error(res, 403, "UnrecognizedClientException", "The security token included in the request is invalid.");
      return false;
    }
    return true;
  }

  static bool sigv4_authorization_shape(const std::string& auth) {
    static const std::string algorithm = "AWS4-HMAC-SHA256 Credential=";
    if (auth.rfind(algorithm, 0) != 0) return false;
    const auto comma1 = auth.find(',', algorithm.size());
    if (comma1 == std::string::npos) return false;
    // KEY/YYYYMMDD/REGION/bedrock/aws4_request
    std::vector<std::string> scope;
    std::size_t from = algorithm.size();
    for (std::size_t slash; (slash = auth.find('/', from)) < comma1; from = slash + 1) scope.push_back(auth.substr(from, slash - from));
    scope.push_back(auth.substr(from, comma1 - from));
    if (scope.size() != 5 || scope[0].empty() || scope[1].size() != 8 || scope[2].empty() || scope[3] != "bedrock" ||
        scope[4] != "aws4_request")
      return false;
    for (char ch : scope[1])
      if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
    const auto signed_at = auth.find("SignedHeaders=", comma1);
    const auto sig_at = auth.find("Signature=", comma1);
    if (signed_at == std::string::npos || sig_at == std::string::npos || sig_at < signed_at) return false;
    const std::string signature = auth.substr(sig_at + 10);
    if (signature.size() != 64) return false;
    for (char ch : signature)
      if (!std::isxdigit(static_cast<unsigned char>(ch)) || std::isupper(static_cast<unsigned char>(ch))) return false;
    return true;
  }

  bool vertex_token_ok(const httplib::Request& req, httplib::Response& res) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string scheme = "Bearer ";
    bool ok = false;
    if (auth.rfind(scheme, 0) == 0) {
      std::lock_guard<std::mutex> lk(tokens_mutex_);
      ok = issued_tokens_.count(auth.substr(scheme.size())) > 0;
    }
    if (!ok)
      set_google_error(res, 401, "UNAUTHENTICATED",
                       "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                       "or other valid authentication credential.");
    return ok;
  }

  static bool base64url_decode(std::string in, std::string& out) {
    for (char& ch : in) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    while (in.size() % 4 != 0) in.push_back('=');
    std::string buf(in.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&buf[0]),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0) return false;
    std::size_t len = static_cast<std::size_t>(n);
    for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) --len;  // DecodeBlock counts padding as zeros
    out = buf.substr(0, len);
    return true;
  }

  void issue_token(const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lk(stats_mutex_);
      ++by_path_[req.path];
    }
    auto refuse = [&](const std::string& why) {
      detail::set_json(res, 400, nlohmann::json{{"error", "invalid_grant"}, {"error_description", why}}.dump());
    };
    if (req.get_param_value("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer")
      return refuse("grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer");
    const std::string assertion = req.get_param_value("assertion");
    const auto dot1 = assertion.find('.');
    const auto dot2 = dot1 == std::string::npos ? dot1 : assertion.find('.', dot1 + 1);
    std::string header_text, claims_text;
    if (dot2 == std::string::npos || assertion.find('.', dot2 + 1) != std::string::npos || dot2 + 1 >= assertion.size() ||
        !base64url_decode(assertion.substr(0, dot1), header_text) ||
        !base64url_decode(assertion.substr(dot1 + 1, dot2 - dot1 - 1), claims_text))
      return refuse("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe");
    const nlohmann::json header = nlohmann::json::parse(header_text, nullptr, false);
    const nlohmann::json claims = nlohmann::json::parse(claims_text, nullptr, false);
    if (!header.is_object() || header.value("alg", std::string()) != "RS256")
      return refuse("Invalid JWT: the header must name alg RS256");
    if (!claims.is_object() || claims.value("iss", std::string()).empty() || !claims.contains("scope"))
      return refuse("Invalid JWT: iss and scope are required");
    const std::string aud = claims.value("aud", std::string());
    if (aud.size() < 6 || aud.compare(aud.size() - 6, 6, "/token") != 0)
      return refuse("Invalid JWT: the audience must be this token endpoint");
    const std::string token = "mock-access-token-" + detail::random_hex(24);
    {
      std::lock_guard<std::mutex> lk(tokens_mutex_);
      issued_tokens_.emplace(token, tokens_issued_);
      ++tokens_issued_;
    }
    detail::set_json(res, 200,
                     nlohmann::json{{"access_token", token}, {"expires_in", 3599}, {"token_type", "Bearer"}}.dump());
  }

  // A generateContent answer: the same text and token rules as the other routes.
  void answer_generate_content(const nlohmann::json& body, const std::string& model, httplib::Response& res) {
    const auto contents = body.find("contents");
    if (contents == body.end() || !contents->is_array() || contents->empty()) {
      set_google_error(res, 400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified");
      return;
    }
    auto parts_text = [](const nlohmann::json& c) {
      std::string text;
      const auto parts = c.is_object() ? c.find("parts") : c.end();
      if (!c.is_object() || parts == c.end() || !parts->is_array()) return text;
      for (const auto& p : *parts)
        if (p.is_object() && p.contains("text") && p["text"].is_string())
          text += (text.empty() ? "" : "\n") + p["text"].get<std::string>();
      return text;
    };
    std::size_t prompt_bytes = 0;
    std::string last_user;
    for (const auto& c : *contents) {
      if (!c.is_object() || !c.contains("parts") || !c["parts"].is_array()) {
        set_google_error(res, 400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: parts is required");
        return;
      }
      const std::string text = parts_text(c);
      prompt_bytes += text.size();
      if (c.value("role", std::string("user")) == "user") last_user = text;
    }
    if (body.contains("systemInstruction")) prompt_bytes += parts_text(body["systemInstruction"]).size();
    const nlohmann::json gen = body.value("generationConfig", nlohmann::json::object());
    std::int64_t max_tokens = 8192, count = 1;
    if (gen.is_object() && gen.contains("maxOutputTokens") && gen["maxOutputTokens"].is_number_integer())
      max_tokens = gen["maxOutputTokens"].get<std::int64_t>();
    if (gen.is_object() && gen.contains("candidateCount") && gen["candidateCount"].is_number_integer())
      count = std::max<std::int64_t>(1, gen["candidateCount"].get<std::int64_t>());
    nlohmann::json candidates = nlohmann::json::array();
    std::size_t out_tokens = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      std::string text = "Mock answer to: " + last_user + (i > 0 ? " (sample " + std::to_string(i) + ")" : "");
      std::string finish = "STOP";
      if (max_tokens > 0 && static_cast<std::size_t>(max_tokens) < detail::estimate_tokens(text.size())) {
        text = detail::utf8_prefix(text, static_cast<std::size_t>(max_tokens) * 4U);
        finish = "MAX_TOKENS";
      }
      out_tokens += detail::estimate_tokens(text.size());
      candidates.push_back({{"content", {{"parts", {{{"text", text}}}}, {"role", "model"}}},
                            {"finishReason", finish},
                            {"index", i}});
    }
    const std::size_t in_tokens = detail::estimate_tokens(prompt_bytes);
    simulate_latency();
    detail::set_json(res, 200,
                     nlohmann::json{{"candidates", std::move(candidates)},
                                    {"usageMetadata",
                                     {{"promptTokenCount", in_tokens},
                                      {"candidatesTokenCount", out_tokens},
                                      {"totalTokenCount", in_tokens + out_tokens}}},
                                    {"modelVersion", model},
                                    {"responseId", detail::random_hex(16)}}
                         .dump());
  }

  // Bedrock and Vertex's rawPredict: a Messages body whose model is in the URL and whose
  // anthropic_version is in the body.
  template <class Refuse>
  void answer_messages_in_url(const nlohmann::json& body, const std::string& model, const std::string& version,
                              httplib::Response& res, Refuse&& refuse) {
    if (body.value("anthropic_version", std::string()) != version)
      return refuse("anthropic_version: must be \"" + version + "\"");
    nlohmann::json with_model = body;
    with_model["model"] = model;
    detail::messages_request msg;
    std::string error;
    if (!detail::parse_messages_request(with_model, msg, error)) return refuse(error);
    simulate_latency();
    detail::set_json(res, 200, detail::messages_body(msg));
  }

 public:
  /// Access tokens /token has handed out.
  std::size_t tokens_issued() const {
    std::lock_guard<std::mutex> lk(tokens_mutex_);
    return tokens_issued_;
  }
  /// Requests seen per path (every route, /token included).
  std::map<std::string, std::size_t> requests_by_path() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return by_path_;
  }

 private:
  mutable std::mutex tokens_mutex_;
  std::unordered_map<std::string, std::size_t> issued_tokens_;  // token -> its number
  std::size_t tokens_issued_ = 0;
  // ---- end of Gemini API, Vertex AI and Bedrock ----
  // ---- provider batch APIs (OpenAI Files + Batch, Anthropic Message Batches) ----
  // POST /v1/files (multipart, purpose=batch), GET /v1/files/{id}/content, POST /v1/batches,
  // GET /v1/batches/{id}, POST /v1/batches/{id}/cancel; POST /v1/messages/batches,
  // GET /v1/messages/batches/{id}, POST .../{id}/cancel, GET .../{id}/results. Lines are answered
  // by the same rules as the online routes (no rate limits or faults), once `delay_ms` has passed
  // since creation (checked lazily, on the next request). Not counted in requests().
 public:
  struct batch_mock_options {
    int delay_ms = 0;            // creation to end of processing (OpenAI: validating for the first third)
    double fail_rate = 0;        // fraction of lines answered with a 400 error (drawn from `seed`), besides
                                 // every line whose last user message contains "[fail]"
    bool expire = false;         // batches end as expired: the first half of their lines answered, the rest expired
    std::size_t max_requests = 0;  // per batch (0 = no limit): OpenAI fails the batch, Anthropic answers 400
  };
  void set_batch_options(const batch_mock_options& o) {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    batch_opts_ = o;
  }
  std::size_t batch_calls() const { return batch_calls_.load(); }  // requests to the batch routes
  std::size_t batches_created() const {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    return batches_.size();
  }
  std::vector<std::size_t> batch_sizes() const {  // lines per batch, in creation order
    std::lock_guard<std::mutex> lk(batch_mutex_);
    std::vector<std::pair<std::uint64_t, std::size_t>> v;
    for (const auto& kv : batches_) v.emplace_back(kv.second.seq, kv.second.lines.size());
    std::sort(v.begin(), v.end());
    std::vector<std::size_t> out;
    for (const auto& p : v) out.push_back(p.second);
    return out;
  }
  std::size_t batch_lines() const {  // lines over every batch created
    std::size_t n = 0;
    for (std::size_t s : batch_sizes()) n += s;
    return n;
  }
  // Per batch in creation order, the last user message of each line: what was uploaded.
  std::vector<std::vector<std::string>> batch_prompts() const {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    std::vector<std::pair<std::uint64_t, std::vector<std::string>>> v;
    for (const auto& kv : batches_) {
      std::vector<std::string> texts;
      for (const auto& l : kv.second.lines)
        texts.push_back(detail::last_user_text(kv.second.which == api::openai ? l.second.value("body", nlohmann::json())
                                                                             : l.second));
      v.emplace_back(kv.second.seq, std::move(texts));
    }
    std::sort(v.begin(), v.end());
    std::vector<std::vector<std::string>> out;
    for (auto& p : v) out.push_back(std::move(p.second));
    return out;
  }

 private:
  struct mock_batch {
    api which = api::openai;
    std::uint64_t seq = 0;
    std::string id, status, endpoint, completion_window, input_file_id, output_file_id, error_file_id, results;
    nlohmann::json metadata, errors;
    std::chrono::steady_clock::time_point created;
    std::int64_t created_at = 0;
    std::vector<std::pair<std::string, nlohmann::json>> lines;  // custom_id, request (OpenAI line / Anthropic params)
    std::size_t succeeded = 0, failed = 0, expired = 0, canceled = 0;
    bool cancel_requested = false, done = false;
    std::int64_t cancelled_at = 0, ended_at = 0;
  };

  static std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  static std::string iso(std::int64_t t) {
    return t == 0 ? std::string() : detail::rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::seconds(t)), false);
  }

  bool batch_auth(api which, const httplib::Request& req, httplib::Response& res) {
    batch_calls_.fetch_add(1);
    const key_verdict v = check_key(presented_key(which, req));
    if (v == key_verdict::ok || v == key_verdict::out_of_credit) {
      if (which == api::anthropic && !req.has_header("anthropic-version")) {
        detail::set_anthropic_error(res, 400, "invalid_request_error", "anthropic-version: header is required");
        return false;
      }
      // The injected faults hit the control calls too, so that clients prove their retries.
      switch (draw_fault()) {
        case fault::none:
          return true;
        case fault::reset:
          if (!detail::drop_connection(req)) break;
          res.status = 200;
          return false;
        case fault::status_429:
          set_retry_after(which, res, std::chrono::milliseconds(std::max(1, opts_.fail_429_retry_after_ms)));
          rate_limit_error(which, res, "Rate limit reached (injected by the mock server).");
          return false;
        case fault::status_500:
        case fault::overload:
          break;
      }
      if (which == api::openai)
        detail::set_openai_error(res, 500, "The server had an error while processing your request. Sorry about that!",
                                 "server_error", nullptr, nullptr);
      else
        detail::set_anthropic_error(res, 500, "api_error", "Internal server error");
      return false;
    }
    if (which == api::openai)
      detail::set_openai_error(res, 401, "Incorrect API key provided.", "invalid_request_error", nullptr, "invalid_api_key");
    else
      detail::set_anthropic_error(res, 401, "authentication_error", "invalid x-api-key");
    return false;
  }

  static void not_found(api which, httplib::Response& res, const std::string& what) {
    if (which == api::openai)
      detail::set_openai_error(res, 404, "No such " + what, "invalid_request_error", nullptr, nullptr);
    else
      detail::set_anthropic_error(res, 404, "not_found_error", "No such " + what);
  }

  // One line's answer: {status, body}. Under batch_mutex_.
  std::pair<int, nlohmann::json> answer_line(api which, const nlohmann::json& request) {
    const bool fail_drawn =
        batch_opts_.fail_rate > 0 && detail::seeded_uniform(opts_.seed ^ 0xba7cULL, batch_line_seq_++) < batch_opts_.fail_rate;
    std::string error, text;
    std::string out;
    if (which == api::openai) {
      detail::chat_request chat;
      nlohmann::json param;
      const nlohmann::json body = request.value("body", nlohmann::json());
      if (request.value("method", "") != "POST" || request.value("url", "") != "/v1/chat/completions")
        error = "Each line must be a POST to /v1/chat/completions.";
      else if (detail::parse_chat_request(body, chat, error, param))
        out = detail::chat_completion_body(chat);
      text = chat.last_user_text;
    } else {
      detail::messages_request msg;
      if (detail::parse_messages_request(request, msg, error)) out = detail::messages_body(msg);
      text = msg.last_user_text;
    }
    if (error.empty() && (fail_drawn || text.find("[fail]") != std::string::npos))
      error = "The mock server failed this batch line on purpose.";
    if (!error.empty()) {
      const std::string e = which == api::openai
                                ? detail::openai_error_body(error, "invalid_request_error", nullptr, nullptr)
                                : detail::anthropic_error_body("invalid_request_error", error);
      return {400, nlohmann::json::parse(e)};
    }
    return {200, nlohmann::json::parse(out)};
  }

  // Moves a batch along its timeline. Under batch_mutex_.
  void advance(mock_batch& b) {
    if (b.done) return;
    const auto elapsed = std::chrono::steady_clock::now() - b.created;
    const auto delay = std::chrono::milliseconds(std::max(0, batch_opts_.delay_ms));
    std::string output, errors;
    auto add = [](std::string& file, const nlohmann::json& line) { file += line.dump() + "\n"; };
    if (b.cancel_requested) {
      b.done = true;
      b.ended_at = unix_now();
      b.canceled = b.lines.size();
      if (b.which == api::openai) {
        b.status = "cancelled";
      } else {
        b.status = "ended";
        for (const auto& l : b.lines) add(b.results, {{"custom_id", l.first}, {"result", {{"type", "canceled"}}}});
      }
      return;
    }
    if (!b.errors.is_null()) {
      b.done = true;
      b.status = "failed";
      return;
    }
    if (elapsed < delay) {
      if (b.which == api::openai) b.status = elapsed < delay / 3 ? "validating" : "in_progress";
      return;
    }
    const std::size_t answered = batch_opts_.expire ? b.lines.size() / 2 : b.lines.size();
    for (std::size_t i = 0; i < b.lines.size(); ++i) {
      const std::string& cid = b.lines[i].first;
      if (i >= answered) {
        ++b.expired;
        if (b.which == api::openai)
          add(errors, {{"id", "batch_req_" + detail::random_hex(16)}, {"custom_id", cid}, {"response", nullptr},
                       {"error", {{"code", "batch_expired"},
                                  {"message", "This request could not be executed before the completion window expired."}}}});
        else
          add(b.results, {{"custom_id", cid}, {"result", {{"type", "expired"}}}});
        continue;
      }
      auto [status, body] = answer_line(b.which, b.lines[i].second);
      status == 200 ? ++b.succeeded : ++b.failed;
      if (b.which == api::openai)
        add(status == 200 ? output : errors,
            {{"id", "batch_req_" + detail::random_hex(16)}, {"custom_id", cid},
             {"response", {{"status_code", status}, {"request_id", "req_" + detail::random_hex(16)}, {"body", body}}},
             {"error", nullptr}});
      else if (status == 200)
        add(b.results, {{"custom_id", cid}, {"result", {{"type", "succeeded"}, {"message", body}}}});
      else
        add(b.results, {{"custom_id", cid}, {"result", {{"type", "errored"}, {"error", body}}}});
    }
    b.done = true;
    b.ended_at = unix_now();
    if (b.which == api::openai) {
      b.status = batch_opts_.expire ? "expired" : "completed";
      if (!output.empty()) batch_files_[b.output_file_id = "file-" + detail::random_hex(24)] = std::move(output);
      if (!errors.empty()) batch_files_[b.error_file_id = "file-" + detail::random_hex(24)] = std::move(errors);
    } else {
      b.status = "ended";
    }
  }

  nlohmann::json batch_object(const mock_batch& b) const {
    auto opt = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
    auto at = [](std::int64_t t) { return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(t); };
    if (b.which == api::openai)
      return {{"id", b.id}, {"object", "batch"}, {"endpoint", b.endpoint}, {"errors", b.errors},
              {"input_file_id", b.input_file_id}, {"completion_window", b.completion_window}, {"status", b.status},
              {"output_file_id", opt(b.output_file_id)}, {"error_file_id", opt(b.error_file_id)},
              {"created_at", b.created_at}, {"expires_at", b.created_at + 86400},
              {"completed_at", b.status == "completed" ? at(b.ended_at) : nullptr},
              {"expired_at", b.status == "expired" ? at(b.ended_at) : nullptr},
              {"cancelling_at", at(b.cancelled_at)}, {"cancelled_at", b.status == "cancelled" ? at(b.ended_at) : nullptr},
              {"request_counts", {{"total", b.lines.size()}, {"completed", b.succeeded}, {"failed", b.failed + b.expired}}},
              {"metadata", b.metadata}};
    auto ts = [](std::int64_t t) { return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(iso(t)); };
    const std::size_t processing = b.done ? 0 : b.lines.size();
    return {{"id", b.id}, {"type", "message_batch"}, {"processing_status", b.status},
            {"request_counts", {{"processing", processing}, {"succeeded", b.succeeded}, {"errored", b.failed},
                                {"canceled", b.canceled}, {"expired", b.expired}}},
            {"ended_at", ts(b.ended_at)}, {"created_at", iso(b.created_at)}, {"expires_at", iso(b.created_at + 86400)},
            {"archived_at", nullptr}, {"cancel_initiated_at", ts(b.cancelled_at)},
            {"results_url", b.done ? nlohmann::json(origin() + "/v1/messages/batches/" + b.id + "/results") : nlohmann::json(nullptr)}};
  }

  void add_batch_routes(httplib::Server& svr) {
    using httplib::Request;
    using httplib::Response;
    svr.Post("/v1/files", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      if (!req.has_file("file") || !req.has_file("purpose") || req.get_file_value("purpose").content != "batch") {
        detail::set_openai_error(res, 400, "A multipart form with 'file' and purpose=batch is required.",
                                 "invalid_request_error", nullptr, nullptr);
        return;
      }
      const auto file = req.get_file_value("file");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const std::string id = "file-" + detail::random_hex(24);
      batch_files_[id] = file.content;
      detail::set_json(res, 200,
                       nlohmann::json{{"id", id}, {"object", "file"}, {"bytes", file.content.size()},
                                      {"created_at", unix_now()}, {"filename", file.filename}, {"purpose", "batch"}}
                           .dump());
    });
    svr.Get(R"(/v1/files/([^/]+)/content)", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const auto it = batch_files_.find(req.matches[1].str());
      if (it == batch_files_.end()) return not_found(api::openai, res, "file");
      res.status = 200;
      res.set_content(it->second, "application/octet-stream");
    });
    svr.Post("/v1/batches", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_object() || body.value("endpoint", "") != "/v1/chat/completions" ||
          body.value("completion_window", "") != "24h" || !body.contains("input_file_id")) {
        detail::set_openai_error(res, 400, "input_file_id, endpoint /v1/chat/completions and completion_window 24h are required.",
                                 "invalid_request_error", nullptr, nullptr);
        return;
      }
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const auto file = batch_files_.find(body.value("input_file_id", ""));
      if (file == batch_files_.end()) return not_found(api::openai, res, "file");
      mock_batch b;
      b.which = api::openai;
      b.seq = batch_seq_++;
      b.id = "batch_" + detail::random_hex(24);
      b.status = "validating";
      b.endpoint = body["endpoint"];
      b.completion_window = body["completion_window"];
      b.input_file_id = file->first;
      b.metadata = body.value("metadata", nlohmann::json());
      b.created = std::chrono::steady_clock::now();
      b.created_at = unix_now();
      std::map<std::string, bool> ids;
      const std::string& content = file->second;
      std::size_t n = 0;
      for (std::size_t pos = 0; pos < content.size();) {
        std::size_t nl = content.find('\n', pos);
        if (nl == std::string::npos) nl = content.size();
        const std::string text = content.substr(pos, nl - pos);
        pos = nl + 1;
        ++n;
        if (text.empty()) continue;
        nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
        const std::string cid = line.is_object() ? line.value("custom_id", "") : std::string();
        const char* code = cid.empty() ? "invalid_json_line" : !ids.emplace(cid, true).second ? "duplicate_custom_id" : nullptr;
        if (code && b.errors.is_null())
          b.errors = {{"object", "list"},
                      {"data", {{{"code", code}, {"message", std::string("Line ") + std::to_string(n) + ": " + code},
                                 {"param", nullptr}, {"line", n}}}}};
        b.lines.emplace_back(cid, std::move(line));
      }
      if (b.errors.is_null() && batch_opts_.max_requests > 0 && b.lines.size() > batch_opts_.max_requests)
        b.errors = {{"object", "list"},
                    {"data", {{{"code", "too_many_requests"},
                               {"message", "The batch has " + std::to_string(b.lines.size()) + " requests; the limit is " +
                                               std::to_string(batch_opts_.max_requests) + "."},
                               {"param", nullptr}, {"line", nullptr}}}}};
      const std::string id = b.id;
      auto& stored = batches_[id] = std::move(b);
      detail::set_json(res, 200, batch_object(stored).dump());
    });
    auto lookup = [this](api which, const Request& req, Response& res) -> mock_batch* {
      auto it = batches_.find(req.matches[1].str());
      if (it == batches_.end() || it->second.which != which) {
        not_found(which, res, "batch");
        return nullptr;
      }
      return &it->second;
    };
    for (api which : {api::openai, api::anthropic}) {
      const std::string prefix = which == api::openai ? "/v1/batches" : "/v1/messages/batches";
      svr.Get(prefix + "/([^/]+)", [this, which, lookup](const Request& req, Response& res) {
        if (!batch_auth(which, req, res)) return;
        std::lock_guard<std::mutex> lk(batch_mutex_);
        if (mock_batch* b = lookup(which, req, res)) {
          advance(*b);
          detail::set_json(res, 200, batch_object(*b).dump());
        }
      });
      svr.Post(prefix + "/([^/]+)/cancel", [this, which, lookup](const Request& req, Response& res) {
        if (!batch_auth(which, req, res)) return;
        std::lock_guard<std::mutex> lk(batch_mutex_);
        if (mock_batch* b = lookup(which, req, res)) {
          advance(*b);
          if (!b->done) {
            b->cancel_requested = true;
            b->cancelled_at = unix_now();
            b->status = which == api::openai ? "cancelling" : "canceling";
          }
          detail::set_json(res, 200, batch_object(*b).dump());
        }
      });
    }
    svr.Post("/v1/messages/batches", [this](const Request& req, Response& res) {
      if (!batch_auth(api::anthropic, req, res)) return;
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      const auto requests = body.is_object() ? body.find("requests") : body.end();
      if (!body.is_object() || requests == body.end() || !requests->is_array() || requests->empty())
        return detail::set_anthropic_error(res, 400, "invalid_request_error", "requests: a non-empty list is required");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (batch_opts_.max_requests > 0 && requests->size() > batch_opts_.max_requests)
        return detail::set_anthropic_error(res, 400, "invalid_request_error",
                                           "requests: at most " + std::to_string(batch_opts_.max_requests) + " requests");
      mock_batch b;
      b.which = api::anthropic;
      b.seq = batch_seq_++;
      b.id = "msgbatch_" + detail::random_hex(24);
      b.status = "in_progress";
      b.created = std::chrono::steady_clock::now();
      b.created_at = unix_now();
      std::map<std::string, bool> ids;
      for (const auto& r : *requests) {
        const std::string cid = r.is_object() ? r.value("custom_id", "") : std::string();
        const bool id_ok = !cid.empty() && cid.size() <= 64 &&
                           std::all_of(cid.begin(), cid.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
        if (!id_ok || !ids.emplace(cid, true).second || !r.contains("params") || !r["params"].is_object())
          return detail::set_anthropic_error(res, 400, "invalid_request_error",
                                             "requests." + std::to_string(b.lines.size()) +
                                                 ": a unique custom_id ([a-zA-Z0-9_-]{1,64}) and params are required");
        b.lines.emplace_back(cid, r["params"]);
      }
      const std::string id = b.id;
      auto& stored = batches_[id] = std::move(b);
      detail::set_json(res, 200, batch_object(stored).dump());
    });
    svr.Get(R"(/v1/messages/batches/([^/]+)/results)", [this, lookup](const Request& req, Response& res) {
      if (!batch_auth(api::anthropic, req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      mock_batch* b = lookup(api::anthropic, req, res);
      if (!b) return;
      advance(*b);
      if (!b->done)
        return detail::set_anthropic_error(res, 400, "invalid_request_error", "The batch is still being processed.");
      res.status = 200;
      res.set_content(b->results, "application/binary");
    });
  }

  mutable std::mutex batch_mutex_;
  batch_mock_options batch_opts_;
  std::map<std::string, std::string> batch_files_;
  std::map<std::string, mock_batch> batches_;
  std::uint64_t batch_seq_ = 0, batch_line_seq_ = 0;
  std::atomic<std::size_t> batch_calls_{0};
  // ---- end of the provider batch APIs ----

  server_options opts_;
  mutable std::mutex lifecycle_mutex_;
  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
  std::atomic<bool> listen_done_{false};
  std::atomic<int> port_{0};
  sockaddr_storage listen_addr_{};

  std::atomic<int> latency_ms_{0};
  std::atomic<int> latency_jitter_ms_{0};
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  bool stopping_ = false;  // guarded by sleep_mutex_

  std::atomic<std::size_t> requests_{0};
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> max_in_flight_{0};

  mutable std::mutex hook_mutex_;
  mutable std::mutex records_mutex_;
  std::deque<nlohmann::json> bodies_;
  std::deque<httplib::Headers> headers_;

  mutable std::mutex stats_mutex_;
  std::map<std::string, std::size_t> by_path_;
  std::map<std::string, std::size_t> by_key_;
  std::map<int, std::size_t> by_status_;
  std::deque<request_record> log_;

  detail::rate_limiter limiter_;

  std::mutex fault_mutex_;
  std::array<double, 4> fault_rates_{};  // 500, 429, reset, overload
  std::uint64_t fault_seq_ = 0;          // guarded by fault_mutex_
  std::atomic<bool> faults_on_{false};

  std::mutex pause_mutex_;
  std::size_t pause_count_ = 0;
  std::chrono::seconds pause_count_retry_after_{1};
  std::chrono::steady_clock::time_point pause_until_{};
  std::atomic<bool> pause_on_{false};

  std::mutex log_mutex_;
  std::ofstream log_file_;
  std::atomic<bool> log_file_is_open_{false};
};

}  // namespace requests_engine_mock
