// sd_notify, the watchdog interval and journal priority streams (sd_daemon.hpp). Our own few
// lines instead of libsystemd: the protocol is one datagram of "KEY=VALUE" lines to a unix socket
// (sd_notify(3) documents it as stable and gives a reference implementation), and kwikd stays
// free of a library that only matters under systemd.
#include "common/sd_daemon.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace kwik::sd {

namespace {

struct priority_cookie {
    int fd;
    priority_source source;
    void* context;
    bool line_start = true;
};

// Writes prefix (may be empty) and data as one writev, so that another stream's line on the
// same descriptor (DPDK's, stderr's) cannot land between a line and its priority.
bool write_line(int fd, std::string_view prefix, const char* data, std::size_t size) noexcept {
    iovec parts[2] = {{const_cast<char*>(prefix.data()), prefix.size()}, {const_cast<char*>(data), size}};
    int first = prefix.empty() ? 1 : 0;
    while (first < 2) {
        const ssize_t n = ::writev(fd, parts + first, 2 - first);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        auto left = static_cast<std::size_t>(n);
        while (first < 2 && left >= parts[first].iov_len) {
            left -= parts[first].iov_len;
            ++first;
        }
        if (first < 2) {
            parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + left;
            parts[first].iov_len -= left;
        }
    }
    return true;
}

// Called by stdio with whatever it flushes: usually whole lines (the stream is line-buffered),
// but a line may come in pieces, so where a line starts is carried across calls.
ssize_t write_with_priority(void* cookie, const char* data, std::size_t size) {
    auto* c = static_cast<priority_cookie*>(cookie);
    std::size_t done = 0;
    while (done < size) {
        char prefix[3] = {'<', '6', '>'};
        std::string_view use;
        if (c->line_start) {
            const bool has_prefix = size - done >= 3 && data[done] == '<' && data[done + 1] >= '0' &&
                                    data[done + 1] <= '7' && data[done + 2] == '>';
            if (!has_prefix) {
                const int p = c->source(c->context);
                prefix[1] = static_cast<char>('0' + (p < 0 ? 0 : (p > 7 ? 7 : p)));
                use = std::string_view(prefix, sizeof prefix);
            }
        }
        const void* nl = std::memchr(data + done, '\n', size - done);
        const std::size_t end = nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - data) + 1 : size;
        if (!write_line(c->fd, use, data + done, end - done)) {
            return done == 0 ? -1 : static_cast<ssize_t>(done);
        }
        c->line_start = nl != nullptr;
        done = end;
    }
    return static_cast<ssize_t>(size);
}

int close_priority_stream(void* cookie) {
    delete static_cast<priority_cookie*>(cookie);
    return 0;
}

int fixed_priority(void* context) {
    return static_cast<int>(reinterpret_cast<std::intptr_t>(context));
}

} // namespace

bool is_journal_stream(int fd) noexcept {
    const char* v = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    if (v == nullptr || ::fstat(fd, &st) != 0) {
        return false;
    }
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    char* end = nullptr;
    const unsigned long long dev = std::strtoull(v, &end, 10);
    if (!digit(v[0]) || *end != ':' || !digit(end[1])) {
        return false;
    }
    const unsigned long long ino = std::strtoull(end + 1, &end, 10);
    return *end == '\0' && dev == st.st_dev && ino == st.st_ino;
}

std::string journal_prefix(int fd, priority p) {
    if (!is_journal_stream(fd)) {
        return {};
    }
    return "<" + std::to_string(static_cast<int>(p)) + ">";
}

FILE* open_priority_stream(int fd, priority_source line_priority, void* context) {
    auto* cookie = new priority_cookie{fd, line_priority, context};
    const cookie_io_functions_t io{nullptr, write_with_priority, nullptr, close_priority_stream};
    FILE* f = ::fopencookie(cookie, "w", io);
    if (f == nullptr) {
        delete cookie;
        return nullptr;
    }
    // One write(2) per line: the journal makes one entry per line it reads either way.
    std::setvbuf(f, nullptr, _IOLBF, 0);
    return f;
}

unsigned prefix_standard_streams(priority out, priority err) {
    unsigned replaced = 0;
    // glibc documents stdout and stderr as ordinary variables that a program may assign.
    if (is_journal_stream(STDOUT_FILENO)) {
        std::fflush(stdout);
        if (FILE* f = open_priority_stream(STDOUT_FILENO, fixed_priority,
                                           reinterpret_cast<void*>(static_cast<std::intptr_t>(out)))) {
            stdout = f;
            replaced |= 1u;
        }
    }
    if (is_journal_stream(STDERR_FILENO)) {
        if (FILE* f = open_priority_stream(STDERR_FILENO, fixed_priority,
                                           reinterpret_cast<void*>(static_cast<std::intptr_t>(err)))) {
            stderr = f;
            replaced |= 2u;
        }
    }
    return replaced;
}

result<bool> notify(std::string_view state) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (where == nullptr || where[0] == '\0') {
        return false;
    }
    const std::string_view path(where);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof addr.sun_path) {
        return error{"NOTIFY_SOCKET=" + std::string(path) +
                     ": not a unix socket path or @abstract name of at most " +
                     std::to_string(sizeof addr.sun_path - 1) + " bytes"};
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (path[0] == '@') {
        addr.sun_path[0] = '\0';
    }
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0));
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return error{"NOTIFY_SOCKET: socket: " + std::generic_category().message(errno), errno};
    }
    ssize_t sent = 0;
    do {
        sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
    } while (sent < 0 && errno == EINTR);
    const int err = errno;
    ::close(fd);
    if (sent != static_cast<ssize_t>(state.size())) {
        return error{"NOTIFY_SOCKET=" + std::string(path) + ": " + std::generic_category().message(err), err};
    }
    return true;
}

std::optional<std::chrono::microseconds> watchdog_interval() noexcept {
    const char* usec = std::getenv("WATCHDOG_USEC");
    if (usec == nullptr) {
        return std::nullopt;
    }
    if (const char* pid = std::getenv("WATCHDOG_PID")) {
        char* end = nullptr;
        const long long p = std::strtoll(pid, &end, 10);
        if (end == pid || *end != '\0' || p != static_cast<long long>(::getpid())) {
            return std::nullopt;
        }
    }
    if (usec[0] < '0' || usec[0] > '9') { // strtoull would take "-5" as a huge number
        return std::nullopt;
    }
    char* end = nullptr;
    const unsigned long long v = std::strtoull(usec, &end, 10);
    if (*end != '\0' || v == 0) {
        return std::nullopt;
    }
    return std::chrono::microseconds(static_cast<std::int64_t>(v));
}

} // namespace kwik::sd
