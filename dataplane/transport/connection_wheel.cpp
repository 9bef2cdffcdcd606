#include "dataplane/transport/connection_wheel.hpp"

namespace kwik::transport {

connection_wheel::entry::entry(connection* conn, connection_wheel* owner) noexcept
    : t(&connection_wheel::fire, this), c(conn), wheel(owner) {}

connection_wheel::connection_wheel(time_ns tick, time_ns now) : _wheel(tick, now) {}

connection_wheel::~connection_wheel() {
    for (auto& [c, e] : _entries) {
        _wheel.cancel(e->t);
    }
}

bool connection_wheel::add(connection& c) {
    auto [it, inserted] = _entries.emplace(&c, nullptr);
    if (!inserted) {
        return false;
    }
    it->second = std::make_unique<entry>(&c, this);
    arm(*it->second);
    return true;
}

bool connection_wheel::remove(connection& c) {
    const auto it = _entries.find(&c);
    if (it == _entries.end()) {
        return false;
    }
    _wheel.cancel(it->second->t);
    _entries.erase(it);
    return true;
}

void connection_wheel::arm(entry& e) noexcept {
    const time_ns at = e.c->next_wakeup();
    if (at == never) {
        _wheel.cancel(e.t);
    } else {
        _wheel.schedule(e.t, at);
    }
}

void connection_wheel::touch(connection& c) noexcept {
    const auto it = _entries.find(&c);
    if (it != _entries.end()) {
        arm(*it->second);
    }
}

void connection_wheel::fire(timer& t, time_ns now) noexcept {
    auto* e = static_cast<entry*>(t.context());
    e->c->flush(now);
    ++e->wheel->_ran;
    e->wheel->arm(*e);
}

std::size_t connection_wheel::poll(time_ns now) noexcept {
    _ran = 0;
    _wheel.advance(now);
    return _ran;
}

} // namespace kwik::transport
