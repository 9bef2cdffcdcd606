// kwik-gen's worker lcores: each owns one rx/tx queue pair of the port, its connections' traffic
// model (or its share of a pcap), a pacer and its counters. The main lcore starts and ends
// trials through trial_control and reads the counters; nothing else is shared but the hand-off
// rings (a returned packet of another worker's connection goes to that worker's inbox).
// worker_main runs on a worker lcore; everything else here is set up by the main lcore.
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "perf/gen/latency_histogram.hpp"
#include "perf/gen/options.hpp"
#include "perf/gen/traffic_model.hpp"

namespace kwik::gen {

// What the main lcore asks of the workers. It writes every field, then epoch (release); a
// worker that sees a new epoch (acquire) reads the rest. One cache line, written by main only.
struct alignas(64) trial_control {
    std::atomic<double> rate_per_worker{0};  // packets/s, or wire bytes/s with by_bytes; 0: unpaced
    std::atomic<bool> by_bytes{false};
    std::atomic<std::uint64_t> send_until_tsc{0};
    std::atomic<std::uint64_t> packets{0}; // the trial's budget over all workers; 0: none
    std::atomic<bool> sending{false};                 // false ends sending early (drain)
    std::atomic<std::uint32_t> epoch{0};
    std::atomic<bool> stop{false};
};

// A pcap loaded in memory: the frames back to back, read-only for every worker.
struct pcap_frames {
    std::vector<std::uint8_t> bytes;
    std::vector<std::uint32_t> offset; // frame i is bytes[offset[i], offset[i + 1])
    std::vector<std::uint32_t> udp_payload; // UDP payload bytes of frame i (0 if not UDP/IPv4)
    std::vector<std::array<std::uint8_t, 6>> source_macs; // distinct, at most 16
    std::size_t size() const noexcept { return offset.empty() ? 0 : offset.size() - 1; }
};

// The per-worker state the main lcore reads: counters and the two latency histograms, each on
// lines of its own, written by the worker only.
struct alignas(64) worker_stats {
    model_counters counters;
    latency_histogram latency;
    latency_histogram latency_corrected; // ACK samples less the ACK's own ACK Delay
    std::atomic<std::uint32_t> epoch_seen{0};  // the trial the worker runs
    std::atomic<bool> idle{false};             // not sending: the trial's time or --packets share ended
};

struct worker_setup {
    std::uint32_t index = 0;
    std::uint32_t workers = 1;
    std::uint16_t port_id = 0;
    std::uint16_t queue = 0;
    rte_mempool* pool = nullptr;
    const gen_options* options = nullptr;
    const model_params* params = nullptr;
    traffic_model* model = nullptr;     // synthesis
    const pcap_frames* pcap = nullptr;  // replay
    std::vector<rte_ring*> inboxes;     // every worker's hand-off ring, by worker index
    trial_control* control = nullptr;
    worker_stats* stats = nullptr;
    double tsc_hz = 1e9;
    std::uint32_t idle_sleep_us = 0;
};

// The worker lcore's loop (rte_eal_remote_launch argument: a worker_setup*).
int worker_main(void* setup);

} // namespace kwik::gen
