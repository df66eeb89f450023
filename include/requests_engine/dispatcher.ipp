// dispatcher.ipp: the definitions of dispatcher.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "dispatcher.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

REQUESTS_ENGINE_INLINE dispatcher::dispatcher(const options& o, std::vector<std::unique_ptr<provider_ops>> ops,
                                              transport& t, std::unique_ptr<cache_ops> cache, json identity)
    : options_(o),
      ops_(std::move(ops)),
      transport_(t),
      cache_(std::move(cache)),
      identity_(std::move(identity)),
      identity_dump_(identity_.dump()) {
  probe_open_ = !(options_.limits().learn && options_.limits().probe);
  if (options_.concurrency() == 0)
    throw std::invalid_argument("requests_engine: options::concurrency must be at least 1");
  if (ops_.empty()) throw std::invalid_argument("requests_engine: the provider pool is empty");
  const std::optional<batching_options> provider_batching = ops_.front()->batching_defaults();
  batching_ = ops_.front()->must_batch() || options_.batching().has_value() || provider_batching.has_value();
  deterministic_ = ops_.front()->deterministic();
  if (batching_) {
    if (!ops_.front()->can_batch())
      throw std::invalid_argument("requests_engine: options::batching is set, but this provider takes no batches "
                                  "(batch providers: batch_backend, openai_completions, openai_embeddings, "
                                  "gemini_embeddings)");
    if (ops_.size() > 1)
      throw std::invalid_argument("requests_engine: a batch provider takes one provider, not a key pool");
    batch_options_ = options_.batching().value_or(provider_batching.value_or(batching_options()));
    if (batch_options_.max_size() == 0)
      throw std::invalid_argument("requests_engine: batching_options::max_size must be at least 1");
    if (batch_options_.concurrent() == 0)
      throw std::invalid_argument("requests_engine: batching_options::concurrent must be at least 1");
    if (batch_options_.max_wait().count() < 0)
      throw std::invalid_argument("requests_engine: batching_options::max_wait must not be negative");
    probe_open_ = true;  // one call feeds many requests: nothing to probe
  }
  if (options_.progress_interval().count() <= 0)
    throw std::invalid_argument("requests_engine: options::progress_interval must be positive");
  for (const auto& one : ops_) {
    auto more = one->secrets();
    secrets_.insert(secrets_.end(), more.begin(), more.end());
    keys_.push_back(std::make_unique<key_state>(options_.limits()));
  }
  secrets_.erase(std::remove_if(secrets_.begin(), secrets_.end(), [](const std::string& s) { return s.empty(); }),
                 secrets_.end());
  draw_bar_ = options_.progress_bar().value_or(stderr_is_terminal());
  const std::size_t threads = batching_ ? batch_options_.concurrent() : options_.concurrency();
  slots_.resize(threads);
  workers_.reserve(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      if (batching_)
        workers_.emplace_back([this, i] { collector_main(i); });
      else
        workers_.emplace_back([this, i] { worker_main(i); });
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    throw;
  }
  if (options_.on_progress() || draw_bar_) {
    try {
      ticker_ = std::thread([this] { ticker_main(); });
    } catch (const std::system_error&) {
      // No thread to be had: progress is then reported as results arrive only.
    }
  }
}

REQUESTS_ENGINE_INLINE dispatcher::~dispatcher() {
  if (ticker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(ticker_m_);
      ticker_stop_ = true;
    }
    ticker_cv_.notify_all();
    ticker_.join();
  }
  cancel();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

REQUESTS_ENGINE_INLINE void dispatcher::log(const std::string& line) {
  std::string clean = redact(line, secrets_);
  if (options_.on_log()) {
    try {
      options_.on_log()(clean);
      return;
    } catch (...) {
      // fall through to stderr: a broken logger must not hide the message
    }
  }
  std::lock_guard<std::mutex> lock(log_mutex_);
  std::fprintf(stderr, "%srequests_engine: %s\n", draw_bar_ ? "\r\033[K" : "", clean.c_str());
}

REQUESTS_ENGINE_INLINE void dispatcher::reserve(std::size_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle()) start_period_locked();
  total_ += n;
}

REQUESTS_ENGINE_INLINE void dispatcher::start_period_locked() {
  period_start_ = clock::now();
  total_ = done_ = failed_ = retries_ = period_cache_hits_ = period_deduplicated_ = 0;
  expected_ = 0;
  http_requests_ = batches_ = batched_ = 0;
  input_tokens_ = output_tokens_ = 0;
  std::lock_guard<std::mutex> spend_lock(spend_mutex_);
  spend_ = cost_report{};
}

REQUESTS_ENGINE_INLINE void dispatcher::expect(std::size_t n) {
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle()) start_period_locked();
    expected_ = n;
    ended = idle();  // lowered to what is done: the period ends here
  }
  if (ended) tick(true);
}

REQUESTS_ENGINE_INLINE void dispatcher::push(std::vector<std::unique_ptr<job>> jobs) {
  if (jobs.empty()) return;
  std::size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const clock::time_point now = clock::now();
    for (auto& j : jobs) {
      j->queued_at = now;
      if (options_.deduplicate()) {
        auto key = cache_key{j->request_hash, j->sample}.name();
        auto it = leaders_.find(key);
        if (it != leaders_.end()) {
          it->second->followers.emplace_back(j->index, std::move(j->deliver));
          continue;
        }
        leaders_.emplace(std::move(key), j.get());
        j->deduplicated = true;
      }
      ready_.push_back(std::move(j));
      ++queued;
    }
  }
  // One broadcast per chunk: measured faster than one notify_one per job (bench_cache at
  // concurrency 32: 58.8k against 42.7k hits/s).
  if (queued == 1)
    cv_.notify_one();
  else if (queued > 1)
    cv_.notify_all();
}

REQUESTS_ENGINE_INLINE void dispatcher::complete_now(std::size_t index, result<completion>&& r,
                                                     const deliver_fn& deliver) {
  std::vector<std::pair<std::size_t, deliver_fn>> none;
  deliver_all(index, deliver, none, std::move(r));
}

