// The `requests-engine run` subcommand: a JSONL file of requests in, a JSONL file of answers out.
// Included by tools/requests_engine_cli.cpp only.
#pragma once

#include "report_command.hpp"
#include "run_input.hpp"
#include "run_output.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace requests_engine_cli {

struct run_args {
  std::string input;
  std::string output;
  std::string provider = "openai";
  /// openai: chat, completions (legacy, prompt arrays), responses or embeddings; empty: the
  /// input's OpenAI Batch url chooses (chat for plain input)
  std::string api;
  std::string command = "run";  ///< the subcommand, for messages
  bool embed = false;  ///< `embed`: {"id","text"} lines in, {"id","embedding",...} lines out
  std::optional<std::int64_t> dimensions;  ///< embeddings: the vectors' size (models that take it)
  std::size_t batch_size = 0;  ///< completions: prompts per HTTP request (0: one each)
  std::optional<std::int64_t> batch_wait_ms;
  std::string base_url;
  std::string model;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  std::size_t concurrency = 32;
  double rpm = 0;
  double tpm = 0;
  int max_retries = 2;
  double timeout_seconds = 0;
  std::string ca_cert;  ///< PEM file of CA certificates to trust instead of the system's
  std::optional<std::string> proxy;  ///< --proxy: the proxy URL ("" = none); unset: the environment
  std::string cache_dir;
  std::string name_space;
  bool no_cache = false;
  bool ordered = false;
  bool no_progress = false;
  std::string shard;
  std::string region;      ///< bedrock: AWS region; vertex: location
  std::string project;     ///< vertex: Google Cloud project
  std::string vertex_api;  ///< vertex: openai, gemini or anthropic; empty: chosen from the model
  std::string prices;      ///< JSON price table merged over the built-in one
  std::string summary_json;
  std::string events;       ///< --events: the events file (default OUTPUT.events.jsonl)
  bool no_events = false;   ///< --no-events
  std::string report;       ///< --report: the HTML report, written at the end of the run
  std::string stream = "auto";  ///< auto, always or never (options::stream)
  std::string api_version;      ///< azure: the classic routes' api-version (empty: $OPENAI_API_VERSION, else v1)
  std::vector<std::string> headers;            ///< --header 'Name: value'
  std::vector<std::string> secret_headers;     ///< --secret-header 'Name: VARIABLE' (the value from the environment)
  std::vector<std::string> cache_key_headers;  ///< --cache-key-header 'Name: value' (part of the cache key)
  bool cache_system_prompt = false;            ///< --cache-system-prompt (Claude's prompt caching)
  std::string prompt_cache_ttl;                ///< --prompt-cache-ttl 5m or 1h
};

/// An OpenAI-compatible host with a preset (re::openai_hosts()), or null.
inline const re::openai_host* find_openai_preset(const std::string& name) {
  for (const auto& p : re::openai_hosts())
    if (name == p.name) return &p;
  return nullptr;
}

/// Exit statuses of `run`.
enum : int { exit_ok = 0, exit_failures = 1, exit_usage = 2, exit_interrupted = 130 };

/// A usage or configuration problem found before anything is sent.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string default_cache_dir() {
  const char* env = std::getenv("REQUESTS_ENGINE_CACHE_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("requests_engine_cache");
}

/// An OpenAI-compatible provider (OpenAI's own, or Vertex AI's OpenAI endpoint), able to send
/// an OpenAI Batch line's body as it is. That body travels in params::extra with an empty
/// conversation: the library has no other carrier for a whole wire body, and the OpenAI Batch
/// format promises that the body is what gets sent.
template <class Inner>
class openai_passthrough {
 public:
  explicit openai_passthrough(Inner inner) : inner_(std::move(inner)) {}

  [[nodiscard]] re::result<json> make_body(const re::conversation& c, const re::params& p) const {
    if (!c.messages().empty() || !p.extra().is_object() ||
        !(p.extra().contains("messages") || p.extra().contains("input")))
      return inner_.make_body(c, p);
    json body = p.extra();
    if (!body.contains("model")) {
      if (inner_.model().empty())
        return re::error{re::error_code::invalid_request, 0, "no model: set --model or body.model", {}, 0, {}};
      body["model"] = inner_.model();
    }
    return body;
  }
  [[nodiscard]] auto make_request(const std::string& body) const { return inner_.make_request(body); }
  [[nodiscard]] re::result<re::completion> parse_response(const re::http_response& r) const {
    return inner_.parse_response(r);
  }
  [[nodiscard]] json cache_identity() const { return inner_.cache_identity(); }
  [[nodiscard]] std::vector<std::string> secrets() const { return inner_.secrets(); }
  [[nodiscard]] re::extra_headers& headers() { return inner_.headers(); }
  // Only where the inner provider has it (the Responses API has no n).
  template <class I = Inner, class = decltype(std::declval<const I&>().split_choices(std::string()))>
  [[nodiscard]] std::vector<std::string> split_choices(const std::string& body) const {
    return inner_.split_choices(body);
  }
  template <class I = Inner, class = decltype(std::declval<const I&>().make_stream_decoder())>
  [[nodiscard]] auto make_stream_request(const std::string& body) const {
    return inner_.make_stream_request(body);
  }
  template <class I = Inner, class = decltype(std::declval<const I&>().make_stream_decoder())>
  [[nodiscard]] std::unique_ptr<re::stream_decoder> make_stream_decoder() const {
    return inner_.make_stream_decoder();
  }

 private:
  Inner inner_;
};

namespace detail {

// "K/N" with 1 <= K <= N.
inline std::pair<std::size_t, std::size_t> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  std::size_t k = 0, n = 0;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    std::size_t used = 0;
    k = std::stoul(s.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("trailing");
    const std::string rest = s.substr(slash + 1);
    n = std::stoul(rest, &used);
    if (used != rest.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw usage_error("--shard must be K/N (e.g. 2/3), got '" + s + "'");
  }
  if (n == 0 || k == 0 || k > n) throw usage_error("--shard K/N needs 1 <= K <= N, got '" + s + "'");
  return {k, n};
}

// Which of `n` shards a request belongs to: the first 8 hex digits of its hash, so every
// machine that reads the same file with the same flags makes the same split.
inline std::size_t shard_of(const std::string& hash_hex, std::size_t n) {
  return static_cast<std::size_t>(std::stoul(hash_hex.substr(0, 8), nullptr, 16) % n);
}

// SIGINT and SIGTERM are blocked in every thread (the engine's workers inherit the mask) and
// collected here, so that an interruption cancels the engine instead of killing the process
// with half-written state.
class signal_watch {
 public:
  signal_watch() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] {
      const timespec tick{0, 100 * 1000 * 1000};
      while (!done_.load()) {
        if (sigtimedwait(&set_, nullptr, &tick) > 0) {
          signalled_ = true;
          std::function<void()> f;
          {
            std::lock_guard<std::mutex> lock(m_);
            f = on_signal_;
          }
          if (f) f();
        }
      }
    });
  }
  ~signal_watch() {
    done_ = true;
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  signal_watch(const signal_watch&) = delete;
  signal_watch& operator=(const signal_watch&) = delete;

  void on_signal(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(m_);
    on_signal_ = std::move(f);
  }
  [[nodiscard]] bool signalled() const { return signalled_.load(); }

 private:
  sigset_t set_{};
  sigset_t old_{};
  std::atomic<bool> done_{false};
  std::atomic<bool> signalled_{false};
  std::mutex m_;
  std::function<void()> on_signal_;
  std::thread thread_;
};

