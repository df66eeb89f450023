// provider.ipp: the definitions of provider.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "provider.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE std::string find_header(const header_list& h, std::string_view name) {
  for (const auto& kv : h) {
    if (kv.first.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      auto a = static_cast<unsigned char>(kv.first[i]);
      auto b = static_cast<unsigned char>(name[i]);
      same = std::tolower(a) == std::tolower(b);
    }
    if (same) return kv.second;
  }
  return {};
}

namespace detail {
inline bool same_header_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}
REQUESTS_ENGINE_INLINE std::string printable(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0x0f]);
    }
  }
  return out;
}
}  // namespace detail

REQUESTS_ENGINE_INLINE extra_headers& extra_headers::set(std::string name, std::string value, header_use use) {
  // RFC 9110 token characters.
  static const std::string_view token_punctuation = "!#$%&'*+-.^_`|~";
  if (name.empty()) throw std::invalid_argument("requests_engine: a header needs a name");
  for (char ch : name) {
    const auto u = static_cast<unsigned char>(ch);
    if (!(std::isalnum(u) && u < 0x80) && token_punctuation.find(ch) == std::string_view::npos)
      throw std::invalid_argument("requests_engine: header name '" + detail::printable(name) +
                                  "' is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~ only)");
  }
  for (char ch : value)
    if (ch == '\r' || ch == '\n' || ch == '\0')
      throw std::invalid_argument("requests_engine: the value of header '" + name +
                                  "' holds a line break or NUL, which a header cannot carry");
  erase(name);
  entries_.push_back(entry{std::move(name), std::move(value), use});
  return *this;
}

REQUESTS_ENGINE_INLINE extra_headers& extra_headers::erase(std::string_view name) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const entry& e) { return detail::same_header_name(e.name, name); }),
                 entries_.end());
  return *this;
}

REQUESTS_ENGINE_INLINE std::optional<std::string> extra_headers::get(std::string_view name) const {
  for (const auto& e : entries_)
    if (detail::same_header_name(e.name, name)) return e.value;
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE void extra_headers::apply_to(header_list& h) const {
  for (const auto& e : entries_) {
    h.erase(std::remove_if(h.begin(), h.end(), [&](const auto& kv) { return detail::same_header_name(kv.first, e.name); }),
            h.end());
    h.emplace_back(e.name, e.value);
  }
}

REQUESTS_ENGINE_INLINE std::vector<std::string> extra_headers::secrets() const {
  std::vector<std::string> out;
  for (const auto& e : entries_)
    if (e.use == header_use::secret) out.push_back(e.value);
  return out;
}

REQUESTS_ENGINE_INLINE void extra_headers::add_identity(json& identity) const {
  json named = json::object();
  for (const auto& e : entries_) {
    if (e.use != header_use::identity) continue;
    std::string lower = e.name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    named[lower] = e.value;
  }
  if (!named.empty()) identity["headers"] = std::move(named);
}

REQUESTS_ENGINE_INLINE url_parts parse_url(const std::string& url) {
  url_parts u;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    throw std::invalid_argument("requests_engine: URL '" + url + "' has no scheme (expected http:// or https://)");
  u.scheme = url.substr(0, scheme_end);
  std::transform(u.scheme.begin(), u.scheme.end(), u.scheme.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (u.scheme != "http" && u.scheme != "https")
    throw std::invalid_argument("requests_engine: URL '" + url + "' has scheme '" + u.scheme +
                                "' (expected http or https)");
  auto rest = url.substr(scheme_end + 3);
  auto path_start = rest.find_first_of("/?");
  std::string authority = rest.substr(0, path_start);
  u.path = path_start == std::string::npos ? "/" : rest.substr(path_start);
  if (!u.path.empty() && u.path[0] == '?') u.path = "/" + u.path;
  if (authority.find('@') != std::string::npos)
    throw std::invalid_argument("requests_engine: credentials in a URL are not supported; pass the key separately");
  u.port = u.scheme == "https" ? 443 : 80;
  std::string hostport = authority;
  if (!hostport.empty() && hostport[0] == '[') {  // [IPv6]:port
    auto close = hostport.find(']');
    if (close == std::string::npos)
      throw std::invalid_argument("requests_engine: URL '" + url + "' has an unclosed IPv6 bracket");
    u.host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport[0] == ':') hostport = hostport.substr(1);
    else hostport.clear();
  } else {
    auto colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    hostport = colon == std::string::npos ? std::string() : hostport.substr(colon + 1);
  }
  if (u.host.empty()) throw std::invalid_argument("requests_engine: URL '" + url + "' has no host");
  if (!hostport.empty()) {
    int port = 0;
    for (char ch : hostport) {
      if (ch < '0' || ch > '9' || port > 65535)
        throw std::invalid_argument("requests_engine: URL '" + url + "' has a bad port '" + hostport + "'");
      port = port * 10 + (ch - '0');
    }
    if (port <= 0 || port > 65535)
      throw std::invalid_argument("requests_engine: URL '" + url + "' has a bad port '" + hostport + "'");
    u.port = port;
  }
  return u;
}

REQUESTS_ENGINE_INLINE error_code classify_status(int status, std::string_view provider_code) {
  if (provider_code == "insufficient_quota") return error_code::insufficient_quota;
  if (provider_code == "content_filter" && status >= 400 && status < 500) return error_code::content_filtered;
  switch (status) {
    case 401: return error_code::authentication;
    case 403: return error_code::permission_denied;
    case 408: return error_code::timeout;
    case 429: return error_code::rate_limited;
    default: break;
  }
  if (status >= 500) return error_code::server_error;
  if (status == 409) return error_code::http_error;
  if (status >= 400) return error_code::bad_request;
  return error_code::http_error;
}

namespace detail {

REQUESTS_ENGINE_INLINE std::string sha256_hex(std::string_view data) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  // Fetched once: OpenSSL 3 would otherwise look the algorithm up on every call.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md_type = sha256 ? sha256 : EVP_sha256();
#else
  const EVP_MD* md_type = EVP_sha256();
#endif
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, md_type, nullptr) != 1)
    throw std::runtime_error("requests_engine: OpenSSL SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2u);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0x0f]);
  }
  return out;
}

