// Unit tests for controlplane/kcp/channel over a socketpair, with time chosen by the test:
// message ids and header filling, refusals, the priority send queue (a backlog in priority
// order, FIFO within one; a CRITICAL message overtaking a backlog held by a full socket), TTLs
// on the send queue and on receive (with the boundary), the read and idle timeouts, how the
// stream's end and bad frames close the channel, close_when_sent, counters; over TLS, messages
// queued together leave in one record.
#include "controlplane/kcp/channel.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace kwik::kcp {
namespace {

using std::chrono::milliseconds;
using v3::MessagePriority;

struct socket_pair {
    int a = -1;
    int b = -1;
    socket_pair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        a = fds[0];
        b = fds[1];
    }
};

channel make_channel(int fd, clock_sample now, channel_options options = {}) {
    result<channel> ch = channel::plain(fd, std::move(options), now);
    EXPECT_TRUE(ch.ok()) << ch.message();
    return std::move(*ch);
}

KCPMessage probe(std::uint64_t sequence, MessagePriority priority = v3::NORMAL,
                 std::uint32_t ttl = 0) {
    KCPMessage m;
    m.mutable_header()->set_priority(priority);
    m.mutable_header()->set_ttl_seconds(ttl);
    m.mutable_health_check_req()->set_sequence(sequence);
    return m;
}

// Moves everything a has to send into b.
void flow(channel& a, channel& b, clock_sample now) {
    for (int i = 0; i < 1000 && a.wants_write(); ++i) {
        a.on_writable(now);
        b.on_readable(now);
    }
    b.on_readable(now);
}

std::vector<std::uint64_t> sequences(channel& ch) {
    std::vector<std::uint64_t> out;
    KCPMessage m;
    while (ch.receive(m)) {
        out.push_back(m.health_check_req().sequence());
    }
    return out;
}

void write_raw(int fd, const std::string& bytes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
}

class kcp_channel : public testing::Test {
protected:
    clock_sample t0 = clock_sample::now();
    socket_pair fds;
};

TEST_F(kcp_channel, send_assigns_ids_and_fills_the_header) {
    channel_options options;
    options.connection_id = "conn-9";
    channel a = make_channel(fds.a, t0, options);
    channel b = make_channel(fds.b, t0);

    KCPMessage stamped = probe(2);
    stamped.mutable_header()->set_timestamp_ms(1234);
    stamped.mutable_header()->set_connection_id("other");
    stamped.mutable_header()->set_message_id(999); // replaced
    EXPECT_EQ(*a.send(probe(1), t0), 1u);
    EXPECT_EQ(*a.send(stamped, t0), 2u);
    EXPECT_EQ(*a.send(probe(3), t0), 3u);
    EXPECT_EQ(a.last_message_id(), 3u);
    EXPECT_EQ(a.queued(), 3u);
    EXPECT_TRUE(a.wants_write());

    flow(a, b, t0);
    KCPMessage m;
    ASSERT_TRUE(b.receive(m));
    EXPECT_EQ(m.header().message_id(), 1u);
    EXPECT_EQ(m.header().timestamp_ms(), t0.wall_ms);
    EXPECT_EQ(m.header().connection_id(), "conn-9");
    ASSERT_TRUE(b.receive(m));
    EXPECT_EQ(m.header().message_id(), 2u);
    EXPECT_EQ(m.header().timestamp_ms(), 1234u);
    EXPECT_EQ(m.header().connection_id(), "other");
    ASSERT_TRUE(b.receive(m));
    EXPECT_EQ(m.header().message_id(), 3u);
    EXPECT_FALSE(b.receive(m));
    EXPECT_FALSE(a.wants_write());

    EXPECT_EQ(a.counters().messages_out, 3u);
    EXPECT_EQ(b.counters().messages_in, 3u);
    EXPECT_EQ(a.counters().bytes_out, b.counters().bytes_in);
    EXPECT_GT(a.counters().bytes_out, 0u);
}

