// The README's quick start: a small batch through an OpenAI-compatible endpoint.
//
//   OPENAI_API_KEY=...  ./quickstart                        # api.openai.com
//   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 ./quickstart   # a local server (vLLM, Ollama, the mock)
#include "requests_engine.hpp"

#include <cstdlib>
#include <iostream>

namespace re = requests_engine;

int main() {
  const char* key = std::getenv("OPENAI_API_KEY");     // may be unset for a local server
  const char* base = std::getenv("OPENAI_BASE_URL");   // as in the official SDKs
  const char* model = std::getenv("OPENAI_MODEL");
  re::openai_compatible provider(key, base ? base : "https://api.openai.com/v1",
                                 model ? model : "gpt-4o-mini");
  // Answers are kept in ./requests_engine_cache: running this again costs nothing.
  re::engine<re::openai_compatible> engine(provider,
                                           re::options().concurrency(64).cache_dir("requests_engine_cache"));

  std::vector<re::conversation> batch;
  for (const char* q : {"How big is the moon?", "How big is the sun?", "How far is Mars?"})
    batch.push_back(re::conversation().system("You are an assistant. Answer shortly.").user(q));

  auto results = engine.run(batch, re::params().temperature(0.3).max_tokens(200));
  int failed = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (r) {
      std::cout << "[" << i << "] " << r->text << "\n    (" << r->usage.input_tokens << " in, "
                << r->usage.output_tokens << " out, "
                << (r->from_cache ? std::string("from the cache") : std::to_string(r->latency.count()) + " ms")
                << ")\n";
    } else {
      std::cerr << "[" << i << "] error: " << r.error().describe() << '\n';
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}
