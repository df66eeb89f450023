// Input of `requests-engine run`: JSONL files in the OpenAI Batch input format or in the plain
// prompts format, read into conversations and params. Included by tools/run_command.hpp only.
#pragma once

#include "requests_engine.hpp"

#include <cstdint>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace requests_engine_cli {

namespace re = requests_engine;
using re::json;

enum class input_format { plain, openai_batch };

/// One input line that could be read.
struct input_item {
  std::size_t line = 0;   ///< 1-based line number in the file
  json id;                ///< plain: "id" as given (string or integer); batch: "custom_id"
  std::string id_text;    ///< the id as text, for messages and for telling duplicates apart
  re::conversation conv;  ///< empty when `par.extra()` carries a whole OpenAI body (see openai_passthrough)
  re::params par;
  std::string hash;       ///< request hash, when the provider could build the body
  std::optional<std::int64_t> dimensions;  ///< embeddings: the line's "dimensions", if any
  bool base64 = false;    ///< embeddings: the line asked for encoding_format "base64" (its answer is written so)
};

struct input_file {
  input_format format = input_format::plain;
  std::vector<input_item> items;
  std::size_t lines = 0;              ///< non-empty lines read
  std::vector<std::string> problems;  ///< "line N: why", one per skipped line
  /// OpenAI Batch: the endpoint every line names (one per file, as in OpenAI's Batch API),
  /// normalised: /v1/chat/completions, /v1/responses or /v1/embeddings.
  std::string batch_url;
};

/// How the input is translated: the OpenAI Batch body goes through unchanged to the OpenAI
/// provider; other providers get it translated into the engine's model.
struct input_options {
  bool raw_openai_body = false;     ///< chat completions lines: the body goes as it is
  bool raw_responses_body = false;  ///< /v1/responses lines: the body goes as it is
  /// `embed`: plain lines are {"id", "text"}, and OpenAI Batch lines must be /v1/embeddings.
  bool embed = false;
  std::optional<double> temperature;      ///< default when a line sets none
  std::optional<std::int64_t> max_tokens;  ///< default when a line sets none
  /// --cache-system-prompt: a prompt-cache breakpoint after every line's system prompt.
  bool cache_system_prompt = false;
  std::optional<std::string> prompt_cache_ttl;  ///< --prompt-cache-ttl
};

