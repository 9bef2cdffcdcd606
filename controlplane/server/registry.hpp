// kwik-cp's server registry: the Kwik servers that registered (address, pinned TLS key,
// capabilities, location, capacity, load, latency, metrics), kept by heartbeats and dropped when
// they stop; discovery (ServerDiscoveryRequest -> ranked ServerDiscoveryResponse) and capability
// queries. Pure logic; time is passed in as ms since the Unix epoch. One thread: discover() reuses
// scratch buffers, so even it must not run on two threads at once.
//
// Ranking (docs/KCP_SERVER.md section 2). Each server that passes the filters gets a cost in
// milli-points, lower is better; a point is what one millisecond of latency costs, so every term
// reads as "this counts like N ms more latency". With the default weights:
//
//   cost = 1000   * latency_ms                                  (1 point per ms)
//        + 1000   * current_load_percent                        (a full server: +100)
//        + 100000 * (desired - min(available, desired)) / desired   (desired_bandwidth_mbps > 0:
//                                                  half the desired rate missing: +50)
//        + 10000  * packet_loss_rate * 100                      (known loss: +10 per 1 %)
//        + region term: when preferred_regions is not empty, 10000 * i for the region at
//          position i of the list (the first: 0, the second: +10, ...), 100000 for any other
//          region (+100); 0 when the request lists none.
//
// Integer arithmetic (64-bit, divisions truncate), so a ranking is exact and repeatable; ties go
// to the smaller server_id. Filters, all that apply: every required capability present;
// available >= min_bandwidth_mbps; latency <= the smaller non-zero of the QoS and geographic
// max_latency_ms; packet loss <= max_packet_loss_rate when the server's loss is known and the
// limit is non-zero; the client's country when require_same_country (the caller says which
// country that is); not expired. The top max_results (default 8) are answered, found with a
// bounded heap (O(n log N), nothing sorted but the N). With require_redundancy, when
// two matching servers are in different (named) datacenters and the top N are not, the best
// server with a datacenter and the best in another one replace the lowest-ranked of the N.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"
#include "controlplane/server/kcp_types.hpp"
#include "proto/kcp.pb.h"

namespace kwik::cp {

using available_server = kcp::v3::ServerDiscoveryResponse::AvailableServer;
using server_metrics = kcp::v3::ServerDiscoveryResponse::AvailableServer::ServerMetrics;

// What a server tells the registry about itself.
struct server_registration {
    std::string server_id{}; // 1..128 characters, unique in the registry
    // address (required), tls_pubkey_hash_sha256 (empty or 32 bytes), available_bandwidth_mbps,
    // current_load_percent (0..100), latency_ms, capabilities (non-empty names), location
    // (latitude -90..90, longitude -180..180), metrics: answered as they are in discovery.
    available_server server{};
    std::optional<float> packet_loss_rate{}; // [0, 1]; unknown: loss limits do not exclude it
    // For ServerCapabilityResponse.
    std::vector<protocol_version> versions{{3, 0}};
    std::vector<kcp::v3::AeadAlgorithm> aead_algorithms{kcp::v3::AEAD_AES_256_GCM};
    std::uint32_t max_paths_per_connection = 0;
};

// What a heartbeat may refresh besides the expiry; unset fields keep their values.
struct server_status {
    std::optional<std::uint32_t> available_bandwidth_mbps{};
    std::optional<std::uint32_t> current_load_percent{};
    std::optional<std::uint32_t> latency_ms{};
    std::optional<float> packet_loss_rate{};
    std::optional<server_metrics> metrics{};
};

struct registered_server {
    server_registration registration;
    std::uint64_t registered_at_ms = 0;
    std::uint64_t last_heartbeat_ms = 0; // or the registration
    std::uint64_t expires_at_ms = 0;
    // The key (KCP hello key_id) of the session that registered it last; empty: kwik-cp's own
    // registration or one made in-process. kwik-cp refuses a server-role session of another
    // key that would replace, refresh or remove it (docs/KCP_SERVER.md section 4).
    std::string owner_key_id{};
};

// Milli-points per unit (see the formula above). All zero ranks by server_id alone.
struct ranking_weights {
    std::uint32_t per_latency_ms = 1000;
    std::uint32_t per_load_percent = 1000;
    std::uint32_t full_shortfall = 100'000;   // nothing of the desired rate available
    std::uint32_t per_loss_percent = 10'000;
    std::uint32_t per_region_position = 10'000;
    std::uint32_t outside_preferred = 100'000;
};

struct registry_config {
    std::uint32_t expiry_ms = 30'000;  // three missed 10-second heartbeats
    std::size_t max_results = 8;       // servers per discovery answer
    std::size_t max_servers = 100'000; // registrations beyond this are refused
    std::string self_server_id{};        // answers a capability query with no server_id
    ranking_weights weights{};
};

// A KCP ServerRegistration made into a server_registration, checked as register_server checks it
// (so a bad one is refused before the registry changes). Errors name the field under `field`
// ("server_registration.server.address: missing", "register_server.server_id: ...").
result<server_registration> registration_from_proto(const kcp::v3::ServerRegistration& m,
                                                    std::string_view field = "server_registration");
// The ServerRegistration message of a registration (what registration_from_proto reads back).
kcp::v3::ServerRegistration registration_to_proto(const server_registration& r);
// A KCP ServerHeartbeat's refreshed fields; unset ones stay unset.
server_status status_from_heartbeat(const kcp::v3::ServerHeartbeat& m);

// Where the client of a discovery request is, as the caller knows it (its session's address
// looked up, a client directory); the request itself does not say.
struct client_location {
    std::string country{}; // empty: unknown, so require_same_country matches nothing
};

// One server's cost split into its terms (milli-points), for the ranking and for the reason
// sentence that explains it.
struct ranking_cost {
    std::uint64_t latency = 0;
    std::uint64_t load = 0;
    std::uint64_t shortfall = 0;
    std::uint64_t loss = 0;
    std::uint64_t region = 0;
    std::uint64_t total() const noexcept { return latency + load + shortfall + loss + region; }
};

class server_registry {
public:
    // Up to this many distinct capability names across all registered servers (a bitmask each).
    static constexpr std::size_t max_capability_names = 128;

