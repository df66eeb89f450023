// The engine against real HTTP: cpp-httplib's server on loopback (tools/mock_server.hpp),
// over HTTP and over HTTPS with a CA made at test time.
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

// Defined in test_odr.cpp: a second translation unit that includes the header and
// instantiates the engine, so the link proves the header is ODR-safe.
int odr_second_translation_unit(const std::string& base_url);

namespace {

const char* const test_key = "sk-test-7f3a9c2e5b1d4f60a8e2c4b6d8f0a1c3";

std::string scratch_dir(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

const mock::tls_files& test_pki() {
  static const mock::tls_files files = mock::make_test_pki(scratch_dir("pki"));
  return files;
}

std::unique_ptr<mock::server> start_server(mock::server_options o = {}) {
  if (o.api_key.empty()) o.api_key = test_key;
  auto s = std::make_unique<mock::server>(std::move(o));
  s->start();
  return s;
}

std::vector<re::conversation> prompts(std::size_t n, const std::string& prefix = "question ") {
  std::vector<re::conversation> batch;
  for (std::size_t i = 0; i < n; ++i) batch.push_back(re::conversation().user(prefix + std::to_string(i)));
  return batch;
}

// A port nothing listens on: bind a socket to port 0, read the port the kernel chose, close it.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string all_error_text(const std::vector<re::result<re::completion>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + "\n" + r.error().provider_code + "\n";
  return s;
}

}  // namespace

TEST_CASE("a batch comes back complete and in input order") {
  auto server = start_server();
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(8));
  auto results = engine.run(prompts(200));
  REQUIRE(results.size() == 200);
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], all_error_text(results));
    CHECK(results[i]->text == "Mock answer to: question " + std::to_string(i));
    CHECK(results[i]->finish_reason == "stop");
    CHECK(results[i]->model == "mock-model");
    CHECK(results[i]->usage.input_tokens > 0);
    CHECK(results[i]->usage.output_tokens > 0);
    CHECK(results[i]->attempts == 1);
    CHECK(results[i]->request_hash.size() == 64);
    CHECK(results[i]->raw["object"] == "chat.completion");
  }
  CHECK(server->requests() == 200);
  // Distinct prompts, distinct hashes; the same prompt, the same hash.
  std::set<std::string> hashes;
  for (auto& r : results) hashes.insert(r->request_hash);
  CHECK(hashes.size() == 200);
  auto again = engine.run(prompts(1));
  REQUIRE(again[0]);
  CHECK(again[0]->request_hash == results[0]->request_hash);
  // What went over the wire is the documented shape.
  auto bodies = server->received_bodies();
  REQUIRE_FALSE(bodies.empty());
  CHECK(bodies.back()["model"] == "mock-model");
  CHECK(bodies.back()["messages"][0] == re::json({{"role", "user"}, {"content", "question 0"}}));
}

TEST_CASE("requests really run concurrently, and connections are reused") {
  mock::server_options so;
  so.latency_ms = 100;
  auto server = start_server(so);
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(8));
  auto t0 = std::chrono::steady_clock::now();
  auto results = engine.run(prompts(64));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  for (auto& r : results) REQUIRE(r);
  CHECK(server->max_in_flight() >= 6);  // 8 workers; allow for scheduling slack
  CHECK(server->max_in_flight() <= 8);  // never more than the concurrency asked for
  // 64 requests of 100 ms on 8 workers: about 0.8 s; sequential would be 6.4 s.
  CHECK(elapsed < std::chrono::milliseconds(3000));
  // Each worker keeps its keep-alive connection: at most one connection per worker.
  CHECK(server->connections() <= 8);
  auto before = server->connections();
  auto second = engine.run(prompts(64, "again "));
  for (auto& r : second) REQUIRE(r);
  CHECK(server->connections() == before);  // the second batch opened no new connection
}

