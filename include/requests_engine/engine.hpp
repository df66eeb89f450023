// engine.hpp: basic_engine<Provider, Cache, Transport>, the thin template users hold:
// run() a batch in input order, submit() one request for a future, cancel(), cost().
#pragma once

#include "dispatcher.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// The engine: a provider, a transport and a pool of workers. Thread-safe: run(), submit()
/// and cancel() may be called from several threads at once; they share the pool.
template <class Provider, class Cache = disk_cache, class Transport = httplib_transport>
class basic_engine {
  static_assert(std::is_base_of_v<transport, Transport>,
                "requests_engine: Transport must derive from requests_engine::transport");
  static_assert(detail::check_provider<Provider>());

 public:
  using provider_type = Provider;
  using cache_type = Cache;

  /// The cache is built from the options (disk_cache: options::cache_dir, off when empty).
  explicit basic_engine(Provider provider, options o = options())
      : basic_engine(std::move(provider), o, make_cache(o)) {}

  /// With a cache built by the caller: a custom one, or one shared by several engines.
  basic_engine(Provider provider, options o, std::shared_ptr<Cache> cache)
      : basic_engine(std::vector<Provider>{std::move(provider)}, std::move(o), std::move(cache)) {}

  /// A pool of API keys: one provider per key (same endpoint and model), each with its own
  /// rate buckets. Each attempt goes to the key that can send it soonest (then the least
  /// busy, then round robin); a key the server rejects (401, 403, insufficient_quota) leaves
  /// the pool, is reported once through the log (by its position, never its value), and its
  /// requests go to the others.
  basic_engine(std::vector<Provider> pool, options o)
      : basic_engine(std::move(pool), o, make_cache(o)) {}
  basic_engine(std::vector<Provider> pool, options o, std::shared_ptr<Cache> cache)
      : providers_(check_pool(std::move(pool))),
        options_(std::move(o)),
        cache_(cache ? std::move(cache) : throw std::invalid_argument("requests_engine: null cache")),
        transport_(options_.transport()),
        dispatcher_(options_, adapters(providers_), transport_, detail::make_cache_ops(*cache_),
                    providers_.front().cache_identity()) {}

  /// Sends the batch and waits; one result per conversation, in input order. The result
  /// callback gets each one as it completes, with its index in `batch`.
  /// `name_space` scopes the samples: inside one namespace the k-th identical request gets
  /// sample k; another namespace starts again at sample 0 (and so reuses stored answers).
  [[nodiscard]] std::vector<result<completion>> run(const std::vector<conversation>& batch,
                                                    const params& p = params(),
                                                    const std::string& name_space = std::string()) {
    struct slots {
      std::mutex m;
      std::condition_variable cv;
      std::size_t remaining = 0;
      std::vector<std::optional<result<completion>>> out;
    };
    auto st = std::make_shared<slots>();
    st->out.resize(batch.size());
    st->remaining = batch.size();
    dispatcher_.reserve(batch.size());
    const auto shared_params = dispatcher_.batching() ? std::make_shared<const params>(p) : nullptr;
    // Built on every core (the bodies, their hashes, the cache look-ups) and handed over chunk
    // by chunk as they are ready, so that sending starts at once.
    const unsigned cores = std::thread::hardware_concurrency();
    dispatcher_.feed(
        batch.size(), std::clamp<std::size_t>(cores, 1, 4),
        [&](std::size_t i) {
          return prepare_job(i, batch[i], p, shared_params, name_space, [st, i](result<completion>&& r) {
            std::lock_guard<std::mutex> lock(st->m);
            st->out[i].emplace(std::move(r));
            if (--st->remaining == 0) st->cv.notify_all();
          });
        },
        [&](detail::job& j) { return settle_job(j, p); });
    std::unique_lock<std::mutex> lock(st->m);
    st->cv.wait(lock, [&] { return st->remaining == 0; });
    std::vector<result<completion>> results;
    results.reserve(batch.size());
    for (auto& r : st->out) results.push_back(std::move(*r));
    return results;
  }

  /// Sends one request; the future becomes ready with its result. Safe from any thread. The
  /// result callback gets it with a ticket number as its index.
  [[nodiscard]] std::future<result<completion>> submit(const conversation& c, const params& p = params(),
                                                       const std::string& name_space = std::string()) {
    auto promise = std::make_shared<std::promise<result<completion>>>();
    auto fut = promise->get_future();
    submit_with(c, p, name_space, [promise](result<completion>&& r) { promise->set_value(std::move(r)); });
    return fut;
  }

  /// Sends one request; `done` gets its result, once, with no future made: on a worker thread
  /// (in this call for a stored answer, or for a request that cannot be built), after the
  /// on_result callback, and at the same time as other requests' `done`: it must be
  /// thread-safe, and what it does holds up no other request's callbacks. Nothing of the
  /// request is kept once `done` returns. An exception from `done` is caught and logged.
  void submit(const conversation& c, const params& p, const std::string& name_space,
              std::function<void(result<completion>&&)> done) {
    submit_with(c, p, name_space, std::move(done));
  }

