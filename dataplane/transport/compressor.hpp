// DEFLATE for COMPRESSED frames: raw DEFLATE (RFC 1951, no zlib or gzip wrapper; Compression
// Info 0x01, docs/PROTOCOL.md 4.4) through ISA-L igzip's one-shot calls. Each object owns its
// igzip state, allocated once; one thread per object (keep one per lcore).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

struct isal_zstream;
struct inflate_state;

namespace kwik::transport {

// Output space igzip needs beyond the compressed size (measured: at most 7 bytes, levels 0-3).
inline constexpr std::size_t deflate_out_slack = 8;

class deflate_compressor {
public:
    // level: ISA-L's 0..3. 1 (dynamic Huffman) is the general-purpose one; 0 (igzip's fixed
    // default tables) is about 2.5 times faster on 1.5 KB inputs but compresses text a third worse
    // (perf/bench/transport_bench_scheduler.cpp). Allocates the igzip stream (80 KB) and the
    // level's working buffer (276 KB at level 1) once. Throws std::invalid_argument for another
    // level, std::bad_alloc. Set-up only.
    explicit deflate_compressor(int level = 1);
    ~deflate_compressor();
    deflate_compressor(const deflate_compressor&) = delete;
    deflate_compressor& operator=(const deflate_compressor&) = delete;

    // Compresses in into out as one complete raw-DEFLATE stream. Returns the compressed size, or 0
    // if the result would not save at least min_saving of the input (a fraction: 0.125 means at
    // most budget = floor(in.size() * 7/8) bytes), or for empty input, input over 4 GiB, or an out
    // span too small - the caller then sends the data uncompressed. ISA-L flushes its bit buffer
    // 8 bytes at a time and refuses to start a flush it has no room for, so out needs
    // deflate_out_slack bytes beyond the result: writes stay within the first
    // min(out.size(), budget + deflate_out_slack) bytes of out.
    // Cost: igzip builds dynamic Huffman tables per call, a fixed few microseconds, so compress
    // large chunks before framing. Level 1 on English-like text, CPU-time medians on this 2-core
    // Xeon VM (perf/bench/transport_bench_scheduler.cpp): 1.5 KB 5.8 us (3.8 ns/B, ratio 0.27),
    // 16 KB 28 us (1.70 ns/B, 0.21), 64 KB 111 us (1.70 ns/B, 0.21). A refused attempt on random
    // data costs 14.7 us at 1.5 KB (9.5 ns/B), 1.6 ns/B at 16 KB.
    std::size_t compress(std::span<const std::uint8_t> in, std::span<std::uint8_t> out,
                         double min_saving = 0.125) noexcept;

    int level() const noexcept;

private:
    int _level;
    std::unique_ptr<isal_zstream> _stream;
    std::unique_ptr<std::uint8_t[]> _level_buf;
    std::uint32_t _level_buf_size = 0;
};

class deflate_decompressor {
public:
    deflate_decompressor(); // allocates the igzip inflate state (85 KB) once. Set-up only.
    ~deflate_decompressor();
    deflate_decompressor(const deflate_decompressor&) = delete;
    deflate_decompressor& operator=(const deflate_decompressor&) = delete;

    // Inflates in, which must be exactly one complete raw-DEFLATE stream, into out. True iff it
    // decodes to exactly expected bytes (the frame's UNCOMPRESSED_LENGTH). False, never a crash or
    // a write past out[expected], on corrupt or truncated input, on output longer or shorter than
    // expected, on out.size() < expected, and on bytes left over after the final block.
    bool decompress(std::span<const std::uint8_t> in, std::span<std::uint8_t> out,
                    std::size_t expected) noexcept;

private:
    std::unique_ptr<inflate_state> _state;
};

} // namespace kwik::transport
