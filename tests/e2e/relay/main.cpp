// kwik-relay: the end-to-end tests' transparent L3 impairment relay (tests/e2e/README.md). Parses
// the command line, creates the TUN devices and the control socket, prints "kwik-relay: ready"
// and runs the loop on the main thread until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "tests/e2e/relay/relay.hpp"

int main(int argc, char** argv) {
    using namespace kwik::relay;
    options o;
    std::vector<std::string> paths;
    std::vector<std::string> up_from;
    CLI::App app{"kwik-relay: a transparent L3 impairment relay for the end-to-end tests. Each --path gets a TUN "
                 "device; every IP packet routed into it is impaired (loss, Gilbert-Elliott bursts, delay, jitter, "
                 "reordering, duplication, blackout) for its direction and written back into the same device. "
                 "A packet whose source lies in an --up-from prefix travels up (client to server), any other "
                 "down. Commands on the --control socket, one per line, each answered by one JSON line: "
                 "set NAME [up|down] key=value..., blackout NAME on|off, stats [NAME], reset NAME.",
                 "kwik-relay"};
    app.footer("Exit status: 0 stopped by SIGINT/SIGTERM, 1 a device or socket could not be set up, 2 a bad option.");
    app.add_option("--control", o.control_path, "Unix stream socket to listen on for commands")
        ->required()
        ->type_name("PATH");
    app.add_option("--path", paths, "a path and the TUN device the relay creates for it; repeat per path")
        ->required()
        ->type_name("NAME=TUNDEV");
    app.add_option("--up-from", up_from, "source prefix of the up direction (client side); repeat for several")
        ->required()
        ->type_name("PREFIX");
    app.add_option("--seed", o.seed, "seed of the random decisions (the same seed replays each path's)")
        ->default_val(1);
    app.add_option("--pool", o.pool, "buffers for packets that wait (delay, jitter, reorder); beyond, dropped")
        ->check(CLI::Range(1u, 1u << 20))
        ->default_val(4096);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    for (const std::string& p : paths) {
        const auto eq = p.find('=');
        if (eq == 0 || eq == std::string::npos || eq + 1 == p.size()) {
            std::cerr << "kwik-relay: --path: '" << p << "' is not NAME=TUNDEV\n";
            return 2;
        }
        for (const path_spec& seen : o.paths) {
            if (seen.name == p.substr(0, eq) || seen.tun_device == p.substr(eq + 1)) {
                std::cerr << "kwik-relay: --path: '" << p << "' repeats a name or device\n";
                return 2;
            }
        }
        o.paths.push_back(path_spec{p.substr(0, eq), p.substr(eq + 1)});
    }
    if (o.paths.size() > 0xFFFF) {
        std::cerr << "kwik-relay: --path: at most 65535 paths\n";
        return 2;
    }
    for (const std::string& text : up_from) {
        auto p = parse_prefix(text);
        if (!p) {
            std::cerr << "kwik-relay: --up-from: " << p.message() << "\n";
            return 2;
        }
        o.up_from.push_back(*p);
    }
    auto created = relay::create(o);
    if (!created) {
        std::cerr << "kwik-relay: " << created.message() << "\n";
        return 1;
    }
    std::unique_ptr<relay> r = std::move(*created);
    std::cout << "kwik-relay: ready" << std::endl;
    if (auto done = r->run(); !done) {
        std::cerr << "kwik-relay: " << done.message() << "\n";
        return 1;
    }
    return 0;
}
