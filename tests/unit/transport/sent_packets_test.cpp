// Sent-packet tracking and loss detection: ACK processing with frames handed back, RTT samples,
// loss by packet and by time threshold with exact times, PTO backoff, duplicate / spurious /
// reordered / invalid ACKs, ring capacity, declare_all_lost, ECN deltas, the delivery-rate
// sample on steady flows, and a sender + ack_tracker loop through the codec.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/transport/ack_tracker.hpp"
#include "dataplane/transport/sent_packets.hpp"

namespace kwik::transport {
namespace {

struct recorder {
    std::vector<std::uint64_t> acked;
    std::vector<std::uint64_t> lost;
    std::vector<sent_frame> acked_frames;
    std::vector<sent_frame> lost_frames;

    void on_acked(const sent_packet& p, std::span<const sent_frame> f) {
        acked.push_back(p.seq);
        acked_frames.insert(acked_frames.end(), f.begin(), f.end());
    }
    void on_lost(const sent_packet& p, std::span<const sent_frame> f) {
        lost.push_back(p.seq);
        lost_frames.insert(lost_frames.end(), f.begin(), f.end());
    }
};

// ranges: {largest, smallest}, descending.
kdp::ack_frame make_ack(std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> ranges,
                        std::uint64_t delay_us = 0, std::uint64_t ecn_ce = 0) {
    kdp::ack_frame a;
    a.ack_delay_us = delay_us;
    a.ecn_ce = ecn_ce;
    for (const auto& [hi, lo] : ranges) {
        a.ranges[a.range_count++] = {hi, lo};
    }
    return a;
}

sent_frame stream_frame(stream_id s, std::uint64_t offset, std::uint32_t length, bool fin = false) {
    sent_frame f;
    f.what = sent_frame::kind::stream;
    f.stream = s;
    f.offset = offset;
    f.length = length;
    f.fin = fin;
    return f;
}

bool same(const sent_frame& a, const sent_frame& b) {
    return a.what == b.what && a.control == b.control && a.fin == b.fin && a.stream == b.stream &&
           a.offset == b.offset && a.length == b.length;
}

// Sends `count` ack-eliciting packets of `bytes`, seq i at start + i * gap, one frame each.
void send_n(sent_packets& sp, std::uint64_t count, time_ns start, time_ns gap,
            std::uint32_t bytes = 1200) {
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t seq = sp.next_seq();
        const sent_frame f = stream_frame(4, seq * 1000, 1000);
        ASSERT_TRUE(sp.on_sent(start + i * gap, bytes, true, {&f, 1}));
    }
}

TEST(sent_packets, ack_hands_back_frames_and_samples_rtt) {
    sent_packets sp;
    recorder r;
    EXPECT_EQ(sp.next_seq(), 0u);
    const std::array<sent_frame, 1> p0{stream_frame(4, 0, 1000)};
    sent_frame ctl;
    ctl.what = sent_frame::kind::control;
    ctl.control = kdp::control_type::max_stream_data;
    ctl.stream = 4;
    ctl.offset = 65536;
    const std::array<sent_frame, 2> p1{stream_frame(4, 1000, 500, true), ctl};
    ASSERT_TRUE(sp.on_sent(0, 1100, true, p0));
    ASSERT_TRUE(sp.on_sent(1 * ms, 700, true, p1));
    ASSERT_TRUE(sp.on_sent(2 * ms, 50, true, {}));
    EXPECT_EQ(sp.next_seq(), 3u);
    EXPECT_EQ(sp.bytes_in_flight(), 1850u);
    EXPECT_EQ(sp.packets_in_flight(), 3u);

    const ack_outcome o = sp.on_ack(make_ack({{2, 0}}, 2000), 52 * ms, r);
    EXPECT_FALSE(o.invalid);
    EXPECT_TRUE(o.new_largest);
    EXPECT_TRUE(o.rtt_sampled);
    EXPECT_EQ(o.packets_acked, 3u);
    EXPECT_EQ(o.bytes_acked, 1850u);
    EXPECT_EQ(o.packets_lost, 0u);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{0, 1, 2}));
    ASSERT_EQ(r.acked_frames.size(), 3u);
    EXPECT_TRUE(same(r.acked_frames[0], p0[0]));
    EXPECT_TRUE(same(r.acked_frames[1], p1[0]));
    EXPECT_TRUE(same(r.acked_frames[2], p1[1]));
    // latest = 52 - 2 (send of the largest); the first sample ignores the ack delay.
    EXPECT_EQ(sp.rtt().latest(), 50 * ms);
    EXPECT_EQ(sp.rtt().smoothed(), 50 * ms);
    EXPECT_EQ(sp.rtt().variance(), 25 * ms);
    EXPECT_EQ(sp.bytes_in_flight(), 0u);
    EXPECT_EQ(sp.packets_in_flight(), 0u);
    EXPECT_EQ(sp.last_ack_time(), 52 * ms);
    EXPECT_EQ(sp.pto_deadline(), never);
    EXPECT_EQ(sp.loss_time(), never);
}

