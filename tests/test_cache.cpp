// The disk cache against real HTTP and real processes: reruns, samples and namespaces,
// several processes on one folder, SIGKILL in the middle of writing, corruption, secrets.
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <iterator>
#include <sstream>

extern char** environ;

namespace re = requests_engine;
namespace mock = requests_engine_mock;
namespace fs = std::filesystem;

namespace {

const char* const cache_test_key = "sk-cache-test-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

std::string fresh_dir(const std::string& name) {
  std::string templ = (fs::temp_directory_path() / ("re-cache-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

std::unique_ptr<mock::server> cache_server(int latency_ms = 0) {
  mock::server_options o;
  o.api_key = cache_test_key;
  o.latency_ms = latency_ms;
  auto s = std::make_unique<mock::server>(o);
  s->start();
  return s;
}

// Answers carry a sequence number, so that distinct samples of one prompt differ.
void number_answers(mock::server& s, std::atomic<int>& seq) {
  s.set_on_chat([&seq](const httplib::Request& req, httplib::Response& res) {
    auto body = re::json::parse(req.body);
    int n = ++seq;
    re::json answer = {{"id", "chatcmpl-" + std::to_string(n)},
                       {"object", "chat.completion"},
                       {"created", 1700000000},
                       {"model", body["model"]},
                       {"choices", {{{"index", 0},
                                     {"message", {{"role", "assistant"}, {"content", "answer #" + std::to_string(n)}}},
                                     {"finish_reason", "stop"}}}},
                       {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 3}, {"total_tokens", 13}}}};
    res.status = 200;
    res.set_content(answer.dump(), "application/json");
    return true;
  });
}

std::vector<re::conversation> questions(std::size_t n, const std::string& prefix = "q") {
  std::vector<re::conversation> batch;
  for (std::size_t i = 0; i < n; ++i) batch.push_back(re::conversation().user(prefix + std::to_string(i)));
  return batch;
}

std::size_t count_entries(const std::string& dir) {
  return re::cache_maintenance::stats(dir).entries;
}

// Runs this test binary again as a child: `--child BASE_URL CACHE_DIR COUNT NAMESPACE`.
pid_t spawn_child(const std::string& base_url, const std::string& dir, std::size_t count, const std::string& ns) {
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {self, "--child", base_url, dir, std::to_string(count), ns};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) == 0);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

// The child's work: one batch through a disk-cached engine; exit 0 when every result is good.
int cache_child_main(int argc, char** argv) {
  if (argc < 6) return 2;
  re::openai_compatible provider(cache_test_key, argv[2], "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(8).cache_dir(argv[3]));
  auto results = engine.run(questions(std::stoul(argv[4])), re::params(), argv[5]);
  for (auto& r : results)
    if (!r || r->text.rfind("Mock answer to: q", 0) != 0) return 1;
  return 0;
}

TEST_CASE("request hash: canonical, secret-free, blind to fields that do not change the answer") {
  re::json id = {{"kind", "openai_chat"}, {"endpoint", "https://api.example/v1/chat/completions"}};
  re::json a = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"temperature", 0.5}};
  re::json b = re::json::parse(R"({"temperature":0.5,"messages":[{"content":"hi","role":"user"}],"model":"m"})");
  CHECK(re::request_hash(id, a) == re::request_hash(id, b));
  // It is SHA-256 of the documented canonical JSON.
  re::json canonical = {{"v", 1}, {"provider", id}, {"body", a}};
  CHECK(re::request_hash(id, a) == re::detail::sha256_hex(canonical.dump()));
  re::json c = a;
  c["user"] = "someone";
  c["stream"] = false;
  c["metadata"] = {{"run", "7"}};
  CHECK(re::request_hash(id, a) == re::request_hash(id, c));
  re::json d = a;
  d["temperature"] = 0.6;
  CHECK(re::request_hash(id, a) != re::request_hash(id, d));
  re::json other = {{"kind", "openai_chat"}, {"endpoint", "https://other.example/v1/chat/completions"}};
  CHECK(re::request_hash(id, a) != re::request_hash(other, a));
  // The key is not part of the identity: two keys, one cache.
  re::openai_compatible p1("sk-one", "https://api.example/v1", "m"), p2("sk-two", "https://api.example/v1", "m");
  CHECK(p1.cache_identity() == p2.cache_identity());
  CHECK(p1.cache_identity().dump().find("sk-") == std::string::npos);
}

