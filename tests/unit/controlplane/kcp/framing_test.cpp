// Unit tests for controlplane/kcp/framing: frames of every payload type survive encode and the
// reader whatever the split; every refusal (length varint too long, overflowing, non-minimal,
// zero, above the maximum; payload invalid, missing, headerless) is the right frame_error with a
// reason that names the offset; truncation at every byte boundary is "need more", never an
// error; random bytes never crash and give the same outcome however they are split.
#include "controlplane/kcp/framing.hpp"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/proto/kcp_samples.hpp"

namespace kwik::kcp {
namespace {

using google::protobuf::util::MessageDifferencer;
using v3::samples::make_kcp_message;
using v3::samples::payload_cases;

std::string bytes(std::initializer_list<int> b) {
    std::string out;
    for (const int x : b) {
        out += static_cast<char>(x);
    }
    return out;
}

KCPMessage sample(std::size_t i = 0) {
    return make_kcp_message(payload_cases().at(i));
}

// Everything the reader yields for stream fed in pieces of split bytes (0: all at once).
struct read_outcome {
    std::vector<std::string> frames; // each message re-encoded
    frame_error error = frame_error::none;
    std::string reason;
    std::size_t buffered = 0;
};

read_outcome read_all(std::string_view stream, std::size_t split = 0,
                      std::size_t max = default_max_message_size) {
    frame_reader reader(max);
    read_outcome out;
    KCPMessage m;
    const std::size_t step = split == 0 ? std::max<std::size_t>(stream.size(), 1) : split;
    for (std::size_t at = 0; at < stream.size(); at += step) {
        reader.feed(stream.substr(at, step));
        while (reader.next(m) == frame_reader::status::message) {
            out.frames.push_back(encode(m));
        }
    }
    out.error = reader.error();
    out.reason = reader.reason();
    out.buffered = reader.buffered();
    return out;
}

TEST(kcp_framing, varint_size_is_protobufs) {
    EXPECT_EQ(varint_size(0), 1u);
    EXPECT_EQ(varint_size(127), 1u);
    EXPECT_EQ(varint_size(128), 2u);
    EXPECT_EQ(varint_size(16383), 2u);
    EXPECT_EQ(varint_size(16384), 3u);
    EXPECT_EQ(varint_size(default_max_message_size), 3u);
    EXPECT_EQ(varint_size(0xFFFFFFFFu), 5u);
}

TEST(kcp_framing, frame_is_minimal_varint_length_then_the_message) {
    const KCPMessage m = sample();
    const std::string payload = m.SerializeAsString();
    ASSERT_GT(payload.size(), 127u); // a two-byte length
    const std::string frame = encode(m);
    ASSERT_EQ(frame.size(), 2 + payload.size());
    EXPECT_EQ(static_cast<unsigned char>(frame[0]), 0x80 | (payload.size() & 0x7F));
    EXPECT_EQ(static_cast<unsigned char>(frame[1]), payload.size() >> 7);
    EXPECT_EQ(frame.substr(2), payload);

    // A small message: one length byte.
    KCPMessage tiny;
    tiny.mutable_header()->set_message_id(1);
    tiny.mutable_health_check_req()->set_sequence(2);
    const std::string small = encode(tiny);
    ASSERT_EQ(static_cast<unsigned char>(small[0]), small.size() - 1);
}

TEST(kcp_framing, encode_is_deterministic_for_maps) {
    KCPMessage a;
    KCPMessage b;
    a.mutable_header()->set_message_id(5);
    b.mutable_header()->set_message_id(5);
    for (std::uint64_t k = 1; k <= 50; ++k) {
        (*a.mutable_load_balancing()->mutable_path_weights())[k] = static_cast<float>(k);
        (*b.mutable_load_balancing()->mutable_path_weights())[51 - k] =
            static_cast<float>(51 - k);
    }
    EXPECT_EQ(encode(a), encode(b));
}

TEST(kcp_framing, append_frame_appends) {
    std::string out = "xy";
    ASSERT_TRUE(append_frame(out, sample(1)));
    EXPECT_EQ(out, "xy" + encode(sample(1)));
}

// Every payload member of the oneof, one frame each, read back equal; all of them in one
// stream, whole, byte by byte and in 7-byte pieces.
TEST(kcp_framing, every_payload_type_round_trips) {
    std::string stream;
    const auto cases = payload_cases();
    ASSERT_EQ(cases.size(), 24u);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const KCPMessage m = make_kcp_message(c);
        const std::string frame = encode(m);
        stream += frame;
        frame_reader reader;
        reader.feed(frame);
        KCPMessage back;
        ASSERT_EQ(reader.next(back), frame_reader::status::message);
        EXPECT_EQ(back.payload_case(), c.expected);
        EXPECT_TRUE(MessageDifferencer::Equals(m, back));
        EXPECT_EQ(payload_name(back), c.name);
        EXPECT_EQ(reader.next(back), frame_reader::status::need_more);
        EXPECT_EQ(reader.buffered(), 0u);
        EXPECT_EQ(reader.frames(), 1u);
    }
    for (const std::size_t split : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
        SCOPED_TRACE("split " + std::to_string(split));
        const read_outcome r = read_all(stream, split);
        EXPECT_EQ(r.error, frame_error::none) << r.reason;
        ASSERT_EQ(r.frames.size(), cases.size());
        for (std::size_t i = 0; i < cases.size(); ++i) {
            EXPECT_EQ(r.frames[i], encode(make_kcp_message(cases[i])));
        }
    }
}

TEST(kcp_framing, truncated_at_every_byte_boundary_needs_more) {
    const std::string frame = encode(sample(2));
    for (std::size_t cut = 0; cut < frame.size(); ++cut) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        frame_reader reader;
        reader.feed(std::string_view(frame).substr(0, cut));
        KCPMessage m;
        EXPECT_EQ(reader.next(m), frame_reader::status::need_more);
        EXPECT_FALSE(reader.failed());
        EXPECT_EQ(reader.buffered(), cut);
        reader.feed(std::string_view(frame).substr(cut));
        ASSERT_EQ(reader.next(m), frame_reader::status::message);
        EXPECT_EQ(encode(m), frame);
    }
}

