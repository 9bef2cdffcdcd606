// Cost of the transport core's receive-side pieces, per item: the reassembler in order and out
// of order, sent_packets::on_ack, ack_tracker::on_packet + build, the whole receive path of a
// connection (on_datagram for 1400-byte data packets), and the heap footprint of an idle
// connection and of an open stream. Single-threaded. The path scheduler and DEFLATE benchmarks
// of the same executable are in transport_bench_scheduler.cpp; BENCHMARK_MAIN is here.
//
// Every benchmark reports items (SetItemsProcessed) and a per_item counter (time per item).
// Heap figures are bytes requested from operator new, which this executable replaces with a
// counting version; the transport core allocates nothing with malloc (heap_buffer is the only
// malloc user, and no benchmark here uses it: received datagrams live in rx_buffer slots the
// harness owns).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/transport/ack_tracker.hpp"
#include "dataplane/transport/connection.hpp"
#include "dataplane/transport/reassembler.hpp"
#include "dataplane/transport/sent_packets.hpp"
#include "dataplane/transport/types.hpp"

// ---- counting operator new / delete ----------------------------------------------------------
// Live bytes and blocks, as requested (allocator overhead not included). Every block carries a
// 16-byte header before the pointer handed out: its requested size and the pointer malloc or
// aligned_alloc returned, so every form of delete (sized or not, aligned or not) frees alike.

namespace {

std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::int64_t> g_live_blocks{0};

constexpr std::size_t block_header = 16;

void* counted_alloc(std::size_t size, std::size_t align) noexcept {
    const std::size_t offset = std::max(align, block_header);
    void* raw = nullptr;
    if (offset <= alignof(std::max_align_t)) {
        raw = std::malloc(size + offset);
    } else {
        raw = std::aligned_alloc(offset, (size + 2 * offset - 1) / offset * offset);
    }
    if (raw == nullptr) {
        return nullptr;
    }
    std::byte* user = static_cast<std::byte*>(raw) + offset;
    reinterpret_cast<std::size_t*>(user)[-2] = size;
    reinterpret_cast<void**>(user)[-1] = raw;
    g_live_bytes.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    g_live_blocks.fetch_add(1, std::memory_order_relaxed);
    return user;
}

void counted_free(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    const std::size_t size = reinterpret_cast<std::size_t*>(p)[-2];
    void* raw = reinterpret_cast<void**>(p)[-1];
    g_live_bytes.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    g_live_blocks.fetch_sub(1, std::memory_order_relaxed);
    std::free(raw);
}

void* counted_alloc_or_throw(std::size_t size, std::size_t align) {
    void* p = counted_alloc(size, align);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}

constexpr std::size_t default_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
using nothrow_ref = const std::nothrow_t&;

} // namespace

void* operator new(std::size_t n) { return counted_alloc_or_throw(n, default_align); }
void* operator new[](std::size_t n) { return counted_alloc_or_throw(n, default_align); }
void* operator new(std::size_t n, std::align_val_t a) {
    return counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, nothrow_ref) noexcept { return counted_alloc(n, default_align); }
void* operator new[](std::size_t n, nothrow_ref) noexcept { return counted_alloc(n, default_align); }
void* operator new(std::size_t n, std::align_val_t a, nothrow_ref) noexcept {
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, nothrow_ref) noexcept {
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, nothrow_ref) noexcept { counted_free(p); }
void operator delete[](void* p, nothrow_ref) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, nothrow_ref) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, nothrow_ref) noexcept { counted_free(p); }

