// kwikd's configuration (dataplane/engine/config.hpp): valid files read into the values they
// say, every validation problem reported with its exact text (file, line, field, what), the
// precedence of command-line overrides, the EAL argument vector, and the shipped sample file.
#include "dataplane/engine/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "dataplane/transport/connection.hpp"

#ifndef KWIK_SOURCE_ROOT
#define KWIK_SOURCE_ROOT "."
#endif

namespace kwik::engine {
namespace {

using strings = std::vector<std::string>;

// A port every case may start from (3 lines, so a case's own lines start at line 4).
constexpr const char* base_port = "[[port]]\n"
                                  "device = \"net_ring0\"\n"
                                  "addresses = [\"10.0.0.1/24\"]\n";

strings lines_of(const std::string& text) {
    strings out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

kwikd_config parse_ok(const std::string& text) {
    config_result r = parse_config(text, "t.toml");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? std::move(r).value() : kwikd_config{};
}

ip_address ip(const char* text) {
    config_result r = parse_config(std::string(base_port) +
                                       "[[connection]]\nid = \"c\"\n[[connection.path]]\n"
                                       "path_id = 1\nlocal = \"10.0.0.1:7707\"\nremote = \"" +
                                       text + ":1\"\n",
                                   "ip");
    if (r.ok()) {
        return r->connections[0].paths[0].remote.address;
    }
    // IPv6: an IPv6 port address and bracketed endpoint.
    r = parse_config(std::string("[[port]]\ndevice = \"net_ring0\"\naddresses = [\"fd00::1/64\"]\n"
                                 "[[connection]]\nid = \"c\"\n[[connection.path]]\npath_id = 1\n"
                                 "local = \"[fd00::1]:7707\"\nremote = \"[") +
                         text + "]:1\"\n",
                     "ip");
    EXPECT_TRUE(r.ok()) << text;
    return r.ok() ? r->connections[0].paths[0].remote.address : ip_address{};
}

// argv for load_config from a list of words (the program name is added).
struct argv_builder {
    explicit argv_builder(std::initializer_list<std::string> words) : _words{"kwikd"} {
        _words.insert(_words.end(), words);
        for (const std::string& w : _words) {
            _ptrs.push_back(w.c_str());
        }
    }
    int argc() const { return static_cast<int>(_ptrs.size()); }
    const char* const* argv() const { return _ptrs.data(); }

private:
    strings _words;
    std::vector<const char*> _ptrs;
};

config_result load(std::initializer_list<std::string> words, std::string_view builtin = {}) {
    argv_builder a(words);
    return load_config(a.argc(), a.argv(), builtin, "built-in");
}

// A file in the test's temporary directory, removed at the end.
class temp_file {
public:
    explicit temp_file(const std::string& text) {
        char name[] = "/tmp/kwikd_config_test_XXXXXX";
        const int fd = mkstemp(name);
        EXPECT_GE(fd, 0);
        close(fd);
        _path = name;
        std::ofstream(_path) << text;
    }
    ~temp_file() { std::remove(_path.c_str()); }
    const std::string& path() const { return _path; }

private:
    std::string _path;
};

// ---------------------------------------------------------------- the sample file

TEST(config_sample, deploy_kwikd_toml_loads_with_the_demo_plan) {
    const std::string path = std::string(KWIK_SOURCE_ROOT) + "/deploy/kwikd.toml";
    config_result r = load({"--config", path});
    ASSERT_TRUE(r.ok()) << r.message();
    const kwikd_config& c = *r;
    EXPECT_EQ(c.source, path);
    EXPECT_EQ(c.kwikd.name, "kwik");
    EXPECT_EQ(c.kwikd.main_lcore, 0u);
    EXPECT_EQ(c.kwikd.worker_lcores, (std::vector<unsigned>{1}));
    EXPECT_FALSE(c.kwikd.hugepages);
    EXPECT_EQ(c.kwikd.memory_mb, 256u);
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].kind, device_kind::vdev);
    EXPECT_EQ(device_name(c.ports[0].device), "net_pcap0");
    EXPECT_EQ(c.ports[0].rx_queues, 1);
    EXPECT_EQ(to_string(c.ports[0].addresses.at(0)), "10.100.0.1/16");
    EXPECT_EQ(c.ports[0].kwik_ports, (std::vector<std::uint16_t>{7707}));
    EXPECT_FALSE(c.exception.enabled());
    // deploy/demo/traffic.toml's plan: 3 connections x 3 paths from 10.0.<p+1>.2:<40000+c>.
    ASSERT_EQ(c.connections.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        const static_connection& conn = c.connections[i];
        EXPECT_EQ(conn.id, "demo-" + std::to_string(i));
        EXPECT_EQ(conn.endpoint, stream_endpoint::file_store);
        EXPECT_EQ(conn.directory, "/tmp/kwik-demo/streams/demo-" + std::to_string(i));
        ASSERT_EQ(conn.paths.size(), 3u);
        for (std::size_t p = 0; p < 3; ++p) {
            EXPECT_EQ(conn.paths[p].path_id, p + 1);
            EXPECT_EQ(to_string(conn.paths[p].local), "10.100.0.1:7707");
            EXPECT_EQ(to_string(conn.paths[p].remote),
                      "10.0." + std::to_string(p + 1) + ".2:" + std::to_string(40000 + i));
            EXPECT_EQ(conn.paths[p].port_index, 0u);
        }
    }
    EXPECT_EQ(c.limits.mbufs, 16383u);
    EXPECT_EQ(eal_arguments(c),
              (strings{"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "--no-huge", "-m", "256",
                       "--no-pci", "--vdev",
                       "net_pcap0,rx_pcap=/tmp/kwik-demo/traffic.pcap,tx_pcap=/tmp/kwik-demo/kwikd-tx.pcap"}));
}

TEST(config_sample, builtin_default_is_used_without_config_and_replaced_by_it) {
    std::ifstream in(std::string(KWIK_SOURCE_ROOT) + "/deploy/kwikd.toml");
    std::stringstream text;
    text << in.rdbuf();
    config_result builtin = load({}, text.str());
    ASSERT_TRUE(builtin.ok()) << builtin.message();
    EXPECT_EQ(builtin->source, "built-in");
    EXPECT_EQ(builtin->connections.size(), 3u);

    temp_file other{std::string(base_port)};
    config_result file = load({"--config", other.path()}, text.str());
    ASSERT_TRUE(file.ok()) << file.message();
    EXPECT_EQ(file->source, other.path());
    EXPECT_TRUE(file->connections.empty());
    EXPECT_EQ(file->ports.at(0).device, "net_ring0");
}

// ---------------------------------------------------------------- valid files

TEST(config_valid, defaults_of_a_minimal_file) {
    const kwikd_config c = parse_ok(base_port);
    EXPECT_EQ(c.kwikd, daemon_settings{});
    EXPECT_EQ(c.kwikd.shm_mode, 0600u);
    EXPECT_EQ(c.kwikd.level, log_level::info);
    ASSERT_EQ(c.ports.size(), 1u);
    const port_settings& p = c.ports[0];
    EXPECT_EQ(p.name, "port0");
    EXPECT_EQ(p.kind, device_kind::vdev);
    EXPECT_EQ(p.rx_queues, 1);
    EXPECT_EQ(p.rx_desc, 1024);
    EXPECT_EQ(p.tx_desc, 1024);
    EXPECT_EQ(p.mtu, 1500);
    EXPECT_TRUE(p.rss);
    EXPECT_TRUE(p.checksum_offload);
    EXPECT_FALSE(p.promiscuous);
    EXPECT_EQ(p.kwik_ports, (std::vector<std::uint16_t>{kdp::default_udp_port}));
    EXPECT_EQ(c.transport, transport_defaults{});
    EXPECT_FALSE(c.exception.enabled());
    EXPECT_TRUE(c.connections.empty());
    EXPECT_EQ(c.limits.max_connections, 65536u);
    EXPECT_EQ(c.limits.mbufs, 16383u); // 1024 + 1024 + 256 + 32 needed; at least 16383
    EXPECT_EQ(c.source, "t.toml");
    EXPECT_FALSE(c.check_only);
}

TEST(config_valid, every_key_set) {
    const kwikd_config c = parse_ok(R"(
[kwikd]
name = "kwik-b"
log_level = "debug"
main_lcore = 4
worker_lcores = "1-3,5"
hugepages = true
memory_mb = 2048
eal_args = ["--vdev=net_null9", "--log-level=pmd.net.pcap:debug"]
stats_interval_ms = 0
shm_mode = "0640"

[[port]]
name = "wan"
device = "0000:3B:00.1,txq_inline=128"
rx_queues = 2
rx_desc = 4096
tx_desc = 512
mtu = 9000
rss = false
checksum_offload = false
promiscuous = true
addresses = ["10.0.0.1/24", "fd00::1/64"]
kwik_ports = [7707, 7708]
gateway = "10.0.0.254"
gateway6 = "fd00::fe"

[[port]]
name = "tap"
device = "net_tap1,iface=kwik1"
addresses = "192.168.7.1/30"
kwik_ports = 9000

[exception]
device = "net_tap0,iface=kwik0"
port = "tap"

[transport]
stream_window = 65536
connection_window = 65536
max_streams = 16
max_paths = 4
max_packet_size = 1472
keepalive_ms = 200
idle_timeout_ms = 201
cc = "newreno"
coupled = false
scheduler = "redundant"

[[connection]]
id = "c-1"
endpoint = "pattern"
endpoint_arg = 1000000
[[connection.path]]
path_id = 7
local = "[fd00::1]:7708"
remote = "[fd00::2]:40000"
[[connection.path]]
path_id = 4611686018427387903
local = "192.168.7.1:9000"
remote = "192.168.7.2:9000"

[[connection]]
id = "c-2"
role = "client"
endpoint = "echo"
path = [{ path_id = 1, local = "10.0.0.1:7707", remote = "10.0.0.2:7707" }]

[limits]
max_connections = 2
max_paths = 3
mbufs = 65535
mbuf_cache = 512
burst = 64
)");
    EXPECT_EQ(c.kwikd.name, "kwik-b");
    EXPECT_EQ(c.kwikd.level, log_level::debug);
    EXPECT_EQ(c.kwikd.main_lcore, 4u);
    EXPECT_EQ(c.kwikd.worker_lcores, (std::vector<unsigned>{1, 2, 3, 5}));
    EXPECT_TRUE(c.kwikd.hugepages);
    EXPECT_EQ(c.kwikd.memory_mb, 2048u);
    EXPECT_EQ(c.kwikd.eal_args, (strings{"--vdev=net_null9", "--log-level=pmd.net.pcap:debug"}));
    EXPECT_EQ(c.kwikd.stats_interval_ms, 0u);
    EXPECT_EQ(c.kwikd.shm_mode, 0640u);

    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].name, "wan");
    EXPECT_EQ(c.ports[0].kind, device_kind::pci);
    EXPECT_EQ(c.ports[0].rx_queues, 2);
    EXPECT_EQ(c.ports[0].rx_desc, 4096);
    EXPECT_EQ(c.ports[0].tx_desc, 512);
    EXPECT_EQ(c.ports[0].mtu, 9000);
    EXPECT_FALSE(c.ports[0].rss);
    EXPECT_FALSE(c.ports[0].checksum_offload);
    EXPECT_TRUE(c.ports[0].promiscuous);
    ASSERT_EQ(c.ports[0].addresses.size(), 2u);
    EXPECT_EQ(to_string(c.ports[0].addresses[1]), "fd00::1/64");
    EXPECT_FALSE(c.ports[0].addresses[1].address.is_v4());
    EXPECT_EQ(c.ports[0].kwik_ports, (std::vector<std::uint16_t>{7707, 7708}));
    ASSERT_TRUE(c.ports[0].gateway && c.ports[0].gateway6);
    EXPECT_EQ(to_string(*c.ports[0].gateway), "10.0.0.254");
    EXPECT_TRUE(c.ports[0].gateway->is_v4());
    EXPECT_EQ(to_string(*c.ports[0].gateway6), "fd00::fe");
    EXPECT_FALSE(c.ports[1].gateway || c.ports[1].gateway6); // optional: none unless set
    EXPECT_EQ(c.ports[1].kind, device_kind::vdev);
    EXPECT_EQ(c.ports[1].rx_queues, 4); // one per worker
    EXPECT_EQ(to_string(c.ports[1].addresses.at(0)), "192.168.7.1/30");
    EXPECT_EQ(c.ports[1].kwik_ports, (std::vector<std::uint16_t>{9000}));

    EXPECT_EQ(c.exception.device, "net_tap0,iface=kwik0");
    EXPECT_EQ(c.exception.port, "tap");
    EXPECT_EQ(c.exception.port_index, 1u);

    EXPECT_EQ(c.transport.stream_window, 65536u);
    EXPECT_EQ(c.transport.max_packet_size, 1472u); // 1500 on port[1] with IPv4 and UDP
    EXPECT_EQ(c.transport.cc, transport::cc_algorithm::newreno);
    EXPECT_FALSE(c.transport.coupled);
    EXPECT_EQ(c.transport.scheduler, transport::schedule_strategy::redundant);

    ASSERT_EQ(c.connections.size(), 2u);
    EXPECT_EQ(c.connections[0].endpoint, stream_endpoint::pattern);
    EXPECT_EQ(c.connections[0].pattern_length, 1000000u);
    ASSERT_EQ(c.connections[0].paths.size(), 2u);
    EXPECT_EQ(c.connections[0].paths[0].path_id, 7u);
    EXPECT_EQ(to_string(c.connections[0].paths[0].local), "[fd00::1]:7708");
    EXPECT_EQ(c.connections[0].paths[0].port_index, 0u);
    EXPECT_EQ(c.connections[0].paths[1].path_id, kdp::varint_max);
    EXPECT_EQ(c.connections[0].paths[1].port_index, 1u);
    EXPECT_EQ(c.connections[0].role, transport::role::server);
    EXPECT_EQ(c.connections[1].role, transport::role::client);
    EXPECT_EQ(c.connections[1].endpoint, stream_endpoint::echo);
    EXPECT_EQ(to_string(c.connections[1].paths.at(0).remote), "10.0.0.2:7707");

    EXPECT_EQ(c.limits.max_connections, 2u);
    EXPECT_EQ(c.limits.mbufs, 65535u);
    EXPECT_EQ(c.limits.mbuf_cache, 512u);
    EXPECT_EQ(c.limits.burst, 64u);

    EXPECT_EQ(eal_arguments(c),
              (strings{"kwikd", "-l", "1,2,3,4,5", "--main-lcore", "4", "--file-prefix", "kwik-b", "-m", "2048", "-a",
                       "0000:3B:00.1,txq_inline=128", "--vdev", "net_tap1,iface=kwik1", "--vdev",
                       "net_tap0,iface=kwik0", "--vdev=net_null9", "--log-level=pmd.net.pcap:debug"}));

    // The effective configuration reads back to the same values.
    const kwikd_config again = parse_ok(to_toml(c));
    kwikd_config expected = c;
    expected.source = "t.toml";
    EXPECT_EQ(again, expected);
}