// The output's and the events' lines, handed over by the engine's callbacks and written by one
// thread: every 20 ms, or at once when 64 KB wait. A worker never waits for the disk, and a
// thousand answers a second make fifty writes, not a thousand. A kill loses at most the last
// 20 ms of lines; their answers are in the cache already, so the same command writes them again
// without sending them.
class line_writer {
 public:
  static constexpr std::size_t flush_bytes = 64 * 1024;
  line_writer(int output_fd, int events_fd) : output_fd_(output_fd), events_fd_(events_fd) {
    thread_ = std::thread([this] { loop(); });
  }
  ~line_writer() { finish(); }
  line_writer(const line_writer&) = delete;
  line_writer& operator=(const line_writer&) = delete;

  void output(const std::string& lines) { add(output_, lines); }
  void event(const std::string& line) { add(events_, line); }
  /// Writes what waits, and stops. Safe to call twice.
  void finish() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  /// Set (once) when the output could not be written: the run must stop.
  [[nodiscard]] bool output_failed() const noexcept { return output_failed_.load(); }
  /// Why, after finish().
  [[nodiscard]] const std::string& output_error() const noexcept { return output_error_; }
  [[nodiscard]] const std::string& events_error() const noexcept { return events_error_; }

 private:
  void add(std::string& to, const std::string& s) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(m_);
      to += s;
      wake = to.size() >= flush_bytes;
    }
    if (wake) cv_.notify_one();
  }
  void loop() {
    std::string out, events;  // swapped with the shared buffers: both keep their capacity
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait_for(lock, std::chrono::milliseconds(20),
                   [&] { return stop_ || output_.size() >= flush_bytes || events_.size() >= flush_bytes; });
      out.clear();
      events.clear();
      out.swap(output_);
      events.swap(events_);
      const bool stopping = stop_;
      lock.unlock();
      if (!out.empty() && output_error_.empty()) {
        try {
          write_all(output_fd_, out);
        } catch (const std::exception& e) {
          output_error_ = e.what();
          output_failed_ = true;
        }
      }
      if (!events.empty() && events_fd_ >= 0 && events_error_.empty()) {
        try {
          write_all(events_fd_, events);
        } catch (const std::exception& e) {
          events_error_ = e.what();  // the output matters more than its report: the run goes on
        }
      }
      lock.lock();
      if (stopping && output_.empty() && events_.empty()) return;
    }
  }

  int output_fd_, events_fd_;
  std::mutex m_;
  std::condition_variable cv_;
  std::string output_, events_;
  bool stop_ = false;
  std::atomic<bool> output_failed_{false};
  std::string output_error_, events_error_;  // written by the thread only (read after finish)
  std::thread thread_;
};

// Non-empty lines of a file, counted without parsing them (for the progress bar's total before
// the file is read): about 1 GB/s.
inline std::size_t count_lines(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::vector<char> buf(1 << 20);
  std::size_t n = 0;
  bool blank = true;
  for (;;) {
    const ssize_t got = ::read(fd, buf.data(), buf.size());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (ssize_t i = 0; i < got; ++i) {
      const char c = buf[static_cast<std::size_t>(i)];
      if (c == '\n') {
        n += blank ? 0 : 1;
        blank = true;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        blank = false;
      }
    }
  }
  ::close(fd);
  return n + (blank ? 0 : 1);
}

// The input of a run: read as the run goes (input_reader), and once more before it when a check
// needs every line first (the model of every line, the embeddings' size).
struct input_source {
  std::string path;
  input_options opt;
};

/// Every line of the input that can be read, to `f`; bad lines are silent here (the run
/// reports them).
template <class F>
void for_each_item(const input_source& in, F&& f) {
  input_reader reader(in.path, in.opt);
  input_item item;
  while (reader.next(item, [](const std::string&) {})) f(static_cast<const input_item&>(item));
}
template <class F>
void for_each_item(const input_file& in, F&& f) {
  for (const auto& item : in.items) f(item);
}

}  // namespace detail

/// The summary for scripts (--summary-json): the same counts as the printed one, and the
/// cost report in full.
inline json summary_json(const run_summary& s, const run_args& a) {
  json j;
  j["status"] = s.interrupted ? "interrupted" : "done";
  j["provider"] = a.provider;
  j["input"] = a.input;
  j["output"] = a.output;
  j["input_lines"] = s.input_lines;
  j["skipped_lines"] = s.skipped_lines;
  j["requests"] = s.selected;
  j["shard"] = s.shard.empty() ? json() : json(s.shard);
  j["written"] = s.written;
  j["succeeded"] = s.succeeded;
  j["failed"] = s.failed;
  j["failed_ids"] = s.failed_ids;
  j["not_finished"] = s.selected - s.succeeded - s.failed;
  j["from_cache"] = s.from_cache;
  j["deduplicated"] = s.deduplicated;
  if (s.cache)
    j["cache"] = {{"hits", s.cache->hits},
                  {"misses", s.cache->misses},
                  {"writes", s.cache->writes},
                  {"write_errors", s.cache->write_errors},
                  {"corrupt", s.cache->corrupt},
                  {"bytes_read", s.cache->bytes_read},
                  {"bytes_written", s.cache->bytes_written}};
  j["retries"] = s.retries;
  j["http_requests"] = s.http_requests;
  j["batches"] = s.batches;
  j["mean_batch_size"] = s.batches > 0 ? json(static_cast<double>(s.batched) / static_cast<double>(s.batches)) : json();
  j["tokens"] = detail::usage_json(s.tokens);
  j["cost"] = s.cost.to_json();
  j["wall_seconds"] = s.wall_seconds;
  j["requests_per_second"] = requests_per_second(s);
  if (!s.first_token_ms.empty()) {
    std::vector<double> t = s.first_token_ms;
    j["time_to_first_token_ms"] = {{"streamed", t.size()}, {"median", quantile(t, 0.5)}, {"p90", quantile(t, 0.9)}};
  }
  return j;
}

namespace detail {


// "Name: value" as --header and its kin take it.
inline std::pair<std::string, std::string> split_header(const std::string& option, const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0)
    throw usage_error(option + " '" + text + "': expected 'Name: value'");
  std::string name = text.substr(0, colon);
  std::string value = text.substr(colon + 1);
  const auto first = value.find_first_not_of(" \t");
  value = first == std::string::npos ? std::string() : value.substr(first);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
  return {name, value};
}

// The headers of the user's own, on the provider: --header, --secret-header (its value read
// from the environment variable it names, so that it never stands on a command line) and
// --cache-key-header.
inline void add_user_headers(re::extra_headers& h, const run_args& a) {
  try {
    for (const auto& text : a.headers) {
      auto [name, value] = split_header("--header", text);
      h.set(name, value);
    }
    for (const auto& text : a.cache_key_headers) {
      auto [name, value] = split_header("--cache-key-header", text);
      h.set(name, value, re::header_use::identity);
    }
    for (const auto& text : a.secret_headers) {
      auto [name, variable] = split_header("--secret-header", text);
      const char* v = std::getenv(variable.c_str());
      if (variable.empty() || v == nullptr || *v == '\0')
        throw usage_error("--secret-header '" + text + "': the environment variable '" + variable +
                          "' is not set (the header's value is read from it, never from the command line)");
      h.set(name, v, re::header_use::secret);
    }
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    const std::string prefix = "requests_engine: ";
    if (what.compare(0, prefix.size(), prefix) == 0) what.erase(0, prefix.size());
    throw usage_error(what);
  }
}

}  // namespace detail

