// Unit tests for dataplane/transport/frame_protection (ENCRYPTED frames, PROTOCOL.md 5.4 and
// 13.8) and its use by the connection: the AES-256-GCM primitive against published vectors;
// sealed frames built here and fed to a server connection (accepted, or dropped whole and
// counted for each tampered field); and a client and server back to back with encryption on
// (bytes delivered exactly, nonces never reused, compression under encryption, rekeying).
// Single-threaded.
#include "dataplane/transport/frame_protection.hpp"

#include <gtest/gtest.h>

#include <limits>

#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/transport/connection.hpp"
#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::transport {
namespace {

std::vector<std::uint8_t> hex(std::string_view h) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

aead_key make_key(std::uint8_t phase, std::uint8_t fill) {
    aead_key k;
    k.phase = phase;
    k.key.fill(fill);
    return k;
}

// ---- the primitive ------------------------------------------------------------------------

struct gcm_vector {
    const char* name;
    const char* key;
    const char* nonce;
    const char* aad;
    const char* plaintext;
    const char* ciphertext;
    const char* tag;
};

// McGrew and Viega, "The Galois/Counter Mode of Operation" test cases 13, 14 and 16 (AES-256,
// 96-bit IV), as used by NIST's GCM validation.
const gcm_vector gcm_vectors[] = {
    {"case 13: empty", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
     "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case 14: one zero block", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case 16: AAD and 60 bytes", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(aes256gcm, known_answers_seal_and_open) {
    for (const gcm_vector& v : gcm_vectors) {
        SCOPED_TRACE(v.name);
        const auto key = hex(v.key);
        const auto nonce = hex(v.nonce);
        const auto aad = hex(v.aad);
        std::vector<std::uint8_t> data = hex(v.plaintext);
        std::array<std::uint8_t, 16> tag{};
        ASSERT_TRUE(aes256gcm_seal(std::span<const std::uint8_t, 32>(key.data(), 32),
                                   std::span<const std::uint8_t, 12>(nonce.data(), 12), aad, data, tag));
        EXPECT_EQ(data, hex(v.ciphertext));
        EXPECT_EQ(std::vector<std::uint8_t>(tag.begin(), tag.end()), hex(v.tag));
        ASSERT_TRUE(aes256gcm_open(std::span<const std::uint8_t, 32>(key.data(), 32),
                                   std::span<const std::uint8_t, 12>(nonce.data(), 12), aad, data, tag));
        EXPECT_EQ(data, hex(v.plaintext));
        // One bit of the tag, or of the AAD, and it no longer opens.
        std::vector<std::uint8_t> again = hex(v.ciphertext);
        tag[5] ^= 0x01;
        EXPECT_FALSE(aes256gcm_open(std::span<const std::uint8_t, 32>(key.data(), 32),
                                    std::span<const std::uint8_t, 12>(nonce.data(), 12), aad, again, tag));
    }
}

// ---- frames built here, fed to a server connection ----------------------------------------

// A server connection on path 1 whose delivered bytes are recorded, and a client-side
// frame_protection that seals the frames the tests send it.
class server_fixture : public ::testing::Test {
protected:
    void SetUp() override {
        connection_config c;
        c.side = role::server;
        c.tx_ops = &heap_buffer_ops;
        c.rx_ops = &heap_buffer_ops;
        connection_callbacks cb;
        cb.ctx = this;
        cb.transmit = [](void* ctx, path_id, std::span<const std::uint8_t> b) {
            static_cast<server_fixture*>(ctx)->sent.emplace_back(b.begin(), b.end());
        };
        cb.allocate = [](void*, std::size_t size, std::uint8_t** data) -> void* {
            heap_buffer* b = heap_buffer::make(size);
            *data = b->data();
            return b;
        };
        cb.on_readable = [](void* ctx, stream_id id) {
            auto* self = static_cast<server_fixture*>(ctx);
            self->conn->read(id, [](void* ctx2, std::uint64_t offset, std::span<const std::uint8_t> d) {
                auto* me = static_cast<server_fixture*>(ctx2);
                std::string& s = me->received;
                if (s.size() < offset + d.size()) {
                    s.resize(offset + d.size());
                }
                std::memcpy(s.data() + offset, d.data(), d.size());
            }, self);
        };
        conn = std::make_unique<connection>(c, cb, 0);
        ASSERT_TRUE(conn->add_path(1, 0));
        ASSERT_EQ(conn->install_key(make_key(0, 0x42)), key_install::installed);
        ASSERT_EQ(peer.install(make_key(0, 0x42)), key_install::installed);
    }

    // A stream frame on stream 2 at offset with text, sealed by the peer unless seal is false.
    kdp::frame_desc frame(std::uint64_t offset, std::string_view text, bool fin = false, bool seal = true) {
        plain.emplace_back(text.begin(), text.end());
        plain.back().resize(text.size() + kdp::aead_tag_len);
        kdp::frame_desc f;
        f.stream_id = 2;
        f.offset = offset;
        f.flags = static_cast<std::uint8_t>(kdp::frame_flag::ordered | (fin ? kdp::frame_flag::fin : 0));
        f.data = {plain.back().data(), text.size()};
        if (seal) {
            EXPECT_EQ(peer.seal(f, plain.back().data(), text.size(), 1 * ms), seal_refusal::none);
        }
        return f;
    }

    // Serialises frames into one data packet (checksums computed over the bytes as they are)
    // and hands it to the server.
    void deliver(std::initializer_list<kdp::frame_desc> frames, time_ns now = 1 * ms) {
        feed(packet(frames), now);
    }

    // The bytes of the next data packet holding frames.
    std::vector<std::uint8_t> packet(std::initializer_list<kdp::frame_desc> frames) {
        std::vector<kdp::frame_desc> fs(frames);
        kdp::packet_desc d{seq++, kdp::packet_type::data, kdp::compression::none, fs};
        std::vector<std::uint8_t> out(kdp::max_packet_size);
        const kdp::write_result w = kdp::serialize_packet(d, out);
        EXPECT_TRUE(w.ok()) << kdp::to_string(w.invalid);
        out.resize(w.ok() ? w.size : 0);
        return out;
    }

    // Hands a copy of out to the server (it opens frames in place).
    void feed(const std::vector<std::uint8_t>& out, time_ns now = 1 * ms) {
        heap_buffer* b = heap_buffer::make(out.size());
        std::memcpy(b->data(), out.data(), out.size());
        conn->on_datagram(1, {b->data(), out.size()}, b, false, now);
        heap_buffer_release(b);
    }

    std::uint64_t drops(kdp::drop_reason r) const { return conn->counters().drops[static_cast<std::size_t>(r)]; }

    std::unique_ptr<connection> conn;
    frame_protection peer{true}; // the client's side
    std::deque<std::vector<std::uint8_t>> plain;
    std::vector<std::vector<std::uint8_t>> sent;
    std::string received;
    std::uint64_t seq = 0;
};

TEST_F(server_fixture, sealed_frames_open_and_deliver) {
    deliver({frame(0, "hello, "), frame(7, "world")});
    EXPECT_EQ(received, "hello, world");
    EXPECT_EQ(conn->counters().encrypted_frames_received, 2u);
    EXPECT_TRUE(conn->encrypting()) << "the peer encrypts: so does the server";
    EXPECT_EQ(conn->key_phase(), 0);
    EXPECT_EQ(peer.frames_sealed(), 2u);
}

// Each field the AAD, nonce or ciphertext covers, changed after sealing: the packet (whose
// checksums are recomputed, so the codec accepts it) is dropped whole and counted.
TEST_F(server_fixture, tampering_with_any_covered_field_is_dropped_and_counted) {
    struct tamper_case {
        const char* what;
        void (*change)(kdp::frame_desc&, std::vector<std::uint8_t>&);
    };
    const tamper_case cases[] = {
        {"ciphertext byte", [](kdp::frame_desc&, std::vector<std::uint8_t>& b) { b[0] ^= 0x80; }},
        {"tag byte", [](kdp::frame_desc& f, std::vector<std::uint8_t>& b) { b[f.data.size() - 1] ^= 0x01; }},
        {"stream id", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) { f.stream_id = 4; }},
        {"offset", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) { f.offset += 1; }},
        {"FIN flag", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) { f.flags |= kdp::frame_flag::fin; }},
        {"ORDERED flag", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) {
             f.flags = static_cast<std::uint8_t>(f.flags & ~kdp::frame_flag::ordered);
         }},
        {"nonce counter", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) { f.nonce[11] ^= 0x01; }},
        {"ciphertext truncated", [](kdp::frame_desc& f, std::vector<std::uint8_t>&) {
             f.data = f.data.subspan(1);
         }},
    };
    std::uint64_t expected = 0;
    for (const tamper_case& c : cases) {
        SCOPED_TRACE(c.what);
        kdp::frame_desc f = frame(0, "secret bytes");
        c.change(f, plain.back());
        deliver({f});
        ++expected;
        EXPECT_EQ(drops(kdp::drop_reason::aead_auth_failed), expected);
        EXPECT_EQ(received, "");
    }
    // A good frame in the same packet as a forged one does not make it through either.
    kdp::frame_desc forged = frame(12, "more");
    plain.back()[0] ^= 1;
    deliver({frame(0, "secret bytes"), forged});
    EXPECT_EQ(drops(kdp::drop_reason::aead_auth_failed), expected + 1);
    EXPECT_EQ(received, "");
    EXPECT_FALSE(conn->closed()) << "a forged frame is a counted drop, not a close";
    // And the connection still takes genuine frames.
    deliver({frame(0, "secret bytes")});
    EXPECT_EQ(received, "secret bytes");
}

