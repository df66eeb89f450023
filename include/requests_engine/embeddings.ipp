// embeddings.ipp: the definitions of embeddings.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "embeddings.hpp"
#include "openai.ipp"  // detail::share_out, detail::env_or

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

// The one text of an embedding input: a conversation of one user message of text, not empty.
inline result<std::string> embedding_text(const conversation& c, std::string_view provider) {
  if (c.system() || c.messages().size() != 1 || c.messages()[0].author != role::user)
    return unsupported(provider, "an embedding input is one user message of text (no system prompt, no other "
                                 "messages)");
  std::string text;
  for (const auto& part : c.messages()[0].content) {
    if (part.type != content_part::kind::text)
      return unsupported(provider, "an embedding input is text (no images or audio)");
    text += part.text;
  }
  if (text.empty()) return unsupported(provider, "an embedding input must not be empty (the API refuses it)");
  return text;
}

// Sampling and output settings mean nothing to an embedding model: say so rather than drop them.
inline std::optional<error> embedding_params_unsupported(const params& p, std::string_view provider) {
  if (p.temperature() || p.max_tokens() || p.top_p() || !p.stop().empty() || p.seed() || p.n().value_or(1) != 1 ||
      p.json_mode() || p.json_schema() || !p.tools().empty() || p.tool_choice())
    return unsupported(provider, "embeddings take no sampling, output or tool params (only params::model" +
                                     std::string(provider == "openai_embeddings" ? " and params::extra)" : ")"));
  return std::nullopt;
}

// Tokens an input may count for the per-request token limit, without a tokenizer: one per 3
// bytes (English text runs about 4 bytes a token; CJK text about 3 bytes a character, one or
// more tokens each) and one more for the input itself, so that a request stays under the limit.
inline std::int64_t embedding_token_bound(std::size_t bytes) { return static_cast<std::int64_t>(bytes / 3 + 1); }

// Sends `members` with `attempt`, which answers each of them, or returns false (answering none)
// when the server refused the request as a whole with 400. A refused request of several inputs
// is split in two and each half sent again, so that one bad input (too long, say) fails alone.
template <class Attempt>
void send_halving(const std::vector<std::size_t>& members, const Attempt& attempt) {
  if (attempt(members, members.size() > 1) || members.size() < 2) return;
  const auto mid = members.begin() + static_cast<std::ptrdiff_t>(members.size() / 2);
  send_halving(std::vector<std::size_t>(members.begin(), mid), attempt);
  send_halving(std::vector<std::size_t>(mid, members.end()), attempt);
}

inline result<std::vector<float>> decode_embedding(const json& e) {
  std::vector<float> v;
  if (e.is_array()) {
    v.reserve(e.size());
    for (const auto& x : e) {
      if (!x.is_number()) return error{error_code::invalid_response, 0, "an embedding value is not a number", {}, 0, {}};
      v.push_back(x.get<float>());
    }
    return v;
  }
  if (!e.is_string()) return error{error_code::invalid_response, 0, "the embedding is neither an array nor base64", {}, 0, {}};
  // base64 of little-endian float32.
  std::string bytes;
  if (!base64_decode(e.get_ref<const std::string&>(), bytes))
    return error{error_code::invalid_response, 0, "the base64 embedding has a bad character", {}, 0, {}};
  if (bytes.size() % 4 != 0)
    return error{error_code::invalid_response, 0, "the base64 embedding is not a whole number of float32 values", {}, 0, {}};
  v.resize(bytes.size() / 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u = 0;
    for (std::size_t k = 0; k < 4; ++k)
      u |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i * 4 + k])) << (8 * k);
    float f;
    std::memcpy(&f, &u, sizeof f);
    v[i] = f;
  }
  return v;
}

}  // namespace detail

// --- openai_embeddings -----------------------------------------------------------------------

REQUESTS_ENGINE_INLINE openai_embeddings::openai_embeddings(const char* api_key, std::string url, std::string model)
    : openai_connection(api_key, std::move(url), "/embeddings", std::move(model)) {}