/// Does the run with one provider: reads the input as it goes (a window ahead of the workers),
/// hashes and shards it, sends it, writes the output.
namespace detail {
/// From this many workers, `run` ends the process once everything is written (see run_with).
inline constexpr std::size_t quick_exit_concurrency = 512;
}  // namespace detail

template <class Provider>
int run_with(Provider provider, const run_args& a, const detail::input_source& in, bool openai_shaped_body,
             const re::price_table& prices) {
  const auto started = std::chrono::steady_clock::now();
  run_summary sum;
  input_reader reader(in.path, in.opt);

  std::pair<std::size_t, std::size_t> shard{1, 1};
  if (!a.shard.empty()) {
    shard = detail::parse_shard(a.shard);
    sum.shard = a.shard;
  }
  // The lines the run expects, for the progress bar and the events (the input is read as the
  // run goes): exact once the file is read, an estimate before.
  const std::size_t expected = (detail::count_lines(in.path) + shard.second - 1) / shard.second;

  detail::add_user_headers(provider.headers(), a);
  // Hashes as the engine computes them (for --shard, and for the output lines of failures).
  const Provider hasher = provider;
  const json identity = provider.cache_identity();

  const int fd = ::open(a.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw usage_error("cannot open output file '" + a.output + "': " + std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};

  // The events of the run, for `requests-engine report` (and --report).
  events_log events;
  if (!a.report.empty() && a.no_events) throw usage_error("--report needs the events: drop --no-events");
  if (!a.no_events) {
    run_info info;
    info.command = a.command;
    info.provider = a.provider;
    info.model = a.model;
    info.input = a.input;
    info.output = a.output;
    info.concurrency = a.concurrency;
    info.rpm = a.rpm;
    info.tpm = a.tpm;
    info.requests = expected;
    try {
      events.open(a.events.empty() ? a.output + ".events.jsonl" : a.events, info);
    } catch (const std::exception& e) {
      // Asked for (--events, --report): a usage problem. Otherwise the run goes on without.
      if (!a.events.empty() || !a.report.empty()) throw usage_error(e.what());
      std::cerr << "requests-engine " << a.command << ": warning: " << e.what() << "; the run goes on without it\n";
    }
  }
  // Before any thread starts (the writer's, the engine's): they inherit the blocked signals.
  detail::signal_watch signals;
  detail::line_writer writer(fd, events.active() ? events.fd() : -1);
  if (events.active()) events.to_sink([&writer](std::string&& line) { writer.event(line); });

  std::mutex m;  // the engine never runs two callbacks at once; this also orders the reads below
  // The run holds the requests in flight (each result's callback holds its input line's id),
  // never the whole input: the main thread reads ahead while fewer than `window` are
  // unanswered, and waits for all of them at the end.
  // The format and the OpenAI Batch URL, fixed by the first line read (set before the first
  // request is sent, read by the results).
  input_format reader_format = input_format::plain;
  std::string batch_url;
  std::size_t results_seen = 0;
  // The results_seen the main thread waits for (none: the largest number).
  std::size_t wake_reader_at = std::numeric_limits<std::size_t>::max();
  std::condition_variable result_seen;
  // --ordered: the lines waiting for an earlier one, and the next line to write.
  std::map<std::size_t, std::string> pending;
  std::size_t next_to_write = 0;
  const std::size_t batch_size = static_cast<std::size_t>(std::max<std::int64_t>(a.batch_size, 0));
  const std::size_t window = std::max<std::size_t>({a.concurrency * 4, batch_size * a.concurrency * 2, 1024});
  // --ordered also stops reading when this many lines wait for an earlier one (a request
  // retried for minutes holds the run back rather than filling the memory).
  const std::size_t ordered_window = std::max<std::size_t>(window * 4, 16384);
  std::atomic<bool> interrupted{false};

  re::options o;
  o.concurrency(a.concurrency).max_retries(a.max_retries);
  if (a.timeout_seconds > 0)
    o.read_timeout(std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout_seconds * 1000.0)));
  if (!a.ca_cert.empty()) o.ca_cert_file(a.ca_cert);
  if (a.proxy) o.proxy(*a.proxy);
  if (a.rpm > 0) o.requests_per_minute(a.rpm);
  if (a.tpm > 0) o.tokens_per_minute(a.tpm);
  if (!a.no_cache) o.cache_dir(a.cache_dir.empty() ? default_cache_dir() : a.cache_dir);
  if (a.no_progress) o.progress_bar(false);
  o.stream(a.stream == "always" ? re::stream_mode::always
           : a.stream == "never" ? re::stream_mode::never
                                 : re::stream_mode::automatic);
  if (a.batch_size > 0) {
    re::batching_options b;
    b.max_size(a.batch_size).concurrent(a.concurrency);
    if (a.batch_wait_ms) b.max_wait(std::chrono::milliseconds(*a.batch_wait_ms));
    o.batching(b);
  }
  o.on_retry([&](const re::retry_info&) {
    std::lock_guard<std::mutex> lock(m);
    ++sum.retries;
  });
  if (events.active())
    o.on_attempt([&](const re::attempt_info& info) {
      std::lock_guard<std::mutex> lock(m);
      events.attempt(info);
    });
  // Each result comes to this, on the worker that got it (or on this thread, for a stored
  // answer), at the same time as others: its output line is made outside the lock, which holds
  // only the counts, the events and --ordered's queue. Every request gets exactly one result,
  // cancelled ones too.
  auto on_done = [&](std::size_t index, input_item& item, re::result<re::completion>&& r) {
    // After Ctrl-C the unfinished requests come back cancelled: they are not answers, and a
    // rerun sends them. The same after the output failed: the run stopped, and those were
    // never answered.
    const bool dropped =
        !r && r.error().code == re::error_code::cancelled && (interrupted.load() || writer.output_failed());
    std::string line;
    if (!dropped) {
      if (!r && item.hash.empty()) {  // a failure's line names the request's hash too
        re::result<json> body = hasher.make_body(item.conv, item.par);
        if (body) item.hash = re::request_hash(identity, *body);
      }
      line = detail::output_line(item, reader_format, batch_url, openai_shaped_body, r);
    }
    std::lock_guard<std::mutex> lock(m);
    struct counted {  // on every way out, the lock still held
      std::size_t& n;
      std::size_t wake_at;
      std::condition_variable& cv;
      ~counted() {
        // The reader is woken only once it has something to do: not once per result, which
        // cost a thread switch per request.
        if (++n >= wake_at) cv.notify_all();
      }
    } count_it{results_seen, wake_reader_at, result_seen};
    if (dropped) return;
    sum.cost.add(r, prices);
    if (r) {
      ++sum.succeeded;
      if (r->from_cache) ++sum.from_cache;
      if (r->deduplicated && !r->from_cache) ++sum.deduplicated;
      sum.tokens += r->usage;
      if (r->time_to_first_token) sum.first_token_ms.push_back(static_cast<double>(r->time_to_first_token->count()));
    } else {
      ++sum.failed;
      sum.failed_ids.push_back(item.id_text);
    }
    events.result(index, item.id_text, r, prices);
    if (!a.ordered) {
      writer.output(line);
      ++sum.written;
      return;
    }
    pending.emplace(index, std::move(line));
    std::string chunk;
    for (auto it = pending.begin(); it != pending.end() && it->first == next_to_write; it = pending.erase(it)) {
      chunk += it->second;
      ++next_to_write;
      ++sum.written;
    }
    if (!chunk.empty()) writer.output(chunk);
  };

  // Tickets of submit() count from 0 in a new engine, and this thread is the only submitter:
  // ticket i is the i-th request sent (the index of its attempts in on_attempt, for the events).
  re::engine<Provider> engine(std::move(provider), o);
  engine.expect(expected);
  signals.on_signal([&] {
    interrupted = true;
    engine.cancel();
  });
  auto report_problem = [&](const std::string& why) {
    std::cerr << "requests-engine " << a.command << ": " << a.input << ": " << why << "\n";
  };
  std::size_t submitted = 0;
  auto next_limits_check = std::chrono::steady_clock::now();
  bool stopped_for_output = false;
  // Waits (the lock held) until `results_seen` reaches `target`, checking
  // meanwhile for a failed output (checked before every wait, not only after one timed out:
  // answers arriving faster than the poll would hide it) and for the limits learned.
  // `reading`: the reader's wait, which also ends when the run stops (Ctrl-C, the output failed).
  auto wait_for_results = [&](std::unique_lock<std::mutex>& lock, std::size_t target, bool reading) {
    wake_reader_at = target;
    while (results_seen < target) {
      if (reading && (interrupted.load() || writer.output_failed())) break;
      if (writer.output_failed() && !stopped_for_output) {
        stopped_for_output = true;  // nothing more is read; what is in flight comes back cancelled
        lock.unlock();
        engine.cancel();
        lock.lock();
        continue;
      }
      result_seen.wait_for(lock, std::chrono::milliseconds(100));
      if (events.active() && std::chrono::steady_clock::now() >= next_limits_check) {
        events.limits(engine.learned_limits());
        next_limits_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      }
    }
    wake_reader_at = std::numeric_limits<std::size_t>::max();
  };
  // Once the window is full, the reader waits until it is half empty, then refills it at once.
  const std::size_t refill = std::max<std::size_t>(window / 2, 1);
  input_item item;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m);
      if (submitted - results_seen >= window) wait_for_results(lock, submitted - window + refill, true);
      if (a.ordered && submitted - next_to_write >= ordered_window) {
        // --ordered: the earliest line still unanswered holds the others back.
        while (submitted - next_to_write >= ordered_window - refill && !interrupted.load() && !writer.output_failed())
          wait_for_results(lock, results_seen + 1, true);
      }
    }
    if (interrupted.load() || writer.output_failed()) break;
    if (!reader.next(item, report_problem)) break;
    if (shard.second != 1) {
      re::result<json> body = hasher.make_body(item.conv, item.par);
      if (body) item.hash = re::request_hash(identity, *body);
      const std::string& key = item.hash.empty() ? re::detail::sha256_hex(item.id_text) : item.hash;
      if (detail::shard_of(key, shard.second) != shard.first - 1) continue;
    }
    if (submitted == 0) {
      reader_format = reader.format();
      batch_url = reader.batch_url();
    }
    const std::size_t ticket = submitted++;
    // The engine builds its body from the request at once; the result's callback keeps the
    // line's input for its output line.
    auto held = std::make_shared<input_item>(std::move(item));
    engine.submit(held->conv, held->par, a.name_space, [&on_done, ticket, held](re::result<re::completion>&& r) {
      on_done(ticket, *held, std::move(r));
    });
    item = input_item();
  }
  sum.input_lines = reader.lines();
  sum.skipped_lines = reader.skipped();
  sum.selected = submitted;
  engine.expect(submitted);
  {
    std::unique_lock<std::mutex> lock(m);
    wait_for_results(lock, submitted, false);
  }
  signals.on_signal({});
  writer.finish();
  events.to_sink({});
  const std::string write_error = writer.output_error();

  // Everything below is the report of a finished run: its status decides how the process ends.
  const int status = [&]() -> int {
    const re::progress counts = engine.current_progress();
    std::lock_guard<std::mutex> lock(m);
    sum.http_requests = counts.http_requests;
    sum.batches = counts.batches;
    sum.batched = counts.batched;
    sum.interrupted = interrupted.load();
    if (!a.no_cache) sum.cache = engine.cache_statistics();
    sum.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!a.no_progress && ::isatty(2)) std::cerr << "\n";  // past the progress bar's line
    print_summary(sum, std::cerr, a.command);
    int report_status = exit_ok;
    if (events.active()) {
      events.limits(engine.learned_limits());
      events.end({{"interrupted", sum.interrupted || !write_error.empty()},
                  {"requests", sum.selected},
                  {"succeeded", sum.succeeded},
                  {"failed", sum.failed},
                  {"from_cache", sum.from_cache},
                  {"deduplicated", sum.deduplicated},
                  {"retries", sum.retries},
                  {"wall_seconds", sum.wall_seconds}});
    }
    if (events.active() && a.report.empty())
      std::cerr << "  events       " << events.path() << " (a page with plots: requests-engine report " << events.path()
                << " -o report.html)\n";
    if (!events.failure().empty() || !writer.events_error().empty())
      std::cerr << "requests-engine " << a.command << ": warning: the events stopped: "
                << (events.failure().empty() ? writer.events_error() + " ('" + events.path() + "')" : events.failure())
                << "\n";
    if (!a.report.empty()) {
      try {
        (void)write_report({events.path()}, a.report);
        std::cerr << "requests-engine " << a.command << ": report: " << a.report << "\n";
      } catch (const std::exception& e) {
        std::cerr << "requests-engine " << a.command << ": error: " << e.what() << "\n";
        report_status = exit_failures;
      }
    }
    if (!a.summary_json.empty()) {
      try {
        detail::write_file_atomically(a.summary_json, "the summary file", summary_json(sum, a).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
      } catch (const std::exception& e) {
        std::cerr << "requests-engine " << a.command << ": error: " << e.what() << "\n";
        if (write_error.empty()) return exit_failures;
      }
    }
    if (!write_error.empty()) {
      std::cerr << "requests-engine " << a.command << ": error: " << write_error << " ('" << a.output
                << "'); the run stopped there"
                << (a.no_cache ? std::string(".")
                               : std::string(". The answers received are in the cache: once there is room, the same "
                                             "command finishes the job without paying for them again."))
                << "\n";
      return exit_failures;
    }
    if (sum.interrupted) {
      std::cerr << "requests-engine " << a.command << ": interrupted; " << sum.written << " results are in " << a.output
                << ". Run the same command again to finish"
                << (a.no_cache ? " (with --no-cache everything is sent again)." : ": stored answers come from the cache.")
                << "\n";
      return exit_interrupted;
    }
    return sum.failed > 0 || sum.skipped_lines > 0 ? exit_failures : report_status;
  }();
  // A wide run's answers, output, events and summary are all written by now: a process with
  // thousands of workers ends here rather than waking and joining each (and closing each
  // connection) one by one, which took longer than a second at 8,192.
  if (a.concurrency >= detail::quick_exit_concurrency) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(status);
  }
  return status;
}

