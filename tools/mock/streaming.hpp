// requests_engine mock: the streamed answers, in each provider's wire format, made from the very
// body the route sends whole, so that a client assembling a stream gets that body's content back.
#pragma once

#include "common.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace requests_engine_mock {

/// What a streamed answer suffers (server::fail_next_streams, server_options::fail_stream_*): cut
/// (the connection closed after about half the events), error_event (an error event in the
/// format's shape after about half), stall (about half, then silence for stream_stall_ms, then
/// the connection closed).
enum class stream_fault { none, cut, error_event, stall };

namespace detail {

// One streamed answer, ready to send: its events as they go on the wire (the last one ends the
// stream), and the error event a fault sends after `sent` events instead of the rest.
struct stream_plan {
  std::string content_type;
  httplib::Headers headers;
  std::vector<std::string> events;
  std::function<std::string(std::size_t sent)> error_event;
};

using ojson = nlohmann::ordered_json;

// Pieces of about `bytes` bytes each, never inside a UTF-8 sequence; none for "".
inline std::vector<std::string> stream_pieces(const std::string& s, std::size_t bytes) {
  std::vector<std::string> out;
  const std::size_t step = bytes == 0 ? 1 : bytes;
  for (std::size_t at = 0; at < s.size();) {
    std::size_t end = std::min(s.size(), at + step);
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) ++end;
    out.push_back(s.substr(at, end - at));
    at = end;
  }
  return out;
}

inline std::string sse_data(const ojson& j, const char* end = "\n\n") {
  return "data: " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + end;
}

inline std::string sse_event(const std::string& type, const ojson& j) {
  return "event: " + type + "\n" + sse_data(j);
}

inline std::string string_field(const ojson& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// ---- OpenAI chat completions: chat.completion.chunk events, then [DONE] ----

inline stream_plan openai_chat_stream(const std::string& whole, bool include_usage, std::size_t piece_bytes) {
  const ojson body = ojson::parse(whole);
  ojson head;
  for (const char* k : {"id", "object", "created", "model", "system_fingerprint"})
    if (body.contains(k)) head[k] = body[k];
  head["object"] = "chat.completion.chunk";
  stream_plan plan;
  plan.content_type = "text/event-stream";
  auto chunk = [&](ojson choices) {
    ojson c = head;
    c["choices"] = std::move(choices);
    if (include_usage) c["usage"] = nullptr;
    plan.events.push_back(sse_data(c));
  };
  auto choice = [](const ojson& index, ojson delta, ojson finish_reason) {
    ojson c;
    c["index"] = index;
    c["delta"] = std::move(delta);
    c["logprobs"] = nullptr;
    c["finish_reason"] = std::move(finish_reason);
    return ojson::array({std::move(c)});
  };
  for (const auto& ch : body["choices"]) {
    const ojson& msg = ch["message"];
    const ojson& index = ch["index"];
    const bool has_content = msg.contains("content") && msg["content"].is_string();
    ojson first;
    first["role"] = msg.value("role", "assistant");
    first["content"] = has_content ? ojson("") : ojson(nullptr);
    first["refusal"] = nullptr;
    chunk(choice(index, std::move(first), nullptr));
    if (has_content)
      for (auto& p : stream_pieces(msg["content"].get<std::string>(), piece_bytes))
        chunk(choice(index, ojson{{"content", std::move(p)}}, nullptr));
    if (msg.contains("refusal") && msg["refusal"].is_string())
      for (auto& p : stream_pieces(msg["refusal"].get<std::string>(), piece_bytes))
        chunk(choice(index, ojson{{"refusal", std::move(p)}}, nullptr));
    if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
      std::size_t i = 0;
      for (const auto& call : msg["tool_calls"]) {
        const ojson function = call.value("function", ojson::object());
        ojson start;
        start["index"] = i;
        start["id"] = call.value("id", "");
        start["type"] = call.value("type", "function");
        start["function"] = ojson{{"name", function.value("name", "")}, {"arguments", ""}};
        chunk(choice(index, ojson{{"tool_calls", ojson::array({std::move(start)})}}, nullptr));
        for (auto& p : stream_pieces(function.value("arguments", ""), piece_bytes))
          chunk(choice(index,
                       ojson{{"tool_calls", ojson::array({ojson{{"index", i}, {"function", {{"arguments", std::move(p)}}}}})}},
                       nullptr));
        ++i;
      }
    }
    chunk(choice(index, ojson::object(), ch["finish_reason"]));
  }
  if (include_usage) {
    ojson c = head;
    c["choices"] = ojson::array();
    c["usage"] = body["usage"];
    plan.events.push_back(sse_data(c));
  }
  plan.events.push_back("data: [DONE]\n\n");
  plan.error_event = [](std::size_t) {
    return sse_data(ojson{{"error",
                           {{"message", "The server had an error while processing your request. Sorry about that!"},
                            {"type", "server_error"},
                            {"param", nullptr},
                            {"code", nullptr}}}});
  };
  return plan;
}

