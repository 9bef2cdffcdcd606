// The shared-memory region (shm_region.hpp): lock files, create, open, validation, close.
#include "dataplane/api/shm_region.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// Only for sizeof(struct rte_ring): the region's layout must match what rte_ring_init() expects
// (command_ring.cpp checks it against rte_ring_get_memsize_elem()). Header only, no DPDK library.
#include <rte_ring_core.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"

namespace kwik::api {

namespace {

using u64 = std::uint64_t;

constexpr u64 page_size = 4096;
constexpr u64 align_up(u64 v, u64 a) noexcept {
    return (v + a - 1) / a * a;
}
constexpr std::uint32_t min_ring_slots = 2;
constexpr std::uint32_t max_ring_slots = 65536;

// The same as rte_ring_get_memsize_elem(message_size, slots) in DPDK 22.11.
constexpr u64 ring_bytes(std::uint32_t slots) noexcept {
    return align_up(sizeof(struct rte_ring) + u64{slots} * message_size, RTE_CACHE_LINE_SIZE);
}

std::string join_path(std::string_view directory, std::string_view name) {
    std::string path(directory);
    if (path.empty() || path.back() != '/') {
        path += '/';
    }
    return path + std::string(name);
}

std::string user_name(uid_t uid) {
    std::array<char, 1024> buf{};
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
        return found->pw_name;
    }
    return "uid " + std::to_string(uid);
}

std::string group_name(gid_t gid) {
    std::array<char, 1024> buf{};
    group gr{};
    group* found = nullptr;
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
        return found->gr_name;
    }
    return std::to_string(gid);
}

// What to say when this process may not open `path` (EACCES/EPERM): who owns it (or the
// directory that stopped us), its mode, who we are, and how to get in.
std::string access_hint(const std::string& path) {
    struct stat st {};
    std::string what = path;
    if (::stat(path.c_str(), &st) != 0) {
        what = path.substr(0, path.find_last_of('/'));
        if (what.empty() || ::stat(what.c_str(), &st) != 0) {
            return {};
        }
        what = "directory " + what;
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    const std::string grp = group_name(st.st_gid);
    const std::string me = user_name(::geteuid());
    return " (" + what + " is " + user_name(st.st_uid) + ":" + grp + " mode " + mode + "; this process runs as " +
           me + ": run it in group '" + grp + "' (usermod -aG " + grp + " " + me +
           ", or systemd's SupplementaryGroups=" + grp + "), or have kwikd grant another group with [kwikd] "
           "shm_group and shm_mode)";
}

std::string open_failure(const std::string& what, const std::string& path, int err) {
    std::string msg = errno_message(what + " " + path, err);
    if (err == EACCES || err == EPERM) {
        msg += access_hint(path);
    }
    return msg;
}

std::uint32_t load_state(const region_header& h) noexcept {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(h.state)).load(std::memory_order_acquire);
}

// Gives fd (the region or a lock file) the configured mode and group.
result<void> set_owner(int fd, const std::string& path, mode_t mode, gid_t group) {
    if (::fchmod(fd, mode) != 0) { // open() applies the umask
        return error{errno_message("cannot set mode of " + path, errno)};
    }
    if (group != keep_group && ::fchown(fd, static_cast<uid_t>(-1), group) != 0) {
        return error{errno_message("cannot give " + path + " to group " + group_name(group) + " (shm_group)", errno)};
    }
    return {};
}

// Opens a lock file for read-write. kwikd (owner) creates it or takes it over and sets its mode
// and group; a control process opens the one kwikd made (root:kwik 0660 in /run/kwik, where it
// may not create files) and creates one with `mode` only where none exists.
result<int> open_lock_file(const std::string& path, mode_t mode, gid_t group, bool owner) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (owner ? O_CREAT : 0), mode);
    bool created = false;
    if (fd < 0 && errno == ENOENT && !owner) {
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        created = fd >= 0;
    }
    if (fd < 0) {
        return error{open_failure("cannot open lock file", path, errno)};
    }
    struct stat st {};
    if ((owner || created) && ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid()) {
        if (auto set = set_owner(fd, path, mode, owner ? group : keep_group); !set) {
            ::close(fd);
            return error{set.message()};
        }
    }
    return fd;
}

