// The traffic model behind kwik-pcapgen. Time advances in send slots: in each slot one
// connection (round robin) sends one packet, then the network delivers every packet due by
// that slot to the capture point, next to the server, which reacts at once. A reordered
// packet is due up to --reorder-depth slots late; a duplicate follows its original. All
// randomness comes from one std::mt19937_64 drawn in a fixed order, so a seed fixes the file.
#include "tools/pcapgen/traffic_generator.hpp"

#include <array>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "dataplane/kdp/control.hpp"
#include "dataplane/kdp/crc32c.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/transport/frame_protection.hpp"
#include "tools/common/content_pattern.hpp"
#include "tools/common/net_headers.hpp"
#include "tools/common/range_set.hpp"

namespace kwik::tools::pcapgen {

namespace {

enum class direction : std::uint8_t { client_to_server = 0, server_to_client = 1 };

// After this many impaired attempts a retransmission goes out unimpaired, so the file always
// carries every byte intact even at loss and corruption rates close to 1.
constexpr std::uint32_t max_impaired_attempts = 16;

struct frame_plan {
    std::uint64_t stream_id;
    std::uint64_t offset;
    std::uint32_t length;
    std::uint8_t flags;
    kdp::priority prio;
};

struct packet_plan {
    std::vector<frame_plan> frames;
    bool priority_class = false;
    std::optional<std::uint32_t> pinned_path;
};

struct stream_state {
    std::uint64_t id;
    std::uint64_t size;
    std::uint32_t crc;
    kdp::priority prio;
    bool ordered;
    std::uint32_t path; // --spread stream: the path it is pinned to
    range_set received; // at the server
};

struct path_state {
    std::array<std::uint64_t, 2> next_seq{}; // per direction
    std::set<std::uint64_t> received;        // client-to-server seqs the server got intact
    std::uint32_t since_ack = 0;
    std::uint64_t data_sends = 0;
};

struct retransmit_item {
    packet_plan plan;
    std::uint32_t last_path;
    std::uint64_t last_seq;
    std::uint32_t attempt;
};

// Smooth weighted round robin (nginx): equal weights give plain round robin.
class weighted_round_robin {
public:
    explicit weighted_round_robin(const std::vector<std::uint32_t>& weights)
        : _weight(weights.begin(), weights.end()), _current(weights.size(), 0) {
        for (std::int64_t w : _weight) {
            _total += w;
        }
    }

    std::uint32_t next() {
        std::size_t best = 0;
        for (std::size_t i = 0; i < _weight.size(); ++i) {
            _current[i] += _weight[i];
            if (_current[i] > _current[best]) {
                best = i;
            }
        }
        _current[best] -= _total;
        return static_cast<std::uint32_t>(best);
    }

private:
    std::vector<std::int64_t> _weight;
    std::vector<std::int64_t> _current;
    std::int64_t _total = 0;
};

struct connection_state {
    std::uint32_t index = 0;
    std::vector<stream_state> streams;
    std::vector<path_state> paths;
    std::deque<packet_plan> fresh;
    std::multimap<std::uint64_t, retransmit_item> retransmits; // due slot -> item
    std::deque<std::uint32_t> keepalives_due;                   // paths
    std::optional<weighted_round_robin> scheduler;
    std::uint32_t data_since_update = 0;
    // --encrypt-key: one sealing state shared by every connection: they all use the one key, so
    // one nonce counter over the whole capture keeps every nonce unique.
    std::shared_ptr<transport::frame_protection> protection;

