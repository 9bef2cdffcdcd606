// kwik-cp's link to a real kwikd process (net_null port, --no-huge): it waits for kwikd to
// appear, adds a connection and a path and gets kwikd's answers; a restarted control process
// adopts what kwikd holds without touching it; a restarted kwikd gets the desired state again;
// a kwikd that stops answering makes commands time out with a reason; refusals are reported and
// the desired state follows what kwikd holds.
// Usage (meson passes it): controlplane_link_test <kwikd>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "controlplane/server/link/dataplane_link.hpp"
#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/shm_region.hpp"
#include "tests/integration/controlplane/kwikd_process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kwik;
using test::kwikd_process;

std::string g_kwikd;

cp::time_ns now_ns() {
    return static_cast<cp::time_ns>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

api::five_tuple tuple(std::uint16_t remote_port) {
    api::ip_version v{};
    api::ip_address l{};
    api::ip_address r{};
    api::parse_address("10.9.0.1", v, l);
    api::parse_address("10.9.0.2", v, r);
    return api::make_tuple(api::ip_version::v4, l, 7707, r, remote_port);
}

// Polls the link until cond holds or seconds pass.
bool poll_until(cp::dataplane_link& link, const std::function<bool()>& cond, double seconds = 20) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
        link.poll(now_ns());
        if (cond()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

// The answer to one command sent through the link.
struct answer_box {
    bool got = false;
    api::event e{};
    cp::dataplane_link::done sink() {
        return [this](const api::event& ev) {
            got = true;
            e = ev;
        };
    }
    api::result_status status() const { return e.command_result.status; }
    std::string reason() const { return std::string(api::get_text(e.command_result.reason)); }
};

class link_test : public ::testing::Test {
protected:
    void SetUp() override {
        name = "kwiklink" + std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::create_directories(dir);
    }
    void TearDown() override {
        if (HasFailure()) {
            test::print_logs(dir);
        }
        fs::remove_all(dir);
    }
    cp::link_config config() const {
        cp::link_config c;
        c.region_name = name;
        c.retry_interval = 50'000'000;
        c.command_timeout = 2'000'000'000;
        return c;
    }
    std::string name;
    fs::path dir;
};

cp::desired_connection connection_5() {
    cp::desired_connection c;
    c.id = 5;
    c.name = "upload-5";
    c.endpoint = api::endpoint_kind::discard;
    c.paths[1] = cp::desired_path{1, tuple(5001), 1.0f, 0, false};
    return c;
}

TEST_F(link_test, attaches_adopts_resyncs_and_times_out) {
    int attach_changes = 0;
    cp::link_callbacks cb;
    cb.on_attach_change = [&](bool) { ++attach_changes; };
    auto link = std::make_unique<cp::dataplane_link>(config(), cb);

    // No kwikd yet: the link waits, and commands wait with it.
    link->poll(now_ns());
    EXPECT_FALSE(link->attached());
    answer_box added;
    ASSERT_TRUE(link->add_connection(connection_5(), added.sink()).ok());
    EXPECT_FALSE(link->add_connection(connection_5()).ok()) << "a duplicate id is refused at once";

    auto kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return added.got; })) << "kwikd appeared and answered add_connection";
    EXPECT_EQ(added.status(), api::result_status::ok) << added.reason();
    EXPECT_TRUE(link->adopted());
    EXPECT_EQ(attach_changes, 1);

    // kwikd refuses a path whose local address it does not have: the desired state drops it.
    answer_box bad_path;
    cp::desired_path wrong{2, tuple(5002), 1.0f, 0, false};
    wrong.tuple.local.bytes[3] = 99; // 10.9.0.99
    ASSERT_TRUE(link->add_path(5, wrong, bad_path.sink()).ok());
    ASSERT_TRUE(poll_until(*link, [&] { return bad_path.got; }));
    EXPECT_EQ(bad_path.status(), api::result_status::invalid_command);
    EXPECT_NE(bad_path.reason().find("add_path.tuple.local"), std::string::npos) << bad_path.reason();
    ASSERT_NE(link->find(5), nullptr);
    EXPECT_EQ(link->find(5)->paths.size(), 1u) << "only the path kwikd accepted is desired";

    // Counters: the connection is in the region once the workers published.
    answer_box published;
    link->send(api::make_request_counters(), published.sink());
    ASSERT_TRUE(poll_until(*link, [&] { return published.got; }));
    EXPECT_EQ(published.e.header.type, api::message_type::counters_ready);
    auto totals = link->read_counters();
    ASSERT_TRUE(totals.has_value());
    ASSERT_EQ(totals->connections.size(), 1u);
    EXPECT_EQ(totals->connections[0].connection_id, 5u);

    // kwik-cp restarts: the new link adopts connection 5 and its path and sends nothing.
    link.reset();
    auto second = std::make_unique<cp::dataplane_link>(config(), cp::link_callbacks{});
    ASSERT_TRUE(poll_until(*second, [&] { return second->adopted(); }));
    ASSERT_NE(second->find(5), nullptr);
    EXPECT_EQ(second->find(5)->name, "upload-5");
    EXPECT_EQ(second->find("upload-5")->paths.count(1), 1u);
    EXPECT_EQ(second->counters().adopted_connections, 1u);
    EXPECT_EQ(second->counters().resync_commands, 0u);
    EXPECT_EQ(second->next_connection_id(), api::first_dynamic_connection_id) << "a control process numbers its own above kwikd's";

    // kwikd dies and comes back: the desired state is sent again.
    EXPECT_NE(kwikd->stop(SIGKILL), 0);
    kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*second, [&] { return second->counters().kwikd_restarts == 1 && second->adopted(); }));
    EXPECT_EQ(second->counters().resync_commands, 2u) << "add_connection and add_path";
    answer_box listed;
    second->send(api::make_list_state(), listed.sink());
    ASSERT_TRUE(poll_until(*second, [&] { return listed.got; }));
    EXPECT_EQ(listed.status(), api::result_status::ok);
    EXPECT_EQ(listed.reason(), "1 connections, 1 paths");
    ASSERT_TRUE(poll_until(*second, [&] { return second->waiting() == 0; })) << "the resync commands were answered";
    EXPECT_EQ(second->counters().commands_failed, 0u);

    // A kwikd that stops answering (stopped, not gone): the command fails after the timeout.
    kwikd->signal(SIGSTOP);
    answer_box late;
    ASSERT_TRUE(second->remove_path(5, 1, 0, late.sink()).ok());
    ASSERT_TRUE(poll_until(*second, [&] { return late.got; }, 10));
    EXPECT_EQ(late.status(), api::result_status::internal_error);
    EXPECT_NE(late.reason().find("did not answer"), std::string::npos) << late.reason();
    EXPECT_EQ(second->counters().commands_timed_out, 1u);
    kwikd->signal(SIGCONT);
    EXPECT_EQ(kwikd->stop(SIGTERM), 0) << "kwikd exits cleanly";
    ASSERT_TRUE(poll_until(*second, [&] { return !second->attached(); }));
}

