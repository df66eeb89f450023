// libFuzzer targets for every parser of requests_engine that reads outside data: one binary
// (the header is heavy to compile), the target chosen by the environment variable FUZZ_TARGET.
// Built and run by tools/fuzz.sh; seed corpora in tests/fuzz/corpus/<target>/.
//
//   FUZZ_TARGET=openai_chat build/fuzz/fuzz -max_total_time=60 corpus-copy/
//
// A target fails (abort) on a crash, a sanitizer report, an exception escaping a parser, or a
// broken property (see each target). Inputs that found something are kept in
// tests/fuzz/regressions/<target>/ (tools/fuzz.sh runs them first, every time) and become a
// unit test of their own (the retry-after date: tests/test_main.cpp).

// Everything the headers include, first.
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "requests_engine.hpp"
#include "run_input.hpp"

// batch_client's friend for tests: map_lines reads a downloaded results file as fetch() does.
REQUESTS_ENGINE_NAMESPACE_BEGIN
namespace detail {
struct batch_client_access {
  // With the problems of each line left out collected, as import_results() does.
  static void map_lines(batch_client& c, const std::string& text, const batch_job& job, const batch_part& part,
                        std::vector<std::optional<result<completion>>>& out) {
    std::vector<batch_import_problem> problems;
    std::size_t lines = 0;
    const std::size_t mapped = c.map_lines(text, job, part.first, part.first + part.count, out, &problems, &lines);
    if (mapped + problems.size() != lines) std::abort();  // every line read is either mapped or named
  }
};
}  // namespace detail
REQUESTS_ENGINE_NAMESPACE_END

namespace re = requests_engine;
using re::json;

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "\nFUZZ PROPERTY BROKEN: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}
void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

// Runs `f`; an exception escaping it is a finding (parsers report failures as values).
template <class F>
void no_throw(const char* where, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    fail(std::string(where) + " threw: " + e.what());
  } catch (...) {
    fail(std::string(where) + " threw something");
  }
}

std::string_view text_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// An HTTP answer as `curl -si` prints it ("HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\n
// \r\nbody"), so that the mock's captured answers are seeds as they are; anything else is a
// 200 body.
re::http_response as_response(std::string_view in) {
  re::http_response r;
  r.status = 200;
  if (in.substr(0, 5) != "HTTP/") {
    r.body.assign(in.data(), in.size());
    return r;
  }
  std::size_t pos = 0;
  bool first = true;
  while (pos < in.size()) {
    std::size_t eol = in.find('\n', pos);
    if (eol == std::string_view::npos) eol = in.size();
    std::string_view line = in.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      first = false;
      const std::size_t sp = line.find(' ');
      int status = 0;
      for (std::size_t i = sp == std::string_view::npos ? line.size() : sp + 1;
           i < line.size() && i < sp + 4 && line[i] >= '0' && line[i] <= '9'; ++i)
        status = status * 10 + (line[i] - '0');
      r.status = status;
      continue;
    }
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon), value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    r.headers.emplace_back(std::string(name), std::string(value));
  }
  if (pos < in.size()) r.body.assign(in.data() + pos, in.size() - pos);
  return r;
}

// Headers only ("name: value" lines, as `curl -D -` writes them, status line allowed).
re::header_list as_headers(std::string_view in) {
  std::string head = "HTTP/1.1 200 OK\n";
  if (in.substr(0, 5) == "HTTP/") head.clear();
  head.append(in.data(), in.size());
  return as_response(head).headers;
}

// A result<completion>'s outcome, checked for what every provider promises.
void check_result(const re::result<re::completion>& r, const re::http_response& in) {
  if (r) {
    const bool ok_status = in.status >= 200 && in.status < 300;
    require(ok_status, "a non-2xx answer parsed as a completion");
  } else {
    require(!r.error().message.empty(), "an error without a message");
  }
}

// ---- the fast JSON reader against nlohmann's SAX parser -------------------------------------

