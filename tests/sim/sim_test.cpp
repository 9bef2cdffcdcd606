// Tests of the deterministic network simulator itself: event order, link timing, rate, queue,
// loss, reordering, duplication, blackouts, ECN, a shared bottleneck, wakeups and replay.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <vector>

#include "tests/sim/event_loop.hpp"
#include "tests/sim/link.hpp"
#include "tests/sim/network.hpp"
#include "tests/sim/trace.hpp"

namespace kwik::sim {
namespace {

void put_u64(std::uint8_t* p, std::uint64_t v)
{
    for (int i = 0; i < 8; ++i) {
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
    }
}

std::uint64_t get_u64(const std::uint8_t* p)
{
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    }
    return v;
}

// Sends `count` datagrams of `size` (>= 16) bytes on `path`, one every `interval` from `start`;
// each carries its sequence number and send time.
class cbr_sender final : public endpoint {
public:
    cbr_sender(node_handle h, std::size_t path, std::size_t size, time_ns interval, std::uint64_t count,
               time_ns start = 0, bool ect = false)
        : _h(h), _path(path), _size(size), _interval(interval), _count(count), _next(start), _ect(ect)
    {
    }

    void on_datagram(std::size_t, std::span<const std::uint8_t>, bool, time_ns) override {}
    time_ns next_wakeup() const override { return _sent < _count ? _next : never; }
    void on_wakeup(time_ns now) override
    {
        std::vector<std::uint8_t> buf(_size);
        while (_sent < _count && _next <= now) {
            put_u64(buf.data(), _sent);
            put_u64(buf.data() + 8, now);
            std::fill(buf.begin() + 16, buf.end(), static_cast<std::uint8_t>(_sent));
            _h.send(_path, buf, _ect);
            ++_sent;
            _next += _interval;
        }
    }
    [[nodiscard]] std::uint64_t sent() const { return _sent; }

private:
    node_handle _h;
    std::size_t _path;
    std::size_t _size;
    time_ns _interval;
    std::uint64_t _count;
    time_ns _next;
    bool _ect;
    std::uint64_t _sent = 0;
};

struct arrival {
    std::uint64_t seq;
    time_ns sent_at;
    time_ns at;
    std::size_t path;
    std::size_t size;
    bool ce;
};

// Records every datagram; never wakes up.
class counting_receiver final : public endpoint {
public:
    void on_datagram(std::size_t path, std::span<const std::uint8_t> bytes, bool ecn_ce, time_ns now) override
    {
        arrivals.push_back(arrival{get_u64(bytes.data()), get_u64(bytes.data() + 8), now, path, bytes.size(), ecn_ce});
    }
    time_ns next_wakeup() const override { return never; }
    void on_wakeup(time_ns) override {}

    [[nodiscard]] std::uint64_t bytes_between(time_ns from, time_ns to, std::size_t path = SIZE_MAX) const
    {
        std::uint64_t n = 0;
        for (const arrival& a : arrivals) {
            if (a.at >= from && a.at < to && (path == SIZE_MAX || a.path == path)) {
                n += a.size;
            }
        }
        return n;
    }
    [[nodiscard]] std::uint64_t inversions() const
    {
        // Datagrams that arrive after one with a higher sequence number.
        std::uint64_t n = 0;
        std::uint64_t max_seen = 0;
        bool any = false;
        for (const arrival& a : arrivals) {
            if (any && a.seq < max_seen) {
                ++n;
            }
            max_seen = any ? std::max(max_seen, a.seq) : a.seq;
            any = true;
        }
        return n;
    }

    std::vector<arrival> arrivals;
};

time_ns interval_for(std::uint64_t bytes, std::uint64_t rate_bps)
{
    return bytes * 8 * sec / rate_bps;
}

// Two nodes, one path with the given forward link and a clean reverse link.
struct two_nodes {
    explicit two_nodes(const link_config& fwd, std::uint64_t seed = 1) : net(loop, seed)
    {
        a = net.add_node();
        b = net.add_node();
        path = net.add_path(a, b, fwd, link_config{});
    }
    link& forward() { return net.link_at(net.path(path).forward.front()); }