TEST_F(server_fixture, unknown_phase_reflection_and_plaintext_when_required) {
    frame_protection other{true};
    ASSERT_EQ(other.install(make_key(7, 0x42)), key_install::installed);
    kdp::frame_desc f = frame(0, "phase seven", false, false);
    ASSERT_EQ(other.seal(f, plain.back().data(), 11, 1 * ms), seal_refusal::none);
    deliver({f});
    EXPECT_EQ(drops(kdp::drop_reason::aead_unknown_key_phase), 1u);

    // A frame the server itself sealed, sent back to it: its nonce names the server.
    frame_protection server_side{false};
    ASSERT_EQ(server_side.install(make_key(0, 0x42)), key_install::installed);
    kdp::frame_desc g = frame(0, "reflected", false, false);
    ASSERT_EQ(server_side.seal(g, plain.back().data(), 9, 1 * ms), seal_refusal::none);
    deliver({g});
    EXPECT_EQ(drops(kdp::drop_reason::aead_wrong_direction), 1u);

    // Plaintext is accepted until encryption is required.
    deliver({frame(0, "plain", false, false)});
    EXPECT_EQ(received, "plain");
    conn->set_require_encryption(true);
    deliver({frame(5, " text", false, false)});
    EXPECT_EQ(drops(kdp::drop_reason::encryption_required), 1u);
    EXPECT_EQ(received, "plain");
    deliver({frame(5, " sealed")});
    EXPECT_EQ(received, "plain sealed");
}

