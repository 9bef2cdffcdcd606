// kwik-cp's hello and authentication (controlplane/server/auth.*): the HMAC proof and HKDF data
// key against vectors computed outside OpenSSL, every ServerHello.AuthResult a session can give,
// challenges (single use, expiry, the bounded table), tampered round-2 fields, revoked and unbound
// keys, version and AEAD negotiation, the client helpers against the server, and the key store's
// TOML reader with its error messages.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/server/auth.hpp"

namespace kwik::cp {
namespace {

using kcp::v3::ClientHello;
using kcp::v3::DataKeyMaterial;
using kcp::v3::ServerHello;

bytes32 sequence_from(std::uint8_t first) {
    bytes32 b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
        b[i] = static_cast<std::uint8_t>(first + i);
    }
    return b;
}

bytes32 from_hex(std::string_view hex) {
    bytes32 b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
        b[i] = static_cast<std::uint8_t>(std::stoul(std::string(hex.substr(2 * i, 2)), nullptr, 16));
    }
    return b;
}

std::string str(const bytes32& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// ---------------------------------------------------------------- vectors

// Computed with Python's hmac and hashlib (not OpenSSL):
//   key = bytes(range(0x00, 0x20)); challenge = bytes(range(0x80, 0xA0));
//   nonce = bytes(range(0xC0, 0xE0))
//   hmac.new(key, challenge + nonce + b"client-a", hashlib.sha256).hexdigest()
TEST(AuthVectors, ProofIsHmacSha256OfChallengeNonceClientId) {
    const bytes32 proof = auth_proof(sequence_from(0x00), sequence_from(0x80), sequence_from(0xC0), "client-a");
    EXPECT_EQ(proof, from_hex("3513de952f13b40c896fe38eb84e138a5d61d2d425f21a96993ceae2cbbd89b0"));
}

// RFC 5869 appendix A.1 (test case 1): the first 32 bytes of its 42-byte OKM (HKDF-Expand is
// prefix-consistent: T(1) does not depend on L).
TEST(AuthVectors, HkdfSha256MatchesRfc5869CaseOne) {
    const std::vector<std::uint8_t> ikm(22, 0x0b);
    const std::vector<std::uint8_t> salt{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};
    const std::vector<std::uint8_t> info{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9};
    const result<bytes32> okm = hkdf_sha256(ikm, salt, info);
    ASSERT_TRUE(okm) << okm.message();
    EXPECT_EQ(*okm, from_hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"));
}

// Computed with Python's hmac and hashlib, HKDF written out (RFC 5869 2.2, 2.3):
//   prk = hmac.new(salt, ikm, sha256).digest()
//   okm = hmac.new(prk, b"kwik kcp v3 data key" + bytes([phase]) + b"\x01", sha256).digest()
// with ikm = bytes(range(0x00, 0x20)), salt = bytes(range(0x40, 0x60)).
TEST(AuthVectors, DataKeyIsHkdfWithLabelAndKeyPhase) {
    const result<bytes32> phase0 = derive_data_key(sequence_from(0x00), sequence_from(0x40), 0);
    const result<bytes32> phase7 = derive_data_key(sequence_from(0x00), sequence_from(0x40), 7);
    ASSERT_TRUE(phase0) << phase0.message();
    ASSERT_TRUE(phase7) << phase7.message();
    EXPECT_EQ(*phase0, from_hex("5a698dafd167e915d5e43885a9da406f44ed5d90a40b63e1f5d1d5064d29dce5"));
    EXPECT_EQ(*phase7, from_hex("7852320f34c5bb8823c743dae93c3592ef296db245e853bb67abcb6b1c9d4218"));
}

// ---------------------------------------------------------------- versions

struct version_case {
    const char* description;
    std::vector<protocol_version> ours;
    std::vector<protocol_version> offered;
    std::optional<protocol_version> expected;
};

TEST(AuthVersions, NegotiationFollowsTheClientsOrderAndTheSmallerMinor) {
    const std::vector<version_case> cases = {
        {"exact match", {{3, 0}}, {{3, 0}}, protocol_version{3, 0}},
        {"newer client minor: ours", {{3, 0}}, {{3, 4}}, protocol_version{3, 0}},
        {"older client minor: theirs", {{3, 2}}, {{3, 1}}, protocol_version{3, 1}},
        {"unknown major skipped", {{3, 0}}, {{4, 0}, {3, 1}}, protocol_version{3, 0}},
        {"client preference wins", {{4, 0}, {3, 1}}, {{3, 0}, {4, 1}}, protocol_version{3, 0}},
        {"no common major", {{3, 0}}, {{2, 9}, {4, 0}}, std::nullopt},
        {"nothing offered", {{3, 0}}, {}, std::nullopt},
    };
    for (const version_case& c : cases) {
        ClientHello h;
        for (const protocol_version& v : c.offered) {
            auto* pv = h.add_supported_versions();
            pv->set_major(v.major);
            pv->set_minor(v.minor);
        }
        EXPECT_EQ(negotiate_version(h, c.ours), c.expected) << c.description;
    }
}

// ---------------------------------------------------------------- sessions

constexpr std::uint64_t t0 = 1'700'000'000'000; // ms since the epoch

class HelloTest : public testing::Test {
protected:
    static key_store keys() {
        return key_store({
            {"k-a", sequence_from(0x00), {"client-a"}, false},
            {"k-any", sequence_from(0x20), {}, false},
            {"k-revoked", sequence_from(0x40), {}, true},
        });
    }
    static hello_config config() {
        hello_config c;
        c.server_id = "srv-1";
        c.capabilities = {"multipath", "encryption"};
        c.challenges.lifetime_ms = 10'000;
        c.challenges.capacity = 3;
        return c;
    }

    client_credentials client_a() const { return {"client-a", "k-a", sequence_from(0x00), {{3, 0}}, {"multipath"}}; }

    // Round 1 on a session; the answer must be a CHALLENGE.
    std::pair<ClientHello, ServerHello> challenge(hello_session& s, const client_credentials& c, std::uint64_t now = t0) {
        const ClientHello r1 = client_hello_round1(c, sequence_from(0xC0));
        const ServerHello a1 = s.handle_client_hello(r1, now, false);
        EXPECT_EQ(a1.auth_result(), ServerHello::CHALLENGE) << a1.error_reason();
        return {r1, a1};
    }

    ClientHello round2(const ClientHello& r1, const ServerHello& a1, const bytes32& key) {
        result<ClientHello> r2 = client_hello_round2(r1, a1, key);
        EXPECT_TRUE(r2) << r2.message();
        return r2 ? *r2 : ClientHello{};
    }

    void expect_rejected(const ServerHello& a, ServerHello::AuthResult result, std::string_view reason_part) {
        EXPECT_EQ(a.auth_result(), result) << ServerHello::AuthResult_Name(a.auth_result()) << ": " << a.error_reason();
        EXPECT_NE(a.error_reason().find(reason_part), std::string::npos) << a.error_reason();
        EXPECT_TRUE(a.connection_id().empty());
        EXPECT_FALSE(a.has_data_key());
        EXPECT_TRUE(a.challenge().empty());
    }

    hello_server server{config(), keys()};
};

TEST_F(HelloTest, RoundOneGetsASingleChallenge) {
    hello_session s(server);
    const auto [r1, a1] = challenge(s, client_a());
    EXPECT_EQ(a1.server_id(), "srv-1");
    EXPECT_EQ(a1.challenge().size(), 32u);
    EXPECT_EQ(a1.chosen_version().major(), 3u);
    EXPECT_EQ(a1.chosen_version().minor(), 0u);
    ASSERT_EQ(a1.capabilities_size(), 2);
    EXPECT_EQ(a1.capabilities(0), "multipath");
    EXPECT_TRUE(a1.error_reason().empty());
    EXPECT_TRUE(a1.connection_id().empty());
    EXPECT_EQ(s.current(), hello_session::state::challenged);
    EXPECT_EQ(server.challenges().size(), 1u);
}

TEST_F(HelloTest, AcceptedOverTlsCarriesTheKeyItself) {
    hello_session s(server);
    const auto [r1, a1] = challenge(s, client_a());
    const ServerHello a2 = s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 100, true);
    ASSERT_EQ(a2.auth_result(), ServerHello::ACCEPTED) << a2.error_reason();
    EXPECT_TRUE(a2.error_reason().empty());
    EXPECT_EQ(a2.connection_id().size(), 32u);
    EXPECT_EQ(a2.connection_id().find_first_not_of("0123456789abcdef"), std::string::npos);
    const DataKeyMaterial& m = a2.data_key();
    EXPECT_EQ(m.algorithm(), kcp::v3::AEAD_AES_256_GCM);
    EXPECT_EQ(m.material_case(), DataKeyMaterial::kKey);
    EXPECT_EQ(m.key_phase(), 0u);
    EXPECT_EQ(m.valid_until_ms(), t0 + 100 + 3'600'000);
    EXPECT_EQ(m.max_frames(), std::uint64_t{1} << 23);

    ASSERT_TRUE(s.accepted().has_value());
    const accepted_hello& acc = *s.accepted();
    EXPECT_EQ(acc.connection_id, a2.connection_id());
    EXPECT_EQ(acc.client_id, "client-a");
    EXPECT_EQ(acc.key_id, "k-a");
    EXPECT_EQ(acc.version, (protocol_version{3, 0}));
    EXPECT_EQ(str(acc.data_key), m.key());
    const result<bytes32> client_key = client_data_key(m, sequence_from(0x00));
    ASSERT_TRUE(client_key) << client_key.message();
    EXPECT_EQ(*client_key, acc.data_key);
    EXPECT_EQ(s.current(), hello_session::state::accepted);
    EXPECT_EQ(server.challenges().size(), 0u);
}

TEST_F(HelloTest, AcceptedWithoutTlsCarriesASaltBothSidesDeriveFrom) {
    hello_session s(server);
    const auto [r1, a1] = challenge(s, client_a());
    const ServerHello a2 = s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 100, false);
    ASSERT_EQ(a2.auth_result(), ServerHello::ACCEPTED) << a2.error_reason();
    const DataKeyMaterial& m = a2.data_key();
    ASSERT_EQ(m.material_case(), DataKeyMaterial::kHkdfSalt);
    ASSERT_EQ(m.hkdf_salt().size(), 32u);

    bytes32 salt{};
    std::copy(m.hkdf_salt().begin(), m.hkdf_salt().end(), salt.begin());
    const result<bytes32> expected = derive_data_key(sequence_from(0x00), salt, 0);
    ASSERT_TRUE(expected);
    EXPECT_EQ(s.accepted()->data_key, *expected);
    EXPECT_EQ(s.accepted()->roles, role_bit(role::client)); // the key's roles travel with the session
    const result<bytes32> client_key = client_data_key(m, sequence_from(0x00));
    ASSERT_TRUE(client_key) << client_key.message();
    EXPECT_EQ(*client_key, *expected);
    // Another client key derives another data key from the same salt.
    EXPECT_NE(*client_data_key(m, sequence_from(0x01)), *expected);
}

