// stream.ipp: the definitions of stream.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "stream.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

REQUESTS_ENGINE_INLINE void sse_reader::feed(std::string_view bytes, std::vector<event>& out) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\r' && c != '\n') continue;
    if (c == '\n' && after_cr_ && i == start && line_.empty()) {  // the LF of a CRLF split across feeds
      after_cr_ = false;
      start = i + 1;
      continue;
    }
    if (line_.empty()) {
      line(bytes.substr(start, i - start), out);
    } else {
      line_.append(bytes.data() + start, i - start);
      line(line_, out);
      line_.clear();
    }
    // A CR ends the line; a LF right after it is part of the same ending, in this feed or
    // (after_cr_) at the start of the next one. A CRLF wholly in this feed leaves nothing pending.
    after_cr_ = false;
    if (c == '\r') {
      if (i + 1 < bytes.size() && bytes[i + 1] == '\n')
        ++i;
      else
        after_cr_ = i + 1 == bytes.size();
    }
    start = i + 1;
  }
  if (start < bytes.size()) {
    line_.append(bytes.data() + start, bytes.size() - start);
    after_cr_ = false;
  }
}

REQUESTS_ENGINE_INLINE void sse_reader::line(std::string_view l, std::vector<event>& out) {
  if (l.empty()) {
    if (has_data_) {
      if (!current_.data.empty() && current_.data.back() == '\n') current_.data.pop_back();
      out.push_back(std::move(current_));
    }
    current_ = event{};
    has_data_ = false;
    return;
  }
  if (l.front() == ':') return;  // a comment (a keep-alive, often)
  const std::size_t colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    current_.data.append(value.data(), value.size());
    current_.data.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    current_.name.assign(value.data(), value.size());
  }
}

REQUESTS_ENGINE_INLINE std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (char ch : data) crc = table[(crc ^ static_cast<unsigned char>(ch)) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

namespace stream_impl {
inline std::uint64_t read_be(std::string_view s, std::size_t at, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}
}  // namespace stream_impl
using stream_impl::read_be;

REQUESTS_ENGINE_INLINE bool event_stream_reader::feed(std::string_view bytes,
                                                      std::vector<event_stream_message>& out) {
  if (!error_.empty()) return false;
  buffer_.append(bytes.data(), bytes.size());
  std::size_t pos = 0;
  while (buffer_.size() - pos >= 12) {
    std::string_view rest(buffer_.data() + pos, buffer_.size() - pos);
    const auto total = static_cast<std::uint32_t>(read_be(rest, 0, 4));
    const auto headers = static_cast<std::uint32_t>(read_be(rest, 4, 4));
    const auto prelude_crc = static_cast<std::uint32_t>(read_be(rest, 8, 4));
    if (crc32(rest.substr(0, 8)) != prelude_crc) {
      error_ = "event stream: the prelude's CRC does not match (the frame is corrupt)";
      return false;
    }
    if (total < 16 || total > max_message_bytes || headers > max_header_bytes || headers > total - 16) {
      error_ = "event stream: a frame of impossible lengths (total " + std::to_string(total) + ", headers " +
               std::to_string(headers) + ")";
      return false;
    }
    if (rest.size() < total) break;
    std::string_view frame = rest.substr(0, total);
    if (crc32(frame.substr(0, total - 4)) != static_cast<std::uint32_t>(read_be(frame, total - 4, 4))) {
      error_ = "event stream: the message's CRC does not match (the frame is corrupt)";
      return false;
    }
    event_stream_message m;
    if (!decode(frame, m)) return false;
    out.push_back(std::move(m));
    pos += total;
  }
  buffer_.erase(0, pos);
  return true;
}

REQUESTS_ENGINE_INLINE bool event_stream_reader::decode(std::string_view frame, event_stream_message& m) {
  const auto headers_len = static_cast<std::size_t>(read_be(frame, 4, 4));
  std::string_view h = frame.substr(12, headers_len);
  m.payload.assign(frame.data() + 12 + headers_len, frame.size() - 16 - headers_len);
  std::size_t i = 0;
  auto bad = [&](const char* what) {
    error_ = std::string("event stream: a bad header (") + what + ")";
    return false;
  };
  while (i < h.size()) {
    const std::size_t name_len = static_cast<unsigned char>(h[i++]);
    if (name_len == 0 || i + name_len + 1 > h.size()) return bad("its name runs past the headers");
    std::string name(h.substr(i, name_len));
    i += name_len;
    const int type = static_cast<unsigned char>(h[i++]);
    std::string value;
    auto fixed = [&](std::size_t n) -> bool {
      if (i + n > h.size()) return false;
      return true;
    };
    switch (type) {
      case 0: value = "true"; break;
      case 1: value = "false"; break;
      case 2: case 3: case 4: case 5: {
        const std::size_t n = type == 2 ? 1 : type == 3 ? 2 : type == 4 ? 4 : 8;
        if (!fixed(n)) return bad("a number runs past the headers");
        std::uint64_t u = read_be(h, i, n);
        // Two's complement of the width read.
        std::int64_t v = n == 8 ? static_cast<std::int64_t>(u)
                                : static_cast<std::int64_t>(u) - ((u >> (8 * n - 1)) ? (std::int64_t{1} << (8 * n)) : 0);
        value = std::to_string(v);
        i += n;
        break;
      }
      case 6: case 7: {
        if (!fixed(2)) return bad("a length runs past the headers");
        const auto n = static_cast<std::size_t>(read_be(h, i, 2));
        i += 2;
        if (!fixed(n)) return bad("a value runs past the headers");
        value.assign(h.data() + i, n);
        i += n;
        break;
      }
      case 8: {
        if (!fixed(8)) return bad("a timestamp runs past the headers");
        value = std::to_string(static_cast<std::int64_t>(read_be(h, i, 8)));
        i += 8;
        break;
      }
      case 9: {
        if (!fixed(16)) return bad("a UUID runs past the headers");
        static const char digits[] = "0123456789abcdef";
        for (std::size_t k = 0; k < 16; ++k) {
          const auto b = static_cast<unsigned char>(h[i + k]);
          value.push_back(digits[b >> 4]);
          value.push_back(digits[b & 15]);
        }
        i += 16;
        break;
      }
      default:
        return bad(("unknown type " + std::to_string(type)).c_str());
    }
    m.headers.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

REQUESTS_ENGINE_INLINE bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    int d;
    if (ch >= 'A' && ch <= 'Z') d = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') d = ch - '0' + 52;
    else if (ch == '+') d = 62;
    else if (ch == '/') d = 63;
    else if (ch == '=') break;
    else return false;
    acc = ((acc << 6) | static_cast<std::uint32_t>(d)) & 0xffffffu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xffu));
    }
  }
  return true;
}

