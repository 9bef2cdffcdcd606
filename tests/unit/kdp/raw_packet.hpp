// Test-only raw KDP encoder: writes any field values, valid or not (non-minimal varints, wrong
// lengths, wrong checksums), and by default computes both checksums correctly, so that a
// crafted packet breaks exactly the one rule a test names.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/varint.hpp"

namespace kwik::kdp::testing {

using bytes = std::vector<std::uint8_t>;

// A varint with an optional forced width (1/2/4/8) to produce non-minimal encodings.
inline void put_varint(bytes& out, std::uint64_t v, int width = 0) {
    if (width == 0) {
        std::uint8_t buf[8];
        const std::size_t n = varint_write(buf, v);
        out.insert(out.end(), buf, buf + n);
        return;
    }
    const std::uint8_t prefix = width == 1 ? 0x00 : width == 2 ? 0x40 : width == 4 ? 0x80 : 0xC0;
    for (int i = width - 1; i >= 0; --i) {
        std::uint8_t b = static_cast<std::uint8_t>(v >> (8 * i));
        if (i == width - 1) {
            b = static_cast<std::uint8_t>((b & 0x3F) | prefix);
        }
        out.push_back(b);
    }
}

inline void put_be(bytes& out, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
}

struct raw_frame {
    std::uint64_t stream_id = 4;
    std::uint64_t offset = 0;
    std::uint8_t flags = 0;
    std::uint8_t priority = 0;
    bytes data = {'k', 'w', 'i', 'k'};
    bytes ext;                                  // raw extension TLV bytes
    std::optional<std::uint64_t> data_length;   // default: data.size()
    std::optional<std::uint64_t> ext_length;    // default: ext.size()
    std::optional<std::uint32_t> checksum;      // default: CRC32C of data
    int stream_id_width = 0;
    int data_length_width = 0;

    bytes header() const {
        bytes out;
        put_varint(out, stream_id, stream_id_width);
        put_be(out, offset, 8);
        out.push_back(flags);
        put_varint(out, data_length.value_or(data.size()), data_length_width);
        put_be(out, checksum.value_or(crc32c(data.data(), data.size())), 4);
        out.push_back(priority);
        put_varint(out, ext_length.value_or(ext.size()));
        out.insert(out.end(), ext.begin(), ext.end());
        return out;
    }
};

struct raw_packet {
    std::uint64_t seq = 1;
    std::uint8_t type = 0;
    std::uint8_t compression = 0;
    std::vector<raw_frame> frames = {raw_frame{}};
    std::optional<std::uint64_t> frame_count;   // default: frames.size()
    std::optional<std::uint64_t> total_length;  // default: body size
    std::optional<std::uint32_t> checksum;      // default: correct packet CRC
    int frame_count_width = 0;
    int total_length_width = 0;
    bytes trailer;                              // bytes appended after the frames

    bytes encode() const {
        bytes body;
        std::vector<bytes> headers;
        for (const raw_frame& f : frames) {
            headers.push_back(f.header());
        }
        bytes head;
        put_be(head, seq, 8);
        head.push_back(type);
        std::size_t body_len = trailer.size();
        for (std::size_t i = 0; i < frames.size(); ++i) {
            body_len += headers[i].size() + frames[i].data.size();
        }
        put_varint(head, frame_count.value_or(frames.size()), frame_count_width);
        put_varint(head, total_length.value_or(body_len), total_length_width);
        const std::size_t checksum_pos = head.size();
        put_be(head, 0, 4);
        head.push_back(compression);
        std::uint32_t pcrc = crc32c(head.data(), head.size());
        for (std::size_t i = 0; i < frames.size(); ++i) {
            pcrc = crc32c(headers[i].data(), headers[i].size(), pcrc);
            body.insert(body.end(), headers[i].begin(), headers[i].end());
            body.insert(body.end(), frames[i].data.begin(), frames[i].data.end());
        }
        body.insert(body.end(), trailer.begin(), trailer.end());
        const std::uint32_t c = checksum.value_or(pcrc);
        for (int i = 0; i < 4; ++i) {
            head[checksum_pos + i] = static_cast<std::uint8_t>(c >> (8 * (3 - i)));
        }
        head.insert(head.end(), body.begin(), body.end());
        return head;
    }
};

// A control frame with the given payload and header fields.
inline raw_frame control(bytes payload, std::uint64_t stream_id = 0, std::uint64_t offset = 0) {
    raw_frame f;
    f.stream_id = stream_id;
    f.offset = offset;
    f.priority = 0xFF;
    f.data = std::move(payload);
    return f;
}

} // namespace kwik::kdp::testing
