// The providers against loopback servers that speak each API (paths, headers, request and
// response shapes, error shapes), and their signing against outside conformance data
// (../shared/conformance: AWS SigV4 test suite, a Google service-account JWT vector).
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "skips.hpp"
#include "requests_engine.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <random>
#include <memory>
#include <mutex>
#include <optional>
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

// The conformance folder beside the project (REQUESTS_ENGINE_SHARED_DIR, which ctest and meson
// set to ../shared, else ../shared from the working folder). Empty when it is not there.
std::filesystem::path conformance_dir() {
  const char* shared = std::getenv("REQUESTS_ENGINE_SHARED_DIR");
  std::filesystem::path p = shared ? std::filesystem::path(shared) / "conformance"
                                   : std::filesystem::current_path() / ".." / "shared" / "conformance";
  return std::filesystem::exists(p / "README.md") ? p : std::filesystem::path();
}

// A clone has no ../shared beside it: only the project's CI lays it there (and requires it).
[[maybe_unused]] bool have_conformance() {
  const char* shared = std::getenv("REQUESTS_ENGINE_SHARED_DIR");
  const std::filesystem::path where =
      (shared ? std::filesystem::path(shared) : std::filesystem::path("..") / "shared") / "conformance";
  return available_or_skip(!conformance_dir().empty(),
                           "no conformance data: expected " + where.lexically_normal().string() +
                               " beside the project root (REQUESTS_ENGINE_SHARED_DIR)");
}

[[maybe_unused]] std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A new folder under the system's temporary folder, named re-NAME-XXXXXX.
std::string make_temp_dir(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

// The reference implementations Debian ships (botocore, google-auth), run by the scripts in
// tests/reference/ with Debian's Python: one process for all of a test's cases.
namespace reference {

struct run_result {
  bool started = false;  // false: no Python to run the script with
  int status = -1;       // exit status (3: the reference library is not installed)
  std::string out, err;
};

// REQUESTS_ENGINE_PYTHON, else Debian's /usr/bin/python3 (which sees python3-botocore and
// python3-google-auth even where another python3 comes first on PATH), else python3 on PATH.
std::string python() {
  if (const char* p = std::getenv("REQUESTS_ENGINE_PYTHON")) return p;
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

// tests/reference/SCRIPT of this source tree (ctest and meson set REQUESTS_ENGINE_SOURCE_DIR).
std::filesystem::path script(const std::string& name) {
  const char* src = std::getenv("REQUESTS_ENGINE_SOURCE_DIR");
  return src ? std::filesystem::path(src) / "tests" / "reference" / name : std::filesystem::path();
}

run_result run(const std::string& script_name, const std::vector<std::string>& args, const std::string& dir) {
  run_result r;
  const std::filesystem::path path = script(script_name);
  if (path.empty() || !std::filesystem::exists(path)) {
    r.err = "tests/reference/" + script_name + " not found (set REQUESTS_ENGINE_SOURCE_DIR to the source tree)";
    return r;
  }
  std::vector<std::string> argv_s = {python(), path.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = dir + "/reference.out", err = dir + "/reference.err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv_s[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = "cannot start " + argv_s[0] + ": " + std::strerror(rc);
    return r;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.started = true;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  if (r.status == 127) r.started = false;  // posix_spawnp's child could not exec the interpreter
  return r;
}

// Whether the reference could be run: otherwise skipped (or, under CI=true, failed) naming why.
bool ran(const run_result& r) {
  if (!r.started) return available_or_skip(false, "no Python to run the reference with: " + r.err);
  if (r.status == 3) return available_or_skip(false, r.err.substr(0, r.err.find('\n')));
  REQUIRE_MESSAGE(r.status == 0, "the reference script failed (" << r.status << "): " << r.err);
  return true;
}

}  // namespace reference

}  // namespace

// @section anthropic-tests
namespace {

const char* const anthropic_key = "sk-ant-test-9d2f4b7c1e3a5f8092b4d6e8f0a2c4e6";

std::string anth_scratch(const std::string& name) { return make_temp_dir(name); }

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
TEST_CASE("anthropic: an image as bytes and by URL end to end; the server receives typed content blocks") {
  anthropic_server server;
  re::anthropic provider(anthropic_key, "claude-haiku-4-5", server.base(false));
  re::engine<re::anthropic, re::no_cache> engine(provider, re::options().max_retries(0).progress_bar(false));
  const std::string png("\x89PNG\r\n\x1a\n", 8);
  re::message m{re::role::user,
                {re::content_part::image_bytes(png, "image/png"), re::content_part::image_url("https://example.com/cat.jpg"),
                 re::content_part::from_text("What is in these pictures?")}};
  auto r = engine.submit(re::conversation().system("sys").add(m), re::params().max_tokens(100)).get();
  REQUIRE_MESSAGE(r, (r ? std::string() : r.error().describe()));
  CHECK(r->text == "Answer to: What is in these pictures?");
  std::lock_guard<std::mutex> lock(server.m);
  REQUIRE(server.bodies.size() == 1);
  const json& b = server.bodies[0];
  CHECK(b["system"] == "sys");
  CHECK(b["max_tokens"] == 100);
  CHECK(b["messages"] == json::parse(R"([{"role":"user","content":[
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
      {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
      {"type":"text","text":"What is in these pictures?"}]}])"));
}
// @end anthropic-tests

// @section aws-tests
namespace {
namespace aws_test {

const char* const access_key = "AKIDEXAMPLE";
const char* const secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const char* const session_token = "FwoGZXIvYXdzEXAMPLEsessionTOKEN7f3a9c2e5b1d4f60a8e2c4b6d8f0a1c3";
const char* const model_id = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const char* const wire_path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke";

re::aws_credentials credentials(bool with_token = true) {
  return re::aws_credentials{access_key, secret_key, with_token ? session_token : ""};
}

// A raw request of the AWS suite: "METHOD TARGET HTTP/1.1", headers (a line starting with
// whitespace continues the previous value), a blank line, the body.
struct raw_request {
  std::string method, path, query, head, body;
  re::header_list headers;
};

raw_request parse_raw_request(const std::string& text) {
  raw_request r;
  auto blank = text.find("\n\n");
  r.head = text.substr(0, blank);
  if (blank != std::string::npos) r.body = text.substr(blank + 2);
  while (!r.head.empty() && r.head.back() == '\n') r.head.pop_back();
  std::istringstream lines(r.head);
  std::string line;
  std::getline(lines, line);
  // The target may hold spaces ("GET /example space/ HTTP/1.1").
  const auto first = line.find(' '), last = line.rfind(' ');
  r.method = line.substr(0, first);
  const std::string target = line.substr(first + 1, last - first - 1);
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  while (std::getline(lines, line)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!r.headers.empty()) r.headers.back().second += " " + line;
      continue;
    }
    const auto colon = line.find(':');
    r.headers.emplace_back(line.substr(0, colon), colon == std::string::npos ? "" : line.substr(colon + 1));
  }
  return r;
}

// What a Bedrock emulator received.
struct received {
  std::string method, target, body;
  re::header_list headers;
};

// Recomputes the SigV4 signature of a received request from what arrived (method, raw target,
// the headers named in SignedHeaders, body) with `secret`: empty when it matches, else why not.
std::string verify_signature(const received& r, const std::string& secret) {
  const std::string auth = re::find_header(r.headers, "Authorization");
  const std::string prefix = "AWS4-HMAC-SHA256 Credential=";
  if (auth.rfind(prefix, 0) != 0) return "Authorization does not start with '" + prefix + "': " + auth;
  const auto sh = auth.find(", SignedHeaders="), sig = auth.find(", Signature=");
  if (sh == std::string::npos || sig == std::string::npos || sig < sh) return "malformed Authorization: " + auth;
  const std::string credential = auth.substr(prefix.size(), sh - prefix.size());
  const std::string signed_headers = auth.substr(sh + 16, sig - sh - 16);
  const std::string scope_tail = "/us-east-1/bedrock/aws4_request";
  if (credential.rfind(std::string(access_key) + "/", 0) != 0 || credential.size() < scope_tail.size() ||
      credential.compare(credential.size() - scope_tail.size(), scope_tail.size(), scope_tail) != 0)
    return "unexpected credential scope: " + credential;

  re::detail::sigv4_input in;
  in.method = r.method;
  const auto q = r.target.find('?');
  in.path = r.target.substr(0, q);
  if (q != std::string::npos) in.query = r.target.substr(q + 1);
  std::istringstream names(signed_headers);
  for (std::string name; std::getline(names, name, ';');) {
    bool found = false;
    for (const auto& kv : r.headers) {
      std::string lower = kv.first;
      for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (lower == name) {
        in.headers.push_back(kv);
        found = true;
      }
    }
    if (!found) return "signed header '" + name + "' was not received";
  }
  in.body = r.body;
  in.credentials = re::aws_credentials{access_key, secret, ""};  // the token is checked as a signed header
  in.region = "us-east-1";
  in.service = "bedrock";
  in.timestamp = re::find_header(r.headers, "X-Amz-Date");
  const re::detail::sigv4_output expect = re::detail::sigv4_sign(in);
  if (expect.authorization != auth) return "signature mismatch: expected " + expect.authorization + ", got " + auth;
  return {};
}

std::string messages_answer(const std::string& text) {
  return re::json{{"id", "msg_bdrk_01"},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", "claude-3-5-sonnet-20240620"},
                  {"content", re::json::array({{{"type", "text"}, {"text", text}}})},
                  {"stop_reason", "end_turn"},
                  {"stop_sequence", nullptr},
                  {"usage", {{"input_tokens", 12}, {"output_tokens", 5}}}}
      .dump();
}

// Bedrock's error shape: {"message"} in the body, the type in x-amzn-ErrorType.
void bedrock_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  res.status = status;
  res.set_header("x-amzn-ErrorType", type + ":http://internal.amazon.com/coral/com.amazon.bedrock/");
  res.set_content(re::json{{"message", message}}.dump(), "application/json");
}

// An in-process Bedrock runtime on loopback: records every InvokeModel request and lets the
// test answer it. Everything the handler touches lives in this object, which stops the server
// (and joins its thread) before any member goes away.
class bedrock_server {
 public:
  using responder = std::function<void(const httplib::Request&, httplib::Response&, std::size_t n)>;

  explicit bedrock_server(responder respond, const mock::tls_files* tls = nullptr)
      : respond_(std::move(respond)), tls_(tls != nullptr) {
    if (tls)
      svr_ = std::make_unique<httplib::SSLServer>(tls->server_cert.c_str(), tls->server_key.c_str());
    else
      svr_ = std::make_unique<httplib::Server>();
    svr_->set_keep_alive_timeout(1);
    svr_->Post(R"(/model/([^/]+)/invoke)", [this](const httplib::Request& req, httplib::Response& res) {
      received rec{req.method, req.target, req.body, {}};
      for (const auto& kv : req.headers) rec.headers.emplace_back(kv.first, kv.second);
      std::size_t n = 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        log_.push_back(std::move(rec));
        n = log_.size();
      }
      respond_(req, res, n);
    });
    port_ = svr_->bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("bedrock_server: cannot bind 127.0.0.1");
    thread_ = std::thread([this] {
      svr_->listen_after_bind();
      done_.store(true);
    });
    while (!svr_->is_running() && !done_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~bedrock_server() {
    svr_->stop();
    thread_.join();
  }
  bedrock_server(const bedrock_server&) = delete;
  bedrock_server& operator=(const bedrock_server&) = delete;

  [[nodiscard]] std::string base_url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  [[nodiscard]] std::vector<received> log() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }

 private:
  responder respond_;
  bool tls_;
  mutable std::mutex mutex_;
  std::vector<received> log_;
  std::atomic<bool> done_{false};
  int port_ = 0;
  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
};

std::string scratch_dir(const std::string& name) { return make_temp_dir(name); }

const mock::tls_files& test_pki() {
  static const mock::tls_files files = mock::make_test_pki(scratch_dir("aws-pki"));
  return files;
}

std::string errors_text(const std::vector<re::result<re::completion>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + " [" + r.error().provider_code + "]\n";
  return s;
}

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace aws_test
}  // namespace

TEST_CASE("sigv4: every case of the AWS Signature Version 4 test suite") {
  if (!have_conformance()) return;
  const auto root = conformance_dir() / "sigv4";
  std::vector<std::filesystem::path> cases;
  for (const auto& entry : std::filesystem::directory_iterator(root))
    if (entry.is_directory()) cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() == 38);

  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    const re::json ctx = re::json::parse(slurp(dir / "context.json"));
    const aws_test::raw_request raw = aws_test::parse_raw_request(slurp(dir / "request.txt"));

    re::detail::sigv4_input in;
    in.method = raw.method;
    in.path = raw.path;
    in.query = raw.query;
    in.headers = raw.headers;
    in.body = raw.body;
    in.credentials.access_key_id = ctx["credentials"]["access_key_id"].get<std::string>();
    in.credentials.secret_access_key = ctx["credentials"]["secret_access_key"].get<std::string>();
    in.credentials.session_token = ctx["credentials"].value("token", std::string());
    in.region = ctx["region"].get<std::string>();
    in.service = ctx["service"].get<std::string>();
    std::string ts = ctx["timestamp"].get<std::string>();  // 2015-08-30T12:36:00Z
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](char ch) { return ch == '-' || ch == ':'; }), ts.end());
    in.timestamp = ts;
    in.normalize_path = ctx["normalize"].get<bool>();
    in.sign_body = ctx["sign_body"].get<bool>();
    in.sign_session_token = !ctx.value("omit_session_token", false);

    const re::detail::sigv4_output out = re::detail::sigv4_sign(in);
    CHECK_MESSAGE(out.canonical_request == slurp(dir / "header-canonical-request.txt"),
                  name << ": header-canonical-request.txt");
    CHECK_MESSAGE(out.string_to_sign == slurp(dir / "header-string-to-sign.txt"), name << ": header-string-to-sign.txt");
    CHECK_MESSAGE(out.signature == slurp(dir / "header-signature.txt"), name << ": header-signature.txt");
    std::string signed_request = raw.head;
    for (const auto& kv : out.added_headers) signed_request += "\n" + kv.first + ":" + kv.second;
    signed_request += "\nAuthorization:" + out.authorization + "\n\n" + raw.body;
    CHECK_MESSAGE(signed_request == slurp(dir / "header-signed-request.txt"), name << ": header-signed-request.txt");
  }
}

TEST_CASE("sigv4: Bedrock InvokeModel vector (bedrock-sigv4.json), by the signer and by the provider") {
  if (!have_conformance()) return;
  const re::json v = re::json::parse(slurp(conformance_dir() / "bedrock-sigv4.json"));
  const re::aws_credentials creds{v["credentials"]["access_key_id"].get<std::string>(),
                                  v["credentials"]["secret_access_key"].get<std::string>(), ""};
  const std::string url = v["request"]["url"].get<std::string>();
  const std::string body = v["request"]["body"].get<std::string>();
  const std::string timestamp = v["expected_headers"]["X-Amz-Date"].get<std::string>();
  REQUIRE(url.find("%3A0/invoke") != std::string::npos);

  re::detail::sigv4_input in;
  in.method = v["request"]["method"].get<std::string>();
  const re::url_parts u = re::parse_url(url);
  in.path = u.path;
  in.headers = {{"host", u.host}};
  for (const auto& [name, value] : v["request"]["headers"].items()) in.headers.emplace_back(name, value.get<std::string>());
  in.body = body;
  in.credentials = creds;
  in.region = v["region"].get<std::string>();
  in.service = v["service"].get<std::string>();
  in.timestamp = timestamp;
  const auto out = re::detail::sigv4_sign(in);
  CHECK(re::detail::sha256_hex(body) == v["payload_sha256"].get<std::string>());
  CHECK(out.canonical_request == v["canonical_request"].get<std::string>());
  CHECK(out.canonical_request.find("v1%253A0") != std::string::npos);
  CHECK(out.string_to_sign == v["string_to_sign"].get<std::string>());
  CHECK(out.authorization == v["expected_headers"]["Authorization"].get<std::string>());

  // The provider builds the same URL and signs the same way.
  re::bedrock_anthropic provider(creds, "us-east-1", "anthropic.claude-3-haiku-20240307-v1:0");
  CHECK(provider.endpoint() == url);
  const re::http_request r = provider.make_request_at(body, timestamp);
  CHECK(r.url == url);
  CHECK(r.method == "POST");
  CHECK(r.content_type == "application/json");
  CHECK(re::find_header(r.headers, "X-Amz-Date") == timestamp);
  CHECK(re::find_header(r.headers, "Authorization") == v["expected_headers"]["Authorization"].get<std::string>());
  CHECK(re::find_header(r.headers, "Host") == "bedrock-runtime.us-east-1.amazonaws.com");
  CHECK(re::find_header(r.headers, "X-Amz-Security-Token").empty());
}

namespace {
namespace sigv4_generated {

// Requests built the way a client sends them (paths and queries percent-encoded on the wire),
// varied over what hand-written signers get wrong: methods, spaces, unicode, reserved
// characters, `//`, `.` and `..`, repeated and empty query keys, header values with inner and
// outer spaces or tabs and repeated names in mixed case, session tokens, empty and binary
// bodies, Bedrock's service and regions. Deterministic: case N is the same on every machine.
struct generated {
  std::string name, host;
  re::detail::sigv4_input in;
};

std::vector<generated> make_cases(std::size_t count) {
  std::mt19937_64 rng(20261204);
  auto pick = [&](const auto& v) -> const auto& { return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)]; };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto upto = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n)(rng); };
  auto encoded = [](const std::string& raw) { return re::detail::aws_uri_encode(raw, true); };

  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
  const std::vector<std::string> regions = {"us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1", "eu-west-3"};
  const std::vector<std::string> services = {"execute-api", "sts", "dynamodb", "service", "lambda"};
  // Path segments, raw: encoded for the wire unless they are dot segments or plain.
  const std::vector<std::string> raw_segments = {
      "model", "invoke", "v1", "a-b_c~d.e", "anthropic.claude-3-haiku-20240307-v1:0", "with space", "two  spaces",
      "ünïcödé", "日本語", "a+b", "a=b", "100%", "a&b", "!'()*", "semi;colon", "comma,", "at@sign", "dollar$",
      "tilde~", "question?", "hash#", "quote\"", "back\\slash", "x"};
  // Characters that may stand unencoded in a wire path (RFC 3986 pchar): both sides encode them.
  const std::vector<std::string> literal_segments = {"a:b", "a@b", "a!b", "a$b", "a,b", "a;b", "a=b", "a+b",
                                                     "a'b", "(x)", "a*b", "v1:0"};
  const std::vector<std::string> query_names = {"a", "A", "b", "Param1", "x-amz-foo", "", "ünï", "a b", "a/b",
                                                "k=v", "list[]", "Action", "Version"};
  const std::vector<std::string> query_values = {"", "1", "value with spaces", "a/b", "a+b", "=", "&", "~-_.",
                                                 "é", "%", "2015-08-30T12:36:00Z", "x y+z", "*"};
  const std::vector<std::string> header_names = {"Content-Type", "X-Amz-Meta-Foo", "My-Header1", "x-custom",
                                                 "X-CUSTOM", "Accept", "anthropic-version", "X-Amz-Target",
                                                 "content-encoding", "My-Header2"};
  const std::vector<std::string> header_values = {"application/json", "value", "  leading", "trailing   ",
                                                  "inner    spaces  here", "tab\tseparated", " \t mixed \t ",
                                                  "a,b", "", "\"quoted  value\"", "bedrock-2023-05-31",
                                                  "DynamoDB_20120810.PutItem", "UPPER lower 123"};

  std::vector<generated> cases;
  for (std::size_t i = 0; i < count; ++i) {
    generated g;
    re::detail::sigv4_input& in = g.in;
    in.method = pick(methods);
    const bool bedrock = chance(0.4);
    in.region = pick(regions);
    in.service = bedrock ? "bedrock" : pick(services);
    g.host = bedrock ? "bedrock-runtime." + in.region + ".amazonaws.com"
                     : (chance(0.8) ? "example.amazonaws.com" : "example.amazonaws.com:8443");

    // The path: segments, dot segments and empty ones (a `//`), perhaps a trailing slash.
    std::string path;
    if (bedrock && chance(0.5)) {
      path = "/model/" + encoded(pick(raw_segments)) + "/invoke";
    } else {
      for (std::size_t n = upto(5); n > 0; --n) {
        const double r = std::uniform_real_distribution<double>(0, 1)(rng);
        path += "/";
        if (r < 0.45) path += encoded(pick(raw_segments));
        else if (r < 0.6) path += pick(literal_segments);
        else if (r < 0.72) path += ".";
        else if (r < 0.84) path += "..";
        // else an empty segment: "//"
      }
      // A dot segment is followed by a name: RFC 3986 keeps the slash of a trailing "/a/.."
      // ("/a/"), which sigv4_sign does and botocore's remove_dot_segments does not ("/a").
      if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0) path += "/x";
      if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/..") == 0) path += "/x";
      if (path.empty() || chance(0.2)) path += "/";
    }
    in.path = path;

    // The query, encoded as a client sends it: name=value, name=, name alone, =value, repeats.
    std::string query;
    for (std::size_t n = chance(0.5) ? upto(5) : 0; n > 0; --n) {
      const std::string name = encoded(pick(query_names));
      const std::size_t form = upto(3);
      std::string item = form == 0 ? name : form == 1 ? name + "=" : name + "=" + encoded(pick(query_values));
      if (item.empty()) item = "=" + encoded(pick(query_values));
      query += (query.empty() ? "" : "&") + item;
      if (chance(0.2)) query += "&" + name + "=" + encoded(pick(query_values));  // a repeated name
    }
    in.query = query;

    in.headers = {{"host", g.host}};
    for (std::size_t n = upto(5); n > 0; --n) {
      const std::string name = pick(header_names);
      in.headers.emplace_back(name, pick(header_values));
      if (chance(0.2)) in.headers.emplace_back(name, pick(header_values));  // a repeated header
    }

    const std::size_t body_kind = upto(3);
    if (body_kind == 1) {
      in.body = R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"héllo"}]})";
    } else if (body_kind >= 2) {
      for (std::size_t n = upto(300); n > 0; --n) in.body.push_back(static_cast<char>(upto(255)));  // binary, NULs too
    }

    in.credentials.access_key_id = chance(0.5) ? "AKIDEXAMPLE" : "ASIA" + std::to_string(100000 + i);
    in.credentials.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY" + std::to_string(i) + "EXAMPLEKEY";
    if (chance(0.4)) in.credentials.session_token = "IQoJb3JpZ2luX2VjE/+" + std::to_string(i * 7919) + "==";
    // A time between 2015 and 2035.
    in.timestamp = re::detail::sigv4_timestamp(std::chrono::system_clock::from_time_t(
        static_cast<std::time_t>(1420070400 + upto(630720000))));
    g.name = "case " + std::to_string(i) + " (" + in.method + " " + in.service + " " + in.path +
             (in.query.empty() ? "" : "?" + in.query) + ")";
    cases.push_back(std::move(g));
  }
  return cases;
}

std::string hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace sigv4_generated
}  // namespace

