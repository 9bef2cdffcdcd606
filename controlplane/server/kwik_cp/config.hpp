// kwik-cp's configuration file (TOML) made into a control_server_config: the listening address,
// TLS, the key store ([[auth.key]]), kwikd's shared-memory name, the registry and the timeouts.
// Every problem names the file, line and field. Reads files (TLS identity); any thread.
//
//   [kwik_cp]
//   server_id = "cp-1"                 # required
//   listen = "0.0.0.0:7708"            # numeric address:port; IPv6 as [addr]:port
//   kwikd_region = "kwik"              # kwikd's shared-memory name
//   kwikd_shm_directory = "/dev/shm"   # kwikd's [kwikd] shm_directory ("/run/kwik" under
//                                      # systemd); absolute. The region and its control lock
//                                      # there must be read-write for kwik-cp's user (group kwik)
//   endpoint = "discard"               # discard | echo | pattern | file_store: what kwikd
//                                      # connects each client session's connection to
//   endpoint_directory = "/srv/kwik"   # file_store (required there): an existing absolute
//                                      # directory, at most 127 characters (kwikd's limit)
//   pattern_max_bytes = 17179869184    # pattern: the largest request answered (default 16 GiB)
//   [tls]
//   enabled = true
//   certificate = "/var/lib/kwik/cp.crt"   # both created on first start (load_or_create_identity)
//   private_key = "/var/lib/kwik/cp.key"
//   [registry]
//   expiry_ms = 30000
//   max_results = 8
//   sweep_interval_ms = 1000
//   heartbeat_interval_ms = 0          # asked of registered servers; 0: expiry_ms / 3
//   [timeouts]
//   read_ms = 10000, idle_ms = 120000, challenge_ms = 10000, kwikd_command_ms = 5000,
//   kwikd_retry_ms = 500
//   [planning]                         # the planning loop (docs/CONTROL_PLANE.md 5)
//   enabled = true, interval_ms = 1000, weight_threshold_percent = 5, default_path_mbps = 100,
//   check_interval_ms = 1000, failure_threshold = 3, recovery_threshold = 3
//   [[auth.key]]                       # parse_key_store (controlplane/server/auth.hpp)
//   [upstream]                         # optional: register this server with another registry
//   address = "192.0.2.10:7708"        # required; numeric address:port
//   pin = "<64 hex digits>"            # required: the registry's TLS key; "none": plain TCP
//   key_id = "cp-2"                    # required: a key with the server role there
//   secret = "<64 hex digits>"         # or secret_file = "/etc/kwik/upstream.key" (the hex)
//   client_id = "cp-2"                 # optional; default: kwik_cp.server_id
//   heartbeat_interval_ms = 0          # optional; 0: what the registry answers
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"
#include "controlplane/server/kwik_cp/control_server.hpp"

namespace kwik::cp {

// The TLS files are read (or created) only when load_tls is true (--check-config does not write).
// kwikd's limit on a file_store directory (api::endpoint_path_size less its terminating NUL).
inline constexpr std::size_t max_endpoint_directory = api::endpoint_path_size - 1;

result<control_server_config> parse_control_server_config(std::string_view toml_text, std::string_view source_name,
                                                          bool load_tls);

// "host:port" with a numeric host, IPv6 in brackets; an error names `field`.
result<void> parse_listen(std::string_view text, std::string_view field, std::string& address, std::uint16_t& port);

} // namespace kwik::cp
