// Path scheduler: picks the path (or, for redundant CRITICAL frames, the two paths) that the next
// packet goes out on, from the seed's multi-criteria score (002 "Multi-Criteria Path Selection")
// weighted by the frame's priority and its stream's QoS. Owned by one connection; one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/kdp/wire.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

enum class schedule_strategy : std::uint8_t { min_rtt, weighted, round_robin, redundant };

// One path as the scheduler sees it at a decision. The connection fills it from its estimators
// (metrics), the load balancer (weight) and its congestion controller and pacer (can_send).
struct path_candidate {
    path_id id = 0;
    path_metrics metrics;
    float weight = 1;     // from the load balancer (or KCP plans)
    bool can_send = true; // congestion window and pacing allow a packet now
    bool usable = true;   // not failed / not suspected
};

// Weights of each criterion in the score; one set per priority level. Only their ratios matter:
// the score divides by their sum. Defaults (scheduler_config below):
//
//              latency bandwidth loss jitter congestion reliability cost server_load geographic
//   normal      0.15    0.35    0.15  0.05     0.15       0.05     0.05    0.03       0.02
//   high        0.30    0.20    0.20  0.05     0.10       0.08     0.03    0.02       0.02
//   critical    0.35    0.05    0.25  0.10     0.08       0.15     0.00    0.01       0.01
//   control     0.40    0.00    0.25  0.05     0.05       0.25     0.00    0.00       0.00
//
// Normal traffic is bulk and favours bandwidth; the higher levels trade bandwidth for latency,
// loss and reliability. Control frames (ACKs, window updates) are tiny: bandwidth is irrelevant.
struct score_weights {
    float latency = 0;
    float bandwidth = 0;
    float loss = 0;
    float jitter = 0;
    float congestion = 0;
    float reliability = 0;
    float cost = 0;
    float server_load = 0;
    float geographic = 0;
};

struct scheduler_config {
    schedule_strategy strategy = schedule_strategy::min_rtt;
    score_weights normal{0.15f, 0.35f, 0.15f, 0.05f, 0.15f, 0.05f, 0.05f, 0.03f, 0.02f};
    score_weights high{0.30f, 0.20f, 0.20f, 0.05f, 0.10f, 0.08f, 0.03f, 0.02f, 0.02f};
    score_weights critical{0.35f, 0.05f, 0.25f, 0.10f, 0.08f, 0.15f, 0.00f, 0.01f, 0.01f};
    score_weights control{0.40f, 0.00f, 0.25f, 0.05f, 0.05f, 0.25f, 0.00f, 0.00f, 0.00f};
};

// Indices into the candidate span; -1 = none.
struct path_selection {
    int primary = -1;
    int secondary = -1;
};

// Normalisation constants for the score (how each criterion becomes a number in [0, 1], 1 best):
//   latency     (best + 10 us)  / (latency + 10 us)    best = lowest smoothed RTT in the set
//   bandwidth   (bw + 1 Mbit/s) / (best + 1 Mbit/s)    best = highest delivery rate in the set
//   loss        (best + 0.005)  / (loss + 0.005)       best = lowest loss rate in the set
//   jitter      (best + 1 ms)   / (jitter + 1 ms)      best = lowest RTT variance in the set
//   congestion  1 - congestion;  cost 1 - cost;  server_load 1 - server_load   (already 0..1)
//   reliability reliability;     geographic geographic_score                   (already 0..1)
// "The set" is the scored path plus every usable candidate. Ratios to the best path, rather than
// min-max scaling, keep the score smooth and strictly monotonic for every path that is not the
// best in that criterion (the best always gets 1); the floors keep a path at 0 loss or 0 jitter
// from making every other path worthless, and say what difference is too small to matter (10 us
// of RTT, half a percent of loss, 1 ms of jitter, 1 Mbit/s).
inline constexpr double score_latency_floor_ns = 10.0 * us;
inline constexpr double score_bandwidth_floor_bps = 1e6;
inline constexpr double score_loss_floor = 0.005;
inline constexpr double score_jitter_floor_ns = 1.0 * ms;
// Subtracted once per violated QoS bound; the weighted criteria sum to at most 1, so every
// compliant path outranks every violating one, and violators keep their relative order.
inline constexpr float qos_violation_penalty = 1.0f;

