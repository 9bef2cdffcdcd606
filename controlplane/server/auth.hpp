// kwik-cp's hello and authentication (proto/kcp.proto ClientHello / ServerHello): the key store,
// the challenge table, version and AEAD negotiation, data-key material and one KCP session's
// hello state machine; plus the client side of the same exchange (kwikctl, kwik-peer). Pure
// logic: no sockets; time is passed in as ms since the Unix epoch. One thread: the one that owns
// the sessions (nothing here is locked). Crypto is OpenSSL 3 (RAND_bytes, HMAC, EVP_KDF HKDF).
//
// The exchange (docs/KCP_SERVER.md section 1 has the order of checks):
//   client -> ClientHello round 1: client_id, supported_versions, key_id, client_nonce
//   server -> ServerHello CHALLENGE: challenge (32 random bytes, single use, expiring)
//   client -> ClientHello round 2: the same fields, challenge_echo, auth_proof =
//             HMAC-SHA256(key, challenge || client_nonce || client_id)
//   server -> ServerHello ACCEPTED (connection_id, data_key) or REJECTED_* with error_reason
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"
#include "controlplane/server/kcp_types.hpp"
#include "proto/kcp.pb.h"

namespace kwik::cp {

using kwik::error;
using kwik::result;

// ---------------------------------------------------------------- primitives

// Fills out with bytes from OpenSSL's CSPRNG; an error only when RAND_bytes fails.
result<void> random_bytes(std::span<std::uint8_t> out);

// HMAC-SHA256(key, challenge || client_nonce || client_id as UTF-8), the ClientHello auth_proof.
bytes32 auth_proof(const bytes32& key, std::span<const std::uint8_t> challenge,
                   std::span<const std::uint8_t> client_nonce, std::string_view client_id);

// RFC 5869 HKDF-SHA256 (extract then expand) with a 32-byte output, through EVP_KDF "HKDF".
result<bytes32> hkdf_sha256(std::span<const std::uint8_t> ikm, std::span<const std::uint8_t> salt,
                            std::span<const std::uint8_t> info);

// The data key of DataKeyMaterial.hkdf_salt: HKDF-SHA256(ikm = the client's key, salt,
// info = "kwik kcp v3 data key" || key_phase as one byte).
result<bytes32> derive_data_key(const bytes32& client_key, std::span<const std::uint8_t> salt,
                                std::uint8_t key_phase);

// ---------------------------------------------------------------- versions

// The first of the client's versions (its order is its preference) whose major one of ours
// shares; the chosen minor is the smaller of the two, since a minor version only adds fields
// (proto3 ignores unknown ones), so both sides speak the older minor. nullopt: no common major.
std::optional<protocol_version> negotiate_version(const kcp::v3::ClientHello& hello,
                                                  std::span<const protocol_version> ours);

// ---------------------------------------------------------------- key store

// What a session authenticated with a key may do after its hello (docs/KCP_SERVER.md):
//   client:   its own connection (paths, transport commands, scaling, health, discovery);
//   operator: kwikctl's OperatorRequests on every connection and the registry;
//   server:   registry membership (ServerRegistration, ServerHeartbeat, ServerDeregistration).
// A bit set; a key has client only unless its entry says otherwise.
enum class role : std::uint8_t { client = 1, operator_ = 2, server = 4 };
using role_set = std::uint8_t;
inline constexpr role_set role_bit(role r) noexcept { return static_cast<role_set>(r); }
// "client", "operator", "server"; nullopt for any other name.
std::optional<role> parse_role(std::string_view name) noexcept;
// "client,operator" (in that order); "none" for the empty set.
std::string role_names(role_set roles);

struct key_entry {
    std::string key_id{};
    bytes32 secret{};
    std::vector<std::string> client_ids{}; // the client ids this key may authenticate; empty: any
    bool revoked = false;
    role_set roles = role_bit(role::client);

