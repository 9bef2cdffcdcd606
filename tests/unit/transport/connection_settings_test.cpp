// Tests for the control-plane settings of dataplane/transport/connection.hpp (path weights,
// standby, rate caps, stream QoS, receive windows) and the allocation-free observation calls,
// from the outside: a client and a server connection wired back to back over several paths,
// every packet parsed as it leaves so the tests count what went where. Single-threaded.
#include "dataplane/transport/connection.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::transport {
namespace {

constexpr time_ns step = 100 * us;

void* heap_allocate(void*, std::size_t size, std::uint8_t** data) {
    heap_buffer* b = heap_buffer::make(size);
    *data = b->data();
    return b;
}

// What one side put on the wire on one path.
struct path_tally {
    std::uint64_t packets = 0;
    std::uint64_t stream_bytes = 0; // stream frame data, first sends and retransmissions
};

// An application writing to one stream: size bytes (0: without end), then FIN if fin.
struct source {
    std::uint64_t size = 0;
    std::uint64_t written = 0;
    bool fin = true;
    bool finished = false;
};

class back_to_back;

// One connection and what the tests observe of it.
struct end_state {
    back_to_back* owner = nullptr;
    int index = 0; // 0 client, 1 server
    std::unique_ptr<connection> conn;
    std::vector<path_tally> sent;                                    // by path id - 1
    std::vector<std::uint64_t> max_data;                             // MAX_DATA limits sent
    std::vector<std::pair<stream_id, std::uint64_t>> max_stream_data; // MAX_STREAM_DATA sent
    std::map<stream_id, std::set<std::uint8_t>> priorities;          // priority bytes of stream frames sent
    std::map<stream_id, std::uint64_t> received;                     // bytes read per stream
    std::map<stream_id, source> sources;
    std::vector<stream_id> readable;
    std::vector<stream_id> opened; // by the peer
    bool reading = true;           // read whatever is readable every step
    stream_id reading_id = 0;
};

// Two connections, client and server, over `paths` paths (ids 1..n), each a fixed one-way delay
// and an up/down switch (a datagram is dropped if its path is down when it is sent or when it
// would arrive). Time advances in 100 us steps: deliver, run the applications, flush.
class back_to_back {
public:
    struct link {
        time_ns delay = 1 * ms;
        bool down = false;
    };

    explicit back_to_back(std::size_t paths, connection_config config = base_config()) : links(paths) {
        for (int i = 0; i < 2; ++i) {
            end_state& e = ends[i];
            e.owner = this;
            e.index = i;
            e.sent.resize(paths);
            connection_config c = config;
            c.side = i == 0 ? role::client : role::server;
            c.tx_ops = &heap_buffer_ops;
            c.rx_ops = &heap_buffer_ops;
            connection_callbacks cb;
            cb.ctx = &e;
            cb.transmit = [](void* ctx, path_id path, std::span<const std::uint8_t> b) {
                auto* self = static_cast<end_state*>(ctx);
                self->owner->transmit(*self, path, b);
            };
            cb.allocate = heap_allocate;
            cb.on_readable = [](void* ctx, stream_id id) { static_cast<end_state*>(ctx)->readable.push_back(id); };
            cb.on_data = [](void* ctx, stream_id id, std::uint64_t, std::span<const std::uint8_t> d) {
                static_cast<end_state*>(ctx)->received[id] += d.size();
            };
            cb.on_stream_opened = [](void* ctx, stream_id id) { static_cast<end_state*>(ctx)->opened.push_back(id); };
            e.conn = std::make_unique<connection>(c, cb, 0);
            for (std::size_t p = 1; p <= paths; ++p) {
                e.conn->add_path(p, 0);
            }
        }
        queues[0].resize(paths);
        queues[1].resize(paths);
    }

    // Small flushes keep every test fast and every path's congestion window ahead of its share.
    static connection_config base_config() {
        connection_config c;
        c.max_packets_per_flush = 8;
        return c;
    }

    connection& client() { return *ends[0].conn; }
    connection& server() { return *ends[1].conn; }
    end_state& client_end() { return ends[0]; }
    end_state& server_end() { return ends[1]; }

    void add_source(end_state& e, stream_id id, std::uint64_t size = 0, bool fin = true) {
        e.sources[id] = source{size, 0, fin, false};
    }

    void run_until(time_ns t) {
        while (now < t) {
            now += step;
            for (int i = 0; i < 2; ++i) {
                deliver_due(i);
            }
            for (end_state& e : ends) {
                pump(e);
                if (e.reading) {
                    drain(e);
                }
            }
            for (end_state& e : ends) {
                e.conn->flush(now);
            }
        }
    }

