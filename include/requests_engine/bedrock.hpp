// bedrock.hpp: AWS credentials, Signature Version 4 (re-signed on every attempt) and
// Anthropic models on Bedrock over InvokeModel.
#pragma once

#include "anthropic.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// AWS credentials. The secret key and the session token are secrets: they never reach errors,
/// logs or the cache (the providers list them in secrets()).
struct aws_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< empty for long-term keys; set for temporary (STS, SSO) ones

  /// From AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the optional AWS_SESSION_TOKEN; throws
  /// std::invalid_argument naming the variable that is missing.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE aws_credentials from_environment();
};

/// AWS_REGION, else AWS_DEFAULT_REGION (as the AWS SDKs read them); empty when neither is set.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string aws_region_from_environment();

namespace detail {

/// What AWS Signature Version 4 signs.
struct sigv4_input {
  std::string method = "POST";
  std::string path = "/";  ///< as on the wire (already percent-encoded as sent), no query
  std::string query;       ///< as on the wire, without the '?'
  header_list headers;     ///< the headers to sign, host included; duplicates allowed
  std::string body;
  aws_credentials credentials;
  std::string region;
  std::string service;
  std::string timestamp;         ///< YYYYMMDDTHHMMSSZ (UTC)
  bool normalize_path = true;    ///< every service but S3: remove dot segments and empty segments
  bool sign_body = false;        ///< add and sign x-amz-content-sha256 (S3 and a few others)
  bool sign_session_token = true;  ///< false: X-Amz-Security-Token is added after signing (IoT)
};

/// A SigV4 signature and the steps that led to it (the steps are what tests compare).
struct sigv4_output {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      ///< lower-case hex
  std::string authorization;  ///< the Authorization header's value
  /// Headers the request must carry besides Authorization, in this order: X-Amz-Security-Token
  /// (with a session token), X-Amz-Date, x-amz-content-sha256 (with sign_body).
  header_list added_headers;
};

/// Signs with the Authorization header. The headers it adds replace any of the same name
/// given in `in.headers`, so a received request can be verified by signing it again.
[[nodiscard]] REQUESTS_ENGINE_INLINE sigv4_output sigv4_sign(const sigv4_input& in);
/// `t` as SigV4's YYYYMMDDTHHMMSSZ.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string sigv4_timestamp(std::chrono::system_clock::time_point t);
/// Percent-encodes every byte but A-Z a-z 0-9 - _ . ~ (and '/' unless `encode_slash`), as AWS does.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string aws_uri_encode(std::string_view s, bool encode_slash);
/// HMAC-SHA256 of `data` under `key`, as raw bytes.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace detail

/// Anthropic models on AWS Bedrock (InvokeModel), signed with SigV4 (service "bedrock").
class bedrock_anthropic : public with_extra_headers {
 public:
  /// `model_id` as Bedrock names it ("anthropic.claude-3-5-sonnet-20240620-v1:0", an inference
  /// profile id or ARN). `base_url` defaults to https://bedrock-runtime.{region}.amazonaws.com;
  /// another one (a gateway, a test server) gets /model/{model_id}/invoke appended as well.
  /// Throws std::invalid_argument on empty credentials, region or model, or a malformed URL.
  REQUESTS_ENGINE_INLINE bedrock_anthropic(aws_credentials credentials, std::string region, std::string model_id,
                                           std::string base_url = "");
  /// Credentials and region from the environment (see aws_credentials::from_environment and
  /// aws_region_from_environment); throws std::invalid_argument naming what is missing.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE bedrock_anthropic from_environment(std::string model_id,
                                                                                std::string base_url = "");

  /// max_tokens is required by the API: this is sent when params::max_tokens is unset.
  bedrock_anthropic& default_max_tokens(std::int64_t n) { default_max_tokens_ = n; return *this; }
  /// Sent in the body as "anthropic_version".
  bedrock_anthropic& version(std::string v) { version_ = std::move(v); return *this; }

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  /// Signed with the current time: the engine calls it before every attempt.
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request(const std::string& body) const;
  /// make_request signed at `timestamp` (YYYYMMDDTHHMMSSZ): for tests against known signatures.
  /// `stream`: the InvokeModelWithResponseStream request (/invoke-with-response-stream).
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request_at(const std::string& body,
                                                                    const std::string& timestamp,
                                                                    bool stream = false) const;
  /// Streaming: POST /model/{id}/invoke-with-response-stream, answered in AWS's event-stream
  /// framing, each `chunk` event holding one Anthropic stream event (base64).
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    return make_request_at(body, detail::sigv4_timestamp(std::chrono::system_clock::now()), true);
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::anthropic_stream(true); }
  [[nodiscard]] bool stream_needed(const std::string& body) const {
    return detail::anthropic_needs_stream(body, model_id_);
  }
  /// Messages API answers; errors in Bedrock's shape ({"message"} and the x-amzn-ErrorType header).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const {
    return secrets_with({credentials_.secret_access_key, credentials_.session_token});
  }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_id_; }
  [[nodiscard]] const std::string& region() const noexcept { return region_; }

 private:
  aws_credentials credentials_;
  std::string region_;
  std::string model_id_;
  std::string endpoint_;     // the full InvokeModel URL
  std::string host_header_;  // signed, so it must be exactly what the transport sends
  std::string wire_path_;    // the endpoint's path, model id percent-encoded
  std::string version_ = "bedrock-2023-05-31";
  std::int64_t default_max_tokens_ = 4096;
};

REQUESTS_ENGINE_NAMESPACE_END
