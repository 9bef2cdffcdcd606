// Port bring-up: resolve or attach the device, configure queues, RSS, offloads and MTU from what
// the device offers, start it, and describe the outcome. Main lcore only.
#include "drivers/port.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string_view>
#include <thread>

namespace kwik::drivers {

error dpdk_error(std::string_view device, std::string_view action, int ret) {
    const int code = ret < 0 ? -ret : ret;
    std::string m = "device '";
    m.append(device);
    m.append("': ");
    m.append(action);
    m.append(": ");
    m.append(rte_strerror(code));
    return {std::move(m), code};
}

error config_error(std::string_view device, int code, std::string_view what) {
    std::string m = "device '";
    m.append(device);
    m.append("': ");
    m.append(what);
    return {std::move(m), code};
}

namespace {

bool is_hex(char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

bool all_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_hex);
}

// "BB:DD.F" or "DDDD:BB:DD.F" (hex digits).
bool looks_like_pci(std::string_view s) {
    std::string_view rest = s;
    if (rest.size() == 12) {
        if (rest[4] != ':' || !all_hex(rest.substr(0, 4))) {
            return false;
        }
        rest.remove_prefix(5);
    }
    return rest.size() == 7 && rest[2] == ':' && rest[5] == '.' && all_hex(rest.substr(0, 2)) &&
           all_hex(rest.substr(3, 2)) && all_hex(rest.substr(6, 1));
}

// The device's name as DPDK spells it: the part of the spec before the first ',', with a short
// PCI address given domain 0000.
std::string device_name_of(std::string_view spec) {
    std::string name(spec.substr(0, spec.find(',')));
    if (looks_like_pci(name) && name.size() == 7) {
        name.insert(0, "0000:");
    }
    return name;
}

// The first port whose ethdev name, or whose rte_device name, is name.
bool find_port(const std::string& name, std::uint16_t& port_id) {
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) == 0) {
        return true;
    }
    std::uint16_t p = 0;
    RTE_ETH_FOREACH_DEV(p) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(p, &info) == 0 && info.device != nullptr) {
            const char* dev_name = rte_dev_name(info.device);
            if (dev_name != nullptr && name == dev_name) {
                port_id = p;
                return true;
            }
        }
    }
    return false;
}

std::string bit_names(std::uint64_t bits, const char* (*name_of)(std::uint64_t)) {
    if (bits == 0) {
        return "none";
    }
    std::string out;
    for (unsigned b = 0; b < 64; ++b) {
        const std::uint64_t bit = std::uint64_t{1} << b;
        if ((bits & bit) == 0) {
            continue;
        }
        if (!out.empty()) {
            out.push_back(' ');
        }
        const char* n = name_of(bit);
        if (n == nullptr || std::string_view(n) == "UNKNOWN") {
            out.append("bit" + std::to_string(b));
        } else {
            out.append(n);
        }
    }
    return out;
}

std::string to_lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

