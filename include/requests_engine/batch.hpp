// batch.hpp: the providers' batch APIs (OpenAI Batch for chat completions, responses and
// embeddings; Anthropic Message Batches; Gemini API Batch Mode): split,
// submit, poll, wait, cancel, resume from a saved job, fetch into the cache.
#pragma once

#include "engine.hpp"
#include "anthropic.hpp"
#include "embeddings.hpp"
#include "google.hpp"
#include "openai.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// Where a provider batch (or a whole job of them) stands. OpenAI's names; Anthropic's
/// in_progress / canceling / ended map onto them.
enum class batch_status { validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled };
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string_view to_string(batch_status s) noexcept;
/// completed, failed, expired or cancelled: nothing will change any more.
[[nodiscard]] inline bool is_final(batch_status s) noexcept {
  return s == batch_status::completed || s == batch_status::failed || s == batch_status::expired ||
         s == batch_status::cancelled;
}

/// How much one provider batch may hold; a larger job is split into several batches.
struct batch_limits {
  std::size_t max_requests = 0;
  std::uint64_t max_bytes = 0;  ///< OpenAI: the input file; Anthropic: the create request's body
  [[nodiscard]] static batch_limits openai() { return {50000, 200ull * 1024 * 1024}; }
  [[nodiscard]] static batch_limits anthropic() { return {100000, 256ull * 1024 * 1024}; }
  /// Azure OpenAI's global batch: 100,000 requests and 200 MB per input file.
  [[nodiscard]] static batch_limits azure() { return {100000, 200ull * 1024 * 1024}; }
  /// Gemini API Batch Mode: an input file of at most 2 GB; no documented request limit.
  [[nodiscard]] static batch_limits gemini() { return {std::numeric_limits<std::size_t>::max(), 2000000000ull}; }
};

/// One batch on the provider's side: a contiguous run of the job's requests (less those the
/// cache answered at submit, which are never uploaded).
struct batch_part {
  std::string id;
  std::size_t first = 0;  ///< index in the job of its first request
  std::size_t count = 0;  ///< the run's length in the job, cached requests inside it included
  batch_status status = batch_status::validating;
  std::size_t succeeded = 0, failed = 0;  ///< requests finished so far, as the provider counts them
  std::string input_file_id, output_file_id, error_file_id, results_url;  ///< Gemini: files/..., its results file
  std::string message;  ///< why the provider failed the whole batch, if it did
};

/// A submitted job: everything needed to poll and fetch it later, from another process
/// (save() / load()). Holds no secret: the provider (and its key) is given again on resume.
struct batch_job {
  std::string api;         ///< "openai", "anthropic" or "gemini"
  std::string endpoint;    ///< the provider's endpoint (checked on resume)
  json identity;           ///< the provider's cache identity
  std::string name_space;  ///< the cache namespace of the answers
  std::vector<std::string> hashes;   ///< per request: its request hash (the cache key)
  std::vector<std::size_t> samples;  ///< per request: its sample index
  std::vector<batch_part> parts;
  /// Requests (indices, ascending) whose answer was already in the cache at submit: not
  /// uploaded, fetch() reads them from the cache (from_cache, costing nothing).
  std::vector<std::size_t> cached;
  json user;  ///< the caller's data saved with the job (batch_settings::user_data), e.g. its input ids
  /// Made by batch_client::export_requests for a runner of the caller's (vLLM's run-batch, a
  /// script, another batch service): its answers come back through import_results, never
  /// through poll / cancel / fetch, which refuse it.
  bool offline = false;

  [[nodiscard]] std::size_t size() const noexcept { return hashes.size(); }
  /// The job's status: the least advanced unfinished part; when all are final, completed
  /// only if all completed (else failed, expired or cancelled, in that order).
  [[nodiscard]] REQUESTS_ENGINE_INLINE batch_status status() const noexcept;
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::size_t succeeded() const noexcept;
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::size_t failed() const noexcept;
  [[nodiscard]] REQUESTS_ENGINE_INLINE json to_json() const;
  /// Throws std::invalid_argument naming the missing or malformed field.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE batch_job from_json(const json& j);
  /// Written to a temporary file and renamed into place; throws std::runtime_error.
  REQUESTS_ENGINE_INLINE void save(const std::string& path) const;
  [[nodiscard]] static REQUESTS_ENGINE_INLINE batch_job load(const std::string& path);
};

/// A job written for an offline runner: OpenAI Batch input lines for the requests the cache
/// does not answer, each with custom_id "request-<index in the job>".
struct batch_export {
  batch_job job;                   ///< offline; one part ("offline") over the exported requests
  std::vector<std::string> lines;  ///< without their newline; empty if the cache answered everything
};

