// OperatorRequest.scale in a build without bandwidth scaling: answered ok = false. The build
// that has scaling defines control_server::on_operator_scale where its scaling actions are and
// drops this file (docs/KCP_SERVER.md section 3.3). The control_server loop's thread only.
#include "controlplane/server/kwik_cp/control_server.hpp"
#include "controlplane/server/kwik_cp/session.hpp"

namespace kwik::cp {

void control_server::on_operator_scale(session& s, const kcp::KCPMessage& m, kcp::clock_sample now) {
    kcp::v3::OperatorResponse r;
    r.set_ok(false);
    r.set_error("scale: not available in this build");
    answer_operator(s, m.header().message_id(), std::move(r), now);
}

} // namespace kwik::cp