REQUESTS_ENGINE_INLINE void dispatcher::assign(job& j) {
  j.sample = options_.distinct_samples() && !deterministic_ ? assign_samples(j.name_space, j.request_hash, j.wanted) : 0;
}

REQUESTS_ENGINE_INLINE void dispatcher::feed(std::size_t n, std::size_t threads,
                                             const std::function<std::unique_ptr<job>(std::size_t)>& prepare,
                                             const std::function<bool(job&)>& settle) {
  constexpr std::size_t chunk = 64;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  std::atomic<std::size_t> next{0};
  std::mutex order_m;
  std::condition_variable order_cv;
  std::size_t assigned = 0;  // chunks whose samples are assigned (under order_m)
  bool broken = false;       // a helper threw: the others stop waiting for its chunk
  // Building a body and looking it up take CPU time: on several threads, a replay from the
  // cache runs on every core rather than on the caller's alone.
  auto work = [&] {
    try {
      for (;;) {
        const std::size_t c = next.fetch_add(1);
        if (c >= chunks) return;
        std::vector<std::unique_ptr<job>> jobs;
        jobs.reserve(chunk);
        for (std::size_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
          if (auto j = prepare(i)) jobs.push_back(std::move(j));
        {
          std::unique_lock<std::mutex> lock(order_m);
          order_cv.wait(lock, [&] { return assigned == c || broken; });
          if (broken) return;
          for (auto& j : jobs) assign(*j);
          ++assigned;
        }
        order_cv.notify_all();
        std::vector<std::unique_ptr<job>> send;
        send.reserve(jobs.size());
        for (auto& j : jobs) {
          if (!settle(*j) || answer_from_cache(*j)) continue;
          send.push_back(std::move(j));
        }
        push(std::move(send));
      }
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(order_m);
        broken = true;
      }
      order_cv.notify_all();
      throw;
    }
  };
  const std::size_t helpers = std::min(threads, chunks) > 1 ? std::min(threads, chunks) - 1 : 0;
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(helpers);
  for (std::size_t h = 0; h < helpers; ++h) {
    try {
      pool.emplace_back([&, h] {
        try {
          work();
        } catch (...) {
          errors[h] = std::current_exception();
        }
      });
    } catch (const std::system_error&) {
      break;  // no thread to be had: the others (and this one) do the work
    }
  }
  std::exception_ptr mine;
  try {
    work();
  } catch (...) {
    mine = std::current_exception();
  }
  for (auto& t : pool) t.join();
  if (mine) std::rethrow_exception(mine);
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

REQUESTS_ENGINE_INLINE bool dispatcher::answer_from_cache(job& j) {
  if (!cache_ || j.looked_up) return false;
  j.looked_up = true;
  auto hit = from_cache(j);
  if (!hit) return false;
  complete_now(j.index, std::move(*hit), j.deliver);
  return true;
}

REQUESTS_ENGINE_INLINE void dispatcher::cancel() {
  std::vector<std::unique_ptr<job>> dropped;
  struct taken {
    std::size_t index;
    deliver_fn deliver;
    std::vector<std::pair<std::size_t, deliver_fn>> followers;
    int attempts;
  };
  std::vector<taken> in_flight;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& j : ready_) dropped.push_back(std::move(j));
    ready_.clear();
    while (!waiting_.empty()) {
      dropped.emplace_back(waiting_.top().j);
      waiting_.pop();
    }
    for (auto& j : line_) dropped.push_back(std::move(j));
    line_.clear();
    if (head_) dropped.push_back(std::move(head_));
    head_job_ = nullptr;
    has_head_ = false;
    std::vector<job*> under_way;
    for (auto& slot : slots_) {
      if (slot.current) under_way.push_back(slot.current);
      under_way.insert(under_way.end(), slot.batch.begin(), slot.batch.end());
      if (slot.session && (slot.current || !slot.batch.empty())) slot.session->abort();
    }
    for (job* j : under_way) {
      j->cancelled.store(true);
      // The worker still owns the job; whoever sets `delivered` first answers its callers.
      if (!j->delivered.exchange(true)) {
        if (j->deduplicated) leaders_.erase(cache_key{j->request_hash, j->sample}.name());
        j->deduplicated = false;
        in_flight.push_back(taken{j->index, j->deliver, std::move(j->followers), j->attempts});
        j->followers.clear();
      }
    }
  }
  for (auto& j : dropped) {
    int attempts = j->attempts;
    finish(std::move(j), error{error_code::cancelled, 0, "cancelled before it could be sent", {}, attempts, {}});
  }
  for (auto& t : in_flight)
    deliver_all(t.index, t.deliver, t.followers,
                error{error_code::cancelled, 0, "cancelled while in flight", {}, t.attempts, {}});
  cv_.notify_all();
}

REQUESTS_ENGINE_INLINE progress dispatcher::snapshot() const {
  progress p;
  clock::time_point start;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    start = period_start_;
  }
  p.total = std::max(total_.load(), expected_.load());
  p.done = done_.load();
  p.failed = failed_.load();
  p.in_flight = in_flight_.load();
  p.retries = retries_.load();
  p.cache_hits = period_cache_hits_.load();
  p.deduplicated = period_deduplicated_.load();
  p.http_requests = http_requests_.load();
  p.batches = batches_.load();
  p.batched = batched_.load();
  p.cache = stats();
  p.input_tokens = input_tokens_.load();
  p.output_tokens = output_tokens_.load();
  p.elapsed_seconds = std::chrono::duration<double>(clock::now() - start).count();
  p.requests_per_second = p.elapsed_seconds > 0 ? static_cast<double>(p.done) / p.elapsed_seconds : 0.0;
  std::lock_guard<std::mutex> spend_lock(spend_mutex_);
  p.spend = spend_.actual;
  p.spend_as_if = spend_.as_if;
  p.spend_complete = spend_.complete();
  return p;
}

