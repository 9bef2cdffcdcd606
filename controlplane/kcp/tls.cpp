// TLS 1.3 with a pinned server key: see tls.hpp and PROTOCOL.md 11.2.
#include "controlplane/kcp/tls.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

namespace kwik::kcp {

namespace {

template <auto Free> struct openssl_free {
    template <class T> void operator()(T* p) const noexcept { Free(p); }
};
using bio_ptr = std::unique_ptr<BIO, openssl_free<BIO_free_all>>;
using x509_ptr = std::unique_ptr<X509, openssl_free<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_free<EVP_PKEY_free>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_free<BN_free>>;

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

// The reasons OpenSSL queued on this thread, oldest first, and an empty queue after.
std::string openssl_errors() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(e);
        char code[32];
        std::snprintf(code, sizeof code, "error %lx", e);
        const std::string text = reason != nullptr ? reason : code;
        if (out.find(text) == std::string::npos) {
            out += (out.empty() ? "" : "; ") + text;
        }
    }
    return out.empty() ? "no detail from OpenSSL" : out;
}

error ssl_error(const std::string& what) {
    return error{what + ": " + openssl_errors()};
}

// PEM reads never prompt for a passphrase: an encrypted key is an error.
int no_passphrase(char*, int, int, void*) {
    return 0;
}

bio_ptr memory_bio(std::string_view text) {
    return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

result<key_pin> pin_of_key(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int size = i2d_PUBKEY(key, &der);
    if (size <= 0) {
        return ssl_error("cannot encode the public key as SubjectPublicKeyInfo");
    }
    key_pin pin{};
    unsigned int digest_size = 0;
    const int ok = EVP_Digest(der, static_cast<std::size_t>(size), pin.data(), &digest_size,
                              EVP_sha256(), nullptr);
    OPENSSL_free(der);
    if (ok != 1 || digest_size != pin.size()) {
        return ssl_error("SHA-256 of the public key failed");
    }
    return pin;
}

result<x509_ptr> parse_certificate(std::string_view pem, const std::string& where) {
    ERR_clear_error();
    bio_ptr bio = memory_bio(pem);
    x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) {
        return ssl_error(where + ": no PEM certificate");
    }
    return cert;
}

result<pkey_ptr> parse_private_key(std::string_view pem, const std::string& where) {
    ERR_clear_error();
    bio_ptr bio = memory_bio(pem);
    pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    if (!key) {
        return ssl_error(where + ": no unencrypted PEM private key");
    }
    return key;
}

result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return error{"cannot read " + path + ": " + errno_text(errno), errno};
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Writes content to path through path.tmp.<pid> and a rename, so a reader never sees half.
result<void> write_file(const std::string& path, std::string_view content, mode_t mode) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return error{"cannot create " + tmp + ": " + errno_text(errno), errno};
    }
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return error{"cannot write " + tmp + ": " + errno_text(err), err};
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return error{"cannot write " + tmp + ": " + errno_text(err), err};
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return error{"cannot rename " + tmp + " to " + path + ": " + errno_text(err), err};
    }
    return {};
}

