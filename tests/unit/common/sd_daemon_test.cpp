// common/sd_daemon.*: journal stream detection, the "<N>" priority stream (whole lines, lines in
// pieces, lines already prefixed), sd_notify datagrams to a path and an abstract socket, and
// WATCHDOG_USEC / WATCHDOG_PID. Environment variables are set and restored per test.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "common/sd_daemon.hpp"

namespace {

namespace sd = kwik::sd;

// Sets an environment variable for one test and puts the old value back.
class scoped_env {
public:
    scoped_env(const char* name, const std::optional<std::string>& value) : _name(name) {
        if (const char* old = std::getenv(name)) {
            _old = old;
        }
        if (value) {
            ::setenv(name, value->c_str(), 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~scoped_env() {
        if (_old) {
            ::setenv(_name, _old->c_str(), 1);
        } else {
            ::unsetenv(_name);
        }
    }

private:
    const char* _name;
    std::optional<std::string> _old;
};

std::string stream_id(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

std::string read_all(int fd) {
    std::string out;
    std::array<char, 4096> buf{};
    ssize_t n = 0;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    return out;
}

TEST(sd_daemon, journal_stream_is_the_one_journal_stream_names) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    {
        scoped_env env("JOURNAL_STREAM", std::nullopt);
        EXPECT_FALSE(sd::is_journal_stream(p[1]));
        EXPECT_EQ(sd::journal_prefix(p[1], sd::priority::info), "");
    }
    {
        scoped_env env("JOURNAL_STREAM", stream_id(p[1]));
        EXPECT_TRUE(sd::is_journal_stream(p[1]));
        EXPECT_EQ(sd::journal_prefix(p[1], sd::priority::warning), "<4>");
        int q[2];
        ASSERT_EQ(::pipe(q), 0);
        EXPECT_FALSE(sd::is_journal_stream(q[1])) << "another pipe is not the journal";
        ::close(q[0]);
        ::close(q[1]);
    }
    for (const char* bad : {"", "12", "12:", ":34", "1:2:3", "x:y"}) {
        scoped_env env("JOURNAL_STREAM", std::string(bad));
        EXPECT_FALSE(sd::is_journal_stream(p[1])) << bad;
    }
    ::close(p[0]);
    ::close(p[1]);
}

int next_priority(void* context) {
    return (*static_cast<int*>(context))++;
}

TEST(sd_daemon, priority_stream_prefixes_each_line_once) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    int priority = 3; // each line asks once: 3, 4, 5, ...
    FILE* f = sd::open_priority_stream(p[1], next_priority, &priority);
    ASSERT_NE(f, nullptr);
    std::fputs("first line\n", f);
    std::fputs("second ", f); // a line in pieces: one prefix, at its first byte
    std::fflush(f);
    std::fputs("line\nthird\n<1>already prefixed\n", f);
    std::fputs("<x> not a priority\n", f);
    std::fclose(f); // fd stays open
    EXPECT_EQ(::write(p[1], "", 0), 0);
    ::close(p[1]);
    EXPECT_EQ(read_all(p[0]), "<3>first line\n<4>second line\n<5>third\n<1>already prefixed\n<6><x> not a priority\n");
    ::close(p[0]);
}

TEST(sd_daemon, priority_out_of_range_is_clamped) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    int priority = 9;
    FILE* f = sd::open_priority_stream(p[1], next_priority, &priority);
    ASSERT_NE(f, nullptr);
    std::fputs("a\n", f);
    priority = -2;
    std::fputs("b\n", f);
    std::fclose(f);
    ::close(p[1]);
    EXPECT_EQ(read_all(p[0]), "<7>a\n<0>b\n");
    ::close(p[0]);
}

// A datagram socket bound at addr (a path, or "@name" for the abstract namespace).
int bind_notify_socket(const std::string& where) {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::copy(where.begin(), where.end(), a.sun_path);
    socklen_t len = sizeof(sa_family_t) + where.size() + 1;
    if (where[0] == '@') {
        a.sun_path[0] = '\0';
        len = static_cast<socklen_t>(sizeof(sa_family_t) + where.size());
    }
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0) << where;
    return fd;
}

std::string receive(int fd) {
    std::array<char, 512> buf{};
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

TEST(sd_daemon, notify_sends_one_datagram) {
    {
        scoped_env env("NOTIFY_SOCKET", std::nullopt);
        auto r = sd::notify("READY=1");
        ASSERT_TRUE(r.ok());
        EXPECT_FALSE(*r) << "nothing to tell without NOTIFY_SOCKET";
    }
    char dir[] = "/tmp/kwik_sd_XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string path = std::string(dir) + "/notify";
    const int fd = bind_notify_socket(path);
    {
        scoped_env env("NOTIFY_SOCKET", path);
        auto r = sd::notify("READY=1\nSTATUS=2 worker(s)");
        ASSERT_TRUE(r.ok()) << r.message();
        EXPECT_TRUE(*r);
        EXPECT_EQ(receive(fd), "READY=1\nSTATUS=2 worker(s)");
    }
    const std::string abstract = "@kwik_sd_test_" + std::to_string(::getpid());
    const int afd = bind_notify_socket(abstract);
    {
        scoped_env env("NOTIFY_SOCKET", abstract);
        auto r = sd::notify("WATCHDOG=1");
        ASSERT_TRUE(r.ok()) << r.message();
        EXPECT_EQ(receive(afd), "WATCHDOG=1");
    }
    ::close(fd);
    ::close(afd);
    ::unlink(path.c_str());
    {
        scoped_env env("NOTIFY_SOCKET", path); // nobody listens any more
        auto r = sd::notify("STOPPING=1");
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.message(), "NOTIFY_SOCKET=" + path + ": No such file or directory");
    }
    {
        scoped_env env("NOTIFY_SOCKET", "relative/socket");
        auto r = sd::notify("READY=1");
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.message().find("NOTIFY_SOCKET=relative/socket: not a unix socket path"), std::string::npos);
    }
    ::rmdir(dir);
}

TEST(sd_daemon, watchdog_interval_for_this_process_only) {
    scoped_env pid("WATCHDOG_PID", std::nullopt);
    {
        scoped_env usec("WATCHDOG_USEC", std::nullopt);
        EXPECT_FALSE(sd::watchdog_interval());
    }
    scoped_env usec("WATCHDOG_USEC", std::string("3000000"));
    ASSERT_TRUE(sd::watchdog_interval());
    EXPECT_EQ(sd::watchdog_interval()->count(), 3000000);
    {
        scoped_env mine("WATCHDOG_PID", std::to_string(::getpid()));
        EXPECT_TRUE(sd::watchdog_interval());
    }
    {
        scoped_env other("WATCHDOG_PID", std::to_string(::getpid() + 1));
        EXPECT_FALSE(sd::watchdog_interval()) << "meant for another process";
    }
    for (const char* bad : {"0", "", "10s", "-5"}) {
        scoped_env b("WATCHDOG_USEC", std::string(bad));
        EXPECT_FALSE(sd::watchdog_interval()) << bad;
    }
}

} // namespace