REQUESTS_ENGINE_INLINE std::unique_ptr<job> dispatcher::pop(std::size_t worker) {
  std::unique_lock<std::mutex> lock(mutex_);
  slots_[worker].current = nullptr;
  for (;;) {
    if (stopping_) return nullptr;
    auto now = clock::now();
    while (!waiting_.empty() && waiting_.top().at <= now) {
      ready_.emplace_back(waiting_.top().j);
      waiting_.pop();
    }
    if (head_ && head_at_ <= now) ready_.push_back(std::move(head_));
    if (!ready_.empty()) {
      auto j = std::move(ready_.front());
      ready_.pop_front();
      slots_[worker].current = j.get();
      j->worker = worker;
      return j;
    }
    if (waiting_.empty() && !head_) {
      cv_.wait(lock);
    } else {
      // A copy: the heap may move while we wait.
      clock::time_point next = waiting_.empty() ? clock::time_point::max() : waiting_.top().at;
      if (head_) next = std::min(next, head_at_);
      cv_.wait_until(lock, next);
    }
  }
}

REQUESTS_ENGINE_INLINE std::unique_ptr<transport_session> dispatcher::open_worker_session(std::size_t id) {
#if !defined(_WIN32)
  // cpp-httplib writes to sockets without MSG_NOSIGNAL: a peer that closed its end would raise
  // SIGPIPE and kill the whole process. Blocked in this thread, the write fails with EPIPE.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
#endif
  std::unique_ptr<transport_session> session;
  try {
    session = transport_.open_session();
  } catch (const std::exception& e) {
    log(std::string("worker ") + std::to_string(id) + ": the transport could not open a session: " + e.what());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  slots_[id].session = session.get();
  return session;
}

REQUESTS_ENGINE_INLINE void dispatcher::collector_main(std::size_t id) {
  std::unique_ptr<transport_session> session = open_worker_session(id);
  for (;;) {
    auto batch = take_batch(id);
    if (batch.empty()) break;
    const std::size_t n = batch.size();
    if (!session) {
      for (auto& j : batch)
        finish(std::move(j), error{error_code::internal, 0, "the transport could not open a session", {}, 0, {}});
      continue;
    }
    in_flight_.fetch_add(n);
    run_batch(std::move(batch), *session);
    in_flight_.fetch_sub(n);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  slots_[id].session = nullptr;
  slots_[id].batch.clear();
}

REQUESTS_ENGINE_INLINE std::vector<std::unique_ptr<job>> dispatcher::take_batch(std::size_t id) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::size_t max = batch_options_.max_size();
  for (;;) {
    if (stopping_) return {};
    const clock::time_point now = clock::now();
    while (!waiting_.empty() && waiting_.top().at <= now) {  // retries due: they queue again
      job* j = waiting_.top().j;
      j->queued_at = waiting_.top().at;
      waiting_.pop();
      ready_.emplace_back(j);
    }
    clock::time_point wake = waiting_.empty() ? clock::time_point::max() : waiting_.top().at;
    if (!ready_.empty()) {
      // The batch being collected started with the request at the front of the queue.
      const bool full = ready_.size() >= max;
      const clock::time_point due = ready_.front()->queued_at + batch_options_.max_wait();
      if (full || now >= due) {
        const std::size_t n = full && batch_options_.overflow() ? ready_.size() : std::min(max, ready_.size());
        std::vector<std::unique_ptr<job>> out;
        out.reserve(n);
        worker_slot& slot = slots_[id];
        for (std::size_t i = 0; i < n; ++i) {
          out.push_back(std::move(ready_.front()));
          ready_.pop_front();
          out.back()->worker = id;
          out.back()->batch_pos = slot.batch.size();
          slot.batch.push_back(out.back().get());
        }
        if (!ready_.empty()) cv_.notify_one();  // another collector may take the rest
        return out;
      }
      wake = std::min(wake, due);
    }
    if (wake == clock::time_point::max())
      cv_.wait(lock);
    else
      cv_.wait_until(lock, wake);
  }
}

REQUESTS_ENGINE_INLINE void dispatcher::run_batch(std::vector<std::unique_ptr<job>> batch, transport_session& s) {
  const clock::time_point now = clock::now();
  std::vector<std::unique_ptr<job>> go;
  go.reserve(batch.size());
  for (auto& j : batch) {
    if (j->cancelled.load()) {
      const int attempts = j->attempts;
      finish(std::move(j), error{error_code::cancelled, 0, "cancelled before it could be sent", {}, attempts, {}});
      continue;
    }
    if (cache_ && !j->looked_up) {  // submit()ted jobs are looked up already; this is a safety net
      j->looked_up = true;
      if (auto hit = from_cache(*j)) {
        finish(std::move(j), std::move(*hit));
        continue;
      }
    }
    if (j->attempts == 0) {
      j->first_sent = now;
      if (options_.request_deadline().count() > 0) j->deadline = now + options_.request_deadline();
    }
    if (now >= j->deadline) {
      const int attempts = j->attempts;
      finish(std::move(j), error{error_code::deadline_exceeded, 0,
                                 "the request deadline passed before it could be sent", {}, attempts, {}});
      continue;
    }
    ++j->attempts;
    j->attempt_ready = j->queued_at != clock::time_point{} ? j->queued_at : now;
    j->attempt_sent = now;
    go.push_back(std::move(j));
  }
  if (go.empty()) return;
  // The same inputs make the same batch, whatever order the threads queued them in.
  std::sort(go.begin(), go.end(), [](const std::unique_ptr<job>& a, const std::unique_ptr<job>& b) {
    return a->request_hash != b->request_hash ? a->request_hash < b->request_hash : a->sample < b->sample;
  });
  ++batches_;
  batched_ += go.size();
  static const conversation no_input;
  static const params no_params;
  std::vector<batch_request> items;
  items.reserve(go.size());
  for (const auto& j : go)
    items.push_back(batch_request{j->input ? *j->input : no_input, j->input_params ? *j->input_params : no_params,
                                  j->body, j->request_hash, j->sample, j->name_space});
  batch_context context{s, go.front()->cancelled};
  std::vector<result<std::string>> answers;
  std::string failure;
  try {
    answers = ops_.front()->send_batch(items, context);
  } catch (const std::exception& e) {
    failure = std::string("the batch backend threw: ") + e.what();
  } catch (...) {
    failure = "the batch backend threw a non-standard exception";
  }
  http_requests_ += context.http_requests;
  if (failure.empty() && answers.size() > go.size())
    log("the batch backend gave " + std::to_string(answers.size()) + " answers to a batch of " +
        std::to_string(go.size()) + " requests; the extra ones are ignored");
  for (std::size_t i = 0; i < go.size(); ++i) {
    std::unique_ptr<job>& j = go[i];
    result<completion> outcome = error{};
    bool retryable = false;
    std::optional<std::chrono::milliseconds> retry_after;
    try {
      if (!failure.empty()) {
        outcome = error{error_code::internal, 0, failure + " (every request of its batch of " +
                                                     std::to_string(go.size()) + " failed)", {}, 0, {}};
      } else if (i >= answers.size()) {
        outcome = error{error_code::internal, 0, "the batch backend answered " + std::to_string(answers.size()) +
                                                     " of the " + std::to_string(go.size()) +
                                                     " requests of its batch; this one got no answer", {}, 0, {}};
      } else if (answers[i]) {
        http_response r;
        r.status = j->attempt_status = 200;
        r.body = std::move(*answers[i]);
        outcome = store_answer(*j, ops_.front()->parse_response(r), r.body);
      } else {
        outcome = std::move(answers[i].error());
        const error_code c = outcome.error().code;
        retryable = c == error_code::rate_limited || c == error_code::server_error || c == error_code::timeout ||
                    c == error_code::connection;
        retry_after = outcome.error().retry_after;
      }
    } catch (const std::exception& e) {
      outcome = error{error_code::internal, 0, std::string("exception while reading a batch answer: ") + e.what(),
                      {}, 0, {}};
    }
    conclude(std::move(j), std::move(outcome), retryable, retry_after);
  }
}

// A worker's stack holds the deepest its requests ever went (TLS set-up, parsing an answer,
// making an output line: 28 KB measured), though it waits for an answer at about half that.
// With thousands of workers that is most of the memory: between requests, the pages below the
// current frame are handed back (they come back zeroed when touched again). Linux only.
class stack_trimmer {
 public:
  stack_trimmer() {
#if defined(__linux__) && defined(__GLIBC__)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) low_ = reinterpret_cast<std::uintptr_t>(addr);
    pthread_attr_destroy(&attr);
    const long page = sysconf(_SC_PAGESIZE);
    page_ = page > 0 ? static_cast<std::uintptr_t>(page) : 4096;
#endif
  }
  void trim() const noexcept {
#if defined(__linux__) && defined(__GLIBC__)
    if (low_ == 0) return;
    char here = 0;
    const volatile char* mark = &here;
    // 8 KB below this frame stay: the calls every request makes from here.
    const std::uintptr_t sp = reinterpret_cast<std::uintptr_t>(mark);
    if (sp < low_ + 8192 + page_) return;
    const std::uintptr_t high = (sp - 8192) & ~(page_ - 1);
    (void)madvise(reinterpret_cast<void*>(low_), high - low_, MADV_DONTNEED);
#endif
  }

 private:
  std::uintptr_t low_ = 0;
  std::uintptr_t page_ = 4096;
};

REQUESTS_ENGINE_INLINE void dispatcher::worker_main(std::size_t id) {
  std::unique_ptr<transport_session> session = open_worker_session(id);
  // Only for a wide pool: a system call per request is nothing next to thousands of stacks.
  const bool trim = options_.concurrency() >= trim_stacks_from;
  const stack_trimmer stack;
  for (;;) {
    auto j = pop(id);
    if (!j) break;
    if (!session) {
      finish(std::move(j), error{error_code::internal, 0, "the transport could not open a session", {}, 0, {}});
      continue;
    }
    in_flight_.fetch_add(1);
    run_attempt(std::move(j), *session);
    in_flight_.fetch_sub(1);
    if (trim) stack.trim();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  slots_[id].session = nullptr;
  slots_[id].current = nullptr;
}

REQUESTS_ENGINE_INLINE std::chrono::milliseconds dispatcher::backoff(int retry_number) {
  // Jitter over an exponential ceiling: delay = min(base * 2^(k-1), max) * U(0.75, 1.0).
  double base = static_cast<double>(options_.initial_backoff().count());
  double ceiling = std::min(base * std::pow(2.0, std::min(retry_number - 1, 30)),
                            static_cast<double>(options_.max_backoff().count()));
  double factor;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    factor = std::uniform_real_distribution<double>(0.75, 1.0)(rng_);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ceiling * factor));
}

