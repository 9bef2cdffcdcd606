// Writes the seed corpus of kcp_framing_fuzz into a directory: one frame of every payload type
// (tests/unit/proto/kcp_samples.hpp), all of them in one stream, and the refusals the framing
// tests name (non-minimal, too long and zero lengths, a small maximum, no payload, no header).
// Each seed is [split seed] [maximum] [stream], as the fuzzer reads it.
#include <cstdio>
#include <fstream>
#include <string>

#include "controlplane/kcp/framing.hpp"
#include "tests/unit/proto/kcp_samples.hpp"

namespace {

bool write_seed(const std::string& dir, const std::string& name, char split, char max,
                const std::string& stream) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out << split << max << stream;
    return static_cast<bool>(out);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    using namespace kwik::kcp;
    const std::string dir = argv[1];
    const char default_max = '\x80';
    bool ok = true;
    std::string all;
    int n = 0;
    for (const auto& c : kwik::kcp::v3::samples::payload_cases()) {
        const std::string frame = encode(kwik::kcp::v3::samples::make_kcp_message(c));
        all += frame;
        ok = ok && write_seed(dir, c.name, static_cast<char>(n++), default_max, frame);
    }
    ok = ok && write_seed(dir, "all_payloads", '\x07', default_max, all);
    ok = ok && write_seed(dir, "all_payloads_small_max", '\x00', '\x20', all);

    KCPMessage header_only;
    header_only.mutable_header()->set_message_id(1);
    KCPMessage headerless;
    headerless.mutable_health_check_req()->set_sequence(1);
    ok = ok && write_seed(dir, "no_payload", '\x01', default_max, encode(header_only));
    ok = ok && write_seed(dir, "no_header", '\x02', default_max, encode(headerless));
    ok = ok && write_seed(dir, "non_minimal", '\x03', default_max, std::string("\x81\x80\x00", 3));
    ok = ok && write_seed(dir, "too_long", '\x04', default_max, std::string(6, '\xff'));
    ok = ok && write_seed(dir, "zero", '\x05', default_max, std::string(1, '\0'));
    if (!ok) {
        std::fprintf(stderr, "kcp_seed_writer: cannot write seeds into %s\n", dir.c_str());
        return 1;
    }
    return 0;
}
