// kwik-cp, the control process: reads its configuration (--config), or only checks it
// (--check-config), then runs control_server's epoll loop on this thread until SIGINT/SIGTERM.
// Under systemd (Type=notify): READY=1 once listening, whether or not kwikd is attached yet
// (the link retries, and KCP clients, the registry and kwikctl are served meanwhile); STATUS=
// says which; STOPPING=1 on the way out.
// Events go to stderr through log.hpp (--log-level); stdout carries the "listening on port" line.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <CLI/CLI.hpp>

#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/kwik_cp/config.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "common/sd_daemon.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

void notify(const std::string& state) {
    if (auto sent = kwik::sd::notify(state); !sent.ok()) {
        kwik::cp::log_line(kwik::cp::log_level::warning, "telling systemd: " + sent.message());
    }
}

// The configuration in one line, for the log at start.
std::string describe(const kwik::cp::control_server_config& c) {
    const bool v6 = c.listen_address.find(':') != std::string::npos;
    return "starting: server_id \"" + c.hello.server_id + "\", listening on " +
           (v6 ? "[" + c.listen_address + "]" : c.listen_address) + ":" + std::to_string(c.listen_port) + (c.listen_port == 0 ? " (any free port)" : "") +
           (c.tls ? " (TLS 1.3)" : " (plain TCP)") + ", " + std::to_string(c.keys.size()) +
           " key(s), kwikd shared memory " + c.link.shm_directory + "/" + c.link.region_name + ", registry of at most " +
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
    const std::string region = config->link.shm_directory + "/" + config->link.region_name;
    auto server = kwik::cp::control_server::create(std::move(config.value()));
    if (!server) {
        kwik::cp::log_line(kwik::cp::log_level::error, server.message());
        return 1;
    }
    kwik::cp::log_line(kwik::cp::log_level::notice, about);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    std::printf("%skwik-cp: listening on port %u\n", kwik::sd::journal_prefix(STDOUT_FILENO, kwik::sd::priority::info).c_str(),
                static_cast<unsigned>((*server)->port()));
    std::fflush(stdout);
    const auto status = [&](bool attached) {
        return "STATUS=listening on port " + std::to_string((*server)->port()) + "; kwikd " +
               (attached ? "attached (" : "not attached, retrying (") + region + ")";
    };
    bool attached = (*server)->link().attached();
    notify(std::string("READY=1\n") + status(attached));
    while (g_stop == 0) {
        (*server)->run_once(1000); // returns earlier when a socket, kwikd or a timer needs it
        if ((*server)->link().attached() != attached) {
            attached = !attached;
            notify(status(attached));
        }
    }
    notify("STOPPING=1\nSTATUS=stopping");
    kwik::cp::log_line(kwik::cp::log_level::notice, "stopping: " + std::to_string((*server)->sessions()) +
                                                        " session(s) open");
    (*server)->shutdown(std::chrono::milliseconds(2000)); // deregisters from [upstream], if any
    return 0;
}