TEST(config_valid, lcore_lists_in_every_form) {
    struct lcase {
        const char* value;
        std::vector<unsigned> expected;
    };
    for (const lcase& k : {lcase{"[2, 4]", {2, 4}}, lcase{"3", {3}}, lcase{"\"7\"", {7}}, lcase{"\"1-3\"", {1, 2, 3}},
                           lcase{"\"5,1-2\"", {5, 1, 2}}, lcase{"\"127\"", {127}}}) {
        const kwikd_config c = parse_ok(std::string("[kwikd]\nworker_lcores = ") + k.value + "\n" + base_port);
        EXPECT_EQ(c.kwikd.worker_lcores, k.expected) << k.value;
        EXPECT_EQ(c.ports.at(0).rx_queues, k.expected.size()) << k.value;
    }
}

TEST(config_valid, shm_mode_as_string_or_toml_octal) {
    EXPECT_EQ(parse_ok(std::string("[kwikd]\nshm_mode = \"660\"\n") + base_port).kwikd.shm_mode, 0660u);
    EXPECT_EQ(parse_ok(std::string("[kwikd]\nshm_mode = 0o640\n") + base_port).kwikd.shm_mode, 0640u);
}

TEST(config_valid, shm_directory_and_group) {
    const kwikd_config d = parse_ok(base_port);
    EXPECT_EQ(d.kwikd.shm_directory, "/dev/shm");
    EXPECT_EQ(d.kwikd.shm_group, "");
    const kwikd_config c = parse_ok(std::string("[kwikd]\nshm_directory = \"/tmp\"\nshm_group = \"root\"\n") + base_port);
    EXPECT_EQ(c.kwikd.shm_directory, "/tmp");
    EXPECT_EQ(c.kwikd.shm_group, "root");
    EXPECT_EQ(group_id("root"), 0u);
    EXPECT_FALSE(group_id("no-such-kwik-group"));
    // --check-config prints both, and the printed file reads back the same.
    const std::string toml = to_toml(c);
    EXPECT_NE(toml.find("shm_directory = \"/tmp\"\nshm_group = \"root\"\n"), std::string::npos) << toml;
    EXPECT_EQ(parse_ok(toml).kwikd, c.kwikd);
}

TEST(config_valid, poll_mode_and_idle_sleep) {
    const kwikd_config d = parse_ok(base_port);
    EXPECT_EQ(d.kwikd.polling, poll_mode::busy) << "production default";
    EXPECT_EQ(d.kwikd.idle_sleep_max_us, 200u);
    const kwikd_config a =
        parse_ok(std::string("[kwikd]\npoll_mode = \"adaptive\"\nidle_sleep_max_us = 50\n") + base_port);
    EXPECT_EQ(a.kwikd.polling, poll_mode::adaptive);
    EXPECT_EQ(a.kwikd.idle_sleep_max_us, 50u);
}

