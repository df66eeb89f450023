// The providers against loopback servers that speak each API (paths, headers, request and
// response shapes, error shapes), and their signing against outside conformance data
// (../shared/conformance: AWS SigV4 test suite, a Google service-account JWT vector).
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

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
// @end anthropic-tests

// @section aws-tests
// @end aws-tests

// @section google-tests
namespace google_tests {

std::string scratch(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-google-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

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
