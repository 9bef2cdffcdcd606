// Hello and authentication for kwik-cp sessions, and the client side of the same exchange.
#include "controlplane/server/auth.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

namespace kwik::cp {

namespace {

using kcp::v3::ClientHello;
using kcp::v3::ServerHello;

constexpr std::string_view data_key_label = "kwik kcp v3 data key";
constexpr std::size_t max_key_id_length = 128;

std::span<const std::uint8_t> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string as_string(std::span<const std::uint8_t> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string openssl_error(std::string_view what) {
    std::string out(what);
    if (const unsigned long e = ERR_get_error(); e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out += ": ";
        out += buf;
    }
    ERR_clear_error();
    return out;
}

bool same_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hex(std::span<const std::uint8_t> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * b.size());
    for (const std::uint8_t v : b) {
        out += digits[v >> 4];
        out += digits[v & 0xF];
    }
    return out;
}

std::string version_list(const ClientHello& hello) {
    std::string out;
    for (const auto& v : hello.supported_versions()) {
        out += (out.empty() ? "" : ", ") + std::to_string(v.major()) + "." + std::to_string(v.minor());
    }
    return out.empty() ? "none" : out;
}

std::string version_list(std::span<const protocol_version> vs) {
    std::string out;
    for (const protocol_version& v : vs) {
        out += (out.empty() ? "" : ", ") + std::to_string(v.major) + "." + std::to_string(v.minor);
    }
    return out;
}

} // namespace

// ---------------------------------------------------------------- primitives

result<void> random_bytes(std::span<std::uint8_t> out) {
    if (out.empty()) {
        return {};
    }
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
        return error{openssl_error("RAND_bytes failed"), EIO};
    }
    return {};
}

bytes32 auth_proof(const bytes32& key, std::span<const std::uint8_t> challenge,
                   std::span<const std::uint8_t> client_nonce, std::string_view client_id) {
    // One buffer, one HMAC call: the three parts are small (64 bytes plus the client id).
    std::string message;
    message.reserve(challenge.size() + client_nonce.size() + client_id.size());
    message += as_string(challenge);
    message += as_string(client_nonce);
    message += client_id;
    bytes32 out{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &length);
    return out;
}

result<bytes32> hkdf_sha256(std::span<const std::uint8_t> ikm, std::span<const std::uint8_t> salt,
                            std::span<const std::uint8_t> info) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr),
                                                          &EVP_KDF_free);
    if (!kdf) {
        return error{openssl_error("EVP_KDF_fetch(HKDF) failed"), EIO};
    }
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), &EVP_KDF_CTX_free);
    if (!ctx) {
        return error{openssl_error("EVP_KDF_CTX_new failed"), EIO};
    }
    // OSSL_PARAM takes non-const pointers; HKDF only reads them.
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm.data()), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()), info.size()),
        OSSL_PARAM_construct_end(),
    };
    bytes32 out{};
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
        return error{openssl_error("HKDF-SHA256 failed"), EIO};
    }
    return out;
}

result<bytes32> derive_data_key(const bytes32& client_key, std::span<const std::uint8_t> salt,
                                std::uint8_t key_phase) {
    std::array<std::uint8_t, data_key_label.size() + 1> info{};
    std::memcpy(info.data(), data_key_label.data(), data_key_label.size());
    info.back() = key_phase;
    return hkdf_sha256(client_key, salt, info);
}

// ---------------------------------------------------------------- versions

std::optional<protocol_version> negotiate_version(const ClientHello& hello, std::span<const protocol_version> ours) {
    for (const auto& offered : hello.supported_versions()) {
        for (const protocol_version& v : ours) {
            if (offered.major() == v.major) {
                return protocol_version{v.major, std::min(offered.minor(), v.minor)};
            }
        }
    }
    return std::nullopt;
}

// ---------------------------------------------------------------- key store

std::optional<role> parse_role(std::string_view name) noexcept {
    if (name == "client") {
        return role::client;
    }
    if (name == "operator") {
        return role::operator_;
    }
    if (name == "server") {
        return role::server;
    }
    return std::nullopt;
}

