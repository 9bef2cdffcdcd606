// One KCP session over a connected stream socket, plain TCP or TLS 1.3 (PROTOCOL.md 11): frames
// in through frame_reader, a send queue ordered by MessageHeader.priority with TTLs honoured,
// message ids, read and idle timeouts, counters. Non-blocking and event driven, for an epoll
// loop (level-triggered): the owner calls on_readable() / on_writable() when the socket is
// ready, asks wants_write() for its EPOLLOUT interest and calls poll() at next_deadline(). Time
// always comes from the caller, so tests choose it. One thread owns a channel.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "controlplane/kcp/framing.hpp"
#include "controlplane/kcp/tls.hpp"

namespace kwik::kcp {

using v3::KCPMessage;

// The two clocks a session uses: steady for its timeouts, wall (ms since the Unix epoch) for
// header.timestamp_ms and TTLs, which cross machines.
struct clock_sample {
    std::chrono::steady_clock::time_point steady{};
    std::uint64_t wall_ms = 0;

    static clock_sample now() noexcept;
    // Both clocks moved by d (tests step time with it).
    clock_sample operator+(std::chrono::milliseconds d) const noexcept {
        return {steady + d, wall_ms + static_cast<std::uint64_t>(d.count())};
    }
};

struct channel_options {
    std::size_t max_message_size = default_max_message_size; // both directions
    // A frame (or the TLS handshake) begun and not complete after this long ends the session;
    // 0: never.
    std::chrono::milliseconds read_timeout{10'000};
    // No message received for this long ends the session; 0: never.
    std::chrono::milliseconds idle_timeout{120'000};
    // Written into outgoing headers whose connection_id is empty; set_connection_id() changes it.
    std::string connection_id;
    // Bytes queued and not yet written (unsent_bytes()) above which the owner stops reading the
    // socket (wants_read() false): a peer that pipelines requests and never reads the answers
    // cannot grow the queue without bound. Still above it after read_timeout (10 s when that
    // is 0): the session ends (send_backlog). 0: no limit.
    std::size_t max_unsent_bytes = 4 * 1024 * 1024;
};

// Why a channel closed.
enum class close_cause : std::uint8_t {
    none,         // still open
    local,        // close() or close_when_sent()
    peer_closed,  // end of stream (or TLS close_notify) at a frame boundary
    frame_error,  // frame_reader refused a frame, or the stream ended inside one
    tls_error,    // handshake or record failure, including a pin mismatch
    read_timeout, // a frame or the handshake took longer than read_timeout
    idle_timeout, // nothing received for idle_timeout
    socket_error, // recv/send failed (reset, ...)
    send_backlog, // more than max_unsent_bytes unsent for read_timeout: the peer does not read
};
std::string_view to_string(close_cause c) noexcept;

struct channel_counters {
    std::uint64_t messages_in = 0;  // delivered to the owner
    std::uint64_t messages_out = 0; // handed to the socket (or TLS)
    std::uint64_t bytes_in = 0;     // from the socket, TLS records included
    std::uint64_t bytes_out = 0;    // to the socket, TLS records included
    std::uint64_t expired_in = 0;   // received after their TTL: dropped
    std::uint64_t expired_out = 0;  // TTL passed in the send queue: dropped
    std::uint64_t unsent_on_close = 0; // still queued when the channel closed
    // Indexed by frame_error; at most one per channel (a refused frame ends it).
    std::array<std::uint64_t, frame_error_count> frames_rejected{};
};

// A message the channel dropped because its TTL had passed.
struct dropped_message {
    bool outgoing = false;
    std::uint64_t message_id = 0;
    std::string payload; // payload_name()
    std::string reason;
};

class channel {
public:
    enum class phase : std::uint8_t { handshaking, open, closed };

    // Takes ownership of fd (a connected stream socket), makes it non-blocking and sets
    // TCP_NODELAY where it applies; the fd is closed when the channel is destroyed.
    static result<channel> plain(int fd, channel_options options, clock_sample now);
    // TLS 1.3 over fd, as server or client according to context. The handshake runs inside
    // on_readable()/on_writable(); messages sent before it ends wait in the queue.
    static result<channel> tls(int fd, const tls_context& context, channel_options options,
                               clock_sample now);

    channel(channel&&) noexcept;
    channel& operator=(channel&&) noexcept;
    ~channel();

    int fd() const noexcept { return _fd.fd; }
    bool is_tls() const noexcept { return _tls != nullptr; }
    phase current_phase() const noexcept { return _phase; }
    bool closed() const noexcept { return _phase == phase::closed; }
    close_cause cause() const noexcept { return _cause; }
    // Why it closed, for a person ("frame at stream offset 0: ...", "the server's public key
    // does not match the pin: expected ..., got ...").
    const std::string& close_reason() const noexcept { return _close_reason; }

    // Queues m for sending and returns its message_id. The channel assigns header.message_id
    // (1, 2, 3, ... per channel: any value set is replaced), fills timestamp_ms when 0 and
    // connection_id when empty. Refused (nothing queued): the channel is closed or closing, m has
    // no payload, its priority is not a MessagePriority, or its frame is above
    // max_message_size. Nothing is written here: the owner waits for wants_write().
    result<std::uint64_t> send(KCPMessage m, clock_sample now);

    void on_readable(clock_sample now);
    void on_writable(clock_sample now);
    // True when on_writable() has bytes to write: pending output, or queued messages once the
    // handshake is done.
    bool wants_write() const noexcept;
    // False while more than max_unsent_bytes wait to be written: the owner then leaves the
    // socket's read interest off (on_readable still reads when called, e.g. for a hang-up).
    bool wants_read() const noexcept {
        return !closed() && (_options.max_unsent_bytes == 0 || unsent_bytes() <= _options.max_unsent_bytes);
    }
    // Serialized bytes of the queued messages plus output not yet taken by the socket.
    std::size_t unsent_bytes() const noexcept { return _queued_bytes + (_out.size() - _out_pos); }
    // Runs the timeouts and drops queued messages whose TTL passed.
    void poll(clock_sample now);
    // When poll() has a timeout to check next (time_point::max() when none).
    std::chrono::steady_clock::time_point next_deadline() const noexcept;

    // The next message received, in order of arrival; false when none is waiting.
    bool receive(KCPMessage& out);
    // The next TTL drop to report (the last 64 are kept; counters count them all).
    bool next_drop(dropped_message& out);

    // Closes now: a TLS close_notify is sent if the socket takes it at once, then shutdown().
    // Queued messages are discarded (counted in unsent_on_close).
    void close(std::string reason);
    // Stops accepting sends and closes once everything queued has been written (or after
    // read_timeout, 10 s when that is 0): an error reply, then the end of the session.
    void close_when_sent(std::string reason, clock_sample now);

    void set_connection_id(std::string id) { _options.connection_id = std::move(id); }
    const channel_options& options() const noexcept { return _options; }
    const channel_counters& counters() const noexcept { return _counters; }
    // Messages waiting in the send queue (all priorities).
    std::size_t queued() const noexcept;
    std::uint64_t last_message_id() const noexcept { return _next_id - 1; }

private:
    struct owned_fd {
        int fd = -1;
        owned_fd() = default;
        explicit owned_fd(int f) : fd(f) {}
        owned_fd(owned_fd&& o) noexcept;
        owned_fd& operator=(owned_fd&& o) noexcept;
        ~owned_fd();
    };

    channel(int fd, channel_options options, clock_sample now);
    void fail(close_cause cause, std::string reason);
    void finish_close(close_cause cause, std::string reason);
    void take_plaintext(clock_sample now);
    void deliver(clock_sample now);
    void record_drop(bool outgoing, const KCPMessage& m, std::string reason);
    bool expired_in_queue(const KCPMessage& m, clock_sample now);
    void fill_output(clock_sample now);
    bool flush_output();
    void drop_expired(clock_sample now);
    std::chrono::milliseconds backlog_time() const noexcept; // read_timeout, or 10 s when 0
    bool all_written() const noexcept { return _out_pos == _out.size() && queued() == 0; }

    owned_fd _fd;
    std::unique_ptr<tls_session> _tls;
    channel_options _options;
    frame_reader _reader;
    phase _phase = phase::open;
    close_cause _cause = close_cause::none;
    std::string _close_reason;

    // Send side: one FIFO per MessagePriority (index = priority), then bytes for the socket.
    std::array<std::deque<KCPMessage>, 4> _queue;
    std::size_t _queued_bytes = 0; // ByteSizeLong() of the messages in _queue
    // Since when unsent_bytes() has been above max_unsent_bytes (poll() looks); none: not above.
    std::optional<std::chrono::steady_clock::time_point> _backlog_since;
    std::string _out;         // frames (plain) or TLS records, not yet written
    std::size_t _out_pos = 0; // written so far
    std::string _plain;       // TLS: plaintext scratch, both directions
    std::uint64_t _next_id = 1;
    bool _closing = false; // close_when_sent() was called
    std::string _closing_reason;
    std::chrono::steady_clock::time_point _closing_deadline{};

    // Receive side.
    std::deque<KCPMessage> _inbox;
    std::deque<dropped_message> _drops;
    // Since when a frame (or the handshake) has been incomplete; nullopt: nothing pending.
    std::optional<std::chrono::steady_clock::time_point> _pending_since;
    std::chrono::steady_clock::time_point _last_received;

    channel_counters _counters;
};

} // namespace kwik::kcp