// A connection's data key goes to kwikd after add_connection and again after a kwikd restart.
// kwikd holds it when it refuses another key for the phase (the phase is its current key) and
// accepts the same key again (unchanged); the key is never read back.
TEST_F(link_test, the_data_key_is_installed_and_resynced_after_a_kwikd_restart) {
    auto link = std::make_unique<cp::dataplane_link>(config(), cp::link_callbacks{});
    cp::desired_connection c = connection_5();
    std::array<std::uint8_t, api::aead_key_size> key{};
    key.fill(0x42);
    c.data_key.emplace(3, key, 0, 1u << 20, false);
    answer_box added;
    ASSERT_TRUE(link->add_connection(c, added.sink()).ok());
    auto kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return added.got && link->waiting() == 0; }));
    EXPECT_EQ(added.status(), api::result_status::ok) << added.reason();
    EXPECT_EQ(link->counters().commands_failed, 0u) << "set_connection_keys was accepted";

    auto held = [&](std::uint8_t fill) {
        std::uint8_t raw[api::aead_key_size];
        std::memset(raw, fill, sizeof raw);
        answer_box a;
        link->send(api::make_set_connection_keys(5, 3, raw, 0, 1u << 20, false), a.sink());
        EXPECT_TRUE(poll_until(*link, [&] { return a.got; }));
        return a;
    };
    EXPECT_EQ(held(0x43).status(), api::result_status::already_exists) << "phase 3 holds another key";
    EXPECT_EQ(held(0x42).status(), api::result_status::ok) << "the same key again: unchanged";

    EXPECT_NE(kwikd->stop(SIGKILL), 0);
    kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return link->counters().kwikd_restarts == 1 && link->adopted(); }));
    EXPECT_EQ(link->counters().resync_commands, 3u) << "add_connection, set_connection_keys and add_path";
    ASSERT_TRUE(poll_until(*link, [&] { return link->waiting() == 0; }));
    const answer_box other = held(0x43);
    EXPECT_EQ(other.status(), api::result_status::already_exists) << other.reason();
    EXPECT_NE(other.reason().find("set_connection_keys.key_phase: phase 3"), std::string::npos) << other.reason();
    EXPECT_EQ(kwikd->stop(SIGTERM), 0);
}

