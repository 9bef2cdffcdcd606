// Tests for dataplane/transport/send_buffer.* (and range_set.hpp, which it is built on):
// chunking, flow limit, retransmit-first, acked-prefix freeing, FIN-only chunks, lost-after-acked,
// bounded bookkeeping overflow, reference counting, and a random lossy transfer into a reassembler.
#include "dataplane/transport/send_buffer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "dataplane/transport/range_set.hpp"
#include "dataplane/transport/reassembler.hpp"

namespace kwik::transport {
namespace {

struct test_owner {
    int refs = 0;
};
long g_retains = 0;
long g_releases = 0;
void count_retain(void* owner) noexcept {
    ++static_cast<test_owner*>(owner)->refs;
    ++g_retains;
}
void count_release(void* owner) noexcept {
    --static_cast<test_owner*>(owner)->refs;
    ++g_releases;
}
const buffer_ops counting_ops{count_retain, count_release};

class write_store {
public:
    buffer_ref make(const std::string& bytes) {
        _bytes.push_back(bytes);
        _owners.emplace_back();
        const std::string& b = _bytes.back();
        return buffer_ref{reinterpret_cast<const std::uint8_t*>(b.data()), static_cast<std::uint32_t>(b.size()),
                          &_owners.back()};
    }
    int refs(std::size_t i) const { return _owners[i].refs; }
    int total_refs() const {
        int n = 0;
        for (const test_owner& o : _owners) {
            n += o.refs;
        }
        return n;
    }

private:
    std::deque<std::string> _bytes;
    std::deque<test_owner> _owners;
};

using chunk = send_buffer::chunk;

bool same(const chunk& a, const chunk& b) {
    return a.offset == b.offset && a.length == b.length && a.fin == b.fin && a.retransmit == b.retransmit;
}

// Takes and marks sent every chunk available, returning them.
std::vector<chunk> drain(send_buffer& b, std::uint32_t max_len, std::uint64_t flow_limit) {
    std::vector<chunk> out;
    chunk c{};
    while (b.next_chunk(max_len, flow_limit, c)) {
        out.push_back(c);
        b.on_sent(c);
        if (out.size() > 1000) {
            break;
        }
    }
    return out;
}

::testing::AssertionResult chunks_are(const std::vector<chunk>& got, const std::vector<chunk>& want) {
    auto show = [](const std::vector<chunk>& v) {
        std::string s;
        for (const chunk& c : v) {
            s += "{" + std::to_string(c.offset) + "," + std::to_string(c.length) + (c.fin ? ",fin" : "") +
                 (c.retransmit ? ",rtx" : "") + "} ";
        }
        return s;
    };
    if (got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin(), same)) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "got " << show(got) << "want " << show(want);
}

std::string bytes_of(const send_buffer& b, std::uint64_t offset, std::uint32_t length) {
    std::string s;
    b.for_each_piece(offset, length, [&](const std::uint8_t* p, std::uint32_t n) {
        s += '[';
        s.append(reinterpret_cast<const char*>(p), n);
        s += ']';
    });
    return s;
}

TEST(range_set_test, add_merges_and_reports_full) {
    range_set s(3);
    ASSERT_TRUE(s.add(10, 20));
    ASSERT_TRUE(s.add(30, 40));
    ASSERT_TRUE(s.add(20, 25)); // touches: merges
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].start, 10u);
    EXPECT_EQ(s[0].end, 25u);
    ASSERT_TRUE(s.add(0, 5));
    EXPECT_FALSE(s.add(50, 60)); // needs a fourth slot
    EXPECT_EQ(s.size(), 3u);
    ASSERT_TRUE(s.add(4, 31)); // swallows everything up to 40
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].start, 0u);
    EXPECT_EQ(s[0].end, 40u);
    EXPECT_TRUE(s.contains(39));
    EXPECT_FALSE(s.contains(40));
}

TEST(range_set_test, remove_splits_trims_and_refuses_when_full) {
    range_set s(2);
    ASSERT_TRUE(s.add(0, 100));
    ASSERT_TRUE(s.remove(40, 60)); // split
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].end, 40u);
    EXPECT_EQ(s[1].start, 60u);
    EXPECT_FALSE(s.remove(10, 20)); // would need a third slot
    EXPECT_EQ(s[0].start, 0u);
    EXPECT_EQ(s[0].end, 40u);
    ASSERT_TRUE(s.remove(30, 70)); // trims both
    EXPECT_EQ(s[0].end, 30u);
    EXPECT_EQ(s[1].start, 70u);
    s.remove_below(75);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].start, 75u);
    ASSERT_TRUE(s.remove(0, 1000));
    EXPECT_TRUE(s.empty());
}

