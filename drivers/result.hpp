// The outcome of a port set-up step (open, configure, start, stop, install a flow rule): a value,
// or an error whose message names the device and what DPDK said. DPDK's negative errno is
// converted here, once, by dpdk_error(). Set-up paths only (the main lcore); never per packet.
#pragma once

#include <string_view>

#include "common/result.hpp"

namespace kwik::drivers {

using kwik::error;
using kwik::result;

// The error for a DPDK call that returned ret < 0 (a negative errno): "device 'net_pcap0':
// <action>: <rte_strerror(-ret)>". action says what was being done, e.g.
// "rte_eth_dev_configure (2 rx, 2 tx queues)".
[[nodiscard]] error dpdk_error(std::string_view device, std::string_view action, int ret);

// An error in the request itself (a config field, a queue number): "device '<device>': <what>".
[[nodiscard]] error config_error(std::string_view device, int code, std::string_view what);

} // namespace kwik::drivers
