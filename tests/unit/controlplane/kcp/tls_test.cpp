// Unit tests for controlplane/kcp/tls: the pin is SHA-256 of the SubjectPublicKeyInfo DER (a
// known answer computed with the openssl command line), the same from a certificate, its
// public key or its private key; pins print and parse as hex; self-signed identities of both
// key types; identity files read, checked and created once; and TLS 1.3 sessions handshaking in
// memory: the right pin connects, a wrong one fails naming both hashes.
#include "controlplane/kcp/tls.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace kwik::kcp {
namespace {

// A test-only Ed25519 key and a certificate for it (openssl genpkey / req -x509). Its pin:
//   openssl pkey -in key.pem -pubout -outform DER | sha256sum
constexpr const char* kat_private_key = R"(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHtXXNHQeaPBYl/Sn/VMI9iXznDBff++O0GDhyeSmWIl
-----END PRIVATE KEY-----
)";
constexpr const char* kat_public_key = R"(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAniATxbT8WOorWfXcRTCljzX9RaKAuLylsCfBPwWaIuY=
-----END PUBLIC KEY-----
)";
constexpr const char* kat_certificate = R"(-----BEGIN CERTIFICATE-----
MIIBMjCB5aADAgECAhQy54Xi1XQP0XJsVIlXZ7qFUTfFGjAFBgMrZXAwDjEMMAoG
A1UEAwwDa2F0MCAXDTI2MTEyMTA5NDEzOVoYDzIxMjYxMDI4MDk0MTM5WjAOMQww
CgYDVQQDDANrYXQwKjAFBgMrZXADIQCeIBPFtPxY6itZ9dxFMKWPNf1FooC4vKWw
J8E/BZoi5qNTMFEwHQYDVR0OBBYEFOvOQoYFm1knJFYneMv9Xl4fxU1OMB8GA1Ud
IwQYMBaAFOvOQoYFm1knJFYneMv9Xl4fxU1OMA8GA1UdEwEB/wQFMAMBAf8wBQYD
K2VwA0EA8G8yQ81YjPERIBZlBk6etZWUQZdrancAHGQiR1QsKEQ0i2u/MkC8io3n
tYUys3eUbNdmmJwYfpTfssrQeVluDw==
-----END CERTIFICATE-----
)";
constexpr const char* kat_pin = "f246f01d0f262357a41af3813d56b98b8d529980990549efc4e8872dc88eff7e";

class temp_dir {
public:
    temp_dir() {
        char name[] = "/tmp/kwik-kcp-tls-XXXXXX";
        _path = ::mkdtemp(name);
    }
    ~temp_dir() { std::filesystem::remove_all(_path); }
    std::string file(const std::string& name) const { return _path + "/" + name; }

private:
    std::string _path;
};

void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

TEST(kcp_tls, pin_is_sha256_of_the_subject_public_key_info) {
    for (const char* pem : {kat_certificate, kat_public_key, kat_private_key}) {
        const result<key_pin> pin = pin_of_pem(pem);
        ASSERT_TRUE(pin.ok()) << pin.message();
        EXPECT_EQ(to_hex(*pin), kat_pin);
    }
    // A file holding the key and then the certificate: the certificate counts.
    const result<key_pin> both = pin_of_pem(std::string(kat_private_key) + kat_certificate);
    ASSERT_TRUE(both.ok());
    EXPECT_EQ(to_hex(*both), kat_pin);
}

TEST(kcp_tls, pin_of_garbage_and_missing_files) {
    const result<key_pin> none = pin_of_pem("not PEM at all");
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.message().find("no PEM certificate, public key or unencrypted private key"),
              std::string::npos);
    const result<key_pin> missing = pin_of_file("/nonexistent/kwik.pem");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.message().find("/nonexistent/kwik.pem"), std::string::npos);
    EXPECT_EQ(missing.code(), ENOENT);

    temp_dir dir;
    write(dir.file("cert.pem"), kat_certificate);
    const result<key_pin> from_file = pin_of_file(dir.file("cert.pem"));
    ASSERT_TRUE(from_file.ok()) << from_file.message();
    EXPECT_EQ(to_hex(*from_file), kat_pin);
}

