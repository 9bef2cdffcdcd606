// KCP conformance over real loopback sockets, plain TCP and TLS 1.3: a small server (a thread
// running a poll loop over kcp::channel, as kwik-cp's epoll loop will) answers or echoes; the
// client side is kcp::blocking_client, or raw sockets for the bad streams. Covers every payload
// type both ways, the reply to every request type, 1000 concurrent requests from 8 threads
// over one session with the server answering out of order, truncated / oversized / garbage /
// non-minimal / payload-less / headerless frames, the pin (right, wrong, plain against TLS and
// TLS against plain), TTL expiry on both sides, priority order through TLS, and the read, idle
// and handshake timeouts.
#include <arpa/inet.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/client.hpp"
#include "controlplane/kcp/correlation.hpp"
#include "controlplane/kcp/framing.hpp"
#include "controlplane/kcp/tls.hpp"
#include "tests/unit/proto/kcp_samples.hpp"

namespace kwik::kcp {
namespace {

using google::protobuf::util::MessageDifferencer;
using std::chrono::milliseconds;
using v3::samples::make_kcp_message;
using v3::samples::payload_cases;

const tls_context& server_tls() {
    static const tls_context context = [] {
        result<tls_identity> id = generate_self_signed(key_algorithm::ed25519, "kcp-conformance");
        EXPECT_TRUE(id.ok()) << id.message();
        result<tls_context> ctx = tls_context::server(*id);
        EXPECT_TRUE(ctx.ok()) << ctx.message();
        return std::move(*ctx);
    }();
    return context;
}

// ---- replies the test server gives ----------------------------------------------------------

using reply_fn = std::function<std::vector<KCPMessage>(const KCPMessage&)>;

// The reply each request type gets, built as PROTOCOL.md 11.5 says kwik-cp builds it.
std::vector<KCPMessage> answer(const KCPMessage& q) {
    KCPMessage r;
    const std::uint64_t id = q.header().message_id();
    switch (q.payload_case()) {
    case KCPMessage::kClientHello: {
        auto& h = *r.mutable_server_hello();
        h.set_in_reply_to(id);
        h.set_server_id("srv-test");
        h.set_auth_result(v3::ServerHello::CHALLENGE);
        h.set_challenge(std::string(32, 'c'));
        break;
    }
    case KCPMessage::kCapabilityQuery:
        r.mutable_capability_response()->set_in_reply_to(id);
        *r.mutable_capability_response()->mutable_capabilities() = q.capability_query().capabilities();
        break;
    case KCPMessage::kScalingRequest:
        r.mutable_scaling_response()->set_in_reply_to(id);
        r.mutable_scaling_response()->set_connection_id(q.scaling_request().connection_id());
        r.mutable_scaling_response()->set_decision(v3::BandwidthScalingResponse::NO_CHANGE);
        r.mutable_scaling_response()->set_reason("test server");
        break;
    case KCPMessage::kTransportCommand:
        r.mutable_transport_response()->set_command_id(q.transport_command().command_id());
        r.mutable_transport_response()->mutable_result()->set_active_paths(
            q.transport_command().options().max_paths());
        break;
    case KCPMessage::kHealthCheckReq:
        r.mutable_health_check_resp()->set_sequence(q.health_check_req().sequence());
        r.mutable_health_check_resp()->set_request_sent_at_us(q.health_check_req().sent_at_us());
        r.mutable_health_check_resp()->set_status(v3::HealthCheckResponse::HEALTHY);
        break;
    case KCPMessage::kAddPath:
        r.mutable_path_status()->set_connection_id(q.add_path().connection_id());
        r.mutable_path_status()->set_path_id(q.add_path().path_id());
        r.mutable_path_status()->set_status(v3::PathStatusUpdate::UP);
        break;
    case KCPMessage::kRemovePath:
        r.mutable_path_status()->set_connection_id(q.remove_path().connection_id());
        r.mutable_path_status()->set_path_id(q.remove_path().path_id());
        r.mutable_path_status()->set_status(v3::PathStatusUpdate::REMOVED);
        r.mutable_path_status()->set_reason(q.remove_path().reason());
        break;
    case KCPMessage::kServerDiscoveryReq:
        r.mutable_server_discovery_resp()->set_recommendation_reason(
            "for " + q.server_discovery_req().client_id());
        break;
    case KCPMessage::kServerRegistration:
    case KCPMessage::kServerHeartbeat:
    case KCPMessage::kServerDeregistration:
        r.mutable_registration_response()->set_in_reply_to(id);
        r.mutable_registration_response()->set_accepted(true);
        break;
    case KCPMessage::kOperatorRequest:
        r.mutable_operator_response()->set_in_reply_to(id);
        r.mutable_operator_response()->set_ok(true);
        break;
    default:
        return {};
    }
    r.mutable_header()->set_priority(q.header().priority());
    return {r};
}

// Sends every message back as it came, with a new header id and timestamp.
std::vector<KCPMessage> echo(const KCPMessage& q) {
    KCPMessage r = q;
    r.mutable_header()->set_message_id(0);
    r.mutable_header()->set_timestamp_ms(0);
    return {r};
}

// ---- the test server ------------------------------------------------------------------------

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

// A listening socket on 127.0.0.1, on a port the kernel chose.
std::pair<int, std::uint16_t> listen_loopback(int flags) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 128), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    return {fd, ntohs(a.sin_port)};
}

