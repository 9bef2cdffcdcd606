#include "tests/e2e/relay/relay.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

namespace kwik::relay {

namespace {

constexpr std::size_t slot_size = 2048;    // the devices' MTU is 1500: a queued packet fits a slot
constexpr std::size_t max_line = 4096;     // a control line longer than this closes the session
constexpr std::uint64_t tag_timer = 1ull << 32;
constexpr std::uint64_t tag_listen = 2ull << 32;
constexpr std::uint64_t tag_signal = 3ull << 32;
constexpr std::uint64_t tag_tun = 4ull << 32;
constexpr std::uint64_t tag_client = 5ull << 32;
constexpr std::uint64_t tag_mask = 0xFFFFFFFFull << 32;

std::uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

error sys_error(const std::string& what) {
    return error{what + ": " + std::strerror(errno), errno};
}

bool in_prefix(const prefix& p, const std::uint8_t* addr) noexcept {
    unsigned bits = p.length;
    for (std::size_t i = 0; bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const std::uint8_t mask = static_cast<std::uint8_t>(0xFF00u >> take);
        if ((addr[i] & mask) != (p.address.bytes[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

nlohmann::json settings_json(const impairment& s) {
    return {{"loss", s.loss},           {"burst_enter", s.burst_enter}, {"burst_exit", s.burst_exit},
            {"burst_loss", s.burst_loss}, {"delay_ms", s.delay_ms},     {"jitter_ms", s.jitter_ms},
            {"reorder", s.reorder},     {"reorder_ms", s.reorder_ms},   {"duplicate", s.duplicate}};
}

nlohmann::json counters_json(const direction_counters& c) {
    return {{"packets_in", c.packets_in},
            {"packets_out", c.packets_out},
            {"dropped",
             {{"loss", c.dropped_loss},
              {"burst", c.dropped_burst},
              {"blackout", c.dropped_blackout},
              {"pool_full", c.dropped_pool_full},
              {"oversize", c.dropped_oversize},
              {"write_error", c.dropped_write_error}}},
            {"duplicated", c.duplicated},
            {"reordered", c.reordered},
            {"delayed", c.delayed},
            {"queue", c.queue},
            {"queue_max", c.queue_max}};
}

// Control input is arbitrary bytes and error messages quote it: invalid UTF-8 is replaced, so
// dumping never throws.
std::string to_line(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string fail(const std::string& message) {
    return to_line(nlohmann::json{{"ok", false}, {"error", message}});
}

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
            ++i;
        }
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
            ++i;
        }
        if (i > start) {
            out.push_back(line.substr(start, i - start));
        }
    }
    return out;
}

} // namespace

result<prefix> parse_prefix(std::string_view text) {
    const auto slash = text.find('/');
    auto address = tools::parse_ip(text.substr(0, slash));
    if (!address) {
        return error{"'" + std::string(text) + "' is not an IPv4 or IPv6 prefix (10.1.0.0/16, fd00::/64)"};
    }
    prefix p{*address, address->version == 4 ? 32u : 128u};
    if (slash != std::string_view::npos) {
        const auto bits = text.substr(slash + 1);
        unsigned n = 0;
        auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
        if (ec != std::errc{} || end != bits.data() + bits.size() || bits.empty() || n > p.length) {
            return error{"'" + std::string(text) + "': the prefix length is not in [0, " + std::to_string(p.length) +
                         "]"};
        }
        p.length = n;
    }
    return p;
}

relay::relay(const options& o) : _options(o), _scratch(65536) {
    _paths.reserve(o.paths.size());
    for (std::size_t i = 0; i < o.paths.size(); ++i) {
        // Each path and direction draws from its own stream: traffic on one path does not move
        // another's decisions, so a seed replays each path exactly.
        const std::uint64_t base = o.seed * 0x100000001B3ull + i * 2;
        _paths.push_back(path{o.paths[i].name, o.paths[i].tun_device, -1, false, 0, 0, 0,
                              {direction_state(base), direction_state(base + 1)}});
    }
    _pool.resize(static_cast<std::size_t>(o.pool) * slot_size);
    _free.reserve(o.pool);
    for (std::uint32_t s = o.pool; s > 0; --s) {
        _free.push_back(s - 1);
    }
}

relay::~relay() {
    for (path& p : _paths) {
        if (p.fd >= 0) {
            close(p.fd);
        }
    }
    for (client& c : _clients) {
        close(c.fd);
    }
    for (int fd : {_epoll, _timer, _listen, _signal}) {
        if (fd >= 0) {
            close(fd);
        }
    }
    if (_listen >= 0) {
        unlink(_options.control_path.c_str());
    }
}

result<std::unique_ptr<relay>> relay::create(const options& o) {
    std::unique_ptr<relay> r(new relay(o));
    r->_epoll = epoll_create1(EPOLL_CLOEXEC);
    r->_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->_epoll < 0 || r->_timer < 0) {
        return sys_error("epoll/timerfd");
    }
    // SIGINT and SIGTERM end run() through a signalfd, so the loop stops between packets.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    r->_signal = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (r->_signal < 0) {
        return sys_error("signalfd");
    }
    epoll_event ev{EPOLLIN, {.u64 = tag_timer}};
    epoll_ctl(r->_epoll, EPOLL_CTL_ADD, r->_timer, &ev);
    ev.data.u64 = tag_signal;
    epoll_ctl(r->_epoll, EPOLL_CTL_ADD, r->_signal, &ev);
    if (auto d = r->open_devices(); !d) {
        return d.failure();
    }
    if (auto c = r->open_control(); !c) {
        return c.failure();
    }
    return r;
}

result<void> relay::open_devices() {
    const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        return sys_error("socket for device flags");
    }
    for (std::size_t i = 0; i < _paths.size(); ++i) {
        path& p = _paths[i];
        if (p.device.empty() || p.device.size() >= IFNAMSIZ) {
            close(sock);
            return error{"--path " + p.name + ": device name '" + p.device + "' is empty or longer than " +
                         std::to_string(IFNAMSIZ - 1) + " characters"};
        }
        p.fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (p.fd < 0) {
            close(sock);
            return sys_error("/dev/net/tun");
        }
        ifreq ifr{};
        std::memcpy(ifr.ifr_name, p.device.c_str(), p.device.size());
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        if (ioctl(p.fd, TUNSETIFF, &ifr) < 0) {
            close(sock);
            return sys_error("--path " + p.name + ": TUNSETIFF " + p.device);
        }
        ifr.ifr_mtu = 1500;
        if (ioctl(sock, SIOCSIFMTU, &ifr) < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) {
            close(sock);
            return sys_error("--path " + p.name + ": MTU/flags of " + p.device);
        }
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
            close(sock);
            return sys_error("--path " + p.name + ": bringing " + p.device + " up");
        }
        epoll_event ev{EPOLLIN, {.u64 = tag_tun | i}};
        epoll_ctl(_epoll, EPOLL_CTL_ADD, p.fd, &ev);
    }
    close(sock);
    return {};
}

