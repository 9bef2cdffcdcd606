// AES-256-GCM protection of ENCRYPTED stream frames for one connection (PROTOCOL.md 5.4, 13.8):
// at most two keys live (the current phase and one other, for rekeying), sealing with unique
// nonces and opening in place. Owned by the connection's thread; install() and clear() are its
// set-up path (they allocate), open() and seal() its packet path (no allocation).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/transport/types.hpp"

struct evp_cipher_ctx_st;

namespace kwik::transport {

inline constexpr std::size_t aead_key_len = 32;

// Key material for one phase as KCP's hello agreed it (DataKeyMaterial).
struct aead_key {
    std::uint8_t phase = 0;
    std::array<std::uint8_t, aead_key_len> key{};
    time_ns valid_until = 0;      // the owner's clock; at or past it the key neither seals nor opens; 0: none
    std::uint64_t max_frames = 0; // frames this side seals under it (RFC 9001 6.6 confidentiality limit); 0: no limit
    // The nonce counter's first value under this key (13.8). kwikd gives the wall clock in ns at
    // install: a key installed again into a restarted kwikd (kwik-cp's resync) then starts above
    // every nonce the previous instance used, as no connection seals a frame per nanosecond.
    std::uint64_t nonce_base = 0;
};

// Frames that fail authentication under one key before the key is retired (RFC 9001 6.6
// integrity limit for AEAD_AES_256_GCM: 2^52 forgery attempts). Frames that open are never
// counted against a key: the confidentiality limit (aead_key::max_frames) bounds what the
// sender seals, so replayed or duplicated genuine frames cannot spend the receive key.
inline constexpr std::uint64_t aead_integrity_limit = std::uint64_t{1} << 52;

enum class key_install : std::uint8_t {
    installed,      // the phase is live (the first key becomes current; a later one the other phase)
    unchanged,      // the phase already holds this key (a control-plane resync): nothing changed
    phase_conflict, // the current phase holds another key: a new key needs a new phase
    no_memory,      // OpenSSL could not allocate a cipher context
};

// Why seal() or can_seal() refuses.
enum class seal_refusal : std::uint8_t { none, no_key, expired, exhausted };

class frame_protection {
public:
    // side: who sends what this side seals; it fixes the nonce prefix (13.8). integrity_limit:
    // failed opens under one key that retire it (tests pass a small one).
    explicit frame_protection(bool client_side, std::uint64_t integrity_limit = aead_integrity_limit) noexcept;
    ~frame_protection(); // clear()
    frame_protection(const frame_protection&) = delete;
    frame_protection& operator=(const frame_protection&) = delete;

    // Set-up path. Keys each phase's cipher contexts once; the key bytes are kept only to tell
    // a resync (same key) from a conflict, and are cleansed when replaced or cleared.
    key_install install(const aead_key& k) noexcept;
    // Forgets every key (OPENSSL_cleanse on the copies, the contexts freed: OpenSSL cleanses
    // their key schedules).
    void clear() noexcept;

    bool has_keys() const noexcept { return _slots[0].live || _slots[1].live; }
    std::uint32_t live_keys() const noexcept { return std::uint32_t{_slots[0].live} + std::uint32_t{_slots[1].live}; }
    // The phase seal() uses; meaningful when has_keys().
    std::uint8_t current_phase() const noexcept { return _slots[_current].phase; }

    // Verifies and decrypts an ENCRYPTED frame in place: data is the frame's Transport Data in
    // the datagram (ciphertext || tag, f.data_length bytes; the parser checked it holds a tag).
    // On none the first f.data_length - 16 bytes are plaintext. A frame under the other phase
    // that verifies, and was installed after the current one, makes it current (the peer has
    // moved to the new key; so does this side's sending). The integrity_limit-th frame that fails
    // authentication under a key retires it: it then neither opens (aead_key_exhausted) nor seals.
    kdp::drop_reason open(std::span<const std::uint8_t> datagram, const kdp::frame_view& f, std::uint8_t* data,
                          time_ns now) noexcept;

    // Whether seal() would succeed now (a current key that is neither expired nor exhausted,
    // after moving to the other phase if it is newer and the current one is spent).
    seal_refusal can_seal(time_ns now) noexcept;
    // The same question without moving to the other phase (for const callers).
    bool sealable(time_ns now) const noexcept {
        const slot& cur = _slots[_current];
        const slot& other = _slots[_current ^ 1];
        return usable_for_seal(cur, now) ||
               (usable_for_seal(other, now) && (!cur.live || other.generation > cur.generation));
    }
    // Encrypts f's len plaintext bytes at data in place and appends the tag (data has len + 16
    // bytes of room); sets f.flags ENCRYPTED, f.key_phase, f.nonce and f.data. f's other fields
    // (stream id, offset, flags, uncompressed_length) must be final: they are the AAD.
    seal_refusal seal(kdp::frame_desc& f, std::uint8_t* data, std::size_t len, time_ns now) noexcept;

    std::uint64_t frames_sealed() const noexcept { return _sealed; }
    std::uint64_t frames_opened() const noexcept { return _opened; }
    std::uint64_t frames_failed() const noexcept { return _failed; }

private:
    struct slot {
        bool live = false;
        std::uint8_t phase = 0;
        std::uint64_t generation = 0; // install order: the larger is the newer key
        std::array<std::uint8_t, aead_key_len> key{};
        time_ns valid_until = 0;
        std::uint64_t max_frames = 0;
        std::uint64_t nonce_base = 0; // the nonce counter is nonce_base + sealed: never reused
        std::uint64_t sealed = 0;
        std::uint64_t failed = 0; // frames that failed authentication under this key
        bool retired = false;     // failed reached the integrity limit
        evp_cipher_ctx_st* seal_ctx = nullptr;
        evp_cipher_ctx_st* open_ctx = nullptr;
    };

    static bool usable_for_seal(const slot& s, time_ns now) noexcept;
    void wipe(slot& s) noexcept;

    std::array<slot, 2> _slots{};
    std::size_t _current = 0;
    std::uint64_t _generation = 0;
    std::uint32_t _seal_prefix; // first 4 nonce bytes of frames this side seals
    std::uint32_t _open_prefix; // ... and of frames the peer seals
    std::uint64_t _integrity_limit;
    std::uint64_t _sealed = 0, _opened = 0, _failed = 0;
};

// One-shot AES-256-GCM in place over data, with a 12-byte nonce and a 16-byte tag, for tools
// (kwik-pcapgen, kwik-dump) and tests: each call makes and frees a cipher context. open
// returns false when the tag does not verify (data then holds garbage).
bool aes256gcm_seal(std::span<const std::uint8_t, aead_key_len> key, std::span<const std::uint8_t, kdp::aead_nonce_len> nonce,
                    std::span<const std::uint8_t> aad, std::span<std::uint8_t> data,
                    std::span<std::uint8_t, kdp::aead_tag_len> tag) noexcept;
bool aes256gcm_open(std::span<const std::uint8_t, aead_key_len> key, std::span<const std::uint8_t, kdp::aead_nonce_len> nonce,
                    std::span<const std::uint8_t> aad, std::span<std::uint8_t> data,
                    std::span<const std::uint8_t, kdp::aead_tag_len> tag) noexcept;

// Nonce prefixes (PROTOCOL.md 13.8): the sender's role, so the two directions, which share one
// key, never share a nonce.
inline constexpr std::uint32_t nonce_prefix_client = 0x4b43'4c49; // "KCLI"
inline constexpr std::uint32_t nonce_prefix_server = 0x4b53'5256; // "KSRV"

} // namespace kwik::transport
