// bench_engine: the engine benchmark's C++ side (driven by bench/run.sh).
//
//   bench_engine engine URL N CONCURRENCY   requests_engine::engine over N small conversations
//   bench_engine bare   URL N THREADS       the same cpp-httplib client in a bare loop: the
//                                           transport's ceiling, with no engine around it
//   bench_engine bare-nojson URL N THREADS  the bare loop without JSON work: the N bodies are
//                                           strings built before the clock starts, and an
//                                           answer is only checked for status 200 and a
//                                           non-empty body (the floor for requests-engine run)
//   bench_engine timeline URL N CONCURRENCY the engine mode through a transport that wraps the
//                                           default one and notes when the first request left
//                                           and the last answer came: where the wall time goes
//
// URL is an OpenAI-style base URL ending in /v1 (".../chat/completions" is appended, as the
// engine does). Each mode prints one machine-readable line:
//
//   RESULT mode=engine n=20000 conc=64 ok=20000 fail=0 secs=1.234 rps=16207.5 rss_mb=25.1 cpu_us=98.7
//
// and, when something failed, the first error on stderr. The exit status is 0 only when every
// request succeeded. rss_mb is the peak RSS (ru_maxrss); cpu_us is the process's CPU time (user
// + system, all threads) during the timed region divided by the requests that succeeded: what
// one request costs the client, whatever the machine's other load.
//
// Build (bench/run.sh does it):
//   g++ -std=c++17 -O2 -DNDEBUG -I. bench/bench_engine.cpp -o bench_engine
//       $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread   (one line)

#include "requests_engine.hpp"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace re = requests_engine;
using json = nlohmann::json;

namespace {

constexpr const char* kKey = "bench-key";
constexpr const char* kModel = "gpt-4o-mini";

using bench_clock = std::chrono::steady_clock;

double seconds_since(bench_clock::time_point t0) {
  return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string question(std::size_t i) { return "question " + std::to_string(i); }

// A measured region: wall clock and the process's CPU time.
struct stopwatch {
  bench_clock::time_point t0 = bench_clock::now();
  double cpu0 = cpu_seconds();
  double secs = 0, cpu = 0;
  void stop() {
    secs = seconds_since(t0);
    cpu = cpu_seconds() - cpu0;
  }
};

void print_result(const char* mode, std::size_t n, std::size_t conc, std::size_t ok,
                  std::size_t fail, const stopwatch& w, const std::string& extra = "") {
  std::printf("RESULT mode=%s n=%zu conc=%zu ok=%zu fail=%zu secs=%.3f rps=%.1f rss_mb=%.1f cpu_us=%.1f%s\n",
              mode, n, conc, ok, fail, w.secs, static_cast<double>(ok) / w.secs, peak_rss_mb(),
              ok ? w.cpu * 1e6 / static_cast<double>(ok) : 0.0, extra.c_str());
  std::fflush(stdout);
}

// --- timeline: the default transport, wrapped to note the first send and the last answer ----

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(bench_clock::now().time_since_epoch())
      .count();
}
std::atomic<std::int64_t> g_first_send{INT64_MAX};
std::atomic<std::int64_t> g_last_answer{0};

class timing_session final : public re::transport_session {
 public:
  explicit timing_session(std::unique_ptr<re::transport_session> inner) : inner_(std::move(inner)) {}
  re::result<re::http_response> send(const re::http_request& req, const std::atomic<bool>& cancelled) override {
    std::int64_t t = now_ns();
    for (std::int64_t f = g_first_send.load(); t < f && !g_first_send.compare_exchange_weak(f, t);) {
    }
    auto r = inner_->send(req, cancelled);
    t = now_ns();
    for (std::int64_t l = g_last_answer.load(); t > l && !g_last_answer.compare_exchange_weak(l, t);) {
    }
    return r;
  }
  // Not marked override on purpose: it overrides transport_session::abort() (cancellation)
  // while the interface has one, and is harmless if it goes.
  void abort() noexcept { inner_->abort(); }

