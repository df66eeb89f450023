// End-to-end tests of the `requests-engine` command, run as a user runs it: the built binary
// in child processes (posix_spawn), real files, and `requests-engine mock` on loopback.
// Light on purpose: doctest, nlohmann/json and POSIX only (no httplib, no requests_engine.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "loopback_proxy.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef REQUESTS_ENGINE_CLI_BINARY
#error "compile with -DREQUESTS_ENGINE_CLI_BINARY=\"/path/to/requests-engine\""
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string binary = REQUESTS_ENGINE_CLI_BINARY;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p, std::ios::binary);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

std::vector<json> json_lines(const fs::path& p) {
  std::vector<json> out;
  for (const auto& l : lines_of(p)) out.push_back(json::parse(l));
  return out;
}

// A fresh folder per test under the working directory (build/.../test-scratch).
fs::path scratch(const std::string& name) {
  fs::path dir = fs::absolute("cli-scratch") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Every secret a test hands a child process (the values of *_API_KEY, *_SECRET_ACCESS_KEY,
// *_SESSION_TOKEN and *_TOKEN variables, and whatever a test registers): after each process
// ends, everything it could have written (stdout, stderr, and every file under its folder:
// output, summary, logs, cache, job files) is searched for them.
std::set<std::string>& secrets() {
  static std::set<std::string> s;
  return s;
}
void register_secret(const std::string& s) {
  if (s.size() >= 8) secrets().insert(s);
}
bool names_a_secret(const std::string& name) {
  const auto ends = [&](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  return ends("_API_KEY") || ends("_SECRET_ACCESS_KEY") || ends("_TOKEN");
}
void check_no_secret_written(const fs::path& dir, const std::vector<fs::path>& extra_files);

// A child process with stdout and stderr in files; the provider variables of the parent are
// not passed on, so that a developer's real key can never be used by a test.
struct child {
  pid_t pid = -1;
  fs::path dir, out, err;
};

// `program` with `args` (argv[0] is the program); spawn() below runs the built binary.
child spawn_program(const std::string& program, const std::vector<std::string>& args, const fs::path& dir,
                    const std::string& tag, const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (key.rfind("OPENAI_", 0) == 0 || key.rfind("ANTHROPIC_", 0) == 0 || key.rfind("AWS_", 0) == 0 ||
        key.rfind("GEMINI_", 0) == 0 || key.rfind("GOOGLE_", 0) == 0 || key.rfind("AZURE_", 0) == 0 ||
        names_a_secret(key) || key == "REQUESTS_ENGINE_CACHE_DIR" ||
        env.count(key) != 0)  // the test's value replaces the parent's (getenv takes the first)
      continue;
    envs.push_back(kv);
  }
  for (const auto& kv : env) {
    envs.push_back(kv.first + "=" + kv.second);
    if (names_a_secret(kv.first)) register_secret(kv.second);
  }
  std::vector<char*> envp;
  for (auto& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_s = args;
  argv_s.insert(argv_s.begin(), program);
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  child c;
  c.dir = dir;
  c.out = dir / (tag + ".out");
  c.err = dir / (tag + ".err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&c.pid, program.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE_MESSAGE(rc == 0, "posix_spawn " << program << ": " << std::strerror(rc));
  return c;
}

child spawn(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag,
            const std::map<std::string, std::string>& env = {}) {
  return spawn_program(binary, args, dir, tag, env);
}

// Exit status, or 128 + signal.
int wait_for(const child& c) {
  int status = 0;
  while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

struct outcome {
  int status = -1;
  std::string out, err;
};

outcome finish(const child& c) {
  outcome o;
  o.status = wait_for(c);
  o.out = slurp(c.out);
  o.err = slurp(c.err);
  check_no_secret_written(c.dir, {c.out, c.err});
  return o;
}

void check_no_secret_written(const fs::path& dir, const std::vector<fs::path>& extra_files) {
  if (secrets().empty()) return;
  std::vector<fs::path> files = extra_files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) files.push_back(it->path());
  for (const fs::path& f : files) {
    const std::string text = slurp(f);
    for (const std::string& s : secrets()) CHECK_MESSAGE(text.find(s) == std::string::npos, "a secret is in " << f);
  }
}

outcome run_cli(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag,
                const std::map<std::string, std::string>& env = {}) {
  return finish(spawn(args, dir, tag, env));
}

// A program found on PATH (spawn_program takes a path): `/usr/bin/env PROGRAM ARGS...`.
outcome run_program(const std::string& program, std::vector<std::string> args, const fs::path& dir,
                    const std::string& tag) {
  args.insert(args.begin(), program);
  return finish(spawn_program("/usr/bin/env", args, dir, tag));
}

// `requests-engine mock --port 0 --port-file F`, ready when the file holds the port.
class mock {
 public:
  mock(const fs::path& dir, std::vector<std::string> flags = {}, const std::map<std::string, std::string>& env = {}) {
    const fs::path port_file = dir / "mock.port";
    // A mock started earlier in the same folder left its port here: waiting for the file to
    // appear must not read that dead port before the new mock writes its own.
    std::error_code ignored;
    fs::remove(port_file, ignored);
    std::vector<std::string> args = {"mock", "--port", "0", "--port-file", port_file.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    c_ = spawn(args, dir, "mock", env);
    for (int i = 0; i < 300 && port_ == 0; ++i) {
      std::this_thread::sleep_for(50ms);
      const std::string s = slurp(port_file);
      if (!s.empty() && s.back() == '\n') port_ = std::atoi(s.c_str());
    }
    if (port_ == 0) {
      kill(c_.pid, SIGKILL);
      wait_for(c_);
      FAIL("the mock did not start: " << slurp(c_.err));
    }
  }
  ~mock() {
    if (c_.pid > 0) {
      kill(c_.pid, SIGKILL);
      wait_for(c_);
    }
  }
  mock(const mock&) = delete;
  mock& operator=(const mock&) = delete;

  [[nodiscard]] std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string base_url() const { return origin() + "/v1"; }
  /// For a mock started with --tls-dir.
  [[nodiscard]] std::string https_base_url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  [[nodiscard]] std::map<std::string, std::string> env() const { return {{"OPENAI_BASE_URL", base_url()}}; }

  /// SIGTERM; the number of chat requests the mock says it served.
  long stop() {
    kill(c_.pid, SIGTERM);
    wait_for(c_);
    c_.pid = -1;
    const std::string err = slurp(c_.err);
    stderr_ = err;
    std::smatch m;
    if (!std::regex_search(err, m, std::regex(R"(\((\d+) chat requests served\))"))) {
      FAIL("no served count in the mock's stderr: " << err);
      return -1;
    }
    return std::stol(m[1].str());
  }
  /// After stop(): what the mock printed ("N gemini, N vertex, N bedrock; N access tokens issued").
  [[nodiscard]] const std::string& stopped_stderr() const { return stderr_; }

 private:
  child c_;
  std::string stderr_;
  int port_ = 0;
};

std::string plain_input(std::size_t n, std::size_t first = 0) {
  std::string s;
  for (std::size_t i = first; i < first + n; ++i)
    s += json{{"id", "q" + std::to_string(i)}, {"prompt", "question " + std::to_string(i)}}.dump() + "\n";
  return s;
}

std::size_t count_cache_entries(const fs::path& dir) {
  std::size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") ++n;
  return n;
}

// The run report: events as the run goes, one HTML page, rendered in a real browser.

// The events of an events file, by type.
std::vector<json> events_of(const fs::path& p, const std::string& type) {
  std::vector<json> out;
  for (const auto& l : lines_of(p)) {
    const json j = json::parse(l, nullptr, false);
    if (j.is_object() && j.value("type", "") == type) out.push_back(j);
  }
  return out;
}

// What the page shows in the element with this id.
std::string shown(const std::string& html, const std::string& id) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex("id=\"" + id + "\"[^>]*>([^<]*)<"))) return "(no element " + id + ")";
  return m[1].str();
}

std::string with_commas(std::int64_t v) {
  std::string digits = std::to_string(v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The nearest-rank quantile of `v`.
double nearest_rank(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[rank == 0 ? 0 : rank - 1];
}

// Debian's chromium, headless: the page's DOM after loading, its console messages (every one
// is a problem: the page has no script), and a screenshot. Names resolve nowhere, so a
// resource from elsewhere would fail loudly.
struct rendered {
  std::string dom;
  std::vector<std::string> console;
};
const char* const chromium_path = "/usr/bin/chromium";
bool chromium_or_skip(const std::string& test) {
  if (access(chromium_path, X_OK) == 0) return true;
  const std::string reason = "no /usr/bin/chromium (bash tools/install-deps.sh --tests installs it)";
  if (const char* ci = std::getenv("CI"); ci != nullptr && std::string(ci) == "true") {
    FAIL("required under CI=true, and not here: " << reason);
  }
  std::cout << "  SKIPPED \"" << test << "\": " << reason << std::endl;
  return false;
}
rendered render(const fs::path& page, const fs::path& png, const fs::path& dir, const std::string& tag) {
  std::vector<std::string> common = {"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                     "--hide-scrollbars", "--user-data-dir=" + (dir / (tag + "-profile")).string(),
                                     "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0"};
  std::vector<std::string> dump = common;
  dump.push_back("--dump-dom");
  dump.push_back("file://" + page.string());
  const outcome d = finish(spawn_program(chromium_path, dump, dir, tag + "-dom"));
  CHECK_MESSAGE(d.status == 0, d.err);
  rendered r;
  r.dom = d.out;
  std::vector<std::string> shot = common;
  shot.push_back("--window-size=1000,3600");
  shot.push_back("--screenshot=" + png.string());
  shot.push_back("file://" + page.string());
  const outcome s = finish(spawn_program(chromium_path, shot, dir, tag + "-shot"));
  CHECK_MESSAGE(s.status == 0, s.err);
  for (const std::string* err : {&d.err, &s.err}) {
    std::istringstream in(*err);
    std::string line;
    while (std::getline(in, line))
      if (line.find(":CONSOLE") != std::string::npos) r.console.push_back(line);
  }
  return r;
}


}  // namespace

TEST_CASE("run: plain format; every line answered; a rerun comes from the cache") {
  const fs::path dir = scratch("plain");
  write_text(dir / "in.jsonl",
             R"({"id":"a","prompt":"Hello there"})"
             "\n"
             R"({"id":"b","system":"Be brief","messages":[{"role":"user","content":"What is 2+2?"}],"temperature":0.2})"
             "\n"
             R"({"id":7,"messages":[{"role":"user","content":[{"type":"text","text":"Parts"}]}],"seed":3,"max_tokens":20})"
             "\n");
  mock server(dir);
  const std::vector<std::string> args = {"run",   (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                         "--model", "test-model", "--cache-dir", (dir / "cache").string()};
  outcome first = run_cli(args, dir, "run1", server.env());
  CHECK_MESSAGE(first.status == 0, first.err);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].dump()] = l;
  REQUIRE(by_id.size() == 3);
  const json& a = by_id["\"a\""];
  CHECK(a["text"] == "Mock answer to: Hello there");
  CHECK(a["error"].is_null());
  CHECK(a["model"] == "test-model");
  CHECK(a["finish_reason"] == "stop");
  CHECK(a["usage"]["output_tokens"].get<int>() > 0);
  CHECK(a["request_hash"].get<std::string>().size() == 64);
  CHECK(a["from_cache"] == false);
  CHECK(by_id["\"b\""]["text"] == "Mock answer to: What is 2+2?");
  CHECK(by_id["7"]["text"] == "Mock answer to: Parts");
  CHECK(by_id["7"]["id"] == 7);
  CHECK(first.err.find("succeeded    3") != std::string::npos);
  CHECK(first.err.find("cost         unknown (no price for test-model") != std::string::npos);

  outcome second = run_cli(args, dir, "run2", server.env());
  CHECK_MESSAGE(second.status == 0, second.err);
  const auto again = json_lines(dir / "out.jsonl");
  REQUIRE(again.size() == 3);
  for (const json& l : again) {
    CHECK(l["from_cache"] == true);
    CHECK(l["text"] == by_id[l["id"].dump()]["text"]);
    CHECK(l["request_hash"] == by_id[l["id"].dump()]["request_hash"]);
  }
  CHECK(second.err.find("from cache   3") != std::string::npos);
  CHECK(server.stop() == 3);
}

TEST_CASE("run --stream always: answers streamed from the mock (with cut streams), written and cached as whole ones; the summary gives the time to first token") {
  const fs::path dir = scratch("stream");
  write_text(dir / "in.jsonl", plain_input(40));
  mock server(dir, {"--stream-event-delay-ms", "2", "--stream-chunk-bytes", "4", "--fail-stream-cut", "0.2"});
  std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                   "--model", "mock-model", "--stream", "always", "--concurrency", "8",
                                   "--cache-dir", (dir / "cache").string(), "--summary-json",
                                   (dir / "summary.json").string()};
  outcome first = run_cli(args, dir, "run1", server.env());
  REQUIRE_MESSAGE(first.status == 0, first.err);
  const auto lines = json_lines(dir / "out.jsonl");
  REQUIRE(lines.size() == 40);
  for (const json& l : lines) {
    CHECK(l["error"].is_null());
    CHECK(l["text"] == "Mock answer to: question " + l["id"].get<std::string>().substr(1));
  }
  const json summary = json::parse(slurp(dir / "summary.json"));
  CHECK(summary["succeeded"] == 40);
  CHECK(summary["retries"].get<int>() > 0);  // a fifth of the streams were cut
  REQUIRE(summary.contains("time_to_first_token_ms"));
  CHECK(summary["time_to_first_token_ms"]["streamed"] == 40);
  CHECK(summary["time_to_first_token_ms"]["median"].get<double>() <= summary["time_to_first_token_ms"]["p90"].get<double>());
  CHECK(first.err.find("first token  median") != std::string::npos);
  // The events carry each answer's time to first token; the report draws them with the median.
  std::vector<double> ttft;
  for (const json& e : events_of(dir / "out.jsonl.events.jsonl", "request")) ttft.push_back(e.value("ttft", -1.0));
  REQUIRE(ttft.size() == 40);
  CHECK(*std::min_element(ttft.begin(), ttft.end()) >= 0);
  CHECK(nearest_rank(ttft, 0.5) == summary["time_to_first_token_ms"]["median"].get<double>());
  outcome rep = run_cli({"report", (dir / "out.jsonl.events.jsonl").string(), "-o", (dir / "r.html").string()}, dir,
                        "report");
  REQUIRE_MESSAGE(rep.status == 0, rep.err);
  CHECK(shown(slurp(dir / "r.html"), "ttft-p50") ==
        std::to_string(static_cast<std::int64_t>(summary["time_to_first_token_ms"]["median"].get<double>())));
  // The cached answers replay without the network, streamed or not.
  args[7] = "never";
  outcome second = run_cli(args, dir, "run2", server.env());
  REQUIRE_MESSAGE(second.status == 0, second.err);
  for (const json& l : json_lines(dir / "out.jsonl")) CHECK(l["from_cache"] == true);
  // A bad mode is a usage error naming the option.
  args[7] = "sometimes";
  outcome bad = run_cli(args, dir, "run3", server.env());
  CHECK(bad.status == 2);
  CHECK(bad.err.find("--stream") != std::string::npos);
}

TEST_CASE("run --api completions --batch-size 50: 1,000 prompts in at most 25 HTTP requests, each answer its own") {
  const fs::path dir = scratch("prompt-arrays");
  write_text(dir / "in.jsonl", plain_input(1000));
  mock server(dir);
  const std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                         "--model", "mock-base", "--api", "completions", "--batch-size", "50",
                                         "--cache-dir", (dir / "cache").string(), "--summary-json",
                                         (dir / "summary.json").string()};
  outcome first = run_cli(args, dir, "run1", server.env());
  REQUIRE_MESSAGE(first.status == 0, first.err);
  const auto lines = json_lines(dir / "out.jsonl");
  REQUIRE(lines.size() == 1000);
  std::set<std::string> ids;
  for (const json& l : lines) {
    const std::string id = l["id"].get<std::string>();
    ids.insert(id);
    CHECK(l["error"].is_null());
    CHECK(l["text"] == "Mock answer to: question " + id.substr(1));  // "q17" asked "question 17"
    CHECK(l["from_cache"] == false);
  }
  CHECK(ids.size() == 1000);
  const json summary = json::parse(slurp(dir / "summary.json"));
  CHECK(summary["http_requests"].get<int>() <= 25);
  CHECK(summary["mean_batch_size"].get<double>() >= 40.0);
  CHECK(first.err.find("mean batch size") != std::string::npos);

  // The rerun comes from the cache: no HTTP request at all.
  outcome second = run_cli(args, dir, "run2", server.env());
  REQUIRE_MESSAGE(second.status == 0, second.err);
  CHECK(second.err.find("from cache   1000") != std::string::npos);
  CHECK(second.err.find("http         0 requests") != std::string::npos);

  const long served = server.stop();
  CHECK(served == summary["http_requests"].get<long>());
  CHECK(served <= 25);
  CHECK(server.stopped_stderr().find(std::to_string(served) + " legacy completions") != std::string::npos);
}

TEST_CASE("run: --batch-size and --api are checked before anything is sent") {
  const fs::path dir = scratch("batch-usage");
  write_text(dir / "in.jsonl", plain_input(2));
  const std::vector<std::string> base = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                         "--model", "m", "--no-cache"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir, "usage", {{"OPENAI_BASE_URL", "http://127.0.0.1:1/v1"}});
  };
  outcome no_api = with({"--batch-size", "8"});
  CHECK(no_api.status == 2);
  CHECK(no_api.err.find("--batch-size sends prompt arrays: it needs --api completions") != std::string::npos);
  outcome bad_api = with({"--api", "chats"});
  CHECK(bad_api.status == 2);
  CHECK(bad_api.err.find("--api must be chat, completions, responses or embeddings, got 'chats'") != std::string::npos);
  outcome plain_embeddings = with({"--api", "embeddings"});
  CHECK(plain_embeddings.status == 2);
  CHECK(plain_embeddings.err.find("use requests-engine embed") != std::string::npos);
  outcome dims = with({"--dimensions", "8"});
  CHECK(dims.status == 2);
  CHECK(dims.err.find("--dimensions is for embeddings only") != std::string::npos);
  outcome anthropic_responses = with({"--provider", "anthropic", "--api", "responses"});
  CHECK(anthropic_responses.status == 2);
  CHECK(anthropic_responses.err.find("--api responses is for --provider openai (or another OpenAI-compatible one) only") != std::string::npos);
  outcome wait_alone = with({"--api", "completions", "--batch-wait", "10"});
  CHECK(wait_alone.status == 2);
  CHECK(wait_alone.err.find("--batch-wait needs --batch-size") != std::string::npos);
  outcome zero = with({"--api", "completions", "--batch-size", "0"});
  CHECK(zero.status == 2);
  CHECK(zero.err.find("--batch-size") != std::string::npos);
}

