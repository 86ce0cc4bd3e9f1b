// tools/main.cpp: `autoglm <command> [options]`; dispatches to the registered subcommands.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "command.h"
#include "core/log.h"

namespace autoglm::cli {
std::vector<command>& command_table() {
  static std::vector<command> table;
  return table;
}
}  // namespace autoglm::cli

static void print_usage() {
  auto table = autoglm::cli::command_table();
  std::sort(table.begin(), table.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::fprintf(stdout, "autoglm: inference engine and OpenAI-compatible server for AutoGLM-Phone-9B\n\n");
  std::fprintf(stdout, "usage: autoglm <command> [options]   (autoglm <command> --help for its options)\n\ncommands:\n");
  for (auto& c : table) std::fprintf(stdout, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 1 : 0;
  }
  // Logs go to stderr (stdout carries the commands' output); AUTOGLM_LOG_LEVEL=debug|info|warn|error|off.
  const char* level = std::getenv("AUTOGLM_LOG_LEVEL");
  autoglm::log_init(level ? level : "warn");
  for (auto& c : autoglm::cli::command_table()) {
    if (c.name == argv[1]) {
      std::string name = std::string("autoglm ") + argv[1];
      argv[1] = name.data();
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "autoglm %s: error: %s\n", c.name.c_str(), e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "autoglm: unknown command '%s' (see autoglm --help)\n", argv[1]);
  return 2;
}
