// limiter.hpp: rate limits: token buckets for requests and tokens, limits learned from
// the providers' headers, one shared pause after a 429.
#pragma once

#include "options.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

}  // namespace detail

namespace detail {

/// "6m0s", "1s", "12ms", "1h2m3.5s", "0.5s" (OpenAI's x-ratelimit-reset-*) as milliseconds.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_reset_duration(std::string_view s);
/// An RFC 3339 time ("2026-11-22T10:00:30Z", offsets and fractions allowed) as time since the epoch.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_rfc3339(std::string_view s);

/// What one request takes from the rate buckets. Tokens are estimated before sending: the body's
/// characters / 4 for the prompt (JSON syntax included, so it leans high) and the asked
/// max_tokens (or 0) for the answer, as the providers count them against the limit; corrected
/// by the answer's real usage afterwards.
struct request_cost {
  double requests = 1;
  double input_tokens = 0;
  double output_tokens = 0;
};
[[nodiscard]] REQUESTS_ENGINE_INLINE request_cost estimate_cost(const json& body, std::size_t body_size);

/// The rate buckets of one API key: the configured limits (paced evenly: 600 per minute is one
/// request every 100 ms, never a burst), the server's word (its limit, remaining and reset
/// times from the last answer's headers, modelled as a bucket that refills until the reset),
/// and one shared pause after a 429. Thread-safe.
class rate_limiter {
 public:
  explicit REQUESTS_ENGINE_INLINE rate_limiter(const options::rate_limits& l);
  /// True when anything can hold a request back.
  [[nodiscard]] bool active() const noexcept { return active_.load(std::memory_order_relaxed); }
  /// When a request of this cost could be sent (no commitment).
  [[nodiscard]] REQUESTS_ENGINE_INLINE clock::time_point earliest(const request_cost& c, clock::time_point now);
  /// Reserves the capacity for the request at earliest() and returns that time.
  REQUESTS_ENGINE_INLINE clock::time_point reserve(const request_cost& c, clock::time_point now);
  /// The reserved request goes on the wire now; returns its place in the send order.
  REQUESTS_ENGINE_INLINE std::uint64_t sending(const request_cost& c);
  /// The request sent as `seq` has its answer (or failed); learns from the headers when there are any.
  REQUESTS_ENGINE_INLINE void answered(std::uint64_t seq, const header_list* h, clock::time_point now);
  /// A reservation that will never be sent (cancelled, deadline, a signing failure).
  REQUESTS_ENGINE_INLINE void unreserve(const request_cost& c);
  /// The answer's real token counts replace the estimate in the configured pacing, so it does
  /// not drift. True when that gave capacity back (the estimate was too high).
  REQUESTS_ENGINE_INLINE bool correct(const request_cost& estimated, std::int64_t input, std::int64_t output);
  /// Learns from x-ratelimit-* (OpenAI and compatibles) and anthropic-ratelimit-* headers, as the
  /// newest count (every reserved and in-flight request still to be counted by the server).
  REQUESTS_ENGINE_INLINE void observe(const header_list& h, clock::time_point now);
  /// Nothing is sent before `until` (after a 429: one pause for every worker).
  REQUESTS_ENGINE_INLINE void pause_until(clock::time_point until);
  [[nodiscard]] REQUESTS_ENGINE_INLINE clock::time_point paused_until();
  /// The tightest learned limits so far (0 = none learned), for reports and tests.
  [[nodiscard]] REQUESTS_ENGINE_INLINE options::rate_limits learned();

 private:
  enum dimension : std::size_t { requests, tokens, input_tokens, output_tokens, dimensions };
  static double amount(const request_cost& c, std::size_t d) {
    switch (d) {
      case requests: return c.requests;
      case tokens: return c.input_tokens + c.output_tokens;
      case input_tokens: return c.input_tokens;
      default: return c.output_tokens;
    }
  }
  struct pace {  // GCRA: the theoretical arrival time of the next unit
    double per_second = 0;
    clock::time_point tat{};
  };
  struct server_bucket {  // the server's count, as of its last answer
    bool known = false;
    double limit = 0, remaining = 0, refill_per_second = 0, used_since = 0;
    clock::time_point at{};
    double available(clock::time_point t) const {
      const double secs = std::chrono::duration<double>(t - at).count();
      return std::min(limit, remaining + std::max(0.0, secs) * refill_per_second) - used_since;
    }
  };
  clock::time_point earliest_locked(const request_cost& c, clock::time_point now) const;
  static constexpr clock::duration late_slot = std::chrono::milliseconds(20);

  std::mutex m_;
  pace configured_[dimensions];
  pace per_second_;  // requests per second, beside requests per minute
  server_bucket server_[dimensions];
  // What the server may not have counted when it wrote an answer's headers: requests reserved
  // and not yet sent, and every request still in flight (the server may have counted some of
  // them already: counting them again errs on the safe side, and costs only the first burst).
  // Answers arrive out of order: one sent before the newest answer seen is stale and ignored.
  double pending_[dimensions] = {};
  std::map<std::uint64_t, request_cost> in_flight_;
  std::uint64_t next_seq_ = 0, newest_seen_ = 0;
  REQUESTS_ENGINE_INLINE void observe_locked(const header_list& h, clock::time_point now, std::uint64_t seq);
  clock::time_point paused_{};
  bool learn_ = true;
  std::atomic<bool> active_{false};

};

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
