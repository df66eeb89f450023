// requests_engine mock: OpenAI's Responses API (POST /v1/responses): the request checked as the
// real API checks it (chat-only parameters, the required fields of input items and tools, the
// minimum of max_output_tokens) and an answer in the shape of OpenAI's Response object.
#pragma once

#include "common.hpp"
#include "openai.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace requests_engine_mock {
namespace detail {

struct responses_request {
  std::string model;
  std::string last_user_text;
  std::size_t prompt_bytes = 0;
  std::optional<std::int64_t> max_output_tokens;
  nlohmann::json instructions;                    // null when absent
  nlohmann::json tools = nlohmann::json::array();
  nlohmann::json tool_choice = "auto";
  nlohmann::json text_format;                     // null when absent
  nlohmann::json reasoning;                       // null when absent
  nlohmann::json temperature = 1.0;
  nlohmann::json top_p = 1.0;
  bool store = true;
  std::string forced_tool;                        // the tool the answer calls; empty: none
  bool stream = false;
};

// The request's failure in OpenAI's words: message, param, code.
struct responses_refusal {
  std::string message;
  nlohmann::json param;
  nlohmann::json code;
};

inline bool refuse(responses_refusal& out, std::string message, nlohmann::json param, nlohmann::json code = nullptr) {
  out = responses_refusal{std::move(message), std::move(param), std::move(code)};
  return false;
}

inline bool missing(responses_refusal& out, const std::string& param) {
  return refuse(out, "Missing required parameter: '" + param + "'.", param, "missing_required_parameter");
}

// Validates a Responses body; on failure fills `why` and returns false.
inline bool parse_responses_request(const nlohmann::json& body, responses_request& out, responses_refusal& why) {
  if (body.is_discarded() || !body.is_object())
    return refuse(why,
                  "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                  "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
                  "JSON.)",
                  nullptr);
  // Chat completions' parameters, which this API does not take.
  if (body.contains("max_tokens") || body.contains("max_completion_tokens")) {
    const std::string p = body.contains("max_tokens") ? "max_tokens" : "max_completion_tokens";
    return refuse(why, "Unsupported parameter: '" + p + "'. In the Responses API, this parameter has moved to "
                       "'max_output_tokens'.", p, "unsupported_parameter");
  }
  if (body.contains("response_format"))
    return refuse(why, "Unsupported parameter: 'response_format'. In the Responses API, this parameter has moved to "
                       "'text.format'.", "response_format", "unsupported_parameter");
  for (const char* p : {"messages", "n", "stop", "seed", "logprobs", "frequency_penalty", "presence_penalty",
                        "reasoning_effort", "functions", "function_call"})
    if (body.contains(p))
      return refuse(why, std::string("Unknown parameter: '") + p + "'.", p, "unknown_parameter");
  out = responses_request{};
  const auto model = body.find("model");
  if (model == body.end()) return missing(why, "model");
  if (!model->is_string())
    return refuse(why, std::string("Invalid type for 'model': expected a string, but got ") + model->type_name() +
                       " instead.", "model", "invalid_type");
  out.model = model->get<std::string>();
  const auto input = body.find("input");
  if (input == body.end()) return missing(why, "input");
  if (const auto ins = body.find("instructions"); ins != body.end() && !ins->is_null()) {
    if (!ins->is_string())
      return refuse(why, "Invalid type for 'instructions': expected a string.", "instructions", "invalid_type");
    out.instructions = *ins;
    out.prompt_bytes += ins->get_ref<const std::string&>().size();
  }
  if (input->is_string()) {
    out.last_user_text = input->get<std::string>();
    out.prompt_bytes += out.last_user_text.size();
  } else if (input->is_array() && !input->empty()) {
    for (std::size_t i = 0; i < input->size(); ++i) {
      const nlohmann::json& item = (*input)[i];
      const std::string at = "input[" + std::to_string(i) + "]";
      if (!item.is_object()) return refuse(why, "Invalid type for '" + at + "': expected an object.", at, "invalid_type");
      const std::string type = item.value("type", std::string("message"));
      if (type != "message") continue;  // function_call_output and the like: not read here
      const auto role = item.find("role");
      if (role == item.end()) return missing(why, at + ".role");
      static const char* const roles[] = {"user", "assistant", "system", "developer"};
      const bool known = role->is_string() && std::find_if(std::begin(roles), std::end(roles), [&](const char* r) {
                                                return role->get_ref<const std::string&>() == r;
                                              }) != std::end(roles);
      if (!known)
        return refuse(why, "Invalid value: '" + (role->is_string() ? role->get<std::string>() : role->dump()) +
                           "'. Supported values are: 'user', 'assistant', 'system', and 'developer'.",
                      at + ".role", "invalid_value");
      const auto content = item.find("content");
      if (content == item.end()) return missing(why, at + ".content");
      std::string text;
      if (content->is_string()) {
        text = content->get<std::string>();
      } else if (content->is_array()) {
        const bool assistant = role->get_ref<const std::string&>() == "assistant";
        for (std::size_t k = 0; k < content->size(); ++k) {
          const nlohmann::json& part = (*content)[k];
          const std::string pat = at + ".content[" + std::to_string(k) + "]";
          const std::string kind = part.is_object() ? part.value("type", std::string()) : std::string();
          if (kind == "input_text" || (assistant && kind == "output_text")) {
            if (!part.contains("text") || !part["text"].is_string()) return missing(why, pat + ".text");
            text += (text.empty() ? "" : "\n") + part["text"].get<std::string>();
          } else if (kind == "input_image" && !assistant) {
            if (!part.contains("detail")) return missing(why, pat + ".detail");
            const std::string detail = part["detail"].is_string() ? part["detail"].get<std::string>() : std::string();
            if (detail != "auto" && detail != "low" && detail != "high")
              return refuse(why, "Invalid value: '" + detail + "'. Supported values are: 'low', 'high', and 'auto'.",
                            pat + ".detail", "invalid_value");
            if (!part.contains("image_url") && !part.contains("file_id"))
              return refuse(why, "Invalid '" + pat + "': one of 'image_url' or 'file_id' must be provided.", pat,
                            "invalid_value");
          } else if (kind == "input_file" && !assistant) {
          } else {
            return refuse(why, "Invalid value: '" + kind + "'. Supported values are: " +
                               (assistant ? "'output_text' and 'refusal'." : "'input_text', 'input_image', and "
                                                                              "'input_file'."),
                          pat + ".type", "invalid_value");
          }
        }
      } else {
        return refuse(why, "Invalid type for '" + at + ".content': expected a string or an array.", at + ".content",
                      "invalid_type");
      }
      out.prompt_bytes += text.size();
      if (role->get_ref<const std::string&>() == "user") out.last_user_text = text;
    }
  } else {
    return refuse(why, "Invalid 'input': expected a string or a non-empty array of input items.", "input",
                  "invalid_value");
  }
  std::string error;
  if (!optional_int_field(body, "max_output_tokens", INT32_MIN, INT32_MAX, out.max_output_tokens, error))
    return refuse(why, error, "max_output_tokens", "invalid_type");
  if (out.max_output_tokens && *out.max_output_tokens < 16)
    return refuse(why, "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got " +
                       std::to_string(*out.max_output_tokens) + " instead.",
                  "max_output_tokens", "integer_below_min_value");
  if (const auto tools = body.find("tools"); tools != body.end()) {
    if (!tools->is_array()) return refuse(why, "Invalid type for 'tools': expected an array.", "tools", "invalid_type");
    for (std::size_t i = 0; i < tools->size(); ++i) {
      const nlohmann::json& t = (*tools)[i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("type")) return missing(why, at + ".type");
      if (t["type"] != "function") continue;
      if (t.contains("function"))
        return refuse(why, "Unknown parameter: '" + at + ".function'.", at + ".function", "unknown_parameter");
      for (const char* field : {"name", "parameters", "strict"})
        if (!t.contains(field)) return missing(why, at + "." + field);
    }
    out.tools = *tools;
  }
  if (const auto tc = body.find("tool_choice"); tc != body.end()) {
    out.tool_choice = *tc;
    if (tc->is_string()) {
      const std::string c = tc->get<std::string>();
      if (c != "auto" && c != "none" && c != "required")
        return refuse(why, "Invalid value: '" + c + "'. Supported values are: 'none', 'auto', and 'required'.",
                      "tool_choice", "invalid_value");
      if (c == "required") {
        if (out.tools.empty())
          return refuse(why, "Tool choice 'required' must be specified with 'tools' parameter.", "tool_choice",
                        nullptr);
        out.forced_tool = out.tools[0].value("name", std::string());
      }
    } else if (tc->is_object() && tc->value("type", std::string()) == "function") {
      if (!tc->contains("name") || !(*tc)["name"].is_string()) return missing(why, "tool_choice.name");
      out.forced_tool = (*tc)["name"].get<std::string>();
      bool found = false;
      for (const auto& t : out.tools) found = found || t.value("name", std::string()) == out.forced_tool;
      if (!found)
        return refuse(why, "Tool choice '" + out.forced_tool + "' not found in 'tools' parameter.", "tool_choice",
                      nullptr);
    } else {
      return refuse(why, "Invalid 'tool_choice': expected a string or an object of type 'function'.", "tool_choice",
                    "invalid_value");
    }
  }
  if (const auto text = body.find("text"); text != body.end() && text->is_object() && text->contains("format")) {
    const nlohmann::json& f = (*text)["format"];
    const std::string type = f.is_object() ? f.value("type", std::string()) : std::string();
    if (type == "json_schema") {
      for (const char* field : {"name", "schema"})
        if (!f.contains(field)) return missing(why, std::string("text.format.") + field);
    } else if (type != "json_object" && type != "text") {
      return refuse(why, "Invalid value: '" + type + "'. Supported values are: 'text', 'json_object', and "
                         "'json_schema'.", "text.format.type", "invalid_value");
    }
    out.text_format = f;
  }
  if (const auto r = body.find("reasoning"); r != body.end() && !r->is_null()) {
    const std::string effort = r->is_object() ? r->value("effort", std::string()) : std::string();
    if (effort != "minimal" && effort != "low" && effort != "medium" && effort != "high" && effort != "none")
      return refuse(why, "Invalid value: '" + effort + "'. Supported values are: 'minimal', 'low', 'medium', and "
                         "'high'.", "reasoning.effort", "invalid_value");
    out.reasoning = *r;
  }
  if (const auto t = body.find("temperature"); t != body.end() && t->is_number()) out.temperature = *t;
  if (const auto t = body.find("top_p"); t != body.end() && t->is_number()) out.top_p = *t;
  if (const auto s = body.find("store"); s != body.end() && s->is_boolean()) out.store = s->get<bool>();
  out.stream = stream_flags(body).stream;
  return true;
}

// A sample value for each property of a tool's JSON Schema (the mock's "arguments").
inline nlohmann::json sample_arguments(const nlohmann::json& schema) {
  nlohmann::json args = nlohmann::json::object();
  if (!schema.is_object() || !schema.contains("properties") || !schema["properties"].is_object()) return args;
  for (const auto& [name, prop] : schema["properties"].items()) {
    const std::string type = prop.is_object() ? prop.value("type", std::string()) : std::string();
    if (type == "integer" || type == "number") args[name] = 1;
    else if (type == "boolean") args[name] = true;
    else if (type == "array") args[name] = nlohmann::json::array();
    else if (type == "object") args[name] = nlohmann::json::object();
    else args[name] = "mock";
  }
  return args;
}

inline std::string responses_body(const responses_request& req) {
  using ojson = nlohmann::ordered_json;
  const std::string base = "Mock answer to: " + req.last_user_text;
  const std::int64_t reasoning = is_reasoning_model(req.model) ? 16 : 0;
  ojson output = ojson::array();
  if (reasoning > 0) {
    ojson r;
    r["id"] = "rs_" + random_hex(32);
    r["type"] = "reasoning";
    r["summary"] = ojson::array();
    output.push_back(std::move(r));
  }
  std::string status = "completed";
  ojson incomplete = nullptr;
  std::size_t answer_bytes = 0;
  if (!req.forced_tool.empty()) {
    nlohmann::json schema;
    for (const auto& t : req.tools)
      if (t.value("name", std::string()) == req.forced_tool) schema = t.value("parameters", nlohmann::json());
    ojson call;
    call["type"] = "function_call";
    call["id"] = "fc_" + random_hex(32);
    call["call_id"] = "call_" + random_hex(24);
    call["name"] = req.forced_tool;
    call["arguments"] = sample_arguments(schema).dump();
    call["status"] = "completed";
    answer_bytes = call["arguments"].get_ref<const std::string&>().size();
    output.push_back(std::move(call));
  } else {
    ojson part;
    if (req.last_user_text.find("please refuse") != std::string::npos) {
      part["type"] = "refusal";
      part["refusal"] = "I'm sorry, but I can't help with that.";
      answer_bytes = part["refusal"].get_ref<const std::string&>().size();
    } else {
      std::string text;
      const std::string format = req.text_format.is_object() ? req.text_format.value("type", std::string()) : "";
      if (format == "json_schema" || format == "json_object") {
        text = nlohmann::json{{"answer", base}}.dump();
      } else {
        auto a = sample_answer(base, 0, req.max_output_tokens);
        text = std::move(a.text);
        if (a.finish_reason == "length") status = "incomplete";
      }
      // A small budget runs out (the reasoning alone may use it up).
      if (req.max_output_tokens && *req.max_output_tokens < 20) status = "incomplete";
      if (status == "incomplete") {
        text = utf8_prefix(text, static_cast<std::size_t>(req.max_output_tokens.value_or(16)) * 2U);
        incomplete = ojson{{"reason", "max_output_tokens"}};
      }
      answer_bytes = text.size();
      part["type"] = "output_text";
      part["text"] = std::move(text);
      part["annotations"] = ojson::array();
    }
    ojson msg;
    msg["type"] = "message";
    msg["id"] = "msg_" + random_hex(32);
    msg["status"] = status == "incomplete" ? "incomplete" : "completed";
    msg["role"] = "assistant";
    msg["content"] = ojson::array({std::move(part)});
    output.push_back(std::move(msg));
  }
  const auto input_tokens = static_cast<std::int64_t>(estimate_tokens(req.prompt_bytes));
  const auto output_tokens = static_cast<std::int64_t>(estimate_tokens(answer_bytes)) + reasoning;
  ojson usage;
  usage["input_tokens"] = input_tokens;
  usage["input_tokens_details"] = ojson{{"cached_tokens", 0}};
  usage["output_tokens"] = output_tokens;
  usage["output_tokens_details"] = ojson{{"reasoning_tokens", reasoning}};
  usage["total_tokens"] = input_tokens + output_tokens;

  ojson body;
  body["id"] = "resp_" + random_hex(48);
  body["object"] = "response";
  body["created_at"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  body["status"] = status;
  body["error"] = nullptr;
  body["incomplete_details"] = std::move(incomplete);
  body["instructions"] = req.instructions;
  body["max_output_tokens"] = req.max_output_tokens ? ojson(*req.max_output_tokens) : ojson(nullptr);
  body["model"] = req.model;
  body["output"] = std::move(output);
  body["parallel_tool_calls"] = true;
  body["previous_response_id"] = nullptr;
  body["reasoning"] = reasoning > 0 || !req.reasoning.is_null()
                          ? ojson{{"effort", req.reasoning.is_object() ? ojson(req.reasoning.value("effort", "medium"))
                                                                       : ojson("medium")},
                                  {"summary", nullptr}}
                          : ojson{{"effort", nullptr}, {"summary", nullptr}};
  body["store"] = req.store;
  body["temperature"] = req.temperature;
  body["text"] = ojson{{"format", req.text_format.is_null() ? ojson{{"type", "text"}} : ojson(req.text_format)}};
  body["tool_choice"] = req.tool_choice;
  body["tools"] = req.tools;
  body["top_p"] = req.top_p;
  body["truncation"] = "disabled";
  body["usage"] = std::move(usage);
  body["user"] = nullptr;
  body["metadata"] = ojson::object();
  return body.dump();
}

}  // namespace detail
}  // namespace requests_engine_mock