TEST_F(HelloTest, TwoSessionsGetDifferentChallengesConnectionsAndKeys) {
    hello_session s1(server);
    hello_session s2(server);
    const auto [r1a, a1a] = challenge(s1, client_a());
    const auto [r1b, a1b] = challenge(s2, client_a());
    EXPECT_NE(a1a.challenge(), a1b.challenge());
    const ServerHello x = s1.handle_client_hello(round2(r1a, a1a, sequence_from(0x00)), t0, true);
    const ServerHello y = s2.handle_client_hello(round2(r1b, a1b, sequence_from(0x00)), t0, true);
    ASSERT_EQ(x.auth_result(), ServerHello::ACCEPTED);
    ASSERT_EQ(y.auth_result(), ServerHello::ACCEPTED);
    EXPECT_NE(x.connection_id(), y.connection_id());
    EXPECT_NE(x.data_key().key(), y.data_key().key());
}

// Every way a hello can fail, with the result and a piece of the reason it must give.
struct rejection_case {
    const char* description;
    client_credentials credentials;
    std::function<void(ClientHello&)> tamper_round1; // before round 1 is sent
    ServerHello::AuthResult expected;
    const char* reason;
};

TEST_F(HelloTest, RoundOneRejections) {
    const bytes32 k = sequence_from(0x00);
    const std::vector<rejection_case> cases = {
        {"unknown key", {"client-a", "k-nope", k, {{3, 0}}, {}}, nullptr, ServerHello::REJECTED_UNKNOWN_KEY,
         "unknown key_id \"k-nope\""},
        {"revoked key", {"client-a", "k-revoked", k, {{3, 0}}, {}}, nullptr, ServerHello::REJECTED_UNKNOWN_KEY,
         "\"k-revoked\" is revoked"},
        {"key bound to another client", {"client-b", "k-a", k, {{3, 0}}, {}}, nullptr,
         ServerHello::REJECTED_UNKNOWN_KEY, "not bound to client_id \"client-b\""},
        {"no common version", {"client-a", "k-a", k, {{2, 1}, {4, 0}}, {}}, nullptr,
         ServerHello::REJECTED_UNSUPPORTED_VERSION, "client offers 2.1, 4.0; this server speaks 3.0"},
        {"no version at all", {"client-a", "k-a", k, {}, {}}, nullptr, ServerHello::REJECTED_UNSUPPORTED_VERSION,
         "client offers none"},
        {"no common AEAD", client_a(),
         [](ClientHello& h) {
             h.clear_aead_algorithms();
             h.add_aead_algorithms(kcp::v3::AEAD_ALGORITHM_UNSPECIFIED);
         },
         ServerHello::REJECTED_UNSUPPORTED_VERSION, "no common AEAD algorithm"},
        {"short nonce", client_a(), [](ClientHello& h) { h.set_client_nonce(std::string(16, 'n')); },
         ServerHello::REJECTED_BAD_PROOF, "client_nonce must be 32 bytes, got 16"},
        {"empty client id", client_a(), [](ClientHello& h) { h.clear_client_id(); }, ServerHello::REJECTED_BAD_PROOF,
         "client_id is empty"},
    };
    for (const rejection_case& c : cases) {
        hello_session s(server);
        ClientHello r1 = client_hello_round1(c.credentials, sequence_from(0xC0));
        if (c.tamper_round1) {
            c.tamper_round1(r1);
        }
        expect_rejected(s.handle_client_hello(r1, t0, false), c.expected, c.reason);
        EXPECT_EQ(s.current(), hello_session::state::rejected) << c.description;
        EXPECT_EQ(server.challenges().size(), 0u) << c.description;
    }
}

