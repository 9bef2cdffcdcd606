// The counters region (counters.hpp): layout, the per-worker seqlocked writer and the reader
// that sums across workers.
#include "dataplane/api/counters.hpp"

#include <sched.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace kwik::api {

namespace {

using u64 = std::uint64_t;

constexpr u64 align_up(u64 v, u64 a) noexcept {
    return (v + a - 1) / a * a;
}

// Shared words are only ever accessed through atomic_ref: plain movs on x86-64 for relaxed
// loads and stores, but no data race in the C++ sense between the writer and the readers.
inline u64 load_word(const u64* p, std::memory_order order = std::memory_order_relaxed) noexcept {
    return std::atomic_ref<u64>(*const_cast<u64*>(p)).load(order);
}
inline void store_word(u64* p, u64 v, std::memory_order order = std::memory_order_relaxed) noexcept {
    std::atomic_ref<u64>(*p).store(v, order);
}

template <class T> void store_words(void* dst, const T& src) noexcept {
    static_assert(sizeof(T) % 8 == 0 && std::is_trivially_copyable_v<T>);
    u64 words[sizeof(T) / 8];
    std::memcpy(words, &src, sizeof(T));
    auto* d = static_cast<u64*>(dst);
    for (std::size_t i = 0; i < sizeof(T) / 8; ++i) {
        store_word(d + i, words[i]);
    }
}

template <class T> void load_words(T& out, const void* src) noexcept {
    static_assert(sizeof(T) % 8 == 0 && std::is_trivially_copyable_v<T>);
    u64 words[sizeof(T) / 8];
    const auto* s = static_cast<const u64*>(src);
    for (std::size_t i = 0; i < sizeof(T) / 8; ++i) {
        words[i] = load_word(s + i);
    }
    std::memcpy(&out, words, sizeof(T));
}

// Writer side of a seqlock: odd, fence, the stores, even (release).
template <class Stores> void write_locked(u64* sequence, Stores&& stores) noexcept {
    const u64 s = load_word(sequence) | 1u; // odd now; a writer that died mid-publish left it odd
    store_word(sequence, s);
    std::atomic_thread_fence(std::memory_order_release);
    stores();
    store_word(sequence, s + 1, std::memory_order_release);
}

// Reader side: retry while the sequence is odd or moved during the copy.
template <class Copy>
bool read_locked(const u64* sequence, Copy&& copy, read_stats* stats, std::uint32_t max_retries) noexcept {
    for (std::uint32_t attempt = 0; attempt <= max_retries; ++attempt) {
        if (attempt != 0) {
            if (stats != nullptr) {
                ++stats->retries;
            }
            // On a machine with fewer cores than busy threads the writer may be descheduled
            // mid-publish: spin briefly, then give it the core.
            if (attempt < 64) {
                __builtin_ia32_pause();
            } else {
                ::sched_yield();
            }
        }
        const u64 s1 = load_word(sequence, std::memory_order_acquire);
        if ((s1 & 1u) != 0) {
            continue;
        }
        copy();
        std::atomic_thread_fence(std::memory_order_acquire);
        if (load_word(sequence) == s1) {
            return true;
        }
    }
    if (stats != nullptr) {
        ++stats->gave_up;
    }
    return false;
}

} // namespace

// ---- accumulate ----

void accumulate(worker_counters& into, const worker_counters& from) noexcept {
    into.polls += from.polls;
    into.busy_polls += from.busy_polls;
    into.handoff_sent += from.handoff_sent;
    into.handoff_received += from.handoff_received;
    into.handoff_dropped += from.handoff_dropped;
    into.events_dropped += from.events_dropped;
    into.commands_applied += from.commands_applied;
    into.idle_sleeps += from.idle_sleeps;
    into.idle_sleep_ns += from.idle_sleep_ns;
}

