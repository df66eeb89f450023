// bench_engine: the engine benchmark's C++ side (driven by bench/run.sh).
//
//   bench_engine engine URL N CONCURRENCY   requests_engine::engine over N small conversations
//   bench_engine bare   URL N THREADS       the same cpp-httplib client in a bare loop: the
//                                           transport's ceiling, with no engine around it
//
// URL is an OpenAI-style base URL ending in /v1 (".../chat/completions" is appended, as the
// engine does). Each mode prints one machine-readable line:
//
//   RESULT mode=engine n=20000 conc=64 ok=20000 fail=0 secs=1.234 rps=16207.5 rss_mb=25.1
//
// and, when something failed, the first error on stderr. The exit status is 0 only when every
// request succeeded.
//
// Build (bench/run.sh does it):
//   g++ -std=c++17 -O2 -DNDEBUG -I. bench/bench_engine.cpp -o bench_engine
//       $(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread   (one line)

#include "requests_engine.hpp"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
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

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string question(std::size_t i) { return "question " + std::to_string(i); }

void print_result(const char* mode, std::size_t n, std::size_t conc, std::size_t ok,
                  std::size_t fail, double secs) {
  std::printf("RESULT mode=%s n=%zu conc=%zu ok=%zu fail=%zu secs=%.3f rps=%.1f rss_mb=%.1f\n", mode,
              n, conc, ok, fail, secs, static_cast<double>(ok) / secs, peak_rss_mb());
  std::fflush(stdout);
}

// --- engine ----------------------------------------------------------------------------------

int run_engine(const std::string& url, std::size_t n, std::size_t conc) {
  std::vector<re::conversation> batch;
  batch.reserve(n);
  for (std::size_t i = 0; i < n; ++i) batch.push_back(re::conversation().user(question(i)));

  re::openai_compatible provider(kKey, url, kModel);
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(conc).max_retries(0));

  auto t0 = bench_clock::now();
  auto results = engine.run(batch);
  double secs = seconds_since(t0);

  std::size_t ok = 0, fail = 0;
  for (const auto& r : results) {
    if (r && !r->text.empty()) {
      ++ok;
    } else {
      if (fail == 0)
        std::cerr << "engine: first failure: "
                  << (r ? std::string("empty completion text") : r.error().describe()) << '\n';
      ++fail;
    }
  }
  print_result("engine", n, conc, ok, fail, secs);
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

int run_bare(const std::string& url, std::size_t n, std::size_t threads) {
  const target t = split(url);
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kKey},
                                    {"Accept", "application/json"}};
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> ok{0}, fail{0};
  std::mutex err_mutex;
  std::string first_error;

  // One keep-alive client per thread, made before the clock starts (the connection itself is
  // opened by the first request, inside the timed region, as in the engine).
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
      // The body the engine sends for conversation().user(question(i)), built the same way.
      json body = json::object();
      body["model"] = kModel;
      json messages = json::array();
      messages.push_back({{"role", "user"}, {"content", question(i)}});
      body["messages"] = std::move(messages);
      auto res = client.Post(t.path, headers, body.dump(), "application/json");
      bool good = false;
      std::string why;
      if (!res) {
        why = "transport error: " + httplib::to_string(res.error());
      } else if (res->status != 200) {
        why = "HTTP " + std::to_string(res->status);
      } else {
        // Every client has to read the answer: parse it and take the text, as the engine does.
        json answer = json::parse(res->body, nullptr, false);
        good = !answer.is_discarded() && answer.contains("choices") &&
               !answer["choices"].empty() &&
               answer["choices"][0]["message"]["content"].is_string();
        if (!good) why = "unexpected body: " + res->body.substr(0, 120);
      }
      if (good) {
        ok.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (fail.fetch_add(1, std::memory_order_relaxed) == 0) {
          std::lock_guard<std::mutex> lock(err_mutex);
          first_error = why;
        }
      }
    }
  };

  std::vector<std::thread> pool;
  pool.reserve(threads);
  auto t0 = bench_clock::now();
  for (std::size_t k = 0; k < threads; ++k) pool.emplace_back(work, std::ref(*clients[k]));
  for (auto& th : pool) th.join();
  double secs = seconds_since(t0);

  if (fail.load() != 0) std::cerr << "bare: first failure: " << first_error << '\n';
  print_result("bare", n, threads, ok.load(), fail.load(), secs);
  return fail.load() == 0 ? 0 : 1;
}

int usage() {
  std::cerr << "usage: bench_engine engine URL N CONCURRENCY\n"
               "       bench_engine bare   URL N THREADS\n"
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
    if (mode == "engine") return run_engine(url, static_cast<std::size_t>(n), static_cast<std::size_t>(c));
    if (mode == "bare") return run_bare(url, static_cast<std::size_t>(n), static_cast<std::size_t>(c));
  } catch (const std::exception& e) {
    std::cerr << "bench_engine: " << e.what() << '\n';
    return 1;
  }
  return usage();
}
