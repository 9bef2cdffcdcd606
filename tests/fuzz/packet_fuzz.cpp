// libFuzzer target for the KDP path packet codec (dataplane/kdp/packet.hpp, control.hpp).
// Every input is parsed in verify and inspect mode over contiguous_bytes and over chained_bytes
// split at data-derived points (each segment its own heap block, so AddressSanitizer sees a read
// past a segment's end); the verdicts and views must agree. A valid packet is rebuilt into a
// packet_desc and serialised again: the bytes must come back unchanged. An input that is sound
// except for its checksums is re-checked with the checksums repaired, so the round trip runs on
// the mutated packets too, not only on the seeds. Any disagreement aborts (a crash for libFuzzer).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/kdp/bytes.hpp"
#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/kdp/varint.hpp"
#include "dataplane/kdp/wire.hpp"

namespace {

using namespace kwik::kdp;

[[noreturn]] void fail(const char* what, int line) {
    std::fprintf(stderr, "packet_fuzz: check failed at line %d: %s\n", line, what);
    std::abort();
}

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail(#cond, __LINE__);                                                                 \
        }                                                                                          \
    } while (0)

std::uint32_t load_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

void store_be32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

// ---- view comparison ----

bool same_frame(const frame_view& a, const frame_view& b, bool compare_checksum_ok) {
    return a.stream_id == b.stream_id && a.offset == b.offset && a.stream_length == b.stream_length &&
           a.header_pos == b.header_pos && a.ext_pos == b.ext_pos && a.data_pos == b.data_pos &&
           a.data_length == b.data_length && a.checksum == b.checksum && a.ext_length == b.ext_length &&
           a.flags == b.flags && a.priority == b.priority && a.control == b.control &&
           a.key_phase == b.key_phase && a.nonce_pos == b.nonce_pos &&
           (!compare_checksum_ok || a.checksum_ok == b.checksum_ok);
}

// Both views were value-initialised before their parse, so every frame slot compares, including
// the partly written one a rejection stopped in.
bool same_view(const packet_view& a, const packet_view& b, bool compare_frame_checksum_ok) {
    if (a.seq != b.seq || a.checksum != b.checksum || a.header_length != b.header_length ||
        a.total_length != b.total_length || a.frame_count != b.frame_count || a.type != b.type ||
        a.compression != b.compression || a.checksum_ok != b.checksum_ok ||
        a.frames_parsed != b.frames_parsed) {
        return false;
    }
    for (std::size_t i = 0; i < max_frames_per_packet; ++i) {
        if (!same_frame(a.frames[i], b.frames[i], compare_frame_checksum_ok)) {
            return false;
        }
    }
    return true;
}

bool checksum_verdict(drop_reason r) {
    return r == drop_reason::bad_packet_checksum || r == drop_reason::bad_frame_checksum;
}

// ---- chained sources ----

// A chain whose segments are separate heap blocks holding copies of the input's pieces.
class chain {
public:
    void add(const std::uint8_t* p, std::size_t len) {
        std::unique_ptr<std::uint8_t[]> block(new std::uint8_t[len == 0 ? 1 : len]);
        if (len != 0) {
            std::memcpy(block.get(), p, len);
        }
        _segs.push_back({block.get(), static_cast<std::uint32_t>(len)});
        _blocks.push_back(std::move(block));
    }
    chained_bytes bytes() const { return chained_bytes(std::span<const segment>(_segs)); }

private:
    std::vector<std::unique_ptr<std::uint8_t[]>> _blocks;
    std::vector<segment> _segs;
};

std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
    std::uint64_t h = 0xCBF29CE484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 0x100000001B3ull;
    }
    return h;
}

// 2 to 16 segments cut at points drawn from the input's hash; with_empty also puts zero-length
// segments between (and before and after) them, as some mbuf chains have.
chain random_chain(const std::uint8_t* data, std::size_t n, std::uint64_t seed, bool with_empty) {
    std::uint64_t s = seed;
    const std::size_t pieces = 2 + splitmix64(s) % 15;
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i + 1 < pieces && n > 0; ++i) {
        // Half the cuts fall in the first 64 bytes, where the headers are.
        const std::uint64_t r = splitmix64(s);
        cuts.push_back((r & 1) != 0 ? (r >> 1) % (n < 64 ? n : 64) : (r >> 1) % n);
    }
    cuts.push_back(n);
    std::sort(cuts.begin(), cuts.end());
    chain c;
    std::size_t pos = 0;
    for (const std::size_t cut : cuts) {
        if (with_empty && splitmix64(s) % 3 == 0) {
            c.add(data + pos, 0);
        }
        if (cut > pos) {
            c.add(data + pos, cut - pos);
            pos = cut;
        }
    }
    if (with_empty) {
        c.add(data + pos, 0);
    }
    return c;
}