std::string role_names(role_set roles) {
    std::string out;
    for (const auto& [r, name] : {std::pair{role::client, "client"}, std::pair{role::operator_, "operator"},
                                  std::pair{role::server, "server"}}) {
        if ((roles & role_bit(r)) != 0) {
            out += out.empty() ? "" : ",";
            out += name;
        }
    }
    return out.empty() ? "none" : out;
}

bool key_entry::allows(std::string_view client_id) const {
    return client_ids.empty() || std::find(client_ids.begin(), client_ids.end(), client_id) != client_ids.end();
}

key_store::key_store(std::vector<key_entry> entries) {
    _keys.reserve(entries.size());
    for (key_entry& e : entries) {
        std::string id = e.key_id;
        _keys.try_emplace(std::move(id), std::move(e));
    }
}

const key_entry* key_store::find(std::string_view key_id) const {
    const auto it = _keys.find(key_id);
    return it == _keys.end() ? nullptr : &it->second;
}

bool key_store::revoke(std::string_view key_id) {
    const auto it = _keys.find(key_id);
    if (it == _keys.end()) {
        return false;
    }
    it->second.revoked = true;
    return true;
}

namespace {

// Collects the problems of one key-store document, each with the line it was found at.
class key_problems {
public:
    explicit key_problems(std::string_view source) : _source(source) {}

