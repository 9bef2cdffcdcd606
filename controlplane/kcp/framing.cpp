// KCP framing: see framing.hpp and PROTOCOL.md 11.1.
#include "controlplane/kcp/framing.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <cstdio>

namespace kwik::kcp {

namespace {

// Once this much of the buffer has been handed out, feed() moves the rest to the front.
constexpr std::size_t compact_threshold = 64 * 1024;

std::string hex_bytes(const unsigned char* p, std::size_t n) {
    std::string out;
    char b[4];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(b, sizeof b, i == 0 ? "%02x" : " %02x", p[i]);
        out += b;
    }
    return out;
}

// The field numbers of m's unknown fields, e.g. " (unknown fields 80, 81)", or "".
std::string unknown_fields_note(const KCPMessage& m) {
    const google::protobuf::UnknownFieldSet& unknown = m.GetReflection()->GetUnknownFields(m);
    if (unknown.empty()) {
        return {};
    }
    std::string out = " (unknown fields";
    for (int i = 0; i < unknown.field_count(); ++i) {
        out += (i == 0 ? " " : ", ") + std::to_string(unknown.field(i).number());
    }
    return out + ")";
}

} // namespace

std::string_view to_string(frame_error e) noexcept {
    switch (e) {
    case frame_error::none:
        return "none";
    case frame_error::length_too_long:
        return "length_too_long";
    case frame_error::length_overflow:
        return "length_overflow";
    case frame_error::length_non_minimal:
        return "length_non_minimal";
    case frame_error::length_zero:
        return "length_zero";
    case frame_error::message_too_large:
        return "message_too_large";
    case frame_error::payload_invalid:
        return "payload_invalid";
    case frame_error::payload_missing:
        return "payload_missing";
    case frame_error::header_missing:
        return "header_missing";
    case frame_error::truncated:
        return "truncated";
    }
    return "unknown";
}

std::size_t varint_size(std::uint64_t n) noexcept {
    std::size_t size = 1;
    while (n >= 0x80) {
        n >>= 7;
        ++size;
    }
    return size;
}

bool append_frame(std::string& out, const KCPMessage& m) {
    const std::size_t size = m.ByteSizeLong();
    if (size > max_encodable_size) {
        return false;
    }
    const std::size_t start = out.size();
    const std::size_t total = varint_size(size) + size;
    out.resize(start + total);
    google::protobuf::io::ArrayOutputStream array(out.data() + start, static_cast<int>(total));
    google::protobuf::io::CodedOutputStream coded(&array);
    coded.SetSerializationDeterministic(true);
    coded.WriteVarint32(static_cast<std::uint32_t>(size));
    // ByteSizeLong() above cached the sizes this uses.
    m.SerializeWithCachedSizes(&coded);
    coded.Trim();
    if (coded.HadError() || static_cast<std::size_t>(coded.ByteCount()) != total) {
        out.resize(start);
        return false;
    }
    return true;
}

std::string encode(const KCPMessage& m) {
    std::string out;
    if (!append_frame(out, m)) {
        out.clear();
    }
    return out;
}

std::string_view payload_name(const KCPMessage& m) noexcept {
    const auto* field = KCPMessage::descriptor()->FindFieldByNumber(m.payload_case());
    return field != nullptr ? std::string_view(field->name()) : std::string_view("none");
}

frame_reader::frame_reader(std::size_t max_message_size)
    : _max(std::clamp<std::size_t>(max_message_size, 1, max_encodable_size)) {}

void frame_reader::feed(std::string_view bytes) {
    if (failed() || bytes.empty()) {
        return;
    }
    if (_pos == _buf.size()) {
        _offset += _pos;
        _buf.clear();
        _pos = 0;
    } else if (_pos >= compact_threshold && _pos >= _buf.size() / 2) {
        _offset += _pos;
        _buf.erase(0, _pos);
        _pos = 0;
    }
    _buf.append(bytes);
}

frame_reader::status frame_reader::fail(frame_error e, std::string reason) {
    _error = e;
    _reason = "frame at stream offset " + std::to_string(_offset + _pos) + ": " + reason;
    _buf.clear();
    _buf.shrink_to_fit();
    _pos = 0;
    return status::error;
}

frame_reader::status frame_reader::next(KCPMessage& out) {
    if (failed()) {
        return status::error;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(_buf.data()) + _pos;
    const std::size_t n = _buf.size() - _pos;

    // The length: base-128, least significant group first, at most 5 groups.
    std::uint64_t length = 0;
    std::size_t prefix = 0;
    for (std::size_t i = 0; i < std::min(n, max_length_prefix_size); ++i) {
        length |= std::uint64_t{p[i] & 0x7Fu} << (7 * i);
        if ((p[i] & 0x80) == 0) {
            prefix = i + 1;
            break;
        }
    }
    if (prefix == 0) {
        if (n >= max_length_prefix_size) {
            return fail(frame_error::length_too_long,
                        "the length varint runs past 5 bytes (" +
                            hex_bytes(p, max_length_prefix_size) + ")");
        }
        return status::need_more;
    }
    if (prefix > 1 && p[prefix - 1] == 0) {
        return fail(frame_error::length_non_minimal,
                    "the length varint " + hex_bytes(p, prefix) + " is not minimal (" +
                        std::to_string(length) + " in " + std::to_string(prefix) + " bytes)");
    }
    if (length > 0xFFFFFFFFu) {
        return fail(frame_error::length_overflow, "the length varint " + hex_bytes(p, prefix) +
                                                      " is above 2^32 - 1 (" +
                                                      std::to_string(length) + ")");
    }
    if (length == 0) {
        return fail(frame_error::length_zero,
                    "length 0 (every KCPMessage has at least its header)");
    }
    if (length > _max) {
        return fail(frame_error::message_too_large,
                    "a message of " + std::to_string(length) + " bytes, above the maximum of " +
                        std::to_string(_max) + " bytes");
    }
    if (n - prefix < length) {
        return status::need_more;
    }

    out.Clear();
    if (!out.ParseFromArray(p + prefix, static_cast<int>(length))) {
        return fail(frame_error::payload_invalid,
                    "the " + std::to_string(length) +
                        " bytes are not a KCPMessage (bad protobuf wire format, or a string "
                        "field that is not UTF-8)");
    }
    if (out.payload_case() == KCPMessage::PAYLOAD_NOT_SET) {
        return fail(frame_error::payload_missing,
                    "a KCPMessage of " + std::to_string(length) +
                        " bytes with no payload set" + unknown_fields_note(out));
    }
    if (!out.has_header()) {
        return fail(frame_error::header_missing,
                    "a " + std::string(payload_name(out)) + " message without its header");
    }
    _pos += prefix + length;
    ++_frames;
    return status::message;
}

} // namespace kwik::kcp
