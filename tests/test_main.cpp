// Unit tests of the pure parts (no network) and the doctest runner.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "skips.hpp"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

// Defined in test_cache.cpp: the work of a child process that the cache tests spawn.
int cache_child_main(int argc, char** argv);

namespace {

std::mutex skips_mutex;
std::string current_test;                                  // the test case running now
std::vector<std::pair<std::string, std::string>> skipped;  // (test case, reason)

// Keeps the name of the running test case, for available_or_skip().
struct test_name_listener : doctest::IReporter {
  explicit test_name_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& in) override {
    std::lock_guard<std::mutex> lock(skips_mutex);
    current_test = in.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
REGISTER_LISTENER("test_name", 1, test_name_listener);

bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

}  // namespace

bool available_or_skip(bool available, const std::string& reason) {
  if (available) return true;
  if (under_ci()) FAIL("required under CI=true, and not here: " << reason);
  std::string name;
  {
    std::lock_guard<std::mutex> lock(skips_mutex);
    name = current_test;
    skipped.emplace_back(name, reason);
  }
  std::cout << "SKIPPED \"" << name << "\": " << reason << std::endl;
  return false;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) return cache_child_main(argc, argv);
  doctest::Context context(argc, argv);
  const int status = context.run();
  if (!skipped.empty()) {
    std::cout << "\n" << skipped.size() << " test case" << (skipped.size() == 1 ? "" : "s")
              << " skipped (under CI=true they are required):\n";
    for (const auto& [name, reason] : skipped) std::cout << "  SKIPPED \"" << name << "\": " << reason << "\n";
  }
  return status;
}

#include "requests_engine.hpp"

namespace re = requests_engine;

TEST_CASE("error codes have stable names") {
  CHECK(re::to_string(re::error_code::authentication) == "authentication");
  CHECK(re::to_string(re::error_code::response_too_large) == "response_too_large");
  re::error e{re::error_code::authentication, 401, "Incorrect API key provided.", "invalid_api_key", 1, {}};
  CHECK(e.describe() == "authentication (HTTP 401, 1 attempt): Incorrect API key provided.");
}

TEST_CASE("result holds a value or an error") {
  re::result<int> ok = 5;
  CHECK(static_cast<bool>(ok));
  CHECK(*ok == 5);
  CHECK_THROWS_AS((void)ok.error(), std::logic_error);
  re::result<int> bad = re::error{re::error_code::timeout, 0, "slow", {}, 2, {}};
  CHECK_FALSE(static_cast<bool>(bad));
  CHECK(bad.error().attempts == 2);
  CHECK_THROWS_AS((void)bad.value(), re::bad_result_access);
}

