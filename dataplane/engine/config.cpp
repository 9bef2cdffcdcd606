// kwikd's configuration. The file is read with toml++ (which keeps every node's file and line),
// command-line overrides are parsed into the same document, then one pass reads and checks the
// whole document into kwikd_config, collecting every problem rather than stopping at the first.
// Each problem names the field as the file writes it ("port[1].mtu") and where its value came
// from ("deploy/kwikd.toml:14", or the command-line option for an override).
#include "dataplane/engine/config.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include "dataplane/api/commands.hpp"
#include "drivers/af_xdp/xdp_object_path.hpp"

namespace kwik::engine {

namespace {

constexpr std::uint64_t max_path_id = kdp::varint_max; // ACK frames carry path ids as varints
constexpr std::uint32_t min_auto_mbufs = 16383;        // 2^n - 1: the size mempools fill best
constexpr std::uint64_t max_mbufs = 16777215;
// One mbuf in a pool of the default data room: 128 (struct rte_mbuf) + 2176
// (RTE_MBUF_DEFAULT_BUF_SIZE) + 64 (mempool object header, cache-line aligned).
constexpr std::uint64_t mbuf_footprint = 2368;
constexpr std::size_t max_name_length = 32;

// ---------------------------------------------------------------- small parsers

std::string_view type_name(const toml::node& n) noexcept {
    switch (n.type()) {
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a floating-point number";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

// Text from the file as a message shows it: control characters escaped, so that one problem
// stays one line.
std::string printable(std::string_view s) {
    std::string out;
    for (const char ch : s) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", u);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

// toml++ 3.3.0 reaches TOML_UNREACHABLE (undefined behaviour) when it tests a non-ASCII
// character for whitespace: one outside a string or comment (marzer/tomlplusplus#295; such a
// file is not valid TOML anyway), or the first character after a line-ending backslash in a
// multi-line basic string (#190). Finds the first such character, so that parse_config refuses
// the file before toml++ reads it. Fixed upstream after 3.3.0; drop this with a newer toml++.
// A quote opens a string only where toml++ would start a key or a value with it (at the start of
// a line, after '=', ',', '{', '.', or a '[' that itself starts an array or a table header):
// elsewhere toml++ reads it as part of a bare token ("0[\"..." is one invalid value), and tests
// the characters after it for whitespace too (found by engine_config_fuzz).
std::optional<std::size_t> toml_unsafe_character(std::string_view t) noexcept {
    enum class state : std::uint8_t { normal, comment, basic, literal, ml_basic, ml_literal };
    state st = state::normal;
    bool after_line_backslash = false; // in ml_basic, skipping whitespace after "\<newline>"
    bool token_start = true;           // in normal: a key or a value may start here
    for (std::size_t i = 0; i < t.size(); ++i) {
        const char ch = t[i];
        const bool non_ascii = (static_cast<unsigned char>(ch) & 0x80) != 0;
        const auto starts = [&](std::string_view s) { return t.substr(i, s.size()) == s; };
        switch (st) {
        case state::normal:
            if (non_ascii) {
                return i;
            }
            if (ch == '#') {
                st = state::comment;
            } else if (ch == ' ' || ch == '\t' || ch == '\r') {
                // token_start unchanged
            } else if (ch == '\n' || ch == '=' || ch == ',' || ch == '{' || ch == '.') {
                token_start = true;
            } else if (ch == '[') {
                // an array or a table header where a token may start; else part of a bare token
            } else if (!token_start) {
                // a bare token goes on: a quote here does not open a string for toml++
            } else if (starts("\"\"\"")) {
                st = state::ml_basic;
                i += 2;
            } else if (starts("'''")) {
                st = state::ml_literal;
                i += 2;
            } else if (ch == '"') {
                st = state::basic;
            } else if (ch == '\'') {
                st = state::literal;
            } else {
                token_start = false;
            }
            break;
        case state::comment:
            if (ch == '\n') {
                st = state::normal;
                token_start = true;
            }
            break;
        case state::basic:
            if (ch == '\\') {
                ++i;
            } else if (ch == '"' || ch == '\n') {
                st = state::normal;
                token_start = ch == '\n'; // after a string: its key or value has ended
            }
            break;
        case state::literal:
            if (ch == '\'' || ch == '\n') {
                st = state::normal;
                token_start = ch == '\n';
            }
            break;
        case state::ml_basic:
            if (after_line_backslash) {
                if (non_ascii) {
                    return i;
                }
                if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
                    after_line_backslash = false;
                }
            }
            if (starts("\"\"\"")) {
                st = state::normal;
                i += 2;
                token_start = false;
                while (i + 1 < t.size() && t[i + 1] == '"') { // up to two quotes may end the string
                    ++i;
                }
            } else if (ch == '\\') {
                std::size_t j = i + 1;
                while (j < t.size() && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) {
                    ++j;
                }
                if (j < t.size() && t[j] == '\n') {
                    after_line_backslash = true;
                    i = j;
                } else {
                    ++i;
                }
            }
            break;
        case state::ml_literal:
            if (starts("'''")) {
                st = state::normal;
                i += 2;
                token_start = false;
                while (i + 1 < t.size() && t[i + 1] == '\'') {
                    ++i;
                }
            }
            break;
        }
    }
    return std::nullopt;
}

// 1-based line and column of byte offset pos.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view t, std::size_t pos) noexcept {
    const std::string_view before = t.substr(0, pos);
    const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    const std::size_t line_start = before.rfind('\n');
    return {line, pos - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1};
}

std::string in_quotes(std::string_view s) {
    return "'" + printable(s) + "'";
}

// IPv4 dotted quad or IPv6 text. An IPv4-mapped IPv6 literal (::ffff:10.0.0.1) is refused: the
// engine holds IPv4 that way, so it would silently become the IPv4 address.
std::optional<ip_address> parse_ip(std::string_view text) {
    if (text.empty() || text.size() > 64) {
        return std::nullopt;
    }
    const std::string s(text);
    std::uint8_t b[16] = {};
    if (inet_pton(AF_INET, s.c_str(), b) == 1) {
        return ip_address::v4(b);
    }
    if (inet_pton(AF_INET6, s.c_str(), b) == 1) {
        const ip_address a = ip_address::v6(b);
        if (a.is_v4()) {
            return std::nullopt;
        }
        return a;
    }
    return std::nullopt;
}

template <class T>
bool parse_decimal(std::string_view s, T& out) {
    if (s.empty()) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size();
}

// "10.0.0.1/24", "fd00::1/64". The message says what is wrong, naming the text.
std::variant<ip_prefix, std::string> parse_prefix(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::string_view addr = text.substr(0, slash);
    const std::optional<ip_address> a = parse_ip(addr);
    if (!a) {
        return in_quotes(text) + ": " + in_quotes(addr) + " is not an IP address";
    }
    if (slash == std::string_view::npos) {
        return in_quotes(text) + " has no prefix length (write " + std::string(text) + (a->is_v4() ? "/24" : "/64") +
               ", say)";
    }
    const unsigned max_len = a->is_v4() ? 32 : 128;
    unsigned len = 0;
    if (!parse_decimal(text.substr(slash + 1), len)) {
        return in_quotes(text) + ": " + in_quotes(text.substr(slash + 1)) + " is not a prefix length";
    }
    if (len == 0 || len > max_len) {
        return in_quotes(text) + ": prefix length " + std::to_string(len) + " is not in 1-" + std::to_string(max_len);
    }
    return ip_prefix{*a, static_cast<std::uint8_t>(len)};
}

// "10.0.0.1:7707", "[fd00::1]:7707".
std::variant<udp_endpoint, std::string> parse_endpoint(std::string_view text) {
    std::string_view addr;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return in_quotes(text) + " has no closing ']'";
        }
        addr = text.substr(1, close - 1);
        if (close + 1 == text.size()) {
            return in_quotes(text) + " has no UDP port (write " + std::string(text) + ":7707, say)";
        }
        if (text[close + 1] != ':') {
            return in_quotes(text) + ": expected ':' and a UDP port after ']'";
        }
        port = text.substr(close + 2);
        const std::optional<ip_address> a = parse_ip(addr);
        if (!a || a->is_v4()) {
            return in_quotes(text) + ": " + in_quotes(addr) + " is not an IPv6 address";
        }
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            if (parse_ip(text)) {
                return in_quotes(text) + " has no UDP port (write " + std::string(text) + ":7707, say)";
            }
            return in_quotes(text) + " is not an IP address and UDP port (such as 10.0.0.2:7707)";
        }
        if (text.find(':') != colon) {
            return in_quotes(text) + ": write an IPv6 address in brackets, such as [fd00::2]:7707";
        }
        addr = text.substr(0, colon);
        port = text.substr(colon + 1);
        const std::optional<ip_address> a = parse_ip(addr);
        if (!a) {
            return in_quotes(text) + ": " + in_quotes(addr) + " is not an IP address";
        }
    }
    unsigned p = 0;
    if (!parse_decimal(port, p) || p == 0 || p > 65535) {
        return in_quotes(text) + ": UDP port " + in_quotes(port) + " is not in 1-65535";
    }
    return udp_endpoint{*parse_ip(addr), static_cast<std::uint16_t>(p)};
}

// "1-3,5" -> {1, 2, 3, 5}. Order kept as written.
std::variant<std::vector<unsigned>, std::string> parse_lcore_list(std::string_view text) {
    std::vector<unsigned> out;
    const std::string example = " (write lcore ids and ranges such as \"1-3,5\")";
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = std::min(text.find(',', pos), text.size());
        const std::string_view item = text.substr(pos, comma - pos);
        const std::size_t dash = item.find('-');
        unsigned lo = 0;
        unsigned hi = 0;
        if (dash == std::string_view::npos) {
            if (!parse_decimal(item, lo)) {
                return in_quotes(text) + " is not a list of lcore ids" + example;
            }
            hi = lo;
        } else if (!parse_decimal(item.substr(0, dash), lo) || !parse_decimal(item.substr(dash + 1), hi)) {
            return in_quotes(text) + " is not a list of lcore ids" + example;
        } else if (hi < lo) {
            return in_quotes(text) + ": range " + std::string(item) + " ends below its start";
        }
        if (hi >= max_lcores) {
            return std::to_string(hi) + " is above the highest lcore id " + std::to_string(max_lcores - 1);
        }
        for (unsigned l = lo; l <= hi; ++l) {
            out.push_back(l);
        }
        pos = comma + 1;
    }
    return out;
}

