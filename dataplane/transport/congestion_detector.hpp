// The seed's CongestionDetector (002), one per path: three detectors (delay growth over min RTT,
// recent loss rate, queue signals from delivery-rate drop and ECN-CE marks) feed one congestion
// score in 0..1 (path_metrics::congestion) with a least-squares trend and a short prediction.
// Owned and called only by the thread that owns the connection; no allocation, all noexcept.
#pragma once

#include <array>
#include <cstdint>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

// What evaluate() found. Each detector's raw signal is mapped onto 0..1 by a linear ramp:
//   ramp(x, low, high) = 0 at or below low, 1 at or above high, linear in between.
struct congestion_report {
    // ramp((smoothed RTT - min RTT) / min RTT, delay_low, delay_high): queueing delay relative
    // to the path's base RTT.
    float rtt_score = 0;
    // ramp(loss rate, loss_low, loss_high); loss rate = EWMA of lost / (acked + lost) bytes.
    float loss_score = 0;
    // max(ramp(1 - delivery rate / its windowed max, rate_drop_low, rate_drop_high),
    //     ramp(ECN-CE fraction EWMA, ecn_low, ecn_high)).
    float queue_score = 0;
    // max of the three: each detector alone is evidence of congestion (a full queue with no loss
    // yet, random loss on a short queue, AQM marks), and averaging would dilute a clear signal.
    float score = 0;
    // Least-squares slope of score against time over the last trend_samples evaluations, per s.
    float trend_per_sec = 0;
    // clamp(score + trend_per_sec * horizon, 0, 1).
    float predicted = 0;
    // congested: score >= congested_threshold, held until score < threshold - clear_hysteresis.
    // rising (not congested): predicted >= congested_threshold, or trend_per_sec >= rising_trend
    //   with score >= rising_min_score (so noise near zero is not "rising").
    // clear: otherwise.
    enum class state : std::uint8_t { clear, rising, congested } level = state::clear;
};

struct detector_config {
    time_ns horizon = 100 * ms;        // how far ahead `predicted` looks
    float congested_threshold = 0.6f;
    float rising_trend = 0.5f;         // score per second
    float rising_min_score = 0.2f;
    float clear_hysteresis = 0.1f;
    // Queueing delay ramp: 10% over the base RTT is normal jitter, a queue as long as the base
    // RTT (bufferbloat doubling the RTT) is fully congested.
    float delay_low = 0.1f;
    float delay_high = 1.0f;
    // Loss ramp: below 0.5% is background (wireless, policers), 5% is a congested path.
    float loss_low = 0.005f;
    float loss_high = 0.05f;
    // Loss EWMA time constant in bytes: each ACK moves the estimate by
    // min(1, (acked + lost) / loss_ewma_bytes) of the way to its own lost fraction.
    std::uint64_t loss_ewma_bytes = 100 * 1200;
    // Delivery-rate drop ramp (1 - rate / windowed max) and the window of the max filter.
    // Delivery-rate samples are noisy: a 25% drop is ignored, 75% is congestion.
    float rate_drop_low = 0.25f;
    float rate_drop_high = 0.75f;
    time_ns rate_max_window = 1 * sec;
    // ECN-CE fraction ramp and EWMA constant (packets), as for loss: any sustained marking means
    // the bottleneck queue is above the AQM's threshold; 10% of packets marked is saturated.
    float ecn_low = 0.0f;
    float ecn_high = 0.1f;
    std::uint32_t ecn_ewma_packets = 100;
    // Evaluations in the trend fit, 2..max_trend_samples.
    std::uint32_t trend_samples = 8;
};

class congestion_detector {
public:
    static constexpr std::uint32_t max_trend_samples = 16;

    explicit congestion_detector(const detector_config& config = {}) noexcept;

    void on_rtt_sample(time_ns smoothed, time_ns min_rtt, time_ns now) noexcept;
    // One processed ACK: bytes newly acked and declared lost, the ECN-CE count's increase, the
    // packets newly acked, and a delivery-rate sample (0 = none, e.g. application-limited:
    // an app-limited sample would look like a drop).
    void on_ack(std::uint64_t bytes_acked, std::uint64_t bytes_lost, std::uint64_t ecn_ce_delta,
                std::uint64_t packets_acked, std::uint64_t delivery_rate_bps, time_ns now) noexcept;
    congestion_report evaluate(time_ns now) noexcept; // also records the score for the trend
    const congestion_report& last() const noexcept { return _last; }

    // The raw signals behind the scores (for tests, counters and the CLI).
    double delay_ratio() const noexcept { return _delay_ratio; }
    double loss_rate() const noexcept { return _loss_rate; }
    double ecn_fraction() const noexcept { return _ecn_fraction; }
    std::uint64_t max_delivery_rate() const noexcept { return _rate_max[0].value; }

private:
    struct rate_sample {
        time_ns time;
        std::uint64_t value;
    };
    struct score_sample {
        time_ns time;
        float score;
    };

    void update_rate_max(std::uint64_t rate, time_ns now) noexcept;
    float trend() const noexcept;

    detector_config _config;
    double _delay_ratio = 0;
    double _loss_rate = 0;
    double _ecn_fraction = 0;
    std::uint64_t _last_rate = 0;
    // Windowed max of the delivery rate: best, second and third best in the window (Kathleen
    // Nichols' algorithm, as Linux lib/win_minmax.c), O(1) per sample.
    std::array<rate_sample, 3> _rate_max{};
    std::array<score_sample, max_trend_samples> _history{};
    std::uint32_t _history_next = 0;
    std::uint32_t _history_count = 0;
    congestion_report _last;
};

} // namespace kwik::transport