    event_loop loop;
    network net;
    node_id a = 0;
    node_id b = 0;
    std::size_t path = 0;
};

// ---------------------------------------------------------------------------------------------
// event_loop

TEST(sim_event_loop, runs_by_time_then_insertion_order)
{
    event_loop loop;
    std::vector<int> order;
    loop.schedule(20, [&] { order.push_back(3); });
    loop.schedule(10, [&] { order.push_back(1); });
    loop.schedule(10, [&] { order.push_back(2); });
    loop.schedule(20, [&] { order.push_back(4); });
    loop.schedule(5, [&] {
        order.push_back(0);
        loop.schedule(10, [&] { order.push_back(5); }); // same time as 1 and 2, inserted later
    });
    loop.run_until(never);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 5, 3, 4}));
    EXPECT_EQ(loop.now(), 20u);
    EXPECT_EQ(loop.events_run(), 6u);
    EXPECT_EQ(loop.pending(), 0u);
}

TEST(sim_event_loop, run_until_stops_at_limit_and_advances_time)
{
    event_loop loop;
    int ran = 0;
    loop.schedule(100, [&] { ++ran; });
    loop.schedule(101, [&] { ++ran; });
    loop.run_until(100);
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(loop.now(), 100u);
    loop.run_until(50); // never goes back
    EXPECT_EQ(loop.now(), 100u);
    loop.run_until(1000);
    EXPECT_EQ(ran, 2);
    EXPECT_EQ(loop.now(), 1000u);
}

TEST(sim_event_loop, run_while_reports_why_it_stopped)
{
    event_loop loop;
    int n = 0;
    for (time_ns t = 1; t <= 10; ++t) {
        loop.schedule(t * 10, [&] { ++n; });
    }
    EXPECT_TRUE(loop.run_while([&] { return n < 3; }, never));
    EXPECT_EQ(n, 3);
    EXPECT_EQ(loop.now(), 30u);
    EXPECT_FALSE(loop.run_while([&] { return n < 100; }, 75));
    EXPECT_EQ(n, 7);
    EXPECT_EQ(loop.now(), 75u);
    EXPECT_FALSE(loop.run_while([&] { return true; }, never)); // ran out of events
    EXPECT_EQ(n, 10);
}

TEST(sim_event_loop, past_schedule_throws_and_cancel_works)
{
    event_loop loop;
    int ran = 0;
    loop.schedule(10, [] {});
    loop.run_until(10);
    EXPECT_THROW(loop.schedule(9, [] {}), std::logic_error);
    const auto id = loop.schedule(20, [&] { ran += 1; });
    loop.schedule(20, [&] { ran += 10; });
    loop.cancel(id);
    EXPECT_EQ(loop.pending(), 1u);
    loop.run_until(never);
    EXPECT_EQ(ran, 10);
}

// ---------------------------------------------------------------------------------------------
// link timing, rate and queue

TEST(sim_link, one_packet_delay_is_propagation_plus_serialisation)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000;
    cfg.delay = 20 * ms;
    two_nodes t(cfg);
    cbr_sender tx(t.net.handle(t.a), t.path, 1000, 1 * ms, 1, 5 * ms);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    ASSERT_EQ(rx.arrivals.size(), 1u);
    EXPECT_EQ(link::serialisation(1000, 10'000'000), 800 * us);
    EXPECT_EQ(rx.arrivals[0].at, 5 * ms + 800 * us + 20 * ms);
}

TEST(sim_link, back_to_back_packets_and_chains_add_up_exactly)
{
    event_loop loop;
    network net(loop, 7);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    link_config l1;
    l1.rate_bps = 10'000'000; // 1000 B: 800 us
    l1.delay = 5 * ms;
    link_config l2;
    l2.rate_bps = 100'000'000; // 1000 B: 80 us
    l2.delay = 3 * ms;
    const std::size_t p = net.add_path_via(a, b, {net.add_link(l1), net.add_link(l2)}, {net.add_link(link_config{})});
    // Two packets at t=0: the second waits 800 us for the first on link 1.
    cbr_sender tx(net.handle(a), p, 1000, 0, 2);
    counting_receiver rx;
    net.attach(a, tx);
    net.attach(b, rx);
    loop.run_until(never);
    ASSERT_EQ(rx.arrivals.size(), 2u);
    EXPECT_EQ(rx.arrivals[0].at, 800 * us + 5 * ms + 80 * us + 3 * ms);
    EXPECT_EQ(rx.arrivals[1].at, 1600 * us + 5 * ms + 80 * us + 3 * ms);
    EXPECT_EQ(rx.arrivals[0].seq, 0u);
    EXPECT_EQ(rx.arrivals[1].seq, 1u);
}