// on_kwikd_restarted: called for a new kwikd instance only (not the first attach, not a new
// link adopting), before the resync, which then leaves out what the owner forgot there; a
// command queued for the forgotten connection fails with the owner's reason.
TEST_F(link_test, a_connection_forgotten_on_a_kwikd_restart_is_not_pushed_again) {
    int restarts_seen = 0;
    cp::dataplane_link* self = nullptr;
    answer_box queued;
    cp::link_callbacks cb;
    cb.on_kwikd_restarted = [&] {
        ++restarts_seen;
        EXPECT_FALSE(self->unsent(5));
        EXPECT_TRUE(self->forget_connection(5, "kwikd restarted: connection 5 lost").ok());
        EXPECT_FALSE(self->forget_connection(5, "again").ok()) << "unknown now";
    };
    auto link = std::make_unique<cp::dataplane_link>(config(), cb);
    self = link.get();
    cp::desired_connection six = connection_5();
    six.id = 6;
    six.name = "upload-6";
    six.paths = {{1, cp::desired_path{1, tuple(5061), 1.0f, 0, false}}};
    ASSERT_TRUE(link->add_connection(connection_5()).ok());
    ASSERT_TRUE(link->add_connection(six).ok());
    EXPECT_TRUE(link->unsent(5)) << "no kwikd yet";
    auto kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return link->adopted() && link->waiting() == 0; }));
    EXPECT_EQ(restarts_seen, 0) << "the first attach is no restart";

    EXPECT_EQ(kwikd->stop(SIGTERM), 0);
    ASSERT_TRUE(poll_until(*link, [&] { return !link->attached(); }, 5)) << "a stopped kwikd is noticed";
    ASSERT_TRUE(link->add_path(5, cp::desired_path{2, tuple(5002), 1.0f, 0, false}, queued.sink()).ok());
    kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return link->counters().kwikd_restarts == 1 && link->adopted(); }));
    EXPECT_EQ(restarts_seen, 1);
    ASSERT_TRUE(queued.got);
    EXPECT_NE(queued.reason().find("kwikd restarted: connection 5 lost"), std::string::npos) << queued.reason();
    EXPECT_EQ(link->counters().resync_commands, 2u) << "connection 6 and its path only";
    ASSERT_TRUE(poll_until(*link, [&] { return link->waiting() == 0; }));
    EXPECT_EQ(link->find(5), nullptr);
    link.reset();

    auto fresh = std::make_unique<cp::dataplane_link>(config(), cb);
    self = fresh.get();
    ASSERT_TRUE(poll_until(*fresh, [&] { return fresh->adopted(); }));
    EXPECT_EQ(restarts_seen, 1) << "a new link adopting is no restart";
    EXPECT_EQ(fresh->find(5), nullptr) << "the new kwikd never got connection 5";
    ASSERT_NE(fresh->find(6), nullptr);
    EXPECT_EQ(fresh->find(6)->paths.size(), 1u);
    EXPECT_EQ(kwikd->stop(SIGTERM), 0);
}

