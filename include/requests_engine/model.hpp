// model.hpp: what a user asks and gets back: conversation (messages, content parts),
// params (model, sampling, tools, response format, extra JSON) and completion (text, usage).
#pragma once

#include "errors.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

enum class role { system, user, assistant };
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string_view to_string(role r) noexcept;

/// One piece of a message: text, an image or audio.
struct content_part {
  enum class kind { text, image, audio };
  kind type = kind::text;
  std::string text;        ///< for text
  std::string data;        ///< raw bytes for image / audio (not base64)
  std::string media_type;  ///< "image/png", "image/jpeg", ... for images; "wav", "mp3" (or "audio/wav", ...) for audio
  std::string url;         ///< for an image given by URL instead of bytes

  [[nodiscard]] static content_part from_text(std::string t) {
    content_part p;
    p.text = std::move(t);
    return p;
  }
  [[nodiscard]] static content_part image_bytes(std::string bytes, std::string media) {
    content_part p;
    p.type = kind::image;
    p.data = std::move(bytes);
    p.media_type = std::move(media);
    return p;
  }
  [[nodiscard]] static content_part image_url(std::string u) {
    content_part p;
    p.type = kind::image;
    p.url = std::move(u);
    return p;
  }
  [[nodiscard]] static content_part audio_bytes(std::string bytes, std::string format) {
    content_part p;
    p.type = kind::audio;
    p.data = std::move(bytes);
    p.media_type = std::move(format);
    return p;
  }
};

struct message {
  role author = role::user;
  std::vector<content_part> content;

  /// The concatenated text parts.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string text() const;
};

/// A chat: an optional system prompt and the messages so far. Built fluently:
/// `conversation().system("Be brief").user("Hi")`.
class conversation {
 public:
  conversation& system(std::string prompt) {
    system_ = std::move(prompt);
    return *this;
  }
  conversation& user(std::string text) { return add(role::user, std::move(text)); }
  conversation& assistant(std::string text) { return add(role::assistant, std::move(text)); }
  conversation& add(role r, std::string text) {
    messages_.push_back(message{r, {content_part::from_text(std::move(text))}});
    return *this;
  }
  conversation& add(message m) {
    messages_.push_back(std::move(m));
    return *this;
  }
  /// Prompt caching where the provider must be asked (Claude on Anthropic, Bedrock and Vertex
  /// AI: a `cache_control` breakpoint): the prompt up to what was added last (the system
  /// prompt when no message was added yet, else the last message) is cached by the provider,
  /// and a later request with the same prefix reads it at a tenth of the input price. At most
  /// four per request; a prefix under the model's minimum (1,024 tokens; 2,048 or 4,096 on
  /// some models) is silently not cached. OpenAI and Gemini cache prefixes on their own: it
  /// changes nothing there. Not part of the request hash: stored answers still replay.
  conversation& cache_breakpoint() {
    cache_breakpoints_.push_back(messages_.size());
    return *this;
  }

  [[nodiscard]] const std::optional<std::string>& system() const noexcept { return system_; }
  [[nodiscard]] const std::vector<message>& messages() const noexcept { return messages_; }
  /// Each breakpoint as the number of messages before it (0: the system prompt).
  [[nodiscard]] const std::vector<std::size_t>& cache_breakpoints() const noexcept { return cache_breakpoints_; }

 private:
  std::optional<std::string> system_;
  std::vector<message> messages_;
  std::vector<std::size_t> cache_breakpoints_;
};

/// A function the model may call. `parameters` is a JSON Schema object.
struct tool {
  std::string name;
  std::string description;
  json parameters = json::object();
};

/// A call the model asked for: `arguments` is the JSON text of the arguments.
struct tool_call {
  std::string id;
  std::string name;
  std::string arguments;
};

