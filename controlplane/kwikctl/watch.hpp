// kwikctl watch: one view asked for again every interval over one session and redrawn in place
// like top (ANSI home + clear on a terminal; plain blocks, each under a header line, when
// stdout is a pipe or file; one JSON object per line with --json). Ends on q (stdin a
// terminal), Ctrl-C / SIGTERM, or after --count refreshes. The caller's thread; it installs
// SIGINT/SIGTERM handlers for the loop and puts a terminal stdin in non-canonical mode,
// restoring both before it returns.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include "controlplane/kwikctl/command_line.hpp"
#include "controlplane/kwikctl/operator_session.hpp"

namespace kwik::ctl {

// One refresh as printed: on a terminal "\x1b[H\x1b[2J" first; then "kwikctl watch <view> ...
// every N ms  HH:MM:SS" (UTC) and the rendered response.
std::string watch_frame(std::string_view title, std::uint32_t interval_ms, std::time_t now,
                        const kcp::v3::OperatorResponse& response, bool terminal);

// Runs the loop; returns the exit status (0, 1 when kwik-cp answers not ok, 3 when the session
// fails). out/err: where frames and messages go.
int run_watch(operator_session& session, const invocation& inv, std::FILE* out, std::FILE* err);

} // namespace kwik::ctl