    void add(const toml::node* at, std::string_view field, std::string_view what) {
        _out << (_count++ ? "\n" : "") << _source;
        if (at != nullptr && at->source().begin.line != 0) {
            _out << ':' << at->source().begin.line;
        }
        _out << ": " << field << ": " << what;
    }
    bool any() const noexcept { return _count != 0; }
    std::string text() const { return _out.str(); }

private:
    std::string _source;
    std::ostringstream _out;
    std::size_t _count = 0;
};

std::optional<bytes32> parse_hex32(std::string_view s) {
    if (s.size() != 2 * secret_size) {
        return std::nullopt;
    }
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    bytes32 out{};
    for (std::size_t i = 0; i < secret_size; ++i) {
        const int hi = nibble(s[2 * i]);
        const int lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

std::optional<key_entry> read_key(const toml::table& t, const std::string& name, key_problems& p) {
    key_entry e;
    bool ok = true;
    const auto fail = [&](const toml::node* at, std::string_view field, std::string_view what) {
        p.add(at, name + "." + std::string(field), what);
        ok = false;
    };
    for (const auto& [k, v] : t) {
        const std::string_view key = k.str();
        if (key != "key_id" && key != "secret" && key != "client_ids" && key != "revoked" && key != "roles") {
            fail(&v, key, "unknown field (expected key_id, secret, client_ids, revoked, roles)");
        }
    }
    if (const toml::node* n = t.get("key_id"); n == nullptr) {
        fail(&t, "key_id", "missing");
    } else if (const auto s = n->value<std::string>(); !s || s->empty() || s->size() > max_key_id_length) {
        fail(n, "key_id", "expected a string of 1 to 128 characters");
    } else {
        e.key_id = *s;
    }
    if (const toml::node* n = t.get("secret"); n == nullptr) {
        fail(&t, "secret", "missing");
    } else if (const auto s = n->value<std::string>(); !s) {
        fail(n, "secret", "expected a string of 64 hex digits (32 bytes)");
    } else if (const auto b = parse_hex32(*s); !b) {
        fail(n, "secret", "expected 64 hex digits (32 bytes), got " + std::to_string(s->size()) + " characters" +
                              (s->size() == 2 * secret_size ? " with a non-hex digit" : ""));
    } else {
        e.secret = *b;
    }
    if (const toml::node* n = t.get("client_ids"); n != nullptr) {
        const toml::array* a = n->as_array();
        if (a == nullptr) {
            fail(n, "client_ids", "expected an array of strings");
        } else {
            for (std::size_t i = 0; i < a->size(); ++i) {
                const auto s = (*a)[i].value<std::string>();
                if (!s || s->empty()) {
                    fail(&(*a)[i], "client_ids[" + std::to_string(i) + "]", "expected a non-empty string");
                } else {
                    e.client_ids.push_back(*s);
                }
            }
        }
    }
    if (const toml::node* n = t.get("revoked"); n != nullptr) {
        if (const auto b = n->value<bool>(); !b) {
            fail(n, "revoked", "expected true or false");
        } else {
            e.revoked = *b;
        }
    }
    if (const toml::node* n = t.get("roles"); n != nullptr) {
        const toml::array* a = n->as_array();
        if (a == nullptr || a->empty()) {
            fail(n, "roles", "expected a non-empty array of \"client\", \"operator\", \"server\"");
        } else {
            e.roles = 0;
            for (std::size_t i = 0; i < a->size(); ++i) {
                const auto s = (*a)[i].value<std::string>();
                const auto r = s ? parse_role(*s) : std::nullopt;
                if (!r) {
                    fail(&(*a)[i], "roles[" + std::to_string(i) + "]",
                         "expected \"client\", \"operator\" or \"server\"" +
                             (s ? ", got \"" + *s + "\"" : std::string()));
                } else {
                    e.roles |= role_bit(*r);
                }
            }
        }
    }
    if (!ok) {
        return std::nullopt;
    }
    return e;
}

} // namespace

result<key_store> parse_key_store(std::string_view toml_text, std::string_view source_name, std::string_view section) {
    key_problems problems(source_name);
    for (std::size_t i = 0; i < toml_text.size(); ++i) {
        if ((static_cast<unsigned char>(toml_text[i]) & 0x80) != 0) {
            const auto line = 1 + std::count(toml_text.begin(), toml_text.begin() + static_cast<std::ptrdiff_t>(i), '\n');
            return error{std::string(source_name) + ":" + std::to_string(line) +
                         ": a non-ASCII byte; the key store must be ASCII", EINVAL};
        }
    }
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        return error{std::string(source_name) + ":" + std::to_string(e.source().begin.line) + ": " +
                     std::string(e.description()), EINVAL};
    }
    const toml::node_view<toml::node> at = root.at_path(section);
    if (!at) {
        return error{std::string(source_name) + ": " + std::string(section) + ": missing (expected [[" +
                     std::string(section) + "]] tables)", EINVAL};
    }
    const toml::array* keys = at.as_array();
    if (keys == nullptr || !keys->is_array_of_tables()) {
        problems.add(at.node(), section, "expected an array of tables ([[" + std::string(section) + "]])");
        return error{problems.text(), EINVAL};
    }
    std::vector<key_entry> entries;
    std::unordered_map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < keys->size(); ++i) {
        const toml::table& t = *(*keys)[i].as_table();
        const std::string name = std::string(section) + "[" + std::to_string(i) + "]";
        std::optional<key_entry> e = read_key(t, name, problems);
        if (!e) {
            continue;
        }
        if (const auto [it, fresh] = seen.try_emplace(e->key_id, i); !fresh) {
            problems.add(t.get("key_id"), name + ".key_id",
                         "\"" + e->key_id + "\" is already the key_id of " + std::string(section) + "[" +
                             std::to_string(it->second) + "]");
            continue;
        }
        entries.push_back(std::move(*e));
    }
    if (problems.any()) {
        return error{problems.text(), EINVAL};
    }
    return key_store(std::move(entries));
}

// ---------------------------------------------------------------- challenges

std::size_t challenge_table::bytes32_hash::operator()(const bytes32& b) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, b.data(), sizeof h);
    return h;
}

challenge_table::challenge_table(config c) : _config(c) {
    _live.reserve(c.capacity);
}

result<bytes32> challenge_table::issue(std::uint64_t now_ms) {
    if (_live.size() >= _config.capacity && sweep(now_ms) == 0) {
        return error{"challenge table full: " + std::to_string(_live.size()) + " live challenges", EBUSY};
    }
    bytes32 c{};
    if (result<void> r = random_bytes(c); !r) {
        return r.failure();
    }
    _live.insert_or_assign(c, now_ms + _config.lifetime_ms);
    return c;
}

