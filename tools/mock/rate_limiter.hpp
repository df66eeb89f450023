// requests_engine mock: the rate limiter, token buckets per API key that start full and refill
// continuously, as the providers' do (requests, tokens, input and output tokens per minute).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace requests_engine_mock {
namespace detail {

enum limit_kind : std::size_t { limit_requests, limit_tokens, limit_input_tokens, limit_output_tokens, limit_kinds };
using limit_amounts = std::array<double, limit_kinds>;

struct limit_view {
  double limit = 0;  // 0: this limit is not configured
  std::int64_t remaining = 0;
  std::chrono::milliseconds reset{0};  // until the bucket is full again
};

struct limit_decision {
  bool allowed = true;
  bool too_large = false;                  // the request alone is over a limit: it can never pass
  limit_kind refused_by = limit_requests;  // when !allowed
  std::chrono::milliseconds retry_after{0};
  std::array<limit_view, limit_kinds> views{};
};

// Token buckets per API key. A request is let through only when every bucket has room for
// it, and then takes its cost from all of them: a refusal costs nothing, as at the providers.
class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  void set_limits(const limit_amounts& per_minute) {
    std::lock_guard<std::mutex> lk(m_);
    limits_ = per_minute;
    keys_.clear();
    enabled_.store(std::any_of(limits_.begin(), limits_.end(), [](double v) { return v > 0; }));
  }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // consume = false only looks (for the headers of an answer that is not served).
  limit_decision check(const std::string& key, const limit_amounts& cost, bool consume, clock::time_point now) {
    limit_decision d;
    std::lock_guard<std::mutex> lk(m_);
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      std::array<bucket, limit_kinds> fresh{};
      for (std::size_t k = 0; k < limit_kinds; ++k) fresh[k] = bucket{limits_[k], now};
      it = keys_.emplace(key, fresh).first;
    }
    auto& buckets = it->second;
    for (std::size_t k = 0; k < limit_kinds; ++k) {
      const double limit = limits_[k];
      if (limit <= 0) continue;
      bucket& b = buckets[k];
      const double per_second = limit / 60.0;
      const double elapsed = std::chrono::duration<double>(now - b.last).count();
      if (elapsed > 0) {
        b.level = std::min(limit, b.level + elapsed * per_second);
        b.last = now;
      }
      if (cost[k] > limit) {
        d.allowed = false;
        d.too_large = true;
        d.refused_by = static_cast<limit_kind>(k);
        d.retry_after = std::max(d.retry_after, std::chrono::milliseconds(60000));
      } else if (b.level < cost[k]) {
        const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(
            std::ceil((cost[k] - b.level) / per_second * 1000.0)));
        if (d.allowed || wait > d.retry_after) d.refused_by = static_cast<limit_kind>(k);
        d.allowed = false;
        d.retry_after = std::max(d.retry_after, wait);
      }
    }
    for (std::size_t k = 0; k < limit_kinds; ++k) {
      const double limit = limits_[k];
      if (limit <= 0) continue;
      bucket& b = buckets[k];
      if (d.allowed && consume) b.level -= cost[k];
      limit_view& v = d.views[k];
      v.limit = limit;
      v.remaining = static_cast<std::int64_t>(std::floor(std::max(0.0, b.level)));
      v.reset = std::chrono::milliseconds(
          static_cast<std::int64_t>(std::ceil((limit - b.level) / (limit / 60.0) * 1000.0)));
    }
    return d;
  }

 private:
  struct bucket {
    double level = 0;
    clock::time_point last{};
  };
  std::mutex m_;
  limit_amounts limits_{};
  std::unordered_map<std::string, std::array<bucket, limit_kinds>> keys_;  // by the key itself: never leaves memory
  std::atomic<bool> enabled_{false};
};

}  // namespace detail
}  // namespace requests_engine_mock
