// kwikctl doctor (doctor.hpp): the configuration, shared-memory and control-process checks, the
// order the check groups run in, and the text and JSON output.
#include "controlplane/kwikctl/doctor.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "controlplane/kwikctl/operator_session.hpp"
#include "controlplane/kwikctl/table_output.hpp"
#include "dataplane/api/shm_region.hpp"

namespace kwik::ctl::doctor {

namespace {

std::string octal(std::uint32_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode & 07777u);
    return text;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

} // namespace

// ---- 1. the configuration ---------------------------------------------------------------------

std::vector<finding> check_config(const check_config_run& run, std::optional<kwikd_view>& view) {
    view.reset();
    const std::string cmd = run.kwikd + " --config " + run.config_path + " --check-config";
    if (run.exit_code < 0) {
        return {{"config", status::fail, "cannot run " + run.kwikd + ": " + trimmed(run.err),
                 {"install kwikd as /usr/sbin/kwikd (meson install, or the Debian package)",
                  "or: kwikctl doctor --kwikd PATH"}}};
    }
    if (run.exit_code != 0) {
        return {{"config", status::fail, cmd + " refused it: " + trimmed(run.err.empty() ? run.out : run.err),
                 {"edit " + run.config_path + " at the line named, then: " + cmd}}};
    }
    auto parsed = parse_effective_config(run.out);
    if (!parsed) {
        return {{"config", status::fail, parsed.message(), {"check that " + run.kwikd + " is this release's kwikd"}}};
    }
    view = std::move(*parsed);
    view->config_path = run.config_path;
    return {{"config", status::ok,
             "kwikd --check-config accepts " + run.config_path + " (" + std::to_string(view->ports.size()) + " ports, " +
                 std::to_string(view->worker_lcores.size()) + " workers)",
             {}}};
}

// ---- 6. shared memory ---------------------------------------------------------------------------

namespace {

std::string region_path(const kwikd_view& c) { return c.shm_directory + "/" + c.name; }
std::string lock_path(const kwikd_view& c) { return region_path(c) + ".lock"; }

// The region's header as it is in the file now; nullopt when it cannot be read.
std::optional<api::region_header> read_header(const host_reader& host, const std::string& path) {
    std::ifstream in(host.path(path), std::ios::binary);
    api::region_header h{};
    if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) {
        return std::nullopt;
    }
    return h;
}

} // namespace

bool kwikd_running(const kwikd_view& config, const host_reader& host) {
    return host.probe_lock(lock_path(config)) == lock_state::held;
}

