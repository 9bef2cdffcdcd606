// An in-process control_server's event loop for the integration tests: run_once(5) on a thread
// of its own from construction until pause() or destruction. The test thread may touch the
// server itself only while the loop is paused (pause() joins the thread; resume() restarts it).
#pragma once

#include <atomic>
#include <thread>

#include "controlplane/server/kwik_cp/control_server.hpp"

namespace kwik::test {

class server_loop {
public:
    explicit server_loop(cp::control_server& server) : _server(server) { resume(); }
    server_loop(const server_loop&) = delete;
    server_loop& operator=(const server_loop&) = delete;
    ~server_loop() { pause(); }

    void resume() {
        if (_loop.joinable()) {
            return; // running
        }
        _stop = false;
        _loop = std::thread([this] {
            while (!_stop) {
                _server.run_once(5);
            }
        });
    }
    void pause() {
        _stop = true;
        if (_loop.joinable()) {
            _loop.join();
        }
    }

private:
    cp::control_server& _server;
    std::atomic<bool> _stop{false};
    std::thread _loop;
};

} // namespace kwik::test
