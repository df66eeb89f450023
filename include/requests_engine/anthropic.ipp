// anthropic.ipp: the definitions of anthropic.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "anthropic.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

// The block (an object) a breakpoint marks in `content` (a string or blocks): a string becomes
// one text block; otherwise the last block.
inline json& last_block(json& content) {
  if (content.is_string()) content = json::array({{{"type", "text"}, {"text", content.get<std::string>()}}});
  return content.back();
}

inline std::optional<error> mark_cache_breakpoints(json& body, json& messages,
                                                                   const std::vector<std::ptrdiff_t>& placed,
                                                                   const std::vector<std::size_t>& breakpoints,
                                                                   const std::optional<std::string>& ttl,
                                                                   std::string_view provider) {
  if (ttl && *ttl != "5m" && *ttl != "1h")
    return unsupported(provider, "params::prompt_cache_ttl must be \"5m\" or \"1h\", not \"" + *ttl + "\"");
  json control = {{"type", "ephemeral"}};
  if (ttl && *ttl == "1h") control["ttl"] = "1h";
  std::vector<std::ptrdiff_t> targets;  // -1: the system prompt; else an index in messages
  for (std::size_t at : breakpoints) {
    // A breakpoint after message k marks message k-1, or the system prompt it joined.
    std::ptrdiff_t target = at == 0 ? -1 : placed[at - 1];
    if (target == -1 && !body.contains("system"))
      return unsupported(provider, "a cache breakpoint before any content (conversation::cache_breakpoint() with no "
                                   "system prompt and no message before it)");
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) targets.push_back(target);
  }
  if (targets.size() > 4)
    return unsupported(provider, "at most 4 cache breakpoints in a request (the API's limit); this one has " +
                                     std::to_string(targets.size()));
  for (std::ptrdiff_t target : targets) {
    json& content = target == -1 ? body["system"] : messages[static_cast<std::size_t>(target)]["content"];
    last_block(content)["cache_control"] = control;
  }
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE result<json> anthropic_messages_body(const conversation& c, const params& p,
                                                            std::int64_t default_max_tokens,
                                                            std::string_view provider) {
  json body = json::object();
  body["max_tokens"] = p.max_tokens().value_or(default_max_tokens);
  if (c.system()) body["system"] = *c.system();
  json messages = json::array();
  // Where each message went: its index in "messages", or -1 when it joined the system prompt.
  std::vector<std::ptrdiff_t> placed;
  for (std::size_t i = 0; i < c.messages().size(); ++i) {
    const message& m = c.messages()[i];
    placed.push_back(m.author == role::system ? -1 : static_cast<std::ptrdiff_t>(messages.size()));
    if (m.author == role::system) {
      // The API has one top-level system prompt; a system message joins it.
      std::string sys = body.value("system", std::string());
      body["system"] = sys.empty() ? m.text() : sys + "\n\n" + m.text();
      continue;
    }
    json msg = {{"role", m.author == role::user ? "user" : "assistant"}};
    if (m.content.size() == 1 && m.content[0].type == content_part::kind::text) {
      msg["content"] = m.content[0].text;
    } else {
      json blocks = json::array();
      for (std::size_t k = 0; k < m.content.size(); ++k) {
        const content_part& part = m.content[k];
        switch (part.type) {
          case content_part::kind::text:
            blocks.push_back({{"type", "text"}, {"text", part.text}});
            break;
          case content_part::kind::image:
            if (!part.url.empty())
              blocks.push_back({{"type", "image"}, {"source", {{"type", "url"}, {"url", part.url}}}});
            else
              blocks.push_back({{"type", "image"},
                                {"source",
                                 {{"type", "base64"},
                                  {"media_type", part.media_type},
                                  {"data", base64_encode(part.data)}}}});
            break;
          case content_part::kind::audio:
            return unsupported(provider, "message " + std::to_string(i) + " part " + std::to_string(k) +
                                             ": audio is not supported (the Messages API takes text, images "
                                             "and documents)");
        }
      }
      msg["content"] = std::move(blocks);
    }
    messages.push_back(std::move(msg));
  }
  if (messages.empty()) return error{error_code::invalid_request, 0, "the conversation has no messages", {}, 0, {}};
  if (!c.cache_breakpoints().empty() || p.prompt_cache_ttl()) {
    if (auto e = mark_cache_breakpoints(body, messages, placed, c.cache_breakpoints(), p.prompt_cache_ttl(), provider))
      return std::move(*e);
  }
  body["messages"] = std::move(messages);
  if (p.temperature()) body["temperature"] = *p.temperature();
  if (p.top_p()) body["top_p"] = *p.top_p();
  if (!p.stop().empty()) body["stop_sequences"] = p.stop();
  if (p.seed()) return unsupported(provider, "params::seed is not supported (the Messages API has no seed)");
  if (p.reasoning_effort())
    return unsupported(provider, "params::reasoning_effort is not supported (extended thinking takes a token "
                                 "budget: set \"thinking\" through params::extra)");
  if (p.n() && *p.n() != 1)
    return unsupported(provider, "params::n > 1 is not supported (one answer per request; send the request n "
                                 "times: with the cache, each copy is its own sample)");
  if (p.json_mode() && !p.json_schema())
    return unsupported(provider, "params::json_mode is not supported; use params::json_schema (sent as a "
                                 "forced tool call)");
  json tools = json::array();
  for (const tool& t : p.tools()) {
    json one = {{"name", t.name}, {"input_schema", t.parameters}};
    if (!t.description.empty()) one["description"] = t.description;
    tools.push_back(std::move(one));
  }
  if (const auto& so = p.json_schema()) {
    // Structured output as a tool the model must call: its input is the answer.
    tools.push_back({{"name", so->name},
                     {"description", "Give the answer as this tool's input, which follows the JSON schema."},
                     {"input_schema", so->schema}});
    body["tool_choice"] = {{"type", "tool"}, {"name", so->name}};
  } else if (const auto& tc = p.tool_choice()) {
    if (*tc == "auto" || *tc == "none")
      body["tool_choice"] = {{"type", *tc}};
    else if (*tc == "required")
      body["tool_choice"] = {{"type", "any"}};
    else
      body["tool_choice"] = {{"type", "tool"}, {"name", *tc}};
  }
  if (!tools.empty()) body["tools"] = std::move(tools);
  return detail::with_extra(std::move(body), p);
}

