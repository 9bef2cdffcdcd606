// ACK tracker: the received-range set against a std::set model under random arrival orders
// (loss, reordering, duplication, range-set overflow), every built ACK through the codec, the
// ACK timing rules (threshold, max_ack_delay, immediate on a gap) and too_old.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/transport/ack_tracker.hpp"

namespace kwik::transport {
namespace {

using verdict = ack_tracker::verdict;

// Encodes the ACK, decodes it and checks the decoder reproduces it exactly.
kdp::ack_frame codec_round_trip(const kdp::ack_frame& a) {
    kdp::control_frame c;
    c.type = kdp::control_type::ack;
    c.ack = a;
    std::array<std::uint8_t, kdp::max_control_payload> buf{};
    const std::size_t n = kdp::encode_control(c, buf);
    EXPECT_GT(n, 0u);
    kdp::control_frame d;
    EXPECT_EQ(kdp::decode_control(kdp::control_stream_id(c), kdp::control_offset(c), buf.data(), n, &d),
              kdp::drop_reason::none);
    EXPECT_EQ(d.ack.range_count, a.range_count);
    EXPECT_EQ(d.ack.path_id, a.path_id);
    EXPECT_EQ(d.ack.ack_delay_us, a.ack_delay_us);
    EXPECT_EQ(d.ack.ecn_ce, a.ecn_ce);
    for (std::size_t i = 0; i < std::min(d.ack.range_count, a.range_count); ++i) {
        EXPECT_EQ(d.ack.ranges[i].largest, a.ranges[i].largest) << "range " << i;
        EXPECT_EQ(d.ack.ranges[i].smallest, a.ranges[i].smallest) << "range " << i;
    }
    return d.ack;
}

// Reference model: the set of received numbers, bounded like the tracker (forget the lowest
// range beyond 64; a new isolated lowest range of a full set is refused as too_old).
struct model {
    std::set<std::uint64_t> got;
    std::uint64_t floor = 0;

    std::vector<kdp::ack_range> ranges() const { // descending
        std::vector<kdp::ack_range> out;
        for (auto it = got.rbegin(); it != got.rend(); ++it) {
            if (!out.empty() && out.back().smallest == *it + 1) {
                out.back().smallest = *it;
            } else {
                out.push_back({*it, *it});
            }
        }
        return out;
    }

    std::size_t range_count = 0;