std::string normalised_device_name(std::string_view device, device_kind kind) {
    std::string name(device_name(device));
    if (kind == device_kind::pci) {
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (name.size() == 7) { // bus:device.function without the domain
            name = "0000:" + name;
        }
    }
    return name;
}

bool is_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

// 0000:3b:00.0 or 3b:00.0.
bool is_pci_address(std::string_view s) {
    if (s.size() == 12) {
        if (!is_hex(s.substr(0, 4)) || s[4] != ':') {
            return false;
        }
        s.remove_prefix(5);
    }
    return s.size() == 7 && is_hex(s.substr(0, 2)) && s[2] == ':' && is_hex(s.substr(3, 2)) && s[5] == '.' &&
           s[6] >= '0' && s[6] <= '7';
}

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(), [s](std::string_view p) { return s.starts_with(p); });
}

// A device spec: its kind, or what is wrong with it.
std::variant<device_kind, std::string> classify_device(std::string_view device) {
    const std::string_view name = device_name(device);
    if (device.empty()) {
        return std::string("is empty");
    }
    device_kind kind = device_kind::vdev;
    if (is_pci_address(name)) {
        kind = device_kind::pci;
    } else {
        const bool word =
            std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
        if (!word || !starts_with_any(name, {"net_", "eth_", "virtio_user"}) || name.size() > 63) {
            return in_quotes(device) + " is neither a PCI address (such as 0000:3b:00.0) nor a DPDK virtual "
                                       "network device (net_ring0, net_pcap0,rx_pcap=FILE,tx_pcap=FILE, "
                                       "net_tap0,iface=kwik0, net_af_packet0,iface=veth0, ...)";
        }
    }
    std::size_t pos = name.size();
    while (pos < device.size()) {
        const std::size_t next = std::min(device.find(',', pos + 1), device.size());
        if (next == pos + 1) {
            return in_quotes(device) + " has an empty device argument";
        }
        pos = next;
    }
    if (!device.empty() && device.back() == ',') {
        return in_quotes(device) + " has an empty device argument";
    }
    return kind;
}

// Every string here ends up in a C API (EAL's argv, a device name, a path): no NUL, no control
// characters.
bool has_control_character(std::string_view s) noexcept {
    return std::any_of(s.begin(), s.end(), [](char ch) {
        const auto u = static_cast<unsigned char>(ch);
        return u < 0x20 || u == 0x7F;
    });
}

bool valid_name(std::string_view s, std::size_t max_length, std::string_view extra) {
    return !s.empty() && s.size() <= max_length && std::all_of(s.begin(), s.end(), [extra](unsigned char c) {
        return std::isalnum(c) != 0 || extra.find(static_cast<char>(c)) != std::string_view::npos;
    });
}

// EAL options kwikd sets itself from its own keys; in kwikd.eal_args or after "--" they would
// contradict them. Returns the keys that own the option, or "" when the argument is free.
std::string_view owned_eal_option(std::string_view arg) {
    const auto is = [arg](std::string_view opt) {
        if (arg == opt) {
            return true;
        }
        if (opt.starts_with("--")) {
            return arg.starts_with(opt) && arg.size() > opt.size() && arg[opt.size()] == '=';
        }
        return arg.starts_with(opt) && arg.size() > opt.size(); // -l0-3, -m256
    };
    if (is("-l") || is("-c") || is("--lcores") || is("--main-lcore") || is("--master-lcore")) {
        return "kwikd.main_lcore and kwikd.worker_lcores";
    }
    if (is("--file-prefix")) {
        return "kwikd.name";
    }
    if (is("--no-huge") || is("-m")) {
        return "kwikd.hugepages and kwikd.memory_mb";
    }
    if (is("--no-pci")) {
        return "the [[port]] devices (kwikd adds --no-pci when no port is a PCI device)";
    }
    return {};
}

// ---------------------------------------------------------------- problem collection

// Where a value came from: a file and line, or a command-line option (line 0).
struct origin {
    std::string text; // "deploy/kwikd.toml:12", "--set", "deploy/kwikd.toml"
    std::uint32_t line = 0;
};

class checker {
public:
    explicit checker(std::string source) : _source(source.empty() ? "command line" : std::move(source)) {}

    // Where a node's value came from: "FILE:LINE", or the option of a command-line override.
    origin where(const toml::node* at) const {
        if (at != nullptr) {
            const toml::source_region& r = at->source();
            if (r.path && !r.path->empty()) {
                if (r.path->starts_with("--")) {
                    return {*r.path, 0};
                }
                return {*r.path + ":" + std::to_string(r.begin.line), r.begin.line};
            }
            if (const auto it = _created.find(at); it != _created.end()) {
                return {it->second, 0};
            }
        }
        return {_source, 0};
    }
    origin where(const toml::key& k, const toml::node& value) const {
        const toml::source_region& r = k.source();
        if (r.path && !r.path->empty() && !r.path->starts_with("--")) {
            return {*r.path + ":" + std::to_string(r.begin.line), r.begin.line};
        }
        return where(&value);
    }

    void fail(const toml::node* at, std::string_view field, std::string_view what) { add(where(at), field, what); }
    void add(const origin& o, std::string_view field, std::string_view what) {
        std::string m = o.text + ": ";
        if (!field.empty()) {
            m += field;
            m += ": ";
        }
        m += what;
        _problems.push_back({o.line, std::move(m)});
    }

    void created(const toml::node* n, std::string origin) { _created[n] = std::move(origin); }
    std::size_t count() const noexcept { return _problems.size(); }
    // One per line: those with a file line in line order, then the rest in the order found.
    std::string message() const {
        std::vector<problem> sorted = _problems;
        std::stable_sort(sorted.begin(), sorted.end(), [](const problem& a, const problem& b) {
            return (a.line == 0 ? UINT32_MAX : a.line) < (b.line == 0 ? UINT32_MAX : b.line);
        });
        std::string out;
        for (const problem& p : sorted) {
            out += out.empty() ? "" : "\n";
            out += p.text;
        }
        return out;
    }

private:
    struct problem {
        std::uint32_t line;
        std::string text;
    };
    std::string _source;
    std::vector<problem> _problems;
    std::unordered_map<const toml::node*, std::string> _created;
};

// Reads the keys of one table, reporting every problem under "<prefix>.<key>".
class table_reader {
public:
    table_reader(checker& c, const toml::table& t, std::string prefix) : _c(c), _t(t), _prefix(std::move(prefix)) {}

    const toml::node* node(std::string_view key) const { return _t.get(key); }
    // The node to cite for key: its value, or the table when the key is absent.
    const toml::node* at(std::string_view key) const {
        const toml::node* n = _t.get(key);
        return n != nullptr ? n : &_t;
    }
    std::string field(std::string_view key) const { return _prefix + "." + std::string(key); }
    const std::string& prefix() const noexcept { return _prefix; }

    void known_keys(std::initializer_list<std::string_view> keys, std::string_view section) {
        for (const auto& [k, v] : _t) {
            if (std::find(keys.begin(), keys.end(), k.str()) != keys.end()) {
                continue;
            }
            std::string list;
            for (std::string_view known : keys) {
                list += list.empty() ? "" : ", ";
                list += known;
            }
            _c.add(_c.where(k, v), field(printable(k.str())),
                   "unknown key (the keys of " + std::string(section) + " are " + list + ")");
        }
    }

    void fail(std::string_view key, std::string_view what) { _c.fail(at(key), field(key), what); }

    // An integer node checked against [min, max]; field names it in messages.
    static std::optional<std::uint64_t> integer_of(checker& c, const toml::node& n, std::string_view field,
                                                   std::uint64_t min, std::uint64_t max) {
        const auto* v = n.as_integer();
        if (v == nullptr) {
            c.fail(&n, field, "expected an integer, got " + std::string(type_name(n)));
            return std::nullopt;
        }
        const std::int64_t x = v->get();
        if (x < 0 || static_cast<std::uint64_t>(x) < min) {
            c.fail(&n, field, std::to_string(x) + " is below " + std::to_string(min));
            return std::nullopt;
        }
        if (static_cast<std::uint64_t>(x) > max) {
            c.fail(&n, field, std::to_string(x) + " is above " + std::to_string(max));
            return std::nullopt;
        }
        return static_cast<std::uint64_t>(x);
    }

    // Present and valid: out set, true. Absent: out unchanged, false. Invalid: reported, false.
    template <class T>
    bool integer(std::string_view key, T& out, std::uint64_t min, std::uint64_t max) {
        const toml::node* n = node(key);
        if (n == nullptr) {
            return false;
        }
        const std::optional<std::uint64_t> v = integer_of(_c, *n, field(key), min, max);
        if (v) {
            out = static_cast<T>(*v);
        }
        return v.has_value();
    }

    bool boolean(std::string_view key, bool& out) {
        const toml::node* n = node(key);
        if (n == nullptr) {
            return false;
        }
        if (const auto* b = n->as_boolean()) {
            out = b->get();
            return true;
        }
        fail(key, "expected true or false, got " + std::string(type_name(*n)));
        return false;
    }

    bool string(std::string_view key, std::string& out) {
        const toml::node* n = node(key);
        if (n == nullptr) {
            return false;
        }
        if (const auto* s = n->as_string()) {
            if (has_control_character(s->get())) {
                fail(key, "contains a control character");
                return false;
            }
            out = s->get();
            return true;
        }
        fail(key, "expected a string, got " + std::string(type_name(*n)));
        return false;
    }

    template <class E, std::size_t N>
    bool choice(std::string_view key, E& out, const std::array<std::pair<std::string_view, E>, N>& names) {
        const toml::node* n = node(key);
        if (n == nullptr) {
            return false;
        }
        std::string list;
        for (const auto& [name, value] : names) {
            list += list.empty() ? "" : ", ";
            list += name;
        }
        const auto* s = n->as_string();
        if (s == nullptr) {
            fail(key, "expected a string (one of " + list + "), got " + std::string(type_name(*n)));
            return false;
        }
        for (const auto& [name, value] : names) {
            if (s->get() == name) {
                out = value;
                return true;
            }
        }
        fail(key, in_quotes(s->get()) + " is not one of " + list);
        return false;
    }

    // A list key: an array, or (one_allowed) a single value standing for a list of one. Calls
    // each(node, field) per element; field is "<key>[i]" for arrays and "<key>" otherwise.
    template <class F>
    bool list(std::string_view key, bool one_allowed, std::string_view expected, F&& each) {
        const toml::node* n = node(key);
        if (n == nullptr) {
            return false;
        }
        if (const auto* arr = n->as_array()) {
            for (std::size_t i = 0; i < arr->size(); ++i) {
                each(*arr->get(i), field(key) + "[" + std::to_string(i) + "]");
            }
            return true;
        }
        if (one_allowed && !n->is_table()) {
            each(*n, field(key));
            return true;
        }
        fail(key, "expected " + std::string(expected) + ", got " + std::string(type_name(*n)));
        return false;
    }

private:
    checker& _c;
    const toml::table& _t;
    std::string _prefix;
};