TEST_CASE("parse_url splits and validates") {
  auto u = re::parse_url("https://api.openai.com/v1/chat/completions?x=1");
  CHECK(u.scheme == "https");
  CHECK(u.host == "api.openai.com");
  CHECK(u.port == 443);
  CHECK(u.path == "/v1/chat/completions?x=1");
  CHECK(u.origin() == "https://api.openai.com:443");
  auto l = re::parse_url("http://127.0.0.1:8000");
  CHECK(l.port == 8000);
  CHECK(l.path == "/");
  auto v6 = re::parse_url("http://[::1]:9/v1");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 9);
  CHECK_THROWS_WITH_AS((void)re::parse_url("api.openai.com/v1"), doctest::Contains("no scheme"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)re::parse_url("ftp://x/"), doctest::Contains("scheme 'ftp'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)re::parse_url("http://x:99999/"), doctest::Contains("bad port"), std::invalid_argument);
  CHECK_THROWS_AS((void)re::parse_url("http://user:pw@x/"), std::invalid_argument);
}

TEST_CASE("status classification") {
  CHECK(re::classify_status(400, "") == re::error_code::bad_request);
  CHECK(re::classify_status(401, "invalid_api_key") == re::error_code::authentication);
  CHECK(re::classify_status(403, "") == re::error_code::permission_denied);
  CHECK(re::classify_status(429, "rate_limit_exceeded") == re::error_code::rate_limited);
  CHECK(re::classify_status(429, "insufficient_quota") == re::error_code::insufficient_quota);
  CHECK(re::classify_status(503, "") == re::error_code::server_error);
  CHECK(re::classify_status(529, "overloaded_error") == re::error_code::server_error);
}

TEST_CASE("retry-after in seconds, milliseconds and HTTP date") {
  using re::header_list;
  CHECK(re::detail::parse_retry_after(header_list{{"Retry-After", "2"}}) == std::chrono::milliseconds(2000));
  CHECK(re::detail::parse_retry_after(header_list{{"retry-after", "0.5"}}) == std::chrono::milliseconds(500));
  CHECK(re::detail::parse_retry_after(header_list{{"retry-after-ms", "150"}, {"retry-after", "9"}}) ==
        std::chrono::milliseconds(150));
  CHECK_FALSE(re::detail::parse_retry_after(header_list{{"retry-after", "soon"}}).has_value());
  CHECK(re::detail::parse_retry_after(header_list{{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}}) ==
        std::chrono::milliseconds(0));  // in the past: retry now
  // Found by the fuzzer (tests/fuzz/regressions/headers/): a date past what system_clock counts
  // overflowed a signed multiplication (UBSan); such dates, and fields out of range, are ignored.
  CHECK_FALSE(re::detail::parse_retry_after(header_list{{"retry-after", "Wed, 21 Oct 9491 07:28:00 GMT"}}).has_value());
  CHECK_FALSE(re::detail::parse_retry_after(header_list{{"retry-after", "Wed, 41 Oct 2030 25:61:00 GMT"}}).has_value());
  std::time_t later = std::time(nullptr) + 30;
  char buf[64];
  std::tm tm{};
  gmtime_r(&later, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  auto d = re::detail::parse_retry_after(header_list{{"Retry-After", buf}});
  REQUIRE(d.has_value());
  CHECK(d->count() > 28000);
  CHECK(d->count() <= 30000);
}

TEST_CASE("sha256 and base64 match known vectors") {
  CHECK(re::detail::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(re::detail::base64_encode("") == "");
  CHECK(re::detail::base64_encode("f") == "Zg==");
  CHECK(re::detail::base64_encode("foobar") == "Zm9vYmFy");
}

TEST_CASE("redact removes secrets and their masked echoes") {
  const std::string key = "sk-proj-ABCDEFGH12345678zyxwvu";
  auto out = re::detail::redact("bad key " + key + " and sk-proj-ABC************xwvu, ok?", {key});
  CHECK(out.find(key) == std::string::npos);
  CHECK(out.find("xwvu") == std::string::npos);
  CHECK(out.find("ok?") != std::string::npos);
  CHECK(out.find("[redacted]") != std::string::npos);
}

TEST_CASE("openai_compatible: tools, tool calls, JSON mode and structured output") {
  re::openai_compatible p("sk-test", "http://127.0.0.1:8000/v1", "m1");
  re::tool weather{"get_weather", "Weather for a city", {{"type", "object"}}};
  auto body = p.make_body(re::conversation().user("Weather in Paris?"),
                          re::params().tools({weather}).tool_choice("get_weather"));
  REQUIRE(body);
  CHECK((*body)["tools"] == re::json::parse(R"([{"type":"function","function":{"name":"get_weather",
      "description":"Weather for a city","parameters":{"type":"object"}}}])"));
  CHECK((*body)["tool_choice"] == re::json::parse(R"({"type":"function","function":{"name":"get_weather"}})"));
  body = p.make_body(re::conversation().user("x"), re::params().tool_choice("required").json_mode());
  CHECK((*body)["tool_choice"] == "required");
  CHECK((*body)["response_format"] == re::json({{"type", "json_object"}}));
  re::json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}};
  body = p.make_body(re::conversation().user("x"), re::params().json_schema("answer", schema));
  CHECK((*body)["response_format"] == re::json({{"type", "json_schema"},
                                               {"json_schema", {{"name", "answer"}, {"schema", schema}, {"strict", true}}}}));

  re::http_response r;
  r.status = 200;
  r.body = R"({"model":"m1","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
    "content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
    {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}],
    "usage":{"prompt_tokens":5,"completion_tokens":3}})";
  auto c = p.parse_response(r);
  REQUIRE(c);
  CHECK(c->finish_reason == "tool_calls");
  CHECK(c->text.empty());
  REQUIRE(c->tool_calls().size() == 2);
  CHECK(c->tool_calls()[0].id == "call_1");
  CHECK(c->tool_calls()[0].name == "get_weather");
  CHECK(c->tool_calls()[0].arguments == R"({"city":"Paris"})");
  CHECK(c->tool_calls()[1].name == "get_time");
}

