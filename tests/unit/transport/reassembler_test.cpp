// Tests for dataplane/transport/reassembler.*: overlap table, random permutations (ordered and
// unordered), FIN and final-size rules, reference counting, pool exhaustion, the AVL tree.
#include "dataplane/transport/reassembler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kwik::transport {
namespace {

// A buffer owner counting its references; the test's own reference is not counted.
struct test_owner {
    int refs = 0;
};

struct ref_counts {
    long retains = 0;
    long releases = 0;
};
ref_counts g_counts;

void count_retain(void* owner) noexcept {
    ++static_cast<test_owner*>(owner)->refs;
    ++g_counts.retains;
}
void count_release(void* owner) noexcept {
    --static_cast<test_owner*>(owner)->refs;
    ++g_counts.releases;
}
const buffer_ops counting_ops{count_retain, count_release};

// Frames whose bytes and owners outlive the reassembler under test.
class frame_store {
public:
    buffer_ref make(const std::string& bytes) {
        _bytes.push_back(bytes);
        _owners.emplace_back();
        const std::string& b = _bytes.back();
        return buffer_ref{reinterpret_cast<const std::uint8_t*>(b.data()), static_cast<std::uint32_t>(b.size()),
                          &_owners.back()};
    }
    bool all_released() const {
        return std::all_of(_owners.begin(), _owners.end(), [](const test_owner& o) { return o.refs == 0; });
    }
    int total_refs() const {
        int n = 0;
        for (const test_owner& o : _owners) {
            n += o.refs;
        }
        return n;
    }

private:
    std::deque<std::string> _bytes; // deque: stable addresses
    std::deque<test_owner> _owners;
};

using piece_list = std::vector<std::pair<std::uint64_t, std::string>>;

struct collecting_sink {
    piece_list* out;
    void operator()(std::uint64_t offset, buffer_ref piece) const {
        out->emplace_back(offset, std::string(reinterpret_cast<const char*>(piece.data), piece.len));
    }
};

struct frame_case {
    const char* description;
    std::vector<std::pair<std::uint64_t, std::string>> frames; // inserted in this order
    piece_list ordered;                                       // delivered pieces, ordered stream
    piece_list unordered;                                     // delivered pieces, unordered stream
    std::uint64_t ordered_buffered_after;                     // still held on the ordered stream
};

const std::vector<frame_case>& overlap_cases() {
    static const std::vector<frame_case> cases = {
        {"in order", {{0, "abc"}, {3, "def"}}, {{0, "abc"}, {3, "def"}}, {{0, "abc"}, {3, "def"}}, 0},
        {"exact duplicate: first copy wins", {{0, "abc"}, {0, "XYZ"}}, {{0, "abc"}}, {{0, "abc"}}, 0},
        {"reversed", {{3, "def"}, {0, "abc"}}, {{0, "abc"}, {3, "def"}}, {{3, "def"}, {0, "abc"}}, 0},
        {"overlap extends the end", {{0, "abcd"}, {2, "XXef"}}, {{0, "abcd"}, {4, "ef"}}, {{0, "abcd"}, {4, "ef"}}, 0},
        {"new frame around a held segment",
         {{2, "XX"}, {0, "abcdef"}},
         {{0, "ab"}, {2, "XX"}, {4, "ef"}},
         {{2, "XX"}, {0, "ab"}, {4, "ef"}},
         0},
        {"new frame across two held segments",
         {{2, "X"}, {5, "Y"}, {0, "abcdefgh"}},
         {{0, "ab"}, {2, "X"}, {3, "de"}, {5, "Y"}, {6, "gh"}},
         {{2, "X"}, {5, "Y"}, {0, "ab"}, {3, "de"}, {6, "gh"}},
         0},
        {"frame inside a held segment",
         {{2, "cdef"}, {3, "ZZ"}, {0, "ab"}},
         {{0, "ab"}, {2, "cdef"}},
         {{2, "cdef"}, {0, "ab"}},
         0},
        {"from inside one segment into another",
         {{2, "cd"}, {6, "gh"}, {3, "XXXXX"}, {0, "ab"}},
         {{0, "ab"}, {2, "cd"}, {4, "XX"}, {6, "gh"}},
         {{2, "cd"}, {6, "gh"}, {4, "XX"}, {0, "ab"}},
         0},
        {"adjacent segments, reversed",
         {{4, "ef"}, {2, "cd"}, {0, "ab"}},
         {{0, "ab"}, {2, "cd"}, {4, "ef"}},
         {{4, "ef"}, {2, "cd"}, {0, "ab"}},
         0},
        {"gap stays open", {{0, "ab"}, {4, "ef"}}, {{0, "ab"}}, {{0, "ab"}, {4, "ef"}}, 2},
        {"duplicate of a held out-of-order segment",
         {{4, "ef"}, {4, "XY"}, {3, "Zghi"}},
         {},
         {{4, "ef"}, {3, "Z"}, {6, "i"}},
         4},
        {"starts before the prefix",
         {{0, "abcd"}, {2, "XXefg"}, {1, "YYYYYYh"}},
         {{0, "abcd"}, {4, "efg"}, {7, "h"}},
         {{0, "abcd"}, {4, "efg"}, {7, "h"}},
         0},
        {"same start, longer",
         {{2, "cd"}, {2, "XXef"}, {0, "ab"}},
         {{0, "ab"}, {2, "cd"}, {4, "ef"}},
         {{2, "cd"}, {4, "ef"}, {0, "ab"}},
         0},
    };
    return cases;
}

TEST(reassembler_test, overlap_table_ordered) {
    for (const frame_case& c : overlap_cases()) {
        SCOPED_TRACE(c.description);
        frame_store store;
        segment_pool pool(64);
        {
            reassembler r(&counting_ops, &pool, true);
            for (const auto& [offset, bytes] : c.frames) {
                ASSERT_EQ(r.insert(offset, store.make(bytes), false), reassembly_error::none);
                ASSERT_TRUE(r.valid());
            }
            piece_list got;
            std::uint64_t expected_bytes = 0;
            for (const auto& p : c.ordered) {
                expected_bytes += p.second.size();
            }
            EXPECT_EQ(r.deliver(collecting_sink{&got}), expected_bytes);
            EXPECT_EQ(got, c.ordered);
            EXPECT_EQ(r.delivered_offset(), expected_bytes);
            EXPECT_EQ(r.buffered_bytes(), c.ordered_buffered_after);
            EXPECT_TRUE(r.valid());
        }
        EXPECT_TRUE(store.all_released());
        EXPECT_EQ(pool.in_use(), 0u);
    }
}

TEST(reassembler_test, overlap_table_unordered_delivers_after_each_frame) {
    for (const frame_case& c : overlap_cases()) {
        SCOPED_TRACE(c.description);
        frame_store store;
        segment_pool pool(64);
        {
            reassembler r(&counting_ops, &pool, false);
            piece_list got;
            for (const auto& [offset, bytes] : c.frames) {
                ASSERT_EQ(r.insert(offset, store.make(bytes), false), reassembly_error::none);
                ASSERT_TRUE(r.valid());
                r.deliver(collecting_sink{&got});
            }
            EXPECT_EQ(got, c.unordered);
            EXPECT_EQ(r.buffered_bytes(), 0u);
        }
        EXPECT_TRUE(store.all_released());
        EXPECT_EQ(pool.in_use(), 0u);
    }
}

TEST(reassembler_test, unordered_batches_pieces_in_arrival_order) {
    frame_store store;
    segment_pool pool(16);
    reassembler r(&counting_ops, &pool, false);
    ASSERT_EQ(r.insert(6, store.make("gh"), false), reassembly_error::none);
    ASSERT_EQ(r.insert(2, store.make("cd"), false), reassembly_error::none);
    ASSERT_EQ(r.insert(0, store.make("abXXef"), false), reassembly_error::none);
    EXPECT_EQ(r.buffered_bytes(), 8u);
    EXPECT_EQ(r.delivered_offset(), 8u); // unordered: contiguous prefix received
    piece_list got;
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 8u);
    EXPECT_EQ(got, (piece_list{{6, "gh"}, {2, "cd"}, {0, "ab"}, {4, "ef"}}));
}

