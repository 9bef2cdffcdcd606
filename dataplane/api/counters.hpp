// The counters region inside the shared-memory region: one block per worker lcore, each written
// by that worker alone, and one main block written by kwikd's main lcore alone (NIC counters,
// XDP verdicts, path steering), all read by other processes without locks (a seqlock per block
// and per table entry: the writer makes the sequence odd before it stores and even after,
// readers retry while it is odd or changed). Everything is found by offsets from the region
// base, as in VPP's stats segment. counters_writer: one per worker lcore, called by that lcore
// only. main_counters_writer: kwikd's main lcore only. counters_reader: any thread of any
// process that mapped the region (read-only is enough).
// Writers and readers point into the mapping: valid while their shm_region is open.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/api/shm_region.hpp"
#include "dataplane/kdp/drop_reason.hpp"

namespace kwik::api {

inline constexpr char counters_magic[8] = {'K', 'W', 'I', 'K', 'C', 'N', 'T', '1'};
// 2: worker_counters of 128 bytes. 3: the main block (kwikd_counters, nic_port_counters).
inline constexpr std::uint32_t counters_layout_version = 3;

// ---- the counter sets: 64-bit words only, so that they are copied word by word ------------

// What one worker lcore did (its loop, hand-offs, the command and event traffic it caused).
struct worker_counters {
    std::uint64_t polls;            // loop iterations
    std::uint64_t busy_polls;       // iterations that received at least one packet
    std::uint64_t handoff_sent;     // packets passed to the owning worker's ring
    std::uint64_t handoff_received; // packets taken from this worker's hand-off ring
    std::uint64_t handoff_dropped;  // hand-off ring full
    std::uint64_t events_dropped;   // event ring full (rate-limited events not sent)
    std::uint64_t commands_applied;
    std::uint64_t events_suppressed; // unknown_path events over the worker's budget
    std::uint64_t idle_sleeps;       // adaptive polling: sleeps of an idle worker
    std::uint64_t idle_sleep_ns;     // adaptive polling: time spent in them
    std::uint64_t reserved[6];
};

// One port as seen by one worker (its queue pair).
struct port_counters {
    std::uint64_t rx_packets;
    std::uint64_t rx_bytes;
    std::uint64_t tx_packets;
    std::uint64_t tx_bytes;
    std::uint64_t rx_dropped;   // received and dropped (sum over drop reasons of this port)
    std::uint64_t tx_dropped;   // tx burst did not take them
    std::uint64_t exception_rx; // punted to the kernel exception interface
    std::uint64_t exception_tx; // sent out of the port for the kernel
};

// One connection, in the block of the worker that owns it. Fields marked gauge are current
// values; the rest count up from zero.
struct connection_counters {
    std::uint64_t connection_id; // 0: slot unused
    std::uint64_t rx_packets;
    std::uint64_t rx_bytes;
    std::uint64_t tx_packets;
    std::uint64_t tx_bytes;
    std::uint64_t delivered_bytes; // stream bytes handed to the endpoint
    std::uint64_t streams_opened;
    std::uint64_t streams_closed;
    std::uint64_t retransmitted_packets;
    std::uint64_t retransmitted_bytes;
    std::uint64_t flow_control_blocked; // times the connection window stopped sending
    std::uint64_t active_paths;         // gauge
    std::uint64_t open_streams;         // gauge
    std::uint64_t updated_ns;           // gauge: the worker's clock at this store
    std::uint64_t reserved;
};

// One path, in the block of the worker that owns its connection.
struct path_counters {
    std::uint64_t connection_id; // 0: slot unused
    std::uint64_t path_id;
    std::uint64_t status; // gauge: 0 up, 1 suspect, 2 failed, 3 removed
    std::uint64_t rx_packets;
    std::uint64_t rx_bytes;
    std::uint64_t tx_packets;
    std::uint64_t tx_bytes;
    std::uint64_t lost_packets; // declared lost by loss recovery
    std::uint64_t retransmitted_packets;
    std::uint64_t handoff_packets; // arrived on another worker's queue and were handed over
    std::uint64_t smoothed_rtt_ns; // gauge
    std::uint64_t min_rtt_ns;      // gauge
    std::uint64_t rtt_var_ns;      // gauge
    std::uint64_t cwnd_bytes;      // gauge
    std::uint64_t updated_ns;      // gauge: the worker's clock at this store
};

// kwikd-wide, from the main lcore's command handler. Gauges: flow_rules to paths.
struct kwikd_counters {
    std::uint64_t flow_rules;       // gauge: paths steered to their owner's rx queue by rte_flow
    std::uint64_t handoff_paths;    // gauge: paths steered by the hand-off ring or a single worker
    std::uint64_t connections;      // gauge
    std::uint64_t paths;            // gauge
    std::uint64_t commands;         // commands taken from the command ring
    std::uint64_t commands_refused; // answered with an error
    std::uint64_t events_forwarded;
    std::uint64_t events_lost; // unsolicited events beyond the handler's outbox
};

// One port as its NIC (rte_eth_stats) and, for net_af_xdp ports, its XDP program count it:
// what reached the host, what the NIC dropped before any worker saw it, and where the XDP
// program sent each frame (every verdict but xdp_redirected goes to the kernel).
struct nic_port_counters {
    std::uint64_t sources;     // nic_source_* bits: which groups below hold values
    std::uint64_t read_errors; // reads of this port's NIC or XDP counters that failed
    std::uint64_t rx_packets;  // rte_eth_stats ipackets
    std::uint64_t rx_bytes;
    std::uint64_t tx_packets;
    std::uint64_t tx_bytes;
    std::uint64_t imissed;    // rx ring full: the workers did not keep up
    std::uint64_t ierrors;    // bad frames (CRC, length)
    std::uint64_t oerrors;    // failed transmits
    std::uint64_t rx_nombuf;  // rx mbuf allocation failures: the packet pool ran dry
    std::uint64_t xdp_redirected; // into the queue's AF_XDP socket
    std::uint64_t xdp_no_socket;  // Kwik, but its rx queue has no socket
    std::uint64_t xdp_not_ip;
    std::uint64_t xdp_not_udp;
    std::uint64_t xdp_not_kwik_port;
    std::uint64_t xdp_not_kwik_address;
    std::uint64_t xdp_fragment;
    std::uint64_t xdp_truncated;
    std::uint64_t reserved[6];
};
inline constexpr std::uint64_t nic_source_ethdev = 1; // rx_packets .. rx_nombuf
inline constexpr std::uint64_t nic_source_xdp = 2;    // xdp_*

static_assert(sizeof(worker_counters) == 128 && sizeof(port_counters) == 64);
static_assert(sizeof(kwikd_counters) == 64 && sizeof(nic_port_counters) == 3 * 64);
static_assert(sizeof(connection_counters) == 15 * 8 && sizeof(path_counters) == 15 * 8);

// Adds the counting fields of `from` into `into`; gauges are taken from the more recently
// updated of the two (connections and paths) or left alone (connection_id, path_id).
void accumulate(worker_counters& into, const worker_counters& from) noexcept;
void accumulate(port_counters& into, const port_counters& from) noexcept;
void accumulate(connection_counters& into, const connection_counters& from) noexcept;
void accumulate(path_counters& into, const path_counters& from) noexcept;

// ---- layout in shared memory --------------------------------------------------------------

// At region_header.counters_offset. Which core writes which cache line:
//   lines 0-1: kwikd's main thread at creation; read-only afterwards.
//   line 2:    kwikd's main lcore (epoch: rounds in which every worker published).
// Then the main block (at main_offset: main_block_header, kwikd_counters, one nic_port_counters
// per port), every line of it written by kwikd's main lcore alone, then the worker blocks.
struct alignas(64) counters_header {
    // line 0
    char magic[8];                // counters_magic
    std::uint32_t layout_version; // counters_layout_version
    std::uint32_t workers;
    std::uint32_t ports;
    std::uint32_t drop_reasons; // entries in each block's drop array (kdp::drop_reason_count
                                // of the kwikd that created the region)
    std::uint32_t max_connections;
    std::uint32_t max_paths;
    std::uint64_t blocks_offset; // region offset of worker 0's block
    std::uint64_t block_stride;  // bytes from one worker's block to the next
    std::uint64_t main_offset;   // region offset of the main block (main_block_header)
    std::uint32_t nic_port_entry_size; // sizeof(nic_port_counters)
    std::uint32_t reserved0;
    // line 1: offsets within a block
    std::uint64_t worker_offset;
    std::uint64_t ports_offset;
    std::uint64_t drops_offset;
    std::uint64_t connections_offset;
    std::uint64_t paths_offset;
    std::uint32_t connection_entry_size;
    std::uint32_t path_entry_size;
    std::uint64_t reserved1[2];
    // line 2: kwikd's main lcore
    std::uint64_t epoch;
    std::uint64_t epoch_ns;
    std::uint64_t reserved2[6];
};
static_assert(sizeof(counters_header) == 3 * 64);
static_assert(offsetof(counters_header, blocks_offset) == 32);
static_assert(offsetof(counters_header, main_offset) == 48);
static_assert(offsetof(counters_header, worker_offset) == 64);
static_assert(offsetof(counters_header, epoch) == 128);

// The first line of each worker's block; that worker writes it (and everything else in its
// block). `sequence` guards the worker counters, the port counters and the drop array.
struct alignas(64) worker_block_header {
    std::uint64_t sequence;   // odd while the worker publishes
    std::uint64_t publish_ns; // the worker's clock at its last publish
    std::uint64_t publish_count;
    std::uint32_t worker; // its index
    std::uint32_t lcore;  // its DPDK lcore id (set by counters_writer::attach's caller)
    std::uint64_t reserved[4];
};
static_assert(sizeof(worker_block_header) == 64);

// The first line of the main block, written by kwikd's main lcore (and so is the rest of the
// block: kwikd_counters right after this line, then ports x nic_port_counters). `sequence`
// guards all of it; published once the workers run, every stats_interval_ms, and once more
// after the last transmit at shutdown.
struct alignas(64) main_block_header {
    std::uint64_t sequence; // odd while the main lcore publishes
    std::uint64_t publish_ns;
    std::uint64_t publish_count; // 0: never published (a kwikd still starting)
    std::uint64_t reserved[5];
};
static_assert(sizeof(main_block_header) == 64);

// A table slot: its own seqlock, then the counters. 128 bytes, two lines, both written only by
// the worker whose block holds the table (the owner of the connection).
struct alignas(64) connection_entry {
    std::uint64_t sequence;
    connection_counters counters;
};
struct alignas(64) path_entry {
    std::uint64_t sequence;
    path_counters counters;
};
static_assert(sizeof(connection_entry) == 128 && sizeof(path_entry) == 128);

// Where everything of one block lies, and the region's size for it.
struct counters_layout {
    std::uint64_t header_bytes = 0; // counters_header, padded
    std::uint64_t main_bytes = 0;   // the main block (right after the header), padded
    std::uint64_t block_stride = 0;
    std::uint64_t worker_offset = 0;
    std::uint64_t ports_offset = 0;
    std::uint64_t drops_offset = 0;
    std::uint64_t connections_offset = 0;
    std::uint64_t paths_offset = 0;
    std::uint64_t bytes = 0; // header + main block + every worker block
};
// Empty if the capacities are usable, else a message naming the field.
std::string check_counters_config(const counters_config& config);
counters_layout compute_counters_layout(const counters_config& config) noexcept;
// kwikd, at creation: writes the header at `offset` (the blocks are already zero).
void initialise_counters(std::byte* region_base, std::uint64_t offset, const counters_config& config) noexcept;
// An opener: empty if the header at `offset` is well-formed and lies within `region_size`.
std::string check_counters_region(const std::byte* region_base, std::uint64_t offset, std::uint64_t bytes,
                                  std::uint64_t region_size);
// kwikd's main lcore, once every worker has published after a request_counters: epoch + 1.
// Returns the new epoch.
std::uint64_t advance_epoch(shm_region& region, std::uint64_t now_ns) noexcept;

// ---- writer: one per worker lcore ---------------------------------------------------------

// Publishes one worker's counters. The worker keeps its own copies (plain increments on its
// own cache lines, per burst) and copies them here every publish interval: the hot path never
// touches shared memory. Cost of a publish: two sequence stores plus one relaxed store per word.
class counters_writer {
public:
    counters_writer() = default;
    [[nodiscard]] static result<counters_writer> attach(shm_region& region, std::uint32_t worker,
                                                        std::uint32_t lcore = 0);