void accumulate(port_counters& into, const port_counters& from) noexcept {
    into.rx_packets += from.rx_packets;
    into.rx_bytes += from.rx_bytes;
    into.tx_packets += from.tx_packets;
    into.tx_bytes += from.tx_bytes;
    into.rx_dropped += from.rx_dropped;
    into.tx_dropped += from.tx_dropped;
    into.exception_rx += from.exception_rx;
    into.exception_tx += from.exception_tx;
}

void accumulate(connection_counters& into, const connection_counters& from) noexcept {
    into.rx_packets += from.rx_packets;
    into.rx_bytes += from.rx_bytes;
    into.tx_packets += from.tx_packets;
    into.tx_bytes += from.tx_bytes;
    into.delivered_bytes += from.delivered_bytes;
    into.streams_opened += from.streams_opened;
    into.streams_closed += from.streams_closed;
    into.retransmitted_packets += from.retransmitted_packets;
    into.retransmitted_bytes += from.retransmitted_bytes;
    into.flow_control_blocked += from.flow_control_blocked;
    if (from.updated_ns >= into.updated_ns) {
        into.active_paths = from.active_paths;
        into.open_streams = from.open_streams;
        into.updated_ns = from.updated_ns;
    }
}

void accumulate(path_counters& into, const path_counters& from) noexcept {
    into.rx_packets += from.rx_packets;
    into.rx_bytes += from.rx_bytes;
    into.tx_packets += from.tx_packets;
    into.tx_bytes += from.tx_bytes;
    into.lost_packets += from.lost_packets;
    into.retransmitted_packets += from.retransmitted_packets;
    into.handoff_packets += from.handoff_packets;
    if (from.updated_ns >= into.updated_ns) {
        into.status = from.status;
        into.smoothed_rtt_ns = from.smoothed_rtt_ns;
        into.min_rtt_ns = from.min_rtt_ns;
        into.rtt_var_ns = from.rtt_var_ns;
        into.cwnd_bytes = from.cwnd_bytes;
        into.updated_ns = from.updated_ns;
    }
}

// ---- layout ----

namespace {
constexpr std::uint32_t max_workers = 256;
constexpr std::uint32_t max_ports = 64;
constexpr std::uint32_t max_table_slots = 1u << 20;
constexpr u64 max_counters_bytes = u64{4} << 30;
} // namespace

std::string check_counters_config(const counters_config& c) {
    if (c.workers == 0 || c.workers > max_workers) {
        return "counters.workers: " + std::to_string(c.workers) + " is not 1.." + std::to_string(max_workers);
    }
    if (c.ports == 0 || c.ports > max_ports) {
        return "counters.ports: " + std::to_string(c.ports) + " is not 1.." + std::to_string(max_ports);
    }
    if (c.max_connections == 0 || c.max_connections > max_table_slots) {
        return "counters.max_connections: " + std::to_string(c.max_connections) + " is not 1.." +
               std::to_string(max_table_slots);
    }
    if (c.max_paths == 0 || c.max_paths > max_table_slots) {
        return "counters.max_paths: " + std::to_string(c.max_paths) + " is not 1.." + std::to_string(max_table_slots);
    }
    const u64 bytes = compute_counters_layout(c).bytes;
    if (bytes > max_counters_bytes) {
        return "counters: " + std::to_string(c.workers) + " workers x (" + std::to_string(c.max_connections) +
               " connections + " + std::to_string(c.max_paths) + " paths) x 128 bytes = " + std::to_string(bytes) +
               " bytes, above the 4 GiB limit";
    }
    return {};
}

