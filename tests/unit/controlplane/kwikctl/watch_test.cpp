// kwikctl watch's frames (controlplane/kwikctl/watch.*): on a terminal the screen is cleared
// and redrawn under a header that says how to quit; into a pipe each refresh is a plain block
// under its header line, with no control codes.
#include <gtest/gtest.h>

#include <string>

#include "controlplane/kwikctl/watch.hpp"

namespace kwik::ctl {
namespace {

kcp::v3::OperatorResponse one_row() {
    kcp::v3::OperatorResponse r;
    r.set_ok(true);
    auto* t = r.add_tables();
    t->set_name("drops");
    t->add_columns("reason");
    t->add_columns("packets");
    auto* row = t->add_rows();
    row->add_values()->set_text("unknown_path");
    row->add_values()->set_unsigned_value(20);
    return r;
}

TEST(watch, a_terminal_frame_clears_and_redraws) {
    const std::string f = watch_frame("counters", 1000, 1'763'726'401, one_row(), true);
    EXPECT_EQ(f, "\x1b[H\x1b[2Jkwikctl watch counters  every 1000 ms  12:00:01 UTC  (q quits)\n\n"
                 "REASON        PACKETS\nunknown_path       20\n");
}

TEST(watch, a_pipe_frame_is_a_plain_block) {
    const std::string f = watch_frame("paths --connection 7", 250, 1'763'726'401, one_row(), false);
    EXPECT_EQ(f, "kwikctl watch paths --connection 7  every 250 ms  12:00:01 UTC\n\n"
                 "REASON        PACKETS\nunknown_path       20\n\n");
    EXPECT_EQ(f.find('\x1b'), std::string::npos);
}

} // namespace
} // namespace kwik::ctl