TEST(reassembler_test, duplicate_of_delivered_data_is_ignored) {
    frame_store store;
    segment_pool pool(8);
    reassembler r(&counting_ops, &pool, true);
    piece_list got;
    ASSERT_EQ(r.insert(0, store.make("abc"), false), reassembly_error::none);
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 3u);
    ASSERT_EQ(r.insert(0, store.make("XYZ"), false), reassembly_error::none);
    EXPECT_EQ(r.buffered_bytes(), 0u);
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 0u);
    ASSERT_EQ(r.insert(1, store.make("XYZW"), false), reassembly_error::none);
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 2u);
    EXPECT_EQ(got, (piece_list{{0, "abc"}, {3, "ZW"}}));
    EXPECT_EQ(r.highest_received(), 5u);
    EXPECT_EQ(pool.in_use(), 0u);
}

// Splits [0, size) into frames of random lengths, adds duplicates and overlapping frames, all
// carrying the true bytes, and shuffles them.
std::vector<std::pair<std::uint64_t, std::uint32_t>> random_frames(std::mt19937_64& rng, std::uint32_t size) {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> frames;
    std::uint32_t at = 0;
    while (at < size) {
        const std::uint32_t len = std::min<std::uint32_t>(size - at, 1 + rng() % 200);
        frames.emplace_back(at, len);
        at += len;
    }
    const std::size_t splits = frames.size();
    for (std::size_t i = 0; i < splits / 2; ++i) {
        frames.push_back(frames[rng() % splits]); // duplicate
        const std::uint32_t a = rng() % size;
        const std::uint32_t len = std::min<std::uint32_t>(size - a, 1 + rng() % 400);
        frames.emplace_back(a, len); // overlapping
    }
    std::shuffle(frames.begin(), frames.end(), rng);
    return frames;
}