TEST(config_valid, hugepage_size) {
    EXPECT_EQ(parse_ok(base_port).kwikd.page_size, hugepage_size::size_2m) << "the default";
    const kwikd_config c = parse_ok(std::string("[kwikd]\nhugepage_size = \"1G\"\n") + base_port);
    EXPECT_EQ(c.kwikd.page_size, hugepage_size::size_1g);
    const std::string toml = to_toml(c);
    EXPECT_NE(toml.find("hugepages = true\nhugepage_size = \"1G\"\n"), std::string::npos) << toml;
    EXPECT_EQ(parse_ok(toml).kwikd, c.kwikd);
}

TEST(config_valid, device_kinds) {
    struct dcase {
        const char* device;
        device_kind kind;
    };
    for (const dcase& d :
         {dcase{"0000:3b:00.0", device_kind::pci}, dcase{"3b:00.7", device_kind::pci},
          dcase{"0000:AF:1f.2,rxq_cqe_comp_en=1", device_kind::pci}, dcase{"net_ring0", device_kind::vdev},
          dcase{"net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap", device_kind::vdev},
          dcase{"net_af_packet0,iface=veth0", device_kind::vdev}, dcase{"eth_null0", device_kind::vdev},
          dcase{"virtio_user0,path=/dev/vhost-net", device_kind::vdev}}) {
        const kwikd_config c =
            parse_ok(std::string("[[port]]\ndevice = \"") + d.device + "\"\naddresses = [\"10.0.0.1/24\"]\n");
        EXPECT_EQ(c.ports.at(0).kind, d.kind) << d.device;
    }
}

TEST(config_valid, addresses_parse_to_the_engines_form) {
    const ip_address v4 = ip("192.0.2.9");
    EXPECT_TRUE(v4.is_v4());
    EXPECT_EQ(v4, ip_address::v4(0xC0000209));
    EXPECT_EQ(to_string(v4), "192.0.2.9");
    const ip_address v6 = ip("fd00::2");
    EXPECT_FALSE(v6.is_v4());
    EXPECT_EQ(v6.bytes[0], 0xfd);
    EXPECT_EQ(v6.bytes[15], 2);
    EXPECT_EQ(to_string(v6), "fd00::2");
}

TEST(config_valid, mbufs_default_grows_with_the_rings) {
    // 2 ports x (4 queues x 4096 rx + 4 workers x 4096 tx) + 4 x (256 + 32) = 66688; twice that,
    // rounded up to 2^n - 1.
    const kwikd_config c = parse_ok(R"([kwikd]
worker_lcores = "1-4"
[[port]]
device = "net_ring0"
rx_desc = 4096
tx_desc = 4096
addresses = ["10.0.0.1/24"]
[[port]]
device = "net_ring1"
rx_desc = 4096
tx_desc = 4096
addresses = ["10.0.1.1/24"]
)");
    EXPECT_EQ(c.limits.mbufs, 262143u);
}

TEST(config_valid, to_toml_of_the_sample_reads_back_unchanged) {
    const std::string path = std::string(KWIK_SOURCE_ROOT) + "/deploy/kwikd.toml";
    config_result r = load({"--config", path, "--", "--log-level=8"});
    ASSERT_TRUE(r.ok()) << r.message();
    const std::string text = to_toml(*r);
    EXPECT_NE(text.find("# EAL arguments after \"--\": --log-level=8"), std::string::npos) << text;
    kwikd_config again = parse_ok(text);
    again.source = r->source;
    again.eal_passthrough = r->eal_passthrough;
    EXPECT_EQ(again, *r);
}

TEST(config_valid, transport_defaults_reach_the_connection_config) {
    transport_defaults d;
    d.stream_window = 4096;
    d.connection_window = 8192;
    d.max_streams = 3;
    d.max_paths = 2;
    d.max_packet_size = 1200;
    d.keepalive_ms = 250;
    d.idle_timeout_ms = 5000;
    d.cc = transport::cc_algorithm::newreno;
    d.coupled = false;
    d.scheduler = transport::schedule_strategy::round_robin;
    transport::connection_config c;
    c.send_buffer_per_stream = 77; // left alone
    apply_transport_defaults(d, c);
    EXPECT_EQ(c.stream_window, 4096u);
    EXPECT_EQ(c.connection_window, 8192u);
    EXPECT_EQ(c.max_streams, 3u);
    EXPECT_EQ(c.max_paths, 2u);
    EXPECT_EQ(c.max_packet_size, 1200u);
    EXPECT_EQ(c.keepalive_interval, 250 * transport::ms);
    EXPECT_EQ(c.idle_timeout, 5 * transport::sec);
    EXPECT_EQ(c.cc.algorithm, transport::cc_algorithm::newreno);
    EXPECT_FALSE(c.cc.coupled);
    EXPECT_EQ(c.scheduler.strategy, transport::schedule_strategy::round_robin);
    EXPECT_EQ(c.send_buffer_per_stream, 77u);
}

// ---------------------------------------------------------------- every problem, exactly

struct error_case {
    const char* description;
    bool with_base_port; // base_port first: the case's own lines start at line 4
    const char* text;
    strings expected;
};