    bool idle() const noexcept { return fresh.empty() && retransmits.empty() && keepalives_due.empty(); }
};

struct wire_packet {
    std::uint32_t connection = 0;
    std::uint32_t path = 0;
    direction dir = direction::client_to_server;
    std::uint64_t seq = 0;
    kdp::packet_type type = kdp::packet_type::data;
    std::vector<std::uint8_t> frame; // Ethernet frame as written
    nlohmann::json frames;           // frame summaries for the manifest
    std::optional<packet_plan> stream_data;
    std::optional<std::array<std::uint8_t, kdp::path_challenge_len>> challenge;
    std::optional<std::pair<std::uint32_t, std::uint64_t>> retransmits; // (path, seq) it replaces
    std::optional<std::size_t> corrupted_at; // UDP payload offset of the changed byte
    bool duplicate = false;
};

std::string hex32(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

std::string_view packet_type_name(kdp::packet_type t) noexcept {
    switch (t) {
    case kdp::packet_type::data:
        return "data";
    case kdp::packet_type::control:
        return "control";
    case kdp::packet_type::ack:
        return "ack";
    case kdp::packet_type::keepalive:
        return "keepalive";
    case kdp::packet_type::priority:
        return "priority";
    case kdp::packet_type::retransmission:
        return "retransmission";
    }
    return "unknown";
}

std::string_view control_type_name(kdp::control_type t) noexcept {
    switch (t) {
    case kdp::control_type::ack:
        return "ack";
    case kdp::control_type::max_data:
        return "max_data";
    case kdp::control_type::max_stream_data:
        return "max_stream_data";
    case kdp::control_type::reset_stream:
        return "reset_stream";
    case kdp::control_type::path_challenge:
        return "path_challenge";
    case kdp::control_type::path_response:
        return "path_response";
    case kdp::control_type::connection_close:
        return "connection_close";
    case kdp::control_type::data_blocked:
        return "data_blocked";
    case kdp::control_type::stream_data_blocked:
        return "stream_data_blocked";
    }
    return "unknown";
}

class traffic_generator {
public:
    traffic_generator(const generator_options& o, pcap_writer& out) : _o(o), _out(out), _rng(o.seed) {}

    result<nlohmann::json> run();

private:
    // ---- set-up ----
    void plan_connection(connection_state& c);

    // ---- client side ----
    bool send_one(connection_state& c);
    result<void> send_data(connection_state& c, packet_plan plan, std::uint32_t path,
                           const retransmit_item* again);
    void note_data_send(connection_state& c, std::uint32_t path);

    // ---- server side ----
    void receive(wire_packet& p);
    result<void> send_ack(connection_state& c, std::uint32_t path);

    // ---- both ----
    // Serialises, impairs and queues one packet (or records it as lost).
    result<void> transmit(connection_state& c, wire_packet p, std::span<const kdp::frame_desc> frames,
                          bool impair, std::uint32_t attempt);
    result<void> send_control(connection_state& c, std::uint32_t path, direction dir,
                              kdp::packet_type type, std::span<const kdp::control_frame> controls,
                              std::optional<std::array<std::uint8_t, kdp::path_challenge_len>> challenge);
    void deliver_due(bool everything);
    void write_record(wire_packet& p);

    bool chance(double rate) {
        // 53 random bits as a double in [0, 1): the same on every platform, unlike
        // std::bernoulli_distribution, so a seed gives the same file everywhere.
        return static_cast<double>(_rng() >> 11) * 0x1.0p-53 < rate;
    }
    std::uint64_t below(std::uint64_t n) { return _rng() % n; }

    const generator_options& _o;
    pcap_writer& _out;
    std::mt19937_64 _rng;
    std::vector<connection_state> _connections;
    std::map<std::pair<std::uint64_t, std::uint64_t>, wire_packet> _network; // (due slot, order)
    std::uint64_t _order = 0;
    std::uint64_t _slot = 0;
    std::uint16_t _ip_id = 0;
    std::optional<error> _failure; // from a reaction inside deliver_due

    nlohmann::json _packets = nlohmann::json::array();
    nlohmann::json _lost = nlohmann::json::array();
    std::uint64_t _transmitted = 0;
    std::uint64_t _corrupted = 0;
    std::uint64_t _duplicated = 0;
    std::uint64_t _reordered = 0;
    std::uint64_t _retransmissions = 0;
    std::map<std::string, std::uint64_t> _by_type;
};

void traffic_generator::plan_connection(connection_state& c) {
    const std::uint32_t npaths = static_cast<std::uint32_t>(_o.paths.size());
    c.paths.resize(npaths);
    for (path_state& ps : c.paths) {
        ps.next_seq = {_o.first_sequence, _o.first_sequence};
    }
    c.scheduler.emplace(_o.weights);
    weighted_round_robin stream_paths(_o.weights);
    std::vector<std::uint8_t> chunk(64 * 1024);
    for (std::uint32_t i = 0; i < _o.streams; ++i) {
        stream_state s;
        s.id = 2 * (i + 1); // client-initiated streams are even (docs/PROTOCOL.md 13.1)
        s.size = _o.stream_size_min;
        if (_o.stream_size_max > _o.stream_size_min) {
            s.size += below(_o.stream_size_max - _o.stream_size_min + 1);
        }
        s.prio = _o.priorities[i % _o.priorities.size()];
        s.ordered = _o.ordered == ordered_mode::all || (_o.ordered == ordered_mode::alternate && i % 2 == 0);
        s.path = stream_paths.next();
        std::uint32_t crc = 0;
        for (std::uint64_t off = 0; off < s.size; off += chunk.size()) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), s.size - off));
            fill_pattern(_o.content, _o.seed, c.index, s.id, off, std::span(chunk.data(), n));
            crc = kdp::crc32c(chunk.data(), n, crc);
        }
        s.crc = crc;
        c.streams.push_back(std::move(s));
    }

    // Frames of all streams interleaved one at a time; packed per class (normal, or high and
    // critical, which travel in priority packets) and, with --spread stream, per path.
    std::vector<std::uint64_t> next_offset(c.streams.size(), 0);
    std::vector<bool> done(c.streams.size(), false);
    std::map<std::pair<bool, std::uint32_t>, packet_plan> pending;
    auto flush = [&c](packet_plan& p) {
        if (!p.frames.empty()) {
            c.fresh.push_back(std::move(p));
            p = packet_plan{};
        }
    };
    std::size_t remaining = c.streams.size();
    while (remaining > 0) {
        for (std::size_t i = 0; i < c.streams.size(); ++i) {
            if (done[i]) {
                continue;
            }
            const stream_state& s = c.streams[i];
            const std::uint64_t off = next_offset[i];
            const std::uint32_t len = static_cast<std::uint32_t>(std::min<std::uint64_t>(_o.max_frame_data, s.size - off));
            std::uint8_t flags = 0;
            if (off + len == s.size) {
                flags |= kdp::frame_flag::fin;
                done[i] = true;
                --remaining;
            }
            if (s.prio != kdp::priority::normal) {
                flags |= kdp::frame_flag::priority;
            }
            if (s.ordered) {
                flags |= kdp::frame_flag::ordered;
            }
            next_offset[i] = off + len;
            const bool prio_class = s.prio != kdp::priority::normal;
            const std::uint32_t pin = _o.spread == spread_mode::stream ? s.path : 0;
            packet_plan& p = pending[{prio_class, pin}];
            p.priority_class = prio_class;
            if (_o.spread == spread_mode::stream) {
                p.pinned_path = s.path;
            }
            p.frames.push_back({s.id, off, len, flags, s.prio});
            if (p.frames.size() == _o.frames_per_packet) {
                flush(p);
            }
        }
    }
    for (auto& [key, p] : pending) {
        flush(p);
    }
}

