// The shared-memory region (dataplane/api/shm_region.hpp): create and open, the header, the
// lock that refuses a second kwikd (naming its pid) and a second control process, read-only
// mappings, stale regions after a kwikd restart, and the error message for each way of failing.
// No EAL: rte_ring_init (via dataplane_channel::create) does not need it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"

namespace {

namespace api = kwik::api;

class shm_region_test : public ::testing::Test {
protected:
    void SetUp() override {
        char dir[] = "/tmp/kwik_api_locks_XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        _lock_dir = dir;
        static std::atomic<int> counter{0};
        _name = "kwik_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    }
    void TearDown() override {
        ::shm_unlink(("/" + _name).c_str());
        std::filesystem::remove_all(_lock_dir);
    }

    api::region_config config() const {
        api::region_config c;
        c.name = _name;
        c.lock_directory = _lock_dir;
        c.command_ring_slots = 64;
        c.event_ring_slots = 64;
        c.counters.workers = 2;
        c.counters.ports = 2;
        c.counters.max_connections = 16;
        c.counters.max_paths = 32;
        return c;
    }
    api::open_options options(api::access mode = api::access::read_write) const {
        api::open_options o;
        o.mode = mode;
        o.lock_directory = _lock_dir;
        return o;
    }
    // kwikd's start-up: the region, then its rings (which makes it ready).
    api::shm_region create_ready() {
        auto region = api::shm_region::create(config());
        EXPECT_TRUE(region.ok()) << region.message();
        if (!region) {
            return {};
        }
        auto channel = api::dataplane_channel::create(*region);
        EXPECT_TRUE(channel.ok()) << channel.message();
        return std::move(*region);
    }
    std::string shm_file() const { return "/dev/shm/" + _name; }

    std::string _lock_dir;
    std::string _name;
};

TEST_F(shm_region_test, create_writes_the_header) {
    api::shm_region region = create_ready();
    ASSERT_TRUE(region.valid());
    const api::region_header& h = region.header();
    EXPECT_EQ(std::memcmp(h.magic, "KWIKSHM1", 8), 0);
    EXPECT_EQ(h.layout_version, api::region_layout_version);
    EXPECT_EQ(h.protocol_version, api::protocol_version);
    EXPECT_EQ(h.creator_pid, ::getpid());
    EXPECT_GT(h.start_time_ns, 1'600'000'000'000'000'000ull); // after 2020
    EXPECT_EQ(h.message_size, 256u);
    EXPECT_EQ(api::get_text(h.name), _name);
    EXPECT_EQ(region.state(), api::region_state::ready);

    auto layout = api::compute_layout(config());
    ASSERT_TRUE(layout.ok()) << layout.message();
    EXPECT_EQ(h.size, layout->size);
    EXPECT_EQ(h.command_ring_offset, layout->command_ring_offset);
    EXPECT_EQ(h.event_ring_offset, layout->event_ring_offset);
    EXPECT_EQ(h.counters_offset, layout->counters_offset);
    // Offsets, page-aligned and in order, within the file.
    EXPECT_EQ(h.command_ring_offset, 4096u);
    EXPECT_EQ(h.event_ring_offset % 4096, 0u);
    EXPECT_EQ(h.counters_offset % 4096, 0u);
    EXPECT_GE(h.event_ring_offset, h.command_ring_offset + h.command_ring_bytes);
    EXPECT_GE(h.counters_offset, h.event_ring_offset + h.event_ring_bytes);
    EXPECT_LE(h.counters_offset + h.counters_bytes, h.size);
    // rte_ring_get_memsize_elem(256, 64) = sizeof(struct rte_ring) (384) + 64 * 256.
    EXPECT_EQ(h.command_ring_bytes, 384u + 64u * 256u);

    struct stat st {};
    ASSERT_EQ(::stat(shm_file().c_str(), &st), 0);
    EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), h.size);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    std::ifstream lock(_lock_dir + "/" + _name + ".lock");
    std::string pid;
    lock >> pid;
    EXPECT_EQ(pid, std::to_string(::getpid()));
}

