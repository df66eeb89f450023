// requests_engine mock: the provider batch APIs, OpenAI Files + Batch and Anthropic Message
// Batches, with their own store of files and batches and a lazily advanced timeline.
#pragma once

#include "anthropic.hpp"
#include "common.hpp"
#include "core.hpp"
#include "embeddings.hpp"
#include "google_aws.hpp"
#include "openai.hpp"
#include "responses.hpp"
#include "sockets.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace requests_engine_mock {

// server::batch_mock_options (see server::set_batch_options).
struct batch_mock_options {
  int delay_ms = 0;            // creation to end of processing (OpenAI: validating for the first third)
  double fail_rate = 0;        // fraction of lines answered with a 400 error (drawn from `seed`), besides
                               // every line whose last user message contains "[fail]"
  bool expire = false;         // batches end as expired: the first half of their lines answered, the rest expired
  std::size_t max_requests = 0;  // per batch (0 = no limit): OpenAI fails the batch, Anthropic answers 400
};

namespace detail {

// ---- provider batch APIs (OpenAI Files + Batch, Anthropic Message Batches) ----
// POST /v1/files (multipart, purpose=batch), GET /v1/files/{id}/content, POST /v1/batches,
// GET /v1/batches/{id}, POST /v1/batches/{id}/cancel; POST /v1/messages/batches,
// GET /v1/messages/batches/{id}, POST .../{id}/cancel, GET .../{id}/results. Lines are answered
// by the same rules as the online routes (no rate limits or faults), once `delay_ms` has passed
// since creation (checked lazily, on the next request). Not counted in requests().
//
// Owned by the server; holds the uploaded files and the batches.
class batch_routes {
 public:
  // origin: the server's origin() once it listens, for the results_url of a batch.
  batch_routes(server_core& core, std::function<std::string()> origin)
      : core_(core), origin_(std::move(origin)) {}

  void set_batch_options(const batch_mock_options& o) {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    batch_opts_ = o;
  }
  std::size_t batch_calls() const { return batch_calls_.load(); }  // requests to the batch routes
  std::size_t batches_created() const {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    return batches_.size();
  }
  std::vector<std::size_t> batch_sizes() const {  // lines per batch, in creation order
    std::lock_guard<std::mutex> lk(batch_mutex_);
    std::vector<std::pair<std::uint64_t, std::size_t>> v;
    for (const auto& kv : batches_) v.emplace_back(kv.second.seq, kv.second.lines.size());
    std::sort(v.begin(), v.end());
    std::vector<std::size_t> out;
    for (const auto& p : v) out.push_back(p.second);
    return out;
  }
  std::size_t batch_lines() const {  // lines over every batch created
    std::size_t n = 0;
    for (std::size_t s : batch_sizes()) n += s;
    return n;
  }
  // Per batch in creation order, the last user message of each line: what was uploaded.
  std::vector<std::vector<std::string>> batch_prompts() const {
    std::lock_guard<std::mutex> lk(batch_mutex_);
    std::vector<std::pair<std::uint64_t, std::vector<std::string>>> v;
    for (const auto& kv : batches_) {
      std::vector<std::string> texts;
      for (const auto& l : kv.second.lines) {
        std::string error, text;
        if (kv.second.gemini) (void)detail::gemini_answer_body(l.second, kv.second.model, error, text);
        else
          text = detail::last_user_text(kv.second.which == api::openai ? l.second.value("body", nlohmann::json())
                                                                        : l.second);
        texts.push_back(std::move(text));
      }
      v.emplace_back(kv.second.seq, std::move(texts));
    }
    std::sort(v.begin(), v.end());
    std::vector<std::vector<std::string>> out;
    for (auto& p : v) out.push_back(std::move(p.second));
    return out;
  }

