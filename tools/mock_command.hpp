// The `requests-engine mock` subcommand: flags and the run loop around tools/mock_server.hpp.
// Included by tools/requests_engine_cli.cpp only.
#pragma once

#include "mock_server.hpp"

#include <CLI/CLI.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace requests_engine_cli {


struct mock_args {
  std::string host = "127.0.0.1";
  int port = 8088;
  std::string api_key_env;
  std::string tls_dir;
  int latency_ms = 0;
  int latency_jitter_ms = 0;
  std::size_t threads = 256;
  std::string port_file;
  std::vector<std::string> extra_key_envs, invalid_key_envs, quota_key_envs;
  double rpm = 0, tpm = 0, input_tpm = 0, output_tpm = 0;
  double fail_500 = 0, fail_429 = 0, fail_overload = 0, fail_reset = 0, fail_truncate = 0, fail_stall = 0;
  int fail_429_retry_after_ms = 1000;
  std::size_t stream_chunk_bytes = 8;
  int stream_event_delay_ms = 0;
  double fail_stream_cut = 0, fail_stream_error = 0, fail_stream_stall = 0;
  int stream_stall_ms = 5000;
  std::uint64_t seed = 0;
  std::string log_requests;
  bool log_bodies = false;
  std::vector<std::string> required_header_envs;  // "Name: VARIABLE"
  requests_engine_mock::server::batch_mock_options batch;
};

// Writes `content` to `path` atomically: a temporary file in the same
// directory, then rename(2).
inline void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "': " + err);
  }
}

inline int run_mock(const mock_args& args) {
  requests_engine_mock::server_options opts;
  opts.host = args.host;
  opts.port = args.port;
  opts.latency_ms = args.latency_ms;
  opts.latency_jitter_ms = args.latency_jitter_ms;
  opts.threads = args.threads;
  opts.rpm = args.rpm;
  opts.tpm = args.tpm;
  opts.input_tpm = args.input_tpm;
  opts.output_tpm = args.output_tpm;
  opts.fail_500 = args.fail_500;
  opts.fail_429 = args.fail_429;
  opts.fail_overload = args.fail_overload;
  opts.fail_reset = args.fail_reset;
  opts.fail_truncate = args.fail_truncate;
  opts.fail_stall = args.fail_stall;
  opts.fail_429_retry_after_ms = args.fail_429_retry_after_ms;
  opts.stream_chunk_bytes = args.stream_chunk_bytes;
  opts.stream_event_delay_ms = args.stream_event_delay_ms;
  opts.fail_stream_cut = args.fail_stream_cut;
  opts.fail_stream_error = args.fail_stream_error;
  opts.fail_stream_stall = args.fail_stream_stall;
  opts.stream_stall_ms = args.stream_stall_ms;
  opts.seed = args.seed;
  opts.log_requests_path = args.log_requests;
  opts.log_request_bodies = args.log_bodies;

  // Keys come from the environment, never from the command line (visible in ps).
  const auto env_key = [](const std::string& name, std::string& out) {
    const char* key = std::getenv(name.c_str());
    if (key == nullptr || *key == '\0') {
      std::cerr << "requests-engine mock: environment variable " << name << " is not set or empty\n";
      return false;
    }
    out = key;
    return true;
  };
  if (!args.api_key_env.empty() && !env_key(args.api_key_env, opts.api_key)) return 2;
  for (const std::string& spec : args.required_header_envs) {
    const auto colon = spec.find(':');
    std::string name = spec.substr(0, colon);
    std::string variable = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
    variable.erase(0, variable.find_first_not_of(' '));
    if (name.empty() || variable.empty()) {
      std::cerr << "requests-engine mock: --require-header-env '" << spec << "': expected 'Name: VARIABLE'\n";
      return 2;
    }
    std::string value;
    if (!env_key(variable, value)) return 2;
    opts.required_headers.emplace_back(std::move(name), std::move(value));
  }
  const std::pair<const std::vector<std::string>*, std::vector<std::string>*> key_lists[] = {
      {&args.extra_key_envs, &opts.extra_api_keys},
      {&args.invalid_key_envs, &opts.invalid_api_keys},
      {&args.quota_key_envs, &opts.quota_exhausted_api_keys}};
  for (const auto& [names, keys] : key_lists)
    for (const std::string& name : *names) {
      std::string key;
      if (!env_key(name, key)) return 2;
      keys->push_back(std::move(key));
    }

  std::string ca_note;
  if (!args.tls_dir.empty()) {
    const requests_engine_mock::tls_files pki = requests_engine_mock::make_test_pki(args.tls_dir);
    opts.cert_path = pki.server_cert;
    opts.key_path = pki.server_key;
    ca_note = "; trust CA certificate " + pki.ca_cert;
  }

  // Block SIGINT/SIGTERM in every thread (the server threads inherit this
  // mask); the main thread collects them with sigwait(). A no-op handler
  // first, so that a SIG_IGN inherited from a non-interactive shell (`cmd &`)
  // cannot make the signals be discarded on generation.
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0)
    throw std::runtime_error("cannot block SIGINT/SIGTERM");

  requests_engine_mock::server srv(opts);  // throws std::invalid_argument for bad rates
  srv.set_batch_options(args.batch);
  srv.start();

  if (!args.port_file.empty()) write_file_atomically(args.port_file, std::to_string(srv.port()) + "\n");

  std::cout << "requests-engine mock: listening on " << srv.base_url()
            << " (OpenAI-compatible chat and legacy completions, responses, embeddings; Anthropic messages"
            << (opts.api_key.empty() && opts.extra_api_keys.empty() ? "" : "; API key required") << ca_note << ")"
            << std::endl;

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  std::cerr << "requests-engine mock: received " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping ("
            << srv.requests() << " chat requests served)\n";
  srv.stop();
  // A line of its own: scripts parse the one above.
  std::cerr << "requests-engine mock: " << srv.requests_for_path("/v1/chat/completions") << " chat completions, "
            << srv.requests_for_path("/v1/messages") << " messages; " << srv.responses_with_status(200) << " answered 200, "
            << srv.responses_with_status(429) << " 429, " << srv.responses_with_status(0) << " dropped\n";
  std::cerr << "requests-engine mock: " << srv.requests_for_path("/v1/completions") << " legacy completions, "
            << srv.requests_for_path("/v1/responses") << " responses, " << srv.requests_for_path("/v1/embeddings")
            << " embeddings; " << srv.streamed_requests() << " streamed\n";
  // The Gemini, Vertex AI and Bedrock routes (tools/mock/google_aws.hpp).
  std::size_t gemini = 0, vertex = 0, bedrock = 0;
  for (const auto& [path, n] : srv.requests_by_path()) {
    if (path.rfind("/v1beta/models/", 0) == 0) gemini += n;
    else if (path.rfind("/model/", 0) == 0) bedrock += n;
    else if (path.find("/projects/") != std::string::npos) vertex += n;
  }
  std::cerr << "requests-engine mock: " << gemini << " gemini, " << vertex << " vertex, " << bedrock << " bedrock; "
            << srv.tokens_issued() << " access tokens issued\n";
  // The batch routes (not counted above): how many batches, and the lines uploaded in them.
  std::cerr << "requests-engine mock: " << srv.batches_created() << " batches created, " << srv.batch_lines()
            << " batch lines, " << srv.batch_calls() << " batch API calls\n";
  return 0;
}