// ---------------------------------------------------------------- names

constexpr std::array<std::pair<std::string_view, log_level>, 8> log_level_names{{
    {"emergency", log_level::emergency},
    {"alert", log_level::alert},
    {"critical", log_level::critical},
    {"error", log_level::error},
    {"warning", log_level::warning},
    {"notice", log_level::notice},
    {"info", log_level::info},
    {"debug", log_level::debug},
}};

constexpr std::array<std::pair<std::string_view, poll_mode>, 2> poll_mode_names{{
    {"busy", poll_mode::busy},
    {"adaptive", poll_mode::adaptive},
}};

constexpr std::array<std::pair<std::string_view, hugepage_size>, 2> hugepage_size_names{{
    {"2M", hugepage_size::size_2m},
    {"1G", hugepage_size::size_1g},
}};

constexpr std::array<std::pair<std::string_view, transport::cc_algorithm>, 2> cc_names{{
    {"cubic", transport::cc_algorithm::cubic},
    {"newreno", transport::cc_algorithm::newreno},
}};

constexpr std::array<std::pair<std::string_view, transport::schedule_strategy>, 4> scheduler_names{{
    {"min_rtt", transport::schedule_strategy::min_rtt},
    {"weighted", transport::schedule_strategy::weighted},
    {"round_robin", transport::schedule_strategy::round_robin},
    {"redundant", transport::schedule_strategy::redundant},
}};

constexpr std::array<std::pair<std::string_view, transport::role>, 2> role_names{{
    {"server", transport::role::server},
    {"client", transport::role::client},
}};

constexpr std::array<std::pair<std::string_view, stream_endpoint>, 4> endpoint_names{{
    {"discard", stream_endpoint::discard},
    {"echo", stream_endpoint::echo},
    {"pattern", stream_endpoint::pattern},
    {"file_store", stream_endpoint::file_store},
}};

template <class E, std::size_t N>
std::string_view name_of(E value, const std::array<std::pair<std::string_view, E>, N>& names) noexcept {
    for (const auto& [name, v] : names) {
        if (v == value) {
            return name;
        }
    }
    return "invalid";
}

// ---------------------------------------------------------------- sections

// The source positions of what cross-section checks cite.
struct positions {
    const toml::node* memory_mb = nullptr;
    const toml::node* limits = nullptr;
    bool mbufs_given = false;
    bool workers_valid = true;
};

void check_eal_args(checker& c, const toml::node* at, const std::string& field, std::string_view arg) {
    const std::string_view owner = owned_eal_option(arg);
    if (!owner.empty()) {
        c.fail(at, field, in_quotes(arg) + " is set by kwikd from " + std::string(owner));
    }
}

void read_kwikd(checker& c, const toml::table& t, daemon_settings& d, positions& pos) {
    table_reader r(c, t, "kwikd");
    r.known_keys({"name", "log_level", "main_lcore", "worker_lcores", "hugepages", "hugepage_size", "memory_mb", "eal_args",
                  "stats_interval_ms", "shm_mode", "shm_directory", "shm_group", "poll_mode", "idle_sleep_max_us"},
                 "[kwikd]");
    if (r.string("name", d.name) && !valid_name(d.name, max_name_length, "_-")) {
        r.fail("name", in_quotes(d.name) + " may hold only letters, digits, '_' and '-' (1 to " +
                           std::to_string(max_name_length) + " of them)");
    }
    r.choice("log_level", d.level, log_level_names);
    const bool main_valid = r.integer("main_lcore", d.main_lcore, 0, max_lcores - 1) || r.node("main_lcore") == nullptr;

    if (const toml::node* n = r.node("worker_lcores")) {
        const std::size_t before = c.count();
        std::vector<unsigned> lcores;
        if (const auto* s = n->as_string()) {
            auto parsed = parse_lcore_list(s->get());
            if (auto* err = std::get_if<std::string>(&parsed)) {
                r.fail("worker_lcores", *err);
            } else {
                lcores = std::get<0>(std::move(parsed));
            }
        } else {
            r.list("worker_lcores", true, "an array of lcore ids or a string such as \"1-3,5\"",
                   [&](const toml::node& e, const std::string& f) {
                       if (e.is_string()) {
                           c.fail(&e, f, "expected an integer lcore id, got a string");
                           return;
                       }
                       if (const auto v = table_reader::integer_of(c, e, f, 0, max_lcores - 1)) {
                           lcores.push_back(static_cast<unsigned>(*v));
                       }
                   });
        }
        if (c.count() == before) {
            std::set<unsigned> seen;
            for (unsigned l : lcores) {
                if (!seen.insert(l).second) {
                    r.fail("worker_lcores", "lcore " + std::to_string(l) + " is listed twice");
                }
            }
            if (lcores.empty()) {
                r.fail("worker_lcores", "at least one worker lcore is required");
            }
            d.worker_lcores = std::move(lcores);
        }
        pos.workers_valid = c.count() == before;
    }
    if (main_valid && pos.workers_valid) {
        for (unsigned l : d.worker_lcores) {
            if (l == d.main_lcore) {
                c.fail(r.at("worker_lcores"), "kwikd.worker_lcores",
                       "lcore " + std::to_string(l) +
                           " is the main lcore (kwikd.main_lcore), which does housekeeping only");
            }
        }
    }

    r.boolean("hugepages", d.hugepages);
    r.choice("hugepage_size", d.page_size, hugepage_size_names);
    pos.memory_mb = r.node("memory_mb");
    std::uint32_t memory = 0;
    if (r.integer("memory_mb", memory, 64, 1048576)) {
        d.memory_mb = memory;
    }
    r.list("eal_args", false, "an array of strings", [&](const toml::node& e, const std::string& f) {
        const auto* s = e.as_string();
        if (s == nullptr) {
            c.fail(&e, f, "expected a string, got " + std::string(type_name(e)));
            return;
        }
        if (has_control_character(s->get())) {
            c.fail(&e, f, "contains a control character");
            return;
        }
        check_eal_args(c, &e, f, s->get());
        d.eal_args.push_back(s->get());
    });
    r.choice("poll_mode", d.polling, poll_mode_names);
    r.integer("idle_sleep_max_us", d.idle_sleep_max_us, 1, max_idle_sleep_us);
    if (r.integer("stats_interval_ms", d.stats_interval_ms, 0, 3600000) && d.stats_interval_ms != 0 &&
        d.stats_interval_ms < 10) {
        r.fail("stats_interval_ms", std::to_string(d.stats_interval_ms) + " is below 10 (0 turns it off)");
    }
    if (const toml::node* n = r.node("shm_mode")) {
        const std::string octal_hint = " is not a file mode in octal such as \"0600\"";
        if (const auto* s = n->as_string()) {
            const std::string& text = s->get();
            unsigned mode = 0;
            const bool octal = !text.empty() && text.size() <= 4 &&
                               std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '7'; });
            if (octal) {
                std::from_chars(text.data(), text.data() + text.size(), mode, 8);
            }
            if (!octal || mode > 0777) {
                r.fail("shm_mode", in_quotes(text) + octal_hint);
            } else {
                d.shm_mode = mode;
            }
        } else if (const auto* i = n->as_integer();
                   i != nullptr && (i->flags() & toml::value_flags::format_as_octal) != toml::value_flags::none) {
            if (i->get() < 0 || i->get() > 0777) {
                char digits[32];
                const auto end = std::to_chars(digits, digits + sizeof digits, i->get(), 8).ptr;
                r.fail("shm_mode", "0o" + std::string(digits, end) + " is above 0o777");
            } else {
                d.shm_mode = static_cast<std::uint32_t>(i->get());
            }
        } else if (n->is_integer()) {
            r.fail("shm_mode", std::to_string(n->as_integer()->get()) + octal_hint +
                                   " (a decimal integer is ambiguous: write \"0600\" or 0o600)");
        } else {
            r.fail("shm_mode", "expected a string such as \"0600\", got " + std::string(type_name(*n)));
        }
    }
    if (r.string("shm_directory", d.shm_directory)) {
        struct stat st {};
        if (d.shm_directory.empty() || d.shm_directory.front() != '/') {
            r.fail("shm_directory", in_quotes(d.shm_directory) + " is not an absolute path");
        } else if (::stat(d.shm_directory.c_str(), &st) != 0) {
            r.fail("shm_directory", in_quotes(d.shm_directory) + ": " + std::strerror(errno) +
                                        " (systemd's RuntimeDirectory= creates /run/kwik for kwikd.service)");
        } else if (!S_ISDIR(st.st_mode)) {
            r.fail("shm_directory", in_quotes(d.shm_directory) + " is not a directory");
        }
    }
    if (r.string("shm_group", d.shm_group) && !d.shm_group.empty() && !group_id(d.shm_group)) {
        r.fail("shm_group", in_quotes(d.shm_group) + " is not a group on this system (groupadd --system " +
                                d.shm_group + ", or leave it out to keep kwikd's own group)");
    }
}

bool power_of_two(std::uint64_t x) noexcept {
    return x != 0 && (x & (x - 1)) == 0;
}

// port[i].gateway (IPv4) or gateway6 (IPv6): an address of the key's family on one of the
// port's prefixes of that family, and not the port's own.
void read_gateway(table_reader& r, std::string_view key, bool v4, const port_settings& p,
                  std::optional<ip_address>& out) {
    std::string text;
    if (!r.string(key, text)) {
        return;
    }
    const std::optional<ip_address> a = parse_ip(text);
    const std::string family = v4 ? "IPv4" : "IPv6";
    if (!a || a->is_v4() != v4) {
        r.fail(key, in_quotes(text) + " is not an " + family + " address" +
                        (a ? std::string(" (the ") + (v4 ? "IPv6 gateway is gateway6" : "IPv4 gateway is gateway") + ")"
                           : std::string()));
        return;
    }
    std::string prefixes;
    for (const ip_prefix& own : p.addresses) {
        if (own.address.is_v4() != v4) {
            continue;
        }
        if (own.address == *a) {
            r.fail(key, text + " is the port's own address");
            return;
        }
        if (prefix_holds(own.address, own.length, *a)) {
            // The all-zeros and all-ones hosts of an IPv4 subnet are no router's address.
            const std::uint32_t host = own.length >= 31 ? 0 : ~std::uint32_t{0} >> own.length;
            if (v4 && host != 0 && ((a->v4_host() & host) == 0 || (a->v4_host() & host) == host)) {
                r.fail(key, text + " is the " + ((a->v4_host() & host) == 0 ? "network" : "broadcast") +
                                " address of " + to_string(own));
                return;
            }
            out = *a;
            return;
        }
        prefixes += (prefixes.empty() ? "" : ", ") + to_string(own);
    }
    r.fail(key, text + " is not on the port's " + family + " prefixes (" +
                    (prefixes.empty() ? "port[].addresses has none" : prefixes) + "): a gateway must be on-link");
}

