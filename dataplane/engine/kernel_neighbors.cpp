// The kernel's neighbour table over rtnetlink (kernel_neighbors.hpp). Main lcore.
#include "dataplane/engine/kernel_neighbors.hpp"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kwik::engine {

namespace {

constexpr std::uint16_t usable_states = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;
constexpr std::size_t datagram_room = 65536;

template <class T> void put(std::span<std::uint8_t> out, std::size_t at, const T& v) noexcept {
    std::memcpy(out.data() + at, &v, sizeof v);
}

} // namespace

bool kernel_neighbor::usable() const noexcept {
    return !removed && has_mac && !mac.is_zero() && (state & usable_states) != 0;
}

std::size_t build_neighbor_dump(std::uint32_t seq, std::span<std::uint8_t> out) noexcept {
    const std::size_t len = NLMSG_LENGTH(sizeof(ndmsg));
    if (out.size() < len) {
        return 0;
    }
    std::memset(out.data(), 0, len);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(len);
    h.nlmsg_type = RTM_GETNEIGH;
    h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    h.nlmsg_seq = seq;
    put(out, 0, h);
    ndmsg nd{};
    nd.ndm_family = AF_UNSPEC; // both families; entries of other interfaces are skipped on reading
    put(out, NLMSG_HDRLEN, nd);
    return len;
}

std::size_t build_neighbor_use(std::uint32_t seq, std::uint32_t ifindex, const ip_address& ip,
                               std::span<std::uint8_t> out) noexcept {
    const bool v4 = ip.is_v4();
    const std::size_t addr_len = v4 ? 4 : 16;
    const std::size_t attr_at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ndmsg));
    const std::size_t len = attr_at + RTA_SPACE(addr_len);
    if (out.size() < len) {
        return 0;
    }
    std::memset(out.data(), 0, len);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(len);
    h.nlmsg_type = RTM_NEWNEIGH;
    // NLM_F_CREATE: a new entry (INCOMPLETE, resolution started); an existing one is only used
    // (STALE -> DELAY -> PROBE), never replaced. NLM_F_ACK: a refusal comes back as an error.
    h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
    h.nlmsg_seq = seq;
    put(out, 0, h);
    ndmsg nd{};
    nd.ndm_family = v4 ? AF_INET : AF_INET6;
    nd.ndm_ifindex = static_cast<int>(ifindex);
    nd.ndm_state = NUD_NONE;
    nd.ndm_flags = NTF_USE;
    put(out, NLMSG_HDRLEN, nd);
    rtattr a{};
    a.rta_len = static_cast<unsigned short>(RTA_LENGTH(addr_len));
    a.rta_type = NDA_DST;
    put(out, attr_at, a);
    std::memcpy(out.data() + attr_at + RTA_LENGTH(0), v4 ? ip.v4_bytes() : ip.bytes.data(), addr_len);
    return len;
}

