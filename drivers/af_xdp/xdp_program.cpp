// Kwik's XDP program from user space (xdp_program.hpp): libbpf's low-level calls (bpf_xdp_query,
// object ids to file descriptors, map lookups), no libxdp: its multi-program dispatcher needs
// BPF_PROG_TYPE_EXT, which not every kernel Kwik runs on has (README.md).
#include "drivers/af_xdp/xdp_program.hpp"

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace kwik::drivers {
namespace {

error bpf_error(std::string_view where, std::string_view call, int ret) {
    const int code = ret < 0 ? -ret : (errno != 0 ? errno : EINVAL);
    return error{std::string(where) + ": " + std::string(call) + ": " + std::strerror(code), code};
}

std::string iface_where(const std::string& iface) {
    return "interface '" + iface + "'";
}

std::uint32_t mode_flag(xdp_mode mode) noexcept {
    switch (mode) {
    case xdp_mode::generic:
        return XDP_FLAGS_SKB_MODE;
    case xdp_mode::offload:
        return XDP_FLAGS_HW_MODE;
    default:
        return XDP_FLAGS_DRV_MODE;
    }
}

void close_fd(int& fd) noexcept {
    if (fd >= 0) {
        ::close(fd);
        fd = -1;
    }
}

// The kernel's name and map ids of a program.
struct program_facts {
    std::string name;
    std::vector<std::uint32_t> map_ids;
};

result<program_facts> facts_of(int prog_fd, std::string_view where) {
    bpf_prog_info info{};
    std::uint32_t len = sizeof(info);
    if (const int r = bpf_obj_get_info_by_fd(prog_fd, &info, &len); r != 0) {
        return bpf_error(where, "bpf_obj_get_info_by_fd (program)", r);
    }
    program_facts f;
    f.name.assign(info.name, strnlen(info.name, sizeof(info.name)));
    if (info.nr_map_ids != 0) {
        f.map_ids.resize(info.nr_map_ids);
        const std::uint32_t n = info.nr_map_ids;
        info = bpf_prog_info{};
        info.nr_map_ids = n;
        info.map_ids = reinterpret_cast<std::uint64_t>(f.map_ids.data());
        len = sizeof(info);
        if (const int r = bpf_obj_get_info_by_fd(prog_fd, &info, &len); r != 0) {
            return bpf_error(where, "bpf_obj_get_info_by_fd (map ids)", r);
        }
        f.map_ids.resize(std::min(n, info.nr_map_ids));
    }
    return f;
}

// Every key of a hash map, sorted (the maps hold a handful: 8 ports, 16 addresses).
template <class Key> result<std::vector<Key>> keys_of(int fd, std::string_view map) {
    std::vector<Key> out;
    Key key{};
    Key next{};
    for (int r = bpf_map_get_next_key(fd, nullptr, &next); r == 0; r = bpf_map_get_next_key(fd, &key, &next)) {
        out.push_back(next);
        key = next;
    }
    if (errno != ENOENT) {
        return bpf_error(map, "bpf_map_get_next_key", -errno);
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

std::string_view to_string(xdp_mode mode) noexcept {
    switch (mode) {
    case xdp_mode::native:
        return "native";
    case xdp_mode::generic:
        return "generic";
    case xdp_mode::offload:
        return "offload";
    }
    return "unknown";
}

std::uint64_t xdp_counters::passed() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t v = 0; v < by_verdict.size(); ++v) {
        n += v == KWIK_XDP_REDIRECTED ? 0 : by_verdict[v];
    }
    return n;
}

std::string_view verdict_name(std::size_t verdict) noexcept {
    static constexpr std::array<std::string_view, KWIK_XDP_VERDICTS> names = {
        "redirected", "no_socket", "not_ip", "not_udp", "not_kwik_port", "not_kwik_address", "fragment", "truncated"};
    return verdict < names.size() ? names[verdict] : "unknown";
}

std::optional<xdp_address> parse_xdp_address(std::string_view text) {
    const std::string s(text);
    xdp_address a{};
    if (inet_pton(AF_INET, s.c_str(), &a[12]) == 1) {
        a[10] = 0xff;
        a[11] = 0xff;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.data()) == 1) {
        return a;
    }
    return std::nullopt;
}

std::string to_string(const xdp_address& address) {
    static constexpr std::array<std::uint8_t, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN] = {};
    if (std::equal(mapped.begin(), mapped.end(), address.begin())) {
        inet_ntop(AF_INET, &address[12], text, sizeof(text));
    } else {
        inet_ntop(AF_INET6, address.data(), text, sizeof(text));
    }
    return text;
}