// Records the SAX events as text, numbers by value and (floats) by their source text.
struct recorder : nlohmann::json_sax<json> {
  std::vector<std::string> events;
  int depth = 0, max_depth = 0;
  bool int_as_float = false;  // an integer token nlohmann made a float (beyond 64 bits)
  bool null() override { return add("null"); }
  bool boolean(bool v) override { return add(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return add("i" + std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add("u" + std::to_string(v)); }
  bool number_float(number_float_t v, const string_t& s) override {
    if (s.find_first_of(".eE") == std::string::npos) int_as_float = true;
    char bits[64];
    std::snprintf(bits, sizeof bits, "%a", v);
    return add(std::string("f") + bits + " " + s);
  }
  bool string(string_t& v) override { return add("s" + v); }
  bool binary(binary_t&) override { return add("binary"); }
  bool start_object(std::size_t) override { return open("{"); }
  bool key(string_t& v) override { return add("k" + v); }
  bool end_object() override { return close("}"); }
  bool start_array(std::size_t) override { return open("["); }
  bool end_array() override { return close("]"); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool add(std::string e) {
    events.push_back(std::move(e));
    return true;
  }
  bool open(const char* e) {
    max_depth = std::max(max_depth, ++depth);
    return add(e);
  }
  bool close(const char* e) {
    --depth;
    return add(e);
  }
};

bool same_completion(const re::completion& a, const re::completion& b) {
  if (a.model != b.model || a.choices.size() != b.choices.size()) return false;
  for (std::size_t i = 0; i < a.choices.size(); ++i) {
    const auto &x = a.choices[i], &y = b.choices[i];
    if (x.text != y.text || x.finish_reason != y.finish_reason || x.tool_calls.size() != y.tool_calls.size())
      return false;
    for (std::size_t k = 0; k < x.tool_calls.size(); ++k)
      if (x.tool_calls[k].id != y.tool_calls[k].id || x.tool_calls[k].name != y.tool_calls[k].name ||
          x.tool_calls[k].arguments != y.tool_calls[k].arguments)
        return false;
  }
  return a.usage.input_tokens == b.usage.input_tokens && a.usage.output_tokens == b.usage.output_tokens &&
         a.usage.cached_input_tokens == b.usage.cached_input_tokens &&
         a.usage.reasoning_tokens == b.usage.reasoning_tokens;
}

// What "agree" means: whatever the fast reader accepts, nlohmann accepts with the very same
// events (floats to the bit, with the same source text), and the chat reader fed by either
// gives the same completion. The fast reader may decline what nlohmann accepts, but only for
// the reasons it documents (its caller then parses with nlohmann): an integer beyond 64 bits
// (nlohmann makes it a float), nesting deeper than 512, a UTF-8 byte order mark (nlohmann skips
// one at the start), a NUL byte (nlohmann's lexer takes it for the end of the input and accepts
// "7\0garbage" as 7; the fast reader refuses it, as RFC 8259 does).
void fuzz_fast_json(std::string_view in) {
  recorder fast_events, slow_events;
  const bool fast_ok = re::detail::fast_json_reader<recorder>(in, fast_events).parse();
  const bool slow_ok = json::sax_parse(in, &slow_events);
  if (fast_ok) {
    require(slow_ok, "the fast reader accepted what nlohmann rejects");
    require(fast_events.events == slow_events.events, "the fast reader's events differ from nlohmann's");
  } else if (slow_ok) {
    const bool bom = in.size() >= 3 && in.substr(0, 3) == "\xEF\xBB\xBF";
    const bool nul = in.find('\0') != std::string_view::npos;
    require(slow_events.int_as_float || slow_events.max_depth > 512 || bom || nul,
            "the fast reader declined well-formed JSON for no documented reason");
  }
  re::detail::openai_chat_reader fast, slow;
  if (re::detail::fast_json_reader<re::detail::openai_chat_reader>(in, fast).parse()) {
    require(json::sax_parse(in, &slow), "the chat reader: nlohmann rejects what the fast reader took");
    require(fast.check() == slow.check() && fast.problem == slow.problem,
            "the chat reader's verdict differs between the two parsers");
    require(same_completion(fast.out, slow.out), "the chat reader's completion differs between the two parsers");
  }
}

// ---- providers' response and error parsers ---------------------------------------------------

template <class Provider>
void parse_with(const Provider& p, const re::http_response& r, const char* where) {
  no_throw(where, [&] { check_result(p.parse_response(r), r); });
}

void fuzz_openai_chat(std::string_view in) {
  static const re::openai_compatible p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-4o-mini");
  const auto r = as_response(in);
  parse_with(p, r, "openai_compatible::parse_response");
  no_throw("openai_compatible::split_choices", [&] {
    for (const auto& one : p.split_choices(r.body)) {
      re::http_response single{200, {}, one};
      check_result(p.parse_response(single), single);
    }
  });
}

void fuzz_openai_completions(std::string_view in) {
  static const re::openai_completions p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-3.5-turbo-instruct");
  const auto r = as_response(in);
  parse_with(p, r, "openai_completions::parse_response");
  no_throw("openai_completions::split_choices", [&] { (void)p.split_choices(r.body); });
}

void fuzz_openai_responses(std::string_view in) {
  static const re::openai_responses p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-4o-mini");
  parse_with(p, as_response(in), "openai_responses::parse_response");
}

void fuzz_anthropic(std::string_view in) {
  static const re::anthropic p("sk-ant-fuzz", "claude-sonnet-4-5", "http://127.0.0.1:1");
  parse_with(p, as_response(in), "anthropic::parse_response");
}

void fuzz_gemini(std::string_view in) {
  static const re::gemini p("fuzz-key", "gemini-2.5-flash", "http://127.0.0.1:1");
  parse_with(p, as_response(in), "gemini::parse_response");
}

void fuzz_bedrock(std::string_view in) {
  static const re::bedrock_anthropic p(re::aws_credentials{"AKIAFUZZFUZZFUZZFUZZ", "fuzz-secret", ""}, "us-east-1",
                                       "anthropic.claude-3-5-sonnet-20240620-v1:0", "http://127.0.0.1:1");
  parse_with(p, as_response(in), "bedrock_anthropic::parse_response");
}

void fuzz_embeddings(std::string_view in) {
  static const re::openai_embeddings openai("sk-fuzz", "http://127.0.0.1:1/v1", "text-embedding-3-small");
  static const re::gemini_embeddings gemini("fuzz-key", "gemini-embedding-001", "http://127.0.0.1:1");
  const auto r = as_response(in);
  parse_with(openai, r, "openai_embeddings::parse_response");
  parse_with(gemini, r, "gemini_embeddings::parse_response");
}

// ---- the CLI's input reader ---------------------------------------------------------------

// read_input reads a file: the input goes to one per process. Every non-blank line is either
// an item or a problem, for each of the ways the CLI reads a file.
void fuzz_input_lines(std::string_view in) {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/requests-engine-fuzz-input-" + std::to_string(::getpid()) +
           ".jsonl";
  }();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(in.data(), static_cast<std::streamsize>(in.size()));
    if (!out) fail("cannot write " + path);
  }
  requests_engine_cli::input_options plain, raw, embed;
  raw.raw_openai_body = raw.raw_responses_body = true;
  raw.temperature = 0.5;
  raw.max_tokens = 64;
  embed.embed = true;
  for (const auto* opt : {&plain, &raw, &embed}) {
    no_throw("requests_engine_cli::read_input", [&] {
      const auto f = requests_engine_cli::read_input(path, *opt);
      require(f.items.size() + f.problems.size() == f.lines, "read_input: a line is neither an item nor a problem");
    });
  }
  no_throw("requests_engine_cli::detail::first_batch_url",
           [&] { (void)requests_engine_cli::detail::first_batch_url(path); });
}

// ---- cache entries ------------------------------------------------------------------------

// An entry read from disk: decoded with and without the key it should hold, by the full parse
// and by the hit path's quick check, which must agree on the body when both accept. Then the
// input as a response body: encoded and decoded again, it comes back the same.
void fuzz_cache_entry(std::string_view in) {
  const std::string text(in);
  // The key the entry says it holds (so that the hit path's check can match), else any key.
  re::cache_key key{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0};
  // Only a well-formed one: a real key is always 64 hex digits (the SHA-256 of the request).
  if (const auto at = text.find("\"hash\":\""); at != std::string::npos && text.size() >= at + 8 + 64) {
    const std::string hash = text.substr(at + 8, 64);
    if (hash.find_first_not_of("0123456789abcdef") == std::string::npos) key.hash = hash;
  }
  no_throw("decode_cache_entry", [&] {
    std::string why;
    const auto full = re::detail::decode_cache_entry(text, &key, why, false);
    require(full.has_value() || !why.empty(), "decode_cache_entry: a refusal without a reason");
    why.clear();
    const auto quick = re::detail::decode_cache_entry(text, &key, why, true);
    if (full) require(quick && quick->body == full->body, "decode_cache_entry: the hit path lost a good entry");
    why.clear();
    (void)re::detail::decode_cache_entry(text, nullptr, why, false);
  });
  no_throw("encode_cache_entry", [&] {
    const std::string entry = re::detail::encode_cache_entry(key, json{{"kind", "fuzz"}}, "ns", text, &text);
    std::string why;
    for (bool body_only : {false, true}) {
      const auto back = re::detail::decode_cache_entry(entry, &key, why, body_only);
      require(back && back->body == text, "a cache entry does not decode to the body it was made of");
    }
  });
}

// ---- batch result files -------------------------------------------------------------------

// A results file (JSONL) as downloaded, read by both APIs' clients for a job of four requests.
void fuzz_batch_results(std::string_view in) {
  static re::batch_client openai(re::openai_compatible("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-4o-mini"));
  static re::batch_client anthropic(re::anthropic("sk-ant-fuzz", "claude-sonnet-4-5", "http://127.0.0.1:1"));
  static const re::batch_job job = [] {
    re::batch_job j;
    j.hashes = {"h0", "h1", "h2", "h3"};
    j.samples = {0, 0, 0, 0};
    re::batch_part part;
    part.first = 0;
    part.count = 4;
    part.status = re::batch_status::completed;
    j.parts.push_back(part);
    return j;
  }();
  const std::string text(in);
  for (re::batch_client* c : {&openai, &anthropic}) {
    std::vector<std::optional<re::result<re::completion>>> out(job.size());
    no_throw("batch_client::map_lines", [&] { re::detail::batch_client_access::map_lines(*c, text, job, job.parts[0], out); });
  }
}

// ---- retry-after and rate-limit headers ---------------------------------------------------

void fuzz_headers(std::string_view in) {
  const re::header_list h = as_headers(in);
  no_throw("parse_retry_after", [&] {
    if (const auto wait = re::detail::parse_retry_after(h)) require(wait->count() >= 0, "a negative retry-after");
  });
  for (const auto& kv : h) {
    no_throw("parse_reset_duration", [&] {
      if (const auto d = re::detail::parse_reset_duration(kv.second)) require(d->count() >= 0, "a negative reset");
    });
    no_throw("parse_rfc3339", [&] { (void)re::detail::parse_rfc3339(kv.second); });
  }
  no_throw("rate_limiter::observe", [&] {
    re::options::rate_limits limits;
    re::detail::rate_limiter limiter(limits);
    const auto now = re::detail::clock::now();
    limiter.observe(h, now);
    re::detail::request_cost cost;
    cost.input_tokens = 100;
    cost.output_tokens = 100;
    (void)limiter.earliest(cost, now);
    const auto seq = limiter.sending(cost);
    limiter.answered(seq, &h, now);
    (void)limiter.reserve(cost, now);
    (void)limiter.learned();
  });
}

// ---- URLs ---------------------------------------------------------------------------------

// parse_url throws std::invalid_argument on a malformed URL (by design: URLs are given at
// construction); anything else escaping, or a port out of range, is a finding.
void fuzz_url(std::string_view in) {
  const std::string url(in);
  try {
    const re::url_parts u = re::parse_url(url);
    require(u.port > 0 && u.port <= 65535, "parse_url: a port out of range");
    require(!u.host.empty(), "parse_url: an empty host");
    require(!u.path.empty() && u.path[0] == '/', "parse_url: a path not starting with '/'");
    (void)u.origin();
  } catch (const std::invalid_argument&) {
  } catch (const std::exception& e) {
    fail(std::string("parse_url threw: ") + e.what());
  }
}

// ---- the stream framings ------------------------------------------------------------------

// Where to cut the input in two: from its first two bytes, so that the fuzzer steers it.
std::size_t split_point(std::string_view in) {
  if (in.size() < 2) return 0;
  const auto v = static_cast<std::size_t>(static_cast<unsigned char>(in[0]) |
                                          (static_cast<unsigned>(static_cast<unsigned char>(in[1])) << 8));
  return v % (in.size() + 1);
}

using sse_events = std::vector<re::detail::sse_reader::event>;
bool operator_eq(const sse_events& a, const sse_events& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].data != b[i].data) return false;
  return true;
}