int raw_connect(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in a = loopback(port);
    EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
    return fd;
}

struct server_settings {
    bool tls = false;
    channel_options channel;
    reply_fn reply = answer;
    bool reverse_replies = false; // answer each batch read at once in reverse order
};

struct session_record {
    bool closed = false;
    close_cause cause = close_cause::none;
    std::string reason;
    channel_counters counters;
    std::vector<KCPMessage> received;
};

class kcp_test_server {
public:
    explicit kcp_test_server(server_settings settings) : _settings(std::move(settings)) {
        std::tie(_listen, _port) = listen_loopback(SOCK_NONBLOCK);
        _wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        _thread = std::thread([this] { run(); });
    }

    ~kcp_test_server() {
        _stop = true;
        const std::uint64_t one = 1;
        (void)!::write(_wake, &one, sizeof one);
        _thread.join();
        ::close(_listen);
        ::close(_wake);
    }

    std::string address() const { return "127.0.0.1:" + std::to_string(_port); }
    std::uint16_t port() const { return _port; }

    std::vector<session_record> sessions() const {
        std::lock_guard lock(_mutex);
        return _records;
    }

    // The index-th session once done(record) holds, or as it is when timeout passes (the
    // server thread updates a record after each round, so counters trail the replies).
    template <class Done>
    session_record wait_for(std::size_t index, Done done,
                            milliseconds timeout = milliseconds(5000)) const {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            {
                std::lock_guard lock(_mutex);
                const bool last = std::chrono::steady_clock::now() >= deadline;
                if (index < _records.size() && (done(_records[index]) || last)) {
                    return _records[index];
                }
                if (last) {
                    return {};
                }
            }
            std::this_thread::sleep_for(milliseconds(2));
        }
    }

    session_record wait_closed(std::size_t index) const {
        return wait_for(index, [](const session_record& r) { return r.closed; });
    }