    bool allows(std::string_view client_id) const;
};

// key_id -> key. Built from entries (a config section, a test) or parsed from TOML text.
class key_store {
public:
    key_store() = default;
    // key_ids should be unique (parse_key_store refuses duplicates); of duplicates the first wins.
    explicit key_store(std::vector<key_entry> entries);

    const key_entry* find(std::string_view key_id) const;
    // Marks a key revoked (kwikctl); sessions that already finished their hello are not touched.
    // false: no such key.
    bool revoke(std::string_view key_id);
    std::size_t size() const noexcept { return _keys.size(); }

private:
    std::unordered_map<std::string, key_entry, string_hash, std::equal_to<>> _keys;
};

// Reads the keys from `section` (a dotted path to an array of tables, "key" for [[key]] at the
// top level, "auth.key" for [[auth.key]]) of a TOML document:
//   [[key]]
//   key_id = "edge-01"                      # required, unique, 1..128 characters
//   secret = "<64 hex digits>"              # required: the 32-byte pre-shared key
//   client_ids = ["client-a", "client-b"]   # optional; absent or empty: any client id
//   revoked = false                         # optional
//   roles = ["client", "operator", "server"] # optional; absent: ["client"]; not empty
// Every problem is reported, one a line, as "source:line: key[2].secret: what is wrong"; unknown
// fields are errors (a misspelt `revoked` must not leave a key live). The text must be ASCII
// (toml++ 3.3.0 misbehaves on some non-ASCII input; see dataplane/engine/config.cpp).
result<key_store> parse_key_store(std::string_view toml_text, std::string_view source_name,
                                  std::string_view section = "key");

// ---------------------------------------------------------------- challenges

// The challenges issued and not yet answered, across all sessions of the process: each is 32
// random bytes, live for `lifetime_ms` and taken at most once. The table is bounded: a full
// table (after dropping expired entries) refuses to issue, which a session answers with
// REJECTED_OVERLOADED rather than evicting another client's live challenge.
class challenge_table {
public:
    struct config {
        std::uint32_t lifetime_ms = 10'000;
        std::size_t capacity = 4096; // outstanding challenges (48 bytes each, plus the hash node)
    };
    enum class outcome : std::uint8_t { live, expired, unknown };
    struct taken {
        outcome what = outcome::unknown;
        std::uint64_t expired_for_ms = 0; // outcome::expired: how long ago it expired
    };

    explicit challenge_table(config c);

    // A new challenge; error code EBUSY when the table is full of live challenges, EIO when
    // RAND_bytes fails.
    result<bytes32> issue(std::uint64_t now_ms);
    // Removes the challenge in every case, so that each is answered at most once.
    taken take(const bytes32& challenge, std::uint64_t now_ms);
    // Drops a challenge nobody will answer (its session closed or asked again).
    void withdraw(const bytes32& challenge) noexcept;
    // Drops the expired ones; returns how many.
    std::size_t sweep(std::uint64_t now_ms);

    std::size_t size() const noexcept { return _live.size(); }
    const config& settings() const noexcept { return _config; }

private:
    struct bytes32_hash {
        std::size_t operator()(const bytes32& b) const noexcept; // the bytes are random already
    };
    config _config;
    std::unordered_map<bytes32, std::uint64_t, bytes32_hash> _live; // challenge -> expires at (ms)
};

// ---------------------------------------------------------------- server side

struct hello_config {
    std::string server_id{};                                 // ServerHello.server_id
    std::vector<protocol_version> versions{{3, 0}};          // ours, most preferred first
    std::vector<std::string> capabilities{};                 // ServerHello.capabilities
    challenge_table::config challenges{};
    std::uint32_t data_key_lifetime_ms = 3'600'000;          // valid_until_ms = now + this; 0: none
    std::uint64_t data_key_max_frames = std::uint64_t{1} << 23; // RFC 9001 6.6 AES-GCM limit
};

// What every session of the process shares: configuration, keys and the challenge table.
// Must outlive its sessions.
class hello_server {
public:
    hello_server(hello_config config, key_store keys);

