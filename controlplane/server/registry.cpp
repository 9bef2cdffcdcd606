// The server registry: registration, heartbeats and expiry, discovery and capability queries.
#include "controlplane/server/registry.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <limits>
#include <utility>

namespace kwik::cp {

namespace {

using kcp::v3::ServerCapabilityQuery;
using kcp::v3::ServerCapabilityResponse;
using kcp::v3::ServerDiscoveryRequest;
using kcp::v3::ServerDiscoveryResponse;

constexpr std::size_t max_server_id_length = 128;

std::uint32_t loss_ppm(float rate) noexcept {
    return static_cast<std::uint32_t>(std::lround(static_cast<double>(rate) * 1e6));
}

bool valid_loss(float rate) noexcept {
    return std::isfinite(rate) && rate >= 0.0F && rate <= 1.0F;
}

// "12.5" for 12500 milli-points.
std::string points(std::uint64_t milli) {
    return std::to_string(milli / 1000) + "." + std::to_string(milli % 1000 / 100);
}

std::string ordinal(std::size_t n) {
    const char* suffix = n % 100 / 10 == 1 ? "th" : n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
    return std::to_string(n) + suffix;
}

result<void> check_load(std::uint32_t load, const char* field) {
    if (load > 100) {
        return error{std::string(field) + ": " + std::to_string(load) + " is above 100", EINVAL};
    }
    return {};
}

result<void> check_loss(std::optional<float> loss, const char* field) {
    if (loss && !valid_loss(*loss)) {
        return error{std::string(field) + ": " + std::to_string(*loss) + " is not a fraction in [0, 1]", EINVAL};
    }
    return {};
}

result<void> check_registration(const server_registration& r) {
    const std::string f = "server_registration.";
    if (r.server_id.empty() || r.server_id.size() > max_server_id_length) {
        return error{f + "server_id: expected 1 to 128 characters, got " + std::to_string(r.server_id.size()), EINVAL};
    }
    const available_server& s = r.server;
    if (s.address().empty()) {
        return error{f + "server.address: empty", EINVAL};
    }
    if (!s.tls_pubkey_hash_sha256().empty() && s.tls_pubkey_hash_sha256().size() != secret_size) {
        return error{f + "server.tls_pubkey_hash_sha256: expected 32 bytes or none, got " +
                         std::to_string(s.tls_pubkey_hash_sha256().size()), EINVAL};
    }
    if (result<void> ok = check_load(s.current_load_percent(), "server_registration.server.current_load_percent"); !ok) {
        return ok;
    }
    if (result<void> ok = check_loss(r.packet_loss_rate, "server_registration.packet_loss_rate"); !ok) {
        return ok;
    }
    for (int i = 0; i < s.capabilities_size(); ++i) {
        if (s.capabilities(i).empty()) {
            return error{f + "server.capabilities[" + std::to_string(i) + "]: empty", EINVAL};
        }
    }
    const auto& loc = s.location();
    if (!std::isfinite(loc.latitude()) || std::fabs(loc.latitude()) > 90.0F) {
        return error{f + "server.location.latitude: " + std::to_string(loc.latitude()) + " is outside -90..90", EINVAL};
    }
    if (!std::isfinite(loc.longitude()) || std::fabs(loc.longitude()) > 180.0F) {
        return error{f + "server.location.longitude: " + std::to_string(loc.longitude()) + " is outside -180..180",
                     EINVAL};
    }
    return {};
}

} // namespace

result<server_registration> registration_from_proto(const kcp::v3::ServerRegistration& m, std::string_view field) {
    const std::string f(field);
    // check_registration names fields under "server_registration"; said again under `field`.
    auto renamed = [&](const std::string& message) {
        static constexpr std::string_view own = "server_registration";
        return message.starts_with(own) ? f + message.substr(own.size()) : message;
    };
    if (!m.has_server()) {
        return error{f + ".server: missing (its address is required)", EINVAL};
    }
    if (m.server().address().empty()) {
        return error{f + ".server.address: missing", EINVAL};
    }
    server_registration r;
    r.server_id = m.server_id();
    r.server = m.server();
    if (m.has_packet_loss_rate()) {
        r.packet_loss_rate = m.packet_loss_rate();
    }
    if (m.supported_versions_size() > 0) {
        r.versions.clear();
        for (int i = 0; i < m.supported_versions_size(); ++i) {
            const auto& v = m.supported_versions(i);
            if (v.major() == 0) {
                return error{f + ".supported_versions[" + std::to_string(i) + "].major: 0 is not a KCP version", EINVAL};
            }
            r.versions.push_back(protocol_version{v.major(), v.minor()});
        }
    }
    if (m.aead_algorithms_size() > 0) {
        r.aead_algorithms.clear();
        for (int i = 0; i < m.aead_algorithms_size(); ++i) {
            const auto a = m.aead_algorithms(i);
            if (a == kcp::v3::AEAD_ALGORITHM_UNSPECIFIED || !kcp::v3::AeadAlgorithm_IsValid(a)) {
                return error{f + ".aead_algorithms[" + std::to_string(i) + "]: " + std::to_string(a) +
                                 " is not an AEAD algorithm",
                             EINVAL};
            }
            r.aead_algorithms.push_back(static_cast<kcp::v3::AeadAlgorithm>(a));
        }
    }
    r.max_paths_per_connection = m.max_paths_per_connection();
    if (result<void> ok = check_registration(r); !ok) {
        return error{renamed(ok.message()), ok.code()};
    }
    return r;
}

kcp::v3::ServerRegistration registration_to_proto(const server_registration& r) {
    kcp::v3::ServerRegistration m;
    m.set_server_id(r.server_id);
    *m.mutable_server() = r.server;
    if (r.packet_loss_rate) {
        m.set_packet_loss_rate(*r.packet_loss_rate);
    }
    for (const protocol_version& v : r.versions) {
        auto* pv = m.add_supported_versions();
        pv->set_major(v.major);
        pv->set_minor(v.minor);
    }
    for (const auto a : r.aead_algorithms) {
        m.add_aead_algorithms(a);
    }
    m.set_max_paths_per_connection(r.max_paths_per_connection);
    return m;
}

server_status status_from_heartbeat(const kcp::v3::ServerHeartbeat& m) {
    server_status s;
    if (m.has_available_bandwidth_mbps()) {
        s.available_bandwidth_mbps = m.available_bandwidth_mbps();
    }
    if (m.has_current_load_percent()) {
        s.current_load_percent = m.current_load_percent();
    }
    if (m.has_latency_ms()) {
        s.latency_ms = m.latency_ms();
    }
    if (m.has_packet_loss_rate()) {
        s.packet_loss_rate = m.packet_loss_rate();
    }
    if (m.has_metrics()) {
        s.metrics = m.metrics();
    }
    return s;
}

// ---------------------------------------------------------------- name table

std::optional<std::uint32_t> server_registry::name_table::acquire(std::string_view name) {
    if (name.empty()) {
        return 0;
    }
    if (const auto it = _ids.find(name); it != _ids.end()) {
        ++_refs[it->second - 1];
        return it->second;
    }
    std::uint32_t id = 0;
    if (!_free.empty()) {
        id = _free.back();
        _free.pop_back();
        _names[id - 1] = name;
        _refs[id - 1] = 1;
    } else {
        if (_names.size() >= _capacity) {
            return std::nullopt;
        }
        _names.emplace_back(name);
        _refs.push_back(1);
        id = static_cast<std::uint32_t>(_names.size());
    }
    _ids.emplace(std::string(name), id);
    return id;
}

void server_registry::name_table::release(std::uint32_t id) {
    if (id == 0 || --_refs[id - 1] != 0) {
        return;
    }
    _ids.erase(_names[id - 1]);
    _names[id - 1].clear();
    _free.push_back(id);
}

std::optional<std::uint32_t> server_registry::name_table::find(std::string_view name) const {
    if (name.empty()) {
        return 0;
    }
    const auto it = _ids.find(name);
    return it == _ids.end() ? std::nullopt : std::optional<std::uint32_t>(it->second);
}

// ---------------------------------------------------------------- registration

server_registry::server_registry(registry_config config) : _config(std::move(config)) {
    _config.max_results = std::max<std::size_t>(_config.max_results, 1);
}

result<server_registry::server_summary> server_registry::summarize(const server_registration& r,
                                                                   std::uint64_t expires_at_ms) {
    const available_server& s = r.server;
    server_summary out{};
    out.expires_at_ms = expires_at_ms;
    out.available_bandwidth_mbps = s.available_bandwidth_mbps();
    out.latency_ms = s.latency_ms();
    out.load_percent = s.current_load_percent();
    out.loss_ppm = r.packet_loss_rate ? loss_ppm(*r.packet_loss_rate) : unknown_loss;
    for (const std::string& name : s.capabilities()) {
        if (const auto id = _capability_names.find(name); id && (out.capabilities[(*id - 1) / 64] >> ((*id - 1) % 64) & 1)) {
            continue; // listed twice
        }
        const std::optional<std::uint32_t> id = _capability_names.acquire(name);
        if (!id) {
            release_names(out);
            return error{"server_registration.server.capabilities: \"" + name + "\" would be the registry's " +
                             std::to_string(max_capability_names + 1) + "th distinct capability name (the limit is " +
                             std::to_string(max_capability_names) + ")",
                         ENOSPC};
        }
        out.capabilities[(*id - 1) / 64] |= std::uint64_t{1} << ((*id - 1) % 64);
    }
    // The place table has no capacity limit: acquire cannot fail.
    out.country = *_places.acquire(s.location().country());
    out.region = *_places.acquire(s.location().region());
    out.datacenter = *_places.acquire(s.location().datacenter());
    return out;
}

void server_registry::release_names(const server_summary& s) {
    for (std::size_t w = 0; w < s.capabilities.size(); ++w) {
        for (std::uint64_t bits = s.capabilities[w]; bits != 0; bits &= bits - 1) {
            _capability_names.release(static_cast<std::uint32_t>(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)) + 1));
        }
    }
    _places.release(s.country);
    _places.release(s.region);
    _places.release(s.datacenter);
}