std::vector<finding> check_shm(const kwikd_view& config, const host_reader& host, const std::function<void()>& between_reads) {
    const std::string region = region_path(config);
    const std::string lock = lock_path(config);
    std::vector<finding> out;
    const auto dir = host.stat(config.shm_directory);
    if (!dir || !dir->directory) {
        return {{"shm_directory", status::fail, "no directory " + config.shm_directory + " (shm_directory)",
                 {"systemctl start kwikd   # its RuntimeDirectory creates /run/kwik", "journalctl -u kwikd"}}};
    }
    const bool world_writable = (dir->mode & S_IWOTH) != 0;
    const bool sticky = (dir->mode & S_ISVTX) != 0;
    if (world_writable && !sticky) {
        out.push_back({"shm_directory", status::fail,
                       config.shm_directory + " is world-writable (" + octal(dir->mode) +
                           "): anyone can replace kwikd's region",
                       {"chmod o-w " + config.shm_directory}});
    } else {
        out.push_back({"shm_directory", status::ok,
                       config.shm_directory + " " + octal(dir->mode) + " " + host.group_name(dir->gid) +
                           (world_writable ? " (sticky: others cannot replace kwikd's files)" : ""),
                       {}});
    }
    const auto region_info = host.stat(region);
    if (!region_info) {
        out.push_back({"kwikd", status::warn, "kwikd not running: no region " + region,
                       {"systemctl start kwikd", "journalctl -u kwikd"}});
        return out;
    }

    // The files' mode and group, as kwikd was told to create them.
    std::vector<std::string> wrong, fix;
    bool group_missing = false;
    for (const std::string& file : {region, lock}) {
        const auto info = file == region ? region_info : host.stat(file);
        if (!info) {
            continue;
        }
        const std::uint32_t mode = info->mode & 0777u;
        if (mode != config.shm_mode) {
            wrong.push_back(file + " has mode " + octal(mode) + ", shm_mode is " + octal(config.shm_mode));
            fix.push_back("chmod " + octal(config.shm_mode) + " " + file);
        }
        if (config.shm_group) {
            const std::string group = host.group_name(info->gid);
            if (group != *config.shm_group) {
                wrong.push_back(file + " has group " + group + ", shm_group is " + *config.shm_group);
                fix.push_back("chgrp " + *config.shm_group + " " + file);
                group_missing = group_missing || !host.group_exists(*config.shm_group);
            }
        }
    }
    if (wrong.empty()) {
        out.push_back({"shm_files", status::ok,
                       region + " and its lock: mode " + octal(config.shm_mode) +
                           (config.shm_group ? ", group " + *config.shm_group : ""),
                       {}});
    } else {
        if (group_missing) {
            fix.insert(fix.begin(), "groupadd --system " + *config.shm_group);
        }
        fix.push_back("or: systemctl restart kwikd   # it creates them with shm_mode and shm_group");
        std::string found;
        for (const std::string& w : wrong) {
            found += (found.empty() ? "" : "; ") + w;
        }
        out.push_back({"shm_files", status::fail, found, fix});
    }

    // Alive: the lock held and the heartbeat advancing.
    switch (host.probe_lock(lock)) {
    case lock_state::held:
        break;
    case lock_state::unreadable:
        out.push_back({"kwikd", status::warn,
                       "cannot open " + lock + " to see whether kwikd holds it: run kwikctl doctor as root" +
                           (config.shm_group ? " or in group " + *config.shm_group : ""),
                       {"sudo kwikctl doctor"}});
        return out;
    case lock_state::free:
    case lock_state::absent:
        out.push_back({"kwikd", status::fail,
                       "kwikd not running: " + region + " is left from a kwikd that exited (no one holds " + lock + ")",
                       {"systemctl restart kwikd", "journalctl -u kwikd"}});
        return out;
    }
    const auto first = read_header(host, region);
    if (!first) {
        out.push_back({"kwikd", status::warn,
                       "kwikd holds " + lock + ", but " + region + " cannot be read: run kwikctl doctor as root" +
                           (config.shm_group ? " or in group " + *config.shm_group : ""),
                       {"sudo kwikctl doctor"}});
        return out;
    }
    if (std::memcmp(first->magic, api::region_magic, sizeof api::region_magic) != 0) {
        out.push_back({"kwikd", status::fail, region + " is not a Kwik region (bad magic)",
                       {"systemctl restart kwikd", "journalctl -u kwikd"}});
        return out;
    }
    const auto state = static_cast<api::region_state>(first->state);
    if (state != api::region_state::ready) {
        // kwikctl does not link the api library (DPDK's rte_ring): the states by what they mean here.
        const std::string why = state == api::region_state::initialising ? "still initialising (kwikd is starting)"
                                : state == api::region_state::stopping   ? "stopping (kwikd is shutting down)"
                                : state == api::region_state::stopped    ? "stopped (kwikd has exited)"
                                                                         : "unknown (" + std::to_string(first->state) + ")";
        out.push_back({"kwikd", status::fail,
                       "kwikd pid " + std::to_string(first->creator_pid) + " holds the lock, but its region is " + why,
                       {"systemctl status kwikd", "journalctl -u kwikd"}});
        return out;
    }
    between_reads();
    const auto second = read_header(host, region);
    if (!second || second->heartbeat_ns == first->heartbeat_ns) {
        out.push_back({"kwikd", status::fail,
                       "kwikd pid " + std::to_string(first->creator_pid) +
                           " holds the lock but its heartbeat does not advance: the main lcore is stuck",
                       {"systemctl restart kwikd", "journalctl -u kwikd"}});
        return out;
    }
    out.push_back({"kwikd", status::ok,
                   "kwikd pid " + std::to_string(first->creator_pid) + " alive: " + lock +
                       " held, heartbeat advancing, control pid " + std::to_string(second->control_pid),
                   {}});
    return out;
}