// Round 2 changed after the client computed it (or computed with the wrong key).
struct tamper_case {
    const char* description;
    std::function<void(ClientHello&)> tamper;
    ServerHello::AuthResult expected;
    const char* reason;
};

TEST_F(HelloTest, TamperedRoundTwoIsRejectedAndBurnsTheChallenge) {
    const std::vector<tamper_case> cases = {
        {"proof bit flipped", [](ClientHello& h) { (*h.mutable_auth_proof())[5] ^= 0x01; },
         ServerHello::REJECTED_BAD_PROOF, "auth_proof does not verify with key_id \"k-a\""},
        {"proof from another key",
         [](ClientHello& h) {
             bytes32 ch{};
             std::copy(h.challenge_echo().begin(), h.challenge_echo().end(), ch.begin());
             h.set_auth_proof(str(auth_proof(sequence_from(0x20), ch, sequence_from(0xC0), h.client_id())));
         },
         ServerHello::REJECTED_BAD_PROOF, "does not verify"},
        {"proof truncated", [](ClientHello& h) { h.mutable_auth_proof()->resize(31); }, ServerHello::REJECTED_BAD_PROOF,
         "auth_proof must be 32 bytes, got 31"},
        {"nonce changed", [](ClientHello& h) { (*h.mutable_client_nonce())[0] ^= 0x80; },
         ServerHello::REJECTED_BAD_PROOF, "client_nonce differs from round 1"},
        {"client id changed", [](ClientHello& h) { h.set_client_id("client-A"); }, ServerHello::REJECTED_UNKNOWN_KEY,
         "not bound to client_id \"client-A\""},
        {"key id changed to an unbound key", [](ClientHello& h) { h.set_key_id("k-any"); },
         ServerHello::REJECTED_BAD_PROOF, "another client_id or key_id than round 1"},
        {"challenge echo changed", [](ClientHello& h) { (*h.mutable_challenge_echo())[31] ^= 0x01; },
         ServerHello::REJECTED_CHALLENGE_EXPIRED, "not the challenge this session was given"},
        {"no challenge echo", [](ClientHello& h) { h.clear_challenge_echo(); }, ServerHello::REJECTED_CHALLENGE_EXPIRED,
         "not the challenge this session was given"},
    };
    for (const tamper_case& c : cases) {
        hello_session s(server);
        const auto [r1, a1] = challenge(s, client_a());
        ClientHello r2 = round2(r1, a1, sequence_from(0x00));
        c.tamper(r2);
        expect_rejected(s.handle_client_hello(r2, t0 + 1, false), c.expected, c.reason);
        EXPECT_EQ(s.current(), hello_session::state::rejected) << c.description;
        EXPECT_EQ(server.challenges().size(), 0u) << c.description;
        // The honest round 2 cannot follow: the session is finished.
        const ServerHello again = s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 2, false);
        expect_rejected(again, ServerHello::REJECTED_CHALLENGE_EXPIRED, "hello is finished: it was rejected");
    }
}

