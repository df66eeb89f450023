// The run report: `run` records one event per request in OUT.events.jsonl (events_log), and
// `requests-engine report` (or `run --report`) turns one or more such files into a single HTML
// page with no external resource: inline CSS and SVG, no script.
// Included by tools/run_command.hpp only.
#pragma once

#include "requests_engine.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace requests_engine_cli {

namespace re = ::requests_engine;
using json = re::json;

namespace detail {

inline void write_all(int fd, const std::string& data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("cannot write the output file: ") + std::strerror(errno));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// A temporary file renamed into place: a script polling for the file never reads half of it.
inline void write_file_atomically(const std::string& path, const std::string& what, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + what + " '" + path + "': " + std::strerror(errno));
  try {
    write_all(fd, text);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + what + " '" + path + "': " + why);
  }
}

// A JSON string literal (invalid UTF-8 replaced, never thrown on).
inline std::string json_text(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

inline std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// The last complete line of a file (empty when none); `ends_cleanly`: the file ends with '\n'.
inline std::string last_line(int fd, bool& ends_cleanly) {
  ends_cleanly = true;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return {};
  const off_t from = std::max<off_t>(0, size - 65536);
  std::string tail(static_cast<std::size_t>(size - from), '\0');
  if (::pread(fd, tail.data(), tail.size(), from) != static_cast<ssize_t>(tail.size())) return {};
  ends_cleanly = tail.back() == '\n';
  if (!ends_cleanly) return {};
  tail.pop_back();
  const auto nl = tail.rfind('\n');
  return nl == std::string::npos ? tail : tail.substr(nl + 1);
}

}  // namespace detail

/// What a run's first event line says about it.
struct run_info {
  std::string command = "run";
  std::string provider;
  std::string model;
  std::string input;
  std::string output;
  std::size_t concurrency = 0;
  double rpm = 0;  ///< configured limits (0 = none)
  double tpm = 0;
  std::size_t requests = 0;  ///< requests this run is expected to get (the input is read as the run goes)
};

/// OUT.events.jsonl, written as the run goes: a "run" line, one "request" line per result (as
/// it is delivered, with its attempts), "limits" lines when the limits learned from the server
/// change, and an "end" line. Written with write(2) as the output is (by `run`'s writer thread,
/// in batches every 20 ms), so a crash keeps what was written. A resumed run (the file's last run has no "end" line, or ended
/// interrupted) appends; otherwise the file starts anew, as the output does. No prompt, no
/// answer, no header and no key ever goes into it: ids, times, counts, codes, and error
/// messages (which the library keeps free of secrets).
/// Not thread-safe: the CLI calls it from the engine's callbacks, which never run two at once.
class events_log {
 public:
  events_log() = default;
  events_log(const events_log&) = delete;
  events_log& operator=(const events_log&) = delete;
  ~events_log() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Opens `path` and writes the run line. Throws std::runtime_error when it cannot.
  void open(const std::string& path, const run_info& info) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open the events file '" + path + "': " + std::strerror(errno));
    bool clean = true;
    const std::string last = detail::last_line(fd_, clean);
    bool resume = !clean;
    if (clean && !last.empty()) {
      const json j = json::parse(last, nullptr, false);
      resume = !(j.is_object() && j.value("type", "") == "end" && !j.value("interrupted", false));
    }
    if (!resume && ::ftruncate(fd_, 0) != 0)
      throw std::runtime_error("cannot truncate the events file '" + path + "': " + std::strerror(errno));
    ::lseek(fd_, 0, SEEK_END);
    appended_ = resume;
    wall0_ = std::chrono::system_clock::now();
    steady0_ = std::chrono::steady_clock::now();
    json j = {{"type", "run"},        {"t", ms(steady0_)},         {"command", info.command},
              {"provider", info.provider}, {"model", info.model}, {"input", info.input},
              {"output", info.output},  {"concurrency", info.concurrency}, {"rpm", info.rpm},
              {"tpm", info.tpm},        {"requests", info.requests}, {"resumed", resume}};
    // A line cut short by a crash ends here, so that the run line starts a line of its own.
    write((clean ? std::string() : std::string("\n")) + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  }

  [[nodiscard]] bool active() const noexcept { return fd_ >= 0 && failed_.empty(); }
  /// The file, for a writer that takes over the writing (see to_sink).
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// From now on the lines go to `sink` (a writer thread), not to the file; an empty one gives
  /// the writing back.
  void to_sink(std::function<void(std::string&&)> sink) { sink_ = std::move(sink); }
  [[nodiscard]] bool appended() const noexcept { return appended_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Why writing stopped (a full disk), or empty.
  [[nodiscard]] const std::string& failure() const noexcept { return failed_; }

  /// Epoch milliseconds of a steady-clock time.
  [[nodiscard]] std::int64_t ms(std::chrono::steady_clock::time_point t) const {
    const auto wall = wall0_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - steady0_);
    return std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
  }

  /// An attempt ended: kept until its request's result.
  void attempt(const re::attempt_info& a) {
    if (!active()) return;
    pending& p = pending_[a.index];
    const std::int64_t ready = ms(a.ready), sent = ms(a.sent);
    if (p.attempts.empty()) p.first_sent = sent;
    p.rate_wait += sent - ready;
    std::string& s = p.attempts;
    s += s.empty() ? "[" : ",";
    s += "{\"ready\":" + std::to_string(ready) + ",\"sent\":" + std::to_string(sent) + ",\"end\":" +
         std::to_string(ms(a.ended));
    if (a.http_status != 0) s += ",\"status\":" + std::to_string(a.http_status);
    if (a.error) s += ",\"error\":\"" + std::string(re::to_string(*a.error)) + "\"";
    if (a.retried) s += ",\"wait\":" + std::to_string(a.wait.count());
    s += "}";
  }

