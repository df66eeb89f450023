// The providers against loopback servers that speak each API (paths, headers, request and
// response shapes, error shapes), and their signing against outside conformance data
// (../shared/conformance: AWS SigV4 test suite, a Google service-account JWT vector).
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;
using json = nlohmann::json;

namespace {

// The conformance folder beside the project. ctest and meson pass REQUESTS_ENGINE_SHARED_DIR;
// with it (or under CI) missing data fails the test, as the folder's README asks; a binary
// run by hand without it skips with a message.
std::filesystem::path conformance_dir() {
  const char* shared = std::getenv("REQUESTS_ENGINE_SHARED_DIR");
  std::filesystem::path p = shared ? std::filesystem::path(shared) / "conformance"
                                   : std::filesystem::current_path() / ".." / "shared" / "conformance";
  return std::filesystem::exists(p / "README.md") ? p : std::filesystem::path();
}

[[maybe_unused]] bool have_conformance() {
  if (!conformance_dir().empty()) return true;
  if (std::getenv("REQUESTS_ENGINE_SHARED_DIR") || std::getenv("CI"))
    FAIL("the conformance data is missing: expected ../shared/conformance beside the project root");
  MESSAGE("skipped: ../shared/conformance not found (set REQUESTS_ENGINE_SHARED_DIR to the shared folder)");
  return false;
}

[[maybe_unused]] std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// @section anthropic-tests
namespace {

const char* const anthropic_key = "sk-ant-test-9d2f4b7c1e3a5f8092b4d6e8f0a2c4e6";

std::string anth_scratch(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

// A loopback server that speaks the Messages API: checks what the official SDK sends and
// answers in the API's shapes. `reply` may override the answer for a test.
struct anthropic_server {
  std::unique_ptr<httplib::Server> srv;
  std::thread thread;
  int port = 0;
  std::mutex m;
  std::vector<json> bodies;
  std::vector<httplib::Headers> headers;
  std::function<bool(const json&, httplib::Response&)> reply;  // true: handled

  explicit anthropic_server(const mock::tls_files* tls = nullptr) {
    if (tls)
      srv = std::make_unique<httplib::SSLServer>(tls->server_cert.c_str(), tls->server_key.c_str());
    else
      srv = std::make_unique<httplib::Server>();
    srv->Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
      json body = json::parse(req.body, nullptr, false);
      {
        std::lock_guard<std::mutex> lock(m);
        bodies.push_back(body);
        headers.push_back(req.headers);
      }
      if (req.get_header_value("x-api-key") != anthropic_key) {
        res.status = 401;
        res.set_content(R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})",
                        "application/json");
        return;
      }
      if (reply && reply(body, res)) return;
      std::string last;
      for (const auto& msg : body["messages"])
        if (msg["role"] == "user")
          last = msg["content"].is_string() ? msg["content"].get<std::string>()
                                            : msg["content"].back().value("text", std::string());
      json answer = {{"id", "msg_01"},
                     {"type", "message"},
                     {"role", "assistant"},
                     {"model", body.value("model", std::string())},
                     {"content", json::array({{{"type", "text"}, {"text", "Answer to: " + last}}})},
                     {"stop_reason", "end_turn"},
                     {"stop_sequence", nullptr},
                     {"usage",
                      {{"input_tokens", 12},
                       {"output_tokens", 7},
                       {"cache_creation_input_tokens", 3},
                       {"cache_read_input_tokens", 5}}}};
      res.set_content(answer.dump(), "application/json");
    });
    port = srv->bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { srv->listen_after_bind(); });
    while (!srv->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~anthropic_server() {
    srv->stop();
    thread.join();
  }
  std::string base(bool tls) const { return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port); }
};

}  // namespace

