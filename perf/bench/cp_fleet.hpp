// The fleet the kwik-cp benchmarks discover over: `servers` registrations with varied
// capabilities, regions, loads and loss rates, and 64 typical ServerDiscoveryRequests, from a
// fixed seed so every run (cp_bench in-process, cp_wire_bench over the wire) asks the same
// questions of the same servers. Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "controlplane/server/registry.hpp"

namespace kwik::perf {

struct cp_fleet {
    std::vector<cp::server_registration> registrations;
    std::vector<kcp::v3::ServerDiscoveryRequest> requests; // cycled by the benchmarks
};

inline const std::vector<std::string>& fleet_capability_names() {
    static const std::vector<std::string> names = {"multipath", "encryption", "compression", "fec", "ipv6", "jumbo"};
    return names;
}

inline const std::vector<std::string>& fleet_regions() {
    static const std::vector<std::string> names = {"eu-central", "eu-west", "us-east", "us-west",
                                                   "ap-north",   "ap-south", "sa-east", "af-south"};
    return names;
}

inline cp_fleet make_cp_fleet(std::size_t servers) {
    static const std::vector<std::string> countries = {"DE", "FR", "US", "JP", "BR"};
    const auto& capability_names = fleet_capability_names();
    const auto& regions = fleet_regions();
    cp_fleet f;
    std::mt19937 rng(7707);
    const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
        return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
    };
    for (std::size_t i = 0; i < servers; ++i) {
        cp::server_registration r;
        r.server_id = "srv-" + std::to_string(i);
        r.server.set_address("198.51.100." + std::to_string(i % 250) + ":" + std::to_string(7707 + i));
        r.server.set_tls_pubkey_hash_sha256(std::string(32, static_cast<char>(i)));
        r.server.set_latency_ms(pick(1, 300));
        r.server.set_current_load_percent(pick(0, 100));
        r.server.set_available_bandwidth_mbps(pick(0, 10'000));
        for (const std::string& c : capability_names) {
            if (pick(0, 2) != 0) {
                r.server.add_capabilities(c);
            }
        }
        auto* loc = r.server.mutable_location();
        loc->set_country(countries[pick(0, 4)]);
        loc->set_region(regions[pick(0, 7)]);
        loc->set_datacenter("dc" + std::to_string(pick(0, 199)));
        r.server.mutable_metrics()->set_active_connections(pick(0, 5000));
        if (pick(0, 9) >= 3) {
            r.packet_loss_rate = static_cast<float>(pick(0, 20'000)) / 1e6F;
        }
        f.registrations.push_back(std::move(r));
    }
    // What a client asks: one or two capabilities, a rate it wants, a latency bound, its regions
    // in order; a quarter ask for redundancy.
    for (int q = 0; q < 64; ++q) {
        kcp::v3::ServerDiscoveryRequest r;
        r.set_client_id("client-" + std::to_string(q));
        r.add_required_capabilities(capability_names[pick(0, 1)]);
        if (pick(0, 1) != 0) {
            r.add_required_capabilities(capability_names[pick(2, 5)]);
        }
        r.set_desired_bandwidth_mbps(pick(100, 5000));
        r.mutable_qos_requirements()->set_max_latency_ms(pick(50, 300));
        r.mutable_qos_requirements()->set_max_packet_loss_rate(0.01F);
        r.mutable_qos_requirements()->set_require_redundancy(q % 4 == 0);
        r.mutable_geo_preference()->add_preferred_regions(regions[pick(0, 3)]);
        r.mutable_geo_preference()->add_preferred_regions(regions[pick(4, 7)]);
        f.requests.push_back(std::move(r));
    }
    return f;
}

} // namespace kwik::perf