chain byte_chain(const std::uint8_t* data, std::size_t n) {
    chain c;
    for (std::size_t i = 0; i < n; ++i) {
        c.add(data + i, 1);
    }
    return c;
}

// ---- independent checks on an accepted (or checksum-only rejected) view ----

// The packet CRC as the comment in packet_parse.hpp defines it, computed bit by bit: the header
// with the checksum field as zeros, then every frame's header and extensions.
std::uint32_t reference_packet_crc(const std::uint8_t* data, const packet_view& v) {
    const std::size_t checksum_pos = v.header_length - 5;
    std::uint32_t crc = crc32c_bitwise(data, checksum_pos, 0);
    const std::uint8_t zeros[4] = {};
    crc = crc32c_bitwise(zeros, 4, crc);
    crc = crc32c_bitwise(data + checksum_pos + 4, 1, crc);
    for (const frame_view& f : v.frame_span()) {
        crc = crc32c_bitwise(data + f.header_pos, f.data_pos - f.header_pos, crc);
    }
    return crc;
}

// Where a frame's checksum field is: before the priority byte and the ext-length varint.
std::size_t frame_checksum_pos(const frame_view& f) {
    return f.ext_pos - varint_size(f.ext_length) - 5;
}

void check_layout(const std::uint8_t* data, std::size_t n, const packet_view& v) {
    FUZZ_CHECK(v.frame_count >= 1 && v.frame_count <= max_frames_per_packet);
    FUZZ_CHECK(v.frames_parsed == v.frame_count);
    FUZZ_CHECK(std::size_t{v.header_length} + v.total_length == n);
    std::size_t pos = v.header_length;
    for (const frame_view& f : v.frame_span()) {
        FUZZ_CHECK(f.header_pos == pos);
        FUZZ_CHECK(std::size_t{f.ext_pos} + f.ext_length == f.data_pos);
        FUZZ_CHECK(f.ext_pos >= f.header_pos + frame_header_min);
        FUZZ_CHECK(load_be32(data + frame_checksum_pos(f)) == f.checksum);
        FUZZ_CHECK(data[frame_checksum_pos(f) + 4] == f.priority);
        pos = std::size_t{f.data_pos} + f.data_length;
        if (f.is_control()) {
            FUZZ_CHECK(f.control == data[f.data_pos]);
        } else {
            FUZZ_CHECK(f.control == 0);
        }
    }
    FUZZ_CHECK(pos == n);
    FUZZ_CHECK(load_be32(data + v.header_length - 5) == v.checksum);
}

// In inspect mode every checksum result is recorded; they must match a recomputation and the
// verdict must follow from them.
void check_inspect_checksums(const std::uint8_t* data, const packet_view& v, drop_reason verdict) {
    FUZZ_CHECK(v.checksum_ok == (reference_packet_crc(data, v) == v.checksum));
    bool frames_ok = true;
    for (const frame_view& f : v.frame_span()) {
        const bool ok = crc32c(data + f.data_pos, f.data_length, 0) == f.checksum;
        FUZZ_CHECK(f.checksum_ok == ok);
        frames_ok = frames_ok && ok;
    }
    const drop_reason expected = !v.checksum_ok ? drop_reason::bad_packet_checksum
                                 : frames_ok    ? drop_reason::none
                                                : drop_reason::bad_frame_checksum;
    FUZZ_CHECK(verdict == expected);
}

