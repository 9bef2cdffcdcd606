// kwikctl doctor's view of the host (doctor.hpp): host_reader over a root directory, running
// kwikd --check-config, reading its output, and the CPU-list and kernel-command-line helpers.
#include "controlplane/kwikctl/doctor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <chrono>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace kwik::ctl::doctor {

namespace fs = std::filesystem;

std::string_view to_string(status s) noexcept {
    switch (s) {
    case status::ok:
        return "ok";
    case status::warn:
        return "warn";
    case status::fail:
        return "fail";
    case status::skip:
        return "skip";
    }
    return "?";
}

// ---- host_reader ------------------------------------------------------------------------------

host_reader::host_reader(std::string root) : _root(std::move(root)) {
    while (_root.size() > 1 && _root.back() == '/') {
        _root.pop_back();
    }
}

std::string host_reader::path(std::string_view host_path) const {
    if (_root == "/" || _root.empty()) {
        return std::string(host_path);
    }
    return _root + std::string(host_path);
}

bool host_reader::exists(std::string_view host_path) const {
    std::error_code ec;
    return fs::exists(path(host_path), ec);
}

std::optional<std::string> host_reader::read(std::string_view host_path) const {
    std::ifstream in(path(host_path), std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> host_reader::read_line(std::string_view host_path) const {
    auto text = read(host_path);
    if (!text) {
        return std::nullopt;
    }
    std::string line = text->substr(0, text->find('\n'));
    const auto space = [](unsigned char c) { return std::isspace(c) != 0; };
    line.erase(line.begin(), std::find_if_not(line.begin(), line.end(), space));
    line.erase(std::find_if_not(line.rbegin(), line.rend(), space).base(), line.end());
    return line;
}

std::vector<std::string> host_reader::list(std::string_view host_path) const {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(path(host_path), ec), end; !ec && it != end; it.increment(ec)) {
        names.push_back(it->path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::optional<std::string> host_reader::link_name(std::string_view host_path) const {
    std::error_code ec;
    const fs::path target = fs::read_symlink(path(host_path), ec);
    if (ec) {
        return std::nullopt;
    }
    return target.filename().string();
}

std::optional<file_info> host_reader::stat(std::string_view host_path) const {
    struct stat st {};
    if (::stat(path(host_path).c_str(), &st) != 0) {
        return std::nullopt;
    }
    return file_info{st.st_mode, st.st_uid, st.st_gid, S_ISDIR(st.st_mode)};
}

lock_state host_reader::probe_lock(std::string_view host_path) const {
    const int fd = ::open(path(host_path).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return errno == ENOENT ? lock_state::absent : lock_state::unreadable;
    }
    lock_state state = lock_state::unreadable;
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
        ::flock(fd, LOCK_UN);
        state = lock_state::free;
    } else if (errno == EWOULDBLOCK) {
        state = lock_state::held;
    }
    ::close(fd);
    return state;
}

namespace {

// The <root>/etc/group entries: name -> gid.
std::vector<std::pair<std::string, gid_t>> groups_of(const host_reader& host) {
    std::vector<std::pair<std::string, gid_t>> out;
    const auto text = host.read("/etc/group");
    if (!text) {
        return out;
    }
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
        const auto c1 = line.find(':');
        const auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
        const auto c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
        if (c3 == std::string::npos) {
            continue;
        }
        unsigned long gid = 0;
        const char* first = line.data() + c2 + 1;
        const char* last = line.data() + c3;
        if (auto [p, ec] = std::from_chars(first, last, gid); ec == std::errc() && p == last) {
            out.emplace_back(line.substr(0, c1), static_cast<gid_t>(gid));
        }
    }
    return out;
}

} // namespace

std::string host_reader::group_name(gid_t gid) const {
    for (const auto& [name, id] : groups_of(*this)) {
        if (id == gid) {
            return name;
        }
    }
    return std::to_string(gid);
}

bool host_reader::group_exists(std::string_view name) const {
    const auto groups = groups_of(*this);
    return std::any_of(groups.begin(), groups.end(), [&](const auto& g) { return g.first == name; });
}

// ---- kwikd --check-config ----------------------------------------------------------------

program_run run_program(const std::vector<std::string>& argv, int timeout_ms) {
    program_run run;
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        run.err = "cannot create a pipe: " + std::string(std::strerror(errno));
        return run;
    }
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        run.err = "cannot create a pipe: " + std::string(std::strerror(errno));
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return run;
    }
    std::vector<char*> args;
    for (const std::string& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "%s: %s\n", argv[0].c_str(), std::strerror(errno));
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (pid < 0) {
        run.err = "cannot fork: " + std::string(std::strerror(errno));
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        return run;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&run.out, &run.err};
    int open_fds = 2;
    bool timed_out = false;
    while (open_fds > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                char buf[4096];
                const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
                if (got > 0) {
                    sinks[i]->append(buf, static_cast<std::size_t>(got));
                } else if (got == 0 || errno != EINTR) {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                }
            }
        }
    }
    for (const pollfd& f : fds) {
        if (f.fd >= 0) {
            ::close(f.fd);
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        run.err += argv[0] + " gave no answer in " + std::to_string(timeout_ms) + " ms";
    } else if (WIFEXITED(wstatus)) {
        run.exit_code = WEXITSTATUS(wstatus) == 127 ? -1 : WEXITSTATUS(wstatus);
    } else {
        run.err += argv[0] + " was killed by signal " + std::to_string(WTERMSIG(wstatus));
    }
    return run;
}

