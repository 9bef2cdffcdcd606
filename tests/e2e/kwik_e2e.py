"""What the end-to-end tests share: the check() report, CRC32C (the manifest's checksum), and
the comparison of stored streams with a kwik-pcapgen manifest. Standard library only."""
import os

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _table.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def stream_file(directory, connection_id, stream_id):
    """Where kwikd's file-store endpoint writes a stream (docs/PROTOCOL.md 14)."""
    return os.path.join(directory, "c%d-s%d.bin" % (connection_id, stream_id))


def stored_streams(directory, manifest, connection_id, streams=None):
    """(streams stored with the manifest's size and CRC32C, mismatches as text) for the manifest's
    streams (or the given subset)."""
    good, bad = 0, []
    for s in streams if streams is not None else manifest["streams"]:
        path = stream_file(directory, connection_id, s["stream_id"])
        if not os.path.exists(path):
            bad.append("%s missing" % path)
            continue
        data = open(path, "rb").read()
        if len(data) == s["final_size"] and "0x%08x" % crc32c(data) == s["crc32c"]:
            good += 1
        else:
            bad.append("%s: size %d crc 0x%08x, manifest %d %s" % (path, len(data), crc32c(data), s["final_size"],
                                                                   s["crc32c"]))
    return good, bad
