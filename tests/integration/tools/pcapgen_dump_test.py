#!/usr/bin/env python3
"""kwik-pcapgen and kwik-dump agree, field for field.

Usage: pcapgen_dump_test.py KWIK_PCAPGEN KWIK_DUMP

Generates multi-connection, multi-path, multi-stream captures (reordering and duplication;
loss, corruption and duplication; IPv6), decodes them with kwik-dump and checks that every
intact packet decodes to exactly the manifest's record (seq, type, frame count, every frame's
stream id, offset, flags, length, priority, control type), that every corrupted packet is
dropped, that the stream bytes are the documented content pattern, and that --expect accepts
the capture (every stream complete, CRC32C equal) and rejects tampered manifests and captures.
Also: same seed -> identical bytes, different seed -> different bytes, pcapng input, crafted
malformed frames, and the error answers (option named, exit 2; file named, non-zero).
Python standard library only.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

PCAPGEN = sys.argv[1] if len(sys.argv) > 1 else "kwik-pcapgen"
DUMP = sys.argv[2] if len(sys.argv) > 2 else "kwik-dump"

failures = []
checks = 0


def check(cond, message):
    global checks
    checks += 1
    if not cond:
        failures.append(message)
    return cond


def run(args):
    return subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


# ---- the documented content pattern (tools/common/content_pattern.hpp) ----

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


SENTENCE = b"Kwik carries every stream over every path, and the quick brown fox jumps over the lazy dog. "


def pattern_bytes(kind, seed, connection, stream_id, offset, length):
    if kind == "counter":
        return bytes((offset + i + stream_id) & 0xFF for i in range(length))
    if kind == "zero":
        return bytes(length)
    if kind == "text":
        return bytes(SENTENCE[(offset + i) % len(SENTENCE)] for i in range(length))
    out = bytearray()
    base = splitmix64(splitmix64(splitmix64(seed) ^ connection) ^ stream_id)
    for pos in range(offset, offset + length):
        word = splitmix64(base ^ (pos // 8))
        out.append((word >> (8 * (pos % 8))) & 0xFF)
    return bytes(out)


# ---- helpers ----

def split_endpoint(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def generate(tmp, name, args):
    pcap = os.path.join(tmp, name + ".pcap")
    manifest = os.path.join(tmp, name + ".json")
    r = run([PCAPGEN, "-o", pcap, "--manifest", manifest] + args)
    if not check(r.returncode == 0, f"{name}: kwik-pcapgen exited {r.returncode}: {r.stderr.strip()}"):
        return None, None
    with open(manifest) as f:
        return pcap, json.load(f)


def dump(pcap, *extra):
    r = run([DUMP] + list(extra) + [pcap])
    check(r.returncode == 0, f"kwik-dump {pcap} exited {r.returncode}: {r.stderr.strip()}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def compare_packets(label, manifest, lines, expect_version):
    """Every record of the manifest against kwik-dump's line with the same index."""
    packets = manifest["packets"]
    check(len(lines) == len(packets), f"{label}: kwik-dump printed {len(lines)} packets, manifest has {len(packets)}")
    check(manifest["counts"]["records"] == len(packets), f"{label}: manifest counts.records disagrees with its packets")
    stats = {"corrupted": 0, "dropped": 0, "accepted": 0, "duplicates": 0}
    for rec, line in zip(packets, lines):
        where = f"{label}: packet {rec['index']}"
        if not check(line["index"] == rec["index"], f"{where}: kwik-dump index {line['index']}"):
            continue
        src_ip, src_port = split_endpoint(rec["src"])
        dst_ip, dst_port = split_endpoint(rec["dst"])
        check(line.get("ip_version") == expect_version, f"{where}: ip_version {line.get('ip_version')}")
        check((line.get("src"), line.get("src_port")) == (src_ip, src_port),
              f"{where}: source {line.get('src')}:{line.get('src_port')}, manifest {rec['src']}")
        check((line.get("dst"), line.get("dst_port")) == (dst_ip, dst_port),
              f"{where}: destination {line.get('dst')}:{line.get('dst_port')}, manifest {rec['dst']}")
        check(line.get("udp_checksum_ok") is True, f"{where}: UDP checksum not ok")
        if expect_version == 4:
            check(line.get("ip_checksum_ok") is True, f"{where}: IPv4 header checksum not ok")
        if rec["duplicate"]:
            stats["duplicates"] += 1
        if rec["corrupted"]:
            stats["corrupted"] += 1
            check(line["verdict"] == "drop", f"{where}: corrupted packet has verdict {line['verdict']}")
            check(line.get("reason") not in (None, "none"), f"{where}: corrupted packet dropped without a reason")
            if line["verdict"] == "drop":
                stats["dropped"] += 1
            continue
        if not check(line["verdict"] == "accept",
                     f"{where}: intact packet has verdict {line['verdict']} ({line.get('reason')})"):
            continue
        stats["accepted"] += 1
        check(line["reason"] == "none", f"{where}: accepted with reason {line['reason']}")
        k = line["kdp"]
        check(k["seq"] == rec["seq"], f"{where}: seq {k['seq']}, manifest {rec['seq']}")
        check(k["type_code"] == rec["type_code"], f"{where}: type {k['type_code']}, manifest {rec['type_code']}")
        check(k["type"] == rec["type"], f"{where}: type name {k['type']}, manifest {rec['type']}")
        check(k["frame_count"] == rec["frame_count"] == len(rec["frames"]),
              f"{where}: frame_count {k['frame_count']}, manifest {rec['frame_count']}")
        check(k["checksum_ok"] is True, f"{where}: packet checksum not ok")
        check(len(k["frames"]) == len(rec["frames"]), f"{where}: {len(k['frames'])} frames decoded")
        for i, (mf, df) in enumerate(zip(rec["frames"], k["frames"])):
            fw = f"{where} frame {i}"
            for field in ("stream_id", "offset", "flags", "data_length"):
                check(df[field] == mf[field], f"{fw}: {field} {df[field]}, manifest {mf[field]}")
            check(df["priority_code"] == mf["priority"], f"{fw}: priority {df['priority_code']}, manifest {mf['priority']}")
            check(df["checksum_ok"] is True, f"{fw}: frame checksum not ok")
            if "control" in mf:
                check(df.get("control", {}).get("type") == mf["control"],
                      f"{fw}: control {df.get('control', {}).get('type')}, manifest {mf['control']}")
            if rec["type"] == "retransmission":
                check("RETRANSMIT" in df["flag_names"], f"{fw}: retransmission frame without RETRANSMIT")
    return stats


