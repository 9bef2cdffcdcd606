// kwik-peer: a Kwik endpoint on Linux UDP sockets (docs/KWIK_PEER.md). The main thread parses
// the command line, opens the sockets and runs the data loop (peer_loop) on itself (--static,
// server) or beside the KCP session (kcp_client); SIGINT and SIGTERM stop it. Exit status:
// 0 verified, 1 transfer failed, 2 usage, 3 cannot open the sockets or reach kwik-cp.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/peer/command_line.hpp"
#include "tools/peer/kcp_client.hpp"
#include "tools/peer/peer_loop.hpp"
#include "tools/peer/report.hpp"

namespace {

kwik::peer::peer_loop* g_loop = nullptr;

extern "C" void on_signal(int) {
    if (g_loop != nullptr) {
        g_loop->request_stop();
    }
}

} // namespace

int main(int argc, char** argv) {
    using namespace kwik::peer;
    const std::vector<std::string> args(argv + 1, argv + argc);
    parse_outcome parsed = parse_command_line(args);
    std::fputs(parsed.out.c_str(), stdout);
    std::fputs(parsed.err.c_str(), stderr);
    if (!parsed.parsed) {
        return parsed.exit_code;
    }
    const peer_options& opts = *parsed.parsed;
    std::signal(SIGPIPE, SIG_IGN);
    auto loop = peer_loop::create(opts.loop);
    if (!loop) {
        std::fprintf(stderr, "kwik-peer: %s\n", loop.message().c_str());
        // A file named on the command line that cannot be opened is a usage error.
        return loop.message().rfind("--", 0) == 0 ? exit_usage : exit_unreachable;
    }
    g_loop = loop->get();
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // --static and server: the data loop runs here; otherwise on its own thread beside the KCP session.
    const bool with_kcp = opts.loop.side == kwik::transport::role::client && !opts.static_paths;
    std::string failure;
    const int status = with_kcp ? run_kcp_client(opts, **loop, failure) : (*loop)->run();
    run_report report = (*loop)->report();
    if (status == exit_unreachable) {
        report.error = failure;
    }
    std::fputs(summary_text(report).c_str(), stdout);
    std::fflush(stdout);
    if (!report.error.empty()) {
        std::fprintf(stderr, "kwik-peer: %s\n", report.error.c_str());
    }
    if (!opts.json_path.empty()) {
        auto written = write_report(opts.json_path, report);
        if (!written) {
            std::fprintf(stderr, "kwik-peer: %s\n", written.message().c_str());
            return status == exit_ok ? exit_failed : status;
        }
    }
    g_loop = nullptr;
    return status;
}
