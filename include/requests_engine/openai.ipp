// openai.ipp: the definitions of openai.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "openai.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

// OpenAI's input_audio takes a format ("wav", "mp3"), not a media type. content_part takes
// either (Gemini needs the media type), so the same part must give a valid body here too.
inline std::string openai_audio_format(std::string media) {
  std::transform(media.begin(), media.end(), media.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const std::string prefix = "audio/";
  if (media.compare(0, prefix.size(), prefix) == 0) media.erase(0, prefix.size());
  if (media == "mpeg" || media == "mpeg3" || media == "x-mpeg-3" || media == "mp3") return "mp3";
  if (media == "wave" || media == "x-wav" || media == "vnd.wave") return "wav";
  return media;
}

REQUESTS_ENGINE_INLINE std::string openai_endpoint(std::string url, std::string_view suffix) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() < suffix.size() || url.compare(url.size() - suffix.size(), suffix.size(), suffix) != 0)
    url += suffix;
  (void)parse_url(url);  // throws std::invalid_argument on a malformed URL
  return url;
}

REQUESTS_ENGINE_INLINE openai_connection::openai_connection(const char* api_key, std::string url,
                                                            std::string_view suffix, std::string model)
    : api_key_(api_key ? api_key : ""), endpoint_(openai_endpoint(std::move(url), suffix)), model_(std::move(model)) {}

REQUESTS_ENGINE_INLINE openai_connection::openai_connection(openai_auth auth, std::string key, std::string endpoint,
                                                            std::string model)
    : api_key_(std::move(key)), endpoint_(std::move(endpoint)), model_(std::move(model)), auth_(auth) {
  (void)parse_url(endpoint_);  // throws std::invalid_argument on a malformed URL
}

REQUESTS_ENGINE_INLINE openai_connection openai_connection::azure(const azure_openai_settings& where,
                                                                  std::string_view api, std::string deployment) {
  std::string url = where.url(api, deployment);
  openai_connection c = !where.api_key.empty()
                            ? openai_connection(openai_auth::api_key_header, where.api_key, url, deployment)
                            : openai_connection(openai_auth::bearer, where.ad_token, url, deployment);
  c.azure_ = true;
  return c;
}