REQUESTS_ENGINE_INLINE openai_embeddings openai_embeddings::openai(std::string model) {
  return openai_embeddings(detail::required_env("OPENAI_API_KEY", "openai", "openai_embeddings"),
                           detail::env_or("OPENAI_BASE_URL", "https://api.openai.com/v1"), std::move(model));
}

REQUESTS_ENGINE_INLINE openai_embeddings openai_embeddings::azure(std::string deployment,
                                                                 const azure_openai_settings& where) {
  return openai_embeddings(detail::openai_connection::azure(where, "embeddings", std::move(deployment)));
}

REQUESTS_ENGINE_INLINE openai_embeddings& openai_embeddings::dimensions(std::int64_t n) {
  if (n < 1) throw std::invalid_argument("requests_engine: openai_embeddings::dimensions must be at least 1");
  dimensions_ = n;
  return *this;
}

REQUESTS_ENGINE_INLINE openai_embeddings& openai_embeddings::max_inputs(std::size_t n) {
  if (n < 1 || n > 2048)
    throw std::invalid_argument("requests_engine: openai_embeddings::max_inputs must be 1 to 2048");
  max_inputs_ = n;
  return *this;
}

REQUESTS_ENGINE_INLINE openai_embeddings& openai_embeddings::max_request_tokens(std::int64_t n) {
  if (n < 1) throw std::invalid_argument("requests_engine: openai_embeddings::max_request_tokens must be at least 1");
  max_request_tokens_ = n;
  return *this;
}

REQUESTS_ENGINE_INLINE result<json> openai_embeddings::make_body(const conversation& c, const params& p) const {
  result<std::string> text = detail::embedding_text(c, "openai_embeddings");
  if (!text) return std::move(text.error());
  if (auto e = detail::embedding_params_unsupported(p, "openai_embeddings")) return std::move(*e);
  json body = {{"model", p.model() ? *p.model() : model_},
               {"input", std::move(*text)},
               {"encoding_format", encoding_ == embedding_encoding::base64 ? "base64" : "float"}};
  if (body["model"].get_ref<const std::string&>().empty())
    return error{error_code::invalid_request, 0, "no model: set it on the provider or in params::model", {}, 0, {}};
  if (dimensions_) body["dimensions"] = *dimensions_;
  return detail::with_extra(std::move(body), p);
}

REQUESTS_ENGINE_INLINE result<completion> openai_embeddings::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")", {}, 0, {}};
  };
  const json j = detail::parse_json(r.body);
  if (j.is_discarded() || !j.is_object()) return bad("the response is not a JSON object");
  const auto data = j.find("data");
  if (data == j.end() || !data->is_array() || data->empty() || !(*data)[0].is_object() ||
      !(*data)[0].contains("embedding"))
    return bad("the response has no embedding");
  result<std::vector<float>> v = detail::decode_embedding((*data)[0]["embedding"]);
  if (!v) return bad(v.error().message);
  completion c;
  c.embedding_vector = std::move(*v);
  c.finish_reason = "stop";
  if (j.contains("model") && j["model"].is_string()) c.model = j["model"].get<std::string>();
  if (j.contains("usage") && j["usage"].is_object()) c.usage.input_tokens = detail::json_count(j["usage"], "prompt_tokens");
  c.raw_body = r.body;
  return c;
}

REQUESTS_ENGINE_INLINE json openai_embeddings::cache_identity() const {
  return identity_with({{"kind", "openai_embeddings"}, {"endpoint", endpoint_}});
}