TEST_F(kcp_channel, send_refuses_what_cannot_go) {
    channel_options small;
    small.max_message_size = 100;
    channel a = make_channel(fds.a, t0, small);

    KCPMessage empty;
    empty.mutable_header();
    EXPECT_NE(a.send(empty, t0).message().find("without a payload"), std::string::npos);

    KCPMessage odd = probe(1);
    odd.mutable_header()->set_priority(static_cast<MessagePriority>(7));
    EXPECT_NE(a.send(odd, t0).message().find("header.priority 7 is not a MessagePriority"),
              std::string::npos);

    KCPMessage big = probe(1);
    big.mutable_health_check_req()->set_connection_id(std::string(200, 'x'));
    const result<std::uint64_t> r = a.send(big, t0);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("health_check_req message of"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("above the maximum of 100 bytes"), std::string::npos);

    EXPECT_EQ(a.queued(), 0u);
    EXPECT_EQ(*a.send(probe(1), t0), 1u); // refusals use no id

    a.close("test over");
    EXPECT_EQ(a.send(probe(2), t0).message(), "the KCP session is closed: test over");
    EXPECT_EQ(a.counters().unsent_on_close, 1u);
    EXPECT_EQ(a.cause(), close_cause::local);
}

TEST_F(kcp_channel, a_backlog_goes_in_priority_order_fifo_within_one) {
    channel a = make_channel(fds.a, t0);
    channel b = make_channel(fds.b, t0);
    const MessagePriority order[] = {v3::LOW,    v3::NORMAL, v3::CRITICAL, v3::HIGH,
                                     v3::LOW,    v3::HIGH,   v3::NORMAL,   v3::CRITICAL,
                                     v3::NORMAL, v3::LOW,    v3::CRITICAL, v3::HIGH};
    for (std::uint64_t i = 0; i < std::size(order); ++i) {
        ASSERT_TRUE(a.send(probe(i, order[i]), t0).ok());
    }
    flow(a, b, t0);
    EXPECT_EQ(sequences(b), (std::vector<std::uint64_t>{2, 7, 10, 3, 5, 11, 1, 6, 8, 0, 4, 9}));
}

// With the socket full, the queue holds the backlog: a CRITICAL message sent then goes right
// after what was already handed to the socket, ahead of every LOW message still queued.
TEST_F(kcp_channel, critical_overtakes_a_backlog_behind_a_full_socket) {
    channel a = make_channel(fds.a, t0);
    channel b = make_channel(fds.b, t0);
    constexpr std::uint64_t backlog = 2000;
    for (std::uint64_t i = 0; i < backlog; ++i) {
        KCPMessage m = probe(i, v3::LOW);
        m.mutable_health_check_req()->set_connection_id(std::string(1000, 'p'));
        ASSERT_TRUE(a.send(std::move(m), t0).ok());
    }
    a.on_writable(t0); // until the socket takes no more
    ASSERT_TRUE(a.wants_write());
    const std::uint64_t handed = a.counters().messages_out;
    ASSERT_GT(handed, 0u);
    ASSERT_LT(handed, backlog);
    ASSERT_TRUE(a.send(probe(backlog, v3::CRITICAL), t0).ok());

    flow(a, b, t0);
    const std::vector<std::uint64_t> got = sequences(b);
    ASSERT_EQ(got.size(), backlog + 1);
    EXPECT_EQ(got[handed], backlog);
    for (std::uint64_t i = 0; i < backlog; ++i) {
        EXPECT_EQ(got[i < handed ? i : i + 1], i);
    }
}

