// kwik-cp's log; see log.hpp.
#include "controlplane/server/kwik_cp/log.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

#include <google/protobuf/stubs/logging.h>

#include "common/sd_daemon.hpp"

namespace kwik::cp {

namespace {

constexpr std::array<std::pair<std::string_view, log_level>, 8> names{{
    {"emergency", log_level::emergency},
    {"alert", log_level::alert},
    {"critical", log_level::critical},
    {"error", log_level::error},
    {"warning", log_level::warning},
    {"notice", log_level::notice},
    {"info", log_level::info},
    {"debug", log_level::debug},
}};

std::atomic<log_level> g_level{log_level::info};
std::atomic<log_sink> g_sink{nullptr};
std::atomic<void*> g_sink_context{nullptr};

void write_stderr(std::string_view line) {
    while (!line.empty()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
        if (n <= 0) {
            return; // stderr is gone: nowhere left to say so
        }
        line.remove_prefix(static_cast<std::size_t>(n));
    }
}

void protobuf_handler(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
    log_level ours = log_level::error;
    switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
        ours = log_level::info;
        break;
    case google::protobuf::LOGLEVEL_WARNING:
        ours = log_level::warning;
        break;
    default:
        ours = log_level::error; // ERROR, and FATAL (protobuf aborts after it)
        break;
    }
    std::string_view text = message;
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) {
        text.remove_suffix(1);
    }
    log_line(ours, "protobuf: " + std::string(text) + " (" + (filename != nullptr ? filename : "?") + ":" +
                       std::to_string(line) + ")");
}

} // namespace

std::string_view to_string(log_level level) noexcept {
    for (const auto& [name, l] : names) {
        if (l == level) {
            return name;
        }
    }
    return "unknown";
}

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
    for (const auto& [name, l] : names) {
        if (name == text) {
            return l;
        }
    }
    return std::nullopt;
}

std::string log_level_names() {
    std::string out;
    for (const auto& [name, l] : names) {
        out += (out.empty() ? "" : ", ") + std::string(name);
    }
    return out;
}

void set_log_level(log_level level) noexcept { g_level.store(level, std::memory_order_relaxed); }

log_level current_log_level() noexcept { return g_level.load(std::memory_order_relaxed); }

std::string format_log_line(log_level level, std::string_view text, std::chrono::system_clock::time_point at,
                            bool journal_priority) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    ::gmtime_r(&secs, &utc);
    std::array<char, 40> stamp{};
    const std::size_t n = std::strftime(stamp.data(), stamp.size(), "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(stamp.data() + n, stamp.size() - n, ".%03dZ", static_cast<int>(ms % 1000));
    std::string line;
    line.reserve(text.size() + 64);
    if (journal_priority) {
        line += "<" + std::to_string(static_cast<int>(level)) + ">";
    }
    line += stamp.data();
    line += " kwik-cp ";
    line += to_string(level);
    line += ": ";
    for (const char c : text) {
        line += (c == '\n' || c == '\r') ? ' ' : c;
    }
    line += '\n';
    return line;
}

void set_log_sink(log_sink sink, void* context) noexcept {
    g_sink_context.store(context, std::memory_order_relaxed);
    g_sink.store(sink, std::memory_order_release);
}

void log_line(log_level level, std::string_view text) {
    if (!log_enabled(level)) {
        return;
    }
    static const bool journal = sd::is_journal_stream(STDERR_FILENO);
    const log_sink sink = g_sink.load(std::memory_order_acquire);
    const std::string line = format_log_line(level, text, std::chrono::system_clock::now(), journal && sink == nullptr);
    if (sink != nullptr) {
        sink(level, line, g_sink_context.load(std::memory_order_relaxed));
    } else {
        write_stderr(line);
    }
}

void install_protobuf_log_handler() { google::protobuf::SetLogHandler(&protobuf_handler); }

std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return "?";
    }
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, text.data(), text.size());
        return std::string(text.data()) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, text.data(), text.size());
        return "[" + std::string(text.data()) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    return "?";
}

void log_session_opened(const std::string& peer, bool tls) {
    if (log_enabled(log_level::info)) {
        log_line(log_level::info, "session opened: peer " + peer + (tls ? ", TLS" : ", plain TCP"));
    }
}

void log_session_closed(const std::string& peer, const std::string& client_id, std::string_view reason) {
    if (log_enabled(log_level::info)) {
        log_line(log_level::info, "session closed: peer " + peer + ", client " +
                                      (client_id.empty() ? std::string("(no hello accepted)") : "\"" + client_id + "\"") +
                                      ": " + std::string(reason.empty() ? "no reason given" : reason));
    }
}

void log_hello_refused(const std::string& peer, const std::string& client_id, std::string_view result,
                       std::string_view reason) {
    log_line(log_level::warning, "hello refused: peer " + peer + ", client \"" + client_id.substr(0, 128) + "\": " +
                                     std::string(result) + ": " + std::string(reason));
}

void log_kwikd_attach(bool attached, bool restarted, const std::string& region_path, std::uint64_t attaches,
                      std::uint64_t kwikd_restarts) {
    const std::string region = "shared memory " + region_path;
    if (!attached) {
        log_line(log_level::warning, "kwikd detached (" + region + "): its connections are kept and pushed again "
                                     "when it is back");
        return;
    }
    log_line(restarted ? log_level::warning : log_level::notice,
             std::string(restarted ? "kwikd restarted: attached to its new " : "kwikd attached: ") + region +
                 " (attach " + std::to_string(attaches) + ", kwikd restarts " +
                 std::to_string(kwikd_restarts) + ")");
}

} // namespace kwik::cp
