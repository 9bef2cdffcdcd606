// Runs kwik-pcapgen's model of Kwik traffic and writes what a capture next to the server
// would see: clients send stream data (data, priority, retransmission packets) and keepalives
// over every path; a network impairs them (loss, corruption, reordering, duplication); the
// server acknowledges what arrives intact, answers keepalives and grants flow-control window.
// Lost and corrupted stream data is retransmitted on another path until it arrives intact.
// One thread.
#pragma once

#include <nlohmann/json.hpp>

#include "tools/common/pcap_writer.hpp"
#include "tools/common/result.hpp"
#include "tools/pcapgen/generator_options.hpp"

namespace kwik::tools::pcapgen {

// Writes every packet to out and returns the manifest: the parameters, every connection's
// paths, every stream's final size and CRC32C, every packet written and every packet lost.
result<nlohmann::json> generate_traffic(const generator_options& o, pcap_writer& out);

} // namespace kwik::tools::pcapgen
