// Transmit-side neighbour resolution: IP address -> Ethernet address for the frames a worker
// sends. Entries are learned from received packets (a reply goes to the MAC its request came
// from, the router's for a remote peer) and from ARP replies / neighbour advertisements; a
// destination with no entry gets an ARP request or neighbour solicitation (at most one per
// destination per request_interval) while up to max_held of its packets wait in the entry.
// One table per worker lcore, written and read only by it: no locks, no atomics, no
// allocation after construction. No DPDK dependency (mbufs are held as opaque pointers).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "dataplane/engine/net_headers.hpp"
#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/transport/types.hpp"

struct rte_mbuf;

namespace kwik::engine {

using transport::time_ns;

inline constexpr std::size_t max_interface_addresses = 16;

// An address of the appliance with its on-link prefix: 10.0.0.1/24 is {v4(10.0.0.1), 24}
// (the IPv4 prefix length counts IPv4 bits), fd00::1/64 is {v6(...), 64}.
struct interface_address {
    ip_address address;
    std::uint8_t prefix_length = 0;
};

struct neighbor_config {
    mac_address mac;               // ours: the source of requests
    bool vlan_tagged = false;      // requests carry an 802.1Q tag with vlan_tci
    std::uint16_t vlan_tci = 0;
    std::array<interface_address, max_interface_addresses> interfaces{};
    std::size_t interface_count = 0;
    ip_address gateway_v4;         // off-link IPv4 destinations resolve through it; zero: none
    ip_address gateway_v6;         // the same for IPv6
    std::size_t capacity = 4096;   // entries, rounded up to a power of two (64 bytes each)
    time_ns request_interval = transport::sec; // per destination, between two ARP/NS requests
    time_ns hold_time = 3 * transport::sec;    // how long held packets wait for an answer
    time_ns stale_time = 300 * transport::sec; // entries not confirmed for this long are removed

    // False when full or for a prefix longer than the family's address.
    [[nodiscard]] bool add_interface(const ip_address& address, std::uint8_t prefix_length) noexcept;
    // Empty when usable, else what is wrong, naming the field.
    [[nodiscard]] std::string_view validate() const noexcept;
};

// Events, per table (so per worker). Drops are not counted here: resolve() and sweep() hand
// them to the caller with their kdp::drop_reason, for its one drop counter array.
struct neighbor_counters {
    std::uint64_t learned = 0;     // entries made by learn()
    std::uint64_t confirmed = 0;   // learn() on an existing entry, same MAC
    std::uint64_t mac_changed = 0; // learn() that replaced an entry's MAC
    std::uint64_t resolved = 0;    // incomplete entries that learn() completed
    std::uint64_t requests = 0;    // ARP requests / solicitations resolve() asked for
    std::uint64_t held = 0;        // packets resolve() kept waiting
    std::uint64_t released = 0;    // held packets learn() handed back to send
    std::uint64_t evicted = 0;     // entries replaced because their probe window was full
    std::uint64_t expired = 0;     // entries sweep() removed (stale, or unanswered)
    std::uint64_t ignored = 0;     // learn() of a multicast/zero MAC or unspecified address
};

enum class resolve_status : std::uint8_t {
    resolved, // mac is the destination's: write it and send
    held,     // the table keeps the packet until learn() releases it or sweep() expires it
    dropped,  // the caller frees the packet and counts reason
};

struct resolution {
    resolve_status status = resolve_status::dropped;
    kdp::drop_reason reason = kdp::drop_reason::none; // no_route, neighbor_hold_full, neighbor_table_full
    bool request_due = false; // send write_request(request_target) now (any status but resolved)
    mac_address mac;
    ip_address request_target; // the next hop: the destination itself or the gateway
};

class neighbor_table {
public:
    static constexpr std::size_t max_held = 3;  // packets per unresolved destination
    static constexpr std::size_t max_probe = 16; // slots an entry may sit from its home slot

    // Allocates the whole table. Precondition: config.validate() is empty. counters: where its
    // events are counted (a worker sums its ports' tables into one, single writer: the worker);
    // null: the table's own.
    explicit neighbor_table(const neighbor_config& config, neighbor_counters* counters = nullptr);
    ~neighbor_table();
    neighbor_table(const neighbor_table&) = delete;
    neighbor_table& operator=(const neighbor_table&) = delete;

