// perf/gen/options: every bad value is refused naming its flag; the defaults and the address
// plan; the kwikd configuration fragment is accepted by kwikd's own parser and describes
// exactly the synthesised connections and paths.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/engine/config.hpp"
#include "perf/gen/options.hpp"

namespace kwik::gen {
namespace {

parse_outcome parse(std::vector<std::string> extra) {
    std::vector<std::string> args{"kwik-gen"};
    args.insert(args.end(), extra.begin(), extra.end());
    return parse_options(args);
}

TEST(options, defaults) {
    const auto p = parse({"--dst-mac", "02:00:00:00:00:01"});
    ASSERT_TRUE(p.options) << p.message;
    const gen_options& o = *p.options;
    EXPECT_EQ(o.connections, 1u);
    EXPECT_EQ(o.paths, 1u);
    EXPECT_EQ(o.payload, 1200u);
    EXPECT_EQ(o.burst, 32u);
    EXPECT_EQ(o.expect, expect_kind::ack);
    EXPECT_EQ(o.client_port, 40000);
    EXPECT_EQ(o.server_port, 7707);
    EXPECT_EQ((*o.dst_mac)[5], 1);
    EXPECT_FALSE(o.search);
    EXPECT_EQ(o.stream_size, 64u << 20);
    EXPECT_EQ(o.max_streams, 4096u);
    EXPECT_EQ(parse({"--dst-mac", "02:00:00:00:00:01", "--endpoint", "echo"}).options->expect, expect_kind::echo);
    EXPECT_EQ(parse({"--pcap", "x.pcap"}).options->expect, expect_kind::reflect);
    const auto help = parse({"--help"});
    EXPECT_TRUE(help.help);
    EXPECT_NE(help.message.find("--search-max-pps"), std::string::npos);
}

TEST(options, every_bad_value_names_its_flag) {
    const std::string mac = "02:00:00:00:00:01";
    struct bad_case {
        std::vector<std::string> args;
        std::string flag;
    };
    const std::vector<bad_case> cases = {
        {{}, "--dst-mac"},
        {{"--dst-mac", "02:00:00:00:00"}, "--dst-mac"},
        {{"--dst-mac", mac, "--connections", "0"}, "--connections"},
        {{"--dst-mac", mac, "--paths", "65"}, "--paths"},
        {{"--dst-mac", mac, "--streams", "x"}, "--streams"},
        {{"--dst-mac", mac, "--payload", "0"}, "--payload"},
        {{"--dst-mac", mac, "--payload", "1473"}, "--payload"},
        {{"--dst-mac", mac, "--payload", "9000", "--mtu", "9000"}, "--payload"},
        {{"--dst-mac", mac, "--frames-per-packet", "5"}, "--frames-per-packet"},
        {{"--dst-mac", mac, "--payload", "2", "--streams", "4", "--frames-per-packet", "3"}, "--frames-per-packet"},
        {{"--dst-mac", mac, "--stream-size", "1T", "--stream-window", "1M"}, "--stream-size"},
        {{"--dst-mac", mac, "--connection-window", "1M", "--stream-window", "2M", "--stream-size", "1K"},
         "--connection-window"},
        {{"--dst-mac", mac, "--max-streams", "2000000"}, "--max-streams"},
        {{"--dst-mac", mac, "--rate-pps", "100", "--rate-mbps", "10"}, "--rate-mbps"},
        {{"--dst-mac", mac, "--rate-pps", "0"}, "--rate-pps"},
        {{"--dst-mac", mac, "--rate-mbps", "abc"}, "--rate-mbps"},
        {{"--dst-mac", mac, "--burst", "0"}, "--burst"},
        {{"--dst-mac", mac, "--duration-s", "0"}, "--duration-s"},
        {{"--dst-mac", mac, "--drain-ms", "99999999"}, "--drain-ms"},
        {{"--dst-mac", mac, "--expect", "maybe"}, "--expect"},
        {{"--dst-mac", mac, "--expect", "echo"}, "--expect"},
        {{"--dst-mac", mac, "--endpoint", "store"}, "--endpoint"},
        {{"--dst-mac", mac, "--track-window", "1000"}, "--track-window"},
        {{"--dst-mac", mac, "--search"}, "--search-max-pps"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "100", "--search-min-pps", "200"}, "--search-max-pps"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--rate-pps", "5"}, "--rate-pps"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--packets", "5"}, "--packets"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--loss-tolerance", "2"}, "--loss-tolerance"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--resolution", "0"}, "--resolution"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--latency-at", "1.5"}, "--latency-at"},
        {{"--dst-mac", mac, "--trial-s", "1"}, "--trial-s"},
        {{"--dst-mac", mac, "--search", "--search-max-pps", "1e6", "--expect", "none"}, "--expect"},
        {{"--dst-mac", mac, "--connections", "30000", "--client-port", "40000"}, "--connections"},
        {{"--pcap", "x.pcap", "--paths", "2"}, "--paths"},
        {{"--pcap", "x.pcap", "--expect", "ack"}, "--expect"},
        {{"--dst-mac", mac, "--config-only"}, "--config-only"},
        {{"--dst-mac", mac, "--kwikd-workers", "2"}, "--kwikd-workers"},
        {{"--dst-mac", mac, "--kwikd-config", "x", "--kwikd-workers", "0"}, "--kwikd-workers"},
        {{"--dst-mac", mac, "--no-such-flag"}, "--no-such-flag"},
        {{"--dst-mac", mac, "--mtu", "10000"}, "--mtu"},
        {{"--dst-mac", mac, "--idle-sleep-us", "1000000"}, "--idle-sleep-us"},
    };
    for (const bad_case& c : cases) {
        const auto p = parse(c.args);
        std::string all;
        for (const auto& a : c.args) {
            all += a + " ";
        }
        EXPECT_FALSE(p.options.has_value()) << all;
        EXPECT_FALSE(p.help);
        EXPECT_NE(p.message.find(c.flag), std::string::npos)
            << all << "-> " << p.message;
    }
}

