// The path table on EAL (--no-huge): bulk lookups, add/remove, refusals, and a reader thread
// looking paths up without locks while the writer adds and removes them (RCU reclamation).
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_lcore.h>

#include <atomic>
#include <thread>
#include <vector>

#include "dataplane/engine/path_table.hpp"

namespace kwik::engine {
namespace {

class eal_environment : public ::testing::Environment {
public:
    void SetUp() override {
        const char* argv[] = {"path_table_test", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
                              "--file-prefix=kwik_path_table_test", "--no-telemetry", "-l", "0", "--log-level=*:warning"};
        ASSERT_GE(rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)), 0);
    }
    void TearDown() override { rte_eal_cleanup(); }
};

five_tuple tuple_of(std::uint32_t i) {
    five_tuple t;
    t.protocol = 17;
    t.dst = ip_address::v4(0x0A000001);
    t.src = ip_address::v4(0x0A000000u | i);
    t.dst_port = 7707;
    t.src_port = static_cast<std::uint16_t>(40000 + (i % 1000));
    return t;
}

path_binding binding_of(std::uint32_t i) {
    return path_binding{static_cast<std::uint16_t>(i % 4), i / 8, 1000 + std::uint64_t{i}, tuple_of(i)};
}

TEST(path_table, bulk_lookup_add_remove) {
    std::string error;
    std::unique_ptr<path_table> t(path_table::create("kwik_pt_basic", 4096, 0, 1, &error));
    ASSERT_TRUE(t) << error;
    t->register_worker(0);
    for (std::uint32_t i = 0; i < 1000; ++i) {
        ASSERT_TRUE(t->add(binding_of(i), &error)) << error;
    }
    EXPECT_EQ(t->size(), 1000u);
    EXPECT_FALSE(t->add(binding_of(5), &error));
    EXPECT_NE(error.find("bound already"), std::string::npos) << error;

    std::vector<five_tuple> keys;
    for (std::uint32_t i = 990; i < 1022; ++i) {
        keys.push_back(tuple_of(i)); // 10 bound, 22 not
    }
    std::vector<const five_tuple*> ptrs;
    for (auto& k : keys) {
        ptrs.push_back(&k);
    }
    const path_binding* out[32];
    t->lookup_bulk(ptrs.data(), 32, out);
    for (std::uint32_t i = 0; i < 32; ++i) {
        if (990 + i < 1000) {
            ASSERT_NE(out[i], nullptr);
            EXPECT_EQ(out[i]->path, 1000u + 990 + i);
            EXPECT_EQ(out[i]->owner_worker, (990 + i) % 4);
            EXPECT_EQ(out[i]->tuple, keys[i]);
        } else {
            EXPECT_EQ(out[i], nullptr);
        }
    }
    EXPECT_TRUE(t->remove(tuple_of(995)));
    EXPECT_FALSE(t->remove(tuple_of(995)));
    t->quiescent(0);
    t->lookup_bulk(ptrs.data(), 32, out);
    EXPECT_EQ(out[5], nullptr);
    EXPECT_NE(out[4], nullptr);
    EXPECT_EQ(t->size(), 999u);
    t->offline(0);
}

TEST(path_table, lock_free_reader_sees_whole_bindings_while_the_writer_churns) {
    std::string error;
    std::unique_ptr<path_table> t(path_table::create("kwik_pt_churn", 1 << 14, 0, 1, &error));
    ASSERT_TRUE(t) << error;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> lookups{0}, hits{0}, torn{0};
    std::thread reader([&] {
        t->register_worker(0);
        std::vector<five_tuple> keys(32);
        std::vector<const five_tuple*> ptrs(32);
        std::uint32_t base = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            for (std::uint32_t i = 0; i < 32; ++i) {
                keys[i] = tuple_of((base + i) % 4096);
                ptrs[i] = &keys[i];
            }
            const path_binding* out[32];
            t->lookup_bulk(ptrs.data(), 32, out);
            for (std::uint32_t i = 0; i < 32; ++i) {
                if (out[i] != nullptr) {
                    hits.fetch_add(1, std::memory_order_relaxed);
                    const std::uint32_t k = (base + i) % 4096;
                    if (out[i]->path != 1000 + std::uint64_t{k} || !(out[i]->tuple == keys[i])) {
                        torn.fetch_add(1, std::memory_order_relaxed);
                    }
                }
            }
            lookups.fetch_add(32, std::memory_order_relaxed);
            base += 32;
            t->quiescent(0); // bindings read above are no longer referenced
        }
        t->offline(0);
    });
    // 200 rounds x 2048 adds through a 16 Ki-entry table: only possible if removed slots come
    // back, which they do only after the reader has passed a quiescent state.
    std::uint64_t add_failures = 0;
    for (int round = 0; round < 200; ++round) {
        for (std::uint32_t i = 0; i < 4096; i += 2) {
            std::string e;
            add_failures += t->add(binding_of(i + (round & 1)), &e) ? 0 : 1;
        }
        for (std::uint32_t i = 0; i < 4096; i += 2) {
            t->remove(tuple_of(i + (round & 1)));
        }
    }
    stop = true;
    reader.join();
    EXPECT_GT(lookups.load(), 10000u);
    EXPECT_GT(hits.load(), 0u);
    EXPECT_EQ(torn.load(), 0u);
    EXPECT_EQ(add_failures, 0u);
    EXPECT_EQ(t->size(), 0u);
}

} // namespace
} // namespace kwik::engine

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new kwik::engine::eal_environment);
    return RUN_ALL_TESTS();
}
