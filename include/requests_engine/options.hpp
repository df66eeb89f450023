// options.hpp: the engine's options and callbacks (progress, each result, retries, log)
// and the progress bar.
#pragma once

#include "cache.hpp"
#include "cost.hpp"
#include "transport.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// Where the engine stands; given to the progress callback and drawn by the progress bar.
/// Counts cover the current busy period: they restart when work arrives at an idle engine.
struct progress {
  std::size_t total = 0;      ///< requests handed to the engine
  std::size_t done = 0;       ///< requests with a final result (success or error)
  std::size_t failed = 0;     ///< of which errors
  std::size_t in_flight = 0;  ///< being sent right now
  std::size_t retries = 0;    ///< retries scheduled so far
  std::size_t cache_hits = 0; ///< of `done`, answers served from the cache
  std::size_t deduplicated = 0;  ///< of `done`, answered by an identical request in flight (not sent)
  std::size_t http_requests = 0;  ///< HTTP requests sent (retries included; a prompt array is one)
  std::size_t batches = 0;         ///< batches handed to a batch provider (see options::batching)
  std::size_t batched = 0;         ///< requests in those batches (mean batch size: batched / batches)
  cache_stats cache;          ///< the cache's counts since the engine was built
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double elapsed_seconds = 0;
  double requests_per_second = 0;  ///< done / elapsed
  double spend = 0;        ///< dollars paid so far (answers from the network, at options::prices())
  double spend_as_if = 0;  ///< dollars as if no answer had come from the cache
  bool spend_complete = true;  ///< false once a model without a price answered (its tokens are not in the dollars)
};

/// One retry about to be scheduled.
struct retry_info {
  std::size_t index = 0;  ///< the request's index (input index in run(), ticket in submit())
  int attempt = 0;        ///< the attempt that failed (1 = the first)
  int http_status = 0;    ///< the answer's HTTP status (200 on success); 0 when no HTTP answer came
  error_code code = error_code::internal;
  std::string message;
  std::chrono::milliseconds wait{0};  ///< until the next attempt
};

/// One attempt to send a request, as it ended (options::on_attempt): what a run report draws.
/// Times are the steady clock's. An answer from the cache, or one shared with an identical
/// request in flight, makes no attempt.
struct attempt_info {
  using time_point = std::chrono::steady_clock::time_point;
  std::size_t index = 0;  ///< the request's index (input index in run(), ticket in submit())
  int attempt = 0;        ///< 1 = the first
  time_point ready{};     ///< when it could have gone but for the rate limits (after any backoff)
  time_point sent{};      ///< when it went: ready..sent is the wait for rate capacity
  time_point ended{};     ///< when its answer, or its failure, came
  int http_status = 0;    ///< 0 when no HTTP answer came
  std::optional<error_code> error;    ///< empty: this attempt answered
  bool retried = false;               ///< another attempt follows
  std::chrono::milliseconds wait{0};  ///< until that next attempt
};

using result_callback = std::function<void(std::size_t index, const result<completion>&)>;
using retry_callback = std::function<void(const retry_info&)>;
using attempt_callback = std::function<void(const attempt_info&)>;
using progress_callback = std::function<void(const progress&)>;
using log_callback = std::function<void(std::string_view line)>;
/// A piece of a streamed answer: the request's index (input index in run(), ticket in submit()).
using delta_callback = std::function<void(std::size_t index, const stream_delta&)>;

