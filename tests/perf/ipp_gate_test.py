#!/usr/bin/env python3
"""perf/ipp_gate.py fails when it should: against a record 20 % below this build's figures it
exits 1 naming the figure that grew; against one 20 % above, it passes and asks for the
improvement to be recorded; a record without this machine's ISA class, or a malformed one, fails
with the reason. Every run but the last measures (callgrind): about 40 s.

Usage (meson passes it): ipp_gate_test.py BUILD_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GATE = os.path.join(ROOT, "perf", "ipp_gate.py")
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        if detail:
            print(detail, flush=True)
        failures.append(what)


def gate(build, baseline, *extra):
    p = subprocess.run([sys.executable, GATE, "--build", build, "--baseline", baseline, *extra],
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def main():
    build = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="kwik-ipp-gate-test-") as work:
        mine = os.path.join(work, "mine.json")
        rc, out = gate(build, mine, "--record")
        check(rc == 0 and "recorded in" in out, "--record writes this build's figures (rc %d)" % rc)
        with open(mine) as f:
            record = json.load(f)
        (isa, figure), = record["figures"].items()
        measured = figure["ir_per_packet"]
        check(set(measured) == {"first_pass", "replay"} and all(v > 500 for v in measured.values()),
              "both figures recorded and plausible: %s" % measured)

        lower = os.path.join(work, "lower.json")
        scaled = json.loads(json.dumps(record))
        scaled["figures"][isa]["ir_per_packet"]["first_pass"] = round(measured["first_pass"] * 0.8)
        with open(lower, "w") as f:
            json.dump(scaled, f)
        rc, out = gate(build, lower)
        check(rc == 1 and re.search(r"FAILED: kwikd's worker grew\. new data: \d+ instructions per packet", out)
              and "replayed duplicates:" not in out.split("grew.")[1],
              "a record 20 %% below the new-data figure fails naming that figure only (rc %d)" % rc, out[-1500:])

        higher = os.path.join(work, "higher.json")
        scaled = json.loads(json.dumps(record))
        for k in measured:
            scaled["figures"][isa]["ir_per_packet"][k] = round(measured[k] * 1.2)
        with open(higher, "w") as f:
            json.dump(scaled, f)
        rc, out = gate(build, higher)
        check(rc == 0 and "record the improvement" in out, "a record 20 %% above passes and asks for --record (rc %d)" % rc)

        other = os.path.join(work, "other.json")
        with open(other, "w") as f:
            json.dump({"tolerance": 0.1, "figures": {"riscv64": figure}}, f)
        rc, out = gate(build, other)
        check(rc == 1 and ("records no figure for " + isa) in out, "a record for another ISA class fails, naming ours (rc %d)" % rc)

        bad = os.path.join(work, "bad.json")
        with open(bad, "w") as f:
            f.write('{"figures": {}}')
        rc, out = gate(build, bad)
        check(rc == 2 and '"tolerance"' in out, "a record without a tolerance is refused before measuring (rc %d)" % rc)
    print("ipp_gate_test: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
