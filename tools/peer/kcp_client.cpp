// kwik-peer's client with a control plane; see kcp_client.hpp.
#include "tools/peer/kcp_client.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/peer/kcp_session.hpp"

namespace kwik::peer {

namespace {

namespace v3 = kcp::v3;

std::string status_name(v3::PathStatusUpdate::Status s) {
    std::string name = v3::PathStatusUpdate::Status_Name(s);
    for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return name;
}

std::string address_of(const std::string& end) { // "ip:port" or "[v6]:port" -> ip
    const std::string host = end.substr(0, end.rfind(':'));
    return host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
}

std::uint64_t wall_ms() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::uint64_t mono_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

} // namespace

int run_kcp_client(const peer_options& options, peer_loop& loop, std::string& failure) {
    const kcp_options& k = options.kcp;
    kcp_settings settings;
    settings.address = k.server;
    settings.pin = k.pin;
    settings.key_id = k.key_id;
    settings.key = k.key;
    settings.client_id = k.client_id;
    settings.discover = k.discover;

    session_events events;
    events.on_path_status = [&loop](const v3::PathStatusUpdate& u) {
        loop_action a;
        a.what = loop_action::kind::event;
        a.path = u.path_id();
        a.event = status_name(u.status());
        a.reason = u.reason();
        loop.post(a);
        if (u.status() == v3::PathStatusUpdate::REMOVED) {
            // kwik-cp removes a path we did not ask to remove when kwikd lost the connection.
            loop_action f;
            f.what = loop_action::kind::fail;
            f.reason = "kwik-cp removed path " + std::to_string(u.path_id()) + ": " +
                       (u.reason().empty() ? std::string("no reason given") : u.reason());
            loop.post(f);
        }
    };
    events.on_load_balancing = [&loop](const v3::LoadBalancingUpdate& u) {
        for (const auto& [path, weight] : u.path_weights()) {
            loop_action a;
            a.what = loop_action::kind::set_weight;
            a.path = path;
            a.weight = weight;
            loop.post(a);
        }
    };
    events.on_plan = [&loop](const v3::TrafficDistributionPlan& plan) {
        for (const auto& [path, bp] : plan.path_share_bp()) {
            loop_action a;
            a.what = loop_action::kind::set_weight;
            a.path = path;
            a.weight = static_cast<float>(bp) / 10000.0f;
            loop.post(a);
        }
        loop_action st;
        st.what = loop_action::kind::set_strategy;
        switch (plan.strategy()) {
        case v3::TrafficDistributionPlan::WEIGHTED:
            st.strategy = transport::schedule_strategy::weighted;
            break;
        case v3::TrafficDistributionPlan::ROUND_ROBIN:
            st.strategy = transport::schedule_strategy::round_robin;
            break;
        case v3::TrafficDistributionPlan::REDUNDANT:
            st.strategy = transport::schedule_strategy::redundant;
            break;
        default:
            st.strategy = transport::schedule_strategy::min_rtt;
            break;
        }
        if (plan.strategy() != v3::TrafficDistributionPlan::STRATEGY_UNSPECIFIED) {
            loop.post(st);
        }
        loop_action e;
        e.what = loop_action::kind::event;
        e.event = "plan";
        e.reason = v3::TrafficDistributionPlan::Strategy_Name(plan.strategy()) + " " + plan.plan_id();
        loop.post(e);
    };
    const auto apply_scaling = [&loop](const v3::BandwidthScalingResponse& r) {
        for (std::uint64_t path : r.paths_added()) {
            loop_action a;
            a.what = loop_action::kind::set_standby;
            a.path = path;
            a.flag = false;
            loop.post(a);
        }
        for (std::uint64_t path : r.paths_removed()) {
            loop_action a;
            a.what = loop_action::kind::set_standby;
            a.path = path;
            a.flag = true;
            loop.post(a);
        }
        loop_action e;
        e.what = loop_action::kind::event;
        e.event = "scaling_" + v3::BandwidthScalingResponse::Decision_Name(r.decision());
        e.reason = r.reason();
        loop.post(e);
    };
    events.on_scaling = apply_scaling;
    events.on_session_lost = [&loop](std::string reason) {
        // The data plane does not need KCP: record it and keep transferring.
        loop_action a;
        a.what = loop_action::kind::event;
        a.event = "session_lost";
        a.reason = std::move(reason);
        loop.post(a);
    };

    auto opened = kcp_session::open(settings, std::move(events));
    if (!opened) {
        failure = opened.message();
        return exit_unreachable;
    }
    kcp_session& session = **opened;
    if (!session.discovery_report().empty()) {
        std::fputs(session.discovery_report().c_str(), stderr);
    }
    const loop_settings& ls = options.loop;
    for (std::size_t i = 0; i < ls.paths.size(); ++i) {
        path_request p;
        p.path_id = i + 1;
        p.local_address = address_of(loop.local_end(i));
        p.local_port = loop.local_port(i);
        p.remote_address = tools::to_string(ls.paths[i].remote);
        p.remote_port = ls.paths[i].remote_port;
        p.standby = ls.paths[i].standby;
        auto added = session.add_path(p);
        if (!added) {
            failure = "path " + std::to_string(i + 1) + ": " + added.message();
            session.close();
            return exit_unreachable;
        }
        loop_action a;
        a.what = loop_action::kind::event;
        a.path = p.path_id;
        a.event = status_name(added->status());
        a.reason = added->reason();
        loop.post(a);
    }
    if (k.encrypt) {
        const session_key& sk = session.data_key();
        loop_action a;
        a.what = loop_action::kind::install_key;
        a.key.phase = sk.phase;
        a.key.key = sk.key;
        a.key.max_frames = sk.max_frames;
        a.key.nonce_base = wall_ms() * 1'000'000; // above any nonce an earlier run sealed
        if (sk.valid_until_ms != 0) {
            const std::uint64_t now_wall = wall_ms();
            a.key.valid_until = mono_ns() + (sk.valid_until_ms > now_wall ? (sk.valid_until_ms - now_wall) * 1'000'000 : 1);
        }
        loop.post(a);
    }
    session.start_events();

    std::atomic<bool> done{false};
    int status = exit_failed;
    std::thread data([&] {
        status = loop.run();
        done.store(true);
    });
    nlohmann::json answers = nlohmann::json::object();
    const auto started = std::chrono::steady_clock::now();
    bool scaled = k.scale_at_s < 0;
    while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (!scaled && std::chrono::steady_clock::now() - started >= std::chrono::duration<double>(k.scale_at_s)) {
            scaled = true;
            auto r = session.request_scaling(k.scale_target_mbps);
            if (r) {
                answers["scaling"] = {{"decision", v3::BandwidthScalingResponse::Decision_Name(r->decision())},
                                      {"reason", r->reason()},
                                      {"paths_added", std::vector<std::uint64_t>(r->paths_added().begin(), r->paths_added().end())},
                                      {"new_path_count", r->new_path_count()}};
                apply_scaling(*r);
            } else {
                answers["scaling"] = {{"error", r.message()}};
            }
        }
    }
    data.join();
    session.close();
    nlohmann::json kcp = nlohmann::json::parse(session.counters_json(), nullptr, false);
    if (kcp.is_discarded() || !kcp.is_object()) {
        kcp = nlohmann::json::object();
    }
    kcp["answers"] = answers;
    kcp["encrypted"] = k.encrypt;
    if (!session.discovery_report().empty()) {
        kcp["discovery_report"] = session.discovery_report();
    }
    loop.set_kcp_json(kcp.dump());
    return status;
}

} // namespace kwik::peer
