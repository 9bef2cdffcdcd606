// kwikd's side of one net_af_xdp port (af_xdp_port.hpp).
#include "drivers/af_xdp/af_xdp_port.hpp"

#include <cerrno>
#include <utility>

namespace kwik::drivers {

std::string device_argument(std::string_view device, std::string_view key) {
    const std::string needle = "," + std::string(key) + "=";
    const std::size_t at = device.find(needle);
    if (at == std::string_view::npos) {
        return {};
    }
    const std::size_t from = at + needle.size();
    return std::string(device.substr(from, device.find(',', from) - from));
}

result<af_xdp_port> af_xdp_port::prepare(std::string name, std::string_view device, std::string& note) {
    af_xdp_port p;
    p._name = std::move(name);
    p._iface = device_argument(device, "iface");
    if (p._iface.empty()) {
        return error{"device '" + std::string(device) + "': net_af_xdp needs iface=<kernel interface>", EINVAL};
    }
    auto stale = remove_stale_xdp(p._iface);
    if (!stale.ok()) {
        return stale.failure();
    }
    note.clear();
    if (stale->has_value()) {
        note = "removed a stale kwik_xdp (id " + std::to_string((*stale)->program_id) + ", " +
               std::string(to_string((*stale)->mode)) + ") from " + p._iface + ", left by a kwikd that did not stop cleanly";
    }
    return p;
}

result<std::string> af_xdp_port::bind(std::span<const std::uint16_t> kwik_ports, std::span<const xdp_address> addresses,
                                      std::uint16_t rx_queues) {
    auto attached = query_xdp(_iface);
    if (!attached.ok()) {
        return attached.failure();
    }
    auto program = xdp_program::open_attached(_iface);
    if (!program.ok()) {
        return program.failure();
    }
    if (auto r = program->set_kwik_ports(kwik_ports); !r.ok()) {
        return r.failure();
    }
    if (auto r = program->set_addresses(addresses); !r.ok()) {
        return r.failure();
    }
    _program_id = program->program_id();
    _program = std::move(program).value();
    std::string ports;
    for (const std::uint16_t p : kwik_ports) {
        ports += " " + std::to_string(p);
    }
    std::string to;
    for (const xdp_address& a : addresses) {
        to += " " + to_string(a);
    }
    return _name + ": kwik_xdp (id " + std::to_string(_program_id) + ") attached to " + _iface + ", " +
           std::string(to_string((*attached)->mode)) + " mode: UDP to port(s)" + ports + " of" +
           (addresses.empty() ? std::string(" any address") : to) + " goes to kwikd, everything else to the kernel\n" +
           _name + ": RSS over the " + std::to_string(rx_queues) + " queue(s) is " + _iface +
           "'s kernel driver's (ethtool -L " + _iface + " combined N; ethtool -X); the PMD configures none\n";
}

result<xdp_counters> af_xdp_port::counters() const {
    if (!_program) {
        return error{_name + ": no XDP program bound", ENOENT};
    }
    return _program->counters();
}

std::string af_xdp_port::summary() const {
    auto c = counters();
    if (!c.ok()) {
        return _name + " xdp on " + _iface + ": " + c.message();
    }
    std::string why;
    for (std::size_t v = 0; v < c->by_verdict.size(); ++v) {
        if (v != KWIK_XDP_REDIRECTED && c->by_verdict[v] != 0) {
            why += (why.empty() ? "" : ", ") + std::string(verdict_name(v)) + " " + std::to_string(c->by_verdict[v]);
        }
    }
    return _name + " xdp on " + _iface + ": redirected " + std::to_string(c->redirected()) + ", passed to the kernel " +
           std::to_string(c->passed()) + (why.empty() ? "" : " (" + why + ")");
}

result<void> af_xdp_port::release() {
    _program.reset();
    if (_program_id == 0) {
        return {};
    }
    auto there = query_xdp(_iface);
    if (!there.ok()) {
        return there.failure();
    }
    if (!there->has_value() || (*there)->program_id != _program_id) {
        return {};
    }
    return detach_xdp(_iface, **there);
}

} // namespace kwik::drivers