REQUESTS_ENGINE_INLINE std::string with_stream_flag(const std::string& body, bool include_usage) {
  nlohmann::ordered_json j = detail::parse_json<nlohmann::ordered_json>(body);
  if (!j.is_object()) return body;  // not ours to fix: the server will say what is wrong
  j["stream"] = true;
  if (include_usage) {
    auto& so = j["stream_options"];
    if (!so.is_object()) so = nlohmann::ordered_json::object();
    so["include_usage"] = true;
  }
  return j.dump();
}

REQUESTS_ENGINE_INLINE bool anthropic_needs_stream(const std::string& body, std::string_view model) {
  const json j = detail::parse_json(body);
  if (!j.is_object()) return false;
  const auto mt = j.find("max_tokens");
  if (mt == j.end() || !mt->is_number()) return false;
  const double max_tokens = mt->get<double>();
  if (3600.0 * max_tokens / 128000.0 > 600.0) return true;
  std::string m(model);
  if (m.empty()) {
    const auto it = j.find("model");
    if (it != j.end() && it->is_string()) m = it->get<std::string>();
  }
  // The Anthropic SDKs' MODEL_NONSTREAMING_TOKENS.
  static const char* const opus4[] = {"claude-opus-4-20250514",
                                      "claude-opus-4-0",
                                      "claude-4-opus-20250514",
                                      "anthropic.claude-opus-4-20250514-v1:0",
                                      "claude-opus-4@20250514",
                                      "claude-opus-4-1-20250805",
                                      "anthropic.claude-opus-4-1-20250805-v1:0",
                                      "claude-opus-4-1@20250805"};
  for (const char* name : opus4) {
    // Bedrock ids may carry a region prefix ("us.anthropic...").
    const std::string_view n(name);
    if (m == n || (m.size() > n.size() && m.compare(m.size() - n.size(), n.size(), n) == 0 &&
                   m[m.size() - n.size() - 1] == '.'))
      return max_tokens > 8192;
  }
  return false;
}