counters_layout compute_counters_layout(const counters_config& c) noexcept {
    counters_layout l;
    // 128-byte units throughout: the adjacent-line prefetcher pulls lines in pairs, so no two
    // writers ever share a pair.
    l.header_bytes = align_up(sizeof(counters_header), 128);
    l.main_bytes = align_up(sizeof(main_block_header) + sizeof(kwikd_counters) +
                                u64{c.ports} * sizeof(nic_port_counters),
                            128);
    l.worker_offset = sizeof(worker_block_header);
    l.ports_offset = align_up(l.worker_offset + sizeof(worker_counters), 64);
    l.drops_offset = l.ports_offset + u64{c.ports} * sizeof(port_counters);
    l.connections_offset = align_up(l.drops_offset + kdp::drop_reason_count * sizeof(u64), 128);
    l.paths_offset = l.connections_offset + u64{c.max_connections} * sizeof(connection_entry);
    l.block_stride = align_up(l.paths_offset + u64{c.max_paths} * sizeof(path_entry), 128);
    l.bytes = l.header_bytes + l.main_bytes + u64{c.workers} * l.block_stride;
    return l;
}

void initialise_counters(std::byte* region_base, std::uint64_t offset, const counters_config& c) noexcept {
    const counters_layout l = compute_counters_layout(c);
    auto* h = reinterpret_cast<counters_header*>(region_base + offset);
    std::memset(static_cast<void*>(h), 0, sizeof(*h));
    std::memcpy(h->magic, counters_magic, sizeof(h->magic));
    h->layout_version = counters_layout_version;
    h->workers = c.workers;
    h->ports = c.ports;
    h->drop_reasons = static_cast<std::uint32_t>(kdp::drop_reason_count);
    h->max_connections = c.max_connections;
    h->max_paths = c.max_paths;
    h->main_offset = offset + l.header_bytes;
    h->nic_port_entry_size = sizeof(nic_port_counters);
    h->blocks_offset = h->main_offset + l.main_bytes;
    h->block_stride = l.block_stride;
    h->worker_offset = l.worker_offset;
    h->ports_offset = l.ports_offset;
    h->drops_offset = l.drops_offset;
    h->connections_offset = l.connections_offset;
    h->paths_offset = l.paths_offset;
    h->connection_entry_size = sizeof(connection_entry);
    h->path_entry_size = sizeof(path_entry);
    for (std::uint32_t w = 0; w < c.workers; ++w) {
        auto* b = reinterpret_cast<worker_block_header*>(region_base + h->blocks_offset + u64{w} * l.block_stride);
        b->worker = w;
    }
}

std::string check_counters_region(const std::byte* region_base, std::uint64_t offset, std::uint64_t bytes,
                                  std::uint64_t region_size) {
    if (offset % 64 != 0 || bytes < sizeof(counters_header) || offset > region_size || bytes > region_size - offset) {
        return "counters region at offset " + std::to_string(offset) + " (" + std::to_string(bytes) +
               " bytes) does not lie within the region's " + std::to_string(region_size) + " bytes";
    }
    const auto* h = reinterpret_cast<const counters_header*>(region_base + offset);
    if (std::memcmp(h->magic, counters_magic, sizeof(counters_magic)) != 0) {
        return "counters region: bad magic (expected KWIKCNT1)";
    }
    if (h->layout_version != counters_layout_version) {
        return "counters region: layout version " + std::to_string(h->layout_version) + ", this program reads " +
               std::to_string(counters_layout_version) + " (kwikd and this program come from different builds)";
    }
    counters_config c;
    c.workers = h->workers;
    c.ports = h->ports;
    c.max_connections = h->max_connections;
    c.max_paths = h->max_paths;
    if (const std::string bad = check_counters_config(c); !bad.empty()) {
        return "counters region: " + bad;
    }
    if (h->drop_reasons == 0 || h->drop_reasons > 256) {
        return "counters region: drop_reasons " + std::to_string(h->drop_reasons) + " is not 1..256";
    }
    // Recompute with the region's drop count (which may differ from this program's enum).
    const u64 drops_end = h->drops_offset + u64{h->drop_reasons} * sizeof(u64);
    const u64 ports_end = h->ports_offset + u64{h->ports} * sizeof(port_counters);
    const u64 conn_end = h->connections_offset + u64{h->max_connections} * sizeof(connection_entry);
    const u64 paths_end = h->paths_offset + u64{h->max_paths} * sizeof(path_entry);
    const bool ordered = h->worker_offset >= sizeof(worker_block_header) &&
                         h->worker_offset + sizeof(worker_counters) <= h->ports_offset &&
                         ports_end <= h->drops_offset && drops_end <= h->connections_offset &&
                         conn_end <= h->paths_offset && paths_end <= h->block_stride && h->ports_offset % 8 == 0 &&
                         h->drops_offset % 8 == 0 && h->connections_offset % 64 == 0 && h->paths_offset % 64 == 0 &&
                         h->block_stride % 64 == 0 && h->connection_entry_size == sizeof(connection_entry) &&
                         h->path_entry_size == sizeof(path_entry);
    if (!ordered) {
        return "counters region: block layout inconsistent (offsets overlap or are misaligned)";
    }
    const u64 main_end = h->main_offset + sizeof(main_block_header) + sizeof(kwikd_counters) +
                         u64{h->ports} * sizeof(nic_port_counters);
    if (h->main_offset < offset + sizeof(counters_header) || h->main_offset % 64 != 0 ||
        h->nic_port_entry_size != sizeof(nic_port_counters) || main_end > h->blocks_offset) {
        return "counters region: main block inconsistent (misaligned, overlapping the worker blocks, or entries "
               "of " + std::to_string(h->nic_port_entry_size) + " bytes, this program reads " +
               std::to_string(sizeof(nic_port_counters)) + ")";
    }
    if (h->blocks_offset < offset + sizeof(counters_header) || h->blocks_offset % 64 != 0 ||
        h->blocks_offset + u64{h->workers} * h->block_stride > offset + bytes) {
        return "counters region: worker blocks run past the counters region";
    }
    return {};
}