REQUESTS_ENGINE_INLINE std::vector<result<std::string>> openai_embeddings::send_batch(
    const std::vector<batch_request>& batch, batch_context& context) const {
  std::vector<result<std::string>> out(batch.size(), error{error_code::internal, 0, "not sent", {}, 0, {}});
  // Inputs that differ in their text only share HTTP requests (in one run: all of them).
  std::vector<std::pair<std::string, std::vector<std::size_t>>> groups;
  std::vector<json> bodies(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    bodies[i] = detail::parse_json(batch[i].body);
    if (!bodies[i].is_object() || !bodies[i].contains("input") || !bodies[i]["input"].is_string()) {
      out[i] = detail::unsupported("openai_embeddings", "a batched request needs a body with one text input");
      continue;
    }
    json rest = bodies[i];
    rest.erase("input");
    std::string key = rest.dump();
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == key; });
    if (g == groups.end()) {
      groups.emplace_back(std::move(key), std::vector<std::size_t>{});
      g = std::prev(groups.end());
    }
    g->second.push_back(i);
  }
  auto text_of = [&](std::size_t i) -> const std::string& { return bodies[i]["input"].get_ref<const std::string&>(); };
  for (const auto& [key, members] : groups) {
    const json rest = json::parse(key);
    // One HTTP request: the inputs `part`, answered each on its own (false: refused as a whole).
    auto attempt = [&](const std::vector<std::size_t>& part, bool may_split) {
      auto fail_all = [&](const error& e) {
        for (std::size_t i : part) out[i] = e;
      };
      if (context.cancelled.load()) {
        fail_all(error{error_code::cancelled, 0, "cancelled before it could be sent", {}, 0, {}});
        return true;
      }
      json body = rest;
      json inputs = json::array();
      for (std::size_t i : part) inputs.push_back(text_of(i));
      body["input"] = std::move(inputs);
      ++context.http_requests;
      result<http_response> resp = context.session.send(make_request(body.dump()), context.cancelled);
      if (!resp) {
        fail_all(resp.error());
        return true;
      }
      if (resp->status < 200 || resp->status >= 300) {
        error e = detail::error_from_response(*resp);
        if (may_split && (e.code == error_code::bad_request || e.code == error_code::content_filtered)) return false;
        fail_all(e);
        return true;
      }
      json answer = detail::parse_json(resp->body);
      if (answer.is_discarded() || !answer.is_object() || !answer.contains("data") || !answer["data"].is_array()) {
        fail_all(error{error_code::invalid_response, resp->status,
                       "the answer to an input array has no data (body starts: " + resp->body.substr(0, 120) + ")",
                       {}, 0, {}});
        return true;
      }
      // data[].index is the input's place in the array, whatever order the items come in.
      std::vector<json*> item(part.size(), nullptr);
      json& data = answer["data"];
      for (std::size_t pos = 0; pos < data.size(); ++pos) {
        json& d = data[pos];
        const std::int64_t index = d.is_object() && d.contains("index") && d["index"].is_number_integer()
                                       ? d["index"].get<std::int64_t>()
                                       : static_cast<std::int64_t>(pos);
        if (index >= 0 && index < static_cast<std::int64_t>(part.size()) && d.is_object() && d.contains("embedding"))
          item[static_cast<std::size_t>(index)] = &d;
      }
      const json usage = answer.value("usage", json::object());
      std::vector<std::size_t> lengths;
      lengths.reserve(part.size());
      for (std::size_t i : part) lengths.push_back(text_of(i).size());
      const auto shares = detail::share_out(detail::json_count(usage, "prompt_tokens"), lengths);
      const json model = answer.value("model", json(model_));
      for (std::size_t k = 0; k < part.size(); ++k) {
        if (!item[k]) {
          out[part[k]] = error{error_code::invalid_response, resp->status,
                               "the answer to the input array has no embedding for this input (index " +
                                   std::to_string(k) + " of " + std::to_string(part.size()) + ")",
                               {}, 0, {}};
          continue;
        }
        // The answer this input would have had alone: what the cache stores and parse_response reads.
        json one = {{"object", "list"},
                    {"data", json::array({{{"object", "embedding"}, {"index", 0},
                                           {"embedding", std::move((*item[k])["embedding"])}}})},
                    {"model", model},
                    {"usage", {{"prompt_tokens", shares[k]}, {"total_tokens", shares[k]}}}};
        out[part[k]] = one.dump();
      }
      return true;
    };
    // Requests of at most max_inputs_ inputs and max_request_tokens_ estimated tokens.
    std::vector<std::size_t> part;
    std::int64_t tokens = 0;
    for (std::size_t i : members) {
      const std::int64_t t = detail::embedding_token_bound(text_of(i).size());
      if (!part.empty() && (part.size() >= max_inputs_ || tokens + t > max_request_tokens_)) {
        detail::send_halving(part, attempt);
        part.clear();
        tokens = 0;
      }
      part.push_back(i);
      tokens += t;
    }
    if (!part.empty()) detail::send_halving(part, attempt);
  }
  return out;
}

