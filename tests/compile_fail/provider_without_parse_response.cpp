// Must NOT compile: a provider without parse_response. The ctest `compile_fail_provider`
// expects the static_assert of detail::check_provider to name the missing member in plain words.
#include "requests_engine.hpp"

namespace re = requests_engine;

struct incomplete_provider {
  [[nodiscard]] re::result<re::json> make_body(const re::conversation&, const re::params&) const {
    return re::json::object();
  }
  [[nodiscard]] re::http_request make_request(const std::string& body) const {
    re::http_request r;
    r.url = "http://127.0.0.1:1/v1/chat/completions";
    r.body = body;
    return r;
  }
  // no parse_response
  [[nodiscard]] re::json cache_identity() const { return {{"kind", "incomplete"}}; }
};

int main() {
  re::engine<incomplete_provider, re::no_cache> engine(incomplete_provider{});
  (void)engine;
}