std::uint64_t advance_epoch(shm_region& region, std::uint64_t now_ns) noexcept {
    auto* h = region.at<counters_header>(region.header().counters_offset);
    const u64 e = load_word(&h->epoch) + 1;
    store_word(&h->epoch_ns, now_ns);
    store_word(&h->epoch, e, std::memory_order_release);
    return e;
}

// ---- writer ----

result<counters_writer> counters_writer::attach(shm_region& region, std::uint32_t worker, std::uint32_t lcore) {
    if (!region.valid() || region.mode() != access::read_write) {
        return error{"counters: region '" + region.name() + "' is not mapped read-write"};
    }
    const region_header& rh = region.header();
    const auto* h = region.at<counters_header>(rh.counters_offset);
    if (worker >= h->workers) {
        return error{"counters: worker " + std::to_string(worker) + " is not below the region's " +
                     std::to_string(h->workers) + " workers"};
    }
    counters_writer w;
    w._header = h;
    w._block = region.base() + h->blocks_offset + u64{worker} * h->block_stride;
    w._ports = h->ports;
    w._drop_reasons = h->drop_reasons;
    w._max_connections = h->max_connections;
    w._max_paths = h->max_paths;
    auto* bh = reinterpret_cast<worker_block_header*>(w._block);
    std::atomic_ref<std::uint32_t>(bh->worker).store(worker, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(bh->lcore).store(lcore, std::memory_order_relaxed);
    return w;
}

void counters_writer::begin_publish() noexcept {
    auto* bh = reinterpret_cast<worker_block_header*>(_block);
    _sequence = load_word(&bh->sequence) | 1u;
    store_word(&bh->sequence, _sequence);
    std::atomic_thread_fence(std::memory_order_release);
}

void counters_writer::store_worker(const worker_counters& c) noexcept {
    store_words(_block + _header->worker_offset, c);
}

void counters_writer::store_port(std::uint32_t port, const port_counters& c) noexcept {
    if (port < _ports) {
        store_words(_block + _header->ports_offset + u64{port} * sizeof(port_counters), c);
    }
}

void counters_writer::store_drops(std::span<const std::uint64_t> by_reason) noexcept {
    auto* d = reinterpret_cast<u64*>(_block + _header->drops_offset);
    const std::size_t n = std::min<std::size_t>(by_reason.size(), _drop_reasons);
    for (std::size_t i = 0; i < n; ++i) {
        store_word(d + i, by_reason[i]);
    }
}

void counters_writer::end_publish(std::uint64_t now_ns) noexcept {
    auto* bh = reinterpret_cast<worker_block_header*>(_block);
    store_word(&bh->publish_ns, now_ns);
    store_word(&bh->publish_count, load_word(&bh->publish_count) + 1);
    store_word(&bh->sequence, _sequence + 1, std::memory_order_release);
}

void counters_writer::store_connection(std::uint32_t slot, const connection_counters& c) noexcept {
    if (slot >= _max_connections) {
        return;
    }
    auto* e = reinterpret_cast<connection_entry*>(_block + _header->connections_offset +
                                                  u64{slot} * sizeof(connection_entry));
    write_locked(&e->sequence, [&] { store_words(&e->counters, c); });
}

void counters_writer::clear_connection(std::uint32_t slot) noexcept {
    store_connection(slot, connection_counters{});
}

void counters_writer::store_path(std::uint32_t slot, const path_counters& c) noexcept {
    if (slot >= _max_paths) {
        return;
    }
    auto* e = reinterpret_cast<path_entry*>(_block + _header->paths_offset + u64{slot} * sizeof(path_entry));
    write_locked(&e->sequence, [&] { store_words(&e->counters, c); });
}

void counters_writer::clear_path(std::uint32_t slot) noexcept {
    store_path(slot, path_counters{});
}

// ---- main block writer ----

result<main_counters_writer> main_counters_writer::attach(shm_region& region) {
    if (!region.valid() || region.mode() != access::read_write) {
        return error{"counters: region '" + region.name() + "' is not mapped read-write"};
    }
    const auto* h = region.at<counters_header>(region.header().counters_offset);
    main_counters_writer w;
    w._block = region.base() + h->main_offset;
    w._ports = h->ports;
    return w;
}

void main_counters_writer::publish(const kwikd_counters& kwikd, std::span<const nic_port_counters> ports,
                                   std::uint64_t now_ns) noexcept {
    auto* bh = reinterpret_cast<main_block_header*>(_block);
    std::byte* nic = _block + sizeof(main_block_header) + sizeof(kwikd_counters);
    const std::size_t n = std::min<std::size_t>(ports.size(), _ports);
    write_locked(&bh->sequence, [&] {
        store_words(_block + sizeof(main_block_header), kwikd);
        for (std::size_t p = 0; p < n; ++p) {
            store_words(nic + p * sizeof(nic_port_counters), ports[p]);
        }
        store_word(&bh->publish_ns, now_ns);
        store_word(&bh->publish_count, load_word(&bh->publish_count) + 1);
    });
}

// ---- reader ----

result<counters_reader> counters_reader::attach(const shm_region& region) {
    if (!region.valid()) {
        return error{"counters: region not mapped"};
    }
    const region_header& rh = region.header();
    // open() and create() checked the counters header already; check again for a region
    // handle that was built some other way.
    if (std::string bad = check_counters_region(region.base(), rh.counters_offset, rh.counters_bytes, region.size());
        !bad.empty()) {
        return error{"region " + region.path() + ": " + bad};
    }
    counters_reader r;
    r._base = region.base();
    r._header = region.at<const counters_header>(rh.counters_offset);
    return r;
}

std::uint64_t counters_reader::epoch() const noexcept {
    return load_word(&_header->epoch, std::memory_order_acquire);
}

std::string counters_reader::drop_reason_name(std::uint32_t i) const {
    if (_header->drop_reasons == kdp::drop_reason_count && i < kdp::drop_reason_count) {
        return std::string(kdp::to_string(static_cast<kdp::drop_reason>(i)));
    }
    return "reason_" + std::to_string(i);
}

bool counters_reader::read_worker(std::uint32_t worker, worker_snapshot& out, read_stats* stats,
                                  std::uint32_t max_retries) const {
    if (worker >= _header->workers) {
        return false;
    }
    const std::byte* b = block(worker);
    const auto* bh = reinterpret_cast<const worker_block_header*>(b);
    out.ports.resize(_header->ports);
    out.drops.resize(_header->drop_reasons);
    const auto* ports = b + _header->ports_offset;
    const auto* drops = reinterpret_cast<const u64*>(b + _header->drops_offset);
    return read_locked(
        &bh->sequence,
        [&] {
            out.worker = worker;
            out.lcore =
                std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(bh->lcore)).load(std::memory_order_relaxed);
            out.publish_ns = load_word(&bh->publish_ns);
            out.publish_count = load_word(&bh->publish_count);
            load_words(out.worker_totals, b + _header->worker_offset);
            for (std::size_t p = 0; p < out.ports.size(); ++p) {
                load_words(out.ports[p], ports + p * sizeof(port_counters));
            }
            for (std::size_t i = 0; i < out.drops.size(); ++i) {
                out.drops[i] = load_word(drops + i);
            }
        },
        stats, max_retries);
}

