-- pktgen_model.lua: a model of Pktgen-DPDK 23.06.1 for testing perf/pktgen's scripts where
-- pktgen cannot run. Started like pktgen (EAL arguments, then -- and pktgen's own: -s P:FILE
-- loads a pcap on port P, -f FILE runs a Lua script, -m/-P/-T/-N/-G are accepted), it gives the
-- script a global `pktgen` with the functions the scripts call, with 23.06.1's argument counts,
-- port-list strings and portStats field names, over a simulated clock and a simulated DUT:
--
--   pktgen side: rate (percent of line rate) x line rate of the frame size ("size", FCS
--     included, plus 20 bytes of preamble and gap) at KWIK_MODEL_LINK_MBPS, capped at
--     KWIK_MODEL_GEN_MAX_PPS; portStats "port" and "rate" are the values of the last 1-second
--     stats tick (at 437 ms past each second of the model's clock, so never in step with the
--     script's delays), as pktgen's timer-driven prev_stats / rate_stats are; clr() zeroes them.
--   kwikd side: takes at most KWIK_MODEL_CAPACITY_PPS (the known zero-loss rate); the rest is
--     missed by the NIC (counted nowhere in kwikd); of what it takes it drops
--     KWIK_MODEL_DROP_PPM per million as bad_udp_checksum; frames sent outside pcap mode are
--     not Kwik and are dropped as not_for_us; as many packets as the pcap holds are new data
--     (the connection counts them), every later one a replayed duplicate; one ACK goes back
--     per 4 new-data packets. Its counters are written to KWIK_MODEL_STATE after every call,
--     current and as last published (1 s ticks), for fake-kwikd-cmd/kwikd-cmd to print.
--
-- The script's end: exit 0 after pktgen.quit(); 1 if the script raised an error; 3 if it ended
-- without pktgen.quit() (real pktgen would then wait at its prompt forever).
local model_args = { ... }

local function env_number(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    local n = tonumber(v)
    if n == nil then
        io.stderr:write("pktgen_model: " .. name .. ": '" .. v .. "' is not a number\n")
        os.exit(2)
    end
    return n
end

local sim = {
    link_mbps = env_number("KWIK_MODEL_LINK_MBPS", 10000),
    gen_max_pps = env_number("KWIK_MODEL_GEN_MAX_PPS", 1e12),
    capacity_pps = env_number("KWIK_MODEL_CAPACITY_PPS", 1e12),
    drop_ppm = env_number("KWIK_MODEL_DROP_PPM", 0),
    nports = math.tointeger(env_number("KWIK_MODEL_PORTS", 1)),
    state_path = os.getenv("KWIK_MODEL_STATE"),
    trace_path = os.getenv("KWIK_MODEL_TRACE"),
}

-- ---- command line, as pktgen's ------------------------------------------------------------

local script
local pcaps = {}
do
    local i, app = 1, false
    while i <= #model_args do
        local a = model_args[i]
        if a == "--" then
            app = true
        elseif app and a == "-f" then
            script = model_args[i + 1]
            i = i + 1
        elseif app and a == "-s" then
            local p, file = (model_args[i + 1] or ""):match("^(%d+):(.+)$")
            if p == nil then
                io.stderr:write("pktgen_model: -s takes P:FILE, got '" .. tostring(model_args[i + 1]) .. "'\n")
                os.exit(2)
            end
            pcaps[tonumber(p)] = file
            i = i + 1
        elseif app and (a == "-m" or a == "-l" or a == "-G") then
            i = i + 1
        end
        i = i + 1
    end
end
if script == nil then
    io.stderr:write("pktgen_model: no -f SCRIPT after --\n")
    os.exit(2)
end

-- A pcap's packet count and mean frame size, as pktgen_pcap_parse() loads it.
local function load_pcap(path)
    local f = io.open(path, "rb")
    if f == nil then
        io.stderr:write("pktgen_model: Cannot load PCAP file " .. path .. "\n")
        os.exit(1)
    end
    local head = f:read(24)
    if head == nil or #head < 24 or string.unpack("<I4", head) ~= 0xA1B2C3D4 then
        io.stderr:write("pktgen_model: " .. path .. " is not a little-endian microsecond pcap\n")
        os.exit(1)
    end
    local n, total = 0, 0
    while true do
        local rec = f:read(16)
        if rec == nil or #rec < 16 then
            break
        end
        local incl = select(3, string.unpack("<I4I4I4", rec))
        f:seek("cur", incl)
        n = n + 1
        total = total + incl
    end
    f:close()
    return { packets = n, mean = total / math.max(n, 1) }
end

-- ---- the simulated ports and kwikd ------------------------------------------------------------

local now_ms = 0
local quit_called = false

local ports = {}
for p = 0, sim.nports - 1 do
    ports[p] = {
        size = 64, rate = 100, sending = false, pcap_mode = false,
        pcap = pcaps[p] and load_pcap(pcaps[p]) or nil,
        hw = { opackets = 0, obytes = 0, ipackets = 0, ibytes = 0, oerrors = 0, ierrors = 0, imissed = 0, rx_nombuf = 0 },
        base = nil, prev = nil, rate_stats = nil, last_tick_hw = nil, carry = 0.0,
    }
end

local kwikd = { rx = 0, rx_bytes = 0, tx = 0, tx_bytes = 0, rx_dropped = 0, new = 0, delivered = 0,
                drops = {}, drop_carry = 0.0, ack_carry = 0, kwik_seen = 0 }
local published = nil
local epoch = 0

local function copy(t)
    local c = {}
    for k, v in pairs(t) do
        c[k] = type(v) == "table" and copy(v) or v
    end
    return c
end

local function zero_stats()
    return { opackets = 0, obytes = 0, ipackets = 0, ibytes = 0, oerrors = 0, ierrors = 0, imissed = 0, rx_nombuf = 0 }
end

for p = 0, sim.nports - 1 do
    ports[p].base = copy(ports[p].hw)
    ports[p].prev = zero_stats()
    ports[p].rate_stats = zero_stats()
    ports[p].last_tick_hw = copy(ports[p].hw)
end
published = copy(kwikd)

local function trace(line)
    if sim.trace_path then
        local f = io.open(sim.trace_path, "a")
        f:write(string.format("%d %s\n", now_ms, line))
        f:close()
    end
end

local function frame_bytes(port)
    if port.pcap_mode and port.pcap then
        return port.pcap.mean
    end
    return port.size - 4
end

-- dt seconds of traffic from every sending port into kwikd (port 0 of kwikd).
local function advance(dt)
    for p = 0, sim.nports - 1 do
        local port = ports[p]
        if port.sending then
            local line_pps = sim.link_mbps * 1e6 / ((port.size + 20) * 8)
            local offered = math.min(sim.gen_max_pps, port.rate / 100 * line_pps)
            local exact = offered * dt + port.carry
            local n = math.floor(exact)
            port.carry = exact - n
            local bytes = math.floor(n * frame_bytes(port) + 0.5)
            port.hw.opackets = port.hw.opackets + n
            port.hw.obytes = port.hw.obytes + bytes
            local taken = math.min(n, math.floor(sim.capacity_pps * dt + 0.5))
            kwikd.rx = kwikd.rx + taken
            kwikd.rx_bytes = kwikd.rx_bytes + math.floor(taken * frame_bytes(port) + 0.5)
            if not port.pcap_mode then
                kwikd.rx_dropped = kwikd.rx_dropped + taken
                kwikd.drops.not_for_us = (kwikd.drops.not_for_us or 0) + taken
            else
                local exact_drop = taken * sim.drop_ppm / 1e6 + kwikd.drop_carry
                local dropped = math.floor(exact_drop)
                kwikd.drop_carry = exact_drop - dropped
                kwikd.rx_dropped = kwikd.rx_dropped + dropped
                if dropped > 0 then
                    kwikd.drops.bad_udp_checksum = (kwikd.drops.bad_udp_checksum or 0) + dropped
                end
                local kept = taken - dropped
                local fresh = math.max(0, math.min(kept, port.pcap.packets - kwikd.kwik_seen))
                kwikd.kwik_seen = kwikd.kwik_seen + kept
                kwikd.new = kwikd.new + fresh
                kwikd.delivered = kwikd.delivered + fresh * math.max(0, math.floor(port.pcap.mean) - 80)
                local acks = (kwikd.ack_carry + fresh) // 4
                kwikd.ack_carry = (kwikd.ack_carry + fresh) % 4
                kwikd.tx = kwikd.tx + acks
                kwikd.tx_bytes = kwikd.tx_bytes + acks * 90
                port.hw.ipackets = port.hw.ipackets + acks
                port.hw.ibytes = port.hw.ibytes + acks * 90
            end
        end
    end
end

-- pktgen's stats timer: prev_stats = hardware - base, rate_stats = the last second's change;
-- kwikd's main lcore publishes its workers' counters on the same period.
local function tick()
    for p = 0, sim.nports - 1 do
        local port = ports[p]
        for k, v in pairs(port.hw) do
            port.prev[k] = v - port.base[k]
            port.rate_stats[k] = v - port.last_tick_hw[k]
        end
        port.last_tick_hw = copy(port.hw)
    end
    published = copy(kwikd)
    epoch = epoch + 1
end

local function write_state()
    if sim.state_path == nil then
        return
    end
    local lines = { "epoch " .. epoch }
    local function add(prefix, k)
        for _, f in ipairs({ "rx", "rx_bytes", "tx", "tx_bytes", "rx_dropped", "new", "delivered" }) do
            lines[#lines + 1] = string.format("%s_%s %d", prefix, f, k[f])
        end
        for reason, n in pairs(k.drops) do
            lines[#lines + 1] = string.format("%s_drop %s %d", prefix, reason, n)
        end
    end
    add("cur", kwikd)
    add("pub", published)
    local tmp = sim.state_path .. ".tmp"
    local f = assert(io.open(tmp, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    assert(os.rename(tmp, sim.state_path))
end

local function pass_time(ms)
    local target = now_ms + ms
    while now_ms < target do
        -- pktgen's timer runs on its own phase, not the script's: ticks at 1000 k + 437 ms.
        local next_tick = ((now_ms - 437) // 1000 + 1) * 1000 + 437
        local step_end = math.min(next_tick, target)
        advance((step_end - now_ms) / 1000)
        now_ms = step_end
        if now_ms == next_tick then
            tick()
        end
    end
    write_state()
end

-- ---- the pktgen Lua API (lpktgenlib.c of 23.06.1) ------------------------------------------

-- portlist_parse(): "all", "0", "0-3", "0,2"; numbers are taken as their string, as
-- luaL_checkstring does.
local function portlist(fname, v, argn)
    if type(v) == "number" then
        v = tostring(math.tointeger(v) or v)
    end
    if type(v) ~= "string" then
        error(string.format("bad argument #%d to '%s' (string expected, got %s)", argn, fname, type(v)), 3)
    end
    local list = {}
    if v == "all" then
        for p = 0, sim.nports - 1 do
            list[#list + 1] = p
        end
        return list
    end
    for item in v:gmatch("[^,]+") do
        local a, b = item:match("^(%d+)%-(%d+)$")
        a = tonumber(a or item:match("^(%d+)$"))
        b = tonumber(b) or a
        if a == nil then
            error(string.format("model: '%s' is not a port list", v), 3)
        end
        for p = a, b do
            if ports[p] ~= nil then -- pktgen skips ports it does not have
                list[#list + 1] = p
            end
        end
    end
    return list
end

local function nargs(fname, n, want)
    if n ~= want then
        error(fname .. ", wrong number of arguments", 3)
    end
end

local function checknumber(fname, v, argn)
    local n = tonumber(v)
    if n == nil then
        error(string.format("bad argument #%d to '%s' (number expected, got %s)", argn, fname, type(v)), 3)
    end
    return n
end

pktgen = {}
pktgen.info = { Pktgen_Version = "Pktgen 23.06.1 (perf/pktgen/test model)", Lua_Version = _VERSION }

function pktgen.set(...)
    nargs("set", select("#", ...), 3)
    local pl, what, value = ...
    local list = portlist("set", pl, 1)
    if type(what) ~= "string" then
        error("bad argument #2 to 'set' (string expected)", 2)
    end
    local n = checknumber("set", value, 3)
    for _, p in ipairs(list) do
        local w = what:lower()
        if w == "rate" then
            if n <= 0 or n > 100 then
                error(string.format("model: rate %s is outside pktgen's (0, 100] percent", tostring(value)), 2)
            end
            ports[p].rate = n
        elseif w == "size" then
            ports[p].size = math.max(64, math.min(1518, math.floor(n))) -- single_set_pkt_size clamps
        elseif w == "count" or w == "burst" or w == "sport" or w == "dport" or w == "ttl" then
            ports[p][w] = n
        else
            error("set does not support " .. what, 2)
        end
    end
    trace(string.format("set %s %s %s", tostring(pl), what, tostring(value)))
    write_state()
end

function pktgen.start(...)
    nargs("start", select("#", ...), 1)
    for _, p in ipairs(portlist("start", ..., 1)) do
        ports[p].sending = true
        trace(string.format("start %d rate %g size %d pcap %s", p, ports[p].rate, ports[p].size,
            tostring(ports[p].pcap_mode)))
    end
end

function pktgen.stop(...)
    nargs("stop", select("#", ...), 1)
    for _, p in ipairs(portlist("stop", ..., 1)) do
        ports[p].sending = false
        trace("stop " .. p)
    end
end

function pktgen.pcap(...)
    nargs("pcap", select("#", ...), 2)
    local pl, state = ...
    for _, p in ipairs(portlist("pcap", pl, 1)) do
        if state == "on" or state == "enable" or state == "start" then
            if ports[p].pcap == nil then
                error(string.format("model: port %d has no pcap loaded (start pktgen with -s %d:FILE)", p, p), 2)
            end
            ports[p].pcap_mode = true
        else
            ports[p].pcap_mode = false
        end
    end
end

function pktgen.clr(...)
    nargs("clr", select("#", ...), 0)
    for p = 0, sim.nports - 1 do
        ports[p].base = copy(ports[p].hw)
        ports[p].prev = zero_stats()
    end
    trace("clr")
    write_state()
end

function pktgen.delay(...)
    nargs("delay", select("#", ...), 1)
    local ms = checknumber("delay", ..., 1)
    pass_time(math.floor(ms))
end

function pktgen.sleep(...)
    nargs("sleep", select("#", ...), 1)
    pass_time(math.floor(checknumber("sleep", ..., 1) * 1000))
end

function pktgen.portStats(...)
    nargs("portStats", select("#", ...), 2)
    local pl, kind = ...
    if kind ~= "port" and kind ~= "rate" then
        error("model: portStats type '" .. tostring(kind) .. "' is neither port nor rate", 2)
    end
    local out = {}
    local n = 0
    for _, p in ipairs(portlist("portStats", pl, 1)) do
        local s = kind == "port" and ports[p].prev or ports[p].rate_stats
        local t = {}
        for _, k in ipairs({ "ipackets", "opackets", "ibytes", "obytes", "ierrors", "oerrors", "rx_nombuf", "imissed" }) do
            t[k] = s[k]
        end
        if kind == "rate" then
            t.pkts_rx = s.ipackets
            t.pkts_tx = s.opackets
            t.mbits_rx = (s.ibytes + s.ipackets * 24) * 8 // 1000000
            t.mbits_tx = (s.obytes + s.opackets * 24) * 8 // 1000000
        end
        out[p] = t
        n = n + 1
    end
    out.n = n
    return out
end

function pktgen.screen(...)
    nargs("screen", select("#", ...), 1)
end

function pktgen.page(...)
    nargs("page", select("#", ...), 1)
end

function pktgen.quit(...)
    quit_called = true
    trace("quit")
end

-- ---- run the script -----------------------------------------------------------------------

write_state()
local chunk, why = loadfile(script)
if chunk == nil then
    io.stderr:write("pktgen_model: " .. why .. "\n")
    os.exit(1)
end
local ok, err = xpcall(chunk, debug.traceback)
if not ok then
    io.stderr:write("pktgen_model: script error: " .. tostring(err) .. "\n")
    os.exit(1)
end
if not quit_called then
    io.stderr:write("pktgen_model: the script ended without pktgen.quit(); pktgen would wait at its prompt\n")
    os.exit(3)
end
os.exit(0)