/// A line of a results file that import_results left out, and why (line numbers from 1).
struct batch_import_problem {
  std::size_t line = 0;
  std::string message;
};

/// What import_results read: per request of the job (input order), its result, or nothing when
/// the file has no line for it (the caller decides what that means: the runner stopped early).
struct batch_import {
  std::vector<std::optional<result<completion>>> results;
  std::vector<batch_import_problem> problems;
  std::size_t lines = 0;     ///< non-empty lines read
  std::size_t answered = 0;  ///< requests the file answered (successes and error lines)
};

/// Settings of the batch client beside the engine options (which give the transport, TLS,
/// timeouts, control-call retries and backoff, the log and the cache folder).
class batch_settings {
 public:
  /// Default: the provider's documented limits (batch_limits::openai() / anthropic()).
  batch_settings& limits(batch_limits l) { limits_ = l; return *this; }
  /// Between two status checks in wait() (default 30 s).
  batch_settings& poll_interval(std::chrono::milliseconds d) { poll_interval_ = d; return *this; }
  /// OpenAI's completion_window (only "24h" is offered today).
  batch_settings& completion_window(std::string w) { completion_window_ = std::move(w); return *this; }
  /// OpenAI batch metadata (at most 16 string pairs).
  batch_settings& metadata(json m) { metadata_ = std::move(m); return *this; }
  /// When set, the job is saved here after every batch created and every poll: a crash between
  /// two parts of a split job loses no batch id.
  batch_settings& state_file(std::string path) { state_file_ = std::move(path); return *this; }
  /// Gemini: a batch whose requests total at most this many bytes is sent inline in the create
  /// call (default 20 MB, the documented limit); a larger one as a JSONL file through the Files
  /// API's resumable upload.
  batch_settings& inline_bytes(std::uint64_t n) { inline_bytes_ = n; return *this; }
  /// Cap on one downloaded result file (default 4 GiB).
  batch_settings& max_download_bytes(std::size_t n) { max_download_bytes_ = n; return *this; }
  /// Saved with the job as batch_job::user (never sent to the provider).
  batch_settings& user_data(json j) { user_data_ = std::move(j); return *this; }

  [[nodiscard]] const std::optional<batch_limits>& limits() const noexcept { return limits_; }
  [[nodiscard]] std::chrono::milliseconds poll_interval() const noexcept { return poll_interval_; }
  [[nodiscard]] const std::string& completion_window() const noexcept { return completion_window_; }
  [[nodiscard]] const json& metadata() const noexcept { return metadata_; }
  [[nodiscard]] const std::string& state_file() const noexcept { return state_file_; }
  [[nodiscard]] std::size_t max_download_bytes() const noexcept { return max_download_bytes_; }
  [[nodiscard]] std::uint64_t inline_bytes() const noexcept { return inline_bytes_; }
  [[nodiscard]] const json& user_data() const noexcept { return user_data_; }

 private:
  std::optional<batch_limits> limits_;
  std::chrono::milliseconds poll_interval_{30000};
  std::string completion_window_ = "24h";
  json metadata_;
  std::string state_file_;
  std::size_t max_download_bytes_ = std::size_t(4) << 30;
  std::uint64_t inline_bytes_ = 20000000;
  json user_data_;
};

/// The providers' batch APIs: OpenAI Batch (and OpenAI-compatible servers that implement it)
/// and Anthropic Message Batches, with one lifecycle: submit, poll or wait, cancel, fetch.
/// Each line's body is the provider's make_body(), so its request hash (the cache key) is the
/// online one; fetched answers are written into the cache, where a later engine run finds them.
/// Not thread-safe: one client per thread.
namespace detail {
struct batch_client_access;  // the fuzz target of result files reads them as fetch() does
}  // namespace detail

class batch_client {
 public:
  using progress_fn = std::function<void(const batch_job&)>;