REQUESTS_ENGINE_INLINE std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  if (data.empty()) return out;
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

REQUESTS_ENGINE_INLINE std::string redact(std::string text, const std::vector<std::string>& secrets) {
  static const std::string mask = "[redacted]";
  for (const auto& s : secrets) {
    if (s.size() < 4) continue;
    for (auto pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + mask.size()))
      text.replace(pos, s.size(), mask);
  }
  // Providers echo keys half-masked ("sk-proj-abc****wxyz"): drop any word that carries a
  // run of '*' or a recognisable piece of a secret.
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    std::string word = text.substr(i, j - i);
    bool hide = word.find("***") != std::string::npos;
    for (const auto& s : secrets) {
      if (hide || s.size() < 16) continue;
      hide = word.find(s.substr(0, 8)) != std::string::npos ||
             word.find(s.substr(s.size() - 6)) != std::string::npos;
    }
    out += hide ? mask : word;
    while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j]))) out.push_back(text[j++]);
    i = j;
  }
  return out;
}

}  // namespace detail

namespace detail {

REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_retry_after(const header_list& h) {
  auto parse_number = [](const std::string& v) -> std::optional<double> {
    if (v.empty()) return std::nullopt;
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !(d >= 0) || d > 1e9) return std::nullopt;
    return d;
  };
  if (auto ms = parse_number(find_header(h, "retry-after-ms")))
    return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
  if (auto ms = parse_number(find_header(h, "x-ms-retry-after-ms")))  // Azure's
    return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
  std::string v = find_header(h, "retry-after");
  if (v.empty()) return std::nullopt;
  if (auto s = parse_number(v)) return std::chrono::milliseconds(static_cast<std::int64_t>(*s * 1000.0));
  // An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  char month[4] = {0};
  int day = 0, year = 0, hh = 0, mm = 0, ss = 0;
  if (std::sscanf(v.c_str(), "%*3s, %d %3s %d %d:%d:%d GMT", &day, month, &year, &hh, &mm, &ss) != 6)
    return std::nullopt;
  static const char* months = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const char* found = std::strstr(months, month);
  if (!found || month[0] == '\0') return std::nullopt;
  // Fields out of range would overflow the time arithmetic below (system_clock counts
  // nanoseconds: it ends in 2262).
  if (year < 1970 || year > 2200 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
    return std::nullopt;
  tm.tm_mday = day;
  tm.tm_mon = static_cast<int>((found - months) / 3);
  tm.tm_year = year - 1900;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
#if defined(_WIN32)
  std::time_t when = _mkgmtime(&tm);
#else
  std::time_t when = timegm(&tm);
#endif
  auto now = std::chrono::system_clock::now();
  auto target = std::chrono::system_clock::from_time_t(when);
  if (target <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(target - now);
}

REQUESTS_ENGINE_INLINE error unsupported(std::string_view provider, const std::string& what) {
  return error{error_code::invalid_request, 0, std::string(provider) + ": " + what, {}, 0, {}};
}

REQUESTS_ENGINE_INLINE result<std::string> dump_body(const json& body) {
  try {
    return body.dump();
  } catch (const json::type_error& e) {  // 316: invalid UTF-8 in a string
    std::string why = e.what();
    const std::size_t close = why.find("] ");
    if (close != std::string::npos) why.erase(0, close + 2);
    return error{error_code::invalid_request, 0,
                 "the request holds text that is not valid UTF-8 (" + why + "); JSON carries UTF-8 only", {}, 0, {}};
  }
}

// Azure's content filter names what it found in the error's inner error:
// {"innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate":
// {"filtered": true, "severity": "high"}, ...}}} (spelled innerError / inner_error and
// content_filter_results too). " (filtered: hate high, violence medium)", or "".
inline std::string content_filter_categories(const json& err) {
  for (const char* inner_name : {"innererror", "innerError", "inner_error"}) {
    auto inner = err.find(inner_name);
    if (inner == err.end() || !inner->is_object()) continue;
    for (const char* result_name : {"content_filter_result", "content_filter_results"}) {
      auto found = inner->find(result_name);
      if (found == inner->end() || !found->is_object()) continue;
      std::string list;
      for (auto it = found->begin(); it != found->end(); ++it) {
        if (!it->is_object() || !it->value("filtered", false)) continue;
        if (!list.empty()) list += ", ";
        list += it.key();
        if (auto sev = it->find("severity"); sev != it->end() && sev->is_string()) list += " " + sev->get<std::string>();
      }
      if (!list.empty()) return " (filtered: " + list + ")";
    }
  }
  return {};
}

REQUESTS_ENGINE_INLINE result<json> with_extra(json body, const params& p) {
  if (p.extra().is_null()) return body;
  if (!p.extra().is_object())
    return error{error_code::invalid_request, 0, "params::extra must be a JSON object", {}, 0, {}};
  body.merge_patch(p.extra());
  return body;
}

REQUESTS_ENGINE_INLINE error error_from_response(const http_response& r) {
  error e;
  e.http_status = r.status;
  json body = detail::parse_json(r.body);
  if (!body.is_discarded() && body.is_object()) {
    const json* err = nullptr;
    if (body.contains("error") && body["error"].is_object()) err = &body["error"];
    if (err) {
      if (err->contains("message") && (*err)["message"].is_string())
        e.message = (*err)["message"].get<std::string>();
      if (err->contains("code") && (*err)["code"].is_string())
        e.provider_code = (*err)["code"].get<std::string>();
      else if (err->contains("type") && (*err)["type"].is_string())
        e.provider_code = (*err)["type"].get<std::string>();
      if (e.provider_code == "content_filter") e.message += content_filter_categories(*err);
    } else if (body.contains("error") && body["error"].is_string()) {
      e.message = body["error"].get<std::string>();
    } else if (body.contains("message") && body["message"].is_string()) {
      e.message = body["message"].get<std::string>();
    }
  }
  if (e.message.empty()) {
    std::string snippet = r.body.substr(0, 200);
    e.message = "HTTP " + std::to_string(r.status) + (snippet.empty() ? std::string(" with an empty body")
                                                                      : ": " + snippet);
  }
  e.code = classify_status(r.status, e.provider_code);
  e.retry_after = parse_retry_after(r.headers);
  return e;
}

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
