// kwik-gen's worker lcore loop; see worker.hpp.
#include "perf/gen/worker.hpp"

#include "perf/gen/pacer.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace kwik::gen {

namespace {

constexpr std::uint32_t max_burst = 512;

struct loop_state {
    worker_setup& s;
    pacer pace;
    std::uint32_t epoch = 0;
    bool sending = false;
    std::uint64_t until = 0;
    std::uint64_t budget = 0;
    bool budget_set = false; // --packets given: budget may be 0 for a worker
    std::uint64_t sent_in_trial = 0;
    double unit_cost = 1; // pacing cost of the last packet (1, or its wire bytes)
    bool by_bytes = false;
    std::uint64_t pcap_next = 0; // index into this worker's share of the pcap
    std::uint64_t pcap_loops = 0;
    std::array<rte_mbuf*, max_burst> tx{};
    std::array<built_packet, max_burst> built{};
    std::array<rte_mbuf*, max_burst> rx{};
};

void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
    model_counters::bump(a, n);
}

// A new trial from the main lcore: its rate, end and budget.
void take_trial(loop_state& l, std::uint32_t epoch, std::uint64_t now) noexcept {
    trial_control& c = *l.s.control;
    l.epoch = epoch;
    l.by_bytes = c.by_bytes.load(std::memory_order_relaxed);
    const double rate = c.rate_per_worker.load(std::memory_order_relaxed);
    l.until = c.send_until_tsc.load(std::memory_order_relaxed);
    const std::uint64_t total = c.packets.load(std::memory_order_relaxed);
    // worker i of W sends total / W, and one more for i < total % W: exactly total in all
    l.budget = total / l.s.workers + (l.s.index < total % l.s.workers ? 1 : 0);
    l.budget_set = total != 0;
    l.sent_in_trial = 0;
    l.sending = true;
    l.unit_cost = l.by_bytes ? 1500.0 : 1.0;
    l.pace.configure(rate, l.s.tsc_hz, l.unit_cost * l.s.options->burst, now);
    if (l.s.model != nullptr) {
        l.s.model->start_trial(epoch);
    }
    l.s.stats->latency.reset();
    l.s.stats->latency_corrected.reset();
    l.s.stats->idle.store(false, std::memory_order_relaxed);
    l.s.stats->epoch_seen.store(epoch, std::memory_order_release);
}

// Receives one burst from the queue and one from the inbox; returns the packets handled.
std::uint32_t receive(loop_state& l, std::uint64_t now) noexcept {
    worker_setup& s = l.s;
    model_counters& k = s.stats->counters;
    std::uint16_t n = rte_eth_rx_burst(s.port_id, s.queue, l.rx.data(), static_cast<std::uint16_t>(s.options->burst));
    const std::uint32_t from_port = n;
    if (n < s.options->burst && s.workers > 1) {
        n = static_cast<std::uint16_t>(n + rte_ring_sc_dequeue_burst(s.inboxes[s.index],
                                                                     reinterpret_cast<void**>(l.rx.data() + n),
                                                                     s.options->burst - n, nullptr));
    }
    if (n == 0) {
        return 0;
    }
    std::uint32_t keep = 0; // mbufs to free here (the others went to another worker)
    for (std::uint16_t i = 0; i < n; ++i) {
        if (i + 2 < n) {
            rte_prefetch0(rte_pktmbuf_mtod(l.rx[i + 2], void*));
        }
        rte_mbuf* m = l.rx[i];
        const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
        const std::uint32_t len = m->data_len;
        if (s.model != nullptr) {
            if (i < from_port && s.workers > 1) {
                const std::int32_t g = return_connection(*s.params, data, len);
                if (g >= 0 && static_cast<std::uint32_t>(g) % s.workers != s.index) {
                    if (rte_ring_mp_enqueue(s.inboxes[static_cast<std::uint32_t>(g) % s.workers], m) == 0) {
                        bump(k.handoff_sent);
                        continue;
                    }
                    bump(k.handoff_dropped);
                }
            }
            if (m->nb_segs > 1) { // the pool's buffers hold a whole MTU frame: not kwikd's
                bump(k.rx_packets);
                bump(k.rx_bytes, m->pkt_len);
                bump(k.other);
            } else {
                s.model->on_packet(data, len, now);
            }
        } else {
            bump(k.rx_packets);
            bump(k.rx_bytes, m->pkt_len);
            bool ours = false;
            if (len >= 12) {
                for (const auto& mac : s.pcap->source_macs) {
                    ours = ours || std::memcmp(data + 6, mac.data(), 6) == 0;
                }
            }
            if (ours) {
                bump(k.reflected);
                if (s.options->expect == expect_kind::reflect) {
                    bump(k.delivered);
                }
            } else {
                bump(k.other);
            }
        }
        l.rx[keep++] = m;
    }
    rte_pktmbuf_free_bulk(l.rx.data(), keep);
    return n;
}

// ACKs and PATH_RESPONSEs owed to kwikd: not offered traffic, sent before the data.
void send_control(loop_state& l, std::uint64_t now) noexcept {
    worker_setup& s = l.s;
    std::uint32_t n = 0;
    while (n < 32) {
        rte_mbuf* m = rte_pktmbuf_alloc(s.pool);
        if (m == nullptr) {
            break;
        }
        const std::uint32_t len = s.model->build_control(rte_pktmbuf_mtod(m, std::uint8_t*), now);
        if (len == 0) {
            rte_pktmbuf_free(m);
            break;
        }
        m->data_len = static_cast<std::uint16_t>(len);
        m->pkt_len = len;
        l.tx[n++] = m;
    }
    if (n == 0) {
        return;
    }
    const std::uint16_t sent = rte_eth_tx_burst(s.port_id, s.queue, l.tx.data(), static_cast<std::uint16_t>(n));
    bump(s.stats->counters.control_sent, sent);
    if (sent < n) {
        rte_pktmbuf_free_bulk(l.tx.data() + sent, n - sent);
    }
}

