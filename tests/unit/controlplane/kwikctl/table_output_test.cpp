// kwikctl's output (controlplane/kwikctl/table_output.*): aligned tables (numbers right, text
// left), human units picked by the column suffix, empty tables, several tables, detail lines,
// JSON with typed raw values, and the exit status for a refused request.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "controlplane/kwikctl/table_output.hpp"

namespace kwik::ctl {
namespace {

namespace v3 = kcp::v3;

v3::TableValue text(const std::string& s) {
    v3::TableValue v;
    v.set_text(s);
    return v;
}
v3::TableValue u(std::uint64_t x) {
    v3::TableValue v;
    v.set_unsigned_value(x);
    return v;
}
v3::TableValue i(std::int64_t x) {
    v3::TableValue v;
    v.set_signed_value(x);
    return v;
}
v3::TableValue real(double x) {
    v3::TableValue v;
    v.set_real(x);
    return v;
}
v3::TableValue flag(bool x) {
    v3::TableValue v;
    v.set_flag(x);
    return v;
}

v3::Table paths_table() {
    v3::Table t;
    t.set_name("paths");
    for (const char* c : {"connection", "path_id", "state", "rx_bps", "smoothed_rtt_us", "loss", "standby"}) {
        t.add_columns(c);
    }
    auto* r1 = t.add_rows();
    for (const auto& v : {text("demo-0"), u(1), text("up"), u(1'234'000'000), u(850), real(0.0125), flag(false)}) {
        *r1->add_values() = v;
    }
    auto* r2 = t.add_rows();
    for (const auto& v : {text("7"), u(12), text("suspect"), u(950), u(12'500), real(0), flag(true)}) {
        *r2->add_values() = v;
    }
    return t;
}

TEST(table_output, units_follow_the_column_suffix) {
    EXPECT_EQ(format_rate_bps(0), "0 bit/s");
    EXPECT_EQ(format_rate_bps(950), "950 bit/s");
    EXPECT_EQ(format_rate_bps(1'200'000'000), "1.2 Gbit/s");
    EXPECT_EQ(format_rate_bps(1'234'000), "1.23 Mbit/s");
    EXPECT_EQ(format_rate_bps(999'700), "1 Mbit/s") << "999.7 kbit/s would print as 1000 kbit/s";
    EXPECT_EQ(format_rate_bps(25e12), "25 Tbit/s");
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(format_bytes(3.2 * 1024 * 1024 * 1024), "3.2 GiB");
    EXPECT_EQ(format_duration_us(850), "850 us");
    EXPECT_EQ(format_duration_us(1250), "1.25 ms");
    EXPECT_EQ(format_duration_us(2'100'000), "2.1 s");
    EXPECT_EQ(format_cell("rx_bps", u(1'200'000'000)), "1.2 Gbit/s");
    EXPECT_EQ(format_cell("max_bandwidth_mbps", u(800)), "800 Mbit/s");
    EXPECT_EQ(format_cell("max_bandwidth_mbps", u(2500)), "2.5 Gbit/s");
    EXPECT_EQ(format_cell("delivered_bytes", u(10 * 1024 * 1024)), "10 MiB");
    EXPECT_EQ(format_cell("smoothed_rtt_us", u(12'500)), "12.5 ms");
    EXPECT_EQ(format_cell("uptime_ms", u(90'000)), "90 s");
    EXPECT_EQ(format_cell("uptime_ms", u(720'000)), "12 min");
    EXPECT_EQ(format_cell("uptime_ms", u(93'600'000)), "26 h");
    EXPECT_EQ(format_cell("expires_at_ms", u(1'763'726'401'500)), "2025-11-21 12:00:01");
    EXPECT_EQ(format_cell("expires_at_ms", u(0)), "-");
    EXPECT_EQ(column_header("expires_at_ms"), "EXPIRES");
    EXPECT_EQ(format_cell("rx_packets", u(18446744073709551615ull)), "18446744073709551615");
    EXPECT_EQ(format_cell("offset", i(-42)), "-42");
    EXPECT_EQ(format_cell("loss", real(0.0125)), "0.0125");
    EXPECT_EQ(format_cell("loss", real(std::numeric_limits<double>::quiet_NaN())), "nan");
    EXPECT_EQ(format_cell("standby", flag(true)), "yes");
    EXPECT_EQ(format_cell("standby", flag(false)), "no");
    EXPECT_EQ(format_cell("name", v3::TableValue()), "-");
    EXPECT_EQ(format_cell("name", text("")), "-");
    EXPECT_EQ(format_cell("bps", u(5)), "5") << "a bare unit name is not a suffix";
}

TEST(table_output, headers_drop_the_unit_the_cells_show) {
    EXPECT_EQ(column_header("rx_bps"), "RX");
    EXPECT_EQ(column_header("smoothed_rtt_us"), "SMOOTHED_RTT");
    EXPECT_EQ(column_header("max_bandwidth_mbps"), "MAX_BANDWIDTH");
    EXPECT_EQ(column_header("path_id"), "PATH_ID");
    EXPECT_EQ(column_header("rx_bytes"), "RX_BYTES");
    EXPECT_EQ(format_cell("latency_ms", u(0)), "0 ms");
}

TEST(table_output, numbers_right_text_left_two_spaces_apart) {
    const std::string expected =
        "CONNECTION  PATH_ID  STATE             RX  SMOOTHED_RTT    LOSS  STANDBY\n"
        "demo-0            1  up       1.23 Gbit/s        850 us  0.0125  no\n"
        "7                12  suspect    950 bit/s       12.5 ms       0  yes\n";
    EXPECT_EQ(render_table(paths_table()), expected);
}

TEST(table_output, empty_tables) {
    v3::Table t;
    t.set_name("paths");
    t.add_columns("connection");
    t.add_columns("path_id");
    EXPECT_EQ(render_table(t), "CONNECTION  PATH_ID\n(no paths)\n");
    v3::Table bare;
    EXPECT_EQ(render_table(bare), "(no rows)\n");
    v3::OperatorResponse r;
    r.set_ok(true);
    EXPECT_EQ(render_text(r), "");
}

TEST(table_output, a_short_row_shows_dashes_and_an_unset_column_stays_left) {
    v3::Table t;
    t.set_name("x");
    t.add_columns("name");
    t.add_columns("count");
    *t.add_rows()->add_values() = text("a");
    auto* r = t.add_rows();
    *r->add_values() = text("bb");
    *r->add_values() = u(10);
    EXPECT_EQ(render_table(t), "NAME  COUNT\na         -\nbb       10\n");
}

TEST(table_output, detail_then_titled_tables) {
    v3::OperatorResponse r;
    r.set_ok(true);
    r.set_detail("path 3 added to connection 7");
    *r.add_tables() = paths_table();
    v3::Table drops;
    drops.set_name("drops");
    drops.add_columns("reason");
    drops.add_columns("packets");
    auto* row = drops.add_rows();
    *row->add_values() = text("unknown_path");
    *row->add_values() = u(10);
    *r.add_tables() = drops;
    const std::string s = render_text(r);
    EXPECT_EQ(s.rfind("path 3 added to connection 7\n\npaths:\nCONNECTION", 0), 0u) << s;
    EXPECT_NE(s.find("\n\ndrops:\nREASON        PACKETS\nunknown_path       10\n"), std::string::npos) << s;
    v3::OperatorResponse one;
    one.set_ok(true);
    *one.add_tables() = drops;
    EXPECT_EQ(render_text(one), "REASON        PACKETS\nunknown_path       10\n") << "one table needs no title";
}

TEST(table_output, json_is_the_response_with_typed_raw_values) {
    v3::OperatorResponse r;
    r.set_in_reply_to(42);
    r.set_ok(true);
    r.set_detail("done");
    *r.add_tables() = paths_table();
    auto* big = r.add_tables();
    big->set_name("totals");
    big->add_columns("rx_packets");
    big->add_columns("empty");
    auto* row = big->add_rows();
    *row->add_values() = u(18446744073709551615ull);
    *row->add_values() = v3::TableValue();
    const auto j = to_json(r);
    EXPECT_EQ(j.dump(),
              R"({"in_reply_to":42,"ok":true,"error":"","detail":"done","tables":[{"name":"paths","columns":["connection","path_id","state","rx_bps","smoothed_rtt_us","loss","standby"],"rows":[{"connection":"demo-0","path_id":1,"state":"up","rx_bps":1234000000,"smoothed_rtt_us":850,"loss":0.0125,"standby":false},{"connection":"7","path_id":12,"state":"suspect","rx_bps":950,"smoothed_rtt_us":12500,"loss":0.0,"standby":true}]},{"name":"totals","columns":["rx_packets","empty"],"rows":[{"rx_packets":18446744073709551615,"empty":null}]}]})");
    v3::OperatorResponse signed_r;
    auto* t = signed_r.add_tables();
    t->add_columns("delta");
    *t->add_rows()->add_values() = i(-5);
    EXPECT_EQ(to_json(signed_r)["tables"][0]["rows"][0]["delta"], -5);
    EXPECT_EQ(to_json(v3::OperatorResponse())["tables"].dump(), "[]");
}

TEST(table_output, a_refusal_goes_to_stderr_with_status_1) {
    v3::OperatorResponse r;
    r.set_ok(false);
    r.set_error("remove_path.path_id: connection 7 has no path 9");
    std::string out, err;
    EXPECT_EQ(response_output(r, false, out, err), 1);
    EXPECT_EQ(err, "kwikctl: remove_path.path_id: connection 7 has no path 9\n");
    EXPECT_EQ(out, "");
    EXPECT_EQ(response_output(r, true, out, err), 1);
    EXPECT_NE(out.find("\"ok\": false"), std::string::npos) << out;
    EXPECT_NE(out.find("connection 7 has no path 9"), std::string::npos) << out;
    r.set_ok(true);
    r.clear_error();
    r.set_detail("ok then");
    EXPECT_EQ(response_output(r, false, out, err), 0);
    EXPECT_EQ(out, "ok then\n");
    EXPECT_EQ(err, "");
}

} // namespace
} // namespace kwik::ctl