  void add_batch_routes(httplib::Server& svr) {
    using httplib::Request;
    using httplib::Response;
    // OpenAI's routes under /v1, and Azure OpenAI's under /openai/v1 (its v1 API) and /openai
    // (the classic routes, which need ?api-version=): the same handlers.
    const auto on_openai_prefixes = [&svr](const std::string& method, const std::string& path,
                                           std::function<void(const Request&, Response&)> handler) {
      for (const std::string prefix : {"/v1", "/openai/v1", "/openai"}) {
        const bool classic = prefix == "/openai";
        auto h = [handler, classic](const Request& req, Response& res) {
          if (classic && req.get_param_value("api-version").empty()) return detail::set_azure_missing_api_version(res);
          handler(req, res);
        };
        if (method == "GET")
          svr.Get(prefix + path, h);
        else
          svr.Post(prefix + path, h);
      }
    };
    on_openai_prefixes("POST", "/files", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      if (!req.has_file("file") || !req.has_file("purpose") || req.get_file_value("purpose").content != "batch") {
        detail::set_openai_error(res, 400, "A multipart form with 'file' and purpose=batch is required.",
                                 "invalid_request_error", nullptr, nullptr);
        return;
      }
      const auto file = req.get_file_value("file");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const std::string id = "file-" + detail::random_hex(24);
      batch_files_[id] = file.content;
      detail::set_json(res, 200,
                       nlohmann::json{{"id", id}, {"object", "file"}, {"bytes", file.content.size()},
                                      {"created_at", unix_now()}, {"filename", file.filename}, {"purpose", "batch"}}
                           .dump());
    });
    on_openai_prefixes("GET", R"(/files/([^/]+)/content)", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const auto it = batch_files_.find(req.matches[1].str());
      if (it == batch_files_.end()) return not_found(api::openai, res, "file");
      res.status = 200;
      res.set_content(it->second, "application/octet-stream");
    });
    on_openai_prefixes("POST", "/batches", [this](const Request& req, Response& res) {
      if (!batch_auth(api::openai, req, res)) return;
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      const std::string endpoint = body.is_object() && body["endpoint"].is_string() ? body["endpoint"].get<std::string>() : "";
      if (!body.is_object() || !is_batch_endpoint(canonical_endpoint(endpoint)) ||
          body.value("completion_window", "") != "24h" ||
          !body.contains("input_file_id")) {
        detail::set_openai_error(res, 400,
                                 "input_file_id, an endpoint (/v1/chat/completions, /v1/responses or /v1/embeddings) and "
                                 "completion_window 24h are required.",
                                 "invalid_request_error", nullptr, nullptr);
        return;
      }
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const auto file = batch_files_.find(body.value("input_file_id", ""));
      if (file == batch_files_.end()) return not_found(api::openai, res, "file");
      mock_batch b;
      b.which = api::openai;
      b.seq = batch_seq_++;
      b.id = "batch_" + detail::random_hex(24);
      b.status = "validating";
      b.endpoint = body["endpoint"];
      b.completion_window = body["completion_window"];
      b.input_file_id = file->first;
      b.metadata = body.value("metadata", nlohmann::json());
      b.created = std::chrono::steady_clock::now();
      b.created_at = unix_now();
      std::map<std::string, bool> ids;
      const std::string& content = file->second;
      std::size_t n = 0;
      for (std::size_t pos = 0; pos < content.size();) {
        std::size_t nl = content.find('\n', pos);
        if (nl == std::string::npos) nl = content.size();
        const std::string text = content.substr(pos, nl - pos);
        pos = nl + 1;
        ++n;
        if (text.empty()) continue;
        nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
        const std::string cid = line.is_object() ? line.value("custom_id", "") : std::string();
        const char* code = cid.empty() ? "invalid_json_line" : !ids.emplace(cid, true).second ? "duplicate_custom_id" : nullptr;
        if (code && b.errors.is_null())
          b.errors = {{"object", "list"},
                      {"data", {{{"code", code}, {"message", std::string("Line ") + std::to_string(n) + ": " + code},
                                 {"param", nullptr}, {"line", n}}}}};
        b.lines.emplace_back(cid, std::move(line));
      }
      if (b.errors.is_null() && batch_opts_.max_requests > 0 && b.lines.size() > batch_opts_.max_requests)
        b.errors = {{"object", "list"},
                    {"data", {{{"code", "too_many_requests"},
                               {"message", "The batch has " + std::to_string(b.lines.size()) + " requests; the limit is " +
                                               std::to_string(batch_opts_.max_requests) + "."},
                               {"param", nullptr}, {"line", nullptr}}}}};
      const std::string id = b.id;
      auto& stored = batches_[id] = std::move(b);
      detail::set_json(res, 200, batch_object(stored).dump());
    });
    auto lookup = [this](api which, const Request& req, Response& res) -> mock_batch* {
      auto it = batches_.find(req.matches[1].str());
      if (it == batches_.end() || it->second.which != which) {
        not_found(which, res, "batch");
        return nullptr;
      }
      return &it->second;
    };
    for (api which : {api::openai, api::anthropic}) {
      const std::string prefix = which == api::openai ? "/batches" : "/v1/messages/batches";
      const auto route = [&](const std::string& method, const std::string& path,
                             std::function<void(const Request&, Response&)> handler) {
        if (which == api::openai) return on_openai_prefixes(method, path, std::move(handler));
        if (method == "GET") svr.Get(path, std::move(handler));
        else svr.Post(path, std::move(handler));
      };
      route("GET", prefix + "/([^/]+)", [this, which, lookup](const Request& req, Response& res) {
        if (!batch_auth(which, req, res)) return;
        std::lock_guard<std::mutex> lk(batch_mutex_);
        if (mock_batch* b = lookup(which, req, res)) {
          advance(*b);
          detail::set_json(res, 200, batch_object(*b).dump());
        }
      });
      route("POST", prefix + "/([^/]+)/cancel", [this, which, lookup](const Request& req, Response& res) {
        if (!batch_auth(which, req, res)) return;
        std::lock_guard<std::mutex> lk(batch_mutex_);
        if (mock_batch* b = lookup(which, req, res)) {
          advance(*b);
          if (!b->done) {
            b->cancel_requested = true;
            b->cancelled_at = unix_now();
            b->status = which == api::openai ? "cancelling" : "canceling";
          }
          detail::set_json(res, 200, batch_object(*b).dump());
        }
      });
    }
    svr.Post("/v1/messages/batches", [this](const Request& req, Response& res) {
      if (!batch_auth(api::anthropic, req, res)) return;
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      const auto requests = body.is_object() ? body.find("requests") : body.end();
      if (!body.is_object() || requests == body.end() || !requests->is_array() || requests->empty())
        return detail::set_anthropic_error(res, 400, "invalid_request_error", "requests: a non-empty list is required");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (batch_opts_.max_requests > 0 && requests->size() > batch_opts_.max_requests)
        return detail::set_anthropic_error(res, 400, "invalid_request_error",
                                           "requests: at most " + std::to_string(batch_opts_.max_requests) + " requests");
      mock_batch b;
      b.which = api::anthropic;
      b.seq = batch_seq_++;
      b.id = "msgbatch_" + detail::random_hex(24);
      b.status = "in_progress";
      b.created = std::chrono::steady_clock::now();
      b.created_at = unix_now();
      std::map<std::string, bool> ids;
      for (const auto& r : *requests) {
        const std::string cid = r.is_object() ? r.value("custom_id", "") : std::string();
        const bool id_ok = !cid.empty() && cid.size() <= 64 &&
                           std::all_of(cid.begin(), cid.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
        if (!id_ok || !ids.emplace(cid, true).second || !r.contains("params") || !r["params"].is_object())
          return detail::set_anthropic_error(res, 400, "invalid_request_error",
                                             "requests." + std::to_string(b.lines.size()) +
                                                 ": a unique custom_id ([a-zA-Z0-9_-]{1,64}) and params are required");
        b.lines.emplace_back(cid, r["params"]);
      }
      const std::string id = b.id;
      auto& stored = batches_[id] = std::move(b);
      detail::set_json(res, 200, batch_object(stored).dump());
    });
    add_gemini_routes(svr);
    svr.Get(R"(/v1/messages/batches/([^/]+)/results)", [this, lookup](const Request& req, Response& res) {
      if (!batch_auth(api::anthropic, req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      mock_batch* b = lookup(api::anthropic, req, res);
      if (!b) return;
      advance(*b);
      if (!b->done)
        return detail::set_anthropic_error(res, 400, "invalid_request_error", "The batch is still being processed.");
      res.status = 200;
      res.set_content(b->results, "application/binary");
    });
  }

 private:
  struct mock_batch {
    api which = api::openai;
    std::uint64_t seq = 0;
    std::string id, status, endpoint, completion_window, input_file_id, output_file_id, error_file_id, results;
    nlohmann::json metadata, errors;
    std::chrono::steady_clock::time_point created;
    std::int64_t created_at = 0;
    std::vector<std::pair<std::string, nlohmann::json>> lines;  // custom_id, request (OpenAI line / Anthropic params
                                                                // / Gemini GenerateContentRequest)
    // Gemini API Batch Mode: its model, whether its input was a file, its display name, and
    // (once done) its inline responses.
    bool gemini = false, gemini_file = false, deleted = false;  // deleted: 404 from then on, still counted
    std::string model, display_name;
    nlohmann::json input_config, inlined;
    std::size_t succeeded = 0, failed = 0, expired = 0, canceled = 0;
    bool cancel_requested = false, done = false;
    std::int64_t cancelled_at = 0, ended_at = 0;
  };

  static std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  static std::string iso(std::int64_t t) {
    return t == 0 ? std::string() : detail::rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::seconds(t)), false);
  }

