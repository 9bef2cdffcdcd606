// Every reason the data plane drops a packet, one enum for the whole pipeline: the codec's
// rejections first, then the engine's and the transport core's (appended, so values never move).
// Counters are indexed by it. Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kwik::kdp {

#define KWIK_DROP_REASONS(X)                                                                       \
    X(none, "accepted")                                                                            \
    X(packet_too_short, "packet shorter than the smallest path packet header")                     \
    X(packet_too_large, "packet larger than the maximum path packet size")                         \
    X(header_truncated, "path packet header runs past the end of the datagram")                    \
    X(varint_non_minimal, "varint not in its shortest encoding")                                   \
    X(sequence_too_large, "path sequence number at or above 2^62")                                 \
    X(unknown_packet_type, "packet type not defined")                                              \
    X(unknown_compression, "compression info byte not defined")                                    \
    X(total_length_mismatch, "total length differs from the bytes after the header")               \
    X(frame_count_zero, "packet carries no frame")                                                 \
    X(frame_count_exceeded, "frame count above the per-packet maximum")                            \
    X(frame_count_mismatch, "frames found differ from the frame count")                            \
    X(frame_truncated, "frame header runs past the end of the packet")                             \
    X(frame_length_beyond_packet, "frame data length runs past the end of the packet")             \
    X(reserved_flags_set, "reserved frame flag bits 6-7 set")                                      \
    X(unknown_priority, "frame priority byte not defined")                                         \
    X(priority_flag_mismatch, "PRIORITY flag disagrees with the priority byte")                    \
    X(offset_overflow, "offset plus length beyond 2^62")                                           \
    X(empty_stream_frame, "stream frame with no data and no FIN")                                  \
    X(stream_id_zero, "stream frame on stream 0")                                                  \
    X(extension_malformed, "extension TLV runs past the extension area")                           \
    X(extension_duplicate, "extension type appears twice")                                         \
    X(extension_missing, "flag requires an extension that is absent")                              \
    X(extension_unexpected, "extension present without the flag that uses it")                    \
    X(extension_too_long, "extension area longer than the maximum")                                \
    X(compression_not_announced, "COMPRESSED frame in a packet whose compression info is none")    \
    X(uncompressed_too_large, "COMPRESSED frame inflates to more than 16384 bytes")                \
    X(frame_not_allowed, "frame kind not permitted in this packet type")                           \
    X(control_flags_set, "control frame with flags set")                                           \
    X(control_type_unknown, "control frame type not defined")                                      \
    X(control_malformed, "control frame payload malformed")                                        \
    X(control_stream_invalid, "control frame stream id not valid for its type")                    \
    X(control_offset_invalid, "control frame offset not valid for its type")                       \
    X(ack_range_invalid, "ACK range below packet number zero")                                     \
    X(ack_too_many_ranges, "ACK range count above the maximum")                                    \
    X(aead_data_too_short, "ENCRYPTED frame shorter than the AEAD tag")                            \
    X(bad_packet_checksum, "path packet CRC32C mismatch")                                          \
    X(bad_frame_checksum, "frame CRC32C mismatch")                                                 \
    X(value_too_large, "value above 2^62 - 1 cannot be encoded (serialiser only)")                 \
    /* the engine's (dataplane/engine/) */                                                        \
    X(truncated_ethernet, "frame shorter than its Ethernet header and 802.1Q tag")                 \
    X(not_for_us, "unicast frame addressed to another MAC address")                                \
    X(not_ip, "EtherType (after at most one 802.1Q tag) neither IPv4, IPv6 nor ARP")               \
    X(headers_split, "headers the engine must read are not all in the first mbuf segment")         \
    X(bad_arp, "ARP message truncated or not Ethernet/IPv4")                                       \
    X(truncated_ipv4, "IPv4 header or total length runs past the end of the frame")                \
    X(bad_ipv4_header, "IPv4 version not 4, IHL below 5 or total length below the header")         \
    X(bad_ipv4_checksum, "IPv4 header checksum mismatch")                                          \
    X(truncated_ipv6, "IPv6 header or payload length runs past the end of the frame")              \
    X(bad_ipv6_header, "IPv6 version field not 6")                                                 \
    X(ip_fragment, "fragment of a datagram to a Kwik port (KDP never fragments)")                  \
    X(bad_udp_length, "UDP header truncated, or UDP length below 8 or beyond the IP payload")      \
    X(bad_udp_checksum, "UDP checksum mismatch, or zero over IPv6")                                \
    X(truncated_icmp, "ICMP or ICMPv6 message to the appliance shorter than its header")           \
    X(bad_icmp_checksum, "ICMP or ICMPv6 checksum mismatch")                                       \
    X(bad_neighbor_discovery, "neighbour solicitation with hop limit not 255 or code not 0")       \
    X(reply_not_built, "reply to ARP/ICMP could not be built in place (shared or chained mbuf)")   \
    X(no_route, "no on-link prefix or gateway for the destination")                                \
    X(neighbor_hold_full, "destination unresolved and its hold queue is full")                     \
    X(neighbor_table_full, "destination unresolved and no neighbour entry could be made for it")   \
    X(neighbor_unresolved, "held packet freed: the neighbour did not answer in time")             \
    X(unknown_path, "Kwik datagram on a 5-tuple no connection has as a path")                     \
    X(handoff_ring_full, "owning worker's hand-off ring full")                                      \
    X(tx_queue_full, "port's tx queue took fewer packets than offered")                           \
    X(tx_pool_empty, "no mbuf for a packet to send")                                              \
    X(no_exception_path, "packet for the kernel, but no exception interface is configured")       \
    X(payload_chained, "Kwik datagram over several mbuf segments and no application buffer free to join them") \
    X(connection_closed, "Kwik datagram for a connection its transport has closed (awaiting removal)") \
    /* the transport core's (dataplane/transport/): ENCRYPTED frames, PROTOCOL.md 5.4 and 13.8 */  \
    X(aead_auth_failed, "ENCRYPTED frame fails AES-256-GCM authentication (forged, or another key)") \
    X(aead_unknown_key_phase, "ENCRYPTED frame under a key phase the connection holds no key for") \
    X(aead_key_expired, "ENCRYPTED frame under a key past its valid_until")                       \
    X(aead_key_exhausted, "ENCRYPTED frame under a key retired after its integrity limit of forgeries") \
    X(aead_wrong_direction, "ENCRYPTED frame whose nonce names this side as its sender (reflected)") \
    X(encryption_required, "plaintext stream frame on a connection that requires encryption")