result<std::string> pem_of(int (*write)(BIO*, void*), void* object) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get(), object) != 1) {
        return ssl_error("cannot write PEM");
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

int hex_digit(char c) noexcept {
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
}

// What a client's certificate check saw; SSL ex_data points at the one of each session.
struct pin_check {
    key_pin expected{};
    key_pin actual{};
    bool checked = false;
    bool matched = false;
};

int pin_check_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Replaces OpenSSL's chain verification on clients: the leaf's key must have the pin. TLS 1.3's
// CertificateVerify, checked by OpenSSL whatever this returns, proves the server holds that key.
int verify_pin(X509_STORE_CTX* store, void*) {
    auto* ssl = static_cast<SSL*>(
        X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* check =
        ssl != nullptr ? static_cast<pin_check*>(SSL_get_ex_data(ssl, pin_check_index())) : nullptr;
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (check == nullptr || leaf == nullptr) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    const result<key_pin> pin = pin_of_key(X509_get0_pubkey(leaf));
    if (!pin) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    check->actual = *pin;
    check->checked = true;
    check->matched = *pin == check->expected;
    if (!check->matched) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

SSL_CTX* new_tls13_context(const SSL_METHOD* method) {
    SSL_CTX* ctx = SSL_CTX_new(method);
    if (ctx == nullptr) {
        return nullptr;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_num_tickets(ctx, 0) != 1) {
        SSL_CTX_free(ctx);
        return nullptr;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

} // namespace

// ---- pins -------------------------------------------------------------------------------

std::string to_hex(const key_pin& pin) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(pin.size() * 2);
    for (const std::uint8_t b : pin) {
        out += digits[b >> 4];
        out += digits[b & 0x0F];
    }
    return out;
}

result<key_pin> parse_pin(std::string_view text) {
    key_pin pin{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == ':' && i % 3 == 2) {
            continue; // aa:bb:cc...
        }
        const int d = hex_digit(text[i]);
        if (d < 0 || n >= pin.size() * 2) {
            return error{"a key pin is 64 hex digits (SHA-256 of the server's public key), not \"" +
                         std::string(text) + "\""};
        }
        pin[n / 2] = static_cast<std::uint8_t>(pin[n / 2] << 4 | d);
        ++n;
    }
    if (n != pin.size() * 2) {
        return error{"a key pin is 64 hex digits (SHA-256 of the server's public key); \"" +
                     std::string(text) + "\" has " + std::to_string(n)};
    }
    return pin;
}

result<key_pin> pin_from_bytes(std::string_view bytes) {
    key_pin pin{};
    if (bytes.size() != pin.size()) {
        return error{"tls_pubkey_hash_sha256 has " + std::to_string(bytes.size()) +
                     " bytes; a SHA-256 has 32"};
    }
    for (std::size_t i = 0; i < pin.size(); ++i) {
        pin[i] = static_cast<std::uint8_t>(bytes[i]);
    }
    return pin;
}

result<key_pin> pin_of_pem(std::string_view pem) {
    ERR_clear_error();
    if (x509_ptr cert{PEM_read_bio_X509(memory_bio(pem).get(), nullptr, no_passphrase, nullptr)}) {
        return pin_of_key(X509_get0_pubkey(cert.get()));
    }
    ERR_clear_error();
    if (pkey_ptr key{PEM_read_bio_PUBKEY(memory_bio(pem).get(), nullptr, no_passphrase, nullptr)}) {
        return pin_of_key(key.get());
    }
    ERR_clear_error();
    if (pkey_ptr key{
            PEM_read_bio_PrivateKey(memory_bio(pem).get(), nullptr, no_passphrase, nullptr)}) {
        return pin_of_key(key.get());
    }
    ERR_clear_error();
    return error{"no PEM certificate, public key or unencrypted private key"};
}

result<key_pin> pin_of_file(const std::string& path) {
    result<std::string> text = read_file(path);
    if (!text) {
        return text.failure();
    }
    result<key_pin> pin = pin_of_pem(*text);
    if (!pin) {
        return error{path + ": " + pin.message()};
    }
    return pin;
}

// ---- identities -------------------------------------------------------------------------

result<tls_identity> generate_self_signed(key_algorithm algorithm, std::string_view common_name,
                                          std::chrono::seconds validity) {
    ERR_clear_error();
    pkey_ptr key(algorithm == key_algorithm::ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                                                     : EVP_EC_gen("P-256"));
    if (!key) {
        return ssl_error("cannot generate a key");
    }
    x509_ptr cert(X509_new());
    unsigned char serial[16];
    if (!cert || RAND_bytes(serial, sizeof serial) != 1) {
        return ssl_error("cannot create a certificate");
    }
    serial[0] &= 0x7F; // a positive serial number
    bignum_ptr serial_bn(BN_bin2bn(serial, sizeof serial, nullptr));
    X509_NAME* name = X509_get_subject_name(cert.get());
    const long seconds = static_cast<long>(std::min<std::int64_t>(validity.count(), LONG_MAX / 2));
    if (!serial_bn || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        BN_to_ASN1_INTEGER(serial_bn.get(), X509_get_serialNumber(cert.get())) == nullptr ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), seconds) == nullptr ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.data()),
                                   static_cast<int>(common_name.size()), -1, 0) != 1 ||
        X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1) {
        return ssl_error("cannot fill the certificate");
    }
    // Ed25519 signs the message itself (no digest); ECDSA signs its SHA-256.
    const EVP_MD* digest = algorithm == key_algorithm::ed25519 ? nullptr : EVP_sha256();
    if (X509_sign(cert.get(), key.get(), digest) <= 0) {
        return ssl_error("cannot sign the certificate");
    }
    result<std::string> cert_pem = pem_of(
        [](BIO* b, void* x) { return PEM_write_bio_X509(b, static_cast<X509*>(x)); }, cert.get());
    result<std::string> key_pem = pem_of(
        [](BIO* b, void* k) {
            return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0,
                                            nullptr, nullptr);
        },
        key.get());
    if (!cert_pem) {
        return cert_pem.failure();
    }
    if (!key_pem) {
        return key_pem.failure();
    }
    return tls_identity{std::move(*cert_pem), std::move(*key_pem)};
}

