// Frame rules shared by the parser and the serialiser, and the serialiser itself.
#include "dataplane/kdp/packet.hpp"

#include <cstring>

namespace kwik::kdp {

namespace {

constexpr std::uint8_t pt(packet_type t) noexcept { return static_cast<std::uint8_t>(t); }

bool known_priority(std::uint8_t p) noexcept {
    return p == static_cast<std::uint8_t>(priority::normal) ||
           p == static_cast<std::uint8_t>(priority::high) ||
           p == static_cast<std::uint8_t>(priority::critical) ||
           p == static_cast<std::uint8_t>(priority::control);
}

std::size_t extension_size(const frame_desc& f) noexcept {
    std::size_t n = 0;
    if ((f.flags & frame_flag::compressed) != 0) {
        n += 2 + varint_size(f.uncompressed_length); // type, length, value
    }
    if ((f.flags & frame_flag::encrypted) != 0) {
        n += 2 + aead_extension_len;
    }
    return n;
}

// The extension TLVs of f, in ascending type order; returns extension_size(f).
std::size_t write_extensions(const frame_desc& f, std::uint8_t* out) noexcept {
    std::uint8_t* w = out;
    if ((f.flags & frame_flag::compressed) != 0) {
        w += varint_write(w, static_cast<std::uint64_t>(extension_type::uncompressed_length));
        w += varint_write(w, varint_size(f.uncompressed_length));
        w += varint_write(w, f.uncompressed_length);
    }
    if ((f.flags & frame_flag::encrypted) != 0) {
        w += varint_write(w, static_cast<std::uint64_t>(extension_type::aead));
        w += varint_write(w, aead_extension_len);
        *w++ = f.key_phase;
        std::memcpy(w, f.nonce.data(), aead_nonce_len);
        w += aead_nonce_len;
    }
    return static_cast<std::size_t>(w - out);
}

void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
    v = __builtin_bswap64(v);
    std::memcpy(p, &v, sizeof v);
}

void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
    v = __builtin_bswap32(v);
    std::memcpy(p, &v, sizeof v);
}

} // namespace

drop_reason check_frame(const frame_fields& f, std::uint8_t ptype, std::uint8_t comp,
                        std::uint64_t* stream_length) noexcept {
    if ((f.flags & frame_flag::reserved) != 0) {
        return drop_reason::reserved_flags_set;
    }
    if (!known_priority(f.priority)) {
        return drop_reason::unknown_priority;
    }
    if (f.priority == static_cast<std::uint8_t>(priority::control)) {
        if (f.flags != 0) {
            return drop_reason::control_flags_set;
        }
        if (f.ext_length != 0) {
            return drop_reason::extension_unexpected;
        }
        if (f.data_length == 0 || f.data_length > max_control_payload) {
            return drop_reason::control_malformed;
        }
        *stream_length = 0;
        return drop_reason::none;
    }
    // A stream frame.
    const bool prio_flag = (f.flags & frame_flag::priority) != 0;
    if (prio_flag != (f.priority != static_cast<std::uint8_t>(priority::normal))) {
        return drop_reason::priority_flag_mismatch;
    }
    if (f.stream_id == 0) {
        return drop_reason::stream_id_zero;
    }
    if (ptype == pt(packet_type::control) || ptype == pt(packet_type::ack) ||
        ptype == pt(packet_type::keepalive)) {
        return drop_reason::frame_not_allowed;
    }
    if (ptype == pt(packet_type::priority) &&
        f.priority == static_cast<std::uint8_t>(priority::normal)) {
        return drop_reason::frame_not_allowed;
    }
    if (ptype == pt(packet_type::retransmission) && (f.flags & frame_flag::retransmit) == 0) {
        return drop_reason::frame_not_allowed;
    }
    const bool compressed = (f.flags & frame_flag::compressed) != 0;
    const bool encrypted = (f.flags & frame_flag::encrypted) != 0;
    if (compressed != f.has_uncompressed_length) {
        return compressed ? drop_reason::extension_missing : drop_reason::extension_unexpected;
    }
    if (encrypted != f.has_aead) {
        return encrypted ? drop_reason::extension_missing : drop_reason::extension_unexpected;
    }
    if (compressed && comp == static_cast<std::uint8_t>(compression::none)) {
        return drop_reason::compression_not_announced;
    }
    if (encrypted && f.data_length < aead_tag_len) {
        return drop_reason::aead_data_too_short;
    }
    std::uint64_t len = f.data_length;
    if (compressed) {
        // The compressed bytes themselves (without an AEAD tag) must not be empty.
        if (f.uncompressed_length == 0 || f.data_length <= (encrypted ? aead_tag_len : 0)) {
            return drop_reason::extension_malformed;
        }
        if (f.uncompressed_length > max_uncompressed_length) {
            return drop_reason::uncompressed_too_large; // bounds the receiver's inflate buffer
        }
        len = f.uncompressed_length;
    } else if (encrypted) {
        len = f.data_length - aead_tag_len;
    }
    if (len == 0 && (f.flags & frame_flag::fin) == 0) {
        return drop_reason::empty_stream_frame;
    }
    if (f.offset > max_stream_offset || len > max_stream_offset - f.offset) {
        return drop_reason::offset_overflow;
    }
    *stream_length = len;
    return drop_reason::none;
}

drop_reason check_control_in_packet(control_type t, std::uint8_t ptype) noexcept {
    if (ptype == pt(packet_type::ack) && t != control_type::ack) {
        return drop_reason::frame_not_allowed;
    }
    if (ptype == pt(packet_type::keepalive) && t != control_type::path_challenge &&
        t != control_type::path_response) {
        return drop_reason::frame_not_allowed;
    }
    return drop_reason::none;
}