REQUESTS_ENGINE_INLINE http_request openai_connection::make_request(const std::string& body) const {
  http_request r;
  r.url = endpoint_;
  r.body = body;
  if (!api_key_.empty()) {
    if (auth_ == openai_auth::api_key_header)
      r.headers.emplace_back("api-key", api_key_);
    else
      r.headers.emplace_back("Authorization", "Bearer " + api_key_);
  }
  r.headers.emplace_back("Accept", "application/json");
  headers_.apply_to(r.headers);
  return r;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE openai_compatible::openai_compatible(const char* api_key, std::string url,
                                                            std::string model)
    : openai_connection(api_key, std::move(url), "/chat/completions", std::move(model)) {}

REQUESTS_ENGINE_INLINE result<json> openai_compatible::make_body(const conversation& c,
                                                                 const params& p) const {
  json body = json::object();
  body["model"] = p.model() ? *p.model() : model_;
  if (body["model"].get_ref<const std::string&>().empty())
    return error{error_code::invalid_request, 0, "no model: set it on the provider or in params::model", {}, 0, {}};
  json messages = json::array();
  if (c.system()) messages.push_back({{"role", "system"}, {"content", *c.system()}});
  for (std::size_t i = 0; i < c.messages().size(); ++i) {
    const message& m = c.messages()[i];
    json msg = {{"role", std::string(to_string(m.author))}};
    if (m.content.size() == 1 && m.content[0].type == content_part::kind::text) {
      msg["content"] = m.content[0].text;
    } else {
      json parts = json::array();
      for (const auto& part : m.content) {
        switch (part.type) {
          case content_part::kind::text:
            parts.push_back({{"type", "text"}, {"text", part.text}});
            break;
          case content_part::kind::image: {
            std::string u = !part.url.empty()
                                ? part.url
                                : "data:" + part.media_type + ";base64," + detail::base64_encode(part.data);
            parts.push_back({{"type", "image_url"}, {"image_url", {{"url", u}}}});
            break;
          }
          case content_part::kind::audio:
            if (part.data.empty())
              return error{error_code::invalid_request, 0,
                           "message " + std::to_string(i) + ": audio must be given as bytes for openai_compatible",
                           {}, 0, {}};
            parts.push_back({{"type", "input_audio"},
                             {"input_audio",
                              {{"data", detail::base64_encode(part.data)},
                               {"format", detail::openai_audio_format(part.media_type)}}}});
            break;
        }
      }
      msg["content"] = std::move(parts);
    }
    messages.push_back(std::move(msg));
  }
  if (messages.empty())
    return error{error_code::invalid_request, 0, "the conversation has no messages", {}, 0, {}};
  body["messages"] = std::move(messages);
  if (p.temperature()) body["temperature"] = *p.temperature();
  if (p.max_tokens()) body["max_tokens"] = *p.max_tokens();
  if (p.top_p()) body["top_p"] = *p.top_p();
  if (!p.stop().empty()) body["stop"] = p.stop();
  if (p.seed()) body["seed"] = *p.seed();
  if (p.n()) body["n"] = *p.n();
  if (p.reasoning_effort()) body["reasoning_effort"] = *p.reasoning_effort();
  if (p.json_schema()) {
    body["response_format"] = {{"type", "json_schema"},
                               {"json_schema",
                                {{"name", p.json_schema()->name},
                                 {"schema", p.json_schema()->schema},
                                 {"strict", p.json_schema()->strict}}}};
  } else if (p.json_mode()) {
    body["response_format"] = {{"type", "json_object"}};
  }
  if (!p.tools().empty()) {
    json tools = json::array();
    for (const tool& t : p.tools()) {
      json fn = {{"name", t.name}, {"parameters", t.parameters}};
      if (!t.description.empty()) fn["description"] = t.description;
      tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
    }
    body["tools"] = std::move(tools);
  }
  if (const auto& tc = p.tool_choice()) {
    if (*tc == "auto" || *tc == "none" || *tc == "required")
      body["tool_choice"] = *tc;
    else
      body["tool_choice"] = {{"type", "function"}, {"function", {{"name", *tc}}}};
  }
  return detail::with_extra(std::move(body), p);
}

namespace detail {

// Reads an OpenAI chat completion without building a JSON tree (the hot path of every answer
// and every cache hit): the fields a completion needs are picked up as the parser meets them.
class openai_chat_reader final : public nlohmann::json_sax<json> {
 public:
  completion out;
  std::string problem;  // empty when the shape is right

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t v) override { return integer(json_count(v)); }
  bool number_unsigned(number_unsigned_t v) override { return integer(json_count(v)); }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool string(string_t& v) override {
    if (at({"model"})) {
      out.model = std::move(v);
    } else if (in_choice(2) && frames_[2].key == "finish_reason") {
      out.choices.back().finish_reason = std::move(v);
    } else if (in_choice(3) && frames_[2].key == "message" && frames_[3].key == "content") {
      out.choices.back().text = std::move(v);
    } else if (in_tool_call(6) && frames_[5].key == "function") {
      if (frames_[6].key == "name") out.choices.back().tool_calls.back().name = std::move(v);
      if (frames_[6].key == "arguments") out.choices.back().tool_calls.back().arguments = std::move(v);
    } else if (in_tool_call(5) && frames_[5].key == "id") {
      out.choices.back().tool_calls.back().id = std::move(v);
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (frames_.empty()) {
      root_object_ = true;
    } else if (frames_.size() == 2 && frames_[0].key == "choices" && frames_[1].array) {
      out.choices.emplace_back();
      has_message_.push_back(false);
    } else if (in_choice(2) && frames_[2].key == "message") {
      has_message_.back() = true;
    } else if (in_choice(4) && frames_[2].key == "message" && frames_[3].key == "tool_calls" && frames_[4].array) {
      out.choices.back().tool_calls.emplace_back();
    }
    frames_.push_back(frame{false, {}});
    return true;
  }
  bool key(string_t& k) override {
    frames_.back().key = std::move(k);
    return true;
  }
  bool end_object() override {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (at({"choices"})) saw_choices_ = true;
    frames_.push_back(frame{true, {}});
    return true;
  }
  bool end_array() override {
    frames_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  /// After a successful parse: the shape's verdict.
  bool check() {
    if (!root_object_) problem = "the response is not a JSON object";
    else if (!saw_choices_ || out.choices.empty()) problem = "the response has no choices";
    else if (std::find(has_message_.begin(), has_message_.end(), false) != has_message_.end())
      problem = "a choice has no message";
    return problem.empty();
  }

 private:
  struct frame {
    bool array;
    std::string key;
  };
  // The path is exactly these keys, from the root object.
  bool at(std::initializer_list<const char*> keys) const {
    if (frames_.size() != keys.size()) return false;
    std::size_t i = 0;
    for (const char* k : keys)
      if (frames_[i].array || frames_[i++].key != k) return false;
    return true;
  }
  // Inside choices[i].message.tool_calls[k], `depth` frames deep from the root.
  bool in_tool_call(std::size_t depth) const {
    return in_choice(depth) && frames_[2].key == "message" && frames_[3].key == "tool_calls" && frames_[4].array &&
           !out.choices.back().tool_calls.empty();
  }
  // Inside choices[i], `depth` frames deep from the root.
  bool in_choice(std::size_t depth) const {
    return frames_.size() == depth + 1 && frames_[0].key == "choices" && frames_[1].array && !out.choices.empty();
  }
  bool integer(std::int64_t v) {
    if (frames_.size() == 2 && frames_[0].key == "usage" && !frames_[1].array) {
      if (frames_[1].key == "prompt_tokens") out.usage.input_tokens = v;
      if (frames_[1].key == "completion_tokens") out.usage.output_tokens = v;
    } else if (frames_.size() == 3 && frames_[0].key == "usage" && frames_[1].key == "prompt_tokens_details" &&
               frames_[2].key == "cached_tokens") {
      out.usage.cached_input_tokens = v;
    } else if (frames_.size() == 3 && frames_[0].key == "usage" && frames_[1].key == "completion_tokens_details" &&
               frames_[2].key == "reasoning_tokens") {
      out.usage.reasoning_tokens = v;  // already inside completion_tokens
    }
    return true;
  }
  std::vector<frame> frames_;
  std::vector<bool> has_message_;
  bool root_object_ = false;
  bool saw_choices_ = false;
};

}  // namespace detail

REQUESTS_ENGINE_INLINE result<completion> openai_compatible::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status,
                 why + " (body starts: " + r.body.substr(0, 120) + ")", {}, 0, {}};
  };
  detail::openai_chat_reader fast;
  std::optional<detail::openai_chat_reader> slow;  // nlohmann's parser, where the fast one declines
  if (!detail::fast_json_reader<detail::openai_chat_reader>(r.body, fast).parse()) {
    slow.emplace();
    if (!json::sax_parse(r.body, &*slow)) return bad("the response is not JSON");
  }
  detail::openai_chat_reader& reader = slow ? *slow : fast;
  if (!reader.check()) return bad(reader.problem);
  completion c = std::move(reader.out);
  c.text = c.choices.front().text;
  c.finish_reason = c.choices.front().finish_reason;
  c.raw_body = r.body;
  return c;
}