result<void> server_registry::register_server(server_registration registration, std::uint64_t now_ms,
                                              std::string owner_key_id) {
    if (result<void> ok = check_registration(registration); !ok) {
        return ok;
    }
    const auto it = _slots.find(registration.server_id);
    if (it == _slots.end() && _servers.size() >= _config.max_servers) {
        return error{"server_registration.server_id: \"" + registration.server_id + "\" not registered: the registry holds " +
                         std::to_string(_servers.size()) + " servers, its limit",
                     ENOSPC};
    }
    result<server_summary> summary = summarize(registration, now_ms + _config.expiry_ms);
    if (!summary) {
        return summary.failure();
    }
    if (it != _slots.end()) {
        const std::uint32_t slot = it->second;
        release_names(_summaries[slot]);
        _summaries[slot] = *summary;
        registered_server& r = _servers[slot];
        r.registration = std::move(registration);
        r.last_heartbeat_ms = now_ms;
        r.expires_at_ms = summary->expires_at_ms;
        r.owner_key_id = std::move(owner_key_id);
        return {};
    }
    const auto slot = static_cast<std::uint32_t>(_servers.size());
    _slots.emplace(registration.server_id, slot);
    _summaries.push_back(*summary);
    _servers.push_back(
        registered_server{std::move(registration), now_ms, now_ms, summary->expires_at_ms, std::move(owner_key_id)});
    return {};
}

