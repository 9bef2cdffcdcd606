// kwik-peer's command line: what it accepts, and each refusal naming its flag with exit 2.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tools/peer/command_line.hpp"

namespace {

using namespace kwik::peer;

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::string w;
    for (char c : line) {
        if (c == ' ') {
            if (!w.empty()) {
                out.push_back(w);
            }
            w.clear();
        } else {
            w.push_back(c);
        }
    }
    if (!w.empty()) {
        out.push_back(w);
    }
    return out;
}

const std::string client = "client --static --path 127.0.0.1=127.0.0.2:7707 ";

TEST(PeerCommandLine, StaticEchoClient) {
    const parse_outcome o = parse_command_line(words(client + "--path 127.0.0.3:4000=127.0.0.4:7708 "
                                                              "--standby-path 127.0.0.5%lo=127.0.0.6:7709 --mode echo --size 64M "
                                                              "--streams 4 --seed 9 --timeout-s 20 --scheduler round_robin "
                                                              "--json r.json --progress-interval-ms 0"));
    ASSERT_TRUE(o.parsed) << o.err;
    const peer_options& p = *o.parsed;
    EXPECT_TRUE(p.static_paths);
    EXPECT_EQ(p.json_path, "r.json");
    ASSERT_EQ(p.loop.paths.size(), 3u);
    EXPECT_EQ(p.loop.paths[0].local_port, 0);
    EXPECT_EQ(p.loop.paths[0].remote_port, 7707);
    EXPECT_EQ(p.loop.paths[1].local_port, 4000);
    EXPECT_FALSE(p.loop.paths[1].standby);
    EXPECT_TRUE(p.loop.paths[2].standby);
    EXPECT_EQ(p.loop.paths[2].device, "lo");
    ASSERT_TRUE(p.loop.transfer);
    EXPECT_EQ(p.loop.transfer->mode, transfer_mode::echo);
    EXPECT_EQ(p.loop.transfer->size, 64u << 20);
    EXPECT_EQ(p.loop.transfer->streams, 4u);
    EXPECT_EQ(p.loop.transfer->seed, 9u);
    EXPECT_EQ(p.loop.timeout_ms, 20'000u);
    EXPECT_EQ(p.loop.strategy, kwik::transport::schedule_strategy::round_robin);
    EXPECT_EQ(p.loop.progress_interval_ms, 0u);
    EXPECT_EQ(p.loop.side, kwik::transport::role::client);
}

TEST(PeerCommandLine, ServerAndGet) {
    parse_outcome o = parse_command_line(words("server --path [::1]:7000=[::1]:0 --endpoint pattern --exit-after-connection"));
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_EQ(o.parsed->loop.side, kwik::transport::role::server);
    EXPECT_EQ(o.parsed->loop.endpoint.kind, kwik::engine::endpoint_kind::pattern);
    EXPECT_TRUE(o.parsed->loop.exit_after_connection);
    EXPECT_EQ(o.parsed->loop.paths[0].remote_port, 0);
    EXPECT_EQ(o.parsed->loop.paths[0].local.version, 6);

    o = parse_command_line(words(client + "--mode get --name data.bin --output /tmp/x"));
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_EQ(o.parsed->loop.transfer->name, "data.bin");
    EXPECT_EQ(o.parsed->loop.transfer->output, "/tmp/x");
}

TEST(PeerCommandLine, KcpClient) {
    const std::string key_file = ::testing::TempDir() + "peer_key";
    std::ofstream(key_file) << std::string(64, 'a') << "\n";
    const parse_outcome o = parse_command_line(words(
        "client --path 10.0.0.1=10.0.0.2:7707 --mode upload --size 1k --server 127.0.0.1:7708 --plain --key-id k1 "
        "--key-file " + key_file + " --encrypt off --scale-at-s 2.5 --scale-target-mbps 300 --discover"));
    ASSERT_TRUE(o.parsed) << o.err;
    EXPECT_FALSE(o.parsed->static_paths);
    EXPECT_EQ(o.parsed->kcp.server, "127.0.0.1:7708");
    EXPECT_TRUE(o.parsed->kcp.plain);
    EXPECT_EQ(o.parsed->kcp.key[0], 0xaa);
    EXPECT_FALSE(o.parsed->kcp.encrypt);
    EXPECT_DOUBLE_EQ(o.parsed->kcp.scale_at_s, 2.5);
    EXPECT_EQ(o.parsed->kcp.scale_target_mbps, 300u);
    EXPECT_TRUE(o.parsed->kcp.discover);
    std::remove(key_file.c_str());
}

struct refusal {
    const char* args;
    const char* flag; // the message must name it
};

TEST(PeerCommandLine, RefusalsNameTheFlag) {
    const std::string c = client;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"client --static --mode echo --size 1k", "--path"},
        {c + "--size 1k", "--mode"},
        {c + "--mode fetch --size 1k", "--mode"},
        {c + "--mode echo", "--size"},
        {c + "--mode echo --size 0", "--size"},
        {c + "--mode echo --size 12Q", "--size"},
        {c + "--mode echo --size 2T", "--size"},
        {c + "--mode echo --size 1k --file /etc/hostname", "--file"},
        {c + "--mode download --file /etc/hostname", "--file"},
        {c + "--mode download", "--size"},
        {c + "--mode get --output x", "--name"},
        {c + "--mode get --name ../etc/passwd --output x", "--name"},
        {c + "--mode get --name a", "--output"},
        {c + "--mode get --name a --output x --size 1k", "--size"},
        {c + "--mode echo --size 1k --name a", "--name"},
        {c + "--mode echo --size 1k --streams 0", "--streams"},
        {c + "--mode echo --size 1k --streams 257", "--streams"},
        {c + "--mode echo --size 4 --streams 8", "--streams"},
        {c + "--mode echo --size 1k --seed -1", "--seed"},
        {c + "--mode download --size 1k --seed 3", "--seed"},
        {c + "--mode echo --size 1k --timeout-s 0", "--timeout-s"},
        {c + "--mode echo --size 1k --scheduler fastest", "--scheduler"},
        {c + "--mode echo --size 1k --progress-interval-ms x", "--progress-interval-ms"},
        {c + "--mode echo --size 1k --expect-sha256 abc", "--expect-sha256"},
        {c + "--mode echo --size 1k --server 1.2.3.4:7708", "--server"},
        {"client --static --path 127.0.0.1 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1=127.0.0.2 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1=127.0.0.2:0 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1=::1:7707 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1=[::1]:7707 --mode echo --size 1k", "--path"},
        {"client --static --path 300.0.0.1=127.0.0.2:7707 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1:70000=127.0.0.2:7707 --mode echo --size 1k", "--path"},
        {"client --static --path 127.0.0.1%=127.0.0.2:7707 --mode echo --size 1k", "--path"},
        {"client --static --standby-path 127.0.0.1=x:1 --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k",
         "--standby-path"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k", "--server"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:7708", "--pin"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:x --plain", "--server"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:1 --plain --pin " + std::string(64, 'a'),
         "--pin"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:1 --pin 12", "--pin"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:1 --plain", "--key-id"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:1 --plain --key-id k", "--key-file"},
        {"client --path 127.0.0.1=127.0.0.2:7707 --mode echo --size 1k --server h:1 --plain --key-id k --key-file /nonexistent",
         "--key-file"},
        {"server --path 127.0.0.1:1=127.0.0.2:0 --endpoint mirror", "--endpoint"},
        {"server --path 127.0.0.1:1=127.0.0.2:0 --endpoint file_store", "--directory"},
        {"server --path 127.0.0.1:1=127.0.0.2:0 --directory /tmp", "--directory"},
        {"server --endpoint echo", "--path"},
        {"server --path 127.0.0.1:1=127.0.0.2:0 --mode echo", "--mode"},
    };
    for (const auto& [line, flag] : cases) {
        const parse_outcome o = parse_command_line(words(line));
        EXPECT_FALSE(o.parsed) << line;
        EXPECT_EQ(o.exit_code, exit_usage) << line;
        EXPECT_NE(o.err.find(flag), std::string::npos) << line << " -> " << o.err;
        EXPECT_EQ(o.err.rfind("kwik-peer: ", 0), 0u) << o.err;
    }
}

