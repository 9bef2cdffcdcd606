#!/usr/bin/env python3
"""Writes the UDP payload of every packet in classic pcap files to its own file (fuzz seeds).

Usage: pcap_payloads.py OUT_DIR FILE.pcap...
Reads Ethernet (with 802.1Q/802.1ad tags), raw IP and Linux cooked captures, IPv4 and IPv6.
Skips non-UDP packets, IP fragments other than the first, and payloads cut short by the snap
length. Prints how many payloads it wrote; exits 1 on a file that is not a classic pcap.
Standard library only.
"""

import os
import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (12, 14, 101)
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

ETH_VLAN = (0x8100, 0x88A8)
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
IPV6_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44
IPPROTO_UDP = 17


def read_pcap(path):
    """Yields (linktype, packet bytes) for each record."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f'{path}: too short for a pcap header')
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        endian = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        endian = '>'
    else:
        raise ValueError(f'{path}: not a classic pcap file (magic {magic.hex()})')
    linktype = struct.unpack(endian + 'I', data[20:24])[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + 'IIII', data[pos:pos + 16])
        pos += 16
        if pos + caplen > len(data):
            break  # truncated last record
        yield linktype, data[pos:pos + caplen]
        pos += caplen


def ip_packet(linktype, frame):
    """Returns (ethertype, bytes from the IP header on) or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype = struct.unpack('!H', frame[12:14])[0]
        pos = 14
        while ethertype in ETH_VLAN and len(frame) >= pos + 4:
            ethertype = struct.unpack('!H', frame[pos + 2:pos + 4])[0]
            pos += 4
        return ethertype, frame[pos:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return struct.unpack('!H', frame[14:16])[0], frame[16:]
    if linktype in LINKTYPE_RAW or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        return (ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6), frame
    return None


def udp_payload(ethertype, ip):
    """Returns the UDP payload or None."""
    if ethertype == ETH_IPV4:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return None
        ihl = (ip[0] & 0x0F) * 4
        frag = struct.unpack('!H', ip[6:8])[0]
        if ip[9] != IPPROTO_UDP or (frag & 0x3FFF) != 0:  # not UDP, or a fragment
            return None
        seg = ip[ihl:]
    elif ethertype == ETH_IPV6:
        if len(ip) < 40 or ip[0] >> 4 != 6:
            return None
        nxt = ip[6]
        pos = 40
        while nxt in IPV6_EXT_HEADERS and len(ip) >= pos + 8:
            nxt, hlen = ip[pos], (ip[pos + 1] + 1) * 8
            pos += hlen
        if nxt != IPPROTO_UDP:
            return None  # not UDP, or a fragment
        seg = ip[pos:]
    else:
        return None
    if len(seg) < 8:
        return None
    length = struct.unpack('!H', seg[4:6])[0]
    if length < 8 or length > len(seg):
        return None  # cut short by the snap length
    return seg[8:length]


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for index, path in enumerate(argv[2:]):
        try:
            for linktype, frame in read_pcap(path):
                ip = ip_packet(linktype, frame)
                payload = udp_payload(*ip) if ip else None
                if payload:
                    name = os.path.join(out_dir, f'pcap{index}_{written:05d}.bin')
                    with open(name, 'wb') as f:
                        f.write(payload)
                    written += 1
        except ValueError as e:
            print(f'pcap_payloads: {e}', file=sys.stderr)
            return 1
    print(f'pcap_payloads: {written} UDP payloads from {len(argv) - 2} file(s) into {out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