TEST_CASE("openai_compatible: audio is an input_audio part (base64 data and a format, never a media type)") {
  re::openai_compatible p("sk-test", "http://127.0.0.1:8000/v1", "gpt-4o-audio-preview");
  auto body_for = [&](const std::string& format) {
    re::message m{re::role::user,
                  {re::content_part::from_text("Transcribe this"),
                   re::content_part::audio_bytes(std::string("RIFF\x01\x02", 6), format)}};
    return p.make_body(re::conversation().add(m), re::params());
  };
  auto body = body_for("wav");
  REQUIRE(body);
  CHECK((*body)["messages"] == re::json::parse(R"([{"role":"user","content":[
      {"type":"text","text":"Transcribe this"},
      {"type":"input_audio","input_audio":{"data":"UklGRgEC","format":"wav"}}]}])"));
  // content_part also takes a media type (Gemini needs one): OpenAI still gets its format names.
  for (const auto& [given, sent] : std::vector<std::pair<std::string, std::string>>{
           {"mp3", "mp3"}, {"audio/wav", "wav"}, {"audio/x-wav", "wav"}, {"audio/mpeg", "mp3"}, {"Audio/MP3", "mp3"}}) {
    CAPTURE(given);
    body = body_for(given);
    REQUIRE(body);
    CHECK((*body)["messages"][0]["content"][1]["input_audio"]["format"] == sent);
  }
  // Audio without bytes cannot be sent: refused before anything goes out.
  re::content_part no_bytes = re::content_part::audio_bytes("", "wav");
  auto refused = p.make_body(re::conversation().add(re::message{re::role::user, {no_bytes}}), re::params());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == re::error_code::invalid_request);
  CHECK(refused.error().message.find("audio") != std::string::npos);
}

TEST_CASE("openai_compatible builds the documented request") {
  re::openai_compatible p("sk-test", "http://127.0.0.1:8000/v1/", "m1");
  CHECK(p.endpoint() == "http://127.0.0.1:8000/v1/chat/completions");
  re::openai_compatible full("", "https://x.example/openai/v1/chat/completions", "m1");
  CHECK(full.endpoint() == "https://x.example/openai/v1/chat/completions");
  CHECK_THROWS_AS(re::openai_compatible("k", "localhost:8000/v1", "m"), std::invalid_argument);

  auto c = re::conversation().system("Be brief").user("Hi").assistant("Hello").user("Bye");
  auto body = p.make_body(c, re::params().temperature(0.5).max_tokens(10).stop({"\n"}).seed(7).extra(
                                 {{"user", "u1"}, {"top_p", nullptr}}));
  REQUIRE(body);
  CHECK((*body)["model"] == "m1");
  REQUIRE((*body)["messages"].size() == 4);
  CHECK((*body)["messages"][0] == re::json({{"role", "system"}, {"content", "Be brief"}}));
  CHECK((*body)["messages"][3]["role"] == "user");
  CHECK((*body)["temperature"] == 0.5);
  CHECK((*body)["max_tokens"] == 10);
  CHECK((*body)["stop"] == re::json::array({"\n"}));
  CHECK((*body)["seed"] == 7);
  CHECK((*body)["user"] == "u1");
  CHECK_FALSE(body->contains("top_p"));

  auto req = p.make_request(body->dump());
  CHECK(req.url == "http://127.0.0.1:8000/v1/chat/completions");
  CHECK(re::find_header(req.headers, "authorization") == "Bearer sk-test");

  re::openai_compatible nokey(nullptr, "http://127.0.0.1:1/v1", "m");
  CHECK(re::find_header(nokey.make_request("{}").headers, "Authorization").empty());

  auto empty = p.make_body(re::conversation(), re::params());
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code == re::error_code::invalid_request);

  re::message m;
  m.content = {re::content_part::from_text("What is this?"), re::content_part::image_bytes("\x89PNG", "image/png")};
  auto mm = p.make_body(re::conversation().add(m), re::params());
  REQUIRE(mm);
  CHECK((*mm)["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORw==");
}

