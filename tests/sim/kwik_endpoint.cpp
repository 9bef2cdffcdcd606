#include "tests/sim/kwik_endpoint.hpp"

#include <algorithm>
#include <cstring>

#include "dataplane/transport/heap_buffer.hpp"

namespace kwik::sim {

using transport::heap_buffer;

namespace {
constexpr std::size_t write_chunk = 16 * 1024;
}

std::uint8_t content_byte(transport::stream_id id, std::uint64_t offset) noexcept {
    std::uint64_t x = (id * 0x9E3779B97F4A7C15ull) ^ (offset >> 3);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return static_cast<std::uint8_t>(x >> (8 * (offset & 7)));
}

std::uint8_t text_byte(transport::stream_id id, std::uint64_t offset) noexcept {
    static constexpr char sentence[] =
        "Kwik carries many streams over several paths at once; the receiver reassembles each by offset. ";
    const std::uint64_t n = sizeof(sentence) - 1;
    const std::uint64_t i = offset + id * 7;
    // Every 97th sentence gets a digit, so the text is compressible but not trivially so.
    if (i % (n * 97) == 3) {
        return static_cast<std::uint8_t>('0' + (i / n) % 10);
    }
    return static_cast<std::uint8_t>(sentence[i % n]);
}

namespace {
// Which streams carry text: a source registers its stream, the receiver (same process) checks.
std::vector<transport::stream_id>& text_streams() {
    static std::vector<transport::stream_id> ids;
    return ids;
}
bool is_text(transport::stream_id id) {
    const auto& v = text_streams();
    return std::find(v.begin(), v.end(), id) != v.end();
}
std::uint8_t expected_byte(transport::stream_id id, std::uint64_t offset) {
    return is_text(id) ? text_byte(id, offset) : content_byte(id, offset);
}
} // namespace

kwik_endpoint::kwik_endpoint(network& net, node_id self, const transport::connection_config& config,
                             std::vector<std::size_t> sim_paths)
    : _net(net), _self(self), _sim_paths(std::move(sim_paths)) {
    transport::connection_config c = config;
    c.tx_ops = &transport::heap_buffer_ops;
    c.rx_ops = &transport::heap_buffer_ops;
    transport::connection_callbacks cb;
    cb.ctx = this;
    cb.transmit = on_transmit;
    cb.allocate = on_allocate;
    cb.on_data = on_data;
    cb.on_readable = on_readable;
    cb.on_stream_finished = on_finished;
    cb.on_stream_opened = on_opened;
    cb.on_path_event = on_path_event;
    _conn = std::make_unique<transport::connection>(c, cb, net.now());
    for (std::size_t i = 0; i < _sim_paths.size(); ++i) {
        _conn->add_path(i + 1, net.now());
    }
    net.attach(self, *this);
}

kwik_endpoint::~kwik_endpoint() = default;

transport::stream_id kwik_endpoint::add_bulk(const transport::stream_options& o, std::uint64_t size) {
    const transport::stream_id id = _conn->open_stream(o);
    if (o.compress) {
        text_streams().push_back(id);
    }
    source s;
    s.id = id;
    s.size = size;
    _sources.push_back(s);
    _net.poke(_self);
    return id;
}

transport::stream_id kwik_endpoint::add_messages(const transport::stream_options& o, std::uint64_t message_size,
                                                 time_ns interval, std::uint32_t count, time_ns start) {
    const transport::stream_id id = _conn->open_stream(o);
    source s;
    s.id = id;
    s.size = message_size * count;
    s.message_size = message_size;
    s.interval = interval;
    s.count = count;
    s.next_message = start;
    _sources.push_back(s);
    _net.poke(_self);
    return id;
}

void kwik_endpoint::pump(time_ns now) {
    for (source& s : _sources) {
        std::uint64_t allowed = s.size;
        if (s.message_size != 0) {
            while (s.sent_messages < s.count && s.next_message <= now) {
                s.message_times.push_back(s.next_message);
                ++s.sent_messages;
                s.next_message += s.interval;
            }
            allowed = s.sent_messages * s.message_size;
        }
        while (s.written < allowed) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(write_chunk, allowed - s.written));
            heap_buffer* b = heap_buffer::make(n);
            for (std::size_t i = 0; i < n; ++i) {
                b->data()[i] = expected_byte(s.id, s.written + i);
            }
            const bool ok = _conn->write(s.id, {b->data(), static_cast<std::uint32_t>(n), b});
            transport::heap_buffer_release(b);
            if (!ok) {
                break; // send buffer full: try again after ACKs free it
            }
            s.written += n;
        }
        if (s.written == s.size && !s.finished) {
            s.finished = _conn->finish(s.id);
        }
    }
}

bool kwik_endpoint::sources_done() const {
    return std::all_of(_sources.begin(), _sources.end(), [this](const source& s) {
        return s.finished && _conn->stream_all_acked(s.id);
    });
}