namespace detail {

inline bool base64_decode(const std::string& in, std::string& out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  return true;
}

// Images given as data: URLs become bytes, so that providers without image URLs can take them.
inline bool image_part(const std::string& url, re::content_part& out, std::string& why) {
  const std::string prefix = "data:";
  if (url.compare(0, prefix.size(), prefix) != 0) {
    out = re::content_part::image_url(url);
    return true;
  }
  const auto comma = url.find(',');
  const auto b64 = url.find(";base64");
  if (comma == std::string::npos || b64 == std::string::npos || b64 > comma) {
    why = "an image data: URL must be base64 (data:<media type>;base64,<data>)";
    return false;
  }
  std::string bytes;
  if (!base64_decode(url.substr(comma + 1), bytes)) {
    why = "an image data: URL holds invalid base64";
    return false;
  }
  out = re::content_part::image_bytes(std::move(bytes), url.substr(prefix.size(), b64 - prefix.size()));
  return true;
}

// One content part of a chat message: text, image_url or input_audio, added to `into`.
inline bool chat_part(const json& part, const std::string& pw, re::message& into, std::string& why) {
  const std::string type = part.is_object() ? part.value("type", std::string()) : std::string();
  if (type == "text" && part.contains("text") && part["text"].is_string()) {
    into.content.push_back(re::content_part::from_text(part["text"].get<std::string>()));
  } else if (type == "image_url" && part.contains("image_url")) {
    const json& iu = part["image_url"];
    const json url = iu.is_object() ? iu.value("url", json()) : iu;
    re::content_part p;
    if (!url.is_string() || !image_part(url.get<std::string>(), p, why)) {
      if (why.empty()) why = "'image_url' needs a string 'url'";
      why = pw + ": " + why;
      return false;
    }
    into.content.push_back(std::move(p));
  } else if (type == "input_audio" && part.contains("input_audio") && part["input_audio"].is_object()) {
    const json& a = part["input_audio"];
    std::string bytes;
    if (!a.contains("data") || !a["data"].is_string() || !a.contains("format") || !a["format"].is_string() ||
        !base64_decode(a["data"].get<std::string>(), bytes)) {
      why = pw + ": 'input_audio' needs base64 'data' and a 'format'";
      return false;
    }
    into.content.push_back(re::content_part::audio_bytes(std::move(bytes), a["format"].get<std::string>()));
  } else {
    why = pw + ": a content part must be text, image_url or input_audio";
    return false;
  }
  return true;
}

// The role and content every OpenAI-shaped message has (chat messages, Responses input items):
// the role as a re::role (system and developer: role::system), the content a string or an
// array of parts, each read by `read_part(part, "where.content[k]", msg, why)`.
inline bool read_role_and_content(const json& m, const std::string& where, re::message& msg, std::string& why,
                                  bool (*read_part)(const json&, const std::string&, re::message&, std::string&)) {
  const std::string r = m["role"].get<std::string>();
  if (r == "system" || r == "developer") {
    msg.author = re::role::system;
  } else if (r == "user") {
    msg.author = re::role::user;
  } else if (r == "assistant") {
    msg.author = re::role::assistant;
  } else {
    why = where + ": role '" + r + "' is not supported by requests-engine run (system, developer, user, assistant)";
    return false;
  }
  const json content = m.value("content", json());
  if (content.is_string()) {
    msg.content.push_back(re::content_part::from_text(content.get<std::string>()));
    return true;
  }
  if (!content.is_array()) {
    why = where + ": 'content' must be a string or an array of parts";
    return false;
  }
  for (std::size_t k = 0; k < content.size(); ++k)
    if (!read_part(content[k], where + ".content[" + std::to_string(k) + "]", msg, why)) return false;
  return true;
}

// A prompt-cache breakpoint as LiteLLM and Anthropic write it, on a message or a content part:
// {"type": "ephemeral"} (its ttl is one per run: --prompt-cache-ttl).
inline bool cache_control_field(const json& holder, const std::string& where, bool& marked, std::string& why) {
  if (!holder.is_object() || !holder.contains("cache_control")) return true;
  const json& cc = holder["cache_control"];
  if (!cc.is_object() || cc.value("type", std::string()) != "ephemeral" || cc.size() != 1) {
    why = where + ".cache_control must be {\"type\": \"ephemeral\"} (the ttl is set for the run with "
                  "--prompt-cache-ttl)";
    return false;
  }
  marked = true;
  return true;
}

// OpenAI-shaped messages (role + content as a string or a list of parts) into a conversation.
// A message (or one of its parts) with a cache_control, and with `mark_system` every system
// message, gets a prompt-cache breakpoint after it.
inline bool to_conversation(const json& messages, re::conversation& conv, std::string& why, bool mark_system = false) {
  if (!messages.is_array() || messages.empty()) {
    why = "'messages' must be a non-empty array";
    return false;
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      why = where + " must be an object with a string 'role'";
      return false;
    }
    for (const auto& field : m.items()) {
      if (field.key() != "role" && field.key() != "content" && field.key() != "cache_control") {
        why = where + ": field '" + field.key() + "' is not supported by requests-engine run";
        return false;
      }
    }
    re::message msg;
    if (!read_role_and_content(m, where, msg, why, chat_part)) return false;
    bool marked = mark_system && msg.author == re::role::system;
    if (!cache_control_field(m, where, marked, why)) return false;
    if (m.contains("content") && m["content"].is_array())
      for (std::size_t k = 0; k < m["content"].size(); ++k)
        if (!cache_control_field(m["content"][k], where + ".content[" + std::to_string(k) + "]", marked, why))
          return false;
    conv.add(std::move(msg));
    if (marked) conv.cache_breakpoint();
  }
  return true;
}

inline bool number_field(const json& o, const char* key, std::optional<double>& out, std::string& why) {
  if (!o.contains(key)) return true;
  if (!o[key].is_number()) {
    why = std::string("'") + key + "' must be a number";
    return false;
  }
  out = o[key].get<double>();
  return true;
}

