// kwikd's side of the rings (command_ring.hpp): initialising them in the region with
// rte_ring_init(). The only part of dataplane/api/ that links a DPDK library (librte_ring).
#include "dataplane/api/command_ring.hpp"

#include <cerrno>
#include <string>

namespace kwik::api {

namespace {

result<rte_ring*> init_ring(shm_region& region, std::uint64_t offset, std::uint64_t bytes, std::uint32_t slots,
                            const char* name, unsigned flags) {
    // The region's layout was computed without calling DPDK; make sure it is what this DPDK wants.
    const ssize_t need = rte_ring_get_memsize_elem(message_size, slots);
    if (need < 0) {
        return error{
            errno_message(std::string("rte_ring_get_memsize_elem for ring '") + name + "'", static_cast<int>(-need))};
    }
    if (static_cast<std::uint64_t>(need) != bytes) {
        return error{std::string("ring '") + name + "': the region reserves " + std::to_string(bytes) +
                     " bytes, rte_ring_get_memsize_elem wants " + std::to_string(need) +
                     " (DPDK's struct rte_ring changed: bump region_layout_version)"};
    }
    auto* r = region.at<rte_ring>(offset);
    if (const int rc = rte_ring_init(r, name, slots, flags); rc != 0) {
        return error{errno_message(std::string("rte_ring_init for ring '") + name + "' in " + region.path(), -rc)};
    }
    return r;
}

} // namespace

result<dataplane_channel> dataplane_channel::create(shm_region& region) {
    if (!region.valid() || !region.is_creator()) {
        return error{"dataplane channel: only the process that created region '" + region.name() +
                     "' initialises its rings"};
    }
    if (region.state() != region_state::initialising) {
        return error{"dataplane channel: region " + region.path() + " is " + std::string(to_string(region.state())) +
                     ", its rings were initialised already"};
    }
    region_header& h = region.header();
    const bool mp_events = (h.ring_flags & ring_flag_multi_producer_events) != 0;
    auto commands = init_ring(region, h.command_ring_offset, h.command_ring_bytes, h.command_ring_slots,
                              command_ring_name, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!commands) {
        return error{commands.message()};
    }
    auto events = init_ring(region, h.event_ring_offset, h.event_ring_bytes, h.event_ring_slots, event_ring_name,
                            (mp_events ? 0u : RING_F_SP_ENQ) | RING_F_SC_DEQ);
    if (!events) {
        return error{events.message()};
    }
    dataplane_channel c;
    c._header = &h;
    c._commands = message_ring<command>(*commands);
    c._events = message_ring<event>(*events);
    c._multi_producer = mp_events;
    region.set_state(region_state::ready);
    return c;
}

result<dataplane_channel> dataplane_channel::attach(shm_region& region) {
    if (!region.valid() || region.mode() != access::read_write) {
        return error{"dataplane channel: region '" + region.name() + "' must be mapped read-write"};
    }
    region_header& h = region.header();
    const bool mp_events = (h.ring_flags & ring_flag_multi_producer_events) != 0;
    auto* commands = region.at<rte_ring>(h.command_ring_offset);
    auto* events = region.at<rte_ring>(h.event_ring_offset);
    if (std::string bad = check_ring(commands, command_ring_name, h.command_ring_slots, false); !bad.empty()) {
        return error{"region " + region.path() + ": " + bad};
    }
    if (std::string bad = check_ring(events, event_ring_name, h.event_ring_slots, mp_events); !bad.empty()) {
        return error{"region " + region.path() + ": " + bad};
    }
    dataplane_channel c;
    c._header = &h;
    c._commands = message_ring<command>(commands);
    c._events = message_ring<event>(events);
    c._multi_producer = mp_events;
    return c;
}

} // namespace kwik::api