bool counters_reader::read_main(main_snapshot& out, read_stats* stats, std::uint32_t max_retries) const {
    const std::byte* b = _base + _header->main_offset;
    const auto* bh = reinterpret_cast<const main_block_header*>(b);
    const std::byte* nic = b + sizeof(main_block_header) + sizeof(kwikd_counters);
    out.nic.resize(_header->ports);
    return read_locked(
        &bh->sequence,
        [&] {
            out.publish_ns = load_word(&bh->publish_ns);
            out.publish_count = load_word(&bh->publish_count);
            load_words(out.kwikd, b + sizeof(main_block_header));
            for (std::size_t p = 0; p < out.nic.size(); ++p) {
                load_words(out.nic[p], nic + p * sizeof(nic_port_counters));
            }
        },
        stats, max_retries);
}

bool counters_reader::read_connection(std::uint32_t worker, std::uint32_t slot, connection_counters& out,
                                      read_stats* stats, std::uint32_t max_retries) const {
    if (worker >= _header->workers || slot >= _header->max_connections) {
        return false;
    }
    const auto* e = reinterpret_cast<const connection_entry*>(block(worker) + _header->connections_offset +
                                                              u64{slot} * sizeof(connection_entry));
    return read_locked(
        &e->sequence, [&] { load_words(out, &e->counters); }, stats, max_retries);
}

