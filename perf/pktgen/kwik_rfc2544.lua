-- kwik_rfc2544.lua: Pktgen-DPDK (23.06.1) script. The zero-loss throughput of kwikd for the
-- Kwik capture pktgen loaded with -s PORT:FILE, by binary search (RFC 2544 26.1): trials of
-- KWIK_TRIAL_S seconds at a rate (percent of line rate), loss = frames pktgen sent - frames
-- kwikd's port received and kept, until the passing and failing rates are within
-- KWIK_RESOLUTION. One capture (one frame size) per pktgen run: pktgen loads its pcap at
-- start-up, so run_rfc2544.sh starts pktgen once per size; each run appends its row to
-- KWIK_RESULTS.csv and its trials to KWIK_RESULTS.jsonl and prints the table of every row so far.
--
--   KWIK_PCAP=/srv/kwik/kwik-64.pcap KWIK_RESULTS=/srv/kwik/rfc2544 \
--   script -qfec "pktgen -l 0-2 -n 4 -a 0000:3b:00.0 -- -P -T -m '[1:2].0' \
--       -s 0:/srv/kwik/kwik-64.pcap -f perf/pktgen/kwik_rfc2544.lua" /dev/null
--
-- Settings (environment variables; every one is checked and a bad one stops the script with
-- its name): see `spec` below, or perf/pktgen/README.md. Lua 5.3 and 5.4.
local script_dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
package.path = script_dir .. "?.lua;" .. package.path
local kp = require("kwik_pktgen")

local SCRIPT = "kwik_rfc2544"

local spec = kp.spec({
    { name = "KWIK_PCAP", kind = "string", help = "the pcap pktgen sends (its -s PORT:FILE): read for frame sizes" },
    { name = "KWIK_LABEL", kind = "string", default = "", help = "the row's name (default: the pcap's file name)" },
    { name = "KWIK_TRIAL_S", kind = "number", default = 10, min = 1, max = 3600,
      help = "seconds per trial (RFC 2544 asks for 60)" },
    { name = "KWIK_MIN_RATE", kind = "number", default = 1, min = 0.01, max = 100, help = "lowest rate tried, % of line rate" },
    { name = "KWIK_MAX_RATE", kind = "number", default = 100, min = 0.01, max = 100, help = "highest rate tried, % of line rate" },
    { name = "KWIK_RESOLUTION", kind = "number", default = 0.5, min = 0.001, max = 100,
      help = "stop when passing and failing rates are this close, % of line rate" },
    { name = "KWIK_LOSS_TOLERANCE", kind = "number", default = 0, min = 0, max = 100,
      help = "percent of frames sent that may be lost and still pass (0: RFC 2544's zero loss)" },
    { name = "KWIK_MAX_TRIALS", kind = "integer", default = 40, min = 2, max = 1000, help = "give up after this many trials" },
    { name = "KWIK_WARMUP_S", kind = "number", default = 2, min = 0, max = 3600,
      help = "seconds at KWIK_MIN_RATE before the first trial (kwikd takes the capture's new data then)" },
}, kp.dut_settings(), {
    { name = "KWIK_SETTLE_MS", kind = "integer", default = 2000, min = 1100, max = 60000,
      help = "wait after each trial before counting (pktgen's stats tick is 1 s)" },
    { name = "KWIK_RESULTS", kind = "string", default = "kwik-rfc2544",
      help = "results: appends PATH.csv (one row per size) and PATH.jsonl (the row with its trials)" },
    { name = "KWIK_QUIT", kind = "bool", default = true, help = "quit pktgen at the end" },
})

local csv_header = { "label", "pcap", "frame_bytes", "packets_in_pcap", "zero_loss_rate_pct", "failing_rate_pct",
                     "zero_loss_pps", "zero_loss_wire_mbps", "trials", "trial_s", "loss_tolerance_pct", "loss_from",
                     "result" }

