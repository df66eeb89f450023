// provider.hpp: the provider interface: the wire types (http_request, http_response, URLs),
// the members a provider has (checked by static_assert), and what every provider shares.
#pragma once

#include "model.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

using header_list = std::vector<std::pair<std::string, std::string>>;

/// Case-insensitive header lookup; empty when absent.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string find_header(const header_list& h,
                                                             std::string_view name);

/// What a provider asks the transport to send.
struct http_request {
  std::string method = "POST";
  std::string url;  ///< absolute: scheme://host[:port]/path[?query]
  header_list headers;
  std::string body;
  std::string content_type = "application/json";
  /// When set (non-zero), replaces transport_options::read_timeout for this attempt; the
  /// engine sets it so that an attempt never outlives the request's deadline.
  std::chrono::milliseconds read_timeout{0};
};

/// What the transport got back.
struct http_response {
  int status = 0;
  header_list headers;
  std::string body;
  [[nodiscard]] std::string header(std::string_view name) const { return find_header(headers, name); }
};

/// What a header of the user's own is, besides sent (see extra_headers).
enum class header_use {
  plain,     ///< sent with every request; not part of the cache identity
  secret,    ///< sent, and scrubbed from every error and log like a key; never in the cache
  identity,  ///< sent, and part of the provider's cache identity (answers differ by it)
};

/// Headers of the user's own, sent with every request a provider makes: an organisation or a
/// project id, a gateway's key, OpenRouter's attribution headers. Every built-in provider has
/// them as `headers()`. A header of the same name (case-insensitive) that the provider sets
/// itself is replaced. They are not part of the cache identity unless set with
/// header_use::identity, so adding one leaves stored answers replaying.
class extra_headers {
 public:
  /// Sets (or replaces) a header. Throws std::invalid_argument naming the header (never a
  /// secret's value) when the name is not an HTTP token or the value holds CR, LF or NUL.
  REQUESTS_ENGINE_INLINE extra_headers& set(std::string name, std::string value, header_use use = header_use::plain);
  /// Removes a header set here (not one the provider sets itself).
  REQUESTS_ENGINE_INLINE extra_headers& erase(std::string_view name);
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  /// The value set for `name` (case-insensitive), if any.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::string> get(std::string_view name) const;

  /// Puts them into `h`, replacing any of the same name.
  REQUESTS_ENGINE_INLINE void apply_to(header_list& h) const;
  /// The values of the secret ones.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::string> secrets() const;
  /// Adds "headers": {lower-case name: value} of the identity ones to a provider's cache
  /// identity; leaves it as it is when there are none (so existing hashes do not change).
  REQUESTS_ENGINE_INLINE void add_identity(json& identity) const;

 private:
  struct entry {
    std::string name;
    std::string value;
    header_use use;
  };
  std::vector<entry> entries_;
};

/// The `headers()` of every built-in provider (a custom provider may derive from it too, and
/// then calls apply_to, secrets and add_identity where it builds those).
class with_extra_headers {
 public:
  [[nodiscard]] extra_headers& headers() noexcept { return headers_; }
  [[nodiscard]] const extra_headers& headers() const noexcept { return headers_; }

 protected:
  /// `own` (the provider's keys) and the secret headers' values.
  [[nodiscard]] std::vector<std::string> secrets_with(std::vector<std::string> own) const {
    for (auto& s : headers_.secrets()) own.push_back(std::move(s));
    return own;
  }
  /// `identity` with the identity headers added.
  [[nodiscard]] json identity_with(json identity) const {
    headers_.add_identity(identity);
    return identity;
  }
  extra_headers headers_;
};

/// The parts of an absolute URL.
struct url_parts {
  std::string scheme;  ///< "http" or "https"
  std::string host;
  int port = 0;
  std::string path;    ///< starts with '/', includes the query
  [[nodiscard]] std::string origin() const {
    return scheme + "://" + host + ":" + std::to_string(port);
  }
};

/// Parses an http(s) URL; throws std::invalid_argument naming the problem.
[[nodiscard]] REQUESTS_ENGINE_INLINE url_parts parse_url(const std::string& url);

/// Maps a non-2xx status (and the provider's code) to an error code.
[[nodiscard]] REQUESTS_ENGINE_INLINE error_code classify_status(int status,
                                                                std::string_view provider_code);