REQUESTS_ENGINE_INLINE cache_stats dispatcher::stats() const {
  cache_stats c;
  c.hits = cache_hits_total_.load();
  c.misses = cache_misses_.load();
  c.writes = cache_writes_.load();
  c.write_errors = cache_write_errors_.load();
  c.corrupt = cache_corrupt_.load();
  c.bytes_read = cache_bytes_read_.load();
  c.bytes_written = cache_bytes_written_.load();
  return c;
}

REQUESTS_ENGINE_INLINE std::optional<completion> dispatcher::lookup(const std::string& hash, std::size_t sample) {
  if (!cache_) return std::nullopt;
  return from_cache(cache_key{hash, sample});
}

REQUESTS_ENGINE_INLINE std::size_t dispatcher::assign_samples(const std::string& name_space, const std::string& hash,
                                                             std::size_t count) {
  std::lock_guard<std::mutex> lock(samples_mutex_);
  return samples_.take(name_space, hash, count);
}

REQUESTS_ENGINE_INLINE std::optional<completion> dispatcher::from_cache(const job& j) {
  return from_cache(cache_key{j.request_hash, j.sample});
}

REQUESTS_ENGINE_INLINE completion dispatcher::fill_slots(job& j, completion fresh, const std::string& response_body) {
  std::vector<std::string> parts = ops_.front()->split_choices(response_body);
  if (parts.size() == j.slots.size()) {
    for (std::size_t i = 0; i < parts.size(); ++i) to_cache(j, j.slots[i], parts[i]);
  } else {
    log("the provider's answer has " + std::to_string(parts.size()) + " choices where " +
        std::to_string(j.slots.size()) + " were asked for; not cached");
  }
  std::vector<std::pair<std::size_t, choice>> ordered;
  for (auto& f : j.found) {
    fresh.usage += f.second.usage;
    for (auto& c : f.second.choices) ordered.emplace_back(f.first, c);
  }
  for (std::size_t i = 0; i < fresh.choices.size(); ++i)
    ordered.emplace_back(i < j.slots.size() ? j.slots[i] : j.slots.back() + i, fresh.choices[i]);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  fresh.choices.clear();
  for (auto& o : ordered) fresh.choices.push_back(std::move(o.second));
  if (!fresh.choices.empty()) {
    fresh.text = fresh.choices.front().text;
    fresh.finish_reason = fresh.choices.front().finish_reason;
  }
  return fresh;
}