std::size_t frame_wire_size(const frame_desc& f) noexcept {
    const std::size_t ext = extension_size(f);
    return varint_size(f.stream_id) + frame_header_fixed + varint_size(f.data.size()) +
           varint_size(ext) + ext + f.data.size();
}

std::size_t packet_wire_size(const packet_desc& p) noexcept {
    std::size_t body = 0;
    for (const frame_desc& f : p.frames) {
        body += frame_wire_size(f);
    }
    return packet_header_fixed + varint_size(p.frames.size()) + varint_size(body) + body;
}

write_result serialize_packet(const packet_desc& p, std::span<std::uint8_t> out) noexcept {
    const auto type = static_cast<std::uint8_t>(p.type);
    const auto comp = static_cast<std::uint8_t>(p.comp);
    if (type > packet_type_max) {
        return {0, drop_reason::unknown_packet_type};
    }
    if (comp > compression_max) {
        return {0, drop_reason::unknown_compression};
    }
    if (p.seq > varint_max) {
        return {0, drop_reason::sequence_too_large};
    }
    if (p.frames.empty()) {
        return {0, drop_reason::frame_count_zero};
    }
    if (p.frames.size() > max_frames_per_packet) {
        return {0, drop_reason::frame_count_exceeded};
    }
    for (const frame_desc& f : p.frames) {
        if (f.stream_id > varint_max || f.uncompressed_length > varint_max) {
            return {0, drop_reason::value_too_large};
        }
        const std::size_t ext = extension_size(f);
        const frame_fields ff{f.stream_id,
                              f.offset,
                              f.data.size(),
                              f.uncompressed_length,
                              f.flags,
                              static_cast<std::uint8_t>(f.prio),
                              ext,
                              (f.flags & frame_flag::compressed) != 0,
                              (f.flags & frame_flag::encrypted) != 0};
        std::uint64_t stream_length = 0;
        drop_reason r = check_frame(ff, type, comp, &stream_length);
        if (r != drop_reason::none) {
            return {0, r};
        }
        if (f.prio == priority::control) {
            r = decode_control(f.stream_id, f.offset, f.data.data(), f.data.size(), nullptr);
            if (r == drop_reason::none) {
                r = check_control_in_packet(static_cast<control_type>(f.data[0]), type);
            }
            if (r != drop_reason::none) {
                return {0, r};
            }
        }
    }
    const std::size_t size = packet_wire_size(p);
    if (size > max_packet_size) {
        return {0, drop_reason::packet_too_large};
    }
    if (size > out.size()) {
        return {0, drop_reason::none};
    }

    std::size_t body = 0;
    for (const frame_desc& f : p.frames) {
        body += frame_wire_size(f);
    }
    std::uint8_t* w = out.data();
    store_be64(w, p.seq);
    w[8] = type;
    w += 9;
    w += varint_write(w, p.frames.size());
    w += varint_write(w, body);
    std::uint8_t* checksum_field = w;
    store_be32(w, 0);
    w[4] = comp;
    w += 5;
    std::uint32_t pcrc = crc32c(out.data(), static_cast<std::size_t>(w - out.data()));

    for (const frame_desc& f : p.frames) {
        std::uint8_t* header = w;
        w += varint_write(w, f.stream_id);
        store_be64(w, f.offset);
        w[8] = f.flags;
        w += 9;
        w += varint_write(w, f.data.size());
        const std::uint32_t fcrc = f.has_checksum ? f.checksum : crc32c(f.data.data(), f.data.size());
        store_be32(w, fcrc);
        w[4] = static_cast<std::uint8_t>(f.prio);
        w += 5;
        const std::size_t ext = extension_size(f);
        w += varint_write(w, ext);
        w += write_extensions(f, w);
        pcrc = crc32c(header, static_cast<std::size_t>(w - header), pcrc);
        if (!f.data.empty()) {
            std::memcpy(w, f.data.data(), f.data.size());
            w += f.data.size();
        }
    }
    store_be32(checksum_field, pcrc);
    return {static_cast<std::size_t>(w - out.data()), drop_reason::none};
}

std::size_t frame_aad(const frame_desc& f, std::span<std::uint8_t, max_aead_aad> out) noexcept {
    std::uint8_t* w = out.data();
    w += varint_write(w, f.stream_id);
    store_be64(w, f.offset);
    w[8] = static_cast<std::uint8_t>(f.flags & aead_flags_mask);
    w += 9;
    w += write_extensions(f, w);
    return static_cast<std::size_t>(w - out.data());
}

std::size_t frame_aad(std::span<const std::uint8_t> datagram, const frame_view& f,
                      std::span<std::uint8_t, max_aead_aad> out) noexcept {
    // StreamID and Offset are adjacent on the wire, the flags byte follows (5.1); the parser
    // accepted only minimal varints, so the StreamID takes varint_size(stream_id) bytes.
    const std::size_t id_and_offset = varint_size(f.stream_id) + 8;
    std::memcpy(out.data(), datagram.data() + f.header_pos, id_and_offset);
    out[id_and_offset] = static_cast<std::uint8_t>(f.flags & aead_flags_mask);
    std::memcpy(out.data() + id_and_offset + 1, datagram.data() + f.ext_pos, f.ext_length);
    return id_and_offset + 1 + f.ext_length;
}

} // namespace kwik::kdp
