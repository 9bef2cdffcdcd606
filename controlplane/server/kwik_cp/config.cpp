// kwik-cp's configuration file; see config.hpp.
#include "controlplane/server/kwik_cp/config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <toml++/toml.h>

#include "dataplane/kdp/wire.hpp"

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <vector>

namespace kwik::cp {

namespace {

// Collects "source:line: field: what" lines.
class problems {
public:
    explicit problems(std::string_view source) : _source(source) {}
    void add(const toml::node* at, const std::string& field, const std::string& what) {
        _text += _source;
        if (at != nullptr && at->source().begin.line != 0) {
            _text += ":" + std::to_string(at->source().begin.line);
        }
        _text += ": " + field + ": " + what + "\n";
    }
    bool any() const noexcept { return !_text.empty(); }
    std::string text() const { return _text.substr(0, _text.size() - 1); }

private:
    std::string _source;
    std::string _text;
};

// One table's fields: each read at most once; what is left unread is an unknown field.
class table_reader {
public:
    table_reader(const toml::table* t, std::string name, problems& p) : _t(t), _name(std::move(name)), _p(p) {}
    std::optional<std::string> text(std::string_view key) {
        const toml::node* n = take(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (const auto* s = n->as_string()) {
            return s->get();
        }
        _p.add(n, field(key), "expected a string");
        return std::nullopt;
    }
    std::optional<bool> flag(std::string_view key) {
        const toml::node* n = take(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        if (const auto* b = n->as_boolean()) {
            return b->get();
        }
        _p.add(n, field(key), "expected true or false");
        return std::nullopt;
    }
    std::optional<std::uint32_t> number(std::string_view key, std::uint32_t min, std::uint32_t max) {
        const toml::node* n = take(key);
        if (n == nullptr) {
            return std::nullopt;
        }
        const auto* i = n->as_integer();
        if (i == nullptr || i->get() < min || i->get() > max) {
            _p.add(n, field(key), "expected an integer in " + std::to_string(min) + ".." + std::to_string(max));
            return std::nullopt;
        }
        return static_cast<std::uint32_t>(i->get());
    }
    // The field's node as it is (nullptr when absent), marked read; the caller checks it.
    const toml::node* node(std::string_view key) { return take(key); }
    void finish() {
        if (_t == nullptr) {
            return;
        }
        for (const auto& [k, v] : *_t) {
            if (_read.count(std::string(k.str())) == 0) {
                _p.add(&v, field(k.str()), "unknown field");
            }
        }
    }
    std::string field(std::string_view key) const { return _name + "." + std::string(key); }

private:
    const toml::node* take(std::string_view key) {
        _read.insert(std::string(key));
        return _t == nullptr ? nullptr : _t->get(key);
    }
    const toml::table* _t;
    std::string _name;
    problems& _p;
    std::set<std::string> _read;
};

// Hex digits of a 32-byte key or pin, or a file that holds them; problems named under `field`.
std::optional<kcp::key_pin> parse_hex32(const std::string& text, const toml::node* at, const std::string& field,
                                        problems& p) {
    auto parsed = kcp::parse_pin(text);
    if (!parsed) {
        p.add(at, field, "expected 64 hex digits (32 bytes): " + parsed.message());
        return std::nullopt;
    }
    return parsed.value();
}

// [upstream]: the registry this server registers itself with.
upstream_config parse_upstream(const toml::table& t, problems& p) {
    table_reader r(&t, "upstream", p);
    upstream_config u;
    if (auto address = r.text("address")) {
        std::string host;
        std::uint16_t port = 0;
        if (auto ok = parse_listen(*address, "upstream.address", host, port); !ok) {
            p.add(t.get("address"), "upstream.address", ok.message().substr(std::string_view("upstream.address: ").size()));
        } else if (port == 0) {
            p.add(t.get("address"), "upstream.address", "\"" + *address + "\" has port 0");
        } else if (in6_addr a{}; ::inet_pton(AF_INET, host.c_str(), &a) != 1 && ::inet_pton(AF_INET6, host.c_str(), &a) != 1) {
            p.add(t.get("address"), "upstream.address", "\"" + host + "\" is not a numeric IPv4 or IPv6 address");
        }
        u.address = *address;
    } else {
        p.add(&t, "upstream.address", "missing (the registry's numeric address:port)");
    }
    if (auto pin = r.text("pin")) {
        if (*pin != "none") {
            u.pin = parse_hex32(*pin, t.get("pin"), "upstream.pin", p);
        }
    } else {
        p.add(&t, "upstream.pin", "missing (the registry's TLS key pin, 64 hex digits, or \"none\" for plain TCP)");
    }
    if (auto key_id = r.text("key_id"); key_id && !key_id->empty()) {
        u.key_id = *key_id;
    } else {
        p.add(key_id ? t.get("key_id") : &t, "upstream.key_id", "missing (a key with the server role at the registry)");
    }
    const auto secret = r.text("secret");
    const auto secret_file = r.text("secret_file");
    if (secret.has_value() == secret_file.has_value()) {
        p.add(&t, "upstream.secret", "give exactly one of secret (64 hex digits) and secret_file");
    } else if (secret) {
        if (auto k = parse_hex32(*secret, t.get("secret"), "upstream.secret", p)) {
            u.secret = *k;
        }
    } else {
        std::ifstream in(*secret_file, std::ios::binary);
        if (!in) {
            p.add(t.get("secret_file"), "upstream.secret_file", "cannot read \"" + *secret_file + "\"");
        } else {
            std::string text{std::istreambuf_iterator<char>(in), {}};
            while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
                text.pop_back();
            }
            if (auto k = parse_hex32(text, t.get("secret_file"), "upstream.secret_file", p)) {
                u.secret = *k;
            }
        }
    }
    if (auto client_id = r.text("client_id")) {
        u.client_id = *client_id;
    }
    u.heartbeat_interval = std::chrono::milliseconds(r.number("heartbeat_interval_ms", 0, 86'400'000).value_or(0));
    r.finish();
    return u;
}

// [kwik_cp] endpoint, endpoint_directory and pattern_max_bytes: what kwikd connects each
// client session's connection to (api::add_connection_body's endpoint fields).
void parse_endpoint(const toml::table* cp_t, table_reader& r, control_server_config& c, problems& p) {
    const auto endpoint = r.text("endpoint");
    const auto directory = r.text("endpoint_directory");
    const toml::node* pattern_max = r.node("pattern_max_bytes"); // 64 bits: checked below
    if (endpoint) {
        if (*endpoint == "discard") {
            c.endpoint = api::endpoint_kind::discard;
        } else if (*endpoint == "echo") {
            c.endpoint = api::endpoint_kind::echo;
        } else if (*endpoint == "pattern") {
            c.endpoint = api::endpoint_kind::pattern_source;
        } else if (*endpoint == "file_store") {
            c.endpoint = api::endpoint_kind::file_store;
        } else {
            p.add(cp_t->get("endpoint"), "kwik_cp.endpoint",
                  "\"" + *endpoint + "\" is not discard, echo, pattern or file_store");
        }
    }
    const bool store = c.endpoint == api::endpoint_kind::file_store;
    const bool pattern = c.endpoint == api::endpoint_kind::pattern_source;
    if (store && !directory) {
        p.add(cp_t, "kwik_cp.endpoint_directory", "missing (required by endpoint = \"file_store\")");
    } else if (!store && directory) {
        p.add(cp_t->get("endpoint_directory"), "kwik_cp.endpoint_directory",
              "only the file_store endpoint takes a directory");
    } else if (directory) {
        const toml::node* at = cp_t->get("endpoint_directory");
        std::error_code ec;
        if (directory->empty() || directory->front() != '/') {
            p.add(at, "kwik_cp.endpoint_directory", "\"" + *directory + "\" is not an absolute path");
        } else if (directory->size() > max_endpoint_directory) {
            p.add(at, "kwik_cp.endpoint_directory",
                  "is " + std::to_string(directory->size()) + " characters long, above kwikd's " +
                      std::to_string(max_endpoint_directory));
        } else if (directory->find("/../") != std::string::npos || directory->ends_with("/..")) {
            p.add(at, "kwik_cp.endpoint_directory", "\"" + *directory + "\" contains '..'");
        } else if (!std::filesystem::is_directory(*directory, ec)) {
            p.add(at, "kwik_cp.endpoint_directory",
                  "\"" + *directory + "\" is not an existing directory" + (ec ? " (" + ec.message() + ")" : ""));
        } else {
            c.endpoint_directory = *directory;
        }
    }
    if (pattern_max != nullptr) {
        const auto* i = pattern_max->as_integer();
        if (!pattern) {
            p.add(pattern_max, "kwik_cp.pattern_max_bytes", "only the pattern endpoint takes a maximum");
        } else if (i == nullptr || i->get() < 1 || static_cast<std::uint64_t>(i->get()) > kdp::max_stream_offset) {
            p.add(pattern_max, "kwik_cp.pattern_max_bytes",
                  "expected an integer in 1.." + std::to_string(kdp::max_stream_offset));
        } else {
            c.endpoint_length = static_cast<std::uint64_t>(i->get());
        }
    }
}

} // namespace

result<void> parse_listen(std::string_view text, std::string_view field, std::string& address, std::uint16_t& port) {
    const auto bad = [&](const std::string& why) {
        return error{std::string(field) + ": \"" + std::string(text) + "\" " + why, EINVAL};
    };
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        return bad("is not address:port");
    }
    std::string_view host = text.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']') {
            return bad("has an unclosed '['");
        }
        host = host.substr(1, host.size() - 2);
    }
    const std::string_view digits = text.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || end != digits.data() + digits.size() || value > 65535) {
        return bad("has no port in 0..65535 after the last ':'");
    }
    address = std::string(host);
    port = static_cast<std::uint16_t>(value);
    return {};
}

