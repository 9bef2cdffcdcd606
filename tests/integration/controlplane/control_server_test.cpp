// kwik-cp's event loop in-process on a real loopback socket, with kcp::blocking_client over TLS
// with the server's pin as the client: the two-round hello (a wrong key is rejected, a message
// before the hello is refused and the session closed), discovery and capability queries, and,
// with a kwikd on net_null, AddPathCommand -> PathStatusUpdate UP with the path in kwikd's
// counters, RemovePathCommand -> REMOVED. kwik-cp's log: a line per refused hello, kwikd attached.
// Usage (meson passes it): control_server_test <kwikd>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controlplane/kcp/client.hpp"
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "tests/integration/controlplane/kcp_hello.hpp"
#include "tests/integration/controlplane/kwikd_process.hpp"
#include "tests/integration/controlplane/server_loop.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using namespace std::chrono_literals;
using kcp::KCPMessage;
namespace v3 = kcp::v3;

std::string g_kwikd;

using test::kwikd_process;

// kwik-cp's log lines while it lives (the loop thread writes them, the test reads them).
class log_capture {
public:
    log_capture() { cp::set_log_sink(&log_capture::take, this); }
    ~log_capture() { cp::set_log_sink(nullptr, nullptr); }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;
    // The lines so far that contain part, joined.
    std::string lines_with(const std::string& part) {
        std::lock_guard lock(_mutex);
        std::string out;
        for (const std::string& l : _lines) {
            out += l.find(part) != std::string::npos ? l : "";
        }
        return out;
    }

private:
    static void take(cp::log_level, std::string_view line, void* self) {
        auto* c = static_cast<log_capture*>(self);
        std::lock_guard lock(c->_mutex);
        c->_lines.emplace_back(line);
    }
    std::mutex _mutex;
    std::vector<std::string> _lines;
};

cp::bytes32 random_key() {
    cp::bytes32 k{};
    EXPECT_TRUE(cp::random_bytes(k).ok());
    return k;
}

class control_server_test : public ::testing::Test {
protected:
    void SetUp() override {
        name = "kwikcp" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::create_directories(dir);
        key = random_key();

        cp::control_server_config c;
        c.listen_address = "127.0.0.1";
        c.listen_port = 0;
        auto identity = kcp::generate_self_signed();
        ASSERT_TRUE(identity.ok()) << identity.message();
        auto pinned = kcp::pin_of_pem(identity->certificate_pem);
        ASSERT_TRUE(pinned.ok()) << pinned.message();
        pin = pinned.value();
        c.tls = identity.value();
        c.hello.server_id = "cp-test";
        c.keys = cp::key_store({cp::key_entry{"edge-01", key, {}, false}});
        c.link.region_name = name;
        c.link.retry_interval = 50'000'000;
        c.link.command_timeout = 5'000'000'000;
        c.self.server_id = "cp-test";
        c.self.server.set_address("127.0.0.1:7708");
        c.self.server.set_available_bandwidth_mbps(1000);
        c.self.server.add_capabilities("multipath");
        c.self.max_paths_per_connection = 8;
        auto s = cp::control_server::create(std::move(c));
        ASSERT_TRUE(s.ok()) << s.message();
        server = std::move(s.value());
        loop.emplace(*server);
    }
    void TearDown() override {
        loop.reset();
        server.reset();
        if (HasFailure()) {
            test::print_logs(dir);
        }
        fs::remove_all(dir);
    }
    std::unique_ptr<kcp::blocking_client> connect() {
        kcp::client_options o;
        o.pin = pin;
        auto c = kcp::blocking_client::connect("127.0.0.1:" + std::to_string(server->port()), o);
        EXPECT_TRUE(c.ok()) << c.message();
        return c.ok() ? std::move(c.value()) : nullptr;
    }
    cp::client_credentials credentials(const cp::bytes32& k) const {
        cp::client_credentials cr;
        cr.client_id = "client-a";
        cr.key_id = "edge-01";
        cr.key = k;
        return cr;
    }
    v3::ServerHello hello(kcp::blocking_client& c, const cp::client_credentials& cr) {
        return test::two_round_hello(c, cr);
    }

