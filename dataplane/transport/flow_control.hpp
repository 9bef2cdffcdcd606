// Flow-control credit for one stream or for the whole connection (PROTOCOL.md 6.2, 6.3, 6.8,
// 6.9): receive_credit is what we let the peer send, send_credit what the peer lets us send.
// Plain arithmetic, no allocation; owned by the connection's thread.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kwik::transport {

// Receiver side. The limit we advertised is consumed + window at the time of the last update,
// so the peer can never have more than `window` bytes buffered here beyond what the
// application took: that is what bounds reassembly memory. A new limit is worth a control
// frame once the application has consumed half a window since the last one (QUIC's usual
// rule: one MAX_DATA per half window keeps the peer from stalling without flooding updates).
// For a stream, highest_offset is the reassembler's highest_received(); for the connection it
// is the sum of every stream's highest_received().
class receive_credit {
public:
    explicit receive_credit(std::uint64_t window) noexcept : _window(window), _limit(window) {}

    // false: the peer sent past the limit it was given (FLOW_CONTROL_ERROR); nothing recorded.
    [[nodiscard]] bool on_received(std::uint64_t highest_offset) noexcept {
        if (highest_offset > _limit) {
            return false;
        }
        _received = std::max(_received, highest_offset);
        return true;
    }
    void on_consumed(std::uint64_t bytes) noexcept { _consumed += bytes; }
    bool update_due() const noexcept {
        const std::uint64_t next = next_limit();
        return next > _limit && next - _limit >= _window / 2;
    }
    // Never below the limit already granted: a smaller window (set_window) waits until
    // consumption carries consumed + window past it.
    std::uint64_t next_limit() const noexcept { return std::max(_limit, _consumed + _window); }
    // Limits never go down: an older, smaller value is ignored.
    void on_update_sent(std::uint64_t limit) noexcept { _limit = std::max(_limit, limit); }
    std::uint64_t limit() const noexcept { return _limit; }

    std::uint64_t window() const noexcept { return _window; }
    // A new window (auto-tuning, or the control plane) applies from the next update on; the
    // limit stays where it is (limits only increase).
    void set_window(std::uint64_t window) noexcept { _window = window; }
    std::uint64_t received() const noexcept { return _received; }
    std::uint64_t consumed() const noexcept { return _consumed; }

private:
    std::uint64_t _window;
    std::uint64_t _limit;
    std::uint64_t _received = 0;
    std::uint64_t _consumed = 0;
};

// Sender side. For a stream, used() tracks the highest offset sent; for the connection, the sum
// of new (never retransmitted) bytes on every stream. A retransmission costs no credit.
class send_credit {
public:
    explicit send_credit(std::uint64_t initial_limit) noexcept : _limit(initial_limit) {}

    void on_limit(std::uint64_t limit) noexcept { _limit = std::max(_limit, limit); }
    std::uint64_t limit() const noexcept { return _limit; }
    std::uint64_t used() const noexcept { return _used; }
    std::uint64_t available() const noexcept { return _limit > _used ? _limit - _used : 0; }
    void on_sent(std::uint64_t new_bytes) noexcept { _used += new_bytes; }
    bool blocked() const noexcept { return available() == 0; }

    // DATA_BLOCKED / STREAM_DATA_BLOCKED once per limit: due while blocked at a limit that has
    // not been reported yet.
    bool blocked_report_due() const noexcept {
        return blocked() && (!_blocked_reported || _blocked_reported_at != _limit);
    }
    void on_blocked_sent() noexcept {
        _blocked_reported = true;
        _blocked_reported_at = _limit;
    }

private:
    std::uint64_t _limit;
    std::uint64_t _used = 0;
    std::uint64_t _blocked_reported_at = 0;
    bool _blocked_reported = false;
};

} // namespace kwik::transport