REQUESTS_ENGINE_INLINE std::optional<completion> dispatcher::from_cache(const cache_key& key) {
  std::optional<std::string> text;
  std::string why;
  try {
    text = cache_->load(key);
  } catch (const std::exception& e) {
    why = std::string("cannot be read: ") + e.what();
  }
  if (!text && why.empty()) {
    ++cache_misses_;
    return std::nullopt;
  }
  std::optional<completion> out;
  if (text) {
    cache_bytes_read_ += text->size();
    http_response r;
    r.status = 200;
    const auto nl = text->find('\n');
    bool have = false;
    if (nl != std::string::npos && quick_entry_check(*text, nl, key)) {
      r.body = std::move(*text);  // the usual entry: no copy of the answer
      r.body.erase(0, nl + 1);
      have = true;
    } else if (auto entry = decode_cache_entry(*text, &key, why, /*body_only=*/true)) {
      r.body = std::move(entry->body);
      have = true;
    }
    if (have) {
      auto parsed = ops_.front()->parse_response(r);
      if (parsed)
        out = std::move(*parsed);
      else
        why = "the stored response does not parse: " + parsed.error().message;
    }
  }
  if (!out) {
    // A bad entry is a miss: the request goes to the network and its answer replaces it.
    ++cache_misses_;
    ++cache_corrupt_;
    bool first;
    {
      std::lock_guard<std::mutex> lock(corrupt_mutex_);
      first = reported_corrupt_.insert(key.name()).second;
    }
    if (first) log("cache entry " + key.name() + " is unusable (" + why + "); treated as missing");
    return std::nullopt;
  }
  out->from_cache = true;
  out->request_hash = key.hash;
  out->attempts = 0;
  out->latency = std::chrono::milliseconds(0);
  ++cache_hits_total_;
  ++period_cache_hits_;
  return out;
}

REQUESTS_ENGINE_INLINE void dispatcher::to_cache(const job& j, std::size_t sample,
                                                 const std::string& response_body) {
  if (!cache_) return;
  const cache_key key{j.request_hash, sample};
  try {
    std::string entry = encode_cache_entry(key, identity_, j.name_space, response_body,
                                           options_.cache_requests() ? &j.body : nullptr);
    cache_->store(key, entry);
    ++cache_writes_;
    cache_bytes_written_ += entry.size();
  } catch (const std::exception& e) {
    // The answer is still delivered; only the next run will have to ask again. Said once (a full
    // disk fails every write after it); cache_statistics().write_errors counts them all.
    if (cache_write_errors_.fetch_add(1) == 0)
      log(std::string("could not store an answer in the cache: ") + e.what() +
          "; the answers are still delivered, and further failures are only counted (cache_statistics)");
  }
}

