// kwikctl's completion scripts (controlplane/kwikctl/completion.*): they name every subcommand
// and every option of the CLI11 tree, bash accepts the script, and bash completes from it
// (subcommands, their options, positional choices, nothing after an option that takes a value).
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>

#include "controlplane/kwikctl/command_line.hpp"

namespace kwik::ctl {
namespace {

void every_command(const CLI::App& app, const std::function<void(const CLI::App&)>& f) {
    f(app);
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        every_command(*sub, f);
    }
}

TEST(completion, names_every_subcommand_and_option_for_both_shells) {
    command_line cl;
    for (const char* shell : {"bash", "zsh"}) {
        const std::string script = cl.completion_script(shell);
        ASSERT_FALSE(script.empty()) << shell;
        std::size_t commands = 0;
        every_command(cl.app(), [&](const CLI::App& a) {
            if (a.get_parent() != nullptr) {
                ++commands;
                std::string path = a.get_name();
                for (const CLI::App* p = a.get_parent(); p->get_parent() != nullptr; p = p->get_parent()) {
                    path = p->get_name() + " " + path;
                }
                const std::string parent = path.size() > a.get_name().size()
                                               ? path.substr(0, path.size() - a.get_name().size() - 1)
                                               : "";
                EXPECT_NE(script.find("        \"" + path + "\")\n"), std::string::npos) << shell << ": no case for " << path;
                // The parent's case lists it among its subcommands.
                const std::string label = "        \"" + parent + "\")\n            _kw_subs=\"";
                const std::size_t at = script.find(label);
                ASSERT_NE(at, std::string::npos) << shell << ": no case for " << parent;
                const std::size_t from = at + label.size();
                const std::string subs = " " + script.substr(from, script.find('"', from) - from) + " ";
                EXPECT_NE(subs.find(" " + a.get_name() + " "), std::string::npos)
                    << shell << ": " << a.get_name() << " not among the subcommands of '" << parent << "':" << subs;
            }
            for (const CLI::Option* o : a.get_options()) {
                for (const std::string& l : o->get_lnames()) {
                    EXPECT_NE(script.find("--" + l), std::string::npos) << shell << ": option --" << l;
                }
            }
        });
        EXPECT_EQ(commands, 27u) << "status, show + 8 views, path + 2, scale, set + 3, health, registry + 3, watch, "
                                    "pin, doctor, completion";
    }
    EXPECT_EQ(cl.completion_script("fish"), "");
}

TEST(completion, positional_choices_are_offered) {
    command_line cl;
    const std::string script = cl.completion_script("bash");
    EXPECT_NE(script.find("min-rtt weighted round-robin redundant"), std::string::npos);
    EXPECT_NE(script.find("bash zsh"), std::string::npos);
    EXPECT_NE(script.find("status ports workers connections paths streams servers counters sessions"),
              std::string::npos);
}

// Runs bash with the script loaded and the words typed; returns COMPREPLY, one per line.
std::string complete_in_bash(const std::string& script, const std::string& words, int cword) {
    const std::filesystem::path file =
        std::filesystem::temp_directory_path() / ("kwikctl-completion-" + std::to_string(::getpid()) + ".bash");
    std::ofstream(file) << script << "\nCOMP_WORDS=(" << words << ")\nCOMP_CWORD=" << cword
                        << "\n_kwikctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    std::string out;
    FILE* p = ::popen(("bash --norc --noprofile " + file.string() + " 2>&1").c_str(), "r");
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) {
        out.append(buf, n);
    }
    EXPECT_EQ(::pclose(p), 0) << out;
    std::filesystem::remove(file);
    return out;
}

TEST(completion, bash_completes_from_the_tree) {
    if (::access("/bin/bash", X_OK) != 0) {
        GTEST_SKIP() << "no bash";
    }
    command_line cl;
    const std::string script = cl.completion_script("bash");
    const std::string top = complete_in_bash(script, "kwikctl ''", 1);
    for (const char* w : {"status\n", "show\n", "path\n", "scale\n", "set\n", "health\n", "registry\n", "watch\n",
                          "completion\n"}) {
        EXPECT_NE(top.find(w), std::string::npos) << w << " in " << top;
    }
    EXPECT_EQ(complete_in_bash(script, "kwikctl pa", 1), "path\n");
    EXPECT_EQ(complete_in_bash(script, "kwikctl show pa", 2), "paths\n");
    EXPECT_EQ(complete_in_bash(script, "kwikctl path a", 2), "add\n");
    const std::string add = complete_in_bash(script, "kwikctl path add --re", 3);
    EXPECT_EQ(add, "--remote\n");
    EXPECT_EQ(complete_in_bash(script, "kwikctl --server h:1 set scheduler --connection 7 ro", 7), "round-robin\n");
    EXPECT_EQ(complete_in_bash(script, "kwikctl path add --connection ''", 4), "\n")
        << "the value of --connection is not completed from the tree";
    const std::string globals = complete_in_bash(script, "kwikctl show paths --js", 3);
    EXPECT_EQ(globals, "--json\n") << "global options are offered after the subcommand";
}

TEST(completion, zsh_accepts_the_script_when_installed) {
    if (::access("/bin/zsh", X_OK) != 0 && ::access("/usr/bin/zsh", X_OK) != 0) {
        GTEST_SKIP() << "no zsh on this machine";
    }
    command_line cl;
    const std::filesystem::path file =
        std::filesystem::temp_directory_path() / ("kwikctl-completion-" + std::to_string(::getpid()) + ".zsh");
    std::ofstream(file) << cl.completion_script("zsh");
    EXPECT_EQ(std::system(("zsh -n " + file.string()).c_str()), 0);
    std::filesystem::remove(file);
}

} // namespace
} // namespace kwik::ctl
