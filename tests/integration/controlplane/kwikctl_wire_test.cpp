// The kwikctl process against an in-test KCP server (a poll loop over kcp::channel, with the
// real hello of controlplane/server/auth.hpp and an operator key) that records each
// OperatorRequest and answers it with a canned OperatorResponse. What it shows is kwikctl's
// wire behaviour: the request each command sends, the pinned TLS session and plain TCP on
// loopback, tables and JSON on stdout, and the exit statuses: 1 with kwik-cp's error, 2 for bad
// arguments (nothing sent), 3 for no server, a wrong pin, a rejected hello and no answer in
// time. kwik-cp's own answers are tested with kwikd in tests/e2e/kwikctl_test.py.
// Usage (meson passes it): kwikctl_wire_test <kwikctl>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/auth.hpp"

namespace kwik {
namespace {

namespace fs = std::filesystem;
namespace v3 = kcp::v3;
using namespace std::chrono_literals;

std::string g_kwikctl;

std::string hex(const cp::bytes32& b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (auto v : b) {
        out += digits[v >> 4];
        out += digits[v & 15];
    }
    return out;
}

// ---- the server ---------------------------------------------------------------------------

using answer_fn = std::function<std::optional<v3::OperatorResponse>(const v3::OperatorRequest&)>;

struct served {
    std::size_t sessions = 0;                 // accepted sockets
    std::size_t accepted_hellos = 0;
    std::vector<v3::OperatorRequest> requests; // in order, over all sessions
};

class operator_test_server {
public:
    operator_test_server(bool tls, answer_fn answer) : _tls(tls), _answer(std::move(answer)) {
        EXPECT_TRUE(cp::random_bytes(_key).ok());
        cp::key_entry ops;
        ops.key_id = "ops";
        ops.secret = _key;
        ops.roles = cp::role_bit(cp::role::operator_);
        _hello = std::make_unique<cp::hello_server>(cp::hello_config{.server_id = "cp-test"},
                                                    cp::key_store({ops}));
        if (tls) {
            auto id = kcp::generate_self_signed(kcp::key_algorithm::ed25519, "kwikctl-test");
            EXPECT_TRUE(id.ok()) << id.message();
            auto ctx = kcp::tls_context::server(*id);
            EXPECT_TRUE(ctx.ok()) << ctx.message();
            _context.emplace(std::move(*ctx));
        }
        _listen = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(_listen, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(_listen, 16), 0);
        socklen_t len = sizeof a;
        ::getsockname(_listen, reinterpret_cast<sockaddr*>(&a), &len);
        _port = ntohs(a.sin_port);
        _wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        _thread = std::thread([this] { run(); });
    }
    ~operator_test_server() {
        _stop = true;
        const std::uint64_t one = 1;
        (void)!::write(_wake, &one, sizeof one);
        if (_thread.joinable()) {
            _thread.join();
        }
        ::close(_listen);
        ::close(_wake);
    }

    std::string address() const { return "127.0.0.1:" + std::to_string(_port); }
    std::string pin() const { return kcp::to_hex(_context->pin()); }
    const cp::bytes32& key() const { return _key; }
    served seen() const {
        std::lock_guard lock(_mutex);
        return _seen;
    }

private:
    struct session {
        kcp::channel ch;
        std::unique_ptr<cp::hello_session> hello;
    };

    void serve(session& s, short revents, kcp::clock_sample now) {
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            s.ch.on_readable(now);
        }
        kcp::KCPMessage m;
        while (s.ch.receive(m)) {
            kcp::KCPMessage out;
            if (m.has_client_hello()) {
                *out.mutable_server_hello() = s.hello->handle_client_hello(m.client_hello(), now.wall_ms, s.ch.is_tls());
                out.mutable_server_hello()->set_in_reply_to(m.header().message_id());
                const auto result = out.server_hello().auth_result();
                (void)s.ch.send(std::move(out), now);
                if (result == v3::ServerHello::ACCEPTED) {
                    std::lock_guard lock(_mutex);
                    ++_seen.accepted_hellos;
                } else if (result != v3::ServerHello::CHALLENGE) {
                    s.ch.close_when_sent("hello rejected", now);
                }
            } else if (m.has_operator_request() && s.hello->accepted()) {
                {
                    std::lock_guard lock(_mutex);
                    _seen.requests.push_back(m.operator_request());
                }
                if (auto r = _answer(m.operator_request())) {
                    r->set_in_reply_to(m.header().message_id());
                    *out.mutable_operator_response() = *r;
                    (void)s.ch.send(std::move(out), now);
                }
            }
            m = kcp::KCPMessage();
        }
        if (s.ch.wants_write()) {
            s.ch.on_writable(now);
        }
        s.ch.poll(now);
    }