TEST(sent_packets, loss_by_packet_threshold_then_time_threshold_exact) {
    sent_packets sp;
    recorder r;
    send_n(sp, 5, 0, 1 * ms); // seq i sent at i ms
    // ACK 3..4 at 104 ms: latest RTT 100 ms, loss delay 9/8 * 100 = 112.5 ms.
    const ack_outcome o = sp.on_ack(make_ack({{4, 3}}), 104 * ms, r);
    EXPECT_EQ(o.packets_acked, 2u);
    // 4 >= 0 + 3 and 4 >= 1 + 3: lost; 2 is only 2 below the largest.
    EXPECT_EQ(r.lost, (std::vector<std::uint64_t>{0, 1}));
    EXPECT_EQ(o.packets_lost, 2u);
    EXPECT_EQ(o.bytes_lost, 2400u);
    EXPECT_EQ(o.largest_lost_time_sent, 1 * ms);
    ASSERT_EQ(r.lost_frames.size(), 2u);
    EXPECT_EQ(r.lost_frames[1].offset, 1000u);
    EXPECT_EQ(sp.packets_in_flight(), 1u);
    // 2 was sent at 2 ms: lost at 2 + 112.5 ms.
    EXPECT_EQ(sp.loss_time(), 114'500 * us);

    const ack_outcome early = sp.on_loss_timer(114'500 * us - 1, r);
    EXPECT_EQ(early.packets_lost, 0u);
    EXPECT_EQ(sp.loss_time(), 114'500 * us);

    const ack_outcome due = sp.on_loss_timer(114'500 * us, r);
    EXPECT_EQ(due.packets_lost, 1u);
    EXPECT_EQ(due.bytes_lost, 1200u);
    EXPECT_EQ(due.largest_lost_time_sent, 2 * ms);
    EXPECT_EQ(r.lost, (std::vector<std::uint64_t>{0, 1, 2}));
    EXPECT_EQ(sp.loss_time(), never);
    EXPECT_EQ(sp.packets_in_flight(), 0u);
    EXPECT_EQ(sp.bytes_in_flight(), 0u);
}

TEST(sent_packets, loss_by_time_threshold_on_ack_boundary) {
    {
        // 0 at 0, 1 at 10 ms, ACK of 1 at 90 ms: RTT 80, loss delay 90: 0 + 90 <= 90, lost.
        sent_packets sp;
        recorder r;
        send_n(sp, 1, 0, 0);
        send_n(sp, 1, 10 * ms, 0);
        const ack_outcome o = sp.on_ack(make_ack({{1, 1}}), 90 * ms, r);
        EXPECT_EQ(o.packets_lost, 1u);
        EXPECT_EQ(r.lost, (std::vector<std::uint64_t>{0}));
        EXPECT_EQ(sp.loss_time(), never);
    }
    {
        // Sent 1 ns later: not yet lost; the timer is armed for exactly then.
        sent_packets sp;
        recorder r;
        send_n(sp, 1, 1, 0);
        send_n(sp, 1, 10 * ms, 0);
        const ack_outcome o = sp.on_ack(make_ack({{1, 1}}), 90 * ms, r);
        EXPECT_EQ(o.packets_lost, 0u);
        EXPECT_EQ(sp.loss_time(), 90 * ms + 1);
        EXPECT_EQ(sp.on_loss_timer(90 * ms + 1, r).packets_lost, 1u);
    }
    {
        // Loss delay never below the granularity: RTT 100 µs, 9/8 of it is 112.5 µs < 1 ms.
        sent_packets sp;
        recorder r;
        send_n(sp, 1, 0, 0);
        send_n(sp, 1, 500 * us, 0);
        sp.on_ack(make_ack({{1, 1}}), 600 * us, r);
        EXPECT_TRUE(r.lost.empty());
        EXPECT_EQ(sp.loss_time(), 1 * ms);
    }
}

TEST(sent_packets, loss_delay_uses_larger_of_latest_and_smoothed) {
    sent_packets sp;
    recorder r;
    send_n(sp, 1, 0, 0);                      // 0
    sp.on_ack(make_ack({{0, 0}}), 100 * ms, r); // first sample: smoothed = latest = 100 ms
    send_n(sp, 2, 100 * ms, 1 * ms);          // 1 at 100 ms, 2 at 101 ms
    // 2 acked after 200 ms: latest 200, smoothed (7*100 + 200) / 8 = 112.5.
    sp.on_ack(make_ack({{2, 2}}), 301 * ms, r);
    EXPECT_EQ(sp.rtt().latest(), 200 * ms);
    EXPECT_EQ(sp.rtt().smoothed(), 112'500 * us);
    // Loss delay 9/8 * 200 = 225 ms (not 9/8 * 112.5): 1 is lost at 100 + 225 ms, not yet.
    EXPECT_TRUE(r.lost.empty());
    EXPECT_EQ(sp.loss_time(), 325 * ms);
    EXPECT_EQ(sp.on_loss_timer(325 * ms, r).packets_lost, 1u);
}

TEST(sent_packets, pto_backoff_doubles_and_resets_on_ack) {
    sent_packets sp; // initial RTT 100 ms: base = 100 + 4 * 50 + 5 = 305 ms
    recorder r;
    EXPECT_EQ(sp.pto_deadline(), never);
    send_n(sp, 1, 10 * ms, 0);
    EXPECT_EQ(sp.pto_deadline(), 315 * ms);
    sp.on_pto();
    EXPECT_EQ(sp.pto_count(), 1u);
    EXPECT_EQ(sp.pto_deadline(), 10 * ms + 610 * ms);
    sp.on_pto();
    EXPECT_EQ(sp.pto_deadline(), 10 * ms + 1220 * ms);
    // An ACK-only packet does not move the PTO; an ack-eliciting probe does.
    ASSERT_TRUE(sp.on_sent(500 * ms, 40, false, {}));
    EXPECT_EQ(sp.pto_deadline(), 1230 * ms);
    send_n(sp, 1, 700 * ms, 0); // seq 2
    EXPECT_EQ(sp.pto_deadline(), 700 * ms + 1220 * ms);

    const ack_outcome o = sp.on_ack(make_ack({{0, 0}}), 900 * ms, r);
    EXPECT_TRUE(o.rtt_sampled);
    EXPECT_EQ(sp.pto_count(), 0u);
    // First sample 890 ms: base = 890 + 4 * 445 + 5 = 2675 ms.
    EXPECT_EQ(sp.pto_deadline(), 700 * ms + 2675 * ms);
    sp.on_pto();
    sp.on_pto();
    sp.on_pto();
    EXPECT_EQ(sp.pto_deadline(), 700 * ms + 8 * 2675 * ms);
    // Saturates instead of overflowing: 2675 ms * 2^33 is past 2^64 ns.
    time_ns previous = sp.pto_deadline();
    while (sp.pto_count() < 130) {
        sp.on_pto();
        const time_ns d = sp.pto_deadline();
        EXPECT_GE(d, previous) << "pto_count " << sp.pto_count();
        if (sp.pto_count() >= 33) {
            EXPECT_EQ(d, never) << "pto_count " << sp.pto_count();
        } else {
            EXPECT_EQ(d, 700 * ms + (2675 * ms << sp.pto_count())) << "pto_count " << sp.pto_count();
        }
        previous = d;
    }

    sp.on_ack(make_ack({{2, 0}}), 1000 * ms, r);
    EXPECT_EQ(sp.pto_count(), 0u);
    EXPECT_EQ(sp.pto_deadline(), never);
}

TEST(sent_packets, duplicate_and_spurious_acks_are_not_counted_twice) {
    sent_packets sp;
    recorder r;
    send_n(sp, 6, 0, 1 * ms);
    const ack_outcome first = sp.on_ack(make_ack({{5, 3}}), 50 * ms, r);
    EXPECT_EQ(first.packets_acked, 3u);
    EXPECT_EQ(first.packets_lost, 3u); // 0, 1, 2: 5 >= seq + 3
    EXPECT_EQ(sp.packets_in_flight(), 0u);
    const time_ns srtt = sp.rtt().smoothed();

    const ack_outcome again = sp.on_ack(make_ack({{5, 3}}), 60 * ms, r);
    EXPECT_FALSE(again.invalid);
    EXPECT_FALSE(again.new_largest);
    EXPECT_FALSE(again.rtt_sampled);
    EXPECT_EQ(again.packets_acked, 0u);
    EXPECT_EQ(again.bytes_acked, 0u);
    EXPECT_EQ(again.packets_lost, 0u);
    EXPECT_EQ(sp.rtt().smoothed(), srtt);

    // Acknowledges the packets already declared lost (spurious loss): not acked again.
    const ack_outcome spurious = sp.on_ack(make_ack({{5, 0}}), 70 * ms, r);
    EXPECT_EQ(spurious.packets_acked, 0u);
    EXPECT_EQ(spurious.packets_lost, 0u);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{3, 4, 5}));
    EXPECT_EQ(r.lost, (std::vector<std::uint64_t>{0, 1, 2}));
    EXPECT_EQ(sp.bytes_in_flight(), 0u);
    EXPECT_EQ(sp.last_ack_time(), 50 * ms);
}

TEST(sent_packets, reordered_older_ack_acks_without_rtt_sample) {
    sent_packets sp;
    recorder r;
    send_n(sp, 4, 0, 1 * ms);
    const ack_outcome newer = sp.on_ack(make_ack({{3, 3}}), 40 * ms, r);
    EXPECT_TRUE(newer.rtt_sampled);
    EXPECT_EQ(newer.packets_lost, 1u); // 0
    EXPECT_EQ(sp.rtt().latest(), 37 * ms);
    // The older ACK (largest 2) arrives after: 1 and 2 are newly acked, the largest is not new.
    const ack_outcome older = sp.on_ack(make_ack({{2, 1}}), 41 * ms, r);
    EXPECT_FALSE(older.new_largest);
    EXPECT_FALSE(older.rtt_sampled);
    EXPECT_EQ(older.packets_acked, 2u);
    EXPECT_EQ(sp.rtt().latest(), 37 * ms);
    EXPECT_EQ(sp.last_ack_time(), 41 * ms);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{3, 1, 2}));
    EXPECT_EQ(sp.packets_in_flight(), 0u);
}

TEST(sent_packets, ack_only_largest_still_gives_rtt_sample) {
    sent_packets sp;
    recorder r;
    send_n(sp, 1, 0, 0);
    ASSERT_TRUE(sp.on_sent(10 * ms, 40, false, {})); // seq 1, ACK-only
    EXPECT_EQ(sp.packets_in_flight(), 1u);
    const ack_outcome o = sp.on_ack(make_ack({{1, 0}}), 60 * ms, r);
    EXPECT_TRUE(o.new_largest);
    EXPECT_TRUE(o.rtt_sampled);
    EXPECT_EQ(o.packets_acked, 1u); // the ACK-only packet is not reported
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{0}));
    EXPECT_EQ(sp.rtt().latest(), 50 * ms);
    // ACK-only packets alone: no ack-eliciting packet newly acked, no sample, but the path is
    // alive: pto reset and last_ack_time advance.
    ASSERT_TRUE(sp.on_sent(70 * ms, 40, false, {}));
    sp.on_pto();
    const ack_outcome only = sp.on_ack(make_ack({{2, 2}}), 90 * ms, r);
    EXPECT_TRUE(only.new_largest);
    EXPECT_FALSE(only.rtt_sampled);
    EXPECT_EQ(only.packets_acked, 0u);
    EXPECT_EQ(sp.pto_count(), 0u);
    EXPECT_EQ(sp.last_ack_time(), 90 * ms);
}