// A provider is a plain type with these members (see openai_compatible and
// examples/custom_provider.cpp):
//   result<json>       make_body(const conversation&, const params&) const;
//   http_request       make_request(const std::string& body) const;   // URL, auth, signing
//       // (or result<http_request>: called before every attempt, so a signature or a token is
//       // always fresh; an error of code connection, timeout, rate_limited or server_error is
//       // retried like a failed attempt, any other fails the request)
//   result<completion> parse_response(const http_response&) const;   // any status
//   json               cache_identity() const;                        // never a secret
// and optionally
//   std::vector<std::string> secrets() const;   // scrubbed from every error message
//   std::vector<std::string> split_choices(const std::string& body) const;
//       // a response with several choices (params::n) as one single-choice response per
//       // choice, usage shared out: with it, n samples fill n cache slots

class transport_session;
class stream_decoder;  // stream.hpp
using conversation_type = conversation;
using params_type = params;

/// One request of a batch, as a batch provider (a batch_backend's function) sees it. The
/// references stay valid for the call.
struct batch_request {
  const conversation_type& conversation;
  const params_type& params;        ///< params::n() is how many samples to answer (unset: one)
  const std::string& body;          ///< the provider's make_body, as JSON text
  const std::string& request_hash;  ///< the cache key's hash (identical requests share it)
  std::size_t sample = 0;           ///< which sample of this request (the first, when n > 1)
  const std::string& name_space;
};

/// What a batch provider's send_batch gets besides the batch: the worker's transport session,
/// the cancel flag, and a count of the HTTP requests it made.
struct batch_context {
  transport_session& session;
  const std::atomic<bool>& cancelled;  ///< set by cancel(): stop early if you can
  std::size_t http_requests = 0;       ///< the provider adds what it sent
};

/// How a batch provider's requests are collected into batches (see options::batching), set
/// fluently: `batching_options().max_size(32).max_wait(std::chrono::milliseconds(20))`.
class batching_options {
 public:
  /// The largest batch (default 32). A batch leaves at once when it is full.
  batching_options& max_size(std::size_t n) { max_size_ = n; return *this; }
  /// The longest a request waits for others (default 20 ms), counted from the first request of
  /// the batch being collected: a lone request leaves after this long.
  batching_options& max_wait(std::chrono::milliseconds w) { max_wait_ = w; return *this; }
  /// A full batch takes everything queued behind it, so it may be larger than max_size (off by
  /// default).
  batching_options& overflow(bool on) { overflow_ = on; return *this; }
  /// Batches in the backend at once (default 1; two GPUs: two).
  batching_options& concurrent(std::size_t n) { concurrent_ = n; return *this; }

  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
  [[nodiscard]] std::chrono::milliseconds max_wait() const noexcept { return max_wait_; }
  [[nodiscard]] bool overflow() const noexcept { return overflow_; }
  [[nodiscard]] std::size_t concurrent() const noexcept { return concurrent_; }

 private:
  std::size_t max_size_ = 32;
  std::chrono::milliseconds max_wait_{20};
  bool overflow_ = false;
  std::size_t concurrent_ = 1;
};

// A batch provider takes many requests in one call. Besides make_body, parse_response and
// cache_identity it has
//   std::vector<result<std::string>> send_batch(const std::vector<batch_request>&, batch_context&) const;
// answering each request, in order, with a response body its parse_response reads (and the
// cache stores), or an error (retryable codes are retried, in a later batch). make_request is
// then optional: without it the provider is fed batches only (see options::batching).
// A batch provider may also have
//   batching_options batching_defaults() const;   // batching on by default, with these settings
//       // (options::batching replaces them): an embedding provider packs inputs this way
//   bool deterministic() const;                   // true: one answer per request, so identical
//       // requests share sample 0 instead of drawing distinct samples (embeddings)

namespace detail {

[[nodiscard]] REQUESTS_ENGINE_INLINE std::string sha256_hex(std::string_view data);
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string base64_encode(std::string_view data);
/// Replaces every secret (and provider-masked forms of it) in `text` with "[redacted]".
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string redact(std::string text,
                                                        const std::vector<std::string>& secrets);
/// Seconds or HTTP-date `retry-after`, or `retry-after-ms`.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_retry_after(
    const header_list& h);
/// Provider-independent error for a non-2xx answer whose body is OpenAI-shaped
/// ({"error":{"message","type","code"}}) or Anthropic-shaped, or not JSON at all.
[[nodiscard]] REQUESTS_ENGINE_INLINE error error_from_response(const http_response& r);
/// `text` for an error message: bytes outside printable ASCII as \xNN.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string printable(std::string_view text);
/// The invalid_request error a provider gives for what its API cannot express ("PROVIDER: WHAT").
[[nodiscard]] REQUESTS_ENGINE_INLINE error unsupported(std::string_view provider, const std::string& what);
/// `body` with params::extra merged in last (RFC 7386 merge patch), or invalid_request when
/// extra is set but not a JSON object: how every built-in make_body ends.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<json> with_extra(json body, const params& p);
/// A request body as sent: its JSON text, or an invalid_request error when a string in it
/// (a prompt, a system prompt, a parameter) is not valid UTF-8, which JSON cannot carry.
[[nodiscard]] REQUESTS_ENGINE_INLINE result<std::string> dump_body(const json& body);

}  // namespace detail

