// kwikctl's command tree; see command_line.hpp.
#include "controlplane/kwikctl/command_line.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "controlplane/kcp/tls.hpp"
#include "controlplane/kwikctl/completion.hpp"
#include "controlplane/kwikctl/values.hpp"

namespace kwik::ctl {

namespace {

namespace v3 = kcp::v3;
using request_t = v3::OperatorRequest;
using check_fn = std::function<std::string(const std::string&)>;

constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();

struct view_entry {
    std::string_view name;
    request_t::View view;
    std::string_view help;
};

constexpr view_entry views[] = {
    {"status", request_t::STATUS, "kwik-cp, kwikd, sessions and registry: one row each"},
    {"ports", request_t::PORTS, "kwikd's ports: link, rates, rx/tx and drops"},
    {"workers", request_t::WORKERS, "kwikd's worker lcores: connections, packets, busy share"},
    {"connections", request_t::CONNECTIONS, "connections: paths, streams, bytes delivered"},
    {"paths", request_t::PATHS, "paths: 5-tuple, state, RTT, loss, rates, weight"},
    {"streams", request_t::STREAMS, "streams: priority, bytes, windows"},
    {"servers", request_t::SERVERS, "the server registry"},
    {"counters", request_t::COUNTERS, "kwikd's totals and drop reasons, kwik-cp's counters"},
    {"sessions", request_t::SESSIONS, "kwik-cp's KCP sessions"},
};

std::string check_with(const auto& parse, const std::string& s) {
    auto r = parse(s);
    return r ? std::string() : r.message();
}

check_fn unsigned_in(std::uint64_t min, std::uint64_t max) {
    return [min, max](const std::string& s) { return check_with([&](const std::string& t) { return parse_unsigned(t, min, max); }, s); };
}

check_fn one_of(std::vector<std::string> names) {
    return [names](const std::string& s) {
        std::string list;
        for (const auto& n : names) {
            if (n == s) {
                return std::string();
            }
            list += (list.empty() ? "" : ", ") + n;
        }
        return "\"" + s + "\" is not one of " + list;
    };
}

std::uint64_t to_u64(const std::string& s) {
    return parse_unsigned(s, 0, std::numeric_limits<std::uint64_t>::max()).value();
}

} // namespace

struct command_line::state {
    CLI::App app{"kwikctl: Kwik's operator CLI. It speaks KCP to kwik-cp (TLS with a pinned key, "
                 "authenticated with an operator key) and prints kwik-cp's answer as aligned tables or JSON.",
                 "kwikctl"};
    settings_flags flags;
    std::string server, pin, key_id, secret_file, client_id, timeout_ms, config;
    bool json = false;
    // Each command's option values as text, checked by their validators while parsing.
    std::map<std::pair<const CLI::App*, std::string>, std::string> values;
    std::map<std::pair<const CLI::App*, std::string>, std::vector<std::string>> lists;
    std::map<std::pair<const CLI::App*, std::string>, bool> switches;
    completion_tree_hints hints;

    // An option bound to its text (a std::string) or texts (a std::vector<std::string>).
    template <class Target>
    CLI::Option* bind(CLI::App* sub, const std::string& name, Target& target, const std::string& help,
                      const std::string& type, check_fn check, bool required) {
        CLI::Option* o = sub->add_option(name, target, help);
        o->type_name(type);
        if (check) {
            o->check(CLI::Validator([check](std::string& s) { return check(s); }, "", ""));
        }
        if (required) {
            o->required();
        }
        return o;
    }
    CLI::Option* add(CLI::App* sub, const std::string& name, const std::string& help, const std::string& type,
                     check_fn check, bool required = false) {
        return bind(sub, name, values[{sub, key_of(name)}], help, type, std::move(check), required);
    }
    CLI::Option* add_list(CLI::App* sub, const std::string& name, const std::string& help, const std::string& type,
                          check_fn check, bool required = false) {
        return bind(sub, name, lists[{sub, key_of(name)}], help, type, std::move(check), required);
    }

