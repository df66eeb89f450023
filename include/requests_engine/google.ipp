// google.ipp: the definitions of google.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "google.hpp"
#include "transport.hpp"  // the token source sends its own requests

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

REQUESTS_ENGINE_INLINE std::string base64url_encode(std::string_view data) {
  std::string s = base64_encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& ch : s) {
    if (ch == '+') ch = '-';
    else if (ch == '/') ch = '_';
  }
  return s;
}

struct evp_pkey_deleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

// Null unless `pem` holds an unencrypted RSA private key.
inline std::unique_ptr<EVP_PKEY, evp_pkey_deleter> read_rsa_private_key(const std::string& pem) {
  std::unique_ptr<EVP_PKEY, evp_pkey_deleter> key;
  if (pem.empty() || pem.size() > static_cast<std::size_t>(INT32_MAX)) return key;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (bio) {
    // A callback that gives no passphrase: OpenSSL's default would prompt on the terminal.
    pem_password_cb* no_passphrase = [](char*, int, int, void*) -> int { return 0; };
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  }
  ERR_clear_error();  // a failed parse leaves its reasons on this thread's queue
  if (key && EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) key.reset();
  return key;
}

inline result<std::string> rs256_sign(const std::string& pem, std::string_view input) {
  auto fail = [](const std::string& why) {
    return error{error_code::authentication, 0, "google service account: " + why, {}, 0, {}};
  };
  auto key = read_rsa_private_key(pem);
  if (!key) return fail("private_key is not a PEM RSA private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  std::size_t len = 0;
  std::string sig;
  bool ok = ctx && EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(&sig[0]), &len, in, input.size()) == 1;
    sig.resize(len);
  }
  ERR_clear_error();
  if (!ok) return fail("RS256 signing failed");
  return sig;
}

inline std::int64_t json_int_field(const json& o, const char* key) { return json_count(o, key); }

}  // namespace detail

// --- service account and tokens ---

REQUESTS_ENGINE_INLINE google_service_account google_service_account::from_json(const std::string& text,
                                                                                const std::string& origin) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("requests_engine: Google service-account file '" + origin + "': " + why);
  };
  // Parsed without exceptions: a parse error's message would quote the text, key included.
  json j = detail::parse_json(text);
  if (j.is_discarded() || !j.is_object()) throw bad("not a JSON object");
  const std::string type = detail::json_string_field(j, "type");
  if (!type.empty() && type != "service_account")
    throw bad("type is '" + type + "'; only 'service_account' keys are supported");
  auto field = [&](const char* name, bool required) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
      if (required) throw bad(std::string("missing field '") + name + "'");
      return std::string();
    }
    if (!it->is_string()) throw bad(std::string("field '") + name + "' is not a string");
    if (required && it->get_ref<const std::string&>().empty()) throw bad(std::string("field '") + name + "' is empty");
    return it->get<std::string>();
  };
  google_service_account sa;
  sa.client_email = field("client_email", true);
  sa.private_key = field("private_key", true);
  sa.private_key_id = field("private_key_id", false);
  sa.project_id = field("project_id", false);
  sa.token_uri = field("token_uri", false);
  if (sa.token_uri.empty()) sa.token_uri = "https://oauth2.googleapis.com/token";
  try {
    (void)parse_url(sa.token_uri);
  } catch (const std::invalid_argument&) {
    throw bad("field 'token_uri' is not an http(s) URL");
  }
  if (!detail::read_rsa_private_key(sa.private_key))
    throw bad("field 'private_key' is not an unencrypted PEM RSA private key");
  return sa;
}

REQUESTS_ENGINE_INLINE google_service_account google_service_account::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("requests_engine: cannot read the Google service-account file '" + path + "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return from_json(text, path);
}

REQUESTS_ENGINE_INLINE google_service_account google_service_account::from_environment() {
  const char* path = std::getenv("GOOGLE_APPLICATION_CREDENTIALS");
  if (!path || !*path)
    throw std::invalid_argument(
        "requests_engine: GOOGLE_APPLICATION_CREDENTIALS is not set (it names a service-account key file)");
  return from_file(path);
}

