// One Kwik connection: streams multiplexed over several paths. Ties the codec to the transport
// parts: ACKs and loss recovery per path, reassembly and flow control per stream, congestion
// control and pacing per path (LIA-coupled), path scheduling and load balancing.
// Owned by one thread (a kwikd worker lcore, a kwik-peer thread, the simulator): no locks.
// The owner passes the time in, hands received datagrams to on_datagram(), and calls
// flush() when next_wakeup() is due; packets leave through the transmit callback.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataplane/kdp/drop_reason.hpp"
#include "dataplane/kdp/packet.hpp"
#include "dataplane/transport/ack_tracker.hpp"
#include "dataplane/transport/compressor.hpp"
#include "dataplane/transport/congestion_controller.hpp"
#include "dataplane/transport/congestion_detector.hpp"
#include "dataplane/transport/flow_control.hpp"
#include "dataplane/transport/frame_protection.hpp"
#include "dataplane/transport/load_balancer.hpp"
#include "dataplane/transport/pacer.hpp"
#include "dataplane/transport/path_scheduler.hpp"
#include "dataplane/transport/reassembler.hpp"
#include "dataplane/transport/send_buffer.hpp"
#include "dataplane/transport/sent_packets.hpp"
#include "dataplane/transport/stream_scheduler.hpp"
#include "dataplane/transport/types.hpp"

