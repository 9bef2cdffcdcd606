// DEFLATE compressor and decompressor on ISA-L igzip's stateless (one-shot) calls.
// One thread per object; no allocation after construction.
#include "dataplane/transport/compressor.hpp"

#include <immintrin.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace kwik::transport {

namespace {

// ISA-L's AVX2/AVX-512 kernels can return with dirty upper vector state, which makes every later
// legacy-SSE instruction in this -msse4.2 build pay a transition penalty (measured on the CRC32C
// kernel of the same library: dataplane/kdp/crc32c.cpp). Only on CPUs with AVX.
[[gnu::target("avx")]] void zero_upper_state() noexcept {
    _mm256_zeroupper();
}
const bool cpu_has_avx = __builtin_cpu_supports("avx");

std::uint32_t level_buf_size(int level) {
    switch (level) {
    case 0:
        return 0;
    case 1:
        return ISAL_DEF_LVL1_DEFAULT;
    case 2:
        return ISAL_DEF_LVL2_DEFAULT;
    case 3:
        return ISAL_DEF_LVL3_DEFAULT;
    default:
        throw std::invalid_argument("deflate_compressor: level must be 0..3 (ISA-L igzip levels)");
    }
}

} // namespace

deflate_compressor::deflate_compressor(int level)
    : _level(level), _stream(std::make_unique<isal_zstream>()), _level_buf_size(level_buf_size(level)) {
    if (_level_buf_size != 0) {
        _level_buf = std::make_unique<std::uint8_t[]>(_level_buf_size);
    }
}

deflate_compressor::~deflate_compressor() = default;

int deflate_compressor::level() const noexcept {
    return _level;
}

std::size_t deflate_compressor::compress(std::span<const std::uint8_t> in,
                                         std::span<std::uint8_t> out, double min_saving) noexcept {
    if (in.empty() || in.size() > std::numeric_limits<std::uint32_t>::max()) {
        return 0;
    }
    // The largest result worth sending. NaN or a negative saving behaves as 0 (any result that
    // does not grow the data), a saving of 1 or more as "never compress".
    const double keep = min_saving > 0.0 ? (min_saving < 1.0 ? 1.0 - min_saving : 0.0) : 1.0;
    const auto budget = static_cast<std::size_t>(std::floor(static_cast<double>(in.size()) * keep));
    const std::size_t room = std::min(out.size(), budget + deflate_out_slack);
    if (budget == 0 || room == 0) {
        return 0;
    }

    isal_zstream& s = *_stream;
    isal_deflate_stateless_init(&s);
    // ISA-L only reads next_in; its prototype lacks the const.
    s.next_in = const_cast<std::uint8_t*>(in.data());
    s.avail_in = static_cast<std::uint32_t>(in.size());
    s.next_out = out.data();
    s.avail_out = static_cast<std::uint32_t>(room);
    s.level = static_cast<std::uint32_t>(_level);
    s.level_buf = _level_buf.get();
    s.level_buf_size = _level_buf_size;
    s.end_of_stream = 1;
    s.flush = NO_FLUSH;
    s.gzip_flag = IGZIP_DEFLATE;
    // STATELESS_OVERFLOW (the output would not fit the budget) is the "not worth it" answer.
    const int rc = isal_deflate_stateless(&s);
    if (cpu_has_avx) {
        zero_upper_state();
    }
    if (rc != COMP_OK || s.avail_in != 0 || s.total_out > budget) {
        return 0;
    }
    return s.total_out;
}

deflate_decompressor::deflate_decompressor() : _state(std::make_unique<inflate_state>()) {}

deflate_decompressor::~deflate_decompressor() = default;

bool deflate_decompressor::decompress(std::span<const std::uint8_t> in,
                                      std::span<std::uint8_t> out, std::size_t expected) noexcept {
    if (out.size() < expected || in.empty() || in.size() > std::numeric_limits<std::uint32_t>::max() ||
        expected > std::numeric_limits<std::uint32_t>::max()) {
        return false;
    }
    inflate_state& st = *_state;
    isal_inflate_init(&st);
    st.next_in = const_cast<std::uint8_t*>(in.data()); // only read
    st.avail_in = static_cast<std::uint32_t>(in.size());
    st.next_out = out.data();
    st.avail_out = static_cast<std::uint32_t>(expected);
    st.crc_flag = ISAL_DEFLATE;
    st.hist_bits = 0;
    const int rc = isal_inflate_stateless(&st);
    if (cpu_has_avx) {
        zero_upper_state();
    }
    // ISAL_DECOMP_OK means the final block ended; ISAL_OUT_OVERFLOW (output longer than
    // expected), ISAL_END_INPUT (truncated) and the negative codes (corrupt) are all refusals.
    // Whole bytes still buffered in read_in are input the stream did not use: trailing garbage.
    if (rc != ISAL_DECOMP_OK || st.block_state != ISAL_BLOCK_FINISH) {
        return false;
    }
    const std::uint64_t unused = st.avail_in + static_cast<std::uint64_t>(st.read_in_length / 8);
    return st.total_out == expected && unused == 0;
}

} // namespace kwik::transport
