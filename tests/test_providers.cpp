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

std::string scratch_dir(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

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
// @end google-tests
