// kwik-cp, the control process: reads its configuration (--config), or only checks it
// (--check-config), then runs control_server's epoll loop on this thread until SIGINT/SIGTERM.
#include <chrono>
// Events go to stderr through log.hpp (--log-level); stdout carries the "listening on port" line.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <CLI/CLI.hpp>

#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/kwik_cp/config.hpp"
#include "controlplane/server/kwik_cp/log.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// The configuration in one line, for the log at start.
std::string describe(const kwik::cp::control_server_config& c) {
    const bool v6 = c.listen_address.find(':') != std::string::npos;
    return "starting: server_id \"" + c.hello.server_id + "\", listening on " +
           (v6 ? "[" + c.listen_address + "]" : c.listen_address) + ":" + std::to_string(c.listen_port) + (c.listen_port == 0 ? " (any free port)" : "") +
           (c.tls ? " (TLS 1.3)" : " (plain TCP)") + ", " + std::to_string(c.keys.size()) +
           " key(s), kwikd shared memory /" + c.link.region_name + ", registry of at most " +
           std::to_string(c.registry.max_servers) + " servers (expiry " + std::to_string(c.registry.expiry_ms) +
           " ms, " + std::to_string(c.registry.max_results) + " per discovery answer), log level " +
           std::string(kwik::cp::to_string(kwik::cp::current_log_level()));
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kwik-cp: Kwik's control process (KCP sessions, registry, the link to kwikd)"};
    std::string config_path;
    std::string check_path;
    std::string level = "info";
    app.add_option("--config", config_path, "the configuration file (TOML)")->check(CLI::ExistingFile);
    app.add_option("--check-config", check_path, "check this configuration file and exit; writes nothing")
        ->check(CLI::ExistingFile);
    app.add_option("--log-level", level, "the least important events logged to stderr: " + kwik::cp::log_level_names())
        ->check([](const std::string& v) {
            return kwik::cp::parse_log_level(v) ? std::string() : "not one of " + kwik::cp::log_level_names();
        });
    CLI11_PARSE(app, argc, argv);
    kwik::cp::set_log_level(*kwik::cp::parse_log_level(level));
    kwik::cp::install_protobuf_log_handler();
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
    const std::string about = describe(config.value());
    auto server = kwik::cp::control_server::create(std::move(config.value()));
    if (!server) {
        kwik::cp::log_line(kwik::cp::log_level::error, server.message());
        return 1;
    }
    kwik::cp::log_line(kwik::cp::log_level::notice, about);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    std::printf("kwik-cp: listening on port %u\n", static_cast<unsigned>((*server)->port()));
    std::fflush(stdout);
    while (g_stop == 0) {
        (*server)->run_once(1000); // returns earlier when a socket, kwikd or a timer needs it
    }
    kwik::cp::log_line(kwik::cp::log_level::notice, "stopping: " + std::to_string((*server)->sessions()) +
                                                        " session(s) open");
    (*server)->shutdown(std::chrono::milliseconds(2000)); // deregisters from [upstream], if any
    return 0;
}