namespace detail {

/// The provider, type-erased so that the dispatcher is compiled once.
class provider_ops {
 public:
  virtual ~provider_ops() = default;
  virtual result<http_request> make_request(const std::string& body) const = 0;
  virtual result<completion> parse_response(const http_response& r) const = 0;
  virtual std::vector<std::string> secrets() const = 0;
  /// Empty when the provider cannot split a multi-choice response.
  virtual std::vector<std::string> split_choices(const std::string& body) const = 0;
  virtual bool can_split() const = 0;
  /// A batch provider (send_batch), and one that has no single-request path (no make_request).
  virtual bool can_batch() const = 0;
  virtual bool must_batch() const = 0;
  virtual std::vector<result<std::string>> send_batch(const std::vector<batch_request>& batch,
                                                      batch_context& context) const = 0;
  /// The provider's own batching settings (batching on without options::batching), if any.
  virtual std::optional<batching_options> batching_defaults() const = 0;
  /// One answer per request: identical requests share sample 0.
  virtual bool deterministic() const = 0;
  /// Streaming (stream.hpp): the provider has make_stream_request and make_stream_decoder.
  virtual bool can_stream() const = 0;
  virtual result<http_request> make_stream_request(const std::string& body) const = 0;
  virtual std::unique_ptr<stream_decoder> make_stream_decoder() const = 0;
  /// This request must stream (stream_mode::automatic): Anthropic's rule for long answers.
  virtual bool stream_needed(const std::string& body) const = 0;
};

}  // namespace detail

