// tools/command.h: the subcommands of the `autoglm` CLI register themselves here, one file each
// (cmd_<name>.cpp), so adding a command touches no shared file.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace autoglm::cli {

// A subcommand receives argv with argv[0] = "autoglm <name>" and returns the process exit code.
using command_fn = std::function<int(int argc, char** argv)>;

struct command {
  std::string name;
  std::string summary;
  command_fn run;
};

std::vector<command>& command_table();

struct command_registration {
  command_registration(const char* name, const char* summary, command_fn fn) {
    command_table().push_back({name, summary, std::move(fn)});
  }
};

}  // namespace autoglm::cli

#define AUTOGLM_COMMAND(name, summary, fn) \
  static ::autoglm::cli::command_registration autoglm_command_##fn{name, summary, fn}