TEST_CASE("sigv4: sigv4_sign and botocore sign 400 generated requests byte for byte alike") {
  namespace g = sigv4_generated;
  const std::vector<g::generated> cases = g::make_cases(400);
  const std::string dir = make_temp_dir("sigv4-botocore");
  {
    std::ofstream f(dir + "/cases.jsonl", std::ios::binary);
    for (const auto& c : cases) {
      json headers = json::array();
      for (const auto& kv : c.in.headers) headers.push_back({kv.first, kv.second});
      f << json{{"name", c.name},
                {"method", c.in.method},
                {"host", c.host},
                {"path", c.in.path},
                {"query", c.in.query},
                {"headers", headers},
                {"body_hex", g::hex(c.in.body)},
                {"access_key_id", c.in.credentials.access_key_id},
                {"secret_access_key", c.in.credentials.secret_access_key},
                {"session_token", c.in.credentials.session_token},
                {"region", c.in.region},
                {"service", c.in.service},
                {"timestamp", c.in.timestamp}}
               .dump()
        << '\n';
    }
  }
  const reference::run_result r = reference::run("sigv4_botocore.py", {dir + "/cases.jsonl"}, dir);
  if (!reference::ran(r)) return;

  std::vector<json> signed_by_botocore;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) signed_by_botocore.push_back(json::parse(line));
  REQUIRE(signed_by_botocore.size() == cases.size());

  std::size_t same = 0, with_token = 0, bedrock = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const g::generated& c = cases[i];
    const json& theirs = signed_by_botocore[i];
    REQUIRE(theirs["name"] == c.name);
    const re::detail::sigv4_output ours = re::detail::sigv4_sign(c.in);
    std::string date, token;
    for (const auto& kv : ours.added_headers) {
      if (kv.first == "X-Amz-Date") date = kv.second;
      if (kv.first == "X-Amz-Security-Token") token = kv.second;
    }
    const bool alike = ours.authorization == theirs["authorization"] && date == theirs["x_amz_date"] &&
                       token == theirs["x_amz_security_token"];
    CHECK_MESSAGE(alike, c.name << " signs differently.\nsigv4_sign:  " << ours.authorization << "\nbotocore:    "
                                << theirs["authorization"].get<std::string>() << "\n-- canonical request, sigv4_sign:\n"
                                << ours.canonical_request << "\n-- canonical request, botocore:\n"
                                << theirs["canonical_request"].get<std::string>());
    same += alike ? 1 : 0;
    with_token += c.in.credentials.session_token.empty() ? 0 : 1;
    bedrock += c.in.service == "bedrock" ? 1 : 0;
  }
  MESSAGE(same << " of " << cases.size() << " generated requests signed alike by sigv4_sign and "
               << r.err.substr(0, r.err.find('\n')) << " (" << with_token << " with a session token, " << bedrock << " for Bedrock)");
  CHECK(with_token > 100);
  CHECK(bedrock > 100);
}

TEST_CASE("sigv4: HMAC-SHA256, timestamps, encoding and the signer's own headers") {
  // RFC 4231, test case 2.
  const std::string mac = re::detail::hmac_sha256("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (char ch : mac) {
    static const char* digits = "0123456789abcdef";
    hex.push_back(digits[static_cast<unsigned char>(ch) >> 4]);
    hex.push_back(digits[static_cast<unsigned char>(ch) & 0x0f]);
  }
  CHECK(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

  CHECK(re::detail::sigv4_timestamp(std::chrono::system_clock::from_time_t(1440938160)) == "20150830T123600Z");
  CHECK(re::detail::aws_uri_encode("a b/c:d~e%", true) == "a%20b%2Fc%3Ad~e%25");
  CHECK(re::detail::aws_uri_encode("a b/c", false) == "a%20b/c");

  // Headers the signer adds replace stale ones given to it, so a re-sign is stable.
  re::detail::sigv4_input in;
  in.path = "/";
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "19990101T000000Z"}, {"Authorization", "old"}};
  in.credentials = aws_test::credentials();
  in.region = "us-east-1";
  in.service = "bedrock";
  in.timestamp = "20240102T030405Z";
  const auto out = re::detail::sigv4_sign(in);
  CHECK(out.canonical_request.find("19990101") == std::string::npos);
  CHECK(out.canonical_request.find("x-amz-date:20240102T030405Z\n") != std::string::npos);
  CHECK(out.canonical_request.find(std::string("x-amz-security-token:") + aws_test::session_token + "\n") !=
        std::string::npos);
  CHECK(out.authorization.find("SignedHeaders=host;x-amz-date;x-amz-security-token,") != std::string::npos);
  CHECK(out.authorization.find(aws_test::secret_key) == std::string::npos);
  REQUIRE(out.added_headers.size() == 2);
  CHECK(out.added_headers[0].first == "X-Amz-Security-Token");
  CHECK(out.added_headers[1] == std::make_pair(std::string("X-Amz-Date"), std::string("20240102T030405Z")));
  in.credentials.secret_access_key = "another-secret-key";
  CHECK(re::detail::sigv4_sign(in).signature != out.signature);
}

