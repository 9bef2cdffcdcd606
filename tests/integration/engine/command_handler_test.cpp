// kwikd's run-time command path in one process, without root: the test plays the control
// process on a control_channel of a real shared-memory region (created as kwikd creates it),
// and drives kwikd's main lcore (command_handler) and two workers (mailboxes, path table,
// counters blocks, one ring-link port with a queue each) by hand with a virtual clock:
// handler.poll(now) and worker.poll(now) alternately on the test's thread; no lcore is
// launched. Each case asserts the exact answers (status, a reason naming the field or state,
// ack_sequence = the command's sequence, exactly one answer) and the state afterwards
// (list_state, the counters region, the path table, the workers' tables). The end-to-end test
// with kwikd, kwikd-cmd and a namespace is tests/e2e/kwikd_commands_test.py.
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dataplane/api/command_ring.hpp"
#include "dataplane/api/commands.hpp"
#include "dataplane/api/counters.hpp"
#include "dataplane/api/shm_region.hpp"
#include "dataplane/engine/command_handler.hpp"
#include "dataplane/engine/worker.hpp"
#include "dataplane/transport/frame_protection.hpp"
#include "dataplane/transport/heap_buffer.hpp"
#include "drivers/ring_link.hpp"

namespace fs = std::filesystem;

namespace kwik::engine {
namespace {

using api::result_status;

fs::path g_lock_dir; // the regions' lock files (kwikd's and the control process's)

constexpr mac_address our_mac{{0x02, 0x4B, 0x57, 0x49, 0x4B, 0x01}};
constexpr mac_address peer_mac{{0x02, 0x4B, 0x57, 0x49, 0x4B, 0x02}};
constexpr std::uint16_t kwik_port = 7707;

api::ip_address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    api::ip_address x{};
    x.bytes[0] = a;
    x.bytes[1] = b;
    x.bytes[2] = c;
    x.bytes[3] = d;
    return x;
}

const api::ip_address appliance = v4(10, 0, 0, 1); // the one Kwik address, port 7707

// A path from the peer at 10.0.<net>.2:<remote_port> to the appliance (or to `local`).
api::five_tuple path_tuple(std::uint8_t net, std::uint16_t remote_port, const api::ip_address& local = appliance,
                           std::uint16_t local_port = kwik_port) {
    return api::make_tuple(api::ip_version::v4, local, local_port, v4(10, 0, net, 2), remote_port);
}

api::command add_connection(std::uint64_t id, const std::string& name, std::uint16_t owner = api::any_worker,
                            api::connection_role role = api::connection_role::server,
                            api::endpoint_kind endpoint = api::endpoint_kind::discard) {
    api::command c = api::make_add_connection(id, name, endpoint);
    c.add_connection.owner_hint = owner;
    c.add_connection.role = role;
    return c;
}

// set_connection_keys with a key of 32 bytes `fill`.
api::command set_keys(std::uint64_t id, std::uint8_t phase, std::uint8_t fill, bool require = false,
                      std::uint64_t valid_until_unix_ms = 0) {
    std::uint8_t key[api::aead_key_size];
    std::memset(key, fill, sizeof key);
    return api::make_set_connection_keys(id, phase, key, valid_until_unix_ms, 0, require);
}

api::command set_weights(std::uint64_t id, std::vector<std::pair<std::uint64_t, float>> entries) {
    api::command c = api::make_command(api::message_type::set_weights);
    c.set_weights.connection_id = id;
    c.set_weights.count = static_cast<std::uint32_t>(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        c.set_weights.entries[i].path_id = entries[i].first;
        c.set_weights.entries[i].weight = entries[i].second;
    }
    return c;
}

// An IPv4 UDP datagram carrying payload from 10.0.<net>.2:<src_port> to the appliance's Kwik
// port, UDP checksum 0 (allowed over IPv4: the classifier takes it as Kwik without a software
// checksum pass).
std::vector<std::uint8_t> udp_frame(std::uint8_t net, std::uint16_t src_port, std::span<const std::uint8_t> body) {
    const std::size_t payload = body.size();
    std::vector<std::uint8_t> f(ethernet_header_len + ipv4_header_len + udp_header_len + payload, 0);
    our_mac.store(&f[0]);
    peer_mac.store(&f[6]);
    store_be16(&f[12], ethertype_ipv4);
    std::uint8_t* ip = &f[ethernet_header_len];
    ip[0] = 0x45;
    store_be16(ip + 2, static_cast<std::uint16_t>(ipv4_header_len + udp_header_len + payload));
    ip[8] = 64;
    ip[9] = ip_proto_udp;
    const std::uint8_t src[4] = {10, 0, net, 2};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, appliance.bytes, 4);
    const std::uint16_t ck = checksum_finish(checksum_add(ip, ipv4_header_len, 0));
    std::memcpy(ip + 10, &ck, 2);
    std::uint8_t* udp = ip + ipv4_header_len;
    store_be16(udp, src_port);
    store_be16(udp + 2, kwik_port);
    store_be16(udp + 4, static_cast<std::uint16_t>(udp_header_len + payload));
    if (payload != 0) {
        std::memcpy(udp + udp_header_len, body.data(), payload);
    }
    return f;
}

// 32 zero bytes from 10.0.9.2:<src_port>: never parsed, an unknown path is dropped before its
// KDP header is read.
std::vector<std::uint8_t> kwik_datagram(std::uint16_t src_port) {
    const std::array<std::uint8_t, 32> zeros{};
    return udp_frame(9, src_port, zeros);
}

// The engine's key for a datagram of kwik_datagram(src_port), as the classifier fills it.
five_tuple unknown_key(std::uint16_t src_port) {
    five_tuple t;
    t.src = ip_address::v4(0x0A000902); // 10.0.9.2
    t.dst = ip_address::v4(0x0A000001);
    t.src_port = src_port;
    t.dst_port = kwik_port;
    t.protocol = ip_proto_udp;
    return t;
}

struct rig_options {
    unsigned workers = 2;
    std::uint32_t event_ring_slots = 4096;
    std::uint32_t slots_per_worker = 128;
    unsigned reply_slots = 2048;
    std::size_t max_outbox = 65536;
    double unknown_path_events_per_sec = 100;
    transport::time_ns unknown_path_interval = transport::sec;
    transport::time_ns publish_interval = 100 * transport::ms;
};