REQUESTS_ENGINE_INLINE result<std::string> google_service_account::jwt_assertion(std::int64_t issued_at,
                                                                                 std::string_view scope) const {
  // Written by hand in a fixed key order (json would sort the keys), so that an assertion is
  // reproducible byte for byte and can be checked against a reference.
  std::string header = R"({"alg":"RS256","typ":"JWT")";
  if (!private_key_id.empty()) header += ",\"kid\":" + json(private_key_id).dump();
  header += "}";
  const std::string claims = "{\"iss\":" + json(client_email).dump() + ",\"scope\":" + json(std::string(scope)).dump() +
                             ",\"aud\":" + json(token_uri).dump() + ",\"iat\":" + std::to_string(issued_at) +
                             ",\"exp\":" + std::to_string(issued_at + 3600) + "}";
  std::string input = detail::base64url_encode(header) + "." + detail::base64url_encode(claims);
  auto sig = detail::rs256_sign(private_key, input);
  if (!sig) return std::move(sig.error());
  return input + "." + detail::base64url_encode(*sig);
}

REQUESTS_ENGINE_INLINE google_token_source::google_token_source(google_service_account account, std::string scope)
    : account_(std::move(account)), scope_(std::move(scope)) {
  if (account_.client_email.empty())
    throw std::invalid_argument("requests_engine: google_token_source: the service account has no client_email");
  if (account_.private_key.empty())
    throw std::invalid_argument("requests_engine: google_token_source: the service account has no private_key");
  if (account_.token_uri.empty()) account_.token_uri = "https://oauth2.googleapis.com/token";
  (void)parse_url(account_.token_uri);  // throws std::invalid_argument naming the problem
}

REQUESTS_ENGINE_INLINE result<std::string> google_token_source::token() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!token_.empty() && std::chrono::steady_clock::now() < refresh_at_) return token_;
  if (fetching_) {
    // Another caller is fetching: take its answer, good or bad, so that a failing endpoint is
    // asked once per refresh and not once per waiting request.
    const std::uint64_t seen = generation_;
    cv_.wait(lock, [&] { return generation_ != seen; });
    return *last_;
  }
  fetching_ = true;
  lock.unlock();
  std::chrono::steady_clock::time_point refresh_at{};
  result<std::string> got = error{};
  try {
    got = fetch(refresh_at);
  } catch (const std::exception& e) {
    got = error{error_code::internal, 0, std::string("google token source: ") + e.what(), {}, 0, {}};
  }
  lock.lock();
  fetching_ = false;
  ++generation_;
  if (got) {
    token_ = *got;
    refresh_at_ = refresh_at;
  }
  last_ = got;
  lock.unlock();
  cv_.notify_all();
  return got;
}

