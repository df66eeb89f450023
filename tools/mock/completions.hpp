// requests_engine mock: OpenAI's legacy completions (POST /v1/completions), with `prompt` a
// string or an array of strings, answered the way vLLM, llama.cpp server and OpenAI do: one
// choice per prompt and sample, choices[].index = prompt * n + sample, in no promised order.
#pragma once

#include "common.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace requests_engine_mock {
namespace detail {

struct completions_request {
  std::string model;
  std::vector<std::string> prompts;
  std::int64_t n = 1;
  std::optional<std::int64_t> max_tokens;
  stream_request stream;
};

// Validates a legacy completions body; on failure fills `error` and `param` and returns false.
inline bool parse_completions_request(const nlohmann::json& body, completions_request& out, std::string& error,
                                      nlohmann::json& param) {
  out = completions_request{};
  if (!openai_body_with_model(body, out.model, error, param)) return false;
  const auto prompt = body.find("prompt");
  if (prompt == body.end()) {
    error = "'prompt' is a required property";
    param = "prompt";
    return false;
  }
  if (prompt->is_string()) {
    out.prompts.push_back(prompt->get<std::string>());
  } else if (prompt->is_array() && !prompt->empty()) {
    for (const auto& p : *prompt) {
      if (!p.is_string()) {
        error = "Invalid 'prompt': the requests_engine mock takes a string or an array of strings (no token ids).";
        param = "prompt";
        return false;
      }
      out.prompts.push_back(p.get<std::string>());
    }
  } else {
    error = "Invalid 'prompt': expected a string or a non-empty array of strings.";
    param = "prompt";
    return false;
  }
  std::optional<std::int64_t> n;
  if (!optional_int_field(body, "n", 1, 128, n, error)) {
    param = "n";
    return false;
  }
  out.n = n.value_or(1);
  if (!optional_int_field(body, "max_tokens", 1, INT32_MAX, out.max_tokens, error)) {
    param = "max_tokens";
    return false;
  }
  out.stream = stream_flags(body);
  return true;
}

inline std::size_t completions_prompt_bytes(const completions_request& req) {
  std::size_t bytes = 0;
  for (const auto& p : req.prompts) bytes += p.size();
  return bytes;
}

// The choices come last prompt first: a client must map them back by their index.
inline std::string completions_body(const completions_request& req) {
  using ojson = nlohmann::ordered_json;
  ojson choices = ojson::array();
  std::size_t completion_tokens = 0;
  const auto count = static_cast<std::int64_t>(req.prompts.size());
  for (std::int64_t p = count - 1; p >= 0; --p) {
    const std::string base = "Mock answer to: " + req.prompts[static_cast<std::size_t>(p)];
    for (std::int64_t k = 0; k < req.n; ++k) {
      auto [text, finish_reason] = sample_answer(base, k, req.max_tokens);
      completion_tokens += estimate_tokens(text.size());
      ojson choice;
      choice["text"] = std::move(text);
      choice["index"] = p * req.n + k;
      choice["logprobs"] = nullptr;
      choice["finish_reason"] = finish_reason;
      choices.push_back(std::move(choice));
    }
  }
  const std::size_t prompt_tokens = estimate_tokens(completions_prompt_bytes(req));
  ojson body;
  body["id"] = "cmpl-" + random_hex(24);
  body["object"] = "text_completion";
  body["created"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  body["model"] = req.model;
  body["choices"] = std::move(choices);
  body["usage"] = ojson{{"prompt_tokens", prompt_tokens},
                        {"completion_tokens", completion_tokens},
                        {"total_tokens", prompt_tokens + completion_tokens}};
  return body.dump();
}

}  // namespace detail
}  // namespace requests_engine_mock