  /// A request's result: its line.
  void result(std::size_t index, const std::string& id, const re::result<re::completion>& r,
              const re::price_table& prices) {
    if (!active()) return;
    const std::int64_t end = ms(std::chrono::steady_clock::now());
    pending p;
    auto it = pending_.find(index);
    if (it != pending_.end()) {
      p = std::move(it->second);
      pending_.erase(it);
    }
    std::int64_t latency = 0;
    if (r)
      latency = r->latency.count();
    else if (!p.attempts.empty())
      latency = end - p.first_sent;  // as the library measures an answer's: from the first send
    std::string s = "{\"type\":\"request\",\"id\":" + detail::json_text(id) + ",\"start\":" +
                    std::to_string(end - latency) + ",\"end\":" + std::to_string(end) +
                    ",\"latency\":" + std::to_string(latency);
    if (!p.attempts.empty()) s += ",\"attempts\":" + p.attempts + "],\"rate_wait\":" + std::to_string(p.rate_wait);
    if (r) {
      const re::completion& c = *r;
      if (c.from_cache) s += ",\"from_cache\":true";
      if (c.deduplicated && !c.from_cache) s += ",\"deduplicated\":true";
      s += ",\"model\":" + detail::json_text(c.model) + ",\"input_tokens\":" + std::to_string(c.usage.input_tokens) +
           ",\"output_tokens\":" + std::to_string(c.usage.output_tokens);
      if (auto dollars = prices.cost(c.model, c.usage)) {
        const bool paid = !c.from_cache && !c.deduplicated;
        s += ",\"cost\":" + number(paid ? *dollars : 0.0) + ",\"as_if\":" + number(*dollars);
      }
      if (c.time_to_first_token) s += ",\"ttft\":" + std::to_string(c.time_to_first_token->count());
    } else {
      const re::error& e = r.error();
      std::string message = e.message.size() > 300 ? e.message.substr(0, 300) + "..." : e.message;
      s += ",\"error\":{\"code\":\"" + std::string(re::to_string(e.code)) + "\"";
      if (e.http_status != 0) s += ",\"http_status\":" + std::to_string(e.http_status);
      s += ",\"message\":" + detail::json_text(message) + "}";
    }
    s += "}\n";
    write(s);
  }

  /// The limits learned from the server, written when they change.
  void limits(const re::options::rate_limits& l) {
    if (!active()) return;
    const double rpm = l.requests_per_minute > 0 ? l.requests_per_minute : l.requests_per_second * 60.0;
    if (rpm == learned_rpm_ && l.tokens_per_minute == learned_tpm_) return;
    learned_rpm_ = rpm;
    learned_tpm_ = l.tokens_per_minute;
    write("{\"type\":\"limits\",\"t\":" + std::to_string(ms(std::chrono::steady_clock::now())) + ",\"rpm\":" +
          number(rpm) + ",\"tpm\":" + number(l.tokens_per_minute) + "}\n");
  }

  /// The end of the run, with the summary's counts.
  void end(const json& counts) {
    if (!active()) return;
    json j = counts;
    j["type"] = "end";
    j["t"] = ms(std::chrono::steady_clock::now());
    write(j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  }

 private:
  struct pending {
    std::string attempts;  // "[{...},{...}" while open
    std::int64_t first_sent = 0;
    std::int64_t rate_wait = 0;
  };
  static std::string number(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
  }
  void write(std::string s) {
    if (sink_) {
      sink_(std::move(s));
      return;
    }
    try {
      detail::write_all(fd_, s);
    } catch (const std::exception& e) {
      // The output matters more than its report: the run goes on without events.
      failed_ = std::string(e.what()) + " ('" + path_ + "')";
    }
  }

  int fd_ = -1;
  std::string path_;
  std::string failed_;
  bool appended_ = false;
  std::chrono::system_clock::time_point wall0_;
  std::chrono::steady_clock::time_point steady0_;
  std::unordered_map<std::size_t, pending> pending_;
  std::function<void(std::string&&)> sink_;
  double learned_rpm_ = 0;
  double learned_tpm_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Reading events and making the page.

/// One request as the report sees it.
struct request_event {
  std::string id;
  std::size_t run = 0;  ///< which run (index into report_data::runs)
  std::int64_t start = 0, end = 0, latency = 0, rate_wait = 0;
  struct attempt {
    std::int64_t ready = 0, sent = 0, end = 0, wait = 0;
    int status = 0;
    std::string error;
    bool retried = false;
  };
  std::vector<attempt> attempts;
  bool from_cache = false, deduplicated = false;
  std::string model;
  std::int64_t input_tokens = 0, output_tokens = 0;
  std::optional<double> cost, as_if;
  std::optional<std::int64_t> ttft;
  bool failed = false;
  std::string error_code, error_message;
  int http_status = 0;
};

struct run_record {
  std::string file;
  json info;            ///< the "run" line
  std::int64_t start = 0;  ///< its "t"
  std::int64_t last = 0;   ///< the last time seen in it
  std::optional<json> end;  ///< the "end" line, when it finished
  std::size_t events = 0;
  struct limit_change {
    std::int64_t t;
    double rpm, tpm;
  };
  std::vector<limit_change> learned;
};

struct report_data {
  std::vector<run_record> runs;
  std::vector<request_event> requests;  ///< one per id (see read_events)
  std::size_t superseded = 0;           ///< events of an id that another event of it replaced
  std::vector<std::string> problems;    ///< "FILE:LINE: why"
};

namespace detail {

// A whole number in [0, most] (times in epoch milliseconds before the year 2300, token counts
// below 2^40, as the library bounds them): anything else in a hand-edited or damaged file is
// refused by name rather than overflowing a sum.
inline std::int64_t bounded(const json& j, const char* key, std::int64_t fallback,
                            std::int64_t most = std::int64_t{10'000'000'000'000}) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number()) throw std::invalid_argument(std::string("'") + key + "' is not a number");
  const double v = it->get<double>();
  if (!(v >= 0 && v <= static_cast<double>(most)))
    throw std::invalid_argument(std::string("'") + key + "' is out of range");
  return static_cast<std::int64_t>(v);
}

inline void read_request(const json& j, request_event& e) {
  e.id = j.at("id").is_string() ? j.at("id").get<std::string>() : j.at("id").dump();
  e.start = bounded(j, "start", 0);
  e.end = bounded(j, "end", e.start);
  e.latency = bounded(j, "latency", e.end >= e.start ? e.end - e.start : 0);
  e.rate_wait = bounded(j, "rate_wait", 0);
  if (auto a = j.find("attempts"); a != j.end() && a->is_array()) {
    for (const auto& x : *a) {
      request_event::attempt at;
      at.ready = bounded(x, "ready", e.start);
      at.sent = bounded(x, "sent", at.ready);
      at.end = bounded(x, "end", at.sent);
      at.status = static_cast<int>(bounded(x, "status", 0, 999));
      at.error = x.value("error", "");
      at.retried = x.contains("wait");
      at.wait = bounded(x, "wait", 0);
      e.attempts.push_back(std::move(at));
    }
  }
  e.from_cache = j.value("from_cache", false);
  e.deduplicated = j.value("deduplicated", false);
  e.model = j.value("model", "");
  constexpr std::int64_t most_tokens = std::int64_t{1} << 40;
  e.input_tokens = bounded(j, "input_tokens", 0, most_tokens);
  e.output_tokens = bounded(j, "output_tokens", 0, most_tokens);
  auto dollars = [&](const char* key) -> std::optional<double> {
    if (!j.contains(key)) return std::nullopt;
    const double v = j.at(key).get<double>();
    if (!(v >= 0 && v < 1e12)) throw std::invalid_argument(std::string("'") + key + "' is out of range");
    return v;
  };
  e.cost = dollars("cost");
  e.as_if = dollars("as_if");
  if (j.contains("ttft")) e.ttft = bounded(j, "ttft", 0);
  if (auto er = j.find("error"); er != j.end() && er->is_object()) {
    e.failed = true;
    e.error_code = er->value("code", "");
    e.error_message = er->value("message", "");
    e.http_status = static_cast<int>(bounded(*er, "http_status", 0, 999));
  }
}

// Which of two events of one id the report keeps: the one that did the work (sent, rather than
// answered from the cache by a later run), and of two alike, the later.
inline bool replaces(const request_event& later, const request_event& earlier) {
  const bool sent_later = !later.from_cache, sent_earlier = !earlier.from_cache;
  return sent_later || !sent_earlier;
}

}  // namespace detail

