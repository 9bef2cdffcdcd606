// Congestion detector: each detector's ramp, the loss and ECN EWMAs, the windowed max delivery
// rate, the combined score, the least-squares trend, the prediction clamp and the state machine.
#include <gtest/gtest.h>

#include "dataplane/transport/congestion_detector.hpp"

namespace kwik::transport {
namespace {

using state = congestion_report::state;

constexpr time_ns base_rtt = 100 * ms;

// Queueing delay ratio q fed as smoothed = base (1 + q); with the ramp set to [0, 1] the RTT
// score equals q, which makes a synthetic score series easy to write.
detector_config linear_delay() {
    detector_config c;
    c.delay_low = 0;
    c.delay_high = 1;
    return c;
}

void feed_delay(congestion_detector& d, double q, time_ns now) {
    d.on_rtt_sample(base_rtt + static_cast<time_ns>(q * static_cast<double>(base_rtt) + 0.5), base_rtt, now);
}

TEST(congestion_detector, starts_clear) {
    congestion_detector d;
    const congestion_report r = d.evaluate(0);
    EXPECT_EQ(r.score, 0.0f);
    EXPECT_EQ(r.trend_per_sec, 0.0f);
    EXPECT_EQ(r.predicted, 0.0f);
    EXPECT_EQ(r.level, state::clear);
    EXPECT_EQ(d.last().level, state::clear);
}

TEST(congestion_detector, queueing_delay_ramp) {
    struct row {
        time_ns smoothed;
        float score;
    };
    // Default ramp: 0 at 10% over min RTT, 1 when the queue doubles the RTT.
    const row rows[] = {{100 * ms, 0.0f},  {105 * ms, 0.0f}, {110 * ms, 0.0f}, {155 * ms, 0.5f},
                        {177500 * us, 0.75f}, {200 * ms, 1.0f}, {400 * ms, 1.0f}, {90 * ms, 0.0f}};
    congestion_detector d;
    time_ns now = 0;
    for (const row& r : rows) {
        d.on_rtt_sample(r.smoothed, base_rtt, now);
        EXPECT_NEAR(d.evaluate(now).rtt_score, r.score, 1e-6) << r.smoothed;
        now += 10 * ms;
    }
    // No min RTT yet: ignored.
    d.on_rtt_sample(500 * ms, 0, now);
    EXPECT_NEAR(d.delay_ratio(), 0.0, 1e-12);
}

TEST(congestion_detector, loss_rate_is_an_ewma_over_bytes) {
    detector_config c; // EWMA constant 120000 bytes; ramp 0.5% .. 5%
    congestion_detector d(c);
    d.on_ack(12000, 0, 0, 10, 0, 0);
    EXPECT_DOUBLE_EQ(d.loss_rate(), 0.0);
    d.on_ack(10800, 1200, 0, 9, 0, 1 * ms); // sample 0.1, weight 0.1
    EXPECT_NEAR(d.loss_rate(), 0.01, 1e-12);
    d.on_ack(10800, 1200, 0, 9, 0, 2 * ms);
    EXPECT_NEAR(d.loss_rate(), 0.019, 1e-12);
    const congestion_report r = d.evaluate(2 * ms);
    EXPECT_NEAR(r.loss_score, (0.019 - 0.005) / 0.045, 1e-6);
    EXPECT_EQ(r.rtt_score, 0.0f);
    EXPECT_EQ(r.queue_score, 0.0f);
    EXPECT_FLOAT_EQ(r.score, r.loss_score);
    // An ACK covering a whole EWMA span replaces the estimate.
    d.on_ack(240000, 0, 0, 200, 0, 3 * ms);
    EXPECT_DOUBLE_EQ(d.loss_rate(), 0.0);
    EXPECT_EQ(d.evaluate(3 * ms).loss_score, 0.0f);
    // Heavy loss saturates.
    d.on_ack(60000, 60000, 0, 50, 0, 4 * ms);
    EXPECT_NEAR(d.loss_rate(), 0.5, 1e-12);
    EXPECT_EQ(d.evaluate(4 * ms).loss_score, 1.0f);
}

TEST(congestion_detector, delivery_rate_drop_against_windowed_max) {
    detector_config c; // drop ramp 25% .. 75%, 1 s window
    congestion_detector d(c);
    d.on_ack(1200, 0, 0, 1, 100'000'000, 0);
    EXPECT_EQ(d.max_delivery_rate(), 100'000'000u);
    EXPECT_EQ(d.evaluate(0).queue_score, 0.0f);
    d.on_ack(1200, 0, 0, 1, 80'000'000, 100 * ms); // 20% drop: below the ramp
    EXPECT_EQ(d.evaluate(100 * ms).queue_score, 0.0f);
    d.on_ack(1200, 0, 0, 1, 50'000'000, 200 * ms); // 50% drop
    EXPECT_NEAR(d.evaluate(200 * ms).queue_score, 0.5f, 1e-6);
    d.on_ack(1200, 0, 0, 1, 20'000'000, 300 * ms); // 80% drop
    EXPECT_EQ(d.evaluate(300 * ms).queue_score, 1.0f);
    d.on_ack(1200, 0, 0, 1, 0, 350 * ms); // no sample: nothing changes
    EXPECT_EQ(d.evaluate(350 * ms).queue_score, 1.0f);
    // The 100 Mbit/s max ages out after the 1 s window; the best sample inside it remains.
    for (time_ns t = 400 * ms; t <= 1600 * ms; t += 100 * ms) {
        d.on_ack(1200, 0, 0, 1, 20'000'000, t);
    }
    EXPECT_EQ(d.max_delivery_rate(), 20'000'000u);
    EXPECT_EQ(d.evaluate(1600 * ms).queue_score, 0.0f);
}

TEST(congestion_detector, windowed_max_keeps_the_runner_up) {
    congestion_detector d;
    d.on_ack(1, 0, 0, 1, 100, 0);
    d.on_ack(1, 0, 0, 1, 60, 300 * ms);
    d.on_ack(1, 0, 0, 1, 40, 600 * ms);
    EXPECT_EQ(d.max_delivery_rate(), 100u);
    d.on_ack(1, 0, 0, 1, 10, 1100 * ms); // 100 expired: 60 (at 300 ms) is the best left
    EXPECT_EQ(d.max_delivery_rate(), 60u);
    d.on_ack(1, 0, 0, 1, 10, 1400 * ms); // 60 expired: 40
    EXPECT_EQ(d.max_delivery_rate(), 40u);
}

TEST(congestion_detector, ecn_ce_fraction) {
    detector_config c; // ramp 0 .. 10% of packets marked, EWMA over 100 packets
    congestion_detector d(c);
    d.on_ack(12000, 0, 5, 10, 0, 0); // half of 10 packets marked, weight 0.1
    EXPECT_NEAR(d.ecn_fraction(), 0.05, 1e-12);
    congestion_report r = d.evaluate(0);
    EXPECT_NEAR(r.queue_score, 0.5f, 1e-6);
    EXPECT_FLOAT_EQ(r.score, 0.5f);
    d.on_ack(12000, 0, 0, 10, 0, 1 * ms);
    EXPECT_NEAR(d.ecn_fraction(), 0.045, 1e-12);
    d.on_ack(1200000, 0, 0, 1000, 0, 2 * ms); // a long unmarked stretch clears it
    EXPECT_DOUBLE_EQ(d.ecn_fraction(), 0.0);
    d.on_ack(0, 0, 3, 0, 0, 3 * ms); // no packets acked: no sample
    EXPECT_DOUBLE_EQ(d.ecn_fraction(), 0.0);
}

TEST(congestion_detector, score_is_the_max_of_the_three) {
    congestion_detector d;
    d.on_rtt_sample(155 * ms, base_rtt, 0); // rtt score (0.55 - 0.1) / 0.9 = 0.5
    d.on_ack(108000, 12000, 0, 90, 0, 0);   // a whole EWMA span at 10% loss: rate 0.1
    d.on_ack(1200, 0, 1, 10, 0, 0);         // ECN: 1 of 10 marked, weight 0.1 -> fraction 0.01
    const congestion_report r = d.evaluate(0);
    EXPECT_NEAR(r.rtt_score, 0.5f, 1e-6);
    EXPECT_NEAR(d.loss_rate(), 0.1 * (1 - 1200.0 / 120000), 1e-12);
    EXPECT_EQ(r.loss_score, 1.0f);
    EXPECT_NEAR(r.queue_score, 0.1f, 1e-6);
    EXPECT_EQ(r.score, 1.0f);
    EXPECT_EQ(r.level, state::congested);
}

TEST(congestion_detector, trend_of_a_rising_series) {
    detector_config c = linear_delay();
    congestion_detector d(c); // 8 samples, horizon 100 ms
    // q rises 0.05 every 10 ms: 5 per second.
    congestion_report r;
    for (int i = 0; i < 8; ++i) {
        const time_ns now = i * 10 * ms;
        feed_delay(d, 0.05 * i, now);
        r = d.evaluate(now);
    }
    EXPECT_NEAR(r.score, 0.35f, 1e-6);
    EXPECT_NEAR(r.trend_per_sec, 5.0f, 1e-3);
    EXPECT_NEAR(r.predicted, 0.85f, 1e-3); // 0.35 + 5 * 0.1
    // Prediction is clamped to 1 once score + 0.5 passes it.
    for (int i = 8; i < 12; ++i) {
        const time_ns now = i * 10 * ms;
        feed_delay(d, 0.05 * i, now);
        r = d.evaluate(now);
    }
    EXPECT_NEAR(r.score, 0.55f, 1e-6);
    EXPECT_NEAR(r.trend_per_sec, 5.0f, 1e-3);
    EXPECT_EQ(r.predicted, 1.0f);
}

TEST(congestion_detector, trend_of_a_falling_series_and_clamp_at_zero) {
    congestion_detector d(linear_delay());
    congestion_report r;
    for (int i = 0; i < 8; ++i) {
        const time_ns now = i * 20 * ms;
        feed_delay(d, 0.4 - 0.04 * i, now); // -2 per second
        r = d.evaluate(now);
    }
    EXPECT_NEAR(r.score, 0.12f, 1e-6);
    EXPECT_NEAR(r.trend_per_sec, -2.0f, 1e-3);
    EXPECT_NEAR(r.predicted, 0.0f, 1e-6); // 0.12 - 0.2 clamped
}

TEST(congestion_detector, trend_uses_only_the_last_n_evaluations) {
    detector_config c = linear_delay();
    c.trend_samples = 4;
    congestion_detector d(c);
    time_ns now = 0;
    for (int i = 0; i < 10; ++i) { // flat at 0.3
        feed_delay(d, 0.3, now);
        d.evaluate(now);
        now += 10 * ms;
    }
    EXPECT_NEAR(d.last().trend_per_sec, 0.0f, 1e-6);
    congestion_report r;
    for (int i = 1; i <= 3; ++i) { // 3 rising points + the last flat one make the window of 4
        feed_delay(d, 0.3 + 0.01 * i, now);
        r = d.evaluate(now);
        now += 10 * ms;
    }
    EXPECT_NEAR(r.trend_per_sec, 1.0f, 1e-3);
    // One evaluation only: no trend.
    congestion_detector fresh(c);
    feed_delay(fresh, 0.5, 0);
    EXPECT_EQ(fresh.evaluate(0).trend_per_sec, 0.0f);
    // Same timestamp twice: no slope rather than a division by zero.
    EXPECT_EQ(fresh.evaluate(0).trend_per_sec, 0.0f);
}

TEST(congestion_detector, state_transitions) {
    detector_config c = linear_delay(); // threshold 0.6, hysteresis 0.1, rising 0.5/s, floor 0.2
    c.trend_samples = 3;
    congestion_detector d(c);
    struct step {
        double q;
        state expected;
    };
    // 100 ms apart; with 3 samples the slope is (newest - oldest) / 0.2 s.
    const step steps[] = {
        {0.05, state::clear},     // low, one sample: no trend
        {0.10, state::clear},     // rising at 0.5/s but below the 0.2 floor
        {0.30, state::rising},    // trend 1.25/s, score 0.3
        {0.45, state::rising},    // trend 1.75/s, predicted 0.625 >= 0.6 as well
        {0.65, state::congested}, // over the threshold
        {0.55, state::congested}, // within the hysteresis band (> 0.5)
        {0.52, state::congested},
        {0.45, state::clear},     // below 0.5 and falling (-0.5/s, predicted 0.4)
        {0.45, state::clear},
    };
    time_ns now = 0;
    for (const step& s : steps) {
        feed_delay(d, s.q, now);
        const congestion_report r = d.evaluate(now);
        EXPECT_EQ(r.level, s.expected) << "q = " << s.q << " trend " << r.trend_per_sec
                                       << " predicted " << r.predicted;
        EXPECT_EQ(d.last().level, r.level);
        now += 100 * ms;
    }
}

TEST(congestion_detector, rising_on_prediction_alone) {
    detector_config c = linear_delay();
    c.rising_trend = 10; // trend rule out of reach
    congestion_detector d(c);
    feed_delay(d, 0.40, 0);
    EXPECT_EQ(d.evaluate(0).level, state::clear);
    feed_delay(d, 0.50, 100 * ms); // 1/s: predicted 0.6
    const congestion_report r = d.evaluate(100 * ms);
    EXPECT_NEAR(r.predicted, 0.6f, 1e-5);
    EXPECT_EQ(r.level, state::rising);
    feed_delay(d, 0.50, 200 * ms); // flat now: predicted 0.55
    EXPECT_EQ(d.evaluate(200 * ms).level, state::clear);
}

} // namespace
} // namespace kwik::transport
