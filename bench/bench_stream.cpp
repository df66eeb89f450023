// The streaming benchmark (issue #18): N answers (default 2,000) of about 200 events each from
// the mock at concurrency 64, streamed and unstreamed, each mode in its own process so that
// its CPU time and peak RSS are the client's alone; the mock serves from a third process.
//   streamed  options::stream(always) with an on_delta that counts the pieces
//   whole     options::stream(never): the same answers as one body each
// The figure is the client's CPU time (user + system, getrusage) per answer and per event.
//
//   bash bench/run_stream.sh [answers]        (default 2000)
//   bench_stream serve                        prints the port, serves until SIGTERM or SIGINT
//   bench_stream streamed|whole URL N         one RESULT line
#include "requests_engine.hpp"
#include "tools/mock_server.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

namespace {

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

int serve() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  mock::server_options so;
  so.threads = 96;
  so.stream_chunk_bytes = 4;  // an answer of ~800 bytes: ~200 text events
  mock::server s(so);
  s.start();
  std::printf("%d\n", s.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  s.stop();
  return 0;
}

int client(const std::string& mode, const std::string& url, std::size_t n) {
  re::openai_compatible provider("sk-bench", url, "mock-model");
  std::atomic<std::size_t> pieces{0};
  re::options o = re::options().concurrency(64).max_retries(0).progress_bar(false);
  if (mode == "streamed")
    o.stream(re::stream_mode::always).on_delta([&](std::size_t, const re::stream_delta&) { ++pieces; });
  else
    o.stream(re::stream_mode::never);
  re::engine<re::openai_compatible, re::no_cache> engine(provider, o);
  const std::string filler(770, 'x');
  std::vector<re::conversation> inputs;
  inputs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) inputs.push_back(re::conversation().user(std::to_string(i) + " " + filler));
  const double cpu0 = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  auto results = engine.run(inputs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu0;
  std::size_t failed = 0, bytes = 0;
  for (auto& r : results) {
    if (!r) {
      if (failed++ == 0) std::fprintf(stderr, "first failure: %s\n", r.error().describe().c_str());
      continue;
    }
    bytes += r->text.size();
  }
  const std::size_t events = mode == "streamed" ? pieces.load() : 0;
  std::printf("RESULT mode=%s answers=%zu seconds=%.3f cpu_s=%.3f cpu_us_per_answer=%.1f events=%zu "
              "cpu_us_per_event=%.2f text_bytes=%zu failed=%zu rss_mb=%.1f\n",
              mode.c_str(), n, seconds, cpu, cpu * 1e6 / static_cast<double>(n), events,
              events ? cpu * 1e6 / static_cast<double>(events) : 0.0, bytes, failed, peak_rss_mb());
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve") return serve();
  if ((mode == "streamed" || mode == "whole") && argc > 3) {
    const long n = std::atol(argv[3]);
    if (n > 0) return client(mode, argv[2], static_cast<std::size_t>(n));
  }
  std::fprintf(stderr, "usage: bench_stream serve | bench_stream streamed|whole URL N\n");
  return 2;
}
