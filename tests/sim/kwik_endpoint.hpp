// A Kwik endpoint in the simulator: one transport::connection over simulated paths, with the
// applications the scenario tests need (bulk sources of deterministic bytes, periodic small
// messages, receivers that verify every byte exactly once and time deliveries).
// Test support; single-threaded like the simulator.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/transport/connection.hpp"
#include "tests/sim/network.hpp"

namespace kwik::sim {

// The deterministic content every source sends and every receiver checks: random-looking bytes,
// or, for streams opened with compress = true, English-like text that deflate can shrink.
std::uint8_t content_byte(transport::stream_id id, std::uint64_t offset) noexcept;
std::uint8_t text_byte(transport::stream_id id, std::uint64_t offset) noexcept;

struct received_stream {
    std::uint64_t bytes = 0;          // distinct bytes delivered
    std::uint64_t next_ordered = 0;   // ordered streams: the next offset expected
    std::vector<bool> seen;           // unordered streams: which bytes were delivered
    std::uint64_t duplicate_bytes = 0; // bytes delivered twice (must stay 0)
    std::uint64_t corrupt_bytes = 0;   // bytes not equal to content_byte (must stay 0)
    std::uint64_t out_of_order = 0;    // ordered streams: deliveries not at next_ordered (must stay 0)
    bool finished = false;
    time_ns finished_at = 0;
    std::vector<std::pair<std::uint64_t, time_ns>> arrivals; // (end offset, time), when timed
};

struct path_event_record {
    transport::path_id path;
    transport::path_event event;
    time_ns at;
};

class kwik_endpoint : public endpoint {
public:
    // sim_paths[i] is the simulator path that carries transport path id i + 1.
    kwik_endpoint(network& net, node_id self, const transport::connection_config& config,
                  std::vector<std::size_t> sim_paths);
    ~kwik_endpoint() override;

    transport::connection& conn() noexcept { return *_conn; }
    const transport::connection& conn() const noexcept { return *_conn; }

    // Applications.
    transport::stream_id add_bulk(const transport::stream_options& o, std::uint64_t size);
    // A message of message_size bytes every interval, count times, starting at start.
    transport::stream_id add_messages(const transport::stream_options& o, std::uint64_t message_size,
                                      time_ns interval, std::uint32_t count, time_ns start);
    // Receiver behaviour: read as soon as data is readable (default), or drain every interval.
    void set_read_interval(time_ns interval) noexcept { _read_interval = interval; }
    void set_time_arrivals(bool on) noexcept { _time_arrivals = on; }

    const std::map<transport::stream_id, received_stream>& received() const noexcept { return _received; }
    const std::vector<path_event_record>& path_events() const noexcept { return _path_events; }
    // Message latencies (write of the first byte -> delivery of the last), per message stream.
    std::vector<time_ns> message_latencies(const kwik_endpoint& receiver, transport::stream_id id) const;
    bool sources_done() const;            // every source fully written, finished and acknowledged
    std::uint64_t max_receive_buffered() const noexcept { return _max_buffered; }
    std::uint64_t bytes_delivered() const noexcept { return _delivered; }

    // endpoint
    void on_datagram(std::size_t path, std::span<const std::uint8_t> bytes, bool ecn_ce, time_ns now) override;
    time_ns next_wakeup() const override;
    void on_wakeup(time_ns now) override;

private:
    struct source {
        transport::stream_id id = 0;
        std::uint64_t size = 0;
        std::uint64_t written = 0;
        bool finished = false;
        // messages
        std::uint64_t message_size = 0;
        time_ns interval = 0;
        std::uint32_t count = 0;
        std::uint32_t sent_messages = 0;
        time_ns next_message = 0;
        std::vector<time_ns> message_times;
    };

    static void on_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet);
    static void* on_allocate(void* ctx, std::size_t size, std::uint8_t** data);
    static void on_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data);
    static void on_readable(void* ctx, transport::stream_id id);
    static void on_finished(void* ctx, transport::stream_id id);
    static void on_opened(void* ctx, transport::stream_id id);
    static void on_path_event(void* ctx, transport::path_id path, transport::path_event e);
    static void on_read(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data);

    void pump(time_ns now);
    void drain(time_ns now);
    void record(transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data, bool ordered);

    network& _net;
    node_id _self;
    std::vector<std::size_t> _sim_paths;
    std::unique_ptr<transport::connection> _conn;
    std::vector<source> _sources;
    std::map<transport::stream_id, received_stream> _received;
    std::vector<transport::stream_id> _readable;
    std::vector<path_event_record> _path_events;
    time_ns _read_interval = 0;
    time_ns _next_read = 0;
    bool _time_arrivals = false;
    transport::stream_id _reading = 0;
    std::uint64_t _max_buffered = 0;
    std::uint64_t _delivered = 0;
};

} // namespace kwik::sim