/// Sampling parameters. Unset ones are not sent, so the provider's defaults apply.
class params {
 public:
  params& model(std::string m) { model_ = std::move(m); return *this; }
  params& temperature(double t) { temperature_ = t; return *this; }
  params& max_tokens(std::int64_t n) { max_tokens_ = n; return *this; }
  params& top_p(double p) { top_p_ = p; return *this; }
  params& stop(std::vector<std::string> s) { stop_ = std::move(s); return *this; }
  params& seed(std::int64_t s) { seed_ = s; return *this; }
  params& n(int count) { n_ = count; return *this; }
  params& n(std::nullopt_t) { n_.reset(); return *this; }
  /// JSON mode: the answer is a JSON object (OpenAI `json_object`, Gemini
  /// `responseMimeType`). Providers without it fail the request before sending.
  params& json_mode(bool on = true) { json_mode_ = on; return *this; }
  /// Structured output: the answer is JSON valid against `schema` (a JSON Schema object).
  /// OpenAI `json_schema` (strict), Gemini `responseJsonSchema`, Anthropic a forced tool
  /// named `name` whose input becomes the completion's text.
  params& json_schema(std::string name, json schema, bool strict = true) {
    schema_ = structured_output{std::move(name), std::move(schema), strict};
    return *this;
  }
  /// Tools the model may call (each provider's own wire shape is built from these).
  params& tools(std::vector<tool> t) { tools_ = std::move(t); return *this; }
  /// "auto", "none", "required" (must call one), or the name of the tool to call.
  params& tool_choice(std::string c) { tool_choice_ = std::move(c); return *this; }
  /// How hard a reasoning model thinks: "minimal", "low", "medium" or "high" (OpenAI Responses
  /// `reasoning.effort`, chat completions `reasoning_effort`). Providers without it fail the
  /// request before sending.
  params& reasoning_effort(std::string effort) { reasoning_effort_ = std::move(effort); return *this; }
  /// How long a prompt-cache breakpoint (conversation::cache_breakpoint) keeps its prefix:
  /// "5m" (the default, writes at 1.25x the input price) or "1h" (writes at 2x).
  params& prompt_cache_ttl(std::string ttl) { prompt_cache_ttl_ = std::move(ttl); return *this; }
  /// Raw JSON merged into the body last (RFC 7386 merge patch: null removes a field).
  params& extra(json patch) { extra_ = std::move(patch); return *this; }

  [[nodiscard]] const std::optional<std::string>& model() const noexcept { return model_; }
  [[nodiscard]] std::optional<double> temperature() const noexcept { return temperature_; }
  [[nodiscard]] std::optional<std::int64_t> max_tokens() const noexcept { return max_tokens_; }
  [[nodiscard]] std::optional<double> top_p() const noexcept { return top_p_; }
  [[nodiscard]] const std::vector<std::string>& stop() const noexcept { return stop_; }
  [[nodiscard]] std::optional<std::int64_t> seed() const noexcept { return seed_; }
  [[nodiscard]] std::optional<int> n() const noexcept { return n_; }
  [[nodiscard]] const json& extra() const noexcept { return extra_; }
  [[nodiscard]] bool json_mode() const noexcept { return json_mode_; }
  struct structured_output {
    std::string name;
    json schema;
    bool strict = true;
  };
  [[nodiscard]] const std::optional<structured_output>& json_schema() const noexcept { return schema_; }
  [[nodiscard]] const std::vector<tool>& tools() const noexcept { return tools_; }
  [[nodiscard]] const std::optional<std::string>& tool_choice() const noexcept { return tool_choice_; }
  [[nodiscard]] const std::optional<std::string>& reasoning_effort() const noexcept { return reasoning_effort_; }
  [[nodiscard]] const std::optional<std::string>& prompt_cache_ttl() const noexcept { return prompt_cache_ttl_; }

