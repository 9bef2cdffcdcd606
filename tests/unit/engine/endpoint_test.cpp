// Stream endpoints on a real transport connection, driven back to back with a client
// connection: discard, echo, pattern source (and its request checks), file store (store and
// serve, and refusals). No DPDK: heap buffers stand in for mbufs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "dataplane/engine/endpoint.hpp"
#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::engine {
namespace {

using transport::heap_buffer;
using transport::stream_id;
using transport::time_ns;

void* heap_allocate(void*, std::size_t size, std::uint8_t** data) {
    heap_buffer* b = heap_buffer::make(size);
    *data = b->data();
    return b;
}

// A client connection and a server connection with an endpoint, wired back to back.
class pair_fixture {
public:
    explicit pair_fixture(const endpoint_config& ec) {
        transport::connection_config c;
        c.tx_ops = &transport::heap_buffer_ops;
        c.rx_ops = &transport::heap_buffer_ops;
        c.side = transport::role::client;
        transport::connection_callbacks ccb;
        ccb.ctx = this;
        ccb.transmit = [](void* ctx, transport::path_id, std::span<const std::uint8_t> b) {
            static_cast<pair_fixture*>(ctx)->to_server.emplace_back(b.begin(), b.end());
        };
        ccb.allocate = heap_allocate;
        ccb.on_readable = [](void* ctx, stream_id id) { static_cast<pair_fixture*>(ctx)->readable.push_back(id); };
        ccb.on_stream_reset = [](void* ctx, stream_id id, std::uint64_t) {
            static_cast<pair_fixture*>(ctx)->resets.push_back(id);
        };
        ccb.on_stream_finished = [](void* ctx, stream_id id) {
            static_cast<pair_fixture*>(ctx)->finished.push_back(id);
        };
        client = std::make_unique<transport::connection>(c, ccb, 0);
        c.side = transport::role::server;
        transport::connection_callbacks scb;
        scb.ctx = this;
        scb.transmit = [](void* ctx, transport::path_id, std::span<const std::uint8_t> b) {
            static_cast<pair_fixture*>(ctx)->to_client.emplace_back(b.begin(), b.end());
        };
        scb.allocate = heap_allocate;
        scb.on_stream_opened = [](void* ctx, stream_id id) { static_cast<pair_fixture*>(ctx)->ep->on_stream_opened(id); };
        scb.on_readable = [](void* ctx, stream_id id) { static_cast<pair_fixture*>(ctx)->ep->on_readable(id); };
        scb.on_data = [](void* ctx, stream_id id, std::uint64_t off, std::span<const std::uint8_t> d) {
            static_cast<pair_fixture*>(ctx)->ep->on_data(id, off, d);
        };
        scb.on_stream_finished = [](void* ctx, stream_id id) { static_cast<pair_fixture*>(ctx)->ep->on_finished(id); };
        scb.on_stream_reset = [](void* ctx, stream_id id, std::uint64_t code) {
            static_cast<pair_fixture*>(ctx)->ep->on_reset(id, code);
        };
        server = std::make_unique<transport::connection>(c, scb, 0);
        client->add_path(1, 0);
        server->add_path(1, 0);
        ep = std::make_unique<endpoint>(ec, *server, tx_allocator{nullptr, heap_allocate, &transport::heap_buffer_ops});
    }

    void write(stream_id id, const std::vector<std::uint8_t>& data, bool fin) {
        for (std::size_t pos = 0; pos < data.size(); pos += 16384) {
            const std::size_t n = std::min<std::size_t>(16384, data.size() - pos);
            heap_buffer* b = heap_buffer::make(n);
            std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(pos), n, b->data());
            pending.push_back({id, b, n});
        }
        if (fin) {
            fins.push_back(id);
        }
    }

    // Runs the two connections until quiet or the time limit, reading what the client gets.
    void run(time_ns limit = 20 * transport::sec) {
        for (; now < limit; now += 100 * transport::us) {
            while (!pending.empty()) {
                auto& p = pending.front();
                if (!client->write(p.id, {p.b->data(), static_cast<std::uint32_t>(p.n), p.b})) {
                    break;
                }
                heap_buffer_release(p.b);
                pending.erase(pending.begin());
            }
            if (pending.empty()) {
                for (stream_id id : fins) {
                    client->finish(id);
                }
                fins.clear();
            }
            client->flush(now);
            server->flush(now);
            deliver(to_server, *server);
            ep->pump();
            server->flush(now);
            deliver(to_client, *client);
            std::vector<stream_id> ids;
            ids.swap(readable);
            for (stream_id id : ids) {
                received_stream = id;
                client->read(id, [](void* ctx, std::uint64_t, std::span<const std::uint8_t> d) {
                    auto* self = static_cast<pair_fixture*>(ctx);
                    auto& v = self->received[self->received_stream];
                    v.insert(v.end(), d.begin(), d.end());
                }, this);
            }
            if (to_server.empty() && to_client.empty() && pending.empty() && ep->idle() && quiet()) {
                break;
            }
        }
    }