private:
    struct live_session {
        channel ch;
        std::size_t record;
    };

    void accept_all(clock_sample now, std::vector<live_session>& live) {
        for (;;) {
            const int fd = ::accept4(_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                return;
            }
            result<channel> ch = _settings.tls
                                     ? channel::tls(fd, server_tls(), _settings.channel, now)
                                     : channel::plain(fd, _settings.channel, now);
            ASSERT_TRUE(ch.ok()) << ch.message();
            std::lock_guard lock(_mutex);
            _records.emplace_back();
            live.push_back({std::move(*ch), _records.size() - 1});
        }
    }

    void serve(live_session& s, short revents, clock_sample now) {
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            s.ch.on_readable(now);
        }
        std::vector<KCPMessage> replies;
        KCPMessage m;
        while (s.ch.receive(m)) {
            for (KCPMessage& r : _settings.reply(m)) {
                replies.push_back(std::move(r));
            }
            std::lock_guard lock(_mutex);
            _records[s.record].received.push_back(std::move(m));
            m = KCPMessage();
        }
        if (_settings.reverse_replies) {
            std::reverse(replies.begin(), replies.end());
        }
        // Messages read before a bad frame are delivered, but the session is over: no replies.
        for (KCPMessage& r : replies) {
            if (!s.ch.closed()) {
                EXPECT_TRUE(s.ch.send(std::move(r), now).ok());
            }
        }
        if (s.ch.wants_write()) {
            s.ch.on_writable(now);
        }
        s.ch.poll(now);
        std::lock_guard lock(_mutex);
        session_record& rec = _records[s.record];
        rec.closed = s.ch.closed();
        rec.cause = s.ch.cause();
        rec.reason = s.ch.close_reason();
        rec.counters = s.ch.counters();
    }

    void run() {
        std::vector<live_session> live;
        while (!_stop) {
            std::vector<pollfd> fds{{_listen, POLLIN, 0}, {_wake, POLLIN, 0}};
            auto next = std::chrono::steady_clock::now() + milliseconds(20);
            for (const live_session& s : live) {
                fds.push_back({s.ch.fd(),
                               static_cast<short>(POLLIN | (s.ch.wants_write() ? POLLOUT : 0)), 0});
                next = std::min(next, s.ch.next_deadline());
            }
            const auto wait = std::chrono::ceil<milliseconds>(next - std::chrono::steady_clock::now());
            ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(wait.count(), 0)));
            const clock_sample now = clock_sample::now();
            for (std::size_t i = 0; i < live.size(); ++i) {
                serve(live[i], fds[i + 2].revents, now);
            }
            std::erase_if(live, [](const live_session& s) { return s.ch.closed(); });
            if ((fds[0].revents & POLLIN) != 0) {
                accept_all(now, live);
            }
        }
    }

    server_settings _settings;
    int _listen = -1;
    int _wake = -1;
    std::uint16_t _port = 0;
    std::atomic<bool> _stop{false};
    mutable std::mutex _mutex;
    std::vector<session_record> _records;
    std::thread _thread;
};

// ---- helpers --------------------------------------------------------------------------------

client_options options_for(bool tls) {
    client_options o;
    if (tls) {
        o.pin = server_tls().pin();
    }
    return o;
}

std::unique_ptr<blocking_client> connect_to(const kcp_test_server& server, bool tls) {
    result<std::unique_ptr<blocking_client>> c =
        blocking_client::connect(server.address(), options_for(tls));
    EXPECT_TRUE(c.ok()) << c.message();
    return c.ok() ? std::move(*c) : nullptr;
}

// True when the peer ended the connection (end of stream or reset) within the timeout.
bool sees_end_of_stream(int fd, milliseconds timeout = milliseconds(5000)) {
    pollfd p{fd, POLLIN, 0};
    char buf[256];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (::poll(&p, 1, 50) == 1) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                return true;
            }
        }
    }
    return false;
}

// A sample with a fresh header: the channel stamps the time (the samples' 2023 timestamp would
// be past its 30 s TTL).
KCPMessage fresh(KCPMessage m) {
    m.mutable_header()->set_timestamp_ms(0);
    return m;
}

class kcp_conformance : public testing::TestWithParam<bool> {
protected:
    bool tls() const { return GetParam(); }
};

std::string transport_name(const testing::TestParamInfo<bool>& info) {
    return info.param ? "tls" : "tcp";
}

// ---- every payload type, both ways ----------------------------------------------------------