inline bool integer_field(const json& o, const char* key, std::optional<std::int64_t>& out, std::string& why) {
  if (!o.contains(key)) return true;
  if (!o[key].is_number_integer()) {
    why = std::string("'") + key + "' must be an integer";
    return false;
  }
  // Read as unsigned, 2^63 and beyond would wrap to a negative number.
  if (o[key].is_number_unsigned() &&
      o[key].get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    why = std::string("'") + key + "' is too large (beyond 64-bit integers)";
    return false;
  }
  out = o[key].get<std::int64_t>();
  return true;
}

inline bool stop_field(const json& o, std::vector<std::string>& out, std::string& why) {
  if (!o.contains("stop") || o["stop"].is_null()) return true;
  const json& s = o["stop"];
  if (s.is_string()) {
    out.push_back(s.get<std::string>());
    return true;
  }
  if (s.is_array()) {
    for (const auto& x : s) {
      if (!x.is_string()) {
        why = "'stop' must be a string or an array of strings";
        return false;
      }
      out.push_back(x.get<std::string>());
    }
    return true;
  }
  why = "'stop' must be a string or an array of strings";
  return false;
}

// The sampling fields the plain format and the OpenAI body share.
inline bool common_params(const json& o, re::params& p, std::string& why) {
  std::optional<double> temperature, top_p;
  std::optional<std::int64_t> max_tokens, max_completion_tokens, seed, n;
  std::vector<std::string> stop;
  if (!number_field(o, "temperature", temperature, why) || !number_field(o, "top_p", top_p, why) ||
      !integer_field(o, "max_tokens", max_tokens, why) ||
      !integer_field(o, "max_completion_tokens", max_completion_tokens, why) || !integer_field(o, "seed", seed, why) ||
      !integer_field(o, "n", n, why) || !stop_field(o, stop, why))
    return false;
  if (temperature) p.temperature(*temperature);
  if (top_p) p.top_p(*top_p);
  if (max_completion_tokens) max_tokens = max_completion_tokens;
  if (max_tokens) p.max_tokens(*max_tokens);
  if (seed) p.seed(*seed);
  if (n) {
    if (*n < 1 || *n > 128) {
      why = "'n' must be between 1 and 128";
      return false;
    }
    p.n(static_cast<int>(*n));
  }
  if (!stop.empty()) p.stop(std::move(stop));
  return true;
}

// An OpenAI chat-completions body for a provider other than OpenAI: every field must have an
// equivalent in the engine's model, or the line is refused (silently dropping a field would
// change the answer without saying so).
inline bool translate_openai_body(const json& body, re::conversation& conv, re::params& p, std::string& why,
                                  bool mark_system = false) {
  static const std::set<std::string> known = {
      "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n", "stop",
      "response_format", "tools", "tool_choice", "user", "metadata", "store"};
  for (const auto& field : body.items()) {
    if (known.count(field.key()) == 0) {
      why = "body field '" + field.key() + "' has no equivalent outside --provider openai";
      return false;
    }
  }
  if (!to_conversation(body.value("messages", json()), conv, why, mark_system) || !common_params(body, p, why))
    return false;
  if (body.contains("response_format")) {
    const json& rf = body["response_format"];
    const std::string type = rf.is_object() ? rf.value("type", std::string()) : std::string();
    if (type == "json_object") {
      p.json_mode();
    } else if (type == "json_schema" && rf.contains("json_schema") && rf["json_schema"].is_object()) {
      const json& js = rf["json_schema"];
      p.json_schema(js.value("name", std::string("output")), js.value("schema", json::object()),
                    js.value("strict", false));
    } else if (type != "text") {
      why = "'response_format' must be text, json_object or json_schema";
      return false;
    }
  }
  if (body.contains("tools")) {
    std::vector<re::tool> tools;
    for (const auto& t : body["tools"]) {
      if (!t.is_object() || t.value("type", std::string()) != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        why = "'tools' must be a list of {\"type\":\"function\",\"function\":{\"name\",...}}";
        return false;
      }
      const json& fn = t["function"];
      tools.push_back(re::tool{fn["name"].get<std::string>(), fn.value("description", std::string()),
                               fn.value("parameters", json::object())});
    }
    p.tools(std::move(tools));
  }
  if (body.contains("tool_choice")) {
    const json& tc = body["tool_choice"];
    if (tc.is_string()) {
      p.tool_choice(tc.get<std::string>());
    } else if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
               tc["function"].contains("name") && tc["function"]["name"].is_string()) {
      p.tool_choice(tc["function"]["name"].get<std::string>());
    } else {
      why = "'tool_choice' must be a string or {\"type\":\"function\",\"function\":{\"name\"}}";
      return false;
    }
  }
  return true;
}