TEST(PeerCommandLine, Help) {
    const parse_outcome o = parse_command_line({"client", "--help"});
    EXPECT_FALSE(o.parsed);
    EXPECT_EQ(o.exit_code, exit_ok);
    EXPECT_NE(o.out.find("--mode"), std::string::npos);
}

TEST(PeerPathSpec, Forms) {
    auto p = parse_path_spec("10.0.0.1=10.0.0.2:7707", false);
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(kwik::tools::to_string(p->local), "10.0.0.1");
    EXPECT_EQ(p->local_port, 0);
    EXPECT_EQ(kwik::tools::to_string(p->remote), "10.0.0.2");
    EXPECT_EQ(p->remote_port, 7707);

    p = parse_path_spec("[::1]:4000=[::1]:7707", false);
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(p->local.version, 6);
    EXPECT_EQ(p->local_port, 4000);
    EXPECT_EQ(p->remote_port, 7707);

    p = parse_path_spec("fd00::1=[fd00::2]:7707", false); // a bare IPv6 local address: no port
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(kwik::tools::to_string(p->local), "fd00::1");

    p = parse_path_spec("[fd00::1]%veth-a=[fd00::2]:7707", false);
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(p->device, "veth-a");
    EXPECT_EQ(p->local_port, 0);

    p = parse_path_spec("10.0.0.1:5000%eth1=10.0.0.2:7707", false);
    ASSERT_TRUE(p) << p.message();
    EXPECT_EQ(p->device, "eth1");
    EXPECT_EQ(p->local_port, 5000);

    EXPECT_TRUE(parse_path_spec("10.0.0.1:1=10.0.0.2:0", true));
    EXPECT_FALSE(parse_path_spec("10.0.0.1:1=10.0.0.2:0", false));
    EXPECT_FALSE(parse_path_spec("10.0.0.1=[fd00::2]:7707", false)); // mixed versions
    EXPECT_FALSE(parse_path_spec("10.0.0.1%averyveryverylongname=10.0.0.2:7707", false));
    EXPECT_FALSE(parse_path_spec("10.0.0.1=10.0.0.2:7707=x", false));
    EXPECT_FALSE(parse_path_spec("=10.0.0.2:7707", false));
    EXPECT_FALSE(parse_path_spec("10.0.0.1=", false));
    EXPECT_FALSE(parse_path_spec("", false));
    EXPECT_FALSE(parse_path_spec("[::1=[::1]:7707", false));
}

TEST(PeerSize, Suffixes) {
    EXPECT_EQ(*parse_size("1"), 1u);
    EXPECT_EQ(*parse_size("64k"), 64u << 10);
    EXPECT_EQ(*parse_size("256M"), 256u << 20);
    EXPECT_EQ(*parse_size("2G"), std::uint64_t{2} << 30);
    EXPECT_EQ(*parse_size("1024G"), std::uint64_t{1} << 40);
    EXPECT_FALSE(parse_size("1025G"));
    EXPECT_FALSE(parse_size(""));
    EXPECT_FALSE(parse_size("M"));
    EXPECT_FALSE(parse_size("-5"));
    EXPECT_FALSE(parse_size("1.5M"));
}

} // namespace
