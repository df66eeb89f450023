// errors.hpp: what a failed request is: error codes with stable names, the error value,
// and result<T>, which holds a value or an error (never an exception across a thread).
#pragma once

#include "config.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// What went wrong with one request. Stable names: `to_string` gives them.
enum class error_code {
  invalid_request,     ///< rejected before sending: the input cannot be turned into a request
  connection,          ///< could not connect, or the connection broke (reset, closed early)
  tls,                 ///< TLS handshake or certificate verification failed
  timeout,             ///< connect, read or write timeout (or HTTP 408)
  bad_request,         ///< HTTP 400, 404, 413, 422 and other 4xx the server rejected as such
  content_filtered,    ///< the provider's content filter refused the prompt (Azure's 400 content_filter);
                       ///< an answer it cut short is a success with finish_reason "content_filter"
  authentication,      ///< HTTP 401: the key is wrong or missing
  permission_denied,   ///< HTTP 403
  rate_limited,        ///< HTTP 429 after the last retry
  insufficient_quota,  ///< HTTP 429 with code insufficient_quota: waiting cannot fix it
  server_error,        ///< HTTP 5xx (and Anthropic's 529) after the last retry
  http_error,          ///< any other non-2xx status
  invalid_response,    ///< a 2xx whose body is not the JSON the provider documents
  response_too_large,  ///< the body passed options::max_response_bytes
  cancelled,           ///< the run was cancelled before this request finished
  deadline_exceeded,   ///< options::request_deadline passed before a final answer
  internal,            ///< a bug or an exception from user code (a callback, a provider)
};

[[nodiscard]] REQUESTS_ENGINE_INLINE std::string_view to_string(error_code c) noexcept;

/// A failed request, as a value.
struct error {
  error_code code = error_code::internal;
  int http_status = 0;               ///< 0 when no HTTP answer was received
  std::string message;               ///< the provider's message, or ours; never holds a secret
  std::string provider_code;         ///< the provider's own code or type, e.g. "invalid_api_key"
  int attempts = 0;                  ///< how many times it was sent
  std::optional<std::chrono::milliseconds> retry_after;  ///< what the server asked for, if it did

  /// One line for logs: "authentication (HTTP 401, 1 attempt): Incorrect API key provided."
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string describe() const;
};

/// Thrown by result<T>::value() on an error (a programming mistake: check the result first).
class bad_result_access : public std::logic_error {
 public:
  explicit bad_result_access(const error& e)
      : std::logic_error("requests_engine: result holds an error: " + e.describe()) {}
};

/// A value or an error, like std::expected.
template <class T>
class [[nodiscard]] result {
 public:
  using value_type = T;
  using error_type = ::requests_engine::error;

  result(T v) : v_(std::in_place_index<0>, std::move(v)) {}             // NOLINT: implicit on purpose
  result(error_type e) : v_(std::in_place_index<1>, std::move(e)) {}    // NOLINT

  explicit operator bool() const noexcept { return v_.index() == 0; }
  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }

  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; calling it on a success is a programming mistake (std::logic_error).
  const error_type& error() const& {
    if (has_value()) throw std::logic_error("requests_engine: result::error() called on a success");
    return std::get<1>(v_);
  }
  error_type& error() & {
    if (has_value()) throw std::logic_error("requests_engine: result::error() called on a success");
    return std::get<1>(v_);
  }

 private:
  void check() const {
    if (!has_value()) throw bad_result_access(std::get<1>(v_));
  }
  std::variant<T, error_type> v_;
};

REQUESTS_ENGINE_NAMESPACE_END