TEST_CASE("run: OpenAI Batch input gives OpenAI Batch output; --ordered keeps input order") {
  const fs::path dir = scratch("batch");
  std::string in;
  for (int i = 0; i < 40; ++i)
    in += json{{"custom_id", "req-" + std::to_string(i)},
               {"method", "POST"},
               {"url", "/v1/chat/completions"},
               {"body",
                {{"model", i % 2 ? "odd-model" : "even-model"},
                 {"messages", {{{"role", "user"}, {"content", "number " + std::to_string(i)}}}},
                 {"max_tokens", 50}}}}
              .dump() +
          "\n";
  write_text(dir / "in.jsonl", in);
  mock server(dir, {"--latency-ms", "5", "--latency-jitter-ms", "30"});
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--ordered",
                       "--concurrency", "8", "--cache-dir", (dir / "cache").string()},
                      dir, "run", server.env());
  CHECK_MESSAGE(o.status == 0, o.err);
  const auto out = json_lines(dir / "out.jsonl");
  REQUIRE(out.size() == 40);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const json& l = out[i];
    CHECK(l["custom_id"] == "req-" + std::to_string(i));
    CHECK(l["id"].get<std::string>().rfind("batch_req_", 0) == 0);
    ids.insert(l["id"].get<std::string>());
    CHECK(l["error"].is_null());
    CHECK(l["response"]["status_code"] == 200);
    const json& body = l["response"]["body"];
    CHECK(body["object"] == "chat.completion");
    CHECK(body["model"] == (i % 2 ? "odd-model" : "even-model"));  // the line's body, sent as it is
    CHECK(body["choices"][0]["message"]["content"] == "Mock answer to: number " + std::to_string(i));
    CHECK(body["usage"]["completion_tokens"].get<int>() > 0);
    CHECK(l["request_hash"].get<std::string>().size() == 64);
  }
  CHECK(ids.size() == 40);
  CHECK(server.stop() == 40);
}

namespace {

// After mock::stop(): how many requests the mock served on a route ("responses", "embeddings").
long served_on(const mock& m, const std::string& route) {
  std::smatch match;
  const std::string& err = m.stopped_stderr();
  if (!std::regex_search(err, match, std::regex("(\\d+) " + route + "[,;\\n]"))) {
    FAIL("no count of " << route << " in the mock's stderr: " << err);
    return -1;
  }
  return std::stol(match[1].str());
}

std::string responses_line(const std::string& id, const std::string& model, const std::string& question) {
  return json{{"custom_id", id},
              {"method", "POST"},
              {"url", "/v1/responses"},
              {"body",
               {{"model", model},
                {"instructions", "Be brief"},
                {"input", json::array({{{"role", "user"}, {"content", json::array({{{"type", "input_text"}, {"text", question}}})}}})},
                {"max_output_tokens", 200}}}}
             .dump() +
         "\n";
}

// A vector as OpenAI sends it for encoding_format "base64": little-endian float32, base64.
std::string float32_base64(const json& vector) {
  static const char* const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<unsigned char> bytes;
  for (const json& x : vector) {
    const float f = x.get<float>();
    unsigned char b[4];
    std::memcpy(b, &f, 4);  // this machine is little-endian, as OpenAI's encoding
    bytes.insert(bytes.end(), b, b + 4);
  }
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const unsigned v = (unsigned(bytes[i]) << 16) | (i + 1 < bytes.size() ? unsigned(bytes[i + 1]) << 8 : 0u) |
                       (i + 2 < bytes.size() ? unsigned(bytes[i + 2]) : 0u);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? alphabet[v & 63] : '=';
  }
  return out;
}

std::string embeddings_line(const std::string& id, const std::string& text) {
  return json{{"custom_id", id},
              {"method", "POST"},
              {"url", "/v1/embeddings"},
              {"body", {{"model", "text-embedding-3-small"}, {"input", text}}}}
             .dump() +
         "\n";
}

}  // namespace

TEST_CASE("run: /v1/responses lines go to the Responses API as they are; other providers get them translated") {
  const fs::path dir = scratch("responses");
  std::string in;
  for (int i = 0; i < 4; ++i) in += responses_line("r" + std::to_string(i), "o3-pro", "question " + std::to_string(i));
  write_text(dir / "in.jsonl", in + R"({"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}})" "\n");
  mock server(dir);
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--ordered",
                       "--cache-dir", (dir / "cache").string()},
                      dir, "run", server.env());
  CHECK(o.status == 1);  // the chat line is skipped: one endpoint per file
  CHECK(o.err.find("line 5: id 'c': 'url' /v1/chat/completions differs from the file's /v1/responses") !=
        std::string::npos);
  const auto out = json_lines(dir / "out.jsonl");
  REQUIRE(out.size() == 4);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const json& l = out[i];
    CHECK(l["custom_id"] == "r" + std::to_string(i));
    CHECK(l["error"].is_null());
    const json& body = l["response"]["body"];
    CHECK(body["object"] == "response");  // the Responses API's own answer
    CHECK(body["status"] == "completed");
    CHECK(body["model"] == "o3-pro");
    json message;  // a reasoning model's output starts with its reasoning item
    for (const json& item : body["output"])
      if (item["type"] == "message") message = item;
    REQUIRE(message.is_object());
    CHECK(message["content"][0]["text"] == "Mock answer to: question " + std::to_string(i));
    CHECK(l["usage"]["reasoning_tokens"] == 16);  // o3-pro reasons (the mock's rule)
    CHECK(l["usage"]["output_tokens"].get<int>() > 16);
  }
  CHECK(o.err.find("(reasoning 64)") != std::string::npos);
  CHECK(o.err.find("cost         actual $") != std::string::npos);  // o3-pro is priced

  // Plain input through --api responses.
  write_text(dir / "plain.jsonl", plain_input(2));
  outcome plain = run_cli({"run", (dir / "plain.jsonl").string(), "-o", (dir / "plain-out.jsonl").string(), "--api",
                           "responses", "--model", "gpt-5-pro", "--no-cache"},
                          dir, "plain", server.env());
  CHECK_MESSAGE(plain.status == 0, plain.err);
  for (const json& l : json_lines(dir / "plain-out.jsonl")) {
    CHECK(l["text"] == "Mock answer to: question " + l["id"].get<std::string>().substr(1));
    CHECK(l["finish_reason"] == "stop");
  }

  // Another provider: the Responses body is translated, and the answer comes back as a response.
  write_text(dir / "only-responses.jsonl", in);
  outcome a = run_cli({"run", (dir / "only-responses.jsonl").string(), "-o", (dir / "a-out.jsonl").string(),
                       "--provider", "anthropic", "--model", "claude-haiku-4-5", "--base-url", server.origin(),
                       "--no-cache"},
                      dir, "anthropic");
  CHECK_MESSAGE(a.status == 0, a.err);
  const auto aout = json_lines(dir / "a-out.jsonl");
  REQUIRE(aout.size() == 4);
  for (const json& l : aout) {
    const json& body = l["response"]["body"];
    CHECK(body["object"] == "response");
    CHECK(body["output"][0]["type"] == "message");
    CHECK(body["output"][0]["content"][0]["text"] ==
          "Mock answer to: question " + l["custom_id"].get<std::string>().substr(1));
  }
  server.stop();
  CHECK(served_on(server, "responses") == 6);
}

TEST_CASE("embed: one vector per text, packed into few requests; a rerun embeds only the new texts") {
  const fs::path dir = scratch("embed");
  std::string in;
  for (int i = 0; i < 500; ++i) in += json{{"id", "t" + std::to_string(i)}, {"text", "text number " + std::to_string(i)}}.dump() + "\n";
  in += R"({"id":"same","text":"text number 7"})" "\n";
  write_text(dir / "in.jsonl", in + R"({"id":"empty","text":""})" "\n");
  mock server(dir);
  const std::vector<std::string> args = {"embed", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                         "--model", "text-embedding-3-small", "--cache-dir", (dir / "cache").string(),
                                         "--summary-json", (dir / "summary.json").string()};
  outcome first = run_cli(args, dir, "embed1", server.env());
  CHECK(first.status == 1);  // the empty text is reported and skipped
  CHECK(first.err.find("line 502: id 'empty': 'text' must be a non-empty string") != std::string::npos);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  REQUIRE(by_id.size() == 501);
  std::set<std::string> distinct;
  for (const auto& [id, l] : by_id) {
    CHECK(l["error"].is_null());
    REQUIRE(l["embedding"].is_array());
    CHECK(l["embedding"].size() == 16);  // the mock's default size
    CHECK(l["model"] == "text-embedding-3-small");
    CHECK(l["usage"]["input_tokens"].get<int>() > 0);
    distinct.insert(l["embedding"].dump());
  }
  CHECK(distinct.size() == 500);                            // each text its own vector...
  CHECK(by_id["same"]["embedding"] == by_id["t7"]["embedding"]);  // ...and the same text the same one
  const json summary = json::parse(slurp(dir / "summary.json"));
  CHECK(summary["http_requests"].get<int>() <= 2);  // 500 texts fit in one request of 2,048
  CHECK(summary["cost"]["actual_usd"].get<double>() > 0);  // text-embedding-3-small is priced

  // Ten more texts: only they are sent.
  for (int i = 500; i < 510; ++i) in += json{{"id", "t" + std::to_string(i)}, {"text", "text number " + std::to_string(i)}}.dump() + "\n";
  write_text(dir / "in.jsonl", in);
  outcome second = run_cli(args, dir, "embed2", server.env());
  CHECK_MESSAGE(second.status == 0, second.err);
  CHECK(second.err.find("from cache   501") != std::string::npos);
  CHECK(json::parse(slurp(dir / "summary.json"))["http_requests"] == 1);
  const auto again = json_lines(dir / "out.jsonl");
  CHECK(again.size() == 511);
  for (const json& l : again)
    if (by_id.count(l["id"].get<std::string>())) CHECK(l["embedding"] == by_id[l["id"].get<std::string>()]["embedding"]);

  // --dimensions, and a Batch file of /v1/embeddings lines through `run`.
  write_text(dir / "batch.jsonl",
             embeddings_line("e0", "text number 1") + embeddings_line("e1", "another text") +
                 R"({"custom_id":"e2","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"text number 1","encoding_format":"base64"}})" "\n");
  outcome b = run_cli({"run", (dir / "batch.jsonl").string(), "-o", (dir / "b-out.jsonl").string(), "--dimensions",
                       "8", "--no-cache", "--ordered"},
                      dir, "batch", server.env());
  CHECK_MESSAGE(b.status == 0, b.err);
  const auto bout = json_lines(dir / "b-out.jsonl");
  REQUIRE(bout.size() == 3);
  for (const json& l : bout) {
    const json& body = l["response"]["body"];
    CHECK(body["object"] == "list");
    CHECK(body["data"][0]["object"] == "embedding");
    CHECK(body["model"] == "text-embedding-3-small");
    if (l["custom_id"] != "e2") CHECK(body["data"][0]["embedding"].size() == 8);
  }
  // The line that asked for base64 gets the vector as OpenAI sends it then: the same floats.
  const json& floats = bout[0]["response"]["body"]["data"][0]["embedding"];
  REQUIRE(bout[2]["response"]["body"]["data"][0]["embedding"].is_string());
  CHECK(bout[2]["response"]["body"]["data"][0]["embedding"] == float32_base64(floats));
  outcome bad = run_cli({"embed", (dir / "batch.jsonl").string(), "-o", (dir / "x.jsonl").string(), "--provider",
                         "anthropic", "--no-cache"},
                        dir, "bad", server.env());
  CHECK(bad.status == 2);
  CHECK(bad.err.find("embeddings: --provider openai (or another OpenAI-compatible one) or gemini") != std::string::npos);
  server.stop();
  const long served = served_on(server, "embeddings");  // the first run's, the rerun's one, the Batch file's
  CHECK(served >= summary["http_requests"].get<long>() + 2);
  CHECK(served <= summary["http_requests"].get<long>() + 3);
}

TEST_CASE("run: a malformed line is reported with its number and skipped; failures give exit 1") {
  const fs::path dir = scratch("malformed");
  write_text(dir / "in.jsonl",
             R"({"id":"ok1","prompt":"first"})"
             "\n"
             "this is not json\n"
             R"({"id":"bad","prompt":"zero tokens","max_tokens":0})"
             "\n"
             R"({"prompt":"no id here"})"
             "\n"
             "\n"
             R"({"id":"ok1","prompt":"duplicate id"})"
             "\n"
             R"({"id":"ok2","prompt":"last"})"
             "\n");
  mock server(dir);
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                       "--no-cache", "--no-progress"},
                      dir, "run", server.env());
  CHECK(o.status == 1);
  CHECK(o.err.find("line 2: not JSON: parse error at line 1, column 2") != std::string::npos);
  CHECK(o.err.find("line 4: needs an 'id'") != std::string::npos);
  CHECK(o.err.find("line 6: duplicate id 'ok1'") != std::string::npos);
  CHECK(o.err.find("failed       1: bad") != std::string::npos);
  CHECK(o.err.find("3 skipped as malformed") != std::string::npos);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  REQUIRE(by_id.size() == 3);
  CHECK(by_id["ok1"]["text"] == "Mock answer to: first");
  CHECK(by_id["ok2"]["text"] == "Mock answer to: last");
  CHECK(by_id["bad"]["error"]["code"] == "bad_request");
  CHECK(by_id["bad"]["error"]["http_status"] == 400);
  CHECK(by_id["bad"]["request_hash"].get<std::string>().size() == 64);
  CHECK(server.stop() == 3);

  // Only well-formed lines, all answered: exit 0.
  write_text(dir / "good.jsonl", plain_input(2));
  mock again(dir);
  outcome ok = run_cli({"run", (dir / "good.jsonl").string(), "-o", (dir / "good.out").string(), "--model", "m",
                        "--no-cache"},
                       dir, "good", again.env());
  CHECK_MESSAGE(ok.status == 0, ok.err);
}

TEST_CASE("run: hostile lines (100,000 levels of nesting, invalid UTF-8, NUL, numbers past 64 bits) are reported, the rest answered") {
  const fs::path dir = scratch("hostile");
  const std::string deep_object = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    return s + "1" + std::string(100000, '}');
  }();
  const std::string deep_array = std::string(100000, '[') + std::string(100000, ']');
  write_text(dir / "in.jsonl",
             R"({"id":"ok1","prompt":"first"})"
             "\n"
             R"({"id":"deep","prompt":"x","extra":{"k":)" + deep_object + "}}\n" +
             R"({"id":"deeparr","prompt":"x","extra":{"k":)" + deep_array + "}}\n" +
             "{\"id\":\"utf8\",\"prompt\":\"caf\xC3\x28\"}\n"
             R"({"id":"nul","prompt":"a\u0000b"})"
             "\n"
             R"({"id":"overflow","prompt":"x","max_tokens":1e400})"
             "\n"
             R"({"id":"big","prompt":"x","max_tokens":18446744073709551616})"
             "\n"
             R"({"id":"wrap","prompt":"x","seed":9223372036854775808})"
             "\n"
             R"({"id":"typed","messages":[{"role":{"not":"a string"},"content":"x"}]})"
             "\n"
             R"({"id":"ok2","prompt":"last"})"
             "\n");
  mock server(dir);
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                       "--no-cache", "--no-progress"},
                      dir, "run", server.env());
  CHECK(o.status == 1);
  CHECK(o.err.find("line 2: JSON nested deeper than 512 levels; skipped") != std::string::npos);
  CHECK(o.err.find("line 3: JSON nested deeper than 512 levels; skipped") != std::string::npos);
  CHECK(o.err.find("line 4: not JSON: parse error") != std::string::npos);
  CHECK(o.err.find("invalid string: ill-formed UTF-8 byte") != std::string::npos);
  CHECK(o.err.find("line 6: not JSON: number overflow parsing '1e400'") != std::string::npos);
  CHECK(o.err.find("line 7: id 'big': 'max_tokens' must be an integer") != std::string::npos);  // 2^64: a double
  CHECK(o.err.find("line 8: id 'wrap': 'seed' is too large (beyond 64-bit integers)") != std::string::npos);
  CHECK(o.err.find("line 9: id 'typed': ") != std::string::npos);
  CHECK(o.err.find("7 skipped as malformed") != std::string::npos);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  CHECK(by_id.size() == 3);
  CHECK(by_id["ok1"]["text"] == "Mock answer to: first");
  CHECK(by_id["nul"]["text"] == std::string("Mock answer to: a\0b", 19));
  CHECK(by_id["ok2"]["text"] == "Mock answer to: last");

  // An OpenAI Batch line with a member of the wrong type (found by fuzzing: a "method" object
  // threw out of the reader): reported, the good line answered.
  write_text(dir / "batch.jsonl",
             R"({"custom_id":"b1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}})"
             "\n"
             R"({"custom_id":"b2","method":{"c":["a","b"]},"url":"/v1/chat/completions","body":{"model":"m","messages":[]}})"
             "\n");
  outcome b = run_cli({"run", (dir / "batch.jsonl").string(), "-o", (dir / "batch.out").string(), "--no-cache",
                       "--no-progress"},
                      dir, "batch", server.env());
  CHECK(b.status == 1);
  CHECK(b.err.find("line 2: id 'b2': 'method' must be POST") != std::string::npos);
  CHECK(b.err.find("1 skipped as malformed") != std::string::npos);
  const auto batch_out = json_lines(dir / "batch.out");
  REQUIRE(batch_out.size() == 1);
  CHECK(batch_out[0]["custom_id"] == "b1");
  CHECK(server.stop() == 4);
}