namespace detail {

// Chat and legacy completions answers alike: one single-choice answer per choice.
REQUESTS_ENGINE_INLINE std::vector<std::string> split_openai_choices(const std::string& body) {
  json full = detail::parse_json(body);
  if (full.is_discarded() || !full.is_object() || !full.contains("choices") || !full["choices"].is_array()) return {};
  json choices = std::move(full["choices"]);
  const auto count = static_cast<std::int64_t>(choices.size());
  if (count == 0) return {};
  json usage = full.value("usage", json::object());
  const std::int64_t prompt = detail::json_count(usage, "prompt_tokens");
  const std::int64_t completion_tokens = detail::json_count(usage, "completion_tokens");
  const json* details = usage.contains("completion_tokens_details") && usage["completion_tokens_details"].is_object()
                            ? &usage["completion_tokens_details"]
                            : nullptr;
  const std::int64_t reasoning = details ? detail::json_count(*details, "reasoning_tokens") : 0;
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < count; ++i) {
    json one = full;
    json c = choices[static_cast<std::size_t>(i)];
    c["index"] = 0;
    one["choices"] = json::array({std::move(c)});
    if (usage.is_object() && !usage.empty()) {
      json u = usage;
      const std::int64_t share = completion_tokens / count + (i == 0 ? completion_tokens % count : 0);
      u["prompt_tokens"] = i == 0 ? prompt : 0;
      u["completion_tokens"] = share;
      u["total_tokens"] = (i == 0 ? prompt : 0) + share;
      // Reasoning tokens are part of the completion tokens: shared out the same way.
      if (details && details->contains("reasoning_tokens"))
        u["completion_tokens_details"]["reasoning_tokens"] = reasoning / count + (i == 0 ? reasoning % count : 0);
      if (i > 0 && u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
        u["prompt_tokens_details"]["cached_tokens"] = 0;
      one["usage"] = std::move(u);
    }
    out.push_back(one.dump());
  }
  return out;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE std::vector<std::string> openai_compatible::split_choices(const std::string& body) const {
  return detail::split_openai_choices(body);
}

REQUESTS_ENGINE_INLINE json openai_compatible::cache_identity() const {
  return identity_with({{"kind", "openai_chat"}, {"endpoint", endpoint_}});
}

namespace detail {
inline std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
inline std::string required_env(const char* name, const char* preset, const char* type = "openai_compatible") {
  const char* v = std::getenv(name);
  if (!v || !*v)
    throw std::invalid_argument(std::string("requests_engine: ") + type + "::" + preset + "(): " + name +
                                " is not set");
  return v;
}
}  // namespace detail

REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::openai(std::string model) {
  return openai_compatible(detail::required_env("OPENAI_API_KEY", "openai"),
                           detail::env_or("OPENAI_BASE_URL", "https://api.openai.com/v1"), std::move(model));
}
REQUESTS_ENGINE_INLINE const std::vector<openai_host>& openai_hosts() {
  static const std::vector<openai_host> hosts = {
      {"openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
      {"mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"},
      {"deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
      {"xai", "https://api.x.ai/v1", "XAI_API_KEY"},
      {"fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"},
      {"groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
      {"together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"},
      {"cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"},
  };
  return hosts;
}

namespace detail {
// The preset `name` of openai_hosts(), its key required.
inline openai_compatible hosted(std::string_view name, std::string model) {
  for (const openai_host& h : openai_hosts())
    if (name == h.name) return openai_compatible(required_env(h.key_variable, h.name), h.base_url, std::move(model));
  throw std::logic_error("requests_engine: no OpenAI-compatible host named " + std::string(name));
}
}  // namespace detail

REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::groq(std::string model) {
  return detail::hosted("groq", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::together(std::string model) {
  return detail::hosted("together", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::cerebras(std::string model) {
  return detail::hosted("cerebras", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::vllm(std::string model, std::string base_url) {
  return openai_compatible(detail::env_or("VLLM_API_KEY", ""), std::move(base_url), std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::ollama(std::string model, std::string base_url) {
  return openai_compatible(nullptr, std::move(base_url), std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::llama_cpp(std::string model, std::string base_url) {
  return openai_compatible(detail::env_or("LLAMA_API_KEY", ""), std::move(base_url), std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::openrouter(std::string model, std::string app_url,
                                                                      std::string app_title) {
  openai_compatible p = detail::hosted("openrouter", std::move(model));
  if (!app_url.empty()) p.headers().set("HTTP-Referer", std::move(app_url));
  if (!app_title.empty()) p.headers().set("X-Title", std::move(app_title));
  return p;
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::mistral(std::string model) {
  return detail::hosted("mistral", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::deepseek(std::string model) {
  return detail::hosted("deepseek", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::xai(std::string model) {
  return detail::hosted("xai", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::fireworks(std::string model) {
  return detail::hosted("fireworks", std::move(model));
}
REQUESTS_ENGINE_INLINE openai_compatible openai_compatible::azure(std::string deployment,
                                                                 const azure_openai_settings& where) {
  return openai_compatible(detail::openai_connection::azure(where, "chat/completions", std::move(deployment)));
}

// --- Azure OpenAI ---------------------------------------------------------------------------

REQUESTS_ENGINE_INLINE azure_openai_settings azure_openai_settings::from_environment() {
  azure_openai_settings s;
  s.endpoint = detail::env_or("AZURE_OPENAI_ENDPOINT", "");
  if (s.endpoint.empty())
    throw std::invalid_argument("requests_engine: Azure OpenAI: AZURE_OPENAI_ENDPOINT is not set "
                                "(https://{resource}.openai.azure.com)");
  s.api_key = detail::env_or("AZURE_OPENAI_API_KEY", "");
  s.ad_token = detail::env_or("AZURE_OPENAI_AD_TOKEN", "");
  if (s.api_key.empty() && s.ad_token.empty())
    throw std::invalid_argument("requests_engine: Azure OpenAI: AZURE_OPENAI_API_KEY is not set "
                                "(nor AZURE_OPENAI_AD_TOKEN, a Microsoft Entra ID token)");
  s.api_version = detail::env_or("OPENAI_API_VERSION", "");
  return s;
}

REQUESTS_ENGINE_INLINE std::string azure_openai_settings::url(std::string_view api,
                                                              const std::string& deployment) const {
  std::string base = endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.empty()) throw std::invalid_argument("requests_engine: Azure OpenAI: no endpoint");
  if (deployment.empty()) throw std::invalid_argument("requests_engine: Azure OpenAI: no deployment name");
  for (char ch : deployment) {
    const auto u = static_cast<unsigned char>(ch);
    if (!(std::isalnum(u) && u < 0x80) && ch != '-' && ch != '_' && ch != '.')
      throw std::invalid_argument("requests_engine: Azure OpenAI: deployment name '" + detail::printable(deployment) +
                                  "' may hold letters, digits, '-', '_' and '.' only");
  }
  for (char ch : api_version) {
    const auto u = static_cast<unsigned char>(ch);
    if (!(std::isalnum(u) && u < 0x80) && ch != '-' && ch != '.')
      throw std::invalid_argument("requests_engine: Azure OpenAI: api-version '" + detail::printable(api_version) +
                                  "' is not a version (e.g. 2024-10-21)");
  }
  static const std::string v1 = "/openai/v1";
  const bool base_is_v1 = base.size() >= v1.size() && base.compare(base.size() - v1.size(), v1.size(), v1) == 0;
  std::string out;
  if (api_version.empty()) {
    out = (base_is_v1 ? base : base + v1) + "/" + std::string(api);
  } else {
    if (base_is_v1) base.erase(base.size() - v1.size());
    out = api == "responses" ? base + "/openai/responses"
                             : base + "/openai/deployments/" + deployment + "/" + std::string(api);
    out += "?api-version=" + api_version;
  }
  (void)parse_url(out);  // throws std::invalid_argument on a malformed endpoint
  return out;
}

// --- openai_completions (legacy) -----------------------------------------------------------

REQUESTS_ENGINE_INLINE openai_completions::openai_completions(const char* api_key, std::string url, std::string model)
    : openai_connection(api_key, std::move(url), "/completions", std::move(model)) {}

REQUESTS_ENGINE_INLINE result<json> openai_completions::make_body(const conversation& c, const params& p) const {
  auto unsupported = [](const std::string& what) { return detail::unsupported("openai_completions", what); };
  if (c.system() || c.messages().size() != 1 || c.messages()[0].author != role::user)
    return unsupported("the legacy completions API takes one prompt: give a conversation of one user message "
                       "(no system prompt, no other messages)");
  std::string prompt;
  for (const auto& part : c.messages()[0].content) {
    if (part.type != content_part::kind::text)
      return unsupported(std::string(part.type == content_part::kind::image ? "images" : "audio") +
                         " are not supported (the prompt is text)");
    prompt += part.text;
  }
  if (p.json_mode() || p.json_schema()) return unsupported("JSON mode and structured output are not supported");
  if (!p.tools().empty() || p.tool_choice()) return unsupported("tools are not supported");
  if (p.reasoning_effort())
    return unsupported("params::reasoning_effort is not supported (use openai_compatible or openai_responses)");
  json body = {{"model", p.model() ? *p.model() : model_}, {"prompt", std::move(prompt)}};
  if (body["model"].get_ref<const std::string&>().empty())
    return error{error_code::invalid_request, 0, "no model: set it on the provider or in params::model", {}, 0, {}};
  if (p.temperature()) body["temperature"] = *p.temperature();
  if (p.max_tokens()) body["max_tokens"] = *p.max_tokens();
  if (p.top_p()) body["top_p"] = *p.top_p();
  if (!p.stop().empty()) body["stop"] = p.stop();
  if (p.seed()) body["seed"] = *p.seed();
  if (p.n()) body["n"] = *p.n();
  return detail::with_extra(std::move(body), p);
}

REQUESTS_ENGINE_INLINE result<completion> openai_completions::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")",
                 {}, 0, {}};
  };
  const json j = detail::parse_json(r.body);
  if (j.is_discarded() || !j.is_object()) return bad("the response is not a JSON object");
  const auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) return bad("the response has no choices");
  completion c;
  for (const auto& ch : *choices) {
    if (!ch.is_object() || !ch.contains("text") || !ch["text"].is_string()) return bad("a choice has no text");
    choice one;
    one.text = ch["text"].get<std::string>();
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
      one.finish_reason = ch["finish_reason"].get<std::string>();
    c.choices.push_back(std::move(one));
  }
  c.text = c.choices.front().text;
  c.finish_reason = c.choices.front().finish_reason;
  if (j.contains("model") && j["model"].is_string()) c.model = j["model"].get<std::string>();
  if (j.contains("usage") && j["usage"].is_object()) {
    const json& u = j["usage"];
    c.usage.input_tokens = detail::json_count(u, "prompt_tokens");
    c.usage.output_tokens = detail::json_count(u, "completion_tokens");
  }
  c.raw_body = r.body;
  return c;
}

REQUESTS_ENGINE_INLINE json openai_completions::cache_identity() const {
  return identity_with({{"kind", "openai_completions"}, {"endpoint", endpoint_}});
}

REQUESTS_ENGINE_INLINE std::vector<std::string> openai_completions::split_choices(const std::string& body) const {
  return detail::split_openai_choices(body);
}

namespace detail {

// `total` shared out in proportion to `weights` (largest remainder: the shares add up to it).
inline std::vector<std::int64_t> share_out(std::int64_t total, const std::vector<std::size_t>& weights) {
  std::vector<std::int64_t> out(weights.size(), 0);
  if (weights.empty() || total <= 0) return out;
  long double sum = 0;
  for (auto w : weights) sum += static_cast<long double>(w) + 1;  // +1: an empty text still had a turn
  std::int64_t given = 0;
  std::vector<std::pair<long double, std::size_t>> rest;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const long double exact = static_cast<long double>(total) * (static_cast<long double>(weights[i]) + 1) / sum;
    out[i] = static_cast<std::int64_t>(exact);
    given += out[i];
    rest.emplace_back(exact - static_cast<long double>(out[i]), i);
  }
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; given < total; ++k, ++given) ++out[rest[k % rest.size()].second];
  return out;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE std::vector<result<std::string>> openai_completions::send_batch(
    const std::vector<batch_request>& batch, batch_context& context) const {
  std::vector<result<std::string>> out(batch.size(), error{error_code::internal, 0, "not sent", {}, 0, {}});
  // One HTTP request per group of requests that differ in their prompt only (in one run: one
  // group), in the order they came.
  std::vector<std::pair<std::string, std::vector<std::size_t>>> groups;
  std::vector<json> bodies(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    bodies[i] = detail::parse_json(batch[i].body);
    if (!bodies[i].is_object() || !bodies[i].contains("prompt") || !bodies[i]["prompt"].is_string()) {
      out[i] = detail::unsupported("openai_completions", "a batched request needs a body with one text prompt");
      continue;
    }
    json rest = bodies[i];
    rest.erase("prompt");
    std::string key = rest.dump();
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == key; });
    if (g == groups.end()) {
      groups.emplace_back(std::move(key), std::vector<std::size_t>{});
      g = std::prev(groups.end());
    }
    g->second.push_back(i);
  }
  for (const auto& group : groups) {
    const std::vector<std::size_t>& members = group.second;  // a lambda below uses it: no structured binding
    json body = json::parse(group.first);
    json prompts = json::array();
    for (std::size_t i : members) prompts.push_back(bodies[i]["prompt"]);
    body["prompt"] = std::move(prompts);
    const std::int64_t n = body.contains("n") && body["n"].is_number_integer() ? body["n"].get<std::int64_t>() : 1;
    auto fail_all = [&](const error& e) {
      for (std::size_t i : members) out[i] = e;
    };
    ++context.http_requests;
    result<http_response> resp = context.session.send(make_request(body.dump()), context.cancelled);
    if (!resp) {
      fail_all(resp.error());
      continue;
    }
    if (resp->status < 200 || resp->status >= 300) {
      error e = detail::error_from_response(*resp);
      e.retry_after = detail::parse_retry_after(resp->headers);
      fail_all(e);
      continue;
    }
    json answer = detail::parse_json(resp->body);
    if (answer.is_discarded() || !answer.is_object() || !answer.contains("choices") || !answer["choices"].is_array()) {
      fail_all(error{error_code::invalid_response, resp->status,
                     "the answer to a prompt array has no choices (body starts: " + resp->body.substr(0, 120) + ")",
                     {}, 0, {}});
      continue;
    }
    // choices[].index is prompt * n + k (vLLM, llama.cpp and OpenAI alike); without it, the order.
    std::vector<json> per_prompt(members.size(), json::array());
    const json& choices = answer["choices"];
    for (std::size_t pos = 0; pos < choices.size(); ++pos) {
      const json& ch = choices[pos];
      const std::int64_t index = ch.is_object() && ch.contains("index") && ch["index"].is_number_integer()
                                     ? ch["index"].get<std::int64_t>()
                                     : static_cast<std::int64_t>(pos);
      const std::int64_t prompt = n > 0 ? index / n : index;
      if (index < 0 || prompt >= static_cast<std::int64_t>(members.size())) continue;
      json mine = ch;
      mine["index"] = index % std::max<std::int64_t>(n, 1);
      per_prompt[static_cast<std::size_t>(prompt)].push_back(std::move(mine));
    }
    // The usage covers the whole array: each prompt's share by the length of its prompt and
    // of its answers (the shares add up to the server's totals).
    const json usage = answer.value("usage", json::object());
    std::vector<std::size_t> prompt_len, answer_len;
    for (std::size_t k = 0; k < members.size(); ++k) {
      prompt_len.push_back(bodies[members[k]]["prompt"].get_ref<const std::string&>().size());
      std::size_t len = 0;
      for (const auto& ch : per_prompt[k])
        if (ch.contains("text") && ch["text"].is_string()) len += ch["text"].get_ref<const std::string&>().size();
      answer_len.push_back(len);
    }
    const auto in = detail::share_out(detail::json_count(usage, "prompt_tokens"), prompt_len);
    const auto gen = detail::share_out(detail::json_count(usage, "completion_tokens"), answer_len);
    for (std::size_t k = 0; k < members.size(); ++k) {
      if (per_prompt[k].empty()) {
        out[members[k]] = error{error_code::invalid_response, resp->status,
                                "the answer to the prompt array has no choice for this prompt (index " +
                                    std::to_string(k) + " of " + std::to_string(members.size()) + ")",
                                {}, 0, {}};
        continue;
      }
      json one = answer;
      one["choices"] = std::move(per_prompt[k]);
      if (usage.is_object() && !usage.empty())
        one["usage"] = {{"prompt_tokens", in[k]}, {"completion_tokens", gen[k]}, {"total_tokens", in[k] + gen[k]}};
      out[members[k]] = one.dump();
    }
  }
  return out;
}

// --- openai_responses -----------------------------------------------------------------------

REQUESTS_ENGINE_INLINE openai_responses::openai_responses(const char* api_key, std::string url, std::string model)
    : openai_connection(api_key, std::move(url), "/responses", std::move(model)) {}

REQUESTS_ENGINE_INLINE result<json> openai_responses::make_body(const conversation& c, const params& p) const {
  auto unsupported = [](const std::string& what) { return detail::unsupported("openai_responses", what); };
  // What the Responses API has no field for fails here, rather than as a 400 after a round trip.
  if (p.n() && *p.n() != 1)
    return unsupported("params::n is not supported (one answer per request; send the request n times: with the "
                       "cache, each copy is its own sample)");
  if (!p.stop().empty()) return unsupported("params::stop is not supported (the Responses API has no stop sequences)");
  if (p.seed()) return unsupported("params::seed is not supported (the Responses API has no seed)");
  // The API's own minimum, named as the API names it.
  if (p.max_tokens() && *p.max_tokens() < 16)
    return error{error_code::invalid_request, 0,
                 "openai_responses: max_output_tokens (params::max_tokens) must be at least 16, got " +
                     std::to_string(*p.max_tokens()),
                 {}, 0, {}};
  json body = json::object();
  body["model"] = p.model() ? *p.model() : model_;
  if (body["model"].get_ref<const std::string&>().empty())
    return error{error_code::invalid_request, 0, "no model: set it on the provider or in params::model", {}, 0, {}};
  if (c.system()) body["instructions"] = *c.system();
  json input = json::array();
  for (std::size_t i = 0; i < c.messages().size(); ++i) {
    const message& m = c.messages()[i];
    const std::string where = "message " + std::to_string(i);
    if (m.author != role::user) {
      // Assistant turns (and system messages between turns) go back as text.
      for (const auto& part : m.content)
        if (part.type != content_part::kind::text)
          return unsupported(where + ": only text is supported in " + std::string(to_string(m.author)) + " messages");
      input.push_back({{"role", std::string(to_string(m.author))}, {"content", m.text()}});
      continue;
    }
    json parts = json::array();
    for (std::size_t k = 0; k < m.content.size(); ++k) {
      const content_part& part = m.content[k];
      switch (part.type) {
        case content_part::kind::text:
          parts.push_back({{"type", "input_text"}, {"text", part.text}});
          break;
        case content_part::kind::image: {
          std::string u = !part.url.empty()
                              ? part.url
                              : "data:" + part.media_type + ";base64," + detail::base64_encode(part.data);
          // detail is required by the API's schema; "auto" lets the model choose.
          parts.push_back({{"type", "input_image"}, {"image_url", std::move(u)}, {"detail", "auto"}});
          break;
        }
        case content_part::kind::audio:
          return unsupported(where + " part " + std::to_string(k) +
                             ": audio is not supported (the Responses API takes text, images and files; use "
                             "openai_compatible with an audio model)");
      }
    }
    input.push_back({{"role", "user"}, {"content", std::move(parts)}});
  }
  if (input.empty()) return error{error_code::invalid_request, 0, "the conversation has no messages", {}, 0, {}};
  body["input"] = std::move(input);
  if (p.max_tokens()) body["max_output_tokens"] = *p.max_tokens();
  if (p.temperature()) body["temperature"] = *p.temperature();
  if (p.top_p()) body["top_p"] = *p.top_p();
  if (p.reasoning_effort()) body["reasoning"] = {{"effort", *p.reasoning_effort()}};
  if (const auto& so = p.json_schema()) {
    body["text"] = {{"format", {{"type", "json_schema"}, {"name", so->name}, {"schema", so->schema}, {"strict", so->strict}}}};
  } else if (p.json_mode()) {
    body["text"] = {{"format", {{"type", "json_object"}}}};
  }
  if (!p.tools().empty()) {
    json tools = json::array();
    for (const tool& t : p.tools()) {
      // strict is required by the schema; false keeps any JSON Schema the caller wrote valid.
      json fn = {{"type", "function"}, {"name", t.name}, {"parameters", t.parameters}, {"strict", false}};
      if (!t.description.empty()) fn["description"] = t.description;
      tools.push_back(std::move(fn));
    }
    body["tools"] = std::move(tools);
  }
  if (const auto& tc = p.tool_choice()) {
    if (*tc == "auto" || *tc == "none" || *tc == "required")
      body["tool_choice"] = *tc;
    else
      body["tool_choice"] = {{"type", "function"}, {"name", *tc}};
  }
  body["store"] = false;
  return detail::with_extra(std::move(body), p);
}

namespace detail {
inline std::int64_t openai_int(const json& obj, const char* key) { return json_count(obj, key); }
inline std::string openai_str(const json& obj, const char* key) { return json_string_field(obj, key); }
}  // namespace detail

REQUESTS_ENGINE_INLINE result<completion> openai_responses::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")",
                 {}, 0, {}};
  };
  const json j = detail::parse_json(r.body);
  if (j.is_discarded() || !j.is_object()) return bad("the response is not a JSON object");
  const std::string status = detail::openai_str(j, "status");
  if (status == "failed") {
    const json err = j.value("error", json());
    const std::string message = detail::openai_str(err, "message");
    error e{error_code::server_error, r.status,
            "the response failed: " + (message.empty() ? std::string("no reason given") : message), {}, 0, {}};
    e.provider_code = detail::openai_str(err, "code");
    // Retried as its HTTP twin would be: a server error or a rate limit; a bad prompt is final.
    if (e.provider_code == "rate_limit_exceeded") e.code = error_code::rate_limited;
    else if (!e.provider_code.empty() && e.provider_code != "server_error") e.code = error_code::bad_request;
    return e;
  }
  const auto output = j.find("output");
  if (output == j.end() || !output->is_array()) return bad("the response has no output");
  choice ch;
  bool refused = false;
  for (const json& item : *output) {
    const std::string type = detail::openai_str(item, "type");
    if (type == "message" && item.contains("content") && item["content"].is_array()) {
      for (const json& part : item["content"]) {
        const std::string kind = detail::openai_str(part, "type");
        if (kind == "output_text") {
          ch.text += detail::openai_str(part, "text");
        } else if (kind == "refusal") {
          ch.text = detail::openai_str(part, "refusal");
          refused = true;
        }
      }
    } else if (type == "function_call") {
      ch.tool_calls.push_back(tool_call{detail::openai_str(item, "call_id"), detail::openai_str(item, "name"),
                                        detail::openai_str(item, "arguments")});
    }
    // reasoning items (and built-in tool calls) are not the answer.
  }
  if (status == "incomplete") {
    ch.finish_reason = detail::openai_str(j.value("incomplete_details", json()), "reason");
    if (ch.finish_reason.empty()) ch.finish_reason = "incomplete";
  } else if (refused) {
    ch.finish_reason = "refusal";
  } else if (!ch.tool_calls.empty()) {
    ch.finish_reason = "tool_calls";
  } else {
    ch.finish_reason = "stop";
  }
  completion c;
  c.text = ch.text;
  c.finish_reason = ch.finish_reason;
  c.choices.push_back(std::move(ch));
  c.model = detail::openai_str(j, "model");
  if (const auto u = j.find("usage"); u != j.end() && u->is_object()) {
    c.usage.input_tokens = detail::openai_int(*u, "input_tokens");
    c.usage.output_tokens = detail::openai_int(*u, "output_tokens");  // reasoning included
    c.usage.cached_input_tokens = detail::openai_int(u->value("input_tokens_details", json()), "cached_tokens");
    c.usage.reasoning_tokens = detail::openai_int(u->value("output_tokens_details", json()), "reasoning_tokens");
  }
  c.raw_body = r.body;
  return c;
}

REQUESTS_ENGINE_INLINE json openai_responses::cache_identity() const {
  return identity_with({{"kind", "openai_responses"}, {"endpoint", endpoint_}, {"model", model_}});
}

REQUESTS_ENGINE_INLINE openai_responses openai_responses::openai(std::string model) {
  return openai_responses(detail::required_env("OPENAI_API_KEY", "openai", "openai_responses"),
                          detail::env_or("OPENAI_BASE_URL", "https://api.openai.com/v1"), std::move(model));
}

REQUESTS_ENGINE_INLINE openai_responses openai_responses::azure(std::string deployment,
                                                               const azure_openai_settings& where) {
  return openai_responses(detail::openai_connection::azure(where, "responses", std::move(deployment)));
}

REQUESTS_ENGINE_NAMESPACE_END
