#!/usr/bin/env python3
# smoke_run.py — the harness itself works: it starts, answers OPTIONS/REGISTER/garbage as the proxy should, reports stats and exits 0.
"""usage: smoke_run.py --harness BIN

Needs nothing but python3, so it runs (and keeps the harness honest) even
where the PROTOS corpus, sipp or sipvicious are missing."""

import argparse
import json
import os
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sec_common as sc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", required=True)
    ap.add_argument("--report", help="write the stats at exit as JSON here")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    failures = []
    h = sc.Harness(a.harness, ["--listen", "127.0.0.2:0", "--duration", "60"],
                   os.path.join(a.workdir, f"kz-security-smoke-{os.getpid()}.log"))
    try:
        checks = {
            "OPTIONS sip:kz.test": (sc.probe(h.addr, "127.3.0.1"), 200),
            "REGISTER dev1001 (challenge)": (sc.probe(h.addr, "127.3.0.2", "REGISTER", user="dev1001",
                                                      domain="acme.sip.example.com"), 401),
        }
        # A request without Call-ID: 400 with the parser's reason.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.3.0.3", 0))
        s.settimeout(2)
        s.sendto(b"OPTIONS sip:kz.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.3.0.3:1;branch=z9hG4bKx\r\n"
                 b"From: <sip:a@kz.test>;tag=1\r\nTo: <sip:kz.test>\r\nCSeq: 1 OPTIONS\r\n\r\n", h.addr)
        try:
            first = s.recv(65535).split(b"\r\n", 1)[0].decode()
        except socket.timeout:
            first = None
        s.close()
        checks["no Call-ID"] = (first, "SIP/2.0 400 Missing Call-ID")
        # The scanner filter: a bare-IP Request-URI from an untrusted source is dropped.
        checks["OPTIONS to a bare IP (filtered)"] = (
            sc.probe(h.addr, "127.3.0.4", domain=h.addr[0], timeout=1.0), None)
        stats = h.snapshot()
        for name, (got, want) in checks.items():
            sc.log(f"{name}: {got!r} (want {want!r})")
            if got != want:
                failures.append(f"{name}: got {got!r}, want {want!r}")
        if not stats or stats["malformed"] != 1 or stats["filtered"] != 1:
            failures.append(f"stats: {stats}")
    finally:
        rc, final = h.stop()
    sc.log(f"harness exit {rc}, stats {final}")
    if a.report:
        with open(a.report, "w") as f:
            json.dump({"harness_exit": rc, "stats_exit": final, "failures": failures}, f, indent=1)
    if rc != 0:
        failures.append(f"harness exited {rc}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