// ---- OpenAI legacy completions: text_completion chunks, then [DONE] ----

inline stream_plan openai_completions_stream(const std::string& whole, bool include_usage, std::size_t piece_bytes) {
  const ojson body = ojson::parse(whole);
  stream_plan plan;
  plan.content_type = "text/event-stream";
  auto chunk = [&](ojson choices, bool usage_chunk) {
    ojson c;
    c["id"] = body["id"];
    c["object"] = "text_completion";
    c["created"] = body["created"];
    c["choices"] = std::move(choices);
    c["model"] = body["model"];
    if (include_usage) c["usage"] = usage_chunk ? body["usage"] : ojson(nullptr);
    plan.events.push_back(sse_data(c));
  };
  auto choice = [](std::string text, const ojson& index, ojson finish_reason) {
    ojson c;
    c["text"] = std::move(text);
    c["index"] = index;
    c["logprobs"] = nullptr;
    c["finish_reason"] = std::move(finish_reason);
    return ojson::array({std::move(c)});
  };
  for (const auto& ch : body["choices"]) {
    for (auto& p : stream_pieces(ch.value("text", ""), piece_bytes))
      chunk(choice(std::move(p), ch["index"], nullptr), false);
    chunk(choice("", ch["index"], ch["finish_reason"]), false);
  }
  if (include_usage) chunk(ojson::array(), true);
  plan.events.push_back("data: [DONE]\n\n");
  plan.error_event = [](std::size_t) {
    return sse_data(ojson{{"error",
                           {{"message", "The server had an error while processing your request. Sorry about that!"},
                            {"type", "server_error"},
                            {"param", nullptr},
                            {"code", nullptr}}}});
  };
  return plan;
}

// ---- OpenAI Responses: typed events with sequence numbers, the whole response last ----