    CLI::Option* add_choice(CLI::App* sub, const std::string& name, const std::string& help,
                            std::vector<std::string> names, bool required) {
        CLI::Option* o = add(sub, name, help, "", one_of(names), required);
        std::string type;
        for (const auto& n : names) {
            type += (type.empty() ? "" : "|") + n;
        }
        o->type_name(type);
        hints.choices[o] = std::move(names);
        return o;
    }

    CLI::Option* add_flag(CLI::App* sub, const std::string& name, const std::string& help) {
        return sub->add_flag(name, switches[{sub, key_of(name)}], help);
    }

    CLI::Option* add_connection(CLI::App* sub, bool required, const std::string& help =
                                                                   "the connection: KCP connection id, kwikd number or name") {
        return add(sub, "--connection", help, "C", [](const std::string& s) { return check_with(parse_connection, s); },
                   required);
    }

    static std::string key_of(const std::string& name) {
        const auto comma = name.find(',');
        return comma == std::string::npos ? name : name.substr(comma + 1);
    }
    bool given(const CLI::App* sub, const std::string& name) const {
        const CLI::Option* o = sub->get_option_no_throw(name);
        return o != nullptr && o->count() > 0;
    }
    const std::string& text(const CLI::App* sub, const std::string& name) const { return values.at({sub, name}); }
    const std::vector<std::string>& list(const CLI::App* sub, const std::string& name) const {
        return lists.at({sub, name});
    }
    bool on(const CLI::App* sub, const std::string& name) const { return switches.at({sub, name}); }

