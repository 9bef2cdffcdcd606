// kwikctl watch; see watch.hpp.
#include "controlplane/kwikctl/watch.hpp"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

#include "controlplane/kwikctl/table_output.hpp"

namespace kwik::ctl {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }

// Signal handlers and a terminal stdin's mode for the loop's lifetime.
class loop_guard {
public:
    loop_guard() {
        struct sigaction sa{};
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART: poll() returns at once on Ctrl-C
        ::sigaction(SIGINT, &sa, &_old_int);
        ::sigaction(SIGTERM, &sa, &_old_term);
        if (::isatty(STDIN_FILENO) == 1 && ::tcgetattr(STDIN_FILENO, &_saved) == 0) {
            termios raw = _saved;
            raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
            raw.c_cc[VMIN] = 0;
            raw.c_cc[VTIME] = 0;
            _terminal = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        }
    }
    ~loop_guard() {
        if (_terminal) {
            ::tcsetattr(STDIN_FILENO, TCSANOW, &_saved);
        }
        ::sigaction(SIGINT, &_old_int, nullptr);
        ::sigaction(SIGTERM, &_old_term, nullptr);
    }
    loop_guard(const loop_guard&) = delete;
    loop_guard& operator=(const loop_guard&) = delete;

    bool terminal_input() const noexcept { return _terminal; }

private:
    struct sigaction _old_int{};
    struct sigaction _old_term{};
    termios _saved{};
    bool _terminal = false;
};

// Waits up to ms for the interval to pass; false when the loop should end (q, Ctrl-C).
bool wait_interval(std::uint32_t ms, bool keys) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (g_stop == 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            return true;
        }
        pollfd p{STDIN_FILENO, POLLIN, 0};
        const int n = ::poll(&p, keys ? 1 : 0, static_cast<int>(left));
        if (n > 0 && (p.revents & POLLIN) != 0) {
            char c = 0;
            if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) {
                return false;
            }
        }
    }
    return false;
}

} // namespace

std::string watch_frame(std::string_view title, std::uint32_t interval_ms, std::time_t now,
                        const kcp::v3::OperatorResponse& response, bool terminal) {
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char clock[16];
    std::strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    std::string s = terminal ? "\x1b[H\x1b[2J" : "";
    s += "kwikctl watch " + std::string(title) + "  every " + std::to_string(interval_ms) + " ms  " + clock + " UTC" +
         (terminal ? "  (q quits)" : "") + "\n\n";
    s += render_text(response);
    if (!terminal) {
        s += "\n";
    }
    return s;
}

int run_watch(operator_session& session, const invocation& inv, std::FILE* out, std::FILE* err) {
    g_stop = 0;
    loop_guard guard;
    const bool terminal = ::isatty(::fileno(out)) == 1 && !inv.json;
    std::string title(view_name(inv.request.show().view()));
    if (!inv.request.show().connection().empty()) {
        title += " --connection " + inv.request.show().connection();
    }
    for (std::uint64_t round = 1; g_stop == 0; ++round) {
        auto r = session.request(inv.request);
        if (!r) {
            if (g_stop != 0) {
                break; // asked to stop while the request was out: not a failure of the session
            }
            std::fprintf(err, "kwikctl: %s\n", r.message().c_str());
            return exit_unreachable;
        }
        if (inv.json) {
            std::fprintf(out, "%s\n", to_json(*r).dump().c_str());
        } else {
            std::fputs(watch_frame(title, inv.interval_ms, std::time(nullptr), *r, terminal).c_str(), out);
        }
        std::fflush(out);
        if (!r->ok()) {
            std::fprintf(err, "kwikctl: %s\n", r->error().c_str());
            return exit_refused;
        }
        if (inv.count != 0 && round >= inv.count) {
            break;
        }
        if (!wait_interval(inv.interval_ms, guard.terminal_input())) {
            break;
        }
    }
    return exit_ok;
}

} // namespace kwik::ctl
