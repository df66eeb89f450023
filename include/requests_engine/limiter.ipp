// limiter.ipp: the definitions of limiter.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "limiter.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_reset_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double total_ms = 0;
  std::size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    std::size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) return std::nullopt;
    const double v = std::strtod(std::string(s.substr(start, i - start)).c_str(), nullptr);
    std::size_t u = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    const std::string_view unit = s.substr(u, i - u);
    if (unit == "ms") total_ms += v;
    else if (unit == "s" || unit.empty()) total_ms += v * 1000.0;
    else if (unit == "m") total_ms += v * 60000.0;
    else if (unit == "h") total_ms += v * 3600000.0;
    else if (unit == "us") total_ms += v / 1000.0;
    else if (unit == "ns") total_ms += v / 1e6;
    else return std::nullopt;
    any = true;
    if (unit.empty() && i < s.size()) return std::nullopt;
  }
  if (!any || !(total_ms >= 0) || total_ms > 1e12) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(total_ms)));
}

REQUESTS_ENGINE_INLINE std::optional<std::chrono::milliseconds> parse_rfc3339(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double sec = 0;
  char tsep = 0;
  int consumed = 0;
  const std::string text(s);
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%lf%n", &y, &mo, &d, &tsep, &h, &mi, &sec, &consumed) != 7)
    return std::nullopt;
  if (tsep != 'T' && tsep != 't' && tsep != ' ') return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
#if defined(_WIN32)
  std::time_t base = _mkgmtime(&tm);
#else
  std::time_t base = timegm(&tm);
#endif
  double offset_s = 0;
  std::string_view rest = s.substr(static_cast<std::size_t>(consumed));
  if (rest == "Z" || rest == "z" || rest.empty()) {
    offset_s = 0;
  } else if ((rest[0] == '+' || rest[0] == '-') && rest.size() == 6 && rest[3] == ':') {
    const int oh = std::atoi(std::string(rest.substr(1, 2)).c_str());
    const int om = std::atoi(std::string(rest.substr(4, 2)).c_str());
    offset_s = (rest[0] == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
  } else {
    return std::nullopt;
  }
  const double ms = (static_cast<double>(base) + sec - offset_s) * 1000.0;
  // Seconds such as 1e108 parse: beyond what milliseconds hold (about 292 million years) the
  // value is no date at all, and converting it would be undefined.
  if (!(std::fabs(ms) < 4.6e18)) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

REQUESTS_ENGINE_INLINE request_cost estimate_cost(const json& body, std::size_t body_size) {
  request_cost c;
  c.input_tokens = std::ceil(static_cast<double>(body_size) / 4.0);
  for (const char* k : {"max_tokens", "max_completion_tokens", "max_output_tokens"}) {
    auto it = body.find(k);
    if (it != body.end() && it->is_number()) {
      c.output_tokens = it->get<double>();
      return c;
    }
  }
  auto gc = body.find("generationConfig");  // Gemini
  if (gc != body.end() && gc->is_object()) {
    auto it = gc->find("maxOutputTokens");
    if (it != gc->end() && it->is_number()) c.output_tokens = it->get<double>();
  }
  return c;
}

REQUESTS_ENGINE_INLINE rate_limiter::rate_limiter(const options::rate_limits& l) : learn_(l.learn) {
  configured_[requests].per_second = l.requests_per_minute / 60.0;
  configured_[tokens].per_second = l.tokens_per_minute / 60.0;
  configured_[input_tokens].per_second = l.input_tokens_per_minute / 60.0;
  configured_[output_tokens].per_second = l.output_tokens_per_minute / 60.0;
  per_second_.per_second = l.requests_per_second;
  bool any = per_second_.per_second > 0;
  for (const auto& p : configured_) any = any || p.per_second > 0;
  active_ = any;
}

REQUESTS_ENGINE_INLINE clock::time_point rate_limiter::earliest_locked(const request_cost& c,
                                                                     clock::time_point now) const {
  clock::time_point t = std::max(now, paused_);
  auto later = [&](const pace& p) {
    if (p.per_second > 0) t = std::max(t, p.tat);
  };
  later(per_second_);
  for (std::size_t d = 0; d < dimensions; ++d)
    if (amount(c, d) > 0) later(configured_[d]);
  for (std::size_t d = 0; d < dimensions; ++d) {
    const server_bucket& b = server_[d];
    const double need = std::min(amount(c, d), b.limit);  // a request larger than the limit waits for a full bucket
    if (!b.known || need <= 0) continue;
    const double have = b.available(t);
    if (have >= need) continue;
    if (b.refill_per_second <= 0) continue;
    const auto wait = std::chrono::duration<double>((need - have) / b.refill_per_second);
    t += std::chrono::duration_cast<clock::duration>(wait);
  }
  return t;
}

REQUESTS_ENGINE_INLINE clock::time_point rate_limiter::earliest(const request_cost& c, clock::time_point now) {
  std::lock_guard<std::mutex> lock(m_);
  return earliest_locked(c, now);
}

REQUESTS_ENGINE_INLINE clock::time_point rate_limiter::reserve(const request_cost& c, clock::time_point now) {
  std::lock_guard<std::mutex> lock(m_);
  const clock::time_point t = earliest_locked(c, now);
  auto take = [&](pace& p, double units) {
    if (p.per_second <= 0 || units <= 0) return;
    // A request a little late for its slot (a waiting request is woken, not pre-booked) keeps
    // it, so that wake-up delays do not slow the pace; one that comes later starts afresh.
    const clock::time_point base = p.tat < t && t - p.tat <= late_slot ? p.tat : std::max(p.tat, t);
    p.tat = base + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(units / p.per_second));
  };
  take(per_second_, c.requests);
  for (std::size_t d = 0; d < dimensions; ++d) {
    pending_[d] += amount(c, d);
    take(configured_[d], amount(c, d));
    if (server_[d].known) server_[d].used_since += amount(c, d);
  }
  return t;
}

REQUESTS_ENGINE_INLINE void rate_limiter::unreserve(const request_cost& c) {
  std::lock_guard<std::mutex> lock(m_);
  for (std::size_t d = 0; d < dimensions; ++d) pending_[d] = std::max(0.0, pending_[d] - amount(c, d));
}

REQUESTS_ENGINE_INLINE std::uint64_t rate_limiter::sending(const request_cost& c) {
  std::lock_guard<std::mutex> lock(m_);
  for (std::size_t d = 0; d < dimensions; ++d) pending_[d] = std::max(0.0, pending_[d] - amount(c, d));
  const std::uint64_t seq = ++next_seq_;
  in_flight_.emplace(seq, c);
  return seq;
}

REQUESTS_ENGINE_INLINE void rate_limiter::answered(std::uint64_t seq, const header_list* h, clock::time_point now) {
  std::lock_guard<std::mutex> lock(m_);
  in_flight_.erase(seq);
  if (h != nullptr && learn_ && seq > newest_seen_) observe_locked(*h, now, seq);
}

REQUESTS_ENGINE_INLINE void rate_limiter::observe(const header_list& h, clock::time_point now) {
  if (!learn_) return;
  std::lock_guard<std::mutex> lock(m_);
  observe_locked(h, now, 0);
}

REQUESTS_ENGINE_INLINE bool rate_limiter::correct(const request_cost& estimated, std::int64_t input,
                                                  std::int64_t output) {
  request_cost actual;
  actual.requests = 0;
  actual.input_tokens = static_cast<double>(input);
  actual.output_tokens = static_cast<double>(output);
  std::lock_guard<std::mutex> lock(m_);
  bool gave_back = false;
  for (std::size_t d = tokens; d < dimensions; ++d) {
    const double delta = amount(actual, d) - amount(estimated, d);
    pace& p = configured_[d];
    if (p.per_second > 0) {
      p.tat += std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(delta / p.per_second));
      gave_back = gave_back || delta < 0;
    }
    // The server's buckets are not touched: its next answer's headers carry its own count.
  }
  return gave_back;
}