// An exclusive flock on `path`, with our pid written into the file for whoever is refused.
// Returns the fd, or an error naming the holder.
result<int> take_lock(const std::string& path, mode_t mode, gid_t group, bool owner, std::string_view holder_kind,
                      std::string_view region) {
    // A lock file that someone removed and recreated while we waited would let two holders
    // coexist; take the lock again until the locked file is the one the path names.
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto opened = open_lock_file(path, mode, group, owner);
        if (!opened) {
            return error{opened.message()};
        }
        const int fd = *opened;
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            if (err != EWOULDBLOCK) {
                ::close(fd);
                return error{errno_message("cannot lock " + path, err)};
            }
            char buf[32] = {};
            const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
            ::close(fd);
            const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
            std::string who = pid > 0 ? "pid " + std::to_string(pid) : "another process (pid not recorded)";
            return error{std::string(holder_kind) + " for shared-memory region '" + std::string(region) +
                         "' is already running: " + path + " is locked by " + who};
        }
        struct stat by_fd {};
        struct stat by_path {};
        if (::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 && by_fd.st_dev == by_path.st_dev &&
            by_fd.st_ino == by_path.st_ino) {
            const std::string pid = std::to_string(::getpid()) + "\n";
            if (::ftruncate(fd, 0) != 0 ||
                ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
                const int err = errno;
                ::close(fd);
                return error{errno_message("cannot write pid into lock file " + path, err)};
            }
            return fd;
        }
        ::close(fd);
    }
    return error{"lock file " + path + " keeps being replaced; cannot lock it"};
}

void release_lock(int fd) noexcept {
    if (fd >= 0) {
        // Leave no stale pid behind for the next refused process to name.
        static_cast<void>(::ftruncate(fd, 0));
        ::close(fd);
    }
}

std::uint64_t realtime_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool power_of_two(std::uint32_t v) noexcept {
    return v != 0 && (v & (v - 1)) == 0;
}

} // namespace

std::string errno_message(std::string_view what, int err) {
    return std::string(what) + ": " + std::generic_category().message(err);
}

std::string_view to_string(region_state s) noexcept {
    switch (s) {
    case region_state::initialising:
        return "initialising";
    case region_state::ready:
        return "ready";
    case region_state::stopping:
        return "stopping";
    case region_state::stopped:
        return "stopped";
    }
    return "unknown";
}

std::string check_region_name(std::string_view name) {
    if (name.empty() || name.size() > max_region_name) {
        return "shared-memory name '" + std::string(name) + "': must be 1.." + std::to_string(max_region_name) +
               " characters";
    }
    for (const char ch : name) {
        const bool ok =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok) {
            return "shared-memory name '" + std::string(name) + "': character '" + std::string(1, ch) +
                   "' not allowed (letters, digits, '_' and '-')";
        }
    }
    return {};
}

result<region_layout> compute_layout(const region_config& config) {
    if (std::string bad = check_region_name(config.name); !bad.empty()) {
        return error{std::move(bad)};
    }
    if (!power_of_two(config.command_ring_slots) || config.command_ring_slots < min_ring_slots ||
        config.command_ring_slots > max_ring_slots) {
        return error{"command_ring_slots: " + std::to_string(config.command_ring_slots) +
                     " is not a power of two in 2..65536"};
    }
    if (!power_of_two(config.event_ring_slots) || config.event_ring_slots < min_ring_slots ||
        config.event_ring_slots > max_ring_slots) {
        return error{"event_ring_slots: " + std::to_string(config.event_ring_slots) +
                     " is not a power of two in 2..65536"};
    }
    if ((config.mode & ~static_cast<mode_t>(0777)) != 0 || (config.mode & 0600) != 0600) {
        char text[16];
        std::snprintf(text, sizeof(text), "0%o", static_cast<unsigned>(config.mode));
        return error{std::string("mode: ") + text +
                     " must be permission bits (at most 0777) including owner read-write"};
    }
    if (std::string bad = check_counters_config(config.counters); !bad.empty()) {
        return error{std::move(bad)};
    }
    region_layout l;
    // Each part on its own pages: the rings' producer and consumer lines never share a page
    // with the counters that workers write.
    l.command_ring_offset = align_up(sizeof(region_header), page_size);
    l.command_ring_bytes = ring_bytes(config.command_ring_slots);
    l.event_ring_offset = align_up(l.command_ring_offset + l.command_ring_bytes, page_size);
    l.event_ring_bytes = ring_bytes(config.event_ring_slots);
    l.counters_offset = align_up(l.event_ring_offset + l.event_ring_bytes, page_size);
    l.counters_bytes = compute_counters_layout(config.counters).bytes;
    l.size = align_up(l.counters_offset + l.counters_bytes, page_size);
    return l;
}

