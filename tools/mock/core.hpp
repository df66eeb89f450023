// requests_engine mock: what every model route shares (counters and the request log, API keys,
// forced pauses, injected faults, rate limits, latency), and the OpenAI and Anthropic routes.
#pragma once

#include "anthropic.hpp"
#include "common.hpp"
#include "completions.hpp"
#include "embeddings.hpp"
#include "openai.hpp"
#include "rate_limiter.hpp"
#include "responses.hpp"
#include "sockets.hpp"
#include "streaming.hpp"
#include "azure.hpp"  // after streaming.hpp: its ojson would shadow the others' own

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace requests_engine_mock {

// server::chat_hook (see server::on_chat).
using chat_hook = std::function<bool(const httplib::Request&, httplib::Response&)>;

/// One model request as the server saw it (the last max_log_records, in the order they finished).
struct request_record {
  std::chrono::steady_clock::time_point arrival;
  std::chrono::system_clock::time_point arrival_wall;
  std::chrono::steady_clock::time_point finished;
  std::string path;
  std::string key_fingerprint;  // "" when the request carried no key
  int status = 0;               // 0: the connection was dropped without an answer
  std::string user_text;        // the last user message (its first max_logged_text bytes)
  std::string body_sha256;
  std::string body;             // only with server_options::log_request_bodies
};

namespace detail {

enum class api { openai, openai_completions, openai_responses, openai_embeddings, anthropic };
enum class key_verdict { ok, missing, wrong, invalid, out_of_credit };
enum class fault { none, reset, status_500, status_429, overload, truncate, stall };

// The state and the steps that every model route shares. The server owns one and forwards its
// public settings and statistics here; the route parts (google_aws.hpp, batch.hpp) get a
// reference and use the part below "for the routes". Thread-safe as the server is.
class server_core {
 public:
  // opts and on_chat are the server's own members, which outlive this.
  server_core(const server_options& opts, chat_hook& on_chat) : opts_(opts), on_chat_(on_chat) {
    latency_ms_ = std::max(0, opts_.latency_ms);
    latency_jitter_ms_ = std::max(0, opts_.latency_jitter_ms);
    set_rate_limits(opts_.rpm, opts_.tpm, opts_.input_tpm, opts_.output_tpm);
    set_fault_rates(opts_.fail_500, opts_.fail_429, opts_.fail_reset, opts_.fail_overload, opts_.fail_truncate,
                    opts_.fail_stall);
    set_stream_fault_rates(opts_.fail_stream_cut, opts_.fail_stream_error, opts_.fail_stream_stall);
    if (opts_.stream_chunk_bytes == 0)
      throw std::invalid_argument("requests_engine_mock::server: stream_chunk_bytes must be at least 1");
  }

  // ---- settings and statistics, for server (documented there) ----

  std::size_t requests() const { return requests_.load(); }
  std::size_t max_in_flight() const { return max_in_flight_.load(); }
  std::size_t in_flight() const { return in_flight_.load(); }
  void reset_stats() {
    requests_.store(0);
    streamed_.store(0);
    max_in_flight_.store(in_flight_.load());
    {
      std::lock_guard<std::mutex> lk(records_mutex_);
      bodies_.clear();
      headers_.clear();
    }
    std::lock_guard<std::mutex> lk(stats_mutex_);
    by_path_.clear();
    by_key_.clear();
    by_status_.clear();
    log_.clear();
  }

  void set_on_chat(chat_hook hook) {
    std::lock_guard<std::mutex> lk(hook_mutex_);
    on_chat_ = std::move(hook);
  }

  void set_latency(int latency_ms, int latency_jitter_ms = 0) {
    latency_ms_.store(std::max(0, latency_ms));
    latency_jitter_ms_.store(std::max(0, latency_jitter_ms));
  }

  std::vector<nlohmann::json> received_bodies() const {
    std::lock_guard<std::mutex> lk(records_mutex_);
    return std::vector<nlohmann::json>(bodies_.begin(), bodies_.end());
  }
  std::vector<httplib::Headers> received_headers() const {
    std::lock_guard<std::mutex> lk(records_mutex_);
    return std::vector<httplib::Headers>(headers_.begin(), headers_.end());
  }

  static constexpr std::size_t max_records = 1000;
  // Bounded so that a long benchmark keeps its memory: at most about 20 MB of records.
  static constexpr std::size_t max_log_records = 20000;
  static constexpr std::size_t max_logged_text = 1000;

  std::vector<request_record> request_log() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return std::vector<request_record>(log_.begin(), log_.end());
  }
  std::vector<std::chrono::steady_clock::time_point> arrival_times() const {
    std::vector<std::chrono::steady_clock::time_point> out;
    {
      std::lock_guard<std::mutex> lk(stats_mutex_);
      for (const auto& r : log_) out.push_back(r.arrival);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::size_t requests_for_path(const std::string& path) const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_path_.find(path);
    return it == by_path_.end() ? 0 : it->second;
  }
  std::size_t requests_for_key(const std::string& api_key) const {
    const std::string fp = detail::key_fingerprint(api_key);
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_key_.find(fp);
    return it == by_key_.end() ? 0 : it->second;
  }
  std::map<std::string, std::size_t> requests_by_key() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return by_key_;
  }
  std::size_t responses_with_status(int status) const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    const auto it = by_status_.find(status);
    return it == by_status_.end() ? 0 : it->second;
  }
  std::map<std::string, std::size_t> requests_by_path() const {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    return by_path_;
  }

  void set_rate_limits(double rpm, double tpm, double input_tpm = 0, double output_tpm = 0) {
    for (double v : {rpm, tpm, input_tpm, output_tpm})
      if (!(v >= 0) || !std::isfinite(v))
        throw std::invalid_argument("requests_engine_mock::server: a rate limit must be a finite number >= 0");
    limiter_.set_limits(detail::limit_amounts{rpm, tpm, input_tpm, output_tpm});
  }

  void set_fault_rates(double fail_500, double fail_429, double fail_reset, double fail_overload = 0,
                       double fail_truncate = 0, double fail_stall = 0) {
    double sum = 0;
    for (double v : {fail_500, fail_429, fail_reset, fail_overload, fail_truncate, fail_stall}) {
      if (!(v >= 0 && v <= 1))
        throw std::invalid_argument("requests_engine_mock::server: a failure rate must be in [0, 1]");
      sum += v;
    }
    if (sum > 1 + 1e-9)
      throw std::invalid_argument("requests_engine_mock::server: the failure rates add up to more than 1");
    std::lock_guard<std::mutex> lk(fault_mutex_);
    fault_rates_ = {fail_500, fail_429, fail_reset, fail_overload, fail_truncate, fail_stall};
    fault_seq_ = 0;
    faults_on_.store(sum > 0);
  }

  std::size_t streamed_requests() const { return streamed_.load(); }

  void set_stream_fault_rates(double cut, double error_event, double stall) {
    double sum = 0;
    for (double v : {cut, error_event, stall}) {
      if (!(v >= 0 && v <= 1))
        throw std::invalid_argument("requests_engine_mock::server: a failure rate must be in [0, 1]");
      sum += v;
    }
    if (sum > 1 + 1e-9)
      throw std::invalid_argument("requests_engine_mock::server: the stream failure rates add up to more than 1");
    std::lock_guard<std::mutex> lk(stream_fault_mutex_);
    stream_fault_rates_ = {cut, error_event, stall};
    stream_fault_seq_ = 0;
  }

  void fail_next_streams(stream_fault f, std::size_t count) {
    std::lock_guard<std::mutex> lk(stream_fault_mutex_);
    forced_stream_fault_ = f;
    forced_stream_count_ = count;
  }

  void pause_requests(std::size_t count, std::chrono::seconds retry_after) {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_count_ = count;
    pause_count_retry_after_ = retry_after;
    pause_on_.store(pause_count_ > 0 || pause_until_ > std::chrono::steady_clock::now());
  }
  void pause_for(std::chrono::milliseconds window) {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_until_ = std::chrono::steady_clock::now() + window;
    pause_on_.store(true);
  }
  void end_pause() {
    std::lock_guard<std::mutex> lk(pause_mutex_);
    pause_count_ = 0;
    pause_until_ = {};
    pause_on_.store(false);
  }

  // start(): opens the request log, if there is one. Throws std::runtime_error.
  void open_log() {
    if (!opts_.log_requests_path.empty()) {
      std::lock_guard<std::mutex> lk(log_mutex_);
      log_file_.open(opts_.log_requests_path, std::ios::out | std::ios::app);
      if (!log_file_)
        throw std::runtime_error("requests_engine_mock::server: cannot open the request log '" +
                                 opts_.log_requests_path + "'");
      log_file_is_open_.store(true);
    }
  }
  // stop(): closes it.
  void close_log() {
    std::lock_guard<std::mutex> lk(log_mutex_);
    log_file_is_open_.store(false);
    if (log_file_.is_open()) log_file_.close();
  }

  // start(): the latency sleeps may run.
  void clear_stopping() {
    std::lock_guard<std::mutex> lk(sleep_mutex_);
    stopping_ = false;
  }
  // stop(): every latency sleep ends now.
  void interrupt_sleeps() {
    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      stopping_ = true;
    }
    sleep_cv_.notify_all();
  }

  // ---- for the routes ----

  const server_options& options() const { return opts_; }

  // POST /v1/chat/completions, /v1/completions, /v1/responses and /v1/messages.
  // `azure`: Azure OpenAI's routes (azure.hpp): the key in api-key, the answers annotated.
  void handle_model_request(api which, const httplib::Request& req, httplib::Response& res, bool azure = false) {
    requests_.fetch_add(1);
    in_flight_guard guard(*this);
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    record(body, req.headers);
    const std::optional<std::string> key =
        azure && req.has_header("api-key") ? req.get_header_value("api-key") : presented_key(which, req);
    request_scope scope(*this, req, res, detail::key_fingerprint(key.value_or(std::string())), body);

    const bool openai_shaped = which != api::anthropic;
    const char* id_header = openai_shaped ? "x-request-id" : "request-id";
    const std::string request_id = "req_" + detail::random_hex(24);
    if (const chat_hook hook = current_hook()) {
      if (hook(req, res)) {
        if (!res.has_header(id_header)) res.set_header(id_header, request_id);
        return;
      }
    }
    res.set_header(id_header, request_id);
    if (!has_required_headers(req, res)) return;

    // Auth, then validation, then the rate-limit and fault machinery, then the answer.
    detail::limit_amounts cost{};
    const key_verdict verdict = check_key(key);
    if (openai_shaped) {
      switch (verdict) {
        case key_verdict::ok:
          break;
        case key_verdict::out_of_credit:
          detail::set_openai_error(res, 429,
                                   "You exceeded your current quota, please check your plan and billing details.",
                                   "insufficient_quota", nullptr, "insufficient_quota");
          return;
        default:
          detail::set_openai_error(res, 401, "Incorrect API key provided.", "invalid_request_error", nullptr,
                                   "invalid_api_key");
          return;
      }
      std::string error;
      nlohmann::json param;
      if (which == api::openai_completions) {
        detail::completions_request completions;
        if (!detail::parse_completions_request(body, completions, error, param)) {
          detail::set_openai_error(res, 400, error, "invalid_request_error", param, nullptr);
          return;
        }
        const double in = static_cast<double>(detail::estimate_tokens(detail::completions_prompt_bytes(completions)));
        const double out = static_cast<double>(completions.max_tokens.value_or(0)) *
                           static_cast<double>(completions.prompts.size());
        cost = {1, in + out, in, out};
        // Limits and faults in OpenAI's shapes, counted on this route's own path.
        if (!serve_or_refuse(api::openai, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope))
          return;
        simulate_latency();
        const std::string answer = detail::completions_body(completions);
        if (completions.stream.stream)
          return send_stream(
              res, detail::openai_completions_stream(answer, completions.stream.include_usage, opts_.stream_chunk_bytes),
              scope);
        detail::set_json(res, 200, answer);
        return;
      }
      if (which == api::openai_responses) {
        detail::responses_request responses;
        detail::responses_refusal why;
        if (!detail::parse_responses_request(body, responses, why)) {
          detail::set_openai_error(res, 400, why.message, "invalid_request_error", why.param, why.code);
          return;
        }
        const double in = static_cast<double>(detail::estimate_tokens(responses.prompt_bytes));
        const double out = static_cast<double>(responses.max_output_tokens.value_or(0));
        cost = {1, in + out, in, out};
        if (!serve_or_refuse(api::openai, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope))
          return;
        simulate_latency();
        const std::string answer = detail::responses_body(responses);
        if (responses.stream) return send_stream(res, detail::responses_stream(answer, opts_.stream_chunk_bytes), scope);
        detail::set_json(res, 200, answer);
        return;
      }
      if (which == api::openai_embeddings) {
        detail::embeddings_request embed;
        if (!detail::parse_embeddings_request(body, embed, error, param)) {
          detail::set_openai_error(res, 400, error, "invalid_request_error", param, nullptr);
          return;
        }
        const double in = static_cast<double>(detail::estimate_tokens(detail::embeddings_input_bytes(embed)));
        cost = {1, in, in, 0};
        if (!serve_or_refuse(api::openai, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope))
          return;
        simulate_latency();
        detail::set_json(res, 200, detail::embeddings_body(embed));
        return;
      }
      detail::chat_request chat;
      if (!detail::parse_chat_request(body, chat, error, param)) {
        detail::set_openai_error(res, 400, error, "invalid_request_error", param, nullptr);
        return;
      }
      if (detail::is_responses_only_model(chat.model)) {
        detail::set_openai_error(res, 404,
                                 "This model is only supported in v1/responses and not in v1/chat/completions.",
                                 "invalid_request_error", "model", nullptr);
        return;
      }
      if (azure && req.body.find(detail::azure_filter_prompt_marker) != std::string::npos)
        return detail::set_azure_prompt_filtered(res);
      const double in = static_cast<double>(detail::estimate_tokens(chat.prompt_bytes));
      const double out = static_cast<double>(chat.max_tokens.value_or(0));
      cost = {1, in + out, in, out};
      if (!serve_or_refuse(which, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope)) return;
      simulate_latency();
      std::string answer = detail::chat_completion_body(chat);
      if (azure)
        answer = detail::azure_chat_answer(
            answer, req.body.find(detail::azure_filter_completion_marker) != std::string::npos);
      if (chat.stream.stream) {
        detail::stream_plan plan = detail::openai_chat_stream(answer, chat.stream.include_usage, opts_.stream_chunk_bytes);
        if (azure) detail::azure_annotate_stream(plan, answer);
        return send_stream(res, std::move(plan), scope);
      }
      detail::set_json(res, 200, answer);
      return;
    }

    switch (verdict) {
      case key_verdict::ok:
        break;
      case key_verdict::missing:
        detail::set_anthropic_error(res, 401, "authentication_error", "x-api-key header is required");
        return;
      case key_verdict::out_of_credit:
        detail::set_anthropic_error(res, 400, "invalid_request_error",
                                    "Your credit balance is too low to access the Anthropic API. Please go to Plans "
                                    "& Billing to upgrade or purchase credits.");
        return;
      default:
        detail::set_anthropic_error(res, 401, "authentication_error", "invalid x-api-key");
        return;
    }
    if (!req.has_header("anthropic-version")) {
      detail::set_anthropic_error(res, 400, "invalid_request_error", "anthropic-version: header is required");
      return;
    }
    detail::messages_request msg;
    std::string error;
    if (!detail::parse_messages_request(body, msg, error)) {
      detail::set_anthropic_error(res, 400, "invalid_request_error", error);
      return;
    }
    const double in = static_cast<double>(detail::estimate_tokens(msg.prompt_bytes));
    const double out = static_cast<double>(msg.max_tokens);
    cost = {1, in + out, in, out};
    if (!serve_or_refuse(which, req, res, req.path + "\n" + key.value_or(std::string()), cost, scope)) return;
    simulate_latency();
    apply_prompt_cache(msg);
    const std::string answer = detail::messages_body(msg);
    if (msg.stream) return send_stream(res, detail::anthropic_stream(answer, opts_.stream_chunk_bytes), scope);
    detail::set_json(res, 200, answer);
  }

  // Anthropic's prompt cache, shared by its three routes (Messages, Bedrock, Vertex AI): the
  // longest marked prefix still cached is read, the marked prefixes after it are written (each
  // kept 5 minutes or an hour from its last use). A prefix under the minimum is not cached.
  static constexpr std::size_t prompt_cache_min_tokens = 1024;
  void apply_prompt_cache(detail::messages_request& msg) {
    if (msg.cache_marks.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lk(prompt_cache_mutex_);
    std::size_t hit_tokens = 0;
    std::size_t first_after_hit = 0;
    for (std::size_t i = msg.cache_marks.size(); i-- > 0;) {
      auto found = prompt_cache_.find(msg.cache_marks[i].key);
      if (found != prompt_cache_.end() && found->second > now) {
        hit_tokens = detail::estimate_tokens(msg.cache_marks[i].prefix_bytes);
        first_after_hit = i + 1;
        break;
      }
    }
    msg.cache_read_tokens = hit_tokens;
    std::size_t before = hit_tokens;
    for (std::size_t i = 0; i < msg.cache_marks.size(); ++i) {
      const detail::cache_mark& mark = msg.cache_marks[i];
      const std::size_t tokens = detail::estimate_tokens(mark.prefix_bytes);
      if (tokens < prompt_cache_min_tokens) continue;
      prompt_cache_[mark.key] = now + (mark.one_hour ? std::chrono::minutes(60) : std::chrono::minutes(5));
      if (i < first_after_hit || tokens <= before) continue;
      msg.cache_write_tokens += tokens - before;
      if (mark.one_hour) msg.cache_write_1h_tokens += tokens - before;
      before = tokens;
    }
  }

  // A model route with rules of its own: counted, recorded and offered to the on_chat hook as
  // handle_model_request does (without a key fingerprint); then `handle` gets the parsed body
  // (and the request's scope, for send_stream, if it takes two arguments).
  template <class Handle>
  void serve_model_route(const httplib::Request& req, httplib::Response& res, Handle&& handle) {
    requests_.fetch_add(1);
    in_flight_guard guard(*this);
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    record(body, req.headers);
    request_scope scope(*this, req, res, std::string(), body);
    if (const chat_hook hook = current_hook())
      if (hook(req, res)) return;
    if (!has_required_headers(req, res)) return;
    if constexpr (std::is_invocable_v<Handle&, const nlohmann::json&, request_scope&>)
      handle(body, scope);
    else
      handle(body);
  }

  // Answers 200 with `plan`'s events, one at a time through a chunked content provider (so each
  // goes out as it is written), stream_event_delay_ms apart, with a stream fault if one is due.
  // The request is logged, and counted in flight, until its stream ends.
  template <class Scope>
  void send_stream(httplib::Response& res, detail::stream_plan plan, Scope& scope) {
    streamed_.fetch_add(1);
    auto st = std::make_shared<stream_state>();
    st->fault = draw_stream_fault();
    st->stop_at = st->fault == stream_fault::none ? plan.events.size() : plan.events.size() / 2;
    st->plan = std::move(plan);
    res.status = 200;
    for (const auto& [name, value] : st->plan.headers) res.set_header(name, value);
    res.set_header("Cache-Control", "no-cache");
    auto rec = scope.hand_over();
    in_flight_.fetch_add(1);
    res.set_chunked_content_provider(
        st->plan.content_type,
        [this, st](std::size_t, httplib::DataSink& sink) { return next_stream_event(*st, sink); },
        [this, rec](bool) {
          in_flight_.fetch_sub(1);
          if (!rec) return;
          try {
            rec->finished = std::chrono::steady_clock::now();
            finish(std::move(*rec));
          } catch (...) {
          }
        });
  }

  // A route that is not a model request but is counted by path (requests_by_path()).
  void count_path(const std::string& path) {
    std::lock_guard<std::mutex> lk(stats_mutex_);
    ++by_path_[path];
  }

  // server_options::required_headers, checked like a gateway's: false (and a 401) when one is
  // missing or different (never saying what was expected: it may be a key).
  bool has_required_headers(const httplib::Request& req, httplib::Response& res) const {
    for (const auto& [name, value] : opts_.required_headers) {
      if (req.has_header(name) && detail::constant_time_equal(req.get_header_value(name), value)) continue;
      detail::set_openai_error(res, 401, "the gateway needs the header " + name + " (missing or wrong)",
                               "invalid_request_error", nullptr, "gateway_header");
      return false;
    }
    return true;
  }

  // OpenAI: "Authorization: Bearer <key>"; Anthropic: "x-api-key". nullopt: no key sent.
  static std::optional<std::string> presented_key(api which, const httplib::Request& req) {
    if (which == api::anthropic) {
      if (!req.has_header("x-api-key")) return std::nullopt;
      return req.get_header_value("x-api-key");
    }
    if (!req.has_header("Authorization")) return std::nullopt;
    const std::string value = req.get_header_value("Authorization");
    static const std::string scheme = "bearer ";
    if (value.size() < scheme.size()) return std::string();
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i]) return std::string();
    std::size_t start = scheme.size();
    while (start < value.size() && value[start] == ' ') ++start;
    return value.substr(start);
  }

  key_verdict check_key(const std::optional<std::string>& key) const {
    if (key && key_in(opts_.invalid_api_keys, *key)) return key_verdict::invalid;
    if (key && key_in(opts_.quota_exhausted_api_keys, *key)) return key_verdict::out_of_credit;
    if (opts_.api_key.empty() && opts_.extra_api_keys.empty()) return key_verdict::ok;
    if (!key) return key_verdict::missing;
    if (detail::constant_time_equal(*key, opts_.api_key) && !opts_.api_key.empty()) return key_verdict::ok;
    if (key_in(opts_.extra_api_keys, *key)) return key_verdict::ok;
    return key_verdict::wrong;
  }

  void simulate_latency() {
    const int base = latency_ms_.load();
    const int jitter = latency_jitter_ms_.load();
    int ms = base;
    if (jitter > 0) ms += std::uniform_int_distribution<int>(0, jitter)(detail::rng());
    if (ms <= 0) return;
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    sleep_cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

  // Waits `ms`, or less if stop() comes first: then false.
  bool wait_unless_stopping(int ms) {
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    if (ms > 0) sleep_cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_; });
    return !stopping_;
  }

  fault draw_fault() {
    if (!faults_on_.load()) return fault::none;
    std::lock_guard<std::mutex> lk(fault_mutex_);
    const double u = detail::seeded_uniform(opts_.seed, fault_seq_++);
    double edge = fault_rates_[2];
    if (u < edge) return fault::reset;
    if (u < (edge += fault_rates_[0])) return fault::status_500;
    if (u < (edge += fault_rates_[1])) return fault::status_429;
    if (u < (edge += fault_rates_[3])) return fault::overload;
    // Drawn last, so that a seed gives the same faults as before these two existed.
    if (u < (edge += fault_rates_[4])) return fault::truncate;
    if (u < (edge += fault_rates_[5])) return fault::stall;
    return fault::none;
  }

  static void set_retry_after(api which, httplib::Response& res, std::chrono::milliseconds wait) {
    res.set_header("retry-after", std::to_string(detail::ceil_seconds(wait)));
    if (which == api::openai) res.set_header("retry-after-ms", std::to_string(std::max<std::int64_t>(1, wait.count())));
  }

  // The model route's answers in the provider's own error shapes.
  static void rate_limit_error(api which, httplib::Response& res, const std::string& message) {
    if (which == api::openai)
      detail::set_openai_error(res, 429, message, "requests", nullptr, "rate_limit_exceeded");
    else
      detail::set_anthropic_error(res, 429, "rate_limit_error", message);
  }

 private:
  struct stream_state {
    detail::stream_plan plan;
    stream_fault fault = stream_fault::none;
    std::size_t stop_at = 0;  // events sent before the fault strikes
    std::size_t next = 0;
  };

  // The fault of the next streamed answer: a forced one (fail_next_streams), else a draw.
  stream_fault draw_stream_fault() {
    std::lock_guard<std::mutex> lk(stream_fault_mutex_);
    if (forced_stream_count_ > 0) {
      --forced_stream_count_;
      return forced_stream_fault_;
    }
    if (stream_fault_rates_[0] + stream_fault_rates_[1] + stream_fault_rates_[2] <= 0) return stream_fault::none;
    // Another stream of draws than the request faults', so that the two rates do not correlate.
    const double u = detail::seeded_uniform(opts_.seed ^ 0x53545245414dULL, stream_fault_seq_++);
    double edge = stream_fault_rates_[0];
    if (u < edge) return stream_fault::cut;
    if (u < (edge += stream_fault_rates_[1])) return stream_fault::error_event;
    if (u < (edge += stream_fault_rates_[2])) return stream_fault::stall;
    return stream_fault::none;
  }

  // The content provider of a stream: one event per call. False closes the connection.
  bool next_stream_event(stream_state& st, httplib::DataSink& sink) {
    if (st.next > 0 && !wait_unless_stopping(opts_.stream_event_delay_ms)) return false;
    if (st.next < st.stop_at) {
      const std::string& event = st.plan.events[st.next++];
      if (!sink.write(event.data(), event.size())) return false;
      if (st.next == st.plan.events.size()) sink.done();
      return true;
    }
    switch (st.fault) {
      case stream_fault::error_event: {
        const std::string event = st.plan.error_event(st.next);
        if (!sink.write(event.data(), event.size())) return false;
        sink.done();
        return true;
      }
      case stream_fault::stall:
        wait_unless_stopping(std::max(0, opts_.stream_stall_ms));
        return false;
      default:  // cut (none never gets here: its last event ends the stream)
        return false;
    }
  }

  struct in_flight_guard {
    explicit in_flight_guard(server_core& s) : s_(s) {
      const std::size_t now = s_.in_flight_.fetch_add(1) + 1;
      std::size_t prev = s_.max_in_flight_.load();
      while (prev < now && !s_.max_in_flight_.compare_exchange_weak(prev, now)) {
      }
    }
    ~in_flight_guard() { s_.in_flight_.fetch_sub(1); }
    in_flight_guard(const in_flight_guard&) = delete;
    in_flight_guard& operator=(const in_flight_guard&) = delete;
    server_core& s_;
  };

  void record(const nlohmann::json& body, const httplib::Headers& headers) {
    std::lock_guard<std::mutex> lk(records_mutex_);
    bodies_.push_back(body.is_discarded() ? nlohmann::json(nullptr) : body);
    headers_.push_back(headers);
    while (bodies_.size() > max_records) bodies_.pop_front();
    while (headers_.size() > max_records) headers_.pop_front();
  }

  chat_hook current_hook() const {
    std::lock_guard<std::mutex> lk(hook_mutex_);
    return on_chat_;
  }

  static bool key_in(const std::vector<std::string>& keys, const std::string& key) {
    bool found = false;
    for (const auto& k : keys) found = detail::constant_time_equal(key, k) || found;
    return found;
  }

  // The retry-after of a forced pause, or nullopt when there is none.
  std::optional<std::chrono::milliseconds> take_pause(std::chrono::steady_clock::time_point now) {
    if (!pause_on_.load()) return std::nullopt;
    std::lock_guard<std::mutex> lk(pause_mutex_);
    if (pause_count_ > 0) {
      --pause_count_;
      return std::chrono::duration_cast<std::chrono::milliseconds>(pause_count_retry_after_);
    }
    if (now < pause_until_)
      return std::max(std::chrono::milliseconds(1),
                      std::chrono::ceil<std::chrono::milliseconds>(pause_until_ - now));
    pause_on_.store(false);
    return std::nullopt;
  }

  // x-ratelimit-* (OpenAI) or anthropic-ratelimit-* (Anthropic), for each configured limit.
  static void set_limit_headers(api which, httplib::Response& res, const detail::limit_decision& d) {
    static const char* const openai_names[] = {"requests", "tokens", nullptr, nullptr};
    static const char* const anthropic_names[] = {"requests", "tokens", "input-tokens", "output-tokens"};
    const auto wall = std::chrono::system_clock::now();
    for (std::size_t k = 0; k < detail::limit_kinds; ++k) {
      const detail::limit_view& v = d.views[k];
      if (v.limit <= 0) continue;
      const auto limit = std::to_string(static_cast<std::int64_t>(v.limit));
      if (which == api::openai) {
        if (openai_names[k] == nullptr) continue;
        const std::string n = openai_names[k];
        res.set_header("x-ratelimit-limit-" + n, limit);
        res.set_header("x-ratelimit-remaining-" + n, std::to_string(v.remaining));
        res.set_header("x-ratelimit-reset-" + n, detail::go_duration(v.reset));
      } else {
        const std::string n = std::string("anthropic-ratelimit-") + anthropic_names[k];
        res.set_header(n + "-limit", limit);
        res.set_header(n + "-remaining", std::to_string(v.remaining));
        // Rounded up: the bucket is surely full again at that second.
        res.set_header(n + "-reset", detail::rfc3339_utc(wall + std::chrono::ceil<std::chrono::seconds>(v.reset), false));
      }
    }
  }

  // Counts, logs and records one model request when its handler is done, whatever the path out.
  struct request_scope {
    request_scope(server_core& s, const httplib::Request& req, const httplib::Response& res, std::string key_fp,
                  const nlohmann::json& body)
        : s_(s), res_(res) {
      rec_.arrival = std::chrono::steady_clock::now();
      rec_.arrival_wall = std::chrono::system_clock::now();
      rec_.path = req.path;
      rec_.key_fingerprint = std::move(key_fp);
      rec_.user_text = detail::utf8_prefix(detail::last_user_text(body), max_logged_text);
      rec_.body_sha256 = detail::sha256_hex(req.body);
      if (s.opts_.log_request_bodies && s.log_file_is_open_.load()) rec_.body = req.body;
      std::lock_guard<std::mutex> lk(s_.stats_mutex_);
      ++s_.by_path_[rec_.path];
      ++s_.by_key_[rec_.key_fingerprint];
    }
    ~request_scope() {
      if (handed_over_) return;
      try {
        rec_.status = dropped ? 0 : res_.status;
        rec_.finished = std::chrono::steady_clock::now();
        s_.finish(std::move(rec_));
      } catch (...) {
      }
    }
    request_scope(const request_scope&) = delete;
    request_scope& operator=(const request_scope&) = delete;
    bool dropped = false;

    // A streamed answer: the record, status 200, to be finished when the stream ends.
    std::shared_ptr<request_record> hand_over() {
      handed_over_ = true;
      rec_.status = 200;
      return std::make_shared<request_record>(std::move(rec_));
    }

   private:
    bool handed_over_ = false;
    server_core& s_;
    const httplib::Response& res_;
    request_record rec_;
  };

  void finish(request_record rec) {
    if (log_file_is_open_.load()) {
      nlohmann::ordered_json line;
      line["time"] = detail::rfc3339_utc(rec.arrival_wall, true);
      line["path"] = rec.path;
      line["key"] = rec.key_fingerprint.empty() ? nlohmann::ordered_json(nullptr)
                                                : nlohmann::ordered_json(rec.key_fingerprint);
      line["status"] = rec.status;
      line["ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(rec.finished - rec.arrival).count();
      line["user"] = rec.user_text;
      line["body_sha256"] = rec.body_sha256;
      if (opts_.log_request_bodies) {
        nlohmann::ordered_json body = nlohmann::ordered_json::parse(rec.body, nullptr, false);
        line["body"] = body.is_discarded() ? nlohmann::ordered_json(rec.body) : std::move(body);
        std::string().swap(rec.body);  // for the file only: request_log() stays small
      }
      // Replaced, not thrown: a log line must never turn into a 500.
      const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      std::lock_guard<std::mutex> lk(log_mutex_);
      if (log_file_.is_open()) {
        log_file_ << text;
        log_file_.flush();  // a reader (or a kill) sees every finished request
      }
    }
    std::lock_guard<std::mutex> lk(stats_mutex_);
    ++by_status_[rec.status];
    log_.push_back(std::move(rec));
    while (log_.size() > max_log_records) log_.pop_front();
  }

  // A forced pause, an injected fault or the rate limit may answer instead of the model:
  // `limit_key` names the buckets (each route has its own, as two providers would).
  // then this has written that answer and returns false. Otherwise the request has taken its
  // cost from the limits, the limit headers are set, and the caller answers.
  bool serve_or_refuse(api which, const httplib::Request& req, httplib::Response& res, const std::string& limit_key,
                       const detail::limit_amounts& cost, request_scope& scope) {
    const auto now = std::chrono::steady_clock::now();
    const bool limited = limiter_.enabled();
    if (const auto pause = take_pause(now)) {
      if (limited) set_limit_headers(which, res, limiter_.check(limit_key, cost, false, now));
      rate_limit_error(which, res, "Rate limit reached: the server is pausing all requests. Please try again in " +
                                       detail::go_duration(*pause) + ".");
      set_retry_after(which, res, *pause);
      return false;
    }
    switch (draw_fault()) {
      case fault::none:
        break;
      case fault::stall:
        // Silence for stream_stall_ms (a client's read timeout is what ends it), then as a reset.
        wait_unless_stopping(std::max(0, opts_.stream_stall_ms));
        [[fallthrough]];
      case fault::reset:
        if (detail::drop_connection(req)) {
          scope.dropped = true;
          res.status = 200;
          res.set_content("dropped", "text/plain");  // never reaches the client: its socket is shut down
          return false;
        }
        // No descriptor to shut down: headers and half a body, then the connection ends.
        [[fallthrough]];
      case fault::truncate:
        // A 200 whose Content-Length promises 4096 bytes, 14 of them sent, then the connection ends.
        scope.dropped = true;
        res.status = 200;
        res.set_content_provider(4096, "application/json", [](std::size_t, std::size_t, httplib::DataSink& sink) {
          static const char part[] = "{\"id\":\"cut-off";
          sink.write(part, sizeof part - 1);
          return false;
        });
        return false;
      case fault::status_500:
        if (which == api::openai)
          detail::set_openai_error(res, 500, "The server had an error while processing your request. Sorry about that!",
                                   "server_error", nullptr, nullptr);
        else
          detail::set_anthropic_error(res, 500, "api_error", "Internal server error");
        return false;
      case fault::status_429: {
        const std::chrono::milliseconds wait(std::max(1, opts_.fail_429_retry_after_ms));
        if (limited) set_limit_headers(which, res, limiter_.check(limit_key, cost, false, now));
        rate_limit_error(which, res, "Rate limit reached (injected by the mock server). Please try again in " +
                                         detail::go_duration(wait) + ".");
        set_retry_after(which, res, wait);
        return false;
      }
      case fault::overload:
        if (which == api::openai)
          detail::set_openai_error(res, 503, "The engine is currently overloaded, please try again later",
                                   "server_error", nullptr, nullptr);
        else
          detail::set_anthropic_error(res, 529, "overloaded_error", "Overloaded");
        return false;
    }
    if (!limited) return true;
    const detail::limit_decision d = limiter_.check(limit_key, cost, true, now);
    set_limit_headers(which, res, d);
    if (d.allowed) return true;
    static const char* const what[] = {"requests", "tokens", "input tokens", "output tokens"};
    const detail::limit_view& v = d.views[d.refused_by];
    const std::string limit = std::to_string(static_cast<std::int64_t>(v.limit));
    const std::string message =
        d.too_large ? std::string("Request too large: it needs ") +
                          std::to_string(static_cast<std::int64_t>(cost[d.refused_by])) + " " + what[d.refused_by] +
                          " but the limit is " + limit + " per minute."
                    : std::string("Rate limit reached for ") + what[d.refused_by] + " per min: Limit " + limit +
                          ", Remaining " + std::to_string(v.remaining) + ". Please try again in " +
                          detail::go_duration(d.retry_after) + ".";
    if (which == api::openai)
      detail::set_openai_error(res, 429, message, d.refused_by == detail::limit_requests ? "requests" : "tokens",
                               nullptr, "rate_limit_exceeded");
    else
      detail::set_anthropic_error(res, 429, "rate_limit_error", message);
    set_retry_after(which, res, d.retry_after);
    return false;
  }

  const server_options& opts_;
  chat_hook& on_chat_;  // server::on_chat: set_on_chat() and current_hook() under hook_mutex_

  std::atomic<int> latency_ms_{0};
  std::atomic<int> latency_jitter_ms_{0};
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  bool stopping_ = false;  // guarded by sleep_mutex_

  std::atomic<std::size_t> requests_{0};
  std::atomic<std::size_t> streamed_{0};
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> max_in_flight_{0};

  mutable std::mutex hook_mutex_;
  mutable std::mutex records_mutex_;
  std::deque<nlohmann::json> bodies_;
  std::deque<httplib::Headers> headers_;

  mutable std::mutex stats_mutex_;
  std::mutex prompt_cache_mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> prompt_cache_;  // key: its expiry
  std::map<std::string, std::size_t> by_path_;
  std::map<std::string, std::size_t> by_key_;
  std::map<int, std::size_t> by_status_;
  std::deque<request_record> log_;

  detail::rate_limiter limiter_;

  std::mutex fault_mutex_;
  std::array<double, 6> fault_rates_{};  // 500, 429, reset, overload, truncate, stall
  std::uint64_t fault_seq_ = 0;          // guarded by fault_mutex_
  std::atomic<bool> faults_on_{false};

  std::mutex stream_fault_mutex_;
  std::array<double, 3> stream_fault_rates_{};  // cut, error event, stall
  std::uint64_t stream_fault_seq_ = 0;
  stream_fault forced_stream_fault_ = stream_fault::none;
  std::size_t forced_stream_count_ = 0;

  std::mutex pause_mutex_;
  std::size_t pause_count_ = 0;
  std::chrono::seconds pause_count_retry_after_{1};
  std::chrono::steady_clock::time_point pause_until_{};
  std::atomic<bool> pause_on_{false};

  std::mutex log_mutex_;
  std::ofstream log_file_;
  std::atomic<bool> log_file_is_open_{false};
};

}  // namespace detail
}  // namespace requests_engine_mock
