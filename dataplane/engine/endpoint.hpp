// Stream endpoints: what the appliance does with the streams of a connection, chosen per
// connection by the control plane (issue 4): discard, echo, pattern source, file store.
// They sit on top of one transport::connection and run on the thread that owns it (a worker
// lcore); they see the connection's callbacks and write through its API.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/transport/connection.hpp"

namespace kwik::engine {

enum class endpoint_kind : std::uint8_t {
    discard,    // read and drop everything
    echo,       // send back, on the same stream, every byte in the order it is delivered
    pattern,    // a request (8-byte big-endian length, then FIN) is answered with that many
                // bytes of pattern_byte() and FIN on the same stream
    file_store, // every stream is written to <directory>/c<connection>-s<stream>.bin; a stream
                // that starts with "GET <name>\n" is answered with the file <directory>/<name>
};

std::string_view to_string(endpoint_kind k) noexcept;

struct endpoint_config {
    endpoint_kind kind = endpoint_kind::discard;
    std::string directory;                              // file_store
    std::uint64_t max_pattern_length = std::uint64_t{1} << 40; // pattern: larger requests are reset
    std::uint64_t connection_id = 0;                    // names stored files
};

// Byte `offset` of the pattern source's answer on stream `id`: deterministic, so the peer checks
// every byte without state (SplitMix64 of the stream and offset / 8; docs/PROTOCOL.md 14).
std::uint8_t pattern_byte(transport::stream_id id, std::uint64_t offset) noexcept;

struct endpoint_counters {
    std::uint64_t streams = 0, bytes_received = 0, bytes_sent = 0, files_written = 0, files_served = 0;
    std::uint64_t requests = 0, rejected = 0, io_errors = 0;
    // No tx buffer when one was needed: the bytes waited (echo: on the heap), nothing was lost.
    std::uint64_t tx_buffer_waits = 0, spilled_bytes = 0;
};

// Buffers for the data an endpoint sends (echo copies, pattern bytes, file contents), owned
// under the connection's tx_ops: an mbuf pool in kwikd, heap_buffer elsewhere.
struct tx_allocator {
    void* ctx = nullptr;
    void* (*allocate)(void* ctx, std::size_t size, std::uint8_t** data) = nullptr;
    const transport::buffer_ops* ops = nullptr;
};

class endpoint {
public:
    endpoint(const endpoint_config& config, transport::connection& conn, const tx_allocator& alloc);
    ~endpoint();
    endpoint(const endpoint&) = delete;
    endpoint& operator=(const endpoint&) = delete;

    // Route the connection's callbacks here (see endpoint_callbacks()).
    void on_stream_opened(transport::stream_id id);
    void on_readable(transport::stream_id id);
    void on_data(transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data);
    void on_finished(transport::stream_id id);
    void on_reset(transport::stream_id id, std::uint64_t code);

    // Writes what is waiting (echo backlog, pattern answers, files) as the send buffers allow,
    // and reads streams that waited for the backlog. Call after the connection made progress.
    // Visits only the streams that have such work, so quiet and finished streams cost nothing.
    void pump();
    bool idle() const noexcept;

    const endpoint_counters& counters() const noexcept { return _counters; }
    const endpoint_config& config() const noexcept { return _config; }

private:
    // Bytes waiting to be written on a stream: in a tx buffer (owner, data), or, when no tx
    // buffer could be had (an mbuf pool exhausted while paths hold unacknowledged data), copied
    // to the heap (owner nullptr, bytes in spill) until pump() gets a tx buffer for them. Never
    // dropped: an echo stream reads nothing more while its backlog is not empty, so a spill is
    // at most one delivery (bounded by the stream's receive window).
    struct backlog_item {
        void* owner = nullptr;
        std::span<const std::uint8_t> data;
        std::vector<std::uint8_t> spill;
    };

    struct stream_job {
        // echo: bytes received, not yet written back; answers: chunks the send buffer refused
        std::deque<backlog_item> backlog;
        bool peer_finished = false;
        bool finished = false;
        bool readable = false;
        // pattern and file serving: what remains to send
        std::uint64_t answer_length = 0;
        std::uint64_t answered = 0;
        int serve_fd = -1;
        // request parsing (pattern: 8 bytes; file_store: up to a line)
        std::string head;
        bool head_done = false;
        // file_store: the file this stream is stored in
        int store_fd = -1;
        bool rejected = false; // reset with an error: nothing more is done for it
        bool pending = false;  // listed in _pending
    };

    stream_job& job(transport::stream_id id);
    bool has_work(const stream_job& j) const noexcept;
    void note(transport::stream_id id, stream_job& j);
    void pump_job(transport::stream_id id, stream_job& j);
    void consume(transport::stream_id id, stream_job& j, std::uint64_t offset, std::span<const std::uint8_t> data);
    void read_stream(transport::stream_id id);
    bool send_copy(transport::stream_id id, std::span<const std::uint8_t> data);
    void answer(transport::stream_id id, stream_job& j);
    void close_job(stream_job& j);
    bool start_store(transport::stream_id id, stream_job& j);
    void store(stream_job& j, std::uint64_t offset, std::span<const std::uint8_t> data);
    void serve(transport::stream_id id, stream_job& j);
    void reject(transport::stream_id id, stream_job& j);
    static void on_read(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data);

    endpoint_config _config;
    transport::connection& _conn;
    tx_allocator _alloc;
    std::unordered_map<transport::stream_id, stream_job> _jobs; // node-based: references stay valid
    // Streams pump() has work for (has_work), each once; _pumping is the list being worked.
    // Walking every job instead cost about 280 instructions per packet with 256 finished
    // streams on a discard connection (perf/RESULTS.md 6).
    std::vector<transport::stream_id> _pending;
    std::vector<transport::stream_id> _pumping;
    transport::stream_id _reading = 0;
    endpoint_counters _counters;
};

} // namespace kwik::engine
