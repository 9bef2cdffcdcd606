// kwik-peer's paths on kernel UDP sockets: one socket per path, bound to a local address and
// connect()ed to the remote end, received with recvmmsg into pooled buffers and sent with
// sendmmsg from per-path batches. Also the path syntax of the command line
// (LOCAL_IP[:PORT][%DEV]=REMOTE_IP:PORT). The sockets belong to the data thread; parsing is
// pure (any thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include "common/result.hpp"
#include "tools/common/net_address.hpp"
#include "tools/peer/packet_pool.hpp"

namespace kwik::peer {

using kwik::error;
using kwik::result;

struct path_spec {
    tools::ip_address local;
    std::uint16_t local_port = 0; // 0: the kernel picks one (an ephemeral port)
    std::string device;           // SO_BINDTODEVICE; empty: none
    tools::ip_address remote;
    std::uint16_t remote_port = 0; // 0 (server only): the first datagram's sender becomes the remote
    bool standby = false;
};

// "10.0.0.1=10.0.0.2:7707", "10.0.0.1:40000%veth1=10.0.0.2:7707", "[fd00::1]:0=[fd00::2]:7707".
// The reason reads after "<flag>: ". remote_port_zero: accept REMOTE_IP:0 (the server's "learn
// the client's port").
result<path_spec> parse_path_spec(std::string_view text, bool remote_port_zero);

// Per-path socket counters (single writer: the data thread).
struct socket_counters {
    std::uint64_t rx_packets = 0, rx_bytes = 0, rx_batches = 0;
    std::uint64_t rx_truncated = 0;    // datagrams larger than a buffer: dropped
    std::uint64_t rx_no_buffer = 0;    // the pool was exhausted: the socket was left unread
    std::uint64_t rx_foreign = 0;      // from another sender than the path's remote
    std::uint64_t rx_ecn_ce = 0;       // arrived marked CE
    std::uint64_t kernel_drops = 0;    // SO_RXQ_OVFL: the socket's receive queue overflowed
    std::uint64_t tx_packets = 0, tx_bytes = 0, tx_batches = 0;
    std::uint64_t tx_would_block = 0;  // sendmmsg stopped at EAGAIN/ENOBUFS: the rest waits for EPOLLOUT
    std::uint64_t tx_dropped = 0;      // the path's batch was full while blocked: packet dropped (loss recovery resends)
    std::uint64_t tx_no_remote = 0;    // nothing to send to yet (server before the client's first datagram)
    std::uint64_t tx_errors = 0;       // other sendmmsg errors (packets dropped)
    std::uint64_t refused = 0;         // ECONNREFUSED: ICMP port unreachable from the remote
};

// One received datagram, handed to the receive sink. The sink owns one reference to buffer
// (packet_pool::ops) and must release it.
using receive_sink = void (*)(void* ctx, std::size_t path, pooled_buffer* buffer, std::uint32_t length,
                              bool ecn_ce) noexcept;

class udp_paths {
public:
    static constexpr std::size_t batch = 32;         // recvmmsg/sendmmsg
    static constexpr std::size_t tx_slots = 256;     // per path: packets waiting for sendmmsg
    static constexpr std::size_t tx_slot_size = 2048;

    // Opens and binds every path's socket. The pool supplies receive buffers.
    static result<std::unique_ptr<udp_paths>> open(const std::vector<path_spec>& specs, packet_pool& rx_pool);
    ~udp_paths();
    udp_paths(const udp_paths&) = delete;
    udp_paths& operator=(const udp_paths&) = delete;

    std::size_t count() const noexcept { return _paths.size(); }
    int fd(std::size_t i) const noexcept;
    const socket_counters& counters(std::size_t i) const noexcept;
    // "127.0.0.1:40001" (the bound port once known), "127.0.0.2:7707" ("...:0" until learned).
    std::string local_text(std::size_t i) const;
    std::string remote_text(std::size_t i) const;
    bool has_remote(std::size_t i) const noexcept;
    // The socket buffer sizes the kernel granted (bytes, as getsockopt reports them).
    int receive_buffer(std::size_t i) const noexcept;
    int send_buffer(std::size_t i) const noexcept;

    // Up to one batch of datagrams from path i; returns how many were handed to sink (0: the
    // socket is empty or no buffer was free).
    std::size_t receive(std::size_t i, receive_sink sink, void* ctx) noexcept;
    // Copies packet into path i's batch (the transport's transmit callback); a full batch is
    // sent at once.
    void queue(std::size_t i, std::span<const std::uint8_t> packet) noexcept;
    // Sends every batch; true when some path still holds packets (the kernel said EAGAIN).
    bool send_all() noexcept;
    bool blocked(std::size_t i) const noexcept;
    // A path learning its remote (remote port 0) forgets it, for the next client.
    void forget_remote(std::size_t i) noexcept;

private:
    struct path;
    explicit udp_paths(packet_pool& pool);
    bool send_path(path& p) noexcept;

    packet_pool& _pool;
    std::vector<std::unique_ptr<path>> _paths;
};

} // namespace kwik::peer
