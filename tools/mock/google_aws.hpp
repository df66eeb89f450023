// requests_engine mock: the Google and AWS routes, the Gemini API, Vertex AI with its OAuth
// token endpoint, and Bedrock InvokeModel (and its streamed form), each answering in its
// provider's own shapes.
#pragma once

#include "anthropic.hpp"
#include "common.hpp"
#include "core.hpp"
#include "openai.hpp"
#include "streaming.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace requests_engine_mock {
namespace detail {

// ---- Gemini API, Vertex AI (with its token endpoint) and Bedrock ----
//
//   POST /v1beta/models/{model}:generateContent     Gemini API: x-goog-api-key (or ?key=) required
//        (403 PERMISSION_DENIED without one; with --api-key-env it must match, else 400
//        API_KEY_INVALID); the answer in Gemini's shape with usageMetadata, modelVersion = model.
//   POST /v1beta/models/{model}:streamGenerateContent  the same, streamed: ?alt=sse gives SSE
//        events, without it one JSON array of the chunks.
//   POST /v1beta/models/{model}:batchEmbedContents  Gemini embeddings, the same key check: at
//        most 100 requests, each {"model":"models/{model}","content":{"parts":[{"text"}]},
//        ["outputDimensionality"]} (400 INVALID_ARGUMENT otherwise); {"embeddings":[{"values"}]}
//        in request order, values = mock_embedding(text, dims) (dims default 16).
//   POST /v1beta/models/{model}:embedContent        one such request: {"embedding":{"values"}}.
//   POST /token                                     OAuth JWT-bearer grant (form body): the
//        assertion's claims are checked (iss, aud ending in /token, scope), not its signature;
//        answers {access_token, expires_in, token_type}; 400 invalid_grant otherwise.
//   POST /v1beta1/projects/{p}/locations/{l}/endpoints/openapi/chat/completions      Vertex AI,
//   POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent  each with
//   POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict    a token
//        from /token as "Authorization: Bearer" (else 401 UNAUTHENTICATED in Google's shape);
//        also :streamGenerateContent and :streamRawPredict, streamed; the OpenAI route and
//        rawPredict stream when the body says "stream": true.
//   POST /model/{modelId}/invoke                    Bedrock InvokeModel: "Authorization:
//        AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/bedrock/aws4_request, SignedHeaders=...,
//        Signature=<64 hex>" and X-Amz-Date required (the signature itself is not checked), else
//        403 {"message"} with x-amzn-ErrorType; the body must carry anthropic_version and no
//        model (400 ValidationException); the answer is a Messages response, model = modelId.
//   POST /model/{modelId}/invoke-with-response-stream  the same checks; the answer streamed in
//        AWS's event stream (see streaming.hpp).
// They count as model requests (requests(), requests_for_path()) and honour on_chat, the
// latency and the stream faults, but not the rate limits or injected request faults.
//
// Owned by the server; holds the access tokens /token has issued.
inline void set_google_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  const nlohmann::json err = {{"error", {{"code", status}, {"message", message}, {"status", code}}}};
  detail::set_json(res, status, err.dump());
}

