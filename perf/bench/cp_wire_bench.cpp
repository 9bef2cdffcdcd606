// KCP over the wire against kwik-cp's control_server (controlplane/server/kwik_cp/) holding a
// fleet of registered servers (perf/bench/cp_fleet.hpp, registered in-process through
// server_registry): requests per second and latency percentiles of ServerDiscoveryRequest, and of
// HealthCheckRequest for the server itself as the baseline (same sessions, same transport, a
// reply that costs almost nothing to make), so discovery's cost is separated from the wire's.
//
// The server runs its epoll loop on one thread of this process; each client session is a thread
// with its own kcp::channel on a loopback socket, plain TCP or TLS 1.3 with the server's pin,
// after the two-round hello. A session keeps `depth` requests in flight: depth 1 is a closed loop
// (each latency is one request's round trip), depth > 1 is pipelined (throughput; a latency then
// includes the wait behind the requests ahead of it). Replies come back in order on a session,
// so the send times are a FIFO. Server CPU per request is the server thread's CPU time over the
// run divided by the requests answered. Client and server share the machine's cores.
//
// Usage: cp_wire_bench [--servers N] [--seconds S] [--sessions 1,4,16] [--depth 1,16]
//                      [--transport plain,tls] [--request health,discovery]
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/client.hpp"
#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/auth.hpp"
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/log.hpp"
#include "perf/bench/cp_fleet.hpp"

namespace {

using namespace kwik;
using kcp::KCPMessage;
using kcp::clock_sample;
using steady = std::chrono::steady_clock;

constexpr const char* server_id = "cp-bench";
constexpr const char* key_id = "bench";

enum class request_kind { health, discovery };

struct run_spec {
    bool tls = false;
    request_kind kind = request_kind::health;
    unsigned sessions = 1;
    unsigned depth = 1;
};

struct run_result {
    std::uint64_t requests = 0;
    std::uint64_t wrong_replies = 0; // not the expected response type, or an empty discovery
    double seconds = 0;
    double server_cpu_us_per_request = 0;
    std::vector<double> latency_us; // sorted
    std::string failure;            // a session could not be set up, or closed during the run
};

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) {
        return 0;
    }
    const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(i, sorted.size() - 1)];
}