const error_case error_cases[] = {
    // The document.
    {"TOML syntax (toml++'s own description)",
     true,
     "[kwikd]\nname = \"kwik\n",
     {"t.toml:5:13: Error while parsing string: unescaped control characters other than TAB (U+0009) are "
      "explicitly prohibited"}},
    {"non-ASCII outside strings (toml++ 3.3 cannot read it safely)",
     true,
     "# comments may say \u00e9t\u00e9\n[kwikd]\nname = \"k\"\u00a7\n",
     {"t.toml:6:11: a non-ASCII character outside a string or comment (or first after a line-ending backslash "
      "in a \"\"\" string), which toml++ 3.3 cannot read safely"}},
    {"non-ASCII after a line-ending backslash",
     true,
     "[[connection]]\nid = \"\"\"\\\n  \u00a7\"\"\"\n",
     {"t.toml:6:3: a non-ASCII character outside a string or comment (or first after a line-ending backslash "
      "in a \"\"\" string), which toml++ 3.3 cannot read safely"}},
    {"a quote inside a bare token opens no string (found by engine_config_fuzz)",
     true,
     "[kwikd]\nname =0[\"k\u043c\"\n",
     {"t.toml:5:11: a non-ASCII character outside a string or comment (or first after a line-ending backslash "
      "in a \"\"\" string), which toml++ 3.3 cannot read safely"}},
    {"no port", false, "", {"t.toml: port: at least one [[port]] table is required"}},
    {"empty port array", false, "port = []\n", {"t.toml:1: port: at least one [[port]] table is required"}},
    {"unknown section",
     true,
     "[kwik]\nname = 1\n",
     {"t.toml:4: kwik: unknown key (the sections are [kwikd], [[port]], [exception], [transport], [[connection]], "
      "[limits])"}},
    {"unknown top-level key",
     false,
     "speed = 3\n[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:1: speed: unknown key (the sections are [kwikd], [[port]], [exception], [transport], [[connection]], "
      "[limits])"}},
    {"section not a table",
     false,
     "kwikd = 3\n[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:1: kwikd: expected a table ([kwikd]), got an integer"}},
    {"port as a table",
     false,
     "[port]\ndevice = \"net_ring0\"\n",
     {"t.toml:1: port: expected [[port]] tables, got a table"}},
    {"port array of numbers", false, "port = [1]\n", {"t.toml:1: port[0]: expected a table, got an integer"}},

    // [kwikd]
    {"unknown kwikd key",
     true,
     "[kwikd]\nworkers = 2\n",
     {"t.toml:5: kwikd.workers: unknown key (the keys of [kwikd] are name, log_level, main_lcore, worker_lcores, "
      "hugepages, hugepage_size, memory_mb, eal_args, stats_interval_ms, shm_mode, shm_directory, shm_group, "
      "poll_mode, idle_sleep_max_us)"}},
    {"name characters",
     true,
     "[kwikd]\nname = \"kw ik\"\n",
     {"t.toml:5: kwikd.name: 'kw ik' may hold only letters, digits, '_' and '-' (1 to 32 of them)"}},
    {"name empty",
     true,
     "[kwikd]\nname = \"\"\n",
     {"t.toml:5: kwikd.name: '' may hold only letters, digits, '_' and '-' (1 to 32 of them)"}},
    {"name type", true, "[kwikd]\nname = 3\n", {"t.toml:5: kwikd.name: expected a string, got an integer"}},
    {"log level",
     true,
     "[kwikd]\nlog_level = \"loud\"\n",
     {"t.toml:5: kwikd.log_level: 'loud' is not one of emergency, alert, critical, error, warning, notice, info, "
      "debug"}},
    {"log level type",
     true,
     "[kwikd]\nlog_level = 7\n",
     {"t.toml:5: kwikd.log_level: expected a string (one of emergency, alert, critical, error, warning, notice, "
      "info, debug), got an integer"}},
    {"main lcore range", true, "[kwikd]\nmain_lcore = 128\n", {"t.toml:5: kwikd.main_lcore: 128 is above 127"}},
    {"main lcore negative", true, "[kwikd]\nmain_lcore = -1\n", {"t.toml:5: kwikd.main_lcore: -1 is below 0"}},
    {"worker equal to main",
     true,
     "[kwikd]\nmain_lcore = 2\nworker_lcores = [1, 2]\n",
     {"t.toml:6: kwikd.worker_lcores: lcore 2 is the main lcore (kwikd.main_lcore), which does housekeeping only"}},
    {"worker equal to default main",
     true,
     "[kwikd]\nworker_lcores = \"0-1\"\n",
     {"t.toml:5: kwikd.worker_lcores: lcore 0 is the main lcore (kwikd.main_lcore), which does housekeeping only"}},
    {"worker twice",
     true,
     "[kwikd]\nworker_lcores = \"1-3,2\"\n",
     {"t.toml:5: kwikd.worker_lcores: lcore 2 is listed twice"}},
    {"worker list syntax",
     true,
     "[kwikd]\nworker_lcores = \"1-x\"\n",
     {"t.toml:5: kwikd.worker_lcores: '1-x' is not a list of lcore ids (write lcore ids and ranges such as "
      "\"1-3,5\")"}},
    {"worker range reversed",
     true,
     "[kwikd]\nworker_lcores = \"3-1\"\n",
     {"t.toml:5: kwikd.worker_lcores: '3-1': range 3-1 ends below its start"}},
    {"worker above max",
     true,
     "[kwikd]\nworker_lcores = \"1,200\"\n",
     {"t.toml:5: kwikd.worker_lcores: 200 is above the highest lcore id 127"}},
    {"worker array element",
     true,
     "[kwikd]\nworker_lcores = [1, 300, \"2\"]\n",
     {"t.toml:5: kwikd.worker_lcores[1]: 300 is above 127",
      "t.toml:5: kwikd.worker_lcores[2]: expected an integer lcore id, got a string"}},
    {"no workers",
     true,
     "[kwikd]\nworker_lcores = []\n",
     {"t.toml:5: kwikd.worker_lcores: at least one worker lcore is required"}},
    {"workers as a table",
     true,
     "[kwikd]\nworker_lcores = { a = 1 }\n",
     {"t.toml:5: kwikd.worker_lcores: expected an array of lcore ids or a string such as \"1-3,5\", got a table"}},
    {"hugepages type",
     true,
     "[kwikd]\nhugepages = \"no\"\n",
     {"t.toml:5: kwikd.hugepages: expected true or false, got a string"}},
    {"memory below", true, "[kwikd]\nmemory_mb = 10\n", {"t.toml:5: kwikd.memory_mb: 10 is below 64"}},
    {"memory float",
     true,
     "[kwikd]\nmemory_mb = 256.0\n",
     {"t.toml:5: kwikd.memory_mb: expected an integer, got a floating-point number"}},
    {"eal args owned by kwikd",
     true,
     "[kwikd]\neal_args = [\"--file-prefix=x\", \"-m512\", \"--no-pci\", 3]\n",
     {"t.toml:5: kwikd.eal_args[0]: '--file-prefix=x' is set by kwikd from kwikd.name",
      "t.toml:5: kwikd.eal_args[1]: '-m512' is set by kwikd from kwikd.hugepages and kwikd.memory_mb",
      "t.toml:5: kwikd.eal_args[2]: '--no-pci' is set by kwikd from the [[port]] devices (kwikd adds --no-pci when "
      "no port is a PCI device)",
      "t.toml:5: kwikd.eal_args[3]: expected a string, got an integer"}},
    {"eal args not an array",
     true,
     "[kwikd]\neal_args = \"--no-telemetry\"\n",
     {"t.toml:5: kwikd.eal_args: expected an array of strings, got a string"}},
    {"stats interval",
     true,
     "[kwikd]\nstats_interval_ms = 5\n",
     {"t.toml:5: kwikd.stats_interval_ms: 5 is below 10 (0 turns it off)"}},
    {"shm mode digits",
     true,
     "[kwikd]\nshm_mode = \"0888\"\n",
     {"t.toml:5: kwikd.shm_mode: '0888' is not a file mode in octal such as \"0600\""}},
    {"shm mode decimal",
     true,
     "[kwikd]\nshm_mode = 600\n",
     {"t.toml:5: kwikd.shm_mode: 600 is not a file mode in octal such as \"0600\" (a decimal integer is ambiguous: "
      "write \"0600\" or 0o600)"}},
    {"shm mode too large", true, "[kwikd]\nshm_mode = 0o1777\n", {"t.toml:5: kwikd.shm_mode: 0o1777 is above 0o777"}},
    {"shm directory relative",
     true,
     "[kwikd]\nshm_directory = \"run/kwik\"\n",
     {"t.toml:5: kwikd.shm_directory: 'run/kwik' is not an absolute path"}},
    {"shm directory missing",
     true,
     "[kwikd]\nshm_directory = \"/nonexistent-kwik-dir\"\n",
     {"t.toml:5: kwikd.shm_directory: '/nonexistent-kwik-dir': No such file or directory (systemd's "
      "RuntimeDirectory= creates /run/kwik for kwikd.service)"}},
    {"shm directory a file",
     true,
     "[kwikd]\nshm_directory = \"/etc/passwd\"\n",
     {"t.toml:5: kwikd.shm_directory: '/etc/passwd' is not a directory"}},
    {"shm group unknown",
     true,
     "[kwikd]\nshm_group = \"no-such-kwik-group\"\n",
     {"t.toml:5: kwikd.shm_group: 'no-such-kwik-group' is not a group on this system (groupadd --system "
      "no-such-kwik-group, or leave it out to keep kwikd's own group)"}},
    {"hugepage size",
     true,
     "[kwikd]\nhugepage_size = \"4K\"\n",
     {"t.toml:5: kwikd.hugepage_size: '4K' is not one of 2M, 1G"}},
    {"poll mode name",
     true,
     "[kwikd]\npoll_mode = \"sleepy\"\n",
     {"t.toml:5: kwikd.poll_mode: 'sleepy' is not one of busy, adaptive"}},
    {"poll mode type", true, "[kwikd]\npoll_mode = 1\n",
     {"t.toml:5: kwikd.poll_mode: expected a string (one of busy, adaptive), got an integer"}},
    {"idle sleep of zero", true, "[kwikd]\nidle_sleep_max_us = 0\n",
     {"t.toml:5: kwikd.idle_sleep_max_us: 0 is below 1"}},
    {"idle sleep too long", true, "[kwikd]\nidle_sleep_max_us = 100001\n",
     {"t.toml:5: kwikd.idle_sleep_max_us: 100001 is above 100000"}},

    // [[port]]
    {"unknown port key",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\nspeed = 10\n",
     {"t.toml:4: port[0].speed: unknown key (the keys of [[port]] are name, device, rx_queues, rx_desc, tx_desc, "
      "mtu, rss, checksum_offload, promiscuous, addresses, kwik_ports, gateway, gateway6, xdp_program)"}},
    {"device missing",
     false,
     "[[port]]\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:1: port[0].device: required (a PCI address such as 0000:3b:00.0, or a virtual device such as "
      "net_ring0)"}},
    {"device unknown",
     false,
     "[[port]]\ndevice = \"eth0\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:2: port[0].device: 'eth0' is neither a PCI address (such as 0000:3b:00.0) nor a DPDK virtual "
      "network device (net_ring0, net_pcap0,rx_pcap=FILE,tx_pcap=FILE, net_tap0,iface=kwik0, "
      "net_af_packet0,iface=veth0, ...)"}},
    {"device bad pci",
     false,
     "[[port]]\ndevice = \"0000:3b:00.9\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:2: port[0].device: '0000:3b:00.9' is neither a PCI address (such as 0000:3b:00.0) nor a DPDK virtual "
      "network device (net_ring0, net_pcap0,rx_pcap=FILE,tx_pcap=FILE, net_tap0,iface=kwik0, "
      "net_af_packet0,iface=veth0, ...)"}},
    {"device empty argument",
     false,
     "[[port]]\ndevice = \"net_pcap0,,rx_pcap=a\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:2: port[0].device: 'net_pcap0,,rx_pcap=a' has an empty device argument"}},
    {"device trailing comma",
     false,
     "[[port]]\ndevice = \"net_ring0,\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:2: port[0].device: 'net_ring0,' has an empty device argument"}},
    {"device empty",
     false,
     "[[port]]\ndevice = \"\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:2: port[0].device: is empty"}},
    {"device twice",
     true,
     "[[port]]\ndevice = \"net_ring0,nodeaction=r0:0:CREATE\"\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:5: port[1].device: net_ring0 is already the device of port[0]"}},
    {"pci device twice, spelt differently",
     false,
     "[[port]]\ndevice = \"3b:00.0\"\naddresses = [\"10.0.0.1/24\"]\n"
     "[[port]]\ndevice = \"0000:3B:00.0\"\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:5: port[1].device: 0000:3b:00.0 is already the device of port[0]"}},
    {"port name twice",
     true,
     "[[port]]\nname = \"port0\"\ndevice = \"net_ring1\"\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:5: port[1].name: 'port0' is already the name of port[0]"}},
    {"rx queues above workers",
     false,
     "[kwikd]\nworker_lcores = [1, 2]\n[[port]]\ndevice = \"net_ring0\"\nrx_queues = 3\naddresses = "
     "[\"10.0.0.1/24\"]\n",
     {"t.toml:5: port[0].rx_queues: 3 is above the 2 worker lcores (kwikd.worker_lcores); worker i polls rx queue "
      "i"}},
    {"rx queues zero",
     true,
     "[[port]]\ndevice = \"net_ring1\"\nrx_queues = 0\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:6: port[1].rx_queues: 0 is below 1"}},
    {"descriptors",
     true,
     "[[port]]\ndevice = \"net_ring1\"\nrx_desc = 1000\ntx_desc = 32\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:6: port[1].rx_desc: 1000 is not a power of two", "t.toml:7: port[1].tx_desc: 32 is below 64"}},
    {"mtu above",
     true,
     "[[port]]\ndevice = \"net_ring1\"\nmtu = 70000\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:6: port[1].mtu: 70000 is above 9600"}},
    {"mtu below the packet size, IPv4",
     false,
     "[[port]]\ndevice = \"net_ring0\"\nmtu = 1427\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:3: port[0].mtu: 1427 cannot carry a path packet of transport.max_packet_size 1400 in IPv4 and UDP "
      "(1428 bytes)"}},
    {"mtu below the packet size, IPv6",
     false,
     "[[port]]\ndevice = \"net_ring0\"\nmtu = 1447\naddresses = [\"10.0.0.1/24\", \"fd00::1/64\"]\n",
     {"t.toml:3: port[0].mtu: 1447 cannot carry a path packet of transport.max_packet_size 1400 in IPv6 and UDP "
      "(1448 bytes)"}},
    {"mtu below a larger packet size",
     false,
     "[transport]\nmax_packet_size = 8972\n[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\n",
     {"t.toml:3: port[0].mtu: 1500 cannot carry a path packet of transport.max_packet_size 8972 in IPv4 and UDP "
      "(9000 bytes)"}},
    {"rss type",
     true,
     "[[port]]\ndevice = \"net_ring1\"\nrss = 1\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml:6: port[1].rss: expected true or false, got an integer"}},
    {"addresses missing",
     false,
     "[[port]]\ndevice = \"net_ring0\"\n",
     {"t.toml:1: port[0].addresses: required (the port's IP addresses with prefix length, such as "
      "[\"10.0.0.1/24\"])"}},
    {"addresses empty",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = []\n",
     {"t.toml:3: port[0].addresses: at least one address is required"}},
    {"address problems",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1\", \"x/24\", \"10.0.0.2/33\", \"fd00::1/0\", "
     "\"10.0.0.3/2x\", 4]\n",
     {"t.toml:3: port[0].addresses[0]: '10.0.0.1' has no prefix length (write 10.0.0.1/24, say)",
      "t.toml:3: port[0].addresses[1]: 'x/24': 'x' is not an IP address",
      "t.toml:3: port[0].addresses[2]: '10.0.0.2/33': prefix length 33 is not in 1-32",
      "t.toml:3: port[0].addresses[3]: 'fd00::1/0': prefix length 0 is not in 1-128",
      "t.toml:3: port[0].addresses[4]: '10.0.0.3/2x': '2x' is not a prefix length",
      "t.toml:3: port[0].addresses[5]: expected a string such as \"10.0.0.1/24\", got an integer"}},
    {"address on two ports",
     true,
     "[[port]]\ndevice = \"net_ring1\"\naddresses = [\"10.0.1.1/24\", \"10.0.0.1/16\"]\n",
     {"t.toml:6: port[1].addresses[1]: 10.0.0.1 is already an address of port[0]"}},
    {"kwik ports",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\nkwik_ports = [0, 7707, 70000, 7707, \"x\"]\n",
     {"t.toml:4: port[0].kwik_ports[0]: 0 is not a UDP port (1-65535)",
      "t.toml:4: port[0].kwik_ports[2]: 70000 is not a UDP port (1-65535)",
      "t.toml:4: port[0].kwik_ports[3]: 7707 is listed twice",
      "t.toml:4: port[0].kwik_ports[4]: expected a UDP port (an integer), got a string"}},
    {"too many kwik ports and addresses",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\", \"10.0.0.2/24\", \"10.0.0.3/24\", "
     "\"10.0.0.4/24\", \"10.0.0.5/24\", \"10.0.0.6/24\", \"10.0.0.7/24\", \"10.0.0.8/24\", \"10.0.0.9/24\", "
     "\"10.0.0.10/24\", \"10.0.0.11/24\", \"10.0.0.12/24\", \"10.0.0.13/24\", \"10.0.0.14/24\", \"10.0.0.15/24\", "
     "\"10.0.0.16/24\", \"10.0.0.17/24\"]\nkwik_ports = [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
     {"t.toml:3: port[0].addresses: 17 addresses is above 16", "t.toml:4: port[0].kwik_ports: 9 UDP ports is above 8"}},
    {"gateways of the wrong family",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\", \"fd00::1/64\"]\ngateway = \"fd00::fe\"\n"
     "gateway6 = \"10.0.0.254\"\n",
     {"t.toml:4: port[0].gateway: 'fd00::fe' is not an IPv4 address (the IPv6 gateway is gateway6)",
      "t.toml:5: port[0].gateway6: '10.0.0.254' is not an IPv6 address (the IPv4 gateway is gateway)"}},
    {"gateways off the port's prefixes",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\", \"10.1.0.1/16\"]\ngateway = \"10.2.0.1\"\n"
     "gateway6 = \"fd00::fe\"\n",
     {"t.toml:4: port[0].gateway: 10.2.0.1 is not on the port's IPv4 prefixes (10.0.0.1/24, 10.1.0.1/16): a "
      "gateway must be on-link",
      "t.toml:5: port[0].gateway6: fd00::fe is not on the port's IPv6 prefixes (port[].addresses has none): a "
      "gateway must be on-link"}},
    {"gateways that are no router's address",
     true,
     "[[port]]\ndevice = \"net_ring1\"\naddresses = [\"10.0.1.1/24\", \"fd00::1/64\"]\ngateway = \"10.0.1.255\"\n"
     "gateway6 = \"fd00::1\"\n"
     "[[port]]\ndevice = \"net_ring2\"\naddresses = [\"10.0.2.1/24\"]\ngateway = \"10.0.2.0\"\n"
     "[[port]]\ndevice = \"net_ring3\"\naddresses = [\"10.0.3.1/24\"]\ngateway = \"x\"\n"
     "[[port]]\ndevice = \"net_ring4\"\naddresses = [\"10.0.4.1/24\"]\ngateway = [\"10.0.4.254\"]\n",
     {"t.toml:7: port[1].gateway: 10.0.1.255 is the broadcast address of 10.0.1.1/24",
      "t.toml:8: port[1].gateway6: fd00::1 is the port's own address",
      "t.toml:12: port[2].gateway: 10.0.2.0 is the network address of 10.0.2.1/24",
      "t.toml:16: port[3].gateway: 'x' is not an IPv4 address",
      "t.toml:20: port[4].gateway: expected a string, got an array"}},
    {"IPv4-mapped IPv6",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"::ffff:10.0.0.1/120\"]\n",
     {"t.toml:3: port[0].addresses[0]: '::ffff:10.0.0.1/120': '::ffff:10.0.0.1' is not an IP address"}},
    {"kwik ports empty",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\"]\nkwik_ports = []\n",
     {"t.toml:4: port[0].kwik_ports: at least one UDP port is required"}},
    {"too many ports", false, nullptr, {}}, // built below

    // [exception]
    {"exception device kind",
     true,
     "[exception]\ndevice = \"net_ring1\"\n",
     {"t.toml:5: exception.device: 'net_ring1' is not a net_tap or virtio_user device (or \"none\")"}},
    {"exception device taken",
     false,
     "[[port]]\ndevice = \"net_tap0,iface=a\"\naddresses = [\"10.0.0.1/24\"]\n[exception]\ndevice = \"net_tap0\"\n",
     {"t.toml:5: exception.device: net_tap0 is already the device of port[0]"}},
    {"exception port unknown",
     true,
     "[exception]\ndevice = \"net_tap0\"\nport = \"wan\"\n",
     {"t.toml:6: exception.port: 'wan' is not the name of a [[port]]"}},
    {"exception port without device",
     true,
     "[exception]\nport = \"port0\"\n",
     {"t.toml:5: exception.port: set, but exception.device is \"none\""}},
    {"exception unknown key",
     true,
     "[exception]\niface = \"kwik0\"\n",
     {"t.toml:5: exception.iface: unknown key (the keys of [exception] are device, port)"}},

    // [transport]
    {"transport values",
     true,
     "[transport]\ncc = \"bbr\"\nscheduler = \"fastest\"\nmax_paths = 65\nmax_packet_size = 100\nmax_streams = 0\n"
     "stream_window = 1.5\n",
     {"t.toml:5: transport.cc: 'bbr' is not one of cubic, newreno",
      "t.toml:6: transport.scheduler: 'fastest' is not one of min_rtt, weighted, round_robin, redundant",
      "t.toml:7: transport.max_paths: 65 is above 64", "t.toml:8: transport.max_packet_size: 100 is below 256",
      "t.toml:9: transport.max_streams: 0 is below 1",
      "t.toml:10: transport.stream_window: expected an integer, got a floating-point number"}},
    {"windows",
     true,
     "[transport]\nstream_window = 65536\nconnection_window = 4096\n",
     {"t.toml:6: transport.connection_window: 4096 is below transport.stream_window 65536"}},
    {"window against the default",
     true,
     "[transport]\nstream_window = 33554432\n",
     {"t.toml:5: transport.connection_window: 16777216 is below transport.stream_window 33554432"}},
    {"idle timeout",
     true,
     "[transport]\nkeepalive_ms = 5000\nidle_timeout_ms = 5000\n",
     {"t.toml:6: transport.idle_timeout_ms: 5000 is not above transport.keepalive_ms 5000"}},
    {"coupled type",
     true,
     "[transport]\ncoupled = \"yes\"\n",
     {"t.toml:5: transport.coupled: expected true or false, got a string"}},

    // [[connection]]
    {"connection basics",
     true,
     "[[connection]]\nendpoint = \"sink\"\nmode = 1\n[[connection.path]]\npath_id = 1\nlocal = \"10.0.0.1:7707\"\n"
     "remote = \"10.0.0.2:7707\"\n",
     {"t.toml:4: connection[0].id: required (the connection's id, such as \"demo-0\")",
      "t.toml:5: connection[0].endpoint: 'sink' is not one of discard, echo, pattern, file_store",
      "t.toml:6: connection[0].mode: unknown key (the keys of [[connection]] are id, role, endpoint, endpoint_arg, "
      "path)"}},
    {"connection id characters and duplicates",
     true,
     "[[connection]]\nid = \"a b\"\npath = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n"
     "[[connection]]\nid = \"c\"\npath = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:2\" }]\n"
     "[[connection]]\nid = \"c\"\npath = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:3\" }]\n",
     {"t.toml:5: connection[0].id: 'a b' may hold only letters, digits, '.', '_', ':' and '-' (1 to 63 of them)",
      "t.toml:11: connection[2].id: 'c' is already the id of connection[1]"}},
    {"endpoint arguments",
     true,
     "[[connection]]\nid = \"a\"\nendpoint = \"discard\"\nendpoint_arg = 10\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n"
     "[[connection]]\nid = \"b\"\nendpoint = \"pattern\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:2\" }]\n"
     "[[connection]]\nid = \"c\"\nendpoint = \"pattern\"\nendpoint_arg = \"big\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:3\" }]\n"
     "[[connection]]\nid = \"d\"\nendpoint = \"file_store\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:4\" }]\n"
     "[[connection]]\nid = \"e\"\nendpoint = \"file_store\"\nendpoint_arg = \"\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:5\" }]\n"
     "[[connection]]\nid = \"f\"\nendpoint = \"echo\"\nendpoint_arg = \"x\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:6\" }]\n",
     {"t.toml:7: connection[0].endpoint_arg: the discard endpoint takes no argument",
      "t.toml:9: connection[1].endpoint_arg: required by the pattern endpoint (bytes per stream)",
      "t.toml:16: connection[2].endpoint_arg: expected an integer, got a string",
      "t.toml:18: connection[3].endpoint_arg: required by the file_store endpoint (the directory streams are "
      "written to)",
      "t.toml:25: connection[4].endpoint_arg: '' is not an absolute directory path",
      "t.toml:30: connection[5].endpoint_arg: the echo endpoint takes no argument"}},
    {"role and directories",
     true,
     "[[connection]]\nid = \"a\"\nrole = \"peer\"\nendpoint = \"file_store\"\nendpoint_arg = \"streams\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n"
     "[[connection]]\nid = \"b\"\nendpoint = \"file_store\"\nendpoint_arg = "
     "\"/"
     "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddddd\"\n"
     "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:2\" }]\n",
     {"t.toml:6: connection[0].role: 'peer' is not one of server, client",
      "t.toml:8: connection[0].endpoint_arg: 'streams' is not an absolute directory path",
      "t.toml:13: connection[1].endpoint_arg: the directory path is 128 bytes long, above 127"}},
    {"connection id length",
     true,
     "[[connection]]\nid = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\npath = [{ path_id = "
     "1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n",
     {"t.toml:5: connection[0].id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' may hold only "
      "letters, digits, '.', '_', ':' and '-' (1 to 63 of "
      "them)"}},
    {"paths missing",
     true,
     "[[connection]]\nid = \"a\"\n[[connection]]\nid = \"b\"\npath = 3\n"
     "[[connection]]\nid = \"c\"\npath = []\n",
     {"t.toml:4: connection[0].path: required (at least one [[connection.path]])",
      "t.toml:8: connection[1].path: expected [[connection.path]] tables, got an integer",
      "t.toml:11: connection[2].path: at least one [[connection.path]] is required"}},
    {"path fields",
     true,
     "[[connection]]\nid = \"a\"\n"
     "[[connection.path]]\nlocal = \"10.0.0.1:7707\"\nremote = \"10.0.0.2:1\"\nweight = 2\n"
     "[[connection.path]]\npath_id = 0\nlocal = \"10.0.0.1:7707\"\n"
     "[[connection.path]]\npath_id = 4611686018427387904\nremote = 7\n",
     {"t.toml:6: connection[0].path[0].path_id: required (1 to 2^62-1, unique in the connection)",
      "t.toml:9: connection[0].path[0].weight: unknown key (the keys of [[connection.path]] are path_id, local, "
      "remote)",
      "t.toml:10: connection[0].path[1].remote: required (an IP address and UDP port such as 10.0.1.2:40000)",
      "t.toml:11: connection[0].path[1].path_id: 0 is below 1",
      "t.toml:13: connection[0].path[2].local: required (an IP address and UDP port such as 10.0.0.1:7707)",
      "t.toml:14: connection[0].path[2].path_id: 4611686018427387904 is above 4611686018427387903",
      "t.toml:15: connection[0].path[2].remote: expected a string, got an integer"}},
    {"endpoints",
     true,
     "[[connection]]\nid = \"a\"\n"
     "[[connection.path]]\npath_id = 1\nlocal = \"10.0.0.1:7707\"\nremote = \"x:7707\"\n"
     "[[connection.path]]\npath_id = 2\nlocal = \"10.0.0.1:7707\"\nremote = \"10.0.0.2\"\n"
     "[[connection.path]]\npath_id = 3\nlocal = \"10.0.0.1:7707\"\nremote = \"fd00::2:7707\"\n"
     "[[connection.path]]\npath_id = 4\nlocal = \"10.0.0.1:7707\"\nremote = \"10.0.0.2:0\"\n"
     "[[connection.path]]\npath_id = 5\nlocal = \"10.0.0.1:7707\"\nremote = \"[fd00::2]7707\"\n"
     "[[connection.path]]\npath_id = 6\nlocal = \"10.0.0.1:7707\"\nremote = \"[10.0.0.2]:7707\"\n"
     "[[connection.path]]\npath_id = 7\nlocal = \"10.0.0.1:7707\"\nremote = \"host\"\n",
     {"t.toml:9: connection[0].path[0].remote: 'x:7707': 'x' is not an IP address",
      "t.toml:13: connection[0].path[1].remote: '10.0.0.2' has no UDP port (write 10.0.0.2:7707, say)",
      "t.toml:17: connection[0].path[2].remote: 'fd00::2:7707': write an IPv6 address in brackets, such as "
      "[fd00::2]:7707",
      "t.toml:21: connection[0].path[3].remote: '10.0.0.2:0': UDP port '0' is not in 1-65535",
      "t.toml:25: connection[0].path[4].remote: '[fd00::2]7707': expected ':' and a UDP port after ']'",
      "t.toml:29: connection[0].path[5].remote: '[10.0.0.2]:7707': '10.0.0.2' is not an IPv6 address",
      "t.toml:33: connection[0].path[6].remote: 'host' is not an IP address and UDP port (such as 10.0.0.2:7707)"}},
    {"path binding",
     false,
     "[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1/24\", \"fd00::1/64\"]\n"
     "[[connection]]\nid = \"a\"\n"
     "[[connection.path]]\npath_id = 1\nlocal = \"10.0.0.1:7707\"\nremote = \"10.0.0.2:7707\"\n"
     "[[connection.path]]\npath_id = 1\nlocal = \"10.0.0.9:7707\"\nremote = \"10.0.0.2:7707\"\n"
     "[[connection.path]]\npath_id = 2\nlocal = \"10.0.0.1:9999\"\nremote = \"10.0.0.2:7707\"\n"
     "[[connection.path]]\npath_id = 3\nlocal = \"[fd00::1]:7707\"\nremote = \"10.0.0.3:7707\"\n"
     "[[connection]]\nid = \"b\"\n"
     "[[connection.path]]\npath_id = 1\nlocal = \"10.0.0.1:7707\"\nremote = \"10.0.0.2:7707\"\n",
     {"t.toml:11: connection[0].path[1].path_id: 1 is already the id of connection[0].path[0]",
      "t.toml:12: connection[0].path[1].local: 10.0.0.9 is not an address of any port (port[].addresses)",
      "t.toml:16: connection[0].path[2].local: UDP port 9999 is not one of port[0].kwik_ports",
      "t.toml:21: connection[0].path[3].remote: 10.0.0.3:7707 is IPv4 but local [fd00::1]:7707 is IPv6",
      "t.toml:27: connection[1].path[0].remote: local 10.0.0.1:7707 and remote 10.0.0.2:7707 are already "
      "connection[0].path[0]"}},
    {"paths above transport.max_paths",
     true,
     "[transport]\nmax_paths = 1\n[[connection]]\nid = \"a\"\npath = [\n"
     "  { path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" },\n"
     "  { path_id = 2, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:2\" }]\n",
     {"t.toml:8: connection[0].path: 2 paths is above transport.max_paths 1"}},
    {"connections above limits",
     true,
     "[limits]\nmax_connections = 1\nmax_paths = 1\n"
     "[[connection]]\nid = \"a\"\npath = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n"
     "[[connection]]\nid = \"b\"\npath = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:2\" }]\n",
     {"t.toml:7: connection: 2 connections is above limits.max_connections 1",
      "t.toml:7: connection: 2 paths is above limits.max_paths 1"}},
    {"connection as a table",
     true,
     "[connection]\nid = \"a\"\n",
     {"t.toml:4: connection: expected [[connection]] tables, got a table"}},

    // [limits]
    {"limits values",
     true,
     "[limits]\nburst = 16\nmbuf_cache = 600\nmax_connections = 0\nspeed = 1\n",
     {"t.toml:5: limits.burst: 16 is below 32", "t.toml:6: limits.mbuf_cache: 600 is above 512",
      "t.toml:7: limits.max_connections: 0 is below 1",
      "t.toml:8: limits.speed: unknown key (the keys of [limits] are max_connections, max_paths, mbufs, mbuf_cache, "
      "burst)"}},
    {"burst above", true, "[limits]\nburst = 65\n", {"t.toml:5: limits.burst: 65 is above 64"}},
    {"mbufs below the rings",
     true,
     "[limits]\nmbufs = 2047\n",
     {"t.toml:5: limits.mbufs: 2047 is below the 2336 mbufs the rings and caches can hold (per port rx_queues x "
      "rx_desc + workers x tx_desc, plus workers x (limits.mbuf_cache + limits.burst))"}},
    {"mbufs above memory",
     true,
     "[kwikd]\nhugepages = false\n[limits]\nmbufs = 200000\n",
     {"t.toml:7: limits.mbufs: 200000 mbufs take 451 MiB (2368 bytes each), more than the 256 MiB of "
      "kwikd.memory_mb"}},
    {"default mbufs above memory",
     false,
     "[kwikd]\nworker_lcores = \"1-4\"\nhugepages = false\n"
     "[[port]]\ndevice = \"net_ring0\"\nrx_desc = 4096\ntx_desc = 4096\naddresses = [\"10.0.0.1/24\"]\n"
     "[[port]]\ndevice = \"net_ring1\"\nrx_desc = 4096\ntx_desc = 4096\naddresses = [\"10.0.1.1/24\"]\n",
     {"t.toml: kwikd.memory_mb: 262143 mbufs take 591 MiB (2368 bytes each), more than the 256 MiB of "
      "kwikd.memory_mb (limits.mbufs is sized from the rings and caches)"}},

    // Several problems: reported in line order, whatever section found them.
    {"several, in line order",
     false,
     "[limits]\nburst = 1\n[[port]]\ndevice = \"net_ring0\"\naddresses = [\"10.0.0.1\"]\n[kwikd]\nmain_lcore = 300\n",
     {"t.toml:2: limits.burst: 1 is below 32",
      "t.toml:5: port[0].addresses[0]: '10.0.0.1' has no prefix length (write 10.0.0.1/24, say)",
      "t.toml:7: kwikd.main_lcore: 300 is above 127"}},
};