// ---- create ----

result<shm_region> shm_region::create(const region_config& config) {
    auto layout = compute_layout(config);
    if (!layout) {
        return error{layout.message()};
    }
    const region_layout& l = *layout;

    shm_region region;
    region._name = config.name;
    region._access = access::read_write;
    region._creator = true;
    region._unlink_on_close = config.unlink_on_close;
    region._lock_path = join_path(config.lock_directory, config.name + ".lock");
    auto lock = take_lock(region._lock_path, config.mode, config.group, true, "kwikd", config.name);
    if (!lock) {
        return error{lock.message()};
    }
    region._lock_fd = *lock;
    // The control process's lock file, made now with our mode and group: under systemd the
    // directory (/run/kwik, root:kwik 0750) lets kwik-cp open files but not create them.
    const std::string ctl_lock = join_path(config.lock_directory, config.name + ".ctl.lock");
    auto ctl = open_lock_file(ctl_lock, config.mode, config.group, true);
    if (!ctl) {
        return error{ctl.message()};
    }
    ::close(*ctl);

    // We hold the lock, so a region under this name was left by a kwikd that died: replace it.
    // Control processes still mapping it see is_stale() and open the new one.
    const std::string path = join_path(config.directory, config.name);
    region._path = path;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return error{errno_message("cannot remove stale region " + path, errno)};
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, config.mode);
    if (fd < 0) {
        return error{errno_message("cannot create " + path, errno)};
    }
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    if (auto set = set_owner(fd, path, config.mode, config.group); !set) {
        ::unlink(path.c_str());
        return error{set.message()};
    }
    // posix_fallocate, unlike ftruncate, fails now with ENOSPC when /dev/shm is too small,
    // instead of a SIGBUS in a worker at its first publish.
    if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(l.size)); err != 0) {
        ::unlink(path.c_str());
        return error{errno_message("cannot allocate " + std::to_string(l.size) + " bytes for " + path, err)};
    }
    // MAP_POPULATE: fault every page in now, not on a worker's hot path.
    void* base = ::mmap(nullptr, l.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED) {
        const int err = errno;
        ::unlink(path.c_str());
        return error{errno_message("cannot map " + path, err)};
    }
    struct stat st {};
    ::fstat(fd, &st);
    region._base = static_cast<std::byte*>(base);
    region._size = l.size;
    region._dev = st.st_dev;
    region._ino = st.st_ino;

    region_header& h = region.header();
    std::memset(static_cast<void*>(&h), 0, sizeof(h));
    h.layout_version = region_layout_version;
    h.protocol_version = protocol_version;
    h.size = l.size;
    h.creator_pid = ::getpid();
    h.start_time_ns = realtime_ns();
    h.message_size = message_size;
    h.command_ring_slots = config.command_ring_slots;
    h.event_ring_slots = config.event_ring_slots;
    h.ring_flags = config.multi_producer_events ? ring_flag_multi_producer_events : 0;
    h.command_ring_offset = l.command_ring_offset;
    h.command_ring_bytes = l.command_ring_bytes;
    h.event_ring_offset = l.event_ring_offset;
    h.event_ring_bytes = l.event_ring_bytes;
    h.counters_offset = l.counters_offset;
    h.counters_bytes = l.counters_bytes;
    h.state = static_cast<std::uint32_t>(region_state::initialising);
    h.next_event_sequence = 1;
    h.next_command_sequence = 1;
    static_cast<void>(set_text(h.name, config.name));
    initialise_counters(region._base, l.counters_offset, config.counters);
    // The magic last: an opener that sees it sees a complete header.
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(h.magic, region_magic, sizeof(h.magic));
    return region;
}

// ---- open ----