class random_reassembly : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(random_reassembly, permutations_reassemble_exactly) {
    const bool ordered = std::get<0>(GetParam());
    const bool direct = std::get<1>(GetParam()); // insert_and_deliver instead of insert + deliver
    std::mt19937_64 rng(ordered ? 11 : 12);
    for (int round = 0; round < 60; ++round) {
        SCOPED_TRACE(round);
        const std::uint32_t size = 1 + rng() % 6000;
        std::string stream(size, '\0');
        for (char& ch : stream) {
            ch = static_cast<char>('a' + rng() % 26);
        }
        const auto frames = random_frames(rng, size);
        // The frame reaching the end carries FIN (any of them may: they agree on the final size).
        std::deque<test_owner> owners(frames.size());
        const long retains_before = g_counts.retains;
        const long releases_before = g_counts.releases;
        segment_pool pool(4096);
        std::string assembled;
        std::vector<int> hits(size, 0); // unordered: each byte delivered exactly once
        std::uint64_t total = 0;
        {
            reassembler r(&counting_ops, &pool, ordered);
            auto sink = [&](std::uint64_t offset, buffer_ref piece) {
                ASSERT_LE(offset + piece.len, size);
                ASSERT_EQ(std::memcmp(piece.data, stream.data() + offset, piece.len), 0);
                if (ordered) {
                    ASSERT_EQ(offset, assembled.size());
                    assembled.append(reinterpret_cast<const char*>(piece.data), piece.len);
                }
                for (std::uint32_t i = 0; i < piece.len; ++i) {
                    ++hits[offset + i];
                }
                total += piece.len;
            };
            for (std::size_t i = 0; i < frames.size(); ++i) {
                const auto [offset, len] = frames[i];
                const buffer_ref ref{reinterpret_cast<const std::uint8_t*>(stream.data()) + offset, len, &owners[i]};
                const bool fin = offset + len == size;
                if (direct) {
                    ASSERT_EQ(r.insert_and_deliver(offset, ref, fin, sink), reassembly_error::none);
                } else {
                    ASSERT_EQ(r.insert(offset, ref, fin), reassembly_error::none);
                    if (rng() % 3 == 0) {
                        r.deliver(sink);
                    }
                }
                if (i % 16 == 0) {
                    ASSERT_TRUE(r.valid());
                }
            }
            r.deliver(sink);
            ASSERT_TRUE(r.valid());
            EXPECT_TRUE(r.complete());
            EXPECT_EQ(r.delivered_offset(), size);
            EXPECT_EQ(r.highest_received(), size);
            EXPECT_EQ(r.buffered_bytes(), 0u);
            EXPECT_EQ(pool.in_use(), 0u);
        }
        EXPECT_EQ(total, size);
        EXPECT_TRUE(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
        if (ordered) {
            EXPECT_EQ(assembled, stream);
        }
        EXPECT_EQ(g_counts.retains - retains_before, g_counts.releases - releases_before);
        EXPECT_TRUE(std::all_of(owners.begin(), owners.end(), [](const test_owner& o) { return o.refs == 0; }));
    }
}

INSTANTIATE_TEST_SUITE_P(modes, random_reassembly,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& test_param) {
                             return std::string(std::get<0>(test_param.param) ? "ordered" : "unordered") +
                                    (std::get<1>(test_param.param) ? "_direct" : "_buffered");
                         });