// The API an OpenAI Batch line's url names ("chat", "responses", "embeddings"), or empty.
inline std::string api_of_url(const std::string& url) {
  if (url == "/v1/chat/completions" || url == "/chat/completions") return "chat";
  if (url == "/v1/responses" || url == "/responses") return "responses";
  if (url == "/v1/embeddings" || url == "/embeddings") return "embeddings";
  return std::string();
}

// Responses API tools ({"type":"function","name",...}, flat) and tool_choice.
inline bool responses_tools(const json& body, re::params& p, std::string& why) {
  if (body.contains("tools")) {
    std::vector<re::tool> tools;
    if (!body["tools"].is_array()) {
      why = "'tools' must be an array";
      return false;
    }
    for (const auto& t : body["tools"]) {
      if (!t.is_object() || t.value("type", std::string()) != "function" || !t.contains("name") ||
          !t["name"].is_string()) {
        why = "'tools' must be a list of {\"type\":\"function\",\"name\",...} (other tool types have no "
              "equivalent outside --provider openai)";
        return false;
      }
      tools.push_back(re::tool{t["name"].get<std::string>(), t.value("description", std::string()),
                               t.value("parameters", json::object())});
    }
    p.tools(std::move(tools));
  }
  if (body.contains("tool_choice")) {
    const json& tc = body["tool_choice"];
    if (tc.is_string()) {
      p.tool_choice(tc.get<std::string>());
    } else if (tc.is_object() && tc.value("type", std::string()) == "function" && tc.contains("name") &&
               tc["name"].is_string()) {
      p.tool_choice(tc["name"].get<std::string>());
    } else {
      why = "'tool_choice' must be a string or {\"type\":\"function\",\"name\"}";
      return false;
    }
  }
  return true;
}

// One content part of a Responses input item: input_text, output_text or input_image.
inline bool responses_part(const json& part, const std::string& pw, re::message& into, std::string& why) {
  const std::string pt = part.is_object() ? part.value("type", std::string()) : std::string();
  if ((pt == "input_text" || pt == "output_text") && part.contains("text") && part["text"].is_string()) {
    into.content.push_back(re::content_part::from_text(part["text"].get<std::string>()));
    return true;
  }
  if (pt == "input_image" && part.contains("image_url") && part["image_url"].is_string()) {
    re::content_part p;
    if (!image_part(part["image_url"].get<std::string>(), p, why)) {
      why = pw + ": " + why;
      return false;
    }
    into.content.push_back(std::move(p));
    return true;
  }
  why = pw + ": a content part must be input_text, output_text or input_image with an image_url";
  return false;
}

// A Responses API `input`: a string, or a list of message items whose content is a string or
// input_text / input_image / output_text parts.
inline bool responses_input(const json& input, re::conversation& conv, std::string& why) {
  if (input.is_string()) {
    conv.user(input.get<std::string>());
    return true;
  }
  if (!input.is_array() || input.empty()) {
    why = "'input' must be a string or a non-empty array of items";
    return false;
  }
  std::string system;
  for (std::size_t i = 0; i < input.size(); ++i) {
    const json& m = input[i];
    const std::string where = "input[" + std::to_string(i) + "]";
    const std::string type = m.is_object() ? m.value("type", std::string("message")) : std::string();
    if (type != "message" || !m.contains("role") || !m["role"].is_string()) {
      why = where + " must be a message item with a string 'role' (item type '" + type +
            "' has no equivalent outside --provider openai)";
      return false;
    }
    for (const auto& field : m.items()) {
      if (field.key() != "role" && field.key() != "content" && field.key() != "type") {
        why = where + ": field '" + field.key() + "' is not supported outside --provider openai";
        return false;
      }
    }
    re::message msg;
    if (!read_role_and_content(m, where, msg, why, responses_part)) return false;
    if (msg.author == re::role::system) {
      system += (system.empty() ? "" : "\n\n") + msg.text();
      continue;
    }
    conv.add(std::move(msg));
  }
  if (!system.empty()) conv.system(conv.system() ? *conv.system() + "\n\n" + system : system);
  if (conv.messages().empty()) {
    why = "'input' holds no user or assistant message";
    return false;
  }
  return true;
}

