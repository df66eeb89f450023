// bedrock.ipp: the definitions of bedrock.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "bedrock.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE aws_credentials aws_credentials::from_environment() {
  auto var = [](const char* name, bool required) {
    const char* v = std::getenv(name);
    if ((!v || !*v) && required)
      throw std::invalid_argument(std::string("requests_engine: the environment variable ") + name + " is not set");
    return std::string(v ? v : "");
  };
  aws_credentials c;
  c.access_key_id = var("AWS_ACCESS_KEY_ID", true);
  c.secret_access_key = var("AWS_SECRET_ACCESS_KEY", true);
  c.session_token = var("AWS_SESSION_TOKEN", false);
  return c;
}

REQUESTS_ENGINE_INLINE std::string aws_region_from_environment() {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"})
    if (const char* v = std::getenv(name); v && *v) return v;
  return {};
}

namespace detail {

REQUESTS_ENGINE_INLINE std::string hmac_sha256(std::string_view key, std::string_view data) {
  // The EVP_PKEY route works unchanged from OpenSSL 1.1.1 to 3.x, where HMAC_CTX is deprecated.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                                   key.size()),
      &EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t len = sizeof mac;
  if (!pkey || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), mac, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("requests_engine: OpenSSL HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), len);
}

REQUESTS_ENGINE_INLINE std::string aws_uri_encode(std::string_view s, bool encode_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0x0f]);
    }
  }
  return out;
}

REQUESTS_ENGINE_INLINE std::string sigv4_timestamp(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
#if defined(_WIN32)
  gmtime_s(&tm, &tt);
#else
  gmtime_r(&tt, &tm);
#endif
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

// The canonical URI: the wire path (dot and empty segments removed, as RFC 3986 and AWS do for
// every service but S3) with each segment percent-encoded once more, so "%3A" signs as "%253A".
inline std::string sigv4_canonical_uri(const std::string& path, bool normalize) {
  if (path.empty()) return "/";
  if (!normalize) return aws_uri_encode(path, false);
  std::vector<std::string_view> segments;
  std::string_view rest(path);
  std::string_view seg;
  for (bool more = true; more;) {
    const auto slash = rest.find('/');
    more = slash != std::string_view::npos;
    seg = rest.substr(0, slash);
    rest = more ? rest.substr(slash + 1) : std::string_view();
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
  }
  // "/a/", "/a/." and "/a/b/.." name a directory: the slash stays.
  const bool trailing_slash = seg.empty() || seg == "." || seg == "..";
  std::string out;
  for (auto part : segments) out += "/" + aws_uri_encode(part, true);
  if (out.empty() || trailing_slash) out += "/";
  return out;
}

inline std::string sigv4_percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Parameters decoded then encoded the AWS way (so "%E1%88%B4" and raw UTF-8 sign alike), sorted
// by name then value.
inline std::string sigv4_canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> items;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view name = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    items.emplace_back(aws_uri_encode(sigv4_percent_decode(name), true),
                       aws_uri_encode(sigv4_percent_decode(value), true));
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& kv : items) {
    if (!out.empty()) out += '&';
    out += kv.first + "=" + kv.second;
  }
  return out;
}

// Trimmed, with every run of whitespace (folded lines included) as one space.
inline std::string sigv4_header_value(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char ch : v) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(ch);
  }
  return out;
}

