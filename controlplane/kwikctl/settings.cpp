// kwikctl's connection settings; see settings.hpp.
#include "controlplane/kwikctl/settings.hpp"

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "controlplane/kwikctl/values.hpp"

namespace kwik::ctl {

namespace {

// One setting's text and where it came from ("--server", "KWIKCTL_SERVER", "file:3: server").
struct sourced {
    std::string value;
    std::string source;
};

// The settings of one level (flags, environment or file), by config-file key.
using level = std::map<std::string, sourced, std::less<>>;

constexpr std::array<std::string_view, 7> keys = {"server",    "pin",       "insecure_plain", "key_id",
                                                  "secret_file", "client_id", "timeout_ms"};

std::string flag_name(std::string_view key) {
    std::string f = "--";
    for (const char c : key) {
        f += c == '_' ? '-' : c;
    }
    return f;
}

std::string env_name(std::string_view key) {
    std::string e = "KWIKCTL_";
    for (const char c : key) {
        e += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    return e;
}

level from_flags(const settings_flags& f) {
    level l;
    const auto put = [&](std::string_view key, const std::optional<std::string>& v) {
        if (v) {
            l.emplace(std::string(key), sourced{*v, flag_name(key)});
        }
    };
    put("server", f.server);
    put("pin", f.pin);
    put("key_id", f.key_id);
    put("secret_file", f.secret_file);
    put("client_id", f.client_id);
    put("timeout_ms", f.timeout_ms);
    if (f.insecure_plain) {
        l.emplace("insecure_plain", sourced{"true", "--insecure-plain"});
    }
    return l;
}

level from_environment(const environment& env) {
    level l;
    for (const std::string_view key : keys) {
        if (auto v = env(env_name(key))) {
            l.emplace(std::string(key), sourced{*v, env_name(key)});
        }
    }
    return l;
}

result<std::string> read_text(const std::string& path, std::string_view source) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return error{std::string(source) + ": cannot read " + path + ": " + std::strerror(errno), errno};
    }
    return std::string{std::istreambuf_iterator<char>(in), {}};
}

// The config file's keys (top level, all optional); unknown keys and wrong types are errors.
// A relative secret_file is taken from the file's directory.
result<level> from_file(const std::string& path, std::string_view named_by) {
    auto text = read_text(path, named_by);
    if (!text) {
        return text.failure();
    }
    for (std::size_t i = 0; i < text->size(); ++i) {
        if (static_cast<unsigned char>((*text)[i]) >= 0x80) {
            return error{path + ": non-ASCII byte at offset " + std::to_string(i) + " (the file must be ASCII)",
                         EINVAL};
        }
    }
    toml::table root;
    try {
        root = toml::parse(*text, path);
    } catch (const toml::parse_error& e) {
        return error{path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
                     EINVAL};
    }
    level l;
    std::string problems;
    for (const auto& [k, node] : root) {
        const std::string key(k.str());
        const std::string where = path + ":" + std::to_string(node.source().begin.line) + ": " + key;
        bool known = false;
        for (const std::string_view name : keys) {
            known = known || key == name;
        }
        if (!known) {
            problems += where + ": unknown key (known: server, pin, insecure_plain, key_id, secret_file, "
                                "client_id, timeout_ms)\n";
            continue;
        }
        if (key == "insecure_plain") {
            if (const auto* b = node.as_boolean()) {
                l.emplace(key, sourced{b->get() ? "true" : "false", where});
            } else {
                problems += where + ": expected true or false\n";
            }
        } else if (key == "timeout_ms") {
            if (const auto* i = node.as_integer()) {
                l.emplace(key, sourced{std::to_string(i->get()), where});
            } else {
                problems += where + ": expected an integer\n";
            }
        } else if (const auto* s = node.as_string()) {
            std::string v = s->get();
            if (key == "secret_file" && !v.empty() && v.front() != '/') {
                v = (std::filesystem::path(path).parent_path() / v).string();
            }
            l.emplace(key, sourced{v, where});
        } else {
            problems += where + ": expected a string\n";
        }
    }
    if (!problems.empty()) {
        problems.pop_back();
        return error{problems, EINVAL};
    }
    return l;
}

const sourced* pick(std::string_view key, const level& flags, const level& env, const level& file) {
    for (const level* l : {&flags, &env, &file}) {
        if (auto it = l->find(key); it != l->end()) {
            return &it->second;
        }
    }
    return nullptr;
}

error named(const sourced& s, const error& e) {
    return error{s.source + ": " + e.message, EINVAL};
}

result<bool> parse_flag(const sourced& s) {
    if (s.value == "1" || s.value == "true" || s.value == "yes") {
        return true;
    }
    if (s.value == "0" || s.value == "false" || s.value == "no" || s.value.empty()) {
        return false;
    }
    return error{s.source + ": \"" + s.value + "\" is not true or false (1/0, yes/no)", EINVAL};
}

} // namespace

environment process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        return v == nullptr ? std::nullopt : std::optional<std::string>(v);
    };
}

