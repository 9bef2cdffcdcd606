// The shared-memory region that is the one published interface between kwikd and the control
// process: a header, the command ring, the event ring and the counters region, found by offsets
// from the region base. It is the file <directory>/<name> on a tmpfs (/dev/shm, or systemd's
// /run/kwik). kwikd creates it (and holds a lock file so that a second kwikd on the same name is
// refused); the control process and kwikctl open it. Set-up calls:
// one thread; the header's runtime lines follow the single-writer rules written beside them.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace kwik::api {

// ---- set-up results ---------------------------------------------------------------------

using kwik::error;
using kwik::result;

// "<what>: <strerror(err)>", thread-safe.
std::string errno_message(std::string_view what, int err);

// ---- the region header ------------------------------------------------------------------

inline constexpr char region_magic[8] = {'K', 'W', 'I', 'K', 'S', 'H', 'M', '1'};
// Bumped whenever region_header, the ring placement or the counters layout changes.
inline constexpr std::uint32_t region_layout_version = 2; // 2: counters layout 3 (the main block)
inline constexpr std::size_t max_region_name = 64;

enum class region_state : std::uint32_t {
    initialising = 0, // kwikd is laying the region out; openers are refused
    ready = 1,        // rings initialised; the control process may attach
    stopping = 2,     // kwikd is shutting down (draining tx, final counters)
    stopped = 3,      // kwikd has exited; counters hold their final values
};
std::string_view to_string(region_state s) noexcept;

// At offset 0 of the region. Every field is at a fixed offset (static_asserts below) so that a
// control process built from another commit can still read the identity line and refuse with a
// clear message. Which core writes which cache line:
//   lines 0-1: kwikd's main thread, once, before state becomes ready; read-only afterwards.
//   line 2:    kwikd's main lcore (state, heartbeat, event sequence numbers).
//   line 3:    the control process that holds the control lock (command sequence numbers).
struct alignas(64) region_header {
    // line 0: identity
    char magic[8];                  // region_magic
    std::uint32_t layout_version;   // region_layout_version
    std::uint32_t protocol_version; // commands.hpp protocol_version
    std::uint64_t size;             // bytes of the whole region
    std::int64_t creator_pid;       // kwikd's pid
    std::uint64_t start_time_ns;    // CLOCK_REALTIME at creation
    std::uint32_t message_size;     // sizeof(command) == sizeof(event)
    std::uint32_t command_ring_slots;
    std::uint32_t event_ring_slots;
    std::uint32_t ring_flags; // bit 0: events have several producers
    std::uint64_t reserved0;
    // line 1: layout, offsets from the region base (never pointers)
    std::uint64_t command_ring_offset;
    std::uint64_t command_ring_bytes;
    std::uint64_t event_ring_offset;
    std::uint64_t event_ring_bytes;
    std::uint64_t counters_offset;
    std::uint64_t counters_bytes;
    std::uint64_t reserved1[2];
    // line 2: kwikd's main lcore
    std::uint32_t state; // region_state; stored with release once the rings are usable
    std::uint32_t reserved2;
    std::uint64_t heartbeat_ns; // kwikd's monotonic clock at its last housekeeping pass
    std::uint64_t next_event_sequence;
    std::uint64_t last_command_sequence; // the highest command sequence kwikd has taken off the ring
    std::uint64_t reserved3[4];
    // line 3: the control process
    std::int64_t control_pid; // the read-write opener holding the control lock; 0: none
    std::uint64_t next_command_sequence;
    std::uint64_t control_attach_count;
    std::uint64_t reserved4[5];
    // lines 4-5: the region's name, for diagnostics
    char name[max_region_name + 64];
};
static_assert(sizeof(region_header) == 6 * 64);
static_assert(offsetof(region_header, layout_version) == 8);
static_assert(offsetof(region_header, size) == 16);
static_assert(offsetof(region_header, creator_pid) == 24);
static_assert(offsetof(region_header, command_ring_offset) == 64);
static_assert(offsetof(region_header, state) == 128);
static_assert(offsetof(region_header, control_pid) == 192);
static_assert(offsetof(region_header, name) == 256);

inline constexpr std::uint32_t ring_flag_multi_producer_events = 1u << 0;

// Capacities of the counters region (counters.hpp), fixed when kwikd creates it.
struct counters_config {
    std::uint32_t workers = 1;            // worker lcores, one block each, 1..256
    std::uint32_t ports = 1;              // 1..64
    std::uint32_t max_connections = 1024; // table slots per worker, 1..1048576
    std::uint32_t max_paths = 4096;       // table slots per worker, 1..1048576
};

// What kwikd asks for when it creates the region.
inline constexpr gid_t keep_group = static_cast<gid_t>(-1);