void kwik_endpoint::on_datagram(std::size_t path, std::span<const std::uint8_t> bytes, bool ecn_ce, time_ns now) {
    const auto it = std::find(_sim_paths.begin(), _sim_paths.end(), path);
    if (it == _sim_paths.end()) {
        return;
    }
    heap_buffer* b = heap_buffer::make(bytes.size());
    std::memcpy(b->data(), bytes.data(), bytes.size());
    _conn->on_datagram(static_cast<transport::path_id>(it - _sim_paths.begin()) + 1, {b->data(), bytes.size()}, b,
                       ecn_ce, now);
    transport::heap_buffer_release(b);
    if (_read_interval == 0) {
        drain(now);
    }
    pump(now);
    _conn->flush(now);
}

time_ns kwik_endpoint::next_wakeup() const {
    time_ns t = _conn->next_wakeup();
    for (const source& s : _sources) {
        if (s.message_size != 0 && s.sent_messages < s.count) {
            t = std::min(t, s.next_message);
        }
    }
    if (_read_interval != 0 && !_readable.empty()) {
        t = std::min(t, _next_read);
    }
    return t;
}

void kwik_endpoint::on_wakeup(time_ns now) {
    if (_read_interval == 0 || now >= _next_read) {
        drain(now);
        if (_read_interval != 0) {
            _next_read = now + _read_interval;
        }
    }
    pump(now);
    _conn->flush(now);
}

void kwik_endpoint::drain(time_ns now) {
    (void)now;
    std::vector<transport::stream_id> ids;
    ids.swap(_readable);
    for (transport::stream_id id : ids) {
        _max_buffered = std::max(_max_buffered, _conn->stream_buffered_bytes(id));
        _reading = id;
        _conn->read(id, on_read, this);
    }
    _reading = 0;
}

void kwik_endpoint::record(transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data,
                           bool ordered) {
    received_stream& r = _received[id];
    if (ordered) {
        if (offset != r.next_ordered) {
            ++r.out_of_order;
        }
        r.next_ordered = offset + data.size();
    } else {
        if (r.seen.size() < offset + data.size()) {
            r.seen.resize(offset + data.size(), false);
        }
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (r.seen[offset + i]) {
                ++r.duplicate_bytes;
            }
            r.seen[offset + i] = true;
        }
    }
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] != expected_byte(id, offset + i)) {
            ++r.corrupt_bytes;
        }
    }
    r.bytes += data.size();
    _delivered += data.size();
    if (_time_arrivals) {
        r.arrivals.emplace_back(offset + data.size(), _net.now());
    }
}

std::vector<time_ns> kwik_endpoint::message_latencies(const kwik_endpoint& receiver, transport::stream_id id) const {
    std::vector<time_ns> out;
    const auto src = std::find_if(_sources.begin(), _sources.end(), [id](const source& s) { return s.id == id; });
    const auto rit = receiver._received.find(id);
    if (src == _sources.end() || rit == receiver._received.end()) {
        return out;
    }
    const auto& arrivals = rit->second.arrivals;
    std::size_t a = 0;
    for (std::size_t m = 0; m < src->message_times.size(); ++m) {
        const std::uint64_t end = (m + 1) * src->message_size;
        while (a < arrivals.size() && arrivals[a].first < end) {
            ++a;
        }
        if (a == arrivals.size()) {
            break;
        }
        out.push_back(arrivals[a].second - src->message_times[m]);
    }
    return out;
}

void kwik_endpoint::on_transmit(void* ctx, transport::path_id path, std::span<const std::uint8_t> packet) {
    auto* self = static_cast<kwik_endpoint*>(ctx);
    if (path == 0 || path > self->_sim_paths.size()) {
        return;
    }
    self->_net.send(self->_self, self->_sim_paths[path - 1], packet);
}

void* kwik_endpoint::on_allocate(void*, std::size_t size, std::uint8_t** data) {
    heap_buffer* b = heap_buffer::make(size);
    if (b == nullptr) {
        return nullptr;
    }
    *data = b->data();
    return b;
}

void kwik_endpoint::on_data(void* ctx, transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) {
    static_cast<kwik_endpoint*>(ctx)->record(id, offset, data, false);
}

void kwik_endpoint::on_read(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data) {
    auto* self = static_cast<kwik_endpoint*>(ctx);
    self->record(self->_reading, offset, data, true);
}

void kwik_endpoint::on_readable(void* ctx, transport::stream_id id) {
    auto* self = static_cast<kwik_endpoint*>(ctx);
    self->_readable.push_back(id);
    if (self->_read_interval != 0 && self->_next_read == 0) {
        self->_next_read = self->_net.now() + self->_read_interval;
    }
}

void kwik_endpoint::on_finished(void* ctx, transport::stream_id id) {
    auto* self = static_cast<kwik_endpoint*>(ctx);
    received_stream& r = self->_received[id];
    r.finished = true;
    r.finished_at = self->_net.now();
}

void kwik_endpoint::on_opened(void* ctx, transport::stream_id id) {
    static_cast<kwik_endpoint*>(ctx)->_received[id];
}

void kwik_endpoint::on_path_event(void* ctx, transport::path_id path, transport::path_event e) {
    auto* self = static_cast<kwik_endpoint*>(ctx);
    self->_path_events.push_back({path, e, self->_net.now()});
}

} // namespace kwik::sim
