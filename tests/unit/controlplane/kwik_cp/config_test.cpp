// kwik-cp's configuration file (controlplane/server/kwik_cp/config.*): fields read, defaults,
// and errors that name the file, line and field. No TLS files are touched (load_tls = false).
#include <gtest/gtest.h>

#include <string>

#include "controlplane/server/kwik_cp/config.hpp"

namespace {

using namespace kwik;

const std::string key_section = "[[auth.key]]\nkey_id = \"edge-01\"\nsecret = \"" + std::string(64, 'a') + "\"\n";

TEST(kwik_cp_config, reads_every_section) {
    const std::string text = "[kwik_cp]\nserver_id = \"cp-1\"\nlisten = \"[::1]:7800\"\nkwikd_region = \"kw\"\n"
                             "endpoint = \"echo\"\nmax_sessions = 42\n[tls]\nenabled = false\n[registry]\nexpiry_ms = 5000\n"
                             "max_results = 3\n[timeouts]\nidle_ms = 0\nkwikd_command_ms = 250\n" +
                             key_section;
    auto c = cp::parse_control_server_config(text, "cp.toml", false);
    ASSERT_TRUE(c.ok()) << c.message();
    EXPECT_EQ(c->hello.server_id, "cp-1");
    EXPECT_EQ(c->listen_address, "::1");
    EXPECT_EQ(c->listen_port, 7800);
    EXPECT_EQ(c->link.region_name, "kw");
    EXPECT_EQ(c->endpoint, api::endpoint_kind::echo);
    EXPECT_EQ(c->max_sessions, 42u);
    EXPECT_FALSE(c->tls.has_value());
    EXPECT_EQ(c->registry.expiry_ms, 5000u);
    EXPECT_EQ(c->registry.max_results, 3u);
    EXPECT_EQ(c->channel.idle_timeout.count(), 0);
    EXPECT_EQ(c->link.command_timeout, 250'000'000u);
    EXPECT_EQ(c->keys.size(), 1u);
    EXPECT_EQ(c->self.server.address(), "[::1]:7800");
}

TEST(kwik_cp_config, planning_section_and_its_defaults) {
    const std::string base = "[kwik_cp]\nserver_id = \"cp-1\"\n[tls]\nenabled = false\n" + key_section;
    auto d = cp::parse_control_server_config(base, "cp.toml", false);
    ASSERT_TRUE(d.ok()) << d.message();
    EXPECT_TRUE(d->planning.enabled);
    EXPECT_EQ(d->planning.interval.count(), 1000);
    EXPECT_EQ(d->planning.health.failure_threshold, 3u);
    EXPECT_FLOAT_EQ(d->planning.weight_threshold, 0.05f);

    auto c = cp::parse_control_server_config(base + "[planning]\nenabled = false\ninterval_ms = 250\n"
                                                    "check_interval_ms = 200\nfailure_threshold = 5\n"
                                                    "recovery_threshold = 4\nweight_threshold_percent = 10\n"
                                                    "default_path_mbps = 40\n",
                                             "cp.toml", false);
    ASSERT_TRUE(c.ok()) << c.message();
    EXPECT_FALSE(c->planning.enabled);
    EXPECT_EQ(c->planning.interval.count(), 250);
    EXPECT_EQ(c->planning.health.check_interval_us, 200'000u);
    EXPECT_EQ(c->planning.health.failure_threshold, 5u);
    EXPECT_EQ(c->planning.health.recovery_threshold, 4u);
    EXPECT_FLOAT_EQ(c->planning.weight_threshold, 0.10f);
    EXPECT_EQ(c->planning.default_path_mbps, 40u);

    auto bad = cp::parse_control_server_config(base + "[planning]\ninterval_ms = 1\nfailover = 2\n", "cp.toml", false);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("planning.interval_ms: expected an integer in 10.."), std::string::npos) << bad.message();
    EXPECT_NE(bad.message().find("planning.failover: unknown field"), std::string::npos) << bad.message();
}

struct bad_case {
    const char* description;
    std::string text;
    const char* expected; // a part of the error
};

TEST(kwik_cp_config, errors_name_the_field) {
    const bad_case cases[] = {
        {"no server id", "[kwik_cp]\nlisten = \"0.0.0.0:1\"\n[tls]\nenabled = false\n" + key_section,
         "kwik_cp.server_id: missing"},
        {"bad port", "[kwik_cp]\nserver_id = \"a\"\nlisten = \"0.0.0.0:70000\"\n[tls]\nenabled = false\n" + key_section,
         "cp.toml:3: kwik_cp.listen"},
        {"misspelt field", "[kwik_cp]\nserver_id = \"a\"\nlisen = \"x\"\n[tls]\nenabled = false\n" + key_section,
         "kwik_cp.lisen: unknown field"},
        {"tls without files", "[kwik_cp]\nserver_id = \"a\"\n" + key_section, "tls.certificate: missing"},
        {"number out of range",
         "[kwik_cp]\nserver_id = \"a\"\n[tls]\nenabled = false\n[registry]\nexpiry_ms = 1\n" + key_section,
         "registry.expiry_ms: expected an integer in 1000.."},
        {"unknown section", "[kwik_cp]\nserver_id = \"a\"\n[tls]\nenabled = false\n[extra]\n" + key_section,
         "extra: unknown section"},
        {"no keys", "[kwik_cp]\nserver_id = \"a\"\n[tls]\nenabled = false\n", "auth.key: missing"},
        {"key and field problems together", "[kwik_cp]\nlisen = 1\n[tls]\nenabled = false\n",
         "cp.toml:1: kwik_cp.server_id: missing\ncp.toml:2: kwik_cp.lisen: unknown field\ncp.toml: auth.key: missing"},
    };
    for (const auto& c : cases) {
        auto r = cp::parse_control_server_config(c.text, "cp.toml", false);
        ASSERT_FALSE(r.ok()) << c.description;
        EXPECT_NE(r.message().find(c.expected), std::string::npos) << c.description << ": " << r.message();
    }
}

} // namespace
