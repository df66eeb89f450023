// Provider batch APIs (OpenAI Batch, Anthropic Message Batches) against the mock's batch
// routes on loopback: the whole lifecycle, splitting, resume from the stored job, the cache.
#include <doctest/doctest.h>

#include "mock_server.hpp"
#include "requests_engine.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <thread>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace re = requests_engine;
namespace mock = requests_engine_mock;

namespace {

const char* const batch_key = "sk-batch-3c9e1a7f5b2d4e6080a1c3e5f7092b4d";

std::string batch_scratch(const std::string& name) {
  std::string templ = (std::filesystem::temp_directory_path() / ("re-batch-" + name + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

std::unique_ptr<mock::server> batch_server(int delay_ms = 60, bool expire = false, std::size_t max_requests = 0,
                                           mock::server_options so = {}) {
  so.api_key = batch_key;
  auto s = std::make_unique<mock::server>(std::move(so));
  mock::server::batch_mock_options bo;
  bo.delay_ms = delay_ms;
  bo.expire = expire;
  bo.max_requests = max_requests;
  s->set_batch_options(bo);
  s->start();
  return s;
}

std::vector<re::conversation> questions(std::size_t n) {
  std::vector<re::conversation> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back(re::conversation().user("question " + std::to_string(i)));
  return v;
}

re::options quick() {
  return re::options().max_retries(2).initial_backoff(std::chrono::milliseconds(5));
}

re::batch_settings fast() { return re::batch_settings().poll_interval(std::chrono::milliseconds(15)); }

// The client for either API against the mock, with a shared in-memory cache.
struct fixture {
  std::unique_ptr<mock::server> server;
  std::shared_ptr<re::memory_cache> cache = std::make_shared<re::memory_cache>();
  std::string api;
  std::string openai_model = "mock-model", anthropic_model = "claude-mock";  // the mock answers as either
  // "openai", "anthropic", or Azure OpenAI's Batch API: "azure-v1" or "azure-classic" (its
  // api-version routes), the mock's origin as the resource's endpoint, the key in api-key.
  re::openai_compatible openai_provider() const {
    if (api.rfind("azure", 0) != 0) return {batch_key, server->base_url(), openai_model};
    re::azure_openai_settings where;
    where.endpoint = server->origin();
    where.api_key = batch_key;
    if (api == "azure-classic") where.api_version = "2024-10-21";
    return re::openai_compatible::azure(openai_model, where);
  }
  re::anthropic anthropic_provider() const { return {batch_key, anthropic_model, server->origin()}; }
  re::batch_client client(re::batch_settings s = fast(), re::options o = quick()) const {
    re::batch_client c = api != "anthropic" ? re::batch_client(openai_provider(), o, s)
                                            : re::batch_client(anthropic_provider(), o, s);
    c.cache(cache);
    return c;
  }
  // An online run of the same conversations on an engine sharing the cache.
  std::vector<re::result<re::completion>> online(const std::vector<re::conversation>& batch,
                                                 const std::string& ns = std::string()) const {
    if (api != "anthropic") {
      re::basic_engine<re::openai_compatible, re::memory_cache> e(openai_provider(), quick().concurrency(2), cache);
      return e.run(batch, re::params(), ns);
    }
    re::basic_engine<re::anthropic, re::memory_cache> e(anthropic_provider(), quick().concurrency(2), cache);
    return e.run(batch, re::params(), ns);
  }
  std::size_t model_requests() const { return server->requests(); }
};

std::string errors_of(const std::vector<re::result<re::completion>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + "\n";
  return s;
}

}  // namespace

TEST_CASE("batch: the full lifecycle against the mock, for both APIs and Azure OpenAI's (v1 and classic routes)") {
  for (const std::string api : {"openai", "anthropic", "azure-v1", "azure-classic"}) {
    CAPTURE(api);
    fixture f;
    f.api = api;
    f.server = batch_server(120);
    auto batch = questions(6);
    batch[4] = re::conversation().user("question 4 [fail]");
    auto client = f.client();

    auto job = client.submit(batch, re::params(), "ns1");
    REQUIRE_MESSAGE(job, job.error().describe());
    CHECK(job->api == (api == "anthropic" ? "anthropic" : "openai"));
    CHECK(job->size() == 6);
    REQUIRE(job->parts.size() == 1);
    CHECK_FALSE(job->parts[0].id.empty());
    CHECK_FALSE(re::is_final(job->status()));
    CHECK(f.server->batches_created() == 1);

    // Fetching an unfinished job is refused, not a silent half result.
    auto early = client.fetch(*job);
    REQUIRE_FALSE(early);
    CHECK(early.error().code == re::error_code::invalid_request);

    std::vector<re::batch_status> seen;
    auto st = client.wait(*job, [&](const re::batch_job& j) { seen.push_back(j.status()); });
    REQUIRE_MESSAGE(st, st.error().describe());
    CHECK(*st == re::batch_status::completed);
    REQUIRE(seen.size() >= 2);  // at least one poll before the end, and the final one
    CHECK_FALSE(re::is_final(seen.front()));
    CHECK(seen.back() == re::batch_status::completed);
    CHECK(job->succeeded() == 5);
    CHECK(job->failed() == 1);

    auto results = client.fetch(*job);
    REQUIRE_MESSAGE(results, results.error().describe());
    REQUIRE(results->size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      CAPTURE(i);
      if (i == 4) {
        REQUIRE_FALSE((*results)[i]);
        CHECK((*results)[i].error().code == re::error_code::bad_request);
        CHECK((*results)[i].error().http_status == 400);
        CHECK((*results)[i].error().message.find("on purpose") != std::string::npos);
        continue;
      }
      REQUIRE_MESSAGE((*results)[i], errors_of(*results));
      CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
      CHECK((*results)[i]->usage.input_tokens == 3);
      CHECK((*results)[i]->usage.output_tokens == 7);
      CHECK((*results)[i]->model == (api != "anthropic" ? "mock-model" : "claude-mock"));
      CHECK_FALSE((*results)[i]->from_cache);
      CHECK((*results)[i]->request_hash == job->hashes[i]);
    }
    CHECK(f.model_requests() == 0);  // batch lines are not online requests
    CHECK(f.cache->size() == 5);     // every success, and only those

    // The batch report counts the answers and the failed line (dollars: see the priced test).
    auto batch_price = re::make_cost_report(*results, re::price_table::builtin(), true);
    CHECK(batch_price.batch);
    CHECK(batch_price.requests == 5);
    CHECK(batch_price.failed == 1);

    // An online rerun in the same namespace finds the 5 answers; only the failed one is sent.
    auto rerun = f.online(batch, "ns1");
    REQUIRE(rerun.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      REQUIRE_MESSAGE(rerun[i], errors_of(rerun));
      CHECK(rerun[i]->from_cache == (i != 4));
      if (i != 4) CHECK(rerun[i]->text == (*results)[i]->text);
    }
    CHECK(f.model_requests() == 1);
  }
}

TEST_CASE("batch: answers land in the disk cache; an online rerun makes zero requests") {
  for (const char* api : {"openai", "anthropic"}) {
    CAPTURE(api);
    auto server = batch_server(0);
    const std::string dir = batch_scratch("cache");
    auto o = quick().cache_dir(dir).concurrency(2);
    // Two identical conversations: samples 0 and 1, as an engine would number them.
    auto batch = questions(3);
    batch.push_back(batch[1]);
    std::vector<re::result<re::completion>> rerun;
    if (std::string(api) == "openai") {
      re::openai_compatible p(batch_key, server->base_url(), "mock-model");
      re::batch_client client(p, o, fast());
      auto results = client.run(batch);
      REQUIRE_MESSAGE(results, results.error().describe());
      CHECK(errors_of(*results).empty());
      re::engine<re::openai_compatible> engine(p, o);
      rerun = engine.run(batch);
    } else {
      re::anthropic p(batch_key, "claude-mock", server->origin());
      re::batch_client client(p, o, fast());
      auto results = client.run(batch);
      REQUIRE_MESSAGE(results, results.error().describe());
      CHECK(errors_of(*results).empty());
      re::engine<re::anthropic> engine(p, o);
      rerun = engine.run(batch);
    }
    REQUIRE(rerun.size() == 4);
    for (const auto& r : rerun) {
      REQUIRE_MESSAGE(r, errors_of(rerun));
      CHECK(r->from_cache);
    }
    CHECK(rerun[3]->text == "Mock answer to: question 1");
    CHECK(server->requests() == 0);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("batch: an expired batch gives the answers it has, and deadline_exceeded for the rest") {
  for (const std::string api : {"openai", "anthropic", "azure-v1", "azure-classic"}) {
    CAPTURE(api);
    fixture f;
    f.api = api;
    f.server = batch_server(0, /*expire=*/true);
    auto client = f.client();
    auto job = client.submit(questions(4));
    REQUIRE(job);
    auto st = client.wait(*job);
    REQUIRE(st);
    CHECK(*st == re::batch_status::expired);
    auto results = client.fetch(*job);
    REQUIRE(results);
    REQUIRE(results->size() == 4);
    CHECK((*results)[0]);
    CHECK((*results)[1]);
    for (std::size_t i : {2u, 3u}) {
      REQUIRE_FALSE((*results)[i]);
      CHECK((*results)[i].error().code == re::error_code::deadline_exceeded);
    }
    CHECK(f.cache->size() == 2);
  }
}

TEST_CASE("batch: a job over the per-batch limits is split, and comes back in input order") {
  for (const char* api : {"openai", "anthropic"}) {
    CAPTURE(api);
    fixture f;
    f.api = api;
    f.server = batch_server(0, false, /*mock's own limit=*/3);
    SUBCASE("by request count") {
      auto client = f.client(fast().limits({3, 1u << 20}));
      auto job = client.submit(questions(7));
      REQUIRE_MESSAGE(job, job.error().describe());
      REQUIRE(job->parts.size() == 3);
      CHECK(job->parts[0].first == 0);
      CHECK(job->parts[1].first == 3);
      CHECK(job->parts[2].first == 6);
      CHECK(f.server->batch_sizes() == std::vector<std::size_t>{3, 3, 1});
      REQUIRE(client.wait(*job));
      auto results = client.fetch(*job);
      REQUIRE(results);
      REQUIRE(results->size() == 7);
      for (std::size_t i = 0; i < 7; ++i) {
        REQUIRE_MESSAGE((*results)[i], errors_of(*results));
        CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
      }
    }
    SUBCASE("by size") {
      // One line is about 100-200 bytes: 450 bytes take two or three lines.
      auto client = f.client(fast().limits({1000, 450}));
      auto job = client.submit(questions(7));
      REQUIRE_MESSAGE(job, job.error().describe());
      CHECK(job->parts.size() >= 3);
      std::size_t next = 0;
      for (const auto& p : job->parts) {
        CHECK(p.first == next);
        CHECK(p.count <= 3);
        next += p.count;
      }
      CHECK(next == 7);
      REQUIRE(client.wait(*job));
      auto results = client.fetch(*job);
      REQUIRE(results);
      CHECK(errors_of(*results).empty());
    }
    SUBCASE("a single request over the size limit is refused before anything is sent") {
      auto client = f.client(fast().limits({1000, 20}));
      auto job = client.submit(questions(2));
      REQUIRE_FALSE(job);
      CHECK(job.error().code == re::error_code::invalid_request);
      CHECK(f.server->batch_calls() == 0);
    }
  }
}

TEST_CASE("batch: a new client resumes from the stored job file; the file holds no secret") {
  for (const char* api : {"openai", "anthropic"}) {
    CAPTURE(api);
    fixture f;
    f.api = api;
    f.server = batch_server(80);
    const std::string dir = batch_scratch("resume");
    const std::string state = dir + "/out.jsonl.batch.json";
    {
      auto first = f.client(fast().state_file(state).limits({2, 1u << 20}));
      auto job = first.submit(questions(5), re::params(), "resume-ns");
      REQUIRE(job);
      CHECK(job->parts.size() == 3);
    }  // the first client is gone, as after a crash
    std::ifstream in(state);
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str().find(batch_key) == std::string::npos);
    CHECK(text.str().find("resume-ns") != std::string::npos);

    re::batch_job job = re::batch_job::load(state);
    CHECK(job.parts.size() == 3);
    CHECK(job.name_space == "resume-ns");
    auto second = f.client();
    auto st = second.wait(job);
    REQUIRE_MESSAGE(st, st.error().describe());
    CHECK(*st == re::batch_status::completed);
    auto results = second.fetch(job);
    REQUIRE(results);
    REQUIRE(results->size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
      REQUIRE((*results)[i]);
      CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
    }
    // A job resumed with another provider is refused rather than mixed up.
    re::batch_client other = std::string(api) == "openai"
                                 ? re::batch_client(re::anthropic(batch_key, "claude-mock", f.server->origin()))
                                 : re::batch_client(re::openai_compatible(batch_key, f.server->base_url(), "mock-model"));
    auto refused = other.poll(job);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == re::error_code::invalid_request);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("batch: cancel, then every request comes back cancelled") {
  for (const char* api : {"openai", "anthropic"}) {
    CAPTURE(api);
    fixture f;
    f.api = api;
    f.server = batch_server(60000);
    auto client = f.client();
    auto job = client.submit(questions(3));
    REQUIRE(job);
    auto st = client.cancel(*job);
    REQUIRE(st);
    CHECK(*st == re::batch_status::cancelling);
    st = client.wait(*job);
    REQUIRE(st);
    CHECK(*st == re::batch_status::cancelled);
    auto results = client.fetch(*job);
    REQUIRE(results);
    for (const auto& r : *results) {
      REQUIRE_FALSE(r);
      CHECK(r.error().code == re::error_code::cancelled);
    }
    CHECK(f.cache->size() == 0);
  }
}

TEST_CASE("batch: wait() with a timeout, a wrong key, and a job file round trip") {
  fixture f;
  f.api = "openai";
  f.server = batch_server(60000);
  auto client = f.client();
  auto job = client.submit(questions(2));
  REQUIRE(job);
  auto st = client.wait(*job, {}, std::chrono::milliseconds(60));
  REQUIRE_FALSE(st);
  CHECK(st.error().code == re::error_code::deadline_exceeded);

  const re::batch_job back = re::batch_job::from_json(job->to_json());
  CHECK(back.to_json() == job->to_json());
  CHECK_THROWS_AS((void)re::batch_job::from_json(re::json{{"format", "other"}}), std::invalid_argument);

  const std::string wrong = "sk-wrong-0123456789abcdef0123";
  re::batch_client bad(re::openai_compatible(wrong, f.server->base_url(), "mock-model"), quick(), fast());
  auto refused = bad.submit(questions(1));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == re::error_code::authentication);
  CHECK(refused.error().describe().find(wrong) == std::string::npos);
}

TEST_CASE("batch: over HTTPS with the test CA, with control calls failing now and then (retried); OpenAI and "
          "Azure OpenAI (v1 and classic)") {
  const std::string dir = batch_scratch("pki");
  const auto pki = mock::make_test_pki(dir);
  for (const std::string api : {"openai", "azure-v1", "azure-classic"}) {
    CAPTURE(api);
    mock::server_options so;
    so.cert_path = pki.server_cert;
    so.key_path = pki.server_key;
    so.fail_500 = 0.25;
    so.fail_reset = 0.1;
    so.seed = 7;
    fixture f;
    f.api = api;
    f.server = batch_server(0, false, 0, so);
    REQUIRE(f.server->origin().rfind("https://", 0) == 0);
    re::batch_client client(f.openai_provider(), quick().max_retries(8).ca_cert_file(pki.ca_cert), fast());
    auto results = client.run(questions(3));
    REQUIRE_MESSAGE(results, results.error().describe());
    CHECK(errors_of(*results).empty());
    CHECK(f.server->responses_with_status(500) + f.server->responses_with_status(0) == 0);  // model routes untouched
    CHECK(f.server->batch_calls() > 5);  // upload, create, polls, download, and the retries
    f.server->stop();
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("batch: one params per conversation, and the caller's data saved with the job") {
  fixture f;
  f.api = "anthropic";
  f.server = batch_server(0);
  const std::string dir = batch_scratch("user");
  auto client = f.client(fast().state_file(dir + "/job.json").user_data({{"ids", {"a", "b"}}}));
  auto batch = questions(2);
  auto job = client.submit(batch, std::vector<re::params>{re::params().max_tokens(2), re::params()});
  REQUIRE_MESSAGE(job, job.error().describe());
  CHECK(re::batch_job::load(dir + "/job.json").user["ids"][1] == "b");
  REQUIRE(client.wait(*job));
  auto results = client.fetch(*job);
  REQUIRE(results);
  REQUIRE((*results)[0]);
  CHECK((*results)[0]->text == "Mock ans");  // cut at 2 tokens
  CHECK((*results)[0]->finish_reason == "max_tokens");
  REQUIRE((*results)[1]);
  CHECK((*results)[1]->text == "Mock answer to: question 1");
  // The cache keys follow the params: an online rerun with the same per-request params hits both.
  re::basic_engine<re::anthropic, re::memory_cache> e(f.anthropic_provider(), quick(), f.cache);
  auto cut = e.run({batch[0]}, re::params().max_tokens(2));
  REQUIRE(cut[0]);
  CHECK(cut[0]->from_cache);
  CHECK(f.server->requests() == 0);

  auto mismatch = client.submit(batch, std::vector<re::params>(1));
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().code == re::error_code::invalid_request);
  auto n2 = client.submit(batch, re::params().n(2));
  REQUIRE_FALSE(n2);
  CHECK(n2.error().message.find("params::n") != std::string::npos);
  std::filesystem::remove_all(dir);
}

namespace {

// The built-in rows used below, in dollars per million tokens (checked against the table, so
// that a price update fails here loudly rather than changing what "half" means).
struct priced_model {
  const char* api;
  const char* model;
  double input, output;
};
const priced_model priced_models[] = {{"openai", "gpt-4o-mini", 0.15, 0.6}, {"anthropic", "claude-haiku-4-5", 1, 5}};

// The mock's usage for "question N" (N one digit): 3 prompt tokens, 7 answer tokens.
constexpr double mock_input_tokens = 3, mock_output_tokens = 7;

double online_dollars(const priced_model& m, std::size_t requests) {
  return static_cast<double>(requests) * (mock_input_tokens * m.input + mock_output_tokens * m.output) / 1e6;
}

}  // namespace

TEST_CASE("batch: a priced model through the batch client is billed at half its online price") {
  for (const auto& m : priced_models) {
    CAPTURE(m.model);
    const auto row = re::price_table::builtin().find(m.model);
    REQUIRE(row);
    REQUIRE(row->input == m.input);
    REQUIRE(row->output == m.output);
    REQUIRE(row->batch_discount == 0.5);
    fixture f;
    f.api = m.api;
    (std::string(m.api) == "openai" ? f.openai_model : f.anthropic_model) = m.model;
    f.server = batch_server(0);
    auto batch = questions(5);
    batch[2] = re::conversation().user("question 2 [fail]");
    auto client = f.client();
    auto results = client.run(batch);
    REQUIRE_MESSAGE(results, results.error().describe());
    REQUIRE(results->size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
      CAPTURE(i);
      if (i == 2) {
        CHECK_FALSE((*results)[i]);
        continue;
      }
      REQUIRE_MESSAGE((*results)[i], errors_of(*results));
      CHECK((*results)[i]->model == m.model);
      CHECK((*results)[i]->usage.input_tokens == 3);
      CHECK((*results)[i]->usage.output_tokens == 7);
    }
    const auto batch_report = re::make_cost_report(*results, re::price_table::builtin(), true);
    const auto online_report = re::make_cost_report(*results, re::price_table::builtin(), false);
    // 4 answers; gpt-4o-mini: 4 x (3 x 0.15 + 7 x 0.6) / 1e6 = $0.0000186 online, $0.0000093 batch;
    // claude-haiku-4-5: 4 x (3 x 1 + 7 x 5) / 1e6 = $0.000152 online, $0.000076 batch.
    CHECK(batch_report.batch);
    CHECK(batch_report.complete());
    CHECK(batch_report.requests == 4);
    CHECK(batch_report.failed == 1);
    CHECK(batch_report.actual == doctest::Approx(0.5 * online_dollars(m, 4)).epsilon(1e-9));
    CHECK(batch_report.as_if == doctest::Approx(0.5 * online_dollars(m, 4)).epsilon(1e-9));
    CHECK(online_report.actual == doctest::Approx(online_dollars(m, 4)).epsilon(1e-9));
    REQUIRE(batch_report.models.size() == 1);
    CHECK(batch_report.models[0].priced_as == m.model);
    CHECK(batch_report.to_string().find("(batch prices)") != std::string::npos);
  }
  CHECK(online_dollars(priced_models[0], 4) == doctest::Approx(0.0000186));
  CHECK(online_dollars(priced_models[1], 4) == doctest::Approx(0.000152));
}

TEST_CASE("batch: requests already in the cache are not uploaded; fetch gives them from the cache, at $0") {
  for (const auto& m : priced_models) {
    CAPTURE(m.api);
    fixture f;
    f.api = m.api;
    (std::string(m.api) == "openai" ? f.openai_model : f.anthropic_model) = m.model;
    f.server = batch_server(0);
    const auto batch = questions(6);
    // Half the job answered online first: questions 0, 2 and 4 are in the cache.
    const std::vector<re::conversation> even = {batch[0], batch[2], batch[4]};
    auto online = f.online(even);
    REQUIRE(errors_of(online).empty());
    REQUIRE(f.model_requests() == 3);
    REQUIRE(f.cache->size() == 3);
    std::vector<std::string> entries_before;
    for (const auto& r : online) entries_before.push_back(*f.cache->load({r->request_hash, 0}));

    auto client = f.client();
    auto job = client.submit(batch);
    REQUIRE_MESSAGE(job, job.error().describe());
    CHECK(job->cached == std::vector<std::size_t>{0, 2, 4});
    REQUIRE(job->parts.size() == 1);
    CHECK(job->parts[0].first == 1);  // from the first uploaded request to the last
    CHECK(job->parts[0].count == 5);
    // The mock saw only the other half.
    CHECK(f.server->batch_prompts() ==
          std::vector<std::vector<std::string>>{{"question 1", "question 3", "question 5"}});
    CHECK(re::batch_job::from_json(job->to_json()).cached == job->cached);  // survives a restart

    REQUIRE(client.wait(*job));
    auto results = client.fetch(*job);
    REQUIRE_MESSAGE(results, results.error().describe());
    REQUIRE(results->size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      CAPTURE(i);
      REQUIRE_MESSAGE((*results)[i], errors_of(*results));
      CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
      CHECK((*results)[i]->from_cache == (i % 2 == 0));
      CHECK((*results)[i]->attempts == (i % 2 == 0 ? 0 : 1));
      CHECK((*results)[i]->request_hash == job->hashes[i]);
    }
    // The cached answers were not overwritten by the fetch.
    for (std::size_t k = 0; k < 3; ++k) CHECK(*f.cache->load({online[k]->request_hash, 0}) == entries_before[k]);
    CHECK(f.cache->size() == 6);
    // Only the 3 uploaded answers are paid for, at batch prices.
    const auto report = re::make_cost_report(*results, re::price_table::builtin(), true);
    CHECK(report.from_cache == 3);
    CHECK(report.actual == doctest::Approx(0.5 * online_dollars(m, 3)).epsilon(1e-9));
    CHECK(report.as_if == doctest::Approx(0.5 * online_dollars(m, 6)).epsilon(1e-9));

    // All cached now: no batch at all, completed at once, every answer from the cache.
    auto again = client.submit(batch);
    REQUIRE_MESSAGE(again, again.error().describe());
    CHECK(again->parts.empty());
    CHECK(again->cached.size() == 6);
    CHECK(again->status() == re::batch_status::completed);
    CHECK(f.server->batches_created() == 1);
    auto all = client.fetch(*again);
    REQUIRE(all);
    for (const auto& r : *all) {
      REQUIRE_MESSAGE(r, errors_of(*all));
      CHECK(r->from_cache);
    }
    CHECK(re::make_cost_report(*all, re::price_table::builtin(), true).actual == 0.0);

    // Fetched with a cache that lacks them: an error for each, never a silent gap.
    auto other = f.client();
    other.cache(std::make_shared<re::memory_cache>());
    auto gone = other.fetch(*again);
    REQUIRE(gone);
    for (const auto& r : *gone) {
      REQUIRE_FALSE(r);
      CHECK(r.error().code == re::error_code::invalid_request);
    }
    CHECK(f.model_requests() == 3);
  }
}

// ---- The collector: batch_backend and openai_completions fed batches (options::batching) ----

namespace collector_tests {

using namespace std::chrono_literals;

// A stand-in model: answers "echo: <last user text> #<sample>" (n choices when asked), records
// every batch it got, and can be held at a gate, slowed, or made to fail.
struct toy_model {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::vector<std::string>> batches;  // the prompts of each call, in the order given
  std::vector<std::size_t> samples;               // every sample asked for
  std::vector<std::string> hashes;                // every (hash, sample) asked for, as "hash-sample"
  std::atomic<int> in_backend{0}, most_in_backend{0};
  bool gated = false;
  std::chrono::milliseconds delay{0};
  std::function<void(const std::vector<re::batch_request>&)> before;  // may throw
  bool drop_last = false;                                             // answer one request fewer

  re::batch_backend backend(const std::string& name = "toy-v1") {
    return re::batch_backend(name, [this](const std::vector<re::batch_request>& batch) { return answer(batch); });
  }

  std::vector<re::result<re::completion>> answer(const std::vector<re::batch_request>& batch) {
    const int now = ++in_backend;
    int seen = most_in_backend.load();
    while (now > seen && !most_in_backend.compare_exchange_weak(seen, now)) {
    }
    struct leave {
      std::atomic<int>& n;
      ~leave() { --n; }
    } on_exit{in_backend};
    {
      std::unique_lock<std::mutex> lock(m);
      std::vector<std::string> texts;
      for (const auto& r : batch) {
        texts.push_back(r.conversation.messages().back().text());
        samples.push_back(r.sample);
        hashes.push_back(r.request_hash + "-" + std::to_string(r.sample));
      }
      batches.push_back(std::move(texts));
      cv.notify_all();
      cv.wait(lock, [&] { return !gated; });
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (before) before(batch);
    std::vector<re::result<re::completion>> out;
    for (const auto& r : batch) {
      re::completion c;
      const std::string base = "echo: " + r.conversation.messages().back().text();
      const int n = r.params.n().value_or(1);
      for (int k = 0; k < n; ++k)
        c.choices.push_back(re::choice{base + " #" + std::to_string(r.sample + static_cast<std::size_t>(k)), "stop", {}});
      c.usage.input_tokens = 3;
      c.usage.output_tokens = 2 * n;
      c.model = "toy";
      out.push_back(std::move(c));
    }
    if (drop_last && !out.empty()) out.pop_back();
    return out;
  }
  void open_gate() {
    std::lock_guard<std::mutex> lock(m);
    gated = false;
    cv.notify_all();
  }
  // Waits until the backend has been called `n` times.
  bool wait_calls(std::size_t n, std::chrono::milliseconds limit = 5s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, limit, [&] { return batches.size() >= n; });
  }
  std::vector<std::size_t> sizes() {
    std::lock_guard<std::mutex> lock(m);
    std::vector<std::size_t> s;
    for (const auto& b : batches) s.push_back(b.size());
    return s;
  }
  std::size_t requests_seen() {
    std::lock_guard<std::mutex> lock(m);
    return samples.size();
  }
};

re::options collecting(std::size_t size, std::chrono::milliseconds wait, std::size_t concurrent = 1,
                       bool overflow = false) {
  return re::options().max_retries(3).initial_backoff(5ms).batching(
      re::batching_options().max_size(size).max_wait(wait).concurrent(concurrent).overflow(overflow));
}

std::string failures(const std::vector<re::result<re::completion>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + "\n";
  return s;
}

}  // namespace collector_tests

TEST_CASE("collector: under load batches fill to the limit; a lone request leaves after the wait") {
  using namespace collector_tests;
  toy_model model;
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(8, 150ms));

  SUBCASE("64 requests at once: eight full batches, answers in input order") {
    auto results = engine.run(questions(64));
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE_MESSAGE(results[i], failures(results));
      CHECK(results[i]->text == "echo: question " + std::to_string(i) + " #0");
      CHECK_FALSE(results[i]->from_cache);
    }
    CHECK(model.sizes() == std::vector<std::size_t>(8, 8));
    const re::progress p = engine.current_progress();
    CHECK(p.batches == 8);
    CHECK(p.batched == 64);
    CHECK(p.http_requests == 0);  // an in-process backend
  }
  SUBCASE("a lone request waits max_wait for company, then goes alone") {
    const auto start = std::chrono::steady_clock::now();
    auto f = engine.submit(re::conversation().user("alone"));
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    const auto waited = std::chrono::steady_clock::now() - start;
    auto r = f.get();
    REQUIRE(r);
    CHECK(r->text == "echo: alone #0");
    CHECK(waited >= 150ms);
    CHECK(waited < 3s);  // generous: a loaded CI machine
    CHECK(model.sizes() == std::vector<std::size_t>{1});
  }
  SUBCASE("a full batch leaves at once, without waiting for the timer") {
    re::engine<re::batch_backend, re::memory_cache> slow_timer(model.backend(), collecting(4, 60s));
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::future<re::result<re::completion>>> futures;
    for (int i = 0; i < 4; ++i) futures.push_back(slow_timer.submit(re::conversation().user("q" + std::to_string(i))));
    for (auto& f : futures) REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - start < 5s);  // far below the 60 s timer
    CHECK(model.sizes() == std::vector<std::size_t>{4});
  }
}

TEST_CASE("collector: overflow lets a full batch take everything queued; without it batches stay at the limit") {
  using namespace collector_tests;
  for (const bool overflow : {false, true}) {
    CAPTURE(overflow);
    toy_model model;
    model.gated = true;
    re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(8, 500ms, 1, overflow));
    std::vector<std::future<re::result<re::completion>>> futures;
    for (int i = 0; i < 8; ++i) futures.push_back(engine.submit(re::conversation().user("first " + std::to_string(i))));
    REQUIRE(model.wait_calls(1));  // the first batch is in the backend, held there
    for (int i = 0; i < 50; ++i) futures.push_back(engine.submit(re::conversation().user("then " + std::to_string(i))));
    model.open_gate();
    for (auto& f : futures) {
      REQUIRE(f.wait_for(10s) == std::future_status::ready);
      CHECK(f.get());
    }
    const auto sizes = model.sizes();
    REQUIRE(sizes.size() >= 2);
    CHECK(sizes[0] == 8);
    if (overflow) {
      CHECK(sizes[1] == 50);  // everything queued behind the full batch
      CHECK(sizes.size() == 2);
    } else {
      for (auto s : sizes) CHECK(s <= 8);
      CHECK(sizes.size() == 1 + 7);  // 50 = 6 * 8 + 2
    }
  }
}

TEST_CASE("collector: concurrent(2) keeps two batches in the backend at once, never more") {
  using namespace collector_tests;
  for (const std::size_t concurrent : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(concurrent);
    toy_model model;
    model.delay = 80ms;
    re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(4, 10ms, concurrent));
    auto results = engine.run(questions(32));
    for (auto& r : results) REQUIRE_MESSAGE(r, failures(results));
    CHECK(model.most_in_backend.load() == static_cast<int>(concurrent));
    CHECK(model.sizes() == std::vector<std::size_t>(8, 4));
  }
}