bool counters_reader::read_path(std::uint32_t worker, std::uint32_t slot, path_counters& out, read_stats* stats,
                                std::uint32_t max_retries) const {
    if (worker >= _header->workers || slot >= _header->max_paths) {
        return false;
    }
    const auto* e =
        reinterpret_cast<const path_entry*>(block(worker) + _header->paths_offset + u64{slot} * sizeof(path_entry));
    return read_locked(
        &e->sequence, [&] { load_words(out, &e->counters); }, stats, max_retries);
}

counters_totals counters_reader::read_totals() const {
    counters_totals t;
    t.ports.assign(_header->ports, port_counters{});
    t.drops.assign(_header->drop_reasons, 0);
    std::unordered_map<u64, std::size_t> connection_index;
    struct pair_hash {
        std::size_t operator()(const std::pair<u64, u64>& k) const noexcept {
            return std::hash<u64>{}(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
        }
    };
    std::unordered_map<std::pair<u64, u64>, std::size_t, pair_hash> path_index;
    t.main_read = read_main(t.main, &t.stats);
    worker_snapshot s;
    for (std::uint32_t w = 0; w < _header->workers; ++w) {
        if (read_worker(w, s, &t.stats)) {
            ++t.workers_read;
            accumulate(t.worker, s.worker_totals);
            for (std::size_t p = 0; p < s.ports.size(); ++p) {
                accumulate(t.ports[p], s.ports[p]);
            }
            for (std::size_t i = 0; i < s.drops.size(); ++i) {
                t.drops[i] += s.drops[i];
            }
        }
        const std::byte* b = block(w);
        for (std::uint32_t slot = 0; slot < _header->max_connections; ++slot) {
            const auto* e = reinterpret_cast<const connection_entry*>(b + _header->connections_offset +
                                                                      u64{slot} * sizeof(connection_entry));
            if (load_word(&e->counters.connection_id) == 0) {
                continue; // unused: skip the seqlock read
            }
            connection_counters c;
            if (!read_connection(w, slot, c, &t.stats) || c.connection_id == 0) {
                continue;
            }
            const auto [it, fresh] = connection_index.try_emplace(c.connection_id, t.connections.size());
            if (fresh) {
                t.connections.push_back(c);
            } else {
                accumulate(t.connections[it->second], c);
            }
        }
        for (std::uint32_t slot = 0; slot < _header->max_paths; ++slot) {
            const auto* e =
                reinterpret_cast<const path_entry*>(b + _header->paths_offset + u64{slot} * sizeof(path_entry));
            if (load_word(&e->counters.connection_id) == 0) {
                continue;
            }
            path_counters c;
            if (!read_path(w, slot, c, &t.stats) || c.connection_id == 0) {
                continue;
            }
            const auto [it, fresh] = path_index.try_emplace({c.connection_id, c.path_id}, t.paths.size());
            if (fresh) {
                t.paths.push_back(c);
            } else {
                accumulate(t.paths[it->second], c);
            }
        }
    }
    std::sort(
        t.connections.begin(), t.connections.end(),
        [](const connection_counters& a, const connection_counters& b) { return a.connection_id < b.connection_id; });
    std::sort(t.paths.begin(), t.paths.end(), [](const path_counters& a, const path_counters& b) {
        return a.connection_id != b.connection_id ? a.connection_id < b.connection_id : a.path_id < b.path_id;
    });
    return t;
}

std::optional<connection_counters> counters_reader::find_connection(std::uint64_t connection_id) const {
    std::optional<connection_counters> found;
    if (connection_id == 0) {
        return found;
    }
    for (std::uint32_t w = 0; w < _header->workers; ++w) {
        const std::byte* b = block(w);
        for (std::uint32_t slot = 0; slot < _header->max_connections; ++slot) {
            const auto* e = reinterpret_cast<const connection_entry*>(b + _header->connections_offset +
                                                                      u64{slot} * sizeof(connection_entry));
            if (load_word(&e->counters.connection_id) != connection_id) {
                continue;
            }
            connection_counters c;
            if (!read_connection(w, slot, c) || c.connection_id != connection_id) {
                continue;
            }
            if (found) {
                accumulate(*found, c);
            } else {
                found = c;
            }
        }
    }
    return found;
}

std::optional<path_counters> counters_reader::find_path(std::uint64_t connection_id, std::uint64_t path_id) const {
    std::optional<path_counters> found;
    if (connection_id == 0) {
        return found;
    }
    for (std::uint32_t w = 0; w < _header->workers; ++w) {
        const std::byte* b = block(w);
        for (std::uint32_t slot = 0; slot < _header->max_paths; ++slot) {
            const auto* e =
                reinterpret_cast<const path_entry*>(b + _header->paths_offset + u64{slot} * sizeof(path_entry));
            if (load_word(&e->counters.connection_id) != connection_id || load_word(&e->counters.path_id) != path_id) {
                continue;
            }
            path_counters c;
            if (!read_path(w, slot, c) || c.connection_id != connection_id || c.path_id != path_id) {
                continue;
            }
            if (found) {
                accumulate(*found, c);
            } else {
                found = c;
            }
        }
    }
    return found;
}

} // namespace kwik::api