TEST(reassembler_test, destroyed_with_data_held_releases_everything) {
    for (bool ordered : {true, false}) {
        frame_store store;
        segment_pool pool(64);
        const long retains_before = g_counts.retains;
        const long releases_before = g_counts.releases;
        {
            reassembler r(&counting_ops, &pool, ordered);
            ASSERT_EQ(r.insert(0, store.make("abc"), false), reassembly_error::none);
            ASSERT_EQ(r.insert(10, store.make("klm"), false), reassembly_error::none);
            ASSERT_EQ(r.insert(5, store.make("fghijklmnop"), false), reassembly_error::none); // 2 new pieces
            EXPECT_EQ(store.total_refs(), 4);
            EXPECT_EQ(r.buffered_bytes(), 3u + 3u + 5u + 3u);
            EXPECT_GT(pool.in_use(), 0u);
        }
        EXPECT_TRUE(store.all_released());
        EXPECT_EQ(g_counts.retains - retains_before, 4);
        EXPECT_EQ(g_counts.releases - releases_before, 4);
        EXPECT_EQ(pool.in_use(), 0u);
    }
}

TEST(reassembler_test, fin_and_final_size_rules) {
    frame_store store;
    segment_pool pool(16);
    reassembler r(&counting_ops, &pool, true);
    ASSERT_EQ(r.insert(5, store.make("fghij"), true), reassembly_error::none);
    EXPECT_TRUE(r.has_final_size());
    EXPECT_EQ(r.final_size(), 10u);
    EXPECT_FALSE(r.complete());
    // Past the final size: rejected, nothing taken.
    EXPECT_EQ(r.insert(8, store.make("XYZ"), false), reassembly_error::beyond_final_size);
    EXPECT_EQ(r.insert(10, store.make("X"), false), reassembly_error::beyond_final_size);
    EXPECT_EQ(r.highest_received(), 10u);
    EXPECT_EQ(r.buffered_bytes(), 5u);
    // Another final size.
    EXPECT_EQ(r.insert(0, store.make("abc"), true), reassembly_error::final_size_changed);
    EXPECT_EQ(r.insert(11, buffer_ref{}, true), reassembly_error::final_size_changed);
    // The same final size again, and data ending exactly there: fine.
    EXPECT_EQ(r.insert(10, buffer_ref{}, true), reassembly_error::none);
    EXPECT_EQ(r.insert(7, store.make("hij"), false), reassembly_error::none);
    EXPECT_EQ(r.insert(0, store.make("abcde"), false), reassembly_error::none);
    piece_list got;
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 10u);
    EXPECT_EQ(got, (piece_list{{0, "abcde"}, {5, "fghij"}}));
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(store.total_refs(), 0);
}