TEST(range_set_test, add_or_widen_joins_the_nearest_neighbour) {
    range_set s(2);
    s.add_or_widen(0, 1);
    s.add_or_widen(4, 5);
    s.add_or_widen(8, 9); // nearest: [4,5) (gap 3)
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[1].start, 4u);
    EXPECT_EQ(s[1].end, 9u);
    s.add_or_widen(2, 3); // gap 1 to [0,1), 1 to [4,9): left wins ties
    EXPECT_EQ(s[0].end, 3u);
    EXPECT_EQ(s[1].start, 4u);
}

TEST(range_set_test, random_against_bitmap) {
    std::mt19937_64 rng(9);
    range_set s(64);
    std::vector<bool> model(2000, false);
    for (int step = 0; step < 20000; ++step) {
        const std::uint64_t a = rng() % 2000;
        const std::uint64_t b = std::min<std::uint64_t>(2000, a + 1 + rng() % 50);
        if (rng() % 2 == 0) {
            if (s.add(a, b)) {
                std::fill(model.begin() + a, model.begin() + b, true);
            }
        } else if (s.remove(a, b)) {
            std::fill(model.begin() + a, model.begin() + b, false);
        }
        if (step % 50 == 0) {
            std::vector<bool> seen(2000, false);
            for (std::uint32_t i = 0; i < s.size(); ++i) {
                ASSERT_LT(s[i].start, s[i].end);
                if (i > 0) {
                    ASSERT_GT(s[i].start, s[i - 1].end); // disjoint and not touching
                }
                std::fill(seen.begin() + s[i].start, seen.begin() + s[i].end, true);
            }
            ASSERT_EQ(seen, model);
        }
    }
}

TEST(send_buffer_test, chunks_new_data_and_serialises_across_pieces) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcd")));
    ASSERT_TRUE(b.write(store.make("efgh")));
    ASSERT_TRUE(b.write(store.make("ij")));
    EXPECT_EQ(b.written(), 10u);
    EXPECT_EQ(store.total_refs(), 3);
    EXPECT_TRUE(chunks_are(drain(b, 4, 100), {{0, 4, false, false}, {4, 4, false, false}, {8, 2, false, false}}));
    EXPECT_EQ(b.sent_offset(), 10u);
    EXPECT_EQ(bytes_of(b, 2, 7), "[cd][efgh][i]");
    EXPECT_EQ(bytes_of(b, 4, 4), "[efgh]");
    EXPECT_EQ(bytes_of(b, 9, 1), "[j]");
    EXPECT_FALSE(b.has_data_to_send(100));
}

TEST(send_buffer_test, flow_limit_bounds_new_data) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcdefghij")));
    EXPECT_TRUE(chunks_are(drain(b, 4, 6), {{0, 4, false, false}, {4, 2, false, false}}));
    EXPECT_FALSE(b.has_data_to_send(6));
    EXPECT_TRUE(b.has_data_to_send(7));
    b.finish();
    EXPECT_TRUE(chunks_are(drain(b, 100, 10), {{6, 4, true, false}})); // FIN rides on the last data
    EXPECT_FALSE(b.has_data_to_send(10));
}

TEST(send_buffer_test, retransmits_lost_ranges_first) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcdefghijklmnop")));
    EXPECT_TRUE(chunks_are(drain(b, 4, 8), {{0, 4, false, false}, {4, 4, false, false}}));
    b.on_lost(4, 4, false);
    b.on_lost(0, 4, false);
    EXPECT_EQ(b.lost_bytes(), 8u);
    EXPECT_TRUE(b.has_data_to_send(8)); // flow limit does not hold back retransmissions
    // Merged [0,8) comes back in max_len pieces, lowest first, before any new data.
    EXPECT_TRUE(chunks_are(drain(b, 3, 16), {{0, 3, false, true},
                                             {3, 3, false, true},
                                             {6, 2, false, true},
                                             {8, 3, false, false},
                                             {11, 3, false, false},
                                             {14, 2, false, false}}));
    EXPECT_EQ(b.lost_bytes(), 0u);
}

