// Cache replay benchmark: 100,000 cached completions replayed through the engine (all hits, no
// network), against the floor set by a plain C++ loop that opens and reads the same files.
//
//   bash bench/run_cache.sh            (or: bench_cache DIR [N])
//
// The entries are written exactly as the engine writes them (same request hash, same entry
// format) from a realistic OpenAI chat completion body, so that the replay is a real one; the
// provider points at a closed port, so a single miss would show up as a failure.
#include "requests_engine.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace re = requests_engine;
using clk = std::chrono::steady_clock;

static double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_cache DIR [N] [CONCURRENCY]\n";
    return 2;
  }
  const std::string dir = argv[1];
  const std::size_t n = argc > 2 ? std::stoul(argv[2]) : 100000;
  const std::size_t concurrency = argc > 3 ? std::stoul(argv[3]) : 32;
  re::openai_compatible provider("bench-key", "http://127.0.0.1:9/v1", "gpt-4o-mini");
  std::vector<re::conversation> batch;
  batch.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    batch.push_back(re::conversation().system("You are terse.").user("Question number " + std::to_string(i) +
                                                                      ": what is " + std::to_string(i) + " + 1?"));
  const re::params params = re::params().temperature(0.0).max_tokens(64);

  // Populate (not timed): the entries the engine would have written for this batch.
  std::vector<std::string> paths;
  paths.reserve(n);
  {
    re::disk_cache cache(dir);
    const re::json identity = provider.cache_identity();
    auto t0 = clk::now();
    for (std::size_t i = 0; i < n; ++i) {
      re::json body = *provider.make_body(batch[i], params);
      re::cache_key key{re::request_hash(identity, body), 0};
      re::json response = {
          {"id", "chatcmpl-" + std::to_string(i)},
          {"object", "chat.completion"},
          {"created", 1763800000},
          {"model", "gpt-4o-mini-2024-07-18"},
          {"choices", {{{"index", 0},
                        {"message", {{"role", "assistant"}, {"content", std::to_string(i + 1) + ". It is simple arithmetic: add one to the number."}, {"refusal", nullptr}}},
                        {"logprobs", nullptr},
                        {"finish_reason", "stop"}}}},
          {"usage", {{"prompt_tokens", 31}, {"completion_tokens", 14}, {"total_tokens", 45},
                     {"prompt_tokens_details", {{"cached_tokens", 0}, {"audio_tokens", 0}}},
                     {"completion_tokens_details", {{"reasoning_tokens", 0}, {"audio_tokens", 0}}}}},
          {"service_tier", "default"},
          {"system_fingerprint", "fp_0ba0d124f1"}};
      if (!std::filesystem::exists(cache.path(key)))
        cache.store(key, re::detail::encode_cache_entry(key, identity, "bench", response.dump(), nullptr));
      paths.push_back(cache.path(key));
    }
    std::cerr << "populated " << n << " entries in " << seconds_since(t0) << " s\n";
  }

  auto plain_loop = [&] {
    auto t0 = clk::now();
    std::size_t bytes = 0;
    std::vector<char> buf(1 << 16);
    for (const auto& p : paths) {
      std::FILE* f = std::fopen(p.c_str(), "rb");
      if (!f) {
        std::cerr << "missing " << p << '\n';
        std::exit(1);
      }
      std::size_t got;
      while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) bytes += got;
      std::fclose(f);
    }
    double s = seconds_since(t0);
    if (bytes == 0) std::exit(1);
    return s;
  };

  auto engine_replay = [&] {
    re::engine<re::openai_compatible> engine(
        provider, re::options().concurrency(concurrency).cache_dir(dir).max_retries(0).progress_bar(false));
    auto t0 = clk::now();
    auto results = engine.run(batch, params, "replay");
    double s = seconds_since(t0);
    std::size_t hits = 0;
    for (auto& r : results) hits += (r && r->from_cache) ? 1 : 0;
    if (hits != n) {
      std::cerr << "only " << hits << " of " << n << " were cache hits\n";
      std::exit(1);
    }
    return s;
  };

  double best_plain = 1e9, best_engine = 1e9;
  for (int round = 0; round < 3; ++round) {
    double p = plain_loop();
    double e = engine_replay();
    std::printf("round %d: plain loop %.3f s (%.0f files/s), engine %.3f s (%.0f hits/s)\n", round + 1, p,
                static_cast<double>(n) / p, e, static_cast<double>(n) / e);
    best_plain = std::min(best_plain, p);
    best_engine = std::min(best_engine, e);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\n| figure | value |\n| --- | ---: |\n");
  std::printf("| entries | %zu |\n| engine concurrency | %zu |\n", n, concurrency);
  std::printf("| plain loop (open + read every file, 1 thread), best of 3 | %.3f s (%.0f files/s) |\n", best_plain,
              static_cast<double>(n) / best_plain);
  std::printf("| engine replay (all hits, results in memory), best of 3 | %.3f s (%.0f hits/s) |\n", best_engine,
              static_cast<double>(n) / best_engine);
  std::printf("| engine time / plain loop time (target <= 2) | %.2f |\n", best_engine / best_plain);
  std::printf("| peak RSS of the process | %.0f MB |\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  return 0;
}