TEST_CASE("collector: cache hits and identical requests in flight never reach the backend") {
  using namespace collector_tests;
  toy_model model;
  auto cache = std::make_shared<re::memory_cache>();
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(16, 20ms), cache);
  auto first = engine.run(questions(20));
  for (auto& r : first) REQUIRE(r);
  REQUIRE(model.requests_seen() == 20);

  // A rerun (a new engine, as in a new process; samples count again from 0): the cache answers.
  re::engine<re::batch_backend, re::memory_cache> rerun(model.backend(), collecting(16, 20ms), cache);
  auto again = rerun.run(questions(20));
  for (std::size_t i = 0; i < again.size(); ++i) {
    REQUIRE(again[i]);
    CHECK(again[i]->from_cache);
    CHECK(again[i]->text == first[i]->text);
  }
  CHECK(model.requests_seen() == 20);
  // submit() too: a stored answer is delivered at once, without waiting for a batch.
  re::engine<re::batch_backend, re::memory_cache> long_wait(model.backend(), collecting(16, 60s), cache);
  auto f = long_wait.submit(re::conversation().user("question 3"));
  REQUIRE(f.wait_for(2s) == std::future_status::ready);
  CHECK(f.get()->from_cache);
  CHECK(model.requests_seen() == 20);

  // Identical requests without distinct samples: one reaches the backend, the others share it.
  re::engine<re::batch_backend, re::memory_cache> same(model.backend(),
                                                       collecting(16, 20ms).distinct_samples(false));
  std::vector<re::conversation> copies(10, re::conversation().user("the same"));
  auto shared = same.run(copies);
  std::size_t deduplicated = 0;
  for (auto& r : shared) {
    REQUIRE(r);
    CHECK(r->text == "echo: the same #0");
    deduplicated += r->deduplicated ? 1 : 0;
  }
  CHECK(deduplicated == 9);
  CHECK(model.requests_seen() == 21);
}

