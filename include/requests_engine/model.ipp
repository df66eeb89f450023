// model.ipp: the definitions of model.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "model.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::system: return "system";
    case role::user: return "user";
    case role::assistant: return "assistant";
  }
  return "user";
}

REQUESTS_ENGINE_INLINE std::string message::text() const {
  std::string s;
  for (const auto& p : content)
    if (p.type == content_part::kind::text) s += p.text;
  return s;
}

REQUESTS_ENGINE_NAMESPACE_END