result<tls_identity> read_identity(const std::string& certificate_path,
                                   const std::string& private_key_path) {
    result<std::string> cert_pem = read_file(certificate_path);
    if (!cert_pem) {
        return cert_pem.failure();
    }
    result<std::string> key_pem = read_file(private_key_path);
    if (!key_pem) {
        return key_pem.failure();
    }
    result<x509_ptr> cert = parse_certificate(*cert_pem, certificate_path);
    if (!cert) {
        return cert.failure();
    }
    result<pkey_ptr> key = parse_private_key(*key_pem, private_key_path);
    if (!key) {
        return key.failure();
    }
    if (X509_check_private_key(cert->get(), key->get()) != 1) {
        return ssl_error(private_key_path + " is not the key of the certificate in " +
                         certificate_path);
    }
    return tls_identity{std::move(*cert_pem), std::move(*key_pem)};
}

result<tls_identity> load_or_create_identity(const std::string& certificate_path,
                                             const std::string& private_key_path,
                                             key_algorithm algorithm) {
    std::error_code ec;
    const bool have_cert = std::filesystem::exists(certificate_path, ec);
    const bool have_key = std::filesystem::exists(private_key_path, ec);
    if (have_cert && have_key) {
        return read_identity(certificate_path, private_key_path);
    }
    if (have_cert != have_key) {
        const std::string& missing = have_cert ? private_key_path : certificate_path;
        const std::string& present = have_cert ? certificate_path : private_key_path;
        return error{present + " exists but " + missing +
                     " does not: give both, or neither to generate a new key (a new pin)"};
    }
    result<tls_identity> identity = generate_self_signed(algorithm);
    if (!identity) {
        return identity;
    }
    if (result<void> w = write_file(private_key_path, identity->private_key_pem, 0600); !w) {
        return w.failure();
    }
    if (result<void> w = write_file(certificate_path, identity->certificate_pem, 0644); !w) {
        return w.failure();
    }
    return identity;
}

// ---- contexts ---------------------------------------------------------------------------

tls_context::tls_context(SSL_CTX* ctx, const key_pin& pin, bool server)
    : _ctx(ctx, SSL_CTX_free), _pin(pin), _server(server) {}