 private:
  std::unique_ptr<re::transport_session> inner_;
};

class timing_transport final : public re::transport {
 public:
  explicit timing_transport(re::transport_options o) : inner_(std::move(o)) {}
  std::unique_ptr<re::transport_session> open_session() override {
    return std::make_unique<timing_session>(inner_.open_session());
  }

 private:
  re::httplib_transport inner_;
};

// The default engine, and the same with the timing transport (and the default's cache).
using default_engine = re::engine<re::openai_compatible>;
using timing_engine =
    re::basic_engine<re::openai_compatible, default_engine::cache_type, timing_transport>;

// --- engine ----------------------------------------------------------------------------------

template <class Engine>
int run_engine(const char* mode, const std::string& url, std::size_t n, std::size_t conc) {
  std::vector<re::conversation> batch;
  batch.reserve(n);
  for (std::size_t i = 0; i < n; ++i) batch.push_back(re::conversation().user(question(i)));

  re::openai_compatible provider(kKey, url, kModel);
  Engine engine(provider, re::options().concurrency(conc).max_retries(0));

  const std::int64_t start_ns = now_ns();
  stopwatch w;
  auto results = engine.run(batch);
  w.stop();
  const std::int64_t end_ns = now_ns();

  // A success must have come over the network: an answer from a cache would measure nothing.
  std::size_t ok = 0, fail = 0;
  for (const auto& r : results) {
    if (r && !r->text.empty() && !r->from_cache) {
      ++ok;
    } else {
      if (fail == 0)
        std::cerr << mode << ": first failure: "
                  << (!r ? r.error().describe()
                         : r->from_cache ? std::string("answered from a cache, not the server")
                                         : std::string("empty completion text"))
                  << '\n';
      ++fail;
    }
  }
  std::string extra;
  if (g_last_answer.load() != 0) {  // the timing transport was used
    char buf[160];
    std::snprintf(buf, sizeof buf, " first_send_ms=%.1f last_answer_ms=%.1f after_last_ms=%.1f",
                  static_cast<double>(g_first_send.load() - start_ns) / 1e6,
                  static_cast<double>(g_last_answer.load() - start_ns) / 1e6,
                  static_cast<double>(end_ns - g_last_answer.load()) / 1e6);
    extra = buf;
  }
  print_result(mode, n, conc, ok, fail, w, extra);
  return fail == 0 ? 0 : 1;
}

// --- bare cpp-httplib loop -------------------------------------------------------------------

struct target {
  std::string origin;  // scheme://host:port
  std::string path;    // /v1/chat/completions
};

target split(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  const std::string suffix = "/chat/completions";
  if (url.size() < suffix.size() || url.compare(url.size() - suffix.size(), suffix.size(), suffix) != 0)
    url += suffix;
  re::url_parts u = re::parse_url(url);
  return {u.scheme + "://" + u.host + ":" + std::to_string(u.port), u.path};
}

// The bare loop: `threads` threads, each with its own keep-alive client (made before the clock
// starts; the connection itself is opened by the first request, inside the timed region, as in
// the engine), taking request numbers from one counter. `one(client, path, headers, i)` sends
// request i and returns why it failed ("" when it did not).
template <class One>
int run_loop(const char* mode, const std::string& url, std::size_t n, std::size_t threads, One one) {
  const target t = split(url);
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kKey},
                                    {"Accept", "application/json"}};
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> ok{0}, fail{0};
  std::mutex err_mutex;
  std::string first_error;

  std::vector<std::unique_ptr<httplib::Client>> clients;
  for (std::size_t k = 0; k < threads; ++k) {
    auto c = std::make_unique<httplib::Client>(t.origin);
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    c->set_follow_location(false);
    clients.push_back(std::move(c));
  }

  auto work = [&](httplib::Client& client) {
    for (;;) {
      std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      const std::string why = one(client, t.path, headers, i);
      if (why.empty()) {
        ok.fetch_add(1, std::memory_order_relaxed);
      } else if (fail.fetch_add(1, std::memory_order_relaxed) == 0) {
        std::lock_guard<std::mutex> lock(err_mutex);
        first_error = why;
      }
    }
  };

  std::vector<std::thread> pool;
  pool.reserve(threads);
  stopwatch w;
  for (std::size_t k = 0; k < threads; ++k) pool.emplace_back(work, std::ref(*clients[k]));
  for (auto& th : pool) th.join();
  w.stop();

  if (fail.load() != 0) std::cerr << mode << ": first failure: " << first_error << '\n';
  print_result(mode, n, threads, ok.load(), fail.load(), w);
  return fail.load() == 0 ? 0 : 1;
}

