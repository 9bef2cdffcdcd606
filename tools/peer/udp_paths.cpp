// Kernel UDP sockets for kwik-peer's paths; see udp_paths.hpp.
#include "tools/peer/udp_paths.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace kwik::peer {

namespace {

// Socket buffers: a 1 Gbit/s path with 20 ms of RTT holds 2.5 MB in flight; twice that, so a
// burst of 64 packets per flush and the receiver's scheduling delay do not overflow them.
constexpr int socket_buffer_bytes = 8 << 20;

result<std::uint16_t> parse_port(std::string_view text, std::string_view what, bool zero_ok) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535 ||
        (value == 0 && !zero_ok)) {
        return error{std::string(what) + " port \"" + std::string(text) + "\" is not " + (zero_ok ? "0-65535" : "1-65535")};
    }
    return static_cast<std::uint16_t>(value);
}

// "IP", "IP:PORT", "[IPV6]", "[IPV6]:PORT" or a bare IPv6 address (no port).
result<tools::endpoint> parse_end(std::string_view text, std::string_view what, bool port_required, bool zero_ok) {
    std::string_view host = text;
    std::string_view port;
    bool has_port = false;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return error{std::string(what) + " \"" + std::string(text) + "\" has no closing ']'"};
        }
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') {
                return error{std::string(what) + " \"" + std::string(text) + "\": expected ':' after ']'"};
            }
            port = text.substr(close + 2);
            has_port = true;
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        const std::size_t colon = text.find(':');
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        has_port = true;
    }
    const auto addr = tools::parse_ip(host);
    if (!addr) {
        return error{std::string(what) + " \"" + std::string(host) + "\" is not an IPv4 or IPv6 address" +
                     (!text.empty() && text.front() != '[' && host.find(':') != std::string_view::npos
                          ? " (IPv6 with a port: [addr]:port)"
                          : "")};
    }
    tools::endpoint e{*addr, 0};
    if (!has_port) {
        if (port_required) {
            return error{std::string(what) + " \"" + std::string(text) + "\" has no port"};
        }
        return e;
    }
    auto p = parse_port(port, what, zero_ok);
    if (!p) {
        return p.failure();
    }
    e.port = *p;
    return e;
}

sockaddr_storage to_sockaddr(const tools::ip_address& a, std::uint16_t port, socklen_t& len) {
    sockaddr_storage ss{};
    if (a.version == 4) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
        len = sizeof(sockaddr_in6);
    }
    return ss;
}

tools::endpoint from_sockaddr(const sockaddr_storage& ss) {
    tools::endpoint e;
    if (ss.ss_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        e.addr.version = 4;
        std::memcpy(e.addr.bytes.data(), &sin->sin_addr, 4);
        e.port = ntohs(sin->sin_port);
    } else {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        e.addr.version = 6;
        std::memcpy(e.addr.bytes.data(), &sin6->sin6_addr, 16);
        e.port = ntohs(sin6->sin6_port);
    }
    return e;
}

std::string errno_text(int e) { return std::strerror(e); }

// SO_RCVBUFFORCE/SO_SNDBUFFORCE pass net.core.rmem_max as root (CAP_NET_ADMIN); otherwise
// the kernel caps the plain option at rmem_max/wmem_max.
int set_buffer(int fd, int force_opt, int opt, int bytes) {
    if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) != 0) {
        (void)setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
    }
    int granted = 0;
    socklen_t len = sizeof granted;
    (void)getsockopt(fd, SOL_SOCKET, opt, &granted, &len);
    return granted;
}

} // namespace