 private:
  std::optional<std::string> model_;
  std::optional<double> temperature_;
  std::optional<std::int64_t> max_tokens_;
  std::optional<double> top_p_;
  std::vector<std::string> stop_;
  std::optional<std::int64_t> seed_;
  std::optional<int> n_;
  json extra_;
  bool json_mode_ = false;
  std::optional<structured_output> schema_;
  std::vector<tool> tools_;
  std::optional<std::string> tool_choice_;
  std::optional<std::string> reasoning_effort_;
  std::optional<std::string> prompt_cache_ttl_;
};

struct token_usage {
  std::int64_t input_tokens = 0;         ///< prompt tokens, cached ones included
  std::int64_t output_tokens = 0;        ///< generated tokens
  std::int64_t cached_input_tokens = 0;  ///< the part of input_tokens read from the provider's cache
  std::int64_t cache_write_tokens = 0;   ///< the part of input_tokens written to it (Anthropic)
  std::int64_t cache_write_1h_tokens = 0;  ///< the part of cache_write_tokens kept for an hour (priced at 2x input)
  /// The part of output_tokens the model spent reasoning (billed as output; 0 where the
  /// provider does not report it apart, as Anthropic).
  std::int64_t reasoning_tokens = 0;
  [[nodiscard]] std::int64_t total() const noexcept { return input_tokens + output_tokens; }
  token_usage& operator+=(const token_usage& o) noexcept {
    input_tokens += o.input_tokens;
    output_tokens += o.output_tokens;
    cached_input_tokens += o.cached_input_tokens;
    cache_write_tokens += o.cache_write_tokens;
    cache_write_1h_tokens += o.cache_write_1h_tokens;
    reasoning_tokens += o.reasoning_tokens;
    return *this;
  }
};

/// One generated answer (one choice) of a completion.
struct choice {
  std::string text;
  std::string finish_reason;
  std::vector<tool_call> tool_calls;
};

/// A successful answer.
struct completion {
  std::string text;             ///< the first choice's text
  std::string finish_reason;    ///< the first choice's finish reason, as the provider names it
                                ///< ("stop", "length", "tool_calls"; Anthropic "end_turn", ...)
  std::vector<choice> choices;  ///< all choices (more than one when params::n > 1)
  token_usage usage;
  std::string model;            ///< the model that answered, as the provider reports it
  std::string raw_body;         ///< the provider's whole response, as it came
  /// An embedding provider's answer: the vector (see engine::embed(), which gives it as an embedding).
  std::vector<float> embedding_vector;
  /// The response as JSON (parsed on each call: results stay small until asked).
  [[nodiscard]] json raw() const { return detail::parse_json(raw_body); }
  /// The first choice's tool calls.
  [[nodiscard]] const std::vector<tool_call>& tool_calls() const {
    static const std::vector<tool_call> none;
    return choices.empty() ? none : choices.front().tool_calls;
  }
  std::string request_hash;     ///< SHA-256 of the request's cache identity and body
  bool from_cache = false;
  /// The answer of an identical request in flight at the same time: sent once, paid once.
  bool deduplicated = false;
  int attempts = 0;
  std::chrono::milliseconds latency{0};  ///< from first send to final answer, retries included
  /// A streamed answer: from sending the attempt that answered to its first piece (or to its
  /// end, when no piece came). Unset when the answer was not streamed (or came from the cache).
  std::optional<std::chrono::milliseconds> time_to_first_token;
};

/// One input's embedding (engine::embed(), engine::submit_embed()).
struct embedding {
  std::vector<float> vector;
  [[nodiscard]] std::size_t dimension() const noexcept { return vector.size(); }
  token_usage usage;           ///< this input's share of its HTTP request's tokens
  std::string model;           ///< the model that answered, as the provider reports it
  std::string request_hash;    ///< SHA-256 of the request's cache identity and body (one input)
  bool from_cache = false;
  bool deduplicated = false;   ///< the answer of an identical input in flight at the same time
  int attempts = 0;
  std::chrono::milliseconds latency{0};
};

REQUESTS_ENGINE_NAMESPACE_END