TEST_CASE("HTTPS: verification is on by default and passes with the test CA") {
  const auto& pki = test_pki();
  mock::server_options so;
  so.cert_path = pki.server_cert;
  so.key_path = pki.server_key;
  auto server = start_server(so);
  REQUIRE(server->tls());
  REQUIRE(server->base_url().rfind("https://", 0) == 0);
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");

  SUBCASE("an unknown CA is refused with a TLS error") {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2).max_retries(0));
    auto results = engine.run(prompts(3));
    for (auto& r : results) {
      REQUIRE_FALSE(r);
      CHECK(r.error().code == re::error_code::tls);
      CHECK(r.error().message.find("could not be verified") != std::string::npos);
    }
    CHECK(server->requests() == 0);  // nothing was sent to an unverified server
  }
  SUBCASE("the test CA configured: it works") {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2).ca_cert_file(pki.ca_cert));
    auto results = engine.run(prompts(10));
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE_MESSAGE(results[i], all_error_text(results));
      CHECK(results[i]->text == "Mock answer to: question " + std::to_string(i));
    }
    CHECK(server->connections() <= 2);
  }
  SUBCASE("verification switched off explicitly") {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(1).verify_tls(false));
    auto results = engine.run(prompts(2));
    for (auto& r : results) CHECK(r);
  }
}

TEST_CASE("each failure is an error value in its own slot; the rest of the batch succeeds") {
  auto server = start_server();
  server->on_chat = [](const httplib::Request& req, httplib::Response& res) {
    auto body = re::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.contains("messages") || !body["messages"].is_array()) return false;
    std::string text = body["messages"].back().value("content", "");
    if (text == "please fail with 500") {
      res.status = 500;
      res.set_content(R"({"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})",
                      "application/json");
      return true;
    }
    if (text == "please answer garbage") {
      res.status = 200;
      res.set_content("<html>this is not JSON</html>", "text/html");
      return true;
    }
    if (text == "please truncate") {
      res.status = 200;
      res.set_content(R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"cut)", "application/json");
      return true;
    }
    return false;
  };
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).max_retries(0));

  std::vector<re::conversation> batch = prompts(10);
  batch[2] = re::conversation().user("please fail with 500");
  batch[5] = re::conversation().user("please answer garbage");
  batch[7] = re::conversation().user("please truncate");
  auto results = engine.run(batch);
  REQUIRE(results.size() == 10);
  REQUIRE_FALSE(results[2]);
  CHECK(results[2].error().code == re::error_code::server_error);
  CHECK(results[2].error().http_status == 500);
  CHECK(results[2].error().message == "The server had an error while processing your request.");
  CHECK(results[2].error().attempts == 1);
  REQUIRE_FALSE(results[5]);
  CHECK(results[5].error().code == re::error_code::invalid_response);
  CHECK(results[5].error().message.find("not JSON") != std::string::npos);
  REQUIRE_FALSE(results[7]);
  CHECK(results[7].error().code == re::error_code::invalid_response);
  for (std::size_t i : {0u, 1u, 3u, 4u, 6u, 8u, 9u}) {
    REQUIRE_MESSAGE(results[i], all_error_text(results));
    CHECK(results[i]->text == "Mock answer to: question " + std::to_string(i));
  }

  SUBCASE("400 from the server's validation, with its message") {
    // A merge patch that removes `messages`: the server rejects the body as the real API does.
    auto r = engine.run(prompts(3), re::params().extra({{"messages", nullptr}}));
    for (auto& one : r) {
      REQUIRE_FALSE(one);
      CHECK(one.error().code == re::error_code::bad_request);
      CHECK(one.error().http_status == 400);
      CHECK(one.error().message.find("messages") != std::string::npos);
    }
  }
  SUBCASE("a 500 is retried (twice by default) before it is reported") {
    re::engine<re::openai_compatible> retrying(
        provider, re::options().concurrency(2).initial_backoff(std::chrono::milliseconds(10)));
    auto before = server->requests();
    auto r = retrying.run({re::conversation().user("please fail with 500"), re::conversation().user("fine")});
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().attempts == 3);
    CHECK(r[1]);
    CHECK(server->requests() - before == 4);
  }
}

