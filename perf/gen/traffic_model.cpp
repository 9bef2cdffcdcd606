// kwik-gen's traffic model; see traffic_model.hpp.
#include "perf/gen/traffic_model.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "dataplane/engine/net_headers.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/packet.hpp"

namespace kwik::gen {

namespace {

using engine::checksum_add;
using engine::checksum_add_be16;
using engine::checksum_fold;
using engine::load_be16;
using engine::load_be32;
using engine::store_be16;

// The sum of bytes that start at an odd position of the checksummed area, as it counts at an
// even one (RFC 1071 2(B)).
inline std::uint64_t place(std::uint64_t sum, std::size_t pos) noexcept {
    return (pos & 1) == 0 ? sum : engine::checksum_swap(checksum_fold(sum));
}
inline void store_sum(std::uint8_t* p, std::uint16_t folded) noexcept {
    std::memcpy(p, &folded, 2); // sums are in native byte order (net_headers.hpp)
}

constexpr std::uint32_t server_ip = (10u << 24) | (100u << 16) | 1u; // 10.100.0.1
inline std::uint32_t client_ip(std::uint32_t path) noexcept {   // 10.0.<path+1>.2
    return (10u << 24) | ((path + 1) << 8) | 2u;
}

// The send record ring of one path: send time and trial per sequence number, and a bit per
// sequence number that is sent and neither acknowledged, reflected nor refused yet.
struct send_ring {
    std::vector<std::uint64_t> tsc;
    std::vector<std::uint32_t> epoch;
    std::vector<std::uint64_t> outstanding;
    std::uint64_t mask = 0;
};

// kwikd's packets received on one path, as up to 8 disjoint ranges, largest first.
struct recv_ranges {
    std::array<kdp::ack_range, 8> r{};
    std::uint32_t count = 0;

