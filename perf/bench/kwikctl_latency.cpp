// Command latency from kwikctl to the worker applying it: one operator session (kwikctl's own
// operator_session, so the same TLS, hello and framing) sends `path add` then `path remove` of
// one path, --count times with path ids --path-id, --path-id + 1, ... (kwikd never reuses a
// removed path id), timing each request until kwik-cp's OperatorResponse, which
// kwik-cp sends when kwikd's worker has answered the command (docs/KCP_SERVER.md 3.2). Prints
// one JSON object: p50/p99/mean/max in microseconds for add and for remove.
// perf/kwikctl_latency.py starts kwikd and kwik-cp and runs this; see perf/RESULTS.md.
//
//   kwikctl_latency --server 127.0.0.1:7708 --pin HEX --key-id ops --secret-file ops.secret
//       --connection bench --path-id 2 --local 10.9.0.1:7707 --remote 10.9.0.2:40002 --count 1000
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "controlplane/kwikctl/command_line.hpp"
#include "controlplane/kwikctl/operator_session.hpp"
#include "controlplane/kwikctl/settings.hpp"

namespace {

using namespace kwik::ctl;

nlohmann::ordered_json summary(std::vector<double> us) {
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
    double sum = 0;
    for (const double v : us) {
        sum += v;
    }
    return {{"n", us.size()}, {"p50_us", at(0.50)}, {"p99_us", at(0.99)}, {"mean_us", sum / us.size()},
            {"max_us", us.back()}};
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kwikctl_latency: path add / path remove round trips through kwik-cp to kwikd's worker"};
    settings_flags flags;
    std::string server, pin, key_id, secret_file, connection, local, remote;
    unsigned long long first_path_id = 2;
    unsigned count = 1000;
    app.add_option("--server", server)->required();
    app.add_option("--pin", pin);
    app.add_flag("--insecure-plain", flags.insecure_plain);
    app.add_option("--key-id", key_id)->required();
    app.add_option("--secret-file", secret_file)->required();
    app.add_option("--connection", connection)->required();
    app.add_option("--path-id", first_path_id, "the first round's path id");
    app.add_option("--local", local)->required();
    app.add_option("--remote", remote)->required();
    app.add_option("--count", count)->check(CLI::Range(1u, 1'000'000u));
    CLI11_PARSE(app, argc, argv);
    flags.server = server;
    if (!pin.empty()) {
        flags.pin = pin;
    }
    flags.key_id = key_id;
    flags.secret_file = secret_file;
    flags.timeout_ms = "10000";
    auto settings = resolve_settings(flags, process_environment(), "");
    if (!settings) {
        std::fprintf(stderr, "kwikctl_latency: %s\n", settings.message().c_str());
        return 2;
    }
    // The requests come from kwikctl's own command line, so they are exactly what kwikctl sends.
    const auto request_of = [&](std::vector<std::string> args) {
        command_line cl;
        parse_outcome o = cl.parse(args);
        if (!o.parsed) {
            std::fprintf(stderr, "kwikctl_latency: %s", o.err.c_str());
            std::exit(2);
        }
        return o.parsed->request;
    };
    const auto add_of = [&](unsigned i) {
        return request_of({"path", "add", "--connection", connection, "--path-id", std::to_string(first_path_id + i),
                           "--local", local, "--remote", remote});
    };
    const auto remove_of = [&](unsigned i) {
        return request_of({"path", "remove", "--connection", connection, "--path-id", std::to_string(first_path_id + i)});
    };
    auto session = operator_session::open(*settings);
    if (!session) {
        std::fprintf(stderr, "kwikctl_latency: %s\n", session.message().c_str());
        return 3;
    }
    std::vector<double> add_us, remove_us;
    add_us.reserve(count);
    remove_us.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
        const auto add = add_of(i);
        const auto remove = remove_of(i);
        for (const auto* q : {&add, &remove}) {
            const auto t0 = std::chrono::steady_clock::now();
            auto r = (*session)->request(*q);
            const auto t1 = std::chrono::steady_clock::now();
            if (!r || !r->ok()) {
                std::fprintf(stderr, "kwikctl_latency: round %u: %s\n", i,
                             r ? r->error().c_str() : r.message().c_str());
                return 1;
            }
            (q == &add ? add_us : remove_us).push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
    }
    (*session)->close();
    nlohmann::ordered_json out{{"add", summary(add_us)}, {"remove", summary(remove_us)}};
    // The add p50 of each block of 100 rounds: does a request cost more as path ids accumulate?
    nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
    for (std::size_t from = 0; from + 100 <= add_us.size(); from += 100) {
        blocks.push_back(summary(std::vector<double>(add_us.begin() + from, add_us.begin() + from + 100))["p50_us"]);
    }
    out["add_p50_us_by_100_rounds"] = blocks;
    std::printf("%s\n", out.dump().c_str());
    return 0;
}
