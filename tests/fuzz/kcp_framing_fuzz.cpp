// libFuzzer target for the KCP framing and parsing (controlplane/kcp/framing.hpp). An input is
//   [split seed] [maximum] [stream...]
// The stream goes to one frame_reader whole and to another in pieces whose sizes follow from the
// split seed (seed 0: one byte at a time); both must hand out the same messages and end with the
// same error and reason. maximum < 128 sets max_message_size to 1 + 8 * maximum (so small
// inputs reach message_too_large); otherwise it is the default 1 MiB. A refusal must have a
// reason naming the stream offset. Every message handed out is re-encoded, and that frame must
// read back as exactly one message that encodes to the same bytes: encode is stable. Any
// disagreement aborts (a crash for libFuzzer).
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/kcp/framing.hpp"

namespace {

using namespace kwik::kcp;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "kcp_framing_fuzz: %s\n%s\n", what, detail.c_str());
    std::abort();
}

struct outcome {
    std::vector<std::string> frames; // each message handed out, re-encoded
    frame_error error = frame_error::none;
    std::string reason;
};

outcome read_stream(std::string_view stream, std::size_t max, bool whole, std::uint8_t seed) {
    frame_reader reader(max);
    outcome out;
    KCPMessage m;
    std::uint32_t state = seed;
    std::size_t at = 0;
    while (at < stream.size()) {
        std::size_t piece = stream.size();
        if (!whole) {
            state = state * 1103515245u + 12345u;
            piece = seed == 0 ? 1 : 1 + (state >> 16) % 64;
        }
        reader.feed(stream.substr(at, piece));
        at += piece;
        while (reader.next(m) == frame_reader::status::message) {
            out.frames.push_back(encode(m));
        }
    }
    out.error = reader.error();
    out.reason = reader.reason();
    return out;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // Invalid UTF-8 in a string field is an ordinary refusal here; protobuf would log each one.
    google::protobuf::SetLogHandler(nullptr);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::uint8_t seed = data[0];
    const std::size_t max = data[1] < 128 ? 1 + 8 * std::size_t{data[1]} : default_max_message_size;
    const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

    const outcome whole = read_stream(stream, max, true, seed);
    const outcome pieces = read_stream(stream, max, false, seed);
    if (whole.frames != pieces.frames || whole.error != pieces.error ||
        whole.reason != pieces.reason) {
        fail("the outcome depends on how the stream is split",
             whole.reason + " | " + pieces.reason);
    }
    if (whole.error != frame_error::none &&
        whole.reason.rfind("frame at stream offset ", 0) != 0) {
        fail("a refusal without the offset", whole.reason);
    }
    if (whole.error == frame_error::none && !whole.reason.empty()) {
        fail("a reason without a refusal", whole.reason);
    }

    for (const std::string& frame : whole.frames) {
        if (frame.empty()) {
            fail("an accepted message does not encode", "");
        }
        frame_reader again(max_encodable_size);
        again.feed(frame);
        KCPMessage m;
        if (again.next(m) != frame_reader::status::message) {
            fail("a re-encoded message is refused", again.reason());
        }
        if (again.next(m) != frame_reader::status::need_more || again.buffered() != 0) {
            fail("a re-encoded frame holds more than one message", again.reason());
        }
        if (encode(m) != frame) {
            fail("encode is not stable", m.ShortDebugString());
        }
    }
    return 0;
}
