// openai.hpp: OpenAI chat completions (and every server that speaks it: vLLM, Ollama,
// llama.cpp, Groq, Together, Cerebras) and the legacy completions API.
#pragma once

#include "provider.hpp"
#include "transport.hpp"  // openai_completions sends prompt arrays itself

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// A hosted OpenAI-compatible API with a preset (openai_compatible::NAME, `--provider NAME`):
/// its documented base URL and the environment variable that holds its key.
struct openai_host {
  const char* name;
  const char* base_url;
  const char* key_variable;
};
/// openrouter, mistral, deepseek, xai, fireworks, groq, together, cerebras.
[[nodiscard]] REQUESTS_ENGINE_INLINE const std::vector<openai_host>& openai_hosts();

/// Where an Azure OpenAI resource is and how to sign in to it. Azure addresses a deployment
/// (the name given to a model when deploying it) rather than a model, and has two URL schemes:
/// the v1 API (`{endpoint}/openai/v1/chat/completions`, the deployment name as the body's
/// "model", no api-version) and the classic deployment routes
/// (`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`).
struct azure_openai_settings {
  /// `https://{resource}.openai.azure.com` (or any host that serves Azure's routes: a gateway,
  /// the mock); one ending in /openai/v1 is taken as the v1 API's base.
  std::string endpoint;
  /// Sent as the `api-key` header.
  std::string api_key;
  /// A Microsoft Entra ID token, sent as `Authorization: Bearer`, used when api_key is empty
  /// (Azure takes one or the other, never both).
  std::string ad_token;
  /// Empty: the v1 API. Set ("2024-10-21", the latest GA one): the classic deployment routes,
  /// with this api-version on every request.
  std::string api_version;

  /// As the official SDK reads them: AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY (else
  /// AZURE_OPENAI_AD_TOKEN) and OPENAI_API_VERSION (when set: the classic routes). Throws
  /// std::invalid_argument naming the variable that is missing.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE azure_openai_settings from_environment();
  /// The URL of `api` ("chat/completions", "responses", "embeddings", "completions") for
  /// `deployment`; the classic Responses route is the resource's, not the deployment's.
  /// Throws std::invalid_argument on a malformed endpoint or deployment name.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string url(std::string_view api, const std::string& deployment) const;
};

namespace detail {
/// `url` as an OpenAI endpoint: a base URL (".../v1") gets `suffix` ("/chat/completions",
/// "/responses") appended, as the official SDKs do; a URL that already ends in it is kept.
/// Throws std::invalid_argument on a malformed URL.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string openai_endpoint(std::string url, std::string_view suffix);

/// How an OpenAI-shaped API takes its key.
enum class openai_auth { bearer, api_key_header };

/// What every OpenAI provider (chat, legacy completions, Responses, embeddings) holds and
/// sends alike: the key, the endpoint, the model, and a POST with `Authorization: Bearer`
/// (Azure: `api-key`).
class openai_connection : public with_extra_headers {
 public:
  /// An endpoint taken as it is (Azure's, built by azure_openai_settings::url).
  REQUESTS_ENGINE_INLINE openai_connection(openai_auth auth, std::string key, std::string endpoint, std::string model);
  /// Azure's: the settings' key (api-key) or Entra token (bearer), and the deployment's URL.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_connection azure(const azure_openai_settings& where,
                                                                      std::string_view api, std::string deployment);
  [[nodiscard]] REQUESTS_ENGINE_INLINE http_request make_request(const std::string& body) const;
  [[nodiscard]] std::vector<std::string> secrets() const { return secrets_with({api_key_}); }
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& model() const noexcept { return model_; }
  /// Made by azure(): Azure OpenAI's routes (the batch client speaks Azure's Batch API then).
  [[nodiscard]] bool is_azure() const noexcept { return azure_; }

 protected:
  /// `url` as openai_endpoint() makes it; `api_key` may be null or empty (no Authorization).
  REQUESTS_ENGINE_INLINE openai_connection(const char* api_key, std::string url, std::string_view suffix,
                                           std::string model);
  std::string api_key_;
  std::string endpoint_;
  std::string model_;
  openai_auth auth_ = openai_auth::bearer;
  bool azure_ = false;
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
  /// OPENROUTER_API_KEY; https://openrouter.ai/api/v1. `app_url` and `app_title`, when given,
  /// go out as OpenRouter's attribution headers (HTTP-Referer, X-Title).
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible openrouter(std::string model, std::string app_url = {},
                                                                           std::string app_title = {});
  /// MISTRAL_API_KEY; https://api.mistral.ai/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible mistral(std::string model);
  /// DEEPSEEK_API_KEY; https://api.deepseek.com/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible deepseek(std::string model);
  /// XAI_API_KEY; https://api.x.ai/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible xai(std::string model);
  /// FIREWORKS_API_KEY; https://api.fireworks.ai/inference/v1.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible fireworks(std::string model);
  /// Azure OpenAI: chat completions of `deployment` (see azure_openai_settings), the key in
  /// `api-key`. Throws std::invalid_argument naming what is missing.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_compatible azure(
      std::string deployment, const azure_openai_settings& where = azure_openai_settings::from_environment());

 private:
  explicit openai_compatible(detail::openai_connection c) : openai_connection(std::move(c)) {}
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
  /// Azure OpenAI's Responses API for `deployment` (v1: /openai/v1/responses; classic:
  /// /openai/responses?api-version=..., which needs 2025-04-01-preview or later).
  [[nodiscard]] static REQUESTS_ENGINE_INLINE openai_responses azure(
      std::string deployment, const azure_openai_settings& where = azure_openai_settings::from_environment());

 private:
  explicit openai_responses(detail::openai_connection c) : openai_connection(std::move(c)) {}
};