TEST_CASE("openai_compatible parses responses and errors") {
  re::openai_compatible p("k", "http://h/v1", "m");
  re::http_response ok;
  ok.status = 200;
  ok.body = R"({"id":"x","object":"chat.completion","model":"m-2024","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":8}}})";
  auto c = p.parse_response(ok);
  REQUIRE(c);
  CHECK(c->text == "hi");
  CHECK(c->finish_reason == "stop");
  CHECK(c->model == "m-2024");
  CHECK(c->usage.input_tokens == 12);
  CHECK(c->usage.output_tokens == 3);
  CHECK(c->usage.cached_input_tokens == 8);
  CHECK(c->raw()["id"] == "x");

  re::http_response quota;
  quota.status = 429;
  quota.body = R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})";
  auto q = p.parse_response(quota);
  REQUIRE_FALSE(q);
  CHECK(q.error().code == re::error_code::insufficient_quota);
  CHECK(q.error().http_status == 429);
  CHECK(q.error().message == "You exceeded your current quota");

  re::http_response html;
  html.status = 502;
  html.body = "<html>Bad gateway</html>";
  auto h = p.parse_response(html);
  REQUIRE_FALSE(h);
  CHECK(h.error().code == re::error_code::server_error);
  CHECK(h.error().message.find("Bad gateway") != std::string::npos);

  re::http_response garbage;
  garbage.status = 200;
  garbage.body = "{\"choices\": [";
  auto g = p.parse_response(garbage);
  REQUIRE_FALSE(g);
  CHECK(g.error().code == re::error_code::invalid_response);
}

// @section cost-tests
#include <unistd.h>

#include <sstream>

namespace {

re::token_usage cost_usage(std::int64_t input, std::int64_t output, std::int64_t cached = 0, std::int64_t written = 0) {
  re::token_usage u;
  u.input_tokens = input;
  u.output_tokens = output;
  u.cached_input_tokens = cached;
  u.cache_write_tokens = written;
  return u;
}

double cost_of(const std::string& model, const re::token_usage& u, bool batch = false) {
  auto c = re::price_table::builtin().cost(model, u, batch);
  REQUIRE_MESSAGE(c.has_value(), "no price for " << model);
  return *c;
}

std::string cost_scratch_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() /
              ("re-cost-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

re::completion priced_completion(const std::string& model, const re::token_usage& u, bool from_cache) {
  re::completion c;
  c.model = model;
  c.usage = u;
  c.from_cache = from_cache;
  return c;
}

}  // namespace

TEST_CASE("price table: costs match hand-computed values") {
  // gpt-4o-mini, by its dated snapshot: 6000 uncached x $0.15 + 4000 cached x $0.075 + 1000 out x $0.60.
  CHECK(cost_of("gpt-4o-mini-2024-07-18", cost_usage(10000, 1000, 4000)) == doctest::Approx(0.0018));
  CHECK(cost_of("gpt-4o-mini-2024-07-18", cost_usage(10000, 1000, 4000), true) == doctest::Approx(0.0009));
  // Anthropic with cache reads and writes: 20000 x $3 + 60000 x $0.30 + 20000 x $3.75 + 2000 x $15.
  CHECK(cost_of("claude-sonnet-4-5-20250929", cost_usage(100000, 2000, 60000, 20000)) == doctest::Approx(0.183));
  CHECK(cost_of("claude-sonnet-4-5-20250929", cost_usage(100000, 2000, 60000, 20000), true) ==
        doctest::Approx(0.0915));
  // Long context: above 200K prompt tokens every token of the request is at the higher price:
  // 200000 x $6 + 100000 x $0.60 + 1000 x $22.50; at exactly 200K the base prices apply.
  CHECK(cost_of("claude-sonnet-4-20250514", cost_usage(300000, 1000, 100000)) == doctest::Approx(1.2825));
  CHECK(cost_of("claude-sonnet-4-20250514", cost_usage(200000, 1000)) == doctest::Approx(0.615));
  CHECK(cost_of("gemini-2.5-pro", cost_usage(250000, 10000)) == doctest::Approx(0.775));
  CHECK(cost_of("gemini-2.5-pro", cost_usage(250000, 10000), true) == doctest::Approx(0.3875));
  CHECK(cost_of("gemini-2.5-pro", cost_usage(100000, 10000)) == doctest::Approx(0.225));
  // An exact row beats the snapshot rule: the first gpt-4o snapshot kept its launch price.
  CHECK(cost_of("gpt-4o-2024-05-13", cost_usage(1000, 1000)) == doctest::Approx(0.02));
  CHECK(cost_of("gpt-4o-2024-08-06", cost_usage(1000, 1000)) == doctest::Approx(0.0125));
  // Bedrock ids (with and without a cross-region prefix), Vertex AI and Gemini versions.
  CHECK(cost_of("us.anthropic.claude-3-5-haiku-20241022-v1:0", cost_usage(1000000, 1000000)) ==
        doctest::Approx(4.8));
  CHECK(cost_of("anthropic.claude-3-haiku-20240307-v1:0", cost_usage(1000000, 1000000)) == doctest::Approx(1.5));

  const auto& table = re::price_table::builtin();
  CHECK(table.match("claude-3-5-sonnet-v2@20241022") == std::optional<std::string>("claude-3-5-sonnet"));
  CHECK(table.match("claude-opus-4-1@20250805") == std::optional<std::string>("claude-opus-4-1"));
  CHECK(table.match("claude-opus-4-1-20250805") == std::optional<std::string>("claude-opus-4-1"));
  CHECK(table.match("gemini-2.0-flash-001") == std::optional<std::string>("gemini-2.0-flash"));
  CHECK(table.match("gemini-2.0-flash-lite-001") == std::optional<std::string>("gemini-2.0-flash-lite"));
  CHECK(table.match("gpt-4.1-mini-2025-04-14") == std::optional<std::string>("gpt-4.1-mini"));
  CHECK_FALSE(table.read_on().empty());
  // Never a loose match.
  for (const char* unknown : {"gpt-4o-mini-custom", "my-gpt-4o", "gpt-4o-2024", "gpt-4o-2024-13-5",
                              "claude-sonnet-4-5-extra", "gemini-2.5-pro-002x", "eu.unknown-model", "", "gpt"}) {
    CAPTURE(unknown);
    CHECK_FALSE(table.find(unknown).has_value());
    CHECK_FALSE(table.cost(unknown, cost_usage(1000, 1000)).has_value());
  }
}

TEST_CASE("price table: an override file changes prices and adds models") {
  const std::string path = cost_scratch_file("prices.json", R"({
    "read_on": "2030-01-01",
    "models": {
      "gpt-4o-mini": {"input": 1, "output": 2},
      "my-private-llm": {"input": 0.5, "output": 1.5, "cached_input": 0.05, "batch_discount": 0,
                         "aliases": ["private-llm-v1"]},
      "o1": null
    }})");
  auto table = re::price_table::from_file(path);
  std::filesystem::remove(path);
  CHECK(table.read_on() == "2030-01-01");
  // The fields given replace the built-in ones; the others stay (cached input $0.075).
  CHECK(*table.cost("gpt-4o-mini-2024-07-18", cost_usage(10000, 1000, 4000)) == doctest::Approx(0.0083));
  CHECK(*re::price_table::builtin().cost("gpt-4o-mini", cost_usage(10000, 1000, 4000)) == doctest::Approx(0.0018));
  CHECK(*table.cost("private-llm-v1", cost_usage(2000000, 1000000, 1000000), true) == doctest::Approx(2.05));
  CHECK_FALSE(table.find("o1").has_value());
  CHECK(table.find("gpt-4.1").has_value());
  // The table round-trips through its JSON.
  re::price_table copy;
  copy.merge_json(table.to_json());
  CHECK(*copy.cost("claude-sonnet-4-5", cost_usage(300000, 1000)) ==
        doctest::Approx(*table.cost("claude-sonnet-4-5", cost_usage(300000, 1000))));
  CHECK(copy.size() == table.size());

