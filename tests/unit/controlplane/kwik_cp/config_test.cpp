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

// [kwik_cp] kwikd_shm_directory: kwikd's [kwikd] shm_directory; absolute, need not exist yet.
TEST(kwik_cp_config, kwikd_shm_directory) {
    const std::string base = "[tls]\nenabled = false\n" + key_section;
    auto d = cp::parse_control_server_config("[kwik_cp]\nserver_id = \"cp-1\"\n" + base, "cp.toml", false);
    ASSERT_TRUE(d.ok()) << d.message();
    EXPECT_EQ(d->link.shm_directory, "/dev/shm");
    auto c = cp::parse_control_server_config(
        "[kwik_cp]\nserver_id = \"cp-1\"\nkwikd_shm_directory = \"/run/kwik-not-yet\"\n" + base, "cp.toml", false);
    ASSERT_TRUE(c.ok()) << c.message();
    EXPECT_EQ(c->link.shm_directory, "/run/kwik-not-yet");
    auto bad = cp::parse_control_server_config(
        "[kwik_cp]\nserver_id = \"cp-1\"\nkwikd_shm_directory = \"run/kwik\"\n" + base, "cp.toml", false);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("cp.toml:3"), std::string::npos) << bad.message();
    EXPECT_NE(bad.message().find("kwik_cp.kwikd_shm_directory: 'run/kwik' is not an absolute path (kwikd's [kwikd] "
                                 "shm_directory)"),
              std::string::npos)
        << bad.message();
}

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

// [kwik_cp] endpoint: the four kinds kwikd serves, file_store's directory (required, existing,
// absolute, within kwikd's 127 characters) and pattern's maximum request; each problem names
// the field with its line.
TEST(kwik_cp_config, endpoint_kinds_directory_and_pattern_maximum) {
    const std::string tail = "[tls]\nenabled = false\n" + key_section;
    auto with = [&](const std::string& fields) {
        return cp::parse_control_server_config("[kwik_cp]\nserver_id = \"a\"\n" + fields + tail, "cp.toml", false);
    };
    auto d = with("");
    ASSERT_TRUE(d.ok()) << d.message();
    EXPECT_EQ(d->endpoint, api::endpoint_kind::discard);
    EXPECT_TRUE(d->endpoint_directory.empty());

    const std::string dir = ::testing::TempDir();
    const std::string store_dir = dir.size() > 1 && dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir;
    auto store = with("endpoint = \"file_store\"\nendpoint_directory = \"" + store_dir + "\"\n");
    ASSERT_TRUE(store.ok()) << store.message();
    EXPECT_EQ(store->endpoint, api::endpoint_kind::file_store);
    EXPECT_EQ(store->endpoint_directory, store_dir);

    auto pattern = with("endpoint = \"pattern\"\n");
    ASSERT_TRUE(pattern.ok()) << pattern.message();
    EXPECT_EQ(pattern->endpoint, api::endpoint_kind::pattern_source);
    EXPECT_EQ(pattern->endpoint_length, std::uint64_t{16} << 30) << "the default maximum";
    auto sized = with("endpoint = \"pattern\"\npattern_max_bytes = 68719476736\n");
    ASSERT_TRUE(sized.ok()) << sized.message();
    EXPECT_EQ(sized->endpoint_length, std::uint64_t{64} << 30);

    const std::string long_dir = "/" + std::string(127, 'd');
    const bad_case cases[] = {
        {"unknown kind", "endpoint = \"sink\"\n",
         "cp.toml:3: kwik_cp.endpoint: \"sink\" is not discard, echo, pattern or file_store"},
        {"file_store without a directory", "endpoint = \"file_store\"\n",
         "kwik_cp.endpoint_directory: missing (required by endpoint = \"file_store\")"},
        {"a directory for another endpoint", "endpoint = \"echo\"\nendpoint_directory = \"/tmp\"\n",
         "cp.toml:4: kwik_cp.endpoint_directory: only the file_store endpoint takes a directory"},
        {"relative directory", "endpoint = \"file_store\"\nendpoint_directory = \"tmp\"\n",
         "cp.toml:4: kwik_cp.endpoint_directory: \"tmp\" is not an absolute path"},
        {"directory above kwikd's limit", "endpoint = \"file_store\"\nendpoint_directory = \"" + long_dir + "\"\n",
         "cp.toml:4: kwik_cp.endpoint_directory: is 128 characters long, above kwikd's 127"},
        {"missing directory", "endpoint = \"file_store\"\nendpoint_directory = \"/nonexistent/kwik\"\n",
         "kwik_cp.endpoint_directory: \"/nonexistent/kwik\" is not an existing directory"},
        {"a file, not a directory", "endpoint = \"file_store\"\nendpoint_directory = \"/dev/null\"\n",
         "kwik_cp.endpoint_directory: \"/dev/null\" is not an existing directory"},
        {"dot-dot", "endpoint = \"file_store\"\nendpoint_directory = \"/tmp/../etc\"\n",
         "kwik_cp.endpoint_directory: \"/tmp/../etc\" contains '..'"},
        {"maximum of zero", "endpoint = \"pattern\"\npattern_max_bytes = 0\n",
         "cp.toml:4: kwik_cp.pattern_max_bytes: expected an integer in 1.."},
        {"maximum as text", "endpoint = \"pattern\"\npattern_max_bytes = \"1G\"\n",
         "kwik_cp.pattern_max_bytes: expected an integer in 1.."},
        {"a maximum for another endpoint", "pattern_max_bytes = 100\n",
         "cp.toml:3: kwik_cp.pattern_max_bytes: only the pattern endpoint takes a maximum"},
    };
    for (const auto& c : cases) {
        auto r = with(c.text);
        ASSERT_FALSE(r.ok()) << c.description;
        EXPECT_NE(r.message().find(c.expected), std::string::npos) << c.description << ": " << r.message();
    }
}

} // namespace