REQUESTS_ENGINE_INLINE result<completion> anthropic_parse_response(const http_response& r) {
  if (r.status < 200 || r.status >= 300) return error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")",
                 {}, 0, {}};
  };
  json body = detail::parse_json(r.body);
  if (body.is_discarded()) return bad("the response is not JSON");
  if (!body.is_object() || !body.contains("content") || !body["content"].is_array())
    return bad("the response has no content array");
  choice ch;
  const json* first_tool_input = nullptr;
  for (const json& block : body["content"]) {
    if (!block.is_object()) continue;
    const std::string type = detail::json_string_field(block, "type");
    if (type == "text" && block.contains("text") && block["text"].is_string()) {
      ch.text += block["text"].get_ref<const std::string&>();
    } else if (type == "tool_use") {
      tool_call call;
      call.id = detail::json_string_field(block, "id");
      call.name = detail::json_string_field(block, "name");
      if (block.contains("input")) {
        call.arguments = block["input"].dump();
        if (!first_tool_input) first_tool_input = &block["input"];
      }
      ch.tool_calls.push_back(std::move(call));
    }
  }
  // A forced tool (params::json_schema) answers with its input and no text: that is the answer.
  if (ch.text.empty() && first_tool_input) ch.text = first_tool_input->dump();
  if (body.contains("stop_reason") && body["stop_reason"].is_string())
    ch.finish_reason = body["stop_reason"].get<std::string>();
  completion c;
  c.model = detail::json_string_field(body, "model");
  if (body.contains("usage") && body["usage"].is_object()) {
    const json& u = body["usage"];
    auto num = [&](const char* k) { return detail::json_count(u, k); };
    // Anthropic's input_tokens leaves out the tokens read from and written to its cache.
    c.usage.cached_input_tokens = num("cache_read_input_tokens");
    c.usage.cache_write_tokens = num("cache_creation_input_tokens");
    if (auto creation = u.find("cache_creation"); creation != u.end() && creation->is_object())
      c.usage.cache_write_1h_tokens = std::min(c.usage.cache_write_tokens,
                                               detail::json_count(*creation, "ephemeral_1h_input_tokens"));
    c.usage.input_tokens = num("input_tokens") + c.usage.cached_input_tokens + c.usage.cache_write_tokens;
    c.usage.output_tokens = num("output_tokens");
    // Thinking tokens are inside output_tokens; the Messages API does not count them apart,
    // so reasoning_tokens stays 0.
  }
  c.text = ch.text;
  c.finish_reason = ch.finish_reason;
  c.choices.push_back(std::move(ch));
  c.raw_body = r.body;
  return c;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE anthropic::anthropic(const char* api_key, std::string model, std::string base_url)
    : api_key_(api_key ? api_key : ""), model_(std::move(model)) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  const std::string suffix = "/v1/messages";
  if (base_url.size() < suffix.size() ||
      base_url.compare(base_url.size() - suffix.size(), suffix.size(), suffix) != 0)
    base_url += suffix;
  (void)parse_url(base_url);  // throws std::invalid_argument on a malformed URL
  endpoint_ = std::move(base_url);
}

REQUESTS_ENGINE_INLINE result<json> anthropic::make_body(const conversation& c, const params& p) const {
  const std::string& model = p.model() ? *p.model() : model_;
  if (model.empty())
    return error{error_code::invalid_request, 0, "no model: set it on the provider or in params::model", {}, 0, {}};
  auto body = detail::anthropic_messages_body(c, p, default_max_tokens_, "anthropic");
  if (!body) return body;
  if (!body->contains("model")) (*body)["model"] = model;  // params::extra may have set it
  return body;
}

REQUESTS_ENGINE_INLINE http_request anthropic::make_request(const std::string& body) const {
  http_request r;
  r.url = endpoint_;
  r.body = body;
  if (!api_key_.empty()) r.headers.emplace_back("x-api-key", api_key_);
  r.headers.emplace_back("anthropic-version", version_);
  // A one-hour cache breakpoint needs its beta feature (the ttl is only in a cache_control).
  static const std::string one_hour = "extended-cache-ttl-2025-04-11";
  std::string beta = beta_;
  if (body.find("\"ttl\":\"1h\"") != std::string::npos && beta.find(one_hour) == std::string::npos)
    beta += beta.empty() ? one_hour : "," + one_hour;
  if (!beta.empty()) r.headers.emplace_back("anthropic-beta", beta);
  r.headers.emplace_back("Accept", "application/json");
  headers_.apply_to(r.headers);
  return r;
}

REQUESTS_ENGINE_INLINE json anthropic::cache_identity() const {
  json id = {{"kind", "anthropic_messages"}, {"endpoint", endpoint_}, {"version", version_}};
  if (!beta_.empty()) id["beta"] = beta_;
  return identity_with(std::move(id));
}

REQUESTS_ENGINE_NAMESPACE_END