// The same events whether the bytes come at once, in two pieces, or one byte at a time.
void fuzz_sse(std::string_view in) {
  sse_events whole, halves, bytes;
  re::detail::sse_reader a, b, c;
  a.feed(in, whole);
  const std::size_t cut = split_point(in);
  b.feed(in.substr(0, cut), halves);
  b.feed(in.substr(cut), halves);
  for (std::size_t i = 0; i < in.size(); ++i) c.feed(in.substr(i, 1), bytes);
  require(operator_eq(whole, halves), "sse_reader: two pieces give other events than the whole");
  require(operator_eq(whole, bytes), "sse_reader: byte by byte gives other events than the whole");
  require(a.idle() == b.idle() && a.idle() == c.idle(), "sse_reader: idle() depends on the pieces");
}

// Rewrites the CRCs of the frames in `s` (what a mutation rarely gets right), so that the
// fuzzer reaches the headers and payloads.
std::string with_good_crcs(std::string s) {
  std::size_t pos = 0;
  while (s.size() - pos >= 12) {
    const auto total = static_cast<std::uint32_t>(re::detail::read_be(s, pos, 4));
    const std::uint32_t prelude = re::detail::crc32(std::string_view(s).substr(pos, 8));
    for (int i = 0; i < 4; ++i) s[pos + 8 + static_cast<std::size_t>(i)] = static_cast<char>(prelude >> (24 - 8 * i));
    if (total < 16 || total > s.size() - pos) break;
    const std::uint32_t message = re::detail::crc32(std::string_view(s).substr(pos, total - 4));
    for (int i = 0; i < 4; ++i)
      s[pos + total - 4 + static_cast<std::size_t>(i)] = static_cast<char>(message >> (24 - 8 * i));
    pos += total;
  }
  return s;
}