TEST_CASE("collector: 1,000 copies of a prompt are 1,000 samples, replayed on a rerun; namespaces start again") {
  using namespace collector_tests;
  toy_model model;
  auto cache = std::make_shared<re::memory_cache>();
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(64, 5ms), cache);
  const std::vector<re::conversation> copies(1000, re::conversation().user("think of a number"));
  auto first = engine.run(copies, re::params(), "trial");
  std::set<std::string> texts;
  for (std::size_t i = 0; i < first.size(); ++i) {
    REQUIRE(first[i]);
    CHECK(first[i]->text == "echo: think of a number #" + std::to_string(i));  // the k-th copy is sample k
    texts.insert(first[i]->text);
  }
  CHECK(texts.size() == 1000);
  CHECK(model.requests_seen() == 1000);
  {
    std::set<std::size_t> samples(model.samples.begin(), model.samples.end());
    CHECK(samples.size() == 1000);
    CHECK(*samples.rbegin() == 999);
    // Each batch is in (hash, sample) order, whatever order the requests were queued in.
    std::lock_guard<std::mutex> lock(model.m);
    REQUIRE(model.batches.front().size() == 64);
    CHECK(std::is_sorted(model.samples.begin(), model.samples.begin() + 64));
  }

  re::engine<re::batch_backend, re::memory_cache> rerun(model.backend(), collecting(64, 5ms), cache);
  auto replay = rerun.run(copies, re::params(), "trial");
  for (std::size_t i = 0; i < replay.size(); ++i) {
    REQUIRE(replay[i]);
    CHECK(replay[i]->from_cache);
    CHECK(replay[i]->text == first[i]->text);
  }
  CHECK(model.requests_seen() == 1000);
  // Another namespace starts at sample 0 again: the same stored answers, and one more is asked for.
  std::vector<re::conversation> more(copies);
  more.push_back(copies.front());
  auto other = rerun.run(more, re::params(), "another trial");
  for (auto& r : other) REQUIRE(r);
  CHECK(other[1000]->text == "echo: think of a number #1000");
  CHECK_FALSE(other[1000]->from_cache);
  CHECK(model.requests_seen() == 1001);
}

