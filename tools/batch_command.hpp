// The `requests-engine batch` subcommand: the providers' batch APIs (re::batch_client) from the
// command line. submit writes the job (batch ids, request hashes, input ids; never a key) to
// OUT.batch.json; status, wait, fetch and cancel read it back, so they work after a restart.
// Included by tools/requests_engine_cli.cpp only.
#pragma once

#include "run_command.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace requests_engine_cli {

struct batch_args {
  std::string action;
  std::string input;
  std::string output;
  std::string provider = "openai";
  std::string base_url;
  std::string model;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  std::string cache_dir;
  std::string name_space;
  bool no_cache = false;
  std::size_t max_requests = 0;
  std::uint64_t max_bytes = 0;
  double poll_seconds = 30;
  double timeout_seconds = 0;
  int max_retries = 5;
  std::string ca_cert;
  std::optional<std::string> proxy;  // --proxy ("" = none); unset: the environment
  std::optional<std::int64_t> dimensions;
  std::string api_version;  // azure: the classic routes' api-version
  std::vector<std::string> headers, secret_headers, cache_key_headers;  // as `run` takes them
};

namespace detail {

inline std::string batch_state_path(const batch_args& a) { return a.output + ".batch.json"; }

inline re::options batch_options(const batch_args& a, const std::string& cache_dir) {
  re::options o;
  o.max_retries(a.max_retries).cache_dir(cache_dir);
  if (!a.ca_cert.empty()) o.ca_cert_file(a.ca_cert);
  if (a.proxy) o.proxy(*a.proxy);
  return o;
}

inline re::batch_settings batch_settings_of(const batch_args& a) {
  re::batch_settings s;
  s.poll_interval(std::chrono::milliseconds(static_cast<std::int64_t>(a.poll_seconds * 1000)));
  if (a.max_requests > 0 || a.max_bytes > 0) {
    re::batch_limits l = a.provider == "anthropic" ? re::batch_limits::anthropic()
                         : a.provider == "azure"   ? re::batch_limits::azure()
                                                   : re::batch_limits::openai();
    if (a.max_requests > 0) l.max_requests = a.max_requests;
    if (a.max_bytes > 0) l.max_bytes = a.max_bytes;
    s.limits(l);
  }
  return s;
}

// The client, with --header, --secret-header and --cache-key-header on its provider (given
// again to every batch command: a secret is never stored with the job).
template <class Provider>
re::batch_client make_client(Provider p, const batch_args& a, const std::string& cache, const re::batch_settings& s) {
  run_args headers;
  headers.headers = a.headers;
  headers.secret_headers = a.secret_headers;
  headers.cache_key_headers = a.cache_key_headers;
  add_user_headers(p.headers(), headers);
  return re::batch_client(std::move(p), batch_options(a, cache), s);
}

// The client for a stored job: the provider from its endpoint, the key from the environment.
inline re::batch_client batch_client_for(const re::batch_job& job, const batch_args& a) {
  const std::string cache = job.user.is_object() ? job.user.value("cache_dir", std::string()) : std::string();
  re::batch_settings s = batch_settings_of(a);
  if (job.user.is_object() && job.user.contains("azure") && job.user["azure"].is_object()) {
    const json& az = job.user["azure"];
    // The job's own endpoint and api-version (empty: the v1 API, whatever OPENAI_API_VERSION says now).
    re::azure_openai_settings where = azure_settings(az.value("endpoint", std::string()), std::string());
    where.api_version = az.value("api_version", std::string());
    const std::string deployment = az.value("deployment", std::string());
    const std::string url = job.user.value("url", std::string());
    if (url == "/v1/responses")
      return make_client(re::openai_responses::azure(deployment, where), a, cache, s);
    if (url == "/v1/embeddings") {
      auto e = re::openai_embeddings::azure(deployment, where);
      if (job.user.contains("dimensions")) e.dimensions(job.user["dimensions"].get<std::int64_t>());
      return make_client(std::move(e), a, cache, s);
    }
    return make_client(re::openai_compatible::azure(deployment, where), a, cache, s);
  }
  if (job.api == "openai") {
    const std::string key = api_key("OPENAI_API_KEY", job.endpoint, "api.openai.com");
    const std::string url = job.user.is_object() ? job.user.value("url", std::string()) : std::string();
    if (url == "/v1/responses")
      return make_client(re::openai_responses(key, job.endpoint, std::string()), a, cache, s);
    if (url == "/v1/embeddings") {
      // The model and the size are part of the provider's identity, which the job must match.
      re::openai_embeddings e(key, job.endpoint, job.identity.value("model", std::string()));
      if (job.user.contains("dimensions")) e.dimensions(job.user["dimensions"].get<std::int64_t>());
      return make_client(std::move(e), a, cache, s);
    }
    return make_client(re::openai_compatible(key, job.endpoint, std::string()), a, cache, s);
  }
  return make_client(re::anthropic(api_key("ANTHROPIC_API_KEY", job.endpoint, "api.anthropic.com"),
                                        std::string(), job.endpoint), a, cache, s);
}

inline void print_job(const re::batch_job& job, std::ostream& out) {
  out << "requests-engine batch: " << re::to_string(job.status()) << ", " << job.size() << " requests in "
      << job.parts.size() << " batch(es): " << job.succeeded() << " succeeded, " << job.failed() << " failed, "
      << job.cached.size() << " from the cache (not sent)\n";
  for (const auto& p : job.parts)
    out << "  " << p.id << "  " << re::to_string(p.status) << "  requests " << p.first << ".."
        << p.first + p.count - 1 << (p.message.empty() ? "" : "  (" + p.message + ")") << "\n";
}

inline int batch_submit(const batch_args& a) {
  const std::string& p = a.provider;
  if (p != "openai" && p != "anthropic" && p != "azure")
    throw usage_error("batch: --provider must be openai, azure or anthropic");
  if (!a.api_version.empty() && p != "azure") throw usage_error("--api-version is for --provider azure only");
  if (a.input.empty()) throw usage_error("batch submit needs the input file");
  const std::string state = batch_state_path(a);
  if (std::ifstream(state))
    throw usage_error(state + " exists: a job was submitted for this output already (fetch or cancel it, "
                              "then remove the file, or choose another output)");
  input_options io;
  io.temperature = a.temperature;
  io.max_tokens = a.max_tokens;
  input_file in = read_input(a.input, io);
  for (const auto& pr : in.problems) std::cerr << "requests-engine batch: " << a.input << ": " << pr << "\n";
  if (in.items.empty()) throw usage_error("batch: no request to submit in " + a.input);
  run_args ra;
  ra.model = a.model;
  ra.provider = p;
  ra.dimensions = a.dimensions;
  const std::string api = api_of_url(in.batch_url);  // "" for plain input: chat
  if ((api == "responses" || api == "embeddings") && p == "anthropic")
    throw usage_error("batch: " + in.batch_url + " lines go to --provider openai or azure only");
  if (a.dimensions && api != "embeddings") throw usage_error("batch: --dimensions is for /v1/embeddings lines only");
  std::int64_t dims = 0;  // embeddings: the vectors' size (0: the model's)
  if (api == "embeddings") dims = embedding_dimensions(in, ra).value_or(0);
  // Azure: every line names the deployment, which --model gives (or every line, the same one).
  const std::string model = api == "embeddings" || p == "azure" ? single_model(in, ra, true) : a.model;
  if (api != "embeddings" && p != "azure") check_model(in, ra, false);

  std::vector<re::conversation> convs;
  std::vector<re::params> pars;
  json ids = json::array();
  for (const auto& item : in.items) {
    convs.push_back(item.conv);
    pars.push_back(item.par);
    ids.push_back(item.id);
  }
  // Absolute: status, wait and fetch may run from another folder.
  const std::string cache =
      a.no_cache ? std::string()
                 : std::filesystem::absolute(a.cache_dir.empty() ? default_cache_dir() : a.cache_dir).string();
  re::batch_settings s = batch_settings_of(a);
  json user = {{"input", a.input},
               {"format", in.format == input_format::openai_batch ? "openai_batch" : "plain"},
               {"url", in.batch_url},
               {"cache_dir", cache},
               {"ids", std::move(ids)}};
  if (dims > 0) user["dimensions"] = dims;
  std::optional<re::azure_openai_settings> azure;
  if (p == "azure") {
    azure = azure_settings(a.base_url, a.api_version);
    user["azure"] = {{"endpoint", azure->endpoint}, {"api_version", azure->api_version}, {"deployment", model}};
  }
  s.state_file(state).user_data(std::move(user));
  std::optional<re::batch_client> client;
  if (azure) {
    if (api == "responses") {
      client.emplace(make_client(re::openai_responses::azure(model, *azure), a, cache, s));
    } else if (api == "embeddings") {
      auto e = re::openai_embeddings::azure(model, *azure);
      if (dims > 0) e.dimensions(dims);
      client.emplace(make_client(std::move(e), a, cache, s));
    } else {
      client.emplace(make_client(re::openai_compatible::azure(model, *azure), a, cache, s));
    }
  } else if (p == "openai") {
    const std::string base = !a.base_url.empty() ? a.base_url : env_or("OPENAI_BASE_URL", "https://api.openai.com/v1");
    const std::string key = api_key("OPENAI_API_KEY", base, "api.openai.com");
    if (api == "responses") {
      client.emplace(make_client(re::openai_responses(key, base, a.model), a, cache, s));
    } else if (api == "embeddings") {
      re::openai_embeddings e(key, base, model);
      if (dims > 0) e.dimensions(dims);
      client.emplace(make_client(std::move(e), a, cache, s));
    } else {
      client.emplace(make_client(re::openai_compatible(key, base, a.model), a, cache, s));
    }
  } else {
    if (a.model.empty()) throw usage_error("--provider anthropic needs --model");
    const std::string base = !a.base_url.empty() ? a.base_url : env_or("ANTHROPIC_BASE_URL", "https://api.anthropic.com");
    client.emplace(make_client(re::anthropic(api_key("ANTHROPIC_API_KEY", base, "api.anthropic.com"), a.model, base), a, cache, s));
  }
  auto job = client->submit(convs, pars, a.name_space);
  if (!job) {
    std::cerr << "requests-engine batch: submit failed: " << job.error().describe() << "\n";
    return exit_failures;
  }
  print_job(*job, std::cout);
  std::cout << "requests-engine batch: job saved in " << state << "\n";
  return in.problems.empty() ? exit_ok : exit_failures;
}

inline int batch_fetch(re::batch_client& client, const re::batch_job& job, const batch_args& a) {
  auto results = client.fetch(job);
  if (!results) {
    std::cerr << "requests-engine batch: fetch failed: " << results.error().describe() << "\n";
    return exit_failures;
  }
  const json user = job.user.is_object() ? job.user : json::object();
  const json ids = user.value("ids", json::array());
  const input_format format = user.value("format", "plain") == "openai_batch" ? input_format::openai_batch
                                                                                : input_format::plain;
  const std::string tmp = a.output + ".tmp";
  std::size_t failed = 0;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (std::size_t i = 0; i < results->size(); ++i) {
      input_item item;
      item.id = i < ids.size() ? ids[i] : json(i);
      item.id_text = item.id.is_string() ? item.id.get<std::string>() : item.id.dump();
      item.hash = job.hashes[i];
      failed += (*results)[i] ? 0 : 1;
      out << output_line(item, format, user.value("url", std::string()), job.api == "openai", (*results)[i]);
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, a.output);
  std::cout << "requests-engine batch: wrote " << results->size() << " results to " << a.output << " (" << failed
            << " failed)\n";
  std::cout << re::make_cost_report(*results, re::price_table::builtin(), /*batch=*/true) << "\n";
  return failed == 0 ? exit_ok : exit_failures;
}

}  // namespace detail