// Public: the table's lambdas look at the rig through a command_handling&.
class command_handling : public ::testing::Test {
public:
    static void SetUpTestSuite() {
        if (pool != nullptr) {
            return;
        }
        pool = rte_pktmbuf_pool_create("kwik_cht_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        app_pool = rte_pktmbuf_pool_create("kwik_cht_app", 255, 32, 0, 16384 + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
        ASSERT_NE(pool, nullptr);
        ASSERT_NE(app_pool, nullptr);
    }

    // kwikd as kwikd.cpp builds it (minus EAL, lcores and rte_flow): the region with its
    // rings and counters, the port, the path table, the workers with their mailboxes and
    // counters blocks, the handler; and the control process's end of the rings.
    void start(const rig_options& o = {}) {
        static int instance = 0;
        const std::string tag = std::to_string(++instance);
        opts = o;
        name = "kwik_cht_" + std::to_string(::getpid()) + "_" + tag;

        api::region_config rc;
        rc.name = name;
        rc.lock_directory = g_lock_dir.string();
        rc.event_ring_slots = o.event_ring_slots;
        rc.counters.workers = o.workers;
        rc.counters.ports = 1;
        rc.counters.max_connections = o.slots_per_worker;
        rc.counters.max_paths = 1024;
        auto made = api::shm_region::create(rc);
        ASSERT_TRUE(made.ok()) << made.message();
        region.emplace(std::move(made).value());
        auto dp = api::dataplane_channel::create(*region);
        ASSERT_TRUE(dp.ok()) << dp.message();
        channel.emplace(dp.value());

        api::open_options oo;
        oo.lock_directory = g_lock_dir.string();
        auto opened = api::shm_region::open(name, oo);
        ASSERT_TRUE(opened.ok()) << opened.message();
        control_region.emplace(std::move(opened).value());
        auto ctl = api::control_channel::attach(*control_region);
        ASSERT_TRUE(ctl.ok()) << ctl.message();
        control = ctl.value();
        auto rd = api::counters_reader::attach(*control_region);
        ASSERT_TRUE(rd.ok()) << rd.message();
        reader = rd.value();

        // One port, a queue pair per worker: the test sends into end b.
        auto l = drivers::ring_link::create("kch_a" + tag, "kch_b" + tag, static_cast<std::uint16_t>(o.workers));
        ASSERT_TRUE(l.ok()) << l.message();
        link.emplace(std::move(l).value());
        for (std::optional<drivers::port>* end : {&a, &b}) {
            drivers::port_config pc;
            pc.device = end == &a ? link->name_a() : link->name_b();
            pc.pool = pool;
            pc.rx_queues = static_cast<std::uint16_t>(o.workers);
            pc.tx_queues = static_cast<std::uint16_t>(o.workers);
            auto p = drivers::open_port(pc);
            ASSERT_TRUE(p.ok()) << p.message();
            end->emplace(std::move(p).value());
        }
        classifier_config cc;
        cc.mac = our_mac;
        ASSERT_TRUE(cc.add_kwik_port(kwik_port));
        ASSERT_TRUE(cc.add_address(ip_address::v4(0x0A000001)));
        cls.emplace(cc);

        std::string error;
        paths.reset(path_table::create("kch_paths" + tag, 1024, SOCKET_ID_ANY, o.workers, &error));
        ASSERT_TRUE(paths) << error;
        writers.reserve(o.workers); // the workers point into it
        for (unsigned w = 0; w < o.workers; ++w) {
            handoff.push_back(rte_ring_create(("kch_h" + tag + "_" + std::to_string(w)).c_str(), 1024, SOCKET_ID_ANY,
                                              RING_F_SC_DEQ));
            ASSERT_NE(handoff.back(), nullptr);
            mailboxes.push_back(create_mailbox("kch" + tag, w, 1024, o.reply_slots, SOCKET_ID_ANY, &error));
            ASSERT_TRUE(mailboxes.back().valid()) << error;
            auto cw = api::counters_writer::attach(*region, w);
            ASSERT_TRUE(cw.ok()) << cw.message();
            writers.push_back(cw.value());
        }
        for (unsigned w = 0; w < o.workers; ++w) {
            worker_config wc;
            wc.id = w;
            worker_port wp;
            wp.queue = a->queue(static_cast<std::uint16_t>(w));
            wp.mac = our_mac;
            wp.classify = &*cls;
            wc.ports.push_back(wp);
            wc.paths = paths.get();
            wc.tx_pool = pool;
            wc.app_pool = app_pool;
            wc.handoff = handoff;
            wc.max_connections = o.slots_per_worker;
            wc.mailbox = mailboxes[w];
            wc.counters = &writers[w];
            wc.publish_interval = o.publish_interval;
            wc.unknown_path_interval = o.unknown_path_interval;
            wc.unknown_path_events_per_sec = o.unknown_path_events_per_sec;
            workers.push_back(std::make_unique<worker>(wc));
        }

        handler_config hc;
        hc.channel = &*channel;
        hc.region = &*region;
        hc.paths = paths.get();
        handler_port hp; // no device: no rte_flow rules, paths go by the hand-off ring
        hp.rx_queues = static_cast<std::uint16_t>(o.workers);
        hp.addresses.push_back(ip_address::v4(0x0A000001));
        hp.kwik_ports.push_back(kwik_port);
        hc.ports.push_back(hp);
        for (auto& w : workers) {
            hc.workers.push_back(w.get());
        }
        hc.mailboxes = mailboxes;
        hc.slots_per_worker = o.slots_per_worker;
        hc.max_bindings = 1024;
        hc.max_outbox = o.max_outbox;
        handler = std::make_unique<command_handler>(std::move(hc));
        // The transport's clock: connections are built with now_ns(), so virtual time starts there.
        now = now_ns();
    }

    void TearDown() override {
        if (handler) {
            handler->poll(now); // takes back what removals handed over
        }
        handler.reset();
        workers.clear();
        for (auto* p : {&a, &b}) {
            if (p->has_value()) {
                EXPECT_TRUE((*p)->close().ok());
            }
        }
        link.reset();
        paths.reset();
        for (rte_ring* r : handoff) {
            rte_ring_free(r);
        }
        for (worker_mailbox& m : mailboxes) {
            free_mailbox(m);
        }
        control_region.reset();
        region.reset();
    }

    // ---- the clock and the control process ----

    // One pass of kwikd's main lcore and of every worker at `now`, what came on the event
    // ring read (unless reading is off), then the clock moves on by dt.
    void pass(transport::time_ns dt = 100 * transport::us) {
        handler->poll(now);
        for (auto& w : workers) {
            w->poll(now);
        }
        drain_tx();
        if (reading) {
            collect();
        }
        now += dt;
    }

    // Reads every event waiting on the event ring into inbox; each must pass validate() and
    // carry the next sequence number (one producer: no gaps).
    void collect() {
        std::array<api::event, 32> burst;
        for (unsigned n = 0; (n = control.receive_burst(burst)) != 0;) {
            for (unsigned i = 0; i < n; ++i) {
                const api::validation v = api::validate(burst[i]);
                EXPECT_TRUE(v.ok()) << api::to_string(burst[i].header.type) << ": " << v.reason();
                EXPECT_EQ(burst[i].header.sequence, next_event_sequence) << "events are numbered without gaps";
                next_event_sequence = burst[i].header.sequence + 1;
                inbox.push_back(burst[i]);
            }
        }
    }

    // What the workers transmitted (probes to peers whose MAC is unknown are not even sent),
    // shown to on_tx if set, then freed.
    void drain_tx() {
        std::array<rte_mbuf*, 32> burst;
        for (unsigned q = 0; q < opts.workers; ++q) {
            for (std::uint16_t n = 0; (n = b->queue(static_cast<std::uint16_t>(q)).rx_burst(burst)) != 0;) {
                for (std::uint16_t i = 0; on_tx && i < n; ++i) {
                    on_tx(burst[i]);
                }
                rte_pktmbuf_free_bulk(burst.data(), n);
            }
        }
    }
    std::function<void(rte_mbuf*)> on_tx;

    std::uint64_t send(api::command c) {
        EXPECT_TRUE(control.try_send(c)) << "the command ring is full";
        return c.header.sequence;
    }

    // As a control process built from another protocol version: its own version in the header
    // (control_channel::try_send would stamp ours), numbered like every command.
    std::uint64_t send_as_version(api::command c, std::uint16_t version) {
        std::uint64_t& next = control_region->header().next_command_sequence;
        c.header.version = version;
        c.header.sequence = next;
        EXPECT_TRUE(control.commands().try_enqueue(c));
        ++next;
        return c.header.sequence;
    }

    // The answers (command_result, or counters_ready) to the command numbered seq so far.
    std::vector<api::event> answers_to(std::uint64_t seq) const {
        std::vector<api::event> out;
        for (const api::event& e : inbox) {
            if ((e.header.type == api::message_type::command_result ||
                 e.header.type == api::message_type::counters_ready) &&
                e.header.ack_sequence == seq) {
                out.push_back(e);
            }
        }
        return out;
    }
    // Where in inbox the answer to seq is (inbox.size() if none).
    std::size_t position_of_answer(std::uint64_t seq) const {
        for (std::size_t i = 0; i < inbox.size(); ++i) {
            if (inbox[i].header.type == api::message_type::command_result && inbox[i].header.ack_sequence == seq) {
                return i;
            }
        }
        return inbox.size();
    }

    // One round at `now`: the handler takes the commands and posts them, worker w polls once,
    // the handler completes what it answered; the events read.
    void round_trip(unsigned w) {
        handler->poll(now);
        workers[w]->poll(now);
        handler->poll(now);
        collect();
    }

    // Passes until seq is answered (at most max_passes), then a few more: exactly one answer.
    api::event await(std::uint64_t seq, int max_passes = 2000, transport::time_ns dt = 100 * transport::us) {
        for (int i = 0; i < max_passes && answers_to(seq).empty(); ++i) {
            pass(dt);
        }
        for (int i = 0; i < 5; ++i) {
            pass(dt);
        }
        const std::vector<api::event> got = answers_to(seq);
        EXPECT_EQ(got.size(), 1u) << "command " << seq << " answered " << got.size() << " times";
        return got.empty() ? api::event{} : got.front();
    }

    api::event exchange(const api::command& c) { return await(send(c)); }

    // A command that must succeed (set-up steps of a case).
    void expect_ok(const api::command& c) {
        const api::event e = exchange(c);
        ASSERT_EQ(e.header.type, api::message_type::command_result);
        ASSERT_EQ(e.command_result.status, result_status::ok)
            << api::to_string(c.header.type) << ": " << api::get_text(e.command_result.reason);
    }

    // list_state's answer: the infos with its sequence and the result.
    struct listing {
        std::map<std::uint64_t, std::vector<api::connection_info_body>> connections; // by id: every copy
        std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<api::path_info_body>> paths;
        std::size_t infos = 0;
        api::event result{};
        bool result_after_infos = true;
    };
    listing list_state() {
        const std::uint64_t seq = send(api::make_list_state());
        listing l;
        l.result = await(seq);
        bool result_seen = false;
        for (const api::event& e : inbox) {
            if (e.header.ack_sequence != seq) {
                continue;
            }
            if (e.header.type == api::message_type::command_result) {
                result_seen = true;
            } else if (e.header.type == api::message_type::connection_info) {
                l.connections[e.connection_info.connection_id].push_back(e.connection_info);
                ++l.infos;
                l.result_after_infos = l.result_after_infos && !result_seen;
            } else if (e.header.type == api::message_type::path_info) {
                l.paths[{e.path_info.connection_id, e.path_info.path_id}].push_back(e.path_info);
                ++l.infos;
                l.result_after_infos = l.result_after_infos && !result_seen;
            }
        }
        return l;
    }

    // The events of a type (path_down, unknown_path...) received so far.
    std::vector<api::event> events(api::message_type t) const {
        std::vector<api::event> out;
        std::copy_if(inbox.begin(), inbox.end(), std::back_inserter(out),
                     [t](const api::event& e) { return e.header.type == t; });
        return out;
    }

    // The binding a received datagram on this tuple finds (null: unknown path).
    const path_binding* lookup(const api::five_tuple& t) const {
        const five_tuple key = to_engine(t);
        const five_tuple* keys[1] = {&key};
        const path_binding* found[1] = {nullptr};
        paths->lookup_bulk(keys, 1, found);
        return found[0];
    }

    // A path of connection `slot` on worker w, as its transport sees it.
    std::optional<transport::path_info> path_state(unsigned w, std::uint32_t slot, std::uint64_t path_id) const {
        const transport::connection* c = workers[w]->connection_of(slot);
        transport::path_info info;
        for (std::size_t i = 0; c != nullptr && c->path_info_at(i, info); ++i) {
            if (info.id == path_id) {
                return info;
            }
        }
        return std::nullopt;
    }

    // Frames into worker w's rx queue (end b of the link transmits them).
    void inject(unsigned w, const std::vector<std::vector<std::uint8_t>>& frames) {
        std::vector<rte_mbuf*> ms;
        for (const auto& f : frames) {
            rte_mbuf* m = rte_pktmbuf_alloc(pool);
            ASSERT_NE(m, nullptr);
            auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size())));
            ASSERT_NE(p, nullptr);
            std::memcpy(p, f.data(), f.size());
            ms.push_back(m);
        }
        const std::uint16_t sent = b->queue(static_cast<std::uint16_t>(w)).tx_burst({ms.data(), ms.size()});
        ASSERT_EQ(sent, ms.size()) << "the link's ring is full";
    }

    static rte_mempool* pool;
    static rte_mempool* app_pool;

    rig_options opts;
    std::string name;
    std::optional<api::shm_region> region; // kwikd's
    std::optional<api::dataplane_channel> channel;
    std::optional<api::shm_region> control_region; // the control process's mapping
    api::control_channel control;
    api::counters_reader reader;
    std::optional<drivers::ring_link> link;
    std::optional<drivers::port> a; // the workers' port
    std::optional<drivers::port> b; // the test's end
    std::optional<classifier> cls;
    std::unique_ptr<path_table> paths;
    std::vector<rte_ring*> handoff;
    std::vector<worker_mailbox> mailboxes;
    std::vector<api::counters_writer> writers;
    std::vector<std::unique_ptr<worker>> workers;
    std::unique_ptr<command_handler> handler;
    transport::time_ns now = 0;
    bool reading = true;
    std::vector<api::event> inbox;
    std::uint64_t next_event_sequence = 1;
};
rte_mempool* command_handling::pool = nullptr;
rte_mempool* command_handling::app_pool = nullptr;

