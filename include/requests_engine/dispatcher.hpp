// dispatcher.hpp: the non-template machinery under the engine: a fixed pool of workers
// over a timed queue, retries, deduplication, samples, the cache, progress.
#pragma once

#include "cache.hpp"
#include "limiter.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

using deliver_fn = std::function<void(result<completion>&&)>;

/// One request as the dispatcher sees it: a body, its bookkeeping, and where the answer goes.
struct job {
  std::size_t index = 0;     // reported to callbacks
  std::string body;
  std::string request_hash;
  std::size_t sample = 0;    // which answer of this request (see options::distinct_samples)
  std::size_t wanted = 1;    // how many consecutive samples it takes (params::n, slotted)
  const conversation* source = nullptr;  // a slotted job's input, until the engine settles it
  // For params::n > 1: the sample slots this request fills (the missing ones, in order), and
  // the answers already found in the cache for the others, merged into the result.
  std::vector<std::size_t> slots;
  std::vector<std::pair<std::size_t, completion>> found;
  std::string name_space;    // recorded in the cache entry
  bool looked_up = false;    // the cache was consulted already
  std::atomic<int> attempts{0};  // written by the worker, read by cancel()
  std::size_t worker = no_worker;  // the worker sending it (guarded by dispatcher::mutex_)
  static constexpr std::size_t no_worker = static_cast<std::size_t>(-1);
  clock::time_point first_sent{};
  // This attempt (options::on_attempt): ready to go but for the rate limits, and sent.
  clock::time_point attempt_ready{};
  clock::time_point attempt_sent{};
  int attempt_status = 0;  // the HTTP status of this attempt's answer (0: none came)
  clock::time_point deadline = clock::time_point::max();
  deliver_fn deliver;
  // Identical requests that arrived while this one was under way: they get its answer.
  std::vector<std::pair<std::size_t, deliver_fn>> followers;
  std::atomic<bool> cancelled{false};  // polled by the transport while the body arrives
  std::atomic<bool> delivered{false};  // the first to set it delivers (worker or cancel())
  bool deduplicated = false;           // registered in dispatcher::leaders_
  request_cost cost;                   // what it takes from the rate buckets (estimated)
  std::size_t key = 0;                 // which provider of the key pool sends this attempt
  bool rate_reserved = false;          // this attempt's capacity is reserved (it may wait for it)
  bool probe = false;                  // the engine's first request, sent alone (options::probe_rate_limits)
  int failovers = 0;                   // attempts that went to a key the server then rejected
  // For a batch provider (options::batching): the request as the batch function sees it (for
  // a slotted job, params with n = the missing samples), and when it joined the batch queue.
  std::shared_ptr<const conversation> input;
  std::shared_ptr<const params> input_params;
  clock::time_point queued_at{};
  std::size_t batch_pos = 0;  // its place in its collector's worker_slot::batch (guarded by dispatcher::mutex_)
};

/// A 64-bit fingerprint of a string (FNV-1a, then splitmix64's finaliser); never 0. Two
/// different strings share one with a chance of about n^2 / 2^65 among n strings (3e-8 at a
/// million).
inline std::uint64_t fingerprint64(std::string_view text, std::uint64_t seed = 1469598103934665603ULL) noexcept {
  std::uint64_t h = seed;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h == 0 ? 1 : h;  // 0 marks an empty slot
}

