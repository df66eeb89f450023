// The `requests-engine batch` subcommand: the providers' batch APIs (re::batch_client) from the
// command line. submit writes the job (batch ids, request hashes, input ids; never a key) to
// OUT.batch.json; status, wait, fetch and cancel read it back, so they work after a restart.
// Included by tools/requests_engine_cli.cpp only.
#pragma once

#include "run_command.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
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
  std::string runner;         // --provider command: the command, with {input} and {output}
  std::string requests_file;  // export: where the requests go (default OUT.requests.jsonl)
  std::uint64_t inline_bytes = 0;  // gemini: the most bytes sent inline (0: the default, 20 MB)
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
  if (a.inline_bytes > 0) s.inline_bytes(a.inline_bytes);
  if (a.max_requests > 0 || a.max_bytes > 0) {
    re::batch_limits l = a.provider == "anthropic" ? re::batch_limits::anthropic()
                         : a.provider == "gemini"  ? re::batch_limits::gemini()
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
  if (job.api == "gemini") {
    // The host is what precedes /v1beta/models/{model}:generateContent; the model is in the identity.
    const std::string host = job.endpoint.substr(0, job.endpoint.rfind("/v1beta/models/"));
    return make_client(re::gemini(gemini_api_key(), job.identity.value("model", std::string()), host), a, cache, s);
  }
  if (job.api == "openai") {
    // An offline job's answers come from a file: no key is needed, none is sent anywhere.
    const std::string key = job.offline ? std::string() : api_key("OPENAI_API_KEY", job.endpoint, "api.openai.com");
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


// The input read and turned into conversations, and the client that sends (or exports) them.
struct batch_input {
  input_file in;
  std::vector<re::conversation> convs;
  std::vector<re::params> pars;
  std::optional<re::batch_client> client;
};

// The default base URL of --provider command: vLLM's OpenAI-compatible server, whose online
// answers the runner's then match in the cache (give --base-url for another).
constexpr const char* runner_base_url = "http://localhost:8000/v1";

// Reads the input and makes the client; `offline`: nothing will be sent (export, command), so
// no key is needed. The job file goes to `state`.
inline batch_input read_batch_input(const batch_args& a, const std::string& state, bool offline) {
  const std::string& p = a.provider;
  if (p != "openai" && p != "anthropic" && p != "azure" && p != "command" && p != "gemini")
    throw usage_error("batch: --provider must be openai, azure, anthropic, gemini or command");
  if (!a.api_version.empty() && p != "azure") throw usage_error("--api-version is for --provider azure only");
  if (a.input.empty()) throw usage_error("batch " + a.action + " needs the input file");
  if (offline && (p == "anthropic" || p == "gemini"))
    throw usage_error("batch " + a.action + " writes OpenAI Batch input files: --provider openai, azure or command");
  batch_input b;
  input_options io;
  io.temperature = a.temperature;
  io.max_tokens = a.max_tokens;
  b.in = read_input(a.input, io);
  const input_file& in = b.in;
  for (const auto& pr : in.problems) std::cerr << "requests-engine batch: " << a.input << ": " << pr << "\n";
  if (in.items.empty()) throw usage_error("batch: no request to submit in " + a.input);
  run_args ra;
  ra.model = a.model;
  ra.provider = p == "command" ? "openai" : p;
  ra.dimensions = a.dimensions;
  const std::string api = api_of_url(in.batch_url);  // "" for plain input: chat
  if ((api == "responses" || api == "embeddings") && (p == "anthropic" || p == "gemini"))
    throw usage_error("batch: " + in.batch_url + " lines go to --provider openai or azure only");
  if (a.dimensions && api != "embeddings") throw usage_error("batch: --dimensions is for /v1/embeddings lines only");
  std::int64_t dims = 0;  // embeddings: the vectors' size (0: the model's)
  if (api == "embeddings") dims = embedding_dimensions(in, ra).value_or(0);
  // Azure: every line names the deployment, which --model gives (or every line, the same one).
  // Gemini: the model is in the URL, one per batch.
  const std::string model =
      api == "embeddings" || p == "azure" || p == "gemini" ? single_model(in, ra, true) : a.model;
  if (api != "embeddings" && p != "azure" && p != "gemini") check_model(in, ra, false);

  json ids = json::array();
  for (const auto& item : in.items) {
    b.convs.push_back(item.conv);
    b.pars.push_back(item.par);
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
  if (azure) {
    if (api == "responses") {
      b.client.emplace(make_client(re::openai_responses::azure(model, *azure), a, cache, s));
    } else if (api == "embeddings") {
      auto e = re::openai_embeddings::azure(model, *azure);
      if (dims > 0) e.dimensions(dims);
      b.client.emplace(make_client(std::move(e), a, cache, s));
    } else {
      b.client.emplace(make_client(re::openai_compatible::azure(model, *azure), a, cache, s));
    }
  } else if (p == "openai" || p == "command") {
    const std::string base = !a.base_url.empty() ? a.base_url
                             : p == "command"    ? std::string(runner_base_url)
                                                 : env_or("OPENAI_BASE_URL", "https://api.openai.com/v1");
    const std::string key = offline ? std::string() : api_key("OPENAI_API_KEY", base, "api.openai.com");
    if (api == "responses") {
      b.client.emplace(make_client(re::openai_responses(key, base, a.model), a, cache, s));
    } else if (api == "embeddings") {
      re::openai_embeddings e(key, base, model);
      if (dims > 0) e.dimensions(dims);
      b.client.emplace(make_client(std::move(e), a, cache, s));
    } else {
      b.client.emplace(make_client(re::openai_compatible(key, base, a.model), a, cache, s));
    }
  } else if (p == "gemini") {
    const std::string base = !a.base_url.empty() ? a.base_url : "https://generativelanguage.googleapis.com";
    b.client.emplace(make_client(re::gemini(gemini_api_key(), model, base), a, cache, s));
  } else {
    if (a.model.empty()) throw usage_error("--provider anthropic needs --model");
    const std::string base = !a.base_url.empty() ? a.base_url : env_or("ANTHROPIC_BASE_URL", "https://api.anthropic.com");
    b.client.emplace(make_client(re::anthropic(api_key("ANTHROPIC_API_KEY", base, "api.anthropic.com"), a.model, base), a, cache, s));
  }
  return b;
}

// A job file already there: refused unless its answers were fetched (a fetched job can be
// replaced: the rerun sends only what the cache lacks, the failures).
inline void check_no_pending_job(const std::string& state) {
  if (!std::ifstream(state)) return;
  bool fetched = false;
  try {
    const re::batch_job old = re::batch_job::load(state);
    fetched = old.user.is_object() && old.user.value("fetched", false);
  } catch (const std::exception&) {
  }
  if (!fetched)
    throw usage_error(state + " exists: a job was submitted for this output already and not fetched (fetch or cancel "
                              "it, then remove the file, or choose another output)");
}

// ---- offline runners: --provider command, export and import ----

// 'text' for /bin/sh: single quotes, with any ' inside closed, escaped and reopened.
inline std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char ch : text) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// Field 22 of /proc/PID/stat (the start time in clock ticks): a pid and this identify one process
// even after the pid is reused. Empty if the process is gone.
inline std::string process_start_time(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return {};
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  for (int i = 3; i <= 22 && fields >> f; ++i) {
    if (i == 3 && f == "Z") return {};  // a zombie has finished
  }
  return f;
}

inline std::string file_tail(const std::string& path, std::size_t bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > static_cast<std::streamoff>(bytes) ? size - static_cast<std::streamoff>(bytes) : 0;
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (from > 0)
    if (const auto nl = text.find('\n'); nl != std::string::npos && nl + 1 < text.size()) text = "..." + text.substr(nl + 1);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const auto& l : lines) out << l << '\n';
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// The runner's files, in OUT.runner/.
struct runner_files {
  std::string dir, input, output, out_log, err_log, exit_status;
  explicit runner_files(const json& r)
      : dir(r.value("dir", std::string())),
        input(dir + "/requests.jsonl"),
        output(dir + "/results.jsonl"),
        out_log(dir + "/stdout.log"),
        err_log(dir + "/stderr.log"),
        exit_status(dir + "/exit-status") {}
};

// Starts `command` (its {input} and {output} replaced by the quoted paths) in a session of its
// own, detached: it outlives this process, and a later status, wait or cancel finds it by its
// pid and start time. The shell around it writes the command's exit status to a file when it
// ends, since only the parent could wait for it.
inline json start_runner(const std::string& command, const runner_files& f) {
  std::string cmd = command;
  for (const auto& [name, path] : {std::pair<std::string, std::string>{"{input}", f.input}, {"{output}", f.output}}) {
    for (std::size_t at; (at = cmd.find(name)) != std::string::npos;) cmd.replace(at, name.size(), shell_quoted(path));
  }
  for (const std::string* p : {&f.output, &f.out_log, &f.err_log, &f.exit_status}) std::filesystem::remove(*p);
  const std::string wrapper =
      "/bin/sh -c \"$1\" </dev/null >>\"$2\" 2>>\"$3\"; echo $? >\"$4.tmp\" && mv -f \"$4.tmp\" \"$4\"";
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("cannot start the runner: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    // Nothing of this process's: a pipe on our stdout (| tee) must not stay open while it runs.
    const int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      for (int fd = 0; fd <= 2; ++fd) ::dup2(null_fd, fd);
      if (null_fd > 2) ::close(null_fd);
    }
    ::execl("/bin/sh", "sh", "-c", wrapper.c_str(), "requests-engine-runner", cmd.c_str(), f.out_log.c_str(),
            f.err_log.c_str(), f.exit_status.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // The start time is read once the child exists; a child that ended already has an exit status.
  return {{"pid", static_cast<long>(pid)}, {"start_time", process_start_time(pid)}, {"command", cmd}};
}

// The runner's state into the job's one part: in_progress while it runs, completed on exit 0,
// failed otherwise (or when it vanished without an exit status).
inline void poll_runner(re::batch_job& job) {
  if (job.parts.empty()) return;
  re::batch_part& part = job.parts.front();
  if (re::is_final(part.status)) return;
  const json r = job.user.value("runner", json::object());
  const runner_files f(r);
  part.succeeded = count_lines(f.output);  // lines written so far (answers and error lines)
  std::ifstream st(f.exit_status);
  int code = -1;
  if (st >> code) {
    part.status = code == 0 ? re::batch_status::completed : re::batch_status::failed;
    if (code != 0) {
      // Its stderr's last line says why, in the job's status (each unanswered request gets more).
      std::string tail = file_tail(f.err_log, 300);
      if (const auto nl = tail.rfind('\n'); nl != std::string::npos) tail = tail.substr(nl + 1);
      part.message = "the runner exited with status " + std::to_string(code) + (tail.empty() ? "" : ": " + tail);
    }
    return;
  }
  const long pid = r.value("pid", 0L);
  const std::string started = r.value("start_time", std::string());
  if (pid > 0 && !started.empty() && process_start_time(pid) == started) {
    part.status = re::batch_status::in_progress;
    return;
  }
  if (std::ifstream(f.exit_status) >> code) return poll_runner(job);  // it ended between the two reads
  part.status = re::batch_status::failed;
  part.message = "the runner ended without an exit status (killed, or the machine restarted)";
}

inline void cancel_runner(re::batch_job& job) {
  poll_runner(job);
  if (job.parts.empty() || re::is_final(job.parts.front().status)) return;
  const json r = job.user.value("runner", json::object());
  const long pid = r.value("pid", 0L);
  if (pid > 0 && process_start_time(pid) == r.value("start_time", std::string()))
    ::kill(-static_cast<pid_t>(pid), SIGTERM);  // its session's group: the shell and the command
  job.parts.front().status = re::batch_status::cancelled;
  job.parts.front().message = "cancelled";
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
  const std::string state = batch_state_path(a);
  check_no_pending_job(state);
  const bool command = a.provider == "command";
  if (command && a.runner.empty())
    throw usage_error("--provider command needs --runner 'COMMAND {input} {output}'");
  if (!command && !a.runner.empty()) throw usage_error("--runner is for --provider command only");
  if (command && (a.runner.find("{input}") == std::string::npos || a.runner.find("{output}") == std::string::npos))
    throw usage_error("--runner must name {input} (the requests file it reads) and {output} (the results file it "
                      "writes): " + a.runner);
  batch_input b = read_batch_input(a, state, command);
  if (!command) {
    auto job = b.client->submit(b.convs, b.pars, a.name_space);
    if (!job) {
      std::cerr << "requests-engine batch: submit failed: " << job.error().describe() << "\n";
      return exit_failures;
    }
    print_job(*job, std::cout);
    std::cout << "requests-engine batch: job saved in " << state << "\n";
    return b.in.problems.empty() ? exit_ok : exit_failures;
  }
  auto exported = b.client->export_requests(b.convs, b.pars, a.name_space);
  if (!exported) {
    std::cerr << "requests-engine batch: submit failed: " << exported.error().describe() << "\n";
    return exit_failures;
  }
  re::batch_job& job = exported->job;
  const std::string dir = std::filesystem::absolute(a.output + ".runner").string();
  std::filesystem::create_directories(dir);
  job.user["runner"] = {{"dir", dir}, {"template", a.runner}};
  const runner_files f(job.user["runner"]);
  write_lines(f.input, exported->lines);
  if (!job.parts.empty()) {
    job.parts.front().id = "command";
    const json started = start_runner(a.runner, f);
    for (const auto& [k, v] : started.items()) job.user["runner"][k] = v;
    job.parts.front().status = re::batch_status::in_progress;
  }
  job.save(state);
  print_job(job, std::cout);
  std::cout << "requests-engine batch: " << exported->lines.size() << " requests in " << f.input << " given to: "
            << job.user["runner"].value("command", std::string("(nothing to run)")) << "\n"
            << "requests-engine batch: job saved in " << state << "\n";
  return b.in.problems.empty() ? exit_ok : exit_failures;
}

inline int batch_export(const batch_args& a) {
  const std::string state = batch_state_path(a);
  check_no_pending_job(state);
  batch_input b = read_batch_input(a, state, true);
  auto exported = b.client->export_requests(b.convs, b.pars, a.name_space);
  if (!exported) {
    std::cerr << "requests-engine batch: export failed: " << exported.error().describe() << "\n";
    return exit_failures;
  }
  const std::string path = a.requests_file.empty() ? a.output + ".requests.jsonl" : a.requests_file;
  write_lines(path, exported->lines);
  std::cout << "requests-engine batch: wrote " << exported->lines.size() << " requests to " << path << " ("
            << exported->job.cached.size() << " answered by the cache, not written); job saved in " << state
            << "\nrequests-engine batch: run them (OpenAI Batch, vLLM run-batch, ...), then: requests-engine batch "
               "import RESULTS.jsonl -o "
            << a.output << "\n";
  return b.in.problems.empty() ? exit_ok : exit_failures;
}

// Writes OUT in the output format of `run`, in input order; marks the job fetched.
inline int write_results(const re::batch_job& job, const std::vector<re::result<re::completion>>& results,
                         const batch_args& a) {
  const json user = job.user.is_object() ? job.user : json::object();
  const json ids = user.value("ids", json::array());
  const input_format format = user.value("format", "plain") == "openai_batch" ? input_format::openai_batch
                                                                                : input_format::plain;
  const std::string tmp = a.output + ".tmp";
  std::size_t failed = 0;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (std::size_t i = 0; i < results.size(); ++i) {
      input_item item;
      item.id = i < ids.size() ? ids[i] : json(i);
      item.id_text = item.id.is_string() ? item.id.get<std::string>() : item.id.dump();
      item.hash = job.hashes[i];
      failed += results[i] ? 0 : 1;
      out << output_line(item, format, user.value("url", std::string()), job.api == "openai", results[i]);
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, a.output);
  re::batch_job fetched = job;
  fetched.user["fetched"] = true;
  fetched.save(batch_state_path(a));
  std::cout << "requests-engine batch: wrote " << results.size() << " results to " << a.output << " (" << failed
            << " failed)\n";
  std::cout << re::make_cost_report(results, re::price_table::builtin(), /*batch=*/true) << "\n";
  return failed == 0 ? exit_ok : exit_failures;
}

inline int batch_fetch(re::batch_client& client, const re::batch_job& job, const batch_args& a) {
  auto results = client.fetch(job);
  if (!results) {
    std::cerr << "requests-engine batch: fetch failed: " << results.error().describe() << "\n";
    return exit_failures;
  }
  return write_results(job, *results, a);
}

// An offline job's results file into the cache and OUT; a request with no line in it fails with
// `missing` (why: the runner's exit and stderr, or the file's name).
inline int import_into(re::batch_client& client, const re::batch_job& job, const std::string& results_path,
                       const re::error& missing, const batch_args& a) {
  std::string text;
  if (std::ifstream in{results_path, std::ios::binary}) {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else if (job.parts.empty() || job.parts.front().id != "command") {
    throw usage_error("cannot read the results file " + results_path);
  }
  auto imported = client.import_results(job, text);
  if (!imported) {
    std::cerr << "requests-engine batch: import failed: " << imported.error().describe() << "\n";
    return exit_failures;
  }
  for (const auto& pr : imported->problems)
    std::cerr << "requests-engine batch: " << results_path << ": line " << pr.line << ": " << pr.message << "\n";
  std::vector<re::result<re::completion>> results;
  results.reserve(job.size());
  std::size_t absent = 0;
  for (auto& r : imported->results) {
    if (r) {
      results.push_back(std::move(*r));
    } else {
      ++absent;
      results.push_back(missing);
    }
  }
  std::cout << "requests-engine batch: " << results_path << ": " << imported->lines << " lines, "
            << imported->answered << " requests answered, " << imported->problems.size() << " lines left out, "
            << absent << " requests with no line\n";
  const int rc = write_results(job, results, a);
  return imported->problems.empty() ? rc : exit_failures;
}

inline int batch_import(const batch_args& a) {
  if (a.input.empty()) throw usage_error("batch import needs the results file (an OpenAI Batch output file)");
  const std::string state = batch_state_path(a);
  re::batch_job job = re::batch_job::load(state);
  if (!job.offline) throw usage_error(state + " is a job submitted to the provider: use batch fetch, not import");
  re::batch_client client = batch_client_for(job, a);
  return import_into(client, job, a.input, re::error{re::error_code::invalid_response, 0,
                                                     "batch: " + a.input + " has no line for this request", {}, 0, {}},
                     a);
}

// fetch for --provider command: the runner's results, and for each request it did not answer
// the runner's exit status and the tail of its stderr.
inline int runner_fetch(re::batch_client& client, const re::batch_job& job, const batch_args& a) {
  const runner_files f(job.user.value("runner", json::object()));
  std::string why = job.parts.empty() ? std::string() : job.parts.front().message;
  const std::string tail = file_tail(f.err_log, 600);
  re::error missing{job.status() == re::batch_status::cancelled ? re::error_code::cancelled : re::error_code::server_error,
                    0,
                    "batch: the runner wrote no line for this request" + (why.empty() ? std::string() : " (" + why + ")") +
                        (tail.empty() ? std::string() : "; its stderr ends: " + tail),
                    "runner_incomplete", 0, {}};
  return import_into(client, job, f.output, missing, a);
}

}  // namespace detail

inline int run_batch(const batch_args& a) {
  try {
    if (a.action == "submit") return detail::batch_submit(a);
    if (a.action == "export") return detail::batch_export(a);
    if (a.action == "import") return detail::batch_import(a);
    const std::string state = detail::batch_state_path(a);
    re::batch_job job = re::batch_job::load(state);
    const bool runner = job.offline && job.user.is_object() && job.user.contains("runner");
    if (job.offline && !runner)
      throw usage_error(state + " was exported for a runner of your own: bring its results in with batch import "
                                "RESULTS.jsonl -o " + a.output);
    re::batch_client client = detail::batch_client_for(job, a);
    if (a.action == "delete") {
      if (!job.user.is_object() || !job.user.value("fetched", false))
        throw usage_error("batch delete: fetch the job first (deleting a batch deletes its answers)");
      auto removed = client.remove(job);
      if (!removed) {
        std::cerr << "requests-engine batch: delete failed: " << removed.error().describe() << "\n";
        return exit_failures;
      }
      std::cout << "requests-engine batch: deleted " << *removed << " batches and files on the provider's side\n";
      return exit_ok;
    }
    if (a.action == "cancel") {
      if (runner) {
        detail::cancel_runner(job);
      } else if (auto st = client.cancel(job); !st) {
        std::cerr << "requests-engine batch: cancel failed: " << st.error().describe() << "\n";
        return exit_failures;
      }
    } else {
      auto progress = [](const re::batch_job& j) {
        std::cerr << "requests-engine batch: " << re::to_string(j.status()) << ", "
                  << j.succeeded() + j.failed() + j.cached.size() << "/" << j.size() << " done, " << j.failed()
                  << " failed\n";
      };
      const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout_seconds * 1000));
      re::result<re::batch_status> st = re::batch_status::validating;
      if (runner) {
        // The runner's progress is its results file growing; its end, the exit status file.
        const auto start = std::chrono::steady_clock::now();
        const auto pause = std::chrono::milliseconds(static_cast<std::int64_t>(a.poll_seconds * 1000));
        std::pair<re::batch_status, std::size_t> shown{re::batch_status::validating, std::size_t(-1)};
        for (;;) {
          detail::poll_runner(job);
          job.save(state);
          st = job.status();
          if (a.action == "status") break;
          // A line when something changed (polls of a local file are cheap and frequent).
          if (std::make_pair(*st, job.succeeded()) != shown) progress(job);
          shown = {*st, job.succeeded()};
          if (re::is_final(*st)) break;
          if (timeout.count() > 0 && std::chrono::steady_clock::now() - start >= timeout) {
            st = re::error{re::error_code::deadline_exceeded, 0, "the runner is still running when the wait timed out",
                           {}, 0, {}};
            break;
          }
          std::this_thread::sleep_for(pause);
        }
      } else {
        st = a.action == "status" ? client.poll(job) : client.wait(job, progress, timeout);
      }
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
        return runner ? detail::runner_fetch(client, job, a) : detail::batch_fetch(client, job, a);
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
  CLI::App* c = app.add_subcommand("batch", "Provider batch APIs (OpenAI Batch, Anthropic Message Batches, Gemini "
                                            "Batch Mode) and offline runners: half "
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
      "  batch delete -o OUT         Gemini: delete a fetched job's batches and files on the provider\n"
      "  batch export INPUT -o OUT   write the requests the cache does not answer as an OpenAI Batch input\n"
      "                              file (OUT.requests.jsonl, or --requests FILE), custom_id request-N,\n"
      "                              for a runner of your own\n"
      "  batch import RESULTS -o OUT read that runner's OpenAI Batch output file into the cache and\n"
      "                              write OUT; lines it cannot use are named with their line number\n"
      "  --provider command --runner 'vllm run-batch -i {input} -o {output} --model M'\n"
      "                              submit runs the command (detached) on the exported requests;\n"
      "                              status/wait follow its results file and its exit status; fetch\n"
      "                              imports what it wrote, the rest failing with its stderr's tail.\n"
      "                              Answers are cached as --base-url's server (default\n"
      "                              http://localhost:8000/v1) would give them online\n"
      "Everything after submit reads OUT.batch.json (batch ids, request hashes, input ids; no key),\n"
      "so it works after a restart; once fetched, a submit to the same OUT replaces it (sending only\n"
      "what the cache lacks). Keys come from OPENAI_API_KEY / ANTHROPIC_API_KEY /\n"
      "GEMINI_API_KEY.\n"
      "Exit status: 0 done; 1 failed requests or a provider error; 2 bad usage.");
  c->add_option("action", a->action, "submit, status, wait, fetch, cancel, delete, export or import")
      ->required()
      ->check(CLI::IsMember({"submit", "status", "wait", "fetch", "cancel", "export", "import", "delete"}));
  c->add_option("input", a->input, "Input JSONL file (submit, export); the results file (import)");
  c->add_option("-o,--output", a->output, "Output JSONL file; the job is kept in OUT.batch.json")->required();
  c->add_option("--provider", a->provider,
                "openai, azure (Azure OpenAI's Batch API; --model names a Global-Batch deployment), anthropic, "
                "gemini (the Gemini API's Batch Mode), or command (an offline runner: --runner) (submit, export)")
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
  c->add_option("--runner", a->runner,
                "--provider command: the command that reads {input} (OpenAI Batch lines) and writes {output} "
                "(OpenAI Batch output lines), run by /bin/sh, e.g. 'vllm run-batch -i {input} -o {output} --model M'");
  c->add_option("--inline-bytes", a->inline_bytes,
                "--provider gemini: batches of at most this many bytes go inline, larger ones as an uploaded file "
                "(default 20 MB, the API's limit)")
      ->check(CLI::PositiveNumber);
  c->add_option("--requests", a->requests_file, "export: where the requests go (default OUT.requests.jsonl)");
  c->add_option("--dimensions", a->dimensions, "/v1/embeddings lines: the vectors' size (submit)")
      ->check(CLI::PositiveNumber);
  c->callback([a] {
    const int rc = run_batch(*a);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace requests_engine_cli
