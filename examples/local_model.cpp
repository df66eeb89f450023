// A local model fed full batches: 64 threads each run a chain of three prompts, every step
// depending on the answer before it, one submit() at a time. The engine collects the single
// requests into batches for the model's batch call (options::batching), and keeps the cache,
// the samples and the deduplication in front of it as for any provider.
//
//   ./local_model
#include "requests_engine.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace re = requests_engine;

namespace {

// ---------------------------------------------------------------------------------------------
// THE MODEL: replace this function with your model's batch call (a vLLM or llama.cpp engine in
// process, a TensorRT or ONNX session, a Python model behind pybind11, ...). It gets a whole
// batch and answers every request of it, in order. This stand-in takes 20 ms per call, as a GPU
// forward pass does whatever the batch size, and answers by a rule it can check.
std::vector<re::result<re::completion>> model_batch_call(const std::vector<re::batch_request>& batch) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<re::result<re::completion>> answers;
  for (const re::batch_request& r : batch) {
    const std::string prompt = r.conversation.messages().back().text();
    re::completion c;
    // The stand-in "model": the answer is the number in the prompt plus one.
    const auto digits = prompt.find_last_not_of("0123456789");
    const long n = std::stol(prompt.substr(digits + 1));
    c.text = std::to_string(n + 1);
    c.usage.input_tokens = static_cast<std::int64_t>(prompt.size() / 4 + 1);
    c.usage.output_tokens = 1;
    c.model = "stand-in";
    answers.push_back(std::move(c));
  }
  return answers;
}
// ---------------------------------------------------------------------------------------------

}  // namespace

int main() {
  std::mutex m;
  std::map<std::size_t, std::size_t> sizes;  // batch size -> how many batches had it
  re::batch_backend model("stand-in-model-v1", [&](const std::vector<re::batch_request>& batch) {
    {
      std::lock_guard<std::mutex> lock(m);
      ++sizes[batch.size()];
    }
    return model_batch_call(batch);
  });
  // Up to 32 requests per batch; a lone request waits at most 10 ms for company; one batch in
  // the model at a time (a second GPU: concurrent(2)).
  re::engine<re::batch_backend, re::memory_cache> engine(
      model, re::options().batching(re::batching_options().max_size(32).max_wait(std::chrono::milliseconds(10))));

  const auto start = std::chrono::steady_clock::now();
  constexpr int chains = 64, steps = 3;
  std::vector<long> final_answer(chains, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < chains; ++t) {
    threads.emplace_back([&, t] {
      long value = t * 100;
      for (int step = 0; step < steps; ++step) {
        // Each step asks about the previous answer: the chain cannot be sent as one batch.
        auto answer = engine.submit(re::conversation().user("Add one to " + std::to_string(value))).get();
        if (!answer) {
          std::lock_guard<std::mutex> lock(m);
          std::cerr << "chain " << t << " step " << step << ": " << answer.error().describe() << "\n";
          return;
        }
        value = std::stol(answer->text);
      }
      final_answer[static_cast<std::size_t>(t)] = value;
    });
  }
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  int wrong = 0;
  for (int t = 0; t < chains; ++t) wrong += final_answer[static_cast<std::size_t>(t)] == t * 100 + steps ? 0 : 1;
  const re::progress p = engine.current_progress();
  std::cout << "batch sizes the model got:";
  for (const auto& [size, count] : sizes) std::cout << " " << count << " x " << size;
  std::cout << "\n" << p.batches << " model calls for " << p.batched << " requests, mean batch size "
            << static_cast<double>(p.batched) / static_cast<double>(std::max<std::size_t>(p.batches, 1)) << ", in "
            << seconds << " s (one request per call would take " << chains * steps * 20 / 1000.0 << " s)\n";
  if (wrong == 0) std::cout << chains << " chains of " << steps << " steps done, every answer right\n";
  return wrong == 0 ? 0 : 1;
}
