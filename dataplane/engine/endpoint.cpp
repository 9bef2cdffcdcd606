#include "dataplane/engine/endpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace kwik::engine {

namespace {

constexpr std::size_t answer_chunk = 16 * 1024;
constexpr std::size_t max_request_line = 256;
constexpr std::uint64_t reset_bad_request = 1;

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A file name the file store serves: one path component of [A-Za-z0-9._-], not "." or "..".
bool valid_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 128 || name == "." || name == "..") {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
    });
}

} // namespace

std::string_view to_string(endpoint_kind k) noexcept {
    switch (k) {
    case endpoint_kind::discard:
        return "discard";
    case endpoint_kind::echo:
        return "echo";
    case endpoint_kind::pattern:
        return "pattern";
    case endpoint_kind::file_store:
        return "file_store";
    }
    return "invalid";
}

std::uint8_t pattern_byte(transport::stream_id id, std::uint64_t offset) noexcept {
    return static_cast<std::uint8_t>(splitmix64(splitmix64(id) ^ (offset >> 3)) >> (8 * (offset & 7)));
}

endpoint::endpoint(const endpoint_config& config, transport::connection& conn, const tx_allocator& alloc)
    : _config(config), _conn(conn), _alloc(alloc) {}

endpoint::~endpoint() {
    for (auto& [id, j] : _jobs) {
        close_job(j);
    }
}

endpoint::stream_job& endpoint::job(transport::stream_id id) {
    auto [it, inserted] = _jobs.try_emplace(id);
    if (inserted) {
        ++_counters.streams;
    }
    return it->second;
}

// What pump() would do for a job: write its backlog, send (or finish) an answer, or, for echo,
// read a stream that waited for the backlog or finish one the peer finished.
bool endpoint::has_work(const stream_job& j) const noexcept {
    if (!j.backlog.empty() || j.answer_length > j.answered || (j.head_done && j.answer_length > 0 && !j.finished)) {
        return true;
    }
    return _config.kind == endpoint_kind::echo && (j.readable || (j.peer_finished && !j.finished));
}

// Lists a job for pump() if it has work; every event that can give a job work ends here.
void endpoint::note(transport::stream_id id, stream_job& j) {
    if (!j.pending && has_work(j)) {
        j.pending = true;
        _pending.push_back(id);
    }
}

void endpoint::close_job(stream_job& j) {
    for (backlog_item& b : j.backlog) {
        if (b.owner != nullptr) {
            _alloc.ops->release(b.owner);
        }
    }
    j.backlog.clear();
    if (j.serve_fd >= 0) {
        ::close(j.serve_fd);
        j.serve_fd = -1;
    }
    if (j.store_fd >= 0) {
        ::close(j.store_fd);
        j.store_fd = -1;
    }
}

void endpoint::on_stream_opened(transport::stream_id id) { job(id); }

void endpoint::on_readable(transport::stream_id id) {
    stream_job& j = job(id);
    j.readable = true;
    if (j.backlog.empty()) {
        read_stream(id);
    }
    note(id, j);
}

void endpoint::read_stream(transport::stream_id id) {
    _reading = id;
    job(id).readable = false;
    _conn.read(id, &endpoint::on_read, this);
    _reading = 0;
}

void endpoint::on_read(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data) {
    auto* self = static_cast<endpoint*>(ctx);
    self->consume(self->_reading, self->job(self->_reading), offset, data); // read_stream's caller notes it
}

void endpoint::on_data(transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data) {
    stream_job& j = job(id);
    consume(id, j, offset, data);
    note(id, j);
}

// Copies data into a new tx buffer and queues it on the stream; false (and kept in the
// backlog) when the send buffer is full, or (spilled to the heap) when no tx buffer is left.
bool endpoint::send_copy(transport::stream_id id, std::span<const std::uint8_t> data) {
    stream_job& j = job(id);
    std::uint8_t* dst = nullptr;
    void* owner = _alloc.allocate(_alloc.ctx, data.size(), &dst);
    if (owner == nullptr) {
        ++_counters.tx_buffer_waits;
        _counters.spilled_bytes += data.size();
        backlog_item& b = j.backlog.emplace_back();
        b.spill.assign(data.begin(), data.end());
        return false;
    }
    std::memcpy(dst, data.data(), data.size());
    if (j.backlog.empty() && _conn.write(id, {dst, static_cast<std::uint32_t>(data.size()), owner})) {
        _counters.bytes_sent += data.size();
        _alloc.ops->release(owner);
        return true;
    }
    j.backlog.push_back({owner, std::span<const std::uint8_t>(dst, data.size()), {}});
    return false;
}

