// The command ring (control process -> kwikd) and the event ring (kwikd -> control process):
// DPDK rte_rings of 256-byte messages placed inside the shared-memory region. kwikd initialises
// them with rte_ring_init() (dataplane_channel::create); the control process never starts EAL
// and uses only rte_ring's inline enqueue/dequeue on the mapping (control_channel), so it links
// no DPDK library. Each ring has one producer and one consumer: control_channel is used by one
// thread of the one control process holding the control lock, dataplane_channel by kwikd's
// main lcore (events may have several producers if the region was created so). Which process
// writes which cache line of an rte_ring: the producer's writes the prod line (head, tail) and
// the slots, the consumer's writes the cons line; each reads the other's. Channels point into
// the mapping: valid while the shm_region they were made from is open.
#pragma once

#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "dataplane/api/commands.hpp"
#include "dataplane/api/shm_region.hpp"

namespace kwik::api {

inline constexpr char command_ring_name[] = "kwik_commands";
inline constexpr char event_ring_name[] = "kwik_events";

// A ring of Messages in shared memory, copied in and out by value (rte_ring's element API: no
// pointers cross the process boundary, since each process maps the region at its own address).
// Measured on the 2-core KVM VM (Intel Xeon), EAL process on one core, plain process on the
// other, machine otherwise idle (tests/integration/api/ring_ipc_test.cpp): a command and its
// result, one in flight, p50 0.85 us, p99 1.0 us; one cache line's round trip between the two
// cores is 0.3 us there, and a 256-byte message crosses four lines plus the ring's head and tail,
// each way. Pipelined, with kwikd taking bursts of 32: 4.8 to 5.4 M commands/s (plus as many
// results). Any other busy process on those cores divides the pipelined rate by 3 to 10.
template <class Message> class message_ring {
public:
    static_assert(sizeof(Message) % 4 == 0, "rte_ring element sizes are multiples of 4 bytes");

    message_ring() = default;
    explicit message_ring(rte_ring* r) noexcept : _ring(r) {}

    [[nodiscard]] bool try_enqueue(const Message& m) noexcept {
        // DPDK 22.11 declares the single-element source non-const; it only reads it.
        return rte_ring_enqueue_elem(_ring, const_cast<Message*>(&m), sizeof(Message)) == 0;
    }
    [[nodiscard]] bool try_dequeue(Message& m) noexcept {
        return rte_ring_dequeue_elem(_ring, &m, sizeof(Message)) == 0;
    }
    // As many as fit / as many as are there, up to the span's size.
    unsigned enqueue_burst(std::span<const Message> in) noexcept {
        return rte_ring_enqueue_burst_elem(_ring, in.data(), sizeof(Message), static_cast<unsigned>(in.size()),
                                           nullptr);
    }
    unsigned dequeue_burst(std::span<Message> out) noexcept {
        return rte_ring_dequeue_burst_elem(_ring, out.data(), sizeof(Message), static_cast<unsigned>(out.size()),
                                           nullptr);
    }

    unsigned count() const noexcept { return rte_ring_count(_ring); }
    unsigned capacity() const noexcept { return rte_ring_get_capacity(_ring); }
    unsigned free_count() const noexcept { return rte_ring_free_count(_ring); }
    rte_ring* ring() const noexcept { return _ring; }

private:
    rte_ring* _ring = nullptr;
};

// Empty if the rte_ring at `r` is the ring kwikd initialised for `slots` messages with the given
// producer mode, else what is wrong. Header-only, so the control process can call it.
inline std::string check_ring(const rte_ring* r, const char* name, std::uint32_t slots, bool multi_producer) {
    const std::string what = std::string("ring '") + name + "': ";
    if (std::string(r->name, strnlen(r->name, sizeof(r->name))) != name) {
        return what + "not initialised (name '" + std::string(r->name, strnlen(r->name, sizeof(r->name))) + "')";
    }
    if (r->size != slots || r->mask != slots - 1 || r->capacity != slots - 1) {
        return what + "size " + std::to_string(r->size) + ", the region header says " + std::to_string(slots);
    }
    const rte_ring_sync_type producer = multi_producer ? RTE_RING_SYNC_MT : RTE_RING_SYNC_ST;
    if (r->prod.sync_type != producer || r->cons.sync_type != RTE_RING_SYNC_ST) {
        return what + "unexpected producer or consumer mode";
    }
    return {};
}

// The control process's end: sends commands, receives events. One per region (the control
// lock taken by shm_region::open(read_write) enforces it across processes).
class control_channel {
public:
    control_channel() = default;

    [[nodiscard]] static result<control_channel> attach(shm_region& region) {
        if (!region.valid() || region.mode() != access::read_write) {
            return error{"control channel: region '" + region.name() + "' must be opened read-write"};
        }
        region_header& h = region.header();
        auto* commands = region.at<rte_ring>(h.command_ring_offset);
        auto* events = region.at<rte_ring>(h.event_ring_offset);
        const bool mp_events = (h.ring_flags & ring_flag_multi_producer_events) != 0;
        if (std::string bad = check_ring(commands, command_ring_name, h.command_ring_slots, false); !bad.empty()) {
            return error{"region " + region.path() + ": " + bad};
        }
        if (std::string bad = check_ring(events, event_ring_name, h.event_ring_slots, mp_events); !bad.empty()) {
            return error{"region " + region.path() + ": " + bad};
        }
        control_channel c;
        c._header = &h;
        c._commands = message_ring<command>(commands);
        c._events = message_ring<event>(events);
        return c;
    }

