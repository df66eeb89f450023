// Unit tests of the pure parts (no network) and the doctest runner.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>

// Defined in test_cache.cpp: the work of a child process that the cache tests spawn.
int cache_child_main(int argc, char** argv);

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) return cache_child_main(argc, argv);
  doctest::Context context(argc, argv);
  return context.run();
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
