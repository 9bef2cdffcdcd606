// The outcome of a set-up or control-path step anywhere in Kwik (open a port, map the shared
// region, read a file, parse an option, answer a KCP request): a value, or an error written for
// a person. Never per packet: the data plane's per-packet outcome is a verdict and a drop
// counter (STYLE.md). Any thread. Each layer names it in its own namespace (api::result,
// drivers::result, tools::result, cp::result) so call sites read as before.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace kwik {

// message names the file, field, device or peer at fault, and the errno text where a system
// call failed. code is a positive errno where one describes the failure (callers branch on it:
// flow steering falls back to the hand-off ring on ENOTSUP), else 0.
struct error {
    std::string message;
    int code = 0;
};

template <class T> class [[nodiscard]] result {
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

    const error& failure() const { return std::get<1>(_v); }
    const std::string& message() const { return failure().message; }
    int code() const { return failure().code; }

private:
    std::variant<T, error> _v;
};

// A step with no value: success, or an error.
template <> class [[nodiscard]] result<void> {
public:
    result() = default;
    result(error e) : _error(std::move(e)), _failed(true) {}

    bool ok() const noexcept { return !_failed; }
    explicit operator bool() const noexcept { return ok(); }
    const error& failure() const noexcept { return _error; }
    const std::string& message() const noexcept { return _error.message; }
    int code() const noexcept { return _error.code; }

private:
    error _error;
    bool _failed = false;
};

} // namespace kwik
