// google.hpp: Google service-account keys and the OAuth token source (one refresh at a
// time), Vertex AI (OpenAI-style, Gemini, Anthropic) and the Gemini API.
#pragma once

#include "anthropic.hpp"
#include "openai.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// A Google Cloud service-account key: the JSON file the console downloads.
struct google_service_account {
  /// The OAuth scope of Vertex AI (and every Google Cloud API).
  static constexpr const char* cloud_platform_scope = "https://www.googleapis.com/auth/cloud-platform";

  std::string client_email;
  std::string private_key_id;
  std::string private_key;  ///< PEM ("-----BEGIN PRIVATE KEY-----...")
  std::string token_uri;    ///< where the signed assertion is exchanged for an access token
  std::string project_id;

  /// Reads a key file. Throws std::invalid_argument naming the file and the missing or bad
  /// field (never the key itself).
  [[nodiscard]] static REQUESTS_ENGINE_INLINE google_service_account from_file(const std::string& path);
  /// The same from the file's text; `origin` names it in errors.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE google_service_account from_json(const std::string& text,
                                                                               const std::string& origin);
  /// The file named by GOOGLE_APPLICATION_CREDENTIALS.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE google_service_account from_environment();

  /// The signed JWT (RS256) of the OAuth 2.0 JWT-bearer grant, issued at `issued_at` (seconds
  /// since the epoch) and valid for an hour; the audience is token_uri.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<std::string> jwt_assertion(
      std::int64_t issued_at, std::string_view scope = cloud_platform_scope) const;
};

/// OAuth access tokens for a service account, fetched from its token_uri and kept until
/// shortly before they expire. Thread-safe: when the token must be refreshed, one caller
/// fetches while the others wait for its answer. Providers built from one service account
/// share one source (std::shared_ptr), so copies of a provider never fetch twice.
class google_token_source {
 public:
  REQUESTS_ENGINE_INLINE explicit google_token_source(
      google_service_account account, std::string scope = google_service_account::cloud_platform_scope);
  google_token_source(const google_token_source&) = delete;
  google_token_source& operator=(const google_token_source&) = delete;

  // Settings: set them before the first token() call.
  /// PEM bundle (or folder) to trust for the token endpoint instead of the system's roots.
  google_token_source& ca_cert_file(std::string path) { ca_cert_file_ = std::move(path); return *this; }
  google_token_source& ca_cert_dir(std::string path) { ca_cert_dir_ = std::move(path); return *this; }
  /// The proxy for the token request (see options::proxy); unset: HTTPS_PROXY and NO_PROXY.
  google_token_source& proxy(std::string url) { proxy_ = std::move(url); return *this; }
  /// A token is refreshed this long before it expires (default 5 minutes; at most half its
  /// lifetime, so that a short-lived token is still used).
  google_token_source& refresh_margin(std::chrono::seconds s) { margin_ = s; return *this; }
  /// Connect and read timeout of the token request.
  google_token_source& timeout(std::chrono::milliseconds d) { timeout_ = d; return *this; }

  /// A valid access token, or why none could be had: connection, timeout, tls, server_error
  /// and rate_limited are worth retrying; a rejected key (400 invalid_grant) is authentication.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<std::string> token();

  [[nodiscard]] const google_service_account& account() const noexcept { return account_; }
  [[nodiscard]] std::vector<std::string> secrets() const { return {account_.private_key}; }

 private:
  REQUESTS_ENGINE_INLINE result<std::string> fetch(std::chrono::steady_clock::time_point& refresh_at);

  google_service_account account_;
  std::string scope_;
  std::string ca_cert_file_, ca_cert_dir_;
  std::optional<std::string> proxy_;
  std::chrono::seconds margin_{300};
  std::chrono::milliseconds timeout_{30000};

  std::mutex mutex_;
  std::condition_variable cv_;
  bool fetching_ = false;
  std::uint64_t generation_ = 0;                         // fetches finished so far
  std::optional<result<std::string>> last_;              // the last fetch's outcome
  std::string token_;
  std::chrono::steady_clock::time_point refresh_at_{};   // token_ is used until then
};

namespace detail {
/// base64url without padding (JWT segments).
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string base64url_encode(std::string_view data);
/// A generateContent body (Gemini API and Vertex AI) without the model, which is in the URL.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<json> gemini_body(const conversation& c, const params& p,
                                                              std::string_view provider);