result<path_spec> parse_path_spec(std::string_view text, bool remote_port_zero) {
    const std::size_t eq = text.find('=');
    if (eq == std::string_view::npos || text.find('=', eq + 1) != std::string_view::npos) {
        return error{"\"" + std::string(text) + "\" is not LOCAL_IP[:PORT][%DEV]=REMOTE_IP:PORT"};
    }
    std::string_view local = text.substr(0, eq);
    const std::string_view remote = text.substr(eq + 1);
    path_spec spec;
    const std::size_t pct = local.find('%');
    if (pct != std::string_view::npos) {
        spec.device = std::string(local.substr(pct + 1));
        local = local.substr(0, pct);
        if (spec.device.empty() || spec.device.size() >= IFNAMSIZ || spec.device.find('/') != std::string::npos) {
            return error{"device \"" + spec.device + "\" is not an interface name (1-15 characters)"};
        }
    }
    if (local.empty()) {
        return error{"\"" + std::string(text) + "\" has no local address before '='"};
    }
    auto l = parse_end(local, "local address", false, true);
    if (!l) {
        return l.failure();
    }
    auto r = parse_end(remote, "remote address", true, remote_port_zero);
    if (!r) {
        return r.failure();
    }
    if (l->addr.version != r->addr.version) {
        return error{"local address " + tools::to_string(l->addr) + " and remote address " + tools::to_string(r->addr) +
                     " are not the same IP version"};
    }
    spec.local = l->addr;
    spec.local_port = l->port;
    spec.remote = r->addr;
    spec.remote_port = r->port;
    return spec;
}

struct udp_paths::path {
    path_spec spec;
    int fd = -1;
    bool learn = false;     // remote port 0: connect() to the first sender
    bool connected = false;
    std::uint16_t bound_port = 0;
    tools::endpoint remote_end;
    int rcvbuf = 0, sndbuf = 0;
    std::uint32_t last_overflow = 0; // SO_RXQ_OVFL is cumulative per socket
    socket_counters counters;