REQUESTS_ENGINE_INLINE void dispatcher::run_attempt(std::unique_ptr<job> j, transport_session& s) {
  if (j->cancelled.load()) {
    int attempts = j->attempts;
    finish(std::move(j), error{error_code::cancelled, 0, "cancelled before it could be sent", {}, attempts, {}});
    return;
  }
  if (cache_ && !j->looked_up) {
    j->looked_up = true;
    if (auto hit = from_cache(*j)) {
      finish(std::move(j), std::move(*hit));
      return;
    }
  }
  auto now = clock::now();
  if (j->attempts == 0) {
    j->first_sent = now;
    if (options_.request_deadline().count() > 0) j->deadline = now + options_.request_deadline();
  }
  if (now >= j->deadline) {
    int attempts = j->attempts;
    finish(std::move(j), error{error_code::deadline_exceeded, 0, "the request deadline passed before it could be sent",
                               {}, attempts, {}});
    return;
  }
  if (j->attempt_ready == clock::time_point{}) j->attempt_ready = now;
  if (!probe_open_.load(std::memory_order_acquire)) {  // options::probe_rate_limits
    std::unique_lock<std::mutex> lock(probe_m_);
    if (probe_state_ == 0) {
      probe_state_ = 1;  // this one goes first, alone
      j->probe = true;
    }
    // Polled, so that cancel() and deadlines need no wake-up of their own.
    while (!j->probe && probe_state_ == 1 && !j->cancelled.load() && clock::now() < j->deadline)
      probe_cv_.wait_for(lock, std::chrono::milliseconds(50));
    now = clock::now();
  }
  if (!j->rate_reserved) {
    clock::time_point at = now;
    const bool behind = has_head_.load(std::memory_order_acquire);
    const bool later = earliest_key(j->cost, now, at) != no_key && at > now;
    if (behind || later) {
      std::unique_lock<std::mutex> lock(mutex_);
      const bool in_line = head_job_ != nullptr && head_job_ != j.get();
      if (in_line || later) {
        if (j->cancelled.load() || stopping_) {
          lock.unlock();
          int attempts = j->attempts;
          finish(std::move(j), error{error_code::cancelled, 0, "cancelled while waiting to be sent", {}, attempts, {}});
          return;
        }
        release_slot(*j);
        if (in_line) {  // first come, first served; holding no worker and no reservation
          line_.push_back(std::move(j));
          return;
        }
        head_job_ = j.get();
        has_head_.store(true, std::memory_order_release);
        head_at_ = std::min(at, j->deadline);
        head_ = std::move(j);
        cv_.notify_one();
        return;
      }
      // The head (or, by a race, nobody was): it may go now.
    }
    const std::size_t key = choose_key(j->cost, now, at);
    if (has_head_.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (head_job_ == j.get()) next_head_locked();  // it goes: the next in line is the head
    }
    if (key == no_key) {
      int attempts = j->attempts;
      finish(std::move(j), error{error_code::authentication, 0,
                                 "every API key of the pool was rejected by the server (see the log)", {}, attempts, {}});
      return;
    }
    j->key = key;
    j->rate_reserved = true;
    if (at > now) {  // waits in the timed queue, holding no worker and no connection
      schedule_retry(std::move(j), at);
      return;
    }
  } else if (keys_[j->key]->limiter.active()) {
    const clock::time_point paused = keys_[j->key]->limiter.paused_until();
    if (paused > now) {  // a 429 paused this key after the capacity was reserved
      schedule_retry(std::move(j), paused);
      return;
    }
  }
  j->rate_reserved = false;  // the next attempt reserves again
  ++j->attempts;
  j->attempt_sent = clock::now();
  key_state& key = *keys_[j->key];

  result<completion> outcome = error{};
  bool retryable = false;
  bool key_rejected = false;
  bool sent = false;
  std::optional<std::chrono::milliseconds> retry_after;
  // A streamed attempt: the decoder assembles the body; a failure it finds (an error event, a
  // broken frame, a stream cut short) is retried like a broken connection.
  const provider_ops& ops = *ops_[j->key];
  const bool stream = wants_stream(ops, j->body);
  std::unique_ptr<stream_decoder> decoder;
  std::optional<error> stream_failure;
  std::optional<clock::duration> first_piece;
  try {
    result<http_request> made = stream ? ops.make_stream_request(j->body) : ops.make_request(j->body);
    result<http_response> resp = error{};
    if (!made) {
      // A signing or token failure: retried when it is a network or server problem.
      resp = std::move(made.error());
    } else {
      http_request& req = *made;
      if (j->deadline != clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(j->deadline - now);
        auto cap = options_.transport().read_timeout;
        req.read_timeout = std::max(std::chrono::milliseconds(1), std::min(left, cap));
      }
      key.in_flight.fetch_add(1, std::memory_order_relaxed);
      const std::uint64_t seq = key.limiter.sending(j->cost);
      sent = true;
      http_requests_.fetch_add(1, std::memory_order_relaxed);
      if (stream) {
        decoder = ops.make_stream_decoder();
        if (!decoder) throw std::logic_error("the provider's make_stream_decoder() gave no decoder");
        const auto sent_at = clock::now();
        std::vector<stream_delta> pieces;
        const int attempt = j->attempts;
        const std::size_t index = j->index;
        auto sink = [&](std::string_view bytes) {
          pieces.clear();
          if (auto failure = decoder->feed(bytes, pieces)) {
            stream_failure = std::move(failure);
            return false;
          }
          if (!pieces.empty()) {
            if (!first_piece) first_piece = clock::now() - sent_at;
            if (options_.on_delta())
              guarded_callback("delta", [&] {
                for (auto& p : pieces) {
                  p.attempt = attempt;
                  options_.on_delta()(index, p);
                }
              });
          }
          return !j->cancelled.load(std::memory_order_relaxed);
        };
        resp = s.send_streaming(req, j->cancelled, sink);
        if (resp && resp->status >= 200 && resp->status < 300 && !stream_failure) {
          if (!first_piece) first_piece = clock::now() - sent_at;
          result<std::string> whole = decoder->finish();
          if (whole)
            resp->body = std::move(*whole);
          else
            stream_failure = std::move(whole.error());
        }
      } else {
        resp = s.send(req, j->cancelled);
      }
      key.in_flight.fetch_sub(1, std::memory_order_relaxed);
      key.limiter.answered(seq, resp ? &resp->headers : nullptr, clock::now());
    }
    if (stream_failure && !j->cancelled.load()) {
      // An error event after the 200, a broken frame, or a stream cut short: the partial
      // answer is dropped (never cached, never delivered) and the request is sent again.
      outcome = std::move(*stream_failure);
      retryable = true;
    } else if (!resp) {
      outcome = std::move(resp.error());
      auto c = outcome.error().code;
      retryable = c == error_code::connection || c == error_code::timeout ||
                  (!made && (c == error_code::rate_limited || c == error_code::server_error));
      if (!made) retry_after = outcome.error().retry_after;
      if (c == error_code::timeout && clock::now() >= j->deadline) {
        outcome.error().code = error_code::deadline_exceeded;
        outcome.error().message = "the request deadline passed while waiting for the answer";
        retryable = false;
      }
    } else {
      j->attempt_status = resp->status;
      outcome = ops_[j->key]->parse_response(*resp);
      if (outcome && key.limiter.active() &&
          key.limiter.correct(j->cost, outcome->usage.input_tokens, outcome->usage.output_tokens) &&
          has_head_.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (head_) {  // capacity came back: the head need not sleep its whole estimate
          head_at_ = clock::now();
          cv_.notify_one();
        }
      }
      outcome = store_answer(*j, std::move(outcome), resp->body);
      if (outcome && stream && first_piece)
        outcome->time_to_first_token = std::chrono::duration_cast<std::chrono::milliseconds>(*first_piece);
      if (!outcome) {
        auto& e = outcome.error();
        if (e.http_status == 0 && (resp->status < 200 || resp->status >= 300)) e.http_status = resp->status;
        int st = resp->status;
        retryable = st == 408 || st == 409 || st == 429 || st >= 500;
        if (e.code == error_code::insufficient_quota) retryable = false;
        std::string should = find_header(resp->headers, "x-should-retry");
        if (should == "true") retryable = true;
        if (should == "false") retryable = false;
        retry_after = detail::parse_retry_after(resp->headers);
        e.retry_after = retry_after;
        if (st == 429 && e.code != error_code::insufficient_quota) {
          // One pause for every worker on this key, not one per worker.
          if (!retry_after) retry_after = backoff(j->attempts);
          key.limiter.pause_until(clock::now() + *retry_after);
        }
        key_rejected = keys_.size() > 1 && (e.code == error_code::authentication ||
                                            e.code == error_code::permission_denied ||
                                            e.code == error_code::insufficient_quota);
      }
    }
  } catch (const std::exception& e) {
    outcome = error{error_code::internal, 0, std::string("exception while handling the request: ") + e.what(), {}, 0, {}};
  } catch (...) {
    outcome = error{error_code::internal, 0, "unknown exception while handling the request", {}, 0, {}};
  }

  if (!sent) key.limiter.unreserve(j->cost);
  if (j->probe) open_probe(*j);
  if (!outcome && key_rejected) {
    auto& e = outcome.error();
    e.attempts = j->attempts;
    if (key.alive.exchange(false))  // the first request to see it reports it
      log("API key " + std::to_string(j->key + 1) + " of " + std::to_string(keys_.size()) +
          " was rejected (" + e.describe() + "); it is taken out of the pool");
    bool any_left = false;
    for (const auto& k : keys_) any_left = any_left || k->alive.load();
    if (any_left && !j->cancelled.load()) {
      report_attempt(*j, outcome, true, std::chrono::milliseconds(0));
      ++j->failovers;
      schedule_retry(std::move(j), clock::now());
      return;
    }
    e.message = "every API key of the pool was rejected; last: " + e.message;
  }
  conclude(std::move(j), std::move(outcome), retryable, retry_after);
}

