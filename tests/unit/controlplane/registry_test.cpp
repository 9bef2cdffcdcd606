// kwik-cp's server registry (controlplane/server/registry.*): registration, heartbeats and expiry,
// field checks, capability-name accounting, discovery filters (table-driven), the ranking on a
// crafted set with its order worked out by hand, redundancy, top-N, capability queries, and
// 10,000 servers against a brute-force reference that filters, costs and fully sorts them itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "controlplane/server/registry.hpp"

namespace kwik::cp {
namespace {

using kcp::v3::ServerCapabilityQuery;
using kcp::v3::ServerDiscoveryRequest;
using kcp::v3::ServerDiscoveryResponse;

constexpr std::uint64_t t0 = 1'700'000'000'000;

struct server_spec {
    std::string id{};
    std::uint32_t latency_ms = 10;
    std::uint32_t load = 0;
    std::uint32_t bandwidth = 1000;
    std::vector<std::string> capabilities{};
    std::string country{};
    std::string region{};
    std::string datacenter{};
    std::optional<float> loss{};
};

server_registration registration(const server_spec& s) {
    server_registration r;
    r.server_id = s.id;
    r.server.set_address(s.id + ".example.net:7707");
    r.server.set_tls_pubkey_hash_sha256(std::string(32, 'h'));
    r.server.set_latency_ms(s.latency_ms);
    r.server.set_current_load_percent(s.load);
    r.server.set_available_bandwidth_mbps(s.bandwidth);
    for (const std::string& c : s.capabilities) {
        r.server.add_capabilities(c);
    }
    r.server.mutable_location()->set_country(s.country);
    r.server.mutable_location()->set_region(s.region);
    r.server.mutable_location()->set_datacenter(s.datacenter);
    r.packet_loss_rate = s.loss;
    return r;
}

void add(server_registry& reg, const server_spec& s, std::uint64_t now = t0) {
    const result<void> ok = reg.register_server(registration(s), now);
    ASSERT_TRUE(ok) << s.id << ": " << ok.message();
}

std::vector<std::string> ids(const ServerDiscoveryResponse& r) {
    std::vector<std::string> out;
    for (const auto& s : r.servers()) {
        out.push_back(s.address().substr(0, s.address().find('.')));
    }
    return out;
}

// ---------------------------------------------------------------- registration

TEST(Registry, RegistersHeartbeatsAndExpires) {
    server_registry reg({.expiry_ms = 30'000});
    add(reg, {.id = "s1", .latency_ms = 12, .capabilities = {"multipath"}});
    ASSERT_EQ(reg.size(), 1u);
    const registered_server* s = reg.find("s1");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->registered_at_ms, t0);
    EXPECT_EQ(s->expires_at_ms, t0 + 30'000);
    EXPECT_EQ(s->registration.server.latency_ms(), 12u);
    EXPECT_EQ(reg.find("s2"), nullptr);

    server_status st;
    st.current_load_percent = 70;
    st.latency_ms = 15;
    st.packet_loss_rate = 0.25F;
    st.metrics.emplace();
    st.metrics->set_active_connections(42);
    ASSERT_TRUE(reg.heartbeat("s1", t0 + 20'000, st));
    s = reg.find("s1");
    EXPECT_EQ(s->last_heartbeat_ms, t0 + 20'000);
    EXPECT_EQ(s->expires_at_ms, t0 + 50'000);
    EXPECT_EQ(s->registration.server.current_load_percent(), 70u);
    EXPECT_EQ(s->registration.server.latency_ms(), 15u);
    EXPECT_EQ(s->registration.server.available_bandwidth_mbps(), 1000u); // not in the status: kept
    EXPECT_EQ(s->registration.packet_loss_rate, 0.25F);
    EXPECT_EQ(s->registration.server.metrics().active_connections(), 42u);

    const result<void> unknown = reg.heartbeat("s9", t0, {});
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.message(), "heartbeat from unknown server_id \"s9\" (register first)");
    server_status bad;
    bad.current_load_percent = 101;
    EXPECT_EQ(reg.heartbeat("s1", t0, bad).message(), "server_status.current_load_percent: 101 is above 100");

    // Expired servers are left out of discovery before any sweep, and swept at their expiry.
    ServerDiscoveryRequest any;
    EXPECT_EQ(reg.discover(any, t0 + 49'999).servers_size(), 1);
    EXPECT_EQ(reg.discover(any, t0 + 50'000).servers_size(), 0);
    EXPECT_TRUE(reg.sweep(t0 + 49'999).empty());
    EXPECT_EQ(reg.sweep(t0 + 50'000), std::vector<std::string>{"s1"});
    EXPECT_EQ(reg.size(), 0u);
}

TEST(Registry, ReRegistrationReplacesAndRemoveKeepsTheOthers) {
    server_registry reg;
    for (const char* id : {"a", "b", "c", "d"}) {
        add(reg, {.id = id, .capabilities = {"cap-" + std::string(id)}, .region = std::string("r-") + id});
    }
    add(reg, {.id = "b", .latency_ms = 99, .capabilities = {"fec"}}, t0 + 5);
    EXPECT_EQ(reg.size(), 4u);
    EXPECT_EQ(reg.find("b")->registration.server.latency_ms(), 99u);
    EXPECT_EQ(reg.find("b")->last_heartbeat_ms, t0 + 5);

    EXPECT_TRUE(reg.remove("a"));
    EXPECT_FALSE(reg.remove("a"));
    EXPECT_EQ(reg.size(), 3u);
    for (const char* id : {"b", "c", "d"}) {
        ASSERT_NE(reg.find(id), nullptr) << id;
        EXPECT_EQ(reg.find(id)->registration.server_id, id);
    }
    // Names follow the servers: "cap-b" went with b's re-registration, "cap-a" with a.
    ServerDiscoveryRequest q;
    q.add_required_capabilities("cap-b");
    EXPECT_EQ(reg.discover(q, t0).recommendation_reason(),
              "No server matches: no registered server offers capability \"cap-b\".");
    q.set_required_capabilities(0, "fec");
    EXPECT_EQ(ids(reg.discover(q, t0)), std::vector<std::string>{"b"});
    q.set_required_capabilities(0, "cap-d");
    EXPECT_EQ(ids(reg.discover(q, t0)), std::vector<std::string>{"d"});
}

TEST(Registry, RecordsTheOwningKeyOfTheLastRegistration) {
    server_registry reg;
    add(reg, {.id = "self"});
    EXPECT_EQ(reg.find("self")->owner_key_id, "") << "in-process: no key";
    ASSERT_TRUE(reg.register_server(registration({.id = "e"}), t0, "key-1"));
    EXPECT_EQ(reg.find("e")->owner_key_id, "key-1");
    ASSERT_TRUE(reg.heartbeat("e", t0 + 1));
    EXPECT_EQ(reg.find("e")->owner_key_id, "key-1") << "a heartbeat keeps the owner";
    ASSERT_TRUE(reg.register_server(registration({.id = "e"}), t0 + 2, "op-key"));
    EXPECT_EQ(reg.find("e")->owner_key_id, "op-key") << "a replacement records its key";
}

struct bad_registration_case {
    const char* description;
    std::function<void(server_registration&)> change;
    const char* expected;
};

TEST(Registry, RefusesBadRegistrationsNamingTheField) {
    const std::vector<bad_registration_case> cases = {
        {"empty id", [](server_registration& r) { r.server_id.clear(); },
         "server_registration.server_id: expected 1 to 128 characters, got 0"},
        {"long id", [](server_registration& r) { r.server_id.assign(129, 'x'); },
         "server_registration.server_id: expected 1 to 128 characters, got 129"},
        {"no address", [](server_registration& r) { r.server.clear_address(); },
         "server_registration.server.address: empty"},
        {"short key hash", [](server_registration& r) { r.server.set_tls_pubkey_hash_sha256(std::string(31, 'h')); },
         "server_registration.server.tls_pubkey_hash_sha256: expected 32 bytes or none, got 31"},
        {"load above 100", [](server_registration& r) { r.server.set_current_load_percent(140); },
         "server_registration.server.current_load_percent: 140 is above 100"},
        {"loss above 1", [](server_registration& r) { r.packet_loss_rate = 1.5F; },
         "server_registration.packet_loss_rate: 1.500000 is not a fraction in [0, 1]"},
        {"loss not a number", [](server_registration& r) { r.packet_loss_rate = NAN; },
         "server_registration.packet_loss_rate: nan is not a fraction in [0, 1]"},
        {"empty capability", [](server_registration& r) { r.server.add_capabilities(""); },
         "server_registration.server.capabilities[1]: empty"},
        {"latitude", [](server_registration& r) { r.server.mutable_location()->set_latitude(91.0F); },
         "server_registration.server.location.latitude: 91.000000 is outside -90..90"},
        {"longitude", [](server_registration& r) { r.server.mutable_location()->set_longitude(-180.5F); },
         "server_registration.server.location.longitude: -180.500000 is outside -180..180"},
    };
    for (const bad_registration_case& c : cases) {
        server_registry reg;
        server_registration r = registration({.id = "s1", .capabilities = {"multipath"}});
        c.change(r);
        const result<void> ok = reg.register_server(r, t0);
        ASSERT_FALSE(ok) << c.description;
        EXPECT_EQ(ok.message(), c.expected) << c.description;
        EXPECT_EQ(reg.size(), 0u) << c.description;
    }
}

TEST(Registry, BoundsCapabilityNamesAndServers) {
    server_registry reg({.max_servers = 3});
    std::vector<std::string> many;
    for (std::size_t i = 0; i < server_registry::max_capability_names; ++i) {
        many.push_back("c" + std::to_string(i));
    }
    add(reg, {.id = "wide", .capabilities = many});
    const result<void> over = reg.register_server(registration({.id = "one-more", .capabilities = {"c5", "extra"}}), t0);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.message(), "server_registration.server.capabilities: \"extra\" would be the registry's 129th "
                              "distinct capability name (the limit is 128)");
    EXPECT_EQ(reg.find("one-more"), nullptr);
    // The failed registration took no reference: once "wide" is gone, all 128 names are free.
    EXPECT_TRUE(reg.remove("wide"));
    many[0] = "extra";
    add(reg, {.id = "wide2", .capabilities = many});
    ServerDiscoveryRequest q;
    q.add_required_capabilities("c5");
    EXPECT_EQ(ids(reg.discover(q, t0)), std::vector<std::string>{"wide2"});

    add(reg, {.id = "s2"});
    add(reg, {.id = "s3"});
    const result<void> full = reg.register_server(registration({.id = "s4"}), t0);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.message(), "server_registration.server_id: \"s4\" not registered: the registry holds 3 servers, its limit");
    EXPECT_TRUE(reg.register_server(registration({.id = "s3", .latency_ms = 1}), t0)); // an update still fits
}

// ---------------------------------------------------------------- filters

struct filter_case {
    const char* description;
    std::function<void(ServerDiscoveryRequest&)> request;
    std::string client_country{};
    std::set<std::string> expected{};
    const char* reason_part; // when nothing matches
};

TEST(RegistryDiscovery, EachFilterKeepsExactlyTheServersThatMeetIt) {
    server_registry reg({.max_results = 100});
    add(reg, {"s1", 10, 0, 1000, {"multipath", "encryption"}, "DE", "eu-central", "fra1", 0.001F});
    add(reg, {"s2", 50, 0, 200, {"multipath"}, "FR", "eu-west", "par1", std::nullopt});
    add(reg, {"s3", 120, 0, 5000, {"multipath", "encryption", "fec"}, "US", "us-east", "iad1", 0.05F});
    add(reg, {"s4", 30, 0, 800, {"encryption"}, "DE", "eu-central", "ber1", 0.0F});

    const std::vector<filter_case> cases = {
        {"nothing asked", [](ServerDiscoveryRequest&) {}, "", {"s1", "s2", "s3", "s4"}, ""},
        {"one capability", [](ServerDiscoveryRequest& r) { r.add_required_capabilities("encryption"); }, "",
         {"s1", "s3", "s4"}, ""},
        {"all capabilities",
         [](ServerDiscoveryRequest& r) {
             r.add_required_capabilities("encryption");
             r.add_required_capabilities("fec");
         },
         "", {"s3"}, ""},
        {"capability nobody has", [](ServerDiscoveryRequest& r) { r.add_required_capabilities("teleport"); }, "", {},
         "no registered server offers capability \"teleport\""},
        {"min bandwidth", [](ServerDiscoveryRequest& r) { r.mutable_qos_requirements()->set_min_bandwidth_mbps(900); },
         "", {"s1", "s3"}, ""},
        {"min bandwidth is inclusive",
         [](ServerDiscoveryRequest& r) { r.mutable_qos_requirements()->set_min_bandwidth_mbps(800); }, "",
         {"s1", "s3", "s4"}, ""},
        {"qos max latency", [](ServerDiscoveryRequest& r) { r.mutable_qos_requirements()->set_max_latency_ms(30); },
         "", {"s1", "s4"}, ""},
        {"geo max latency", [](ServerDiscoveryRequest& r) { r.mutable_geo_preference()->set_max_latency_ms(60); }, "",
         {"s1", "s2", "s4"}, ""},
        {"the smaller latency limit wins",
         [](ServerDiscoveryRequest& r) {
             r.mutable_geo_preference()->set_max_latency_ms(100);
             r.mutable_qos_requirements()->set_max_latency_ms(20);
         },
         "", {"s1"}, ""},
        {"max loss; unknown loss passes",
         [](ServerDiscoveryRequest& r) { r.mutable_qos_requirements()->set_max_packet_loss_rate(0.01F); }, "",
         {"s1", "s2", "s4"}, ""},
        {"max loss is inclusive",
         [](ServerDiscoveryRequest& r) { r.mutable_qos_requirements()->set_max_packet_loss_rate(0.001F); }, "",
         {"s1", "s2", "s4"}, ""},
        {"same country", [](ServerDiscoveryRequest& r) { r.mutable_geo_preference()->set_require_same_country(true); },
         "DE", {"s1", "s4"}, ""},
        {"same country, client's unknown",
         [](ServerDiscoveryRequest& r) { r.mutable_geo_preference()->set_require_same_country(true); }, "", {},
         "the client's country is unknown"},
        {"same country, none there",
         [](ServerDiscoveryRequest& r) { r.mutable_geo_preference()->set_require_same_country(true); }, "JP", {},
         "no registered server is in the client's country \"JP\""},
        {"preferred regions rank but do not filter",
         [](ServerDiscoveryRequest& r) { r.mutable_geo_preference()->add_preferred_regions("us-east"); }, "",
         {"s1", "s2", "s3", "s4"}, ""},
        {"everything at once",
         [](ServerDiscoveryRequest& r) {
             r.add_required_capabilities("encryption");
             r.mutable_qos_requirements()->set_min_bandwidth_mbps(500);
             r.mutable_qos_requirements()->set_max_latency_ms(100);
             r.mutable_geo_preference()->set_require_same_country(true);
         },
         "DE", {"s1", "s4"}, ""},
        {"nothing left: the reason counts each filter",
         [](ServerDiscoveryRequest& r) {
             r.add_required_capabilities("multipath");
             r.mutable_qos_requirements()->set_min_bandwidth_mbps(300);
             r.mutable_qos_requirements()->set_max_latency_ms(100);
             r.mutable_qos_requirements()->set_max_packet_loss_rate(0.0001F);
         },
         "", {},
         "No server matches: of 4 registered, 1 lack a required capability, 1 have less than 300 Mbit/s "
         "available, 1 are above 100 ms latency, 1 are above the packet loss limit."},
    };
    for (const filter_case& c : cases) {
        ServerDiscoveryRequest r;
        c.request(r);
        const ServerDiscoveryResponse answer = reg.discover(r, t0, {c.client_country});
        const std::vector<std::string> got = ids(answer);
        EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), c.expected) << c.description;
        EXPECT_EQ(got.size(), c.expected.size()) << c.description;
        if (c.expected.empty()) {
            EXPECT_NE(answer.recommendation_reason().find(c.reason_part), std::string::npos)
                << c.description << ": " << answer.recommendation_reason();
            EXPECT_EQ(answer.total_available_bandwidth_mbps(), 0u);
        } else {
            EXPECT_NE(answer.recommendation_reason().find("ranks first of " + std::to_string(got.size())),
                      std::string::npos)
                << c.description << ": " << answer.recommendation_reason();
        }
    }
}

// ---------------------------------------------------------------- ranking

TEST(RegistryDiscovery, RanksACraftedSetInTheOrderWorkedOutByHand) {
    server_registry reg;
    // Request: desired 1000 Mbit/s, preferred regions eu-west then eu-central. Costs in points
    // (latency + load + shortfall + loss + region), default weights:
    //   srv-a: 10 + 50 +   0 +  0 +   0 =  60
    //   srv-b: 30 +  0 +  50 +  0 +  10 =  90   (500 of 1000: half missing; 2nd region)
    //   srv-c:  5 + 10 +   0 +  0 + 100 = 115   (outside the preferred regions)
    //   srv-d: 20 + 20 +   0 + 20 +   0 =  60   (2 % loss); ties with srv-a: srv-a first by id
    //   srv-e: 40 + 10 +  75 +  0 +   0 = 125   (250 of 1000)
    //   srv-f:  1 +100 + 100 +  0 +  10 = 211   (nothing available, full)
    add(reg, {"srv-f", 1, 100, 0, {}, "DE", "eu-central", "fra1", std::nullopt});
    add(reg, {"srv-e", 40, 10, 250, {}, "FR", "eu-west", "par1", std::nullopt});
    add(reg, {"srv-d", 20, 20, 1000, {}, "FR", "eu-west", "par2", 0.02F});
    add(reg, {"srv-c", 5, 10, 2000, {}, "US", "us-east", "iad1", std::nullopt});
    add(reg, {"srv-b", 30, 0, 500, {}, "DE", "eu-central", "fra2", std::nullopt});
    add(reg, {"srv-a", 10, 50, 1000, {}, "FR", "eu-west", "par1", std::nullopt});

    ServerDiscoveryRequest r;
    r.set_desired_bandwidth_mbps(1000);
    r.mutable_geo_preference()->add_preferred_regions("eu-west");
    r.mutable_geo_preference()->add_preferred_regions("eu-central");
    const ServerDiscoveryResponse answer = reg.discover(r, t0);
    EXPECT_EQ(ids(answer), (std::vector<std::string>{"srv-a", "srv-d", "srv-b", "srv-c", "srv-e", "srv-f"}));
    EXPECT_EQ(answer.total_available_bandwidth_mbps(), 1000u + 1000 + 500 + 2000 + 250 + 0);
    EXPECT_EQ(answer.recommendation_reason(),
              "srv-a ranks first of 6 matching servers: 10 ms latency, 50 % load, 1000 of the 1000 Mbit/s desired "
              "available, in the 1st preferred region eu-west; cost 60.0 points against 60.0 for srv-d "
              "(lower is better).");
    // What discovery answers is what was registered.
    EXPECT_EQ(answer.servers(0).address(), "srv-a.example.net:7707");
    EXPECT_EQ(answer.servers(0).tls_pubkey_hash_sha256(), std::string(32, 'h'));
    EXPECT_EQ(answer.servers(0).location().datacenter(), "par1");

    const std::optional<ranking_cost> b = reg.cost_of("srv-b", r);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->latency, 30'000u);
    EXPECT_EQ(b->load, 0u);
    EXPECT_EQ(b->shortfall, 50'000u);
    EXPECT_EQ(b->loss, 0u);
    EXPECT_EQ(b->region, 10'000u);
    EXPECT_EQ(reg.cost_of("srv-d", r)->loss, 20'000u);
    EXPECT_EQ(reg.cost_of("srv-c", r)->region, 100'000u);
    EXPECT_FALSE(reg.cost_of("srv-z", r));

    // Without a desired rate or regions only latency, load and loss count:
    //   f 101, e 50, d 60, c 15, b 30, a 60  ->  c, b, e, a, d, f
    const ServerDiscoveryResponse plain = reg.discover(ServerDiscoveryRequest{}, t0);
    EXPECT_EQ(ids(plain), (std::vector<std::string>{"srv-c", "srv-b", "srv-e", "srv-a", "srv-d", "srv-f"}));
    EXPECT_EQ(plain.recommendation_reason(),
              "srv-c ranks first of 6 matching servers: 5 ms latency, 10 % load, 2000 Mbit/s available; "
              "cost 15.0 points against 30.0 for srv-b (lower is better).");
}

TEST(RegistryDiscovery, WeightsAreConfigurable) {
    // Load counts ten times as much: srv-a (10 ms, 50 %) = 510, srv-b (30 ms, 0 %) = 30.
    ranking_weights w;
    w.per_load_percent = 10'000;
    server_registry reg({.weights = w});
    add(reg, {.id = "srv-a", .latency_ms = 10, .load = 50});
    add(reg, {.id = "srv-b", .latency_ms = 30, .load = 0});
    EXPECT_EQ(ids(reg.discover(ServerDiscoveryRequest{}, t0)), (std::vector<std::string>{"srv-b", "srv-a"}));
}

TEST(RegistryDiscovery, AnswersTheTopN) {
    server_registry reg; // max_results 8
    for (std::uint32_t i = 0; i < 20; ++i) {
        add(reg, {.id = "s" + std::to_string(100 + i), .latency_ms = 40 - i, .bandwidth = 100 + i});
    }
    const ServerDiscoveryResponse answer = reg.discover(ServerDiscoveryRequest{}, t0);
    EXPECT_EQ(ids(answer), (std::vector<std::string>{"s119", "s118", "s117", "s116", "s115", "s114", "s113", "s112"}));
    EXPECT_EQ(answer.total_available_bandwidth_mbps(), 119u + 118 + 117 + 116 + 115 + 114 + 113 + 112);
    EXPECT_EQ(answer.recommendation_reason().rfind("s119 ranks first of 20 matching servers", 0), 0u);
}

// ---------------------------------------------------------------- redundancy

ServerDiscoveryRequest redundant() {
    ServerDiscoveryRequest r;
    r.mutable_qos_requirements()->set_require_redundancy(true);
    return r;
}

TEST(RegistryRedundancy, BringsInTheBestServerOfAnotherDatacenter) {
    server_registry reg({.max_results = 3});
    add(reg, {.id = "r1", .latency_ms = 1, .datacenter = "X"});
    add(reg, {.id = "r2", .latency_ms = 2, .datacenter = "X"});
    add(reg, {.id = "r3", .latency_ms = 3, .datacenter = "X"});
    add(reg, {.id = "r4", .latency_ms = 10, .datacenter = "Y"});
    add(reg, {.id = "r5", .latency_ms = 12, .datacenter = "Z"});
    add(reg, {.id = "r6", .latency_ms = 4});
    EXPECT_EQ(ids(reg.discover(ServerDiscoveryRequest{}, t0)), (std::vector<std::string>{"r1", "r2", "r3"}));
    const ServerDiscoveryResponse answer = reg.discover(redundant(), t0);
    EXPECT_EQ(ids(answer), (std::vector<std::string>{"r1", "r2", "r4"}));
    const std::string& why = answer.recommendation_reason();
    EXPECT_NE(why.find(" Redundancy: r1 (datacenter X) and r4 (datacenter Y) are in different datacenters."),
              std::string::npos)
        << why;
}

TEST(RegistryRedundancy, AlreadyDiverseAnswersAreKept) {
    server_registry reg({.max_results = 3});
    add(reg, {.id = "r1", .latency_ms = 1, .datacenter = "X"});
    add(reg, {.id = "r2", .latency_ms = 2, .datacenter = "Y"});
    add(reg, {.id = "r3", .latency_ms = 3, .datacenter = "X"});
    add(reg, {.id = "r4", .latency_ms = 4, .datacenter = "Z"});
    const ServerDiscoveryResponse answer = reg.discover(redundant(), t0);
    EXPECT_EQ(ids(answer), (std::vector<std::string>{"r1", "r2", "r3"}));
    EXPECT_NE(answer.recommendation_reason().find("r1 (datacenter X) and r2 (datacenter Y)"), std::string::npos);
}

TEST(RegistryRedundancy, ServersWithoutADatacenterDoNotCount) {
    server_registry reg({.max_results = 2});
    add(reg, {.id = "u1", .latency_ms = 0});
    add(reg, {.id = "u2", .latency_ms = 0});
    add(reg, {.id = "r1", .latency_ms = 5, .datacenter = "X"});
    add(reg, {.id = "r2", .latency_ms = 6, .datacenter = "X"});
    add(reg, {.id = "r3", .latency_ms = 9, .datacenter = "Y"});
    EXPECT_EQ(ids(reg.discover(ServerDiscoveryRequest{}, t0)), (std::vector<std::string>{"u1", "u2"}));
    EXPECT_EQ(ids(reg.discover(redundant(), t0)), (std::vector<std::string>{"r1", "r3"}));
}

TEST(RegistryRedundancy, OneResultIsRaisedToTwo) {
    server_registry reg({.max_results = 1});
    add(reg, {.id = "r1", .latency_ms = 1, .datacenter = "X"});
    add(reg, {.id = "r2", .latency_ms = 2, .datacenter = "Y"});
    EXPECT_EQ(ids(reg.discover(ServerDiscoveryRequest{}, t0)), std::vector<std::string>{"r1"});
    EXPECT_EQ(ids(reg.discover(redundant(), t0)), (std::vector<std::string>{"r1", "r2"}));
}

struct unmet_case {
    const char* description;
    std::vector<server_spec> servers;
    const char* note;
};

TEST(RegistryRedundancy, SaysWhenItCannotBeMet) {
    const std::vector<unmet_case> cases = {
        {"one datacenter",
         {{.id = "r1", .datacenter = "fra1"}, {.id = "r2", .datacenter = "fra1"}, {.id = "r3"}},
         " Redundancy cannot be met: every matching server that names its datacenter is in fra1."},
        {"one server", {{.id = "r1", .datacenter = "fra1"}}, " Redundancy cannot be met: only one server matches."},
        {"no datacenters", {{.id = "r1"}, {.id = "r2"}},
         " Redundancy cannot be met: no matching server names its datacenter."},
    };
    for (const unmet_case& c : cases) {
        server_registry reg;
        for (const server_spec& s : c.servers) {
            add(reg, s);
        }
        const ServerDiscoveryResponse answer = reg.discover(redundant(), t0);
        EXPECT_EQ(answer.servers_size(), static_cast<int>(c.servers.size())) << c.description;
        const std::string& why = answer.recommendation_reason();
        ASSERT_GE(why.size(), std::string_view(c.note).size());
        EXPECT_EQ(why.substr(why.size() - std::string_view(c.note).size()), c.note) << c.description;
    }
}

// ---------------------------------------------------------------- capability queries

TEST(RegistryCapabilities, AnswersForARegisteredServer) {
    server_registry reg({.expiry_ms = 30'000, .self_server_id = "me"});
    server_registration r = registration({.id = "s1", .bandwidth = 400, .capabilities = {"multipath", "encryption"}});
    r.max_paths_per_connection = 16;
    r.versions = {{3, 1}, {3, 0}};
    r.server.mutable_metrics()->set_uptime_seconds(3600);
    ASSERT_TRUE(reg.register_server(r, t0));
    add(reg, {.id = "me", .capabilities = {"fec"}});

    ServerCapabilityQuery q;
    q.set_server_id("s1");
    kcp::v3::ServerCapabilityResponse a = reg.capabilities(q, t0);
    EXPECT_TRUE(a.error_reason().empty()) << a.error_reason();
    EXPECT_EQ(a.server_id(), "s1");
    ASSERT_EQ(a.capabilities_size(), 2);
    EXPECT_EQ(a.capabilities(1), "encryption");
    EXPECT_EQ(a.unsupported_capabilities_size(), 0);
    ASSERT_EQ(a.supported_versions_size(), 2);
    EXPECT_EQ(a.supported_versions(0).minor(), 1u);
    ASSERT_EQ(a.aead_algorithms_size(), 1);
    EXPECT_EQ(a.aead_algorithms(0), kcp::v3::AEAD_AES_256_GCM);
    EXPECT_EQ(a.max_paths_per_connection(), 16u);
    EXPECT_EQ(a.available_bandwidth_mbps(), 400u);
    EXPECT_FALSE(a.has_metrics());

    q.add_capabilities("encryption");
    q.add_capabilities("fec");
    q.set_include_metrics(true);
    a = reg.capabilities(q, t0);
    EXPECT_EQ(std::vector<std::string>(a.capabilities().begin(), a.capabilities().end()),
              std::vector<std::string>{"encryption"});
    EXPECT_EQ(std::vector<std::string>(a.unsupported_capabilities().begin(), a.unsupported_capabilities().end()),
              std::vector<std::string>{"fec"});
    EXPECT_EQ(a.metrics().uptime_seconds(), 3600u);

    q.clear_server_id(); // the registry's own server
    q.clear_capabilities();
    a = reg.capabilities(q, t0);
    EXPECT_EQ(a.server_id(), "me");
    EXPECT_EQ(a.capabilities(0), "fec");
}

TEST(RegistryCapabilities, UnknownEmptyAndExpiredServersGetAReason) {
    server_registry reg({.expiry_ms = 30'000});
    add(reg, {.id = "s1"});
    ServerCapabilityQuery q;
    EXPECT_EQ(reg.capabilities(q, t0).error_reason(),
              "ServerCapabilityQuery.server_id is empty and this registry is no server itself");
    q.set_server_id("s9");
    EXPECT_EQ(reg.capabilities(q, t0).error_reason(), "unknown server_id \"s9\"");
    q.set_server_id("s1");
    const auto a = reg.capabilities(q, t0 + 31'000);
    EXPECT_EQ(a.error_reason(), "server \"s1\" missed its heartbeats: the last was 31000 ms ago (expiry 30000 ms)");
    EXPECT_EQ(a.capabilities_size(), 0);
}

// ---------------------------------------------------------------- 10,000 servers

// The documented formula, written out again from registry.hpp, and a full sort.
std::vector<std::string> reference_ranking(const std::vector<server_spec>& servers, const std::vector<bool>& live,
                                           const ServerDiscoveryRequest& r, const std::string& client_country,
                                           std::size_t n) {
    const auto ppm = [](float rate) { return static_cast<std::uint64_t>(std::lround(static_cast<double>(rate) * 1e6)); };
    std::uint32_t max_latency = UINT32_MAX;
    for (const std::uint32_t l : {r.qos_requirements().max_latency_ms(), r.geo_preference().max_latency_ms()}) {
        if (l != 0) {
            max_latency = std::min(max_latency, l);
        }
    }
    std::vector<std::pair<std::uint64_t, std::string>> ranked;
    for (std::size_t i = 0; i < servers.size(); ++i) {
        const server_spec& s = servers[i];
        if (!live[i]) {
            continue;
        }
        bool ok = s.bandwidth >= r.qos_requirements().min_bandwidth_mbps() && s.latency_ms <= max_latency;
        for (const std::string& c : r.required_capabilities()) {
            ok &= std::find(s.capabilities.begin(), s.capabilities.end(), c) != s.capabilities.end();
        }
        if (s.loss && r.qos_requirements().max_packet_loss_rate() > 0) {
            ok &= ppm(*s.loss) <= ppm(r.qos_requirements().max_packet_loss_rate());
        }
        if (r.geo_preference().require_same_country()) {
            ok &= s.country == client_country;
        }
        if (!ok) {
            continue;
        }
        std::uint64_t cost = 1000ull * s.latency_ms + 1000ull * s.load;
        if (const std::uint64_t want = r.desired_bandwidth_mbps(); want != 0) {
            cost += 100'000 * (want - std::min<std::uint64_t>(s.bandwidth, want)) / want;
        }
        if (s.loss) {
            cost += 10'000 * ppm(*s.loss) / 10'000;
        }
        const auto& regions = r.geo_preference().preferred_regions();
        if (!regions.empty()) {
            const auto at = std::find(regions.begin(), regions.end(), s.region);
            cost += at == regions.end() ? 100'000 : 10'000 * static_cast<std::uint64_t>(at - regions.begin());
        }
        ranked.emplace_back(cost, s.id);
    }
    std::sort(ranked.begin(), ranked.end());
    std::vector<std::string> out;
    for (std::size_t i = 0; i < std::min(n, ranked.size()); ++i) {
        out.push_back(ranked[i].second);
    }
    return out;
}

TEST(RegistryScale, TenThousandServersRankAsTheBruteForceReference) {
    std::mt19937 rng(20261121);
    const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
        return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
    };
    const std::vector<std::string> caps = {"multipath", "encryption", "compression", "fec", "ipv6", "jumbo"};
    const std::vector<std::string> countries = {"DE", "FR", "US", "JP", "BR"};
    const std::vector<std::string> regions = {"eu-central", "eu-west", "us-east", "us-west",
                                              "ap-north", "ap-south", "sa-east", "af-south"};
    const auto random_server = [&](std::size_t i) {
        server_spec s;
        s.id = "srv-" + std::to_string(i);
        s.latency_ms = pick(1, 300);
        s.load = pick(0, 100);
        s.bandwidth = pick(0, 10'000);
        for (const std::string& c : caps) {
            if (pick(0, 2) != 0) {
                s.capabilities.push_back(c);
            }
        }
        s.country = countries[pick(0, 4)];
        s.region = regions[pick(0, 7)];
        s.datacenter = "dc" + std::to_string(pick(0, 49));
        if (pick(0, 9) >= 3) {
            s.loss = static_cast<float>(pick(0, 100'000)) / 1e6F;
        }
        return s;
    };

    server_registry reg({.expiry_ms = 30'000, .max_results = 8});
    std::vector<server_spec> servers;
    std::vector<bool> live;
    for (std::size_t i = 0; i < 10'000; ++i) {
        servers.push_back(random_server(i));
        // A tenth registered early enough to have expired by the queries at t0 + 20 s.
        const std::uint64_t at = i % 10 == 0 ? t0 - 15'000 : t0;
        add(reg, servers.back(), at);
        live.push_back(i % 10 != 0);
    }
    // Churn: remove some, re-register others with new values (slots move, names are re-counted).
    for (std::size_t i = 1; i < 10'000; i += 37) {
        ASSERT_TRUE(reg.remove(servers[i].id));
        live[i] = false;
    }
    for (std::size_t i = 2; i < 10'000; i += 53) {
        servers[i] = random_server(i);
        add(reg, servers[i], t0);
        live[i] = true;
    }
    EXPECT_EQ(reg.size(), 10'000u - (10'000 / 37 + 1) + static_cast<std::size_t>(std::count_if(
                                                             servers.begin(), servers.end(), [&](const server_spec& s) {
                                                                 const std::size_t i = std::stoul(s.id.substr(4));
                                                                 return (i - 1) % 37 == 0 && (i - 2) % 53 == 0;
                                                             })));

    for (int q = 0; q < 60; ++q) {
        ServerDiscoveryRequest r;
        for (const std::string& c : caps) {
            if (pick(0, 3) == 0) {
                r.add_required_capabilities(c);
            }
        }
        if (pick(0, 1) != 0) {
            r.set_desired_bandwidth_mbps(pick(1, 20'000));
        }
        auto* qos = r.mutable_qos_requirements();
        if (pick(0, 2) == 0) {
            qos->set_min_bandwidth_mbps(pick(0, 9'000));
        }
        if (pick(0, 2) == 0) {
            qos->set_max_latency_ms(pick(5, 300));
        }
        if (pick(0, 2) == 0) {
            qos->set_max_packet_loss_rate(static_cast<float>(pick(1, 100'000)) / 1e6F);
        }
        auto* geo = r.mutable_geo_preference();
        for (std::uint32_t k = pick(0, 3); k > 0; --k) {
            geo->add_preferred_regions(regions[pick(0, 7)]);
        }
        if (pick(0, 3) == 0) {
            geo->set_max_latency_ms(pick(5, 300));
        }
        std::string country;
        if (pick(0, 3) == 0) {
            geo->set_require_same_country(true);
            country = countries[pick(0, 4)];
        }
        const ServerDiscoveryResponse answer = reg.discover(r, t0 + 20'000, {country});
        const std::vector<std::string> expected = reference_ranking(servers, live, r, country, 8);
        ASSERT_EQ(ids(answer), expected) << "query " << q << ": " << r.ShortDebugString();
        std::uint32_t total = 0;
        for (const std::string& id : expected) {
            total += servers[std::stoul(id.substr(4))].bandwidth;
        }
        EXPECT_EQ(answer.total_available_bandwidth_mbps(), total) << "query " << q;
    }
}

} // namespace
} // namespace kwik::cp
