// The path packet parser, a template over the byte source so that the contiguous and the
// chained (mbuf) cases compile to separate straight-line code. Included by packet.hpp only.
// Any thread; the packet_view belongs to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kwik::kdp::detail {

inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_bswap64(v);
}

inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_bswap32(v);
}

// Sequential reader over [pos, end) of a source. Returned pointers stay valid until the next
// call (they may point into scratch when a field straddles two segments).
template <class Source>
struct cursor {
    const Source& src;
    std::size_t pos;
    std::size_t end;
    std::uint8_t scratch[16];

    const std::uint8_t* take(std::size_t n) noexcept {
        if (n > end - pos) [[unlikely]] {
            return nullptr;
        }
        const std::uint8_t* p = src.view(pos, n, scratch);
        pos += n;
        return p;
    }

    varint_status varint(std::uint64_t* v) noexcept {
        if (pos >= end) [[unlikely]] {
            return varint_status::truncated;
        }
        const std::size_t len = varint_length(*src.view(pos, 1, scratch));
        if (len > end - pos) [[unlikely]] {
            return varint_status::truncated;
        }
        std::size_t used = 0;
        const varint_status st = varint_read(src.view(pos, len, scratch), len, v, &used);
        pos += len;
        return st;
    }
};

constexpr drop_reason on_varint(varint_status st, drop_reason truncated) noexcept {
    return st == varint_status::truncated ? truncated : drop_reason::varint_non_minimal;
}

// Decodes the extension TLVs of one frame (PROTOCOL.md 5.4) into fields and f.
inline drop_reason parse_extensions(const std::uint8_t* p, std::size_t n, frame_fields& ff,
                                    frame_view& f) noexcept {
    std::size_t pos = 0;
    std::uint64_t previous_type = 0;
    bool first = true;
    while (pos < n) {
        std::uint64_t type = 0;
        std::uint64_t len = 0;
        std::size_t used = 0;
        varint_status st = varint_read(p + pos, n - pos, &type, &used);
        if (st != varint_status::ok) {
            return on_varint(st, drop_reason::extension_malformed);
        }
        pos += used;
        st = varint_read(p + pos, n - pos, &len, &used);
        if (st != varint_status::ok) {
            return on_varint(st, drop_reason::extension_malformed);
        }
        pos += used;
        if (len > n - pos) {
            return drop_reason::extension_malformed;
        }
        // Types appear in strictly ascending order, so every frame has one canonical encoding.
        if (!first && type <= previous_type) {
            return type == previous_type ? drop_reason::extension_duplicate
                                         : drop_reason::extension_malformed;
        }
        first = false;
        previous_type = type;
        const std::uint8_t* value = p + pos;
        switch (static_cast<extension_type>(type)) {
        case extension_type::uncompressed_length: {
            std::uint64_t ul = 0;
            st = varint_read(value, len, &ul, &used);
            if (st != varint_status::ok) {
                return on_varint(st, drop_reason::extension_malformed);
            }
            if (used != len) {
                return drop_reason::extension_malformed;
            }
            ff.has_uncompressed_length = true;
            ff.uncompressed_length = ul;
            break;
        }
        case extension_type::aead:
            if (len != aead_extension_len) {
                return drop_reason::extension_malformed;
            }
            ff.has_aead = true;
            f.key_phase = value[0];
            f.nonce_pos = static_cast<std::uint8_t>(pos + 1);
            break;
        default:
            break; // unknown extension types are skipped (PROTOCOL.md 5.4)
        }
        pos += len;
    }
    return drop_reason::none;
}

template <class Source>
drop_reason parse_frame(cursor<Source>& c, frame_view& f, std::uint8_t ptype,
                        std::uint8_t comp) noexcept {
    f.header_pos = static_cast<std::uint32_t>(c.pos);
    f.key_phase = 0;
    f.nonce_pos = 0;
    f.control = 0;
    f.checksum_ok = false;

    std::uint64_t stream_id = 0;
    varint_status st = c.varint(&stream_id);
    if (st != varint_status::ok) [[unlikely]] {
        return on_varint(st, drop_reason::frame_truncated);
    }
    const std::uint8_t* p = c.take(9);
    if (p == nullptr) [[unlikely]] {
        return drop_reason::frame_truncated;
    }
    f.stream_id = stream_id;
    f.offset = load_be64(p);
    f.flags = p[8];
    std::uint64_t data_length = 0;
    st = c.varint(&data_length);
    if (st != varint_status::ok) [[unlikely]] {
        return on_varint(st, drop_reason::frame_truncated);
    }
    p = c.take(5);
    if (p == nullptr) [[unlikely]] {
        return drop_reason::frame_truncated;
    }
    f.checksum = load_be32(p);
    f.priority = p[4];
    std::uint64_t ext_length = 0;
    st = c.varint(&ext_length);
    if (st != varint_status::ok) [[unlikely]] {
        return on_varint(st, drop_reason::frame_truncated);
    }
    if (ext_length > max_extension_bytes) [[unlikely]] {
        return drop_reason::extension_too_long;
    }
    if (ext_length > c.end - c.pos) [[unlikely]] {
        return drop_reason::frame_truncated;
    }
    f.ext_pos = static_cast<std::uint32_t>(c.pos);
    f.ext_length = static_cast<std::uint16_t>(ext_length);

    frame_fields ff{stream_id, f.offset, data_length, 0, f.flags, f.priority, ext_length,
                    false, false};
    if (ext_length != 0) {
        std::uint8_t ext_scratch[max_extension_bytes];
        const std::uint8_t* ext = c.src.view(c.pos, ext_length, ext_scratch);
        const drop_reason r = parse_extensions(ext, ext_length, ff, f);
        if (r != drop_reason::none) {
            return r;
        }
    }
    c.pos += ext_length;
    f.data_pos = static_cast<std::uint32_t>(c.pos);
    if (data_length > c.end - c.pos) [[unlikely]] {
        return drop_reason::frame_length_beyond_packet;
    }
    f.data_length = static_cast<std::uint32_t>(data_length);
    c.pos += data_length;

    const drop_reason r = check_frame(ff, ptype, comp, &f.stream_length);
    if (r != drop_reason::none) [[unlikely]] {
        return r;
    }
    if (f.is_control()) {
        std::uint8_t payload_scratch[max_control_payload];
        const std::uint8_t* payload = c.src.view(f.data_pos, f.data_length, payload_scratch);
        const drop_reason cr = decode_control(stream_id, f.offset, payload, f.data_length, nullptr);
        if (cr != drop_reason::none) {
            return cr;
        }
        f.control = payload[0];
        return check_control_in_packet(static_cast<control_type>(payload[0]), ptype);
    }
    return drop_reason::none;
}

} // namespace kwik::kdp::detail