using es_messages = std::vector<re::detail::event_stream_message>;
bool operator_eq(const es_messages& a, const es_messages& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].headers != b[i].headers || a[i].payload != b[i].payload) return false;
  return true;
}

void event_stream_once(std::string_view in) {
  es_messages whole, halves, bytes;
  re::detail::event_stream_reader a, b, c;
  const bool whole_ok = a.feed(in, whole);
  const std::size_t cut = split_point(in);
  const bool halves_ok = b.feed(in.substr(0, cut), halves) && b.feed(in.substr(cut), halves);
  bool bytes_ok = true;
  for (std::size_t i = 0; i < in.size() && bytes_ok; ++i) bytes_ok = c.feed(in.substr(i, 1), bytes);
  require(whole_ok == halves_ok && whole_ok == bytes_ok, "event_stream_reader: the verdict depends on the pieces");
  require(a.error() == b.error() && a.error() == c.error(), "event_stream_reader: the error depends on the pieces");
  if (whole_ok) {
    require(operator_eq(whole, halves), "event_stream_reader: two pieces give other messages than the whole");
    require(operator_eq(whole, bytes), "event_stream_reader: byte by byte gives other messages than the whole");
    require(a.idle() == b.idle() && a.idle() == c.idle(), "event_stream_reader: idle() depends on the pieces");
  } else {
    require(!a.error().empty(), "event_stream_reader: a failure without an error");
  }
}