REQUESTS_ENGINE_INLINE result<completion> dispatcher::store_answer(job& j, result<completion>&& outcome,
                                                                  const std::string& response_body) {
  if (outcome && !j.slots.empty())
    outcome = fill_slots(j, std::move(*outcome), response_body);
  else if (outcome)
    to_cache(j, j.sample, response_body);
  return std::move(outcome);
}

REQUESTS_ENGINE_INLINE void dispatcher::conclude(std::unique_ptr<job> j, result<completion>&& outcome, bool retryable,
                                                 std::optional<std::chrono::milliseconds> retry_after) {
  if (j->cancelled.load() && !outcome) {
    outcome = error{error_code::cancelled, 0, "cancelled while in flight", {}, 0, {}};
    retryable = false;
  }
  if (outcome) {
    report_attempt(*j, outcome, false, std::chrono::milliseconds(0));
    outcome->attempts = j->attempts;
    outcome->request_hash = j->request_hash;
    outcome->latency = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - j->first_sent);
    finish(std::move(j), std::move(outcome));
    return;
  }
  auto& e = outcome.error();
  e.attempts = j->attempts;
  const int retries_done = j->attempts - 1 - j->failovers;
  const bool budget_left = options_.max_retries() < 0 || retries_done < options_.max_retries();
  if (retryable && budget_left) {
    auto wait = retry_after ? *retry_after : backoff(j->attempts);
    auto at = clock::now() + wait;
    if (at < j->deadline) {
      report_attempt(*j, outcome, true, wait);
      ++retries_;
      if (options_.on_retry()) {
        retry_info info{j->index, j->attempts, e.http_status, e.code, redact(e.message, secrets_), wait};
        guarded_callback("retry", [&] { options_.on_retry()(info); });
      }
      schedule_retry(std::move(j), at);
      return;
    }
    e.message = "the deadline would pass before the next retry; last error: " + e.describe();
    e.code = error_code::deadline_exceeded;
  }
  report_attempt(*j, outcome, false, std::chrono::milliseconds(0));
  finish(std::move(j), std::move(outcome));
}

REQUESTS_ENGINE_INLINE void dispatcher::report_attempt(job& j, const result<completion>& outcome, bool retried,
                                                      std::chrono::milliseconds wait) {
  if (j.attempt_sent == clock::time_point{}) return;  // none was made (cancelled before it went)
  attempt_info a;
  a.index = j.index;
  a.attempt = j.attempts;
  a.ready = j.attempt_ready;
  a.sent = j.attempt_sent;
  a.ended = clock::now();
  a.http_status = j.attempt_status;
  j.attempt_ready = j.attempt_sent = clock::time_point{};
  j.attempt_status = 0;
  if (!options_.on_attempt()) return;
  if (!outcome) {
    if (outcome.error().http_status != 0) a.http_status = outcome.error().http_status;
    a.error = outcome.error().code;
  }
  a.retried = retried;
  a.wait = wait;
  guarded_callback("attempt", [&] { options_.on_attempt()(a); });
}

REQUESTS_ENGINE_INLINE std::size_t dispatcher::choose_key(const request_cost& c, clock::time_point now,
                                                          clock::time_point& at) {
  if (keys_.size() == 1) {  // the usual case: no choice to make
    key_state& k = *keys_.front();
    if (!k.alive.load(std::memory_order_relaxed)) return no_key;
    at = k.limiter.reserve(c, now);  // also counts it as pending for what is learned later
    return 0;
  }
  const std::size_t n = keys_.size();
  const std::size_t start = next_key_.fetch_add(1, std::memory_order_relaxed) % n;  // round robin on ties
  std::size_t best = no_key;
  clock::time_point best_at{};
  int best_load = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = (start + i) % n;
    key_state& ks = *keys_[k];
    if (!ks.alive.load()) continue;
    const clock::time_point t = ks.limiter.active() ? ks.limiter.earliest(c, now) : now;
    const int load = ks.in_flight.load(std::memory_order_relaxed);
    if (best == no_key || t < best_at || (t == best_at && load < best_load)) {
      best = k;
      best_at = t;
      best_load = load;
    }
  }
  if (best == no_key) return no_key;
  at = keys_[best]->limiter.reserve(c, now);
  return best;
}

