// The embeddings benchmark (issue #19): N embedding inputs (default 100,000) end to end through
// engine::embed() against the mock's POST /v1/embeddings, in two ways, each in its own process
// so that the peak RSS is the client's and that mode's alone:
//   packed   openai_embeddings as it comes (batching_defaults(): the collector packs up to 2,048
//            inputs into one HTTP request, 4 requests in flight);
//   single   the same inputs, the same engine, one input per HTTP request (batching max_size 1,
//            32 requests in flight): what a client without packing does.
// The mock runs in a third process (`bench_embeddings serve`), with no cache on the client.
//
//   bash bench/run_embeddings.sh [inputs]      (default 100000)
//   bench_embeddings serve                     prints the port, serves until SIGTERM or SIGINT
//   bench_embeddings packed|single URL N       one RESULT line
#include "requests_engine.hpp"
#include "tools/mock_server.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

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
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int serve() {
  // Every thread blocks SIGTERM and SIGINT: main waits for one, then stops the server cleanly.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  mock::server_options so;
  so.threads = 64;
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
  re::openai_embeddings provider("sk-bench", url, "text-embedding-3-small");
  re::options o = re::options().max_retries(0).progress_bar(false);
  if (mode == "single") o.batching(re::batching_options().max_size(1).max_wait(std::chrono::milliseconds(0)).concurrent(32));
  re::engine<re::openai_embeddings> engine(provider, o);  // no cache_dir: no cache
  std::vector<std::string> texts;
  texts.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    texts.push_back("document " + std::to_string(i) + ": a sentence of ordinary length to embed, about topic " +
                    std::to_string(i % 97));
  const auto start = std::chrono::steady_clock::now();
  auto results = engine.embed(texts);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::size_t failed = 0, wrong = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i]) {
      if (failed++ == 0) std::fprintf(stderr, "first failure: %s\n", results[i].error().describe().c_str());
      continue;
    }
    if (results[i]->vector != mock::mock_embedding(texts[i], 16)) ++wrong;
  }
  const re::progress p = engine.current_progress();
  std::printf("RESULT mode=%s inputs=%zu seconds=%.3f inputs_per_s=%.0f http_requests=%zu failed=%zu wrong=%zu "
              "rss_mb=%.1f\n",
              mode.c_str(), n, seconds, static_cast<double>(n) / seconds, p.http_requests, failed, wrong,
              peak_rss_mb());
  return failed + wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve") return serve();
  if ((mode == "packed" || mode == "single") && argc > 3) {
    const long n = std::atol(argv[3]);
    if (n > 0) return client(mode, argv[2], static_cast<std::size_t>(n));
  }
  std::fprintf(stderr, "usage: bench_embeddings serve | bench_embeddings packed|single URL N\n");
  return 2;
}