    void run() {
        std::vector<std::unique_ptr<session>> live;
        while (!_stop) {
            std::vector<pollfd> fds{{_listen, POLLIN, 0}, {_wake, POLLIN, 0}};
            for (const auto& s : live) {
                fds.push_back({s->ch.fd(), static_cast<short>(POLLIN | (s->ch.wants_write() ? POLLOUT : 0)), 0});
            }
            ::poll(fds.data(), fds.size(), 20);
            const kcp::clock_sample now = kcp::clock_sample::now();
            for (std::size_t i = 0; i < live.size(); ++i) {
                serve(*live[i], fds[i + 2].revents, now);
            }
            std::erase_if(live, [](const auto& s) { return s->ch.closed(); });
            for (;;) {
                const int fd = ::accept4(_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    break;
                }
                auto ch = _tls ? kcp::channel::tls(fd, *_context, kcp::channel_options{}, now)
                               : kcp::channel::plain(fd, kcp::channel_options{}, now);
                if (!ch) {
                    continue;
                }
                live.push_back(std::make_unique<session>(session{std::move(*ch), std::make_unique<cp::hello_session>(*_hello)}));
                std::lock_guard lock(_mutex);
                ++_seen.sessions;
            }
        }
    }

    bool _tls;
    answer_fn _answer;
    cp::bytes32 _key{};
    std::unique_ptr<cp::hello_server> _hello;
    std::optional<kcp::tls_context> _context;
    int _listen = -1;
    int _wake = -1;
    std::uint16_t _port = 0;
    std::atomic<bool> _stop{false};
    mutable std::mutex _mutex;
    served _seen;
    std::thread _thread;
};

// ---- canned answers -----------------------------------------------------------------------

v3::TableValue text(const std::string& s) {
    v3::TableValue v;
    v.set_text(s);
    return v;
}
v3::TableValue number(std::uint64_t x) {
    v3::TableValue v;
    v.set_unsigned_value(x);
    return v;
}

v3::OperatorResponse paths_answer() {
    v3::OperatorResponse r;
    r.set_ok(true);
    auto* t = r.add_tables();
    t->set_name("paths");
    for (const char* c : {"connection", "path_id", "remote", "rx_bps"}) {
        t->add_columns(c);
    }
    auto* row = t->add_rows();
    for (const auto& v : {text("demo-0"), number(1), text("10.0.1.2:40000"), number(1'200'000'000)}) {
        *row->add_values() = v;
    }
    return r;
}

std::optional<v3::OperatorResponse> canned(const v3::OperatorRequest& q) {
    if (q.has_show()) {
        return paths_answer();
    }
    v3::OperatorResponse r;
    if (q.has_remove_path() && q.remove_path().path_id() == 9) {
        r.set_ok(false);
        r.set_error("remove_path.path_id: connection 7 has no path 9");
        return r;
    }
    r.set_ok(true);
    r.set_detail("path " + std::to_string(q.add_path().path_id()) + " added to connection " + q.add_path().connection());
    return r;
}

// ---- running kwikctl ----------------------------------------------------------------------

struct run_result {
    int status = -1; // exit status; -1 when it did not exit within the limit
    std::string out, err;
};

// started (optional) gets the child's pid once it runs.
run_result run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
               std::chrono::milliseconds limit = 20s, const std::function<void(pid_t)>& started = {}) {
    int out[2], err[2];
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        const int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        for (const auto& [k, v] : env) {
            ::setenv(k.c_str(), v.c_str(), 1);
        }
        std::vector<char*> argv{const_cast<char*>(g_kwikctl.c_str())};
        for (const auto& a : args) {
            argv.push_back(const_cast<char*>(a.c_str()));
        }
        argv.push_back(nullptr);
        ::execv(g_kwikctl.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    if (started) {
        started(pid);
    }
    run_result r;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open = 2;
    while (open > 0 && std::chrono::steady_clock::now() < deadline) {
        if (::poll(fds, 2, 100) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP)) != 0) {
                char buf[4096];
                const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
                if (n <= 0) {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    --open;
                } else {
                    (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
                }
            }
        }
    }
    if (open > 0) {
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    for (const auto& f : fds) {
        if (f.fd >= 0) {
            ::close(f.fd);
        }
    }
    return r;
}

class kwikctl_wire : public testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("kwikctl-wire-" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    std::string secret_file(const cp::bytes32& key, const std::string& name = "ops.secret") {
        const fs::path p = dir / name;
        std::ofstream(p) << hex(key) << "\n";
        ::chmod(p.c_str(), 0600);
        return p.string();
    }
    // The connection flags for server s over TLS.
    std::vector<std::string> connect_to(const operator_test_server& s, const std::vector<std::string>& command) {
        std::vector<std::string> a{"--server", s.address(), "--pin", s.pin(), "--key-id", "ops", "--secret-file",
                                   secret_file(s.key()), "--timeout-ms", "3000"};
        a.insert(a.end(), command.begin(), command.end());
        return a;
    }

    fs::path dir;
};

TEST_F(kwikctl_wire, show_paths_over_pinned_tls_prints_the_table) {
    operator_test_server s(true, canned);
    const run_result r = run(connect_to(s, {"show", "paths", "--connection", "demo-0"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "CONNECTION  PATH_ID  REMOTE                  RX\n"
                     "demo-0            1  10.0.1.2:40000  1.2 Gbit/s\n");
    EXPECT_EQ(r.err, "");
    const served seen = s.seen();
    ASSERT_EQ(seen.requests.size(), 1u);
    EXPECT_EQ(seen.requests[0].show().view(), v3::OperatorRequest::PATHS);
    EXPECT_EQ(seen.requests[0].show().connection(), "demo-0");
    EXPECT_EQ(seen.accepted_hellos, 1u);
}

TEST_F(kwikctl_wire, json_prints_the_response_with_raw_values) {
    operator_test_server s(true, canned);
    const run_result r = run(connect_to(s, {"show", "paths", "--json"}));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["ok"], true);
    EXPECT_GT(j["in_reply_to"].get<std::uint64_t>(), 0u);
    ASSERT_EQ(j["tables"].size(), 1u);
    EXPECT_EQ(j["tables"][0]["name"], "paths");
    EXPECT_EQ(j["tables"][0]["rows"][0]["rx_bps"], 1'200'000'000u);
    EXPECT_EQ(j["tables"][0]["rows"][0]["remote"], "10.0.1.2:40000");
}

TEST_F(kwikctl_wire, path_add_sends_the_path_and_prints_the_detail) {
    operator_test_server s(true, canned);
    const run_result r = run(connect_to(s, {"path", "add", "--connection", "7", "--path-id", "3", "--local",
                                            "10.77.0.1:7707", "--remote", "10.77.0.2:40003", "--weight", "2",
                                            "--max-mbps", "500"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "path 3 added to connection 7\n");
    const served seen = s.seen();
    ASSERT_EQ(seen.requests.size(), 1u);
    const auto& a = seen.requests[0].add_path();
    EXPECT_EQ(a.connection(), "7");
    EXPECT_EQ(a.path_id(), 3u);
    EXPECT_EQ(a.path().ip_version(), v3::UdpPath::IPV4);
    EXPECT_EQ(a.path().local_address(), "10.77.0.1");
    EXPECT_EQ(a.path().local_port(), 7707u);
    EXPECT_EQ(a.path().remote_address(), "10.77.0.2");
    EXPECT_EQ(a.path().remote_port(), 40003u);
    EXPECT_EQ(a.weight(), 2.0f);
    EXPECT_EQ(a.max_bandwidth_mbps(), 500u);
}

TEST_F(kwikctl_wire, a_refusal_exits_1_with_kwik_cps_error) {
    operator_test_server s(true, canned);
    const run_result r = run(connect_to(s, {"path", "remove", "--connection", "7", "--path-id", "9"}));
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "kwikctl: remove_path.path_id: connection 7 has no path 9\n");
    EXPECT_EQ(r.out, "");
}

TEST_F(kwikctl_wire, plain_tcp_on_loopback_with_settings_from_the_environment) {
    operator_test_server s(false, canned);
    const run_result r = run({"status"}, {{"KWIKCTL_SERVER", s.address()},
                                          {"KWIKCTL_INSECURE_PLAIN", "1"},
                                          {"KWIKCTL_KEY_ID", "ops"},
                                          {"KWIKCTL_SECRET_FILE", secret_file(s.key())},
                                          {"KWIKCTL_CONFIG", (dir / "absent.toml").string()}});
    EXPECT_EQ(r.status, 2) << "KWIKCTL_CONFIG names a file that is not there: " << r.err;
    EXPECT_NE(r.err.find("KWIKCTL_CONFIG"), std::string::npos) << r.err;
    const fs::path config = dir / "kwikctl.toml";
    std::ofstream(config) << "server = \"" << s.address() << "\"\ninsecure_plain = true\nkey_id = \"ops\"\n"
                          << "secret_file = \"ops.secret\"\nclient_id = \"from-file\"\n";
    secret_file(s.key());
    const run_result f = run({"--config", config.string(), "status"});
    EXPECT_EQ(f.status, 0) << f.err;
    const served seen = s.seen();
    ASSERT_EQ(seen.requests.size(), 1u);
    EXPECT_EQ(seen.requests[0].show().view(), v3::OperatorRequest::STATUS);
}

TEST_F(kwikctl_wire, bad_arguments_exit_2_before_connecting) {
    operator_test_server s(true, canned);
    const run_result r = run(connect_to(s, {"path", "add", "--connection", "7", "--path-id", "0", "--local",
                                            "10.0.0.1:7707", "--remote", "10.0.0.2:1"}));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--path-id: \"0\""), std::string::npos) << r.err;
    const fs::path open = dir / "open.secret";
    std::ofstream(open) << hex(s.key());
    ::chmod(open.c_str(), 0644);
    const run_result o = run({"--server", s.address(), "--pin", s.pin(), "--key-id", "ops", "--secret-file",
                              open.string(), "status"});
    EXPECT_EQ(o.status, 2);
    EXPECT_NE(o.err.find("open to group or others"), std::string::npos) << o.err;
    EXPECT_EQ(s.seen().sessions, 0u) << "nothing was sent";
}

TEST_F(kwikctl_wire, no_server_exits_3_saying_it_cannot_connect) {
    std::uint16_t port = 0;
    {
        operator_test_server gone(true, canned);
        port = static_cast<std::uint16_t>(std::stoi(gone.address().substr(10)));
    }
    const run_result r = run({"--server", "127.0.0.1:" + std::to_string(port), "--pin", std::string(64, 'a'),
                              "--key-id", "ops", "--secret-file", secret_file(cp::bytes32{}), "status"});
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("kwikctl: cannot connect to kwik-cp at 127.0.0.1:" + std::to_string(port)), std::string::npos)
        << r.err;
}

TEST_F(kwikctl_wire, a_wrong_pin_exits_3_naming_both_keys) {
    operator_test_server s(true, canned);
    const std::string wrong(64, 'e');
    const run_result r = run({"--server", s.address(), "--pin", wrong, "--key-id", "ops", "--secret-file",
                              secret_file(s.key()), "status"});
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("cannot connect to kwik-cp"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(wrong), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(s.pin()), std::string::npos) << "the server's real pin is named: " << r.err;
    EXPECT_EQ(s.seen().accepted_hellos, 0u);
}

TEST_F(kwikctl_wire, a_rejected_hello_exits_3_with_the_servers_reason) {
    operator_test_server s(true, canned);
    const run_result unknown = run({"--server", s.address(), "--pin", s.pin(), "--key-id", "nobody", "--secret-file",
                                    secret_file(s.key()), "status"});
    EXPECT_EQ(unknown.status, 3);
    EXPECT_NE(unknown.err.find("hello rejected by kwik-cp at " + s.address()), std::string::npos) << unknown.err;
    EXPECT_NE(unknown.err.find("REJECTED_UNKNOWN_KEY"), std::string::npos) << unknown.err;
    EXPECT_NE(unknown.err.find("\"nobody\""), std::string::npos) << unknown.err;
    cp::bytes32 wrong_key = s.key();
    wrong_key[0] ^= 1;
    const run_result bad = run({"--server", s.address(), "--pin", s.pin(), "--key-id", "ops", "--secret-file",
                                secret_file(wrong_key, "wrong.secret"), "status"});
    EXPECT_EQ(bad.status, 3);
    EXPECT_NE(bad.err.find("REJECTED_BAD_PROOF"), std::string::npos) << bad.err;
    EXPECT_TRUE(s.seen().requests.empty());
}

TEST_F(kwikctl_wire, no_answer_in_time_exits_3) {
    operator_test_server s(true, [](const v3::OperatorRequest&) { return std::optional<v3::OperatorResponse>(); });
    std::vector<std::string> a = connect_to(s, {"status"});
    a.insert(a.begin(), {"--timeout-ms", "300"});
    a.erase(a.end() - 3, a.end() - 1); // the later --timeout-ms 3000 of connect_to
    const auto started = std::chrono::steady_clock::now();
    const run_result r = run(a);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("no answer from kwik-cp at " + s.address() + " within 300 ms"), std::string::npos) << r.err;
    EXPECT_LT(took, 5s);
    EXPECT_EQ(s.seen().requests.size(), 1u);
}

TEST_F(kwikctl_wire, watch_repeats_the_view_on_one_session_in_plain_blocks) {
    operator_test_server s(true, canned);
    const auto started = std::chrono::steady_clock::now();
    const run_result r = run(connect_to(s, {"watch", "paths", "--interval-ms", "150", "--count", "3"}));
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.status, 0) << r.err;
    std::size_t blocks = 0;
    for (std::size_t at = 0; (at = r.out.find("kwikctl watch paths  every 150 ms  ", at)) != std::string::npos; ++at) {
        ++blocks;
    }
    EXPECT_EQ(blocks, 3u) << r.out;
    EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "no terminal control codes into a pipe";
    EXPECT_NE(r.out.find("demo-0            1  10.0.1.2:40000  1.2 Gbit/s\n"), std::string::npos) << r.out;
    EXPECT_GE(took, 300ms) << "two intervals between three refreshes";
    const served seen = s.seen();
    EXPECT_EQ(seen.sessions, 1u);
    ASSERT_EQ(seen.requests.size(), 3u);
    for (const auto& q : seen.requests) {
        EXPECT_EQ(q.show().view(), v3::OperatorRequest::PATHS);
    }
    const run_result j = run(connect_to(s, {"watch", "counters", "--interval-ms", "100", "--count", "2", "--json"}));
    EXPECT_EQ(j.status, 0) << j.err;
    const auto newline = j.out.find('\n');
    ASSERT_NE(newline, std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(j.out.substr(0, newline))["ok"], true);
    EXPECT_EQ(nlohmann::json::parse(j.out.substr(newline + 1))["tables"][0]["name"], "paths");
}

TEST_F(kwikctl_wire, watch_ends_on_sigint_with_status_0) {
    operator_test_server s(true, canned);
    std::atomic<pid_t> child{0};
    std::thread stopper([&] {
        // Waits until the first refresh reached the server, then interrupts that kwikctl.
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while ((s.seen().requests.empty() || child == 0) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
        std::this_thread::sleep_for(100ms);
        ::kill(child, SIGINT);
    });
    const run_result r = run(connect_to(s, {"watch", "--interval-ms", "5000"}), {}, 8s, [&](pid_t p) { child = p; });
    stopper.join();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(s.seen().requests.size(), 1u);
}

} // namespace
} // namespace kwik

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <kwikctl>\n", argv[0]);
        return 2;
    }
    kwik::g_kwikctl = argv[1];
    return RUN_ALL_TESTS();
}