result<unsigned> interface_index(const std::string& iface) {
    const unsigned index = if_nametoindex(iface.c_str());
    if (index == 0) {
        const int code = errno == 0 ? ENODEV : errno;
        return error{iface_where(iface) + ": no such interface (" + std::strerror(code) + ")", ENODEV};
    }
    return index;
}

result<std::optional<xdp_attachment>> query_xdp(const std::string& iface) {
    auto index = interface_index(iface);
    if (!index.ok()) {
        return index.failure();
    }
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (const int r = bpf_xdp_query(static_cast<int>(*index), 0, &q); r != 0) {
        return bpf_error(iface_where(iface), "bpf_xdp_query", r);
    }
    xdp_attachment a;
    switch (q.attach_mode) {
    case XDP_ATTACHED_NONE:
        return std::optional<xdp_attachment>{};
    case XDP_ATTACHED_DRV:
        a.mode = xdp_mode::native;
        a.program_id = q.drv_prog_id;
        break;
    case XDP_ATTACHED_SKB:
        a.mode = xdp_mode::generic;
        a.program_id = q.skb_prog_id;
        break;
    case XDP_ATTACHED_HW:
        a.mode = xdp_mode::offload;
        a.program_id = q.hw_prog_id;
        break;
    default: // XDP_ATTACHED_MULTI: several modes at once; none of them ours to judge alone
        a.mode = q.drv_prog_id != 0 ? xdp_mode::native : xdp_mode::generic;
        a.program_id = q.drv_prog_id != 0 ? q.drv_prog_id : q.skb_prog_id;
        break;
    }
    const int fd = bpf_prog_get_fd_by_id(a.program_id);
    if (fd < 0) {
        return bpf_error(iface_where(iface), "bpf_prog_get_fd_by_id " + std::to_string(a.program_id), fd);
    }
    auto facts = facts_of(fd, iface_where(iface));
    ::close(fd);
    if (!facts.ok()) {
        return facts.failure();
    }
    a.name = facts->name;
    return std::optional<xdp_attachment>{a};
}

result<void> detach_xdp(const std::string& iface, const xdp_attachment& expected, bool force) {
    if (!expected.ours() && !force) {
        return error{iface_where(iface) + ": the XDP program attached (id " + std::to_string(expected.program_id) +
                         ", '" + expected.name + "') is not Kwik's; left attached (--force detaches it)",
                     EPERM};
    }
    auto index = interface_index(iface);
    if (!index.ok()) {
        return index.failure();
    }
    const int fd = bpf_prog_get_fd_by_id(expected.program_id);
    if (fd < 0) {
        return bpf_error(iface_where(iface), "bpf_prog_get_fd_by_id " + std::to_string(expected.program_id), fd);
    }
    // XDP_FLAGS_REPLACE: only while the attached program is still this one.
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd);
    const int r = bpf_xdp_detach(static_cast<int>(*index), XDP_FLAGS_REPLACE | mode_flag(expected.mode), &opts);
    ::close(fd);
    if (r != 0) {
        return bpf_error(iface_where(iface), "bpf_xdp_detach (program id " + std::to_string(expected.program_id) + ", " +
                                                 std::string(to_string(expected.mode)) + ")",
                         r);
    }
    return {};
}