// ---------------------------------------------------------------------------------------------
// 1. Every command type, accepted and refused, each answered exactly once.

struct command_case {
    const char* what;
    std::function<api::command()> make;
    result_status status;
    std::string_view reason; // a substring of the answer's reason; empty: the reason is empty
    std::function<void(command_handling&)> after; // the state afterwards; may be empty
    std::uint16_t version = api::protocol_version;
};

TEST_F(command_handling, every_command_type_is_answered_once_with_the_field_or_state_named) {
    ASSERT_NO_FATAL_FAILURE(start());
    using api::message_type;
    const api::five_tuple p11 = path_tuple(1, 40001); // connection 1, path 1
    const api::five_tuple p12 = path_tuple(2, 40002); // connection 1, path 2
    const api::five_tuple p21 = path_tuple(3, 40003); // connection 2, path 1
    const std::vector<command_case> cases = {
        {"add_connection on worker 0", [] { return add_connection(1, "alpha", 0); }, result_status::ok, "",
         [](command_handling& t) {
             EXPECT_EQ(t.workers[0]->connection_id_of(0), 1u);
             EXPECT_EQ(t.handler->connections(), 1u);
             ASSERT_TRUE(t.reader.find_connection(1).has_value()) << "published at install";
         }},
        {"add_connection echo on worker 1",
         [] { return add_connection(2, "beta", 1, api::connection_role::server, api::endpoint_kind::echo); },
         result_status::ok, "", [](command_handling& t) { EXPECT_EQ(t.workers[1]->connection_id_of(0), 2u); }},
        {"add_connection: duplicate id", [] { return add_connection(1, "gamma"); }, result_status::already_exists,
         "add_connection.connection_id: 1 exists",
         [](command_handling& t) { EXPECT_EQ(t.handler->connections(), 2u); }},
        {"add_connection: duplicate name", [] { return add_connection(3, "alpha"); }, result_status::already_exists,
         "add_connection.name: 'alpha' is connection 1", {}},
        {"add_connection: owner_hint out of range", [] { return add_connection(3, "gamma", 2); },
         result_status::invalid_command, "add_connection.owner_hint: worker 2 does not exist (kwikd has 2)",
         [](command_handling& t) {
             EXPECT_EQ(t.handler->connections(), 2u);
             EXPECT_EQ(t.workers[0]->connection_id_of(1), 0u);
             EXPECT_EQ(t.workers[1]->connection_id_of(1), 0u);
         }},
        {"add_connection: id 0 (validate)", [] { return add_connection(0, "gamma"); }, result_status::invalid_command,
         "add_connection.connection_id: must be nonzero", {}},
        {"add_connection from another protocol version", [] { return add_connection(3, "gamma"); },
         result_status::unsupported_version, "version", {}, 1},
        {"not a command type", [] { return api::make_command(message_type::command_result); },
         result_status::invalid_command, "header.type", {}},

        {"add_path 1/1", [=] { return api::make_add_path(1, 1, p11); }, result_status::ok, "",
         [=](command_handling& t) {
             const path_binding* b = t.lookup(p11);
             ASSERT_NE(b, nullptr);
             EXPECT_EQ(b->owner_worker, 0u);
             EXPECT_EQ(b->connection, 0u);
             EXPECT_EQ(b->path, 1u);
             EXPECT_TRUE(t.path_state(0, 0, 1).has_value());
         }},
        {"add_path: unknown connection", [=] { return api::make_add_path(9, 1, p12); },
         result_status::unknown_connection, "add_path.connection_id: 9 does not exist",
         [=](command_handling& t) { EXPECT_EQ(t.lookup(p12), nullptr); }},
        {"add_path: the same path again", [=] { return api::make_add_path(1, 1, p11); }, result_status::already_exists,
         "add_path.path_id: 1 exists in connection 1", [=](command_handling& t) { EXPECT_EQ(t.lookup(p11)->path, 1u); }},
        {"add_path: path id with another tuple", [=] { return api::make_add_path(1, 1, p12); }, result_status::conflict,
         "add_path.path_id: 1 exists in connection 1 with another tuple",
         [=](command_handling& t) { EXPECT_EQ(t.lookup(p12), nullptr); }},
        {"add_path: tuple bound already", [=] { return api::make_add_path(2, 5, p11); }, result_status::conflict,
         "add_path.tuple: bound already to connection 1 path 1",
         [=](command_handling& t) {
             EXPECT_EQ(t.lookup(p11)->owner_worker, 0u);
             EXPECT_FALSE(t.path_state(1, 0, 5).has_value());
         }},
        {"add_path: local address on no port", [] { return api::make_add_path(1, 2, path_tuple(2, 40002, v4(10, 0, 0, 9))); },
         result_status::invalid_command, "add_path.tuple.local: 10.0.0.9 port 7707 is not a Kwik address", {}},
        {"add_path: local port not a Kwik port",
         [] { return api::make_add_path(1, 2, path_tuple(2, 40002, appliance, 7708)); },
         result_status::invalid_command, "add_path.tuple.local: 10.0.0.1 port 7708", {}},
        {"add_path 1/2", [=] { return api::make_add_path(1, 2, p12); }, result_status::ok, "",
         [=](command_handling& t) { EXPECT_NE(t.lookup(p12), nullptr); }},
        {"add_path 2/1 (worker 1)", [=] { return api::make_add_path(2, 1, p21, 0.25f); }, result_status::ok, "",
         [=](command_handling& t) {
             ASSERT_NE(t.lookup(p21), nullptr);
             EXPECT_EQ(t.lookup(p21)->owner_worker, 1u);
             const auto info = t.path_state(1, 0, 1);
             ASSERT_TRUE(info.has_value());
             EXPECT_TRUE(info->weight_pinned) << "an initial weight other than 1 is pinned";
             EXPECT_FLOAT_EQ(info->weight, 0.25f);
         }},

        {"set_scheduler", [] { return api::make_set_scheduler(1, api::scheduler_strategy::weighted); },
         result_status::ok, "", {}},
        {"set_scheduler: unknown connection", [] { return api::make_set_scheduler(9, api::scheduler_strategy::weighted); },
         result_status::unknown_connection, "set_scheduler.connection_id: 9 does not exist", {}},
        {"set_weights: entries[1] unknown", [] { return set_weights(1, {{1, 2.0f}, {7, 1.0f}}); },
         result_status::unknown_path, "set_weights.entries[1].path_id: 7 is not a path of connection 1",
         [](command_handling& t) { EXPECT_FALSE(t.path_state(0, 0, 1)->weight_pinned) << "all or nothing"; }},
        {"set_weights: unknown connection", [] { return set_weights(9, {{1, 2.0f}}); },
         result_status::unknown_connection, "set_weights.connection_id: 9 does not exist", {}},
        {"set_weights", [] { return set_weights(1, {{1, 2.0f}, {2, 0.5f}}); }, result_status::ok, "",
         [](command_handling& t) {
             EXPECT_TRUE(t.path_state(0, 0, 1)->weight_pinned);
             EXPECT_FLOAT_EQ(t.path_state(0, 0, 1)->weight, 2.0f);
             EXPECT_FLOAT_EQ(t.path_state(0, 0, 2)->weight, 0.5f);
         }},
        {"set_qos on a stream not open yet (remembered)", [] { return api::make_set_qos(1, 4, api::stream_priority::high); },
         result_status::ok, "", {}},
        {"set_qos: unknown connection", [] { return api::make_set_qos(9, 4, api::stream_priority::high); },
         result_status::unknown_connection, "set_qos.connection_id: 9 does not exist", {}},
        {"set_qos: stream 0 (validate)", [] { return api::make_set_qos(1, 0, api::stream_priority::high); },
         result_status::invalid_command, "set_qos.stream_id", {}},
        {"set_windows connection", [] { return api::make_set_windows(1, api::window_scope::connection, 0, 1 << 20); },
         result_status::ok, "", {}},
        {"set_windows new_streams", [] { return api::make_set_windows(1, api::window_scope::new_streams, 0, 1 << 18); },
         result_status::ok, "", {}},
        {"set_windows: stream not open", [] { return api::make_set_windows(1, api::window_scope::stream, 4, 1 << 18); },
         result_status::invalid_command, "set_windows.stream_id: the stream is not open", {}},
        {"set_windows: unknown connection", [] { return api::make_set_windows(9, api::window_scope::connection, 0, 1); },
         result_status::unknown_connection, "set_windows.connection_id: 9 does not exist", {}},
        {"set_connection_keys", [] { return set_keys(1, 5, 0x11, true); }, result_status::ok, "",
         [](command_handling& t) {
             const transport::connection* c = t.workers[0]->connection_of(0);
             EXPECT_EQ(c->live_keys(), 1u);
             EXPECT_EQ(c->key_phase(), 5);
             EXPECT_TRUE(c->require_encryption());
         }},
        {"set_connection_keys again (a resync)", [] { return set_keys(1, 5, 0x11, true); }, result_status::ok, "",
         [](command_handling& t) { EXPECT_EQ(t.workers[0]->connection_of(0)->live_keys(), 1u); }},
        {"set_connection_keys: the current phase with another key", [] { return set_keys(1, 5, 0x22); },
         result_status::already_exists, "set_connection_keys.key_phase: phase 5 is the current key",
         [](command_handling& t) { EXPECT_TRUE(t.workers[0]->connection_of(0)->require_encryption()) << "unchanged"; }},
        {"set_connection_keys: unknown connection", [] { return set_keys(9, 1, 0x11); },
         result_status::unknown_connection, "set_connection_keys.connection_id: 9 does not exist", {}},
        {"set_connection_keys: all-zero key (validate)", [] { return set_keys(1, 6, 0x00); },
         result_status::invalid_command, "set_connection_keys.key: all zero", {}},
        {"set_connection_keys: valid_until passed", [] { return set_keys(1, 6, 0x33, false, 1); },
         result_status::invalid_command, "set_connection_keys.valid_until_unix_ms: 1 is not after now",
         [](command_handling& t) { EXPECT_EQ(t.workers[0]->connection_of(0)->live_keys(), 1u); }},
        {"set_connection_keys: valid_until beyond a year", [] { return set_keys(1, 6, 0x33, false, ~0ull); },
         result_status::invalid_command,
         "set_connection_keys.valid_until_unix_ms: 18446744073709551615 is more than 366 days after now",
         [](command_handling& t) { EXPECT_EQ(t.workers[0]->connection_of(0)->live_keys(), 1u); }},
        {"set_connection_keys: another AEAD (validate)",
         [] {
             api::command c = set_keys(1, 6, 0x33);
             c.set_connection_keys.aead = static_cast<api::aead_algorithm>(2);
             return c;
         },
         result_status::invalid_command, "set_connection_keys.aead: 2 is not AES-256-GCM", {}},

        {"remove_path: unknown path", [] { return api::make_remove_path(1, 7); }, result_status::unknown_path,
         "remove_path.path_id: 7 does not exist in connection 1", {}},
        {"remove_path: unknown connection", [] { return api::make_remove_path(9, 1); },
         result_status::unknown_connection, "remove_path.connection_id: 9 does not exist", {}},
        {"remove_path 1/2", [] { return api::make_remove_path(1, 2); }, result_status::ok, "",
         [=](command_handling& t) {
             EXPECT_EQ(t.lookup(p12), nullptr) << "unbound";
             EXPECT_FALSE(t.path_state(0, 0, 2).has_value());
             EXPECT_NE(t.lookup(p11), nullptr);
             const auto downs = t.events(api::message_type::path_down);
             ASSERT_EQ(downs.size(), 1u);
             EXPECT_EQ(downs[0].path_down.connection_id, 1u);
             EXPECT_EQ(downs[0].path_down.path_id, 2u);
             EXPECT_EQ(downs[0].path_down.kind, api::path_down_kind::removed);
         }},
        {"remove_path: removed already", [] { return api::make_remove_path(1, 2); }, result_status::unknown_path,
         "remove_path.path_id: 2 does not exist in connection 1", {}},

        {"request_counters", [] { return api::make_request_counters(); }, result_status::ok, "",
         [](command_handling& t) {
             const api::event e = t.answers_to(t.control.last_taken_sequence()).at(0);
             EXPECT_EQ(e.header.type, api::message_type::counters_ready);
             EXPECT_EQ(e.counters_ready.workers_published, 2u);
             EXPECT_EQ(e.counters_ready.epoch, t.reader.epoch());
             EXPECT_TRUE(t.reader.find_path(1, 1).has_value());
             EXPECT_TRUE(t.reader.find_path(2, 1).has_value());
             EXPECT_FALSE(t.reader.find_path(1, 2).has_value()) << "removed";
         }},
        {"list_state", [] { return api::make_list_state(); }, result_status::ok, "",
         [](command_handling& t) {
             const api::event& r = t.inbox[t.position_of_answer(t.control.last_taken_sequence())];
             EXPECT_EQ(api::get_text(r.command_result.reason), "2 connections, 2 paths");
         }},

        {"remove_connection: unknown", [] { return api::make_remove_connection(9); }, result_status::unknown_connection,
         "remove_connection.connection_id: 9 does not exist", {}},
        {"remove_connection 2", [] { return api::make_remove_connection(2); }, result_status::ok, "",
         [=](command_handling& t) {
             EXPECT_EQ(t.lookup(p21), nullptr);
             EXPECT_EQ(t.workers[1]->connection_id_of(0), 0u);
             EXPECT_EQ(t.handler->connections(), 1u);
             EXPECT_FALSE(t.reader.find_connection(2).has_value()) << "its counters entry is cleared";
         }},
        {"remove_connection: removed already", [] { return api::make_remove_connection(2); },
         result_status::unknown_connection, "remove_connection.connection_id: 2 does not exist", {}},
        {"add_path to a removed connection", [=] { return api::make_add_path(2, 2, p21); },
         result_status::unknown_connection, "add_path.connection_id: 2 does not exist", {}},
    };

    std::set<api::message_type> types;
    std::vector<std::uint64_t> sent;
    for (const command_case& c : cases) {
        SCOPED_TRACE(c.what);
        const api::command cmd = c.make();
        const std::uint64_t seq = c.version == api::protocol_version ? send(cmd) : send_as_version(cmd, c.version);
        sent.push_back(seq);
        const api::event e = await(seq);
        const bool counters = cmd.header.type == message_type::request_counters;
        ASSERT_EQ(e.header.type, counters ? message_type::counters_ready : message_type::command_result);
        EXPECT_EQ(e.header.ack_sequence, seq);
        if (!counters) {
            const std::string_view reason = api::get_text(e.command_result.reason);
            EXPECT_EQ(e.command_result.status, c.status) << reason;
            if (c.reason.empty()) {
                EXPECT_TRUE(reason.empty() || cmd.header.type == message_type::list_state) << reason;
            } else {
                EXPECT_NE(reason.find(c.reason), std::string_view::npos) << "reason: " << reason;
            }
            if (api::is_command(cmd.header.type)) {
                EXPECT_EQ(e.command_result.connection_id, api::connection_of(cmd));
                EXPECT_EQ(e.command_result.path_id, api::path_of(cmd));
            }
        }
        if (api::is_command(cmd.header.type)) {
            types.insert(cmd.header.type);
        }
        if (c.after) {
            c.after(*this);
        }
    }
    EXPECT_EQ(types.size(), 11u) << "every command type";
    // Nothing else answered: one answer per command sent, no answer to anything else.
    std::size_t answers = 0;
    for (const api::event& e : inbox) {
        if (e.header.type == api::message_type::command_result || e.header.type == api::message_type::counters_ready) {
            ++answers;
            EXPECT_NE(std::find(sent.begin(), sent.end(), e.header.ack_sequence), sent.end());
        }
    }
    EXPECT_EQ(answers, cases.size());
    EXPECT_EQ(handler->counters().commands, cases.size());
}