const char* rss_name(std::uint64_t bit) {
    struct entry {
        std::uint64_t bit;
        const char* name;
    };
    static constexpr std::array<entry, 40> names = {{
        {RTE_ETH_RSS_IPV4, "ipv4"},
        {RTE_ETH_RSS_FRAG_IPV4, "ipv4-frag"},
        {RTE_ETH_RSS_NONFRAG_IPV4_TCP, "ipv4-tcp"},
        {RTE_ETH_RSS_NONFRAG_IPV4_UDP, "ipv4-udp"},
        {RTE_ETH_RSS_NONFRAG_IPV4_SCTP, "ipv4-sctp"},
        {RTE_ETH_RSS_NONFRAG_IPV4_OTHER, "ipv4-other"},
        {RTE_ETH_RSS_IPV6, "ipv6"},
        {RTE_ETH_RSS_FRAG_IPV6, "ipv6-frag"},
        {RTE_ETH_RSS_NONFRAG_IPV6_TCP, "ipv6-tcp"},
        {RTE_ETH_RSS_NONFRAG_IPV6_UDP, "ipv6-udp"},
        {RTE_ETH_RSS_NONFRAG_IPV6_SCTP, "ipv6-sctp"},
        {RTE_ETH_RSS_NONFRAG_IPV6_OTHER, "ipv6-other"},
        {RTE_ETH_RSS_L2_PAYLOAD, "l2-payload"},
        {RTE_ETH_RSS_IPV6_EX, "ipv6-ex"},
        {RTE_ETH_RSS_IPV6_TCP_EX, "ipv6-tcp-ex"},
        {RTE_ETH_RSS_IPV6_UDP_EX, "ipv6-udp-ex"},
        {RTE_ETH_RSS_PORT, "port"},
        {RTE_ETH_RSS_VXLAN, "vxlan"},
        {RTE_ETH_RSS_GENEVE, "geneve"},
        {RTE_ETH_RSS_NVGRE, "nvgre"},
        {RTE_ETH_RSS_GTPU, "gtpu"},
        {RTE_ETH_RSS_ETH, "eth"},
        {RTE_ETH_RSS_S_VLAN, "s-vlan"},
        {RTE_ETH_RSS_C_VLAN, "c-vlan"},
        {RTE_ETH_RSS_ESP, "esp"},
        {RTE_ETH_RSS_AH, "ah"},
        {RTE_ETH_RSS_L2TPV3, "l2tpv3"},
        {RTE_ETH_RSS_PFCP, "pfcp"},
        {RTE_ETH_RSS_PPPOE, "pppoe"},
        {RTE_ETH_RSS_ECPRI, "ecpri"},
        {RTE_ETH_RSS_MPLS, "mpls"},
        {RTE_ETH_RSS_IPV4_CHKSUM, "ipv4-chksum"},
        {RTE_ETH_RSS_L4_CHKSUM, "l4-chksum"},
        {RTE_ETH_RSS_L2TPV2, "l2tpv2"},
        {RTE_ETH_RSS_L3_SRC_ONLY, "l3-src-only"},
        {RTE_ETH_RSS_L3_DST_ONLY, "l3-dst-only"},
        {RTE_ETH_RSS_L4_SRC_ONLY, "l4-src-only"},
        {RTE_ETH_RSS_L4_DST_ONLY, "l4-dst-only"},
        {RTE_ETH_RSS_L2_SRC_ONLY, "l2-src-only"},
        {RTE_ETH_RSS_L2_DST_ONLY, "l2-dst-only"},
    }};
    for (const entry& e : names) {
        if (e.bit == bit) {
            return e.name;
        }
    }
    return nullptr;
}

const char* rx_offload_name(std::uint64_t bit) {
    return rte_eth_dev_rx_offload_name(bit);
}

const char* tx_offload_name(std::uint64_t bit) {
    return rte_eth_dev_tx_offload_name(bit);
}

link_status to_link_status(const rte_eth_link& l) {
    link_status s;
    s.up = l.link_status == RTE_ETH_LINK_UP;
    s.speed_mbps = l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : l.link_speed;
    s.full_duplex = l.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    s.autoneg = l.link_autoneg == RTE_ETH_LINK_AUTONEG;
    return s;
}

std::string link_text(const link_status& l) {
    if (!l.up) {
        return "down";
    }
    std::string s = "up";
    if (l.speed_mbps == 0) {
        s += ", speed unknown";
    } else if (l.speed_mbps >= 1000 && l.speed_mbps % 1000 == 0) {
        s += ", " + std::to_string(l.speed_mbps / 1000) + " Gbit/s";
    } else {
        s += ", " + std::to_string(l.speed_mbps) + " Mbit/s";
    }
    s += l.full_duplex ? ", full duplex" : ", half duplex";
    s += l.autoneg ? ", autoneg" : ", fixed";
    return s;
}

const char* on_off(bool b) {
    return b ? "on" : "off";
}

// Ethernet overhead the device adds to the MTU, as ethdev computes it (eth_dev_get_overhead_len).
std::uint32_t overhead_of(const rte_eth_dev_info& info) {
    if (info.max_mtu != UINT16_MAX && info.max_rx_pktlen > info.max_mtu) {
        return info.max_rx_pktlen - info.max_mtu;
    }
    return RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
}

// Ports open through a port object. Set-up paths only; the mutex keeps two set-up threads honest.
std::mutex open_ports_mutex;
std::array<bool, RTE_MAX_ETHPORTS> open_ports{};

bool claim_port(std::uint16_t id) {
    const std::lock_guard<std::mutex> lock(open_ports_mutex);
    if (id >= open_ports.size() || open_ports[id]) {
        return false;
    }
    open_ports[id] = true;
    return true;
}

void release_port(std::uint16_t id) {
    const std::lock_guard<std::mutex> lock(open_ports_mutex);
    if (id < open_ports.size()) {
        open_ports[id] = false;
    }
}

} // namespace

