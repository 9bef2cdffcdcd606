// registration_from_proto / registration_to_proto / status_from_heartbeat
// (controlplane/server/registry.*): KCP ServerRegistration and ServerHeartbeat as the registry
// takes them, every bad field refused with its name, and the round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "controlplane/server/registry.hpp"

namespace kwik::cp {
namespace {

namespace v3 = kcp::v3;

v3::ServerRegistration good() {
    v3::ServerRegistration m;
    m.set_server_id("edge-7");
    m.mutable_server()->set_address("192.0.2.7:7708");
    m.mutable_server()->set_tls_pubkey_hash_sha256(std::string(32, '\x5a'));
    m.mutable_server()->set_available_bandwidth_mbps(2500);
    m.mutable_server()->set_current_load_percent(40);
    m.mutable_server()->add_capabilities("multipath");
    m.mutable_server()->mutable_location()->set_region("eu-west");
    m.set_packet_loss_rate(0.01f);
    m.set_max_paths_per_connection(8);
    return m;
}

TEST(registration_from_proto, takes_every_field_and_defaults_versions_and_aeads) {
    auto r = registration_from_proto(good());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->server_id, "edge-7");
    EXPECT_EQ(r->server.address(), "192.0.2.7:7708");
    EXPECT_EQ(r->server.available_bandwidth_mbps(), 2500u);
    EXPECT_EQ(r->server.location().region(), "eu-west");
    ASSERT_TRUE(r->packet_loss_rate.has_value());
    EXPECT_FLOAT_EQ(*r->packet_loss_rate, 0.01f);
    EXPECT_EQ(r->max_paths_per_connection, 8u);
    ASSERT_EQ(r->versions.size(), 1u);
    EXPECT_EQ(r->versions[0], (protocol_version{3, 0}));
    ASSERT_EQ(r->aead_algorithms.size(), 1u);
    EXPECT_EQ(r->aead_algorithms[0], v3::AEAD_AES_256_GCM);

    v3::ServerRegistration no_loss = good();
    no_loss.clear_packet_loss_rate();
    no_loss.add_supported_versions()->set_major(4);
    auto n = registration_from_proto(no_loss);
    ASSERT_TRUE(n.ok()) << n.message();
    EXPECT_FALSE(n->packet_loss_rate.has_value());
    ASSERT_EQ(n->versions.size(), 1u);
    EXPECT_EQ(n->versions[0], (protocol_version{4, 0}));
}

TEST(registration_from_proto, round_trips_through_registration_to_proto) {
    auto r = registration_from_proto(good());
    ASSERT_TRUE(r.ok());
    const v3::ServerRegistration back = registration_to_proto(r.value());
    EXPECT_EQ(back.server_id(), "edge-7");
    EXPECT_EQ(back.server().SerializeAsString(), good().server().SerializeAsString());
    EXPECT_FLOAT_EQ(back.packet_loss_rate(), 0.01f);
    ASSERT_EQ(back.supported_versions_size(), 1);
    EXPECT_EQ(back.supported_versions(0).major(), 3u);
    ASSERT_EQ(back.aead_algorithms_size(), 1);
    EXPECT_EQ(back.max_paths_per_connection(), 8u);
}

struct bad_case {
    const char* description;
    void (*change)(v3::ServerRegistration&);
    const char* field; // the error starts with it
};

TEST(registration_from_proto, names_the_field_of_every_bad_input) {
    const bad_case cases[] = {
        {"no server", [](v3::ServerRegistration& m) { m.clear_server(); }, "server_registration.server: missing"},
        {"no address", [](v3::ServerRegistration& m) { m.mutable_server()->clear_address(); },
         "server_registration.server.address: missing"},
        {"empty id", [](v3::ServerRegistration& m) { m.clear_server_id(); }, "server_registration.server_id:"},
        {"long id", [](v3::ServerRegistration& m) { m.set_server_id(std::string(129, 'x')); },
         "server_registration.server_id:"},
        {"short pin", [](v3::ServerRegistration& m) { m.mutable_server()->set_tls_pubkey_hash_sha256("abc"); },
         "server_registration.server.tls_pubkey_hash_sha256:"},
        {"load above 100", [](v3::ServerRegistration& m) { m.mutable_server()->set_current_load_percent(140); },
         "server_registration.server.current_load_percent: 140 is above 100"},
        {"loss above 1", [](v3::ServerRegistration& m) { m.set_packet_loss_rate(1.5f); },
         "server_registration.packet_loss_rate:"},
        {"loss NaN", [](v3::ServerRegistration& m) { m.set_packet_loss_rate(std::nanf("")); },
         "server_registration.packet_loss_rate:"},
        {"empty capability", [](v3::ServerRegistration& m) { m.mutable_server()->add_capabilities(""); },
         "server_registration.server.capabilities[1]: empty"},
        {"latitude", [](v3::ServerRegistration& m) { m.mutable_server()->mutable_location()->set_latitude(91); },
         "server_registration.server.location.latitude:"},
        {"version 0", [](v3::ServerRegistration& m) { m.add_supported_versions()->set_minor(1); },
         "server_registration.supported_versions[0].major: 0"},
        {"aead unspecified", [](v3::ServerRegistration& m) { m.add_aead_algorithms(v3::AEAD_ALGORITHM_UNSPECIFIED); },
         "server_registration.aead_algorithms[0]:"},
    };
    for (const bad_case& c : cases) {
        v3::ServerRegistration m = good();
        c.change(m);
        auto r = registration_from_proto(m);
        ASSERT_FALSE(r.ok()) << c.description;
        EXPECT_EQ(r.message().rfind(c.field, 0), 0u) << c.description << ": " << r.message();
    }
    // Under another request's name.
    v3::ServerRegistration m = good();
    m.mutable_server()->set_current_load_percent(101);
    auto r = registration_from_proto(m, "register_server");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message(), "register_server.server.current_load_percent: 101 is above 100");
}

TEST(status_from_heartbeat, keeps_unset_fields_unset) {
    v3::ServerHeartbeat h;
    h.set_server_id("edge-7");
    h.set_current_load_percent(55);
    h.mutable_metrics()->set_active_connections(12);
    const server_status s = status_from_heartbeat(h);
    EXPECT_FALSE(s.available_bandwidth_mbps.has_value());
    EXPECT_FALSE(s.latency_ms.has_value());
    EXPECT_FALSE(s.packet_loss_rate.has_value());
    ASSERT_TRUE(s.current_load_percent.has_value());
    EXPECT_EQ(*s.current_load_percent, 55u);
    ASSERT_TRUE(s.metrics.has_value());
    EXPECT_EQ(s.metrics->active_connections(), 12u);

    server_registry registry;
    auto r = registration_from_proto(good());
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(registry.register_server(r.value(), 1000).ok());
    ASSERT_TRUE(registry.heartbeat("edge-7", 2000, s).ok());
    const registered_server* held = registry.find("edge-7");
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(held->registration.server.current_load_percent(), 55u);
    EXPECT_EQ(held->registration.server.available_bandwidth_mbps(), 2500u) << "unset: unchanged";
    EXPECT_EQ(held->registration.server.metrics().active_connections(), 12u);
    EXPECT_EQ(held->expires_at_ms, 2000u + registry.config().expiry_ms);
    EXPECT_EQ(registry.entries().size(), 1u);
}

} // namespace
} // namespace kwik::cp