TEST_CASE("bedrock_anthropic: construction, body, cache identity and errors without a server") {
  using aws_test::credentials;
  CHECK_THROWS_WITH_AS(re::bedrock_anthropic(credentials(), "", aws_test::model_id),
                       doctest::Contains("region"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(re::bedrock_anthropic(credentials(), "us-east-1.evil.com/", aws_test::model_id),
                       doctest::Contains("region"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(re::bedrock_anthropic(credentials(), "us-east-1", ""), doctest::Contains("model id"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(re::bedrock_anthropic(re::aws_credentials{aws_test::access_key, "", ""}, "us-east-1",
                                             aws_test::model_id),
                       doctest::Contains("secret access key"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(re::bedrock_anthropic(re::aws_credentials{"", aws_test::secret_key, ""}, "us-east-1",
                                             aws_test::model_id),
                       doctest::Contains("access key id"), std::invalid_argument);
  CHECK_THROWS_AS(re::bedrock_anthropic(credentials(), "us-east-1", aws_test::model_id, "ftp://x"),
                  std::invalid_argument);

  re::bedrock_anthropic p(credentials(), "eu-west-3", aws_test::model_id);
  CHECK(p.endpoint() == std::string("https://bedrock-runtime.eu-west-3.amazonaws.com") + aws_test::wire_path);
  re::bedrock_anthropic arn(credentials(), "us-east-1",
                            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5");
  CHECK(arn.endpoint() ==
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5/invoke");
  re::bedrock_anthropic gateway(credentials(), "us-east-1", aws_test::model_id, "http://127.0.0.1:8080/bedrock/");
  CHECK(gateway.endpoint() == std::string("http://127.0.0.1:8080/bedrock") + aws_test::wire_path);
  CHECK(re::find_header(gateway.make_request("{}").headers, "Host") == "127.0.0.1:8080");

  auto body = p.make_body(re::conversation().system("Be brief").user("Hi"), re::params().temperature(0.5));
  REQUIRE(body);
  CHECK((*body)["anthropic_version"] == "bedrock-2023-05-31");
  CHECK_FALSE(body->contains("model"));
  CHECK((*body)["system"] == "Be brief");
  CHECK((*body)["max_tokens"] == 4096);
  CHECK((*body)["messages"][0]["content"] == "Hi");

  auto same = p.make_body(re::conversation().user("Hi"), re::params().model(aws_test::model_id));
  CHECK(same);
  auto other = p.make_body(re::conversation().user("Hi"), re::params().model("anthropic.claude-3-haiku-20240307-v1:0"));
  REQUIRE_FALSE(other);
  CHECK(other.error().code == re::error_code::invalid_request);
  CHECK(other.error().message.find("bedrock_anthropic") != std::string::npos);
  CHECK(other.error().message.find("one provider per model") != std::string::npos);
  auto audio = p.make_body(
      re::conversation().add(re::message{re::role::user, {re::content_part::audio_bytes("RIFF", "wav")}}), {});
  REQUIRE_FALSE(audio);
  CHECK(audio.error().message.find("bedrock_anthropic: ") == 0);
  CHECK(audio.error().message.find("audio") != std::string::npos);

  const std::string identity = p.cache_identity().dump();
  CHECK(p.cache_identity()["kind"] == "bedrock_anthropic");
  CHECK(p.cache_identity()["model"] == aws_test::model_id);
  CHECK(p.cache_identity()["anthropic_version"] == "bedrock-2023-05-31");
  CHECK(p.cache_identity()["endpoint"] == p.endpoint());
  CHECK(identity.find(aws_test::secret_key) == std::string::npos);
  CHECK(identity.find(aws_test::session_token) == std::string::npos);
  CHECK(identity != re::bedrock_anthropic(credentials(), "eu-west-3", "anthropic.claude-3-haiku-20240307-v1:0")
                        .cache_identity()
                        .dump());
  const auto secrets = p.secrets();
  CHECK(std::find(secrets.begin(), secrets.end(), aws_test::secret_key) != secrets.end());
  CHECK(std::find(secrets.begin(), secrets.end(), aws_test::session_token) != secrets.end());

  auto error_for = [&](int status, const std::string& type) {
    re::http_response r;
    r.status = status;
    r.headers = {{"x-amzn-ErrorType", type + ":http://internal.amazon.com/coral/com.amazon.bedrock/"}};
    r.body = R"({"message":"something went wrong"})";
    auto c = p.parse_response(r);
    REQUIRE_FALSE(c);
    CHECK(c.error().provider_code == type);
    CHECK(c.error().message == "something went wrong");
    CHECK(c.error().http_status == status);
    return c.error().code;
  };
  CHECK(error_for(429, "ThrottlingException") == re::error_code::rate_limited);
  CHECK(error_for(503, "ServiceUnavailableException") == re::error_code::server_error);
  CHECK(error_for(400, "ValidationException") == re::error_code::bad_request);
  CHECK(error_for(403, "AccessDeniedException") == re::error_code::permission_denied);
  CHECK(error_for(403, "UnrecognizedClientException") == re::error_code::authentication);
  CHECK(error_for(408, "ModelTimeoutException") == re::error_code::timeout);

  // "Message" capitalised is read too; an empty one (a fuzzer's find, with a status line that
  // gave no status) must not leave the error without a message.
  for (int status : {0, 400, 500}) {
    CAPTURE(status);
    re::http_response r;
    r.status = status;
    r.body = R"({"Message":"capitalised"})";
    auto c = p.parse_response(r);
    REQUIRE_FALSE(c);
    CHECK(c.error().message == "capitalised");
    for (const char* error_body : {R"({"Message":""})", R"({"message":""})", R"({"Message":"","message":""})"}) {
      CAPTURE(error_body);
      r.body = error_body;
      c = p.parse_response(r);
      REQUIRE_FALSE(c);
      CHECK_FALSE(c.error().message.empty());
    }
  }
}

TEST_CASE("bedrock_anthropic: credentials and region from the environment") {
  using aws_test::scoped_env;
  scoped_env id("AWS_ACCESS_KEY_ID", aws_test::access_key);
  scoped_env secret("AWS_SECRET_ACCESS_KEY", aws_test::secret_key);
  scoped_env token("AWS_SESSION_TOKEN", nullptr);
  scoped_env region("AWS_REGION", nullptr);
  scoped_env default_region("AWS_DEFAULT_REGION", "ap-northeast-1");

  auto c = re::aws_credentials::from_environment();
  CHECK(c.access_key_id == aws_test::access_key);
  CHECK(c.secret_access_key == aws_test::secret_key);
  CHECK(c.session_token.empty());
  CHECK(re::aws_region_from_environment() == "ap-northeast-1");
  {
    scoped_env r("AWS_REGION", "us-west-2");
    scoped_env t("AWS_SESSION_TOKEN", aws_test::session_token);
    CHECK(re::aws_region_from_environment() == "us-west-2");
    CHECK(re::aws_credentials::from_environment().session_token == aws_test::session_token);
    auto p = re::bedrock_anthropic::from_environment(aws_test::model_id);
    CHECK(p.region() == "us-west-2");
    CHECK(re::find_header(p.make_request("{}").headers, "X-Amz-Security-Token") == aws_test::session_token);
  }
  {
    scoped_env gone("AWS_SECRET_ACCESS_KEY", nullptr);
    CHECK_THROWS_WITH_AS(re::aws_credentials::from_environment(), doctest::Contains("AWS_SECRET_ACCESS_KEY"),
                         std::invalid_argument);
  }
  {
    scoped_env gone("AWS_ACCESS_KEY_ID", nullptr);
    CHECK_THROWS_WITH_AS(re::aws_credentials::from_environment(), doctest::Contains("AWS_ACCESS_KEY_ID"),
                         std::invalid_argument);
  }
  {
    scoped_env gone("AWS_DEFAULT_REGION", nullptr);
    CHECK(re::aws_region_from_environment().empty());
    CHECK_THROWS_WITH_AS(re::bedrock_anthropic::from_environment(aws_test::model_id), doctest::Contains("AWS_REGION"),
                         std::invalid_argument);
  }
}

TEST_CASE("bedrock_anthropic end to end over HTTPS: path, headers, a signature the server verifies") {
  const auto& pki = aws_test::test_pki();
  aws_test::bedrock_server server(
      [](const httplib::Request&, httplib::Response& res, std::size_t) {
        res.set_content(aws_test::messages_answer("Hello from Bedrock"), "application/json");
      },
      &pki);
  REQUIRE(server.base_url().rfind("https://", 0) == 0);
  re::bedrock_anthropic provider(aws_test::credentials(), "us-east-1", aws_test::model_id, server.base_url());
  const std::string before = re::detail::sigv4_timestamp(std::chrono::system_clock::now());
  std::vector<re::result<re::completion>> results;
  {
    re::engine<re::bedrock_anthropic> engine(provider, re::options().concurrency(1).ca_cert_file(pki.ca_cert));
    results = engine.run({re::conversation().system("Be brief").user("Say hello")}, re::params().max_tokens(64));
  }
  const std::string after = re::detail::sigv4_timestamp(std::chrono::system_clock::now());

  REQUIRE(results.size() == 1);
  REQUIRE_MESSAGE(results[0], aws_test::errors_text(results));
  CHECK(results[0]->text == "Hello from Bedrock");
  CHECK(results[0]->finish_reason == "end_turn");
  CHECK(results[0]->usage.input_tokens == 12);
  CHECK(results[0]->usage.output_tokens == 5);
  CHECK(results[0]->attempts == 1);

  const auto log = server.log();
  REQUIRE(log.size() == 1);
  const aws_test::received& got = log[0];
  CHECK(got.method == "POST");
  CHECK(got.target == aws_test::wire_path);
  const std::string auth = re::find_header(got.headers, "Authorization");
  CHECK(auth.rfind(std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") + before.substr(0, 8) +
                       "/us-east-1/bedrock/aws4_request, SignedHeaders=",
                   0) == 0);
  CHECK(auth.find("SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=") !=
        std::string::npos);
  const std::string date = re::find_header(got.headers, "X-Amz-Date");
  CHECK(date.size() == 16);
  CHECK(date >= before);
  CHECK(date <= after);
  CHECK(re::find_header(got.headers, "x-amz-security-token") == aws_test::session_token);
  CHECK(re::find_header(got.headers, "Host") == server.base_url().substr(8));
  CHECK(re::find_header(got.headers, "Content-Type") == "application/json");
  CHECK(re::find_header(got.headers, "Accept") == "application/json");
  for (const auto& kv : got.headers) CHECK(kv.second.find(aws_test::secret_key) == std::string::npos);

  CHECK(aws_test::verify_signature(got, aws_test::secret_key) == "");
  CHECK(aws_test::verify_signature(got, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY") != "");
  aws_test::received tampered = got;
  tampered.body += " ";
  CHECK(aws_test::verify_signature(tampered, aws_test::secret_key) != "");

  const re::json body = re::json::parse(got.body);
  CHECK(body["anthropic_version"] == "bedrock-2023-05-31");
  CHECK_FALSE(body.contains("model"));
  CHECK(body["max_tokens"] == 64);
  CHECK(body["system"] == "Be brief");
  CHECK(body["messages"] == re::json::parse(R"([{"role":"user","content":"Say hello"}])"));
}

TEST_CASE("bedrock_anthropic: a 503 then success is two attempts, each freshly signed and verified") {
  aws_test::bedrock_server server([](const httplib::Request&, httplib::Response& res, std::size_t n) {
    if (n == 1) {
      // Retry-After: 1 puts the attempts in different seconds, so their X-Amz-Date differ.
      res.set_header("Retry-After", "1");
      aws_test::bedrock_error(res, 503, "ServiceUnavailableException", "Bedrock is unable to process your request.");
      return;
    }
    res.set_content(aws_test::messages_answer("second time lucky"), "application/json");
  });
  re::bedrock_anthropic provider(aws_test::credentials(false), "us-east-1", aws_test::model_id, server.base_url());
  std::vector<re::result<re::completion>> results;
  {
    re::engine<re::bedrock_anthropic> engine(provider, re::options().concurrency(1).max_retries(2));
    results = engine.run({re::conversation().user("retry me")});
  }
  REQUIRE_MESSAGE(results[0], aws_test::errors_text(results));
  CHECK(results[0]->text == "second time lucky");
  CHECK(results[0]->attempts == 2);
  const auto log = server.log();
  REQUIRE(log.size() == 2);
  for (const auto& got : log) {
    CHECK(aws_test::verify_signature(got, aws_test::secret_key) == "");
    CHECK(re::find_header(got.headers, "x-amz-security-token").empty());
    CHECK(re::find_header(got.headers, "Authorization").find("SignedHeaders=accept;content-type;host;x-amz-date,") !=
          std::string::npos);
  }
  CHECK(re::find_header(log[0].headers, "X-Amz-Date") < re::find_header(log[1].headers, "X-Amz-Date"));
  CHECK(re::find_header(log[0].headers, "Authorization") != re::find_header(log[1].headers, "Authorization"));
  CHECK(log[0].body == log[1].body);
}

TEST_CASE("bedrock_anthropic: throttling (429) is retried; a ValidationException (400) is not") {
  std::atomic<int> throttle_left{1};
  aws_test::bedrock_server server([&](const httplib::Request& req, httplib::Response& res, std::size_t) {
    const auto body = re::json::parse(req.body);
    const std::string text = body["messages"][0]["content"].get<std::string>();
    if (text == "invalid") {
      aws_test::bedrock_error(res, 400, "ValidationException",
                              "Malformed input request: #: extraneous key [bogus] is not permitted, please reformat "
                              "your input and try again.");
      return;
    }
    if (text == "always throttled" || throttle_left.fetch_sub(1) > 0) {
      res.set_header("Retry-After", "0");
      aws_test::bedrock_error(res, 429, "ThrottlingException", "Too many requests, please wait before trying again.");
      return;
    }
    res.set_content(aws_test::messages_answer("after throttling"), "application/json");
  });
  re::bedrock_anthropic provider(aws_test::credentials(), "us-east-1", aws_test::model_id, server.base_url());
  std::vector<re::result<re::completion>> results;
  {
    re::engine<re::bedrock_anthropic> engine(provider, re::options().concurrency(1).max_retries(1));
    results = engine.run({re::conversation().user("throttled once")});
    REQUIRE_MESSAGE(results[0], aws_test::errors_text(results));
    CHECK(results[0]->text == "after throttling");
    CHECK(results[0]->attempts == 2);

    results = engine.run({re::conversation().user("always throttled"), re::conversation().user("invalid")});
  }
  REQUIRE(results.size() == 2);
  REQUIRE_FALSE(results[0]);
  CHECK(results[0].error().code == re::error_code::rate_limited);
  CHECK(results[0].error().http_status == 429);
  CHECK(results[0].error().provider_code == "ThrottlingException");
  CHECK(results[0].error().message == "Too many requests, please wait before trying again.");
  CHECK(results[0].error().attempts == 2);
  REQUIRE_FALSE(results[1]);
  CHECK(results[1].error().code == re::error_code::bad_request);
  CHECK(results[1].error().http_status == 400);
  CHECK(results[1].error().provider_code == "ValidationException");
  CHECK(results[1].error().message.find("Malformed input request") == 0);
  CHECK(results[1].error().attempts == 1);
  for (const auto& got : server.log()) CHECK(aws_test::verify_signature(got, aws_test::secret_key) == "");
}

TEST_CASE("bedrock_anthropic: an image as bytes, and structured output through a forced tool") {
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  aws_test::bedrock_server server([&](const httplib::Request& req, httplib::Response& res, std::size_t) {
    const auto body = re::json::parse(req.body);
    if (body.contains("tool_choice")) {
      res.set_content(re::json{{"id", "msg_bdrk_02"},
                               {"type", "message"},
                               {"role", "assistant"},
                               {"model", "claude-3-5-sonnet-20240620"},
                               {"content", re::json::array({{{"type", "tool_use"},
                                                             {"id", "toolu_01"},
                                                             {"name", "city"},
                                                             {"input", {{"name", "Paris"}, {"population", 2102650}}}}})},
                               {"stop_reason", "tool_use"},
                               {"usage", {{"input_tokens", 40}, {"output_tokens", 20}}}}
                          .dump(),
                      "application/json");
      return;
    }
    res.set_content(aws_test::messages_answer("a tiny PNG"), "application/json");
  });
  re::bedrock_anthropic provider(aws_test::credentials(), "us-east-1", aws_test::model_id, server.base_url());
  const re::json schema = re::json::parse(
      R"({"type":"object","properties":{"name":{"type":"string"},"population":{"type":"integer"}},"required":["name","population"]})");
  std::vector<re::result<re::completion>> image, structured;
  {
    re::engine<re::bedrock_anthropic> engine(provider, re::options().concurrency(1).max_retries(0));
    re::message m{re::role::user,
                  {re::content_part::from_text("What is this?"), re::content_part::image_bytes(png, "image/png")}};
    image = engine.run({re::conversation().add(m)});
    structured = engine.run({re::conversation().user("The capital of France?")}, re::params().json_schema("city", schema));
  }
  REQUIRE_MESSAGE(image[0], aws_test::errors_text(image));
  CHECK(image[0]->text == "a tiny PNG");
  REQUIRE_MESSAGE(structured[0], aws_test::errors_text(structured));
  CHECK(re::json::parse(structured[0]->text) == re::json{{"name", "Paris"}, {"population", 2102650}});
  CHECK(structured[0]->finish_reason == "tool_use");
  CHECK(structured[0]->usage.input_tokens == 40);

  const auto log = server.log();
  REQUIRE(log.size() == 2);
  const re::json first = re::json::parse(log[0].body);
  CHECK(first["messages"][0]["content"][0] == re::json{{"type", "text"}, {"text", "What is this?"}});
  CHECK(first["messages"][0]["content"][1] ==
        re::json{{"type", "image"},
                 {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", re::detail::base64_encode(png)}}}});
  const re::json second = re::json::parse(log[1].body);
  CHECK(second["tool_choice"] == re::json{{"type", "tool"}, {"name", "city"}});
  CHECK(second["tools"][0]["name"] == "city");
  CHECK(second["tools"][0]["input_schema"] == schema);
  CHECK(second["anthropic_version"] == "bedrock-2023-05-31");
  for (const auto& got : log) CHECK(aws_test::verify_signature(got, aws_test::secret_key) == "");
}

TEST_CASE("bedrock_anthropic: the secret key, the session token and the key id never reach an error") {
  aws_test::bedrock_server server([](const httplib::Request& req, httplib::Response& res, std::size_t) {
    // A hostile or buggy front end that echoes credentials back in its message.
    aws_test::bedrock_error(res, 403, "InvalidSignatureException",
                            std::string("The request signature we calculated does not match. Secret ") +
                                aws_test::secret_key + ", token " + aws_test::session_token + ", key " +
                                aws_test::access_key + ", you sent " + req.get_header_value("Authorization"));
  });
  re::bedrock_anthropic provider(aws_test::credentials(), "us-east-1", aws_test::model_id, server.base_url());
  std::vector<re::result<re::completion>> results;
  {
    re::engine<re::bedrock_anthropic> engine(provider, re::options().concurrency(1).max_retries(0));
    results = engine.run({re::conversation().user("leak please")});
  }
  REQUIRE_FALSE(results[0]);
  const re::error& e = results[0].error();
  CHECK(e.code == re::error_code::authentication);
  CHECK(e.provider_code == "InvalidSignatureException");
  CHECK(e.message.find("The request signature we calculated does not match") == 0);
  const std::string text = e.describe() + e.provider_code;
  CHECK(text.find(aws_test::secret_key) == std::string::npos);
  CHECK(text.find(aws_test::session_token) == std::string::npos);
  CHECK(text.find(aws_test::access_key) == std::string::npos);
}
// @end aws-tests

// @section google-tests
namespace google_tests {

std::string scratch(const std::string& name) { return make_temp_dir("google-" + name); }

const mock::tls_files& pki() {
  static const mock::tls_files files = mock::make_test_pki(scratch("pki"));
  return files;
}

// A service-account key made at test time; the loopback token endpoint verifies with it.
struct test_key {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, &EVP_PKEY_free};
  std::string pem;
};
const test_key& rsa_key() {
  static const test_key k = [] {
    test_key t;
    t.key.reset(EVP_RSA_gen(2048));
    if (!t.key) throw std::runtime_error("cannot generate an RSA key");
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (PEM_write_bio_PrivateKey(bio.get(), t.key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
      throw std::runtime_error("cannot write the RSA key");
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    t.pem.assign(data, static_cast<std::size_t>(len));
    return t;
  }();
  return k;
}

std::string base64url_decode(std::string s) {
  for (char& ch : s) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  const std::size_t pad = (4 - s.size() % 4) % 4;
  s.append(pad, '=');
  std::string out(s.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// The checks a Google token endpoint makes on a JWT-bearer assertion; empty when it passes.
std::string check_assertion(const std::string& jwt, const std::string& audience) {
  const auto dot1 = jwt.find('.'), dot2 = jwt.rfind('.');
  if (dot1 == std::string::npos || dot1 == dot2) return "not three segments";
  const re::json header = re::json::parse(base64url_decode(jwt.substr(0, dot1)), nullptr, false);
  const re::json claims = re::json::parse(base64url_decode(jwt.substr(dot1 + 1, dot2 - dot1 - 1)), nullptr, false);
  if (header.value("alg", "") != "RS256" || header.value("typ", "") != "JWT" || header.value("kid", "") != "key-7")
    return "bad header " + header.dump();
  if (claims.value("iss", "") != "robot@test-project.iam.gserviceaccount.com" || claims.value("aud", "") != audience ||
      claims.value("scope", "") != "https://www.googleapis.com/auth/cloud-platform")
    return "bad claims " + claims.dump();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const std::int64_t iat = claims.value("iat", std::int64_t{0});
  if (claims.value("exp", std::int64_t{0}) != iat + 3600 || iat < now - 60 || iat > now + 5) return "bad times";
  const std::string input = jwt.substr(0, dot2), sig = base64url_decode(jwt.substr(dot2 + 1));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, rsa_key().key.get()) == 1 &&
                  EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                   reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  return ok ? std::string() : "bad signature";
}

// HTTPS on loopback with the test CA, one port for the token endpoint and the model API.
class server {
 public:
  server() : svr_(pki().server_cert.c_str(), pki().server_key.c_str()) {
    svr_.new_task_queue = [] { return new httplib::ThreadPool(48); };
    svr_.set_keep_alive_timeout(10);  // outlives the test's pause for token expiry
  }
  ~server() { stop(); }
  httplib::Server& http() { return svr_; }
  void start() {
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    ::listen(svr_.listen_socket(), SOMAXCONN);  // httplib's backlog of 5 is too short for 32 connects at once
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void stop() {
    if (!thread_.joinable()) return;
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  mock::detail::listener<httplib::SSLServer> svr_;
  std::thread thread_;
  int port_ = 0;
};

// A token endpoint at /token that checks the request as Google does and counts the tokens it gives.
struct token_endpoint {
  std::atomic<int> requests{0};
  std::atomic<int> expires_in{3599};
  std::atomic<int> delay_ms{0};
  std::mutex m;
  std::vector<std::string> problems;
  std::function<bool(const httplib::Request&, httplib::Response&)> fault;  // set before start

  void install(server& s) {
    s.http().Post("/token", [this, &s](const httplib::Request& req, httplib::Response& res) {
      const int n = ++requests;
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
      if (fault && fault(req, res)) return;
      const std::string prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
      std::string problem;
      if (req.get_header_value("Content-Type") != "application/x-www-form-urlencoded")
        problem = "content type " + req.get_header_value("Content-Type");
      else if (req.body.compare(0, prefix.size(), prefix) != 0)
        problem = "body " + req.body.substr(0, 100);
      else
        problem = check_assertion(req.body.substr(prefix.size()), s.url() + "/token");
      if (!problem.empty()) {
        std::lock_guard<std::mutex> lock(m);
        problems.push_back(problem);
        res.status = 400;
        res.set_content(re::json{{"error", "invalid_grant"}, {"error_description", "test: " + problem}}.dump(),
                        "application/json");
        return;
      }
      res.set_content(re::json{{"access_token", "ya29.token-" + std::to_string(n)},
                               {"expires_in", expires_in.load()},
                               {"token_type", "Bearer"}}.dump(),
                      "application/json");
    });
  }
};

re::google_service_account account_for(const server& s) {
  const std::string path = scratch("sa") + "/key.json";
  std::ofstream(path) << re::json{{"type", "service_account"},
                                  {"project_id", "test-project"},
                                  {"private_key_id", "key-7"},
                                  {"private_key", rsa_key().pem},
                                  {"client_email", "robot@test-project.iam.gserviceaccount.com"},
                                  {"client_id", "1234"},
                                  {"token_uri", s.url() + "/token"}}.dump(2);
  return re::google_service_account::from_file(path);
}

std::shared_ptr<re::google_token_source> tokens_for(const server& s) {
  auto t = std::make_shared<re::google_token_source>(account_for(s));
  t->ca_cert_file(pki().ca_cert);
  return t;
}

re::options engine_options(std::size_t concurrency = 4) {
  return re::options().concurrency(concurrency).ca_cert_file(pki().ca_cert).max_retries(0).progress_bar(false);
}

std::string errors_of(const std::vector<re::result<re::completion>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + "\n";
  return s;
}

const char* const gemini_answer = R"({
  "candidates": [{"content": {"role": "model", "parts": [{"text": "thinking...", "thought": true},
                                                          {"text": "Hello"}, {"text": " there"}]},
                  "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 7, "thoughtsTokenCount": 30,
                    "cachedContentTokenCount": 100, "totalTokenCount": 157},
  "modelVersion": "gemini-2.0-flash-001"})";

// A model API endpoint: records each request, answers with what the test set last.
struct api_endpoint {
  std::mutex m;
  int status = 200;
  std::string answer;
  std::vector<re::json> bodies;
  std::vector<httplib::Headers> headers;

  void install(server& s, const std::string& path) {
    s.http().Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(m);
      bodies.push_back(re::json::parse(req.body, nullptr, false));
      headers.push_back(req.headers);
      res.status = status;
      res.set_content(answer, "application/json");
    });
  }
  void reply(int code, std::string body) {
    std::lock_guard<std::mutex> lock(m);
    status = code;
    answer = std::move(body);
  }
  re::json last_body() {
    std::lock_guard<std::mutex> lock(m);
    return bodies.empty() ? re::json() : bodies.back();
  }
  std::string last_header(const char* name) {
    std::lock_guard<std::mutex> lock(m);
    if (headers.empty()) return {};
    auto it = headers.back().find(name);
    return it == headers.back().end() ? std::string() : it->second;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(m);
    return bodies.size();
  }
};

// One user message with text, an image as bytes, an image by URL and audio.
re::message multimodal_message() {
  return re::message{re::role::user,
                     {re::content_part::from_text("What is in these?"),
                      re::content_part::image_bytes(std::string("\x89PNG\r\n", 6), "image/png"),
                      re::content_part::image_url("gs://bucket/cat.jpg"),
                      re::content_part::audio_bytes("RIFFxxxx", "wav")}};
}

const re::json city_schema = {{"type", "object"},
                              {"properties", {{"city", {{"type", "string"}}}}},
                              {"required", {"city"}}};

}  // namespace google_tests

TEST_CASE("google: the service-account JWT matches the conformance vector byte for byte") {
  if (!have_conformance()) return;
  const auto dir = conformance_dir() / "google";
  const re::json vector = re::json::parse(slurp(dir / "jwt-vector.json"));
  re::google_service_account sa = re::google_service_account::from_file((dir / "service_account.json").string());
  CHECK(sa.client_email == "service-account@example.com");
  CHECK(sa.private_key_id == "1");
  CHECK(sa.project_id == "example-project");
  // The test file names Google's old token URI; the vector was made for today's, which the
  // assertion carries as its audience.
  CHECK(sa.token_uri == "https://accounts.google.com/o/oauth2/token");
  sa.token_uri = vector["claims"]["aud"].get<std::string>();
  auto jwt = sa.jwt_assertion(vector["claims"]["iat"].get<std::int64_t>());
  REQUIRE_MESSAGE(jwt, (jwt ? "" : jwt.error().message));
  CHECK(jwt->compare(0, vector["signing_input"].get<std::string>().size(), vector["signing_input"].get<std::string>()) == 0);
  CHECK(*jwt == vector["assertion"].get<std::string>());
}

TEST_CASE("google: google-auth verifies the JWT assertion made for a key generated here") {
  namespace gt = google_tests;
  const std::string dir = gt::scratch("google-auth");
  const json account = {{"type", "service_account"},
                        {"project_id", "test-project"},
                        {"private_key_id", "key-" + std::to_string(std::time(nullptr))},
                        {"private_key", gt::rsa_key().pem},
                        {"client_email", "batch-runner@test-project.iam.gserviceaccount.com"},
                        {"token_uri", "https://oauth2.googleapis.com/token"}};
  std::ofstream(dir + "/key.json") << account.dump();
  const re::google_service_account sa = re::google_service_account::from_file(dir + "/key.json");

  const std::int64_t now = std::time(nullptr);
  const auto good = sa.jwt_assertion(now);
  REQUIRE_MESSAGE(good, (good ? "" : good.error().message));
  // Controls that google-auth must refuse: one signature byte changed; signed by another key;
  // a token_uri that is not the key file's (the audience).
  std::string tampered = *good;
  char& last = tampered[tampered.size() - 2];
  last = last == 'A' ? 'B' : 'A';
  re::google_service_account other = sa;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> other_key(EVP_RSA_gen(2048), &EVP_PKEY_free);
  REQUIRE(other_key);
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    REQUIRE(PEM_write_bio_PrivateKey(bio.get(), other_key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    other.private_key.assign(data, static_cast<std::size_t>(len));
  }
  const auto wrong_key = other.jwt_assertion(now);
  re::google_service_account elsewhere = sa;
  elsewhere.token_uri = "https://example.com/token";
  const auto wrong_audience = elsewhere.jwt_assertion(now);
  REQUIRE(wrong_key);
  REQUIRE(wrong_audience);
  std::ofstream(dir + "/assertions.txt") << *good << '\n' << tampered << '\n' << *wrong_key << '\n' << *wrong_audience << '\n';

  const reference::run_result r =
      reference::run("google_jwt_verify.py", {dir + "/key.json", re::google_service_account::cloud_platform_scope,
                                              dir + "/assertions.txt"}, dir);
  if (!reference::ran(r)) return;
  std::vector<json> verdicts;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) verdicts.push_back(json::parse(line));
  REQUIRE(verdicts.size() == 4);
  CHECK_MESSAGE(verdicts[0]["ok"] == true, verdicts[0]["problems"].dump());
  CHECK(verdicts[0]["header"]["kid"] == account["private_key_id"]);
  CHECK(verdicts[0]["claims"]["iss"] == account["client_email"]);
  CHECK(verdicts[0]["claims"]["aud"] == account["token_uri"]);
  CHECK(verdicts[0]["claims"]["scope"] == "https://www.googleapis.com/auth/cloud-platform");
  CHECK(verdicts[0]["claims"]["iat"] == now);
  CHECK(verdicts[0]["claims"]["exp"] == now + 3600);
  for (std::size_t i = 1; i < 4; ++i) {
    CAPTURE(i);
    CHECK(verdicts[i]["ok"] == false);
    CHECK(verdicts[i]["problems"].dump().find("google.auth.jwt.decode") != std::string::npos);
  }
}

TEST_CASE("google: a bad service-account file is refused, naming the file and the field, never the key") {
  namespace gt = google_tests;
  const std::string dir = gt::scratch("bad-sa");
  const std::string key_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
  const re::json good = {{"type", "service_account"}, {"project_id", "p"}, {"private_key_id", "k"},
                         {"private_key", gt::rsa_key().pem}, {"client_email", "a@b.c"},
                         {"token_uri", "https://oauth2.googleapis.com/token"}};
  auto refused = [&](const re::json& j) {
    const std::string path = dir + "/key.json";
    std::ofstream(path, std::ios::trunc) << j.dump();
    try {
      (void)re::google_service_account::from_file(path);
    } catch (const std::invalid_argument& e) {
      std::string what = e.what();
      CHECK(what.find(path) != std::string::npos);
      CHECK(what.find(key_body) == std::string::npos);
      CHECK(what.find(gt::rsa_key().pem.substr(40, 40)) == std::string::npos);
      return what;
    }
    FAIL("accepted");
    return std::string();
  };
  CHECK_NOTHROW((void)re::google_service_account::from_file((std::ofstream(dir + "/ok.json") << good.dump(), dir + "/ok.json")));
  re::json j = good;
  j.erase("private_key");
  CHECK(refused(j).find("missing field 'private_key'") != std::string::npos);
  j = good;
  j["private_key"] = "-----BEGIN PRIVATE KEY-----\n" + key_body + "\n-----END PRIVATE KEY-----\n";
  CHECK(refused(j).find("'private_key' is not") != std::string::npos);
  j = good;
  j.erase("client_email");
  CHECK(refused(j).find("'client_email'") != std::string::npos);
  j = good;
  j["token_uri"] = "ftp://x";
  CHECK(refused(j).find("'token_uri'") != std::string::npos);
  j = good;
  j["type"] = "authorized_user";
  CHECK(refused(j).find("authorized_user") != std::string::npos);
  CHECK_THROWS_AS((void)re::google_service_account::from_file(dir + "/missing.json"), std::invalid_argument);

  ::setenv("GOOGLE_APPLICATION_CREDENTIALS", (dir + "/ok.json").c_str(), 1);
  CHECK(re::google_service_account::from_environment().client_email == "a@b.c");
  ::unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  CHECK_THROWS_WITH_AS((void)re::google_service_account::from_environment(),
                       doctest::Contains("GOOGLE_APPLICATION_CREDENTIALS"), std::invalid_argument);
}

TEST_CASE("google token source: a form POST of the signed assertion to token_uri; the token is kept") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  s.start();
  auto tokens = gt::tokens_for(s);
  auto t = tokens->token();
  REQUIRE_MESSAGE(t, (t ? "" : t.error().describe()));
  CHECK(*t == "ya29.token-1");
  CHECK(te.problems.empty());
  t = tokens->token();
  CHECK(*t == "ya29.token-1");
  CHECK(te.requests == 1);

  SUBCASE("without the test CA the endpoint is not trusted") {
    re::google_token_source untrusting(gt::account_for(s));
    auto u = untrusting.token();
    REQUIRE_FALSE(u);
    CHECK(u.error().code == re::error_code::tls);
  }
  s.stop();
}

TEST_CASE("google token source: 32 concurrent requests fetch one token; after expiry exactly one refresh") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  te.delay_ms = 300;  // every worker asks for a token while the first fetch is under way
  te.expires_in = 3;
  std::mutex m;
  std::map<std::string, int> bearers;
  s.http().Post(R"(/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent)",
                [&](const httplib::Request& req, httplib::Response& res) {
                  {
                    std::lock_guard<std::mutex> lock(m);
                    ++bearers[req.get_header_value("Authorization")];
                  }
                  res.set_content(gt::gemini_answer, "application/json");
                });
  s.start();
  auto tokens = gt::tokens_for(s);
  tokens->refresh_margin(std::chrono::seconds(0));
  {
    re::engine<re::vertex_gemini> engine(re::vertex_gemini(tokens, "us-central1", "gemini-2.0-flash", "", s.url()),
                                         gt::engine_options(32));
    std::vector<re::conversation> batch;
    for (int i = 0; i < 32; ++i) batch.push_back(re::conversation().user("q" + std::to_string(i)));
    const auto started = std::chrono::steady_clock::now();
    auto results = engine.run(batch);
    CHECK_MESSAGE(gt::errors_of(results).empty(), gt::errors_of(results));
    CHECK(te.requests == 1);
    CHECK(bearers == std::map<std::string, int>{{"Bearer ya29.token-1", 32}});

    std::this_thread::sleep_until(started + std::chrono::milliseconds(3500));  // the token has expired
    te.delay_ms = 0;
    for (auto& c : batch) c.user("again");
    results = engine.run(batch);
    CHECK_MESSAGE(gt::errors_of(results).empty(), gt::errors_of(results));
    CHECK(te.requests == 2);
    CHECK(bearers["Bearer ya29.token-2"] == 32);
  }
  CHECK(te.problems.empty());
  s.stop();
}

TEST_CASE("google token source: a failing token endpoint gives a clear error without secrets") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  std::atomic<int> api_requests{0};
  s.http().Post(R"(/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent)",
                [&](const httplib::Request&, httplib::Response& res) {
                  ++api_requests;
                  res.set_content(gt::gemini_answer, "application/json");
                });
  std::string assertion_seen;
  auto check_clean = [&](const re::error& e) {
    CHECK(e.message.find("BEGIN PRIVATE KEY") == std::string::npos);
    CHECK(e.message.find(gt::rsa_key().pem.substr(40, 40)) == std::string::npos);
    CHECK(e.message.find("eyJhbGciOiJSUzI1NiIs") == std::string::npos);  // the start of every assertion
    CHECK(e.message.find("google token endpoint") != std::string::npos);
  };
  SUBCASE("a rejected key: authentication, Google's description, no retry") {
    te.fault = [&](const httplib::Request& req, httplib::Response& res) {
      res.status = 400;
      // A hostile endpoint that echoes the assertion back: it must not reach the error.
      res.set_content(re::json{{"error", "invalid_grant"},
                               {"error_description", "Invalid JWT Signature. " + req.body.substr(req.body.find("assertion=") + 10)}}
                          .dump(),
                      "application/json");
      return true;
    };
    s.start();
    re::engine<re::vertex_gemini> engine(re::vertex_gemini(gt::tokens_for(s), "us-central1", "gemini-2.0-flash", "", s.url()),
                                         gt::engine_options(1).max_retries(2));
    auto results = engine.run({re::conversation().user("hi")});
    REQUIRE_FALSE(results[0]);
    const re::error& e = results[0].error();
    CHECK(e.code == re::error_code::authentication);
    CHECK(e.provider_code == "invalid_grant");
    CHECK(e.message.find("Invalid JWT Signature.") != std::string::npos);
    CHECK(e.message.find("[redacted]") != std::string::npos);
    check_clean(e);
    CHECK(te.requests == 1);
  }
  SUBCASE("a server error: retried, then server_error") {
    te.fault = [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content(R"({"error":"temporarily_unavailable","error_description":"backend down"})", "application/json");
      return true;
    };
    s.start();
    re::engine<re::vertex_gemini> engine(
        re::vertex_gemini(gt::tokens_for(s), "us-central1", "gemini-2.0-flash", "", s.url()),
        gt::engine_options(1).max_retries(2).initial_backoff(std::chrono::milliseconds(10)));
    auto results = engine.run({re::conversation().user("hi")});
    REQUIRE_FALSE(results[0]);
    CHECK(results[0].error().code == re::error_code::server_error);
    CHECK(results[0].error().attempts == 3);
    CHECK(results[0].error().message.find("backend down") != std::string::npos);
    check_clean(results[0].error());
    CHECK(te.requests == 3);
  }
  CHECK(api_requests == 0);
  s.stop();
}

TEST_CASE("google: Vertex AI locations, identities and misuse") {
  namespace gt = google_tests;
  re::google_service_account sa;
  sa.client_email = "robot@test-project.iam.gserviceaccount.com";
  sa.private_key = gt::rsa_key().pem;
  sa.project_id = "test-project";
  sa.token_uri = "https://oauth2.googleapis.com/token";
  re::vertex_gemini regional(sa, "us-east5", "gemini-2.0-flash");
  CHECK(regional.endpoint() ==
        "https://us-east5-aiplatform.googleapis.com/v1/projects/test-project/locations/us-east5/publishers/google/"
        "models/gemini-2.0-flash:generateContent");
  re::vertex_anthropic global(sa, "global", "claude-sonnet-4@20250514", "other-project");
  CHECK(global.endpoint() ==
        "https://aiplatform.googleapis.com/v1/projects/other-project/locations/global/publishers/anthropic/models/"
        "claude-sonnet-4@20250514:rawPredict");
  re::vertex_openai llama(sa, "us-central1", "meta/llama-3.3-70b-instruct-maas");
  CHECK(llama.endpoint() ==
        "https://us-central1-aiplatform.googleapis.com/v1beta1/projects/test-project/locations/us-central1/endpoints/"
        "openapi/chat/completions");
  CHECK(re::gemini("k", "models/gemini-2.5-flash").endpoint() ==
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
  const re::json id = regional.cache_identity();
  CHECK(id["kind"] == "vertex_gemini");
  CHECK(id["model"] == "gemini-2.0-flash");
  CHECK(id.dump().find("BEGIN") == std::string::npos);
  CHECK(regional.secrets() == std::vector<std::string>{sa.private_key});
  // Copies share one token source.
  re::vertex_gemini copy = regional;
  CHECK(copy.tokens() == regional.tokens());

  CHECK_THROWS_WITH_AS(re::vertex_gemini(sa, "us-central1", "gemini/../x"), doctest::Contains("model"),
                       std::invalid_argument);
  sa.project_id.clear();
  CHECK_THROWS_WITH_AS(re::vertex_gemini(sa, "us-central1", "gemini-2.0-flash"), doctest::Contains("project"),
                       std::invalid_argument);
  auto other = regional.make_body(re::conversation().user("hi"), re::params().model("gemini-2.5-pro"));
  REQUIRE_FALSE(other);
  CHECK(other.error().code == re::error_code::invalid_request);
  CHECK(other.error().message.find("one provider per model") != std::string::npos);
  auto audio_url = global.make_body(re::conversation().add(re::message{re::role::user, {re::content_part::audio_bytes("RIFF", "wav")}}),
                                    re::params());
  REQUIRE_FALSE(audio_url);
  CHECK(audio_url.error().message.find("vertex_anthropic") != std::string::npos);

  ::setenv("GEMINI_API_KEY", "AIza-test-key-0123456789", 1);
  CHECK(re::gemini::from_environment("gemini-2.5-flash").secrets() == std::vector<std::string>{"AIza-test-key-0123456789"});
  ::unsetenv("GEMINI_API_KEY");
}
TEST_CASE("vertex_gemini: generateContent end to end (multimodal, structured output, candidates, blocks, errors)") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  gt::api_endpoint api;
  api.install(s, "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent");
  s.start();
  {
    re::engine<re::vertex_gemini, re::memory_cache> engine(
        re::vertex_gemini(gt::tokens_for(s), "us-central1", "gemini-2.0-flash", "", s.url()), gt::engine_options());

    // Multimodal, with every sampling parameter.
    api.reply(200, gt::gemini_answer);
    re::conversation conv = re::conversation().system("Be brief").add(gt::multimodal_message()).assistant("A cat.").user("And?");
    auto r = engine.run({conv}, re::params().temperature(0.25).max_tokens(64).top_p(0.5).stop({"END"}).seed(7));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(r[0]->text == "Hello there");  // the thought part is left out
    CHECK(r[0]->finish_reason == "STOP");
    CHECK(r[0]->model == "gemini-2.0-flash-001");
    CHECK(r[0]->usage.input_tokens == 120);
    CHECK(r[0]->usage.cached_input_tokens == 100);
    CHECK(r[0]->usage.output_tokens == 37);  // candidates + thoughts
    CHECK(api.last_header("Authorization") == "Bearer ya29.token-1");
    re::json b = api.last_body();
    CHECK_FALSE(b.contains("model"));
    CHECK(b["systemInstruction"] == re::json{{"parts", {{{"text", "Be brief"}}}}});
    REQUIRE(b["contents"].size() == 3);
    CHECK(b["contents"][0]["role"] == "user");
    CHECK(b["contents"][1] == re::json{{"role", "model"}, {"parts", {{{"text", "A cat."}}}}});
    CHECK(b["contents"][2]["role"] == "user");
    const re::json& parts = b["contents"][0]["parts"];
    REQUIRE(parts.size() == 4);
    CHECK(parts[0] == re::json{{"text", "What is in these?"}});
    CHECK(parts[1] == re::json{{"inlineData", {{"mimeType", "image/png"}, {"data", "iVBORw0K"}}}});
    CHECK(parts[2] == re::json{{"fileData", {{"mimeType", "image/jpeg"}, {"fileUri", "gs://bucket/cat.jpg"}}}});
    CHECK(parts[3] == re::json{{"inlineData", {{"mimeType", "audio/wav"}, {"data", "UklGRnh4eHg="}}}});
    CHECK(b["generationConfig"] == re::json{{"temperature", 0.25},
                                            {"maxOutputTokens", 64},
                                            {"topP", 0.5},
                                            {"stopSequences", {"END"}},
                                            {"seed", 7}});

    // Structured output.
    api.reply(200, R"({"candidates":[{"content":{"role":"model","parts":[{"text":"{\"city\":\"Paris\"}"}]},
                      "finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":4}})");
    r = engine.run({re::conversation().user("Capital of France?")}, re::params().json_schema("city", gt::city_schema));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(re::json::parse(r[0]->text)["city"] == "Paris");
    CHECK(api.last_body()["generationConfig"] ==
          re::json{{"responseMimeType", "application/json"}, {"responseJsonSchema", gt::city_schema}});
    r = engine.run({re::conversation().user("Any JSON")}, re::params().json_mode());
    CHECK(api.last_body()["generationConfig"] == re::json{{"responseMimeType", "application/json"}});

    // n = 2: two candidates, stored as two samples; asked again, both come from the cache.
    api.reply(200, R"({"candidates":[{"content":{"parts":[{"text":"one"}]},"finishReason":"STOP","index":0},
                                     {"content":{"parts":[{"text":"two"}]},"finishReason":"STOP","index":1}],
                      "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":6,"totalTokenCount":16}})");
    r = engine.run({re::conversation().user("Pick a number")}, re::params().n(2));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    REQUIRE(r[0]->choices.size() == 2);
    CHECK(r[0]->choices[0].text == "one");
    CHECK(r[0]->choices[1].text == "two");
    CHECK(api.last_body()["generationConfig"]["candidateCount"] == 2);
    const std::size_t sent = api.count();
    r = engine.run({re::conversation().user("Pick a number")}, re::params().n(2), "another run");
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(api.count() == sent);
    REQUIRE(r[0]->choices.size() == 2);
    CHECK(r[0]->choices[1].text == "two");
    CHECK(r[0]->usage.input_tokens == 10);
    CHECK(r[0]->usage.output_tokens == 6);

    // A blocked prompt: no candidates, the reason named.
    api.reply(200, R"({"promptFeedback":{"blockReason":"SAFETY","blockReasonMessage":"unsafe prompt"},
                      "usageMetadata":{"promptTokenCount":3}})");
    r = engine.run({re::conversation().user("something bad")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::bad_request);
    CHECK(r[0].error().provider_code == "SAFETY");
    CHECK(r[0].error().message.find("blocked (SAFETY): unsafe prompt") != std::string::npos);

    // Google's error shape, bare and wrapped in an array.
    api.reply(400, R"({"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}})");
    r = engine.run({re::conversation().user("bad argument")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::bad_request);
    CHECK(r[0].error().http_status == 400);
    CHECK(r[0].error().provider_code == "INVALID_ARGUMENT");
    CHECK(r[0].error().message == "Request contains an invalid argument.");
    api.reply(429, R"([{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com","status":"RESOURCE_EXHAUSTED"}}])");
    r = engine.run({re::conversation().user("too many")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::rate_limited);
    CHECK(r[0].error().provider_code == "RESOURCE_EXHAUSTED");
    CHECK(r[0].error().message == "Quota exceeded for aiplatform.googleapis.com");
  }
  CHECK(te.requests == 1);
  s.stop();
}

TEST_CASE("gemini: the Gemini API with a key end to end (tools, multimodal, JSON, key errors)") {
  namespace gt = google_tests;
  const std::string key = "AIza-test-key-0123456789abcdef";
  gt::server s;
  gt::api_endpoint api;
  api.install(s, "/v1beta/models/gemini-2.5-flash:generateContent");
  s.start();
  {
    re::engine<re::gemini> engine(re::gemini(key, "gemini-2.5-flash", s.url() + "/"), gt::engine_options());

    api.reply(200, R"({"candidates":[{"content":{"role":"model","parts":[
                        {"functionCall":{"id":"call-1","name":"get_weather","args":{"city":"Paris"}}}]},
                      "finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":5},
                      "modelVersion":"gemini-2.5-flash"})");
    const re::tool weather{"get_weather", "The weather in a city", gt::city_schema};
    auto r = engine.run({re::conversation().user("Weather in Paris?")},
                        re::params().tools({weather}).tool_choice("get_weather"));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    REQUIRE(r[0]->tool_calls().size() == 1);
    CHECK(r[0]->tool_calls()[0].id == "call-1");
    CHECK(r[0]->tool_calls()[0].name == "get_weather");
    CHECK(re::json::parse(r[0]->tool_calls()[0].arguments) == re::json{{"city", "Paris"}});
    CHECK(api.last_header("x-goog-api-key") == key);
    CHECK(api.last_header("Authorization").empty());
    re::json b = api.last_body();
    CHECK(b["tools"] == re::json::array({{{"functionDeclarations",
                                          {{{"name", "get_weather"},
                                            {"description", "The weather in a city"},
                                            {"parametersJsonSchema", gt::city_schema}}}}}}));
    CHECK(b["toolConfig"] ==
          re::json{{"functionCallingConfig", {{"mode", "ANY"}, {"allowedFunctionNames", {"get_weather"}}}}});

    // Multimodal and JSON mode in one request.
    api.reply(200, gt::gemini_answer);
    re::message m{re::role::user,
                  {re::content_part::from_text("Describe as JSON"), re::content_part::image_url("https://example.com/a")}};
    m.content[1].media_type = "image/webp";
    r = engine.run({re::conversation().add(m)}, re::params().json_mode().extra({{"safetySettings", re::json::array()}}));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    b = api.last_body();
    CHECK(b["contents"][0]["parts"][1] ==
          re::json{{"fileData", {{"mimeType", "image/webp"}, {"fileUri", "https://example.com/a"}}}});
    CHECK(b["generationConfig"] == re::json{{"responseMimeType", "application/json"}});
    CHECK(b["safetySettings"] == re::json::array());

    // A wrong key: authentication, and the key (echoed by the server) never reaches the error.
    api.reply(400, R"({"error":{"code":400,"message":"API key not valid: AIza-test-key-0123456789abcdef",
                      "status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",
                      "reason":"API_KEY_INVALID","domain":"googleapis.com"}]}})");
    r = engine.run({re::conversation().user("hi")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::authentication);
    CHECK(r[0].error().provider_code == "API_KEY_INVALID");
    CHECK(r[0].error().message.find("API key not valid") != std::string::npos);
    CHECK(r[0].error().message.find(key) == std::string::npos);
  }
  s.stop();

  const re::gemini g(key, "gemini-2.5-flash");
  auto tool_config = [&](const char* choice) {
    auto body = g.make_body(re::conversation().user("x"), re::params().tools({{"f", "", {}}}).tool_choice(choice));
    REQUIRE(body);
    CHECK((*body)["tools"][0]["functionDeclarations"][0] == re::json{{"name", "f"}});  // no empty schema sent
    return (*body)["toolConfig"]["functionCallingConfig"];
  };
  CHECK(tool_config("auto") == re::json{{"mode", "AUTO"}});
  CHECK(tool_config("none") == re::json{{"mode", "NONE"}});
  CHECK(tool_config("required") == re::json{{"mode", "ANY"}});
  auto url_audio = g.make_body(re::conversation().add(re::message{re::role::user, {re::content_part::image_bytes("x", "")}}),
                               re::params());
  REQUIRE_FALSE(url_audio);
  CHECK(url_audio.error().message.find("gemini: message 0 part 0") != std::string::npos);
}