  /// Embeds the texts (with an embedding provider: openai_embeddings, gemini_embeddings); one
  /// result per text, in input order. Each text is a request of its own (cached on its own,
  /// identical texts sent once), packed with the others into the provider's HTTP requests
  /// by the collector. `name_space` is recorded in the cache entries.
  [[nodiscard]] std::vector<result<embedding>> embed(const std::vector<std::string>& texts,
                                                     const std::string& name_space = std::string()) {
    std::vector<conversation> batch;
    batch.reserve(texts.size());
    for (const auto& t : texts) batch.push_back(conversation().user(t));
    std::vector<result<completion>> done = run(batch, params(), name_space);
    std::vector<result<embedding>> out;
    out.reserve(done.size());
    for (auto& r : done) out.push_back(to_embedding(std::move(r)));
    return out;
  }

  /// Embeds one text; the future becomes ready with its embedding. Safe from any thread: many
  /// threads embedding one text at a time fill the same HTTP requests.
  [[nodiscard]] std::future<result<embedding>> submit_embed(const std::string& text,
                                                            const std::string& name_space = std::string()) {
    auto promise = std::make_shared<std::promise<result<embedding>>>();
    auto fut = promise->get_future();
    submit_with(conversation().user(text), params(), name_space,
                [promise](result<completion>&& r) { promise->set_value(to_embedding(std::move(r))); });
    return fut;
  }

  /// Says that `n` requests are coming (submit() sends them as they are read, say): the busy
  /// period, its counts (current_progress(), spend()) and the progress bar's total hold until
  /// `n` are done, even if the queue runs dry in between. Call it again with the true count
  /// once known (fewer came: the period ends when those are done). Safe from any thread.
  void expect(std::size_t n) { dispatcher_.expect(n); }

  /// Stops the work handed over so far: every request not yet answered comes back at once as
  /// a `cancelled` error (connections in flight are shut); run() returns. Later calls run.
  void cancel() { dispatcher_.cancel(); }

  /// The current busy period's counts.
  [[nodiscard]] progress current_progress() const { return dispatcher_.snapshot(); }
  /// What the current busy period (the last run(), or submit()s since the engine was idle) cost,
  /// at options::prices(): tokens and dollars by model, actual and as if nothing was cached.
  [[nodiscard]] cost_report spend() const { return dispatcher_.spend(); }
  /// The same report for any results (say, several runs together), at this engine's prices.
  [[nodiscard]] cost_report cost(const std::vector<result<completion>>& results, bool batch = false) const {
    return make_cost_report(results, options_.prices(), batch);
  }
  [[nodiscard]] const Provider& provider() const noexcept { return providers_.front(); }
  [[nodiscard]] const std::vector<Provider>& key_pool() const noexcept { return providers_; }
  /// Positions in the key pool of the keys the server rejected.
  [[nodiscard]] std::vector<std::size_t> rejected_keys() const { return dispatcher_.rejected_keys(); }
  /// What the server's headers said about its limits for one key (0 where it said nothing).
  [[nodiscard]] options::rate_limits learned_limits(std::size_t key = 0) const {
    return dispatcher_.learned_limits(key);
  }
  [[nodiscard]] const options& settings() const noexcept { return options_; }
  [[nodiscard]] Cache& cache() noexcept { return *cache_; }
  [[nodiscard]] cache_stats cache_statistics() const { return dispatcher_.stats(); }

 private:
  // Builds the body now, in the caller's thread, so that bad input fails before anything is
  // sent. Returns null when it already delivered an error.
  void submit_with(const conversation& c, const params& p, const std::string& name_space, detail::deliver_fn deliver) {
    dispatcher_.reserve(1);
    auto j = prepare_job(dispatcher_.next_ticket(), c, p,
                         dispatcher_.batching() ? std::make_shared<const params>(p) : nullptr, name_space,
                         std::move(deliver));
    if (j) dispatcher_.assign(*j);
    // A stored answer is delivered here, at once: it never queues (nor waits for a batch).
    if (j && settle_job(*j, p) && !dispatcher_.answer_from_cache(*j)) {
      std::vector<std::unique_ptr<detail::job>> one;
      one.push_back(std::move(j));
      dispatcher_.push(std::move(one));
    }
  }
  static result<embedding> to_embedding(result<completion>&& r) {
    if (!r) return std::move(r.error());
    if (r->embedding_vector.empty())
      return error{error_code::invalid_response, 0,
                   "the answer has no embedding (embed() needs an embedding provider: openai_embeddings, "
                   "gemini_embeddings)", {}, r->attempts, {}};
    embedding e;
    e.vector = std::move(r->embedding_vector);
    e.usage = r->usage;
    e.model = std::move(r->model);
    e.request_hash = std::move(r->request_hash);
    e.from_cache = r->from_cache;
    e.deduplicated = r->deduplicated;
    e.attempts = r->attempts;
    e.latency = r->latency;
    return e;
  }
  static std::vector<Provider> check_pool(std::vector<Provider> pool) {
    if (pool.empty()) throw std::invalid_argument("requests_engine: the key pool is empty");
    return pool;
  }
  static std::vector<std::unique_ptr<detail::provider_ops>> adapters(const std::vector<Provider>& pool) {
    std::vector<std::unique_ptr<detail::provider_ops>> out;
    for (const Provider& p : pool) out.push_back(std::make_unique<detail::provider_adapter<Provider>>(p));
    return out;
  }
  static std::shared_ptr<Cache> make_cache(const options& o) {
    if constexpr (std::is_constructible_v<Cache, const options&>) {
      return std::make_shared<Cache>(o);
    } else {
      return std::make_shared<Cache>();
    }
  }