    // Runs until pred() holds (checked every step) or the limit; true if it held.
    bool run_while_not(const std::function<bool()>& pred, time_ns limit) {
        while (now < limit) {
            if (pred()) {
                return true;
            }
            run_until(now + step);
        }
        return pred();
    }

    // Reads everything readable now, whatever e.reading says.
    void drain(end_state& e) {
        std::vector<stream_id> ids;
        ids.swap(e.readable);
        for (const stream_id id : ids) {
            e.reading_id = id;
            e.conn->read(id, [](void* ctx, std::uint64_t, std::span<const std::uint8_t> d) {
                auto* self = static_cast<end_state*>(ctx);
                self->received[self->reading_id] += d.size();
            }, &e);
        }
    }

    path_info info(connection& c, path_id id) {
        path_info out;
        for (std::size_t i = 0; i < c.path_count(); ++i) {
            if (c.path_info_at(i, out) && out.id == id) {
                return out;
            }
        }
        ADD_FAILURE() << "no path " << id;
        return out;
    }

    std::vector<link> links; // by path id - 1
    time_ns now = 0;

private:
    struct datagram {
        time_ns arrive;
        std::vector<std::uint8_t> bytes;
    };

    void transmit(end_state& from, path_id path, std::span<const std::uint8_t> b) {
        tally(from, path, b);
        link& l = links.at(path - 1);
        if (!l.down) {
            queues[from.index][path - 1].push_back({now + l.delay, {b.begin(), b.end()}});
        }
    }

    void tally(end_state& from, path_id path, std::span<const std::uint8_t> b) {
        path_tally& t = from.sent.at(path - 1);
        ++t.packets;
        ASSERT_EQ(kdp::parse_packet(kdp::contiguous_bytes(b), *_view), kdp::drop_reason::none);
        for (const kdp::frame_view& f : _view->frame_span()) {
            if (!f.is_control()) {
                t.stream_bytes += f.data_length;
                from.priorities[f.stream_id].insert(f.priority);
                continue;
            }
            kdp::control_frame c;
            ASSERT_EQ(kdp::decode_control(f.stream_id, f.offset, b.data() + f.data_pos, f.data_length, &c),
                      kdp::drop_reason::none);
            if (c.type == kdp::control_type::max_data) {
                from.max_data.push_back(c.limit);
            } else if (c.type == kdp::control_type::max_stream_data) {
                from.max_stream_data.emplace_back(c.stream_id, c.limit);
            }
        }
    }

    void deliver_due(int from) {
        end_state& to = ends[1 - from];
        for (std::size_t p = 0; p < links.size(); ++p) {
            auto& q = queues[from][p];
            while (!q.empty() && q.front().arrive <= now) {
                if (!links[p].down) {
                    const std::vector<std::uint8_t>& d = q.front().bytes;
                    heap_buffer* b = heap_buffer::make(d.size());
                    std::memcpy(b->data(), d.data(), d.size());
                    to.conn->on_datagram(p + 1, {b->data(), d.size()}, b, false, now);
                    heap_buffer_release(b);
                }
                q.pop_front();
            }
        }
    }

    void pump(end_state& e) {
        for (auto& [id, s] : e.sources) {
            while (s.size == 0 || s.written < s.size) {
                const std::uint64_t n = s.size == 0 ? 16384 : std::min<std::uint64_t>(16384, s.size - s.written);
                heap_buffer* b = heap_buffer::make(n);
                for (std::uint64_t i = 0; i < n; ++i) {
                    b->data()[i] = static_cast<std::uint8_t>(id + i);
                }
                const bool ok = e.conn->write(id, {b->data(), static_cast<std::uint32_t>(n), b});
                heap_buffer_release(b);
                if (!ok) {
                    break;
                }
                s.written += n;
            }
            if (s.fin && !s.finished && s.size != 0 && s.written == s.size) {
                s.finished = e.conn->finish(id);
            }
        }
    }