TEST_P(kcp_conformance, every_payload_type_round_trips) {
    server_settings s;
    s.tls = tls();
    s.reply = echo;
    kcp_test_server server(s);
    std::unique_ptr<blocking_client> client = connect_to(server, tls());
    ASSERT_NE(client, nullptr);

    const auto cases = payload_cases();
    const std::uint64_t before = clock_sample::now().wall_ms;
    for (const auto& c : cases) {
        ASSERT_TRUE(client->send(fresh(make_kcp_message(c)), milliseconds(5000)).ok());
    }
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        result<KCPMessage> back = client->receive(milliseconds(5000));
        ASSERT_TRUE(back.ok()) << back.message();
        const KCPMessage sent = make_kcp_message(c);
        EXPECT_EQ(back->payload_case(), c.expected);
        KCPMessage payload_only = *back;
        payload_only.clear_header();
        KCPMessage expected = sent;
        expected.clear_header();
        EXPECT_TRUE(MessageDifferencer::Equals(payload_only, expected));
        EXPECT_EQ(back->header().priority(), sent.header().priority());
        EXPECT_EQ(back->header().connection_id(), sent.header().connection_id());
    }

    const session_record rec = server.wait_for(
        0, [&](const session_record& r) { return r.counters.messages_out == cases.size(); });
    ASSERT_EQ(rec.received.size(), cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(cases[i].name);
        const KCPMessage& got = rec.received[i];
        KCPMessage expected = make_kcp_message(cases[i]);
        expected.mutable_header()->set_message_id(i + 1);
        expected.mutable_header()->set_timestamp_ms(got.header().timestamp_ms());
        EXPECT_TRUE(MessageDifferencer::Equals(got, expected)) << got.ShortDebugString();
        EXPECT_GE(got.header().timestamp_ms(), before);
    }
    EXPECT_EQ(rec.counters.messages_in, cases.size());
    EXPECT_EQ(rec.counters.messages_out, cases.size());
}

// ---- every request type gets its reply ------------------------------------------------------

TEST_P(kcp_conformance, every_request_type_gets_its_reply) {
    server_settings s;
    s.tls = tls();
    kcp_test_server server(s);
    std::unique_ptr<blocking_client> client = connect_to(server, tls());
    ASSERT_NE(client, nullptr);

    const std::map<std::string, KCPMessage::PayloadCase> reply_type{
        {"client_hello", KCPMessage::kServerHello},
        {"capability_query", KCPMessage::kCapabilityResponse},
        {"scaling_request", KCPMessage::kScalingResponse},
        {"transport_command", KCPMessage::kTransportResponse},
        {"health_check_req", KCPMessage::kHealthCheckResp},
        {"add_path", KCPMessage::kPathStatus},
        {"remove_path", KCPMessage::kPathStatus},
        {"server_discovery_req", KCPMessage::kServerDiscoveryResp},
        {"server_registration", KCPMessage::kRegistrationResponse},
        {"server_heartbeat", KCPMessage::kRegistrationResponse},
        {"server_deregistration", KCPMessage::kRegistrationResponse},
        {"operator_request", KCPMessage::kOperatorResponse},
    };
    int requests = 0;
    for (const auto& c : payload_cases()) {
        SCOPED_TRACE(c.name);
        KCPMessage q = fresh(make_kcp_message(c));
        const auto want = reply_type.find(c.name);
        if (want == reply_type.end()) {
            // Not a request: request() refuses at once, nothing is sent.
            const result<KCPMessage> refused = client->request(q, milliseconds(1000));
            ASSERT_FALSE(refused.ok());
            EXPECT_NE(refused.message().find("gets no reply; use send()"), std::string::npos)
                << refused.message();
            continue;
        }
        ++requests;
        const result<KCPMessage> r = client->request(q, milliseconds(5000));
        ASSERT_TRUE(r.ok()) << r.message();
        EXPECT_EQ(r->payload_case(), want->second);
        q.mutable_header()->set_message_id(server.sessions().at(0).received.back().header().message_id());
        EXPECT_TRUE(answers(correlation_id(*r), correlation_id(q)));
    }
    EXPECT_EQ(requests, 12);
    EXPECT_EQ(server.sessions().at(0).received.size(), 12u);
}

// ---- 1000 requests from 8 threads, answered out of order -------------------------------------