namespace kwik::transport {

enum class role : std::uint8_t { client, server };

// CONNECTION_CLOSE error codes (docs/PROTOCOL.md 6.7).
enum class close_code : std::uint64_t {
    no_error = 0,
    internal = 1,
    flow_control = 2,
    stream_state = 3,
    final_size = 4,
    protocol_violation = 5,
    authentication = 6,
};

struct connection_config {
    role side = role::client;
    loss_config loss{};
    ack_policy ack{};
    cc_config cc{};
    scheduler_config scheduler{};
    load_balancer_config balancer{};
    detector_config detector{};
    // Flow control. Both ends start from these values (KCP's hello carries them; until then
    // both sides are configured alike): what the peer may send before the first update.
    std::uint64_t stream_window = 1 << 20;
    std::uint64_t connection_window = 16 << 20;
    std::uint64_t send_buffer_per_stream = 4 << 20;
    std::uint32_t max_streams = 1024;
    std::uint32_t max_paths = 8;
    std::uint32_t reassembly_segments = 16384; // per connection (section "memory" of TRANSPORT.md)
    std::uint32_t max_packet_size = 1400;      // UDP payload bytes per path packet
    std::uint32_t max_packets_per_flush = 64;
    time_ns keepalive_interval = 1 * sec;      // PATH_CHALLENGE on a path idle this long
    time_ns idle_timeout = 30 * sec;           // no packet on any path: the connection closes
    std::uint32_t suspect_after_ptos = 1;      // reinject a path's in-flight data elsewhere
    std::uint32_t fail_after_ptos = 3;         // declare the path failed
    time_ns balance_interval = 100 * ms;       // load balancer and congestion detector cadence
    // Who owns payload: application data handed to write() (kept until acknowledged) and
    // received datagrams (kept by the reassembler until read). kwikd: rte_mbuf; kwik-peer and
    // the simulator: heap_buffer (heap_buffer.hpp).
    const buffer_ops* tx_ops = nullptr;
    const buffer_ops* rx_ops = nullptr;
};

enum class path_status : std::uint8_t { active, suspect, failed, removed };

enum class path_event : std::uint8_t { up, suspect, failed, recovered };

struct stream_options {
    kdp::priority priority = kdp::priority::normal;
    qos_policy qos{};
    bool ordered = true;
    bool compress = false; // deflate each frame's data; sent uncompressed when it does not pay
};

// What the connection tells its owner. Plain function pointers plus a context: no
// std::function and no virtual call on the packet path.
struct connection_callbacks {
    void* ctx = nullptr;
    // A path packet to send on path (bytes valid only during the call).
    void (*transmit)(void* ctx, path_id path, std::span<const std::uint8_t> packet) = nullptr;
    // A buffer of size bytes owned under config.rx_ops (one reference), for data the
    // connection must produce itself (inflated COMPRESSED frames); nullptr when none is left.
    void* (*allocate)(void* ctx, std::size_t size, std::uint8_t** data) = nullptr;
    // Unordered streams: new bytes as they arrive. Ordered streams: see on_readable / read().
    void (*on_data)(void* ctx, stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) = nullptr;
    void (*on_readable)(void* ctx, stream_id id) = nullptr;       // ordered data can be read
    void (*on_stream_finished)(void* ctx, stream_id id) = nullptr; // every byte up to FIN delivered
    void (*on_stream_opened)(void* ctx, stream_id id) = nullptr;   // the peer opened it
    void (*on_stream_reset)(void* ctx, stream_id id, std::uint64_t code) = nullptr;
    void (*on_path_event)(void* ctx, path_id path, path_event e) = nullptr;
    void (*on_closed)(void* ctx, close_code code, std::string_view reason) = nullptr;
};

// Per-path counters (single writer: the owning thread).
struct path_counters {
    std::uint64_t packets_sent = 0, bytes_sent = 0, packets_received = 0, bytes_received = 0;
    std::uint64_t packets_lost = 0, retransmitted_frames = 0, duplicates = 0, probes = 0;
    std::uint64_t acks_sent = 0, keepalives_sent = 0, redundant_copies = 0;
};

struct connection_counters {
    std::array<std::uint64_t, kdp::drop_reason_count> drops{};
    std::uint64_t duplicate_packets = 0;
    std::uint64_t unknown_path = 0;
    std::uint64_t stream_bytes_delivered = 0;
    std::uint64_t stream_bytes_sent = 0, stream_bytes_retransmitted = 0;
    std::uint64_t compressed_frames = 0, uncompressed_fallbacks = 0;
    // ENCRYPTED frames sealed and opened; and loops of flush() that held stream data back
    // because encryption is on and no key may seal (none installed, expired or exhausted).
    std::uint64_t encrypted_frames_sent = 0, encrypted_frames_received = 0;
    std::uint64_t seal_refused_no_key = 0, seal_refused_expired = 0, seal_refused_exhausted = 0;
    std::uint64_t flow_blocked = 0;
    // Streams that came into being (opened here or by the peer) and that ended: both
    // directions finished (FIN acknowledged or RESET_STREAM sent; every byte to the FIN read or
    // RESET_STREAM received). open_streams() is the difference.
    std::uint64_t streams_opened = 0, streams_closed = 0;
};

// A read-only snapshot of one path, for schedulers, tests and the control plane.
struct path_info {
    path_id id = 0;
    path_status status = path_status::removed;
    time_ns srtt = 0, min_rtt = 0, rttvar = 0;
    std::uint64_t cwnd = 0, bytes_in_flight = 0, pacing_rate_bps = 0, delivery_rate_bps = 0;
    float weight = 0;
    bool weight_pinned = false; // set_path_weight(): the load balancer leaves it alone
    bool standby = false;       // set_path_standby()
    std::uint64_t max_rate_bps = 0; // set_path_max_rate(); 0 = no cap
    congestion_report congestion{};
    path_counters counters{};
};

class connection {
public:
    connection(const connection_config& config, const connection_callbacks& callbacks, time_ns now);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // ---- control (set-up path; may allocate) ----
    bool add_path(path_id id, time_ns now);
    bool remove_path(path_id id, time_ns now);
    void set_path_attributes(path_id id, float cost, float server_load, float geographic_score);
    void set_strategy(schedule_strategy s) noexcept;