    void build();
};

void command_line::state::build() {
    app.require_subcommand(1);
    app.fallthrough();
    const std::string g = "Connection (flag > KWIKCTL_* environment > config file)";
    app.add_option("--server", server, "kwik-cp's KCP address (default 127.0.0.1:7708)")
        ->type_name("HOST:PORT")
        ->group(g)
        ->check(CLI::Validator([](std::string& s) { return check_with(parse_host_port, s); }, "", ""));
    app.add_option("--pin", pin, "SHA-256 of kwik-cp's public key: TLS accepts only that server")
        ->type_name("HEX64")
        ->group(g)
        ->check(CLI::Validator(
            [](std::string& s) {
                return kcp::parse_pin(s) ? std::string()
                                         : "\"" + s + "\" is not a key pin: expected 64 hex digits";
            },
            "", ""));
    app.add_flag("--insecure-plain", flags.insecure_plain, "plain TCP instead of TLS (kwik-cp on loopback only)")
        ->group(g);
    app.add_option("--key-id", key_id, "the operator key's id in kwik-cp's key store")->type_name("ID")->group(g);
    app.add_option("--secret-file", secret_file, "file with the key's 64 hex digits (mode 0600)")
        ->type_name("FILE")
        ->group(g);
    app.add_option("--client-id", client_id, "client id sent in the hello (default kwikctl)")->type_name("ID")->group(g);
    app.add_option("--timeout-ms", timeout_ms, "connect, hello and each request (default 5000)")
        ->type_name("MS")
        ->group(g)
        ->check(CLI::Validator([](std::string& s) { return check_with([](const std::string& t) { return parse_unsigned(t, 1, 3'600'000); }, s); }, "", ""));
    app.add_option("--config", config, "config file (default /etc/kwik/kwikctl.toml if present)")
        ->type_name("FILE")
        ->group(g);
    app.add_flag("--json", json, "print kwik-cp's answer as JSON, raw values")->group("Output");

    app.add_subcommand("status", "one row each for kwik-cp, kwikd, sessions and the registry");

    CLI::App* show = app.add_subcommand("show", "print one view as a table");
    show->require_subcommand(1);
    for (const view_entry& v : views) {
        if (v.view == request_t::STATUS) {
            continue;
        }
        CLI::App* sub = show->add_subcommand(std::string(v.name), std::string(v.help));
        if (v.view == request_t::CONNECTIONS || v.view == request_t::PATHS || v.view == request_t::STREAMS) {
            add_connection(sub, false, "only this connection (default: all)");
        }
    }

    CLI::App* path = app.add_subcommand("path", "add or remove a path of a connection");
    path->require_subcommand(1);
    CLI::App* add_path = path->add_subcommand("add", "open a path (a UDP 5-tuple) on a connection");
    add_connection(add_path, true);
    add(add_path, "--path-id", "the new path's id, unused in the connection", "N", unsigned_in(1, max_path_id), true);
    add(add_path, "--local", "this appliance's end: one of kwikd's addresses and Kwik ports", "ADDR:PORT",
        [](const std::string& s) { return check_with(parse_path_end, s); }, true);
    add(add_path, "--remote", "the peer's end", "ADDR:PORT", [](const std::string& s) { return check_with(parse_path_end, s); },
        true);
    add(add_path, "--weight", "load-balancing weight (default 1)", "W",
        [](const std::string& s) {
            auto w = parse_real(s, 0, 1e6);
            return !w    ? w.message()
                   : *w <= 0 ? "\"" + s + "\" is not above 0 (--standby keeps a path that carries no data)"
                             : std::string();
        });
    add_flag(add_path, "--standby", "kept alive but carries no data until a failover");
    add(add_path, "--max-mbps", "rate cap in Mbit/s (default: none)", "M", unsigned_in(0, u32_max));
    CLI::App* remove_path = path->add_subcommand("remove", "close a path of a connection");
    add_connection(remove_path, true);
    add(remove_path, "--path-id", "the path's id", "N", unsigned_in(1, max_path_id), true);
    add(remove_path, "--drain-ms", "time to finish in-flight data (default 0: at once)", "D", unsigned_in(0, u32_max));

    CLI::App* scale = app.add_subcommand("scale", "ask the bandwidth manager to scale a connection");
    add_connection(scale, true);
    add(scale, "--target-mbps", "the bandwidth wanted, Mbit/s", "M", unsigned_in(1, u32_max), true);
    add(scale, "--min-paths", "policy: fewest paths", "N", unsigned_in(1, 64));
    add(scale, "--max-paths", "policy: most paths", "N", unsigned_in(1, 64));
    add(scale, "--cooldown-s", "policy: seconds between scaling actions", "S", unsigned_in(0, 86'400));
    add(scale, "--up-threshold", "policy: scale up above this utilisation, %", "P", unsigned_in(1, 100));
    add(scale, "--down-threshold", "policy: scale down below this utilisation, %", "P", unsigned_in(0, 99));
    add_flag(scale, "--aggressive", "policy: add or remove several paths per step");

    CLI::App* set = app.add_subcommand("set", "change a connection's QoS, scheduler or path weights");
    set->require_subcommand(1);
    CLI::App* qos = set->add_subcommand("qos", "a stream's priority and rate limits");
    add_connection(qos, true);
    add(qos, "--stream", "the stream id", "S", unsigned_in(1, max_path_id), true);
    add(qos, "--priority", "0 (highest) .. 7", "P", unsigned_in(0, 7), true);
    add(qos, "--min-mbps", "guaranteed rate, Mbit/s", "M", unsigned_in(0, u32_max));
    add(qos, "--max-mbps", "rate cap, Mbit/s (0: none)", "M", unsigned_in(0, u32_max));
    CLI::App* scheduler = set->add_subcommand("scheduler", "how the connection spreads data over its paths");
    add_connection(scheduler, true);
    add_choice(scheduler, "strategy", "the path scheduler", {"min-rtt", "weighted", "round-robin", "redundant"}, true);
    CLI::App* weights = set->add_subcommand("weights", "paths' load-balancing weights (weighted scheduler)");
    add_connection(weights, true);
    add_list(weights, "weights", "PATH=WEIGHT for each path to change, e.g. 1=3 2=1", "PATH=WEIGHT",
             [](const std::string& s) { return check_with(parse_path_weight, s); }, true);

    CLI::App* health = app.add_subcommand("health", "health of this kwik-cp, or of one path");
    CLI::Option* hc = add_connection(health, false, "with --path-id: that path's connection");
    CLI::Option* hp = add(health, "--path-id", "with --connection: the path", "N", unsigned_in(1, max_path_id));
    hc->needs(hp);
    hp->needs(hc);

    CLI::App* registry = app.add_subcommand("registry", "the server registry: list, register, remove");
    registry->require_subcommand(1);
    registry->add_subcommand("list", "the registered servers (= show servers)");
    CLI::App* reg = registry->add_subcommand("register", "register (or replace) a server");
    const check_fn server_id = [](const std::string& s) { return check_with(parse_server_id, s); };
    add(reg, "--server-id", "the server's id, 1..128 characters", "ID", server_id, true);
    add(reg, "--address", "where clients reach the server's KCP", "HOST:PORT",
        [](const std::string& s) { return check_with(parse_host_port, s); }, true);
    add(reg, "--pin", "the server's key pin (64 hex digits); kwik-cp's own --pin goes before `registry`", "HEX64",
        [](const std::string& s) {
            return kcp::parse_pin(s) ? std::string() : "\"" + s + "\" is not a key pin: expected 64 hex digits";
        });
    add(reg, "--bandwidth-mbps", "available bandwidth, Mbit/s", "M", unsigned_in(0, u32_max));
    const check_fn label = [](const std::string& s) {
        if (s.empty() || s.size() > 64) {
            return "\"" + s + "\" must be 1..64 characters";
        }
        for (const char c : s) {
            if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
                return "\"" + s + "\" has a space or control character";
            }
        }
        return std::string();
    };
    add(reg, "--region", "e.g. eu-west", "REGION", label);
    add(reg, "--country", "e.g. FR", "CC", label);
    add(reg, "--datacenter", "e.g. par1", "DC", label);
    add_list(reg, "--capability", "a capability the server has (repeat)", "X", label);
    CLI::App* unreg = registry->add_subcommand("remove", "remove a server from the registry at once");
    add(unreg, "--server-id", "the server's id", "ID", server_id, true);
    add(unreg, "--reason", "why (recorded by kwik-cp)", "R", {});

    CLI::App* watch = app.add_subcommand("watch", "a view refreshed in place, like top (q or Ctrl-C ends it)");
    std::vector<std::string> names;
    for (const view_entry& v : views) {
        names.emplace_back(v.name);
    }
    add_choice(watch, "view", "the view (default status)", names, false);
    add_connection(watch, false, "connections, paths, streams: only this connection");
    add(watch, "--interval-ms", "time between refreshes (default 1000)", "MS", unsigned_in(100, 3'600'000));
    add(watch, "--count", "stop after this many refreshes (default: until q or Ctrl-C)", "N",
        unsigned_in(1, 1'000'000'000));

    CLI::App* pin_cmd = app.add_subcommand("pin", "print the key pin (SHA-256 of the public key) of a certificate or key "
                                                   "file, e.g. kwik-cp's certificate, for --pin");
    add(pin_cmd, "file", "a PEM certificate, public key or private key", "FILE", {}, true);

    CLI::App* doctor_cmd = app.add_subcommand("doctor", "check this host for kwikd and kwik-cp (IOMMU, NICs, hugepages, "
                                                    "CPUs, shared memory, kwik-cp) and print what to fix; exit 1 on a failure");
    add(doctor_cmd, "--kwikd-config", "kwikd's configuration (default /etc/kwik/kwikd.toml under --root)", "FILE",
        [](const std::string& s) {
            std::error_code ec;
            return std::filesystem::is_regular_file(s, ec) ? std::string() : "\"" + s + "\" is not a file";
        });
    add(doctor_cmd, "--kwikd", "the kwikd whose --check-config reads it (default /usr/sbin/kwikd, else kwikd on PATH)",
        "PATH", [](const std::string& s) {
            if (s.find('/') == std::string::npos) {
                return std::string();
            }
            std::error_code ec;
            return std::filesystem::is_regular_file(s, ec) && ::access(s.c_str(), X_OK) == 0
                       ? std::string()
                       : "\"" + s + "\" is not an executable file";
        });
    add(doctor_cmd, "--root", "read /sys, /proc, /dev, /run and /etc under this directory (default /)", "DIR",
        [](const std::string& s) {
            std::error_code ec;
            return std::filesystem::is_directory(s, ec) ? std::string() : "\"" + s + "\" is not a directory";
        });
    std::vector<std::string> skippable(std::begin(doctor::check_groups) + 1, std::end(doctor::check_groups));
    CLI::Option* skip = add_list(doctor_cmd, "--skip", "a check group not to run (repeat)", "", one_of(skippable));
    std::string skip_type;
    for (const auto& n : skippable) {
        skip_type += (skip_type.empty() ? "" : "|") + n;
    }
    skip->type_name(skip_type);
    hints.choices[skip] = skippable;

    CLI::App* completion = app.add_subcommand("completion", "print a shell completion script");
    add_choice(completion, "shell", "the shell", {"bash", "zsh"}, true);
}

command_line::command_line() : _s(std::make_unique<state>()) { _s->build(); }
command_line::~command_line() = default;

const CLI::App& command_line::app() const { return _s->app; }

std::string command_line::completion_script(std::string_view shell) const {
    return make_completion_script(_s->app, shell, _s->hints);
}

request_t::View view_of(std::string_view name) {
    for (const view_entry& v : views) {
        if (v.name == name) {
            return v.view;
        }
    }
    return request_t::VIEW_UNSPECIFIED;
}

std::string_view view_name(request_t::View view) {
    for (const view_entry& v : views) {
        if (v.view == view) {
            return v.name;
        }
    }
    return "unknown";
}

parse_outcome command_line::parse(const std::vector<std::string>& args) {
    parse_outcome o;
    state& s = *_s;
    // The chain of selected subcommands: "path add".
    const auto chain = [&] {
        std::vector<const CLI::App*> c;
        for (const CLI::App* a = &s.app;;) {
            auto subs = a->get_subcommands();
            if (subs.empty()) {
                break;
            }
            a = subs.front();
            c.push_back(a);
        }
        return c;
    };
    const auto command_of = [&] {
        std::string name;
        for (const CLI::App* a : chain()) {
            name += (name.empty() ? "" : " ") + a->get_name();
        }
        return name;
    };
    const auto refuse = [&](const std::string& why) {
        const std::string cmd = command_of();
        o.exit_code = exit_bad_arguments;
        o.err = "kwikctl: " + why + "\nRun 'kwikctl " + (cmd.empty() ? "" : cmd + " ") + "--help' for more information.\n";
        o.parsed.reset();
        return o;
    };

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        s.app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
            std::ostringstream out, err;
            s.app.exit(e, out, err);
            o.exit_code = exit_ok;
            o.out = out.str();
            return o;
        }
        const std::vector<const CLI::App*> c = chain();
        const CLI::App* at = c.empty() ? &s.app : c.back();
        const auto subs = at->get_subcommands([](const CLI::App*) { return true; });
        if (!subs.empty() && at->get_subcommands().empty() && e.get_name() == "RequiredError") {
            // "A subcommand is required": say which were possible, and what was given instead.
            std::string names;
            for (const CLI::App* sub : subs) {
                names += (names.empty() ? "" : ", ") + sub->get_name();
            }
            const auto rest = s.app.remaining(true);
            return refuse((rest.empty() ? std::string("a command is required")
                                        : "\"" + rest.front() + "\" is not a command") +
                          " after 'kwikctl" + (c.empty() ? "" : " " + command_of()) + "': one of " + names);
        }
        return refuse(e.what());
    }

    const std::vector<const CLI::App*> c = chain();
    const CLI::App* leaf = c.back();
    invocation inv;
    inv.command = command_of();
    inv.json = s.json;
    inv.settings.insecure_plain = s.flags.insecure_plain;
    const auto given_global = [&](const char* name) { return s.app.get_option(name)->count() > 0; };
    if (given_global("--server")) {
        inv.settings.server = s.server;
    }
    if (given_global("--pin")) {
        inv.settings.pin = s.pin;
    }
    if (given_global("--key-id")) {
        inv.settings.key_id = s.key_id;
    }
    if (given_global("--secret-file")) {
        inv.settings.secret_file = s.secret_file;
    }
    if (given_global("--client-id")) {
        inv.settings.client_id = s.client_id;
    }
    if (given_global("--timeout-ms")) {
        inv.settings.timeout_ms = s.timeout_ms;
    }
    if (given_global("--config")) {
        inv.settings.config = s.config;
    }

    request_t& r = inv.request;
    const auto given = [&](const char* name) { return s.given(leaf, name); };
    const auto text = [&](const char* name) -> const std::string& { return s.text(leaf, name); };
    const auto number = [&](const char* name) { return to_u64(text(name)); };
    const std::string& cmd = inv.command;

    if (cmd == "completion") {
        o.exit_code = exit_ok;
        o.out = completion_script(text("shell"));
        return o;
    }
    if (cmd == "pin") {
        auto pin = kcp::pin_of_file(text("file"));
        if (!pin) {
            return refuse("file: " + pin.message());
        }
        o.exit_code = exit_ok;
        o.out = kcp::to_hex(*pin) + "\n";
        return o;
    }
    if (cmd == "status") {
        r.mutable_show()->set_view(request_t::STATUS);
    } else if (c.front()->get_name() == "show") {
        r.mutable_show()->set_view(view_of(leaf->get_name()));
        if (given("--connection")) {
            r.mutable_show()->set_connection(parse_connection(text("--connection")).value());
        }
    } else if (cmd == "registry list") {
        r.mutable_show()->set_view(request_t::SERVERS);
    } else if (cmd == "path add") {
        auto* a = r.mutable_add_path();
        a->set_connection(parse_connection(text("--connection")).value());
        a->set_path_id(number("--path-id"));
        const path_end local = parse_path_end(text("--local")).value();
        const path_end remote = parse_path_end(text("--remote")).value();
        if (local.v6 != remote.v6) {
            return refuse("--remote: \"" + text("--remote") + "\" is " + (remote.v6 ? "IPv6" : "IPv4") +
                          " but --local \"" + text("--local") + "\" is " + (local.v6 ? "IPv6" : "IPv4"));
        }
        auto* p = a->mutable_path();
        p->set_ip_version(local.v6 ? v3::UdpPath::IPV6 : v3::UdpPath::IPV4);
        p->set_local_address(local.address);
        p->set_local_port(local.port);
        p->set_remote_address(remote.address);
        p->set_remote_port(remote.port);
        if (given("--weight")) {
            a->set_weight(static_cast<float>(parse_real(text("--weight"), 0, 1e6).value()));
        }
        a->set_standby(s.on(leaf, "--standby"));
        if (given("--max-mbps")) {
            a->set_max_bandwidth_mbps(static_cast<std::uint32_t>(number("--max-mbps")));
        }
    } else if (cmd == "path remove") {
        auto* a = r.mutable_remove_path();
        a->set_connection(parse_connection(text("--connection")).value());
        a->set_path_id(number("--path-id"));
        if (given("--drain-ms")) {
            a->set_drain_timeout_ms(static_cast<std::uint32_t>(number("--drain-ms")));
        }
    } else if (cmd == "scale") {
        auto* a = r.mutable_scale();
        a->set_connection(parse_connection(text("--connection")).value());
        a->set_target_bandwidth_mbps(static_cast<std::uint32_t>(number("--target-mbps")));
        if (given("--min-paths") && given("--max-paths") && number("--min-paths") > number("--max-paths")) {
            return refuse("--min-paths: " + text("--min-paths") + " is above --max-paths " + text("--max-paths"));
        }
        if (given("--up-threshold") && given("--down-threshold") &&
            number("--down-threshold") >= number("--up-threshold")) {
            return refuse("--down-threshold: " + text("--down-threshold") + " is not below --up-threshold " +
                          text("--up-threshold"));
        }
        const bool policy = given("--min-paths") || given("--max-paths") || given("--cooldown-s") ||
                            given("--up-threshold") || given("--down-threshold") || s.on(leaf, "--aggressive");
        if (policy) {
            auto* p = a->mutable_policy();
            const auto u32 = [&](const char* n) { return given(n) ? static_cast<std::uint32_t>(number(n)) : 0u; };
            p->set_min_paths(u32("--min-paths"));
            p->set_max_paths(u32("--max-paths"));
            p->set_cooldown_seconds(u32("--cooldown-s"));
            p->set_scale_up_threshold_percent(u32("--up-threshold"));
            p->set_scale_down_threshold_percent(u32("--down-threshold"));
            p->set_aggressive_scaling(s.on(leaf, "--aggressive"));
        }
    } else if (cmd == "set qos") {
        auto* a = r.mutable_set_qos();
        a->set_connection(parse_connection(text("--connection")).value());
        a->set_stream_id(number("--stream"));
        a->set_priority(static_cast<std::uint32_t>(number("--priority")));
        if (given("--min-mbps")) {
            a->set_min_bandwidth_mbps(static_cast<std::uint32_t>(number("--min-mbps")));
        }
        if (given("--max-mbps")) {
            a->set_max_bandwidth_mbps(static_cast<std::uint32_t>(number("--max-mbps")));
        }
        if (a->max_bandwidth_mbps() != 0 && a->min_bandwidth_mbps() > a->max_bandwidth_mbps()) {
            return refuse("--min-mbps: " + text("--min-mbps") + " is above --max-mbps " + text("--max-mbps"));
        }
    } else if (cmd == "set scheduler") {
        auto* a = r.mutable_set_scheduler();
        a->set_connection(parse_connection(text("--connection")).value());
        a->set_strategy(parse_strategy(text("strategy")).value());
    } else if (cmd == "set weights") {
        auto* a = r.mutable_set_weights();
        a->set_connection(parse_connection(text("--connection")).value());
        for (const std::string& w : s.list(leaf, "weights")) {
            const path_weight pw = parse_path_weight(w).value();
            if (a->path_weights().count(pw.path_id) != 0) {
                return refuse("weights: path " + std::to_string(pw.path_id) + " is given twice");
            }
            (*a->mutable_path_weights())[pw.path_id] = pw.weight;
        }
    } else if (cmd == "health") {
        auto* a = r.mutable_health();
        if (given("--connection")) {
            a->set_connection(parse_connection(text("--connection")).value());
            a->set_path_id(number("--path-id"));
        }
    } else if (cmd == "registry register") {
        auto* reg = r.mutable_register_server();
        reg->set_server_id(text("--server-id"));
        auto* srv = reg->mutable_server();
        srv->set_address(text("--address"));
        if (given("--pin")) {
            const kcp::key_pin pin = kcp::parse_pin(text("--pin")).value();
            srv->set_tls_pubkey_hash_sha256(std::string(pin.begin(), pin.end()));
        }
        if (given("--bandwidth-mbps")) {
            srv->set_available_bandwidth_mbps(static_cast<std::uint32_t>(number("--bandwidth-mbps")));
        }
        if (given("--region")) {
            srv->mutable_location()->set_region(text("--region"));
        }
        if (given("--country")) {
            srv->mutable_location()->set_country(text("--country"));
        }
        if (given("--datacenter")) {
            srv->mutable_location()->set_datacenter(text("--datacenter"));
        }
        std::set<std::string> seen;
        for (const std::string& cap : s.list(leaf, "--capability")) {
            if (!seen.insert(cap).second) {
                return refuse("--capability: \"" + cap + "\" is given twice");
            }
            srv->add_capabilities(cap);
        }
    } else if (cmd == "registry remove") {
        auto* a = r.mutable_remove_server();
        a->set_server_id(text("--server-id"));
        if (given("--reason")) {
            a->set_reason(text("--reason"));
        }
    } else if (cmd == "watch") {
        inv.what = invocation::kind::watch;
        const std::string view = given("view") ? text("view") : "status";
        r.mutable_show()->set_view(view_of(view));
        if (given("--connection")) {
            if (view != "connections" && view != "paths" && view != "streams") {
                return refuse("--connection: only for watch connections, paths or streams, not " + view);
            }
            r.mutable_show()->set_connection(parse_connection(text("--connection")).value());
        }
        if (given("--interval-ms")) {
            inv.interval_ms = static_cast<std::uint32_t>(number("--interval-ms"));
        }
        if (given("--count")) {
            inv.count = number("--count");
        }
    } else if (cmd == "doctor") {
        inv.what = invocation::kind::doctor;
        doctor::options& d = inv.doctor;
        if (given("--kwikd-config")) {
            d.kwikd_config = text("--kwikd-config");
        }
        if (given("--kwikd")) {
            d.kwikd = text("--kwikd");
        }
        if (given("--root")) {
            d.root = text("--root");
        }
        d.skip = s.list(leaf, "--skip");
        d.settings = inv.settings;
        d.json = inv.json;
    } else {
        return refuse("no command \"" + cmd + "\"");
    }
    o.parsed = std::move(inv);
    return o;
}

} // namespace kwik::ctl