struct rejection_case {
    const char* description;
    std::string stream;
    frame_error expected;
    const char* reason_part; // a piece of the reason a person reads
    std::size_t max = default_max_message_size;
};

void PrintTo(const rejection_case& c, std::ostream* os) {
    *os << c.description;
}

KCPMessage headerless() {
    KCPMessage m;
    m.mutable_health_check_req()->set_sequence(9);
    return m;
}

KCPMessage header_only() {
    KCPMessage m;
    m.mutable_header()->set_message_id(4);
    return m;
}

// A frame around arbitrary payload bytes.
std::string frame_of(const std::string& payload) {
    std::string out;
    std::size_t n = payload.size();
    do {
        out += static_cast<char>((n & 0x7F) | (n >= 0x80 ? 0x80 : 0));
        n >>= 7;
    } while (n != 0);
    return out + payload;
}

std::vector<rejection_case> rejection_cases() {
    // A header-only message followed by field 200 (unknown here: a future payload type).
    const std::string future = header_only().SerializeAsString() + bytes({0xC2, 0x0C, 0x00});
    // ClientHello.client_id = "\xff": not UTF-8.
    std::string bad_utf8 = header_only().SerializeAsString() + bytes({0x52, 0x03, 0x0A, 0x01, 0xFF});
    return {
        {"length varint of six bytes", bytes({0x80, 0x80, 0x80, 0x80, 0x80}),
         frame_error::length_too_long, "runs past 5 bytes (80 80 80 80 80)"},
        {"length 2^32 in five bytes", bytes({0x80, 0x80, 0x80, 0x80, 0x10}),
         frame_error::length_overflow, "above 2^32 - 1 (4294967296)"},
        {"length 2^32 - 1 is merely too large", bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x0F}),
         frame_error::message_too_large, "4294967295 bytes, above the maximum of 1048576"},
        {"length 0 in two bytes", bytes({0x80, 0x00}), frame_error::length_non_minimal,
         "80 00 is not minimal"},
        {"length 1 in three bytes", bytes({0x81, 0x80, 0x00}), frame_error::length_non_minimal,
         "81 80 00 is not minimal (1 in 3 bytes)"},
        {"length 0", bytes({0x00}), frame_error::length_zero, "length 0"},
        {"1 MiB + 1, refused before its payload", bytes({0x81, 0x80, 0x40}),
         frame_error::message_too_large, "1048577 bytes, above the maximum of 1048576"},
        {"above a configured maximum of 10", frame_of(std::string(11, '\0')),
         frame_error::message_too_large, "11 bytes, above the maximum of 10", 10},
        {"garbage payload", bytes({0x04, 0xFF, 0xFF, 0xFF, 0xFF}), frame_error::payload_invalid,
         "4 bytes are not a KCPMessage"},
        {"a field running past the frame", bytes({0x03, 0x0A, 0x05, 0x08}),
         frame_error::payload_invalid, "not a KCPMessage"},
        {"a string field that is not UTF-8", frame_of(bad_utf8), frame_error::payload_invalid,
         "UTF-8"},
        {"header but no payload", encode(header_only()), frame_error::payload_missing,
         "no payload set"},
        {"only a payload type this build lacks", frame_of(future), frame_error::payload_missing,
         "no payload set (unknown fields 200)"},
        {"payload without header", encode(headerless()), frame_error::header_missing,
         "a health_check_req message without its header"},
        {"the second frame is bad", encode(sample()) + bytes({0x00}), frame_error::length_zero,
         "frame at stream offset "},
    };
}

