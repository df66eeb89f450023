// stream.hpp: streamed answers. What a piece of a streamed answer is (stream_delta), when the
// engine streams (stream_mode), the decoder a provider gives for its stream format, and the
// readers of the two framings on the wire: server-sent events, and AWS's binary event stream.
#pragma once

#include "provider.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// One piece of an answer as it arrives (options::on_delta).
struct stream_delta {
  enum class kind {
    text,       ///< a piece of the answer's text
    tool_call,  ///< a piece of a tool call's arguments (JSON text); the call's first piece names it
    reasoning,  ///< a piece of the model's visible reasoning (Anthropic thinking, Gemini thoughts)
  };
  kind type = kind::text;
  std::size_t choice = 0;      ///< which choice (params::n) or candidate
  std::string text;            ///< the piece
  std::size_t tool_index = 0;  ///< tool_call: which call of the choice, from 0
  std::string tool_id;         ///< tool_call: set on the call's first piece
  std::string tool_name;       ///< tool_call: set on the call's first piece
  /// Which attempt of the request sent it. A stream that breaks is retried from the start:
  /// pieces with a higher attempt replace everything received before them.
  int attempt = 1;
};

/// When the engine asks for a streamed answer (options::stream).
enum class stream_mode {
  automatic,  ///< where the provider needs it (Anthropic's rule for long answers) or options::on_delta is set
  always,     ///< every request of a provider that can stream
  never,      ///< whole answers only (on_delta is then never called)
};

/// Reads one streamed answer in a provider's format and assembles it into the body the same
/// request gives unstreamed: the body parse_response reads and the cache stores. A provider
/// that streams returns a fresh one per attempt from `make_stream_decoder()`.
class stream_decoder {
 public:
  virtual ~stream_decoder() = default;
  /// The next bytes of a 2xx body as they arrive; appends the pieces they complete to `out`.
  /// An error ends the stream: an error event from the server, or bytes that break the format.
  virtual std::optional<error> feed(std::string_view bytes, std::vector<stream_delta>& out) = 0;
  /// The body ended: the whole answer as the unstreamed response body, or an error when the
  /// stream stopped before its end (a retryable `connection` error).
  virtual result<std::string> finish() = 0;
};

// A provider that streams has, besides the members in provider.hpp,
//   result<http_request> make_stream_request(const std::string& body) const;  // or http_request
//       // the streamed request for the same body (its stream flag, its streaming endpoint)
//   std::unique_ptr<stream_decoder> make_stream_decoder() const;
// and optionally
//   bool stream_needed(const std::string& body) const;  // stream_mode::automatic streams it

namespace detail {

/// Server-sent events (the WHATWG rules): lines end in CRLF, LF or CR; `event:` names the
/// event, `data:` lines are joined with '\n', a blank line ends the event; comments (`:`),
/// `id:` and `retry:` are skipped. An event without data is not dispatched.
class sse_reader {
 public:
  struct event {
    std::string name;
    std::string data;
  };
  REQUESTS_ENGINE_INLINE void feed(std::string_view bytes, std::vector<event>& out);
  /// Nothing half-read: the body ended on an event boundary.
  [[nodiscard]] bool idle() const noexcept { return line_.empty() && !has_data_ && current_.name.empty(); }

 private:
  REQUESTS_ENGINE_INLINE void line(std::string_view l, std::vector<event>& out);
  std::string line_;
  event current_;
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was a CR: a LF right after it ends nothing more
};

/// CRC-32 (IEEE 802.3, as zlib's crc32): `crc` continues an earlier value.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

/// One message of AWS's event-stream framing (`application/vnd.amazon.eventstream`).
struct event_stream_message {
  header_list headers;  ///< values as text: strings and bytes as they are, numbers in decimal,
                        ///< booleans "true"/"false", timestamps in milliseconds, UUIDs in hex
  std::string payload;
  [[nodiscard]] std::string header(std::string_view name) const { return find_header(headers, name); }
};

/// Reads event-stream messages as the bytes arrive: a 12-byte prelude (total length, headers
/// length, both big-endian uint32, and the prelude's CRC-32), the headers, the payload, and the
/// CRC-32 of all that came before. A bad length or CRC is an error, and the stream is dead.
class event_stream_reader {
 public:
  /// Appends the messages `bytes` completes; false (and error()) on a broken frame.
  REQUESTS_ENGINE_INLINE bool feed(std::string_view bytes, std::vector<event_stream_message>& out);
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  [[nodiscard]] bool idle() const noexcept { return buffer_.empty(); }
  static constexpr std::uint32_t max_message_bytes = 16u * 1024u * 1024u;  // AWS's limit
  static constexpr std::uint32_t max_header_bytes = 128u * 1024u;

 private:
  REQUESTS_ENGINE_INLINE bool decode(std::string_view frame, event_stream_message& m);
  std::string buffer_;
  std::string error_;
};

/// Standard base64 (padding optional) into bytes; false on a character outside the alphabet.
[[nodiscard]] REQUESTS_ENGINE_INLINE bool base64_decode(std::string_view text, std::string& out);

/// `body` (a JSON object) with "stream": true, and with stream_options.include_usage for the
/// OpenAI formats that report usage only when asked.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string with_stream_flag(const std::string& body, bool include_usage);

// The decoders of each format, assembling the unstreamed body of that API.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_chat_stream();
[[nodiscard]] REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_completions_stream();
[[nodiscard]] REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> openai_responses_stream();
/// Anthropic Messages events, as server-sent events, or (bedrock) as event-stream messages
/// whose payload `{"bytes": base64}` holds each event.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> anthropic_stream(bool bedrock);
[[nodiscard]] REQUESTS_ENGINE_INLINE std::unique_ptr<stream_decoder> gemini_stream();

/// `r` asking for a stream: its Accept header becomes `accept` (text/event-stream by default).
[[nodiscard]] inline http_request accepting(http_request r, std::string_view accept = "text/event-stream") {
  bool found = false;
  for (auto& h : r.headers) {
    if (h.first.size() == 6 && (h.first[0] == 'A' || h.first[0] == 'a') && h.first.compare(1, 5, "ccept") == 0) {
      h.second.assign(accept.data(), accept.size());
      found = true;
    }
  }
  if (!found) r.headers.emplace_back("Accept", std::string(accept));
  return r;
}
[[nodiscard]] inline result<http_request> accepting(result<http_request> r) {
  if (!r) return r;
  return accepting(std::move(*r));
}

/// Anthropic's SDK rule: a request whose max_tokens could take more than ten minutes to answer
/// (3600 s x max_tokens / 128,000 > 600 s, so above 21,333 tokens; above 8,192 for Claude
/// Opus 4 and 4.1) must stream.
[[nodiscard]] REQUESTS_ENGINE_INLINE bool anthropic_needs_stream(const std::string& body, std::string_view model);

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