  /// OpenAI Batch with /v1/chat/completions lines. An Azure OpenAI provider
  /// (openai_compatible::azure, and the Responses and embeddings ones) speaks Azure's Batch API
  /// on its resource's /openai/v1/files and /openai/v1/batches (or the classic /openai/files
  /// and /openai/batches with its api-version), with lines naming /chat/completions and the
  /// deployment as their model; the deployment must be a Global-Batch one.
  REQUESTS_ENGINE_INLINE batch_client(openai_compatible p, options o = options(), batch_settings s = batch_settings());
  /// OpenAI Batch with /v1/responses lines.
  REQUESTS_ENGINE_INLINE batch_client(openai_responses p, options o = options(), batch_settings s = batch_settings());
  /// OpenAI Batch with /v1/embeddings lines, one input each (so that each is cached on its own;
  /// OpenAI's limit of 50,000 embedding inputs per batch is then its 50,000 lines). Identical
  /// inputs in a job are sent once and share its answer (marked deduplicated), as online.
  REQUESTS_ENGINE_INLINE batch_client(openai_embeddings p, options o = options(), batch_settings s = batch_settings());
  REQUESTS_ENGINE_INLINE batch_client(anthropic p, options o = options(), batch_settings s = batch_settings());
  /// Gemini API Batch Mode (models/{model}:batchGenerateContent, the key in x-goog-api-key):
  /// each request is the online provider's GenerateContentRequest with its key; inline while
  /// the batch is at most batch_settings::inline_bytes, else an uploaded JSONL file. States
  /// BATCH_STATE_* (and the JOB_STATE_* spellings); results inline or from the responses file.
  REQUESTS_ENGINE_INLINE batch_client(gemini p, options o = options(), batch_settings s = batch_settings());

  /// Stores the answers in this cache instead of the disk cache of options::cache_dir (share
  /// it with an engine: basic_engine(provider, options, cache)).
  template <class Cache>
  batch_client& cache(std::shared_ptr<Cache> c) {
    struct holder final : detail::cache_ops {
      explicit holder(std::shared_ptr<Cache> p) : c(std::move(p)) {}
      std::optional<std::string> load(const cache_key& k) override { return c->load(k); }
      void store(const cache_key& k, const std::string& e) override { c->store(k, e); }
      std::shared_ptr<Cache> c;
    };
    cache_ = c ? std::make_unique<holder>(std::move(c)) : nullptr;
    return *this;
  }