enum class drop_reason : std::uint8_t {
#define KWIK_X(name, text) name,
    KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
        count_
};

inline constexpr std::size_t drop_reason_count = static_cast<std::size_t>(drop_reason::count_);

// The first reason that is not the codec's (the engine's, then the transport core's): codec
// reasons are those below it.
inline constexpr drop_reason first_engine_drop_reason = drop_reason::truncated_ethernet;

constexpr bool is_engine_drop_reason(drop_reason r) noexcept {
    return r >= first_engine_drop_reason && r < drop_reason::count_;
}

// Stable snake_case identifier, used in counters, JSON and logs.
constexpr std::string_view to_string(drop_reason r) noexcept {
    switch (r) {
#define KWIK_X(name, text)                                                                         \
    case drop_reason::name:                                                                        \
        return #name;
        KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
    case drop_reason::count_:
        break;
    }
    return "invalid";
}

// One-line human description.
constexpr std::string_view describe(drop_reason r) noexcept {
    switch (r) {
#define KWIK_X(name, text)                                                                         \
    case drop_reason::name:                                                                        \
        return text;
        KWIK_DROP_REASONS(KWIK_X)
#undef KWIK_X
    case drop_reason::count_:
        break;
    }
    return "invalid";
}

} // namespace kwik::kdp