TEST_CASE("collector: params::n asks the backend only for the samples the cache lacks") {
  using namespace collector_tests;
  toy_model model;
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(8, 5ms));
  const re::conversation c = re::conversation().user("pick");
  auto two = engine.submit(c, re::params().n(2)).get();
  REQUIRE(two);
  REQUIRE(two->choices.size() == 2);
  auto three = engine.submit(c, re::params().n(3), "next").get();
  REQUIRE(three);
  REQUIRE(three->choices.size() == 3);
  CHECK(three->choices[0].text == "echo: pick #0");
  CHECK(three->choices[1].text == "echo: pick #1");
  CHECK(three->choices[2].text == "echo: pick #2");
  // The first call asked for samples 0-1 as one request with n = 2; the second only for sample 2.
  CHECK(model.samples == std::vector<std::size_t>{0, 2});
}

TEST_CASE("collector: a throwing backend fails its own batch only; short answers fail the missing requests") {
  using namespace collector_tests;
  toy_model model;
  model.before = [](const std::vector<re::batch_request>& batch) {
    for (const auto& r : batch)
      if (r.conversation.messages().back().text() == "question 5") throw std::runtime_error("GPU on fire");
  };
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(4, 20ms));
  auto results = engine.run(questions(12));  // queued in input order: batches 0-3, 4-7, 8-11
  for (std::size_t i = 0; i < results.size(); ++i) {
    CAPTURE(i);
    if (i >= 4 && i < 8) {
      REQUIRE_FALSE(results[i]);
      CHECK(results[i].error().code == re::error_code::internal);
      CHECK(results[i].error().message.find("GPU on fire") != std::string::npos);
      CHECK(results[i].error().message.find("batch of 4") != std::string::npos);
      CHECK(results[i].error().attempts == 1);  // internal errors are not retried
    } else {
      CHECK(results[i]);
    }
  }
  // The collector goes on serving.
  auto after = engine.submit(re::conversation().user("still there?")).get();
  CHECK(after);

  toy_model short_model;
  short_model.drop_last = true;
  re::engine<re::batch_backend, re::memory_cache> short_engine(short_model.backend(), collecting(4, 20ms));
  auto partial = short_engine.run(questions(8));
  std::size_t missing = 0;
  for (auto& r : partial) {
    if (r) continue;
    ++missing;
    CHECK(r.error().code == re::error_code::internal);
    CHECK(r.error().message.find("answered 3 of the 4") != std::string::npos);
  }
  CHECK(missing == 2);  // one per batch
}