// Paths per connection that the weighted strategy keeps state for: it schedules only the first
// scheduler_max_paths candidates (the other strategies take any number).
inline constexpr std::size_t scheduler_max_paths = 64;

class path_scheduler {
public:
    explicit path_scheduler(const scheduler_config& config = {}) noexcept;

    // Higher is better. The weighted mean of the normalised criteria above (in [0, 1]), minus
    // qos_violation_penalty for each QoS bound the path violates: latency (smoothed RTT) above
    // qos->max_latency_ms, jitter above qos->max_jitter_ms (when those are non-zero), loss above
    // qos->loss_threshold. qos may be null.
    float score(const path_metrics& m, kdp::priority p, const qos_policy* qos,
                std::span<const path_candidate> all) const noexcept;

    // Picks among usable candidates that can_send (the eligible ones).
    //   min_rtt     best score (the priority's weights; for control and critical frames they are
    //               latency-dominated); ties go to the lower latency, then the lower index.
    //   weighted    smooth weighted round-robin (nginx): each eligible path's current value grows
    //               by its weight, the largest is picked and loses the sum of eligible weights.
    //               Deterministic; weights 3:1 give exactly 3:1 in every 4 picks. Weights are
    //               quantised to 1/65536; if every eligible weight is 0 they count as equal.
    //   round_robin the next eligible candidate after the one picked last time, by index.
    //   redundant   primary = best score; for critical and control frames secondary = second best
    //               (else -1): a duplicate on the next path can only help delivery.
    // With qos set, weighted and round_robin consider only the eligible paths that meet its bounds
    // when at least one does; min_rtt and redundant get the same effect from the score penalty.
    // Returns primary -1 if no candidate can send. O(n) in the number of candidates: CPU-time
    // medians for 2 / 8 / 32 paths on this 2-core Xeon VM (perf/bench/transport_bench_scheduler):
    // min_rtt and redundant 28 / 108 / 465 ns (about 180 instructions per path, mostly the four
    // ratio divisions), weighted 18 / 51 / 221 ns, round_robin 7.4 ns flat.
    path_selection select(std::span<const path_candidate> candidates, kdp::priority p,
                          const qos_policy* qos) noexcept;

    void set_strategy(schedule_strategy s) noexcept;
    schedule_strategy strategy() const noexcept;
    const scheduler_config& config() const noexcept;

private:
    // Bests over the normalisation set, computed once per decision.
    struct score_refs {
        float min_latency;
        float max_bandwidth;
        float min_loss;
        float min_jitter;
    };

    const score_weights& weights_for(kdp::priority p) const noexcept;
    static score_refs refs_over(std::span<const path_candidate> all) noexcept;
    static float score_with(const path_metrics& m, const score_weights& w, const score_refs& r,
                            const qos_policy* qos) noexcept;
    static bool meets_qos(const path_metrics& m, const qos_policy* qos) noexcept;

    int select_weighted(std::span<const path_candidate> candidates, bool qos_only,
                        const qos_policy* qos) noexcept;
    int select_round_robin(std::span<const path_candidate> candidates, bool qos_only,
                           const qos_policy* qos) noexcept;
    path_selection select_best(std::span<const path_candidate> candidates, kdp::priority p,
                               const qos_policy* qos, bool want_second) const noexcept;

    scheduler_config _config;
    std::array<score_weights, 4> _weights; // normal, high, critical, control; each sums to 1
    // Smooth WRR state by candidate index: the connection passes its path array in a stable order.
    // When the id at an index changes (a path added or removed) that index restarts from 0, which
    // smooth WRR absorbs within one round.
    std::array<path_id, scheduler_max_paths> _wrr_ids{};
    std::array<std::int64_t, scheduler_max_paths> _wrr_current{};
    std::size_t _rr_next = 0; // index to start the next round-robin search from
};

} // namespace kwik::transport