namespace {

using namespace kwik::transport;
namespace kdp = kwik::kdp;

// Items and, as an inverted rate, seconds per item: the console prints e.g. "16.2ns".
void set_items(benchmark::State& state, std::int64_t items, std::int64_t bytes_per_item = 0) {
    state.SetItemsProcessed(items);
    if (bytes_per_item != 0) {
        state.SetBytesProcessed(items * bytes_per_item);
    }
    state.counters["per_item"] = benchmark::Counter(
        static_cast<double>(items), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---- counting buffer_ops ---------------------------------------------------------------------
// An owner that counts its references; the benchmark checks every one was given back.

struct counted_owner {
    std::int64_t refs = 0;
    std::uint64_t retains = 0;
};

void counted_retain(void* owner) noexcept {
    auto* o = static_cast<counted_owner*>(owner);
    ++o->refs;
    ++o->retains;
}

void counted_release(void* owner) noexcept { --static_cast<counted_owner*>(owner)->refs; }

constexpr buffer_ops counted_ops{counted_retain, counted_release};

constexpr std::uint32_t frame_bytes = 1200;

const std::vector<std::uint8_t>& payload_bytes() {
    static const std::vector<std::uint8_t> bytes = [] {
        std::vector<std::uint8_t> b(2048);
        std::mt19937 rng(7);
        for (auto& x : b) {
            x = static_cast<std::uint8_t>(rng());
        }
        return b;
    }();
    return bytes;
}

// ---- 1. reassembler, in order ----------------------------------------------------------------
// connection::process_stream calls insert() for every frame; ordered data then waits in the
// reassembler's FIFO until the application's read() delivers it (after the rx burst, in
// kwikd). insert_and_deliver is the fused fast path (no pool node, no retain/release), which the
// connection does not use today.

enum class in_order_mode { insert_deliver, insert_x32_deliver, insert_and_deliver };

template <in_order_mode Mode>
void bm_reassembler_in_order(benchmark::State& state) {
    counted_owner owner;
    segment_pool pool(256);
    reassembler r(&counted_ops, &pool, true);
    const std::uint8_t* data = payload_bytes().data();
    std::uint64_t offset = 0;
    std::uint64_t delivered = 0;
    std::uint64_t errors = 0;
    auto sink = [&](std::uint64_t, buffer_ref piece) {
        delivered += piece.len;
        benchmark::DoNotOptimize(piece.data);
    };
    constexpr std::int64_t per_iteration = Mode == in_order_mode::insert_x32_deliver ? 32 : 1;
    for (auto _ : state) {
        if constexpr (Mode == in_order_mode::insert_and_deliver) {
            errors += r.insert_and_deliver(offset, {data, frame_bytes, &owner}, false, sink) !=
                      reassembly_error::none;
            offset += frame_bytes;
        } else {
            for (std::int64_t i = 0; i < per_iteration; ++i) {
                errors += r.insert(offset, {data, frame_bytes, &owner}, false) != reassembly_error::none;
                offset += frame_bytes;
            }
            r.deliver(sink);
        }
    }
    if (errors != 0 || delivered != offset || owner.refs != 0 || pool.in_use() != 0) {
        state.SkipWithError("reassembler lost, kept or refused data");
        return;
    }
    const std::int64_t frames = state.iterations() * per_iteration;
    set_items(state, frames, frame_bytes);
    state.counters["retains_per_frame"] = static_cast<double>(owner.retains) / static_cast<double>(frames);
}
BENCHMARK_TEMPLATE(bm_reassembler_in_order, in_order_mode::insert_deliver);
BENCHMARK_TEMPLATE(bm_reassembler_in_order, in_order_mode::insert_x32_deliver);
BENCHMARK_TEMPLATE(bm_reassembler_in_order, in_order_mode::insert_and_deliver);

// ---- 2. reassembler, out of order ------------------------------------------------------------
// One iteration: the next `window` frames inserted in a shuffled order (8 different shuffles,
// cycled), then one deliver(). Time per insert, delivery included. The pool holds exactly one
// window of segments.

void bm_reassembler_out_of_order(benchmark::State& state) {
    const auto window = static_cast<std::uint32_t>(state.range(0));
    counted_owner owner;
    segment_pool pool(window);
    reassembler r(&counted_ops, &pool, true);
    std::vector<std::vector<std::uint32_t>> orders(8, std::vector<std::uint32_t>(window));
    std::mt19937 rng(window);
    for (auto& o : orders) {
        std::iota(o.begin(), o.end(), 0u);
        std::shuffle(o.begin(), o.end(), rng);
    }
    const std::uint8_t* data = payload_bytes().data();
    std::uint64_t base = 0;
    std::uint64_t delivered = 0;
    std::uint64_t errors = 0;
    std::size_t round = 0;
    auto sink = [&](std::uint64_t, buffer_ref piece) {
        delivered += piece.len;
        benchmark::DoNotOptimize(piece.data);
    };
    for (auto _ : state) {
        for (const std::uint32_t i : orders[round++ & 7]) {
            errors += r.insert(base + std::uint64_t{i} * frame_bytes, {data, frame_bytes, &owner}, false) !=
                      reassembly_error::none;
        }
        r.deliver(sink);
        base += std::uint64_t{window} * frame_bytes;
    }
    if (errors != 0 || delivered != base || owner.refs != 0 || pool.in_use() != 0) {
        state.SkipWithError("reassembler lost, kept or refused data");
        return;
    }
    set_items(state, state.iterations() * window, frame_bytes);
}
BENCHMARK(bm_reassembler_out_of_order)->ArgName("window")->Arg(64)->Arg(1024)->Arg(4096);

// ---- 3. ACK processing -----------------------------------------------------------------------
// Steady state of one path: k packets sent (one stream frame each), then the ACK that
// acknowledges them (one range from 0, as a real cumulative ACK), time advancing 10 µs per
// packet. bm_sent_packets_send_ack times both (ns per ACK = on_sent x k + on_ack);
// bm_sent_packets_on_ack times only on_ack: each iteration sends 64 ACKs' worth of packets
// untimed, then times the 64 on_ack calls with a steady_clock (two clock reads per 64 ACKs).

struct counting_listener {
    std::uint64_t acked = 0;
    std::uint64_t lost = 0;
    void on_acked(const sent_packet& p, std::span<const sent_frame> frames) noexcept {
        ++acked;
        benchmark::DoNotOptimize(p.bytes);
        benchmark::DoNotOptimize(frames.data());
    }
    void on_lost(const sent_packet&, std::span<const sent_frame>) noexcept { ++lost; }
};

struct ack_loop {
    sent_packets sent;
    counting_listener listener;
    sent_frame frame{};
    kdp::ack_frame ack{};
    time_ns now = 1 * sec;
    std::uint64_t refused = 0;

    ack_loop() noexcept {
        frame.what = sent_frame::kind::stream;
        frame.stream = 2;
        frame.length = 1360;
        ack.path_id = 1;
        ack.range_count = 1;
    }
    void send(std::int64_t k) noexcept {
        for (std::int64_t i = 0; i < k; ++i) {
            refused += !sent.on_sent(now, 1400, true, {&frame, 1});
            frame.offset += frame.length;
            now += 10 * us;
        }
    }
    // Acknowledges every packet up to `largest` (those below were acknowledged before).
    ack_outcome acknowledge(std::uint64_t largest) noexcept {
        ack.ranges[0] = {largest, 0};
        return sent.on_ack(ack, now, listener);
    }
    bool clean(std::uint64_t expected_acked) const noexcept {
        return refused == 0 && listener.lost == 0 && listener.acked == expected_acked &&
               sent.packets_in_flight() == 0;
    }
};

void bm_sent_packets_send_ack(benchmark::State& state) {
    const std::int64_t k = state.range(0);
    ack_loop l;
    for (auto _ : state) {
        l.send(k);
        const ack_outcome o = l.acknowledge(l.sent.next_seq() - 1);
        benchmark::DoNotOptimize(o);
    }
    if (!l.clean(static_cast<std::uint64_t>(state.iterations() * k))) {
        state.SkipWithError("packets refused, lost or not acknowledged");
        return;
    }
    set_items(state, state.iterations());
}
BENCHMARK(bm_sent_packets_send_ack)->ArgName("acked")->Arg(1)->Arg(2)->Arg(16);

void bm_sent_packets_on_ack(benchmark::State& state) {
    constexpr std::int64_t acks = 64;
    const std::int64_t k = state.range(0);
    ack_loop l;
    for (auto _ : state) {
        const std::uint64_t first = l.sent.next_seq();
        l.send(acks * k);
        const auto t0 = std::chrono::steady_clock::now();
        for (std::int64_t a = 1; a <= acks; ++a) {
            const ack_outcome o = l.acknowledge(first + static_cast<std::uint64_t>(a * k) - 1);
            benchmark::DoNotOptimize(o);
        }
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    }
    if (!l.clean(static_cast<std::uint64_t>(state.iterations() * acks * k))) {
        state.SkipWithError("packets refused, lost or not acknowledged");
        return;
    }
    set_items(state, state.iterations() * acks);
}
BENCHMARK(bm_sent_packets_on_ack)->ArgName("acked")->Arg(1)->Arg(2)->Arg(16)->UseManualTime();

// ---- 4. ack_tracker --------------------------------------------------------------------------
// In-order arrivals, each followed by build() and on_ack_sent() (an ACK for every packet: the
// most the receiver can be asked for). ranges: ranges held; 33 is a path whose earlier losses
// left 32 gaps, so build() copies the most ranges an ACK carries (1 + kdp::max_ack_ranges).

void bm_ack_tracker(benchmark::State& state) {
    const auto ranges = static_cast<std::uint64_t>(state.range(0));
    ack_tracker t;
    std::uint64_t seq = 0;
    time_ns now = 1 * sec;
    for (std::uint64_t g = 1; g < ranges; ++g) {
        (void)t.on_packet(seq, true, false, now);
        seq += 2; // one lost packet after each
    }
    kdp::ack_frame f{};
    std::uint64_t not_fresh = 0;
    for (auto _ : state) {
        not_fresh += t.on_packet(seq++, true, false, now) != ack_tracker::verdict::fresh;
        t.build(f, 1, now);
        t.on_ack_sent(now);
        benchmark::DoNotOptimize(f);
        now += 1 * us;
    }
    if (not_fresh != 0 || t.range_count() != ranges || f.largest() != seq - 1) {
        state.SkipWithError("unexpected tracker state");
        return;
    }
    set_items(state, state.iterations());
}
BENCHMARK(bm_ack_tracker)->ArgName("ranges")->Arg(1)->Arg(33);

// ---- 5. the receive path of a connection -----------------------------------------------------
// A server connection with one path receives 1400-byte DATA packets carrying one ordered stream
// frame each (stream 2, opened by the first frame), built with kdp::serialize_packet in bursts
// of 32, sequence numbers and offsets in order, one virtual µs apart (11.2 Gb/s). After each
// burst the peer's ACK arrives for everything the receiver sent (its ACKs and MAX_STREAM_DATA /
// MAX_DATA updates: unacknowledged, those would trip the PTO), the application read()s the
// stream and the receiver flush()es, which sends its ACK and, every half window, a flow-control
// update, so the window keeps opening.
// Building the packets (CRC32C included) is never timed: manual timing, two steady_clock reads
// per burst. on_datagram: only the 32 on_datagram calls. full: also the peer's ACK, read() and
// flush(), per data datagram. Encrypted: the same with every frame ENCRYPTED (AES-256-GCM,
// sealed untimed by a client-side frame_protection; the datagram is still 1400 bytes, so each
// carries 31 bytes less stream data), against the plain rows in the same run.

struct rx_buffer {
    std::int64_t refs = 0;
    std::size_t len = 0;
    alignas(64) std::array<std::uint8_t, 2048> bytes{};
};

void rx_retain(void* owner) noexcept { ++static_cast<rx_buffer*>(owner)->refs; }
void rx_release(void* owner) noexcept { --static_cast<rx_buffer*>(owner)->refs; }
constexpr buffer_ops rx_buffer_ops{rx_retain, rx_release};

class rx_harness {
public:
    static constexpr std::size_t burst = 32;
    static constexpr std::size_t datagram_size = 1400;
    static constexpr path_id path = 1;
    static constexpr stream_id stream = 2; // client-initiated (even): the server accepts it

    explicit rx_harness(bool encrypted = false) : _encrypted(encrypted) {
        connection_config cfg;
        cfg.side = role::server;
        cfg.rx_ops = &rx_buffer_ops;
        cfg.tx_ops = &rx_buffer_ops;
        connection_callbacks cb;
        cb.ctx = this;
        cb.transmit = [](void* ctx, path_id, std::span<const std::uint8_t>) {
            ++static_cast<rx_harness*>(ctx)->_sent_by_receiver;
        };
        _conn = std::make_unique<connection>(cfg, cb, _now);
        _ok = _conn->add_path(path, _now);
        if (_encrypted) {
            aead_key k;
            k.key.fill(0x5c);
            _ok = _ok && _conn->install_key(k) == key_install::installed &&
                  _sealer.install(k) == key_install::installed;
        }
        // The stream frame's length that makes the datagram exactly datagram_size bytes.
        kdp::frame_desc f;
        f.stream_id = stream;
        f.flags = static_cast<std::uint8_t>(kdp::frame_flag::ordered | (_encrypted ? kdp::frame_flag::encrypted : 0));
        const std::size_t tag = _encrypted ? kdp::aead_tag_len : 0;
        const kdp::packet_desc d{0, kdp::packet_type::data, kdp::compression::none, {&f, 1}};
        for (_frame_len = datagram_size; _frame_len > 0; --_frame_len) {
            f.data = {payload_bytes().data(), _frame_len + tag};
            if (kdp::packet_wire_size(d) <= datagram_size) {
                break;
            }
        }
        _ok = _ok && kdp::packet_wire_size(d) == datagram_size;
    }

    // Untimed: the next burst of DATA packets, serialised into the rx buffers.
    void build_burst() noexcept {
        for (rx_buffer& b : _data) {
            _ok = _ok && b.refs == 0; // the previous burst was read and released
            kdp::frame_desc f;
            f.stream_id = stream;
            f.offset = _offset;
            f.flags = kdp::frame_flag::ordered;
            f.data = {payload_bytes().data() + (_offset & 255), _frame_len};
            if (_encrypted) {
                std::memcpy(_plain.data(), f.data.data(), _frame_len);
                _ok = _ok && _sealer.seal(f, _plain.data(), _frame_len, _now) == seal_refusal::none;
            }
            const kdp::packet_desc d{_peer_seq++, kdp::packet_type::data, kdp::compression::none, {&f, 1}};
            b.len = kdp::serialize_packet(d, b.bytes).size;
            _ok = _ok && b.len == datagram_size;
            _offset += _frame_len;
        }
    }

    void receive_burst() noexcept {
        for (rx_buffer& b : _data) {
            _conn->on_datagram(path, {b.bytes.data(), b.len}, &b, false, _now);
            _now += 1 * us;
        }
    }

    // The peer's ACK for every packet the receiver sent so far (an ACK packet of its own).
    void receive_peer_ack() noexcept {
        if (_sent_by_receiver == 0) {
            return;
        }
        kdp::control_frame c;
        c.type = kdp::control_type::ack;
        c.ack.path_id = path;
        c.ack.range_count = 1;
        c.ack.ranges[0] = {_sent_by_receiver - 1, 0};
        std::array<std::uint8_t, 64> payload{};
        const std::size_t n = kdp::encode_control(c, payload);
        kdp::frame_desc f;
        f.prio = kdp::priority::control;
        f.stream_id = kdp::control_stream_id(c);
        f.offset = kdp::control_offset(c);
        f.data = {payload.data(), n};
        const kdp::packet_desc d{_peer_seq++, kdp::packet_type::ack, kdp::compression::none, {&f, 1}};
        _ack.len = kdp::serialize_packet(d, _ack.bytes).size;
        _ok = _ok && n != 0 && _ack.len != 0;
        _conn->on_datagram(path, {_ack.bytes.data(), _ack.len}, &_ack, false, _now);
    }

    void read_and_flush() noexcept {
        _read += _conn->read(stream, [](void* ctx, std::uint64_t, std::span<const std::uint8_t> data) {
            benchmark::DoNotOptimize(data.data());
            static_cast<rx_harness*>(ctx)->_read_calls += 1;
        }, this);
        _conn->flush(_now);
    }

    // Everything sent was delivered, nothing dropped, the path never failed.
    bool healthy() const {
        std::uint64_t drops = 0;
        for (const std::uint64_t d : _conn->counters().drops) {
            drops += d;
        }
        const std::vector<path_info> p = _conn->paths();
        return _ok && !_conn->closed() && drops == 0 && _conn->counters().duplicate_packets == 0 &&
               _read == _offset && _conn->counters().stream_bytes_delivered == _offset &&
               p.size() == 1 && p[0].status == path_status::active && p[0].counters.probes == 0 &&
               _ack.refs == 0 &&
               std::all_of(_data.begin(), _data.end(), [](const rx_buffer& b) { return b.refs == 0; });
    }

    std::uint64_t sent_by_receiver() const noexcept { return _sent_by_receiver; }
    std::uint64_t acks_sent() const { return _conn->paths()[0].counters.acks_sent; }

private:
    std::unique_ptr<connection> _conn;
    std::array<rx_buffer, burst> _data{};
    rx_buffer _ack{};
    time_ns _now = 1 * sec;
    std::uint64_t _peer_seq = 0;
    std::uint64_t _offset = 0;
    std::uint64_t _read = 0;
    std::uint64_t _read_calls = 0;
    std::uint64_t _sent_by_receiver = 0;
    std::size_t _frame_len = 0;
    bool _ok = true;
    bool _encrypted = false;
    frame_protection _sealer{true}; // the peer (a client) sealing the frames
    std::array<std::uint8_t, 2048> _plain{};
};

enum class rx_scope { on_datagram, full };

template <rx_scope Scope, bool Encrypted = false>
void bm_connection_rx(benchmark::State& state) {
    auto h = std::make_unique<rx_harness>(Encrypted); // 32 x 2 KiB buffers: not on the stack
    // The first burst opens the stream: set-up, not timed.
    h->build_burst();
    h->receive_burst();
    h->receive_peer_ack();
    h->read_and_flush();
    const std::uint64_t sent_before = h->sent_by_receiver();
    const std::uint64_t acks_before = h->acks_sent();
    for (auto _ : state) {
        h->build_burst();
        const auto t0 = std::chrono::steady_clock::now();
        h->receive_burst();
        if constexpr (Scope == rx_scope::full) {
            h->receive_peer_ack();
            h->read_and_flush();
        }
        const auto t1 = std::chrono::steady_clock::now();
        if constexpr (Scope == rx_scope::on_datagram) {
            h->receive_peer_ack();
            h->read_and_flush();
        }
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    }
    if (!h->healthy()) {
        state.SkipWithError("receiver dropped, lost or failed");
        return;
    }
    const std::int64_t datagrams = state.iterations() * static_cast<std::int64_t>(rx_harness::burst);
    set_items(state, datagrams, rx_harness::datagram_size);
    state.counters["rx_sent_per_datagram"] =
        static_cast<double>(h->sent_by_receiver() - sent_before) / static_cast<double>(datagrams);
    state.counters["acks_per_datagram"] =
        static_cast<double>(h->acks_sent() - acks_before) / static_cast<double>(datagrams);
}
BENCHMARK_TEMPLATE(bm_connection_rx, rx_scope::on_datagram)->UseManualTime();
BENCHMARK_TEMPLATE(bm_connection_rx, rx_scope::full)->UseManualTime();
BENCHMARK_TEMPLATE(bm_connection_rx, rx_scope::on_datagram, true)->UseManualTime();
BENCHMARK_TEMPLATE(bm_connection_rx, rx_scope::full, true)->UseManualTime();

// The plaintext length of the one stream frame of a 1400-byte ENCRYPTED datagram (stream 2).
std::size_t sealed_frame_len() {
    std::array<std::uint8_t, kdp::aead_tag_len> tag{};
    kdp::frame_desc f;
    f.stream_id = 2;
    f.flags = kdp::frame_flag::ordered | kdp::frame_flag::encrypted;
    const kdp::packet_desc d{0, kdp::packet_type::data, kdp::compression::none, {&f, 1}};
    std::size_t len = 1400;
    for (; len > 0; --len) {
        f.data = {payload_bytes().data(), len + tag.size()};
        if (kdp::packet_wire_size(d) <= 1400) {
            break;
        }
    }
    return len;
}

// Sealing alone: frame_protection::seal of the frame of a 1400-byte ENCRYPTED datagram, in
// place, the AAD built from the frame, under one key.
void bm_aead_seal(benchmark::State& state) {
    frame_protection p(true);
    aead_key k;
    k.key.fill(0x5c);
    if (p.install(k) != key_install::installed) {
        state.SkipWithError("install");
        return;
    }
    const std::size_t len = sealed_frame_len();
    std::array<std::uint8_t, 1400> buf{};
    std::memcpy(buf.data(), payload_bytes().data(), len);
    std::uint64_t offset = 0;
    for (auto _ : state) {
        kdp::frame_desc f;
        f.stream_id = 2;
        f.offset = offset;
        f.flags = kdp::frame_flag::ordered;
        if (p.seal(f, buf.data(), len, 0) != seal_refusal::none) {
            state.SkipWithError("seal");
            return;
        }
        benchmark::DoNotOptimize(buf.data());
        offset += len;
    }
    set_items(state, state.iterations(), len);
}
BENCHMARK(bm_aead_seal);

// Opening alone: frame_protection::open of that frame in a parsed 1400-byte datagram, in place.
// Each iteration first copies the 1400 sealed bytes back (open leaves plaintext): with_copy
// false times that copy alone, the baseline to subtract.
void bm_aead_open(benchmark::State& state) {
    const bool open_it = state.range(0) != 0;
    frame_protection sealer(true);
    frame_protection opener(false);
    aead_key k;
    k.key.fill(0x5c);
    if (sealer.install(k) != key_install::installed || opener.install(k) != key_install::installed) {
        state.SkipWithError("install");
        return;
    }
    const std::size_t len = sealed_frame_len();
    std::array<std::uint8_t, 1400> plain{};
    std::memcpy(plain.data(), payload_bytes().data(), len);
    kdp::frame_desc f;
    f.stream_id = 2;
    f.flags = kdp::frame_flag::ordered;
    if (sealer.seal(f, plain.data(), len, 0) != seal_refusal::none) {
        state.SkipWithError("seal");
        return;
    }
    const kdp::packet_desc d{0, kdp::packet_type::data, kdp::compression::none, {&f, 1}};
    std::array<std::uint8_t, 2048> sealed{};
    const std::size_t n = kdp::serialize_packet(d, sealed).size;
    auto view = std::make_unique<kdp::packet_view>();
    if (n != 1400 || kdp::parse_packet(kdp::contiguous_bytes(std::span<const std::uint8_t>(sealed.data(), n)), *view) != kdp::drop_reason::none) {
        state.SkipWithError("packet");
        return;
    }
    const kdp::frame_view fv = view->frames[0];
    std::array<std::uint8_t, 2048> work{};
    for (auto _ : state) {
        std::memcpy(work.data(), sealed.data(), n);
        benchmark::ClobberMemory();
        if (open_it && opener.open({work.data(), n}, fv, work.data() + fv.data_pos, 0) != kdp::drop_reason::none) {
            state.SkipWithError("open");
            return;
        }
        benchmark::DoNotOptimize(work.data());
    }
    set_items(state, state.iterations(), len);
}
BENCHMARK(bm_aead_open)->ArgName("open")->Arg(0)->Arg(1);

// ---- 6. memory -------------------------------------------------------------------------------
// Heap bytes (requested from operator new, the connection object itself included) held by an
// idle connection after add_path, and by one more open stream. The timed loop is what the
// counters describe being built: construct + add_path + destroy, or one open_stream.

struct heap_usage {
    std::int64_t bytes;
    std::int64_t blocks;
};

heap_usage heap_now() noexcept {
    return {g_live_bytes.load(std::memory_order_relaxed), g_live_blocks.load(std::memory_order_relaxed)};
}

heap_usage operator-(heap_usage a, heap_usage b) noexcept { return {a.bytes - b.bytes, a.blocks - b.blocks}; }

connection_config lean_config() {
    connection_config c;
    c.loss.packet_capacity = 256;
    c.loss.frame_capacity = 2048;
    c.reassembly_segments = 256;
    c.max_streams = 64;
    return c;
}

connection_config config_for(bool lean) { return lean ? lean_config() : connection_config{}; }

std::unique_ptr<connection> idle_connection(const connection_config& cfg, std::int64_t paths) {
    auto c = std::make_unique<connection>(cfg, connection_callbacks{}, 0);
    for (std::int64_t p = 0; p < paths; ++p) {
        if (!c->add_path(static_cast<path_id>(p + 1), 0)) {
            return nullptr;
        }
    }
    return c;
}

// What a connection with `paths` paths holds, or blocks = -1 if it could not be built or leaked.
heap_usage connection_footprint(const connection_config& cfg, std::int64_t paths) {
    const heap_usage before = heap_now();
    std::unique_ptr<connection> c = idle_connection(cfg, paths);
    const heap_usage held = heap_now() - before;
    const bool built = c != nullptr;
    c.reset();
    const heap_usage left = heap_now() - before;
    return built && left.bytes == 0 && left.blocks == 0 ? held : heap_usage{0, -1};
}

void bm_connection_memory(benchmark::State& state, bool lean) {
    const connection_config cfg = config_for(lean);
    const std::int64_t paths = state.range(0);
    const heap_usage with_paths = connection_footprint(cfg, paths);
    const heap_usage no_paths = connection_footprint(cfg, 0);
    if (with_paths.blocks < 0 || no_paths.blocks < 0) {
        state.SkipWithError("connection not built, or it leaked");
        return;
    }
    for (auto _ : state) {
        std::unique_ptr<connection> c = idle_connection(cfg, paths);
        benchmark::DoNotOptimize(c.get());
    }
    set_items(state, state.iterations());
    state.counters["bytes_per_connection"] = static_cast<double>(with_paths.bytes);
    state.counters["blocks_per_connection"] = static_cast<double>(with_paths.blocks);
    state.counters["bytes_without_paths"] = static_cast<double>(no_paths.bytes);
    state.counters["bytes_per_path"] =
        static_cast<double>(with_paths.bytes - no_paths.bytes) / static_cast<double>(paths);
}
BENCHMARK_CAPTURE(bm_connection_memory, default, false)->ArgName("paths")->Arg(1)->Arg(4);
BENCHMARK_CAPTURE(bm_connection_memory, lean, true)->ArgName("paths")->Arg(1)->Arg(4);

// Bytes per stream: `n` streams opened on a fresh one-path connection (the stream table was
// reserved for max_streams by the constructor, so no rehash is counted). Local and peer-opened
// streams are the same stream_state. Timed: open_stream, cycling through max_streams streams per
// connection (open_stream recomputes the latency budget over every stream, so its cost grows
// with the count); the connection is replaced, untimed, when full.
void bm_stream_memory(benchmark::State& state, bool lean) {
    const connection_config cfg = config_for(lean);
    const std::uint32_t n = std::min<std::uint32_t>(64, cfg.max_streams);
    heap_usage per_stream{0, -1};
    {
        std::unique_ptr<connection> c = idle_connection(cfg, 1);
        const heap_usage before = heap_now();
        std::uint32_t opened = 0;
        for (std::uint32_t i = 0; i < n; ++i) {
            opened += c->open_stream({}) != 0;
        }
        const heap_usage held = heap_now() - before;
        if (opened == n) {
            per_stream = {held.bytes / n, held.blocks / n};
        }
    }
    if (per_stream.blocks < 0) {
        state.SkipWithError("stream not opened");
        return;
    }
    std::unique_ptr<connection> c = idle_connection(cfg, 1);
    std::uint32_t open = 0;
    std::uint64_t refused = 0;
    for (auto _ : state) {
        if (open == cfg.max_streams) {
            state.PauseTiming();
            c = idle_connection(cfg, 1);
            open = 0;
            state.ResumeTiming();
        }
        refused += c->open_stream({}) == 0;
        ++open;
    }
    if (refused != 0) {
        state.SkipWithError("open_stream refused below max_streams");
        return;
    }
    set_items(state, state.iterations());
    state.counters["bytes_per_stream"] = static_cast<double>(per_stream.bytes);
    state.counters["blocks_per_stream"] = static_cast<double>(per_stream.blocks);
}
BENCHMARK_CAPTURE(bm_stream_memory, default, false);
BENCHMARK_CAPTURE(bm_stream_memory, lean, true);

} // namespace

BENCHMARK_MAIN();