TEST_CASE("TLS to a private CA: run, embed and batch refuse it, then trust it with --ca-cert or SSL_CERT_FILE") {
  const fs::path dir = scratch("private-ca");
  write_text(dir / "in.jsonl", plain_input(2));
  write_text(dir / "embed-in.jsonl", "{\"id\":\"e0\",\"text\":\"zero\"}\n{\"id\":\"e1\",\"text\":\"one\"}\n");
  mock server(dir, {"--tls-dir", (dir / "pki").string()});
  const std::string ca = (dir / "pki" / "ca.pem").string();
  REQUIRE(fs::exists(ca));
  const std::map<std::string, std::string> env = {{"OPENAI_BASE_URL", server.https_base_url()}};
  const std::string in = (dir / "in.jsonl").string();
  struct command {
    std::string name;
    std::vector<std::string> args;
    fs::path output;  // where run and embed report a failed request (batch says it on stderr)
  };
  const std::vector<command> commands = {
      {"run", {"run", in, "-o", (dir / "run.jsonl").string(), "--model", "m", "--no-cache", "--no-progress", "--max-retries", "0"}, dir / "run.jsonl"},
      {"embed", {"embed", (dir / "embed-in.jsonl").string(), "-o", (dir / "embed.jsonl").string(), "--model", "text-embedding-3-small", "--no-cache", "--no-progress", "--max-retries", "0"}, dir / "embed.jsonl"},
      {"batch", {"batch", "submit", in, "-o", (dir / "batch.jsonl").string(), "--model", "m", "--no-cache", "--max-retries", "0"}, {}}};
  for (const command& c : commands) {
    CAPTURE(c.name);
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome refused = run_cli(c.args, dir, c.name + "-refused", env);
    CHECK(refused.status == 1);
    const std::string said = c.output.empty() ? refused.err : slurp(c.output);
    CHECK_MESSAGE(said.find("could not be verified") != std::string::npos, said);
    CHECK(said.find("--ca-cert FILE") != std::string::npos);
    CHECK(said.find("SSL_CERT_FILE") != std::string::npos);

    std::vector<std::string> with_flag = c.args;
    with_flag.insert(with_flag.end(), {"--ca-cert", ca});
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome flagged = run_cli(with_flag, dir, c.name + "-flag", env);
    CHECK_MESSAGE(flagged.status == 0, flagged.err);

    std::map<std::string, std::string> env_ca = env;
    env_ca["SSL_CERT_FILE"] = ca;
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome by_env = run_cli(c.args, dir, c.name + "-env", env_ca);
    CHECK_MESSAGE(by_env.status == 0, by_env.err);
  }
  outcome missing = run_cli({"run", in, "-o", (dir / "x.jsonl").string(), "--ca-cert", (dir / "nope.pem").string()},
                            dir, "missing", env);
  CHECK(missing.status == 2);
  CHECK(missing.err.find("--ca-cert") != std::string::npos);
}

TEST_CASE("behind a proxy: run, embed and batch go through --proxy or HTTPS_PROXY by CONNECT, certificate verified; NO_PROXY; the password never shown") {
  const fs::path dir = scratch("proxy");
  write_text(dir / "in.jsonl", plain_input(2));
  write_text(dir / "embed-in.jsonl", "{\"id\":\"e0\",\"text\":\"zero\"}\n{\"id\":\"e1\",\"text\":\"one\"}\n");
  mock server(dir, {"--tls-dir", (dir / "pki").string()});
  const std::string ca = (dir / "pki" / "ca.pem").string();
  const std::string password = "cli-pr0xy-s3cret";
  loopback_proxy proxy("bob:" + password);
  const std::string proxy_url = "http://bob:" + password + "@127.0.0.1:" + std::to_string(proxy.port());
  const std::map<std::string, std::string> env = {{"OPENAI_BASE_URL", server.https_base_url()}, {"SSL_CERT_FILE", ca}};
  const std::string in = (dir / "in.jsonl").string();
  const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"run", {"run", in, "-o", (dir / "run.jsonl").string(), "--model", "m", "--no-cache", "--no-progress", "--max-retries", "0"}},
      {"embed", {"embed", (dir / "embed-in.jsonl").string(), "-o", (dir / "embed.jsonl").string(), "--model", "text-embedding-3-small", "--no-cache", "--no-progress", "--max-retries", "0"}},
      {"batch", {"batch", "submit", in, "-o", (dir / "batch.jsonl").string(), "--model", "m", "--no-cache", "--max-retries", "0"}}};
  for (const auto& [name, args] : commands) {
    CAPTURE(name);
    std::vector<std::string> flagged = args;
    flagged.insert(flagged.end(), {"--proxy", proxy_url});
    std::size_t before = proxy.request_lines().size();
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome by_flag = run_cli(flagged, dir, name + "-flag", env);
    CHECK_MESSAGE(by_flag.status == 0, by_flag.err);
    CHECK(proxy.request_lines().size() > before);
    CHECK(by_flag.err.find(password) == std::string::npos);

    std::map<std::string, std::string> by_env_vars = env;
    by_env_vars["HTTPS_PROXY"] = proxy_url;
    before = proxy.request_lines().size();
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome by_env = run_cli(args, dir, name + "-env", by_env_vars);
    CHECK_MESSAGE(by_env.status == 0, by_env.err);
    CHECK(proxy.request_lines().size() > before);

    by_env_vars["NO_PROXY"] = "localhost,127.0.0.1";
    before = proxy.request_lines().size();
    fs::remove(dir / "batch.jsonl.batch.json");
    outcome direct = run_cli(args, dir, name + "-no-proxy", by_env_vars);
    CHECK_MESSAGE(direct.status == 0, direct.err);
    CHECK(proxy.request_lines().size() == before);
  }
  for (const auto& line : proxy.request_lines()) CHECK(line.rfind("CONNECT 127.0.0.1:", 0) == 0);
  for (const auto& auth : proxy.authorizations()) CHECK(auth == loopback_proxy::basic("bob:" + password));

  // A proxy that is not there: the answer's error names it (without the password); nothing leaks.
  outcome dead = run_cli({"run", in, "-o", (dir / "dead.jsonl").string(), "--model", "m", "--no-cache", "--no-progress",
                          "--max-retries", "0", "--proxy", "http://bob:" + password + "@127.0.0.1:1"},
                         dir, "dead", env);
  CHECK(dead.status == 1);
  const std::string said = slurp(dir / "dead.jsonl");
  CHECK_MESSAGE(said.find("through the proxy http://127.0.0.1:1, set by options::proxy") != std::string::npos, said);
  CHECK(said.find(password) == std::string::npos);
  CHECK(dead.err.find(password) == std::string::npos);
}

namespace {

// A small tmpfs mounted over `where` for the test's lifetime (root with CAP_SYS_ADMIN only).
struct small_disk {
  fs::path where;
  bool mounted = false;
  std::string why;
  small_disk(fs::path at, const std::string& size) : where(std::move(at)) {
    fs::create_directories(where);
    mounted = ::mount("tmpfs", where.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
    if (!mounted) why = std::strerror(errno);
  }
  ~small_disk() {
    if (mounted) ::umount2(where.c_str(), MNT_DETACH);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;
  bool skip() const {
    if (mounted) return false;
    std::cout << "SKIPPED: cannot mount a small tmpfs at " << where << " (" << why
              << "): the full-disk test needs root with CAP_SYS_ADMIN" << std::endl;
    return true;
  }
};

std::size_t count_occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

std::size_t count_temporary_files(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) ++n;
  return n;
}

}  // namespace

TEST_CASE("a full disk: the cache's fills up and the run goes on; the output's fills up and the run stops, exit 1") {
  const fs::path dir = scratch("full-disk");
  const std::string in = (dir / "in.jsonl").string();
  write_text(dir / "in.jsonl", plain_input(300));
  mock server(dir);

  SUBCASE("the cache's disk") {
    small_disk disk(dir / "cache", "256k");
    if (disk.skip()) return;
    const std::string cache = disk.where.string();
    outcome o = run_cli({"run", in, "-o", (dir / "out.jsonl").string(), "--model", "m", "--cache-dir", cache,
                         "--no-progress"},
                        dir, "cache-full", server.env());
    CHECK_MESSAGE(o.status == 0, o.err);
    const auto lines = json_lines(dir / "out.jsonl");
    CHECK(lines.size() == 300);
    for (const json& l : lines) CHECK(l["error"].is_null());
    CHECK(count_occurrences(o.err, "could not store an answer in the cache") == 1);
    CHECK(o.err.find("No space left on device") != std::string::npos);
    std::smatch m;
    REQUIRE(std::regex_search(o.err, m, std::regex(R"((\d+) not stored)")));
    const std::size_t stored = count_cache_entries(cache);
    CHECK(stored > 0);
    CHECK(std::stoul(m[1].str()) == 300 - stored);
    CHECK(count_temporary_files(cache) == 0);
    CHECK(run_cli({"cache", "verify", "--cache-dir", cache}, dir, "verify").status == 0);
    // The rerun pays only for what was not stored.
    outcome again = run_cli({"run", in, "-o", (dir / "out2.jsonl").string(), "--model", "m", "--cache-dir", cache,
                             "--no-progress", "--summary-json", (dir / "summary.json").string()},
                            dir, "cache-full-2", server.env());
    CHECK_MESSAGE(again.status == 0, again.err);
    const json summary = json::parse(slurp(dir / "summary.json"));
    CHECK(summary["from_cache"].get<std::size_t>() == stored);
  }
  SUBCASE("the output's disk") {
    small_disk disk(dir / "outdisk", "16k");
    if (disk.skip()) return;
    fs::create_directories(dir / "slow-mock");
    mock slow(dir / "slow-mock", {"--latency-ms", "20"});  // 300 answers take 1.5 s at 4 in flight: the stop shows
    const std::string cache = (dir / "cache2").string();
    const std::string out = (disk.where / "out.jsonl").string();
    outcome o = run_cli({"run", in, "-o", out, "--model", "m", "--cache-dir", cache, "--no-progress",
                         "--concurrency", "4"},
                        dir, "out-full", slow.env());
    CHECK(o.status == 1);
    CHECK(o.err.find("No space left on device") != std::string::npos);
    CHECK(o.err.find("the run stopped there") != std::string::npos);
    CHECK(o.err.find("the same command finishes the job") != std::string::npos);
    const std::size_t stored = count_cache_entries(cache);
    CHECK(stored > 0);
    CHECK(stored < 300);  // it stopped: 4 in flight, the disk full after ~60 lines
    // With room again, the same job finishes; what was answered comes from the cache.
    outcome again = run_cli({"run", in, "-o", (dir / "out.jsonl").string(), "--model", "m", "--cache-dir", cache,
                             "--no-progress", "--summary-json", (dir / "summary.json").string()},
                            dir, "out-full-2", slow.env());
    CHECK_MESSAGE(again.status == 0, again.err);
    CHECK(json_lines(dir / "out.jsonl").size() == 300);
    CHECK(json::parse(slurp(dir / "summary.json"))["from_cache"].get<std::size_t>() == stored);
  }
}

TEST_CASE("the cache folder deleted mid-run: the run goes on, every answer is written, the folder comes back") {
  const fs::path dir = scratch("lost-cache");
  const std::string in = (dir / "in.jsonl").string();
  write_text(dir / "in.jsonl", plain_input(200));
  mock server(dir, {"--latency-ms", "20"});
  const fs::path cache = dir / "cache";
  child c = spawn({"run", in, "-o", (dir / "out.jsonl").string(), "--model", "m", "--cache-dir", cache.string(),
                   "--no-progress", "--concurrency", "8"},
                  dir, "run", server.env());
  for (int i = 0; i < 200 && count_cache_entries(cache) < 20; ++i) std::this_thread::sleep_for(20ms);
  std::error_code ec;
  fs::remove_all(cache, ec);
  outcome o = finish(c);
  CHECK_MESSAGE(o.status == 0, o.err);
  const auto lines = json_lines(dir / "out.jsonl");
  CHECK(lines.size() == 200);
  for (const json& l : lines) CHECK(l["error"].is_null());
  CHECK(count_cache_entries(cache) > 0);  // stored again after the loss
  CHECK(run_cli({"cache", "verify", "--cache-dir", cache.string()}, dir, "verify").status == 0);
}

TEST_CASE("run: usage errors stop before anything is sent, with exit 2") {
  const fs::path dir = scratch("usage");
  write_text(dir / "in.jsonl", plain_input(3));
  const std::string in = (dir / "in.jsonl").string();
  const std::string out = (dir / "out.jsonl").string();

  outcome no_key = run_cli({"run", in, "-o", out, "--model", "m", "--no-cache"}, dir, "nokey");
  CHECK(no_key.status == 2);
  CHECK(no_key.err.find("OPENAI_API_KEY is not set") != std::string::npos);
  CHECK_FALSE(fs::exists(out));

  outcome no_anthropic_key =
      run_cli({"run", in, "-o", out, "--provider", "anthropic", "--model", "claude", "--no-cache"}, dir, "noakey");
  CHECK(no_anthropic_key.status == 2);
  CHECK(no_anthropic_key.err.find("ANTHROPIC_API_KEY is not set") != std::string::npos);

  outcome unknown = run_cli({"run", in, "-o", out, "--provider", "openia"}, dir, "unknown");
  CHECK(unknown.status == 2);
  CHECK(unknown.err.find("unknown provider 'openia'") != std::string::npos);

  outcome vertex_api = run_cli({"run", in, "-o", out, "--provider", "vertex", "--vertex-api", "palm"}, dir, "vapi");
  CHECK(vertex_api.status == 2);
  CHECK(vertex_api.err.find("--vertex-api must be openai, gemini or anthropic") != std::string::npos);

  mock server(dir);
  outcome no_model = run_cli({"run", in, "-o", out, "--no-cache"}, dir, "nomodel", server.env());
  CHECK(no_model.status == 2);
  CHECK(no_model.err.find("no model for id 'q0'") != std::string::npos);
  outcome bad_shard = run_cli({"run", in, "-o", out, "--model", "m", "--shard", "4/3"}, dir, "shard", server.env());
  CHECK(bad_shard.status == 2);
  CHECK(bad_shard.err.find("--shard") != std::string::npos);
  outcome missing = run_cli({"run", (dir / "nope.jsonl").string(), "-o", out, "--model", "m"}, dir, "missing",
                            server.env());
  CHECK(missing.status == 2);
  CHECK(missing.err.find("cannot open input file") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  CHECK(server.stop() == 0);
}

TEST_CASE("run: --shard K/3 over three runs covers every request exactly once") {
  const fs::path dir = scratch("shard");
  write_text(dir / "in.jsonl", plain_input(60));
  mock server(dir);
  std::multiset<std::string> seen;
  for (int k = 1; k <= 3; ++k) {
    const std::string out = (dir / ("out" + std::to_string(k) + ".jsonl")).string();
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", out, "--model", "m", "--shard",
                         std::to_string(k) + "/3", "--cache-dir", (dir / "cache").string()},
                        dir, "run" + std::to_string(k), server.env());
    CHECK_MESSAGE(o.status == 0, o.err);
    const auto lines = json_lines(out);
    CHECK(lines.size() > 0);
    CHECK(lines.size() < 60);
    for (const json& l : lines) seen.insert(l["id"].get<std::string>());
  }
  CHECK(seen.size() == 60);
  for (int i = 0; i < 60; ++i) CHECK(seen.count("q" + std::to_string(i)) == 1);
  CHECK(server.stop() == 60);
}