REQUESTS_ENGINE_INLINE std::size_t dispatcher::earliest_key(const request_cost& c, clock::time_point now,
                                                            clock::time_point& at) {
  std::size_t best = no_key;
  for (std::size_t k = 0; k < keys_.size(); ++k) {
    key_state& ks = *keys_[k];
    if (!ks.alive.load()) continue;
    const clock::time_point t = ks.limiter.active() ? ks.limiter.earliest(c, now) : now;
    if (best == no_key || t < at) {
      best = k;
      at = t;
    }
  }
  return best;
}

REQUESTS_ENGINE_INLINE std::vector<std::size_t> dispatcher::rejected_keys() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < keys_.size(); ++i)
    if (!keys_[i]->alive.load()) out.push_back(i);
  return out;
}

REQUESTS_ENGINE_INLINE void dispatcher::schedule_retry(std::unique_ptr<job> j, clock::time_point at) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    release_slot(*j);
    if (!j->cancelled.load() && !stopping_) {
      waiting_.push(timed{at, seq_++, j.release()});
      cv_.notify_one();
      return;
    }
  }
  int attempts = j->attempts;
  finish(std::move(j), error{error_code::cancelled, 0, "cancelled while waiting to retry", {}, attempts, {}});
}

REQUESTS_ENGINE_INLINE void dispatcher::finish(std::unique_ptr<job> j, result<completion>&& r) {
  std::vector<std::pair<std::size_t, deliver_fn>> followers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    release_slot(*j);
    if (head_job_ == j.get()) next_head_locked();
    if (j->probe) open_probe(*j);
    if (j->rate_reserved) {  // reserved capacity it will never use (cancelled, deadline)
      keys_[j->key]->limiter.unreserve(j->cost);
      j->rate_reserved = false;
    }
    if (j->delivered.exchange(true)) return;  // cancel() answered already
    if (j->deduplicated) leaders_.erase(cache_key{j->request_hash, j->sample}.name());
    followers = std::move(j->followers);
  }
  deliver_all(j->index, j->deliver, followers, std::move(r));
}

REQUESTS_ENGINE_INLINE void dispatcher::deliver_all(std::size_t index, const deliver_fn& deliver,
                                                    std::vector<std::pair<std::size_t, deliver_fn>>& followers,
                                                    result<completion>&& r) {
  if (!r) r.error().message = redact(std::move(r.error().message), secrets_);
  // Counts and callbacks first, delivery last: when run() returns or a future is ready, every
  // callback about that request has run.
  const std::size_t n = followers.size() + 1;
  period_deduplicated_ += followers.size();
  result<completion> shared = error{};  // what the followers get: the same answer, not paid again
  if (!followers.empty()) {
    shared = r;
    if (shared) shared->deduplicated = true;
  }
  if (r) {
    input_tokens_ += r->usage.input_tokens * static_cast<std::int64_t>(n);
    output_tokens_ += r->usage.output_tokens * static_cast<std::int64_t>(n);
  } else {
    failed_ += n;
  }
  try {
    std::lock_guard<std::mutex> spend_lock(spend_mutex_);
    spend_.add(r, options_.prices());
    if (!followers.empty())
      for (std::size_t i = 1; i < n; ++i) spend_.add(shared, options_.prices());
  } catch (...) {  // a price callback that throws is the table's problem, never the batch's
    log("pricing a result failed");
  }
  const std::size_t done = done_ += n;
  if (options_.on_result()) {
    for (auto& f : followers) guarded_callback("result", [&] { options_.on_result()(f.first, shared); });
    guarded_callback("result", [&] { options_.on_result()(index, r); });
  }
  tick(done == total_.load() && done >= expected_.load());
  auto hand_over = [&](const deliver_fn& d, result<completion>&& one) {
    try {
      d(std::move(one));
    } catch (...) {
      log("delivering a result failed");
    }
  };
  for (auto& f : followers) hand_over(f.second, result<completion>(shared));
  hand_over(deliver, std::move(r));
}

REQUESTS_ENGINE_INLINE void dispatcher::tick(bool force) {
  if (!options_.on_progress() && !draw_bar_) return;
  const auto interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.progress_interval()).count();
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
  auto last = last_tick_ns_.load();
  if (!force && now_ns - last < interval_ns) return;
  if (!force && !last_tick_ns_.compare_exchange_strong(last, now_ns)) return;
  if (force) last_tick_ns_.store(now_ns);
  std::lock_guard<std::mutex> lock(callback_mutex_);
  emit_progress_locked();
}

REQUESTS_ENGINE_INLINE void dispatcher::emit_progress_locked() {
  progress p = snapshot();
  if (options_.on_progress()) guarded_callback_locked("progress", [&] { options_.on_progress()(p); });
  if (draw_bar_) {
    std::lock_guard<std::mutex> lock(log_mutex_);
    std::string line = "\r" + format_progress_bar(p, 30) + "\033[K";
    if (p.done == p.total) line += "\n";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  }
}

REQUESTS_ENGINE_INLINE void dispatcher::ticker_main() {
  // Between results too (a long answer, a rate-limit pause): the rate, the ETA and the time
  // keep moving. Under callback_mutex_, and only while work is outstanding, so that no
  // progress callback runs after the last result was delivered.
  const auto interval = options_.progress_interval();
  const auto interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
  std::unique_lock<std::mutex> lock(ticker_m_);
  while (!ticker_stop_) {
    ticker_cv_.wait_for(lock, interval);
    if (ticker_stop_) break;
    lock.unlock();
    {
      std::lock_guard<std::mutex> cb(callback_mutex_);
      const auto now_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
      if (done_.load() < total_.load() && now_ns - last_tick_ns_.load() >= interval_ns) {
        last_tick_ns_.store(now_ns);
        emit_progress_locked();
      }
    }
    lock.lock();
  }
}

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