double thread_cpu_us(pthread_t t) {
    clockid_t id{};
    timespec ts{};
    if (::pthread_getcpuclockid(t, &id) != 0 || ::clock_gettime(id, &ts) != 0) {
        return 0;
    }
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// kwik-cp's control_server on 127.0.0.1 with the fleet registered, its loop on its own thread.
class bench_server {
public:
    static std::unique_ptr<bench_server> start(const perf::cp_fleet& fleet, bool tls, const cp::bytes32& key,
                                               std::string& failure) {
        cp::control_server_config c;
        c.listen_address = "127.0.0.1";
        c.listen_port = 0;
        std::optional<kcp::key_pin> pin;
        if (tls) {
            auto identity = kcp::generate_self_signed();
            if (!identity) {
                failure = "TLS identity: " + identity.message();
                return nullptr;
            }
            auto p = kcp::pin_of_pem(identity->certificate_pem);
            if (!p) {
                failure = "TLS pin: " + p.message();
                return nullptr;
            }
            pin = p.value();
            c.tls = identity.value();
        }
        c.hello.server_id = server_id;
        c.keys = cp::key_store({cp::key_entry{key_id, key, {}, false}});
        c.registry.expiry_ms = 24 * 3600 * 1000; // no registration expires during the run
        c.registry.max_results = 8;
        // No kwikd: the link looks for one rarely, so its attach attempts stay out of the figures.
        c.link.region_name = "kwik-cp-bench-" + std::to_string(::getpid());
        c.link.retry_interval = 3600'000'000'000;
        c.channel.idle_timeout = std::chrono::milliseconds(0);
        auto s = cp::control_server::create(std::move(c));
        if (!s) {
            failure = "control_server: " + s.message();
            return nullptr;
        }
        std::unique_ptr<bench_server> b(new bench_server(std::move(s.value()), pin));
        const std::uint64_t now_ms = clock_sample::now().wall_ms;
        for (const cp::server_registration& r : fleet.registrations) {
            if (auto ok = b->_server->registry().register_server(r, now_ms); !ok) {
                failure = "register " + r.server_id + ": " + ok.message();
                return nullptr;
            }
        }
        b->_loop = std::thread([p = b.get()] {
            while (!p->_stop.load(std::memory_order_relaxed)) {
                p->_server->run_once(5);
            }
        });
        return b;
    }
    ~bench_server() {
        _stop = true;
        if (_loop.joinable()) {
            _loop.join();
        }
    }
    std::uint16_t port() const { return _server->port(); }
    const std::optional<kcp::key_pin>& pin() const { return _pin; }
    double cpu_us() { return thread_cpu_us(_loop.native_handle()); }

private:
    bench_server(std::unique_ptr<cp::control_server> s, std::optional<kcp::key_pin> pin)
        : _server(std::move(s)), _pin(pin) {}
    std::unique_ptr<cp::control_server> _server;
    std::optional<kcp::key_pin> _pin;
    std::atomic<bool> _stop{false};
    std::thread _loop;
};

// One client session on a kcp::channel, driven by poll() on this thread.
class session {
public:
    bool open(std::uint16_t port, const std::optional<kcp::key_pin>& pin, const cp::bytes32& key, unsigned n,
              std::string& failure) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            failure = "connect to 127.0.0.1:" + std::to_string(port) + " failed";
            if (fd >= 0) {
                ::close(fd);
            }
            return false;
        }
        const clock_sample now = clock_sample::now();
        result<kcp::channel> ch = error{};
        if (pin) {
            auto context = kcp::tls_context::client(*pin);
            if (!context) {
                ::close(fd);
                failure = context.message();
                return false;
            }
            _context.emplace(std::move(context.value()));
            ch = kcp::channel::tls(fd, *_context, kcp::client_channel_defaults(), now);
        } else {
            ch = kcp::channel::plain(fd, kcp::client_channel_defaults(), now);
        }
        if (!ch) {
            failure = ch.message();
            return false;
        }
        _ch.emplace(std::move(ch.value()));
        cp::client_credentials cr;
        cr.client_id = "bench-client-" + std::to_string(n);
        cr.key_id = key_id;
        cr.key = key;
        auto r1 = cp::client_hello_round1(cr);
        if (!r1) {
            failure = r1.message();
            return false;
        }
        KCPMessage m;
        *m.mutable_client_hello() = r1.value();
        KCPMessage a1 = exchange(m);
        auto r2 = cp::client_hello_round2(r1.value(), a1.server_hello(), key);
        if (!r2) {
            failure = "hello round 1: " + r2.message() + closed_text();
            return false;
        }
        KCPMessage m2;
        *m2.mutable_client_hello() = r2.value();
        KCPMessage a2 = exchange(m2);
        if (a2.server_hello().auth_result() != kcp::v3::ServerHello::ACCEPTED) {
            failure = "hello round 2: not accepted: " + a2.server_hello().error_reason() + closed_text();
            return false;
        }
        return true;
    }

    // Sends one request (written at once when the socket takes it).
    bool send(KCPMessage m) {
        if (!_ch->send(std::move(m), clock_sample::now())) {
            return false;
        }
        _ch->on_writable(clock_sample::now());
        return true;
    }
    // Waits for the socket (up to timeout_ms) and runs the channel once.
    void pump(int timeout_ms) {
        pollfd p{_ch->fd(), static_cast<short>(POLLIN | (_ch->wants_write() ? POLLOUT : 0)), 0};
        const int ready = ::poll(&p, 1, timeout_ms);
        const clock_sample now = clock_sample::now();
        if (ready > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            _ch->on_readable(now);
        }
        if (_ch->wants_write()) {
            _ch->on_writable(now);
        }
    }
    bool receive(KCPMessage& m) { return _ch->receive(m); }
    bool closed() const { return _ch->closed(); }
    std::string closed_text() const { return _ch->closed() ? " (session closed: " + _ch->close_reason() + ")" : ""; }