TEST_CASE("run: killed with SIGKILL mid-run, the same command again finishes without paying twice") {
  const fs::path dir = scratch("resume");
  constexpr std::size_t total = 2000;
  constexpr int concurrency = 16;
  write_text(dir / "in.jsonl", plain_input(total));
  const fs::path out = dir / "out.jsonl";
  const fs::path cache = dir / "cache";
  const fs::path log = dir / "requests.log";
  mock server(dir, {"--latency-ms", "20", "--log-requests", log.string()});
  const std::vector<std::string> args = {"run",           (dir / "in.jsonl").string(), "-o",      out.string(),
                                         "--model",       "m",
                                         "--concurrency", std::to_string(concurrency), "--cache-dir", cache.string()};

  child first = spawn(args, dir, "run1", server.env());
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (lines_of(out).size() < 300 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(20ms);
  kill(first.pid, SIGKILL);
  CHECK(wait_for(first) == 128 + SIGKILL);
  const std::size_t written = lines_of(out).size();
  const std::size_t cached = count_cache_entries(cache);
  MESSAGE("killed after " << written << " lines; " << cached << " answers in the cache");
  REQUIRE(written >= 300);
  REQUIRE(written < total);  // the kill came mid-run
  CHECK(cached >= written);  // every written line was stored first
  // The ids the first run finished: each of its lines is whole JSON (one write per line).
  std::set<std::string> first_ids;
  for (const std::string& l : lines_of(out)) {
    const json j = json::parse(l, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), "a partial line after SIGKILL: " << l);
    first_ids.insert(j["id"].get<std::string>());
  }
  CHECK(first_ids.size() == written);

  outcome second = run_cli(args, dir, "run2", server.env());
  CHECK_MESSAGE(second.status == 0, second.err);
  const auto lines = json_lines(out);
  CHECK(lines.size() == total);
  std::set<std::string> ids;
  for (const json& l : lines) {
    const std::string id = l["id"].get<std::string>();
    ids.insert(id);
    CHECK(l["text"] == "Mock answer to: question " + id.substr(1));
  }
  CHECK(ids.size() == total);
  CHECK(second.err.find("from cache   " + std::to_string(cached)) != std::string::npos);

  // The events keep both runs (the second appended to the first, which has no end); the
  // report counts each id once, as the run that sent it.
  const fs::path events = dir / "out.jsonl.events.jsonl";
  const auto runs = events_of(events, "run");
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["resumed"] == false);
  CHECK(runs[1]["resumed"] == true);
  std::size_t first_events = 0;
  for (const auto& l : lines_of(events)) {
    if (l.find("\"type\":\"run\"") != std::string::npos && first_events > 0) break;
    first_events += l.find("\"type\":\"request\"") != std::string::npos ? 1 : 0;
  }
  CHECK(first_events >= written);
  CHECK(events_of(events, "request").size() == first_events + total);
  outcome rep = run_cli({"report", events.string(), "-o", (dir / "report.html").string()}, dir, "report");
  CHECK_MESSAGE(rep.status == 0, rep.err);
  const std::string html = slurp(dir / "report.html");
  CHECK(html.find("data-runs=\"2\"") != std::string::npos);
  CHECK(shown(html, "h-requests") == with_commas(static_cast<std::int64_t>(total)));
  CHECK(shown(html, "h-succeeded") == with_commas(static_cast<std::int64_t>(total)));
  // From the cache: what the first run stored without writing its event.
  CHECK(shown(html, "h-from-cache") == with_commas(static_cast<std::int64_t>(cached - first_events)));

  // The rerun sent exactly what was not stored; the first run can only have lost the answers
  // in flight when it was killed.
  const long served = server.stop();
  MESSAGE("the mock served " << served << " requests for " << total << " ids");
  CHECK(served >= static_cast<long>(total));
  CHECK(served <= static_cast<long>(total) + concurrency);

  // Per id, from the mock's log (one line per request, the prompt in "user"): every id was
  // asked for, and none whose line the first run wrote was asked for again.
  std::map<std::string, int> asked;
  for (const json& r : json_lines(log)) {
    const std::string user = r["user"].get<std::string>();
    REQUIRE(user.rfind("question ", 0) == 0);
    ++asked["q" + user.substr(9)];
  }
  long logged = 0;
  for (const auto& kv : asked) logged += kv.second;
  CHECK(logged == served);
  CHECK(asked.size() == total);
  std::vector<std::string> asked_again;
  for (const std::string& id : first_ids)
    if (asked[id] != 1) asked_again.push_back(id + " (" + std::to_string(asked[id]) + " times)");
  CHECK_MESSAGE(asked_again.empty(), asked_again.size() << " completed ids requested again, e.g. "
                                                        << (asked_again.empty() ? "" : asked_again.front()));
  std::size_t twice = 0;
  for (const auto& kv : asked) twice += kv.second > 1 ? 1 : 0;
  MESSAGE(twice << " ids were requested twice (in flight at the kill, answer lost)");
  CHECK(twice <= static_cast<std::size_t>(concurrency));
}

namespace {

json summary_of(const fs::path& p) { return json::parse(slurp(p)); }

std::map<std::string, json> by_string_id(const fs::path& out) {
  std::map<std::string, json> m;
  for (const json& l : json_lines(out)) m[l["id"].get<std::string>()] = l;
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("run: --temperature and --max-tokens reach the request body; a line's own values win") {
  const fs::path dir = scratch("flags_body");
  write_text(dir / "in.jsonl", plain_input(2) + R"({"id":"own","prompt":"own values","temperature":0.9,"max_tokens":50})"
                                                "\n");
  const fs::path log = dir / "requests.log";
  mock server(dir, {"--log-requests", log.string(), "--log-bodies"});
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                       "--temperature", "0.25", "--max-tokens", "2", "--no-cache", "--no-progress"},
                      dir, "run", server.env());
  REQUIRE_MESSAGE(o.status == 0, o.err);
  CHECK(server.stop() == 3);
  std::map<std::string, json> bodies;  // by the prompt
  for (const json& r : json_lines(log)) bodies[r["user"].get<std::string>()] = r["body"];
  REQUIRE(bodies.size() == 3);
  for (const std::string prompt : {"question 0", "question 1"}) {
    CAPTURE(prompt);
    CHECK(bodies[prompt]["temperature"] == 0.25);
    CHECK(bodies[prompt]["max_tokens"] == 2);
    CHECK(bodies[prompt]["model"] == "m");
  }
  CHECK(bodies["own values"]["temperature"] == 0.9);
  CHECK(bodies["own values"]["max_tokens"] == 50);
  // The mock cuts an answer to max_tokens * 4 bytes: the flag shows in the output too.
  const auto by_id = by_string_id(dir / "out.jsonl");
  REQUIRE(by_id.size() == 3);
  CHECK(by_id.at("q0")["text"] == "Mock ans");
  CHECK(by_id.at("q0")["finish_reason"] == "length");
  CHECK(by_id.at("own")["text"] == "Mock answer to: own values");
  CHECK(by_id.at("own")["finish_reason"] == "stop");
}

TEST_CASE("run: a wide pool (600 workers) ends the process once all is written: every line, the summary, the "
          "events' end, and the exit status") {
  // From 512 workers `run` leaves by _Exit instead of joining each worker: nothing written may
  // be lost, and the status must still tell failures apart.
  const fs::path dir = scratch("wide_exit");
  constexpr int total = 1500;
  write_text(dir / "in.jsonl", plain_input(total));
  const fs::path summary = dir / "summary.json";
  {
    mock server(dir, {"--threads", "700"});
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                         "--concurrency", "600", "--no-cache", "--summary-json", summary.string()},
                        dir, "none", server.env());
    CHECK(o.status == 0);
    CHECK(server.stop() == total);
    const auto by_id = by_string_id(dir / "out.jsonl");
    REQUIRE(by_id.size() == total);
    for (int i = 0; i < total; i += 97) CHECK(by_id.at("q" + std::to_string(i))["error"].is_null());
    CHECK(summary_of(summary)["succeeded"] == total);
    const auto ends = events_of(dir / "out.jsonl.events.jsonl", "end");
    REQUIRE(ends.size() == 1);
    CHECK(ends[0]["succeeded"] == total);
    CHECK(events_of(dir / "out.jsonl.events.jsonl", "request").size() == total);
    CHECK(o.err.find("succeeded    1500") != std::string::npos);
  }
  {
    mock server(dir, {"--threads", "700", "--fail-500", "0.2", "--seed", "3"});
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                         "--concurrency", "600", "--max-retries", "0", "--no-cache", "--summary-json", summary.string()},
                        dir, "none", server.env());
    CHECK(o.status == 1);
    CHECK(server.stop() == total);
    const auto out = json_lines(dir / "out.jsonl");
    REQUIRE(out.size() == total);
    std::size_t failed = 0;
    for (const json& l : out) failed += l["error"].is_null() ? 0 : 1;
    CHECK(failed > 0);
    CHECK(summary_of(summary)["failed"] == failed);
  }
}

TEST_CASE("run: --max-retries 0 reports the mock's injected 500, 429, 503 and resets after 1 attempt; "
          "--max-retries 3 recovers") {
  const fs::path dir = scratch("flags_retries");
  constexpr int total = 40;
  write_text(dir / "in.jsonl", plain_input(total));
  const fs::path log = dir / "requests.log";
  const fs::path summary = dir / "summary.json";
  {
    // The faults are drawn from the seed and the request's sequence number: with no retries,
    // exactly `total` requests, so the same faults every run.
    mock server(dir, {"--fail-500", "0.15", "--fail-429", "0.15", "--fail-overload", "0.15", "--fail-reset", "0.15",
                      "--fail-429-retry-after-ms", "50", "--seed", "7", "--log-requests", log.string()});
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                         "--max-retries", "0", "--concurrency", "4", "--no-cache", "--summary-json", summary.string()},
                        dir, "none", server.env());
    CHECK(o.status == 1);
    CHECK(server.stop() == total);  // nothing was sent twice
    const auto out = json_lines(dir / "out.jsonl");
    REQUIRE(out.size() == total);
    std::map<std::string, int> by_kind;  // "code/http_status"
    std::size_t failed = 0;
    for (const json& l : out) {
      if (l["error"].is_null()) continue;
      ++failed;
      const json& e = l["error"];
      CHECK(e["attempts"] == 1);
      ++by_kind[e["code"].get<std::string>() + "/" + (e.contains("http_status") ? e["http_status"].dump() : "none")];
    }
    std::string kinds;
    for (const auto& kv : by_kind) kinds += kv.first + " x" + std::to_string(kv.second) + "; ";
    MESSAGE(failed << " of " << total << " failed: " << kinds);
    CHECK(by_kind["server_error/500"] > 0);
    CHECK(by_kind["server_error/503"] > 0);
    CHECK(by_kind["rate_limited/429"] > 0);
    CHECK(by_kind["connection/none"] > 0);
    CHECK(by_kind.size() == 4);
    // The same count on both sides: every non-200 the mock logged is a failed line.
    std::size_t not_ok = 0;
    for (const json& r : json_lines(log)) not_ok += r["status"] != 200 ? 1 : 0;
    CHECK(not_ok == failed);
    const json s = summary_of(summary);
    CHECK(s["failed"] == failed);
    CHECK(s["retries"] == 0);
  }
  {
    // One request at a time: the draws meet the requests in one order, so this is reproducible.
    fs::remove(log);
    mock server(dir, {"--fail-500", "0.1", "--fail-429", "0.05", "--fail-reset", "0.05", "--fail-429-retry-after-ms",
                      "50", "--seed", "11", "--log-requests", log.string()});
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                         "--max-retries", "3", "--concurrency", "1", "--no-cache", "--summary-json", summary.string()},
                        dir, "three", server.env());
    CHECK_MESSAGE(o.status == 0, o.err);
    const long served = server.stop();
    const json s = summary_of(summary);
    CHECK(s["succeeded"] == total);
    CHECK(s["failed"] == 0);
    const long retries = s["retries"].get<long>();
    MESSAGE(retries << " retries; the mock served " << served);
    CHECK(retries > 0);
    CHECK(served == total + retries);
    std::size_t not_ok = 0;
    for (const json& r : json_lines(log)) not_ok += r["status"] != 200 ? 1 : 0;
    CHECK(static_cast<long>(not_ok) == retries);
    const auto by_id = by_string_id(dir / "out.jsonl");
    REQUIRE(by_id.size() == static_cast<std::size_t>(total));
    for (const auto& kv : by_id) CHECK(kv.second["error"].is_null());
  }
}

TEST_CASE("run: --timeout shorter than the mock's latency gives timeout errors; --max-retries counts them") {
  const fs::path dir = scratch("flags_timeout");
  write_text(dir / "in.jsonl", plain_input(3));
  mock server(dir, {"--latency-ms", "10000"});  // stop() cuts the mock's sleeps short
  for (int retries : {0, 1}) {
    CAPTURE(retries);
    const auto started = std::chrono::steady_clock::now();
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                         "--timeout", "0.3", "--max-retries", std::to_string(retries), "--no-cache"},
                        dir, "run" + std::to_string(retries), server.env());
    const double took = seconds_since(started);
    CHECK(o.status == 1);
    const auto out = json_lines(dir / "out.jsonl");
    REQUIRE(out.size() == 3);
    for (const json& l : out) {
      CHECK(l["error"]["code"] == "timeout");
      CHECK(l["error"]["attempts"] == retries + 1);
      CHECK_FALSE(l["error"].contains("http_status"));
    }
    CHECK(took < 6.0);  // far below the 10 s latency: the answers were not waited for
  }
  CHECK(server.stop() == 3 + 6);
}

TEST_CASE("run: --rpm paces requests evenly; --tpm paces by tokens") {
  const fs::path dir = scratch("flags_rates");
  write_text(dir / "in.jsonl", plain_input(20));
  const fs::path summary = dir / "summary.json";
  mock server(dir);
  // 600 per minute is one request every 100 ms, never a burst: 20 requests span 1.9 s.
  outcome rpm = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "rpm.jsonl").string(), "--model", "m",
                         "--rpm", "600", "--concurrency", "8", "--no-cache", "--summary-json", summary.string()},
                        dir, "rpm", server.env());
  REQUIRE_MESSAGE(rpm.status == 0, rpm.err);
  const json s1 = summary_of(summary);
  MESSAGE("--rpm 600: 20 requests in " << s1["wall_seconds"].get<double>() << " s");
  CHECK(s1["wall_seconds"].get<double>() >= 1.7);
  CHECK(json_lines(dir / "rpm.jsonl").size() == 20);

  // 6000 tokens per minute is 100 per second. Whatever the estimate before sending (body
  // bytes / 4 + max_tokens), the pacing counts at least the answers' real tokens, so the run
  // lasts at least the tokens of all but the last request over 100.
  write_text(dir / "few.jsonl", plain_input(10));
  outcome tpm = run_cli({"run", (dir / "few.jsonl").string(), "-o", (dir / "tpm.jsonl").string(), "--model", "m",
                         "--tpm", "6000", "--max-tokens", "10", "--concurrency", "4", "--no-cache", "--summary-json",
                         summary.string()},
                        dir, "tpm", server.env());
  REQUIRE_MESSAGE(tpm.status == 0, tpm.err);
  const json s2 = summary_of(summary);
  const double tokens = s2["tokens"]["input_tokens"].get<double>() + s2["tokens"]["output_tokens"].get<double>();
  const double floor_seconds = tokens * 9.0 / 10.0 / 100.0;
  MESSAGE("--tpm 6000: " << tokens << " tokens in " << s2["wall_seconds"].get<double>() << " s (floor "
                         << floor_seconds << " s)");
  CHECK(tokens >= 50);
  CHECK(s2["wall_seconds"].get<double>() >= 0.9 * floor_seconds);
  CHECK(server.stop() == 30);
}

TEST_CASE("run: SIGINT mid-run exits 130 with only whole lines; the same command again finishes") {
  const fs::path dir = scratch("sigint");
  constexpr std::size_t total = 160;
  write_text(dir / "in.jsonl", plain_input(total));
  const fs::path out = dir / "out.jsonl";
  mock server(dir, {"--latency-ms", "100"});
  const fs::path page = dir / "report.html";
  const std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", out.string(), "--model", "m",
                                         "--concurrency", "8", "--cache-dir", (dir / "cache").string(),
                                         "--report", page.string()};
  child first = spawn(args, dir, "run1", server.env());
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (lines_of(out).size() < 24 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(10ms);
  kill(first.pid, SIGINT);
  CHECK(wait_for(first) == 130);  // the README: "130 after Ctrl-C"
  const std::string err = slurp(first.err);
  CHECK(err.find("requests-engine run: interrupted") != std::string::npos);
  CHECK(err.find("Run the same command again to finish") != std::string::npos);
  // The report is written on interruption too, with what was answered.
  const std::string interrupted_page = slurp(page);
  CHECK(interrupted_page.find("interrupted") != std::string::npos);
  CHECK(shown(interrupted_page, "h-requests") == std::to_string(lines_of(out).size()));

  const std::string text = slurp(out);
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  std::set<std::string> ids;
  std::size_t n = 0;
  for (const std::string& l : lines_of(out)) {
    const json j = json::parse(l, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), "not a whole line: " << l);
    CHECK(j["error"].is_null());  // cancelled requests are not written
    ids.insert(j["id"].get<std::string>());
    ++n;
  }
  MESSAGE("interrupted after " << n << " lines");
  CHECK(ids.size() == n);
  CHECK(n >= 24);
  CHECK(n < total);

  outcome second = run_cli(args, dir, "run2", server.env());
  CHECK_MESSAGE(second.status == 0, second.err);
  const auto lines = json_lines(out);
  CHECK(lines.size() == total);
  std::set<std::string> all;
  for (const json& l : lines) all.insert(l["id"].get<std::string>());
  CHECK(all.size() == total);
  std::size_t from_cache = 0;
  for (const json& l : lines) from_cache += l["from_cache"] == true ? 1 : 0;
  CHECK(from_cache >= n);
  for (const std::string& id : ids) CHECK(all.count(id) == 1);
  // The run after an interrupted one appends to its events: the report shows both, each id once.
  const std::string final_page = slurp(page);
  CHECK(final_page.find("data-runs=\"2\"") != std::string::npos);
  CHECK(shown(final_page, "h-requests") == std::to_string(total));
  const long served = server.stop();
  CHECK(served >= static_cast<long>(total));
  CHECK(served <= static_cast<long>(total) + 8);
}

TEST_CASE("run: a failed request in the OpenAI Batch output shape: error {code, message}, response null or the "
          "HTTP answer") {
  const fs::path dir = scratch("batch_errors");
  auto line = [](const std::string& id, int max_tokens) {
    return json{{"custom_id", id},
                {"method", "POST"},
                {"url", "/v1/chat/completions"},
                {"body",
                 {{"model", "gpt-4o-mini"},
                  {"messages", {{{"role", "user"}, {"content", "prompt of " + id}}}},
                  {"max_tokens", max_tokens}}}}
               .dump() +
           "\n";
  };
  write_text(dir / "in.jsonl", line("good", 20) + line("rejected", 0));
  const std::set<std::string> keys = {"id", "custom_id", "response", "error", "usage", "request_hash", "from_cache"};
  auto keys_of = [](const json& j) {
    std::set<std::string> k;
    for (const auto& kv : j.items()) k.insert(kv.key());
    return k;
  };

  // An HTTP error: the 400 as the response, and the error member.
  mock server(dir);
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--no-cache"}, dir,
                      "http", server.env());
  CHECK(o.status == 1);
  std::map<std::string, json> by_custom_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_custom_id[l["custom_id"].get<std::string>()] = l;
  REQUIRE(by_custom_id.size() == 2);
  const json& good = by_custom_id["good"];
  CHECK(keys_of(good) == keys);
  CHECK(good["error"].is_null());
  CHECK(good["response"]["status_code"] == 200);
  const json& bad = by_custom_id["rejected"];
  CHECK(keys_of(bad) == keys);
  CHECK(bad["id"].get<std::string>().rfind("batch_req_", 0) == 0);
  CHECK(bad["id"] != good["id"]);
  REQUIRE(bad["error"].is_object());
  CHECK(keys_of(bad["error"]) == std::set<std::string>{"code", "message"});
  CHECK(bad["error"]["code"] == "bad_request");
  CHECK(bad["error"]["message"].get<std::string>().find("max_tokens") != std::string::npos);
  REQUIRE(bad["response"].is_object());
  CHECK(bad["response"]["status_code"] == 400);
  CHECK(bad["response"]["body"]["error"]["message"] == bad["error"]["message"]);
  CHECK(bad["usage"].is_null());
  CHECK(bad["request_hash"].get<std::string>().size() == 64);
  CHECK(bad["from_cache"] == false);
  const long served = server.stop();
  CHECK(served == 2);

  // No HTTP answer at all (nothing listens on the port any more): response null.
  outcome down = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "down.jsonl").string(), "--no-cache",
                          "--max-retries", "0"},
                         dir, "down", server.env());
  CHECK(down.status == 1);
  const auto lines = json_lines(dir / "down.jsonl");
  REQUIRE(lines.size() == 2);
  for (const json& l : lines) {
    CAPTURE(l.dump());
    CHECK(keys_of(l) == keys);
    CHECK(l["response"].is_null());
    REQUIRE(l["error"].is_object());
    CHECK(keys_of(l["error"]) == std::set<std::string>{"code", "message"});
    CHECK(l["error"]["code"] == "connection");
    CHECK_FALSE(l["error"]["message"].get<std::string>().empty());
  }
}

