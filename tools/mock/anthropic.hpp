// requests_engine mock: Anthropic Messages, the checks of a request (worded as the API words
// them) and the answer to it, and Anthropic's error shape.
#pragma once

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace requests_engine_mock {
namespace detail {

inline std::string anthropic_error_body(const std::string& type, const std::string& message) {
  nlohmann::ordered_json err;
  err["type"] = type;
  err["message"] = message;
  nlohmann::ordered_json body;
  body["type"] = "error";
  body["error"] = std::move(err);
  return body.dump();
}

inline void set_anthropic_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  set_json(res, status, anthropic_error_body(type, message));
}

// A prompt-cache breakpoint (a block with cache_control): the prompt up to it, in the order
// the API renders it (tools, system, messages), as text bytes and as a key.
struct cache_mark {
  std::size_t prefix_bytes = 0;
  std::string key;
  bool one_hour = false;
};

struct messages_request {
  std::string model;
  std::string last_user_text;
  std::size_t prompt_bytes = 0;
  std::int64_t max_tokens = 0;
  bool stream = false;
  std::vector<cache_mark> cache_marks;
  // Set by the server's prompt cache (server_core::apply_prompt_cache): the prompt tokens read
  // from it and written to it (those kept an hour among them).
  std::size_t cache_read_tokens = 0;
  std::size_t cache_write_tokens = 0;
  std::size_t cache_write_1h_tokens = 0;
};

// The breakpoints of a valid Messages body, checked as the API checks them (at most 4; a
// ttl of "5m" or "1h", the longer ones first).
inline bool read_cache_marks(const nlohmann::json& body, messages_request& out, std::string& error) {
  std::string seen = out.model;  // the prefix so far
  std::size_t bytes = 0;
  auto visit = [&](const nlohmann::json& block, const std::string& text) {
    seen += text;
    seen.push_back('\0');
    bytes += text.size();
    if (!block.is_object() || !block.contains("cache_control")) return true;
    const nlohmann::json& cc = block["cache_control"];
    if (!cc.is_object() || cc.value("type", std::string()) != "ephemeral") {
      error = "cache_control.type: Input should be 'ephemeral'";
      return false;
    }
    const std::string ttl = cc.value("ttl", std::string("5m"));
    if (ttl != "5m" && ttl != "1h") {
      error = "cache_control.ttl: Input should be '5m' or '1h'";
      return false;
    }
    if (ttl == "1h" && !out.cache_marks.empty() && !out.cache_marks.back().one_hour) {
      error = "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block";
      return false;
    }
    out.cache_marks.push_back(cache_mark{bytes, sha256_hex(seen), ttl == "1h"});
    return true;
  };
  auto visit_content = [&](const nlohmann::json& content) {
    if (content.is_string()) return visit(content, content.get<std::string>());
    for (const auto& block : content)
      if (!visit(block, content_text(nlohmann::json::array({block})))) return false;
    return true;
  };
  if (body.contains("tools") && body["tools"].is_array())
    for (const auto& tool : body["tools"])
      if (!visit(tool, tool.dump())) return false;
  if (body.contains("system") && !body["system"].is_null() && !visit_content(body["system"])) return false;
  for (const auto& m : body["messages"]) {
    seen += m.value("role", std::string());
    if (!visit_content(m["content"])) return false;
  }
  if (out.cache_marks.size() > 4) {
    error = "A maximum of 4 blocks with cache_control may be provided. Found " + std::to_string(out.cache_marks.size()) +
            ".";
    return false;
  }
  return true;
}

// Validates an Anthropic Messages body the way the API words its errors.
inline bool parse_messages_request(const nlohmann::json& body, messages_request& out, std::string& error) {
  if (body.is_discarded()) {
    error = "There was an issue with your request body: it is not valid JSON.";
    return false;
  }
  if (!body.is_object()) {
    error = std::string("Input should be a valid dictionary (got ") + body.type_name() + ")";
    return false;
  }
  out = messages_request{};
  const auto model = body.find("model");
  if (model == body.end()) {
    error = "model: Field required";
    return false;
  }
  if (!model->is_string()) {
    error = "model: Input should be a valid string";
    return false;
  }
  out.model = model->get<std::string>();
  std::optional<std::int64_t> max_tokens;
  if (body.find("max_tokens") == body.end()) {
    error = "max_tokens: Field required";
    return false;
  }
  if (!optional_int_field(body, "max_tokens", 1, INT32_MAX, max_tokens, error) || !max_tokens) {
    error = "max_tokens: Input should be an integer greater than or equal to 1";
    return false;
  }
  out.max_tokens = *max_tokens;
  const auto messages = body.find("messages");
  if (messages == body.end()) {
    error = "messages: Field required";
    return false;
  }
  if (!messages->is_array()) {
    error = "messages: Input should be a valid list";
    return false;
  }
  if (messages->empty()) {
    error = "messages: at least one message is required";
    return false;
  }
  std::size_t i = 0;
  for (const auto& m : *messages) {
    const std::string at = "messages." + std::to_string(i);
    if (!m.is_object()) {
      error = at + ": Input should be a valid dictionary";
      return false;
    }
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string() ||
        (role->get<std::string>() != "user" && role->get<std::string>() != "assistant")) {
      error = at + ".role: Input should be 'user' or 'assistant'";
      return false;
    }
    const auto content = m.find("content");
    if (content == m.end() || !(content->is_string() || content->is_array())) {
      error = at + ".content: Input should be a valid string or a list of content blocks";
      return false;
    }
    const std::string text = content_text(*content);
    out.prompt_bytes += text.size();
    if (role->get<std::string>() == "user") out.last_user_text = text;
    ++i;
  }
  const auto system = body.find("system");
  if (system != body.end() && !system->is_null()) {
    if (!system->is_string() && !system->is_array()) {
      error = "system: Input should be a valid string or a list of text blocks";
      return false;
    }
    out.prompt_bytes += content_text(*system).size();
  }
  out.stream = stream_flags(body).stream;
  return read_cache_marks(body, out, error);
}

