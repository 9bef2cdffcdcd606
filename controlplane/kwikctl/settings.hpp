// kwikctl's connection settings: which kwik-cp to reach (--server), how to trust it (--pin, or
// --insecure-plain on loopback), who we are (--key-id, --secret-file, --client-id) and how long
// to wait (--timeout-ms). Each comes from a flag, else the environment (KWIKCTL_SERVER, ...),
// else the config file (--config, KWIKCTL_CONFIG, or /etc/kwik/kwikctl.toml when it exists);
// every bad value is named with where it came from. Reads files; any thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "controlplane/kcp/tls.hpp"
#include "controlplane/server/kcp_types.hpp"

namespace kwik::ctl {

using kwik::error;
using kwik::result;

// What the flags said; nullopt: not given.
struct settings_flags {
    std::optional<std::string> server, pin, key_id, secret_file, client_id, timeout_ms, config;
    bool insecure_plain = false;
};

struct connection_settings {
    std::string server;              // host:port as given (kcp::blocking_client::connect)
    std::optional<kcp::key_pin> pin; // TLS pinned to this key; none: plain TCP (loopback only)
    std::string key_id;
    cp::bytes32 secret{};
    std::string client_id = "kwikctl";
    std::chrono::milliseconds timeout{5'000}; // connect + hello, and each request
    std::string secret_source;                // where the secret came from, for messages
};

// The environment as a function (tests pass a map); std::getenv by default.
using environment = std::function<std::optional<std::string>(std::string_view name)>;
environment process_environment();

inline constexpr std::string_view default_config_path = "/etc/kwik/kwikctl.toml";

// Resolves flag > environment > config file. default_config is read only when it exists and
// neither --config nor KWIKCTL_CONFIG names another. Errors name the flag, variable or file:line.
result<connection_settings> resolve_settings(const settings_flags& flags, const environment& env,
                                             std::string_view default_config = default_config_path);

// The secret file: 64 hex digits (surrounding white space allowed), owned by anyone but not
// readable or writable by group or others. source names the setting ("--secret-file").
result<cp::bytes32> read_secret_file(const std::string& path, std::string_view source);

} // namespace kwik::ctl
