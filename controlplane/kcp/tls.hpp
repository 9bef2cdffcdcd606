// TLS 1.3 for KCP sessions (PROTOCOL.md 11.2), with OpenSSL 3. A server presents a certificate;
// a client trusts it by pinning: the SHA-256 of the certificate's SubjectPublicKeyInfo (DER) must
// equal the 32 bytes it was given (ServerDiscoveryResponse's tls_pubkey_hash_sha256, or kwikctl's
// --pin), with no CA involved. Also: the pin of a certificate or key file, self-signed identities,
// and tls_session, one connection's TLS state over memory buffers (the channel does the socket
// I/O). Contexts may be shared by the sessions of one thread; a session belongs to one thread.
#pragma once

#include <openssl/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace kwik::kcp {

using kwik::error;
using kwik::result;

// SHA-256 of a SubjectPublicKeyInfo in DER: what a client pins.
using key_pin = std::array<std::uint8_t, 32>;

// 64 lowercase hex digits.
std::string to_hex(const key_pin& pin);
// 64 hex digits (either case; ':' between bytes allowed, as openssl prints fingerprints).
result<key_pin> parse_pin(std::string_view text);
// The 32 raw bytes of a protobuf bytes field (tls_pubkey_hash_sha256).
result<key_pin> pin_from_bytes(std::string_view bytes);

// A certificate and its private key, PEM.
struct tls_identity {
    std::string certificate_pem;
    std::string private_key_pem;
};

enum class key_algorithm : std::uint8_t { ed25519, p256 };

// A new key and a self-signed certificate for it (subject CN = common_name, valid from a minute
// ago for validity). Pinning ignores the validity period and the names; they are informative.
result<tls_identity> generate_self_signed(key_algorithm algorithm = key_algorithm::ed25519,
                                          std::string_view common_name = "kwik-cp",
                                          std::chrono::seconds validity = std::chrono::hours(
                                              24 * 3650));

// Reads a certificate (the first one of the file is the server's) and its private key, and
// checks that they belong together.
result<tls_identity> read_identity(const std::string& certificate_path,
                                   const std::string& private_key_path);

// kwik-cp's start (PROTOCOL.md 11.2, decision 8): both files exist: read_identity; neither:
// generate_self_signed(algorithm) and write them (the key 0600, each through a temporary file
// and rename), so the pin survives restarts; only one of them: an error naming the other.
result<tls_identity> load_or_create_identity(const std::string& certificate_path,
                                             const std::string& private_key_path,
                                             key_algorithm algorithm = key_algorithm::ed25519);

// The pin of the first PEM object of pem: a certificate, a public key or a private key.
result<key_pin> pin_of_pem(std::string_view pem);
// The same for a file (kwikctl pin FILE, the registry advertising a server).
result<key_pin> pin_of_file(const std::string& path);

// An SSL_CTX for one role: TLS 1.3 only, no session tickets.
class tls_context {
public:
    // Presents identity; asks nothing of clients (they authenticate in ClientHello, 11.2).
    static result<tls_context> server(const tls_identity& identity);
    // Accepts exactly the server whose public key has this pin.
    static result<tls_context> client(const key_pin& expected);

    bool is_server() const noexcept { return _server; }
    // Server: the pin of its own key (to print and advertise). Client: the expected pin.
    const key_pin& pin() const noexcept { return _pin; }
    SSL_CTX* native() const noexcept { return _ctx.get(); }

private:
    tls_context(SSL_CTX* ctx, const key_pin& pin, bool server);

    std::shared_ptr<SSL_CTX> _ctx; // shared by copies; each SSL holds its own reference too
    key_pin _pin;
    bool _server;
};

// One connection's TLS: ciphertext from the socket goes in with put_ciphertext(), ciphertext for
// the socket comes out of take_ciphertext(); plaintext through read()/write() once the handshake
// is done. Works on memory only, so the owner chooses how to do the socket I/O (non-blocking,
// MSG_NOSIGNAL).
class tls_session {
public:
    enum class status : std::uint8_t {
        ok,        // handshake: done; read: all plaintext available was appended
        want_more, // handshake: needs more bytes from the peer
        closed,    // read: the peer sent close_notify
        failed,    // error() says why; the session is dead
    };

    static result<tls_session> create(const tls_context& context);
    tls_session(tls_session&&) noexcept;
    tls_session& operator=(tls_session&&) noexcept;
    ~tls_session();

    void put_ciphertext(const char* data, std::size_t size);
    // Appends everything waiting for the socket to out; returns the bytes appended.
    std::size_t take_ciphertext(std::string& out);

    // Drives the handshake as far as the bytes received allow.
    status handshake();
    bool handshake_done() const noexcept;
    // Appends the plaintext received so far to out.
    status read(std::string& out);
    // Encrypts plaintext (handshake done); false once failed.
    bool write(std::string_view plaintext);
    // Queues a close_notify alert for the peer.
    void shutdown();

    // Why the session failed; a client's pin mismatch reads "the server's public key does not
    // match the pin: expected <hex>, got <hex>".
    const std::string& error() const noexcept;
    // The pin of the peer's certificate once seen (client side), else nullptr.
    const key_pin* peer_pin() const noexcept;

private:
    struct state;
    explicit tls_session(std::unique_ptr<state> s);
    status fail(int ssl_result, std::string_view during);

    std::unique_ptr<state> _s;
};

} // namespace kwik::kcp