TEST_CASE("the same batch twice: the second run makes no request and returns identical completions") {
  auto server = cache_server();
  const std::string dir = fresh_dir("rerun");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  std::vector<re::result<re::completion>> first;
  {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(8).cache_dir(dir));
    first = engine.run(questions(100));
    CHECK(engine.cache_statistics().writes == 100);
    CHECK(engine.cache_statistics().hits == 0);
  }
  CHECK(server->requests() == 100);
  CHECK(count_entries(dir) == 100);
  server->reset_stats();
  re::engine<re::openai_compatible> again(provider, re::options().concurrency(8).cache_dir(dir));
  auto second = again.run(questions(100));
  CHECK(server->requests() == 0);
  for (std::size_t i = 0; i < 100; ++i) {
    REQUIRE(first[i]);
    REQUIRE(second[i]);
    CHECK_FALSE(first[i]->from_cache);
    CHECK(second[i]->from_cache);
    CHECK(second[i]->text == first[i]->text);
    CHECK(second[i]->usage.input_tokens == first[i]->usage.input_tokens);
    CHECK(second[i]->usage.output_tokens == first[i]->usage.output_tokens);
    CHECK(second[i]->raw_body == first[i]->raw_body);
    CHECK(second[i]->raw() == first[i]->raw());
    CHECK(second[i]->request_hash == first[i]->request_hash);
    CHECK(second[i]->attempts == 0);
  }
  auto st = again.cache_statistics();
  CHECK(st.hits == 100);
  CHECK(st.misses == 0);
  CHECK(again.current_progress().cache_hits == 100);
}

TEST_CASE("samples: 1000 copies give 1000 answers, a rerun replays them, another namespace reuses them") {
  auto server = cache_server();
  std::atomic<int> seq{0};
  number_answers(*server, seq);
  const std::string dir = fresh_dir("samples");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  std::vector<re::conversation> copies(1000, re::conversation().user("Tell me a joke"));
  std::vector<std::string> texts;
  {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(16).cache_dir(dir));
    auto results = engine.run(copies, re::params().temperature(1.0), "experiment-1");
    std::set<std::string> distinct;
    for (auto& r : results) {
      REQUIRE(r);
      texts.push_back(r->text);
      distinct.insert(r->text);
    }
    CHECK(distinct.size() == 1000);
  }
  CHECK(server->requests() == 1000);
  CHECK(count_entries(dir) == 1000);
  server->reset_stats();
  {  // A rerun (a new engine, as a new process would have) replays exactly the same samples.
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(16).cache_dir(dir));
    auto results = engine.run(copies, re::params().temperature(1.0), "experiment-1");
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE(results[i]);
      CHECK(results[i]->text == texts[i]);
    }
  }
  {  // Another namespace starts again at sample 0: all stored, nothing asked.
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(16).cache_dir(dir));
    auto results = engine.run(copies, re::params().temperature(1.0), "experiment-2");
    for (auto& r : results) CHECK(r);
  }
  CHECK(server->requests() == 0);
  {  // Within one engine, the same namespace asked again goes on to samples 1000..1009.
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir));
    auto r1 = engine.run(std::vector<re::conversation>(5, copies[0]), re::params().temperature(1.0), "experiment-3");
    auto r2 = engine.run(std::vector<re::conversation>(5, copies[0]), re::params().temperature(1.0), "experiment-3");
    CHECK(server->requests() == 0);  // samples 0..9: all stored
    for (std::size_t i = 0; i < 5; ++i) {
      CHECK(r1[i]->text == texts[i]);
      CHECK(r2[i]->text == texts[5 + i]);
    }
  }
  {  // distinct_samples off: one answer per distinct request, sample 0.
    re::engine<re::openai_compatible> engine(provider,
                                              re::options().concurrency(16).cache_dir(dir).distinct_samples(false));
    auto results = engine.run(copies, re::params().temperature(1.0), "experiment-1");
    for (auto& r : results) CHECK(r->text == texts[0]);
  }
  CHECK(server->requests() == 0);
}