namespace detail {

// A strict JSON reader for the answers' hot path (a template, so declared here: the compiled
// mode's users, the tests among them, instantiate it themselves), feeding the same SAX events as
// json::sax_parse, several times faster than nlohmann's lexer. It accepts only well-formed
// JSON (RFC 8259, UTF-8 checked); false means "not handled here", and the caller parses again
// with nlohmann's parser, which then also gives the error message. So it may refuse what it
// does not care to handle (integers beyond 64 bits), but never accepts what nlohmann rejects.
template <class Sax>
class fast_json_reader {
 public:
  fast_json_reader(std::string_view text, Sax& sax) : p_(text.data()), end_(text.data() + text.size()), sax_(sax) {}
  bool parse() {
    skip_ws();
    if (!value(0)) return false;
    skip_ws();
    return p_ == end_;
  }

 private:
  using string_t = typename Sax::string_t;
  static constexpr int max_depth = 512;
  const char* p_;
  const char* end_;
  Sax& sax_;
  string_t buf_;

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }
  bool value(int depth) {
    if (p_ >= end_ || depth > max_depth) return false;
    switch (*p_) {
      case '{': return container(true, depth + 1);
      case '[': return container(false, depth + 1);
      case '"':
        if (!string()) return false;
        return sax_.string(buf_);
      case 't': return literal("true") && sax_.boolean(true);
      case 'f': return literal("false") && sax_.boolean(false);
      case 'n': return literal("null") && sax_.null();
      default: return number();
    }
  }
  // An object (members: key, colon, value) or an array (values), separated by commas.
  bool container(bool is_object, int depth) {
    ++p_;
    const char close = is_object ? '}' : ']';
    const auto unknown_size = static_cast<std::size_t>(-1);
    if (!(is_object ? sax_.start_object(unknown_size) : sax_.start_array(unknown_size))) return false;
    skip_ws();
    bool first = true;
    for (;;) {
      if (first && p_ < end_ && *p_ == close) break;
      first = false;
      if (is_object) {
        if (p_ >= end_ || *p_ != '"' || !string() || !sax_.key(buf_)) return false;
        skip_ws();
        if (p_ >= end_ || *p_ != ':') return false;
        ++p_;
        skip_ws();
      }
      if (!value(depth)) return false;
      skip_ws();
      if (p_ >= end_) return false;
      if (*p_ == close) break;
      if (*p_ != ',') return false;
      ++p_;
      skip_ws();
    }
    ++p_;
    return is_object ? sax_.end_object() : sax_.end_array();
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& v) {
    if (end_ - p_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex(p_[i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<unsigned>(h);
    }
    p_ += 4;
    return true;
  }
  void put_utf8(unsigned cp) {
    if (cp < 0x80) {
      buf_.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      buf_.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      buf_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      buf_.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      buf_.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      buf_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      buf_.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      buf_.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      buf_.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      buf_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // One UTF-8 sequence at p_ (its first byte >= 0x80), checked as RFC 3629 defines it.
  bool utf8_sequence() {
    const auto b = [&](std::ptrdiff_t i) { return static_cast<unsigned char>(p_[i]); };
    const unsigned char c = b(0);
    std::ptrdiff_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (end_ - p_ < len || b(1) < lo || b(1) > hi) return false;
    for (std::ptrdiff_t i = 2; i < len; ++i)
      if (b(i) < 0x80 || b(i) > 0xBF) return false;
    p_ += len;
    return true;
  }
  // The string at p_ (its opening quote) into buf_.
  bool string() {
    ++p_;
    buf_.clear();
    for (;;) {
      const char* run = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20 &&
             static_cast<unsigned char>(*p_) < 0x80)
        ++p_;
      buf_.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ >= end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // a raw control character
      if (c >= 0x80) {
        const char* start = p_;
        if (!utf8_sequence()) return false;
        buf_.append(start, static_cast<std::size_t>(p_ - start));
        continue;
      }
      // A backslash.
      if (++p_ >= end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"': buf_.push_back('"'); break;
        case '\\': buf_.push_back('\\'); break;
        case '/': buf_.push_back('/'); break;
        case 'b': buf_.push_back('\b'); break;
        case 'f': buf_.push_back('\f'); break;
        case 'n': buf_.push_back('\n'); break;
        case 'r': buf_.push_back('\r'); break;
        case 't': buf_.push_back('\t'); break;
        case 'u': {
          unsigned cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          put_utf8(cp);
          break;
        }
        default: return false;
      }
    }
  }
  bool number() {
    const char* start = p_;
    const bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') return false;
    std::uint64_t v = 0;
    bool overflow = false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        const auto d = static_cast<std::uint64_t>(*p_ - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
        v = v * 10 + d;
        ++p_;
      }
    }
    bool is_float = false;
    if (p_ < end_ && *p_ == '.') {
      is_float = true;
      ++p_;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_float = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (is_float) {
      buf_.assign(start, static_cast<std::size_t>(p_ - start));
      const double d = std::strtod(buf_.c_str(), nullptr);
      if (!std::isfinite(d)) return false;  // nlohmann refuses a number that overflows
      return sax_.number_float(d, buf_);
    }
    if (overflow) return false;  // nlohmann makes it a float: let it
    if (!negative) return sax_.number_unsigned(v);
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1) return false;
    return sax_.number_integer(v == static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1
                                   ? std::numeric_limits<std::int64_t>::min()
                                   : -static_cast<std::int64_t>(v));
  }
};

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