TEST_F(HelloTest, ClientIdChangedToAnAllowedOneStillFailsTheProof) {
    // k-any allows every client id, so the key check passes and the round-1 binding catches it.
    hello_session s(server);
    const client_credentials any{"client-x", "k-any", sequence_from(0x20), {{3, 0}}, {}};
    const auto [r1, a1] = challenge(s, any);
    ClientHello r2 = round2(r1, a1, any.key);
    r2.set_client_id("client-y");
    expect_rejected(s.handle_client_hello(r2, t0, false), ServerHello::REJECTED_BAD_PROOF,
                    "another client_id or key_id than round 1");
}

TEST_F(HelloTest, KeyRevokedBetweenRoundsIsRejected) {
    hello_session s(server);
    const auto [r1, a1] = challenge(s, client_a());
    ASSERT_TRUE(server.keys().revoke("k-a"));
    EXPECT_FALSE(server.keys().revoke("k-nope"));
    expect_rejected(s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 1, false),
                    ServerHello::REJECTED_UNKNOWN_KEY, "\"k-a\" is revoked");
    EXPECT_EQ(server.challenges().size(), 0u);
}

TEST_F(HelloTest, ChallengeExpiresAfterItsLifetime) {
    {
        hello_session s(server);
        const auto [r1, a1] = challenge(s, client_a());
        const ServerHello a2 = s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 9'999, false);
        EXPECT_EQ(a2.auth_result(), ServerHello::ACCEPTED) << a2.error_reason();
    }
    {
        hello_session s(server);
        const auto [r1, a1] = challenge(s, client_a());
        expect_rejected(s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 10'250, false),
                        ServerHello::REJECTED_CHALLENGE_EXPIRED, "expired 250 ms ago (lifetime 10000 ms)");
    }
    {
        hello_session s(server);
        const auto [r1, a1] = challenge(s, client_a());
        EXPECT_EQ(server.challenges().sweep(t0 + 10'000), 1u);
        expect_rejected(s.handle_client_hello(round2(r1, a1, sequence_from(0x00)), t0 + 10'001, false),
                        ServerHello::REJECTED_CHALLENGE_EXPIRED, "no longer live");
    }
}

TEST_F(HelloTest, ChallengeIsSingleUse) {
    hello_session s(server);
    const auto [r1, a1] = challenge(s, client_a());
    const ClientHello r2 = round2(r1, a1, sequence_from(0x00));
    ASSERT_EQ(s.handle_client_hello(r2, t0 + 1, false).auth_result(), ServerHello::ACCEPTED);
    const std::string connection = s.accepted()->connection_id;

    // Replayed on the same session: refused, and the session keeps its connection.
    const ServerHello replay = s.handle_client_hello(r2, t0 + 2, false);
    expect_rejected(replay, ServerHello::REJECTED_CHALLENGE_EXPIRED, "accepted as connection " + connection);
    EXPECT_EQ(s.current(), hello_session::state::accepted);

    // Replayed on a new session, before and after that session asks for its own challenge.
    hello_session fresh(server);
    expect_rejected(fresh.handle_client_hello(r2, t0 + 3, false), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                    "round 2 without round 1");
    hello_session other(server);
    (void)challenge(other, client_a(), t0 + 4);
    expect_rejected(other.handle_client_hello(r2, t0 + 5, false), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                    "not the challenge this session was given");
    // A challenge taken from the table cannot be taken again.
    bytes32 used{};
    std::copy(a1.challenge().begin(), a1.challenge().end(), used.begin());
    EXPECT_EQ(server.challenges().take(used, t0 + 6).what, challenge_table::outcome::unknown);
}

TEST_F(HelloTest, AskingAgainReplacesTheChallenge) {
    hello_session s(server);
    const auto [r1, first] = challenge(s, client_a());
    const auto [r1b, second] = challenge(s, client_a(), t0 + 1);
    EXPECT_NE(first.challenge(), second.challenge());
    EXPECT_EQ(server.challenges().size(), 1u);
    expect_rejected(s.handle_client_hello(round2(r1, first, sequence_from(0x00)), t0 + 2, false),
                    ServerHello::REJECTED_CHALLENGE_EXPIRED, "not the challenge this session was given");
}

TEST_F(HelloTest, FullChallengeTableAnswersOverloaded) {
    std::vector<std::unique_ptr<hello_session>> sessions;
    for (int i = 0; i < 3; ++i) {
        sessions.push_back(std::make_unique<hello_session>(server));
        (void)challenge(*sessions.back(), client_a());
    }
    hello_session late(server);
    expect_rejected(late.handle_client_hello(client_hello_round1(client_a(), sequence_from(0xC0)), t0 + 1, false),
                    ServerHello::REJECTED_OVERLOADED, "challenge table full: 3 live challenges");

    // A session that goes away gives its challenge back.
    sessions.pop_back();
    EXPECT_EQ(server.challenges().size(), 2u);
    hello_session next(server);
    (void)challenge(next, client_a(), t0 + 2);
    // Once the others expire, a full table makes room by dropping them.
    hello_session much_later(server);
    (void)challenge(much_later, client_a(), t0 + 2 + 10'000);
    EXPECT_EQ(server.challenges().size(), 1u);
}

TEST_F(HelloTest, ClientHelpersReportWhatTheyCannotUse) {
    const ClientHello r1 = client_hello_round1(client_a(), sequence_from(0xC0));
    ServerHello rejected;
    rejected.set_auth_result(ServerHello::REJECTED_UNKNOWN_KEY);
    rejected.set_error_reason("unknown key_id \"k-a\"");
    const result<ClientHello> r2 = client_hello_round2(r1, rejected, sequence_from(0x00));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.message(), "the server answered REJECTED_UNKNOWN_KEY: unknown key_id \"k-a\" instead of CHALLENGE");

    ServerHello short_challenge;
    short_challenge.set_auth_result(ServerHello::CHALLENGE);
    short_challenge.set_challenge("abc");
    EXPECT_EQ(client_hello_round2(r1, short_challenge, sequence_from(0x00)).message(),
              "ServerHello.challenge must be 32 bytes, got 3");

    DataKeyMaterial m;
    m.set_algorithm(kcp::v3::AEAD_AES_256_GCM);
    EXPECT_EQ(client_data_key(m, sequence_from(0)).message(), "DataKeyMaterial has neither key nor hkdf_salt");
    m.set_key("short");
    EXPECT_EQ(client_data_key(m, sequence_from(0)).message(), "DataKeyMaterial.key must be 32 bytes, got 5");
    m.set_hkdf_salt(std::string(32, 's'));
    m.set_algorithm(kcp::v3::AEAD_ALGORITHM_UNSPECIFIED);
    EXPECT_EQ(client_data_key(m, sequence_from(0)).message(),
              "DataKeyMaterial.algorithm is AEAD_ALGORITHM_UNSPECIFIED, not AEAD_AES_256_GCM");

    // The random-nonce round 1 differs per call and carries the credentials.
    const result<ClientHello> x = client_hello_round1(client_a());
    const result<ClientHello> y = client_hello_round1(client_a());
    ASSERT_TRUE(x && y);
    EXPECT_EQ(x->client_nonce().size(), 32u);
    EXPECT_NE(x->client_nonce(), y->client_nonce());
    EXPECT_EQ(x->key_id(), "k-a");
    EXPECT_TRUE(x->auth_proof().empty());
}

// ---------------------------------------------------------------- key store

constexpr std::string_view hex_a = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

TEST(KeyStore, ParsesKeysFromTomlText) {
    const std::string text = "[[key]]\nkey_id = \"k-a\"\nsecret = \"" + std::string(hex_a) +
                             "\"\nclient_ids = [\"client-a\", \"client-b\"]\n\n"
                             "[[key]]\nkey_id = \"k-old\"\nsecret = \"" + std::string(64, 'f') + "\"\nrevoked = true\n";
    const result<key_store> store = parse_key_store(text, "keys.toml");
    ASSERT_TRUE(store) << store.message();
    EXPECT_EQ(store->size(), 2u);
    const key_entry* a = store->find("k-a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->secret, sequence_from(0x00));
    EXPECT_EQ(a->client_ids, (std::vector<std::string>{"client-a", "client-b"}));
    EXPECT_FALSE(a->revoked);
    EXPECT_TRUE(a->allows("client-b"));
    EXPECT_FALSE(a->allows("client-c"));
    const key_entry* old = store->find("k-old");
    ASSERT_NE(old, nullptr);
    EXPECT_TRUE(old->revoked);
    EXPECT_TRUE(old->allows("anyone"));
    EXPECT_EQ(store->find("k-nope"), nullptr);
}

TEST(KeyStore, RolesDefaultToClientAndParseEveryName) {
    const std::string text = "[[key]]\nkey_id = \"k-plain\"\nsecret = \"" + std::string(hex_a) +
                             "\"\n[[key]]\nkey_id = \"k-ops\"\nsecret = \"" + std::string(hex_a) +
                             "\"\nroles = [\"operator\", \"server\"]\n";
    const result<key_store> store = parse_key_store(text, "keys.toml");
    ASSERT_TRUE(store) << store.message();
    EXPECT_EQ(store->find("k-plain")->roles, role_bit(role::client));
    EXPECT_EQ(store->find("k-ops")->roles, role_bit(role::operator_) | role_bit(role::server));
    EXPECT_EQ(role_names(store->find("k-ops")->roles), "operator,server");
    EXPECT_EQ(role_names(0), "none");
    EXPECT_EQ(parse_role("Operator"), std::nullopt);
}

TEST(KeyStore, ReadsANestedSection) {
    const std::string text = "[auth]\nchallenge_lifetime_ms = 5000\n\n[[auth.key]]\nkey_id = \"k\"\nsecret = \"" +
                             std::string(hex_a) + "\"\n";
    const result<key_store> store = parse_key_store(text, "kwik-cp.toml", "auth.key");
    ASSERT_TRUE(store) << store.message();
    EXPECT_NE(store->find("k"), nullptr);
}

struct key_store_error_case {
    const char* description;
    std::string text;
    std::string expected; // the whole message
};

TEST(KeyStore, ErrorsNameTheFieldAndLine) {
    const std::string secret = "secret = \"" + std::string(hex_a) + "\"\n";
    const std::vector<key_store_error_case> cases = {
        {"no section", "title = \"x\"\n", "keys.toml: key: missing (expected [[key]] tables)"},
        {"section not tables", "key = 5\n", "keys.toml:1: key: expected an array of tables ([[key]])"},
        {"missing secret", "[[key]]\nkey_id = \"k\"\n", "keys.toml:1: key[0].secret: missing"},
        {"missing key id", "[[key]]\n" + secret, "keys.toml:1: key[0].key_id: missing"},
        {"short secret", "[[key]]\nkey_id = \"k\"\nsecret = \"abcd\"\n",
         "keys.toml:3: key[0].secret: expected 64 hex digits (32 bytes), got 4 characters"},
        {"non-hex secret", "[[key]]\nkey_id = \"k\"\nsecret = \"" + std::string(63, '0') + "g\"\n",
         "keys.toml:3: key[0].secret: expected 64 hex digits (32 bytes), got 64 characters with a non-hex digit"},
        {"secret not a string", "[[key]]\nkey_id = \"k\"\nsecret = 12\n",
         "keys.toml:3: key[0].secret: expected a string of 64 hex digits (32 bytes)"},
        {"misspelt field", "[[key]]\nkey_id = \"k\"\n" + secret + "revokd = true\n",
         "keys.toml:4: key[0].revokd: unknown field (expected key_id, secret, client_ids, revoked, roles)"},
        {"revoked not a boolean", "[[key]]\nkey_id = \"k\"\n" + secret + "revoked = \"yes\"\n",
         "keys.toml:4: key[0].revoked: expected true or false"},
        {"client ids not an array", "[[key]]\nkey_id = \"k\"\n" + secret + "client_ids = \"a\"\n",
         "keys.toml:4: key[0].client_ids: expected an array of strings"},
        {"empty client id", "[[key]]\nkey_id = \"k\"\n" + secret + "client_ids = [\"a\", \"\"]\n",
         "keys.toml:4: key[0].client_ids[1]: expected a non-empty string"},
        {"roles not an array", "[[key]]\nkey_id = \"k\"\n" + secret + "roles = \"operator\"\n",
         "keys.toml:4: key[0].roles: expected a non-empty array of \"client\", \"operator\", \"server\""},
        {"roles empty", "[[key]]\nkey_id = \"k\"\n" + secret + "roles = []\n",
         "keys.toml:4: key[0].roles: expected a non-empty array of \"client\", \"operator\", \"server\""},
        {"unknown role", "[[key]]\nkey_id = \"k\"\n" + secret + "roles = [\"client\", \"admin\"]\n",
         "keys.toml:4: key[0].roles[1]: expected \"client\", \"operator\" or \"server\", got \"admin\""},
        {"duplicate key id", "[[key]]\nkey_id = \"k\"\n" + secret + "[[key]]\nkey_id = \"k\"\n" + secret,
         "keys.toml:5: key[1].key_id: \"k\" is already the key_id of key[0]"},
        {"two problems, both reported", "[[key]]\nkey_id = \"\"\n" + secret + "[[key]]\nkey_id = \"j\"\n",
         "keys.toml:2: key[0].key_id: expected a string of 1 to 128 characters\n"
         "keys.toml:4: key[1].secret: missing"},
        {"not TOML", "[[key]\n", "keys.toml:1: "},
        {"non-ASCII", "# caf\xc3\xa9\n[[key]]\n", "keys.toml:1: a non-ASCII byte; the key store must be ASCII"},
    };
    for (const key_store_error_case& c : cases) {
        const result<key_store> store = parse_key_store(c.text, "keys.toml");
        ASSERT_FALSE(store) << c.description;
        if (std::string_view(c.description) == "not TOML") {
            EXPECT_EQ(store.message().rfind(c.expected, 0), 0u) << store.message();
        } else {
            EXPECT_EQ(store.message(), c.expected) << c.description;
        }
        EXPECT_EQ(store.code(), EINVAL) << c.description;
    }
}

} // namespace
} // namespace kwik::cp