    const hello_config& config() const noexcept { return _config; }
    key_store& keys() noexcept { return _keys; }
    challenge_table& challenges() noexcept { return _challenges; }

private:
    hello_config _config;
    key_store _keys;
    challenge_table _challenges;
};

// A session that passed its hello: what the rest of kwik-cp (and kwikd, for ENCRYPTED frames)
// needs to know about it.
struct accepted_hello {
    std::string connection_id; // 32 lowercase hex digits (128 random bits)
    std::string client_id{};
    std::string key_id{};
    role_set roles = role_bit(role::client); // the key's roles at the hello
    protocol_version version{};
    kcp::v3::AeadAlgorithm aead = kcp::v3::AEAD_AES_256_GCM;
    std::uint8_t key_phase = 0;
    bytes32 data_key{};           // the key itself, sent or derived alike
    std::uint64_t valid_until_ms = 0;
    std::uint64_t max_frames = 0;
};

// The hello of one KCP session. Any REJECTED_* answer ends the session's hello for good (the
// caller closes the session after sending it); so does ACCEPTED. Later ClientHellos on a finished
// session are answered REJECTED_CHALLENGE_EXPIRED and change nothing.
class hello_session {
public:
    enum class state : std::uint8_t { awaiting_hello, challenged, accepted, rejected };

    explicit hello_session(hello_server& server) : _server(server) {}
    ~hello_session();
    hello_session(const hello_session&) = delete;
    hello_session& operator=(const hello_session&) = delete;

    // Round 1 (auth_proof and challenge_echo empty) -> CHALLENGE; round 2 -> ACCEPTED or
    // REJECTED_*. over_tls: the session runs over TLS, so ACCEPTED carries the data key itself;
    // otherwise an hkdf_salt from which both sides derive it. The caller sets in_reply_to.
    kcp::v3::ServerHello handle_client_hello(const kcp::v3::ClientHello& hello, std::uint64_t now_ms,
                                             bool over_tls);

    state current() const noexcept { return _state; }
    // Set once the session is accepted.
    const std::optional<accepted_hello>& accepted() const noexcept { return _accepted; }

private:
    kcp::v3::ServerHello reject(kcp::v3::ServerHello reply, kcp::v3::ServerHello::AuthResult why,
                                std::string reason);
    kcp::v3::ServerHello accept(kcp::v3::ServerHello reply, const kcp::v3::ClientHello& hello,
                                const key_entry& key, protocol_version version, std::uint64_t now_ms,
                                bool over_tls);

    hello_server& _server;
    state _state = state::awaiting_hello;
    // Round 1 as the session saw it; round 2 must repeat it.
    std::string _client_id;
    std::string _key_id;
    std::string _client_nonce;
    std::optional<bytes32> _challenge; // issued and not yet answered
    std::optional<accepted_hello> _accepted;
};

// ---------------------------------------------------------------- client side

struct client_credentials {
    std::string client_id{};
    std::string key_id{};
    bytes32 key{};
    std::vector<protocol_version> versions{{3, 0}}; // most preferred first
    std::vector<std::string> capabilities{};
};

// Round 1 with the given 32-byte nonce (tests), or with a fresh random one.
kcp::v3::ClientHello client_hello_round1(const client_credentials& credentials, const bytes32& nonce);
result<kcp::v3::ClientHello> client_hello_round1(const client_credentials& credentials);

// Round 2 from round 1 and the server's CHALLENGE answer; an error when the answer is not a
// CHALLENGE (its result and reason quoted) or its challenge is not 32 bytes.
result<kcp::v3::ClientHello> client_hello_round2(const kcp::v3::ClientHello& round1,
                                                 const kcp::v3::ServerHello& challenge,
                                                 const bytes32& key);

// The data key of an ACCEPTED ServerHello's DataKeyMaterial: the key itself, or derived from
// hkdf_salt with the client's key. An error names what is missing or malformed.
result<bytes32> client_data_key(const kcp::v3::DataKeyMaterial& material, const bytes32& key);

} // namespace kwik::cp