namespace stream_impl {

using ojson = nlohmann::ordered_json;

inline error stream_error(error_code code, std::string message, std::string provider_code = {}) {
  error e{code, 200, std::move(message), std::move(provider_code), 0, {}};
  return e;
}

inline error cut_short(const char* format) {
  return stream_error(error_code::connection,
                      std::string("the ") + format + " stream ended before its last event (cut short)");
}

inline std::optional<error> not_json(const char* format) {
  return stream_error(error_code::invalid_response, std::string("a ") + format + " stream event is not JSON");
}

// A mid-stream error event: retryable (the engine retries connection and server errors).
inline error error_event(std::string_view type, std::string message) {
  const bool limited = type.find("rate_limit") != std::string_view::npos || type == "RESOURCE_EXHAUSTED" ||
                       type == "throttlingException";
  error e = stream_error(limited ? error_code::rate_limited : error_code::server_error,
                         "error event in the stream: " + message, std::string(type));
  return e;
}

inline std::string string_or(const ojson& j, const char* key, std::string fallback = {}) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

inline std::size_t index_of(const ojson& j, const char* key = "index") {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return 0;
  const auto v = it->get<std::uint64_t>();
  return v > 1024 ? 1024 : static_cast<std::size_t>(v);  // a hostile index never grows a vector far
}

// The SSE formats (OpenAI, Anthropic, Gemini): events in, a decoder's `event` per event.
class sse_decoder : public stream_decoder {
 public:
  std::optional<error> feed(std::string_view bytes, std::vector<stream_delta>& out) override {
    events_.clear();
    reader_.feed(bytes, events_);
    for (auto& ev : events_)
      if (auto e = event(ev.name, ev.data, out)) return e;
    return std::nullopt;
  }

 protected:
  virtual std::optional<error> event(const std::string& name, const std::string& data,
                                     std::vector<stream_delta>& out) = 0;

 private:
  sse_reader reader_;
  std::vector<sse_reader::event> events_;
};

// OpenAI's two chunk formats (chat completions and legacy completions): chunks carrying `id`,
// `created`, `model`, `usage` and `choices[]` by index, an `error` member, then `data: [DONE]`.
// `State` is one choice's state; the format adds how a choice's chunk is read and written out.
template <class State>
class openai_chunk_decoder : public sse_decoder {
 public:
  result<std::string> finish() override {
    bool all_finished = !choices_.empty();
    for (const auto& c : choices_) all_finished = all_finished && (!c.seen || !c.finish_reason.is_null());
    // [DONE] ends the stream; a server that omits it but finished every choice and sent usage
    // (the include_usage chunk comes last) has sent everything.
    if (!done_ && !(all_finished && !usage_.is_null())) return cut_short(format_);
    ojson body;
    body["id"] = id_;
    body["object"] = object_;
    body["created"] = created_;
    body["model"] = model_;
    ojson choices = ojson::array();
    for (std::size_t i = 0; i < choices_.size(); ++i)
      if (choices_[i].seen) choices.push_back(choice_json(choices_[i], i));
    body["choices"] = std::move(choices);
    if (!usage_.is_null()) body["usage"] = usage_;
    for (auto& kv : extra_.items()) body[kv.key()] = kv.value();
    return body.dump();
  }

 protected:
  openai_chunk_decoder(const char* format, const char* object) : format_(format), object_(object) {}

  virtual void choice(State& st, std::size_t idx, const ojson& ch, std::vector<stream_delta>& out) = 0;
  [[nodiscard]] virtual ojson choice_json(const State& st, std::size_t idx) const = 0;

