// Open addressing with linear probing, bounded to max_probe slots from an entry's home slot,
// and backward-shift deletion (no tombstones), so a lookup stops at the first empty slot.
// See neighbor_table.hpp for the contract.
#include "dataplane/engine/neighbor_table.hpp"

#include <nmmintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace kwik::engine {

namespace {

constexpr std::size_t arp_request_len = ethernet_header_len + arp_ipv4_len; // 42, padded to 60
constexpr std::size_t ns_len = neighbor_message_len + link_layer_option_len; // ICMPv6 part: 32

// Writes the Ethernet header (with the optional tag) and returns where L3 starts.
std::size_t write_ethernet(std::uint8_t* p, const mac_address& dst, const neighbor_config& c,
                           std::uint16_t ethertype) noexcept {
    dst.store(p);
    c.mac.store(p + 6);
    std::size_t at = 12;
    if (c.vlan_tagged) {
        store_be16(p + at, ethertype_vlan);
        store_be16(p + at + 2, c.vlan_tci);
        at += vlan_tag_len;
    }
    store_be16(p + at, ethertype);
    return at + 2;
}

} // namespace

bool prefix_contains(const interface_address& prefix, const ip_address& a) noexcept {
    return prefix_holds(prefix.address, prefix.prefix_length, a);
}

// ---- configuration ----

bool neighbor_config::add_interface(const ip_address& address, std::uint8_t prefix_length) noexcept {
    if (interface_count == interfaces.size() || prefix_length > (address.is_v4() ? 32 : 128) ||
        address.is_unspecified()) {
        return false;
    }
    interfaces[interface_count++] = {address, prefix_length};
    return true;
}

std::string_view neighbor_config::validate() const noexcept {
    if (mac.is_zero() || mac.is_multicast()) {
        return "mac: the port's MAC address must be a non-zero unicast address";
    }
    if (interface_count == 0) {
        return "interfaces: at least one appliance address with its prefix is needed";
    }
    if (capacity < max_interface_addresses || capacity > (std::size_t{1} << 24)) {
        return "capacity: neighbour table entries must be between 16 and 16777216";
    }
    if (!gateway_v4.is_zero() && !gateway_v4.is_v4()) {
        return "gateway_v4: not an IPv4 address";
    }
    if (!gateway_v6.is_zero() && gateway_v6.is_v4()) {
        return "gateway_v6: not an IPv6 address";
    }
    if (request_interval == 0 || hold_time == 0 || stale_time == 0) {
        return "request_interval, hold_time, stale_time: must be above zero";
    }
    if (vlan_tagged && (vlan_tci & 0x0FFF) == 0x0FFF) {
        return "vlan_tci: VLAN 4095 is reserved";
    }
    return {};
}

// ---- table ----

neighbor_table::neighbor_table(const neighbor_config& config, neighbor_counters* counters)
    : _config(config),
      _slots(std::make_unique<entry[]>(std::bit_ceil(config.capacity))),
      _mask(std::bit_ceil(config.capacity) - 1),
      _counters(counters != nullptr ? counters : &_own_counters) {}

neighbor_table::~neighbor_table() = default;

std::size_t neighbor_table::home(const ip_address& ip) const noexcept {
    // CRC32C of the 16 bytes: two instructions, and it spreads IPv4-mapped keys (whose first
    // 12 bytes are constant) well.
    const std::array<std::uint64_t, 2> w = ip.words();
    const std::uint64_t h = _mm_crc32_u64(_mm_crc32_u64(0x9E3779B9u, w[0]), w[1]);
    return static_cast<std::size_t>(h) & _mask;
}

std::size_t neighbor_table::find(const ip_address& ip) const noexcept {
    std::size_t slot = home(ip);
    for (std::size_t d = 0; d < max_probe; ++d, slot = (slot + 1) & _mask) {
        const entry& e = _slots[slot];
        if (e.st == state::empty) {
            return npos;
        }
        if (e.ip == ip) {
            return slot;
        }
    }
    return npos;
}

std::optional<mac_address> neighbor_table::lookup(const ip_address& ip) const noexcept {
    const std::size_t slot = find(ip);
    if (slot == npos || _slots[slot].st != state::complete) {
        return std::nullopt;
    }
    return _slots[slot].mac;
}

