// A second translation unit that includes the header and instantiates the engine: linking it
// with the others proves that every definition in the header is ODR-safe (inline).
#include "requests_engine.hpp"

namespace re = requests_engine;

int odr_second_translation_unit(const std::string& base_url) {
  re::openai_compatible provider(nullptr, base_url, "odr-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2));
  auto results = engine.run({re::conversation().user("a"), re::conversation().user("b"),
                             re::conversation().user("c")});
  int ok = 0;
  for (auto& r : results) ok += r ? 1 : 0;
  return ok;
}