void server_registry::apply_status(server_summary& s, available_server& server, std::optional<float>& loss,
                                   const server_status& status) {
    if (status.available_bandwidth_mbps) {
        s.available_bandwidth_mbps = *status.available_bandwidth_mbps;
        server.set_available_bandwidth_mbps(*status.available_bandwidth_mbps);
    }
    if (status.current_load_percent) {
        s.load_percent = *status.current_load_percent;
        server.set_current_load_percent(*status.current_load_percent);
    }
    if (status.latency_ms) {
        s.latency_ms = *status.latency_ms;
        server.set_latency_ms(*status.latency_ms);
    }
    if (status.packet_loss_rate) {
        loss = status.packet_loss_rate;
        s.loss_ppm = loss_ppm(*status.packet_loss_rate);
    }
    if (status.metrics) {
        *server.mutable_metrics() = *status.metrics;
    }
}

result<void> server_registry::heartbeat(std::string_view server_id, std::uint64_t now_ms, const server_status& status) {
    const auto it = _slots.find(server_id);
    if (it == _slots.end()) {
        return error{"heartbeat from unknown server_id \"" + std::string(server_id) + "\" (register first)", ENOENT};
    }
    if (status.current_load_percent) {
        if (result<void> ok = check_load(*status.current_load_percent, "server_status.current_load_percent"); !ok) {
            return ok;
        }
    }
    if (result<void> ok = check_loss(status.packet_loss_rate, "server_status.packet_loss_rate"); !ok) {
        return ok;
    }
    server_summary& s = _summaries[it->second];
    registered_server& r = _servers[it->second];
    apply_status(s, r.registration.server, r.registration.packet_loss_rate, status);
    r.last_heartbeat_ms = now_ms;
    r.expires_at_ms = s.expires_at_ms = now_ms + _config.expiry_ms;
    return {};
}