TEST_CASE("gemini: structured output (json_schema) end to end: responseJsonSchema on the wire, the JSON back") {
  namespace gt = google_tests;
  const std::string key = "AIza-test-key-0123456789abcdef";
  gt::server s;
  gt::api_endpoint api;
  api.install(s, "/v1beta/models/gemini-2.5-flash:generateContent");
  s.start();
  {
    re::engine<re::gemini> engine(re::gemini(key, "gemini-2.5-flash", s.url() + "/"), gt::engine_options());
    api.reply(200, R"({"candidates":[{"content":{"role":"model","parts":[{"text":"{\"city\": \"Paris\"}"}]},
                      "finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":14,"candidatesTokenCount":6},
                      "modelVersion":"gemini-2.5-flash"})");
    auto r = engine.run({re::conversation().system("Answer in JSON").user("Where is the Eiffel Tower?")},
                        re::params().json_schema("place", gt::city_schema).temperature(0));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(re::json::parse(r[0]->text) == re::json{{"city", "Paris"}});
    CHECK(r[0]->finish_reason == "STOP");
    CHECK(r[0]->usage.input_tokens == 14);
    CHECK(r[0]->usage.output_tokens == 6);
    REQUIRE(api.count() == 1);
    CHECK(api.last_header("x-goog-api-key") == key);
    const re::json b = api.last_body();
    CHECK(b["generationConfig"] == re::json{{"responseMimeType", "application/json"},
                                            {"responseJsonSchema", gt::city_schema},
                                            {"temperature", 0}});
    CHECK(b["systemInstruction"] == re::json{{"parts", {{{"text", "Answer in JSON"}}}}});
    CHECK(b["contents"] == re::json::parse(R"([{"role":"user","parts":[{"text":"Where is the Eiffel Tower?"}]}])"));
  }
  s.stop();
}

TEST_CASE("vertex_openai: Llama and other MaaS models through Vertex AI's OpenAI-compatible endpoint") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  gt::api_endpoint api;
  api.install(s, "/v1beta1/projects/test-project/locations/us-central1/endpoints/openapi/chat/completions");
  s.start();
  {
    re::engine<re::vertex_openai> engine(
        re::vertex_openai(gt::tokens_for(s), "us-central1", "meta/llama-3.3-70b-instruct-maas", "", s.url()),
        gt::engine_options());
    api.reply(200, R"({"id":"c1","object":"chat.completion","model":"meta/llama-3.3-70b-instruct-maas",
                      "choices":[{"index":0,"message":{"role":"assistant","content":"{\"city\":\"Paris\"}"},
                      "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}})");
    re::message m{re::role::user, {re::content_part::from_text("Which city?"),
                                   re::content_part::image_bytes(std::string("\x89PNG\r\n", 6), "image/png")}};
    auto r = engine.run({re::conversation().add(m)}, re::params().json_schema("city", gt::city_schema));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(re::json::parse(r[0]->text)["city"] == "Paris");
    CHECK(r[0]->usage.input_tokens == 9);
    CHECK(r[0]->model == "meta/llama-3.3-70b-instruct-maas");
    CHECK(api.last_header("Authorization") == "Bearer ya29.token-1");
    re::json b = api.last_body();
    CHECK(b["model"] == "meta/llama-3.3-70b-instruct-maas");
    CHECK(b["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORw0K");
    CHECK(b["response_format"]["type"] == "json_schema");
    CHECK(b["response_format"]["json_schema"]["schema"] == gt::city_schema);

    api.reply(429, R"([{"error":{"code":429,"message":"Quota exceeded for online prediction","status":"RESOURCE_EXHAUSTED"}}])");
    r = engine.run({re::conversation().user("again")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::rate_limited);
    CHECK(r[0].error().provider_code == "RESOURCE_EXHAUSTED");
    CHECK(r[0].error().message == "Quota exceeded for online prediction");
  }
  CHECK(te.requests == 1);
  s.stop();
}

TEST_CASE("vertex_anthropic: Claude on Vertex AI (rawPredict, vertex anthropic_version, both error shapes)") {
  namespace gt = google_tests;
  gt::server s;
  gt::token_endpoint te;
  te.install(s);
  gt::api_endpoint api;
  api.install(s, "/v1/projects/claude-project/locations/us-east5/publishers/anthropic/models/"
                 "claude-sonnet-4@20250514:rawPredict");
  s.start();
  {
    re::engine<re::vertex_anthropic> engine(
        re::vertex_anthropic(gt::tokens_for(s), "us-east5", "claude-sonnet-4@20250514", "claude-project", s.url()),
        gt::engine_options());
    api.reply(200, R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",
                      "content":[{"type":"text","text":"A cat."}],"stop_reason":"end_turn",
                      "usage":{"input_tokens":20,"output_tokens":3,"cache_read_input_tokens":10}})");
    re::message m{re::role::user, {re::content_part::from_text("What is it?"),
                                   re::content_part::image_bytes(std::string("\x89PNG\r\n", 6), "image/png")}};
    auto r = engine.run({re::conversation().system("Be brief").add(m)});
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(r[0]->text == "A cat.");
    CHECK(r[0]->finish_reason == "end_turn");
    CHECK(r[0]->usage.input_tokens == 30);
    CHECK(r[0]->usage.cached_input_tokens == 10);
    CHECK(api.last_header("Authorization") == "Bearer ya29.token-1");
    re::json b = api.last_body();
    CHECK(b["anthropic_version"] == "vertex-2023-10-16");
    CHECK_FALSE(b.contains("model"));
    CHECK(b["max_tokens"] == 4096);
    CHECK(b["system"] == "Be brief");
    CHECK(b["messages"][0]["content"][1]["source"] ==
          re::json{{"type", "base64"}, {"media_type", "image/png"}, {"data", "iVBORw0K"}});

    // Structured output: a forced tool whose input is the answer.
    api.reply(200, R"({"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",
                      "content":[{"type":"tool_use","id":"tu_1","name":"city","input":{"city":"Paris"}}],
                      "stop_reason":"tool_use","usage":{"input_tokens":40,"output_tokens":9}})");
    r = engine.run({re::conversation().user("Capital of France?")}, re::params().json_schema("city", gt::city_schema));
    REQUIRE_MESSAGE(r[0], gt::errors_of(r));
    CHECK(re::json::parse(r[0]->text) == re::json{{"city", "Paris"}});
    CHECK(api.last_body()["tool_choice"] == re::json{{"type", "tool"}, {"name", "city"}});

    api.reply(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}})");
    r = engine.run({re::conversation().user("too long")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::bad_request);
    CHECK(r[0].error().provider_code == "invalid_request_error");
    CHECK(r[0].error().message == "max_tokens: too large");
    api.reply(403, R"({"error":{"code":403,"message":"Permission 'aiplatform.endpoints.predict' denied","status":"PERMISSION_DENIED"}})");
    r = engine.run({re::conversation().user("not allowed")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().code == re::error_code::permission_denied);
    CHECK(r[0].error().provider_code == "PERMISSION_DENIED");
  }
  CHECK(te.requests == 1);
  s.stop();
}
// @end google-tests

// @section openai-legacy-tests
TEST_CASE("openai_completions: the legacy /v1/completions API end to end, over HTTP and HTTPS") {
  const auto pki = mock::make_test_pki(anth_scratch("legacy-pki"));
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    std::unique_ptr<httplib::Server> srv = tls ? std::make_unique<httplib::SSLServer>(pki.server_cert.c_str(),
                                                                                      pki.server_key.c_str())
                                               : std::make_unique<httplib::Server>();
    std::mutex m;
    std::vector<json> bodies;
    srv->Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
      const json body = json::parse(req.body);
      {
        std::lock_guard<std::mutex> lock(m);
        bodies.push_back(body);
      }
      if (req.get_header_value("Authorization") != "Bearer sk-legacy") {
        res.status = 401;
        res.set_content(R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error",)"
                        R"("code":"invalid_api_key"}})",
                        "application/json");
        return;
      }
      json answer = {{"id", "cmpl-1"},
                     {"object", "text_completion"},
                     {"model", body["model"]},
                     {"choices", json::array({{{"text", " and then " + body["prompt"].get<std::string>()},
                                               {"index", 0},
                                               {"finish_reason", "length"}}})},
                     {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 16}, {"total_tokens", 21}}}};
      res.set_content(answer.dump(), "application/json");
    });
    const int port = srv->bind_to_any_port("127.0.0.1");
    std::thread listener([&] { srv->listen_after_bind(); });
    while (!srv->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::string base = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port) + "/v1";
    {
      re::openai_completions provider("sk-legacy", base, "davinci-002");
      CHECK(provider.endpoint() == base + "/completions");
      re::engine<re::openai_completions, re::no_cache> engine(
          provider, re::options().concurrency(4).max_retries(0).progress_bar(false).ca_cert_file(pki.ca_cert));
      auto results = engine.run({re::conversation().user("Once upon a time"), re::conversation().user("In 1905")},
                                re::params().max_tokens(16).temperature(0.5).stop({"\n"}));
      REQUIRE(results.size() == 2);
      REQUIRE(results[0]);
      CHECK(results[0]->text == " and then Once upon a time");
      CHECK(results[0]->finish_reason == "length");
      CHECK(results[0]->model == "davinci-002");
      CHECK(results[0]->usage.input_tokens == 5);
      CHECK(results[0]->usage.output_tokens == 16);
      REQUIRE(results[1]);
      std::lock_guard<std::mutex> lock(m);
      REQUIRE(bodies.size() == 2);
      const json& b = bodies[0]["prompt"] == "In 1905" ? bodies[1] : bodies[0];
      CHECK(b == json::parse(R"({"model":"davinci-002","prompt":"Once upon a time","max_tokens":16,)"
                             R"("temperature":0.5,"stop":["\n"]})"));

      // What the legacy API cannot take fails before anything is sent, naming it.
      auto refused = engine.run({re::conversation().system("be brief").user("x"),
                                 re::conversation().user("a").assistant("b").user("c"),
                                 re::conversation().add(re::message{re::role::user, {re::content_part::image_url("https://x/y.png")}})},
                                re::params());
      for (const auto& r : refused) {
        REQUIRE_FALSE(r);
        CHECK(r.error().code == re::error_code::invalid_request);
        CHECK(r.error().message.rfind("openai_completions: ", 0) == 0);
      }
      CHECK(refused[2].error().message.find("images") != std::string::npos);
      CHECK(bodies.size() == 2);
    }
    {
      re::openai_completions wrong("sk-wrong-key-0123456789", base, "davinci-002");
      re::engine<re::openai_completions, re::no_cache> engine(
          wrong, re::options().max_retries(0).progress_bar(false).ca_cert_file(pki.ca_cert));
      auto r = engine.run({re::conversation().user("x")});
      REQUIRE_FALSE(r[0]);
      CHECK(r[0].error().code == re::error_code::authentication);
      CHECK(r[0].error().provider_code == "invalid_api_key");
      CHECK(r[0].error().message.find("sk-wrong-key") == std::string::npos);
    }
    srv->stop();
    listener.join();
  }
}

TEST_CASE("openai_compatible presets: the hosts' base URLs and key variables") {
  // The variables this test sets are put back as they were.
  using aws_test::scoped_env;
  scoped_env groq("GROQ_API_KEY", "gsk-test");
  scoped_env together("TOGETHER_API_KEY", "tg-test");
  scoped_env cerebras("CEREBRAS_API_KEY", "csk-test");
  scoped_env openai("OPENAI_API_KEY", "sk-test");
  scoped_env base("OPENAI_BASE_URL", "http://127.0.0.1:9/v1");
  CHECK(re::openai_compatible::groq("llama-3.3-70b-versatile").endpoint() ==
        "https://api.groq.com/openai/v1/chat/completions");
  CHECK(re::openai_compatible::together("m").endpoint() == "https://api.together.xyz/v1/chat/completions");
  CHECK(re::openai_compatible::cerebras("m").endpoint() == "https://api.cerebras.ai/v1/chat/completions");
  CHECK(re::openai_compatible::openai("gpt-4o-mini").endpoint() == "http://127.0.0.1:9/v1/chat/completions");
  ::unsetenv("OPENAI_BASE_URL");
  CHECK(re::openai_compatible::openai("gpt-4o-mini").endpoint() == "https://api.openai.com/v1/chat/completions");
  CHECK(re::openai_compatible::groq("m").secrets() == std::vector<std::string>{"gsk-test"});
  CHECK(re::openai_compatible::vllm("Qwen/Qwen2.5-7B").endpoint() == "http://127.0.0.1:8000/v1/chat/completions");
  CHECK(re::openai_compatible::ollama("llama3.2").endpoint() == "http://127.0.0.1:11434/v1/chat/completions");
  CHECK(re::openai_compatible::llama_cpp().endpoint() == "http://127.0.0.1:8080/v1/chat/completions");
  // No key, no Authorization header for a local server.
  const auto req = re::openai_compatible::ollama("llama3.2").make_request("{}");
  for (const auto& h : req.headers) CHECK(h.first != "Authorization");
  ::unsetenv("GROQ_API_KEY");
  CHECK_THROWS_WITH_AS(re::openai_compatible::groq("m"), doctest::Contains("GROQ_API_KEY is not set"),
                       std::invalid_argument);
}
// @end openai-legacy-tests