TEST(sent_packets, invalid_ack_applies_nothing) {
    sent_packets sp;
    recorder r;
    send_n(sp, 3, 0, 1 * ms);
    const ack_outcome beyond = sp.on_ack(make_ack({{3, 0}}), 50 * ms, r);
    EXPECT_TRUE(beyond.invalid);
    EXPECT_EQ(beyond.packets_acked, 0u);
    EXPECT_FALSE(beyond.new_largest);

    kdp::ack_frame overlapping = make_ack({{2, 1}, {1, 0}});
    EXPECT_TRUE(sp.on_ack(overlapping, 50 * ms, r).invalid);
    kdp::ack_frame inverted = make_ack({{1, 2}});
    EXPECT_TRUE(sp.on_ack(inverted, 50 * ms, r).invalid);
    kdp::ack_frame empty;
    EXPECT_TRUE(sp.on_ack(empty, 50 * ms, r).invalid);

    EXPECT_TRUE(r.acked.empty());
    EXPECT_TRUE(r.lost.empty());
    EXPECT_EQ(sp.packets_in_flight(), 3u);
    EXPECT_EQ(sp.bytes_in_flight(), 3600u);
    EXPECT_FALSE(sp.rtt().has_sample());
    EXPECT_EQ(sp.last_ack_time(), 0u);

    const ack_outcome ok = sp.on_ack(make_ack({{2, 0}}), 50 * ms, r);
    EXPECT_FALSE(ok.invalid);
    EXPECT_EQ(ok.packets_acked, 3u);
}