TEST(sim_link, fractional_serialisation_time_is_carried_not_lost)
{
    link_config cfg;
    cfg.rate_bps = 3'000'000; // 1000 B: 2666666.67 ns
    cfg.delay = 1 * ms;
    two_nodes t(cfg);
    cbr_sender tx(t.net.handle(t.a), t.path, 1000, 0, 3);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    ASSERT_EQ(rx.arrivals.size(), 3u);
    EXPECT_EQ(rx.arrivals[0].at, 1 * ms + 2'666'666);
    EXPECT_EQ(rx.arrivals[2].at, 1 * ms + 8 * ms); // three back to back take exactly 8 ms
}

TEST(sim_link, throughput_equals_rate_within_one_percent)
{
    link_config cfg;
    cfg.rate_bps = 20'000'000;
    cfg.delay = 10 * ms;
    cfg.queue_limit_bytes = 100'000;
    two_nodes t(cfg);
    // Offer 25 Mbit/s for 12 s; measure the 10 s from 1 s on.
    cbr_sender tx(t.net.handle(t.a), t.path, 1250, interval_for(1250, 25'000'000), 30'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(13 * sec);
    const double bytes = static_cast<double>(rx.bytes_between(1 * sec, 11 * sec));
    const double expected = 20'000'000.0 * 10 / 8;
    EXPECT_NEAR(bytes, expected, expected * 0.01);
    EXPECT_GT(t.forward().counters().dropped_queue, 0u);
}

TEST(sim_link, drop_tail_when_sender_outpaces_link)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000; // 1250 packets of 1000 B per second
    cfg.delay = 1 * ms;
    cfg.queue_limit_bytes = 10'000;
    two_nodes t(cfg);
    cbr_sender tx(t.net.handle(t.a), t.path, 1000, interval_for(1000, 20'000'000), 2500); // 1 s at 2x
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    const link_counters& c = t.forward().counters();
    EXPECT_EQ(c.sent, 2500u);
    EXPECT_LE(c.queue_max_bytes, 10'000u);
    EXPECT_EQ(c.queue_max_bytes, 10'000u); // it did fill
    EXPECT_EQ(c.delivered + c.dropped_queue, c.sent);
    EXPECT_EQ(c.dropped_loss + c.dropped_blackout, 0u);
    EXPECT_EQ(rx.arrivals.size(), c.delivered);
    // One second of link time plus what the full queue held when the sender stopped.
    EXPECT_GE(c.delivered, 1250u);
    EXPECT_LE(c.delivered, 1250u + 11u);
    EXPECT_EQ(rx.inversions(), 0u);
    // Back to back at the link rate once the queue is busy.
    EXPECT_EQ(rx.arrivals[101].at - rx.arrivals[100].at, 800 * us);
}

// ---------------------------------------------------------------------------------------------
// impairments

TEST(sim_link, loss_rate_within_statistical_bounds)
{
    link_config cfg;
    cfg.delay = 1 * ms;
    cfg.loss = 0.05;
    two_nodes t(cfg, 42);
    cbr_sender tx(t.net.handle(t.a), t.path, 100, 10 * us, 100'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    const link_counters& c = t.forward().counters();
    EXPECT_EQ(c.sent, 100'000u);
    EXPECT_EQ(c.delivered + c.dropped_loss, c.sent);
    EXPECT_EQ(rx.arrivals.size(), c.delivered);
    // sigma = sqrt(0.05 * 0.95 / 1e5) = 0.07%; +-0.5% is about 7 sigma.
    const double rate = static_cast<double>(c.dropped_loss) / static_cast<double>(c.sent);
    EXPECT_NEAR(rate, 0.05, 0.005);
    EXPECT_EQ(t.net.log().count(trace_kind::drop_loss), c.dropped_loss);
}

TEST(sim_link, no_loss_without_loss_rate)
{
    link_config cfg;
    cfg.delay = 1 * ms;
    cfg.jitter = 500 * us;
    two_nodes t(cfg, 42);
    cbr_sender tx(t.net.handle(t.a), t.path, 100, 10 * us, 10'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    EXPECT_EQ(rx.arrivals.size(), 10'000u);
    EXPECT_EQ(t.forward().counters().dropped(), 0u);
}

TEST(sim_link, jitter_alone_never_reorders)
{
    link_config cfg;
    cfg.delay = 10 * ms;
    cfg.jitter = 5 * ms;
    two_nodes t(cfg, 3);
    cbr_sender tx(t.net.handle(t.a), t.path, 100, 100 * us, 10'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    ASSERT_EQ(rx.arrivals.size(), 10'000u);
    EXPECT_EQ(rx.inversions(), 0u);
    for (std::size_t i = 0; i < rx.arrivals.size(); ++i) {
        ASSERT_EQ(rx.arrivals[i].seq, i);
    }
    time_ns lo = never;
    time_ns hi = 0;
    for (const arrival& a : rx.arrivals) {
        lo = std::min(lo, a.at - a.sent_at);
        hi = std::max(hi, a.at - a.sent_at);
        ASSERT_GE(a.at - a.sent_at, 5 * ms);
    }
    // Jitter took effect. The FIFO floor holds packets behind a late one, so with jitter much
    // larger than the packet spacing delays bunch towards delay + jitter.
    EXPECT_GT(hi, 14'900 * us);
    EXPECT_LT(lo, 12 * ms);
    EXPECT_EQ(t.forward().counters().reordered, 0u);
}

TEST(sim_link, reorder_option_lets_later_packets_overtake)
{
    link_config cfg;
    cfg.delay = 10 * ms;
    cfg.reorder = 0.05;
    cfg.reorder_delay = 2 * ms; // 20 later packets overtake each held one
    two_nodes t(cfg, 5);
    cbr_sender tx(t.net.handle(t.a), t.path, 100, 100 * us, 10'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    ASSERT_EQ(rx.arrivals.size(), 10'000u);
    const std::uint64_t held = t.forward().counters().reordered;
    EXPECT_GE(held, 400u); // 500 expected, sigma about 22
    EXPECT_LE(held, 600u);
    EXPECT_EQ(rx.inversions(), held);
    for (const arrival& a : rx.arrivals) {
        const time_ns d = a.at - a.sent_at;
        ASSERT_TRUE(d == 10 * ms || d == 12 * ms) << d;
    }
}

TEST(sim_link, duplicates_are_counted_and_delivered)
{
    link_config cfg;
    cfg.delay = 2 * ms;
    cfg.duplicate = 0.1;
    two_nodes t(cfg, 11);
    cbr_sender tx(t.net.handle(t.a), t.path, 64, 50 * us, 10'000);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    const link_counters& c = t.forward().counters();
    EXPECT_GE(c.duplicated, 850u); // 1000 expected, sigma 30
    EXPECT_LE(c.duplicated, 1150u);
    EXPECT_EQ(rx.arrivals.size(), 10'000u + c.duplicated);
    EXPECT_EQ(c.delivered, 10'000u + c.duplicated);
    std::vector<int> seen(10'000, 0);
    for (const arrival& a : rx.arrivals) {
        ++seen[a.seq];
    }
    std::uint64_t twice = 0;
    for (const int n : seen) {
        ASSERT_GE(n, 1);
        ASSERT_LE(n, 2);
        twice += n == 2 ? 1 : 0;
    }
    EXPECT_EQ(twice, c.duplicated);
    EXPECT_EQ(rx.inversions(), 0u);
}

TEST(sim_link, blackout_drops_exactly_packets_sent_or_in_flight_in_window)
{
    link_config cfg;
    cfg.rate_bps = 100'000'000; // 1000 B: 80 us
    cfg.delay = 10 * ms;
    cfg.blackouts.push_back({100 * ms, 200 * ms});
    two_nodes t(cfg);
    cbr_sender tx(t.net.handle(t.a), t.path, 1000, 1 * ms, 300); // seq i sent at i ms
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    // In flight over [i, i + 10.08] ms: dark iff i < 200 and i + 10.08 >= 100, i.e. 90..199.
    std::vector<bool> got(300, false);
    for (const arrival& a : rx.arrivals) {
        got[a.seq] = true;
    }
    for (std::uint64_t i = 0; i < 300; ++i) {
        EXPECT_EQ(got[i], i < 90 || i >= 200) << "seq " << i;
    }
    EXPECT_EQ(t.forward().counters().dropped_blackout, 110u);
    EXPECT_EQ(t.net.log().count(trace_kind::drop_blackout), 110u);
}

TEST(sim_network, blackout_path_darkens_both_directions_and_only_that_path)
{
    event_loop loop;
    network net(loop, 1);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    link_config cfg;
    cfg.delay = 1 * ms;
    const std::size_t p0 = net.add_path(a, b, cfg, cfg);
    const std::size_t p1 = net.add_path(a, b, cfg, cfg);
    net.blackout_path(p0, 10 * ms, 20 * ms);
    cbr_sender a0(net.handle(a), p0, 32, 1 * ms, 30);
    counting_receiver rb;
    net.attach(a, a0);
    net.attach(b, rb);
    // b sends on both paths from outside the endpoints, at 15 ms.
    loop.schedule(15 * ms, [&] {
        std::vector<std::uint8_t> x(16, 0);
        net.send(b, p0, x);
        net.send(b, p1, x);
    });
    loop.run_until(never);
    EXPECT_EQ(rb.arrivals.size(), 30u - 11u); // seq 9..19 are dark
    EXPECT_EQ(net.link_at(net.path(p0).reverse.front()).counters().dropped_blackout, 1u);
    EXPECT_EQ(net.link_at(net.path(p1).reverse.front()).counters().delivered, 1u);
    EXPECT_EQ(net.datagrams_delivered(a), 1u);
}

TEST(sim_link, ecn_marks_ect_packets_above_threshold)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000;
    cfg.delay = 1 * ms;
    cfg.queue_limit_bytes = 100'000;
    cfg.ecn_threshold_bytes = 10'000;
    two_nodes t(cfg);
    // 2x the rate for 50 ms: the queue climbs to about 62 KB, above the threshold, below the limit.
    cbr_sender tx(t.net.handle(t.a), t.path, 1000, interval_for(1000, 20'000'000), 125, 0, true);
    counting_receiver rx;
    t.net.attach(t.a, tx);
    t.net.attach(t.b, rx);
    t.loop.run_until(never);
    const link_counters& c = t.forward().counters();
    EXPECT_EQ(c.dropped(), 0u);
    ASSERT_EQ(rx.arrivals.size(), 125u);
    std::uint64_t ce = 0;
    std::uint64_t first_ce = UINT64_MAX;
    for (const arrival& a : rx.arrivals) {
        if (a.ce) {
            ++ce;
            first_ce = std::min(first_ce, a.seq);
        }
    }
    EXPECT_EQ(ce, c.marked_ce);
    // The queue grows by half a packet per packet sent: it reaches 10 packets at about seq 20,
    // and stays above from then on.
    EXPECT_GE(first_ce, 19u);
    EXPECT_LE(first_ce, 21u);
    EXPECT_EQ(ce, 125u - first_ce);
}

TEST(sim_link, ecn_threshold_drops_non_ect_and_idle_link_marks_nothing)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000;
    cfg.delay = 1 * ms;
    cfg.queue_limit_bytes = 100'000;
    cfg.ecn_threshold_bytes = 10'000;
    {
        two_nodes t(cfg);
        cbr_sender tx(t.net.handle(t.a), t.path, 1000, interval_for(1000, 20'000'000), 125, 0, false);
        counting_receiver rx;
        t.net.attach(t.a, tx);
        t.net.attach(t.b, rx);
        t.loop.run_until(never);
        const link_counters& c = t.forward().counters();
        EXPECT_GT(c.dropped_queue, 0u);
        EXPECT_EQ(c.marked_ce, 0u);
        EXPECT_LE(c.queue_max_bytes, 11'000u);
        for (const arrival& a : rx.arrivals) {
            ASSERT_FALSE(a.ce);
        }
    }
    {
        two_nodes t(cfg);
        // Half the rate: the queue never holds more than the packet on the wire.
        cbr_sender tx(t.net.handle(t.a), t.path, 1000, interval_for(1000, 5'000'000), 500, 0, true);
        counting_receiver rx;
        t.net.attach(t.a, tx);
        t.net.attach(t.b, rx);
        t.loop.run_until(never);
        EXPECT_EQ(t.forward().counters().marked_ce, 0u);
        EXPECT_EQ(t.forward().counters().queue_max_bytes, 1000u);
        EXPECT_EQ(rx.arrivals.size(), 500u);
    }
}

// ---------------------------------------------------------------------------------------------
// network

TEST(sim_network, two_senders_share_a_bottleneck)
{
    event_loop loop;
    network net(loop, 9, false);
    const node_id s1 = net.add_node();
    const node_id s2 = net.add_node();
    const node_id r = net.add_node();
    link_config access;
    access.rate_bps = 100'000'000;
    access.delay = 2 * ms;
    // Without jitter two constant-rate flows into drop-tail lock into a phase where one always
    // takes the freed slot (Floyd and Jacobson's phase effects; here 80/20); jitter breaks it.
    access.jitter = 500 * us;
    link_config access2 = access;
    access2.delay = 7 * ms;
    link_config bottleneck;
    bottleneck.rate_bps = 10'000'000;
    bottleneck.delay = 5 * ms;
    bottleneck.queue_limit_bytes = 50'000;
    const std::size_t shared = net.add_link(bottleneck);
    const std::size_t p0 = net.add_path_via(s1, r, {net.add_link(access), shared}, {net.add_link(access)});
    const std::size_t p1 = net.add_path_via(s2, r, {net.add_link(access2), shared}, {net.add_link(access2)});
    // 8 + 8 Mbit/s offered into 10 Mbit/s for 12 s.
    cbr_sender t1(net.handle(s1), p0, 1000, interval_for(1000, 8'000'000), 12'000);
    cbr_sender t2(net.handle(s2), p1, 1000, interval_for(1000, 8'000'000), 12'000, 333 * us);
    counting_receiver rx;
    net.attach(s1, t1);
    net.attach(s2, t2);
    net.attach(r, rx);
    loop.run_until(13 * sec);
    const double total = static_cast<double>(rx.bytes_between(1 * sec, 11 * sec));
    const double expected = 10'000'000.0 * 10 / 8;
    EXPECT_NEAR(total, expected, expected * 0.01);
    const double first = static_cast<double>(rx.bytes_between(1 * sec, 11 * sec, p0));
    EXPECT_GT(first, 0.45 * total);
    EXPECT_LT(first, 0.55 * total);
    const link_counters& b = net.link_at(shared).counters();
    EXPECT_EQ(b.delivered, rx.arrivals.size());
    EXPECT_GT(b.dropped_queue, 0u);
    EXPECT_EQ(net.link_at(net.path(p0).forward.front()).counters().dropped(), 0u);
}

// Wakes at the listed times, then idles; records when it ran.
class timer_endpoint final : public endpoint {
public:
    void on_datagram(std::size_t, std::span<const std::uint8_t>, bool, time_ns) override {}
    time_ns next_wakeup() const override { return _i < wants.size() ? wants[_i] : never; }
    void on_wakeup(time_ns now) override
    {
        woke.push_back(now);
        while (_i < wants.size() && wants[_i] <= now) {
            ++_i;
        }
    }
    std::vector<time_ns> wants;
    std::vector<time_ns> woke;

private:
    std::size_t _i = 0;
};

TEST(sim_network, wakeups_at_requested_times_and_poke)
{
    event_loop loop;
    network net(loop, 1);
    timer_endpoint e;
    e.wants = {1 * ms, 5 * ms, 5 * ms, 12 * ms};
    net.add_node(e);
    loop.run_until(never);
    EXPECT_EQ(e.woke, (std::vector<time_ns>{1 * ms, 5 * ms, 12 * ms}));
    EXPECT_EQ(loop.pending(), 0u); // idle means no events
    // Changed from outside: nothing happens until the network is told.
    e.wants.push_back(20 * ms);
    loop.run_until(30 * ms);
    EXPECT_EQ(e.woke.size(), 3u);
    e.wants.back() = 40 * ms;
    net.poke(0);
    loop.run_until(never);
    EXPECT_EQ(e.woke, (std::vector<time_ns>{1 * ms, 5 * ms, 12 * ms, 40 * ms}));
    // Moved later from outside without a poke: the network re-asks when the old time comes and
    // wakes it at the new time, not the stale one.
    e.wants.push_back(50 * ms);
    net.poke(0);
    loop.schedule(45 * ms, [&] { e.wants.back() = 60 * ms; });
    loop.run_until(never);
    EXPECT_EQ(e.woke.back(), 60 * ms);
    EXPECT_EQ(e.woke.size(), 5u);
}

// Wants a wakeup now, forever.
class spinning_endpoint final : public endpoint {
public:
    explicit spinning_endpoint(const event_loop& loop) : _loop(loop) {}
    void on_datagram(std::size_t, std::span<const std::uint8_t>, bool, time_ns) override {}
    time_ns next_wakeup() const override { return _loop.now(); }
    void on_wakeup(time_ns) override {}

private:
    const event_loop& _loop;
};

TEST(sim_network, spinning_endpoint_fails_loudly)
{
    event_loop loop;
    network net(loop, 1);
    net.set_max_wakeups_per_instant(100);
    spinning_endpoint e(loop);
    net.add_node(e);
    EXPECT_THROW(loop.run_until(1 * ms), std::runtime_error);
    EXPECT_EQ(net.wakeups(0), 99u);
}

TEST(sim_network, send_checks_its_arguments)
{
    event_loop loop;
    network net(loop, 1);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    const node_id c = net.add_node();
    const std::size_t p = net.add_path(a, b, link_config{}, link_config{});
    std::vector<std::uint8_t> x(8, 0);
    EXPECT_THROW(net.send(c, p, x), std::logic_error);
    EXPECT_THROW(net.send(a, 5, x), std::out_of_range);
    EXPECT_THROW(net.add_path(a, a, link_config{}, link_config{}), std::invalid_argument);
    EXPECT_THROW(net.add_path_via(a, b, {}, {0}), std::invalid_argument);
}

// Node a sends a packet every `interval`; b echoes everything back on the same path.
class echo_endpoint final : public endpoint {
public:
    explicit echo_endpoint(node_handle h) : _h(h) {}
    void on_datagram(std::size_t path, std::span<const std::uint8_t> bytes, bool, time_ns) override
    {
        _pending.emplace_back(path, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
    }
    // Echo from a wakeup, as a real endpoint sends from its timer/pacing hook.
    time_ns next_wakeup() const override { return _pending.empty() ? never : _h.now(); }
    void on_wakeup(time_ns) override
    {
        for (auto& [path, bytes] : _pending) {
            _h.send(path, bytes);
        }
        _pending.clear();
    }

private:
    node_handle _h;
    std::vector<std::pair<std::size_t, std::vector<std::uint8_t>>> _pending;
};

TEST(sim_network, echo_round_trip_is_exact)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000;
    cfg.delay = 4 * ms;
    event_loop loop;
    network net(loop, 1);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    const std::size_t p = net.add_path(a, b, cfg, cfg);
    cbr_sender tx(net.handle(a), p, 500, 10 * ms, 3);
    echo_endpoint echo(net.handle(b));
    net.attach(a, tx);
    net.attach(b, echo);
    counting_receiver rx; // replaces the sender once it has sent: records the echoes
    loop.run_until(1 * ms);
    net.attach(a, rx);
    loop.run_until(never);
    // Only seq 0 was sent before the swap.
    ASSERT_EQ(rx.arrivals.size(), 1u);
    EXPECT_EQ(rx.arrivals[0].at, 2 * (400 * us + 4 * ms));
}

struct run_result {
    std::uint64_t digest;
    std::uint64_t records;
    std::vector<trace_record> trace;
};

run_result impaired_ping_pong(std::uint64_t seed)
{
    link_config cfg;
    cfg.rate_bps = 10'000'000;
    cfg.delay = 5 * ms;
    cfg.jitter = 1 * ms;
    cfg.loss = 0.02;
    cfg.reorder = 0.02;
    cfg.reorder_delay = 3 * ms;
    cfg.duplicate = 0.02;
    cfg.queue_limit_bytes = 20'000;
    event_loop loop;
    network net(loop, seed);
    const node_id a = net.add_node();
    const node_id b = net.add_node();
    const std::size_t p0 = net.add_path(a, b, cfg, cfg);
    const std::size_t p1 = net.add_path(a, b, cfg, cfg);
    cbr_sender tx0(net.handle(a), p0, 700, 400 * us, 2000);
    echo_endpoint echo(net.handle(b));
    net.attach(a, tx0);
    net.attach(b, echo);
    // A second stream on p1 from outside any endpoint.
    for (int i = 0; i < 500; ++i) {
        loop.schedule(static_cast<time_ns>(i) * 1 * ms + 17, [&net, a, p1, i] {
            std::vector<std::uint8_t> x(300, static_cast<std::uint8_t>(i));
            net.send(a, p1, x);
        });
    }
    loop.run_until(never);
    const trace& t = net.log();
    return run_result{t.digest(), t.size(), std::vector<trace_record>(t.records().begin(), t.records().end())};
}

TEST(sim_network, same_seed_same_trace_different_seed_different_trace)
{
    const run_result r1 = impaired_ping_pong(1);
    const run_result r1b = impaired_ping_pong(1);
    const run_result r2 = impaired_ping_pong(2);
    EXPECT_EQ(r1.digest, r1b.digest);
    EXPECT_EQ(r1.records, r1b.records);
    EXPECT_TRUE(r1.trace == r1b.trace);
    EXPECT_NE(r1.digest, r2.digest);
    EXPECT_GT(r1.records, 5000u);
    // Every impairment happened, so the digest covers them.
    std::uint64_t kinds = 0;
    for (const trace_record& r : r1.trace) {
        kinds |= 1u << static_cast<unsigned>(r.kind);
    }
    for (const trace_kind k : {trace_kind::send, trace_kind::deliver, trace_kind::drop_loss, trace_kind::reorder,
                               trace_kind::duplicate, trace_kind::wakeup}) {
        EXPECT_TRUE(kinds & (1u << static_cast<unsigned>(k))) << to_string(k);
    }
}

TEST(sim_trace, digest_depends_on_every_field_and_order)
{
    const trace_record r{5, trace_kind::deliver, 1, 2, no_link, 100, 0x1234};
    auto digest_of = [](std::initializer_list<trace_record> rs) {
        trace t(false);
        for (const trace_record& rec : rs) {
            t.append(rec);
        }
        return t.digest();
    };
    const std::uint64_t base = digest_of({r});
    EXPECT_EQ(base, digest_of({r}));
    auto changed = r;
    changed.time = 6;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.kind = trace_kind::send;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.node = 0;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.path = 3;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.link = 0;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.size = 101;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.hash = 0x1235;
    EXPECT_NE(base, digest_of({changed}));
    changed = r;
    changed.time = 9;
    EXPECT_NE(digest_of({r, changed}), digest_of({changed, r}));
    // FNV-1a of "a" is a published constant.
    const std::uint8_t a = 'a';
    EXPECT_EQ(trace::hash_bytes({&a, 1}), 0xaf63dc4c8601ec8cull);
    std::ostringstream os;
    trace t;
    t.append(r);
    t.dump(os);
    EXPECT_EQ(os.str(), "5 deliver node=1 path=2 size=100 hash=4660\n");
}

} // namespace
} // namespace kwik::sim