    explicit server_registry(registry_config config = {});

    // Adds a server or replaces what the registry knows of it (owner_key_id with it); counts as
    // a heartbeat. Errors name the field ("server_registration.server.current_load_percent: 140
    // is above 100").
    result<void> register_server(server_registration registration, std::uint64_t now_ms,
                                 std::string owner_key_id = {});
    // Refreshes the expiry (and the fields status sets); an error for an unknown server.
    result<void> heartbeat(std::string_view server_id, std::uint64_t now_ms, const server_status& status = {});
    bool remove(std::string_view server_id);
    // Removes the servers whose last heartbeat is expiry_ms old or older; returns their ids.
    std::vector<std::string> sweep(std::uint64_t now_ms);

    const registered_server* find(std::string_view server_id) const;
    std::size_t size() const noexcept { return _servers.size(); }
    // Every registration, expired ones not swept yet included, in no particular order.
    const std::vector<registered_server>& entries() const noexcept { return _servers; }
    const registry_config& config() const noexcept { return _config; }

    // The caller sets nothing else in the answer; discovery answers have no in_reply_to.
    kcp::v3::ServerDiscoveryResponse discover(const kcp::v3::ServerDiscoveryRequest& request, std::uint64_t now_ms,
                                              const client_location& client = {});
    // The caller sets in_reply_to. Unknown or expired server: error_reason says so.
    kcp::v3::ServerCapabilityResponse capabilities(const kcp::v3::ServerCapabilityQuery& query,
                                                   std::uint64_t now_ms) const;

    // The cost that discover() ranks `server_id` by for this request (nullopt: unknown server);
    // filters are not applied. For tests and for explaining an answer.
    std::optional<ranking_cost> cost_of(std::string_view server_id, const kcp::v3::ServerDiscoveryRequest& request);

private:
    // Interned names (capabilities, countries, regions, datacenters) with reference counts, so
    // that discovery compares small integers, never strings. Id 0 is the empty name.
    class name_table {
    public:
        explicit name_table(std::size_t capacity) : _capacity(capacity) {}
        std::optional<std::uint32_t> acquire(std::string_view name); // nullopt: table full
        void release(std::uint32_t id);
        std::optional<std::uint32_t> find(std::string_view name) const;
        const std::string& name(std::uint32_t id) const { return _names[id - 1]; }
        std::size_t id_limit() const noexcept { return _names.size() + 1; }

    private:
        std::size_t _capacity;
        std::vector<std::string> _names; // id - 1 -> name
        std::vector<std::uint32_t> _refs;
        std::vector<std::uint32_t> _free;
        std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> _ids;
    };

    using capability_bits = std::array<std::uint64_t, max_capability_names / 64>;

    // What discovery reads of each server, packed and contiguous (56 bytes), in the same slot
    // order as _servers.
    struct server_summary {
        std::uint64_t expires_at_ms;
        capability_bits capabilities; // bit (id - 1) of the capability name table
        std::uint32_t available_bandwidth_mbps;
        std::uint32_t latency_ms;
        std::uint32_t load_percent;
        std::uint32_t loss_ppm; // unknown_loss when unknown
        std::uint32_t country;
        std::uint32_t region;
        std::uint32_t datacenter;
    };
    static_assert(sizeof(server_summary) == 56, "10,000 summaries stay within 560 KiB, in L2");
    static constexpr std::uint32_t unknown_loss = UINT32_MAX;

    // A request made into ids and numbers once, before the scan.
    struct prepared_request;
    struct candidate {
        std::uint64_t cost;
        std::uint32_t slot;
    };

    static bool matches(const server_summary& s, const prepared_request& p, std::uint64_t now_ms) noexcept;
    std::string explain_none(const prepared_request& p, std::uint64_t now_ms) const;
    bool ranks_before(const candidate& a, const candidate& b) const;
    ranking_cost cost(const server_summary& s, const prepared_request& p) const noexcept;
    std::optional<std::string> prepare(const kcp::v3::ServerDiscoveryRequest& request, const client_location& client,
                                       prepared_request& p);
    result<server_summary> summarize(const server_registration& r, std::uint64_t expires_at_ms);
    void release_names(const server_summary& s);
    static void apply_status(server_summary& s, available_server& server, std::optional<float>& loss,
                             const server_status& status);
    std::string explain_first(const kcp::v3::ServerDiscoveryRequest& request, const prepared_request& p,
                              std::size_t matched) const;

    registry_config _config;
    std::vector<server_summary> _summaries;   // slot -> what discovery reads
    std::vector<registered_server> _servers;  // slot -> the rest
    std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> _slots; // server_id -> slot
    name_table _capability_names{max_capability_names};
    name_table _places{SIZE_MAX}; // countries, regions and datacenters: one table, ids are distinct per string
    // Scratch reused by discover(), so a query allocates only its answer.
    std::vector<std::uint32_t> _passing; // slots that pass the filters
    std::vector<candidate> _heap;
    std::vector<std::uint32_t> _region_position;
};

} // namespace kwik::cp