// A peer that sends requests and never reads the answers: past max_unsent_bytes the channel
// asks not to be read; once the peer reads, it asks again; still over it after read_timeout,
// the session ends (send_backlog) and the queue is freed.
TEST_F(kcp_channel, answers_the_peer_never_reads_stop_reading_then_end_the_session) {
    channel_options o;
    o.max_unsent_bytes = 64 * 1024;
    o.read_timeout = milliseconds(500);
    channel a = make_channel(fds.a, t0, o);
    channel b = make_channel(fds.b, t0);
    auto big = [](std::uint64_t i) {
        KCPMessage m = probe(i);
        m.mutable_health_check_req()->set_connection_id(std::string(1000, 'p'));
        return m;
    };
    std::uint64_t sent = 0;
    while (a.wants_read() && sent < 100'000) {
        ASSERT_TRUE(a.send(big(sent++), t0).ok());
        a.on_writable(t0); // the socket buffer fills; the rest stays queued
    }
    ASSERT_FALSE(a.wants_read()) << "the cap stops reading";
    EXPECT_GT(a.unsent_bytes(), o.max_unsent_bytes);
    EXPECT_LT(a.unsent_bytes(), o.max_unsent_bytes + 2 * 1024) << "by one message at most";
    a.poll(t0);
    EXPECT_EQ(a.next_deadline(), t0.steady + o.read_timeout) << "read_timeout from when it went over";

    // The peer reads: under the cap again, reading resumes and the backlog clock stops.
    flow(a, b, t0 + milliseconds(100));
    EXPECT_EQ(sequences(b).size(), sent);
    EXPECT_TRUE(a.wants_read());
    EXPECT_EQ(a.unsent_bytes(), 0u);
    a.poll(t0 + milliseconds(100));

    // Over it again and the peer never reads: closed after read_timeout, not before.
    const clock_sample t1 = t0 + milliseconds(200);
    while (a.wants_read()) {
        ASSERT_TRUE(a.send(big(sent++), t1).ok());
        a.on_writable(t1);
    }
    a.poll(t1);
    a.poll(t1 + milliseconds(499));
    EXPECT_FALSE(a.closed());
    a.poll(t1 + milliseconds(500));
    ASSERT_TRUE(a.closed());
    EXPECT_EQ(a.cause(), close_cause::send_backlog);
    EXPECT_NE(a.close_reason().find("bytes of answers unsent for"), std::string::npos) << a.close_reason();
    EXPECT_EQ(a.unsent_bytes(), 0u);
}

TEST_F(kcp_channel, ttl_expired_in_the_send_queue_is_dropped_with_a_reason) {
    channel a = make_channel(fds.a, t0);
    channel b = make_channel(fds.b, t0);
    ASSERT_TRUE(a.send(probe(1, v3::NORMAL, 1), t0).ok()); // expires at t0 + 1000 ms
    ASSERT_TRUE(a.send(probe(2, v3::NORMAL, 0), t0).ok()); // never
    ASSERT_TRUE(a.send(probe(3, v3::NORMAL, 2), t0).ok());
    KCPMessage edge = probe(4, v3::NORMAL, 1);
    edge.mutable_header()->set_timestamp_ms(t0.wall_ms + 1);
    ASSERT_TRUE(a.send(edge, t0).ok()); // 1000 ms old at t0 + 1001: not older than its TTL

    flow(a, b, t0 + milliseconds(1001));
    EXPECT_EQ(sequences(b), (std::vector<std::uint64_t>{2, 3, 4}));
    EXPECT_EQ(a.counters().expired_out, 1u);
    EXPECT_EQ(a.counters().messages_out, 3u);
    dropped_message d;
    ASSERT_TRUE(a.next_drop(d));
    EXPECT_TRUE(d.outgoing);
    EXPECT_EQ(d.message_id, 1u);
    EXPECT_EQ(d.payload, "health_check_req");
    EXPECT_EQ(d.reason, "health_check_req message_id 1 expired before it was sent: 1001 ms "
                        "after its timestamp, ttl 1 s");
    EXPECT_FALSE(a.next_drop(d));
}

TEST_F(kcp_channel, poll_drops_expired_messages_the_socket_did_not_take) {
    channel a = make_channel(fds.a, t0);
    ASSERT_TRUE(a.send(probe(1, v3::HIGH, 5), t0).ok());
    ASSERT_TRUE(a.send(probe(2, v3::LOW, 0), t0).ok());
    a.poll(t0 + milliseconds(5000));
    EXPECT_EQ(a.queued(), 2u);
    a.poll(t0 + milliseconds(5001));
    EXPECT_EQ(a.queued(), 1u);
    EXPECT_EQ(a.counters().expired_out, 1u);
}

TEST_F(kcp_channel, drop_records_keep_the_last_64) {
    channel a = make_channel(fds.a, t0);
    for (std::uint64_t i = 0; i < 70; ++i) {
        ASSERT_TRUE(a.send(probe(i, v3::LOW, 1), t0).ok());
    }
    a.poll(t0 + milliseconds(2000));
    EXPECT_EQ(a.counters().expired_out, 70u);
    dropped_message d;
    int n = 0;
    std::uint64_t first = 0;
    while (a.next_drop(d)) {
        first = n++ == 0 ? d.message_id : first;
    }
    EXPECT_EQ(n, 64);
    EXPECT_EQ(first, 7u);
}