std::string rx_offload_names(std::uint64_t offloads) {
    return to_lower(bit_names(offloads, rx_offload_name));
}

std::string tx_offload_names(std::uint64_t offloads) {
    return to_lower(bit_names(offloads, tx_offload_name));
}

std::string rss_hash_names(std::uint64_t hash_functions) {
    return bit_names(hash_functions, rss_name);
}

std::string mac_to_string(const rte_ether_addr& mac) {
    std::array<char, RTE_ETHER_ADDR_FMT_SIZE> buf{};
    rte_ether_format_addr(buf.data(), buf.size(), &mac);
    return buf.data();
}

result<port> open_port(const port_config& config) {
    const std::string& spec = config.device;
    if (spec.empty()) {
        return config_error("", EINVAL, "port_config.device is empty: give a PCI address or a vdev spec");
    }
    if (config.pool == nullptr) {
        return config_error(spec, EINVAL, "port_config.pool is null: rx queues need an mbuf pool");
    }
    if (config.rx_queues == 0 || config.tx_queues == 0) {
        return config_error(spec, EINVAL,
                            "port_config.rx_queues and tx_queues must be at least 1 (got " +
                                std::to_string(config.rx_queues) + " and " + std::to_string(config.tx_queues) + ")");
    }
    if (config.mtu > UINT16_MAX) {
        return config_error(spec, EINVAL, "port_config.mtu " + std::to_string(config.mtu) + " exceeds 65535");
    }

    port p;
    p._spec = spec;
    const std::string name = device_name_of(spec);
    if (!find_port(name, p._id)) {
        // Not present yet: attach it (a vdev spec, or a PCI device EAL did not probe).
        const int ret = rte_dev_probe(spec.c_str());
        if (ret < 0) {
            error e = dpdk_error(spec, "no port of that name exists and attaching it failed (rte_dev_probe)", ret);
            if (ret == -EFAULT) {
                // What rte_devargs_parse says when no bus claims the name.
                e.message += " (no bus or driver recognises '" + name + "': check the driver name, e.g. net_pcap0)";
            }
            return e;
        }
        if (!find_port(name, p._id)) {
            // Attached, but it made no ethdev port of that name: detach again and say so.
            (void)rte_eal_hotplug_remove(looks_like_pci(name) ? "pci" : "vdev", name.c_str());
            return config_error(spec, ENODEV, "the device attached but no ethdev port named '" + name + "' appeared");
        }
        p._attached = true;
    } else if (spec.find(',') != std::string::npos) {
        p._notes.push_back("device '" + name + "' already existed: the arguments in the spec were not applied");
    }
    if (!claim_port(p._id)) {
        return config_error(spec, EBUSY, "port " + std::to_string(p._id) + " is already open");
    }
    p._open = true; // from here on, p's destructor closes (and detaches) on every error return

    rte_eth_dev_info info{};
    int ret = rte_eth_dev_info_get(p._id, &info);
    if (ret != 0) {
        return dpdk_error(spec, "rte_eth_dev_info_get", ret);
    }
    {
        std::array<char, RTE_ETH_NAME_MAX_LEN> n{};
        if (rte_eth_dev_get_name_by_port(p._id, n.data()) == 0) {
            p._name = n.data();
        } else {
            p._name = name;
        }
    }
    p._device_name = info.device != nullptr && rte_dev_name(info.device) != nullptr ? rte_dev_name(info.device) : name;
    const rte_bus* bus = info.device != nullptr ? rte_dev_bus(info.device) : nullptr;
    p._bus = bus != nullptr ? rte_bus_name(bus) : "";

    device_offer& o = p._offer;
    o.driver = info.driver_name != nullptr ? info.driver_name : "";
    o.bus = p._bus;
    o.numa_node = rte_eth_dev_socket_id(p._id);
    o.max_rx_queues = info.max_rx_queues;
    o.max_tx_queues = info.max_tx_queues;
    o.rx_offloads = info.rx_offload_capa;
    o.tx_offloads = info.tx_offload_capa;
    o.rss_hash_functions = info.flow_type_rss_offloads;
    o.reta_size = info.reta_size;
    o.hash_key_size = info.hash_key_size;
    o.min_mtu = info.min_mtu;
    o.max_mtu = info.max_mtu;
    o.max_rx_frame = info.max_rx_pktlen;
    o.max_rx_desc = info.rx_desc_lim.nb_max;
    o.max_tx_desc = info.tx_desc_lim.nb_max;

    if (config.rx_queues > info.max_rx_queues) {
        return config_error(spec, EINVAL,
                            "port_config.rx_queues " + std::to_string(config.rx_queues) +
                                " exceeds the device's maximum of " + std::to_string(info.max_rx_queues) +
                                " (driver " + o.driver + ")");
    }
    if (config.tx_queues > info.max_tx_queues) {
        return config_error(spec, EINVAL,
                            "port_config.tx_queues " + std::to_string(config.tx_queues) +
                                " exceeds the device's maximum of " + std::to_string(info.max_tx_queues) +
                                " (driver " + o.driver + ")");
    }
    if (config.mtu < info.min_mtu || config.mtu > info.max_mtu) {
        return config_error(spec, EINVAL,
                            "port_config.mtu " + std::to_string(config.mtu) + " is outside the device's range " +
                                std::to_string(info.min_mtu) + ".." + std::to_string(info.max_mtu));
    }

    port_capabilities& caps = p._caps;
    const std::uint32_t data_room = rte_pktmbuf_data_room_size(config.pool);
    caps.mbuf_data_room = data_room > RTE_PKTMBUF_HEADROOM ? data_room - RTE_PKTMBUF_HEADROOM : 0;
    caps.max_frame = config.mtu + overhead_of(info);
    const bool frames_outgrow_mbuf = caps.max_frame > caps.mbuf_data_room;

    std::uint64_t rx_offloads = 0;
    std::uint64_t tx_offloads = 0;
    if (config.checksum_offload) {
        rx_offloads |= info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
        tx_offloads |= info.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
    }
    const std::string outgrow = "frames of up to " + std::to_string(caps.max_frame) + " bytes outgrow one mbuf (" +
                                std::to_string(caps.mbuf_data_room) + " bytes of data room)";
    if (config.multi_segment) {
        tx_offloads |= info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
        if (frames_outgrow_mbuf) {
            // A device without scatter drops or truncates what its buffers cannot hold, frame by
            // frame and out of sight of the data plane's counters: refuse the port instead.
            if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) == 0) {
                const std::uint32_t overhead = caps.max_frame - config.mtu;
                const std::uint32_t fitting_mtu = caps.mbuf_data_room > overhead ? caps.mbuf_data_room - overhead : 0;
                return config_error(spec, EINVAL,
                                    "port_config.mtu " + std::to_string(config.mtu) + " needs rx scatter: " + outgrow +
                                        " and the device (driver " + o.driver +
                                        ") does not offer RTE_ETH_RX_OFFLOAD_SCATTER; give the port a pool whose "
                                        "mbufs hold " + std::to_string(caps.max_frame) +
                                        " bytes of frame, or an mtu of at most " + std::to_string(fitting_mtu));
            }
            rx_offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
            p._notes.push_back(outgrow + ": rx scatter on, larger frames arrive as mbuf chains");
        }
    } else if (frames_outgrow_mbuf) {
        p._notes.push_back(outgrow + " and rx scatter is off (multi_segment = false): the device may drop "
                                     "or truncate larger frames");
    }

    const std::uint64_t rss_hf = config.rss ? (wanted_rss_hash_functions & info.flow_type_rss_offloads) : 0;
    caps.rss = rss_hf != 0;
    caps.rss_hash_functions = rss_hf;
    if (caps.rss) {
        rx_offloads |= info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_RSS_HASH;
    } else if (config.rss && config.rx_queues > 1) {
        p._notes.push_back("device offers no UDP RSS hash (offers: " + rss_hash_names(info.flow_type_rss_offloads) +
                           "): all received traffic arrives on rx queue 0 unless steered");
    }

    rte_eth_conf conf{};
    conf.rxmode.mq_mode = caps.rss ? RTE_ETH_MQ_RX_RSS : RTE_ETH_MQ_RX_NONE;
    conf.rxmode.mtu = config.mtu;
    conf.rxmode.offloads = rx_offloads;
    conf.rx_adv_conf.rss_conf.rss_key = nullptr; // the device's default key
    conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    conf.txmode.mq_mode = RTE_ETH_MQ_TX_NONE;
    conf.txmode.offloads = tx_offloads;

    ret = rte_eth_dev_configure(p._id, config.rx_queues, config.tx_queues, &conf);
    if (ret != 0) {
        return dpdk_error(spec,
                          "rte_eth_dev_configure (" + std::to_string(config.rx_queues) + " rx, " +
                              std::to_string(config.tx_queues) + " tx queues, mtu " + std::to_string(config.mtu) +
                              ", rx offloads " + rx_offload_names(rx_offloads) + ", tx offloads " +
                              tx_offload_names(tx_offloads) + ", rss " + rss_hash_names(rss_hf) + ")",
                          ret);
    }
    p._rx_queues = config.rx_queues;
    p._tx_queues = config.tx_queues;
    p._rx_offloads = rx_offloads;
    p._tx_offloads = tx_offloads;
    caps.rss_hash_in_mbuf = (rx_offloads & RTE_ETH_RX_OFFLOAD_RSS_HASH) != 0;
    caps.rx_ipv4_checksum = (rx_offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0;
    caps.rx_udp_checksum = (rx_offloads & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0;
    caps.tx_ipv4_checksum = (tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    caps.tx_udp_checksum = (tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0;
    caps.rx_scatter = (rx_offloads & RTE_ETH_RX_OFFLOAD_SCATTER) != 0;
    caps.tx_multi_segment = (tx_offloads & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;

    std::uint16_t rx_desc = config.rx_desc;
    std::uint16_t tx_desc = config.tx_desc;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(p._id, &rx_desc, &tx_desc);
    if (ret != 0) {
        return dpdk_error(spec, "rte_eth_dev_adjust_nb_rx_tx_desc", ret);
    }
    p._rx_desc = rx_desc;
    p._tx_desc = tx_desc;

    const unsigned socket = config.socket_id == socket_of_port ? static_cast<unsigned>(rte_eth_dev_socket_id(p._id))
                                                               : config.socket_id;
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = rx_offloads;
    for (std::uint16_t q = 0; q < config.rx_queues; ++q) {
        ret = rte_eth_rx_queue_setup(p._id, q, rx_desc, socket, &rxconf, config.pool);
        if (ret != 0) {
            return dpdk_error(spec,
                              "rte_eth_rx_queue_setup (queue " + std::to_string(q) + ", " + std::to_string(rx_desc) +
                                  " descriptors)",
                              ret);
        }
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = tx_offloads;
    for (std::uint16_t q = 0; q < config.tx_queues; ++q) {
        ret = rte_eth_tx_queue_setup(p._id, q, tx_desc, socket, &txconf);
        if (ret != 0) {
            return dpdk_error(spec,
                              "rte_eth_tx_queue_setup (queue " + std::to_string(q) + ", " + std::to_string(tx_desc) +
                                  " descriptors)",
                              ret);
        }
    }

    if (config.promiscuous) {
        ret = rte_eth_promiscuous_enable(p._id);
        if (ret != 0) {
            p._notes.push_back(std::string("promiscuous mode not enabled: ") + rte_strerror(-ret));
        }
    }

    if (auto started = p.start(); !started) {
        return started.failure();
    }

    std::uint16_t mtu = 0;
    caps.mtu = rte_eth_dev_get_mtu(p._id, &mtu) == 0 ? mtu : config.mtu;
    if (caps.mtu != config.mtu) {
        p._notes.push_back("mtu " + std::to_string(config.mtu) + " asked, device reports " + std::to_string(caps.mtu));
    }
    ret = rte_eth_macaddr_get(p._id, &p._mac);
    if (ret != 0) {
        return dpdk_error(spec, "rte_eth_macaddr_get", ret);
    }

    // Link: read without blocking; poll briefly only when asked to (a NIC's autoneg takes seconds).
    rte_eth_link link{};
    ret = rte_eth_link_get_nowait(p._id, &link);
    for (std::uint32_t waited = 0; ret == 0 && link.link_status != RTE_ETH_LINK_UP && waited < config.link_wait_ms;
         waited += 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ret = rte_eth_link_get_nowait(p._id, &link);
    }
    if (ret == 0) {
        p._link_at_start = to_link_status(link);
    } else {
        p._notes.push_back(std::string("link status not readable: ") + rte_strerror(-ret));
    }

    if (config.flush_rx_at_start) {
        // Bounded: a generator (net_null) never runs dry.
        std::array<rte_mbuf*, 32> burst{};
        for (std::uint16_t q = 0; q < p._rx_queues; ++q) {
            for (std::uint32_t freed = 0; freed < p._rx_desc + 64u;) {
                const std::uint16_t n = p.rx_burst(q, burst);
                if (n == 0) {
                    break;
                }
                rte_pktmbuf_free_bulk(burst.data(), n);
                freed += n;
            }
        }
    }
    return p;
}

port::port(port&& other) noexcept
    : _id(other._id),
      _open(std::exchange(other._open, false)),
      _started(std::exchange(other._started, false)),
      _attached(std::exchange(other._attached, false)),
      _name(std::move(other._name)),
      _device_name(std::move(other._device_name)),
      _bus(std::move(other._bus)),
      _spec(std::move(other._spec)),
      _rx_queues(other._rx_queues),
      _tx_queues(other._tx_queues),
      _rx_desc(other._rx_desc),
      _tx_desc(other._tx_desc),
      _rx_offloads(other._rx_offloads),
      _tx_offloads(other._tx_offloads),
      _caps(other._caps),
      _offer(std::move(other._offer)),
      _mac(other._mac),
      _link_at_start(other._link_at_start),
      _notes(std::move(other._notes)) {}

port& port::operator=(port&& other) noexcept {
    if (this != &other) {
        (void)close();
        _id = other._id;
        _open = std::exchange(other._open, false);
        _started = std::exchange(other._started, false);
        _attached = std::exchange(other._attached, false);
        _name = std::move(other._name);
        _device_name = std::move(other._device_name);
        _bus = std::move(other._bus);
        _spec = std::move(other._spec);
        _rx_queues = other._rx_queues;
        _tx_queues = other._tx_queues;
        _rx_desc = other._rx_desc;
        _tx_desc = other._tx_desc;
        _rx_offloads = other._rx_offloads;
        _tx_offloads = other._tx_offloads;
        _caps = other._caps;
        _offer = std::move(other._offer);
        _mac = other._mac;
        _link_at_start = other._link_at_start;
        _notes = std::move(other._notes);
    }
    return *this;
}

port::~port() {
    (void)close();
}

result<void> port::start() {
    if (!_open) {
        return config_error(_spec, EBADF, "the port is closed");
    }
    if (_started) {
        return {};
    }
    const int ret = rte_eth_dev_start(_id);
    if (ret != 0) {
        return dpdk_error(_spec, "rte_eth_dev_start", ret);
    }
    _started = true;
    return {};
}

result<void> port::stop() {
    if (!_open || !_started) {
        return {};
    }
    const int ret = rte_eth_dev_stop(_id);
    if (ret != 0) {
        return dpdk_error(_spec, "rte_eth_dev_stop", ret);
    }
    _started = false;
    return {};
}

result<void> port::close() {
    if (!_open) {
        return {};
    }
    result<void> outcome = stop();
    _started = false;
    const int ret = rte_eth_dev_close(_id);
    _open = false;
    release_port(_id);
    if (ret != 0 && outcome.ok()) {
        outcome = dpdk_error(_spec, "rte_eth_dev_close", ret);
    }
    if (_attached) {
        _attached = false;
        const int r = rte_eal_hotplug_remove(_bus.c_str(), _device_name.c_str());
        if (r != 0 && outcome.ok()) {
            outcome = dpdk_error(_spec, "detaching the device (rte_eal_hotplug_remove)", r);
        }
    }
    return outcome;
}

result<link_status> port::link() const {
    if (!_open) {
        return config_error(_spec, EBADF, "the port is closed");
    }
    rte_eth_link l{};
    const int ret = rte_eth_link_get_nowait(_id, &l);
    if (ret != 0) {
        return dpdk_error(_spec, "rte_eth_link_get_nowait", ret);
    }
    return to_link_status(l);
}

result<port_stats> port::stats() const {
    if (!_open) {
        return config_error(_spec, EBADF, "the port is closed");
    }
    port_stats s;
    int ret = rte_eth_stats_get(_id, &s.basic);
    if (ret != 0) {
        return dpdk_error(_spec, "rte_eth_stats_get", ret);
    }
    ret = rte_eth_xstats_get_names(_id, nullptr, 0);
    if (ret < 0) {
        return dpdk_error(_spec, "rte_eth_xstats_get_names", ret);
    }
    std::vector<rte_eth_xstat_name> names(static_cast<std::size_t>(ret));
    std::vector<rte_eth_xstat> values(names.size());
    if (!names.empty()) {
        const int n_names = rte_eth_xstats_get_names(_id, names.data(), static_cast<unsigned>(names.size()));
        const int n_values = rte_eth_xstats_get(_id, values.data(), static_cast<unsigned>(values.size()));
        if (n_names < 0 || n_values < 0) {
            return dpdk_error(_spec, "rte_eth_xstats_get", n_names < 0 ? n_names : n_values);
        }
        const auto n = std::min({static_cast<std::size_t>(n_names), static_cast<std::size_t>(n_values), names.size()});
        s.xstats.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint64_t id = values[i].id;
            s.xstats.push_back({id < names.size() ? names[id].name : "?", values[i].value});
        }
    }
    return s;
}

result<void> port::reset_stats() {
    if (!_open) {
        return config_error(_spec, EBADF, "the port is closed");
    }
    int ret = rte_eth_stats_reset(_id);
    if (ret != 0) {
        return dpdk_error(_spec, "rte_eth_stats_reset", ret);
    }
    ret = rte_eth_xstats_reset(_id);
    if (ret != 0 && ret != -ENOTSUP) {
        return dpdk_error(_spec, "rte_eth_xstats_reset", ret);
    }
    return {};
}

std::string port::report() const {
    const device_offer& o = _offer;
    std::ostringstream r;
    r << "port " << _id << " '" << _name << "'";
    if (_spec != _name) {
        r << " (spec '" << _spec << "')";
    }
    r << ": driver " << o.driver << ", bus " << (o.bus.empty() ? "?" : o.bus) << ", numa node "
      << (o.numa_node < 0 ? std::string("any") : std::to_string(o.numa_node))
      << (_attached ? ", attached at start-up" : "") << '\n';
    r << "  mac " << mac_to_string(_mac) << ", link " << link_text(_link_at_start) << '\n';
    r << "  queues: rx " << _rx_queues << " of max " << o.max_rx_queues << ", tx " << _tx_queues << " of max "
      << o.max_tx_queues << "; descriptors rx " << _rx_desc << ", tx " << _tx_desc << '\n';
    r << "  mtu " << _caps.mtu << " (device range " << o.min_mtu << ".." << o.max_mtu << "), frames up to "
      << _caps.max_frame << " bytes, mbuf data room " << _caps.mbuf_data_room << " bytes, rx scatter "
      << on_off(_caps.rx_scatter) << ", tx multi-segment " << on_off(_caps.tx_multi_segment) << '\n';
    r << "  rss " << on_off(_caps.rss) << ": enabled " << rss_hash_names(_caps.rss_hash_functions) << "; offered "
      << rss_hash_names(o.rss_hash_functions) << "; reta " << o.reta_size << " entries, key "
      << static_cast<unsigned>(o.hash_key_size) << " bytes, hash in mbuf " << on_off(_caps.rss_hash_in_mbuf) << '\n';
    r << "  checksums in hardware: rx ipv4 " << on_off(_caps.rx_ipv4_checksum) << ", rx udp "
      << on_off(_caps.rx_udp_checksum) << ", tx ipv4 " << on_off(_caps.tx_ipv4_checksum) << ", tx udp "
      << on_off(_caps.tx_udp_checksum) << " (software does the rest)\n";
    r << "  rx offloads offered: " << rx_offload_names(o.rx_offloads) << '\n';
    r << "  rx offloads enabled: " << rx_offload_names(_rx_offloads) << '\n';
    r << "  tx offloads offered: " << tx_offload_names(o.tx_offloads) << '\n';
    r << "  tx offloads enabled: " << tx_offload_names(_tx_offloads) << '\n';
    for (const std::string& n : _notes) {
        r << "  note: " << n << '\n';
    }
    return r.str();
}

std::string format_stats(const port_stats& s) {
    std::ostringstream r;
    const rte_eth_stats& b = s.basic;
    r << "rx " << b.ipackets << " packets " << b.ibytes << " bytes, missed " << b.imissed << ", errors " << b.ierrors
      << ", no mbuf " << b.rx_nombuf << "; tx " << b.opackets << " packets " << b.obytes << " bytes, errors "
      << b.oerrors << '\n';
    for (const port_stats::extended& x : s.xstats) {
        if (x.value != 0) {
            r << "  " << x.name << ' ' << x.value << '\n';
        }
    }
    return r.str();
}

} // namespace kwik::drivers