REQUESTS_ENGINE_INLINE result<std::string> google_token_source::fetch(std::chrono::steady_clock::time_point& refresh_at) {
  const auto sent = std::chrono::steady_clock::now();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  auto assertion = account_.jwt_assertion(static_cast<std::int64_t>(now), scope_);
  if (!assertion) return std::move(assertion.error());
  const std::vector<std::string> secrets = {account_.private_key, *assertion};
  const std::string where = "google token endpoint " + account_.token_uri + ": ";

  http_request req;
  req.url = account_.token_uri;
  req.content_type = "application/x-www-form-urlencoded";
  // A JWT holds only base64url characters and dots, which need no form encoding.
  req.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + *assertion;
  req.headers.emplace_back("Accept", "application/json");
  transport_options o;
  o.connect_timeout = o.read_timeout = o.write_timeout = timeout_;
  o.ca_cert_file = ca_cert_file_;
  o.ca_cert_dir = ca_cert_dir_;
  o.proxy = proxy_;
  o.max_response_bytes = 1u << 20;
  const std::atomic<bool> never_cancelled{false};
  // A fresh connection per fetch: tokens are fetched about once an hour.
  result<http_response> resp = httplib_transport(o).open_session()->send(req, never_cancelled);
  if (!resp) {
    error e = std::move(resp.error());
    e.message = detail::redact(where + e.message, secrets);
    return e;
  }
  const http_response& r = *resp;
  json body = detail::parse_json(r.body);
  if (r.status < 200 || r.status >= 300) {
    error e;
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      e = detail::google_error_from_response(r);
    } else {
      // OAuth's shape: {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
      e.http_status = r.status;
      e.provider_code = detail::json_string_field(body, "error");
      e.message = detail::json_string_field(body, "error_description");
      if (!e.provider_code.empty()) e.message += e.message.empty() ? e.provider_code : " (" + e.provider_code + ")";
      if (e.message.empty()) e.message = "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
      e.code = classify_status(r.status, e.provider_code);
      e.retry_after = detail::parse_retry_after(r.headers);
    }
    // The token endpoint answers 400 to a rejected key or assertion (invalid_grant,
    // unauthorized_client): no retry fixes that.
    if (r.status == 400 || r.status == 401) e.code = error_code::authentication;
    e.message = detail::redact(where + e.message, secrets);
    return e;
  }
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, detail::redact(where + why, secrets), {}, 0, {}};
  };
  const std::string access_token = detail::json_string_field(body, "access_token");
  if (access_token.empty()) return bad("the answer has no access_token");
  std::string type = detail::json_string_field(body, "token_type");
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (!type.empty() && type != "bearer") return bad("token_type is '" + type + "', expected Bearer");
  std::int64_t expires_in = 3600;
  if (body.contains("expires_in") && body["expires_in"].is_number()) {
    expires_in = body["expires_in"].is_number_float() ? static_cast<std::int64_t>(body["expires_in"].get<double>())
                                                      : body["expires_in"].get<std::int64_t>();
  }
  const std::chrono::seconds lifetime(std::max<std::int64_t>(0, expires_in));
  refresh_at = sent + lifetime - std::min(margin_, lifetime / 2);
  return access_token;
}

// --- Vertex AI and Gemini wire formats ---

namespace detail {

inline std::optional<error> check_same_model(const params& p, const std::string& model, std::string_view provider) {
  if (!p.model() || *p.model() == model) return std::nullopt;
  return unsupported(provider, "params::model '" + *p.model() + "' differs from the provider's model '" + model +
                                   "': the model is part of the URL, so construct one provider per model");
}

// Gemini wants a MIME type for inline data; audio formats come as "wav", "mp3", ...
inline std::string audio_mime_type(const std::string& format) {
  return format.find('/') != std::string::npos ? format : "audio/" + format;
}

// For a URL given without a media type: from its extension, or empty when unknown.
inline std::string image_mime_type_of(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  auto dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return {};
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "png" || ext == "webp" || ext == "gif" || ext == "heic" || ext == "heif") return "image/" + ext;
  return {};
}

