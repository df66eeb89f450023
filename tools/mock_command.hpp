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

  if (!args.api_key_env.empty()) {
    const char* key = std::getenv(args.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      std::cerr << "requests-engine mock: environment variable " << args.api_key_env << " is not set or empty\n";
      return 2;
    }
    opts.api_key = key;
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

  requests_engine_mock::server srv(opts);
  srv.start();

  if (!args.port_file.empty()) write_file_atomically(args.port_file, std::to_string(srv.port()) + "\n");

  std::cout << "requests-engine mock: listening on " << srv.base_url() << " (OpenAI-compatible chat completions"
            << (opts.api_key.empty() ? "" : "; API key required") << ca_note << ")" << std::endl;

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  std::cerr << "requests-engine mock: received " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping ("
            << srv.requests() << " chat requests served)\n";
  srv.stop();
  return 0;
}


/// Adds `mock` to the app; the returned flag says whether it was chosen, the function runs it.
struct mock_command {
  CLI::App* cmd = nullptr;
  std::shared_ptr<mock_args> args;
  int run() const { return run_mock(*args); }
};

inline mock_command add_mock_command(CLI::App& app) {
  auto holder = std::make_shared<mock_args>();
  mock_args& mock = *holder;
  CLI::App* mock_cmd =
      app.add_subcommand("mock", "Run a local OpenAI-compatible mock server (POST /v1/chat/completions, GET /health)");
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

  return mock_command{mock_cmd, holder};
}

}  // namespace requests_engine_cli