    verdict receive(std::uint64_t seq) {
        if (seq < floor) {
            return verdict::too_old;
        }
        if (!got.insert(seq).second) {
            return verdict::duplicate;
        }
        // A new number joins 0, 1 or 2 neighbouring ranges.
        range_count += 1;
        range_count -= static_cast<std::size_t>(seq > 0 && got.contains(seq - 1));
        range_count -= static_cast<std::size_t>(got.contains(seq + 1));
        if (range_count > ack_tracker::range_capacity) {
            // The lowest range: from the smallest number up to its first gap.
            const std::uint64_t low_smallest = *got.begin();
            std::uint64_t low_largest = low_smallest;
            while (got.contains(low_largest + 1)) {
                ++low_largest;
            }
            if (low_smallest == seq && low_largest == seq) {
                got.erase(seq);
                --range_count;
                return verdict::too_old;
            }
            for (std::uint64_t s = low_smallest; s <= low_largest; ++s) {
                got.erase(s);
            }
            --range_count;
            floor = low_largest + 1;
        }
        return verdict::fresh;
    }
};

void expect_matches(const ack_tracker& t, const model& m, time_ns now) {
    const std::vector<kdp::ack_range> want = m.ranges();
    ASSERT_EQ(t.range_count(), want.size());
    kdp::ack_frame a;
    t.build(a, 7, now);
    ASSERT_EQ(a.range_count, std::min(want.size(), kdp::max_ack_ranges + 1));
    for (std::size_t i = 0; i < a.range_count; ++i) {
        ASSERT_EQ(a.ranges[i].largest, want[i].largest) << "range " << i;
        ASSERT_EQ(a.ranges[i].smallest, want[i].smallest) << "range " << i;
    }
    EXPECT_EQ(t.largest(), want.front().largest);
    codec_round_trip(a);
}

TEST(ack_tracker, random_arrival_orders_match_set_model) {
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        const std::uint64_t n = 3000;
        // Local reordering: shuffle within windows of random size; ~4% lost, ~3% duplicated,
        // duplicates arriving up to 200 packets late.
        std::vector<std::uint64_t> order;
        for (std::uint64_t base = 0; base < n;) {
            const std::uint64_t w = 1 + rng() % 12;
            std::vector<std::uint64_t> window;
            for (std::uint64_t s = base; s < std::min(n, base + w); ++s) {
                if (rng() % 100 >= 4) {
                    window.push_back(s);
                }
            }
            std::shuffle(window.begin(), window.end(), rng);
            order.insert(order.end(), window.begin(), window.end());
            base += w;
        }
        for (std::size_t i = 0; i < order.size(); i += 1 + rng() % 40) {
            const std::size_t late = std::min(order.size(), i + 1 + rng() % 200);
            const std::uint64_t copy = order[i];
            order.insert(order.begin() + static_cast<std::ptrdiff_t>(late), copy);
        }

        ack_tracker t;
        model m;
        time_ns now = 0;
        std::size_t fresh = 0, dup = 0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            now += 10 * us;
            const verdict want = m.receive(order[i]);
            // lookup records nothing (on_packet still matches the model after it) and agrees
            // with on_packet, except that a number below every range of a full set looks fresh.
            const verdict seen = t.lookup(order[i]);
            const verdict got = t.on_packet(order[i], true, false, now);
            ASSERT_EQ(got, want) << "seed " << seed << " packet " << i << " seq " << order[i];
            if (got != verdict::too_old || seen != verdict::fresh) {
                ASSERT_EQ(seen, got) << "seed " << seed << " packet " << i << " seq " << order[i];
            }
            fresh += got == verdict::fresh;
            dup += got == verdict::duplicate;
            if (i % 41 == 0) {
                expect_matches(t, m, now);
                if (testing::Test::HasFatalFailure()) {
                    FAIL() << "seed " << seed << " packet " << i;
                }
            }
        }
        expect_matches(t, m, now);
        // The scenario must exercise all three verdicts and the range-set bound.
        EXPECT_GT(fresh, 0u);
        EXPECT_GT(dup, 0u);
        EXPECT_GT(m.floor, 0u) << "seed " << seed << ": range set never overflowed";
    }
}

TEST(ack_tracker, in_order_packets_make_one_range) {
    ack_tracker t;
    for (std::uint64_t s = 0; s < 1000; ++s) {
        EXPECT_EQ(t.on_packet(s, true, false, s * us), verdict::fresh);
    }
    EXPECT_EQ(t.range_count(), 1u);
    kdp::ack_frame a;
    t.build(a, 3, 1000 * us);
    ASSERT_EQ(a.range_count, 1u);
    EXPECT_EQ(a.ranges[0].largest, 999u);
    EXPECT_EQ(a.ranges[0].smallest, 0u);
    EXPECT_EQ(a.path_id, 3u);
    EXPECT_EQ(a.ack_delay_us, 1u); // largest arrived at 999 µs
    codec_round_trip(a);
}

TEST(ack_tracker, merges_gap_fill_and_reports_only_top_33_ranges) {
    ack_tracker t;
    // Even numbers only: 40 ranges of one.
    for (std::uint64_t s = 0; s < 80; s += 2) {
        EXPECT_EQ(t.on_packet(s, true, false, 0), verdict::fresh);
    }
    EXPECT_EQ(t.range_count(), 40u);
    kdp::ack_frame a;
    t.build(a, 0, 0);
    ASSERT_EQ(a.range_count, kdp::max_ack_ranges + 1);
    EXPECT_EQ(a.ranges[0].largest, 78u);
    EXPECT_EQ(a.ranges[32].largest, 78u - 64);
    codec_round_trip(a);
    // Filling 77 joins [76] and [78].
    EXPECT_EQ(t.on_packet(77, true, false, 0), verdict::fresh);
    EXPECT_EQ(t.range_count(), 39u);
    t.build(a, 0, 0);
    EXPECT_EQ(a.ranges[0].largest, 78u);
    EXPECT_EQ(a.ranges[0].smallest, 76u);
    EXPECT_EQ(t.on_packet(77, true, false, 0), verdict::duplicate);
    EXPECT_EQ(t.on_packet(76, true, false, 0), verdict::duplicate);
}

