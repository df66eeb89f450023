// The batching benchmark (issue #17): 64 threads each run a 5-step chain of dependent prompts
// through submit() into a backend that takes 20 ms per call whatever the batch size (the shape
// of a GPU forward pass). Side by side in one run:
//   collector   batch_backend with batching_options().max_size(32): the requests of all chains
//               collected into batches;
//   reference   the same chains, the same engine and the same backend, one request per backend
//               call (max_size(1)): what a client without a collector does with a local model.
// Both feed one call at a time (concurrent(1)): one GPU.
//
//   bash bench/run_batching.sh [chains] [steps] [ms per call] [max batch] [max wait ms]
//   (defaults: 64 5 20 32 10)
#include "requests_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace re = requests_engine;

namespace {

struct outcome {
  double seconds = 0;
  std::size_t calls = 0, requests = 0, failures = 0, wrong = 0;
  std::size_t smallest = 0, largest = 0;
};

outcome run(int chains, int steps, int call_ms, std::size_t max_batch, int wait_ms) {
  std::mutex m;
  std::vector<std::size_t> sizes;
  re::batch_backend backend("bench-model", [&](const std::vector<re::batch_request>& batch) {
    {
      std::lock_guard<std::mutex> lock(m);
      sizes.push_back(batch.size());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(call_ms));  // the forward pass
    std::vector<re::result<re::completion>> out;
    for (const auto& r : batch) {
      const std::string p = r.conversation.messages().back().text();
      re::completion c;
      c.text = std::to_string(std::stol(p.substr(p.find_last_of(' ') + 1)) + 1);
      out.push_back(std::move(c));
    }
    return out;
  });
  re::engine<re::batch_backend, re::memory_cache> engine(
      backend, re::options().batching(re::batching_options().max_size(max_batch).max_wait(std::chrono::milliseconds(wait_ms))));
  outcome o;
  std::vector<std::size_t> failures(static_cast<std::size_t>(chains), 0), wrong(static_cast<std::size_t>(chains), 0);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < chains; ++t) {
    threads.emplace_back([&, t] {
      long value = 1000L * t;
      for (int s = 0; s < steps; ++s) {
        auto r = engine.submit(re::conversation().user("add one to " + std::to_string(value))).get();
        if (!r) {
          ++failures[static_cast<std::size_t>(t)];
          return;
        }
        value = std::stol(r->text);
      }
      if (value != 1000L * t + steps) ++wrong[static_cast<std::size_t>(t)];
    });
  }
  for (auto& th : threads) th.join();
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int t = 0; t < chains; ++t) {
    o.failures += failures[static_cast<std::size_t>(t)];
    o.wrong += wrong[static_cast<std::size_t>(t)];
  }
  std::lock_guard<std::mutex> lock(m);
  o.calls = sizes.size();
  for (auto s : sizes) o.requests += s;
  o.smallest = sizes.empty() ? 0 : *std::min_element(sizes.begin(), sizes.end());
  o.largest = sizes.empty() ? 0 : *std::max_element(sizes.begin(), sizes.end());
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const int chains = argc > 1 ? std::atoi(argv[1]) : 64;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int call_ms = argc > 3 ? std::atoi(argv[3]) : 20;
  const std::size_t max_batch = argc > 4 ? static_cast<std::size_t>(std::atol(argv[4])) : 32;
  const int wait_ms = argc > 5 ? std::atoi(argv[5]) : 10;
  if (chains <= 0 || steps <= 0 || call_ms < 0 || max_batch == 0 || wait_ms < 0) {
    std::fprintf(stderr, "usage: bench_batching [chains] [steps] [ms per call] [max batch] [max wait ms]\n");
    return 2;
  }
  const outcome batched = run(chains, steps, call_ms, max_batch, wait_ms);
  const outcome single = run(chains, steps, call_ms, 1, wait_ms);
  auto mean = [](const outcome& o) { return o.calls ? static_cast<double>(o.requests) / static_cast<double>(o.calls) : 0.0; };
  std::printf("%d threads x %d-step chains, a backend taking %d ms per call, one call at a time\n\n", chains, steps,
              call_ms);
  std::printf("| client | backend calls | requests | mean batch | smallest / largest | wall time | failures |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto* o : {&batched, &single})
    std::printf("| %s | %zu | %zu | %.1f | %zu / %zu | %.3f s | %zu |\n",
                o == &batched ? ("collector, max_size " + std::to_string(max_batch)).c_str()
                              : "reference: one request per call",
                o->calls, o->requests, mean(*o), o->smallest, o->largest, o->seconds, o->failures + o->wrong);
  const double speedup = batched.seconds > 0 ? single.seconds / batched.seconds : 0.0;
  std::printf("\nmean batch size %.1f (target >= 24); wall time ratio reference / collector %.1fx (target >= 10x)\n",
              mean(batched), speedup);
  const bool ok = batched.failures + batched.wrong + single.failures + single.wrong == 0;
  return ok ? 0 : 1;
}