TEST(sent_packets, packet_ring_exhaustion) {
    loss_config c;
    c.packet_capacity = 4;
    sent_packets sp(c);
    recorder r;
    send_n(sp, 4, 0, 1 * ms);
    EXPECT_FALSE(sp.can_send());
    const sent_frame f = stream_frame(4, 9999, 1);
    EXPECT_FALSE(sp.on_sent(5 * ms, 1200, true, {&f, 1}));
    EXPECT_EQ(sp.next_seq(), 4u);
    EXPECT_EQ(sp.packets_in_flight(), 4u);
    // An ACK can always be sent.
    EXPECT_TRUE(sp.on_sent(5 * ms, 40, false, {}));
    EXPECT_EQ(sp.next_seq(), 5u);

    sp.on_ack(make_ack({{0, 0}}), 30 * ms, r);
    // Seq 5 would share a slot with 1, still in flight.
    EXPECT_FALSE(sp.can_send());
    sp.on_ack(make_ack({{1, 0}}), 31 * ms, r);
    EXPECT_TRUE(sp.can_send());
    EXPECT_TRUE(sp.on_sent(32 * ms, 1200, true, {&f, 1}));
    EXPECT_EQ(sp.next_seq(), 6u);
    // The still-outstanding records and their frames are intact.
    sp.on_ack(make_ack({{5, 2}}), 60 * ms, r);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{0, 1, 2, 3, 5}));
    ASSERT_EQ(r.acked_frames.size(), 5u);
    EXPECT_EQ(r.acked_frames[2].offset, 2000u);
    EXPECT_EQ(r.acked_frames[3].offset, 3000u);
    EXPECT_EQ(r.acked_frames[4].offset, 9999u);
    EXPECT_EQ(sp.packets_in_flight(), 0u);
}