TEST_CASE("401: a wrong key is an authentication error that never shows the key") {
  auto server = start_server();
  const std::string wrong_key = "sk-proj-WRONGwrongWRONG0123456789abcdefXYZ";
  // Like OpenAI's own answer, this server echoes a masked key, and a careless one the whole key.
  server->on_chat = [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") == std::string("Bearer ") + test_key) return false;
    res.status = 401;
    res.set_content(re::json({{"error",
                               {{"message", "Incorrect API key provided: sk-proj-WRO**********XYZ. Also: " + wrong_key},
                                {"type", "invalid_request_error"},
                                {"param", nullptr},
                                {"code", "invalid_api_key"}}}})
                        .dump(),
                    "application/json");
    return true;
  };
  re::openai_compatible provider(wrong_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2));
  auto results = engine.run(prompts(4));
  for (auto& r : results) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == re::error_code::authentication);
    CHECK(r.error().http_status == 401);
    CHECK(r.error().provider_code == "invalid_api_key");
    CHECK(r.error().attempts == 1);  // 401 is not retried
  }
  std::string text = all_error_text(results);
  CHECK(text.find("Incorrect API key provided") != std::string::npos);
  CHECK(text.find(wrong_key) == std::string::npos);
  CHECK(text.find("WRONGwrong") == std::string::npos);
  CHECK(text.find("**") == std::string::npos);
  CHECK(server->requests() == 4);
}

TEST_CASE("connection refused is an error value; other origins in the same engine still work") {
  auto server = start_server();
  const int port = closed_port();
  re::openai_compatible dead(test_key, "http://127.0.0.1:" + std::to_string(port) + "/v1", "mock-model");
  re::engine<re::openai_compatible> engine(
      dead, re::options().concurrency(4).max_retries(1).initial_backoff(std::chrono::milliseconds(5)));
  auto results = engine.run(prompts(6));
  for (auto& r : results) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == re::error_code::connection);
    CHECK(r.error().attempts == 2);  // connection errors are retried
    CHECK(r.error().message.find(std::to_string(port)) != std::string::npos);
    CHECK(r.error().message.find(test_key) == std::string::npos);
  }
}

TEST_CASE("a response over max_response_bytes is an error, not unbounded memory") {
  auto server = start_server();
  server->on_chat = [](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(std::string(1 << 20, 'x'), "application/json");
    return true;
  };
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(1).max_response_bytes(64 * 1024));
  auto results = engine.run(prompts(2));
  for (auto& r : results) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == re::error_code::response_too_large);
  }
}

TEST_CASE("bad input fails before sending and does not sink the batch") {
  auto server = start_server();
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(2));
  std::vector<re::conversation> batch = prompts(3);
  batch[1] = re::conversation();  // no messages
  auto results = engine.run(batch);
  REQUIRE_FALSE(results[1]);
  CHECK(results[1].error().code == re::error_code::invalid_request);
  CHECK(results[1].error().attempts == 0);
  CHECK(results[0]);
  CHECK(results[2]);
  CHECK(server->requests() == 2);
}

TEST_CASE("submit() returns a future per request") {
  auto server = start_server();
  re::openai_compatible provider(test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4));
  std::vector<std::future<re::result<re::completion>>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(engine.submit(re::conversation().user("q" + std::to_string(i))));
  for (int i = 0; i < 20; ++i) {
    auto r = futures[static_cast<std::size_t>(i)].get();
    REQUIRE(r);
    CHECK(r->text == "Mock answer to: q" + std::to_string(i));
  }
}

TEST_CASE("two translation units that include the header link and run together") {
  // The other translation unit talks to a server that takes no key.
  mock::server_options so;
  so.api_key = "";
  mock::server open(so);
  open.start();
  CHECK(odr_second_translation_unit(open.base_url()) == 3);
}