    std::uint32_t ports() const noexcept { return _ports; }
    std::uint32_t drop_reasons() const noexcept { return _drop_reasons; }
    std::uint32_t max_connections() const noexcept { return _max_connections; }
    std::uint32_t max_paths() const noexcept { return _max_paths; }

    // The fixed part: stores between begin_publish() and end_publish() become visible together.
    void begin_publish() noexcept;
    void store_worker(const worker_counters& c) noexcept;
    void store_port(std::uint32_t port, const port_counters& c) noexcept; // port < ports()
    void store_drops(std::span<const std::uint64_t> by_reason) noexcept;  // first drop_reasons() used
    void end_publish(std::uint64_t now_ns) noexcept;

    // Table slots, each consistent on its own; any time, inside or outside a publish. The slot
    // numbers are the worker's own (its connection table's index, say); slot < max_*().
    void store_connection(std::uint32_t slot, const connection_counters& c) noexcept;
    void clear_connection(std::uint32_t slot) noexcept;
    void store_path(std::uint32_t slot, const path_counters& c) noexcept;
    void clear_path(std::uint32_t slot) noexcept;

private:
    std::byte* _block = nullptr;
    const counters_header* _header = nullptr;
    std::uint64_t _sequence = 0;
    std::uint32_t _ports = 0;
    std::uint32_t _drop_reasons = 0;
    std::uint32_t _max_connections = 0;
    std::uint32_t _max_paths = 0;
};

// ---- main block writer: kwikd's main lcore ----------------------------------------------

// Publishes kwikd's own counters and what each port's NIC and XDP program counted. The main
// lcore reads those (rte_eth_stats_get, a BPF map lookup) every stats interval and stores
// them here, all under the main block's one seqlock.
class main_counters_writer {
public:
    main_counters_writer() = default;
    [[nodiscard]] static result<main_counters_writer> attach(shm_region& region);

