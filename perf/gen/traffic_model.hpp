// kwik-gen's model of Kwik client traffic, without DPDK: the connections, paths and streams one
// worker lcore owns; building each next Ethernet/IPv4/UDP/KDP packet into a buffer (sequence
// numbers and stream offsets advance, streams finish and new ones open, kwikd's flow-control
// limits are honoured); the send record per (path, sequence) for loss and latency; and the
// parsing of every returned packet (kwikd's ACKs, window updates, echoed data, challenges, our
// own packets reflected), with the ACKs and PATH_RESPONSEs kwik-gen owes kwikd in return.
// One traffic_model belongs to one worker lcore; the counters and histograms it writes are read
// by the main lcore (relaxed atomics, one writer).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/packet.hpp"
#include "perf/gen/latency_histogram.hpp"
#include "perf/gen/options.hpp"

namespace kwik::gen {

inline constexpr std::size_t eth_ipv4_udp_len = 14 + 20 + 8;
// Wire bytes per frame besides the frame itself: preamble and start delimiter (8), inter-frame
// gap (12), FCS (4): what --rate-mbps and gbps_wire count.
inline constexpr std::uint32_t wire_overhead = 24;

// Counters of one worker (cumulative; the main lcore takes differences per trial). Cache-line
// aligned; written only by the worker that owns it.
#define KWIK_GEN_COUNTERS(X)                                                                                       \
    X(sent_packets)          /* accepted by the tx queue */                                                       \
    X(sent_frame_bytes)      /* Ethernet frames without FCS */                                                     \
    X(sent_payload_bytes)    /* stream bytes in accepted packets */                                                \
    X(tx_refused)            /* offered to the tx queue and refused: lost */                                       \
    X(control_sent)          /* our ACK-only and PATH_RESPONSE packets (not offered traffic) */                    \
    X(pool_empty)            /* bursts not built: every mbuf in the tx ring or in flight; retried, not offered */  \
    X(rx_packets)                                                                                                  \
    X(rx_bytes)                                                                                                    \
    X(acks)                  /* ACK frames from kwikd */                                                           \
    X(acked_packets)         /* our packets newly acknowledged, any trial */                                       \
    X(reflected)             /* our own packets come back, each counted once */                                    \
    X(reflected_duplicates)                                                                                        \
    X(echo_bytes)            /* stream bytes kwikd echoed, each offset counted once */                             \
    X(window_updates)        /* MAX_DATA and MAX_STREAM_DATA frames */                                             \
    X(path_challenges)       /* answered with PATH_RESPONSE */                                                     \
    X(connection_closes)     /* CONNECTION_CLOSE frames: kwikd ended a connection */                               \
    X(control_other)         /* other control frames (RESET_STREAM, *_BLOCKED, PATH_RESPONSE) */                   \
    X(other)                 /* not Kwik traffic of ours or kwikd's */                                             \
    X(malformed)             /* ours or kwikd's tuple, but the packet does not parse */                            \
    X(delivered)             /* what --expect counts, for packets of the current trial (ack, reflect) */           \
    X(late)                  /* acknowledged or reflected after their trial ended */                               \
    X(flow_control_waits)    /* a packet not built for lack of MAX_DATA / MAX_STREAM_DATA credit */                \
    X(stream_limit_waits)    /* a connection with every stream slot spent (--max-streams) */                       \
    X(streams_opened)                                                                                              \
    X(handoff_sent)          /* returns passed to the worker owning their connection */                            \
    X(handoff_dropped)

struct alignas(64) model_counters {
#define KWIK_X(name) std::atomic<std::uint64_t> name{0};
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    // The last CONNECTION_CLOSE: kwikd's connection index + 1 (0: none) and error code.
    std::atomic<std::uint64_t> last_close_connection{0};
    std::atomic<std::uint64_t> last_close_code{0};

    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
        a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
};

// Plain copy of the counters, for sums and differences on the main lcore.
struct counter_values {
#define KWIK_X(name) std::uint64_t name = 0;
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    static counter_values read(const model_counters& c) noexcept;
    counter_values& operator+=(const counter_values& o) noexcept;
    counter_values operator-(const counter_values& o) const noexcept;
};

// The stream bytes every frame carries: a fixed pattern, so that the frame CRC32C and the UDP
// checksum of the data are looked up by length, not computed per packet (about 3x the packets
// per second at 1400 B). Built once; read-only, shared by every worker.
class payload_content {
public:
    payload_content();
    const std::uint8_t* data() const noexcept { return _bytes.data(); }
    // CRC32C of the first len bytes, and their one's-complement sum (RFC 1071) in native byte order
    // as dataplane/engine/net_headers.hpp keeps sums, counted from an even position, not folded.
    std::uint32_t crc(std::size_t len) const noexcept { return _crc[len]; }
    std::uint32_t sum(std::size_t len) const noexcept { return _sum[len]; }
    static constexpr std::size_t max_len = 16384;

private:
    std::array<std::uint8_t, max_len> _bytes;
    std::vector<std::uint32_t> _crc; // max_len + 1 entries
    std::vector<std::uint32_t> _sum;
};

struct model_params {
    const gen_options* options = nullptr;
    const payload_content* content = nullptr;
    std::array<std::uint8_t, 6> src_mac{};
    std::array<std::uint8_t, 6> dst_mac{};
    double tsc_hz = 1e9;
};

// Where a returned packet belongs: to connection c (kwikd's packet to c's client tuple, or our
// own packet of c reflected), or to none (-1: counted by whoever received it).
std::int32_t return_connection(const model_params& p, const std::uint8_t* frame, std::uint32_t len) noexcept;

// What build_packet() made.
struct built_packet {
    std::uint32_t length = 0;        // Ethernet frame bytes; 0: nothing to send now
    std::uint32_t payload_bytes = 0; // stream bytes
    std::uint32_t connection = 0;    // index into this model's connections
    std::uint32_t path = 0;
    std::uint64_t seq = 0;
};

class traffic_model {
public:
    // connections: the global connection indices this model owns (c % workers == worker).
    traffic_model(const model_params& params, std::vector<std::uint32_t> connections, model_counters* counters,
                  latency_histogram* latency, latency_histogram* latency_corrected);
    ~traffic_model();
    traffic_model(const traffic_model&) = delete;
    traffic_model& operator=(const traffic_model&) = delete;

