// kwik-peer's transfer: sources, modes and digests; see transfer.hpp.
#include "tools/peer/transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "dataplane/engine/endpoint.hpp"

namespace kwik::peer {

namespace {

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

} // namespace

std::string_view to_string(transfer_mode m) noexcept {
    switch (m) {
    case transfer_mode::echo:
        return "echo";
    case transfer_mode::upload:
        return "upload";
    case transfer_mode::download:
        return "download";
    case transfer_mode::get:
        return "get";
    }
    return "invalid";
}

sha256::sha256() : _ctx(EVP_MD_CTX_new()) {
    if (_ctx == nullptr || EVP_DigestInit_ex(_ctx, EVP_sha256(), nullptr) != 1) {
        std::abort(); // out of memory at set-up: nothing sensible to continue with
    }
}

sha256::~sha256() { EVP_MD_CTX_free(_ctx); }

void sha256::update(std::span<const std::uint8_t> data) noexcept {
    (void)EVP_DigestUpdate(_ctx, data.data(), data.size());
}

sha256::digest sha256::finish() noexcept {
    digest d{};
    unsigned len = 0;
    (void)EVP_DigestFinal_ex(_ctx, d.data(), &len);
    return d;
}

std::string sha256::hex(const digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (std::uint8_t b : d) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

static_assert(std::endian::native == std::endian::little, "generate_data stores words in memory order");

void generate_data(std::uint64_t seed, std::uint64_t offset, std::span<std::uint8_t> out) noexcept {
    const std::uint64_t base = seed << 32;
    std::size_t i = 0;
    // Leading bytes up to a word boundary, then whole words (about 1 ns per 8 bytes), then the tail.
    while (i < out.size() && ((offset + i) & 7) != 0) {
        out[i] = static_cast<std::uint8_t>(splitmix64(base + ((offset + i) >> 3)) >> (8 * ((offset + i) & 7)));
        ++i;
    }
    for (; i + 8 <= out.size(); i += 8) {
        // Little-endian host (x86-64, the only target): the word's bytes in memory order are
        // bytes 0..7 of the definition: one 8-byte store instead of eight.
        const std::uint64_t w = splitmix64(base + ((offset + i) >> 3));
        std::memcpy(out.data() + i, &w, sizeof w);
    }
    for (; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(splitmix64(base + ((offset + i) >> 3)) >> (8 * ((offset + i) & 7)));
    }
}

std::uint64_t pattern_mismatches(transport::stream_id id, std::uint64_t offset, std::span<const std::uint8_t> data,
                                 std::uint64_t* first) noexcept {
    std::uint64_t bad = 0;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] != engine::pattern_byte(id, offset + i)) [[unlikely]] {
            if (bad++ == 0 && first != nullptr) {
                *first = offset + i;
            }
        }
    }
    return bad;
}

struct transfer::stream_job {
    transport::stream_id id = 0;
    std::uint64_t source_offset = 0; // echo, upload: where this stream's share of the source starts
    std::uint64_t to_send = 0;
    std::uint64_t written = 0;
    std::string request; // download, get: the request sent instead of data
    std::uint64_t expected = 0; // bytes that must come back (echo: to_send; download: requested)
    std::uint64_t received = 0;
    bool fin_sent = false, fin_received = false, reset = false;
    sha256 sent_hash, received_hash;
    sha256::digest sent_digest{}, received_digest{};
    std::uint64_t mismatched = 0, first_mismatch = 0;
    pooled_buffer* pending = nullptr; // a chunk write() refused, tried again first
    std::uint32_t pending_len = 0;
    bool verified = false;
};

transfer::transfer(const transfer_settings& s, packet_pool& tx_pool) : _settings(s), _tx_pool(tx_pool) {}

transfer::~transfer() {
    for (auto& j : _jobs) {
        if (j->pending != nullptr) {
            packet_pool::release(j->pending);
        }
    }
    if (_source_fd >= 0) {
        ::close(_source_fd);
    }
    if (_output_fd >= 0) {
        ::close(_output_fd);
    }
}

