// kwikctl, Kwik's operator CLI: parses the command (command_line), resolves the connection
// settings (flag > environment > config file), opens a KCP session with kwik-cp as an operator
// and prints its OperatorResponse as tables or JSON; `watch` repeats a view. Exit status: 0 ok,
// 1 kwik-cp refused (its error on stderr), 2 bad arguments, 3 cannot connect, hello rejected or
// no answer in time. `doctor` checks the host instead (doctor.hpp): 0 no failure, 1 a failure.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "controlplane/kwikctl/command_line.hpp"
#include "controlplane/kwikctl/operator_session.hpp"
#include "controlplane/kwikctl/settings.hpp"
#include "controlplane/kwikctl/table_output.hpp"
#include "controlplane/kwikctl/watch.hpp"

int main(int argc, char** argv) {
    using namespace kwik::ctl;
    const std::vector<std::string> args(argv + 1, argv + argc);
    command_line cli;
    parse_outcome parsed = cli.parse(args);
    std::fputs(parsed.out.c_str(), stdout);
    std::fputs(parsed.err.c_str(), stderr);
    if (!parsed.parsed) {
        return parsed.exit_code;
    }
    const invocation& inv = *parsed.parsed;
    if (inv.what == invocation::kind::doctor) {
        std::signal(SIGPIPE, SIG_IGN);
        const auto findings = doctor::run(inv.doctor, process_environment());
        const std::string out = inv.json ? doctor::to_json(findings).dump(2) + "\n" : doctor::render_text(findings);
        std::fputs(out.c_str(), stdout);
        return doctor::exit_code(findings);
    }
    auto settings = resolve_settings(inv.settings, process_environment());
    if (!settings) {
        std::fprintf(stderr, "kwikctl: %s\n", settings.message().c_str());
        return exit_bad_arguments;
    }
    std::signal(SIGPIPE, SIG_IGN);
    auto session = operator_session::open(*settings);
    if (!session) {
        std::fprintf(stderr, "kwikctl: %s\n", session.message().c_str());
        return exit_unreachable;
    }
    if (inv.what == invocation::kind::watch) {
        const int status = run_watch(**session, inv, stdout, stderr);
        (*session)->close();
        return status;
    }
    auto response = (*session)->request(inv.request);
    (*session)->close();
    if (!response) {
        std::fprintf(stderr, "kwikctl: %s: %s\n", inv.command.c_str(), response.message().c_str());
        return exit_unreachable;
    }
    std::string out, err;
    const int status = response_output(*response, inv.json, out, err);
    std::fputs(out.c_str(), stdout);
    std::fputs(err.c_str(), stderr);
    return status;
}
