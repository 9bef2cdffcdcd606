// kwikctl's connection settings (controlplane/kwikctl/settings.*): flag > environment > config
// file, the default config file, the secret file's format and permissions, the pin or plain TCP
// on loopback, and every bad value named with where it came from.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "controlplane/kwikctl/settings.hpp"

namespace kwik::ctl {
namespace {

namespace fs = std::filesystem;

const std::string pin_a(64, 'a');
const std::string pin_b(64, 'b');
const std::string secret_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

class settings_test : public testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("kwikctl-settings-" + std::to_string(::getpid()) + "-" +
                                           testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir);
        secret = write("secret", secret_hex + "\n", 0600);
    }
    void TearDown() override { fs::remove_all(dir); }

    std::string write(const std::string& name, const std::string& text, mode_t mode) {
        const fs::path p = dir / name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p.string();
    }
    environment env() const {
        return [this](std::string_view n) -> std::optional<std::string> {
            auto it = vars.find(std::string(n));
            return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
    }
    settings_flags minimal() const {
        settings_flags f;
        f.pin = pin_a;
        f.key_id = "ops";
        f.secret_file = secret;
        return f;
    }
    result<connection_settings> resolve(const settings_flags& f, std::string_view default_config = "") const {
        return resolve_settings(f, env(), default_config);
    }

    fs::path dir;
    std::string secret;
    std::map<std::string, std::string> vars;
};

TEST_F(settings_test, flags_alone) {
    auto s = resolve(minimal());
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->server, "127.0.0.1:7708");
    ASSERT_TRUE(s->pin.has_value());
    EXPECT_EQ(kcp::to_hex(*s->pin), pin_a);
    EXPECT_EQ(s->key_id, "ops");
    EXPECT_EQ(s->client_id, "kwikctl");
    EXPECT_EQ(s->timeout.count(), 5000);
    for (std::size_t i = 0; i < 32; ++i) {
        EXPECT_EQ(s->secret[i], i);
    }
}

TEST_F(settings_test, flag_beats_environment_beats_file) {
    const std::string other_secret = write("other", std::string(64, 'f'), 0600);
    const std::string config = write("kwikctl.toml",
                                     "server = \"file.example:1\"\npin = \"" + pin_b +
                                         "\"\nkey_id = \"file-key\"\nsecret_file = \"other\"\nclient_id = \"file-client\"\n"
                                         "timeout_ms = 100\n",
                                     0644);
    vars = {{"KWIKCTL_CONFIG", config}, {"KWIKCTL_SERVER", "env.example:2"}, {"KWIKCTL_KEY_ID", "env-key"}};
    settings_flags f;
    f.key_id = "flag-key";
    auto s = resolve(f);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->server, "env.example:2");
    EXPECT_EQ(s->key_id, "flag-key");
    EXPECT_EQ(kcp::to_hex(*s->pin), pin_b);
    EXPECT_EQ(s->client_id, "file-client");
    EXPECT_EQ(s->timeout.count(), 100);
    EXPECT_EQ(s->secret[0], 0xff) << "a relative secret_file is taken from the config file's directory";
    f.server = "flag.example:3";
    f.timeout_ms = "700";
    s = resolve(f);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->server, "flag.example:3");
    EXPECT_EQ(s->timeout.count(), 700);
}

TEST_F(settings_test, the_default_config_file_is_read_when_present) {
    const std::string config = write("default.toml", "key_id = \"from-default\"\ninsecure_plain = true\nsecret_file = \"" +
                                                         secret + "\"\n",
                                     0644);
    auto s = resolve(settings_flags{}, config);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(s->key_id, "from-default");
    EXPECT_FALSE(s->pin.has_value());
    auto missing = resolve(minimal(), (dir / "absent.toml").string());
    EXPECT_TRUE(missing.ok()) << "an absent default file is not an error: " << missing.message();
    settings_flags f = minimal();
    f.config = (dir / "absent.toml").string();
    auto named = resolve(f);
    ASSERT_FALSE(named.ok());
    EXPECT_NE(named.message().find("--config"), std::string::npos) << named.message();
}

TEST_F(settings_test, the_transport_is_decided_by_the_highest_level_that_names_one) {
    vars = {{"KWIKCTL_INSECURE_PLAIN", "1"}};
    auto s = resolve(minimal());
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(s->pin.has_value()) << "--pin beats KWIKCTL_INSECURE_PLAIN";
    settings_flags f = minimal();
    f.pin.reset();
    s = resolve(f);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_FALSE(s->pin.has_value());
    f.insecure_plain = true;
    vars = {{"KWIKCTL_PIN", pin_b}};
    s = resolve(f);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_FALSE(s->pin.has_value()) << "--insecure-plain beats KWIKCTL_PIN";
}

struct bad_setting {
    std::string name;
    std::function<void(settings_flags&, std::map<std::string, std::string>&)> change;
    std::vector<std::string> says;
};

class bad_settings : public settings_test, public testing::WithParamInterface<bad_setting> {};

TEST_P(bad_settings, are_refused_naming_their_source) {
    settings_flags f = minimal();
    GetParam().change(f, vars);
    auto s = resolve(f);
    ASSERT_FALSE(s.ok());
    for (const std::string& w : GetParam().says) {
        EXPECT_NE(s.message().find(w), std::string::npos) << "\"" << w << "\" not in: " << s.message();
    }
}