    // The MAC for ip when an entry for it is complete.
    std::optional<mac_address> lookup(const ip_address& ip) const noexcept;

    // Records that ip is at mac (the source of a received packet, the sender of an ARP message,
    // an NA's target). Completing an incomplete entry moves its held packets into released
    // (which must hold max_held) and returns how many: the caller writes mac into them and
    // sends them. Makes an entry when there is none, evicting the least recently confirmed
    // entry without held packets in the probe window when the window is full.
    std::size_t learn(const ip_address& ip, const mac_address& mac, time_ns now,
                      std::span<rte_mbuf*> released) noexcept;

    // Where to send packet m for destination dst. An entry for dst itself wins (learned from
    // its packets, even when it is off-link); otherwise the next hop's (dst when on-link, else
    // the family's gateway). With no complete entry, m is held (at most max_held per next hop;
    // more are dropped) and request_due says whether an ARP/NS for the next hop is due (once
    // per request_interval).
    resolution resolve(const ip_address& dst, rte_mbuf* m, time_ns now) noexcept;

    // The next hop for dst: dst when one of the interfaces' prefixes holds it, else the
    // family's gateway; nothing when neither.
    std::optional<ip_address> next_hop(const ip_address& dst) const noexcept;

    // Writes the broadcast ARP request (IPv4 target) or the solicited-node multicast neighbour
    // solicitation (IPv6 target) for target into out, from our MAC and our address on target's
    // prefix (else our first address of that family). Returns the frame length (60 for ARP,
    // 86 for NS, plus 4 with a VLAN tag), 0 when out is too small or no address of target's
    // family is configured.
    std::size_t write_request(const ip_address& target, std::span<std::uint8_t> out) const noexcept;

    // Housekeeping from the worker loop, a slice at a time: visits up to max_slots slots from
    // where the last call stopped. Removes complete entries not confirmed for stale_time and
    // incomplete ones older than hold_time; the latter's held packets go into expired (the
    // caller frees them and counts them as neighbor_unresolved). Returns how many it put
    // there; stops early when expired cannot take an entry's packets.
    std::size_t sweep(time_ns now, std::span<rte_mbuf*> expired, std::size_t max_slots = 64) noexcept;

    std::size_t size() const noexcept { return _size; }
    std::size_t capacity() const noexcept { return _mask + 1; }
    const neighbor_counters& counters() const noexcept { return *_counters; }

private:
    enum class state : std::uint8_t { empty, incomplete, complete };

    // One cache line. For a complete entry `since` is when it was last confirmed; for an
    // incomplete one, when it was made (hold_time counts from there).
    struct alignas(64) entry {
        ip_address ip;
        time_ns since = 0;
        time_ns requested = 0; // last request, or never_requested
        std::array<rte_mbuf*, max_held> held{};
        mac_address mac;
        state st = state::empty;
        std::uint8_t held_count = 0;
    };
    static_assert(sizeof(entry) == 64);
    static constexpr time_ns never_requested = transport::never;

    std::size_t home(const ip_address& ip) const noexcept;
    std::size_t find(const ip_address& ip) const noexcept; // npos when absent
    // The slot for ip, made incomplete when new; npos when the window is full of entries with
    // held packets.
    std::size_t find_or_insert(const ip_address& ip, time_ns now, bool& inserted) noexcept;
    void remove(std::size_t slot) noexcept;
    const interface_address* source_for(const ip_address& target) const noexcept;

    static constexpr std::size_t npos = ~std::size_t{0};

    neighbor_config _config;
    std::unique_ptr<entry[]> _slots;
    std::size_t _mask = 0;
    std::size_t _size = 0;
    std::size_t _sweep_cursor = 0;
    neighbor_counters _own_counters;
    neighbor_counters* _counters;
};

// True when a is within prefix/prefix_length (interface_address semantics).
bool prefix_contains(const interface_address& prefix, const ip_address& a) noexcept;

} // namespace kwik::engine
