// What `run` and `embed` write: each request's output line (in the input's own format), the
// summary and the cost line. Also used by `batch fetch` and `batch import` (tools/batch_command.hpp).
// Included by tools/run_command.hpp only.
#pragma once

#include "run_input.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace requests_engine_cli {

/// Counts for the summary.
struct run_summary {
  std::size_t input_lines = 0;
  std::size_t skipped_lines = 0;
  std::size_t selected = 0;  ///< requests in this shard
  std::string shard;         ///< "K/N" or empty
  std::size_t written = 0;
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t from_cache = 0;
  std::size_t deduplicated = 0;  ///< answered by an identical request of this run (not sent again)
  std::optional<re::cache_stats> cache;  ///< the cache's counts, when it is on
  std::size_t retries = 0;
  re::token_usage tokens;
  std::vector<std::string> failed_ids;
  re::cost_report cost;  ///< every result added as it completes
  double wall_seconds = 0;
  bool interrupted = false;
  std::size_t http_requests = 0;  ///< sent, retries included (a prompt array is one)
  std::size_t batches = 0;        ///< --batch-size: batches collected, and the requests in them
  std::size_t batched = 0;
  std::vector<double> first_token_ms;  ///< streamed answers' time to first token
};

/// The q-quantile (0..1, nearest rank) of `v`, which it sorts; 0 when empty.
inline double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[rank == 0 ? 0 : rank - 1];
}

namespace detail {

inline std::string dollars(double v) {
  if (v == 0) return "$0";
  std::ostringstream s;
  s << '$' << std::fixed << std::setprecision(v < 0.01 ? 6 : 4) << v;
  return s.str();
}

inline std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + (names[i].empty() ? "(unnamed model)" : names[i]);
  return s;
}

}  // namespace detail

inline double requests_per_second(const run_summary& s) {
  return s.wall_seconds > 0 ? static_cast<double>(s.succeeded + s.failed) / s.wall_seconds : 0.0;
}

/// The cost line: what was paid (answers from the network) and what the run would have cost
/// had nothing come from the cache. A model without a price is "unknown", never $0.
inline std::string cost_line(const re::cost_report& c) {
  if (c.requests == 0) return "none (no answers)";
  bool any_priced = false;
  for (const auto& m : c.models) any_priced = any_priced || m.actual.has_value();
  std::string s;
  if (any_priced) {
    s = "actual " + detail::dollars(c.actual) + ", as-if " + detail::dollars(c.as_if) + " (with no answer from the cache)";
    if (!c.complete()) s += "; unknown for " + detail::joined(c.unknown_models) + " (not included; add prices with --prices)";
  } else {
    s = "unknown (no price for " + detail::joined(c.unknown_models) + "; add prices with --prices)";
  }
  return s;
}

/// The end-of-run report on `out`.
inline void print_summary(const run_summary& s, std::ostream& out, const std::string& command = "run") {
  out << "requests-engine " << command << ": " << (s.interrupted ? "interrupted" : "done") << "\n";
  out << "  requests     " << s.selected;
  if (!s.shard.empty()) out << " (shard " << s.shard << ")";
  out << " from " << s.input_lines << " input lines";
  if (s.skipped_lines > 0) out << ", " << s.skipped_lines << " skipped as malformed";
  out << "\n";
  out << "  succeeded    " << s.succeeded << "\n";
  out << "  failed       " << s.failed;
  if (!s.failed_ids.empty()) {
    out << ": ";
    const std::size_t shown = std::min<std::size_t>(s.failed_ids.size(), 20);
    for (std::size_t i = 0; i < shown; ++i) out << (i ? ", " : "") << s.failed_ids[i];
    if (s.failed_ids.size() > shown) out << ", ... (" << s.failed_ids.size() - shown << " more)";
  }
  out << "\n";
  if (s.interrupted) out << "  not finished " << s.selected - s.succeeded - s.failed << "\n";
  if (!s.first_token_ms.empty()) {
    std::vector<double> t = s.first_token_ms;
    out << "  first token  median " << quantile(t, 0.5) << " ms, p90 " << quantile(t, 0.9) << " ms (" << t.size()
        << " streamed)\n";
  }
  out << "  from cache   " << s.from_cache;
  if (s.deduplicated > 0) out << " (and " << s.deduplicated << " identical requests answered once)";
  out << "\n";
  if (s.cache)
    out << "  cache        " << s.cache->hits << " hits, " << s.cache->misses << " misses, " << s.cache->writes
        << " written (" << s.cache->bytes_written / 1024 << " KiB)"
        << (s.cache->corrupt ? ", " + std::to_string(s.cache->corrupt) + " unusable entries replaced" : std::string())
        << (s.cache->write_errors ? ", " + std::to_string(s.cache->write_errors) + " not stored" : std::string())
        << "\n";
  out << "  retries      " << s.retries << "\n";
  out << "  http         " << s.http_requests << " requests";
  if (s.batches > 0) {
    std::ostringstream mean;
    mean << std::fixed << std::setprecision(1) << static_cast<double>(s.batched) / static_cast<double>(s.batches);
    out << "; " << s.batches << " batches of " << s.batched << " prompts, mean batch size " << mean.str();
  }
  out << "\n";
  out << "  tokens       input " << s.tokens.input_tokens << " (cached " << s.tokens.cached_input_tokens;
  if (s.tokens.cache_write_tokens > 0) out << ", written to the cache " << s.tokens.cache_write_tokens;
  out << "), output " << s.tokens.output_tokens;
  if (s.tokens.reasoning_tokens > 0) out << " (reasoning " << s.tokens.reasoning_tokens << ")";
  out << "\n";
  out << "  cost         " << cost_line(s.cost) << "\n";
  std::ostringstream rate;
  rate << std::fixed << std::setprecision(2) << s.wall_seconds << " s";
  out << "  wall time    " << rate.str() << "\n";
  rate.str("");
  rate << std::fixed << std::setprecision(1) << requests_per_second(s) << " requests/s";
  out << "  rate         " << rate.str() << "\n";
}