    // ---- control-plane settings ----
    // kwikd applies KCP plans with these, on the thread that owns the connection, between
    // bursts. None allocates. Each returns false, changing nothing, when the id is unknown
    // (a removed path counts as unknown) or the value is out of range.
    //
    // Pins the path's weight (finite, >= 0) for the weighted strategy: the adaptive load
    // balancer stops changing it until unpin_path_weights(), and adapts the unpinned paths
    // among themselves (their weights then sum to 1, so give pinned weights on that scale when
    // mixing). Weight 0: the weighted strategy sends no data there while another eligible path
    // has a weight. Weights do not affect the other strategies.
    bool set_path_weight(path_id id, float weight) noexcept;
    // The load balancer owns all weights again; it starts from the pinned values.
    void unpin_path_weights() noexcept;
    // A standby path carries no stream data (only ACKs, keep-alives, probes' PATH_CHALLENGEs
    // and connection-level control) while any non-standby path is active. When none is (all
    // failed, suspect or removed), standby paths carry data like any other (failover); once a
    // non-standby path is active again, new data goes there, and the standby path's in-flight
    // data is acknowledged or recovered as usual.
    bool set_path_standby(path_id id, bool standby) noexcept;
    // Caps the path's pacing rate: min(congestion-derived rate, cap); 0 removes the cap. Also
    // paces a path that has no RTT estimate yet. Probes and ACKs are not held back (13.4).
    bool set_path_max_rate(path_id id, std::uint64_t bits_per_second) noexcept;
    // The stream's QoS, qos.priority included (it becomes the stream's priority; control, the
    // control frames' own level, serves and frames the stream as critical). Applies now if the
    // stream is open (a queued stream moves to its new level); otherwise it is remembered and
    // applied when the stream opens, whichever side opens it, and then wins over the
    // stream_options given to open_stream() or the priority of the peer's first frame.
    // At most config.max_streams streams wait so (false when full; setting one again replaces
    // it). false also for stream 0, an id above 2^62-1, a loss_threshold outside [0, 1] (NaN
    // included) or a priority that is not a kdp::priority value.
    bool set_stream_qos(stream_id id, const qos_policy& qos) noexcept;
    // The connection's receive window, 1..2^62: what MAX_DATA grants ahead of the bytes the
    // application consumed. Growing it queues a MAX_DATA for the next flush(); shrinking never
    // lowers a limit already granted (KDP limits only increase, PROTOCOL.md 13.5) and takes
    // effect as data is consumed. now: the owner's clock, as for every call.
    bool set_connection_window(std::uint64_t bytes, time_ns now) noexcept;
    // The same for one open stream (MAX_STREAM_DATA); false if the stream is not open. A stream
    // whose final size is known gets no update (it needs none).
    bool set_stream_window(stream_id id, std::uint64_t bytes, time_ns now) noexcept;
    // The receive window of streams opened from now on, 1..2^62. They still start at the
    // limit both ends assume (config.stream_window). On a stream the peer opens, a larger
    // window is granted at once (MAX_STREAM_DATA on the next flush); on one this side opens,
    // by the usual updates as the application reads (the peer ignores MAX_STREAM_DATA for a
    // stream it has not seen yet).
    bool set_initial_stream_window(std::uint64_t bytes) noexcept;

    // Keys for ENCRYPTED frames (PROTOCOL.md 5.4, 13.8), from the control plane; allocates
    // (set-up path). At most two phases are live: the current one and one other.
    key_install install_key(const aead_key& k) noexcept { return _protection.install(k); }
    // Sends every stream frame ENCRYPTED and drops plaintext stream frames (counted
    // encryption_required). Without it, this side encrypts, and requires encryption, once a
    // verified ENCRYPTED frame arrived from the peer (off cannot undo that).
    void set_require_encryption(bool on) noexcept;
    bool require_encryption() const noexcept { return _require_encryption; }
    bool encrypting() const noexcept { return _encrypt_tx; }
    std::uint32_t live_keys() const noexcept { return _protection.live_keys(); }
    std::uint8_t key_phase() const noexcept { return _protection.current_phase(); }
    // Forgets the keys (cleansed); the destructor does it too.
    void clear_keys() noexcept { _protection.clear(); }