    bool quiet() const {
        return client->next_wakeup() > now + 50 * transport::ms && server->next_wakeup() > now + 50 * transport::ms;
    }

    void deliver(std::vector<std::vector<std::uint8_t>>& q, transport::connection& to) {
        std::vector<std::vector<std::uint8_t>> batch;
        batch.swap(q);
        for (auto& d : batch) {
            heap_buffer* b = heap_buffer::make(d.size());
            std::copy(d.begin(), d.end(), b->data());
            to.on_datagram(1, {b->data(), d.size()}, b, false, now);
            heap_buffer_release(b);
        }
    }

    struct write_job {
        stream_id id;
        heap_buffer* b;
        std::size_t n;
    };
    std::unique_ptr<transport::connection> client;
    std::unique_ptr<transport::connection> server;
    std::unique_ptr<endpoint> ep;
    std::vector<std::vector<std::uint8_t>> to_server, to_client;
    std::vector<write_job> pending;
    std::vector<stream_id> fins, readable, resets, finished;
    std::map<stream_id, std::vector<std::uint8_t>> received;
    stream_id received_stream = 0;
    time_ns now = 0;
};

endpoint_config config_of(endpoint_kind kind) {
    endpoint_config c;
    c.kind = kind;
    return c;
}

std::vector<std::uint8_t> bytes_of(std::size_t n, std::uint8_t seed) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] = static_cast<std::uint8_t>(i * 131 + seed + (i >> 9));
    }
    return v;
}

std::vector<std::uint8_t> length_request(std::uint64_t n) {
    std::vector<std::uint8_t> v(8);
    for (int i = 0; i < 8; ++i) {
        v[i] = static_cast<std::uint8_t>(n >> (8 * (7 - i)));
    }
    return v;
}

TEST(endpoint, discard_takes_everything) {
    pair_fixture f(config_of(endpoint_kind::discard));
    const auto a = f.client->open_stream({});
    const auto b = f.client->open_stream({});
    f.write(a, bytes_of(300000, 1), true);
    f.write(b, bytes_of(200000, 2), true);
    f.run();
    EXPECT_EQ(f.ep->counters().bytes_received, 500000u);
    EXPECT_EQ(f.ep->counters().streams, 2u);
    EXPECT_TRUE(f.client->stream_all_acked(a));
    EXPECT_TRUE(f.client->stream_all_acked(b));
}

TEST(endpoint, echo_returns_every_byte_in_order) {
    pair_fixture f(config_of(endpoint_kind::echo));
    const auto id = f.client->open_stream({});
    const auto data = bytes_of(400000, 7);
    f.write(id, data, true);
    f.run();
    EXPECT_EQ(f.received[id], data);
    EXPECT_EQ(f.ep->counters().bytes_sent, data.size());
    EXPECT_NE(std::find(f.finished.begin(), f.finished.end(), id), f.finished.end()) << "no FIN came back";
}

// A tx allocator that runs dry: no buffer for its first 40 calls and for every third after
// that (an mbuf pool drained by unacknowledged data on a blacked-out path).
struct starving_allocator {
    std::uint64_t calls = 0, refused = 0;
};

void* starving_allocate(void* ctx, std::size_t size, std::uint8_t** data) {
    auto* a = static_cast<starving_allocator*>(ctx);
    if (a->calls++ < 40 || a->calls % 3 == 0) {
        ++a->refused;
        return nullptr;
    }
    return heap_allocate(nullptr, size, data);
}

TEST(endpoint, echo_loses_nothing_when_tx_buffers_run_out) {
    pair_fixture f(config_of(endpoint_kind::echo));
    starving_allocator starve;
    f.ep = std::make_unique<endpoint>(config_of(endpoint_kind::echo), *f.server,
                                      tx_allocator{&starve, starving_allocate, &transport::heap_buffer_ops});
    const auto a = f.client->open_stream({});
    const auto b = f.client->open_stream({});
    const auto da = bytes_of(600000, 3);
    const auto db = bytes_of(250000, 4);
    f.write(a, da, true);
    f.write(b, db, true);
    f.run();
    EXPECT_EQ(f.received[a], da);
    EXPECT_EQ(f.received[b], db);
    EXPECT_GT(starve.refused, 40u);
    EXPECT_EQ(f.ep->counters().tx_buffer_waits, starve.refused);
    EXPECT_GT(f.ep->counters().spilled_bytes, 0u);
    EXPECT_EQ(f.ep->counters().io_errors, 0u);
    EXPECT_EQ(f.ep->counters().bytes_sent, da.size() + db.size());
}