// --- OpenAI Responses API (openai_responses) against the mock's POST /v1/responses ----------

namespace {
namespace responses_tests {

const char* const key = "sk-resp-test-5e1d0c9b8a7f6e5d4c3b2a19";

const mock::tls_files& pki() {
  static const mock::tls_files files = mock::make_test_pki(make_temp_dir("responses-pki"));
  return files;
}

std::unique_ptr<mock::server> start(bool tls) {
  mock::server_options so;
  so.api_key = key;
  if (tls) {
    so.cert_path = pki().server_cert;
    so.key_path = pki().server_key;
  }
  auto s = std::make_unique<mock::server>(so);
  s->start();
  return s;
}

re::options opts() { return re::options().concurrency(2).max_retries(0).progress_bar(false).ca_cert_file(pki().ca_cert); }

// The body the server got last.
json last_body(const mock::server& s) {
  const auto bodies = s.received_bodies();
  return bodies.empty() ? json() : bodies.back();
}

}  // namespace responses_tests
}  // namespace

TEST_CASE("openai_responses: end to end over HTTP and HTTPS (text, tools, structured output, incomplete, refusal)") {
  using namespace responses_tests;
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    auto server = start(tls);
    REQUIRE(server->origin().rfind(tls ? "https://" : "http://", 0) == 0);
    re::openai_responses provider(key, server->origin() + "/v1", "gpt-4.1");
    CHECK(provider.endpoint() == server->origin() + "/v1/responses");
    re::engine<re::openai_responses, re::no_cache> engine(provider, opts());

    // Plain text: the system prompt is `instructions`, the answer the output_text.
    auto plain = engine.run({re::conversation().system("Be brief").user("What is 2+2?")}, re::params().max_tokens(200));
    REQUIRE(plain[0]);
    CHECK(plain[0]->text == "Mock answer to: What is 2+2?");
    CHECK(plain[0]->finish_reason == "stop");
    CHECK(plain[0]->model == "gpt-4.1");
    CHECK(plain[0]->usage.input_tokens > 0);
    CHECK(plain[0]->usage.output_tokens > 0);
    CHECK(plain[0]->usage.reasoning_tokens == 0);
    CHECK(plain[0]->raw()["object"] == "response");
    json sent = last_body(*server);
    CHECK(sent["instructions"] == "Be brief");
    CHECK(sent["input"] == json::parse(R"([{"role":"user","content":[{"type":"input_text","text":"What is 2+2?"}]}])"));
    CHECK(sent["max_output_tokens"] == 200);
    CHECK(sent["store"] == false);

    // A forced tool: a function_call item back, as a tool call.
    re::tool weather{"get_weather", "The weather in a city",
                     json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})")};
    auto called = engine.run({re::conversation().user("Weather in Paris?")},
                             re::params().tools({weather}).tool_choice("get_weather"));
    REQUIRE(called[0]);
    CHECK(called[0]->finish_reason == "tool_calls");
    REQUIRE(called[0]->tool_calls().size() == 1);
    CHECK(called[0]->tool_calls()[0].name == "get_weather");
    CHECK(called[0]->tool_calls()[0].id.rfind("call_", 0) == 0);
    CHECK(json::parse(called[0]->tool_calls()[0].arguments) == json{{"city", "mock"}});
    CHECK(last_body(*server)["tool_choice"] == json{{"type", "function"}, {"name", "get_weather"}});

    // Structured output: text.format json_schema; the text is the JSON.
    const json schema = json::parse(R"({"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"],)"
                                    R"("additionalProperties":false})");
    auto structured = engine.run({re::conversation().user("Answer as JSON")}, re::params().json_schema("reply", schema));
    REQUIRE(structured[0]);
    const json parsed = json::parse(structured[0]->text, nullptr, false);
    REQUIRE(parsed.is_object());
    CHECK(parsed["answer"] == "Mock answer to: Answer as JSON");
    CHECK(last_body(*server)["text"] ==
          json{{"format", {{"type", "json_schema"}, {"name", "reply"}, {"schema", schema}, {"strict", true}}}});

    // A small budget: status incomplete, its reason as the finish reason.
    auto cut = engine.run({re::conversation().user("Tell me a long story")}, re::params().max_tokens(16));
    REQUIRE(cut[0]);
    CHECK(cut[0]->finish_reason == "max_output_tokens");
    CHECK(cut[0]->raw()["status"] == "incomplete");

    // A refusal part: its text, finish reason "refusal".
    auto refused = engine.run({re::conversation().user("please refuse this")});
    REQUIRE(refused[0]);
    CHECK(refused[0]->finish_reason == "refusal");
    CHECK(refused[0]->text == "I'm sorry, but I can't help with that.");
    server->stop();
  }
}

TEST_CASE("openai_responses: errors (chat-only params, a wrong key, max_tokens below 16, what Responses cannot take)") {
  using namespace responses_tests;
  auto server = start(true);
  re::openai_responses provider(key, server->origin() + "/v1/responses", "gpt-4.1");
  CHECK(provider.endpoint() == server->origin() + "/v1/responses");
  re::engine<re::openai_responses, re::no_cache> engine(provider, opts());

  // A chat completions parameter smuggled in through params::extra: the server's 400 names it.
  auto chat_only = engine.run({re::conversation().user("x"), re::conversation().user("y")},
                              re::params().extra({{"response_format", {{"type", "json_object"}}}}));
  REQUIRE_FALSE(chat_only[0]);
  CHECK(chat_only[0].error().code == re::error_code::bad_request);
  CHECK(chat_only[0].error().http_status == 400);
  CHECK(chat_only[0].error().provider_code == "unsupported_parameter");
  CHECK(chat_only[0].error().message.find("'response_format'") != std::string::npos);
  auto messages = engine.run({re::conversation().user("x")}, re::params().extra({{"messages", json::array()}}));
  REQUIRE_FALSE(messages[0]);
  CHECK(messages[0].error().message == "Unknown parameter: 'messages'.");

  // A wrong key: an authentication error that never shows the key.
  const std::string wrong_key = "sk-wrong-responses-key-0123456789abcdef";
  re::openai_responses wrong(wrong_key, server->origin() + "/v1", "gpt-4.1");
  re::engine<re::openai_responses, re::no_cache> wrong_engine(wrong, opts());
  auto denied = wrong_engine.run({re::conversation().user("x")});
  REQUIRE_FALSE(denied[0]);
  CHECK(denied[0].error().code == re::error_code::authentication);
  CHECK(denied[0].error().provider_code == "invalid_api_key");
  CHECK(denied[0].error().message.find(wrong_key) == std::string::npos);
  CHECK(denied[0].error().describe().find("sk-wrong") == std::string::npos);

  // Refused before sending: nothing reaches the server.
  const std::size_t before = server->received_bodies().size();
  auto early = engine.run({re::conversation().user("x")}, re::params().max_tokens(8));
  REQUIRE_FALSE(early[0]);
  CHECK(early[0].error().code == re::error_code::invalid_request);
  CHECK(early[0].error().message.find("max_output_tokens") != std::string::npos);
  CHECK(early[0].error().message.find("16") != std::string::npos);
  std::vector<re::result<json>> refused;
  for (const auto& p : {re::params().n(2), re::params().stop({"\n"}), re::params().seed(7)})
    refused.push_back(provider.make_body(re::conversation().user("x"), p));
  refused.push_back(provider.make_body(
      re::conversation().add(re::message{re::role::user, {re::content_part::audio_bytes("RIFF", "wav")}}), re::params()));
  for (const auto& r : refused) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == re::error_code::invalid_request);
    CHECK(r.error().message.rfind("openai_responses: ", 0) == 0);
  }
  CHECK(refused[0].error().message.find("params::n") != std::string::npos);
  CHECK(refused[1].error().message.find("params::stop") != std::string::npos);
  CHECK(refused[2].error().message.find("params::seed") != std::string::npos);
  CHECK(refused[3].error().message.find("audio") != std::string::npos);
  CHECK(server->received_bodies().size() == before);

  // A 200 whose status is "failed" is an error with the response's message.
  re::http_response failed{200, {}, R"({"id":"resp_1","object":"response","status":"failed","output":[],)"
                                    R"("error":{"code":"server_error","message":"The model broke."}})"};
  auto f = provider.parse_response(failed);
  REQUIRE_FALSE(f);
  CHECK(f.error().code == re::error_code::server_error);
  CHECK(f.error().message.find("The model broke.") != std::string::npos);
  server->stop();
}

TEST_CASE("openai_responses: the body has the fields OpenAI's CreateResponse schema requires, and no chat-only ones") {
  re::openai_responses p("sk-x", "https://api.openai.com/v1/", "gpt-4.1");
  CHECK(p.endpoint() == "https://api.openai.com/v1/responses");
  CHECK(p.cache_identity() == json{{"kind", "openai_responses"}, {"endpoint", p.endpoint()}, {"model", "gpt-4.1"}});
  CHECK(p.secrets() == std::vector<std::string>{"sk-x"});
  re::tool t{"lookup", "Looks up a word", json::parse(R"({"type":"object","properties":{"q":{"type":"string"}}})")};
  auto body = p.make_body(re::conversation()
                              .system("sys")
                              .add(re::message{re::role::user,
                                               {re::content_part::from_text("What is this?"),
                                                re::content_part::image_url("https://example.com/cat.jpg"),
                                                re::content_part::image_bytes("\x89PNG", "image/png")}})
                              .assistant("A cat.")
                              .user("Sure?"),
                          re::params()
                              .max_tokens(64)
                              .temperature(0.2)
                              .top_p(0.9)
                              .tools({t})
                              .tool_choice("required")
                              .reasoning_effort("low"));
  REQUIRE(body);
  const json& b = *body;
  CHECK(b["model"] == "gpt-4.1");
  CHECK(b["instructions"] == "sys");
  REQUIRE(b["input"].size() == 3);
  const json& parts = b["input"][0]["content"];
  CHECK(parts[0] == json{{"type", "input_text"}, {"text", "What is this?"}});
  for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
    CHECK(parts[i]["type"] == "input_image");
    CHECK(parts[i]["detail"] == "auto");  // required by InputImageContent
    CHECK(parts[i]["image_url"].is_string());
  }
  CHECK(parts[1]["image_url"] == "https://example.com/cat.jpg");
  CHECK(parts[2]["image_url"] == "data:image/png;base64,iVBORw==");
  CHECK(b["input"][1] == json{{"role", "assistant"}, {"content", "A cat."}});
  CHECK(b["input"][2]["role"] == "user");
  // FunctionTool requires type, name, strict and parameters (no chat-style "function" wrapper).
  REQUIRE(b["tools"].size() == 1);
  const json& tool = b["tools"][0];
  CHECK(tool["type"] == "function");
  CHECK(tool["name"] == "lookup");
  CHECK(tool["strict"] == false);
  CHECK(tool["parameters"] == t.parameters);
  CHECK(tool["description"] == "Looks up a word");
  CHECK_FALSE(tool.contains("function"));
  CHECK(b["tool_choice"] == "required");
  CHECK(b["max_output_tokens"] == 64);
  CHECK(b["temperature"] == 0.2);
  CHECK(b["top_p"] == 0.9);
  CHECK(b["reasoning"] == json{{"effort", "low"}});
  CHECK(b["store"] == false);
  for (const char* chat_only : {"messages", "max_tokens", "max_completion_tokens", "n", "stop", "seed", "response_format",
                                "reasoning_effort"})
    CHECK_MESSAGE(!b.contains(chat_only), chat_only);
  // json_mode is text.format json_object; extra is merged last (store may be turned back on).
  auto json_mode = p.make_body(re::conversation().user("x"), re::params().json_mode().extra({{"store", true}}));
  REQUIRE(json_mode);
  CHECK((*json_mode)["text"] == json{{"format", {{"type", "json_object"}}}});
  CHECK((*json_mode)["store"] == true);
  CHECK((*json_mode)["input"][0]["content"] == json::parse(R"([{"type":"input_text","text":"x"}])"));
}

TEST_CASE("reasoning: tokens in usage and cost (Responses, chat completions), reasoning_effort per provider") {
  using namespace responses_tests;
  auto server = start(false);
  // o3-pro on Responses: 16 reasoning tokens, inside output_tokens, billed as output at $20/$80 per 1M.
  re::openai_responses provider(key, server->origin() + "/v1", "o3-pro");
  re::engine<re::openai_responses, re::no_cache> engine(provider, opts());
  auto r = engine.run({re::conversation().user("Think hard")}, re::params().reasoning_effort("high"));
  REQUIRE(r[0]);
  CHECK(r[0]->model == "o3-pro");
  CHECK(r[0]->usage.reasoning_tokens == 16);
  CHECK(r[0]->usage.output_tokens > 16);
  CHECK(r[0]->usage.output_tokens == r[0]->raw()["usage"]["output_tokens"].get<std::int64_t>());
  CHECK(last_body(*server)["reasoning"] == json{{"effort", "high"}});
  const double expected = (static_cast<double>(r[0]->usage.input_tokens) * 20 +
                           static_cast<double>(r[0]->usage.output_tokens) * 80) / 1e6;
  const re::cost_report spent = engine.spend();
  REQUIRE(spent.models.size() == 1);
  CHECK(spent.models[0].priced_as == "o3-pro");
  CHECK(spent.tokens.reasoning_tokens == 16);
  CHECK(spent.actual == doctest::Approx(expected));
  CHECK(spent.to_json()["tokens"]["reasoning"] == 16);
  CHECK(spent.to_string().find("(16 reasoning)") != std::string::npos);
  CHECK(re::price_table::builtin().find("o1-pro")->output == 600);
  CHECK(re::price_table::builtin().find("gpt-5-pro")->input == 15);

  // Chat completions: a reasoning model reports completion_tokens_details.reasoning_tokens;
  // reasoning_effort is sent as it is; a responses-only model is a 404 with OpenAI's message.
  re::openai_compatible chat(key, server->origin() + "/v1", "o3");
  re::engine<re::openai_compatible, re::no_cache> chat_engine(chat, opts());
  auto c = chat_engine.run({re::conversation().user("Think")}, re::params().reasoning_effort("minimal"));
  REQUIRE(c[0]);
  CHECK(c[0]->usage.reasoning_tokens == 16);
  CHECK(c[0]->usage.output_tokens > 16);
  CHECK(last_body(*server)["reasoning_effort"] == "minimal");
  CHECK_FALSE(last_body(*server).contains("reasoning"));
  CHECK(c[0]->raw()["choices"][0]["message"].contains("refusal"));
  auto pro = chat_engine.run({re::conversation().user("x")}, re::params().model("o3-pro"));
  REQUIRE_FALSE(pro[0]);
  CHECK(pro[0].error().http_status == 404);
  CHECK(pro[0].error().message ==
        "This model is only supported in v1/responses and not in v1/chat/completions.");
  // Two choices share the reasoning tokens out like the completion tokens.
  auto two = chat_engine.run({re::conversation().user("n")}, re::params().n(2));
  REQUIRE(two[0]);
  const auto split = chat.split_choices(two[0]->raw_body);
  REQUIRE(split.size() == 2);
  std::int64_t shared = 0;
  for (const auto& one : split) {
    auto parsed = chat.parse_response(re::http_response{200, {}, one});
    REQUIRE(parsed);
    shared += parsed->usage.reasoning_tokens;
  }
  CHECK(shared == 32);

  // Anthropic, Gemini and the legacy completions API have no reasoning_effort.
  const auto effort = re::params().reasoning_effort("low");
  auto a = re::anthropic("sk-ant", "claude-sonnet-4-5").make_body(re::conversation().user("x"), effort);
  REQUIRE_FALSE(a);
  CHECK(a.error().code == re::error_code::invalid_request);
  CHECK(a.error().message.find("reasoning_effort") != std::string::npos);
  auto g = re::gemini("gk", "gemini-2.5-flash").make_body(re::conversation().user("x"), effort);
  REQUIRE_FALSE(g);
  CHECK(g.error().message.find("reasoning_effort") != std::string::npos);
  auto l = re::openai_completions("k", "http://127.0.0.1:9/v1", "m").make_body(re::conversation().user("x"), effort);
  REQUIRE_FALSE(l);
  CHECK(l.error().message.find("reasoning_effort") != std::string::npos);
  server->stop();
}