// A Responses API body for a provider other than OpenAI's Responses API: translated field by
// field into the engine's model; a field without an equivalent refuses the line.
inline bool translate_responses_body(const json& body, re::conversation& conv, re::params& p, std::string& why) {
  static const std::set<std::string> known = {"model", "input", "instructions", "max_output_tokens", "temperature",
                                              "top_p", "text", "tools", "tool_choice", "reasoning", "store",
                                              "metadata", "user"};
  for (const auto& field : body.items()) {
    if (known.count(field.key()) == 0) {
      why = "body field '" + field.key() + "' of a /v1/responses line has no equivalent here";
      return false;
    }
  }
  if (body.contains("instructions")) {
    if (!body["instructions"].is_string()) {
      why = "'instructions' must be a string";
      return false;
    }
    conv.system(body["instructions"].get<std::string>());
  }
  if (!responses_input(body.value("input", json()), conv, why)) return false;
  std::optional<double> temperature, top_p;
  std::optional<std::int64_t> max_output;
  if (!number_field(body, "temperature", temperature, why) || !number_field(body, "top_p", top_p, why) ||
      !integer_field(body, "max_output_tokens", max_output, why))
    return false;
  if (temperature) p.temperature(*temperature);
  if (top_p) p.top_p(*top_p);
  if (max_output) p.max_tokens(*max_output);
  if (body.contains("model") && body["model"].is_string()) p.model(body["model"].get<std::string>());
  if (body.contains("text")) {
    const json& t = body["text"];
    const json format = t.is_object() ? t.value("format", json()) : json();
    const std::string type = format.is_object() ? format.value("type", std::string()) : std::string();
    if (type == "json_object") {
      p.json_mode();
    } else if (type == "json_schema" && format.contains("schema") && format["schema"].is_object()) {
      p.json_schema(format.value("name", std::string("output")), format["schema"], format.value("strict", false));
    } else if (type != "text") {
      why = "'text.format' must be text, json_object or json_schema (with a 'schema')";
      return false;
    }
  }
  if (body.contains("reasoning")) {
    const json& r = body["reasoning"];
    if (!r.is_object() || (r.size() == 1 && !r.contains("effort")) || r.size() > 1 ||
        (r.contains("effort") && !r["effort"].is_string())) {
      why = "'reasoning' must be {\"effort\": \"minimal\"|\"low\"|\"medium\"|\"high\"}";
      return false;
    }
    if (r.contains("effort")) p.reasoning_effort(r["effort"].get<std::string>());
  }
  return responses_tools(body, p, why);
}

// An /v1/embeddings line: one input string (each input is cached on its own, so an array is
// split into lines), the model, and optionally dimensions and encoding_format.
inline bool read_embeddings_body(const json& body, input_item& item, std::string& why) {
  static const std::set<std::string> known = {"model", "input", "dimensions", "encoding_format", "user"};
  for (const auto& field : body.items()) {
    if (known.count(field.key()) == 0) {
      why = "body field '" + field.key() + "' is not an embeddings field (model, input, dimensions, encoding_format)";
      return false;
    }
  }
  const json input = body.value("input", json());
  if (input.is_array()) {
    why = "'input' must be one string per line (each input is cached on its own): put each text on a line of its own";
    return false;
  }
  if (!input.is_string() || input.get<std::string>().empty()) {
    why = "'input' must be a non-empty string";
    return false;
  }
  item.conv.user(input.get<std::string>());
  if (body.contains("model")) {
    if (!body["model"].is_string()) {
      why = "'model' must be a string";
      return false;
    }
    item.par.model(body["model"].get<std::string>());
  }
  if (body.contains("dimensions")) {
    if (!body["dimensions"].is_number_integer() || body["dimensions"].get<std::int64_t>() < 1) {
      why = "'dimensions' must be an integer of at least 1";
      return false;
    }
    item.dimensions = body["dimensions"].get<std::int64_t>();
  }
  if (body.contains("encoding_format") &&
      !(body["encoding_format"] == "float" || body["encoding_format"] == "base64")) {
    why = "'encoding_format' must be float or base64";
    return false;
  }
  item.base64 = body.value("encoding_format", "") == "base64";
  return true;
}

