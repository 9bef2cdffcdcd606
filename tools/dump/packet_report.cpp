// Field-by-field JSON of a KDP packet. Everything comes from the codec's packet_view and
// decode_control; only the header's frame count and total length are re-read (with the codec's
// varint_read) when the parser stopped before recording them.
#include "tools/dump/packet_report.hpp"

#include <cstdio>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/varint.hpp"

namespace kwik::tools::dump {

namespace {

nlohmann::json control_report(const kdp::frame_view& f, std::span<const std::uint8_t> payload) {
    kdp::control_frame c;
    const std::span<const std::uint8_t> data = payload.subspan(f.data_pos, f.data_length);
    const kdp::drop_reason r = kdp::decode_control(f.stream_id, f.offset, data.data(), data.size(), &c);
    nlohmann::json j;
    j["type"] = data.empty() ? "none" : control_type_name(data[0]);
    j["type_code"] = data.empty() ? 0 : data[0];
    if (r != kdp::drop_reason::none) {
        j["error"] = kdp::to_string(r);
        return j;
    }
    switch (c.type) {
    case kdp::control_type::ack: {
        j["path_id"] = c.ack.path_id;
        j["largest"] = c.ack.largest();
        j["ack_delay_us"] = c.ack.ack_delay_us;
        j["ecn_ce"] = c.ack.ecn_ce;
        j["range_count"] = c.ack.range_count;
        nlohmann::json ranges = nlohmann::json::array();
        for (std::size_t i = 0; i < c.ack.range_count; ++i) {
            ranges.push_back({{"largest", c.ack.ranges[i].largest}, {"smallest", c.ack.ranges[i].smallest}});
        }
        j["ranges"] = std::move(ranges);
        break;
    }
    case kdp::control_type::max_data:
    case kdp::control_type::data_blocked:
        j["limit"] = c.limit;
        break;
    case kdp::control_type::max_stream_data:
    case kdp::control_type::stream_data_blocked:
        j["stream_id"] = c.stream_id;
        j["limit"] = c.limit;
        break;
    case kdp::control_type::reset_stream:
        j["stream_id"] = c.stream_id;
        j["final_size"] = c.limit;
        j["error_code"] = c.error_code;
        break;
    case kdp::control_type::path_challenge:
    case kdp::control_type::path_response:
        j["data"] = hex_bytes(c.challenge);
        break;
    case kdp::control_type::connection_close:
        j["error_code"] = c.error_code;
        j["reason"] = std::string(c.reason.begin(), c.reason.end()); // printed with invalid UTF-8 replaced
        j["reason_hex"] = hex_bytes(c.reason);
        break;
    }
    return j;
}

nlohmann::json extensions_report(const kdp::frame_view& f, std::span<const std::uint8_t> payload) {
    nlohmann::json out = nlohmann::json::array();
    const std::span<const std::uint8_t> ext = payload.subspan(f.ext_pos, f.ext_length);
    std::size_t pos = 0;
    while (pos < ext.size()) {
        std::uint64_t type = 0;
        std::uint64_t len = 0;
        std::size_t used = 0;
        if (kdp::varint_read(ext.data() + pos, ext.size() - pos, &type, &used) != kdp::varint_status::ok) {
            out.push_back({{"error", "malformed type"}});
            break;
        }
        pos += used;
        if (kdp::varint_read(ext.data() + pos, ext.size() - pos, &len, &used) != kdp::varint_status::ok ||
            len > ext.size() - pos - used) {
            out.push_back({{"type", type}, {"error", "malformed length"}});
            break;
        }
        pos += used;
        const std::span<const std::uint8_t> value = ext.subspan(pos, static_cast<std::size_t>(len));
        nlohmann::json e = {{"type", type}, {"length", len}};
        if (type == static_cast<std::uint64_t>(kdp::extension_type::uncompressed_length)) {
            e["name"] = "uncompressed_length";
            std::uint64_t v = 0;
            if (kdp::varint_read(value.data(), value.size(), &v, &used) == kdp::varint_status::ok) {
                e["value"] = v;
            }
        } else if (type == static_cast<std::uint64_t>(kdp::extension_type::aead)) {
            e["name"] = "aead";
            if (!value.empty()) {
                e["key_phase"] = value[0];
                e["nonce"] = hex_bytes(value.subspan(1));
            }
        } else {
            e["name"] = "unknown";
            e["value_hex"] = hex_bytes(value);
        }
        out.push_back(std::move(e));
        pos += static_cast<std::size_t>(len);
    }
    return out;
}

} // namespace

std::string_view packet_type_name(std::uint8_t type) noexcept {
    static constexpr std::string_view names[] = {"data", "control", "ack", "keepalive", "priority", "retransmission"};
    return type <= kdp::packet_type_max ? names[type] : "unknown";
}

std::string_view priority_name(std::uint8_t priority) noexcept {
    switch (static_cast<kdp::priority>(priority)) {
    case kdp::priority::normal:
        return "normal";
    case kdp::priority::high:
        return "high";
    case kdp::priority::critical:
        return "critical";
    case kdp::priority::control:
        return "control";
    }
    return "unknown";
}

std::string_view control_type_name(std::uint8_t type) noexcept {
    static constexpr std::string_view names[] = {"unknown",        "ack",           "max_data",
                                                 "max_stream_data", "reset_stream",  "path_challenge",
                                                 "path_response",   "connection_close", "data_blocked",
                                                 "stream_data_blocked"};
    return type <= kdp::control_type_max ? names[type] : "unknown";
}

std::string_view compression_name(std::uint8_t compression) noexcept {
    switch (compression) {
    case static_cast<std::uint8_t>(kdp::compression::none):
        return "none";
    case static_cast<std::uint8_t>(kdp::compression::deflate):
        return "deflate";
    default:
        return "unknown";
    }
}

nlohmann::json flag_names(std::uint8_t flags) {
    static constexpr std::pair<std::uint8_t, const char*> names[] = {
        {kdp::frame_flag::fin, "FIN"},
        {kdp::frame_flag::priority, "PRIORITY"},
        {kdp::frame_flag::compressed, "COMPRESSED"},
        {kdp::frame_flag::encrypted, "ENCRYPTED"},
        {kdp::frame_flag::ordered, "ORDERED"},
        {kdp::frame_flag::retransmit, "RETRANSMIT"},
        {0x40, "RESERVED_6"},
        {0x80, "RESERVED_7"},
    };
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [bit, name] : names) {
        if ((flags & bit) != 0) {
            out.push_back(name);
        }
    }
    return out;
}