  // Malformed tables are refused with the model and the field named, and change nothing.
  auto refused = [&](const std::string& text, const std::string& expect) {
    CAPTURE(text);
    try {
      table.merge_json(re::json::parse(text));
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find(expect) != std::string::npos);
    }
  };
  refused(R"({"models": {"gpt-4o": {"ouput": 3}}})", "\"gpt-4o\": unknown field \"ouput\"");
  refused(R"({"models": {"new-model": {"input": 3}}})", "\"new-model\": a new model needs");
  refused(R"({"models": {"gpt-4o": {"input": -1}}})", "\"input\" must be a finite number");
  refused(R"({"models": {"gpt-4o": {"input": "2.5"}}})", "\"input\" must be a number");
  refused(R"({"models": {"x": {"input": 1, "output": 1, "long_context": {"input": 2}}}})", "long_context");
  refused(R"({"model": {}})", "unknown key \"model\"");
  CHECK(*table.cost("gpt-4o", cost_usage(1000000, 0)) == doctest::Approx(2.5));

  const std::string bad = cost_scratch_file("bad.json", "{not json");
  CHECK_THROWS_AS((void)re::price_table::from_file(bad), std::invalid_argument);
  std::filesystem::remove(bad);
  CHECK_THROWS_AS((void)re::price_table::from_file(bad), std::runtime_error);

  // A callback answers first; what it does not know falls back to the table.
  auto with_callback = re::price_table::builtin();
  with_callback.set_lookup_callback([](std::string_view model) -> std::optional<re::model_price> {
    if (model == "gpt-4o") {
      re::model_price p;
      p.input = 10;
      p.output = 20;
      p.cached_input = 10;
      return p;
    }
    if (model == "throws") throw std::runtime_error("callback failure");
    return std::nullopt;
  });
  CHECK(*with_callback.cost("gpt-4o", cost_usage(1000000, 1000000)) == doctest::Approx(30));
  CHECK(*with_callback.cost("gpt-4o-mini", cost_usage(1000000, 0)) == doctest::Approx(0.15));
  CHECK_FALSE(with_callback.cost("throws", cost_usage(1, 1)).has_value());
}