// ---- 7. the control process -------------------------------------------------------------------

std::vector<finding> check_control(const result<connection_settings>& settings, const std::string& settings_file,
                                   const kwikd_view* config) {
    const std::string id = "control";
    if (!settings) {
        return {{id, status::fail, "kwikctl's settings: " + settings.message(),
                 {settings_file + ": server = \"127.0.0.1:7708\"", settings_file + ": pin = \"<kwikctl pin /var/lib/kwik/cp.crt>\"",
                  settings_file + ": key_id = \"<operator key id>\"", settings_file + ": secret_file = \"<file, mode 0600>\""}}};
    }
    auto session = operator_session::open(*settings);
    if (!session) {
        const std::string& why = session.message();
        if (const auto at = why.find("does not match the pin"); at != std::string::npos) {
            const auto got = why.find("got ", at);
            const std::string pin = got == std::string::npos ? "<pin>" : why.substr(got + 4, 64);
            return {{id, status::fail, "kwik-cp at " + settings->server + ": " + why,
                     {"kwikctl pin /var/lib/kwik/cp.crt   # must print " + pin + " if that is kwik-cp's certificate",
                      settings_file + ": pin = \"" + pin + "\""}}};
        }
        if (why.find("hello") != std::string::npos || why.find("rejected") != std::string::npos) {
            return {{id, status::fail, "kwik-cp at " + settings->server + ": " + why,
                     {settings_file + ": key_id = \"<an operator key of /etc/kwik/kwik-cp.toml [[auth.key]]>\"",
                      settings_file + ": secret_file = \"<its secret, mode 0600>\""}}};
        }
        return {{id, status::fail, "kwik-cp unreachable at " + settings->server + ": " + why,
                 {"systemctl status kwik-cp", "journalctl -u kwik-cp",
                  settings_file + ": server = \"<kwik-cp's listen address>\""}}};
    }
    kcp::v3::OperatorRequest request;
    request.mutable_show()->set_view(kcp::v3::OperatorRequest::STATUS);
    auto response = (*session)->request(request);
    (*session)->close();
    if (!response || !response->ok()) {
        return {{id, status::fail,
                 "kwik-cp at " + settings->server + " did not answer status: " +
                     (response ? response->error() : response.message()),
                 {"systemctl status kwik-cp", "journalctl -u kwik-cp"}}};
    }
    const auto answer = ctl::to_json(*response);
    for (const auto& table : answer["tables"]) {
        if (table["name"] != "kwikd" || table["rows"].empty()) {
            continue;
        }
        const auto& row = table["rows"][0];
        const std::string region = row.value("region", std::string());
        if (row.value("attached", false)) {
            return {{id, status::ok,
                     "kwik-cp " + (*session)->server_id() + " at " + settings->server + " answers and is attached to kwikd's region " +
                         region,
                     {}}};
        }
        const std::string name = config ? config->name : "<[kwikd] name>";
        std::vector<std::string> fix = {"systemctl status kwikd",
                                        "/etc/kwik/kwik-cp.toml: kwikd_region = \"" + name + "\"   # in [kwik_cp]"};
        if (config) {
            fix.push_back("/etc/kwik/kwik-cp.toml: kwikd_shm_directory = \"" + config->shm_directory + "\"   # in [kwik_cp]");
        }
        return {{id, status::fail,
                 "kwik-cp " + (*session)->server_id() + " answers but is not attached to kwikd (region " + region + ")", fix}};
    }
    return {{id, status::fail, "kwik-cp's status has no kwikd table: is it this release's kwik-cp?",
             {"systemctl status kwik-cp"}}};
}

// ---- the command ----------------------------------------------------------------------------

