// kwik-dump's JSON view of one KDP path packet: every header field, every frame with its
// flags, extensions and checksum result, and the decoded control frames (ACK ranges included),
// from a packet_view that parse_packet<parse_mode::inspect> filled. One thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dataplane/kdp/packet.hpp"

namespace kwik::tools::dump {

std::string_view packet_type_name(std::uint8_t type) noexcept;
std::string_view priority_name(std::uint8_t priority) noexcept;
std::string_view control_type_name(std::uint8_t type) noexcept;
std::string_view compression_name(std::uint8_t compression) noexcept;
nlohmann::json flag_names(std::uint8_t flags);
std::string hex32(std::uint32_t v);
std::string hex_bytes(std::span<const std::uint8_t> bytes);

// The "kdp" object: header fields as far as they were read, then every frame decoded before the
// parser stopped (all of them unless it rejected the packet's structure). reason is what
// parse_packet returned for payload into v. With data_hex each stream frame's data is included.
nlohmann::json kdp_report(std::span<const std::uint8_t> payload, const kdp::packet_view& v,
                          kdp::drop_reason reason, bool data_hex);

} // namespace kwik::tools::dump