class kcp_framing_rejects : public testing::TestWithParam<rejection_case> {};

TEST_P(kcp_framing_rejects, with_the_reason) {
    const rejection_case& c = GetParam();
    for (const std::size_t split : {std::size_t{0}, std::size_t{1}}) {
        SCOPED_TRACE("split " + std::to_string(split));
        const read_outcome r = read_all(c.stream, split, c.max);
        EXPECT_EQ(r.error, c.expected) << to_string(r.error) << ": " << r.reason;
        EXPECT_NE(r.reason.find(c.reason_part), std::string::npos) << r.reason;
        EXPECT_EQ(r.reason.rfind("frame at stream offset ", 0), 0u) << r.reason;
        EXPECT_EQ(r.buffered, 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(all, kcp_framing_rejects, testing::ValuesIn(rejection_cases()));

TEST(kcp_framing, reason_names_the_offset_of_the_bad_frame) {
    const std::string first = encode(sample());
    const read_outcome r = read_all(first + first + bytes({0x80, 0x00}));
    EXPECT_EQ(r.frames.size(), 2u);
    EXPECT_EQ(r.reason.rfind("frame at stream offset " + std::to_string(2 * first.size()) + ":", 0),
              0u)
        << r.reason;
}

TEST(kcp_framing, a_message_of_exactly_the_maximum_is_accepted) {
    const std::string frame = encode(sample(3));
    const std::size_t size = frame.size() - varint_size(frame.size());
    EXPECT_EQ(read_all(frame, 0, size).frames.size(), 1u);
    EXPECT_EQ(read_all(frame, 0, size - 1).error, frame_error::message_too_large);
}

TEST(kcp_framing, failure_is_final) {
    frame_reader reader;
    reader.feed(bytes({0x00}));
    KCPMessage m;
    ASSERT_EQ(reader.next(m), frame_reader::status::error);
    const std::string reason = reader.reason();
    reader.feed(encode(sample()));
    EXPECT_EQ(reader.next(m), frame_reader::status::error);
    EXPECT_EQ(reader.error(), frame_error::length_zero);
    EXPECT_EQ(reader.reason(), reason);
    EXPECT_EQ(reader.buffered(), 0u);
}

TEST(kcp_framing, frame_error_names) {
    EXPECT_EQ(to_string(frame_error::length_non_minimal), "length_non_minimal");
    EXPECT_EQ(to_string(frame_error::truncated), "truncated");
    EXPECT_EQ(static_cast<std::size_t>(frame_error::truncated) + 1, frame_error_count);
}

// Random streams, mostly valid frames with random bytes mixed in: no crash, and the outcome
// (messages, error, reason) does not depend on how the stream is split.
TEST(kcp_framing, random_bytes_give_the_same_outcome_however_split) {
    std::mt19937 rng(12345);
    const auto cases = payload_cases();
    int errors = 0;
    int clean = 0;
    for (int round = 0; round < 300; ++round) {
        std::string stream;
        const int pieces = 1 + static_cast<int>(rng() % 4);
        for (int p = 0; p < pieces; ++p) {
            if (rng() % 3 != 0) {
                stream += encode(make_kcp_message(cases[rng() % cases.size()]));
            } else {
                for (unsigned n = rng() % 12; n > 0; --n) {
                    stream += static_cast<char>(rng());
                }
            }
        }
        if (rng() % 4 == 0 && !stream.empty()) {
            stream[rng() % stream.size()] ^= static_cast<char>(1u << (rng() % 8));
        }
        const read_outcome whole = read_all(stream);
        const read_outcome split = read_all(stream, 1 + rng() % 5);
        EXPECT_EQ(whole.frames, split.frames);
        EXPECT_EQ(whole.error, split.error);
        EXPECT_EQ(whole.reason, split.reason);
        if (whole.error != frame_error::none) {
            ++errors;
            EXPECT_FALSE(whole.reason.empty());
        } else {
            ++clean;
        }
    }
    // The mix reaches both outcomes.
    EXPECT_GT(errors, 20);
    EXPECT_GT(clean, 20);
}

} // namespace
} // namespace kwik::kcp
