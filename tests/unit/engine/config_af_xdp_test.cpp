// kwikd's configuration of net_af_xdp ports (dataplane/engine/config.cpp read_af_xdp): the
// device gets xdp_prog, start_queue and queue_count unless given, [[port]] xdp_program is
// checked for readability and consistency, rx_queues must match the workers and queue_count, no
// [exception] device serves such a port, and --check-config's TOML reads back unchanged. Every
// error names its file, line and field exactly.
#include "dataplane/engine/config.hpp"
#include "drivers/af_xdp/xdp_object_path.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace kwik::engine {
namespace {

using strings = std::vector<std::string>;

strings lines_of(const std::string& text) {
    strings out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

// A readable stand-in for kwik_xdp.o (the configuration checks only that it can be read).
class config_af_xdp : public ::testing::Test {
protected:
    void SetUp() override {
        _object = ::testing::TempDir() + "kwik_xdp_config_test_" + std::to_string(getpid()) + ".o";
        std::ofstream(_object) << "not checked beyond being readable";
    }
    void TearDown() override { ::unlink(_object.c_str()); }

    // [kwikd] with two workers, then one net_af_xdp port on eth1 whose lines follow.
    std::string text(const std::string& device_args, const std::string& port_lines) const {
        return "[kwikd]\nworker_lcores = [1, 2]\n"                    // lines 1-2
               "[[port]]\ndevice = \"net_af_xdp0,iface=eth1" + device_args + "\"\n" // lines 3-4
               "addresses = [\"10.0.0.1/24\"]\n" + port_lines;        // line 5, then the case's
    }
    std::string with_object() const { return "xdp_program = \"" + _object + "\"\n"; } // line 6

    std::string _object;
};

TEST_F(config_af_xdp, the_device_gets_the_program_and_its_queues) {
    config_result r = parse_config(text("", with_object()), "t.toml");
    ASSERT_TRUE(r.ok()) << r.message();
    const port_settings& p = r->ports[0];
    EXPECT_EQ(p.device, "net_af_xdp0,iface=eth1,xdp_prog=" + _object + ",start_queue=0,queue_count=2");
    EXPECT_EQ(p.xdp_program, _object);
    EXPECT_EQ(p.rx_queues, 2);
    const std::vector<std::string> eal = eal_arguments(*r);
    EXPECT_NE(std::find(eal.begin(), eal.end(), p.device), eal.end());

    // Given in the device: kept, and xdp_program follows it.
    r = parse_config(text(",xdp_prog=" + _object + ",start_queue=4,queue_count=2", ""), "t.toml");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->ports[0].device, "net_af_xdp0,iface=eth1,xdp_prog=" + _object + ",start_queue=4,queue_count=2");
    EXPECT_EQ(r->ports[0].xdp_program, _object);

    // --check-config's output reads back to the same configuration.
    const config_result again = parse_config(to_toml(*r), "again.toml");
    ASSERT_TRUE(again.ok()) << again.message() << "\n" << to_toml(*r);
    EXPECT_EQ(again->ports, r->ports);
}

TEST_F(config_af_xdp, the_default_object_must_be_readable) {
    if (::access(KWIK_XDP_OBJECT_PATH, R_OK) == 0) {
        GTEST_SKIP() << KWIK_XDP_OBJECT_PATH << " is installed here";
    }
    const config_result r = parse_config(text("", ""), "t.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(lines_of(r.message()),
              strings{"t.toml:3: port[0].xdp_program: '" KWIK_XDP_OBJECT_PATH "' (the default) (the XDP object file) "
                      "is not readable: No such file or directory (built as drivers/af_xdp/kwik_xdp.o, installed as "
                      KWIK_XDP_OBJECT_PATH ")"});
}

TEST_F(config_af_xdp, other_devices_have_no_program) {
    config_result r = parse_config("[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\n", "t.toml");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_TRUE(r->ports[0].xdp_program.empty());
    EXPECT_EQ(to_toml(*r).find("xdp_program"), std::string::npos);
}

TEST_F(config_af_xdp, every_problem_is_named_exactly) {
    struct error_case {
        const char* what;
        std::string text;
        strings expected;
    };
    const std::string missing = ::testing::TempDir() + "no-such-kwik_xdp.o";
    const error_case cases[] = {
        {"unreadable xdp_program", text("", "xdp_program = \"" + missing + "\"\n"),
         {"t.toml:6: port[0].xdp_program: '" + missing +
          "' (the XDP object file) is not readable: No such file or directory (built as "
          "drivers/af_xdp/kwik_xdp.o, installed as " KWIK_XDP_OBJECT_PATH ")"}},
        {"xdp_program differs from xdp_prog", text(",xdp_prog=/other.o", with_object()),
         {"t.toml:6: port[0].xdp_program: '" + _object + "' differs from the device's xdp_prog=/other.o"}},
        {"queue_count differs from rx_queues", text(",queue_count=4", with_object()),
         {"t.toml:4: port[0].device: 'net_af_xdp0,iface=eth1,queue_count=4': queue_count=4 differs from rx_queues 2 (one AF_XDP socket per rx queue)"}},
        {"rx_queues below the workers", text("", with_object() + "rx_queues = 1\n"),
         {"t.toml:7: port[0].rx_queues: 1 differs from the 2 worker lcores: net_af_xdp sends on tx queue i "
          "through rx queue i's socket, and every worker sends on its own tx queue"}},
        {"no iface", "[kwikd]\nworker_lcores = [1]\n[[port]]\ndevice = \"net_af_xdp0,xdp_prog=" + _object +
                         "\"\naddresses = [\"10.0.0.1/24\"]\n",
         {"t.toml:4: port[0].device: 'net_af_xdp0,xdp_prog=" + _object +
          "': net_af_xdp needs iface=<kernel interface>"}},
        {"xdp_program on another device",
         "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\nxdp_program = \"" + _object + "\"\n",
         {"t.toml:4: port[0].xdp_program: only for a net_af_xdp device (device is 'net_ring0')"}},
        {"an exception device for an af_xdp port",
         text("", with_object()) + "[exception]\ndevice = \"net_tap0,iface=kwik0\"\n",
         {"t.toml:8: exception.device: port[0] is net_af_xdp: its XDP program already leaves what is not "
          "Kwik to the kernel's own interface, so it takes no exception device"}},
    };
    for (const error_case& k : cases) {
        const config_result r = parse_config(k.text, "t.toml");
        ASSERT_FALSE(r.ok()) << k.what;
        EXPECT_EQ(lines_of(r.message()), k.expected) << k.what << "\n--- text:\n" << k.text;
    }
}

} // namespace
} // namespace kwik::engine