TEST_P(kcp_conformance, a_thousand_concurrent_requests_each_get_their_own_reply) {
    server_settings s;
    s.tls = tls();
    s.reverse_replies = true;
    kcp_test_server server(s);
    std::unique_ptr<blocking_client> client = connect_to(server, tls());
    ASSERT_NE(client, nullptr);

    constexpr int threads = 8;
    constexpr int per_thread = 125;
    std::atomic<int> matched{0};
    std::vector<std::string> failures(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                const std::uint64_t n = static_cast<std::uint64_t>(t) * 1000 + i;
                KCPMessage q;
                std::string fault;
                switch (i % 3) {
                case 0:
                    q.mutable_health_check_req()->set_sequence(n);
                    q.mutable_health_check_req()->set_sent_at_us(n * 7);
                    break;
                case 1:
                    q.mutable_transport_command()->set_command_id("cmd-" + std::to_string(n));
                    q.mutable_transport_command()->mutable_options()->set_max_paths(
                        static_cast<std::uint32_t>(n));
                    break;
                default:
                    q.mutable_capability_query()->add_capabilities("cap-" + std::to_string(n));
                    break;
                }
                q.mutable_header()->set_priority(static_cast<v3::MessagePriority>(n % 4));
                const result<KCPMessage> r = client->request(q, milliseconds(20'000));
                if (!r.ok()) {
                    fault = r.message();
                } else if (i % 3 == 0) {
                    if (r->health_check_resp().sequence() != n ||
                        r->health_check_resp().request_sent_at_us() != n * 7) {
                        fault = "health reply " + r->ShortDebugString();
                    }
                } else if (i % 3 == 1) {
                    if (r->transport_response().command_id() != "cmd-" + std::to_string(n) ||
                        r->transport_response().result().active_paths() != n) {
                        fault = "transport reply " + r->ShortDebugString();
                    }
                } else if (r->capability_response().capabilities_size() != 1 ||
                           r->capability_response().capabilities(0) != "cap-" + std::to_string(n)) {
                    fault = "capability reply " + r->ShortDebugString();
                }
                if (!fault.empty()) {
                    failures[t] += fault + "\n";
                } else {
                    ++matched;
                }
            }
        });
    }
    for (std::thread& w : workers) {
        w.join();
    }
    for (int t = 0; t < threads; ++t) {
        EXPECT_TRUE(failures[t].empty()) << "thread " << t << ":\n" << failures[t];
    }
    EXPECT_EQ(matched.load(), threads * per_thread);
    const session_record rec = server.wait_for(0, [&](const session_record& r) {
        return r.counters.messages_out == static_cast<std::uint64_t>(threads * per_thread);
    });
    EXPECT_EQ(rec.received.size(), static_cast<std::size_t>(threads * per_thread));
    EXPECT_EQ(rec.counters.messages_out, static_cast<std::uint64_t>(threads * per_thread));
    EXPECT_EQ(client->counters().messages_in, static_cast<std::uint64_t>(threads * per_thread));
    EXPECT_EQ(client->unsolicited_dropped(), 0u);
}

// ---- TTL ------------------------------------------------------------------------------------