REQUESTS_ENGINE_INLINE result<json> gemini_body(const conversation& c, const params& p, std::string_view provider) {
  json body = json::object();
  std::string system = c.system().value_or(std::string());
  json contents = json::array();
  for (std::size_t i = 0; i < c.messages().size(); ++i) {
    const message& m = c.messages()[i];
    if (m.author == role::system) {
      // One system instruction per request: system messages join it.
      system = system.empty() ? m.text() : system + "\n\n" + m.text();
      continue;
    }
    json parts = json::array();
    for (std::size_t k = 0; k < m.content.size(); ++k) {
      const content_part& part = m.content[k];
      const std::string where = "message " + std::to_string(i) + " part " + std::to_string(k) + ": ";
      switch (part.type) {
        case content_part::kind::text:
          parts.push_back({{"text", part.text}});
          break;
        case content_part::kind::image:
          if (!part.url.empty()) {
            json file = {{"fileUri", part.url}};
            std::string mime = part.media_type.empty() ? image_mime_type_of(part.url) : part.media_type;
            if (!mime.empty()) file["mimeType"] = mime;
            parts.push_back({{"fileData", std::move(file)}});
          } else {
            if (part.media_type.empty())
              return unsupported(provider, where + "an image given as bytes needs its media type (image/png, ...)");
            parts.push_back({{"inlineData", {{"mimeType", part.media_type}, {"data", base64_encode(part.data)}}}});
          }
          break;
        case content_part::kind::audio:
          if (part.data.empty()) return unsupported(provider, where + "audio is supported only as bytes");
          parts.push_back(
              {{"inlineData", {{"mimeType", audio_mime_type(part.media_type)}, {"data", base64_encode(part.data)}}}});
          break;
      }
    }
    contents.push_back({{"role", m.author == role::assistant ? "model" : "user"}, {"parts", std::move(parts)}});
  }
  if (contents.empty()) return error{error_code::invalid_request, 0, "the conversation has no messages", {}, 0, {}};
  body["contents"] = std::move(contents);
  if (!system.empty()) {
    json text_part = json::object();
    text_part["text"] = system;
    body["systemInstruction"]["parts"] = json::array({std::move(text_part)});
  }

  json gen = json::object();
  if (p.temperature()) gen["temperature"] = *p.temperature();
  if (p.top_p()) gen["topP"] = *p.top_p();
  if (p.max_tokens()) gen["maxOutputTokens"] = *p.max_tokens();
  if (!p.stop().empty()) gen["stopSequences"] = p.stop();
  if (p.seed()) gen["seed"] = *p.seed();
  if (p.n()) gen["candidateCount"] = *p.n();
  if (p.reasoning_effort())
    return unsupported(provider, "params::reasoning_effort is not supported (Gemini takes a thinking budget: "
                                 "set generationConfig.thinkingConfig through params::extra)");
  if (p.json_schema()) {
    gen["responseMimeType"] = "application/json";
    gen["responseJsonSchema"] = p.json_schema()->schema;
  } else if (p.json_mode()) {
    gen["responseMimeType"] = "application/json";
  }
  if (!gen.empty()) body["generationConfig"] = std::move(gen);

  if (!p.tools().empty()) {
    json declarations = json::array();
    for (const tool& t : p.tools()) {
      json d = {{"name", t.name}};
      if (!t.description.empty()) d["description"] = t.description;
      // JSON Schema as given (parameters would take only Google's OpenAPI subset).
      if (!t.parameters.is_null() && !(t.parameters.is_object() && t.parameters.empty()))
        d["parametersJsonSchema"] = t.parameters;
      declarations.push_back(std::move(d));
    }
    json holder = json::object();
    holder["functionDeclarations"] = std::move(declarations);
    body["tools"] = json::array({std::move(holder)});
  }
  if (const auto& tc = p.tool_choice()) {
    json config = json::object();
    if (*tc == "auto") {
      config["mode"] = "AUTO";
    } else if (*tc == "none") {
      config["mode"] = "NONE";
    } else if (*tc == "required") {
      config["mode"] = "ANY";
    } else {
      config["mode"] = "ANY";
      config["allowedFunctionNames"] = json::array({*tc});
    }
    body["toolConfig"]["functionCallingConfig"] = std::move(config);
  }
  return detail::with_extra(std::move(body), p);
}

REQUESTS_ENGINE_INLINE error google_error_from_response(const http_response& r) {
  json body = detail::parse_json(r.body);
  error e;
  if (body.is_array() && !body.empty() && body[0].is_object() && body[0].contains("error")) {
    json first = body[0];
    body = std::move(first);
    http_response inner = r;
    inner.body = body.dump();
    e = error_from_response(inner);
  } else {
    e = error_from_response(r);
  }
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const json& err = body["error"];
    std::string status = json_string_field(err, "status");
    if (!status.empty()) e.provider_code = status;
    if (err.contains("details") && err["details"].is_array()) {
      for (const json& d : err["details"]) {
        // Gemini answers a wrong key with 400 INVALID_ARGUMENT; the reason says what it is.
        if (json_string_field(d, "reason") == "API_KEY_INVALID") {
          e.code = error_code::authentication;
          e.provider_code = "API_KEY_INVALID";
        }
      }
    }
  }
  return e;
}