// @section mock-streaming-tests
// The mock's streamed answers, read raw for each provider's wire format: the events parse and
// come in order, their pieces add up to the answer the same request gets whole, the stream
// ends with its terminator; and the stream faults, pacing and the errors that come before a
// stream.
namespace {
namespace stream_tests {

using steady = std::chrono::steady_clock;

const char* const key = "sk-stream-test-0b1c2d3e4f5a6b7c8d9e";
// Two- and three-byte UTF-8 sequences, which a piece must never split.
const char* const prompt = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";

std::unique_ptr<mock::server> start(mock::server_options so = {}) {
  so.api_key = key;
  if (so.stream_chunk_bytes == 8) so.stream_chunk_bytes = 5;
  auto s = std::make_unique<mock::server>(so);
  s->start();
  return s;
}

httplib::Headers openai_auth() { return {{"Authorization", std::string("Bearer ") + key}}; }
httplib::Headers anthropic_auth() { return {{"x-api-key", key}, {"anthropic-version", "2023-06-01"}}; }

struct raw_answer {
  httplib::Error error = httplib::Error::Unknown;  // Success: the body ended as HTTP says it should
  int status = 0;
  httplib::Headers headers;
  std::string body;
  std::vector<steady::time_point> arrivals;  // one per read of the body
  steady::time_point ended;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// POSTs `body` and keeps every byte of the answer, even when the connection ends early.
raw_answer post(const mock::server& s, const std::string& path, const std::string& body, httplib::Headers headers) {
  httplib::Client cli(s.origin());
  cli.set_read_timeout(10, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = std::move(headers);
  req.headers.emplace("Content-Type", "application/json");
  req.body = body;
  raw_answer out;
  req.response_handler = [&out](const httplib::Response& res) {
    out.status = res.status;
    out.headers = res.headers;
    return true;
  };
  req.content_receiver = [&out](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    out.body.append(data, n);
    out.arrivals.push_back(steady::now());
    return true;
  };
  const httplib::Result r = cli.send(req);
  out.ended = steady::now();
  out.error = r.error();
  return out;
}
raw_answer post(const mock::server& s, const std::string& path, const json& body, httplib::Headers headers) {
  return post(s, path, body.dump(), std::move(headers));
}

struct sse_event {
  std::string event;  // "" without an event: line
  std::string data;
};

// Server-sent events separated by `eol` twice; every line is "event: " or "data: ".
std::vector<sse_event> parse_sse(const std::string& body, const std::string& eol = "\n") {
  std::vector<sse_event> out;
  const std::string blank = eol + eol;
  std::size_t at = 0;
  while (at < body.size()) {
    const std::size_t end = body.find(blank, at);
    REQUIRE_MESSAGE(end != std::string::npos, "an event without its blank line: " << body.substr(at));
    const std::string block = body.substr(at, end - at);
    at = end + blank.size();
    sse_event e;
    std::size_t from = 0;
    while (from <= block.size()) {
      std::size_t stop = block.find(eol, from);
      if (stop == std::string::npos) stop = block.size();
      const std::string line = block.substr(from, stop - from);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      else if (line.rfind("data: ", 0) == 0) e.data += line.substr(6);
      else FAIL("not an SSE line: '" << line << "'");
      CHECK(line.find('\r') == std::string::npos);
      from = stop + eol.size();
    }
    out.push_back(e);
  }
  return out;
}

// The data of typed SSE events (Responses, Anthropic), each checked to name its own type.
std::vector<json> typed_events(const std::string& body) {
  std::vector<json> out;
  for (const auto& e : parse_sse(body)) {
    json j = json::parse(e.data, nullptr, false);
    REQUIRE_MESSAGE(j.is_object(), e.data);
    CHECK(j["type"] == e.event);
    out.push_back(std::move(j));
  }
  return out;
}

// A piece of text or arguments: at most the chunk size, plus the rest of a UTF-8 sequence.
bool piece_size_ok(const std::string& piece, std::size_t chunk = 5) { return !piece.empty() && piece.size() <= chunk + 3; }

template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 400; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// The Anthropic events of one stream, in order, against the Messages body the request gets whole.
void check_anthropic_events(const std::vector<json>& ev, const json& whole) {
  REQUIRE(ev.size() >= 6);
  CHECK(ev.front()["type"] == "message_start");
  const json& m = ev.front()["message"];
  CHECK(m["id"].get<std::string>().rfind("msg_", 0) == 0);
  CHECK(m["role"] == "assistant");
  CHECK(m["model"] == whole["model"]);
  CHECK(m["content"] == json::array());
  CHECK(m["stop_reason"].is_null());
  CHECK(m["usage"]["input_tokens"] == whole["usage"]["input_tokens"]);
  CHECK(m["usage"]["output_tokens"] == 1);
  const json& delta = ev[ev.size() - 2];
  CHECK(delta["type"] == "message_delta");
  CHECK(delta["delta"]["stop_reason"] == whole["stop_reason"]);
  CHECK(delta["delta"]["stop_sequence"].is_null());
  CHECK(delta["usage"]["output_tokens"] == whole["usage"]["output_tokens"]);
  CHECK(ev.back()["type"] == "message_stop");
  json blocks = json::array();
  bool open = false;
  std::size_t pings = 0, deltas = 0;
  std::string partial_json;
  for (std::size_t i = 1; i + 2 < ev.size(); ++i) {
    const json& e = ev[i];
    const std::string type = e["type"];
    if (type == "ping") {
      ++pings;
      continue;
    }
    if (type == "content_block_start") {
      REQUIRE_FALSE(open);
      CHECK(e["index"] == blocks.size());
      blocks.push_back(e["content_block"]);
      partial_json.clear();
      open = true;
      continue;
    }
    REQUIRE(open);
    CHECK(e["index"] == blocks.size() - 1);
    json& block = blocks.back();
    if (type == "content_block_delta") {
      ++deltas;
      const json& d = e["delta"];
      if (d["type"] == "text_delta") {
        CHECK(piece_size_ok(d["text"]));
        block["text"] = block["text"].get<std::string>() + d["text"].get<std::string>();
      } else if (d["type"] == "input_json_delta") {
        partial_json += d["partial_json"].get<std::string>();
      } else {
        FAIL("unexpected delta " << d.dump());
      }
    } else if (type == "content_block_stop") {
      if (block["type"] == "tool_use") block["input"] = json::parse(partial_json);
      open = false;
    } else {
      FAIL("unexpected event " << e.dump());
    }
  }
  CHECK_FALSE(open);
  CHECK(pings == 1);
  CHECK(deltas > 1);
  CHECK(blocks == whole["content"]);
}

// An access token from the mock's /token (it checks the assertion's claims, not its signature).
std::string vertex_token(const mock::server& s) {
  const std::string header = re::detail::base64url_encode(R"({"alg":"RS256","typ":"JWT"})");
  const std::string claims = re::detail::base64url_encode(
      json{{"iss", "robot@test-project.iam.gserviceaccount.com"},
           {"scope", "https://www.googleapis.com/auth/cloud-platform"},
           {"aud", s.origin() + "/token"}}
          .dump());
  httplib::Client cli(s.origin());
  auto r = cli.Post("/token",
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + header + "." +
                        claims + ".c2lnbmF0dXJl",
                    "application/x-www-form-urlencoded");
  REQUIRE(r);
  REQUIRE_MESSAGE(r->status == 200, r->body);
  return json::parse(r->body)["access_token"].get<std::string>();
}

// SigV4's shape, which is all the mock checks.
httplib::Headers bedrock_auth() {
  return {{"Authorization",
           "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/us-east-1/bedrock/aws4_request, "
           "SignedHeaders=content-type;host;x-amz-date, Signature=" + std::string(64, 'a')},
          {"X-Amz-Date", "20261205T120000Z"}};
}

// The messages of an AWS event stream, split by their lengths only (botocore checks the rest).
std::vector<std::string> eventstream_frames(const std::string& bytes) {
  std::vector<std::string> out;
  std::size_t at = 0;
  auto u32 = [&](std::size_t p) {
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) v = (v << 8U) | static_cast<unsigned char>(bytes[p + k]);
    return v;
  };
  while (at + 16 <= bytes.size()) {
    const std::uint32_t total = u32(at);
    REQUIRE(total >= 16);
    REQUIRE(at + total <= bytes.size());
    CHECK(u32(at + 4) + 16 <= total);
    out.push_back(bytes.substr(at, total));
    at += total;
  }
  CHECK(at == bytes.size());
  return out;
}

json chat_request(const std::string& text) {
  return {{"model", "gpt-4o-mini"}, {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}
json messages_request(const std::string& text) {
  return {{"model", "claude-sonnet-4-5"},
          {"max_tokens", 200},
          {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}
json gemini_request(const std::string& text) {
  return {{"contents", json::array({{{"role", "user"}, {"parts", json::array({{{"text", text}}})}}})}};
}

}  // namespace stream_tests
}  // namespace

TEST_CASE("mock streaming: chat completions, chunk by chunk, add up to the whole answer") {
  using namespace stream_tests;
  auto s = start();
  json req = chat_request(prompt);
  req["n"] = 2;
  const raw_answer whole = post(*s, "/v1/chat/completions", req, openai_auth());
  REQUIRE(whole.status == 200);
  const json w = json::parse(whole.body);

  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  const raw_answer streamed = post(*s, "/v1/chat/completions", req, openai_auth());
  CHECK(streamed.error == httplib::Error::Success);
  REQUIRE(streamed.status == 200);
  CHECK(streamed.header("Content-Type") == "text/event-stream");
  CHECK(streamed.header("x-request-id").rfind("req_", 0) == 0);
  const auto events = parse_sse(streamed.body);
  REQUIRE(events.size() > 6);
  CHECK(events.back().data == "[DONE]");
  std::map<std::int64_t, std::string> text, finish;
  std::map<std::int64_t, int> roles;
  std::string id;
  json usage;
  std::size_t pieces = 0;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    CHECK(events[i].event.empty());
    const json c = json::parse(events[i].data);
    if (id.empty()) id = c["id"].get<std::string>();
    CHECK(c["id"] == id);
    CHECK(c["object"] == "chat.completion.chunk");
    CHECK(c["created"].is_number_integer());
    CHECK(c["model"] == "gpt-4o-mini");
    REQUIRE(c.contains("usage"));
    if (c["choices"].empty()) {
      usage = c["usage"];
      CHECK(i + 2 == events.size());  // the usage chunk comes last
      continue;
    }
    CHECK(c["usage"].is_null());
    REQUIRE(c["choices"].size() == 1);
    const json& ch = c["choices"][0];
    const std::int64_t index = ch["index"];
    CHECK(finish.count(index) == 0);  // nothing after a choice's finish_reason
    const json& d = ch["delta"];
    if (d.contains("role")) {
      CHECK(d["role"] == "assistant");
      CHECK(d["content"] == "");
      CHECK(++roles[index] == 1);
    } else {
      CHECK(roles[index] == 1);  // the role comes first
    }
    if (d.contains("content") && !d.contains("role")) {
      CHECK(piece_size_ok(d["content"]));
      text[index] += d["content"].get<std::string>();
      ++pieces;
    }
    if (!ch["finish_reason"].is_null()) {
      CHECK(d == json::object());
      finish[index] = ch["finish_reason"].get<std::string>();
    }
  }
  CHECK(id.rfind("chatcmpl-", 0) == 0);
  CHECK(pieces > 8);
  REQUIRE(text.size() == 2);
  for (const json& choice : w["choices"]) {
    const std::int64_t index = choice["index"];
    CHECK(text[index] == choice["message"]["content"]);
    CHECK(finish[index] == choice["finish_reason"]);
  }
  CHECK(usage == w["usage"]);

  // Without include_usage: no usage anywhere; a cut answer finishes with "length".
  req = chat_request(prompt);
  req["stream"] = true;
  req["max_tokens"] = 3;
  const raw_answer cut = post(*s, "/v1/chat/completions", req, openai_auth());
  REQUIRE(cut.status == 200);
  const auto cut_events = parse_sse(cut.body);
  REQUIRE(cut_events.size() >= 4);
  CHECK(cut_events.back().data == "[DONE]");
  std::string cut_text;
  for (std::size_t i = 0; i + 1 < cut_events.size(); ++i) {
    const json c = json::parse(cut_events[i].data);
    CHECK_FALSE(c.contains("usage"));
    REQUIRE(c["choices"].size() == 1);
    if (c["choices"][0]["delta"].contains("content")) cut_text += c["choices"][0]["delta"]["content"].get<std::string>();
    if (i + 2 == cut_events.size()) CHECK(c["choices"][0]["finish_reason"] == "length");
  }
  CHECK(cut_text == std::string("Mock answer to: Gr\xc3\xbc\xc3\x9f").substr(0, 12));

  // Before the stream, errors are the usual JSON answers.
  const raw_answer wrong_key = post(*s, "/v1/chat/completions", req, {{"Authorization", "Bearer nope"}});
  CHECK(wrong_key.status == 401);
  CHECK(wrong_key.header("Content-Type") == "application/json");
  CHECK(json::parse(wrong_key.body)["error"]["code"] == "invalid_api_key");
  req.erase("messages");
  const raw_answer invalid = post(*s, "/v1/chat/completions", req, openai_auth());
  CHECK(invalid.status == 400);
  CHECK(json::parse(invalid.body)["error"]["param"] == "messages");
  CHECK(s->streamed_requests() == 2);
  // A streamed request is logged when its stream has ended, with its 200.
  CHECK(eventually([&] { return s->responses_with_status(200) == 3; }));
  s->stop();
}

TEST_CASE("mock streaming: legacy completions, text_completion chunks per choice index, usage, [DONE]") {
  using namespace stream_tests;
  auto s = start();
  json req = {{"model", "gpt-3.5-turbo-instruct"}, {"prompt", json::array({"first prompt", prompt})}, {"n", 2}};
  const raw_answer whole = post(*s, "/v1/completions", req, openai_auth());
  REQUIRE(whole.status == 200);
  const json w = json::parse(whole.body);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  const raw_answer streamed = post(*s, "/v1/completions", req, openai_auth());
  CHECK(streamed.error == httplib::Error::Success);
  REQUIRE(streamed.status == 200);
  CHECK(streamed.header("Content-Type") == "text/event-stream");
  const auto events = parse_sse(streamed.body);
  REQUIRE(events.size() > 4);
  CHECK(events.back().data == "[DONE]");
  std::map<std::int64_t, std::string> text, finish;
  json usage;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i].data);
    CHECK(c["object"] == "text_completion");
    CHECK(c["id"].get<std::string>().rfind("cmpl-", 0) == 0);
    CHECK(c["model"] == "gpt-3.5-turbo-instruct");
    if (c["choices"].empty()) {
      usage = c["usage"];
      CHECK(i + 2 == events.size());
      continue;
    }
    CHECK(c["usage"].is_null());
    const json& ch = c["choices"][0];
    const std::int64_t index = ch["index"];
    CHECK(ch.contains("logprobs"));
    CHECK(finish.count(index) == 0);
    if (!ch["finish_reason"].is_null()) {
      CHECK(ch["text"] == "");
      finish[index] = ch["finish_reason"].get<std::string>();
    } else {
      CHECK(piece_size_ok(ch["text"]));
      text[index] += ch["text"].get<std::string>();
    }
  }
  REQUIRE(text.size() == 4);
  for (const json& choice : w["choices"]) {
    const std::int64_t index = choice["index"];
    CHECK(text[index] == choice["text"]);
    CHECK(finish[index] == choice["finish_reason"]);
  }
  CHECK(usage == w["usage"]);
  s->stop();
}

TEST_CASE("mock streaming: Responses events (text, function call, incomplete, refusal) end with the whole response") {
  using namespace stream_tests;
  auto s = start();
  const json tool = {{"type", "function"},
                     {"name", "get_weather"},
                     {"strict", true},
                     {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}, {"days", {{"type", "integer"}}}}}}}};
  const std::vector<std::pair<std::string, json>> cases = {
      {"text", {{"model", "gpt-4.1"}, {"input", prompt}, {"max_output_tokens", 200}}},
      {"reasoning and a function call",
       {{"model", "o4-mini"}, {"input", "Weather?"}, {"tools", json::array({tool})}, {"tool_choice", "required"}}},
      {"incomplete", {{"model", "gpt-4.1"}, {"input", "Tell me a long story"}, {"max_output_tokens", 16}}},
      {"refusal", {{"model", "gpt-4.1"}, {"input", "please refuse this"}}}};
  for (const auto& [name, body] : cases) {
    CAPTURE(name);
    const raw_answer whole = post(*s, "/v1/responses", body, openai_auth());
    REQUIRE(whole.status == 200);
    const json w = json::parse(whole.body);
    json req = body;
    req["stream"] = true;
    const raw_answer streamed = post(*s, "/v1/responses", req, openai_auth());
    CHECK(streamed.error == httplib::Error::Success);
    REQUIRE(streamed.status == 200);
    CHECK(streamed.header("Content-Type") == "text/event-stream");
    const auto ev = typed_events(streamed.body);
    REQUIRE(ev.size() >= 6);
    for (std::size_t i = 0; i < ev.size(); ++i) CHECK(ev[i]["sequence_number"] == i);
    CHECK(ev[0]["type"] == "response.created");
    CHECK(ev[1]["type"] == "response.in_progress");
    for (std::size_t i : {std::size_t{0}, std::size_t{1}}) {
      CHECK(ev[i]["response"]["status"] == "in_progress");
      CHECK(ev[i]["response"]["output"] == json::array());
      CHECK(ev[i]["response"]["id"] == ev.back()["response"]["id"]);
    }
    const json& done = ev.back();
    CHECK(done["type"] == (w["status"] == "incomplete" ? "response.incomplete" : "response.completed"));
    const json& r = done["response"];
    // The whole response, the same as the one sent whole but for ids and the time.
    CHECK(r.size() == w.size());
    for (const char* k : {"object", "status", "incomplete_details", "model", "usage", "tools", "text", "reasoning"})
      CHECK_MESSAGE(r[k] == w[k], k);
    REQUIRE(r["output"].size() == w["output"].size());
    // What the deltas add up to, by item.
    std::map<std::string, std::string> text, refusal, arguments;
    std::map<std::string, std::size_t> added, item_done;
    for (std::size_t i = 2; i + 1 < ev.size(); ++i) {
      const json& e = ev[i];
      const std::string type = e["type"];
      const std::string item_id = e.contains("item") ? e["item"].value("id", "") : e.value("item_id", "");
      if (type == "response.output_item.added") {
        added[item_id] = e["output_index"].get<std::size_t>();
        if (e["item"]["type"] == "message") CHECK(e["item"]["content"] == json::array());
        if (e["item"]["type"] == "function_call") CHECK(e["item"]["arguments"] == "");
      } else if (type == "response.output_item.done") {
        CHECK(added.count(item_id) == 1);
        item_done[item_id] = e["output_index"].get<std::size_t>();
        CHECK(e["item"] == r["output"][e["output_index"].get<std::size_t>()]);
      } else if (type == "response.output_text.delta") {
        CHECK(piece_size_ok(e["delta"]));
        CHECK(e["content_index"] == 0);
        text[item_id] += e["delta"].get<std::string>();
      } else if (type == "response.output_text.done") {
        CHECK(e["text"] == text[item_id]);
      } else if (type == "response.refusal.delta") {
        refusal[item_id] += e["delta"].get<std::string>();
      } else if (type == "response.refusal.done") {
        CHECK(e["refusal"] == refusal[item_id]);
      } else if (type == "response.function_call_arguments.delta") {
        CHECK(piece_size_ok(e["delta"]));
        arguments[item_id] += e["delta"].get<std::string>();
      } else if (type == "response.function_call_arguments.done") {
        CHECK(e["arguments"] == arguments[item_id]);
        CHECK(e["name"] == "get_weather");
      } else if (type == "response.content_part.added") {
        CHECK(added.count(item_id) == 1);
      } else if (type == "response.content_part.done") {
        CHECK(item_done.count(item_id) == 0);
      } else {
        FAIL("unexpected event " << e.dump());
      }
    }
    CHECK(added == item_done);
    for (std::size_t i = 0; i < r["output"].size(); ++i) {
      const json& item = r["output"][i];
      const json& whole_item = w["output"][i];
      CHECK(item["type"] == whole_item["type"]);
      const std::string id = item["id"];
      CHECK(added[id] == i);
      if (item["type"] == "message") {
        const json& part = item["content"][0];
        CHECK(part == whole_item["content"][0]);
        if (part["type"] == "refusal") CHECK(refusal[id] == part["refusal"]);
        else CHECK(text[id] == part["text"]);
      } else if (item["type"] == "function_call") {
        CHECK(arguments[id] == item["arguments"]);
        CHECK(item["arguments"] == whole_item["arguments"]);
        CHECK(json::parse(arguments[id]) == json{{"city", "mock"}, {"days", 1}});
      }
    }
  }
  s->stop();
}

TEST_CASE("mock streaming: Anthropic Messages events add up to the whole message") {
  using namespace stream_tests;
  auto s = start();
  for (const int max_tokens : {200, 4}) {
    CAPTURE(max_tokens);
    json req = messages_request(prompt);
    req["max_tokens"] = max_tokens;
    const raw_answer whole = post(*s, "/v1/messages", req, anthropic_auth());
    REQUIRE(whole.status == 200);
    const json w = json::parse(whole.body);
    CHECK(w["stop_reason"] == (max_tokens == 4 ? "max_tokens" : "end_turn"));
    req["stream"] = true;
    const raw_answer streamed = post(*s, "/v1/messages", req, anthropic_auth());
    CHECK(streamed.error == httplib::Error::Success);
    REQUIRE(streamed.status == 200);
    CHECK(streamed.header("Content-Type") == "text/event-stream");
    CHECK(streamed.header("request-id").rfind("req_", 0) == 0);
    check_anthropic_events(typed_events(streamed.body), w);
  }
  json req = messages_request("x");
  req["stream"] = true;
  const raw_answer no_version = post(*s, "/v1/messages", req, {{"x-api-key", key}});
  CHECK(no_version.status == 400);
  CHECK(json::parse(no_version.body)["error"]["type"] == "invalid_request_error");
  CHECK(s->streamed_requests() == 2);
  s->stop();
}

