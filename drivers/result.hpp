// The outcome of a port set-up step (open, configure, start, stop, install a flow rule): a value,
// or an error whose message names the device and what DPDK said. DPDK's negative errno is
// converted here, once, by dpdk_error(). Set-up paths only (the main lcore); never per packet.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kwik::drivers {

// What went wrong, written for a person: it names the device (and the config field, where the
// fault is in the config). code is the positive errno DPDK gave (EINVAL, ENOTSUP, ...), or the
// errno that best describes a config fault; callers branch on it (flow steering falls back to
// the software hand-off on ENOTSUP), people read message.
struct error {
    int code = 0;
    std::string message;
};

template <class T>
class [[nodiscard]] result {
public:
    result(T value) : _v(std::in_place_index<0>, std::move(value)) {}
    result(error e) : _v(std::in_place_index<1>, std::move(e)) {}

    bool ok() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(_v); }
    const T& value() const& { return std::get<0>(_v); }
    T&& value() && { return std::get<0>(std::move(_v)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    int code() const { return std::get<1>(_v).code; }
    const std::string& message() const { return std::get<1>(_v).message; }
    const error& failure() const { return std::get<1>(_v); }

private:
    std::variant<T, error> _v;
};

// A step with no value: success, or an error.
template <>
class [[nodiscard]] result<void> {
public:
    result() = default;
    result(error e) : _error(std::move(e)), _failed(true) {}

    bool ok() const noexcept { return !_failed; }
    explicit operator bool() const noexcept { return ok(); }
    int code() const noexcept { return _error.code; }
    const std::string& message() const noexcept { return _error.message; }
    const error& failure() const noexcept { return _error; }

private:
    error _error;
    bool _failed = false;
};

// The error for a DPDK call that returned ret < 0 (a negative errno): "device 'net_pcap0':
// <action>: <rte_strerror(-ret)>". action says what was being done, e.g.
// "rte_eth_dev_configure (2 rx, 2 tx queues)".
[[nodiscard]] error dpdk_error(std::string_view device, std::string_view action, int ret);

// An error in the request itself (a config field, a queue number): "device '<device>': <what>".
[[nodiscard]] error config_error(std::string_view device, int code, std::string_view what);

} // namespace kwik::drivers