REQUESTS_ENGINE_INLINE result<completion> gemini_parse_response(const http_response& r) {
  if (r.status < 200 || r.status >= 300) return google_error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")",
                 {}, 0, {}};
  };
  json body = detail::parse_json(r.body);
  if (body.is_discarded()) return bad("the response is not JSON");
  if (!body.is_object()) return bad("the response is not a JSON object");
  const json no_candidates = json::array();
  const json& candidates = body.contains("candidates") && body["candidates"].is_array() ? body["candidates"] : no_candidates;
  if (candidates.empty()) {
    const json feedback = body.value("promptFeedback", json::object());
    const std::string reason = json_string_field(feedback, "blockReason");
    if (reason.empty()) return bad("the response has no candidates");
    std::string why = json_string_field(feedback, "blockReasonMessage");
    // A 200 that no retry changes: the prompt itself was refused.
    return error{error_code::bad_request, r.status,
                 "the prompt was blocked (" + reason + ")" + (why.empty() ? std::string() : ": " + why), reason, 0, {}};
  }
  completion c;
  for (const json& cand : candidates) {
    choice ch;
    if (cand.is_object() && cand.contains("content") && cand["content"].is_object() &&
        cand["content"].contains("parts") && cand["content"]["parts"].is_array()) {
      for (const json& part : cand["content"]["parts"]) {
        if (!part.is_object()) continue;
        if (part.contains("functionCall") && part["functionCall"].is_object()) {
          const json& fc = part["functionCall"];
          tool_call call;
          call.id = json_string_field(fc, "id");
          call.name = json_string_field(fc, "name");
          call.arguments = fc.contains("args") ? fc["args"].dump() : "{}";
          ch.tool_calls.push_back(std::move(call));
        } else if (part.contains("text") && part["text"].is_string() &&
                   !(part.contains("thought") && part["thought"].is_boolean() && part["thought"].get<bool>())) {
          ch.text += part["text"].get_ref<const std::string&>();  // thought summaries are not the answer
        }
      }
    }
    ch.finish_reason = json_string_field(cand, "finishReason");
    c.choices.push_back(std::move(ch));
  }
  if (body.contains("usageMetadata") && body["usageMetadata"].is_object()) {
    const json& u = body["usageMetadata"];
    // promptTokenCount includes the cached tokens; thinking tokens are billed as output.
    c.usage.input_tokens = json_int_field(u, "promptTokenCount") + json_int_field(u, "toolUsePromptTokenCount");
    c.usage.output_tokens = json_int_field(u, "candidatesTokenCount") + json_int_field(u, "thoughtsTokenCount");
    c.usage.cached_input_tokens = json_int_field(u, "cachedContentTokenCount");
    c.usage.reasoning_tokens = json_int_field(u, "thoughtsTokenCount");
  }
  c.model = json_string_field(body, "modelVersion");
  c.text = c.choices.front().text;
  c.finish_reason = c.choices.front().finish_reason;
  c.raw_body = r.body;
  return c;
}

REQUESTS_ENGINE_INLINE std::vector<std::string> gemini_split_candidates(const std::string& body) {
  json full = detail::parse_json(body);
  if (full.is_discarded() || !full.is_object() || !full.contains("candidates") || !full["candidates"].is_array())
    return {};
  json candidates = std::move(full["candidates"]);
  const auto count = static_cast<std::int64_t>(candidates.size());
  if (count == 0) return {};
  const json usage = full.value("usageMetadata", json::object());
  const bool has_usage = usage.is_object() && !usage.empty();
  // The prompt is counted once, on the first; generated tokens are shared out evenly.
  auto share = [&](const char* key, std::int64_t i) {
    const std::int64_t total = json_int_field(usage, key);
    return total / count + (i == 0 ? total % count : 0);
  };
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < count; ++i) {
    json one = full;
    json cand = candidates[static_cast<std::size_t>(i)];
    if (cand.is_object()) cand["index"] = 0;
    one["candidates"] = json::array({std::move(cand)});
    if (has_usage) {
      json u = usage;
      for (const char* key : {"promptTokenCount", "cachedContentTokenCount", "toolUsePromptTokenCount"})
        if (u.contains(key)) u[key] = i == 0 ? json_int_field(usage, key) : 0;
      for (const char* key : {"candidatesTokenCount", "thoughtsTokenCount"})
        if (u.contains(key)) u[key] = share(key, i);
      if (u.contains("totalTokenCount"))
        u["totalTokenCount"] = json_int_field(u, "promptTokenCount") + json_int_field(u, "toolUsePromptTokenCount") +
                               json_int_field(u, "candidatesTokenCount") + json_int_field(u, "thoughtsTokenCount");
      one["usageMetadata"] = std::move(u);
    }
    out.push_back(one.dump());
  }
  return out;
}