check_config_run run_check_config(const std::string& kwikd, const std::string& config_path, int timeout_ms) {
    check_config_run run;
    static_cast<program_run&>(run) = run_program({kwikd, "--config", config_path, "--check-config"}, timeout_ms);
    run.kwikd = kwikd;
    run.config_path = config_path;
    return run;
}

namespace {

template <class T>
std::optional<T> integer_at(const toml::table& t, std::string_view key, std::string& problem) {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    const auto* i = n->as_integer();
    if (i == nullptr || i->get() < 0 || static_cast<std::uint64_t>(i->get()) > std::numeric_limits<T>::max()) {
        problem = std::string(key) + ": expected a non-negative integer";
        return std::nullopt;
    }
    return static_cast<T>(i->get());
}

std::optional<std::string> string_at(const toml::table& t, std::string_view key, std::string& problem) {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
        return std::nullopt;
    }
    if (const auto* s = n->as_string()) {
        return s->get();
    }
    problem = std::string(key) + ": expected a string";
    return std::nullopt;
}

} // namespace

result<kwikd_view> parse_effective_config(std::string_view toml_text) {
    toml::table doc;
    try {
        doc = toml::parse(toml_text);
    } catch (const toml::parse_error& e) {
        return error{"kwikd --check-config printed no TOML: " + std::string(e.description())};
    }
    kwikd_view v;
    std::string problem;
    const toml::table* k = doc["kwikd"].as_table();
    if (k == nullptr) {
        return error{"kwikd --check-config printed no [kwikd] table"};
    }
    if (auto s = string_at(*k, "name", problem)) {
        v.name = *s;
    }
    if (auto n = integer_at<unsigned>(*k, "main_lcore", problem)) {
        v.main_lcore = *n;
    }
    if (const toml::array* a = (*k)["worker_lcores"].as_array()) {
        for (const toml::node& e : *a) {
            const auto* i = e.as_integer();
            if (i == nullptr || i->get() < 0) {
                return error{"kwikd.worker_lcores: expected non-negative integers"};
            }
            v.worker_lcores.push_back(static_cast<unsigned>(i->get()));
        }
    }
    if (const toml::node* n = k->get("hugepages")) {
        if (!n->is_boolean()) {
            return error{"kwikd.hugepages: expected true or false"};
        }
        v.hugepages = n->as_boolean()->get();
    }
    v.memory_mb = integer_at<std::uint32_t>(*k, "memory_mb", problem);
    if (auto s = string_at(*k, "shm_mode", problem)) {
        unsigned mode = 0;
        const auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), mode, 8);
        if (ec != std::errc() || p != s->data() + s->size() || mode > 0777) {
            return error{"kwikd.shm_mode: \"" + *s + "\" is not an octal file mode"};
        }
        v.shm_mode = mode;
    }
    if (auto s = string_at(*k, "shm_directory", problem)) {
        v.shm_directory = *s;
    }
    if (auto s = string_at(*k, "shm_group", problem); s && !s->empty()) {
        v.shm_group = *s;
    }
    if (auto s = string_at(*k, "hugepage_size", problem)) {
        if (*s == "2M") {
            v.hugepage_kb = 2048;
        } else if (*s == "1G") {
            v.hugepage_kb = 1024 * 1024;
        } else {
            return error{"kwikd.hugepage_size: \"" + *s + "\" is neither \"2M\" nor \"1G\""};
        }
    }
    if (!problem.empty()) {
        return error{"kwikd." + problem};
    }
    if (const toml::array* ports = doc["port"].as_array()) {
        for (std::size_t i = 0; i < ports->size(); ++i) {
            const toml::table* p = (*ports)[i].as_table();
            if (p == nullptr) {
                return error{"port[" + std::to_string(i) + "]: expected a table"};
            }
            port_config pc;
            pc.name = string_at(*p, "name", problem).value_or("port" + std::to_string(i));
            pc.device = string_at(*p, "device", problem).value_or("");
            pc.rx_queues = integer_at<std::uint32_t>(*p, "rx_queues", problem).value_or(
                static_cast<std::uint32_t>(std::max<std::size_t>(v.worker_lcores.size(), 1)));
            pc.mtu = integer_at<std::uint32_t>(*p, "mtu", problem).value_or(1500);
            if (!problem.empty()) {
                return error{"port[" + std::to_string(i) + "]." + problem};
            }
            v.ports.push_back(std::move(pc));
        }
    }
    return v;
}