bool server_registry::remove(std::string_view server_id) {
    const auto it = _slots.find(server_id);
    if (it == _slots.end()) {
        return false;
    }
    const std::uint32_t slot = it->second;
    _slots.erase(it);
    release_names(_summaries[slot]);
    const auto last = static_cast<std::uint32_t>(_servers.size() - 1);
    if (slot != last) {
        _summaries[slot] = _summaries[last];
        _servers[slot] = std::move(_servers[last]);
        _slots.find(_servers[slot].registration.server_id)->second = slot;
    }
    _summaries.pop_back();
    _servers.pop_back();
    return true;
}

std::vector<std::string> server_registry::sweep(std::uint64_t now_ms) {
    std::vector<std::string> gone;
    for (std::size_t slot = 0; slot < _summaries.size();) {
        if (_summaries[slot].expires_at_ms <= now_ms) {
            gone.push_back(_servers[slot].registration.server_id);
            remove(gone.back()); // moves the last server into this slot: look at it next
        } else {
            ++slot;
        }
    }
    return gone;
}

const registered_server* server_registry::find(std::string_view server_id) const {
    const auto it = _slots.find(server_id);
    return it == _slots.end() ? nullptr : &_servers[it->second];
}

// ---------------------------------------------------------------- discovery

struct server_registry::prepared_request {
    capability_bits required{};
    std::uint32_t min_bandwidth = 0;
    std::uint32_t max_latency = UINT32_MAX;
    std::uint32_t max_loss_ppm = UINT32_MAX;
    bool any_country = true;
    std::uint32_t country = 0; // !any_country: the client's
    std::uint32_t desired = 0;
    bool regions = false; // preferred_regions is not empty
};

