// A blocking KCP client for kwikctl and tests: connect to host:port (plain TCP, or TLS 1.3 with a
// pinned server key), then request() = send one message and wait for the reply that
// correlation_id() matches to it (PROTOCOL.md 11.5). Thread-safe: any number of threads may
// call request(), send() and receive() at once over the one channel; whichever thread is
// waiting drives the socket for all of them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "controlplane/kcp/channel.hpp"
#include "controlplane/kcp/correlation.hpp"
#include "controlplane/kcp/tls.hpp"

namespace kwik::kcp {

// A client's session: no idle timeout, it may wait as long as it likes between requests.
inline channel_options client_channel_defaults() {
    channel_options o;
    o.idle_timeout = std::chrono::milliseconds(0);
    return o;
}

struct client_options {
    std::optional<key_pin> pin; // TLS 1.3 with this server key; none: plain TCP
    std::chrono::milliseconds connect_timeout{5'000}; // TCP connect plus the TLS handshake
    channel_options channel = client_channel_defaults();
};

class blocking_client {
public:
    // address: "host:port", "192.0.2.1:7708" or "[2001:db8::1]:7708"; every address the name
    // resolves to is tried in turn. A TLS pin mismatch fails here, with both hashes named.
    static result<std::unique_ptr<blocking_client>> connect(std::string_view address,
                                                            const client_options& options);
    ~blocking_client();
    blocking_client(const blocking_client&) = delete;
    blocking_client& operator=(const blocking_client&) = delete;

    // Sends request and waits for its reply: the first received message whose correlation
    // answers the request's. A TransportResponse IN_PROGRESS counts as that reply; the ones
    // after it answer no pending request and come out of receive(). Fails when the message
    // expects no reply, the session closes or timeout passes.
    result<KCPMessage> request(KCPMessage request, std::chrono::milliseconds timeout);
    // Sends a message that expects no reply; returns its message_id once it is written to the
    // socket.
    result<std::uint64_t> send(KCPMessage message, std::chrono::milliseconds timeout);
    // The next received message that answered no pending request, in order of arrival.
    result<KCPMessage> receive(std::chrono::milliseconds timeout);

    void close();
    channel_counters counters() const;
    // Messages dropped from the receive() queue because it held max_unsolicited already.
    std::uint64_t unsolicited_dropped() const;
    static constexpr std::size_t max_unsolicited = 4096;

private:
    struct waiter {
        correlation key;
        std::optional<KCPMessage> reply;
    };

    explicit blocking_client(channel ch);
    // Runs the socket until done() (under _mutex), the deadline passes or the channel closes.
    template <class Done>
    bool wait(std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point deadline,
              Done done);
    void drive_once(std::unique_lock<std::mutex>& lock,
                    std::chrono::steady_clock::time_point deadline);
    void dispatch();
    void wake_driver();
    error closed_error(std::string_view what) const;

    mutable std::mutex _mutex;
    std::condition_variable _turn; // the driving thread finished a round
    channel _channel;
    int _wake_fd = -1; // eventfd: a new message to write, for the thread in poll()
    bool _driving = false;
    std::list<waiter*> _waiters; // oldest first: equal keys are answered in order
    std::deque<KCPMessage> _unsolicited;
    std::uint64_t _unsolicited_dropped = 0;
};

} // namespace kwik::kcp
