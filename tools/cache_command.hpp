// The `requests-engine cache stats|verify|prune|export` subcommands, over
// requests_engine::cache_maintenance. Included by tools/requests_engine_cli.cpp only.
#pragma once

#include "run_command.hpp"  // default_cache_dir

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace requests_engine_cli {

struct cache_args {
  std::string dir;
  bool remove = false;          // verify
  std::string older_than;       // prune
  std::string name_space;       // prune
  bool all = false;             // prune
  std::string output;           // export
};

namespace detail {

// "90s", "15m", "12h", "7d", or plain seconds.
inline std::chrono::seconds parse_age(const std::string& s) {
  std::size_t used = 0;
  long long n = -1;
  try {
    n = std::stoll(s, &used);
  } catch (const std::exception&) {
    n = -1;
  }
  const std::string unit = n >= 0 ? s.substr(used) : std::string("?");
  long long mult = 0;
  if (unit.empty() || unit == "s") mult = 1;
  else if (unit == "m") mult = 60;
  else if (unit == "h") mult = 3600;
  else if (unit == "d") mult = 86400;
  if (n < 0 || mult == 0) throw usage_error("an age must be a number with s, m, h or d (e.g. 7d), got '" + s + "'");
  return std::chrono::seconds(n * mult);
}

inline void print_report(const re::cache_report& r, std::ostream& out) {
  out << "entries    " << r.entries << "\n";
  out << "bytes      " << r.bytes << "\n";
  out << "temporary  " << r.temporary << " (left by interrupted writers)\n";
  for (const auto& ns : r.by_namespace)
    out << "namespace  " << (ns.first.empty() ? "(default)" : "'" + ns.first + "'") << ": " << ns.second << "\n";
}

}  // namespace detail

inline int run_cache(const std::string& what, const cache_args& a) {
  try {
    const std::string dir = a.dir.empty() ? default_cache_dir() : a.dir;
    if (!std::filesystem::is_directory(dir)) throw usage_error("no cache folder at '" + dir + "'");
    if (what == "stats") {
      detail::print_report(re::cache_maintenance::stats(dir), std::cout);
      return exit_ok;
    }
    if (what == "verify") {
      const re::cache_report r = re::cache_maintenance::verify(dir, a.remove);
      for (const auto& p : r.problems) std::cout << "bad: " << p << "\n";
      std::cout << "entries    " << r.entries << "\nbad        " << r.bad << "\n";
      if (a.remove) std::cout << "removed    " << r.removed << "\n";
      return r.bad > 0 && !a.remove ? exit_failures : exit_ok;
    }
    if (what == "prune") {
      if (a.older_than.empty() && a.name_space.empty() && !a.all)
        throw usage_error("prune needs --older-than AGE, --namespace NAME, or --all");
      const std::chrono::seconds age = a.older_than.empty() ? std::chrono::seconds(0) : detail::parse_age(a.older_than);
      const std::optional<std::string> ns = a.name_space.empty() ? std::nullopt : std::optional<std::string>(a.name_space);
      const re::cache_report r = re::cache_maintenance::prune(dir, age, ns);
      std::cout << "removed    " << r.removed << "\n";
      return exit_ok;
    }
    // export
    std::size_t lines = 0;
    if (a.output.empty() || a.output == "-") {
      lines = re::cache_maintenance::export_jsonl(dir, std::cout);
      std::cout.flush();
    } else {
      std::ofstream out(a.output, std::ios::binary | std::ios::trunc);
      if (!out) throw usage_error("cannot open '" + a.output + "'");
      lines = re::cache_maintenance::export_jsonl(dir, out);
      out.flush();
      if (!out) throw std::runtime_error("cannot write '" + a.output + "'");
    }
    std::cerr << "requests-engine cache export: " << lines << " entries\n";
    return exit_ok;
  } catch (const usage_error& e) {
    std::cerr << "requests-engine cache " << what << ": error: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "requests-engine cache " << what << ": error: " << e.what() << "\n";
    return exit_failures;
  }
}

/// Adds `cache` and its four subcommands to the app.
struct cache_command {
  CLI::App* cmd = nullptr;
  std::vector<CLI::App*> subs;
  std::shared_ptr<cache_args> args;
  int run() const {
    for (CLI::App* s : subs)
      if (s->parsed()) return run_cache(s->get_name(), *args);
    return exit_usage;
  }
};

inline cache_command add_cache_command(CLI::App& app) {
  auto holder = std::make_shared<cache_args>();
  cache_args& a = *holder;
  CLI::App* c = app.add_subcommand("cache", "Inspect and maintain an answer cache folder");
  c->require_subcommand(1);
  const std::string dir_help = "Cache folder (default: $REQUESTS_ENGINE_CACHE_DIR or ./requests_engine_cache)";
  CLI::App* stats = c->add_subcommand("stats", "Entries, bytes, stray temporary files, entries per namespace");
  CLI::App* verify = c->add_subcommand("verify", "Read and check every entry; exit 1 if any is bad");
  CLI::App* prune = c->add_subcommand("prune", "Remove entries by age and/or namespace");
  CLI::App* exp = c->add_subcommand("export", "Every good entry as one JSON line");
  for (CLI::App* s : {stats, verify, prune, exp}) s->add_option("--cache-dir", a.dir, dir_help);
  verify->add_flag("--remove", a.remove, "Delete bad entries and old temporary files");
  prune->add_option("--older-than", a.older_than, "Only entries older than this (90s, 15m, 12h, 7d)");
  prune->add_option("--namespace", a.name_space, "Only entries created under this namespace");
  prune->add_flag("--all", a.all, "Every entry (when neither filter is given)");
  exp->add_option("-o,--output", a.output, "Write here instead of standard output");
  return cache_command{c, {stats, verify, prune, exp}, holder};
}

}  // namespace requests_engine_cli
