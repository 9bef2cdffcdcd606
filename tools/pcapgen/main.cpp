// kwik-pcapgen: writes a pcap of Kwik traffic (and optionally its JSON manifest) from command-line
// options or a TOML description. See --help.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "tools/common/pcap_writer.hpp"
#include "tools/pcapgen/generator_options.hpp"
#include "tools/pcapgen/traffic_generator.hpp"

namespace {

using namespace kwik::tools;

// Removes what a failed run leaves behind, so no half-written capture passes for a good one.
void remove_outputs(const pcapgen::generator_options& o) {
    if (o.output != "-") {
        std::remove(o.output.c_str());
    }
    if (!o.manifest.empty()) {
        std::remove(o.manifest.c_str());
    }
}

int run(const pcapgen::generator_options& o) {
    // Open the manifest before generating, so an unwritable path fails before any work.
    std::ofstream manifest;
    if (!o.manifest.empty()) {
        manifest.open(o.manifest, std::ios::binary | std::ios::trunc);
        if (!manifest) {
            std::cerr << "kwik-pcapgen: cannot create manifest " << o.manifest << ": " << std::strerror(errno)
                      << "\n";
            return 1;
        }
    }
    result<pcap_writer> out = pcap_writer::open(o.output);
    if (!out) {
        std::cerr << "kwik-pcapgen: " << out.message() << "\n";
        if (!o.manifest.empty()) {
            manifest.close();
            std::remove(o.manifest.c_str());
        }
        return 1;
    }
    result<nlohmann::json> m = pcapgen::generate_traffic(o, *out);
    if (!m) {
        std::cerr << "kwik-pcapgen: " << m.message() << "\n";
        (void)out->close();
        remove_outputs(o);
        return 1;
    }
    const result<void> closed = out->close();
    if (!closed) {
        std::cerr << "kwik-pcapgen: " << closed.message() << "\n";
        remove_outputs(o);
        return 1;
    }
    if (!o.manifest.empty()) {
        manifest << m->dump(1) << "\n";
        manifest.close();
        if (!manifest) {
            std::cerr << "kwik-pcapgen: cannot write manifest " << o.manifest << "\n";
            remove_outputs(o);
            return 1;
        }
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const pcapgen::parsed_options parsed = pcapgen::parse_options(argc, argv);
    if (!parsed.options) {
        return parsed.exit_code;
    }
    return run(*parsed.options);
}
