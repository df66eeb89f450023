// The rate-limit benchmark (issue #5): against a server that enforces N requests per minute per
// key (a token bucket, the providers' headers, 429 past it), how close does the engine run to N,
// and how many 429 answers does it cause? Side by side in one run with the reference most
// clients in this field are: no pacing, a 429 retried after its retry-after.
//
//   bash bench/run_rate.sh [N] [requests]     (defaults: 1200 per minute, 400 requests per row)
//
// Every row starts with the key's bucket drained (as after another job used it), so the whole
// row runs at the server's refill rate: the hardest case for pacing, since there is no burst
// to hide behind. The server is the project's mock (tools/mock_server.hpp), whose limiter works
// like the providers' (continuous refill; a refused request costs nothing).
#include "requests_engine.hpp"
#include "mock_server.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

namespace {

const char* const key = "sk-bench-rate";

struct row {
  std::string client;
  std::string route;
  std::size_t ok = 0, limited = 0, failed = 0;
  double rate_per_minute = 0;
  double seconds = 0;
};

// Sends requests with the key until the server says 429: the bucket is then (nearly) empty.
void drain(mock::server& s, bool anthropic_route) {
  httplib::Client c("127.0.0.1", s.port());
  httplib::Headers h;
  std::string body;
  const char* path;
  if (anthropic_route) {
    h = {{"x-api-key", key}, {"anthropic-version", "2023-06-01"}};
    body = R"({"model":"m","max_tokens":16,"messages":[{"role":"user","content":"drain"}]})";
    path = "/v1/messages";
  } else {
    h = {{"Authorization", std::string("Bearer ") + key}};
    body = R"({"model":"m","messages":[{"role":"user","content":"drain"}]})";
    path = "/v1/chat/completions";
  }
  for (int i = 0; i < 1000000; ++i) {
    auto r = c.Post(path, h, body, "application/json");
    if (!r || r->status == 429) return;
  }
}

template <class Provider>
row measure(const std::string& client, const std::string& route, double n_per_minute, std::size_t count,
            re::options o, bool anthropic_route, Provider make(const mock::server&)) {
  mock::server_options so;
  so.api_key = key;
  so.rpm = n_per_minute;
  mock::server server(so);
  server.start();
  drain(server, anthropic_route);  // at full speed: the latency is set afterwards
  server.set_latency(20, 20);
  server.reset_stats();

  re::basic_engine<Provider, re::no_cache> engine(make(server), o.progress_bar(false));
  std::vector<re::conversation> batch;
  for (std::size_t i = 0; i < count; ++i)
    batch.push_back(re::conversation().user("rate benchmark question " + std::to_string(i)));
  const auto t0 = std::chrono::steady_clock::now();
  auto results = engine.run(batch, re::params().max_tokens(16));
  const auto t1 = std::chrono::steady_clock::now();

  row r;
  r.client = client;
  r.route = route;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  for (const auto& x : results) r.failed += x ? 0 : 1;
  r.limited = server.responses_with_status(429);
  // The achieved rate: accepted requests over the time between the first and the last one.
  std::vector<std::chrono::steady_clock::time_point> accepted;
  for (const auto& rec : server.request_log())
    if (rec.status == 200) accepted.push_back(rec.arrival);
  std::sort(accepted.begin(), accepted.end());
  r.ok = accepted.size();
  if (std::getenv("BENCH_RATE_DEBUG")) {  // when each 429 came, to see where they cluster
    const auto log = server.request_log();
    for (const auto& rec : log)
      if (rec.status == 429)
        std::fprintf(stderr, "%s: 429 at %.3f s\n", route.c_str(),
                     std::chrono::duration<double>(rec.arrival - log.front().arrival).count());
  }
  if (accepted.size() > 1)
    r.rate_per_minute = static_cast<double>(accepted.size() - 1) /
                        std::chrono::duration<double>(accepted.back() - accepted.front()).count() * 60.0;
  server.stop();
  return r;
}

re::openai_compatible openai_at(const mock::server& s) { return re::openai_compatible(key, s.base_url(), "mock-model"); }
re::anthropic anthropic_at(const mock::server& s) { return re::anthropic(key, "mock-model", s.origin()); }

}  // namespace

int main(int argc, char** argv) {
  const double n = argc > 1 ? std::atof(argv[1]) : 1200;
  const std::size_t count = argc > 2 ? static_cast<std::size_t>(std::atol(argv[2])) : 400;
  if (n <= 0 || count < 2) {
    std::fprintf(stderr, "usage: bench_rate [requests per minute > 0] [requests >= 2]\n");
    return 2;
  }
  auto base = [] { return re::options().concurrency(32).max_retries(-1); };
  std::vector<row> rows;
  rows.push_back(measure("**requests_engine**, `requests_per_minute(N)`", "OpenAI", n, count,
                         base().requests_per_minute(n), false, openai_at));
  rows.push_back(measure("**requests_engine**, no limit set: learned from the headers", "OpenAI", n, count, base(),
                         false, openai_at));
  rows.push_back(measure("**requests_engine**, no limit set: learned from the headers", "Anthropic", n, count, base(),
                         true, anthropic_at));
  rows.push_back(measure("**requests_engine**, no limit set, learned, `probe_rate_limits(true)`", "OpenAI", n, count,
                         base().probe_rate_limits(true), false, openai_at));
  rows.push_back(measure("reference: no pacing, 429 retried after retry-after", "OpenAI", n, count,
                         base().learn_rate_limits(false), false, openai_at));

  std::printf("Server: the mock, %.0f requests per minute per key (bucket drained before each row), "
              "20-40 ms latency; %zu requests per row, concurrency 32.\n\n",
              n, count);
  std::printf("| client | headers | requests | 429 answers | 429 share | failed | accepted per minute | ÷ N | wall s |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  int bad = 0;
  for (const auto& r : rows) {
    const double share = static_cast<double>(r.limited) / static_cast<double>(r.ok + r.limited);
    std::printf("| %s | %s | %zu | %zu | %.2f%% | %zu | %.1f | %.3f | %.1f |\n", r.client.c_str(), r.route.c_str(),
                count, r.limited, share * 100.0, r.failed, r.rate_per_minute, r.rate_per_minute / n, r.seconds);
    bad += r.failed > 0 ? 1 : 0;
  }
  std::printf("\nTargets (the engine's rows): 429 share under 1%%, accepted rate at least 0.97 N.\n");
  return bad == 0 ? 0 : 1;
}