// The Gemini API's key: x-goog-api-key (or ?key=), the server's key if it has one.
inline bool gemini_key_ok(const server_core& core, const httplib::Request& req, httplib::Response& res) {
  std::optional<std::string> key;
  if (req.has_header("x-goog-api-key")) key = req.get_header_value("x-goog-api-key");
  else if (req.has_param("key")) key = req.get_param_value("key");
  if (!key || key->empty()) {
    set_google_error(res, 403, "PERMISSION_DENIED",
                     "Method doesn't allow unregistered callers (callers without established identity). "
                     "Please use API Key or other form of API consumer identity to call this API.");
    return false;
  }
  if (!core.options().api_key.empty() && !detail::constant_time_equal(*key, core.options().api_key)) {
    nlohmann::json err = {{"error",
                           {{"code", 400},
                            {"message", "API key not valid. Please pass a valid API key."},
                            {"status", "INVALID_ARGUMENT"},
                            {"details", {{{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
                                          {"reason", "API_KEY_INVALID"},
                                          {"domain", "googleapis.com"}}}}}}};
    detail::set_json(res, 400, err.dump());
    return false;
  }
  return true;
}

// A generateContent answer to `body` (the mock's text and token rules), or "" with the
// INVALID_ARGUMENT message in `error`; `last_user_out` gets the last user text. Also used for
// the lines of a Gemini batch (tools/mock/batch.hpp).
inline std::string gemini_answer_body(const nlohmann::json& body, const std::string& model, std::string& error,
                                      std::string& last_user_out) {
  const auto contents = body.find("contents");
  if (contents == body.end() || !contents->is_array() || contents->empty()) {
    error = "* GenerateContentRequest.contents: contents is not specified";
    return {};
  }
  auto parts_text = [](const nlohmann::json& c) {
    std::string text;
    const auto parts = c.is_object() ? c.find("parts") : c.end();
    if (!c.is_object() || parts == c.end() || !parts->is_array()) return text;
    for (const auto& p : *parts)
      if (p.is_object() && p.contains("text") && p["text"].is_string())
        text += (text.empty() ? "" : "\n") + p["text"].get<std::string>();
    return text;
  };
  std::size_t prompt_bytes = 0;
  std::string last_user;
  for (const auto& c : *contents) {
    if (!c.is_object() || !c.contains("parts") || !c["parts"].is_array()) {
      error = "* GenerateContentRequest.contents: parts is required";
      return {};
    }
    const std::string text = parts_text(c);
    prompt_bytes += text.size();
    if (c.value("role", std::string("user")) == "user") last_user = text;
  }
  if (body.contains("systemInstruction")) prompt_bytes += parts_text(body["systemInstruction"]).size();
  const nlohmann::json gen = body.value("generationConfig", nlohmann::json::object());
  std::int64_t max_tokens = 8192, count = 1;
  if (gen.is_object() && gen.contains("maxOutputTokens") && gen["maxOutputTokens"].is_number_integer())
    max_tokens = gen["maxOutputTokens"].get<std::int64_t>();
  if (gen.is_object() && gen.contains("candidateCount") && gen["candidateCount"].is_number_integer())
    count = std::max<std::int64_t>(1, gen["candidateCount"].get<std::int64_t>());
  nlohmann::json candidates = nlohmann::json::array();
  std::size_t out_tokens = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    std::string text = "Mock answer to: " + last_user + (i > 0 ? " (sample " + std::to_string(i) + ")" : "");
    std::string finish = "STOP";
    if (max_tokens > 0 && static_cast<std::size_t>(max_tokens) < detail::estimate_tokens(text.size())) {
      text = detail::utf8_prefix(text, static_cast<std::size_t>(max_tokens) * 4U);
      finish = "MAX_TOKENS";
    }
    out_tokens += detail::estimate_tokens(text.size());
    candidates.push_back(
        {{"content", {{"parts", {{{"text", text}}}}, {"role", "model"}}}, {"finishReason", finish}, {"index", i}});
  }
  const std::size_t in_tokens = detail::estimate_tokens(prompt_bytes);
  last_user_out = last_user;
  return nlohmann::json{{"candidates", std::move(candidates)},
                        {"usageMetadata",
                         {{"promptTokenCount", in_tokens},
                          {"candidatesTokenCount", out_tokens},
                          {"totalTokenCount", in_tokens + out_tokens}}},
                        {"modelVersion", model},
                        {"responseId", detail::random_hex(16)}}
      .dump();
}

class google_aws_routes {
 public:
  explicit google_aws_routes(server_core& core) : core_(core) {}