  bool batch_auth(api which, const httplib::Request& req, httplib::Response& res) {
    batch_calls_.fetch_add(1);
    core_.count_path(req.path);
    if (!core_.has_required_headers(req, res)) return false;
    // Azure OpenAI's batch routes take the key in api-key.
    const key_verdict v = core_.check_key(which == api::openai && req.has_header("api-key")
                                              ? std::optional<std::string>(req.get_header_value("api-key"))
                                              : core_.presented_key(which, req));
    if (v == key_verdict::ok || v == key_verdict::out_of_credit) {
      if (which == api::anthropic && !req.has_header("anthropic-version")) {
        detail::set_anthropic_error(res, 400, "invalid_request_error", "anthropic-version: header is required");
        return false;
      }
      // The injected faults hit the control calls too, so that clients prove their retries.
      switch (core_.draw_fault()) {
        case fault::none:
          return true;
        case fault::reset:
        case fault::truncate:  // a control call's answer is small: cut short or stalled, it is dropped
        case fault::stall:
          if (!detail::drop_connection(req)) break;
          res.status = 200;
          return false;
        case fault::status_429:
          core_.set_retry_after(which, res,
                                std::chrono::milliseconds(std::max(1, core_.options().fail_429_retry_after_ms)));
          core_.rate_limit_error(which, res, "Rate limit reached (injected by the mock server).");
          return false;
        case fault::status_500:
        case fault::overload:
          break;
      }
      if (which == api::openai)
        detail::set_openai_error(res, 500, "The server had an error while processing your request. Sorry about that!",
                                 "server_error", nullptr, nullptr);
      else
        detail::set_anthropic_error(res, 500, "api_error", "Internal server error");
      return false;
    }
    if (which == api::openai)
      detail::set_openai_error(res, 401, "Incorrect API key provided.", "invalid_request_error", nullptr, "invalid_api_key");
    else
      detail::set_anthropic_error(res, 401, "authentication_error", "invalid x-api-key");
    return false;
  }