REQUESTS_ENGINE_INLINE sigv4_output sigv4_sign(const sigv4_input& in) {
  const bool has_token = !in.credentials.session_token.empty();
  sigv4_output out;
  if (has_token) out.added_headers.emplace_back("X-Amz-Security-Token", in.credentials.session_token);
  out.added_headers.emplace_back("X-Amz-Date", in.timestamp);
  const std::string payload_hash = sha256_hex(in.body);
  if (in.sign_body) out.added_headers.emplace_back("x-amz-content-sha256", payload_hash);

  auto lower = [](std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  // Sorted by lower-case name; a repeated header's values joined with ',' in the order given.
  std::map<std::string, std::string> canonical;
  auto add = [&](const std::string& name, std::string_view value) {
    auto [it, fresh] = canonical.emplace(name, std::string());
    if (!fresh) it->second += ',';
    it->second += sigv4_header_value(value);
  };
  for (const auto& kv : in.headers) {
    std::string name = lower(kv.first);
    if (name == "authorization" || name == "x-amz-date" || (has_token && name == "x-amz-security-token") ||
        (in.sign_body && name == "x-amz-content-sha256"))
      continue;  // the signer's own headers replace these
    add(name, kv.second);
  }
  for (const auto& kv : out.added_headers)
    if (in.sign_session_token || kv.first != "X-Amz-Security-Token") add(lower(kv.first), kv.second);

  std::string canonical_headers, signed_headers;
  for (const auto& kv : canonical) {
    canonical_headers += kv.first + ":" + kv.second + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += kv.first;
  }
  out.canonical_request = in.method + "\n" + sigv4_canonical_uri(in.path, in.normalize_path) + "\n" +
                          sigv4_canonical_query(in.query) + "\n" + canonical_headers + "\n" + signed_headers +
                          "\n" + payload_hash;

  const std::string date = in.timestamp.substr(0, 8);
  const std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + in.timestamp + "\n" + scope + "\n" + sha256_hex(out.canonical_request);

  std::string key = "AWS4" + in.credentials.secret_access_key;
  std::string k = hmac_sha256(key, date);
  OPENSSL_cleanse(&key[0], key.size());
  k = hmac_sha256(k, in.region);
  k = hmac_sha256(k, in.service);
  k = hmac_sha256(k, "aws4_request");
  const std::string mac = hmac_sha256(k, out.string_to_sign);
  OPENSSL_cleanse(&k[0], k.size());
  static const char* hex = "0123456789abcdef";
  for (char ch : mac) {
    const auto c = static_cast<unsigned char>(ch);
    out.signature.push_back(hex[c >> 4]);
    out.signature.push_back(hex[c & 0x0f]);
  }
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + in.credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + out.signature;
  return out;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE bedrock_anthropic::bedrock_anthropic(aws_credentials credentials, std::string region,
                                                            std::string model_id, std::string base_url)
    : credentials_(std::move(credentials)), region_(std::move(region)), model_id_(std::move(model_id)) {
  if (credentials_.access_key_id.empty())
    throw std::invalid_argument("requests_engine: bedrock_anthropic: the AWS access key id is empty");
  if (credentials_.secret_access_key.empty())
    throw std::invalid_argument("requests_engine: bedrock_anthropic: the AWS secret access key is empty");
  if (region_.empty())
    throw std::invalid_argument("requests_engine: bedrock_anthropic: the AWS region is empty (e.g. \"us-east-1\")");
  for (char ch : region_)  // it becomes part of a host name and of the signature's scope
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-')
      throw std::invalid_argument("requests_engine: bedrock_anthropic: bad AWS region '" + region_ + "'");
  if (model_id_.empty()) throw std::invalid_argument("requests_engine: bedrock_anthropic: the model id is empty");
  if (base_url.empty()) base_url = "https://bedrock-runtime." + region_ + ".amazonaws.com";
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  if (base_url.find_first_of("?#") != std::string::npos)
    throw std::invalid_argument("requests_engine: bedrock_anthropic: base URL '" + base_url +
                                "' has a query or fragment");
  // An ARN's ':' and '/' are encoded as well: the whole id is one path segment.
  endpoint_ = base_url + "/model/" + detail::aws_uri_encode(model_id_, true) + "/invoke";
  const url_parts u = parse_url(endpoint_);  // throws std::invalid_argument on a malformed URL
  wire_path_ = u.path;
  host_header_ = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  if (u.port != (u.scheme == "https" ? 443 : 80)) host_header_ += ":" + std::to_string(u.port);
}

REQUESTS_ENGINE_INLINE bedrock_anthropic bedrock_anthropic::from_environment(std::string model_id,
                                                                            std::string base_url) {
  aws_credentials credentials = aws_credentials::from_environment();
  std::string region = aws_region_from_environment();
  if (region.empty())
    throw std::invalid_argument("requests_engine: the environment variable AWS_REGION (or AWS_DEFAULT_REGION) is not set");
  return bedrock_anthropic(std::move(credentials), std::move(region), std::move(model_id), std::move(base_url));
}

REQUESTS_ENGINE_INLINE result<json> bedrock_anthropic::make_body(const conversation& c, const params& p) const {
  if (p.model() && *p.model() != model_id_)
    return error{error_code::invalid_request, 0,
                 "bedrock_anthropic: params::model '" + *p.model() + "' differs from the provider's model '" +
                     model_id_ + "'; the model is part of the URL: construct one provider per model",
                 {}, 0, {}};
  auto body = detail::anthropic_messages_body(c, p, default_max_tokens_, "bedrock_anthropic");
  if (!body) return body;
  if (!body->contains("anthropic_version")) (*body)["anthropic_version"] = version_;  // params::extra may have set it
  return body;
}

REQUESTS_ENGINE_INLINE http_request bedrock_anthropic::make_request(const std::string& body) const {
  return make_request_at(body, detail::sigv4_timestamp(std::chrono::system_clock::now()));
}

REQUESTS_ENGINE_INLINE http_request bedrock_anthropic::make_request_at(const std::string& body,
                                                                       const std::string& timestamp,
                                                                       bool stream) const {
  static const std::string stream_suffix = "-with-response-stream";
  const char* accept = stream ? "application/vnd.amazon.eventstream" : "application/json";
  detail::sigv4_input in;
  in.method = "POST";
  in.path = stream ? wire_path_ + stream_suffix : wire_path_;
  // Content-Type comes from http_request::content_type (the transport sets it); it is signed
  // here with the same value.
  in.headers = {{"host", host_header_}, {"content-type", "application/json"}, {"accept", accept}};
  in.body = body;
  in.credentials = credentials_;
  in.region = region_;
  in.service = "bedrock";
  in.timestamp = timestamp;
  detail::sigv4_output s = detail::sigv4_sign(in);

  http_request r;
  r.url = stream ? endpoint_ + stream_suffix : endpoint_;
  r.body = body;
  r.content_type = "application/json";
  r.headers.emplace_back("Host", host_header_);
  r.headers.emplace_back("Accept", accept);
  for (auto& kv : s.added_headers) r.headers.push_back(std::move(kv));
  r.headers.emplace_back("Authorization", std::move(s.authorization));
  headers_.apply_to(r.headers);  // not signed: SigV4 lets a request carry unsigned headers
  return r;
}

REQUESTS_ENGINE_INLINE result<completion> bedrock_anthropic::parse_response(const http_response& r) const {
  if (r.status >= 200 && r.status < 300) return detail::anthropic_parse_response(r);
  error e = detail::error_from_response(r);
  json body = detail::parse_json(r.body);
  // Some Bedrock front ends capitalise it. An empty one keeps the message made from the status.
  if (!body.is_discarded() && body.is_object() && body.contains("Message") && body["Message"].is_string() &&
      !body["Message"].get_ref<const std::string&>().empty())
    e.message = body["Message"].get<std::string>();
  // "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/" -> ThrottlingException
  std::string type = r.header("x-amzn-ErrorType");
  type = type.substr(0, type.find(':'));
  if (type.empty() && !body.is_discarded() && body.is_object() && body.contains("__type") &&
      body["__type"].is_string()) {
    type = body["__type"].get<std::string>();
    if (auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  }
  if (!type.empty()) e.provider_code = type;
  if (type == "ThrottlingException" || type == "ModelNotReadyException" || type == "TooManyRequestsException")
    e.code = error_code::rate_limited;
  else if (type == "ServiceUnavailableException" || type == "InternalServerException" || type == "InternalFailure")
    e.code = error_code::server_error;
  else if (type == "ModelTimeoutException")
    e.code = error_code::timeout;
  else if (type == "AccessDeniedException")
    e.code = error_code::permission_denied;
  else if (type == "UnrecognizedClientException" || type == "InvalidSignatureException" ||
           type == "IncompleteSignatureException" || type == "MissingAuthenticationTokenException" ||
           type == "ExpiredTokenException" || type == "InvalidClientTokenId")
    e.code = error_code::authentication;  // the key itself is wrong, unknown or expired
  else
    e.code = classify_status(r.status, type);
  // The access key id is not secret, but an error log has no use for it either.
  e.message = detail::redact(std::move(e.message), {credentials_.access_key_id});
  return e;
}

REQUESTS_ENGINE_INLINE json bedrock_anthropic::cache_identity() const {
  return identity_with({{"kind", "bedrock_anthropic"},
                       {"endpoint", endpoint_},
                       {"model", model_id_},
                       {"anthropic_version", version_}});
}

REQUESTS_ENGINE_NAMESPACE_END