TEST(send_buffer_test, chunk_not_marked_sent_is_offered_again) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcdefgh")));
    chunk c{};
    ASSERT_TRUE(b.next_chunk(8, 100, c));
    ASSERT_TRUE(b.next_chunk(5, 100, c)); // did not fit: ask again, smaller
    EXPECT_TRUE(same(c, {0, 5, false, false}));
    c.length = 3; // the connection shortened it further
    b.on_sent(c);
    EXPECT_EQ(b.sent_offset(), 3u);
    ASSERT_TRUE(b.next_chunk(100, 100, c));
    EXPECT_TRUE(same(c, {3, 5, false, false}));
}

TEST(send_buffer_test, acked_prefix_frees_whole_pieces_only) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcd"))); // 0..4
    ASSERT_TRUE(b.write(store.make("efgh"))); // 4..8
    ASSERT_TRUE(b.write(store.make("ij")));   // 8..10
    b.finish();
    drain(b, 2, 100);
    b.on_acked(0, 2, false);
    EXPECT_EQ(b.acked_prefix(), 2u);
    EXPECT_EQ(store.refs(0), 1); // half acked: still held
    b.on_acked(2, 2, false);
    EXPECT_EQ(store.refs(0), 0);
    EXPECT_EQ(b.buffered_bytes(), 6u);
    b.on_acked(6, 2, false); // out of order
    EXPECT_EQ(b.acked_prefix(), 4u);
    EXPECT_EQ(store.refs(1), 1);
    b.on_acked(4, 2, false);
    EXPECT_EQ(b.acked_prefix(), 8u);
    EXPECT_EQ(store.refs(1), 0);
    EXPECT_EQ(b.pieces_held(), 1u);
    EXPECT_EQ(bytes_of(b, 8, 2), "[ij]");
    EXPECT_FALSE(b.all_acked());
    b.on_acked(8, 2, true);
    EXPECT_TRUE(b.all_acked());
    EXPECT_EQ(store.total_refs(), 0);
    EXPECT_EQ(b.buffered_bytes(), 0u);
}

TEST(send_buffer_test, fin_only_chunk_and_its_loss) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abc")));
    EXPECT_TRUE(chunks_are(drain(b, 100, 100), {{0, 3, false, false}}));
    b.finish();
    EXPECT_TRUE(b.has_data_to_send(3)); // a FIN needs no credit
    EXPECT_TRUE(chunks_are(drain(b, 100, 3), {{3, 0, true, false}}));
    EXPECT_FALSE(b.has_data_to_send(100));
    b.on_acked(0, 3, false);
    b.on_lost(3, 0, true);
    EXPECT_TRUE(chunks_are(drain(b, 100, 3), {{3, 0, true, true}}));
    EXPECT_FALSE(b.all_acked());
    b.on_acked(3, 0, true);
    EXPECT_TRUE(b.all_acked());
    b.on_lost(3, 0, true); // a late loss report of the acked FIN
    EXPECT_FALSE(b.has_data_to_send(100));
    EXPECT_FALSE(b.write(store.make("late"))); // after finish
}

TEST(send_buffer_test, lost_fin_rides_on_retransmitted_data) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcdef")));
    b.finish();
    EXPECT_TRUE(chunks_are(drain(b, 3, 100), {{0, 3, false, false}, {3, 3, true, false}}));
    b.on_lost(3, 3, true);
    EXPECT_TRUE(chunks_are(drain(b, 3, 100), {{3, 3, true, true}}));
    EXPECT_FALSE(b.has_data_to_send(100));
}

TEST(send_buffer_test, lost_after_acked_is_not_resent) {
    write_store store;
    send_buffer b(&counting_ops, 1000);
    ASSERT_TRUE(b.write(store.make("abcdefghij")));
    drain(b, 4, 100);
    b.on_acked(0, 4, false);
    b.on_lost(0, 4, false); // late loss report of acked data
    EXPECT_FALSE(b.has_data_to_send(100));
    // Partly acked: only the unacked parts come back.
    b.on_acked(5, 2, false);
    b.on_lost(4, 6, false);
    EXPECT_TRUE(chunks_are(drain(b, 100, 100), {{4, 1, false, true}, {7, 3, false, true}}));
    // Acked while queued for retransmission.
    b.on_lost(7, 3, false);
    b.on_acked(7, 2, false);
    EXPECT_TRUE(chunks_are(drain(b, 100, 100), {{9, 1, false, true}}));
}