TEST_CASE("collector: a retryable error from the backend is retried in a later batch") {
  using namespace collector_tests;
  std::atomic<int> calls{0};
  re::batch_backend flaky("flaky-v1", [&](const std::vector<re::batch_request>& batch) {
    std::vector<re::result<re::completion>> out;
    const bool busy = calls++ == 0;  // the first call: every request is rate limited
    for (const auto& r : batch) {
      if (busy) {
        re::error e{re::error_code::rate_limited, 0, "busy", {}, 0, {}};
        e.retry_after = 30ms;
        out.emplace_back(e);
      } else {
        re::completion c;
        c.text = "ok " + r.conversation.messages().back().text();
        out.emplace_back(c);
      }
    }
    return out;
  });
  std::vector<re::retry_info> retries;
  std::mutex m;
  re::options o = collecting(8, 10ms);
  o.on_retry([&](const re::retry_info& info) {
    std::lock_guard<std::mutex> lock(m);
    retries.push_back(info);
  });
  re::engine<re::batch_backend, re::memory_cache> engine(flaky, o);
  auto results = engine.run(questions(6));
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], failures(results));
    CHECK(results[i]->text == "ok question " + std::to_string(i));
    CHECK(results[i]->attempts == 2);
  }
  CHECK(calls.load() == 2);
  CHECK(retries.size() == 6);
  for (const auto& r : retries) CHECK(r.wait == 30ms);
}

TEST_CASE("collector: cancel() answers queued and in-backend requests at once; later work runs") {
  using namespace collector_tests;
  toy_model model;
  model.gated = true;
  re::engine<re::batch_backend, re::memory_cache> engine(model.backend(), collecting(4, 20ms));
  std::vector<std::future<re::result<re::completion>>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(engine.submit(re::conversation().user("q" + std::to_string(i))));
  REQUIRE(model.wait_calls(1));  // 4 in the backend (held), 6 queued
  const auto start = std::chrono::steady_clock::now();
  engine.cancel();
  for (auto& f : futures) {
    REQUIRE(f.wait_for(2s) == std::future_status::ready);
    auto r = f.get();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == re::error_code::cancelled);
  }
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  model.open_gate();
  auto later = engine.submit(re::conversation().user("after the cancel")).get();
  REQUIRE(later);
  CHECK(later->text == "echo: after the cancel #0");
}

TEST_CASE("collector: misconfigurations are named") {
  using namespace collector_tests;
  toy_model model;
  CHECK_THROWS_WITH_AS(re::engine<re::batch_backend>(model.backend(), collecting(0, 5ms)),
                       doctest::Contains("max_size"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(re::engine<re::batch_backend>(model.backend(), collecting(4, 5ms, 0)),
                       doctest::Contains("concurrent"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      (re::engine<re::openai_compatible>(re::openai_compatible("k", "http://127.0.0.1:1/v1", "m"), collecting(4, 5ms))),
      doctest::Contains("takes no batches"), std::invalid_argument);
  CHECK_THROWS_AS(re::batch_backend("", [](const std::vector<re::batch_request>&) {
                    return std::vector<re::result<re::completion>>();
                  }),
                  std::invalid_argument);
}

TEST_CASE("collector: openai_completions sends prompt arrays; every prompt gets its own answer (HTTP and HTTPS)") {
  using namespace collector_tests;
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    mock::server_options so;
    so.api_key = batch_key;
    std::string ca;
    if (tls) {
      static const mock::tls_files pki = mock::make_test_pki(batch_scratch("pki"));
      so.cert_path = pki.server_cert;
      so.key_path = pki.server_key;
      ca = pki.ca_cert;
    }
    auto server = std::make_unique<mock::server>(so);
    server->start();
    re::openai_completions provider(batch_key, server->base_url(), "mock-base");
    re::options o = collecting(50, 500ms, 2);  // a generous wait: a slow (sanitized) feed still fills batches
    if (tls) o.ca_cert_file(ca);
    re::engine<re::openai_completions, re::memory_cache> engine(provider, o);
    const std::size_t count = tls ? 200 : 1000;
    std::vector<re::conversation> batch;
    for (std::size_t i = 0; i < count; ++i) batch.push_back(re::conversation().user("prompt number " + std::to_string(i)));
    auto results = engine.run(batch);
    std::int64_t input_tokens = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE_MESSAGE(results[i], failures(results));
      CHECK(results[i]->text == "Mock answer to: prompt number " + std::to_string(i));
      input_tokens += results[i]->usage.input_tokens;
    }
    const std::size_t sent = server->requests_for_path("/v1/completions");
    CHECK(sent <= count / 50 + 5);  // 1,000 prompts: at most 25 HTTP requests
    CHECK(sent >= count / 50);
    const re::progress p = engine.current_progress();
    CHECK(p.http_requests == sent);
    CHECK(p.batched == count);
    CHECK(input_tokens > 0);
  }
}

TEST_CASE("collector: prompt arrays with n = 2 map each choice back by its index; a 429 is retried") {
  using namespace collector_tests;
  mock::server_options so;
  so.api_key = batch_key;
  so.fail_429 = 0.3;
  so.fail_429_retry_after_ms = 20;
  so.seed = 7;
  auto server = std::make_unique<mock::server>(so);
  server->start();
  re::openai_completions provider(batch_key, server->base_url(), "mock-base");
  re::options o = collecting(10, 20ms).max_retries(20);
  re::engine<re::openai_completions, re::memory_cache> engine(provider, o);
  std::vector<re::conversation> batch;
  for (int i = 0; i < 40; ++i) batch.push_back(re::conversation().user("p" + std::to_string(i)));
  auto results = engine.run(batch, re::params().n(2));
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], failures(results));
    REQUIRE(results[i]->choices.size() == 2);
    CHECK(results[i]->choices[0].text == "Mock answer to: p" + std::to_string(i));
    CHECK(results[i]->choices[1].text == "Mock answer to: p" + std::to_string(i) + " (sample 1)");
  }
  CHECK(server->responses_with_status(429) > 0);
  CHECK(engine.current_progress().retries > 0);
  // Each of the 2 samples is stored on its own: a rerun of n = 1 is a cache hit.
  auto one = engine.submit(batch[3], re::params(), "again").get();
  REQUIRE(one);
  CHECK(one->from_cache);
}

// ---- embeddings (issue #19): inputs packed into HTTP requests by the collector ----------------

namespace embedding_tests {

using namespace std::chrono_literals;

const char* const embed_key = "sk-embed-7d1f3a9c5e2b4f6081a3c5e7f9b2d4f6";

std::unique_ptr<mock::server> embed_server(bool tls = false, std::string* ca = nullptr) {
  mock::server_options so;
  so.api_key = embed_key;
  if (tls) {
    static const mock::tls_files pki = mock::make_test_pki(batch_scratch("embed-pki"));
    so.cert_path = pki.server_cert;
    so.key_path = pki.server_key;
    if (ca) *ca = pki.ca_cert;
  }
  auto s = std::make_unique<mock::server>(so);
  s->start();
  return s;
}

std::string embed_failures(const std::vector<re::result<re::embedding>>& results) {
  std::string s;
  for (const auto& r : results)
    if (!r) s += r.error().describe() + "\n";
  return s.substr(0, 2000);
}

// Inputs per request the server saw on a path, oldest first (from the last 1,000 recorded bodies).
std::vector<std::size_t> input_counts(const mock::server& s) {
  std::vector<std::size_t> out;
  for (const auto& b : s.received_bodies()) {
    if (b.is_object() && b.contains("input")) out.push_back(b["input"].is_array() ? b["input"].size() : 1);
    if (b.is_object() && b.contains("requests")) out.push_back(b["requests"].size());
  }
  return out;
}

}  // namespace embedding_tests