// A net_af_xdp port (drivers/af_xdp/README.md): the PMD loads our XDP program itself
// (xdp_prog=, from port[].xdp_program) and binds one AF_XDP socket per queue from start_queue
// (default 0) for queue_count queues (default rx_queues). Its tx queue i is the socket of rx queue
// i, so every worker's tx queue needs its rx queue: rx_queues must equal the worker lcores.
// Whether iface exists is not checked here (the configuration may be checked on another host).
void read_af_xdp(table_reader& r, port_settings& p, const daemon_settings& d, const positions& pos) {
    const bool af_xdp = p.kind == device_kind::vdev && device_name(p.device).starts_with("net_af_xdp");
    const bool keyed = r.string("xdp_program", p.xdp_program);
    if (!af_xdp) {
        if (keyed) {
            r.fail("xdp_program", "only for a net_af_xdp device (device is " + in_quotes(p.device) + ")");
        }
        p.xdp_program.clear();
        return;
    }
    const std::string given = p.device; // as written, for the messages
    std::map<std::string, std::string, std::less<>> args;
    const std::string_view name = device_name(p.device);
    for (std::size_t pos_ = name.size(); pos_ < p.device.size();) {
        const std::size_t next = std::min(p.device.find(',', pos_ + 1), p.device.size());
        const std::string_view arg = std::string_view(p.device).substr(pos_ + 1, next - pos_ - 1);
        const std::size_t eq = arg.find('=');
        args[std::string(arg.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(arg.substr(eq + 1));
        pos_ = next;
    }
    if (args.find("iface") == args.end() || args["iface"].empty()) {
        r.fail("device", in_quotes(given) + ": net_af_xdp needs iface=<kernel interface>");
    }
    if (const auto it = args.find("xdp_prog"); it != args.end()) {
        if (keyed && it->second != p.xdp_program) {
            r.fail("xdp_program", in_quotes(p.xdp_program) + " differs from the device's xdp_prog=" + it->second);
            return;
        }
        p.xdp_program = it->second;
    } else {
        if (!keyed) {
            p.xdp_program = KWIK_XDP_OBJECT_PATH;
        }
        p.device += ",xdp_prog=" + p.xdp_program;
    }
    if (p.xdp_program.empty() || ::access(p.xdp_program.c_str(), R_OK) != 0) {
        r.fail("xdp_program",
               in_quotes(p.xdp_program) + (keyed ? "" : " (the default)") + " (the XDP object file) is not readable: " +
                   (p.xdp_program.empty() ? std::string("empty") : std::string(std::strerror(errno))) +
                   " (built as drivers/af_xdp/kwik_xdp.o, installed as " KWIK_XDP_OBJECT_PATH ")");
    }
    if (args.find("start_queue") == args.end()) {
        p.device += ",start_queue=0";
    }
    if (const auto it = args.find("queue_count"); it != args.end()) {
        if (it->second != std::to_string(p.rx_queues)) {
            r.fail("device", in_quotes(given) + ": queue_count=" + it->second + " differs from rx_queues " +
                                 std::to_string(p.rx_queues) + " (one AF_XDP socket per rx queue)");
        }
    } else {
        p.device += ",queue_count=" + std::to_string(p.rx_queues);
    }
    if (pos.workers_valid && p.rx_queues != d.worker_lcores.size()) {
        r.fail("rx_queues", std::to_string(p.rx_queues) + " differs from the " + std::to_string(d.worker_lcores.size()) +
                                " worker lcores: net_af_xdp sends on tx queue i through rx queue i's socket, and "
                                "every worker sends on its own tx queue");
    }
}

void read_port(checker& c, const toml::table& t, std::size_t index, const daemon_settings& d, port_settings& p,
               const positions& pos) {
    table_reader r(c, t, "port[" + std::to_string(index) + "]");
    r.known_keys({"name", "device", "rx_queues", "rx_desc", "tx_desc", "mtu", "rss", "checksum_offload", "promiscuous",
                  "addresses", "kwik_ports", "gateway", "gateway6", "xdp_program"},
                 "[[port]]");
    p.name = "port" + std::to_string(index);
    if (r.string("name", p.name) && !valid_name(p.name, max_name_length, "_-")) {
        r.fail("name", in_quotes(p.name) + " may hold only letters, digits, '_' and '-' (1 to " +
                           std::to_string(max_name_length) + " of them)");
    }
    if (r.node("device") == nullptr) {
        r.fail("device", "required (a PCI address such as 0000:3b:00.0, or a virtual device such as net_ring0)");
    } else if (r.string("device", p.device)) {
        auto kind = classify_device(p.device);
        if (auto* err = std::get_if<std::string>(&kind)) {
            r.fail("device", *err);
        } else {
            p.kind = std::get<device_kind>(kind);
        }
    }
    p.rx_queues = static_cast<std::uint16_t>(d.worker_lcores.size());
    if (r.integer("rx_queues", p.rx_queues, 1, max_queues_per_port) && pos.workers_valid &&
        p.rx_queues > d.worker_lcores.size()) {
        r.fail("rx_queues", std::to_string(p.rx_queues) + " is above the " + std::to_string(d.worker_lcores.size()) +
                                " worker lcores (kwikd.worker_lcores); worker i polls rx queue i");
    }
    for (const std::string_view key : {std::string_view("rx_desc"), std::string_view("tx_desc")}) {
        std::uint16_t& desc = key == "rx_desc" ? p.rx_desc : p.tx_desc;
        if (r.integer(key, desc, 64, 32768) && !power_of_two(desc)) {
            r.fail(key, std::to_string(desc) + " is not a power of two");
        }
    }
    r.integer("mtu", p.mtu, 68, 9600);
    r.boolean("rss", p.rss);
    r.boolean("checksum_offload", p.checksum_offload);
    r.boolean("promiscuous", p.promiscuous);

    if (r.node("addresses") == nullptr) {
        r.fail("addresses", "required (the port's IP addresses with prefix length, such as [\"10.0.0.1/24\"])");
    } else {
        const bool is_list =
            r.list("addresses", true, "an array of addresses such as [\"10.0.0.1/24\", \"fd00::1/64\"]",
                   [&](const toml::node& e, const std::string& f) {
                       const auto* s = e.as_string();
                       if (s == nullptr) {
                           c.fail(&e, f, "expected a string such as \"10.0.0.1/24\", got " + std::string(type_name(e)));
                           return;
                       }
                       auto parsed = parse_prefix(s->get());
                       if (auto* err = std::get_if<std::string>(&parsed)) {
                           c.fail(&e, f, *err);
                           return;
                       }
                       p.addresses.push_back(std::get<ip_prefix>(parsed));
                   });
        const auto* arr = r.node("addresses")->as_array();
        if (is_list && arr != nullptr && arr->empty()) {
            r.fail("addresses", "at least one address is required");
        }
        if (is_list && arr != nullptr && arr->size() > max_port_addresses) {
            r.fail("addresses",
                   std::to_string(arr->size()) + " addresses is above " + std::to_string(max_port_addresses));
        }
    }
    if (r.node("kwik_ports") != nullptr) {
        p.kwik_ports.clear();
        const std::size_t before = c.count();
        r.list("kwik_ports", true, "an array of UDP ports such as [7707]",
               [&](const toml::node& e, const std::string& f) {
                   const auto* i = e.as_integer();
                   if (i == nullptr) {
                       c.fail(&e, f, "expected a UDP port (an integer), got " + std::string(type_name(e)));
                       return;
                   }
                   if (i->get() < 1 || i->get() > 65535) {
                       c.fail(&e, f, std::to_string(i->get()) + " is not a UDP port (1-65535)");
                       return;
                   }
                   const auto port = static_cast<std::uint16_t>(i->get());
                   if (std::find(p.kwik_ports.begin(), p.kwik_ports.end(), port) != p.kwik_ports.end()) {
                       c.fail(&e, f, std::to_string(port) + " is listed twice");
                       return;
                   }
                   p.kwik_ports.push_back(port);
               });
        const auto* arr = r.node("kwik_ports")->as_array();
        if (c.count() == before && arr != nullptr && arr->empty()) {
            r.fail("kwik_ports", "at least one UDP port is required");
        }
        if (arr != nullptr && arr->size() > max_port_kwik_ports) {
            r.fail("kwik_ports",
                   std::to_string(arr->size()) + " UDP ports is above " + std::to_string(max_port_kwik_ports));
        }
    }
    read_gateway(r, "gateway", true, p, p.gateway);
    read_gateway(r, "gateway6", false, p, p.gateway6);
    read_af_xdp(r, p, d, pos);
}

void read_exception(checker& c, const toml::table& t, exception_settings& e) {
    table_reader r(c, t, "exception");
    r.known_keys({"device", "port"}, "[exception]");
    if (r.string("device", e.device)) {
        if (e.device == "none") {
            e.device.clear();
        } else {
            auto kind = classify_device(e.device);
            const std::string_view name = device_name(e.device);
            if (auto* err = std::get_if<std::string>(&kind)) {
                r.fail("device", *err);
            } else if (!starts_with_any(name, {"net_tap", "eth_tap", "virtio_user", "net_virtio_user"})) {
                r.fail("device", in_quotes(e.device) + " is not a net_tap or virtio_user device (or \"none\")");
            }
        }
    }
    r.string("port", e.port);
}

void read_transport(checker& c, const toml::table& t, transport_defaults& tr) {
    table_reader r(c, t, "transport");
    r.known_keys({"stream_window", "connection_window", "max_streams", "max_paths", "max_packet_size", "keepalive_ms",
                  "idle_timeout_ms", "cc", "coupled", "scheduler"},
                 "[transport]");
    constexpr std::uint64_t max_window = std::uint64_t{1} << 40;
    const bool stream_ok = r.integer("stream_window", tr.stream_window, 1024, max_window) || !r.node("stream_window");
    const bool conn_ok =
        r.integer("connection_window", tr.connection_window, 1024, max_window) || !r.node("connection_window");
    if (stream_ok && conn_ok && tr.connection_window < tr.stream_window) {
        c.fail(r.at(r.node("connection_window") != nullptr ? "connection_window" : "stream_window"),
               "transport.connection_window",
               std::to_string(tr.connection_window) + " is below transport.stream_window " +
                   std::to_string(tr.stream_window));
    }
    r.integer("max_streams", tr.max_streams, 1, 1 << 20);
    r.integer("max_paths", tr.max_paths, 1, transport::scheduler_max_paths);
    r.integer("max_packet_size", tr.max_packet_size, 256, kdp::max_packet_size);
    const bool keep_ok = r.integer("keepalive_ms", tr.keepalive_ms, 1, 3600000) || !r.node("keepalive_ms");
    const bool idle_ok = r.integer("idle_timeout_ms", tr.idle_timeout_ms, 1, 86400000) || !r.node("idle_timeout_ms");
    if (keep_ok && idle_ok && tr.idle_timeout_ms <= tr.keepalive_ms) {
        c.fail(r.at(r.node("idle_timeout_ms") != nullptr ? "idle_timeout_ms" : "keepalive_ms"),
               "transport.idle_timeout_ms",
               std::to_string(tr.idle_timeout_ms) + " is not above transport.keepalive_ms " +
                   std::to_string(tr.keepalive_ms));
    }
    r.choice("cc", tr.cc, cc_names);
    r.boolean("coupled", tr.coupled);
    r.choice("scheduler", tr.scheduler, scheduler_names);
}

// kwikd numbers the configuration's connections 1..n with n <= limits.max_connections (checked
// below); the ids a control process gives its connections start above (docs/PROTOCOL.md 13.2).
constexpr std::uint32_t max_connections_limit = 16777216;
static_assert(max_connections_limit < api::first_dynamic_connection_id,
              "kwikd's configured connection ids must stay below a control process's");

void read_limits(checker& c, const toml::table& t, limits_settings& l, positions& pos) {
    table_reader r(c, t, "limits");
    r.known_keys({"max_connections", "max_paths", "mbufs", "mbuf_cache", "burst"}, "[limits]");
    r.integer("max_connections", l.max_connections, 1, max_connections_limit);
    r.integer("max_paths", l.max_paths, 1, 67108864);
    pos.mbufs_given = r.integer("mbufs", l.mbufs, 1023, max_mbufs);
    r.integer("mbuf_cache", l.mbuf_cache, 0, max_mempool_cache);
    r.integer("burst", l.burst, 32, 64);
}

// The port that owns an address, or nullopt.
std::optional<std::size_t> port_of(const std::vector<port_settings>& ports, const ip_address& a) {
    for (std::size_t i = 0; i < ports.size(); ++i) {
        for (const ip_prefix& p : ports[i].addresses) {
            if (p.address == a) {
                return i;
            }
        }
    }
    return std::nullopt;
}

std::string_view version_name(const ip_address& a) noexcept {
    return a.is_v4() ? "IPv4" : "IPv6";
}

struct path_owner {
    std::size_t connection;
    std::size_t path;
};

// A path's 5-tuple as an ordered key (ip_address has no ordering of its own).
using tuple_key = std::tuple<std::array<std::uint8_t, 16>, std::uint16_t, std::array<std::uint8_t, 16>, std::uint16_t>;
using tuple_map = std::map<tuple_key, path_owner>;

tuple_key key_of(const udp_endpoint& local, const udp_endpoint& remote) {
    return {local.address.bytes, local.port, remote.address.bytes, remote.port};
}

void read_connection(checker& c, const toml::table& t, std::size_t index, const kwikd_config& cfg,
                     static_connection& conn, tuple_map& tuples) {
    table_reader r(c, t, "connection[" + std::to_string(index) + "]");
    r.known_keys({"id", "role", "endpoint", "endpoint_arg", "path"}, "[[connection]]");
    if (r.node("id") == nullptr) {
        r.fail("id", "required (the connection's id, such as \"demo-0\")");
    } else if (r.string("id", conn.id) && !valid_name(conn.id, max_connection_id_length, "._:-")) {
        r.fail("id", in_quotes(conn.id) + " may hold only letters, digits, '.', '_', ':' and '-' (1 to " +
                         std::to_string(max_connection_id_length) + " of them)");
    }
    r.choice("role", conn.role, role_names);
    const bool endpoint_ok = r.choice("endpoint", conn.endpoint, endpoint_names) || r.node("endpoint") == nullptr;
    if (endpoint_ok) {
        const toml::node* arg = r.node("endpoint_arg");
        const std::string ep(to_string(conn.endpoint));
        switch (conn.endpoint) {
        case stream_endpoint::discard:
        case stream_endpoint::echo:
            if (arg != nullptr) {
                r.fail("endpoint_arg", "the " + ep + " endpoint takes no argument");
            }
            break;
        case stream_endpoint::pattern:
            if (arg == nullptr) {
                r.fail("endpoint_arg", "required by the pattern endpoint (bytes per stream)");
            } else {
                r.integer("endpoint_arg", conn.pattern_length, 1, kdp::max_stream_offset);
            }
            break;
        case stream_endpoint::file_store:
            if (arg == nullptr) {
                r.fail("endpoint_arg", "required by the file_store endpoint (the directory streams are written to)");
            } else if (r.string("endpoint_arg", conn.directory)) {
                if (conn.directory.empty() || conn.directory.front() != '/') {
                    r.fail("endpoint_arg", in_quotes(conn.directory) + " is not an absolute directory path");
                } else if (conn.directory.size() > max_endpoint_path_length) {
                    r.fail("endpoint_arg", "the directory path is " + std::to_string(conn.directory.size()) +
                                               " bytes long, above " + std::to_string(max_endpoint_path_length));
                }
            }
            break;
        }
    }

    const toml::node* paths = r.node("path");
    if (paths == nullptr) {
        r.fail("path", "required (at least one [[connection.path]])");
        return;
    }
    const auto* arr = paths->as_array();
    if (arr != nullptr && arr->empty()) {
        r.fail("path", "at least one [[connection.path]] is required");
        return;
    }
    if (arr == nullptr || !arr->is_array_of_tables()) {
        r.fail("path", "expected [[connection.path]] tables, got " +
                           std::string(arr == nullptr ? type_name(*paths) : "an array of other values"));
        return;
    }
    if (arr->size() > cfg.transport.max_paths) {
        r.fail("path", std::to_string(arr->size()) + " paths is above transport.max_paths " +
                           std::to_string(cfg.transport.max_paths));
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::table& pt = *arr->get(i)->as_table();
        table_reader pr(c, pt, r.prefix() + ".path[" + std::to_string(i) + "]");
        pr.known_keys({"path_id", "local", "remote"}, "[[connection.path]]");
        static_path sp;
        bool complete = true;
        if (pr.node("path_id") == nullptr) {
            pr.fail("path_id", "required (1 to 2^62-1, unique in the connection)");
            complete = false;
        } else if (pr.integer("path_id", sp.path_id, 1, max_path_id)) {
            for (std::size_t j = 0; j < conn.paths.size(); ++j) {
                if (conn.paths[j].path_id == sp.path_id) {
                    pr.fail("path_id", std::to_string(sp.path_id) + " is already the id of " + r.prefix() + ".path[" +
                                           std::to_string(j) + "]");
                }
            }
        } else {
            complete = false;
        }
        for (const std::string_view key : {std::string_view("local"), std::string_view("remote")}) {
            udp_endpoint& ep = key == "local" ? sp.local : sp.remote;
            std::string text;
            if (pr.node(key) == nullptr) {
                pr.fail(key, "required (an IP address and UDP port such as " +
                                 std::string(key == "local" ? "10.0.0.1:7707" : "10.0.1.2:40000") + ")");
                complete = false;
                continue;
            }
            if (!pr.string(key, text)) {
                complete = false;
                continue;
            }
            auto parsed = parse_endpoint(text);
            if (auto* err = std::get_if<std::string>(&parsed)) {
                pr.fail(key, *err);
                complete = false;
                continue;
            }
            ep = std::get<udp_endpoint>(parsed);
        }
        if (!complete) {
            conn.paths.push_back(sp);
            continue;
        }
        if (sp.local.address.is_v4() != sp.remote.address.is_v4()) {
            pr.fail("remote", to_string(sp.remote) + " is " + std::string(version_name(sp.remote.address)) +
                                  " but local " + to_string(sp.local) + " is " +
                                  std::string(version_name(sp.local.address)));
        }
        if (const std::optional<std::size_t> owner = port_of(cfg.ports, sp.local.address)) {
            sp.port_index = *owner;
            const port_settings& port = cfg.ports[*owner];
            if (std::find(port.kwik_ports.begin(), port.kwik_ports.end(), sp.local.port) == port.kwik_ports.end()) {
                pr.fail("local", "UDP port " + std::to_string(sp.local.port) + " is not one of port[" +
                                     std::to_string(*owner) + "].kwik_ports");
            }
        } else {
            pr.fail("local", to_string(sp.local.address) + " is not an address of any port (port[].addresses)");
        }
        const auto [it, fresh] = tuples.emplace(key_of(sp.local, sp.remote), path_owner{index, i});
        if (!fresh) {
            pr.fail("remote", "local " + to_string(sp.local) + " and remote " + to_string(sp.remote) +
                                  " are already connection[" + std::to_string(it->second.connection) + "].path[" +
                                  std::to_string(it->second.path) + "]");
        }
        conn.paths.push_back(sp);
    }
}

// Returns the node array of an array-of-tables section, reporting a wrong shape.
const toml::array* tables_of(checker& c, const toml::node* n, std::string_view section) {
    if (n == nullptr) {
        return nullptr;
    }
    const auto* arr = n->as_array();
    if (arr == nullptr) {
        c.fail(n, section, "expected [[" + std::string(section) + "]] tables, got " + std::string(type_name(*n)));
        return nullptr;
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
        if (!arr->get(i)->is_table()) {
            c.fail(arr->get(i), std::string(section) + "[" + std::to_string(i) + "]",
                   "expected a table, got " + std::string(type_name(*arr->get(i))));
            return nullptr;
        }
    }
    return arr;
}

const toml::table* table_of(checker& c, const toml::node* n, std::string_view section) {
    if (n == nullptr) {
        return nullptr;
    }
    if (!n->is_table()) {
        c.fail(n, section, "expected a table ([" + std::string(section) + "]), got " + std::string(type_name(*n)));
        return nullptr;
    }
    return n->as_table();
}

void read_document(checker& c, const toml::table& root, kwikd_config& cfg) {
    positions pos;
    for (const auto& [k, v] : root) {
        const std::string_view key = k.str();
        if (key != "kwikd" && key != "port" && key != "exception" && key != "transport" && key != "connection" &&
            key != "limits") {
            c.add(c.where(k, v), printable(key),
                  "unknown key (the sections are [kwikd], [[port]], [exception], [transport], [[connection]], "
                  "[limits])");
        }
    }
    if (const toml::table* t = table_of(c, root.get("kwikd"), "kwikd")) {
        read_kwikd(c, *t, cfg.kwikd, pos);
    }
    // The transport and limits sections first: ports and connections are checked against them.
    if (const toml::table* t = table_of(c, root.get("transport"), "transport")) {
        read_transport(c, *t, cfg.transport);
    }
    if (const toml::table* t = table_of(c, root.get("limits"), "limits")) {
        pos.limits = t;
        read_limits(c, *t, cfg.limits, pos);
    }

    const toml::node* port_node = root.get("port");
    const toml::array* ports = tables_of(c, port_node, "port");
    if (port_node == nullptr || (ports != nullptr && ports->empty())) {
        c.fail(port_node, "port", "at least one [[port]] table is required");
    }
    if (ports != nullptr) {
        std::map<std::string, std::size_t> names;
        std::map<std::string, std::size_t> devices;
        std::map<std::array<std::uint8_t, 16>, std::size_t> addresses;
        for (std::size_t i = 0; i < ports->size(); ++i) {
            const toml::table& t = *ports->get(i)->as_table();
            port_settings p;
            const std::size_t before = c.count();
            read_port(c, t, i, cfg.kwikd, p, pos);
            table_reader r(c, t, "port[" + std::to_string(i) + "]");
            if (const auto [it, fresh] = names.emplace(p.name, i); !fresh) {
                r.fail("name", in_quotes(p.name) + " is already the name of port[" + std::to_string(it->second) + "]");
            }
            if (!p.device.empty() && c.count() == before) {
                const std::string dev = normalised_device_name(p.device, p.kind);
                if (const auto [it, fresh] = devices.emplace(dev, i); !fresh) {
                    r.fail("device", dev + " is already the device of port[" + std::to_string(it->second) + "]");
                }
            }
            for (std::size_t a = 0; a < p.addresses.size(); ++a) {
                if (const auto [it, fresh] = addresses.emplace(p.addresses[a].address.bytes, i); !fresh) {
                    const auto* arr = t.get("addresses")->as_array();
                    c.fail(arr != nullptr ? arr->get(a) : t.get("addresses"),
                           r.field("addresses") + (arr != nullptr ? "[" + std::to_string(a) + "]" : ""),
                           to_string(p.addresses[a].address) + " is already an address of port[" +
                               std::to_string(it->second) + "]");
                }
            }
            // A Kwik packet of the largest size must fit the port's MTU behind its IP and UDP
            // headers (the larger IPv6 header when the port has an IPv6 address).
            const bool v6 = std::any_of(p.addresses.begin(), p.addresses.end(),
                                        [](const ip_prefix& a) { return !a.address.is_v4(); });
            const std::uint32_t overhead = v6 ? 48 : 28;
            if (!p.addresses.empty() && cfg.transport.max_packet_size + overhead > p.mtu) {
                r.fail("mtu", std::to_string(p.mtu) + " cannot carry a path packet of transport.max_packet_size " +
                                  std::to_string(cfg.transport.max_packet_size) + " in " + (v6 ? "IPv6" : "IPv4") +
                                  " and UDP (" + std::to_string(cfg.transport.max_packet_size + overhead) + " bytes)");
            }
            cfg.ports.push_back(std::move(p));
        }
        if (cfg.ports.size() + 1 > max_ethdev_ports) {
            c.fail(port_node, "port",
                   std::to_string(cfg.ports.size()) + " ports is above the " + std::to_string(max_ethdev_ports - 1) +
                       " DPDK can hold beside the exception interface");
        }
    }

    if (const toml::table* t = table_of(c, root.get("exception"), "exception")) {
        read_exception(c, *t, cfg.exception);
        table_reader r(c, *t, "exception");
        if (cfg.exception.enabled()) {
            for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
                if (normalised_device_name(cfg.ports[i].device, cfg.ports[i].kind) ==
                    device_name(cfg.exception.device)) {
                    r.fail("device", std::string(device_name(cfg.exception.device)) +
                                         " is already the device of port[" + std::to_string(i) + "]");
                }
            }
            for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
                if (!cfg.ports[i].xdp_program.empty() &&
                    (cfg.exception.port.empty() ? i == 0 : cfg.ports[i].name == cfg.exception.port)) {
                    r.fail("device", "port[" + std::to_string(i) + "] is net_af_xdp: its XDP program already leaves "
                                     "what is not Kwik to the kernel's own interface, so it takes no exception "
                                     "device");
                }
            }
            if (!cfg.exception.port.empty()) {
                bool found = false;
                for (std::size_t i = 0; i < cfg.ports.size() && !found; ++i) {
                    if (cfg.ports[i].name == cfg.exception.port) {
                        cfg.exception.port_index = i;
                        found = true;
                    }
                }
                if (!found && ports != nullptr) {
                    r.fail("port", in_quotes(cfg.exception.port) + " is not the name of a [[port]]");
                }
            }
        } else if (r.node("port") != nullptr) {
            r.fail("port", "set, but exception.device is \"none\"");
        }
    }
    if (cfg.exception.enabled() && cfg.exception.port.empty() && !cfg.ports.empty()) {
        cfg.exception.port = cfg.ports.front().name;
        cfg.exception.port_index = 0;
    }

    const toml::node* conn_node = root.get("connection");
    if (const toml::array* conns = tables_of(c, conn_node, "connection")) {
        std::map<std::string, std::size_t> ids;
        tuple_map tuples;
        std::size_t total_paths = 0;
        for (std::size_t i = 0; i < conns->size(); ++i) {
            const toml::table& t = *conns->get(i)->as_table();
            static_connection conn;
            read_connection(c, t, i, cfg, conn, tuples);
            if (!conn.id.empty()) {
                if (const auto [it, fresh] = ids.emplace(conn.id, i); !fresh) {
                    table_reader(c, t, "connection[" + std::to_string(i) + "]")
                        .fail("id", in_quotes(conn.id) + " is already the id of connection[" +
                                        std::to_string(it->second) + "]");
                }
            }
            total_paths += conn.paths.size();
            cfg.connections.push_back(std::move(conn));
        }
        if (cfg.connections.size() > cfg.limits.max_connections) {
            c.fail(conn_node, "connection",
                   std::to_string(cfg.connections.size()) + " connections is above limits.max_connections " +
                       std::to_string(cfg.limits.max_connections));
        }
        if (total_paths > cfg.limits.max_paths) {
            c.fail(conn_node, "connection",
                   std::to_string(total_paths) + " paths is above limits.max_paths " +
                       std::to_string(cfg.limits.max_paths));
        }
    }

    // The pool must cover what the rings and per-lcore caches can hold at once, or queue set-up
    // fails (or, worse, rx starves under load): every rx descriptor filled, every tx descriptor
    // in flight, and each worker's mempool cache plus one burst. (That also meets DPDK's own
    // rule, mbufs >= 1.5 x mbuf_cache: mbufs is at least 1023, the cache at most 512.)
    std::uint64_t need = 0;
    const std::uint64_t workers = cfg.kwikd.worker_lcores.size();
    for (const port_settings& p : cfg.ports) {
        need += std::uint64_t{p.rx_queues} * p.rx_desc + workers * p.tx_desc;
    }
    need += workers * (cfg.limits.mbuf_cache + cfg.limits.burst);
    const toml::node* mbufs_at = pos.limits != nullptr && pos.limits->as_table()->get("mbufs") != nullptr
                                     ? pos.limits->as_table()->get("mbufs")
                                     : nullptr;
    if (pos.mbufs_given) {
        if (cfg.limits.mbufs < need) {
            c.fail(mbufs_at, "limits.mbufs",
                   std::to_string(cfg.limits.mbufs) + " is below the " + std::to_string(need) +
                       " mbufs the rings and caches can hold (per port rx_queues x rx_desc + workers x tx_desc, "
                       "plus workers x (limits.mbuf_cache + limits.burst))");
        }
    } else {
        std::uint64_t n = min_auto_mbufs + 1;
        while (n < 2 * need && n <= max_mbufs) {
            n *= 2;
        }
        cfg.limits.mbufs = static_cast<std::uint32_t>(std::min<std::uint64_t>(n - 1, max_mbufs));
    }
    const std::optional<std::uint32_t> memory =
        cfg.kwikd.memory_mb ? cfg.kwikd.memory_mb
                            : (cfg.kwikd.hugepages ? std::nullopt : std::optional{default_no_huge_memory_mb});
    if (memory && std::uint64_t{cfg.limits.mbufs} * mbuf_footprint > std::uint64_t{*memory} << 20) {
        const std::string what = std::to_string(cfg.limits.mbufs) + " mbufs take " +
                                 std::to_string((std::uint64_t{cfg.limits.mbufs} * mbuf_footprint) >> 20) + " MiB (" +
                                 std::to_string(mbuf_footprint) + " bytes each), more than the " +
                                 std::to_string(*memory) + " MiB of kwikd.memory_mb";
        if (pos.mbufs_given) {
            c.fail(mbufs_at, "limits.mbufs", what);
        } else {
            c.fail(pos.memory_mb, "kwikd.memory_mb", what + " (limits.mbufs is sized from the rings and caches)");
        }
    }
}