namespace detail {

template <class P, class = void>
struct has_make_body : std::false_type {};
template <class P>
struct has_make_body<P, std::enable_if_t<std::is_convertible_v<
                            decltype(std::declval<const P&>().make_body(std::declval<const conversation&>(),
                                                                        std::declval<const params&>())),
                            result<json>>>> : std::true_type {};
template <class P, class = void>
struct has_make_request : std::false_type {};
template <class P>
struct has_make_request<P, std::enable_if_t<std::is_convertible_v<
                               decltype(std::declval<const P&>().make_request(std::declval<const std::string&>())),
                               result<http_request>>>> : std::true_type {};
template <class P, class = void>
struct has_parse_response : std::false_type {};
template <class P>
struct has_parse_response<P, std::enable_if_t<std::is_convertible_v<
                                 decltype(std::declval<const P&>().parse_response(std::declval<const http_response&>())),
                                 result<completion>>>> : std::true_type {};
template <class P, class = void>
struct has_cache_identity : std::false_type {};
template <class P>
struct has_cache_identity<
    P, std::enable_if_t<std::is_convertible_v<decltype(std::declval<const P&>().cache_identity()), json>>>
    : std::true_type {};

template <class P, class = void>
struct has_send_batch : std::false_type {};
template <class P>
struct has_send_batch<P, std::enable_if_t<std::is_convertible_v<
                             decltype(std::declval<const P&>().send_batch(std::declval<const std::vector<batch_request>&>(),
                                                                          std::declval<batch_context&>())),
                             std::vector<result<std::string>>>>> : std::true_type {};

/// Names the first member a provider type lacks, in plain words.
template <class P>
constexpr bool check_provider() {
  static_assert(has_make_body<P>::value,
                "requests_engine: the Provider needs a const member "
                "`result<json> make_body(const conversation&, const params&) const` that builds the request body");
  static_assert(has_make_request<P>::value || has_send_batch<P>::value,
                "requests_engine: the Provider needs a const member "
                "`http_request make_request(const std::string& body) const` (or one returning "
                "result<http_request>) that sets the URL, the headers and any signature");
  static_assert(has_parse_response<P>::value,
                "requests_engine: the Provider needs a const member "
                "`result<completion> parse_response(const http_response&) const` that reads an answer of any status");
  static_assert(has_cache_identity<P>::value,
                "requests_engine: the Provider needs a const member `json cache_identity() const` naming "
                "what makes its answers differ (kind, endpoint, model; never a secret)");
  return true;
}

template <class P, class = void>
struct has_secrets : std::false_type {};
template <class P>
struct has_secrets<P, std::void_t<decltype(std::declval<const P&>().secrets())>> : std::true_type {};

template <class P, class = void>
struct has_split_choices : std::false_type {};
template <class P>
struct has_split_choices<P, std::void_t<decltype(std::declval<const P&>().split_choices(std::string()))>>
    : std::true_type {};

template <class P, class = void>
struct has_batching_defaults : std::false_type {};
template <class P>
struct has_batching_defaults<P, std::enable_if_t<std::is_convertible_v<
                                    decltype(std::declval<const P&>().batching_defaults()), batching_options>>>
    : std::true_type {};

template <class P, class = void>
struct has_deterministic : std::false_type {};
template <class P>
struct has_deterministic<
    P, std::enable_if_t<std::is_convertible_v<decltype(std::declval<const P&>().deterministic()), bool>>>
    : std::true_type {};

template <class P, class = void>
struct has_make_stream_request : std::false_type {};
template <class P>
struct has_make_stream_request<P, std::enable_if_t<std::is_convertible_v<
                                      decltype(std::declval<const P&>().make_stream_request(std::declval<const std::string&>())),
                                      result<http_request>>>> : std::true_type {};
template <class P, class = void>
struct has_make_stream_decoder : std::false_type {};
template <class P>
struct has_make_stream_decoder<P, std::enable_if_t<std::is_convertible_v<
                                      decltype(std::declval<const P&>().make_stream_decoder()),
                                      std::unique_ptr<stream_decoder>>>> : std::true_type {};
template <class P, class = void>
struct has_stream_needed : std::false_type {};
template <class P>
struct has_stream_needed<P, std::enable_if_t<std::is_convertible_v<
                                decltype(std::declval<const P&>().stream_needed(std::declval<const std::string&>())),
                                bool>>> : std::true_type {};

template <class Provider>
class provider_adapter final : public provider_ops {
 public:
  static constexpr bool streams = has_make_stream_request<Provider>::value && has_make_stream_decoder<Provider>::value;
  bool can_stream() const override { return streams; }
  result<http_request> make_stream_request(const std::string& body) const override {
    if constexpr (streams) {
      return p_.make_stream_request(body);
    } else {
      (void)body;
      return error{error_code::internal, 0, "this provider does not stream", {}, 0, {}};
    }
  }
  std::unique_ptr<stream_decoder> make_stream_decoder() const override {
    if constexpr (streams) {
      return p_.make_stream_decoder();
    } else {
      return nullptr;
    }
  }
  bool stream_needed(const std::string& body) const override {
    if constexpr (streams && has_stream_needed<Provider>::value) {
      return static_cast<bool>(p_.stream_needed(body));
    } else {
      (void)body;
      return false;
    }
  }
  std::vector<std::string> split_choices(const std::string& body) const override {
    if constexpr (has_split_choices<Provider>::value) {
      return p_.split_choices(body);
    } else {
      (void)body;
      return {};
    }
  }
  bool can_split() const override { return has_split_choices<Provider>::value; }
  bool can_batch() const override { return has_send_batch<Provider>::value; }
  bool must_batch() const override { return !has_make_request<Provider>::value; }
  std::vector<result<std::string>> send_batch(const std::vector<batch_request>& batch,
                                              batch_context& context) const override {
    if constexpr (has_send_batch<Provider>::value) {
      return p_.send_batch(batch, context);
    } else {
      (void)context;
      return std::vector<result<std::string>>(
          batch.size(), error{error_code::internal, 0, "this provider takes no batches", {}, 0, {}});
    }
  }
  std::optional<batching_options> batching_defaults() const override {
    if constexpr (has_batching_defaults<Provider>::value && has_send_batch<Provider>::value) {
      return batching_options(p_.batching_defaults());
    } else {
      return std::nullopt;
    }
  }
  bool deterministic() const override {
    if constexpr (has_deterministic<Provider>::value) {
      return static_cast<bool>(p_.deterministic());
    } else {
      return false;
    }
  }
  explicit provider_adapter(const Provider& p) : p_(p) {}
  result<http_request> make_request(const std::string& body) const override {
    if constexpr (has_make_request<Provider>::value) {
      return p_.make_request(body);
    } else {
      (void)body;
      return error{error_code::internal, 0, "this provider takes batches only", {}, 0, {}};
    }
  }
  result<completion> parse_response(const http_response& r) const override {
    return p_.parse_response(r);
  }
  std::vector<std::string> secrets() const override {
    if constexpr (has_secrets<Provider>::value) {
      return p_.secrets();
    } else {
      return {};
    }
  }

 private:
  const Provider& p_;
};

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