    // ---- application ----
    // 0 if max_streams reached. Priority control is served and framed as critical.
    stream_id open_stream(const stream_options& options);
    // Queues data on a stream; the connection keeps a reference (tx_ops->retain) until acked.
    bool write(stream_id id, buffer_ref data);
    bool finish(stream_id id);
    bool reset_stream(stream_id id, std::uint64_t code);
    // Ordered streams: hands the contiguous data received so far to sink and returns the
    // bytes read; consuming them opens the flow-control window again.
    using read_sink = void (*)(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data);
    std::uint64_t read(stream_id id, read_sink sink, void* ctx) noexcept;
    void close(close_code code, std::string_view reason, time_ns now);

    // ---- the owner's loop ----
    // A datagram that arrived on path. owner holds it under config.rx_ops; the reassembler
    // takes references to the frames it keeps instead of copying them. ENCRYPTED frames are
    // decrypted in place, so the bytes must be writable (an mbuf's, a heap buffer's) and are
    // plaintext afterwards.
    void on_datagram(path_id path, std::span<const std::uint8_t> data, void* owner, bool ecn_ce,
                     time_ns now) noexcept;
    // Sends what is due now (ACKs, probes, control, data) within congestion and pacing limits.
    void flush(time_ns now) noexcept;
    // The next time flush() has something to do; never when idle.
    time_ns next_wakeup() const noexcept;

    // ---- observation ----
    bool closed() const noexcept { return _closed; }
    close_code close_reason() const noexcept { return _close_code; }
    std::vector<path_info> paths() const; // allocates: tests and set-up; kwikd uses the pair below
    // The paths now open, in the order add_path() added them. A removed path leaves: its counts
    // go to retired_path_counters() and its id is not reused (add_path refuses it).
    std::size_t path_count() const noexcept { return _paths.size(); }
    const path_counters& retired_path_counters() const noexcept { return _retired_counters; }
    bool path_info_at(std::size_t i, path_info& out) const noexcept; // false: i >= path_count()
    std::uint32_t open_streams() const noexcept {
        return static_cast<std::uint32_t>(_counters.streams_opened - _counters.streams_closed);
    }
    const connection_counters& counters() const noexcept { return _counters; }
    std::uint64_t stream_buffered_bytes(stream_id id) const noexcept; // receive side, held
    std::uint64_t send_buffered_bytes(stream_id id) const noexcept;
    bool stream_all_acked(stream_id id) const noexcept;

private:
    struct path_state;
    struct stream_state;
    struct pending_control;
    class ack_listener;

    path_state* find_path(path_id id) noexcept;
    const path_state* find_path(path_id id) const noexcept;
    stream_state* find_stream(stream_id id) noexcept;
    const stream_state* find_stream(stream_id id) const noexcept;
    stream_state* accept_stream(stream_id id, std::uint8_t flags, std::uint8_t priority) noexcept;
    stream_state* add_stream(stream_id id, const stream_options& options);
    void apply_qos(stream_state& s, const qos_policy& qos) noexcept;
    void check_closed(stream_state& s) noexcept;
    void fill_info(const path_state& p, path_info& out) const noexcept;
    std::uint64_t pacing_rate(const path_state& p) const noexcept;
    bool primary_active() const noexcept;
    bool locally_initiated(stream_id id) const noexcept;

    void process_frame(path_state& p, const kdp::frame_view& f, std::span<const std::uint8_t> datagram,
                       void* owner, time_ns now) noexcept;
    void process_control(path_state& p, const kdp::control_frame& c, time_ns now) noexcept;
    void process_ack(path_state& p, const kdp::ack_frame& ack, time_ns now) noexcept;
    void process_stream(const kdp::frame_view& f, std::span<const std::uint8_t> datagram, void* owner,
                        time_ns now) noexcept;
    // Opens the packet's ENCRYPTED frames in place; the first failure's reason, or none.
    kdp::drop_reason open_frames(std::span<const std::uint8_t> datagram, time_ns now) noexcept;
    // handed: bytes of an unordered stream already given to the application by this frame.
    void deliver(stream_state& s, std::uint64_t handed = 0) noexcept;
    void hand_over(stream_state& s, std::uint64_t offset, buffer_ref piece) noexcept;
    void on_consumed(stream_state& s, std::uint64_t bytes) noexcept;