// The receive side: frames written raw, so the sender's queue cannot drop them first.
TEST_F(kcp_channel, ttl_expired_on_arrival_is_dropped_with_a_reason) {
    channel b = make_channel(fds.b, t0);
    auto stamped = [&](std::uint64_t seq, std::uint64_t timestamp, std::uint32_t ttl) {
        KCPMessage m = probe(seq, v3::NORMAL, ttl);
        m.mutable_header()->set_message_id(seq + 100);
        m.mutable_header()->set_timestamp_ms(timestamp);
        return encode(m);
    };
    write_raw(fds.a, stamped(1, t0.wall_ms - 5000, 2));  // expired 3 s ago
    write_raw(fds.a, stamped(2, t0.wall_ms - 5000, 5));  // exactly 5 s old: not older
    write_raw(fds.a, stamped(3, t0.wall_ms - 5001, 5));  // 1 ms too old
    write_raw(fds.a, stamped(4, t0.wall_ms - 90000, 0)); // no TTL
    write_raw(fds.a, stamped(5, 0, 1));                   // no timestamp: TTL not checkable
    write_raw(fds.a, stamped(6, t0.wall_ms + 60000, 1)); // from the future: skew, kept
    b.on_readable(t0);
    EXPECT_EQ(sequences(b), (std::vector<std::uint64_t>{2, 4, 5, 6}));
    EXPECT_EQ(b.counters().expired_in, 2u);
    EXPECT_EQ(b.counters().messages_in, 4u);
    dropped_message d;
    ASSERT_TRUE(b.next_drop(d));
    EXPECT_FALSE(d.outgoing);
    EXPECT_EQ(d.message_id, 101u);
    EXPECT_EQ(d.reason, "health_check_req message_id 101 arrived expired: received 5000 ms "
                        "after its timestamp, ttl 2 s");
    ASSERT_TRUE(b.next_drop(d));
    EXPECT_EQ(d.message_id, 103u);
    EXPECT_FALSE(b.closed());
}