inline stream_plan responses_stream(const std::string& whole, std::size_t piece_bytes) {
  const ojson body = ojson::parse(whole);
  stream_plan plan;
  plan.content_type = "text/event-stream";
  auto emit = [&](const std::string& type, ojson fields) {
    ojson e;
    e["type"] = type;
    e["sequence_number"] = plan.events.size();
    for (auto& [k, v] : fields.items()) e[k] = std::move(v);
    plan.events.push_back(sse_event(type, e));
  };
  ojson start = body;
  start["status"] = "in_progress";
  start["incomplete_details"] = nullptr;
  start["output"] = ojson::array();
  start["usage"] = nullptr;
  emit("response.created", ojson{{"response", start}});
  emit("response.in_progress", ojson{{"response", start}});
  std::size_t output_index = 0;
  for (const auto& item : body["output"]) {
    const std::string type = string_field(item, "type");
    const std::string item_id = string_field(item, "id");
    ojson added = item;
    if (added.contains("status")) added["status"] = "in_progress";
    if (type == "message") added["content"] = ojson::array();
    if (type == "function_call") added["arguments"] = "";
    emit("response.output_item.added", ojson{{"output_index", output_index}, {"item", std::move(added)}});
    if (type == "message") {
      std::size_t content_index = 0;
      for (const auto& part : item["content"]) {
        const bool refusal = string_field(part, "type") == "refusal";
        const char* field = refusal ? "refusal" : "text";
        const std::string text = string_field(part, field);
        auto at = [&](ojson more) {
          ojson f;
          f["item_id"] = item_id;
          f["output_index"] = output_index;
          f["content_index"] = content_index;
          for (auto& [k, v] : more.items()) f[k] = std::move(v);
          return f;
        };
        ojson empty = part;
        empty[field] = "";
        emit("response.content_part.added", at(ojson{{"part", std::move(empty)}}));
        for (auto& p : stream_pieces(text, piece_bytes)) {
          if (refusal)
            emit("response.refusal.delta", at(ojson{{"delta", std::move(p)}}));
          else
            emit("response.output_text.delta", at(ojson{{"delta", std::move(p)}, {"logprobs", ojson::array()}}));
        }
        if (refusal)
          emit("response.refusal.done", at(ojson{{"refusal", text}}));
        else
          emit("response.output_text.done", at(ojson{{"text", text}, {"logprobs", ojson::array()}}));
        emit("response.content_part.done", at(ojson{{"part", part}}));
        ++content_index;
      }
    } else if (type == "function_call") {
      const std::string arguments = string_field(item, "arguments");
      for (auto& p : stream_pieces(arguments, piece_bytes))
        emit("response.function_call_arguments.delta",
             ojson{{"item_id", item_id}, {"output_index", output_index}, {"delta", std::move(p)}});
      emit("response.function_call_arguments.done", ojson{{"item_id", item_id},
                                                          {"output_index", output_index},
                                                          {"name", string_field(item, "name")},
                                                          {"arguments", arguments}});
    }
    emit("response.output_item.done", ojson{{"output_index", output_index}, {"item", item}});
    ++output_index;
  }
  const std::string status = string_field(body, "status");
  emit(status == "incomplete" ? "response.incomplete" : status == "failed" ? "response.failed" : "response.completed",
       ojson{{"response", body}});
  plan.error_event = [](std::size_t sent) {
    ojson e;
    e["type"] = "error";
    e["code"] = "server_error";
    e["message"] = "The server had an error while processing your request. Sorry about that!";
    e["param"] = nullptr;
    e["sequence_number"] = sent;
    return sse_event("error", e);
  };
  return plan;
}

// ---- Anthropic Messages: the events, as SSE (Messages, Vertex) or in Bedrock's event stream ----

// The stream events of a Messages body, each with its "type".
inline std::vector<ojson> anthropic_stream_events(const ojson& body, std::size_t piece_bytes) {
  std::vector<ojson> out;
  ojson message = body;
  message["content"] = ojson::array();
  message["stop_reason"] = nullptr;
  message["stop_sequence"] = nullptr;
  ojson usage = body.value("usage", ojson::object());
  usage["output_tokens"] = 1;  // what Anthropic reports at the start
  message["usage"] = std::move(usage);
  out.push_back(ojson{{"type", "message_start"}, {"message", std::move(message)}});
  const ojson& content = body["content"];
  const ojson ping = {{"type", "ping"}};
  if (content.empty()) out.push_back(ping);
  std::size_t index = 0;
  for (const auto& block : content) {
    const std::string type = string_field(block, "type");
    ojson start = block;
    std::string streamed;   // the block's text, sent in pieces
    const char* delta_type = nullptr;
    const char* delta_field = nullptr;
    if (type == "text") {
      streamed = string_field(block, "text");
      start["text"] = "";
      delta_type = "text_delta";
      delta_field = "text";
    } else if (type == "tool_use" || type == "server_tool_use") {
      streamed = block.value("input", ojson::object()).dump();
      start["input"] = ojson::object();
      delta_type = "input_json_delta";
      delta_field = "partial_json";
    } else if (type == "thinking") {
      streamed = string_field(block, "thinking");
      start["thinking"] = "";
      start.erase("signature");
      delta_type = "thinking_delta";
      delta_field = "thinking";
    }
    out.push_back(ojson{{"type", "content_block_start"}, {"index", index}, {"content_block", std::move(start)}});
    if (index == 0) out.push_back(ping);
    if (delta_type != nullptr)
      for (auto& p : stream_pieces(streamed, piece_bytes))
        out.push_back(ojson{{"type", "content_block_delta"},
                            {"index", index},
                            {"delta", {{"type", delta_type}, {delta_field, std::move(p)}}}});
    if (type == "thinking" && block.contains("signature"))
      out.push_back(ojson{{"type", "content_block_delta"},
                          {"index", index},
                          {"delta", {{"type", "signature_delta"}, {"signature", block["signature"]}}}});
    out.push_back(ojson{{"type", "content_block_stop"}, {"index", index}});
    ++index;
  }
  ojson delta;
  delta["stop_reason"] = body["stop_reason"];
  delta["stop_sequence"] = body.value("stop_sequence", ojson(nullptr));
  ojson end_usage;
  end_usage["output_tokens"] = body["usage"].value("output_tokens", 0);
  out.push_back(ojson{{"type", "message_delta"}, {"delta", std::move(delta)}, {"usage", std::move(end_usage)}});
  out.push_back(ojson{{"type", "message_stop"}});
  return out;
}