TEST(options, kwikd_config_fragment_is_what_kwikd_reads) {
    auto p = parse({"--dst-mac", "02:00:00:00:00:01", "--connections", "3", "--paths", "2", "--endpoint", "echo",
                    "--kwikd-config", "x.toml", "--kwikd-workers", "2", "--stream-window", "4M",
                    "--connection-window", "64M", "--max-streams", "5000", "--stream-size", "1M"});
    ASSERT_TRUE(p.options) << p.message;
    const std::string base = "[kwikd]\nname = \"gen-test\"\nworker_lcores = [1, 2]\nhugepages = false\n\n"
                             "[[port]]\ndevice = \"net_null0\"\naddresses = [\"10.100.0.1/24\"]\n\n";
    const auto cfg = engine::parse_config(base + kwikd_config_text(*p.options), "fragment");
    ASSERT_TRUE(cfg.ok()) << cfg.message() << "\n" << kwikd_config_text(*p.options);
    EXPECT_EQ(cfg->transport.stream_window, 4u << 20);
    EXPECT_EQ(cfg->transport.connection_window, 64u << 20);
    EXPECT_EQ(cfg->transport.max_streams, 5000u);
    ASSERT_EQ(cfg->connections.size(), 3u);
    for (std::size_t c = 0; c < 3; ++c) {
        const auto& conn = cfg->connections[c];
        EXPECT_EQ(conn.endpoint, engine::stream_endpoint::echo);
        ASSERT_EQ(conn.paths.size(), 2u);
        for (std::size_t i = 0; i < 2; ++i) {
            EXPECT_EQ(conn.paths[i].path_id, i + 1);
            EXPECT_EQ(engine::to_string(conn.paths[i].remote), "10.0." + std::to_string(i + 1) + ".2:" +
                                                                   std::to_string(40000 + c));
            EXPECT_EQ(engine::to_string(conn.paths[i].local), "10.100.0.1:7707");
        }
    }
}

} // namespace
} // namespace kwik::gen
