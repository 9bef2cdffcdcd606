// The connections one thread owns, driven by one hierarchical timer wheel: each connection has
// one timer, armed at its next_wakeup(), so an idle connection costs nothing per tick, only
// when its own keep-alive or idle timeout comes (issue 3: "a million idle connections cost
// nothing per tick"). kwikd workers own one each (kwik-peer, with one connection, arms its own
// timerfd). One thread.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "dataplane/transport/connection.hpp"
#include "dataplane/transport/timer_wheel.hpp"

namespace kwik::transport {

class connection_wheel {
public:
    connection_wheel(time_ns tick, time_ns now);
    ~connection_wheel();
    connection_wheel(const connection_wheel&) = delete;
    connection_wheel& operator=(const connection_wheel&) = delete;

    // Set-up path (allocates the connection's timer entry).
    bool add(connection& c);
    bool remove(connection& c);

    // After the owner handed c a datagram or data to send: re-arm c at its next wakeup.
    void touch(connection& c) noexcept;
    // Runs every connection whose wakeup is due (flush, then re-arm); returns how many ran.
    std::size_t poll(time_ns now) noexcept;
    time_ns next_expiry() const noexcept { return _wheel.next_expiry(); }
    std::size_t size() const noexcept { return _entries.size(); }
    const timer_wheel_stats& stats() const noexcept { return _wheel.stats(); }

private:
    struct entry {
        entry(connection* conn, connection_wheel* owner) noexcept;
        timer t;
        connection* c;
        connection_wheel* wheel;
    };
    static void fire(timer& t, time_ns now) noexcept;
    void arm(entry& e) noexcept;

    timer_wheel _wheel;
    std::unordered_map<connection*, std::unique_ptr<entry>> _entries;
    std::size_t _ran = 0;
};

} // namespace kwik::transport