TEST_CASE("cost report: an unknown model counts its tokens and reports its cost as unknown") {
  std::vector<re::result<re::completion>> results;
  results.emplace_back(priced_completion("private-llm", cost_usage(1000, 100, 10), false));
  results.emplace_back(priced_completion("private-llm", cost_usage(2000, 200), true));
  results.emplace_back(priced_completion("gpt-4o-mini", cost_usage(1000000, 0), false));
  results.emplace_back(re::error{re::error_code::server_error, 500, "boom", {}, 3, {}});
  const auto report = re::make_cost_report(results);
  CHECK(report.requests == 3);
  CHECK(report.failed == 1);
  CHECK(report.from_cache == 1);
  CHECK(report.tokens.input_tokens == 1003000);
  CHECK(report.tokens.output_tokens == 300);
  CHECK(report.tokens.cached_input_tokens == 10);
  CHECK(report.network_tokens.input_tokens == 1001000);
  CHECK_FALSE(report.complete());
  REQUIRE(report.unknown_models == std::vector<std::string>{"private-llm"});
  CHECK(report.actual == doctest::Approx(0.15));
  CHECK(report.as_if == doctest::Approx(0.15));
  REQUIRE(report.models.size() == 2);
  const auto& unknown = report.models[1];
  CHECK(unknown.model == "private-llm");
  CHECK(unknown.requests == 2);
  CHECK(unknown.tokens.input_tokens == 3000);
  CHECK(unknown.tokens.output_tokens == 300);
  CHECK_FALSE(unknown.actual.has_value());
  CHECK_FALSE(unknown.as_if.has_value());

  const auto j = report.to_json();
  CHECK(j["complete"] == false);
  CHECK(j["models"][1]["actual_usd"].is_null());
  CHECK(j["models"][1]["tokens"]["input"] == 3000);
  CHECK(j["unknown_models"][0] == "private-llm");
  const std::string text = report.to_string();
  CHECK(text.find("no price for private-llm") != std::string::npos);
  CHECK(text.find("private-llm: 2 requests") != std::string::npos);
  CHECK(text.find("cost unknown") != std::string::npos);
  std::ostringstream os;
  os << report;
  CHECK(os.str() == text);
}