REQUESTS_ENGINE_INLINE void check_path_segment(const std::string& value, std::string_view what,
                                               std::string_view provider) {
  if (value.empty())
    throw std::invalid_argument("requests_engine: " + std::string(provider) + ": no " + std::string(what));
  for (char ch : value) {
    const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_' ||
                    ch == '~' || ch == '@' || ch == ':';
    if (!ok)
      throw std::invalid_argument("requests_engine: " + std::string(provider) + ": the " + std::string(what) + " '" +
                                  value + "' has a character that cannot stand in a URL path ('" +
                                  std::string(1, ch) + "')");
  }
}

REQUESTS_ENGINE_INLINE vertex_location locate_vertex(std::shared_ptr<google_token_source> tokens, std::string region,
                                                     std::string project, std::string base_url,
                                                     std::string_view provider) {
  if (!tokens) throw std::invalid_argument("requests_engine: " + std::string(provider) + ": null token source");
  if (project.empty()) project = tokens->account().project_id;
  check_path_segment(project, "project (pass one, or use a key file with project_id)", provider);
  check_path_segment(region, "region (e.g. \"us-central1\", or \"global\")", provider);
  if (base_url.empty())
    base_url = region == "global" ? "https://aiplatform.googleapis.com" : "https://" + region + "-aiplatform.googleapis.com";
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  (void)parse_url(base_url);  // throws std::invalid_argument on a malformed URL
  return vertex_location{std::move(tokens), std::move(base_url), std::move(project), std::move(region)};
}

REQUESTS_ENGINE_INLINE std::string vertex_location::prefix(std::string_view version) const {
  return base_url + "/" + std::string(version) + "/projects/" + project + "/locations/" + region;
}

REQUESTS_ENGINE_INLINE result<http_request> vertex_location::request(const std::string& url,
                                                                      const std::string& body,
                                                                      const extra_headers& extra) const {
  result<std::string> t = tokens->token();
  if (!t) return std::move(t.error());
  http_request r;
  r.url = url;
  r.body = body;
  r.headers.emplace_back("Authorization", "Bearer " + *t);
  r.headers.emplace_back("Accept", "application/json");
  extra.apply_to(r.headers);
  return r;
}

}  // namespace detail

// --- vertex_openai ---

REQUESTS_ENGINE_INLINE vertex_openai::vertex_openai(std::shared_ptr<google_token_source> tokens, std::string region,
                                                    std::string model, std::string project, std::string base_url)
    : where_(detail::locate_vertex(std::move(tokens), std::move(region), std::move(project), std::move(base_url),
                                   "vertex_openai")),
      chat_("", where_.prefix("v1beta1") + "/endpoints/openapi/chat/completions", std::move(model)) {}

REQUESTS_ENGINE_INLINE result<http_request> vertex_openai::make_request(const std::string& body) const {
  return where_.request(chat_.endpoint(), body, headers_);
}

REQUESTS_ENGINE_INLINE result<completion> vertex_openai::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::google_error_from_response(r);
  return chat_.parse_response(r);
}

REQUESTS_ENGINE_INLINE json vertex_openai::cache_identity() const {
  return identity_with({{"kind", "vertex_openai"}, {"endpoint", chat_.endpoint()}, {"model", chat_.model()}});
}

// --- vertex_gemini ---

REQUESTS_ENGINE_INLINE vertex_gemini::vertex_gemini(std::shared_ptr<google_token_source> tokens, std::string region,
                                                    std::string model, std::string project, std::string base_url)
    : where_(detail::locate_vertex(std::move(tokens), std::move(region), std::move(project), std::move(base_url),
                                   "vertex_gemini")),
      model_(std::move(model)) {
  detail::check_path_segment(model_, "model", "vertex_gemini");
  endpoint_ = where_.prefix("v1") + "/publishers/google/models/" + model_ + ":generateContent";
}