// ---------------------------------------------------------------------------------------------
// 1b. ENCRYPTED frames with keys installed through the command ring: a client transport in the
// test sends a file to a file_store connection with every stream frame sealed; every byte is
// stored; forged and plaintext frames are dropped and counted, and the transfer goes on.

TEST_F(command_handling, encrypted_file_transfer_with_keys_from_the_command_ring) {
    rig_options o;
    o.workers = 1;
    ASSERT_NO_FATAL_FAILURE(start(o));
    const fs::path store = g_lock_dir / ("store-" + name);
    fs::create_directories(store);
    api::command add = add_connection(1, "sealed", 0, api::connection_role::server, api::endpoint_kind::file_store);
    ASSERT_TRUE(api::set_text(add.add_connection.endpoint_path, store.string()));
    ASSERT_NO_FATAL_FAILURE(expect_ok(add));
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(1, 1, path_tuple(1, 40001))));
    ASSERT_NO_FATAL_FAILURE(expect_ok(set_keys(1, 4, 0x5c, true)));
    const listing l = list_state();
    ASSERT_EQ(l.connections.count(1), 1u);
    EXPECT_EQ(l.connections.at(1).at(0).live_keys, 1u);
    EXPECT_EQ(l.connections.at(1).at(0).key_phase, 4u);
    EXPECT_EQ(l.connections.at(1).at(0).require_encryption, 1u);

    // The client: the peer of 10.0.1.2:40001, sealing under the same key.
    std::vector<std::vector<std::uint8_t>> outgoing;
    transport::connection_config cc;
    cc.side = transport::role::client;
    cc.tx_ops = &transport::heap_buffer_ops;
    cc.rx_ops = &transport::heap_buffer_ops;
    transport::connection_callbacks cb;
    cb.ctx = &outgoing;
    cb.transmit = [](void* ctx, transport::path_id, std::span<const std::uint8_t> p) {
        static_cast<std::vector<std::vector<std::uint8_t>>*>(ctx)->emplace_back(p.begin(), p.end());
    };
    transport::connection client(cc, cb, now);
    ASSERT_TRUE(client.add_path(1, now));
    transport::aead_key key;
    key.phase = 4;
    key.key.fill(0x5c);
    ASSERT_EQ(client.install_key(key), transport::key_install::installed);
    client.set_require_encryption(true);
    on_tx = [&](rte_mbuf* m) {
        const std::size_t skip = ethernet_header_len + ipv4_header_len + udp_header_len;
        ASSERT_GT(m->data_len, skip);
        const std::size_t n = m->data_len - skip;
        transport::heap_buffer* hb = transport::heap_buffer::make(n);
        std::memcpy(hb->data(), rte_pktmbuf_mtod_offset(m, const std::uint8_t*, skip), n);
        client.on_datagram(1, {hb->data(), n}, hb, false, now);
        transport::heap_buffer_release(hb);
    };

    std::string data(400'000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>((i * 2654435761u) >> 11);
    }
    const transport::stream_id sid = client.open_stream({});
    ASSERT_EQ(sid, 2u);
    transport::heap_buffer* hb = transport::heap_buffer::make(data.size());
    std::memcpy(hb->data(), data.data(), data.size());
    ASSERT_TRUE(client.write(sid, {hb->data(), static_cast<std::uint32_t>(data.size()), hb}));
    transport::heap_buffer_release(hb);
    ASSERT_TRUE(client.finish(sid));

    // Forgeries, each in its own packet numbered far above the client's: a frame sealed under
    // another key, the same frame with a flipped ciphertext byte (under the right key), and a
    // plaintext frame; each would be stream 6's first bytes.
    auto forged_packet = [](std::uint64_t seq, std::uint8_t key_fill, bool seal, bool flip) {
        transport::frame_protection p(true);
        transport::aead_key k;
        k.phase = 4;
        k.key.fill(key_fill);
        EXPECT_EQ(p.install(k), transport::key_install::installed);
        std::array<std::uint8_t, 64> buf{};
        std::memcpy(buf.data(), "forged stream data", 18);
        kdp::frame_desc f;
        f.stream_id = 6;
        f.flags = kdp::frame_flag::ordered;
        f.data = {buf.data(), 18};
        if (seal) {
            EXPECT_EQ(p.seal(f, buf.data(), 18, 0), transport::seal_refusal::none);
        }
        if (flip) {
            buf[3] ^= 0x40;
        }
        const kdp::frame_desc fs[1] = {f};
        std::vector<std::uint8_t> out(kdp::max_packet_size);
        const kdp::write_result w = kdp::serialize_packet({seq, kdp::packet_type::data, kdp::compression::none, fs}, out);
        EXPECT_TRUE(w.ok());
        out.resize(w.size);
        return out;
    };
    const std::vector<std::vector<std::uint8_t>> forgeries = {
        forged_packet(1'000'000, 0x77, true, false), forged_packet(1'000'001, 0x5c, true, true),
        forged_packet(1'000'002, 0x5c, false, false)};

    const endpoint* store_ep = workers[0]->endpoint_of(0);
    ASSERT_NE(store_ep, nullptr);
    for (int i = 0; i < 40000 && store_ep->counters().files_written == 0; ++i) {
        client.flush(now);
        std::vector<std::vector<std::uint8_t>> frames;
        for (const auto& d : outgoing) {
            frames.push_back(udp_frame(1, 40001, d));
        }
        outgoing.clear();
        if (i == 2) { // mid-transfer
            for (const auto& d : forgeries) {
                frames.push_back(udp_frame(1, 40001, d));
            }
        }
        if (!frames.empty()) {
            ASSERT_NO_FATAL_FAILURE(inject(0, frames));
        }
        pass();
    }
    ASSERT_EQ(store_ep->counters().files_written, 1u);
    EXPECT_GT(client.counters().stream_bytes_sent, 0u);
    std::ifstream in(store / "c1-s2.bin", std::ios::binary);
    const std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(stored.size(), data.size());
    EXPECT_TRUE(stored == data) << "stored byte for byte";

    const transport::connection* server = workers[0]->connection_of(0);
    auto drops = [&](kdp::drop_reason r) { return server->counters().drops[static_cast<std::size_t>(r)]; };
    EXPECT_EQ(drops(kdp::drop_reason::aead_auth_failed), 2u);
    EXPECT_EQ(drops(kdp::drop_reason::encryption_required), 1u);
    EXPECT_GT(server->counters().encrypted_frames_received, 200u);
    EXPECT_EQ(client.counters().encrypted_frames_sent, server->counters().encrypted_frames_received)
        << "no loss on the ring link: every sealed frame opened once";
    EXPECT_FALSE(fs::exists(store / "c1-s6.bin")) << "no forged stream was opened";
    EXPECT_TRUE(server->encrypting());
    on_tx = nullptr;
    fs::remove_all(store);
}