TEST_CASE("cost report: answers from the engine's cache cost nothing; the as-if spend counts them") {
  // A real server on loopback that answers like OpenAI, with fixed usage.
  httplib::Server server;
  std::atomic<int> calls{0};
  server.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    ++calls;
    if (req.body.find("slow") != std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    res.set_content(R"({"id":"x","object":"chat.completion","model":"gpt-4o-mini-2024-07-18",)"
                    R"("choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],)"
                    R"("usage":{"prompt_tokens":10000,"completion_tokens":1000,"total_tokens":11000,)"
                    R"("prompt_tokens_details":{"cached_tokens":4000}}})",
                    "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread listener([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    re::openai_compatible provider("k", "http://127.0.0.1:" + std::to_string(port) + "/v1", "gpt-4o-mini");
    re::basic_engine<re::openai_compatible, re::memory_cache> engine(
        provider, re::options().concurrency(2).max_retries(0).progress_bar(false));
    std::vector<re::conversation> first{re::conversation().user("a"), re::conversation().user("b")};
    auto warm = engine.run(first, re::params(), "first");
    REQUIRE(calls == 2);
    CHECK(re::make_cost_report(warm).actual == doctest::Approx(2 * 0.0018));
    // Another namespace starts again at sample 0: a and b come from the cache, c and d do not.
    std::vector<re::conversation> batch = first;
    batch.push_back(re::conversation().user("c"));
    batch.push_back(re::conversation().user("d"));
    auto results = engine.run(batch, re::params(), "second");
    CHECK(calls == 4);

    const auto report = re::make_cost_report(results);
    CHECK(report.requests == 4);
    CHECK(report.from_cache == 2);
    CHECK(report.failed == 0);
    CHECK(report.complete());
    // Per request: 6000 x $0.15 + 4000 x $0.075 + 1000 x $0.60 = $0.0018.
    CHECK(report.as_if == doctest::Approx(4 * 0.0018));
    CHECK(report.actual == doctest::Approx(2 * 0.0018));
    CHECK(report.actual == doctest::Approx(report.as_if / 2));
    CHECK(report.tokens.input_tokens == 40000);
    CHECK(report.network_tokens.input_tokens == 20000);
    REQUIRE(report.models.size() == 1);
    CHECK(report.models[0].model == "gpt-4o-mini-2024-07-18");
    CHECK(report.models[0].priced_as == "gpt-4o-mini");
    CHECK(report.models[0].from_cache == 2);
    const auto batch_report = re::make_cost_report(results, re::price_table::builtin(), true);
    CHECK(batch_report.actual == doctest::Approx(report.actual / 2));
    CHECK(report.to_json()["actual_usd"].get<double>() == doctest::Approx(0.0036));
    CHECK(report.to_string().find("$0.003600 spent, $0.007200 as if nothing came from the cache") !=
          std::string::npos);
  }
  {
    // The engine prices as it goes: the progress callback, spend() and cost() agree with the
    // report, at the prices the options name; identical requests in flight at once are paid once.
    re::openai_compatible provider("k", "http://127.0.0.1:" + std::to_string(port) + "/v1", "gpt-4o-mini");
    auto prices = std::make_shared<re::price_table>();
    prices->merge_json(
        re::json::parse(R"({"models": {"gpt-4o-mini": {"input": 1.0, "output": 10.0, "cached_input": 0.5}}})"));
    std::mutex m;
    std::vector<re::progress> seen;
    re::basic_engine<re::openai_compatible, re::memory_cache> engine(
        provider, re::options().concurrency(4).max_retries(0).progress_bar(false).distinct_samples(false).prices(
                      prices).progress_interval(std::chrono::milliseconds(1)).on_progress([&](const re::progress& p) {
          std::lock_guard<std::mutex> lock(m);
          seen.push_back(p);
        }));
    // Per request at these prices: 6000 x $1 + 4000 x $0.5 + 1000 x $10 = $0.018.
    const int before = calls.load();
    auto results = engine.run({re::conversation().user("slow e"), re::conversation().user("slow e"),
                               re::conversation().user("slow e"), re::conversation().user("f")});
    CHECK(calls.load() - before == 2);  // "slow e" once, "f" once
    int deduplicated = 0;
    for (const auto& r : results) deduplicated += r && r->deduplicated ? 1 : 0;
    CHECK(deduplicated == 2);
    const re::cost_report spent = engine.spend();
    CHECK(spent.requests == 4);
    CHECK(spent.actual == doctest::Approx(2 * 0.018));
    CHECK(spent.as_if == doctest::Approx(4 * 0.018));
    CHECK(engine.cost(results).actual == doctest::Approx(spent.actual));
    CHECK(engine.cost(results, true).actual == doctest::Approx(spent.actual / 2));
    std::lock_guard<std::mutex> lock(m);
    CHECK(!seen.empty());
    if (seen.empty()) seen.emplace_back();
    CHECK(seen.back().done == 4);
    CHECK(seen.back().spend == doctest::Approx(2 * 0.018));
    CHECK(seen.back().spend_as_if == doctest::Approx(4 * 0.018));
    CHECK(seen.back().spend_complete);
    for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].spend >= seen[i - 1].spend);
    CHECK(re::detail::format_progress_bar(seen.back(), 10).find("$0.0360") != std::string::npos);
  }
  server.stop();
  listener.join();
}
// @end cost-tests

