// backend.ipp: the definitions of backend.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "backend.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE batch_backend::batch_backend(std::string name, function fn)
    : name_(std::move(name)), fn_(std::move(fn)) {
  if (name_.empty()) throw std::invalid_argument("requests_engine: batch_backend needs a name (it keys the cache)");
  if (!fn_) throw std::invalid_argument("requests_engine: batch_backend needs a function");
}

REQUESTS_ENGINE_INLINE result<json> batch_backend::make_body(const conversation& c, const params& p) const {
  if (c.messages().empty())
    return error{error_code::invalid_request, 0, "the conversation has no messages", {}, 0, {}};
  json messages = json::array();
  for (const auto& m : c.messages()) {
    json parts = json::array();
    for (const auto& part : m.content) {
      switch (part.type) {
        case content_part::kind::text:
          parts.push_back({{"type", "text"}, {"text", part.text}});
          break;
        case content_part::kind::image:
        case content_part::kind::audio: {
          json one = {{"type", part.type == content_part::kind::image ? "image" : "audio"},
                      {"media_type", part.media_type}};
          if (!part.url.empty()) one["url"] = part.url;
          if (!part.data.empty()) one["sha256"] = detail::sha256_hex(part.data);  // the bytes, not in the body
          parts.push_back(std::move(one));
          break;
        }
      }
    }
    messages.push_back({{"role", to_string(m.author)}, {"content", std::move(parts)}});
  }
  json body = {{"messages", std::move(messages)}};
  if (c.system()) body["system"] = *c.system();
  if (p.model()) body["model"] = *p.model();
  if (p.temperature()) body["temperature"] = *p.temperature();
  if (p.max_tokens()) body["max_tokens"] = *p.max_tokens();
  if (p.top_p()) body["top_p"] = *p.top_p();
  if (!p.stop().empty()) body["stop"] = p.stop();
  if (p.seed()) body["seed"] = *p.seed();
  if (p.n()) body["n"] = *p.n();
  if (p.json_mode()) body["json_mode"] = true;
  if (p.json_schema())
    body["json_schema"] = {{"name", p.json_schema()->name}, {"schema", p.json_schema()->schema},
                           {"strict", p.json_schema()->strict}};
  if (!p.tools().empty()) {
    json tools = json::array();
    for (const auto& t : p.tools())
      tools.push_back({{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}});
    body["tools"] = std::move(tools);
  }
  if (p.tool_choice()) body["tool_choice"] = *p.tool_choice();
  if (!p.extra().is_null()) body["extra"] = p.extra();
  return body;
}

REQUESTS_ENGINE_INLINE std::string batch_backend::encode(const completion& c) {
  json choices = json::array();
  auto one_choice = [](const std::string& text, const std::string& finish, const std::vector<tool_call>& calls) {
    json ch = {{"text", text}, {"finish_reason", finish}};
    if (!calls.empty()) {
      json tc = json::array();
      for (const auto& call : calls) tc.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}});
      ch["tool_calls"] = std::move(tc);
    }
    return ch;
  };
  if (c.choices.empty())
    choices.push_back(one_choice(c.text, c.finish_reason, {}));
  for (const auto& ch : c.choices) choices.push_back(one_choice(ch.text, ch.finish_reason, ch.tool_calls));
  json out = {{"object", "requests_engine.completion"},
              {"model", c.model},
              {"choices", std::move(choices)},
              {"usage",
               {{"input_tokens", c.usage.input_tokens},
                {"output_tokens", c.usage.output_tokens},
                {"cached_input_tokens", c.usage.cached_input_tokens},
                {"cache_write_tokens", c.usage.cache_write_tokens},
                {"reasoning_tokens", c.usage.reasoning_tokens}}}};
  if (!c.raw_body.empty()) out["raw"] = c.raw_body;
  return out.dump();
}

REQUESTS_ENGINE_INLINE std::vector<result<std::string>> batch_backend::send_batch(
    const std::vector<batch_request>& batch, batch_context& context) const {
  (void)context;  // an in-process call: no HTTP
  std::vector<result<completion>> answers = fn_(batch);
  std::vector<result<std::string>> out;
  out.reserve(answers.size());
  for (auto& a : answers) {
    if (!a) {
      out.emplace_back(std::move(a.error()));
      continue;
    }
    try {
      out.emplace_back(encode(*a));
    } catch (const std::exception& e) {
      out.emplace_back(error{error_code::internal, 0,
                             std::string("the batch function's answer cannot be stored: ") + e.what(), {}, 0, {}});
    }
  }
  return out;
}

REQUESTS_ENGINE_INLINE result<completion> batch_backend::parse_response(const http_response& r) const {
  auto bad = [](const std::string& why) {
    return error{error_code::invalid_response, 0, "batch_backend: " + why, {}, 0, {}};
  };
  if (r.status < 200 || r.status >= 300) return detail::error_from_response(r);
  const json j = detail::parse_json(r.body);
  if (j.is_discarded() || !j.is_object() || detail::json_string_field(j, "object") != "requests_engine.completion")
    return bad("not a stored answer");
  const auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) return bad("the answer has no choices");
  completion c;
  try {
    for (const auto& ch : *choices) {
      choice one;
      one.text = ch.at("text").get<std::string>();
      one.finish_reason = ch.value("finish_reason", "");
      if (ch.contains("tool_calls"))
        for (const auto& call : ch["tool_calls"])
          one.tool_calls.push_back(tool_call{call.value("id", ""), call.value("name", ""), call.value("arguments", "")});
      c.choices.push_back(std::move(one));
    }
    c.text = c.choices.front().text;
    c.finish_reason = c.choices.front().finish_reason;
    c.model = j.value("model", "");
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      c.usage.input_tokens = detail::json_count(u, "input_tokens");
      c.usage.output_tokens = detail::json_count(u, "output_tokens");
      c.usage.cached_input_tokens = detail::json_count(u, "cached_input_tokens");
      c.usage.cache_write_tokens = detail::json_count(u, "cache_write_tokens");
      c.usage.reasoning_tokens = detail::json_count(u, "reasoning_tokens");
    }
    c.raw_body = j.contains("raw") && j["raw"].is_string() ? j["raw"].get<std::string>() : r.body;
  } catch (const json::exception& e) {
    return bad(std::string("a malformed stored answer: ") + e.what());
  }
  return c;
}

REQUESTS_ENGINE_INLINE std::vector<std::string> batch_backend::split_choices(const std::string& body) const {
  json full = detail::parse_json(body);
  if (full.is_discarded() || !full.is_object() || !full.contains("choices") || !full["choices"].is_array()) return {};
  const json choices = std::move(full["choices"]);
  const auto count = static_cast<std::int64_t>(choices.size());
  if (count == 0) return {};
  const json usage = full.value("usage", json::object());
  const std::int64_t output = detail::json_count(usage, "output_tokens");
  const std::int64_t reasoning = detail::json_count(usage, "reasoning_tokens");
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < count; ++i) {
    json one = full;
    one["choices"] = json::array({choices[static_cast<std::size_t>(i)]});
    json u = usage;
    if (i > 0) u["input_tokens"] = u["cached_input_tokens"] = u["cache_write_tokens"] = 0;
    u["output_tokens"] = output / count + (i == 0 ? output % count : 0);
    if (reasoning != 0) u["reasoning_tokens"] = reasoning / count + (i == 0 ? reasoning % count : 0);
    one["usage"] = std::move(u);
    out.push_back(one.dump());
  }
  return out;
}

REQUESTS_ENGINE_NAMESPACE_END
