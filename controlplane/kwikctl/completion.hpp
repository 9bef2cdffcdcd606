// Shell completion for kwikctl, generated from its CLI11 command tree so it cannot drift from
// the commands: every subcommand, every option (with the global ones at every level, as
// fallthrough accepts them), the fixed choices of positionals, and file names after FILE
// options. bash and zsh. Pure; any thread.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
class Option;
} // namespace CLI

namespace kwik::ctl {

// What the tree cannot say by itself: the fixed choices of positionals (their validators
// check them; completion offers them).
struct completion_tree_hints {
    std::map<const CLI::Option*, std::vector<std::string>> choices;
};

// The script for "bash" or "zsh"; empty for any other shell.
std::string make_completion_script(const CLI::App& app, std::string_view shell, const completion_tree_hints& hints);

} // namespace kwik::ctl