namespace {

std::string check_header(const region_header& h, std::uint64_t file_size, const std::string& path) {
    const std::string where = "region " + path + ": ";
    if (h.layout_version != region_layout_version) {
        return where + "layout version " + std::to_string(h.layout_version) + ", this program reads " +
               std::to_string(region_layout_version) + " (kwikd and this program come from different builds)";
    }
    if (h.protocol_version != protocol_version) {
        return where + "kwikd pid " + std::to_string(h.creator_pid) + " speaks command protocol " +
               std::to_string(h.protocol_version) + ", this program " + std::to_string(protocol_version);
    }
    if (h.size != file_size) {
        return where + "header says " + std::to_string(h.size) + " bytes, the file has " + std::to_string(file_size);
    }
    if (h.message_size != message_size) {
        return where + "message size " + std::to_string(h.message_size) + ", this program uses " +
               std::to_string(message_size);
    }
    const struct {
        const char* what;
        u64 offset;
        u64 bytes;
        u64 expected_bytes;
    } parts[] = {
        {"command ring", h.command_ring_offset, h.command_ring_bytes,
         power_of_two(h.command_ring_slots) ? ring_bytes(h.command_ring_slots) : 0},
        {"event ring", h.event_ring_offset, h.event_ring_bytes,
         power_of_two(h.event_ring_slots) ? ring_bytes(h.event_ring_slots) : 0},
    };
    for (const auto& p : parts) {
        if (p.expected_bytes == 0 || p.bytes != p.expected_bytes || p.offset % RTE_CACHE_LINE_SIZE != 0 ||
            p.offset < sizeof(region_header) || p.offset > h.size || p.bytes > h.size - p.offset) {
            return where + p.what + " at offset " + std::to_string(p.offset) + " (" + std::to_string(p.bytes) +
                   " bytes) is malformed or outside the region";
        }
    }
    const u64 cmd_end = h.command_ring_offset + h.command_ring_bytes;
    const u64 evt_end = h.event_ring_offset + h.event_ring_bytes;
    const bool disjoint = (cmd_end <= h.event_ring_offset || evt_end <= h.command_ring_offset) &&
                          cmd_end <= h.counters_offset && evt_end <= h.counters_offset;
    if (!disjoint) {
        return where + "rings and counters overlap";
    }
    return {};
}

} // namespace

