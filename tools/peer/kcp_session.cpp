// kwik-peer's KCP session with kwik-cp: see kcp_session.hpp.
#include "tools/peer/kcp_session.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <nlohmann/json.hpp>

#include "controlplane/kcp/framing.hpp"
#include "controlplane/server/auth.hpp"

namespace kwik::peer {

namespace {

namespace v3 = kcp::v3;
using kcp::KCPMessage;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// How long one receive() of the events thread waits: what close() may take, and how late a
// keep-alive may go out.
constexpr milliseconds events_poll{200};

std::string endpoint(const std::string& address, std::uint16_t port) {
    const bool v6 = address.find(':') != std::string::npos;
    return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

v3::UdpPath::IpVersion version_of(const std::string& address) {
    unsigned char buf[16];
    if (::inet_pton(AF_INET, address.c_str(), buf) == 1) {
        return v3::UdpPath::IPV4;
    }
    if (::inet_pton(AF_INET6, address.c_str(), buf) == 1) {
        return v3::UdpPath::IPV6;
    }
    return v3::UdpPath::IP_VERSION_UNSPECIFIED;
}

std::uint64_t wall_us() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

std::string hello_refusal(const std::string& address, const v3::ServerHello& h) {
    return "kwik-cp " + address + " rejected the hello: " + v3::ServerHello::AuthResult_Name(h.auth_result()) +
           (h.error_reason().empty() ? std::string() : ": " + h.error_reason());
}

std::string discovery_text(const v3::ServerDiscoveryResponse& r) {
    std::string out = "discovery: " + std::to_string(r.servers_size()) + " server" +
                      (r.servers_size() == 1 ? "" : "s") + ", " + std::to_string(r.total_available_bandwidth_mbps()) +
                      " Mbit/s available in total\n";
    int rank = 0;
    for (const auto& s : r.servers()) {
        out += "  " + std::to_string(++rank) + ". " + s.address() + ": latency " + std::to_string(s.latency_ms()) +
               " ms, load " + std::to_string(s.current_load_percent()) + " %, " +
               std::to_string(s.available_bandwidth_mbps()) + " Mbit/s available";
        if (!s.location().region().empty() || !s.location().datacenter().empty()) {
            out += ", " + s.location().region() + "/" + s.location().datacenter();
        }
        out += "\n";
    }
    if (!r.recommendation_reason().empty()) {
        out += "  " + r.recommendation_reason() + "\n";
    }
    return out;
}

} // namespace

v3::UdpPath wire_path(const path_request& path) {
    // kwik-cp reads UdpPath from the appliance's side (to_tuple: local = kwikd's address, as
    // kwikctl path add --local), so the client's remote end goes into local_*.
    v3::UdpPath p;
    const v3::UdpPath::IpVersion lv = version_of(path.local_address);
    p.set_ip_version(lv == version_of(path.remote_address) ? lv : v3::UdpPath::IP_VERSION_UNSPECIFIED);
    p.set_local_address(path.remote_address);
    p.set_local_port(path.remote_port);
    p.set_remote_address(path.local_address);
    p.set_remote_port(path.local_port);
    return p;
}

kcp_session::kcp_session(const kcp_settings& settings, session_events events,
                         std::unique_ptr<kcp::blocking_client> client)
    : _settings(settings), _events(std::move(events)), _client(std::move(client)) {}

kcp_session::~kcp_session() {
    close();
    OPENSSL_cleanse(_key.key.data(), _key.key.size());
    OPENSSL_cleanse(_settings.key.data(), _settings.key.size());
}

result<std::unique_ptr<kcp_session>> kcp_session::open(const kcp_settings& settings, session_events events) {
    const auto invalid = [](std::string what) { return error{"kcp_settings." + std::move(what), EINVAL}; };
    if (settings.address.empty()) {
        return invalid("address: empty (expected host:port of kwik-cp)");
    }
    if (settings.key_id.empty()) {
        return invalid("key_id: empty");
    }
    if (settings.client_id.empty()) {
        return invalid("client_id: empty");
    }
    if (settings.timeout <= milliseconds::zero()) {
        return invalid("timeout: " + std::to_string(settings.timeout.count()) + " ms is not positive");
    }
    kcp::client_options options;
    options.pin = settings.pin;
    options.connect_timeout = settings.timeout;
    auto client = kcp::blocking_client::connect(settings.address, options);
    if (!client) {
        return client.failure();
    }
    std::unique_ptr<kcp_session> s(new kcp_session(settings, std::move(events), std::move(client.value())));
    const result<void> said_hello = s->hello();
    // Only the hello needs the pre-shared key; the data key is what the session keeps.
    OPENSSL_cleanse(s->_settings.key.data(), s->_settings.key.size());
    if (!said_hello) {
        return said_hello.failure();
    }
    if (settings.discover) {
        if (auto r = s->discover(); !r) {
            return r.failure();
        }
    }
    return s;
}

result<void> kcp_session::hello() {
    cp::client_credentials credentials;
    credentials.client_id = _settings.client_id;
    credentials.key_id = _settings.key_id;
    credentials.key = _settings.key;
    auto round1 = cp::client_hello_round1(credentials);
    OPENSSL_cleanse(credentials.key.data(), credentials.key.size());
    if (!round1) {
        return fail(round1.failure());
    }
    KCPMessage m;
    *m.mutable_client_hello() = round1.value();
    auto challenge = request(std::move(m));
    if (!challenge) {
        return error{"hello round 1: " + challenge.message(), challenge.code()};
    }
    const v3::ServerHello& c = challenge->server_hello();
    if (c.auth_result() != v3::ServerHello::CHALLENGE) {
        return fail(error{hello_refusal(_settings.address, c), EACCES});
    }
    auto round2 = cp::client_hello_round2(round1.value(), c, _settings.key);
    if (!round2) {
        return fail(error{"hello: " + round2.message(), round2.code()});
    }
    KCPMessage m2;
    *m2.mutable_client_hello() = round2.value();
    auto answer = request(std::move(m2));
    if (!answer) {
        return error{"hello round 2: " + answer.message(), answer.code()};
    }
    const v3::ServerHello& a = answer->server_hello();
    if (a.auth_result() != v3::ServerHello::ACCEPTED) {
        return fail(error{hello_refusal(_settings.address, a), EACCES});
    }
    if (a.connection_id().empty()) {
        return fail(error{"hello: ServerHello ACCEPTED without a connection_id", EPROTO});
    }
    auto key = cp::client_data_key(a.data_key(), _settings.key);
    if (!key) {
        return fail(error{"hello: ServerHello.data_key: " + key.message(), key.code()});
    }
    _connection_id = a.connection_id();
    _server_id = a.server_id();
    _key.phase = static_cast<std::uint8_t>(a.data_key().key_phase()); // client_data_key checked <= 255
    _key.key = key.value();
    OPENSSL_cleanse(key->data(), key->size());
    _key.valid_until_ms = a.data_key().valid_until_ms();
    _key.max_frames = a.data_key().max_frames();
    return {};
}

result<void> kcp_session::discover() {
    KCPMessage m;
    m.mutable_server_discovery_req()->set_client_id(_settings.client_id);
    auto answer = request(std::move(m));
    if (!answer) {
        return error{"discovery: " + answer.message(), answer.code()};
    }
    _discovery = answer->server_discovery_resp();
    _discovery_report = discovery_text(_discovery);
    return {};
}

error kcp_session::fail(error e) {
    std::lock_guard lock(_counters_mutex);
    _last_error = e.message;
    return e;
}

void kcp_session::count_received(const KCPMessage& m) {
    std::lock_guard lock(_counters_mutex);
    ++_received[std::string(kcp::payload_name(m))];
}

result<KCPMessage> kcp_session::request(KCPMessage m) {
    const std::string type(kcp::payload_name(m));
    {
        std::lock_guard lock(_counters_mutex);
        ++_sent[type];
    }
    auto answer = _client->request(std::move(m), _settings.timeout);
    if (!answer) {
        return fail(answer.failure());
    }
    count_received(*answer);
    return answer;
}

result<void> kcp_session::send(KCPMessage m) {
    const std::string type(kcp::payload_name(m));
    {
        std::lock_guard lock(_counters_mutex);
        ++_sent[type];
    }
    if (auto r = _client->send(std::move(m), _settings.timeout); !r) {
        return fail(r.failure());
    }
    return {};
}

result<v3::PathStatusUpdate> kcp_session::add_path(const path_request& path) {
    const std::string what = "path " + std::to_string(path.path_id) + " (local " +
                             endpoint(path.local_address, path.local_port) + ", remote " +
                             endpoint(path.remote_address, path.remote_port) + ")";
    KCPMessage m;
    v3::AddPathCommand* q = m.mutable_add_path();
    q->set_connection_id(_connection_id);
    q->set_path_id(path.path_id);
    *q->mutable_path() = wire_path(path);
    q->set_standby(path.standby);
    q->set_initial_weight(path.weight);
    q->set_max_bandwidth_mbps(path.max_mbps);
    auto answer = request(std::move(m));
    if (!answer) {
        return error{what + ": " + answer.message(), answer.code()};
    }
    const v3::PathStatusUpdate& u = answer->path_status();
    if (u.status() == v3::PathStatusUpdate::UP || u.status() == v3::PathStatusUpdate::STANDBY) {
        return u;
    }
    std::string reason = what + ": kwik-cp answered " + v3::PathStatusUpdate::Status_Name(u.status()) +
                         (u.reason().empty() ? std::string() : ": " + u.reason());
    if (u.reason().find("add_path.path.") != std::string::npos) {
        reason += " (on the wire local_* is the server's end, this path's remote; remote_* is this host's)";
    }
    return fail(error{std::move(reason), EINVAL});
}

result<void> kcp_session::remove_path(std::uint64_t path_id) {
    // kwik-cp answers REMOVED either way; success carries the reason we gave.
    static const std::string our_reason = "removed by kwik-peer";
    KCPMessage m;
    v3::RemovePathCommand* q = m.mutable_remove_path();
    q->set_connection_id(_connection_id);
    q->set_path_id(path_id);
    q->set_reason(our_reason);
    auto answer = request(std::move(m));
    const std::string what = "remove path " + std::to_string(path_id);
    if (!answer) {
        return error{what + ": " + answer.message(), answer.code()};
    }
    const v3::PathStatusUpdate& u = answer->path_status();
    if (u.status() == v3::PathStatusUpdate::REMOVED && u.reason() == our_reason) {
        return {};
    }
    return fail(error{what + ": kwik-cp answered " + v3::PathStatusUpdate::Status_Name(u.status()) +
                          (u.reason().empty() ? std::string() : ": " + u.reason()),
                      EINVAL});
}

result<v3::BandwidthScalingResponse> kcp_session::request_scaling(std::uint32_t target_mbps,
                                                                  std::uint32_t current_mbps) {
    KCPMessage m;
    v3::BandwidthScalingRequest* q = m.mutable_scaling_request();
    q->set_connection_id(_connection_id);
    q->set_trigger(v3::BandwidthScalingRequest::MANUAL);
    q->set_current_bandwidth_mbps(current_mbps);
    q->set_target_bandwidth_mbps(target_mbps);
    auto answer = request(std::move(m));
    if (!answer) {
        return error{"scaling to " + std::to_string(target_mbps) + " Mbit/s: " + answer.message(), answer.code()};
    }
    return answer->scaling_response();
}

result<void> kcp_session::report_metrics(v3::PerformanceMetrics metrics) {
    metrics.set_connection_id(_connection_id);
    KCPMessage m;
    *m.mutable_performance_metrics() = std::move(metrics);
    if (auto r = send(std::move(m)); !r) {
        return error{"performance metrics: " + r.message(), r.code()};
    }
    return {};
}

void kcp_session::start_events() {
    std::call_once(_events_once, [this] { _events_thread = std::thread([this] { events_loop(); }); });
}

void kcp_session::lose(const std::string& reason) {
    if (_stopping.load() || _lost.exchange(true)) {
        return;
    }
    {
        std::lock_guard lock(_counters_mutex);
        _lost_reason = reason;
    }
    if (_events.on_session_lost) {
        _events.on_session_lost(reason);
    }
}

void kcp_session::dispatch(const KCPMessage& m) {
    switch (m.payload_case()) {
    case KCPMessage::kPathStatus:
        if (_events.on_path_status) {
            _events.on_path_status(m.path_status());
        }
        return;
    case KCPMessage::kLoadBalancing:
        if (_events.on_load_balancing) {
            _events.on_load_balancing(m.load_balancing());
        }
        return;
    case KCPMessage::kTrafficPlan:
        if (_events.on_plan) {
            _events.on_plan(m.traffic_plan());
        }
        return;
    case KCPMessage::kScalingResponse:
        if (_events.on_scaling) {
            _events.on_scaling(m.scaling_response());
        }
        return;
    default:
        return; // keep-alive answers and late replies: counted only
    }
}

void kcp_session::events_loop() {
    const milliseconds keepalive = _settings.keepalive;
    auto last_received = steady_clock::now();
    std::optional<steady_clock::time_point> probe_sent; // an unanswered keep-alive
    while (!_stopping.load()) {
        auto m = _client->receive(events_poll);
        const auto now = steady_clock::now();
        if (m) {
            count_received(*m);
            last_received = now;
            probe_sent.reset();
            dispatch(*m);
            continue;
        }
        if (_stopping.load()) {
            break;
        }
        if (m.code() != ETIMEDOUT) { // the session closed
            (void)fail(m.failure());
            lose(m.message());
            break;
        }
        if (probe_sent && now - *probe_sent >= _settings.timeout) {
            const std::string reason = "kwik-cp did not answer a keep-alive within " +
                                       std::to_string(_settings.timeout.count()) + " ms";
            (void)fail(error{reason, ETIMEDOUT});
            _client->close();
            lose(reason);
            break;
        }
        if (keepalive > milliseconds::zero() && !probe_sent && now - last_received >= keepalive) {
            KCPMessage h;
            v3::HealthCheckRequest* q = h.mutable_health_check_req();
            q->set_sequence(++_health_sequence);
            q->set_connection_id(_connection_id);
            q->set_server_id(_server_id);
            q->set_sent_at_us(wall_us());
            {
                std::lock_guard lock(_counters_mutex);
                ++_keepalives;
            }
            if (auto r = send(std::move(h)); !r) {
                if (!_stopping.load()) {
                    lose("keep-alive: " + r.message());
                }
                break;
            }
            probe_sent = steady_clock::now();
        }
    }
}

void kcp_session::close() {
    _stopping.store(true);
    if (_client) {
        _client->close();
    }
    if (_events_thread.joinable() && _events_thread.get_id() != std::this_thread::get_id()) {
        _events_thread.join();
    }
}

std::string kcp_session::counters_json() const {
    nlohmann::ordered_json j;
    j["connection_id"] = _connection_id;
    j["server_id"] = _server_id;
    {
        std::lock_guard lock(_counters_mutex);
        j["sent"] = nlohmann::ordered_json::object();
        for (const auto& [type, n] : _sent) {
            j["sent"][type] = n;
        }
        j["received"] = nlohmann::ordered_json::object();
        for (const auto& [type, n] : _received) {
            j["received"][type] = n;
        }
        j["last_error"] = _last_error;
        j["session_lost"] = _lost_reason;
        j["keepalives"] = _keepalives;
    }
    j["unsolicited_dropped"] = _client->unsolicited_dropped();
    const kcp::channel_counters c = _client->counters();
    j["channel"] = {
        {"messages_in", c.messages_in},       {"messages_out", c.messages_out},
        {"bytes_in", c.bytes_in},             {"bytes_out", c.bytes_out},
        {"expired_in", c.expired_in},         {"expired_out", c.expired_out},
        {"unsent_on_close", c.unsent_on_close},
    };
    return j.dump();
}

} // namespace kwik::peer
