-- kwik_pktgen.lua: what kwik_rate.lua and kwik_rfc2544.lua share, loaded by require from the
-- scripts' own directory: settings from environment variables (checked, errors name the
-- variable), the classic pcap reader, kwikd's counters through kwikd-cmd (a small JSON parser,
-- no library), and one trial: pktgen sends, both sides are counted, the loss is computed.
-- Runs inside Pktgen-DPDK 23.06.1's Lua 5.3/5.4 (its pktgen.* API), or its test model.
local M = {}

-- ---- errors -------------------------------------------------------------------------------

-- A bad setting or an unusable environment: the message names the setting. The scripts catch
-- it, print it, ask pktgen to quit (KWIK_QUIT) and end with it.
local setting_error_tag = {}

function M.fail(setting, message)
    error({ [setting_error_tag] = true, text = setting .. ": " .. message }, 0)
end

function M.message_of(err)
    if type(err) == "table" and err[setting_error_tag] then
        return err.text
    end
    return tostring(err)
end

-- ---- settings -----------------------------------------------------------------------------

local function trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- spec: list of {name = "KWIK_X", kind = "number"|"integer"|"string"|"choice"|"bool",
-- default = value or nil (required), min, max, choices = {...}, help = "..."}.
-- Returns a table keyed by the names without their KWIK_ prefix, lower case.
function M.settings(spec, getenv)
    getenv = getenv or os.getenv
    local out = {}
    for _, s in ipairs(spec) do
        local key = s.name:gsub("^KWIK_", ""):lower()
        local text = getenv(s.name)
        local value
        if text == nil or trim(text) == "" then
            if s.default == nil then
                M.fail(s.name, "required (" .. s.help .. ")")
            end
            value = s.default
        else
            text = trim(text)
            if s.kind == "number" or s.kind == "integer" then
                value = tonumber(text)
                if value == nil or value ~= value or value == math.huge or value == -math.huge then
                    M.fail(s.name, "'" .. text .. "' is not a number")
                end
                if s.kind == "integer" then
                    local i = math.tointeger(value)
                    if i == nil then
                        M.fail(s.name, "'" .. text .. "' is not a whole number")
                    end
                    value = i
                end
            elseif s.kind == "bool" then
                local t = text:lower()
                if t == "1" or t == "yes" or t == "true" or t == "on" then
                    value = true
                elseif t == "0" or t == "no" or t == "false" or t == "off" then
                    value = false
                else
                    M.fail(s.name, "'" .. text .. "' is not 1/0, yes/no, true/false or on/off")
                end
            elseif s.kind == "choice" then
                value = nil
                for _, c in ipairs(s.choices) do
                    if c == text then
                        value = c
                    end
                end
                if value == nil then
                    M.fail(s.name, "'" .. text .. "' is not one of " .. table.concat(s.choices, ", "))
                end
            else
                value = text
            end
        end
        if type(value) == "number" then
            if s.min ~= nil and value < s.min then
                M.fail(s.name, tostring(value) .. " is below " .. tostring(s.min))
            end
            if s.max ~= nil and value > s.max then
                M.fail(s.name, tostring(value) .. " is above " .. tostring(s.max))
            end
        end
        out[key] = value
    end
    return out
end

-- ---- pcap ---------------------------------------------------------------------------------

-- The settings both scripts take, in this order: pktgen's ports, kwikd's port and how its
-- counters are read, and who counts what arrived.
function M.dut_settings()
    return {
        { name = "KWIK_TX_PORT", kind = "integer", default = 0, min = 0, max = 63, help = "pktgen port that sends" },
        { name = "KWIK_RX_PORT", kind = "integer", default = -1, min = -1, max = 63,
          help = "pktgen port whose rx is counted (-1: the tx port)" },
        { name = "KWIK_DUT_PORT", kind = "integer", default = 0, min = 0, max = 63,
          help = "index of the receiving port in kwikd's [[port]] list" },
        { name = "KWIK_KWIKD_CMD", kind = "string", default = "kwikd-cmd --name kwik counters --fresh",
          help = "command printing kwikd's counters" },
        { name = "KWIK_LOSS_FROM", kind = "choice", default = "kwikd", choices = { "kwikd", "pktgen" },
          help = "who counts what arrived: kwikd's port, or pktgen's rx port (a reflecting DUT)" },
    }