std::size_t neighbor_table::find_or_insert(const ip_address& ip, time_ns now, bool& inserted) noexcept {
    inserted = false;
    std::size_t slot = home(ip);
    std::size_t victim = npos;
    for (std::size_t d = 0; d < max_probe; ++d, slot = (slot + 1) & _mask) {
        entry& e = _slots[slot];
        if (e.st == state::empty) {
            victim = slot;
            break;
        }
        if (e.ip == ip) {
            return slot;
        }
        // The least recently confirmed entry holding no packets: an entry with packets waits
        // for its answer or for sweep(), so that held mbufs are never lost here.
        if (e.held_count == 0 && (victim == npos || e.since < _slots[victim].since)) {
            victim = slot;
        }
    }
    if (victim == npos) {
        return npos;
    }
    entry& e = _slots[victim];
    if (e.st == state::empty) {
        ++_size;
    } else {
        // Replacing in place keeps every other entry reachable: all slots between the new
        // key's home and this one are occupied (the window had no empty slot).
        ++_counters->evicted;
    }
    e = entry{};
    e.ip = ip;
    e.since = now;
    e.requested = never_requested;
    e.st = state::incomplete;
    inserted = true;
    return victim;
}

void neighbor_table::remove(std::size_t slot) noexcept {
    // Backward-shift deletion (Knuth 6.4 algorithm R): pull later members of the cluster back
    // into the hole unless that would put them before their home slot.
    // The hole is empty before the scan starts, so the scan ends even in a full table.
    std::size_t hole = slot;
    _slots[hole] = entry{};
    --_size;
    std::size_t next = (slot + 1) & _mask;
    while (_slots[next].st != state::empty) {
        const std::size_t h = home(_slots[next].ip);
        // Move when h is not cyclically within (hole, next].
        if (((next - h) & _mask) >= ((next - hole) & _mask)) {
            _slots[hole] = _slots[next];
            _slots[next] = entry{};
            hole = next;
        }
        next = (next + 1) & _mask;
    }
}

std::size_t neighbor_table::learn(const ip_address& ip, const mac_address& mac, time_ns now,
                                  std::span<rte_mbuf*> released) noexcept {
    if (ip.is_unspecified() || mac.is_zero() || mac.is_multicast()) [[unlikely]] {
        ++_counters->ignored;
        return 0;
    }
    bool inserted = false;
    const std::size_t slot = find_or_insert(ip, now, inserted);
    if (slot == npos) [[unlikely]] {
        return 0; // the window is all waiting entries: the next learn will do
    }
    entry& e = _slots[slot];
    std::size_t n = 0;
    if (inserted) {
        ++_counters->learned;
    } else if (e.st == state::incomplete) {
        ++_counters->resolved;
        n = std::min<std::size_t>(e.held_count, released.size());
        std::copy_n(e.held.begin(), n, released.begin());
        _counters->released += n;
        e.held_count = 0;
    } else if (e.mac == mac) {
        ++_counters->confirmed;
    } else {
        ++_counters->mac_changed;
    }
    e.mac = mac;
    e.since = now;
    e.st = state::complete;
    return n;
}

std::optional<ip_address> neighbor_table::next_hop(const ip_address& dst) const noexcept {
    for (std::size_t i = 0; i < _config.interface_count; ++i) {
        if (prefix_contains(_config.interfaces[i], dst)) {
            return dst;
        }
    }
    const ip_address& gateway = dst.is_v4() ? _config.gateway_v4 : _config.gateway_v6;
    if (gateway.is_zero()) {
        return std::nullopt;
    }
    return gateway;
}

resolution neighbor_table::resolve(const ip_address& dst, rte_mbuf* m, time_ns now) noexcept {
    resolution r;
    if (const std::optional<mac_address> mac = lookup(dst)) [[likely]] {
        r.status = resolve_status::resolved;
        r.mac = *mac;
        return r;
    }
    const std::optional<ip_address> hop = next_hop(dst);
    if (!hop) {
        r.reason = kdp::drop_reason::no_route;
        return r;
    }
    if (!(*hop == dst)) {
        if (const std::optional<mac_address> mac = lookup(*hop)) {
            r.status = resolve_status::resolved;
            r.mac = *mac;
            return r;
        }
    }
    bool inserted = false;
    const std::size_t slot = find_or_insert(*hop, now, inserted);
    if (slot == npos) [[unlikely]] {
        r.reason = kdp::drop_reason::neighbor_table_full;
        return r;
    }
    entry& e = _slots[slot];
    if (e.st == state::complete) [[unlikely]] {
        // Not reached: lookup() found no complete entry for the next hop above.
        r.status = resolve_status::resolved;
        r.mac = e.mac;
        return r;
    }
    r.request_target = *hop;
    if (e.requested == never_requested || now - e.requested >= _config.request_interval) {
        e.requested = now;
        r.request_due = true;
        ++_counters->requests;
    }
    if (e.held_count == max_held) {
        r.reason = kdp::drop_reason::neighbor_hold_full;
        return r;
    }
    e.held[e.held_count++] = m;
    ++_counters->held;
    r.status = resolve_status::held;
    return r;
}