// PRIORITY, RETRANSMIT and the Priority byte are outside the AAD: a resend with other
// scheduling hints verifies with the same ciphertext, nonce and checksum.
TEST_F(server_fixture, retransmission_with_other_priority_and_retransmit_flag_verifies) {
    kdp::frame_desc f = frame(0, "resent later");
    f.flags |= kdp::frame_flag::retransmit | kdp::frame_flag::priority;
    f.prio = kdp::priority::critical;
    deliver({f});
    EXPECT_EQ(drops(kdp::drop_reason::aead_auth_failed), 0u);
    EXPECT_EQ(received, "resent later");
}

// An on-path attacker replays one captured packet many times: the copies are duplicates (not
// opened, not counted against the key), and genuine frames keep opening afterwards.
TEST_F(server_fixture, replayed_packets_do_not_spend_the_receive_key) {
    aead_key k = make_key(1, 0x11);
    k.max_frames = 2;
    frame_protection sender{true};
    ASSERT_EQ(sender.install(k), key_install::installed);
    ASSERT_EQ(conn->install_key(k), key_install::installed);
    kdp::frame_desc a = frame(0, "a", false, false);
    ASSERT_EQ(sender.seal(a, plain.back().data(), 1, 1 * ms), seal_refusal::none);
    const std::vector<std::uint8_t> captured = packet({a});
    feed(captured);
    for (int i = 0; i < 1000; ++i) {
        feed(captured);
    }
    EXPECT_EQ(conn->counters().duplicate_packets, 1000u);
    kdp::frame_desc b = frame(1, "b", false, false);
    ASSERT_EQ(sender.seal(b, plain.back().data(), 1, 1 * ms), seal_refusal::none);
    deliver({b});
    EXPECT_EQ(drops(kdp::drop_reason::aead_key_exhausted), 0u);
    EXPECT_EQ(received, "ab");
    EXPECT_EQ(conn->counters().encrypted_frames_received, 2u);
}