result<void> relay::open_control() {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (_options.control_path.empty() || _options.control_path.size() >= sizeof addr.sun_path) {
        return error{"--control: '" + _options.control_path + "' is empty or longer than " +
                     std::to_string(sizeof addr.sun_path - 1) + " characters"};
    }
    std::memcpy(addr.sun_path, _options.control_path.c_str(), _options.control_path.size());
    unlink(_options.control_path.c_str());
    _listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (_listen < 0 || bind(_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(_listen, 16) < 0) {
        return sys_error("--control: " + _options.control_path);
    }
    epoll_event ev{EPOLLIN, {.u64 = tag_listen}};
    epoll_ctl(_epoll, EPOLL_CTL_ADD, _listen, &ev);
    return {};
}

result<void> relay::run() {
    epoll_event events[64];
    for (;;) {
        const int n = epoll_wait(_epoll, events, 64, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return sys_error("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const std::uint64_t tag = events[i].data.u64 & tag_mask;
            const std::uint64_t index = events[i].data.u64 & ~tag_mask;
            if (tag == tag_tun) {
                on_tun_readable(static_cast<std::uint16_t>(index));
            } else if (tag == tag_timer) {
                on_timer();
            } else if (tag == tag_listen) {
                on_accept();
            } else if (tag == tag_client) {
                // Clients are looked up by fd: the vector moves when one leaves.
                for (std::size_t c = 0; c < _clients.size(); ++c) {
                    if (static_cast<std::uint64_t>(_clients[c].fd) == index) {
                        on_client(c);
                        break;
                    }
                }
            } else if (tag == tag_signal) {
                return {};
            }
        }
    }
}

bool relay::is_up(const std::uint8_t* data, std::size_t len, bool& malformed) const noexcept {
    malformed = false;
    const unsigned version = len > 0 ? data[0] >> 4 : 0;
    const std::uint8_t* source = nullptr;
    if (version == 4 && len >= 20) {
        source = data + 12;
    } else if (version == 6 && len >= 40) {
        source = data + 8;
    } else {
        malformed = true;
        return false;
    }
    for (const prefix& p : _options.up_from) {
        if (p.address.version == version && in_prefix(p, source)) {
            return true;
        }
    }
    return false;
}

void relay::on_tun_readable(std::uint16_t p) {
    // Drain the device: each read is one IP packet; a burst read at one clock reading.
    const std::uint64_t now = now_ns();
    for (int budget = 256; budget > 0; --budget) {
        const ssize_t n = read(_paths[p].fd, _scratch.data(), _scratch.size());
        if (n <= 0) {
            break;
        }
        on_packet(p, _scratch.data(), static_cast<std::size_t>(n), now);
    }
    arm_timer();
}

void relay::on_packet(std::uint16_t p, const std::uint8_t* data, std::size_t len, std::uint64_t now) {
    path& pa = _paths[p];
    bool malformed = false;
    const direction d = is_up(data, len, malformed) ? direction::up : direction::down;
    if (malformed) {
        ++pa.malformed;
        return;
    }
    // The relay namespace's own link-scope IPv6 traffic on the device (MLD reports when it comes
    // up) is no path's: a router never forwards it, so neither does the relay.
    if ((data[0] >> 4) == 6 && data[24] == 0xFF && (data[25] & 0x0F) == 0x02) {
        ++pa.link_local;
        return;
    }
    direction_state& ds = pa.dirs[static_cast<std::size_t>(d)];
    direction_counters& c = ds.counters;
    ++c.packets_in;
    const decision dec = ds.decide(pa.blackout);
    switch (dec.what) {
    case verdict::drop_blackout:
        ++c.dropped_blackout;
        return;
    case verdict::drop_loss:
        ++c.dropped_loss;
        return;
    case verdict::drop_burst:
        ++c.dropped_burst;
        return;
    case verdict::pass:
        break;
    }
    if (dec.copies > 1) {
        ++c.duplicated;
    }
    if (dec.reordered) {
        ++c.reordered;
    }
    for (unsigned i = 0; i < dec.copies; ++i) {
        if (dec.delay_ns[i] == 0) {
            send(p, d, data, len);
            continue;
        }
        if (len > slot_size) {
            ++c.dropped_oversize;
            continue;
        }
        if (_free.empty()) {
            ++c.dropped_pool_full;
            continue;
        }
        const std::uint32_t slot = _free.back();
        _free.pop_back();
        std::memcpy(_pool.data() + static_cast<std::size_t>(slot) * slot_size, data, len);
        _heap.push(held{now + dec.delay_ns[i], _seq++, slot, pa.epoch, static_cast<std::uint16_t>(len), p, d});
        ++c.delayed;
        if (++c.queue > c.queue_max) {
            c.queue_max = c.queue;
        }
    }
}

void relay::send(std::uint16_t p, direction d, const std::uint8_t* data, std::size_t len, bool counted) {
    direction_counters& c = _paths[p].dirs[static_cast<std::size_t>(d)].counters;
    const bool written = write(_paths[p].fd, data, len) == static_cast<ssize_t>(len);
    if (!counted) {
        return;
    }
    if (written) {
        ++c.packets_out;
    } else {
        ++c.dropped_write_error;
    }
}

void relay::on_timer() {
    std::uint64_t expirations = 0;
    [[maybe_unused]] const ssize_t r = read(_timer, &expirations, sizeof expirations);
    _armed_ns = 0;
    const std::uint64_t now = now_ns();
    while (!_heap.empty() && _heap.top().due_ns <= now) {
        const held h = _heap.top();
        _heap.pop();
        // Held since before a reset: it leaves, but the counters that took it in are gone.
        const bool counted = h.epoch == _paths[h.path].epoch;
        if (counted) {
            --_paths[h.path].dirs[static_cast<std::size_t>(h.dir)].counters.queue;
        }
        send(h.path, h.dir, _pool.data() + static_cast<std::size_t>(h.slot) * slot_size, h.length, counted);
        _free.push_back(h.slot);
    }
    arm_timer();
}

void relay::arm_timer() {
    if (_heap.empty() || _heap.top().due_ns == _armed_ns) {
        return;
    }
    _armed_ns = _heap.top().due_ns;
    itimerspec its{};
    its.it_value.tv_sec = static_cast<time_t>(_armed_ns / 1000000000ull);
    its.it_value.tv_nsec = static_cast<long>(_armed_ns % 1000000000ull);
    timerfd_settime(_timer, TFD_TIMER_ABSTIME, &its, nullptr);
}

void relay::on_accept() {
    for (;;) {
        const int fd = accept4(_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        epoll_event ev{EPOLLIN, {.u64 = tag_client | static_cast<std::uint64_t>(fd)}};
        epoll_ctl(_epoll, EPOLL_CTL_ADD, fd, &ev);
        _clients.push_back(client{fd, {}});
    }
}

void relay::on_client(std::size_t index) {
    client& c = _clients[index];
    char buf[4096];
    bool closed = false;
    for (;;) {
        const ssize_t n = read(c.fd, buf, sizeof buf);
        if (n > 0) {
            c.input.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        break;
    }
    std::size_t start = 0;
    for (std::size_t nl; (nl = c.input.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string out = answer(std::string_view(c.input).substr(start, nl - start)) + "\n";
        // Answers are small and the client waits for each: a short write means it stopped reading.
        if (::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
            closed = true;
            break;
        }
    }
    c.input.erase(0, start);
    if (!closed && c.input.size() > max_line) {
        const std::string out = fail("line longer than " + std::to_string(max_line) + " bytes") + "\n";
        [[maybe_unused]] const ssize_t w = ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL);
        closed = true;
    }
    if (closed) {
        close(c.fd);
        _clients.erase(_clients.begin() + static_cast<std::ptrdiff_t>(index));
    }
}

relay::path* relay::find(std::string_view name) {
    for (path& p : _paths) {
        if (p.name == name) {
            return &p;
        }
    }
    return nullptr;
}

std::string relay::stats_json(std::string_view name) {
    nlohmann::json paths = nlohmann::json::object();
    for (const path& p : _paths) {
        if (!name.empty() && p.name != name) {
            continue;
        }
        paths[p.name] = {{"device", p.device},
                         {"blackout", p.blackout},
                         {"malformed", p.malformed},
                         {"link_local", p.link_local},
                         {"up", counters_json(p.dirs[0].counters)},
                         {"down", counters_json(p.dirs[1].counters)},
                         {"settings", {{"up", settings_json(p.dirs[0].settings)},
                                       {"down", settings_json(p.dirs[1].settings)}}}};
    }
    return to_line(nlohmann::json{{"ok", true}, {"pool_free", _free.size()}, {"paths", paths}});
}

std::string relay::answer(std::string_view line) {
    const auto w = words(line);
    if (w.empty()) {
        return fail("empty command (set, blackout, stats, reset)");
    }
    const std::string_view cmd = w[0];
    if (cmd == "stats") {
        if (w.size() > 2) {
            return fail("stats: expected 'stats [NAME]'");
        }
        if (w.size() == 2 && find(w[1]) == nullptr) {
            return fail("stats: path: no path named '" + std::string(w[1]) + "'");
        }
        return stats_json(w.size() == 2 ? w[1] : std::string_view{});
    }
    if (cmd != "set" && cmd != "blackout" && cmd != "reset") {
        return fail("'" + std::string(cmd) + "': no such command (set, blackout, stats, reset)");
    }
    if (w.size() < 2) {
        return fail(std::string(cmd) + ": path: missing (the NAME given to --path)");
    }
    path* p = find(w[1]);
    if (p == nullptr) {
        return fail(std::string(cmd) + ": path: no path named '" + std::string(w[1]) + "'");
    }
    if (cmd == "blackout") {
        if (w.size() != 3 || (w[2] != "on" && w[2] != "off")) {
            return fail("blackout: state: expected 'on' or 'off'");
        }
        p->blackout = w[2] == "on";
        return to_line(nlohmann::json{{"ok", true}, {"path", p->name}, {"blackout", p->blackout}});
    }
    if (cmd == "reset") {
        if (w.size() != 2) {
            return fail("reset: expected 'reset NAME'");
        }
        // Settings and counters start again; packets already waiting still leave when due, but
        // outside the new counters (in + duplicated == out + dropped + queue holds from zero).
        p->blackout = false;
        p->malformed = 0;
        p->link_local = 0;
        ++p->epoch;
        for (direction_state& d : p->dirs) {
            d.settings = impairment{};
            d.counters = direction_counters{};
        }
        return to_line(nlohmann::json{{"ok", true}, {"path", p->name}, {"reset", true}});
    }
    // set NAME [up|down] key=value...: every key is checked before any is applied.
    std::size_t first = 2;
    bool which[2] = {true, true};
    if (w.size() > 2 && (w[2] == "up" || w[2] == "down")) {
        which[w[2] == "up" ? 1 : 0] = false;
        first = 3;
    }
    if (first >= w.size()) {
        return fail("set: settings: none given (key=value, e.g. loss=0.05 delay_ms=10)");
    }
    impairment next[2] = {p->dirs[0].settings, p->dirs[1].settings};
    for (std::size_t i = first; i < w.size(); ++i) {
        const auto eq = w[i].find('=');
        if (eq == std::string_view::npos) {
            return fail("set: '" + std::string(w[i]) + "': expected key=value");
        }
        for (int d = 0; d < 2; ++d) {
            if (!which[d]) {
                continue;
            }
            if (auto r = set_field(next[d], w[i].substr(0, eq), w[i].substr(eq + 1)); !r) {
                return fail("set: " + r.message());
            }
        }
    }
    for (int d = 0; d < 2; ++d) {
        p->dirs[static_cast<std::size_t>(d)].settings = next[d];
    }
    return to_line(nlohmann::json{
        {"ok", true}, {"path", p->name}, {"up", settings_json(next[0])}, {"down", settings_json(next[1])}});
}

} // namespace kwik::relay