TEST_CASE("two processes running the same batch on one folder at once: no torn entry, every result valid") {
  auto server = cache_server(5);
  const std::string dir = fresh_dir("two-procs");
  pid_t a = spawn_child(server->base_url(), dir, 300, "shared");
  pid_t b = spawn_child(server->base_url(), dir, 300, "shared");
  CHECK(wait_exit(a) == 0);
  CHECK(wait_exit(b) == 0);
  auto report = re::cache_maintenance::verify(dir, false);
  CHECK(report.entries == 300);
  CHECK(report.bad == 0);
  CHECK(report.temporary == 0);
  for (auto& p : report.problems) MESSAGE(p);
}

TEST_CASE("a writer killed with SIGKILL mid-batch, several times: every entry parses, a rerun completes") {
  auto server = cache_server(20);
  const std::string dir = fresh_dir("sigkill");
  const std::size_t n = 600;
  for (int round = 0; round < 3; ++round) {
    // Killed once it has written something new (a fixed delay fails on a slow, loaded or
    // sanitized build, where the child may not have stored anything yet), a little later each round.
    const std::size_t before = count_entries(dir);
    pid_t child = spawn_child(server->base_url(), dir, n, "killed");
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count_entries(dir) <= before + static_cast<std::size_t>(20 * round) &&
           std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(kill(child, SIGKILL) == 0);
    CHECK(wait_exit(child) == 128 + SIGKILL);
    auto report = re::cache_maintenance::verify(dir, false);
    CHECK(report.bad == 0);
    for (auto& p : report.problems) MESSAGE(p);
    CHECK(report.entries < n);
  }
  const std::size_t stored = count_entries(dir);
  CHECK(stored > 0);
  server->reset_stats();
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(32).cache_dir(dir));
  auto results = engine.run(questions(n), re::params(), "killed");
  for (auto& r : results) REQUIRE(r);
  // Only what was missing went to the network (a killed child may have had answers in
  // flight that the server saw but that never reached the disk: those are asked again).
  CHECK(server->requests() == n - stored);
  CHECK(engine.cache_statistics().hits == stored);
  auto report = re::cache_maintenance::verify(dir, true, std::chrono::seconds(0));
  CHECK(report.entries == n);
  CHECK(report.bad == 0);
  CHECK(re::cache_maintenance::verify(dir, false).temporary == 0);
}

TEST_CASE("a hand-corrupted entry is a miss, reported once, and replaced") {
  auto server = cache_server();
  const std::string dir = fresh_dir("corrupt");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  std::vector<re::result<re::completion>> first;
  {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir));
    first = engine.run(questions(10));
  }
  re::disk_cache cache(dir);
  auto path_of = [&](std::size_t i) { return cache.path(re::cache_key{first[i]->request_hash, 0}); };
  {  // truncated
    auto size = fs::file_size(path_of(2));
    fs::resize_file(path_of(2), size - 10);
  }
  {  // garbage
    std::ofstream(path_of(5), std::ios::binary | std::ios::trunc) << "\x01garbage, not an entry";
  }
  {  // a valid entry under another entry's name
    fs::copy_file(path_of(8), path_of(7), fs::copy_options::overwrite_existing);
  }
  auto before = re::cache_maintenance::verify(dir, false);
  CHECK(before.bad == 3);
  server->reset_stats();
  std::vector<std::string> logs;
  std::mutex m;
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir).on_log(
                                                         [&](std::string_view l) {
                                                           std::lock_guard<std::mutex> lock(m);
                                                           logs.emplace_back(l);
                                                         }));
  auto results = engine.run(questions(10));
  for (std::size_t i = 0; i < 10; ++i) {
    REQUIRE(results[i]);
    CHECK(results[i]->text == first[i]->text);
    CHECK(results[i]->from_cache == (i != 2 && i != 5 && i != 7));
  }
  CHECK(server->requests() == 3);
  CHECK(engine.cache_statistics().corrupt == 3);
  CHECK(logs.size() == 3);
  for (auto& l : logs) CHECK(l.find("treated as missing") != std::string::npos);
  CHECK(re::cache_maintenance::verify(dir, false).bad == 0);  // the answers replaced them
}