// ---------------------------------------------------------------------------------------------
// 2. Pipelined: three commands in one burst before kwikd polls at all.

TEST_F(command_handling, pipelined_add_add_path_remove_are_answered_in_order_and_the_slot_is_reused) {
    ASSERT_NO_FATAL_FAILURE(start());
    const api::five_tuple t = path_tuple(1, 41000);
    std::array<api::command, 3> burst = {add_connection(10, "pipelined", 0), api::make_add_path(10, 1, t),
                                         api::make_remove_connection(10)};
    ASSERT_EQ(control.send_burst(burst), 3u);
    // One pass of the handler takes all three and posts them; the worker applies them in one
    // poll (the removal has no drain); the handler's next pass completes all three.
    round_trip(0);
    std::size_t last = 0;
    for (const api::command& c : burst) {
        SCOPED_TRACE(api::to_string(c.header.type));
        ASSERT_EQ(answers_to(c.header.sequence).size(), 1u) << "answered within one worker poll";
        const api::event e = await(c.header.sequence);
        EXPECT_EQ(e.command_result.status, result_status::ok) << api::get_text(e.command_result.reason);
        const std::size_t at = position_of_answer(c.header.sequence);
        EXPECT_GE(at, last) << "answered in the order sent";
        last = at;
    }
    EXPECT_EQ(handler->connections(), 0u);
    EXPECT_EQ(handler->path_count(), 0u);
    EXPECT_EQ(paths->size(), 0u);
    EXPECT_EQ(lookup(t), nullptr);
    EXPECT_EQ(workers[0]->connection_id_of(0), 0u);
    EXPECT_FALSE(reader.find_connection(10).has_value());
    const auto downs = events(api::message_type::path_down);
    ASSERT_EQ(downs.size(), 1u);
    EXPECT_EQ(downs[0].path_down.path_id, 1u);
    EXPECT_EQ(downs[0].path_down.kind, api::path_down_kind::removed);

    // The slot, the name and the tuple are free again: the next connection takes all three.
    ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(11, "pipelined", 0)));
    EXPECT_EQ(workers[0]->connection_id_of(0), 11u) << "slot 0 reused";
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(11, 1, t)));
    const path_binding* b = lookup(t);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->connection, 0u);
    EXPECT_EQ(b->path, 1u);
    api::connection_counters cc{};
    ASSERT_TRUE(reader.read_connection(0, 0, cc));
    EXPECT_EQ(cc.connection_id, 11u);
    const listing l = list_state();
    EXPECT_EQ(api::get_text(l.result.command_result.reason), "1 connections, 1 paths");
    ASSERT_EQ(l.connections.count(11), 1u);
    EXPECT_EQ(l.connections.at(11).at(0).paths, 1u);
}

// ---------------------------------------------------------------------------------------------
// 3 and 4. Removals that drain. A path that sent nothing ack-eliciting for keepalive_interval
// (1 s) gets a PATH_CHALLENGE; with no peer to acknowledge it, it stays in flight (the worker
// cannot even send it: the peer's MAC is unknown and no neighbour table is configured), which
// is what a drain waits for.