    // Stamps c.header.version and c.header.sequence (numbered in the region, so a restarted
    // control process carries on where the last one stopped) and enqueues it. False: the ring
    // is full (kwikd is not keeping up or not running); nothing was sent or numbered.
    [[nodiscard]] bool try_send(command& c) noexcept {
        std::atomic_ref<std::uint64_t> next(_header->next_command_sequence);
        const std::uint64_t seq = next.load(std::memory_order_relaxed);
        c.header.version = protocol_version;
        c.header.sequence = seq;
        if (!_commands.try_enqueue(c)) {
            return false;
        }
        next.store(seq + 1, std::memory_order_relaxed);
        return true;
    }
    // Stamps and enqueues as many of cmds as fit, in order; returns how many. Those not sent
    // keep a stamp that the next send overwrites.
    unsigned send_burst(std::span<command> cmds) noexcept {
        std::atomic_ref<std::uint64_t> next(_header->next_command_sequence);
        const std::uint64_t first = next.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < cmds.size(); ++i) {
            cmds[i].header.version = protocol_version;
            cmds[i].header.sequence = first + i;
        }
        const unsigned n = _commands.enqueue_burst(cmds);
        next.store(first + n, std::memory_order_relaxed);
        return n;
    }
    [[nodiscard]] bool try_receive(event& e) noexcept { return _events.try_dequeue(e); }
    unsigned receive_burst(std::span<event> out) noexcept { return _events.dequeue_burst(out); }

    // Commands kwikd has not taken yet; the sequence of the last one it took.
    unsigned commands_queued() const noexcept { return _commands.count(); }
    std::uint64_t last_taken_sequence() const noexcept {
        return std::atomic_ref<std::uint64_t>(_header->last_command_sequence).load(std::memory_order_relaxed);
    }
    message_ring<command>& commands() noexcept { return _commands; }
    message_ring<event>& events() noexcept { return _events; }

private:
    region_header* _header = nullptr;
    message_ring<command> _commands;
    message_ring<event> _events;
};

// kwikd's end: receives commands, sends events. Used by the main lcore (and, if the region has
// multi_producer_events, try_send by any lcore).
class dataplane_channel {
public:
    dataplane_channel() = default;

    // kwikd's main thread, once, right after shm_region::create(): rte_ring_init() on both rings
    // in the region, then the region becomes ready and control processes may attach. Needs no
    // EAL (rte_ring_init only writes the ring header), but links librte_ring.
    [[nodiscard]] static result<dataplane_channel> create(shm_region& region);
    // A second handle on rings another handle created (the same process, e.g. a test).
    [[nodiscard]] static result<dataplane_channel> attach(shm_region& region);

    [[nodiscard]] bool try_receive(command& c) noexcept {
        if (!_commands.try_dequeue(c)) {
            return false;
        }
        std::atomic_ref<std::uint64_t>(_header->last_command_sequence)
            .store(c.header.sequence, std::memory_order_relaxed);
        return true;
    }
    // Up to out.size() commands in one dequeue: what the main lcore does once per housekeeping
    // pass (one pair of ring index updates per burst instead of per command).
    unsigned receive_burst(std::span<command> out) noexcept {
        const unsigned n = _commands.dequeue_burst(out);
        if (n != 0) {
            std::atomic_ref<std::uint64_t>(_header->last_command_sequence)
                .store(out[n - 1].header.sequence, std::memory_order_relaxed);
        }
        return n;
    }
    // Stamps e.header.version and e.header.sequence and enqueues it; false: the ring is full
    // (the control process is not reading; count it, the event is lost).
    [[nodiscard]] bool try_send(event& e) noexcept {
        std::atomic_ref<std::uint64_t> next(_header->next_event_sequence);
        e.header.version = protocol_version;
        if (_multi_producer) {
            // Several producers: numbers are unique but a full ring leaves a gap.
            e.header.sequence = next.fetch_add(1, std::memory_order_relaxed);
            return _events.try_enqueue(e);
        }
        const std::uint64_t seq = next.load(std::memory_order_relaxed);
        e.header.sequence = seq;
        if (!_events.try_enqueue(e)) {
            return false;
        }
        next.store(seq + 1, std::memory_order_relaxed);
        return true;
    }

    // As send_burst on the control side: stamps all, enqueues as many as fit, returns how many.
    unsigned send_burst(std::span<event> events) noexcept {
        if (_multi_producer) {
            unsigned sent = 0;
            while (sent < events.size() && try_send(events[sent])) {
                ++sent;
            }
            return sent;
        }
        std::atomic_ref<std::uint64_t> next(_header->next_event_sequence);
        const std::uint64_t first = next.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < events.size(); ++i) {
            events[i].header.version = protocol_version;
            events[i].header.sequence = first + i;
        }
        const unsigned n = _events.enqueue_burst(events);
        next.store(first + n, std::memory_order_relaxed);
        return n;
    }

    unsigned events_queued() const noexcept { return _events.count(); }
    message_ring<command>& commands() noexcept { return _commands; }
    message_ring<event>& events() noexcept { return _events; }

private:
    region_header* _header = nullptr;
    message_ring<command> _commands;
    message_ring<event> _events;
    bool _multi_producer = false;
};

} // namespace kwik::api