  static void not_found(api which, httplib::Response& res, const std::string& what) {
    if (which == api::openai)
      detail::set_openai_error(res, 404, "No such " + what, "invalid_request_error", nullptr, nullptr);
    else
      detail::set_anthropic_error(res, 404, "not_found_error", "No such " + what);
  }

 public:  // also for `requests-engine mock run-batch` (tools/mock_command.hpp)
  // The endpoints OpenAI's Batch API serves that the mock answers.
  // Azure's lines and batches name the endpoint without /v1 ("/chat/completions").
  static std::string canonical_endpoint(const std::string& endpoint) {
    if (endpoint == "/chat/completions" || endpoint == "/responses" || endpoint == "/embeddings") return "/v1" + endpoint;
    return endpoint;
  }
  static bool is_batch_endpoint(const std::string& endpoint) {
    return endpoint == "/v1/chat/completions" || endpoint == "/v1/responses" || endpoint == "/v1/embeddings";
  }

  // The answer to one OpenAI line whose url is `endpoint`: fills `out` or `error`, and `text` with
  // the text that may ask for a failure ("[fail]").
  static void answer_openai_line(const std::string& endpoint, const nlohmann::json& body, std::string& out,
                                 std::string& error, std::string& text) {
    nlohmann::json param;
    if (endpoint == "/v1/responses") {
      detail::responses_request responses;
      detail::responses_refusal why;
      if (detail::parse_responses_request(body, responses, why))
        out = detail::responses_body(responses);
      else
        error = why.message;
      text = responses.last_user_text;
    } else if (endpoint == "/v1/embeddings") {
      detail::embeddings_request embed;
      if (detail::parse_embeddings_request(body, embed, error, param)) out = detail::embeddings_body(embed);
      for (const auto& input : embed.inputs) text += input;
    } else {
      detail::chat_request chat;
      if (detail::parse_chat_request(body, chat, error, param)) {
        if (detail::is_responses_only_model(chat.model))
          error = "This model is only supported in v1/responses and not in v1/chat/completions.";
        else
          out = detail::chat_completion_body(chat);
      }
      text = chat.last_user_text;
    }
  }
 private:

  // One line's answer: {status, body}. Under batch_mutex_.
  std::pair<int, nlohmann::json> answer_line(const mock_batch& b, const nlohmann::json& request) {
    const api which = b.which;
    const bool fail_drawn =
        batch_opts_.fail_rate > 0 && detail::seeded_uniform(core_.options().seed ^ 0xba7cULL, batch_line_seq_++) < batch_opts_.fail_rate;
    std::string error, text;
    std::string out;
    if (which == api::openai) {
      // OpenAI: every line is a POST to the batch's own endpoint.
      if (request.value("method", "") != "POST" || request.value("url", "") != b.endpoint)
        error = "Each line must be a POST to " + b.endpoint + ", the batch's endpoint.";
      else
        answer_openai_line(canonical_endpoint(b.endpoint), request.value("body", nlohmann::json()), out, error, text);
    } else {
      detail::messages_request msg;
      if (detail::parse_messages_request(request, msg, error)) out = detail::messages_body(msg);
      text = msg.last_user_text;
    }
    if (error.empty() && (fail_drawn || text.find("[fail]") != std::string::npos))
      error = "The mock server failed this batch line on purpose.";
    if (!error.empty()) {
      const std::string e = which == api::openai
                                ? detail::openai_error_body(error, "invalid_request_error", nullptr, nullptr)
                                : detail::anthropic_error_body("invalid_request_error", error);
      return {400, nlohmann::json::parse(e)};
    }
    return {200, nlohmann::json::parse(out)};
  }