result<std::unique_ptr<transfer>> transfer::create(const transfer_settings& s, packet_pool& tx_pool) {
    std::unique_ptr<transfer> t(new transfer(s, tx_pool));
    std::uint64_t total = s.size;
    if (!s.file.empty()) {
        t->_source_fd = ::open(s.file.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (t->_source_fd < 0 || ::fstat(t->_source_fd, &st) != 0) {
            return error{"--file: " + s.file + ": " + std::strerror(errno), errno};
        }
        if (!S_ISREG(st.st_mode)) {
            return error{"--file: " + s.file + " is not a regular file"};
        }
        total = static_cast<std::uint64_t>(st.st_size);
    }
    if (s.mode == transfer_mode::get) {
        t->_output_fd = ::open(s.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (t->_output_fd < 0) {
            return error{"--output: " + s.output + ": " + std::strerror(errno), errno};
        }
    }
    const std::uint32_t n = s.mode == transfer_mode::get ? 1 : s.streams;
    for (std::uint32_t k = 0; k < n; ++k) {
        auto j = std::make_unique<stream_job>();
        // Even shares; the last stream takes the remainder.
        const std::uint64_t share = total / n;
        const std::uint64_t bytes = k + 1 == n ? total - share * (n - 1) : share;
        switch (s.mode) {
        case transfer_mode::echo:
            j->source_offset = share * k;
            j->to_send = bytes;
            j->expected = bytes;
            break;
        case transfer_mode::upload:
            j->source_offset = share * k;
            j->to_send = bytes;
            break;
        case transfer_mode::download:
            j->expected = bytes;
            for (int b = 7; b >= 0; --b) {
                j->request.push_back(static_cast<char>(bytes >> (8 * b)));
            }
            break;
        case transfer_mode::get:
            j->request = "GET " + s.name + "\n";
            break;
        }
        t->_jobs.push_back(std::move(j));
    }
    return t;
}

bool transfer::start(transport::connection& conn) {
    for (auto& j : _jobs) {
        j->id = conn.open_stream(transport::stream_options{});
        if (j->id == 0) {
            fail("the connection refused to open stream " + std::to_string(&j - _jobs.data() + 1));
            return false;
        }
    }
    return true;
}

transfer::stream_job* transfer::find(transport::stream_id id) noexcept {
    for (auto& j : _jobs) {
        if (j->id == id) {
            return j.get();
        }
    }
    return nullptr;
}

// n bytes of j's share of the source at j.written.
bool transfer::fill(stream_job& j, std::uint8_t* dst, std::size_t n) noexcept {
    const std::uint64_t at = j.source_offset + j.written;
    if (_source_fd < 0) {
        generate_data(_settings.seed, at, {dst, n});
        return true;
    }
    std::size_t done = 0;
    while (done < n) {
        const ssize_t got = ::pread(_source_fd, dst + done, n - done, static_cast<off_t>(at + done));
        if (got <= 0) {
            fail("--file: " + _settings.file + ": " + (got == 0 ? std::string("shorter than when opened") : std::strerror(errno)));
            return false;
        }
        done += static_cast<std::size_t>(got);
    }
    return true;
}

void transfer::write_stream(transport::connection& conn, stream_job& j) noexcept {
    if (!j.request.empty() && j.written == 0 && j.pending == nullptr) {
        pooled_buffer* b = _tx_pool.get(j.request.size());
        if (b == nullptr) {
            return;
        }
        std::memcpy(b->data(), j.request.data(), j.request.size());
        j.pending = b;
        j.pending_len = static_cast<std::uint32_t>(j.request.size());
        j.to_send = j.request.size();
    }
    while (j.written < j.to_send || j.pending != nullptr) {
        if (j.pending == nullptr) {
            // One tx pool buffer per write (16 KiB: 11 packets), so one write call serves many.
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(_tx_pool.buffer_size(), j.to_send - j.written));
            pooled_buffer* b = _tx_pool.get(n);
            if (b == nullptr) {
                return; // every tx buffer is held by send buffers: wait for ACKs
            }
            if (!fill(j, b->data(), n)) {
                packet_pool::release(b);
                return;
            }
            j.pending = b;
            j.pending_len = static_cast<std::uint32_t>(n);
        }
        if (!conn.write(j.id, {j.pending->data(), j.pending_len, j.pending})) {
            return; // send buffer full: the chunk waits for ACKs to free it
        }
        const std::span<const std::uint8_t> sent(j.pending->data(), j.pending_len);
        if (j.request.empty()) {
            j.sent_hash.update(sent);
        }
        j.written += j.pending_len;
        _bytes_sent += j.pending_len;
        packet_pool::release(j.pending); // the send buffer holds its own reference
        j.pending = nullptr;
    }
    if (!j.fin_sent && conn.finish(j.id)) {
        j.fin_sent = true;
        if (j.request.empty()) {
            j.sent_digest = j.sent_hash.finish();
        }
    }
}

void transfer::pump(transport::connection& conn) noexcept {
    for (auto& j : _jobs) {
        if (!j->fin_sent && !j->reset) {
            write_stream(conn, *j);
        }
    }
}

void transfer::on_read(void* ctx, std::uint64_t offset, std::span<const std::uint8_t> data) {
    auto* self = static_cast<transfer*>(ctx);
    if (self->_reading != nullptr) {
        self->received(*self->_reading, offset, data);
    }
}

void transfer::received(stream_job& j, std::uint64_t offset, std::span<const std::uint8_t> data) noexcept {
    j.received_hash.update(data);
    j.received += data.size();
    _bytes_received += data.size();
    switch (_settings.mode) {
    case transfer_mode::download: {
        std::uint64_t first = 0;
        const std::uint64_t bad = pattern_mismatches(j.id, offset, data, &first);
        if (bad != 0 && j.mismatched == 0) {
            j.first_mismatch = first;
        }
        j.mismatched += bad;
        break;
    }
    case transfer_mode::get: {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::pwrite(_output_fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
            if (n <= 0) {
                fail("--output: " + _settings.output + ": " + std::strerror(errno));
                return;
            }
            done += static_cast<std::size_t>(n);
        }
        break;
    }
    case transfer_mode::echo:
    case transfer_mode::upload:
        break;
    }
}

void transfer::on_readable(transport::connection& conn, transport::stream_id id) noexcept {
    stream_job* j = find(id);
    _reading = j;
    // A stream that is not ours (the server opened one) is read and dropped, so its data does
    // not hold the connection's window.
    conn.read(id, &transfer::on_read, this);
    _reading = nullptr;
    if (j != nullptr && j->expected != 0 && j->received > j->expected && _settings.mode != transfer_mode::get) {
        fail("stream " + std::to_string(id) + ": the server sent " + std::to_string(j->received) + " bytes, more than the " +
             std::to_string(j->expected) + " expected");
    }
}

void transfer::on_finished(transport::connection& conn, transport::stream_id id) noexcept {
    on_readable(conn, id); // every byte up to FIN is readable now
    if (stream_job* j = find(id)) {
        j->fin_received = true;
    }
}

void transfer::on_reset(transport::stream_id id, std::uint64_t code) noexcept {
    stream_job* j = find(id);
    if (j == nullptr) {
        return;
    }
    j->reset = true;
    std::string what = "the server reset stream " + std::to_string(id) + " (code " + std::to_string(code) + ")";
    if (_settings.mode == transfer_mode::download) {
        what += ": it refused the pattern request (length above its maximum?)";
    } else if (_settings.mode == transfer_mode::get) {
        what += ": no file \"" + _settings.name + "\" it can serve";
    }
    fail(what);
}

void transfer::fail(std::string reason) {
    if (_error.empty()) {
        _error = std::move(reason);
    }
}

bool transfer::complete(const transport::connection& conn) noexcept {
    if (_decided) {
        return true;
    }
    for (const auto& j : _jobs) {
        if (!j->fin_sent) {
            return false;
        }
        if (_settings.mode == transfer_mode::upload ? !conn.stream_all_acked(j->id) : !j->fin_received) {
            return false;
        }
    }
    decide();
    return true;
}

void transfer::decide() {
    _decided = true;
    sha256 total_sent, total_received;
    for (auto& j : _jobs) {
        j->received_digest = j->received_hash.finish();
        total_sent.update(j->sent_digest);
        total_received.update(j->received_digest);
    }
    // One stream: its digest. Several: SHA-256 over the streams' digests in stream order.
    const bool hashes_sent = _settings.mode == transfer_mode::echo || _settings.mode == transfer_mode::upload;
    const bool hashes_received = _settings.mode != transfer_mode::upload;
    if (_jobs.size() == 1) {
        _total_sent = hashes_sent ? sha256::hex(_jobs[0]->sent_digest) : "";
        _total_received = hashes_received ? sha256::hex(_jobs[0]->received_digest) : "";
    } else {
        const auto s = total_sent.finish();
        const auto r = total_received.finish();
        _total_sent = hashes_sent ? sha256::hex(s) : "";
        _total_received = hashes_received ? sha256::hex(r) : "";
    }
    bool all = true;
    for (auto& j : _jobs) {
        const std::string name = "stream " + std::to_string(j->id);
        switch (_settings.mode) {
        case transfer_mode::echo:
            if (j->received != j->to_send) {
                fail(name + ": " + std::to_string(j->received) + " bytes came back, " + std::to_string(j->to_send) +
                     " were sent");
            } else if (j->received_digest != j->sent_digest) {
                fail(name + ": the SHA-256 of the bytes that came back differs from what was sent");
            } else {
                j->verified = true;
            }
            break;
        case transfer_mode::upload:
            j->verified = true; // every byte acknowledged by the server
            break;
        case transfer_mode::download:
            if (j->received != j->expected) {
                fail(name + ": " + std::to_string(j->received) + " bytes arrived, " + std::to_string(j->expected) +
                     " were requested");
            } else if (j->mismatched != 0) {
                fail(name + ": " + std::to_string(j->mismatched) + " bytes differ from the pattern, the first at offset " +
                     std::to_string(j->first_mismatch));
            } else {
                j->verified = true;
            }
            break;
        case transfer_mode::get:
            j->verified = !j->reset;
            break;
        }
        all = all && j->verified;
    }
    if (_settings.expect) {
        const std::string& got = _settings.mode == transfer_mode::upload ? _total_sent : _total_received;
        const std::string want = sha256::hex(*_settings.expect);
        if (got != want) {
            fail(std::string("--expect-sha256: the ") + (_settings.mode == transfer_mode::upload ? "sent" : "received") +
                 " data's SHA-256 is " + got + ", not " + want);
            all = false;
        }
    }
    _verified = all && _error.empty();
}

std::vector<stream_result> transfer::streams() const {
    std::vector<stream_result> out;
    for (const auto& j : _jobs) {
        stream_result r;
        r.id = j->id;
        r.bytes_to_send = j->to_send;
        r.bytes_sent = j->written;
        r.bytes_received = j->received;
        r.bytes_expected = j->expected;
        if (_decided) {
            if (_settings.mode == transfer_mode::echo || _settings.mode == transfer_mode::upload) {
                r.sha256_sent = sha256::hex(j->sent_digest);
            }
            if (_settings.mode != transfer_mode::upload) {
                r.sha256_received = sha256::hex(j->received_digest);
            }
        }
        r.mismatched_bytes = j->mismatched;
        r.first_mismatch = j->first_mismatch;
        r.finished = j->fin_sent && (_settings.mode == transfer_mode::upload || j->fin_received);
        r.verified = j->verified;
        out.push_back(r);
    }
    return out;
}

} // namespace kwik::peer