/// Engine settings, set fluently: `options().concurrency(64).max_retries(5)`.
class options {
 public:
  /// Worker threads, hence requests in flight at once (default 32).
  options& concurrency(std::size_t n) { concurrency_ = n; return *this; }
  /// Collects requests into batches for a provider that takes them (a batch_backend, or
  /// openai_completions sending prompt arrays): see batching_options. A batch_backend is always fed
  /// this way (with the defaults when unset); for openai_completions it switches batching on.
  /// An embedding provider (openai_embeddings, gemini_embeddings) batches by default with its
  /// own batching_defaults(); this replaces them.
  /// Rate limits and key pools are for one-request-per-call providers and do not apply.
  options& batching(batching_options b) { batching_ = b; return *this; }
  /// Retries after the first attempt; -1 for unlimited (bounded by request_deadline).
  options& max_retries(int n) { max_retries_ = n; return *this; }
  /// First backoff delay, doubled per retry, capped by max_backoff, with jitter.
  options& initial_backoff(std::chrono::milliseconds d) { initial_backoff_ = d; return *this; }
  options& max_backoff(std::chrono::milliseconds d) { max_backoff_ = d; return *this; }
  /// Overall time limit for one request, retries and waits included (0 = none).
  options& request_deadline(std::chrono::milliseconds d) { request_deadline_ = d; return *this; }
  options& connect_timeout(std::chrono::milliseconds d) { transport_.connect_timeout = d; return *this; }
  options& read_timeout(std::chrono::milliseconds d) { transport_.read_timeout = d; return *this; }
  options& write_timeout(std::chrono::milliseconds d) { transport_.write_timeout = d; return *this; }
  /// Certificate verification is on by default; turn it off only for a test server.
  options& verify_tls(bool on) { transport_.verify_tls = on; return *this; }
  options& ca_cert_file(std::string path) { transport_.ca_cert_file = std::move(path); return *this; }
  options& ca_cert_dir(std::string path) { transport_.ca_cert_dir = std::move(path); return *this; }
  options& max_response_bytes(std::size_t n) { transport_.max_response_bytes = n; return *this; }
  /// The proxy for every request, "http://[user:password@]host[:port]"; "" for none. Without it,
  /// HTTPS_PROXY / HTTP_PROXY (and their lower-case forms) are read. See transport_options::proxy.
  options& proxy(std::string url) { transport_.proxy = std::move(url); return *this; }
  /// The hosts never proxied, by curl's NO_PROXY rules; without it, NO_PROXY is read.
  options& no_proxy(std::string list) { transport_.no_proxy = std::move(list); return *this; }
  /// Identical requests (same hash) in flight at once are sent once and share the answer.
  options& deduplicate(bool on) { deduplicate_ = on; return *this; }
  /// Called once per request as it completes (from a worker thread; never two at once).
  options& on_result(result_callback f) { on_result_ = std::move(f); return *this; }
  /// Called before each retry is scheduled (never two callbacks at once).
  options& on_retry(retry_callback f) { on_retry_ = std::move(f); return *this; }
  /// Called as each attempt ends, before on_retry or on_result for it (never two callbacks at
  /// once): its times, status and outcome, for a run report.
  options& on_attempt(attempt_callback f) { on_attempt_ = std::move(f); return *this; }
  /// Called with each piece of a streamed answer as it arrives (text, tool-call arguments,
  /// reasoning), in order, never two callbacks at once. Setting it makes stream_mode::automatic
  /// stream every request of a provider that can. A stream that breaks is retried from the
  /// start: its pieces then come again with stream_delta::attempt one higher.
  options& on_delta(delta_callback f) { on_delta_ = std::move(f); return *this; }
  /// When to ask for a streamed answer (default automatic: where the provider needs it, as
  /// Anthropic does for long answers, or where on_delta is set). A streamed answer is assembled
  /// into the same completion, and cached in the same form, as an unstreamed one; the read
  /// timeout then bounds the silence between events, not the whole answer.
  options& stream(stream_mode m) { stream_ = m; return *this; }
  /// Called at most every progress_interval, and once when the engine becomes idle.
  options& on_progress(progress_callback f) { on_progress_ = std::move(f); return *this; }
  /// Where the engine's own messages go (default: stderr). One line per call, no newline.
  options& on_log(log_callback f) { on_log_ = std::move(f); return *this; }
  /// The prices behind the spend in progress and engine::spend() (default: price_table::builtin()).
  options& prices(std::shared_ptr<const price_table> table) { prices_ = std::move(table); return *this; }
  options& progress_interval(std::chrono::milliseconds d) { progress_interval_ = d; return *this; }
  /// A progress bar on stderr; by default on only when stderr is a terminal.
  options& progress_bar(bool on) { progress_bar_ = on; return *this; }
  /// Folder of the disk cache (the default Cache); empty = no caching.
  options& cache_dir(std::string path) { cache_dir_ = std::move(path); return *this; }
  /// Inside one namespace the k-th identical request gets sample k (1000 copies of a prompt
  /// give 1000 answers; a rerun replays the same ones). Off: every copy gets sample 0.
  options& distinct_samples(bool on) { distinct_samples_ = on; return *this; }
  /// Also store each request body in its cache entry (for export and audit); off by default.
  options& cache_requests(bool on) { cache_requests_ = on; return *this; }
  /// Rate limits (0 = none). A request is sent only when every bucket it needs has room; while
  /// it waits it holds no worker. Limits the server announces in its headers tighten these.
  options& requests_per_minute(double n) { limits_.requests_per_minute = n; return *this; }
  options& requests_per_second(double n) { limits_.requests_per_second = n; return *this; }
  options& tokens_per_minute(double n) { limits_.tokens_per_minute = n; return *this; }
  options& input_tokens_per_minute(double n) { limits_.input_tokens_per_minute = n; return *this; }
  options& output_tokens_per_minute(double n) { limits_.output_tokens_per_minute = n; return *this; }
  /// Learn limits from x-ratelimit-* / anthropic-ratelimit-* headers (on by default).
  options& learn_rate_limits(bool on) { limits_.learn = on; return *this; }
  /// Until a key's first answer, send one request at a time on it, so that the first wave
  /// cannot burst into a limit nobody has announced yet (a key another job has drained). Costs
  /// one round trip per key, once per engine. Off by default.
  options& probe_rate_limits(bool on) { limits_.probe = on; return *this; }