void traffic_generator::note_data_send(connection_state& c, std::uint32_t path) {
    path_state& ps = c.paths[path];
    ++ps.data_sends;
    if (_o.keepalive_every != 0 && ps.data_sends % _o.keepalive_every == 0) {
        c.keepalives_due.push_back(path);
    }
}

bool traffic_generator::send_one(connection_state& c) {
    auto due = c.retransmits.begin();
    if (due != c.retransmits.end() && due->first <= _slot) {
        retransmit_item item = std::move(due->second);
        c.retransmits.erase(due);
        const std::uint32_t path = (item.last_path + 1) % static_cast<std::uint32_t>(c.paths.size());
        packet_plan plan = item.plan;
        const result<void> r = send_data(c, std::move(plan), path, &item);
        if (!r) {
            _failure = error{r.message()};
        }
        return true;
    }
    if (!c.keepalives_due.empty()) {
        const std::uint32_t path = c.keepalives_due.front();
        c.keepalives_due.pop_front();
        kdp::control_frame challenge;
        challenge.type = kdp::control_type::path_challenge;
        std::array<std::uint8_t, kdp::path_challenge_len> bytes{};
        const std::uint64_t r = _rng();
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            bytes[i] = static_cast<std::uint8_t>(r >> (8 * i));
        }
        challenge.challenge = bytes;
        const result<void> sent = send_control(c, path, direction::client_to_server, kdp::packet_type::keepalive,
                                               std::span(&challenge, 1), bytes);
        if (!sent) {
            _failure = error{sent.message()};
        }
        return true;
    }
    if (!c.fresh.empty()) {
        packet_plan plan = std::move(c.fresh.front());
        c.fresh.pop_front();
        const std::uint32_t path = plan.pinned_path ? *plan.pinned_path : c.scheduler->next();
        const result<void> r = send_data(c, std::move(plan), path, nullptr);
        if (!r) {
            _failure = error{r.message()};
        }
        return true;
    }
    return false;
}