// decode_control then encode_control gives back the payload, and the header fields agree.
void check_control_round_trip(std::uint64_t stream_id, std::uint64_t offset, const std::uint8_t* payload,
                              std::size_t len) {
    control_frame cf;
    FUZZ_CHECK(decode_control(stream_id, offset, payload, len, &cf) == drop_reason::none);
    FUZZ_CHECK(static_cast<std::uint8_t>(cf.type) == payload[0]);
    FUZZ_CHECK(control_stream_id(cf) == stream_id);
    FUZZ_CHECK(control_offset(cf) == offset);
    std::array<std::uint8_t, max_control_payload> out{};
    const std::size_t written = encode_control(cf, out);
    FUZZ_CHECK(written == len);
    FUZZ_CHECK(std::memcmp(out.data(), payload, len) == 0);
    // One byte short must fail cleanly, not write past the end.
    FUZZ_CHECK(encode_control(cf, std::span<std::uint8_t>(out.data(), len - 1)) == 0);
}

// Extension bytes the serialiser writes for a frame's flags.
std::size_t known_extension_size(const frame_view& f) {
    std::size_t n = 0;
    if ((f.flags & frame_flag::compressed) != 0) {
        n += 2 + varint_size(f.stream_length);
    }
    if ((f.flags & frame_flag::encrypted) != 0) {
        n += 2 + aead_extension_len;
    }
    return n;
}

// Rebuilds the description of an accepted packet, serialises it and compares.
void check_round_trip(const std::uint8_t* data, std::size_t n, const packet_view& v) {
    std::array<frame_desc, max_frames_per_packet> descs{};
    bool canonical = true;
    for (std::size_t i = 0; i < v.frame_count; ++i) {
        const frame_view& f = v.frames[i];
        frame_desc& d = descs[i];
        d.stream_id = f.stream_id;
        d.offset = f.offset;
        d.flags = f.flags;
        d.prio = static_cast<priority>(f.priority);
        d.data = {data + f.data_pos, f.data_length};
        if (f.is_control()) {
            check_control_round_trip(f.stream_id, f.offset, data + f.data_pos, f.data_length);
            continue;
        }
        const bool compressed = (f.flags & frame_flag::compressed) != 0;
        const bool encrypted = (f.flags & frame_flag::encrypted) != 0;
        if (compressed) {
            d.uncompressed_length = f.stream_length;
        } else if (encrypted) {
            FUZZ_CHECK(f.stream_length + aead_tag_len == f.data_length);
        } else {
            FUZZ_CHECK(f.stream_length == f.data_length);
        }
        if (encrypted) {
            FUZZ_CHECK(std::size_t{f.nonce_pos} + aead_nonce_len <= f.ext_length);
            FUZZ_CHECK(data[f.ext_pos + f.nonce_pos - 1] == f.key_phase);
            d.key_phase = f.key_phase;
            std::memcpy(d.nonce.data(), data + f.ext_pos + f.nonce_pos, aead_nonce_len);
        }
        // Known TLVs have one encoding and one order (ascending type), so only unknown ones,
        // which the serialiser does not write, make the bytes differ.
        if (f.ext_length != known_extension_size(f)) {
            canonical = false;
        }
    }
    const packet_desc p{v.seq, static_cast<packet_type>(v.type), static_cast<compression>(v.compression),
                        std::span<const frame_desc>(descs.data(), v.frame_count)};

    static std::array<std::uint8_t, max_packet_size> out;
    const write_result w = serialize_packet(p, out);
    FUZZ_CHECK(w.invalid == drop_reason::none);
    FUZZ_CHECK(w.ok());
    FUZZ_CHECK(w.size == packet_wire_size(p));
    if (canonical) {
        FUZZ_CHECK(w.size == n);
        FUZZ_CHECK(std::memcmp(out.data(), data, n) == 0);
        const write_result short_w = serialize_packet(p, std::span<std::uint8_t>(out.data(), n - 1));
        FUZZ_CHECK(!short_w.ok() && short_w.invalid == drop_reason::none);
        return;
    }
    // Not byte-identical by design: the re-serialised packet must still carry the same frames.
    packet_view again{};
    FUZZ_CHECK(parse_packet<parse_mode::verify>(contiguous_bytes(out.data(), w.size), again) ==
               drop_reason::none);
    FUZZ_CHECK(again.seq == v.seq && again.type == v.type && again.compression == v.compression);
    FUZZ_CHECK(again.frame_count == v.frame_count);
    for (std::size_t i = 0; i < v.frame_count; ++i) {
        const frame_view& a = again.frames[i];
        const frame_view& b = v.frames[i];
        FUZZ_CHECK(a.stream_id == b.stream_id && a.offset == b.offset && a.flags == b.flags &&
                   a.priority == b.priority && a.control == b.control && a.key_phase == b.key_phase &&
                   a.stream_length == b.stream_length && a.data_length == b.data_length &&
                   a.checksum == b.checksum);
        FUZZ_CHECK(std::memcmp(out.data() + a.data_pos, data + b.data_pos, b.data_length) == 0);
        if ((b.flags & frame_flag::encrypted) != 0) {
            FUZZ_CHECK(std::memcmp(out.data() + a.ext_pos + a.nonce_pos, data + b.ext_pos + b.nonce_pos,
                                   aead_nonce_len) == 0);
        }
    }
}