namespace {

json read_json(const fs::path& p) { return json::parse(slurp(p)); }

// Dollars for `tokens` ({"input", "output", ...} as the summary writes them) at per-million prices.
double priced(const json& tokens, double input_per_million, double output_per_million) {
  return (tokens["input"].get<double>() * input_per_million + tokens["output"].get<double>() * output_per_million) /
         1e6;
}

}  // namespace

TEST_CASE("run: anthropic end to end; the summary prices the run; a rerun costs $0 actual, as-if unchanged") {
  const fs::path dir = scratch("anthropic_cost");
  write_text(dir / "in.jsonl", plain_input(3));
  mock server(dir);
  const fs::path summary = dir / "summary.json";
  // claude-haiku-4-5 is in the built-in table ($1 / $5 per million); the mock answers with the
  // model it is asked for, and no key is needed for a server other than Anthropic's.
  const std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                         "--provider", "anthropic", "--model", "claude-haiku-4-5",
                                         "--base-url", server.origin(), "--cache-dir", (dir / "cache").string(),
                                         "--summary-json", summary.string()};
  outcome first = run_cli(args, dir, "run1");
  REQUIRE_MESSAGE(first.status == 0, first.err);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  REQUIRE(by_id.size() == 3);
  for (int i = 0; i < 3; ++i) {
    const json& l = by_id["q" + std::to_string(i)];
    CHECK(l["text"] == "Mock answer to: question " + std::to_string(i));
    CHECK(l["model"] == "claude-haiku-4-5");
    CHECK(l["finish_reason"] == "end_turn");
    CHECK(l["error"].is_null());
  }
  CHECK_MESSAGE(std::regex_search(first.err, std::regex(R"(cost         actual \$0\.0[0-9]*[1-9], as-if \$0\.0)")),
                first.err);

  const json s1 = read_json(summary);
  CHECK(s1["status"] == "done");
  CHECK(s1["requests"] == 3);
  CHECK(s1["succeeded"] == 3);
  CHECK(s1["failed"] == 0);
  CHECK(s1["failed_ids"].empty());
  CHECK(s1["from_cache"] == 0);
  CHECK(s1["wall_seconds"].get<double>() > 0);
  const json& c1 = s1["cost"];
  CHECK(c1["complete"] == true);
  CHECK(c1["models"][0]["priced_as"] == "claude-haiku-4-5");
  const double expected = priced(c1["tokens"], 1, 5);
  CHECK(expected > 0);
  CHECK(c1["actual_usd"].get<double>() == doctest::Approx(expected));
  CHECK(c1["as_if_usd"].get<double>() == doctest::Approx(expected));
  CHECK(s1["tokens"]["input_tokens"] == c1["tokens"]["input"]);

  outcome second = run_cli(args, dir, "run2");
  REQUIRE_MESSAGE(second.status == 0, second.err);
  CHECK_MESSAGE(std::regex_search(second.err, std::regex(R"(cost         actual \$0, as-if \$0\.0[0-9]*[1-9] )")),
                second.err);
  const json s2 = read_json(summary);
  CHECK(s2["from_cache"] == 3);
  CHECK(s2["cost"]["actual_usd"].get<double>() == 0.0);
  CHECK(s2["cost"]["as_if_usd"].get<double>() == doctest::Approx(c1["as_if_usd"].get<double>()));
  CHECK(s2["cost"]["network_tokens"]["input"] == 0);
  CHECK(server.stop() == 3);
}

TEST_CASE("run --provider gemini: end to end against the mock's generateContent") {
  const fs::path dir = scratch("gemini");
  write_text(dir / "in.jsonl", plain_input(2));
  mock server(dir);
  const fs::path summary = dir / "summary.json";
  std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                   "--provider", "gemini", "--model", "gemini-2.5-flash", "--base-url", server.origin(),
                                   "--no-cache", "--summary-json", summary.string()};
  outcome o = run_cli(args, dir, "run", {{"GEMINI_API_KEY", "gemini-test-key-123"}});
  REQUIRE_MESSAGE(o.status == 0, o.err);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  REQUIRE(by_id.size() == 2);
  CHECK(by_id["q0"]["text"] == "Mock answer to: question 0");
  CHECK(by_id["q1"]["text"] == "Mock answer to: question 1");
  CHECK(by_id["q1"]["model"] == "gemini-2.5-flash");
  CHECK(by_id["q1"]["finish_reason"] == "STOP");
  CHECK(by_id["q1"]["usage"]["output_tokens"].get<int>() > 0);
  const json cost = read_json(summary)["cost"];
  CHECK(cost["actual_usd"].get<double>() == doctest::Approx(priced(cost["tokens"], 0.3, 2.5)));
  CHECK(cost["actual_usd"].get<double>() > 0);
  CHECK(o.err.find("gemini-test-key-123") == std::string::npos);

  // GOOGLE_API_KEY is read too (as Google's SDKs do) when GEMINI_API_KEY is not set.
  outcome google_key = run_cli(args, dir, "google", {{"GOOGLE_API_KEY", "google-test-key"}});
  CHECK_MESSAGE(google_key.status == 0, google_key.err);

  // An OpenAI Batch file is translated into generateContent and answered in the Batch shape.
  write_text(dir / "batch.jsonl",
             json{{"custom_id", "c1"},
                  {"method", "POST"},
                  {"url", "/v1/chat/completions"},
                  {"body",
                   {{"model", "gpt-4o-mini"},
                    {"messages", {{{"role", "system"}, {"content", "Be brief"}}, {{"role", "user"}, {"content", "hi"}}}},
                    {"max_tokens", 50}}}}
                     .dump() +
                 "\n");
  outcome batch = run_cli({"run", (dir / "batch.jsonl").string(), "-o", (dir / "batch.out").string(), "--provider",
                           "gemini", "--model", "gemini-2.5-flash", "--base-url", server.origin(), "--no-cache"},
                          dir, "batch", {{"GEMINI_API_KEY", "k"}});
  REQUIRE_MESSAGE(batch.status == 0, batch.err);
  const auto lines = json_lines(dir / "batch.out");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["custom_id"] == "c1");
  CHECK(lines[0]["response"]["status_code"] == 200);
  CHECK(lines[0]["response"]["body"]["object"] == "chat.completion");
  CHECK(lines[0]["response"]["body"]["model"] == "gemini-2.5-flash");
  CHECK(lines[0]["response"]["body"]["choices"][0]["message"]["content"] == "Mock answer to: hi");
  CHECK(server.stop() == 5);
  CHECK(server.stopped_stderr().find("5 gemini, 0 vertex, 0 bedrock") != std::string::npos);
}

TEST_CASE("run --provider bedrock: SigV4-signed InvokeModel against the mock; the secret never shows") {
  const fs::path dir = scratch("bedrock");
  write_text(dir / "in.jsonl", plain_input(2));
  mock server(dir);
  const std::string secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const std::string token = "session-token-FwoGZXIvYXdzEXAMPLE";
  const std::map<std::string, std::string> env = {{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                                                  {"AWS_SECRET_ACCESS_KEY", secret},
                                                  {"AWS_SESSION_TOKEN", token},
                                                  {"AWS_REGION", "eu-west-1"}};
  const fs::path summary = dir / "summary.json";
  const std::string model = "anthropic.claude-haiku-4-5-20251001-v1:0";  // ':' travels percent-encoded
  outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--provider",
                       "bedrock", "--model", model, "--base-url", server.origin(), "--cache-dir",
                       (dir / "cache").string(), "--summary-json", summary.string()},
                      dir, "run", env);
  REQUIRE_MESSAGE(o.status == 0, o.err);
  std::map<std::string, json> by_id;
  for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
  REQUIRE(by_id.size() == 2);
  CHECK(by_id["q0"]["text"] == "Mock answer to: question 0");
  CHECK(by_id["q1"]["text"] == "Mock answer to: question 1");
  CHECK(by_id["q1"]["model"] == model);
  const json cost = read_json(summary)["cost"];
  CHECK(cost["models"][0]["priced_as"] == "claude-haiku-4-5");
  CHECK(cost["actual_usd"].get<double>() == doctest::Approx(priced(cost["tokens"], 1, 5)));

  // A line naming another model cannot share the URL: refused before anything is sent.
  write_text(dir / "mixed.jsonl", plain_input(1) + R"({"id":"other","prompt":"x","model":"anthropic.claude-3-haiku-20240307-v1:0"})" "\n");
  outcome mixed = run_cli({"run", (dir / "mixed.jsonl").string(), "-o", (dir / "mixed.out").string(), "--provider",
                           "bedrock", "--model", model, "--base-url", server.origin(), "--no-cache"},
                          dir, "mixed", env);
  CHECK(mixed.status == 2);
  CHECK(mixed.err.find("id 'other' (line 2) asks for model 'anthropic.claude-3-haiku-20240307-v1:0'") !=
        std::string::npos);

  CHECK(server.stop() == 2);
  CHECK(server.stopped_stderr().find("0 gemini, 0 vertex, 2 bedrock") != std::string::npos);
  std::string everything = o.out + o.err + mixed.err + slurp(dir / "out.jsonl") + slurp(summary);
  for (const auto& e : fs::recursive_directory_iterator(dir / "cache"))
    if (e.is_regular_file()) everything += slurp(e.path());
  CHECK(everything.find(secret) == std::string::npos);
  CHECK(everything.find(token) == std::string::npos);
}

TEST_CASE("run --provider vertex: a token from the key file's token_uri, then each of the three APIs") {
  const fs::path dir = scratch("vertex");
  write_text(dir / "in.jsonl", plain_input(2));
  mock server(dir);
  // A service-account key made here (the openssl command, an RSA key of 2048 bits), pointed at
  // the mock; written to the scratch folder only.
  outcome keygen = run_program("openssl", {"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, dir,
                               "genpkey");
  REQUIRE_MESSAGE(keygen.status == 0, "openssl genpkey: " << keygen.err);
  REQUIRE(keygen.out.find("-----BEGIN PRIVATE KEY-----") == 0);
  const json account = {{"type", "service_account"},
                        {"project_id", "cli-test-project"},
                        {"private_key_id", "cli-test-key"},
                        {"private_key", keygen.out},
                        {"client_email", "cli-test@cli-test-project.iam.gserviceaccount.com"},
                        {"token_uri", server.origin() + "/token"}};
  write_text(dir / "service_account.json", account.dump());
  const std::map<std::string, std::string> env = {
      {"GOOGLE_APPLICATION_CREDENTIALS", (dir / "service_account.json").string()}};

  struct api_case {
    std::string model, api_flag, finish_reason;
  };
  const std::vector<api_case> cases = {{"meta/llama-3.3-70b-instruct-maas", "", "stop"},  // openai (the default)
                                       {"gemini-2.0-flash", "", "STOP"},
                                       {"claude-haiku-4-5", "", "end_turn"},
                                       {"gemini-2.5-flash", "gemini", "STOP"}};
  for (const auto& c : cases) {
    CAPTURE(c.model);
    const fs::path out = dir / "out.jsonl";
    std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", out.string(), "--provider", "vertex",
                                      "--model", c.model, "--region", "us-east5", "--base-url", server.origin(),
                                      "--no-cache"};
    if (!c.api_flag.empty()) {
      args.push_back("--vertex-api");
      args.push_back(c.api_flag);
    }
    outcome o = run_cli(args, dir, "run", env);
    REQUIRE_MESSAGE(o.status == 0, o.err);
    std::map<std::string, json> by_id;
    for (const json& l : json_lines(out)) by_id[l["id"].get<std::string>()] = l;
    REQUIRE(by_id.size() == 2);
    CHECK(by_id["q0"]["text"] == "Mock answer to: question 0");
    CHECK(by_id["q1"]["finish_reason"] == c.finish_reason);
    CHECK(by_id["q1"]["model"] == c.model);
    CHECK(o.err.find("PRIVATE KEY") == std::string::npos);
  }
  CHECK(server.stop() == 8);
  CHECK(server.stopped_stderr().find("0 gemini, 8 vertex, 0 bedrock; 4 access tokens issued") != std::string::npos);
}