void fuzz_event_stream(std::string_view in) {
  event_stream_once(in);
  const std::string fixed = with_good_crcs(std::string(in));
  if (fixed != in) event_stream_once(fixed);
}

// ---- stream decoders ----------------------------------------------------------------------

struct decoded {
  std::vector<re::stream_delta> deltas;
  std::optional<re::error> failure;
  std::optional<re::result<std::string>> body;  // finish(), when the stream did not fail
};

template <class Make>
decoded decode_in_pieces(const Make& make, std::string_view in, const std::vector<std::size_t>& cuts) {
  decoded d;
  auto dec = make();
  std::size_t from = 0;
  for (std::size_t k = 0; k <= cuts.size() && !d.failure; ++k) {
    const std::size_t to = k < cuts.size() ? cuts[k] : in.size();
    d.failure = dec->feed(in.substr(from, to - from), d.deltas);
    from = to;
  }
  if (!d.failure) d.body = dec->finish();
  return d;
}

bool same_deltas(const std::vector<re::stream_delta>& a, const std::vector<re::stream_delta>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].type != b[i].type || a[i].choice != b[i].choice || a[i].text != b[i].text ||
        a[i].tool_index != b[i].tool_index || a[i].tool_id != b[i].tool_id || a[i].tool_name != b[i].tool_name)
      return false;
  return true;
}