// ---------------------------------------------------------------- overrides

// "port[0].mtu" -> {("port", 0), ("mtu", none)}.
struct key_segment {
    std::string name;
    std::optional<std::size_t> index;
};

std::optional<std::vector<key_segment>> split_key(std::string_view key) {
    std::vector<key_segment> out;
    std::size_t pos = 0;
    while (pos <= key.size()) {
        const std::size_t dot = std::min(key.find('.', pos), key.size());
        std::string_view seg = key.substr(pos, dot - pos);
        key_segment s;
        if (const std::size_t open = seg.find('['); open != std::string_view::npos) {
            if (seg.back() != ']') {
                return std::nullopt;
            }
            std::size_t index = 0;
            if (!parse_decimal(seg.substr(open + 1, seg.size() - open - 2), index)) {
                return std::nullopt;
            }
            s.index = index;
            seg = seg.substr(0, open);
        }
        if (seg.empty() || !std::all_of(seg.begin(), seg.end(), [](unsigned char ch) {
                return std::isalnum(ch) != 0 || ch == '_' || ch == '-';
            })) {
            return std::nullopt;
        }
        s.name = std::string(seg);
        out.push_back(std::move(s));
        pos = dot + 1;
    }
    return out;
}

std::string toml_string_literal(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (u < 0x20 || u == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04X", u);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

// The override's value as a TOML node whose source names the option: as TOML when it parses as
// one value, else as a string.
toml::table parse_override_value(const config_override& o) {
    const std::string origin = o.origin.empty() ? "--set" : o.origin;
    const std::string as_toml = "v = " + o.value;
    // Not handed to toml++ as TOML when the guard refuses it (non-ASCII in a bare token): a string.
    if (!toml_unsafe_character(as_toml)) {
        try {
            toml::table t = toml::parse(std::string_view(as_toml), std::string_view(origin));
            if (t.size() == 1 && t.contains("v")) {
                return t;
            }
        } catch (const toml::parse_error&) {
            // not TOML: a string (below)
        }
    }
    return toml::parse(std::string_view("v = " + toml_string_literal(o.value)), std::string_view(origin));
}

// Applies one override to the document. false (and a problem) when the key cannot be placed.
bool apply_override(checker& c, toml::table& root, const config_override& o) {
    const std::string origin = o.origin.empty() ? "--set" : o.origin;
    const std::optional<std::vector<key_segment>> segs = split_key(o.key);
    if (!segs || segs->size() < 2 || segs->back().index) {
        c.add({origin, 0}, "",
              in_quotes(o.key) + " is not a key such as port[0].mtu, kwikd.worker_lcores or "
                                 "connection[0].path[1].remote (a whole array is replaced with "
                                 "key=[...])");
        return false;
    }
    toml::table* cur = &root;
    std::string walked;
    for (std::size_t i = 0; i + 1 < segs->size(); ++i) {
        const key_segment& s = (*segs)[i];
        walked += (walked.empty() ? "" : ".") + s.name;
        toml::node* n = cur->get(s.name);
        if (!s.index) {
            if (n == nullptr) {
                cur->insert(s.name, toml::table{});
                n = cur->get(s.name);
                c.created(n, origin);
            }
            if (!n->is_table()) {
                c.add({origin, 0}, walked,
                      "is " + std::string(type_name(*n)) + ", not a table, so " + o.key + " cannot be set");
                return false;
            }
            cur = n->as_table();
            continue;
        }
        if (n == nullptr) {
            cur->insert(s.name, toml::array{});
            n = cur->get(s.name);
            c.created(n, origin);
        }
        auto* arr = n->as_array();
        if (arr == nullptr) {
            c.add({origin, 0}, walked,
                  "is " + std::string(type_name(*n)) + ", not an array of tables, so " + o.key + " cannot be set");
            return false;
        }
        if (*s.index > arr->size()) {
            c.add({origin, 0}, walked + "[" + std::to_string(*s.index) + "]",
                  "there are " + std::to_string(arr->size()) + " " + walked + " tables; a new one must be " + walked +
                      "[" + std::to_string(arr->size()) + "]");
            return false;
        }
        if (*s.index == arr->size()) {
            arr->push_back(toml::table{});
            c.created(arr->back().as_table(), origin);
        }
        toml::node* elem = arr->get(*s.index);
        if (!elem->is_table()) {
            c.add({origin, 0}, walked + "[" + std::to_string(*s.index) + "]",
                  "is " + std::string(type_name(*elem)) + ", not a table");
            return false;
        }
        cur = elem->as_table();
        walked += "[" + std::to_string(*s.index) + "]";
    }
    toml::table value = parse_override_value(o);
    value.get("v")->visit([&](auto& concrete) { cur->insert_or_assign(segs->back().name, std::move(concrete)); });
    return true;
}

config_error problems_to_error(const checker& c) {
    return config_error{c.message(), 1};
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const std::string& s : items) {
        out += out.empty() ? "" : std::string(sep);
        out += s;
    }
    return out;
}

} // namespace

