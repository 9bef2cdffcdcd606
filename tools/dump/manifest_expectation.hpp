// kwik-dump --expect: what a kwik-pcapgen manifest promises about a capture (which paths
// belong to which connection; every stream's final size and CRC32C) and the comparison of a
// traffic_summary against it. Set-up and end-of-run only; one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/common/result.hpp"
#include "tools/dump/traffic_summary.hpp"

namespace kwik::tools::dump {

struct expected_stream {
    std::uint64_t connection;
    std::uint64_t stream_id;
    std::uint64_t final_size;
    std::string crc32c; // "0x%08x"
};

struct manifest_expectation {
    path_table paths;
    std::vector<expected_stream> streams;
};

// Reads the manifest; the error names the file and the field at fault.
result<manifest_expectation> load_manifest(const std::string& path);

// Every difference between the summary and the manifest, one message each; empty: they agree.
std::vector<std::string> compare(const manifest_expectation& expected, const traffic_summary& summary);

} // namespace kwik::tools::dump