INSTANTIATE_TEST_SUITE_P(
    every_source, bad_settings,
    testing::Values(
        bad_setting{"server_flag", [](auto& f, auto&) { f.server = "x"; }, {"--server: \"x\" is not host:port"}},
        bad_setting{"server_env", [](auto&, auto& e) { e["KWIKCTL_SERVER"] = "x:0"; }, {"KWIKCTL_SERVER", "\"x:0\""}},
        bad_setting{"pin_env", [](auto& f, auto& e) { f.pin.reset(); e["KWIKCTL_PIN"] = "12"; },
                    {"KWIKCTL_PIN", "\"12\"", "64 hex digits"}},
        bad_setting{"no_pin", [](auto& f, auto&) { f.pin.reset(); }, {"no server pin", "--pin", "--insecure-plain"}},
        bad_setting{"pin_and_plain", [](auto& f, auto&) { f.insecure_plain = true; }, {"--pin and --insecure-plain"}},
        bad_setting{"plain_not_loopback", [](auto& f, auto&) { f.pin.reset(); f.insecure_plain = true; f.server = "192.0.2.1:7708"; },
                    {"--insecure-plain", "loopback", "192.0.2.1:7708"}},
        bad_setting{"plain_env_not_boolean", [](auto& f, auto& e) { f.pin.reset(); e["KWIKCTL_INSECURE_PLAIN"] = "maybe"; },
                    {"KWIKCTL_INSECURE_PLAIN", "\"maybe\""}},
        bad_setting{"no_key_id", [](auto& f, auto&) { f.key_id.reset(); }, {"no key id", "--key-id", "KWIKCTL_KEY_ID"}},
        bad_setting{"empty_key_id", [](auto& f, auto&) { f.key_id = ""; }, {"--key-id", "1..128"}},
        bad_setting{"no_secret", [](auto& f, auto&) { f.secret_file.reset(); }, {"no secret", "--secret-file"}},
        bad_setting{"missing_secret", [](auto& f, auto&) { f.secret_file = "/nonexistent/kwikctl.secret"; },
                    {"--secret-file", "/nonexistent/kwikctl.secret", "No such file"}},
        bad_setting{"timeout_env", [](auto&, auto& e) { e["KWIKCTL_TIMEOUT_MS"] = "-5"; }, {"KWIKCTL_TIMEOUT_MS", "\"-5\""}},
        bad_setting{"client_id_too_long", [](auto& f, auto&) { f.client_id = std::string(129, 'c'); },
                    {"--client-id", "1..128"}}),
    [](const testing::TestParamInfo<bad_setting>& i) { return i.param.name; });

TEST_F(settings_test, a_secret_file_open_to_group_or_others_is_refused) {
    for (const mode_t mode : {0640, 0604, 0660, 0602}) {
        settings_flags f = minimal();
        f.secret_file = write("open", secret_hex, mode);
        auto s = resolve(f);
        ASSERT_FALSE(s.ok()) << std::oct << mode;
        EXPECT_NE(s.message().find("open to group or others"), std::string::npos) << s.message();
        EXPECT_NE(s.message().find("chmod 600"), std::string::npos) << s.message();
        EXPECT_NE(s.message().find("--secret-file"), std::string::npos) << s.message();
    }
    settings_flags f = minimal();
    f.secret_file = write("private", secret_hex, 0400);
    EXPECT_TRUE(resolve(f).ok());
}

TEST_F(settings_test, a_secret_file_must_hold_64_hex_digits) {
    for (const std::string& text : {std::string("abcd"), std::string(64, 'g'), std::string(66, 'a'), std::string()}) {
        settings_flags f = minimal();
        f.secret_file = write("bad", text, 0600);
        auto s = resolve(f);
        ASSERT_FALSE(s.ok()) << text;
        EXPECT_NE(s.message().find("64 hex digits"), std::string::npos) << s.message();
    }
    settings_flags f = minimal();
    f.secret_file = write("spaced", "  " + secret_hex + "\r\n\n", 0600);
    EXPECT_TRUE(resolve(f).ok());
    f.secret_file = dir.string();
    auto d = resolve(f);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.message().find("not a regular file"), std::string::npos) << d.message();
}

TEST_F(settings_test, config_file_problems_name_file_line_and_key) {
    settings_flags f = minimal();
    f.config = write("c1.toml", "server = \"h:1\"\nservr = \"typo\"\ntimeout_ms = \"fast\"\ninsecure_plain = 1\n", 0644);
    auto s = resolve(f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(*f.config + ":2: servr: unknown key"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(*f.config + ":3: timeout_ms: expected an integer"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(*f.config + ":4: insecure_plain: expected true or false"), std::string::npos)
        << s.message();
    f.config = write("c2.toml", "server = \n", 0644);
    s = resolve(f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(*f.config + ":1:"), std::string::npos) << s.message();
    f.config = write("c3.toml", "server = \"h:99999\"\n", 0644);
    f.server.reset();
    s = resolve(f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(*f.config + ":1: server: \"h:99999\""), std::string::npos) << s.message();
    f.config = write("c4.toml", "client_id = \"caf\xc3\xa9\"\n", 0644);
    s = resolve(f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("non-ASCII"), std::string::npos) << s.message();
}

TEST_F(settings_test, insecure_plain_is_allowed_on_every_loopback_form) {
    for (const char* server : {"127.0.0.1:7708", "127.9.8.7:1", "localhost:7708", "[::1]:7708"}) {
        settings_flags f = minimal();
        f.pin.reset();
        f.insecure_plain = true;
        f.server = server;
        auto s = resolve(f);
        EXPECT_TRUE(s.ok()) << server << ": " << s.message();
    }
}

} // namespace
} // namespace kwik::ctl