    // Returns false for a duplicate.
    bool insert(std::uint64_t s) noexcept {
        std::uint32_t i = 0;
        for (; i < count; ++i) {
            kdp::ack_range& x = r[i];
            if (s >= x.smallest && s <= x.largest) {
                return false;
            }
            if (s == x.largest + 1) {
                x.largest = s;
                if (i > 0 && r[i - 1].smallest == s + 1) { // joins the range above
                    r[i - 1].smallest = x.smallest;
                    erase(i);
                }
                return true;
            }
            if (x.smallest > 0 && s == x.smallest - 1) {
                x.smallest = s;
                if (i + 1 < count && r[i + 1].largest + 1 == s) {
                    x.smallest = r[i + 1].smallest;
                    erase(i + 1);
                }
                return true;
            }
            if (s > x.largest) {
                break;
            }
        }
        if (i == r.size()) {
            return true; // below everything we keep: acknowledged by nobody, as too old
        }
        const std::uint32_t last = std::min<std::uint32_t>(count, static_cast<std::uint32_t>(r.size()) - 1);
        for (std::uint32_t j = last; j > i; --j) {
            r[j] = r[j - 1];
        }
        r[i] = {s, s};
        count = std::min<std::uint32_t>(count + 1, static_cast<std::uint32_t>(r.size()));
        return true;
    }
    void erase(std::uint32_t i) noexcept {
        for (std::uint32_t j = i; j + 1 < count; ++j) {
            r[j] = r[j + 1];
        }
        --count;
    }
};

} // namespace

struct traffic_model::path_state {
    std::uint64_t next_seq = 0;
    std::uint64_t low = 0; // every sequence number below is resolved (acked, refused or expired)
    send_ring ring;
    // Eth + IPv4 + UDP of this (connection, path), with the sums of its constant words.
    std::array<std::uint8_t, eth_ipv4_udp_len> header{};
    std::uint64_t ip_sum = 0;     // IPv4 header words except total length and checksum (native order)
    std::uint64_t pseudo_sum = 0; // UDP pseudo-header and header words except the two lengths
    // kwikd -> us
    recv_ranges received;
    std::uint64_t largest_rx_tsc = 0;
    std::uint64_t ack_pending_since = 0;
    std::uint32_t ack_pending = 0; // ack-eliciting packets not acknowledged yet
    bool queued = false;           // in _ack_queue
};

struct stream_slot {
    std::uint64_t id = 0; // 0: spent (no stream left under --max-streams)
    std::uint64_t offset = 0;
    std::uint64_t max_stream_data = 0;
    std::uint64_t echo_highest = 0;
    std::uint64_t prev_id = 0; // the stream this slot carried before, for its late echoes
    std::uint64_t prev_echo_highest = 0;
};

struct traffic_model::connection_state {
    std::uint32_t global = 0;
    std::uint32_t local = 0; // index in _conns
    std::vector<path_state> paths;
    std::array<stream_slot, 64> slots{};
    std::uint64_t streams_opened = 0;
    std::uint64_t sent_total = 0; // sum over streams of the highest offset sent
    std::uint64_t max_data = 0;
    std::uint32_t next_path = 0;
    std::uint32_t next_slot = 0;
    bool closed = false;
};

counter_values counter_values::read(const model_counters& c) noexcept {
    counter_values v;
#define KWIK_X(name) v.name = c.name.load(std::memory_order_relaxed);
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    return v;
}

counter_values& counter_values::operator+=(const counter_values& o) noexcept {
#define KWIK_X(name) name += o.name;
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    return *this;
}

counter_values counter_values::operator-(const counter_values& o) const noexcept {
    counter_values v;
#define KWIK_X(n) v.n = n - o.n;
    KWIK_GEN_COUNTERS(KWIK_X)
#undef KWIK_X
    return v;
}

static_assert(std::endian::native == std::endian::little, "payload_content::_sum assumes little-endian words");

payload_content::payload_content() : _crc(max_len + 1), _sum(max_len + 1) {
    for (std::size_t i = 0; i < max_len; ++i) {
        _bytes[i] = static_cast<std::uint8_t>((i * 131 + 7) ^ (i >> 8));
    }
    _crc[0] = kdp::crc32c(_bytes.data(), 0);
    _sum[0] = 0;
    for (std::size_t i = 0; i < max_len; ++i) {
        _crc[i + 1] = kdp::crc32c(_bytes.data() + i, 1, _crc[i]);
        // native byte order on a little-endian machine: an even position is a word's low byte
        _sum[i + 1] = _sum[i] + ((i & 1) == 0 ? std::uint32_t{_bytes[i]} : std::uint32_t{_bytes[i]} << 8);
    }
}

std::int32_t return_connection(const model_params& p, const std::uint8_t* f, std::uint32_t len) noexcept {
    if (len < eth_ipv4_udp_len || load_be16(f + 12) != 0x0800 || (f[14] >> 4) != 4 || f[23] != 17) {
        return -1;
    }
    const std::uint32_t ihl = (f[14] & 0x0Fu) * 4;
    if (ihl < 20 || 14 + ihl + 8 > len) {
        return -1;
    }
    const std::uint8_t* udp = f + 14 + ihl;
    const gen_options& o = *p.options;
    const std::uint32_t src = load_be32(f + 26);
    const std::uint32_t dst = load_be32(f + 30);
    const std::uint16_t sport = load_be16(udp);
    const std::uint16_t dport = load_be16(udp + 2);
    auto client = [&o](std::uint32_t ip, std::uint16_t port) -> std::int32_t {
        const std::uint32_t path = ((ip >> 8) & 0xFF) - 1;
        if ((ip & 0xFFFF00FFu) != ((10u << 24) | 2u) || path >= o.paths || port < o.client_port ||
            static_cast<std::uint32_t>(port - o.client_port) >= o.connections) {
            return -1;
        }
        return port - o.client_port;
    };
    if (src == server_ip && sport == o.server_port) {
        return client(dst, dport); // kwikd's packet to one of our connections
    }
    if (dst == server_ip && dport == o.server_port) {
        return client(src, sport); // our own packet, reflected
    }
    return -1;
}

traffic_model::traffic_model(const model_params& params, std::vector<std::uint32_t> connections,
                             model_counters* counters, latency_histogram* latency,
                             latency_histogram* latency_corrected)
    : _params(params), _o(*params.options), _global(std::move(connections)), _counters(counters), _latency(latency),
      _latency_corrected(latency_corrected) {
    _ns_per_tsc = 1e9 / params.tsc_hz;
    _ack_delay_tsc = static_cast<std::uint64_t>(params.tsc_hz * _o.ack_delay_us / 1e6);
    const std::uint32_t frames = _o.frames_per_packet;
    for (std::uint32_t i = 0; i < frames; ++i) {
        _chunk[i] = _o.payload / frames + (i < _o.payload % frames ? 1 : 0);
    }
    _max_frame = static_cast<std::uint32_t>(eth_ipv4_udp_len) + max_udp_payload(_o.mtu);
    std::sort(_global.begin(), _global.end());
    _ack_queue.resize(_global.size() * _o.paths);
    for (std::uint32_t g : _global) {
        auto c = std::make_unique<connection_state>();
        c->global = g;
        c->local = static_cast<std::uint32_t>(_conns.size());
        c->max_data = _o.connection_window;
        c->paths.resize(_o.paths);
        for (std::uint32_t p = 0; p < _o.paths; ++p) {
            path_state& ps = c->paths[p];
            ps.ring.tsc.assign(_o.track_window, 0);
            ps.ring.epoch.assign(_o.track_window, 0);
            ps.ring.outstanding.assign(_o.track_window / 64 + 1, 0);
            ps.ring.mask = _o.track_window - 1;
            std::uint8_t* h = ps.header.data();
            std::memcpy(h, params.dst_mac.data(), 6);
            std::memcpy(h + 6, params.src_mac.data(), 6);
            store_be16(h + 12, 0x0800);
            std::uint8_t* ip = h + 14;
            ip[0] = 0x45;
            ip[1] = 0;
            store_be16(ip + 4, 0);      // identification
            store_be16(ip + 6, 0x4000); // DF (PROTOCOL.md 2)
            ip[8] = 64;
            ip[9] = 17;
            const std::uint32_t sip = client_ip(p);
            for (int b = 0; b < 4; ++b) {
                ip[12 + b] = static_cast<std::uint8_t>(sip >> (24 - 8 * b));
                ip[16 + b] = static_cast<std::uint8_t>(server_ip >> (24 - 8 * b));
            }
            std::uint8_t* udp = ip + 20;
            store_be16(udp, static_cast<std::uint16_t>(_o.client_port + g));
            store_be16(udp + 2, _o.server_port);
            ps.ip_sum = checksum_add(ip + 12, 8, checksum_add(ip + 4, 6, checksum_add(ip, 2, 0)));
            ps.pseudo_sum = checksum_add(udp, 4, checksum_add_be16(17, checksum_add(ip + 12, 8, 0)));
        }
        for (std::uint32_t s = 0; s < _o.streams; ++s) {
            open_stream(*c, s);
        }
        _conns.push_back(std::move(c));
    }
}

traffic_model::~traffic_model() = default;

void traffic_model::open_stream(connection_state& c, std::uint32_t slot) noexcept {
    stream_slot& s = c.slots[slot];
    s.prev_id = s.id;
    s.prev_echo_highest = s.echo_highest;
    if (c.streams_opened >= _o.max_streams) {
        s.id = 0;
        return;
    }
    ++c.streams_opened;
    model_counters::bump(_counters->streams_opened);
    s.id = 2 * c.streams_opened; // client-initiated: even, never 0 (PROTOCOL.md 5.5)
    s.offset = 0;
    s.max_stream_data = _o.stream_window;
    s.echo_highest = 0;
}

void traffic_model::start_trial(std::uint32_t epoch) noexcept {
    _epoch = epoch;
    for (auto& c : _conns) {
        for (std::uint32_t s = 0; s < _o.streams; ++s) {
            if (c->slots[s].id != 0 && c->slots[s].offset != 0) {
                open_stream(*c, s);
            }
        }
    }
}

std::uint64_t traffic_model::register_send(path_state& p, std::uint64_t now_tsc, bool tracked) noexcept {
    const std::uint64_t seq = p.next_seq++;
    const std::uint64_t i = seq & p.ring.mask;
    p.ring.tsc[i] = now_tsc;
    p.ring.epoch[i] = _epoch;
    const std::uint64_t bit = std::uint64_t{1} << (i & 63);
    if (tracked) {
        p.ring.outstanding[i >> 6] |= bit; // a record older by a whole ring is overwritten: expired
    } else {
        p.ring.outstanding[i >> 6] &= ~bit;
    }
    const std::uint64_t window = p.ring.mask + 1;
    if (p.next_seq > window && p.low < p.next_seq - window) {
        p.low = p.next_seq - window;
    }
    return seq;
}

std::uint32_t traffic_model::encode_ack(path_state& p, std::uint32_t path, std::uint64_t now_tsc,
                                        std::span<std::uint8_t> out) noexcept {
    kdp::control_frame c;
    c.type = kdp::control_type::ack;
    c.ack.path_id = path + 1;
    c.ack.ack_delay_us = static_cast<std::uint64_t>(static_cast<double>(now_tsc - p.largest_rx_tsc) * _ns_per_tsc / 1000);
    c.ack.ecn_ce = 0;
    c.ack.range_count = p.received.count;
    for (std::uint32_t i = 0; i < p.received.count; ++i) {
        c.ack.ranges[i] = p.received.r[i];
    }
    return static_cast<std::uint32_t>(kdp::encode_control(c, out));
}

// Writes lengths and checksums around a KDP packet of kdp_len bytes at out + 42. data_sum: the
// one's-complement sum of the KDP bytes already known (the stream data, placed).
std::uint32_t traffic_model::finish_frame(connection_state& c, std::uint32_t path, std::uint8_t* out,
                                          std::uint32_t kdp_len, std::uint64_t data_sum) noexcept {
    path_state& p = c.paths[path];
    std::memcpy(out, p.header.data(), eth_ipv4_udp_len);
    std::uint8_t* ip = out + 14;
    const std::uint16_t total = static_cast<std::uint16_t>(20 + 8 + kdp_len);
    store_be16(ip + 2, total);
    store_sum(ip + 10, static_cast<std::uint16_t>(~checksum_fold(checksum_add_be16(total, p.ip_sum))));
    std::uint8_t* udp = ip + 20;
    const std::uint16_t udp_len = static_cast<std::uint16_t>(8 + kdp_len);
    store_be16(udp + 4, udp_len);
    const std::uint16_t sum = static_cast<std::uint16_t>(
        ~checksum_fold(checksum_add_be16(udp_len, checksum_add_be16(udp_len, p.pseudo_sum + data_sum))));
    store_sum(udp + 6, sum == 0 ? 0xFFFF : sum); // 0 would mean "no checksum" (RFC 768)
    return static_cast<std::uint32_t>(eth_ipv4_udp_len) + kdp_len;
}

built_packet traffic_model::build_packet(std::uint8_t* out, std::uint64_t now_tsc) noexcept {
    built_packet b;
    const std::size_t n = _conns.size();
    for (std::size_t tries = 0; tries < n; ++tries) {
        const std::uint32_t ci = _next_conn;
        _next_conn = _next_conn + 1 == n ? 0 : _next_conn + 1;
        connection_state& c = *_conns[ci];
        if (c.closed) {
            continue;
        }
        // [0]: a piggy-backed ACK, if one goes. A member, and only the entries used are reset:
        // value-initialising 65 frame_descs per packet cost about 330 instructions (callgrind).
        std::array<kdp::frame_desc, 65>& frames = _frames;
        std::uint32_t nf = 1;
        std::uint32_t payload = 0;
        const std::uint32_t path = c.next_path;
        path_state& p = c.paths[path];
        bool waited = false;
        bool spent = true;
        std::uint32_t slot = c.next_slot;
        for (std::uint32_t i = 0; i < _o.frames_per_packet; ++i) {
            std::uint32_t tried = 0; // the next slot with a stream left
            while (c.slots[slot].id == 0 && tried < _o.streams) {
                slot = slot + 1 == _o.streams ? 0 : slot + 1;
                ++tried;
            }
            stream_slot& s = c.slots[slot];
            if (s.id == 0) {
                break;
            }
            spent = false;
            const std::uint64_t len = std::min<std::uint64_t>(_chunk[i], _o.stream_size - s.offset);
            if (s.offset + len > s.max_stream_data || c.sent_total + len > c.max_data) {
                waited = true;
                break;
            }
            kdp::frame_desc& f = frames[nf++];
            f = kdp::frame_desc{};
            f.stream_id = s.id;
            f.offset = s.offset;
            f.flags = s.offset + len == _o.stream_size ? kdp::frame_flag::fin : 0;
            f.prio = kdp::priority::normal;
            f.data = {_params.content->data(), static_cast<std::size_t>(len)};
            f.has_checksum = true;
            f.checksum = _params.content->crc(len);
            s.offset += len;
            c.sent_total += len;
            payload += static_cast<std::uint32_t>(len);
            if (s.offset == _o.stream_size) {
                open_stream(c, slot);
            }
            slot = slot + 1 == _o.streams ? 0 : slot + 1;
        }
        c.next_slot = slot;
        if (payload == 0) {
            if (waited) {
                model_counters::bump(_counters->flow_control_waits);
            } else if (spent) {
                model_counters::bump(_counters->stream_limit_waits);
            }
            continue;
        }
        std::uint32_t first = 1;
        std::array<std::uint8_t, 160> ack_payload;
        if (p.ack_pending != 0) { // piggy-backed ACK first (PROTOCOL.md 13.2), where it fits
            kdp::frame_desc& f = frames[0];
            f = kdp::frame_desc{};
            f.prio = kdp::priority::control;
            f.data = {ack_payload.data(), encode_ack(p, path, now_tsc, ack_payload)};
            kdp::packet_desc probe;
            probe.frames = {frames.data(), nf};
            if (!f.data.empty() && kdp::packet_wire_size(probe) <= max_udp_payload(_o.mtu)) {
                first = 0;
                p.ack_pending = 0;
            }
        }
        kdp::packet_desc pd;
        pd.type = kdp::packet_type::data;
        pd.frames = {frames.data() + first, nf - first};
        const std::uint64_t seq = register_send(p, now_tsc, true);
        pd.seq = seq;
        std::uint8_t* kdp_out = out + eth_ipv4_udp_len;
        const kdp::write_result w = kdp::serialize_packet(pd, {kdp_out, max_udp_payload(_o.mtu)});
        if (!w.ok()) { // unreachable: options.cpp sized --payload for the MTU with the ACK room checked here
            on_refused({0, 0, ci, path, seq});
            c.closed = true;
            continue;
        }
        // The UDP checksum: the stream data sums come from the content table, the rest is summed.
        std::uint64_t sum = 0;
        std::size_t pos = w.size;
        std::size_t end = w.size;
        for (std::uint32_t i = nf; i-- > first;) {
            const std::size_t fs = kdp::frame_wire_size(frames[i]);
            pos -= fs;
            if (frames[i].prio != kdp::priority::control) {
                const std::size_t data_pos = pos + fs - frames[i].data.size();
                sum += place(_params.content->sum(frames[i].data.size()), data_pos);
                const std::size_t after = data_pos + frames[i].data.size();
                sum += place(checksum_add(kdp_out + after, end - after, 0), after);
                end = data_pos;
            }
        }
        sum += checksum_add(kdp_out, end, 0);
        b.length = finish_frame(c, path, out, static_cast<std::uint32_t>(w.size), sum);
        b.payload_bytes = payload;
        b.connection = ci;
        b.path = path;
        b.seq = seq;
        c.next_path = c.next_path + 1 == _o.paths ? 0 : c.next_path + 1;
        return b;
    }
    return b;
}

void traffic_model::on_refused(const built_packet& b) noexcept {
    path_state& p = _conns[b.connection]->paths[b.path];
    const std::uint64_t i = b.seq & p.ring.mask;
    p.ring.outstanding[i >> 6] &= ~(std::uint64_t{1} << (i & 63));
}

bool traffic_model::control_due(std::uint64_t now_tsc) const noexcept {
    if (_challenge_count != 0) {
        return true;
    }
    if (_ack_head == _ack_tail) {
        return false;
    }
    const auto [qc, qp] = _ack_queue[_ack_head % _ack_queue.size()];
    const path_state& ps = _conns[qc]->paths[qp];
    // a stale head (piggy-backed meanwhile) is popped by build_control; a live one waits its delay
    return ps.ack_pending == 0 || now_tsc - ps.ack_pending_since >= _ack_delay_tsc || ps.ack_pending >= 16;
}

std::uint32_t traffic_model::build_control(std::uint8_t* out, std::uint64_t now_tsc) noexcept {
    std::array<kdp::frame_desc, 1> frames;
    std::array<std::uint8_t, 160> payload;
    kdp::packet_desc pd;
    std::uint32_t ci = 0;
    std::uint32_t path = 0;
    if (_challenge_count != 0) {
        const challenge ch = _challenges[--_challenge_count];
        kdp::control_frame c;
        c.type = kdp::control_type::path_response;
        c.challenge = ch.data;
        frames[0].prio = kdp::priority::control;
        frames[0].data = {payload.data(), kdp::encode_control(c, payload)};
        pd.type = kdp::packet_type::keepalive;
        ci = ch.conn;
        path = ch.path;
    } else {
        for (;;) {
            if (_ack_head == _ack_tail) {
                return 0;
            }
            const auto [qc, qp] = _ack_queue[_ack_head % _ack_queue.size()];
            path_state& ps = _conns[qc]->paths[qp];
            if (ps.ack_pending == 0) { // piggy-backed meanwhile
                ps.queued = false;
                ++_ack_head;
                continue;
            }
            if (now_tsc - ps.ack_pending_since < _ack_delay_tsc && ps.ack_pending < 16) {
                return 0; // the oldest owed ACK is not due yet
            }
            ps.queued = false;
            ++_ack_head;
            ci = qc;
            path = qp;
            frames[0].prio = kdp::priority::control;
            frames[0].data = {payload.data(), encode_ack(ps, qp, now_tsc, payload)};
            ps.ack_pending = 0;
            pd.type = kdp::packet_type::ack;
            break;
        }
    }
    connection_state& c = *_conns[ci];
    path_state& p = c.paths[path];
    pd.frames = {frames.data(), 1};
    pd.seq = register_send(p, now_tsc, false);
    std::uint8_t* kdp_out = out + eth_ipv4_udp_len;
    const kdp::write_result w = kdp::serialize_packet(pd, {kdp_out, max_udp_payload(_o.mtu)});
    if (!w.ok()) {
        return 0;
    }
    return finish_frame(c, path, out, static_cast<std::uint32_t>(w.size), checksum_add(kdp_out, w.size, 0));
}

void traffic_model::sample(std::uint64_t sent_tsc, std::uint64_t now_tsc, std::uint64_t ack_delay_us,
                           bool corrected) noexcept {
    if (now_tsc < sent_tsc) {
        return;
    }
    const std::uint64_t ns = static_cast<std::uint64_t>(static_cast<double>(now_tsc - sent_tsc) * _ns_per_tsc);
    _latency->record(ns);
    if (corrected && _latency_corrected != nullptr) {
        const std::uint64_t delay_ns = ack_delay_us * 1000;
        _latency_corrected->record(ns > delay_ns ? ns - delay_ns : 0);
    }
}

void traffic_model::process_ack(connection_state& c, const kdp::ack_frame& a, std::uint64_t now_tsc) noexcept {
    model_counters::bump(_counters->acks);
    if (a.path_id == 0 || a.path_id > c.paths.size()) {
        model_counters::bump(_counters->control_other);
        return;
    }
    path_state& p = c.paths[a.path_id - 1];
    if (p.next_seq == 0) {
        return;
    }
    std::uint64_t newly = 0;
    std::uint64_t current = 0;
    std::uint64_t largest_new = 0;
    bool any = false;
    for (std::size_t r = 0; r < a.range_count; ++r) {
        std::uint64_t lo = std::max(a.ranges[r].smallest, p.low);
        const std::uint64_t hi = std::min(a.ranges[r].largest, p.next_seq - 1);
        while (lo <= hi) {
            const std::uint64_t idx = lo & p.ring.mask;
            const unsigned bit0 = static_cast<unsigned>(idx & 63);
            const std::uint64_t n = std::min<std::uint64_t>(64 - bit0, hi - lo + 1);
            const std::uint64_t span_mask = (n == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1)) << bit0;
            std::uint64_t& word = p.ring.outstanding[idx >> 6];
            std::uint64_t m = word & span_mask;
            if (m != 0) {
                word &= ~m;
                const std::uint64_t word_base = lo - bit0; // sequence number of bit 0
                const std::uint64_t top = word_base + 63 - static_cast<unsigned>(std::countl_zero(m));
                if (!any || top > largest_new) {
                    largest_new = top;
                    any = true;
                }
                while (m != 0) {
                    const unsigned b = static_cast<unsigned>(std::countr_zero(m));
                    m &= m - 1;
                    ++newly;
                    if (p.ring.epoch[(word_base + b) & p.ring.mask] == _epoch) {
                        ++current;
                    }
                }
            }
            lo += n;
        }
    }
    while (p.low < p.next_seq) {
        const std::uint64_t idx = p.low & p.ring.mask;
        if ((p.ring.outstanding[idx >> 6] >> (idx & 63)) & 1) {
            break;
        }
        ++p.low;
    }
    if (newly == 0) {
        return;
    }
    model_counters::bump(_counters->acked_packets, newly);
    if (_o.expect == expect_kind::ack) {
        model_counters::bump(_counters->delivered, current);
    }
    model_counters::bump(_counters->late, newly - current);
    const std::uint64_t idx = largest_new & p.ring.mask;
    if (p.ring.epoch[idx] == _epoch) {
        sample(p.ring.tsc[idx], now_tsc, a.ack_delay_us, largest_new == a.largest());
    }
}

