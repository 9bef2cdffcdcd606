// Writes classic pcap files (LINKTYPE_ETHERNET, microsecond timestamps, little-endian), the
// format every reader accepts. Written by hand rather than through pcap_dump so that a full
// disk or a failed close is reported, naming the file. One writer per thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

#include "tools/common/result.hpp"

namespace kwik::tools {

inline constexpr std::uint32_t pcap_linktype_ethernet = 1;
inline constexpr std::uint32_t pcap_snaplen = 262144;

class pcap_writer {
public:
    // Creates (truncates) path and writes the file header; "-" writes to standard output.
    static result<pcap_writer> open(const std::string& path);

    // Appends one record; the frame is kept whole (the snap length is above any frame here).
    void write(std::uint64_t timestamp_us, std::span<const std::uint8_t> frame);

    // Flushes and closes; reports any write error since open.
    result<void> close();

    std::uint64_t records() const noexcept { return _records; }

private:
    struct file_closer {
        void operator()(std::FILE* f) const noexcept;
    };

    pcap_writer(std::string path, std::FILE* f) : _path(std::move(path)), _file(f) {}

    std::string _path;
    std::unique_ptr<std::FILE, file_closer> _file;
    std::uint64_t _records = 0;
};

} // namespace kwik::tools