inline int run_batch(const batch_args& a) {
  try {
    if (a.action == "submit") return detail::batch_submit(a);
    const std::string state = detail::batch_state_path(a);
    re::batch_job job = re::batch_job::load(state);
    re::batch_client client = detail::batch_client_for(job, a);
    if (a.action == "cancel") {
      auto st = client.cancel(job);
      if (!st) {
        std::cerr << "requests-engine batch: cancel failed: " << st.error().describe() << "\n";
        return exit_failures;
      }
    } else {
      auto progress = [](const re::batch_job& j) {
        std::cerr << "requests-engine batch: " << re::to_string(j.status()) << ", "
                  << j.succeeded() + j.failed() + j.cached.size() << "/" << j.size() << " done, " << j.failed()
                  << " failed\n";
      };
      auto st = a.action == "status" ? client.poll(job)
                                     : client.wait(job, progress,
                                                   std::chrono::milliseconds(
                                                       static_cast<std::int64_t>(a.timeout_seconds * 1000)));
      if (!st) {
        std::cerr << "requests-engine batch: " << a.action << " failed: " << st.error().describe() << "\n";
        return exit_failures;
      }
      if (a.action == "fetch") {
        if (!re::is_final(*st)) {
          std::cerr << "requests-engine batch: the job is " << re::to_string(*st)
                    << ": nothing to fetch yet (use wait)\n";
          return exit_failures;
        }
        job.save(state);  // the final status, as wait leaves it
        return detail::batch_fetch(client, job, a);
      }
    }
    job.save(state);
    detail::print_job(job, std::cout);
    return exit_ok;
  } catch (const usage_error& e) {
    std::cerr << "requests-engine batch: error: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {  // the job file, the input, a bad URL
    std::cerr << "requests-engine batch: error: " << e.what() << "\n";
    return exit_usage;
  }
}

