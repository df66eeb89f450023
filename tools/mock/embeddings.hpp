// requests_engine mock: embeddings, OpenAI's POST /v1/embeddings (input a string or an array of
// strings, float or base64 vectors, data in reverse order) and the Gemini API's
// :batchEmbedContents / :embedContent bodies; the vectors come from mock_embedding().
#pragma once

#include "common.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace requests_engine_mock {

/// The mock's embedding of `text`: `dims` floats seeded by the text (FNV-1a, then splitmix64),
/// normalised to length 1. The same text gives the same vector everywhere, so a test can tell
/// which input an answer belongs to.
inline std::vector<float> mock_embedding(const std::string& text, std::size_t dims = 16) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  std::vector<double> v(dims);
  double norm = 0;
  for (std::size_t i = 0; i < dims; ++i) {
    std::uint64_t z = (h += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    v[i] = static_cast<double>(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;  // [-1, 1)
    norm += v[i] * v[i];
  }
  norm = std::sqrt(norm);
  std::vector<float> out(dims);
  for (std::size_t i = 0; i < dims; ++i) out[i] = static_cast<float>(norm > 0 ? v[i] / norm : 0.0);
  return out;
}

/// Dimensions of a mock vector when the request names none.
inline constexpr std::size_t mock_embedding_default_dims = 16;

namespace detail {

struct embeddings_request {
  std::string model;
  std::vector<std::string> inputs;
  bool base64 = false;
  std::size_t dims = mock_embedding_default_dims;
};

// Validates a CreateEmbeddingRequest as OpenAI does; on failure fills `error` and `param`.
inline bool parse_embeddings_request(const nlohmann::json& body, embeddings_request& out, std::string& error,
                                     nlohmann::json& param) {
  out = embeddings_request{};
  if (!openai_body_with_model(body, out.model, error, param)) return false;
  const auto input = body.find("input");
  param = "input";
  if (input == body.end()) {
    error = "'input' is a required property";
    return false;
  }
  if (input->is_string()) {
    out.inputs.push_back(input->get<std::string>());
  } else if (input->is_array() && !input->empty()) {
    if (input->size() > 2048) {
      error = "Invalid 'input': maximum input array length is 2048, but got " + std::to_string(input->size()) + ".";
      return false;
    }
    for (const auto& x : *input) {
      if (!x.is_string()) {
        error = "Invalid 'input': the requests_engine mock takes a string or an array of strings (no token ids).";
        return false;
      }
      out.inputs.push_back(x.get<std::string>());
    }
  } else {
    error = "Invalid 'input': expected a string or a non-empty array of strings.";
    return false;
  }
  for (const auto& s : out.inputs) {
    if (s.empty()) {
      error = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";
      return false;
    }
  }
  const auto format = body.find("encoding_format");
  if (format != body.end() && !format->is_null()) {
    if (!format->is_string() || (*format != "float" && *format != "base64")) {
      error = "Invalid value for 'encoding_format': expected 'float' or 'base64'.";
      param = "encoding_format";
      return false;
    }
    out.base64 = *format == "base64";
  }
  std::optional<std::int64_t> dims;
  if (!optional_int_field(body, "dimensions", 1, 65536, dims, error)) {
    param = "dimensions";
    return false;
  }
  if (dims) out.dims = static_cast<std::size_t>(*dims);
  for (const auto& [k, v] : body.items()) {
    if (k != "model" && k != "input" && k != "encoding_format" && k != "dimensions" && k != "user") {
      error = "Unrecognized request argument supplied: " + k;
      param = nullptr;
      return false;
    }
    (void)v;
  }
  param = nullptr;
  return true;
}

inline std::string base64_of_floats(const std::vector<float>& v) {
  std::string bytes(v.size() * 4, '\0');
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &v[i], sizeof u);
    for (std::size_t k = 0; k < 4; ++k) bytes[i * 4 + k] = static_cast<char>((u >> (8 * k)) & 0xffu);  // little-endian
  }
  static const char* const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out.push_back(digits[(n >> 18) & 63]);
    out.push_back(digits[(n >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? digits[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? digits[n & 63] : '=');
  }
  return out;
}

inline std::size_t embeddings_input_bytes(const embeddings_request& req) {
  std::size_t bytes = 0;
  for (const auto& s : req.inputs) bytes += s.size();
  return bytes;
}

// OpenAI's answer, the data last input first: a client must map them back by their index.
inline std::string embeddings_body(const embeddings_request& req) {
  using ojson = nlohmann::ordered_json;
  ojson data = ojson::array();
  std::size_t tokens = 0;
  for (std::size_t k = req.inputs.size(); k-- > 0;) {
    const std::vector<float> v = mock_embedding(req.inputs[k], req.dims);
    tokens += estimate_tokens(req.inputs[k].size());
    ojson item;
    item["object"] = "embedding";
    item["index"] = k;
    if (req.base64) {
      item["embedding"] = base64_of_floats(v);
    } else {
      ojson values = ojson::array();
      for (float f : v) values.push_back(static_cast<double>(f));
      item["embedding"] = std::move(values);
    }
    data.push_back(std::move(item));
  }
  ojson body;
  body["object"] = "list";
  body["data"] = std::move(data);
  body["model"] = req.model;
  body["usage"] = ojson{{"prompt_tokens", tokens}, {"total_tokens", tokens}};
  return body.dump();
}

// One Gemini EmbedContentRequest: its text and outputDimensionality. `model` (the URL's) must
// match the request's own model when it names one (batchEmbedContents requires it).
inline bool parse_gemini_embed_request(const nlohmann::json& r, const std::string& url_model, bool need_model,
                                       std::string& text, std::size_t& dims, std::string& error) {
  if (!r.is_object()) {
    error = "Invalid JSON payload received. Expected an object.";
    return false;
  }
  if (r.contains("model") || need_model) {
    const std::string m = r.value("model", std::string());
    if (m != "models/" + url_model) {
      error = "* BatchEmbedContentsRequest.requests: model must be the same as the batch's model (models/" +
              url_model + "), got '" + m + "'";
      return false;
    }
  }
  text.clear();
  const auto content = r.find("content");
  if (content == r.end() || !content->is_object() || !content->contains("parts") || !(*content)["parts"].is_array() ||
      (*content)["parts"].empty()) {
    error = "* EmbedContentRequest.content: contents is not specified";
    return false;
  }
  for (const auto& p : (*content)["parts"]) {
    if (!p.is_object() || !p.contains("text") || !p["text"].is_string()) {
      error = "* EmbedContentRequest.content.parts: the requests_engine mock embeds text parts only";
      return false;
    }
    text += p["text"].get<std::string>();
  }
  if (text.empty()) {
    error = "* EmbedContentRequest.content: the text is empty";
    return false;
  }
  dims = mock_embedding_default_dims;
  const auto d = r.find("outputDimensionality");
  if (d != r.end()) {
    if (!d->is_number_integer() || d->get<std::int64_t>() < 1) {
      error = "* EmbedContentRequest.output_dimensionality: must be a positive integer";
      return false;
    }
    dims = static_cast<std::size_t>(d->get<std::int64_t>());
  }
  return true;
}

inline nlohmann::json gemini_values(const std::string& text, std::size_t dims) {
  nlohmann::json values = nlohmann::json::array();
  for (float f : mock_embedding(text, dims)) values.push_back(static_cast<double>(f));
  return {{"values", std::move(values)}};
}

}  // namespace detail
}  // namespace requests_engine_mock