namespace detail {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// A key is required for the provider's own API; a base URL elsewhere (a local vLLM, the mock)
// may take none.
inline std::string api_key(const char* env, const std::string& base_url, const std::string& official_host) {
  std::string key = env_or(env, "");
  if (key.empty() && re::parse_url(base_url).host == official_host)
    throw usage_error(std::string(env) + " is not set: it is needed for " + base_url +
                      " (keys are read from the environment only, never from the command line)");
  return key;
}

// The Gemini API's key, read as Google's SDKs read it: GEMINI_API_KEY first, then GOOGLE_API_KEY.
inline std::string gemini_api_key() {
  std::string key = env_or("GEMINI_API_KEY", env_or("GOOGLE_API_KEY", ""));
  if (key.empty())
    throw usage_error("GEMINI_API_KEY is not set (nor GOOGLE_API_KEY): --provider gemini needs an API key "
                      "(keys are read from the environment only, never from the command line)");
  return key;
}

// The model must be known for every line before anything is sent.
template <class Source>
inline void check_model(const Source& in, const run_args& a, bool raw_openai) {
  if (!a.model.empty()) return;
  for_each_item(in, [&](const input_item& item) {
    const bool has = item.par.model() || (raw_openai && item.conv.messages().empty() &&
                                          item.par.extra().is_object() && item.par.extra().contains("model"));
    if (!has)
      throw usage_error("no model for id '" + item.id_text + "' (line " + std::to_string(item.line) +
                        "): pass --model, or give one in every line");
  });
}

// The one model of a run whose provider puts the model in the URL (Bedrock, Gemini, Vertex's
// gemini and anthropic APIs): --model, else the model every line names. A line naming another
// model cannot go through this provider, so it stops the run before anything is sent.
template <class Source>
inline std::string single_model(const Source& in, const run_args& a, bool model_in_url) {
  std::string model = a.model;
  if (model.empty()) {
    for_each_item(in, [&](const input_item& item) {
      if (!item.par.model())
        throw usage_error("--provider " + a.provider + " needs --model (id '" + item.id_text + "', line " +
                          std::to_string(item.line) + ", names no model)");
      if (model.empty()) model = *item.par.model();
    });
    if (model.empty()) throw usage_error("--provider " + a.provider + " needs --model");
  }
  if (!model_in_url) return model;
  for_each_item(in, [&](const input_item& item) {
    if (item.par.model() && *item.par.model() != model)
      throw usage_error("id '" + item.id_text + "' (line " + std::to_string(item.line) + ") asks for model '" +
                        *item.par.model() + "', but --provider " + a.provider + " sends one model per run ('" + model +
                        "'): run the lines of each model separately");
  });
  return model;
}

inline std::string required_env(const char* name, const std::string& why) {
  std::string v = env_or(name, "");
  if (v.empty()) throw usage_error(std::string(name) + " is not set: " + why);
  return v;
}

// Vertex AI serves three wire formats; the model's family picks one unless --vertex-api does.
inline std::string vertex_api_for(const run_args& a) {
  if (!a.vertex_api.empty()) return a.vertex_api;
  if (a.model.rfind("gemini-", 0) == 0) return "gemini";
  if (a.model.rfind("claude-", 0) == 0) return "anthropic";
  return "openai";
}

// The vectors' size: --dimensions, else the one every line that names one gives (one per run:
// it is the provider's setting).
template <class Source>
inline std::optional<std::int64_t> embedding_dimensions(const Source& in, const run_args& a) {
  std::optional<std::int64_t> d = a.dimensions;
  for_each_item(in, [&](const input_item& item) {
    if (!item.dimensions) return;
    if (!d) d = item.dimensions;
    if (*item.dimensions != *d)
      throw usage_error("id '" + item.id_text + "' (line " + std::to_string(item.line) + ") asks for " +
                        std::to_string(*item.dimensions) + " dimensions, but this run sends " + std::to_string(*d) +
                        ": run the lines of each size separately");
  });
  return d;
}

// Azure OpenAI's resource and sign-in: the endpoint (else AZURE_OPENAI_ENDPOINT) and the
// api-version (else OPENAI_API_VERSION; empty: the v1 API) given, the key (else an Entra ID
// token) from the environment.
inline re::azure_openai_settings azure_settings(const std::string& endpoint, const std::string& api_version) {
  re::azure_openai_settings where;
  where.endpoint = !endpoint.empty() ? endpoint : env_or("AZURE_OPENAI_ENDPOINT", "");
  if (where.endpoint.empty())
    throw usage_error("--provider azure needs the resource's endpoint: --base-url or AZURE_OPENAI_ENDPOINT "
                      "(https://{resource}.openai.azure.com)");
  where.api_key = env_or("AZURE_OPENAI_API_KEY", "");
  where.ad_token = env_or("AZURE_OPENAI_AD_TOKEN", "");
  if (where.api_key.empty() && where.ad_token.empty())
    throw usage_error("AZURE_OPENAI_API_KEY is not set (nor AZURE_OPENAI_AD_TOKEN, a Microsoft Entra ID token): "
                      "--provider azure needs one (keys are read from the environment only, never from the "
                      "command line)");
  where.api_version = !api_version.empty() ? api_version : env_or("OPENAI_API_VERSION", "");
  return where;
}

inline re::price_table load_prices(const std::string& path) {
  if (path.empty()) return re::price_table::builtin();
  try {
    return re::price_table::from_file(path);
  } catch (const std::exception& e) {  // both name the file
    std::string what = e.what();
    const std::string prefix = "requests_engine: ";
    if (what.compare(0, prefix.size(), prefix) == 0) what.erase(0, prefix.size());
    throw usage_error("--prices: " + what);
  }
}


}  // namespace detail