challenge_table::taken challenge_table::take(const bytes32& challenge, std::uint64_t now_ms) {
    const auto it = _live.find(challenge);
    if (it == _live.end()) {
        return {};
    }
    const std::uint64_t expires = it->second;
    _live.erase(it);
    if (now_ms >= expires) {
        return {outcome::expired, now_ms - expires};
    }
    return {outcome::live, 0};
}

void challenge_table::withdraw(const bytes32& challenge) noexcept {
    _live.erase(challenge);
}

std::size_t challenge_table::sweep(std::uint64_t now_ms) {
    return std::erase_if(_live, [now_ms](const auto& kv) { return now_ms >= kv.second; });
}

// ---------------------------------------------------------------- server side

hello_server::hello_server(hello_config config, key_store keys)
    : _config(std::move(config)), _keys(std::move(keys)), _challenges(_config.challenges) {}

hello_session::~hello_session() {
    if (_challenge) {
        _server.challenges().withdraw(*_challenge);
    }
}

ServerHello hello_session::reject(ServerHello reply, ServerHello::AuthResult why, std::string reason) {
    if (_challenge) {
        _server.challenges().withdraw(*_challenge);
        _challenge.reset();
    }
    _state = state::rejected;
    reply.clear_challenge();
    reply.set_auth_result(why);
    reply.set_error_reason(std::move(reason));
    return reply;
}