TEST(config_errors, every_problem_is_named_exactly) {
    for (const error_case& k : error_cases) {
        std::string text;
        strings expected = k.expected;
        if (k.text == nullptr) {
            // 32 ports: one more than DPDK can hold beside the exception interface.
            for (int i = 0; i < 32; ++i) {
                text += "[[port]]\ndevice = \"net_ring" + std::to_string(i) + "\"\naddresses = [\"10.0." +
                        std::to_string(i) + ".1/24\"]\n";
            }
            expected = {"t.toml:1: port: 32 ports is above the 31 DPDK can hold beside the exception interface"};
        } else {
            text = std::string(k.with_base_port ? base_port : "") + k.text;
        }
        const config_result r = parse_config(text, "t.toml");
        ASSERT_FALSE(r.ok()) << k.description;
        EXPECT_EQ(r.error().exit_code, 1) << k.description;
        EXPECT_EQ(lines_of(r.message()), expected) << k.description << "\n--- text:\n" << text;
    }
}

TEST(config_errors, nul_byte) {
    using namespace std::string_literals;
    const config_result r = parse_config(std::string(base_port) + "[kwikd]\nname = \"a\"\n#\0\n"s, "t.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message(), "t.toml:6:2: a NUL byte (TOML allows none)");
}

TEST(config_valid, non_ascii_in_strings_and_comments) {
    const kwikd_config c = parse_ok(std::string(base_port) +
                                    "# r\u00e9seau\n[[connection]]\nid = \"a\" # \u00a7\nendpoint = \"file_store\"\n"
                                    "endpoint_arg = '/srv/\u00e9t\u00e9'\n"
                                    "path = [{ path_id = 1, local = \"10.0.0.1:7707\", remote = \"10.0.0.2:1\" }]\n");
    EXPECT_EQ(c.connections.at(0).directory, "/srv/\u00e9t\u00e9");
}

// ---------------------------------------------------------------- the command line

TEST(config_command_line, overrides_win_over_the_file_in_the_order_given) {
    temp_file f(std::string("[kwikd]\nworker_lcores = [1]\n") + base_port + "mtu = 1500\n");
    struct ocase {
        const char* description;
        std::initializer_list<std::string> args;
        std::vector<unsigned> workers;
        std::uint16_t mtu;
    };
    const ocase cases[] = {
        {"file only", {}, {1}, 1500},
        {"--set", {"--set", "port[0].mtu=9000"}, {1}, 9000},
        {"--set twice: the last wins", {"--set", "port[0].mtu=9000", "--set=port[0].mtu=2000"}, {1}, 2000},
        {"shortcut", {"--worker-lcores", "1-3"}, {1, 2, 3}, 1500},
        {"shortcut then --set", {"--worker-lcores", "1-3", "--set", "kwikd.worker_lcores=[4]"}, {4}, 1500},
        {"--set then shortcut", {"--set", "kwikd.worker_lcores=[4]", "--worker-lcores", "2,3"}, {2, 3}, 1500},
        {"shortcut twice", {"--worker-lcores", "5", "--worker-lcores", "6"}, {6}, 1500},
    };
    for (const ocase& k : cases) {
        std::vector<std::string> words{"--config", f.path()};
        words.insert(words.end(), k.args);
        std::vector<const char*> argv{"kwikd"};
        for (const std::string& w : words) {
            argv.push_back(w.c_str());
        }
        const config_result r = load_config(static_cast<int>(argv.size()), argv.data());
        ASSERT_TRUE(r.ok()) << k.description << ": " << r.message();
        EXPECT_EQ(r->kwikd.worker_lcores, k.workers) << k.description;
        EXPECT_EQ(r->ports.at(0).mtu, k.mtu) << k.description;
        EXPECT_EQ(r->ports.at(0).rx_queues, k.workers.size()) << k.description;
    }
}

TEST(config_command_line, override_values_are_toml_or_strings) {
    temp_file f(base_port);
    const config_result r = load({"--config",     f.path(),
                                  "--set",        "port[0].device=net_pcap0,rx_pcap=/tmp/a b.pcap",
                                  "--set",        "port[0].addresses=[\"fd00::1/64\", \"10.9.0.1/8\"]",
                                  "--set",        "kwikd.hugepages=false",
                                  "--memory-mb",  "512",
                                  "--name",       "k2",
                                  "--log-level",  "debug",
                                  "--main-lcore", "3",
                                  "--set",        "kwikd.shm_mode=0640",
                                  "--set",        "transport.cc=\"newreno\"",
                                  "--set",        "port[1].device=net_ring1",
                                  "--set",        "port[1].addresses=\"10.1.0.1/16\"",
                                  "--set",        "exception.device=net_tap0"});
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->ports.at(0).device, "net_pcap0,rx_pcap=/tmp/a b.pcap");
    ASSERT_EQ(r->ports[0].addresses.size(), 2u);
    EXPECT_EQ(to_string(r->ports[0].addresses[0]), "fd00::1/64");
    EXPECT_FALSE(r->kwikd.hugepages);
    EXPECT_EQ(r->kwikd.memory_mb, 512u);
    EXPECT_EQ(r->kwikd.name, "k2");
    EXPECT_EQ(r->kwikd.level, log_level::debug);
    EXPECT_EQ(r->kwikd.main_lcore, 3u);
    EXPECT_EQ(r->kwikd.shm_mode, 0640u);
    EXPECT_EQ(r->transport.cc, transport::cc_algorithm::newreno);
    ASSERT_EQ(r->ports.size(), 2u);
    EXPECT_EQ(r->ports[1].name, "port1");
    EXPECT_EQ(to_string(r->ports[1].addresses.at(0)), "10.1.0.1/16");
    EXPECT_EQ(r->exception.device, "net_tap0");
    EXPECT_EQ(r->exception.port, "port0");
}