/// A set of fingerprints in one flat open-addressed table: 8 bytes a slot, at most 7/8 full
/// (what a run that sees every request once keeps per request).
class fingerprint_set {
 public:
  [[nodiscard]] bool contains(std::uint64_t f) const noexcept {
    if (slots_.empty()) return false;
    for (std::size_t i = f & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == f) return true;
      if (slots_[i] == 0) return false;
    }
  }
  /// False when it was there already.
  bool insert(std::uint64_t f) {
    if ((size_ + 1) * 8 > slots_.size() * 7) grow();
    if (!place(slots_, f)) return false;
    ++size_;
    return true;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void clear() noexcept {
    std::vector<std::uint64_t>().swap(slots_);
    size_ = 0;
  }

 private:
  static bool place(std::vector<std::uint64_t>& slots, std::uint64_t f) noexcept {
    for (std::size_t i = f & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1)) {
      if (slots[i] == f) return false;
      if (slots[i] == 0) {
        slots[i] = f;
        return true;
      }
    }
  }
  void grow() {
    std::vector<std::uint64_t> bigger(slots_.empty() ? 1024 : slots_.size() * 2, 0);
    for (std::uint64_t f : slots_)
      if (f != 0) (void)place(bigger, f);
    slots_.swap(bigger);
  }
  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
};

/// How many samples of each (namespace, request hash) the engine has handed out: a fingerprint
/// per request seen once (8 bytes in a flat table, not a string in a map), a count for those
/// seen more often. Not thread-safe.
class sample_counter {
 public:
  /// The first of `count` consecutive samples for this request, and counts them.
  std::size_t take(std::string_view name_space, std::string_view hash, std::size_t count) {
    const std::uint64_t f = fingerprint64(hash, fingerprint64(name_space));
    if (auto it = more_.find(f); it != more_.end()) {
      const std::size_t first = it->second;
      it->second += count;
      return first;
    }
    if (once_.contains(f)) {
      more_.emplace(f, 1 + count);
      return 1;
    }
    if (count == 1)
      (void)once_.insert(f);
    else if (count > 1)
      more_.emplace(f, count);
    return 0;
  }

 private:
  fingerprint_set once_;
  std::unordered_map<std::uint64_t, std::size_t> more_;
};

