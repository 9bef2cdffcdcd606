// The kwik-cp process itself: started with a generated configuration (TLS files created on
// first start, a key store), it prints its port; a kcp::blocking_client pinned to the created
// certificate passes the hello and gets a discovery answer listing this server with its pin;
// SIGTERM ends it with status 0. Its log on stderr has one line per event: the configuration at
// start, each session opened and closed (peer, client id, reason), a refused hello, the stop.
// Usage (meson passes it): kwik_cp_process_test <kwik-cp>
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/kcp/client.hpp"
#include "controlplane/server/auth.hpp"
#include "tests/integration/controlplane/kcp_hello.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using namespace std::chrono_literals;
using kcp::KCPMessage;
namespace v3 = kcp::v3;

std::string g_kwik_cp;

std::string hex(const cp::bytes32& b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (auto v : b) {
        out += digits[v >> 4];
        out += digits[v & 15];
    }
    return out;
}

// Reads the first line kwik-cp prints, waiting up to 10 s.
std::string first_line(int fd) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) {
            char buf[256];
            const ssize_t n = ::read(fd, buf, sizeof(buf));
            if (n <= 0) {
                break;
            }
            line.append(buf, static_cast<std::size_t>(n));
        }
    }
    return line;
}

TEST(kwik_cp_process, serves_a_pinned_client_and_stops_on_sigterm) {
    const fs::path dir = fs::temp_directory_path() / ("kwikcpproc" + std::to_string(::getpid()));
    fs::create_directories(dir);
    cp::bytes32 key{};
    ASSERT_TRUE(cp::random_bytes(key).ok());
    const fs::path config = dir / "cp.toml";
    std::ofstream(config) << "[kwik_cp]\nserver_id = \"cp-proc\"\nlisten = \"127.0.0.1:0\"\nkwikd_region = \"kwikcpproc"
                          << ::getpid() << "\"\n[tls]\ncertificate = \"" << (dir / "cp.crt").string()
                          << "\"\nprivate_key = \"" << (dir / "cp.key").string()
                          << "\"\n[[auth.key]]\nkey_id = \"edge-01\"\nsecret = \"" << hex(key) << "\"\n";
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        std::FILE* err = std::fopen((dir / "stderr.log").c_str(), "w");
        if (err != nullptr) {
            ::dup2(::fileno(err), 2);
        }
        ::execl(g_kwik_cp.c_str(), g_kwik_cp.c_str(), "--config", config.c_str(), "--log-level", "info",
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    const std::string line = first_line(out[0]);
    const std::string prefix = "kwik-cp: listening on port ";
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    const std::string port = line.substr(prefix.size(), line.find('\n') - prefix.size());

    auto pin = kcp::pin_of_file((dir / "cp.crt").string());
    ASSERT_TRUE(pin.ok()) << pin.message();
    kcp::client_options o;
    o.pin = pin.value();
    auto c = kcp::blocking_client::connect("127.0.0.1:" + port, o);
    ASSERT_TRUE(c.ok()) << c.message();

    cp::client_credentials cr;
    cr.client_id = "client-a";
    cr.key_id = "edge-01";
    cr.key = key;
    const auto accepted = test::two_round_hello(**c, cr);
    EXPECT_EQ(accepted.auth_result(), v3::ServerHello::ACCEPTED) << accepted.error_reason();
    EXPECT_EQ(accepted.server_id(), "cp-proc");

    KCPMessage d;
    d.mutable_server_discovery_req()->set_client_id("client-a");
    auto da = (*c)->request(d, 5s);
    ASSERT_TRUE(da.ok()) << da.message();
    ASSERT_EQ(da->server_discovery_resp().servers_size(), 1);
    EXPECT_EQ(da->server_discovery_resp().servers(0).address(), "127.0.0.1:" + port) << "the bound port";
    EXPECT_EQ(da->server_discovery_resp().servers(0).tls_pubkey_hash_sha256(),
              std::string(pin->begin(), pin->end()));
    (*c)->close();

    // A wrong key: refused, and the session closed after the answer.
    auto wrong = kcp::blocking_client::connect("127.0.0.1:" + port, o);
    ASSERT_TRUE(wrong.ok()) << wrong.message();
    cp::client_credentials bad = cr;
    bad.client_id = "client-b";
    bad.key[0] ^= 1;
    EXPECT_EQ(test::two_round_hello(**wrong, bad).auth_result(), v3::ServerHello::REJECTED_BAD_PROOF);
    std::this_thread::sleep_for(300ms); // kwik-cp notices both closes

    ::kill(pid, SIGTERM);
    int status = -1;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

    std::ifstream err_in(dir / "stderr.log");
    std::vector<std::string> log;
    for (std::string l; std::getline(err_in, l);) {
        log.push_back(l);
    }
    const auto has = [&log](const std::string& part) {
        return std::any_of(log.begin(), log.end(), [&](const std::string& l) {
            return l.find(part) != std::string::npos && l.find(" kwik-cp ") == 24; // after the UTC time
        });
    };
    std::string all;
    for (const std::string& l : log) {
        all += l + "\n";
    }
    EXPECT_TRUE(has("notice: starting: server_id \"cp-proc\", listening on 127.0.0.1:0 (any free port) (TLS 1.3), "
                    "1 key(s), kwikd shared memory /dev/shm/kwikcpproc")) << all;
    EXPECT_TRUE(has("info: session opened: peer 127.0.0.1:")) << all;
    EXPECT_TRUE(has("info: session closed: peer 127.0.0.1:")) << all;
    EXPECT_TRUE(has(", client \"client-a\": the peer closed the ")) << all;
    EXPECT_TRUE(has("warning: hello refused: peer 127.0.0.1:")) << all;
    EXPECT_TRUE(has(", client \"client-b\": REJECTED_BAD_PROOF: ")) << all;
    EXPECT_TRUE(has("notice: stopping: 0 session(s) open")) << all;
    ::close(out[0]);
    fs::remove_all(dir);
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <kwik-cp>\n", argv[0]);
        return 2;
    }
    g_kwik_cp = argv[1];
    return RUN_ALL_TESTS();
}
