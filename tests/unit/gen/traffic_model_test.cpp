// perf/gen/traffic_model: every packet kwik-gen builds decodes with valid IPv4 and UDP checksums
// and parses through dataplane/kdp with valid CRCs; sequence numbers and stream offsets advance,
// streams finish at --stream-size and new ids open within --max-streams; kwikd's ACKs, window
// updates, echoes and challenges are counted and answered; reflected packets count once.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dataplane/kdp/packet.hpp"
#include "perf/gen/traffic_model.hpp"
#include "tools/common/net_headers.hpp"

namespace kwik::gen {
namespace {

constexpr std::uint64_t tsc_hz = 1'000'000'000; // 1 TSC cycle = 1 ns in these tests

gen_options options_of(std::vector<std::string> extra) {
    std::vector<std::string> args{"kwik-gen", "--dst-mac", "02:00:00:00:00:aa"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto parsed = parse_options(args);
    EXPECT_TRUE(parsed.options.has_value()) << parsed.message;
    return parsed.options.value_or(gen_options{});
}

struct decoded {
    tools::udp_frame_info udp;
    kdp::packet_view kdp;
    kdp::drop_reason verdict = kdp::drop_reason::none;
    std::vector<std::uint8_t> bytes;
};

decoded decode(const std::uint8_t* frame, std::uint32_t len) {
    decoded d;
    d.bytes.assign(frame, frame + len);
    EXPECT_EQ(tools::decode_udp(tools::link_layer::ethernet, d.bytes, d.bytes.size(), d.udp), tools::decap_error::none);
    d.verdict = kdp::parse_packet(kdp::contiguous_bytes(d.udp.payload), d.kdp);
    return d;
}

// A packet as kwikd sends it to connection conn, path (0-based) of the default plan.
std::vector<std::uint8_t> from_kwikd(const gen_options& o, std::uint32_t conn, std::uint32_t path, std::uint64_t seq,
                                     kdp::packet_type type, std::span<const kdp::frame_desc> frames) {
    std::array<std::uint8_t, 4096> kdp_bytes{};
    kdp::packet_desc pd;
    pd.seq = seq;
    pd.type = type;
    pd.frames = frames;
    const auto w = kdp::serialize_packet(pd, kdp_bytes);
    EXPECT_TRUE(w.ok());
    tools::udp_frame_desc u;
    u.src = *tools::parse_endpoint("10.100.0.1:" + std::to_string(o.server_port));
    u.dst = *tools::parse_endpoint("10.0." + std::to_string(path + 1) + ".2:" + std::to_string(o.client_port + conn));
    std::vector<std::uint8_t> out;
    tools::append_udp_frame(u, {kdp_bytes.data(), w.size}, out);
    return out;
}

kdp::frame_desc control(const kdp::control_frame& c, std::array<std::uint8_t, 256>& buf) {
    kdp::frame_desc f;
    f.prio = kdp::priority::control;
    f.stream_id = kdp::control_stream_id(c);
    f.offset = kdp::control_offset(c);
    f.data = {buf.data(), kdp::encode_control(c, buf)};
    return f;
}

struct fixture {
    explicit fixture(gen_options opts, std::vector<std::uint32_t> conns = {0})
        : o(std::move(opts)) {
        params.options = &o;
        params.content = &content;
        params.src_mac = {0x02, 0, 0, 0, 0, 0x01};
        params.dst_mac = *o.dst_mac;
        params.tsc_hz = tsc_hz;
        model = std::make_unique<traffic_model>(params, std::move(conns), &counters, &latency, &corrected);
        buf.resize(model->max_frame());
    }
    built_packet build(std::uint64_t now) { return model->build_packet(buf.data(), now); }

    gen_options o;
    payload_content content;
    model_params params;
    model_counters counters;
    latency_histogram latency;
    latency_histogram corrected;
    std::unique_ptr<traffic_model> model;
    std::vector<std::uint8_t> buf;
};

TEST(traffic_model, packets_round_trip_with_valid_checksums_and_advancing_sequences) {
    fixture f(options_of({"--connections", "2", "--paths", "2", "--streams", "2", "--payload", "101",
                          "--frames-per-packet", "2", "--stream-size", "250"}),
              {0, 1});
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> next_seq; // (client port, path) -> seq
    std::map<std::pair<std::uint16_t, std::uint64_t>, std::uint64_t> stream_end; // (port, stream) -> offset
    std::map<std::uint16_t, std::uint64_t> fins;
    for (int i = 0; i < 40; ++i) {
        const built_packet b = f.build(1000 + i);
        ASSERT_GT(b.length, 0u);
        const decoded d = decode(f.buf.data(), b.length);
        ASSERT_EQ(d.verdict, kdp::drop_reason::none) << "packet " << i;
        ASSERT_TRUE(d.udp.ipv4_checksum_ok.value_or(false));
        ASSERT_TRUE(d.udp.udp_checksum_ok.value_or(false)) << "packet " << i;
        EXPECT_EQ(tools::to_string(d.udp.dst), "10.100.0.1");
        EXPECT_EQ(d.udp.dst_port, 7707);
        const std::uint32_t path = d.udp.src.bytes[2];
        EXPECT_GE(path, 1u);
        EXPECT_LE(path, 2u);
        EXPECT_EQ(d.udp.src.bytes[3], 2);
        EXPECT_EQ(d.bytes[0], 0x02);
        EXPECT_EQ(d.bytes[5], 0xaa);
        // per path sequence numbers: 0, 1, 2 ... with no gap
        auto& seq = next_seq[{d.udp.src_port, path}];
        EXPECT_EQ(d.kdp.seq, seq);
        seq = d.kdp.seq + 1;
        EXPECT_EQ(b.seq, d.kdp.seq);
        std::uint64_t payload = 0;
        for (const kdp::frame_view& fr : d.kdp.frame_span()) {
            ASSERT_FALSE(fr.is_control());
            EXPECT_EQ(fr.stream_id % 2, 0u);
            // every stream continues where it stopped: new data on every packet
            auto& end = stream_end[{d.udp.src_port, fr.stream_id}];
            EXPECT_EQ(fr.offset, end) << "stream " << fr.stream_id;
            end = fr.offset + fr.stream_length;
            EXPECT_LE(end, 250u);
            EXPECT_EQ((fr.flags & kdp::frame_flag::fin) != 0, end == 250u);
            fins[d.udp.src_port] += (fr.flags & kdp::frame_flag::fin) != 0 ? 1 : 0;
            payload += fr.stream_length;
        }
        EXPECT_EQ(payload, b.payload_bytes);
    }
    // both connections sent; streams rolled over to new ids (2 open at a time)
    EXPECT_EQ(next_seq.size(), 4u);
    EXPECT_GE(fins[40000], 2u);
    EXPECT_GE(fins[40001], 2u);
    EXPECT_GT(stream_end.size(), 8u);
    EXPECT_EQ(f.counters.streams_opened.load(), 4 + fins[40000] + fins[40001]); // 2 each, one more per FIN
}

TEST(traffic_model, kwikd_acks_count_each_packet_once_and_give_latency) {
    fixture f(options_of({"--paths", "1", "--payload", "100"}));
    for (int i = 0; i < 10; ++i) {
        ASSERT_GT(f.build(1000 * (i + 1)).length, 0u); // seq i sent at 1000 (i + 1) ns
    }
    kdp::control_frame ack;
    ack.type = kdp::control_type::ack;
    ack.ack.path_id = 1;
    ack.ack.ack_delay_us = 2;
    ack.ack.range_count = 2;
    ack.ack.ranges[0] = {7, 5};
    ack.ack.ranges[1] = {2, 0};
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(ack, buf);
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::ack, {&fr, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 20'000);
    EXPECT_EQ(f.counters.acks.load(), 1u);
    EXPECT_EQ(f.counters.acked_packets.load(), 6u);
    EXPECT_EQ(f.counters.delivered.load(), 6u);
    // latency: now 20000 - sent 8000 (seq 7) = 12 us; corrected by the 2 us ACK delay
    auto s = f.latency.snapshot();
    EXPECT_EQ(s.count, 1u);
    EXPECT_EQ(s.min, 12'000u);
    EXPECT_EQ(f.corrected.snapshot().min, 10'000u);
    // the same ACK again, and one overlapping it: only seq 3, 4, 8, 9 are new
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 21'000);
    EXPECT_EQ(f.counters.acked_packets.load(), 6u);
    ack.ack.range_count = 1;
    ack.ack.ranges[0] = {9, 0};
    const kdp::frame_desc fr2 = control(ack, buf);
    pkt = from_kwikd(f.o, 0, 0, 1, kdp::packet_type::ack, {&fr2, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 30'000);
    EXPECT_EQ(f.counters.acked_packets.load(), 10u);
    EXPECT_EQ(f.counters.delivered.load(), 10u);
    EXPECT_EQ(f.latency.snapshot().count, 2u);
    EXPECT_EQ(f.latency.snapshot().max, 20'000u); // seq 9 sent at 10000
    // an ACK for a path that does not exist and one beyond what was sent change nothing
    ack.ack.path_id = 5;
    const kdp::frame_desc fr3 = control(ack, buf);
    pkt = from_kwikd(f.o, 0, 0, 2, kdp::packet_type::ack, {&fr3, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 31'000);
    EXPECT_EQ(f.counters.acked_packets.load(), 10u);
    EXPECT_EQ(f.counters.control_other.load(), 1u);
}

TEST(traffic_model, a_refused_packet_is_never_delivered_and_late_acks_are_not_this_trials) {
    fixture f(options_of({"--payload", "100"}));
    const built_packet b0 = f.build(100);
    ASSERT_GT(f.build(200).length, 0u);
    f.model->on_refused(b0);
    f.model->start_trial(1);
    ASSERT_GT(f.build(300).length, 0u); // seq 2, trial 1
    kdp::control_frame ack;
    ack.type = kdp::control_type::ack;
    ack.ack.path_id = 1;
    ack.ack.range_count = 1;
    ack.ack.ranges[0] = {2, 0};
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(ack, buf);
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::ack, {&fr, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 1000);
    EXPECT_EQ(f.counters.acked_packets.load(), 2u); // seq 1 and 2; seq 0 was refused
    EXPECT_EQ(f.counters.delivered.load(), 1u);     // seq 2 only: seq 1 belongs to trial 0
    EXPECT_EQ(f.counters.late.load(), 1u);
}

TEST(traffic_model, flow_control_waits_for_max_data_and_stream_limit_ends_sending) {
    fixture f(options_of({"--payload", "512", "--streams", "1", "--stream-size", "1024", "--stream-window", "1024",
                          "--connection-window", "1536", "--max-streams", "2"}));
    ASSERT_GT(f.build(1).length, 0u); // stream 2: 0..512
    ASSERT_GT(f.build(2).length, 0u); // stream 2: 512..1024 FIN; stream 4 opens
    ASSERT_GT(f.build(3).length, 0u); // stream 4: 0..512 (connection total 1536)
    EXPECT_EQ(f.build(4).length, 0u);
    EXPECT_EQ(f.counters.flow_control_waits.load(), 1u);
    kdp::control_frame md;
    md.type = kdp::control_type::max_data;
    md.limit = 4096;
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(md, buf);
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::control, {&fr, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 5);
    EXPECT_EQ(f.counters.window_updates.load(), 1u);
    const built_packet b = f.build(6); // stream 4: 512..1024 FIN, then no stream is left
    ASSERT_GT(b.length, 0u);
    EXPECT_EQ(f.model->stream_id(0, 0), 0u);
    EXPECT_EQ(f.build(7).length, 0u);
    EXPECT_EQ(f.counters.stream_limit_waits.load(), 1u);
    EXPECT_EQ(f.counters.streams_opened.load(), 2u);
}

TEST(traffic_model, echoed_data_is_counted_once_and_acknowledged) {
    fixture f(options_of({"--payload", "100", "--streams", "1", "--endpoint", "echo", "--ack-delay-us", "5"}));
    ASSERT_GT(f.build(1).length, 0u);
    ASSERT_GT(f.build(2).length, 0u);
    const std::uint64_t id = f.model->stream_id(0, 0);
    std::array<std::uint8_t, 150> data{};
    kdp::frame_desc s;
    s.stream_id = id;
    s.offset = 0;
    s.data = {data.data(), 150};
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::data, {&s, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 10);
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 11); // a retransmission: not again
    s.offset = 100;
    s.data = {data.data(), 100};
    pkt = from_kwikd(f.o, 0, 0, 1, kdp::packet_type::data, {&s, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 12);
    EXPECT_EQ(f.counters.echo_bytes.load(), 200u);
    // the ACK is owed: not before --ack-delay-us (5 us) unless a data packet carries it
    EXPECT_EQ(f.model->build_control(f.buf.data(), 13), 0u);
    const std::uint32_t len = f.model->build_control(f.buf.data(), 10 + 5'000);
    ASSERT_GT(len, 0u);
    const decoded d = decode(f.buf.data(), len);
    ASSERT_EQ(d.verdict, kdp::drop_reason::none);
    ASSERT_TRUE(d.udp.udp_checksum_ok.value_or(false));
    EXPECT_EQ(d.kdp.type, static_cast<std::uint8_t>(kdp::packet_type::ack));
    EXPECT_EQ(d.kdp.seq, 2u); // the path's next sequence number
    kdp::control_frame c;
    const kdp::frame_view& fv = d.kdp.frames[0];
    ASSERT_EQ(kdp::decode_control(fv.stream_id, fv.offset, d.udp.payload.data() + fv.data_pos, fv.data_length, &c),
              kdp::drop_reason::none);
    EXPECT_EQ(c.ack.path_id, 1u);
    EXPECT_EQ(c.ack.largest(), 1u);
    EXPECT_EQ(c.ack.range_count, 1u);
    EXPECT_EQ(c.ack.ranges[0].smallest, 0u);
    EXPECT_EQ(f.model->build_control(f.buf.data(), 20'000), 0u); // owed once
    // the next ACK rides on a data packet
    pkt = from_kwikd(f.o, 0, 0, 2, kdp::packet_type::data, {&s, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 30'000);
    const built_packet b = f.build(30'001);
    const decoded d2 = decode(f.buf.data(), b.length);
    ASSERT_EQ(d2.verdict, kdp::drop_reason::none);
    ASSERT_TRUE(d2.udp.udp_checksum_ok.value_or(false));
    ASSERT_EQ(d2.kdp.frame_count, 2u);
    EXPECT_TRUE(d2.kdp.frames[0].is_control());
    EXPECT_EQ(f.model->build_control(f.buf.data(), 90'000), 0u);
}

TEST(traffic_model, challenges_get_responses_and_closes_stop_the_connection) {
    fixture f(options_of({"--payload", "100"}));
    kdp::control_frame ch;
    ch.type = kdp::control_type::path_challenge;
    ch.challenge = {1, 2, 3, 4, 5, 6, 7, 8};
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(ch, buf);
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::keepalive, {&fr, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 1);
    EXPECT_EQ(f.counters.path_challenges.load(), 1u);
    const std::uint32_t len = f.model->build_control(f.buf.data(), 2);
    ASSERT_GT(len, 0u);
    const decoded d = decode(f.buf.data(), len);
    ASSERT_EQ(d.verdict, kdp::drop_reason::none);
    EXPECT_EQ(d.kdp.type, static_cast<std::uint8_t>(kdp::packet_type::keepalive));
    EXPECT_EQ(d.kdp.frames[0].control, static_cast<std::uint8_t>(kdp::control_type::path_response));
    EXPECT_EQ(std::memcmp(d.udp.payload.data() + d.kdp.frames[0].data_pos + 1, ch.challenge.data(), 8), 0);

    kdp::control_frame close;
    close.type = kdp::control_type::connection_close;
    close.error_code = 2;
    const kdp::frame_desc fc = control(close, buf);
    pkt = from_kwikd(f.o, 0, 0, 1, kdp::packet_type::control, {&fc, 1});
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 3);
    EXPECT_EQ(f.counters.connection_closes.load(), 1u);
    EXPECT_EQ(f.counters.last_close_code.load(), 2u);
    EXPECT_EQ(f.counters.last_close_connection.load(), 1u);
    EXPECT_EQ(f.build(4).length, 0u);
}

TEST(traffic_model, reflected_packets_count_once_and_junk_is_counted_not_parsed) {
    fixture f(options_of({"--payload", "64", "--expect", "reflect"}));
    const built_packet b = f.build(1000);
    std::vector<std::uint8_t> copy(f.buf.begin(), f.buf.begin() + b.length);
    f.model->on_packet(copy.data(), b.length, 5000);
    f.model->on_packet(copy.data(), b.length, 6000);
    EXPECT_EQ(f.counters.reflected.load(), 1u);
    EXPECT_EQ(f.counters.reflected_duplicates.load(), 1u);
    EXPECT_EQ(f.counters.delivered.load(), 1u);
    EXPECT_EQ(f.latency.snapshot().min, 4000u);
    // a corrupted kwikd packet, an ARP frame, a truncated frame
    kdp::control_frame md;
    md.type = kdp::control_type::max_data;
    md.limit = 1 << 20;
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(md, buf);
    auto pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::control, {&fr, 1});
    pkt.back() ^= 0x40;
    f.model->on_packet(pkt.data(), static_cast<std::uint32_t>(pkt.size()), 7000);
    EXPECT_EQ(f.counters.malformed.load(), 1u);
    std::vector<std::uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    f.model->on_packet(arp.data(), 60, 8000);
    f.model->on_packet(copy.data(), 20, 9000);
    EXPECT_EQ(f.counters.other.load(), 2u);
    EXPECT_EQ(f.counters.rx_packets.load(), 5u);
}

TEST(traffic_model, return_connection_names_the_owner) {
    fixture f(options_of({"--connections", "3", "--paths", "2"}), {1});
    kdp::control_frame md;
    md.type = kdp::control_type::max_data;
    md.limit = 1 << 20;
    std::array<std::uint8_t, 256> buf;
    const kdp::frame_desc fr = control(md, buf);
    auto pkt = from_kwikd(f.o, 2, 1, 0, kdp::packet_type::control, {&fr, 1});
    EXPECT_EQ(return_connection(f.params, pkt.data(), static_cast<std::uint32_t>(pkt.size())), 2);
    pkt = from_kwikd(f.o, 0, 0, 0, kdp::packet_type::control, {&fr, 1});
    EXPECT_EQ(return_connection(f.params, pkt.data(), static_cast<std::uint32_t>(pkt.size())), 0);
    const built_packet b = f.build(1); // connection 1's own packet, reflected
    EXPECT_EQ(return_connection(f.params, f.buf.data(), b.length), 1);
    pkt[32] = 9; // 10.0.9.2: no such path
    EXPECT_EQ(return_connection(f.params, pkt.data(), static_cast<std::uint32_t>(pkt.size())), -1);
}

} // namespace
} // namespace kwik::gen