result<void> traffic_generator::send_data(connection_state& c, packet_plan plan, std::uint32_t path,
                                          const retransmit_item* again) {
    std::vector<std::vector<std::uint8_t>> buffers(plan.frames.size());
    std::vector<kdp::frame_desc> frames(plan.frames.size());
    wire_packet p;
    p.frames = nlohmann::json::array();
    for (std::size_t i = 0; i < plan.frames.size(); ++i) {
        frame_plan& f = plan.frames[i];
        if (again != nullptr) {
            f.flags |= kdp::frame_flag::retransmit;
        }
        buffers[i].resize(f.length + (c.protection ? kdp::aead_tag_len : 0));
        fill_pattern(_o.content, _o.seed, c.index, f.stream_id, f.offset, std::span(buffers[i].data(), f.length));
        frames[i].stream_id = f.stream_id;
        frames[i].offset = f.offset;
        frames[i].flags = f.flags;
        frames[i].prio = f.prio;
        frames[i].data = {buffers[i].data(), f.length};
        if (c.protection) {
            // Sealed afresh on every send, retransmissions included: a new nonce each time.
            if (c.protection->seal(frames[i], buffers[i].data(), f.length, 0) != transport::seal_refusal::none) {
                return error{"--encrypt-key: the key could not seal a frame (OpenSSL)"};
            }
        }
        p.frames.push_back({{"stream_id", f.stream_id},
                            {"offset", f.offset},
                            {"flags", frames[i].flags},
                            {"data_length", frames[i].data.size()},
                            {"priority", static_cast<int>(f.prio)}});
    }
    p.connection = c.index;
    p.path = path;
    p.dir = direction::client_to_server;
    p.type = again != nullptr      ? kdp::packet_type::retransmission
             : plan.priority_class ? kdp::packet_type::priority
                                   : kdp::packet_type::data;
    if (again != nullptr) {
        p.retransmits = std::pair{again->last_path, again->last_seq};
        ++_retransmissions;
    }
    p.stream_data = std::move(plan);
    const std::uint32_t attempt = again != nullptr ? again->attempt : 0;
    note_data_send(c, path);
    return transmit(c, std::move(p), frames, attempt < max_impaired_attempts, attempt);
}

result<void> traffic_generator::send_control(connection_state& c, std::uint32_t path, direction dir,
                                             kdp::packet_type type,
                                             std::span<const kdp::control_frame> controls,
                                             std::optional<std::array<std::uint8_t, kdp::path_challenge_len>> challenge) {
    std::vector<std::array<std::uint8_t, kdp::max_control_payload>> payloads(controls.size());
    std::vector<kdp::frame_desc> frames(controls.size());
    wire_packet p;
    p.frames = nlohmann::json::array();
    for (std::size_t i = 0; i < controls.size(); ++i) {
        const std::size_t n = kdp::encode_control(controls[i], payloads[i]);
        if (n == 0) {
            return error{"internal error: cannot encode a " + std::string(control_type_name(controls[i].type)) +
                         " control frame"};
        }
        frames[i].stream_id = kdp::control_stream_id(controls[i]);
        frames[i].offset = kdp::control_offset(controls[i]);
        frames[i].prio = kdp::priority::control;
        frames[i].data = std::span<const std::uint8_t>(payloads[i].data(), n);
        p.frames.push_back({{"stream_id", frames[i].stream_id},
                            {"offset", frames[i].offset},
                            {"flags", 0},
                            {"data_length", n},
                            {"priority", static_cast<int>(kdp::priority::control)},
                            {"control", control_type_name(controls[i].type)}});
    }
    p.connection = c.index;
    p.path = path;
    p.dir = dir;
    p.type = type;
    if (dir == direction::client_to_server) {
        p.challenge = challenge;
    }
    return transmit(c, std::move(p), frames, true, 0);
}