struct region_config {
    std::string name = "kwik";               // [A-Za-z0-9_-], 1..64 characters
    std::string directory = "/dev/shm";      // the region is <directory>/<name>; a tmpfs
    mode_t mode = 0600;                      // of the region and the lock files (umask ignored)
    gid_t group = keep_group;                // of the region and the lock files; keep_group: ours
    std::string lock_directory = "/dev/shm"; // holds <name>.lock (kwikd) and <name>.ctl.lock
    std::uint32_t command_ring_slots = 1024; // power of two, 2..65536
    std::uint32_t event_ring_slots = 4096;   // power of two, 2..65536
    bool multi_producer_events = false;      // true if several lcores enqueue events directly
    counters_config counters{};
    bool unlink_on_close = true; // remove <directory>/<name> when kwikd closes it
};

enum class access : std::uint8_t { read_only, read_write };

struct open_options {
    access mode = access::read_write; // read_write: the control process (takes the control lock)
    std::string directory = "/dev/shm"; // where kwikd's region_config.directory put the region
    std::string lock_directory = "/dev/shm";
    bool require_ready = true; // false: accept a stopped region (final counters)
};

// Where each part lies, computed from a region_config; shared by create() and the tests.
struct region_layout {
    std::uint64_t command_ring_offset = 0;
    std::uint64_t command_ring_bytes = 0;
    std::uint64_t event_ring_offset = 0;
    std::uint64_t event_ring_bytes = 0;
    std::uint64_t counters_offset = 0;
    std::uint64_t counters_bytes = 0;
    std::uint64_t size = 0; // rounded up to the page size
};
// Validates every field of the config; the error names the bad one.
[[nodiscard]] result<region_layout> compute_layout(const region_config& config);
// Empty if the name is usable, else why not.
std::string check_region_name(std::string_view name);

// One mapping of the region. Move-only; the destructor unmaps it, releases the locks this
// handle took and, for kwikd with unlink_on_close, marks the region stopped and unlinks the name
// (only if the name still refers to this region).
class shm_region {
public:
    // kwikd: take <lock_directory>/<name>.lock (refused, naming the holder's pid, if another
    // kwikd holds it), create <lock_directory>/<name>.ctl.lock for the control process (it may
    // not be allowed to create files there), remove a stale region left by a kwikd that died,
    // create <directory>/<name> with config.mode and config.group (the lock files too), size and
    // prefault it, write the header and lay out the counters. The state stays initialising until
    // dataplane_channel::create() has initialised the rings.
    [[nodiscard]] static result<shm_region> create(const region_config& config);

    // The control process (read_write, one at a time: <name>.ctl.lock) or a reader such as
    // kwikctl (read_only, any number, no lock). Checks magic, layout and protocol versions, the
    // size and every offset; refuses a region that is still initialising. Refused access names
    // the file, its owner, group and mode, and the fix (the group to join).
    [[nodiscard]] static result<shm_region> open(std::string_view name, const open_options& options = {});

    shm_region() = default;
    shm_region(shm_region&& other) noexcept;
    shm_region& operator=(shm_region&& other) noexcept;
    shm_region(const shm_region&) = delete;
    shm_region& operator=(const shm_region&) = delete;
    ~shm_region();

    bool valid() const noexcept { return _base != nullptr; }
    std::byte* base() const noexcept { return _base; }
    std::size_t size() const noexcept { return _size; }
    const std::string& name() const noexcept { return _name; }
    access mode() const noexcept { return _access; }
    bool is_creator() const noexcept { return _creator; }
    // <directory>/<name>
    std::string path() const;

    region_header& header() const noexcept { return *reinterpret_cast<region_header*>(_base); }
    template <class T> T* at(std::uint64_t offset) const noexcept { return reinterpret_cast<T*>(_base + offset); }

    region_state state() const noexcept;
    // kwikd only (read_write creator): publish a new state (release).
    void set_state(region_state s) noexcept;
    // kwikd's main lcore, once per housekeeping pass: the control process uses it to tell a
    // hung kwikd from an idle one.
    void heartbeat(std::uint64_t now_ns) noexcept;

    // True when <directory>/<name> no longer is this mapping (kwikd restarted or exited and removed
    // it) or the region is stopped: the control process should close and open again.
    bool is_stale() const;

private:
    void close() noexcept;

    std::string _name;
    std::string _path;
    std::string _lock_path;
    std::byte* _base = nullptr;
    std::size_t _size = 0;
    int _lock_fd = -1;
    access _access = access::read_only;
    bool _creator = false;
    bool _unlink_on_close = false;
    dev_t _dev = 0;
    ino_t _ino = 0;
};

} // namespace kwik::api
