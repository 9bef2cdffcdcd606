// The published interface end to end, across two processes: api_ring_ipc_peer plays kwikd (EAL
// started with --no-huge, region created, rings initialised with rte_ring_init) and this test
// plays the control process, which never starts EAL and links no DPDK library at all (it uses
// rte_ring's inline functions on the mapping). 1e5 commands go through one at a time (round-trip
// latency: p50, p99), then 1e6 pipelined, singly and in bursts of 32 (commands per second); each
// result is checked against its command. Then counters, a rejected command, a control-process
// restart and kwikd's shutdown.
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"

#ifndef KWIK_API_RING_PEER
#error "KWIK_API_RING_PEER must name the api_ring_ipc_peer executable"
#endif

namespace {

namespace api = kwik::api;
using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t round_trips = 100000;
constexpr std::uint64_t pipelined = 1000000;

std::string maps_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

api::five_tuple tuple() {
    api::ip_version v{};
    api::ip_address l{};
    api::ip_address r{};
    api::parse_address("2001:db8::1", v, l);
    api::parse_address("2001:db8::2", v, r);
    return api::make_tuple(api::ip_version::v6, l, 7707, r, 40000);
}

class ring_ipc_test : public ::testing::Test {
protected:
    void SetUp() override {
        char dir[] = "/tmp/kwik_api_ipc_XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        _lock_dir = dir;
        _name = "kwik_ipc_" + std::to_string(::getpid());
        // Keep the two spinning processes on different cores where there are two: EAL pins the
        // peer to lcore 0, this process goes to the last CPU it may use.
        cpu_set_t set;
        CPU_ZERO(&set);
        if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) >= 2) {
            int last = -1;
            for (int c = 0; c < CPU_SETSIZE; ++c) {
                last = CPU_ISSET(c, &set) ? c : last;
            }
            if (last > 0) {
                cpu_set_t one;
                CPU_ZERO(&one);
                CPU_SET(last, &one);
                ::sched_setaffinity(0, sizeof(one), &one);
            }
        }
        _peer = ::fork();
        ASSERT_GE(_peer, 0);
        if (_peer == 0) {
            ::execl(KWIK_API_RING_PEER, KWIK_API_RING_PEER, _name.c_str(), _lock_dir.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // Wait until kwikd has made the region ready (or died).
        std::string last_error;
        const auto deadline = clock_type::now() + std::chrono::seconds(30);
        while (clock_type::now() < deadline) {
            int status = 0;
            if (::waitpid(_peer, &status, WNOHANG) == _peer) {
                _peer = -1;
                FAIL() << "the peer exited before the region was ready, status " << status
                       << "; last open error: " << last_error;
            }
            api::open_options o;
            o.lock_directory = _lock_dir;
            auto region = api::shm_region::open(_name, o);
            if (region) {
                _region = std::move(*region);
                break;
            }
            last_error = region.message();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ASSERT_TRUE(_region.valid()) << "region never became ready: " << last_error;
        auto ctl = api::control_channel::attach(_region);
        ASSERT_TRUE(ctl.ok()) << ctl.message();
        _ctl = *ctl;
    }

    void TearDown() override {
        _region = api::shm_region{};
        if (_peer > 0) {
            ::kill(_peer, SIGKILL);
            ::waitpid(_peer, nullptr, 0);
        }
        ::shm_unlink(("/" + _name).c_str());
        std::filesystem::remove_all(_lock_dir);
    }

    // One command, then spin until its event. False on a timeout (kwikd gone).
    bool exchange(api::command& c, api::event& e) {
        const auto deadline = clock_type::now() + std::chrono::seconds(10);
        while (!_ctl.try_send(c)) {
            if (clock_type::now() > deadline) {
                return false;
            }
        }
        std::uint32_t spins = 0;
        while (!_ctl.try_receive(e)) {
            if ((++spins & 0xFFFF) == 0 && clock_type::now() > deadline) {
                return false;
            }
        }
        return true;
    }

    std::string _lock_dir;
    std::string _name;
    pid_t _peer = -1;
    api::shm_region _region;
    api::control_channel _ctl;
};

TEST_F(ring_ipc_test, control_process_without_eal_drives_kwikd) {
    // This process has no DPDK library mapped (so certainly no EAL); the peer has EAL.
    const std::string mine = maps_of(::getpid());
    EXPECT_EQ(mine.find("librte_"), std::string::npos) << "the control side must not load DPDK libraries";
    const std::string theirs = maps_of(_peer);
    EXPECT_NE(theirs.find("librte_eal"), std::string::npos) << "the peer should run EAL";
    EXPECT_EQ(_region.header().creator_pid, _peer);

    // ---- 1e5 round trips, one command in flight ----
    std::vector<std::uint32_t> rtt_ns;
    rtt_ns.reserve(round_trips);
    std::uint64_t mismatches = 0;
    api::command c = api::make_add_path(1, 0, tuple());
    for (std::uint64_t i = 1; i <= round_trips; ++i) {
        c.add_path.connection_id = i;
        c.add_path.path_id = i & 0xFF;
        api::event e{};
        const auto t0 = clock_type::now();
        ASSERT_TRUE(exchange(c, e)) << "no answer to command " << i;
        const auto t1 = clock_type::now();
        rtt_ns.push_back(
            static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        mismatches += e.header.type != api::message_type::command_result ||
                      e.header.ack_sequence != c.header.sequence || e.header.sequence != i ||
                      e.command_result.status != api::result_status::ok || e.command_result.connection_id != i ||
                      e.command_result.path_id != (i & 0xFF);
    }
    EXPECT_EQ(mismatches, 0u);
    std::vector<std::uint32_t> sorted = rtt_ns;
    std::sort(sorted.begin(), sorted.end());
    const auto pct = [&](double p) { return sorted[static_cast<std::size_t>(p * (sorted.size() - 1))]; };
    std::printf("round trip (command + command_result, 1e5, one in flight): p50 %u ns, p90 %u ns, p99 %u ns, "
                "max %u ns\n",
                pct(0.50), pct(0.90), pct(0.99), sorted.back());
    RecordProperty("rtt_p50_ns", static_cast<int>(pct(0.50)));
    RecordProperty("rtt_p99_ns", static_cast<int>(pct(0.99)));

    // ---- 1e6 pipelined, twice: one command per try_send, then bursts of 32 ----
    for (const std::size_t burst : {std::size_t{1}, std::size_t{32}}) {
        std::uint64_t sent = 0;
        std::uint64_t received = 0;
        std::uint64_t first_seq = 0;
        std::uint64_t out_of_order = 0;
        std::vector<api::command> batch(burst, api::make_set_windows(1, api::window_scope::connection, 0, 1));
        std::vector<api::event> events(64);
        const auto t0 = clock_type::now();
        const auto deadline = t0 + std::chrono::seconds(120);
        while (received < pipelined && clock_type::now() < deadline) {
            for (int k = 0; k < 64 && sent < pipelined; k += static_cast<int>(burst)) {
                const std::size_t want = std::min<std::uint64_t>(burst, pipelined - sent);
                for (std::size_t j = 0; j < want; ++j) {
                    batch[j].set_windows.window_bytes = sent + j + 1;
                }
                const unsigned n =
                    burst == 1 ? (_ctl.try_send(batch[0]) ? 1u : 0u) : _ctl.send_burst(std::span(batch.data(), want));
                first_seq = sent == 0 && n != 0 ? batch[0].header.sequence : first_seq;
                sent += n;
                if (n < want) {
                    break;
                }
            }
            const unsigned n = _ctl.receive_burst(events);
            for (unsigned k = 0; k < n; ++k) {
                out_of_order += events[k].header.ack_sequence != first_seq + received;
                ++received;
            }
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
        ASSERT_EQ(received, pipelined) << "timed out";
        EXPECT_EQ(out_of_order, 0u) << "results must come back in command order";
        const double per_second = static_cast<double>(pipelined) / seconds;
        std::printf("pipelined, %s: %llu commands and their results in %.3f s: %.2f M commands/s "
                    "(%.2f M messages/s counting both directions)\n",
                    burst == 1 ? "try_send one at a time" : "send_burst of 32",
                    static_cast<unsigned long long>(pipelined), seconds, per_second / 1e6, 2 * per_second / 1e6);
        RecordProperty(burst == 1 ? "commands_per_second_single" : "commands_per_second_burst32",
                       static_cast<int>(per_second));
    }

    // ---- counters: kwikd publishes, this process reads without locks ----
    api::command rc = api::make_request_counters();
    api::event ready{};
    ASSERT_TRUE(exchange(rc, ready));
    EXPECT_EQ(ready.header.type, api::message_type::counters_ready);
    EXPECT_EQ(ready.header.ack_sequence, rc.header.sequence);
    EXPECT_EQ(ready.counters_ready.epoch, 1u);
    auto reader = api::counters_reader::attach(_region);
    ASSERT_TRUE(reader.ok()) << reader.message();
    EXPECT_EQ(reader->epoch(), 1u);
    const api::counters_totals totals = reader->read_totals();
    EXPECT_EQ(totals.workers_read, 1u);
    EXPECT_EQ(totals.worker.commands_applied, round_trips + 2 * pipelined + 1);

    // ---- a bad command comes back rejected, with the field named ----
    api::command bad = api::make_add_path(5, api::max_path_id + 1, tuple());
    api::event rejected{};
    ASSERT_TRUE(exchange(bad, rejected));
    EXPECT_EQ(rejected.command_result.status, api::result_status::invalid_command);
    EXPECT_EQ(api::get_text(rejected.command_result.reason), "add_path.path_id: 4611686018427387904 is above 2^62-1");
}

TEST_F(ring_ipc_test, control_process_restart_and_kwikd_shutdown) {
    api::command c = api::make_remove_connection(3);
    api::event e{};
    ASSERT_TRUE(exchange(c, e));
    EXPECT_EQ(c.header.sequence, 1u);

    // The control process restarts: kwikd is not disturbed and the numbering continues.
    _region = api::shm_region{};
    api::open_options o;
    o.lock_directory = _lock_dir;
    auto again = api::shm_region::open(_name, o);
    ASSERT_TRUE(again.ok()) << again.message();
    _region = std::move(*again);
    auto ctl = api::control_channel::attach(_region);
    ASSERT_TRUE(ctl.ok()) << ctl.message();
    _ctl = *ctl;
    EXPECT_EQ(_region.header().control_attach_count, 2u);
    ASSERT_TRUE(exchange(c, e));
    EXPECT_EQ(c.header.sequence, 2u);
    EXPECT_EQ(e.header.ack_sequence, 2u);

    // A second kwikd on the same name is refused, naming the running one.
    api::region_config config;
    config.name = _name;
    config.lock_directory = _lock_dir;
    auto second = api::shm_region::create(config);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.message().find("is locked by pid " + std::to_string(_peer)), std::string::npos)
        << second.message();

    // kwikd shuts down cleanly on SIGTERM: region stopped and unlinked, our mapping still readable.
    ASSERT_EQ(::kill(_peer, SIGTERM), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(_peer, &status, 0), _peer);
    _peer = -1;
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(_region.state(), api::region_state::stopped);
    EXPECT_TRUE(_region.is_stale());
    auto reader = api::counters_reader::attach(_region);
    ASSERT_TRUE(reader.ok()) << reader.message();
    EXPECT_EQ(reader->read_totals().worker.commands_applied, 2u) << "final counters published at shutdown";
}

} // namespace