/// A generateContent answer (any status) as a completion.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> gemini_parse_response(const http_response& r);
/// ".../models/{m}:generateContent" as its streaming twin ":streamGenerateContent?alt=sse".
[[nodiscard]] inline std::string gemini_stream_url(const std::string& endpoint) {
  const std::string tail = ":generateContent";
  std::string base = endpoint;
  if (base.size() >= tail.size() && base.compare(base.size() - tail.size(), tail.size(), tail) == 0)
    base.erase(base.size() - tail.size());
  return base + ":streamGenerateContent?alt=sse";
}
/// A multi-candidate answer as one single-candidate answer per candidate, usage shared out.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::string> gemini_split_candidates(const std::string& body);
/// A non-2xx answer in Google's shape ({"error":{"code","message","status"}}, bare or in an
/// array as Vertex AI sometimes sends it), or any shape error_from_response knows.
[[nodiscard]] REQUESTS_ENGINE_INLINE error google_error_from_response(const http_response& r);

/// Where a Vertex AI model lives, and the token that opens it.
struct vertex_location {
  std::shared_ptr<google_token_source> tokens;
  std::string base_url;  ///< scheme://host, no trailing slash
  std::string project;
  std::string region;
  /// base_url + "/{version}/projects/{project}/locations/{region}"
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string prefix(std::string_view version) const;
  /// A POST of `body` to `url` with a fresh bearer token.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<http_request> request(const std::string& url, const std::string& body,
                                                                    const extra_headers& extra) const;
};
/// Checks the parts and fills the defaults (project from the account, base URL from the
/// region); throws std::invalid_argument naming the bad part and `provider`.
[[nodiscard]] REQUESTS_ENGINE_INLINE vertex_location locate_vertex(std::shared_ptr<google_token_source> tokens,
                                                                   std::string region, std::string project,
                                                                   std::string base_url, std::string_view provider);
/// Throws std::invalid_argument unless `value` can stand in a URL path segment as it is.
REQUESTS_ENGINE_INLINE void check_path_segment(const std::string& value, std::string_view what,
                                               std::string_view provider);
}  // namespace detail

// Every Vertex AI provider takes the service account (or a token source shared with other
// providers), the region ("us-central1", "us-east5", "global", ...), the model, and
// optionally the project (default: the account's project_id) and the base URL (default:
// https://{region}-aiplatform.googleapis.com, or https://aiplatform.googleapis.com for
// "global"; set it to reach a proxy or a test server).

/// Models served on Vertex AI through its OpenAI-compatible endpoint (Llama and other
/// model-as-a-service models, e.g. "meta/llama-3.3-70b-instruct-maas").
class vertex_openai : public with_extra_headers {
 public:
  REQUESTS_ENGINE_INLINE vertex_openai(std::shared_ptr<google_token_source> tokens, std::string region,
                                       std::string model, std::string project = {}, std::string base_url = {});
  vertex_openai(const google_service_account& account, std::string region, std::string model,
                std::string project = {}, std::string base_url = {})
      : vertex_openai(std::make_shared<google_token_source>(account), std::move(region), std::move(model),
                      std::move(project), std::move(base_url)) {}

  [[nodiscard]] result<json> make_body(const conversation& c, const params& p) const {
    return chat_.make_body(c, p);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<http_request> make_request(const std::string& body) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] std::vector<std::string> split_choices(const std::string& body) const {
    return chat_.split_choices(body);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with(where_.tokens->secrets()); }
  /// Streaming as OpenAI chat completions do.
  [[nodiscard]] result<http_request> make_stream_request(const std::string& body) const {
    return detail::accepting(where_.request(chat_.endpoint(), detail::with_stream_flag(body, true), headers_));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::openai_chat_stream(); }

  [[nodiscard]] const std::string& endpoint() const noexcept { return chat_.endpoint(); }
  [[nodiscard]] const std::string& model() const noexcept { return chat_.model(); }
  [[nodiscard]] const std::shared_ptr<google_token_source>& tokens() const noexcept { return where_.tokens; }

 private:
  detail::vertex_location where_;
  openai_compatible chat_;  // the body and the answer are OpenAI's; only the URL and auth differ
};

