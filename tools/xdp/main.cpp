// kwik-xdp: the operator's view of Kwik's XDP program on a kernel interface (drivers/af_xdp):
//   kwik-xdp status IFACE [--json]   what is attached, ours or not, mode, maps, counters
//   kwik-xdp detach IFACE [--force]  detach it (ours only unless --force)
//   kwik-xdp attach IFACE --object F --kwik-port N... [--address A]... [--mode native|generic]
// Exit status: 0 done, 1 the kernel or libbpf refused (message names the interface and errno),
// 2 a usage error (message names the flag). Single-threaded.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "drivers/af_xdp/xdp_program.hpp"

namespace {

namespace drivers = kwik::drivers;
using json = nlohmann::json;

int fail(const std::string& what) {
    std::fprintf(stderr, "kwik-xdp: %s\n", what.c_str());
    return 1;
}

int status(const std::string& iface, bool as_json) {
    auto attached = drivers::query_xdp(iface);
    if (!attached.ok()) {
        return fail(attached.message());
    }
    json j{{"interface", iface}, {"attached", attached->has_value()}};
    std::string text = iface + ": ";
    if (!attached->has_value()) {
        text += "no XDP program attached\n";
    } else {
        const drivers::xdp_attachment& a = **attached;
        j["program_id"] = a.program_id;
        j["program_name"] = a.name;
        j["mode"] = std::string(drivers::to_string(a.mode));
        j["ours"] = a.ours();
        text += "program " + std::to_string(a.program_id) + " '" + a.name + "', " + std::string(drivers::to_string(a.mode)) +
                " mode, " + (a.ours() ? "Kwik's" : "not Kwik's") + "\n";
        if (a.ours()) {
            auto p = drivers::xdp_program::open_attached(iface);
            if (!p.ok()) {
                return fail(p.message());
            }
            auto ports = p->kwik_ports();
            auto addresses = p->addresses();
            auto counters = p->counters();
            if (!ports.ok() || !addresses.ok() || !counters.ok()) {
                return fail(!ports.ok() ? ports.message() : !addresses.ok() ? addresses.message() : counters.message());
            }
            j["kwik_ports"] = *ports;
            json as = json::array();
            text += "  Kwik UDP ports:";
            for (auto port : *ports) {
                text += " " + std::to_string(port);
            }
            text += "\n  addresses:";
            for (const auto& addr : *addresses) {
                as.push_back(drivers::to_string(addr));
                text += " " + drivers::to_string(addr);
            }
            text += addresses->empty() ? " any\n" : "\n";
            j["addresses"] = as;
            json c = json::object();
            text += "  counters:";
            for (std::size_t v = 0; v < counters->by_verdict.size(); ++v) {
                c[std::string(drivers::verdict_name(v))] = counters->by_verdict[v];
                text += " " + std::string(drivers::verdict_name(v)) + " " + std::to_string(counters->by_verdict[v]);
            }
            text += "\n";
            c["passed"] = counters->passed();
            j["counters"] = c;
        }
    }
    std::fputs(as_json ? (j.dump() + "\n").c_str() : text.c_str(), stdout);
    return 0;
}

int detach(const std::string& iface, bool force) {
    auto attached = drivers::query_xdp(iface);
    if (!attached.ok()) {
        return fail(attached.message());
    }
    if (!attached->has_value()) {
        std::printf("%s: no XDP program attached\n", iface.c_str());
        return 0;
    }
    if (auto r = drivers::detach_xdp(iface, **attached, force); !r.ok()) {
        return fail(r.message());
    }
    std::printf("%s: detached program %u '%s' (%s)\n", iface.c_str(), (*attached)->program_id, (*attached)->name.c_str(),
                std::string(drivers::to_string((*attached)->mode)).c_str());
    return 0;
}

int attach(const std::string& iface, const std::string& object, const std::vector<std::uint16_t>& ports,
           const std::vector<drivers::xdp_address>& addresses, drivers::xdp_mode mode) {
    auto p = drivers::load_xdp_object(object);
    if (!p.ok()) {
        return fail(p.message());
    }
    if (auto r = p->set_kwik_ports(ports); !r.ok()) {
        return fail(r.message());
    }
    if (auto r = p->set_addresses(addresses); !r.ok()) {
        return fail(r.message());
    }
    if (auto r = p->attach(iface, mode); !r.ok()) {
        return fail(r.message());
    }
    std::printf("%s: attached program %u 'kwik_xdp' from %s, %s mode\n", iface.c_str(), p->program_id(), object.c_str(),
                std::string(drivers::to_string(mode)).c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kwik-xdp: Kwik's XDP program on a kernel interface (status, attach, detach)"};
    app.require_subcommand(1);
    std::string iface;
    bool as_json = false;
    bool force = false;
    std::string object;
    std::vector<int> ports;
    std::vector<std::string> address_text;
    std::string mode_text = "native";

    CLI::App* st = app.add_subcommand("status", "what is attached to IFACE: ours or not, mode, Kwik ports and "
                                                "addresses, per-verdict counters");
    st->add_option("IFACE", iface, "kernel interface")->required();
    st->add_flag("--json", as_json, "one JSON object");
    CLI::App* de = app.add_subcommand("detach", "detach the XDP program of IFACE (Kwik's only, unless --force)");
    de->add_option("IFACE", iface, "kernel interface")->required();
    de->add_flag("--force", force, "detach a program that is not Kwik's too");
    CLI::App* at = app.add_subcommand("attach", "load kwik_xdp from --object, fill its maps, attach it to IFACE "
                                                "(direct use, without kwikd's PMD)");
    at->add_option("IFACE", iface, "kernel interface")->required();
    at->add_option("--object", object, "the XDP object file (/usr/lib/kwik/kwik_xdp.o)")->required()->check(CLI::ExistingFile);
    at->add_option("--kwik-port", ports, "a Kwik UDP port (repeat for more, up to 8)")->required()->check(CLI::Range(1, 65535));
    at->add_option("--address", address_text, "a Kwik address, IPv4 or IPv6 (repeat; none: any address)");
    at->add_option("--mode", mode_text, "native or generic")->check(CLI::IsMember({"native", "generic"}))->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2; // --help: 0; a bad argument (named by CLI11): 2
    }
    if (*st) {
        return status(iface, as_json);
    }
    if (*de) {
        return detach(iface, force);
    }
    std::vector<std::uint16_t> kwik_ports;
    for (int p : ports) {
        if (std::find(kwik_ports.begin(), kwik_ports.end(), p) != kwik_ports.end()) {
            std::fprintf(stderr, "kwik-xdp: --kwik-port: %d given twice\n", p);
            return 2;
        }
        kwik_ports.push_back(static_cast<std::uint16_t>(p));
    }
    if (kwik_ports.size() > KWIK_XDP_MAX_PORTS) {
        std::fprintf(stderr, "kwik-xdp: --kwik-port: %zu ports; the program holds up to %d\n", kwik_ports.size(),
                     KWIK_XDP_MAX_PORTS);
        return 2;
    }
    std::vector<drivers::xdp_address> addresses;
    for (const std::string& a : address_text) {
        auto parsed = drivers::parse_xdp_address(a);
        if (!parsed) {
            std::fprintf(stderr, "kwik-xdp: --address: '%s' is neither an IPv4 nor an IPv6 address\n", a.c_str());
            return 2;
        }
        addresses.push_back(*parsed);
    }
    if (addresses.size() > KWIK_XDP_MAX_ADDRESSES) {
        std::fprintf(stderr, "kwik-xdp: --address: %zu addresses; the program holds up to %d\n", addresses.size(),
                     KWIK_XDP_MAX_ADDRESSES);
        return 2;
    }
    return attach(iface, object, kwik_ports, addresses, mode_text == "generic" ? drivers::xdp_mode::generic : drivers::xdp_mode::native);
}