TEST_CASE("run: missing credentials for bedrock, vertex and gemini stop with exit 2, naming them; nothing is sent") {
  const fs::path dir = scratch("credentials");
  write_text(dir / "in.jsonl", plain_input(2));
  const std::string in = (dir / "in.jsonl").string();
  const std::string out = (dir / "out.jsonl").string();
  mock server(dir);
  const std::string base = server.origin();
  const std::string secret = "do-not-print-this-secret";
  const std::string model = "anthropic.claude-haiku-4-5-20251001-v1:0";
  struct expectation {
    std::vector<std::string> flags;
    std::map<std::string, std::string> env;
    std::string message;
  };
  const std::vector<expectation> cases = {
      {{"--provider", "bedrock", "--model", model, "--region", "us-east-1"}, {}, "AWS_ACCESS_KEY_ID is not set"},
      {{"--provider", "bedrock", "--model", model, "--region", "us-east-1"},
       {{"AWS_ACCESS_KEY_ID", "AKID"}},
       "AWS_SECRET_ACCESS_KEY is not set"},
      {{"--provider", "bedrock", "--model", model},
       {{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", secret}},
       "no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)"},
      {{"--provider", "vertex", "--model", "gemini-2.0-flash"}, {}, "GOOGLE_APPLICATION_CREDENTIALS is not set"},
      {{"--provider", "vertex", "--model", "gemini-2.0-flash"},
       {{"GOOGLE_APPLICATION_CREDENTIALS", (dir / "no-such-key.json").string()}},
       "no-such-key.json"},
      {{"--provider", "gemini", "--model", "gemini-2.5-flash"}, {}, "GEMINI_API_KEY is not set (nor GOOGLE_API_KEY)"},
      {{"--provider", "gemini"}, {{"GEMINI_API_KEY", secret}}, "--provider gemini needs --model"},
  };
  int i = 0;
  for (const auto& c : cases) {
    CAPTURE(c.message);
    std::vector<std::string> args = {"run", in, "-o", out, "--base-url", base, "--no-cache"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    outcome o = run_cli(args, dir, "case" + std::to_string(i++), c.env);
    CHECK(o.status == 2);
    CHECK(o.err.find(c.message) != std::string::npos);
    CHECK(o.err.find(secret) == std::string::npos);
    CHECK_FALSE(fs::exists(out));
  }
  CHECK(server.stop() == 0);
  CHECK(server.stopped_stderr().find("0 access tokens issued") != std::string::npos);
}

TEST_CASE("run: --prices overrides the built-in table; a bad --prices file is exit 2 naming it") {
  const fs::path dir = scratch("prices");
  write_text(dir / "in.jsonl", plain_input(3));
  const std::string in = (dir / "in.jsonl").string();
  const std::string out = (dir / "out.jsonl").string();
  const fs::path summary = dir / "summary.json";
  mock server(dir);
  auto run_with_prices = [&](const std::vector<std::string>& extra, const std::string& tag) {
    std::vector<std::string> args = {"run", in, "-o", out, "--model", "test-model", "--no-cache",
                                     "--summary-json", summary.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir, tag, server.env());
  };

  // No price for test-model: unknown, never $0.
  outcome plain = run_with_prices({}, "plain");
  REQUIRE_MESSAGE(plain.status == 0, plain.err);
  CHECK(plain.err.find("cost         unknown (no price for test-model") != std::string::npos);
  const json unknown = read_json(summary)["cost"];
  CHECK(unknown["complete"] == false);
  CHECK(unknown["unknown_models"] == json::array({"test-model"}));
  CHECK(unknown["models"][0]["actual_usd"].is_null());

  // $1 per input token, $2 per output token: the cost is the token counts.
  write_text(dir / "prices.json", R"({"models": {"test-model": {"input": 1000000, "output": 2000000}}})");
  outcome priced_run = run_with_prices({"--prices", (dir / "prices.json").string()}, "priced");
  REQUIRE_MESSAGE(priced_run.status == 0, priced_run.err);
  const json cost = read_json(summary)["cost"];
  CHECK(cost["complete"] == true);
  const double expected = cost["tokens"]["input"].get<double>() + 2 * cost["tokens"]["output"].get<double>();
  CHECK(expected > 0);
  CHECK(cost["actual_usd"].get<double>() == doctest::Approx(expected));
  std::ostringstream line;
  line << "cost         actual $" << std::fixed << std::setprecision(4) << expected;
  CHECK_MESSAGE(priced_run.err.find(line.str()) != std::string::npos, priced_run.err);

  const std::size_t served_before = 6;
  fs::remove(summary);
  write_text(dir / "bad.json", "{not json");
  outcome bad = run_with_prices({"--prices", (dir / "bad.json").string()}, "bad");
  CHECK(bad.status == 2);
  CHECK(bad.err.find((dir / "bad.json").string()) != std::string::npos);
  write_text(dir / "no_output.json", R"({"models": {"new-model": {"input": 1}}})");
  outcome incomplete = run_with_prices({"--prices", (dir / "no_output.json").string()}, "incomplete");
  CHECK(incomplete.status == 2);
  CHECK(incomplete.err.find("no_output.json") != std::string::npos);
  CHECK(incomplete.err.find("new-model") != std::string::npos);
  outcome missing = run_with_prices({"--prices", (dir / "missing.json").string()}, "missing");
  CHECK(missing.status == 2);
  CHECK(missing.err.find("missing.json") != std::string::npos);
  CHECK_FALSE(fs::exists(summary));
  CHECK(server.stop() == static_cast<long>(served_before));
}

TEST_CASE("cache: stats, verify, export and prune over the folder a run filled") {
  const fs::path dir = scratch("cache");
  write_text(dir / "in.jsonl", plain_input(5));
  const std::string cache = (dir / "cache").string();
  mock server(dir);
  outcome r = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--model", "m",
                       "--cache-dir", cache, "--namespace", "exp1"},
                      dir, "run", server.env());
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(server.stop() == 5);

  outcome stats = run_cli({"cache", "stats", "--cache-dir", cache}, dir, "stats");
  CHECK(stats.status == 0);
  CHECK(stats.out.find("entries    5") != std::string::npos);
  CHECK(stats.out.find("namespace  'exp1': 5") != std::string::npos);

  outcome verify = run_cli({"cache", "verify", "--cache-dir", cache}, dir, "verify");
  CHECK(verify.status == 0);
  CHECK(verify.out.find("bad        0") != std::string::npos);

  outcome exported = run_cli({"cache", "export", "--cache-dir", cache, "-o", (dir / "export.jsonl").string()}, dir,
                             "export");
  CHECK(exported.status == 0);
  const auto entries = json_lines(dir / "export.jsonl");
  CHECK(entries.size() == 5);
  for (const json& e : entries) CHECK(e["namespace"] == "exp1");

  // A damaged entry is found by verify (exit 1) and removed with --remove.
  fs::path victim;
  for (const auto& e : fs::recursive_directory_iterator(cache))
    if (e.is_regular_file() && e.path().extension() == ".json") victim = e.path();
  REQUIRE(!victim.empty());
  write_text(victim, "garbage");
  outcome bad = run_cli({"cache", "verify", "--cache-dir", cache}, dir, "verify2");
  CHECK(bad.status == 1);
  CHECK(bad.out.find("bad        1") != std::string::npos);
  CHECK(run_cli({"cache", "verify", "--cache-dir", cache, "--remove"}, dir, "verify3").status == 0);

  CHECK(run_cli({"cache", "prune", "--cache-dir", cache}, dir, "prune0").status == 2);  // no filter
  outcome other = run_cli({"cache", "prune", "--cache-dir", cache, "--namespace", "other"}, dir, "prune1");
  CHECK(other.out.find("removed    0") != std::string::npos);
  outcome pruned = run_cli({"cache", "prune", "--cache-dir", cache, "--namespace", "exp1"}, dir, "prune2");
  CHECK(pruned.status == 0);
  CHECK(pruned.out.find("removed    4") != std::string::npos);
  CHECK(count_cache_entries(cache) == 0);
  CHECK(run_cli({"cache", "stats", "--cache-dir", (dir / "none").string()}, dir, "none").status == 2);
}

namespace {

// `requests-engine batch` against the mock, per provider: a model of the built-in price table
// (dollars per million tokens) and the base URL the provider takes.
struct batch_provider {
  std::string name, model;
  double input, output;
  std::string provider;             // --provider
  std::vector<std::string> extra;   // more submit flags
  std::map<std::string, std::string> env;
  [[nodiscard]] std::string base(const mock& m) const { return name == "openai" ? m.base_url() : m.origin(); }
  [[nodiscard]] std::string api() const {
    return provider == "anthropic" || provider == "gemini" ? provider : "openai";
  }
};
// Azure OpenAI's Batch API on both URL schemes: the mock checks its key in api-key.
const std::map<std::string, std::string> azure_batch_env = {{"AZURE_OPENAI_API_KEY", "azure-batch-key-1f2e3d4c5b6a79"}};
const std::vector<batch_provider> batch_providers = {
    {"openai", "o1", 15, 60, "openai", {}, {}},
    {"anthropic", "claude-opus-4-1", 15, 75, "anthropic", {}, {}},
    {"azure-v1", "o1", 15, 60, "azure", {}, azure_batch_env},
    {"azure-classic", "o1", 15, 60, "azure", {"--api-version", "2024-10-21"}, azure_batch_env},
    // Gemini API Batch Mode, the key in x-goog-api-key. A submit of several requests is over the
    // inline limit of 200 bytes and goes through the Files API's resumable upload; one goes inline.
    {"gemini", "gemini-2.5-flash", 0.3, 2.5, "gemini", {"--inline-bytes", "200"},
     {{"GEMINI_API_KEY", "gemini-batch-key-5e4d3c2b1a0f9e8d"}}}};

// After mock::stop(): {batches created, lines uploaded in them}.
std::pair<long, long> batch_counts(const mock& m) {
  std::smatch match;
  const std::string& err = m.stopped_stderr();
  if (!std::regex_search(err, match, std::regex(R"((\d+) batches created, (\d+) batch lines)"))) {
    FAIL("no batch counts in the mock's stderr: " << err);
    return {-1, -1};
  }
  return {std::stol(match[1].str()), std::stol(match[2].str())};
}

// The dollars of the cost line `batch fetch` prints: {spent, as if uncached}.
std::pair<double, double> batch_cost_line(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m,
                         std::regex(R"(cost: \$([0-9.]+) spent, \$([0-9.]+) as if nothing came from the cache \(batch prices\))"))) {
    FAIL("no batch cost line in: " << out);
    return {-1, -1};
  }
  return {std::stod(m[1].str()), std::stod(m[2].str())};
}

}  // namespace

TEST_CASE("batch: submit, status, wait and fetch in separate processes, for openai, anthropic and Azure OpenAI") {
  for (const auto& p : batch_providers) {
    CAPTURE(p.name);
    const fs::path dir = scratch("batch_cli_" + p.name);
    write_text(dir / "in.jsonl", plain_input(5) + R"({"id":"bad","prompt":"question 5 [fail]"})" "\n");
    const std::string in = (dir / "in.jsonl").string();
    const fs::path out = dir / "out.jsonl";
    const fs::path state = dir / "out.jsonl.batch.json";
    const std::string cache = (dir / "cache").string();
    std::vector<std::string> mock_flags = {"--batch-delay-ms", "300"};
    if (!p.env.empty()) mock_flags.insert(mock_flags.end(), {"--api-key-env", p.env.begin()->first});
    mock server(dir, mock_flags, p.env);
    const auto run_cli = [&p](const std::vector<std::string>& args, const fs::path& d, const std::string& tag) {
      return ::run_cli(args, d, tag, p.env);
    };
    const std::vector<std::string> later = {"-o", out.string(), "--poll-seconds", "0.05"};
    auto batch_cmd = [&](const std::string& action, std::vector<std::string> extra = {}) {
      std::vector<std::string> args = {"batch", action};
      args.insert(args.end(), extra.begin(), extra.end());
      return args;
    };
    auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    std::vector<std::string> submit_args = {"batch",        "submit",   in,      "-o",         out.string(),
                                            "--provider",   p.provider, "--model", p.model,    "--base-url",
                                            p.base(server), "--cache-dir", cache};
    submit_args.insert(submit_args.end(), p.extra.begin(), p.extra.end());

    // Before any submit: no job file is a usage error.
    outcome none = run_cli(with(batch_cmd("status"), later), dir, "none");
    CHECK(none.status == 2);
    CHECK(none.err.find("cannot read the batch job file") != std::string::npos);

    outcome submit = run_cli(submit_args, dir, "submit");
    REQUIRE_MESSAGE(submit.status == 0, submit.err);
    CHECK(submit.out.find("job saved in " + state.string()) != std::string::npos);
    CHECK(submit.out.find("6 requests in 1 batch(es)") != std::string::npos);
    REQUIRE(fs::exists(state));
    CHECK_FALSE(fs::exists(out));
    const json job = read_json(state);
    CHECK(job["format"] == "requests_engine.batch.v1");
    CHECK(job["api"] == p.api());
    REQUIRE(job["parts"].size() == 1);
    const std::string batch_id = job["parts"][0]["id"].get<std::string>();
    CHECK_FALSE(batch_id.empty());
    CHECK(job["user"]["ids"] == json::array({"q0", "q1", "q2", "q3", "q4", "bad"}));
    CHECK(job["cached"].empty());

    // A second submit for the same output is refused: it would orphan the first job.
    outcome twice = run_cli(submit_args, dir, "twice");
    CHECK(twice.status == 2);
    CHECK(twice.err.find("exists") != std::string::npos);

    outcome status = run_cli(with(batch_cmd("status"), later), dir, "status");
    REQUIRE_MESSAGE(status.status == 0, status.err);
    CHECK(status.out.find(batch_id) != std::string::npos);
    CHECK(status.out.find("6 requests in 1 batch(es)") != std::string::npos);

    outcome waited = run_cli(with(batch_cmd("wait"), later), dir, "wait");
    REQUIRE_MESSAGE(waited.status == 0, waited.err);
    CHECK(waited.out.find("requests-engine batch: completed, 6 requests in 1 batch(es): 5 succeeded, 1 failed") !=
          std::string::npos);
    CHECK(waited.err.find("6/6 done, 1 failed") != std::string::npos);  // the progress line
    CHECK(read_json(state)["parts"][0]["status"] == "completed");      // wait saved the job

    outcome fetched = run_cli(with(batch_cmd("fetch"), later), dir, "fetch");
    CHECK_MESSAGE(fetched.status == 1, fetched.err);  // a failed line: exit 1, as `run`
    CHECK(fetched.out.find("wrote 6 results to " + out.string() + " (1 failed)") != std::string::npos);
    const auto lines = json_lines(out);
    REQUIRE(lines.size() == 6);
    double online = 0;
    for (std::size_t i = 0; i < 6; ++i) {
      CAPTURE(i);
      const json& l = lines[i];
      CHECK(l["request_hash"] == job["hashes"][i]);
      CHECK(l["from_cache"] == false);
      if (i == 5) {
        CHECK(l["id"] == "bad");
        CHECK(l["error"]["code"] == "bad_request");
        CHECK(l["error"]["http_status"] == 400);
        CHECK(l["error"]["message"].get<std::string>().find("on purpose") != std::string::npos);
        continue;
      }
      CHECK(l["id"] == "q" + std::to_string(i));
      CHECK(l["error"].is_null());
      CHECK(l["text"] == "Mock answer to: question " + std::to_string(i));
      CHECK(l["model"] == p.model);
      CHECK(l["usage"]["input_tokens"] == 3);
      // The mock's o1 reasons: 16 reasoning tokens inside its output tokens.
      const int reasoning = p.api() == "openai" ? 16 : 0;
      CHECK(l["usage"]["output_tokens"] == 7 + reasoning);
      CHECK(l["usage"]["reasoning_tokens"] == reasoning);
      online += (l["usage"]["input_tokens"].get<double>() * p.input + l["usage"]["output_tokens"].get<double>() * p.output) / 1e6;
    }
    // 5 answers of 3 + 7 tokens (o1: + 16 reasoning, billed as output): o1 5 x (45 + 1380) / 1e6
    // = $0.007125 online, so $0.0035625 at batch prices; claude-opus-4-1 5 x (45 + 525) / 1e6 =
    // $0.00285, so $0.001425. Printed to 6 decimals.
    // gemini-2.5-flash: 5 x (3 x 0.3 + 7 x 2.5) / 1e6 = $0.000092, so $0.000046.
    CHECK(online == doctest::Approx(p.api() == "openai" ? 0.007125 : p.api() == "gemini" ? 0.000092 : 0.00285));
    const auto [spent, as_if] = batch_cost_line(fetched.out);
    CHECK(spent == doctest::Approx(0.5 * online).epsilon(0.001));
    CHECK(as_if == doctest::Approx(0.5 * online).epsilon(0.001));

    // The same input again, to another output: the 5 cached answers are not sent, only the
    // failed line is; the fetch gives the 5 from the cache at $0.
    const fs::path out2 = dir / "again.jsonl";
    std::vector<std::string> submit2 = submit_args;
    submit2[4] = out2.string();
    outcome again = run_cli(submit2, dir, "submit2");
    REQUIRE_MESSAGE(again.status == 0, again.err);
    CHECK(again.out.find("5 from the cache (not sent)") != std::string::npos);
    CHECK(read_json(dir / "again.jsonl.batch.json")["cached"] == json::array({0, 1, 2, 3, 4}));
    outcome fetched2 =
        run_cli(with(batch_cmd("fetch"), {"-o", out2.string(), "--poll-seconds", "0.05"}), dir, "fetch2");
    CHECK_MESSAGE(fetched2.status == 1, fetched2.err);
    const auto lines2 = json_lines(out2);
    REQUIRE(lines2.size() == 6);
    for (std::size_t i = 0; i < 5; ++i) {
      CHECK(lines2[i]["from_cache"] == true);
      CHECK(lines2[i]["text"] == lines[i]["text"]);
    }
    CHECK(lines2[5]["error"]["code"] == "bad_request");
    const auto [spent2, as_if2] = batch_cost_line(fetched2.out);
    CHECK(spent2 == 0.0);
    CHECK(as_if2 == doctest::Approx(0.5 * online).epsilon(0.001));

    if (p.provider == "gemini") {
      // The fetched job's input file, responses file and batch are deleted on request.
      outcome removed = run_cli(with(batch_cmd("delete"), later), dir, "delete");
      CHECK_MESSAGE(removed.status == 0, removed.err);
      CHECK(removed.out.find("deleted 3 batches and files") != std::string::npos);
    }
    CHECK(server.stop() == 0);  // no online request: everything went through the batch routes
    CHECK(batch_counts(server) == std::pair<long, long>{2, 7});  // 6 lines, then the failed one alone
    if (p.provider == "azure") {
      // Azure's routes for the scheme, with the key in api-key (the mock refused anything else).
      const json saved = read_json(state);
      const std::string endpoint = saved["endpoint"].get<std::string>();
      CHECK(endpoint.find(p.extra.empty() ? "/openai/v1/chat/completions"
                                          : "/openai/deployments/o1/chat/completions?api-version=2024-10-21") !=
            std::string::npos);
      CHECK(saved["user"]["azure"]["deployment"] == "o1");
    }
  }
}

TEST_CASE("batch: /v1/responses and /v1/embeddings lines through submit, wait and fetch; a rerun is all from the cache") {
  const fs::path dir = scratch("batch_endpoints");
  std::string responses, embeddings;
  for (int i = 0; i < 3; ++i) responses += responses_line("r" + std::to_string(i), "o3-pro", "question " + std::to_string(i));
  for (int i = 0; i < 3; ++i) embeddings += embeddings_line("e" + std::to_string(i), "text " + std::to_string(i % 2));
  write_text(dir / "responses.jsonl", responses);
  write_text(dir / "embeddings.jsonl", embeddings);
  const std::string cache = (dir / "cache").string();
  mock server(dir, {"--batch-delay-ms", "100"});
  for (const std::string kind : {"responses", "embeddings"}) {
    CAPTURE(kind);
    const std::string in = (dir / (kind + ".jsonl")).string();
    const fs::path out = dir / (kind + "-out.jsonl");
    outcome submit = run_cli({"batch", "submit", in, "-o", out.string(), "--base-url", server.base_url(),
                              "--cache-dir", cache},
                             dir, kind + "-submit", server.env());
    REQUIRE_MESSAGE(submit.status == 0, submit.err);
    const json job = read_json(dir / (kind + "-out.jsonl.batch.json"));
    CHECK(job["user"]["url"] == "/v1/" + kind);
    outcome fetched = run_cli({"batch", "fetch", "-o", out.string(), "--poll-seconds", "0.05"}, dir, kind + "-fetch",
                              server.env());
    REQUIRE_MESSAGE(fetched.status == 0, fetched.err);
    const auto lines = json_lines(out);
    REQUIRE(lines.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      const json& l = lines[i];
      CHECK(l["error"].is_null());
      const json& body = l["response"]["body"];
      if (kind == "responses") {
        CHECK(l["custom_id"] == "r" + std::to_string(i));
        CHECK(body["object"] == "response");
        CHECK(body["model"] == "o3-pro");
        CHECK(l["usage"]["reasoning_tokens"] == 16);
      } else {
        CHECK(l["custom_id"] == "e" + std::to_string(i));
        CHECK(body["object"] == "list");
        REQUIRE(body["data"][0]["embedding"].is_array());
        CHECK(body["data"][0]["embedding"].size() == 16);
        if (i == 2) CHECK(body["data"][0]["embedding"] == lines[0]["response"]["body"]["data"][0]["embedding"]);
      }
    }
    // The same file online: every answer from the cache the batch filled.
    outcome rerun = run_cli({"run", in, "-o", (dir / (kind + "-rerun.jsonl")).string(), "--cache-dir", cache},
                            dir, kind + "-rerun", server.env());
    CHECK_MESSAGE(rerun.status == 0, rerun.err);
    CHECK(rerun.err.find("from cache   3") != std::string::npos);
  }
  CHECK(server.stop() == 0);  // nothing online: the batches answered, then the cache
  // 3 responses lines, 2 embedding lines (text 0 twice is sent once).
  CHECK(batch_counts(server) == std::pair<long, long>{2, 5});
}