inline ojson anthropic_overloaded_event() {
  return ojson{{"type", "error"}, {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}};
}

inline stream_plan anthropic_stream(const std::string& whole, std::size_t piece_bytes) {
  stream_plan plan;
  plan.content_type = "text/event-stream";
  for (const auto& e : anthropic_stream_events(ojson::parse(whole), piece_bytes))
    plan.events.push_back(sse_event(e["type"].get<std::string>(), e));
  plan.error_event = [](std::size_t) { return sse_event("error", anthropic_overloaded_event()); };
  return plan;
}

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32), for Bedrock's event-stream messages.
inline std::uint32_t crc32_ieee(const std::string& data, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1U) : c >> 1U;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (const char ch : data) crc = table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (crc >> 8U);
  return ~crc;
}

inline void append_u32_be(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> static_cast<unsigned>(shift)) & 0xFFU);
}

// One message of AWS's binary event stream (application/vnd.amazon.eventstream): prelude (total
// length, headers length, prelude CRC), headers (all of type 7, string), payload, message CRC.
inline std::string eventstream_message(const std::vector<std::pair<std::string, std::string>>& headers,
                                       const std::string& payload) {
  std::string h;
  for (const auto& [name, value] : headers) {
    h += static_cast<char>(name.size() & 0xFFU);
    h += name;
    h += static_cast<char>(7);
    h += static_cast<char>((value.size() >> 8U) & 0xFFU);
    h += static_cast<char>(value.size() & 0xFFU);
    h += value;
  }
  std::string out;
  append_u32_be(out, static_cast<std::uint32_t>(12 + h.size() + payload.size() + 4));
  append_u32_be(out, static_cast<std::uint32_t>(h.size()));
  append_u32_be(out, crc32_ieee(out));
  out += h;
  out += payload;
  append_u32_be(out, crc32_ieee(out));
  return out;
}