TEST_CASE("mock streaming: Gemini and Vertex AI streamGenerateContent, streamRawPredict, the OpenAI route") {
  using namespace stream_tests;
  auto s = start();
  // The chunks of one streamed Gemini answer against the whole answer.
  auto check_gemini = [](const std::vector<json>& chunks, const json& w) {
    REQUIRE(chunks.size() > 2);
    std::map<std::int64_t, std::string> text, finish;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      const json& c = chunks[i];
      CHECK(c["modelVersion"] == w["modelVersion"]);
      CHECK(c["responseId"] == chunks[0]["responseId"]);
      CHECK(c["usageMetadata"]["promptTokenCount"] == w["usageMetadata"]["promptTokenCount"]);
      if (i + 1 == chunks.size()) CHECK(c["usageMetadata"] == w["usageMetadata"]);
      for (const json& cand : c["candidates"]) {
        const std::int64_t index = cand["index"];
        CHECK(finish.count(index) == 0);
        CHECK(cand["content"]["role"] == "model");
        REQUIRE(cand["content"]["parts"].size() == 1);
        CHECK(piece_size_ok(cand["content"]["parts"][0]["text"]));
        text[index] += cand["content"]["parts"][0]["text"].get<std::string>();
        if (cand.contains("finishReason")) finish[index] = cand["finishReason"].get<std::string>();
      }
    }
    for (const json& cand : chunks.back()["candidates"]) CHECK(cand.contains("finishReason"));
    REQUIRE(text.size() == w["candidates"].size());
    for (const json& cand : w["candidates"]) {
      const std::int64_t index = cand["index"];
      CHECK(text[index] == cand["content"]["parts"][0]["text"]);
      CHECK(finish[index] == cand["finishReason"]);
    }
  };
  auto sse_chunks = [](const raw_answer& a) {
    CHECK(a.error == httplib::Error::Success);
    REQUIRE(a.status == 200);
    CHECK(a.header("Content-Type") == "text/event-stream");
    std::vector<json> out;
    for (const auto& e : parse_sse(a.body, "\r\n")) {
      CHECK(e.event.empty());
      out.push_back(json::parse(e.data));
    }
    return out;
  };

  const httplib::Headers gkey = {{"x-goog-api-key", key}};
  json req = gemini_request(prompt);
  req["generationConfig"] = {{"candidateCount", 2}};
  const raw_answer whole = post(*s, "/v1beta/models/gemini-2.5-flash:generateContent", req, gkey);
  REQUIRE(whole.status == 200);
  const json w = json::parse(whole.body);
  check_gemini(sse_chunks(post(*s, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", req, gkey)), w);
  // Without alt=sse: the same chunks, as one JSON array.
  const raw_answer array = post(*s, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", req, gkey);
  CHECK(array.error == httplib::Error::Success);
  REQUIRE(array.status == 200);
  const json chunks = json::parse(array.body, nullptr, false);
  REQUIRE(chunks.is_array());
  check_gemini(chunks.get<std::vector<json>>(), w);
  // The key is checked before the stream.
  const raw_answer no_key = post(*s, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", req, {});
  CHECK(no_key.status == 403);
  CHECK(json::parse(no_key.body)["error"]["status"] == "PERMISSION_DENIED");

  // Vertex AI, with a token from the mock's /token.
  const httplib::Headers bearer = {{"Authorization", "Bearer " + vertex_token(*s)}};
  const std::string vertex = "/v1/projects/p/locations/us-central1/publishers/";
  const raw_answer vwhole = post(*s, vertex + "google/models/gemini-2.0-flash:generateContent", gemini_request("hi there"), bearer);
  REQUIRE(vwhole.status == 200);
  check_gemini(sse_chunks(post(*s, vertex + "google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                               gemini_request("hi there"), bearer)),
               json::parse(vwhole.body));
  CHECK(post(*s, vertex + "google/models/gemini-2.0-flash:streamGenerateContent?alt=sse", gemini_request("x"), {})
            .status == 401);

  json claude = messages_request(prompt);
  claude.erase("model");
  claude["anthropic_version"] = "vertex-2023-10-16";
  const std::string claude_path = vertex + "anthropic/models/claude-sonnet-4@20250514:";
  const raw_answer cwhole = post(*s, claude_path + "rawPredict", claude, bearer);
  REQUIRE(cwhole.status == 200);
  const json cw = json::parse(cwhole.body);
  for (const bool stream_field : {false, true}) {
    CAPTURE(stream_field);
    json body = claude;
    if (stream_field) body["stream"] = true;
    // streamRawPredict always streams; rawPredict when the body says "stream": true.
    const raw_answer streamed = post(*s, claude_path + (stream_field ? "rawPredict" : "streamRawPredict"), body, bearer);
    REQUIRE(streamed.status == 200);
    CHECK(streamed.header("Content-Type") == "text/event-stream");
    check_anthropic_events(typed_events(streamed.body), cw);
  }

  json llama = chat_request(prompt);
  llama["model"] = "meta/llama-3.3-70b-instruct-maas";
  llama["stream"] = true;
  const raw_answer openai = post(*s, "/v1beta1/projects/p/locations/us-central1/endpoints/openapi/chat/completions", llama, bearer);
  REQUIRE(openai.status == 200);
  const auto events = parse_sse(openai.body);
  REQUIRE(events.size() > 3);
  CHECK(events.back().data == "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i].data);
    if (c["choices"][0]["delta"].contains("content")) text += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  CHECK(text == std::string("Mock answer to: ") + prompt);
  CHECK(s->streamed_requests() == 6);
  s->stop();
}

TEST_CASE("mock streaming: Bedrock invoke-with-response-stream, decoded by botocore's EventStreamBuffer") {
  using namespace stream_tests;
  auto s = start();
  json req = messages_request(prompt);
  req.erase("model");
  req["anthropic_version"] = "bedrock-2023-05-31";
  const std::string model = "anthropic.claude-3-5-haiku-20241022-v1:0";
  const raw_answer whole = post(*s, "/model/" + model + "/invoke", req, bedrock_auth());
  REQUIRE(whole.status == 200);
  const json w = json::parse(whole.body);
  const raw_answer streamed = post(*s, "/model/" + model + "/invoke-with-response-stream", req, bedrock_auth());
  CHECK(streamed.error == httplib::Error::Success);
  REQUIRE(streamed.status == 200);
  CHECK(streamed.header("Content-Type") == "application/vnd.amazon.eventstream");
  CHECK(streamed.header("X-Amzn-Bedrock-Content-Type") == "application/json");
  const auto frames = eventstream_frames(streamed.body);
  CHECK(frames.size() > 6);
  // Errors before the stream are Bedrock's JSON errors.
  const raw_answer unsigned_request = post(*s, "/model/" + model + "/invoke-with-response-stream", req, {});
  CHECK(unsigned_request.status == 403);
  CHECK(unsigned_request.header("x-amzn-ErrorType").rfind("MissingAuthenticationTokenException", 0) == 0);
  // A stream error: an exception message after some events.
  s->fail_next_streams(mock::stream_fault::error_event);
  const raw_answer failed = post(*s, "/model/" + model + "/invoke-with-response-stream", req, bedrock_auth());
  CHECK(failed.error == httplib::Error::Success);
  REQUIRE(failed.status == 200);
  CHECK(eventstream_frames(failed.body).size() == frames.size() / 2 + 1);
  s->stop();

  const std::string dir = make_temp_dir("eventstream");
  std::ofstream(dir + "/stream.bin", std::ios::binary) << streamed.body;
  std::ofstream(dir + "/failed.bin", std::ios::binary) << failed.body;
  const reference::run_result r = reference::run("eventstream_botocore.py", {dir + "/stream.bin"}, dir);
  if (!reference::ran(r)) return;
  std::vector<json> events;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const json m = json::parse(line);
    CHECK(m["headers"] == json{{":event-type", "chunk"}, {":content-type", "application/json"}, {":message-type", "event"}});
    REQUIRE(m.contains("event"));
    events.push_back(m["event"]);
  }
  CHECK(events.size() == frames.size());
  REQUIRE(!events.empty());
  const json metrics = events.back()["amazon-bedrock-invocationMetrics"];
  CHECK(metrics["inputTokenCount"] == w["usage"]["input_tokens"]);
  CHECK(metrics["outputTokenCount"] == w["usage"]["output_tokens"]);
  events.back().erase("amazon-bedrock-invocationMetrics");
  CHECK(events.back() == json{{"type", "message_stop"}});
  check_anthropic_events(events, w);

  const reference::run_result f = reference::run("eventstream_botocore.py", {dir + "/failed.bin"}, dir);
  REQUIRE(reference::ran(f));
  std::vector<json> messages;
  std::istringstream flines(f.out);
  for (std::string line; std::getline(flines, line);) messages.push_back(json::parse(line));
  REQUIRE(messages.size() == frames.size() / 2 + 1);
  CHECK(messages.front()["event"]["type"] == "message_start");
  const json& last = messages.back();
  CHECK(last["headers"][":message-type"] == "exception");
  CHECK(last["headers"][":exception-type"] == "modelStreamErrorException");
  CHECK(json::parse(last["payload"].get<std::string>())["message"].get<std::string>().find("Overloaded") !=
        std::string::npos);
}

TEST_CASE("mock streaming: faults after the 200 (cut, error event, stall), forced and by rate; stop ends a stall") {
  using namespace stream_tests;
  mock::server_options so;
  so.stream_stall_ms = 300;
  auto s = start(so);
  json chat = chat_request("hello there, stream");
  chat["stream"] = true;

  // Cut: about half the events, then the connection closes, with no [DONE]; the next is whole.
  s->fail_next_streams(mock::stream_fault::cut);
  const raw_answer cut = post(*s, "/v1/chat/completions", chat, openai_auth());
  CHECK(cut.status == 200);
  CHECK(cut.error != httplib::Error::Success);
  CHECK(cut.body.find("[DONE]") == std::string::npos);
  const std::size_t half = parse_sse(cut.body).size();
  const raw_answer next = post(*s, "/v1/chat/completions", chat, openai_auth());
  CHECK(next.error == httplib::Error::Success);
  const auto all = parse_sse(next.body);
  CHECK(all.back().data == "[DONE]");
  CHECK(half == all.size() / 2);

  // An error event in each format's shape, then the stream ends (no terminator).
  s->fail_next_streams(mock::stream_fault::error_event, 5);
  {
    const raw_answer a = post(*s, "/v1/chat/completions", chat, openai_auth());
    CHECK(a.error == httplib::Error::Success);
    const auto ev = parse_sse(a.body);
    CHECK(ev.size() == all.size() / 2 + 1);
    const json e = json::parse(ev.back().data);
    CHECK(e["error"]["type"] == "server_error");
    CHECK(e["error"]["message"].is_string());
    CHECK(e["error"].contains("code"));
  }
  {
    const raw_answer a = post(*s, "/v1/completions", json{{"model", "m"}, {"prompt", "p"}, {"stream", true}}, openai_auth());
    const auto ev = parse_sse(a.body);
    CHECK(json::parse(ev.back().data)["error"]["type"] == "server_error");
    CHECK(a.body.find("[DONE]") == std::string::npos);
  }
  {
    const raw_answer a =
        post(*s, "/v1/responses", json{{"model", "gpt-4.1"}, {"input", "hello"}, {"stream", true}}, openai_auth());
    const auto ev = typed_events(a.body);
    REQUIRE(ev.size() > 2);
    CHECK(ev.back()["type"] == "error");
    CHECK(ev.back()["code"] == "server_error");
    CHECK(ev.back()["message"].is_string());
    CHECK(ev.back()["param"].is_null());
    CHECK(ev.back()["sequence_number"] == ev.size() - 1);
    CHECK(a.body.find("response.completed") == std::string::npos);
  }
  {
    json m = messages_request("hello");
    m["stream"] = true;
    const raw_answer a = post(*s, "/v1/messages", m, anthropic_auth());
    const auto ev = typed_events(a.body);
    CHECK(ev.back() == json{{"type", "error"}, {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}});
    CHECK(ev.front()["type"] == "message_start");
    CHECK(a.body.find("message_stop") == std::string::npos);
  }
  {
    const raw_answer a = post(*s, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                              gemini_request("hello there, stream"), {{"x-goog-api-key", key}});
    const auto ev = parse_sse(a.body, "\r\n");
    REQUIRE(ev.size() >= 2);
    const json e = json::parse(ev.back().data);
    CHECK(e["error"]["code"] == 503);
    CHECK(e["error"]["status"] == "UNAVAILABLE");
    CHECK(json::parse(ev.front().data).contains("candidates"));
  }

  // Stall: half, silence for stream_stall_ms, then the connection closes.
  s->fail_next_streams(mock::stream_fault::stall);
  const raw_answer stalled = post(*s, "/v1/chat/completions", chat, openai_auth());
  CHECK(stalled.error != httplib::Error::Success);
  CHECK(stalled.body.find("[DONE]") == std::string::npos);
  REQUIRE_FALSE(stalled.arrivals.empty());
  CHECK(stalled.ended - stalled.arrivals.back() >= std::chrono::milliseconds(250));

  // By rate: every stream cut, drawn anew after set_stream_fault_rates; then none.
  s->set_stream_fault_rates(1, 0, 0);
  for (int i = 0; i < 2; ++i) CHECK(post(*s, "/v1/chat/completions", chat, openai_auth()).error != httplib::Error::Success);
  s->set_stream_fault_rates(0, 0, 0);
  CHECK(post(*s, "/v1/chat/completions", chat, openai_auth()).error == httplib::Error::Success);
  // A non-streamed request never draws a stream fault.
  s->set_stream_fault_rates(0, 1, 0);
  const raw_answer plain = post(*s, "/v1/chat/completions", chat_request("x"), openai_auth());
  CHECK(plain.status == 200);
  CHECK(json::parse(plain.body)["object"] == "chat.completion");
  CHECK(s->streamed_requests() == 11);
  s->stop();

  mock::server_options bad;
  bad.fail_stream_cut = 0.6;
  bad.fail_stream_stall = 0.6;
  CHECK_THROWS_AS(mock::server{bad}, std::invalid_argument);
  bad = mock::server_options();
  bad.stream_chunk_bytes = 0;
  CHECK_THROWS_AS(mock::server{bad}, std::invalid_argument);

  // stop() does not wait for a long stall to end.
  so.stream_stall_ms = 60000;
  auto slow = start(so);
  slow->fail_next_streams(mock::stream_fault::stall);
  raw_answer held;
  std::thread client([&] { held = post(*slow, "/v1/chat/completions", chat, openai_auth()); });
  REQUIRE(eventually([&] { return slow->streamed_requests() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t0 = steady::now();
  slow->stop();
  client.join();
  CHECK(steady::now() - t0 < std::chrono::seconds(3));
  CHECK(held.error != httplib::Error::Success);
}

TEST_CASE("mock streaming: events are written one by one, stream_event_delay_ms apart; limits and faults come first") {
  using namespace stream_tests;
  mock::server_options so;
  so.stream_event_delay_ms = 40;
  so.stream_chunk_bytes = 6;
  auto s = start(so);
  json chat = chat_request("hi");  // "Mock answer to: hi": 3 pieces, so 6 events and 5 pauses
  chat["stream"] = true;
  const raw_answer paced = post(*s, "/v1/chat/completions", chat, openai_auth());
  CHECK(paced.error == httplib::Error::Success);
  const auto events = parse_sse(paced.body);
  REQUIRE(events.size() == 6);
  CHECK(paced.arrivals.size() >= 4);  // not one write at the end
  REQUIRE_FALSE(paced.arrivals.empty());
  CHECK(paced.ended - paced.arrivals.front() >= std::chrono::milliseconds(160));
  s->stop();

  // A limit or an injected fault answers as for a whole answer: JSON, before any stream.
  mock::server_options limited;
  limited.rpm = 1;
  s = start(limited);
  CHECK(post(*s, "/v1/chat/completions", chat, openai_auth()).status == 200);
  const raw_answer over = post(*s, "/v1/chat/completions", chat, openai_auth());
  CHECK(over.status == 429);
  CHECK(over.header("Content-Type") == "application/json");
  CHECK_FALSE(over.header("retry-after").empty());
  CHECK(json::parse(over.body)["error"]["code"] == "rate_limit_exceeded");
  s->set_rate_limits(0, 0);
  s->set_fault_rates(1, 0, 0);
  json m = messages_request("x");
  m["stream"] = true;
  const raw_answer failed = post(*s, "/v1/messages", m, anthropic_auth());
  CHECK(failed.status == 500);
  CHECK(json::parse(failed.body)["error"]["type"] == "api_error");
  CHECK(s->streamed_requests() == 1);
  s->stop();
}
// @end mock-streaming-tests

// ---------------------------------------------------------------------------------------------
// Streaming end to end: every provider against the mock's streams, over HTTP and HTTPS.
// ---------------------------------------------------------------------------------------------

namespace {
namespace stream_e2e {

const char* const key = "sk-stream-e2e-5d6e7f8091a2b3c4";

std::unique_ptr<mock::server> start(bool tls) {
  mock::server_options so;
  so.api_key = key;
  so.stream_chunk_bytes = 3;  // many pieces
  if (tls) {
    so.cert_path = google_tests::pki().server_cert;
    so.key_path = google_tests::pki().server_key;
  }
  auto s = std::make_unique<mock::server>(so);
  s->start();
  return s;
}

std::shared_ptr<re::google_token_source> tokens_for(const mock::server& s) {
  const std::string path = google_tests::scratch("stream-sa") + "/key.json";
  std::ofstream(path) << re::json{{"type", "service_account"},
                                  {"project_id", "test-project"},
                                  {"private_key_id", "key-7"},
                                  {"private_key", google_tests::rsa_key().pem},
                                  {"client_email", "robot@test-project.iam.gserviceaccount.com"},
                                  {"client_id", "1234"},
                                  {"token_uri", s.origin() + "/token"}}.dump(2);
  auto t = std::make_shared<re::google_token_source>(re::google_service_account::from_file(path));
  t->ca_cert_file(google_tests::pki().ca_cert);
  return t;
}

// Two answers to the same request (different responses: ids differ) carry the same content.
void check_same_completion_across(const re::completion& a, const re::completion& b) {
  CHECK(a.text == b.text);
  CHECK(a.finish_reason == b.finish_reason);
  CHECK(a.model == b.model);
  CHECK(a.choices.size() == b.choices.size());
  CHECK(a.tool_calls().size() == b.tool_calls().size());
  CHECK(a.usage.input_tokens == b.usage.input_tokens);
  CHECK(a.usage.output_tokens == b.usage.output_tokens);
  CHECK(a.usage.reasoning_tokens == b.usage.reasoning_tokens);
  CHECK(a.usage.cached_input_tokens == b.usage.cached_input_tokens);
}

// One provider's whole check: the same prompts unstreamed and streamed give the same
// completions; the pieces add up to the text; the mock's faults (a cut, an error event, a
// stall) are retried and the good answer is what comes back.
template <class P>
void check_provider(const std::string& name, const P& provider, mock::server& server, const re::params& params,
                    bool system_prompt = true) {
  INFO("provider " << name);
  const std::vector<re::conversation> inputs = {
      re::conversation().user("stream check one"),
      system_prompt ? re::conversation().system("Be brief").user("stream check two")
                    : re::conversation().user("stream check two")};
  auto base = re::options()
                  .concurrency(2)
                  .progress_bar(false)
                  .ca_cert_file(google_tests::pki().ca_cert)
                  .initial_backoff(std::chrono::milliseconds(1))
                  .read_timeout(std::chrono::milliseconds(1500));
  re::engine<P, re::no_cache> whole(provider, re::options(base).stream(re::stream_mode::never));
  auto expected = whole.run(inputs, params);
  std::mutex m;
  std::map<std::size_t, std::string> joined;
  std::map<std::size_t, int> last_attempt;
  auto streamed_opts = re::options(base).stream(re::stream_mode::always).on_delta([&](std::size_t i, const re::stream_delta& d) {
    std::lock_guard<std::mutex> lock(m);
    if (d.attempt != last_attempt[i]) joined[i].clear();  // a retry starts over
    last_attempt[i] = d.attempt;
    if (d.type == re::stream_delta::kind::text) joined[i] += d.text;
  });
  re::engine<P, re::no_cache> streamed(provider, streamed_opts);
  const std::size_t before = server.streamed_requests();
  auto got = streamed.run(inputs, params);
  CHECK(server.streamed_requests() - before == inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE_MESSAGE(expected[i], expected[i].error().describe());
    REQUIRE_MESSAGE(got[i], got[i].error().describe());
    CHECK(got[i]->text.size() > 10);
    check_same_completion_across(*got[i], *expected[i]);
    CHECK(joined[i] == got[i]->text);
    CHECK(got[i]->time_to_first_token);
    CHECK_FALSE(expected[i]->time_to_first_token);
  }
  for (auto fault : {mock::stream_fault::cut, mock::stream_fault::error_event, mock::stream_fault::stall}) {
    INFO("fault " << static_cast<int>(fault));
    server.fail_next_streams(fault, 1);
    auto again = streamed.run({inputs[0]}, params);
    REQUIRE_MESSAGE(again[0], again[0].error().describe());
    CHECK(again[0]->attempts == 2);
    CHECK(again[0]->text == expected[0]->text);
    std::lock_guard<std::mutex> lock(m);
    CHECK(joined[0] == expected[0]->text);
  }
}

}  // namespace stream_e2e
}  // namespace

TEST_CASE("streaming end to end: every provider's stream from the mock gives the unstreamed answer; faults are retried") {
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    auto server = stream_e2e::start(tls);
    const std::string base = server->base_url();  // ends in /v1
    const std::string origin = server->origin();
    const re::params p = re::params().max_tokens(200);
    stream_e2e::check_provider("openai_compatible", re::openai_compatible(stream_e2e::key, base, "mock-model"), *server, p);
    stream_e2e::check_provider("openai_completions", re::openai_completions(stream_e2e::key, base, "mock-base"), *server,
                               p, false);
    stream_e2e::check_provider("openai_responses", re::openai_responses(stream_e2e::key, base, "o3-pro"), *server, p);
    stream_e2e::check_provider("anthropic", re::anthropic(stream_e2e::key, "claude-mock", origin), *server, p);
    stream_e2e::check_provider("gemini", re::gemini(stream_e2e::key, "gemini-2.5-flash", origin), *server, p);
    auto tokens = stream_e2e::tokens_for(*server);
    stream_e2e::check_provider("vertex_gemini", re::vertex_gemini(tokens, "us-central1", "gemini-2.5-flash", {}, origin),
                               *server, p);
    stream_e2e::check_provider("vertex_anthropic",
                               re::vertex_anthropic(tokens, "us-central1", "claude-sonnet-4-5", {}, origin), *server, p);
    stream_e2e::check_provider("vertex_openai",
                               re::vertex_openai(tokens, "us-central1", "meta/llama-3.3-70b-instruct-maas", {}, origin),
                               *server, p);
    stream_e2e::check_provider("bedrock_anthropic",
                               re::bedrock_anthropic(aws_test::credentials(), "us-east-1", aws_test::model_id, origin),
                               *server, p);
  }
}

// --- Headers of the user's own, presets, Azure OpenAI, prompt caching ------------------------

namespace {
namespace own_headers_tests {

// Every value of header `name` (case-insensitive) in `h`.
std::vector<std::string> values_of(const re::header_list& h, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& kv : h) {
    std::string a = kv.first, b = name;
    std::transform(a.begin(), a.end(), a.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::transform(b.begin(), b.end(), b.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (a == b) out.push_back(kv.second);
  }
  return out;
}

// Sets the same three headers on a provider: one plain, one secret, one that replaces a header
// the provider sets itself (Accept, which every built-in provider sends).
template <class P>
P with_three(P p) {
  p.headers().set("X-Org", "acme").set("X-Gateway-Key", "gw-secret-0123456789abcdef", re::header_use::secret);
  p.headers().set("accept", "application/x-test");
  return p;
}

// No file under `dir` (a cache folder) holds `secret`.
void check_no_file_holds(const std::string& dir, const std::string& secret) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) CHECK_MESSAGE(slurp(e.path()).find(secret) == std::string::npos, e.path());
}

// A stream request's Accept is the stream's media type, whatever was set.
template <class Request>
void check_three(const Request& made, const std::string& provider, bool stream = false) {
  CAPTURE(provider);
  const re::http_request& r = made;
  CHECK(values_of(r.headers, "X-Org") == std::vector<std::string>{"acme"});
  CHECK(values_of(r.headers, "X-Gateway-Key") == std::vector<std::string>{"gw-secret-0123456789abcdef"});
  CHECK(values_of(r.headers, "Accept").size() == 1);
  if (!stream) CHECK(values_of(r.headers, "Accept") == std::vector<std::string>{"application/x-test"});
}

}  // namespace own_headers_tests
}  // namespace

TEST_CASE("extra_headers: set, replace, erase; bad names and values refused, a secret's value never shown") {
  re::extra_headers h;
  CHECK(h.empty());
  h.set("X-One", "1").set("x-one", "2");  // case-insensitive: replaced
  CHECK(h.size() == 1);
  CHECK(h.get("X-ONE") == std::optional<std::string>("2"));
  h.set("Authorization", "Bearer gateway-token-0123456789", re::header_use::secret);
  CHECK(h.secrets() == std::vector<std::string>{"Bearer gateway-token-0123456789"});
  re::header_list list = {{"authorization", "Bearer provider-key"}, {"Accept", "application/json"}};
  h.apply_to(list);
  CHECK(own_headers_tests::values_of(list, "Authorization") == std::vector<std::string>{"Bearer gateway-token-0123456789"});
  CHECK(own_headers_tests::values_of(list, "x-one") == std::vector<std::string>{"2"});
  CHECK(own_headers_tests::values_of(list, "Accept") == std::vector<std::string>{"application/json"});
  h.erase("authorization");
  CHECK(h.size() == 1);
  CHECK_FALSE(h.get("Authorization"));

  // Identity headers only, lower-cased, and nothing added when there are none.
  re::json id = {{"kind", "x"}};
  h.add_identity(id);
  CHECK(id == re::json{{"kind", "x"}});
  h.set("OpenAI-Project", "proj_1", re::header_use::identity);
  h.add_identity(id);
  CHECK(id == re::json{{"kind", "x"}, {"headers", {{"openai-project", "proj_1"}}}});

  // What a header cannot carry is refused, naming the header; a secret's value never.
  CHECK_THROWS_WITH_AS(h.set("Bad Name", "v"), doctest::Contains("'Bad Name' is not an HTTP token"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(h.set("", "v"), doctest::Contains("needs a name"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(h.set("X\r\nInjected", "v"), doctest::Contains("X\\x0d\\x0aInjected"), std::invalid_argument);
  try {
    h.set("X-Key", "secret-value-0123456789\r\nX-Evil: 1", re::header_use::secret);
    FAIL("a value with CR LF was taken");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find("'X-Key'") != std::string::npos);
    CHECK(what.find("line break") != std::string::npos);
    CHECK(what.find("secret-value") == std::string::npos);
  }
  CHECK(h.size() == 2);  // X-One and OpenAI-Project: nothing half-set
}

TEST_CASE("extra headers on every built-in provider: on each request and stream request; secrets and identity") {
  using namespace own_headers_tests;
  check_three(with_three(re::openai_compatible("sk-test", "http://127.0.0.1:9/v1", "m")).make_request("{}"), "chat");
  check_three(with_three(re::openai_compatible("sk-test", "http://127.0.0.1:9/v1", "m")).make_stream_request("{}"),
              "chat stream", true);
  check_three(with_three(re::openai_completions("sk-test", "http://127.0.0.1:9/v1", "m")).make_request("{}"),
              "completions");
  check_three(with_three(re::openai_responses("sk-test", "http://127.0.0.1:9/v1", "m")).make_request("{}"), "responses");
  check_three(with_three(re::openai_embeddings("sk-test", "http://127.0.0.1:9/v1", "m")).make_request("{}"),
              "embeddings");
  check_three(with_three(re::anthropic("sk-ant-test", "claude-haiku-4-5", "http://127.0.0.1:9")).make_request("{}"),
              "anthropic");
  check_three(with_three(re::anthropic("sk-ant-test", "claude-haiku-4-5", "http://127.0.0.1:9")).make_stream_request("{}"),
              "anthropic stream", true);
  check_three(with_three(re::gemini("AIza-test", "gemini-2.0-flash", "http://127.0.0.1:9")).make_request("{}"),
              "gemini");
  check_three(with_three(re::gemini("AIza-test", "gemini-2.0-flash", "http://127.0.0.1:9")).make_stream_request("{}"),
              "gemini stream", true);
  re::aws_credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  const auto bedrock = with_three(re::bedrock_anthropic(creds, "us-east-1", "anthropic.claude-3-haiku", "http://127.0.0.1:9"));
  const re::http_request signed_request = bedrock.make_request_at("{}", "20260101T000000Z");
  check_three(signed_request, "bedrock");
  // Sent, not signed: SigV4 lets a request carry headers it did not sign, so a gateway's header
  // cannot break the signature.
  const std::string auth = values_of(signed_request.headers, "Authorization").at(0);
  CHECK(auth.find("SignedHeaders=accept;content-type;host;x-amz-date,") != std::string::npos);

  // Secrets: the provider's own and the secret header; identity: unchanged by the plain and
  // secret ones, so that adding them leaves stored answers replaying.
  auto chat = re::openai_compatible("sk-test-0123456789", "http://127.0.0.1:9/v1", "m");
  const re::json before = chat.cache_identity();
  chat = with_three(chat);
  CHECK(chat.secrets() == std::vector<std::string>{"sk-test-0123456789", "gw-secret-0123456789abcdef"});
  CHECK(chat.cache_identity() == before);
  chat.headers().set("OpenAI-Project", "proj_1", re::header_use::identity);
  CHECK(chat.cache_identity()["headers"] == re::json{{"openai-project", "proj_1"}});
  auto claude = with_three(re::anthropic("sk-ant-test", "claude-haiku-4-5", "http://127.0.0.1:9"));
  CHECK(claude.secrets().back() == "gw-secret-0123456789abcdef");
  CHECK_FALSE(claude.cache_identity().contains("headers"));
}

TEST_CASE("extra headers end to end: a gateway that wants its own header, over HTTP and HTTPS; the secret one never "
          "reaches an error, a log or the cache") {
  using own_headers_tests::check_no_file_holds;
  const std::string gateway_key = "gw-live-7c1e9a2b3d4f5e6a7b8c9d0e";
  const auto pki = mock::make_test_pki(make_temp_dir("own-headers-pki"));
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    mock::server_options so;
    so.required_headers = {{"X-Gateway-Key", gateway_key}};
    if (tls) {
      so.cert_path = pki.server_cert;
      so.key_path = pki.server_key;
    }
    mock::server server(so);
    server.start();
    const std::string cache_dir = make_temp_dir(tls ? "own-headers-cache-tls" : "own-headers-cache");
    std::mutex m;
    std::vector<std::string> logs;
    auto opts = [&] {
      return re::options().concurrency(2).max_retries(0).progress_bar(false).ca_cert_file(pki.ca_cert).cache_dir(cache_dir).on_log(
          [&](std::string_view line) {
            std::lock_guard<std::mutex> lock(m);
            logs.emplace_back(line);
          });
    };
    // Without the header the gateway refuses; with it the request goes through.
    {
      re::engine<re::openai_compatible> engine(re::openai_compatible("", server.base_url(), "m"), opts());
      auto r = engine.run({re::conversation().user("no header")});
      REQUIRE_FALSE(r[0]);
      CHECK(r[0].error().provider_code == "gateway_header");
    }
    re::openai_compatible provider("", server.base_url(), "m");
    provider.headers().set("X-Gateway-Key", gateway_key, re::header_use::secret).set("X-Org", "acme");
    re::engine<re::openai_compatible> engine(provider, opts());
    auto ok = engine.run({re::conversation().user("with header")});
    REQUIRE(ok[0]);
    CHECK(ok[0]->text == "Mock answer to: with header");
    const auto headers = server.received_headers();
    REQUIRE_FALSE(headers.empty());
    CHECK(headers.back().find("X-Org")->second == "acme");

    // A server that repeats the header in its error: the message has it redacted.
    server.set_on_chat([&](const httplib::Request& req, httplib::Response& res) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"bad gateway key )" + req.get_header_value("X-Gateway-Key") +
                          R"(","type":"invalid_request_error","code":"bad_key"}})",
                      "application/json");
      return true;
    });
    auto refused = engine.run({re::conversation().user("echo it")});
    REQUIRE_FALSE(refused[0]);
    CHECK(refused[0].error().message.find(gateway_key) == std::string::npos);
    CHECK(refused[0].error().message.find("[redacted]") != std::string::npos);
    server.stop();
    std::lock_guard<std::mutex> lock(m);
    for (const auto& line : logs) CHECK(line.find(gateway_key) == std::string::npos);
    check_no_file_holds(cache_dir, gateway_key);
  }
}

TEST_CASE("openai_compatible presets for batch hosts: OpenRouter, Mistral, DeepSeek, xAI, Fireworks") {
  // Unset here, put back as they were at the end.
  using aws_test::scoped_env;
  scoped_env openrouter("OPENROUTER_API_KEY", nullptr), mistral("MISTRAL_API_KEY", nullptr),
      deepseek("DEEPSEEK_API_KEY", nullptr), xai("XAI_API_KEY", nullptr), fireworks("FIREWORKS_API_KEY", nullptr);
  struct preset {
    const char* variable;
    std::function<re::openai_compatible()> make;
    const char* endpoint;
  };
  const std::vector<preset> presets = {
      {"OPENROUTER_API_KEY", [] { return re::openai_compatible::openrouter("anthropic/claude-haiku-4.5"); },
       "https://openrouter.ai/api/v1/chat/completions"},
      {"MISTRAL_API_KEY", [] { return re::openai_compatible::mistral("mistral-small-latest"); },
       "https://api.mistral.ai/v1/chat/completions"},
      {"DEEPSEEK_API_KEY", [] { return re::openai_compatible::deepseek("deepseek-chat"); },
       "https://api.deepseek.com/v1/chat/completions"},
      {"XAI_API_KEY", [] { return re::openai_compatible::xai("grok-4"); }, "https://api.x.ai/v1/chat/completions"},
      {"FIREWORKS_API_KEY", [] { return re::openai_compatible::fireworks("accounts/fireworks/models/llama-v3p1-8b-instruct"); },
       "https://api.fireworks.ai/inference/v1/chat/completions"},
  };
  for (const auto& p : presets) {
    CAPTURE(p.variable);
    const std::string key = std::string("key-of-") + p.variable;
    ::setenv(p.variable, key.c_str(), 1);
    const re::openai_compatible provider = p.make();
    CHECK(provider.endpoint() == p.endpoint);
    const re::http_request r = provider.make_request("{}");
    CHECK(r.url == p.endpoint);
    CHECK(own_headers_tests::values_of(r.headers, "Authorization") == std::vector<std::string>{"Bearer " + key});
    CHECK(provider.secrets() == std::vector<std::string>{key});
    ::unsetenv(p.variable);
    CHECK_THROWS_WITH_AS(p.make(), doctest::Contains((std::string(p.variable) + " is not set").c_str()), std::invalid_argument);
  }
  // OpenRouter's attribution headers, when given.
  ::setenv("OPENROUTER_API_KEY", "sk-or-test", 1);
  const re::http_request r =
      re::openai_compatible::openrouter("openai/gpt-4o-mini", "https://example.org/app", "My App").make_request("{}");
  CHECK(own_headers_tests::values_of(r.headers, "HTTP-Referer") == std::vector<std::string>{"https://example.org/app"});
  CHECK(own_headers_tests::values_of(r.headers, "X-Title") == std::vector<std::string>{"My App"});
}

TEST_CASE("azure_openai_settings: the environment as the official SDK reads it, and the URLs of both schemes") {
  // Unset here, put back as they were at the end.
  using aws_test::scoped_env;
  scoped_env endpoint("AZURE_OPENAI_ENDPOINT", nullptr), key("AZURE_OPENAI_API_KEY", nullptr),
      token("AZURE_OPENAI_AD_TOKEN", nullptr), version("OPENAI_API_VERSION", nullptr);
  CHECK_THROWS_WITH_AS(re::azure_openai_settings::from_environment(), doctest::Contains("AZURE_OPENAI_ENDPOINT is not set"),
                       std::invalid_argument);
  ::setenv("AZURE_OPENAI_ENDPOINT", "https://contoso.openai.azure.com/", 1);
  CHECK_THROWS_WITH_AS(re::azure_openai_settings::from_environment(), doctest::Contains("AZURE_OPENAI_API_KEY is not set"),
                       std::invalid_argument);
  ::setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789abcdef", 1);
  re::azure_openai_settings s = re::azure_openai_settings::from_environment();
  CHECK(s.api_version.empty());
  CHECK(s.url("chat/completions", "gpt4o-prod") == "https://contoso.openai.azure.com/openai/v1/chat/completions");
  CHECK(s.url("responses", "gpt4o-prod") == "https://contoso.openai.azure.com/openai/v1/responses");
  CHECK(s.url("embeddings", "emb") == "https://contoso.openai.azure.com/openai/v1/embeddings");
  const auto v1 = re::openai_compatible::azure("gpt4o-prod");
  CHECK(v1.endpoint() == "https://contoso.openai.azure.com/openai/v1/chat/completions");
  CHECK(v1.model() == "gpt4o-prod");  // the deployment is the body's model
  const re::http_request r = v1.make_request("{}");
  CHECK(own_headers_tests::values_of(r.headers, "api-key") == std::vector<std::string>{"azure-key-0123456789abcdef"});
  CHECK(own_headers_tests::values_of(r.headers, "Authorization").empty());
  CHECK(r.url.find("azure-key") == std::string::npos);

  ::setenv("OPENAI_API_VERSION", "2024-10-21", 1);
  s = re::azure_openai_settings::from_environment();
  CHECK(s.url("chat/completions", "gpt4o-prod") ==
        "https://contoso.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21");
  CHECK(s.url("embeddings", "emb") ==
        "https://contoso.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21");
  CHECK(s.url("responses", "gpt4o-prod") == "https://contoso.openai.azure.com/openai/responses?api-version=2024-10-21");
  CHECK(re::openai_embeddings::azure("emb").endpoint() ==
        "https://contoso.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21");
  // An endpoint given as the v1 base works for both.
  s.endpoint = "https://contoso.openai.azure.com/openai/v1";
  CHECK(s.url("chat/completions", "d") == "https://contoso.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21");
  s.api_version.clear();
  CHECK(s.url("chat/completions", "d") == "https://contoso.openai.azure.com/openai/v1/chat/completions");

  // An Entra ID token instead of a key: Authorization: Bearer, no api-key.
  ::unsetenv("AZURE_OPENAI_API_KEY");
  ::setenv("AZURE_OPENAI_AD_TOKEN", "eyJ0eXAiOiJKV1QiLCJhbGciOi.entra-token", 1);
  const re::http_request entra = re::openai_responses::azure("d").make_request("{}");
  CHECK(own_headers_tests::values_of(entra.headers, "Authorization") ==
        std::vector<std::string>{"Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.entra-token"});
  CHECK(own_headers_tests::values_of(entra.headers, "api-key").empty());

  // What cannot stand in a URL is refused, naming it.
  CHECK_THROWS_WITH_AS(s.url("chat/completions", "my deployment"), doctest::Contains("deployment name 'my deployment'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(s.url("chat/completions", ""), doctest::Contains("no deployment name"), std::invalid_argument);
  s.api_version = "2024-10-21&x=1";
  CHECK_THROWS_WITH_AS(s.url("chat/completions", "d"), doctest::Contains("api-version '2024-10-21&x=1'"),
                       std::invalid_argument);
  s.api_version.clear();
  s.endpoint = "contoso.openai.azure.com";
  CHECK_THROWS_AS(s.url("chat/completions", "d"), std::invalid_argument);
}

TEST_CASE("Azure OpenAI end to end over HTTP and HTTPS, v1 and classic routes: chat, streamed chat, Responses, "
          "embeddings; the key in api-key, never in a URL, an error, a log or the cache") {
  const std::string key = "azure-e2e-key-5b6c7d8e9f0a1b2c3d4e";
  const auto pki = mock::make_test_pki(make_temp_dir("azure-pki"));
  for (const bool tls : {false, true}) {
    for (const std::string version : {"", "2024-10-21"}) {
      CAPTURE(tls);
      CAPTURE(version);
      mock::server_options so;
      so.api_key = key;
      so.log_requests_path = make_temp_dir("azure-log") + "/requests.jsonl";
      if (tls) {
        so.cert_path = pki.server_cert;
        so.key_path = pki.server_key;
      }
      mock::server server(so);
      server.start();
      re::azure_openai_settings where;
      where.endpoint = server.origin();
      where.api_key = key;
      where.api_version = version;
      const std::string cache_dir = make_temp_dir("azure-cache");
      std::mutex m;
      std::vector<std::string> logs;
      const re::options opts =
          re::options().concurrency(2).max_retries(0).progress_bar(false).ca_cert_file(pki.ca_cert).cache_dir(cache_dir).on_log(
              [&](std::string_view line) {
                std::lock_guard<std::mutex> lock(m);
                logs.emplace_back(line);
              });

      re::engine<re::openai_compatible> chat(re::openai_compatible::azure("gpt-4o-mini", where), opts);
      auto answers = chat.run({re::conversation().user("hello azure")}, re::params().max_tokens(50));
      REQUIRE_MESSAGE(answers[0], answers[0].error().describe());
      CHECK(answers[0]->text == "Mock answer to: hello azure");
      CHECK(answers[0]->raw().contains("prompt_filter_results"));  // it went through Azure's route
      const auto headers = server.received_headers();
      REQUIRE_FALSE(headers.empty());
      CHECK(headers.back().find("api-key")->second == key);
      CHECK(headers.back().find("Authorization") == headers.back().end());
      // Streamed: Azure's first chunk has no choices, only the prompt's filter results.
      re::engine<re::openai_compatible, re::no_cache> streaming(re::openai_compatible::azure("gpt-4o-mini", where),
                                                                re::options(opts).stream(re::stream_mode::always));
      auto streamed = streaming.run({re::conversation().user("stream it")}, re::params().max_tokens(50));
      REQUIRE_MESSAGE(streamed[0], streamed[0].error().describe());
      CHECK(streamed[0]->usage.output_tokens > 0);
      CHECK(streamed[0]->text == "Mock answer to: stream it");

      re::engine<re::openai_responses> responses(re::openai_responses::azure("gpt-4o-mini", where), opts);
      auto r = responses.run({re::conversation().user("respond")});
      REQUIRE_MESSAGE(r[0], r[0].error().describe());
      CHECK(r[0]->text == "Mock answer to: respond");

      re::engine<re::openai_embeddings> embed(re::openai_embeddings::azure("text-embedding-3-small", where), opts);
      auto e = embed.run({re::conversation().user("embed me")});
      REQUIRE_MESSAGE(e[0], e[0].error().describe());
      CHECK_FALSE(e[0]->embedding_vector.empty());

      // A wrong key: an authentication error that does not show it.
      re::azure_openai_settings wrong = where;
      wrong.api_key = "azure-wrong-key-00112233445566778899";
      re::engine<re::openai_compatible, re::no_cache> bad(re::openai_compatible::azure("gpt-4o-mini", wrong), opts);
      auto refused = bad.run({re::conversation().user("x")});
      REQUIRE_FALSE(refused[0]);
      CHECK(refused[0].error().code == re::error_code::authentication);
      CHECK(refused[0].error().message.find("azure-wrong-key") == std::string::npos);
      server.stop();

      // The paths the server saw: the scheme's, never a key.
      const std::string log_text = slurp(so.log_requests_path);
      CHECK(log_text.find(version.empty() ? "/openai/v1/chat/completions" : "/openai/deployments/gpt-4o-mini/chat/completions")
            != std::string::npos);
      CHECK(log_text.find(key) == std::string::npos);
      std::lock_guard<std::mutex> lock(m);
      for (const auto& line : logs) CHECK(line.find(key) == std::string::npos);
      own_headers_tests::check_no_file_holds(cache_dir, key);
    }
  }
}

TEST_CASE("Azure OpenAI content filter: a filtered prompt is content_filtered, named and not retried; a filtered "
          "answer ends with finish_reason content_filter; a classic route without api-version is refused") {
  mock::server_options so;
  so.api_key = "azure-filter-key-0123456789";
  mock::server server(so);
  server.start();
  re::azure_openai_settings where;
  where.endpoint = server.origin();
  where.api_key = so.api_key;
  re::engine<re::openai_compatible, re::no_cache> engine(
      re::openai_compatible::azure("gpt-4o-mini", where),
      re::options().max_retries(3).progress_bar(false).initial_backoff(std::chrono::milliseconds(1)));
  const std::size_t before = server.requests();
  auto r = engine.run({re::conversation().user("bad [[azure:filter-prompt]]"),
                       re::conversation().user("cut [[azure:filter-completion]]")});
  REQUIRE_FALSE(r[0]);
  CHECK(r[0].error().code == re::error_code::content_filtered);
  CHECK(re::to_string(r[0].error().code) == "content_filtered");
  CHECK(r[0].error().provider_code == "content_filter");
  CHECK(r[0].error().http_status == 400);
  CHECK(r[0].error().attempts == 1);
  CHECK(r[0].error().message.find("(filtered: violence high)") != std::string::npos);
  REQUIRE(r[1]);
  CHECK(r[1]->finish_reason == "content_filter");
  CHECK(r[1]->text.empty());
  CHECK(server.requests() - before == 2);  // neither was sent twice

  // Streamed, the same answer.
  re::engine<re::openai_compatible, re::no_cache> streaming(
      re::openai_compatible::azure("gpt-4o-mini", where), re::options().max_retries(0).progress_bar(false).stream(re::stream_mode::always));
  auto s = streaming.run({re::conversation().user("cut [[azure:filter-completion]]")});
  REQUIRE(s[0]);
  CHECK(s[0]->finish_reason == "content_filter");

  // The classic routes need an api-version; the mock refuses one without, as Azure does.
  httplib::Client cli(server.origin());
  auto res = cli.Post("/openai/deployments/gpt-4o-mini/chat/completions", {{"api-key", so.api_key}},
                      R"({"messages":[{"role":"user","content":"x"}]})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(res->body.find("api-version") != std::string::npos);
  server.stop();
}

TEST_CASE("prompt caching: cache_control on the marked system prompt and messages (Anthropic, Bedrock, Vertex "
          "bodies); at most four; the ttl; the request hash is the unmarked request's") {
  re::anthropic claude("sk-ant-test", "claude-sonnet-4-5", "http://127.0.0.1:9");
  const re::conversation plain = re::conversation().system("A long shared prefix").user("Q1").assistant("A1").user("Q2");
  const re::conversation marked = re::conversation()
                                      .system("A long shared prefix")
                                      .cache_breakpoint()
                                      .user("Q1")
                                      .assistant("A1")
                                      .cache_breakpoint()
                                      .user("Q2");
  const re::json b = claude.make_body(marked, re::params()).value();
  CHECK(b["system"] == re::json::parse(
                           R"([{"type":"text","text":"A long shared prefix","cache_control":{"type":"ephemeral"}}])"));
  CHECK(b["messages"][0]["content"] == "Q1");
  CHECK(b["messages"][1]["content"] ==
        re::json::parse(R"([{"type":"text","text":"A1","cache_control":{"type":"ephemeral"}}])"));
  CHECK(b["messages"][2]["content"] == "Q2");
  const re::json unmarked = claude.make_body(plain, re::params()).value();
  CHECK(re::request_hash(claude.cache_identity(), b) == re::request_hash(claude.cache_identity(), unmarked));
  // An hour, with the beta feature it needs; the hash still the same.
  const re::json hour = claude.make_body(marked, re::params().prompt_cache_ttl("1h")).value();
  CHECK(hour["system"][0]["cache_control"] == re::json{{"type", "ephemeral"}, {"ttl", "1h"}});
  CHECK(re::request_hash(claude.cache_identity(), hour) == re::request_hash(claude.cache_identity(), unmarked));
  const re::http_request sent = claude.make_request(hour.dump());
  CHECK(own_headers_tests::values_of(sent.headers, "anthropic-beta") ==
        std::vector<std::string>{"extended-cache-ttl-2025-04-11"});
  CHECK(own_headers_tests::values_of(claude.make_request(b.dump()).headers, "anthropic-beta").empty());
  // A multi-part message: the last block is marked.
  re::message parts{re::role::user, {re::content_part::image_url("https://x/y.png"), re::content_part::from_text("Describe")}};
  const re::json mp = claude.make_body(re::conversation().add(parts).cache_breakpoint(), re::params()).value();
  CHECK(mp["messages"][0]["content"][1]["cache_control"] == re::json{{"type", "ephemeral"}});
  CHECK_FALSE(mp["messages"][0]["content"][0].contains("cache_control"));
  CHECK(re::request_hash(claude.cache_identity(), mp) ==
        re::request_hash(claude.cache_identity(), claude.make_body(re::conversation().add(parts), re::params()).value()));

  // The same marks on Bedrock and Vertex AI, whose bodies are the Messages API's.
  re::aws_credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  const re::json bedrock =
      re::bedrock_anthropic(creds, "us-east-1", "anthropic.claude-3-haiku", "http://127.0.0.1:9").make_body(marked, re::params()).value();
  CHECK(bedrock["system"] == b["system"]);
  CHECK(bedrock["messages"] == b["messages"]);

  // Errors, before anything is sent: five marks, a mark before any content, a bad ttl.
  re::conversation five = re::conversation().system("s").cache_breakpoint();
  for (int i = 0; i < 4; ++i) five.user("u" + std::to_string(i)).cache_breakpoint().assistant("a");
  five.user("last");
  auto too_many = claude.make_body(five, re::params());
  REQUIRE_FALSE(too_many);
  CHECK(too_many.error().code == re::error_code::invalid_request);
  CHECK(too_many.error().message.find("at most 4 cache breakpoints") != std::string::npos);
  auto nothing = claude.make_body(re::conversation().cache_breakpoint().user("x"), re::params());
  REQUIRE_FALSE(nothing);
  CHECK(nothing.error().message.find("before any content") != std::string::npos);
  auto bad_ttl = claude.make_body(marked, re::params().prompt_cache_ttl("2h"));
  REQUIRE_FALSE(bad_ttl);
  CHECK(bad_ttl.error().message.find("\"5m\" or \"1h\"") != std::string::npos);

  // OpenAI caches on its own: the marks change nothing in its body.
  re::openai_compatible gpt("sk-test", "http://127.0.0.1:9/v1", "gpt-4o-mini");
  CHECK(gpt.make_body(marked, re::params()).value() == gpt.make_body(plain, re::params()).value());
}

TEST_CASE("prompt caching end to end: 100 requests sharing a marked system prompt write it once and read it 99 "
          "times, and cost what the price table says for that split") {
  for (const std::string ttl : {"5m", "1h"}) {
    CAPTURE(ttl);
    mock::server server(mock::server_options{});
    server.start();
    const std::string shared(6000, 'x');  // 1,500 tokens by the mock's estimate: above the minimum
    std::vector<re::conversation> convs;
    for (int i = 0; i < 100; ++i)
      convs.push_back(re::conversation().system(shared).cache_breakpoint().user("question " + std::to_string(i)));
    re::engine<re::anthropic, re::no_cache> engine(re::anthropic("", "claude-sonnet-4-5", server.origin()),
                                                    re::options().concurrency(1).max_retries(0).progress_bar(false));
    auto results = engine.run(convs, re::params().max_tokens(20).prompt_cache_ttl(ttl));
    REQUIRE(results.size() == 100);
    // The first request sent (whichever it is: the engine does not promise input order) writes
    // the prefix; every later one reads it.
    const std::int64_t prefix = 1500;
    std::size_t writers = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      CAPTURE(i);
      REQUIRE(results[i]);
      const re::token_usage& u = results[i]->usage;
      const bool wrote = u.cache_write_tokens > 0;
      writers += wrote ? 1 : 0;
      CHECK(u.cache_write_tokens == (wrote ? prefix : 0));
      CHECK(u.cache_write_1h_tokens == (wrote && ttl == "1h" ? prefix : 0));
      CHECK(u.cached_input_tokens == (wrote ? 0 : prefix));
      CHECK(u.input_tokens > prefix);
    }
    CHECK(writers == 1);
    // The price table's claude-sonnet-4-5 row: $3 input, $3.75 five-minute writes (an hour's:
    // twice the input, $6), $0.30 reads, $15 output, per million tokens.
    double expected = 0;
    for (const auto& r : results) {
      const re::token_usage& u = r->usage;
      const double uncached = static_cast<double>(u.input_tokens - u.cached_input_tokens - u.cache_write_tokens);
      expected += (uncached * 3 + static_cast<double>(u.cache_write_tokens) * (ttl == "1h" ? 6 : 3.75) +
                   static_cast<double>(u.cached_input_tokens) * 0.3 + static_cast<double>(u.output_tokens) * 15) /
                  1e6;
    }
    const re::cost_report spend = engine.spend();
    CHECK(spend.actual == doctest::Approx(expected).epsilon(1e-9));
    CHECK(spend.tokens.cache_write_tokens == prefix);
    CHECK(spend.tokens.cached_input_tokens == 99 * prefix);
    // Without the marks the same requests pay the whole prompt every time.
    CHECK(spend.actual < 0.5 * static_cast<double>(spend.tokens.input_tokens) * 3 / 1e6 +
                             static_cast<double>(spend.tokens.output_tokens) * 15 / 1e6);
    const auto bodies = server.received_bodies();
    REQUIRE_FALSE(bodies.empty());
    CHECK(bodies.back()["system"][0]["cache_control"]["type"] == "ephemeral");
    server.stop();
  }
}