    std::string name;
    fs::path dir;
    cp::bytes32 key{};
    kcp::key_pin pin{};
    std::unique_ptr<cp::control_server> server;
    std::optional<test::server_loop> loop; // declared after server: stops before it goes
};

// A plain-TCP control_server driven by hand (no loop thread), for the accept limits.
std::unique_ptr<cp::control_server> plain_server(std::size_t max_sessions, const std::string& region) {
    cp::control_server_config c;
    c.listen_address = "127.0.0.1";
    c.listen_port = 0;
    c.hello.server_id = "cp-limits";
    c.link.region_name = region;
    c.self.server_id = "cp-limits";
    c.max_sessions = max_sessions;
    c.accept_backoff = 100ms;
    auto s = cp::control_server::create(std::move(c));
    EXPECT_TRUE(s.ok()) << s.message();
    return s.ok() ? std::move(s.value()) : nullptr;
}

// A blocking TCP socket connected to 127.0.0.1:port (the connection waits in the backlog).
int tcp_connect(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    return fd;
}

// True when the peer closed fd within a second (read returns 0).
bool closed_by_peer(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) {
        return false;
    }
    char b;
    return ::recv(fd, &b, 1, 0) == 0;
}

TEST_F(control_server_test, connections_beyond_max_sessions_are_accepted_and_closed) {
    auto s = plain_server(1, name + "-lim");
    ASSERT_TRUE(s);
    const int first = tcp_connect(s->port());
    s->run_once(50);
    ASSERT_EQ(s->sessions(), 1u);
    const int second = tcp_connect(s->port());
    const int third = tcp_connect(s->port());
    s->run_once(50);
    s->run_once(50);
    EXPECT_EQ(s->sessions(), 1u);
    EXPECT_EQ(s->counters().accepted_sockets, 3u);
    EXPECT_EQ(s->counters().refused_sessions, 2u);
    EXPECT_TRUE(closed_by_peer(second));
    EXPECT_TRUE(closed_by_peer(third));
    // The first session closes: there is room again.
    ::close(first);
    for (int i = 0; i < 10 && s->sessions() != 0; ++i) {
        s->run_once(20);
    }
    ASSERT_EQ(s->sessions(), 0u);
    const int fourth = tcp_connect(s->port());
    s->run_once(50);
    EXPECT_EQ(s->sessions(), 1u);
    EXPECT_EQ(s->counters().refused_sessions, 2u);
    for (int fd : {second, third, fourth}) {
        ::close(fd);
    }
}

// Out of descriptors: accept fails with EMFILE while a connection waits. The listener leaves
// epoll for accept_backoff, so run_once waits instead of spinning; once descriptors are free
// again the connection is accepted.
TEST_F(control_server_test, out_of_descriptors_the_listener_backs_off_instead_of_spinning) {
    loop->pause(); // the fixture's loop thread opens and closes descriptors of its own
    auto s = plain_server(0, name + "-fd");
    ASSERT_TRUE(s);
    const int client = tcp_connect(s->port());
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    int highest = 0;
    for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
        highest = std::max(highest, std::stoi(e.path().filename().string()));
    }
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(highest + 1);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<int> fillers; // every free descriptor below the limit
    for (int fd; (fd = ::dup(client)) >= 0;) {
        fillers.push_back(fd);
    }
    int loops = 0;
    const auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
        s->run_once(50);
        ++loops;
    }
    const std::uint64_t backoffs = s->counters().accept_backoffs;
    const std::uint64_t accepted = s->counters().accepted_sockets;
    for (int fd : fillers) {
        ::close(fd);
    }
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_EQ(accepted, 0u);
    EXPECT_GE(backoffs, 1u);
    EXPECT_LE(backoffs, 4u) << "one pause per accept_backoff (100 ms) in 300 ms";
    EXPECT_LE(loops, 20) << "run_once waited; it did not spin on the pending connection";
    for (int i = 0; i < 10 && s->sessions() == 0; ++i) {
        s->run_once(50);
    }
    EXPECT_EQ(s->sessions(), 1u) << "accepted once descriptors are free";
    ::close(client);
}

