// The command and event rings in the shared-memory region (dataplane/api/command_ring.hpp),
// without EAL on either side: rte_ring_init in the region, messages copied byte for byte,
// sequence numbers, a full ring, wrap-around, bursts, a control-process restart, several event
// producers, and two processes (fork) exchanging commands and results.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/shm_region.hpp"

namespace {

namespace api = kwik::api;

class command_ring_test : public ::testing::Test {
protected:
    void SetUp() override {
        char dir[] = "/tmp/kwik_api_locks_XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        _lock_dir = dir;
        static std::atomic<int> counter{0};
        _name = "kwik_ring_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    }
    void TearDown() override {
        _kwikd = api::shm_region{};
        ::shm_unlink(("/" + _name).c_str());
        std::filesystem::remove_all(_lock_dir);
    }
    api::region_config config(bool mp_events = false) const {
        api::region_config c;
        c.name = _name;
        c.lock_directory = _lock_dir;
        c.command_ring_slots = 16;
        c.event_ring_slots = 32;
        c.multi_producer_events = mp_events;
        c.counters.max_connections = 4;
        c.counters.max_paths = 4;
        return c;
    }
    // kwikd's side: the region and its rings.
    api::dataplane_channel start_kwikd(bool mp_events = false) {
        auto region = api::shm_region::create(config(mp_events));
        EXPECT_TRUE(region.ok()) << region.message();
        _kwikd = std::move(*region);
        auto channel = api::dataplane_channel::create(_kwikd);
        EXPECT_TRUE(channel.ok()) << channel.message();
        return channel ? *channel : api::dataplane_channel{};
    }
    // The control process's side.
    std::pair<api::shm_region, api::control_channel> start_control() {
        api::open_options o;
        o.lock_directory = _lock_dir;
        auto region = api::shm_region::open(_name, o);
        EXPECT_TRUE(region.ok()) << region.message();
        if (!region) {
            return {};
        }
        api::shm_region r = std::move(*region);
        auto channel = api::control_channel::attach(r);
        EXPECT_TRUE(channel.ok()) << channel.message();
        return {std::move(r), channel ? *channel : api::control_channel{}};
    }

    std::string _lock_dir;
    std::string _name;
    api::shm_region _kwikd;
};

api::five_tuple tuple() {
    api::ip_version v{};
    api::ip_address l{};
    api::ip_address r{};
    api::parse_address("10.0.0.1", v, l);
    api::parse_address("10.0.0.2", v, r);
    return api::make_tuple(api::ip_version::v4, l, 7707, r, 50000);
}

TEST_F(command_ring_test, rings_are_initialised_in_the_region) {
    start_kwikd();
    const api::region_header& h = _kwikd.header();
    const auto* commands = _kwikd.at<rte_ring>(h.command_ring_offset);
    const auto* events = _kwikd.at<rte_ring>(h.event_ring_offset);
    EXPECT_STREQ(commands->name, "kwik_commands");
    EXPECT_STREQ(events->name, "kwik_events");
    EXPECT_EQ(commands->size, 16u);
    EXPECT_EQ(rte_ring_get_capacity(commands), 15u);
    EXPECT_EQ(rte_ring_get_capacity(events), 31u);
    EXPECT_EQ(commands->prod.sync_type, RTE_RING_SYNC_ST);
    EXPECT_EQ(commands->cons.sync_type, RTE_RING_SYNC_ST);
    EXPECT_EQ(events->prod.sync_type, RTE_RING_SYNC_ST);
    EXPECT_EQ(commands->memzone, nullptr) << "no EAL memzone behind a ring in our region";
    // The layout reserved exactly what DPDK says a 256-byte element ring needs.
    EXPECT_EQ(static_cast<std::uint64_t>(rte_ring_get_memsize_elem(256, 16)), h.command_ring_bytes);
    EXPECT_EQ(static_cast<std::uint64_t>(rte_ring_get_memsize_elem(256, 32)), h.event_ring_bytes);
}

TEST_F(command_ring_test, command_and_result_round_trip_byte_for_byte) {
    api::dataplane_channel kwikd = start_kwikd();
    auto [region, ctl] = start_control();

    api::command sent = api::make_add_path(7, 3, tuple(), 0.5f);
    sent.add_path.max_bandwidth_mbps = 100;
    ASSERT_TRUE(ctl.try_send(sent));
    EXPECT_EQ(sent.header.sequence, 1u);
    EXPECT_EQ(ctl.commands_queued(), 1u);

    api::command got{};
    ASSERT_TRUE(kwikd.try_receive(got));
    EXPECT_EQ(std::memcmp(&got, &sent, sizeof(got)), 0);
    EXPECT_TRUE(api::validate(got).ok()) << api::validate(got).reason();
    EXPECT_EQ(ctl.last_taken_sequence(), 1u);
    EXPECT_FALSE(kwikd.try_receive(got)) << "ring should be empty";

    api::event result = api::make_command_result(got, api::result_status::unknown_connection, "no connection 7");
    ASSERT_TRUE(kwikd.try_send(result));
    EXPECT_EQ(result.header.sequence, 1u);
    api::event back{};
    ASSERT_TRUE(ctl.try_receive(back));
    EXPECT_EQ(std::memcmp(&back, &result, sizeof(back)), 0);
    EXPECT_EQ(back.header.ack_sequence, 1u);
    EXPECT_EQ(back.command_result.path_id, 3u);
    EXPECT_EQ(api::get_text(back.command_result.reason), "no connection 7");
    EXPECT_FALSE(ctl.try_receive(back));
}

TEST_F(command_ring_test, full_ring_refuses_without_numbering) {
    api::dataplane_channel kwikd = start_kwikd();
    auto [region, ctl] = start_control();
    for (std::uint64_t i = 1; i <= 15; ++i) {
        api::command c = api::make_remove_connection(i);
        ASSERT_TRUE(ctl.try_send(c)) << i;
        EXPECT_EQ(c.header.sequence, i);
    }
    api::command overflow = api::make_remove_connection(99);
    EXPECT_FALSE(ctl.try_send(overflow));
    EXPECT_FALSE(ctl.try_send(overflow));
    EXPECT_EQ(ctl.commands_queued(), 15u);
    api::command got{};
    ASSERT_TRUE(kwikd.try_receive(got));
    EXPECT_EQ(got.remove_connection.connection_id, 1u);
    ASSERT_TRUE(ctl.try_send(overflow));
    EXPECT_EQ(overflow.header.sequence, 16u) << "a refused send must not use up a sequence number";
    for (std::uint64_t i = 2; i <= 16; ++i) {
        ASSERT_TRUE(kwikd.try_receive(got));
        EXPECT_EQ(got.header.sequence, i);
    }
    EXPECT_EQ(ctl.commands_queued(), 0u);
}

TEST_F(command_ring_test, wrap_around_keeps_order_and_content) {
    api::dataplane_channel kwikd = start_kwikd();
    auto [region, ctl] = start_control();
    std::uint64_t next_expected = 1;
    for (std::uint64_t i = 1; i <= 1000; ++i) {
        api::command c = api::make_set_windows(i, api::window_scope::connection, 0, i * 4096);
        ASSERT_TRUE(ctl.try_send(c));
        if (i % 7 == 0) { // drain in uneven steps so that head and tail wrap at different points
            api::command got{};
            while (kwikd.try_receive(got)) {
                ASSERT_EQ(got.header.sequence, next_expected);
                ASSERT_EQ(got.set_windows.connection_id, next_expected);
                ASSERT_EQ(got.set_windows.window_bytes, next_expected * 4096);
                ++next_expected;
            }
        }
    }
    api::command got{};
    while (kwikd.try_receive(got)) {
        ASSERT_EQ(got.header.sequence, next_expected++);
    }
    EXPECT_EQ(next_expected, 1001u);
}

TEST_F(command_ring_test, bursts) {
    api::dataplane_channel kwikd = start_kwikd();
    auto [region, ctl] = start_control();
    std::vector<api::event> out(40);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = api::make_path_up(1, i, i * 1000);
    }
    // 31 fit.
    EXPECT_EQ(kwikd.events().enqueue_burst(out), 31u);
    std::vector<api::event> in(64);
    EXPECT_EQ(ctl.receive_burst(in), 31u);
    for (std::size_t i = 0; i < 31; ++i) {
        EXPECT_EQ(in[i].path_up.path_id, i);
        EXPECT_EQ(in[i].path_up.smoothed_rtt_ns, i * 1000);
    }
    EXPECT_EQ(ctl.receive_burst(in), 0u);
}

TEST_F(command_ring_test, control_process_restart_carries_on) {
    api::dataplane_channel kwikd = start_kwikd();
    {
        auto [region, ctl] = start_control();
        for (int i = 0; i < 3; ++i) {
            api::command c = api::make_request_counters();
            ASSERT_TRUE(ctl.try_send(c));
        }
    } // the control process exits; kwikd keeps running and sends events nobody reads yet
    api::command got{};
    ASSERT_TRUE(kwikd.try_receive(got));
    api::event e = api::make_command_result(got, api::result_status::ok);
    ASSERT_TRUE(kwikd.try_send(e));
    api::event down = api::make_path_down(5, 1, api::path_down_kind::down, "liveness timeout");
    ASSERT_TRUE(kwikd.try_send(down));

    auto [region, ctl] = start_control();
    api::command c = api::make_request_counters();
    ASSERT_TRUE(ctl.try_send(c));
    EXPECT_EQ(c.header.sequence, 4u) << "a restarted control process continues the numbering";
    api::event back{};
    ASSERT_TRUE(ctl.try_receive(back));
    EXPECT_EQ(back.header.type, api::message_type::command_result);
    EXPECT_EQ(back.header.ack_sequence, 1u);
    ASSERT_TRUE(ctl.try_receive(back));
    EXPECT_EQ(back.header.type, api::message_type::path_down);
    EXPECT_EQ(back.header.sequence, 2u);
    for (std::uint64_t seq = 2; seq <= 4; ++seq) {
        ASSERT_TRUE(kwikd.try_receive(got));
        EXPECT_EQ(got.header.sequence, seq);
    }
}

TEST_F(command_ring_test, corrupt_ring_header_is_refused) {
    start_kwikd();
    rte_ring* commands = _kwikd.at<rte_ring>(_kwikd.header().command_ring_offset);
    commands->size = 32;
    api::open_options o;
    o.lock_directory = _lock_dir;
    auto region = api::shm_region::open(_name, o);
    ASSERT_TRUE(region.ok()) << region.message();
    auto ctl = api::control_channel::attach(*region);
    ASSERT_FALSE(ctl.ok());
    EXPECT_NE(ctl.message().find("ring 'kwik_commands': size 32, the region header says 16"), std::string::npos)
        << ctl.message();
    commands->size = 16;
    commands->name[0] = 'x';
    ctl = api::control_channel::attach(*region);
    ASSERT_FALSE(ctl.ok());
    EXPECT_NE(ctl.message().find("not initialised"), std::string::npos) << ctl.message();
}

TEST_F(command_ring_test, several_event_producers) {
    api::dataplane_channel main_lcore = start_kwikd(true);
    auto second = api::dataplane_channel::attach(_kwikd);
    ASSERT_TRUE(second.ok()) << second.message();
    auto [region, ctl] = start_control();
    constexpr int per_producer = 5000;
    std::atomic<bool> go{false};
    auto produce = [&go](api::dataplane_channel channel, std::uint64_t connection) {
        while (!go.load()) {
        }
        for (int i = 0; i < per_producer; ++i) {
            api::event e = api::make_path_up(connection, static_cast<std::uint64_t>(i), 0);
            while (!channel.try_send(e)) {
                std::this_thread::yield();
            }
        }
    };
    std::thread a(produce, main_lcore, 1);
    std::thread b(produce, *second, 2);
    go = true;
    std::set<std::uint64_t> sequences;
    std::uint64_t next_path[3] = {0, 0, 0};
    int received = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (received < 2 * per_producer && std::chrono::steady_clock::now() < deadline) {
        api::event e{};
        if (!ctl.try_receive(e)) {
            std::this_thread::yield(); // three busy threads on a 2-core machine
            continue;
        }
        ++received;
        sequences.insert(e.header.sequence);
        const std::uint64_t conn = e.path_up.connection_id;
        ASSERT_TRUE(conn == 1 || conn == 2);
        EXPECT_EQ(e.path_up.path_id, next_path[conn]) << "each producer's events arrive in its order";
        next_path[conn] = e.path_up.path_id + 1;
    }
    a.join();
    b.join();
    EXPECT_EQ(received, 2 * per_producer);
    EXPECT_EQ(next_path[1], static_cast<std::uint64_t>(per_producer));
    EXPECT_EQ(next_path[2], static_cast<std::uint64_t>(per_producer));
    // Unique numbers; gaps where a full ring refused an event.
    EXPECT_EQ(sequences.size(), static_cast<std::size_t>(2 * per_producer));
}

// Waiting on the other process: spin a little, then give up the core (the unit suite runs
// many tests at once on a 2-core machine; a pure spin would need a context switch per message).
void wait_a_little(std::uint32_t& spins) {
    if (++spins > 64) {
        std::this_thread::yield();
    }
}

// Two processes, neither with EAL: the child is the control process (opens the region by name),
// the parent plays kwikd (answers every command with a command_result).
TEST_F(command_ring_test, two_processes_without_eal) {
    api::dataplane_channel kwikd = start_kwikd();
    constexpr std::uint64_t n = 10000;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int failures = 0;
        api::open_options o;
        o.lock_directory = _lock_dir;
        auto region = api::shm_region::open(_name, o);
        if (!region) {
            ::_exit(10);
        }
        auto ctl = api::control_channel::attach(*region);
        if (!ctl) {
            ::_exit(11);
        }
        for (std::uint64_t i = 1; i <= n; ++i) {
            api::command c = api::make_add_path(i, i % 64, tuple());
            std::uint32_t spins = 0;
            while (!ctl->try_send(c)) {
                wait_a_little(spins);
            }
            api::event e{};
            spins = 0;
            while (!ctl->try_receive(e)) {
                wait_a_little(spins);
            }
            failures += e.header.ack_sequence != c.header.sequence || e.command_result.connection_id != i ||
                        e.command_result.path_id != i % 64;
        }
        ::_exit(failures == 0 ? 0 : 12);
    }
    std::uint64_t answered = 0;
    std::uint64_t invalid = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::uint32_t spins = 0;
    while (answered < n && std::chrono::steady_clock::now() < deadline) {
        api::command c{};
        if (!kwikd.try_receive(c)) {
            wait_a_little(spins);
            continue;
        }
        spins = 0;
        invalid += api::validate(c).ok() ? 0 : 1;
        api::event e = api::make_command_result(c, api::result_status::ok);
        while (!kwikd.try_send(e)) {
        }
        ++answered;
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: open failed, 11: attach failed, 12: a result did not match";
    EXPECT_EQ(answered, n);
    EXPECT_EQ(invalid, 0u);
    EXPECT_EQ(_kwikd.header().last_command_sequence, n);
}

} // namespace