// All checks on one input; returns the verify verdict and leaves the inspect view in *inspected.
drop_reason check_packet(const std::uint8_t* data, std::size_t n, packet_view* inspected) {
    const contiguous_bytes flat(data, n);
    packet_view ref{};
    const drop_reason verdict = parse_packet<parse_mode::verify>(flat, ref);

    const std::uint64_t seed = fnv1a(data, n);
    const chain chains[] = {random_chain(data, n, seed, false), random_chain(data, n, seed ^ 0x5A5A, true),
                            n <= 4096 ? byte_chain(data, n) : random_chain(data, n, seed + 1, false)};
    for (const chain& c : chains) {
        packet_view v{};
        FUZZ_CHECK(parse_packet<parse_mode::verify>(c.bytes(), v) == verdict);
        FUZZ_CHECK(same_view(v, ref, true));
    }

    packet_view& insp = *inspected;
    insp = packet_view{};
    const drop_reason iverdict = parse_packet<parse_mode::inspect>(flat, insp);
    FUZZ_CHECK(iverdict == verdict);
    // Verify mode stops before computing the frame checksums a checksum rejection did not reach.
    FUZZ_CHECK(same_view(insp, ref, !checksum_verdict(verdict)));
    {
        packet_view v{};
        FUZZ_CHECK(parse_packet<parse_mode::inspect>(chains[0].bytes(), v) == iverdict);
        FUZZ_CHECK(same_view(v, insp, true));
    }

    if (verdict == drop_reason::none || checksum_verdict(verdict)) {
        check_layout(data, n, insp);
        check_inspect_checksums(data, insp, iverdict);
    }
    if (verdict == drop_reason::none) {
        check_round_trip(data, n, ref);
    }
    return verdict;
}

// The input as a bare control payload, with header fields its type byte admits.
void check_control_payload(const std::uint8_t* data, std::size_t n) {
    if (n == 0) {
        return;
    }
    const std::size_t len = n < max_control_payload ? n : max_control_payload;
    const std::uint8_t t = data[0];
    if (t == 0 || t > control_type_max) {
        FUZZ_CHECK(decode_control(0, 0, data, len, nullptr) == drop_reason::control_type_unknown);
        return;
    }
    const control_header_rule rule = header_rule(static_cast<control_type>(t));
    const std::uint64_t stream_id = rule.stream_must_be_zero ? 0 : 4;
    const std::uint64_t offset = rule.offset_used ? 1000 : 0;
    const drop_reason without_out = decode_control(stream_id, offset, data, len, nullptr);
    control_frame cf;
    FUZZ_CHECK(decode_control(stream_id, offset, data, len, &cf) == without_out);
    if (without_out == drop_reason::none) {
        check_control_round_trip(stream_id, offset, data, len);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_control_payload(data, size);

    static packet_view inspected;
    const drop_reason verdict = check_packet(data, size, &inspected);
    if (!checksum_verdict(verdict)) {
        return 0;
    }
    // Sound but for its checksums: repair them (frame CRCs first, the packet CRC covers them)
    // and the repaired packet must be accepted and survive every check above.
    std::vector<std::uint8_t> fixed(data, data + size);
    for (const frame_view& f : inspected.frame_span()) {
        store_be32(fixed.data() + frame_checksum_pos(f), crc32c(data + f.data_pos, f.data_length, 0));
    }
    store_be32(fixed.data() + inspected.header_length - 5, reference_packet_crc(fixed.data(), inspected));
    packet_view again;
    FUZZ_CHECK(check_packet(fixed.data(), fixed.size(), &again) == drop_reason::none);
    return 0;
}