TEST(reassembler_test, final_size_below_received_data) {
    for (bool ordered : {true, false}) {
        frame_store store;
        segment_pool pool(16);
        reassembler r(&counting_ops, &pool, ordered);
        ASSERT_EQ(r.insert(10, store.make("klmno"), false), reassembly_error::none);
        EXPECT_EQ(r.insert(0, store.make("abc"), true), reassembly_error::beyond_final_size);
        EXPECT_EQ(r.insert(14, buffer_ref{}, true), reassembly_error::beyond_final_size);
        EXPECT_FALSE(r.has_final_size());
        EXPECT_EQ(r.buffered_bytes(), 5u);
        EXPECT_EQ(store.total_refs(), 1);
        EXPECT_EQ(r.insert(15, buffer_ref{}, true), reassembly_error::none);
        EXPECT_EQ(r.final_size(), 15u);
    }
}

TEST(reassembler_test, fin_only_and_empty_stream) {
    segment_pool pool(4);
    {
        reassembler r(&counting_ops, &pool, true);
        EXPECT_EQ(r.insert(0, buffer_ref{}, true), reassembly_error::none);
        EXPECT_TRUE(r.complete());
        EXPECT_EQ(r.final_size(), 0u);
    }
    for (bool ordered : {true, false}) {
        frame_store store;
        reassembler r(&counting_ops, &pool, ordered);
        EXPECT_EQ(r.insert(4, buffer_ref{}, true), reassembly_error::none); // FIN before the data
        EXPECT_EQ(pool.in_use(), 0u);
        EXPECT_EQ(r.highest_received(), 4u);
        EXPECT_FALSE(r.complete());
        EXPECT_EQ(r.insert(0, store.make("abcd"), false), reassembly_error::none);
        EXPECT_FALSE(r.complete()); // received, not delivered
        piece_list got;
        EXPECT_EQ(r.deliver(collecting_sink{&got}), 4u);
        EXPECT_TRUE(r.complete());
    }
    // Empty non-FIN frames change nothing.
    reassembler r(&counting_ops, &pool, true);
    EXPECT_EQ(r.insert(100, buffer_ref{}, false), reassembly_error::none);
    EXPECT_EQ(r.highest_received(), 0u);
}

TEST(reassembler_test, pool_exhaustion_ordered_takes_nothing) {
    frame_store store;
    segment_pool pool(3);
    {
        reassembler r(&counting_ops, &pool, true);
        ASSERT_EQ(r.insert(10, store.make("k"), false), reassembly_error::none);
        ASSERT_EQ(r.insert(20, store.make("u"), false), reassembly_error::none);
        ASSERT_EQ(r.insert(30, store.make("E"), false), reassembly_error::none);
        EXPECT_EQ(pool.in_use(), 3u);
        EXPECT_EQ(r.insert(40, store.make("O"), false), reassembly_error::out_of_segments);
        EXPECT_EQ(r.insert(0, store.make("abc"), false), reassembly_error::out_of_segments);
        // A duplicate needs no node.
        EXPECT_EQ(r.insert(20, store.make("X"), false), reassembly_error::none);
        EXPECT_EQ(r.buffered_bytes(), 3u);
        EXPECT_EQ(r.highest_received(), 31u);
        EXPECT_EQ(store.total_refs(), 3);
        EXPECT_TRUE(r.valid());
    }
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_TRUE(store.all_released());
}