netlink_parse parse_neighbor_messages(std::span<const std::uint8_t> datagram, std::vector<kernel_neighbor>& out) {
    netlink_parse r;
    std::size_t at = 0;
    while (at + NLMSG_HDRLEN <= datagram.size()) {
        nlmsghdr h;
        std::memcpy(&h, datagram.data() + at, sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > datagram.size() - at) {
            r.malformed = true;
            return r;
        }
        const std::span<const std::uint8_t> body = datagram.subspan(at + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);
        at += NLMSG_ALIGN(h.nlmsg_len);
        if (h.nlmsg_type == NLMSG_DONE) {
            r.dump_done = true;
            continue;
        }
        if (h.nlmsg_type == NLMSG_ERROR) {
            nlmsgerr e;
            if (body.size() < sizeof e.error) {
                r.malformed = true;
                return r;
            }
            std::memcpy(&e.error, body.data(), sizeof e.error);
            if (e.error != 0) { // 0 is an acknowledgement
                ++r.errors;
                r.last_error = -e.error;
                r.last_error_seq = h.nlmsg_seq;
            }
            continue;
        }
        if (h.nlmsg_type != RTM_NEWNEIGH && h.nlmsg_type != RTM_DELNEIGH) {
            continue;
        }
        ndmsg nd;
        if (body.size() < sizeof nd) {
            r.malformed = true;
            return r;
        }
        std::memcpy(&nd, body.data(), sizeof nd);
        if (nd.ndm_family != AF_INET && nd.ndm_family != AF_INET6) {
            continue; // bridge FDB entries and the like
        }
        const std::size_t addr_len = nd.ndm_family == AF_INET ? 4 : 16;
        kernel_neighbor n;
        n.ifindex = static_cast<std::uint32_t>(nd.ndm_ifindex);
        n.state = nd.ndm_state;
        n.removed = h.nlmsg_type == RTM_DELNEIGH;
        bool has_dst = false;
        std::size_t a = NLMSG_ALIGN(sizeof nd);
        while (a + sizeof(rtattr) <= body.size()) {
            rtattr ra;
            std::memcpy(&ra, body.data() + a, sizeof ra);
            if (ra.rta_len < sizeof ra || ra.rta_len > body.size() - a) {
                r.malformed = true;
                return r;
            }
            const std::uint8_t* payload = body.data() + a + RTA_LENGTH(0);
            const std::size_t payload_len = ra.rta_len - RTA_LENGTH(0);
            if (ra.rta_type == NDA_DST && payload_len == addr_len) {
                n.ip = addr_len == 4 ? ip_address::v4(payload) : ip_address::v6(payload);
                has_dst = true;
            } else if (ra.rta_type == NDA_LLADDR && payload_len == 6) {
                n.mac = mac_address::from(payload);
                n.has_mac = true;
            }
            a += RTA_ALIGN(ra.rta_len);
        }
        if (has_dst) {
            out.push_back(n);
            ++r.neighbors;
        }
    }
    if (at < datagram.size()) { // bytes left that cannot hold a message header
        r.malformed = true;
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// The socket and the workers

result<kernel_neighbors> kernel_neighbors::open(std::vector<port> ports, std::vector<worker_mailbox> mailboxes) {
    kernel_neighbors k;
    k._fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (k._fd < 0) {
        return error{std::string("rtnetlink socket: ") + std::strerror(errno), errno};
    }
    // Room for a burst of notifications (a link flap on a busy segment) between two passes;
    // past it the kernel reports ENOBUFS and the table is dumped again.
    const int rcvbuf = 4 << 20;
    (void)::setsockopt(k._fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_NEIGH; // RTNLGRP_NEIGH: IPv4 and IPv6 entries alike
    if (::bind(k._fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
        return error{std::string("rtnetlink socket: joining RTNLGRP_NEIGH: ") + std::strerror(errno), errno};
    }
    k._ports = std::move(ports);
    k._mailboxes = std::move(mailboxes);
    k._backlog.resize(k._mailboxes.size());
    k._buffer.resize(datagram_room);
    k.request_dump();
    if (k._counters.errors != 0) {
        return error{"rtnetlink: " + k._last_error, EIO};
    }
    return k;
}

kernel_neighbors::kernel_neighbors(kernel_neighbors&& o) noexcept
    : _fd(std::exchange(o._fd, -1)), _seq(o._seq), _dump_seq(o._dump_seq), _dumping(o._dumping), _redump(o._redump),
      _next_dump(o._next_dump), _ports(std::move(o._ports)), _mailboxes(std::move(o._mailboxes)),
      _backlog(std::move(o._backlog)), _known(std::move(o._known)), _parsed(std::move(o._parsed)), _buffer(std::move(o._buffer)),
      _counters(o._counters), _last_error(std::move(o._last_error)) {}

kernel_neighbors::~kernel_neighbors() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

void kernel_neighbors::poll() {
    flush_backlog();
    read_socket();
    std::array<neighbor_want, 32> wants;
    for (unsigned w = 0; w < _mailboxes.size(); ++w) {
        unsigned n;
        do {
            n = _mailboxes[w].take_wants(wants.data(), static_cast<unsigned>(wants.size()));
            for (unsigned i = 0; i < n; ++i) {
                on_want(w, wants[i]);
            }
        } while (n == wants.size());
    }
}

bool kernel_neighbors::read_dump(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (_dumping && std::chrono::steady_clock::now() < until) {
        pollfd p{_fd, POLLIN, 0};
        (void)::poll(&p, 1, 10);
        read_socket();
    }
    return !_dumping;
}

void kernel_neighbors::read_socket() {
    for (;;) {
        const ssize_t got = ::recv(_fd, _buffer.data(), _buffer.size(), MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == ENOBUFS) { // notifications were lost: read the whole table again
                note_error("notifications lost (ENOBUFS): reading the kernel's table again");
                _redump = true;
                continue;
            }
            note_error(std::string("rtnetlink receive: ") + std::strerror(errno));
            break;
        }
        _parsed.clear();
        const netlink_parse r = parse_neighbor_messages({_buffer.data(), static_cast<std::size_t>(got)}, _parsed);
        for (const kernel_neighbor& n : _parsed) {
            on_neighbor(n);
        }
        if (r.errors != 0) {
            _counters.errors += r.errors - 1; // note_error counts the last one
            const bool dump = _dumping && r.last_error_seq == _dump_seq;
            note_error(std::string(dump ? "the neighbour table dump failed: " : "the kernel refused a resolution: ") +
                       std::strerror(r.last_error));
            if (dump) { // asked again, a second later
                _dumping = false;
                _redump = true;
            }
        }
        if (r.malformed) {
            note_error("a malformed rtnetlink message (the rest of its datagram was skipped)");
        }
        if (r.dump_done) {
            _dumping = false;
        }
    }
    if (_redump && !_dumping && std::chrono::steady_clock::now() >= _next_dump) {
        request_dump();
    }
}

void kernel_neighbors::request_dump() {
    std::array<std::uint8_t, 64> msg;
    _next_dump = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    _dump_seq = ++_seq;
    const std::size_t len = build_neighbor_dump(_dump_seq, msg);
    const std::uint64_t errors = _counters.errors;
    send_request({msg.data(), len}, "asking for the neighbour table");
    _dumping = _counters.errors == errors;
    _redump = !_dumping; // a failed send is tried again a second later
}

const kernel_neighbors::port* kernel_neighbors::port_of_ifindex(std::uint32_t ifindex) const noexcept {
    for (const port& p : _ports) {
        if (p.ifindex == ifindex) {
            return &p;
        }
    }
    return nullptr;
}

void kernel_neighbors::on_neighbor(const kernel_neighbor& n) {
    const port* p = port_of_ifindex(n.ifindex);
    if (p == nullptr) {
        return;
    }
    const key k{p->index, n.ip.bytes};
    if (!n.usable()) {
        // FAILED, INCOMPLETE, NOARP or removed: the workers' entries age out on their own
        // (stale_time); a want is asked of the kernel again.
        _known.erase(k);
        return;
    }
    _known[k] = n.mac;
    ++_counters.seeded;
    for (unsigned w = 0; w < _mailboxes.size(); ++w) {
        post(w, p->index, n.ip, n.mac);
    }
}

void kernel_neighbors::on_want(unsigned worker, const neighbor_want& want) {
    ++_counters.wants;
    const auto p = std::find_if(_ports.begin(), _ports.end(), [&](const port& q) { return q.index == want.port; });
    if (p == _ports.end()) {
        return; // a port the kernel does not own: its worker sends its own requests
    }
    if (const auto it = _known.find(key{p->index, want.ip.bytes}); it != _known.end()) {
        ++_counters.answered; // the worker's entry aged out while the kernel's stayed
        post(worker, p->index, want.ip, it->second);
        return;
    }
    // The kernel answers with notifications: INCOMPLETE, then REACHABLE with the MAC (on_neighbor).
    std::array<std::uint8_t, 64> msg;
    const std::size_t len = build_neighbor_use(++_seq, p->ifindex, want.ip, msg);
    ++_counters.asked;
    send_request({msg.data(), len}, "asking the kernel to resolve a neighbour");
}

void kernel_neighbors::post(unsigned worker, std::uint16_t port, const ip_address& ip, const mac_address& mac) {
    worker_command c{};
    c.op = worker_op::learn_neighbor;
    c.port = port;
    c.tuple.src = ip;
    c.mac = mac;
    std::vector<worker_command>& backlog = _backlog[worker];
    const worker_mailbox& m = _mailboxes[worker];
    // Half the command ring stays for the control process's commands (command_handler).
    if (backlog.empty() && rte_ring_free_count(m.commands) > rte_ring_get_capacity(m.commands) / 2 && m.post(c)) {
        return;
    }
    if (backlog.size() >= max_backlog) {
        ++_counters.lost;
        return;
    }
    backlog.push_back(c);
}

void kernel_neighbors::flush_backlog() {
    for (unsigned w = 0; w < _mailboxes.size(); ++w) {
        std::vector<worker_command>& backlog = _backlog[w];
        const worker_mailbox& m = _mailboxes[w];
        std::size_t sent = 0;
        while (sent < backlog.size() && rte_ring_free_count(m.commands) > rte_ring_get_capacity(m.commands) / 2 &&
               m.post(backlog[sent])) {
            ++sent;
        }
        backlog.erase(backlog.begin(), backlog.begin() + static_cast<std::ptrdiff_t>(sent));
    }
}

void kernel_neighbors::send_request(std::span<const std::uint8_t> message, const char* what) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    const ssize_t sent = ::sendto(_fd, message.data(), message.size(), MSG_DONTWAIT,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
    if (sent != static_cast<ssize_t>(message.size())) {
        note_error(std::string(what) + ": " + std::strerror(sent < 0 ? errno : EMSGSIZE));
    }
}

void kernel_neighbors::note_error(std::string what) {
    ++_counters.errors;
    _last_error = std::move(what);
}

std::string kernel_neighbors::summary() const {
    char line[256];
    std::snprintf(line, sizeof line,
                  "kernel neighbours: %zu known, seeded %llu, wanted %llu (answered %llu, asked the kernel %llu), "
                  "lost %llu, netlink errors %llu",
                  _known.size(), (unsigned long long)_counters.seeded, (unsigned long long)_counters.wants,
                  (unsigned long long)_counters.answered, (unsigned long long)_counters.asked,
                  (unsigned long long)_counters.lost, (unsigned long long)_counters.errors);
    return _last_error.empty() ? std::string(line) : std::string(line) + " (last: " + _last_error + ")";
}

} // namespace kwik::engine
