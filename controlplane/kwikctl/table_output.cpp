// kwikctl's output; see table_output.hpp.
#include "controlplane/kwikctl/table_output.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

namespace kwik::ctl {

namespace {

using kcp::v3::TableValue;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Three significant digits, trailing zeros dropped: 1.20 -> "1.2", 950 -> "950".
std::string significant(double v) {
    char buf[64];
    const double a = std::fabs(v);
    std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : "%.2f", v);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') {
            s.pop_back();
        }
        if (s.back() == '.') {
            s.pop_back();
        }
    }
    return s;
}

std::string scaled(double v, double step, const char* const* units, std::size_t count) {
    const bool negative = v < 0;
    double a = std::fabs(v);
    std::size_t i = 0;
    // Step up while the value would print as 1000 or more (999.6 rounds to "1000").
    while (i + 1 < count && a >= step - 0.5) {
        a /= step;
        ++i;
    }
    return (negative ? "-" : "") + significant(a) + " " + units[i];
}

bool numeric(const TableValue& v) {
    return v.value_case() == TableValue::kUnsignedValue || v.value_case() == TableValue::kSignedValue ||
           v.value_case() == TableValue::kReal;
}

double as_double(const TableValue& v) {
    switch (v.value_case()) {
    case TableValue::kUnsignedValue:
        return static_cast<double>(v.unsigned_value());
    case TableValue::kSignedValue:
        return static_cast<double>(v.signed_value());
    case TableValue::kReal:
        return v.real();
    default:
        return 0;
    }
}

enum class unit : std::uint8_t { none, bps, mbps, bytes, us, ms, wall_ms };

unit unit_of(std::string_view column) {
    if (ends_with(column, "_at_ms")) {
        return unit::wall_ms;
    }
    if (ends_with(column, "_mbps")) {
        return unit::mbps;
    }
    if (ends_with(column, "_bps")) {
        return unit::bps;
    }
    if (ends_with(column, "_bytes")) {
        return unit::bytes;
    }
    if (ends_with(column, "_us")) {
        return unit::us;
    }
    if (ends_with(column, "_ms")) {
        return unit::ms;
    }
    return unit::none;
}

std::string plain_number(const TableValue& v) {
    switch (v.value_case()) {
    case TableValue::kUnsignedValue:
        return std::to_string(v.unsigned_value());
    case TableValue::kSignedValue:
        return std::to_string(v.signed_value());
    case TableValue::kReal: {
        if (!std::isfinite(v.real())) {
            return std::isnan(v.real()) ? "nan" : v.real() > 0 ? "inf" : "-inf";
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.4g", v.real());
        return buf;
    }
    default:
        return {};
    }
}

std::string column_name(const kcp::v3::Table& t, std::size_t i) {
    return i < static_cast<std::size_t>(t.columns_size()) ? t.columns(static_cast<int>(i))
                                                          : "column_" + std::to_string(i + 1);
}

// Columns the rows reach: the declared ones, more when a row carries extra values.
std::size_t width_of(const kcp::v3::Table& t) {
    std::size_t n = static_cast<std::size_t>(t.columns_size());
    for (const auto& row : t.rows()) {
        n = std::max(n, static_cast<std::size_t>(row.values_size()));
    }
    return n;
}

} // namespace