TEST(reassembler_test, pool_exhaustion_partial_fit_is_all_or_nothing) {
    frame_store store;
    segment_pool pool(4);
    reassembler r(&counting_ops, &pool, true);
    ASSERT_EQ(r.insert(2, store.make("c"), false), reassembly_error::none);
    ASSERT_EQ(r.insert(4, store.make("e"), false), reassembly_error::none);
    // [0, 7) has three gaps: 0-2, 3-4, 5-7; two nodes are free.
    const buffer_ref wide = store.make("abXdXfg");
    EXPECT_EQ(r.insert(0, wide, false), reassembly_error::out_of_segments);
    EXPECT_EQ(static_cast<test_owner*>(wide.owner)->refs, 0);
    EXPECT_EQ(r.buffered_bytes(), 2u);
    EXPECT_EQ(r.delivered_offset(), 0u);
    // With a node freed by delivery the same frame fits.
    ASSERT_EQ(r.insert(0, store.make("ab"), false), reassembly_error::none);
    piece_list got;
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 3u);
    EXPECT_EQ(pool.in_use(), 1u);
    EXPECT_EQ(r.insert(0, wide, false), reassembly_error::none); // gaps now: 3-4, 5-7
    EXPECT_EQ(r.deliver(collecting_sink{&got}), 4u);
    EXPECT_EQ(got, (piece_list{{0, "ab"}, {2, "c"}, {3, "d"}, {4, "e"}, {5, "fg"}}));
}

TEST(reassembler_test, pool_exhaustion_unordered_counts_coverage) {
    frame_store store;
    segment_pool pool(2);
    reassembler r(&counting_ops, &pool, false);
    ASSERT_EQ(r.insert(10, store.make("k"), false), reassembly_error::none); // piece + coverage range
    EXPECT_EQ(pool.in_use(), 2u);
    piece_list got;
    r.deliver(collecting_sink{&got});
    EXPECT_EQ(pool.in_use(), 1u); // the coverage range stays
    EXPECT_EQ(r.insert(20, store.make("u"), false), reassembly_error::out_of_segments); // needs a new range
    EXPECT_EQ(r.insert(11, store.make("l"), false), reassembly_error::none); // extends the range
    EXPECT_EQ(r.insert(9, store.make("j"), false), reassembly_error::out_of_segments); // piece held: 0 free
    r.deliver(collecting_sink{&got});
    EXPECT_EQ(r.insert(9, store.make("j"), false), reassembly_error::none); // lowers the range's start
    r.deliver(collecting_sink{&got});
    EXPECT_EQ(r.insert(0, store.make("abcdefghi"), false), reassembly_error::none); // joins the prefix
    r.deliver(collecting_sink{&got});
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_EQ(r.delivered_offset(), 12u);
    EXPECT_EQ(got, (piece_list{{10, "k"}, {11, "l"}, {9, "j"}, {0, "abcdefghi"}}));
    EXPECT_TRUE(r.valid());
}

TEST(reassembler_test, in_order_direct_delivery_needs_no_pool_and_no_references) {
    frame_store store;
    segment_pool pool(0);
    const long retains_before = g_counts.retains;
    reassembler r(&counting_ops, &pool, true);
    piece_list got;
    collecting_sink sink{&got};
    EXPECT_EQ(r.insert_and_deliver(0, store.make("abc"), false, sink), reassembly_error::none);
    EXPECT_EQ(r.insert_and_deliver(1, store.make("XYde"), false, sink), reassembly_error::none);
    EXPECT_EQ(r.insert_and_deliver(5, store.make("f"), true, sink), reassembly_error::none);
    EXPECT_EQ(got, (piece_list{{0, "abc"}, {3, "de"}, {5, "f"}}));
    EXPECT_TRUE(r.complete());
    EXPECT_EQ(g_counts.retains, retains_before);
    // Out of order needs a node: none left.
    reassembler r2(&counting_ops, &pool, true);
    EXPECT_EQ(r2.insert_and_deliver(3, store.make("d"), false, sink), reassembly_error::out_of_segments);
    EXPECT_EQ(r2.highest_received(), 0u); // the refused frame left no trace
    EXPECT_EQ(r2.insert_and_deliver(0, store.make("abc"), true, sink), reassembly_error::none);
    EXPECT_TRUE(r2.complete());
}