// A path kwikd refuses because its tuple is bound elsewhere (conflict) is not kept in the
// desired state, so a resync after a kwikd restart cannot re-add it ahead of the tuple's owner;
// the link itself refuses a tuple another desired path holds, and more paths than the cap.
TEST_F(link_test, a_tuple_bound_elsewhere_is_never_desired) {
    cp::link_config cfg = config();
    cfg.max_paths_per_connection = 2;
    auto link = std::make_unique<cp::dataplane_link>(cfg, cp::link_callbacks{});
    auto kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    answer_box added, added6;
    ASSERT_TRUE(link->add_connection(connection_5(), added.sink()).ok());
    cp::desired_connection c6;
    c6.id = 6;
    c6.name = "upload-6";
    ASSERT_TRUE(link->add_connection(c6, added6.sink()).ok());
    ASSERT_TRUE(poll_until(*link, [&] { return added.got && added6.got && link->waiting() == 0; }));
    ASSERT_EQ(added6.status(), api::result_status::ok) << added6.reason();

    // Refused at once: connection 5's tuple for connection 6, and a third path for 5.
    const auto taken = link->add_path(6, cp::desired_path{1, tuple(5001), 1.0f, 0, false});
    ASSERT_FALSE(taken.ok());
    EXPECT_EQ(taken.message(), "path.tuple: bound already to connection 5 path 1");
    ASSERT_TRUE(link->add_path(5, cp::desired_path{2, tuple(5002), 1.0f, 0, false}).ok());
    const auto third = link->add_path(5, cp::desired_path{3, tuple(5003), 1.0f, 0, false});
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(third.message(), "connection 5 has its maximum of 2 paths");

    // A tuple kwikd holds for a path the link does not desire (sent around it): kwikd answers
    // conflict naming the holder, and the link drops the path from connection 6.
    answer_box raw;
    link->send(api::make_add_path(5, 9, tuple(6000), 1.0f), raw.sink());
    ASSERT_TRUE(poll_until(*link, [&] { return raw.got; }));
    ASSERT_EQ(raw.status(), api::result_status::ok) << raw.reason();
    answer_box phantom;
    ASSERT_TRUE(link->add_path(6, cp::desired_path{1, tuple(6000), 1.0f, 0, false}, phantom.sink()).ok());
    ASSERT_TRUE(poll_until(*link, [&] { return phantom.got; }));
    EXPECT_EQ(phantom.status(), api::result_status::conflict);
    EXPECT_EQ(phantom.reason(), "add_path.tuple: bound already to connection 5 path 9");
    EXPECT_TRUE(link->find(6)->paths.empty()) << "what kwikd refused is not desired";

    // kwikd restarts: the resync sends connections 5 (two paths) and 6 (none).
    EXPECT_NE(kwikd->stop(SIGKILL), 0);
    kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    ASSERT_TRUE(poll_until(*link, [&] { return link->counters().kwikd_restarts == 1 && link->adopted(); }));
    EXPECT_EQ(link->counters().resync_commands, 4u) << "two add_connection, two add_path";
    ASSERT_TRUE(poll_until(*link, [&] { return link->waiting() == 0; }));
    answer_box listed;
    link->send(api::make_list_state(), listed.sink());
    ASSERT_TRUE(poll_until(*link, [&] { return listed.got; }));
    EXPECT_EQ(listed.reason(), "2 connections, 2 paths");
    EXPECT_EQ(kwikd->stop(SIGTERM), 0);
}

} // namespace