TEST(sent_packets, frame_ring_wraps_with_contiguous_records) {
    loss_config c;
    c.frame_capacity = 128;
    sent_packets sp(c);
    recorder r;
    auto frames = [](std::uint64_t base, std::size_t n) {
        std::vector<sent_frame> v;
        for (std::size_t i = 0; i < n; ++i) {
            v.push_back(stream_frame(8, base + i, 1));
        }
        return v;
    };
    EXPECT_EQ(sp.frame_capacity_left(), 128u);
    ASSERT_TRUE(sp.on_sent(0, 1200, true, frames(0, 40)));
    ASSERT_TRUE(sp.on_sent(0, 1200, true, frames(100, 40)));
    ASSERT_TRUE(sp.on_sent(0, 1200, true, frames(200, 40)));
    EXPECT_EQ(sp.frame_capacity_left(), 8u);
    EXPECT_FALSE(sp.can_send()); // a full packet (64 frames) would not fit
    EXPECT_FALSE(sp.on_sent(0, 1200, true, frames(300, 9)));
    EXPECT_EQ(sp.next_seq(), 3u);

    sp.on_ack(make_ack({{0, 0}}), 10 * ms, r); // frees records 0..39
    // 8 left before the end, 40 at the start: a packet's records never straddle the end.
    EXPECT_EQ(sp.frame_capacity_left(), 40u);
    ASSERT_TRUE(sp.on_sent(11 * ms, 1200, true, frames(300, 40)));
    EXPECT_EQ(sp.frame_capacity_left(), 0u);

    r = {};
    sp.on_ack(make_ack({{3, 1}}), 20 * ms, r);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{1, 2, 3}));
    ASSERT_EQ(r.acked_frames.size(), 120u);
    for (std::size_t i = 0; i < 40; ++i) {
        EXPECT_EQ(r.acked_frames[i].offset, 100 + i);
        EXPECT_EQ(r.acked_frames[40 + i].offset, 200 + i);
        EXPECT_EQ(r.acked_frames[80 + i].offset, 300 + i);
    }
    // Empty again: the whole ring is usable.
    EXPECT_EQ(sp.frame_capacity_left(), 128u);
    EXPECT_TRUE(sp.can_send());
    ASSERT_TRUE(sp.on_sent(21 * ms, 1200, true, frames(400, 128)));
    EXPECT_EQ(sp.frame_capacity_left(), 0u);
    r = {};
    sp.on_ack(make_ack({{4, 4}}), 30 * ms, r);
    ASSERT_EQ(r.acked_frames.size(), 128u);
    EXPECT_EQ(r.acked_frames[127].offset, 527u);
}