    end_state ends[2];
    std::vector<std::deque<datagram>> queues[2]; // by sender, then path
    std::unique_ptr<kdp::packet_view> _view = std::make_unique<kdp::packet_view>();
};

std::uint64_t stream_bytes_on(const end_state& e, path_id p) { return e.sent.at(p - 1).stream_bytes; }

// ---- weights --------------------------------------------------------------------------------

TEST(connection_settings, pinned_weight_holds_while_unpinned_weights_move) {
    back_to_back b(3);
    b.links[2].delay = 10 * ms; // path 3 is slower: the balancer gives it less
    b.client().set_strategy(schedule_strategy::weighted);
    ASSERT_TRUE(b.client().set_path_weight(1, 0.5f));
    b.add_source(b.client_end(), b.client().open_stream({}));
    for (time_ns t = 100 * ms; t <= 1500 * ms; t += 100 * ms) {
        b.run_until(t + step); // just past a balance interval
        const path_info p1 = b.info(b.client(), 1);
        EXPECT_EQ(p1.weight, 0.5f) << "at " << t / ms << " ms";
        EXPECT_TRUE(p1.weight_pinned);
    }
    const path_info p2 = b.info(b.client(), 2);
    const path_info p3 = b.info(b.client(), 3);
    EXPECT_FALSE(p2.weight_pinned);
    // The unpinned two were adapted among themselves (from 1 each): shares summing to 1, the
    // faster path ahead.
    EXPECT_NEAR(p2.weight + p3.weight, 1.0f, 1e-3f);
    EXPECT_GT(p2.weight, p3.weight + 0.1f);
    EXPECT_GT(stream_bytes_on(b.client_end(), 1), 0u);

    b.client().unpin_path_weights();
    b.run_until(b.now + 300 * ms);
    const path_info after = b.info(b.client(), 1);
    EXPECT_FALSE(after.weight_pinned);
    EXPECT_NE(after.weight, 0.5f) << "the balancer took path 1 back";
    EXPECT_NEAR(after.weight + b.info(b.client(), 2).weight + b.info(b.client(), 3).weight, 1.0f, 1e-3f);
}

TEST(connection_settings, weighted_strategy_sends_in_pinned_ratio) {
    back_to_back b(2);
    b.client().set_strategy(schedule_strategy::weighted);
    ASSERT_TRUE(b.client().set_path_weight(1, 3.0f));
    ASSERT_TRUE(b.client().set_path_weight(2, 1.0f));
    b.add_source(b.client_end(), b.client().open_stream({}));
    b.run_until(500 * ms); // past slow start
    const std::uint64_t a0 = stream_bytes_on(b.client_end(), 1);
    const std::uint64_t b0 = stream_bytes_on(b.client_end(), 2);
    b.run_until(1500 * ms);
    const double on1 = double(stream_bytes_on(b.client_end(), 1) - a0);
    const double on2 = double(stream_bytes_on(b.client_end(), 2) - b0);
    ASSERT_GT(on2, 100000.0);
    EXPECT_NEAR(on1 / on2, 3.0, 0.15) << on1 << " vs " << on2 << " bytes";
    EXPECT_EQ(b.info(b.client(), 1).weight, 3.0f);
    EXPECT_EQ(b.info(b.client(), 2).weight, 1.0f);
}

// ---- standby --------------------------------------------------------------------------------

TEST(connection_settings, standby_path_carries_data_only_while_the_primary_is_down) {
    back_to_back b(2);
    ASSERT_TRUE(b.client().set_path_standby(2, true));
    EXPECT_TRUE(b.info(b.client(), 2).standby);
    const stream_id id = b.client().open_stream({});
    b.add_source(b.client_end(), id);

    // Primary up: the standby path carries keep-alives and ACKs, never stream data.
    b.run_until(1500 * ms);
    EXPECT_EQ(stream_bytes_on(b.client_end(), 2), 0u);
    EXPECT_GT(b.client_end().sent[1].packets, 0u) << "the standby path is kept alive";
    EXPECT_GT(stream_bytes_on(b.client_end(), 1), 1000000u);

    // Primary down: data fails over to the standby path and keeps arriving.
    b.links[0].down = true;
    b.run_until(2000 * ms);
    EXPECT_NE(b.info(b.client(), 1).status, path_status::active);
    const std::uint64_t standby_at = stream_bytes_on(b.client_end(), 2);
    const std::uint64_t received_at = b.server_end().received[id];
    b.run_until(3000 * ms);
    EXPECT_GT(stream_bytes_on(b.client_end(), 2), standby_at + 500000);
    EXPECT_GT(b.server_end().received[id], received_at + 500000);

    // Primary back: once it is active again, data leaves the standby path.
    b.links[0].down = false;
    ASSERT_TRUE(b.run_while_not([&] { return b.info(b.client(), 1).status == path_status::active; }, 6 * sec));
    b.run_until(b.now + 200 * ms); // what was in flight on the standby path settles
    const std::uint64_t standby_after = stream_bytes_on(b.client_end(), 2);
    const std::uint64_t primary_after = stream_bytes_on(b.client_end(), 1);
    b.run_until(b.now + 1 * sec);
    EXPECT_EQ(stream_bytes_on(b.client_end(), 2), standby_after);
    EXPECT_GT(stream_bytes_on(b.client_end(), 1), primary_after + 500000);

    // Standby off: it carries data again (round robin, so not only when path 1 is full).
    ASSERT_TRUE(b.client().set_path_standby(2, false));
    b.client().set_strategy(schedule_strategy::round_robin);
    b.run_until(b.now + 500 * ms);
    EXPECT_GT(stream_bytes_on(b.client_end(), 2), standby_after);
}

// ---- rate cap -------------------------------------------------------------------------------

TEST(connection_settings, max_rate_caps_bytes_sent_per_interval) {
    back_to_back b(1);
    b.add_source(b.client_end(), b.client().open_stream({}));
    auto wire_bytes = [&] { return b.info(b.client(), 1).counters.bytes_sent; };
    b.run_until(500 * ms);
    const std::uint64_t u0 = wire_bytes();
    b.run_until(1000 * ms);
    const std::uint64_t uncapped = wire_bytes() - u0; // bytes in 500 ms

    constexpr std::uint64_t cap = 8'000'000; // bit/s: 500 kB per 500 ms
    ASSERT_GT(uncapped, 4 * cap / 16) << "the cap must be what limits the path";
    ASSERT_TRUE(b.client().set_path_max_rate(1, cap));
    const path_info capped_info = b.info(b.client(), 1);
    EXPECT_EQ(capped_info.max_rate_bps, cap);
    EXPECT_EQ(capped_info.pacing_rate_bps, cap);
    b.run_until(1200 * ms); // the bucket's burst and what was queued drain
    const std::uint64_t c0 = wire_bytes();
    b.run_until(1700 * ms);
    const std::uint64_t capped = wire_bytes() - c0;
    // cap x 500 ms, plus at most one bucket (10 packets) and the ACK-only packets (not paced).
    EXPECT_LE(capped, cap / 16 + 10 * 1400 + 4096);
    EXPECT_GE(capped, cap / 16 * 9 / 10) << "the path runs at the cap, not below it";

    ASSERT_TRUE(b.client().set_path_max_rate(1, 0)); // no cap
    EXPECT_EQ(b.info(b.client(), 1).max_rate_bps, 0u);
    b.run_until(2200 * ms);
    const std::uint64_t f0 = wire_bytes();
    b.run_until(2700 * ms);
    EXPECT_GT(wire_bytes() - f0, 2 * cap / 16);
}

// ---- QoS ------------------------------------------------------------------------------------

TEST(connection_settings, qos_set_before_open_applies_when_either_side_opens) {
    back_to_back b(1);
    qos_policy critical;
    critical.priority = kdp::priority::critical;
    critical.loss_threshold = 0.1f;
    // The server learns streams 2 and 4 only when the client opens them.
    ASSERT_TRUE(b.server().set_stream_qos(2, critical));
    qos_policy high;
    high.priority = kdp::priority::high;
    ASSERT_TRUE(b.client().set_stream_qos(6, high)); // the client's third stream, not open yet

    const stream_id s2 = b.client().open_stream({});
    const stream_id s4 = b.client().open_stream({});
    const stream_id s6 = b.client().open_stream({});
    ASSERT_EQ(s2, 2u);
    ASSERT_EQ(s4, 4u);
    ASSERT_EQ(s6, 6u);
    b.add_source(b.client_end(), s2, 100, false);
    b.add_source(b.client_end(), s4, 100, false);
    b.add_source(b.client_end(), s6, 100, false);
    ASSERT_TRUE(b.run_while_not([&] { return b.server_end().opened.size() == 3; }, 1 * sec));

    // The client opened 6 with default options; the pending QoS won.
    EXPECT_EQ(b.client_end().priorities[6], std::set<std::uint8_t>{0x01});
    EXPECT_EQ(b.client_end().priorities[2], std::set<std::uint8_t>{0x00});

    // The server answers on 2 and 4 at once: 2 (critical by the pending QoS) goes first.
    const std::uint64_t size = 300 * 1000;
    b.add_source(b.server_end(), s2, size);
    b.add_source(b.server_end(), s4, size);
    ASSERT_TRUE(b.run_while_not([&] { return b.client_end().received[s2] == size; }, 5 * sec));
    EXPECT_LT(b.client_end().received[s4], size / 3) << "stream 4 was not behind stream 2";
    EXPECT_EQ(b.server_end().priorities[s2], std::set<std::uint8_t>{0x02});
    EXPECT_EQ(b.server_end().priorities[s4], std::set<std::uint8_t>{0x00});
    ASSERT_TRUE(b.run_while_not([&] { return b.client_end().received[s4] == size; }, 10 * sec));
}

TEST(connection_settings, qos_on_an_open_stream_moves_it_now) {
    back_to_back b(1);
    const stream_id a = b.client().open_stream({});
    const stream_id c = b.client().open_stream({});
    const std::uint64_t size = 20'000'000;
    b.add_source(b.client_end(), a, size);
    b.add_source(b.client_end(), c, size);
    b.run_until(50 * ms); // both normal: they share
    const std::uint64_t a0 = b.server_end().received[a];
    const std::uint64_t c0 = b.server_end().received[c];
    ASSERT_GT(a0, 0u);
    ASSERT_GT(c0, 0u);
    ASSERT_LT(c0, size / 2);

    qos_policy critical;
    critical.priority = kdp::priority::critical;
    ASSERT_TRUE(b.client().set_stream_qos(c, critical)); // while both are queued
    ASSERT_TRUE(b.run_while_not([&] { return b.server_end().received[c] == size; }, 10 * sec));
    EXPECT_LT(b.server_end().received[a] - a0, (size - c0) / 4) << "a kept its share";
    EXPECT_EQ(b.client_end().priorities[c], (std::set<std::uint8_t>{0x00, 0x02}));
    EXPECT_EQ(b.client_end().priorities[a], std::set<std::uint8_t>{0x00});
}

// 0xFF marks control frames on the wire (PROTOCOL.md 5.3): a stream given the control level,
// by its options or its QoS, is served and framed as critical.
TEST(connection_settings, control_priority_stream_goes_out_as_critical) {
    back_to_back b(1);
    stream_options by_options;
    by_options.priority = kdp::priority::control;
    const stream_id a = b.client().open_stream(by_options);
    const stream_id c = b.client().open_stream({});
    qos_policy q;
    q.priority = kdp::priority::control;
    ASSERT_TRUE(b.client().set_stream_qos(c, q));
    b.add_source(b.client_end(), a, 50000);
    b.add_source(b.client_end(), c, 50000);
    b.run_until(300 * ms);
    EXPECT_EQ(b.server_end().received[a], 50000u);
    EXPECT_EQ(b.server_end().received[c], 50000u);
    EXPECT_EQ(b.client_end().priorities[a], std::set<std::uint8_t>{0x02});
    EXPECT_EQ(b.client_end().priorities[c], std::set<std::uint8_t>{0x02});
    EXPECT_FALSE(b.client().closed());
    EXPECT_FALSE(b.server().closed());
}

TEST(connection_settings, pending_qos_is_bounded_by_max_streams) {
    connection_config cfg = back_to_back::base_config();
    cfg.max_streams = 4;
    back_to_back b(1, cfg);
    qos_policy q;
    for (const stream_id id : {2u, 4u, 6u, 8u}) { // the client's streams, none open yet
        EXPECT_TRUE(b.server().set_stream_qos(id, q)) << id;
    }
    EXPECT_FALSE(b.server().set_stream_qos(10, q)) << "table full";
    q.priority = kdp::priority::high;
    EXPECT_TRUE(b.server().set_stream_qos(4, q)) << "replacing a waiting entry takes no room";

    // The client opens stream 2: the server applies its entry and drops it, which makes room.
    const stream_id own = b.client().open_stream({});
    ASSERT_EQ(own, 2u);
    b.add_source(b.client_end(), own, 100, false);
    ASSERT_TRUE(b.run_while_not([&] { return b.server_end().opened.size() == 1; }, 1 * sec));
    EXPECT_TRUE(b.server().set_stream_qos(10, q));
    EXPECT_FALSE(b.server().set_stream_qos(12, q)) << "full again";
    EXPECT_TRUE(b.server().set_stream_qos(own, q)) << "an open stream needs no room";
}

// ---- windows --------------------------------------------------------------------------------

connection_config with_windows(std::uint64_t connection_window, std::uint64_t stream_window) {
    connection_config c = back_to_back::base_config();
    c.connection_window = connection_window;
    c.stream_window = stream_window;
    return c;
}

// The client writes to a new stream without end and the server reads nothing, so only a new
// window lets more through. After 300 ms the client has sent `blocked_at` bytes, no more.
stream_id start_blocked_stream(back_to_back& b, std::uint64_t blocked_at) {
    b.server_end().reading = false;
    const stream_id id = b.client().open_stream({});
    b.add_source(b.client_end(), id);
    b.run_until(b.now + 300 * ms);
    EXPECT_EQ(b.client().counters().stream_bytes_sent, blocked_at);
    return id;
}

TEST(connection_settings, connection_window_growth_sends_max_data_and_more_flows) {
    back_to_back b(1, with_windows(64 * 1024, 1 << 20));
    start_blocked_stream(b, 64 * 1024);
    ASSERT_TRUE(b.server_end().max_data.empty());

    ASSERT_TRUE(b.server().set_connection_window(256 * 1024, b.now));
    b.run_until(b.now + 2 * step); // the next flush
    ASSERT_EQ(b.server_end().max_data.size(), 1u);
    EXPECT_EQ(b.server_end().max_data[0], 256u * 1024);
    b.run_until(b.now + 300 * ms);
    EXPECT_EQ(b.client().counters().stream_bytes_sent, 256u * 1024);
}

TEST(connection_settings, stream_window_growth_sends_max_stream_data_and_more_flows) {
    back_to_back b(1, with_windows(16 << 20, 64 * 1024));
    const stream_id id = start_blocked_stream(b, 64 * 1024);
    EXPECT_FALSE(b.server().set_stream_window(id + 2, 1 << 20, b.now)) << "not open";

    ASSERT_TRUE(b.server().set_stream_window(id, 192 * 1024, b.now));
    b.run_until(b.now + 2 * step);
    ASSERT_EQ(b.server_end().max_stream_data.size(), 1u);
    EXPECT_EQ(b.server_end().max_stream_data[0], (std::pair<stream_id, std::uint64_t>{id, 192 * 1024}));
    b.run_until(b.now + 300 * ms);
    EXPECT_EQ(b.client().counters().stream_bytes_sent, 192u * 1024);
}

TEST(connection_settings, shrinking_a_window_never_lowers_a_granted_limit) {
    back_to_back b(1, with_windows(256 * 1024, 1 << 20));
    start_blocked_stream(b, 256 * 1024);

    ASSERT_TRUE(b.server().set_connection_window(64 * 1024, b.now));
    b.run_until(b.now + 300 * ms);
    EXPECT_TRUE(b.server_end().max_data.empty()) << "a smaller window sends nothing";
    EXPECT_EQ(b.client().counters().stream_bytes_sent, 256u * 1024) << "the granted 256 KiB stands";

    // Consuming everything grants consumed + the new window: 320 KiB, not 256 + 256.
    b.drain(b.server_end());
    b.run_until(b.now + 300 * ms);
    ASSERT_FALSE(b.server_end().max_data.empty());
    for (const std::uint64_t limit : b.server_end().max_data) {
        EXPECT_GE(limit, 256u * 1024);
    }
    EXPECT_EQ(b.server_end().max_data.back(), 320u * 1024);
    EXPECT_EQ(b.client().counters().stream_bytes_sent, 320u * 1024);
}

TEST(connection_settings, initial_stream_window_applies_to_streams_opened_later) {
    back_to_back b(1, with_windows(16 << 20, 64 * 1024));
    start_blocked_stream(b, 64 * 1024);

    ASSERT_TRUE(b.server().set_initial_stream_window(256 * 1024));
    const stream_id after = b.client().open_stream({});
    b.add_source(b.client_end(), after);
    b.run_until(b.now + 300 * ms);
    // The stream the server accepts now is granted 256 KiB at once; the earlier one stays.
    EXPECT_EQ(b.server_end().max_stream_data,
              (std::vector<std::pair<stream_id, std::uint64_t>>{{after, 256 * 1024}}));
    EXPECT_EQ(b.client().counters().stream_bytes_sent, 64u * 1024 + 256u * 1024);
}

// ---- invalid values -------------------------------------------------------------------------

qos_policy qos_with(float loss, kdp::priority p) {
    qos_policy q;
    q.loss_threshold = loss;
    q.priority = p;
    return q;
}

TEST(connection_settings, every_invalid_value_returns_false_and_changes_nothing) {
    back_to_back b(2);
    ASSERT_TRUE(b.client().remove_path(2, 0));
    const stream_id open = b.client().open_stream({});
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const std::uint64_t too_big = (std::uint64_t{1} << 62) + 1;
    struct row {
        const char* what;
        std::function<bool(connection&)> call;
    };
    const std::vector<row> rows = {
        {"weight: unknown path", [](connection& c) { return c.set_path_weight(9, 1.0f); }},
        {"weight: removed path", [](connection& c) { return c.set_path_weight(2, 1.0f); }},
        {"weight: negative", [](connection& c) { return c.set_path_weight(1, -0.5f); }},
        {"weight: NaN", [=](connection& c) { return c.set_path_weight(1, nan); }},
        {"weight: infinite", [=](connection& c) { return c.set_path_weight(1, inf); }},
        {"standby: unknown path", [](connection& c) { return c.set_path_standby(9, true); }},
        {"standby: removed path", [](connection& c) { return c.set_path_standby(2, true); }},
        {"max rate: unknown path", [](connection& c) { return c.set_path_max_rate(9, 1000); }},
        {"max rate: removed path", [](connection& c) { return c.set_path_max_rate(2, 1000); }},
        {"qos: stream 0", [](connection& c) { return c.set_stream_qos(0, {}); }},
        {"qos: stream above 2^62-1", [](connection& c) { return c.set_stream_qos(std::uint64_t{1} << 62, {}); }},
        {"qos: loss below 0", [=](connection& c) { return c.set_stream_qos(open, qos_with(-0.01f, kdp::priority::normal)); }},
        {"qos: loss above 1", [=](connection& c) { return c.set_stream_qos(open, qos_with(1.01f, kdp::priority::normal)); }},
        {"qos: loss NaN", [=](connection& c) { return c.set_stream_qos(open, qos_with(nan, kdp::priority::normal)); }},
        {"qos: priority 3", [=](connection& c) { return c.set_stream_qos(open, qos_with(1, static_cast<kdp::priority>(3))); }},
        {"qos: priority 0x80 (pending)", [](connection& c) { return c.set_stream_qos(8, qos_with(1, static_cast<kdp::priority>(0x80))); }},
        {"connection window 0", [](connection& c) { return c.set_connection_window(0, 0); }},
        {"connection window 2^62+1", [=](connection& c) { return c.set_connection_window(too_big, 0); }},
        {"stream window: not open", [](connection& c) { return c.set_stream_window(4, 1024, 0); }},
        {"stream window 0", [=](connection& c) { return c.set_stream_window(open, 0, 0); }},
        {"stream window 2^62+1", [=](connection& c) { return c.set_stream_window(open, too_big, 0); }},
        {"initial stream window 0", [](connection& c) { return c.set_initial_stream_window(0); }},
        {"initial stream window 2^62+1", [=](connection& c) { return c.set_initial_stream_window(too_big); }},
    };
    auto snapshot = [&] {
        std::string s;
        path_info p;
        for (std::size_t i = 0; b.client().path_info_at(i, p); ++i) {
            s += std::to_string(p.weight) + (p.weight_pinned ? "P" : "-") + (p.standby ? "S" : "-") +
                 std::to_string(p.max_rate_bps) + ";";
        }
        return s + std::to_string(b.client().next_wakeup());
    };
    for (const row& r : rows) {
        const std::string before = snapshot();
        EXPECT_FALSE(r.call(b.client())) << r.what;
        EXPECT_EQ(snapshot(), before) << r.what;
    }
    // The failed QoS calls left the open stream's priority alone.
    b.add_source(b.client_end(), open, 1000);
    b.run_until(100 * ms);
    EXPECT_EQ(b.client_end().priorities[open], std::set<std::uint8_t>{0x00});

    // The boundaries themselves are accepted.
    EXPECT_TRUE(b.client().set_path_weight(1, 0.0f));
    EXPECT_TRUE(b.client().set_path_max_rate(1, std::numeric_limits<std::uint64_t>::max()));
    EXPECT_TRUE(b.client().set_stream_qos(open, qos_with(0.0f, kdp::priority::control)));
    EXPECT_TRUE(b.client().set_stream_qos(open, qos_with(1.0f, kdp::priority::normal)));
    EXPECT_TRUE(b.client().set_connection_window(std::uint64_t{1} << 62, b.now));
    EXPECT_TRUE(b.client().set_stream_window(open, std::uint64_t{1} << 62, b.now));
    EXPECT_TRUE(b.client().set_initial_stream_window(1));
}

// ---- observation ----------------------------------------------------------------------------

TEST(connection_settings, path_info_at_matches_paths) {
    back_to_back b(3);
    b.add_source(b.client_end(), b.client().open_stream({}), 200000);
    ASSERT_TRUE(b.client().set_path_max_rate(3, 5'000'000));
    b.run_until(300 * ms);
    std::uint64_t sent_on_2 = 0;
    for (const path_info& i : b.client().paths()) {
        sent_on_2 += i.id == 2 ? i.counters.packets_sent : 0;
    }
    ASSERT_TRUE(b.client().remove_path(2, b.now));
    const std::vector<path_info> all = b.client().paths();
    // A removed path leaves the list; what it counted stays in the retired totals.
    ASSERT_EQ(b.client().path_count(), 2u);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].id, 1u);
    EXPECT_EQ(all[1].id, 3u);
    EXPECT_GT(sent_on_2, 0u);
    EXPECT_EQ(b.client().retired_path_counters().packets_sent, sent_on_2);
    for (std::size_t i = 0; i < all.size(); ++i) {
        path_info one;
        ASSERT_TRUE(b.client().path_info_at(i, one));
        EXPECT_EQ(one.id, all[i].id);
        EXPECT_EQ(one.status, all[i].status);
        EXPECT_EQ(one.srtt, all[i].srtt);
        EXPECT_EQ(one.min_rtt, all[i].min_rtt);
        EXPECT_EQ(one.rttvar, all[i].rttvar);
        EXPECT_EQ(one.cwnd, all[i].cwnd);
        EXPECT_EQ(one.max_rate_bps, all[i].max_rate_bps);
        EXPECT_EQ(one.counters.packets_sent, all[i].counters.packets_sent);
        EXPECT_EQ(one.counters.bytes_received, all[i].counters.bytes_received);
    }
    EXPECT_GT(all[0].srtt, 0u);
    EXPECT_GT(all[0].counters.packets_sent, 0u);
    EXPECT_EQ(all[1].max_rate_bps, 5'000'000u);
    path_info untouched;
    untouched.id = 77;
    EXPECT_FALSE(b.client().path_info_at(2, untouched));
    EXPECT_EQ(untouched.id, 77u);
}