    // Receive: one pooled buffer per slot, kept across calls until a datagram fills it.
    std::array<mmsghdr, batch> rx_msgs{};
    std::array<iovec, batch> rx_iov{};
    std::array<pooled_buffer*, batch> rx_bufs{};
    std::array<sockaddr_storage, batch> rx_names{};
    struct alignas(cmsghdr) control_space {
        std::uint8_t bytes[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(std::uint32_t)) + 32];
    };
    std::array<control_space, batch> rx_control{};

    // Transmit: a ring of copied packets, sent in batches.
    std::vector<std::uint8_t> tx_data;
    std::array<std::uint32_t, tx_slots> tx_len{};
    std::size_t tx_head = 0, tx_count = 0;
    std::array<mmsghdr, batch> tx_msgs{};
    std::array<iovec, batch> tx_iov{};

    ~path() {
        for (pooled_buffer* b : rx_bufs) {
            if (b != nullptr) {
                packet_pool::release(b);
            }
        }
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

result<std::unique_ptr<udp_paths>> udp_paths::open(const std::vector<path_spec>& specs, packet_pool& rx_pool) {
    std::unique_ptr<udp_paths> self(new udp_paths(rx_pool));
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto p = std::make_unique<path>();
        p->spec = specs[i];
        const path_spec& s = p->spec;
        const std::string name = "path " + std::to_string(i + 1) + " (" + tools::to_string(s.local) + ")";
        const int family = s.local.version == 4 ? AF_INET : AF_INET6;
        p->fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
            return error{name + ": socket: " + errno_text(errno), errno};
        }
        const int one = 1;
        if (family == AF_INET) {
            (void)setsockopt(p->fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
        } else {
            (void)setsockopt(p->fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
            (void)setsockopt(p->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        }
        (void)setsockopt(p->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        p->rcvbuf = set_buffer(p->fd, SO_RCVBUFFORCE, SO_RCVBUF, socket_buffer_bytes);
        p->sndbuf = set_buffer(p->fd, SO_SNDBUFFORCE, SO_SNDBUF, socket_buffer_bytes);
        if (!s.device.empty() &&
            setsockopt(p->fd, SOL_SOCKET, SO_BINDTODEVICE, s.device.c_str(), static_cast<socklen_t>(s.device.size())) != 0) {
            return error{name + ": SO_BINDTODEVICE " + s.device + ": " + errno_text(errno), errno};
        }
        socklen_t len = 0;
        sockaddr_storage local = to_sockaddr(s.local, s.local_port, len);
        if (::bind(p->fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
            return error{name + ": bind " + tools::to_string(tools::endpoint{s.local, s.local_port}) + ": " +
                             errno_text(errno),
                         errno};
        }
        sockaddr_storage bound{};
        socklen_t bound_len = sizeof bound;
        (void)getsockname(p->fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
        p->bound_port = from_sockaddr(bound).port;
        p->remote_end = tools::endpoint{s.remote, s.remote_port};
        p->learn = s.remote_port == 0;
        if (!p->learn) {
            sockaddr_storage remote = to_sockaddr(s.remote, s.remote_port, len);
            if (::connect(p->fd, reinterpret_cast<sockaddr*>(&remote), len) != 0) {
                return error{name + ": connect " + tools::to_string(p->remote_end) + ": " + errno_text(errno), errno};
            }
            p->connected = true;
        }
        p->tx_data.resize(tx_slots * tx_slot_size);
        for (std::size_t k = 0; k < batch; ++k) {
            p->rx_msgs[k].msg_hdr.msg_iov = &p->rx_iov[k];
            p->rx_msgs[k].msg_hdr.msg_iovlen = 1;
            p->tx_msgs[k].msg_hdr.msg_iov = &p->tx_iov[k];
            p->tx_msgs[k].msg_hdr.msg_iovlen = 1;
        }
        self->_paths.push_back(std::move(p));
    }
    return self;
}

udp_paths::udp_paths(packet_pool& pool) : _pool(pool) {}
udp_paths::~udp_paths() = default;

int udp_paths::fd(std::size_t i) const noexcept { return _paths[i]->fd; }
const socket_counters& udp_paths::counters(std::size_t i) const noexcept { return _paths[i]->counters; }
bool udp_paths::has_remote(std::size_t i) const noexcept { return _paths[i]->connected; }
int udp_paths::receive_buffer(std::size_t i) const noexcept { return _paths[i]->rcvbuf; }
int udp_paths::send_buffer(std::size_t i) const noexcept { return _paths[i]->sndbuf; }
bool udp_paths::blocked(std::size_t i) const noexcept { return _paths[i]->tx_count > 0; }

std::string udp_paths::local_text(std::size_t i) const {
    const path& p = *_paths[i];
    return tools::to_string(tools::endpoint{p.spec.local, p.bound_port});
}

std::string udp_paths::remote_text(std::size_t i) const { return tools::to_string(_paths[i]->remote_end); }

void udp_paths::forget_remote(std::size_t i) noexcept {
    path& p = *_paths[i];
    if (!p.learn || !p.connected) {
        return;
    }
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    (void)::connect(p.fd, &unspec, sizeof unspec);
    p.connected = false;
    p.remote_end.port = 0;
    p.remote_end.addr = p.spec.remote;
    p.tx_count = 0;
}

std::size_t udp_paths::receive(std::size_t i, receive_sink sink, void* ctx) noexcept {
    path& p = *_paths[i];
    std::size_t slots = 0;
    for (; slots < batch; ++slots) {
        if (p.rx_bufs[slots] == nullptr) {
            p.rx_bufs[slots] = _pool.get(_pool.buffer_size());
            if (p.rx_bufs[slots] == nullptr) [[unlikely]] {
                break;
            }
        }
        msghdr& h = p.rx_msgs[slots].msg_hdr;
        p.rx_iov[slots] = {p.rx_bufs[slots]->data(), _pool.buffer_size()};
        h.msg_name = p.connected ? nullptr : &p.rx_names[slots];
        h.msg_namelen = p.connected ? 0 : sizeof(sockaddr_storage);
        h.msg_control = p.rx_control[slots].bytes;
        h.msg_controllen = sizeof(p.rx_control[slots].bytes);
        h.msg_flags = 0;
    }
    if (slots == 0) [[unlikely]] {
        ++p.counters.rx_no_buffer;
        return 0;
    }
    const int n = ::recvmmsg(p.fd, p.rx_msgs.data(), static_cast<unsigned>(slots), MSG_DONTWAIT, nullptr);
    if (n <= 0) {
        if (n < 0 && errno == ECONNREFUSED) {
            ++p.counters.refused;
        }
        return 0;
    }
    ++p.counters.rx_batches;
    std::size_t handed = 0;
    for (int k = 0; k < n; ++k) {
        msghdr& h = p.rx_msgs[k].msg_hdr;
        pooled_buffer* b = p.rx_bufs[k];
        p.rx_bufs[k] = nullptr;
        bool ce = false;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                std::uint32_t total = 0;
                std::memcpy(&total, CMSG_DATA(c), sizeof total);
                p.counters.kernel_drops += total - p.last_overflow;
                p.last_overflow = total;
            } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS)) {
                ce = (*CMSG_DATA(c) & 0x3) == 0x3;
            } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
                int tclass = 0;
                std::memcpy(&tclass, CMSG_DATA(c), sizeof tclass);
                ce = (tclass & 0x3) == 0x3;
            }
        }
        if ((h.msg_flags & MSG_TRUNC) != 0) [[unlikely]] {
            ++p.counters.rx_truncated;
            packet_pool::release(b);
            continue;
        }
        if (h.msg_name != nullptr) {
            // A learning path: the first sender becomes the remote; later ones in this batch
            // from elsewhere are foreign (the kernel filters them once connected).
            const tools::endpoint from = from_sockaddr(p.rx_names[k]);
            if (!p.connected) {
                if (::connect(p.fd, reinterpret_cast<sockaddr*>(&p.rx_names[k]), h.msg_namelen) == 0) {
                    p.connected = true;
                    p.remote_end = from;
                }
            } else if (from != p.remote_end) {
                ++p.counters.rx_foreign;
                packet_pool::release(b);
                continue;
            }
        }
        const std::uint32_t len = p.rx_msgs[k].msg_len;
        ++p.counters.rx_packets;
        p.counters.rx_bytes += len;
        p.counters.rx_ecn_ce += ce ? 1 : 0;
        sink(ctx, i, b, len, ce);
        ++handed;
    }
    return handed;
}