  // Moves a batch along its timeline. Under batch_mutex_.
  void advance(mock_batch& b) {
    if (b.done) return;
    const auto elapsed = std::chrono::steady_clock::now() - b.created;
    const auto delay = std::chrono::milliseconds(std::max(0, batch_opts_.delay_ms));
    std::string output, errors;
    auto add = [](std::string& file, const nlohmann::json& line) { file += line.dump() + "\n"; };
    if (b.cancel_requested) {
      b.done = true;
      b.ended_at = unix_now();
      b.canceled = b.lines.size();
      if (b.which == api::openai) {
        b.status = "cancelled";
      } else {
        b.status = "ended";
        for (const auto& l : b.lines) add(b.results, {{"custom_id", l.first}, {"result", {{"type", "canceled"}}}});
      }
      return;
    }
    if (!b.errors.is_null()) {
      b.done = true;
      b.status = "failed";
      return;
    }
    if (elapsed < delay) {
      if (b.which == api::openai) b.status = elapsed < delay / 3 ? "validating" : "in_progress";
      return;
    }
    const std::size_t answered = batch_opts_.expire ? b.lines.size() / 2 : b.lines.size();
    for (std::size_t i = 0; i < b.lines.size(); ++i) {
      const std::string& cid = b.lines[i].first;
      if (i >= answered) {
        ++b.expired;
        if (b.which == api::openai)
          add(errors, {{"id", "batch_req_" + detail::random_hex(16)}, {"custom_id", cid}, {"response", nullptr},
                       {"error", {{"code", "batch_expired"},
                                  {"message", "This request could not be executed before the completion window expired."}}}});
        else
          add(b.results, {{"custom_id", cid}, {"result", {{"type", "expired"}}}});
        continue;
      }
      auto [status, body] = answer_line(b, b.lines[i].second);
      status == 200 ? ++b.succeeded : ++b.failed;
      if (b.which == api::openai)
        add(status == 200 ? output : errors,
            {{"id", "batch_req_" + detail::random_hex(16)}, {"custom_id", cid},
             {"response", {{"status_code", status}, {"request_id", "req_" + detail::random_hex(16)}, {"body", body}}},
             {"error", nullptr}});
      else if (status == 200)
        add(b.results, {{"custom_id", cid}, {"result", {{"type", "succeeded"}, {"message", body}}}});
      else
        add(b.results, {{"custom_id", cid}, {"result", {{"type", "errored"}, {"error", body}}}});
    }
    b.done = true;
    b.ended_at = unix_now();
    if (b.which == api::openai) {
      b.status = batch_opts_.expire ? "expired" : "completed";
      if (!output.empty()) batch_files_[b.output_file_id = "file-" + detail::random_hex(24)] = std::move(output);
      if (!errors.empty()) batch_files_[b.error_file_id = "file-" + detail::random_hex(24)] = std::move(errors);
    } else {
      b.status = "ended";
    }
  }

  // ---- Gemini API Batch Mode (v1beta), and the Files API it reads its input file from ----
  // POST /v1beta/models/{m}:batchGenerateContent, GET /v1beta/batches/{id}, POST .../{id}:cancel,
  // DELETE .../{id}; POST /upload/v1beta/files (resumable: start, then upload, finalize),
  // GET /v1beta/files/{id}, GET /download/v1beta/files/{id}:download and /v1beta/files/{id}:download,
  // DELETE /v1beta/files/{id}. Batches are Operations whose metadata is the batch (states
  // BATCH_STATE_*, counts as strings); results inline or in files/batch-{id}.
  bool gemini_auth(const httplib::Request& req, httplib::Response& res) {
    batch_calls_.fetch_add(1);
    core_.count_path(req.path);
    if (!core_.has_required_headers(req, res)) return false;
    return detail::gemini_key_ok(core_, req, res);
  }

  static nlohmann::json gemini_field(const nlohmann::json& o, const char* snake, const char* camel) {
    if (!o.is_object()) return nullptr;
    if (o.contains(snake)) return o[snake];
    return o.contains(camel) ? o[camel] : nlohmann::json(nullptr);
  }