  std::optional<error> event(const std::string&, const std::string& data, std::vector<stream_delta>& out) override {
    if (data == "[DONE]") {
      done_ = true;
      return std::nullopt;
    }
    const ojson j = detail::parse_json<ojson>(data);
    if (!j.is_object()) return not_json(format_);
    if (const auto e = j.find("error"); e != j.end() && !e->is_null()) {
      const ojson& err = *e;
      return error_event(err.is_object() ? string_or(err, "code", string_or(err, "type")) : "",
                         err.is_object() ? string_or(err, "message", err.dump()) : err.dump());
    }
    if (id_.empty()) id_ = string_or(j, "id");
    if (const auto c = j.find("created"); c != j.end() && c->is_number() && created_.is_null()) created_ = *c;
    if (model_.empty()) model_ = string_or(j, "model");
    for (const char* key : {"system_fingerprint", "service_tier"})
      if (const auto it = j.find(key); it != j.end() && !it->is_null()) extra_[key] = *it;
    if (const auto u = j.find("usage"); u != j.end() && u->is_object()) usage_ = *u;
    const auto chs = j.find("choices");
    if (chs == j.end() || !chs->is_array()) return std::nullopt;
    for (const auto& ch : *chs) {
      if (!ch.is_object()) continue;
      const std::size_t idx = index_of(ch);
      if (choices_.size() <= idx) choices_.resize(idx + 1);
      auto& st = choices_[idx];
      st.seen = true;
      if (const auto fr = ch.find("finish_reason"); fr != ch.end() && !fr->is_null()) st.finish_reason = *fr;
      choice(st, idx, ch, out);
    }
    return std::nullopt;
  }

 private:
  const char* format_;
  const char* object_;
  bool done_ = false;
  std::string id_, model_;
  ojson created_;
  ojson usage_;
  ojson extra_ = ojson::object();
  std::vector<State> choices_;
};

struct openai_chat_choice {
  struct call {
    std::string id, type = "function", name, arguments;
  };
  bool seen = false;
  std::string role = "assistant";
  std::string content, refusal, reasoning;
  bool has_content = false, has_refusal = false, has_reasoning = false;
  std::vector<call> calls;
  ojson finish_reason;  // null until the choice ends
  ojson logprobs;       // null unless sent
};

// OpenAI chat completions: chat.completion.chunk events, then `data: [DONE]`.
class openai_chat_decoder final : public openai_chunk_decoder<openai_chat_choice> {
 public:
  openai_chat_decoder() : openai_chunk_decoder("chat completions", "chat.completion") {}

