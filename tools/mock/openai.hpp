// requests_engine mock: OpenAI chat completions, the checks of a request and the answer to it,
// and OpenAI's error shape (also the shape of unknown routes and of the OpenAI batch routes).
#pragma once

#include "common.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace requests_engine_mock {
namespace detail {

inline std::string openai_error_body(const std::string& message, const std::string& type, const nlohmann::json& param,
                                     const nlohmann::json& code) {
  nlohmann::ordered_json err;
  err["message"] = message;
  err["type"] = type;
  err["param"] = param;
  err["code"] = code;
  nlohmann::ordered_json body;
  body["error"] = std::move(err);
  return body.dump();
}

inline void set_openai_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                             const nlohmann::json& param, const nlohmann::json& code) {
  set_json(res, status, openai_error_body(message, type, param, code));
}

inline bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The mock's reasoning models (o1, o3, o4, gpt-5 families, or a name with "reason"): they spend
// 16 reasoning tokens per answer, counted in the output tokens.
inline bool is_reasoning_model(const std::string& model) {
  return starts_with(model, "o1") || starts_with(model, "o3") || starts_with(model, "o4") ||
         starts_with(model, "gpt-5") || model.find("reason") != std::string::npos;
}

// Models OpenAI serves on /v1/responses only.
inline bool is_responses_only_model(const std::string& model) {
  return starts_with(model, "o1-pro") || starts_with(model, "o3-pro") || starts_with(model, "gpt-5-pro") ||
         model.find("codex") != std::string::npos;
}

struct chat_request {
  std::string model;
  std::string last_user_text;
  std::size_t prompt_bytes = 0;
  std::int64_t n = 1;
  std::optional<std::int64_t> max_tokens;
  stream_request stream;
};

// Validates an OpenAI chat completions body. On failure fills `error` and
// `param` (the offending property, or null) and returns false.
inline bool parse_chat_request(const nlohmann::json& body, chat_request& out, std::string& error,
                               nlohmann::json& param) {
  std::string model;
  if (!openai_body_with_model(body, model, error, param)) return false;
  const auto messages = body.find("messages");
  if (messages == body.end()) {
    error = "'messages' is a required property";
    param = "messages";
    return false;
  }
  if (!messages->is_array()) {
    error = std::string("Invalid type for 'messages': expected an array, but got ") + messages->type_name() +
            " instead.";
    param = "messages";
    return false;
  }
  if (messages->empty()) {
    error =
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array "
        "instead.";
    param = "messages";
    return false;
  }
  out = chat_request{};
  out.model = std::move(model);
  std::size_t i = 0;
  for (const auto& m : *messages) {
    const auto role = m.is_object() ? m.find("role") : m.end();
    if (!m.is_object() || role == m.end() || !role->is_string()) {
      error = "Invalid type for 'messages[" + std::to_string(i) + "]': expected an object with a string 'role'.";
      param = "messages[" + std::to_string(i) + "]";
      return false;
    }
    const auto content = m.find("content");
    const std::string text = content == m.end() ? std::string() : content_text(*content);
    out.prompt_bytes += text.size();
    if (role->get<std::string>() == "user") out.last_user_text = text;
    ++i;
  }
  std::optional<std::int64_t> n;
  if (!optional_int_field(body, "n", 1, 128, n, error)) {
    param = "n";
    return false;
  }
  out.n = n.value_or(1);
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  if (!optional_int_field(body, "max_tokens", 1, INT32_MAX, max_tokens, error)) {
    param = "max_tokens";
    return false;
  }
  if (!optional_int_field(body, "max_completion_tokens", 1, INT32_MAX, max_completion_tokens, error)) {
    param = "max_completion_tokens";
    return false;
  }
  out.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  out.stream = stream_flags(body);
  return true;
}

inline std::string chat_completion_body(const chat_request& req) {
  using ojson = nlohmann::ordered_json;
  const std::string base = "Mock answer to: " + req.last_user_text;
  ojson choices = ojson::array();
  std::size_t completion_tokens = 0;
  const std::size_t reasoning_per_choice = is_reasoning_model(req.model) ? 16 : 0;
  for (std::int64_t i = 0; i < req.n; ++i) {
    auto [text, finish_reason] = sample_answer(base, i, req.max_tokens);
    completion_tokens += estimate_tokens(text.size()) + reasoning_per_choice;
    ojson message;
    message["role"] = "assistant";
    message["content"] = std::move(text);
    message["refusal"] = nullptr;
    ojson choice;
    choice["index"] = i;
    choice["message"] = std::move(message);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish_reason;
    choices.push_back(std::move(choice));
  }
  const std::size_t prompt_tokens = estimate_tokens(req.prompt_bytes);
  ojson usage;
  usage["prompt_tokens"] = prompt_tokens;
  usage["completion_tokens"] = completion_tokens;
  usage["total_tokens"] = prompt_tokens + completion_tokens;
  usage["prompt_tokens_details"] = ojson{{"cached_tokens", 0}, {"audio_tokens", 0}};
  usage["completion_tokens_details"] = ojson{{"reasoning_tokens", reasoning_per_choice * static_cast<std::size_t>(req.n)},
                                             {"audio_tokens", 0},
                                             {"accepted_prediction_tokens", 0},
                                             {"rejected_prediction_tokens", 0}};
  ojson body;
  body["id"] = "chatcmpl-" + random_hex(24);
  body["object"] = "chat.completion";
  body["created"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  body["model"] = req.model;
  body["choices"] = std::move(choices);
  body["usage"] = std::move(usage);
  body["system_fingerprint"] = "fp_mock";
  return body.dump();
}

}  // namespace detail
}  // namespace requests_engine_mock