  [[nodiscard]] std::size_t concurrency() const noexcept { return concurrency_; }
  [[nodiscard]] const std::optional<batching_options>& batching() const noexcept { return batching_; }
  [[nodiscard]] int max_retries() const noexcept { return max_retries_; }
  [[nodiscard]] std::chrono::milliseconds initial_backoff() const noexcept { return initial_backoff_; }
  [[nodiscard]] std::chrono::milliseconds max_backoff() const noexcept { return max_backoff_; }
  [[nodiscard]] std::chrono::milliseconds request_deadline() const noexcept { return request_deadline_; }
  [[nodiscard]] const transport_options& transport() const noexcept { return transport_; }
  [[nodiscard]] bool deduplicate() const noexcept { return deduplicate_; }
  [[nodiscard]] const result_callback& on_result() const noexcept { return on_result_; }
  [[nodiscard]] const retry_callback& on_retry() const noexcept { return on_retry_; }
  [[nodiscard]] const attempt_callback& on_attempt() const noexcept { return on_attempt_; }
  [[nodiscard]] const progress_callback& on_progress() const noexcept { return on_progress_; }
  [[nodiscard]] const delta_callback& on_delta() const noexcept { return on_delta_; }
  [[nodiscard]] stream_mode stream() const noexcept { return stream_; }
  [[nodiscard]] const log_callback& on_log() const noexcept { return on_log_; }
  [[nodiscard]] const price_table& prices() const { return prices_ ? *prices_ : price_table::builtin(); }
  [[nodiscard]] std::chrono::milliseconds progress_interval() const noexcept { return progress_interval_; }
  [[nodiscard]] std::optional<bool> progress_bar() const noexcept { return progress_bar_; }
  [[nodiscard]] const std::string& cache_dir() const noexcept { return cache_dir_; }
  [[nodiscard]] bool distinct_samples() const noexcept { return distinct_samples_; }
  [[nodiscard]] bool cache_requests() const noexcept { return cache_requests_; }
  struct rate_limits {
    double requests_per_minute = 0;
    double requests_per_second = 0;
    double tokens_per_minute = 0;
    double input_tokens_per_minute = 0;
    double output_tokens_per_minute = 0;
    bool learn = true;
    bool probe = false;
  };
  [[nodiscard]] const rate_limits& limits() const noexcept { return limits_; }

 private:
  std::size_t concurrency_ = REQUESTS_ENGINE_DEFAULT_CONCURRENCY;
  int max_retries_ = REQUESTS_ENGINE_DEFAULT_MAX_RETRIES;
  std::chrono::milliseconds initial_backoff_{500};
  std::chrono::milliseconds max_backoff_{8000};
  std::chrono::milliseconds request_deadline_{0};
  transport_options transport_;
  bool deduplicate_ = true;
  result_callback on_result_;
  retry_callback on_retry_;
  attempt_callback on_attempt_;
  progress_callback on_progress_;
  delta_callback on_delta_;
  stream_mode stream_ = stream_mode::automatic;
  log_callback on_log_;
  std::shared_ptr<const price_table> prices_;
  std::chrono::milliseconds progress_interval_{100};
  std::optional<bool> progress_bar_;
  std::string cache_dir_;
  bool distinct_samples_ = true;
  bool cache_requests_ = false;
  rate_limits limits_;
  std::optional<batching_options> batching_;
};

namespace detail {

/// One line of progress bar, without the leading '\r'.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string format_progress_bar(const progress& p, std::size_t width);
[[nodiscard]] REQUESTS_ENGINE_INLINE bool stderr_is_terminal() noexcept;

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