// ---------------------------------------------------------------- public

std::optional<unsigned> group_id(std::string_view name) {
    std::vector<char> buf(4096);
    group gr{};
    group* found = nullptr;
    const std::string text(name);
    while (::getgrnam_r(text.c_str(), &gr, buf.data(), buf.size(), &found) == ERANGE && buf.size() < (1u << 20)) {
        buf.resize(buf.size() * 2);
    }
    if (found == nullptr) {
        return std::nullopt;
    }
    return static_cast<unsigned>(found->gr_gid);
}

std::string_view device_name(std::string_view device) noexcept {
    return device.substr(0, device.find(','));
}

std::string_view to_string(log_level level) noexcept {
    return name_of(level, log_level_names);
}

std::string_view to_string(stream_endpoint endpoint) noexcept {
    return name_of(endpoint, endpoint_names);
}

std::string_view to_string(poll_mode mode) noexcept {
    return name_of(mode, poll_mode_names);
}

std::string_view to_string(hugepage_size size) noexcept {
    return name_of(size, hugepage_size_names);
}

std::string to_string(const ip_address& address) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (address.is_v4()) {
        inet_ntop(AF_INET, address.v4_bytes(), buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, address.bytes.data(), buf, sizeof buf);
    }
    return buf;
}

std::string to_string(const ip_prefix& prefix) {
    return to_string(prefix.address) + "/" + std::to_string(prefix.length);
}