    std::uint32_t ports() const noexcept { return _ports; }
    void publish(const kwikd_counters& kwikd, std::span<const nic_port_counters> ports, // first ports() used
                 std::uint64_t now_ns) noexcept;

private:
    std::byte* _block = nullptr;
    std::uint32_t _ports = 0;
};

// ---- reader: any process ------------------------------------------------------------------

struct worker_snapshot {
    std::uint32_t worker = 0;
    std::uint32_t lcore = 0;
    std::uint64_t publish_ns = 0;
    std::uint64_t publish_count = 0;
    worker_counters worker_totals{};
    std::vector<port_counters> ports;
    std::vector<std::uint64_t> drops; // indexed by kdp::drop_reason where drop_reasons() matches
};

// How hard reading was: retries after a writer overlapped, and reads given up (a writer that
// stayed mid-publish for the whole retry budget: stuck, or descheduled in the middle).
struct read_stats {
    std::uint64_t retries = 0;
    std::uint64_t gave_up = 0;
};

// The main block: consistent with itself.
struct main_snapshot {
    std::uint64_t publish_ns = 0;
    std::uint64_t publish_count = 0;
    kwikd_counters kwikd{};
    std::vector<nic_port_counters> nic; // one per port
};

struct counters_totals {
    worker_counters worker{};
    std::vector<port_counters> ports;
    std::vector<std::uint64_t> drops;
    std::vector<connection_counters> connections; // merged by connection id, sorted by it
    std::vector<path_counters> paths;             // merged by (connection id, path id), sorted
    main_snapshot main;                           // valid if main_read
    bool main_read = false;
    std::uint32_t workers_read = 0;
    read_stats stats;
};

class counters_reader {
public:
    static constexpr std::uint32_t default_retries = 100000;