TEST(send_buffer_test, write_respects_max_buffered_and_pieces) {
    write_store store;
    send_buffer b(&counting_ops, 10, 3);
    ASSERT_TRUE(b.write(store.make("abcdefgh")));
    EXPECT_FALSE(b.write(store.make("ijk"))); // 11 > 10: nothing taken
    EXPECT_EQ(store.refs(1), 0);
    EXPECT_TRUE(b.write(store.make("ij")));
    EXPECT_TRUE(b.write(store.make(""))); // empty: accepted, nothing held
    EXPECT_EQ(b.pieces_held(), 2u);
    drain(b, 100, 100);
    b.on_acked(0, 4, false); // piece 0 not wholly acked: still counts as a piece
    EXPECT_TRUE(b.write(store.make("k")));
    EXPECT_FALSE(b.write(store.make("l"))); // 3 pieces held
    b.on_acked(4, 4, false);
    EXPECT_TRUE(b.write(store.make("l")));
    EXPECT_EQ(b.buffered_bytes(), 4u);
}

TEST(send_buffer_test, acked_set_overflow_requeues_instead_of_losing_bytes) {
    write_store store;
    send_buffer b(&counting_ops, 1000, 0, 2);
    ASSERT_TRUE(b.write(store.make("abcdefghij")));
    drain(b, 1, 100);
    b.on_acked(1, 1, false);
    b.on_acked(7, 1, false);
    b.on_acked(3, 1, false); // no room: the highest acked range [7,8) is queued as lost, [3,4) kept
    b.on_acked(5, 1, false); // no room, and above every kept range: [5,6) itself is queued
    ASSERT_EQ(b.acked_ranges().size(), 2u);
    EXPECT_EQ(b.acked_ranges()[1].start, 3u);
    EXPECT_EQ(b.lost_ranges().size(), 2u);
    EXPECT_EQ(b.lost_ranges()[0].start, 5u);
    EXPECT_EQ(b.lost_ranges()[1].start, 7u);
    // Retransmitted, acknowledged again, and every byte gets freed in the end.
    EXPECT_TRUE(chunks_are(drain(b, 100, 100), {{5, 1, false, true}, {7, 1, false, true}}));
    for (std::uint64_t i = 0; i < 10; ++i) {
        b.on_acked(i, 1, false);
    }
    EXPECT_EQ(b.acked_prefix(), 10u);
    EXPECT_EQ(store.total_refs(), 0);
}

TEST(send_buffer_test, lost_set_overflow_widens_and_skips_acked_bytes) {
    write_store store;
    send_buffer b(&counting_ops, 1000, 0, 2);
    ASSERT_TRUE(b.write(store.make("abcdefghij")));
    drain(b, 1, 100);
    b.on_acked(5, 1, false);
    b.on_lost(0, 1, false);
    b.on_lost(3, 1, false);
    b.on_lost(8, 1, false); // widened over [4,8), which holds the acked byte 5
    ASSERT_EQ(b.lost_ranges().size(), 2u);
    EXPECT_EQ(b.lost_ranges()[1].start, 3u);
    EXPECT_EQ(b.lost_ranges()[1].end, 9u);
    // The acked byte is not resent.
    EXPECT_TRUE(chunks_are(drain(b, 100, 100), {{0, 1, false, true}, {3, 2, false, true}, {6, 3, false, true}}));
}

TEST(send_buffer_test, destruction_and_move_release_every_reference) {
    write_store store;
    const long retains_before = g_retains;
    const long releases_before = g_releases;
    {
        send_buffer a(&counting_ops, 1000);
        ASSERT_TRUE(a.write(store.make("abc")));
        ASSERT_TRUE(a.write(store.make("def")));
        send_buffer b(std::move(a));
        EXPECT_EQ(store.total_refs(), 2);
        send_buffer c(&counting_ops, 1000);
        ASSERT_TRUE(c.write(store.make("x")));
        c = std::move(b);
        EXPECT_EQ(store.total_refs(), 2);
        EXPECT_EQ(c.written(), 6u);
        EXPECT_EQ(bytes_of(c, 1, 4), "[bc][de]");
    }
    EXPECT_EQ(store.total_refs(), 0);
    EXPECT_EQ(g_retains - retains_before, 3);
    EXPECT_EQ(g_releases - releases_before, 3);
}