TEST_CASE("anthropic: the body follows the Messages API") {
  re::anthropic p(anthropic_key, "claude-sonnet-4-5");
  auto body = p.make_body(re::conversation().system("Be brief").user("Hi").assistant("Hello").user("Why?"),
                          re::params().temperature(0.2).stop({"END"}).extra({{"metadata", {{"user_id", "u1"}}}}));
  REQUIRE(body);
  CHECK((*body)["model"] == "claude-sonnet-4-5");
  CHECK((*body)["system"] == "Be brief");
  CHECK((*body)["max_tokens"] == 4096);  // required by the API: the default is sent
  CHECK((*body)["temperature"] == 0.2);
  CHECK((*body)["stop_sequences"] == json::array({"END"}));
  CHECK((*body)["metadata"]["user_id"] == "u1");
  REQUIRE((*body)["messages"].size() == 3);
  CHECK((*body)["messages"][1] == json({{"role", "assistant"}, {"content", "Hello"}}));
  CHECK(p.make_request("{}").url == "https://api.anthropic.com/v1/messages");
  CHECK(re::anthropic(anthropic_key, "m", "http://gw.example:8080/").endpoint() == "http://gw.example:8080/v1/messages");
  auto req = p.make_request("{}");
  CHECK(re::find_header(req.headers, "x-api-key") == anthropic_key);
  CHECK(re::find_header(req.headers, "anthropic-version") == "2023-06-01");
  CHECK(re::find_header(req.headers, "Authorization").empty());

  // Images as base64 blocks or URLs; tools; the tool choice mapped to Anthropic's names.
  re::message m;
  m.content = {re::content_part::from_text("What is this?"), re::content_part::image_bytes("\x89PNG", "image/png"),
               re::content_part::image_url("https://example.com/cat.jpg")};
  re::tool weather{"get_weather", "Weather for a city", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}};
  body = p.make_body(re::conversation().add(m), re::params().tools({weather}).tool_choice("required").max_tokens(50));
  REQUIRE(body);
  const json& blocks = (*body)["messages"][0]["content"];
  CHECK(blocks[0] == json({{"type", "text"}, {"text", "What is this?"}}));
  CHECK(blocks[1]["source"] == json({{"type", "base64"}, {"media_type", "image/png"}, {"data", "iVBORw=="}}));
  CHECK(blocks[2]["source"] == json({{"type", "url"}, {"url", "https://example.com/cat.jpg"}}));
  CHECK((*body)["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string");
  CHECK((*body)["tool_choice"] == json({{"type", "any"}}));
  CHECK((*body)["max_tokens"] == 50);

  // What the API cannot take fails before sending, naming the part and the provider.
  re::message audio;
  audio.content = {re::content_part::audio_bytes("RIFF", "wav")};
  auto bad = p.make_body(re::conversation().add(audio), re::params());
  REQUIRE(!bad);
  CHECK(bad.error().code == re::error_code::invalid_request);
  CHECK(bad.error().message.find("anthropic") != std::string::npos);
  CHECK(bad.error().message.find("audio") != std::string::npos);
  CHECK(bad.error().message.find("message 0 part 0") != std::string::npos);
  bad = p.make_body(re::conversation().user("x"), re::params().seed(1));
  CHECK((!bad && bad.error().message.find("seed") != std::string::npos));
  bad = p.make_body(re::conversation().user("x"), re::params().json_mode());
  CHECK((!bad && bad.error().message.find("json_mode") != std::string::npos));
}

TEST_CASE("anthropic: answers, usage, tool calls and the error shape") {
  re::anthropic p(anthropic_key, "claude-sonnet-4-5");
  re::http_response r;
  r.status = 200;
  r.body = R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
    "content":[{"type":"text","text":"Let me check."},
               {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":100,"output_tokens":20,"cache_creation_input_tokens":30,"cache_read_input_tokens":50}})";
  auto c = p.parse_response(r);
  REQUIRE(c);
  CHECK(c->text == "Let me check.");
  CHECK(c->finish_reason == "tool_use");
  CHECK(c->model == "claude-sonnet-4-5-20250929");
  REQUIRE(c->tool_calls().size() == 1);
  CHECK(c->tool_calls()[0].id == "toolu_1");
  CHECK(c->tool_calls()[0].name == "get_weather");
  CHECK(json::parse(c->tool_calls()[0].arguments) == json({{"city", "Paris"}}));
  // Anthropic's input_tokens leaves out cache reads and writes; ours counts every prompt token.
  CHECK(c->usage.input_tokens == 180);
  CHECK(c->usage.cached_input_tokens == 50);
  CHECK(c->usage.cache_write_tokens == 30);
  CHECK(c->usage.output_tokens == 20);

  r.status = 529;
  r.body = R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})";
  auto e = p.parse_response(r);
  REQUIRE(!e);
  CHECK(e.error().code == re::error_code::server_error);
  CHECK(e.error().provider_code == "overloaded_error");
  CHECK(e.error().message == "Overloaded");

  r.status = 200;
  r.body = R"({"type":"message","content":"nope"})";
  e = p.parse_response(r);
  CHECK((!e && e.error().code == re::error_code::invalid_response));
}