TEST(sent_packets, empty_frame_ring_realigns_and_frameless_packets_do_not_move_it) {
    loss_config c;
    c.frame_capacity = 128;
    sent_packets sp(c);
    recorder r;
    const std::vector<sent_frame> hundred(100, stream_frame(8, 0, 1));
    const std::vector<sent_frame> fifty(50, stream_frame(8, 1, 1));
    ASSERT_TRUE(sp.on_sent(0, 1200, true, hundred));  // records 0..99
    sp.on_ack(make_ack({{0, 0}}), 10 * ms, r);
    ASSERT_TRUE(sp.on_sent(11 * ms, 60, true, {}));  // 1: ack-eliciting, no frames
    ASSERT_TRUE(sp.on_sent(12 * ms, 1200, true, fifty)); // 2: 28 left before the end: realigned to 0
    EXPECT_EQ(sp.frame_capacity_left(), 78u);
    sp.on_ack(make_ack({{1, 1}}), 30 * ms, r);          // frees 1 only; 2 still holds 50
    EXPECT_EQ(sp.frame_capacity_left(), 78u);
    r = {};
    sp.on_ack(make_ack({{2, 1}}), 31 * ms, r);
    ASSERT_EQ(r.acked_frames.size(), 50u);
    EXPECT_EQ(r.acked_frames[49].offset, 1u);
    EXPECT_EQ(sp.frame_capacity_left(), 128u);
}

TEST(sent_packets, declare_all_lost_resolves_everything_in_flight) {
    sent_packets sp;
    recorder r;
    send_n(sp, 5, 0, 1 * ms);
    sp.on_ack(make_ack({{1, 1}}), 50 * ms, r);
    EXPECT_TRUE(r.lost.empty()); // 0: 1 below the largest and within 9/8 RTT
    EXPECT_NE(sp.loss_time(), never);

    const ack_outcome o = sp.declare_all_lost(r);
    EXPECT_EQ(r.lost, (std::vector<std::uint64_t>{0, 2, 3, 4}));
    EXPECT_EQ(o.packets_lost, 4u);
    EXPECT_EQ(o.bytes_lost, 4800u);
    EXPECT_EQ(o.largest_lost_time_sent, 4 * ms);
    EXPECT_EQ(o.packets_acked, 0u);
    EXPECT_EQ(sp.packets_in_flight(), 0u);
    EXPECT_EQ(sp.bytes_in_flight(), 0u);
    EXPECT_EQ(sp.loss_time(), never);
    EXPECT_EQ(sp.pto_deadline(), never);
    EXPECT_TRUE(sp.can_send());

    // A late ACK for them finds nothing to acknowledge.
    const ack_outcome late = sp.on_ack(make_ack({{4, 0}}), 60 * ms, r);
    EXPECT_EQ(late.packets_acked, 0u);
    EXPECT_EQ(late.packets_lost, 0u);
    EXPECT_EQ(r.acked, (std::vector<std::uint64_t>{1}));
    EXPECT_EQ(sp.declare_all_lost(r).packets_lost, 0u);
}