TEST(ack_tracker, full_range_set_forgets_lowest_and_old_packets_are_too_old) {
    ack_tracker t;
    for (std::uint64_t s = 10; s < 10 + 2 * ack_tracker::range_capacity; s += 2) {
        ASSERT_EQ(t.on_packet(s, false, false, 0), verdict::fresh);
    }
    ASSERT_EQ(t.range_count(), ack_tracker::range_capacity);
    // Below every range of a full set, not adjacent: cannot be tracked.
    EXPECT_EQ(t.on_packet(3, true, false, 0), verdict::too_old);
    // Adjacent to the lowest range: extends it, no new range needed.
    EXPECT_EQ(t.on_packet(9, true, false, 0), verdict::fresh);
    EXPECT_EQ(t.range_count(), ack_tracker::range_capacity);
    // One more gap at the top forgets [9, 10]: 10 and below are now too_old.
    const std::uint64_t top = 10 + 2 * ack_tracker::range_capacity; // 138 (136 was the last)
    EXPECT_EQ(t.on_packet(top, true, false, 0), verdict::fresh);
    EXPECT_EQ(t.range_count(), ack_tracker::range_capacity);
    EXPECT_EQ(t.on_packet(10, true, false, 0), verdict::too_old);
    EXPECT_EQ(t.on_packet(9, true, false, 0), verdict::too_old);
    EXPECT_EQ(t.on_packet(0, true, false, 0), verdict::too_old);
    // Filling 13 joins [12] and [14]: one slot free again, yet 10 stays too_old (the floor,
    // not the full set, refuses it).
    EXPECT_EQ(t.on_packet(13, true, false, 0), verdict::fresh);
    EXPECT_EQ(t.range_count(), ack_tracker::range_capacity - 1);
    EXPECT_EQ(t.on_packet(10, true, false, 0), verdict::too_old);
    // 11 was never received and is above the forgotten range: it joins [12, 14].
    EXPECT_EQ(t.on_packet(11, true, false, 0), verdict::fresh);
    EXPECT_EQ(t.range_count(), ack_tracker::range_capacity - 1);
    EXPECT_EQ(t.largest(), top);
}

TEST(ack_tracker, threshold_makes_ack_due_at_once) {
    ack_tracker t(ack_policy{2, 5 * ms});
    EXPECT_FALSE(t.ack_pending());
    EXPECT_EQ(t.ack_deadline(), never);

    t.on_packet(0, true, false, 100 * us);
    EXPECT_TRUE(t.ack_pending());
    EXPECT_EQ(t.ack_deadline(), 100 * us + 5 * ms);

    t.on_packet(1, true, false, 300 * us);
    EXPECT_EQ(t.ack_deadline(), 300 * us);

    t.on_ack_sent(400 * us);
    EXPECT_FALSE(t.ack_pending());
    EXPECT_EQ(t.ack_deadline(), never);
    EXPECT_EQ(t.last_ack_sent(), 400 * us);

    // The next one starts a new max_ack_delay window from its own arrival.
    t.on_packet(2, true, false, 1 * ms);
    EXPECT_EQ(t.ack_deadline(), 6 * ms);
}

TEST(ack_tracker, threshold_of_one_acks_every_packet) {
    ack_tracker t(ack_policy{1, 25 * ms});
    t.on_packet(0, true, false, 7 * us);
    EXPECT_EQ(t.ack_deadline(), 7 * us);
}