std::optional<std::string> server_registry::prepare(const ServerDiscoveryRequest& request, const client_location& client,
                                                    prepared_request& p) {
    for (const std::string& name : request.required_capabilities()) {
        const std::optional<std::uint32_t> id = _capability_names.find(name);
        if (!id || *id == 0) {
            return "no registered server offers capability \"" + name + "\"";
        }
        p.required[(*id - 1) / 64] |= std::uint64_t{1} << ((*id - 1) % 64);
    }
    const auto& qos = request.qos_requirements();
    const auto& geo = request.geo_preference();
    p.min_bandwidth = qos.min_bandwidth_mbps();
    for (const std::uint32_t limit : {qos.max_latency_ms(), geo.max_latency_ms()}) {
        if (limit != 0) {
            p.max_latency = std::min(p.max_latency, limit);
        }
    }
    if (qos.max_packet_loss_rate() > 0.0F) {
        p.max_loss_ppm = loss_ppm(std::min(qos.max_packet_loss_rate(), 1.0F));
    }
    if (geo.require_same_country()) {
        if (client.country.empty()) {
            return std::string("require_same_country is set but the client's country is unknown");
        }
        const std::optional<std::uint32_t> id = _places.find(client.country);
        if (!id) {
            return "require_same_country: no registered server is in the client's country \"" + client.country + "\"";
        }
        p.any_country = false;
        p.country = *id;
    }
    p.desired = request.desired_bandwidth_mbps();
    p.regions = geo.preferred_regions_size() > 0;
    if (_region_position.size() < _places.id_limit()) {
        _region_position.resize(_places.id_limit(), 0);
    }
    for (int i = 0; i < geo.preferred_regions_size(); ++i) {
        const std::optional<std::uint32_t> id = _places.find(geo.preferred_regions(i));
        if (id && *id != 0 && _region_position[*id] == 0) {
            _region_position[*id] = static_cast<std::uint32_t>(i) + 1;
        }
    }
    return std::nullopt;
}

// Inlined into discover()'s loop: a call per server cost about 30 instructions of the 80 each
// server took (callgrind, cp_bench BM_discover).
[[gnu::always_inline]] inline ranking_cost server_registry::cost(const server_summary& s,
                                                                  const prepared_request& p) const noexcept {
    const ranking_weights& w = _config.weights;
    ranking_cost c;
    c.latency = std::uint64_t{w.per_latency_ms} * s.latency_ms;
    c.load = std::uint64_t{w.per_load_percent} * s.load_percent;
    if (p.desired != 0) {
        const std::uint64_t missing = p.desired - std::min(s.available_bandwidth_mbps, p.desired);
        c.shortfall = std::uint64_t{w.full_shortfall} * missing / p.desired;
    }
    if (s.loss_ppm != unknown_loss) {
        c.loss = std::uint64_t{w.per_loss_percent} * s.loss_ppm / 10'000;
    }
    if (p.regions) {
        const std::uint32_t position = _region_position[s.region];
        c.region = position != 0 ? std::uint64_t{w.per_region_position} * (position - 1) : w.outside_preferred;
    }
    return c;
}

// All filters at once, without a branch per filter: on random data each would mispredict, and
// this loop is what a discovery over 10,000 servers costs (perf/RESULTS.md, kwik-cp discovery).
[[gnu::always_inline]] inline bool server_registry::matches(const server_summary& s, const prepared_request& p,
                                                             std::uint64_t now_ms) noexcept {
    std::uint64_t missing = 0;
    for (std::size_t w = 0; w < s.capabilities.size(); ++w) {
        missing |= p.required[w] & ~s.capabilities[w];
    }
    return (s.expires_at_ms > now_ms) & (missing == 0) & (s.available_bandwidth_mbps >= p.min_bandwidth) &
           (s.latency_ms <= p.max_latency) & ((s.loss_ppm <= p.max_loss_ppm) | (s.loss_ppm == unknown_loss)) &
           (p.any_country | (s.country == p.country));
}