// Once a verified ENCRYPTED frame arrived, a plaintext stream frame is an injection: dropped,
// and a later set_require_encryption(false) (a control-plane resync) does not undo that.
TEST_F(server_fixture, a_verified_encrypted_frame_latches_require_encryption) {
    deliver({frame(0, "plain", false, false)});
    EXPECT_EQ(received, "plain");
    EXPECT_FALSE(conn->require_encryption());
    deliver({frame(5, " sealed")});
    EXPECT_EQ(received, "plain sealed");
    EXPECT_TRUE(conn->require_encryption());
    deliver({frame(12, " injected", false, false)});
    EXPECT_EQ(drops(kdp::drop_reason::encryption_required), 1u);
    conn->set_require_encryption(false);
    deliver({frame(12, " injected", false, false)});
    EXPECT_EQ(drops(kdp::drop_reason::encryption_required), 2u);
    EXPECT_EQ(received, "plain sealed");
}

TEST_F(server_fixture, expired_keys_are_refused_and_max_frames_bounds_the_sender) {
    aead_key k = make_key(1, 0x11);
    k.valid_until = 5 * ms;
    k.max_frames = 2;
    frame_protection sender{true};
    ASSERT_EQ(sender.install(k), key_install::installed);
    ASSERT_EQ(conn->install_key(k), key_install::installed);
    EXPECT_EQ(conn->live_keys(), 2u);
    for (int i = 0; i < 2; ++i) {
        kdp::frame_desc f = frame(static_cast<std::uint64_t>(i), "x", false, false);
        ASSERT_EQ(sender.seal(f, plain.back().data(), 1, 1 * ms), seal_refusal::none);
        deliver({f});
    }
    EXPECT_EQ(received, "xx");
    // The sender refuses a third frame (the confidentiality limit bounds what it seals); the
    // receiver counts nothing it opens (RFC 9001 6.6), so a frame sealed regardless (by another
    // instance) still opens.
    kdp::frame_desc extra = frame(2, "y", false, false);
    EXPECT_EQ(sender.seal(extra, plain.back().data(), 1, 1 * ms), seal_refusal::exhausted);
    frame_protection again{true};
    ASSERT_EQ(again.install(k), key_install::installed);
    ASSERT_EQ(again.seal(extra, plain.back().data(), 1, 1 * ms), seal_refusal::none);
    deliver({extra});
    EXPECT_EQ(drops(kdp::drop_reason::aead_key_exhausted), 0u);
    EXPECT_EQ(received, "xxy");
    // Past valid_until: the sender refuses, the receiver too.
    frame_protection late{true};
    ASSERT_EQ(late.install(k), key_install::installed);
    kdp::frame_desc old = frame(3, "z", false, false);
    EXPECT_EQ(late.seal(old, plain.back().data(), 1, 6 * ms), seal_refusal::expired);
    ASSERT_EQ(late.seal(old, plain.back().data(), 1, 1 * ms), seal_refusal::none);
    deliver({old}, 6 * ms);
    EXPECT_EQ(drops(kdp::drop_reason::aead_key_expired), 1u);
    EXPECT_EQ(received, "xxy");
}

// Opens f (the only frame of the data packet bytes) with p, on a copy of the bytes.
kdp::drop_reason open_copy(frame_protection& p, std::vector<std::uint8_t> bytes) {
    kdp::packet_view v;
    EXPECT_EQ(kdp::parse_packet(kdp::contiguous_bytes(bytes), v), kdp::drop_reason::none);
    const kdp::frame_view& f = v.frame_span()[0];
    return p.open(bytes, f, bytes.data() + f.data_pos, 1 * ms);
}