result<shm_region> shm_region::open(std::string_view name, const open_options& options) {
    if (std::string bad = check_region_name(name); !bad.empty()) {
        return error{std::move(bad)};
    }
    shm_region region;
    region._name = std::string(name);
    region._access = options.mode;
    const std::string path = join_path(options.directory, name);
    region._path = path;
    // The region before the control lock: "is kwikd running?" is the likelier answer, and in a
    // directory the control process cannot write it could not create the lock file anyway.
    const bool rw = options.mode == access::read_write;
    const int fd = ::open(path.c_str(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        const int err = errno;
        std::string msg = open_failure("cannot open shared-memory region", path, err);
        if (err == ENOENT) {
            msg += " (is kwikd running with shm name '" + region._name + "' and shm_directory '" +
                   options.directory + "'?)";
        }
        return error{std::move(msg)};
    }
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    if (rw) {
        region._lock_path = join_path(options.lock_directory, region._name + ".ctl.lock");
        auto lock = take_lock(region._lock_path, 0600, keep_group, false, "a control process", name);
        if (!lock) {
            return error{lock.message()};
        }
        region._lock_fd = *lock;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return error{errno_message("cannot stat " + path, errno)};
    }
    const auto file_size = static_cast<u64>(st.st_size);
    if (file_size < page_size) {
        return error{"region " + path + " is " + std::to_string(file_size) +
                     " bytes: kwikd is still creating it (try again) or it is not a kwik region"};
    }
    void* base = ::mmap(nullptr, file_size, PROT_READ | (rw ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        return error{errno_message("cannot map " + path, errno)};
    }
    region._base = static_cast<std::byte*>(base);
    region._size = file_size;
    region._dev = st.st_dev;
    region._ino = st.st_ino;

    const region_header& h = region.header();
    char magic[8];
    std::memcpy(magic, h.magic, sizeof(magic));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (std::memcmp(magic, region_magic, sizeof(magic)) != 0) {
        static constexpr char zero[8] = {};
        if (std::memcmp(magic, zero, sizeof(zero)) == 0) {
            return error{"region " + path + ": kwikd is still creating it (no magic yet); try again"};
        }
        return error{"region " + path + ": bad magic (expected KWIKSHM1): not a kwik shared-memory region"};
    }
    if (std::string bad = check_header(h, file_size, path); !bad.empty()) {
        return error{std::move(bad)};
    }
    if (std::string bad = check_counters_region(region._base, h.counters_offset, h.counters_bytes, file_size);
        !bad.empty()) {
        return error{"region " + path + ": " + bad};
    }
    const auto state = static_cast<region_state>(load_state(h));
    if (state == region_state::initialising) {
        return error{"region " + path + ": kwikd pid " + std::to_string(h.creator_pid) +
                     " is still initialising it; try again"};
    }
    if (options.require_ready && state != region_state::ready) {
        return error{"region " + path + ": kwikd pid " + std::to_string(h.creator_pid) + " is " +
                     std::string(to_string(state))};
    }
    if (rw) {
        region_header& wh = region.header();
        std::atomic_ref<std::int64_t>(wh.control_pid).store(::getpid(), std::memory_order_relaxed);
        std::atomic_ref<std::uint64_t>(wh.control_attach_count).fetch_add(1, std::memory_order_relaxed);
    }
    return region;
}

// ---- lifetime ----

shm_region::shm_region(shm_region&& other) noexcept
    : _name(std::move(other._name)), _path(std::move(other._path)), _lock_path(std::move(other._lock_path)), _base(other._base), _size(other._size),
      _lock_fd(other._lock_fd), _access(other._access), _creator(other._creator),
      _unlink_on_close(other._unlink_on_close), _dev(other._dev), _ino(other._ino) {
    other._base = nullptr;
    other._size = 0;
    other._lock_fd = -1;
    other._creator = false;
}

shm_region& shm_region::operator=(shm_region&& other) noexcept {
    if (this != &other) {
        close();
        _name = std::move(other._name);
        _path = std::move(other._path);
        _lock_path = std::move(other._lock_path);
        _base = other._base;
        _size = other._size;
        _lock_fd = other._lock_fd;
        _access = other._access;
        _creator = other._creator;
        _unlink_on_close = other._unlink_on_close;
        _dev = other._dev;
        _ino = other._ino;
        other._base = nullptr;
        other._size = 0;
        other._lock_fd = -1;
        other._creator = false;
    }
    return *this;
}

shm_region::~shm_region() {
    close();
}

void shm_region::close() noexcept {
    if (_base != nullptr) {
        if (_creator) {
            set_state(region_state::stopped);
            if (_unlink_on_close) {
                struct stat st {};
                // Only our own region: a successor may already have replaced the name.
                if (::stat(_path.c_str(), &st) == 0 && st.st_dev == _dev && st.st_ino == _ino) {
                    ::unlink(_path.c_str());
                }
            }
        } else if (_access == access::read_write) {
            std::int64_t mine = ::getpid();
            std::atomic_ref<std::int64_t>(header().control_pid).compare_exchange_strong(mine, 0);
        }
        ::munmap(_base, _size);
        _base = nullptr;
        _size = 0;
    }
    release_lock(_lock_fd);
    _lock_fd = -1;
}

std::string shm_region::path() const {
    return _path;
}

region_state shm_region::state() const noexcept {
    return static_cast<region_state>(load_state(header()));
}

void shm_region::set_state(region_state s) noexcept {
    std::atomic_ref<std::uint32_t>(header().state).store(static_cast<std::uint32_t>(s), std::memory_order_release);
}

void shm_region::heartbeat(std::uint64_t now_ns) noexcept {
    std::atomic_ref<std::uint64_t>(header().heartbeat_ns).store(now_ns, std::memory_order_relaxed);
}

bool shm_region::is_stale() const {
    if (_base == nullptr) {
        return true;
    }
    struct stat st {};
    if (::stat(path().c_str(), &st) != 0 || st.st_dev != _dev || st.st_ino != _ino) {
        return true;
    }
    return state() == region_state::stopped;
}

} // namespace kwik::api