// A plain `embed` line: {"id", "text"}.
inline bool read_embed_line(const json& o, input_item& item, std::string& why) {
  for (const auto& field : o.items()) {
    if (field.key() != "id" && field.key() != "text") {
      why = "unknown field '" + field.key() + "' (an embed line is {\"id\", \"text\"})";
      return false;
    }
  }
  if (!o.contains("text") || !o["text"].is_string() || o["text"].get<std::string>().empty()) {
    why = "'text' must be a non-empty string";
    return false;
  }
  item.conv.user(o["text"].get<std::string>());
  return true;
}

inline bool read_plain_line(const json& o, const input_options& opt, input_item& item, std::string& why) {
  static const std::set<std::string> known = {"id",   "prompt", "messages", "system", "model", "temperature",
                                              "top_p", "max_tokens", "max_completion_tokens", "seed", "n",
                                              "stop", "json_mode", "extra"};
  for (const auto& field : o.items()) {
    if (known.count(field.key()) == 0) {
      why = "unknown field '" + field.key() + "'";
      return false;
    }
  }
  if (o.contains("system")) {
    if (!o["system"].is_string()) {
      why = "'system' must be a string";
      return false;
    }
    item.conv.system(o["system"].get<std::string>());
    if (opt.cache_system_prompt) item.conv.cache_breakpoint();
  }
  if (o.contains("prompt") == o.contains("messages")) {
    why = "a line needs exactly one of 'prompt' and 'messages'";
    return false;
  }
  if (o.contains("prompt")) {
    if (!o["prompt"].is_string()) {
      why = "'prompt' must be a string";
      return false;
    }
    item.conv.user(o["prompt"].get<std::string>());
  } else if (!to_conversation(o["messages"], item.conv, why, opt.cache_system_prompt)) {
    return false;
  }
  if (!common_params(o, item.par, why)) return false;
  if (o.contains("model")) {
    if (!o["model"].is_string()) {
      why = "'model' must be a string";
      return false;
    }
    item.par.model(o["model"].get<std::string>());
  }
  if (o.contains("json_mode")) {
    if (!o["json_mode"].is_boolean()) {
      why = "'json_mode' must be true or false";
      return false;
    }
    item.par.json_mode(o["json_mode"].get<bool>());
  }
  if (o.contains("extra")) {
    if (!o["extra"].is_object()) {
      why = "'extra' must be an object (merged into the request body)";
      return false;
    }
    item.par.extra(o["extra"]);
  }
  if (!item.par.temperature() && opt.temperature) item.par.temperature(*opt.temperature);
  if (!item.par.max_tokens() && opt.max_tokens) item.par.max_tokens(*opt.max_tokens);
  if (opt.prompt_cache_ttl) item.par.prompt_cache_ttl(*opt.prompt_cache_ttl);
  return true;
}