// ---- provider batch APIs: the mock's batch flags ----
inline void add_batch_mock_flags(CLI::App* cmd, requests_engine_mock::server::batch_mock_options& b) {
  cmd->add_option("--batch-delay-ms", b.delay_ms,
                  "Batch APIs: time from creating a batch to its end (OpenAI: validating, in_progress, then completed)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-fail-rate", b.fail_rate,
                  "Batch APIs: fraction of lines answered with a 400 error (lines containing \"[fail]\" always are)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--batch-expire", b.expire, "Batch APIs: batches expire with only the first half of their lines answered");
  cmd->add_option("--batch-max-requests", b.max_requests, "Batch APIs: most requests per batch (0 = no limit)")
      ->capture_default_str();
}
// ---- end of the batch flags ----

// ---- `mock run-batch -i IN -o OUT`: an offline runner that behaves like vLLM's run-batch ----
struct run_batch_args {
  std::string input, output;
  double fail_rate = 0;        // fraction of lines answered with an error line (besides "[fail]")
  std::size_t stop_after = 0;  // write this many lines, then exit with --exit-code (0 = all)
  int exit_code = 1;
  int line_delay_ms = 0;  // after each output line
  std::uint64_t seed = 0;
};

// Reads OpenAI Batch input lines, writes one output line per input as vLLM's run-batch does:
// {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}, or for a
// failed line a 400 response without a body and the message in "error". Lines go out as they are
// answered (flushed), so a reader sees the file grow. With --stop-after N it writes N lines, says
// why on stderr and exits with --exit-code, as a runner that crashed would.
inline int run_mock_batch(const run_batch_args& a) {
  namespace mock = requests_engine_mock;
  std::ifstream in(a.input, std::ios::binary);
  if (!in) {
    std::cerr << "mock run-batch: cannot read " << a.input << "\n";
    return 2;
  }
  std::ofstream out(a.output, std::ios::binary | std::ios::trunc);
  if (!out) {
    std::cerr << "mock run-batch: cannot write " << a.output << "\n";
    return 2;
  }
  std::string line;
  std::size_t number = 0, written = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (a.stop_after > 0 && written == a.stop_after) {
      std::cerr << "mock run-batch: stopping after " << written << " lines on purpose (--stop-after); "
                << "RuntimeError: CUDA out of memory (simulated)\n";
      return a.exit_code;
    }
    const nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    if (!request.is_object() || !request.contains("custom_id")) {
      // vLLM stops on a line it cannot validate.
      std::cerr << "mock run-batch: " << a.input << ":" << number << ": not a batch request line\n";
      return 1;
    }
    std::string body, error, text;
    const std::string url = request.value("url", "");
    if (request.value("method", "") != "POST")
      error = "Only POST is supported";
    else if (!mock::detail::batch_routes::is_batch_endpoint(url))
      error = "URL " + url + " was used. Supported endpoints: /v1/chat/completions, /v1/responses, /v1/embeddings";
    else
      mock::detail::batch_routes::answer_openai_line(url, request.value("body", nlohmann::json()), body, error, text);
    const bool drawn = a.fail_rate > 0 && mock::detail::seeded_uniform(a.seed ^ 0x7ba7cULL, number) < a.fail_rate;
    if (error.empty() && (drawn || text.find("[fail]") != std::string::npos))
      error = "The mock runner failed this line on purpose.";
    nlohmann::json response = {{"status_code", error.empty() ? 200 : 400},
                               {"request_id", "vllm-batch-" + mock::detail::random_hex(16)},
                               {"body", error.empty() ? nlohmann::json::parse(body) : nlohmann::json()}};
    out << nlohmann::json{{"id", "vllm-" + mock::detail::random_hex(16)},
                          {"custom_id", request["custom_id"]},
                          {"response", std::move(response)},
                          {"error", error.empty() ? nlohmann::json() : nlohmann::json(error)}}
               .dump()
        << '\n';
    out.flush();
    ++written;
    if (a.line_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.line_delay_ms));
  }
  if (!out) {
    std::cerr << "mock run-batch: cannot write " << a.output << "\n";
    return 1;
  }
  std::cerr << "mock run-batch: " << written << " lines written to " << a.output << "\n";
  return 0;
}