TEST_F(kcp_channel, read_timeout_fires_on_a_frame_left_incomplete) {
    channel b = make_channel(fds.b, t0);
    const std::string frame = encode(probe(1));
    write_raw(fds.a, frame.substr(0, 3));
    b.on_readable(t0);
    const milliseconds timeout = b.options().read_timeout;
    EXPECT_EQ(timeout, milliseconds(10'000));
    EXPECT_EQ(b.next_deadline(), t0.steady + timeout);
    b.poll(t0 + (timeout - milliseconds(1)));
    EXPECT_FALSE(b.closed());
    b.poll(t0 + timeout);
    ASSERT_TRUE(b.closed());
    EXPECT_EQ(b.cause(), close_cause::read_timeout);
    EXPECT_EQ(b.close_reason(), "a frame stayed incomplete for 10 s (3 bytes of it received)");
}

TEST_F(kcp_channel, a_frame_completed_in_time_clears_the_read_timeout) {
    channel b = make_channel(fds.b, t0);
    const std::string frame = encode(probe(1));
    write_raw(fds.a, frame.substr(0, 3));
    b.on_readable(t0);
    write_raw(fds.a, frame.substr(3) + frame.substr(0, 2)); // the rest, and a new frame begins
    b.on_readable(t0 + milliseconds(9000));
    EXPECT_EQ(sequences(b), std::vector<std::uint64_t>{1});
    b.poll(t0 + milliseconds(18'999)); // the new frame's 10 s run from 9 s
    EXPECT_FALSE(b.closed());
    b.poll(t0 + milliseconds(19'000));
    EXPECT_EQ(b.cause(), close_cause::read_timeout);
    EXPECT_EQ(b.close_reason(), "a frame stayed incomplete for 10 s (2 bytes of it received)");
}

TEST_F(kcp_channel, idle_timeout_counts_from_the_last_message_received) {
    channel_options options;
    options.idle_timeout = milliseconds(30'000);
    channel b = make_channel(fds.b, t0, options);
    EXPECT_EQ(b.next_deadline(), t0.steady + milliseconds(30'000));
    write_raw(fds.a, encode(probe(1)));
    b.on_readable(t0 + milliseconds(20'000));
    b.poll(t0 + milliseconds(49'999));
    EXPECT_FALSE(b.closed());
    b.poll(t0 + milliseconds(50'000));
    ASSERT_TRUE(b.closed());
    EXPECT_EQ(b.cause(), close_cause::idle_timeout);
    EXPECT_EQ(b.close_reason(), "no message received for 30 s");
    EXPECT_EQ(sequences(b), std::vector<std::uint64_t>{1}); // what arrived is still there
}

TEST_F(kcp_channel, zero_turns_the_timeouts_off) {
    channel_options options;
    options.read_timeout = milliseconds(0);
    options.idle_timeout = milliseconds(0);
    channel b = make_channel(fds.b, t0, options);
    write_raw(fds.a, encode(probe(1)).substr(0, 2));
    b.on_readable(t0);
    EXPECT_EQ(b.next_deadline(), std::chrono::steady_clock::time_point::max());
    b.poll(t0 + milliseconds(24 * 3600 * 1000));
    EXPECT_FALSE(b.closed());
}

TEST_F(kcp_channel, end_of_stream_between_frames_is_a_peer_close) {
    channel b = make_channel(fds.b, t0);
    write_raw(fds.a, encode(probe(1)));
    ::close(fds.a);
    b.on_readable(t0);
    EXPECT_EQ(b.cause(), close_cause::peer_closed);
    EXPECT_EQ(b.close_reason(), "the peer closed the connection");
    EXPECT_EQ(sequences(b), std::vector<std::uint64_t>{1});
}

TEST_F(kcp_channel, end_of_stream_inside_a_frame_is_a_truncated_frame) {
    channel b = make_channel(fds.b, t0);
    write_raw(fds.a, encode(probe(1)).substr(0, 3));
    ::close(fds.a);
    b.on_readable(t0);
    EXPECT_EQ(b.cause(), close_cause::frame_error);
    EXPECT_EQ(b.close_reason(), "the peer closed the connection inside a frame (3 bytes of it "
                                "received)");
    EXPECT_EQ(b.counters().frames_rejected[static_cast<std::size_t>(frame_error::truncated)], 1u);
}

TEST_F(kcp_channel, a_bad_frame_closes_with_the_readers_reason) {
    channel b = make_channel(fds.b, t0);
    write_raw(fds.a, encode(probe(1)) + std::string("\x80\x00", 2));
    b.on_readable(t0);
    ASSERT_TRUE(b.closed());
    EXPECT_EQ(b.cause(), close_cause::frame_error);
    EXPECT_NE(b.close_reason().find("is not minimal"), std::string::npos) << b.close_reason();
    EXPECT_EQ(
        b.counters().frames_rejected[static_cast<std::size_t>(frame_error::length_non_minimal)],
        1u);
    EXPECT_EQ(sequences(b), std::vector<std::uint64_t>{1}); // the good frame before it
    // The peer sees the end of the stream.
    char c;
    EXPECT_EQ(::recv(fds.a, &c, 1, 0), 0);
}

TEST_F(kcp_channel, close_when_sent_writes_the_queue_then_closes) {
    channel a = make_channel(fds.a, t0);
    channel b = make_channel(fds.b, t0);
    for (std::uint64_t i = 1; i <= 3; ++i) {
        ASSERT_TRUE(a.send(probe(i), t0).ok());
    }
    a.close_when_sent("rejected: bad proof", t0);
    EXPECT_FALSE(a.closed());
    EXPECT_NE(a.send(probe(4), t0).message().find("closing: rejected: bad proof"),
              std::string::npos);
    a.on_writable(t0);
    EXPECT_TRUE(a.closed());
    EXPECT_EQ(a.cause(), close_cause::local);
    EXPECT_EQ(a.close_reason(), "rejected: bad proof");
    EXPECT_EQ(a.counters().unsent_on_close, 0u);
    b.on_readable(t0);
    EXPECT_EQ(sequences(b), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(b.cause(), close_cause::peer_closed);
}

TEST_F(kcp_channel, close_when_sent_gives_up_after_the_read_timeout) {
    channel a = make_channel(fds.a, t0);
    ASSERT_TRUE(a.send(probe(1), t0).ok());
    a.close_when_sent("bye", t0); // never writable: nobody calls on_writable
    a.poll(t0 + milliseconds(9'999));
    EXPECT_FALSE(a.closed());
    a.poll(t0 + milliseconds(10'000));
    EXPECT_TRUE(a.closed());
    EXPECT_EQ(a.counters().unsent_on_close, 1u);
}

// Everything readable on fd now (non-blocking).
std::string drain(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) {
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

// TLS records in bytes (5-byte headers: type, version, length): their count, or -1 when bytes
// do not end on a record boundary.
int count_records(const std::string& bytes) {
    int records = 0;
    std::size_t at = 0;
    while (at + 5 <= bytes.size()) {
        const auto length = (static_cast<std::size_t>(static_cast<unsigned char>(bytes[at + 3])) << 8) |
                            static_cast<unsigned char>(bytes[at + 4]);
        at += 5 + length;
        ++records;
    }
    return at == bytes.size() ? records : -1;
}

TEST(kcp_channel_tls, messages_queued_together_leave_in_one_record) {
    const clock_sample t0 = clock_sample::now();
    auto identity = generate_self_signed();
    ASSERT_TRUE(identity.ok()) << identity.message();
    auto server_context = tls_context::server(*identity);
    ASSERT_TRUE(server_context.ok()) << server_context.message();
    auto client_context = tls_context::client(server_context->pin());
    ASSERT_TRUE(client_context.ok()) << client_context.message();
    // client <-> c.b, relayed by the test, s.b <-> server: the test sees every byte.
    socket_pair c;
    socket_pair s;
    auto client = channel::tls(c.a, *client_context, {}, t0);
    auto server = channel::tls(s.a, *server_context, {}, t0);
    ASSERT_TRUE(client.ok() && server.ok());
    for (int i = 0; i < 50 && (client->current_phase() != channel::phase::open ||
                               server->current_phase() != channel::phase::open);
         ++i) {
        client->on_writable(t0);
        write_raw(s.b, drain(c.b));
        server->on_readable(t0);
        server->on_writable(t0);
        write_raw(c.b, drain(s.b));
        client->on_readable(t0);
    }
    ASSERT_EQ(client->current_phase(), channel::phase::open) << client->close_reason();
    ASSERT_EQ(server->current_phase(), channel::phase::open) << server->close_reason();
    drain(c.b);

    for (std::uint64_t i = 1; i <= 16; ++i) {
        ASSERT_TRUE(client->send(probe(i), t0).ok());
    }
    client->on_writable(t0);
    const std::string wire = drain(c.b);
    EXPECT_EQ(count_records(wire), 1) << wire.size() << " bytes";
    EXPECT_EQ(client->counters().messages_out, 16u);
    write_raw(s.b, wire);
    server->on_readable(t0);
    std::vector<std::uint64_t> expected;
    for (std::uint64_t i = 1; i <= 16; ++i) {
        expected.push_back(i);
    }
    EXPECT_EQ(sequences(*server), expected);
    EXPECT_FALSE(server->closed()) << server->close_reason();

    // Above one record's 16 KiB of plaintext the batch is cut into several, all delivered.
    KCPMessage big = probe(17);
    big.mutable_health_check_req()->set_connection_id(std::string(6000, 'x'));
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(client->send(big, t0).ok());
    }
    client->on_writable(t0);
    const std::string more = drain(c.b);
    EXPECT_GE(count_records(more), 2);
    write_raw(s.b, more);
    server->on_readable(t0);
    EXPECT_EQ(sequences(*server), (std::vector<std::uint64_t>{17, 17, 17, 17}));
}

TEST(kcp_channel_names, close_causes) {
    EXPECT_EQ(to_string(close_cause::read_timeout), "read_timeout");
    EXPECT_EQ(to_string(close_cause::tls_error), "tls_error");
    EXPECT_EQ(to_string(close_cause::send_backlog), "send_backlog");
}

} // namespace
} // namespace kwik::kcp
