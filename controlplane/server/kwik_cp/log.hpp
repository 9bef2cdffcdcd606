// kwik-cp's log: one line per event on stderr (journald captures it), "<UTC time> kwik-cp
// <level>: <text>", with the level filter set by --log-level; protobuf's own messages come
// through the same path (install_protobuf_log_handler). Events only (sessions, hellos refused,
// kwikd attach/detach, start-up), never one line per KCP message. Any thread: a line is one
// write(2), so lines of different threads do not interleave.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/sd_daemon.hpp"

namespace kwik::cp {

// kwikd's names (--log-level emergency .. debug); the values are syslog's priorities, which a
// journald stream takes as a "<N>" line prefix.
using log_level = kwik::sd::priority;

std::string_view to_string(log_level level) noexcept;
// nullopt when text is none of the eight names.
std::optional<log_level> parse_log_level(std::string_view text) noexcept;
// "emergency, alert, ..., debug", for help texts and error messages.
std::string log_level_names();

// Lines at or above (as important as) this level are written; info by default.
void set_log_level(log_level level) noexcept;
log_level current_log_level() noexcept;
inline bool log_enabled(log_level level) noexcept { return level <= current_log_level(); }

// "2026-11-21T11:40:00.123Z kwik-cp info: text\n"; with journal_priority, "<6>" first. Newlines
// in text become spaces, so one event stays one line. Pure.
std::string format_log_line(log_level level, std::string_view text, std::chrono::system_clock::time_point at,
                            bool journal_priority);

// Where lines go: stderr by default (with the "<N>" prefix when stderr is the journal, as
// $JOURNAL_STREAM says). Tests capture lines with a sink of their own; nullptr restores stderr.
using log_sink = void (*)(log_level level, std::string_view line, void* context);
void set_log_sink(log_sink sink, void* context) noexcept;

// Writes text at level when the level is enabled.
void log_line(log_level level, std::string_view text);

// Routes protobuf's log messages (a string field with invalid UTF-8 in a parsed message, ...)
// through log_line as "protobuf: <message> (<file>:<line>)" at error for ERROR and FATAL, warning
// for WARNING, info for INFO. Call once at start-up, before other threads use protobuf.
void install_protobuf_log_handler();

// The events control_server reports (control_server.cpp calls these, nothing else).
// The peer of a connected socket, "192.0.2.1:40000" or "[2001:db8::1]:40000"; "?" when unknown.
std::string peer_of(int fd);
void log_session_opened(const std::string& peer, bool tls);
// client_id empty: the hello never completed.
void log_session_closed(const std::string& peer, const std::string& client_id, std::string_view reason);
void log_hello_refused(const std::string& peer, const std::string& client_id, std::string_view result,
                       std::string_view reason);
// From link_callbacks.on_attach_change (region_path: link_config's shm_directory/region_name;
// attaches, kwikd_restarts: link_counters'); restarted: kwikd_restarts grew since the last attach.
void log_kwikd_attach(bool attached, bool restarted, const std::string& region_path, std::uint64_t attaches,
                      std::uint64_t kwikd_restarts);

} // namespace kwik::cp