TEST_F(control_server_test, wrong_key_is_rejected_and_the_session_closed) {
    log_capture log;
    auto c = connect();
    ASSERT_TRUE(c);
    const auto answer = hello(*c, credentials(random_key()));
    EXPECT_EQ(answer.auth_result(), v3::ServerHello::REJECTED_BAD_PROOF) << answer.error_reason();
    EXPECT_FALSE(answer.error_reason().empty());
    EXPECT_FALSE(c->receive(2s).ok()) << "the server closes a rejected session";

    auto unknown = connect();
    ASSERT_TRUE(unknown);
    auto cr = credentials(key);
    cr.key_id = "nobody";
    EXPECT_EQ(hello(*unknown, cr).auth_result(), v3::ServerHello::REJECTED_UNKNOWN_KEY);
    // Each refusal is one warning naming the peer, the client and the result.
    const std::string refused = log.lines_with("warning: hello refused: peer 127.0.0.1:");
    EXPECT_NE(refused.find(", client \"client-a\": REJECTED_BAD_PROOF: "), std::string::npos) << refused;
    EXPECT_NE(refused.find(", client \"client-a\": REJECTED_UNKNOWN_KEY: "), std::string::npos) << refused;
}

TEST_F(control_server_test, messages_before_the_hello_are_refused) {
    auto c = connect();
    ASSERT_TRUE(c);
    KCPMessage q;
    q.mutable_capability_query()->set_server_id("cp-test");
    auto a = c->request(q, 5s);
    ASSERT_TRUE(a.ok()) << a.message();
    ASSERT_TRUE(a->has_capability_response());
    EXPECT_NE(a->capability_response().error_reason().find("before the session's hello"), std::string::npos)
        << a->capability_response().error_reason();
    EXPECT_EQ(a->capability_response().capabilities_size(), 0);
    EXPECT_FALSE(c->receive(2s).ok()) << "the server closes the session after refusing";

    // A one-way message has no answer: the session just closes.
    auto quiet = connect();
    ASSERT_TRUE(quiet);
    KCPMessage lb;
    lb.mutable_load_balancing()->set_connection_id("x");
    ASSERT_TRUE(quiet->send(lb, 5s).ok());
    EXPECT_FALSE(quiet->receive(2s).ok());
}

