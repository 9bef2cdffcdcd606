// Path liveness of dataplane/transport/connection.hpp (docs/PROTOCOL.md 13.4) from the outside:
// a client connection whose peer never answers, driven at its own next_wakeup(). A dead path
// must go suspect and then failed, whatever the keep-alive interval. Single-threaded.
#include "dataplane/transport/connection.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::transport {
namespace {

struct observed {
    std::vector<std::pair<path_id, path_event>> events;
    std::vector<time_ns> failed_at;
    time_ns now = 0;
    std::uint64_t packets = 0;
};

connection_callbacks silent_peer(observed& o) {
    connection_callbacks cb;
    cb.ctx = &o;
    cb.transmit = [](void* ctx, path_id, std::span<const std::uint8_t>) { ++static_cast<observed*>(ctx)->packets; };
    cb.on_path_event = [](void* ctx, path_id p, path_event e) {
        auto* o = static_cast<observed*>(ctx);
        o->events.emplace_back(p, e);
        if (e == path_event::failed) {
            o->failed_at.push_back(o->now);
        }
    };
    return cb;
}

// Runs c at its own wake-ups until `until`.
void run(connection& c, observed& o, time_ns until) {
    while (o.now < until) {
        c.flush(o.now);
        const time_ns next = c.next_wakeup();
        ASSERT_GT(next, o.now) << "next_wakeup must move on after flush";
        o.now = std::min(next, until);
    }
}

// Idle paths (no stream data, only keep-alives and probes) to a peer that never answers: with
// no RTT sample the probe timeout starts near 1 s and doubles, past the 1 s keep-alive interval.
// A keep-alive sent while a probe waited used to move the PTO deadline forward for ever, so the
// paths stayed suspect (the first) or active (the second) and never failed.
TEST(path_liveness, idle_paths_to_a_silent_peer_fail_within_the_backoff) {
    connection_config cfg;
    cfg.side = role::client;
    cfg.tx_ops = &heap_buffer_ops;
    cfg.rx_ops = &heap_buffer_ops;
    observed o;
    connection c(cfg, silent_peer(o), 0);
    ASSERT_TRUE(c.add_path(1, 0));
    ASSERT_TRUE(c.add_path(2, 0));
    run(c, o, 30 * sec);
    ASSERT_EQ(o.failed_at.size(), 2u) << "both paths declared failed within 30 s";
    for (time_ns t : o.failed_at) {
        EXPECT_LT(t, 20 * sec) << "3 probe timeouts from ~1 s doubling end well before 20 s";
    }
    EXPECT_GT(o.packets, 2u);
    // The first path was suspect before it failed (the second was the last one up).
    std::vector<path_event> first;
    for (const auto& [p, e] : o.events) {
        if (p == 1 && e != path_event::up) {
            first.push_back(e);
        }
    }
    EXPECT_EQ(first, (std::vector<path_event>{path_event::suspect, path_event::failed}));
}

} // namespace
} // namespace kwik::transport