    // Builds the next data packet into out (at least max_frame() bytes) and records its send
    // time. length 0: every connection waits for credit or has spent its streams.
    built_packet build_packet(std::uint8_t* out, std::uint64_t now_tsc) noexcept;
    // The tx queue refused it: never delivered (counted as lost by the caller's tx_refused).
    void on_refused(const built_packet& b) noexcept;
    // The next ACK-only or PATH_RESPONSE packet owed to kwikd (ACKs once --ack-delay-us old), or 0.
    std::uint32_t build_control(std::uint8_t* out, std::uint64_t now_tsc) noexcept;
    // Whether build_control() may have a packet now: lets the worker skip an mbuf allocation per
    // poll when nothing is owed (the common case with the discard endpoint).
    bool control_due(std::uint64_t now_tsc) const noexcept;
    // Takes one received Ethernet frame apart and counts it; answers are queued for build_control.
    void on_packet(const std::uint8_t* frame, std::uint32_t len, std::uint64_t now_tsc) noexcept;
    // A new trial: packets sent from now on belong to it; every connection opens fresh streams.
    void start_trial(std::uint32_t epoch) noexcept;

    std::uint32_t max_frame() const noexcept { return _max_frame; }
    std::size_t connections() const noexcept { return _conns.size(); }
    // Test access: the next sequence number of a path, and a stream slot's id and offset.
    std::uint64_t next_seq(std::uint32_t conn, std::uint32_t path) const noexcept;
    std::uint64_t stream_id(std::uint32_t conn, std::uint32_t slot) const noexcept;
    std::uint64_t stream_offset(std::uint32_t conn, std::uint32_t slot) const noexcept;

    struct connection_state;
    struct path_state;

private:
    void open_stream(connection_state& c, std::uint32_t slot) noexcept;
    void process_ack(connection_state& c, const kdp::ack_frame& a, std::uint64_t now_tsc) noexcept;
    void on_kwikd_packet(connection_state& c, std::uint32_t path, const kdp::packet_view& v,
                         const std::uint8_t* kdp_bytes, std::uint64_t now_tsc) noexcept;
    void on_reflected(connection_state& c, std::uint32_t path, const kdp::packet_view& v,
                      std::uint64_t now_tsc) noexcept;
    std::uint32_t encode_ack(path_state& p, std::uint32_t path, std::uint64_t now_tsc,
                             std::span<std::uint8_t> out) noexcept;
    std::uint32_t finish_frame(connection_state& c, std::uint32_t path, std::uint8_t* out,
                               std::uint32_t kdp_len, std::uint64_t data_sum) noexcept;
    std::uint64_t register_send(path_state& p, std::uint64_t now_tsc, bool tracked) noexcept;
    void sample(std::uint64_t sent_tsc, std::uint64_t now_tsc, std::uint64_t ack_delay_us, bool corrected) noexcept;

    model_params _params;
    const gen_options& _o;
    std::vector<std::uint32_t> _global; // global index of each owned connection
    std::vector<std::unique_ptr<connection_state>> _conns;
    model_counters* _counters;
    latency_histogram* _latency;
    latency_histogram* _latency_corrected;
    std::uint32_t _max_frame = 0;
    std::uint32_t _next_conn = 0;
    std::uint32_t _epoch = 0;
    std::uint64_t _ack_delay_tsc = 0;
    double _ns_per_tsc = 1;
    std::array<std::uint32_t, 64> _chunk{}; // stream bytes of frame i of a full packet
    // ACKs owed: (connection, path) in the order they became pending.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> _ack_queue; // a ring; each path at most once
    std::uint64_t _ack_head = 0;
    std::uint64_t _ack_tail = 0;
    struct challenge {
        std::uint32_t conn;
        std::uint32_t path;
        std::array<std::uint8_t, kdp::path_challenge_len> data;
    };
    std::array<challenge, 16> _challenges{};
    std::uint32_t _challenge_count = 0;
    kdp::packet_view _view; // the returned packet being parsed (64 frame views: not on the stack)
    std::array<kdp::frame_desc, kdp::max_frames_per_packet + 1> _frames; // the packet being built
};

} // namespace kwik::gen