TEST(sent_packets, ecn_ce_delta_counts_increases_only) {
    sent_packets sp;
    recorder r;
    send_n(sp, 3, 0, 1 * ms);
    EXPECT_EQ(sp.on_ack(make_ack({{0, 0}}, 0, 3), 20 * ms, r).ecn_ce_delta, 3u);
    EXPECT_EQ(sp.on_ack(make_ack({{2, 0}}, 0, 5), 21 * ms, r).ecn_ce_delta, 2u);
    EXPECT_EQ(sp.on_ack(make_ack({{1, 0}}, 0, 4), 22 * ms, r).ecn_ce_delta, 0u); // reordered
    EXPECT_EQ(sp.on_ack(make_ack({{2, 0}}, 0, 5), 23 * ms, r).ecn_ce_delta, 0u);
}

// A steady flow: one packet of `bytes` every `gap`, each ACK arriving `rtt` after the send of
// the newest packet it covers, one ACK per `ack_every` packets. Returns the min and max
// delivery-rate samples seen once the flow is past its first few round trips.
std::pair<std::uint64_t, std::uint64_t> steady_flow(std::uint32_t bytes, time_ns gap, time_ns rtt,
                                                    std::uint64_t ack_every) {
    sent_packets sp;
    recorder r;
    const std::uint64_t n = 4000;
    std::deque<std::pair<time_ns, std::uint64_t>> acks; // arrival, largest
    std::uint64_t lo = ~std::uint64_t{0}, hi = 0;
    auto deliver = [&](time_ns until) {
        while (!acks.empty() && acks.front().first <= until) {
            const auto [at, largest] = acks.front();
            acks.pop_front();
            const ack_outcome o = sp.on_ack(make_ack({{largest, 0}}), at, r);
            EXPECT_EQ(o.packets_acked, ack_every);
            if (at > 5 * rtt) {
                lo = std::min(lo, sp.delivery_rate_bps());
                hi = std::max(hi, sp.delivery_rate_bps());
            }
        }
    };
    for (std::uint64_t k = 0; k < n; ++k) {
        const time_ns now = k * gap;
        deliver(now);
        EXPECT_TRUE(sp.on_sent(now, bytes, true, {}));
        if ((k + 1) % ack_every == 0) {
            acks.emplace_back(now + rtt, k);
        }
    }
    deliver(never);
    EXPECT_TRUE(r.lost.empty());
    return {lo, hi};
}

