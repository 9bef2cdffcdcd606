// The owner's timer wheel of connections: idle connections cost nothing per tick, only at their
// own timers (keep-alives); a busy one is run when its wakeup is due and re-armed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "dataplane/transport/connection_wheel.hpp"
#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::transport {
namespace {

struct counting_sink {
    std::uint64_t packets = 0;
    static void transmit(void* ctx, path_id, std::span<const std::uint8_t>) {
        ++static_cast<counting_sink*>(ctx)->packets;
    }
};

connection_config lean() {
    connection_config c;
    c.tx_ops = &heap_buffer_ops;
    c.rx_ops = &heap_buffer_ops;
    c.loss.packet_capacity = 64;
    c.loss.frame_capacity = 256;
    c.reassembly_segments = 16;
    c.max_streams = 4;
    c.idle_timeout = 60 * sec;
    return c;
}

// Pairs of connections wired back to back: what one transmits, its peer receives at the next
// poll. Idle pairs only exchange keep-alives (PATH_CHALLENGE, PATH_RESPONSE, ACK).
struct wire {
    struct datagram {
        connection* to;
        std::vector<std::uint8_t> bytes;
    };
    std::vector<datagram> queue;
    std::uint64_t packets = 0;
};

struct end_point {
    wire* w;
    connection* peer = nullptr;
    static void transmit(void* ctx, path_id, std::span<const std::uint8_t> bytes) {
        auto* e = static_cast<end_point*>(ctx);
        ++e->w->packets;
        e->w->queue.push_back({e->peer, {bytes.begin(), bytes.end()}});
    }
};

TEST(connection_wheel, idle_connections_cost_nothing_per_tick) {
    constexpr std::size_t pairs = 1000;
    constexpr time_ns tick = 100 * us;
    wire w;
    connection_wheel wheel(tick, 0);
    std::vector<std::unique_ptr<end_point>> ends;
    std::vector<std::unique_ptr<connection>> conns;
    for (std::size_t i = 0; i < 2 * pairs; ++i) {
        ends.push_back(std::make_unique<end_point>(end_point{&w}));
        connection_callbacks cb;
        cb.ctx = ends.back().get();
        cb.transmit = end_point::transmit;
        connection_config c = lean();
        c.side = i % 2 == 0 ? role::client : role::server;
        conns.push_back(std::make_unique<connection>(c, cb, 0));
        conns.back()->add_path(1, 0);
    }
    for (std::size_t i = 0; i < 2 * pairs; ++i) {
        ends[i]->peer = conns[i ^ 1].get();
        ASSERT_TRUE(wheel.add(*conns[i]));
    }
    // 10 s in 100 us ticks: 100,000 polls over 2000 connections.
    std::uint64_t ran = 0;
    std::uint64_t ticks = 0;
    for (time_ns now = tick; now <= 10 * sec; now += tick) {
        ran += wheel.poll(now);
        ++ticks;
        std::vector<wire::datagram> arrived;
        arrived.swap(w.queue);
        for (auto& d : arrived) {
            heap_buffer* b = heap_buffer::make(d.bytes.size());
            std::copy(d.bytes.begin(), d.bytes.end(), b->data());
            d.to->on_datagram(1, {b->data(), d.bytes.size()}, b, false, now);
            heap_buffer_release(b);
            d.to->flush(now);
            wheel.touch(*d.to);
        }
    }
    for (const auto& c : conns) {
        EXPECT_FALSE(c->closed());
        EXPECT_EQ(c->paths()[0].status, path_status::active);
    }
    // About one keep-alive round per connection per second (a challenge, and an ACK delayed by
    // max_ack_delay): a handful of wakeups per second each, against 10,000 ticks per second.
    std::printf("%zu connections, %llu ticks: %llu wakeups, %llu packets, %llu timer moves\n", 2 * pairs,
                (unsigned long long)ticks, (unsigned long long)ran, (unsigned long long)w.packets,
                (unsigned long long)wheel.stats().moved);
    EXPECT_GE(ran, 2 * pairs * 9);
    EXPECT_LE(ran, 2 * pairs * 10 * 5);
    EXPECT_LE(wheel.stats().moved, ran * 4);
    for (auto& c : conns) {
        EXPECT_TRUE(wheel.remove(*c));
    }
    EXPECT_EQ(wheel.size(), 0u);
}

TEST(connection_wheel, busy_connection_runs_when_due_and_is_rearmed) {
    counting_sink sink;
    connection_callbacks cb;
    cb.ctx = &sink;
    cb.transmit = counting_sink::transmit;
    connection_wheel wheel(100 * us, 0);
    connection c(lean(), cb, 0);
    c.add_path(1, 0);
    ASSERT_TRUE(wheel.add(c));
    const stream_id id = c.open_stream({});
    heap_buffer* b = heap_buffer::make(64 * 1024);
    ASSERT_TRUE(c.write(id, {b->data(), 64 * 1024, b}));
    heap_buffer_release(b);
    wheel.touch(c); // data queued: due now
    EXPECT_EQ(wheel.poll(100 * us), 1u);
    EXPECT_GE(sink.packets, 8u); // the initial window (10 x 1200 B) went out in 1400 B packets
    // Nothing is acknowledged: the probe timeout brings it back later, not every tick.
    std::size_t runs = 0;
    for (time_ns now = 200 * us; now <= 200 * ms; now += 100 * us) {
        runs += wheel.poll(now);
    }
    EXPECT_GE(runs, 1u);
    EXPECT_LE(runs, 20u);
}

} // namespace
} // namespace kwik::transport