// --- gemini_embeddings -----------------------------------------------------------------------

REQUESTS_ENGINE_INLINE gemini_embeddings::gemini_embeddings(const char* api_key, std::string model,
                                                            std::string base_url)
    : api_key_(api_key ? api_key : ""), model_(std::move(model)) {
  if (model_.compare(0, 7, "models/") == 0) model_.erase(0, 7);  // the API's resource name, as SDKs accept it
  detail::check_path_segment(model_, "model", "gemini_embeddings");
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  endpoint_ = base_url + "/v1beta/models/" + model_ + ":batchEmbedContents";
  (void)parse_url(endpoint_);  // throws std::invalid_argument on a malformed URL
}

REQUESTS_ENGINE_INLINE gemini_embeddings gemini_embeddings::from_environment(std::string model, std::string base_url) {
  const char* key = std::getenv("GEMINI_API_KEY");
  if (!key || !*key) key = std::getenv("GOOGLE_API_KEY");
  if (!key || !*key)
    throw std::invalid_argument("requests_engine: gemini_embeddings: neither GEMINI_API_KEY nor GOOGLE_API_KEY is set");
  return gemini_embeddings(key, std::move(model), std::move(base_url));
}

REQUESTS_ENGINE_INLINE gemini_embeddings& gemini_embeddings::dimensions(std::int64_t n) {
  if (n < 1) throw std::invalid_argument("requests_engine: gemini_embeddings::dimensions must be at least 1");
  dimensions_ = n;
  return *this;
}

REQUESTS_ENGINE_INLINE gemini_embeddings& gemini_embeddings::max_inputs(std::size_t n) {
  if (n < 1 || n > 100) throw std::invalid_argument("requests_engine: gemini_embeddings::max_inputs must be 1 to 100");
  max_inputs_ = n;
  return *this;
}

REQUESTS_ENGINE_INLINE result<json> gemini_embeddings::make_body(const conversation& c, const params& p) const {
  result<std::string> text = detail::embedding_text(c, "gemini_embeddings");
  if (!text) return std::move(text.error());
  if (auto e = detail::embedding_params_unsupported(p, "gemini_embeddings")) return std::move(*e);
  if (!p.extra().is_null()) return detail::unsupported("gemini_embeddings", "params::extra is not supported");
  if (p.model() && *p.model() != model_ && *p.model() != "models/" + model_)
    return detail::unsupported("gemini_embeddings", "the model is in the URL: build a provider for '" + *p.model() + "'");
  json body = {{"content", {{"parts", json::array({{{"text", std::move(*text)}}})}}}};
  if (!task_type_.empty()) body["taskType"] = task_type_;
  if (dimensions_) body["outputDimensionality"] = *dimensions_;
  return body;
}

REQUESTS_ENGINE_INLINE result<completion> gemini_embeddings::parse_response(const http_response& r) const {
  if (r.status < 200 || r.status >= 300) return detail::google_error_from_response(r);
  auto bad = [&](const std::string& why) {
    return error{error_code::invalid_response, r.status, why + " (body starts: " + r.body.substr(0, 120) + ")", {}, 0, {}};
  };
  const json j = detail::parse_json(r.body);
  if (j.is_discarded() || !j.is_object() || !j.contains("embedding") || !j["embedding"].is_object() ||
      !j["embedding"].contains("values"))
    return bad("the response has no embedding");
  result<std::vector<float>> v = detail::decode_embedding(j["embedding"]["values"]);
  if (!v || !j["embedding"]["values"].is_array()) return bad(v ? "the values are not an array" : v.error().message);
  completion c;
  c.embedding_vector = std::move(*v);
  c.finish_reason = "stop";
  c.model = model_;
  if (j.contains("requests_engine") && j["requests_engine"].is_object())
    c.usage.input_tokens = detail::json_count(j["requests_engine"], "estimated_input_tokens");
  c.raw_body = r.body;
  return c;
}

