// errors.ipp: the definitions of errors.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "errors.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE std::string_view to_string(error_code c) noexcept {
  switch (c) {
    case error_code::invalid_request: return "invalid_request";
    case error_code::connection: return "connection";
    case error_code::tls: return "tls";
    case error_code::timeout: return "timeout";
    case error_code::bad_request: return "bad_request";
    case error_code::content_filtered: return "content_filtered";
    case error_code::authentication: return "authentication";
    case error_code::permission_denied: return "permission_denied";
    case error_code::rate_limited: return "rate_limited";
    case error_code::insufficient_quota: return "insufficient_quota";
    case error_code::server_error: return "server_error";
    case error_code::http_error: return "http_error";
    case error_code::invalid_response: return "invalid_response";
    case error_code::response_too_large: return "response_too_large";
    case error_code::cancelled: return "cancelled";
    case error_code::deadline_exceeded: return "deadline_exceeded";
    case error_code::internal: return "internal";
  }
  return "unknown";
}

REQUESTS_ENGINE_INLINE std::string error::describe() const {
  std::string s(to_string(code));
  std::string paren;
  if (http_status != 0) paren = "HTTP " + std::to_string(http_status);
  if (attempts > 0) {
    if (!paren.empty()) paren += ", ";
    paren += std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
  }
  if (!paren.empty()) s += " (" + paren + ")";
  if (!message.empty()) s += ": " + message;
  return s;
}

REQUESTS_ENGINE_NAMESPACE_END