// A sealed one-frame data packet's bytes; forged flips a ciphertext bit (checksums recomputed).
std::vector<std::uint8_t> sealed_packet(frame_protection& sender, bool forged) {
    std::array<std::uint8_t, 4 + kdp::aead_tag_len> buf{'d', 'a', 't', 'a'};
    kdp::frame_desc f;
    f.stream_id = 2;
    f.flags = kdp::frame_flag::ordered;
    EXPECT_EQ(sender.seal(f, buf.data(), 4, 1 * ms), seal_refusal::none);
    if (forged) {
        buf[0] ^= 0x80;
    }
    std::vector<kdp::frame_desc> fs{f};
    kdp::packet_desc d{0, kdp::packet_type::data, kdp::compression::none, fs};
    std::vector<std::uint8_t> out(kdp::max_packet_size);
    const kdp::write_result w = kdp::serialize_packet(d, out);
    EXPECT_TRUE(w.ok());
    out.resize(w.ok() ? w.size : 0);
    return out;
}

TEST(frame_protection, opening_never_spends_max_frames) {
    aead_key k = make_key(0, 0x42);
    k.max_frames = 2;
    frame_protection sender{true}, receiver{false};
    ASSERT_EQ(sender.install(k), key_install::installed);
    ASSERT_EQ(receiver.install(k), key_install::installed);
    const std::vector<std::uint8_t> good = sealed_packet(sender, false);
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(open_copy(receiver, good), kdp::drop_reason::none) << "open " << i;
    }
    EXPECT_EQ(receiver.frames_opened(), 10u);
    EXPECT_EQ(receiver.can_seal(1 * ms), seal_refusal::none) << "the receiver sealed nothing yet";
}

TEST(frame_protection, the_integrity_limit_of_forgeries_retires_the_key) {
    const aead_key k = make_key(0, 0x42);
    frame_protection sender{true}, receiver{false, 3};
    ASSERT_EQ(sender.install(k), key_install::installed);
    ASSERT_EQ(receiver.install(k), key_install::installed);
    const std::vector<std::uint8_t> good = sealed_packet(sender, false);
    const std::vector<std::uint8_t> forged = sealed_packet(sender, true);
    EXPECT_EQ(open_copy(receiver, good), kdp::drop_reason::none);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(open_copy(receiver, forged), kdp::drop_reason::aead_auth_failed) << "forgery " << i;
    }
    EXPECT_EQ(receiver.frames_failed(), 3u);
    EXPECT_EQ(open_copy(receiver, good), kdp::drop_reason::aead_key_exhausted) << "retired";
    EXPECT_EQ(receiver.can_seal(1 * ms), seal_refusal::exhausted) << "a retired key seals nothing either";
    EXPECT_EQ(receiver.install(k), key_install::unchanged) << "a resync does not revive it";
    EXPECT_EQ(open_copy(receiver, good), kdp::drop_reason::aead_key_exhausted);
    // A new key under a new phase works.
    frame_protection sender2{true};
    ASSERT_EQ(sender2.install(make_key(1, 0x43)), key_install::installed);
    ASSERT_EQ(receiver.install(make_key(1, 0x43)), key_install::installed);
    EXPECT_EQ(open_copy(receiver, sealed_packet(sender2, false)), kdp::drop_reason::none);
}

// The nonce counter starts at the key's nonce_base: kwikd gives its wall clock in ns, so the same
// key installed into a restarted kwikd (kwik-cp's resync) never repeats a nonce of the previous
// instance; a counter that would wrap past 2^64 refuses to seal.
TEST(frame_protection, nonce_counter_starts_at_the_base_and_never_wraps) {
    auto counter_of = [](const kdp::frame_desc& f) {
        std::uint64_t v = 0;
        for (std::size_t i = 4; i < 12; ++i) {
            v = (v << 8) | f.nonce[i];
        }
        return v;
    };
    std::vector<std::uint8_t> data(64, 0);
    aead_key k = make_key(0, 0x42);
    k.nonce_base = 1'000'000;
    frame_protection before_restart{false};
    ASSERT_EQ(before_restart.install(k), key_install::installed);
    kdp::frame_desc f{};
    f.stream_id = 1;
    ASSERT_EQ(before_restart.seal(f, data.data(), 8, 0), seal_refusal::none);
    EXPECT_EQ(counter_of(f), 1'000'000u);
    ASSERT_EQ(before_restart.seal(f, data.data(), 8, 0), seal_refusal::none);
    EXPECT_EQ(counter_of(f), 1'000'001u);

    k.nonce_base = 2'000'000; // installed again later, by a new instance
    frame_protection after_restart{false};
    ASSERT_EQ(after_restart.install(k), key_install::installed);
    ASSERT_EQ(after_restart.seal(f, data.data(), 8, 0), seal_refusal::none);
    EXPECT_EQ(counter_of(f), 2'000'000u);

    k.nonce_base = std::numeric_limits<std::uint64_t>::max() - 2;
    frame_protection near_wrap{false};
    ASSERT_EQ(near_wrap.install(k), key_install::installed);
    ASSERT_EQ(near_wrap.seal(f, data.data(), 8, 0), seal_refusal::none);
    ASSERT_EQ(near_wrap.seal(f, data.data(), 8, 0), seal_refusal::none);
    EXPECT_EQ(counter_of(f), std::numeric_limits<std::uint64_t>::max() - 1);
    EXPECT_EQ(near_wrap.seal(f, data.data(), 8, 0), seal_refusal::exhausted) << "the counter never wraps";
}