result<std::optional<xdp_attachment>> remove_stale_xdp(const std::string& iface) {
    auto attached = query_xdp(iface);
    if (!attached.ok() || !attached->has_value()) {
        return attached;
    }
    const xdp_attachment& a = **attached;
    if (!a.ours()) {
        return error{iface_where(iface) + ": an XDP program that is not Kwik's is attached (id " +
                         std::to_string(a.program_id) + ", '" + a.name + "', " + std::string(to_string(a.mode)) +
                         "); detach it first (ip link set dev " + iface + " xdp off)",
                     EBUSY};
    }
    if (auto r = detach_xdp(iface, a); !r.ok()) {
        return r.failure();
    }
    return attached;
}

xdp_program::xdp_program(xdp_program&& other) noexcept
    : _object(std::exchange(other._object, nullptr)), _prog_fd(std::exchange(other._prog_fd, -1)),
      _prog_id(std::exchange(other._prog_id, 0)), _xsks_fd(std::exchange(other._xsks_fd, -1)),
      _ports_fd(std::exchange(other._ports_fd, -1)), _addresses_fd(std::exchange(other._addresses_fd, -1)),
      _config_fd(std::exchange(other._config_fd, -1)), _counters_fd(std::exchange(other._counters_fd, -1)) {}

xdp_program& xdp_program::operator=(xdp_program&& other) noexcept {
    if (this != &other) {
        close_all();
        _object = std::exchange(other._object, nullptr);
        _prog_fd = std::exchange(other._prog_fd, -1);
        _prog_id = std::exchange(other._prog_id, 0);
        _xsks_fd = std::exchange(other._xsks_fd, -1);
        _ports_fd = std::exchange(other._ports_fd, -1);
        _addresses_fd = std::exchange(other._addresses_fd, -1);
        _config_fd = std::exchange(other._config_fd, -1);
        _counters_fd = std::exchange(other._counters_fd, -1);
    }
    return *this;
}

xdp_program::~xdp_program() { close_all(); }

void xdp_program::close_all() noexcept {
    close_fd(_xsks_fd);
    close_fd(_ports_fd);
    close_fd(_addresses_fd);
    close_fd(_config_fd);
    close_fd(_counters_fd);
    if (_object != nullptr) {
        bpf_object__close(_object); // closes _prog_fd with it
        _object = nullptr;
        _prog_fd = -1;
    }
    close_fd(_prog_fd);
}

// Our maps by name, from the program's map ids (the same for a program this process loaded and
// one found attached).
result<void> xdp_program::find_maps(std::string_view where) {
    auto facts = facts_of(_prog_fd, where);
    if (!facts.ok()) {
        return facts.failure();
    }
    for (const std::uint32_t id : facts->map_ids) {
        const int fd = bpf_map_get_fd_by_id(id);
        if (fd < 0) {
            return bpf_error(where, "bpf_map_get_fd_by_id " + std::to_string(id), fd);
        }
        bpf_map_info info{};
        std::uint32_t len = sizeof(info);
        if (const int r = bpf_obj_get_info_by_fd(fd, &info, &len); r != 0) {
            ::close(fd);
            return bpf_error(where, "bpf_obj_get_info_by_fd (map " + std::to_string(id) + ")", r);
        }
        const std::string_view name(info.name, strnlen(info.name, sizeof(info.name)));
        int* slot = name == "xsks_map"         ? &_xsks_fd
                    : name == "kwik_ports"     ? &_ports_fd
                    : name == "kwik_addresses" ? &_addresses_fd
                    : name == "kwik_config"    ? &_config_fd
                    : name == "kwik_counters"  ? &_counters_fd
                                               : nullptr;
        if (slot == nullptr || *slot >= 0) {
            ::close(fd);
            continue;
        }
        *slot = fd;
    }
    const std::pair<int, std::string_view> needed[] = {{_xsks_fd, "xsks_map"},
                                                       {_ports_fd, "kwik_ports"},
                                                       {_addresses_fd, "kwik_addresses"},
                                                       {_config_fd, "kwik_config"},
                                                       {_counters_fd, "kwik_counters"}};
    for (const auto& [fd, name] : needed) {
        if (fd < 0) {
            return error{std::string(where) + ": the program has no map '" + std::string(name) +
                             "': not Kwik's kwik_xdp, or from another version",
                         EPERM};
        }
    }
    return {};
}

