// requests_engine mock: the server, which runs cpp-httplib on loopback with the routes of every
// part, and is the mock's public API (settings, statistics and test hooks, forwarded to the parts).
#pragma once

#include "batch.hpp"
#include "common.hpp"
#include "core.hpp"
#include "google_aws.hpp"
#include "openai.hpp"
#include "sockets.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace requests_engine_mock {

class server {
 public:
  using chat_hook = requests_engine_mock::chat_hook;

  // Throws std::invalid_argument for a fault rate outside [0, 1], rates that add up to more
  // than 1, a negative rate limit, or stream_chunk_bytes 0.
  explicit server(server_options opts)
      : opts_(std::move(opts)), core_(opts_, on_chat), google_aws_(core_), batch_(core_, [this] { return origin(); }) {}
  ~server() {
    try {
      stop();
    } catch (...) {
    }
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds, starts listening on a background thread and returns once the
  // server accepts connections. Throws std::runtime_error if it cannot bind
  // or cannot load the TLS certificate/key. No-op if already running.
  void start() {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    if (svr_) return;
    const bool use_tls = !opts_.cert_path.empty() && !opts_.key_path.empty();
    if (use_tls != (!opts_.cert_path.empty() || !opts_.key_path.empty()))
      throw std::runtime_error("requests_engine_mock::server: cert_path and key_path must be set together");

    core_.open_log();

    std::unique_ptr<httplib::Server> svr;
    std::function<int()> listen_socket;
    if (use_tls) {
      auto s = std::make_unique<detail::listener<httplib::SSLServer>>(opts_.cert_path.c_str(), opts_.key_path.c_str());
      if (!s->is_valid())
        throw std::runtime_error("requests_engine_mock::server: cannot load TLS certificate '" + opts_.cert_path +
                                 "' / key '" + opts_.key_path + "'");
      auto* raw = s.get();
      listen_socket = [raw] { return raw->listen_socket(); };
      svr = std::move(s);
    } else {
      auto s = std::make_unique<detail::listener<httplib::Server>>();
      auto* raw = s.get();
      listen_socket = [raw] { return raw->listen_socket(); };
      svr = std::move(s);
    }
    configure(*svr);

    int bound = -1;
    if (opts_.port == 0) {
      bound = svr->bind_to_any_port(opts_.host);
    } else if (svr->bind_to_port(opts_.host, opts_.port)) {
      bound = opts_.port;
    }
    if (bound <= 0)
      throw std::runtime_error("requests_engine_mock::server: cannot bind " + opts_.host + ":" +
                               std::to_string(opts_.port) + " (address in use or invalid host?)");

    // httplib 0.11.4 listens with a backlog of 5 (compiled into the library):
    // a burst of concurrent connects could overflow it and stall on SYN
    // retransmits. listen() again on a listening socket raises the backlog.
    const int fd = listen_socket();
    if (fd >= 0) {
      ::listen(fd, SOMAXCONN);
      socklen_t len = sizeof listen_addr_;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&listen_addr_), &len) != 0) listen_addr_ = sockaddr_storage{};
    }

    core_.clear_stopping();
    port_.store(bound);
    listen_done_.store(false);
    pool_ready_.store(false);
    httplib::Server* raw = svr.get();
    svr_ = std::move(svr);
    thread_ = std::thread([this, raw] {
      // The worker pool is created on this thread and inherits its mask. httplib writes
      // without MSG_NOSIGNAL: a client gone away (or a connection dropped on purpose) must
      // fail the write with EPIPE, not kill the process with SIGPIPE.
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
      raw->listen_after_bind();
      listen_done_.store(true);
    });
    // listen_after_bind() sets is_running() first thing (the socket is
    // already listening, so connects queue up from here on); Server::stop()
    // does nothing before that, hence the wait. It then builds the worker pool
    // before it accepts anything: 256 threads take about 2 s under
    // ThreadSanitizer, long enough for a client's first requests to sit in the
    // backlog past its read timeout and be sent again. So wait for the pool too.
    while (!raw->is_running() || !pool_ready_.load()) {
      if (listen_done_.load()) {  // listen_after_bind() returned at once
        thread_.join();
        svr_.reset();
        port_.store(0);
        throw std::runtime_error("requests_engine_mock::server: listening on " + opts_.host + ":" +
                                 std::to_string(bound) + " failed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Stops accepting, closes open connections (so idle keep-alive clients do
  // not delay shutdown), interrupts latency sleeps and joins all threads.
  void stop() {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    if (!svr_) return;
    core_.interrupt_sleeps();
    svr_->stop();
    while (!listen_done_.load()) {
      detail::shutdown_accepted_connections(listen_addr_);
      for (int i = 0; i < 50 && !listen_done_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    thread_.join();
    svr_.reset();
    core_.close_log();
  }

  bool running() const {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
    return svr_ != nullptr && svr_->is_running();
  }
  int port() const { return port_.load(); }
  bool tls() const { return !opts_.cert_path.empty() && !opts_.key_path.empty(); }
  const server_options& options() const { return opts_; }

  // "http://127.0.0.1:PORT" or "https://...". A wildcard host (0.0.0.0, ::, "")
  // is reported as the loopback address; IPv6 literals get brackets.
  std::string origin() const {
    std::string host = opts_.host;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    return std::string(tls() ? "https://" : "http://") + host + ":" + std::to_string(port());
  }
  std::string base_url() const { return origin() + "/v1"; }

  // Statistics (thread-safe). requests() counts model requests: chat completions and messages.
  std::size_t requests() const { return core_.requests(); }
  std::size_t connections() const { return connections_.load(); }
  std::size_t max_in_flight() const { return core_.max_in_flight(); }
  std::size_t in_flight() const { return core_.in_flight(); }
  void reset_stats() {
    connections_.store(0);
    core_.reset_stats();
  }

  // Test hook: if set and it returns true, it has produced the response
  // itself and the default handling is skipped. Called after request counting
  // and recording, before auth, for both model routes (req.path tells them
  // apart). Assign before start(), or use set_on_chat() while the server is running.
  chat_hook on_chat;
  void set_on_chat(chat_hook hook) { core_.set_on_chat(std::move(hook)); }

  // Changes the simulated latency at run time.
  void set_latency(int latency_ms, int latency_jitter_ms = 0) { core_.set_latency(latency_ms, latency_jitter_ms); }

  // The last (at most 1000) chat request bodies (parsed JSON; null if the
  // body was not JSON) and headers, oldest first. The two vectors line up.
  std::vector<nlohmann::json> received_bodies() const { return core_.received_bodies(); }
  std::vector<httplib::Headers> received_headers() const { return core_.received_headers(); }

  static constexpr std::size_t max_records = detail::server_core::max_records;

  // ---- provider emulation ----

  /// One model request as the server saw it (the last max_log_records, in the order they finished).
  using request_record = requests_engine_mock::request_record;
  static constexpr std::size_t max_log_records = detail::server_core::max_log_records;
  static constexpr std::size_t max_logged_text = detail::server_core::max_logged_text;

  std::vector<request_record> request_log() const { return core_.request_log(); }
  /// Arrival times of the logged requests, in order of arrival.
  std::vector<std::chrono::steady_clock::time_point> arrival_times() const { return core_.arrival_times(); }
  std::size_t requests_for_path(const std::string& path) const { return core_.requests_for_path(path); }
  /// Requests that carried this key ("" = no key).
  std::size_t requests_for_key(const std::string& api_key) const { return core_.requests_for_key(api_key); }
  /// Request counts by key fingerprint (see key_fingerprint()).
  std::map<std::string, std::size_t> requests_by_key() const { return core_.requests_by_key(); }
  /// Answers with this status; 0 counts connections dropped without an answer.
  std::size_t responses_with_status(int status) const { return core_.responses_with_status(status); }
  /// What the log and the statistics show instead of a key.
  static std::string key_fingerprint(const std::string& api_key) { return detail::key_fingerprint(api_key); }

  /// Per-minute limits per key (0 = none); resets every bucket to full.
  void set_rate_limits(double rpm, double tpm, double input_tpm = 0, double output_tpm = 0) {
    core_.set_rate_limits(rpm, tpm, input_tpm, output_tpm);
  }

  /// Fractions of requests failed on purpose (see server_options); the sequence restarts.
  void set_fault_rates(double fail_500, double fail_429, double fail_reset, double fail_overload = 0,
                       double fail_truncate = 0, double fail_stall = 0) {
    core_.set_fault_rates(fail_500, fail_429, fail_reset, fail_overload, fail_truncate, fail_stall);
  }

  /// Fractions of streamed answers cut, ended by an error event, or stalled (see server_options);
  /// the sequence restarts.
  void set_stream_fault_rates(double cut, double error_event, double stall) {
    core_.set_stream_fault_rates(cut, error_event, stall);
  }
  /// The next `count` streamed answers get fault `f` (before any drawn by rate); the ones after
  /// are drawn as usual. stream_fault::none with a count makes them whole.
  void fail_next_streams(stream_fault f, std::size_t count = 1) { core_.fail_next_streams(f, count); }
  /// Streamed answers begun (their 200 sent), whatever became of them.
  std::size_t streamed_requests() const { return core_.streamed_requests(); }

  /// The next `count` model requests get 429 with `retry-after: <retry_after>`.
  void pause_requests(std::size_t count, std::chrono::seconds retry_after) { core_.pause_requests(count, retry_after); }
  /// Every model request in the next `window` gets 429; retry-after says the time left in the
  /// window (rounded up to whole seconds; retry-after-ms on the OpenAI route is exact).
  void pause_for(std::chrono::milliseconds window) { core_.pause_for(window); }
  void end_pause() { core_.end_pause(); }

  /// Access tokens /token has handed out.
  std::size_t tokens_issued() const { return google_aws_.tokens_issued(); }
  /// Requests seen per path (every route, /token included).
  std::map<std::string, std::size_t> requests_by_path() const { return core_.requests_by_path(); }

  // ---- provider batch APIs (tools/mock/batch.hpp) ----
  using batch_mock_options = requests_engine_mock::batch_mock_options;
  void set_batch_options(const batch_mock_options& o) { batch_.set_batch_options(o); }
  std::size_t batch_calls() const { return batch_.batch_calls(); }  // requests to the batch routes
  std::size_t batches_created() const { return batch_.batches_created(); }
  std::vector<std::size_t> batch_sizes() const { return batch_.batch_sizes(); }  // lines per batch, in creation order
  std::size_t batch_lines() const { return batch_.batch_lines(); }  // lines over every batch created
  // Per batch in creation order, the last user message of each line: what was uploaded.
  std::vector<std::vector<std::string>> batch_prompts() const { return batch_.batch_prompts(); }

 private:
  void configure(httplib::Server& svr) {
    svr.set_keep_alive_max_count(100000);
    svr.set_keep_alive_timeout(std::max(1, opts_.keep_alive_timeout_sec));
    svr.set_read_timeout(std::max(1, opts_.read_timeout_sec), 0);
    svr.set_write_timeout(std::max(1, opts_.write_timeout_sec), 0);
    svr.set_tcp_nodelay(true);
    // httplib 0.11.4's default socket options set SO_REUSEPORT, which lets a
    // second server bind a port that is already in use (the kernel then
    // load-balances between them) instead of failing. SO_REUSEADDR only.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, static_cast<socklen_t>(sizeof yes));
    });
    const std::size_t threads = opts_.threads == 0 ? 1 : opts_.threads;
    std::atomic<std::size_t>* counter = &connections_;
    std::atomic<bool>* ready = &pool_ready_;
    svr.new_task_queue = [threads, counter, ready]() -> httplib::TaskQueue* {
      auto* queue = new detail::counting_task_queue(threads, *counter);
      ready->store(true);  // every worker exists: the accept loop starts now
      return queue;
    };

    // Ollama's native chat API (no key, no limits, no faults): what examples/custom_provider.cpp talks to.
    svr.Post("/api/chat", [](const httplib::Request& req, httplib::Response& res) {
      const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_object() || !body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
        res.status = 400;
        res.set_content(R"({"error":"messages is required"})", "application/json");
        return;
      }
      const std::string last = body["messages"].back().value("content", std::string());
      const nlohmann::json answer = {{"model", body.value("model", std::string())},
                                     {"created_at", "2026-01-01T00:00:00Z"},
                                     {"message", {{"role", "assistant"}, {"content", "Mock answer to: " + last}}},
                                     {"done", true},
                                     {"done_reason", "stop"},
                                     {"prompt_eval_count", static_cast<std::int64_t>(req.body.size() / 4)},
                                     {"eval_count", 8}};
      res.set_content(answer.dump(), "application/json");
    });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      core_.handle_model_request(detail::api::openai, req, res);
    });
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      core_.handle_model_request(detail::api::openai_completions, req, res);
    });
    svr.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
      core_.handle_model_request(detail::api::openai_responses, req, res);
    });
    svr.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
      core_.handle_model_request(detail::api::openai_embeddings, req, res);
    });
    svr.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
      core_.handle_model_request(detail::api::anthropic, req, res);
    });
    // Azure OpenAI (azure.hpp): the v1 API, then the classic routes, which need an api-version.
    const std::pair<const char*, detail::api> azure_apis[] = {{"chat/completions", detail::api::openai},
                                                              {"completions", detail::api::openai_completions},
                                                              {"responses", detail::api::openai_responses},
                                                              {"embeddings", detail::api::openai_embeddings}};
    for (const auto& [name, which] : azure_apis) {
      const detail::api route_api = which;
      svr.Post(std::string("/openai/v1/") + name, [this, route_api](const httplib::Request& req, httplib::Response& res) {
        core_.handle_model_request(route_api, req, res, true);
      });
      auto classic = [this, route_api](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("api-version").empty()) return detail::set_azure_missing_api_version(res);
        core_.handle_model_request(route_api, req, res, true);
      };
      if (route_api == detail::api::openai_responses)
        svr.Post("/openai/responses", classic);
      else
        svr.Post(std::string("/openai/deployments/([A-Za-z0-9._-]+)/") + name, classic);
    }
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    google_aws_.add_google_aws_routes(svr);
    batch_.add_batch_routes(svr);

    // Called by httplib for EVERY response with status >= 400, including the
    // ones our handlers produced: only fill in empty bodies (unknown routes).
    // (Explicit type: a lambda is ambiguous between the two 0.11.4 overloads.)
    svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                  httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const std::string msg = res.status == 404 ? "Invalid URL (" + req.method + " " + req.path + ")"
                                                : "HTTP error " + std::to_string(res.status);
      detail::set_openai_error(res, res.status, msg, "invalid_request_error", nullptr, nullptr);
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      detail::set_openai_error(res, 500, "The mock server had an error while processing your request: " + what,
                               "server_error", nullptr, nullptr);
    });
  }

  server_options opts_;
  detail::server_core core_;
  detail::google_aws_routes google_aws_;
  detail::batch_routes batch_;

  std::atomic<std::size_t> connections_{0};
  mutable std::mutex lifecycle_mutex_;
  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
  std::atomic<bool> listen_done_{false};
  std::atomic<bool> pool_ready_{false};  // the worker pool is built (set on the listening thread)
  std::atomic<int> port_{0};
  sockaddr_storage listen_addr_{};
};

}  // namespace requests_engine_mock