// One paced burst of data packets; returns how many were offered.
std::uint32_t send_data(loop_state& l, std::uint64_t now) noexcept {
    worker_setup& s = l.s;
    model_counters& k = s.stats->counters;
    if (now >= l.until || (l.budget_set && l.sent_in_trial >= l.budget) ||
        (s.pcap != nullptr && s.options->loop != 0 && l.pcap_loops >= s.options->loop)) {
        l.sending = false;
        s.stats->idle.store(true, std::memory_order_relaxed);
        return 0;
    }
    std::uint32_t want = l.pace.grant(now, l.unit_cost, s.options->burst);
    if (l.budget_set) {
        want = static_cast<std::uint32_t>(std::min<std::uint64_t>(want, l.budget - l.sent_in_trial));
    }
    if (want == 0) {
        return 0;
    }
    if (rte_pktmbuf_alloc_bulk(s.pool, l.tx.data(), want) != 0) {
        // Every mbuf is in the tx ring or in flight: nothing offered, the pacer keeps its tokens
        // and the burst is tried again; counted so that a generator short of mbufs shows.
        bump(k.pool_empty);
        return 0;
    }
    std::uint32_t n = 0;
    std::uint64_t frame_bytes = 0;
    std::uint64_t payload_bytes = 0;
    double cost = 0;
    if (s.model != nullptr) {
        for (; n < want; ++n) {
            rte_mbuf* m = l.tx[n];
            const built_packet b = s.model->build_packet(rte_pktmbuf_mtod(m, std::uint8_t*), now);
            if (b.length == 0) {
                break;
            }
            m->data_len = static_cast<std::uint16_t>(b.length);
            m->pkt_len = b.length;
            l.built[n] = b;
        }
    } else {
        const pcap_frames& p = *s.pcap;
        const std::uint64_t share = (p.size() + s.workers - 1 - s.index) / s.workers; // frames index, index + W, ..
        for (; n < want && share != 0; ++n) {
            if (l.pcap_next == share) {
                l.pcap_next = 0;
                if (s.options->loop != 0 && ++l.pcap_loops >= s.options->loop) {
                    break;
                }
            }
            const std::uint64_t f = s.index + l.pcap_next * s.workers;
            ++l.pcap_next;
            const std::uint32_t len = p.offset[f + 1] - p.offset[f];
            rte_mbuf* m = l.tx[n];
            std::memcpy(rte_pktmbuf_mtod(m, std::uint8_t*), p.bytes.data() + p.offset[f], len);
            m->data_len = static_cast<std::uint16_t>(len);
            m->pkt_len = len;
            l.built[n] = {len, p.udp_payload[f], 0, 0, 0};
        }
    }
    if (n < want) {
        rte_pktmbuf_free_bulk(l.tx.data() + n, want - n);
    }
    if (n == 0) {
        return 0;
    }
    const std::uint16_t sent = rte_eth_tx_burst(s.port_id, s.queue, l.tx.data(), static_cast<std::uint16_t>(n));
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint32_t wire = l.built[i].length + wire_overhead;
        cost += l.by_bytes ? wire : 1.0;
        if (i < sent) {
            frame_bytes += l.built[i].length;
            payload_bytes += l.built[i].payload_bytes;
        } else if (s.model != nullptr) {
            s.model->on_refused(l.built[i]);
        }
    }
    if (l.by_bytes) {
        l.unit_cost = cost / n;
    }
    l.pace.spend(cost);
    if (sent < n) {
        rte_pktmbuf_free_bulk(l.tx.data() + sent, n - sent);
        bump(k.tx_refused, n - sent);
    }
    bump(k.sent_packets, sent);
    bump(k.sent_frame_bytes, frame_bytes);
    bump(k.sent_payload_bytes, payload_bytes);
    l.sent_in_trial += n;
    return n;
}

} // namespace

int worker_main(void* arg) {
    worker_setup& s = *static_cast<worker_setup*>(arg);
    loop_state l{s, {}};
    const std::uint64_t sleep_after = s.idle_sleep_us == 0 ? 0 : 1;
    while (!s.control->stop.load(std::memory_order_relaxed)) {
        const std::uint64_t now = rte_rdtsc();
        const std::uint32_t epoch = s.control->epoch.load(std::memory_order_acquire);
        if (epoch != l.epoch) {
            take_trial(l, epoch, now);
        }
        if (l.sending && !s.control->sending.load(std::memory_order_relaxed)) {
            l.sending = false;
            s.stats->idle.store(true, std::memory_order_relaxed);
        }
        std::uint32_t work = receive(l, now);
        if (s.model != nullptr && s.model->control_due(now)) {
            send_control(l, now);
        }
        if (l.sending) {
            work += send_data(l, now);
        }
        if (work == 0 && sleep_after != 0) {
            rte_delay_us_sleep(s.idle_sleep_us);
        }
    }
    return 0;
}

} // namespace kwik::gen
