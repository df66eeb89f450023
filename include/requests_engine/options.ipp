// options.ipp: the definitions of options.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "options.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

REQUESTS_ENGINE_INLINE std::string format_progress_bar(const progress& p, std::size_t width) {
  double frac = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
  auto filled = static_cast<std::size_t>(frac * static_cast<double>(width));
  std::string bar = "[" + std::string(filled, '=') + (filled < width ? ">" : "") +
                    std::string(width - std::min(width, filled + 1), ' ') + "]";
  if (filled >= width) bar = "[" + std::string(width, '=') + "]";
  auto fmt_time = [](double s) {
    auto t = static_cast<long long>(s + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
    return std::string(buf);
  };
  auto fmt_tokens = [](std::int64_t n) {
    char buf[32];
    if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
    else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
    else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
    return std::string(buf);
  };
  std::string eta = "--:--:--";
  if (p.requests_per_second > 0 && p.done < p.total)
    eta = fmt_time(static_cast<double>(p.total - p.done) / p.requests_per_second);
  else if (p.done == p.total)
    eta = fmt_time(0);
  char buf[256];
  // The elapsed time and the requests in flight move while no answer arrives: the bar is seen
  // to be alive during a long answer or a rate-limit pause.
  std::snprintf(buf, sizeof buf,
                " %zu/%zu  in flight %zu  %.1f req/s  %s elapsed  ETA %s  failed %zu  retries %zu  tokens %s in / %s out",
                p.done, p.total, p.in_flight, p.requests_per_second, fmt_time(p.elapsed_seconds).c_str(), eta.c_str(),
                p.failed, p.retries, fmt_tokens(p.input_tokens).c_str(), fmt_tokens(p.output_tokens).c_str());
  std::string out = bar + buf;
  if (p.spend > 0 || p.spend_as_if > 0 || !p.spend_complete) {
    std::snprintf(buf, sizeof buf, "  $%.4f%s", p.spend, p.spend_complete ? "" : "+?");
    out += buf;
  }
  return out;
}

REQUESTS_ENGINE_INLINE bool stderr_is_terminal() noexcept {
#if defined(_WIN32)
  return _isatty(_fileno(stderr)) != 0;
#else
  return ::isatty(::fileno(stderr)) != 0;
#endif
}

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