// An OpenAI Batch line whose url (checked by read_input) names `api`.
inline bool read_batch_line(const json& o, const input_options& opt, const std::string& api, input_item& item,
                            std::string& why) {
  for (const auto& field : o.items()) {
    if (field.key() != "custom_id" && field.key() != "method" && field.key() != "url" && field.key() != "body") {
      why = "unknown field '" + field.key() + "' (expected custom_id, method, url, body)";
      return false;
    }
  }
  if (o.contains("method") && !(o["method"].is_string() && o["method"].get_ref<const std::string&>() == "POST")) {
    why = "'method' must be POST";
    return false;
  }
  if (!o.contains("body") || !o["body"].is_object()) {
    why = "'body' must be an object (the request's body)";
    return false;
  }
  json body = o["body"];
  if (body.contains("stream") && body["stream"] == true) {
    why = "'body.stream' must not be true (answers are read whole)";
    return false;
  }
  body.erase("stream");
  if (api == "embeddings") return read_embeddings_body(body, item, why);
  if (api == "responses") {
    if (!body.contains("input")) {
      why = "'body.input' is required in a /v1/responses line";
      return false;
    }
    if (opt.raw_responses_body) {
      if (!body.contains("temperature") && opt.temperature) body["temperature"] = *opt.temperature;
      if (!body.contains("max_output_tokens") && opt.max_tokens) body["max_output_tokens"] = *opt.max_tokens;
      item.par.extra(std::move(body));
      return true;
    }
    if (!translate_responses_body(body, item.conv, item.par, why)) return false;
  } else {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      why = "'body.messages' must be a non-empty array";
      return false;
    }
    if (opt.raw_openai_body) {
      if (!body.contains("temperature") && opt.temperature) body["temperature"] = *opt.temperature;
      if (!body.contains("max_tokens") && !body.contains("max_completion_tokens") && opt.max_tokens)
        body["max_tokens"] = *opt.max_tokens;
      item.par.extra(std::move(body));
      return true;
    }
    if (!translate_openai_body(body, item.conv, item.par, why, opt.cache_system_prompt)) return false;
  }
  if (!item.par.temperature() && opt.temperature) item.par.temperature(*opt.temperature);
  if (!item.par.max_tokens() && opt.max_tokens) item.par.max_tokens(*opt.max_tokens);
  if (opt.prompt_cache_ttl) item.par.prompt_cache_ttl(*opt.prompt_cache_ttl);
  return true;
}

/// The url of the first OpenAI Batch line of a file ("" for a plain file or an unreadable
/// one): it chooses the API before the file is read (see read_input).
inline std::string first_batch_url(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    json o = re::detail::parse_json(line);
    if (o.is_discarded() || !o.is_object()) continue;
    if (!o.contains("custom_id")) return std::string();
    const json url = o.value("url", json("/v1/chat/completions"));
    const std::string api = url.is_string() ? api_of_url(url.get<std::string>()) : std::string();
    return api.empty() ? std::string() : api == "chat" ? "/v1/chat/completions" : "/v1/" + api;
  }
  return std::string();
}

}  // namespace detail

namespace detail {

/// The ids of a file, told apart by 64-bit fingerprints in an open-addressing table: 8 to 16
/// bytes an id whatever its length, so that a file of ten million lines is read without its ids
/// in memory (a million ids: 16 MB at most). Two different ids share a fingerprint with a
/// probability of about n^2 / 2^65 (3 in a million for ten million ids); the second is then
/// reported as a duplicate, with its line number, like a real one.
class id_set {
 public:
  [[nodiscard]] bool contains(std::string_view id) const { return set_.contains(re::detail::fingerprint64(id)); }
  void insert(std::string_view id) { (void)set_.insert(re::detail::fingerprint64(id)); }
  [[nodiscard]] std::size_t size() const noexcept { return set_.size(); }

 private:
  re::detail::fingerprint_set set_;
};

}  // namespace detail

/// Reads a JSONL file line by line, keeping nothing of the lines it has given (but their ids'
/// fingerprints, for duplicates): `run` holds only the requests in flight, whatever the file's
/// size. The format is chosen by the first line that parses: one with "custom_id" makes it an
/// OpenAI Batch file. A line that cannot be read is reported ("line N: why; skipped") and left out.
class input_reader {
 public:
  /// Throws std::runtime_error when the file cannot be opened.
  input_reader(const std::string& path, const input_options& opt) : path_(path), opt_(opt), in_(path, std::ios::binary) {
    if (!in_) throw std::runtime_error("cannot open input file '" + path + "'");
  }

  /// The next line that could be read, into `item`; false at the end of the file. Each line that
  /// cannot be read goes to `problem`, and is skipped. Throws when the file cannot be read.
  template <class OnProblem>
  bool next(input_item& item, OnProblem&& problem) {
    std::string line;
    while (std::getline(in_, line)) {
      ++number_;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      ++lines_;
      std::string why;
      item = input_item{};
      if (read_line(line, item, why)) return true;
      ++skipped_;
      problem("line " + std::to_string(number_) + ": " + why + "; skipped");
    }
    if (in_.bad()) throw std::runtime_error("cannot read input file '" + path_ + "'");
    return false;
  }

