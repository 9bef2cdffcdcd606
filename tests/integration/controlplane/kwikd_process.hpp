// A kwikd process for the control-plane integration tests: one net_null port with address
// 10.9.0.1/24 and kwik port 7707, no static connection unless `extra` (TOML appended to the
// configuration) adds some, its region named `name`, its log in dir/name.log. Test thread only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <string>

namespace kwik::test {

class kwikd_process {
public:
    kwikd_process(const std::string& kwikd, const std::string& name, const std::filesystem::path& dir,
                  const std::string& extra = {}) {
        const std::filesystem::path config = dir / (name + ".toml");
        std::ofstream(config) << "[kwikd]\nname = \"" << name
                              << "\"\nworker_lcores = [1]\nhugepages = false\nmemory_mb = 256\n"
                                 "stats_interval_ms = 0\n\n[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\n"
                                 "addresses = [\"10.9.0.1/24\"]\nkwik_ports = [7707]\n"
                              << extra;
        const std::filesystem::path log = dir / (name + ".log");
        _pid = ::fork();
        if (_pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::execl(kwikd.c_str(), kwikd.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~kwikd_process() { stop(SIGTERM); }
    void signal(int sig) const {
        if (_pid > 0) {
            ::kill(_pid, sig);
        }
    }
    int stop(int sig) {
        if (_pid <= 0) {
            return 0;
        }
        ::kill(_pid, SIGCONT);
        ::kill(_pid, sig);
        int status = 0;
        ::waitpid(_pid, &status, 0);
        _pid = -1;
        return status;
    }

private:
    pid_t _pid = -1;
};

// Prints every *.log in dir (kwikd's own words help most when a step failed).
inline void print_logs(const std::filesystem::path& dir) {
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
        if (f.path().extension() == ".log") {
            std::ifstream in(f.path());
            std::printf("---- %s\n%s\n", f.path().c_str(), std::string(std::istreambuf_iterator<char>(in), {}).c_str());
        }
    }
}

} // namespace kwik::test