/// Adds `mock` to the app; the returned flag says whether it was chosen, the function runs it.
struct mock_command {
  CLI::App* cmd = nullptr;
  std::shared_ptr<mock_args> args;
  CLI::App* run_batch_cmd = nullptr;
  std::shared_ptr<run_batch_args> batch_args;
  int run() const { return run_batch_cmd->parsed() ? run_mock_batch(*batch_args) : run_mock(*args); }
};

inline mock_command add_mock_command(CLI::App& app) {
  auto holder = std::make_shared<mock_args>();
  mock_args& mock = *holder;
  CLI::App* mock_cmd =
      app.add_subcommand("mock",
                         "Run a local mock server: OpenAI-compatible POST /v1/chat/completions, /v1/responses and Anthropic "
                         "POST /v1/messages (plus GET /health), whole or streamed, with rate limits and fault injection");
  mock_cmd->add_option("--host", mock.host, "Address to listen on")->capture_default_str();
  mock_cmd->add_option("--port", mock.port, "Port to listen on (0 = pick a free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  mock_cmd->add_option("--api-key-env", mock.api_key_env,
                       "Require 'Authorization: Bearer <key>' with the key read from this environment variable");
  mock_cmd->add_option("--tls-dir", mock.tls_dir,
                       "Serve HTTPS: generate a test CA and server certificate in this directory (ca.pem, server.pem, "
                       "server.key)");
  mock_cmd->add_option("--latency-ms", mock.latency_ms, "Fixed delay before each chat answer")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--latency-jitter-ms", mock.latency_jitter_ms, "Extra uniform random delay in [0, N] ms")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--threads", mock.threads, "Server worker threads (each open keep-alive connection holds one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  mock_cmd->add_option("--port-file", mock.port_file,
                       "Once listening, write the port number to this file (atomically: temp file + rename)");
  mock_cmd->add_option("--extra-key-env", mock.extra_key_envs,
                       "Also accept the key held in this environment variable (repeatable; an API-key pool)");
  mock_cmd->add_option("--invalid-key-env", mock.invalid_key_envs,
                       "The key in this environment variable always gets 401 invalid_api_key (repeatable)");
  mock_cmd->add_option("--quota-key-env", mock.quota_key_envs,
                       "The key in this environment variable is out of credit: OpenAI 429 insufficient_quota, "
                       "Anthropic 400 (repeatable)");
  mock_cmd->add_option("--rpm", mock.rpm, "Requests per minute per API key (0 = no limit); 429 past it")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--tpm", mock.tpm,
                       "Tokens per minute per API key, estimated as prompt bytes/4 + max_tokens (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--input-tpm", mock.input_tpm, "Input tokens per minute per API key (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--output-tpm", mock.output_tpm,
                       "Output tokens (max_tokens) per minute per API key (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  mock_cmd->add_option("--fail-500", mock.fail_500, "Fraction of requests answered 500")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-429", mock.fail_429, "Fraction of requests answered 429 with retry-after")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-overload", mock.fail_overload,
                       "Fraction of requests answered as overloaded (OpenAI 503, Anthropic 529)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-reset", mock.fail_reset,
                       "Fraction of requests whose connection is closed without an answer")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-truncate", mock.fail_truncate,
                       "Fraction of requests answered 200 with a body cut short (Content-Length 4096, 14 bytes sent)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-stall", mock.fail_stall,
                       "Fraction of requests that get silence for --stream-stall-ms, then a closed connection")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-429-retry-after-ms", mock.fail_429_retry_after_ms,
                       "The wait an injected 429 asks for (retry-after rounds it up to whole seconds)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  mock_cmd->add_option("--stream-chunk-bytes", mock.stream_chunk_bytes,
                       "Streamed answers: text and tool arguments go out in pieces of about this many bytes, one "
                       "event each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  mock_cmd->add_option("--stream-event-delay-ms", mock.stream_event_delay_ms,
                       "Streamed answers: pause between two events")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  mock_cmd->add_option("--fail-stream-cut", mock.fail_stream_cut,
                       "Fraction of streamed answers whose connection is closed after about half their events")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-stream-error", mock.fail_stream_error,
                       "Fraction of streamed answers that send an error event (in the API's shape) after about half "
                       "their events")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--fail-stream-stall", mock.fail_stream_stall,
                       "Fraction of streamed answers that go silent after about half their events for "
                       "--stream-stall-ms, then close")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  mock_cmd->add_option("--stream-stall-ms", mock.stream_stall_ms, "How long a stalled stream (or, with --fail-stall, a stalled answer) stays silent")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  mock_cmd->add_option("--seed", mock.seed, "Seed of the fault draws: the same seed, the same sequence of faults")
      ->capture_default_str();
  mock_cmd->add_option("--log-requests", mock.log_requests,
                       "Append one JSON line per model request to this file: time, path, key fingerprint (never "
                       "the key), status (0 = dropped), ms, last user text, body SHA-256");
  mock_cmd->add_flag("--log-bodies", mock.log_bodies,
                     "With --log-requests: each line also holds the request body as received (\"body\"), to check "
                     "what a client sends")
      ->needs(mock_cmd->get_option("--log-requests"));
  mock_cmd->add_option("--require-header-env", mock.required_header_envs,
                       "'Name: VARIABLE': every model request must carry header Name with the value of the "
                       "environment variable VARIABLE, as a gateway would (else 401, code gateway_header; repeatable)");
  add_batch_mock_flags(mock_cmd, mock.batch);

  auto rb = std::make_shared<run_batch_args>();
  CLI::App* rb_cmd = mock_cmd->add_subcommand(
      "run-batch",
      "Behave like vLLM's run-batch: read an OpenAI Batch input file, write one output line per input (mock "
      "answers), then exit; a stand-in for offline runners (batch --provider command)");
  rb_cmd->add_option("-i,--input-file", rb->input, "OpenAI Batch input JSONL")->required();
  rb_cmd->add_option("-o,--output-file", rb->output, "Where the output lines go")->required();
  rb_cmd->add_option("--fail-rate", rb->fail_rate, "Fraction of lines answered with an error line (also every "
                                                   "line whose last user message holds \"[fail]\")")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  rb_cmd->add_option("--stop-after", rb->stop_after, "Write this many lines, then exit with --exit-code (0 = all)")
      ->capture_default_str();
  rb_cmd->add_option("--exit-code", rb->exit_code, "Exit status after --stop-after")->capture_default_str();
  rb_cmd->add_option("--line-delay-ms", rb->line_delay_ms, "Pause after each output line")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  rb_cmd->add_option("--seed", rb->seed, "Seed of --fail-rate's draws")->capture_default_str();

  return mock_command{mock_cmd, holder, rb_cmd, rb};
}

}  // namespace requests_engine_cli