TEST(frame_protection, install_rules) {
    frame_protection p{false};
    EXPECT_FALSE(p.has_keys());
    EXPECT_EQ(p.install(make_key(3, 1)), key_install::installed);
    EXPECT_EQ(p.install(make_key(3, 1)), key_install::unchanged) << "a resync re-sends the same key";
    EXPECT_EQ(p.install(make_key(3, 2)), key_install::phase_conflict);
    EXPECT_EQ(p.install(make_key(4, 2)), key_install::installed);
    EXPECT_EQ(p.current_phase(), 3) << "a new key does not take over until the old one is spent";
    EXPECT_EQ(p.install(make_key(5, 3)), key_install::installed) << "replaces phase 4, not the current one";
    EXPECT_EQ(p.live_keys(), 2u);
    EXPECT_EQ(p.current_phase(), 3);
    p.clear();
    EXPECT_FALSE(p.has_keys());
    kdp::frame_desc f;
    f.stream_id = 1;
    std::array<std::uint8_t, 32> buf{};
    EXPECT_EQ(p.seal(f, buf.data(), 16, 0), seal_refusal::no_key);
}

// ---- two connections back to back ---------------------------------------------------------

// A client and a server on one path, 1 ms apart, optionally dropping every n-th datagram; the
// client streams a pattern to the server. Every stream frame on the wire is recorded.
class pair_fixture : public ::testing::Test {
protected:
    struct end {
        pair_fixture* owner;
        int index;
        std::unique_ptr<connection> conn;
        std::string received;
        stream_id reading = 0;
    };
    struct wire_frame {
        int from;
        std::uint8_t flags;
        std::uint8_t phase;
        std::array<std::uint8_t, 12> nonce;
    };

    void start(bool compress_friendly = false) {
        for (int i = 0; i < 2; ++i) {
            end& e = ends[i];
            e.owner = this;
            e.index = i;
            connection_config c;
            c.side = i == 0 ? role::client : role::server;
            c.tx_ops = &heap_buffer_ops;
            c.rx_ops = &heap_buffer_ops;
            c.max_packets_per_flush = 8;
            connection_callbacks cb;
            cb.ctx = &e;
            cb.transmit = [](void* ctx, path_id, std::span<const std::uint8_t> b) {
                auto* self = static_cast<end*>(ctx);
                self->owner->transmit(self->index, b);
            };
            cb.allocate = [](void*, std::size_t size, std::uint8_t** data) -> void* {
                heap_buffer* b = heap_buffer::make(size);
                *data = b->data();
                return b;
            };
            cb.on_readable = [](void* ctx, stream_id id) {
                auto* self = static_cast<end*>(ctx);
                self->conn->read(id, [](void* c2, std::uint64_t offset, std::span<const std::uint8_t> d) {
                    std::string& s = static_cast<end*>(c2)->received;
                    if (s.size() < offset + d.size()) {
                        s.resize(offset + d.size());
                    }
                    std::memcpy(s.data() + offset, d.data(), d.size());
                }, self);
            };
            e.conn = std::make_unique<connection>(c, cb, 0);
            e.conn->add_path(1, 0);
        }
        data.resize(200'000);
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = compress_friendly ? "kwik encrypted frames "[i % 22] : static_cast<char>((i * 2654435761u) >> 13);
        }
    }

