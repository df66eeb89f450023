// requests_engine mock server: a loopback HTTP/HTTPS server that behaves like
// an OpenAI-compatible chat completions endpoint. Used in-process by the test
// suite and by the `requests-engine mock` CLI subcommand.
//
// Header-only; needs cpp-httplib (built with CPPHTTPLIB_OPENSSL_SUPPORT),
// nlohmann/json and OpenSSL 3 (-lssl -lcrypto).
//
// Routes:
//   POST /v1/chat/completions   OpenAI chat completions (non-streaming)
//   GET  /health                200 "ok"
// Anything else gets an OpenAI-shaped JSON 404.
//
// Mock behaviour of POST /v1/chat/completions (in this order):
//   1. counts the request, records its parsed body (null if not JSON) and
//      headers (at most the last 1000);
//   2. `on_chat` hook, if set, may produce the whole response itself;
//   3. auth: if api_key is set, "Authorization: Bearer <api_key>" is required,
//      else 401 {"error":{..., "code":"invalid_api_key"}};
//   4. validation: 400 invalid_request_error for a body that is not a JSON
//      object, missing/non-string 'model', missing/empty/non-array 'messages',
//      a message that is not an object with a string 'role', an 'n' that is not
//      an integer in [1,128], a 'max_tokens' / 'max_completion_tokens' that is
//      not a positive integer, and "stream": true (not supported);
//   5. latency_ms + uniform[0, latency_jitter_ms] delay (interrupted by stop());
//   6. 200 with choices whose content is "Mock answer to: " + text of the last
//      user message (string content, or "text" parts joined with "\n"), plus
//      " (sample i)" for choice i > 0. Token counts are bytes/4 rounded up, at
//      least 1: prompt = all message texts, completion = sum over choices.
//      If max_tokens (or max_completion_tokens) is smaller than a choice's
//      estimate, its text is cut to max_tokens*4 bytes (on a UTF-8 boundary)
//      and finish_reason is "length".
// Every chat response carries an `x-request-id` header.
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
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <dirent.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
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
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
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

}  // namespace detail

class server {
 public:
  using chat_hook = std::function<bool(const httplib::Request&, httplib::Response&)>;

  explicit server(server_options opts) : opts_(std::move(opts)) {
    latency_ms_ = std::max(0, opts_.latency_ms);
    latency_jitter_ms_ = std::max(0, opts_.latency_jitter_ms);
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

  // Statistics (thread-safe).
  std::size_t requests() const { return requests_.load(); }
  std::size_t connections() const { return connections_.load(); }
  std::size_t max_in_flight() const { return max_in_flight_.load(); }
  std::size_t in_flight() const { return in_flight_.load(); }
  void reset_stats() {
    requests_.store(0);
    connections_.store(0);
    max_in_flight_.store(in_flight_.load());
    std::lock_guard<std::mutex> lk(records_mutex_);
    bodies_.clear();
    headers_.clear();
  }

  // Test hook: if set and it returns true, it has produced the response
  // itself and the default handling is skipped. Called after request counting
  // and recording, before auth. Assign before start(), or use set_on_chat()
  // while the server is running.
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

    svr.Post("/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res) { handle_chat_completions(req, res); });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });

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

  bool authorized(const httplib::Request& req) const {
    if (opts_.api_key.empty()) return true;
    if (!req.has_header("Authorization")) return false;
    const std::string value = req.get_header_value("Authorization");
    static const std::string scheme = "bearer ";
    if (value.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i]) return false;
    std::size_t start = scheme.size();
    while (start < value.size() && value[start] == ' ') ++start;
    return detail::constant_time_equal(value.substr(start), opts_.api_key);
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

  void handle_chat_completions(const httplib::Request& req, httplib::Response& res) {
    requests_.fetch_add(1);
    in_flight_guard guard(*this);
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    record(body, req.headers);

    const std::string request_id = "req_" + detail::random_hex(24);
    if (const chat_hook hook = current_hook()) {
      if (hook(req, res)) {
        if (!res.has_header("x-request-id")) res.set_header("x-request-id", request_id);
        return;
      }
    }
    res.set_header("x-request-id", request_id);

    if (!authorized(req)) {
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
    simulate_latency();
    detail::set_json(res, 200, detail::chat_completion_body(chat));
  }

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
};

}  // namespace requests_engine_mock