/// Adds `batch` to the app; it runs from its own callback (a non-zero status ends the program).
inline void add_batch_command(CLI::App& app) {
  auto a = std::make_shared<batch_args>();
  CLI::App* c = app.add_subcommand("batch", "Provider batch APIs (OpenAI Batch, Anthropic Message Batches): half "
                                            "price, answers within 24 hours");
  c->footer(
      "  batch submit INPUT -o OUT   read INPUT (the formats of `run`; OpenAI Batch lines may name\n"
      "                              /v1/chat/completions, /v1/responses or /v1/embeddings), split it\n"
      "                              to the provider's\n"
      "                              limits, create the batches; the job goes to OUT.batch.json.\n"
      "                              Requests answered in the cache already are not sent\n"
      "  batch status -o OUT         ask the provider once and print the status\n"
      "  batch wait -o OUT           poll until every batch is finished (progress on stderr)\n"
      "  batch fetch -o OUT          wait, then write OUT (the output format of `run`, in input order)\n"
      "                              and store the answers in the cache: a later `run` of the same\n"
      "                              input costs nothing\n"
      "  batch cancel -o OUT         cancel the unfinished batches\n"
      "Everything after submit reads OUT.batch.json (batch ids, request hashes, input ids; no key),\n"
      "so it works after a restart. Keys come from OPENAI_API_KEY / ANTHROPIC_API_KEY.\n"
      "Exit status: 0 done; 1 failed requests or a provider error; 2 bad usage.");
  c->add_option("action", a->action, "submit, status, wait, fetch or cancel")
      ->required()
      ->check(CLI::IsMember({"submit", "status", "wait", "fetch", "cancel"}));
  c->add_option("input", a->input, "Input JSONL file (submit)");
  c->add_option("-o,--output", a->output, "Output JSONL file; the job is kept in OUT.batch.json")->required();
  c->add_option("--provider", a->provider,
                "openai, azure (Azure OpenAI's Batch API; --model names a Global-Batch deployment) or anthropic (submit)")
      ->capture_default_str();
  c->add_option("--header", a->headers, "'Name: value': a header of your own on every call (as for run; repeatable)");
  c->add_option("--secret-header", a->secret_headers,
                "'Name: VARIABLE': a header whose value is read from the environment variable (as for run)");
  c->add_option("--cache-key-header", a->cache_key_headers, "'Name: value': a header that is part of the cache key");
  c->add_option("--api-version", a->api_version,
                "--provider azure: the classic routes with this api-version (default $OPENAI_API_VERSION, else the v1 API)");
  c->add_option("--base-url", a->base_url, "API base URL (submit; default from OPENAI_BASE_URL / ANTHROPIC_BASE_URL)");
  c->add_option("--model", a->model, "Model for lines that name none (submit)");
  c->add_option("--temperature", a->temperature, "Temperature for lines that set none (submit)");
  c->add_option("--max-tokens", a->max_tokens, "max_tokens for lines that set none (submit)")
      ->check(CLI::PositiveNumber);
  c->add_option("--cache-dir", a->cache_dir, "Answer cache folder (submit; default as for `run`)");
  c->add_option("--namespace", a->name_space, "Cache namespace (submit)");
  c->add_flag("--no-cache", a->no_cache, "Do not store the fetched answers (submit)");
  c->add_option("--max-requests", a->max_requests, "Most requests per provider batch (default: the provider's)");
  c->add_option("--max-bytes", a->max_bytes, "Most bytes per provider batch (default: the provider's)");
  c->add_option("--poll-seconds", a->poll_seconds, "Between two status checks (wait, fetch)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--timeout", a->timeout_seconds, "Give up waiting after this many seconds (0 = never)")
      ->check(CLI::Range(0.0, 31536000.0));
  c->add_option("--max-retries", a->max_retries, "Retries of each API call on 429, 5xx and broken connections")
      ->capture_default_str();
  c->add_option("--ca-cert", a->ca_cert,
                "PEM file of the CA certificates to trust for HTTPS instead of the system's: a server behind a "
                "private CA ($SSL_CERT_FILE does the same)")
      ->check(CLI::ExistingFile);
  c->add_option("--proxy", a->proxy,
                "Send every API call through this proxy, http://[user:password@]host[:port]; \"\" for none "
                "(default: $HTTPS_PROXY / $HTTP_PROXY, less $NO_PROXY)");
  c->add_option("--dimensions", a->dimensions, "/v1/embeddings lines: the vectors' size (submit)")
      ->check(CLI::PositiveNumber);
  c->callback([a] {
    const int rc = run_batch(*a);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace requests_engine_cli
