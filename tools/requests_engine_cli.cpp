// requests-engine: command-line tool for requests_engine.
//
// Subcommands:
//   run    send a JSONL file of requests, write one answer per line (tools/run_command.hpp)
//   embed  embed a JSONL file of texts, write one vector per line (tools/run_command.hpp)
//   cache  stats | verify | prune | export over a cache folder (tools/cache_command.hpp)
//   report make one HTML page from the events of runs (tools/report_command.hpp)
//   mock   run a local OpenAI-compatible mock server (tools/mock_command.hpp, tools/mock_server.hpp)
#include "batch_command.hpp"
#include "cache_command.hpp"
#include "mock_command.hpp"
#include "run_command.hpp"

#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"requests-engine: batch LLM inference tools"};
  app.require_subcommand(1);

  const requests_engine_cli::run_command run = requests_engine_cli::add_run_command(app);
  const requests_engine_cli::run_command embed = requests_engine_cli::add_embed_command(app);
  const requests_engine_cli::cache_command cache = requests_engine_cli::add_cache_command(app);
  const requests_engine_cli::mock_command mock = requests_engine_cli::add_mock_command(app);
  const requests_engine_cli::report_command report = requests_engine_cli::add_report_command(app);
  requests_engine_cli::add_batch_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a subcommand run from its callback (batch) ended: its status
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every other problem with the command line is a usage error,
    // exit 2 like those found later (CLI11's own codes, 100 and up, would mean nothing to scripts).
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (run.cmd->parsed()) return run.run();
    if (embed.cmd->parsed()) return embed.run();
    if (cache.cmd->parsed()) return cache.run();
    if (mock.cmd->parsed()) return mock.run();
    if (report.cmd->parsed()) return report.run();
  } catch (const std::exception& e) {
    std::cerr << "requests-engine: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
