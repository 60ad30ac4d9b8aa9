#!/usr/bin/env python3
# sipvicious_run.py — SIPVicious (svmap, svwar, svcrack) against the real proxy while a real sipp keeps a registration alive: the scanner is banned, the user is not.
"""SIPVicious against the running proxy, with a legitimate user registered.

usage: sipvicious_run.py --harness BIN [--scenario XML] [--report FILE]

Everything is on loopback and bounded (about a minute):
  proxy     kz_security_proxy on 127.0.0.2 (a free port), Kazoo's defaults
  user      real sipp from 127.0.0.10 running the scenario library's
            register-auth case (dev1001, REGISTER, 401, REGISTER with digest,
            200) in a loop, one registration every 2 s
  scanner   127.0.0.1: svwar and svcrack of sipvicious 0.3.3 ignore their
            -b option (they always bind 0.0.0.0, so the kernel picks
            127.0.0.1), so every tool runs from there (svmap with -b too)
  cracker   127.0.0.30: a few REGISTERs with wrong digests for dev1001 (this
            script: svcrack cannot get past the proxy's 400 Missing Expires)

Steps and checks:
  1. sipp registers (>= 2 successes before any attack).
  2. the scanner source is answered (OPTIONS -> 200) before the attack.
  3. svmap: finds nothing (its OPTIONS name a bare IP: the scanner filter
     drops them), the proxy's filtered counter rises.
  4. svwar -m REGISTER and svcrack: recorded (the proxy's 400 Missing
     Expires stops both tools; they must find nothing).
  5. svwar -m OPTIONS over 900 extensions: the anti-flood bans the scanner
     (log line 'pike: 127.0.0.1 ... banned'); from then on the scanner's
     requests time out while a fresh source is still answered.
  6. the cracker's 4th wrong digest gets 403 with Retry-After 3600, its
     5th try is refused without a challenge (the auth ban), while sipp's
     dev1001 from 127.0.0.10 keeps registering.
  7. sipp's successful count rose during and after the attacks, with no
     failed registration; the harness exits 0 (no sanitizer report).
Exit 77 (skip) when sipp or sipvicious are missing, unless CI is set."""

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sec_common as sc  # noqa: E402

USER_IP = "127.0.0.10"
SCANNER_IP = "127.0.0.1"
CRACKER_IP = "127.0.0.30"
FRESH_IP = "127.0.0.21"
REALM = "acme.sip.example.com"