std::string format_rate_bps(double bps) {
    static const char* const units[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
    return scaled(bps, 1000, units, 5);
}

std::string format_bytes(double bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    return scaled(bytes, 1024, units, 6);
}

std::string format_duration_us(double us) {
    const double a = std::fabs(us);
    if (a < 1000) {
        return significant(us) + " us";
    }
    if (a < 1'000'000 - 500) {
        return significant(us / 1000) + " ms";
    }
    if (a < 60e6 * 10) {
        return significant(us / 1e6) + " s";
    }
    if (a < 3600e6 * 10) {
        return significant(us / 60e6) + " min";
    }
    return significant(us / 3600e6) + " h";
}

std::string format_wall_clock_ms(std::uint64_t ms) {
    if (ms == 0) {
        return "-";
    }
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string format_cell(std::string_view column, const TableValue& v) {
    switch (v.value_case()) {
    case TableValue::VALUE_NOT_SET:
        return "-";
    case TableValue::kText:
        return v.text().empty() ? "-" : v.text();
    case TableValue::kFlag:
        return v.flag() ? "yes" : "no";
    default:
        break;
    }
    if (v.value_case() == TableValue::kReal && !std::isfinite(v.real())) {
        return plain_number(v);
    }
    const double d = as_double(v);
    switch (unit_of(column)) {
    case unit::bps:
        return format_rate_bps(d);
    case unit::mbps:
        return format_rate_bps(d * 1e6);
    case unit::bytes:
        return format_bytes(d);
    case unit::us:
        return format_duration_us(d);
    case unit::ms:
        return d == 0 ? std::string("0 ms") : format_duration_us(d * 1000);
    case unit::wall_ms:
        return format_wall_clock_ms(v.value_case() == TableValue::kUnsignedValue ? v.unsigned_value() : 0);
    case unit::none:
        break;
    }
    return plain_number(v);
}

std::string column_header(std::string_view column) {
    std::string_view base = column;
    // _bytes stays: RX_BYTES beside RX_PACKETS says more than RX.
    for (const std::string_view suffix : {"_at_ms", "_mbps", "_bps", "_us", "_ms"}) {
        if (ends_with(column, suffix)) {
            base = column.substr(0, column.size() - suffix.size());
            break;
        }
    }
    std::string h;
    for (const char c : base) {
        h += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    return h;
}

std::string render_table(const kcp::v3::Table& t) {
    const std::size_t n = width_of(t);
    if (n == 0) {
        return "(no " + (t.name().empty() ? std::string("rows") : t.name()) + ")\n";
    }
    std::vector<std::vector<std::string>> cells;
    std::vector<std::size_t> width(n, 0);
    std::vector<bool> right(n, true);
    std::vector<bool> any(n, false);
    std::vector<std::string> header;
    for (std::size_t i = 0; i < n; ++i) {
        header.push_back(column_header(column_name(t, i)));
        width[i] = header[i].size();
    }
    for (const auto& row : t.rows()) {
        std::vector<std::string> line;
        for (std::size_t i = 0; i < n; ++i) {
            const bool has = i < static_cast<std::size_t>(row.values_size());
            const TableValue empty;
            const TableValue& v = has ? row.values(static_cast<int>(i)) : empty;
            line.push_back(format_cell(column_name(t, i), v));
            if (v.value_case() != TableValue::VALUE_NOT_SET) {
                any[i] = true;
                right[i] = right[i] && numeric(v);
            }
            width[i] = std::max(width[i], line.back().size());
        }
        cells.push_back(std::move(line));
    }
    const auto emit = [&](const std::vector<std::string>& line, std::string& out) {
        std::string s;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t pad = width[i] - line[i].size();
            const bool r = right[i] && any[i];
            if (i != 0) {
                s += "  ";
            }
            if (r) {
                s.append(pad, ' ');
            }
            s += line[i];
            if (!r) {
                s.append(pad, ' ');
            }
        }
        while (!s.empty() && s.back() == ' ') {
            s.pop_back();
        }
        out += s + "\n";
    };
    std::string out;
    emit(header, out);
    for (const auto& line : cells) {
        emit(line, out);
    }
    if (cells.empty()) {
        out += "(no " + (t.name().empty() ? std::string("rows") : t.name()) + ")\n";
    }
    return out;
}

std::string render_text(const kcp::v3::OperatorResponse& r) {
    std::string out;
    if (!r.detail().empty()) {
        out += r.detail() + "\n";
    }
    const bool titled = r.tables_size() > 1;
    for (int i = 0; i < r.tables_size(); ++i) {
        if (!out.empty()) {
            out += "\n";
        }
        if (titled) {
            out += r.tables(i).name() + ":\n";
        }
        out += render_table(r.tables(i));
    }
    return out;
}

nlohmann::ordered_json to_json(const kcp::v3::OperatorResponse& r) {
    using json = nlohmann::ordered_json;
    json j;
    j["in_reply_to"] = r.in_reply_to();
    j["ok"] = r.ok();
    j["error"] = r.error();
    j["detail"] = r.detail();
    json tables = json::array();
    for (const auto& t : r.tables()) {
        json jt;
        jt["name"] = t.name();
        jt["columns"] = json::array();
        for (const auto& c : t.columns()) {
            jt["columns"].push_back(c);
        }
        json rows = json::array();
        const std::size_t n = width_of(t);
        for (const auto& row : t.rows()) {
            json jr = json::object();
            for (std::size_t i = 0; i < n; ++i) {
                json& cell = jr[column_name(t, i)];
                if (i >= static_cast<std::size_t>(row.values_size())) {
                    cell = nullptr;
                    continue;
                }
                const TableValue& v = row.values(static_cast<int>(i));
                switch (v.value_case()) {
                case TableValue::kText:
                    cell = v.text();
                    break;
                case TableValue::kUnsignedValue:
                    cell = v.unsigned_value();
                    break;
                case TableValue::kSignedValue:
                    cell = v.signed_value();
                    break;
                case TableValue::kReal:
                    cell = std::isfinite(v.real()) ? json(v.real()) : json(nullptr);
                    break;
                case TableValue::kFlag:
                    cell = v.flag();
                    break;
                case TableValue::VALUE_NOT_SET:
                    cell = nullptr;
                    break;
                }
            }
            rows.push_back(std::move(jr));
        }
        jt["rows"] = std::move(rows);
        tables.push_back(std::move(jt));
    }
    j["tables"] = std::move(tables);
    return j;
}

} // namespace kwik::ctl

namespace kwik::ctl {

int response_output(const kcp::v3::OperatorResponse& response, bool json, std::string& out, std::string& err) {
    out = json ? to_json(response).dump(2) + "\n" : render_text(response);
    if (!response.ok()) {
        err = "kwikctl: " + (response.error().empty() ? std::string("kwik-cp refused the request without a reason")
                                                      : response.error()) +
              "\n";
        return 1;
    }
    err.clear();
    return 0;
}

} // namespace kwik::ctl