// A lossy, reordering link between a send_buffer and a reassembler: every byte arrives exactly,
// the sender ends all_acked with nothing held, and references balance.
TEST(send_buffer_test, random_lossy_transfer_into_reassembler) {
    for (std::uint32_t ranges : {2u, 64u}) { // 2: the overflow paths run often
        SCOPED_TRACE(ranges);
        std::mt19937_64 rng(ranges);
        std::string stream;
        write_store store;
        segment_pool pool(4096);
        std::string received;
        {
            send_buffer tx(&counting_ops, 1u << 20, 0, ranges);
            reassembler rx(&counting_ops, &pool, true);
            std::deque<std::string> frame_bytes; // stable addresses: the reassembler points into them
            std::deque<test_owner> frame_owners;
            std::vector<std::pair<chunk, std::string>> in_flight;
            constexpr std::uint64_t window = 4000;
            std::uint64_t flow_limit = window;
            int writes = 0;
            for (int step = 0; step < 20000 && !tx.all_acked(); ++step) {
                const int action = static_cast<int>(rng() % 10);
                if (action == 0 && writes < 60) {
                    std::string w(1 + rng() % 300, '\0');
                    for (char& ch : w) {
                        ch = static_cast<char>('a' + rng() % 26);
                    }
                    if (tx.write(store.make(w))) {
                        stream += w;
                        if (++writes == 60) {
                            tx.finish();
                        }
                    }
                } else if (action <= 4) {
                    chunk c{};
                    if (tx.next_chunk(static_cast<std::uint32_t>(1 + rng() % 60), flow_limit, c)) {
                        // Serialised when sent, as the wire would: the bytes may be freed by the
                        // time this copy arrives (an earlier copy acknowledged).
                        std::string copy;
                        tx.for_each_piece(c.offset, c.length, [&](const std::uint8_t* p, std::uint32_t n) {
                            copy.append(reinterpret_cast<const char*>(p), n);
                        });
                        ASSERT_EQ(copy.size(), c.length);
                        tx.on_sent(c);
                        in_flight.push_back({c, std::move(copy)});
                    }
                } else if (!in_flight.empty()) {
                    const std::size_t i = rng() % in_flight.size();
                    const chunk c = in_flight[i].first;
                    std::string copy = std::move(in_flight[i].second);
                    in_flight[i] = std::move(in_flight.back());
                    in_flight.pop_back();
                    const int fate = static_cast<int>(rng() % 10);
                    if (fate < 3) {
                        tx.on_lost(c.offset, c.length, c.fin);
                        continue;
                    }
                    // Delivered, then acknowledged, or its ack lost and the chunk declared lost
                    // although it arrived.
                    frame_owners.emplace_back();
                    frame_bytes.push_back(copy);
                    const buffer_ref ref{reinterpret_cast<const std::uint8_t*>(frame_bytes.back().data()), c.length,
                                         &frame_owners.back()};
                    ASSERT_EQ(rx.insert(c.offset, ref, c.fin), reassembly_error::none);
                    rx.deliver([&](std::uint64_t, buffer_ref p) {
                        received.append(reinterpret_cast<const char*>(p.data), p.len);
                    });
                    flow_limit = rx.delivered_offset() + window;
                    if (fate == 3) {
                        tx.on_lost(c.offset, c.length, c.fin);
                    } else {
                        tx.on_acked(c.offset, c.length, c.fin);
                    }
                }
            }
            EXPECT_TRUE(tx.all_acked());
            EXPECT_TRUE(rx.complete());
            EXPECT_EQ(tx.pieces_held(), 0u);
            rx.reset();
            EXPECT_TRUE(std::all_of(frame_owners.begin(), frame_owners.end(),
                                    [](const test_owner& o) { return o.refs == 0; }));
        }
        EXPECT_EQ(received, stream);
        EXPECT_EQ(store.total_refs(), 0);
    }
}

} // namespace
} // namespace kwik::transport