  /// Builds every body (a bad one fails the submit, naming its index), leaves out the requests
  /// whose answer is already in the cache (batch_job::cached), splits the rest to the limits and
  /// creates one provider batch per part (none if the cache answered everything). If a later
  /// part cannot be created, the ones already created are cancelled and the error is returned.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_job> submit(const std::vector<conversation>& batch,
                                                                const params& p = params(),
                                                                const std::string& name_space = std::string());
  /// The same with one params per conversation (the sizes must match).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_job> submit(const std::vector<conversation>& batch,
                                                                const std::vector<params>& per_request,
                                                                const std::string& name_space = std::string());
  /// Asks the provider for the status of every unfinished part; returns the job's status.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_status> poll(batch_job& job);
  /// Polls every poll_interval until the job is final (or `timeout` passes, if non-zero:
  /// deadline_exceeded); `on_progress` gets the job after each poll.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_status> wait(batch_job& job, const progress_fn& on_progress = {},
                                                                 std::chrono::milliseconds timeout = {});
  /// Asks the provider to cancel every unfinished part (then poll until cancelled).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_status> cancel(batch_job& job);
  /// One result per request of a final job, in input order: the answers parsed by the
  /// provider's parse_response (as online answers), errors for failed, expired (code
  /// deadline_exceeded) and cancelled requests. Successes are stored in the cache; the
  /// requests the cache answered at submit are read from it again (invalid_request if gone).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<std::vector<result<completion>>> fetch(const batch_job& job);
  /// For an offline runner (vLLM's run-batch, SGLang, a script, a batch service the library
  /// does not speak): the job, as submit() would make it, and the OpenAI Batch input lines of
  /// the requests the cache does not answer (all in one part: no provider limit applies). Lines
  /// name the provider's path (e.g. /v1/chat/completions) and carry custom_id "request-<index>".
  /// OpenAI-shaped providers only (Anthropic's batch lines have no offline runner).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_export> export_requests(const std::vector<conversation>& batch,
                                                                           const params& p = params(),
                                                                           const std::string& name_space = std::string());
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_export> export_requests(const std::vector<conversation>& batch,
                                                                           const std::vector<params>& per_request,
                                                                           const std::string& name_space = std::string());
  /// Reads an OpenAI Batch output file (OpenAI's, vLLM's run-batch, any runner writing that
  /// shape) for an exported job: each line mapped back by its custom_id, its answer parsed as
  /// online and stored in the cache. A line that is not JSON (a truncated last line), whose
  /// custom_id is not a request of the job, or that repeats one, is left out and named in
  /// problems; every other line is imported. Requests the cache answered at export come from it.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<batch_import> import_results(const batch_job& job, std::string_view text);
  /// Gemini: deletes what a final job left on the provider's side, once its answers are fetched:
  /// the uploaded input files, the responses files and the batches. Returns how many were
  /// deleted (one already gone counts as deleted). Other APIs: invalid_request.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<std::size_t> remove(const batch_job& job);
  /// submit + wait + fetch.
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<std::vector<result<completion>>> run(
      const std::vector<conversation>& batch, const params& p = params(), const std::string& name_space = std::string(),
      const progress_fn& on_progress = {});

  [[nodiscard]] const batch_limits& limits() const noexcept { return limits_; }
  [[nodiscard]] const std::string& api() const noexcept { return api_; }

 private:
  friend struct detail::batch_client_access;
  REQUESTS_ENGINE_INLINE void init(const std::string& endpoint);
  struct prepared {
    batch_job job;
    std::vector<std::string> lines;
    std::vector<std::size_t> sent;  // per line: its request's index in the job
  };
  REQUESTS_ENGINE_INLINE result<prepared> prepare(const std::vector<conversation>& batch, const params* one,
                                                  const std::vector<params>* many, const std::string& name_space,
                                                  bool check_size);
  REQUESTS_ENGINE_INLINE result<batch_job> submit_with(const std::vector<conversation>& batch, const params* one,
                                                       const std::vector<params>* many, const std::string& name_space);
  REQUESTS_ENGINE_INLINE result<batch_export> export_with(const std::vector<conversation>& batch, const params* one,
                                                          const std::vector<params>* many,
                                                          const std::string& name_space);
  REQUESTS_ENGINE_INLINE void share_repeats(const batch_job& job,
                                            std::vector<std::optional<result<completion>>>& out) const;
  REQUESTS_ENGINE_INLINE result<http_response> call(const std::string& method, const std::string& url,
                                                    std::string body, std::string content_type, bool download,
                                                    const header_list& extra = {});
  REQUESTS_ENGINE_INLINE result<json> call_json(const std::string& method, const std::string& url,
                                                const std::string& body = std::string(),
                                                const std::string& content_type = "application/json");
  REQUESTS_ENGINE_INLINE result<batch_part> create_part(const std::vector<std::string>& lines, std::size_t lo,
                                                        std::size_t hi);
  REQUESTS_ENGINE_INLINE result<json> create_gemini_part(const std::vector<std::string>& lines, std::size_t lo,
                                                         std::size_t hi, batch_part& part);
  // Gemini: a finished batch's results as JSONL lines {key, response | error}.
  REQUESTS_ENGINE_INLINE result<std::string> gemini_results(const batch_job& job, const batch_part& part);
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string batch_url(const batch_part& part, std::string_view action) const;
  REQUESTS_ENGINE_INLINE void update_part(batch_part& part, const json& obj) const;
  // Maps the results lines of requests [lo, hi) into out; returns how many it mapped. With
  // problems, each line left out is named there (line numbers from 1).
  REQUESTS_ENGINE_INLINE std::size_t map_lines(std::string_view text, const batch_job& job, std::size_t lo,
                                               std::size_t hi, std::vector<std::optional<result<completion>>>& out,
                                               std::vector<batch_import_problem>* problems = nullptr,
                                               std::size_t* lines_read = nullptr);
  REQUESTS_ENGINE_INLINE result<completion> parse(int status, const std::string& body) const;
  REQUESTS_ENGINE_INLINE void store(const batch_job& job, std::size_t index, const std::string& body);
  REQUESTS_ENGINE_INLINE std::optional<completion> from_cache(const batch_job& job, std::size_t index) const;
  REQUESTS_ENGINE_INLINE error scrub(error e) const;
  REQUESTS_ENGINE_INLINE std::optional<error> check_job(const batch_job& job, bool offline = false) const;
  REQUESTS_ENGINE_INLINE void log(const std::string& line) const;

  std::variant<openai_compatible, openai_responses, openai_embeddings, anthropic, gemini> provider_;
  std::string api_;
  std::string endpoint_;  // the provider's (chat completions, responses, embeddings or messages)
  std::string base_;      // OpenAI: .../v1; Anthropic: .../v1/messages/batches
  std::string line_url_;  // OpenAI: the path each line names, e.g. /v1/chat/completions
  std::string query_;     // Azure's classic routes: "?api-version=..." on every call
  std::string host_;      // Gemini: scheme://host, for the upload and download routes
  std::string create_url_;  // Gemini: .../models/{model}:batchGenerateContent
  bool shared_samples_ = false;  // embeddings: identical inputs share sample 0
  options options_;
  batch_settings settings_;
  batch_limits limits_;
  std::unique_ptr<transport> transport_, download_transport_;
  std::unique_ptr<transport_session> session_, download_session_;
  std::unique_ptr<detail::cache_ops> cache_;
  std::shared_ptr<disk_cache> disk_;  // the default cache, owned here
  std::vector<std::string> secrets_;
  std::mt19937_64 rng_{std::random_device{}()};
};

REQUESTS_ENGINE_NAMESPACE_END