std::vector<finding> run(const options& opts, const environment& env) {
    const host_reader host(opts.root);
    const auto skipped = [&](std::string_view group) {
        return std::find(opts.skip.begin(), opts.skip.end(), group) != opts.skip.end();
    };
    std::string kwikd = opts.kwikd.value_or("");
    if (kwikd.empty()) {
        kwikd = ::access("/usr/sbin/kwikd", X_OK) == 0 ? "/usr/sbin/kwikd" : "kwikd";
    }
    const std::string config_path = opts.kwikd_config.value_or(host.path("/etc/kwik/kwikd.toml"));
    std::optional<kwikd_view> view;
    std::vector<finding> out = check_config(run_check_config(kwikd, config_path), view);

    using check_fn = std::function<std::vector<finding>(const kwikd_view&)>;
    const std::pair<std::string_view, check_fn> groups[] = {
        {"iommu", [&](const kwikd_view& c) { return check_iommu(c, host); }},
        {"nics", [&](const kwikd_view& c) { return check_nics(c, host); }},
        {"hugepages", [&](const kwikd_view& c) { return check_hugepages(c, host, kwikd_running(c, host)); }},
        {"cpus", [&](const kwikd_view& c) { return check_cpus(c, host); }},
        {"shm", [&](const kwikd_view& c) {
             return check_shm(c, host, [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); });
         }},
    };
    for (const auto& [group, check] : groups) {
        if (skipped(group)) {
            out.push_back({std::string(group), status::skip, "skipped (--skip " + std::string(group) + ")", {}});
        } else if (!view) {
            out.push_back({std::string(group), status::skip, "no effective configuration (see check config)", {}});
        } else {
            auto found = check(*view);
            out.insert(out.end(), found.begin(), found.end());
        }
    }
    if (skipped("control")) {
        out.push_back({"control", status::skip, "skipped (--skip control)", {}});
    } else {
        std::string settings_file = std::string(default_config_path);
        if (opts.settings.config) {
            settings_file = *opts.settings.config;
        } else if (auto e = env("KWIKCTL_CONFIG")) {
            settings_file = *e;
        }
        const auto settings = resolve_settings(opts.settings, env, host.path(default_config_path));
        auto found = check_control(settings, settings_file, view ? &*view : nullptr);
        out.insert(out.end(), found.begin(), found.end());
    }
    return out;
}

std::string render_text(const std::vector<finding>& findings) {
    std::size_t width = std::string_view("CHECK").size();
    for (const finding& f : findings) {
        width = std::max(width, f.check.size());
    }
    const auto pad = [](std::string s, std::size_t w) {
        s.resize(std::max(s.size(), w), ' ');
        return s;
    };
    std::string out = pad("CHECK", width) + "  STATUS  FOUND\n";
    std::size_t counts[4] = {};
    for (const finding& f : findings) {
        ++counts[static_cast<std::size_t>(f.state)];
        out += pad(f.check, width) + "  " + pad(std::string(to_string(f.state)), 6) + "  " + f.found + "\n";
        for (const std::string& line : f.fix) {
            out += pad("", width + 2 + 6 + 2) + "fix: " + line + "\n";
        }
    }
    out += "doctor: " + std::to_string(counts[0]) + " ok, " + std::to_string(counts[1]) + " warn, " +
           std::to_string(counts[2]) + " fail, " + std::to_string(counts[3]) + " skip\n";
    return out;
}

nlohmann::ordered_json to_json(const std::vector<finding>& findings) {
    nlohmann::ordered_json checks = nlohmann::ordered_json::array();
    std::size_t counts[4] = {};
    for (const finding& f : findings) {
        ++counts[static_cast<std::size_t>(f.state)];
        checks.push_back({{"check", f.check}, {"status", to_string(f.state)}, {"found", f.found}, {"fix", f.fix}});
    }
    return {{"checks", checks},
            {"summary", {{"ok", counts[0]}, {"warn", counts[1]}, {"fail", counts[2]}, {"skip", counts[3]}}},
            {"exit", exit_code(findings)}};
}

int exit_code(const std::vector<finding>& findings) {
    return std::any_of(findings.begin(), findings.end(), [](const finding& f) { return f.state == status::fail; }) ? 1 : 0;
}

} // namespace kwik::ctl::doctor
