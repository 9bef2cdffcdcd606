// kwik-cp's OperatorResponse as kwikctl prints it: aligned text tables (numbers right-aligned,
// rates, sizes and times in human units chosen by the column's unit suffix) or JSON (exactly
// the response, each table's rows as objects keyed by column with typed, raw values). Pure;
// any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/kcp.pb.h"

namespace kwik::ctl {

// One cell as text. The column's suffix picks the unit: _bps (bit/s), _mbps (Mbit/s), _bytes,
// _us, _ms (durations), _at_ms (wall-clock time, UTC); other numbers print as they are; flags
// as yes/no; an empty cell as "-".
std::string format_cell(std::string_view column, const kcp::v3::TableValue& value);

// A rate in bit/s: "0 bit/s", "950 bit/s", "1.2 Gbit/s" (SI prefixes, three significant digits).
std::string format_rate_bps(double bps);
// A size in bytes: "512 B", "1.5 KiB", "3.2 GiB" (IEC prefixes).
std::string format_bytes(double bytes);
// A duration in microseconds: "850 us", "1.25 ms", "2.1 s", "12 min", "26 h".
std::string format_duration_us(double us);
// A wall-clock time in ms since the Unix epoch: "2026-11-21 12:00:01" (UTC); 0 as "-".
std::string format_wall_clock_ms(std::uint64_t ms);

// The header of a column: its name upper-cased, without a rate or time suffix that the cells
// now show (_bytes stays, so RX_BYTES and RX_PACKETS read apart).
std::string column_header(std::string_view column);

// The table as aligned text: a header line, one line per row, or "(no <name>)" when empty.
std::string render_table(const kcp::v3::Table& table);

// What kwikctl prints on stdout for a response: its detail line (actions), then its tables,
// each titled by its name when there are several. The error is not included (stderr).
std::string render_text(const kcp::v3::OperatorResponse& response);

// The response as JSON: {"in_reply_to", "ok", "error", "detail", "tables": [{"name", "columns",
// "rows": [{column: value, ...}]}]}; numbers stay numbers (uint64 exact), flags booleans, empty
// cells null.
nlohmann::ordered_json to_json(const kcp::v3::OperatorResponse& response);

} // namespace kwik::ctl

namespace kwik::ctl {

// What kwikctl prints for a response and its exit status: stdout gets the JSON (json) or the
// text; when the response is not ok, stderr gets "kwikctl: <error>" and the status is 1, else 0.
int response_output(const kcp::v3::OperatorResponse& response, bool json, std::string& out, std::string& err);

} // namespace kwik::ctl