TEST(kcp_tls, pins_print_and_parse_as_hex) {
    const result<key_pin> pin = parse_pin(kat_pin);
    ASSERT_TRUE(pin.ok()) << pin.message();
    EXPECT_EQ(to_hex(*pin), kat_pin);
    EXPECT_EQ((*pin)[0], 0xf2);
    EXPECT_EQ((*pin)[31], 0x7e);

    // Upper case and openssl's colon form.
    std::string colons;
    for (std::size_t i = 0; i < 64; i += 2) {
        colons += (i == 0 ? "" : ":") + std::string(kat_pin + i, 2);
    }
    for (char& c : colons) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    const result<key_pin> upper = parse_pin(colons);
    ASSERT_TRUE(upper.ok()) << upper.message();
    EXPECT_EQ(*upper, *pin);

    EXPECT_FALSE(parse_pin(std::string(kat_pin).substr(0, 63)).ok());
    EXPECT_FALSE(parse_pin(std::string(kat_pin) + "0").ok());
    EXPECT_FALSE(parse_pin("g" + std::string(kat_pin).substr(1)).ok());
    EXPECT_NE(parse_pin("abc").message().find("64 hex digits"), std::string::npos);

    const result<key_pin> raw = pin_from_bytes(std::string(pin->begin(), pin->end()));
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(*raw, *pin);
    EXPECT_NE(pin_from_bytes("short").message().find("has 5 bytes"), std::string::npos);
}

class kcp_tls_keys : public testing::TestWithParam<key_algorithm> {};

TEST_P(kcp_tls_keys, self_signed_identity) {
    const result<tls_identity> a = generate_self_signed(GetParam(), "kwik-test");
    const result<tls_identity> b = generate_self_signed(GetParam(), "kwik-test");
    ASSERT_TRUE(a.ok()) << a.message();
    ASSERT_TRUE(b.ok()) << b.message();
    EXPECT_EQ(a->certificate_pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
    EXPECT_EQ(a->private_key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
    const result<key_pin> cert_pin = pin_of_pem(a->certificate_pem);
    const result<key_pin> key_pin_ = pin_of_pem(a->private_key_pem);
    ASSERT_TRUE(cert_pin.ok());
    ASSERT_TRUE(key_pin_.ok());
    EXPECT_EQ(*cert_pin, *key_pin_);
    EXPECT_NE(*cert_pin, *pin_of_pem(b->certificate_pem)); // a new key each time

    const result<tls_context> server = tls_context::server(*a);
    ASSERT_TRUE(server.ok()) << server.message();
    EXPECT_TRUE(server->is_server());
    EXPECT_EQ(server->pin(), *cert_pin);
}

INSTANTIATE_TEST_SUITE_P(both, kcp_tls_keys,
                         testing::Values(key_algorithm::ed25519, key_algorithm::p256));

TEST(kcp_tls, server_context_refuses_a_key_that_is_not_the_certificates) {
    const result<tls_identity> a = generate_self_signed();
    const result<tls_identity> b = generate_self_signed();
    ASSERT_TRUE(a.ok() && b.ok());
    const result<tls_context> mixed =
        tls_context::server(tls_identity{a->certificate_pem, b->private_key_pem});
    ASSERT_FALSE(mixed.ok());
    EXPECT_NE(mixed.message().find("does not fit its certificate"), std::string::npos)
        << mixed.message();
    EXPECT_FALSE(tls_context::server(tls_identity{"junk", a->private_key_pem}).ok());
    EXPECT_FALSE(tls_context::server(tls_identity{a->certificate_pem, "junk"}).ok());
}

TEST(kcp_tls, read_identity_checks_the_pair) {
    temp_dir dir;
    write(dir.file("cert.pem"), kat_certificate);
    write(dir.file("key.pem"), kat_private_key);
    const result<tls_identity> id = read_identity(dir.file("cert.pem"), dir.file("key.pem"));
    ASSERT_TRUE(id.ok()) << id.message();
    EXPECT_EQ(id->certificate_pem, kat_certificate);

    const result<tls_identity> other = generate_self_signed();
    ASSERT_TRUE(other.ok());
    write(dir.file("other.pem"), other->private_key_pem);
    const result<tls_identity> wrong = read_identity(dir.file("cert.pem"), dir.file("other.pem"));
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.message().find(dir.file("other.pem") + " is not the key of the certificate"),
              std::string::npos)
        << wrong.message();

    const result<tls_identity> missing = read_identity(dir.file("none.pem"), dir.file("key.pem"));
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.message().find(dir.file("none.pem")), std::string::npos);
}

