// Port bring-up behind one small interface (Seastar's device/qp in net/net.hh is the model): one
// DPDK ethdev port, a NIC by PCI address or a virtual device (net_ring, net_pcap, net_null,
// net_tap, ...), opened with the queues, UDP RSS, checksum offloads and MTU the data plane wants,
// and a report of what the device offered and what was enabled.
// open_port, start, stop, close, link, stats, report: the main lcore only (set-up and
// housekeeping). queue_pair and port::rx_burst/tx_burst: the one worker lcore that owns the queue.
#pragma once

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "drivers/result.hpp"

namespace kwik::drivers {

// "Put the queues on the port's own NUMA socket" (SOCKET_ID_ANY as DPDK spells it).
inline constexpr std::uint32_t socket_of_port = static_cast<std::uint32_t>(SOCKET_ID_ANY);

// The RSS hash functions the data plane asks for: the UDP 5-tuple, IPv4 and IPv6. Masked by what
// the device offers (rte_eth_dev_info.flow_type_rss_offloads). No symmetric key: a path's two
// directions are different 5-tuples on different appliances.
inline constexpr std::uint64_t wanted_rss_hash_functions = RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV6_UDP;

struct port_config {
    // PCI address ("0000:3b:00.0"; "3b:00.0" is read as domain 0), the name of a port that already
    // exists (a --vdev given to EAL, a port made by create_ring_link), or a vdev spec that is
    // attached when no port of that name exists: "net_ring0", "net_null0",
    // "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap", "net_tap0,iface=kwik0".
    std::string device;
    std::uint16_t rx_queues = 1;
    std::uint16_t tx_queues = 1;
    std::uint16_t rx_desc = 1024; // clamped to the device's limits
    std::uint16_t tx_desc = 1024;
    std::uint32_t mtu = 1500; // L3 MTU; frames are mtu + Ethernet overhead
    bool rss = true;               // spread UDP over the rx queues by the 5-tuple hash
    bool checksum_offload = true;  // rx and tx IPv4 + UDP checksums in hardware where offered
    // Where a frame of mtu + Ethernet overhead outgrows one mbuf of pool: rx scatter (the port
    // is refused, naming the mtu, when the device does not offer it) and tx multi-segment
    // mbufs. False: never chained; larger frames are the device's to drop (a note says so).
    bool multi_segment = true;
    bool promiscuous = false;
    std::uint32_t socket_id = socket_of_port; // for the queues' descriptor rings
    rte_mempool* pool = nullptr;              // rx buffers for every rx queue
    // Read and free what the rx queues hold right after start. Off by default: a net_pcap rx file
    // would be eaten before the pipeline runs (testpmd's --no-flush-rx exists for this).
    bool flush_rx_at_start = false;
    // Poll the link for up to this long after start (a real NIC takes a few seconds to come up);
    // 0 reads it once without waiting.
    std::uint32_t link_wait_ms = 0;
};

// What the device offered (rte_eth_dev_info), kept for the report.
struct device_offer {
    std::string driver;
    std::string bus;
    std::int32_t numa_node = -1;
    std::uint16_t max_rx_queues = 0;
    std::uint16_t max_tx_queues = 0;
    std::uint64_t rx_offloads = 0;
    std::uint64_t tx_offloads = 0;
    std::uint64_t rss_hash_functions = 0;
    std::uint16_t reta_size = 0;
    std::uint8_t hash_key_size = 0;
    std::uint16_t min_mtu = 0;
    std::uint16_t max_mtu = 0;
    std::uint32_t max_rx_frame = 0;
    std::uint16_t max_rx_desc = 0;
    std::uint16_t max_tx_desc = 0;
};

// What was enabled, which the data plane must follow: where a checksum is not offloaded the worker
// verifies (rx) or computes (tx) it in software; where a frame outgrows one mbuf and scatter or
// multi-segment tx is off, it must not be received or built that way.
struct port_capabilities {
    bool rss = false;
    std::uint64_t rss_hash_functions = 0;  // enabled RTE_ETH_RSS_* bits
    bool rss_hash_in_mbuf = false;         // RTE_ETH_RX_OFFLOAD_RSS_HASH: mbuf->hash.rss is valid
    // rx: the RTE_MBUF_F_RX_IP_CKSUM_* / RTE_MBUF_F_RX_L4_CKSUM_* flags are meaningful; _UNKNOWN
    // still means "verify in software".
    bool rx_ipv4_checksum = false;
    bool rx_udp_checksum = false;
    // tx: RTE_MBUF_F_TX_IP_CKSUM / RTE_MBUF_F_TX_UDP_CKSUM may be set, with RTE_MBUF_F_TX_IPV4 or
    // _IPV6, l2_len and l3_len, and the pseudo-header checksum (rte_ipv4_phdr_cksum,
    // rte_ipv6_phdr_cksum) in the UDP checksum field.
    bool tx_ipv4_checksum = false;
    bool tx_udp_checksum = false;
    bool rx_scatter = false;               // received frames may arrive as mbuf chains
    bool tx_multi_segment = false;         // mbuf chains may be transmitted
    std::uint32_t mtu = 0;                 // as the device reports it after start
    std::uint32_t max_frame = 0;           // mtu + Ethernet overhead
    std::uint32_t mbuf_data_room = 0;      // bytes of frame one rx mbuf holds
};

struct link_status {
    bool up = false;
    std::uint32_t speed_mbps = 0; // RTE_ETH_SPEED_NUM_*; 0 when unknown
    bool full_duplex = false;
    bool autoneg = false;
};

struct port_stats {
    struct extended {
        std::string name;
        std::uint64_t value = 0;
    };
    rte_eth_stats basic{};
    std::vector<extended> xstats; // the driver's own counters, by name
};

// A worker's handle on one rx/tx queue pair (Seastar's qp): two integers, copied into the
// worker's own state so the hot loop touches no shared object.
class queue_pair {
public:
    queue_pair() = default;
    queue_pair(std::uint16_t port_id, std::uint16_t queue) noexcept : _port_id(port_id), _queue(queue) {}