  void add_gemini_routes(httplib::Server& svr) {
    using httplib::Request;
    using httplib::Response;
    svr.Post(R"(/v1beta/models/([^/:]+):batchGenerateContent)", [this](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      const nlohmann::json batch = body.is_object() ? body.value("batch", nlohmann::json()) : nlohmann::json();
      const nlohmann::json config = gemini_field(batch, "input_config", "inputConfig");
      const nlohmann::json file = gemini_field(config, "file_name", "fileName");
      const nlohmann::json requests = gemini_field(gemini_field(config, "requests", "requests"), "requests", "requests");
      if (!file.is_string() && !requests.is_array())
        return detail::set_google_error(res, 400, "INVALID_ARGUMENT",
                                        "* BatchGenerateContentRequest.batch.input_config: file_name or requests is required");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      mock_batch b;
      b.gemini = true;
      b.seq = batch_seq_++;
      b.id = detail::random_hex(20);
      b.model = req.matches[1].str();
      b.display_name = gemini_field(batch, "display_name", "displayName").is_string()
                           ? gemini_field(batch, "display_name", "displayName").get<std::string>()
                           : std::string();
      b.input_config = config;
      b.status = "BATCH_STATE_PENDING";
      b.created = std::chrono::steady_clock::now();
      b.created_at = unix_now();
      auto add = [&b](const nlohmann::json& key, const nlohmann::json& request) {
        b.lines.emplace_back(key.is_string() ? key.get<std::string>() : std::string(), request);
      };
      if (file.is_string()) {
        b.gemini_file = true;
        const auto f = batch_files_.find(file.get<std::string>());
        if (f == batch_files_.end()) return detail::set_google_error(res, 404, "NOT_FOUND", "File " + file.get<std::string>() + " not found.");
        const std::string& content = f->second;
        for (std::size_t pos = 0; pos < content.size();) {
          std::size_t nl = content.find('\n', pos);
          if (nl == std::string::npos) nl = content.size();
          const nlohmann::json line = nlohmann::json::parse(content.substr(pos, nl - pos), nullptr, false);
          pos = nl + 1;
          if (line.is_object()) add(line.value("key", nlohmann::json()), line.value("request", nlohmann::json()));
        }
      } else {
        for (const auto& r : requests) {
          const nlohmann::json meta = r.is_object() ? r.value("metadata", nlohmann::json::object()) : nlohmann::json();
          add(meta.is_object() ? meta.value("key", nlohmann::json()) : nlohmann::json(),
              r.is_object() ? r.value("request", nlohmann::json()) : nlohmann::json());
        }
      }
      if (batch_opts_.max_requests > 0 && b.lines.size() > batch_opts_.max_requests) {
        b.done = true;
        b.status = "BATCH_STATE_FAILED";
        b.errors = {{"code", 3}, {"message", "The batch has " + std::to_string(b.lines.size()) +
                                                 " requests; the limit is " + std::to_string(batch_opts_.max_requests) + "."},
                    {"status", "INVALID_ARGUMENT"}};
      }
      const std::string id = b.id;
      auto& stored = batches_[id] = std::move(b);
      detail::set_json(res, 200, gemini_operation(stored).dump());
    });
    auto lookup = [this](const Request& req, Response& res) -> mock_batch* {
      auto it = batches_.find(req.matches[1].str());
      if (it == batches_.end() || !it->second.gemini || it->second.deleted) {
        detail::set_google_error(res, 404, "NOT_FOUND", "Batch batches/" + req.matches[1].str() + " not found.");
        return nullptr;
      }
      return &it->second;
    };
    svr.Get(R"(/v1beta/batches/([^/:]+))", [this, lookup](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (mock_batch* b = lookup(req, res)) {
        advance_gemini(*b);
        detail::set_json(res, 200, gemini_operation(*b).dump());
      }
    });
    svr.Post(R"(/v1beta/batches/([^/:]+):cancel)", [this, lookup](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (mock_batch* b = lookup(req, res)) {
        advance_gemini(*b);
        if (!b->done) {
          b->done = true;
          b->status = "BATCH_STATE_CANCELLED";
          b->ended_at = unix_now();
        }
        detail::set_json(res, 200, "{}");
      }
    });
    svr.Delete(R"(/v1beta/batches/([^/:]+))", [this, lookup](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (mock_batch* b = lookup(req, res)) {
        b->deleted = true;
        detail::set_json(res, 200, "{}");
      }
    });
    svr.Post("/upload/v1beta/files", [this](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      const std::string command = req.get_header_value("X-Goog-Upload-Command");
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (command == "start") {
        if (req.get_header_value("X-Goog-Upload-Protocol") != "resumable")
          return detail::set_google_error(res, 400, "INVALID_ARGUMENT", "X-Goog-Upload-Protocol: resumable is required");
        const std::string id = detail::random_hex(16);
        uploads_[id] = {req.get_header_value("X-Goog-Upload-Header-Content-Length"), std::string()};
        res.set_header("X-Goog-Upload-URL", origin_() + "/upload/v1beta/files?upload_id=" + id + "&upload_protocol=resumable");
        res.set_header("X-Goog-Upload-Status", "active");
        res.status = 200;
        return;
      }
      const auto up = uploads_.find(req.get_param_value("upload_id"));
      if (command.find("upload") == std::string::npos || up == uploads_.end())
        return detail::set_google_error(res, 400, "INVALID_ARGUMENT", "An upload_id and X-Goog-Upload-Command are required");
      if (req.get_header_value("X-Goog-Upload-Offset") != std::to_string(up->second.second.size()))
        return detail::set_google_error(res, 400, "INVALID_ARGUMENT", "X-Goog-Upload-Offset does not match the bytes received");
      up->second.second += req.body;
      if (command.find("finalize") == std::string::npos) {
        res.set_header("X-Goog-Upload-Status", "active");
        res.status = 200;
        return;
      }
      if (up->second.first != std::to_string(up->second.second.size()))
        return detail::set_google_error(res, 400, "INVALID_ARGUMENT",
                                        "The upload's size differs from X-Goog-Upload-Header-Content-Length");
      const std::string name = "files/" + detail::random_hex(12);
      batch_files_[name] = std::move(up->second.second);
      uploads_.erase(up);
      res.set_header("X-Goog-Upload-Status", "final");
      detail::set_json(res, 200, nlohmann::json{{"file", gemini_file_object(name)}}.dump());
    });
    auto download = [this](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const auto it = batch_files_.find("files/" + req.matches[1].str());
      if (it == batch_files_.end()) return detail::set_google_error(res, 404, "NOT_FOUND", "File not found.");
      res.status = 200;
      res.set_content(it->second, "application/octet-stream");
    };
    svr.Get(R"(/download/v1beta/files/([^/:]+):download)", download);
    svr.Get(R"(/v1beta/files/([^/:]+):download)", download);
    svr.Get(R"(/v1beta/files/([^/:]+))", [this](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      const std::string name = "files/" + req.matches[1].str();
      if (batch_files_.count(name) == 0) return detail::set_google_error(res, 404, "NOT_FOUND", "File not found.");
      detail::set_json(res, 200, gemini_file_object(name).dump());
    });
    svr.Delete(R"(/v1beta/files/([^/:]+))", [this](const Request& req, Response& res) {
      if (!gemini_auth(req, res)) return;
      std::lock_guard<std::mutex> lk(batch_mutex_);
      if (batch_files_.erase("files/" + req.matches[1].str()) == 0)
        return detail::set_google_error(res, 404, "NOT_FOUND", "File not found.");
      detail::set_json(res, 200, "{}");
    });
  }