result<tls_context> tls_context::server(const tls_identity& identity) {
    result<x509_ptr> cert = parse_certificate(identity.certificate_pem, "server certificate");
    if (!cert) {
        return cert.failure();
    }
    result<pkey_ptr> key = parse_private_key(identity.private_key_pem, "server private key");
    if (!key) {
        return key.failure();
    }
    result<key_pin> pin = pin_of_key(X509_get0_pubkey(cert->get()));
    if (!pin) {
        return pin.failure();
    }
    ERR_clear_error();
    SSL_CTX* ctx = new_tls13_context(TLS_server_method());
    if (ctx == nullptr) {
        return ssl_error("cannot create a TLS 1.3 server context");
    }
    tls_context out(ctx, *pin, true);
    if (SSL_CTX_use_certificate(ctx, cert->get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key->get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        return ssl_error("the server's private key does not fit its certificate");
    }
    // Clients authenticate inside KCP (ClientHello's HMAC proof), not with certificates.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return out;
}

result<tls_context> tls_context::client(const key_pin& expected) {
    ERR_clear_error();
    SSL_CTX* ctx = new_tls13_context(TLS_client_method());
    if (ctx == nullptr) {
        return ssl_error("cannot create a TLS 1.3 client context");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx, verify_pin, nullptr);
    return tls_context(ctx, expected, false);
}

// ---- sessions ---------------------------------------------------------------------------

struct tls_session::state {
    SSL* ssl = nullptr;
    BIO* network_in = nullptr;  // owned by ssl: ciphertext from the peer
    BIO* network_out = nullptr; // owned by ssl: ciphertext for the peer
    bool client = false;
    bool failed = false;
    pin_check pin;
    std::string error;

    ~state() { SSL_free(ssl); }
};

tls_session::tls_session(std::unique_ptr<state> s) : _s(std::move(s)) {}
tls_session::tls_session(tls_session&&) noexcept = default;
tls_session& tls_session::operator=(tls_session&&) noexcept = default;
tls_session::~tls_session() = default;

result<tls_session> tls_session::create(const tls_context& context) {
    ERR_clear_error();
    auto s = std::make_unique<state>();
    s->ssl = SSL_new(context.native());
    s->network_in = BIO_new(BIO_s_mem());
    s->network_out = BIO_new(BIO_s_mem());
    if (s->ssl == nullptr || s->network_in == nullptr || s->network_out == nullptr) {
        BIO_free(s->network_in);
        BIO_free(s->network_out);
        return ssl_error("cannot create a TLS session");
    }
    // An empty input means "wait for more", not end of stream: the socket reports the end.
    BIO_set_mem_eof_return(s->network_in, -1);
    SSL_set_bio(s->ssl, s->network_in, s->network_out);
    s->client = !context.is_server();
    if (s->client) {
        s->pin.expected = context.pin();
        SSL_set_ex_data(s->ssl, pin_check_index(), &s->pin);
        SSL_set_connect_state(s->ssl);
    } else {
        SSL_set_accept_state(s->ssl);
    }
    return tls_session(std::move(s));
}

void tls_session::put_ciphertext(const char* data, std::size_t size) {
    while (size > 0) {
        const int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
        const int n = BIO_write(_s->network_in, data, chunk);
        if (n <= 0) {
            return; // a memory BIO only fails when out of memory
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

std::size_t tls_session::take_ciphertext(std::string& out) {
    const std::size_t pending = BIO_ctrl_pending(_s->network_out);
    if (pending == 0) {
        return 0;
    }
    const std::size_t old = out.size();
    out.resize(old + pending);
    const int n = BIO_read(_s->network_out, out.data() + old, static_cast<int>(pending));
    out.resize(old + static_cast<std::size_t>(std::max(n, 0)));
    return out.size() - old;
}

tls_session::status tls_session::fail(int ssl_result, std::string_view during) {
    const int e = SSL_get_error(_s->ssl, ssl_result);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return status::want_more;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return status::closed;
    }
    _s->failed = true;
    if (_s->client && _s->pin.checked && !_s->pin.matched) {
        ERR_clear_error();
        _s->error = "the server's public key does not match the pin: expected " +
                    to_hex(_s->pin.expected) + ", got " + to_hex(_s->pin.actual);
    } else {
        _s->error = "TLS " + std::string(during) + " failed: " + openssl_errors();
    }
    return status::failed;
}

tls_session::status tls_session::handshake() {
    if (_s->failed) {
        return status::failed;
    }
    if (handshake_done()) {
        return status::ok;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(_s->ssl);
    return r == 1 ? status::ok : fail(r, "handshake");
}

bool tls_session::handshake_done() const noexcept {
    return SSL_is_init_finished(_s->ssl) == 1;
}

tls_session::status tls_session::read(std::string& out) {
    if (_s->failed) {
        return status::failed;
    }
    // One TLS record holds at most 16 KiB of plaintext: a whole one fits each read.
    char buf[16384];
    for (;;) {
        ERR_clear_error();
        const int n = SSL_read(_s->ssl, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        const status st = fail(n, "read");
        return st == status::want_more ? status::ok : st;
    }
}

bool tls_session::write(std::string_view plaintext) {
    while (!_s->failed && !plaintext.empty()) {
        const int chunk = static_cast<int>(std::min<std::size_t>(plaintext.size(), INT_MAX));
        ERR_clear_error();
        const int n = SSL_write(_s->ssl, plaintext.data(), chunk);
        if (n <= 0) {
            if (fail(n, "write") != status::failed) {
                _s->failed = true;
                _s->error = "TLS write did not complete";
            }
            return false;
        }
        plaintext.remove_prefix(static_cast<std::size_t>(n));
    }
    return !_s->failed;
}

void tls_session::shutdown() {
    if (!_s->failed && handshake_done()) {
        ERR_clear_error();
        SSL_shutdown(_s->ssl);
        ERR_clear_error();
    }
}

const std::string& tls_session::error() const noexcept {
    return _s->error;
}

const key_pin* tls_session::peer_pin() const noexcept {
    return _s->client && _s->pin.checked ? &_s->pin.actual : nullptr;
}

} // namespace kwik::kcp