TEST_CASE("no secret ever reaches the cache folder") {
  auto server = cache_server();
  const std::string dir = fresh_dir("secrets");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider,
                                            re::options().concurrency(4).cache_dir(dir).cache_requests(true));
  auto results = engine.run(questions(20));
  for (auto& r : results) REQUIRE(r);
  std::size_t files = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str().find(cache_test_key) == std::string::npos);
    CHECK(ss.str().find("Bearer") == std::string::npos);
    CHECK(ss.str().find("\"messages\"") != std::string::npos);  // the request was stored, as asked
  }
  CHECK(files == 20);
}

TEST_CASE("a cache folder that cannot be written is an error when the engine is built") {
  re::openai_compatible provider(cache_test_key, "http://127.0.0.1:9/v1", "mock-model");
  const std::string dir = fresh_dir("readonly");
  fs::create_directories(dir + "/blocked");
  std::ofstream(dir + "/file") << "x";
  using engine_t = re::engine<re::openai_compatible>;
  CHECK_THROWS_WITH_AS(engine_t(provider, re::options().cache_dir(dir + "/file/sub")),
                       doctest::Contains("cache directory"), std::runtime_error);
  if (geteuid() != 0) {  // root writes anywhere
    fs::permissions(dir + "/blocked", fs::perms::owner_read | fs::perms::owner_exec);
    CHECK_THROWS_WITH_AS(engine_t(provider, re::options().cache_dir(dir + "/blocked")),
                         doctest::Contains("not writable"), std::runtime_error);
  }
  // A missing folder is created.
  engine_t ok(provider, re::options().cache_dir(dir + "/new/deeper"));
  CHECK(fs::is_directory(dir + "/new/deeper"));
}

TEST_CASE("memory_cache and no_cache plug into the same engine") {
  auto server = cache_server();
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible, re::memory_cache> mem(provider, re::options().concurrency(4));
  (void)mem.run(questions(10));
  auto again = mem.run(questions(10), re::params(), "ns2");
  for (auto& r : again) CHECK(r->from_cache);
  CHECK(mem.cache().size() == 10);
  CHECK(server->requests() == 10);
  re::engine<re::openai_compatible, re::no_cache> none(provider, re::options().concurrency(4));
  (void)none.run(questions(10));
  (void)none.run(questions(10), re::params(), "ns2");
  CHECK(server->requests() == 30);
}