    void send_all(bool compress) {
        stream_options o;
        o.compress = compress;
        const stream_id id = client().open_stream(o);
        ASSERT_NE(id, 0u);
        heap_buffer* b = heap_buffer::make(data.size());
        std::memcpy(b->data(), data.data(), data.size());
        ASSERT_TRUE(client().write(id, {b->data(), static_cast<std::uint32_t>(data.size()), b}));
        heap_buffer_release(b);
        ASSERT_TRUE(client().finish(id));
    }

    // Until the server holds all of data, or the limit.
    bool run(time_ns limit) {
        return run_until([&] { return ends[1].received.size() >= data.size(); }, limit);
    }

    template <class Done> bool run_until(Done done, time_ns limit) {
        while (now < limit && !done()) {
            now += 100 * us;
            for (int from = 0; from < 2; ++from) {
                auto& q = queues[from];
                while (!q.empty() && q.front().first <= now) {
                    const std::vector<std::uint8_t>& d = q.front().second;
                    heap_buffer* b = heap_buffer::make(d.size());
                    std::memcpy(b->data(), d.data(), d.size());
                    ends[1 - from].conn->on_datagram(1, {b->data(), d.size()}, b, false, now);
                    heap_buffer_release(b);
                    q.pop_front();
                }
            }
            client().flush(now);
            server().flush(now);
        }
        return done();
    }

    void transmit(int from, std::span<const std::uint8_t> b) {
        ASSERT_EQ(kdp::parse_packet(kdp::contiguous_bytes(b), *view), kdp::drop_reason::none);
        for (const kdp::frame_view& f : view->frame_span()) {
            if (f.is_control()) {
                continue;
            }
            wire_frame w{from, f.flags, f.key_phase, {}};
            if ((f.flags & kdp::frame_flag::encrypted) != 0) {
                std::memcpy(w.nonce.data(), b.data() + f.ext_pos + f.nonce_pos, 12);
            }
            frames.push_back(w);
        }
        ++count;
        if (drop_every != 0 && count % drop_every == 0) {
            return;
        }
        queues[from].emplace_back(now + 1 * ms, std::vector<std::uint8_t>(b.begin(), b.end()));
    }

    connection& client() { return *ends[0].conn; }
    connection& server() { return *ends[1].conn; }

    end ends[2];
    std::deque<std::pair<time_ns, std::vector<std::uint8_t>>> queues[2];
    std::unique_ptr<kdp::packet_view> view = std::make_unique<kdp::packet_view>();
    std::vector<wire_frame> frames;
    std::string data;
    time_ns now = 0;
    std::uint64_t count = 0;
    std::uint64_t drop_every = 0;
};

TEST_F(pair_fixture, encrypted_transfer_with_loss_uses_every_nonce_once) {
    start();
    drop_every = 17; // retransmissions are sealed again, under fresh nonces
    ASSERT_EQ(client().install_key(make_key(0, 0x5a)), key_install::installed);
    ASSERT_EQ(server().install_key(make_key(0, 0x5a)), key_install::installed);
    client().set_require_encryption(true);
    send_all(false);
    ASSERT_TRUE(run(10 * sec));
    EXPECT_EQ(ends[1].received, data);
    EXPECT_GT(client().counters().stream_bytes_retransmitted, 0u);
    std::set<std::array<std::uint8_t, 12>> nonces;
    std::uint64_t client_frames = 0;
    for (const wire_frame& w : frames) {
        if (w.from != 0) {
            continue;
        }
        ++client_frames;
        ASSERT_NE(w.flags & kdp::frame_flag::encrypted, 0) << "every client stream frame is sealed";
        EXPECT_EQ(w.nonce[0], 'K');
        EXPECT_EQ(w.nonce[1], 'C');
        EXPECT_TRUE(nonces.insert(w.nonce).second) << "a nonce was used twice";
    }
    EXPECT_EQ(client_frames, client().counters().encrypted_frames_sent);
    EXPECT_EQ(server().counters().drops[static_cast<std::size_t>(kdp::drop_reason::aead_auth_failed)], 0u);
}