result<void> traffic_generator::transmit(connection_state& c, wire_packet p,
                                         std::span<const kdp::frame_desc> frames, bool impair,
                                         std::uint32_t attempt) {
    path_state& ps = c.paths[p.path];
    p.seq = ps.next_seq[static_cast<std::size_t>(p.dir)]++;
    kdp::packet_desc desc;
    desc.seq = p.seq;
    desc.type = p.type;
    desc.frames = frames;
    std::vector<std::uint8_t> payload(kdp::packet_wire_size(desc));
    const kdp::write_result w = kdp::serialize_packet(desc, payload);
    if (!w.ok()) {
        return error{"internal error: cannot serialise a " + std::string(packet_type_name(p.type)) +
                     " packet: " + std::string(kdp::to_string(w.invalid))};
    }
    payload.resize(w.size);
    ++_transmitted;
    ++_by_type[std::string(packet_type_name(p.type))];

    auto retransmit_later = [&] {
        if (p.stream_data) {
            c.retransmits.emplace(_slot + _o.retransmit_delay,
                                  retransmit_item{*p.stream_data, p.path, p.seq, attempt + 1});
        }
    };
    if (impair && chance(_o.loss)) {
        _lost.push_back({{"connection", p.connection},
                         {"path", p.path},
                         {"direction", p.dir == direction::client_to_server ? "client_to_server" : "server_to_client"},
                         {"seq", p.seq},
                         {"type", packet_type_name(p.type)}});
        retransmit_later();
        return {};
    }
    if (impair && chance(_o.corrupt)) {
        const std::size_t at = below(payload.size());
        payload[at] ^= static_cast<std::uint8_t>(1 + below(255));
        p.corrupted_at = at;
        ++_corrupted;
        retransmit_later();
    }
    std::uint64_t delay = 0;
    if (chance(_o.reorder)) {
        delay = 1 + below(_o.reorder_depth);
        ++_reordered;
    }
    const bool duplicate = chance(_o.duplicate);
    const std::uint64_t duplicate_delay = duplicate ? delay + below(_o.reorder_depth + 1) : 0;

    const path_spec& spec = _o.paths[p.path];
    endpoint client = spec.client;
    client.port = static_cast<std::uint16_t>(client.port + c.index);
    udp_frame_desc u;
    const std::uint8_t path_byte = static_cast<std::uint8_t>(p.path + 1);
    const mac_address client_mac{{0x02, 0x00, 0x00, 0x00, path_byte, 0x01}};
    const mac_address server_mac = _o.server_mac.value_or(mac_address{{0x02, 0x00, 0x00, 0x00, path_byte, 0x02}});
    const bool upstream = p.dir == direction::client_to_server;
    u.src = upstream ? client : spec.server;
    u.dst = upstream ? spec.server : client;
    u.src_mac = upstream ? client_mac : server_mac;
    u.dst_mac = upstream ? server_mac : client_mac;
    u.ip_id = _ip_id++;
    append_udp_frame(u, payload, p.frame);

    if (duplicate) {
        ++_duplicated;
        wire_packet copy = p;
        copy.duplicate = true;
        _network.emplace(std::pair{_slot + delay, _order++}, std::move(p));
        _network.emplace(std::pair{_slot + duplicate_delay, _order++}, std::move(copy));
    } else {
        _network.emplace(std::pair{_slot + delay, _order++}, std::move(p));
    }
    return {};
}