TEST_CASE("maintenance: stats by namespace, prune, export, stray temporary files") {
  auto server = cache_server();
  const std::string dir = fresh_dir("maint");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  {
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir));
    (void)engine.run(questions(6, "a"), re::params(), "alpha");
    (void)engine.run(questions(4, "b"), re::params(), "beta");
  }
  // A crash leaves a temporary file behind: it is ignored by readers and counted here.
  fs::create_directories(dir + "/ab");
  std::ofstream(dir + "/ab/.tmp-stray") << "partial";
  auto st = re::cache_maintenance::stats(dir);
  CHECK(st.entries == 10);
  CHECK(st.by_namespace["alpha"] == 6);
  CHECK(st.by_namespace["beta"] == 4);
  CHECK(st.temporary == 1);
  CHECK(st.bytes > 0);
  std::stringstream out;
  CHECK(re::cache_maintenance::export_jsonl(dir, out) == 10);
  std::string line;
  std::size_t lines = 0;
  while (std::getline(out, line)) {
    auto j = re::json::parse(line);
    CHECK(j["hash"].get<std::string>().size() == 64);
    CHECK(j["response"]["object"] == "chat.completion");
    ++lines;
  }
  CHECK(lines == 10);
  auto pruned = re::cache_maintenance::prune(dir, std::chrono::seconds(0), std::string("beta"), std::chrono::seconds(0));
  CHECK(pruned.removed == 4 + 1);  // beta's entries and the stray temporary file
  CHECK(count_entries(dir) == 6);
  CHECK_THROWS_AS((void)re::cache_maintenance::prune(dir, std::chrono::seconds(0), std::nullopt), std::invalid_argument);
  auto all_old = re::cache_maintenance::prune(dir, std::chrono::seconds(3600), std::nullopt);
  CHECK(all_old.removed == 0);  // nothing is an hour old

  // Two entries written two hours ago (their metadata says so): pruning by age takes exactly
  // those, and what is left still replays.
  std::vector<fs::path> entries;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") entries.push_back(e.path());
  REQUIRE(entries.size() == 6);
  std::sort(entries.begin(), entries.end());
  for (std::size_t i = 0; i < 2; ++i) {
    std::ifstream in(entries[i], std::ios::binary);
    std::string meta_line, body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto nl = body.find('\n');
    meta_line = body.substr(0, nl);
    body = body.substr(nl + 1);
    in.close();
    auto meta = re::json::parse(meta_line);
    meta["created"] = meta["created"].get<std::int64_t>() - 7200;
    std::ofstream(entries[i], std::ios::binary | std::ios::trunc) << meta.dump() << '\n' << body;
  }
  auto by_age = re::cache_maintenance::prune(dir, std::chrono::seconds(3600), std::nullopt);
  CHECK(by_age.removed == 2);
  CHECK(count_entries(dir) == 4);
  CHECK_FALSE(fs::exists(entries[0]));
  CHECK_FALSE(fs::exists(entries[1]));
  auto report = re::cache_maintenance::verify(dir, false);
  CHECK(report.bad == 0);
  server->reset_stats();
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir));
  auto again = engine.run(questions(6, "a"), re::params(), "alpha");
  for (auto& r : again) CHECK(r);
  CHECK(server->requests() == 2);  // the two pruned ones, asked again
}

TEST_CASE("errors are never stored: a failed request is asked again on the rerun") {
  mock::server_options o;
  o.api_key = cache_test_key;
  o.fail_500 = 1.0;  // every answer a 500
  auto failing = std::make_unique<mock::server>(o);
  failing->start();
  const std::string dir = fresh_dir("errors");
  {
    re::openai_compatible provider(cache_test_key, failing->base_url(), "mock-model");
    re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir).max_retries(0));
    auto results = engine.run(questions(5));
    REQUIRE(results.size() == 5);
    for (auto& r : results) {
      REQUIRE_FALSE(r);
      CHECK(r.error().code == re::error_code::server_error);
    }
    CHECK(engine.cache_statistics().writes == 0);
  }
  CHECK(count_entries(dir) == 0);
  auto server = cache_server();
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  re::engine<re::openai_compatible> engine(provider, re::options().concurrency(4).cache_dir(dir));
  auto results = engine.run(questions(5));
  for (auto& r : results) {
    REQUIRE(r);
    CHECK_FALSE(r->from_cache);
  }
  CHECK(server->requests() == 5);
  CHECK(count_entries(dir) == 5);
}