TEST_F(pair_fixture, compressed_and_encrypted) {
    start(true);
    ASSERT_EQ(client().install_key(make_key(9, 0x01)), key_install::installed);
    ASSERT_EQ(server().install_key(make_key(9, 0x01)), key_install::installed);
    client().set_require_encryption(true);
    send_all(true);
    ASSERT_TRUE(run(10 * sec));
    EXPECT_EQ(ends[1].received, data);
    bool both = false;
    for (const wire_frame& w : frames) {
        if (w.from == 0 && (w.flags & kdp::frame_flag::compressed) != 0) {
            EXPECT_NE(w.flags & kdp::frame_flag::encrypted, 0);
            EXPECT_EQ(w.phase, 9);
            both = true;
        }
    }
    EXPECT_TRUE(both) << "the pattern deflates: frames are compressed, then encrypted";
    EXPECT_GT(client().counters().compressed_frames, 0u);
}

// Phase 0 may seal 40 frames; phase 1 is installed beside it. The client moves to phase 1
// when phase 0 is spent, the server follows on its first phase-1 frame.
TEST_F(pair_fixture, rekeying_moves_to_the_next_phase) {
    start();
    aead_key k0 = make_key(0, 0x10);
    k0.max_frames = 40;
    const aead_key k1 = make_key(1, 0x20);
    for (connection* c : {&client(), &server()}) {
        ASSERT_EQ(c->install_key(k0), key_install::installed);
        ASSERT_EQ(c->install_key(k1), key_install::installed);
    }
    client().set_require_encryption(true);
    send_all(false);
    ASSERT_TRUE(run(10 * sec));
    EXPECT_EQ(ends[1].received, data);
    std::map<std::uint8_t, std::uint64_t> by_phase;
    for (const wire_frame& w : frames) {
        if (w.from == 0) {
            ++by_phase[w.phase];
        }
    }
    EXPECT_EQ(by_phase[0], 40u);
    EXPECT_GT(by_phase[1], 0u);
    EXPECT_EQ(client().key_phase(), 1);
    EXPECT_EQ(server().key_phase(), 1);
}

// The server was not told to encrypt: it does once the client's ENCRYPTED frames verify, so what
// an echo or pattern endpoint sends back is sealed too, under the server's nonce prefix.
TEST_F(pair_fixture, the_server_encrypts_once_the_client_does) {
    start();
    data.resize(5000);
    ASSERT_EQ(client().install_key(make_key(0, 0x77)), key_install::installed);
    ASSERT_EQ(server().install_key(make_key(0, 0x77)), key_install::installed);
    client().set_require_encryption(true);
    EXPECT_FALSE(server().encrypting());
    send_all(false);
    ASSERT_TRUE(run(5 * sec));
    EXPECT_TRUE(server().encrypting());
    const stream_id back = server().open_stream({});
    ASSERT_NE(back, 0u);
    const std::string answer(20000, 'a');
    heap_buffer* b = heap_buffer::make(answer.size());
    std::memcpy(b->data(), answer.data(), answer.size());
    ASSERT_TRUE(server().write(back, {b->data(), static_cast<std::uint32_t>(answer.size()), b}));
    heap_buffer_release(b);
    ASSERT_TRUE(server().finish(back));
    ASSERT_TRUE(run_until([&] { return ends[0].received.size() >= answer.size(); }, 10 * sec));
    EXPECT_EQ(ends[0].received, answer);
    std::uint64_t from_server = 0;
    for (const wire_frame& w : frames) {
        if (w.from == 1) {
            ++from_server;
            EXPECT_NE(w.flags & kdp::frame_flag::encrypted, 0);
            EXPECT_EQ(w.nonce[1], 'S') << "the server's prefix KSRV";
        }
    }
    EXPECT_GT(from_server, 10u);
}

// Without keys, encryption required holds data back (counted) until a key arrives.
TEST_F(pair_fixture, data_waits_for_a_key) {
    start();
    client().set_require_encryption(true);
    send_all(false);
    EXPECT_FALSE(run(50 * ms));
    EXPECT_EQ(ends[1].received.size(), 0u);
    EXPECT_EQ(client().counters().encrypted_frames_sent, 0u);
    EXPECT_EQ(client().counters().stream_bytes_sent, 0u) << "no plaintext went out instead";
    ASSERT_EQ(client().install_key(make_key(2, 0x33)), key_install::installed);
    ASSERT_EQ(server().install_key(make_key(2, 0x33)), key_install::installed);
    ASSERT_TRUE(run(10 * sec));
    EXPECT_EQ(ends[1].received, data);
}

} // namespace
} // namespace kwik::transport
