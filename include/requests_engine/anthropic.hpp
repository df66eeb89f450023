// anthropic.hpp: Anthropic's Messages API, and the Messages body and answer that Bedrock
// and Vertex AI reuse.
#pragma once

#include "provider.hpp"
#include "stream.hpp"  // make_stream_request: accepting(), with_stream_flag()

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {
/// The Messages API body without "model" (Bedrock and Vertex AI put the model in the URL and
/// their own "anthropic_version" in the body). `provider` names the provider in errors.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<json> anthropic_messages_body(const conversation& c, const params& p,
                                                                          std::int64_t default_max_tokens,
                                                                          std::string_view provider);
/// A Messages API answer (any status) as a completion; errors in Anthropic's shape.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> anthropic_parse_response(const http_response& r);
}  // namespace detail

/// Anthropic's Messages API (api.anthropic.com, or any server that speaks it).
class anthropic : public with_extra_headers {
 public:
  /// `base_url` is the host, as in the official SDKs: the client appends /v1/messages
  /// (a URL that already ends in /v1/messages is taken as it is).
  REQUESTS_ENGINE_INLINE anthropic(const char* api_key, std::string model,
                                   std::string base_url = "https://api.anthropic.com");
  anthropic(const std::string& api_key, std::string model, std::string base_url = "https://api.anthropic.com")
      : anthropic(api_key.c_str(), std::move(model), std::move(base_url)) {}

  /// max_tokens is required by the API: this is sent when params::max_tokens is unset.
  anthropic& default_max_tokens(std::int64_t n) { default_max_tokens_ = n; return *this; }
  /// Sent as `anthropic-version` (the only stable version is 2023-06-01).
  anthropic& version(std::string v) { version_ = std::move(v); return *this; }
  /// Extra `anthropic-beta` features, comma-separated as the API takes them.
  anthropic& beta(std::string features) { beta_ = std::move(features); return *this; }

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request(const std::string& body) const;
  [[nodiscard]] result<completion> parse_response(const http_response& r) const {
    return detail::anthropic_parse_response(r);
  }
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with({api_key_}); }
  /// Streaming: "stream": true; message_start, content blocks, message_delta, message_stop.
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    return detail::accepting(make_request(detail::with_stream_flag(body, false)));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::anthropic_stream(false); }
  /// Anthropic's rule (see detail::anthropic_needs_stream): max_tokens above 21,333 streams.
  [[nodiscard]] bool stream_needed(const std::string& body) const { return detail::anthropic_needs_stream(body, {}); }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }

 private:
  std::string api_key_;
  std::string model_;
  std::string endpoint_;
  std::string version_ = "2023-06-01";
  std::string beta_;
  std::int64_t default_max_tokens_ = 4096;
};

REQUESTS_ENGINE_NAMESPACE_END
