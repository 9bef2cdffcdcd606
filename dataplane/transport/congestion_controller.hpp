// Per-path congestion control: slow start, congestion avoidance (NewReno or CUBIC), one window
// reduction per recovery period, and the coupled multipath increase of RFC 6356 (LIA). Also the
// per-path pacing rate fed to the pacer. One controller per path, owned and called only by the
// thread that owns the connection; lia_coupling is that connection's view of all its paths.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/transport/types.hpp"

namespace kwik::transport {

enum class cc_algorithm : std::uint8_t { newreno, cubic };

struct cc_config {
    cc_algorithm algorithm = cc_algorithm::cubic;
    std::uint32_t mss = 1200; // bytes
    std::uint32_t initial_window_packets = 10;
    std::uint32_t min_window_packets = 2;
    // The largest packet sent, when above mss: the minimum window holds min_window_packets of
    // them, so that a loss there is not always a tail loss (0: mss).
    std::uint32_t packet_size = 0;
    // LIA increase in congestion avoidance across the connection's paths (see
    // congestion_controller::on_packet_acked for when it applies).
    bool coupled = true;
    // CUBIC fast convergence (RFC 9438 4.7): release bandwidth faster when W_max shrinks.
    bool fast_convergence = true;
};

// The connection's view of all its paths for LIA (RFC 6356 section 3), recomputed by the
// connection when a path's cwnd or srtt changes (after each ACK it processed is enough).
//   alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i cwnd_i / rtt_i)^2
// over the active paths. A path with no RTT sample yet (srtt == 0) or an empty window counts as
// inactive: it is in slow start anyway, where LIA does not apply. No active path: alpha = 1 and
// total_cwnd = 0, which makes the controllers fall back to the uncoupled Reno increase.
class lia_coupling {
public:
    struct path_state {
        std::uint64_t cwnd;
        time_ns srtt;
        bool active;
    };

    void update(std::span<const path_state> paths) noexcept;
    double alpha() const noexcept { return _alpha; }
    std::uint64_t total_cwnd() const noexcept { return _total_cwnd; }
    std::uint32_t active_paths() const noexcept { return _active_paths; }

private:
    double _alpha = 1.0;
    std::uint64_t _total_cwnd = 0;
    std::uint32_t _active_paths = 0;
};

// One path's window. All byte counts are UDP payload bytes of ack-eliciting, in-flight packets.
//
// Slow start (cwnd < ssthresh): cwnd += acked bytes, per path and never coupled (RFC 9002 7.3.1,
// RFC 6356 section 3); an increase that crosses ssthresh stops there and the rest of the ACK
// counts as congestion avoidance.
//
// Congestion avoidance, in this order of precedence:
//  - coupled (config.coupled and a coupling passed with the ACK): LIA, per acked bytes
//    min(alpha * bytes * mss / total_cwnd, bytes * mss / cwnd_i) (RFC 6356 section 3), with
//    NewReno's halving on loss whatever config.algorithm says. CUBIC has no standard coupled form
//    (RFC 9438 says nothing on multipath; OLIA/BALIA are Reno-based too), so a coupled path runs
//    LIA + Reno decrease, which is the combination RFC 6356 analyses. The decrease follows the
//    mode of the last ACK (before any ACK: config.coupled). A connection with a single active
//    path that wants plain CUBIC passes no coupling (with one path LIA is exactly Reno).
//  - NewReno (RFC 9002 7.3.2, RFC 5681 appropriate byte counting): +1 MSS each time a full cwnd
//    of bytes has been acknowledged; on loss ssthresh = cwnd / 2 (beta 0.5, RFC 6582).
//  - CUBIC (RFC 9438): W_cubic(t) = C (t - K)^3 + W_max in MSS, C = 0.4, beta = 0.7,
//    K = cbrt((W_max - cwnd_epoch) / C), target = W_cubic(t + srtt) clamped to [cwnd, 1.5 cwnd],
//    cwnd += (target - cwnd) / cwnd per MSS acked; Reno-friendly region: W_est grows by
//    alpha_cubic = 3 (1 - beta) / (1 + beta) MSS per window acked (1 MSS once it passes the
//    window before the last reduction) and cwnd = W_est whenever W_cubic(t) < W_est. Fast
//    convergence on loss: W_max = cwnd (1 + beta) / 2 when cwnd < the previous W_max. ssthresh is
//    taken from cwnd, not from the flight size (RFC 9438 4.6 allows either). The epoch (t = 0)
//    starts at the first ACK in congestion avoidance after a reduction and is shifted forward by
//    idle time (a send with nothing in flight), as Linux does, so idleness is not growth.
//
// Growth only while the window is used: an ACK increases cwnd only if the peak bytes in flight
// over the current or previous round trip reached half the window (Linux's slow-start rule for
// tcp_is_cwnd_limited, applied to both phases so paced senders still qualify). An application-
// limited path therefore does not inflate its window (RFC 9002 7.8). Rounds are delimited by
// the ACK of the first packet sent after the previous round ended, so ACKs batched into one
// frame do not matter.
//
// Loss, ECN-CE: one reduction per recovery period (RFC 9002 7.3.2): a signal about a packet sent
// at or before the start of the current recovery period is ignored; ACKs of such packets do not
// grow the window either. The recovery period starts at `now` of the signal. cwnd and ssthresh
// never go below min_window_packets * max(mss, packet_size). Persistent congestion: call it after
// on_packets_lost for the same losses (which sets ssthresh); cwnd = min window and recovery ends
// (RFC 9002 7.6.2); CUBIC's next epoch starts with K = 0 and W_max = cwnd at its start
// (RFC 9438 4.8). Not implemented: HyStart++ (slow start ends on loss or ECN only).
//
// No allocation; every function is noexcept and O(1).
class congestion_controller {
public:
    explicit congestion_controller(const cc_config& config = {}) noexcept;