// The bare loop with the JSON work every client does: the body built as the engine builds it,
// the answer parsed and its text taken.
int run_bare(const std::string& url, std::size_t n, std::size_t threads) {
  return run_loop("bare", url, n, threads,
                  [](httplib::Client& client, const std::string& path, const httplib::Headers& headers,
                     std::size_t i) -> std::string {
                    // The body the engine sends for conversation().user(question(i)), built the same way.
                    json body = json::object();
                    body["model"] = kModel;
                    json messages = json::array();
                    messages.push_back({{"role", "user"}, {"content", question(i)}});
                    body["messages"] = std::move(messages);
                    auto res = client.Post(path, headers, body.dump(), "application/json");
                    if (!res) return "transport error: " + httplib::to_string(res.error());
                    if (res->status != 200) return "HTTP " + std::to_string(res->status);
                    json answer = json::parse(res->body, nullptr, false);
                    const bool good = !answer.is_discarded() && answer.contains("choices") &&
                                      !answer["choices"].empty() &&
                                      answer["choices"][0]["message"]["content"].is_string();
                    return good ? std::string() : "unexpected body: " + res->body.substr(0, 120);
                  });
}

// The bare loop without JSON work: the same bodies (byte for byte what the engine sends for
// conversation().user(question(i)): nlohmann sorts the keys), built as plain strings before the
// clock starts; the answers are not parsed (status 200 and a non-empty body).
int run_bare_nojson(const std::string& url, std::size_t n, std::size_t threads) {
  std::vector<std::string> bodies;
  bodies.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    bodies.push_back(std::string(R"({"messages":[{"content":")") + question(i) +
                     R"(","role":"user"}],"model":")" + kModel + R"("})");
  return run_loop("bare-nojson", url, n, threads,
                  [&bodies](httplib::Client& client, const std::string& path, const httplib::Headers& headers,
                            std::size_t i) -> std::string {
                    auto res = client.Post(path, headers, bodies[i], "application/json");
                    if (!res) return "transport error: " + httplib::to_string(res.error());
                    if (res->status != 200) return "HTTP " + std::to_string(res->status);
                    return res->body.empty() ? "empty body" : std::string();
                  });
}

int usage() {
  std::cerr << "usage: bench_engine engine   URL N CONCURRENCY\n"
               "       bench_engine bare     URL N THREADS\n"
               "       bench_engine bare-nojson URL N THREADS\n"
               "       bench_engine timeline URL N CONCURRENCY\n"
               "URL: an OpenAI-style base URL, e.g. http://127.0.0.1:8080/fast/v1\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return usage();
  const std::string mode = argv[1];
  const std::string url = argv[2];
  const long long n = std::atoll(argv[3]);
  const long long c = std::atoll(argv[4]);
  if (n <= 0 || c <= 0) return usage();
  try {
    const auto un = static_cast<std::size_t>(n);
    const auto uc = static_cast<std::size_t>(c);
    if (mode == "engine") return run_engine<default_engine>("engine", url, un, uc);
    if (mode == "timeline") return run_engine<timing_engine>("timeline", url, un, uc);
    if (mode == "bare") return run_bare(url, un, uc);
    if (mode == "bare-nojson") return run_bare_nojson(url, un, uc);
  } catch (const std::exception& e) {
    std::cerr << "bench_engine: " << e.what() << '\n';
    return 1;
  }
  return usage();
}