 protected:
  [[nodiscard]] ojson choice_json(const openai_chat_choice& c, std::size_t idx) const override {
    ojson msg;
    msg["role"] = c.role;
    msg["content"] = c.has_content || c.calls.empty() ? ojson(c.content) : ojson(nullptr);
    msg["refusal"] = c.has_refusal ? ojson(c.refusal) : ojson(nullptr);
    if (c.has_reasoning) msg["reasoning_content"] = c.reasoning;
    if (!c.calls.empty()) {
      ojson calls = ojson::array();
      for (const auto& t : c.calls)
        calls.push_back(ojson{{"id", t.id}, {"type", t.type}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
      msg["tool_calls"] = std::move(calls);
    }
    ojson ch;
    ch["index"] = idx;
    ch["message"] = std::move(msg);
    ch["logprobs"] = c.logprobs;
    ch["finish_reason"] = c.finish_reason;
    return ch;
  }

  void choice(openai_chat_choice& st, std::size_t idx, const ojson& ch, std::vector<stream_delta>& out) override {
    if (const auto lp = ch.find("logprobs"); lp != ch.end() && !lp->is_null()) {
      if (st.logprobs.is_null()) st.logprobs = ojson{{"content", ojson::array()}};
      if (const auto lc = lp->find("content"); lc != lp->end() && lc->is_array())
        for (const auto& x : *lc) st.logprobs["content"].push_back(x);
    }
    const auto d = ch.find("delta");
    if (d == ch.end() || !d->is_object()) return;
    if (const auto r = d->find("role"); r != d->end() && r->is_string()) st.role = r->get<std::string>();
    if (const auto t = d->find("content"); t != d->end() && t->is_string()) {
      st.has_content = true;
      const auto& piece = t->get_ref<const std::string&>();
      st.content += piece;
      if (!piece.empty()) out.push_back(stream_delta{stream_delta::kind::text, idx, piece, 0, {}, {}, 1});
    }
    if (const auto t = d->find("refusal"); t != d->end() && t->is_string()) {
      st.has_refusal = true;
      st.refusal += t->get_ref<const std::string&>();
    }
    for (const char* key : {"reasoning_content", "reasoning"}) {
      if (const auto t = d->find(key); t != d->end() && t->is_string()) {
        st.has_reasoning = true;
        const auto& piece = t->get_ref<const std::string&>();
        st.reasoning += piece;
        if (!piece.empty()) out.push_back(stream_delta{stream_delta::kind::reasoning, idx, piece, 0, {}, {}, 1});
      }
    }
    const auto tcs = d->find("tool_calls");
    if (tcs == d->end() || !tcs->is_array()) return;
    for (const auto& tc : *tcs) {
      if (!tc.is_object()) continue;
      const std::size_t ti = index_of(tc);
      if (st.calls.size() <= ti) st.calls.resize(ti + 1);
      auto& c = st.calls[ti];
      stream_delta piece{stream_delta::kind::tool_call, idx, {}, ti, {}, {}, 1};
      if (const auto id = tc.find("id"); id != tc.end() && id->is_string()) c.id = piece.tool_id = id->get<std::string>();
      if (const auto ty = tc.find("type"); ty != tc.end() && ty->is_string()) c.type = ty->get<std::string>();
      if (const auto f = tc.find("function"); f != tc.end() && f->is_object()) {
        if (const auto n = f->find("name"); n != f->end() && n->is_string()) {
          c.name += n->get<std::string>();
          piece.tool_name = n->get<std::string>();
        }
        if (const auto a = f->find("arguments"); a != f->end() && a->is_string()) {
          c.arguments += a->get<std::string>();
          piece.text = a->get<std::string>();
        }
      }
      if (!piece.text.empty() || !piece.tool_id.empty() || !piece.tool_name.empty()) out.push_back(std::move(piece));
    }
  }
};

struct openai_completions_choice {
  bool seen = false;
  std::string text;
  ojson finish_reason;
};

// OpenAI legacy completions: text_completion chunks, then `data: [DONE]`.
class openai_completions_decoder final : public openai_chunk_decoder<openai_completions_choice> {
 public:
  openai_completions_decoder() : openai_chunk_decoder("completions", "text_completion") {}

 protected:
  [[nodiscard]] ojson choice_json(const openai_completions_choice& c, std::size_t idx) const override {
    return ojson{{"text", c.text}, {"index", idx}, {"logprobs", nullptr}, {"finish_reason", c.finish_reason}};
  }

  void choice(openai_completions_choice& st, std::size_t idx, const ojson& ch, std::vector<stream_delta>& out) override {
    if (const auto t = ch.find("text"); t != ch.end() && t->is_string()) {
      const auto& piece = t->get_ref<const std::string&>();
      st.text += piece;
      if (!piece.empty()) out.push_back(stream_delta{stream_delta::kind::text, idx, piece, 0, {}, {}, 1});
    }
  }
};

// OpenAI Responses: typed events; response.completed (or .incomplete) carries the whole response.
class openai_responses_decoder final : public sse_decoder {
 public:
  result<std::string> finish() override {
    if (final_.empty()) return cut_short("Responses");
    return final_;
  }

 protected:
  std::optional<error> event(const std::string& name, const std::string& data, std::vector<stream_delta>& out) override {
    const ojson j = detail::parse_json<ojson>(data);
    if (!j.is_object()) return not_json("Responses");
    std::string type = string_or(j, "type", name);
    if (type == "error") {
      const ojson& err = j.contains("error") && j["error"].is_object() ? j["error"] : j;
      return error_event(string_or(err, "code", string_or(err, "type")), string_or(err, "message", data));
    }
    if (type == "response.failed") {
      const auto r = j.find("response");
      ojson err = r != j.end() && r->is_object() && r->contains("error") ? (*r)["error"] : ojson();
      return error_event(err.is_object() ? string_or(err, "code") : "",
                         err.is_object() ? string_or(err, "message", "the response failed") : "the response failed");
    }
    if (type == "response.completed" || type == "response.incomplete") {
      const auto r = j.find("response");
      if (r == j.end() || !r->is_object())
        return stream_error(error_code::invalid_response, "a Responses " + type + " event without its response");
      final_ = r->dump();
      return std::nullopt;
    }
    if (type == "response.output_item.added") {
      const auto item = j.find("item");
      if (item != j.end() && item->is_object() && string_or(*item, "type") == "function_call") {
        out.push_back(stream_delta{stream_delta::kind::tool_call, 0, {}, calls_, string_or(*item, "call_id"),
                                   string_or(*item, "name"), 1});
        call_of_output_[index_of(j, "output_index")] = calls_++;
      }
      return std::nullopt;
    }
    stream_delta::kind kind;
    if (type == "response.output_text.delta" || type == "response.refusal.delta")
      kind = stream_delta::kind::text;
    else if (type == "response.function_call_arguments.delta")
      kind = stream_delta::kind::tool_call;
    else if (type == "response.reasoning_summary_text.delta" || type == "response.reasoning_text.delta")
      kind = stream_delta::kind::reasoning;
    else
      return std::nullopt;  // created, in_progress, *.done, ...: the final response has it all
    std::string piece = string_or(j, "delta");
    if (piece.empty()) return std::nullopt;
    stream_delta d{kind, 0, std::move(piece), 0, {}, {}, 1};
    if (kind == stream_delta::kind::tool_call) {
      const auto it = call_of_output_.find(index_of(j, "output_index"));
      d.tool_index = it != call_of_output_.end() ? it->second : 0;
    }
    out.push_back(std::move(d));
    return std::nullopt;
  }

 private:
  std::string final_;
  std::size_t calls_ = 0;
  std::map<std::size_t, std::size_t> call_of_output_;
};

// Anthropic Messages: message_start, content blocks, message_delta, message_stop.
class anthropic_decoder final : public stream_decoder {
 public:
  explicit anthropic_decoder(bool bedrock) : bedrock_(bedrock) {}

  std::optional<error> feed(std::string_view bytes, std::vector<stream_delta>& out) override {
    if (!bedrock_) {
      events_.clear();
      sse_.feed(bytes, events_);
      for (auto& ev : events_)
        if (auto e = event(ev.data, out)) return e;
      return std::nullopt;
    }
    messages_.clear();
    // The whole frames before a corrupt one are read first: what reaches the caller before the
    // error is the same however the bytes were cut into reads (found by fuzzing).
    const bool framed = frames_.feed(bytes, messages_);
    for (auto& m : messages_) {
      const std::string kind = m.header(":message-type");
      if (kind == "exception" || kind == "error") {
        std::string type = m.header(kind == "exception" ? ":exception-type" : ":error-code");
        const json p = detail::parse_json(m.payload);
        std::string message = p.is_object() && p.contains("message") && p["message"].is_string()
                                  ? p["message"].get<std::string>()
                                  : m.header(":error-message");
        if (message.empty()) message = m.payload;
        return error_event(type, type + ": " + message);
      }
      if (m.header(":event-type") != "chunk") continue;
      const json p = detail::parse_json(m.payload);
      const auto b = p.is_object() ? p.find("bytes") : p.end();
      if (!p.is_object() || b == p.end() || !b->is_string())
        return stream_error(error_code::invalid_response, "a Bedrock stream chunk without its bytes");
      std::string decoded;
      if (!base64_decode(b->get_ref<const std::string&>(), decoded))
        return stream_error(error_code::invalid_response, "a Bedrock stream chunk whose bytes are not base64");
      if (auto e = event(decoded, out)) return e;
    }
    if (!framed) return stream_error(error_code::invalid_response, frames_.error());
    return std::nullopt;
  }

  result<std::string> finish() override {
    if (!stopped_ || message_.is_null()) return cut_short(bedrock_ ? "Bedrock" : "Anthropic");
    return message_.dump();
  }

 private:
  std::optional<error> event(const std::string& data, std::vector<stream_delta>& out) {
    ojson j = detail::parse_json<ojson>(data);
    if (!j.is_object()) return not_json("Anthropic");
    const std::string type = string_or(j, "type");
    if (type == "ping") return std::nullopt;
    if (type == "error") {
      const auto err = j.find("error");
      if (err == j.end() || !err->is_object()) return error_event("error", data);
      return error_event(string_or(*err, "type"), string_or(*err, "message", data));
    }
    if (type == "message_start") {
      const auto m = j.find("message");
      if (m == j.end() || !m->is_object()) return stream_error(error_code::invalid_response, "message_start without its message");
      message_ = *m;
      if (!message_["content"].is_array()) message_["content"] = ojson::array();
      return std::nullopt;
    }
    if (message_.is_null()) return std::nullopt;  // nothing to add to before message_start
    ojson& content = message_["content"];
    const std::size_t idx = index_of(j);
    if (type == "content_block_start") {
      const auto b = j.find("content_block");
      if (b == j.end() || !b->is_object()) return stream_error(error_code::invalid_response, "content_block_start without its block");
      while (content.size() <= idx) content.push_back(ojson::object());
      content[idx] = *b;
      if (partial_.size() <= idx) partial_.resize(idx + 1);
      partial_[idx].clear();
      const std::string bt = string_or(*b, "type");
      if (bt == "tool_use" || bt == "server_tool_use") {
        out.push_back(stream_delta{stream_delta::kind::tool_call, 0, {}, tool_of(idx), string_or(*b, "id"),
                                   string_or(*b, "name"), 1});
      }
      return std::nullopt;
    }
    if (type == "content_block_delta") {
      const auto d = j.find("delta");
      if (d == j.end() || !d->is_object() || idx >= content.size()) return std::nullopt;
      ojson& block = content[idx];
      const std::string dt = string_or(*d, "type");
      if (dt == "text_delta") {
        std::string piece = string_or(*d, "text");
        block["text"] = string_or(block, "text") + piece;
        if (!piece.empty()) out.push_back(stream_delta{stream_delta::kind::text, 0, std::move(piece), 0, {}, {}, 1});
      } else if (dt == "input_json_delta") {
        std::string piece = string_or(*d, "partial_json");
        if (partial_.size() <= idx) partial_.resize(idx + 1);
        partial_[idx] += piece;
        if (!piece.empty())
          out.push_back(stream_delta{stream_delta::kind::tool_call, 0, std::move(piece), tool_of(idx), {}, {}, 1});
      } else if (dt == "thinking_delta") {
        std::string piece = string_or(*d, "thinking");
        block["thinking"] = string_or(block, "thinking") + piece;
        if (!piece.empty()) out.push_back(stream_delta{stream_delta::kind::reasoning, 0, std::move(piece), 0, {}, {}, 1});
      } else if (dt == "signature_delta") {
        block["signature"] = string_or(block, "signature") + string_or(*d, "signature");
      } else if (dt == "citations_delta") {
        if (!block["citations"].is_array()) block["citations"] = ojson::array();
        if (d->contains("citation")) block["citations"].push_back((*d)["citation"]);
      }
      return std::nullopt;
    }
    if (type == "content_block_stop") {
      if (idx < content.size() && idx < partial_.size() && content[idx].is_object() && content[idx].contains("input")) {
        const std::string& text = partial_[idx];
        if (!text.empty()) {
          ojson input = detail::parse_json<ojson>(text);
          if (input.is_discarded())
            return stream_error(error_code::invalid_response, "a tool call's streamed input is not JSON");
          content[idx]["input"] = std::move(input);
        }
      }
      return std::nullopt;
    }
    if (type == "message_delta") {
      if (const auto d = j.find("delta"); d != j.end() && d->is_object())
        for (auto& kv : d->items()) message_[kv.key()] = kv.value();
      if (const auto u = j.find("usage"); u != j.end() && u->is_object()) {
        ojson& usage = message_["usage"];
        if (!usage.is_object()) usage = ojson::object();
        for (auto& kv : u->items())
          if (!kv.value().is_null()) usage[kv.key()] = kv.value();
      }
      return std::nullopt;
    }
    if (type == "message_stop") stopped_ = true;
    return std::nullopt;
  }

  std::size_t tool_of(std::size_t block) {
    for (std::size_t i = 0; i < tool_blocks_.size(); ++i)
      if (tool_blocks_[i] == block) return i;
    tool_blocks_.push_back(block);
    return tool_blocks_.size() - 1;
  }

  bool bedrock_;
  sse_reader sse_;
  std::vector<sse_reader::event> events_;
  event_stream_reader frames_;
  std::vector<event_stream_message> messages_;
  ojson message_;
  std::vector<std::string> partial_;       // tool inputs' JSON text, by block
  std::vector<std::size_t> tool_blocks_;   // the block of each tool call, in order
  bool stopped_ = false;
};

// Gemini (and Vertex Gemini): each event a GenerateContentResponse holding the next parts.
class gemini_decoder final : public sse_decoder {
  struct candidate {
    bool seen = false;
    ojson fields = ojson::object();  // finishReason, safetyRatings, ...: the last sent
    ojson parts = ojson::array();
    std::string role = "model";
    std::size_t calls = 0;
  };

 public:
  result<std::string> finish() override {
    bool finished = !candidates_.empty();
    for (const auto& c : candidates_) finished = finished && (!c.seen || c.fields.contains("finishReason"));
    const bool blocked = top_.contains("promptFeedback") && top_["promptFeedback"].is_object() &&
                         top_["promptFeedback"].contains("blockReason");
    if (!finished && !blocked) return cut_short("Gemini");
    ojson body;
    ojson cands = ojson::array();
    for (std::size_t i = 0; i < candidates_.size(); ++i) {
      const auto& c = candidates_[i];
      if (!c.seen) continue;
      ojson cand;
      cand["content"] = ojson{{"parts", c.parts}, {"role", c.role}};
      for (auto& kv : c.fields.items()) cand[kv.key()] = kv.value();
      cands.push_back(std::move(cand));
    }
    if (!cands.empty()) body["candidates"] = std::move(cands);
    for (auto& kv : top_.items()) body[kv.key()] = kv.value();
    return body.dump();
  }

 protected:
  std::optional<error> event(const std::string&, const std::string& data, std::vector<stream_delta>& out) override {
    const ojson j = detail::parse_json<ojson>(data);
    if (!j.is_object()) return not_json("Gemini");
    if (const auto e = j.find("error"); e != j.end() && e->is_object())
      return error_event(string_or(*e, "status"), string_or(*e, "message", e->dump()));
    for (auto& kv : j.items())
      if (kv.key() != "candidates") top_[kv.key()] = kv.value();
    const auto cs = j.find("candidates");
    if (cs == j.end() || !cs->is_array()) return std::nullopt;
    std::size_t pos = 0;
    for (const auto& c : *cs) {
      if (!c.is_object()) continue;
      const std::size_t idx = c.contains("index") ? index_of(c) : pos;
      ++pos;
      if (candidates_.size() <= idx) candidates_.resize(idx + 1);
      auto& st = candidates_[idx];
      st.seen = true;
      for (auto& kv : c.items())
        if (kv.key() != "content") st.fields[kv.key()] = kv.value();
      const auto content = c.find("content");
      if (content == c.end() || !content->is_object()) continue;
      if (const auto r = content->find("role"); r != content->end() && r->is_string()) st.role = r->get<std::string>();
      const auto parts = content->find("parts");
      if (parts == content->end() || !parts->is_array()) continue;
      for (const auto& part : *parts) {
        if (!part.is_object()) continue;
        const auto t = part.find("text");
        const bool thought = part.contains("thought") && part["thought"].is_boolean() && part["thought"].get<bool>();
        if (t != part.end() && t->is_string()) {
          const auto& piece = t->get_ref<const std::string&>();
          if (!piece.empty())
            out.push_back(stream_delta{thought ? stream_delta::kind::reasoning : stream_delta::kind::text, idx, piece,
                                       0, {}, {}, 1});
          // Text continues the last part when that is text of the same kind.
          if (!st.parts.empty()) {
            ojson& last = st.parts.back();
            const bool last_thought = last.contains("thought") && last["thought"].is_boolean() && last["thought"].get<bool>();
            if (last.contains("text") && last["text"].is_string() && last_thought == thought &&
                !part.contains("thoughtSignature")) {
              last["text"] = last["text"].get<std::string>() + piece;
              continue;
            }
          }
          st.parts.push_back(part);
          continue;
        }
        if (const auto fc = part.find("functionCall"); fc != part.end() && fc->is_object()) {
          const std::string args = fc->contains("args") ? (*fc)["args"].dump() : std::string("{}");
          out.push_back(stream_delta{stream_delta::kind::tool_call, idx, args, st.calls++, string_or(*fc, "id"),
                                     string_or(*fc, "name"), 1});
        }
        st.parts.push_back(part);
      }
    }
    return std::nullopt;
  }

 private:
  ojson top_ = ojson::object();  // usageMetadata, modelVersion, responseId, promptFeedback: the last sent
  std::vector<candidate> candidates_;
};

}  // namespace stream_impl

REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_chat_stream() {
  return std::make_unique<stream_impl::openai_chat_decoder>();
}
REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_completions_stream() {
  return std::make_unique<stream_impl::openai_completions_decoder>();
}
REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_responses_stream() {
  return std::make_unique<stream_impl::openai_responses_decoder>();
}
REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> anthropic_stream(bool bedrock) {
  return std::make_unique<stream_impl::anthropic_decoder>(bedrock);
}
REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> gemini_stream() {
  return std::make_unique<stream_impl::gemini_decoder>();
}

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