    void on_packet_sent(std::uint32_t bytes, time_ns now) noexcept; // bytes_in_flight += bytes
    // An acked in-flight packet. srtt/min_rtt from the path's rtt_estimator. coupling may be null
    // (uncoupled).
    void on_packet_acked(std::uint32_t bytes, time_ns time_sent, time_ns now, time_ns srtt,
                         time_ns min_rtt, const lia_coupling* coupling) noexcept;
    // Lost packets (bytes already counted in flight). One window reduction per recovery period.
    void on_packets_lost(std::uint64_t bytes, time_ns largest_lost_time_sent, time_ns now) noexcept;
    void on_persistent_congestion() noexcept; // cwnd = min window
    // Leave flight without a congestion signal (path failed, packets moved elsewhere).
    void on_packets_discarded(std::uint64_t bytes) noexcept;
    // Treated as a loss signal (RFC 9002 7.1), no bytes lost. largest_acked_time_sent is the send
    // time of the largest packet newly acknowledged by the ACK whose CE count grew: it is what
    // keeps further CE marks on the same window inside the recovery period (passing `now` would
    // reduce again on every such ACK).
    void on_ecn_ce(time_ns largest_acked_time_sent, time_ns now) noexcept;

    std::uint64_t cwnd() const noexcept { return _cwnd; }
    std::uint64_t ssthresh() const noexcept { return _ssthresh; }
    std::uint64_t bytes_in_flight() const noexcept { return _bytes_in_flight; }
    bool in_slow_start() const noexcept { return _cwnd < _ssthresh; }
    // bytes_in_flight + bytes <= cwnd; a packet may exceed the remainder only if nothing is in
    // flight (so a window below one packet can never stall the path).
    bool can_send(std::uint32_t bytes) const noexcept {
        return _bytes_in_flight == 0 || _bytes_in_flight + bytes <= _cwnd;
    }
    // gain * cwnd * 8 / srtt in bit/s: gain 2 in slow start, 1.25 afterwards (the gains Linux
    // uses for sk_pacing_rate), so pacing never holds the window back. srtt == 0 (no estimate):
    // 0, which the pacer reads as "not paced".
    std::uint64_t pacing_rate_bps(time_ns srtt) const noexcept;
    cc_algorithm algorithm() const noexcept { return _config.algorithm; }

    // True from a window reduction until the first ACK of a packet sent after it.
    bool in_recovery() const noexcept { return _in_recovery; }
    std::uint64_t min_window() const noexcept { return _min_window; }
    // CUBIC's W_max in bytes (after fast convergence) and K in seconds of the current epoch,
    // for tests and diagnostics.
    double cubic_w_max() const noexcept { return _w_max; }
    double cubic_k() const noexcept { return _k; }

    // RFC 9438 constants.
    static constexpr double cubic_c = 0.4;
    static constexpr double cubic_beta = 0.7;
    static constexpr double reno_beta = 0.5;

private:
    void congestion_event(time_ns time_sent, time_ns now) noexcept;
    void avoid_congestion(std::uint64_t bytes, time_ns now, time_ns srtt,
                          const lia_coupling* coupling) noexcept;
    void newreno_increase(std::uint64_t bytes) noexcept;
    void lia_increase(std::uint64_t bytes, const lia_coupling& coupling) noexcept;
    void cubic_increase(std::uint64_t bytes, time_ns now, time_ns srtt) noexcept;
    void add_fraction(double bytes) noexcept;
    bool cwnd_limited() const noexcept;

    cc_config _config;
    std::uint64_t _min_window;
    std::uint64_t _cwnd;
    std::uint64_t _ssthresh;
    std::uint64_t _bytes_in_flight = 0;

    // Recovery period: signals about packets sent at or before this time are ignored.
    time_ns _recovery_start = 0;
    bool _recovery_valid = false;
    bool _in_recovery = false;
    // Whether the last ACK came with a coupling (LIA): selects the decrease on loss. Before the
    // first ACK, the configuration's intent.
    bool _coupled_mode;

    // NewReno byte counter and the sub-byte remainder of LIA/CUBIC increases.
    std::uint64_t _bytes_acked_in_ca = 0;
    double _increase_remainder = 0;

    // Cwnd-limited test: peak in flight this round and last round.
    time_ns _round_start = 0;
    std::uint64_t _round_peak = 0;
    std::uint64_t _prev_round_peak = 0;
    time_ns _last_sent_time = 0;

    // CUBIC state, windows in bytes.
    bool _epoch_valid = false;
    time_ns _epoch_start = 0;
    double _w_max = 0;       // window before the last reduction (fast-convergence adjusted)
    double _origin = 0;      // W_cubic's plateau for this epoch: max(W_max, cwnd_epoch)
    double _k = 0;           // seconds from epoch start to the plateau
    double _w_est = 0;       // Reno-friendly estimate
    double _cwnd_prior = 0;  // cwnd just before the last reduction
};

} // namespace kwik::transport