TEST(sent_packets, delivery_rate_does_not_count_idle_time) {
    sent_packets sp;
    recorder r;
    send_n(sp, 1, 0, 0, 1000);
    sp.on_ack(make_ack({{0, 0}}), 20 * ms, r);
    EXPECT_EQ(sp.delivery_rate_bps(), 400'000u); // 8000 bits in 20 ms
    // A second of silence, then one packet: the sample spans its own round trip only.
    send_n(sp, 1, 1020 * ms, 0, 2000);
    sp.on_ack(make_ack({{1, 1}}), 1030 * ms, r);
    EXPECT_EQ(sp.delivery_rate_bps(), 1'600'000u); // 16000 bits in 10 ms
}

TEST(sent_packets, delivery_rate_on_steady_flow_within_one_percent) {
    EXPECT_EQ(sent_packets().delivery_rate_bps(), 0u);
    // 1500 B every 120 µs = 100 Mbit/s, 20 ms RTT, every packet acked.
    {
        const auto [lo, hi] = steady_flow(1500, 120 * us, 20 * ms, 1);
        EXPECT_GE(lo, 99'000'000u);
        EXPECT_LE(hi, 101'000'000u);
    }
    // 1200 B every 192 µs = 50 Mbit/s, 33 ms RTT, every second packet acked.
    {
        const auto [lo, hi] = steady_flow(1200, 192 * us, 33 * ms, 2);
        EXPECT_GE(lo, 49'500'000u);
        EXPECT_LE(hi, 50'500'000u);
    }
    // 9000 B every 72 µs = 1 Gbit/s, 1 ms RTT, every fourth packet acked.
    {
        const auto [lo, hi] = steady_flow(9000, 72 * us, 1 * ms, 4);
        EXPECT_GE(lo, 990'000'000u);
        EXPECT_LE(hi, 1'010'000'000u);
    }
}

// Sender and receiver of one path joined through the codec: a packet every ms, 10 ms one way,
// random drops and no reordering. Every dropped packet must be declared lost, every delivered
// one acked, nothing both, nothing twice.
TEST(sent_packets, with_ack_tracker_losses_match_drops_exactly) {
    for (std::uint32_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        sent_packets sp;
        ack_tracker rx(ack_policy{2, 5 * ms});
        recorder r;
        const time_ns one_way = 10 * ms;
        std::deque<std::pair<time_ns, std::uint64_t>> to_rx;     // arrival, seq
        std::deque<std::pair<time_ns, kdp::ack_frame>> to_tx;    // arrival, decoded ACK
        std::set<std::uint64_t> dropped;
        const std::uint64_t n = 2000;
        for (time_ns now = 0; now < (n + 1000) * ms; now += 100 * us) {
            while (!to_rx.empty() && to_rx.front().first <= now) {
                EXPECT_EQ(rx.on_packet(to_rx.front().second, true, false, now),
                          ack_tracker::verdict::fresh);
                to_rx.pop_front();
            }
            if (rx.ack_deadline() <= now) {
                kdp::control_frame c;
                c.type = kdp::control_type::ack;
                rx.build(c.ack, 0, now);
                std::array<std::uint8_t, kdp::max_control_payload> buf{};
                const std::size_t len = kdp::encode_control(c, buf);
                ASSERT_GT(len, 0u);
                kdp::control_frame d;
                ASSERT_EQ(kdp::decode_control(0, 0, buf.data(), len, &d), kdp::drop_reason::none);
                rx.on_ack_sent(now);
                to_tx.emplace_back(now + one_way, d.ack);
            }
            while (!to_tx.empty() && to_tx.front().first <= now) {
                const ack_outcome o = sp.on_ack(to_tx.front().second, now, r);
                EXPECT_FALSE(o.invalid);
                to_tx.pop_front();
            }
            if (sp.loss_time() <= now) {
                sp.on_loss_timer(now, r);
            }
            if (now % ms == 0 && sp.next_seq() < n) {
                const std::uint64_t seq = sp.next_seq();
                const sent_frame f = stream_frame(4, seq, 1);
                ASSERT_TRUE(sp.on_sent(now, 1200, true, {&f, 1}));
                if (rng() % 100 < 5) {
                    dropped.insert(seq);
                } else {
                    to_rx.emplace_back(now + one_way, seq);
                }
            }
        }
        // The tail: packets after the last delivered one are never acked; the PTO (the
        // caller's job) would probe for them. Everything else is resolved.
        std::set<std::uint64_t> lost(r.lost.begin(), r.lost.end());
        std::set<std::uint64_t> acked(r.acked.begin(), r.acked.end());
        EXPECT_EQ(lost.size(), r.lost.size()) << "lost twice";
        EXPECT_EQ(acked.size(), r.acked.size()) << "acked twice";
        std::uint64_t last_delivered = 0;
        for (std::uint64_t s = 0; s < n; ++s) {
            if (!dropped.contains(s)) {
                last_delivered = s;
            }
        }
        std::set<std::uint64_t> want_lost;
        for (const std::uint64_t s : dropped) {
            if (s < last_delivered) {
                want_lost.insert(s);
            }
        }
        EXPECT_EQ(lost, want_lost) << "seed " << seed;
        EXPECT_EQ(acked.size() + dropped.size(), n) << "seed " << seed;
        EXPECT_EQ(sp.packets_in_flight(), n - 1 - last_delivered);
        EXPECT_EQ(sp.rtt().min(), 2 * one_way);
        EXPECT_GT(r.lost.size(), 0u);
    }
}

} // namespace
} // namespace kwik::transport
