// The outcome of a set-up step in the codec tools (open a file, parse an option, read a
// description): a value, or an error message that names what was wrong. Any thread.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace kwik::tools {

// An error message, written for a person: it names the file, option or field at fault.
struct error {
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

    const std::string& message() const { return std::get<1>(_v).message; }

private:
    std::variant<T, error> _v;
};

// A step with no value: success, or an error.
template <>
class [[nodiscard]] result<void> {
public:
    result() = default;
    result(error e) : _error(std::move(e.message)), _failed(true) {}

    bool ok() const noexcept { return !_failed; }
    explicit operator bool() const noexcept { return ok(); }
    const std::string& message() const { return _error; }

private:
    std::string _error;
    bool _failed = false;
};

} // namespace kwik::tools