TEST_CASE("anthropic: end to end over HTTP and HTTPS, structured output, retries on 529") {
  const auto pki = mock::make_test_pki(anth_scratch("anth-pki"));
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    anthropic_server server(tls ? &pki : nullptr);
    re::anthropic provider(anthropic_key, "claude-haiku-4-5", server.base(tls));
    auto o = re::options().concurrency(4).initial_backoff(std::chrono::milliseconds(5)).progress_bar(false);
    if (tls) o.ca_cert_file(pki.ca_cert);
    re::engine<re::anthropic, re::no_cache> engine(provider, o);

    std::vector<re::conversation> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(re::conversation().system("sys").user("q" + std::to_string(i)));
    auto results = engine.run(batch, re::params().max_tokens(64));
    REQUIRE(results.size() == batch.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE(results[i]);
      CHECK(results[i]->text == "Answer to: q" + std::to_string(i));
      CHECK(results[i]->usage.input_tokens == 20);
      CHECK(results[i]->usage.cached_input_tokens == 5);
    }
    {
      std::lock_guard<std::mutex> lock(server.m);
      REQUIRE(server.bodies.size() == batch.size());
      for (const auto& b : server.bodies) {
        CHECK(b["model"] == "claude-haiku-4-5");
        CHECK(b["system"] == "sys");
        CHECK(b["max_tokens"] == 64);
      }
      for (const auto& h : server.headers) {
        CHECK(h.find("anthropic-version")->second == "2023-06-01");
        CHECK(h.find("content-type")->second.find("application/json") == 0);
      }
    }

    // Structured output: a forced tool whose input is the answer.
    json schema = {{"type", "object"}, {"properties", {{"answer", {{"type", "integer"}}}}}, {"required", {"answer"}}};
    int overloaded = 2;
    server.reply = [&](const json& body, httplib::Response& res) {
      if (overloaded > 0) {
        --overloaded;
        res.status = 529;
        res.set_content(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
                        "application/json");
        return true;
      }
      CHECK(body["tool_choice"] == json({{"type", "tool"}, {"name", "sum"}}));
      CHECK(body["tools"][0]["input_schema"] == schema);
      json answer = {{"type", "message"},
                     {"model", "claude-haiku-4-5"},
                     {"content", json::array({{{"type", "tool_use"}, {"id", "t1"}, {"name", "sum"}, {"input", {{"answer", 4}}}}})},
                     {"stop_reason", "tool_use"},
                     {"usage", {{"input_tokens", 40}, {"output_tokens", 9}}}};
      res.set_content(answer.dump(), "application/json");
      return true;
    };
    auto one = engine.submit(re::conversation().user("2+2?"), re::params().json_schema("sum", schema)).get();
    REQUIRE(one);
    CHECK(json::parse(one->text) == json({{"answer", 4}}));
    CHECK(one->attempts == 3);  // two 529 overloaded answers were retried

    // A wrong key: authentication, not retried, and the key never shows.
    re::anthropic wrong("sk-ant-wrong-key-0000000000000000", "claude-haiku-4-5", server.base(tls));
    re::engine<re::anthropic, re::no_cache> engine2(wrong, o);
    auto denied = engine2.submit(re::conversation().user("x")).get();
    REQUIRE(!denied);
    CHECK(denied.error().code == re::error_code::authentication);
    CHECK(denied.error().attempts == 1);
    CHECK(denied.error().describe().find("sk-ant-wrong") == std::string::npos);
    server.reply = nullptr;
  }
}
// @end anthropic-tests

// @section aws-tests
// @end aws-tests

// @section google-tests
// @end google-tests