// The same answer rule as chat completions: "Mock answer to: <last user text>", cut to
// max_tokens*4 bytes (stop_reason "max_tokens") when the estimate does not fit.
inline std::string messages_body(const messages_request& req) {
  using ojson = nlohmann::ordered_json;
  std::string text = "Mock answer to: " + req.last_user_text;
  std::string stop_reason = "end_turn";
  if (static_cast<std::size_t>(req.max_tokens) < estimate_tokens(text.size())) {
    text = utf8_prefix(text, static_cast<std::size_t>(req.max_tokens) * 4U);
    stop_reason = "max_tokens";
  }
  ojson block;
  block["type"] = "text";
  block["text"] = text;
  ojson usage;
  // input_tokens leaves out what was read from and written to the prompt cache.
  const std::size_t cached = req.cache_read_tokens + req.cache_write_tokens;
  const std::size_t prompt = estimate_tokens(req.prompt_bytes);
  usage["input_tokens"] = prompt > cached ? prompt - cached : 0;
  usage["cache_creation_input_tokens"] = req.cache_write_tokens;
  usage["cache_read_input_tokens"] = req.cache_read_tokens;
  usage["cache_creation"] = ojson{{"ephemeral_5m_input_tokens", req.cache_write_tokens - req.cache_write_1h_tokens},
                                  {"ephemeral_1h_input_tokens", req.cache_write_1h_tokens}};
  usage["output_tokens"] = estimate_tokens(text.size());
  ojson body;
  body["id"] = "msg_" + random_hex(24);
  body["type"] = "message";
  body["role"] = "assistant";
  body["model"] = req.model;
  body["content"] = ojson::array({std::move(block)});
  body["stop_reason"] = stop_reason;
  body["stop_sequence"] = nullptr;
  body["usage"] = std::move(usage);
  return body.dump();
}

}  // namespace detail
}  // namespace requests_engine_mock