void udp_paths::queue(std::size_t i, std::span<const std::uint8_t> packet) noexcept {
    path& p = *_paths[i];
    if (!p.connected) [[unlikely]] {
        ++p.counters.tx_no_remote;
        return;
    }
    if (packet.size() > tx_slot_size) [[unlikely]] {
        ++p.counters.tx_errors;
        return;
    }
    if (p.tx_count == tx_slots && !send_path(p) && p.tx_count == tx_slots) [[unlikely]] {
        ++p.counters.tx_dropped;
        return;
    }
    const std::size_t slot = (p.tx_head + p.tx_count) % tx_slots;
    std::memcpy(p.tx_data.data() + slot * tx_slot_size, packet.data(), packet.size());
    p.tx_len[slot] = static_cast<std::uint32_t>(packet.size());
    ++p.tx_count;
    if (p.tx_count >= batch) {
        (void)send_path(p);
    }
}

// Sends the ring's packets in batches; false when the kernel would block (the rest stays).
bool udp_paths::send_path(path& p) noexcept {
    bool refused = false;
    while (p.tx_count > 0) {
        std::size_t n = 0;
        for (; n < batch && n < p.tx_count; ++n) {
            const std::size_t slot = (p.tx_head + n) % tx_slots;
            p.tx_iov[n] = {p.tx_data.data() + slot * tx_slot_size, p.tx_len[slot]};
            p.tx_msgs[n].msg_hdr.msg_name = nullptr;
            p.tx_msgs[n].msg_hdr.msg_namelen = 0;
        }
        const int sent = ::sendmmsg(p.fd, p.tx_msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
        if (sent > 0) {
            ++p.counters.tx_batches;
            for (int k = 0; k < sent; ++k) {
                p.counters.tx_bytes += p.tx_len[(p.tx_head + k) % tx_slots];
            }
            p.counters.tx_packets += static_cast<std::uint64_t>(sent);
            p.tx_head = (p.tx_head + static_cast<std::size_t>(sent)) % tx_slots;
            p.tx_count -= static_cast<std::size_t>(sent);
            continue;
        }
        const int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
            ++p.counters.tx_would_block;
            return false;
        }
        if (e == EINTR) {
            continue;
        }
        if (e == ECONNREFUSED && !refused) {
            // The socket's pending ICMP error, reported (and cleared) instead of sending: the
            // packet was not sent; try it once more.
            ++p.counters.refused;
            refused = true;
            continue;
        }
        // Anything else (EMSGSIZE, ENETUNREACH, ...): drop the first packet, counted.
        ++p.counters.tx_errors;
        p.tx_head = (p.tx_head + 1) % tx_slots;
        --p.tx_count;
    }
    return true;
}

bool udp_paths::send_all() noexcept {
    bool left = false;
    for (auto& p : _paths) {
        if (p->tx_count > 0 && !send_path(*p)) {
            left = true;
        }
    }
    return left;
}

} // namespace kwik::peer
