// A provider of your own: a type with these members plugs into the engine (a missing one is a
// compile error that names it). This one speaks Ollama's native chat API (POST /api/chat).
//
//   OLLAMA_HOST=http://127.0.0.1:11434 ./custom_provider     # or against requests-engine mock
#include "requests_engine.hpp"

#include <cstdlib>
#include <iostream>

namespace re = requests_engine;

struct ollama_native {
  std::string host, model;

  re::result<re::json> make_body(const re::conversation& c, const re::params& p) const {
    re::json messages = re::json::array();
    if (c.system()) messages.push_back({{"role", "system"}, {"content", *c.system()}});
    for (const auto& m : c.messages()) {
      if (m.content.size() != 1 || m.content[0].type != re::content_part::kind::text)
        return re::error{re::error_code::invalid_request, 0, "ollama_native: text messages only", {}, 0, {}};
      messages.push_back({{"role", std::string(re::to_string(m.author))}, {"content", m.content[0].text}});
    }
    re::json body = {{"model", model}, {"messages", messages}, {"stream", false}, {"options", re::json::object()}};
    if (p.temperature()) body["options"]["temperature"] = *p.temperature();
    if (p.max_tokens()) body["options"]["num_predict"] = *p.max_tokens();
    return body;
  }
  re::http_request make_request(const std::string& body) const {
    re::http_request r;
    r.url = host + "/api/chat";
    r.body = body;
    return r;
  }
  re::result<re::completion> parse_response(const re::http_response& r) const {
    re::json j = re::json::parse(r.body, nullptr, false);
    if (r.status != 200 || !j.is_object() || !j.contains("message"))
      return re::error{re::error_code::invalid_response, r.status, "ollama_native: " + r.body.substr(0, 200), {}, 0, {}};
    re::completion c;
    c.text = j["message"].value("content", "");
    c.finish_reason = j.value("done_reason", "");
    c.model = j.value("model", "");
    c.usage.input_tokens = j.value("prompt_eval_count", 0);
    c.usage.output_tokens = j.value("eval_count", 0);
    c.choices.push_back({c.text, c.finish_reason, {}});
    c.raw_body = r.body;
    return c;
  }
  re::json cache_identity() const { return {{"kind", "ollama_native"}, {"host", host}}; }
};

int main() {
  const char* host = std::getenv("OLLAMA_HOST");
  re::engine<ollama_native, re::no_cache> engine(ollama_native{host ? host : "http://127.0.0.1:11434", "llama3.2"},
                                                 re::options().concurrency(4));
  for (auto& r : engine.run({re::conversation().user("Name a colour."), re::conversation().user("Name a fruit.")})) {
    if (!r) return std::cerr << r.error().describe() << '\n', 1;
    std::cout << r->text << "  (" << r->usage.output_tokens << " tokens)\n";
  }
}