namespace {

bool all_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

// "0000:3b:00.0" or "3b:00.0" (kwikd's own test, engine/config.cpp), normalised to lower case
// with the domain; empty when it is not one.
std::string pci_address_of(std::string_view s) {
    std::string domain = "0000:";
    if (s.size() == 12) {
        if (!all_hex(s.substr(0, 4)) || s[4] != ':') {
            return {};
        }
        domain = std::string(s.substr(0, 5));
        s.remove_prefix(5);
    }
    if (s.size() != 7 || !all_hex(s.substr(0, 2)) || s[2] != ':' || !all_hex(s.substr(3, 2)) || s[5] != '.' ||
        s[6] < '0' || s[6] > '7') {
        return {};
    }
    std::string out = domain + std::string(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

} // namespace

port_device classify(const port_config& port) {
    port_device d;
    const std::string_view spec = port.device;
    const std::string_view name = spec.substr(0, spec.find(','));
    if (std::string pci = pci_address_of(name); !pci.empty()) {
        d.what = port_device::kind::pci;
        d.pci_address = std::move(pci);
        return d;
    }
    if (!name.starts_with("net_af_xdp")) {
        return d;
    }
    d.what = port_device::kind::af_xdp;
    std::size_t pos = name.size();
    while (pos < spec.size()) {
        const std::size_t start = pos + 1;
        const std::size_t comma = spec.find(',', start);
        const std::string_view arg = spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        const auto eq = arg.find('=');
        const std::string_view key = arg.substr(0, eq);
        const std::string_view value = eq == std::string_view::npos ? std::string_view{} : arg.substr(eq + 1);
        std::uint32_t number = 0;
        const bool numeric = std::from_chars(value.data(), value.data() + value.size(), number).ec == std::errc();
        if (key == "iface") {
            d.iface = std::string(value);
        } else if (key == "start_queue" && numeric) {
            d.start_queue = number;
        } else if (key == "queue_count" && numeric) {
            d.queue_count = number;
        }
        pos = comma == std::string_view::npos ? spec.size() : comma;
    }
    return d;
}

// ---- CPU lists and the kernel command line --------------------------------------------------

std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view text) {
    std::set<unsigned> cpus;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        const auto number = [](std::string_view s) -> std::optional<unsigned> {
            unsigned v = 0;
            const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v >= 65536) {
                return std::nullopt;
            }
            return v;
        };
        const std::size_t dash = item.find('-');
        const auto first = number(item.substr(0, dash));
        const auto last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
        if (!first || !last || *last < *first) {
            return std::nullopt;
        }
        for (unsigned c = *first; c <= *last; ++c) {
            cpus.insert(c);
        }
    }
    return std::vector<unsigned>(cpus.begin(), cpus.end());
}

std::string format_cpu_list(const std::vector<unsigned>& cpus) {
    std::vector<unsigned> sorted = cpus;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::string out;
    for (std::size_t i = 0; i < sorted.size();) {
        std::size_t j = i;
        while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) {
            ++j;
        }
        out += (out.empty() ? "" : ",") + std::to_string(sorted[i]);
        if (j > i) {
            out += "-" + std::to_string(sorted[j]);
        }
        i = j + 1;
    }
    return out;
}

std::string grub_cmdline_fix(const host_reader& host, const std::vector<std::string>& parameters) {
    std::vector<std::string> words;
    if (const auto grub = host.read("/etc/default/grub")) {
        std::istringstream in(*grub);
        for (std::string line; std::getline(in, line);) {
            constexpr std::string_view key = "GRUB_CMDLINE_LINUX=";
            if (!line.starts_with(key)) {
                continue;
            }
            std::string value = line.substr(key.size());
            if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
                value = value.substr(1, value.size() - 2);
            }
            words.clear();
            std::istringstream w(value);
            for (std::string word; w >> word;) {
                words.push_back(word);
            }
        }
    }
    const auto key_of = [](std::string_view w) { return std::string(w.substr(0, w.find('='))); };
    for (const std::string& p : parameters) {
        const std::string key = key_of(p);
        std::erase_if(words, [&](const std::string& w) { return key_of(w) == key; });
        words.push_back(p);
    }
    std::string line = "/etc/default/grub: GRUB_CMDLINE_LINUX=\"";
    for (std::size_t i = 0; i < words.size(); ++i) {
        line += (i == 0 ? "" : " ") + words[i];
    }
    return line + "\"";
}

} // namespace kwik::ctl::doctor