/// Gemini models on Vertex AI (generateContent).
class vertex_gemini : public with_extra_headers {
 public:
  REQUESTS_ENGINE_INLINE vertex_gemini(std::shared_ptr<google_token_source> tokens, std::string region,
                                       std::string model, std::string project = {}, std::string base_url = {});
  vertex_gemini(const google_service_account& account, std::string region, std::string model,
                std::string project = {}, std::string base_url = {})
      : vertex_gemini(std::make_shared<google_token_source>(account), std::move(region), std::move(model),
                      std::move(project), std::move(base_url)) {}

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] result<http_request> make_request(const std::string& body) const {
    return where_.request(endpoint_, body, headers_);
  }
  [[nodiscard]] result<completion> parse_response(const http_response& r) const {
    return detail::gemini_parse_response(r);
  }
  [[nodiscard]] std::vector<std::string> split_choices(const std::string& body) const {
    return detail::gemini_split_candidates(body);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with(where_.tokens->secrets()); }
  /// Streaming: streamGenerateContent?alt=sse, each event a GenerateContentResponse.
  [[nodiscard]] result<http_request> make_stream_request(const std::string& body) const {
    return detail::accepting(where_.request(detail::gemini_stream_url(endpoint_), body, headers_));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::gemini_stream(); }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }
  [[nodiscard]] const std::shared_ptr<google_token_source>& tokens() const noexcept { return where_.tokens; }

 private:
  detail::vertex_location where_;
  std::string model_;
  std::string endpoint_;
};

/// Anthropic's Claude models on Vertex AI (rawPredict with the Messages API body).
class vertex_anthropic : public with_extra_headers {
 public:
  REQUESTS_ENGINE_INLINE vertex_anthropic(std::shared_ptr<google_token_source> tokens, std::string region,
                                          std::string model, std::string project = {}, std::string base_url = {});
  vertex_anthropic(const google_service_account& account, std::string region, std::string model,
                   std::string project = {}, std::string base_url = {})
      : vertex_anthropic(std::make_shared<google_token_source>(account), std::move(region), std::move(model),
                         std::move(project), std::move(base_url)) {}

  /// max_tokens is required by the API: this is sent when params::max_tokens is unset.
  vertex_anthropic& default_max_tokens(std::int64_t n) { default_max_tokens_ = n; return *this; }

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] result<http_request> make_request(const std::string& body) const {
    return where_.request(endpoint_, body, headers_);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with(where_.tokens->secrets()); }
  /// Streaming: streamRawPredict with "stream": true, answered with Anthropic's events.
  [[nodiscard]] result<http_request> make_stream_request(const std::string& body) const {
    return detail::accepting(where_.request(stream_endpoint_, detail::with_stream_flag(body, false), headers_));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::anthropic_stream(false); }
  [[nodiscard]] bool stream_needed(const std::string& body) const {
    return detail::anthropic_needs_stream(body, model_);
  }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }
  [[nodiscard]] const std::shared_ptr<google_token_source>& tokens() const noexcept { return where_.tokens; }

 private:
  detail::vertex_location where_;
  std::string model_;
  std::string endpoint_;
  std::string stream_endpoint_;  // :streamRawPredict
  std::int64_t default_max_tokens_ = 4096;
};

/// The Gemini API (generativelanguage.googleapis.com) with an API key.
class gemini : public with_extra_headers {
 public:
  /// `base_url` is the host, as in Google's SDKs: the client appends
  /// /v1beta/models/{model}:generateContent.
  REQUESTS_ENGINE_INLINE gemini(const char* api_key, std::string model,
                                std::string base_url = "https://generativelanguage.googleapis.com");
  gemini(const std::string& api_key, std::string model,
         std::string base_url = "https://generativelanguage.googleapis.com")
      : gemini(api_key.c_str(), std::move(model), std::move(base_url)) {}
  /// The key from GEMINI_API_KEY (or GOOGLE_API_KEY); throws std::invalid_argument if neither is set.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE gemini from_environment(
      std::string model, std::string base_url = "https://generativelanguage.googleapis.com");

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request(const std::string& body) const;
  [[nodiscard]] result<completion> parse_response(const http_response& r) const {
    return detail::gemini_parse_response(r);
  }
  [[nodiscard]] std::vector<std::string> split_choices(const std::string& body) const {
    return detail::gemini_split_candidates(body);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with({api_key_}); }
  /// Streaming: streamGenerateContent?alt=sse, each event a GenerateContentResponse.
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    http_request r = detail::accepting(make_request(body));
    r.url = detail::gemini_stream_url(endpoint_);
    return r;
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::gemini_stream(); }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }

 private:
  std::string api_key_;
  std::string model_;
  std::string endpoint_;
};

REQUESTS_ENGINE_NAMESPACE_END