  result<json> build_body(const conversation& c, const params& q) const {
    try {
      return providers_.front().make_body(c, q);
    } catch (const std::exception& e) {
      return error{error_code::invalid_request, 0, std::string("provider failed to build the request: ") + e.what(),
                   {}, 0, {}};
    }
  }
  // n > 1 with a cache and a provider that can split answers: the n samples are n slots of
  // the request without n, and only the missing ones are asked for.
  bool slotted(const params& p) const {
    return p.n().value_or(1) > 1 && dispatcher_.cache_enabled() && dispatcher_.provider_can_split();
  }
  // The body and its hash, built in the caller's thread (or a feed helper), so that bad input
  // fails before anything is sent. Null when it delivered an error already.
  // For a batch provider, the job keeps its own copy of the input (`shared_params`: one per call).
  std::unique_ptr<detail::job> prepare_job(std::size_t index, const conversation& c, const params& p,
                                           std::shared_ptr<const params> shared_params,
                                           const std::string& name_space, detail::deliver_fn deliver) {
    const bool multi = slotted(p);
    result<json> body = multi ? build_body(c, params(p).n(std::nullopt)) : build_body(c, p);
    if (!body) {
      dispatcher_.complete_now(index, std::move(body.error()), deliver);
      return nullptr;
    }
    result<std::string> text = detail::dump_body(*body);
    if (!text) {
      dispatcher_.complete_now(index, std::move(text.error()), deliver);
      return nullptr;
    }
    auto j = std::make_unique<detail::job>();
    j->index = index;
    j->body = std::move(*text);
    j->request_hash = detail::request_hash_dumped(dispatcher_.identity_dump(), *body, j->body);
    j->name_space = name_space;
    j->deliver = std::move(deliver);
    if (dispatcher_.batching()) {
      j->input = std::make_shared<const conversation>(c);
      j->input_params = std::move(shared_params);
    }
    if (multi) {
      j->wanted = static_cast<std::size_t>(*p.n());
      j->source = &c;  // settle_job asks again for the missing samples only
    } else {
      j->cost = detail::estimate_cost(*body, j->body.size());
    }
    return j;
  }
  // After the samples are assigned. A slotted job looks up its n slots and asks only for the
  // missing ones; false when every one was stored (or the body failed), its result delivered.
  bool settle_job(detail::job& j, const params& p) {
    if (j.wanted <= 1) return true;
    for (std::size_t k = j.sample; k < j.sample + j.wanted; ++k) {
      if (auto hit = dispatcher_.lookup(j.request_hash, k))
        j.found.emplace_back(k, std::move(*hit));
      else
        j.slots.push_back(k);
    }
    j.looked_up = true;
    if (j.slots.empty()) {  // every sample stored: one result with n choices, no request
      completion merged = std::move(j.found.front().second);
      for (std::size_t i = 1; i < j.found.size(); ++i) {
        const completion& more = j.found[i].second;
        merged.usage += more.usage;
        merged.choices.insert(merged.choices.end(), more.choices.begin(), more.choices.end());
      }
      dispatcher_.complete_now(j.index, std::move(merged), j.deliver);
      return false;
    }
    j.sample = j.slots.front();
    const std::size_t missing = j.slots.size();
    const conversation& c = *j.source;
    j.source = nullptr;
    result<json> ask = build_body(c, missing > 1 ? params(p).n(static_cast<int>(missing)) : params(p).n(std::nullopt));
    if (!ask) {
      dispatcher_.complete_now(j.index, std::move(ask.error()), j.deliver);
      return false;
    }
    result<std::string> text = detail::dump_body(*ask);
    if (!text) {
      dispatcher_.complete_now(j.index, std::move(text.error()), j.deliver);
      return false;
    }
    j.body = std::move(*text);
    j.cost = detail::estimate_cost(*ask, j.body.size());
    if (dispatcher_.batching())  // the batch function sees how many samples to answer
      j.input_params = std::make_shared<const params>(missing > 1 ? params(p).n(static_cast<int>(missing))
                                                                  : params(p).n(std::nullopt));
    return true;
  }

  std::vector<Provider> providers_;  // never resized: the dispatcher holds references
  options options_;
  std::shared_ptr<Cache> cache_;
  Transport transport_;
  detail::dispatcher dispatcher_;  // last: its workers use everything above
};

/// The engine with the default transport (and, unless named, the disk cache).
template <class Provider, class Cache = disk_cache>
using engine = basic_engine<Provider, Cache>;

REQUESTS_ENGINE_NAMESPACE_END