TEST(reassembler_test, refusing_sink_keeps_pieces) {
    frame_store store;
    segment_pool pool(8);
    reassembler r(&counting_ops, &pool, true);
    ASSERT_EQ(r.insert(4, store.make("ef"), false), reassembly_error::none);
    ASSERT_EQ(r.insert(0, store.make("ab"), false), reassembly_error::none);
    ASSERT_EQ(r.insert(2, store.make("cd"), false), reassembly_error::none);
    piece_list got;
    int budget = 2;
    auto sink = [&](std::uint64_t offset, buffer_ref piece) -> bool {
        if (budget == 0) {
            return false;
        }
        --budget;
        got.emplace_back(offset, std::string(reinterpret_cast<const char*>(piece.data), piece.len));
        return true;
    };
    EXPECT_EQ(r.deliver(sink), 4u);
    EXPECT_EQ(r.buffered_bytes(), 2u);
    EXPECT_EQ(r.delivered_offset(), 4u);
    budget = 5;
    EXPECT_EQ(r.deliver(sink), 2u);
    EXPECT_EQ(got, (piece_list{{0, "ab"}, {2, "cd"}, {4, "ef"}}));
    // A refused direct delivery falls back to buffering.
    budget = 0;
    EXPECT_EQ(r.insert_and_deliver(6, store.make("gh"), false, sink), reassembly_error::none);
    EXPECT_EQ(r.buffered_bytes(), 2u);
    budget = 1;
    EXPECT_EQ(r.deliver(sink), 2u);
    EXPECT_EQ(got.back(), (std::pair<std::uint64_t, std::string>{6, "gh"}));
    EXPECT_EQ(pool.in_use(), 0u);
}

TEST(reassembler_test, move_and_reset_keep_references_balanced) {
    frame_store store;
    segment_pool pool(8);
    {
        reassembler a(&counting_ops, &pool, true);
        ASSERT_EQ(a.insert(3, store.make("def"), false), reassembly_error::none);
        ASSERT_EQ(a.insert(0, store.make("a"), false), reassembly_error::none);
        reassembler b(std::move(a));
        EXPECT_EQ(a.buffered_bytes(), 0u);
        EXPECT_EQ(b.buffered_bytes(), 4u);
        EXPECT_EQ(store.total_refs(), 2);
        reassembler c(&counting_ops, &pool, false);
        ASSERT_EQ(c.insert(0, store.make("zz"), false), reassembly_error::none);
        c = std::move(b); // releases c's own holdings
        EXPECT_EQ(store.total_refs(), 2);
        EXPECT_TRUE(c.ordered());
        piece_list got;
        EXPECT_EQ(c.deliver(collecting_sink{&got}), 1u);
        c.reset();
        EXPECT_EQ(store.total_refs(), 0);
        EXPECT_EQ(c.delivered_offset(), 0u);
        EXPECT_FALSE(c.has_final_size());
        ASSERT_EQ(c.insert(0, store.make("new"), true), reassembly_error::none);
    }
    EXPECT_TRUE(store.all_released());
    EXPECT_EQ(pool.in_use(), 0u);
}