class draining : public command_handling {
protected:
    // A client-role connection on worker w with paths 1..n, its probes in flight.
    void add_probing_connection(std::uint64_t id, unsigned w, std::uint64_t n) {
        ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(id, "probing-" + std::to_string(id),
                                                         static_cast<std::uint16_t>(w), api::connection_role::client)));
        for (std::uint64_t p = 1; p <= n; ++p) {
            ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(id, p, tuple_of(id, p))));
        }
        for (int i = 0; i < 120; ++i) { // past keepalive_interval
            pass(10 * transport::ms);
        }
    }
    static api::five_tuple tuple_of(std::uint64_t id, std::uint64_t p) {
        return path_tuple(static_cast<std::uint8_t>(id), static_cast<std::uint16_t>(40000 + p));
    }
    std::uint64_t in_flight(unsigned w, std::uint32_t slot, std::uint64_t p) const {
        const auto info = path_state(w, slot, p);
        return info ? info->bytes_in_flight : 0;
    }
};

TEST_F(draining, remove_connection_while_its_path_drains_answers_both_the_path_first) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_NO_FATAL_FAILURE(add_probing_connection(20, 0, 2));
    ASSERT_GT(in_flight(0, 0, 1), 0u) << "path 1 has data in flight";

    const std::uint64_t remove_path = send(api::make_remove_path(20, 1, 60000));
    for (int i = 0; i < 20; ++i) {
        pass();
    }
    ASSERT_TRUE(answers_to(remove_path).empty()) << "path 1 drains";
    EXPECT_NE(lookup(tuple_of(20, 1)), nullptr) << "still bound while it drains: its ACKs still arrive";
    EXPECT_TRUE(path_state(0, 0, 1).has_value());

    EXPECT_GT(in_flight(0, 0, 1), 0u) << "still in flight when the connection's removal comes";
    const std::size_t sent_at = inbox.size();
    const transport::time_ns t_sent = now;
    const std::uint64_t remove_connection = send(api::make_remove_connection(20, 500));
    const api::event conn = await(remove_connection, 2000, transport::ms);
    EXPECT_GE(now - t_sent, 500 * transport::ms) << "its in-flight data kept it to its drain timeout";
    const std::vector<api::event> path = answers_to(remove_path);
    ASSERT_EQ(path.size(), 1u);
    EXPECT_EQ(path[0].command_result.status, result_status::ok) << api::get_text(path[0].command_result.reason);
    EXPECT_EQ(conn.command_result.status, result_status::ok) << api::get_text(conn.command_result.reason);
    EXPECT_GE(position_of_answer(remove_path), sent_at) << "answered only after the connection's removal came";
    EXPECT_LT(position_of_answer(remove_path), position_of_answer(remove_connection)) << "the path's answer first";

    std::map<std::uint64_t, int> removed;
    for (const api::event& e : events(api::message_type::path_down)) {
        EXPECT_EQ(e.path_down.connection_id, 20u);
        removed[e.path_down.path_id] += e.path_down.kind == api::path_down_kind::removed ? 1 : 0;
    }
    EXPECT_EQ(removed, (std::map<std::uint64_t, int>{{1, 1}, {2, 1}}));
    EXPECT_EQ(handler->connections(), 0u);
    EXPECT_EQ(handler->path_count(), 0u);
    EXPECT_EQ(lookup(tuple_of(20, 1)), nullptr);
    EXPECT_EQ(lookup(tuple_of(20, 2)), nullptr);
    EXPECT_EQ(workers[0]->connection_id_of(0), 0u);
    EXPECT_FALSE(reader.find_connection(20).has_value());
}

TEST_F(draining, drain_timeout_zero_finishes_within_one_worker_poll) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_NO_FATAL_FAILURE(add_probing_connection(30, 1, 2));
    ASSERT_GT(in_flight(1, 0, 1), 0u);
    ASSERT_GT(in_flight(1, 0, 2), 0u);

    const std::uint64_t remove_path = send(api::make_remove_path(30, 1, 0));
    round_trip(1);
    ASSERT_EQ(answers_to(remove_path).size(), 1u) << "one worker poll";
    EXPECT_EQ(answers_to(remove_path)[0].command_result.status, result_status::ok);
    EXPECT_EQ(lookup(tuple_of(30, 1)), nullptr);
    EXPECT_FALSE(path_state(1, 0, 1).has_value());

    now += 100 * transport::us;
    const std::uint64_t remove_connection = send(api::make_remove_connection(30, 0));
    round_trip(1);
    ASSERT_EQ(answers_to(remove_connection).size(), 1u) << "one worker poll";
    EXPECT_EQ(answers_to(remove_connection)[0].command_result.status, result_status::ok);
    EXPECT_EQ(handler->connections(), 0u);
    EXPECT_EQ(lookup(tuple_of(30, 2)), nullptr);
    EXPECT_EQ(workers[1]->connection_id_of(0), 0u);
    await(remove_path); // and neither is answered again
    await(remove_connection);
}

// ---------------------------------------------------------------------------------------------
// 5. Path ids are retired (PROTOCOL.md 13.4); new ids can replace paths for ever.

TEST_F(command_handling, a_removed_path_id_is_refused_and_new_ids_cycle_for_ever) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(40, "cycling", 0)));
    const api::five_tuple t1 = path_tuple(1, 43001);
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(40, 1, t1)));
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_remove_path(40, 1)));

    const api::event again = exchange(api::make_add_path(40, 1, t1));
    const std::string_view reason = api::get_text(again.command_result.reason);
    EXPECT_EQ(again.command_result.status, result_status::invalid_command) << reason;
    EXPECT_NE(reason.find("add_path.path_id: 1 was removed"), std::string_view::npos) << reason;
    EXPECT_NE(reason.find("not reused"), std::string_view::npos) << reason;
    EXPECT_EQ(lookup(t1), nullptr);
    EXPECT_EQ(handler->path_count(), 0u) << "the refused path's tuple is free again";

    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(40, 2, t1)));
    ASSERT_NE(lookup(t1), nullptr);
    EXPECT_EQ(lookup(t1)->path, 2u);

    const std::uint32_t max_paths = transport::connection_config{}.max_paths;
    std::uint64_t id = 3;
    for (std::uint32_t cycle = 0; cycle < 3 * max_paths; ++cycle, ++id) {
        SCOPED_TRACE("cycle " + std::to_string(cycle));
        const api::five_tuple t = path_tuple(2, static_cast<std::uint16_t>(44000 + cycle));
        ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(40, id, t)));
        ASSERT_NE(lookup(t), nullptr);
        ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_remove_path(40, id)));
        ASSERT_EQ(lookup(t), nullptr);
    }
    EXPECT_EQ(workers[0]->connection_of(0)->path_count(), 1u);
    EXPECT_EQ(handler->path_count(), 1u);
    EXPECT_EQ(paths->size(), 1u);

    // The connection still takes max_paths open paths, and refuses one more, naming the limit.
    for (std::uint32_t k = 1; k < max_paths; ++k, ++id) {
        ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(40, id, path_tuple(3, static_cast<std::uint16_t>(45000 + k)))));
    }
    const api::event full = exchange(api::make_add_path(40, id, path_tuple(4, 46000)));
    EXPECT_EQ(full.command_result.status, result_status::no_capacity);
    EXPECT_NE(api::get_text(full.command_result.reason).find("has its maximum of 8 paths"), std::string_view::npos)
        << api::get_text(full.command_result.reason);

    // The counters region has an entry for each open path, none for a retired one.
    ASSERT_EQ(exchange(api::make_request_counters()).header.type, api::message_type::counters_ready);
    const api::counters_totals totals = reader.read_totals();
    std::set<std::uint64_t> published;
    for (const api::path_counters& p : totals.paths) {
        EXPECT_EQ(p.connection_id, 40u);
        published.insert(p.path_id);
    }
    std::set<std::uint64_t> open = {2};
    for (std::uint64_t k = id - (max_paths - 1); k < id; ++k) {
        open.insert(k);
    }
    EXPECT_EQ(published, open);
}

// ---------------------------------------------------------------------------------------------
// 6. request_counters: answered once every worker published, with the epoch advanced, and what
// the region holds then is current, for every connection of a worker (more than one publish
// slice of them).