namespace detail {

inline json usage_json(const re::token_usage& u) {
  return {{"input_tokens", u.input_tokens},
          {"output_tokens", u.output_tokens},
          {"cached_input_tokens", u.cached_input_tokens},
          {"cache_write_tokens", u.cache_write_tokens},
          {"cache_write_1h_tokens", u.cache_write_1h_tokens},
          {"reasoning_tokens", u.reasoning_tokens}};
}

// A chat.completion body for answers from providers that do not speak OpenAI's shape, so that
// an OpenAI Batch output file always holds chat completions.
inline json chat_completion_body(const re::completion& c) {
  json choices = json::array();
  for (std::size_t i = 0; i < c.choices.size(); ++i) {
    json msg = {{"role", "assistant"}, {"content", c.choices[i].text}};
    if (!c.choices[i].tool_calls.empty()) {
      json calls = json::array();
      for (const auto& t : c.choices[i].tool_calls)
        calls.push_back({{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
      msg["tool_calls"] = std::move(calls);
    }
    choices.push_back({{"index", i}, {"message", std::move(msg)}, {"finish_reason", c.choices[i].finish_reason}});
  }
  json usage = {{"prompt_tokens", c.usage.input_tokens},
                {"completion_tokens", c.usage.output_tokens},
                {"total_tokens", c.usage.total()},
                {"prompt_tokens_details", {{"cached_tokens", c.usage.cached_input_tokens}}}};
  return {{"object", "chat.completion"}, {"model", c.model}, {"choices", std::move(choices)}, {"usage", std::move(usage)}};
}

// A Responses API body (object "response") for answers from other providers, so that an OpenAI
// Batch output file of /v1/responses lines always holds responses.
inline json responses_body(const re::completion& c) {
  json output = json::array();
  const std::string id = c.request_hash.substr(0, std::min<std::size_t>(c.request_hash.size(), 32));
  if (!c.text.empty() || c.tool_calls().empty())
    output.push_back({{"type", "message"},
                      {"id", "msg_" + id},
                      {"status", "completed"},
                      {"role", "assistant"},
                      {"content", json::array({{{"type", "output_text"}, {"text", c.text}, {"annotations", json::array()}}})}});
  for (const auto& t : c.tool_calls())
    output.push_back({{"type", "function_call"}, {"id", "fc_" + t.id}, {"call_id", t.id}, {"name", t.name},
                      {"arguments", t.arguments}, {"status", "completed"}});
  const bool incomplete = c.finish_reason == "length" || c.finish_reason == "max_tokens" ||
                          c.finish_reason == "max_output_tokens" || c.finish_reason == "MAX_TOKENS";
  json usage = {{"input_tokens", c.usage.input_tokens},
                {"input_tokens_details", {{"cached_tokens", c.usage.cached_input_tokens}}},
                {"output_tokens", c.usage.output_tokens},
                {"output_tokens_details", {{"reasoning_tokens", c.usage.reasoning_tokens}}},
                {"total_tokens", c.usage.total()}};
  return {{"id", "resp_" + id},
          {"object", "response"},
          {"status", incomplete ? "incomplete" : "completed"},
          {"incomplete_details", incomplete ? json{{"reason", "max_output_tokens"}} : json()},
          {"error", nullptr},
          {"model", c.model},
          {"output", std::move(output)},
          {"usage", std::move(usage)}};
}

// An embeddings list (OpenAI's shape) of one vector.
// An embeddings answer in OpenAI's shape; `base64`: the vector as OpenAI sends it when asked for
// encoding_format "base64" (little-endian float32, base64).
inline json embeddings_body(const re::completion& c, bool base64) {
  json vector = c.embedding_vector;
  if (base64) {
    std::string bytes;
    bytes.reserve(c.embedding_vector.size() * 4);
    for (float f : c.embedding_vector) {
      std::uint32_t u = 0;
      std::memcpy(&u, &f, sizeof u);
      for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((u >> (8 * k)) & 0xffu));
    }
    vector = re::detail::base64_encode(bytes);
  }
  return {{"object", "list"},
          {"data", json::array({{{"object", "embedding"}, {"index", 0}, {"embedding", std::move(vector)}}})},
          {"model", c.model},
          {"usage", {{"prompt_tokens", c.usage.input_tokens}, {"total_tokens", c.usage.input_tokens}}}};
}

inline json error_json(const re::error& e) {
  json j = {{"code", std::string(re::to_string(e.code))}, {"message", e.message}, {"attempts", e.attempts}};
  if (e.http_status != 0) j["http_status"] = e.http_status;
  if (!e.provider_code.empty()) j["provider_code"] = e.provider_code;
  return j;
}

// `batch_url`: the OpenAI Batch input's endpoint (its answers' shape); `openai_shaped_body`:
// the provider's own answer has that shape already.
inline std::string output_line(const input_item& item, input_format format, const std::string& batch_url,
                               bool openai_shaped_body, const re::result<re::completion>& r) {
  const bool embeddings = batch_url == "/v1/embeddings" || (r && !r->embedding_vector.empty());
  const std::string hash = r ? r->request_hash : item.hash;
  json line;
  if (format == input_format::openai_batch) {
    line["id"] = "batch_req_" + re::detail::sha256_hex(item.id_text).substr(0, 32);
    line["custom_id"] = item.id;
    if (r) {
      json body = openai_shaped_body && !embeddings ? r->raw() : json();
      if (body.is_discarded() || !body.is_object())
        body = embeddings                        ? embeddings_body(*r, item.base64)
               : batch_url == "/v1/responses" ? responses_body(*r)
                                                 : chat_completion_body(*r);
      line["response"] = {{"status_code", 200}, {"request_id", ""}, {"body", std::move(body)}};
      line["error"] = nullptr;
    } else {
      const re::error& e = r.error();
      if (e.http_status != 0) {
        json err = {{"message", e.message}, {"type", std::string(re::to_string(e.code))}};
        err["code"] = e.provider_code.empty() ? json() : json(e.provider_code);
        line["response"] = {{"status_code", e.http_status}, {"request_id", ""}, {"body", {{"error", std::move(err)}}}};
      } else {
        line["response"] = nullptr;
      }
      line["error"] = {{"code", std::string(re::to_string(e.code))}, {"message", e.message}};
    }
  } else {
    line["id"] = item.id;
    if (r && embeddings) {
      line["embedding"] = r->embedding_vector;
      line["model"] = r->model;
      line["error"] = nullptr;
    } else if (r) {
      line["text"] = r->text;
      line["finish_reason"] = r->finish_reason;
      if (!r->tool_calls().empty()) {
        json calls = json::array();
        for (const auto& t : r->tool_calls()) calls.push_back({{"id", t.id}, {"name", t.name}, {"arguments", t.arguments}});
        line["tool_calls"] = std::move(calls);
      }
      if (r->choices.size() > 1) {
        json texts = json::array();
        for (const auto& c : r->choices) texts.push_back(c.text);
        line["choices"] = std::move(texts);
      }
      line["model"] = r->model;
      line["error"] = nullptr;
    } else {
      line["error"] = error_json(r.error());
    }
  }
  line["usage"] = r ? usage_json(r->usage) : json();
  line["request_hash"] = hash.empty() ? json() : json(hash);
  line["from_cache"] = r ? r->from_cache : false;
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";  // invalid UTF-8 in an answer: U+FFFD
}

}  // namespace detail
}  // namespace requests_engine_cli