TEST_CASE("embeddings: 10,000 inputs one at a time from 32 threads take at most 10 requests; a rerun with 10 new sends one") {
  using namespace embedding_tests;
  auto server = embed_server();
  const std::string dir = batch_scratch("embed-cache");
  re::openai_embeddings provider(embed_key, server->base_url(), "text-embedding-3-small");
  std::vector<std::string> texts;
  for (int i = 0; i < 10000; ++i) texts.push_back("document number " + std::to_string(i) + " about topic " + std::to_string(i % 37));
  {
    re::engine<re::openai_embeddings> engine(provider, re::options().cache_dir(dir));
    std::vector<std::future<re::result<re::embedding>>> futures(texts.size());
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 32; ++t)
      threads.emplace_back([&, t] {
        for (std::size_t i = t; i < texts.size(); i += 32) futures[i] = engine.submit_embed(texts[i]);
      });
    for (auto& th : threads) th.join();
    std::size_t wrong = 0, failed = 0;
    std::string first_failure;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      auto r = futures[i].get();
      if (!r) {
        if (failed++ == 0) first_failure = r.error().describe();
        continue;
      }
      if (r->vector != mock::mock_embedding(texts[i], 16) || r->dimension() != 16 || r->from_cache) ++wrong;
    }
    CHECK_MESSAGE(failed == 0, first_failure);
    CHECK(wrong == 0);
    const std::size_t sent = server->requests_for_path("/v1/embeddings");
    CHECK(sent <= 10);
    CHECK(sent >= 5);  // 10,000 / 2,048
    std::size_t inputs = 0;
    for (std::size_t n : input_counts(*server)) {
      CHECK(n <= 2048);
      inputs += n;
    }
    CHECK(inputs == texts.size());
    CHECK(engine.current_progress().http_requests == sent);
  }
  // A rerun that adds 10 texts embeds those 10: one request carrying 10 inputs.
  server->reset_stats();
  const std::size_t before = input_counts(*server).size();
  for (int i = 0; i < 10; ++i) texts.push_back("a new document " + std::to_string(i));
  re::engine<re::openai_embeddings> engine(provider, re::options().cache_dir(dir));
  auto results = engine.embed(texts);
  REQUIRE(results.size() == texts.size());
  std::size_t cached = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], results[i].error().describe());
    CHECK(results[i]->vector == mock::mock_embedding(texts[i], 16));
    cached += results[i]->from_cache ? 1 : 0;
  }
  CHECK(cached == 10000);
  CHECK(server->requests_for_path("/v1/embeddings") == 1);
  const auto counts = input_counts(*server);
  REQUIRE(counts.size() == before + 1);
  CHECK(counts.back() == 10);
}

TEST_CASE("embeddings: embed() keeps input order; identical texts share one answer; float and base64 agree; dimensions") {
  using namespace embedding_tests;
  auto server = embed_server();
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back("text " + std::to_string(i % 100));  // each text three times
  re::openai_embeddings base64(embed_key, server->base_url(), "text-embedding-3-small");
  re::engine<re::openai_embeddings, re::memory_cache> engine(base64);
  auto results = engine.embed(texts, "first");
  REQUIRE(results.size() == 300);
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], embed_failures(results));
    CHECK(results[i]->vector == mock::mock_embedding(texts[i], 16));
    CHECK(results[i]->model == "text-embedding-3-small");
  }
  // Embeddings are deterministic: three copies of a text are one input (sample 0), not three samples.
  std::size_t inputs = 0;
  for (std::size_t n : input_counts(*server)) inputs += n;
  CHECK(inputs == 100);
  CHECK(results[0]->request_hash == results[100]->request_hash);
  // So another namespace replays the same stored answers.
  const std::size_t sent = server->requests_for_path("/v1/embeddings");
  auto again = engine.embed({"text 5", "text 6"}, "second");
  REQUIRE(again[0]);
  CHECK(again[0]->from_cache);
  CHECK(server->requests_for_path("/v1/embeddings") == sent);
  // What went on the wire is a CreateEmbeddingRequest: model, input (strings), encoding_format.
  for (const auto& b : server->received_bodies()) {
    for (const auto& [k, v] : b.items()) CHECK((k == "model" || k == "input" || k == "encoding_format"));
    CHECK(b["encoding_format"] == "base64");
    REQUIRE(b["input"].is_array());
    for (const auto& x : b["input"]) CHECK((x.is_string() && !x.get<std::string>().empty()));
  }

  re::openai_embeddings floats = base64;
  floats.encoding(re::embedding_encoding::float_array);
  re::engine<re::openai_embeddings, re::memory_cache> float_engine(floats);
  auto as_floats = float_engine.embed({"text 1", "text 2"});
  REQUIRE(as_floats[0]);
  REQUIRE(as_floats[1]);
  CHECK(as_floats[0]->vector == results[1]->vector);
  CHECK(as_floats[1]->vector == results[2]->vector);
  CHECK(server->received_bodies().back()["encoding_format"] == "float");

  re::openai_embeddings small = base64;
  small.dimensions(8);
  re::engine<re::openai_embeddings, re::memory_cache> small_engine(small);
  auto eight = small_engine.submit_embed("short vectors").get();
  REQUIRE(eight);
  CHECK(eight->dimension() == 8);
  CHECK(eight->vector == mock::mock_embedding("short vectors", 8));
  CHECK(server->received_bodies().back()["dimensions"] == 8);
  CHECK_THROWS_AS(small.dimensions(0), std::invalid_argument);
}

TEST_CASE("embeddings: over HTTPS with the test CA") {
  using namespace embedding_tests;
  std::string ca;
  auto server = embed_server(true, &ca);
  re::openai_embeddings provider(embed_key, server->base_url(), "text-embedding-3-large");
  re::engine<re::openai_embeddings, re::memory_cache> engine(provider, re::options().ca_cert_file(ca));
  std::vector<std::string> texts;
  for (int i = 0; i < 500; ++i) texts.push_back("secure text " + std::to_string(i));
  auto results = engine.embed(texts);
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], embed_failures(results));
    CHECK(results[i]->vector == mock::mock_embedding(texts[i], 16));
  }
  CHECK(server->requests_for_path("/v1/embeddings") <= 2);
}

TEST_CASE("embeddings: an empty text fails alone; a bad input in a packed request fails alone; a wrong key") {
  using namespace embedding_tests;
  auto server = embed_server();
  re::openai_embeddings provider(embed_key, server->base_url(), "text-embedding-3-small");
  re::engine<re::openai_embeddings, re::memory_cache> engine(provider);
  auto results = engine.embed({"first", "", "third"});
  REQUIRE(results[0]);
  REQUIRE(!results[1]);
  REQUIRE(results[2]);
  CHECK(results[1].error().code == re::error_code::invalid_request);
  CHECK(results[2]->vector == mock::mock_embedding("third", 16));

  // The server refuses a whole request for one input (as OpenAI does for one over 8,192
  // tokens): the request is split in halves until that input is alone.
  server->set_on_chat([](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("poison") == std::string::npos) return false;
    res.status = 400;
    res.set_content(R"({"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":null,"code":null}})",
                    "application/json");
    return true;
  });
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back(i == 37 ? "poison" : "clean " + std::to_string(i));
  auto mixed = engine.embed(texts, "mixed");
  for (std::size_t i = 0; i < mixed.size(); ++i) {
    CAPTURE(i);
    if (i == 37) {
      REQUIRE(!mixed[i]);
      CHECK(mixed[i].error().code == re::error_code::bad_request);
      CHECK(mixed[i].error().message.find("8192") != std::string::npos);
    } else {
      REQUIRE(mixed[i]);
      CHECK(mixed[i]->vector == mock::mock_embedding(texts[i], 16));
    }
  }
  server->set_on_chat(nullptr);

  const std::string wrong = "sk-wrong-0123456789abcdef0123456789abcdef";
  re::engine<re::openai_embeddings, re::memory_cache> bad(re::openai_embeddings(wrong, server->base_url(), "text-embedding-3-small"),
                                                          re::options().max_retries(0));
  auto refused = bad.embed({"one", "two"});
  for (const auto& r : refused) {
    REQUIRE(!r);
    CHECK(r.error().code == re::error_code::authentication);
    CHECK(r.error().describe().find(wrong) == std::string::npos);
  }
}

TEST_CASE("embeddings: spend() prices text-embedding-3-small per input token") {
  using namespace embedding_tests;
  auto server = embed_server();
  re::engine<re::openai_embeddings, re::memory_cache> engine(
      re::openai_embeddings(embed_key, server->base_url(), "text-embedding-3-small"));
  std::vector<std::string> texts;
  for (int i = 0; i < 100; ++i) texts.push_back("a sentence of some length, number " + std::to_string(i));
  auto results = engine.embed(texts);
  std::int64_t tokens = 0;
  for (const auto& r : results) {
    REQUIRE(r);
    CHECK(r->usage.input_tokens > 0);
    tokens += r->usage.input_tokens;
  }
  // The shares add up to the server's count for the packed request (each input 4 bytes a token, rounded up).
  std::int64_t expected = 0;
  for (const auto& t : texts) expected += static_cast<std::int64_t>((t.size() + 3) / 4);
  CHECK(tokens == expected);
  const re::cost_report spent = engine.spend();
  CHECK(spent.complete());
  CHECK(spent.tokens.input_tokens == tokens);
  CHECK(spent.actual == doctest::Approx(static_cast<double>(tokens) * 0.02 / 1e6));
}

