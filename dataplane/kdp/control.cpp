// Control frame payloads: validation, decoding and encoding (PROTOCOL.md section 6).
#include "dataplane/kdp/control.hpp"

#include <cstring>

#include "dataplane/kdp/varint.hpp"

namespace kwik::kdp {

namespace {

struct reader {
    const std::uint8_t* p;
    std::size_t n;
    std::size_t pos = 0;
    drop_reason error = drop_reason::none;

    std::uint64_t varint() noexcept {
        std::uint64_t v = 0;
        std::size_t used = 0;
        const varint_status st = varint_read(p + pos, n - pos, &v, &used);
        if (st != varint_status::ok) {
            if (error == drop_reason::none) {
                error = st == varint_status::truncated ? drop_reason::control_malformed
                                                       : drop_reason::varint_non_minimal;
            }
            pos = n;
            return 0;
        }
        pos += used;
        return v;
    }
};

struct writer {
    std::uint8_t* p;
    std::size_t cap;
    std::size_t pos = 0;
    bool failed = false;

    void byte(std::uint8_t b) noexcept {
        if (pos >= cap) {
            failed = true;
            return;
        }
        p[pos++] = b;
    }
    void varint(std::uint64_t v) noexcept {
        const std::size_t len = varint_size(v);
        if (len == 0 || len > cap - pos) {
            failed = true;
            return;
        }
        pos += varint_write(p + pos, v);
    }
    void bytes(const std::uint8_t* b, std::size_t len) noexcept {
        if (len > cap - pos) {
            failed = true;
            return;
        }
        if (len != 0) {
            std::memcpy(p + pos, b, len);
        }
        pos += len;
    }
};

drop_reason decode_ack(reader& r, ack_frame* out) noexcept {
    ack_frame local;
    ack_frame& a = out != nullptr ? *out : local;
    a.path_id = r.varint();
    const std::uint64_t largest = r.varint();
    a.ack_delay_us = r.varint();
    a.ecn_ce = r.varint();
    const std::uint64_t extra = r.varint();
    const std::uint64_t first = r.varint();
    if (r.error != drop_reason::none) {
        return r.error;
    }
    if (extra > max_ack_ranges) {
        return drop_reason::ack_too_many_ranges;
    }
    if (first > largest) {
        return drop_reason::ack_range_invalid;
    }
    a.ranges[0] = {largest, largest - first};
    std::uint64_t smallest = largest - first;
    for (std::uint64_t i = 0; i < extra; ++i) {
        const std::uint64_t gap = r.varint();
        const std::uint64_t len = r.varint();
        if (r.error != drop_reason::none) {
            return r.error;
        }
        // The next range ends gap + 2 below the previous smallest (RFC 9000 19.3.1).
        if (smallest < gap + 2) {
            return drop_reason::ack_range_invalid;
        }
        const std::uint64_t next_largest = smallest - gap - 2;
        if (len > next_largest) {
            return drop_reason::ack_range_invalid;
        }
        smallest = next_largest - len;
        a.ranges[i + 1] = {next_largest, smallest};
    }
    a.range_count = static_cast<std::size_t>(extra) + 1;
    return drop_reason::none;
}

} // namespace

drop_reason decode_control(std::uint64_t stream_id, std::uint64_t offset,
                           const std::uint8_t* payload, std::size_t len,
                           control_frame* out) noexcept {
    if (len == 0 || len > max_control_payload) {
        return drop_reason::control_malformed;
    }
    const std::uint8_t t = payload[0];
    if (t == 0 || t > control_type_max) {
        return drop_reason::control_type_unknown;
    }
    const auto type = static_cast<control_type>(t);
    const control_header_rule rule = header_rule(type);
    if (rule.stream_must_be_zero != (stream_id == 0)) {
        return drop_reason::control_stream_invalid;
    }
    if (rule.offset_used ? offset > max_stream_offset : offset != 0) {
        return drop_reason::control_offset_invalid;
    }
    if (out != nullptr) {
        out->type = type;
        out->stream_id = stream_id;
        out->limit = offset;
        out->error_code = 0;
        out->reason = {};
    }
    reader r{payload, len, 1};
    switch (type) {
    case control_type::ack: {
        const drop_reason e = decode_ack(r, out != nullptr ? &out->ack : nullptr);
        if (e != drop_reason::none) {
            return e;
        }
        break;
    }
    case control_type::max_data:
    case control_type::max_stream_data:
    case control_type::data_blocked:
    case control_type::stream_data_blocked:
        break;
    case control_type::reset_stream: {
        const std::uint64_t code = r.varint();
        if (out != nullptr) {
            out->error_code = code;
        }
        break;
    }
    case control_type::path_challenge:
    case control_type::path_response:
        if (len - 1 != path_challenge_len) {
            return drop_reason::control_malformed;
        }
        if (out != nullptr) {
            std::memcpy(out->challenge.data(), payload + 1, path_challenge_len);
        }
        r.pos = len;
        break;
    case control_type::connection_close: {
        const std::uint64_t code = r.varint();
        if (r.error == drop_reason::none && out != nullptr) {
            out->error_code = code;
            out->reason = {payload + r.pos, len - r.pos};
        }
        r.pos = len;
        break;
    }
    }
    if (r.error != drop_reason::none) {
        return r.error;
    }
    if (r.pos != len) {
        return drop_reason::control_malformed;
    }
    return drop_reason::none;
}

std::uint64_t control_stream_id(const control_frame& c) noexcept {
    return header_rule(c.type).stream_must_be_zero ? 0 : c.stream_id;
}

std::uint64_t control_offset(const control_frame& c) noexcept {
    return header_rule(c.type).offset_used ? c.limit : 0;
}

std::size_t encode_control(const control_frame& c, std::span<std::uint8_t> out) noexcept {
    writer w{out.data(), out.size()};
    w.byte(static_cast<std::uint8_t>(c.type));
    switch (c.type) {
    case control_type::ack: {
        const ack_frame& a = c.ack;
        if (a.range_count == 0 || a.range_count > max_ack_ranges + 1) {
            return 0;
        }
        if (a.ranges[0].largest < a.ranges[0].smallest) {
            return 0;
        }
        w.varint(a.path_id);
        w.varint(a.ranges[0].largest);
        w.varint(a.ack_delay_us);
        w.varint(a.ecn_ce);
        w.varint(a.range_count - 1);
        w.varint(a.ranges[0].largest - a.ranges[0].smallest);
        for (std::size_t i = 1; i < a.range_count; ++i) {
            const ack_range& prev = a.ranges[i - 1];
            const ack_range& cur = a.ranges[i];
            if (cur.largest < cur.smallest || prev.smallest < 2 ||
                cur.largest > prev.smallest - 2) {
                return 0;
            }
            w.varint(prev.smallest - cur.largest - 2);
            w.varint(cur.largest - cur.smallest);
        }
        break;
    }
    case control_type::max_data:
    case control_type::max_stream_data:
    case control_type::data_blocked:
    case control_type::stream_data_blocked:
        break;
    case control_type::reset_stream:
        w.varint(c.error_code);
        break;
    case control_type::path_challenge:
    case control_type::path_response:
        w.bytes(c.challenge.data(), c.challenge.size());
        break;
    case control_type::connection_close:
        w.varint(c.error_code);
        w.bytes(c.reason.data(), c.reason.size());
        break;
    default:
        return 0;
    }
    if (w.failed || w.pos > max_control_payload) {
        return 0;
    }
    return w.pos;
}

} // namespace kwik::kdp