TEST(ack_tracker, non_eliciting_packets_never_make_an_ack_due) {
    ack_tracker t(ack_policy{1, 5 * ms});
    EXPECT_EQ(t.on_packet(0, false, false, 0), verdict::fresh);
    EXPECT_EQ(t.on_packet(5, false, false, 0), verdict::fresh); // a gap, but ACK-only
    EXPECT_FALSE(t.ack_pending());
    EXPECT_EQ(t.ack_deadline(), never);
    // They are still reported when an ACK goes out.
    kdp::ack_frame a;
    t.build(a, 1, 0);
    ASSERT_EQ(a.range_count, 2u);
    EXPECT_EQ(a.ranges[0].largest, 5u);
    EXPECT_EQ(a.ranges[1].largest, 0u);
}

TEST(ack_tracker, gap_or_reorder_makes_ack_due_at_once) {
    ack_tracker t(ack_policy{10, 5 * ms});
    t.on_packet(0, true, false, 1 * ms);
    EXPECT_EQ(t.ack_deadline(), 6 * ms);
    t.on_packet(1, true, false, 2 * ms);
    EXPECT_EQ(t.ack_deadline(), 6 * ms); // in order, below threshold: unchanged
    t.on_packet(3, true, false, 3 * ms); // 2 missing
    EXPECT_EQ(t.ack_deadline(), 3 * ms);
    t.on_ack_sent(3 * ms);

    t.on_packet(4, true, false, 4 * ms); // in order again
    EXPECT_EQ(t.ack_deadline(), 9 * ms);
    t.on_packet(2, true, false, 5 * ms); // late arrival below the largest
    EXPECT_EQ(t.ack_deadline(), 5 * ms);
    t.on_ack_sent(5 * ms);

    // The first packet of a path that is not 0 means 0.. were lost.
    ack_tracker u(ack_policy{10, 5 * ms});
    u.on_packet(2, true, false, 1 * ms);
    EXPECT_EQ(u.ack_deadline(), 1 * ms);
}

TEST(ack_tracker, duplicates_change_nothing) {
    ack_tracker t(ack_policy{10, 5 * ms});
    t.on_packet(0, true, true, 1 * ms);
    t.on_ack_sent(1 * ms);
    EXPECT_EQ(t.on_packet(0, true, true, 2 * ms), verdict::duplicate);
    EXPECT_FALSE(t.ack_pending());
    kdp::ack_frame a;
    t.build(a, 0, 3 * ms);
    EXPECT_EQ(a.ecn_ce, 1u);          // the duplicate's CE mark is not counted
    EXPECT_EQ(a.ack_delay_us, 2000u); // measured from the first arrival
}

TEST(ack_tracker, ack_delay_and_ecn_count) {
    ack_tracker t;
    t.on_packet(0, true, true, 1 * ms);
    t.on_packet(2, true, false, 2 * ms);
    t.on_packet(1, true, true, 3 * ms); // late: not the largest, delay still from 2's arrival
    kdp::ack_frame a;
    t.build(a, 9, 2 * ms + 1250 * us);
    EXPECT_EQ(a.ack_delay_us, 1250u);
    EXPECT_EQ(a.ecn_ce, 2u);
    EXPECT_EQ(a.path_id, 9u);
    ASSERT_EQ(a.range_count, 1u);
    EXPECT_EQ(a.ranges[0].largest, 2u);
    EXPECT_EQ(a.ranges[0].smallest, 0u);
    // A clock read before the arrival (caller skew) reports 0, never a huge value.
    t.build(a, 9, 1 * ms);
    EXPECT_EQ(a.ack_delay_us, 0u);
    const kdp::ack_frame d = codec_round_trip(a);
    EXPECT_EQ(d.largest(), 2u);
}

TEST(ack_tracker, nothing_received_builds_no_ranges) {
    const ack_tracker t;
    kdp::ack_frame a;
    t.build(a, 0, 0);
    EXPECT_EQ(a.range_count, 0u);
    EXPECT_EQ(t.largest(), 0u);
}

} // namespace
} // namespace kwik::transport