std::string to_string(const udp_endpoint& endpoint) {
    const std::string a = to_string(endpoint.address);
    return (endpoint.address.is_v4() ? a : "[" + a + "]") + ":" + std::to_string(endpoint.port);
}

config_result parse_config(std::string_view toml_text, std::string_view source_name,
                           std::span<const config_override> overrides) {
    checker c{std::string(source_name)};
    // TOML allows no NUL anywhere; toml++ reports it too, except that a debug build of its
    // header-only form asserts on one in a table header first.
    if (const std::size_t nul = toml_text.find('\0'); nul != std::string_view::npos) {
        const auto [line, column] = line_and_column(toml_text, nul);
        return config_error{c.where(nullptr).text + ":" + std::to_string(line) + ":" + std::to_string(column) +
                                ": a NUL byte (TOML allows none)",
                            1};
    }
    if (const std::optional<std::size_t> bad = toml_unsafe_character(toml_text)) {
        const auto [line, column] = line_and_column(toml_text, *bad);
        return config_error{c.where(nullptr).text + ":" + std::to_string(line) + ":" + std::to_string(column) +
                                ": a non-ASCII character outside a string or comment (or first after a "
                                "line-ending backslash in a \"\"\" string), which toml++ 3.3 cannot read safely",
                            1};
    }
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        return config_error{c.where(nullptr).text + ":" + std::to_string(e.source().begin.line) + ":" +
                                std::to_string(e.source().begin.column) + ": " + printable(e.description()),
                            1};
    }
    for (const config_override& o : overrides) {
        (void)apply_override(c, root, o);
    }
    if (c.count() != 0) {
        return problems_to_error(c);
    }
    kwikd_config cfg;
    cfg.source = std::string(source_name);
    read_document(c, root, cfg);
    if (c.count() != 0) {
        return problems_to_error(c);
    }
    return cfg;
}

config_result load_config(int argc, const char* const* argv, std::string_view builtin_text,
                          std::string_view builtin_name) {
    // Everything after the first "--" belongs to EAL, untouched.
    std::vector<const char*> own_args;
    std::vector<std::string> passthrough;
    bool after = false;
    for (int i = 0; i < argc; ++i) {
        if (after) {
            passthrough.emplace_back(argv[i]);
        } else if (i > 0 && std::string_view(argv[i]) == "--") {
            after = true;
        } else {
            own_args.push_back(argv[i]);
        }
    }
    if (own_args.empty()) {
        own_args.push_back("kwikd");
    }

    CLI::App app{"kwikd: the Kwik data plane. DPDK worker lcores run the KDP pipeline on the ports' "
                 "queues; the main lcore does housekeeping. The configuration is a TOML file "
                 "(deploy/kwikd.toml documents every key).",
                 "kwikd"};
    app.footer("Overrides: --set KEY=VALUE sets any key of the file, named as error messages name it: "
               "kwikd.worker_lcores=1-3, port[0].mtu=9000, port[0].device=net_ring0, "
               "port[0].addresses='[\"10.0.0.1/24\"]', connection[0].path[1].remote=10.0.2.2:40000. "
               "VALUE is read as TOML (a number, true/false, an array) and otherwise as a string; quote "
               "it to force a string. port[N] with N equal to the number of ports adds a port. The named "
               "options are shortcuts for --set kwikd.<key>.\n"
               "Precedence: built-in defaults < the file < the command-line overrides, in the order "
               "given (the last one wins).\n"
               "EAL: the arguments after \"--\" go to rte_eal_init verbatim, after the ones kwikd "
               "builds (-l, --main-lcore, --file-prefix, --no-huge -m, -a/--no-pci, --vdev) and "
               "kwikd.eal_args.\n"
               "Exit status: 0 ran (or --check-config found the configuration valid), 1 a bad "
               "configuration or command line.");
    app.get_formatter()->column_width(30);

    std::string config_path;
    app.add_option("--config", config_path, "the configuration file (TOML)")->type_name("FILE");
    bool check_only = false;
    app.add_flag("--check-config", check_only, "validate the configuration, print the effective one, exit 0 or 1");

    struct shortcut {
        const char* flags;
        const char* key;
        const char* type_name;
        const char* help;
    };
    const shortcut shortcuts[] = {
        {"--set", "", "KEY=VALUE", "set any key of the configuration (repeatable; see below)"},
        {"--name", "kwikd.name", "NAME", "shared-memory name and EAL file prefix"},
        {"--log-level", "kwikd.log_level", "LEVEL", "emergency .. debug"},
        {"--main-lcore", "kwikd.main_lcore", "ID", "the housekeeping lcore"},
        {"--worker-lcores", "kwikd.worker_lcores", "LIST", "worker lcores, such as 1-3 or 1,2"},
        {"--memory-mb", "kwikd.memory_mb", "MB", "EAL memory (-m)"},
    };
    std::map<const CLI::Option*, std::pair<std::string, std::vector<std::string>*>> values_of;
    std::vector<std::unique_ptr<std::vector<std::string>>> storage;
    for (const shortcut& s : shortcuts) {
        storage.push_back(std::make_unique<std::vector<std::string>>());
        CLI::Option* opt = app.add_option(s.flags, *storage.back(), s.help)->type_name(s.type_name);
        opt->allow_extra_args(false);
        values_of[opt] = {s.key, storage.back().get()};
    }
    bool no_huge = false;
    const CLI::Option* no_huge_opt =
        app.add_flag("--no-huge", no_huge, "run EAL without hugepages (--set kwikd.hugepages=false)");

    try {
        app.parse(static_cast<int>(own_args.size()), own_args.data());
    } catch (const CLI::CallForHelp&) {
        return config_error{app.help(), 0};
    } catch (const CLI::CallForAllHelp&) {
        return config_error{app.help("", CLI::AppFormatMode::All), 0};
    } catch (const CLI::ParseError& e) {
        return config_error{std::string("kwikd: ") + e.what() + " (kwikd --help lists the options)", 1};
    }

    // The overrides in command-line order: each occurrence of an option takes its next value.
    std::vector<config_override> overrides;
    std::map<const CLI::Option*, std::size_t> taken;
    for (const CLI::Option* opt : app.parse_order()) {
        if (opt == no_huge_opt) {
            overrides.push_back({"kwikd.hugepages", "false", "--no-huge"});
            continue;
        }
        const auto it = values_of.find(opt);
        if (it == values_of.end()) {
            continue;
        }
        const std::string& value = it->second.second->at(taken[opt]++);
        const std::string origin = opt->get_name();
        if (it->second.first.empty()) {
            const std::size_t eq = value.find('=');
            if (eq == std::string::npos) {
                return config_error{"--set: " + in_quotes(value) + " is not KEY=VALUE (such as port[0].mtu=9000)", 1};
            }
            overrides.push_back({value.substr(0, eq), value.substr(eq + 1), origin});
        } else {
            overrides.push_back({it->second.first, value, origin});
        }
    }

    std::string text;
    std::string source;
    if (!config_path.empty()) {
        std::ifstream in(config_path, std::ios::binary);
        if (!in) {
            return config_error{config_path + ": cannot read the configuration file: " + std::strerror(errno), 1};
        }
        std::ostringstream buffer;
        buffer << in.rdbuf();
        if (in.bad()) {
            return config_error{config_path + ": cannot read the configuration file", 1};
        }
        text = buffer.str();
        source = config_path;
    } else if (!builtin_text.empty()) {
        text = std::string(builtin_text);
        source = std::string(builtin_name);
    }

    config_result r = parse_config(text, source, overrides);
    if (!r) {
        return r;
    }
    checker c{source};
    for (const std::string& arg : passthrough) {
        const std::string_view owner = owned_eal_option(arg);
        if (!owner.empty()) {
            c.add({"--", 0}, "", "EAL argument " + in_quotes(arg) + " is set by kwikd from " + std::string(owner));
        }
    }
    if (c.count() != 0) {
        return problems_to_error(c);
    }
    r->check_only = check_only;
    r->eal_passthrough = std::move(passthrough);
    return r;
}

