// The conan package's test: the header compiles and links with its three dependencies as conan
// provides them. With OPENAI_BASE_URL set (a local server, the bundled mock) it also sends one
// request through the engine and prints the answer.
#include "requests_engine.hpp"

#include <cstdlib>
#include <iostream>

namespace re = requests_engine;

int main() {
  std::cout << "requests_engine " << REQUESTS_ENGINE_VERSION << '\n';
  const char* base = std::getenv("OPENAI_BASE_URL");
  if (base == nullptr) {
    std::cout << "OPENAI_BASE_URL is not set: no request sent\n";
    return 0;
  }
  re::openai_compatible provider(std::getenv("OPENAI_API_KEY"), base, "gpt-4o-mini");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2));
  auto results = engine.run({re::conversation().user("Say hello from the conan package.")});
  if (!results[0]) {
    std::cerr << "error: " << results[0].error().describe() << '\n';
    return 1;
  }
  std::cout << results[0]->text << '\n';
  return 0;
}