end

-- The lists given, one after the other, as one spec.
function M.spec(...)
    local out = {}
    for _, list in ipairs({ ... }) do
        table.move(list, 1, #list, #out + 1, out)
    end
    return out
end

-- The classic pcap pktgen's -s P:FILE loads (pktgen reads no pcapng). Returns packets, the
-- smallest, largest and mean frame (bytes without FCS) and the file's size.
function M.read_pcap(setting, path)
    local f, why = io.open(path, "rb")
    if f == nil then
        M.fail(setting, "cannot open " .. path .. ": " .. tostring(why))
    end
    local head = f:read(24)
    if head == nil or #head < 24 then
        f:close()
        M.fail(setting, path .. " is shorter than a pcap file header")
    end
    local order
    local magic_le = string.unpack("<I4", head)
    if magic_le == 0xA1B2C3D4 or magic_le == 0xA1B23C4D then
        order = "<"
    else
        local magic_be = string.unpack(">I4", head)
        if magic_be == 0xA1B2C3D4 or magic_be == 0xA1B23C4D then
            order = ">"
        else
            f:close()
            M.fail(setting, path .. " is not a classic pcap file (pktgen -s reads only those; pcapng is not)")
        end
    end
    local linktype = string.unpack(order .. "I4", head, 21)
    if linktype ~= 1 then
        f:close()
        M.fail(setting, path .. " has link type " .. linktype .. ", not Ethernet (1)")
    end
    local n, total, smallest, largest = 0, 0, math.huge, 0
    while true do
        local rec = f:read(16)
        if rec == nil or #rec == 0 then
            break
        end
        if #rec < 16 then
            f:close()
            M.fail(setting, path .. " ends inside a record header (after " .. n .. " packets)")
        end
        local _, _, incl = string.unpack(order .. "I4I4I4", rec)
        local data = f:read(incl)
        if incl > 0 and (data == nil or #data < incl) then
            f:close()
            M.fail(setting, path .. " ends inside packet " .. (n + 1))
        end
        n = n + 1
        total = total + incl
        if incl < smallest then
            smallest = incl
        end
        if incl > largest then
            largest = incl
        end
    end
    f:close()
    if n == 0 then
        M.fail(setting, path .. " holds no packets")
    end
    return { path = path, packets = n, frame_bytes = total, min_frame = smallest, max_frame = largest,
             mean_frame = total / n }
end

-- ---- JSON (kwikd-cmd's output) ----------------------------------------------------------------

-- A strict parser for what kwikd-cmd prints (nlohmann::json dump: objects, arrays, strings,
-- numbers, true, false, null). Integers stay Lua integers; objects keep no key order.
local function json_error(text, pos, what)
    error({ json = true, text = string.format("%s at byte %d", what, pos) }, 0)
end

local parse_value

local function skip(text, pos)
    return text:find("[^ \t\r\n]", pos) or #text + 1
end

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function parse_string(text, pos)
    local out = {}
    local i = pos + 1
    while true do
        local c = text:sub(i, i)
        if c == "" then
            json_error(text, i, "unterminated string")
        elseif c == '"' then
            return table.concat(out), i + 1
        elseif c == "\\" then
            local e = text:sub(i + 1, i + 1)
            if e == "u" then
                local hex = text:sub(i + 2, i + 5)
                if not hex:match("^%x%x%x%x$") then
                    json_error(text, i, "bad \\u escape")
                end
                out[#out + 1] = utf8.char(tonumber(hex, 16))
                i = i + 6
            elseif escapes[e] then
                out[#out + 1] = escapes[e]
                i = i + 2
            else
                json_error(text, i, "bad escape")
            end
        else
            out[#out + 1] = c
            i = i + 1
        end
    end
end

parse_value = function(text, pos)
    pos = skip(text, pos)
    local c = text:sub(pos, pos)
    if c == "{" then
        local obj = {}
        pos = skip(text, pos + 1)
        if text:sub(pos, pos) == "}" then
            return obj, pos + 1
        end
        while true do
            if text:sub(pos, pos) ~= '"' then
                json_error(text, pos, "expected a key")
            end
            local key
            key, pos = parse_string(text, pos)
            pos = skip(text, pos)
            if text:sub(pos, pos) ~= ":" then
                json_error(text, pos, "expected ':'")
            end
            obj[key], pos = parse_value(text, pos + 1)
            pos = skip(text, pos)
            local d = text:sub(pos, pos)
            if d == "}" then
                return obj, pos + 1
            elseif d ~= "," then
                json_error(text, pos, "expected ',' or '}'")
            end
            pos = skip(text, pos + 1)
        end
    elseif c == "[" then
        local arr = {}
        pos = skip(text, pos + 1)
        if text:sub(pos, pos) == "]" then
            return arr, pos + 1
        end
        while true do
            arr[#arr + 1], pos = parse_value(text, pos)
            pos = skip(text, pos)
            local d = text:sub(pos, pos)
            if d == "]" then
                return arr, pos + 1
            elseif d ~= "," then
                json_error(text, pos, "expected ',' or ']'")
            end
            pos = pos + 1
        end
    elseif c == '"' then
        return parse_string(text, pos)
    elseif text:sub(pos, pos + 3) == "true" then
        return true, pos + 4
    elseif text:sub(pos, pos + 4) == "false" then
        return false, pos + 5
    elseif text:sub(pos, pos + 3) == "null" then
        return nil, pos + 4
    else
        local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
        if num == nil or num == "" or num == "-" then
            json_error(text, pos, "unexpected character")
        end
        local v = math.tointeger(tonumber(num)) or tonumber(num)
        if v == nil then
            json_error(text, pos, "bad number '" .. num .. "'")
        end
        return v, pos + #num
    end
end

-- Returns the value, or nil and a message.
function M.json_decode(text)
    local ok, value, pos = pcall(parse_value, text, 1)
    if not ok then
        return nil, type(value) == "table" and value.text or tostring(value)
    end
    if skip(text, pos) <= #text then
        return nil, string.format("trailing characters at byte %d", skip(text, pos))
    end
    return value
end

-- ---- kwikd's counters -------------------------------------------------------------------------

-- Runs the kwikd-cmd command line (KWIK_KWIKD_CMD: "kwikd-cmd --name NAME counters --fresh")
-- and returns its counters object. With --fresh, kwikd-cmd first prints the counters_ready
-- event that answered its request, then the counters: the last line holding "ports" is taken.
function M.kwikd_counters(setting, command)
    local p = io.popen(command .. " 2>&1", "r")
    if p == nil then
        M.fail(setting, "cannot run '" .. command .. "'")
    end
    local text = p:read("a")
    local ok, how, code = p:close()
    if not ok then
        M.fail(setting, string.format("'%s' %s %s: %s", command, how == "signal" and "was killed by signal" or "exited",
            tostring(code), (text:gsub("%s+$", ""))))
    end
    local found, last_error
    for line in text:gmatch("[^\n]+") do
        if line:find('"ports"', 1, true) then
            local v, why = M.json_decode(line)
            if v ~= nil and type(v.ports) == "table" then
                found = v
            else
                last_error = why
            end
        end
    end
    if found == nil then
        M.fail(setting, string.format("no counters object in the output of '%s'%s: %s", command,
            last_error and (" (" .. last_error .. ")") or "", (text:gsub("%s+$", ""))))
    end
    return found
end

-- The few numbers a trial needs from one counters object: one port's, summed drops, and the
-- connections' (new data only: kwikd's transport does not count a replayed duplicate as
-- received; the port counts every packet the NIC handed to a worker).
function M.kwikd_totals(setting, counters, port_index)
    local port = counters.ports[port_index + 1]
    if port == nil then
        M.fail(setting, string.format("kwikd has %d port(s); port index %d does not exist", #counters.ports, port_index))
    end
    local t = { rx = port.rx_packets, rx_bytes = port.rx_bytes, tx = port.tx_packets, rx_dropped = port.rx_dropped,
                tx_dropped = port.tx_dropped, new_packets = 0, delivered = 0, drops = {} }
    for _, c in ipairs(counters.connections or {}) do
        t.new_packets = t.new_packets + (c.rx_packets or 0)
        t.delivered = t.delivered + (c.delivered_bytes or 0)
    end
    for reason, n in pairs(counters.drops or {}) do
        t.drops[reason] = n
    end
    for _, k in ipairs({ "rx", "rx_bytes", "tx", "rx_dropped", "tx_dropped" }) do
        if math.type(t[k]) ~= "integer" then
            M.fail(setting, "kwikd-cmd's port " .. port_index .. " has no integer " .. k)
        end
    end
    return t
end

-- b - a for every number; drop reasons by name, only those that moved.
function M.delta(a, b)
    local d = { drops = {} }
    for k, v in pairs(b) do
        if type(v) == "number" then
            d[k] = v - (a[k] or 0)
        end
    end
    for reason, n in pairs(b.drops) do
        local moved = n - (a.drops[reason] or 0)
        if moved ~= 0 then
            d.drops[reason] = moved
        end
    end
    return d
end

function M.drops_text(drops)
    local names = {}
    for reason in pairs(drops) do
        names[#names + 1] = reason
    end
    table.sort(names)
    local parts = {}
    for _, r in ipairs(names) do
        parts[#parts + 1] = r .. " " .. drops[r]
    end
    return #parts == 0 and "none" or table.concat(parts, ", ")
end

-- ---- one trial --------------------------------------------------------------------------------

-- pktgen's portStats are refreshed by its 1-second stats timer (they are the values of the last
-- tick, not of the moment), so a trial's counts are read only after settle_ms >= 1100.
local function port_stats(setting, port, kind)
    local all = pktgen.portStats(tostring(port), kind)
    local s = all[port]
    if s == nil then
        M.fail(setting, "pktgen has no port " .. port .. " (its ports: -m and the EAL's -a/--vdev)")
    end
    return s
end
M.port_stats = port_stats

-- Before anything is sent: pktgen has both ports, kwikd answers and has its port.
function M.check_ports(cfg)
    port_stats("KWIK_TX_PORT", cfg.tx_port, "port")
    port_stats("KWIK_RX_PORT", cfg.rx_port, "port")
    M.kwikd_totals("KWIK_DUT_PORT", M.kwikd_counters("KWIK_KWIKD_CMD", cfg.kwikd_cmd), cfg.dut_port)
end

-- Sends for seconds at rate (percent of line rate) from cfg.tx_port and counts both sides.
-- Returns the trial's record: what pktgen sent and received, what kwikd counted, the loss.
-- on_second(i, rate_stats) is called once a second while sending, if given.
function M.trial(cfg, rate, seconds, on_second)
    local k0 = M.kwikd_totals("KWIK_DUT_PORT", M.kwikd_counters("KWIK_KWIKD_CMD", cfg.kwikd_cmd), cfg.dut_port)
    pktgen.clr()
    pktgen.set(tostring(cfg.tx_port), "rate", rate)
    pktgen.start(tostring(cfg.tx_port))
    local whole = math.floor(seconds)
    for i = 1, whole do
        pktgen.delay(1000)
        if on_second then
            on_second(i, port_stats("KWIK_TX_PORT", cfg.tx_port, "rate"))
        end
    end
    local rest = math.floor((seconds - whole) * 1000 + 0.5)
    if rest > 0 then
        pktgen.delay(rest)
    end
    pktgen.stop(tostring(cfg.tx_port))
    pktgen.delay(cfg.settle_ms)
    local tx_stats = port_stats("KWIK_TX_PORT", cfg.tx_port, "port")
    local rx_stats = port_stats("KWIK_RX_PORT", cfg.rx_port, "port")
    local k1 = M.kwikd_totals("KWIK_DUT_PORT", M.kwikd_counters("KWIK_KWIKD_CMD", cfg.kwikd_cmd), cfg.dut_port)
    local k = M.delta(k0, k1)
    if k.rx < 0 or k.rx_dropped < 0 or k.tx < 0 then
        M.fail("KWIK_KWIKD_CMD", "kwikd's counters went backwards during the trial (kwikd restarted?)")
    end
    local r = { rate = rate, seconds = seconds, tx = tx_stats.opackets, tx_bytes = tx_stats.obytes,
                tx_errors = tx_stats.oerrors, pktgen_rx = rx_stats.ipackets, pktgen_imissed = rx_stats.imissed,
                kwikd_rx = k.rx, kwikd_dropped = k.rx_dropped, kwikd_tx = k.tx, kwikd_new = k.new_packets,
                kwikd_delivered = k.delivered, drops = k.drops }
    if cfg.loss_from == "kwikd" then
        -- Received and kept by kwikd: what its port counted minus what it dropped. Frames the
        -- NIC missed (imissed, rx_nombuf) never reach a worker, so they are in the gap too.
        r.received = k.rx - k.rx_dropped
    else
        -- The DUT sends every frame back (a reflector, or testpmd as a baseline): pktgen's rx.
        r.received = rx_stats.ipackets
    end
    r.loss = r.tx - r.received
    r.extra = 0
    if r.loss < 0 then
        -- More counted than sent: other traffic reached the port (ARP, a second sender).
        r.extra = -r.loss
        r.loss = 0
    end
    r.loss_pct = r.tx > 0 and 100.0 * r.loss / r.tx or 0
    r.pps = r.tx / seconds
    r.pass = r.tx > 0 and r.loss <= cfg.loss_tolerance / 100.0 * r.tx
    return r
end

-- Mbit/s on the wire for pps frames of frame bytes (plus FCS 4, preamble 8, gap 12).
function M.wire_mbps(pps, frame)
    return pps * (frame + 24) * 8 / 1e6
end

-- ---- output -----------------------------------------------------------------------------------

function M.csv_line(fields)
    local out = {}
    for i, v in ipairs(fields) do
        local s = tostring(v)
        if s:find('[,"\n]') then
            s = '"' .. s:gsub('"', '""') .. '"'
        end
        out[i] = s
    end
    return table.concat(out, ",")
end

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        if c == '"' then
            return '\\"'
        elseif c == "\\" then
            return "\\\\"
        end
        return string.format("\\u%04x", c:byte())
    end) .. '"'
end

-- A JSON encoder for the results: tables with a [1] are arrays, others objects (keys sorted,
-- so the files compare byte for byte).
function M.json_encode(v)
    local t = type(v)
    if t == "table" then
        if v[1] ~= nil or next(v) == nil and getmetatable(v) == M.array_mt then
            local parts = {}
            for i = 1, #v do
                parts[i] = M.json_encode(v[i])
            end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do
            keys[#keys + 1] = tostring(k)
        end
        table.sort(keys)
        local parts = {}
        for i, k in ipairs(keys) do
            parts[i] = json_string(k) .. ":" .. M.json_encode(v[k])
        end
        return "{" .. table.concat(parts, ",") .. "}"
    elseif t == "string" then
        return json_string(v)
    elseif t == "number" then
        if math.type(v) == "integer" then
            return tostring(v)
        end
        if v ~= v or v == math.huge or v == -math.huge then
            return "null"
        end
        return string.format("%.10g", v)
    elseif t == "boolean" then
        return tostring(v)
    end
    return "null"
end
M.array_mt = {}

function M.fmt_count(n)
    local s = tostring(math.floor(n))
    local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (out:gsub("^,", ""):gsub("^%-,", "-"))
end

-- A script's end on an error: the message on stderr and pktgen's console, pktgen asked to quit
-- (unless KWIK_QUIT=0), and the error raised, so that pktgen reports the script as failed.
function M.ends(cfg, script, err)
    local msg = M.message_of(err)
    io.stderr:write(script .. ": " .. msg .. "\n")
    print(script .. ": " .. msg)
    if cfg == nil or cfg.quit then
        pktgen.quit()
    end
    error(script .. ": " .. msg, 0)
end

return M