std::vector<std::string> eal_arguments(const kwikd_config& config) {
    const daemon_settings& d = config.kwikd;
    std::vector<std::string> args{"kwikd"};
    std::set<unsigned> lcores(d.worker_lcores.begin(), d.worker_lcores.end());
    lcores.insert(d.main_lcore);
    std::string list;
    for (unsigned l : lcores) {
        list += (list.empty() ? "" : ",") + std::to_string(l);
    }
    args.insert(args.end(), {"-l", list, "--main-lcore", std::to_string(d.main_lcore), "--file-prefix", d.name});
    if (!d.hugepages) {
        args.insert(args.end(), {"--no-huge", "-m", std::to_string(d.memory_mb.value_or(default_no_huge_memory_mb))});
    } else if (d.memory_mb) {
        args.insert(args.end(), {"-m", std::to_string(*d.memory_mb)});
    }
    const bool any_pci = std::any_of(config.ports.begin(), config.ports.end(),
                                     [](const port_settings& p) { return p.kind == device_kind::pci; });
    if (!any_pci) {
        args.emplace_back("--no-pci");
    }
    for (const port_settings& p : config.ports) {
        args.insert(args.end(), {p.kind == device_kind::pci ? "-a" : "--vdev", p.device});
    }
    if (config.exception.enabled()) {
        args.insert(args.end(), {"--vdev", config.exception.device});
    }
    args.insert(args.end(), d.eal_args.begin(), d.eal_args.end());
    args.insert(args.end(), config.eal_passthrough.begin(), config.eal_passthrough.end());
    return args;
}

std::string to_toml(const kwikd_config& config) {
    std::ostringstream o;
    const auto str = [](std::string_view s) { return toml_string_literal(s); };
    const auto strings = [&](const std::vector<std::string>& v) {
        std::string out = "[";
        for (std::size_t i = 0; i < v.size(); ++i) {
            out += (i == 0 ? "" : ", ") + str(v[i]);
        }
        return out + "]";
    };
    const auto numbers = [](const auto& v) {
        std::string out = "[";
        for (std::size_t i = 0; i < v.size(); ++i) {
            out += (i == 0 ? "" : ", ") + std::to_string(v[i]);
        }
        return out + "]";
    };
    const auto boolean = [](bool b) { return b ? "true" : "false"; };
    const daemon_settings& d = config.kwikd;
    o << "# kwikd: effective configuration";
    if (!config.source.empty()) {
        o << " (from " << config.source << " and the command line)";
    }
    o << "\n\n[kwikd]\n"
      << "name = " << str(d.name) << "\n"
      << "log_level = " << str(to_string(d.level)) << "\n"
      << "main_lcore = " << d.main_lcore << "\n"
      << "worker_lcores = " << numbers(d.worker_lcores) << "\n"
      << "hugepages = " << boolean(d.hugepages) << "\n"
      << "hugepage_size = " << str(to_string(d.page_size)) << "\n";
    if (d.memory_mb) {
        o << "memory_mb = " << *d.memory_mb << "\n";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", d.shm_mode);
    o << "eal_args = " << strings(d.eal_args) << "\n"
      << "stats_interval_ms = " << d.stats_interval_ms << "\n"
      << "shm_mode = " << str(mode) << "\n"
      << "shm_directory = " << str(d.shm_directory) << "\n"
      << "shm_group = " << str(d.shm_group) << "\n"
      << "poll_mode = " << str(to_string(d.polling)) << "\n"
      << "idle_sleep_max_us = " << d.idle_sleep_max_us << "\n";
    for (const port_settings& p : config.ports) {
        std::vector<std::string> addresses;
        for (const ip_prefix& a : p.addresses) {
            addresses.push_back(to_string(a));
        }
        o << "\n[[port]]\n"
          << "name = " << str(p.name) << "\n"
          << "device = " << str(p.device) << "\n"
          << "rx_queues = " << p.rx_queues << "\n"
          << "rx_desc = " << p.rx_desc << "\n"
          << "tx_desc = " << p.tx_desc << "\n"
          << "mtu = " << p.mtu << "\n"
          << "rss = " << boolean(p.rss) << "\n"
          << "checksum_offload = " << boolean(p.checksum_offload) << "\n"
          << "promiscuous = " << boolean(p.promiscuous) << "\n"
          << "addresses = " << strings(addresses) << "\n"
          << "kwik_ports = " << numbers(p.kwik_ports) << "\n";
        if (p.gateway) {
            o << "gateway = " << str(to_string(*p.gateway)) << "\n";
        }
        if (p.gateway6) {
            o << "gateway6 = " << str(to_string(*p.gateway6)) << "\n";
        }
        if (!p.xdp_program.empty()) {
            o << "xdp_program = " << str(p.xdp_program) << "\n";
        }
    }
    o << "\n[exception]\n";
    if (config.exception.enabled()) {
        o << "device = " << str(config.exception.device) << "\n"
          << "port = " << str(config.exception.port) << "\n";
    } else {
        o << "device = \"none\"\n";
    }
    const transport_defaults& t = config.transport;
    o << "\n[transport]\n"
      << "stream_window = " << t.stream_window << "\n"
      << "connection_window = " << t.connection_window << "\n"
      << "max_streams = " << t.max_streams << "\n"
      << "max_paths = " << t.max_paths << "\n"
      << "max_packet_size = " << t.max_packet_size << "\n"
      << "keepalive_ms = " << t.keepalive_ms << "\n"
      << "idle_timeout_ms = " << t.idle_timeout_ms << "\n"
      << "cc = " << str(name_of(t.cc, cc_names)) << "\n"
      << "coupled = " << boolean(t.coupled) << "\n"
      << "scheduler = " << str(name_of(t.scheduler, scheduler_names)) << "\n";
    for (const static_connection& c : config.connections) {
        o << "\n[[connection]]\n"
          << "id = " << str(c.id) << "\n"
          << "role = " << str(name_of(c.role, role_names)) << "\n"
          << "endpoint = " << str(to_string(c.endpoint)) << "\n";
        if (c.endpoint == stream_endpoint::pattern) {
            o << "endpoint_arg = " << c.pattern_length << "\n";
        } else if (c.endpoint == stream_endpoint::file_store) {
            o << "endpoint_arg = " << str(c.directory) << "\n";
        }
        for (const static_path& p : c.paths) {
            o << "[[connection.path]]\n"
              << "path_id = " << p.path_id << "\n"
              << "local = " << str(to_string(p.local)) << "\n"
              << "remote = " << str(to_string(p.remote)) << "\n";
        }
    }
    const limits_settings& l = config.limits;
    o << "\n[limits]\n"
      << "max_connections = " << l.max_connections << "\n"
      << "max_paths = " << l.max_paths << "\n"
      << "mbufs = " << l.mbufs << "\n"
      << "mbuf_cache = " << l.mbuf_cache << "\n"
      << "burst = " << l.burst << "\n";
    if (!config.eal_passthrough.empty()) {
        o << "\n# EAL arguments after \"--\": " << join(config.eal_passthrough, " ") << "\n";
    }
    return o.str();
}

void apply_transport_defaults(const transport_defaults& defaults, transport::connection_config& config) noexcept {
    config.stream_window = defaults.stream_window;
    config.connection_window = defaults.connection_window;
    config.max_streams = defaults.max_streams;
    config.max_paths = defaults.max_paths;
    config.max_packet_size = defaults.max_packet_size;
    config.keepalive_interval = transport::time_ns{defaults.keepalive_ms} * transport::ms;
    config.idle_timeout = transport::time_ns{defaults.idle_timeout_ms} * transport::ms;
    config.cc.algorithm = defaults.cc;
    config.cc.coupled = defaults.coupled;
    config.scheduler.strategy = defaults.scheduler;
}

} // namespace kwik::engine
