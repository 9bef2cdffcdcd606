// The client's two-round hello (cp::client_hello_round1/2) over a kcp::blocking_client, for the
// control-plane integration tests. Test thread only.
#pragma once

#include <gtest/gtest.h>

#include <chrono>

#include "controlplane/kcp/client.hpp"
#include "controlplane/server/auth.hpp"

namespace kwik::test {

// Round 1 and, when it is answered CHALLENGE, round 2; returns the last ServerHello (empty when
// a request failed, which is also a test failure).
inline kcp::v3::ServerHello two_round_hello(kcp::blocking_client& c, const cp::client_credentials& cr) {
    using namespace std::chrono_literals;
    auto r1 = cp::client_hello_round1(cr);
    EXPECT_TRUE(r1.ok());
    kcp::KCPMessage m;
    *m.mutable_client_hello() = r1.value();
    auto a1 = c.request(m, 5s);
    EXPECT_TRUE(a1.ok()) << a1.message();
    if (!a1.ok() || a1->server_hello().auth_result() != kcp::v3::ServerHello::CHALLENGE) {
        return a1.ok() ? a1->server_hello() : kcp::v3::ServerHello{};
    }
    auto r2 = cp::client_hello_round2(r1.value(), a1->server_hello(), cr.key);
    EXPECT_TRUE(r2.ok()) << r2.message();
    kcp::KCPMessage m2;
    *m2.mutable_client_hello() = r2.value();
    auto a2 = c.request(m2, 5s);
    EXPECT_TRUE(a2.ok()) << a2.message();
    return a2.ok() ? a2->server_hello() : kcp::v3::ServerHello{};
}

} // namespace kwik::test