REQUESTS_ENGINE_INLINE json gemini_embeddings::cache_identity() const {
  return identity_with({{"kind", "gemini_embeddings"}, {"endpoint", endpoint_}});
}

REQUESTS_ENGINE_INLINE std::vector<result<std::string>> gemini_embeddings::send_batch(
    const std::vector<batch_request>& batch, batch_context& context) const {
  std::vector<result<std::string>> out(batch.size(), error{error_code::internal, 0, "not sent", {}, 0, {}});
  std::vector<json> bodies(batch.size());
  std::vector<std::size_t> good;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    bodies[i] = detail::parse_json(batch[i].body);
    if (!bodies[i].is_object() || !bodies[i].contains("content")) {
      out[i] = detail::unsupported("gemini_embeddings", "a batched request needs an EmbedContentRequest body");
      continue;
    }
    good.push_back(i);
  }
  const std::string model_name = "models/" + model_;
  auto attempt = [&](const std::vector<std::size_t>& part, bool may_split) {
    auto fail_all = [&](const error& e) {
      for (std::size_t i : part) out[i] = e;
    };
    if (context.cancelled.load()) {
      fail_all(error{error_code::cancelled, 0, "cancelled before it could be sent", {}, 0, {}});
      return true;
    }
    json requests = json::array();
    for (std::size_t i : part) {
      json one = bodies[i];
      one["model"] = model_name;
      requests.push_back(std::move(one));
    }
    http_request req;
    req.url = endpoint_;
    req.body = json{{"requests", std::move(requests)}}.dump();
    req.headers.emplace_back("x-goog-api-key", api_key_);
    headers_.apply_to(req.headers);
    ++context.http_requests;
    result<http_response> resp = context.session.send(req, context.cancelled);
    if (!resp) {
      fail_all(resp.error());
      return true;
    }
    if (resp->status < 200 || resp->status >= 300) {
      error e = detail::google_error_from_response(*resp);
      if (may_split && (e.code == error_code::bad_request || e.code == error_code::content_filtered)) return false;
      fail_all(e);
      return true;
    }
    json answer = detail::parse_json(resp->body);
    if (answer.is_discarded() || !answer.is_object() || !answer.contains("embeddings") ||
        !answer["embeddings"].is_array() || answer["embeddings"].size() != part.size()) {
      fail_all(error{error_code::invalid_response, resp->status,
                     "the answer has not one embedding per request, in order (body starts: " +
                         resp->body.substr(0, 120) + ")",
                     {}, 0, {}});
      return true;
    }
    json& embeddings = answer["embeddings"];
    for (std::size_t k = 0; k < part.size(); ++k) {
      json& e = embeddings[k];
      if (!e.is_object() || !e.contains("values")) {
        out[part[k]] = error{error_code::invalid_response, resp->status, "an embedding has no values", {}, 0, {}};
        continue;
      }
      // The API reports no tokens: 4 bytes a token, for the price (see the class comment).
      std::size_t bytes = 0;
      for (const auto& p : bodies[part[k]]["content"].value("parts", json::array()))
        if (p.is_object() && p.contains("text") && p["text"].is_string()) bytes += p["text"].get_ref<const std::string&>().size();
      json one = {{"embedding", {{"values", std::move(e["values"])}}},
                  {"requests_engine", {{"estimated_input_tokens", static_cast<std::int64_t>((bytes + 3) / 4)}}}};
      out[part[k]] = one.dump();
    }
    return true;
  };
  for (std::size_t start = 0; start < good.size(); start += max_inputs_) {
    const std::size_t end = std::min(good.size(), start + max_inputs_);
    detail::send_halving(std::vector<std::size_t>(good.begin() + static_cast<std::ptrdiff_t>(start),
                                                  good.begin() + static_cast<std::ptrdiff_t>(end)),
                         attempt);
  }
  return out;
}

REQUESTS_ENGINE_NAMESPACE_END