TEST_P(kcp_conformance, an_expired_request_never_leaves_the_client) {
    server_settings s;
    s.tls = tls();
    kcp_test_server server(s);
    std::unique_ptr<blocking_client> client = connect_to(server, tls());
    ASSERT_NE(client, nullptr);
    KCPMessage q;
    q.mutable_health_check_req()->set_sequence(1);
    q.mutable_header()->set_ttl_seconds(1);
    q.mutable_header()->set_timestamp_ms(clock_sample::now().wall_ms - 5000);
    const result<KCPMessage> r = client->request(q, milliseconds(300));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("no reply within 300 ms"), std::string::npos) << r.message();
    EXPECT_EQ(client->counters().expired_out, 1u);
    // The next one goes through.
    q.mutable_header()->set_timestamp_ms(0);
    EXPECT_TRUE(client->request(q, milliseconds(5000)).ok());
    EXPECT_EQ(server.sessions().at(0).received.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(both, kcp_conformance, testing::Bool(), transport_name);

TEST(kcp_conformance_tcp, an_expired_message_is_dropped_on_arrival) {
    kcp_test_server server({});
    const int fd = raw_connect(server.port());
    KCPMessage late;
    late.mutable_header()->set_message_id(1);
    late.mutable_header()->set_timestamp_ms(clock_sample::now().wall_ms - 10'000);
    late.mutable_header()->set_ttl_seconds(3);
    late.mutable_health_check_req()->set_sequence(1);
    KCPMessage timely = late;
    timely.mutable_header()->set_message_id(2);
    timely.mutable_header()->set_ttl_seconds(60);
    timely.mutable_health_check_req()->set_sequence(2);
    const std::string frames = encode(late) + encode(timely);
    ASSERT_EQ(::send(fd, frames.data(), frames.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frames.size()));
    // The reply to the timely one proves both were read.
    frame_reader reader;
    KCPMessage reply;
    char buf[4096];
    while (reader.next(reply) != frame_reader::status::message) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(n, 0);
        reader.feed(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(reply.health_check_resp().sequence(), 2u);
    const session_record rec =
        server.wait_for(0, [](const session_record& r) { return r.counters.messages_out == 1; });
    EXPECT_EQ(rec.counters.expired_in, 1u);
    ASSERT_EQ(rec.received.size(), 1u);
    EXPECT_EQ(rec.received[0].header().message_id(), 2u);
    ::close(fd);
}

// ---- bad streams ----------------------------------------------------------------------------

struct bad_stream {
    const char* name;
    std::string bytes;
    bool then_close; // the client ends the stream after the bytes
    frame_error expected;
    const char* reason_part;
    std::size_t delivered = 0; // good messages before the bad frame
};

void PrintTo(const bad_stream& b, std::ostream* os) {
    *os << b.name;
}

std::string header_only() {
    KCPMessage m;
    m.mutable_header()->set_message_id(1);
    return encode(m);
}

std::string headerless() {
    KCPMessage m;
    m.mutable_health_check_req()->set_sequence(1);
    return encode(m);
}

std::vector<bad_stream> bad_streams() {
    const std::string good = encode(fresh(make_kcp_message(payload_cases()[0])));
    return {
        {"truncated", good.substr(0, good.size() / 2), true, frame_error::truncated,
         "inside a frame"},
        {"oversized", std::string("\x81\x80\x40", 3), false, frame_error::message_too_large,
         "1048577 bytes, above the maximum of 1048576"},
        {"garbage", std::string("\x04\xff\xff\xff\xff", 5), false, frame_error::payload_invalid,
         "not a KCPMessage"},
        {"non_minimal", std::string("\x80\x00", 2), false, frame_error::length_non_minimal,
         "not minimal"},
        {"too_long_varint", std::string(5, '\xff'), false, frame_error::length_too_long,
         "runs past 5 bytes"},
        {"empty_oneof", header_only(), false, frame_error::payload_missing, "no payload set"},
        {"no_header", headerless(), false, frame_error::header_missing, "without its header"},
        {"good_then_garbage", good + std::string(1, '\0'), false,
         frame_error::length_zero, "length 0", 1},
    };
}

class kcp_bad_stream : public testing::TestWithParam<bad_stream> {};

TEST_P(kcp_bad_stream, ends_the_session_with_the_reason) {
    const bad_stream& b = GetParam();
    kcp_test_server server({});
    const int fd = raw_connect(server.port());
    ASSERT_EQ(::send(fd, b.bytes.data(), b.bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(b.bytes.size()));
    if (b.then_close) {
        ::shutdown(fd, SHUT_WR);
    }
    const session_record rec = server.wait_closed(0);
    ASSERT_TRUE(rec.closed);
    EXPECT_EQ(rec.cause, close_cause::frame_error);
    EXPECT_NE(rec.reason.find(b.reason_part), std::string::npos) << rec.reason;
    EXPECT_EQ(rec.counters.frames_rejected[static_cast<std::size_t>(b.expected)], 1u);
    EXPECT_EQ(rec.received.size(), b.delivered);
    EXPECT_TRUE(sees_end_of_stream(fd));
    ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(all, kcp_bad_stream, testing::ValuesIn(bad_streams()),
                         [](const testing::TestParamInfo<bad_stream>& i) { return i.param.name; });

// ---- TLS and the pin ------------------------------------------------------------------------

TEST(kcp_conformance_tls, a_wrong_pin_fails_naming_both_hashes) {
    server_settings s;
    s.tls = true;
    kcp_test_server server(s);
    client_options o;
    key_pin wrong = server_tls().pin();
    wrong[0] ^= 0x01;
    o.pin = wrong;
    const result<std::unique_ptr<blocking_client>> c = blocking_client::connect(server.address(), o);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.message(), "KCP session with " + server.address() +
                               ": the server's public key does not match the pin: expected " +
                               to_hex(wrong) + ", got " + to_hex(server_tls().pin()));
    const session_record rec = server.wait_closed(0);
    EXPECT_EQ(rec.cause, close_cause::tls_error);
    EXPECT_NE(rec.reason.find("TLS handshake failed"), std::string::npos) << rec.reason;
}

TEST(kcp_conformance_tls, a_plain_client_to_a_tls_server_fails_cleanly) {
    server_settings s;
    s.tls = true;
    kcp_test_server server(s);
    std::unique_ptr<blocking_client> client = connect_to(server, false); // TCP connects
    ASSERT_NE(client, nullptr);
    KCPMessage q;
    q.mutable_health_check_req()->set_sequence(1);
    const result<KCPMessage> r = client->request(q, milliseconds(5000));
    ASSERT_FALSE(r.ok());
    // The server's alert, if any, is not a frame: the client reads end of stream either way.
    EXPECT_NE(r.message().find("the KCP session is closed: the peer closed the connection"),
              std::string::npos)
        << r.message();
    const session_record rec = server.wait_closed(0);
    EXPECT_EQ(rec.cause, close_cause::tls_error);
    EXPECT_EQ(rec.reason.rfind("TLS handshake failed: ", 0), 0u) << rec.reason;
    EXPECT_EQ(rec.counters.messages_in, 0u);
}

TEST(kcp_conformance_tls, a_tls_client_to_a_plain_server_fails_cleanly) {
    kcp_test_server server({});
    const result<std::unique_ptr<blocking_client>> c =
        blocking_client::connect(server.address(), options_for(true));
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.message().find("the peer closed the connection during the TLS handshake"),
              std::string::npos)
        << c.message();
    const session_record rec = server.wait_closed(0);
    EXPECT_EQ(rec.cause, close_cause::frame_error);
}

// Two channels on a loopback TLS connection, driven by hand: a backlog queued before the
// handshake ends goes out in priority order, FIFO within one.
TEST(kcp_conformance_tls, a_backlog_goes_in_priority_order_through_tls) {
    const auto [server_listen, port] = listen_loopback(0);
    const int client_fd = raw_connect(port);
    const int server_fd = ::accept4(server_listen, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(server_listen);

    const clock_sample now = clock_sample::now();
    result<tls_context> client_ctx = tls_context::client(server_tls().pin());
    ASSERT_TRUE(client_ctx.ok());
    result<channel> sender = channel::tls(client_fd, *client_ctx, {}, now);
    result<channel> receiver = channel::tls(server_fd, server_tls(), {}, now);
    ASSERT_TRUE(sender.ok() && receiver.ok());
    const v3::MessagePriority order[] = {v3::LOW, v3::HIGH, v3::NORMAL, v3::CRITICAL,
                                         v3::LOW, v3::CRITICAL, v3::HIGH, v3::NORMAL};
    for (std::uint64_t i = 0; i < std::size(order); ++i) {
        KCPMessage m;
        m.mutable_header()->set_priority(order[i]);
        m.mutable_health_check_req()->set_sequence(i);
        ASSERT_TRUE(sender->send(std::move(m), now).ok());
    }
    std::vector<std::uint64_t> got;
    for (int round = 0; round < 200 && got.size() < std::size(order); ++round) {
        pollfd p[2] = {{client_fd, static_cast<short>(POLLIN | (sender->wants_write() ? POLLOUT : 0)), 0},
                       {server_fd, static_cast<short>(POLLIN | (receiver->wants_write() ? POLLOUT : 0)), 0}};
        ::poll(p, 2, 50);
        const clock_sample t = clock_sample::now();
        sender->on_readable(t);
        receiver->on_readable(t);
        if (sender->wants_write()) {
            sender->on_writable(t);
        }
        if (receiver->wants_write()) {
            receiver->on_writable(t);
        }
        KCPMessage m;
        while (receiver->receive(m)) {
            got.push_back(m.health_check_req().sequence());
        }
    }
    EXPECT_EQ(got, (std::vector<std::uint64_t>{3, 5, 1, 6, 2, 7, 0, 4}));
    EXPECT_EQ(sender->current_phase(), channel::phase::open);
    EXPECT_TRUE(sender->is_tls());
}

// ---- timeouts -------------------------------------------------------------------------------

server_settings quick_timeouts(bool tls) {
    server_settings s;
    s.tls = tls;
    s.channel.read_timeout = milliseconds(200);
    s.channel.idle_timeout = milliseconds(400);
    return s;
}

// A raw client connects, sends the first bytes of a frame (or nothing) and stops.
struct timeout_case {
    const char* name;
    bool tls;
    std::size_t bytes_sent;
    close_cause expected;
    const char* reason;
    milliseconds at_least;
};

void PrintTo(const timeout_case& c, std::ostream* os) {
    *os << c.name;
}

class kcp_timeout : public testing::TestWithParam<timeout_case> {};

TEST_P(kcp_timeout, ends_the_session) {
    const timeout_case& c = GetParam();
    kcp_test_server server(quick_timeouts(c.tls));
    const int fd = raw_connect(server.port());
    const auto start = std::chrono::steady_clock::now();
    const std::string frame = encode(fresh(make_kcp_message(payload_cases()[1])));
    ASSERT_EQ(::send(fd, frame.data(), c.bytes_sent, MSG_NOSIGNAL),
              static_cast<ssize_t>(c.bytes_sent));
    const session_record rec = server.wait_closed(0);
    EXPECT_GE(std::chrono::steady_clock::now() - start, c.at_least);
    EXPECT_EQ(rec.cause, c.expected);
    EXPECT_EQ(rec.reason, c.reason);
    EXPECT_TRUE(sees_end_of_stream(fd));
    ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(
    all, kcp_timeout,
    testing::Values(
        timeout_case{"frame_left_incomplete", false, 3, close_cause::read_timeout,
                     "a frame stayed incomplete for 200 ms (3 bytes of it received)",
                     milliseconds(150)},
        timeout_case{"silent_client", false, 0, close_cause::idle_timeout,
                     "no message received for 400 ms", milliseconds(300)},
        timeout_case{"handshake_left_incomplete", true, 0, close_cause::read_timeout,
                     "the TLS handshake did not complete within 200 ms", milliseconds(150)}),
    [](const testing::TestParamInfo<timeout_case>& i) { return i.param.name; });

TEST(kcp_conformance_timeouts, a_client_that_keeps_talking_stays) {
    kcp_test_server server(quick_timeouts(true));
    std::unique_ptr<blocking_client> client = connect_to(server, true);
    ASSERT_NE(client, nullptr);
    KCPMessage q;
    for (std::uint64_t i = 1; i <= 8; ++i) {
        q.mutable_health_check_req()->set_sequence(i);
        ASSERT_TRUE(client->request(q, milliseconds(2000)).ok()) << "request " << i;
        std::this_thread::sleep_for(milliseconds(100)); // 800 ms in all, twice the idle timeout
    }
    EXPECT_FALSE(server.sessions().at(0).closed);
}

} // namespace
} // namespace kwik::kcp