inline int run_run(const run_args& a) {
  try {
    const std::string& p = a.provider;
    const re::openai_host* preset = find_openai_preset(p);
    // Everything that speaks OpenAI's API: OpenAI, the hosts with a preset, Azure OpenAI.
    const bool openai_like = p == "openai" || p == "azure" || preset != nullptr;
    if (!openai_like && p != "anthropic" && p != "bedrock" && p != "vertex" && p != "gemini") {
      std::string names = "openai, azure, anthropic, bedrock, vertex, gemini";
      for (const auto& pr : re::openai_hosts()) names += std::string(", ") + pr.name;
      throw usage_error("unknown provider '" + p + "' (" + names + ")");
    }
    if (!a.api_version.empty() && p != "azure") throw usage_error("--api-version is for --provider azure only");
    if (a.concurrency == 0) throw usage_error("--concurrency must be at least 1");
    // The API: --api, else the one the OpenAI Batch input's url names (one per file), else chat.
    const std::string url_api = detail::api_of_url(detail::first_batch_url(a.input));
    std::string api = a.api;
    if (a.embed) {
      if (!api.empty() && api != "embeddings") throw usage_error("embed sends embeddings: --api must be embeddings");
      api = "embeddings";
    }
    if (api.empty()) api = url_api.empty() ? "chat" : url_api;
    if (api != "chat" && api != "completions" && api != "responses" && api != "embeddings")
      throw usage_error("--api must be chat, completions, responses or embeddings, got '" + api + "'");
    if (!url_api.empty() && url_api != "chat" && url_api != api)
      throw usage_error("the input's lines are /v1/" + url_api + " requests: --api " + api + " cannot send them");
    if (api == "embeddings" && url_api.empty() && !a.embed)
      throw usage_error("embeddings of plain input: use requests-engine embed (its lines are {\"id\", \"text\"})");
    if (api == "embeddings" && !openai_like && p != "gemini")
      throw usage_error("embeddings: --provider openai (or another OpenAI-compatible one) or gemini");
    if (!a.api.empty() && a.api != "chat" && a.api != "embeddings" && !openai_like)
      throw usage_error("--api " + a.api + " is for --provider openai (or another OpenAI-compatible one) only");
    if (a.dimensions && api != "embeddings") throw usage_error("--dimensions is for embeddings only");
    if (a.batch_size > 0 && api != "completions")
      throw usage_error("--batch-size sends prompt arrays: it needs --api completions");
    if (a.batch_wait_ms && a.batch_size == 0) throw usage_error("--batch-wait needs --batch-size");
    if (!a.shard.empty()) (void)detail::parse_shard(a.shard);
    if (!a.vertex_api.empty() && p != "vertex") throw usage_error("--vertex-api is for --provider vertex only");
    if (!a.project.empty() && p != "vertex") throw usage_error("--project is for --provider vertex only");
    if (!a.region.empty() && p != "vertex" && p != "bedrock")
      throw usage_error("--region is for --provider bedrock and vertex only");
    const std::string vertex_api = p == "vertex" ? detail::vertex_api_for(a) : std::string();
    if (vertex_api != "" && vertex_api != "openai" && vertex_api != "gemini" && vertex_api != "anthropic")
      throw usage_error("--vertex-api must be openai, gemini or anthropic, got '" + vertex_api + "'");
    const re::price_table prices = detail::load_prices(a.prices);

    // An OpenAI Batch body goes as it is only to an OpenAI-compatible API; the others get it
    // translated field by field (run_input.hpp), so that nothing is dropped without a word.
    const bool raw = (openai_like && api == "chat") || vertex_api == "openai";
    input_options io;
    io.raw_openai_body = raw;
    io.raw_responses_body = openai_like && api == "responses";
    io.embed = api == "embeddings";
    io.temperature = a.temperature;
    io.cache_system_prompt = a.cache_system_prompt;
    if (!a.prompt_cache_ttl.empty()) {
      if (a.prompt_cache_ttl != "5m" && a.prompt_cache_ttl != "1h")
        throw usage_error("--prompt-cache-ttl must be 5m or 1h, got '" + a.prompt_cache_ttl + "'");
      io.prompt_cache_ttl = a.prompt_cache_ttl;
    }
    io.max_tokens = a.max_tokens;
    { input_reader opened(a.input, io); }  // an input that cannot be opened is named first
    const detail::input_source in{a.input, io};

    if (p == "azure") {
      // Azure addresses a deployment: --model names it (the body's "model" on the v1 API).
      const re::azure_openai_settings where = detail::azure_settings(a.base_url, a.api_version);
      const std::string deployment = detail::single_model(in, a, true);
      if (api == "embeddings") {
        auto e = re::openai_embeddings::azure(deployment, where);
        if (const std::int64_t d = detail::embedding_dimensions(in, a).value_or(0); d > 0) e.dimensions(d);
        return run_with(std::move(e), a, in, true, prices);
      }
      if (api == "completions")
        throw usage_error("--provider azure: --api completions is not offered (chat, responses or embeddings)");
      if (api == "responses")
        return run_with(openai_passthrough<re::openai_responses>(re::openai_responses::azure(deployment, where)), a,
                        in, true, prices);
      return run_with(openai_passthrough<re::openai_compatible>(re::openai_compatible::azure(deployment, where)), a,
                      in, true, prices);
    }
    if (openai_like) {
      // OpenAI, or a host with a preset: its base URL and key variable; --base-url overrides
      // the URL (a gateway, the mock), and the key is then optional.
      const std::string official = preset ? preset->base_url : "https://api.openai.com/v1";
      const char* key_variable = preset ? preset->key_variable : "OPENAI_API_KEY";
      const std::string base = !a.base_url.empty() ? a.base_url
                               : preset           ? official
                                                  : detail::env_or("OPENAI_BASE_URL", official);
      const std::string key = detail::api_key(key_variable, base, re::parse_url(official).host);
      if (api == "embeddings") {
        re::openai_embeddings e(key, base, detail::single_model(in, a, true));
        if (const std::int64_t d = detail::embedding_dimensions(in, a).value_or(0); d > 0) e.dimensions(d);
        return run_with(std::move(e), a, in, true, prices);
      }
      detail::check_model(in, a, true);
      if (api == "completions") return run_with(re::openai_completions(key, base, a.model), a, in, false, prices);
      if (api == "responses")
        return run_with(openai_passthrough<re::openai_responses>(re::openai_responses(key, base, a.model)), a, in,
                        true, prices);
      return run_with(openai_passthrough<re::openai_compatible>(re::openai_compatible(key, base, a.model)), a, in,
                      true, prices);
    }
    if (p == "anthropic") {
      if (a.model.empty()) throw usage_error("--provider anthropic needs --model (e.g. claude-sonnet-4-5)");
      const std::string base = !a.base_url.empty() ? a.base_url
                                                   : detail::env_or("ANTHROPIC_BASE_URL", "https://api.anthropic.com");
      const std::string key = detail::api_key("ANTHROPIC_API_KEY", base, "api.anthropic.com");
      return run_with(re::anthropic(key, a.model, base), a, in, false, prices);
    }
    if (p == "gemini") {
      const std::string key = detail::gemini_api_key();
      const std::string model = detail::single_model(in, a, true);
      const std::string base = a.base_url.empty() ? "https://generativelanguage.googleapis.com" : a.base_url;
      if (api == "embeddings") {
        re::gemini_embeddings e(key, model, base);
        if (const std::int64_t d = detail::embedding_dimensions(in, a).value_or(0); d > 0) e.dimensions(d);
        return run_with(std::move(e), a, in, false, prices);
      }
      return run_with(re::gemini(key, model, base), a, in, false, prices);
    }
    if (p == "bedrock") {
      const std::string why = "--provider bedrock signs every request with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                              "and, for temporary credentials, AWS_SESSION_TOKEN from the environment";
      re::aws_credentials creds;
      creds.access_key_id = detail::required_env("AWS_ACCESS_KEY_ID", why);
      creds.secret_access_key = detail::required_env("AWS_SECRET_ACCESS_KEY", why);
      creds.session_token = detail::env_or("AWS_SESSION_TOKEN", "");
      const std::string region = !a.region.empty() ? a.region : re::aws_region_from_environment();
      if (region.empty())
        throw usage_error("no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)");
      const std::string model = detail::single_model(in, a, true);
      return run_with(re::bedrock_anthropic(std::move(creds), region, model, a.base_url), a, in, false, prices);
    }
    // vertex
    const std::string file = detail::required_env(
        "GOOGLE_APPLICATION_CREDENTIALS", "--provider vertex needs the path of a service-account key file in it");
    auto tokens = std::make_shared<re::google_token_source>(re::google_service_account::from_file(file));
    if (!a.ca_cert.empty()) tokens->ca_cert_file(a.ca_cert);  // the key file's token_uri may be private too
    if (a.proxy) tokens->proxy(*a.proxy);
    const std::string region = a.region.empty() ? "us-central1" : a.region;
    if (vertex_api == "openai") {
      detail::check_model(in, a, true);
      return run_with(openai_passthrough<re::vertex_openai>(
                          re::vertex_openai(tokens, region, a.model, a.project, a.base_url)),
                      a, in, true, prices);
    }
    const std::string model = detail::single_model(in, a, true);
    if (vertex_api == "gemini")
      return run_with(re::vertex_gemini(tokens, region, model, a.project, a.base_url), a, in, false, prices);
    return run_with(re::vertex_anthropic(tokens, region, model, a.project, a.base_url), a, in, false, prices);
  } catch (const usage_error& e) {
    std::cerr << "requests-engine " << a.command << ": error: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::invalid_argument& e) {  // a malformed base URL, a bad option, a bad key file
    std::cerr << "requests-engine " << a.command << ": error: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::runtime_error& e) {  // the input file, the cache folder
    std::cerr << "requests-engine " << a.command << ": error: " << e.what() << "\n";
    return exit_usage;
  }
}