inline std::string base64_encode(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// Bedrock InvokeModelWithResponseStream: each Anthropic event, base64 in {"bytes"}, as a "chunk"
// event; message_stop also carries Bedrock's invocation metrics.
inline stream_plan bedrock_stream(const std::string& whole, std::size_t piece_bytes) {
  const ojson body = ojson::parse(whole);
  stream_plan plan;
  plan.content_type = "application/vnd.amazon.eventstream";
  plan.headers.emplace("X-Amzn-Bedrock-Content-Type", "application/json");
  plan.headers.emplace("x-amzn-RequestId", random_hex(8) + "-" + random_hex(4) + "-" + random_hex(4) + "-" +
                                               random_hex(4) + "-" + random_hex(12));
  for (auto& e : anthropic_stream_events(body, piece_bytes)) {
    if (e["type"] == "message_stop")
      e["amazon-bedrock-invocationMetrics"] = ojson{{"inputTokenCount", body["usage"].value("input_tokens", 0)},
                                                    {"outputTokenCount", body["usage"].value("output_tokens", 0)},
                                                    {"invocationLatency", 1},
                                                    {"firstByteLatency", 1}};
    const ojson payload = {{"bytes", base64_encode(e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))}};
    plan.events.push_back(eventstream_message(
        {{":event-type", "chunk"}, {":content-type", "application/json"}, {":message-type", "event"}}, payload.dump()));
  }
  plan.error_event = [](std::size_t) {
    const ojson payload = {{"message", "The model stream was interrupted: Overloaded"},
                           {"originalStatusCode", 529},
                           {"originalMessage", "Overloaded"}};
    return eventstream_message({{":exception-type", "modelStreamErrorException"},
                                {":content-type", "application/json"},
                                {":message-type", "exception"}},
                               payload.dump());
  };
  return plan;
}

// ---- Gemini streamGenerateContent: GenerateContentResponse chunks ----

// With alt=sse each chunk is an SSE event (Google ends them with CRLF CRLF); without it the
// chunks are the elements of one JSON array, sent as they come.
inline stream_plan gemini_stream(const std::string& whole, std::size_t piece_bytes, bool sse) {
  const ojson body = ojson::parse(whole);
  const ojson& usage = body["usageMetadata"];
  std::vector<std::vector<std::string>> pieces;
  std::size_t steps = 1;
  for (const auto& c : body["candidates"]) {
    std::string text;
    for (const auto& p : c["content"]["parts"]) text += string_field(p, "text");
    pieces.push_back(stream_pieces(text, piece_bytes));
    if (pieces.back().empty()) pieces.back().emplace_back();
    steps = std::max(steps, pieces.back().size());
  }
  std::vector<ojson> chunks;
  for (std::size_t k = 0; k < steps; ++k) {
    ojson candidates = ojson::array();
    std::size_t i = 0;
    for (const auto& c : body["candidates"]) {
      const auto& mine = pieces[i++];
      if (k >= mine.size()) continue;
      ojson cand;
      cand["content"] = ojson{{"parts", ojson::array({ojson{{"text", mine[k]}}})}, {"role", c["content"].value("role", "model")}};
      if (k + 1 == mine.size() && c.contains("finishReason")) cand["finishReason"] = c["finishReason"];
      cand["index"] = c["index"];
      candidates.push_back(std::move(cand));
    }
    ojson chunk;
    chunk["candidates"] = std::move(candidates);
    chunk["usageMetadata"] = k + 1 == steps ? usage
                                            : ojson{{"promptTokenCount", usage["promptTokenCount"]},
                                                    {"totalTokenCount", usage["promptTokenCount"]}};
    chunk["modelVersion"] = body["modelVersion"];
    chunk["responseId"] = body["responseId"];
    chunks.push_back(std::move(chunk));
  }
  const ojson error = {{"error",
                        {{"code", 503},
                         {"message", "The model is overloaded. Please try again later."},
                         {"status", "UNAVAILABLE"}}}};
  stream_plan plan;
  if (sse) {
    plan.content_type = "text/event-stream";
    for (const auto& c : chunks) plan.events.push_back(sse_data(c, "\r\n\r\n"));
    plan.error_event = [error](std::size_t) { return sse_data(error, "\r\n\r\n"); };
  } else {
    // Not "application/json" alone: httplib would gzip it for a client that accepts gzip, and
    // a compressor holds the chunks back.
    plan.content_type = "application/json; charset=UTF-8";
    for (std::size_t k = 0; k < chunks.size(); ++k)
      plan.events.push_back((k == 0 ? "[" : ",\r\n") + chunks[k].dump() + (k + 1 == chunks.size() ? "]" : ""));
    plan.error_event = [error](std::size_t sent) { return (sent == 0 ? "[" : ",\r\n") + error.dump() + "]"; };
  }
  return plan;
}

}  // namespace detail
}  // namespace requests_engine_mock