TEST(connection_settings, removed_path_ids_are_retired_and_paths_can_be_replaced_for_ever) {
    back_to_back b(1);
    connection& c = b.client();
    const std::uint32_t cap = 8; // connection_config::max_paths default
    // Replace paths far more often than max_paths: only open paths count against it.
    for (path_id id = 2; id < 2 + 3 * cap; ++id) {
        ASSERT_TRUE(c.add_path(id, b.now)) << id;
        ASSERT_TRUE(c.remove_path(id, b.now)) << id;
        EXPECT_FALSE(c.add_path(id, b.now)) << "retired id " << id << " must not come back";
    }
    EXPECT_EQ(c.path_count(), 1u);
    for (path_id id = 100; id < 100 + cap - 1; ++id) {
        ASSERT_TRUE(c.add_path(id, b.now)) << id;
    }
    EXPECT_EQ(c.path_count(), cap);
    EXPECT_FALSE(c.add_path(500, b.now)) << "max_paths open paths at once";
}

TEST(connection_settings, streams_opened_and_closed_are_counted) {
    back_to_back b(1);
    const stream_id a = b.client().open_stream({});
    const stream_id r = b.client().open_stream({});
    EXPECT_EQ(b.client().open_streams(), 2u);
    EXPECT_EQ(b.client().counters().streams_opened, 2u);
    b.add_source(b.client_end(), a, 20000);     // data and FIN
    b.add_source(b.client_end(), r, 5000, false); // data, then a reset
    ASSERT_TRUE(b.run_while_not([&] { return b.server_end().opened.size() == 2; }, 1 * sec));
    EXPECT_EQ(b.server().open_streams(), 2u);

    // The client's direction of a is done; the server's is not: still open on both sides.
    b.run_until(b.now + 200 * ms);
    EXPECT_EQ(b.client().counters().streams_closed, 0u);
    EXPECT_EQ(b.server().counters().streams_closed, 0u);

    ASSERT_TRUE(b.server().finish(a)); // the server's direction: no data, FIN
    ASSERT_TRUE(b.client().reset_stream(r, 7));
    ASSERT_TRUE(b.server().reset_stream(r, 7));
    b.run_until(b.now + 300 * ms);
    EXPECT_EQ(b.client().counters().streams_opened, 2u);
    EXPECT_EQ(b.client().counters().streams_closed, 2u);
    EXPECT_EQ(b.client().open_streams(), 0u);
    EXPECT_EQ(b.server().counters().streams_opened, 2u);
    EXPECT_EQ(b.server().counters().streams_closed, 2u);
    EXPECT_EQ(b.server().open_streams(), 0u);
    EXPECT_EQ(b.server_end().received[a], 20000u);
}

} // namespace
} // namespace kwik::transport