result<cp::bytes32> read_secret_file(const std::string& path, std::string_view source) {
    const std::string where = std::string(source) + ": " + path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return error{where + ": " + std::strerror(errno), errno};
    }
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return error{where + ": " + std::strerror(e), e};
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return error{where + " is not a regular file", EINVAL};
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return error{where + " is open to group or others (mode " + mode + "); a key file must be private: chmod 600 " +
                         path,
                     EPERM};
    }
    std::string text;
    char buf[512];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > 4096) {
            break;
        }
    }
    ::close(fd);
    const auto first = text.find_first_not_of(" \t\r\n");
    const auto last = text.find_last_not_of(" \t\r\n");
    const std::string_view hex =
        first == std::string::npos ? std::string_view{} : std::string_view(text).substr(first, last - first + 1);
    // The same 64 hex digits as a key pin (either case); kcp::key_pin and cp::bytes32 are both 32 bytes.
    auto key = kcp::parse_pin(hex);
    if (!key) {
        return error{where + ": expected 64 hex digits (the 32-byte key), got " + std::to_string(hex.size()) +
                         " characters" + (hex.size() == 64 ? " that are not all hex digits" : ""),
                     EINVAL};
    }
    return *key;
}

result<connection_settings> resolve_settings(const settings_flags& flags, const environment& env,
                                             std::string_view default_config) {
    const level fl = from_flags(flags);
    const level en = from_environment(env);
    level fi;
    std::string config_path;
    std::string config_named_by;
    if (flags.config) {
        config_path = *flags.config;
        config_named_by = "--config";
    } else if (auto c = env("KWIKCTL_CONFIG")) {
        config_path = *c;
        config_named_by = "KWIKCTL_CONFIG";
    } else if (!default_config.empty() && ::access(std::string(default_config).c_str(), F_OK) == 0) {
        config_path = default_config;
        config_named_by = "the default config file";
    }
    if (!config_path.empty()) {
        auto f = from_file(config_path, config_named_by);
        if (!f) {
            return f.failure();
        }
        fi = std::move(*f);
    }

    connection_settings s;
    std::optional<host_port> server;
    if (const sourced* v = pick("server", fl, en, fi)) {
        auto hp = parse_host_port(v->value);
        if (!hp) {
            return named(*v, hp.failure());
        }
        s.server = v->value;
        server = *hp;
    } else {
        s.server = "127.0.0.1:7708";
        server = host_port{"127.0.0.1", 7708};
    }

    // The transport is decided by the highest level that says anything about it.
    bool decided = false;
    for (const level* l : std::initializer_list<const level*>{&fl, &en, &fi}) {
        const auto pin = l->find("pin");
        const auto plain = l->find("insecure_plain");
        bool plain_on = false;
        if (plain != l->end()) {
            auto b = parse_flag(plain->second);
            if (!b) {
                return b.failure();
            }
            plain_on = *b;
        }
        if (pin != l->end() && plain_on) {
            return error{pin->second.source + " and " + plain->second.source +
                             ": give one (a pinned TLS session, or plain TCP on loopback)",
                         EINVAL};
        }
        if (pin != l->end()) {
            auto p = kcp::parse_pin(pin->second.value);
            if (!p) {
                return error{pin->second.source + ": \"" + pin->second.value +
                                 "\" is not a key pin: expected 64 hex digits (the SHA-256 of kwik-cp's public key)",
                             EINVAL};
            }
            s.pin = *p;
            decided = true;
            break;
        }
        if (plain_on) {
            if (!is_loopback_host(server->host)) {
                return error{plain->second.source + ": plain TCP is only for a kwik-cp on loopback; " + s.server +
                                 " is not (give --pin with the server's key pin)",
                             EINVAL};
            }
            decided = true;
            break;
        }
    }
    if (!decided) {
        return error{"no server pin: give --pin (64 hex digits, the SHA-256 of kwik-cp's public key), KWIKCTL_PIN or "
                     "pin in the config file; or --insecure-plain for plain TCP to a kwik-cp on loopback",
                     EINVAL};
    }

    if (const sourced* v = pick("key_id", fl, en, fi)) {
        if (v->value.empty() || v->value.size() > 128) {
            return error{v->source + ": \"" + v->value + "\" is not a key id: 1..128 characters", EINVAL};
        }
        s.key_id = v->value;
    } else {
        return error{"no key id: give --key-id, KWIKCTL_KEY_ID or key_id in the config file (a key of kwik-cp's key "
                     "store with the operator role)",
                     EINVAL};
    }
    if (const sourced* v = pick("secret_file", fl, en, fi)) {
        auto key = read_secret_file(v->value, v->source);
        if (!key) {
            return key.failure();
        }
        s.secret = *key;
        s.secret_source = v->source + " " + v->value;
    } else {
        return error{"no secret: give --secret-file, KWIKCTL_SECRET_FILE or secret_file in the config file (a file "
                     "holding the key's 64 hex digits, mode 0600)",
                     EINVAL};
    }
    if (const sourced* v = pick("client_id", fl, en, fi)) {
        if (v->value.empty() || v->value.size() > 128) {
            return error{v->source + ": \"" + v->value + "\" is not a client id: 1..128 characters", EINVAL};
        }
        s.client_id = v->value;
    }
    if (const sourced* v = pick("timeout_ms", fl, en, fi)) {
        auto ms = parse_unsigned(v->value, 1, 3'600'000);
        if (!ms) {
            return named(*v, ms.failure());
        }
        s.timeout = std::chrono::milliseconds(*ms);
    }
    return s;
}

} // namespace kwik::ctl