TEST(endpoint, pattern_answers_wait_for_tx_buffers) {
    pair_fixture f(config_of(endpoint_kind::pattern));
    starving_allocator starve;
    f.ep = std::make_unique<endpoint>(config_of(endpoint_kind::pattern), *f.server,
                                      tx_allocator{&starve, starving_allocate, &transport::heap_buffer_ops});
    const auto id = f.client->open_stream({});
    f.write(id, length_request(300000), true);
    f.run();
    ASSERT_EQ(f.received[id].size(), 300000u);
    for (std::size_t i = 0; i < 300000; ++i) {
        ASSERT_EQ(f.received[id][i], pattern_byte(id, i)) << "byte " << i;
    }
    EXPECT_GT(f.ep->counters().tx_buffer_waits, 0u);
    EXPECT_EQ(f.ep->counters().io_errors, 0u);
}

TEST(endpoint, pattern_answers_the_requested_length) {
    pair_fixture f(config_of(endpoint_kind::pattern));
    const auto id = f.client->open_stream({});
    const std::uint64_t n = 1000003;
    f.write(id, length_request(n), true);
    f.run();
    const auto& got = f.received[id];
    ASSERT_EQ(got.size(), n);
    for (std::uint64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], pattern_byte(id, i)) << "byte " << i;
    }
    EXPECT_NE(std::find(f.finished.begin(), f.finished.end(), id), f.finished.end());
    EXPECT_EQ(f.ep->counters().requests, 1u);
}

TEST(endpoint, pattern_refuses_malformed_and_oversized_requests) {
    endpoint_config ec = config_of(endpoint_kind::pattern);
    ec.max_pattern_length = 1 << 20;
    pair_fixture f(ec);
    const auto too_long = f.client->open_stream({});
    f.write(too_long, std::vector<std::uint8_t>(9, 0), true);
    const auto too_big = f.client->open_stream({});
    f.write(too_big, length_request(2 << 20), true);
    const auto short_req = f.client->open_stream({});
    f.write(short_req, {0, 0, 1}, true);
    f.run();
    EXPECT_EQ(f.ep->counters().rejected, 3u);
    EXPECT_EQ(f.resets.size(), 3u);
    EXPECT_TRUE(f.received[too_big].empty());
}

class file_store : public ::testing::Test {
protected:
    void SetUp() override {
        dir = std::filesystem::temp_directory_path() / ("kwik-endpoint-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::filesystem::path dir;
};

TEST_F(file_store, stores_streams_and_serves_named_files) {
    endpoint_config ec = config_of(endpoint_kind::file_store);
    ec.directory = dir.string();
    ec.connection_id = 5;
    const auto served = bytes_of(70000, 9);
    {
        std::ofstream out(dir / "served.bin", std::ios::binary);
        out.write(reinterpret_cast<const char*>(served.data()), static_cast<std::streamsize>(served.size()));
    }
    pair_fixture f(ec);
    const auto up = f.client->open_stream({});
    const auto stored = bytes_of(250000, 3);
    f.write(up, stored, true);
    const auto get = f.client->open_stream({});
    const std::string line = "GET served.bin\n";
    f.write(get, {line.begin(), line.end()}, true);
    const auto bad = f.client->open_stream({});
    const std::string escape = "GET ../etc/passwd\n";
    f.write(bad, {escape.begin(), escape.end()}, true);
    const auto tiny = f.client->open_stream({});
    f.write(tiny, {'G', 'E'}, true); // a 2-byte stream that looked like a request: stored
    f.run();

    std::ifstream in(dir / ("c5-s" + std::to_string(up) + ".bin"), std::ios::binary);
    const std::vector<std::uint8_t> on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(on_disk, stored);
    EXPECT_EQ(f.received[get], served);
    EXPECT_NE(std::find(f.resets.begin(), f.resets.end(), bad), f.resets.end()) << "path escape not refused";
    EXPECT_EQ(std::filesystem::file_size(dir / ("c5-s" + std::to_string(tiny) + ".bin")), 2u);
    EXPECT_EQ(f.ep->counters().files_written, 2u);
    EXPECT_EQ(f.ep->counters().files_served, 1u);
    EXPECT_EQ(f.ep->counters().rejected, 1u);
}

} // namespace
} // namespace kwik::engine