TEST_CASE("n samples fill n cache slots, and only the missing ones are asked for") {
  auto server = cache_server();
  const std::string dir = fresh_dir("n-slots");
  re::openai_compatible provider(cache_test_key, server->base_url(), "mock-model");
  const auto hello = re::conversation().user("hello");
  auto fresh_engine = [&] {
    return std::make_unique<re::engine<re::openai_compatible>>(provider, re::options().concurrency(2).cache_dir(dir));
  };
  std::vector<std::string> first_texts;
  {
    auto engine = fresh_engine();
    auto r = engine->run({hello}, re::params().n(3), "ns1");
    REQUIRE(r[0]);
    REQUIRE(r[0]->choices.size() == 3);
    for (auto& c : r[0]->choices) first_texts.push_back(c.text);
    CHECK(first_texts[0] == "Mock answer to: hello");
    CHECK(first_texts[1] != first_texts[0]);
    CHECK(server->requests() == 1);
    auto bodies = server->received_bodies();
    CHECK(bodies.back()["n"] == 3);
    // The answer's usage is the provider's own, whole.
    auto raw = r[0]->raw();
    CHECK(r[0]->usage.output_tokens == raw["usage"]["completion_tokens"].get<std::int64_t>());
    CHECK(r[0]->usage.input_tokens == raw["usage"]["prompt_tokens"].get<std::int64_t>());
  }
  CHECK(count_entries(dir) == 3);
  {  // The same request again in a new engine: all three from the cache, same order.
    auto engine = fresh_engine();
    auto r = engine->run({hello}, re::params().n(3), "ns1");
    REQUIRE(r[0]);
    CHECK(r[0]->from_cache);
    REQUIRE(r[0]->choices.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(r[0]->choices[i].text == first_texts[i]);
    CHECK(server->requests() == 1);
  }
  {  // n = 5: three stored, two asked for with n = 2.
    auto engine = fresh_engine();
    auto r = engine->run({hello}, re::params().n(5), "ns2");
    REQUIRE(r[0]);
    REQUIRE(r[0]->choices.size() == 5);
    for (std::size_t i = 0; i < 3; ++i) CHECK(r[0]->choices[i].text == first_texts[i]);
    CHECK(server->requests() == 2);
    CHECK(server->received_bodies().back()["n"] == 2);
  }
  CHECK(count_entries(dir) == 5);
  {  // Five single requests (no n) are the same five samples: nothing asked.
    auto engine = fresh_engine();
    auto r = engine->run(std::vector<re::conversation>(5, hello), re::params(), "ns3");
    for (std::size_t i = 0; i < 5; ++i) {
      REQUIRE(r[i]);
      CHECK(r[i]->from_cache);
      if (i < 3) CHECK(r[i]->text == first_texts[i]);
    }
    CHECK(server->requests() == 2);
  }
  CHECK(re::cache_maintenance::verify(dir, false).bad == 0);
}

TEST_CASE("split_choices shares usage out so that cached samples add up to the answer's usage") {
  re::openai_compatible p("k", "http://h/v1", "m");
  std::string body = R"({"id":"x","object":"chat.completion","model":"m","choices":[
    {"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"stop"},
    {"index":1,"message":{"role":"assistant","content":"b"},"finish_reason":"length"},
    {"index":2,"message":{"role":"assistant","content":"c"},"finish_reason":"stop"}],
    "usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":4}}})";
  auto parts = p.split_choices(body);
  REQUIRE(parts.size() == 3);
  std::int64_t in = 0, out = 0, cached = 0;
  std::vector<std::string> texts;
  for (auto& part : parts) {
    re::http_response r;
    r.status = 200;
    r.body = part;
    auto c = p.parse_response(r);
    REQUIRE(c);
    REQUIRE(c->choices.size() == 1);
    texts.push_back(c->text);
    in += c->usage.input_tokens;
    out += c->usage.output_tokens;
    cached += c->usage.cached_input_tokens;
  }
  CHECK(texts == std::vector<std::string>{"a", "b", "c"});
  CHECK(in == 10);
  CHECK(out == 8);
  CHECK(cached == 4);
  CHECK(p.split_choices("not json").empty());
}
