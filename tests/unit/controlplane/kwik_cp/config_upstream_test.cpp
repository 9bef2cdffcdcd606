// kwik-cp's [upstream] section and registry.heartbeat_interval_ms
// (controlplane/server/kwik_cp/config.*): every field read, the secret from a file, and errors
// that name the field. No TLS files are touched (load_tls = false).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "controlplane/server/kwik_cp/config.hpp"

namespace {

using namespace kwik;

const std::string head = "[kwik_cp]\nserver_id = \"cp-2\"\n[tls]\nenabled = false\n[[auth.key]]\nkey_id = \"k\"\n"
                         "secret = \"" + std::string(64, 'a') + "\"\n";
const std::string pin_hex = std::string(62, '0') + "ff";

TEST(kwik_cp_config_upstream, reads_every_field) {
    const std::string text = head + "[registry]\nheartbeat_interval_ms = 2500\n[upstream]\naddress = \"192.0.2.1:7708\"\n"
                                    "pin = \"" + pin_hex + "\"\nkey_id = \"cp-2-key\"\nsecret = \"" +
                             std::string(64, 'b') + "\"\nclient_id = \"cp-two\"\nheartbeat_interval_ms = 700\n";
    auto c = cp::parse_control_server_config(text, "cp.toml", false);
    ASSERT_TRUE(c.ok()) << c.message();
    EXPECT_EQ(c->heartbeat_interval.count(), 2500);
    ASSERT_TRUE(c->upstream.has_value());
    EXPECT_EQ(c->upstream->address, "192.0.2.1:7708");
    ASSERT_TRUE(c->upstream->pin.has_value());
    EXPECT_EQ((*c->upstream->pin)[31], 0xff);
    EXPECT_EQ((*c->upstream->pin)[0], 0x00);
    EXPECT_EQ(c->upstream->key_id, "cp-2-key");
    EXPECT_EQ(c->upstream->secret[0], 0xbb);
    EXPECT_EQ(c->upstream->client_id, "cp-two");
    EXPECT_EQ(c->upstream->heartbeat_interval.count(), 700);

    auto none = cp::parse_control_server_config(head, "cp.toml", false);
    ASSERT_TRUE(none.ok()) << none.message();
    EXPECT_FALSE(none->upstream.has_value());
    EXPECT_EQ(none->heartbeat_interval.count(), 0);
}

TEST(kwik_cp_config_upstream, plain_tcp_and_a_secret_file) {
    const auto file = std::filesystem::temp_directory_path() / ("upstream-key-" + std::to_string(::getpid()));
    std::ofstream(file) << std::string(64, 'c') << "\n";
    const std::string text = head + "[upstream]\naddress = \"[::1]:7708\"\npin = \"none\"\nkey_id = \"x\"\n"
                                    "secret_file = \"" + file.string() + "\"\n";
    auto c = cp::parse_control_server_config(text, "cp.toml", false);
    std::filesystem::remove(file);
    ASSERT_TRUE(c.ok()) << c.message();
    ASSERT_TRUE(c->upstream.has_value());
    EXPECT_FALSE(c->upstream->pin.has_value());
    EXPECT_EQ(c->upstream->secret[31], 0xcc);
    EXPECT_TRUE(c->upstream->client_id.empty()) << "the server id, filled where the hello is made";
}

TEST(kwik_cp_config_upstream, errors_name_the_field) {
    const std::string secret = "secret = \"" + std::string(64, 'b') + "\"\n";
    const struct {
        const char* description;
        std::string section;
        const char* expected;
    } cases[] = {
        {"no address", "pin = \"none\"\nkey_id = \"x\"\n" + secret, "upstream.address: missing"},
        {"a name, not a number", "address = \"registry:7708\"\npin = \"none\"\nkey_id = \"x\"\n" + secret,
         "upstream.address"},
        {"port 0", "address = \"192.0.2.1:0\"\npin = \"none\"\nkey_id = \"x\"\n" + secret, "has port 0"},
        {"no pin", "address = \"192.0.2.1:1\"\nkey_id = \"x\"\n" + secret, "upstream.pin: missing"},
        {"short pin", "address = \"192.0.2.1:1\"\npin = \"abcd\"\nkey_id = \"x\"\n" + secret,
         "upstream.pin: expected 64 hex digits"},
        {"no key id", "address = \"192.0.2.1:1\"\npin = \"none\"\n" + secret, "upstream.key_id: missing"},
        {"no secret", "address = \"192.0.2.1:1\"\npin = \"none\"\nkey_id = \"x\"\n",
         "upstream.secret: give exactly one of secret"},
        {"both secrets", "address = \"192.0.2.1:1\"\npin = \"none\"\nkey_id = \"x\"\nsecret_file = \"/x\"\n" + secret,
         "upstream.secret: give exactly one of secret"},
        {"unreadable file", "address = \"192.0.2.1:1\"\npin = \"none\"\nkey_id = \"x\"\nsecret_file = \"/nonexistent/k\"\n",
         "upstream.secret_file: cannot read"},
        {"misspelt", "address = \"192.0.2.1:1\"\npin = \"none\"\nkey_id = \"x\"\nheartbeat_ms = 1\n" + secret,
         "upstream.heartbeat_ms: unknown field"},
    };
    for (const auto& c : cases) {
        auto r = cp::parse_control_server_config(head + "[upstream]\n" + c.section, "cp.toml", false);
        ASSERT_FALSE(r.ok()) << c.description;
        EXPECT_NE(r.message().find(c.expected), std::string::npos) << c.description << ": " << r.message();
    }
}

} // namespace