TEST_CASE("embeddings: Gemini packs 250 inputs into 3 batchEmbedContents calls, the key in a header") {
  using namespace embedding_tests;
  auto server = embed_server();
  re::gemini_embeddings provider(embed_key, "gemini-embedding-001", server->origin());
  provider.task_type("RETRIEVAL_DOCUMENT").dimensions(12);
  re::engine<re::gemini_embeddings, re::memory_cache> engine(provider);
  std::vector<std::string> texts;
  for (int i = 0; i < 250; ++i) texts.push_back("gemini text " + std::to_string(i));
  auto results = engine.embed(texts);
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE_MESSAGE(results[i], embed_failures(results));
    CHECK(results[i]->vector == mock::mock_embedding(texts[i], 12));
    tokens += results[i]->usage.input_tokens;
  }
  CHECK(server->requests_for_path("/v1beta/models/gemini-embedding-001:batchEmbedContents") == 3);
  for (const auto& h : server->received_headers()) CHECK(h.find("x-goog-api-key") != h.end());
  for (const auto& b : server->received_bodies()) {
    REQUIRE(b["requests"].size() <= 100);
    CHECK(b["requests"][0]["model"] == "models/gemini-embedding-001");
    CHECK(b["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT");
    CHECK(b["requests"][0]["outputDimensionality"] == 12);
  }
  CHECK(tokens > 0);
  CHECK(engine.spend().actual == doctest::Approx(static_cast<double>(tokens) * 0.15 / 1e6));

  re::engine<re::gemini_embeddings, re::memory_cache> bad(
      re::gemini_embeddings("AIzaWrongKey0123456789abcdefghij", "gemini-embedding-001", server->origin()),
      re::options().max_retries(0));
  auto refused = bad.submit_embed("x").get();
  REQUIRE(!refused);
  CHECK(refused.error().code == re::error_code::authentication);
  CHECK(refused.error().describe().find("AIzaWrongKey") == std::string::npos);
}

TEST_CASE("batch: /v1/responses lines through OpenAI Batch; the answers are the ones an online openai_responses run reads") {
  auto server = batch_server(60);
  auto cache = std::make_shared<re::memory_cache>();
  re::openai_responses provider(batch_key, server->base_url(), "o3-pro");  // answers only on /v1/responses
  re::batch_client client(provider, quick(), fast());
  client.cache(cache);
  CHECK(client.api() == "openai");
  auto batch = questions(5);
  batch[2] = re::conversation().user("question 2 [fail]");
  auto results = client.run(batch, re::params().max_tokens(64), "r");
  REQUIRE_MESSAGE(results, results.error().describe());
  REQUIRE(results->size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    if (i == 2) {
      REQUIRE_FALSE((*results)[i]);
      CHECK((*results)[i].error().code == re::error_code::bad_request);
      continue;
    }
    REQUIRE_MESSAGE((*results)[i], errors_of(*results));
    CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
    CHECK((*results)[i]->usage.reasoning_tokens == 16);  // the mock's reasoning models think
    CHECK((*results)[i]->model == "o3-pro");
  }
  CHECK(server->batches_created() == 1);
  CHECK(server->requests_for_path("/v1/responses") == 0);  // batch lines are not online requests

  // An online run of the same requests finds every answer but the failed one in the cache.
  re::basic_engine<re::openai_responses, re::memory_cache> online(provider, quick().concurrency(2), cache);
  auto rerun = online.run(batch, re::params().max_tokens(64), "r");
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(rerun[i], errors_of(rerun));
    CHECK(rerun[i]->from_cache == (i != 2));
    CHECK(rerun[i]->text == "Mock answer to: " + batch[i].messages().back().text());
  }
  CHECK(server->requests_for_path("/v1/responses") == 1);

  // A chat-completions batch cannot carry a responses-only model: its lines fail one by one.
  re::batch_client chat(re::openai_compatible(batch_key, server->base_url(), "o3-pro"), quick(), fast());
  chat.cache(cache);
  auto refused = chat.run(questions(2), re::params(), "c");
  REQUIRE_MESSAGE(refused, refused.error().describe());
  for (const auto& r : *refused) {
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("only supported in v1/responses") != std::string::npos);
  }
}

TEST_CASE("batch: /v1/embeddings lines through OpenAI Batch, one input each; an online embed() then sends nothing") {
  auto server = batch_server(60);
  auto cache = std::make_shared<re::memory_cache>();
  re::openai_embeddings provider(batch_key, server->base_url(), "text-embedding-3-small");
  re::batch_client client(provider, quick(), fast());
  client.cache(cache);
  std::vector<std::string> texts = {"alpha", "beta", "alpha", "gamma", "delta [fail]", "beta"};
  std::vector<re::conversation> batch;
  for (const auto& t : texts) batch.push_back(re::conversation().user(t));
  auto job = client.submit(batch, re::params(), "e");
  REQUIRE_MESSAGE(job, job.error().describe());
  CHECK(job->size() == 6);
  CHECK(job->hashes[0] == job->hashes[2]);  // identical inputs are one request
  auto st = client.wait(*job);
  REQUIRE_MESSAGE(st, st.error().describe());
  CHECK(*st == re::batch_status::completed);
  CHECK(job->succeeded() == 3);  // alpha, beta, gamma: each sent once
  CHECK(job->failed() == 1);
  auto results = client.fetch(*job);
  REQUIRE_MESSAGE(results, results.error().describe());
  REQUIRE(results->size() == 6);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    CAPTURE(i);
    if (i == 4) {
      REQUIRE_FALSE((*results)[i]);
      CHECK((*results)[i].error().code == re::error_code::bad_request);
      continue;
    }
    REQUIRE_MESSAGE((*results)[i], errors_of(*results));
    CHECK((*results)[i]->embedding_vector == mock::mock_embedding(texts[i], 16));  // base64 on the wire, read back
    CHECK((*results)[i]->usage.input_tokens > 0);
    CHECK((*results)[i]->deduplicated == (i == 2 || i == 5));  // the repeats of alpha and beta
  }
  CHECK(server->requests_for_path("/v1/embeddings") == 0);

  re::basic_engine<re::openai_embeddings, re::memory_cache> online(provider, quick(), cache);
  auto again = online.embed({"gamma", "alpha", "beta"}, "e");
  for (const auto& r : again) {
    REQUIRE(r);
    CHECK(r->from_cache);
  }
  CHECK(again[0]->vector == mock::mock_embedding("gamma", 16));
  CHECK(server->requests_for_path("/v1/embeddings") == 0);
}

TEST_CASE("batch: Azure OpenAI's classic routes, lines and limits; headers of the user's own on every call; statuses "
          "in any case") {
  fixture f;
  f.api = "azure-classic";
  mock::server_options so;
  so.required_headers = {{"X-Gateway-Key", "gw-batch-0123456789abcdef"}};  // a gateway in front
  f.server = batch_server(0, false, 0, so);
  {
    auto refused = f.client().submit(questions(1));  // without the gateway's header
    REQUIRE_FALSE(refused);
    CHECK(refused.error().provider_code == "gateway_header");
  }
  re::openai_compatible provider = f.openai_provider();
  provider.headers().set("X-Gateway-Key", "gw-batch-0123456789abcdef", re::header_use::secret);
  re::batch_client client(provider, quick(), fast());
  client.cache(f.cache);
  CHECK(client.limits().max_requests == 100000);  // Azure's global batch: 100,000 requests per file
  auto job = client.submit(questions(3));
  REQUIRE_MESSAGE(job, job.error().describe());
  REQUIRE(client.wait(*job));
  auto results = client.fetch(*job);
  REQUIRE_MESSAGE(results, results.error().describe());
  for (const auto& r : *results) CHECK(r);
  // Every batch call went to the classic routes with the api-version; the lines named the API
  // alone and the deployment as their model.
  std::size_t azure_calls = 0;
  for (const auto& [path, n] : f.server->requests_by_path()) {
    CAPTURE(path);
    CHECK(path.find("/v1/batches") == std::string::npos);
    if (path.rfind("/openai/", 0) == 0) azure_calls += n;
  }
  CHECK(azure_calls >= 4);  // file upload, batch create, a poll, the download
  CHECK(f.server->requests_by_path().count("/openai/files") == 1);
  CHECK(f.server->requests_by_path().count("/openai/batches") == 1);
  const auto uploaded = f.server->batch_prompts();
  REQUIRE(uploaded.size() == 1);
  CHECK(uploaded[0].size() == 3);

  // Azure has been seen to write its statuses capitalised.
  for (const auto& [text, status] : std::vector<std::pair<std::string, re::batch_status>>{
           {"Completed", re::batch_status::completed},
           {"InProgress", re::batch_status::in_progress},
           {"in_progress", re::batch_status::in_progress},
           {"Cancelling", re::batch_status::cancelling}}) {
    CAPTURE(text);
    re::json stored = job->to_json();
    stored["parts"][0]["status"] = text;
    CHECK(re::batch_job::from_json(stored).parts.at(0).status == status);
  }
}