namespace kwik::kdp {

template <parse_mode Mode, class Source>
drop_reason parse_packet(const Source& src, packet_view& out) noexcept {
    const std::size_t n = src.size();
    out.frame_count = 0;
    out.frames_parsed = 0;
    out.checksum_ok = false;
    if (n < packet_header_min) [[unlikely]] {
        return drop_reason::packet_too_short;
    }
    if (n > max_packet_size) [[unlikely]] {
        return drop_reason::packet_too_large;
    }
    detail::cursor<Source> c{src, 0, n, {}};
    const std::uint8_t* p = c.take(9);
    out.seq = detail::load_be64(p);
    out.type = p[8];
    std::uint64_t frame_count = 0;
    std::uint64_t total_length = 0;
    varint_status st = c.varint(&frame_count);
    if (st != varint_status::ok) [[unlikely]] {
        return detail::on_varint(st, drop_reason::header_truncated);
    }
    st = c.varint(&total_length);
    if (st != varint_status::ok) [[unlikely]] {
        return detail::on_varint(st, drop_reason::header_truncated);
    }
    const std::size_t checksum_pos = c.pos;
    p = c.take(5);
    if (p == nullptr) [[unlikely]] {
        return drop_reason::header_truncated;
    }
    out.checksum = detail::load_be32(p);
    out.compression = p[4];
    out.header_length = static_cast<std::uint32_t>(c.pos);
    if (out.seq > varint_max) [[unlikely]] {
        return drop_reason::sequence_too_large;
    }
    if (out.type > packet_type_max) [[unlikely]] {
        return drop_reason::unknown_packet_type;
    }
    if (out.compression > compression_max) [[unlikely]] {
        return drop_reason::unknown_compression;
    }
    if (total_length != n - c.pos) [[unlikely]] {
        return drop_reason::total_length_mismatch;
    }
    out.total_length = static_cast<std::uint32_t>(total_length);
    if (frame_count == 0) [[unlikely]] {
        return drop_reason::frame_count_zero;
    }
    if (frame_count > max_frames_per_packet) [[unlikely]] {
        return drop_reason::frame_count_exceeded;
    }

    // Packet CRC: the header with its checksum field as zeros, then every frame's header and
    // extensions. Frame data is covered once, by the frame CRC that this CRC covers in turn.
    std::uint32_t pcrc = src.crc(0, checksum_pos, 0);
    pcrc = crc32c_zeros(4, pcrc);
    pcrc = src.crc(checksum_pos + 4, 1, pcrc);

    std::uint32_t i = 0;
    while (c.pos < n) {
        if (i == frame_count) [[unlikely]] {
            out.frames_parsed = i;
            return drop_reason::frame_count_mismatch;
        }
        frame_view& f = out.frames[i];
        const drop_reason r = detail::parse_frame(c, f, out.type, out.compression);
        if (r != drop_reason::none) [[unlikely]] {
            out.frames_parsed = i;
            return r;
        }
        pcrc = src.crc(f.header_pos, f.data_pos - f.header_pos, pcrc);
        ++i;
    }
    out.frames_parsed = i;
    if (i != frame_count) [[unlikely]] {
        return drop_reason::frame_count_mismatch;
    }
    out.frame_count = i;
    out.checksum_ok = pcrc == out.checksum;
    if constexpr (Mode == parse_mode::verify) {
        if (!out.checksum_ok) [[unlikely]] {
            return drop_reason::bad_packet_checksum;
        }
    }
    bool frames_ok = true;
    for (std::uint32_t j = 0; j < i; ++j) {
        frame_view& f = out.frames[j];
        f.checksum_ok = src.crc(f.data_pos, f.data_length, 0) == f.checksum;
        if (!f.checksum_ok) [[unlikely]] {
            if constexpr (Mode == parse_mode::verify) {
                return drop_reason::bad_frame_checksum;
            }
            frames_ok = false;
        }
    }
    if (!out.checksum_ok) {
        return drop_reason::bad_packet_checksum;
    }
    return frames_ok ? drop_reason::none : drop_reason::bad_frame_checksum;
}

} // namespace kwik::kdp