// A restarted control process may add a connection before it has adopted kwikd's state, with
// an id kwikd holds under another name (an earlier control process's): adoption re-numbers
// ours and tells the owner; kwikd's is adopted untouched. A connection removed before kwikd
// was reached sends nothing, so it cannot remove kwikd's connection of the same id.
TEST_F(link_test, an_id_kwikd_holds_under_another_name_is_renumbered_not_removed) {
    auto kwikd = std::make_unique<kwikd_process>(g_kwikd, name, dir);
    const std::uint64_t first = api::first_dynamic_connection_id;
    {
        auto earlier = std::make_unique<cp::dataplane_link>(config(), cp::link_callbacks{});
        cp::desired_connection c = connection_5();
        c.id = earlier->next_connection_id();
        ASSERT_EQ(c.id, first);
        c.name = "earlier";
        ASSERT_TRUE(earlier->add_connection(c).ok());
        ASSERT_TRUE(poll_until(*earlier, [&] { return earlier->adopted() && earlier->waiting() == 0; }));
        ASSERT_EQ(earlier->counters().commands_failed, 0u);
    }

    std::vector<std::pair<std::uint64_t, std::uint64_t>> renumbered;
    cp::link_callbacks cb;
    cb.on_connection_renumbered = [&](std::uint64_t from, std::uint64_t to) { renumbered.emplace_back(from, to); };
    auto link = std::make_unique<cp::dataplane_link>(config(), cb);
    cp::desired_connection ours = connection_5();
    ours.id = link->next_connection_id(); // nothing adopted yet: the same id as the earlier one's
    ASSERT_EQ(ours.id, first);
    ours.name = "ours";
    ours.paths.clear();
    ours.paths[1] = cp::desired_path{1, tuple(5011), 1.0f, 0, false};
    answer_box added;
    ASSERT_TRUE(link->add_connection(ours, added.sink()).ok());
    cp::desired_connection gone = ours; // added and removed while detached: never sent
    gone.id = first + 7;
    gone.name = "gone";
    gone.paths.clear();
    answer_box gone_added, gone_removed;
    ASSERT_TRUE(link->add_connection(gone, gone_added.sink()).ok());
    ASSERT_TRUE(link->remove_connection(gone.id, 0, gone_removed.sink()).ok());
    EXPECT_TRUE(gone_added.got && gone_removed.got) << "answered at once";
    EXPECT_EQ(gone_removed.status(), api::result_status::ok);

    ASSERT_TRUE(poll_until(*link, [&] { return added.got && link->waiting() == 0; }));
    EXPECT_EQ(added.status(), api::result_status::ok) << added.reason();
    ASSERT_EQ(renumbered.size(), 1u);
    EXPECT_EQ(renumbered[0], std::make_pair(first, first + 1));
    ASSERT_NE(link->find(first), nullptr);
    EXPECT_EQ(link->find(first)->name, "earlier");
    ASSERT_NE(link->find(first + 1), nullptr);
    EXPECT_EQ(link->find(first + 1)->name, "ours");
    EXPECT_EQ(link->find(first + 1)->paths.count(1), 1u);
    EXPECT_EQ(link->next_connection_id(), first + 2);

    // Removing ours leaves the earlier one in kwikd, with its path.
    answer_box removed;
    ASSERT_TRUE(link->remove_connection(first + 1, 0, removed.sink()).ok());
    ASSERT_TRUE(poll_until(*link, [&] { return removed.got; }));
    EXPECT_EQ(removed.status(), api::result_status::ok) << removed.reason();
    link.reset(); // one control process at a time: a fresh one reads what kwikd holds
    auto check = std::make_unique<cp::dataplane_link>(config(), cp::link_callbacks{});
    ASSERT_TRUE(poll_until(*check, [&] { return check->adopted(); }));
    ASSERT_EQ(check->connections().size(), 1u);
    ASSERT_NE(check->find(first), nullptr);
    EXPECT_EQ(check->find(first)->name, "earlier");
    EXPECT_EQ(check->find(first)->paths.count(1), 1u);
}