TEST_F(command_handling, counters_ready_comes_after_every_worker_published_everything) {
    rig_options o;
    o.publish_interval = 3600 * transport::sec; // only request_counters publishes
    ASSERT_NO_FATAL_FAILURE(start(o));
    constexpr std::uint64_t on_worker0 = 70; // slots 0..69: more than one slice of 64
    for (std::uint64_t i = 0; i < on_worker0; ++i) {
        ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(100 + i, "c" + std::to_string(i), 0)));
    }
    ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(500, "on-worker-1", 1)));
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(100, 1, path_tuple(1, 47001))));
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(169, 1, path_tuple(2, 47002))));
    ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(500, 1, path_tuple(3, 47003))));
    EXPECT_FALSE(reader.find_path(169, 1).has_value()) << "not published yet";

    const std::uint64_t epoch = reader.epoch();
    api::worker_snapshot before0;
    api::worker_snapshot before1;
    ASSERT_TRUE(reader.read_worker(0, before0));
    ASSERT_TRUE(reader.read_worker(1, before1));
    const std::uint64_t seq = send(api::make_request_counters());
    handler->poll(now);
    // Worker 1 publishes; worker 0 has not polled yet: no counters_ready.
    for (int i = 0; i < 3; ++i) {
        workers[1]->poll(now);
        handler->poll(now);
        now += 100 * transport::us;
    }
    collect();
    ASSERT_TRUE(answers_to(seq).empty()) << "worker 0 has not published";
    EXPECT_EQ(reader.epoch(), epoch);
    // Worker 0 polls until it answers; the control process reads the region as soon as
    // counters_ready arrives, while the workers go on (here: before they poll again).
    for (int i = 0; i < 10 && answers_to(seq).empty(); ++i) {
        workers[0]->poll(now);
        handler->poll(now);
        collect();
        now += 100 * transport::us;
    }
    ASSERT_EQ(answers_to(seq).size(), 1u);
    const api::event ready = answers_to(seq)[0];
    EXPECT_EQ(ready.header.type, api::message_type::counters_ready);
    EXPECT_EQ(ready.counters_ready.epoch, epoch + 1);
    EXPECT_EQ(ready.counters_ready.workers_published, 2u);
    EXPECT_EQ(reader.epoch(), epoch + 1);
    api::worker_snapshot after0;
    api::worker_snapshot after1;
    ASSERT_TRUE(reader.read_worker(0, after0));
    ASSERT_TRUE(reader.read_worker(1, after1));
    EXPECT_EQ(after0.publish_count, before0.publish_count + 1);
    EXPECT_GE(after1.publish_count, before1.publish_count + 1);
    for (std::uint64_t i = 0; i < on_worker0; ++i) {
        EXPECT_TRUE(reader.find_connection(100 + i).has_value()) << 100 + i;
    }
    for (const auto& [conn, path] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{{100, 1}, {169, 1}, {500, 1}}) {
        const auto p = reader.find_path(conn, path);
        EXPECT_TRUE(p.has_value()) << "path " << conn << "/" << path << " is in the region when counters_ready comes";
        const auto c = reader.find_connection(conn);
        ASSERT_TRUE(c.has_value());
        EXPECT_EQ(c->active_paths, 1u) << "connection " << conn << " as of the request, not as installed";
    }
    await(seq); // answered once
}

// ---------------------------------------------------------------------------------------------
// 7. list_state with more to say than the event ring holds: the rest follows as the control
// process reads, every info exactly once, then the result.

TEST_F(command_handling, list_state_longer_than_the_event_ring_sends_every_info_once) {
    rig_options o;
    o.event_ring_slots = 16;
    ASSERT_NO_FATAL_FAILURE(start(o));
    constexpr std::uint64_t count = 40;
    std::size_t path_total = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        const auto endpoint = static_cast<api::endpoint_kind>(i % 3); // discard, echo, pattern_source
        api::command c = add_connection(200 + i, "list-" + std::to_string(i), api::any_worker,
                                        i % 2 == 0 ? api::connection_role::server : api::connection_role::client,
                                        endpoint);
        if (endpoint == api::endpoint_kind::pattern_source) {
            c.add_connection.endpoint_length = 4096 + i;
        }
        ASSERT_NO_FATAL_FAILURE(expect_ok(c));
        for (std::uint64_t p = 1; p <= i % 4; ++p) {
            ASSERT_NO_FATAL_FAILURE(expect_ok(api::make_add_path(
                200 + i, p, path_tuple(static_cast<std::uint8_t>(i), static_cast<std::uint16_t>(48000 + p)))));
            ++path_total;
        }
    }
    const std::size_t before = inbox.size();
    const listing l = list_state();
    EXPECT_EQ(l.result.command_result.status, result_status::ok);
    EXPECT_EQ(api::get_text(l.result.command_result.reason),
              std::to_string(count) + " connections, " + std::to_string(path_total) + " paths");
    EXPECT_TRUE(l.result_after_infos);
    EXPECT_EQ(l.infos, count + path_total);
    EXPECT_GT(l.infos, 16u) << "more than the event ring holds";
    EXPECT_GT(inbox.size() - before, 16u);
    ASSERT_EQ(l.connections.size(), count);
    std::array<unsigned, 2> owners{};
    for (std::uint64_t i = 0; i < count; ++i) {
        SCOPED_TRACE(200 + i);
        ASSERT_EQ(l.connections.count(200 + i), 1u);
        ASSERT_EQ(l.connections.at(200 + i).size(), 1u) << "exactly once";
        const api::connection_info_body& ci = l.connections.at(200 + i)[0];
        EXPECT_EQ(api::get_text(ci.name), "list-" + std::to_string(i));
        EXPECT_EQ(ci.paths, i % 4);
        EXPECT_EQ(ci.endpoint, static_cast<api::endpoint_kind>(i % 3));
        EXPECT_EQ(ci.role, i % 2 == 0 ? api::connection_role::server : api::connection_role::client);
        EXPECT_EQ(ci.endpoint_length, i % 3 == 2 ? 4096 + i : 0);
        ASSERT_LT(ci.owner_worker, 2u);
        ++owners[ci.owner_worker];
        for (std::uint64_t p = 1; p <= i % 4; ++p) {
            const auto key = std::make_pair(200 + i, p);
            ASSERT_EQ(l.paths.count(key), 1u) << "path " << p;
            ASSERT_EQ(l.paths.at(key).size(), 1u) << "path " << p << " exactly once";
            const api::path_info_body& pi = l.paths.at(key)[0];
            const api::five_tuple want = path_tuple(static_cast<std::uint8_t>(i), static_cast<std::uint16_t>(48000 + p));
            EXPECT_EQ(std::memcmp(&pi.tuple, &want, sizeof want), 0);
            EXPECT_FLOAT_EQ(pi.weight, 1.0f);
            EXPECT_EQ(pi.port_id, 0u);
            EXPECT_EQ(pi.steered, 0u) << "no rte_flow here: hand-off";
        }
    }
    EXPECT_EQ(l.paths.size(), path_total);
    EXPECT_EQ(owners[0], count / 2) << "any_worker spreads them";
    EXPECT_EQ(owners[1], count / 2);
}

// ---------------------------------------------------------------------------------------------
// 8. unknown_path events: at most one per tuple per interval, and a per-worker budget (a token
// bucket: one second's worth at once, then the rate); the rest counted as suppressed.

// Source ports whose tuples fall in distinct slots of the worker's direct-mapped table of
// unknown tuples (256 slots, by rte_hash_crc of the key, worker_control.cpp), so that only the
// limits under test decide which datagram is reported.
std::vector<std::uint16_t> ports_in_distinct_slots(std::size_t n, std::uint16_t first, std::set<std::uint32_t>& taken) {
    std::vector<std::uint16_t> out;
    for (std::uint32_t p = first; out.size() < n && p <= 0xFFFF; ++p) {
        const five_tuple k = unknown_key(static_cast<std::uint16_t>(p));
        if (taken.insert(rte_hash_crc(&k, path_key_bytes, 0) % 256).second) {
            out.push_back(static_cast<std::uint16_t>(p));
        }
    }
    return out;
}