/// The options `run` and `embed` share: files, model, pace, retries, cache, output, cost.
inline void add_run_options(CLI::App* c, run_args& a) {
  c->add_option("input", a.input, "Input JSONL file")->required();
  c->add_option("-o,--output", a.output, "Output JSONL file (rewritten on every run)")->required();
  c->add_option("--base-url", a.base_url,
                "API base URL (default: $OPENAI_BASE_URL or https://api.openai.com/v1; "
                "$ANTHROPIC_BASE_URL or https://api.anthropic.com; https://bedrock-runtime.{region}.amazonaws.com; "
                "https://{region}-aiplatform.googleapis.com; https://generativelanguage.googleapis.com)");
  c->add_option("--model", a.model, "Model for lines that name none");
  c->add_option("--concurrency", a.concurrency, "Requests in flight at once (with --batch-size: batches)")
      ->capture_default_str();
  c->add_option("--rpm", a.rpm, "Requests per minute (0 = no limit)")->check(CLI::NonNegativeNumber);
  c->add_option("--tpm", a.tpm, "Tokens per minute (0 = no limit)")->check(CLI::NonNegativeNumber);
  c->add_option("--max-retries", a.max_retries, "Retries after the first attempt (-1 = unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1000000));
  c->add_option("--timeout", a.timeout_seconds, "Seconds an attempt may wait for its answer (default 600)")
      ->check(CLI::Range(0.0, 31536000.0));  // a year: beyond, milliseconds would overflow
  c->add_option("--ca-cert", a.ca_cert,
                "PEM file of the CA certificates to trust for HTTPS instead of the system's: a self-hosted "
                "server or a gateway behind a private CA ($SSL_CERT_FILE does the same)")
      ->check(CLI::ExistingFile);
  c->add_option("--proxy", a.proxy,
                "Send every request through this proxy, http://[user:password@]host[:port] (HTTPS by CONNECT, "
                "the server's certificate still verified); \"\" for none. Default: $HTTPS_PROXY / $HTTP_PROXY, "
                "less the hosts in $NO_PROXY");
  c->add_option("--cache-dir", a.cache_dir,
                "Answer cache folder (default: $REQUESTS_ENGINE_CACHE_DIR or ./requests_engine_cache)");
  c->add_option("--namespace", a.name_space,
                "Cache namespace: inside one, the k-th identical request gets sample k; another starts at 0");
  c->add_flag("--no-cache", a.no_cache, "Neither read nor store answers (a rerun sends everything again)");
  c->add_flag("--ordered", a.ordered, "Write the output in input order (each line once all before it are done)");
  c->add_flag("--no-progress", a.no_progress, "No progress bar (it is shown only on a terminal anyway)");
  c->add_option("--prices", a.prices,
                "JSON price table merged over the built-in one (dollars per million tokens; see the README)");
  c->add_option("--summary-json", a.summary_json, "Also write the end-of-run summary to this file as JSON");
  c->add_option("--events", a.events,
                "Where the run's events go, one line per request (default OUTPUT.events.jsonl; a resumed run "
                "appends): ids, times, attempts, tokens, cost, error codes; no prompt, answer or key");
  c->add_flag("--no-events", a.no_events, "Write no events file (then no --report)");
  c->add_option("--report", a.report,
                "Also write the run's HTML report here at the end (or on interruption): see `requests-engine report`");
  c->add_option("--header", a.headers,
                "'Name: value': a header of your own on every request (repeatable; not part of the cache key; "
                "replaces the provider's header of that name)");
  c->add_option("--secret-header", a.secret_headers,
                "'Name: VARIABLE': a header whose value is read from the environment variable VARIABLE and kept "
                "out of logs, errors and the cache (a gateway's key)");
  c->add_option("--cache-key-header", a.cache_key_headers,
                "'Name: value': a header that is also part of the cache key (answers stored under another value "
                "are not reused)");
  c->add_flag("--cache-system-prompt", a.cache_system_prompt,
             "Claude (anthropic, bedrock, vertex): mark every line's system prompt for the provider's prompt cache "
             "(cache_control), so that requests sharing it pay a tenth of the input price for it once it is cached; "
             "a message with \"cache_control\": {\"type\": \"ephemeral\"} is marked too. Other providers cache "
             "on their own");
  c->add_option("--prompt-cache-ttl", a.prompt_cache_ttl,
                "How long Claude keeps a marked prefix: 5m (default; writes at 1.25x the input price) or 1h (2x)");
  c->add_option("--api-version", a.api_version,
                "--provider azure: the classic deployment routes with this api-version (e.g. 2024-10-21); "
                "default $OPENAI_API_VERSION, else Azure's v1 API");
  c->add_option("--stream", a.stream,
                "auto (stream where the provider needs it: Anthropic answers above 21,333 max tokens), always, "
                "or never; streamed answers are assembled and cached as whole ones, and the summary gives the "
                "time to first token")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  c->add_option("--shard", a.shard,
                "K/N: send only the K-th of N shards (1 <= K <= N, split by request hash), so that N machines "
                "can share one job and one cache folder");
  c->add_option("--dimensions", a.dimensions, "embeddings: the vectors' size, for models that take it")
      ->check(CLI::PositiveNumber);
}

/// Adds `run` to the app; the returned struct says whether it was chosen and runs it.
struct run_command {
  CLI::App* cmd = nullptr;
  std::shared_ptr<run_args> args;
  int run() const { return run_run(*args); }
};

inline run_command add_run_command(CLI::App& app) {
  auto holder = std::make_shared<run_args>();
  run_args& a = *holder;
  CLI::App* c = app.add_subcommand("run", "Send every request of a JSONL file; write one answer per line");
  c->footer(
      "Input (the format is chosen by the first line):\n"
      "  OpenAI Batch: {\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{...}}\n"
      "      With --provider openai (or another OpenAI-compatible one, or Vertex AI's OpenAI API) the\n"
      "      body is sent as it is; other providers get it translated, and its \"model\" (an OpenAI\n"
      "      model) is not used: --model names the model. The url may also be /v1/responses (the\n"
      "      Responses API; other providers get those bodies translated too) or /v1/embeddings (see\n"
      "      `embed`): one endpoint per file, and it chooses the API unless --api does.\n"
      "  plain:        {\"id\":\"a\",\"prompt\":\"...\"} or {\"id\":\"a\",\"messages\":[...]}, optional \"system\",\n"
      "      \"model\", \"temperature\", \"max_tokens\", \"top_p\", \"stop\", \"seed\", \"n\", \"json_mode\",\n"
      "      \"extra\" (JSON merged into the request body).\n"
      "  A line's own settings win over --model/--temperature/--max-tokens. A malformed line is\n"
      "  reported with its line number and skipped; the rest runs.\n"
      "Output: one line per request, as it completes (--ordered: in input order). OpenAI Batch\n"
      "  input gives OpenAI Batch output ({\"id\",\"custom_id\",\"response\",\"error\"}); plain input\n"
      "  gives {\"id\",\"text\",\"finish_reason\",\"model\",\"usage\",\"error\"}. Both add\n"
      "  \"request_hash\" and \"from_cache\".\n"
      "Resume: OUT is rewritten from the start on every run, and every answer received is in the\n"
      "  cache before its line is written. So after a crash or Ctrl-C, the same command again\n"
      "  finishes the batch: stored answers come from the cache (no request, no cost), only the\n"
      "  missing and the failed ones are sent, and OUT ends complete, without duplicates.\n"
      "  Keep --cache-dir, --namespace, the provider flags and the input the same.\n"
      "Providers (credentials come from the environment only, never from the command line):\n"
      "  openai     OPENAI_API_KEY (and OPENAI_BASE_URL); a server other than OpenAI's may need no key\n"
      "  anthropic  ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL); same rule\n"
      "  bedrock    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional); region from\n"
      "             --region, AWS_REGION or AWS_DEFAULT_REGION; --model is the Bedrock model id\n"
      "  vertex     GOOGLE_APPLICATION_CREDENTIALS (a service-account key file); --project (default:\n"
      "             the file's project_id), --region (default us-central1), --vertex-api (default:\n"
      "             gemini for --model gemini-*, anthropic for claude-*, otherwise openai)\n"
      "  gemini     GEMINI_API_KEY (or GOOGLE_API_KEY)\n"
      "  azure      AZURE_OPENAI_ENDPOINT (or --base-url), AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN);\n"
      "             --model is the deployment; --api-version (or OPENAI_API_VERSION) for the classic routes\n"
      "  openrouter, mistral, deepseek, xai, fireworks, groq, together, cerebras: NAME_API_KEY\n"
      "             (OPENROUTER_API_KEY, ...); with --base-url elsewhere, the key is optional\n"
      "  bedrock, gemini and Vertex's gemini and anthropic APIs send one model per run (it is in the URL).\n"
      "Cost: the summary gives the actual spend (answers from the network) and the as-if spend (had\n"
      "  nothing come from the cache), from the built-in price table merged with --prices FILE\n"
      "  ({\"models\": {\"<id>\": {\"input\": 2.5, \"output\": 10, ...}}}, dollars per million tokens);\n"
      "  a model without a price is reported as unknown, never as $0. --summary-json FILE writes the\n"
      "  summary (counts, tokens, the cost report, failed ids, wall time, rate) as JSON.\n"
      "Exit status: 0 all answered; 1 some requests failed or lines were skipped (the summary\n"
      "  names the failed ids); 2 bad usage, nothing sent; 130 interrupted.");
  c->add_option("--provider", a.provider,
                "openai, azure, anthropic, bedrock, vertex or gemini; or an OpenAI-compatible host with a preset: "
                "openrouter, mistral, deepseek, xai, fireworks, groq, together, cerebras")
      ->capture_default_str();
  add_run_options(c, a);
  c->add_option("--region", a.region,
                "bedrock: AWS region (default $AWS_REGION, then $AWS_DEFAULT_REGION); vertex: location "
                "(default us-central1)");
  c->add_option("--project", a.project, "vertex: Google Cloud project (default: the key file's project_id)");
  c->add_option("--vertex-api", a.vertex_api,
                "vertex: openai, gemini or anthropic (default: gemini for --model gemini-*, anthropic for "
                "claude-*, otherwise openai)");
  c->add_option("--temperature", a.temperature, "Temperature for lines that set none");
  c->add_option("--max-tokens", a.max_tokens, "max_tokens for lines that set none")->check(CLI::PositiveNumber);
  c->add_option("--api", a.api,
                "openai: chat (POST /chat/completions), completions (the legacy POST /completions: each line's "
                "prompt is sent as it is, for base models), responses (POST /responses) or embeddings (POST "
                "/embeddings; see `embed`). Default: the API the OpenAI Batch input's url names, else chat");
  c->add_option("--batch-size", a.batch_size,
                "completions: up to N prompts in one HTTP request (`prompt` as an array, as vLLM, llama.cpp "
                "server and OpenAI take it); a batch leaves when full or after --batch-wait")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  c->add_option("--batch-wait", a.batch_wait_ms,
                "with --batch-size: the longest a prompt waits for others, in milliseconds (default 20)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}));
  return run_command{c, holder};
}

/// Adds `embed`: {"id","text"} lines (or OpenAI Batch /v1/embeddings lines) in, one vector per line out.
inline run_command add_embed_command(CLI::App& app) {
  auto holder = std::make_shared<run_args>();
  run_args& a = *holder;
  a.command = "embed";
  a.embed = true;
  CLI::App* c = app.add_subcommand("embed", "Embed every text of a JSONL file; write one vector per line");
  c->footer(
      "Input: {\"id\":\"a\",\"text\":\"...\"} per line, or OpenAI Batch lines\n"
      "  {\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{\"model\",\"input\":\"...\"}}\n"
      "  (one input string per line: each text is cached on its own).\n"
      "Output: {\"id\",\"embedding\":[...],\"model\",\"usage\",\"error\"} per line (OpenAI Batch input gives\n"
      "  OpenAI Batch output, each body an embeddings list). Single texts are packed into requests of\n"
      "  up to 2,048 inputs (OpenAI) or 100 (Gemini); a rerun embeds only the texts not in the cache.\n"
      "Providers: openai (OPENAI_API_KEY, OPENAI_BASE_URL), azure (AZURE_OPENAI_ENDPOINT,\n"
      "  AZURE_OPENAI_API_KEY; --model names the deployment), gemini (GEMINI_API_KEY), or an\n"
      "  OpenAI-compatible preset (see run --help).\n"
      "Exit status: 0 all embedded; 1 some failed or lines were skipped; 2 bad usage; 130 interrupted.");
  c->add_option("--provider", a.provider, "openai, azure, gemini, or an OpenAI-compatible preset (see run --help)")
      ->capture_default_str();
  add_run_options(c, a);
  return run_command{c, holder};
}

}  // namespace requests_engine_cli