  nlohmann::json gemini_file_object(const std::string& name) const {
    const std::string& content = batch_files_.at(name);
    return {{"name", name}, {"mimeType", "application/jsonl"}, {"sizeBytes", std::to_string(content.size())},
            {"sha256Hash", detail::sha256_hex(content)}, {"uri", origin_() + "/v1beta/" + name}, {"state", "ACTIVE"},
            {"source", name.rfind("files/batch-", 0) == 0 ? "GENERATED" : "UPLOADED"}};
  }

  // Moves a Gemini batch along: pending for the first third of delay_ms, running, then done:
  // every line answered (a line with [fail], or drawn by fail_rate, an error), or with
  // `expire` only the first half, the batch EXPIRED. Under batch_mutex_.
  void advance_gemini(mock_batch& b) {
    if (b.done) return;
    const auto elapsed = std::chrono::steady_clock::now() - b.created;
    const auto delay = std::chrono::milliseconds(std::max(0, batch_opts_.delay_ms));
    if (elapsed < delay) {
      b.status = elapsed < delay / 3 ? "BATCH_STATE_PENDING" : "BATCH_STATE_RUNNING";
      return;
    }
    const std::size_t answered = batch_opts_.expire ? b.lines.size() / 2 : b.lines.size();
    std::string file;
    b.inlined = nlohmann::json::array();
    for (std::size_t i = 0; i < answered; ++i) {
      const bool fail_drawn = batch_opts_.fail_rate > 0 &&
                              detail::seeded_uniform(core_.options().seed ^ 0xba7cULL, batch_line_seq_++) < batch_opts_.fail_rate;
      std::string error, text;
      const std::string answer = detail::gemini_answer_body(b.lines[i].second, b.model, error, text);
      if (error.empty() && (fail_drawn || text.find("[fail]") != std::string::npos))
        error = "The mock server failed this batch line on purpose.";
      nlohmann::json line = {{"key", b.lines[i].first}};
      if (error.empty()) {
        line["response"] = nlohmann::json::parse(answer);
        ++b.succeeded;
      } else {
        line["error"] = {{"code", 400}, {"message", error}, {"status", "INVALID_ARGUMENT"}};
        ++b.failed;
      }
      file += line.dump() + "\n";
      nlohmann::json item = {{"metadata", {{"key", b.lines[i].first}}}};
      for (const char* f : {"response", "error"})
        if (line.contains(f)) item[f] = line[f];
      b.inlined.push_back(std::move(item));
    }
    b.expired = b.lines.size() - answered;
    if (b.gemini_file) {
      b.output_file_id = "files/batch-" + b.id;
      batch_files_[b.output_file_id] = std::move(file);
    }
    b.done = true;
    b.ended_at = unix_now();
    b.status = batch_opts_.expire ? "BATCH_STATE_EXPIRED" : "BATCH_STATE_SUCCEEDED";
  }