/// Reads event files (in the order given: shards, resumed runs). A line that is not an event
/// (a line cut short by a crash) is named in `problems` and skipped. An id seen in several runs
/// counts once (detail::replaces).
inline report_data read_events(const std::vector<std::string>& files) {
  report_data d;
  std::unordered_map<std::string, std::size_t> by_id;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the events file '" + file + "': " + std::strerror(errno));
    std::string line;
    std::size_t number = 0;
    std::optional<std::size_t> run;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) continue;
      const json j = json::parse(line, nullptr, false);
      const std::string where = file + ":" + std::to_string(number) + ": ";
      if (!j.is_object() || !j.contains("type")) {
        d.problems.push_back(where + "not an event line (cut short by a crash?); skipped");
        continue;
      }
      try {
        const std::string type = j.at("type").get<std::string>();
        if (type == "run") {  // the fields the page reads, checked here: a bad one skips the line
          (void)detail::bounded(j, "concurrency", 0, 1'000'000'000);
          if (j.value("rpm", 0.0) < 0 || j.value("tpm", 0.0) < 0) throw std::invalid_argument("a negative limit");
        } else if (type == "end") {
          (void)j.value("interrupted", false);  // a wrong type throws here rather than in the page
          if (j.value("wall_seconds", 0.0) < 0) throw std::invalid_argument("'wall_seconds' is negative");
        }
        if (type == "run" || !run) {
          run_record r;
          r.file = file;
          r.info = type == "run" ? j : json::object();
          r.start = type == "run" ? detail::bounded(j, "t", 0) : detail::bounded(j, "start", detail::bounded(j, "t", 0));
          r.last = r.start;
          d.runs.push_back(std::move(r));
          run = d.runs.size() - 1;
          if (type == "run") continue;
        }
        run_record& r = d.runs[*run];
        if (type == "request") {
          request_event e;
          detail::read_request(j, e);
          e.run = *run;
          ++r.events;
          r.start = std::min(r.start, e.start);
          r.last = std::max(r.last, e.end);
          auto [it, fresh] = by_id.emplace(e.id, d.requests.size());
          if (fresh) {
            d.requests.push_back(std::move(e));
          } else {
            ++d.superseded;
            if (detail::replaces(e, d.requests[it->second])) d.requests[it->second] = std::move(e);
          }
        } else if (type == "limits") {
          r.learned.push_back({detail::bounded(j, "t", r.last), j.value("rpm", 0.0), j.value("tpm", 0.0)});
        } else if (type == "end") {
          r.last = std::max(r.last, detail::bounded(j, "t", r.last));
          r.end = j;
        } else {
          d.problems.push_back(where + "unknown event type '" + type + "'; skipped");
        }
      } catch (const json::exception& e) {
        d.problems.push_back(where + "a field has the wrong type (" + e.what() + "); skipped");
      } catch (const std::invalid_argument& e) {
        d.problems.push_back(where + e.what() + "; skipped");
      }
    }
  }
  return d;
}

