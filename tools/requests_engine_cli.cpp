// requests-engine: command-line tool for requests_engine.
//
// Subcommands:
//   mock   run a local OpenAI-compatible mock server (tools/mock_command.hpp, tools/mock_server.hpp)
#include "mock_command.hpp"

#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"requests-engine: batch LLM inference tools"};
  app.require_subcommand(1);

  const requests_engine_cli::mock_command mock = requests_engine_cli::add_mock_command(app);

  CLI11_PARSE(app, argc, argv);

  try {
    if (mock.cmd->parsed()) return mock.run();
  } catch (const std::exception& e) {
    std::cerr << "requests-engine: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