TEST_CASE("batch: export_requests and import_results, for a runner of the caller's: cached requests not exported, "
          "vLLM's and OpenAI's error lines, every bad line named") {
  fixture f;
  f.api = "openai";
  f.server = batch_server(0);
  const auto batch = questions(6);
  auto online = f.online({batch[1]});  // question 1 is in the cache already
  REQUIRE(errors_of(online).empty());
  const std::size_t before = f.model_requests();

  auto client = f.client();
  auto exported = client.export_requests(batch);
  REQUIRE_MESSAGE(exported, exported.error().describe());
  const re::batch_job& job = exported->job;
  CHECK(job.offline);
  CHECK(job.cached == std::vector<std::size_t>{1});
  REQUIRE(exported->lines.size() == 5);
  REQUIRE(job.parts.size() == 1);
  CHECK(job.parts[0].first == 0);
  CHECK(job.parts[0].count == 6);
  const re::json first = re::json::parse(exported->lines[0]);
  CHECK(first["custom_id"] == "request-0");
  CHECK(first["url"] == "/v1/chat/completions");
  CHECK(re::json::parse(exported->lines[1])["custom_id"] == "request-2");
  CHECK(re::batch_job::from_json(job.to_json()).offline);  // kept in the job file
  // Nothing was sent, and the provider's calls refuse an exported job.
  CHECK(f.model_requests() == before);
  CHECK(f.server->batch_prompts().empty());
  re::batch_job copy = job;
  auto polled = client.poll(copy);
  REQUIRE_FALSE(polled);
  CHECK(polled.error().message.find("import_results") != std::string::npos);
  CHECK_FALSE(client.fetch(job));

  // The results a runner wrote: request-0 answered, request-2 an OpenAI error object, request-3
  // vLLM's error line (a 400 response with no body, the message in "error"), request-4 neither,
  // then a line of an unknown id; request-5 missing.
  auto answer = [](const std::string& text) {
    return re::json{{"id", "chatcmpl-1"},
                {"object", "chat.completion"},
                {"model", "mock-model"},
                {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}}},
                {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}}};
  };
  std::string text;
  text += re::json{{"custom_id", "request-0"}, {"response", {{"status_code", 200}, {"body", answer("zero")}}}, {"error", nullptr}}.dump() + "\n";
  text += re::json{{"custom_id", "request-2"}, {"response", nullptr}, {"error", {{"code", "batch_expired"}, {"message", "too late"}}}}.dump() + "\n";
  text += "\n";  // blank lines are not lines
  text += re::json{{"custom_id", "request-3"}, {"response", {{"status_code", 400}, {"request_id", "vllm-batch-1"}, {"body", nullptr}}}, {"error", "prompt too long"}}.dump() + "\n";
  text += re::json{{"custom_id", "request-4"}, {"response", nullptr}, {"error", nullptr}}.dump() + "\n";
  text += re::json{{"custom_id", "other-7"}, {"response", {{"status_code", 200}, {"body", answer("x")}}}}.dump() + "\n";
  auto in = client.import_results(job, text);
  REQUIRE_MESSAGE(in, in.error().describe());
  CHECK(in->lines == 5);
  CHECK(in->answered == 3);
  REQUIRE(in->problems.size() == 2);
  CHECK(in->problems[0].line == 5);
  CHECK(in->problems[0].message == "neither a response with a body nor an error");
  CHECK(in->problems[1].line == 6);
  CHECK(in->problems[1].message == "custom_id \"other-7\" is not a request of this job");
  REQUIRE(in->results.size() == 6);
  REQUIRE(in->results[0]);
  REQUIRE(*in->results[0]);
  CHECK((*in->results[0])->text == "zero");
  CHECK((*in->results[0])->request_hash == job.hashes[0]);
  REQUIRE(in->results[1]);  // from the cache
  REQUIRE(*in->results[1]);
  CHECK((*in->results[1])->from_cache);
  CHECK((*in->results[1])->text == "Mock answer to: question 1");
  REQUIRE(in->results[2]);
  REQUIRE_FALSE(*in->results[2]);
  CHECK(in->results[2]->error().code == re::error_code::deadline_exceeded);
  REQUIRE(in->results[3]);
  REQUIRE_FALSE(*in->results[3]);
  CHECK(in->results[3]->error().code == re::error_code::bad_request);
  CHECK(in->results[3]->error().http_status == 400);
  CHECK(in->results[3]->error().message.find("prompt too long") != std::string::npos);
  CHECK_FALSE(in->results[4]);
  CHECK_FALSE(in->results[5]);
  // The answer is in the cache under the online request's key: an engine run sends nothing for it.
  CHECK(f.cache->load({job.hashes[0], 0}).has_value());
  auto again = f.online({batch[0]});
  REQUIRE(errors_of(again).empty());
  CHECK(again[0]->from_cache);
  CHECK(again[0]->text == "zero");

  // A submitted job is not imported; Anthropic exports nothing.
  auto submitted = client.submit({batch[5]});
  REQUIRE(submitted);
  CHECK_FALSE(client.import_results(*submitted, text));
  f.api = "anthropic";
  auto refused = f.client().export_requests(batch);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("OpenAI Batch") != std::string::npos);
}

TEST_CASE("batch: Gemini Batch Mode against the mock: inline and through the Files API's resumable upload; a failed "
          "line; a rerun all from the cache; an expired batch; cancel") {
  auto server = batch_server(30);
  auto cache = std::make_shared<re::memory_cache>();
  const re::gemini provider(batch_key, "gemini-2.5-flash", server->origin());
  auto client_with = [&](re::batch_settings s) {
    re::batch_client c(provider, quick(), s);
    c.cache(cache);
    return c;
  };
  auto batch = questions(4);
  batch.push_back(re::conversation().system("Be brief.").user("question 4 [fail]"));

  for (const bool as_file : {false, true}) {
    CAPTURE(as_file);
    cache = std::make_shared<re::memory_cache>();
    // A file when the batch is over the inline limit (20 MB by default; 10 bytes here).
    auto client = client_with(as_file ? fast().inline_bytes(10) : fast());
    CHECK(client.api() == "gemini");
    auto job = client.submit(batch, re::params().max_tokens(50));
    REQUIRE_MESSAGE(job, job.error().describe());
    REQUIRE(job->parts.size() == 1);
    CHECK(job->parts[0].id.rfind("batches/", 0) == 0);
    CHECK(job->parts[0].input_file_id.rfind(as_file ? "files/" : "", 0) == 0);
    CHECK(job->parts[0].input_file_id.empty() == !as_file);
    CHECK(re::batch_job::from_json(job->to_json()).api == "gemini");
    auto st = client.wait(*job);
    REQUIRE_MESSAGE(st, st.error().describe());
    CHECK(*st == re::batch_status::completed);
    CHECK(job->succeeded() == 4);
    CHECK(job->failed() == 1);
    CHECK(job->parts[0].output_file_id.empty() == !as_file);
    auto results = client.fetch(*job);
    REQUIRE_MESSAGE(results, results.error().describe());
    REQUIRE(results->size() == 5);
    for (std::size_t i = 0; i < 4; ++i) {
      CAPTURE(i);
      REQUIRE_MESSAGE((*results)[i], errors_of(*results));
      CHECK((*results)[i]->text == "Mock answer to: question " + std::to_string(i));
      CHECK((*results)[i]->usage.output_tokens > 0);
      CHECK((*results)[i]->request_hash == job->hashes[i]);
    }
    REQUIRE_FALSE((*results)[4]);
    CHECK((*results)[4].error().http_status == 400);
    CHECK((*results)[4].error().code == re::error_code::bad_request);
    CHECK((*results)[4].error().message.find("on purpose") != std::string::npos);
    // The answers are the online ones: an engine with the same provider sends nothing for them.
    const std::size_t before = server->requests();
    re::basic_engine<re::gemini, re::memory_cache> engine(provider, quick().concurrency(2), cache);
    auto online = engine.run({batch[0], batch[1], batch[2], batch[3]}, re::params().max_tokens(50));
    REQUIRE(errors_of(online).empty());
    for (const auto& r : online) CHECK(r->from_cache);
    CHECK(server->requests() == before);
    // A rerun of the job: only the failed request goes to a new batch.
    auto again = client.submit(batch, re::params().max_tokens(50));
    REQUIRE(again);
    CHECK(again->cached == std::vector<std::size_t>{0, 1, 2, 3});
    CHECK(server->batch_prompts().back() == std::vector<std::string>{"question 4 [fail]"});
    // Deleted on request once fetched: the batch, and in file mode the input and responses files.
    auto removed = client.remove(*job);
    REQUIRE_MESSAGE(removed, removed.error().describe());
    CHECK(*removed == (as_file ? 3u : 1u));
    CHECK_FALSE(client.remove(*again));  // still running: refused
  }

  // Expired: the first half answered, deadline_exceeded for the rest.
  auto expiring = batch_server(0, /*expire=*/true);
  re::batch_client e(re::gemini(batch_key, "gemini-2.5-flash", expiring->origin()), quick(), fast());
  auto ejob = e.submit(questions(4));
  REQUIRE(ejob);
  REQUIRE(e.wait(*ejob));
  CHECK(ejob->status() == re::batch_status::expired);
  auto eres = e.fetch(*ejob);
  REQUIRE(eres);
  CHECK((*eres)[0]);
  CHECK((*eres)[1]);
  REQUIRE_FALSE((*eres)[3]);
  CHECK((*eres)[3].error().code == re::error_code::deadline_exceeded);

  // Cancel: the batch ends cancelled, every request too.
  auto slow = batch_server(5000);
  re::batch_client c(re::gemini(batch_key, "gemini-2.5-flash", slow->origin()), quick(), fast());
  auto cjob = c.submit(questions(3));
  REQUIRE(cjob);
  auto cst = c.cancel(*cjob);
  REQUIRE_MESSAGE(cst, cst.error().describe());
  CHECK(*cst == re::batch_status::cancelled);
  auto cres = c.fetch(*cjob);
  REQUIRE(cres);
  for (const auto& r : *cres) CHECK((!r && r.error().code == re::error_code::cancelled));

  // A wrong key is named by the API's answer.
  re::batch_client wrong(re::gemini("not-the-key", "gemini-2.5-flash", slow->origin()), quick(), fast());
  auto refused = wrong.submit(questions(1));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("API key not valid") != std::string::npos);
}