result<xdp_program> xdp_program::open_attached(const std::string& iface) {
    auto attached = query_xdp(iface);
    if (!attached.ok()) {
        return attached.failure();
    }
    if (!attached->has_value()) {
        return error{iface_where(iface) + ": no XDP program attached", ENOENT};
    }
    const xdp_attachment& a = **attached;
    if (!a.ours()) {
        return error{iface_where(iface) + ": the XDP program attached (id " + std::to_string(a.program_id) + ", '" +
                         a.name + "') is not Kwik's",
                     EPERM};
    }
    xdp_program p;
    p._prog_fd = bpf_prog_get_fd_by_id(a.program_id);
    if (p._prog_fd < 0) {
        return bpf_error(iface_where(iface), "bpf_prog_get_fd_by_id " + std::to_string(a.program_id), p._prog_fd);
    }
    p._prog_id = a.program_id;
    if (auto r = p.find_maps(iface_where(iface)); !r.ok()) {
        return r.failure();
    }
    return p;
}

result<xdp_program> load_xdp_object(const std::string& path) {
    const std::string where = "XDP object '" + path + "'";
    xdp_program p;
    p._object = bpf_object__open_file(path.c_str(), nullptr);
    if (p._object == nullptr) {
        return bpf_error(where, "bpf_object__open_file", -errno);
    }
    if (const int r = bpf_object__load(p._object); r != 0) {
        return bpf_error(where, "bpf_object__load", r);
    }
    bpf_program* prog = bpf_object__find_program_by_name(p._object, std::string(kwik_xdp_program_name).c_str());
    if (prog == nullptr) {
        return error{where + ": no program named '" + std::string(kwik_xdp_program_name) + "'", ENOENT};
    }
    p._prog_fd = bpf_program__fd(prog);
    bpf_prog_info info{};
    std::uint32_t len = sizeof(info);
    if (const int r = bpf_obj_get_info_by_fd(p._prog_fd, &info, &len); r != 0) {
        return bpf_error(where, "bpf_obj_get_info_by_fd", r);
    }
    p._prog_id = info.id;
    if (auto r = p.find_maps(where); !r.ok()) {
        return r.failure();
    }
    return p;
}

result<void> xdp_program::attach(const std::string& iface, xdp_mode mode) {
    auto index = interface_index(iface);
    if (!index.ok()) {
        return index.failure();
    }
    if (auto there = query_xdp(iface); there.ok() && there->has_value()) {
        return error{iface_where(iface) + ": an XDP program is already attached (id " +
                         std::to_string((*there)->program_id) + ", '" + (*there)->name + "', " +
                         std::string(to_string((*there)->mode)) + ")",
                     EBUSY};
    }
    const int r = bpf_xdp_attach(static_cast<int>(*index), _prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag(mode), nullptr);
    if (r != 0) {
        return bpf_error(iface_where(iface), "bpf_xdp_attach (" + std::string(to_string(mode)) + ")", r);
    }
    return {};
}