TEST_F(shm_region_test, mode_is_applied_despite_umask) {
    const mode_t old = ::umask(077);
    api::region_config c = config();
    c.mode = 0640;
    auto region = api::shm_region::create(c);
    ::umask(old);
    ASSERT_TRUE(region.ok()) << region.message();
    struct stat st {};
    ASSERT_EQ(::stat(shm_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(shm_region_test, second_kwikd_in_this_process_is_refused_with_the_pid) {
    api::shm_region first = create_ready();
    ASSERT_TRUE(first.valid());
    auto second = api::shm_region::create(config());
    ASSERT_FALSE(second.ok());
    const std::string& m = second.message();
    EXPECT_NE(m.find("kwikd for shared-memory region '" + _name + "' is already running"), std::string::npos) << m;
    EXPECT_NE(m.find(_lock_dir + "/" + _name + ".lock is locked by pid " + std::to_string(::getpid())),
              std::string::npos)
        << m;
    // The first one is untouched.
    EXPECT_EQ(first.state(), api::region_state::ready);
    EXPECT_EQ(first.header().creator_pid, ::getpid());
}

TEST_F(shm_region_test, second_kwikd_in_another_process_names_the_holder) {
    int to_parent[2];
    int to_child[2];
    ASSERT_EQ(::pipe(to_parent), 0);
    ASSERT_EQ(::pipe(to_child), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto region = api::shm_region::create(config());
        char ok = region.ok() ? 'y' : 'n';
        if (region) {
            auto channel = api::dataplane_channel::create(*region);
            ok = channel.ok() ? 'y' : 'n';
        }
        [[maybe_unused]] auto w = ::write(to_parent[1], &ok, 1);
        char go = 0;
        [[maybe_unused]] auto r = ::read(to_child[0], &go, 1);
        ::_exit(0); // no destructors: the region stays, as after a crash
    }
    char ok = 0;
    ASSERT_EQ(::read(to_parent[0], &ok, 1), 1);
    ASSERT_EQ(ok, 'y');

    auto refused = api::shm_region::create(config());
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("is locked by pid " + std::to_string(child)), std::string::npos)
        << refused.message();

    // The control process can attach to the child's region meanwhile.
    auto ctl = api::shm_region::open(_name, options());
    ASSERT_TRUE(ctl.ok()) << ctl.message();
    EXPECT_EQ(ctl->header().creator_pid, child);
    EXPECT_FALSE(ctl->is_stale());

    // The child dies without cleaning up: its lock goes with it, the region stays behind.
    const char go = 'x';
    ASSERT_EQ(::write(to_child[1], &go, 1), 1);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    struct stat st {};
    ASSERT_EQ(::stat(shm_file().c_str(), &st), 0) << "the crashed kwikd's region should still exist";

    // A new kwikd replaces the stale region; the attached control process notices.
    api::shm_region fresh = create_ready();
    ASSERT_TRUE(fresh.valid());
    EXPECT_EQ(fresh.header().creator_pid, ::getpid());
    EXPECT_TRUE(ctl->is_stale());
    *ctl = api::shm_region{}; // a restarted control process: the old one let go of the control lock
    ctl = api::shm_region::open(_name, options());
    ASSERT_TRUE(ctl.ok()) << ctl.message();
    EXPECT_EQ(ctl->header().creator_pid, ::getpid());
    EXPECT_FALSE(ctl->is_stale());
    for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) {
        ::close(fd);
    }
}

TEST_F(shm_region_test, open_before_the_rings_are_ready_is_refused) {
    auto region = api::shm_region::create(config());
    ASSERT_TRUE(region.ok()) << region.message();
    auto early = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_FALSE(early.ok());
    EXPECT_NE(early.message().find("kwikd pid " + std::to_string(::getpid()) + " is still initialising it"),
              std::string::npos)
        << early.message();
    auto channel = api::dataplane_channel::create(*region);
    ASSERT_TRUE(channel.ok()) << channel.message();
    auto later = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_TRUE(later.ok()) << later.message();
    // Rings are initialised once.
    auto again = api::dataplane_channel::create(*region);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.message().find("is ready, its rings were initialised already"), std::string::npos)
        << again.message();
}

