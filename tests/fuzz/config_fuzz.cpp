// libFuzzer target for kwikd's configuration file (dataplane/engine/config.hpp). Every input is
// read as a TOML configuration. A rejected one must say why, each problem on its own line naming
// the file. An accepted one is printed back with to_toml, which must read again into the same
// configuration and print identically; its EAL argument vector must start with the program
// name and name every port's device. Any disagreement aborts (a crash for libFuzzer).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/engine/config.hpp"

namespace {

using namespace kwik::engine;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "config_fuzz: %s\n%s\n", what, detail.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const config_result r = parse_config(text, "f.toml");
    if (!r.ok()) {
        if (r.message().empty() || r.error().exit_code != 1) {
            fail("a rejection without a message", std::string(text));
        }
        std::istringstream lines(r.message());
        std::string line;
        while (std::getline(lines, line)) {
            if (line.rfind("f.toml", 0) != 0) {
                fail("a problem that does not name the file", r.message());
            }
        }
        return 0;
    }
    const std::string printed = to_toml(*r);
    const config_result again = parse_config(printed, "f.toml");
    if (!again.ok()) {
        fail("to_toml's output is rejected", again.message() + "\n--- printed:\n" + printed);
    }
    if (!(*again == *r)) {
        fail("to_toml's output reads back differently", printed);
    }
    if (to_toml(*again) != printed) {
        fail("to_toml is not stable", printed);
    }
    const std::vector<std::string> args = eal_arguments(*r);
    if (args.empty() || args[0] != "kwikd") {
        fail("EAL argv without the program name", printed);
    }
    for (const port_settings& p : r->ports) {
        bool named = false;
        for (const std::string& a : args) {
            named = named || a == p.device;
        }
        if (!named) {
            fail("a port's device missing from the EAL argv", p.device);
        }
    }
    return 0;
}