TEST_CASE("batch: SIGKILLed while waiting, a fresh process fetches the stored job; no second batch") {
  for (const auto& p : batch_providers) {
    CAPTURE(p.name);
    const fs::path dir = scratch("batch_kill_" + p.name);
    constexpr std::size_t total = 8;
    write_text(dir / "in.jsonl", plain_input(total));
    const fs::path out = dir / "out.jsonl";
    const fs::path state = dir / "out.jsonl.batch.json";
    // Long enough that the batch is still running when the kill comes (the first poll follows
    // the submit at once), short enough to keep the test quick.
    std::vector<std::string> mock_flags = {"--batch-delay-ms", "2000"};
    if (!p.env.empty()) mock_flags.insert(mock_flags.end(), {"--api-key-env", p.env.begin()->first});
    mock server(dir, mock_flags, p.env);
    // One process that submits, then (exec: the same pid) waits.
    auto quote = [](const std::string& a) { return "'" + a + "'"; };
    std::string extra;
    for (const auto& e : p.extra) extra += " " + quote(e);
    const std::string script = quote(binary) + " batch submit " + quote((dir / "in.jsonl").string()) + " -o " +
                               quote(out.string()) + " --provider " + p.provider + " --model " + p.model +
                               " --base-url " + quote(p.base(server)) + extra + " --cache-dir " +
                               quote((dir / "cache").string()) + " && exec " + quote(binary) + " batch wait -o " +
                               quote(out.string()) + " --poll-seconds 0.05";
    child first = spawn_program("/bin/sh", {"-c", script}, dir, "first", p.env);
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    // The wait's first progress line: the job file is written and the batch is being polled.
    while (slurp(first.err).find(" done, ") == std::string::npos && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(10ms);
    kill(first.pid, SIGKILL);
    CHECK(wait_for(first) == 128 + SIGKILL);
    const std::string progress = slurp(first.err);
    REQUIRE_MESSAGE(progress.find(" done, ") != std::string::npos, progress);
    CHECK_MESSAGE(progress.find("completed") == std::string::npos, progress);  // killed mid-wait
    CHECK_FALSE(fs::exists(out));
    REQUIRE(fs::exists(state));
    const json job = read_json(state);
    REQUIRE(job["parts"].size() == 1);

    outcome fetched = run_cli({"batch", "fetch", "-o", out.string(), "--poll-seconds", "0.05"}, dir, "fetch", p.env);
    REQUIRE_MESSAGE(fetched.status == 0, fetched.err);
    CHECK(fetched.out.find("wrote 8 results") != std::string::npos);
    CHECK(read_json(state)["parts"][0]["status"] == "completed");  // fetch saved the final status
    const auto lines = json_lines(out);
    CHECK(lines.size() == total);
    std::multiset<std::string> ids;
    for (const json& l : lines) {
      const std::string id = l["id"].get<std::string>();
      ids.insert(id);
      CHECK(l["text"] == "Mock answer to: question " + id.substr(1));
      CHECK(l["error"].is_null());
    }
    for (std::size_t i = 0; i < total; ++i) CHECK(ids.count("q" + std::to_string(i)) == 1);
    CHECK(server.stop() == 0);
    CHECK(batch_counts(server) == std::pair<long, long>{1, static_cast<long>(total)});
  }
}

TEST_CASE("run --provider azure: v1 and classic routes over HTTP and HTTPS, the key in api-key; a filtered prompt is "
          "content_filtered; --header and --secret-header reach a gateway that wants them") {
  const fs::path dir = scratch("azure");
  write_text(dir / "in.jsonl",
             R"({"id":"a","prompt":"hello azure"})"
             "\n"
             R"({"id":"b","prompt":"bad [[azure:filter-prompt]]"})"
             "\n"
             R"({"id":"c","prompt":"cut [[azure:filter-completion]]"})"
             "\n");
  const std::map<std::string, std::string> keys = {{"AZURE_OPENAI_API_KEY", "azure-cli-key-0a1b2c3d4e5f6a7b8c9d"},
                                                   {"GATEWAY_API_KEY", "gw-cli-secret-9f8e7d6c5b4a3f2e1d0c"}};
  mock server(dir,
              {"--tls-dir", (dir / "pki").string(), "--api-key-env", "AZURE_OPENAI_API_KEY", "--require-header-env",
               "X-Gateway-Key: GATEWAY_API_KEY", "--log-requests", (dir / "mock-requests.jsonl").string()},
              keys);
  const std::string ca = (dir / "pki" / "ca.pem").string();
  const std::string base = server.https_base_url();
  const std::string endpoint = base.substr(0, base.size() - 3);  // the mock's origin: Azure's endpoint
  for (const std::string version : {"", "2024-10-21"}) {
    CAPTURE(version);
    std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                     "--provider", "azure", "--base-url", endpoint, "--model", "gpt4o-deploy",
                                     "--ca-cert", ca, "--cache-dir", (dir / "cache").string(), "--max-retries", "2",
                                     "--header", "X-Org: acme", "--secret-header", "X-Gateway-Key: GATEWAY_API_KEY",
                                     "--namespace", "ns-" + version};
    if (!version.empty()) args.insert(args.end(), {"--api-version", version});
    outcome o = run_cli(args, dir, "azure-" + version, keys);
    CHECK_MESSAGE(o.status == 1, o.err);  // b failed
    std::map<std::string, json> by_id;
    for (const json& l : json_lines(dir / "out.jsonl")) by_id[l["id"].get<std::string>()] = l;
    REQUIRE(by_id.size() == 3);
    CHECK(by_id["a"]["error"].is_null());
    CHECK(by_id["a"]["text"] == "Mock answer to: hello azure");
    CHECK(by_id["b"]["error"]["code"] == "content_filtered");
    CHECK(by_id["b"]["error"]["attempts"] == 1);  // not retried
    CHECK(by_id["b"]["error"]["message"].get<std::string>().find("filtered: violence high") != std::string::npos);
    CHECK(by_id["c"]["error"].is_null());
    CHECK(by_id["c"]["finish_reason"] == "content_filter");
  }
  // Without the gateway's header every request is refused by it.
  outcome refused = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "refused.jsonl").string(), "--provider",
                             "azure", "--base-url", endpoint, "--model", "gpt4o-deploy", "--ca-cert", ca, "--no-cache",
                             "--max-retries", "0"},
                            dir, "no-gateway-header", keys);
  CHECK(refused.status == 1);
  for (const json& l : json_lines(dir / "refused.jsonl")) CHECK(l["error"]["provider_code"] == "gateway_header");
  // What the mock saw: both schemes' paths, never a key (check_no_secret_written covers the files).
  const std::string log = slurp(dir / "mock-requests.jsonl");
  CHECK(log.find("/openai/v1/chat/completions") != std::string::npos);
  CHECK(log.find("/openai/deployments/gpt4o-deploy/chat/completions") != std::string::npos);

  // Usage errors: no key, a secret header whose variable is unset, a bad header, --api-version elsewhere.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--provider", "azure", "--base-url", endpoint, "--model", "d"}, "AZURE_OPENAI_API_KEY is not set"},
      {{"--provider", "azure", "--model", "d"}, "AZURE_OPENAI_ENDPOINT"},
      {{"--model", "m", "--base-url", base, "--header", "no colon"}, "--header 'no colon': expected 'Name: value'"},
      {{"--model", "m", "--base-url", base, "--header", "Bad Name: v"}, "'Bad Name' is not an HTTP token"},
      {{"--model", "m", "--base-url", base, "--secret-header", "X-Key: UNSET_VARIABLE_FOR_TEST"},
       "'UNSET_VARIABLE_FOR_TEST' is not set"},
      {{"--model", "m", "--base-url", base, "--api-version", "2024-10-21"}, "--api-version is for --provider azure only"},
      {{"--model", "m", "--base-url", base, "--prompt-cache-ttl", "2h"}, "--prompt-cache-ttl must be 5m or 1h"},
  };
  for (const auto& [extra, said] : bad) {
    CAPTURE(said);
    std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "bad.jsonl").string(),
                                     "--no-cache", "--ca-cert", ca};
    args.insert(args.end(), extra.begin(), extra.end());
    outcome o = run_cli(args, dir, "bad", {});
    CHECK(o.status == 2);
    CHECK_MESSAGE(o.err.find(said) != std::string::npos, o.err);
  }
}

TEST_CASE("run --provider PRESET: each OpenAI-compatible host's key variable and URL; --base-url reaches the mock") {
  const fs::path dir = scratch("presets");
  write_text(dir / "in.jsonl", plain_input(2));
  mock server(dir);
  const std::vector<std::pair<std::string, std::string>> presets = {
      {"openrouter", "OPENROUTER_API_KEY"}, {"mistral", "MISTRAL_API_KEY"},       {"deepseek", "DEEPSEEK_API_KEY"},
      {"xai", "XAI_API_KEY"},               {"fireworks", "FIREWORKS_API_KEY"},   {"groq", "GROQ_API_KEY"},
      {"together", "TOGETHER_API_KEY"},     {"cerebras", "CEREBRAS_API_KEY"}};
  for (const auto& [name, variable] : presets) {
    CAPTURE(name);
    // The host's own URL needs its key: exit 2 naming the variable, nothing sent.
    outcome missing = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--provider",
                               name, "--model", "m", "--no-cache"},
                              dir, name + "-missing");
    CHECK(missing.status == 2);
    CHECK_MESSAGE(missing.err.find(variable + " is not set") != std::string::npos, missing.err);
    // Another URL (a gateway, the mock) takes the key if set.
    outcome ok = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--provider", name,
                          "--model", "m", "--no-cache", "--base-url", server.base_url()},
                         dir, name, {{variable, "key-for-" + name + "-0123456789"}});
    CHECK_MESSAGE(ok.status == 0, ok.err);
    CHECK(json_lines(dir / "out.jsonl").size() == 2);
  }
  outcome unknown = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(), "--provider",
                             "nope", "--model", "m"},
                            dir, "unknown");
  CHECK(unknown.status == 2);
  CHECK(unknown.err.find("unknown provider 'nope' (openai, azure, anthropic, bedrock, vertex, gemini, openrouter, "
                         "mistral, deepseek, xai, fireworks") != std::string::npos);
  CHECK(server.stop() == 16);
}

TEST_CASE("run --cache-system-prompt: 100 lines sharing a system prompt write it to Claude's prompt cache once and "
          "read it 99 times; the summary prices that split; a rerun without the flag replays from the cache") {
  const fs::path dir = scratch("prompt-cache");
  const std::string shared(6000, 'y');  // 1,500 tokens by the mock's estimate
  std::string in;
  for (int i = 0; i < 100; ++i)
    in += json{{"id", "q" + std::to_string(i)}, {"system", shared}, {"prompt", "question " + std::to_string(i)}}.dump() +
          "\n";
  write_text(dir / "in.jsonl", in);
  mock server(dir);
  const fs::path summary = dir / "summary.json";
  std::vector<std::string> args = {"run", (dir / "in.jsonl").string(), "-o", (dir / "out.jsonl").string(),
                                   "--provider", "anthropic", "--model", "claude-sonnet-4-5", "--base-url",
                                   server.origin(), "--cache-dir", (dir / "cache").string(), "--concurrency", "1",
                                   "--max-tokens", "20", "--summary-json", summary.string()};
  std::vector<std::string> marked = args;
  marked.push_back("--cache-system-prompt");
  outcome first = run_cli(marked, dir, "marked");
  REQUIRE_MESSAGE(first.status == 0, first.err);
  std::size_t writes = 0, reads = 0;
  for (const json& l : json_lines(dir / "out.jsonl")) {
    // The first line sent writes the prefix, every later one reads it.
    const bool wrote = l["usage"]["cache_write_tokens"] != 0;
    CHECK(l["usage"]["cache_write_tokens"] == (wrote ? 1500 : 0));
    CHECK(l["usage"]["cached_input_tokens"] == (wrote ? 0 : 1500));
    writes += l["usage"]["cache_write_tokens"].get<std::size_t>();
    reads += l["usage"]["cached_input_tokens"].get<std::size_t>();
  }
  CHECK(writes == 1500);
  CHECK(reads == 99 * 1500);
  CHECK_MESSAGE(first.err.find("written to the cache 1500") != std::string::npos, first.err);
  const json s = read_json(summary);
  const json& t = s["cost"]["tokens"];
  CHECK(t["cache_write"] == 1500);
  CHECK(t["cached_input"] == 99 * 1500);
  // claude-sonnet-4-5: $3 input, $3.75 cache writes, $0.30 cache reads, $15 output per million.
  const double uncached = t["input"].get<double>() - t["cached_input"].get<double>() - t["cache_write"].get<double>();
  const double expected = (uncached * 3 + t["cache_write"].get<double>() * 3.75 + t["cached_input"].get<double>() * 0.3 +
                           t["output"].get<double>() * 15) /
                          1e6;
  CHECK(s["cost"]["actual_usd"].get<double>() == doctest::Approx(expected));

  // The marks are not part of the request hash: the same lines unmarked come from the cache.
  outcome again = run_cli(args, dir, "unmarked");
  REQUIRE_MESSAGE(again.status == 0, again.err);
  CHECK(read_json(summary)["from_cache"] == 100);
  CHECK(server.stop() == 100);
}

TEST_CASE("report: a run with faults and a rate limit; the events hold every request and no prompt; the page's numbers match the summary, in chromium") {
  const fs::path dir = scratch("report");
  constexpr std::size_t total = 400;
  write_text(dir / "in.jsonl", plain_input(total));
  write_text(dir / "prices.json", R"({"models": {"test-model": {"input": 1.5, "output": 6}}})");
  // A fifth of the attempts fail: with one retry, about 4% of the requests fail twice.
  mock server(dir, {"--fail-429", "0.1", "--fail-500", "0.1", "--fail-429-retry-after-ms", "40", "--latency-ms", "2",
                    "--latency-jitter-ms", "6", "--seed", "11"});
  const fs::path out = dir / "out.jsonl", summary = dir / "summary.json", page = dir / "report.html";
  // --rpm 24000: 400 a second, so the run is paced for about a second.
  outcome r = run_cli({"run", (dir / "in.jsonl").string(), "-o", out.string(), "--model", "test-model",
                       "--concurrency", "16", "--rpm", "24000", "--max-retries", "1", "--cache-dir",
                       (dir / "cache").string(), "--prices", (dir / "prices.json").string(), "--summary-json",
                       summary.string(), "--report", page.string()},
                      dir, "run", server.env());
  CHECK_MESSAGE((r.status == 0 || r.status == 1), r.err);
  const json s = read_json(summary);
  MESSAGE("succeeded " << s["succeeded"] << ", failed " << s["failed"] << ", retries " << s["retries"]);
  REQUIRE(s["failed"].get<int>() > 0);  // one retry only: some requests fail twice
  REQUIRE(s["retries"].get<int>() > 0);

  // The events: a run line, one line per request, an end line; ids, times and codes only.
  const fs::path events = dir / "out.jsonl.events.jsonl";
  const std::string events_text = slurp(events);
  CHECK(events_text.find("question ") == std::string::npos);  // no prompt
  CHECK(events_text.find("Mock answer") == std::string::npos);  // no answer
  REQUIRE(events_of(events, "run").size() == 1);
  REQUIRE(events_of(events, "end").size() == 1);
  const auto requests = events_of(events, "request");
  REQUIRE(requests.size() == total);
  std::set<std::string> ids;
  std::size_t retried = 0, attempts_429 = 0, attempts_500 = 0, failed = 0;
  std::vector<double> latencies;
  for (const json& e : requests) {
    ids.insert(e["id"].get<std::string>());
    CHECK(e["start"].get<std::int64_t>() <= e["end"].get<std::int64_t>());
    REQUIRE(e.contains("attempts"));
    for (const json& a : e["attempts"]) {
      CHECK(a["ready"].get<std::int64_t>() <= a["sent"].get<std::int64_t>());
      CHECK(a["sent"].get<std::int64_t>() <= a["end"].get<std::int64_t>());
      retried += a.contains("wait") ? 1 : 0;
      attempts_429 += a.value("status", 0) == 429 ? 1 : 0;
      attempts_500 += a.value("status", 0) == 500 ? 1 : 0;
    }
    if (e.contains("error")) {
      ++failed;
      CHECK(e["attempts"].size() == 2);
    }
    latencies.push_back(e["latency"].get<double>());
  }
  CHECK(ids.size() == total);
  CHECK(failed == s["failed"].get<std::size_t>());
  CHECK(retried == s["retries"].get<std::size_t>());
  CHECK(attempts_429 > 0);
  CHECK(attempts_500 > 0);
  MESSAGE(attempts_429 << " attempts answered 429, " << attempts_500 << " answered 500");

  // The page: whole, standing alone, small.
  const std::string html = slurp(page);
  CHECK(html.size() < 2'000'000);
  CHECK(html.find("</html>") != std::string::npos);
  for (const char* outside : {"http://", "https://", "<link", "<script", "@import", "url("})
    CHECK_MESSAGE(html.find(outside) == std::string::npos, "the page reaches outside: " << outside);
  CHECK(html.find("question ") == std::string::npos);

  if (!chromium_or_skip("report: a run with faults and a rate limit; the events hold every request and no prompt; the page's numbers match the summary, in chromium"))
    return;
  // The check of the console catches a page that writes to it.
  write_text(dir / "noisy.html", "<!DOCTYPE html><html><body><script>console.error('noisy page')</script></body></html>");
  const rendered noisy = render(dir / "noisy.html", dir / "noisy.png", dir, "noisy");
  REQUIRE(noisy.console.size() == 2);  // once in each of the two renderings
  for (const auto& line : noisy.console) CHECK(line.find("noisy page") != std::string::npos);

  const rendered shot = render(page, dir / "report.png", dir, "report");
  CHECK_MESSAGE(shot.console.empty(), shot.console.front());
  CHECK(fs::file_size(dir / "report.png") > 20'000);
  // What the browser shows is what the summary says.
  const std::string& dom = shot.dom;
  CHECK(shown(dom, "h-requests") == with_commas(static_cast<std::int64_t>(total)));
  CHECK(shown(dom, "h-succeeded") == with_commas(s["succeeded"].get<std::int64_t>()));
  CHECK(shown(dom, "h-failed") == with_commas(s["failed"].get<std::int64_t>()));
  CHECK(shown(dom, "h-from-cache") == with_commas(s["from_cache"].get<std::int64_t>()));
  CHECK(shown(dom, "h-retries") == with_commas(s["retries"].get<std::int64_t>()));
  CHECK(shown(dom, "h-input-tokens") == with_commas(s["tokens"]["input_tokens"].get<std::int64_t>()));
  CHECK(shown(dom, "h-output-tokens") == with_commas(s["tokens"]["output_tokens"].get<std::int64_t>()));
  std::ostringstream wall, rate, cost;
  wall << std::fixed << std::setprecision(2) << s["wall_seconds"].get<double>() << " s";
  rate << std::fixed << std::setprecision(1) << s["requests_per_second"].get<double>() << "/s";
  cost << "$" << std::fixed << std::setprecision(s["cost"]["actual_usd"].get<double>() < 0.01 ? 6 : 4)
       << s["cost"]["actual_usd"].get<double>();
  CHECK(shown(dom, "h-wall") == wall.str());
  CHECK(shown(dom, "h-rate") == rate.str());
  CHECK(shown(dom, "h-cost") == cost.str());
  CHECK(shown(dom, "h-cost-as-if") == cost.str());  // nothing came from the cache
  CHECK(shown(dom, "failed-count") == std::to_string(failed));
  // The p50 latency, from the events themselves.
  CHECK(shown(dom, "lat-p50") == with_commas(static_cast<std::int64_t>(nearest_rank(latencies, 0.5))));
  CHECK(shown(dom, "lat-p99") == with_commas(static_cast<std::int64_t>(nearest_rank(latencies, 0.99))));
  // The configured limit is drawn, and every failed id is listed.
  CHECK(dom.find("configured limit (--rpm)") != std::string::npos);
  std::set<std::string> failed_ids, listed;
  for (const json& e : requests)
    if (e.contains("error")) failed_ids.insert(e["id"].get<std::string>());
  const std::regex ids_cell(R"(<td class="ids">([^<]*)</td>)");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), ids_cell); it != std::sregex_iterator(); ++it) {
    std::istringstream cell((*it)[1].str());
    std::string id;
    while (std::getline(cell, id, ',')) listed.insert(id.substr(id.find_first_not_of(' ')));
  }
  CHECK(listed == failed_ids);
  CHECK(server.stop() > 0);
}