TEST(config_command_line, no_huge_flag_and_passthrough) {
    temp_file f(base_port);
    const config_result r = load(
        {"--config", f.path(), "--no-huge", "--check-config", "--", "--log-level=8", "--vdev=net_null0", "--", "x"});
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_FALSE(r->kwikd.hugepages);
    EXPECT_TRUE(r->check_only);
    EXPECT_EQ(r->eal_passthrough, (strings{"--log-level=8", "--vdev=net_null0", "--", "x"}));
    EXPECT_EQ(eal_arguments(*r),
              (strings{"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "--no-huge", "-m", "256",
                       "--no-pci", "--vdev", "net_ring0", "--log-level=8", "--vdev=net_null0", "--", "x"}));
}

struct cli_error_case {
    const char* description;
    std::vector<std::string> args; // after --config <file with base_port>
    strings expected;
};

TEST(config_command_line, every_problem_is_named_exactly) {
    temp_file f(std::string(base_port) + "mtu = 1500\n");
    const cli_error_case cases[] = {
        {"range through --set", {"--set", "port[0].mtu=70000"}, {"--set: port[0].mtu: 70000 is above 9600"}},
        {"main lcore through a shortcut",
         {"--worker-lcores", "0-1"},
         {"--worker-lcores: kwikd.worker_lcores: lcore 0 is the main lcore (kwikd.main_lcore), which does "
          "housekeeping only"}},
        {"unknown key through --set",
         {"--set", "kwikd.speed=3"},
         {"--set: kwikd.speed: unknown key (the keys of [kwikd] are name, log_level, main_lcore, worker_lcores, "
          "hugepages, hugepage_size, memory_mb, eal_args, stats_interval_ms, shm_mode, shm_directory, shm_group, "
          "poll_mode, idle_sleep_max_us)"}},
        {"non-ASCII in a bare --set value is taken as a string, never handed to toml++ as TOML",
         {"--set", "kwikd.name=0[\"\u043c"},
         {"--set: kwikd.name: '0[\"\u043c' may hold only letters, digits, '_' and '-' (1 to 32 of them)"}},
        {"new port without its required keys",
         {"--set", "port[1].mtu=9000"},
         {"--set: port[1].device: required (a PCI address such as 0000:3b:00.0, or a virtual device such as "
          "net_ring0)",
          "--set: port[1].addresses: required (the port's IP addresses with prefix length, such as "
          "[\"10.0.0.1/24\"])"}},
        {"file and command line together",
         {"--set", "port[0].rx_desc=100"},
         {"--set: port[0].rx_desc: 100 is not a power of two"}},
        {"no =", {"--set", "port[0].mtu"}, {"--set: 'port[0].mtu' is not KEY=VALUE (such as port[0].mtu=9000)"}},
        {"bad key",
         {"--set", "port[x].mtu=1"},
         {"--set: 'port[x].mtu' is not a key such as port[0].mtu, kwikd.worker_lcores or connection[0].path[1].remote "
          "(a whole array is replaced with key=[...])"}},
        {"section only",
         {"--set", "kwikd=1"},
         {"--set: 'kwikd' is not a key such as port[0].mtu, kwikd.worker_lcores or connection[0].path[1].remote (a "
          "whole array is replaced with key=[...])"}},
        {"index gap",
         {"--set", "port[2].mtu=1500"},
         {"--set: port[2]: there are 1 port tables; a new one must be port[1]"}},
        {"through a value",
         {"--set", "port[0].mtu.x=1"},
         {"--set: port[0].mtu: is an integer, not a table, so port[0].mtu.x cannot be set"}},
        {"into an array as a table",
         {"--set", "port.mtu=1"},
         {"--set: port: is an array, not a table, so port.mtu cannot be set"}},
        {"a value where a table goes",
         {"--set", "kwikd.name.x=1"},
         {"--set: kwikd.name: expected a string, got a table"}},
        {"EAL option owned by kwikd after --",
         {"--", "-l", "0-3", "--file-prefix=x"},
         {"--: EAL argument '-l' is set by kwikd from kwikd.main_lcore and kwikd.worker_lcores",
          "--: EAL argument '--file-prefix=x' is set by kwikd from kwikd.name"}},
        {"unknown option",
         {"--workers", "2"},
         {"kwikd: The following arguments were not expected: 2 --workers (kwikd --help lists the options)"}},
    };
    for (const cli_error_case& k : cases) {
        std::vector<std::string> words{"kwikd", "--config", f.path()};
        words.insert(words.end(), k.args.begin(), k.args.end());
        std::vector<const char*> argv;
        for (const std::string& w : words) {
            argv.push_back(w.c_str());
        }
        const config_result r = load_config(static_cast<int>(argv.size()), argv.data());
        ASSERT_FALSE(r.ok()) << k.description;
        EXPECT_EQ(r.error().exit_code, 1) << k.description;
        EXPECT_EQ(lines_of(r.message()), k.expected) << k.description;
    }
}