// Why nothing matched: the first filter each server fails, counted, in matches()'s order.
std::string server_registry::explain_none(const prepared_request& p, std::uint64_t now_ms) const {
    std::array<std::size_t, 6> failed{};
    for (const server_summary& s : _summaries) {
        std::uint64_t missing = 0;
        for (std::size_t w = 0; w < s.capabilities.size(); ++w) {
            missing |= p.required[w] & ~s.capabilities[w];
        }
        const std::array<bool, 6> fails = {
            s.expires_at_ms <= now_ms,
            missing != 0,
            s.available_bandwidth_mbps < p.min_bandwidth,
            s.latency_ms > p.max_latency,
            s.loss_ppm != unknown_loss && s.loss_ppm > p.max_loss_ppm,
            !p.any_country && s.country != p.country,
        };
        const auto first = std::find(fails.begin(), fails.end(), true);
        if (first != fails.end()) {
            ++failed[static_cast<std::size_t>(first - fails.begin())];
        }
    }
    if (_summaries.empty()) {
        return "No server matches: none is registered.";
    }
    const std::array<std::string, 6> what = {
        "missed their heartbeats",
        "lack a required capability",
        "have less than " + std::to_string(p.min_bandwidth) + " Mbit/s available",
        "are above " + std::to_string(p.max_latency) + " ms latency",
        "are above the packet loss limit",
        "are outside the client's country",
    };
    std::string why = "No server matches: of " + std::to_string(_summaries.size()) + " registered,";
    for (std::size_t i = 0; i < what.size(); ++i) {
        if (failed[i] != 0) {
            why += " " + std::to_string(failed[i]) + " " + what[i] + ",";
        }
    }
    why.back() = '.';
    return why;
}

[[gnu::always_inline]] inline bool server_registry::ranks_before(const candidate& a, const candidate& b) const {
    if (a.cost != b.cost) {
        return a.cost < b.cost;
    }
    return _servers[a.slot].registration.server_id < _servers[b.slot].registration.server_id;
}

std::optional<ranking_cost> server_registry::cost_of(std::string_view server_id, const ServerDiscoveryRequest& request) {
    const auto it = _slots.find(server_id);
    if (it == _slots.end()) {
        return std::nullopt;
    }
    prepared_request p;
    client_location nowhere;
    ServerDiscoveryRequest costs_only = request;
    costs_only.clear_required_capabilities(); // filters do not apply here
    costs_only.mutable_geo_preference()->set_require_same_country(false);
    (void)prepare(costs_only, nowhere, p);
    const ranking_cost c = cost(_summaries[it->second], p);
    for (const std::string& r : request.geo_preference().preferred_regions()) {
        if (const auto id = _places.find(r); id && *id != 0) {
            _region_position[*id] = 0;
        }
    }
    return c;
}