namespace detail {

inline std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

inline std::string with_commas(std::int64_t v) {
  const std::uint64_t magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  std::string digits = std::to_string(magnitude), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

inline std::string money(double v) {
  if (v == 0) return "$0";
  return "$" + fixed(v, v < 0.01 ? 6 : 4);
}

// A round step for an axis that spans [0, top].
inline double nice_step(double top, int ticks) {
  if (top <= 0) return 1;
  const double raw = top / ticks;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

// An axis label: 0.25, 1.5, 40, 2500, 12k, 1.5M.
inline std::string short_number(double v) {
  auto trimmed = [](std::string t) {
    if (t.find('.') == std::string::npos) return t;
    while (t.back() == '0') t.pop_back();
    if (t.back() == '.') t.pop_back();
    return t;
  };
  if (v >= 1e6) return trimmed(fixed(v / 1e6, 1)) + "M";
  if (v >= 1e4) return trimmed(fixed(v / 1e3, 1)) + "k";
  return trimmed(fixed(v, v >= 100 ? 0 : 2));
}

/// The time axis: the runs one after another, the gaps between them left out.
struct timeline {
  std::vector<std::int64_t> run_start, run_offset, run_length;  // ms
  std::int64_t total = 1;
  std::int64_t bucket = 1;  // ms per bucket
  std::size_t buckets = 1;

  explicit timeline(const report_data& d) {
    std::int64_t at = 0;
    for (const auto& r : d.runs) {
      run_start.push_back(r.start);
      run_offset.push_back(at);
      const std::int64_t len = std::max<std::int64_t>(1, r.last - r.start);
      run_length.push_back(len);
      at += len;
    }
    total = std::max<std::int64_t>(1, at);
    bucket = std::max<std::int64_t>(100, (total + 149) / 150);
    buckets = static_cast<std::size_t>((total + bucket - 1) / bucket);
  }
  // Axis milliseconds of an event time of run `r`, clamped into that run.
  [[nodiscard]] std::int64_t at(std::size_t r, std::int64_t t) const {
    return run_offset[r] + std::clamp<std::int64_t>(t - run_start[r], 0, run_length[r]);
  }
  [[nodiscard]] std::size_t bucket_of(std::int64_t axis) const {
    return std::min(buckets - 1, static_cast<std::size_t>(std::max<std::int64_t>(0, axis) / bucket));
  }
  // Adds the time [a, b) (axis ms) spends in each bucket, divided by the bucket's width: the
  // mean number of such intervals open at once.
  void spread(std::vector<double>& into, std::int64_t a, std::int64_t b) const {
    if (b <= a) return;
    for (std::size_t k = bucket_of(a); k < buckets; ++k) {
      const std::int64_t lo = static_cast<std::int64_t>(k) * bucket, hi = lo + bucket;
      if (lo >= b) break;
      const std::int64_t overlap = std::min(b, hi) - std::max(a, lo);
      if (overlap > 0) into[k] += static_cast<double>(overlap) / static_cast<double>(bucket);
    }
  }
};

struct series {
  std::string name, color;
  std::vector<double> values;
  bool dashed = false;
};

constexpr int chart_w = 920, chart_h = 230, margin_l = 64, margin_r = 16, margin_t = 14, margin_b = 34;

// Axes, grid and labels; `x_label` under the x axis. Returns the drawing's opening.
// `x_ticks`: where the x labels go (0..1 of the width) when not at round values of [0, x_max].
inline std::string axes(double x_max, double y_max, const std::string& x_label, const std::string& y_label,
                        const std::string& aria, const std::vector<std::pair<double, std::string>>& x_ticks = {}) {
  std::ostringstream s;
  const int pw = chart_w - margin_l - margin_r, ph = chart_h - margin_t - margin_b;
  s << "<svg viewBox=\"0 0 " << chart_w << ' ' << chart_h << "\" role=\"img\" aria-label=\"" << html_escape(aria)
    << "\">";
  const double ys = nice_step(y_max, 4);
  for (double y = 0; y <= y_max + 1e-9; y += ys) {
    const double py = margin_t + ph - y / y_max * ph;
    s << "<line x1=\"" << margin_l << "\" x2=\"" << chart_w - margin_r << "\" y1=\"" << fixed(py, 1) << "\" y2=\""
      << fixed(py, 1) << "\" class=\"grid\"/><text x=\"" << margin_l - 6 << "\" y=\"" << fixed(py + 4, 1)
      << "\" class=\"yl\">" << short_number(y) << "</text>";
  }
  std::vector<std::pair<double, std::string>> ticks = x_ticks;
  if (ticks.empty()) {
    const double xs = nice_step(x_max, 8);
    for (double x = 0; x <= x_max + 1e-9; x += xs) ticks.emplace_back(x / x_max, short_number(x));
  }
  for (const auto& [at, label] : ticks)
    s << "<text x=\"" << fixed(margin_l + at * pw, 1) << "\" y=\"" << chart_h - margin_b + 16 << "\" class=\"xl\">"
      << label << "</text>";
  s << "<text x=\"" << margin_l + pw / 2 << "\" y=\"" << chart_h - 4 << "\" class=\"xl\">" << html_escape(x_label)
    << "</text><text transform=\"translate(14," << margin_t + ph / 2 << ") rotate(-90)\" class=\"xl\">"
    << html_escape(y_label) << "</text>";
  return s.str();
}

inline double top_of(const std::vector<series>& all, double at_least = 0) {
  double top = at_least;
  for (const auto& s : all)
    for (double v : s.values) top = std::max(top, v);
  if (top <= 0) top = 1;
  return nice_step(top * 1.05, 4) * std::ceil(top * 1.05 / nice_step(top * 1.05, 4));
}

inline std::string legend(const std::vector<series>& all) {
  std::string s = "<div class=\"legend\">";
  for (const auto& x : all)
    s += "<span><i style=\"background:" + x.color + (x.dashed ? ";height:2px" : "") + "\"></i>" + html_escape(x.name) +
         "</span>";
  return s + "</div>";
}

// Lines over the timeline's buckets; horizontal limit lines where a series has one value.
inline std::string line_chart(const timeline& t, const std::vector<series>& lines, const std::string& y_label,
                              const std::string& aria) {
  const double seconds = static_cast<double>(t.total) / 1000.0;
  const double top = top_of(lines);
  std::string s = axes(seconds, top, "seconds (runs one after another)", y_label, aria);
  const int pw = chart_w - margin_l - margin_r, ph = chart_h - margin_t - margin_b;
  for (const auto& l : lines) {
    if (l.values.empty()) continue;
    s += "<polyline fill=\"none\" stroke=\"" + l.color + "\" stroke-width=\"1.6\"" +
         (l.dashed ? std::string(" stroke-dasharray=\"6 4\"") : std::string()) + " points=\"";
    const std::size_t n = l.values.size();
    for (std::size_t k = 0; k < n; ++k) {
      // A bucket's value at its middle (one value: a line across the whole chart).
      const double x = n == 1 ? 0 : (static_cast<double>(k) + 0.5) / static_cast<double>(n);
      const double px = margin_l + x * pw;
      const double py = margin_t + ph - std::min(l.values[k], top) / top * ph;
      s += fixed(px, 1) + "," + fixed(py, 1) + " ";
      if (n == 1) s += fixed(margin_l + pw, 1) + "," + fixed(py, 1);
    }
    s += "\"><title>" + html_escape(l.name) + "</title></polyline>";
  }
  return s + "</svg>" + legend(lines);
}

// Stacked bars, one per bucket.
inline std::string stacked_chart(const timeline& t, const std::vector<series>& stack, const std::string& y_label,
                                 const std::string& aria) {
  const double seconds = static_cast<double>(t.total) / 1000.0;
  std::vector<double> sums(t.buckets, 0);
  for (const auto& x : stack)
    for (std::size_t k = 0; k < x.values.size(); ++k) sums[k] += x.values[k];
  const double top = top_of({series{"", "", sums}});
  std::string s = axes(seconds, top, "seconds (runs one after another)", y_label, aria);
  const double pw = chart_w - margin_l - margin_r, ph = chart_h - margin_t - margin_b;
  const double bw = pw / static_cast<double>(t.buckets);
  std::vector<double> base(t.buckets, 0);
  for (const auto& x : stack) {
    s += "<g fill=\"" + x.color + "\"><title>" + html_escape(x.name) + "</title>";
    for (std::size_t k = 0; k < t.buckets && k < x.values.size(); ++k) {
      if (x.values[k] <= 0) continue;
      const double h = x.values[k] / top * ph;
      const double y = margin_t + ph - (base[k] / top * ph) - h;
      s += "<rect x=\"" + fixed(margin_l + static_cast<double>(k) * bw, 1) + "\" y=\"" + fixed(y, 1) + "\" width=\"" +
           fixed(std::max(bw - 0.3, 0.6), 1) + "\" height=\"" + fixed(std::max(h, 0.6), 1) + "\"/>";
      base[k] += x.values[k];
    }
    s += "</g>";
  }
  return s + "</svg>" + legend(stack);
}

// A histogram of `values` (ms) with the quantiles marked.
inline std::string histogram(std::vector<double> values, const std::string& x_label, const std::string& aria,
                             const std::string& id_prefix, std::string& quantiles_html) {
  std::sort(values.begin(), values.end());
  auto q = [&](double p) {
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
    return values[rank == 0 ? 0 : rank - 1];
  };
  const double p50 = q(0.5), p90 = q(0.9), p99 = q(0.99);
  auto whole = [](double v) { return with_commas(static_cast<std::int64_t>(std::llround(v))); };
  quantiles_html = "<p class=\"q\">" + with_commas(static_cast<std::int64_t>(values.size())) +
                   " requests: p50 <b id=\"" + id_prefix + "-p50\">" + whole(p50) + "</b> ms, p90 <b id=\"" +
                   id_prefix + "-p90\">" + whole(p90) + "</b> ms, p99 <b id=\"" + id_prefix + "-p99\">" +
                   whole(p99) + "</b> ms, max " + whole(values.back()) + " ms</p>";
  // A logarithmic axis from 1 ms to the slowest: the fast bulk and the slow tail (retries, waits
  // for rate capacity) both show.
  const double hi = std::max(10.0, values.back() * 1.1);
  const double span = std::log10(hi);
  auto where = [&](double v) { return std::log10(std::max(1.0, v)) / span; };  // 0..1
  const std::size_t bins = 60;
  std::vector<double> counts(bins, 0);
  for (double v : values)
    counts[std::min(bins - 1, static_cast<std::size_t>(where(v) * static_cast<double>(bins)))] += 1;
  std::vector<std::pair<double, std::string>> ticks;
  for (double decade = 1; decade <= hi; decade *= 10)
    for (double m : {1.0, 3.0})
      if (decade * m <= hi) ticks.emplace_back(where(decade * m), short_number(decade * m));
  const double top = top_of({series{"", "", counts}});
  std::string s = axes(hi, top, x_label, "requests", aria, ticks);
  const double pw = chart_w - margin_l - margin_r, ph = chart_h - margin_t - margin_b;
  const double bw = pw / static_cast<double>(bins);
  s += "<g fill=\"#4e79a7\">";
  for (std::size_t k = 0; k < bins; ++k) {
    if (counts[k] <= 0) continue;
    const double h = counts[k] / top * ph;
    const double from = std::pow(10.0, span * static_cast<double>(k) / bins),
                 to = std::pow(10.0, span * static_cast<double>(k + 1) / bins);
    s += "<rect x=\"" + fixed(margin_l + static_cast<double>(k) * bw, 1) + "\" y=\"" + fixed(margin_t + ph - h, 1) +
         "\" width=\"" + fixed(bw - 1, 1) + "\" height=\"" + fixed(std::max(h, 0.6), 1) + "\"><title>" +
         short_number(from) + "-" + short_number(to) + " ms: " + fixed(counts[k], 0) + "</title></rect>";
  }
  s += "</g>";
  for (auto [name, v] : {std::pair<const char*, double>{"p50", p50}, {"p90", p90}, {"p99", p99}}) {
    const double px = margin_l + where(v) * pw;
    s += "<line x1=\"" + fixed(px, 1) + "\" x2=\"" + fixed(px, 1) + "\" y1=\"" + std::to_string(margin_t) + "\" y2=\"" +
         fixed(margin_t + ph, 1) + "\" class=\"mark\"/><text x=\"" + fixed(px + 3, 1) + "\" y=\"" +
         std::to_string(margin_t + 10) + "\" class=\"ml\">" + name + "</text>";
  }
  return s + "</svg>";
}

}  // namespace detail

/// Successful answers counted: the headline's, and each model's.
struct answer_tally {
  std::size_t succeeded = 0, from_cache = 0, deduplicated = 0;
  std::int64_t input_tokens = 0, output_tokens = 0;
  double actual = 0, as_if = 0;
  bool priced = false;  ///< some answer had a price
  void add(const request_event& e) {
    ++succeeded;
    if (e.from_cache) ++from_cache;
    if (e.deduplicated) ++deduplicated;
    input_tokens += e.input_tokens;
    output_tokens += e.output_tokens;
    if (e.cost) {
      priced = true;
      actual += *e.cost;
      as_if += e.as_if.value_or(*e.cost);
    }
  }
};

/// The headline, as the page shows it.
struct report_headline : answer_tally {
  std::size_t requests = 0, failed = 0, retries = 0;
  std::vector<std::string> unpriced;  ///< models answering without a price
  double wall_seconds = 0;
  [[nodiscard]] double rate() const { return wall_seconds > 0 ? static_cast<double>(succeeded + failed) / wall_seconds : 0; }
};

inline report_headline headline_of(const report_data& d) {
  report_headline h;
  h.requests = d.requests.size();
  std::map<std::string, bool> unpriced;
  for (const auto& e : d.requests) {
    for (const auto& a : e.attempts) h.retries += a.retried ? 1 : 0;
    if (e.failed) {
      ++h.failed;
      continue;
    }
    h.add(e);
    if (!e.cost) unpriced[e.model] = true;
  }
  for (const auto& [m, _] : unpriced) h.unpriced.push_back(m);
  for (const auto& r : d.runs)
    h.wall_seconds += r.end && r.end->contains("wall_seconds") ? r.end->at("wall_seconds").get<double>()
                                                             : static_cast<double>(r.last - r.start) / 1000.0;
  return h;
}

/// The whole page.
inline std::string report_html(const report_data& d, const std::string& title) {
  using namespace detail;
  const report_headline h = headline_of(d);
  const timeline t(d);
  const double bucket_s = static_cast<double>(t.bucket) / 1000.0;
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << html_escape(title)
    << "</title>\n<style>\n"
       "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:960px;"
       "color:#222;padding:0 12px}\n"
       "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}\n"
       ".sub{color:#666;margin:0 0 16px}.note,.q{color:#555;margin:4px 0}\n"
       ".tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}\n"
       ".tile{border:1px solid #ddd;border-radius:6px;padding:8px 10px}.tile b{display:block;font-size:20px}\n"
       ".tile span{color:#666;font-size:12px}\n"
       "svg{width:100%;height:auto;display:block}.grid{stroke:#e5e5e5}.yl{font-size:11px;text-anchor:end;fill:#555}\n"
       ".xl{font-size:11px;text-anchor:middle;fill:#555}.mark{stroke:#e15759;stroke-dasharray:3 3}"
       ".ml{font-size:11px;fill:#e15759}\n"
       ".legend span{margin-right:14px;font-size:12px}.legend i{display:inline-block;width:14px;height:10px;"
       "margin-right:4px;vertical-align:middle}\n"
       "table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;"
       "text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\n"
       ".bad{color:#b00020}td.ids{font-size:11px;word-break:break-all}\n</style></head><body>\n";
  o << "<h1>" << html_escape(title) << "</h1>\n<p class=\"sub\">";
  std::string runs_text;
  for (std::size_t r = 0; r < d.runs.size(); ++r) {
    const run_record& run = d.runs[r];
    const bool interrupted = !run.end || run.end->value("interrupted", false);
    runs_text += (r ? "; " : "") + std::string("run ") + std::to_string(r + 1) + " (" + html_escape(run.file) + "): " +
                 with_commas(static_cast<std::int64_t>(run.events)) + " results, " +
                 (!run.end ? "stopped without an end (killed?)" : interrupted ? "interrupted" : "finished");
  }
  o << "<span id=\"runs\" data-runs=\"" << d.runs.size() << "\">" << runs_text << "</span>";
  if (d.superseded > 0)
    o << ". " << with_commas(static_cast<std::int64_t>(d.superseded))
      << " results of a later run replaced by, or replaying, an earlier one are counted once";
  o << ".</p>\n";
  if (!d.problems.empty()) {
    o << "<p class=\"bad\">" << d.problems.size() << " lines skipped: " << html_escape(d.problems.front())
      << (d.problems.size() > 1 ? " (and more)" : "") << "</p>\n";
  }

  auto tile = [&](const char* id, const std::string& value, const char* label) {
    o << "<div class=\"tile\"><b id=\"" << id << "\">" << value << "</b><span>" << label << "</span></div>";
  };
  o << "<div class=\"tiles\">";
  tile("h-requests", with_commas(static_cast<std::int64_t>(h.requests)), "requests");
  tile("h-succeeded", with_commas(static_cast<std::int64_t>(h.succeeded)), "succeeded");
  tile("h-failed", with_commas(static_cast<std::int64_t>(h.failed)), "failed");
  tile("h-from-cache", with_commas(static_cast<std::int64_t>(h.from_cache)), "from the cache");
  tile("h-wall", fixed(h.wall_seconds, 2) + " s", "wall time");
  tile("h-rate", fixed(h.rate(), 1) + "/s", "requests per second");
  tile("h-input-tokens", with_commas(h.input_tokens), "input tokens");
  tile("h-output-tokens", with_commas(h.output_tokens), "output tokens");
  tile("h-retries", with_commas(static_cast<std::int64_t>(h.retries)), "retries");
  tile("h-deduplicated", with_commas(static_cast<std::int64_t>(h.deduplicated)), "identical, answered once");
  tile("h-cost", h.priced ? money(h.actual) : std::string("unknown"), "actual cost");
  tile("h-cost-as-if", h.priced ? money(h.as_if) : std::string("unknown"), "as-if cost (nothing cached)");
  tile("h-savings", h.priced ? money(h.as_if - h.actual) : std::string("unknown"), "saved by the cache");
  o << "</div>\n";
  if (!h.unpriced.empty()) {
    std::string names;
    for (const auto& m : h.unpriced) names += (names.empty() ? "" : ", ") + (m.empty() ? "(unnamed model)" : m);
    o << "<p class=\"note\">No price for " << html_escape(names) << ": their tokens are counted, not their dollars.</p>\n";
  }

  // Over time.
  std::vector<double> done(t.buckets, 0), tokens(t.buckets, 0), in_flight(t.buckets, 0), waiting(t.buckets, 0);
  std::vector<double> ok(t.buckets, 0), failed(t.buckets, 0), r429(t.buckets, 0), r5xx(t.buckets, 0),
      rconn(t.buckets, 0), rtimeout(t.buckets, 0), rother(t.buckets, 0);
  for (const auto& e : d.requests) {
    const std::size_t k = t.bucket_of(t.at(e.run, e.end));
    done[k] += 1;
    tokens[k] += static_cast<double>(e.input_tokens + e.output_tokens);
    (e.failed ? failed : ok)[k] += 1;
    for (const auto& a : e.attempts) {
      t.spread(in_flight, t.at(e.run, a.sent), t.at(e.run, a.end));
      t.spread(waiting, t.at(e.run, a.ready), t.at(e.run, a.sent));
      if (!a.retried) continue;
      const std::size_t ka = t.bucket_of(t.at(e.run, a.end));
      if (a.status == 429 || a.error == "rate_limited")
        r429[ka] += 1;
      else if (a.status >= 500 || a.error == "server_error")
        r5xx[ka] += 1;
      else if (a.error == "connection" || a.error == "tls")
        rconn[ka] += 1;
      else if (a.error == "timeout")
        rtimeout[ka] += 1;
      else
        rother[ka] += 1;
    }
  }
  for (std::size_t k = 0; k < t.buckets; ++k) {
    done[k] /= bucket_s;
    tokens[k] /= bucket_s;
  }
  std::vector<series> rate_lines{{"requests per second", "#4e79a7", done, false}};
  // The configured limit, and the tightest learned one, as flat lines.
  double configured = 0, learned = 0, configured_tpm = 0, learned_tpm = 0;
  for (const auto& r : d.runs) {
    configured = std::max(configured, r.info.value("rpm", 0.0) / 60.0);
    configured_tpm = std::max(configured_tpm, r.info.value("tpm", 0.0) / 60.0);
    for (const auto& l : r.learned) {
      if (l.rpm > 0) learned = learned > 0 ? std::min(learned, l.rpm / 60.0) : l.rpm / 60.0;
      if (l.tpm > 0) learned_tpm = learned_tpm > 0 ? std::min(learned_tpm, l.tpm / 60.0) : l.tpm / 60.0;
    }
  }
  if (configured > 0) rate_lines.push_back({"configured limit (--rpm)", "#e15759", {configured}, true});
  if (learned > 0) rate_lines.push_back({"limit learned from the server", "#f28e2b", {learned}, true});
  o << "<h2>Throughput</h2>\n<p class=\"note\">Results per second, in buckets of " << fixed(bucket_s, 2)
    << " s.</p>\n"
    << line_chart(t, rate_lines, "requests / s", "requests per second over time") << "\n";
  std::vector<series> token_lines{{"tokens per second (input + output)", "#59a14f", tokens, false}};
  if (configured_tpm > 0) token_lines.push_back({"configured limit (--tpm)", "#e15759", {configured_tpm}, true});
  if (learned_tpm > 0) token_lines.push_back({"limit learned from the server", "#f28e2b", {learned_tpm}, true});
  o << line_chart(t, token_lines, "tokens / s", "tokens per second over time") << "\n";

  std::size_t concurrency = 0;
  for (const auto& r : d.runs) concurrency = std::max<std::size_t>(concurrency, r.info.value("concurrency", std::size_t{0}));
  std::vector<series> flight_lines{{"in flight (being sent), mean over the bucket", "#4e79a7", in_flight, false}};
  if (concurrency > 0)
    flight_lines.push_back({"--concurrency", "#e15759", {static_cast<double>(concurrency)}, true});
  o << "<h2>In flight, and waiting for rate capacity</h2>\n"
    << line_chart(t, flight_lines, "requests", "requests in flight over time") << "\n"
    << line_chart(t, {{"waiting for rate capacity (or for a 429's pause to end)", "#f28e2b", waiting, false}},
                  "requests", "requests waiting for rate capacity over time")
    << "\n";

  o << "<h2>Status over time</h2>\n<p class=\"note\">Final results, then the attempts that were retried, by cause "
       "(per bucket).</p>\n"
    << stacked_chart(t, {{"succeeded", "#59a14f", ok, false}, {"failed", "#b00020", failed, false}}, "per bucket",
                     "results over time")
    << "\n"
    << stacked_chart(t,
                     {{"retried after 429", "#f28e2b", r429, false},
                      {"retried after 5xx", "#e15759", r5xx, false},
                      {"retried after a connection error", "#76b7b2", rconn, false},
                      {"retried after a timeout", "#b07aa1", rtimeout, false},
                      {"retried, other", "#9c755f", rother, false}},
                     "retried attempts", "retries over time")
    << "\n";

  // Latency.
  std::vector<double> latency, ttft;
  for (const auto& e : d.requests) {
    if (!e.from_cache && !e.deduplicated && !e.attempts.empty()) latency.push_back(static_cast<double>(e.latency));
    if (e.ttft) ttft.push_back(static_cast<double>(*e.ttft));
  }
  o << "<h2>Latency</h2>\n";
  if (latency.empty()) {
    o << "<p class=\"note\">No request was sent (every answer came from the cache).</p>\n";
  } else {
    std::string q;
    const std::string chart = histogram(latency, "ms, from the first attempt to the final result (retries included)",
                                        "latency histogram", "lat", q);
    o << q << chart << "\n";
  }
  if (!ttft.empty()) {
    std::string q;
    const std::string chart = histogram(ttft, "ms to the first token (streamed answers)", "time to first token", "ttft", q);
    o << "<h2>Time to first token</h2>\n" << q << chart << "\n";
  }

  // By model.
  std::map<std::string, answer_tally> models;
  for (const auto& e : d.requests)
    if (!e.failed) models[e.model].add(e);
  o << "<h2>Cost and tokens by model</h2>\n";
  double top = 0;
  for (const auto& [_, m] : models) top = std::max(top, m.as_if);
  o << "<table><tr><th>model</th><th class=\"n\">answers</th><th class=\"n\">from cache</th><th class=\"n\">input "
       "tokens</th><th class=\"n\">output tokens</th><th class=\"n\">actual</th><th class=\"n\">as-if</th><th "
       "style=\"width:30%\">actual / as-if</th></tr>\n";
  for (const auto& [name, m] : models) {
    o << "<tr><td>" << html_escape(name.empty() ? "(unnamed model)" : name) << "</td><td class=\"n\">"
      << with_commas(static_cast<std::int64_t>(m.succeeded)) << "</td><td class=\"n\">"
      << with_commas(static_cast<std::int64_t>(m.from_cache)) << "</td><td class=\"n\">" << with_commas(m.input_tokens)
      << "</td><td class=\"n\">" << with_commas(m.output_tokens) << "</td><td class=\"n\">"
      << (m.priced ? money(m.actual) : "unknown") << "</td><td class=\"n\">" << (m.priced ? money(m.as_if) : "unknown")
      << "</td><td>";
    if (m.priced && top > 0)
      o << "<svg viewBox=\"0 0 200 14\" style=\"height:14px\"><rect width=\"" << fixed(m.as_if / top * 200, 1)
        << "\" height=\"14\" fill=\"#c9d6e8\"/><rect width=\"" << fixed(m.actual / top * 200, 1)
        << "\" height=\"14\" fill=\"#4e79a7\"/></svg>";
    o << "</td></tr>\n";
  }
  o << "</table>\n";

  // Tables.
  std::vector<const request_event*> slow;
  for (const auto& e : d.requests)
    if (!e.from_cache && !e.attempts.empty()) slow.push_back(&e);
  const std::size_t shown = std::min<std::size_t>(20, slow.size());
  std::partial_sort(slow.begin(), slow.begin() + static_cast<std::ptrdiff_t>(shown), slow.end(),
                    [](const request_event* a, const request_event* b) { return a->latency > b->latency; });
  o << "<h2>Slowest requests</h2>\n<table><tr><th>id</th><th class=\"n\">ms</th><th class=\"n\">attempts</th><th "
       "class=\"n\">waited for rate (ms)</th><th>outcome</th></tr>\n";
  for (std::size_t i = 0; i < shown; ++i) {
    const request_event& e = *slow[i];
    o << "<tr><td>" << html_escape(e.id) << "</td><td class=\"n\">" << with_commas(e.latency) << "</td><td class=\"n\">"
      << e.attempts.size() << "</td><td class=\"n\">" << with_commas(e.rate_wait) << "</td><td>"
      << (e.failed ? html_escape(e.error_code) : "ok") << "</td></tr>\n";
  }
  o << "</table>\n";

  std::vector<const request_event*> failures;
  for (const auto& e : d.requests)
    if (e.failed) failures.push_back(&e);
  o << "<h2>Failed requests (<span id=\"failed-count\">" << failures.size() << "</span>)</h2>\n";
  if (failures.empty()) {
    o << "<p class=\"note\">None.</p>\n";
  } else {
    // Every failed id, grouped by its error (code and HTTP status), with one message as an
    // example: a page of 100,000 requests stays small however many failed. Past ~800 KB of ids
    // the rest are counted (every one is in the output file, with its error).
    struct group {
      std::vector<const request_event*> requests;
    };
    std::map<std::pair<std::string, int>, group> groups;
    for (const request_event* e : failures) groups[{e->error_code, e->http_status}].requests.push_back(e);
    std::size_t id_bytes = 0, left_out = 0;
    o << "<table id=\"failed\"><tr><th>error</th><th class=\"n\">HTTP</th><th class=\"n\">requests</th><th>"
         "message (of the first)</th><th>ids</th></tr>\n";
    for (const auto& [key, g] : groups) {
      o << "<tr><td>" << html_escape(key.first) << "</td><td class=\"n\">"
        << (key.second ? std::to_string(key.second) : std::string()) << "</td><td class=\"n\">"
        << with_commas(static_cast<std::int64_t>(g.requests.size())) << "</td><td>"
        << html_escape(g.requests.front()->error_message) << "</td><td class=\"ids\">";
      std::size_t shown_here = 0;
      for (const request_event* e : g.requests) {
        if (id_bytes > 800'000) break;
        o << (shown_here ? ", " : "") << html_escape(e->id);
        id_bytes += e->id.size() + 2;
        ++shown_here;
      }
      if (shown_here < g.requests.size()) {
        o << (shown_here ? ", " : "") << "and " << with_commas(static_cast<std::int64_t>(g.requests.size() - shown_here))
          << " more";
        left_out += g.requests.size() - shown_here;
      }
      o << "</td></tr>\n";
    }
    o << "</table>\n";
    if (left_out > 0)
      o << "<p class=\"note\">" << with_commas(static_cast<std::int64_t>(left_out))
        << " ids left off the page: every one is in the output file with its error, and in the events file.</p>\n";
    // The first ones in detail.
    const std::size_t detail_rows = std::min<std::size_t>(100, failures.size());
    o << "<p class=\"note\">The first " << detail_rows << " in detail:</p>\n<table><tr><th>id</th><th>error</th><th "
         "class=\"n\">HTTP</th><th class=\"n\">attempts</th><th>message</th></tr>\n";
    for (std::size_t i = 0; i < detail_rows; ++i) {
      const request_event& e = *failures[i];
      o << "<tr><td>" << html_escape(e.id) << "</td><td>" << html_escape(e.error_code) << "</td><td class=\"n\">"
        << (e.http_status ? std::to_string(e.http_status) : std::string()) << "</td><td class=\"n\">"
        << e.attempts.size() << "</td><td>" << html_escape(e.error_message) << "</td></tr>\n";
    }
    o << "</table>\n";
  }
  o << "<p class=\"note\">Made by requests-engine report from " << with_commas(static_cast<std::int64_t>(d.requests.size()))
    << " request events. Times are the runs' own, one after another; the gaps between runs are left out.</p>\n"
       "</body></html>\n";
  return o.str();
}

/// Reads `events` and writes the page to `out` (a temporary file renamed into place).
inline report_data write_report(const std::vector<std::string>& events, const std::string& out) {
  report_data d = read_events(events);
  const std::string title = "requests-engine run report";
  const std::string page = report_html(d, title);
  detail::write_file_atomically(out, "the report", page);
  return d;
}

struct report_command {
  CLI::App* cmd = nullptr;
  std::shared_ptr<std::vector<std::string>> events;
  std::shared_ptr<std::string> out;
  int run() const {
    try {
      const report_data d = write_report(*events, *out);
      for (const auto& p : d.problems) std::cerr << "requests-engine report: " << p << "\n";
      const report_headline h = headline_of(d);
      std::cerr << "requests-engine report: " << *out << ": " << h.requests << " requests (" << h.succeeded
                << " succeeded, " << h.failed << " failed, " << h.from_cache << " from the cache) over " << d.runs.size()
                << (d.runs.size() == 1 ? " run" : " runs") << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "requests-engine report: error: " << e.what() << "\n";
      return 1;
    }
  }
};

inline report_command add_report_command(CLI::App& app) {
  report_command r;
  r.events = std::make_shared<std::vector<std::string>>();
  r.out = std::make_shared<std::string>();
  r.cmd = app.add_subcommand("report", "Make one HTML page with plots from the events of runs (OUT.events.jsonl)");
  r.cmd->add_option("events", *r.events, "Event files of `run` (several: shards, resumed runs)")
      ->required()
      ->check(CLI::ExistingFile);
  r.cmd->add_option("-o,--output", *r.out, "The HTML file to write")->required();
  r.cmd->footer(
      "The page stands alone: no script, font or picture from elsewhere, so it reads offline and\n"
      "travels as an email attachment. It shows the headline counts, cost and cache savings;\n"
      "throughput, requests in flight and waiting for rate capacity, and results and retries\n"
      "over time; the latency histogram (and time to first token when streamed); cost and tokens\n"
      "by model; the slowest requests and every failed id with its error. An id in several runs\n"
      "counts once: the run that sent it, not a later one that replayed it from the cache.");
  return r;
}

}  // namespace requests_engine_cli