    std::uint16_t port_id() const noexcept { return _port_id; }
    std::uint16_t queue() const noexcept { return _queue; }

    // Receives up to pkts.size() packets into pkts; returns how many.
    std::uint16_t rx_burst(std::span<rte_mbuf*> pkts) noexcept {
        return rte_eth_rx_burst(_port_id, _queue, pkts.data(), burst_size(pkts.size()));
    }
    // Queues pkts[0, n) for transmission and returns n; the caller still owns pkts[n, size).
    std::uint16_t tx_burst(std::span<rte_mbuf*> pkts) noexcept {
        return rte_eth_tx_burst(_port_id, _queue, pkts.data(), burst_size(pkts.size()));
    }

    static std::uint16_t burst_size(std::size_t n) noexcept {
        return static_cast<std::uint16_t>(std::min<std::size_t>(n, std::numeric_limits<std::uint16_t>::max()));
    }

private:
    std::uint16_t _port_id = 0;
    std::uint16_t _queue = 0;
};
static_assert(sizeof(queue_pair) == 4, "a worker keeps its queue pairs in its own cache lines");

// An open port. Move-only; the destructor stops and closes it (and detaches a vdev that
// open_port attached) if close() was not called.
class port {
public:
    port(const port&) = delete;
    port& operator=(const port&) = delete;
    port(port&& other) noexcept;
    port& operator=(port&& other) noexcept;
    ~port();

    std::uint16_t id() const noexcept { return _id; }
    const std::string& name() const noexcept { return _name; } // the ethdev name
    std::uint16_t rx_queues() const noexcept { return _rx_queues; }
    std::uint16_t tx_queues() const noexcept { return _tx_queues; }
    const port_capabilities& capabilities() const noexcept { return _caps; }
    const device_offer& offer() const noexcept { return _offer; }
    const rte_ether_addr& mac() const noexcept { return _mac; }
    // Things the data plane should know that are not errors: "device offers no UDP RSS hash: all
    // traffic arrives on rx queue 0", "promiscuous mode not supported".
    const std::vector<std::string>& notes() const noexcept { return _notes; }
    bool is_open() const noexcept { return _open; }
    bool is_started() const noexcept { return _started; }

    queue_pair queue(std::uint16_t q) const noexcept { return {_id, q}; }
    std::uint16_t rx_burst(std::uint16_t q, std::span<rte_mbuf*> pkts) noexcept {
        return rte_eth_rx_burst(_id, q, pkts.data(), queue_pair::burst_size(pkts.size()));
    }
    std::uint16_t tx_burst(std::uint16_t q, std::span<rte_mbuf*> pkts) noexcept {
        return rte_eth_tx_burst(_id, q, pkts.data(), queue_pair::burst_size(pkts.size()));
    }

    // The link as the device knows it now, without waiting.
    [[nodiscard]] result<link_status> link() const;
    [[nodiscard]] result<port_stats> stats() const;
    [[nodiscard]] result<void> reset_stats();

    // The start-up report: device, driver, limits, offloads offered against enabled, RSS, MTU,
    // link, notes. Several lines, each ending in '\n'.
    std::string report() const;

    // Stops rx and tx (workers must have left their loops). start() again resumes.
    [[nodiscard]] result<void> stop();
    [[nodiscard]] result<void> start();
    // Stops if started, closes the port, detaches a vdev that open_port attached. Idempotent.
    [[nodiscard]] result<void> close();

private:
    friend result<port> open_port(const port_config& config);
    port() = default;

    std::uint16_t _id = 0;
    bool _open = false;
    bool _started = false;
    bool _attached = false; // open_port attached the vdev, so close() detaches it
    std::string _name;        // ethdev name
    std::string _device_name; // rte_device name (differs from _name for some multi-port NICs)
    std::string _bus;
    std::string _spec;        // as configured
    std::uint16_t _rx_queues = 0;
    std::uint16_t _tx_queues = 0;
    std::uint16_t _rx_desc = 0;
    std::uint16_t _tx_desc = 0;
    std::uint64_t _rx_offloads = 0;
    std::uint64_t _tx_offloads = 0;
    port_capabilities _caps;
    device_offer _offer;
    rte_ether_addr _mac{};
    link_status _link_at_start;
    std::vector<std::string> _notes;
};

// Opens, configures and starts the port. Errors name the device and the field or DPDK call. A
// port already open through another port object is refused (EBUSY), not reconfigured under it.
[[nodiscard]] result<port> open_port(const port_config& config);

// Several lines listing the non-zero basic counters and extended counters.
std::string format_stats(const port_stats& s);

// Names of RTE_ETH_RX_OFFLOAD_*, RTE_ETH_TX_OFFLOAD_* and RTE_ETH_RSS_* bits, space-separated, for
// the report ("none" for 0); MAC as "02:00:00:00:00:01".
std::string rx_offload_names(std::uint64_t offloads);
std::string tx_offload_names(std::uint64_t offloads);
std::string rss_hash_names(std::uint64_t hash_functions);
std::string mac_to_string(const rte_ether_addr& mac);

} // namespace kwik::drivers
