// kwikctl's command line: the CLI11 command tree (status, show, path, scale, set, health,
// registry, watch, doctor, completion), each command's arguments checked and made into one
// OperatorRequest (proto/kcp.proto), and the shell completion script generated from the same
// tree. No sockets; one thread (the caller's).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/kwikctl/doctor.hpp"
#include "controlplane/kwikctl/settings.hpp"
#include "proto/kcp.pb.h"

namespace CLI {
class App;
class Option;
} // namespace CLI

namespace kwik::ctl {

// kwikctl's exit statuses.
enum exit_status : int {
    exit_ok = 0,
    exit_refused = 1,       // kwik-cp answered ok = false
    exit_bad_arguments = 2, // a bad flag, value, setting or file
    exit_unreachable = 3,   // cannot connect, hello rejected, no answer in time
};

// One parsed command.
struct invocation {
    enum class kind : std::uint8_t { request, watch, doctor };
    kind what = kind::request;
    std::string command;              // "path add", for messages
    kcp::v3::OperatorRequest request; // watch: the Show sent each round
    settings_flags settings;
    bool json = false;
    std::uint32_t interval_ms = 1000; // watch
    std::uint64_t count = 0;          // watch: rounds; 0 until q or Ctrl-C
    doctor::options doctor;           // doctor: its flags (settings and json copied in)
};

struct parse_outcome {
    int exit_code = exit_ok;  // when parsed is empty: exit_ok (help, completion) or exit_bad_arguments
    std::string out;          // help text or completion script (stdout)
    std::string err;          // "kwikctl: ..." (stderr)
    std::optional<invocation> parsed;
};

class command_line {
public:
    command_line();
    ~command_line();
    command_line(const command_line&) = delete;
    command_line& operator=(const command_line&) = delete;

    // args: without the program name. Parse once per command_line object.
    parse_outcome parse(const std::vector<std::string>& args);

    const CLI::App& app() const;
    // A bash or zsh completion script for this tree; empty for another shell.
    std::string completion_script(std::string_view shell) const;

private:
    struct state;
    std::unique_ptr<state> _s;
};

// The View of a `show`/`watch` name ("paths" -> PATHS); VIEW_UNSPECIFIED for an unknown name.
kcp::v3::OperatorRequest::View view_of(std::string_view name);
// "paths" for PATHS, ...
std::string_view view_name(kcp::v3::OperatorRequest::View view);

} // namespace kwik::ctl