  void add_google_aws_routes(httplib::Server& svr) {
    svr.Post(R"(/v1beta/models/([^/:]+):generateContent)", [this](const httplib::Request& req, httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
        if (!gemini_key_ok(req, res)) return;
        answer_generate_content(body, req.matches[1].str(), res, scope, gemini_answer::whole);
      });
    });
    svr.Post(R"(/v1beta/models/([^/:]+):streamGenerateContent)", [this](const httplib::Request& req,
                                                                         httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
        if (!gemini_key_ok(req, res)) return;
        answer_generate_content(body, req.matches[1].str(), res, scope, stream_mode(req));
      });
    });
    svr.Post(R"(/v1beta/models/([^/:]+):batchEmbedContents)", [this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body) {
        if (!gemini_key_ok(req, res)) return;
        const auto requests = body.find("requests");
        if (requests == body.end() || !requests->is_array() || requests->empty()) {
          set_google_error(res, 400, "INVALID_ARGUMENT", "* BatchEmbedContentsRequest.requests: requests is not specified");
          return;
        }
        if (requests->size() > 100) {
          set_google_error(res, 400, "INVALID_ARGUMENT",
                           "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch");
          return;
        }
        nlohmann::json embeddings = nlohmann::json::array();
        for (const auto& r : *requests) {
          std::string text, error;
          std::size_t dims = 0;
          if (!detail::parse_gemini_embed_request(r, req.matches[1].str(), true, text, dims, error)) {
            set_google_error(res, 400, "INVALID_ARGUMENT", error);
            return;
          }
          embeddings.push_back(detail::gemini_values(text, dims));
        }
        core_.simulate_latency();
        detail::set_json(res, 200, nlohmann::json{{"embeddings", std::move(embeddings)}}.dump());
      });
    });
    svr.Post(R"(/v1beta/models/([^/:]+):embedContent)", [this](const httplib::Request& req, httplib::Response& res) {
      serve_google_aws(req, res, [&](const nlohmann::json& body) {
        if (!gemini_key_ok(req, res)) return;
        std::string text, error;
        std::size_t dims = 0;
        if (!detail::parse_gemini_embed_request(body, req.matches[1].str(), false, text, dims, error)) {
          set_google_error(res, 400, "INVALID_ARGUMENT", error);
          return;
        }
        core_.simulate_latency();
        detail::set_json(res, 200, nlohmann::json{{"embedding", detail::gemini_values(text, dims)}}.dump());
      });
    });
    svr.Post("/token", [this](const httplib::Request& req, httplib::Response& res) { issue_token(req, res); });
    svr.Post(R"(/v1beta1/projects/([^/]+)/locations/([^/]+)/endpoints/openapi/chat/completions)",
             [this](const httplib::Request& req, httplib::Response& res) {
               serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
                 if (!vertex_token_ok(req, res)) return;
                 detail::chat_request chat;
                 std::string error;
                 nlohmann::json param;
                 if (!detail::parse_chat_request(body, chat, error, param)) {
                   set_google_error(res, 400, "INVALID_ARGUMENT", error);
                   return;
                 }
                 core_.simulate_latency();
                 const std::string answer = detail::chat_completion_body(chat);
                 if (chat.stream.stream)
                   return core_.send_stream(res,
                                            detail::openai_chat_stream(answer, chat.stream.include_usage,
                                                                       core_.options().stream_chunk_bytes),
                                            scope);
                 detail::set_json(res, 200, answer);
               });
             });
    for (const char* method : {"generateContent", "streamGenerateContent"}) {
      const bool streamed = method[0] == 's';
      svr.Post(std::string(R"(/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):)") + method,
               [this, streamed](const httplib::Request& req, httplib::Response& res) {
                 serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
                   if (!vertex_token_ok(req, res)) return;
                   answer_generate_content(body, req.matches[3].str(), res, scope,
                                           streamed ? stream_mode(req) : gemini_answer::whole);
                 });
               });
    }
    // rawPredict streams when the body asks ("stream": true); streamRawPredict always does.
    for (const char* method : {"rawPredict", "streamRawPredict"}) {
      const bool streamed = method[0] == 's';
      svr.Post(std::string(R"(/v1/projects/([^/]+)/locations/([^/]+)/publishers/anthropic/models/([^/:]+):)") + method,
               [this, streamed](const httplib::Request& req, httplib::Response& res) {
                 serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
                   if (!vertex_token_ok(req, res)) return;
                   const bool sse = streamed || detail::stream_flags(body).stream;
                   answer_messages_in_url(body, req.matches[3].str(), "vertex-2023-10-16", res, scope,
                                          sse ? messages_answer::sse : messages_answer::whole,
                                          [&](const std::string& message) {
                                            detail::set_anthropic_error(res, 400, "invalid_request_error", message);
                                          });
                 });
               });
    }
    // InvokeModel and InvokeModelWithResponseStream; a "stream" field in the body changes neither.
    for (const char* action : {"invoke", "invoke-with-response-stream"}) {
      const bool streamed = action[6] == '-';
      svr.Post(std::string(R"(/model/(.+)/)") + action, [this, streamed](const httplib::Request& req,
                                                                        httplib::Response& res) {
        serve_google_aws(req, res, [&](const nlohmann::json& body, auto& scope) {
          if (!sigv4_shape_ok(req, res)) return;
          if (body.is_object() && body.contains("model")) {
            set_bedrock_error(res, 400, "ValidationException",
                              "Malformed input request: #: extraneous key [model] is not permitted, please reformat "
                              "your input and try again.");
            return;
          }
          answer_messages_in_url(body, req.matches[1].str(), "bedrock-2023-05-31", res, scope,
                                 streamed ? messages_answer::bedrock_stream : messages_answer::whole,
                                 [&](const std::string& message) {
                                   set_bedrock_error(res, 400, "ValidationException", message);
                                 });
        });
      });
    }
  }

  /// Access tokens /token has handed out.
  std::size_t tokens_issued() const {
    std::lock_guard<std::mutex> lk(tokens_mutex_);
    return tokens_issued_;
  }

 private:
  enum class gemini_answer { whole, sse, json_array };
  enum class messages_answer { whole, sse, bedrock_stream };

  // streamGenerateContent: SSE with ?alt=sse, else the chunks as one JSON array.
  static gemini_answer stream_mode(const httplib::Request& req) {
    return req.get_param_value("alt") == "sse" ? gemini_answer::sse : gemini_answer::json_array;
  }

  // serve_model_route; then a body that is not a JSON object gets Google's or Bedrock's 400.
  template <class Handle>
  void serve_google_aws(const httplib::Request& req, httplib::Response& res, Handle&& handle) {
    core_.serve_model_route(req, res, [&](const nlohmann::json& body, auto& scope) {
      if (body.is_discarded() || !body.is_object()) {
        if (req.path.rfind("/model/", 0) == 0)
          set_bedrock_error(res, 400, "ValidationException", "Malformed input request: the body is not a JSON object");
        else
          set_google_error(res, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
        return;
      }
      if constexpr (std::is_invocable_v<Handle&, const nlohmann::json&, decltype(scope)>)
        handle(body, scope);
      else
        handle(body);
    });
  }

  // The Gemini API's key: x-goog-api-key (or ?key=); 403 without one, 400 API_KEY_INVALID for
  // a wrong one (when the server has a key). False when it has answered.
  bool gemini_key_ok(const httplib::Request& req, httplib::Response& res) const {
    return detail::gemini_key_ok(core_, req, res);
  }

  static void set_google_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
    detail::set_google_error(res, status, code, message);
  }

  static void set_bedrock_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
    res.set_header("x-amzn-ErrorType", type + ":http://internal.amazon.com/coral/com.amazon.coral.service/");
    res.set_header("x-amzn-RequestId", detail::random_hex(16));
    detail::set_json(res, status, nlohmann::json{{"message", message}}.dump());
  }

  // "Credential=KEY/YYYYMMDD/REGION/bedrock/aws4_request, SignedHeaders=a;b, Signature=<64 hex>".
  static bool sigv4_shape_ok(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Authorization")) {
      set_bedrock_error(res, 403, "MissingAuthenticationTokenException", "Missing Authentication Token");
      return false;
    }
    const std::string auth = req.get_header_value("Authorization");
    if (!req.has_header("X-Amz-Date") || !sigv4_authorization_shape(auth)) {
      set_bedrock_error(res, 403, "UnrecognizedClientException", "The security token included in the request is invalid.");
      return false;
    }
    return true;
  }

  static bool sigv4_authorization_shape(const std::string& auth) {
    static const std::string algorithm = "AWS4-HMAC-SHA256 Credential=";
    if (auth.rfind(algorithm, 0) != 0) return false;
    const auto comma1 = auth.find(',', algorithm.size());
    if (comma1 == std::string::npos) return false;
    // KEY/YYYYMMDD/REGION/bedrock/aws4_request
    std::vector<std::string> scope;
    std::size_t from = algorithm.size();
    for (std::size_t slash; (slash = auth.find('/', from)) < comma1; from = slash + 1) scope.push_back(auth.substr(from, slash - from));
    scope.push_back(auth.substr(from, comma1 - from));
    if (scope.size() != 5 || scope[0].empty() || scope[1].size() != 8 || scope[2].empty() || scope[3] != "bedrock" ||
        scope[4] != "aws4_request")
      return false;
    for (char ch : scope[1])
      if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
    const auto signed_at = auth.find("SignedHeaders=", comma1);
    const auto sig_at = auth.find("Signature=", comma1);
    if (signed_at == std::string::npos || sig_at == std::string::npos || sig_at < signed_at) return false;
    const std::string signature = auth.substr(sig_at + 10);
    if (signature.size() != 64) return false;
    for (char ch : signature)
      if (!std::isxdigit(static_cast<unsigned char>(ch)) || std::isupper(static_cast<unsigned char>(ch))) return false;
    return true;
  }

  bool vertex_token_ok(const httplib::Request& req, httplib::Response& res) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string scheme = "Bearer ";
    bool ok = false;
    if (auth.rfind(scheme, 0) == 0) {
      std::lock_guard<std::mutex> lk(tokens_mutex_);
      ok = issued_tokens_.count(auth.substr(scheme.size())) > 0;
    }
    if (!ok)
      set_google_error(res, 401, "UNAUTHENTICATED",
                       "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                       "or other valid authentication credential.");
    return ok;
  }

  static bool base64url_decode(std::string in, std::string& out) {
    for (char& ch : in) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    while (in.size() % 4 != 0) in.push_back('=');
    std::string buf(in.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&buf[0]),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0) return false;
    std::size_t len = static_cast<std::size_t>(n);
    for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) --len;  // DecodeBlock counts padding as zeros
    out = buf.substr(0, len);
    return true;
  }

  void issue_token(const httplib::Request& req, httplib::Response& res) {
    core_.count_path(req.path);
    auto refuse = [&](const std::string& why) {
      detail::set_json(res, 400, nlohmann::json{{"error", "invalid_grant"}, {"error_description", why}}.dump());
    };
    if (req.get_param_value("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer")
      return refuse("grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer");
    const std::string assertion = req.get_param_value("assertion");
    const auto dot1 = assertion.find('.');
    const auto dot2 = dot1 == std::string::npos ? dot1 : assertion.find('.', dot1 + 1);
    std::string header_text, claims_text;
    if (dot2 == std::string::npos || assertion.find('.', dot2 + 1) != std::string::npos || dot2 + 1 >= assertion.size() ||
        !base64url_decode(assertion.substr(0, dot1), header_text) ||
        !base64url_decode(assertion.substr(dot1 + 1, dot2 - dot1 - 1), claims_text))
      return refuse("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe");
    const nlohmann::json header = nlohmann::json::parse(header_text, nullptr, false);
    const nlohmann::json claims = nlohmann::json::parse(claims_text, nullptr, false);
    if (!header.is_object() || header.value("alg", std::string()) != "RS256")
      return refuse("Invalid JWT: the header must name alg RS256");
    if (!claims.is_object() || claims.value("iss", std::string()).empty() || !claims.contains("scope"))
      return refuse("Invalid JWT: iss and scope are required");
    const std::string aud = claims.value("aud", std::string());
    if (aud.size() < 6 || aud.compare(aud.size() - 6, 6, "/token") != 0)
      return refuse("Invalid JWT: the audience must be this token endpoint");
    const std::string token = "mock-access-token-" + detail::random_hex(24);
    {
      std::lock_guard<std::mutex> lk(tokens_mutex_);
      issued_tokens_.emplace(token, tokens_issued_);
      ++tokens_issued_;
    }
    detail::set_json(res, 200,
                     nlohmann::json{{"access_token", token}, {"expires_in", 3599}, {"token_type", "Bearer"}}.dump());
  }

  // A generateContent answer: the same text and token rules as the other routes; streamed
  // (streamGenerateContent) as chunks of that answer.
  template <class Scope>
  void answer_generate_content(const nlohmann::json& body, const std::string& model, httplib::Response& res,
                               Scope& scope, gemini_answer how) {
    std::string error, last_user;
    const std::string answer = detail::gemini_answer_body(body, model, error, last_user);
    if (answer.empty()) return set_google_error(res, 400, "INVALID_ARGUMENT", error);
    core_.simulate_latency();
    if (how != gemini_answer::whole)
      return core_.send_stream(
          res, detail::gemini_stream(answer, core_.options().stream_chunk_bytes, how == gemini_answer::sse), scope);
    detail::set_json(res, 200, answer);
  }

  // Bedrock and Vertex's rawPredict: a Messages body whose model is in the URL and whose
  // anthropic_version is in the body.
  template <class Scope, class Refuse>
  void answer_messages_in_url(const nlohmann::json& body, const std::string& model, const std::string& version,
                              httplib::Response& res, Scope& scope, messages_answer how, Refuse&& refuse) {
    if (body.value("anthropic_version", std::string()) != version)
      return refuse("anthropic_version: must be \"" + version + "\"");
    nlohmann::json with_model = body;
    with_model["model"] = model;
    detail::messages_request msg;
    std::string error;
    if (!detail::parse_messages_request(with_model, msg, error)) return refuse(error);
    core_.simulate_latency();
    core_.apply_prompt_cache(msg);
    const std::string answer = detail::messages_body(msg);
    const std::size_t piece = core_.options().stream_chunk_bytes;
    if (how == messages_answer::sse) return core_.send_stream(res, detail::anthropic_stream(answer, piece), scope);
    if (how == messages_answer::bedrock_stream) return core_.send_stream(res, detail::bedrock_stream(answer, piece), scope);
    detail::set_json(res, 200, answer);
  }

  server_core& core_;
  mutable std::mutex tokens_mutex_;
  std::unordered_map<std::string, std::size_t> issued_tokens_;  // token -> its number
  std::size_t tokens_issued_ = 0;
};

}  // namespace detail
}  // namespace requests_engine_mock