def free_udp_port(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sipp_counts(path):
    """(successful, failed) cumulative calls from sipp's -trace_stat file."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
    except OSError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    hdr, last = rows[0], rows[-1]
    try:
        return int(last[hdr.index("SuccessfulCall(C)")]), int(last[hdr.index("FailedCall(C)")])
    except (ValueError, IndexError):
        return 0, 0


def run_tool(argv, timeout, logpath):
    """Runs a sipvicious tool; returns (exit status, seconds, output).  The
    tools bind 0.0.0.0:5060 (or the next free port) by default, which would
    take 5060 from other tests running in parallel: give them a free port."""
    argv = argv[:1] + ["-P", str(free_udp_port("0.0.0.0"))] + argv[1:]
    t = time.monotonic()
    p = sc.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    out = out.decode(errors="replace")
    with open(logpath, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{out}\n")
    return p.returncode, time.monotonic() - t, out


def crack(target, user, realm, tries):
    """Sends REGISTERs with wrong passwords for user from CRACKER_IP, one
    challenge/answer round each; returns the status codes of the answers to
    the credentialed REGISTERs (None for no answer) and the last 403's
    Retry-After."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((CRACKER_IP, 0))
    port = s.getsockname()[1]
    s.settimeout(2.0)
    call_id = uuid.uuid4().hex
    aor = f"sip:{user}@{realm}"
    codes, retry_after = [], None
    cseq = 1

    def exchange(auth=""):
        nonlocal cseq
        extra = f"Contact: <sip:{user}@{CRACKER_IP}:{port}>\r\nExpires: 600\r\n{auth}"
        s.sendto(sc.sip_request("REGISTER", f"sip:{realm}", CRACKER_IP, port, aor, aor, extra=extra,
                                call_id=call_id, cseq=cseq), target)
        cseq += 1
        try:
            while True:
                data = s.recv(65535)
                code = sc.status_of(data)
                if code and code >= 200:
                    return code, data.decode(errors="replace")
        except socket.timeout:
            return None, ""

    try:
        for i in range(tries):
            code, text = exchange()
            if code != 401:
                codes.append(code)
                m = re.search(r"^Retry-After:\s*(\d+)", text, re.M | re.I)
                if m:
                    retry_after = int(m.group(1))
                continue
            nonce = re.search(r'nonce="([^"]*)"', text).group(1)
            rlm = re.search(r'realm="([^"]*)"', text).group(1)
            ha1 = hashlib.md5(f"{user}:{rlm}:wrong-{i}".encode()).hexdigest()
            ha2 = hashlib.md5(f"REGISTER:sip:{realm}".encode()).hexdigest()
            cnonce = uuid.uuid4().hex[:8]
            resp = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
            auth = (f'Authorization: Digest username="{user}", realm="{rlm}", nonce="{nonce}", '
                    f'uri="sip:{realm}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, '
                    f'cnonce="{cnonce}"\r\n')
            code, text = exchange(auth)
            codes.append(code)
            m = re.search(r"^Retry-After:\s*(\d+)", text, re.M | re.I)
            if m:
                retry_after = int(m.group(1))
    finally:
        s.close()
    return codes, retry_after


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--harness", required=True)
    src = os.environ.get("KZ_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
    ap.add_argument("--scenario", default=os.path.join(src, "scenarios/sipp/register-auth/uac.xml"))
    ap.add_argument("--report")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()

    tools = {t: shutil.which(t) for t in ("sipp", "svmap", "svwar", "svcrack")}
    absent = [t for t, p in tools.items() if not p]
    if absent:
        sc.missing(f"{', '.join(absent)} not installed (Debian: sip-tester sipvicious)")

    work = os.path.join(a.workdir, f"kz-security-sipvicious-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    toollog = os.path.join(work, "tools.log")
    failures = []
    rep = {"workdir": work}
    h = sc.Harness(a.harness, ["--listen", "127.0.0.2:0", "--duration", "180"], os.path.join(work, "proxy.log"))
    target = h.addr
    tgt = f"{target[0]}:{target[1]}"
    sc.log(f"proxy harness at {tgt} (pid {h.p.pid}), work dir {work}")
    sipp = None
    statf = os.path.join(work, "sipp_stat.csv")
    try:
        # 1. The legitimate user: one registration every 2 s, for at most
        # 90 s (-timeout bounds sipp even if we die).
        uport = free_udp_port(USER_IP)
        sipp = sc.spawn([tools["sipp"], "-sf", a.scenario, "-i", USER_IP, "-p", str(uport),
                         "-r", "1", "-rp", "2000", "-m", "45", "-timeout", "100s", "-nostdin",
                         "-trace_stat", "-stf", statf, "-fd", "1",
                         "-trace_err", "-error_file", os.path.join(work, "sipp_err.log"), tgt],
                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sipp.out"), "wb"),
                        cwd=work)
        end = time.monotonic() + 15
        while time.monotonic() < end and sipp_counts(statf)[0] < 2:
            time.sleep(0.5)
        ok0, fail0 = sipp_counts(statf)
        rep["sipp_before"] = {"successful": ok0, "failed": fail0}
        sc.log(f"sipp: {ok0} registrations before the attacks")
        if ok0 < 2:
            raise RuntimeError(f"sipp did not register (successful {ok0}, failed {fail0}); see {work}")

        # 2. The scanner's address is answered before it misbehaves.
        rep["scanner_options_before"] = sc.probe(target, SCANNER_IP)
        if rep["scanner_options_before"] != 200:
            failures.append(f"OPTIONS from {SCANNER_IP} before the scan: {rep['scanner_options_before']} (want 200)")

        # 3. svmap: OPTIONS sip:100@<ip> -> scanner filter.
        f0 = h.snapshot()
        rc, secs, out = run_tool([tools["svmap"], "-b", SCANNER_IP, "-p", str(target[1]), target[0]], 60, toollog)
        f1 = h.snapshot()
        rep["svmap"] = {"exit": rc, "seconds": round(secs, 1), "found_nothing": "found nothing" in out,
                        "filtered": f1["filtered"] - f0["filtered"]}
        if "found nothing" not in out:
            failures.append("svmap found a SIP device (the scanner filter should hide the proxy)")
        if f1["filtered"] <= f0["filtered"]:
            failures.append("svmap's requests were not dropped by the scanner filter")

        # 4. svwar -m REGISTER and svcrack: what they make of the proxy.
        rc, secs, out = run_tool([tools["svwar"], "-m", "REGISTER", "-e", "100-999", "--force",
                                  "--domain", "kz.test", "--maximumtime", "5", "-p", str(target[1]),
                                  target[0]], 60, toollog)
        found = re.findall(r"^\|\s*(\d+)\s*\|", out, re.M)
        rep["svwar_register"] = {"exit": rc, "seconds": round(secs, 1), "extensions_found": found,
                                 "stopped_by": next((l for l in out.splitlines() if "ERROR" in l), None)}
        if found:
            failures.append(f"svwar -m REGISTER enumerated extensions {found}")
        rc, secs, out = run_tool([tools["svcrack"], "-u", "dev1001", "--domain", REALM, "-r", "1000-1040",
                                  "-p", str(target[1]), target[0]], 60, toollog)
        rep["svcrack"] = {"exit": rc, "seconds": round(secs, 1),
                          "cracked": "s3cret" in out or re.search(r"\|\s*dev1001\s*\|", out) is not None,
                          "stopped_by": next((l for l in out.splitlines() if "ERROR" in l), None)}
        if rep["svcrack"]["cracked"]:
            failures.append("svcrack reports a cracked password")

        # 5. svwar -m OPTIONS: a fast scan the proxy answers until it bans.
        before = h.snapshot()
        rc, secs, out = run_tool([tools["svwar"], "-m", "OPTIONS", "-e", "100-999", "--force",
                                  "--domain", "kz.test", "--maximumtime", "4", "-p", str(target[1]),
                                  target[0]], 60, toollog)
        after = h.snapshot()
        bans = h.log_lines(f"pike: {SCANNER_IP} ")
        ban_ms = None
        if bans:
            m = re.match(r"\[\s*(\d+) ms\]", bans[0])
            ban_ms = int(m.group(1)) - before["t_ms"] if m else None
        rep["svwar_options"] = {
            "exit": rc, "seconds": round(secs, 1),
            "requests_seen_by_proxy": after["requests_in"] + after["flood_dropped"] - before["requests_in"]
            - before["flood_dropped"],
            "proxy_replies_during_scan": after["replies_local"] - before["replies_local"],
            "dropped_after_ban": after["flood_dropped"] - before["flood_dropped"],
            "ms_until_ban": ban_ms, "ban_log": bans[:1]}
        if not bans or after["flood_bans"] <= before["flood_bans"]:
            failures.append(f"the scanner {SCANNER_IP} was not banned by the anti-flood")
        rep["scanner_options_after"] = sc.probe(target, SCANNER_IP)
        rep["fresh_options_after"] = sc.probe(target, FRESH_IP)
        if rep["scanner_options_after"] is not None:
            failures.append(f"the banned scanner still gets answers ({rep['scanner_options_after']})")
        if rep["fresh_options_after"] != 200:
            failures.append(f"a fresh source is not answered after the scan ({rep['fresh_options_after']})")

        # 6. Failed-auth ban for one user at one address only.
        codes, retry_after = crack(target, "dev1001", REALM, 5)
        rep["cracker"] = {"codes": codes, "retry_after": retry_after}
        if codes[:3] != [401, 401, 401] or codes[3:4] != [403] or retry_after != 3600 or codes[4:5] != [403]:
            failures.append(f"wrong digests from {CRACKER_IP}: answers {codes}, Retry-After {retry_after} "
                            "(want 401 x3, then 403 with Retry-After 3600, then 403 without a challenge)")

        # 7. The user kept registering through all of it, and still does.
        ok_mid, fail_mid = sipp_counts(statf)
        time.sleep(6)
        ok1, fail1 = sipp_counts(statf)
        rep["sipp_after_attacks"] = {"successful": ok_mid, "failed": fail_mid}
        rep["sipp_6s_later"] = {"successful": ok1, "failed": fail1}
        if ok_mid <= ok0 or ok1 <= ok_mid:
            failures.append(f"sipp's registrations stopped rising: {ok0} before, {ok_mid} after the attacks, "
                            f"{ok1} 6 s later")
        if fail1:
            failures.append(f"sipp had {fail1} failed registrations")
    except Exception as e:  # noqa: BLE001 — any error is a failure, the cleanup below still runs
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        if sipp and sipp.poll() is None:
            sipp.terminate()
            try:
                sipp.wait(10)
            except subprocess.TimeoutExpired:
                sipp.kill()
                sipp.wait()
        rc, final = h.stop()
    rep["harness_exit"], rep["stats_exit"] = rc, final
    if rc != 0:
        failures.append(f"the harness exited {rc} (sanitizer report, leak or crash; see {work}/proxy.log)")
    if final and final.get("registers_ok", 0) < 2:
        failures.append("the proxy saw fewer than 2 successful registrations")

    print("\n==== SIPVicious against kz_proxy ====")
    print(json.dumps(rep, indent=1, sort_keys=True))
    if a.report:
        with open(a.report, "w") as f:
            json.dump(rep, f, indent=1, sort_keys=True)
    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    print("\nPASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