/// A fixed pool of workers over a timed queue. A job waiting for its retry sits in the queue,
/// not in a worker, so `concurrency` is always the number of requests really in flight.
class dispatcher {
 public:
  /// `ops` holds one provider per API key (usually one).
  REQUESTS_ENGINE_INLINE dispatcher(const options& o, std::vector<std::unique_ptr<provider_ops>> ops,
                                    transport& t, std::unique_ptr<cache_ops> cache, json identity);
  REQUESTS_ENGINE_INLINE ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  /// Announces `n` requests (for progress); a new busy period starts if the engine was idle.
  REQUESTS_ENGINE_INLINE void reserve(std::size_t n);
  /// See engine::expect.
  REQUESTS_ENGINE_INLINE void expect(std::size_t n);
  /// Queues announced jobs (or attaches them to an identical one under way). Never blocks on
  /// the network.
  REQUESTS_ENGINE_INLINE void push(std::vector<std::unique_ptr<job>> jobs);
  /// Turns inputs 0..n-1 into jobs and hands them over, chunk by chunk, on the calling thread
  /// and up to `threads - 1` helpers. `prepare(i)` builds input i's job (null: it delivered an
  /// error already); the samples are then assigned in input order, chunk after chunk, so the
  /// k-th identical request still gets sample k; `settle(j)` finishes a job after that (false:
  /// it delivered the job's result itself). Jobs the cache answers are delivered at once,
  /// without the queue. Returns when every job is handed over.
  REQUESTS_ENGINE_INLINE void feed(std::size_t n, std::size_t threads,
                                   const std::function<std::unique_ptr<job>(std::size_t)>& prepare,
                                   const std::function<bool(job&)>& settle);
  /// Gives a prepared job its first sample index (see options::distinct_samples).
  REQUESTS_ENGINE_INLINE void assign(job& j);
  /// Delivers a result that never needed the network (e.g. bad input), with the callbacks.
  REQUESTS_ENGINE_INLINE void complete_now(std::size_t index, result<completion>&& r, const deliver_fn& deliver);
  /// Ends all work handed over so far: queued and waiting requests, and those in flight
  /// (their connections are shut), come back as `cancelled` at once. Later work runs normally.
  REQUESTS_ENGINE_INLINE void cancel();
  [[nodiscard]] REQUESTS_ENGINE_INLINE progress snapshot() const;
  [[nodiscard]] cost_report spend() const {
    std::lock_guard<std::mutex> lock(spend_mutex_);
    return spend_;
  }
  [[nodiscard]] std::size_t next_ticket() noexcept { return ticket_.fetch_add(1); }
  [[nodiscard]] REQUESTS_ENGINE_INLINE cache_stats stats() const;
  [[nodiscard]] bool cache_enabled() const noexcept { return cache_ != nullptr; }
  /// The stored answer for one sample, if good (counts as a hit or a miss).
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<completion> lookup(const std::string& hash, std::size_t sample);
  /// Reserves `count` consecutive sample indexes for this hash in this namespace; returns the first.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::size_t assign_samples(const std::string& name_space,
                                                                  const std::string& hash, std::size_t count);
  [[nodiscard]] bool provider_can_split() const { return ops_.front()->can_split(); }
  /// Requests go to the provider in batches (see options::batching): jobs carry their input.
  [[nodiscard]] bool batching() const noexcept { return batching_; }
  /// Answers a job from the cache if it can (once per job): true when it delivered the result.
  REQUESTS_ENGINE_INLINE bool answer_from_cache(job& j);
  /// Whether requests need a cost estimate: limits configured, or learned from the server.
  [[nodiscard]] bool rate_limited() const noexcept {
    for (const auto& k : keys_)
      if (k->limiter.active()) return true;
    return false;
  }
  /// Keys of the pool the server rejected (401, 403, insufficient_quota), by index.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::size_t> rejected_keys() const;
  /// The limits learned from the server's headers for one key (0 where none).
  [[nodiscard]] options::rate_limits learned_limits(std::size_t key) const { return keys_.at(key)->limiter.learned(); }
  [[nodiscard]] const std::string& identity_dump() const noexcept { return identity_dump_; }
  /// Through on_log, or stderr.
  REQUESTS_ENGINE_INLINE void log(const std::string& line);

 private:
  struct timed {
    clock::time_point at;
    std::uint64_t seq;
    job* j;
    bool operator>(const timed& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct worker_slot {
    transport_session* session = nullptr;
    job* current = nullptr;
    std::vector<job*> batch;  // a collector's batch in the backend
  };
  REQUESTS_ENGINE_INLINE void worker_main(std::size_t id);
  // Blocks SIGPIPE in this thread, opens its transport session and records it in its slot.
  REQUESTS_ENGINE_INLINE std::unique_ptr<transport_session> open_worker_session(std::size_t id);
  // Batch providers: `concurrent` collectors each take a batch from ready_ (when full, or when
  // its first request has waited max_wait) and hand it to the provider.
  REQUESTS_ENGINE_INLINE void collector_main(std::size_t id);
  REQUESTS_ENGINE_INLINE std::vector<std::unique_ptr<job>> take_batch(std::size_t id);
  REQUESTS_ENGINE_INLINE void run_batch(std::vector<std::unique_ptr<job>> batch, transport_session& s);
  // After an attempt: delivers a success or a final error, or schedules the retry.
  // options::on_attempt, as an attempt ends (a no-op for a job that made none).
  REQUESTS_ENGINE_INLINE void report_attempt(job& j, const result<completion>& outcome, bool retried,
                                             std::chrono::milliseconds wait);
  REQUESTS_ENGINE_INLINE void conclude(std::unique_ptr<job> j, result<completion>&& outcome, bool retryable,
                                       std::optional<std::chrono::milliseconds> retry_after);
  // Stores a fresh answer (every slot of a multi-sample job); returns the result to deliver.
  REQUESTS_ENGINE_INLINE result<completion> store_answer(job& j, result<completion>&& outcome,
                                                         const std::string& response_body);
  REQUESTS_ENGINE_INLINE std::unique_ptr<job> pop(std::size_t worker);
  REQUESTS_ENGINE_INLINE void run_attempt(std::unique_ptr<job> j, transport_session& s);
  // Whether this attempt asks for a streamed answer (options::stream, on_delta, the provider's rule).
  [[nodiscard]] bool wants_stream(const provider_ops& p, const std::string& body) const {
    if (!p.can_stream()) return false;
    switch (options_.stream()) {
      case stream_mode::never: return false;
      case stream_mode::always: return true;
      case stream_mode::automatic: break;
    }
    return static_cast<bool>(options_.on_delta()) || p.stream_needed(body);
  }
  REQUESTS_ENGINE_INLINE void finish(std::unique_ptr<job> j, result<completion>&& r);
  REQUESTS_ENGINE_INLINE void deliver_all(std::size_t index, const deliver_fn& deliver,
                                          std::vector<std::pair<std::size_t, deliver_fn>>& followers,
                                          result<completion>&& r);
  REQUESTS_ENGINE_INLINE void schedule_retry(std::unique_ptr<job> j, clock::time_point at);
  // Under mutex_: the job leaves its worker's slot, so cancel() no longer reaches it.
  void release_slot(job& j) {
    if (j.worker != job::no_worker) {
      worker_slot& slot = slots_[j.worker];
      if (slot.current == &j) slot.current = nullptr;
      // O(1): a batch of thousands leaves its slot one job at a time, under the lock.
      if (j.batch_pos < slot.batch.size() && slot.batch[j.batch_pos] == &j) {
        slot.batch[j.batch_pos] = slot.batch.back();
        slot.batch[j.batch_pos]->batch_pos = j.batch_pos;
        slot.batch.pop_back();
      }
      j.worker = job::no_worker;
    }
  }
  REQUESTS_ENGINE_INLINE std::chrono::milliseconds backoff(int retry_number);
  REQUESTS_ENGINE_INLINE void tick(bool force);
  REQUESTS_ENGINE_INLINE void emit_progress_locked();  // under callback_mutex_
  REQUESTS_ENGINE_INLINE void ticker_main();
  // The cache's answer for a job, if it has a good one.
  REQUESTS_ENGINE_INLINE std::optional<completion> from_cache(const job& j);
  REQUESTS_ENGINE_INLINE std::optional<completion> from_cache(const cache_key& key);
  // For a multi-sample job: store each choice in its slot, and merge with what was found.
  REQUESTS_ENGINE_INLINE completion fill_slots(job& j, completion fresh, const std::string& response_body);
  REQUESTS_ENGINE_INLINE void to_cache(const job& j, std::size_t sample, const std::string& response_body);
  template <class F>
  void guarded_callback(const char* what, F&& f) {
    std::lock_guard<std::mutex> lock(callback_mutex_);
    guarded_callback_locked(what, std::forward<F>(f));
  }
  template <class F>
  void guarded_callback_locked(const char* what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      log(std::string(what) + " callback threw: " + e.what());
    } catch (...) {
      log(std::string(what) + " callback threw a non-standard exception");
    }
  }

  options options_;
  std::vector<std::unique_ptr<provider_ops>> ops_;
  struct key_state {
    explicit key_state(const options::rate_limits& l) : limiter(l) {}
    rate_limiter limiter;
    std::atomic<bool> alive{true};
    std::atomic<int> in_flight{0};
  };
  std::vector<std::unique_ptr<key_state>> keys_;  // one per provider in ops_
  std::atomic<std::size_t> next_key_{0};
  static constexpr std::size_t no_key = static_cast<std::size_t>(-1);
  // The key for the next attempt (the one whose buckets allow it soonest, then the least
  // busy), with its capacity reserved; `at` is when it may go. no_key when none is left.
  REQUESTS_ENGINE_INLINE std::size_t choose_key(const request_cost& c, clock::time_point now, clock::time_point& at);
  // When the soonest key could send it (no reservation); no_key when none is left.
  REQUESTS_ENGINE_INLINE std::size_t earliest_key(const request_cost& c, clock::time_point now, clock::time_point& at);
  std::vector<std::string> secrets_;
  transport& transport_;
  std::unique_ptr<cache_ops> cache_;
  json identity_;
  std::string identity_dump_;
  bool draw_bar_ = false;

  std::mutex samples_mutex_;
  sample_counter samples_;
  static constexpr std::size_t trim_stacks_from = 256;  // workers (see worker_main)
  std::mutex corrupt_mutex_;
  std::set<std::string> reported_corrupt_;
  std::atomic<std::size_t> cache_hits_total_{0}, cache_misses_{0}, cache_writes_{0}, cache_write_errors_{0},
      cache_corrupt_{0}, period_cache_hits_{0}, period_deduplicated_{0};
  std::atomic<std::uint64_t> cache_bytes_read_{0}, cache_bytes_written_{0};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<job>> ready_;
  std::priority_queue<timed, std::vector<timed>, std::greater<timed>> waiting_;
  std::unordered_map<std::string, job*> leaders_;  // "hash-sample" -> the job under way for it
  std::vector<worker_slot> slots_;
  // Requests waiting for rate capacity hold no reservation while they wait: one is at the head
  // (asleep in head_ until head_at_, woken early when an answer gives capacity back), the rest
  // wait in line behind it. Capacity booked ahead at the estimate would never feel what the
  // answers give back (rate_limiter::correct), and the run would be paced by the estimate.
  std::deque<std::unique_ptr<job>> line_;
  std::unique_ptr<job> head_;
  clock::time_point head_at_{};
  job* head_job_ = nullptr;             // the head wherever it is: asleep, ready, or with a worker
  std::atomic<bool> has_head_{false};   // head_job_ != nullptr, read without the lock
  void next_head_locked() {             // the head is done waiting: the first in line takes its place
    head_job_ = nullptr;
    if (!line_.empty()) {
      head_job_ = line_.front().get();
      ready_.push_back(std::move(line_.front()));
      line_.pop_front();
      cv_.notify_one();
    }
    has_head_.store(head_job_ != nullptr, std::memory_order_release);
  }
  std::uint64_t seq_ = 0;
  bool stopping_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  std::vector<std::thread> workers_;

  // Progress of the current busy period.
  std::atomic<std::size_t> ticket_{0};
  std::atomic<std::size_t> total_{0}, done_{0}, failed_{0}, in_flight_{0}, retries_{0};
  std::atomic<std::size_t> expected_{0};  // engine::expect(): the busy period lasts until that many are done
  // No request of the period is left, and none more is expected (under mutex_ to act on it).
  [[nodiscard]] bool idle() const { return done_.load() == total_.load() && done_.load() >= expected_.load(); }
  REQUESTS_ENGINE_INLINE void start_period_locked();  // under mutex_: the counts start again
  std::atomic<std::size_t> http_requests_{0}, batches_{0}, batched_{0};
  bool batching_ = false;  // a batch provider: collectors instead of workers
  bool deterministic_ = false;  // the provider gives one answer per request: no distinct samples
  batching_options batch_options_;
  std::atomic<std::int64_t> input_tokens_{0}, output_tokens_{0};
  // options::probe_rate_limits: until the first request has its answer, the others wait.
  std::mutex probe_m_;
  std::condition_variable probe_cv_;
  int probe_state_ = 0;  // 0: nothing sent, 1: the probe is out, 2: open
  std::atomic<bool> probe_open_{true};
  void open_probe(job& j) {
    j.probe = false;
    std::lock_guard<std::mutex> lock(probe_m_);
    probe_state_ = 2;
    probe_open_.store(true, std::memory_order_release);
    probe_cv_.notify_all();
  }
  mutable std::mutex spend_mutex_;  // never held while taking mutex_
  cost_report spend_;               // this busy period's results, priced
  clock::time_point period_start_ = clock::now();  // guarded by mutex_
  std::atomic<std::int64_t> last_tick_ns_{0};
  std::mutex callback_mutex_;  // callbacks are never called concurrently
  std::mutex ticker_m_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;  // under ticker_m_
  std::thread ticker_;        // redraws the progress while no result arrives
  std::mutex log_mutex_;
};

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