const interface_address* neighbor_table::source_for(const ip_address& target) const noexcept {
    const interface_address* first = nullptr;
    for (std::size_t i = 0; i < _config.interface_count; ++i) {
        const interface_address& a = _config.interfaces[i];
        if (a.address.is_v4() != target.is_v4()) {
            continue;
        }
        if (prefix_contains(a, target)) {
            return &a;
        }
        if (first == nullptr) {
            first = &a;
        }
    }
    return first;
}

std::size_t neighbor_table::write_request(const ip_address& target, std::span<std::uint8_t> out) const noexcept {
    const interface_address* source = source_for(target);
    if (source == nullptr) {
        return 0;
    }
    const std::size_t tag = _config.vlan_tagged ? vlan_tag_len : 0;
    std::uint8_t* p = out.data();
    if (target.is_v4()) {
        const std::size_t len = std::max(arp_request_len + tag, min_ethernet_frame);
        if (out.size() < len) {
            return 0;
        }
        std::memset(p, 0, len);
        std::uint8_t* arp = p + write_ethernet(p, broadcast_mac, _config, ethertype_arp);
        store_be16(arp, arp_hardware_ethernet);
        store_be16(arp + 2, ethertype_ipv4);
        arp[4] = 6;
        arp[5] = 4;
        store_be16(arp + 6, arp_op_request);
        _config.mac.store(arp + 8);
        std::memcpy(arp + 14, source->address.v4_bytes(), 4);
        // target hardware address (arp + 18) stays zero: it is what we ask for
        std::memcpy(arp + 24, target.v4_bytes(), 4);
        return len;
    }
    const std::size_t len = ethernet_header_len + tag + ipv6_header_len + ns_len;
    if (out.size() < len) {
        return 0;
    }
    std::memset(p, 0, len);
    const ip_address group = solicited_node_group(target);
    std::uint8_t* ip = p + write_ethernet(p, ipv6_multicast_mac(group), _config, ethertype_ipv6);
    store_be32(ip, 0x60000000u);
    store_be16(ip + 4, static_cast<std::uint16_t>(ns_len));
    ip[6] = ip_proto_icmpv6;
    ip[7] = nd_hop_limit;
    std::memcpy(ip + 8, source->address.bytes.data(), 16);
    std::memcpy(ip + 24, group.bytes.data(), 16);
    std::uint8_t* icmp = ip + ipv6_header_len;
    icmp[0] = icmpv6_neighbor_solicitation;
    std::memcpy(icmp + 8, target.bytes.data(), 16);
    icmp[24] = nd_option_source_link_layer;
    icmp[25] = 1;
    _config.mac.store(icmp + 26);
    const std::uint64_t sum = pseudo_header_v6(ip + 8, ip + 24, ip_proto_icmpv6, ns_len);
    store_ne16(icmp + 2, checksum_finish(checksum_add(icmp, ns_len, sum)));
    return len;
}

std::size_t neighbor_table::sweep(time_ns now, std::span<rte_mbuf*> expired, std::size_t max_slots) noexcept {
    std::size_t out = 0;
    std::size_t visited = 0;
    while (visited < max_slots && visited <= _mask) {
        entry& e = _slots[_sweep_cursor];
        bool remove_it = false;
        const time_ns age = now > e.since ? now - e.since : 0;
        if (e.st == state::complete) {
            remove_it = age >= _config.stale_time;
        } else if (e.st == state::incomplete && age >= _config.hold_time) {
            if (expired.size() - out < e.held_count) {
                break; // the caller's array is full: continue from here next time
            }
            std::copy_n(e.held.begin(), e.held_count, expired.begin() + static_cast<std::ptrdiff_t>(out));
            out += e.held_count;
            remove_it = true;
        }
        if (remove_it) {
            ++_counters->expired;
            remove(_sweep_cursor);
            // A later entry may have shifted into this slot: look at it again, but count the
            // visit so that a slice stays bounded.
        } else {
            _sweep_cursor = (_sweep_cursor + 1) & _mask;
        }
        ++visited;
    }
    return out;
}

} // namespace kwik::engine