REQUESTS_ENGINE_INLINE result<json> vertex_gemini::make_body(const conversation& c, const params& p) const {
  if (auto e = detail::check_same_model(p, model_, "vertex_gemini")) return std::move(*e);
  return detail::gemini_body(c, p, "vertex_gemini");
}

REQUESTS_ENGINE_INLINE json vertex_gemini::cache_identity() const {
  return identity_with({{"kind", "vertex_gemini"}, {"endpoint", endpoint_}, {"model", model_}});
}

// --- vertex_anthropic ---

REQUESTS_ENGINE_INLINE vertex_anthropic::vertex_anthropic(std::shared_ptr<google_token_source> tokens,
                                                          std::string region, std::string model, std::string project,
                                                          std::string base_url)
    : where_(detail::locate_vertex(std::move(tokens), std::move(region), std::move(project), std::move(base_url),
                                   "vertex_anthropic")),
      model_(std::move(model)) {
  detail::check_path_segment(model_, "model", "vertex_anthropic");
  endpoint_ = where_.prefix("v1") + "/publishers/anthropic/models/" + model_ + ":rawPredict";
  stream_endpoint_ = where_.prefix("v1") + "/publishers/anthropic/models/" + model_ + ":streamRawPredict";
}

REQUESTS_ENGINE_INLINE result<json> vertex_anthropic::make_body(const conversation& c, const params& p) const {
  if (auto e = detail::check_same_model(p, model_, "vertex_anthropic")) return std::move(*e);
  auto body = detail::anthropic_messages_body(c, p, default_max_tokens_, "vertex_anthropic");
  if (!body) return body;
  if (!body->contains("anthropic_version")) (*body)["anthropic_version"] = "vertex-2023-10-16";
  return body;
}

REQUESTS_ENGINE_INLINE result<completion> vertex_anthropic::parse_response(const http_response& r) const {
  // Vertex AI's own failures (auth, quota) come in Google's shape, the model's in Anthropic's.
  if (r.status < 200 || r.status >= 300) return detail::google_error_from_response(r);
  return detail::anthropic_parse_response(r);
}

REQUESTS_ENGINE_INLINE json vertex_anthropic::cache_identity() const {
  return identity_with({{"kind", "vertex_anthropic"}, {"endpoint", endpoint_}, {"model", model_}});
}

// --- gemini ---

REQUESTS_ENGINE_INLINE gemini::gemini(const char* api_key, std::string model, std::string base_url)
    : api_key_(api_key ? api_key : ""), model_(std::move(model)) {
  if (model_.compare(0, 7, "models/") == 0) model_.erase(0, 7);  // the API's resource name, as SDKs accept it
  detail::check_path_segment(model_, "model", "gemini");
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  endpoint_ = base_url + "/v1beta/models/" + model_ + ":generateContent";
  (void)parse_url(endpoint_);  // throws std::invalid_argument on a malformed URL
}

REQUESTS_ENGINE_INLINE gemini gemini::from_environment(std::string model, std::string base_url) {
  const char* key = std::getenv("GEMINI_API_KEY");
  if (!key || !*key) key = std::getenv("GOOGLE_API_KEY");
  if (!key || !*key) throw std::invalid_argument("requests_engine: gemini: neither GEMINI_API_KEY nor GOOGLE_API_KEY is set");
  return gemini(key, std::move(model), std::move(base_url));
}

REQUESTS_ENGINE_INLINE result<json> gemini::make_body(const conversation& c, const params& p) const {
  if (auto e = detail::check_same_model(p, model_, "gemini")) return std::move(*e);
  return detail::gemini_body(c, p, "gemini");
}

REQUESTS_ENGINE_INLINE http_request gemini::make_request(const std::string& body) const {
  http_request r;
  r.url = endpoint_;
  r.body = body;
  if (!api_key_.empty()) r.headers.emplace_back("x-goog-api-key", api_key_);
  r.headers.emplace_back("Accept", "application/json");
  headers_.apply_to(r.headers);
  return r;
}

REQUESTS_ENGINE_INLINE json gemini::cache_identity() const {
  return identity_with({{"kind", "gemini"}, {"endpoint", endpoint_}, {"model", model_}});
}

REQUESTS_ENGINE_NAMESPACE_END
