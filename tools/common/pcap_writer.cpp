// Classic pcap: a 24-byte file header, then per record a 16-byte header and the frame.
#include "tools/common/pcap_writer.hpp"

#include <cerrno>
#include <cstring>

namespace kwik::tools {

namespace {

void put32(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v);
    p[1] = static_cast<std::uint8_t>(v >> 8);
    p[2] = static_cast<std::uint8_t>(v >> 16);
    p[3] = static_cast<std::uint8_t>(v >> 24);
}

void put16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v);
    p[1] = static_cast<std::uint8_t>(v >> 8);
}

} // namespace

void pcap_writer::file_closer::operator()(std::FILE* f) const noexcept {
    if (f != stdout) {
        std::fclose(f);
    }
}

result<pcap_writer> pcap_writer::open(const std::string& path) {
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        return error{"cannot create " + path + ": " + std::strerror(errno)};
    }
    pcap_writer w(path, f);
    std::uint8_t header[24];
    put32(header, 0xA1B2C3D4); // microsecond timestamps
    put16(header + 4, 2);      // version 2.4
    put16(header + 6, 4);
    put32(header + 8, 0);      // GMT offset
    put32(header + 12, 0);     // timestamp accuracy
    put32(header + 16, pcap_snaplen);
    put32(header + 20, pcap_linktype_ethernet);
    std::fwrite(header, 1, sizeof header, f);
    return w;
}

void pcap_writer::write(std::uint64_t timestamp_us, std::span<const std::uint8_t> frame) {
    std::uint8_t header[16];
    put32(header, static_cast<std::uint32_t>(timestamp_us / 1000000));
    put32(header + 4, static_cast<std::uint32_t>(timestamp_us % 1000000));
    put32(header + 8, static_cast<std::uint32_t>(frame.size()));
    put32(header + 12, static_cast<std::uint32_t>(frame.size()));
    std::fwrite(header, 1, sizeof header, _file.get());
    std::fwrite(frame.data(), 1, frame.size(), _file.get());
    ++_records;
}

result<void> pcap_writer::close() {
    std::FILE* f = _file.release();
    if (f == nullptr) {
        return {};
    }
    bool failed = std::fflush(f) != 0 || std::ferror(f) != 0;
    int saved = errno;
    if (f != stdout && std::fclose(f) != 0) {
        failed = true;
        saved = errno;
    }
    if (failed) {
        return error{"cannot write " + _path + ": " + std::strerror(saved)};
    }
    return {};
}

} // namespace kwik::tools