TEST_F(control_server_test, discovery_capabilities_and_not_handled_answers) {
    auto c = connect();
    ASSERT_TRUE(c);
    const auto accepted = hello(*c, credentials(key));
    ASSERT_EQ(accepted.auth_result(), v3::ServerHello::ACCEPTED) << accepted.error_reason();
    EXPECT_EQ(accepted.server_id(), "cp-test");
    EXPECT_EQ(accepted.connection_id().size(), 32u);

    KCPMessage d;
    d.mutable_server_discovery_req()->set_client_id("client-a");
    d.mutable_server_discovery_req()->add_required_capabilities("multipath");
    auto da = c->request(d, 5s);
    ASSERT_TRUE(da.ok()) << da.message();
    ASSERT_EQ(da->server_discovery_resp().servers_size(), 1);
    EXPECT_EQ(da->server_discovery_resp().servers(0).address(), "127.0.0.1:7708");
    EXPECT_EQ(da->server_discovery_resp().total_available_bandwidth_mbps(), 1000u);

    KCPMessage q;
    q.mutable_capability_query(); // no server_id: this server
    auto qa = c->request(q, 5s);
    ASSERT_TRUE(qa.ok()) << qa.message();
    EXPECT_EQ(qa->capability_response().server_id(), "cp-test");
    EXPECT_TRUE(qa->capability_response().error_reason().empty()) << qa->capability_response().error_reason();
    EXPECT_EQ(qa->capability_response().max_paths_per_connection(), 8u);
    ASSERT_EQ(qa->capability_response().capabilities_size(), 1);
    EXPECT_EQ(qa->capability_response().capabilities(0), "multipath");

    KCPMessage t;
    t.mutable_transport_command()->set_command_id("cmd-1");
    auto ta = c->request(t, 5s);
    ASSERT_TRUE(ta.ok()) << ta.message();
    EXPECT_EQ(ta->transport_response().status(), v3::TransportResponse::FAILURE);
    EXPECT_NE(ta->transport_response().error_message().find("transport_command.connection_id"), std::string::npos)
        << ta->transport_response().error_message();

    // A path for another session's connection is refused with the field named.
    KCPMessage add;
    add.mutable_add_path()->set_connection_id("not-mine");
    add.mutable_add_path()->set_path_id(1);
    auto aa = c->request(add, 5s);
    ASSERT_TRUE(aa.ok()) << aa.message();
    EXPECT_EQ(aa->path_status().status(), v3::PathStatusUpdate::REMOVED);
    EXPECT_NE(aa->path_status().reason().find("add_path.connection_id"), std::string::npos)
        << aa->path_status().reason();

    KCPMessage h;
    h.mutable_health_check_req()->set_sequence(9);
    h.mutable_health_check_req()->set_server_id("cp-test");
    auto ha = c->request(h, 5s);
    ASSERT_TRUE(ha.ok()) << ha.message();
    EXPECT_EQ(ha->health_check_resp().sequence(), 9u);
    EXPECT_EQ(ha->health_check_resp().status(), v3::HealthCheckResponse::UNHEALTHY) << "no kwikd here";
    ASSERT_EQ(ha->health_check_resp().components_size(), 1);
    EXPECT_EQ(ha->health_check_resp().components(0).component(), "kwikd");
}

TEST_F(control_server_test, add_and_remove_a_path_in_kwikd) {
    log_capture log;
    kwikd_process kwikd(g_kwikd, name, dir);
    auto c = connect();
    ASSERT_TRUE(c);
    const auto accepted = hello(*c, credentials(key));
    ASSERT_EQ(accepted.auth_result(), v3::ServerHello::ACCEPTED) << accepted.error_reason();
    const std::string conn = accepted.connection_id();

    KCPMessage add;
    auto* a = add.mutable_add_path();
    a->set_connection_id(conn);
    a->set_path_id(3);
    a->mutable_path()->set_ip_version(v3::UdpPath::IPV4);
    a->mutable_path()->set_local_address("10.9.0.1");
    a->mutable_path()->set_local_port(7707);
    a->mutable_path()->set_remote_address("10.9.0.2");
    a->mutable_path()->set_remote_port(5003);
    auto up = c->request(add, 30s); // kwikd starts (EAL) while the request waits
    ASSERT_TRUE(up.ok()) << up.message();
    EXPECT_EQ(up->path_status().status(), v3::PathStatusUpdate::UP) << up->path_status().reason();
    EXPECT_EQ(up->path_status().connection_id(), conn);
    EXPECT_EQ(up->path_status().path_id(), 3u);

    // A path whose local address kwikd lacks: REMOVED with kwikd's reason.
    KCPMessage bad = add;
    bad.mutable_add_path()->set_path_id(4);
    bad.mutable_add_path()->mutable_path()->set_local_address("10.9.0.99");
    auto refused = c->request(bad, 10s);
    ASSERT_TRUE(refused.ok()) << refused.message();
    EXPECT_EQ(refused->path_status().status(), v3::PathStatusUpdate::REMOVED);
    EXPECT_NE(refused->path_status().reason().find("kwikd refused"), std::string::npos)
        << refused->path_status().reason();

    // The path is in kwikd: its counters region lists it once the workers published.
    loop->pause();
    const cp::desired_connection* dc = server->link().find(conn);
    ASSERT_NE(dc, nullptr);
    bool published = false;
    server->link().send(api::make_request_counters(), [&](const api::event&) { published = true; });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!published && std::chrono::steady_clock::now() < deadline) {
        server->run_once(2);
    }
    ASSERT_TRUE(published);
    auto totals = server->link().read_counters();
    ASSERT_TRUE(totals.has_value());
    bool found = false;
    for (const auto& p : totals->paths) {
        found = found || (p.connection_id == dc->id && p.path_id == 3);
    }
    EXPECT_TRUE(found) << "path 3 of connection " << dc->id << " in kwikd's counters";
    EXPECT_NE(log.lines_with("notice: kwikd attached: shared memory /dev/shm/" + name + " (attach "), "");
    loop->resume();

    KCPMessage h;
    h.mutable_health_check_req()->set_sequence(1);
    h.mutable_health_check_req()->set_connection_id(conn);
    h.mutable_health_check_req()->set_path_id(3);
    auto ha = c->request(h, 5s);
    ASSERT_TRUE(ha.ok()) << ha.message();
    EXPECT_NE(ha->health_check_resp().status(), v3::HealthCheckResponse::UNKNOWN_TARGET)
        << ha->health_check_resp().reason();
    EXPECT_EQ(ha->health_check_resp().components_size(), 2);

    KCPMessage rm;
    rm.mutable_remove_path()->set_connection_id(conn);
    rm.mutable_remove_path()->set_path_id(3);
    rm.mutable_remove_path()->set_reason("test done");
    auto removed = c->request(rm, 10s);
    ASSERT_TRUE(removed.ok()) << removed.message();
    EXPECT_EQ(removed->path_status().status(), v3::PathStatusUpdate::REMOVED);
    EXPECT_EQ(removed->path_status().reason(), "test done");
}