result<void> xdp_program::set_kwik_ports(std::span<const std::uint16_t> ports) {
    if (ports.empty() || ports.size() > KWIK_XDP_MAX_PORTS) {
        return error{"kwik_ports: " + std::to_string(ports.size()) + " ports; the program holds 1 to " +
                         std::to_string(KWIK_XDP_MAX_PORTS),
                     EINVAL};
    }
    auto old = kwik_ports();
    if (!old.ok()) {
        return old.failure();
    }
    for (std::uint16_t p : *old) {
        if (std::find(ports.begin(), ports.end(), p) == ports.end()) {
            if (const int r = bpf_map_delete_elem(_ports_fd, &p); r != 0) {
                return bpf_error("map kwik_ports", "delete " + std::to_string(p), r);
            }
        }
    }
    const std::uint8_t one = 1;
    for (std::uint16_t p : ports) {
        if (const int r = bpf_map_update_elem(_ports_fd, &p, &one, BPF_ANY); r != 0) {
            return bpf_error("map kwik_ports", "update " + std::to_string(p), r);
        }
    }
    return {};
}

result<void> xdp_program::set_addresses(std::span<const xdp_address> addresses) {
    if (addresses.size() > KWIK_XDP_MAX_ADDRESSES) {
        return error{"addresses: " + std::to_string(addresses.size()) + " addresses; the program holds at most " +
                         std::to_string(KWIK_XDP_MAX_ADDRESSES),
                     EINVAL};
    }
    // Filter off first, so no frame is judged against a half-written set; on last.
    kwik_xdp_config config{};
    const std::uint32_t zero = 0;
    if (const int r = bpf_map_update_elem(_config_fd, &zero, &config, BPF_ANY); r != 0) {
        return bpf_error("map kwik_config", "update", r);
    }
    auto old = this->addresses();
    if (!old.ok()) {
        return old.failure();
    }
    for (const xdp_address& a : *old) {
        if (const int r = bpf_map_delete_elem(_addresses_fd, a.data()); r != 0) {
            return bpf_error("map kwik_addresses", "delete " + to_string(a), r);
        }
    }
    const std::uint8_t one = 1;
    for (const xdp_address& a : addresses) {
        if (const int r = bpf_map_update_elem(_addresses_fd, a.data(), &one, BPF_ANY); r != 0) {
            return bpf_error("map kwik_addresses", "update " + to_string(a), r);
        }
    }
    config.address_count = static_cast<std::uint32_t>(addresses.size());
    if (const int r = bpf_map_update_elem(_config_fd, &zero, &config, BPF_ANY); r != 0) {
        return bpf_error("map kwik_config", "update", r);
    }
    return {};
}

result<std::vector<std::uint16_t>> xdp_program::kwik_ports() const {
    return keys_of<std::uint16_t>(_ports_fd, "map kwik_ports");
}

result<std::vector<xdp_address>> xdp_program::addresses() const {
    return keys_of<xdp_address>(_addresses_fd, "map kwik_addresses");
}

result<void> xdp_program::set_socket(std::uint32_t queue, int xsk_fd) {
    if (queue >= KWIK_XDP_MAX_QUEUES) {
        return error{"xsks_map: queue " + std::to_string(queue) + " past the map's " +
                         std::to_string(KWIK_XDP_MAX_QUEUES) + " entries",
                     EINVAL};
    }
    if (const int r = bpf_map_update_elem(_xsks_fd, &queue, &xsk_fd, BPF_ANY); r != 0) {
        return bpf_error("map xsks_map", "update queue " + std::to_string(queue), r);
    }
    return {};
}

result<xdp_counters> xdp_program::counters() const {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) {
        return bpf_error("map kwik_counters", "libbpf_num_possible_cpus", cpus);
    }
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
    xdp_counters c;
    for (std::uint32_t v = 0; v < KWIK_XDP_VERDICTS; ++v) {
        if (const int r = bpf_map_lookup_elem(_counters_fd, &v, per_cpu.data()); r != 0) {
            return bpf_error("map kwik_counters", "lookup " + std::string(verdict_name(v)), r);
        }
        for (const std::uint64_t n : per_cpu) {
            c.by_verdict[v] += n;
        }
    }
    return c;
}

} // namespace kwik::drivers