TEST_F(command_handling, unknown_path_events_are_limited_per_tuple_and_per_worker) {
    rig_options o;
    o.unknown_path_events_per_sec = 20;
    o.unknown_path_interval = transport::sec;
    ASSERT_NO_FATAL_FAILURE(start(o));
    std::set<std::uint32_t> taken;
    const std::uint16_t lone = ports_in_distinct_slots(1, 50000, taken).at(0);
    const std::vector<std::uint16_t> scan = ports_in_distinct_slots(200, 51000, taken);
    ASSERT_EQ(scan.size(), 200u);
    auto unknown_from = [&](std::uint16_t port) {
        std::vector<api::event> out;
        for (const api::event& e : events(api::message_type::unknown_path)) {
            if (e.unknown_path.tuple.remote_port == port) {
                out.push_back(e);
            }
        }
        return out;
    };

    // One tuple, five datagrams within the interval: one event; the next after the interval
    // counts the four it did not report and itself.
    const transport::time_ns t0 = now;
    for (int i = 0; i < 5; ++i) {
        ASSERT_NO_FATAL_FAILURE(inject(0, {kwik_datagram(lone)}));
        pass(100 * transport::ms);
    }
    ASSERT_EQ(unknown_from(lone).size(), 1u);
    now = t0 + transport::sec;
    ASSERT_NO_FATAL_FAILURE(inject(0, {kwik_datagram(lone)}));
    pass();
    pass(); // the handler takes the worker's event
    const std::vector<api::event> lone_events = unknown_from(lone);
    ASSERT_EQ(lone_events.size(), 2u);
    const api::unknown_path_body& first = lone_events[0].unknown_path;
    const api::unknown_path_body& second = lone_events[1].unknown_path;
    EXPECT_EQ(first.count, 1u);
    EXPECT_EQ(first.first_seen_ns, static_cast<std::uint64_t>(t0));
    EXPECT_EQ(first.last_seen_ns, static_cast<std::uint64_t>(t0));
    EXPECT_EQ(second.count, 5u) << "4 unreported within the interval, and this one";
    EXPECT_EQ(second.first_seen_ns, static_cast<std::uint64_t>(t0 + 100 * transport::ms))
        << "the first datagram this event counts";
    EXPECT_EQ(second.last_seen_ns, static_cast<std::uint64_t>(t0 + transport::sec));
    EXPECT_EQ(second.worker, 0u);
    EXPECT_EQ(second.port_id, 0u);
    EXPECT_EQ(std::memcmp(&second.tuple.local, &appliance, sizeof appliance), 0);
    EXPECT_EQ(second.tuple.local_port, kwik_port);
    EXPECT_EQ(workers[0]->counters().events_suppressed, 0u);

    // A scan over 200 source ports at once: the budget (20 a second, full again after the
    // quiet second) reports 20; the other 180 are suppressed, counted.
    const transport::time_ns t1 = t0 + 3 * transport::sec;
    now = t1;
    std::vector<std::vector<std::uint8_t>> frames;
    for (const std::uint16_t p : scan) {
        frames.push_back(kwik_datagram(p));
    }
    const std::size_t before_scan = events(api::message_type::unknown_path).size();
    ASSERT_NO_FATAL_FAILURE(inject(0, frames));
    for (int i = 0; i < 10; ++i) {
        pass(10 * transport::us);
    }
    std::set<std::uint16_t> reported_first;
    for (std::size_t i = before_scan; i < events(api::message_type::unknown_path).size(); ++i) {
        reported_first.insert(events(api::message_type::unknown_path)[i].unknown_path.tuple.remote_port);
    }
    EXPECT_EQ(reported_first.size(), 20u);
    EXPECT_EQ(events(api::message_type::unknown_path).size() - before_scan, 20u);
    EXPECT_EQ(workers[0]->counters().events_suppressed, 180u);

    // Half a second later the same scan again: the 20 reported are within their interval
    // (silent, not suppressed: their count goes on); of the 180 others, half a second of
    // budget (10) is reported, each counting its two datagrams; 170 more are suppressed.
    now = t1 + 500 * transport::ms;
    const std::size_t before_again = events(api::message_type::unknown_path).size();
    ASSERT_NO_FATAL_FAILURE(inject(0, frames));
    for (int i = 0; i < 10; ++i) {
        pass(10 * transport::us);
    }
    const std::vector<api::event> all = events(api::message_type::unknown_path);
    ASSERT_EQ(all.size() - before_again, 10u);
    for (std::size_t i = before_again; i < all.size(); ++i) {
        EXPECT_EQ(reported_first.count(all[i].unknown_path.tuple.remote_port), 0u) << "at most one per interval";
        EXPECT_EQ(all[i].unknown_path.count, 2u);
    }
    EXPECT_EQ(workers[0]->counters().events_suppressed, 350u);
    EXPECT_EQ(workers[0]->counters().drops[static_cast<std::size_t>(kdp::drop_reason::unknown_path)], 406u)
        << "every datagram is dropped and counted";
    EXPECT_EQ(workers[1]->counters().events_suppressed, 0u);

    // The same counts in the region, after a request_counters.
    ASSERT_EQ(exchange(api::make_request_counters()).header.type, api::message_type::counters_ready);
    api::worker_snapshot s;
    ASSERT_TRUE(reader.read_worker(0, s));
    EXPECT_EQ(s.worker_totals.events_suppressed, 350u);
    EXPECT_EQ(s.drops.at(static_cast<std::size_t>(kdp::drop_reason::unknown_path)), 406u);
}

// While unknown-path events flood every ring (the worker's replies, the event ring, the
// handler's outbox), events are dropped and counted, but a command's answer still arrives.
TEST_F(command_handling, answers_arrive_while_unknown_path_events_flood) {
    rig_options o;
    o.event_ring_slots = 16;
    o.reply_slots = 256; // events stop at half of it
    o.max_outbox = 32;
    o.unknown_path_events_per_sec = 1e6;
    o.unknown_path_interval = 0; // every datagram an event
    ASSERT_NO_FATAL_FAILURE(start(o));
    reading = false; // the control process is busy elsewhere
    auto flood = [&](std::uint16_t first) {
        std::vector<std::vector<std::uint8_t>> frames;
        for (std::uint16_t p = first; p < first + 500; ++p) {
            frames.push_back(kwik_datagram(p));
        }
        inject(0, frames);
        for (int i = 0; i < 16; ++i) { // 500 / 32 bursts, the handler not polling
            workers[0]->poll(now);
            now += 10 * transport::us;
        }
    };
    ASSERT_NO_FATAL_FAILURE(flood(50000));
    const std::uint64_t seq = send(add_connection(50, "during-the-flood", 0));
    handler->poll(now); // events overflow the ring and the outbox; the command goes to worker 0
    ASSERT_NO_FATAL_FAILURE(flood(51000));
    handler->poll(now);
    EXPECT_GT(workers[0]->counters().events_dropped, 0u) << "the reply ring kept room for answers";
    EXPECT_GT(handler->counters().events_lost, 0u) << "the outbox was full";

    reading = true;
    const api::event e = await(seq);
    EXPECT_EQ(e.command_result.status, result_status::ok) << api::get_text(e.command_result.reason);
    EXPECT_EQ(workers[0]->connection_id_of(0), 50u);
    // Every datagram's event was delivered, dropped by the worker or lost by the handler.
    const std::uint64_t delivered = events(api::message_type::unknown_path).size();
    EXPECT_EQ(delivered + workers[0]->counters().events_dropped + handler->counters().events_lost, 1000u);
    EXPECT_EQ(workers[0]->counters().events_sent, 1000u - workers[0]->counters().events_dropped);
    EXPECT_EQ(workers[0]->counters().events_suppressed, 0u);
}

// ---------------------------------------------------------------------------------------------
// 9. shutdown(): every command still waiting is answered "kwikd stopped"; what the stopped
// workers applied from their mailboxes is answered as usual.

TEST_F(draining, shutdown_answers_every_waiting_command) {
    rig_options o;
    o.event_ring_slots = 16;
    ASSERT_NO_FATAL_FAILURE(start(o));
    ASSERT_NO_FATAL_FAILURE(add_probing_connection(60, 0, 2));
    ASSERT_NO_FATAL_FAILURE(add_probing_connection(61, 1, 1));
    for (std::uint64_t id = 62; id < 80; ++id) {
        ASSERT_NO_FATAL_FAILURE(expect_ok(add_connection(id, "idle-" + std::to_string(id))));
    }
    ASSERT_GT(in_flight(0, 0, 1), 0u);
    ASSERT_GT(in_flight(1, 0, 1), 0u);

    // Draining on the workers.
    const std::uint64_t remove_path = send(api::make_remove_path(60, 1, 60000));
    const std::uint64_t remove_connection = send(api::make_remove_connection(61, 60000));
    for (int i = 0; i < 10; ++i) {
        pass();
    }
    ASSERT_TRUE(answers_to(remove_path).empty());
    ASSERT_TRUE(answers_to(remove_connection).empty());
    // A listing waiting for room on the event ring (the control process stopped reading).
    reading = false;
    const std::uint64_t list = send(api::make_list_state());
    for (int i = 0; i < 3; ++i) {
        pass();
    }
    ASSERT_EQ(control.events().count(), control.events().capacity()) << "the event ring is full";
    // Posted to the workers, which stop before they poll again.
    const std::uint64_t scheduler = send(api::make_set_scheduler(62, api::scheduler_strategy::round_robin));
    const std::uint64_t counters = send(api::make_request_counters());
    handler->poll(now);
    // Sent, never taken off the command ring.
    const std::uint64_t untaken = send(api::make_set_scheduler(63, api::scheduler_strategy::round_robin));

    // kwikd's order: the workers' loops ended; they apply what is in their mailboxes; then the
    // handler answers what is still waiting.
    for (auto& w : workers) {
        w->apply_commands_now(now);
    }
    handler->shutdown(now);
    // As kwikd does after shutdown(): what the event ring could not take goes out as the
    // control process reads (poll() takes no command any more).
    reading = true;
    for (int i = 0; i < 100 && handler->unsent_events() != 0; ++i) {
        collect();
        handler->poll(now);
    }
    collect();
    EXPECT_EQ(handler->unsent_events(), 0u);
    for (const std::uint64_t seq : {remove_path, remove_connection, list, untaken}) {
        const std::vector<api::event> got = answers_to(seq);
        ASSERT_EQ(got.size(), 1u) << seq;
        EXPECT_EQ(got[0].command_result.status, result_status::stopped);
        EXPECT_NE(api::get_text(got[0].command_result.reason).find("kwikd stopped"), std::string_view::npos)
            << api::get_text(got[0].command_result.reason);
    }
    ASSERT_EQ(answers_to(scheduler).size(), 1u);
    EXPECT_EQ(answers_to(scheduler)[0].command_result.status, result_status::ok);
    ASSERT_EQ(answers_to(counters).size(), 1u);
    EXPECT_EQ(answers_to(counters)[0].header.type, api::message_type::counters_ready);
    EXPECT_EQ(answers_to(counters)[0].counters_ready.workers_published, 2u);
    EXPECT_EQ(handler->counters().commands, control_region->header().next_command_sequence - 1)
        << "every command sent was taken";
    // A command after shutdown is not taken (kwikd's loop has ended; the region says stopping).
    const std::uint64_t late = send(api::make_list_state());
    handler->poll(now);
    collect();
    EXPECT_TRUE(answers_to(late).empty());
    EXPECT_EQ(control.commands_queued(), 1u);
}

} // namespace
} // namespace kwik::engine

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    char dir[] = "/tmp/kwik_cht_XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    kwik::engine::g_lock_dir = dir;
    const char* eal[] = {"command_handler_test", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
                         "--file-prefix=kwik_command_handler_test", "--no-telemetry", "-l", "0",
                         "--log-level=*:warning"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "EAL init failed\n");
        return 1;
    }
    const int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    fs::remove_all(kwik::engine::g_lock_dir);
    return rc;
}
