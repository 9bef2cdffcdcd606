// Vocabulary shared by every part of the transport core: time, identifiers, zero-copy buffer
// references, the seed's QoS policy and path metrics. No DPDK, no clock reads: the owner of a
// connection passes the time in, so the same code runs in kwikd, kwik-peer and the simulator.
// Plain data; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "dataplane/kdp/wire.hpp"

namespace kwik::transport {

// Nanoseconds on the owner's monotonic clock (TSC-derived in kwikd, virtual in the simulator).
using time_ns = std::uint64_t;
inline constexpr time_ns never = std::numeric_limits<time_ns>::max();
inline constexpr time_ns us = 1000;
inline constexpr time_ns ms = 1000 * us;
inline constexpr time_ns sec = 1000 * ms;

// A path's number within its connection, as bound by KCP (AddPathCommand.path_id), <= 2^62-1.
using path_id = std::uint64_t;
using stream_id = std::uint64_t;

// Reference-counted payload owner. kwikd implements it on rte_mbuf (retain = refcnt update,
// release = free); the kernel-socket peer and the simulator on heap slabs. One indirect call
// per retain/release, as DPDK's mempool ops do; never a virtual call per byte.
struct buffer_ops {
    void (*retain)(void* owner) noexcept;
    void (*release)(void* owner) noexcept;
};

// A slice of a received or queued buffer. Holding one keeps its owner alive (one reference).
struct buffer_ref {
    const std::uint8_t* data = nullptr;
    std::uint32_t len = 0;
    void* owner = nullptr;
};

// The seed's per-stream QoS policy (002 "QoSPolicy"): stored on the stream and used by the
// stream and path schedulers.
struct qos_policy {
    std::uint32_t min_bandwidth_mbps = 0; // guaranteed share; 0 = none
    std::uint32_t max_latency_ms = 0;     // 0 = no bound
    std::uint32_t max_jitter_ms = 0;      // 0 = no bound
    float loss_threshold = 1.0f;          // max acceptable loss rate on a path carrying it
    kdp::priority priority = kdp::priority::normal;
};

// The seed's PathMetrics (002): what the path scheduler scores. Filled by the connection from
// its estimators; server_load, geographic_score and cost come from the control plane.
struct path_metrics {
    time_ns latency = 0;        // smoothed RTT
    time_ns min_rtt = 0;
    std::uint64_t bandwidth_bps = 0; // delivery-rate estimate
    float packet_loss = 0;      // recent loss rate, 0..1
    time_ns jitter = 0;         // RTT variance
    float congestion = 0;       // congestion detector score, 0..1
    float reliability = 1;      // 1 - recent failure fraction, 0..1
    float cost = 0;             // operator-set, 0..1 (0 = free)
    float server_load = 0;      // 0..1, from the registry
    float geographic_score = 1; // 0..1, from the registry (1 = best)
};

} // namespace kwik::transport