private:
    // Sends m and waits up to 5 s for the next message.
    KCPMessage exchange(const KCPMessage& m) {
        KCPMessage reply;
        if (!send(m)) {
            return reply;
        }
        const auto deadline = steady::now() + std::chrono::seconds(5);
        while (!_ch->receive(reply) && !_ch->closed() && steady::now() < deadline) {
            pump(50);
        }
        return reply;
    }

    std::optional<kcp::tls_context> _context;
    std::optional<kcp::channel> _ch;
};

KCPMessage make_request(const run_spec& spec, const perf::cp_fleet& fleet, std::uint64_t i) {
    KCPMessage m;
    if (spec.kind == request_kind::discovery) {
        *m.mutable_server_discovery_req() = fleet.requests[i % fleet.requests.size()];
    } else {
        auto* h = m.mutable_health_check_req();
        h->set_sequence(i);
        h->set_server_id(server_id);
    }
    return m;
}

bool expected_reply(const run_spec& spec, const KCPMessage& m) {
    if (spec.kind == request_kind::discovery) {
        return m.has_server_discovery_resp() && m.server_discovery_resp().servers_size() > 0;
    }
    return m.has_health_check_resp() && m.health_check_resp().server_id() == server_id;
}

run_result run_one(bench_server& server, const perf::cp_fleet& fleet, const cp::bytes32& key, const run_spec& spec,
                   double seconds) {
    run_result out;
    std::vector<std::vector<double>> latencies(spec.sessions);
    std::vector<std::uint64_t> wrong(spec.sessions, 0);
    std::vector<std::string> failures(spec.sessions);
    std::atomic<bool> stop{false};
    std::barrier ready(static_cast<std::ptrdiff_t>(spec.sessions) + 1);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < spec.sessions; ++t) {
        threads.emplace_back([&, t] {
            session s;
            const bool ok = s.open(server.port(), server.pin(), key, t, failures[t]);
            ready.arrive_and_wait();
            if (!ok) {
                return;
            }
            std::deque<steady::time_point> in_flight;
            std::uint64_t next = static_cast<std::uint64_t>(t) * 7; // sessions start at different requests
            auto& lat = latencies[t];
            lat.reserve(1 << 16);
            KCPMessage reply;
            while (!stop.load(std::memory_order_relaxed)) {
                while (in_flight.size() < spec.depth) {
                    in_flight.push_back(steady::now());
                    if (!s.send(make_request(spec, fleet, next++))) {
                        failures[t] = "send refused" + s.closed_text();
                        return;
                    }
                }
                s.pump(100);
                while (s.receive(reply)) {
                    const auto done = steady::now();
                    if (in_flight.empty()) {
                        ++wrong[t]; // an answer to nothing: count it, never time it
                        continue;
                    }
                    lat.push_back(std::chrono::duration<double, std::micro>(done - in_flight.front()).count());
                    in_flight.pop_front();
                    if (!expected_reply(spec, reply)) {
                        ++wrong[t];
                    }
                }
                if (s.closed()) {
                    failures[t] = "session closed during the run" + s.closed_text();
                    return;
                }
            }
        });
    }
    ready.arrive_and_wait();
    const double cpu_start = server.cpu_us();
    const auto start = steady::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    const auto end = steady::now();
    const double cpu_end = server.cpu_us();
    for (auto& th : threads) {
        th.join();
    }
    for (unsigned t = 0; t < spec.sessions; ++t) {
        if (!failures[t].empty() && out.failure.empty()) {
            out.failure = "session " + std::to_string(t) + ": " + failures[t];
        }
        out.latency_us.insert(out.latency_us.end(), latencies[t].begin(), latencies[t].end());
        out.wrong_replies += wrong[t];
    }
    std::sort(out.latency_us.begin(), out.latency_us.end());
    out.requests = out.latency_us.size();
    out.seconds = std::chrono::duration<double>(end - start).count();
    out.server_cpu_us_per_request = out.requests > 0 ? (cpu_end - cpu_start) / static_cast<double>(out.requests) : 0;
    return out;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cp_wire_bench: KCP requests/s and latency against kwik-cp's control_server"};
    std::size_t servers = 10'000;
    double seconds = 3;
    std::vector<unsigned> sessions{1, 4, 16};
    std::vector<unsigned> depths{1, 16};
    std::vector<std::string> transports{"plain", "tls"};
    std::vector<std::string> kinds{"health", "discovery"};
    app.add_option("--servers", servers, "servers registered in the registry")->check(CLI::Range(1, 100'000));
    app.add_option("--seconds", seconds, "measured time of each run")->check(CLI::Range(0.01, 600.0));
    app.add_option("--sessions", sessions, "concurrent client sessions (threads)")
        ->delimiter(',')
        ->check(CLI::Range(1, 256));
    app.add_option("--depth", depths, "requests in flight per session (1: closed loop)")
        ->delimiter(',')
        ->check(CLI::Range(1, 1024));
    app.add_option("--transport", transports, "plain, tls")->delimiter(',')->check(CLI::IsMember({"plain", "tls"}));
    app.add_option("--request", kinds, "health (the baseline), discovery")
        ->delimiter(',')
        ->check(CLI::IsMember({"health", "discovery"}));
    CLI11_PARSE(app, argc, argv);
    cp::set_log_level(cp::log_level::warning); // no line per session opened or closed

    cp::bytes32 key{};
    if (auto r = cp::random_bytes(key); !r) {
        std::fprintf(stderr, "cp_wire_bench: random key: %s\n", r.message().c_str());
        return 1;
    }
    const perf::cp_fleet fleet = perf::make_cp_fleet(servers);
    std::printf("| transport | request | sessions | depth | requests/s | p50 us | p99 us | p99.9 us | server CPU us/req |\n");
    std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    int status = 0;
    for (const std::string& transport : transports) {
        std::string failure;
        auto server = bench_server::start(fleet, transport == "tls", key, failure);
        if (!server) {
            std::fprintf(stderr, "cp_wire_bench: %s\n", failure.c_str());
            return 1;
        }
        for (const std::string& kind : kinds) {
            for (unsigned depth : depths) {
                for (unsigned n : sessions) {
                    run_spec spec{.tls = transport == "tls",
                                  .kind = kind == "discovery" ? request_kind::discovery : request_kind::health,
                                  .sessions = n,
                                  .depth = depth};
                    const run_result r = run_one(*server, fleet, key, spec, seconds);
                    if (!r.failure.empty() || r.requests == 0 || r.wrong_replies != 0) {
                        std::fprintf(stderr, "cp_wire_bench: %s %s sessions %u depth %u: %s (%llu answered, %llu wrong)\n",
                                     transport.c_str(), kind.c_str(), n, depth,
                                     r.failure.empty() ? "no failure reported" : r.failure.c_str(),
                                     static_cast<unsigned long long>(r.requests),
                                     static_cast<unsigned long long>(r.wrong_replies));
                        status = 1;
                        continue;
                    }
                    std::printf("| %s | %s | %u | %u | %.0f | %.1f | %.1f | %.1f | %.1f |\n", transport.c_str(),
                                kind.c_str(), n, depth, static_cast<double>(r.requests) / r.seconds,
                                percentile(r.latency_us, 0.50), percentile(r.latency_us, 0.99),
                                percentile(r.latency_us, 0.999), r.server_cpu_us_per_request);
                    std::fflush(stdout);
                }
            }
        }
    }
    return status;
}