ServerHello hello_session::handle_client_hello(const ClientHello& hello, std::uint64_t now_ms, bool over_tls) {
    const hello_config& cfg = _server.config();
    ServerHello reply;
    reply.set_server_id(cfg.server_id);

    if (_state == state::accepted || _state == state::rejected) {
        // Not reject(): the session's outcome stands; the caller is closing it or already did.
        reply.set_auth_result(ServerHello::REJECTED_CHALLENGE_EXPIRED);
        reply.set_error_reason(_state == state::accepted
                                   ? "this session's hello is finished: accepted as connection " +
                                         _accepted->connection_id
                                   : std::string("this session's hello is finished: it was rejected"));
        return reply;
    }
    const bool round2 = !hello.auth_proof().empty() || !hello.challenge_echo().empty();

    if (hello.client_id().empty()) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF, "ClientHello.client_id is empty");
    }
    const std::optional<protocol_version> version = negotiate_version(hello, cfg.versions);
    if (!version) {
        return reject(std::move(reply), ServerHello::REJECTED_UNSUPPORTED_VERSION,
                      "no common protocol version: the client offers " + version_list(hello) +
                          "; this server speaks " + version_list(cfg.versions));
    }
    reply.mutable_chosen_version()->set_major(version->major);
    reply.mutable_chosen_version()->set_minor(version->minor);
    // AES-256-GCM is the one AEAD of v3, so a client that lists none gets it.
    const auto& aeads = hello.aead_algorithms();
    if (!aeads.empty() && std::find(aeads.begin(), aeads.end(), kcp::v3::AEAD_AES_256_GCM) == aeads.end()) {
        return reject(std::move(reply), ServerHello::REJECTED_UNSUPPORTED_VERSION,
                      "no common AEAD algorithm: this server supports AEAD_AES_256_GCM only");
    }
    const key_entry* key = _server.keys().find(hello.key_id());
    if (key == nullptr) {
        return reject(std::move(reply), ServerHello::REJECTED_UNKNOWN_KEY,
                      "unknown key_id \"" + hello.key_id() + "\"");
    }
    if (key->revoked) {
        return reject(std::move(reply), ServerHello::REJECTED_UNKNOWN_KEY,
                      "key_id \"" + hello.key_id() + "\" is revoked");
    }
    if (!key->allows(hello.client_id())) {
        return reject(std::move(reply), ServerHello::REJECTED_UNKNOWN_KEY,
                      "key_id \"" + hello.key_id() + "\" is not bound to client_id \"" + hello.client_id() + "\"");
    }
    if (hello.client_nonce().size() != secret_size) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF,
                      "ClientHello.client_nonce must be 32 bytes, got " + std::to_string(hello.client_nonce().size()));
    }
    for (const std::string& c : cfg.capabilities) {
        reply.add_capabilities(c);
    }

    if (!round2) {
        if (_challenge) { // asked again: the earlier challenge will never be answered
            _server.challenges().withdraw(*_challenge);
            _challenge.reset();
        }
        result<bytes32> challenge = _server.challenges().issue(now_ms);
        if (!challenge) {
            return reject(std::move(reply), ServerHello::REJECTED_OVERLOADED,
                          "cannot issue a challenge: " + challenge.message());
        }
        _challenge = *challenge;
        _client_id = hello.client_id();
        _key_id = hello.key_id();
        _client_nonce = hello.client_nonce();
        _state = state::challenged;
        reply.set_challenge(as_string(*challenge));
        reply.set_auth_result(ServerHello::CHALLENGE);
        return reply;
    }

    if (_state != state::challenged || !_challenge) {
        return reject(std::move(reply), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                      "no challenge was issued on this session (round 2 without round 1)");
    }
    if (hello.client_id() != _client_id || hello.key_id() != _key_id) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF,
                      "round 2 names another client_id or key_id than round 1");
    }
    if (hello.client_nonce() != _client_nonce) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF, "round 2's client_nonce differs from round 1's");
    }
    if (!same_bytes(as_bytes(hello.challenge_echo()), *_challenge)) {
        return reject(std::move(reply), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                      "challenge_echo is not the challenge this session was given");
    }
    const bytes32 challenge = *_challenge;
    _challenge.reset(); // taken below, whatever the outcome: each challenge is answered once
    const challenge_table::taken taken = _server.challenges().take(challenge, now_ms);
    if (taken.what == challenge_table::outcome::expired) {
        return reject(std::move(reply), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                      "the challenge expired " + std::to_string(taken.expired_for_ms) + " ms ago (lifetime " +
                          std::to_string(_server.challenges().settings().lifetime_ms) + " ms)");
    }
    if (taken.what == challenge_table::outcome::unknown) {
        return reject(std::move(reply), ServerHello::REJECTED_CHALLENGE_EXPIRED,
                      "the challenge is no longer live (expired and swept)");
    }
    if (hello.auth_proof().size() != secret_size) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF,
                      "ClientHello.auth_proof must be 32 bytes, got " + std::to_string(hello.auth_proof().size()));
    }
    const bytes32 expected = auth_proof(key->secret, challenge, as_bytes(_client_nonce), _client_id);
    if (!same_bytes(as_bytes(hello.auth_proof()), expected)) {
        return reject(std::move(reply), ServerHello::REJECTED_BAD_PROOF,
                      "auth_proof does not verify with key_id \"" + _key_id + "\"");
    }
    return accept(std::move(reply), hello, *key, *version, now_ms, over_tls);
}

ServerHello hello_session::accept(ServerHello reply, const ClientHello& hello, const key_entry& key,
                                  protocol_version version, std::uint64_t now_ms, bool over_tls) {
    const hello_config& cfg = _server.config();
    accepted_hello a;
    a.client_id = hello.client_id();
    a.key_id = hello.key_id();
    a.roles = key.roles;
    a.version = version;
    a.valid_until_ms = cfg.data_key_lifetime_ms == 0 ? 0 : now_ms + cfg.data_key_lifetime_ms;
    a.max_frames = cfg.data_key_max_frames;

    std::array<std::uint8_t, 16> id{};
    bytes32 random{}; // the key itself over TLS, else the HKDF salt
    if (!random_bytes(id) || !random_bytes(random)) {
        return reject(std::move(reply), ServerHello::REJECTED_OVERLOADED, "cannot draw random bytes");
    }
    a.connection_id = hex(id);
    kcp::v3::DataKeyMaterial* m = reply.mutable_data_key();
    if (over_tls) {
        a.data_key = random;
        m->set_key(as_string(random));
    } else {
        result<bytes32> derived = derive_data_key(key.secret, random, a.key_phase);
        if (!derived) {
            return reject(std::move(reply), ServerHello::REJECTED_OVERLOADED, derived.message());
        }
        a.data_key = *derived;
        m->set_hkdf_salt(as_string(random));
    }
    m->set_algorithm(a.aead);
    m->set_key_phase(a.key_phase);
    m->set_valid_until_ms(a.valid_until_ms);
    m->set_max_frames(a.max_frames);
    reply.set_connection_id(a.connection_id);
    reply.set_auth_result(ServerHello::ACCEPTED);
    _accepted = std::move(a);
    _state = state::accepted;
    return reply;
}