REQUESTS_ENGINE_INLINE void rate_limiter::observe_locked(const header_list& h, clock::time_point now,
                                                         std::uint64_t seq) {
  auto starts = [](const std::string& name, std::string_view prefix) {
    if (name.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(name[i])) != prefix[i]) return false;
    return true;
  };
  bool any = false;
  for (const auto& kv : h) any = any || starts(kv.first, "x-ratelimit-") || starts(kv.first, "anthropic-ratelimit-");
  if (!any) return;
  struct source {
    std::size_t d;
    const char* limit;
    const char* remaining;
    const char* reset;
    bool rfc3339;
  };
  static const source sources[] = {
      {requests, "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", false},
      {tokens, "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", false},
      {requests, "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
       "anthropic-ratelimit-requests-reset", true},
      {tokens, "anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining",
       "anthropic-ratelimit-tokens-reset", true},
      {input_tokens, "anthropic-ratelimit-input-tokens-limit", "anthropic-ratelimit-input-tokens-remaining",
       "anthropic-ratelimit-input-tokens-reset", true},
      {output_tokens, "anthropic-ratelimit-output-tokens-limit", "anthropic-ratelimit-output-tokens-remaining",
       "anthropic-ratelimit-output-tokens-reset", true},
  };
  auto number = [](const std::string& v) -> std::optional<double> {
    if (v.empty()) return std::nullopt;
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !(d >= 0)) return std::nullopt;
    return d;
  };
  double unseen[dimensions] = {};  // what the server may not have counted when it answered `seq`
  for (std::size_t d = 0; d < dimensions; ++d) unseen[d] = pending_[d];
  for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it)
    for (std::size_t d = 0; d < dimensions; ++d) unseen[d] += amount(it->second, d);
  newest_seen_ = std::max(newest_seen_, seq);
  for (const source& s : sources) {
    auto limit = number(find_header(h, s.limit));
    auto remaining = number(find_header(h, s.remaining));
    if (!limit || !remaining || *limit <= 0) continue;
    const std::string reset_text = find_header(h, s.reset);
    double reset_s = 0;
    if (s.rfc3339) {
      if (auto at = parse_rfc3339(reset_text)) {
        const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        reset_s = std::max(0.0, static_cast<double>((*at - since_epoch).count()) / 1000.0);
      }
    } else if (auto d = parse_reset_duration(reset_text)) {
      reset_s = static_cast<double>(d->count()) / 1000.0;
    }
    server_bucket& b = server_[s.d];
    b.known = true;
    b.limit = *limit;
    b.remaining = std::min(*remaining, *limit);
    // The bucket is full again at the reset time; without one, assume a per-minute limit.
    b.refill_per_second = reset_s > 0 ? std::max((b.limit - b.remaining) / reset_s, b.limit / 60.0) : b.limit / 60.0;
    b.used_since = unseen[s.d];
    b.at = now;
    active_ = true;
  }
}

REQUESTS_ENGINE_INLINE void rate_limiter::pause_until(clock::time_point until) {
  std::lock_guard<std::mutex> lock(m_);
  paused_ = std::max(paused_, until);
  active_ = true;
}

REQUESTS_ENGINE_INLINE clock::time_point rate_limiter::paused_until() {
  std::lock_guard<std::mutex> lock(m_);
  return paused_;
}

REQUESTS_ENGINE_INLINE options::rate_limits rate_limiter::learned() {
  std::lock_guard<std::mutex> lock(m_);
  options::rate_limits l;
  auto per_minute = [&](std::size_t d) { return server_[d].known ? server_[d].limit : 0.0; };
  l.requests_per_minute = per_minute(requests);
  l.tokens_per_minute = per_minute(tokens);
  l.input_tokens_per_minute = per_minute(input_tokens);
  l.output_tokens_per_minute = per_minute(output_tokens);
  return l;
}

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