void traffic_generator::write_record(wire_packet& p) {
    const std::uint64_t index = _out.records();
    _out.write(_o.start_time * 1000000 + index * _o.interval_us, p.frame);
    const bool upstream = p.dir == direction::client_to_server;
    const path_spec& spec = _o.paths[p.path];
    endpoint client = spec.client;
    client.port = static_cast<std::uint16_t>(client.port + p.connection);
    nlohmann::json rec = {
        {"index", index},
        {"connection", p.connection},
        {"path", p.path},
        {"direction", upstream ? "client_to_server" : "server_to_client"},
        {"src", to_string(upstream ? client : spec.server)},
        {"dst", to_string(upstream ? spec.server : client)},
        {"seq", p.seq},
        {"type", packet_type_name(p.type)},
        {"type_code", static_cast<int>(p.type)},
        {"frame_count", p.frames.size()},
        {"frames", p.frames},
        {"corrupted", p.corrupted_at.has_value()},
        {"duplicate", p.duplicate},
    };
    if (p.corrupted_at) {
        rec["corrupted_at"] = *p.corrupted_at;
    }
    if (p.retransmits) {
        rec["retransmits"] = {{"path", p.retransmits->first}, {"seq", p.retransmits->second}};
    }
    _packets.push_back(std::move(rec));
}

void traffic_generator::receive(wire_packet& p) {
    connection_state& c = _connections[p.connection];
    path_state& ps = c.paths[p.path];
    ps.received.insert(p.seq);
    ++ps.since_ack;
    if (p.challenge) {
        kdp::control_frame response;
        response.type = kdp::control_type::path_response;
        response.challenge = *p.challenge;
        const result<void> r = send_control(c, p.path, direction::server_to_client, kdp::packet_type::keepalive,
                                            std::span(&response, 1), std::nullopt);
        if (!r) {
            _failure = error{r.message()};
        }
    }
    if (p.stream_data) {
        for (const frame_plan& f : p.stream_data->frames) {
            c.streams[f.stream_id / 2 - 1].received.add(f.offset, f.offset + f.length);
        }
        ++c.data_since_update;
        if (_o.window_update_every != 0 && c.data_since_update >= _o.window_update_every) {
            c.data_since_update = 0;
            const stream_state& s = c.streams[p.stream_data->frames.back().stream_id / 2 - 1];
            std::array<kdp::control_frame, 2> updates;
            updates[0].type = kdp::control_type::max_stream_data;
            updates[0].stream_id = s.id;
            updates[0].limit = s.received.contiguous_from_zero() + _o.window;
            std::uint64_t in_order = 0;
            for (const stream_state& other : c.streams) {
                in_order += other.received.contiguous_from_zero();
            }
            updates[1].type = kdp::control_type::max_data;
            updates[1].limit = in_order + _o.window * c.streams.size();
            const result<void> r = send_control(c, p.path, direction::server_to_client, kdp::packet_type::control,
                                                updates, std::nullopt);
            if (!r) {
                _failure = error{r.message()};
            }
        }
    }
    if (_o.ack_every != 0 && ps.since_ack >= _o.ack_every) {
        const result<void> r = send_ack(c, p.path);
        if (!r) {
            _failure = error{r.message()};
        }
    }
}

result<void> traffic_generator::send_ack(connection_state& c, std::uint32_t path) {
    path_state& ps = c.paths[path];
    ps.since_ack = 0;
    kdp::control_frame ack;
    ack.type = kdp::control_type::ack;
    ack.ack.path_id = path + 1; // path ids start at 1 (kcp.proto)
    std::size_t n = 0;
    for (auto it = ps.received.rbegin(); it != ps.received.rend() && n <= kdp::max_ack_ranges;) {
        const std::uint64_t largest = *it;
        std::uint64_t smallest = largest;
        ++it;
        while (it != ps.received.rend() && *it + 1 == smallest) {
            smallest = *it;
            ++it;
        }
        ack.ack.ranges[n++] = {largest, smallest};
    }
    ack.ack.range_count = n;
    return send_control(c, path, direction::server_to_client, kdp::packet_type::ack, std::span(&ack, 1),
                        std::nullopt);
}

