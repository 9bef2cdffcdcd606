-- kwik_rate.lua: Pktgen-DPDK (23.06.1) script. Sends the Kwik capture pktgen loaded with
-- -s PORT:FILE at one rate for a set time and prints pktgen's tx/rx counters beside kwikd's
-- (read with kwikd-cmd), the loss between them and kwikd's drops by reason.
--
--   KWIK_PCAP=/srv/kwik/kwik-1400.pcap KWIK_RATE=40 KWIK_SECONDS=10 \
--   script -qfec "pktgen -l 0-2 -n 4 -a 0000:3b:00.0 -- -P -T -m '[1:2].0' \
--       -s 0:/srv/kwik/kwik-1400.pcap -f perf/pktgen/kwik_rate.lua" /dev/null
--
-- Settings (environment variables; every one is checked and a bad one stops the script with
-- its name): see `spec` below, or perf/pktgen/README.md. Lua 5.3 and 5.4.
local script_dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
package.path = script_dir .. "?.lua;" .. package.path
local kp = require("kwik_pktgen")

local SCRIPT = "kwik_rate"

local spec = kp.spec({
    { name = "KWIK_PCAP", kind = "string", help = "the pcap pktgen sends (its -s PORT:FILE): read for frame sizes" },
    { name = "KWIK_RATE", kind = "number", default = 10, min = 0.01, max = 100, help = "percent of line rate" },
    { name = "KWIK_SECONDS", kind = "number", default = 10, min = 1, max = 86400, help = "time sending" },
}, kp.dut_settings(), {
    { name = "KWIK_LOSS_TOLERANCE", kind = "number", default = 0, min = 0, max = 100,
      help = "percent of frames sent that may be lost and still pass" },
    { name = "KWIK_SETTLE_MS", kind = "integer", default = 2000, min = 1100, max = 60000,
      help = "wait after stopping before counting (pktgen's stats tick is 1 s)" },
    { name = "KWIK_RESULTS", kind = "string", default = "", help = "also write the result as JSON to this file" },
    { name = "KWIK_QUIT", kind = "bool", default = true, help = "quit pktgen at the end" },
})

local cfg
local ok, err = pcall(function()
    cfg = kp.settings(spec)
    if cfg.rx_port < 0 then
        cfg.rx_port = cfg.tx_port
    end
    local pcap = kp.read_pcap("KWIK_PCAP", cfg.pcap)
    local port = tostring(cfg.tx_port)
    -- pktgen counts a frame's size with its FCS; in pcap mode the capture's frames are sent
    -- as they are, and "size" only feeds pktgen's rate arithmetic.
    local size = math.max(64, math.min(1518, math.floor(pcap.mean_frame + 0.5) + 4))

    print(string.format("%s: %s: %d packets, frames %d-%d bytes (mean %.1f); pktgen port %d at %g%% for %g s",
        SCRIPT, cfg.pcap, pcap.packets, pcap.min_frame, pcap.max_frame, pcap.mean_frame, cfg.tx_port, cfg.rate,
        cfg.seconds))
    kp.check_ports(cfg)
    pktgen.stop(port)
    pktgen.pcap(port, "on")
    pktgen.set(port, "size", size)

    local r = kp.trial(cfg, cfg.rate, cfg.seconds, function(i, rate)
        print(string.format("%s: %3d s  tx %s pps  %s Mbit/s  rx %s pps", SCRIPT, i, kp.fmt_count(rate.pkts_tx),
            kp.fmt_count(rate.mbits_tx), kp.fmt_count(rate.pkts_rx)))
    end)

    local wire = kp.wire_mbps(r.pps, pcap.mean_frame)
    print(string.format("%s: pktgen port %d: sent %s packets (%s bytes, %s tx errors) = %s pps, %.1f Mbit/s on the wire",
        SCRIPT, cfg.tx_port, kp.fmt_count(r.tx), kp.fmt_count(r.tx_bytes), kp.fmt_count(r.tx_errors),
        kp.fmt_count(r.pps), wire))
    print(string.format("%s: pktgen port %d: received %s packets (kwikd's ACKs, or the reflected frames), missed %s",
        SCRIPT, cfg.rx_port, kp.fmt_count(r.pktgen_rx), kp.fmt_count(r.pktgen_imissed)))
    print(string.format("%s: kwikd port %d: received %s packets, dropped %s (%s), sent %s; new data %s packets, "
        .. "%s stream bytes delivered", SCRIPT, cfg.dut_port, kp.fmt_count(r.kwikd_rx), kp.fmt_count(r.kwikd_dropped),
        kp.drops_text(r.drops), kp.fmt_count(r.kwikd_tx), kp.fmt_count(r.kwikd_new), kp.fmt_count(r.kwikd_delivered)))
    if r.extra > 0 then
        print(string.format("%s: note: %s more packets counted than pktgen sent: other traffic reached the port",
            SCRIPT, kp.fmt_count(r.extra)))
    end
    print(string.format("%s: loss %s of %s (%.4f%%, counted by %s): %s", SCRIPT, kp.fmt_count(r.loss),
        kp.fmt_count(r.tx), r.loss_pct, cfg.loss_from, r.pass and "PASS" or "FAIL"))
    if cfg.results ~= "" then
        local f, why = io.open(cfg.results, "w")
        if f == nil then
            kp.fail("KWIK_RESULTS", "cannot write " .. cfg.results .. ": " .. tostring(why))
        end
        r.pcap = cfg.pcap
        r.frame_bytes = pcap.mean_frame
        r.wire_mbps = wire
        r.loss_from = cfg.loss_from
        f:write(kp.json_encode(r), "\n")
        f:close()
    end
end)
if not ok then
    kp.ends(cfg, SCRIPT, err)
end
if cfg.quit then
    pktgen.quit()
end
