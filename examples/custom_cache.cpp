// A cache of your own: anything with load() and store(), safe from several threads, plugs into
// the engine. This one keeps entries in one append-only file (a stand-in for a key-value store).
//
//   OPENAI_BASE_URL=http://127.0.0.1:8088/v1 ./custom_cache     # e.g. against requests-engine mock
#include "requests_engine.hpp"

#include <cstdlib>
#include <fstream>
#include <iostream>

namespace re = requests_engine;

class log_file_cache {
 public:
  explicit log_file_cache(std::string path) : path_(std::move(path)) {
    std::ifstream in(path_);
    std::string key, entry;
    while (std::getline(in, key) && std::getline(in, entry)) index_[key] = re::json::parse(entry).get<std::string>();
  }
  std::optional<std::string> load(const re::cache_key& k) {
    std::lock_guard<std::mutex> lock(m_);
    auto it = index_.find(k.name());
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  void store(const re::cache_key& k, const std::string& entry) {
    std::lock_guard<std::mutex> lock(m_);
    std::ofstream(path_, std::ios::app) << k.name() << '\n' << re::json(entry).dump() << '\n';
    index_[k.name()] = entry;
  }

 private:
  std::string path_;
  std::mutex m_;
  std::map<std::string, std::string> index_;
};

int main() {
  const char* base = std::getenv("OPENAI_BASE_URL");
  re::openai_compatible provider(std::getenv("OPENAI_API_KEY"), base ? base : "https://api.openai.com/v1",
                                 "gpt-4o-mini");
  // The cache type is the engine's second template parameter; the instance is passed in.
  re::engine<re::openai_compatible, log_file_cache> engine(provider, re::options().concurrency(8),
                                                           std::make_shared<log_file_cache>("answers.cache"));
  for (int round = 0; round < 2; ++round) {
    auto results = engine.run({re::conversation().user("Name a colour."), re::conversation().user("Name a fruit.")},
                              re::params(), "round-" + std::to_string(round));
    for (auto& r : results) {
      if (!r) {
        std::cerr << r.error().describe() << '\n';
        return 1;
      }
      std::cout << (r->from_cache ? "[cache] " : "[network] ") << r->text << '\n';
    }
  }
  return 0;
}