TEST(reassembler_test, many_out_of_order_segments) {
    // Every other byte first, in random order (10 000 nodes in the tree), then the rest.
    constexpr std::uint32_t size = 20000;
    std::string stream(size, '\0');
    std::mt19937_64 rng(5);
    for (char& ch : stream) {
        ch = static_cast<char>('A' + rng() % 26);
    }
    std::vector<std::uint32_t> odd;
    std::vector<std::uint32_t> even;
    for (std::uint32_t i = 0; i < size; ++i) {
        (i % 2 != 0 ? odd : even).push_back(i);
    }
    std::shuffle(odd.begin(), odd.end(), rng);
    std::shuffle(even.begin(), even.end(), rng);
    test_owner owner;
    segment_pool pool(size);
    std::string assembled;
    {
        reassembler r(&counting_ops, &pool, true);
        auto insert_byte = [&](std::uint32_t i) {
            const buffer_ref ref{reinterpret_cast<const std::uint8_t*>(stream.data()) + i, 1, &owner};
            ASSERT_EQ(r.insert(i, ref, i == size - 1), reassembly_error::none);
        };
        for (std::uint32_t i : odd) {
            insert_byte(i);
        }
        EXPECT_EQ(pool.in_use(), size / 2);
        EXPECT_TRUE(r.valid());
        for (std::uint32_t i : even) {
            insert_byte(i);
            if (rng() % 64 == 0) {
                r.deliver([&](std::uint64_t, buffer_ref p) { assembled.append(reinterpret_cast<const char*>(p.data), p.len); });
            }
        }
        EXPECT_TRUE(r.valid());
        r.deliver([&](std::uint64_t, buffer_ref p) { assembled.append(reinterpret_cast<const char*>(p.data), p.len); });
        EXPECT_TRUE(r.complete());
    }
    EXPECT_EQ(assembled, stream);
    EXPECT_EQ(owner.refs, 0);
}

// The tree alone, against std::set: inserts and erases anywhere, shape checked throughout.
TEST(segment_tree_test, random_inserts_and_erases_stay_balanced) {
    std::mt19937_64 rng(3);
    std::vector<detail::segment> nodes(3000);
    detail::segment_tree tree;
    std::set<std::uint64_t> model;
    std::map<std::uint64_t, detail::segment*> by_key;
    std::vector<detail::segment*> in_tree;
    std::vector<detail::segment*> spare;
    for (auto& n : nodes) {
        spare.push_back(&n);
    }
    for (int step = 0; step < 20000; ++step) {
        if (!spare.empty() && (in_tree.empty() || rng() % 3 != 0)) {
            std::uint64_t key;
            do {
                key = (rng() % 100000) * 2;
            } while (model.count(key) != 0);
            detail::segment* s = spare.back();
            spare.pop_back();
            s->start = key;
            s->end = key + 1;
            if (rng() % 2 == 0) {
                tree.insert(s);
            } else {
                // Linked in beside its successor, as the reassembler does, without a descent.
                const auto succ = model.upper_bound(key);
                tree.insert_before(s, succ == model.end() ? nullptr : by_key.at(*succ));
            }
            model.insert(key);
            by_key[key] = s;
            in_tree.push_back(s);
        } else {
            const std::size_t i = rng() % in_tree.size();
            detail::segment* s = in_tree[i];
            in_tree[i] = in_tree.back();
            in_tree.pop_back();
            tree.erase(s);
            model.erase(s->start);
            by_key.erase(s->start);
            spare.push_back(s);
        }
        if (step % 97 == 0) {
            ASSERT_TRUE(tree.valid());
            std::vector<std::uint64_t> keys;
            for (detail::segment* s = tree.first(); s != nullptr; s = detail::segment_tree::next(s)) {
                keys.push_back(s->start);
            }
            ASSERT_EQ(keys, std::vector<std::uint64_t>(model.begin(), model.end()));
            const std::uint64_t probe = rng() % 200002;
            const auto it = model.upper_bound(probe);
            detail::segment* f = tree.floor(probe);
            if (it == model.begin()) {
                ASSERT_EQ(f, nullptr);
            } else {
                ASSERT_NE(f, nullptr);
                ASSERT_EQ(f->start, *std::prev(it));
            }
            // Height stays logarithmic: AVL bound 1.44 log2(n + 2).
            if (tree.root() != nullptr) {
                ASSERT_LE(tree.root()->height, 1.45 * std::log2(model.size() + 2.0) + 1);
            }
        }
    }
    int released = 0;
    tree.clear([&](detail::segment*) { ++released; });
    EXPECT_EQ(released, static_cast<int>(model.size()));
    EXPECT_TRUE(tree.empty());
}

} // namespace
} // namespace kwik::transport