bool same_error(const std::optional<re::error>& a, const std::optional<re::error>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->code == b->code && a->message == b->message && a->provider_code == b->provider_code);
}

// A decoder never crashes nor throws; it gives the same pieces, the same error and the same
// assembled body whether the bytes come at once, in two pieces or one byte at a time; the body
// it assembles is JSON, and the provider's parse_response reads it without throwing.
template <class Make, class Provider>
void fuzz_decoder(std::string_view in, const Make& make, const Provider& p, const char* where) {
  no_throw(where, [&] {
    const decoded whole = decode_in_pieces(make, in, {});
    const decoded halves = decode_in_pieces(make, in, {split_point(in)});
    std::vector<std::size_t> every;
    // Byte by byte is quadratic for some decoders' buffers: up to 4 KiB of input.
    if (in.size() <= 4096)
      for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
    const decoded bytes = decode_in_pieces(make, in, every);
    for (const decoded* other : {&halves, &bytes}) {
      require(same_deltas(whole.deltas, other->deltas), "a stream decoder: the pieces depend on how bytes arrive");
      require(same_error(whole.failure, other->failure), "a stream decoder: the error depends on how bytes arrive");
      require(whole.body.has_value() == other->body.has_value() &&
                  (!whole.body || (static_cast<bool>(*whole.body) == static_cast<bool>(*other->body) &&
                                   (*whole.body ? **whole.body == **other->body
                                                : same_error(whole.body->error(), other->body->error())))),
              "a stream decoder: finish() depends on how bytes arrive");
    }
    if (whole.body && *whole.body) {
      require(json::accept(**whole.body), "a stream decoder assembled a body that is not JSON");
      re::http_response r{200, {}, **whole.body};
      (void)p.parse_response(r);
    }
  });
}