void traffic_generator::deliver_due(bool everything) {
    while (!_network.empty() && (everything || _network.begin()->first.first <= _slot)) {
        wire_packet p = std::move(_network.begin()->second);
        _network.erase(_network.begin());
        write_record(p);
        if (p.dir == direction::client_to_server && !p.corrupted_at) {
            receive(p);
        }
    }
}

result<nlohmann::json> traffic_generator::run() {
    _connections.resize(_o.connections);
    std::shared_ptr<transport::frame_protection> protection;
    if (_o.encrypt_key) {
        transport::aead_key k;
        k.phase = _o.key_phase;
        k.key = *_o.encrypt_key;
        protection = std::make_shared<transport::frame_protection>(true);
        if (protection->install(k) != transport::key_install::installed) {
            return error{"--encrypt-key: OpenSSL could not set up AES-256-GCM"};
        }
    }
    for (std::uint32_t i = 0; i < _o.connections; ++i) {
        _connections[i].index = i;
        _connections[i].protection = protection;
        plan_connection(_connections[i]);
    }

    std::size_t next_connection = 0;
    for (;;) {
        bool sent = false;
        for (std::size_t i = 0; i < _connections.size() && !sent; ++i) {
            const std::size_t ci = (next_connection + i) % _connections.size();
            if (send_one(_connections[ci])) {
                next_connection = ci + 1;
                sent = true;
            }
        }
        deliver_due(false);
        if (_failure) {
            return *_failure;
        }
        if (!sent && _network.empty()) {
            bool idle = true;
            for (const connection_state& c : _connections) {
                idle = idle && c.idle();
            }
            if (idle) {
                break;
            }
        }
        ++_slot;
    }
    // Whatever is still in flight arrives; then the server acknowledges what it has not yet.
    for (bool more = true; more;) {
        deliver_due(true);
        more = false;
        for (connection_state& c : _connections) {
            for (std::uint32_t path = 0; path < c.paths.size(); ++path) {
                if (_o.ack_every != 0 && c.paths[path].since_ack > 0) {
                    const result<void> r = send_ack(c, path);
                    if (!r) {
                        return error{r.message()};
                    }
                    more = true;
                }
            }
        }
        if (_failure) {
            return *_failure;
        }
    }

    nlohmann::json connections = nlohmann::json::array();
    nlohmann::json streams = nlohmann::json::array();
    for (const connection_state& c : _connections) {
        nlohmann::json paths = nlohmann::json::array();
        for (std::uint32_t p = 0; p < _o.paths.size(); ++p) {
            endpoint client = _o.paths[p].client;
            client.port = static_cast<std::uint16_t>(client.port + c.index);
            paths.push_back({{"path", p},
                             {"path_id", p + 1},
                             {"client", to_string(client)},
                             {"server", to_string(_o.paths[p].server)}});
        }
        connections.push_back({{"connection", c.index}, {"paths", paths}});
        for (const stream_state& s : c.streams) {
            nlohmann::json js = {{"connection", c.index},
                                 {"stream_id", s.id},
                                 {"final_size", s.size},
                                 {"crc32c", hex32(s.crc)},
                                 {"priority", priority_name(s.prio)},
                                 {"ordered", s.ordered}};
            if (_o.spread == spread_mode::stream) {
                js["path"] = s.path;
            }
            streams.push_back(std::move(js));
        }
    }
    nlohmann::json manifest = {
        {"generator", "kwik-pcapgen"},
        {"manifest_version", 1},
        {"parameters", to_json(_o)},
        {"connections", connections},
        {"streams", streams},
        {"counts",
         {{"records", _out.records()},
          {"transmitted", _transmitted},
          {"lost", _lost.size()},
          {"corrupted", _corrupted},
          {"duplicated", _duplicated},
          {"reordered", _reordered},
          {"retransmissions", _retransmissions},
          {"transmitted_by_type", _by_type}}},
        {"packets", std::move(_packets)},
        {"lost", std::move(_lost)},
    };
    return manifest;
}

} // namespace

result<nlohmann::json> generate_traffic(const generator_options& o, pcap_writer& out) {
    traffic_generator g(o, out);
    return g.run();
}

} // namespace kwik::tools::pcapgen