TEST_CASE("report: several event files make one report; bad lines are named and skipped; bad options are named") {
  const fs::path dir = scratch("report-merge");
  write_text(dir / "in.jsonl", plain_input(60));
  mock server(dir);
  for (int k = 1; k <= 2; ++k) {
    outcome o = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / ("out" + std::to_string(k) + ".jsonl")).string(),
                         "--model", "m", "--shard", std::to_string(k) + "/2", "--cache-dir", (dir / "cache").string()},
                        dir, "shard" + std::to_string(k), server.env());
    REQUIRE_MESSAGE(o.status == 0, o.err);
  }
  // A line cut short, as a crash leaves it.
  const std::size_t cut_line = lines_of(dir / "out2.jsonl.events.jsonl").size() + 1;
  std::ofstream(dir / "out2.jsonl.events.jsonl", std::ios::app) << R"({"type":"request","id":"q)";
  outcome rep = run_cli({"report", (dir / "out1.jsonl.events.jsonl").string(), (dir / "out2.jsonl.events.jsonl").string(),
                         "-o", (dir / "r.html").string()},
                        dir, "report");
  CHECK_MESSAGE(rep.status == 0, rep.err);
  CHECK_MESSAGE(rep.err.find("out2.jsonl.events.jsonl:" + std::to_string(cut_line) + ": not an event line") != std::string::npos, rep.err);
  CHECK(rep.err.find("60 requests (60 succeeded, 0 failed, 0 from the cache) over 2 runs") != std::string::npos);
  const std::string html = slurp(dir / "r.html");
  CHECK(shown(html, "h-requests") == "60");
  CHECK(html.find("data-runs=\"2\"") != std::string::npos);

  // A rerun of a finished run starts its events anew (like its output): all from the cache.
  outcome again = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "out1.jsonl").string(), "--model", "m",
                           "--shard", "1/2", "--cache-dir", (dir / "cache").string(), "--report",
                           (dir / "again.html").string()},
                          dir, "again", server.env());
  REQUIRE_MESSAGE(again.status == 0, again.err);
  CHECK(events_of(dir / "out1.jsonl.events.jsonl", "run").size() == 1);
  const std::string again_html = slurp(dir / "again.html");
  CHECK(shown(again_html, "h-from-cache") == shown(again_html, "h-requests"));

  // Hostile lines, each named by its line and skipped; the good ones still make the page.
  write_text(dir / "hostile.jsonl",
             std::string(R"({"type":"run","t":1700000000000,"concurrency":4})") + "\n" +
                 R"({"type":"request","id":"ok1","start":1700000000000,"end":1700000000100,"latency":100,"model":"m","input_tokens":3,"output_tokens":4})" + "\n" +
                 R"({"type":"request","id":"neg","start":-9223372036854775808,"end":9223372036854775807})" + "\n" +
                 R"({"type":"request","id":"big","start":1700000000000,"end":1700000000100,"input_tokens":1e300})" + "\n" +
                 R"({"type":"request","id":"str","start":"yesterday"})" + "\n" +
                 R"({"type":"request","id":"att","start":1700000000000,"end":1700000000100,"attempts":[{"ready":"x"}]})" + "\n" +
                 R"({"type":"request","id":"cost","start":1700000000000,"end":1700000000100,"cost":-1e308})" + "\n" +
                 R"({"type":"request"})" + "\n" + R"({"type":"end","wall_seconds":"long","interrupted":"no"})" + "\n" +
                 R"({"type":"run","concurrency":-5})" + "\n" + R"({"type":7})" + "\n" + "[1,2,3]\n" +
                 std::string("\x01\xff\xfe garbage\n"));
  outcome hostile = run_cli({"report", (dir / "hostile.jsonl").string(), "-o", (dir / "h.html").string()}, dir, "hostile");
  CHECK_MESSAGE(hostile.status == 0, hostile.err);
  for (int line = 3; line <= 13; ++line)
    CHECK_MESSAGE(hostile.err.find("hostile.jsonl:" + std::to_string(line) + ": ") != std::string::npos,
                  "line " << line << " not named: " << hostile.err);
  CHECK(hostile.err.find("1 requests (1 succeeded") != std::string::npos);
  CHECK(shown(slurp(dir / "h.html"), "h-input-tokens") == "3");

  CHECK(run_cli({"report", (dir / "missing.jsonl").string(), "-o", (dir / "x.html").string()}, dir, "missing").status == 2);
  outcome no_events = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "o.jsonl").string(), "--model", "m",
                               "--no-events", "--report", (dir / "x.html").string()},
                              dir, "no-events", server.env());
  CHECK(no_events.status == 2);
  CHECK(no_events.err.find("--report needs the events") != std::string::npos);
  outcome bad_dir = run_cli({"run", (dir / "in.jsonl").string(), "-o", (dir / "o.jsonl").string(), "--model", "m",
                             "--events", (dir / "nowhere" / "e.jsonl").string()},
                            dir, "bad-dir", server.env());
  CHECK(bad_dir.status == 2);
  CHECK(bad_dir.err.find("cannot open the events file") != std::string::npos);
  server.stop();
}

// ---- offline runners: batch export / import, --provider command ----

namespace {
// Is the process `pid` still there (and not a zombie)?
bool process_alive(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}
}  // namespace

TEST_CASE("batch export / import: a runner's results file with a stray id, a repeated id and a truncated last line; "
          "the good lines land in the cache and a run sends only the rest") {
  const fs::path dir = scratch("batch_export_import");
  write_text(dir / "in.jsonl", plain_input(6));
  const std::string in = (dir / "in.jsonl").string(), out = (dir / "out.jsonl").string();
  const std::string cache = (dir / "cache").string();
  mock server(dir);
  // No key is needed to export: nothing is sent.
  outcome exported = run_cli({"batch", "export", in, "-o", out, "--model", "m", "--base-url", server.base_url(),
                              "--cache-dir", cache},
                             dir, "export");
  REQUIRE_MESSAGE(exported.status == 0, exported.err);
  const fs::path requests = dir / "out.jsonl.requests.jsonl";
  CHECK(exported.out.find("wrote 6 requests to " + requests.string()) != std::string::npos);
  const auto lines = json_lines(requests);
  REQUIRE(lines.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(lines[i]["custom_id"] == "request-" + std::to_string(i));
    CHECK(lines[i]["method"] == "POST");
    CHECK(lines[i]["url"] == "/v1/chat/completions");
    CHECK(lines[i]["body"]["model"] == "m");
    CHECK(lines[i]["body"]["messages"][0]["content"] == "question " + std::to_string(i));
  }
  const json job = read_json(dir / "out.jsonl.batch.json");
  CHECK(job["offline"] == true);
  // fetch and status refuse an exported job, naming import.
  outcome wrong = run_cli({"batch", "fetch", "-o", out}, dir, "wrong");
  CHECK(wrong.status == 2);
  CHECK(wrong.err.find("batch import") != std::string::npos);

  // A runner (the mock's stand-in for vLLM's run-batch, a real process) answers them all.
  const fs::path results = dir / "results.jsonl";
  outcome ran = run_cli({"mock", "run-batch", "-i", requests.string(), "-o", results.string()}, dir, "runner");
  REQUIRE_MESSAGE(ran.status == 0, ran.err);
  std::vector<std::string> res = lines_of(results);
  REQUIRE(res.size() == 6);
  // Damage it: line 6 an id the job does not have, line 7 request-1 again (another text), and
  // the last line (request-5) cut in half with no newline.
  json stray = json::parse(res[0]);
  stray["custom_id"] = "request-99";
  json again = json::parse(res[1]);
  again["response"]["body"]["choices"][0]["message"]["content"] = "a second answer";
  std::string damaged;
  for (std::size_t i = 0; i < 5; ++i) damaged += res[i] + "\n";
  damaged += stray.dump() + "\n" + again.dump() + "\n" + res[5].substr(0, res[5].size() / 2);
  write_text(results, damaged);

  outcome imported = run_cli({"batch", "import", results.string(), "-o", out}, dir, "import");
  CHECK_MESSAGE(imported.status == 1, imported.err);  // lines left out and a request unanswered
  const std::string where = "requests-engine batch: " + results.string() + ": line ";
  CHECK(imported.err.find(where + "6: custom_id \"request-99\" is not a request of this job") != std::string::npos);
  CHECK(imported.err.find(where + "7: custom_id \"request-1\" again (first on line 2): this line is left out") !=
        std::string::npos);
  CHECK(imported.err.find(where + "8: not a JSON object: the file ends inside this line (cut short?)") !=
        std::string::npos);
  CHECK(imported.out.find("8 lines, 5 requests answered, 3 lines left out, 1 requests with no line") !=
        std::string::npos);
  const auto got = json_lines(out);
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(got[i]["id"] == "q" + std::to_string(i));
    CHECK(got[i]["error"].is_null());
    CHECK(got[i]["text"] == "Mock answer to: question " + std::to_string(i));  // request-1: the first line's
    CHECK(got[i]["request_hash"] == job["hashes"][i]);
  }
  CHECK(got[5]["id"] == "q5");
  CHECK(got[5]["error"]["message"].get<std::string>().find("has no line for this request") != std::string::npos);

  // The imported answers are the online ones: a run against the same server sends only q5.
  outcome online = run_cli({"run", in, "-o", (dir / "run.jsonl").string(), "--model", "m", "--base-url",
                            server.base_url(), "--cache-dir", cache},
                           dir, "run");
  CHECK_MESSAGE(online.status == 0, online.err);
  const auto run_lines = by_string_id(dir / "run.jsonl");
  REQUIRE(run_lines.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(run_lines.at("q" + std::to_string(i))["from_cache"] == (i < 5));
  CHECK(server.stop() == 1);

  // Anthropic has no offline runner; an import without a job is named.
  outcome anthropic = run_cli({"batch", "export", in, "-o", (dir / "a.jsonl").string(), "--provider", "anthropic",
                               "--model", "claude-opus-4-1"},
                              dir, "anthropic");
  CHECK(anthropic.status == 2);
  CHECK(anthropic.err.find("--provider openai, azure or command") != std::string::npos);
  outcome nojob = run_cli({"batch", "import", results.string(), "-o", (dir / "none.jsonl").string()}, dir, "nojob");
  CHECK(nojob.status == 2);
  CHECK(nojob.err.find("cannot read the batch job file") != std::string::npos);
}

TEST_CASE("batch --provider command: a runner in its own process; a crash leaves the rest failed with its stderr; "
          "a rerun sends only those; SIGKILL while waiting; cancel") {
  const fs::path dir = scratch("batch_command");
  write_text(dir / "in.jsonl", plain_input(5) + R"({"id":"bad","prompt":"question 5 [fail]"})" "\n");
  const std::string in = (dir / "in.jsonl").string(), out = (dir / "out.jsonl").string();
  const std::string cache = (dir / "cache").string();
  const std::string runner = binary + " mock run-batch -i {input} -o {output} --line-delay-ms 150";
  auto submit = [&](const std::string& command, const std::string& tag, const std::string& output) {
    return run_cli({"batch", "submit", in, "-o", output, "--provider", "command", "--runner", command, "--model", "m",
                    "--cache-dir", cache},
                   dir, tag);
  };
  const std::vector<std::string> poll = {"--poll-seconds", "0.05"};
  auto cmd = [&](const std::string& action, const std::string& output) {
    std::vector<std::string> a = {"batch", action, "-o", output};
    a.insert(a.end(), poll.begin(), poll.end());
    return a;
  };

  // Usage: the runner must name both files.
  outcome no_output = submit("cat {input}", "no-output", out);
  CHECK(no_output.status == 2);
  CHECK(no_output.err.find("--runner must name {input}") != std::string::npos);

  // 1. The runner crashes after 3 lines with exit status 3.
  outcome first = submit(runner + " --stop-after 3 --exit-code 3", "submit1", out);
  REQUIRE_MESSAGE(first.status == 0, first.err);
  const json job = read_json(dir / "out.jsonl.batch.json");
  const long pid = job["user"]["runner"]["pid"].get<long>();
  CHECK(pid > 0);
  CHECK(job["parts"][0]["status"] == "in_progress");
  CHECK(lines_of(dir / "out.jsonl.runner" / "requests.jsonl").size() == 6);
  outcome status = run_cli(cmd("status", out), dir, "status1");
  CHECK(status.status == 0);
  CHECK(status.out.find("in_progress") != std::string::npos);  // 3 lines at 150 ms: still running
  outcome fetched = run_cli(cmd("fetch", out), dir, "fetch1");
  CHECK_MESSAGE(fetched.status == 1, fetched.err);
  CHECK(fetched.err.find("/6 done") != std::string::npos);  // progress while it ran
  auto got = json_lines(out);
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < 3; ++i) CHECK(got[i]["text"] == "Mock answer to: question " + std::to_string(i));
  for (std::size_t i = 3; i < 6; ++i) {
    CAPTURE(i);
    const std::string message = got[i]["error"]["message"].get<std::string>();
    CHECK(got[i]["error"]["code"] == "server_error");
    CHECK(message.find("the runner exited with status 3") != std::string::npos);
    CHECK(message.find("CUDA out of memory (simulated)") != std::string::npos);  // its stderr's tail
  }
  CHECK_FALSE(process_alive(pid));
  outcome after = run_cli(cmd("status", out), dir, "status1b");
  CHECK(after.out.find("failed") != std::string::npos);
  CHECK(after.out.find("the runner exited with status 3: mock run-batch: stopping after 3 lines") != std::string::npos);

  // 2. A rerun to the same output (the job was fetched) gives the runner only the 3 missing
  // requests; the [fail] line comes back as the runner's error line.
  outcome second = submit(runner, "submit2", out);
  REQUIRE_MESSAGE(second.status == 0, second.err);
  CHECK(second.out.find("3 from the cache (not sent)") != std::string::npos);
  const auto sent = json_lines(dir / "out.jsonl.runner" / "requests.jsonl");
  REQUIRE(sent.size() == 3);
  CHECK(sent[0]["custom_id"] == "request-3");
  CHECK(sent[2]["custom_id"] == "request-5");
  // SIGKILL the waiting process; a new one picks the runner up by its pid and fetches.
  child waiting = spawn(cmd("wait", out), dir, "wait2");
  std::this_thread::sleep_for(150ms);
  kill(waiting.pid, SIGKILL);
  CHECK(wait_for(waiting) == 128 + SIGKILL);
  outcome fetched2 = run_cli(cmd("fetch", out), dir, "fetch2");
  CHECK_MESSAGE(fetched2.status == 1, fetched2.err);  // the [fail] line
  got = json_lines(out);
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(got[i]["error"].is_null());
    CHECK(got[i]["from_cache"] == (i < 3));
    CHECK(got[i]["text"] == "Mock answer to: question " + std::to_string(i));
  }
  CHECK(got[5]["id"] == "bad");
  CHECK(got[5]["error"]["http_status"] == 400);
  CHECK(got[5]["error"]["message"].get<std::string>().find("failed this line on purpose") != std::string::npos);

  // 3. Cancel: the runner's process group is stopped; unanswered requests come back cancelled.
  const std::string out3 = (dir / "slow.jsonl").string();
  write_text(dir / "in.jsonl", plain_input(4, 100));
  outcome third = submit(binary + " mock run-batch -i {input} -o {output} --line-delay-ms 5000", "submit3", out3);
  REQUIRE_MESSAGE(third.status == 0, third.err);
  const long pid3 = read_json(out3 + ".batch.json")["user"]["runner"]["pid"].get<long>();
  CHECK(process_alive(pid3));
  outcome cancelled = run_cli(cmd("cancel", out3), dir, "cancel3");
  CHECK_MESSAGE(cancelled.status == 0, cancelled.err);
  CHECK(cancelled.out.find("cancelled") != std::string::npos);
  for (int i = 0; i < 100 && process_alive(pid3); ++i) std::this_thread::sleep_for(20ms);
  CHECK_FALSE(process_alive(pid3));
  outcome fetched3 = run_cli(cmd("fetch", out3), dir, "fetch3");
  CHECK(fetched3.status == 1);
  got = json_lines(out3);
  REQUIRE(got.size() == 4);
  std::size_t cancelled_lines = 0;
  for (const auto& l : got) cancelled_lines += !l["error"].is_null() && l["error"]["code"] == "cancelled";
  CHECK(cancelled_lines >= 3);  // the runner may have written its first line before the cancel
}