// A kwikd that shuts down answers `stopped` to the commands it had not applied. That is no
// refusal: the link keeps the path in its desired state and pushes it to the next kwikd, where a
// refused path (conflict) leaves the desired state. kwikd is played here by the region and
// rings themselves, so that the answers are exactly these.
TEST_F(link_test, a_path_kwikd_answers_stopped_to_is_pushed_to_the_next_kwikd) {
    struct fake_kwikd {
        api::shm_region region;
        api::dataplane_channel channel;
        std::vector<api::command> taken;
    };
    auto start = [&]() -> std::unique_ptr<fake_kwikd> {
        api::region_config rc;
        rc.name = name;
        auto made = api::shm_region::create(rc);
        EXPECT_TRUE(made.ok()) << made.message();
        if (!made.ok()) {
            return nullptr;
        }
        auto f = std::make_unique<fake_kwikd>();
        f->region = std::move(made).value();
        auto dp = api::dataplane_channel::create(f->region);
        EXPECT_TRUE(dp.ok()) << dp.message();
        f->channel = std::move(dp).value();
        return f;
    };
    // Answers every command on the ring: add_path by its port, the rest ok (list_state: nothing held).
    auto serve = [](fake_kwikd& f, api::result_status path_5002) {
        api::command c;
        while (f.channel.try_receive(c)) {
            f.taken.push_back(c);
            api::result_status status = api::result_status::ok;
            if (c.header.type == api::message_type::add_path) {
                status = c.add_path.tuple.remote_port == 5002 ? path_5002 : api::result_status::conflict;
            }
            api::event e = api::make_command_result(c, status, status == api::result_status::ok ? "" : "as told");
            EXPECT_TRUE(f.channel.try_send(e));
        }
    };
    auto kwikd = start();
    ASSERT_NE(kwikd, nullptr);
    cp::dataplane_link link(config(), {});
    ASSERT_TRUE(poll_until(link, [&] {
        serve(*kwikd, api::result_status::ok);
        return link.adopted();
    }));
    cp::desired_connection five = connection_5();
    five.paths.clear();
    ASSERT_TRUE(link.add_connection(five).ok());
    answer_box stopped;
    answer_box refused;
    ASSERT_TRUE(link.add_path(5, cp::desired_path{2, tuple(5002), 1.0f, 0, false}, stopped.sink()).ok());
    ASSERT_TRUE(link.add_path(5, cp::desired_path{3, tuple(5003), 1.0f, 0, false}, refused.sink()).ok());
    ASSERT_TRUE(poll_until(link, [&] {
        serve(*kwikd, api::result_status::stopped);
        return stopped.got && refused.got;
    }));
    EXPECT_EQ(stopped.status(), api::result_status::stopped);
    EXPECT_EQ(refused.status(), api::result_status::conflict);
    ASSERT_NE(link.find(5), nullptr);
    EXPECT_EQ(link.find(5)->paths.count(2), 1u) << "stopped is no refusal";
    EXPECT_EQ(link.find(5)->paths.count(3), 0u) << "conflict is";

    kwikd.reset(); // marks the region stopped and unlinks it
    kwikd = start();
    ASSERT_NE(kwikd, nullptr);
    ASSERT_TRUE(poll_until(link, [&] {
        serve(*kwikd, api::result_status::ok);
        return link.counters().kwikd_restarts == 1 && link.adopted() && link.waiting() == 0;
    }));
    std::vector<std::pair<api::message_type, std::uint64_t>> pushed;
    for (const api::command& c : kwikd->taken) {
        if (c.header.type != api::message_type::list_state) {
            pushed.emplace_back(c.header.type, api::path_of(c));
        }
    }
    const std::vector<std::pair<api::message_type, std::uint64_t>> expected{
        {api::message_type::add_connection, 0}, {api::message_type::add_path, 2}};
    EXPECT_EQ(pushed, expected) << "the connection and path 2 go to the new kwikd, path 3 does not";
    EXPECT_EQ(link.counters().resync_commands, 2u);
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <kwikd>\n", argv[0]);
        return 2;
    }
    g_kwikd = argv[1];
    return RUN_ALL_TESTS();
}