ServerDiscoveryResponse server_registry::discover(const ServerDiscoveryRequest& request, std::uint64_t now_ms,
                                                  const client_location& client) {
    ServerDiscoveryResponse answer;
    prepared_request p;
    const auto& geo = request.geo_preference();
    const auto clear_regions = [&] {
        for (const std::string& r : geo.preferred_regions()) {
            if (const auto id = _places.find(r); id && *id != 0 && *id < _region_position.size()) {
                _region_position[*id] = 0;
            }
        }
    };
    if (std::optional<std::string> impossible = prepare(request, client, p)) {
        clear_regions();
        answer.set_recommendation_reason("No server matches: " + *impossible + ".");
        return answer;
    }
    const bool redundancy = request.qos_requirements().require_redundancy();
    const std::size_t k = std::max<std::size_t>(_config.max_results, redundancy ? 2 : 1);
    const auto before = [this](const candidate& a, const candidate& b) { return ranks_before(a, b); };

    // Two passes. The first filters without a branch per server: every slot is written and the
    // end advances by 0 or 1 (a branch taken by a random fifth of 10,000 servers mispredicts
    // often). The second costs the candidates and keeps a max-heap of the k best (its front
    // ranks last of them), and for redundancy the best server with a known datacenter (best)
    // and the best in another one (other).
    const server_summary* const summaries = _summaries.data();
    const auto count = static_cast<std::uint32_t>(_summaries.size());
    _passing.resize(count);
    std::uint32_t* const passing = _passing.data();
    std::size_t matched = 0;
    for (std::uint32_t slot = 0; slot < count; ++slot) {
        passing[matched] = slot;
        matched += matches(summaries[slot], p, now_ms) ? 1 : 0;
    }
    _heap.clear();
    std::optional<candidate> best;
    std::optional<candidate> other;
    for (std::size_t i = 0; i < matched; ++i) {
        const std::uint32_t slot = passing[i];
        const server_summary& s = summaries[slot];
        const candidate c{cost(s, p).total(), slot};
        if (_heap.size() < k) {
            _heap.push_back(c);
            std::push_heap(_heap.begin(), _heap.end(), before);
        } else if (ranks_before(c, _heap.front())) {
            std::pop_heap(_heap.begin(), _heap.end(), before);
            _heap.back() = c;
            std::push_heap(_heap.begin(), _heap.end(), before);
        }
        if (redundancy && s.datacenter != 0) {
            if (!best || ranks_before(c, *best)) {
                if (_summaries[best ? best->slot : slot].datacenter != s.datacenter) {
                    other = best;
                }
                best = c;
            } else if (s.datacenter != _summaries[best->slot].datacenter && (!other || ranks_before(c, *other))) {
                other = c;
            }
        }
    }
    clear_regions();
    std::sort_heap(_heap.begin(), _heap.end(), before);

    std::string redundancy_note;
    if (redundancy) {
        const auto datacenter = [this](const candidate& c) { return _summaries[c.slot].datacenter; };
        const auto diverse = [&] {
            for (const candidate& c : _heap) {
                if (datacenter(c) != 0 && datacenter(_heap.front()) != 0 && datacenter(c) != datacenter(_heap.front())) {
                    return true;
                }
            }
            // The first may have no datacenter: any two known and different will do.
            std::uint32_t seen = 0;
            for (const candidate& c : _heap) {
                if (datacenter(c) != 0) {
                    if (seen != 0 && seen != datacenter(c)) {
                        return true;
                    }
                    seen = datacenter(c);
                }
            }
            return false;
        };
        if (!diverse() && other) {
            // Make room for best and other by dropping the lowest-ranked of the rest.
            for (const candidate& need : {*best, *other}) {
                const auto in = [&](const candidate& c) { return c.slot == need.slot; };
                if (std::find_if(_heap.begin(), _heap.end(), in) != _heap.end()) {
                    continue;
                }
                if (_heap.size() >= k) {
                    for (auto it = _heap.end(); it != _heap.begin();) {
                        --it;
                        if (it->slot != best->slot && it->slot != other->slot) {
                            _heap.erase(it);
                            break;
                        }
                    }
                }
                _heap.push_back(need);
            }
            std::sort(_heap.begin(), _heap.end(), before);
        }
        if (other) {
            // Name the first pair in the answer that is in different datacenters.
            std::optional<candidate> a;
            std::optional<candidate> b;
            for (const candidate& c : _heap) {
                if (datacenter(c) == 0) {
                    continue;
                }
                if (!a) {
                    a = c;
                } else if (datacenter(c) != datacenter(*a)) {
                    b = c;
                    break;
                }
            }
            redundancy_note = " Redundancy: " + _servers[a->slot].registration.server_id + " (datacenter " +
                              _places.name(datacenter(*a)) + ") and " + _servers[b->slot].registration.server_id +
                              " (datacenter " + _places.name(datacenter(*b)) + ") are in different datacenters.";
        } else if (matched == 0) {
            redundancy_note.clear();
        } else if (matched == 1) {
            redundancy_note = " Redundancy cannot be met: only one server matches.";
        } else if (!best) {
            redundancy_note = " Redundancy cannot be met: no matching server names its datacenter.";
        } else {
            redundancy_note = " Redundancy cannot be met: every matching server that names its datacenter is in " +
                              _places.name(datacenter(*best)) + ".";
        }
    }

    std::uint64_t total = 0;
    answer.mutable_servers()->Reserve(static_cast<int>(_heap.size()));
    for (const candidate& c : _heap) {
        *answer.add_servers() = _servers[c.slot].registration.server;
        total += _summaries[c.slot].available_bandwidth_mbps;
    }
    answer.set_total_available_bandwidth_mbps(
        static_cast<std::uint32_t>(std::min<std::uint64_t>(total, std::numeric_limits<std::uint32_t>::max())));

    if (matched == 0) {
        answer.set_recommendation_reason(explain_none(p, now_ms));
        return answer;
    }
    // The region positions were cleared above; the explanation recomputes what it needs.
    answer.set_recommendation_reason(explain_first(request, p, matched) + redundancy_note);
    return answer;
}