TEST_F(shm_region_test, one_control_process_at_a_time_readers_unlimited) {
    api::shm_region kwikd = create_ready();
    auto ctl = api::shm_region::open(_name, options());
    ASSERT_TRUE(ctl.ok()) << ctl.message();
    EXPECT_EQ(kwikd.header().control_pid, ::getpid());
    EXPECT_EQ(kwikd.header().control_attach_count, 1u);

    auto second = api::shm_region::open(_name, options());
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.message().find("a control process for shared-memory region '" + _name + "' is already running"),
              std::string::npos)
        << second.message();
    EXPECT_NE(second.message().find(".ctl.lock is locked by pid " + std::to_string(::getpid())), std::string::npos)
        << second.message();

    auto r1 = api::shm_region::open(_name, options(api::access::read_only));
    auto r2 = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_TRUE(r1.ok()) << r1.message();
    EXPECT_TRUE(r2.ok()) << r2.message();

    // Closing the control process frees the lock: a restarted one attaches.
    *ctl = api::shm_region{};
    EXPECT_EQ(kwikd.header().control_pid, 0);
    auto restarted = api::shm_region::open(_name, options());
    ASSERT_TRUE(restarted.ok()) << restarted.message();
    EXPECT_EQ(kwikd.header().control_attach_count, 2u);
}

TEST_F(shm_region_test, read_only_mapping_cannot_be_written) {
    api::shm_region kwikd = create_ready();
    auto reader = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_TRUE(reader.ok()) << reader.message();
    EXPECT_EQ(reader->mode(), api::access::read_only);
    EXPECT_EQ(reader->header().creator_pid, ::getpid());
    auto* state = reinterpret_cast<volatile std::uint32_t*>(&reader->header().state);
    // SIGSEGV (under AddressSanitizer, its report and exit(1) instead).
    EXPECT_DEATH(*state = 3, "");
    // A read-only mapping cannot carry commands.
    auto channel = api::control_channel::attach(*reader);
    ASSERT_FALSE(channel.ok());
    EXPECT_NE(channel.message().find("must be opened read-write"), std::string::npos) << channel.message();
}

TEST_F(shm_region_test, missing_region_names_the_file_and_errno) {
    auto r = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("cannot open shared-memory region /dev/shm/" + _name + ": No such file or directory"),
              std::string::npos)
        << r.message();
    EXPECT_NE(r.message().find("is kwikd running with shm name '" + _name + "' and shm_directory '/dev/shm'?"),
              std::string::npos)
        << r.message();
}

// [kwikd] shm_directory and shm_group: the region is <directory>/<name>; kwikd makes its own lock
// and the control lock with the region's mode and group, so that a control process in that
// group can open them in a directory it cannot write (systemd's /run/kwik, root:kwik 0750).
TEST_F(shm_region_test, region_in_a_directory_with_group_and_mode) {
    api::region_config c = config();
    c.directory = _lock_dir;
    c.mode = 0660;
    // Root may give the files any group; others only one of their own.
    const gid_t group = ::geteuid() == 0 ? 65534 : ::getegid();
    c.group = group;
    auto region = api::shm_region::create(c);
    ASSERT_TRUE(region.ok()) << region.message();
    ASSERT_TRUE(api::dataplane_channel::create(*region).ok());
    const std::string path = _lock_dir + "/" + _name;
    EXPECT_EQ(region->path(), path);
    EXPECT_FALSE(std::filesystem::exists(shm_file())) << "nothing in /dev/shm";
    for (const std::string& f : {path, path + ".lock", path + ".ctl.lock"}) {
        struct stat st {};
        ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
        EXPECT_EQ(st.st_mode & 07777, 0660u) << f;
        EXPECT_EQ(st.st_gid, group) << f;
    }

    // Openers name the directory; the default one does not hold it.
    auto elsewhere = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_FALSE(elsewhere.ok());
    EXPECT_NE(elsewhere.message().find("cannot open shared-memory region /dev/shm/" + _name), std::string::npos);
    api::open_options o = options();
    o.directory = _lock_dir;
    auto ctl = api::shm_region::open(_name, o);
    ASSERT_TRUE(ctl.ok()) << ctl.message();
    EXPECT_EQ(ctl->path(), path);
    EXPECT_FALSE(ctl->is_stale());
    // The control process leaves the control lock's mode alone (kwikd's 0660 lets the next one in).
    struct stat st {};
    ASSERT_EQ(::stat((path + ".ctl.lock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    *ctl = api::shm_region{};
    *region = api::shm_region{};
    EXPECT_FALSE(std::filesystem::exists(path)) << "kwikd removes its region on close";
}

TEST_F(shm_region_test, group_not_given_names_the_file_and_field) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "root may give a file any group";
    }
    api::region_config c = config();
    c.directory = _lock_dir;
    c.group = 0; // root's group, which this user is not in
    auto r = api::shm_region::create(c);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("(shm_group): Operation not permitted"), std::string::npos) << r.message();
}