TEST(config_command_line, help_missing_file_and_no_configuration) {
    const config_result help = load({"--help"});
    ASSERT_FALSE(help.ok());
    EXPECT_EQ(help.error().exit_code, 0);
    EXPECT_NE(help.message().find("Usage: kwikd [OPTIONS]"), std::string::npos) << help.message();
    EXPECT_NE(help.message().find("--set KEY=VALUE"), std::string::npos);

    const config_result missing = load({"--config", "/nonexistent/kwikd.toml"});
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().exit_code, 1);
    EXPECT_EQ(missing.message(),
              "/nonexistent/kwikd.toml: cannot read the configuration file: No such file or directory");

    const config_result none = load({});
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.message(), "command line: port: at least one [[port]] table is required");

    // A whole configuration from the command line.
    const config_result cli =
        load({"--set", "port[0].device=net_ring0", "--set", "port[0].addresses=[\"10.0.0.1/24\"]"});
    ASSERT_TRUE(cli.ok()) << cli.message();
    EXPECT_EQ(cli->source, "");
    EXPECT_EQ(cli->ports.at(0).device, "net_ring0");
}

// ---------------------------------------------------------------- EAL arguments

TEST(config_eal, arguments_for_each_set_up) {
    struct ecase {
        const char* description;
        std::string text;
        strings expected;
    };
    const ecase cases[] = {
        {"hugepages, EAL's memory",
         std::string(base_port),
         {"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "--no-pci", "--vdev", "net_ring0"}},
        {"hugepages with -m",
         std::string("[kwikd]\nmemory_mb = 1024\n") + base_port,
         {"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "-m", "1024", "--no-pci", "--vdev",
          "net_ring0"}},
        {"no hugepages, default memory",
         std::string("[kwikd]\nhugepages = false\n") + base_port,
         {"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "--no-huge", "-m", "256", "--no-pci",
          "--vdev", "net_ring0"}},
        {"no hugepages, memory_mb",
         std::string("[kwikd]\nhugepages = false\nmemory_mb = 128\n") + base_port,
         {"kwikd", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "kwik", "--no-huge", "-m", "128", "--no-pci",
          "--vdev", "net_ring0"}},
        {"PCI and vdev ports, exception, lcores in order, eal_args",
         "[kwikd]\nname = \"k7\"\nmain_lcore = 6\nworker_lcores = [4, 2]\neal_args = [\"--no-telemetry\"]\n"
         "[[port]]\ndevice = \"0000:3b:00.0\"\naddresses = [\"10.0.0.1/24\"]\n"
         "[[port]]\ndevice = \"net_af_packet0,iface=veth0\"\naddresses = [\"10.0.1.1/24\"]\n"
         "[[port]]\ndevice = \"3b:00.1\"\naddresses = [\"10.0.2.1/24\"]\n"
         "[exception]\ndevice = \"virtio_user0,path=/dev/vhost-net,iface=kwik0\"\n",
         {"kwikd", "-l", "2,4,6", "--main-lcore", "6", "--file-prefix", "k7", "-a", "0000:3b:00.0", "--vdev",
          "net_af_packet0,iface=veth0", "-a", "3b:00.1", "--vdev", "virtio_user0,path=/dev/vhost-net,iface=kwik0",
          "--no-telemetry"}},
    };
    for (const ecase& k : cases) {
        const kwikd_config c = parse_ok(k.text);
        EXPECT_EQ(eal_arguments(c), k.expected) << k.description;
    }
}

} // namespace
} // namespace kwik::engine