TEST(kcp_tls, load_or_create_identity_creates_once) {
    temp_dir dir;
    const std::string cert = dir.file("kcp.crt");
    const std::string key = dir.file("kcp.key");
    const result<tls_identity> first = load_or_create_identity(cert, key);
    ASSERT_TRUE(first.ok()) << first.message();
    struct stat st{};
    ASSERT_EQ(::stat(key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_TRUE(std::filesystem::exists(cert));

    const result<tls_identity> again = load_or_create_identity(cert, key);
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(again->certificate_pem, first->certificate_pem);
    EXPECT_EQ(*pin_of_file(cert), *pin_of_pem(first->private_key_pem));

    std::filesystem::remove(key);
    const result<tls_identity> half = load_or_create_identity(cert, key);
    ASSERT_FALSE(half.ok());
    EXPECT_NE(half.message().find(cert + " exists but " + key + " does not"), std::string::npos)
        << half.message();
}

// Moves ciphertext both ways until neither side has any to send.
void pump(tls_session& a, tls_session& b) {
    for (int round = 0; round < 10; ++round) {
        std::string ab;
        std::string ba;
        a.take_ciphertext(ab);
        b.take_ciphertext(ba);
        if (ab.empty() && ba.empty()) {
            return;
        }
        b.put_ciphertext(ab.data(), ab.size());
        a.put_ciphertext(ba.data(), ba.size());
        a.handshake();
        b.handshake();
    }
}

struct session_pair {
    tls_context server_ctx;
    tls_context client_ctx;
    tls_session server;
    tls_session client;
};

session_pair make_sessions(const key_pin& client_expects) {
    result<tls_identity> id = generate_self_signed();
    result<tls_context> s = tls_context::server(*id);
    result<tls_context> c = tls_context::client(client_expects);
    result<tls_session> ss = tls_session::create(*s);
    result<tls_session> cs = tls_session::create(*c);
    return {std::move(*s), std::move(*c), std::move(*ss), std::move(*cs)};
}

TEST(kcp_tls, sessions_with_the_right_pin_connect_and_carry_data) {
    const result<tls_identity> id = generate_self_signed(key_algorithm::p256);
    ASSERT_TRUE(id.ok());
    result<tls_context> s = tls_context::server(*id);
    result<tls_context> c = tls_context::client(s->pin());
    ASSERT_TRUE(s.ok() && c.ok());
    EXPECT_FALSE(c->is_server());
    result<tls_session> server = tls_session::create(*s);
    result<tls_session> client = tls_session::create(*c);
    ASSERT_TRUE(server.ok() && client.ok());

    EXPECT_EQ(client->handshake(), tls_session::status::want_more);
    pump(*client, *server);
    EXPECT_TRUE(client->handshake_done());
    EXPECT_TRUE(server->handshake_done());
    ASSERT_NE(client->peer_pin(), nullptr);
    EXPECT_EQ(*client->peer_pin(), s->pin());
    EXPECT_EQ(server->peer_pin(), nullptr);

    ASSERT_TRUE(client->write("hello server"));
    std::string wire;
    client->take_ciphertext(wire);
    EXPECT_EQ(wire.find("hello server"), std::string::npos); // encrypted
    server->put_ciphertext(wire.data(), wire.size());
    std::string got;
    EXPECT_EQ(server->read(got), tls_session::status::ok);
    EXPECT_EQ(got, "hello server");

    server->shutdown();
    wire.clear();
    server->take_ciphertext(wire);
    client->put_ciphertext(wire.data(), wire.size());
    got.clear();
    EXPECT_EQ(client->read(got), tls_session::status::closed);
}

TEST(kcp_tls, a_wrong_pin_fails_the_handshake_naming_both_hashes) {
    key_pin wrong{};
    wrong.fill(0xAB);
    session_pair p = make_sessions(wrong);
    p.client.handshake();
    pump(p.client, p.server);
    EXPECT_FALSE(p.client.handshake_done());
    EXPECT_EQ(p.client.handshake(), tls_session::status::failed);
    EXPECT_EQ(p.client.error(), "the server's public key does not match the pin: expected " +
                                    to_hex(wrong) + ", got " + to_hex(p.server_ctx.pin()));
    ASSERT_NE(p.client.peer_pin(), nullptr);
    EXPECT_EQ(*p.client.peer_pin(), p.server_ctx.pin());
    // The client's alert reached the server, which fails too.
    EXPECT_EQ(p.server.handshake(), tls_session::status::failed);
    EXPECT_NE(p.server.error().find("TLS handshake failed"), std::string::npos)
        << p.server.error();
}

TEST(kcp_tls, a_server_refuses_bytes_that_are_not_tls) {
    session_pair p = make_sessions(key_pin{});
    const std::string plain = "\x05\x0a\x02\x08\x01";
    p.server.put_ciphertext(plain.data(), plain.size());
    EXPECT_EQ(p.server.handshake(), tls_session::status::failed);
    EXPECT_EQ(p.server.error().rfind("TLS handshake failed: ", 0), 0u) << p.server.error();
}

} // namespace
} // namespace kwik::kcp
