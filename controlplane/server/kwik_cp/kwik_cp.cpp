// kwik-cp, the control process: reads its configuration (--config), or only checks it
// (--check-config), then runs control_server's epoll loop on this thread until SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <CLI/CLI.hpp>

#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/kwik_cp/config.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kwik-cp: Kwik's control process (KCP sessions, registry, the link to kwikd)"};
    std::string config_path;
    std::string check_path;
    app.add_option("--config", config_path, "the configuration file (TOML)")->check(CLI::ExistingFile);
    app.add_option("--check-config", check_path, "check this configuration file and exit; writes nothing")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);
    const bool checking = !check_path.empty();
    const std::string& path = checking ? check_path : config_path;
    if (path.empty()) {
        std::fprintf(stderr, "kwik-cp: --config FILE or --check-config FILE is required\n");
        return 2;
    }
    std::ifstream in(path, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    auto config = kwik::cp::parse_control_server_config(text, path, !checking);
    if (!config) {
        std::fprintf(stderr, "%s\n", config.message().c_str());
        return 1;
    }
    if (checking) {
        std::printf("%s: ok (%zu keys)\n", path.c_str(), config->keys.size());
        return 0;
    }
    auto server = kwik::cp::control_server::create(std::move(config.value()));
    if (!server) {
        std::fprintf(stderr, "kwik-cp: %s\n", server.message().c_str());
        return 1;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    std::printf("kwik-cp: listening on port %u\n", static_cast<unsigned>((*server)->port()));
    std::fflush(stdout);
    while (g_stop == 0) {
        (*server)->run_once(1000); // returns earlier when a socket, kwikd or a timer needs it
    }
    return 0;
}