def check_content(label, manifest, lines):
    """Every accepted stream frame carries the pattern bytes the header documents."""
    params = manifest["parameters"]
    checked = 0
    for rec, line in zip(manifest["packets"], lines):
        if line["verdict"] != "accept":
            continue
        for f in line["kdp"]["frames"]:
            if f["priority"] == "control":
                continue
            want = pattern_bytes(params["pattern"], params["seed"], rec["connection"], f["stream_id"], f["offset"],
                                 f["data_length"])
            if not check(bytes.fromhex(f.get("data_hex", "")) == want,
                         f"{label}: packet {rec['index']} stream {f['stream_id']} offset {f['offset']}: content differs "
                         f"from the {params['pattern']} pattern"):
                return
            checked += 1
    check(checked > 0, f"{label}: no stream frame content checked")


def expect_ok(label, pcap, manifest_path):
    r = run([DUMP, "--summary-only", "--expect", manifest_path, pcap])
    check(r.returncode == 0, f"{label}: --expect failed ({r.returncode}): {r.stderr.strip()}")
    summary = json.loads(r.stdout)["summary"] if r.stdout.strip() else {}
    return summary


def reorder_seen(manifest):
    last = {}
    for rec in manifest["packets"]:
        key = (rec["connection"], rec["path"], rec["direction"])
        if rec["duplicate"]:
            continue
        if key in last and rec["seq"] < last[key]:
            return True
        last[key] = max(rec["seq"], last.get(key, 0))
    return False