  [[nodiscard]] std::size_t lines() const noexcept { return lines_; }      ///< non-empty lines so far
  [[nodiscard]] std::size_t skipped() const noexcept { return skipped_; }  ///< of which left out
  [[nodiscard]] input_format format() const noexcept { return format_.value_or(input_format::plain); }
  /// OpenAI Batch: the endpoint the lines name (see input_file::batch_url).
  [[nodiscard]] const std::string& batch_url() const noexcept { return batch_url_; }

 private:
  bool read_line(const std::string& line, input_item& item, std::string& why) {
    json o = re::detail::parse_json(line, &why);
    if (o.is_discarded() || !o.is_object()) {
      if (!o.is_discarded()) why = "not a JSON object";
      return false;
    }
    const bool batch_line = o.contains("custom_id");
    if (!format_) format_ = batch_line ? input_format::openai_batch : input_format::plain;
    item.line = number_;
    if (*format_ == input_format::openai_batch) {
      if (!batch_line || !o["custom_id"].is_string() || o["custom_id"].get<std::string>().empty()) {
        why = "an OpenAI Batch file needs a non-empty string 'custom_id' on every line";
        return false;
      }
      item.id = o["custom_id"];
      item.id_text = o["custom_id"].get<std::string>();
    } else {
      if (batch_line) {
        why = "'custom_id' in a plain-format file (the first line chose the format)";
        return false;
      }
      const json id = o.value("id", json());
      if (!(id.is_string() && !id.get<std::string>().empty()) && !id.is_number_integer()) {
        why = "needs an 'id' (a non-empty string or an integer)";
        return false;
      }
      item.id = id;
      item.id_text = id.is_string() ? id.get<std::string>() : id.dump();
    }
    if (seen_.contains(item.id_text)) {
      why = "duplicate id '" + item.id_text + "'";
      return false;
    }
    std::string api;
    if (*format_ == input_format::openai_batch) {
      const json url = o.value("url", json("/v1/chat/completions"));
      api = url.is_string() ? detail::api_of_url(url.get<std::string>()) : std::string();
      if (api.empty()) {
        why = "id '" + item.id_text + "': 'url' must be /v1/chat/completions, /v1/responses or /v1/embeddings";
        return false;
      }
      const std::string normal = api == "chat" ? "/v1/chat/completions" : "/v1/" + api;
      if (opt_.embed && api != "embeddings") {
        why = "id '" + item.id_text + "': requests-engine embed takes /v1/embeddings lines, not " + normal;
        return false;
      }
      if (batch_url_.empty()) batch_url_ = normal;
      if (normal != batch_url_) {
        why = "id '" + item.id_text + "': 'url' " + normal + " differs from the file's " + batch_url_ +
              " (one endpoint per file, as in OpenAI's Batch API)";
        return false;
      }
    }
    bool ok = false;
    try {
      ok = *format_ == input_format::openai_batch ? detail::read_batch_line(o, opt_, api, item, why)
           : opt_.embed                           ? detail::read_embed_line(o, item, why)
                                                  : detail::read_plain_line(o, opt_, item, why);
    } catch (const json::exception& e) {
      // A field of a type the readers did not expect, where they do not check it one by one:
      // the line is reported like any other bad line (found by fuzzing).
      std::string what = e.what();
      if (const auto close = what.find("] "); what.rfind("[json.exception", 0) == 0 && close != std::string::npos)
        what.erase(0, close + 2);
      why = "a field of the wrong type (" + what + ")";
      ok = false;
    }
    if (!ok) {
      why = "id '" + item.id_text + "': " + why;
      return false;
    }
    seen_.insert(item.id_text);
    return true;
  }

  std::string path_;
  input_options opt_;
  std::ifstream in_;
  std::optional<input_format> format_;
  detail::id_set seen_;
  std::string batch_url_;
  std::size_t number_ = 0, lines_ = 0, skipped_ = 0;
};

/// Reads a whole JSONL file (see input_reader): for the commands that need every line at once
/// (`batch`); `run` reads as it goes.
inline input_file read_input(const std::string& path, const input_options& opt) {
  input_reader reader(path, opt);
  input_file f;
  input_item item;
  while (reader.next(item, [&](std::string why) { f.problems.push_back(std::move(why)); }))
    f.items.push_back(std::move(item));
  f.lines = reader.lines();
  f.format = reader.format();
  f.batch_url = reader.batch_url();
  return f;
}

}  // namespace requests_engine_cli