std::string hex32(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

std::string hex_bytes(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (std::uint8_t b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0F]);
    }
    return out;
}

nlohmann::json kdp_report(std::span<const std::uint8_t> payload, const kdp::packet_view& v,
                          kdp::drop_reason reason, bool data_hex) {
    nlohmann::json j;
    j["size"] = payload.size();
    if (reason == kdp::drop_reason::packet_too_short || reason == kdp::drop_reason::packet_too_large) {
        return j; // the parser read nothing
    }
    j["seq"] = v.seq;
    j["type"] = packet_type_name(v.type);
    j["type_code"] = v.type;
    // Frame count and total length: from the view after a full parse, else re-read.
    std::size_t pos = 9;
    for (const char* field : {"frame_count", "total_length"}) {
        std::uint64_t value = 0;
        std::size_t used = 0;
        if (pos >= payload.size() ||
            kdp::varint_read(payload.data() + pos, payload.size() - pos, &value, &used) != kdp::varint_status::ok) {
            return j;
        }
        j[field] = value;
        pos += used;
    }
    if (v.header_length == 0) {
        return j; // the checksum and compression bytes are missing
    }
    j["header_length"] = v.header_length;
    j["checksum"] = hex32(v.checksum);
    // The packet CRC is only computed once every frame was found.
    const bool structure_ok = reason == kdp::drop_reason::none || reason == kdp::drop_reason::bad_packet_checksum ||
                              reason == kdp::drop_reason::bad_frame_checksum;
    j["checksum_ok"] = structure_ok ? nlohmann::json(v.checksum_ok) : nlohmann::json(nullptr);
    j["compression"] = compression_name(v.compression);
    j["compression_code"] = v.compression;

    nlohmann::json frames = nlohmann::json::array();
    const std::uint32_t n = structure_ok ? v.frame_count : v.frames_parsed;
    for (std::uint32_t i = 0; i < n; ++i) {
        const kdp::frame_view& f = v.frames[i];
        nlohmann::json fj = {
            {"stream_id", f.stream_id},
            {"offset", f.offset},
            {"flags", f.flags},
            {"flag_names", flag_names(f.flags)},
            {"data_length", f.data_length},
            {"stream_length", f.stream_length},
            {"checksum", hex32(f.checksum)},
            {"checksum_ok", structure_ok ? nlohmann::json(f.checksum_ok) : nlohmann::json(nullptr)},
            {"priority", priority_name(f.priority)},
            {"priority_code", f.priority},
            {"extension_length", f.ext_length},
            {"extensions", extensions_report(f, payload)},
        };
        if (f.is_control()) {
            fj["control"] = control_report(f, payload);
        } else if (data_hex) {
            fj["data_hex"] = hex_bytes(payload.subspan(f.data_pos, f.data_length));
        }
        frames.push_back(std::move(fj));
    }
    j["frames_decoded"] = n;
    j["frames"] = std::move(frames);
    return j;
}

} // namespace kwik::tools::dump