std::string server_registry::explain_first(const ServerDiscoveryRequest& request, const prepared_request& p,
                                           std::size_t matched) const {
    const candidate& first = _heap.front();
    const server_summary& s = _summaries[first.slot];
    const registered_server& r = _servers[first.slot];
    std::string out = r.registration.server_id + " ranks first of " + std::to_string(matched) + " matching server" +
                      (matched == 1 ? "" : "s") + ": " + std::to_string(s.latency_ms) + " ms latency, " +
                      std::to_string(s.load_percent) + " % load, ";
    if (p.desired != 0) {
        out += std::to_string(std::min(s.available_bandwidth_mbps, p.desired)) + " of the " +
               std::to_string(p.desired) + " Mbit/s desired available";
    } else {
        out += std::to_string(s.available_bandwidth_mbps) + " Mbit/s available";
    }
    if (s.loss_ppm != unknown_loss) {
        out += ", " + points(s.loss_ppm / 10) + " % loss";
    }
    const auto& regions = request.geo_preference().preferred_regions();
    if (!regions.empty()) {
        const std::string& region = r.registration.server.location().region();
        const auto at = std::find(regions.begin(), regions.end(), region);
        out += at == regions.end() || region.empty()
                   ? ", outside the preferred regions"
                   : ", in the " + ordinal(static_cast<std::size_t>(at - regions.begin()) + 1) +
                         " preferred region " + region;
    }
    out += "; cost " + points(first.cost) + " points";
    if (_heap.size() > 1) {
        out += " against " + points(_heap[1].cost) + " for " + _servers[_heap[1].slot].registration.server_id;
    }
    out += " (lower is better).";
    return out;
}

// ---------------------------------------------------------------- capability queries

ServerCapabilityResponse server_registry::capabilities(const ServerCapabilityQuery& query, std::uint64_t now_ms) const {
    ServerCapabilityResponse answer;
    const std::string& id = query.server_id().empty() ? _config.self_server_id : query.server_id();
    if (id.empty()) {
        answer.set_error_reason("ServerCapabilityQuery.server_id is empty and this registry is no server itself");
        return answer;
    }
    answer.set_server_id(id);
    const auto it = _slots.find(id);
    if (it == _slots.end()) {
        answer.set_error_reason("unknown server_id \"" + id + "\"");
        return answer;
    }
    const registered_server& r = _servers[it->second];
    if (r.expires_at_ms <= now_ms) {
        answer.set_error_reason("server \"" + id + "\" missed its heartbeats: the last was " +
                                std::to_string(now_ms - r.last_heartbeat_ms) + " ms ago (expiry " +
                                std::to_string(_config.expiry_ms) + " ms)");
        return answer;
    }
    const auto& offered = r.registration.server.capabilities();
    if (query.capabilities().empty()) {
        *answer.mutable_capabilities() = offered;
    } else {
        for (const std::string& c : query.capabilities()) {
            const bool has = std::find(offered.begin(), offered.end(), c) != offered.end();
            *(has ? answer.add_capabilities() : answer.add_unsupported_capabilities()) = c;
        }
    }
    for (const protocol_version& v : r.registration.versions) {
        kcp::v3::ProtocolVersion* pv = answer.add_supported_versions();
        pv->set_major(v.major);
        pv->set_minor(v.minor);
    }
    for (const kcp::v3::AeadAlgorithm a : r.registration.aead_algorithms) {
        answer.add_aead_algorithms(a);
    }
    answer.set_max_paths_per_connection(r.registration.max_paths_per_connection);
    answer.set_available_bandwidth_mbps(r.registration.server.available_bandwidth_mbps());
    if (query.include_metrics()) {
        *answer.mutable_metrics() = r.registration.server.metrics();
    }
    return answer;
}

} // namespace kwik::cp
