// openai.hpp: OpenAI chat completions (and every server that speaks it: vLLM, Ollama,
// llama.cpp, Groq, Together, Cerebras) and the legacy completions API.
#pragma once

#include "provider.hpp"
#include "transport.hpp"  // openai_completions sends prompt arrays itself

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {
/// `url` as an OpenAI endpoint: a base URL (".../v1") gets `suffix` ("/chat/completions",
/// "/responses") appended, as the official SDKs do; a URL that already ends in it is kept.
/// Throws std::invalid_argument on a malformed URL.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string openai_endpoint(std::string url, std::string_view suffix);

/// What every OpenAI provider (chat, legacy completions, Responses, embeddings) holds and
/// sends alike: the key, the endpoint, the model, and a POST with `Authorization: Bearer`.
class openai_connection {
 public:
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request(const std::string& body) const;
  [[nodiscard]] std::vector<std::string> secrets() const { return {api_key_}; }
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }

 protected:
  /// `url` as openai_endpoint() makes it; `api_key` may be null or empty (no Authorization).
  REQUESTS_ENGINE_INLINE openai_connection(const char* api_key, std::string url, std::string_view suffix,
                                           std::string model);
  std::string api_key_;
  std::string endpoint_;
  std::string model_;
};
}  // namespace detail

/// OpenAI chat completions, and every server that speaks it (vLLM, Ollama, llama.cpp server,
/// Groq, Together, Cerebras, ...).
class openai_compatible : public detail::openai_connection {
 public:
  /// `url` is a base URL ending in /v1 (the client appends /chat/completions, as the official
  /// SDKs do) or the full endpoint ending in /chat/completions. `api_key` may be null or
  /// empty for local servers that take no key.
  REQUESTS_ENGINE_INLINE openai_compatible(const char* api_key, std::string url, std::string model);
  openai_compatible(const std::string& api_key, std::string url, std::string model)
      : openai_compatible(api_key.c_str(), std::move(url), std::move(model)) {}

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c,
                                                              const params& p) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(
      const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  /// Streaming: the body with "stream": true and stream_options.include_usage (so the last
  /// event carries the usage), answered as chat.completion.chunk events and `data: [DONE]`.
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    return detail::accepting(make_request(detail::with_stream_flag(body, true)));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::openai_chat_stream(); }
  /// One single-choice response per choice: the prompt tokens go to the first, the
  /// completion tokens are shared out evenly (the remainder to the first).
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::string> split_choices(const std::string& body) const;

  /// Presets, a base URL and a key variable away. The hosted ones throw std::invalid_argument
  /// naming the variable when it is unset; the local servers take a key only if one is set.
  /// OPENAI_API_KEY; OPENAI_BASE_URL when set, else https://api.openai.com/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible openai(std::string model);
  /// GROQ_API_KEY; https://api.groq.com/openai/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible groq(std::string model);
  /// TOGETHER_API_KEY; https://api.together.xyz/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible together(std::string model);
  /// CEREBRAS_API_KEY; https://api.cerebras.ai/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible cerebras(std::string model);
  /// A local vLLM server (`vllm serve`); VLLM_API_KEY if the server was started with --api-key.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible vllm(std::string model,
                                                                     std::string base_url = "http://127.0.0.1:8000/v1");
  /// A local Ollama server (its OpenAI-compatible endpoint); no key.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible ollama(std::string model,
                                                                       std::string base_url = "http://127.0.0.1:11434/v1");
  /// A llama.cpp server (`llama-server`, which serves the one model it loaded, whatever the
  /// name); LLAMA_API_KEY if it was started with --api-key.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible llama_cpp(
      std::string model = "default", std::string base_url = "http://127.0.0.1:8080/v1");
};

/// OpenAI's legacy text completions (`POST /v1/completions` with a `prompt`), which vLLM,
/// llama.cpp and others also serve, for base models that take raw text. The conversation must
/// be one user message of text: it is the prompt, sent as it is.
class openai_completions : public detail::openai_connection {
 public:
  /// `url` is a base URL ending in /v1 (the client appends /completions) or the full endpoint.
  REQUESTS_ENGINE_INLINE openai_completions(const char* api_key, std::string url, std::string model);
  openai_completions(const std::string& api_key, std::string url, std::string model)
      : openai_completions(api_key.c_str(), std::move(url), std::move(model)) {}

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  /// Streaming: "stream": true with stream_options.include_usage; text_completion chunks.
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    return detail::accepting(make_request(detail::with_stream_flag(body, true)));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const {
    return detail::openai_completions_stream();
  }
  /// One single-choice response per choice (params::n), usage shared out as openai_compatible does.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::string> split_choices(const std::string& body) const;
  /// With options::batching set: many requests in one HTTP request, `prompt` as an array
  /// (vLLM, llama.cpp server and OpenAI take it). Requests that differ in more than their
  /// prompt go in separate HTTP requests. The answer's choices[].index (prompt * n + k) maps
  /// each choice back to its prompt; the usage, which covers the whole array, is shared out
  /// by the length of each prompt and of its answers.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<result<std::string>> send_batch(
      const std::vector<batch_request>& batch, batch_context& context) const;
};

/// OpenAI's Responses API (`POST /v1/responses`), the only way to some models (o1-pro,
/// o3-pro, gpt-5-pro, the codex models). One answer per request (no params::n, stop or seed);
/// nothing is stored on OpenAI's side (`store: false`, params::extra may say otherwise).
class openai_responses : public detail::openai_connection {
 public:
  /// `url` is a base URL ending in /v1 (the client appends /responses) or the full endpoint.
  REQUESTS_ENGINE_INLINE openai_responses(const char* api_key, std::string url, std::string model);
  openai_responses(const std::string& api_key, std::string url, std::string model)
      : openai_responses(api_key.c_str(), std::move(url), std::move(model)) {}

  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  /// finish_reason: "stop", "tool_calls", "refusal", or for an incomplete response its reason
  /// ("max_output_tokens", "content_filter"); a response of status "failed" is an error.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json cache_identity() const;
  /// Streaming: "stream": true; typed events, the last (response.completed or
  /// response.incomplete) carrying the whole response.
  [[nodiscard]] http_request make_stream_request(const std::string& body) const {
    return detail::accepting(make_request(detail::with_stream_flag(body, false)));
  }
  [[nodiscard]] std::unique_ptr<stream_decoder> make_stream_decoder() const { return detail::openai_responses_stream(); }

  /// OPENAI_API_KEY (std::invalid_argument naming it when unset); OPENAI_BASE_URL when set,
  /// else https://api.openai.com/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_responses openai(std::string model);
};

REQUESTS_ENGINE_NAMESPACE_END