result<control_server_config> parse_control_server_config(std::string_view toml_text, std::string_view source_name,
                                                          bool load_tls) {
    // Also refuses non-ASCII text (toml++ 3.3.0), so it runs before toml::parse; its problems are
    // reported with the others.
    auto keys = parse_key_store(toml_text, source_name, "auth.key");
    if (!keys && keys.message().find("non-ASCII") != std::string::npos) {
        return keys.failure();
    }
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        return error{std::string(source_name) + ":" + std::to_string(e.source().begin.line) + ": " +
                         std::string(e.description()),
                     EINVAL};
    }
    problems p(source_name);
    control_server_config c;
    if (keys) {
        c.keys = std::move(keys.value());
    }

    const toml::table* cp_t = root["kwik_cp"].as_table();
    const toml::table* tls_t = root["tls"].as_table();
    const toml::table* reg_t = root["registry"].as_table();
    const toml::table* to_t = root["timeouts"].as_table();
    const toml::table* up_t = root["upstream"].as_table();
    const toml::table* plan_t = root["planning"].as_table();
    for (const auto& [k, v] : root) {
        const std::string name(k.str());
        if (name != "kwik_cp" && name != "tls" && name != "registry" && name != "timeouts" && name != "auth" &&
            name != "upstream" && name != "planning") {
            p.add(&v, name, "unknown section");
        } else if (!v.is_table()) {
            p.add(&v, name, "expected a table");
        }
    }
    if (const toml::table* auth = root["auth"].as_table()) {
        for (const auto& [k, v] : *auth) {
            if (k.str() != "key") {
                p.add(&v, "auth." + std::string(k.str()), "unknown field");
            }
        }
    }

    table_reader cp_r(cp_t, "kwik_cp", p);
    if (cp_t == nullptr) {
        p.add(nullptr, "kwik_cp", "missing (server_id is required)");
    }
    if (auto id = cp_r.text("server_id")) {
        if (id->empty() || id->size() > 128) {
            p.add(cp_t->get("server_id"), "kwik_cp.server_id", "must be 1..128 characters");
        }
        c.hello.server_id = *id;
        c.self.server_id = *id;
    } else if (cp_t != nullptr) {
        p.add(cp_t, "kwik_cp.server_id", "missing");
    }
    if (auto listen = cp_r.text("listen")) {
        if (auto r = parse_listen(*listen, "kwik_cp.listen", c.listen_address, c.listen_port); !r) {
            p.add(cp_t->get("listen"), "kwik_cp.listen", r.message().substr(std::string_view("kwik_cp.listen: ").size()));
        }
    }
    if (auto region = cp_r.text("kwikd_region")) {
        c.link.region_name = *region;
    }
    if (auto dir = cp_r.text("kwikd_shm_directory")) {
        // Not required to exist yet: systemd creates /run/kwik when kwikd starts, and kwik-cp
        // retries attaching until it is there.
        if (dir->empty() || dir->front() != '/') {
            p.add(cp_t->get("kwikd_shm_directory"), "kwik_cp.kwikd_shm_directory",
                  "'" + *dir + "' is not an absolute path (kwikd's [kwikd] shm_directory)");
        } else {
            c.link.shm_directory = *dir;
        }
    }
    parse_endpoint(cp_t, cp_r, c, p);
    c.max_sessions = cp_r.number("max_sessions", 0, 1'000'000).value_or(c.max_sessions);
    cp_r.finish();

    table_reader tls_r(tls_t, "tls", p);
    const bool tls_on = tls_r.flag("enabled").value_or(true);
    const auto cert = tls_r.text("certificate");
    const auto key = tls_r.text("private_key");
    tls_r.finish();
    if (tls_on && (!cert || !key)) {
        p.add(tls_t, !cert ? "tls.certificate" : "tls.private_key", "missing (TLS is on; enabled = false for plain TCP)");
    }

    table_reader reg_r(reg_t, "registry", p);
    c.registry.expiry_ms = reg_r.number("expiry_ms", 1000, 86'400'000).value_or(c.registry.expiry_ms);
    c.registry.max_results = reg_r.number("max_results", 1, 1000).value_or(8);
    c.registry_sweep_interval =
        std::chrono::milliseconds(reg_r.number("sweep_interval_ms", 10, 3'600'000).value_or(1000));
    c.heartbeat_interval = std::chrono::milliseconds(reg_r.number("heartbeat_interval_ms", 0, 86'400'000).value_or(0));
    reg_r.finish();

    if (up_t != nullptr) {
        c.upstream = parse_upstream(*up_t, p);
    }

    table_reader to_r(to_t, "timeouts", p);
    c.channel.read_timeout = std::chrono::milliseconds(to_r.number("read_ms", 0, 3'600'000).value_or(10'000));
    c.channel.idle_timeout = std::chrono::milliseconds(to_r.number("idle_ms", 0, 86'400'000).value_or(120'000));
    c.hello.challenges.lifetime_ms = to_r.number("challenge_ms", 100, 600'000).value_or(10'000);
    c.link.command_timeout = time_ns{to_r.number("kwikd_command_ms", 10, 600'000).value_or(5'000)} * 1'000'000;
    c.link.retry_interval = time_ns{to_r.number("kwikd_retry_ms", 10, 600'000).value_or(500)} * 1'000'000;
    to_r.finish();

    table_reader plan_r(plan_t, "planning", p);
    planning_config& pl = c.planning;
    pl.enabled = plan_r.flag("enabled").value_or(pl.enabled);
    pl.interval = std::chrono::milliseconds(plan_r.number("interval_ms", 10, 600'000).value_or(1000));
    pl.weight_threshold =
        static_cast<float>(plan_r.number("weight_threshold_percent", 0, 100).value_or(5)) / 100.0f;
    pl.default_path_mbps = plan_r.number("default_path_mbps", 1, 1'000'000).value_or(pl.default_path_mbps);
    pl.health.check_interval_us =
        time_us{plan_r.number("check_interval_ms", 10, 600'000).value_or(1000)} * us_per_ms;
    pl.health.failure_threshold = plan_r.number("failure_threshold", 1, 1000).value_or(pl.health.failure_threshold);
    pl.health.recovery_threshold = plan_r.number("recovery_threshold", 1, 1000).value_or(pl.health.recovery_threshold);
    plan_r.finish();

    if (p.any() || !keys) {
        std::string text = p.any() ? p.text() : std::string();
        if (!keys) {
            text += (text.empty() ? "" : "\n") + keys.message();
        }
        return error{text, EINVAL};
    }
    const bool v6 = c.listen_address.find(':') != std::string::npos;
    c.self.server.set_address((v6 ? "[" + c.listen_address + "]" : c.listen_address) + ":" +
                              std::to_string(c.listen_port)); // port 0: control_server puts the bound one
    if (tls_on && load_tls) {
        auto identity = kcp::load_or_create_identity(*cert, *key);
        if (!identity) {
            return error{std::string(source_name) + ": tls: " + identity.message(), identity.code()};
        }
        auto pin = kcp::pin_of_pem(identity->certificate_pem);
        if (pin) {
            c.self.server.set_tls_pubkey_hash_sha256(std::string(pin->begin(), pin->end()));
        }
        c.tls = std::move(identity.value());
    }
    return c;
}

} // namespace kwik::cp