void endpoint::consume(transport::stream_id id, stream_job& j, std::uint64_t offset,
                       std::span<const std::uint8_t> data) {
    _counters.bytes_received += data.size();
    switch (_config.kind) {
    case endpoint_kind::discard:
        return;
    case endpoint_kind::echo:
        // Large deliveries go back in chunks, so one write never exceeds the send buffer.
        for (std::size_t pos = 0; pos < data.size(); pos += answer_chunk) {
            send_copy(id, data.subspan(pos, std::min(answer_chunk, data.size() - pos)));
        }
        return;
    case endpoint_kind::pattern:
        if (j.rejected) {
            return;
        }
        if (j.head.size() + data.size() > 8) {
            reject(id, j);
            return;
        }
        j.head.append(reinterpret_cast<const char*>(data.data()), data.size());
        return;
    case endpoint_kind::file_store: {
        if (j.rejected || j.serve_fd >= 0) {
            return; // bytes after a request line are ignored
        }
        if (!j.head_done) {
            // A request ("GET name\n") is a short stream read from its start; anything else,
            // including data of an unordered stream that arrives from a later offset first,
            // is stored.
            if (offset == j.head.size() && data.size() <= max_request_line) {
                std::size_t used = 0;
                while (used < data.size() && !j.head_done) {
                    j.head.push_back(static_cast<char>(data[used++]));
                    const bool request = std::string_view("GET ").starts_with(std::string_view(j.head).substr(0, 4)) &&
                                         j.head.size() <= max_request_line;
                    if (!request) {
                        j.head_done = true;
                    } else if (j.head.size() >= 4 && j.head.back() == '\n') {
                        j.head_done = true;
                        serve(id, j);
                        return;
                    }
                }
                if (!j.head_done) {
                    return;
                }
                if (!start_store(id, j)) {
                    return;
                }
                store(j, offset + used, data.subspan(used));
                return;
            }
            j.head_done = true;
            if (!start_store(id, j)) {
                return;
            }
        }
        store(j, offset, data);
        return;
    }
    }
}

// Writes data at its stream offset: unordered streams deliver pieces as they arrive.
void endpoint::store(stream_job& j, std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (j.store_fd >= 0 && !data.empty() &&
        ::pwrite(j.store_fd, data.data(), data.size(), static_cast<off_t>(offset)) != static_cast<ssize_t>(data.size())) {
        ++_counters.io_errors;
    }
}

