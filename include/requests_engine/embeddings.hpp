// embeddings.hpp: embedding providers (OpenAI-compatible /v1/embeddings, Gemini
// batchEmbedContents), fed by the collector so that many single inputs share an HTTP request.
#pragma once

#include "provider.hpp"
#include "openai.hpp"     // detail::openai_connection
#include "google.hpp"     // detail::google_error_from_response, detail::check_path_segment
#include "transport.hpp"  // send_batch sends the packed requests itself

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// How OpenAI sends the vectors back: JSON numbers, or base64 of little-endian float32 (a
/// third of the bytes; the OpenAI SDKs ask for it by default).
enum class embedding_encoding { float_array, base64 };

/// OpenAI's embeddings (`POST /v1/embeddings`) and every server that speaks it (vLLM, Ollama,
/// llama.cpp, Together, ...). An input is a conversation of one user message of text (what
/// engine::embed() and engine::submit_embed() build); its answer is a completion whose
/// `embedding_vector` holds the vector.
///
/// Batching is on by default (batching_defaults()): the engine's collector gathers single
/// inputs, and send_batch packs them into HTTP requests of at most max_inputs() inputs (OpenAI:
/// 2,048) and max_request_tokens() estimated tokens (OpenAI: 300,000 summed over the inputs).
/// Each input is still a request of its own for the cache: a rerun sends only the new ones.
class openai_embeddings : public detail::openai_connection {
 public:
  /// `url` is a base URL ending in /v1 (the client appends /embeddings) or the full endpoint.
  /// `api_key` may be null or empty for local servers that take no key.
  REQUESTS_ENGINE_INLINE openai_embeddings(const char* api_key, std::string url, std::string model);
  openai_embeddings(const std::string& api_key, std::string url, std::string model)
      : openai_embeddings(api_key.c_str(), std::move(url), std::move(model)) {}
  /// OPENAI_API_KEY (throws std::invalid_argument naming it when unset); OPENAI_BASE_URL when
  /// set, else https://api.openai.com/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_embeddings openai(std::string model);
  /// Azure OpenAI's embeddings of `deployment` (see azure_openai_settings).
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_embeddings azure(
      std::string deployment, const azure_openai_settings& where = azure_openai_settings::from_environment());

  /// The vectors' length (`dimensions`; text-embedding-3 and later); unset: the model's own.
  /// Throws std::invalid_argument below 1.
  REQUESTS_ENGINE_INLINE openai_embeddings& dimensions(std::int64_t n);
  /// base64 by default.
  openai_embeddings& encoding(embedding_encoding e) { encoding_ = e; return *this; }
  /// The most inputs in one HTTP request (default 2,048, OpenAI's limit; 1 to 2,048).
  REQUESTS_ENGINE_INLINE openai_embeddings& max_inputs(std::size_t n);
  /// The most estimated tokens in one HTTP request (default 300,000, OpenAI's limit).
  REQUESTS_ENGINE_INLINE openai_embeddings& max_request_tokens(std::int64_t n);
  /// The collector's settings when options::batching is unset.
  openai_embeddings& batching(batching_options b) { batching_ = b; return *this; }

  /// {"model","input":text,"encoding_format",["dimensions"]}: one input, as sent alone, and
  /// what is hashed for the cache. The conversation must be one user message of text, not
  /// empty (the API refuses empty inputs); params::model and params::extra (merged in, e.g.
  /// {"user": ...}) apply, sampling params do not.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  /// Reads a one-input answer (data[0]); the vector decoded from floats or base64.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  /// Packs the inputs into `input` arrays, sends them one HTTP request after another, and maps
  /// the answer's data[].index back to each input. The usage covers a whole request: each
  /// input's share is by its length. A request refused with 400 as a whole is split in two and
  /// sent again, so that one bad input fails alone.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<result<std::string>> send_batch(
      const std::vector<batch_request>& batch, batch_context& context) const;
  [[nodiscard]] batching_options batching_defaults() const { return batching_; }
  [[nodiscard]] bool deterministic() const noexcept { return true; }

  [[nodiscard]] std::size_t max_inputs() const noexcept { return max_inputs_; }
  [[nodiscard]] std::int64_t max_request_tokens() const noexcept { return max_request_tokens_; }

 private:
  std::optional<std::int64_t> dimensions_;
  embedding_encoding encoding_ = embedding_encoding::base64;
  std::size_t max_inputs_ = 2048;
  std::int64_t max_request_tokens_ = 300000;
  // Wide batches, a short wait, a few HTTP requests in flight at once.
  batching_options batching_ = batching_options().max_size(2048).max_wait(std::chrono::milliseconds(50)).concurrent(4);
  explicit openai_embeddings(detail::openai_connection c) : openai_connection(std::move(c)) {}
};

/// The Gemini API's embeddings (`models/{model}:batchEmbedContents`, at most 100 inputs per
/// call), with an API key in the x-goog-api-key header. Fed by the collector only (every input
/// goes through batchEmbedContents, a batch of one if need be). The API reports no token
/// counts: each input's usage is estimated (4 bytes a token) for the price.
class gemini_embeddings : public with_extra_headers {
 public:
  /// `base_url` is the host, as in Google's SDKs.
  REQUESTS_ENGINE_INLINE gemini_embeddings(const char* api_key, std::string model,
                                           std::string base_url = "https://generativelanguage.googleapis.com");
  gemini_embeddings(const std::string& api_key, std::string model,
                    std::string base_url = "https://generativelanguage.googleapis.com")
      : gemini_embeddings(api_key.c_str(), std::move(model), std::move(base_url)) {}
  /// The key from GEMINI_API_KEY (or GOOGLE_API_KEY); throws std::invalid_argument if neither is set.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE gemini_embeddings from_environment(
      std::string model, std::string base_url = "https://generativelanguage.googleapis.com");

  /// `outputDimensionality`; throws std::invalid_argument below 1.
  REQUESTS_ENGINE_INLINE gemini_embeddings& dimensions(std::int64_t n);
  /// `taskType`: "RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY", ...
  gemini_embeddings& task_type(std::string t) { task_type_ = std::move(t); return *this; }
  /// The most inputs in one call (default 100, Gemini's limit; 1 to 100).
  REQUESTS_ENGINE_INLINE gemini_embeddings& max_inputs(std::size_t n);
  gemini_embeddings& batching(batching_options b) { batching_ = b; return *this; }

  /// One EmbedContentRequest without its model: {"content":{"parts":[{"text"}]},["taskType"],
  /// ["outputDimensionality"]} (the model is in the cache identity).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  /// Reads one input's stored answer: {"embedding":{"values"}} and our token estimate.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with({api_key_}); }
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<result<std::string>> send_batch(
      const std::vector<batch_request>& batch, batch_context& context) const;
  [[nodiscard]] batching_options batching_defaults() const { return batching_; }
  [[nodiscard]] bool deterministic() const noexcept { return true; }

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }

 private:
  std::string api_key_;
  std::string model_;
  std::string endpoint_;  // .../v1beta/models/{model}:batchEmbedContents
  std::optional<std::int64_t> dimensions_;
  std::string task_type_;
  std::size_t max_inputs_ = 100;
  batching_options batching_ = batching_options().max_size(100).max_wait(std::chrono::milliseconds(50)).concurrent(4);
};

REQUESTS_ENGINE_NAMESPACE_END