    void on_timers(time_ns now) noexcept;
    void path_suspect(path_state& p, time_ns now) noexcept;
    void path_failed(path_state& p, time_ns now) noexcept;
    void update_coupling() noexcept;
    void rebalance(time_ns now) noexcept;
    void describe(const path_state& p, const congestion_report& congestion, path_candidate& c) const noexcept;
    void update_latency_budget() noexcept;
    bool bulk_capped(const path_state& p) const noexcept;
    bool bounded_data_ready() const noexcept;
    stream_id guaranteed_due(time_ns now) noexcept;

    bool send_packet(path_state& p, time_ns now, bool probe, bool ack_only, stream_id first = 0) noexcept;
    bool has_stream_data() const noexcept;
    void fail(close_code code, std::string_view reason, time_ns now) noexcept;
    void emit(path_id path, std::span<const std::uint8_t> packet) noexcept;

    connection_config _config;
    connection_callbacks _cb;
    segment_pool _segments; // before _streams: their reassemblers return nodes to it on destruction
    std::vector<std::unique_ptr<path_state>> _paths;
    std::vector<path_id> _retired_paths; // removed ids, sorted: never reused (late ACKs name them)
    path_counters _retired_counters;     // what removed paths counted
    std::unordered_map<stream_id, std::unique_ptr<stream_state>> _streams;
    stream_scheduler _stream_sched;
    path_scheduler _path_sched;
    adaptive_load_balancer _balancer;
    lia_coupling _coupling;
    receive_credit _recv_credit;
    send_credit _send_credit;
    std::uint64_t _recv_highest_total = 0; // sum of every stream's highest received offset
    std::unique_ptr<pending_control> _pending;
    path_state* _redundant_target = nullptr; // set while flush() sends a packet the redundant strategy copies
    std::unique_ptr<deflate_compressor> _compressor;     // created with the first compressed stream
    std::unique_ptr<deflate_decompressor> _decompressor; // created with the first compressed frame
    frame_protection _protection;
    bool _require_encryption = false;
    bool _peer_encrypted = false; // a verified ENCRYPTED frame arrived: _require_encryption stays on
    bool _encrypt_tx = false; // seal every stream frame sent
    std::vector<std::uint8_t> _tx_buffer;
    std::vector<std::uint8_t> _scratch;
    // send_packet's frame list and their loss-recovery records, kdp::max_frames_per_packet
    // each, reused: as arrays on its stack they were default-initialised on every packet
    // built (6.6 KB of stores, about 1,300 instructions per ACK; perf/RESULTS.md 6).
    std::vector<kdp::frame_desc> _tx_frames;
    std::vector<sent_frame> _tx_records;
    std::uint64_t _next_local_stream;
    time_ns _last_activity;
    time_ns _now = 0; // the latest time the owner passed in (pacing arithmetic in next_wakeup)
    time_ns _latency_budget = 0; // tightest max_latency of the streams still sending; 0 = none
    std::vector<stream_id> _bounded; // streams exempt from the bulk cap (critical or latency-bounded)
    std::vector<stream_id> _guaranteed; // streams with a QoS min_bandwidth
    std::vector<stream_id> _connection_blocked; // streams idled by the connection limit, once each
    // set_stream_qos() for streams not open yet, sorted by id; reserved for max_streams.
    std::vector<std::pair<stream_id, qos_policy>> _pending_qos;
    std::uint64_t _stream_window; // receive window of streams opened from now on
    time_ns _next_balance;
    bool _closed = false;
    bool _close_pending = false;
    close_code _close_code = close_code::no_error;
    std::string _close_reason;
    connection_counters _counters;
    kdp::packet_view _rx_view; // parse state for one datagram, reused (4 KiB: not on the stack)
};

} // namespace kwik::transport