void fuzz_stream_openai_chat(std::string_view in) {
  static const re::openai_compatible p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-4o-mini");
  fuzz_decoder(in, [] { return re::detail::openai_chat_stream(); }, p, "openai_chat_stream");
}
void fuzz_stream_openai_completions(std::string_view in) {
  static const re::openai_completions p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-3.5-turbo-instruct");
  fuzz_decoder(in, [] { return re::detail::openai_completions_stream(); }, p, "openai_completions_stream");
}
void fuzz_stream_openai_responses(std::string_view in) {
  static const re::openai_responses p("sk-fuzz", "http://127.0.0.1:1/v1", "gpt-4o-mini");
  fuzz_decoder(in, [] { return re::detail::openai_responses_stream(); }, p, "openai_responses_stream");
}
void fuzz_stream_anthropic(std::string_view in) {
  static const re::anthropic p("sk-ant-fuzz", "claude-sonnet-4-5", "http://127.0.0.1:1");
  fuzz_decoder(in, [] { return re::detail::anthropic_stream(false); }, p, "anthropic_stream");
}
void fuzz_stream_bedrock(std::string_view in) {
  static const re::bedrock_anthropic p(re::aws_credentials{"AKIAFUZZFUZZFUZZFUZZ", "fuzz-secret", ""}, "us-east-1",
                                       "anthropic.claude-3-5-sonnet-20240620-v1:0", "http://127.0.0.1:1");
  const auto make = [] { return re::detail::anthropic_stream(true); };
  fuzz_decoder(in, make, p, "anthropic_stream(bedrock)");
  const std::string fixed = with_good_crcs(std::string(in));
  if (fixed != in) fuzz_decoder(fixed, make, p, "anthropic_stream(bedrock)");
}
void fuzz_stream_gemini(std::string_view in) {
  static const re::gemini p("fuzz-key", "gemini-2.5-flash", "http://127.0.0.1:1");
  fuzz_decoder(in, [] { return re::detail::gemini_stream(); }, p, "gemini_stream");
}

// ---- the table ----------------------------------------------------------------------------

struct target {
  const char* name;
  void (*run)(std::string_view);
  const char* what;
};
const target targets[] = {
    {"fast_json", fuzz_fast_json, "detail::fast_json_reader against nlohmann::json::sax_parse (differential)"},
    {"openai_chat", fuzz_openai_chat, "openai_compatible::parse_response (any status) and split_choices"},
    {"openai_completions", fuzz_openai_completions, "openai_completions::parse_response and split_choices"},
    {"openai_responses", fuzz_openai_responses, "openai_responses::parse_response"},
    {"anthropic", fuzz_anthropic, "anthropic::parse_response"},
    {"gemini", fuzz_gemini, "gemini::parse_response"},
    {"bedrock", fuzz_bedrock, "bedrock_anthropic::parse_response"},
    {"embeddings", fuzz_embeddings, "openai_embeddings and gemini_embeddings ::parse_response"},
    {"input_lines", fuzz_input_lines, "the CLI's read_input (plain and OpenAI Batch lines)"},
    {"cache_entry", fuzz_cache_entry, "decode_cache_entry (full and hit path), encode round trip"},
    {"batch_results", fuzz_batch_results, "batch_client::map_lines (OpenAI and Anthropic result files)"},
    {"headers", fuzz_headers, "parse_retry_after, parse_reset_duration, parse_rfc3339, rate_limiter::observe"},
    {"url", fuzz_url, "parse_url"},
    {"sse", fuzz_sse, "detail::sse_reader: whole = two pieces = byte by byte"},
    {"event_stream", fuzz_event_stream, "detail::event_stream_reader: whole = two pieces = byte by byte"},
    {"stream_openai_chat", fuzz_stream_openai_chat, "openai_chat_stream decoder"},
    {"stream_openai_completions", fuzz_stream_openai_completions, "openai_completions_stream decoder"},
    {"stream_openai_responses", fuzz_stream_openai_responses, "openai_responses_stream decoder"},
    {"stream_anthropic", fuzz_stream_anthropic, "anthropic_stream decoder (SSE)"},
    {"stream_bedrock", fuzz_stream_bedrock, "anthropic_stream(bedrock) decoder (AWS event stream)"},
    {"stream_gemini", fuzz_stream_gemini, "gemini_stream decoder"},
};

const target* chosen = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* name = std::getenv("FUZZ_TARGET");
  for (const target& t : targets)
    if (name && std::strcmp(name, t.name) == 0) chosen = &t;
  if (!chosen) {
    std::fprintf(stderr, "%s: set FUZZ_TARGET to one of:\n", name && *name ? "unknown FUZZ_TARGET" : "no FUZZ_TARGET");
    for (const target& t : targets) std::fprintf(stderr, "  %-26s %s\n", t.name, t.what);
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  chosen->run(text_of(data, size));
  return 0;
}