# ---- pcap files by hand (crafted inputs, tampering, pcapng) ----

def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    header, pos, records = data[:24], 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        records.append((sec, usec, data[pos + 16:pos + 16 + incl], orig))
        pos += 16 + incl
    return header, records


def write_pcap(path, records, header=None):
    with open(path, "wb") as f:
        f.write(header or struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, frame, orig in records:
            f.write(struct.pack("<IIII", sec, usec, len(frame), orig))
            f.write(frame)


def write_pcapng(path, records):
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(0x00000001, struct.pack("<HHI", 1, 0, 262144)))  # Ethernet, microseconds
        for sec, usec, frame, orig in records:
            ts = sec * 1000000 + usec
            f.write(block(0x00000006, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), orig) + frame))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload, total=None, frag=0x4000, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02"):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(payload), 1, frag, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp(sport, dport, payload, length=None):
    return struct.pack("!HHHH", sport, dport, length or 8 + len(payload), 0) + payload


def ether(ethertype, payload):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ethertype) + payload


# ---- the checks ----

def test_reorder_duplicate(tmp):
    args = ["--connections", "3", "--paths", "3", "--streams", "5", "--stream-size", "1500-12000",
            "--frames-per-packet", "3", "--max-frame-data", "800", "--priorities", "normal,high,critical",
            "--ordered", "alternate", "--reorder", "0.25", "--duplicate", "0.15", "--seed", "42",
            "--keepalive-every", "4", "--ack-every", "3", "--window-update-every", "5", "--pattern", "random"]
    pcap, m = generate(tmp, "reorder", args)
    if m is None:
        return
    lines = dump(pcap, "--hex")
    stats = compare_packets("reorder", m, lines, 4)
    check(stats["corrupted"] == 0 and not m["lost"], "reorder: impairments other than reorder/duplicate applied")
    check(stats["duplicates"] > 0, "reorder: no duplicate written")
    check(reorder_seen(m), "reorder: no packet arrives behind a later one of its path")
    types = {rec["type"] for rec in m["packets"]}
    check(types >= {"data", "priority", "ack", "keepalive", "control"}, f"reorder: packet types {sorted(types)}")
    check(len({rec["path"] for rec in m["packets"]}) == 3, "reorder: not all 3 paths used")
    check(len(m["streams"]) == 15, f"reorder: {len(m['streams'])} streams in the manifest")
    fins = {(r["connection"], f["stream_id"]) for r in m["packets"] for f in r["frames"] if f["flags"] & 1}
    check(len(fins) == 15, f"reorder: {len(fins)} streams end with FIN")
    check_content("reorder", m, lines)
    acks = [f["control"] for line in lines if line["verdict"] == "accept" for f in line["kdp"]["frames"]
            if f.get("control", {}).get("type") == "ack"]
    check(acks and all(a["ranges"][0]["largest"] == a["largest"] for a in acks), "reorder: ACK frames not decoded")
    summary = expect_ok("reorder", pcap, os.path.join(tmp, "reorder.json"))
    check(summary.get("accepted") == len(m["packets"]) and summary.get("dropped") == 0,
          f"reorder: summary accepted {summary.get('accepted')} dropped {summary.get('dropped')}")
    streams = [s for c in summary.get("connections", []) for s in c["streams"]]
    check(len(streams) == 15 and all(s["complete"] for s in streams), "reorder: summary streams not all complete")
    dup_bytes = sum(s["bytes_total"] - s["bytes_received"] for s in streams)
    check(dup_bytes > 0, "reorder: duplicates not counted apart from distinct bytes")

    # --expect must be able to fail: a wrong CRC, a wrong size, a capture missing packets.
    tampered = json.loads(json.dumps(m))
    tampered["streams"][4]["crc32c"] = "0x%08x" % (int(tampered["streams"][4]["crc32c"], 16) ^ 1)
    tampered["streams"][7]["final_size"] += 1
    bad = os.path.join(tmp, "tampered.json")
    with open(bad, "w") as f:
        json.dump(tampered, f)
    r = run([DUMP, "--summary-only", "--expect", bad, pcap])
    s4, s7 = tampered["streams"][4], tampered["streams"][7]
    check(r.returncode == 1, f"tampered manifest: --expect exited {r.returncode}")
    check(f"connection {s4['connection']} stream {s4['stream_id']}: crc32c" in r.stderr,
          f"tampered manifest: CRC mismatch not reported: {r.stderr.strip()}")
    check(f"connection {s7['connection']} stream {s7['stream_id']}: final size" in r.stderr,
          f"tampered manifest: size mismatch not reported: {r.stderr.strip()}")

    header, records = read_pcap(pcap)
    check(len(records) == len(m["packets"]), "reorder: pcap record count differs from the manifest")
    half = os.path.join(tmp, "half.pcap")
    write_pcap(half, records[: len(records) // 2], header)
    r = run([DUMP, "--summary-only", "--expect", os.path.join(tmp, "reorder.json"), half])
    check(r.returncode == 1 and ("incomplete" in r.stderr or "no FIN" in r.stderr or "no accepted frame" in r.stderr),
          f"half capture: --expect exited {r.returncode}: {r.stderr.strip()}")

    # One byte changed in an accepted data packet: the dump must drop it.
    victim = next(r for r in m["packets"] if r["type"] == "data")
    sec, usec, frame, orig = records[victim["index"]]
    frame = bytearray(frame)
    frame[-5] ^= 0x40  # inside the last frame's data
    records[victim["index"]] = (sec, usec, bytes(frame), orig)
    flipped = os.path.join(tmp, "flipped.pcap")
    write_pcap(flipped, records, header)
    line = dump(flipped)[victim["index"]]
    check(line["verdict"] == "drop" and line["reason"] == "bad_frame_checksum",
          f"flipped byte: verdict {line['verdict']} reason {line['reason']}")
    check(line.get("udp_checksum_ok") is False, "flipped byte: UDP checksum still reported ok")
    check(line["kdp"]["frames"][-1]["checksum_ok"] is False, "flipped byte: the frame's checksum_ok is not false")


def test_loss_corruption(tmp):
    args = ["--connections", "2", "--paths", "3", "--streams", "4", "--stream-size", "4000-20000",
            "--frames-per-packet", "2", "--max-frame-data", "1000", "--loss", "0.15", "--corrupt", "0.15",
            "--duplicate", "0.1", "--seed", "9", "--pattern", "text", "--spread", "stream", "--weights", "2,1,1"]
    pcap, m = generate(tmp, "lossy", args)
    if m is None:
        return
    lines = dump(pcap, "--hex")
    stats = compare_packets("lossy", m, lines, 4)
    check(stats["corrupted"] > 0, "lossy: no corrupted packet written")
    check(stats["dropped"] == stats["corrupted"], "lossy: not every corrupted packet dropped")
    check(len(m["lost"]) > 0, "lossy: no packet lost")
    check(m["counts"]["corrupted"] > 0 and m["counts"]["retransmissions"] > 0, "lossy: nothing retransmitted")
    retrans = [r for r in m["packets"] if r["type"] == "retransmission"]
    check(retrans and all(r["retransmits"]["path"] != r["path"] for r in retrans),
          "lossy: a retransmission uses the path of the packet it replaces")
    check_content("lossy", m, lines)
    summary = expect_ok("lossy", pcap, os.path.join(tmp, "lossy.json"))
    drops = sum(1 for line in lines if line["verdict"] == "drop")
    check(summary.get("dropped") == drops, f"lossy: summary dropped {summary.get('dropped')}, lines say {drops}")

    # Same seed: identical bytes. Different seed: different bytes.
    again, _ = generate(tmp, "lossy_again", args)
    other, _ = generate(tmp, "lossy_other", [a if a != "9" else "10" for a in args])
    if again and other:
        with open(pcap, "rb") as a, open(again, "rb") as b, open(other, "rb") as c:
            first = a.read()
            check(first == b.read(), "same seed: the pcaps differ")
            check(first != c.read(), "different seed: the pcaps are identical")
        with open(os.path.join(tmp, "lossy.json"), "rb") as a, open(os.path.join(tmp, "lossy_again.json"), "rb") as b:
            check(a.read() == b.read(), "same seed: the manifests differ")


def test_ipv6_and_pcapng(tmp):
    args = ["--ipv6", "--connections", "2", "--paths", "3", "--streams", "3", "--reorder", "0.1",
            "--duplicate", "0.05", "--seed", "5", "--frames-per-packet", "4", "--max-frame-data", "500"]
    pcap, m = generate(tmp, "v6", args)
    if m is None:
        return
    lines = dump(pcap, "--hex")
    compare_packets("v6", m, lines, 6)
    check_content("v6", m, lines)
    expect_ok("v6", pcap, os.path.join(tmp, "v6.json"))
    _, records = read_pcap(pcap)
    ng = os.path.join(tmp, "v6.pcapng")
    write_pcapng(ng, records)
    ng_lines = dump(ng, "--hex")
    check(ng_lines == lines, "pcapng: kwik-dump output differs from the same packets in classic pcap")
    with open(pcap, "rb") as f:
        r = subprocess.run([DUMP, "-"], stdin=f, capture_output=True, timeout=60)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == len(lines), "stdin: '-' not read")


def test_crafted(tmp):
    """Broken and foreign frames get a verdict and a reason, never a crash."""
    good_pcap, m = generate(tmp, "small", ["--connections", "1", "--paths", "1", "--streams", "1",
                                           "--stream-size", "100", "--ack-every", "0"])
    if m is None:
        return
    _, good = read_pcap(good_pcap)
    kwik_frame = good[0][2]
    tagged = kwik_frame[:12] + b"\x81\x00\x00\x05" + kwik_frame[12:]
    v6_frag = struct.pack("!IHBB16s16s", 0x60000000, 16, 44, 64, b"\xfd" + b"\0" * 15, b"\xfd" + b"\0" * 14 + b"\1")
    v6_frag += struct.pack("!BBHI", 17, 0, 0x0009, 1) + udp(1, 7707, b"")
    cases = [
        ("short ethernet", b"\x01" * 10, None, "malformed", "link_truncated"),
        ("arp", ether(0x0806, b"\0" * 28), None, "not_kwik", "not_ip"),
        ("icmp", ether(0x0800, ipv4(1, b"\x08\0\0\0\0\0\0\0")), None, "not_kwik", "not_udp"),
        ("dns", ether(0x0800, ipv4(17, udp(5353, 53, b"hello"))), None, "not_kwik", "not_kwik_port"),
        ("tiny kdp", ether(0x0800, ipv4(17, udp(40000, 7707, b"\0" * 5))), None, "drop", "packet_too_short"),
        ("ip total length", ether(0x0800, ipv4(17, udp(1, 7707, b""), total=1000)), None, "malformed",
         "ipv4_bad_total_length"),
        ("snap cut", kwik_frame[:60], len(kwik_frame), "malformed", "capture_truncated"),
        ("udp length", ether(0x0800, ipv4(17, udp(1, 7707, b"abc", length=3))), None, "malformed", "udp_bad_length"),
        ("ipv4 fragment", ether(0x0800, ipv4(17, udp(1, 7707, b"x"), frag=0x2000)), None, "malformed", "ip_fragment"),
        ("ipv6 fragment", ether(0x86DD, v6_frag), None, "malformed", "ip_fragment"),
        ("vlan", tagged, None, "accept", "none"),
    ]
    crafted = os.path.join(tmp, "crafted.pcap")
    write_pcap(crafted, [(1700000000, i, frame, orig or len(frame)) for i, (_, frame, orig, _, _) in enumerate(cases)])
    lines = dump(crafted, "--summary")
    check(len(lines) == len(cases) + 1, f"crafted: {len(lines)} lines for {len(cases)} packets and a summary")
    for (name, _, _, verdict, reason), line in zip(cases, lines):
        check((line.get("verdict"), line.get("reason")) == (verdict, reason),
              f"crafted {name}: verdict {line.get('verdict')} reason {line.get('reason')}, want {verdict} {reason}")
    check(lines[-1 if lines else 0].get("summary", {}).get("accepted") == 1, "crafted: summary accepted count")
    check(lines[10].get("vlan") == [5] if len(lines) > 10 else False, "crafted: VLAN id not reported")


def test_encrypted(tmp):
    """--encrypt-key seals every stream frame (one nonce counter per capture, client prefix
    "KCLI"); kwik-dump --key verifies each and the plaintext is the pattern; --expect needs the
    key, and a wrong key verifies nothing."""
    key = "5c" * 32
    args = ["--connections", "2", "--paths", "2", "--streams", "3", "--stream-size", "3000-9000",
            "--frames-per-packet", "2", "--max-frame-data", "600", "--loss", "0.1", "--seed", "5",
            "--pattern", "random", "--encrypt-key", key, "--key-phase", "7"]
    pcap, m = generate(tmp, "sealed", args)
    if m is None:
        return
    check(m["parameters"]["encrypted"] is True and m["parameters"]["key_phase"] == 7, "sealed: manifest parameters")
    check(key not in json.dumps(m), "sealed: the manifest holds the key")
    lines = dump(pcap, "--key", key, "--hex")
    compare_packets("sealed", m, lines, 4)
    nonces = set()
    sealed = 0
    for rec, line in zip(m["packets"], lines):
        if line["verdict"] != "accept":
            continue
        for f in line["kdp"]["frames"]:
            if f["priority"] == "control":
                continue
            sealed += 1
            aead = [e for e in f["extensions"] if e.get("name") == "aead"]
            if not check(f["flags"] & 0x08 and len(aead) == 1, f"sealed: packet {rec['index']}: frame not ENCRYPTED"):
                return
            check(aead[0]["key_phase"] == 7, f"sealed: key phase {aead[0]['key_phase']}")
            check(aead[0]["nonce"].startswith("4b434c49"), f"sealed: nonce {aead[0]['nonce']} lacks the client prefix")
            check(aead[0]["nonce"] not in nonces, f"sealed: nonce {aead[0]['nonce']} used twice")
            nonces.add(aead[0]["nonce"])
            check(f.get("aead_verified") is True, f"sealed: packet {rec['index']}: frame does not verify")
            want = pattern_bytes("random", 5, rec["connection"], f["stream_id"], f["offset"], f["stream_length"])
            check(bytes.fromhex(f.get("plaintext_hex", "")) == want, f"sealed: packet {rec['index']}: plaintext differs")
    check(sealed > 0 and m["counts"]["retransmissions"] > 0, "sealed: no sealed frames, or nothing retransmitted")
    manifest_path = os.path.join(tmp, "sealed.json")
    r = run([DUMP, "--summary-only", "--expect", manifest_path, "--key", key, pcap])
    check(r.returncode == 0, f"sealed: --expect with the key failed ({r.returncode}): {r.stderr.strip()}")
    r = run([DUMP, "--summary-only", "--expect", manifest_path, pcap])
    check(r.returncode == 1 and "content not kept" in r.stderr, f"sealed: --expect without the key: exit {r.returncode}")
    r = run([DUMP, "--key", "5d" * 32, pcap])
    verified = [f.get("aead_verified") for line in r.stdout.splitlines() if line.strip()
                for f in json.loads(line).get("kdp", {}).get("frames", []) if f["flags"] & 0x08]
    check(verified and not any(verified), "sealed: a wrong key verified a frame")
    r = run([DUMP, "--key", "xyz", pcap])
    check(r.returncode == 2 and "--key" in r.stderr, f"kwik-dump --key xyz: exit {r.returncode} {r.stderr!r}")
    for bad, option in ((["--encrypt-key", "00" * 31], "--encrypt-key"), (["--key-phase", "3"], "--key-phase"),
                        (["--encrypt-key", key, "--key-phase", "256"], "--key-phase")):
        r = run([PCAPGEN, "-o", os.path.join(tmp, "bad.pcap")] + bad)
        check(r.returncode == 2 and option in r.stderr, f"kwik-pcapgen {' '.join(bad)}: exit {r.returncode} {r.stderr!r}")


def test_errors(tmp):
    out = os.path.join(tmp, "x.pcap")
    for args, option in ((["-o", out, "--loss", "1.5"], "--loss"),
                         (["-o", out, "--no-such-option"], "--no-such-option"),
                         (["-o", out, "--priorities", "normal,urgent"], "--priorities"),
                         (["-o", out, "--paths", "0"], "--paths"),
                         (["-o", out, "--weights", "1,1,1"], "--weights"),
                         (["--seed", "3"], "--output")):
        r = run([PCAPGEN] + args)
        check(r.returncode == 2 and option in r.stderr,
              f"kwik-pcapgen {' '.join(args)}: exit {r.returncode}, stderr {r.stderr.strip()!r} (want 2 naming {option})")
    unwritable = os.path.join(tmp, "no-such-dir", "x.pcap")
    r = run([PCAPGEN, "-o", unwritable])
    check(r.returncode == 1 and unwritable in r.stderr, f"kwik-pcapgen unwritable output: exit {r.returncode} {r.stderr!r}")
    missing = os.path.join(tmp, "missing.pcap")
    r = run([DUMP, missing])
    check(r.returncode != 0 and missing in r.stderr, f"kwik-dump missing file: exit {r.returncode} {r.stderr!r}")
    r = run([DUMP, "--port", "70000", out])
    check(r.returncode == 2 and "--port" in r.stderr, f"kwik-dump --port 70000: exit {r.returncode} {r.stderr!r}")
    r = run([PCAPGEN, "--help"])
    check(r.returncode == 0 and "--loss" in r.stdout and "--reorder" in r.stdout, "kwik-pcapgen --help")
    r = run([DUMP, "--help"])
    check(r.returncode == 0 and "--expect" in r.stdout, "kwik-dump --help")

    # The TOML description, overridden by the command line.
    config = os.path.join(tmp, "desc.toml")
    with open(config, "w") as f:
        f.write('seed = 77\nconnections = 2\nstreams = 2\npriorities = ["high", "normal"]\n'
                '[[path]]\nclient = "192.0.2.2:41000"\nserver = "198.51.100.1:7707"\n'
                '[[path]]\nclient = "203.0.113.2:41000"\nserver = "198.51.100.1:7707"\n')
    pcap, m = generate(tmp, "described", ["--config", config, "--connections", "3"])
    if m:
        p = m["parameters"]
        check((p["seed"], p["connections"], p["streams"], p["priorities"]) == (77, 3, 2, ["high", "normal"]),
              f"description: parameters {p}")
        check([c["paths"][1]["client"] for c in m["connections"]] ==
              ["203.0.113.2:41000", "203.0.113.2:41001", "203.0.113.2:41002"], "description: path addresses")
        expect_ok("described", pcap, os.path.join(tmp, "described.json"))
    with open(config, "w") as f:
        f.write("seed = 1\nlos = 0.5\n")
    r = run([PCAPGEN, "--config", config, "-o", out])
    check(r.returncode == 2 and "los" in r.stderr and config in r.stderr,
          f"description with an unknown key: exit {r.returncode} {r.stderr!r}")


def main():
    tmp = tempfile.mkdtemp(prefix="kwik-tools-test-")
    try:
        for test in (test_reorder_duplicate, test_loss_corruption, test_ipv6_and_pcapng, test_crafted, test_encrypted,
                     test_errors):
            before = len(failures)
            try:
                test(tmp)
            except Exception as e:  # a crash in the test is a failure too, with its cause
                failures.append(f"{test.__name__}: {type(e).__name__}: {e}")
            print(f"{test.__name__}: {'ok' if len(failures) == before else 'FAILED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures[:50]:
        print("FAIL:", f)
    if failures:
        print(f"{len(failures)} of {checks} checks failed")
        return 1
    print(f"all {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