  nlohmann::json gemini_operation(const mock_batch& b) const {
    const std::string name = "batches/" + b.id;
    nlohmann::json stats = {{"requestCount", std::to_string(b.lines.size())}};
    const std::size_t pending = b.done ? 0 : b.lines.size();
    for (const auto& [key, n] : {std::pair<const char*, std::size_t>{"successfulRequestCount", b.succeeded},
                                 {"failedRequestCount", b.failed}, {"pendingRequestCount", pending}})
      if (n > 0) stats[key] = std::to_string(n);  // zero counts are left out, as the API does
    nlohmann::json md = {{"@type", "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"},
                         {"model", "models/" + b.model}, {"displayName", b.display_name},
                         {"inputConfig", b.input_config}, {"createTime", iso(b.created_at)},
                         {"updateTime", iso(b.ended_at ? b.ended_at : b.created_at)}, {"batchStats", stats},
                         {"state", b.status}, {"name", name}};
    nlohmann::json op = {{"name", name}, {"metadata", md}};
    if (!b.done) return op;
    op["done"] = true;
    if (b.ended_at) op["metadata"]["endTime"] = iso(b.ended_at);
    if (!b.errors.is_null()) {
      op["error"] = b.errors;
      return op;
    }
    if (b.status == "BATCH_STATE_CANCELLED") return op;
    nlohmann::json output = b.gemini_file ? nlohmann::json{{"responsesFile", b.output_file_id}}
                                          : nlohmann::json{{"inlinedResponses", {{"inlinedResponses", b.inlined}}}};
    op["metadata"]["output"] = output;
    output["@type"] = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput";
    op["response"] = std::move(output);
    return op;
  }

  nlohmann::json batch_object(const mock_batch& b) const {
    auto opt = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
    auto at = [](std::int64_t t) { return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(t); };
    if (b.which == api::openai)
      return {{"id", b.id}, {"object", "batch"}, {"endpoint", b.endpoint}, {"errors", b.errors},
              {"input_file_id", b.input_file_id}, {"completion_window", b.completion_window}, {"status", b.status},
              {"output_file_id", opt(b.output_file_id)}, {"error_file_id", opt(b.error_file_id)},
              {"created_at", b.created_at}, {"expires_at", b.created_at + 86400},
              {"completed_at", b.status == "completed" ? at(b.ended_at) : nullptr},
              {"expired_at", b.status == "expired" ? at(b.ended_at) : nullptr},
              {"cancelling_at", at(b.cancelled_at)}, {"cancelled_at", b.status == "cancelled" ? at(b.ended_at) : nullptr},
              {"request_counts", {{"total", b.lines.size()}, {"completed", b.succeeded}, {"failed", b.failed + b.expired}}},
              {"metadata", b.metadata}};
    auto ts = [](std::int64_t t) { return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(iso(t)); };
    const std::size_t processing = b.done ? 0 : b.lines.size();
    return {{"id", b.id}, {"type", "message_batch"}, {"processing_status", b.status},
            {"request_counts", {{"processing", processing}, {"succeeded", b.succeeded}, {"errored", b.failed},
                                {"canceled", b.canceled}, {"expired", b.expired}}},
            {"ended_at", ts(b.ended_at)}, {"created_at", iso(b.created_at)}, {"expires_at", iso(b.created_at + 86400)},
            {"archived_at", nullptr}, {"cancel_initiated_at", ts(b.cancelled_at)},
            {"results_url", b.done ? nlohmann::json(origin_() + "/v1/messages/batches/" + b.id + "/results") : nlohmann::json(nullptr)}};
  }

  server_core& core_;
  std::function<std::string()> origin_;
  mutable std::mutex batch_mutex_;
  batch_mock_options batch_opts_;
  std::map<std::string, std::string> batch_files_;
  std::map<std::string, mock_batch> batches_;
  std::uint64_t batch_seq_ = 0, batch_line_seq_ = 0;
  std::map<std::string, std::pair<std::string, std::string>> uploads_;  // Gemini uploads: id -> {declared size, bytes}
  std::atomic<std::size_t> batch_calls_{0};
};

}  // namespace detail
}  // namespace requests_engine_mock