void traffic_model::on_reflected(connection_state& c, std::uint32_t path, const kdp::packet_view& v,
                                 std::uint64_t now_tsc) noexcept {
    path_state& p = c.paths[path];
    if (v.seq < p.low || v.seq >= p.next_seq) {
        model_counters::bump(_counters->reflected_duplicates);
        return;
    }
    const std::uint64_t idx = v.seq & p.ring.mask;
    std::uint64_t& word = p.ring.outstanding[idx >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (idx & 63);
    if ((word & bit) == 0) {
        model_counters::bump(_counters->reflected_duplicates);
        return;
    }
    word &= ~bit;
    model_counters::bump(_counters->reflected);
    if (p.ring.epoch[idx] == _epoch) {
        if (_o.expect == expect_kind::reflect) {
            model_counters::bump(_counters->delivered);
        }
        sample(p.ring.tsc[idx], now_tsc, 0, false);
    } else {
        model_counters::bump(_counters->late);
    }
}

void traffic_model::on_kwikd_packet(connection_state& c, std::uint32_t path, const kdp::packet_view& v,
                                    const std::uint8_t* kdp_bytes, std::uint64_t now_tsc) noexcept {
    path_state& p = c.paths[path];
    if (v.type != static_cast<std::uint8_t>(kdp::packet_type::ack)) { // ack-eliciting (PROTOCOL.md 4.2)
        if (p.received.count == 0 || v.seq > p.received.r[0].largest) {
            p.largest_rx_tsc = now_tsc;
        }
        p.received.insert(v.seq);
        if (p.ack_pending++ == 0) {
            p.ack_pending_since = now_tsc;
        }
        if (!p.queued && !_ack_queue.empty()) {
            p.queued = true;
            _ack_queue[_ack_tail % _ack_queue.size()] = {c.local, path};
            ++_ack_tail;
        }
    }
    for (const kdp::frame_view& f : v.frame_span()) {
        const std::uint8_t* data = kdp_bytes + f.data_pos;
        if (!f.is_control()) {
            if ((f.stream_id & 1) != 0) {
                model_counters::bump(_counters->control_other); // a stream kwikd opened: not ours
                continue;
            }
            const std::uint64_t end = f.offset + f.stream_length;
            for (std::uint32_t s = 0; s < _o.streams; ++s) {
                stream_slot& st = c.slots[s];
                std::uint64_t* highest = st.id == f.stream_id ? &st.echo_highest
                                         : st.prev_id == f.stream_id ? &st.prev_echo_highest : nullptr;
                if (highest != nullptr) {
                    if (end > *highest) {
                        model_counters::bump(_counters->echo_bytes, end - std::max(*highest, f.offset));
                        *highest = end;
                    }
                    break;
                }
            }
            continue;
        }
        kdp::control_frame cf;
        if (kdp::decode_control(f.stream_id, f.offset, data, f.data_length, &cf) != kdp::drop_reason::none) {
            model_counters::bump(_counters->malformed); // parse_packet validated it already
            continue;
        }
        switch (cf.type) {
        case kdp::control_type::ack:
            process_ack(c, cf.ack, now_tsc);
            break;
        case kdp::control_type::max_data:
            c.max_data = std::max(c.max_data, cf.limit);
            model_counters::bump(_counters->window_updates);
            break;
        case kdp::control_type::max_stream_data:
            for (std::uint32_t s = 0; s < _o.streams; ++s) {
                if (c.slots[s].id == cf.stream_id) {
                    c.slots[s].max_stream_data = std::max(c.slots[s].max_stream_data, cf.limit);
                }
            }
            model_counters::bump(_counters->window_updates);
            break;
        case kdp::control_type::path_challenge:
            model_counters::bump(_counters->path_challenges);
            if (_challenge_count < _challenges.size()) {
                _challenges[_challenge_count++] = {c.local, path, cf.challenge};
            }
            break;
        case kdp::control_type::connection_close:
            model_counters::bump(_counters->connection_closes);
            _counters->last_close_connection.store(c.global + 1, std::memory_order_relaxed);
            _counters->last_close_code.store(cf.error_code, std::memory_order_relaxed);
            c.closed = true;
            break;
        default:
            model_counters::bump(_counters->control_other);
            break;
        }
    }
}

void traffic_model::on_packet(const std::uint8_t* frame, std::uint32_t len, std::uint64_t now_tsc) noexcept {
    model_counters::bump(_counters->rx_packets);
    model_counters::bump(_counters->rx_bytes, len);
    const std::int32_t g = return_connection(_params, frame, len);
    if (g < 0) {
        model_counters::bump(_counters->other);
        return;
    }
    // Owned connections are global indices worker, worker + W, ...: their order in _global.
    const auto it = std::lower_bound(_global.begin(), _global.end(), static_cast<std::uint32_t>(g));
    if (it == _global.end() || *it != static_cast<std::uint32_t>(g)) {
        model_counters::bump(_counters->other); // the caller hands these to their owner
        return;
    }
    connection_state& c = *_conns[static_cast<std::size_t>(it - _global.begin())];
    const std::uint32_t ihl = (frame[14] & 0x0Fu) * 4;
    const std::uint8_t* udp = frame + 14 + ihl;
    const std::uint16_t ip_total = load_be16(frame + 16);
    const std::uint16_t udp_len = load_be16(udp + 4);
    if (ip_total < ihl + 8 || 14u + ip_total > len || udp_len < 8 || udp_len > ip_total - ihl) {
        model_counters::bump(_counters->malformed);
        return;
    }
    const bool from_kwikd = load_be32(frame + 26) == server_ip;
    const std::uint32_t client = from_kwikd ? load_be32(frame + 30) : load_be32(frame + 26);
    const std::uint32_t path = ((client >> 8) & 0xFF) - 1;
    if (kdp::parse_packet(kdp::contiguous_bytes(udp + 8, udp_len - 8u), _view) != kdp::drop_reason::none) {
        model_counters::bump(_counters->malformed);
        return;
    }
    if (from_kwikd) {
        on_kwikd_packet(c, path, _view, udp + 8, now_tsc);
    } else {
        on_reflected(c, path, _view, now_tsc);
    }
}

std::uint64_t traffic_model::next_seq(std::uint32_t conn, std::uint32_t path) const noexcept {
    return _conns[conn]->paths[path].next_seq;
}
std::uint64_t traffic_model::stream_id(std::uint32_t conn, std::uint32_t slot) const noexcept {
    return _conns[conn]->slots[slot].id;
}
std::uint64_t traffic_model::stream_offset(std::uint32_t conn, std::uint32_t slot) const noexcept {
    return _conns[conn]->slots[slot].offset;
}

} // namespace kwik::gen