    counters_reader() = default;
    [[nodiscard]] static result<counters_reader> attach(const shm_region& region);

    std::uint32_t workers() const noexcept { return _header->workers; }
    std::uint32_t ports() const noexcept { return _header->ports; }
    std::uint32_t drop_reasons() const noexcept { return _header->drop_reasons; }
    std::uint32_t max_connections() const noexcept { return _header->max_connections; }
    std::uint32_t max_paths() const noexcept { return _header->max_paths; }
    std::uint64_t epoch() const noexcept;
    // kdp::to_string of drop reason i if this program's enum matches the region's, else "reason_<i>".
    std::string drop_reason_name(std::uint32_t i) const;

    // One worker's fixed part, consistent with itself. False if it could not be read within
    // max_retries attempts (out is then unspecified).
    [[nodiscard]] bool read_worker(std::uint32_t worker, worker_snapshot& out, read_stats* stats = nullptr,
                                   std::uint32_t max_retries = default_retries) const;
    // The main block, consistent with itself. False as read_worker.
    [[nodiscard]] bool read_main(main_snapshot& out, read_stats* stats = nullptr,
                                 std::uint32_t max_retries = default_retries) const;
    // One table slot; out.connection_id == 0 for an unused slot.
    [[nodiscard]] bool read_connection(std::uint32_t worker, std::uint32_t slot, connection_counters& out,
                                       read_stats* stats = nullptr, std::uint32_t max_retries = default_retries) const;
    [[nodiscard]] bool read_path(std::uint32_t worker, std::uint32_t slot, path_counters& out,
                                 read_stats* stats = nullptr, std::uint32_t max_retries = default_retries) const;

    // Sums across workers: the worker and port counters and the drop array; connections and
    // paths merged by id (normally one owner; two after an owner change, then counts add up).
    // Plus the main block as it is.
    counters_totals read_totals() const;
    std::optional<connection_counters> find_connection(std::uint64_t connection_id) const;
    std::optional<path_counters> find_path(std::uint64_t connection_id, std::uint64_t path_id) const;

private:
    const std::byte* block(std::uint32_t worker) const noexcept {
        return _base + _header->blocks_offset + std::uint64_t{worker} * _header->block_stride;
    }

    const std::byte* _base = nullptr;
    const counters_header* _header = nullptr;
};

} // namespace kwik::api
