// What kwikd and kwik-cp need from systemd, without libsystemd: the sd_notify datagram protocol
// (READY=1, STATUS=, STOPPING=1, WATCHDOG=1; sd_notify(3)), the watchdog interval systemd asks
// for (WATCHDOG_USEC), and the journal's "<N>" priority prefix on lines written to a stream that
// is the journal (JOURNAL_STREAM, sd-daemon(3)). Without NOTIFY_SOCKET / JOURNAL_STREAM every
// function here does nothing. Any thread; the stream functions at start-up, before other threads.
#pragma once

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace kwik::sd {

// syslog's priorities, as the journal reads them from a "<N>" line prefix.
enum class priority : int {
    emergency = 0,
    alert = 1,
    critical = 2,
    error = 3,
    warning = 4,
    notice = 5,
    info = 6,
    debug = 7,
};

// True when fd is the stream systemd connected to the journal: JOURNAL_STREAM ("<dev>:<ino>")
// names the device and inode fstat(fd) reports.
bool is_journal_stream(int fd) noexcept;

// "<N>" when fd is the journal, else "": for code that writes its own lines.
std::string journal_prefix(int fd, priority p);

// A line-buffered stream writing to fd that starts every line with "<N>", N being what
// line_priority(context) answers when the line's first byte is written; a line that already
// starts with "<digit>" is left as it is. nullptr (errno set) if the stream cannot be made.
// fd stays open when the stream is closed.
using priority_source = int (*)(void* context);
FILE* open_priority_stream(int fd, priority_source line_priority, void* context);

// kwikd's stdout and stderr: each one that is the journal is replaced by a priority stream on
// the same descriptor (stdout's lines at `out`, stderr's at `err`), so every printf and fprintf
// carries a priority. Returns which of the two were replaced (bit 0: stdout, bit 1: stderr).
unsigned prefix_standard_streams(priority out, priority err);

// Sends state ("READY=1", "STATUS=...", several separated by '\n') to $NOTIFY_SOCKET (a path,
// or "@name" in the abstract namespace). Ok and false when NOTIFY_SOCKET is unset; an error
// naming the socket when it is set and the datagram cannot be sent.
[[nodiscard]] result<bool> notify(std::string_view state);

// The interval systemd expects WATCHDOG=1 within ($WATCHDOG_USEC), when it is set and meant for
// this process ($WATCHDOG_PID absent or ours); nullopt otherwise. Send at about half of it.
std::optional<std::chrono::microseconds> watchdog_interval() noexcept;

} // namespace kwik::sd