TEST_F(shm_region_test, missing_lock_directory_names_it) {
    api::region_config c = config();
    c.lock_directory = _lock_dir + "/absent";
    auto r = api::shm_region::create(c);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("cannot open lock file " + c.lock_directory + "/" + _name +
                               ".lock: No such file or directory"),
              std::string::npos)
        << r.message();
}

TEST_F(shm_region_test, bad_names_and_configs_name_the_field) {
    const struct {
        std::string name;
        const char* contains;
    } names[] = {
        {"", "must be 1..64 characters"},
        {std::string(65, 'k'), "must be 1..64 characters"},
        {"a/b", "character '/' not allowed"},
        {"kwik.lock", "character '.' not allowed"},
    };
    for (const auto& row : names) {
        api::region_config c = config();
        c.name = row.name;
        auto r = api::shm_region::create(c);
        ASSERT_FALSE(r.ok()) << row.name;
        EXPECT_NE(r.message().find(row.contains), std::string::npos) << r.message();
        auto o = api::shm_region::open(row.name, options(api::access::read_only));
        ASSERT_FALSE(o.ok());
        EXPECT_NE(o.message().find(row.contains), std::string::npos) << o.message();
    }
    api::region_config c = config();
    c.command_ring_slots = 1000;
    EXPECT_NE(api::shm_region::create(c).message().find("command_ring_slots: 1000 is not a power of two"),
              std::string::npos);
    c = config();
    c.event_ring_slots = 1u << 20;
    EXPECT_NE(api::shm_region::create(c).message().find("event_ring_slots: 1048576"), std::string::npos);
    c = config();
    c.counters.workers = 0;
    EXPECT_NE(api::shm_region::create(c).message().find("counters.workers: 0 is not 1..256"), std::string::npos);
    c = config();
    c.counters.max_paths = 0;
    EXPECT_NE(api::shm_region::create(c).message().find("counters.max_paths: 0"), std::string::npos);
    c = config();
    c.counters.workers = 256;
    c.counters.max_connections = 1u << 20;
    c.counters.max_paths = 1u << 20;
    EXPECT_NE(api::shm_region::create(c).message().find("above the 4 GiB limit"), std::string::npos);
    c = config();
    c.mode = 0400;
    EXPECT_NE(api::shm_region::create(c).message().find("mode: 0400 must be"), std::string::npos);
    // Nothing was left behind by the refused configs.
    struct stat st {};
    EXPECT_NE(::stat(shm_file().c_str(), &st), 0);
}

TEST_F(shm_region_test, foreign_or_truncated_files_are_refused) {
    const int fd = ::shm_open(("/" + _name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 10), 0);
    auto tiny = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(tiny.message().find("is 10 bytes"), std::string::npos) << tiny.message();

    ASSERT_EQ(::ftruncate(fd, 8192), 0);
    auto zero = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(zero.message().find("still creating it (no magic yet)"), std::string::npos) << zero.message();

    ASSERT_EQ(::pwrite(fd, "NOTKWIK!", 8, 0), 8);
    auto foreign = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(foreign.message().find("bad magic (expected KWIKSHM1): not a kwik shared-memory region"),
              std::string::npos)
        << foreign.message();
    ::close(fd);
}