// ---------------------------------------------------------------- client side

ClientHello client_hello_round1(const client_credentials& credentials, const bytes32& nonce) {
    ClientHello h;
    h.set_client_id(credentials.client_id);
    h.set_key_id(credentials.key_id);
    for (const protocol_version& v : credentials.versions) {
        kcp::v3::ProtocolVersion* pv = h.add_supported_versions();
        pv->set_major(v.major);
        pv->set_minor(v.minor);
    }
    for (const std::string& c : credentials.capabilities) {
        h.add_capabilities(c);
    }
    h.set_client_nonce(as_string(nonce));
    h.add_aead_algorithms(kcp::v3::AEAD_AES_256_GCM);
    return h;
}

result<ClientHello> client_hello_round1(const client_credentials& credentials) {
    bytes32 nonce{};
    if (result<void> r = random_bytes(nonce); !r) {
        return r.failure();
    }
    return client_hello_round1(credentials, nonce);
}

result<ClientHello> client_hello_round2(const ClientHello& round1, const ServerHello& challenge, const bytes32& key) {
    if (challenge.auth_result() != ServerHello::CHALLENGE) {
        return error{"the server answered " + ServerHello::AuthResult_Name(challenge.auth_result()) +
                     (challenge.error_reason().empty() ? std::string() : ": " + challenge.error_reason()) +
                     " instead of CHALLENGE", EACCES};
    }
    if (challenge.challenge().size() != secret_size) {
        return error{"ServerHello.challenge must be 32 bytes, got " + std::to_string(challenge.challenge().size()),
                     EPROTO};
    }
    ClientHello h = round1;
    h.set_challenge_echo(challenge.challenge());
    const bytes32 proof = auth_proof(key, as_bytes(challenge.challenge()), as_bytes(round1.client_nonce()),
                                     round1.client_id());
    h.set_auth_proof(as_string(proof));
    return h;
}

result<bytes32> client_data_key(const kcp::v3::DataKeyMaterial& material, const bytes32& key) {
    if (material.algorithm() != kcp::v3::AEAD_AES_256_GCM) {
        return error{"DataKeyMaterial.algorithm is " + kcp::v3::AeadAlgorithm_Name(material.algorithm()) +
                     ", not AEAD_AES_256_GCM", EPROTO};
    }
    if (material.key_phase() > 255) {
        return error{"DataKeyMaterial.key_phase " + std::to_string(material.key_phase()) + " is above 255", EPROTO};
    }
    switch (material.material_case()) {
    case kcp::v3::DataKeyMaterial::kKey: {
        if (material.key().size() != secret_size) {
            return error{"DataKeyMaterial.key must be 32 bytes, got " + std::to_string(material.key().size()), EPROTO};
        }
        bytes32 out{};
        std::memcpy(out.data(), material.key().data(), out.size());
        return out;
    }
    case kcp::v3::DataKeyMaterial::kHkdfSalt:
        if (material.hkdf_salt().size() != secret_size) {
            return error{"DataKeyMaterial.hkdf_salt must be 32 bytes, got " +
                             std::to_string(material.hkdf_salt().size()), EPROTO};
        }
        return derive_data_key(key, as_bytes(material.hkdf_salt()), static_cast<std::uint8_t>(material.key_phase()));
    case kcp::v3::DataKeyMaterial::MATERIAL_NOT_SET:
        break;
    }
    return error{"DataKeyMaterial has neither key nor hkdf_salt", EPROTO};
}

} // namespace kwik::cp