// The hello's data key reaches kwikd (set_connection_keys after add_connection): for the
// hello's key phase kwikd refuses another key (the phase is its current key) and accepts the
// client's derivation of the same key again (unchanged). The key is never read back.
TEST_F(control_server_test, the_hellos_data_key_is_installed_in_kwikd) {
    kwikd_process kwikd(g_kwikd, name, dir);
    auto c = connect();
    ASSERT_TRUE(c);
    const auto accepted = hello(*c, credentials(key));
    ASSERT_EQ(accepted.auth_result(), v3::ServerHello::ACCEPTED) << accepted.error_reason();
    ASSERT_TRUE(accepted.has_data_key());
    const auto data_key = cp::client_data_key(accepted.data_key(), key);
    ASSERT_TRUE(data_key.ok()) << data_key.message();
    const auto phase = static_cast<std::uint8_t>(accepted.data_key().key_phase());

    loop->pause();
    const cp::desired_connection* dc = server->link().find(accepted.connection_id());
    ASSERT_NE(dc, nullptr);
    ASSERT_TRUE(dc->data_key.has_value());
    EXPECT_EQ(dc->data_key->phase, phase);
    auto ask = [&](const cp::bytes32& k) {
        std::uint8_t raw[api::aead_key_size];
        std::copy(k.begin(), k.end(), raw);
        std::optional<api::event> answer;
        server->link().send(api::make_set_connection_keys(dc->id, phase, raw, 0, 0, false),
                            [&](const api::event& e) { answer = e; });
        const auto deadline = std::chrono::steady_clock::now() + 30s; // kwikd starts (EAL) meanwhile
        while (!answer && std::chrono::steady_clock::now() < deadline) {
            server->run_once(2);
        }
        return answer;
    };
    const auto other = ask(random_key());
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(other->command_result.status, api::result_status::already_exists)
        << api::get_text(other->command_result.reason);
    EXPECT_NE(api::get_text(other->command_result.reason).find("set_connection_keys.key_phase"), std::string_view::npos);
    const auto same = ask(data_key.value());
    ASSERT_TRUE(same.has_value());
    EXPECT_EQ(same->command_result.status, api::result_status::ok) << api::get_text(same->command_result.reason);
    loop->resume();
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <kwikd>\n", argv[0]);
        return 2;
    }
    g_kwikd = argv[1];
    return RUN_ALL_TESTS();
}