// Answers a "GET name\n" request with the file, or refuses it.
void endpoint::serve(transport::stream_id id, stream_job& j) {
    const std::string name = j.head.substr(4, j.head.size() - 5);
    ++_counters.requests;
    if (!valid_name(name) || _config.directory.empty() ||
        (j.serve_fd = ::open((_config.directory + "/" + name).c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
        reject(id, j);
        return;
    }
    j.answer_length = static_cast<std::uint64_t>(::lseek(j.serve_fd, 0, SEEK_END));
    answer(id, j);
}

// Opens the file a stream is stored in and writes the bytes held while deciding.
bool endpoint::start_store(transport::stream_id id, stream_job& j) {
    const std::string path =
        _config.directory + "/c" + std::to_string(_config.connection_id) + "-s" + std::to_string(id) + ".bin";
    j.store_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (j.store_fd < 0 ||
        ::pwrite(j.store_fd, j.head.data(), j.head.size(), 0) != static_cast<ssize_t>(j.head.size())) {
        ++_counters.io_errors;
        reject(id, j);
        return false;
    }
    return true;
}

void endpoint::reject(transport::stream_id id, stream_job& j) {
    if (!j.rejected) {
        j.rejected = true;
        ++_counters.rejected;
        _conn.reset_stream(id, reset_bad_request);
    }
}

void endpoint::on_finished(transport::stream_id id) {
    stream_job& j = job(id);
    j.peer_finished = true;
    switch (_config.kind) {
    case endpoint_kind::pattern:
        if (j.rejected) {
            return;
        }
        if (j.head.size() != 8) {
            reject(id, j);
            return;
        }
        j.head_done = true;
        ++_counters.requests;
        for (unsigned char c : j.head) {
            j.answer_length = (j.answer_length << 8) | c;
        }
        if (j.answer_length > _config.max_pattern_length) {
            j.answer_length = 0;
            reject(id, j);
            return;
        }
        answer(id, j);
        note(id, j);
        return;
    case endpoint_kind::file_store:
        if (!j.head_done && !j.head.empty()) {
            // A short stream that never left the request check ("GE"): store it too.
            j.head_done = true;
            start_store(id, j);
        }
        if (j.store_fd >= 0) {
            ::close(j.store_fd);
            j.store_fd = -1;
            ++_counters.files_written;
        }
        return;
    default:
        note(id, j);
        pump();
        return;
    }
}

void endpoint::on_reset(transport::stream_id id, std::uint64_t code) {
    (void)code;
    const auto it = _jobs.find(id);
    if (it != _jobs.end()) {
        close_job(it->second);
        _jobs.erase(it);
    }
}

void endpoint::answer(transport::stream_id id, stream_job& j) {
    while (j.backlog.empty() && j.answered < j.answer_length) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(answer_chunk, j.answer_length - j.answered));
        std::uint8_t* dst = nullptr;
        void* owner = _alloc.allocate(_alloc.ctx, n, &dst);
        if (owner == nullptr) {
            ++_counters.tx_buffer_waits; // pump() comes back to it
            return;
        }
        if (j.serve_fd >= 0) {
            const ssize_t got = ::pread(j.serve_fd, dst, n, static_cast<off_t>(j.answered));
            if (got != static_cast<ssize_t>(n)) {
                _alloc.ops->release(owner);
                ++_counters.io_errors;
                reject(id, j);
                return;
            }
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                dst[i] = pattern_byte(id, j.answered + i);
            }
        }
        j.answered += n;
        if (_conn.write(id, {dst, static_cast<std::uint32_t>(n), owner})) {
            _counters.bytes_sent += n;
            _alloc.ops->release(owner);
        } else {
            j.backlog.push_back({owner, std::span<const std::uint8_t>(dst, n), {}});
        }
    }
    if (j.backlog.empty() && j.answered == j.answer_length && !j.finished) {
        j.finished = _conn.finish(id);
        if (j.serve_fd >= 0) {
            ::close(j.serve_fd);
            j.serve_fd = -1;
            ++_counters.files_served;
        }
    }
}

void endpoint::pump() {
    // Jobs that get work while these are worked on (an echo read fills a backlog) are listed
    // in the emptied _pending, for the next call.
    _pumping.swap(_pending);
    for (const transport::stream_id id : _pumping) {
        const auto it = _jobs.find(id);
        if (it == _jobs.end()) {
            continue; // reset since it was listed
        }
        stream_job& j = it->second;
        j.pending = false;
        pump_job(id, j);
        note(id, j);
    }
    _pumping.clear();
}

void endpoint::pump_job(transport::stream_id id, stream_job& j) {
    while (!j.backlog.empty()) {
        backlog_item& b = j.backlog.front();
        if (b.owner == nullptr) { // spilled: a tx buffer for it first
            std::uint8_t* dst = nullptr;
            b.owner = _alloc.allocate(_alloc.ctx, b.spill.size(), &dst);
            if (b.owner == nullptr) {
                ++_counters.tx_buffer_waits;
                break;
            }
            std::memcpy(dst, b.spill.data(), b.spill.size());
            b.data = std::span<const std::uint8_t>(dst, b.spill.size());
            std::vector<std::uint8_t>().swap(b.spill);
        }
        if (!_conn.write(id, {b.data.data(), static_cast<std::uint32_t>(b.data.size()), b.owner})) {
            break;
        }
        _counters.bytes_sent += b.data.size();
        _alloc.ops->release(b.owner);
        j.backlog.pop_front();
    }
    if (!j.backlog.empty()) {
        return;
    }
    if (j.answer_length > j.answered || (j.head_done && j.answer_length > 0 && !j.finished)) {
        answer(id, j);
    }
    if (_config.kind == endpoint_kind::echo) {
        if (j.readable) {
            read_stream(id);
        }
        if (j.peer_finished && j.backlog.empty() && !j.finished) {
            j.finished = _conn.finish(id);
        }
    }
}

bool endpoint::idle() const noexcept {
    return std::all_of(_jobs.begin(), _jobs.end(), [](const auto& kv) {
        return kv.second.backlog.empty() && kv.second.answered == kv.second.answer_length;
    });
}

} // namespace kwik::engine