namespace {

// Every SAX event as text, to compare the fast reader with nlohmann's parser event by event.
struct sax_recorder final : nlohmann::json_sax<re::json> {
  std::vector<std::string> events;
  bool null() override { return note("null"); }
  bool boolean(bool v) override { return note(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return note("int " + std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return note("uint " + std::to_string(v)); }
  bool number_float(number_float_t, const string_t& s) override { return note("float " + s); }
  bool string(string_t& v) override { return note("string " + v); }
  bool binary(binary_t&) override { return note("binary"); }
  bool start_object(std::size_t) override { return note("{"); }
  bool key(string_t& k) override { return note("key " + k); }
  bool end_object() override { return note("}"); }
  bool start_array(std::size_t) override { return note("["); }
  bool end_array() override { return note("]"); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
  bool note(std::string e) {
    events.push_back(std::move(e));
    return true;
  }
};

// What each parser makes of `text`: accepted or not, and the events when accepted.
struct both_parsers {
  bool fast_ok, slow_ok;
  std::vector<std::string> fast, slow;
  explicit both_parsers(const std::string& text) {
    sax_recorder f, s;
    fast_ok = re::detail::fast_json_reader<sax_recorder>(text, f).parse();
    slow_ok = re::json::sax_parse(text, &s);
    fast = std::move(f.events);
    slow = std::move(s.events);
  }
};

}  // namespace

TEST_CASE("fast JSON reader: the same events as nlohmann's parser; never accepts what it rejects") {
  const std::vector<std::string> valid = {
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1763800000,"model":"gpt-4o-mini",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\"\n\u00e9\u4e2d\ud83d\ude00 \\ \/ \b\f\r\t",)"
      R"("tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},)"
      R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":14,)"
      R"("prompt_tokens_details":{"cached_tokens":0}},"temperature":0.7,"x":-12,"y":1e-3,"z":-0.5E+2,"t":true,"f":false})",
      "  [ 1 , -0, 0, 18446744073709551615, -9223372036854775808, 9223372036854775807, [], {}, [[[]]] ] \n",
      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xef\xbf\xbf\"",
      "\"\"", "0", "-1", "3.25", "null", "{\"\":\"\"}", "{\"a\":{\"b\":[1,{\"c\":null}]}}"};
  for (const auto& t : valid) {
    INFO(t);
    both_parsers p(t);
    REQUIRE(p.slow_ok);
    CHECK(p.fast_ok);
    CHECK(p.fast == p.slow);
  }
  const std::vector<std::string> invalid = {
      "", " ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]",
      "\"\\x\"", "\"\\u12G4\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"a\x01\"", "\"open",
      "tru", "nul", "[true false]", "{} {}", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
      "\"\xe2\x82\"", "\"\x80\"", "[1e400]", "[-1e400]", "[1]x", "[\"a\"\"b\"]", "{\"a\":1 \"b\":2}", "NaN", "[Infinity]"};
  for (const auto& t : invalid) {
    INFO(t);
    both_parsers p(t);
    CHECK_FALSE(p.fast_ok);
    if (p.slow_ok) MESSAGE("nlohmann accepts this one; the fast reader leaves it to nlohmann");
  }
  // Beyond 64 bits nlohmann gives a float: the fast reader declines and leaves it to nlohmann.
  CHECK_FALSE(both_parsers("[18446744073709551616]").fast_ok);
  CHECK_FALSE(both_parsers("[-9223372036854775809]").fast_ok);

  // Mutations of a real answer: one to three random edits each (a byte deleted, replaced or
  // inserted, or the text cut short). Whatever the fast reader accepts, nlohmann accepts with
  // the same events; what nlohmann accepts, the fast reader accepts too.
  std::mt19937 rng(20261202);
  const std::string alphabet = "{}[]\":,\\/ -+.eE0123456789tfnu\x01\x7f\xc3\xa9\xed\xf0\x80\n";
  std::size_t accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string t = valid[static_cast<std::size_t>(round) % 2];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      const std::size_t at = rng() % t.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0: t.erase(at, 1); break;
        case 1: t[at] = c; break;
        case 2: t.insert(at, 1, c); break;
        default: t.resize(at); break;
      }
    }
    both_parsers p(t);
    if (p.fast_ok != p.slow_ok || (p.fast_ok && p.fast != p.slow)) {
      INFO(t);
      // nlohmann reads integers beyond 64 bits as floats; only that may differ.
      const bool long_number = std::regex_search(t, std::regex("[0-9]{19,}"));
      CHECK((long_number && !p.fast_ok && p.slow_ok));
    }
    accepted += p.slow_ok ? 1 : 0;
  }
  MESSAGE(accepted << " of 20000 mutations were still JSON");
  CHECK(accepted > 500);  // the comparison above covered accepted texts, not only rejected ones
}

TEST_CASE("openai_compatible: an answer the fast reader declines is read by nlohmann's parser just the same") {
  re::openai_compatible provider("k", "http://127.0.0.1:9/v1", "m");
  re::http_response r;
  r.status = 200;
  // 2^64 in the usage: nlohmann reads it (as a float), the fast reader declines it.
  r.body = R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"caf\u00e9"},)"
           R"("finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"x":18446744073709551616}})";
  auto c = provider.parse_response(r);
  REQUIRE(c);
  CHECK(c->text == "caf\xc3\xa9");
  CHECK(c->usage.input_tokens == 3);
  CHECK(c->usage.output_tokens == 2);
  r.body = R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}])";
  auto bad = provider.parse_response(r);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("not JSON") != std::string::npos);
}