TEST_F(shm_region_test, version_and_layout_mismatches_are_refused) {
    api::shm_region kwikd = create_ready();
    api::region_header& h = kwikd.header();

    h.protocol_version = api::protocol_version + 1;
    auto proto = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(
        proto.message().find("kwikd pid " + std::to_string(::getpid()) + " speaks command protocol " + std::to_string(api::protocol_version + 1) + ", this program " + std::to_string(api::protocol_version)),
        std::string::npos)
        << proto.message();
    h.protocol_version = api::protocol_version;

    h.layout_version = 99;
    auto layout = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(layout.message().find("layout version 99, this program reads " + std::to_string(api::region_layout_version)), std::string::npos) << layout.message();
    h.layout_version = api::region_layout_version;

    const auto saved = h.event_ring_offset;
    h.event_ring_offset = h.size - 64;
    auto off = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(off.message().find("event ring at offset"), std::string::npos) << off.message();
    h.event_ring_offset = saved;

    auto* counters = kwikd.at<api::counters_header>(h.counters_offset);
    counters->magic[0] = 'X';
    auto cnt = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(cnt.message().find("counters region: bad magic"), std::string::npos) << cnt.message();
    counters->magic[0] = 'K';

    // A kwikd of another build: the counters layout version is named, and why it differs.
    counters->layout_version = api::counters_layout_version - 1;
    auto old = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_NE(old.message().find("counters region: layout version " + std::to_string(api::counters_layout_version - 1) +
                                 ", this program reads " + std::to_string(api::counters_layout_version) +
                                 " (kwikd and this program come from different builds)"),
              std::string::npos)
        << old.message();
    counters->layout_version = api::counters_layout_version;

    auto fine = api::shm_region::open(_name, options(api::access::read_only));
    EXPECT_TRUE(fine.ok()) << fine.message();
}

TEST_F(shm_region_test, clean_shutdown_unlinks_and_readers_see_it_stale) {
    auto reader = [&] {
        api::shm_region kwikd = create_ready();
        auto r = api::shm_region::open(_name, options(api::access::read_only));
        EXPECT_TRUE(r.ok()) << r.message();
        EXPECT_FALSE(r->is_stale());
        return std::move(*r);
    }();
    // kwikd closed its region: the name is gone, the reader's mapping still works and says stopped.
    struct stat st {};
    EXPECT_NE(::stat(shm_file().c_str(), &st), 0);
    EXPECT_TRUE(reader.is_stale());
    EXPECT_EQ(reader.state(), api::region_state::stopped);
    EXPECT_EQ(reader.header().creator_pid, ::getpid());
}

TEST_F(shm_region_test, kept_region_can_be_read_after_kwikd_stops) {
    api::region_config c = config();
    c.unlink_on_close = false;
    {
        auto region = api::shm_region::create(c);
        ASSERT_TRUE(region.ok()) << region.message();
        ASSERT_TRUE(api::dataplane_channel::create(*region).ok());
    }
    auto refused = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("is stopped"), std::string::npos) << refused.message();
    api::open_options o = options(api::access::read_only);
    o.require_ready = false;
    auto final_counters = api::shm_region::open(_name, o);
    ASSERT_TRUE(final_counters.ok()) << final_counters.message();
    EXPECT_EQ(final_counters->state(), api::region_state::stopped);
    EXPECT_TRUE(final_counters->is_stale());
}

TEST_F(shm_region_test, moved_region_keeps_its_lock) {
    api::shm_region a = create_ready();
    api::shm_region b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_TRUE(b.valid());
    EXPECT_FALSE(api::shm_region::create(config()).ok()) << "the lock must move with the region";
    b = api::shm_region{};
    auto again = api::shm_region::create(config());
    EXPECT_TRUE(again.ok()) << again.message();
}

TEST_F(shm_region_test, heartbeat_and_state_are_visible_to_readers) {
    api::shm_region kwikd = create_ready();
    auto reader = api::shm_region::open(_name, options(api::access::read_only));
    ASSERT_TRUE(reader.ok()) << reader.message();
    kwikd.heartbeat(123456789);
    kwikd.set_state(api::region_state::stopping);
    EXPECT_EQ(reader->header().heartbeat_ns, 123456789u);
    EXPECT_EQ(reader->state(), api::region_state::stopping);
    EXPECT_FALSE(reader->is_stale());
}

} // namespace
