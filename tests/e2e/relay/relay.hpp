// kwik-relay's event loop: one TUN device per path (IFF_TUN | IFF_NO_PI), each IP packet read
// from it impaired per direction and written back into the same device; delayed packets wait
// in a bounded buffer pool ordered by a timer heap (one timerfd); a Unix control socket answers
// one JSON line per command line. Everything runs on the one thread that calls run().
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "tests/e2e/relay/impairment.hpp"
#include "tools/common/net_address.hpp"

namespace kwik::relay {

struct prefix {
    tools::ip_address address;
    unsigned length = 0;
};

struct path_spec {
    std::string name;
    std::string tun_device;
};

struct options {
    std::string control_path;
    std::vector<path_spec> paths;
    std::vector<prefix> up_from; // a packet whose source is in one of these travels "up"
    std::uint64_t seed = 1;
    std::uint32_t pool = 4096;
};

enum class direction : std::uint8_t { up = 0, down = 1 };

class relay {
public:
    // Creates and brings up the TUN devices and listens on the control socket.
    static result<std::unique_ptr<relay>> create(const options& o);
    ~relay();
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    // Until SIGINT or SIGTERM; then the control socket is removed (the devices go with the fds).
    result<void> run();

    // One control line in, one JSON answer out (no newline); never throws on bad input.
    std::string answer(std::string_view line);

private:
    struct path {
        std::string name;
        std::string device;
        int fd = -1;
        bool blackout = false;
        std::uint32_t epoch = 0;      // reset() counts: packets held from before one are no longer counted
        std::uint64_t malformed = 0;  // not IPv4/IPv6, or shorter than its header
        std::uint64_t link_local = 0; // IPv6 to ff02::/16 (MLD, router solicitations): never routed
        std::array<direction_state, 2> dirs;
    };
    struct held {
        std::uint64_t due_ns;
        std::uint64_t seq; // FIFO among equal due times
        std::uint32_t slot;
        std::uint32_t epoch; // the path's epoch when it was queued
        std::uint16_t length;
        std::uint16_t path;
        direction dir;
        bool operator>(const held& o) const noexcept { return due_ns != o.due_ns ? due_ns > o.due_ns : seq > o.seq; }
    };
    struct client {
        int fd;
        std::string input;
    };

    explicit relay(const options& o);
    result<void> open_devices();
    result<void> open_control();
    void on_tun_readable(std::uint16_t p);
    void on_packet(std::uint16_t p, const std::uint8_t* data, std::size_t len, std::uint64_t now);
    // counted: false for a packet queued before the path's counters were reset.
    void send(std::uint16_t p, direction d, const std::uint8_t* data, std::size_t len, bool counted = true);
    void on_timer();
    void arm_timer();
    void on_accept();
    void on_client(std::size_t index);
    bool is_up(const std::uint8_t* data, std::size_t len, bool& malformed) const noexcept;
    path* find(std::string_view name);
    std::string stats_json(std::string_view name);

    options _options;
    std::vector<path> _paths;
    int _epoll = -1;
    int _timer = -1;
    int _listen = -1;
    int _signal = -1;
    std::vector<client> _clients;
    std::vector<std::uint8_t> _pool;
    std::vector<std::uint32_t> _free;
    std::priority_queue<held, std::vector<held>, std::greater<>> _heap;
    std::uint64_t _seq = 0;
    std::uint64_t _armed_ns = 0;
    std::vector<std::uint8_t> _scratch;
};

// "10.1.0.0/16", "fd00::/64"; the error names the text.
result<prefix> parse_prefix(std::string_view text);

} // namespace kwik::relay