-- The rows already in PATH.csv (earlier sizes), then this one: the whole table.
local function read_rows(path)
    local f = io.open(path, "r")
    if f == nil then
        return {}
    end
    local rows = {}
    local header
    for line in f:lines() do
        -- Labels and paths never hold a comma or a quote (checked below): plain split.
        local fields = {}
        for field in (line .. ","):gmatch("([^,]*),") do
            fields[#fields + 1] = field
        end
        if header == nil then
            header = fields
        else
            local row = {}
            for i, name in ipairs(header) do
                row[name] = fields[i]
            end
            rows[#rows + 1] = row
        end
    end
    f:close()
    return rows
end

local function print_table(rows)
    print(string.format("%s: %-22s %8s %14s %14s %16s %14s %7s  %s", SCRIPT, "capture", "frame B", "zero-loss %",
        "failing %", "zero-loss pps", "wire Mbit/s", "trials", "result"))
    for _, r in ipairs(rows) do
        print(string.format("%s: %-22s %8s %14s %14s %16s %14s %7s  %s", SCRIPT, r.label, r.frame_bytes,
            r.zero_loss_rate_pct, r.failing_rate_pct, r.zero_loss_pps, r.zero_loss_wire_mbps, r.trials, r.result))
    end
end

local cfg
local ok, err = pcall(function()
    cfg = kp.settings(spec)
    if cfg.min_rate > cfg.max_rate then
        kp.fail("KWIK_MIN_RATE", string.format("%g is above KWIK_MAX_RATE (%g)", cfg.min_rate, cfg.max_rate))
    end
    if cfg.resolution >= cfg.max_rate - cfg.min_rate and cfg.max_rate > cfg.min_rate then
        kp.fail("KWIK_RESOLUTION", string.format("%g is not below KWIK_MAX_RATE - KWIK_MIN_RATE (%g)", cfg.resolution,
            cfg.max_rate - cfg.min_rate))
    end
    if cfg.rx_port < 0 then
        cfg.rx_port = cfg.tx_port
    end
    if cfg.label == "" then
        cfg.label = cfg.pcap:match("([^/]+)$"):gsub("%.pcap$", "")
    end
    if cfg.label:find('[,"\n]') then
        kp.fail("KWIK_LABEL", "'" .. cfg.label .. "' holds a comma, quote or newline")
    end
    if cfg.pcap:find('[,"\n]') then
        kp.fail("KWIK_PCAP", "'" .. cfg.pcap .. "' holds a comma, quote or newline (it goes into a CSV file)")
    end
    local pcap = kp.read_pcap("KWIK_PCAP", cfg.pcap)
    for _, ext in ipairs({ ".csv", ".jsonl" }) do
        local f, why = io.open(cfg.results .. ext, "a")
        if f == nil then
            kp.fail("KWIK_RESULTS", "cannot write " .. cfg.results .. ext .. ": " .. tostring(why))
        end
        f:close()
    end
    local port = tostring(cfg.tx_port)
    local size = math.max(64, math.min(1518, math.floor(pcap.mean_frame + 0.5) + 4))

    print(string.format("%s: %s: %d packets, frames %d-%d bytes (mean %.1f); rates %g-%g%% of line rate, "
        .. "resolution %g, %g s trials, loss tolerance %g%%, loss counted by %s", SCRIPT, cfg.pcap, pcap.packets,
        pcap.min_frame, pcap.max_frame, pcap.mean_frame, cfg.min_rate, cfg.max_rate, cfg.resolution, cfg.trial_s,
        cfg.loss_tolerance, cfg.loss_from))
    kp.check_ports(cfg)
    pktgen.stop(port)
    pktgen.pcap(port, "on")
    pktgen.set(port, "size", size)

    if cfg.warmup_s > 0 then
        -- The capture's first pass is new data (reassembly, delivery, ACKs); every later pass is
        -- duplicates. Sending it here keeps every trial on the same, replayed, traffic.
        local w = kp.trial(cfg, cfg.min_rate, cfg.warmup_s)
        print(string.format("%s: warm-up at %g%%: %s sent, kwikd took %s new-data packets (the capture has %d)",
            SCRIPT, cfg.min_rate, kp.fmt_count(w.tx), kp.fmt_count(w.kwikd_new), pcap.packets))
        if w.tx < pcap.packets then
            print(string.format("%s: note: the warm-up sent less than one pass of the capture: the first trial "
                .. "carries new data, the others do not (raise KWIK_WARMUP_S)", SCRIPT))
        end
    end

    local trials = setmetatable({}, kp.array_mt)
    local function run(rate)
        if #trials >= cfg.max_trials then
            kp.fail("KWIK_MAX_TRIALS", string.format("%d trials without reaching KWIK_RESOLUTION", cfg.max_trials))
        end
        local r = kp.trial(cfg, rate, cfg.trial_s)
        if r.tx == 0 then
            kp.fail("KWIK_PCAP", string.format("pktgen sent nothing at %g%% (is the port up, and was pktgen "
                .. "started with -s %d:%s?)", rate, cfg.tx_port, cfg.pcap))
        end
        trials[#trials + 1] = r
        print(string.format("%s: trial %2d at %8.3f%%: sent %s (%s pps), kwikd received %s, dropped %s (%s), "
            .. "loss %s (%.4f%%): %s", SCRIPT, #trials, rate, kp.fmt_count(r.tx), kp.fmt_count(r.pps),
            kp.fmt_count(r.kwikd_rx), kp.fmt_count(r.kwikd_dropped), kp.drops_text(r.drops), kp.fmt_count(r.loss),
            r.loss_pct, r.pass and "pass" or "FAIL"))
        return r
    end

    -- RFC 2544 26.1: the highest rate without loss. Try the top first (a DUT that keeps up
    -- with line rate needs one trial), then the bottom (nothing to search if it fails there),
    -- then halve the interval between the best pass and the lowest failure.
    local best, failing
    local top = run(cfg.max_rate)
    if top.pass then
        best = top
    else
        failing = top
        if cfg.min_rate < cfg.max_rate then
            local bottom = run(cfg.min_rate)
            if bottom.pass then
                best = bottom
                while failing.rate - best.rate > cfg.resolution do
                    local r = run((best.rate + failing.rate) / 2)
                    if r.pass then
                        best = r
                    else
                        failing = r
                    end
                end
            end
        end
    end

    local result
    if best ~= nil and failing == nil then
        result = "no loss at KWIK_MAX_RATE"
    elseif best ~= nil then
        result = "ok"
    else
        result = "loss at KWIK_MIN_RATE"
    end
    local row = { label = cfg.label, pcap = cfg.pcap, frame_bytes = string.format("%.1f", pcap.mean_frame),
                  packets_in_pcap = pcap.packets,
                  zero_loss_rate_pct = best and string.format("%.3f", best.rate) or "-",
                  failing_rate_pct = failing and string.format("%.3f", failing.rate) or "-",
                  zero_loss_pps = best and string.format("%.0f", best.pps) or "-",
                  zero_loss_wire_mbps = best and string.format("%.1f", kp.wire_mbps(best.pps, pcap.mean_frame)) or "-",
                  trials = #trials, trial_s = cfg.trial_s, loss_tolerance_pct = cfg.loss_tolerance,
                  loss_from = cfg.loss_from, result = result }

    local csv_path = cfg.results .. ".csv"
    local probe = io.open(csv_path, "r")
    local empty = probe == nil or probe:read(1) == nil
    if probe then
        probe:close()
    end
    local f = assert(io.open(csv_path, "a"))
    if empty then
        f:write(kp.csv_line(csv_header), "\n")
    end
    local fields = {}
    for i, name in ipairs(csv_header) do
        fields[i] = row[name]
    end
    f:write(kp.csv_line(fields), "\n")
    f:close()

    local j = {}
    for k, v in pairs(row) do
        j[k] = v
    end
    j.trials = trials
    j.zero_loss_rate_pct = best and best.rate or nil
    j.failing_rate_pct = failing and failing.rate or nil
    j.resolution_pct = cfg.resolution
    j.frame_bytes = pcap.mean_frame
    f = assert(io.open(cfg.results .. ".jsonl", "a"))
    f:write(kp.json_encode(j), "\n")
    f:close()

    print(string.format("%s: %s: zero-loss rate %s%% of line rate (%s pps, %s Mbit/s on the wire); %s; %d trials: %s",
        SCRIPT, cfg.label, row.zero_loss_rate_pct, row.zero_loss_pps, row.zero_loss_wire_mbps,
        failing and ("lowest failing rate " .. row.failing_rate_pct .. "%") or "no failing rate",
        #trials, result))
    print_table(read_rows(csv_path))
end)
if not ok then
    kp.ends(cfg, SCRIPT, err)
end
if cfg.quit then
    pktgen.quit()
end
