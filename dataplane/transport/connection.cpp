// The connection: receive path (parse -> per-path ACK state -> frames -> reassembly and flow
// control), send path (timers -> probes and ACKs -> stream and path scheduling -> packets) and
// path liveness (suspect, failed, recovered). docs/PROTOCOL.md section 13 states the rules it follows.
#include "dataplane/transport/connection.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kwik::transport {

namespace {

constexpr std::size_t packet_header_max = 8 + 1 + 2 + 2 + 4 + 1; // seq, type, count, length, crc, comp
constexpr std::size_t max_tracked_frames = kdp::max_frames_per_packet;
constexpr std::size_t max_compressed_chunk = kdp::max_uncompressed_length; // per COMPRESSED frame

// Bytes a stream frame header takes for this stream id and data length (no extensions).
std::size_t stream_frame_overhead(stream_id id, std::size_t len, bool compressed) noexcept {
    std::size_t n = kdp::varint_size(id) + kdp::frame_header_fixed + kdp::varint_size(len) + 1;
    if (compressed) {
        n += 2 + 4; // UNCOMPRESSED_LENGTH TLV, value < 2^30
    }
    return n;
}

sent_frame control_record(kdp::control_type type, stream_id stream, std::uint64_t offset) noexcept {
    sent_frame rec;
    rec.what = sent_frame::kind::control;
    rec.control = type;
    rec.stream = stream;
    rec.offset = offset;
    return rec;
}

std::size_t control_frame_size(std::uint64_t stream, std::size_t payload) noexcept {
    return kdp::varint_size(stream) + kdp::frame_header_fixed + kdp::varint_size(payload) + 1 + payload;
}

// Queueing delay below this counts as none when update_coupling compares paths (RTT noise).
constexpr time_ns coupling_noise = 1 * ms;

// The minimum window must hold min_window_packets of the packets the connection sends (RFC
// 9002 7.2: 2 x max_datagram_size). At 2 x the 1200-byte MSS under 1400-byte packets it held
// one, so every loss at the minimum was a tail loss, found only by a probe timeout (issue 6).
cc_config path_cc(const connection_config& c) noexcept {
    cc_config cc = c.cc;
    cc.packet_size = c.max_packet_size;
    return cc;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// State

struct connection::path_state {
    path_state(path_id pid, const connection_config& c, time_ns now)
        : id(pid), acks(c.ack), sent(c.loss), cc(path_cc(c)), pace(10 * c.max_packet_size),
          detector(c.detector), created(now), last_recv(now), last_send_eliciting(now) {}

    path_id id;
    path_status status = path_status::active;
    ack_tracker acks;
    sent_packets sent;
    congestion_controller cc;
    pacer pace;
    congestion_detector detector;
    float cost = 0;
    float server_load = 0;
    float geographic = 1;
    float weight = 1;
    bool weight_pinned = false;    // set_path_weight(): rebalance() leaves weight alone
    bool standby = false;          // set_path_standby()
    std::uint64_t max_rate_bps = 0; // set_path_max_rate(); 0 = no cap
    time_ns created;
    time_ns last_recv;
    time_ns last_send_eliciting;
    std::uint32_t probes_to_send = 0;
    bool challenge_due = false;
    bool response_due = false;
    bool challenge_outstanding = false;
    std::array<std::uint8_t, kdp::path_challenge_len> challenge{};
    std::array<std::uint8_t, kdp::path_challenge_len> response{};
    std::uint64_t challenge_counter = 0;
    std::uint64_t seq_at_suspect = 0; // an ACK for a packet at or past this proves the path again
    bool coupled = true; // in LIA's coupling (update_coupling): it may share a bottleneck with the others
    path_counters counters;

    bool usable() const noexcept { return status == path_status::active; }
    bool alive() const noexcept { return status != path_status::removed; }
};

struct connection::stream_state {
    // Both ends start a stream at c.stream_window; recv_window (set_initial_stream_window)
    // only changes how far later updates grant.
    stream_state(stream_id sid, const stream_options& o, const connection_config& c, segment_pool* pool,
                 std::uint64_t recv_window)
        : id(sid), opts(o), send(c.tx_ops, c.send_buffer_per_stream), credit(c.stream_window),
          recv(c.rx_ops, pool, o.ordered), recv_credit(c.stream_window) {
        recv_credit.set_window(recv_window);
    }

    stream_id id;
    stream_options opts;
    send_buffer send;
    send_credit credit; // the peer's limit on this stream
    reassembler recv;
    receive_credit recv_credit;
    std::uint64_t recv_highest = 0;
    std::uint64_t blocked_at = ~std::uint64_t{0}; // limit at which STREAM_DATA_BLOCKED was sent
    bool finished_notified = false;
    bool reset_received = false;
    bool reset_sent = false;
    bool readable_notified = false;
    bool connection_blocked = false; // in _connection_blocked: idle until MAX_DATA raises the limit
    bool closed = false; // both directions ended and counted in streams_closed
    double ratio = 0.5; // recent compressed/uncompressed size, for sizing compressed chunks
    // QoS min_bandwidth: a token bucket filled at the guaranteed rate (bytes), at most 100 ms
    // of it, spent by every new byte the stream sends.
    double guarantee_tokens = 0;
    time_ns guarantee_refill = 0;
};

struct connection::pending_control {
    bool max_data = false;
    bool data_blocked = false;
    std::vector<stream_id> max_stream_data;
    std::vector<std::pair<stream_id, std::uint64_t>> resets;
    std::vector<stream_id> stream_blocked;

    bool any() const noexcept {
        return max_data || data_blocked || !max_stream_data.empty() || !resets.empty() ||
               !stream_blocked.empty();
    }
};

// Receives the per-packet outcome of an ACK, a loss timer or a path failure.
class connection::ack_listener {
public:
    ack_listener(connection& c, path_state& p, time_ns now, bool discard) noexcept
        : _c(c), _p(p), _now(now), _discard(discard) {}

    void on_acked(const sent_packet& sp, std::span<const sent_frame> frames) noexcept {
        if (sp.in_flight) {
            _p.cc.on_packet_acked(sp.bytes, sp.time_sent, _now, _p.sent.rtt().smoothed(),
                                  _p.sent.rtt().min(), _c._config.cc.coupled && _p.coupled ? &_c._coupling : nullptr);
        }
        if (_p.status == path_status::suspect && sp.seq >= _p.seq_at_suspect) {
            _recovered = true;
        }
        for (const sent_frame& f : frames) {
            if (f.what != sent_frame::kind::stream) {
                continue;
            }
            stream_state* s = _c.find_stream(f.stream);
            if (s != nullptr) {
                s->send.on_acked(f.offset, f.length, f.fin);
                if (s->send.finished()) { // the last ACK may cover data, not the FIN
                    _c.check_closed(*s);
                }
            }
        }
    }

    void on_lost(const sent_packet& sp, std::span<const sent_frame> frames) noexcept {
        if (sp.in_flight) {
            _lost_in_flight += sp.bytes;
        }
        ++_p.counters.packets_lost;
        for (const sent_frame& f : frames) {
            if (f.what == sent_frame::kind::stream) {
                stream_state* s = _c.find_stream(f.stream);
                if (s != nullptr && !s->reset_sent) {
                    s->send.on_lost(f.offset, f.length, f.fin);
                    _c._stream_sched.set_ready(f.stream, s->opts.priority);
                    ++_p.counters.retransmitted_frames;
                }
                continue;
            }
            // Control frames are not resent as they were: the current value is sent again.
            switch (f.control) {
            case kdp::control_type::max_data:
                _c._pending->max_data = true;
                break;
            case kdp::control_type::max_stream_data:
                if (_c.find_stream(f.stream) != nullptr) {
                    _c._pending->max_stream_data.push_back(f.stream);
                }
                break;
            case kdp::control_type::reset_stream:
                _c._pending->resets.emplace_back(f.stream, f.offset);
                break;
            default:
                break; // ACK, challenge/response, blocked: superseded by later state
            }
        }
    }

    bool recovered() const noexcept { return _recovered; }
    std::uint64_t lost_in_flight() const noexcept { return _lost_in_flight; }
    bool discard() const noexcept { return _discard; }

private:
    connection& _c;
    path_state& _p;
    time_ns _now;
    bool _discard;
    bool _recovered = false;
    std::uint64_t _lost_in_flight = 0;
};

// ---------------------------------------------------------------------------------------------
// Set-up

connection::connection(const connection_config& config, const connection_callbacks& callbacks,
                       time_ns now)
    : _config(config), _cb(callbacks), _segments(config.reassembly_segments), _stream_sched(config.max_streams), _path_sched(config.scheduler), _balancer(config.balancer),
      _recv_credit(config.connection_window), _send_credit(config.connection_window),
      _pending(std::make_unique<pending_control>()), _protection(config.side == role::client),
      _tx_buffer(kdp::max_packet_size),
      _scratch(4 * kdp::max_packet_size + 64), _tx_frames(max_tracked_frames), _tx_records(max_tracked_frames),
      _next_local_stream(config.side == role::client ? 2 : 1), _last_activity(now),
      _stream_window(config.stream_window), _next_balance(now + config.balance_interval) {
    _paths.reserve(config.max_paths);
    _streams.reserve(config.max_streams);
    // Each holds a stream at most once, so these never grow past max_streams.
    _bounded.reserve(config.max_streams);
    _guaranteed.reserve(config.max_streams);
    _pending_qos.reserve(config.max_streams);
    _connection_blocked.reserve(config.max_streams);
    _pending->max_stream_data.reserve(config.max_streams);
    _pending->stream_blocked.reserve(config.max_streams);
    _pending->resets.reserve(config.max_streams);
}

connection::~connection() = default;

bool connection::add_path(path_id id, time_ns now) {
    if (id > kdp::varint_max || find_path(id) != nullptr || _paths.size() >= _config.max_paths ||
        std::binary_search(_retired_paths.begin(), _retired_paths.end(), id)) {
        return false;
    }
    _paths.push_back(std::make_unique<path_state>(id, _config, now));
    update_coupling();
    if (_cb.on_path_event != nullptr) {
        _cb.on_path_event(_cb.ctx, id, path_event::up);
    }
    return true;
}

bool connection::remove_path(path_id id, time_ns now) {
    path_state* p = find_path(id);
    if (p == nullptr || p->status == path_status::removed) {
        return false;
    }
    ack_listener l(*this, *p, now, true);
    p->sent.declare_all_lost(l);
    p->cc.on_packets_discarded(l.lost_in_flight());
    p->status = path_status::removed;
    // Off the list, so a connection can replace paths for ever within max_paths; the id stays
    // retired: an ACK still on its way names the old path's packet numbers, and a new path of
    // that id would take it for its own (docs/PROTOCOL.md 13). Called outside flush(), so no
    // pointer to the state is held (_redundant_target lives only during a flush).
    const path_counters& c = p->counters;
    _retired_counters.packets_sent += c.packets_sent;
    _retired_counters.bytes_sent += c.bytes_sent;
    _retired_counters.packets_received += c.packets_received;
    _retired_counters.bytes_received += c.bytes_received;
    _retired_counters.packets_lost += c.packets_lost;
    _retired_counters.retransmitted_frames += c.retransmitted_frames;
    _retired_counters.duplicates += c.duplicates;
    _retired_counters.probes += c.probes;
    _retired_counters.acks_sent += c.acks_sent;
    _retired_counters.keepalives_sent += c.keepalives_sent;
    _retired_counters.redundant_copies += c.redundant_copies;
    _retired_paths.insert(std::upper_bound(_retired_paths.begin(), _retired_paths.end(), id), id);
    std::erase_if(_paths, [p](const std::unique_ptr<path_state>& x) { return x.get() == p; });
    update_coupling();
    return true;
}

void connection::set_path_attributes(path_id id, float cost, float server_load, float geographic_score) {
    path_state* p = find_path(id);
    if (p != nullptr) {
        p->cost = cost;
        p->server_load = server_load;
        p->geographic = geographic_score;
    }
}

void connection::set_strategy(schedule_strategy s) noexcept { _path_sched.set_strategy(s); }

// ---------------------------------------------------------------------------------------------
// Control-plane settings

namespace {

constexpr std::uint64_t max_window = std::uint64_t{1} << 62;

// The level a stream is served and framed at. control is the control frames' own: 0xFF in a
// frame header marks a control frame (PROTOCOL.md 5.3), so a stream given it goes as critical.
kdp::priority stream_level(kdp::priority p) noexcept {
    return p == kdp::priority::control ? kdp::priority::critical : p;
}

bool valid_priority(kdp::priority p) noexcept {
    switch (p) {
    case kdp::priority::normal:
    case kdp::priority::high:
    case kdp::priority::critical:
    case kdp::priority::control:
        return true;
    }
    return false;
}

} // namespace

bool connection::set_path_weight(path_id id, float weight) noexcept {
    path_state* p = find_path(id);
    if (p == nullptr || !p->alive() || !std::isfinite(weight) || weight < 0.0f) {
        return false;
    }
    p->weight = weight;
    p->weight_pinned = true;
    return true;
}

void connection::unpin_path_weights() noexcept {
    for (auto& p : _paths) {
        p->weight_pinned = false;
    }
}

bool connection::set_path_standby(path_id id, bool standby) noexcept {
    path_state* p = find_path(id);
    if (p == nullptr || !p->alive()) {
        return false;
    }
    p->standby = standby;
    return true;
}

bool connection::set_path_max_rate(path_id id, std::uint64_t bits_per_second) noexcept {
    path_state* p = find_path(id);
    if (p == nullptr || !p->alive()) {
        return false;
    }
    p->max_rate_bps = bits_per_second;
    return true;
}

bool connection::set_stream_qos(stream_id id, const qos_policy& qos) noexcept {
    // Written so that NaN fails too.
    const bool loss_ok = qos.loss_threshold >= 0.0f && qos.loss_threshold <= 1.0f;
    if (id == 0 || id > kdp::varint_max || !loss_ok || !valid_priority(qos.priority)) {
        return false;
    }
    stream_state* s = find_stream(id);
    if (s != nullptr) {
        apply_qos(*s, qos);
        return true;
    }
    const auto it = std::lower_bound(_pending_qos.begin(), _pending_qos.end(), id,
                                     [](const auto& e, stream_id v) { return e.first < v; });
    if (it != _pending_qos.end() && it->first == id) {
        it->second = qos;
        return true;
    }
    if (_pending_qos.size() >= _config.max_streams) {
        return false;
    }
    _pending_qos.insert(it, {id, qos}); // within the capacity reserved at construction
    return true;
}

bool connection::set_connection_window(std::uint64_t bytes, time_ns now) noexcept {
    if (bytes == 0 || bytes > max_window) {
        return false;
    }
    _now = std::max(_now, now);
    const bool grows = bytes > _recv_credit.window();
    _recv_credit.set_window(bytes);
    if (grows && _recv_credit.next_limit() > _recv_credit.limit()) {
        _pending->max_data = true;
    }
    return true;
}

bool connection::set_stream_window(stream_id id, std::uint64_t bytes, time_ns now) noexcept {
    stream_state* s = find_stream(id);
    if (s == nullptr || bytes == 0 || bytes > max_window) {
        return false;
    }
    _now = std::max(_now, now);
    const bool grows = bytes > s->recv_credit.window();
    s->recv_credit.set_window(bytes);
    auto& queued = _pending->max_stream_data;
    if (grows && s->recv_credit.next_limit() > s->recv_credit.limit() && !s->recv.has_final_size() &&
        !s->reset_received && std::find(queued.begin(), queued.end(), id) == queued.end()) {
        queued.push_back(id);
    }
    return true;
}

bool connection::set_initial_stream_window(std::uint64_t bytes) noexcept {
    if (bytes == 0 || bytes > max_window) {
        return false;
    }
    _stream_window = bytes;
    return true;
}

// A new QoS on an open stream: its priority level in the stream scheduler, its place among the
// guaranteed streams, and the latency budget (recomputed: a control-path call).
void connection::apply_qos(stream_state& s, const qos_policy& qos) noexcept {
    s.opts.qos = qos;
    s.opts.priority = stream_level(qos.priority);
    if (_stream_sched.is_ready(s.id)) {
        _stream_sched.set_ready(s.id, s.opts.priority); // moves it to its new level
    }
    const auto g = std::find(_guaranteed.begin(), _guaranteed.end(), s.id);
    if (qos.min_bandwidth_mbps != 0 && g == _guaranteed.end()) {
        _guaranteed.push_back(s.id);
    } else if (qos.min_bandwidth_mbps == 0 && g != _guaranteed.end()) {
        _guaranteed.erase(g);
    }
    update_latency_budget();
}

connection::path_state* connection::find_path(path_id id) noexcept {
    for (auto& p : _paths) {
        if (p->id == id) {
            return p.get();
        }
    }
    return nullptr;
}

const connection::path_state* connection::find_path(path_id id) const noexcept {
    return const_cast<connection*>(this)->find_path(id);
}

connection::stream_state* connection::find_stream(stream_id id) noexcept {
    const auto it = _streams.find(id);
    return it == _streams.end() ? nullptr : it->second.get();
}

const connection::stream_state* connection::find_stream(stream_id id) const noexcept {
    return const_cast<connection*>(this)->find_stream(id);
}

bool connection::locally_initiated(stream_id id) const noexcept {
    return (id & 1) == (_config.side == role::client ? 0u : 1u);
}

// ---------------------------------------------------------------------------------------------
// Application

stream_id connection::open_stream(const stream_options& options) {
    if (_closed || _streams.size() >= _config.max_streams) {
        return 0;
    }
    const stream_id id = _next_local_stream;
    _next_local_stream += 2;
    const stream_options& o = add_stream(id, options)->opts; // with any pending QoS applied
    // Incremental here (O(1) per open); rebalance() recomputes it as bounded streams finish.
    if (o.qos.max_latency_ms != 0) {
        const time_ns b = o.qos.max_latency_ms * ms;
        _latency_budget = _latency_budget == 0 ? b : std::min(_latency_budget, b);
    }
    if (o.qos.max_latency_ms != 0 || o.priority == kdp::priority::critical) {
        _bounded.push_back(id);
    }
    if (o.qos.min_bandwidth_mbps != 0) {
        _guaranteed.push_back(id);
    }
    if (options.compress && !_compressor) {
        _compressor = std::make_unique<deflate_compressor>(1);
    }
    return id;
}

bool connection::write(stream_id id, buffer_ref data) {
    stream_state* s = find_stream(id);
    if (s == nullptr || _closed || s->reset_sent || !s->send.write(data)) {
        return false;
    }
    _stream_sched.set_ready(id, s->opts.priority);
    return true;
}

bool connection::finish(stream_id id) {
    stream_state* s = find_stream(id);
    if (s == nullptr || _closed || s->reset_sent) {
        return false;
    }
    s->send.finish();
    _stream_sched.set_ready(id, s->opts.priority);
    return true;
}

bool connection::reset_stream(stream_id id, std::uint64_t code) {
    stream_state* s = find_stream(id);
    if (s == nullptr || _closed || s->reset_sent) {
        return false;
    }
    s->reset_sent = true;
    _pending->resets.emplace_back(id, code);
    _stream_sched.set_idle(id);
    check_closed(*s);
    return true;
}

std::uint64_t connection::read(stream_id id, read_sink sink, void* ctx) noexcept {
    stream_state* s = find_stream(id);
    if (s == nullptr) {
        return 0;
    }
    const std::uint64_t n = s->recv.deliver([&](std::uint64_t offset, buffer_ref piece) {
        sink(ctx, offset, {piece.data, piece.len});
    });
    s->readable_notified = false;
    if (n > 0) {
        on_consumed(*s, n);
    }
    if (s->recv.complete() && !s->finished_notified) {
        s->finished_notified = true;
        if (_cb.on_stream_finished != nullptr) {
            _cb.on_stream_finished(_cb.ctx, id);
        }
        check_closed(*s);
    }
    return n;
}

void connection::on_consumed(stream_state& s, std::uint64_t bytes) noexcept {
    _counters.stream_bytes_delivered += bytes;
    s.recv_credit.on_consumed(bytes);
    _recv_credit.on_consumed(bytes);
    if (s.recv_credit.update_due() && !s.recv.has_final_size()) {
        _pending->max_stream_data.push_back(s.id);
    }
    if (_recv_credit.update_due()) {
        _pending->max_data = true;
    }
}

void connection::close(close_code code, std::string_view reason, time_ns now) {
    (void)now;
    if (_closed || _close_pending) {
        return;
    }
    _close_pending = true;
    _close_code = code;
    _close_reason.assign(reason.substr(0, 256));
}

void connection::fail(close_code code, std::string_view reason, time_ns now) noexcept {
    close(code, reason, now);
}

std::uint64_t connection::stream_buffered_bytes(stream_id id) const noexcept {
    const stream_state* s = find_stream(id);
    return s == nullptr ? 0 : s->recv.buffered_bytes();
}

std::uint64_t connection::send_buffered_bytes(stream_id id) const noexcept {
    const stream_state* s = find_stream(id);
    return s == nullptr ? 0 : s->send.buffered_bytes();
}

bool connection::stream_all_acked(stream_id id) const noexcept {
    const stream_state* s = find_stream(id);
    return s != nullptr && s->send.all_acked();
}

void connection::fill_info(const path_state& p, path_info& out) const noexcept {
    out.id = p.id;
    out.status = p.status;
    out.srtt = p.sent.rtt().smoothed();
    out.min_rtt = p.sent.rtt().min();
    out.rttvar = p.sent.rtt().variance();
    out.cwnd = p.cc.cwnd();
    out.bytes_in_flight = p.cc.bytes_in_flight();
    out.pacing_rate_bps = pacing_rate(p);
    out.delivery_rate_bps = p.sent.delivery_rate_bps();
    out.weight = p.weight;
    out.weight_pinned = p.weight_pinned;
    out.standby = p.standby;
    out.max_rate_bps = p.max_rate_bps;
    out.congestion = p.detector.last();
    out.counters = p.counters;
}

bool connection::path_info_at(std::size_t i, path_info& out) const noexcept {
    if (i >= _paths.size()) {
        return false;
    }
    fill_info(*_paths[i], out);
    return true;
}

std::vector<path_info> connection::paths() const {
    std::vector<path_info> out(_paths.size());
    for (std::size_t i = 0; i < _paths.size(); ++i) {
        fill_info(*_paths[i], out[i]);
    }
    return out;
}

// The rate the path's pacer runs at: the congestion controller's, under the control plane's
// cap. Before the first RTT sample the controller's rate is huge (srtt floored at 1 ns: the
// burst is the only limit); a cap paces such a path too.
std::uint64_t connection::pacing_rate(const path_state& p) const noexcept {
    const std::uint64_t rate = p.cc.pacing_rate_bps(std::max<time_ns>(p.sent.rtt().smoothed(), 1));
    if (p.max_rate_bps == 0) {
        return rate;
    }
    return rate == 0 ? p.max_rate_bps : std::min(rate, p.max_rate_bps);
}

// Whether a non-standby path is active: then standby paths carry no stream data.
bool connection::primary_active() const noexcept {
    for (const auto& p : _paths) {
        if (!p->standby && p->usable()) {
            return true;
        }
    }
    return false;
}

// A stream both of whose directions ended is counted closed, once. Its state stays (late
// frames find it; max_streams bounds the streams a connection ever has).
void connection::check_closed(stream_state& s) noexcept {
    if (s.closed) {
        return;
    }
    const bool send_done = s.reset_sent || s.send.all_acked();
    const bool recv_done = s.reset_received || (s.recv.complete() && s.finished_notified);
    if (send_done && recv_done) {
        s.closed = true;
        ++_counters.streams_closed;
    }
}

// ---------------------------------------------------------------------------------------------
// Receive path

void connection::on_datagram(path_id path, std::span<const std::uint8_t> data, void* owner,
                             bool ecn_ce, time_ns now) noexcept {
    if (_closed) {
        return;
    }
    _now = std::max(_now, now);
    path_state* p = find_path(path);
    if (p == nullptr || p->status == path_status::removed) {
        ++_counters.unknown_path;
        return;
    }
    const kdp::drop_reason r = kdp::parse_packet(kdp::contiguous_bytes(data), _rx_view);
    if (r != kdp::drop_reason::none) {
        ++_counters.drops[static_cast<std::size_t>(r)];
        return;
    }
    // With keys, a number already received is not opened again: a replayed packet costs no AES
    // work and is counted as what on_packet would call it. Without keys there is nothing to
    // open, so plaintext connections skip this second lookup (on_packet below finds them).
    if (_protection.has_keys() && p->acks.lookup(_rx_view.seq) != ack_tracker::verdict::fresh) {
        ++_counters.duplicate_packets;
        ++p->counters.duplicates;
        return;
    }
    // ENCRYPTED frames are verified before the packet counts as received: a packet with a
    // forged frame is dropped whole and never acknowledged (9.1: accepted or dropped as a whole).
    if (const kdp::drop_reason a = open_frames(data, now); a != kdp::drop_reason::none) {
        ++_counters.drops[static_cast<std::size_t>(a)];
        return;
    }
    const bool ack_eliciting = _rx_view.type != static_cast<std::uint8_t>(kdp::packet_type::ack);
    if (p->acks.on_packet(_rx_view.seq, ack_eliciting, ecn_ce, now) != ack_tracker::verdict::fresh) {
        ++_counters.duplicate_packets; // already processed: acknowledged again, not acted on
        ++p->counters.duplicates;
        return;
    }
    ++p->counters.packets_received;
    p->counters.bytes_received += data.size();
    p->last_recv = now;
    _last_activity = now;
    for (const kdp::frame_view& f : _rx_view.frame_span()) {
        process_frame(*p, f, data, owner, now);
        if (_close_pending || _closed) {
            return;
        }
    }
}

void connection::set_require_encryption(bool on) noexcept {
    _require_encryption = on || _peer_encrypted; // a verified ENCRYPTED frame latched it
    _encrypt_tx = _encrypt_tx || on;
}

kdp::drop_reason connection::open_frames(std::span<const std::uint8_t> datagram, time_ns now) noexcept {
    std::uint64_t opened = 0;
    for (const kdp::frame_view& f : _rx_view.frame_span()) {
        if (f.is_control()) {
            continue;
        }
        if ((f.flags & kdp::frame_flag::encrypted) == 0) {
            if (_require_encryption) {
                return kdp::drop_reason::encryption_required;
            }
            continue;
        }
        // In place: on_datagram's contract makes the owner's bytes writable. A frame that
        // fails leaves garbage there, but the packet is dropped whole.
        auto* data = const_cast<std::uint8_t*>(datagram.data() + f.data_pos);
        if (const kdp::drop_reason r = _protection.open(datagram, f, data, now); r != kdp::drop_reason::none) {
            return r;
        }
        ++opened;
    }
    if (opened != 0) {
        _counters.encrypted_frames_received += opened;
        _encrypt_tx = true; // the peer encrypts: so does this side
        // ... and from now on it must: a plaintext stream frame after a verified ENCRYPTED
        // one is an injection (or a downgrade), dropped as encryption_required.
        _peer_encrypted = true;
        _require_encryption = true;
    }
    return kdp::drop_reason::none;
}

void connection::process_frame(path_state& p, const kdp::frame_view& f,
                               std::span<const std::uint8_t> datagram, void* owner, time_ns now) noexcept {
    if (!f.is_control()) {
        process_stream(f, datagram, owner, now);
        return;
    }
    kdp::control_frame c;
    if (kdp::decode_control(f.stream_id, f.offset, datagram.data() + f.data_pos, f.data_length, &c) !=
        kdp::drop_reason::none) {
        fail(close_code::protocol_violation, "control frame", now); // the parser validated it
        return;
    }
    if (c.type == kdp::control_type::ack) {
        path_state* acked = find_path(c.ack.path_id);
        if (acked != nullptr && acked->alive()) {
            process_ack(*acked, c.ack, now);
        }
        return;
    }
    process_control(p, c, now);
}

void connection::process_stream(const kdp::frame_view& f, std::span<const std::uint8_t> datagram,
                                void* owner, time_ns now) noexcept {
    stream_state* s = find_stream(f.stream_id);
    if (s == nullptr) {
        if (locally_initiated(f.stream_id)) {
            return; // a stream of ours that is gone: late data, ignore
        }
        s = accept_stream(f.stream_id, f.flags, f.priority);
        if (s == nullptr) {
            fail(close_code::stream_state, "too many streams", now);
            return;
        }
    }
    if (s->reset_received) {
        return;
    }
    const std::uint64_t highest = f.offset + f.stream_length;
    if (!s->recv_credit.on_received(highest)) {
        fail(close_code::flow_control, "stream data beyond MAX_STREAM_DATA", now);
        return;
    }
    if (highest > s->recv_highest) {
        _recv_highest_total += highest - s->recv_highest;
        s->recv_highest = highest;
        if (!_recv_credit.on_received(_recv_highest_total)) {
            fail(close_code::flow_control, "connection data beyond MAX_DATA", now);
            return;
        }
    }
    // ENCRYPTED frames were opened in place (open_frames): the plaintext precedes the tag.
    const std::uint32_t plain_length =
        (f.flags & kdp::frame_flag::encrypted) != 0 ? f.data_length - static_cast<std::uint32_t>(kdp::aead_tag_len)
                                                    : f.data_length;
    buffer_ref ref{datagram.data() + f.data_pos, plain_length, owner};
    void* inflated = nullptr;
    if ((f.flags & kdp::frame_flag::compressed) != 0) {
        if (f.stream_length > max_compressed_chunk || _cb.allocate == nullptr) {
            fail(close_code::protocol_violation, "COMPRESSED frame too large", now);
            return;
        }
        if (!_decompressor) {
            _decompressor = std::make_unique<deflate_decompressor>();
        }
        std::uint8_t* out = nullptr;
        inflated = _cb.allocate(_cb.ctx, f.stream_length, &out);
        if (inflated == nullptr) {
            return; // no buffer: the data is not acknowledged at stream level, the peer resends
        }
        if (!_decompressor->decompress({ref.data, ref.len}, {out, f.stream_length}, f.stream_length)) {
            _config.rx_ops->release(inflated);
            fail(close_code::protocol_violation, "COMPRESSED frame does not inflate", now);
            return;
        }
        ref = {out, static_cast<std::uint32_t>(f.stream_length), inflated};
    }
    const bool fin = (f.flags & kdp::frame_flag::fin) != 0;
    reassembly_error e = reassembly_error::none;
    std::uint64_t handed = 0;
    if (s->opts.ordered) {
        e = s->recv.insert(f.offset, ref, fin); // held until the application reads
    } else {
        // Every new piece goes to the application now. A frame at the contiguous end (all
        // in-order data) skips the reassembler's pool node and the buffer retain/release that
        // insert() and deliver() cost: about 90 instructions per 1400-byte frame
        // (perf/RESULTS.md 6).
        e = s->recv.insert_and_deliver(f.offset, ref, fin, [&](std::uint64_t offset, buffer_ref piece) {
            hand_over(*s, offset, piece);
            handed += piece.len;
        });
    }
    if (inflated != nullptr) {
        _config.rx_ops->release(inflated);
    }
    switch (e) {
    case reassembly_error::none:
        break;
    case reassembly_error::out_of_segments:
        return; // memory bound reached: dropped here, resent by the peer after loss detection
    default:
        fail(close_code::final_size, "final size violated", now);
        return;
    }
    deliver(*s, handed);
}

void connection::hand_over(stream_state& s, std::uint64_t offset, buffer_ref piece) noexcept {
    if (_cb.on_data != nullptr) {
        _cb.on_data(_cb.ctx, s.id, offset, {piece.data, piece.len});
    }
}

connection::stream_state* connection::accept_stream(stream_id id, std::uint8_t flags,
                                                    std::uint8_t priority) noexcept {
    if (_streams.size() >= _config.max_streams) {
        return nullptr;
    }
    stream_options o;
    o.ordered = (flags & kdp::frame_flag::ordered) != 0;
    o.priority = static_cast<kdp::priority>(priority);
    o.qos.priority = o.priority;
    stream_state* s = add_stream(id, o);
    if (s->opts.qos.min_bandwidth_mbps != 0) {
        _guaranteed.push_back(id);
    }
    // A window larger than the one both ends start with is granted at once: the peer knows
    // the stream (it opened it).
    if (s->recv_credit.next_limit() > s->recv_credit.limit()) {
        _pending->max_stream_data.push_back(id);
    }
    if (_cb.on_stream_opened != nullptr) {
        _cb.on_stream_opened(_cb.ctx, id);
    }
    return s;
}

// A new stream of either side, with the QoS the control plane set for it before it opened.
connection::stream_state* connection::add_stream(stream_id id, const stream_options& options) {
    auto [it, inserted] =
        _streams.emplace(id, std::make_unique<stream_state>(id, options, _config, &_segments, _stream_window));
    stream_state& s = *it->second;
    ++_counters.streams_opened;
    const auto q = std::lower_bound(_pending_qos.begin(), _pending_qos.end(), id,
                                    [](const auto& e, stream_id v) { return e.first < v; });
    if (q != _pending_qos.end() && q->first == id) {
        s.opts.qos = q->second;
        s.opts.priority = q->second.priority;
        _pending_qos.erase(q);
    }
    s.opts.priority = stream_level(s.opts.priority);
    return &s;
}

void connection::deliver(stream_state& s, std::uint64_t handed) noexcept {
    if (s.opts.ordered) {
        if (s.recv.buffered_bytes() > 0 && !s.readable_notified && _cb.on_readable != nullptr) {
            s.readable_notified = true;
            _cb.on_readable(_cb.ctx, s.id);
        }
        if (s.recv.complete() && !s.finished_notified) {
            s.finished_notified = true;
            if (_cb.on_stream_finished != nullptr) {
                _cb.on_stream_finished(_cb.ctx, s.id);
            }
            check_closed(s);
        }
        return;
    }
    // Unordered: hand every new piece over as it arrives, and consume it at once.
    const std::uint64_t n =
        handed + s.recv.deliver([&](std::uint64_t offset, buffer_ref piece) { hand_over(s, offset, piece); });
    if (n > 0) {
        on_consumed(s, n);
    }
    if (s.recv.complete() && !s.finished_notified) {
        s.finished_notified = true;
        if (_cb.on_stream_finished != nullptr) {
            _cb.on_stream_finished(_cb.ctx, s.id);
        }
        check_closed(s);
    }
}

void connection::process_control(path_state& p, const kdp::control_frame& c, time_ns now) noexcept {
    switch (c.type) {
    case kdp::control_type::max_data:
        if (c.limit > _send_credit.limit()) {
            _send_credit.on_limit(c.limit);
            // Streams idled by the connection limit have nothing else to wake them (a write
            // would, but their send buffers may be full).
            for (const stream_id id : _connection_blocked) {
                stream_state* s = find_stream(id);
                if (s != nullptr) {
                    s->connection_blocked = false;
                    if (!s->reset_sent && s->send.has_data_to_send(s->credit.limit())) {
                        _stream_sched.set_ready(id, s->opts.priority);
                    }
                }
            }
            _connection_blocked.clear();
        }
        break;
    case kdp::control_type::max_stream_data: {
        stream_state* s = find_stream(c.stream_id);
        if (s != nullptr) {
            s->credit.on_limit(c.limit);
            if (s->send.has_data_to_send(s->credit.limit())) {
                _stream_sched.set_ready(s->id, s->opts.priority);
            }
        }
        break;
    }
    case kdp::control_type::reset_stream: {
        stream_state* s = find_stream(c.stream_id);
        if (s == nullptr && !locally_initiated(c.stream_id)) {
            s = accept_stream(c.stream_id, 0, 0);
        }
        if (s == nullptr) {
            break;
        }
        if (s->recv.has_final_size() && s->recv.final_size() != c.limit) {
            fail(close_code::final_size, "RESET_STREAM final size differs", now);
            return;
        }
        if (c.limit < s->recv_highest) {
            fail(close_code::final_size, "RESET_STREAM final size below received data", now);
            return;
        }
        if (!s->reset_received) {
            s->reset_received = true;
            // Count the unreceived remainder against the connection window, as QUIC does.
            _recv_highest_total += c.limit - s->recv_highest;
            s->recv_highest = c.limit;
            if (_cb.on_stream_reset != nullptr) {
                _cb.on_stream_reset(_cb.ctx, s->id, c.error_code);
            }
            check_closed(*s);
        }
        break;
    }
    case kdp::control_type::path_challenge:
        p.response = c.challenge;
        p.response_due = true;
        break;
    case kdp::control_type::path_response:
        if (p.challenge_outstanding && c.challenge == p.challenge) {
            p.challenge_outstanding = false;
            if (p.status == path_status::failed || p.status == path_status::suspect) {
                p.status = path_status::active;
                update_coupling();
                if (_cb.on_path_event != nullptr) {
                    _cb.on_path_event(_cb.ctx, p.id, path_event::recovered);
                }
            }
        }
        break;
    case kdp::control_type::connection_close:
        _closed = true;
        _close_code = static_cast<close_code>(c.error_code);
        if (_cb.on_closed != nullptr) {
            _cb.on_closed(_cb.ctx, _close_code,
                          std::string_view(reinterpret_cast<const char*>(c.reason.data()), c.reason.size()));
        }
        break;
    case kdp::control_type::data_blocked:
        if (_recv_credit.next_limit() > _recv_credit.limit()) {
            _pending->max_data = true;
        }
        break;
    case kdp::control_type::stream_data_blocked: {
        stream_state* s = find_stream(c.stream_id);
        if (s != nullptr && s->recv_credit.next_limit() > s->recv_credit.limit()) {
            _pending->max_stream_data.push_back(s->id);
        }
        break;
    }
    case kdp::control_type::ack:
        break;
    }
}

void connection::process_ack(path_state& p, const kdp::ack_frame& ack, time_ns now) noexcept {
    ack_listener l(*this, p, now, false);
    const ack_outcome o = p.sent.on_ack(ack, now, l);
    if (o.invalid) {
        fail(close_code::protocol_violation, "ACK of a packet never sent", now);
        return;
    }
    if (o.bytes_lost > 0) {
        p.cc.on_packets_lost(l.lost_in_flight(), o.largest_lost_time_sent, now);
    }
    if (o.ecn_ce_delta > 0) {
        // The newly acknowledged largest left about one latest-RTT ago: one reduction per
        // recovery period, as for a loss (RFC 9002 7.1).
        p.cc.on_ecn_ce(now - std::min(now, p.sent.rtt().latest()), now);
    }
    if (o.rtt_sampled) {
        p.detector.on_rtt_sample(p.sent.rtt().smoothed(), p.sent.rtt().min(), now);
    }
    if (o.packets_acked > 0 || o.packets_lost > 0) {
        p.detector.on_ack(o.bytes_acked, o.bytes_lost, o.ecn_ce_delta, o.packets_acked,
                          p.sent.delivery_rate_bps(), now);
    }
    if (l.recovered()) {
        p.status = path_status::active;
        if (_cb.on_path_event != nullptr) {
            _cb.on_path_event(_cb.ctx, p.id, path_event::recovered);
        }
    }
    update_coupling();
}

// ---------------------------------------------------------------------------------------------
// Timers and path liveness

void connection::on_timers(time_ns now) noexcept {
    if (now - std::min(now, _last_activity) >= _config.idle_timeout) {
        _closed = true;
        _close_code = close_code::no_error;
        if (_cb.on_closed != nullptr) {
            _cb.on_closed(_cb.ctx, close_code::no_error, "idle timeout");
        }
        return;
    }
    std::size_t healthy = 0;
    for (auto& p : _paths) {
        healthy += p->usable() ? 1 : 0;
    }
    for (auto& pp : _paths) {
        path_state& p = *pp;
        if (!p.alive()) {
            continue;
        }
        if (p.sent.loss_time() <= now) {
            ack_listener l(*this, p, now, false);
            const ack_outcome o = p.sent.on_loss_timer(now, l);
            if (o.bytes_lost > 0) {
                p.cc.on_packets_lost(l.lost_in_flight(), o.largest_lost_time_sent, now);
            }
        }
        if (p.sent.pto_deadline() <= now) {
            p.sent.on_pto();
            ++p.counters.probes;
            p.probes_to_send = p.status == path_status::active ? 2 : 1;
            const std::uint32_t ptos = p.sent.pto_count();
            if (ptos >= _config.fail_after_ptos && p.status != path_status::failed) {
                path_failed(p, now);
                healthy -= p.status == path_status::active ? 1 : 0;
            } else if (ptos >= _config.suspect_after_ptos && p.status == path_status::active &&
                       healthy > 1) {
                path_suspect(p, now);
                --healthy;
            }
        }
        // A path with nothing ack-eliciting sent for keepalive_interval gets a PATH_CHALLENGE;
        // sending it restarts the interval, so an unanswered one is repeated, never spun on.
        // Not while an ack-eliciting packet is unanswered: the probe timeout's probes are the
        // liveness probes then, and a keep-alive would move the PTO deadline (last ack-eliciting
        // send + backoff) forward, so that a dead path whose backoff had grown past the
        // interval never reached fail_after_ptos (issue 6: an idle suspect path stayed suspect).
        if (p.sent.pto_deadline() == never && now - p.last_send_eliciting >= _config.keepalive_interval) {
            p.challenge_due = true;
        }
    }
    if (now >= _next_balance) {
        rebalance(now);
        _next_balance = now + _config.balance_interval;
    }
}

void connection::path_suspect(path_state& p, time_ns now) noexcept {
    // Reinjection: everything in flight on a path that stopped answering is sent again on the
    // others now, not after it is declared failed; a late ACK only makes those copies spurious.
    p.status = path_status::suspect;
    p.seq_at_suspect = p.sent.next_seq();
    ack_listener l(*this, p, now, true);
    p.sent.declare_all_lost(l);
    p.cc.on_packets_discarded(l.lost_in_flight());
    update_coupling();
    if (_cb.on_path_event != nullptr) {
        _cb.on_path_event(_cb.ctx, p.id, path_event::suspect);
    }
}

void connection::path_failed(path_state& p, time_ns now) noexcept {
    // Whatever went out since it became suspect (probes) is lost with it.
    ack_listener l(*this, p, now, true);
    p.sent.declare_all_lost(l);
    p.cc.on_packets_discarded(l.lost_in_flight());
    p.status = path_status::failed;
    p.seq_at_suspect = p.sent.next_seq();
    update_coupling();
    if (_cb.on_path_event != nullptr) {
        _cb.on_path_event(_cb.ctx, p.id, path_event::failed);
    }
}

// LIA couples the paths that may share a bottleneck. Flows through one bottleneck all see its
// queue (the premise of shared-bottleneck detection, RFC 8382), so a path whose queueing delay
// (smoothed minus min RTT) plus 1 ms of noise is under a quarter of the deepest one is not
// behind that queue: it grows and backs off on its own (config.cc.algorithm). Coupled to
// bufferbloated paths it would starve: LIA's increase is alpha x MSS / total window per acked
// packet, and their standing queues inflate the total (issue 6: a 1 % loss path at 10 ms held
// the minimum window beside two paths queueing 100 ms). Paths sharing a bottleneck see the same
// queue, so they stay coupled (transport_sim's coupled_fairness_at_shared_bottleneck).
void connection::update_coupling() noexcept {
    time_ns deepest = 0;
    for (const auto& p : _paths) {
        const rtt_estimator& r = p->sent.rtt();
        if (p->usable() && r.has_sample()) {
            deepest = std::max(deepest, r.smoothed() - std::min(r.smoothed(), r.min()));
        }
    }
    std::array<lia_coupling::path_state, 32> states{};
    std::size_t n = 0;
    for (const auto& p : _paths) {
        const rtt_estimator& r = p->sent.rtt();
        const time_ns queue = r.smoothed() - std::min(r.smoothed(), r.min());
        p->coupled = !r.has_sample() || 4 * (queue + coupling_noise) >= deepest;
        if (n < states.size()) {
            states[n++] = {p->cc.cwnd(), std::max<time_ns>(r.smoothed(), 1), p->usable() && p->coupled};
        }
    }
    _coupling.update({states.data(), n});
}

// QoS enforcement: while a stream with a latency bound is sending, the other streams may keep
// in flight on a path only what it delivers in min RTT plus a quarter of that bound, so the
// queue they build in the network stays well inside the bound. Without this, a loss-based
// congestion controller fills every buffer on the path and the bounded stream waits behind it.
void connection::update_latency_budget() noexcept {
    time_ns budget = 0;
    _bounded.clear();
    for (const auto& [id, s] : _streams) {
        if (!locally_initiated(id) || s->send.all_acked()) {
            continue;
        }
        if (s->opts.qos.max_latency_ms != 0) {
            const time_ns b = s->opts.qos.max_latency_ms * ms;
            budget = budget == 0 ? b : std::min(budget, b);
        }
        if (s->opts.qos.max_latency_ms != 0 || s->opts.priority == kdp::priority::critical) {
            _bounded.push_back(id);
        }
    }
    _latency_budget = budget;
}

// QoS min_bandwidth: a stream below its guaranteed rate goes first, whatever its priority
// level; above it, it competes in its level like any other. Token bucket per stream, refilled
// at min_bandwidth_mbps, holding at most 100 ms of it.
stream_id connection::guaranteed_due(time_ns now) noexcept {
    stream_id best = 0;
    double best_tokens = 0;
    for (const stream_id id : _guaranteed) {
        stream_state* s = find_stream(id);
        if (s == nullptr) {
            continue;
        }
        const double rate = double(s->opts.qos.min_bandwidth_mbps) * 1e6 / 8; // bytes per second
        if (s->guarantee_refill == 0) {
            s->guarantee_refill = now;
        }
        s->guarantee_tokens = std::min(rate / 10, s->guarantee_tokens + rate * double(now - s->guarantee_refill) / 1e9);
        s->guarantee_refill = now;
        const std::uint64_t limit = std::min(s->credit.limit(), s->send.sent_offset() + _send_credit.available());
        if (s->guarantee_tokens >= double(_config.max_packet_size) && s->guarantee_tokens > best_tokens &&
            s->send.has_data_to_send(limit)) {
            best = id;
            best_tokens = s->guarantee_tokens;
        }
    }
    return best;
}

bool connection::bounded_data_ready() const noexcept {
    for (const stream_id id : _bounded) {
        const stream_state* s = find_stream(id);
        if (s != nullptr && s->send.has_data_to_send(std::min(s->credit.limit(), s->send.sent_offset() + _send_credit.available()))) {
            return true;
        }
    }
    return false;
}

bool connection::bulk_capped(const path_state& p) const noexcept {
    const std::uint64_t rate = p.sent.delivery_rate_bps();
    if (_latency_budget == 0 || rate == 0 || !p.sent.rtt().has_sample()) {
        return false;
    }
    const time_ns window = p.sent.rtt().min() + _latency_budget / 4;
    const std::uint64_t cap = static_cast<std::uint64_t>(double(rate) / 8 * double(window) / 1e9);
    return p.cc.bytes_in_flight() >= std::max<std::uint64_t>(cap, 2 * _config.max_packet_size);
}

// The seed's PathMetrics of one path, as the schedulers and the load balancer see it.
void connection::describe(const path_state& p, const congestion_report& congestion,
                          path_candidate& c) const noexcept {
    c.id = p.id;
    c.usable = p.usable();
    c.can_send = p.usable();
    c.weight = p.weight;
    c.metrics.latency = p.sent.rtt().smoothed();
    c.metrics.min_rtt = p.sent.rtt().min();
    c.metrics.jitter = p.sent.rtt().variance();
    c.metrics.bandwidth_bps = p.sent.delivery_rate_bps();
    c.metrics.packet_loss = congestion.loss_score;
    c.metrics.congestion = congestion.score;
    c.metrics.cost = p.cost;
    c.metrics.server_load = p.server_load;
    c.metrics.geographic_score = p.geographic;
}

void connection::rebalance(time_ns now) noexcept {
    update_latency_budget();
    std::array<path_candidate, 32> cands{};
    std::size_t n = 0;
    for (auto& p : _paths) {
        if (n == cands.size()) {
            break;
        }
        describe(*p, p->detector.evaluate(now), cands[n]);
        // A pinned path takes no part: the balancer shares weight among the others.
        cands[n].usable = cands[n].usable && !p->weight_pinned;
        ++n;
    }
    _balancer.adapt({cands.data(), n});
    for (std::size_t i = 0; i < n; ++i) {
        if (!_paths[i]->weight_pinned) {
            _paths[i]->weight = cands[i].weight;
        }
    }
}

time_ns connection::next_wakeup() const noexcept {
    if (_closed) {
        return never;
    }
    if (_close_pending) {
        return 0;
    }
    time_ns t = _last_activity + _config.idle_timeout;
    const bool data = has_stream_data() || _pending->any();
    bool in_flight = false;
    for (const auto& p : _paths) {
        in_flight = in_flight || p->sent.bytes_in_flight() > 0;
    }
    const bool primary_up = primary_active();
    if (data || in_flight) {
        t = std::min(t, _next_balance); // an idle connection is not woken to rebalance
    }
    for (const auto& p : _paths) {
        if (!p->alive()) {
            continue;
        }
        const time_ns pto = p->sent.pto_deadline();
        t = std::min({t, p->sent.loss_time(), pto, p->acks.ack_deadline(),
                      pto == never ? p->last_send_eliciting + _config.keepalive_interval : never});
        if (p->probes_to_send > 0 || p->challenge_due || p->response_due) {
            return 0;
        }
        if (data && p->usable() && (!p->standby || !primary_up) && p->cc.can_send(_config.max_packet_size) &&
            p->sent.can_send() && (!bulk_capped(*p) || _pending->any() || bounded_data_ready())) {
            t = std::min(t, p->pace.next_send_time(_config.max_packet_size, _now, pacing_rate(*p)));
        }
    }
    return t;
}

// ---------------------------------------------------------------------------------------------
// Send path

// Stream data waits while encryption is on and no key may seal it (install_key() ends that).
bool connection::has_stream_data() const noexcept {
    return !_stream_sched.empty() && (!_encrypt_tx || _protection.sealable(_now));
}

void connection::emit(path_id path, std::span<const std::uint8_t> packet) noexcept {
    if (_cb.transmit != nullptr) {
        _cb.transmit(_cb.ctx, path, packet);
    }
}

void connection::flush(time_ns now) noexcept {
    if (_closed) {
        return;
    }
    _now = std::max(_now, now);
    on_timers(now);
    if (_closed) {
        return;
    }
    if (_close_pending) {
        // CONNECTION_CLOSE on every live path, then nothing more is sent or accepted.
        for (auto& p : _paths) {
            if (p->alive()) {
                send_packet(*p, now, false, false);
            }
        }
        _closed = true;
        if (_cb.on_closed != nullptr) {
            _cb.on_closed(_cb.ctx, _close_code, _close_reason);
        }
        return;
    }
    std::uint32_t budget = _config.max_packets_per_flush;
    // Probes, keep-alives and challenge responses are not held back by congestion control.
    for (auto& p : _paths) {
        while (p->alive() && p->probes_to_send > 0 && budget > 0) {
            --p->probes_to_send;
            send_packet(*p, now, true, false);
            --budget;
        }
        if (p->alive() && (p->challenge_due || p->response_due) && budget > 0) {
            send_packet(*p, now, false, false); // not a probe: it must not ask for a challenge
            --budget;
        }
    }
    // Data and connection-level control, path by path as the scheduler picks them.
    std::array<path_candidate, 32> cands{};
    std::array<path_state*, 32> states{};
    const bool primary_up = primary_active(); // path states change on receipt and timers only
    while (budget > 0 && (has_stream_data() || _pending->any())) {
        // The stream the packet starts with decides the path: its priority and QoS.
        kdp::priority prio = kdp::priority::control;
        const qos_policy* qos = nullptr;
        stream_id head = 0;
        bool bulk_head = false;
        if (!_pending->any()) {
            head = guaranteed_due(now);
            if (head == 0) {
                head = _stream_sched.next();
            }
            const stream_state* s = find_stream(head);
            if (s != nullptr) {
                prio = s->opts.priority;
                qos = &s->opts.qos;
                bulk_head = prio != kdp::priority::critical && s->opts.qos.max_latency_ms == 0;
            }
        }
        std::size_t n = 0;
        bool any = false;
        for (auto& p : _paths) {
            if (n == cands.size()) {
                break;
            }
            path_candidate& c = cands[n];
            describe(*p, p->detector.last(), c);
            c.can_send = p->usable() && (!p->standby || !primary_up) && p->cc.can_send(_config.max_packet_size) &&
                         p->sent.can_send() &&
                         p->pace.next_send_time(_config.max_packet_size, now, pacing_rate(*p)) <= now &&
                         !(bulk_head && bulk_capped(*p));
            states[n] = p.get();
            any = any || c.can_send;
            ++n;
        }
        if (!any) {
            break;
        }
        const path_selection sel = _path_sched.select({cands.data(), n}, prio, qos);
        if (sel.primary < 0) {
            break;
        }
        path_state* secondary = sel.secondary >= 0 ? states[static_cast<std::size_t>(sel.secondary)] : nullptr;
        _redundant_target = secondary;
        const bool sent = send_packet(*states[static_cast<std::size_t>(sel.primary)], now, false, false, head);
        _redundant_target = nullptr;
        if (!sent) {
            break;
        }
        --budget;
    }
    // ACKs that are due and found no data packet to ride on.
    for (auto& p : _paths) {
        if (p->alive() && p->acks.ack_pending() && p->acks.ack_deadline() <= now) {
            send_packet(*p, now, false, true);
        }
    }
}

bool connection::send_packet(path_state& p, time_ns now, bool probe, bool ack_only, stream_id first) noexcept {
    const std::span<kdp::frame_desc> frames(_tx_frames);
    const std::span<sent_frame> records(_tx_records);
    std::size_t nf = 0;
    std::size_t scratch_used = 0;
    std::size_t room = _config.max_packet_size - packet_header_max;
    bool has_ack = false;
    bool stream_frames = false;
    // Data and connection-level control ride on usable paths. A probe on a suspect or failed
    // path carries only its PATH_CHALLENGE, unless no path is usable: then it repairs too.
    bool any_usable = false;
    bool primary_up = false;
    for (const auto& q : _paths) {
        any_usable = any_usable || q->usable();
        primary_up = primary_up || (q->usable() && !q->standby);
    }
    const bool carry = p.usable() || (probe && !any_usable);
    // Stream data also stays off a standby path while a non-standby one is active: its
    // keep-alives, responses and probes go out without it.
    const bool carry_data = carry && (!p.standby || !primary_up);
    bool all_retransmit = true;
    bool all_high = true;
    bool only_challenges = true;
    bool critical = false;
    bool compressed_any = false;

    auto add_control = [&](const kdp::control_frame& c, const sent_frame& rec) -> bool {
        if (nf == frames.size()) {
            return false;
        }
        std::span<std::uint8_t> out(_scratch.data() + scratch_used, _scratch.size() - scratch_used);
        const std::size_t len = kdp::encode_control(c, out);
        const std::uint64_t sid = kdp::control_stream_id(c);
        if (len == 0 || control_frame_size(sid, len) > room) {
            return false;
        }
        kdp::frame_desc& f = frames[nf];
        f = {};
        f.prio = kdp::priority::control;
        f.stream_id = sid;
        f.offset = kdp::control_offset(c);
        f.data = {out.data(), len};
        records[nf] = rec;
        ++nf;
        scratch_used += len;
        room -= control_frame_size(sid, len);
        if (c.type != kdp::control_type::path_challenge && c.type != kdp::control_type::path_response) {
            only_challenges = false;
        }
        return true;
    };

    // 1. The ACK for this path, on every packet that has room for it.
    if (p.acks.ack_pending()) {
        kdp::control_frame c;
        c.type = kdp::control_type::ack;
        p.acks.build(c.ack, p.id, now);
        const sent_frame rec = control_record(kdp::control_type::ack, 0, 0);
        has_ack = add_control(c, rec);
    }
    if (ack_only) {
        if (!has_ack) {
            return false;
        }
    } else {
        // 2. Liveness: challenge responses, keep-alive challenges. A probe asks for a challenge
        // only when it has nothing else that elicits an ACK (decided before the response goes in,
        // or two peers' responses would keep challenging each other).
        const bool probe_needs_challenge = probe && !p.response_due;
        if (p.response_due) {
            kdp::control_frame c;
            c.type = kdp::control_type::path_response;
            c.challenge = p.response;
            const sent_frame rec = control_record(c.type, 0, 0);
            if (add_control(c, rec)) {
                p.response_due = false;
            }
        }
        const bool want_challenge = p.challenge_due || (probe_needs_challenge && (!carry_data || !has_stream_data()));
        if (want_challenge) {
            kdp::control_frame c;
            c.type = kdp::control_type::path_challenge;
            ++p.challenge_counter;
            for (std::size_t i = 0; i < c.challenge.size(); ++i) {
                c.challenge[i] = static_cast<std::uint8_t>((p.challenge_counter ^ (p.id << 16)) >> (8 * i));
            }
            const sent_frame rec = control_record(c.type, 0, 0);
            if (add_control(c, rec)) {
                p.challenge = c.challenge;
                p.challenge_outstanding = true;
                p.challenge_due = false;
                ++p.counters.keepalives_sent;
            }
        }
        // 3. Connection-level control frames (on usable paths, or as a probe's payload).
        if (_close_pending) {
            kdp::control_frame c;
            c.type = kdp::control_type::connection_close;
            c.error_code = static_cast<std::uint64_t>(_close_code);
            c.reason = {reinterpret_cast<const std::uint8_t*>(_close_reason.data()), _close_reason.size()};
            const sent_frame rec = control_record(c.type, 0, 0);
            add_control(c, rec);
        } else if (carry) {
            pending_control& pc = *_pending;
            if (pc.max_data) {
                kdp::control_frame c;
                c.type = kdp::control_type::max_data;
                c.limit = _recv_credit.next_limit();
                const sent_frame rec = control_record(c.type, 0, c.limit);
                if (add_control(c, rec)) {
                    _recv_credit.on_update_sent(c.limit);
                    pc.max_data = false;
                }
            }
            while (!pc.max_stream_data.empty()) {
                stream_state* s = find_stream(pc.max_stream_data.back());
                if (s == nullptr || s->recv.has_final_size()) {
                    pc.max_stream_data.pop_back();
                    continue;
                }
                kdp::control_frame c;
                c.type = kdp::control_type::max_stream_data;
                c.stream_id = s->id;
                c.limit = s->recv_credit.next_limit();
                const sent_frame rec = control_record(c.type, s->id, c.limit);
                if (!add_control(c, rec)) {
                    break;
                }
                s->recv_credit.on_update_sent(c.limit);
                pc.max_stream_data.pop_back();
            }
            while (!pc.resets.empty()) {
                const auto [sid, code] = pc.resets.back();
                stream_state* s = find_stream(sid);
                if (s == nullptr) {
                    pc.resets.pop_back();
                    continue;
                }
                kdp::control_frame c;
                c.type = kdp::control_type::reset_stream;
                c.stream_id = sid;
                c.limit = s->send.sent_offset();
                c.error_code = code;
                const sent_frame rec = control_record(c.type, sid, code);
                if (!add_control(c, rec)) {
                    break;
                }
                pc.resets.pop_back();
            }
            if (pc.data_blocked) {
                kdp::control_frame c;
                c.type = kdp::control_type::data_blocked;
                c.limit = _send_credit.limit();
                const sent_frame rec = control_record(c.type, 0, 0);
                if (add_control(c, rec)) {
                    pc.data_blocked = false;
                }
            }
            while (!pc.stream_blocked.empty()) {
                stream_state* s = find_stream(pc.stream_blocked.back());
                if (s == nullptr) {
                    pc.stream_blocked.pop_back();
                    continue;
                }
                kdp::control_frame c;
                c.type = kdp::control_type::stream_data_blocked;
                c.stream_id = s->id;
                c.limit = s->credit.limit();
                const sent_frame rec = control_record(c.type, s->id, 0);
                if (!add_control(c, rec)) {
                    break;
                }
                pc.stream_blocked.pop_back();
            }
        }
        // 4. Stream data, by the stream scheduler's order, while the packet has room. A probe
        // carries data too when there is some: it then repairs as well as probes.
        std::size_t streams_tried = 0;
        // Encryption on: every stream frame is sealed, so none goes without a usable key.
        bool data_allowed = true;
        if (_encrypt_tx && carry_data && !_stream_sched.empty()) {
            switch (_protection.can_seal(now)) {
            case seal_refusal::none:
                break;
            case seal_refusal::no_key:
                ++_counters.seal_refused_no_key;
                data_allowed = false;
                break;
            case seal_refusal::expired:
                ++_counters.seal_refused_expired;
                data_allowed = false;
                break;
            case seal_refusal::exhausted:
                ++_counters.seal_refused_exhausted;
                data_allowed = false;
                break;
            }
        }
        const std::size_t seal_overhead = _encrypt_tx ? 2 + kdp::aead_extension_len + kdp::aead_tag_len : 0;
        while (data_allowed && carry_data && !_close_pending && !_stream_sched.empty() && nf < frames.size() &&
               streams_tried < 64) {
            const stream_id sid = first != 0 ? first : _stream_sched.next();
            first = 0;
            ++streams_tried;
            stream_state* s = find_stream(sid);
            if (s == nullptr || s->reset_sent) {
                _stream_sched.set_idle(sid);
                continue;
            }
            if (s->opts.priority != kdp::priority::critical && s->opts.qos.max_latency_ms == 0 && bulk_capped(p)) {
                continue; // stays ready: it goes when the bounded stream's queue allows
            }
            const std::size_t overhead =
                stream_frame_overhead(sid, kdp::max_packet_size, s->opts.compress) + seal_overhead;
            if (room <= overhead + 16) {
                break;
            }
            const std::uint64_t conn_room = _send_credit.available();
            const std::uint64_t flow_limit =
                std::min(s->credit.limit(), s->send.sent_offset() + conn_room);
            // Compressed streams ask for as many bytes as the packet should hold once deflated
            // (by the stream's recent ratio), up to 16 KiB: deflate set-up costs about 6 us per
            // call, so 1.5 KB calls run at 3.8 ns/byte and 16 KB calls at 1.7 (perf/RESULTS.md).
            const std::size_t wire_room = room - overhead;
            std::size_t want = wire_room;
            const bool try_compress = s->opts.compress && _compressor != nullptr;
            if (try_compress) {
                want = std::clamp<std::size_t>(static_cast<std::size_t>(double(wire_room) * 0.9 / s->ratio), wire_room,
                                               max_compressed_chunk);
            }
            if (scratch_used + want + wire_room + 64 > _scratch.size()) {
                break;
            }
            send_buffer::chunk ch;
            if (!s->send.next_chunk(static_cast<std::uint32_t>(want), flow_limit, ch)) {
                // Nothing sendable: flow control, or nothing left. Tell the peer once if blocked.
                _stream_sched.set_idle(sid);
                if (s->send.has_data_to_send(~std::uint64_t{0})) {
                    ++_counters.flow_blocked;
                    if (s->send.sent_offset() >= s->credit.limit() && s->blocked_at != s->credit.limit()) {
                        s->blocked_at = s->credit.limit();
                        _pending->stream_blocked.push_back(sid);
                    } else if (conn_room == 0) {
                        _pending->data_blocked = true;
                    }
                    if (conn_room == 0 && !s->connection_blocked) {
                        s->connection_blocked = true;
                        _connection_blocked.push_back(sid);
                    }
                }
                continue;
            }
            // Gather the chunk's bytes (they may span several written buffers).
            std::uint8_t* dst = _scratch.data() + scratch_used;
            std::size_t copied = 0;
            s->send.for_each_piece(ch.offset, ch.length, [&](const std::uint8_t* src, std::uint32_t len) {
                std::memcpy(dst + copied, src, len);
                copied += len;
            });
            kdp::frame_desc& f = frames[nf];
            f = {};
            f.stream_id = sid;
            f.offset = ch.offset;
            f.prio = s->opts.priority;
            f.flags = static_cast<std::uint8_t>((s->opts.ordered ? kdp::frame_flag::ordered : 0) |
                                                (ch.fin ? kdp::frame_flag::fin : 0) |
                                                (ch.retransmit ? kdp::frame_flag::retransmit : 0) |
                                                (s->opts.priority != kdp::priority::normal ? kdp::frame_flag::priority : 0));
            std::size_t used = ch.length;
            std::uint8_t* wire = dst; // the frame's Transport Data: dst, or the deflated copy
            bool deflated = false;
            if (try_compress && ch.length >= 256) {
                std::uint8_t* zdst = _scratch.data() + scratch_used + ch.length;
                const std::size_t budget = std::min<std::size_t>(wire_room, ch.length);
                const std::size_t z = _compressor->compress({dst, ch.length}, {zdst, budget});
                if (z > 0) {
                    f.flags |= kdp::frame_flag::compressed;
                    f.uncompressed_length = ch.length;
                    f.data = {zdst, z};
                    wire = zdst;
                    used = ch.length + z;
                    deflated = true;
                    compressed_any = true;
                    ++_counters.compressed_frames;
                    s->ratio = 0.75 * s->ratio + 0.25 * std::max(0.01, double(z) / double(ch.length));
                } else {
                    ++_counters.uncompressed_fallbacks;
                    s->ratio = std::min(1.0, s->ratio * 2); // incompressible lately: ask for less
                }
            }
            if (!deflated && ch.length > wire_room) {
                // It did not deflate into the packet: send what fits as it is; the rest stays
                // queued (send_buffer allows a shorter chunk without its FIN).
                ch.length = static_cast<std::uint32_t>(wire_room);
                ch.fin = false;
                f.flags = static_cast<std::uint8_t>(f.flags & ~kdp::frame_flag::fin);
                used = ch.length;
            }
            if (!deflated) {
                f.data = {dst, ch.length};
            }
            if (_encrypt_tx) {
                // Compress, then encrypt (5.4), in place in the scratch area: the tag lands in
                // the 64 bytes of slack the room check above keeps. Every (re)transmission is
                // sealed afresh under the next nonce (13.8).
                if (_protection.seal(f, wire, f.data.size(), now) != seal_refusal::none) [[unlikely]] {
                    break; // nothing was taken from the send buffer (on_sent() not called)
                }
                used += kdp::aead_tag_len;
                ++_counters.encrypted_frames_sent;
            }
            scratch_used += used;
            room -= kdp::frame_wire_size(f);
            sent_frame& rec = records[nf];
            rec = {};
            rec.what = sent_frame::kind::stream;
            rec.stream = sid;
            rec.offset = ch.offset;
            rec.length = ch.length;
            rec.fin = ch.fin;
            ++nf;
            s->send.on_sent(ch);
            if (ch.retransmit) {
                _counters.stream_bytes_retransmitted += ch.length;
            } else {
                _counters.stream_bytes_sent += ch.length;
                s->guarantee_tokens -= double(ch.length);
                const std::uint64_t end = ch.offset + ch.length;
                if (end > s->credit.used()) {
                    const std::uint64_t fresh = end - s->credit.used();
                    s->credit.on_sent(fresh);
                    _send_credit.on_sent(fresh);
                }
            }
            stream_frames = true;
            only_challenges = false;
            all_retransmit = all_retransmit && ch.retransmit;
            all_high = all_high && s->opts.priority != kdp::priority::normal;
            critical = critical || s->opts.priority == kdp::priority::critical;
            if (!s->send.has_data_to_send(std::min(s->credit.limit(), s->send.sent_offset() + _send_credit.available()))) {
                _stream_sched.set_idle(sid);
            }
        }
    }
    if (nf == 0) {
        return false;
    }
    kdp::packet_type type = kdp::packet_type::data;
    if (!stream_frames) {
        if (has_ack && nf == 1) {
            type = kdp::packet_type::ack;
        } else if (only_challenges && !has_ack) {
            type = kdp::packet_type::keepalive;
        } else {
            type = kdp::packet_type::control;
        }
    } else if (all_retransmit) {
        type = kdp::packet_type::retransmission;
    } else if (all_high) {
        type = kdp::packet_type::priority;
    }
    auto send_on = [&](path_state& target, bool with_ack) -> bool {
        const std::span<const kdp::frame_desc> fs = with_ack ? std::span<const kdp::frame_desc>(frames.data(), nf)
                                                            : std::span<const kdp::frame_desc>(frames.data() + 1, nf - 1);
        const std::span<const sent_frame> rs = with_ack ? std::span<const sent_frame>(records.data(), nf)
                                                       : std::span<const sent_frame>(records.data() + 1, nf - 1);
        // ACK-only packets take no ring slot, so a full ring never blocks acknowledgements.
        if (fs.empty() || (type != kdp::packet_type::ack && !target.sent.can_send())) {
            return false;
        }
        kdp::packet_desc d{target.sent.next_seq(), type,
                           compressed_any ? kdp::compression::deflate : kdp::compression::none, fs};
        const kdp::write_result w = kdp::serialize_packet(d, _tx_buffer);
        if (!w.ok()) {
            return false;
        }
        const bool eliciting = type != kdp::packet_type::ack;
        target.sent.on_sent(now, static_cast<std::uint32_t>(w.size), eliciting, rs);
        if (eliciting) {
            target.cc.on_packet_sent(static_cast<std::uint32_t>(w.size), now);
            target.pace.on_sent(static_cast<std::uint32_t>(w.size), now, pacing_rate(target));
            target.last_send_eliciting = now;
        }
        ++target.counters.packets_sent;
        target.counters.bytes_sent += w.size;
        emit(target.id, {_tx_buffer.data(), w.size});
        return true;
    };
    const bool sent = send_on(p, true);
    if (sent && has_ack) {
        p.acks.on_ack_sent(now);
        ++p.counters.acks_sent;
    }
    // Redundant strategy: CRITICAL data also goes, as its own packet, on the second-best path.
    if (sent && critical && _redundant_target != nullptr && _redundant_target != &p) {
        const bool first_is_ack = has_ack;
        if (send_on(*_redundant_target, !first_is_ack)) {
            ++_redundant_target->counters.redundant_copies;
        }
    }
    return sent;
}

} // namespace kwik::transport
